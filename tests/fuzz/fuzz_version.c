/* fuzz_version.c - libFuzzer target for the OSGi version and range parsers
 * (common/version.c): whatever parses must format back to text that parses
 * to the same value, and a range must contain its inclusive bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash libFuzzer reports) when a property does not hold. */
static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_version(const char *s)
{
	struct tn_version v, again;
	char buf[TN_VERSION_STR_MAX];

	if (tn_version_parse(s, &v, NULL))
		return;
	tn_version_format(&v, buf, sizeof buf);
	require(tn_version_parse(buf, &again, NULL) == 0);
	require(tn_version_compare(&v, &again) == 0);
}

static void check_range(const char *s)
{
	struct tn_range r, again;
	char buf[TN_RANGE_STR_MAX];

	if (tn_range_parse(s, &r, NULL))
		return;
	tn_range_format(&r, buf, sizeof buf);
	require(tn_range_parse(buf, &again, NULL) == 0);
	require(tn_version_compare(&r.low, &again.low) == 0);
	require(r.has_high == again.has_high);
	require(r.low_inclusive == tn_range_contains(&r, &r.low));
	if (r.has_high) {
		require(tn_version_compare(&r.high, &again.high) == 0);
		require(r.high_inclusive == tn_range_contains(&r, &r.high));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size);
	struct tn_version a, b;
	char *comma;

	check_version(s);
	check_range(s);
	/* Two versions: compare is antisymmetric. */
	if ((comma = strchr(s, ',')) != NULL) {
		*comma = '\0';
		if (tn_version_parse(s, &a, NULL) == 0 &&
		    tn_version_parse(comma + 1, &b, NULL) == 0)
			require(tn_version_compare(&a, &b) == -tn_version_compare(&b, &a));
	}
	free(s);
	return 0;
}
