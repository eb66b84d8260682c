/* test_error.c - the error idiom: codes, names, statuses, prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "error.h"

static void test_fail_fills_code_and_message(void **state)
{
	struct tn_error err;
	int rc = tn_fail(&err, TN_E_INVALID, "version %s: %s", "1.x", "bad micro");

	assert_int_equal(rc, -(int)TN_E_INVALID);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_string_equal(err.message, "version 1.x: bad micro");
	assert_string_equal(tn_errcode_name(err.code), "invalid");
	assert_int_equal(tn_errcode_http_status(err.code), 400);
}

static void test_fail_accepts_null_error(void **state)
{
	assert_int_equal(tn_fail(NULL, TN_E_NOT_FOUND, "x"), -(int)TN_E_NOT_FOUND);
}

static void test_fail_errno_appends_strerror(void **state)
{
	struct tn_error err;

	tn_fail_errno(&err, ENOENT, "open %s", "/nope");
	assert_int_equal(err.code, TN_E_IO);
	assert_string_equal(err.message, "open /nope: No such file or directory");
	tn_fail_errno(&err, ENOSPC, "write");
	assert_int_equal(err.code, TN_E_NO_SPACE);
	assert_int_equal(tn_errcode_http_status(err.code), 507);
	tn_fail_errno(&err, EFBIG, "write");
	assert_int_equal(err.code, TN_E_TOO_LARGE);
}

static void test_prefix_adds_context(void **state)
{
	struct tn_error err;

	tn_fail(&err, TN_E_ARCHIVE_SYMLINK, "entry lib/x is a symlink");
	assert_int_equal(tn_error_prefix(&err, "bundle %s", "a-1.zip"),
			 -(int)TN_E_ARCHIVE_SYMLINK);
	assert_string_equal(err.message, "bundle a-1.zip: entry lib/x is a symlink");
}

static void test_every_code_has_a_distinct_name(void **state)
{
	for (int a = TN_OK; a < TN_E_COUNT; a++) {
		int status = tn_errcode_http_status((enum tn_errcode)a);

		assert_true(status >= 200 && status < 600);
		for (int b = a + 1; b < TN_E_COUNT; b++)
			assert_string_not_equal(tn_errcode_name((enum tn_errcode)a),
						tn_errcode_name((enum tn_errcode)b));
	}
	assert_string_equal(tn_errcode_name((enum tn_errcode)999), "internal");
}

static void test_message_is_truncated_not_overflowed(void **state)
{
	struct tn_error err;
	char big[2 * TN_ERROR_MESSAGE_MAX];

	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	tn_fail(&err, TN_E_INVALID, "%s", big);
	assert_int_equal(strlen(err.message), TN_ERROR_MESSAGE_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fail_fills_code_and_message),
		cmocka_unit_test(test_fail_accepts_null_error),
		cmocka_unit_test(test_fail_errno_appends_strerror),
		cmocka_unit_test(test_prefix_adds_context),
		cmocka_unit_test(test_every_code_has_a_distinct_name),
		cmocka_unit_test(test_message_is_truncated_not_overflowed),
	};
	return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
