/* test_version.c - OSGi versions and ranges: ordering facts, strict parsing
 * with messages naming the text, range bounds of every bracket kind, and
 * canonical formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "version.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct tn_version ver(const char *s)
{
	struct tn_version v;
	struct tn_error err;

	if (tn_version_parse(s, &v, &err) != 0)
		fail_msg("valid version \"%s\" refused: %s", s, err.message);
	return v;
}

static void assert_contains(const char *haystack, const char *needle, const char *input)
{
	if (!strstr(haystack, needle))
		fail_msg("input \"%s\": message \"%s\" lacks \"%s\"", input, haystack, needle);
}

/* ---------------------------------------------------------------- parsing */

static void test_parse_valid(void **state)
{
	static const struct {
		const char *in;
		uint32_t major, minor, micro;
		const char *qualifier;
	} cases[] = {
		{"1", 1, 0, 0, ""},
		{"1.2", 1, 2, 0, ""},
		{"1.2.3", 1, 2, 3, ""},
		{"1.2.3.qual", 1, 2, 3, "qual"},
		{"0", 0, 0, 0, ""},
		{"0.0.0", 0, 0, 0, ""},
		{"01.002.0003", 1, 2, 3, ""},
		{"4294967295.4294967295.4294967295", 4294967295u, 4294967295u, 4294967295u, ""},
		{"1.2.3.-_aZ09", 1, 2, 3, "-_aZ09"},
		{"1.2.3.SNAPSHOT", 1, 2, 3, "SNAPSHOT"},
		{"1.0.0.0123456789012345678901234567890123456789012345678901234567890123", 1, 0, 0,
		 "0123456789012345678901234567890123456789012345678901234567890123"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_version v = ver(cases[i].in);

		assert_int_equal(v.major, cases[i].major);
		assert_int_equal(v.minor, cases[i].minor);
		assert_int_equal(v.micro, cases[i].micro);
		assert_string_equal(v.qualifier, cases[i].qualifier);
	}
}

static void test_parse_invalid(void **state)
{
	/* Each message must quote the input and say what is wrong with it. */
	static const struct {
		const char *in;
		const char *quoted; /* how the input appears in the message */
		const char *reason;
	} cases[] = {
		{"", "\"\"", "empty"},
		{"1.", "\"1.\"", "minor part is empty"},
		{".1", "\".1\"", "major part is empty"},
		{"1..2", "\"1..2\"", "minor part is empty"},
		{"1.2.", "\"1.2.\"", "micro part is empty"},
		{"-1", "\"-1\"", "major part \"-1\" is not a number"},
		{"+1", "\"+1\"", "major part \"+1\" is not a number"},
		{"1.-2", "\"1.-2\"", "minor part \"-2\" is not a number"},
		{"1.2.3.4.5", "\"1.2.3.4.5\"", "qualifier \"4.5\" contains '.'"},
		{"1.2.3.", "\"1.2.3.\"", "qualifier is empty"},
		{"1.2.3..", "\"1.2.3..\"", "qualifier \".\" contains '.'"},
		{" 1", "\" 1\"", "major part \" 1\" is not a number"},
		{"1 ", "\"1 \"", "major part \"1 \" is not a number"},
		{"1.2.3 ", "\"1.2.3 \"", "micro part \"3 \" is not a number"},
		{"4294967296", "\"4294967296\"", "major part \"4294967296\" is larger than 4294967295"},
		{"1.4294967296", "\"1.4294967296\"", "minor part \"4294967296\" is larger"},
		{"1.0.99999999999999999999", "\"1.0.99999999999999999999\"", "micro part"},
		{"1.a", "\"1.a\"", "minor part \"a\" is not a number"},
		{"1.x", "\"1.x\"", "minor part \"x\" is not a number"},
		{"0x1", "\"0x1\"", "major part \"0x1\" is not a number"},
		{"a", "\"a\"", "major part \"a\" is not a number"},
		{"1.2.3.a b", "\"1.2.3.a b\"", "contains ' '"},
		{"1.2.3.a+b", "\"1.2.3.a+b\"", "contains '+'"},
		{"1.2.3.\xc3\xa9", "\"1.2.3.\\xc3\\xa9\"", "contains '\\xc3'"},
		{"1.2.3.a\tb", "\"1.2.3.a\\x09b\"", "contains '\\x09'"},
		{"1.2.3.a\"b", "\"1.2.3.a\\\"b\"", "contains '\\\"'"},
		{"1.0.0.01234567890123456789012345678901234567890123456789012345678901234",
		 "\"1.0.0.01234567890123456789012345678901234567890123456789012345678901234\"",
		 "qualifier is 65 characters, more than 64"},
		{"1,2", "\"1,2\"", "major part \"1,2\" is not a number"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_version v = ver("7.7.7.keep");
		struct tn_error err;
		char want[128];
		int rc = tn_version_parse(cases[i].in, &v, &err);

		if (rc == 0)
			fail_msg("invalid version \"%s\" accepted", cases[i].in);
		assert_int_equal(rc, -(int)TN_E_INVALID);
		assert_int_equal(err.code, TN_E_INVALID);
		snprintf(want, sizeof want, "version %s: ", cases[i].quoted);
		assert_contains(err.message, want, cases[i].in);
		assert_contains(err.message, cases[i].reason, cases[i].in);
		/* A failed parse leaves *out alone. */
		assert_int_equal(v.major, 7);
		assert_string_equal(v.qualifier, "keep");
	}
}

static void test_parse_accepts_null_error(void **state)
{
	struct tn_version v;

	assert_int_equal(tn_version_parse("1.x", &v, NULL), -(int)TN_E_INVALID);
}

static void test_long_input_is_cut_in_message(void **state)
{
	char in[4000];
	struct tn_version v;
	struct tn_error err;

	memset(in, '9', sizeof in - 1);
	in[sizeof in - 1] = '\0';
	assert_int_not_equal(tn_version_parse(in, &v, &err), 0);
	/* The reason must survive: the quoted input is cut, not the message. */
	assert_non_null(strstr(err.message, "...\""));
	assert_non_null(strstr(err.message, "is larger than 4294967295"));
}

/* ---------------------------------------------------------------- ordering */

static void test_compare_table(void **state)
{
	static const struct {
		const char *a, *b;
		int want;
	} cases[] = {
		/* OSGi facts: missing parts are 0. */
		{"1", "1.0.0", 0},
		{"1.2", "1.2.0", 0},
		/* The chain 1.0.0 < 1.0.0.a < 1.0.1 < 1.1 < 2, link by link. */
		{"1.0.0", "1.0.0.a", -1},
		{"1.0.0.a", "1.0.1", -1},
		{"1.0.1", "1.1", -1},
		{"1.1", "2", -1},
		/* Qualifiers compare as byte strings. */
		{"1.0.0.a", "1.0.0.b", -1},
		{"1.0.0.A", "1.0.0.a", -1},
		{"1.0.0.a", "1.0.0.aa", -1},
		{"1.0.0.Z", "1.0.0._", -1},
		{"1.0.0.-", "1.0.0.0", -1},
		{"1.0.0.10", "1.0.0.9", -1},
		/* Numbers compare as numbers, not as text. */
		{"1.10", "1.9", 1},
		{"1.0.10", "1.0.9", 1},
		{"10", "9", 1},
		{"01", "1", 0},
		{"1.2.3.q", "1.2.3.q", 0},
		{"4294967295", "4294967294.4294967295.4294967295", 1},
		{"0", "0.0.0.a", -1},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_version a = ver(cases[i].a), b = ver(cases[i].b);
		int ab = tn_version_compare(&a, &b), ba = tn_version_compare(&b, &a);

		if (ab != cases[i].want || ba != -cases[i].want)
			fail_msg("compare(%s, %s) = %d, reverse %d; want %d", cases[i].a,
				 cases[i].b, ab, ba, cases[i].want);
		assert_int_equal(tn_version_compare(&a, &a), 0);
	}
}

static void test_compare_chain_is_transitive(void **state)
{
	static const char *const chain[] = {"1.0.0", "1.0.0.a", "1.0.1", "1.1", "2"};

	for (size_t i = 0; i < ARRAY_SIZE(chain); i++)
		for (size_t j = 0; j < ARRAY_SIZE(chain); j++) {
			struct tn_version a = ver(chain[i]), b = ver(chain[j]);
			int want = (i > j) - (i < j);

			if (tn_version_compare(&a, &b) != want)
				fail_msg("compare(%s, %s) != %d", chain[i], chain[j], want);
		}
}

/* ---------------------------------------------------------------- format */

static void test_format_canonical(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"1", "1.0.0"},
		{"1.2", "1.2.0"},
		{"1.2.3", "1.2.3"},
		{"01.02.03", "1.2.3"},
		{"1.2.3.q-_Z", "1.2.3.q-_Z"},
		{"0.0.0", "0.0.0"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_version v = ver(cases[i].in), again;
		char buf[TN_VERSION_STR_MAX];

		assert_ptr_equal(tn_version_format(&v, buf, sizeof buf), buf);
		assert_string_equal(buf, cases[i].want);
		/* Round trip: the canonical form parses back to the same version. */
		again = ver(buf);
		assert_int_equal(tn_version_compare(&v, &again), 0);
	}
}

static void test_format_longest_fits(void **state)
{
	struct tn_version v = ver("4294967295.4294967295.4294967295."
				  "0123456789012345678901234567890123456789012345678901234567890123");
	char buf[TN_VERSION_STR_MAX];
	char small[6];

	tn_version_format(&v, buf, sizeof buf);
	assert_int_equal(strlen(buf), TN_VERSION_STR_MAX - 1);
	/* A short buffer is truncated, not overrun. */
	assert_string_equal(tn_version_format(&v, small, sizeof small), "42949");
}

/* ---------------------------------------------------------------- ranges */

static void test_range_contains_table(void **state)
{
	static const struct {
		const char *range, *version;
		bool want;
	} cases[] = {
		/* [a,b): a in, b out. */
		{"[1.0,2.0)", "0.9.9", false},
		{"[1.0,2.0)", "1.0", true},
		{"[1.0,2.0)", "1.0.0.a", true},
		{"[1.0,2.0)", "1.5", true},
		{"[1.0,2.0)", "1.9.9.z", true},
		{"[1.0,2.0)", "2.0", false},
		{"[1.0,2.0)", "2.0.0.a", false},
		/* (a,b]: a out, b in. */
		{"(1.0,2.0]", "1.0", false},
		{"(1.0,2.0]", "1.0.0.a", true},
		{"(1.0,2.0]", "2.0", true},
		{"(1.0,2.0]", "2.0.0.a", false},
		{"(1.0,2.0]", "3", false},
		/* [a,b]: both in. */
		{"[1.0,2.0]", "0.9", false},
		{"[1.0,2.0]", "1.0", true},
		{"[1.0,2.0]", "2.0", true},
		{"[1.0,2.0]", "2.0.1", false},
		/* (a,b): both out. */
		{"(1.0,2.0)", "1.0", false},
		{"(1.0,2.0)", "1.0.1", true},
		{"(1.0,2.0)", "1.9", true},
		{"(1.0,2.0)", "2.0", false},
		/* Bare a: at least a, no upper bound. */
		{"1.0", "0.9.9", false},
		{"1.0", "1.0.0", true},
		{"1.0", "1.0.0.a", true},
		{"1.0", "4294967295.4294967295.4294967295.zzz", true},
		{"1.2.3.b", "1.2.3.a", false},
		{"1.2.3.b", "1.2.3.b", true},
		/* A single version. */
		{"[1.0,1.0]", "1.0.0", true},
		{"[1.0,1.0]", "1.0.0.a", false},
		{"[1.0,1.0]", "0.9", false},
		/* Spaces around bounds inside brackets. */
		{"[ 1.0 , 2.0 )", "1.0", true},
		{"[ 1.0 , 2.0 )", "2.0", false},
		{"(  1 ,2]", "2", true},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_range r;
		struct tn_error err;
		struct tn_version v = ver(cases[i].version);

		if (tn_range_parse(cases[i].range, &r, &err) != 0)
			fail_msg("valid range \"%s\" refused: %s", cases[i].range, err.message);
		if (tn_range_contains(&r, &v) != cases[i].want)
			fail_msg("range %s %s %s", cases[i].range,
				 cases[i].want ? "should contain" : "should not contain",
				 cases[i].version);
	}
}

static void test_range_invalid(void **state)
{
	static const struct {
		const char *in;
		const char *reason;
	} cases[] = {
		{"", "empty"},
		{"[1.0 2.0)", "missing ','"},
		{"[1.0;2.0)", "missing ','"},
		{"[1.0,2.0", "missing closing"},
		{"[1.0,", "missing closing"},
		{"[", "missing closing"},
		{"(", "missing closing"},
		{"1.0,2.0)", "missing opening"},
		{"1.0,2.0", "missing opening"},
		{"1.0]", "missing opening"},
		{"[]", "missing ','"},
		{"[1.0,2.0)x", "unexpected \"x\" after ')'"},
		{"[1.0,2.0) ", "unexpected \" \" after ')'"},
		{"[1.0,2.0]]", "unexpected \"]\" after ']'"},
		{"[1.0),2.0]", "unexpected \",2.0]\" after ')'"},
		{" [1.0,2.0)", "unexpected \" \" before '['"},
		{"x(1.0,2.0)", "unexpected \"x\" before '('"},
		{"[1.0,2.0,3.0)", "more than one ','"},
		{"[,2.0)", "low bound is empty"},
		{"[ ,2.0)", "low bound is empty"},
		{"[1.0,)", "high bound is empty"},
		{"[1.x,2.0)", "version \"1.x\": minor part \"x\" is not a number"},
		{"[1.0,2.0.0.)", "version \"2.0.0.\": qualifier is empty"},
		{"[1.0\t,2.0)", "minor part \"0\\x09\" is not a number"},
		{"[2.0,1.0)", "low bound 2.0.0 is above high bound 1.0.0"},
		{"[2.0,1.0]", "low bound 2.0.0 is above high bound 1.0.0"},
		{"[1.0.0.b,1.0.0.a]", "low bound 1.0.0.b is above high bound 1.0.0.a"},
		{"[1.0,1.0)", "no version matches"},
		{"(1.0,1.0]", "no version matches"},
		{"(1.0,1.0)", "no version matches"},
		{"[1,1.0.0)", "write \"[1.0.0,1.0.0]\""},
		{" 1.0", "major part \" 1\" is not a number"},
		{"1.0 ", "minor part \"0 \" is not a number"},
		{"x", "major part \"x\" is not a number"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_range r;
		struct tn_error err;
		char want[128];
		int rc = tn_range_parse(cases[i].in, &r, &err);

		if (rc == 0)
			fail_msg("invalid range \"%s\" accepted", cases[i].in);
		assert_int_equal(rc, -(int)TN_E_INVALID);
		assert_int_equal(err.code, TN_E_INVALID);
		snprintf(want, sizeof want, "range \"%s\": ", cases[i].in);
		/* Tabs are shown escaped; every other case quotes the input as is. */
		if (!strchr(cases[i].in, '\t'))
			assert_contains(err.message, want, cases[i].in);
		assert_contains(err.message, cases[i].reason, cases[i].in);
	}
}

static void test_range_accepts_null_error(void **state)
{
	struct tn_range r;

	assert_int_equal(tn_range_parse("[2,1)", &r, NULL), -(int)TN_E_INVALID);
	assert_int_equal(tn_range_parse("[1.x,2)", &r, NULL), -(int)TN_E_INVALID);
}

static void test_range_format_canonical(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"[1.0,2.0)", "[1.0.0,2.0.0)"},
		{"(1.0,1.5]", "(1.0.0,1.5.0]"},
		{"[1,2]", "[1.0.0,2.0.0]"},
		{"(1,2)", "(1.0.0,2.0.0)"},
		{"( 1 , 2 ]", "(1.0.0,2.0.0]"},
		{"[1,1]", "[1.0.0,1.0.0]"},
		{"1.2", "1.2.0"},
		{"1.2.3.q", "1.2.3.q"},
		{"[1.0.0.a,1.0.0.b)", "[1.0.0.a,1.0.0.b)"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tn_range r, again;
		struct tn_error err;
		char buf[TN_RANGE_STR_MAX], buf2[TN_RANGE_STR_MAX];

		assert_int_equal(tn_range_parse(cases[i].in, &r, &err), 0);
		assert_ptr_equal(tn_range_format(&r, buf, sizeof buf), buf);
		assert_string_equal(buf, cases[i].want);
		/* Round trip: the canonical form reads back to the same range. */
		if (tn_range_parse(buf, &again, &err) != 0)
			fail_msg("canonical \"%s\" refused: %s", buf, err.message);
		assert_string_equal(tn_range_format(&again, buf2, sizeof buf2), buf);
		assert_int_equal(again.low_inclusive, r.low_inclusive);
		assert_int_equal(again.has_high, r.has_high);
		assert_int_equal(again.high_inclusive, r.high_inclusive);
	}
}

static void test_range_longest_fits(void **state)
{
	char in[TN_RANGE_STR_MAX + 8], buf[TN_RANGE_STR_MAX];
	struct tn_range r;
	struct tn_error err;
	const char *v = "4294967295.4294967295.4294967295."
			"0123456789012345678901234567890123456789012345678901234567890123";

	snprintf(in, sizeof in, "[%s,%s]", v, v);
	assert_int_equal(tn_range_parse(in, &r, &err), 0);
	tn_range_format(&r, buf, sizeof buf);
	assert_string_equal(buf, in);
	assert_true(strlen(buf) < TN_RANGE_STR_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_accepts_null_error),
		cmocka_unit_test(test_long_input_is_cut_in_message),
		cmocka_unit_test(test_compare_table),
		cmocka_unit_test(test_compare_chain_is_transitive),
		cmocka_unit_test(test_format_canonical),
		cmocka_unit_test(test_format_longest_fits),
		cmocka_unit_test(test_range_contains_table),
		cmocka_unit_test(test_range_invalid),
		cmocka_unit_test(test_range_accepts_null_error),
		cmocka_unit_test(test_range_format_canonical),
		cmocka_unit_test(test_range_longest_fits),
	};
	return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
