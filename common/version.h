/* version.h - OSGi versions MAJOR.MINOR.MICRO[.QUALIFIER] and version ranges.
 *
 * Numeric parts are compared as numbers, the qualifier as a byte string;
 * missing parts are 0 ("1.2" == "1.2.0"); an absent qualifier sorts before
 * any present one (1.0.0 < 1.0.0.a).  Ranges: "[a,b)", "(a,b]", "[a,b]",
 * "(a,b)", or a bare "a" meaning "at least a".  Invalid input is always an
 * error with a message naming the text, never a silent 0. */
#ifndef TN_VERSION_H
#define TN_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Longest qualifier accepted (characters [A-Za-z0-9_-]). */
#define TN_VERSION_QUALIFIER_MAX 64
/* A buffer this size holds any formatted version. */
#define TN_VERSION_STR_MAX (3 * 10 + 3 + TN_VERSION_QUALIFIER_MAX + 1)
/* A buffer this size holds any formatted range. */
#define TN_RANGE_STR_MAX (2 * TN_VERSION_STR_MAX + 4)

struct tn_version {
	uint32_t major, minor, micro;
	char qualifier[TN_VERSION_QUALIFIER_MAX + 1]; /* "" when absent */
};

struct tn_range {
	struct tn_version low;
	bool low_inclusive;
	bool has_high; /* false for a bare "a": no upper bound */
	struct tn_version high;
	bool high_inclusive;
};

/* Parses s (NUL-terminated; no surrounding spaces allowed).  Each numeric
 * part is decimal digits only (no sign, no "0x"; leading zeros are allowed
 * and ignored), at most 4294967295.  *out is written only on success; on
 * failure err says which part is wrong and quotes the text. */
int tn_version_parse(const char *s, struct tn_version *out, struct tn_error *err)
	TN_MUST_CHECK;

/* -1, 0, 1 as a sorts before, equal to, after b.  Qualifiers compare byte
 * by byte ("A" < "a"). */
int tn_version_compare(const struct tn_version *a, const struct tn_version *b);

/* Writes the canonical form "M.m.u[.q]" into buf (TN_VERSION_STR_MAX bytes
 * is always enough; a smaller buf gets a truncated, still NUL-terminated
 * string); returns buf. */
char *tn_version_format(const struct tn_version *v, char *buf, size_t size);

/* Parses a range; spaces around the bounds are allowed inside brackets,
 * nothing before the opening bracket or after the closing one.  An empty
 * range (low > high, or low == high unless both inclusive) is an error.
 * *out is written only on success. */
int tn_range_parse(const char *s, struct tn_range *out, struct tn_error *err)
	TN_MUST_CHECK;

bool tn_range_contains(const struct tn_range *r, const struct tn_version *v);

/* Canonical form: "[1.0.0,2.0.0)" or, without an upper bound, "1.0.0"
 * (tn_range_parse always sets low_inclusive then; OSGi has no "above a"
 * form, so a hand-built exclusive one is written as if inclusive).
 * TN_RANGE_STR_MAX bytes is always enough; returns buf. */
char *tn_range_format(const struct tn_range *r, char *buf, size_t size);

#endif
