/* test_template.c - `{{name}}` rendering and name listing: spaces in braces,
 * literal lone braces, errors naming the name and line, the output cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BIG (1 << 20)

/* The lookup the tests render with: a fixed table, as the agent's merged
 * config plus built-ins would be. */
static const char *lookup(const char *name, void *ctx)
{
	static const struct {
		const char *name, *value;
	} vars[] = {
		{"target.port_base", "8080"},
		{"cluster.name", "educa"},
		{"greeting", "hello"},
		{"a", "A"},
		{"empty", ""},
		{"braces", "{{greeting}}"},
		{"x-y_z.0", "ok"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		if (strcmp(vars[i].name, name) == 0)
			return vars[i].value;
	return NULL;
}

static void assert_renders(const char *tmpl, const char *want)
{
	struct tn_error err;
	char *out = NULL;
	size_t len = 0;

	if (tn_template_render(tmpl, strlen(tmpl), lookup, NULL, BIG, &out, &len, &err) != 0)
		fail_msg("template \"%s\" refused: %s", tmpl, err.message);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	free(out);
}

/* Renders tmpl expecting failure with code, and a message containing each of
 * the NULL-terminated fragments. */
static void assert_fails(const char *tmpl, size_t len, enum tn_errcode code, ...)
{
	struct tn_error err;
	char *out = (char *)"untouched";
	va_list ap;
	const char *frag;
	int rc = tn_template_render(tmpl, len, lookup, NULL, BIG, &out, NULL, &err);

	if (rc == 0)
		fail_msg("template \"%s\" accepted", tmpl);
	assert_int_equal(rc, -(int)code);
	assert_int_equal(err.code, code);
	assert_null(out);
	va_start(ap, code);
	while ((frag = va_arg(ap, const char *)) != NULL)
		if (!strstr(err.message, frag))
			fail_msg("template \"%s\": message \"%s\" lacks \"%s\"", tmpl, err.message,
				 frag);
	va_end(ap);
}

static void test_render_substitutes(void **state)
{
	assert_renders("", "");
	assert_renders("no names here", "no names here");
	assert_renders("{{greeting}}", "hello");
	assert_renders("port={{target.port_base}} cluster={{cluster.name}}\n",
		       "port=8080 cluster=educa\n");
	assert_renders("{{a}}{{a}}{{a}}", "AAA");
	assert_renders("[{{empty}}]", "[]");
	assert_renders("{{x-y_z.0}}", "ok");
	assert_renders("multi\nline {{a}}\n{{greeting}}\n", "multi\nline A\nhello\n");
}

static void test_render_spaces_in_braces(void **state)
{
	assert_renders("{{ greeting }}", "hello");
	assert_renders("{{greeting }}", "hello");
	assert_renders("{{   greeting}}", "hello");
	assert_renders("<{{ a }}|{{a}}>", "<A|A>");
}

static void test_render_lone_braces_are_text(void **state)
{
	assert_renders("{", "{");
	assert_renders("}", "}");
	assert_renders("}}", "}}");
	assert_renders("a } b }} c", "a } b }} c");
	assert_renders("{a} { } {x", "{a} { } {x");
	assert_renders("{ {a}}", "{ {a}}");
	assert_renders("text{", "text{");
	assert_renders("{\"port\": {{target.port_base}}}", "{\"port\": 8080}");
	assert_renders("server { listen {{target.port_base}}; }", "server { listen 8080; }");
	assert_renders("{{a}}}", "A}");
	assert_renders("{{{a}}}", "{A}");
	assert_renders("{{{{a}}", "{{A");
}

static void test_render_does_not_rerender_values(void **state)
{
	assert_renders("{{braces}}", "{{greeting}}");
}

static void test_render_unknown_name(void **state)
{
	assert_fails("{{foo}}", 7, TN_E_INVALID, "unknown template name \"{{foo}}\"",
		     "line 1, column 1", NULL);
	assert_fails("ok {{a}}\nport {{ foo.bar }}\n", 28, TN_E_INVALID,
		     "unknown template name \"{{foo.bar}}\"", "line 2, column 6", NULL);
	/* Unknown is an error even when the value would be empty. */
	assert_fails("{{Greeting}}", 12, TN_E_INVALID, "\"{{Greeting}}\"", NULL);
}

static void test_render_unterminated(void **state)
{
	assert_fails("{{", 2, TN_E_INVALID, "unterminated \"{{\"", "line 1, column 1", NULL);
	assert_fails("abc\nx {{foo", 11, TN_E_INVALID, "unterminated \"{{\"", "line 2, column 3",
		     NULL);
	assert_fails("{{foo}", 6, TN_E_INVALID, "unterminated", NULL);
	assert_fails("{{a}} {{foo } }", 15, TN_E_INVALID, "unterminated", "column 7", NULL);
}

static void test_render_malformed_names(void **state)
{
	assert_fails("{{}}", 4, TN_E_INVALID, "empty template name \"{{}}\"", NULL);
	assert_fails("x{{  }}", 7, TN_E_INVALID, "empty template name \"{{  }}\"", "column 2",
		     NULL);
	assert_fails("{{a b}}", 7, TN_E_INVALID, "space inside template name \"{{a b}}\"", NULL);
	assert_fails("{{a/b}}", 7, TN_E_INVALID, "invalid character '/'", "\"{{a/b}}\"", NULL);
	assert_fails("{{a\nb}}", 7, TN_E_INVALID, "invalid character '\\x0a'",
		     "\"{{a\\x0ab}}\"", "line 1", NULL);
	assert_fails("{{a\"}}", 6, TN_E_INVALID, "\"{{a\\\"}}\"", NULL);
	assert_fails("{{ {a} }}", 9, TN_E_INVALID, "invalid character '{'", NULL);
}

static void test_render_nul_bytes(void **state)
{
	static const char text[] = "a\0b{{a}}\0c";
	static const char inside[] = "{{a\0b}}";
	struct tn_error err;
	char *out = NULL;
	size_t len = 0;

	/* NUL in literal text is copied: len, not strlen, is the truth. */
	assert_int_equal(tn_template_render(text, sizeof text - 1, lookup, NULL, BIG, &out, &len,
					    &err),
			 0);
	assert_int_equal(len, 6);
	assert_memory_equal(out, "a\0bA\0c", 7);
	free(out);

	/* Inside braces it is refused. */
	assert_fails(inside, sizeof inside - 1, TN_E_INVALID, "NUL byte in template name",
		     "\"{{a\\x00b}}\"", NULL);
}

static void test_render_honours_len(void **state)
{
	/* Not NUL-terminated at len: the bytes after it must not be read. */
	char buf[] = {'x', '{', '{', 'a', '}', '}', '{', '{'};
	struct tn_error err;
	char *out = NULL;

	assert_int_equal(tn_template_render(buf, 6, lookup, NULL, BIG, &out, NULL, &err), 0);
	assert_string_equal(out, "xA");
	free(out);
	/* A "{{" cut by len is unterminated even if "}}" follows in memory. */
	assert_fails("{{a}}", 4, TN_E_INVALID, "unterminated", NULL);
}

static void test_render_output_cap(void **state)
{
	const char *tmpl = "<{{greeting}}>"; /* renders to 7 bytes */
	struct tn_error err;
	char *out = NULL;
	size_t len = 0;
	static char big[10000];
	int rc;

	assert_int_equal(tn_template_render(tmpl, strlen(tmpl), lookup, NULL, 7, &out, &len,
					    &err),
			 0);
	assert_string_equal(out, "<hello>");
	free(out);

	out = (char *)"untouched";
	rc = tn_template_render(tmpl, strlen(tmpl), lookup, NULL, 6, &out, &len, &err);
	assert_int_equal(rc, -(int)TN_E_TOO_LARGE);
	assert_int_equal(err.code, TN_E_TOO_LARGE);
	assert_non_null(strstr(err.message, "larger than 6 bytes"));
	assert_null(out);

	/* Literal text alone can overflow too; and max_out 0 allows only "". */
	memset(big, 'x', sizeof big);
	rc = tn_template_render(big, sizeof big, lookup, NULL, 9999, &out, &len, &err);
	assert_int_equal(rc, -(int)TN_E_TOO_LARGE);
	assert_int_equal(tn_template_render(big, 10000, lookup, NULL, 10000, &out, &len, &err),
			 0);
	assert_int_equal(len, 10000);
	assert_int_equal(out[10000], '\0');
	free(out);
	assert_int_equal(tn_template_render("{{empty}}", 9, lookup, NULL, 0, &out, &len, &err), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(tn_template_render("{{a}}", 5, lookup, NULL, 0, &out, &len, &err),
			 -(int)TN_E_TOO_LARGE);
}

/* ---------------------------------------------------------------- names */

struct collected {
	char names[8][TN_TEMPLATE_NAME_MAX + 1];
	int count;
	int fail_at; /* fail on this call (0-based); -1 never */
};

static int collect(const char *name, void *ctx, struct tn_error *err)
{
	struct collected *c = ctx;

	if (c->count == c->fail_at)
		return tn_fail(err, TN_E_NOT_FOUND, "no such key %s", name);
	assert_true(c->count < (int)ARRAY_SIZE(c->names));
	snprintf(c->names[c->count++], sizeof c->names[0], "%s", name);
	return 0;
}

static void test_names_in_order(void **state)
{
	const char *tmpl = "{{b}} {x} {{ a.b-c }}\n}} {{b}}{{{z}}}";
	struct collected c = {.fail_at = -1};
	struct tn_error err;

	assert_int_equal(tn_template_names(tmpl, strlen(tmpl), collect, &c, &err), 0);
	assert_int_equal(c.count, 4);
	assert_string_equal(c.names[0], "b");
	assert_string_equal(c.names[1], "a.b-c");
	assert_string_equal(c.names[2], "b");
	assert_string_equal(c.names[3], "z");

	c.count = 0;
	assert_int_equal(tn_template_names("no names", 8, collect, &c, &err), 0);
	assert_int_equal(c.count, 0);
}

static void test_names_stop_on_callback_failure(void **state)
{
	const char *tmpl = "{{one}} {{two}} {{three}}";
	struct collected c = {.fail_at = 1};
	struct tn_error err;

	assert_int_equal(tn_template_names(tmpl, strlen(tmpl), collect, &c, &err),
			 -(int)TN_E_NOT_FOUND);
	assert_int_equal(c.count, 1);
	assert_string_equal(c.names[0], "one");
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_string_equal(err.message, "no such key two");
}

static void test_names_malformed(void **state)
{
	const char *tmpl = "{{ok}}\n{{bad name}}";
	struct collected c = {.fail_at = -1};
	struct tn_error err;

	assert_int_equal(tn_template_names(tmpl, strlen(tmpl), collect, &c, &err),
			 -(int)TN_E_INVALID);
	assert_non_null(strstr(err.message, "\"{{bad name}}\" at line 2, column 1"));
	assert_int_equal(c.count, 1);
	assert_int_equal(tn_template_names("x {{y", 5, collect, &c, &err), -(int)TN_E_INVALID);
	assert_non_null(strstr(err.message, "unterminated"));
}

static void test_name_length_cap(void **state)
{
	char tmpl[TN_TEMPLATE_NAME_MAX + 8];
	struct collected c = {.fail_at = -1};
	struct tn_error err;
	size_t n;

	/* Exactly the longest name is fine... */
	memcpy(tmpl, "{{", 2);
	memset(tmpl + 2, 'n', TN_TEMPLATE_NAME_MAX);
	memcpy(tmpl + 2 + TN_TEMPLATE_NAME_MAX, "}}", 2);
	n = TN_TEMPLATE_NAME_MAX + 4;
	assert_int_equal(tn_template_names(tmpl, n, collect, &c, &err), 0);
	assert_int_equal(strlen(c.names[0]), TN_TEMPLATE_NAME_MAX);

	/* ...one more is refused, with the quoted name cut short. */
	memset(tmpl + 2, 'n', TN_TEMPLATE_NAME_MAX + 1);
	memcpy(tmpl + 3 + TN_TEMPLATE_NAME_MAX, "}}", 2);
	assert_int_equal(tn_template_names(tmpl, n + 1, collect, &c, &err), -(int)TN_E_INVALID);
	assert_non_null(strstr(err.message, "is longer than 255 characters"));
	assert_non_null(strstr(err.message, "...\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_substitutes),
		cmocka_unit_test(test_render_spaces_in_braces),
		cmocka_unit_test(test_render_lone_braces_are_text),
		cmocka_unit_test(test_render_does_not_rerender_values),
		cmocka_unit_test(test_render_unknown_name),
		cmocka_unit_test(test_render_unterminated),
		cmocka_unit_test(test_render_malformed_names),
		cmocka_unit_test(test_render_nul_bytes),
		cmocka_unit_test(test_render_honours_len),
		cmocka_unit_test(test_render_output_cap),
		cmocka_unit_test(test_names_in_order),
		cmocka_unit_test(test_names_stop_on_callback_failure),
		cmocka_unit_test(test_names_malformed),
		cmocka_unit_test(test_name_length_cap),
	};
	return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
