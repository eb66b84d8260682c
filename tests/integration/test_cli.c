/* test_cli.c - `tender`, the command-line client, run as a real program
 * against a real tender-server: every verb, its JSON output parsed and
 * checked, its table checked for headers and a row; the exit statuses (0
 * done, 1 refused with the server's message as is, 2 usage with a hint, 3
 * unreachable); every verb reaching this server; webhooks; --help everywhere;
 * the config from flags, environment and file; the progress bar on a
 * terminal only; and the bash completion against the help.
 * One server for the whole group; each test uses its own names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundles.h"
#include "config.h"
#include "fsutil.h"
#include "harness.h"
#include "xalloc.h"
#include "zipwriter.h"

#define MAX_ARGS 64
#define COMPLETION TN_SRCDIR "/cli/tender.bash-completion"

/* ------------------------------------------------------------ fixture */

struct fx {
	struct th_server srv;
	char *home; /* HOME of every CLI run: no config file unless a test writes one */
	char *dir;  /* files the tests make */
	char *env_url, *env_token, *env_home;
	char *viewer; /* a viewer's API token */
};

static int group_setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	th_server_start(&fx->srv, NULL);
	fx->home = th_tmpdir();
	fx->dir = th_tmpdir();
	fx->env_url = xasprintf("TENDER_URL=%s", fx->srv.url);
	fx->env_token = xasprintf("TENDER_TOKEN=%s", fx->srv.admin_token);
	fx->env_home = xasprintf("HOME=%s", fx->home);
	fx->viewer = th_make_token(&fx->srv, "cli-viewer", "viewer");
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	th_server_destroy(&fx->srv);
	th_rmtree(fx->home);
	th_rmtree(fx->dir);
	free(fx->home);
	free(fx->dir);
	free(fx->env_url);
	free(fx->env_token);
	free(fx->env_home);
	free(fx->viewer);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ running tender */

/* The environment of a run: the server and admin token from the
 * environment, HOME the fixture's. */
static void default_env(struct fx *fx, const char *env[8])
{
	env[0] = "PATH=/usr/bin:/bin";
	env[1] = "LANG=C";
	env[2] = fx->env_home;
	env[3] = fx->env_url;
	env[4] = fx->env_token;
	env[5] = NULL;
}

/* A CLI that crashed, leaked or tripped UBSan says so on stderr. */
static void expect_clean(const struct th_run *r)
{
	if (strstr(r->err, "Sanitizer") || strstr(r->err, "runtime error"))
		fail_msg("tender tripped a sanitizer:\n%s", r->err);
}

static void expect_exit(const struct th_run *r, int want, const char *what)
{
	expect_clean(r);
	if (r->status != want)
		fail_msg("%s: want exit %d, got %d\n--- stdout\n%s--- stderr\n%s---", what, want,
			 r->status, r->out, r->err);
}

static void expect_in(const char *hay, const char *needle, const char *what)
{
	if (!strstr(hay, needle))
		fail_msg("%s: \"%s\" not in:\n%s", what, needle, hay);
}

static void expect_not_in(const char *hay, const char *needle, const char *what)
{
	if (strstr(hay, needle))
		fail_msg("%s: \"%s\" should not be in:\n%s", what, needle, hay);
}

/* Runs tender with env (NULL: the default) and the NULL-terminated args;
 * checks the exit status; *r is the caller's to free. */
static void vrun(struct fx *fx, const char *const *env, struct th_run *r, int want,
		 const char *first, va_list ap)
{
	const char *args[MAX_ARGS + 1], *denv[8];
	char what[512];
	size_t n = 0, used = 0;

	for (const char *a = first; a && n < MAX_ARGS; a = va_arg(ap, const char *))
		args[n++] = a;
	args[n] = NULL;
	if (!env) {
		default_env(fx, denv);
		env = denv;
	}
	th_tender(r, args, env);
	used += (size_t)snprintf(what, sizeof what, "tender");
	for (size_t i = 0; i < n && used < sizeof what - 1; i++)
		used += (size_t)snprintf(what + used, sizeof what - used, " %s", args[i]);
	expect_exit(r, want, what);
}

static void run(struct fx *fx, struct th_run *r, int want, const char *first, ...)
{
	va_list ap;

	va_start(ap, first);
	vrun(fx, NULL, r, want, first, ap);
	va_end(ap);
}

static void run_env(struct fx *fx, const char *const *env, struct th_run *r, int want,
		    const char *first, ...)
{
	va_list ap;

	va_start(ap, first);
	vrun(fx, env, r, want, first, ap);
	va_end(ap);
}

/* Starts tender in the background with the default environment. */
static void start(struct fx *fx, struct th_run *r, bool tty, const char *const *args)
{
	const char *env[8];

	default_env(fx, env);
	th_run_start(r, TN_BUILDDIR "/tender", args, env, tty);
}

/* stdout parsed as one JSON value (a new reference). */
static json_t *out_json(const struct th_run *r)
{
	json_error_t e;
	json_t *v = json_loads(r->out, 0, &e);

	if (!v)
		fail_msg("stdout is not JSON (%s):\n%s", e.text, r->out);
	return v;
}

/* stdout as a stream of JSON values (one per pushed file, one per event
 * line): a new array. */
static json_t *out_json_all(const struct th_run *r)
{
	json_t *all = json_array();
	size_t off = 0;

	/* bounded: each value consumes at least one byte */
	while (off < r->out_len) {
		json_error_t e;
		json_t *v;

		off += strspn(r->out + off, " \n");
		if (off >= r->out_len)
			break;
		v = json_loadb(r->out + off, r->out_len - off, JSON_DISABLE_EOF_CHECK, &e);
		if (!v)
			fail_msg("stdout is not a stream of JSON values (%s):\n%s", e.text, r->out);
		json_array_append_new(all, v);
		off += (size_t)e.position;
	}
	return all;
}

static const char *str(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	if (!v)
		fail_msg("no string \"%s\" in %s", key, json_dumps(obj, JSON_COMPACT));
	return v;
}

static char *write_file(struct fx *fx, const char *name, const void *data, size_t len)
{
	char *path = xasprintf("%s/%s", fx->dir, name);
	struct tn_error err;

	if (tn_write_file_atomic(path, data, len, 0644, &err) != 0)
		fail_msg("%s", err.message);
	return path;
}

/* A bundle zip written to the fixture's directory; caller frees the path. */
static char *bundle_file(struct fx *fx, const char *name, const char *version, const char *salt)
{
	struct buf z = th_simple_bundle(name, version, NULL, salt);
	char *file = xasprintf("%s-%s-%s.zip", name, version, salt ? salt : "");
	char *path = write_file(fx, file, z.p, z.len);

	free(z.p);
	free(file);
	return path;
}

/* The error message the server gives for a request, asked directly: the
 * CLI must print it as is.  Caller frees. */
static char *server_message(struct fx *fx, const char *method, const char *path,
			    const char *token, const char *body)
{
	struct th_response r;
	char *m;

	th_json(&fx->srv, method, path, token, body, &r);
	if (r.status < 400 || !*th_error_message(&r))
		fail_msg("%s %s: want a refusal, got %ld %s", method, path, r.status, r.body);
	m = xstrdup(th_error_message(&r));
	th_response_free(&r);
	return m;
}

/* A port nothing listens on. */
static int closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		fail_msg("cannot find a free port");
	close(fd);
	return ntohs(sa.sin_port);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ------------------------------------------------------------ help */

/* The "noun verb" commands `tender --help` lists, one per line. */
static char *help_commands(struct fx *fx)
{
	struct th_run r;
	char *out = NULL, *p;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	run(fx, &r, 0, "--help", NULL);
	p = strstr(r.out, "\nCommands:\n");
	assert_non_null(p);
	p += strlen("\nCommands:\n");
	/* "  noun [verb]   summary" until the blank line */
	while (*p == ' ') {
		char noun[64] = "", verb[64] = "";
		char *eol = strchr(p, '\n');

		if (sscanf(p, " %63s %63s", noun, verb) == 2 && verb[0] >= 'a' && verb[0] <= 'z' &&
		    strncmp(p + 2 + strlen(noun) + 1, verb, strlen(verb)) == 0)
			fprintf(f, "%s %s\n", noun, verb);
		else
			fprintf(f, "%s\n", noun);
		p = eol ? eol + 1 : p + strlen(p);
	}
	fclose(f);
	th_run_free(&r);
	return out;
}

static void test_help_for_every_command(void **state)
{
	static const char *const nouns[] = {"bundle", "dist",	 "cluster", "target",
					    "rollout", "events", "webhook", "token",
					    "enroll-command"};
	struct fx *fx = *state;
	char *commands = help_commands(fx), *save = NULL, *line;
	size_t seen = 0;
	struct th_run r;

	run(fx, &r, 0, "--help", NULL);
	expect_in(r.out, "Usage: tender", "tender --help");
	expect_in(r.out, "Exit status: 0 done; 1 the server refused", "tender --help");
	th_run_free(&r);
	for (size_t i = 0; i < sizeof nouns / sizeof nouns[0]; i++) {
		char *usage = xasprintf("Usage: tender %s", nouns[i]);

		run(fx, &r, 0, nouns[i], "--help", NULL);
		expect_in(r.out, usage, nouns[i]);
		th_run_free(&r);
		free(usage);
	}
	for (line = strtok_r(commands, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char noun[64] = "", verb[64] = "", *usage;

		seen++;
		if (sscanf(line, "%63s %63s", noun, verb) == 2)
			run(fx, &r, 0, noun, verb, "--help", NULL);
		else
			run(fx, &r, 0, noun, "-h", NULL);
		usage = xasprintf("Usage: tender %s", line);
		expect_in(r.out, usage, line);
		expect_in(r.out, "--output", line); /* the global options too */
		/* every endpoint is in this server: no verb waits for a newer one */
		expect_not_in(r.out, "Needs a newer server", line);
		th_run_free(&r);
		free(usage);
	}
	assert_true(seen >= 35);
	free(commands);

	/* help wins over everything else on the line, and `help` works too */
	run(fx, &r, 0, "rollout", "create", "--canary", "10%", "--help", NULL);
	expect_in(r.out, "Usage: tender rollout create", "help first");
	th_run_free(&r);
	run(fx, &r, 0, "help", "target", "logs", NULL);
	expect_in(r.out, "Usage: tender target logs", "tender help target logs");
	th_run_free(&r);
	run(fx, &r, 0, "--version", NULL);
	assert_string_equal(r.out, "tender " PACKAGE_VERSION "\n");
	th_run_free(&r);
}

/* ------------------------------------------------------------ completion */

/* The words bash completion offers for `tender WORDS... CUR`, sorted,
 * space-separated.  Caller frees. */
static char *complete(struct fx *fx, const char *words, const char *cur)
{
	char *script = xasprintf(". '%s'; COMP_WORDS=(tender %s '%s'); COMP_CWORD=$((${#COMP_WORDS[@]}-1));"
				 " _tender; printf '%%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '",
				 COMPLETION, words, cur);
	const char *args[] = {"--norc", "--noprofile", "-c", script, NULL};
	const char *env[] = {"PATH=/usr/bin:/bin", "LANG=C", fx->env_home, NULL};
	struct th_run r;
	char *out;

	th_run_start(&r, "/bin/bash", args, env, false);
	if (th_run_finish(&r, 30) != 0)
		fail_msg("bash completion failed: %s", r.err);
	out = xstrdup(r.out);
	th_run_free(&r);
	free(script);
	return out;
}

/* The long options a help text lists, sorted, space-separated. */
static char *help_options(const char *help)
{
	char *sorted = NULL, *p;
	const char *opts[64];
	size_t n = 0, len = 0;
	FILE *f = open_memstream(&sorted, &len);

	for (const char *line = help; line && *line;) {
		const char *eol = strchr(line, '\n');
		const char *dash = strstr(line, "--");

		/* option lines: "  -x, --name ARG  help" or "      --name ARG  help" */
		if (strncmp(line, "  -", 3) == 0 || strncmp(line, "      --", 8) == 0) {
			size_t k = strspn(dash, "-abcdefghijklmnopqrstuvwxyz");

			if (n < 64)
				opts[n++] = xstrndup(dash, k);
		}
		line = eol ? eol + 1 : NULL;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(opts[j], opts[i]) < 0) {
				const char *t = opts[i];

				opts[i] = opts[j];
				opts[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s ", opts[i]);
		free((char *)opts[i]);
	}
	fclose(f);
	p = sorted;
	return p;
}

static void test_completion_matches_help(void **state)
{
	struct fx *fx = *state;
	char *commands = help_commands(fx), *save = NULL, *line, *got;
	char *nouns = xstrdup("");
	struct th_run r;

	for (line = strtok_r(commands, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char noun[64] = "", verb[64] = "", *want;

		if (sscanf(line, "%63s %63s", noun, verb) == 2)
			run(fx, &r, 0, noun, verb, "--help", NULL);
		else
			run(fx, &r, 0, noun, "--help", NULL);
		/* every option the help names, and only those */
		want = help_options(r.out);
		got = complete(fx, line, "--");
		if (strcmp(got, want) != 0)
			fail_msg("completion of `tender %s --`: got \"%s\", want \"%s\"", line, got,
				 want);
		free(want);
		free(got);
		th_run_free(&r);
		if (!strstr(nouns, noun)) {
			char *more = xasprintf("%s%s ", nouns, noun);

			free(nouns);
			nouns = more;
		}
		/* the verb is offered after its noun */
		if (*verb) {
			got = complete(fx, noun, "");
			expect_in(got, verb, "verbs completed");
			free(got);
		}
	}
	got = complete(fx, "", "");
	for (char *n = strtok_r(nouns, " ", &save); n; n = strtok_r(NULL, " ", &save))
		expect_in(got, n, "nouns completed");
	free(got);
	got = complete(fx, "rollout show r-1 --output", "");
	assert_string_equal(got, "json table ");
	free(got);
	free(nouns);
	free(commands);
}

/* ------------------------------------------------------------ exit statuses */

static void test_usage_errors_exit_2_with_a_hint(void **state)
{
	struct fx *fx = *state;
	char *file = bundle_file(fx, "org.cli.usage", "1.0", NULL);
	const char *no_server_env[] = {"PATH=/usr/bin:/bin", fx->env_home, NULL};
	struct th_run r;
	static const struct {
		const char *args[8];
		const char *message, *hint;
	} cases[] = {
	    {{NULL}, "no command given", "Try 'tender --help'."},
	    {{"frobnicate"}, "no command \"frobnicate\"", "Try 'tender --help'."},
	    {{"bundle"}, "tender bundle needs a verb: push, ls, show, rm", "Try 'tender bundle --help'."},
	    {{"bundle", "fly"}, "bundle has no verb \"fly\"", "Try 'tender bundle --help'."},
	    {{"bundle", "ls", "--colour"}, "unknown option --colour",
	     "Try 'tender bundle ls --help'."},
	    {{"bundle", "ls", "--limit"}, "option --limit needs a value",
	     "Try 'tender bundle ls --help'."},
	    {{"bundle", "ls", "--limit", "many"}, "--limit: \"many\" is not a number",
	     "Try 'tender bundle ls --help'."},
	    {{"bundle", "show"}, "missing argument: NAME@VERSION",
	     "Try 'tender bundle show --help'."},
	    {{"bundle", "show", "a@1", "b@2"}, "unexpected argument \"b@2\"",
	     "Try 'tender bundle show --help'."},
	    {{"bundle", "show", "org.cli.usage"}, "is not NAME@VERSION",
	     "Try 'tender bundle show --help'."},
	    {{"bundle", "ls", "--output", "xml"}, "--output is table or json, not \"xml\"",
	     "Try 'tender bundle ls --help'."},
	    {{"bundle", "push", "/nonexistent/b.zip"}, "cannot open /nonexistent/b.zip",
	     "Try 'tender bundle push --help'."},
	    {{"dist", "push"}, "give FILE, or --name, --version and at least one --bundle",
	     "Try 'tender dist push --help'."},
	    {{"dist", "push", "--name", "d", "--version", "1", "--bundle", "nope"},
	     "--bundle: \"nope\" is not NAME@VERSION", "Try 'tender dist push --help'."},
	    {{"cluster", "create", "c", "--lb", "nginx:1"}, "--lb \"nginx:1\"",
	     "Try 'tender cluster create --help'."},
	    {{"cluster", "set", "c"}, "nothing to change", "Try 'tender cluster set --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--canary", "110%"},
	     "--canary: \"110%\" is not a share of the targets from 0% to 100%",
	     "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--batch", "0"},
	     "--batch: \"0\" is neither a number of targets", "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--batch", "150%"},
	     "--batch: \"150%\"", "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--pause-after", "0,one"},
	     "--pause-after: \"0,one\" is not a list of batch indexes",
	     "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--max-unavailable", "0"},
	     "--max-unavailable: \"0\" is not a number from 1", "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--health-timeout", "soon"},
	     "--health-timeout: \"soon\" is not seconds or a duration",
	     "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--health-timeout", "2d"},
	     "--health-timeout: \"2d\"", "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--failure-threshold", "none"},
	     "--failure-threshold: \"none\" is not a number", "Try 'tender rollout create --help'."},
	    {{"rollout", "create", "--cluster", "c", "--to", "d@1", "--no-auto-rollback=yes"},
	     "option --no-auto-rollback takes no value", "Try 'tender rollout create --help'."},
	    {{"cluster", "undo", "c", "--batch", "-1"}, "--batch: \"-1\"",
	     "Try 'tender cluster undo --help'."},
	    {{"cluster", "undo", "c", "--canary", "x%"}, "--canary: \"x%\"",
	     "Try 'tender cluster undo --help'."},
	    {{"rollout", "create", "--cluster", "c"}, "give --to NAME@VER, --config FILE, or both",
	     "Try 'tender rollout create --help'."},
	    {{"rollout", "show", "r-1", "--interval", "100"}, "--interval goes with --watch",
	     "Try 'tender rollout show --help'."},
	    {{"token", "create", "ci"}, "--role is required", "Try 'tender token create --help'."},
	    {{"token", "create", "ci", "--role", "viewer", "--ttl", "soon"}, "--ttl: duration",
	     "Try 'tender token create --help'."},
	    {{"enroll-command"}, "--cluster is required", "Try 'tender enroll-command --help'."},
	    {{"events", "--follow", "--limit", "3"}, "--limit does not go with --follow",
	     "Try 'tender events --help'."},
	    {{"target", "create"}, "--cluster is required", "Try 'tender target create --help'."},
	    {{"target", "logs", "t-1", "--lines", "0"}, "--lines: \"0\" is not a number",
	     "Try 'tender target logs --help'."},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *env[8];

		default_env(fx, env);
		th_tender(&r, cases[i].args, env);
		expect_exit(&r, 2, cases[i].message);
		expect_in(r.err, cases[i].message, "the usage error");
		expect_in(r.err, cases[i].hint, "the hint");
		assert_string_equal(r.out, "");
		th_run_free(&r);
	}
	/* a file that is there but not a bundle's is for the server to refuse */
	run(fx, &r, 2, "bundle", "push", fx->dir, NULL);
	expect_in(r.err, "is not a regular file", "a directory");
	th_run_free(&r);
	run_env(fx, no_server_env, &r, 2, "bundle", "ls", NULL);
	expect_in(r.err, "no server: give --server URL, set TENDER_URL", "no server");
	th_run_free(&r);
	run(fx, &r, 2, "--server", "ftp://example.com", "bundle", "ls", NULL);
	expect_in(r.err, "is not an http:// or https:// URL", "not http");
	th_run_free(&r);
	free(file);
}

static void test_unreachable_server_exits_3(void **state)
{
	struct fx *fx = *state;
	char *url = xasprintf("http://127.0.0.1:%d", closed_port());
	char *want = xasprintf("tender: cannot reach %s: ", url);
	char *file = bundle_file(fx, "org.cli.unreach", "1.0", NULL);
	struct th_run r;

	run(fx, &r, 3, "--server", url, "bundle", "ls", NULL);
	expect_in(r.err, want, "bundle ls");
	assert_string_equal(r.out, "");
	th_run_free(&r);
	run(fx, &r, 3, "bundle", "push", file, "--server", url, NULL);
	expect_in(r.err, want, "bundle push");
	th_run_free(&r);
	run(fx, &r, 3, "events", "--follow", "--server", url, NULL);
	expect_in(r.err, want, "events --follow");
	th_run_free(&r);
	run(fx, &r, 3, "--server", url, "rollout", "approve", "r-x", NULL);
	expect_in(r.err, want, "rollout approve");
	th_run_free(&r);
	free(url);
	free(want);
	free(file);
}

static void test_wrong_or_missing_token_exits_1(void **state)
{
	struct fx *fx = *state;
	char *message = server_message(fx, "GET", "/api/v1/bundles", "tn_not-a-token", NULL);
	char *no_token = server_message(fx, "GET", "/api/v1/bundles", NULL, NULL);
	char *want = xasprintf("tender: %s\n", message);
	const char *env[] = {"PATH=/usr/bin:/bin", fx->env_home, fx->env_url, NULL};
	struct th_run r;

	run(fx, &r, 1, "--token", "tn_not-a-token", "bundle", "ls", NULL);
	assert_string_equal(r.err, want);
	assert_string_equal(r.out, "");
	th_run_free(&r);
	run_env(fx, env, &r, 1, "bundle", "ls", NULL);
	expect_in(r.err, no_token, "no token at all");
	expect_in(r.err, "no token was given", "the hint");
	th_run_free(&r);
	/* a role too low: the server's 403 message, as is */
	free(message);
	message = server_message(fx, "POST", "/api/v1/clusters", fx->viewer, "{\"name\": \"c\"}");
	run(fx, &r, 1, "--token", fx->viewer, "cluster", "create", "cli-forbidden", NULL);
	expect_in(r.err, message, "a viewer creating a cluster");
	th_run_free(&r);
	free(message);
	free(no_token);
	free(want);
}


/* ------------------------------------------------------------ bundles */

static void test_bundle_push_ls_show_rm(void **state)
{
	struct fx *fx = *state;
	char *a = bundle_file(fx, "org.cli.a", "1.0", "one");
	char *b = bundle_file(fx, "org.cli.b", "2.1", NULL);
	char *a_other = bundle_file(fx, "org.cli.a", "1.0", "other bytes");
	char *bad = write_file(fx, "not-a-bundle.zip", "hello", 5);
	struct th_response direct;
	struct th_run r;
	json_t *all, *j, *items;
	char *message;

	/* two files: one JSON object each, the server's as is */
	run(fx, &r, 0, "-o", "json", "bundle", "push", a, b, NULL);
	all = out_json_all(&r);
	assert_int_equal(json_array_size(all), 2);
	j = json_array_get(all, 0);
	assert_string_equal(str(j, "name"), "org.cli.a");
	assert_string_equal(str(j, "version"), "1.0.0");
	assert_int_equal(strlen(str(j, "sha256")), 64);
	assert_true(json_integer_value(json_object_get(j, "size")) > 0);
	assert_string_equal(str(json_array_get(all, 1), "name"), "org.cli.b");
	json_decref(all);
	assert_null(strchr(r.err, '\r')); /* no progress bar off a terminal */
	th_run_free(&r);

	/* the same bytes again: fine, and said so */
	run(fx, &r, 0, "bundle", "push", a, NULL);
	expect_in(r.out, "already there (same bytes): org.cli.a@1.0.0", "push again");
	th_run_free(&r);

	/* the same name@version, other bytes: the server's 409 message, exit 1;
	 * the other files are still pushed */
	{
		struct th_request req = {.method = "POST", .token = fx->srv.admin_token,
					 .content_type = "application/zip", .upload_file = a_other};

		th_http(&fx->srv, "/api/v1/bundles", &req, &direct);
		assert_int_equal(direct.status, 409);
		message = xasprintf("tender: %s\n", th_error_message(&direct));
		th_response_free(&direct);
	}
	run(fx, &r, 1, "bundle", "push", a_other, bad, b, NULL);
	expect_in(r.err, message, "the refusal as is");
	expect_in(r.err, "not-a-bundle.zip was not pushed", "which file");
	expect_in(r.out, "already there (same bytes): org.cli.b@2.1.0", "the others go on");
	th_run_free(&r);
	free(message);

	/* ls: a table, and the JSON list of everything */
	run(fx, &r, 0, "bundle", "ls", NULL);
	expect_in(r.out, "NAME", "header");
	expect_in(r.out, "VERSION", "header");
	expect_in(r.out, "SHA256", "header");
	expect_in(r.out, "org.cli.a", "a row");
	th_run_free(&r);
	run(fx, &r, 0, "bundle", "ls", "--name", "org.cli.b", "-o", "json", NULL);
	j = out_json(&r);
	items = json_object_get(j, "items");
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(str(json_array_get(items, 0), "version"), "2.1.0");
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "--output=json", "bundle", "ls", "--limit", "1", NULL);
	j = out_json(&r);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
	assert_true(json_is_string(json_object_get(j, "next"))); /* there are more */
	json_decref(j);
	th_run_free(&r);

	/* show, in any equal version form */
	run(fx, &r, 0, "bundle", "show", "org.cli.b@2.1", "-o", "json", NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "version"), "2.1.0");
	assert_string_equal(str(json_object_get(j, "manifest"), "name"), "org.cli.b");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "bundle", "show", "org.cli.b@2.1", NULL);
	expect_in(r.out, "Name:", "fields");
	expect_in(r.out, "org.cli.b", "fields");
	expect_in(r.out, "Manifest:", "manifest");
	th_run_free(&r);

	/* rm, then rm again: the server's 404 message */
	run(fx, &r, 0, "bundle", "rm", "org.cli.b@2.1.0", NULL);
	expect_in(r.out, "removed bundle org.cli.b@2.1.0", "rm");
	th_run_free(&r);
	message = server_message(fx, "DELETE", "/api/v1/bundles/org.cli.b/2.1.0",
				 fx->srv.admin_token, NULL);
	run(fx, &r, 1, "bundle", "rm", "org.cli.b@2.1.0", NULL);
	expect_in(r.err, message, "rm of a missing bundle");
	th_run_free(&r);
	free(message);
	free(a);
	free(b);
	free(a_other);
	free(bad);
}

/* The upload's progress bar: drawn on a terminal, never in a pipe. */
static void test_progress_bar_only_on_a_terminal(void **state)
{
	struct fx *fx = *state;
	size_t big = 3 << 20;
	char *noise = xmalloc(big), *path;
	const char *args[] = {"bundle", "push", NULL, NULL};
	struct zentry extra = {.name = "share/noise.bin", .len = big};
	struct buf z;
	struct th_run r;
	uint32_t x = 2463534242u;

	/* incompressible, so that the archive is big enough for a few redraws */
	for (size_t i = 0; i < big; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		noise[i] = (char)x;
	}
	extra.data = noise;
	z = th_bundle_zip("{\"name\": \"org.cli.big\", \"version\": \"1.0\"}", &extra, 1);
	path = write_file(fx, "org.cli.big-1.0.zip", z.p, z.len);
	args[2] = path;
	start(fx, &r, true, args);
	assert_int_equal(th_run_finish(&r, 60), 0);
	expect_in(r.err, "\r", "a bar redrawn in place");
	expect_in(r.err, "org.cli.big-1.0.zip [", "the bar's label");
	expect_in(r.err, "100%", "the bar's end");
	expect_in(r.err, "MiB", "sizes");
	expect_in(r.out, "pushed org.cli.big@1.0.0", "the result on stdout");
	th_run_free(&r);
	/* the same in a pipe: no bar at all */
	run(fx, &r, 0, "bundle", "push", path, NULL);
	assert_string_equal(r.err, "");
	th_run_free(&r);
	free(z.p);
	free(noise);
	free(path);
}

/* ------------------------------------------------------------ distributions */

static void test_dist_push_ls_show_rm(void **state)
{
	struct fx *fx = *state;
	char *web = bundle_file(fx, "org.cli.web", "1.0", NULL);
	char *db = bundle_file(fx, "org.cli.db", "1.0", NULL);
	struct buf web2 = th_simple_bundle("org.cli.web", "2.0", NULL, NULL);
	struct th_member members[] = {{"web.zip", web2}};
	struct buf archive = th_distribution_zip(
	    "{\"name\": \"cli-shop\", \"version\": \"2.0\", "
	    "\"config\": {\"org.cli.web\": {}}}", members, 1);
	const char *json_text = "{\"name\": \"cli-shop\", \"version\": \"1.5\", "
				"\"bundles\": [{\"name\": \"org.cli.web\", \"version\": \"1.0\"}]}";
	char *archive_path = write_file(fx, "cli-shop-2.0.zip", archive.p, archive.len);
	char *json_path = write_file(fx, "cli-shop-1.5.json", json_text, strlen(json_text));
	char *config = write_file(fx, "config.json", "{\"org.cli.web\": {}}", 19);
	char *bad = write_file(fx, "notes.txt", "hello", 5);
	struct th_run r;
	json_t *j, *bundles;
	char *message;

	run(fx, &r, 0, "bundle", "push", web, db, NULL);
	th_run_free(&r);

	/* from the command line */
	run(fx, &r, 0, "-o", "json", "dist", "push", "--name", "cli-shop", "--version", "1.0",
	    "--bundle", "org.cli.web@1.0,org.cli.db@1", "--config", config, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "name"), "cli-shop");
	assert_string_equal(str(j, "version"), "1.0.0");
	bundles = json_object_get(j, "bundles");
	assert_int_equal(json_array_size(bundles), 2);
	json_decref(j);
	th_run_free(&r);
	/* repeated --bundle is the same as a list */
	run(fx, &r, 0, "dist", "push", "--name", "cli-shop", "--version", "1.1", "-b",
	    "org.cli.web@1.0", "--bundle", "org.cli.db@1.0", NULL);
	expect_in(r.out, "pushed distribution cli-shop@1.1.0 (2 bundles:", "human form");
	th_run_free(&r);

	/* an archive, streamed; a distribution.json */
	run(fx, &r, 0, "-o", "json", "dist", "push", archive_path, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "version"), "2.0.0");
	assert_string_equal(str(json_array_get(json_object_get(j, "bundles"), 0), "version"),
			    "2.0.0");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "dist", "push", json_path, NULL);
	expect_in(r.out, "pushed distribution cli-shop@1.5.0", "from a JSON file");
	th_run_free(&r);
	run(fx, &r, 2, "dist", "push", bad, NULL);
	expect_in(r.err, "is neither a distribution archive (zip) nor a JSON document", "txt");
	th_run_free(&r);

	/* refused: a bundle that is not there, as the server says it */
	message = server_message(fx, "POST", "/api/v1/distributions", fx->srv.admin_token,
				 "{\"name\": \"cli-shop\", \"version\": \"9.0\", \"bundles\": "
				 "[{\"name\": \"org.cli.none\", \"version\": \"1.0.0\"}]}");
	run(fx, &r, 1, "dist", "push", "--name", "cli-shop", "--version", "9.0", "--bundle",
	    "org.cli.none@1.0.0", NULL);
	expect_in(r.err, message, "an unknown bundle");
	th_run_free(&r);
	free(message);

	/* ls and show */
	run(fx, &r, 0, "dist", "ls", "--name", "cli-shop", NULL);
	expect_in(r.out, "NAME", "header");
	expect_in(r.out, "BUNDLES", "header");
	expect_in(r.out, "cli-shop  1.5.0", "a row");
	assert_int_equal(count_lines(r.out), 5);
	th_run_free(&r);
	run(fx, &r, 0, "dist", "ls", "-o", "json", NULL);
	j = out_json(&r);
	assert_true(json_array_size(json_object_get(j, "items")) >= 4);
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "dist", "show", "cli-shop@1.0", NULL);
	expect_in(r.out, "BUNDLE", "bundles table");
	expect_in(r.out, "org.cli.db", "a bundle row");
	th_run_free(&r);
	run(fx, &r, 0, "dist", "show", "cli-shop@2", "-o", "json", NULL);
	j = out_json(&r);
	assert_non_null(json_object_get(json_object_get(j, "config"), "org.cli.web"));
	json_decref(j);
	th_run_free(&r);

	/* a bundle a distribution uses cannot go; the distribution can */
	message = server_message(fx, "DELETE", "/api/v1/bundles/org.cli.db/1.0.0",
				 fx->srv.admin_token, NULL);
	run(fx, &r, 1, "bundle", "rm", "org.cli.db@1.0.0", NULL);
	expect_in(r.err, message, "bundle in use");
	th_run_free(&r);
	free(message);
	run(fx, &r, 0, "dist", "rm", "cli-shop@1.5", NULL);
	expect_in(r.out, "removed distribution cli-shop@1.5", "dist rm");
	th_run_free(&r);

	free(web);
	free(db);
	free(web2.p);
	free(archive.p);
	free(archive_path);
	free(json_path);
	free(config);
	free(bad);
}

/* ------------------------------------------------------------ clusters */

/* A bundle pushed and a distribution of it, through the CLI. */
static void make_dist(struct fx *fx, const char *dist, const char *version, const char *bundle)
{
	char *file = bundle_file(fx, bundle, version, NULL);
	char *ref = xasprintf("%s@%s", bundle, version);
	struct th_run r;

	run(fx, &r, 0, "bundle", "push", file, NULL);
	th_run_free(&r);
	run(fx, &r, 0, "dist", "push", "--name", dist, "--version", version, "--bundle", ref,
	    NULL);
	th_run_free(&r);
	free(file);
	free(ref);
}

static void test_cluster_create_ls_show_set_rm(void **state)
{
	struct fx *fx = *state;
	struct th_run r;
	json_t *j;
	char *message;

	make_dist(fx, "cli-blog", "1.0", "org.cli.blog");
	run(fx, &r, 0, "-o", "json", "cluster", "create", "cli-blog", "--dist", "cli-blog@1.0",
	    "--lb", "haproxy:127.0.0.1:9999:blog", "--provider", "local", "--description",
	    "the blog", NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "name"), "cli-blog");
	assert_string_equal(str(j, "description"), "the blog");
	assert_string_equal(str(json_object_get(j, "lb"), "driver"), "haproxy");
	assert_string_equal(str(json_object_get(j, "lb"), "admin"), "127.0.0.1:9999");
	assert_string_equal(str(json_object_get(j, "lb"), "backend"), "blog");
	assert_string_equal(str(json_object_get(j, "revision"), "distribution"), "cli-blog@1.0.0");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "cluster", "create", "cli-empty", "--lb", "haproxy:unix:/run/h.sock:x",
	    NULL);
	expect_in(r.out, "created cluster cli-empty (no distribution yet", "human form");
	th_run_free(&r);

	/* a second cluster of the same name: the server's 409 */
	message = server_message(fx, "POST", "/api/v1/clusters", fx->srv.admin_token,
				 "{\"name\": \"cli-blog\"}");
	run(fx, &r, 1, "cluster", "create", "cli-blog", NULL);
	expect_in(r.err, message, "a cluster twice");
	th_run_free(&r);
	free(message);

	run(fx, &r, 0, "cluster", "ls", NULL);
	expect_in(r.out, "DISTRIBUTION", "header");
	expect_in(r.out, "TARGETS", "header");
	expect_in(r.out, "haproxy 127.0.0.1:9999 backend blog", "a row");
	expect_in(r.out, "haproxy unix:/run/h.sock backend x", "a unix admin socket");
	th_run_free(&r);
	run(fx, &r, 0, "cluster", "show", "cli-blog", "-o", "json", NULL);
	j = out_json(&r);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "targets"), "total")),
			 0);
	assert_true(json_is_object(json_object_get(json_object_get(j, "targets"), "by_state")));
	assert_true(json_is_object(json_object_get(json_object_get(j, "targets"), "by_release")));
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "cluster", "show", "cli-blog", NULL);
	expect_in(r.out, "Distribution:", "fields");
	expect_in(r.out, "cli-blog@1.0.0", "fields");
	expect_in(r.out, "Targets by state:", "counts");
	expect_in(r.out, "Targets by release:", "counts");
	th_run_free(&r);

	/* set: PATCH of the lb, provider, description */
	run(fx, &r, 0, "-o", "json", "cluster", "set", "cli-blog", "--lb", "none",
	    "--description", "still the blog", NULL);
	j = out_json(&r);
	assert_string_equal(str(json_object_get(j, "lb"), "driver"), "none");
	assert_string_equal(str(j, "description"), "still the blog");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "cluster", "set", "cli-blog", "-p", "netns", NULL);
	expect_in(r.out, "updated cluster cli-blog", "set");
	th_run_free(&r);

	run(fx, &r, 0, "cluster", "rm", "cli-empty", NULL);
	expect_in(r.out, "removed cluster cli-empty", "rm");
	th_run_free(&r);
	message = server_message(fx, "GET", "/api/v1/clusters/cli-empty", fx->srv.admin_token,
				 NULL);
	run(fx, &r, 1, "cluster", "show", "cli-empty", NULL);
	expect_in(r.err, message, "show of a removed cluster");
	th_run_free(&r);
	free(message);
}

/* ------------------------------------------------------------ the verbs that wait */

static void test_every_verb_reaches_this_server(void **state)
{
	struct fx *fx = *state;
	struct th_run r;

	/* an object the existing routes do not know is the server's own 404 */
	run(fx, &r, 1, "target", "show", "t-nosuchtarget", NULL);
	expect_not_in(r.err, "does not support", "a missing target");
	th_run_free(&r);
	/* the rollout verbs, undo and webhooks reach this server: its own
	 * refusals, as is */
	{
		static const struct {
			const char *args[4];
			const char *method, *path;
		} reach[] = {
		    {{"rollout", "pause", "r-nosuchrollout"}, "POST",
		     "/api/v1/rollouts/r-nosuchrollout/pause"},
		    {{"rollout", "resume", "r-nosuchrollout"}, "POST",
		     "/api/v1/rollouts/r-nosuchrollout/resume"},
		    {{"rollout", "abort", "r-nosuchrollout"}, "POST",
		     "/api/v1/rollouts/r-nosuchrollout/abort"},
		    {{"cluster", "undo", "nosuchcluster"}, "POST",
		     "/api/v1/clusters/nosuchcluster/undo"},
		    {{"webhook", "rm", "w-nosuch"}, "DELETE", "/api/v1/webhooks/w-nosuch"},
		};

		for (size_t i = 0; i < sizeof reach / sizeof reach[0]; i++) {
			const char *env[8];
			char *message = server_message(fx, reach[i].method, reach[i].path,
						       fx->srv.admin_token, NULL);
			char *want = xasprintf("tender: %s\n", message);

			default_env(fx, env);
			th_tender(&r, reach[i].args, env);
			expect_exit(&r, 1, reach[i].path);
			assert_string_equal(r.err, want);
			th_run_free(&r);
			free(want);
			free(message);
		}
	}
	/* the target lifecycle verbs reach this server: its own refusals */
	run(fx, &r, 1, "target", "create", "--cluster", "nosuchcluster", NULL);
	expect_not_in(r.err, "does not support", "target create");
	assert_non_null(strstr(r.err, "nosuchcluster"));
	th_run_free(&r);
	run(fx, &r, 1, "target", "copy", "t-nosuchtarget", NULL);
	expect_not_in(r.err, "does not support", "target copy");
	th_run_free(&r);
	run(fx, &r, 1, "target", "rm", "t-nosuchtarget", NULL);
	expect_not_in(r.err, "does not support", "target rm");
	th_run_free(&r);
}

/* ------------------------------------------------------------ targets and rollouts */

struct agent {
	char *id, *token;
};

static void enroll(struct fx *fx, const char *enrollment_token, const char *address,
		   struct agent *a)
{
	char *body = xasprintf("{\"enrollment_token\": \"%s\", \"address\": \"%s\", "
			       "\"inventory\": {\"hostname\": \"node-%s\"}}",
			       enrollment_token, address, address);
	struct th_response r;

	th_json(&fx->srv, "POST", "/agent/v1/enroll", NULL, body, &r);
	if (r.status != 200)
		fail_msg("enroll: %ld %s", r.status, r.body);
	a->id = xstrdup(str(r.json, "target_id"));
	a->token = xstrdup(str(r.json, "target_token"));
	th_response_free(&r);
	free(body);
}

static void agent_free(struct agent *a)
{
	free(a->id);
	free(a->token);
}

/* The agent's desired document: its generation and the release ids. */
static void desired(struct fx *fx, const struct agent *a, json_int_t *generation, char **run,
		    char **prepare)
{
	struct th_request req = {.token = a->token};
	struct th_response r;
	const char *id;

	th_http(&fx->srv, "/agent/v1/desired", &req, &r);
	if (r.status != 200)
		fail_msg("desired: %ld %s", r.status, r.body);
	*generation = json_integer_value(json_object_get(r.json, "generation"));
	id = json_string_value(json_object_get(json_object_get(r.json, "run"), "id"));
	*run = id ? xstrdup(id) : NULL;
	if (prepare) {
		id = json_string_value(json_object_get(json_object_get(r.json, "prepare"), "id"));
		*prepare = id ? xstrdup(id) : NULL;
	}
	th_response_free(&r);
}

static void report(struct fx *fx, const struct agent *a, const char *body)
{
	struct th_response r;

	th_json(&fx->srv, "POST", "/agent/v1/report", a->token, body, &r);
	if (r.status != 204)
		fail_msg("report %s: %ld %s", body, r.status, r.body);
	th_response_free(&r);
}

/* The agent switched to its run release and commits it. */
static void commit(struct fx *fx, const struct agent *a)
{
	json_int_t gen;
	char *run = NULL, *body;

	desired(fx, a, &gen, &run, NULL);
	body = xasprintf("{\"generation\": %" JSON_INTEGER_FORMAT ", \"release\": \"%s\", "
			 "\"phase\": \"commit\", \"state\": \"succeeded\", \"health\": \"healthy\"}",
			 gen, run);
	report(fx, a, body);
	free(body);
	free(run);
}

/* `tender enroll-command`: the token, and the command for people. */
static char *enrollment(struct fx *fx, const char *cluster, const char *uses)
{
	struct th_run r;
	char *token, *want;
	json_t *j;

	run(fx, &r, 0, "-o", "json", "enroll-command", "--cluster", cluster, "--uses", uses,
	    "--ttl", "1h", NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "cluster"), cluster);
	assert_int_equal(json_integer_value(json_object_get(j, "uses")), strtol(uses, NULL, 10));
	token = xstrdup(str(j, "token"));
	want = xasprintf("curl -fsSL %s/install.sh | sh -s -- --server %s --token %s",
			 fx->srv.url, fx->srv.url, token);
	assert_string_equal(str(j, "command"), want);
	json_decref(j);
	th_run_free(&r);
	free(want);
	return token;
}

static void test_enroll_command_and_targets(void **state)
{
	struct fx *fx = *state;
	struct agent a, b;
	struct th_run r;
	char *token, *message;
	json_t *j, *items;

	make_dist(fx, "cli-app", "1.0", "org.cli.app");
	run(fx, &r, 0, "cluster", "create", "cli-nodes", "--dist", "cli-app@1.0", NULL);
	th_run_free(&r);

	/* the human form: the command alone on stdout, a note on stderr */
	run(fx, &r, 0, "enroll-command", "--cluster", "cli-nodes", NULL);
	assert_int_equal(count_lines(r.out), 1);
	expect_in(r.out, "curl -fsSL ", "the command");
	expect_in(r.out, "/install.sh | sh -s -- --server ", "the command");
	expect_in(r.out, " --token tne_", "the command");
	expect_in(r.err, "enrolls up to 1 machine into cluster cli-nodes", "the note");
	th_run_free(&r);
	message = server_message(fx, "POST", "/api/v1/enrollment-tokens", fx->srv.admin_token,
				 "{\"cluster\": \"cli-nodes\", \"uses\": 1, \"ttl_s\": 1}");
	run(fx, &r, 1, "enroll-command", "--cluster", "cli-nodes", "--ttl", "1s", NULL);
	expect_in(r.err, message, "a ttl under the server's minimum");
	th_run_free(&r);
	free(message);

	token = enrollment(fx, "cli-nodes", "2");
	enroll(fx, token, "10.9.0.1", &a);
	enroll(fx, token, "10.9.0.2", &b);
	free(token);

	/* ls: filtered by cluster and state, a table and the JSON */
	run(fx, &r, 0, "target", "ls", "--cluster", "cli-nodes", NULL);
	expect_in(r.out, "ID", "header");
	expect_in(r.out, "LAST SEEN", "header");
	expect_in(r.out, a.id, "a row");
	expect_in(r.out, b.id, "a row");
	expect_in(r.out, "10.9.0.2", "a row");
	assert_int_equal(count_lines(r.out), 3);
	th_run_free(&r);
	run(fx, &r, 0, "-o", "json", "target", "ls", "-c", "cli-nodes", "--state", "enrolled", NULL);
	j = out_json(&r);
	items = json_object_get(j, "items");
	assert_int_equal(json_array_size(items), 2);
	assert_string_equal(str(json_array_get(items, 0), "cluster"), "cli-nodes");
	assert_string_equal(str(json_array_get(items, 0), "state"), "enrolled");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "-o", "json", "target", "ls", "-c", "cli-nodes", "--state", "running", NULL);
	j = out_json(&r);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
	json_decref(j);
	th_run_free(&r);

	/* the cluster counts them */
	run(fx, &r, 0, "-o", "json", "cluster", "show", "cli-nodes", NULL);
	j = out_json(&r);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(json_object_get(j, "targets"), "by_state"), "enrolled")),
			 2);
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "cluster", "show", "cli-nodes", NULL);
	expect_in(r.out, "  enrolled  2", "by state");
	th_run_free(&r);

	/* show */
	run(fx, &r, 0, "-o", "json", "target", "show", a.id, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "id"), a.id);
	assert_string_equal(str(j, "address"), "10.9.0.1");
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "target", "show", a.id, NULL);
	expect_in(r.out, "Address:", "fields");
	expect_in(r.out, "node-10.9.0.1", "inventory");
	th_run_free(&r);

	/* logs: what the agent reported, one bundle or all */
	{
		char *body;
		json_int_t gen;
		char *run_id = NULL;

		desired(fx, &a, &gen, &run_id, NULL);
		body = xasprintf("{\"generation\": %" JSON_INTEGER_FORMAT ", \"release\": \"%s\", "
				 "\"phase\": \"commit\", \"state\": \"succeeded\", \"log_tail\": "
				 "{\"org.cli.app\": \"one\\ntwo\\nthree\\n\", \"org.cli.side\": "
				 "\"side\\n\\u001b[2J\"}}",
				 gen, run_id);
		report(fx, &a, body);
		free(body);
		free(run_id);
	}
	run(fx, &r, 0, "target", "logs", a.id, "--bundle", "org.cli.app", "--lines", "2", NULL);
	assert_string_equal(r.out, "two\nthree\n");
	th_run_free(&r);
	run(fx, &r, 0, "target", "logs", a.id, NULL);
	expect_in(r.out, "==> org.cli.app <==\none\ntwo\nthree\n", "all logs");
	expect_in(r.out, "==> org.cli.side <==\nside\n\\x1b[2J", "escapes made visible");
	th_run_free(&r);
	run(fx, &r, 0, "-o", "json", "target", "logs", a.id, "-b", "org.cli.app", NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "target"), a.id);
	assert_string_equal(str(json_object_get(j, "logs"), "org.cli.app"), "one\ntwo\nthree\n");
	json_decref(j);
	th_run_free(&r);
	message = xasprintf("target %s has reported no log of bundle org.cli.none", a.id);
	run(fx, &r, 1, "target", "logs", a.id, "--bundle", "org.cli.none", NULL);
	expect_in(r.err, message, "a bundle without a log");
	th_run_free(&r);
	free(message);

	/* revoke: the agent's token stops working */
	run(fx, &r, 0, "target", "revoke", b.id, NULL);
	expect_in(r.out, "revoked the agent token of", "revoke");
	th_run_free(&r);
	{
		struct th_request req = {.token = b.token};
		struct th_response resp;

		th_http(&fx->srv, "/agent/v1/desired", &req, &resp);
		assert_int_equal(resp.status, 401);
		th_response_free(&resp);
	}
	/* a cluster with targets cannot go */
	message = server_message(fx, "DELETE", "/api/v1/clusters/cli-nodes", fx->srv.admin_token,
				 NULL);
	run(fx, &r, 1, "cluster", "rm", "cli-nodes", NULL);
	expect_in(r.err, message, "a cluster with targets");
	th_run_free(&r);
	free(message);
	agent_free(&a);
	agent_free(&b);
}

static void test_rollout_create_approve_watch(void **state)
{
	struct fx *fx = *state;
	const char *watch_args[] = {"rollout", "show", NULL, "--watch", "--interval", "100", NULL};
	struct agent a, b;
	struct th_run r, w;
	char *token, *id, *message, *path, *old_run = NULL;
	json_int_t gen;
	json_t *j;

	make_dist(fx, "cli-roll", "1.0", "org.cli.roll");
	make_dist(fx, "cli-roll", "2.0", "org.cli.roll");
	make_dist(fx, "cli-roll", "3.0", "org.cli.roll");
	run(fx, &r, 0, "cluster", "create", "cli-roll", "--dist", "cli-roll@1.0", NULL);
	th_run_free(&r);
	token = enrollment(fx, "cli-roll", "2");
	enroll(fx, token, "10.8.0.1", &a);
	enroll(fx, token, "10.8.0.2", &b);
	free(token);
	commit(fx, &a);
	commit(fx, &b);

	/* create: pending approval, both targets staging; the server's default
	 * strategy (batches of 1) */
	run(fx, &r, 0, "-o", "json", "rollout", "create", "--cluster", "cli-roll", "--to",
	    "cli-roll@2.0", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	assert_string_equal(str(j, "state"), "pending_approval");
	assert_string_equal(str(j, "from"), "cli-roll@1.0.0");
	assert_string_equal(str(j, "to"), "cli-roll@2.0.0");
	assert_int_equal(json_integer_value(json_object_get(j, "prepared")), 0);
	{
		json_t *st = json_object_get(j, "strategy"), *batches = json_object_get(j, "batches");

		assert_int_equal(json_integer_value(json_object_get(st, "batch_size")), 1);
		assert_int_equal(json_integer_value(json_object_get(st, "canary_percent")), 0);
		assert_int_equal(json_array_size(json_object_get(st, "pause_after")), 0);
		assert_int_equal(json_integer_value(json_object_get(st, "failure_threshold")), 1);
		assert_true(json_is_true(json_object_get(st, "auto_rollback")));
		assert_true(json_integer_value(json_object_get(st, "health_timeout_s")) > 0);
		assert_int_equal(json_array_size(batches), 2);
		for (size_t i = 0; i < 2; i++) {
			json_t *batch = json_array_get(batches, i);

			assert_int_equal(json_integer_value(json_object_get(batch, "index")), (int)i);
			assert_string_equal(str(batch, "state"), "pending");
			assert_int_equal(json_array_size(json_object_get(batch, "targets")), 1);
		}
		/* enrolled first, switched first */
		assert_string_equal(
		    str(json_array_get(json_object_get(json_array_get(batches, 0), "targets"), 0),
			"id"),
		    a.id);
	}
	json_decref(j);
	th_run_free(&r);
	/* one active rollout per cluster: the server's 409 */
	message = server_message(fx, "POST", "/api/v1/rollouts", fx->srv.admin_token,
				 "{\"cluster\": \"cli-roll\", \"distribution\": \"cli-roll@3.0\"}");
	run(fx, &r, 1, "rollout", "create", "-c", "cli-roll", "-t", "cli-roll@3.0", NULL);
	expect_in(r.err, message, "a second rollout");
	th_run_free(&r);
	free(message);

	run(fx, &r, 0, "rollout", "ls", "--cluster", "cli-roll", NULL);
	expect_in(r.out, "TARGETS", "header");
	expect_in(r.out, id, "a row");
	expect_in(r.out, "pending_approval", "a row");
	expect_in(r.out, "0/2", "targets done");
	th_run_free(&r);
	run(fx, &r, 0, "rollout", "show", id, NULL);
	expect_in(r.out, "State:", "fields");
	expect_in(r.out, "pending_approval, prepared 0/2", "what it waits for");
	expect_in(r.out, "Prepared:", "fields");
	expect_in(r.out, "0/2 targets staged the new release", "prepared");
	expect_in(r.out, "Batches:", "fields");
	expect_in(r.out, "0 pending, 1 pending", "the batch states");
	expect_in(r.out, "batches of 1, health timeout ", "the strategy");
	expect_in(r.out, "failure threshold 1, auto rollback", "the strategy");
	expect_in(r.out, "BATCH", "targets table");
	expect_in(r.out, a.id, "a target row");
	th_run_free(&r);

	/* watch it in the background (stderr a pipe: plain lines) */
	watch_args[2] = id;
	start(fx, &w, false, watch_args);
	if (!th_run_wait_for(&w, "pending_approval, prepared 0/2, 0/2 targets done", true, 20))
		fail_msg("the watch did not report the pending rollout: %s", w.err);
	run(fx, &r, 0, "-o", "json", "rollout", "approve", id, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "state"), "running");
	assert_int_equal(json_array_size(json_object_get(j, "approvals")), 1);
	json_decref(j);
	th_run_free(&r);
	/* not pending any more: the server's 409, as is */
	message = server_message(fx, "POST", (path = xasprintf("/api/v1/rollouts/%s/approve", id)),
				 fx->srv.admin_token, NULL);
	run(fx, &r, 1, "rollout", "approve", id, NULL);
	expect_in(r.err, message, "a refusal");
	expect_in(r.err, "it cannot be approved", "a refusal");
	th_run_free(&r);
	free(message);
	free(path);
	commit(fx, &a);
	if (!th_run_wait_for(&w, "1/2 targets done (1 succeeded, 0 failed), 1/2 batches done", true,
			     20))
		fail_msg("the watch did not see the first target: %s", w.err);
	commit(fx, &b);
	assert_int_equal(th_run_finish(&w, 30), 0);
	expect_clean(&w);
	expect_in(w.err, "succeeded, 2/2 targets done (2 succeeded, 0 failed), 2/2 batches done",
		  "the end");
	assert_null(strchr(w.err, '\r'));
	expect_in(w.out, "State:", "the rollout shown at the end");
	expect_in(w.out, "succeeded", "the rollout shown at the end");
	expect_in(w.out, "0 done, 1 done", "the batches at the end");
	expect_not_in(w.out, "Prepared:", "only while pending approval");
	th_run_free(&w);
	free(id);

	/* one batch of both, no automatic rollback: one target rolls back, the
	 * rollout halts failed and the other stays; the watch exits 1 */
	run(fx, &r, 0, "-o", "json", "rollout", "create", "--cluster", "cli-roll", "--to",
	    "cli-roll@3.0", "--batch", "2", "--no-auto-rollback", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "strategy"),
							    "batch_size")),
			 2);
	assert_true(json_is_false(json_object_get(json_object_get(j, "strategy"), "auto_rollback")));
	assert_int_equal(json_array_size(json_object_get(j, "batches")), 1);
	json_decref(j);
	th_run_free(&r);
	desired(fx, &b, &gen, &old_run, NULL);
	run(fx, &r, 0, "rollout", "approve", id, NULL);
	expect_in(r.out, "approved rollout", "approve");
	th_run_free(&r);
	{
		const char *args[] = {"-o", "json", "rollout", "show", id, "--watch", "--interval",
				      "100", NULL};
		char *body, *new_run = NULL;

		start(fx, &w, false, args);
		commit(fx, &a);
		desired(fx, &b, &gen, &new_run, NULL);
		free(new_run);
		body = xasprintf("{\"generation\": %" JSON_INTEGER_FORMAT ", \"release\": \"%s\", "
				 "\"phase\": \"rollback\", \"state\": \"succeeded\", "
				 "\"message\": \"health check failed: HTTP 503\"}",
				 gen, old_run);
		report(fx, &b, body);
		free(body);
	}
	assert_int_equal(th_run_finish(&w, 30), 1);
	expect_clean(&w);
	j = out_json(&w);
	assert_string_equal(str(j, "state"), "failed");
	json_decref(j);
	expect_in(w.err, "tender: rollout ", "the end");
	expect_in(w.err, " ended failed", "the end");
	th_run_free(&w);
	run(fx, &r, 0, "rollout", "show", id, NULL);
	expect_in(r.out, "health check failed: HTTP 503", "the target's message");
	expect_in(r.out, "2/2 targets done (1 succeeded, 1 failed)", "the progress");
	expect_in(r.out, "batches of 2", "the strategy");
	expect_in(r.out, "no auto rollback", "the strategy");
	th_run_free(&r);
	/* the target that committed stayed on 3.0 */
	{
		char *run_a = NULL;

		desired(fx, &a, &gen, &run_a, NULL);
		expect_in(run_a, "cli-roll@3.0.0+", "no automatic rollback");
		free(run_a);
	}
	free(old_run);
	free(id);
	agent_free(&a);
	agent_free(&b);
}

/* `tender -o json rollout show ID`, parsed (a new reference). */
static json_t *rollout_json(struct fx *fx, const char *id)
{
	struct th_run r;
	json_t *j;

	run(fx, &r, 0, "-o", "json", "rollout", "show", id, NULL);
	j = out_json(&r);
	th_run_free(&r);
	return j;
}

/* Polls the rollout (through the CLI) until it is in state, within
 * deadline_s; its JSON then (a new reference). */
static json_t *rollout_when(struct fx *fx, const char *id, const char *state, double deadline_s)
{
	struct timespec start, now, pause = {0, 50 * 1000 * 1000};
	json_t *j;

	clock_gettime(CLOCK_MONOTONIC, &start);
	/* bounded by the deadline */
	for (;;) {
		j = rollout_json(fx, id);
		if (strcmp(str(j, "state"), state) == 0)
			return j;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - start.tv_sec) > deadline_s)
			fail_msg("rollout %s is still %s after %.0f s, not %s", id, str(j, "state"),
				 deadline_s, state);
		json_decref(j);
		nanosleep(&pause, NULL);
	}
}

/* Batch b of a rollout's JSON (borrowed), and its target i. */
static json_t *batch_of(json_t *ro, size_t b)
{
	json_t *batch = json_array_get(json_object_get(ro, "batches"), b);

	if (!batch)
		fail_msg("no batch %zu in %s", b, json_dumps(ro, JSON_COMPACT));
	return batch;
}

static json_t *batch_target(json_t *ro, size_t b, size_t i)
{
	json_t *t = json_array_get(json_object_get(batch_of(ro, b), "targets"), i);

	if (!t)
		fail_msg("no target %zu in batch %zu of %s", i, b, json_dumps(ro, JSON_COMPACT));
	return t;
}

/* The release ids an agent's document runs and stages (caller frees). */
static void releases(struct fx *fx, const struct agent *a, char **run_id, char **prepare_id)
{
	json_int_t gen;

	desired(fx, a, &gen, run_id, prepare_id);
}

/* Batches of 1 with a pause point, watched through the pause; pause of a
 * running rollout and its automatic rollback; abort of a pending one;
 * cluster undo; the server refusing a rollout. */
static void test_rollout_pause_resume_abort_undo(void **state)
{
	struct fx *fx = *state;
	const char *watch_args[] = {"rollout", "show", NULL, "--watch", "--interval", "100", NULL};
	struct agent ag[2], *first, *second;
	struct th_run r, w;
	char *token, *id, *message, *path, *run_a, *run_b, *prep, *v1_release;
	json_int_t gen;
	json_t *j;

	make_dist(fx, "cli-step", "1.0", "org.cli.step");
	make_dist(fx, "cli-step", "2.0", "org.cli.step");
	make_dist(fx, "cli-step", "3.0", "org.cli.step");
	run(fx, &r, 0, "cluster", "create", "cli-step", "--dist", "cli-step@1.0", NULL);
	th_run_free(&r);
	token = enrollment(fx, "cli-step", "2");
	enroll(fx, token, "10.7.0.1", &ag[0]);
	enroll(fx, token, "10.7.0.2", &ag[1]);
	free(token);
	commit(fx, &ag[0]);
	commit(fx, &ag[1]);
	releases(fx, &ag[0], &v1_release, NULL);

	/* nothing to undo yet, and a rollout the server refuses: its messages */
	message = server_message(fx, "POST", "/api/v1/clusters/cli-step/undo", fx->srv.admin_token,
				 NULL);
	run(fx, &r, 1, "cluster", "undo", "cli-step", NULL);
	expect_in(r.err, message, "undo of a cluster without a rollout");
	th_run_free(&r);
	free(message);
	message = server_message(fx, "POST", "/api/v1/rollouts", fx->srv.admin_token,
				 "{\"cluster\": \"cli-step\", \"distribution\": \"cli-step@9.0\", "
				 "\"strategy\": {\"batch_size\": 1}}");
	run(fx, &r, 1, "rollout", "create", "-c", "cli-step", "--to", "cli-step@9.0", "--batch",
	    "1", NULL);
	expect_in(r.err, message, "a distribution the server does not have");
	th_run_free(&r);
	free(message);

	/* batches of 1, a pause after the first: the strategy as given */
	run(fx, &r, 0, "-o", "json", "rollout", "create", "-c", "cli-step", "--to", "cli-step@2.0",
	    "--batch", "1", "--pause-after", "0", "--max-unavailable", "1", "--health-timeout", "2m",
	    "--failure-threshold", "2", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	{
		json_t *st = json_object_get(j, "strategy");

		assert_string_equal(str(j, "state"), "pending_approval");
		assert_int_equal(json_integer_value(json_object_get(st, "batch_size")), 1);
		assert_int_equal(json_array_size(json_object_get(st, "pause_after")), 1);
		assert_int_equal(json_integer_value(json_array_get(json_object_get(st, "pause_after"),
								   0)),
				 0);
		assert_int_equal(json_integer_value(json_object_get(st, "max_unavailable")), 1);
		assert_int_equal(json_integer_value(json_object_get(st, "health_timeout_s")), 120);
		assert_int_equal(json_integer_value(json_object_get(st, "failure_threshold")), 2);
		assert_true(json_is_true(json_object_get(st, "auto_rollback")));
		assert_int_equal(json_array_size(json_object_get(j, "batches")), 2);
	}
	first = strcmp(str(batch_target(j, 0, 0), "id"), ag[0].id) == 0 ? &ag[0] : &ag[1];
	second = first == &ag[0] ? &ag[1] : &ag[0];
	assert_string_equal(str(batch_target(j, 1, 0), "id"), second->id);
	json_decref(j);
	th_run_free(&r);

	/* a target that staged the release counts as prepared */
	desired(fx, first, &gen, &run_a, &prep);
	assert_non_null(prep);
	{
		char *body = xasprintf("{\"generation\": %" JSON_INTEGER_FORMAT ", \"release\": "
				       "\"%s\", \"phase\": \"prepare\", \"state\": \"succeeded\"}",
				       gen, prep);

		report(fx, first, body);
		free(body);
	}
	free(run_a);
	free(prep);
	j = rollout_json(fx, id);
	assert_int_equal(json_integer_value(json_object_get(j, "prepared")), 1);
	assert_true(json_is_true(json_object_get(batch_target(j, 0, 0), "prepared")));
	assert_true(json_is_false(json_object_get(batch_target(j, 1, 0), "prepared")));
	json_decref(j);
	run(fx, &r, 0, "rollout", "show", id, NULL);
	expect_in(r.out, "pending_approval, prepared 1/2", "the state");
	expect_in(r.out, "1/2 targets staged the new release", "prepared");
	expect_in(r.out, "batches of 1, pause after 0, max unavailable 1, health timeout 120 s, "
			 "failure threshold 2, auto rollback",
		  "the strategy");
	th_run_free(&r);

	/* watched through its pause: the watch does not stop there */
	watch_args[2] = id;
	start(fx, &w, false, watch_args);
	if (!th_run_wait_for(&w, "pending_approval, prepared 1/2, 0/2 targets done", true, 20))
		fail_msg("the watch did not report the pending rollout: %s", w.err);
	run(fx, &r, 0, "rollout", "approve", id, NULL);
	expect_in(r.out, "approved rollout ", "approve");
	expect_in(r.out, ": now running; 0/2 targets done", "approve");
	th_run_free(&r);
	commit(fx, first);
	j = rollout_when(fx, id, "paused", 20);
	assert_string_equal(str(batch_of(j, 0), "state"), "done");
	assert_string_equal(str(batch_target(j, 0, 0), "state"), "succeeded");
	assert_string_equal(str(batch_of(j, 1), "state"), "pending");
	assert_string_equal(str(batch_target(j, 1, 0), "state"), "pending");
	json_decref(j);
	run(fx, &r, 0, "rollout", "show", id, NULL);
	expect_in(r.out, "paused after batch 0: approve to go on", "what it waits for");
	expect_in(r.out, "0 done, 1 pending", "the batch states");
	expect_in(r.out, "1/2 targets done (1 succeeded, 0 failed), 1/2 batches done", "progress");
	th_run_free(&r);
	if (!th_run_wait_for(&w, "paused after batch 0: approve to go on, 1/2 targets done", true,
			     20))
		fail_msg("the watch did not report the pause: %s", w.err);
	/* resume: the second batch switches */
	run(fx, &r, 0, "-o", "json", "rollout", "resume", id, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "state"), "running");
	assert_int_equal(json_array_size(json_object_get(j, "approvals")), 2);
	assert_string_equal(str(batch_target(j, 1, 0), "state"), "switching");
	json_decref(j);
	th_run_free(&r);
	commit(fx, second);
	assert_int_equal(th_run_finish(&w, 30), 0);
	expect_clean(&w);
	expect_in(w.err, "succeeded, 2/2 targets done (2 succeeded, 0 failed), 2/2 batches done",
		  "the end");
	th_run_free(&w);
	/* resume of a rollout that is not paused: the server's message */
	message = server_message(fx, "POST", (path = xasprintf("/api/v1/rollouts/%s/resume", id)),
				 fx->srv.admin_token, NULL);
	run(fx, &r, 1, "rollout", "resume", id, NULL);
	expect_in(r.err, message, "resume of a finished rollout");
	th_run_free(&r);
	free(message);
	free(path);
	free(id);

	/* abort of a rollout pending approval: nothing switched, nothing staged */
	run(fx, &r, 0, "-o", "json", "rollout", "create", "-c", "cli-step", "--to", "cli-step@3.0",
	    NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	json_decref(j);
	th_run_free(&r);
	releases(fx, &ag[0], &run_a, &prep);
	expect_in(prep, "cli-step@3.0.0+", "staging the new release");
	free(prep);
	message = server_message(fx, "POST", (path = xasprintf("/api/v1/rollouts/%s/pause", id)),
				 fx->srv.admin_token, NULL);
	run(fx, &r, 1, "rollout", "pause", id, NULL); /* only a running one pauses */
	expect_in(r.err, message, "pause of a pending rollout");
	th_run_free(&r);
	free(message);
	free(path);
	run(fx, &r, 0, "-o", "json", "rollout", "abort", id, NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "state"), "aborted");
	assert_string_equal(str(batch_target(j, 0, 0), "state"), "skipped");
	assert_string_equal(str(batch_target(j, 1, 0), "state"), "skipped");
	json_decref(j);
	th_run_free(&r);
	for (size_t i = 0; i < 2; i++) {
		releases(fx, &ag[i], &run_b, &prep);
		expect_in(run_b, "cli-step@2.0.0+", "the targets keep their release");
		assert_null(prep);
		if (i == 0)
			assert_string_equal(run_b, run_a);
		free(run_b);
	}
	free(run_a);
	run(fx, &r, 1, "rollout", "show", id, "--watch", NULL);
	expect_in(r.err, "2/2 targets done (0 succeeded, 0 failed, 2 skipped)", "skipped count");
	expect_in(r.err, " ended aborted", "the end");
	expect_in(r.out, "0 done, 1 done", "the batches of an aborted rollout");
	th_run_free(&r);
	free(id);

	/* pause of a running rollout, then a failure: the switched target goes
	 * back by itself (auto rollback), reverted counts as done */
	run(fx, &r, 0, "-o", "json", "rollout", "create", "-c", "cli-step", "--to", "cli-step@3.0",
	    "--batch", "100%", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "strategy"),
							    "batch_percent")),
			 100);
	assert_int_equal(json_array_size(json_object_get(j, "batches")), 1);
	json_decref(j);
	th_run_free(&r);
	releases(fx, second, &run_b, NULL); /* 2.0, where it goes back to */
	run(fx, &r, 0, "rollout", "approve", id, NULL);
	th_run_free(&r);
	run(fx, &r, 0, "rollout", "pause", id, NULL);
	expect_in(r.out, "paused rollout ", "pause");
	expect_in(r.out, ": now paused in batch 0: resume to go on", "pause");
	th_run_free(&r);
	commit(fx, first);
	desired(fx, second, &gen, &prep, NULL);
	{
		char *body = xasprintf("{\"generation\": %" JSON_INTEGER_FORMAT ", \"release\": "
				       "\"%s\", \"phase\": \"rollback\", \"state\": \"succeeded\", "
				       "\"message\": \"health check failed\"}",
				       gen, run_b);

		report(fx, second, body);
		free(body);
	}
	free(prep);
	j = rollout_when(fx, id, "rolled_back", 20);
	for (size_t i = 0; i < 2; i++) {
		json_t *t = batch_target(j, 0, i);

		assert_string_equal(str(t, "state"),
				    strcmp(str(t, "id"), first->id) == 0 ? "reverted" : "failed");
	}
	json_decref(j);
	run(fx, &r, 0, "rollout", "show", id, NULL);
	expect_in(r.out, "2/2 targets done (0 succeeded, 1 failed, 1 reverted), 1/1 batches done",
		  "reverted count as done");
	th_run_free(&r);
	run(fx, &r, 0, "rollout", "ls", "-c", "cli-step", NULL);
	expect_in(r.out, "rolled_back  2/2", "reverted count in the list");
	th_run_free(&r);
	releases(fx, first, &run_a, NULL);
	assert_string_equal(run_a, run_b); /* back on 2.0 */
	free(run_a);
	free(run_b);
	free(id);

	/* undo: a rollout back to where the last succeeded one began (1.0) */
	run(fx, &r, 0, "-o", "json", "cluster", "undo", "cli-step", "--batch", "2", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	assert_string_equal(str(j, "cluster"), "cli-step");
	assert_string_equal(str(j, "state"), "pending_approval");
	assert_string_equal(str(j, "from"), "cli-step@2.0.0");
	assert_string_equal(str(j, "to"), "cli-step@1.0.0");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "strategy"),
							    "batch_size")),
			 2);
	assert_int_equal(json_array_size(json_object_get(batch_of(j, 0), "targets")), 2);
	json_decref(j);
	th_run_free(&r);
	releases(fx, &ag[0], &run_a, &prep);
	assert_string_equal(prep, v1_release); /* the release it ran before */
	free(run_a);
	free(prep);
	/* one active rollout per cluster: a second undo is the server's 409 */
	message = server_message(fx, "POST", "/api/v1/clusters/cli-step/undo", fx->srv.admin_token,
				 NULL);
	run(fx, &r, 1, "cluster", "undo", "cli-step", NULL);
	expect_in(r.err, message, "a second undo");
	th_run_free(&r);
	free(message);
	run(fx, &r, 0, "rollout", "approve", id, NULL);
	th_run_free(&r);
	commit(fx, &ag[0]);
	commit(fx, &ag[1]);
	j = rollout_when(fx, id, "succeeded", 20);
	json_decref(j);
	free(id);
	/* and undo of that undo, for people: back to 2.0, approve to go */
	run(fx, &r, 0, "cluster", "undo", "cli-step", NULL);
	expect_in(r.out, "created rollout r-", "the human form");
	expect_in(r.out, " of cluster cli-step: cli-step@1.0.0 -> cli-step@2.0.0, "
			 "pending_approval; 2 targets staging it, in 2 batches\n",
		  "the human form");
	expect_in(r.out, "approve it with: tender rollout approve r-", "the reminder");
	th_run_free(&r);
	free(v1_release);
	agent_free(&ag[0]);
	agent_free(&ag[1]);
}

/* --watch on a terminal draws a bar (a rollout of an empty cluster ends at
 * its approval). */
static void test_watch_bar_on_a_terminal(void **state)
{
	struct fx *fx = *state;
	const char *args[] = {"rollout", "show", NULL, "--watch", NULL};
	struct th_run r, w;
	char *id;
	json_t *j;

	make_dist(fx, "cli-bar", "1.0", "org.cli.bar");
	make_dist(fx, "cli-bar", "2.0", "org.cli.bar");
	run(fx, &r, 0, "cluster", "create", "cli-bar", "--dist", "cli-bar@1.0", NULL);
	th_run_free(&r);
	run(fx, &r, 0, "-o", "json", "rollout", "create", "--cluster", "cli-bar", "--to",
	    "cli-bar@2.0", NULL);
	j = out_json(&r);
	id = xstrdup(str(j, "id"));
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "rollout", "approve", id, NULL);
	th_run_free(&r);
	args[2] = id;
	start(fx, &w, true, args);
	assert_int_equal(th_run_finish(&w, 30), 0);
	expect_clean(&w);
	expect_in(w.err, "\r", "a bar");
	expect_in(w.err, id, "its label");
	expect_in(w.err, "succeeded", "its state");
	th_run_free(&w);
	free(id);
}

/* ------------------------------------------------------------ events */

static void test_events_list_and_pages(void **state)
{
	struct fx *fx = *state;
	long long last;
	struct th_run r;
	json_t *j, *items;
	size_t i;
	json_t *e;

	/* more events than one page holds: refused writes are audited too */
	for (int k = 0; k < 1001; k++) {
		struct th_response resp;

		th_json(&fx->srv, "DELETE", "/api/v1/bundles/org.cli.none/1.0", fx->srv.admin_token,
			NULL, &resp);
		th_response_free(&resp);
	}
	last = th_last_event_id(&fx->srv);
	assert_true(last > 1000);
	run(fx, &r, 0, "-o", "json", "events", NULL);
	j = out_json(&r);
	items = json_object_get(j, "items");
	assert_int_equal(json_array_size(items), last);
	json_array_foreach(items, i, e) {
		if (json_integer_value(json_object_get(e, "id")) != (json_int_t)i + 1)
			fail_msg("event %zu has id %" JSON_INTEGER_FORMAT, i,
				 json_integer_value(json_object_get(e, "id")));
	}
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "events", NULL);
	assert_int_equal(count_lines(r.out), (size_t)last + 1);
	expect_in(r.out, "ACTION", "header");
	expect_in(r.out, "bundle.delete", "a row");
	expect_in(r.out, "bundle/org.cli.none@1.0", "the object");
	th_run_free(&r);
	run(fx, &r, 0, "-o", "json", "events", "--after", "1000", "--limit", "3", NULL);
	j = out_json(&r);
	items = json_object_get(j, "items");
	assert_int_equal(json_array_size(items), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), 1001);
	json_decref(j);
	th_run_free(&r);
}

/* Makes events (clusters created) until the follower f shows one: a stream
 * begins after the newest event when it connects, so one made before that
 * is not in it. */
static void poke_until_seen(struct fx *fx, struct th_run *f, const char *prefix)
{
	for (int k = 0; k < 100; k++) {
		char *name = xasprintf("%s-%d", prefix, k);
		char *body = xasprintf("{\"name\": \"%s\"}", name);
		struct th_response resp;
		bool seen;

		th_json(&fx->srv, "POST", "/api/v1/clusters", fx->srv.admin_token, body, &resp);
		th_response_free(&resp);
		seen = th_run_wait_for(f, name, false, 0.3);
		free(name);
		free(body);
		if (seen)
			return;
	}
	fail_msg("the follower showed no event:\n%s%s", f->out, f->err);
}

static void test_events_follow(void **state)
{
	struct fx *fx = *state;
	const char *table_args[] = {"events", "--follow", NULL};
	const char *json_args[] = {"-o", "json", "events", "-f", NULL};
	struct th_run r, f;
	char *secret;
	json_t *all, *e;
	size_t i;

	/* as a table: a line per event as it happens, until interrupted (exit 0) */
	start(fx, &f, false, table_args);
	poke_until_seen(fx, &f, "cli-follow-t");
	expect_in(f.out, "OUTCOME\n", "the header");
	expect_in(f.out, "cluster.create", "the event");
	expect_in(f.out, "cluster/cli-follow-t-", "the event");
	kill(f.pid, SIGINT);
	assert_int_equal(th_run_finish(&f, 20), 0);
	expect_clean(&f);
	th_run_free(&f);

	/* as JSON: one object per line; SIGTERM ends it too */
	start(fx, &f, false, json_args);
	poke_until_seen(fx, &f, "cli-follow-j");
	kill(f.pid, SIGTERM);
	assert_int_equal(th_run_finish(&f, 20), 0);
	expect_clean(&f);
	all = out_json_all(&f);
	assert_true(json_array_size(all) >= 1);
	assert_int_equal(json_array_size(all), count_lines(f.out));
	json_array_foreach(all, i, e) {
		assert_string_equal(str(e, "action"), "cluster.create");
	}
	json_decref(all);
	th_run_free(&f);

	/* a stream whose token is revoked is ended by the server: exit 1 */
	run(fx, &r, 0, "token", "create", "cli-follower", "--role", "viewer", NULL);
	secret = xstrndup(r.out, strcspn(r.out, "\n"));
	th_run_free(&r);
	{
		const char *args[] = {"events", "--follow", "--token", secret, NULL};

		start(fx, &f, false, args);
	}
	poke_until_seen(fx, &f, "cli-follow-r");
	run(fx, &r, 0, "token", "revoke", "cli-follower", NULL);
	th_run_free(&r);
	assert_int_equal(th_run_finish(&f, 30), 1);
	expect_clean(&f);
	expect_in(f.err, "the server ended the event stream", "revoked");
	th_run_free(&f);
	free(secret);
}

/* ------------------------------------------------------------ tokens */

static void test_token_create_ls_revoke(void **state)
{
	struct fx *fx = *state;
	struct th_run r;
	char *secret, *message;
	json_t *j, *items, *t;
	size_t i;
	bool found = false;

	/* the secret alone on stdout; the note on stderr */
	run(fx, &r, 0, "token", "create", "cli-ci", "--role", "developer", "--ttl", "30d", NULL);
	assert_int_equal(count_lines(r.out), 1);
	assert_true(strncmp(r.out, "tn_", 3) == 0);
	expect_in(r.err, "token cli-ci (developer), expires ", "the note");
	secret = xstrndup(r.out, strcspn(r.out, "\n"));
	th_run_free(&r);

	/* it works, with its role's limits */
	run(fx, &r, 0, "--token", secret, "-o", "json", "bundle", "ls", NULL);
	th_run_free(&r);
	message = server_message(fx, "GET", "/api/v1/tokens", secret, NULL);
	run(fx, &r, 1, "--token", secret, "token", "ls", NULL);
	expect_in(r.err, message, "a developer listing tokens");
	th_run_free(&r);
	free(message);

	run(fx, &r, 0, "-o", "json", "token", "create", "cli-ops", "--role", "operator", NULL);
	j = out_json(&r);
	assert_string_equal(str(j, "name"), "cli-ops");
	assert_string_equal(str(j, "role"), "operator");
	assert_true(strncmp(str(j, "token"), "tn_", 3) == 0);
	json_decref(j);
	th_run_free(&r);

	run(fx, &r, 0, "-o", "json", "token", "ls", NULL);
	j = out_json(&r);
	items = json_object_get(j, "items");
	json_array_foreach(items, i, t) {
		assert_null(json_object_get(t, "token")); /* never a secret */
		if (strcmp(str(t, "name"), "cli-ci") == 0) {
			found = true;
			assert_string_equal(str(t, "role"), "developer");
			assert_true(json_is_string(json_object_get(t, "expires")));
		}
	}
	assert_true(found);
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "token", "ls", NULL);
	expect_in(r.out, "ROLE", "header");
	expect_in(r.out, "cli-ci", "a row");
	th_run_free(&r);

	/* a name twice: the server's message */
	message = server_message(fx, "POST", "/api/v1/tokens", fx->srv.admin_token,
				 "{\"name\": \"cli-ci\", \"role\": \"viewer\"}");
	run(fx, &r, 1, "token", "create", "cli-ci", "--role", "viewer", NULL);
	expect_in(r.err, message, "a name twice");
	th_run_free(&r);
	free(message);

	run(fx, &r, 0, "token", "revoke", "cli-ci", NULL);
	expect_in(r.out, "revoked token cli-ci", "revoke");
	th_run_free(&r);
	message = server_message(fx, "GET", "/api/v1/bundles", secret, NULL);
	run(fx, &r, 1, "--token", secret, "bundle", "ls", NULL);
	expect_in(r.err, message, "a revoked token");
	th_run_free(&r);
	free(message);
	free(secret);
}

/* ------------------------------------------------------------ webhooks */

static void test_webhook_add_ls_rm(void **state)
{
	struct fx *fx = *state;
	struct th_run r;
	json_t *j, *w = NULL, *item;
	char *id, *message;
	size_t i;

	run(fx, &r, 0, "-o", "json", "webhook", "add", "http://127.0.0.1:9/cli-hook", "--events",
	    "rollout.failed,rollout.succeeded", "-e", "cluster.*", NULL);
	j = out_json(&r);
	assert_true(strncmp(str(j, "id"), "w-", 2) == 0);
	assert_string_equal(str(j, "url"), "http://127.0.0.1:9/cli-hook");
	assert_int_equal(json_array_size(json_object_get(j, "events")), 3);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "events"), 2)),
			    "cluster.*");
	assert_non_null(str(j, "public_key"));
	id = xstrdup(str(j, "id"));
	json_decref(j);
	th_run_free(&r);

	run(fx, &r, 0, "webhook", "add", "http://127.0.0.1:9/cli-other", "--events", "*", NULL);
	expect_in(r.out, "added webhook w-", "add");
	expect_in(r.out, "deliveries are signed with the key ", "add");
	th_run_free(&r);

	/* a viewer lists them */
	run(fx, &r, 0, "--token", fx->viewer, "-o", "json", "webhook", "ls", NULL);
	j = out_json(&r);
	json_array_foreach(json_object_get(j, "items"), i, item) {
		if (strcmp(str(item, "id"), id) == 0)
			w = item;
	}
	assert_non_null(w);
	assert_non_null(json_object_get(w, "deliveries"));
	json_decref(j);
	th_run_free(&r);
	run(fx, &r, 0, "webhook", "ls", NULL);
	expect_in(r.out, "EVENTS", "header");
	expect_in(r.out, "LAST", "header");
	expect_in(r.out, id, "a row");
	expect_in(r.out, "rollout.failed,rollout.succeeded,cluster.*", "the events");
	th_run_free(&r);

	/* refusals are the server's own messages */
	message = server_message(fx, "POST", "/api/v1/webhooks", fx->srv.admin_token,
				 "{\"url\": \"ftp://h/x\", \"events\": [\"*\"]}");
	run(fx, &r, 1, "webhook", "add", "ftp://h/x", "--events", "*", NULL);
	expect_in(r.err, message, "an ftp url");
	th_run_free(&r);
	free(message);
	message = server_message(fx, "POST", "/api/v1/webhooks", fx->viewer,
				 "{\"url\": \"http://h/x\", \"events\": [\"*\"]}");
	run(fx, &r, 1, "--token", fx->viewer, "webhook", "add", "http://h/x", "--events", "*",
	    NULL);
	expect_in(r.err, message, "a viewer adding");
	th_run_free(&r);
	free(message);
	run(fx, &r, 2, "webhook", "add", "http://h/x", NULL);
	expect_in(r.err, "--events is required", "no --events");
	th_run_free(&r);

	run(fx, &r, 0, "webhook", "rm", id, NULL);
	expect_in(r.out, "removed webhook", "rm");
	th_run_free(&r);
	run(fx, &r, 0, "webhook", "ls", NULL);
	expect_not_in(r.out, id, "ls after rm");
	th_run_free(&r);
	run(fx, &r, 1, "webhook", "rm", id, NULL);
	expect_in(r.err, "not found", "rm twice");
	th_run_free(&r);
	free(id);
}

/* ------------------------------------------------------------ configuration */

static char *write_config(const char *dir, const char *text, mode_t mode)
{
	char *cfgdir = xasprintf("%s/.config/tender", dir);
	char *path = xasprintf("%s/config", cfgdir);
	struct tn_error err;

	if (tn_mkdir_p(cfgdir, 0700, &err) != 0 ||
	    tn_write_file_atomic(path, text, strlen(text), mode, &err) != 0)
		fail_msg("%s", err.message);
	chmod(path, mode);
	free(cfgdir);
	return path;
}

static void test_config_flags_env_file(void **state)
{
	struct fx *fx = *state;
	char *home = th_tmpdir(), *env_home = xasprintf("HOME=%s", home);
	char *bad_url = xasprintf("http://127.0.0.1:%d", closed_port());
	char *env_bad_url = xasprintf("TENDER_URL=%s", bad_url);
	char *text = xasprintf("# the test server\nserver = %s/\n\n  token=%s  \n", fx->srv.url,
			       fx->srv.admin_token);
	char *path = write_config(home, text, 0600), *alt, *env_alt;
	const char *file_only[] = {"PATH=/usr/bin:/bin", env_home, NULL};
	const char *env_wins[] = {"PATH=/usr/bin:/bin", env_home, env_bad_url, NULL};
	struct th_run r;

	/* from the file alone (a trailing '/' on the URL is fine) */
	run_env(fx, file_only, &r, 0, "-o", "json", "cluster", "ls", NULL);
	assert_string_equal(r.err, "");
	th_run_free(&r);
	/* the environment over the file: an unreachable server */
	run_env(fx, env_wins, &r, 3, "cluster", "ls", NULL);
	expect_in(r.err, bad_url, "TENDER_URL over the file");
	th_run_free(&r);
	/* flags over the environment */
	run_env(fx, env_wins, &r, 0, "cluster", "ls", "--server", fx->srv.url, NULL);
	th_run_free(&r);
	run(fx, &r, 1, "--token", "tn_wrong", "cluster", "ls", NULL);
	th_run_free(&r);

	/* readable by others: a warning, and it still works */
	chmod(path, 0644);
	run_env(fx, file_only, &r, 0, "cluster", "ls", NULL);
	expect_in(r.err, "tender: warning: ", "the warning");
	expect_in(r.err, "holds a token and is readable by others (mode 644): chmod 600", "why");
	th_run_free(&r);

	/* strict: an unknown key, a line that is not key = value, a key twice */
	free(text);
	text = xasprintf("server = %s\ncolour = blue\n", fx->srv.url);
	free(path);
	path = write_config(home, text, 0600);
	run_env(fx, file_only, &r, 2, "cluster", "ls", NULL);
	expect_in(r.err, "config:2: unknown key \"colour\" (known: server, token, cacert)", "key");
	th_run_free(&r);
	free(path);
	path = write_config(home, "server\n", 0600);
	run_env(fx, file_only, &r, 2, "cluster", "ls", NULL);
	expect_in(r.err, "config:1: expected `key = value`", "syntax");
	th_run_free(&r);
	free(path);
	path = write_config(home, "token = a\ntoken = b\n", 0600);
	run_env(fx, file_only, &r, 2, "cluster", "ls", NULL);
	expect_in(r.err, "config:2: token is given twice", "twice");
	th_run_free(&r);

	/* TENDER_CONFIG names another file */
	alt = xasprintf("%s/alt", home);
	free(text);
	text = xasprintf("server = %s\ntoken = %s\n", fx->srv.url, fx->srv.admin_token);
	{
		struct tn_error err;

		assert_int_equal(tn_write_file_atomic(alt, text, strlen(text), 0600, &err), 0);
	}
	env_alt = xasprintf("TENDER_CONFIG=%s", alt);
	{
		const char *env[] = {"PATH=/usr/bin:/bin", env_home, env_alt, NULL};

		run_env(fx, env, &r, 0, "cluster", "ls", NULL);
		expect_in(r.out, "NAME", "TENDER_CONFIG");
		th_run_free(&r);
	}
	th_rmtree(home);
	free(home);
	free(env_home);
	free(bad_url);
	free(env_bad_url);
	free(text);
	free(path);
	free(alt);
	free(env_alt);
}

/* ------------------------------------------------------------ the end */

static void test_server_exits_cleanly(void **state)
{
	struct fx *fx = *state;

	assert_true(th_server_exited_cleanly(&fx->srv, th_server_stop(&fx->srv)));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_help_for_every_command),
	    T(test_completion_matches_help),
	    T(test_usage_errors_exit_2_with_a_hint),
	    T(test_unreachable_server_exits_3),
	    T(test_wrong_or_missing_token_exits_1),
	    T(test_bundle_push_ls_show_rm),
	    T(test_progress_bar_only_on_a_terminal),
	    T(test_dist_push_ls_show_rm),
	    T(test_cluster_create_ls_show_set_rm),
	    T(test_every_verb_reaches_this_server),
	    T(test_enroll_command_and_targets),
	    T(test_rollout_create_approve_watch),
	    T(test_rollout_pause_resume_abort_undo),
	    T(test_watch_bar_on_a_terminal),
	    T(test_events_list_and_pages),
	    T(test_events_follow),
	    T(test_token_create_ls_revoke),
	    T(test_webhook_add_ls_rm),
	    T(test_config_flags_env_file),
	    T(test_server_exits_cleanly),
	};
#undef T
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("cli", tests, group_setup, group_teardown);
}
