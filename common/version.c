/* version.c - OSGi versions and version ranges: strict parsing with messages
 * that name the offending text, total ordering, and canonical formatting.
 * Bundle requirements are resolved with these, so a sloppy parse here would
 * silently pick the wrong bundle; everything not plainly valid is refused. */
#include "version.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* How much of an input an error message quotes: enough to recognise it, not
 * so much that a hostile input crowds the reason out of the message. */
#define SHOW_MAX 80

struct shown {
	char s[SHOW_MAX + 8];
};

/* Makes s[0..len) safe to put between quotes in a message that ends up on a
 * terminal or in JSON: '"' and '\' escaped, bytes outside printable ASCII as
 * \xNN, cut with "..." once it passes SHOW_MAX.  Returns out->s. */
static const char *show(const char *s, size_t len, struct shown *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4];
		size_t k = 0;

		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 0xf];
		} else {
			esc[k++] = (char)c;
		}
		if (n + k > SHOW_MAX) {
			memcpy(out->s + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(out->s + n, esc, k);
		n += k;
	}
	out->s[n] = '\0';
	return out->s;
}

static bool is_qualifier_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Parses one numeric part.  Only decimal digits: no sign, no "0x", no spaces,
 * since strtoul would accept all three and OSGi accepts none. */
static int parse_number(const char *vs, size_t vlen, const char *part, size_t plen,
			const char *what, uint32_t *out, struct tn_error *err)
{
	struct shown t, p;
	uint32_t v = 0;

	if (plen == 0)
		return tn_fail(err, TN_E_INVALID, "version \"%s\": %s part is empty",
			       show(vs, vlen, &t), what);
	for (size_t i = 0; i < plen; i++)
		if (part[i] < '0' || part[i] > '9')
			return tn_fail(err, TN_E_INVALID,
				       "version \"%s\": %s part \"%s\" is not a number",
				       show(vs, vlen, &t), what, show(part, plen, &p));
	for (size_t i = 0; i < plen; i++) {
		uint32_t d = (uint32_t)(part[i] - '0');

		if (v > (UINT32_MAX - d) / 10)
			return tn_fail(err, TN_E_INVALID,
				       "version \"%s\": %s part \"%s\" is larger than %" PRIu32,
				       show(vs, vlen, &t), what, show(part, plen, &p),
				       (uint32_t)UINT32_MAX);
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* The parser proper, on a counted string so that range bounds can be parsed
 * in place.  *out is written only on success. */
static int parse_version(const char *s, size_t len, struct tn_version *out, struct tn_error *err)
{
	static const char *const part_names[3] = {"major", "minor", "micro"};
	struct tn_version v;
	uint32_t *parts[3] = {&v.major, &v.minor, &v.micro};
	struct shown t, q, c;
	size_t pos = 0;
	size_t qlen;
	int rc;

	memset(&v, 0, sizeof v);
	if (len == 0)
		return tn_fail(err, TN_E_INVALID, "version \"\": empty string");
	for (int i = 0; i < 3; i++) {
		const char *dot = memchr(s + pos, '.', len - pos);
		size_t end = dot ? (size_t)(dot - s) : len;

		rc = parse_number(s, len, s + pos, end - pos, part_names[i], parts[i], err);
		if (rc)
			return rc;
		if (!dot)
			goto done;
		pos = end + 1;
	}

	/* Everything after the third dot is the qualifier, so a fourth dot
	 * lands in it and is refused like any other foreign character. */
	qlen = len - pos;
	if (qlen == 0)
		return tn_fail(err, TN_E_INVALID,
			       "version \"%s\": qualifier is empty after the third '.'",
			       show(s, len, &t));
	for (size_t i = 0; i < qlen; i++)
		if (!is_qualifier_char((unsigned char)s[pos + i]))
			return tn_fail(err, TN_E_INVALID,
				       "version \"%s\": qualifier \"%s\" contains '%s'; only "
				       "A-Z a-z 0-9 _ - are allowed",
				       show(s, len, &t), show(s + pos, qlen, &q),
				       show(s + pos + i, 1, &c));
	if (qlen > TN_VERSION_QUALIFIER_MAX)
		return tn_fail(err, TN_E_INVALID,
			       "version \"%s\": qualifier is %zu characters, more than %d",
			       show(s, len, &t), qlen, TN_VERSION_QUALIFIER_MAX);
	memcpy(v.qualifier, s + pos, qlen);
	v.qualifier[qlen] = '\0';
done:
	*out = v;
	return 0;
}

int tn_version_parse(const char *s, struct tn_version *out, struct tn_error *err)
{
	return parse_version(s, strlen(s), out, err);
}

static int cmp_u32(uint32_t a, uint32_t b)
{
	return (a > b) - (a < b);
}

int tn_version_compare(const struct tn_version *a, const struct tn_version *b)
{
	int c;

	if ((c = cmp_u32(a->major, b->major)) != 0)
		return c;
	if ((c = cmp_u32(a->minor, b->minor)) != 0)
		return c;
	if ((c = cmp_u32(a->micro, b->micro)) != 0)
		return c;
	/* Bytewise (strncmp compares as unsigned char); "" sorts first, which
	 * is exactly OSGi's "no qualifier before any qualifier".  Bounded so
	 * that a hand-built struct without its NUL cannot overrun. */
	c = strncmp(a->qualifier, b->qualifier, sizeof a->qualifier);
	return (c > 0) - (c < 0);
}

char *tn_version_format(const struct tn_version *v, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu32 ".%" PRIu32 ".%" PRIu32 "%s%.*s", v->major, v->minor,
		 v->micro, v->qualifier[0] ? "." : "", TN_VERSION_QUALIFIER_MAX, v->qualifier);
	return buf;
}

/* ---------------------------------------------------------------- ranges */

/* Parses one bound of range rs, trimming the spaces OSGi allows around it
 * inside brackets (trim) but nowhere else.  A version error is re-reported
 * with the whole range in front, since the user wrote the range, not the
 * bound. */
static int parse_bound(const char *rs, size_t rlen, const char *b, size_t blen, bool trim,
		       const char *what, struct tn_version *out, struct tn_error *err)
{
	struct tn_error inner;
	struct shown t;

	while (trim && blen > 0 && b[0] == ' ') {
		b++;
		blen--;
	}
	while (trim && blen > 0 && b[blen - 1] == ' ')
		blen--;
	if (blen == 0)
		return tn_fail(err, TN_E_INVALID, "range \"%s\": %s is empty", show(rs, rlen, &t),
			       what);
	if (parse_version(b, blen, out, &inner) != 0)
		return tn_fail(err, inner.code, "range \"%s\": %s", show(rs, rlen, &t),
			       inner.message);
	return 0;
}

int tn_range_parse(const char *s, struct tn_range *out, struct tn_error *err)
{
	size_t len = strlen(s);
	struct tn_range r;
	struct shown t, j;
	const char *comma;
	size_t close;
	int rc, cmp;

	memset(&r, 0, sizeof r);
	if (len == 0)
		return tn_fail(err, TN_E_INVALID, "range \"\": empty string");

	if (s[0] != '[' && s[0] != '(') {
		/* A bare version, unless it is a bracketed range with junk in
		 * front or one that lost its opener: say so, rather than "major
		 * part is not a number". */
		size_t open = strcspn(s, "[(");

		if (open < len)
			return tn_fail(err, TN_E_INVALID,
				       "range \"%s\": unexpected \"%s\" before '%c'",
				       show(s, len, &t), show(s, open, &j), s[open]);
		if (memchr(s, ',', len) || s[len - 1] == ']' || s[len - 1] == ')')
			return tn_fail(err, TN_E_INVALID,
				       "range \"%s\": missing opening '[' or '('",
				       show(s, len, &t));
		rc = parse_bound(s, len, s, len, false, "version", &r.low, err);
		if (rc)
			return rc;
		r.low_inclusive = true;
		r.has_high = false;
		goto done;
	}

	r.low_inclusive = s[0] == '[';
	close = strcspn(s + 1, "])") + 1;
	if (close >= len)
		return tn_fail(err, TN_E_INVALID, "range \"%s\": missing closing ']' or ')'",
			       show(s, len, &t));
	if (close != len - 1)
		return tn_fail(err, TN_E_INVALID, "range \"%s\": unexpected \"%s\" after '%c'",
			       show(s, len, &t), show(s + close + 1, len - close - 1, &j),
			       s[close]);
	comma = memchr(s + 1, ',', close - 1);
	if (!comma)
		return tn_fail(err, TN_E_INVALID, "range \"%s\": missing ',' between the bounds",
			       show(s, len, &t));
	if (memchr(comma + 1, ',', (size_t)(s + close - comma - 1)))
		return tn_fail(err, TN_E_INVALID, "range \"%s\": more than one ','",
			       show(s, len, &t));
	rc = parse_bound(s, len, s + 1, (size_t)(comma - s - 1), true, "low bound", &r.low, err);
	if (rc)
		return rc;
	rc = parse_bound(s, len, comma + 1, (size_t)(s + close - comma - 1), true, "high bound",
			 &r.high, err);
	if (rc)
		return rc;
	r.has_high = true;
	r.high_inclusive = s[close] == ']';

	/* An empty range can only be a mistake (typically swapped bounds), and
	 * would later surface as a baffling "unresolved" instead. */
	cmp = tn_version_compare(&r.low, &r.high);
	if (cmp > 0) {
		char lo[TN_VERSION_STR_MAX], hi[TN_VERSION_STR_MAX];

		return tn_fail(err, TN_E_INVALID,
			       "range \"%s\": low bound %s is above high bound %s, so no "
			       "version matches",
			       show(s, len, &t), tn_version_format(&r.low, lo, sizeof lo),
			       tn_version_format(&r.high, hi, sizeof hi));
	}
	if (cmp == 0 && !(r.low_inclusive && r.high_inclusive)) {
		char v[TN_VERSION_STR_MAX];

		tn_version_format(&r.low, v, sizeof v);
		return tn_fail(
		    err, TN_E_INVALID,
		    "range \"%s\": no version matches (for exactly %s write \"[%s,%s]\")",
		    show(s, len, &t), v, v, v);
	}
done:
	*out = r;
	return 0;
}

bool tn_range_contains(const struct tn_range *r, const struct tn_version *v)
{
	int lo = tn_version_compare(v, &r->low);

	if (lo < 0 || (lo == 0 && !r->low_inclusive))
		return false;
	if (r->has_high) {
		int hi = tn_version_compare(v, &r->high);

		if (hi > 0 || (hi == 0 && !r->high_inclusive))
			return false;
	}
	return true;
}

char *tn_range_format(const struct tn_range *r, char *buf, size_t size)
{
	char lo[TN_VERSION_STR_MAX], hi[TN_VERSION_STR_MAX];

	tn_version_format(&r->low, lo, sizeof lo);
	if (!r->has_high) {
		snprintf(buf, size, "%s", lo);
		return buf;
	}
	tn_version_format(&r->high, hi, sizeof hi);
	snprintf(buf, size, "%c%s,%s%c", r->low_inclusive ? '[' : '(', lo, hi,
		 r->high_inclusive ? ']' : ')');
	return buf;
}
