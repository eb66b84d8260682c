/* test_json.c - strict JSON reading: duplicates, unknown keys, types, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "json.h"

static json_t *parse_ok(const char *text)
{
	json_t *root = NULL;
	struct tn_error err;

	assert_int_equal(tn_json_parse_object(text, strlen(text), &root, &err), 0);
	return root;
}

static void test_malformed_names_line_and_column(void **state)
{
	json_t *root = NULL;
	struct tn_error err;
	const char *text = "{\n  \"a\": 1,\n  \"b\": }";

	assert_int_not_equal(tn_json_parse_object(text, strlen(text), &root, &err), 0);
	assert_int_equal(err.code, TN_E_JSON);
	assert_non_null(strstr(err.message, "line 3"));
	assert_null(root);
}

static void test_duplicate_keys_refused(void **state)
{
	json_t *root = NULL;
	struct tn_error err;
	const char *text = "{\"a\": 1, \"a\": 2}";

	assert_int_not_equal(tn_json_parse_object(text, strlen(text), &root, &err), 0);
	assert_non_null(strstr(err.message, "duplicate"));
}

static void test_top_level_must_be_object(void **state)
{
	json_t *root = NULL;
	struct tn_error err;

	assert_int_not_equal(tn_json_parse_object("[1]", 3, &root, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
}

static void test_unknown_key_named(void **state)
{
	static const char *const allowed[] = {"name", "version", NULL};
	json_t *root = parse_ok("{\"name\": \"x\", \"colour\": 3}");
	struct tn_error err;

	assert_int_not_equal(tn_json_check_keys(root, "run", allowed, &err), 0);
	assert_string_equal(err.message, "run.colour: unknown field");
	json_decref(root);
}

static void test_typed_getters(void **state)
{
	json_t *root = parse_ok("{\"s\": \"v\", \"i\": 7, \"b\": false, \"o\": {}, \"a\": []}");
	struct tn_error err;
	const char *s = NULL;
	json_int_t i = 0;
	bool b = true;
	json_t *o = NULL, *a = NULL;

	assert_int_equal(tn_json_get_string(root, NULL, "s", true, &s, &err), 0);
	assert_string_equal(s, "v");
	assert_int_equal(tn_json_get_int(root, NULL, "i", true, 0, 10, &i, &err), 0);
	assert_int_equal(i, 7);
	assert_int_equal(tn_json_get_bool(root, NULL, "b", true, &b, &err), 0);
	assert_false(b);
	assert_int_equal(tn_json_get_object(root, NULL, "o", true, &o, &err), 0);
	assert_true(json_is_object(o));
	assert_int_equal(tn_json_get_array(root, NULL, "a", true, &a, &err), 0);
	assert_true(json_is_array(a));
	json_decref(root);
}

static void test_getter_errors_name_the_field(void **state)
{
	json_t *root = parse_ok("{\"s\": 1, \"i\": 70}");
	struct tn_error err;
	const char *s = "default";
	json_int_t i = 5;

	assert_int_not_equal(tn_json_get_string(root, "health", "s", false, &s, &err), 0);
	assert_string_equal(err.message, "health.s: must be a string");
	assert_int_not_equal(tn_json_get_int(root, "health", "i", false, 0, 10, &i, &err), 0);
	assert_string_equal(err.message, "health.i: 70 is out of range [0, 10]");
	assert_int_not_equal(tn_json_get_string(root, "", "missing", true, &s, &err), 0);
	assert_string_equal(err.message, "missing: is required");
	assert_int_equal(tn_json_get_string(root, "", "missing", false, &s, &err), 0);
	assert_string_equal(s, "default");
	assert_int_equal(i, 5);
	json_decref(root);
}

static void test_canonical_sorts_keys(void **state)
{
	json_t *root = parse_ok("{\"b\": {\"z\": 1, \"a\": [true, null]}, \"a\": \"x\"}");
	char *c = tn_json_canonical(root);
	char *p = tn_json_path_index("run.command", 2);

	assert_string_equal(c, "{\"a\":\"x\",\"b\":{\"a\":[true,null],\"z\":1}}");
	assert_string_equal(p, "run.command[2]");
	free(c);
	free(p);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed_names_line_and_column),
		cmocka_unit_test(test_duplicate_keys_refused),
		cmocka_unit_test(test_top_level_must_be_object),
		cmocka_unit_test(test_unknown_key_named),
		cmocka_unit_test(test_typed_getters),
		cmocka_unit_test(test_getter_errors_name_the_field),
		cmocka_unit_test(test_canonical_sorts_keys),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
