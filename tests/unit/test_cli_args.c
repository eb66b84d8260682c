/* test_cli_args.c - the command line of `tender` (cli/args.c): the option
 * reader against option tables, the value syntaxes (counts, durations,
 * NAME@VER, load-balancer bindings, rollout strategies), and the command
 * tables themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "xalloc.h"

static const struct cli_option options[] = {
	{"cluster", 'c', "CLUSTER", "the cluster"},
	{"bundle", 'b', "NAME@VER", "a bundle"},
	{"force", 'f', NULL, "a flag"},
	{NULL, 0, NULL, NULL},
};

static int parse(const char *const *argv_in, struct cli_args *a, struct cli_globals *g,
		 struct tn_error *err)
{
	int argc = 0;

	while (argv_in[argc])
		argc++;
	memset(g, 0, sizeof *g);
	return cli_args_parse(options, argc, (char **)argv_in, false, a, g, err);
}

static void test_options_in_any_order(void **state)
{
	const char *argv[] = {"one",	  "--cluster", "c1",	  "-b",		  "x@1",
			      "--bundle=y@2", "-bz@3", "two", "-f", "--server", "http://s",
			      "-o",	      "json",  "--",  "--not-an-option", NULL};
	struct cli_globals g;
	struct cli_args a;
	struct tn_error err;
	const char *const *values;
	size_t n;

	(void)state;
	assert_int_equal(parse(argv, &a, &g, &err), 0);
	assert_int_equal(a.pos.n, 3);
	assert_string_equal(cli_pos(&a, 0), "one");
	assert_string_equal(cli_pos(&a, 1), "two");
	assert_string_equal(cli_pos(&a, 2), "--not-an-option");
	assert_null(cli_pos(&a, 3));
	assert_string_equal(cli_arg(&a, "cluster"), "c1");
	values = cli_arg_all(&a, "bundle", &n);
	assert_int_equal(n, 3);
	assert_string_equal(values[0], "x@1");
	assert_string_equal(values[1], "y@2");
	assert_string_equal(values[2], "z@3");
	assert_string_equal(cli_arg(&a, "bundle"), "z@3"); /* the last one */
	assert_true(cli_flag(&a, "force"));
	assert_string_equal(g.server, "http://s");
	assert_string_equal(g.output, "json");
	assert_null(g.token);
	assert_false(g.help);
	cli_args_free(&a);
}

static void test_usage_errors_name_the_option(void **state)
{
	static const struct {
		const char *argv[4];
		const char *message;
	} cases[] = {
	    {{"--colour", NULL}, "unknown option --colour"},
	    {{"-x", NULL}, "unknown option -x"},
	    {{"--cluster", NULL}, "option --cluster needs a value (CLUSTER)"},
	    {{"-c", NULL}, "option --cluster needs a value (CLUSTER)"},
	    {{"--force=yes", NULL}, "option --force takes no value"},
	    {{"--help=me", NULL}, "option --help takes no value"},
	};
	struct cli_globals g;
	struct cli_args a;
	struct tn_error err;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_not_equal(parse(cases[i].argv, &a, &g, &err), 0);
		assert_int_equal(err.code, TN_E_INVALID);
		assert_string_equal(err.message, cases[i].message);
		cli_args_free(&a);
	}
}

static void test_stop_at_positional(void **state)
{
	const char *argv[] = {"--token", "t", "-h", "bundle", "ls", "--server", "s", NULL};
	struct cli_globals g = {0};
	struct cli_args a;
	struct tn_error err;

	(void)state;
	assert_int_equal(cli_args_parse(NULL, 7, (char **)argv, true, &a, &g, &err), 0);
	assert_int_equal(a.next, 3);
	assert_string_equal(g.token, "t");
	assert_true(g.help);
	assert_null(g.server);
	/* --version: the program's before the noun, a command's after it */
	{
		static const struct cli_option dist[] = {{"version", 0, "V", "its version"},
							 {NULL, 0, NULL, NULL}};
		const char *pre[] = {"--version", NULL}, *after[] = {"--version", "1.0", NULL};

		memset(&g, 0, sizeof g);
		assert_int_equal(cli_args_parse(NULL, 1, (char **)pre, true, &a, &g, &err), 0);
		assert_true(g.version);
		cli_args_free(&a);
		memset(&g, 0, sizeof g);
		assert_int_equal(cli_args_parse(dist, 2, (char **)after, false, &a, &g, &err), 0);
		assert_false(g.version);
		assert_string_equal(cli_arg(&a, "version"), "1.0");
		cli_args_free(&a);
		assert_int_not_equal(cli_args_parse(NULL, 1, (char **)pre, false, &a, &g, &err), 0);
		assert_string_equal(err.message, "unknown option --version");
	}
	/* a lone "-" is an argument (stdin), not an option */
	cli_args_free(&a);
	{
		const char *argv2[] = {"-", NULL};

		assert_int_equal(parse(argv2, &a, &g, &err), 0);
		assert_string_equal(cli_pos(&a, 0), "-");
		cli_args_free(&a);
	}
}

static void test_numbers(void **state)
{
	struct tn_error err;
	long v = -1;

	(void)state;
	assert_int_equal(cli_parse_long("10", "--n", 1, 100, &v, &err), 0);
	assert_int_equal(v, 10);
	assert_int_equal(cli_parse_long("0", "--n", 0, 0, &v, &err), 0);
	assert_int_equal(v, 0);
	for (const char *const *bad = (const char *const[]){"", "-1", "+3", "1e1", " 1", "1 ",
							    "101", "99999999999999999999", "x",
							    NULL};
	     *bad; bad++) {
		v = 7;
		assert_int_not_equal(cli_parse_long(*bad, "--n", 1, 100, &v, &err), 0);
		assert_int_equal(v, 7);
		assert_non_null(strstr(err.message, "--n: \""));
		assert_non_null(strstr(err.message, "is not a number from 1 to 100"));
	}
}

static void test_durations(void **state)
{
	static const struct {
		const char *text;
		long long seconds;
	} good[] = {{"1", 1},	    {"90", 90},	      {"90s", 90},	   {"15m", 900},
		    {"12h", 43200}, {"1d", 86400},    {"2w", 1209600},	   {"1h30m", 5400},
		    {"1d1s", 86401}, {"3600", 3600}, {"0h1s", 1}};
	static const char *const bad[] = {"",	  "0",	 "0s",	"s",   "1x",	"1h30",
					  "-5",	  "1.5h", " 1", "1 h", "h1",	"99999999999w",
					  "1h-1m"};
	struct tn_error err;
	long long s;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		s = -1;
		if (cli_parse_duration(good[i].text, &s, &err) != 0)
			fail_msg("\"%s\": %s", good[i].text, err.message);
		assert_int_equal(s, good[i].seconds);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s = -1;
		if (cli_parse_duration(bad[i], &s, &err) == 0)
			fail_msg("\"%s\" was taken as %lld s", bad[i], s);
		assert_int_equal(s, -1);
		assert_non_null(strstr(err.message, "duration \""));
	}
}

static void test_refs(void **state)
{
	struct tn_error err;
	char *name = NULL, *version = NULL;

	(void)state;
	assert_int_equal(cli_parse_ref("educa@1.1", &name, &version, &err), 0);
	assert_string_equal(name, "educa");
	assert_string_equal(version, "1.1");
	free(name);
	free(version);
	/* split at the last '@' */
	assert_int_equal(cli_parse_ref("a@b@2", &name, &version, &err), 0);
	assert_string_equal(name, "a@b");
	assert_string_equal(version, "2");
	free(name);
	free(version);
	for (const char *const *bad = (const char *const[]){"educa", "@1", "educa@", "", NULL};
	     *bad; bad++) {
		assert_int_not_equal(cli_parse_ref(*bad, &name, &version, &err), 0);
		assert_non_null(strstr(err.message, "is not NAME@VERSION"));
	}
}

static void test_lb_bindings(void **state)
{
	struct tn_error err;
	json_t *lb = NULL;
	char *text;

	(void)state;
	assert_int_equal(cli_parse_lb("none", &lb, &err), 0);
	text = json_dumps(lb, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"driver\":\"none\"}");
	free(text);
	json_decref(lb);
	assert_int_equal(cli_parse_lb("haproxy:127.0.0.1:9999:educa", &lb, &err), 0);
	text = json_dumps(lb, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
			    "{\"admin\":\"127.0.0.1:9999\",\"backend\":\"educa\",\"driver\":\"haproxy\"}");
	free(text);
	json_decref(lb);
	assert_int_equal(cli_parse_lb("haproxy:unix:/run/haproxy/admin.sock:web", &lb, &err), 0);
	assert_string_equal(json_string_value(json_object_get(lb, "admin")),
			    "unix:/run/haproxy/admin.sock");
	assert_string_equal(json_string_value(json_object_get(lb, "backend")), "web");
	json_decref(lb);
	for (const char *const *bad = (const char *const[]){"haproxy", "haproxy:", "haproxy:x",
							    "haproxy::b", "haproxy:a:", "nginx:a:b",
							    "", NULL};
	     *bad; bad++) {
		lb = NULL;
		assert_int_not_equal(cli_parse_lb(*bad, &lb, &err), 0);
		assert_null(lb);
		assert_non_null(strstr(err.message, "--lb \""));
	}
}

static const struct cli_option strategy_options[] = {
	CLI_STRATEGY_OPTIONS,
	{NULL, 0, NULL, NULL},
};

/* The strategy of argv (NULL-terminated) as compact JSON with sorted keys,
 * or NULL with err set; caller frees. */
static char *strategy_of(const char *const *argv, struct tn_error *err)
{
	struct cli_globals g = {0};
	struct cli_args a;
	json_t *st = (json_t *)1;
	char *text = NULL;
	int argc = 0;

	while (argv[argc])
		argc++;
	if (cli_args_parse(strategy_options, argc, (char **)argv, false, &a, &g, err) != 0)
		fail_msg("%s", err->message);
	if (cli_parse_strategy(&a, &st, err) == 0)
		text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	else
		assert_null(st);
	json_decref(st);
	cli_args_free(&a);
	return text;
}

static void test_strategies(void **state)
{
	static const struct {
		const char *argv[12];
		const char *json;
	} good[] = {
	    {{NULL}, "{}"},
	    {{"--canary", "10%"}, "{\"canary_percent\":10}"},
	    {{"--canary", "10"}, "{\"canary_percent\":10}"},
	    {{"--canary", "0%"}, "{\"canary_percent\":0}"},
	    {{"--batch", "5"}, "{\"batch_size\":5}"},
	    {{"--batch", "25%"}, "{\"batch_percent\":25}"},
	    {{"--batch", "100%"}, "{\"batch_percent\":100}"},
	    {{"--batch", "100000"}, "{\"batch_size\":100000}"},
	    {{"--pause-after", "0,2", "--pause-after", "7"}, "{\"pause_after\":[0,2,7]}"},
	    {{"--max-unavailable", "2"}, "{\"max_unavailable\":2}"},
	    {{"--health-timeout", "90"}, "{\"health_timeout_s\":90}"},
	    {{"--health-timeout", "90s"}, "{\"health_timeout_s\":90}"},
	    {{"--health-timeout", "2m"}, "{\"health_timeout_s\":120}"},
	    {{"--health-timeout", "1d"}, "{\"health_timeout_s\":86400}"},
	    {{"--failure-threshold", "3"}, "{\"failure_threshold\":3}"},
	    {{"--no-auto-rollback"}, "{\"auto_rollback\":false}"},
	    {{"--canary", "20%", "--batch", "2", "--pause-after", "0", "--no-auto-rollback"},
	     "{\"auto_rollback\":false,\"batch_size\":2,\"canary_percent\":20,"
	     "\"pause_after\":[0]}"},
	};
	static const struct {
		const char *argv[4];
		const char *message;
	} bad[] = {
	    {{"--canary", "101%"}, "--canary: \"101%\" is not a share"},
	    {{"--canary", "ten"}, "--canary: \"ten\""},
	    {{"--canary", "%"}, "--canary: \"%\""},
	    {{"--canary", "-1"}, "--canary: \"-1\""},
	    {{"--batch", "0"}, "--batch: \"0\" is neither a number of targets"},
	    {{"--batch", "0%"}, "--batch: \"0%\""},
	    {{"--batch", "101%"}, "--batch: \"101%\""},
	    {{"--batch", "100001"}, "--batch: \"100001\""},
	    {{"--batch", "5x"}, "--batch: \"5x\""},
	    {{"--batch", "5%%"}, "--batch: \"5%%\""},
	    {{"--pause-after", "0,x"}, "--pause-after: \"0,x\" is not a list of batch indexes"},
	    {{"--pause-after", "1,,2"}, "--pause-after: \"1,,2\""},
	    {{"--pause-after", "0,"}, "--pause-after: \"0,\""},
	    {{"--pause-after", ""}, "--pause-after: \"\""},
	    {{"--max-unavailable", "0"}, "--max-unavailable: \"0\" is not a number from 1"},
	    {{"--health-timeout", "soon"}, "--health-timeout: \"soon\" is not seconds or a duration"},
	    {{"--health-timeout", "0"}, "--health-timeout: \"0\""},
	    {{"--health-timeout", "1d1s"}, "--health-timeout: \"1d1s\""},
	    {{"--failure-threshold", "0"}, "--failure-threshold: \"0\" is not a number from 1"},
	};
	struct tn_error err;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char *text = strategy_of(good[i].argv, &err);

		if (!text)
			fail_msg("%s: %s", good[i].json, err.message);
		assert_string_equal(text, good[i].json);
		free(text);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *text = strategy_of(bad[i].argv, &err);

		if (text)
			fail_msg("%s %s was taken as %s", bad[i].argv[0], bad[i].argv[1], text);
		if (!strstr(err.message, bad[i].message))
			fail_msg("\"%s\" not in \"%s\"", bad[i].message, err.message);
	}
}

/* Every command's table fits the reader's bounds and says what it is. */
static void test_command_tables(void **state)
{
	const struct cli_command *const tables[] = {
	    cli_bundle_commands, cli_dist_commands,    cli_cluster_commands,
	    cli_target_commands, cli_rollout_commands, cli_events_commands,
	    cli_webhook_commands, cli_token_commands,  cli_enroll_commands};

	(void)state;
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		for (const struct cli_command *c = tables[t]; c->run; c++) {
			size_t n = 0;

			assert_non_null(c->summary);
			assert_non_null(c->synopsis);
			assert_true(c->min_args <= c->max_args);
			assert_true(c->max_args <= CLI_MAX_VALUES);
			if (c->flags & CLI_NEEDS_NEWER)
				assert_non_null(strstr(c->summary, "needs a newer server"));
			for (; c->options && c->options[n].name; n++) {
				/* no clash with a global option (but --version, which
				 * is global before the noun only) */
				for (size_t g = 0; cli_global_options[g].name; g++) {
					if (strcmp(cli_global_options[g].name, "version") == 0)
						continue;
					assert_string_not_equal(c->options[n].name,
								cli_global_options[g].name);
					if (c->options[n].letter)
						assert_int_not_equal(c->options[n].letter,
								     cli_global_options[g].letter);
				}
			}
			assert_true(n <= CLI_MAX_OPTIONS);
			/* verbs are unique within a noun */
			for (const struct cli_command *d = c + 1; d->run; d++)
				if (c->verb && d->verb)
					assert_string_not_equal(c->verb, d->verb);
		}
	}
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_options_in_any_order),
	    T(test_usage_errors_name_the_option),
	    T(test_stop_at_positional),
	    T(test_numbers),
	    T(test_durations),
	    T(test_refs),
	    T(test_lb_bindings),
	    T(test_strategies),
	    T(test_command_tables),
	};
#undef T
	return cmocka_run_group_tests_name("cli_args", tests, NULL, NULL);
}
