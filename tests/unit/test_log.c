/* test_log.c - log lines: text key=value with quoting, JSON with types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static char *buf;
static size_t len;
static FILE *mem;

static int setup(void **state)
{
	mem = open_memstream(&buf, &len);
	tn_log_set_stream(mem);
	tn_log_set_json(false);
	tn_log_set_level(TN_LOG_INFO);
	return 0;
}

static int teardown(void **state)
{
	fclose(mem);
	free(buf);
	buf = NULL;
	tn_log_set_stream(NULL);
	return 0;
}

static void test_text_line(void **state)
{
	tn_log(TN_LOG_INFO, "store", "opened", "{s:s, s:I}", "path", "/var/x", "size", (json_int_t)12);
	fflush(mem);
	assert_string_equal(buf, "info store event=opened path=/var/x size=12\n");
}

static void test_text_quotes_spaces_and_newlines(void **state)
{
	tn_log(TN_LOG_WARN, "http", "refused", "{s:s}", "message", "bad \"x\"\nnext");
	fflush(mem);
	assert_string_equal(buf, "warn http event=refused message=\"bad \\\"x\\\"\\x0anext\"\n");
}

static void test_level_filter(void **state)
{
	tn_log(TN_LOG_DEBUG, "x", "hidden", NULL);
	fflush(mem);
	assert_int_equal(len, 0);
	tn_log_set_level(TN_LOG_DEBUG);
	tn_log(TN_LOG_DEBUG, "x", "shown", NULL);
	fflush(mem);
	assert_string_equal(buf, "debug x event=shown\n");
}

static void test_json_line_keeps_types(void **state)
{
	json_t *line;
	json_error_t jerr;

	tn_log_set_json(true);
	tn_log(TN_LOG_ERROR, "agent", "probe_failed", "{s:i, s:b}", "status", 503, "final", 1);
	fflush(mem);
	line = json_loads(buf, 0, &jerr);
	assert_non_null(line);
	assert_string_equal(json_string_value(json_object_get(line, "level")), "error");
	assert_string_equal(json_string_value(json_object_get(line, "component")), "agent");
	assert_string_equal(json_string_value(json_object_get(line, "event")), "probe_failed");
	assert_int_equal(json_integer_value(json_object_get(line, "status")), 503);
	assert_true(json_is_true(json_object_get(line, "final")));
	assert_non_null(json_object_get(line, "ts"));
	json_decref(line);
}

static void test_level_parse(void **state)
{
	assert_int_equal(tn_log_level_parse("warn"), TN_LOG_WARN);
	assert_int_equal(tn_log_level_parse("loud"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_quotes_spaces_and_newlines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_line_keeps_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_parse, setup, teardown),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
