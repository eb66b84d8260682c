/* test_lb_haproxy.c - the `haproxy` driver's reading of `show stat`
 * answers (the driver against a real HAProxy is in
 * tests/integration/test_lb.c), and the driver table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lb.h"
#include "lb_haproxy.h"
#include "xalloc.h"

/* A real HAProxy 2.6 header, cut after the fields that matter and some. */
#define HEADER                                                                                     \
	"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"      \
	"wretr,wredis,status,weight,act,bck,addr,\n"

static void test_members_of_the_backend(void **state)
{
	char *text = xstrdup(HEADER
			     "educa,t-aaa,0,0,3,5,,9,0,0,,0,,0,0,0,0,UP,1,1,0,127.0.0.1:20000,\n"
			     "educa,t-bbb,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN (agent),1,1,0,"
			     "127.0.0.1:20010,\n"
			     "educa,static1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,10.0.0.1:80,\n"
			     "other,t-ccc,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,127.0.0.1:1,\n"
			     "educa,t-ddd,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,[::1]:20020,\n"
			     "\n");
	struct tn_lb_member *m = NULL;
	size_t n = 0;
	struct tn_error err;

	(void)state;
	assert_int_equal(tn_haproxy_parse_stat(text, "educa", &m, &n, &err), 0);
	/* not the static server, not another backend's */
	assert_int_equal(n, 3);
	assert_string_equal(m[0].name, "t-aaa");
	assert_string_equal(m[0].addr, "127.0.0.1:20000");
	assert_string_equal(m[0].status, "UP");
	assert_int_equal(m[0].sessions, 3);
	assert_false(m[0].draining);
	assert_string_equal(m[1].status, "DRAIN (agent)");
	assert_true(m[1].draining);
	assert_string_equal(m[2].addr, "[::1]:20020");
	assert_true(m[2].draining);
	tn_lb_members_free(m, n);
	free(text);
}

static void test_an_empty_backend(void **state)
{
	char *text = xstrdup(HEADER "\n");
	struct tn_lb_member *m = NULL;
	size_t n = 1;
	struct tn_error err;

	(void)state;
	assert_int_equal(tn_haproxy_parse_stat(text, "educa", &m, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(m);
	free(text);
}

static void test_answers_that_are_not_a_table(void **state)
{
	static const char *const bad[] = {
	    "Unknown command.\nt-a,1,2\n",
	    /* a header without the columns the driver needs */
	    "# pxname,svname,qcur\neduca,t-a,0\n",
	};
	struct tn_error err;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *text = xstrdup(bad[i]);
		struct tn_lb_member *m = NULL;
		size_t n = 0;

		assert_true(tn_haproxy_parse_stat(text, "educa", &m, &n, &err) < 0);
	assert_int_equal(err.code, TN_E_INVALID);
		assert_non_null(strstr(err.message, "show stat"));
		assert_null(m);
		free(text);
	}
}

static void test_short_lines_are_skipped(void **state)
{
	char *text = xstrdup(HEADER "educa,t-a,0\n"
				    "educa,t-b,0,0,1,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,1.2.3.4:5,\n");
	struct tn_lb_member *m = NULL;
	size_t n = 0;
	struct tn_error err;

	(void)state;
	assert_int_equal(tn_haproxy_parse_stat(text, "educa", &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].name, "t-b");
	tn_lb_members_free(m, n);
	free(text);
}

/* `show backend`: the name on a line of its own, after the "# name" header;
 * another answer is HAProxy refusing the command. */
static void test_show_backend(void **state)
{
	static const struct {
		const char *reply;
		int rc;
	} cases[] = {
	    {"# name\nstats\neduca\n", 0},
	    {"# name\nstats\neduca-old\n", -TN_E_NOT_FOUND},
	    {"# name\n", -TN_E_NOT_FOUND},
	    {"Unknown command.\neduca\n", -TN_E_CONFLICT},
	    {"", -TN_E_CONFLICT},
	};
	struct tn_error err;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *text = xstrdup(cases[i].reply);

		assert_int_equal(tn_haproxy_parse_backends(text, "educa", &err), cases[i].rc);
		if (cases[i].rc == -TN_E_NOT_FOUND)
			assert_string_equal(err.message, "HAProxy has no backend educa");
		if (cases[i].rc == -TN_E_CONFLICT)
			assert_non_null(strstr(err.message, "refused \"show backend\""));
		free(text);
	}
}

static void test_drivers_by_name(void **state)
{
	json_t *none = json_pack("{s:s}", "driver", "none");
	json_t *hx = json_pack("{s:s}", "driver", "haproxy");
	json_t *other = json_pack("{s:s}", "driver", "f5");

	(void)state;
	assert_string_equal(tn_lb_driver(NULL)->name, "none");
	assert_string_equal(tn_lb_driver(none)->name, "none");
	assert_ptr_equal(tn_lb_driver(hx), &tn_lb_haproxy);
	assert_null(tn_lb_driver(other));
	json_decref(none);
	json_decref(hx);
	json_decref(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_members_of_the_backend),
		cmocka_unit_test(test_an_empty_backend),
		cmocka_unit_test(test_answers_that_are_not_a_table),
		cmocka_unit_test(test_short_lines_are_skipped),
		cmocka_unit_test(test_show_backend),
		cmocka_unit_test(test_drivers_by_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
