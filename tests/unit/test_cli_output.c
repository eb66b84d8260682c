/* test_cli_output.c - what `tender` prints (cli/output.c): values made safe
 * for a terminal, aligned tables, "Label: value" blocks, sizes, and the
 * paths and queries of its requests (cli/api.c, cli/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "fsutil.h"
#include "harness.h"
#include "output.h"
#include "xalloc.h"

/* What fn(arg) prints on stdout; caller frees. */
static char *captured(void (*fn)(void *), void *arg)
{
	char *dir = th_tmpdir(), *path = xasprintf("%s/out", dir), *text = NULL;
	FILE *f = fopen(path, "w+");
	size_t len = 0;
	int saved;

	assert_non_null(f);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fileno(f), STDOUT_FILENO);
	fn(arg);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	fclose(f);
	assert_int_equal(tn_read_file(path, 1 << 20, &text, &len, NULL), 0);
	th_rmtree(dir);
	free(dir);
	free(path);
	return text;
}

static void test_text_of_values(void **state)
{
	static const struct {
		const char *json;
		const char *text;
	} cases[] = {
	    {"\"plain\"", "plain"},
	    {"\"tab\\there\"", "tab\\x09here"},
	    {"\"\\u001b]0;owned\\u0007\"", "\\x1b]0;owned\\x07"},
	    {"\"caf\\u00e9\"", "caf\xc3\xa9"},
	    {"null", "-"},
	    {"42", "42"},
	    {"true", "true"},
	    {"{\"a\": [1, \"\\u001b\"]}", "{\"a\":[1,\"\\u001B\"]}"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		char *text = cli_text(v);

		assert_non_null(v);
		assert_string_equal(text, cases[i].text);
		free(text);
		json_decref(v);
	}
	{
		char *text = cli_text(NULL);

		assert_string_equal(text, "-");
		free(text);
	}
}

static void test_json_at(void **state)
{
	json_t *obj = json_loads("{\"a\": {\"b\": {\"c\": 3}}, \"s\": \"x\"}", 0, NULL);

	(void)state;
	assert_int_equal(json_integer_value(cli_json_at(obj, "a.b.c")), 3);
	assert_true(json_is_object(cli_json_at(obj, "a.b")));
	assert_null(cli_json_at(obj, "a.x.c"));
	assert_null(cli_json_at(obj, "s.t"));
	assert_null(cli_json_at(NULL, "a"));
	json_decref(obj);
}

static char *upper_name(json_t *item)
{
	const char *name = json_string_value(json_object_get(item, "name"));
	char *out = xstrdup(name ? name : "?");

	for (char *p = out; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return out;
}

static void print_table(void *arg)
{
	static const struct cli_column columns[] = {
	    {"NAME", "name", NULL},
	    {"SIZE", "meta.size", NULL},
	    {"LOUD", NULL, upper_name},
	    {NULL, NULL, NULL},
	};

	cli_print_table(arg, columns);
}

static void test_table_aligned(void **state)
{
	json_t *items = json_loads("[{\"name\": \"web\", \"meta\": {\"size\": 12345}},"
				   " {\"name\": \"caf\\u00e9-worker\"},"
				   " {\"name\": \"x\\u001by\", \"meta\": {\"size\": 1}}]",
				   0, NULL);
	json_t *empty = json_array();
	char *out;

	(void)state;
	out = captured(print_table, items);
	assert_string_equal(out, "NAME         SIZE   LOUD\n"
				 "web          12345  WEB\n"
				 "caf\xc3\xa9-worker  -      CAF\xc3\xa9-WORKER\n"
				 "x\\x1by       1      X\\x1bY\n");
	free(out);
	/* no items: the header alone */
	out = captured(print_table, empty);
	assert_string_equal(out, "NAME  SIZE  LOUD\n");
	free(out);
	json_decref(items);
	json_decref(empty);
}

static void print_fields(void *arg)
{
	static const struct cli_field fields[] = {
	    {"Name", "name"},
	    {"Missing", "nope"},
	    {"Created by", "by"},
	    {NULL, NULL},
	};

	cli_print_fields(arg, fields);
}

static void test_fields_aligned(void **state)
{
	json_t *obj = json_loads("{\"name\": \"educa\", \"by\": null}", 0, NULL);
	char *out;

	(void)state;
	out = captured(print_fields, obj);
	assert_string_equal(out, "Name:        educa\n"
				 "Created by:  -\n");
	free(out);
	json_decref(obj);
}

static void test_sizes(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(cli_size(0, buf, sizeof buf), "0 B");
	assert_string_equal(cli_size(1023, buf, sizeof buf), "1023 B");
	assert_string_equal(cli_size(1536, buf, sizeof buf), "1.5 KiB");
	assert_string_equal(cli_size(3.0 * 1024 * 1024, buf, sizeof buf), "3.0 MiB");
	assert_string_equal(cli_size(5.0 * 1024 * 1024 * 1024 * 1024 * 1024, buf, sizeof buf),
			    "5120.0 TiB");
}

static void test_paths_and_queries(void **state)
{
	char *p;

	(void)state;
	p = cli_path("/api/v1/bundles/%s/%s", "org.educa.web", "1.0.0");
	assert_string_equal(p, "/api/v1/bundles/org.educa.web/1.0.0");
	free(p);
	p = cli_path("/api/v1/targets/%s/logs", "../../x y?z#%");
	assert_string_equal(p, "/api/v1/targets/..%2F..%2Fx%20y%3Fz%23%25/logs");
	cli_query(&p, "bundle", "a&b=c");
	cli_query(&p, "lines", NULL);
	cli_query(&p, "lines", "5");
	assert_string_equal(p, "/api/v1/targets/..%2F..%2Fx%20y%3Fz%23%25/logs?bundle=a%26b%3Dc"
			       "&lines=5");
	free(p);
	p = cli_url_escape("A-Za-z0-9-._~\xc3\xa9");
	assert_string_equal(p, "A-Za-z0-9-._~%C3%A9");
	free(p);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_text_of_values),
	    T(test_json_at),
	    T(test_table_aligned),
	    T(test_fields_aligned),
	    T(test_sizes),
	    T(test_paths_and_queries),
	};
#undef T
	return cmocka_run_group_tests_name("cli_output", tests, NULL, NULL);
}
