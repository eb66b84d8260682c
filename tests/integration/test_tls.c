/* test_tls.c - Tender over HTTPS with a private CA: the certificates are
 * made here with the openssl command (a CA, a server certificate for
 * 127.0.0.1 signed by it, and a second CA that signed nothing of ours), a
 * real tender-server serves HTTPS with them, and each client must verify
 * it: the tender CLI with --cacert works and without it fails naming the
 * certificate problem (exit 3); an agent with --cacert enrolls, deploys
 * educa 1.0 and serves, whether started by hand, by the server's local
 * provider (--agent-cacert passed on) or by install.sh (the CA carried in
 * the script); an agent given the wrong CA refuses to enroll and says
 * why; plain HTTP to the HTTPS port gets no answer and harms nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "nodes.h"
#include "xalloc.h"

#define CONVERGE_S 60.0
#define POLL_MS 50
#define OPENSSL "/usr/bin/openssl"

struct fx {
	struct th_server srv;
	char *dir; /* certificates, scripts, hand-installed nodes */
	char *ca, *other_ca, *cert, *key;
	struct th_agent agent;
};

static struct fx the_fx;

static char *file_in(const char *name)
{
	return xasprintf("%s/%s", the_fx.dir, name);
}

/* Runs openssl with args (NULL-terminated), failing the set-up with its
 * output when it fails. */
static void openssl(const char *const *args)
{
	const char *argv[32] = {OPENSSL};
	char *log = file_in("openssl.log");
	size_t n = 1;
	int rc;

	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = th_run(argv, log, 60);
	if (rc != 0) {
		char *text = NULL;
		size_t len = 0;

		if (tn_read_file(log, 1 << 16, &text, &len, NULL) == 0)
			fprintf(stderr, "# openssl:\n%s", text);
		fail_msg("openssl %s exited with %d", args[0], rc);
	}
	free(log);
}

/* A self-signed CA: DIR/<name>.pem and DIR/<name>.key. */
static char *make_ca(const char *name, const char *cn)
{
	char *pem = xasprintf("%s/%s.pem", the_fx.dir, name);
	char *key = xasprintf("%s/%s.key", the_fx.dir, name);
	char *subj = xasprintf("/CN=%s", cn);
	const char *args[] = {"req",
			      "-x509",
			      "-newkey",
			      "ec",
			      "-pkeyopt",
			      "ec_paramgen_curve:P-256",
			      "-noenc",
			      "-keyout",
			      key,
			      "-out",
			      pem,
			      "-days",
			      "2",
			      "-subj",
			      subj,
			      "-addext",
			      "basicConstraints=critical,CA:TRUE",
			      "-addext",
			      "keyUsage=critical,keyCertSign,cRLSign",
			      NULL};

	openssl(args);
	free(subj);
	free(key);
	return pem;
}

/* The server's certificate for 127.0.0.1, signed by the CA. */
static void make_server_cert(void)
{
	char *csr = file_in("server.csr"), *ext = file_in("server.ext");
	char *ca_key = file_in("ca.key");
	const char *text = "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
			   "extendedKeyUsage=serverAuth\n";
	struct tn_error err;

	the_fx.cert = file_in("server.pem");
	the_fx.key = file_in("server.key");
	assert_int_equal(tn_write_file_atomic(ext, text, strlen(text), 0644, &err), 0);
	{
		const char *req[] = {
		    "req",    "-newkey",       "ec",	   "-pkeyopt", "ec_paramgen_curve:P-256",
		    "-noenc", "-keyout",       the_fx.key, "-out",     csr,
		    "-subj",  "/CN=127.0.0.1", NULL};
		const char *sign[] = {"x509",	   "-req",   "-in",	 csr,		"-CA",
				      the_fx.ca,   "-CAkey", ca_key,	 "-set_serial", "2",
				      "-days",	   "2",	     "-extfile", ext,		"-out",
				      the_fx.cert, NULL};

		openssl(req);
		openssl(sign);
	}
	free(ca_key);
	free(ext);
	free(csr);
}

static json_t *api(const char *method, const char *path, const char *body, long want)
{
	struct th_response r;
	json_t *j;

	th_json(&the_fx.srv, method, path, the_fx.srv.admin_token, body, &r);
	if (r.status != want)
		fail_msg("%s %s: want %ld, got %ld %s", method, path, want, r.status, r.body);
	j = r.json ? json_incref(r.json) : NULL;
	th_response_free(&r);
	return j;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An enrollment token for cluster (created running educa 1.0 the first
 * time). */
static char *enroll_token(const char *cluster, int uses)
{
	char *body = xasprintf("{\"name\": \"%s\", \"distribution\": \"educa@1.0\"}", cluster);
	struct th_response r;
	json_t *j;
	char *token;

	th_json(&the_fx.srv, "POST", "/api/v1/clusters", the_fx.srv.admin_token, body, &r);
	if (r.status != 201 && r.status != 409)
		fail_msg("POST /api/v1/clusters: %ld %s", r.status, r.body);
	th_response_free(&r);
	free(body);
	body = xasprintf("{\"cluster\": \"%s\", \"uses\": %d, \"ttl_s\": 3600}", cluster, uses);
	j = api("POST", "/api/v1/enrollment-tokens", body, 201);
	token = xstrdup(jstr(j, "token"));
	json_decref(j);
	free(body);
	return token;
}

/* Waits until target id runs its desired release, healthy. */
static json_t *wait_running(const char *id)
{
	double deadline = th_now_s() + CONVERGE_S;
	char *path = xasprintf("/api/v1/targets/%s", id);

	for (;;) {
		json_t *t = api("GET", path, NULL, 200);
		const char *actual = jstr(t, "actual");
		const char *want =
		    json_string_value(json_object_get(json_object_get(t, "desired"), "release"));

		if (actual && want && strcmp(actual, want) == 0 &&
		    strcmp(jstr(t, "state"), "running") == 0 &&
		    strcmp(jstr(t, "health"), "healthy") == 0) {
			free(path);
			return t;
		}
		if (th_now_s() > deadline) {
			char *s = json_dumps(t, JSON_COMPACT);

			fail_msg("target %s never ran healthy: %s", id, s);
		}
		json_decref(t);
		th_pause_ms(POLL_MS);
	}
}

/* Waits until GET http://127.0.0.1:port/ answers the page of educa 1.0 on
 * target id. */
static void wait_serves(int port, const char *id)
{
	char *url = xasprintf("http://127.0.0.1:%d/", port);
	char *want = xasprintf("educa-web 1.0.0 on %s: hello from 1.0\n", id);
	double deadline = th_now_s() + CONVERGE_S;
	char body[512];

	for (;;) {
		if (th_get(url, body, sizeof body) == 200 && strcmp(body, want) == 0)
			break;
		if (th_now_s() > deadline)
			fail_msg("%s never answered \"%s\"; last: \"%s\"", url, want, body);
		th_pause_ms(POLL_MS);
	}
	free(want);
	free(url);
}

/* ------------------------------------------------------------ fixture */

static int group_setup(void **state)
{
	struct fx *fx = &the_fx;
	struct th_request up = {.method = "POST",
				.content_type = "application/zip",
				.upload_file = TN_BUILDDIR "/distributions/educa-1.0.zip"};
	struct th_response r;

	fx->dir = th_tmpdir();
	th_guard_dir(fx->dir);
	fx->ca = make_ca("ca", "Tender test CA");
	fx->other_ca = make_ca("other", "Somebody else's CA");
	make_server_cert();
	{
		const char *args[] = {"--tls-cert",	fx->cert, "--tls-key", fx->key,
				      "--agent-cacert", fx->ca,	  NULL};

		th_server_start(&fx->srv, args);
	}
	fx->srv.cacert = fx->ca;
	assert_int_equal(strncmp(fx->srv.url, "https://", 8), 0);
	up.token = fx->srv.admin_token;
	th_http(&fx->srv, "/api/v1/distributions", &up, &r);
	if (r.status != 201)
		fail_msg("upload educa 1.0: %ld %s", r.status, r.body);
	th_response_free(&r);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	int status;

	th_agent_destroy(&fx->agent);
	/* the nodes of the local provider and of install.sh */
	th_kill_under(fx->srv.data_dir);
	th_kill_under(fx->dir);
	status = th_server_stop(&fx->srv);
	assert_true(th_server_exited_cleanly(&fx->srv, status));
	th_server_destroy(&fx->srv);
	th_rmtree(fx->dir);
	free(fx->dir);
	free(fx->ca);
	free(fx->other_ca);
	free(fx->cert);
	free(fx->key);
	return 0;
}

/* ------------------------------------------------------------ the CLI */

/* tender cluster ls against the HTTPS server; its exit status. */
static int cli(struct th_run *r, const char *server, const char *cacert)
{
	char *env_token = xasprintf("TENDER_TOKEN=%s", the_fx.srv.admin_token);
	char *env_home = xasprintf("HOME=%s", the_fx.dir);
	const char *env[] = {"PATH=/usr/bin:/bin", "LANG=C", env_home, env_token, NULL};
	const char *with[] = {"--server", server, "--cacert", cacert, "cluster", "ls", NULL};
	const char *without[] = {"--server", server, "cluster", "ls", NULL};
	int rc = th_tender(r, cacert ? with : without, env);

	free(env_home);
	free(env_token);
	return rc;
}

static void expect_in(const char *text, const char *needle, const char *what)
{
	if (!strstr(text, needle))
		fail_msg("%s: \"%s\" lacks \"%s\"", what, text, needle);
}

static void test_cli_verifies_the_server(void **state)
{
	struct fx *fx = *state;
	struct th_run r;

	assert_int_equal(cli(&r, fx->srv.url, fx->ca), 0);
	expect_in(r.out, "NAME", "cluster ls with --cacert");
	th_run_free(&r);

	/* the system's CAs do not know ours: exit 3, the reason named */
	assert_int_equal(cli(&r, fx->srv.url, NULL), 3);
	expect_in(r.err, "tender: cannot reach https://127.0.0.1:", "without --cacert");
	expect_in(r.err, "SSL certificate problem", "without --cacert");
	assert_string_equal(r.out, "");
	th_run_free(&r);

	/* another CA: the same refusal */
	assert_int_equal(cli(&r, fx->srv.url, fx->other_ca), 3);
	expect_in(r.err, "SSL certificate problem", "with another CA");
	th_run_free(&r);
}

/* ------------------------------------------------------------ agents */

static void test_agent_with_cacert_deploys(void **state)
{
	struct fx *fx = *state;
	char *token = enroll_token("tls", 1);
	const char *args[] = {"--cacert", fx->ca, NULL};
	json_t *t;

	th_agent_start(&fx->agent, fx->srv.url, token, args);
	t = wait_running(fx->agent.target_id);
	assert_non_null(strstr(jstr(t, "actual"), "educa@1.0.0+"));
	wait_serves(fx->agent.port_base, fx->agent.target_id);
	/* a clean exit (no sanitizer report) after polls, reports and
	 * downloads over TLS */
	assert_int_equal(th_agent_stop(&fx->agent), 0);
	json_decref(t);
	free(token);
}

/* The server's local provider starts its agents with --cacert: a target it
 * boots enrolls over HTTPS and runs. */
static void test_provider_passes_the_ca_on(void **state)
{
	json_t *items, *t;
	char *id, *node_dir, *cmdline = NULL, *record = NULL, *path;
	size_t len = 0;
	json_t *rec;

	(void)state;
	json_decref(api("POST", "/api/v1/clusters",
			"{\"name\": \"tls-local\", \"distribution\": \"educa@1.0\"}", 201));
	items = api("POST", "/api/v1/targets", "{\"cluster\": \"tls-local\"}", 202);
	id = xstrdup(jstr(json_array_get(json_object_get(items, "items"), 0), "id"));
	json_decref(items);
	t = wait_running(id);
	json_decref(t);
	/* the agent's command line names the CA */
	node_dir = xasprintf("%s/var/nodes/%s", the_fx.srv.data_dir, id);
	path = xasprintf("%s/node.json", node_dir);
	assert_int_equal(tn_read_file(path, 1 << 16, &record, &len, NULL), 0);
	rec = json_loads(record, 0, NULL);
	assert_non_null(rec);
	free(path);
	path = xasprintf("/proc/%d/cmdline", (int)json_integer_value(json_object_get(rec, "pid")));
	assert_int_equal(tn_read_file(path, 1 << 16, &cmdline, &len, NULL), 0);
	for (size_t i = 0; i + 1 < len; i++)
		if (cmdline[i] == '\0')
			cmdline[i] = ' ';
	expect_in(cmdline, "--cacert ", "the local node's agent");
	expect_in(cmdline, the_fx.ca, "the local node's agent");
	wait_serves((int)json_integer_value(json_object_get(rec, "port_base")), id);
	json_decref(rec);
	free(cmdline);
	free(record);
	free(path);
	free(node_dir);
	free(id);
}

/* An agent given another CA: it does not enroll, says why, and leaves no
 * identity behind. */
static void test_agent_with_wrong_ca_refuses(void **state)
{
	struct fx *fx = *state;
	char *token = enroll_token("tls", 1);
	char *sdir = file_in("wrong-ca"), *ident = xasprintf("%s/agent.json", sdir);
	const char *args[] = {"--state", sdir,	     "--server",   fx->srv.url, "--enroll-token",
			      token,	 "--cacert", fx->other_ca, NULL};
	const char *env[] = {"PATH=/usr/bin:/bin", NULL};
	struct th_run r;

	th_run_start(&r, TN_BUILDDIR "/tender-agent", args, env, false);
	assert_int_equal(th_run_finish(&r, 60), 1);
	expect_in(r.err, "enroll_failed", "the agent's log");
	expect_in(r.err, "SSL certificate problem", "the agent's log");
	expect_in(r.err, fx->srv.url, "the agent's log");
	assert_int_not_equal(access(ident, F_OK), 0);
	th_run_free(&r);
	/* the token was not spent: the right CA enrolls with it */
	{
		struct th_agent ok = {0};
		const char *good[] = {"--cacert", fx->ca, NULL};

		th_agent_start(&ok, fx->srv.url, token, good);
		assert_non_null(ok.target_id);
		th_agent_destroy(&ok);
	}
	free(ident);
	free(sdir);
	free(token);
}

/* ------------------------------------------------------------ install.sh */

/* install.sh carries the server's CA: fetched with curl --cacert, it
 * downloads the agent over HTTPS and starts it with --cacert. */
static void test_install_sh_carries_the_ca(void **state)
{
	struct fx *fx = *state;
	char *script = file_in("install.sh"), *prefix = file_in("bin");
	char *hstate = file_in("hand-state"), *log = file_in("install.log");
	char *token = enroll_token("tls-hand", 1), *ca_text = NULL, *kept = NULL, *agent_json;
	char *base_s, *id = NULL;
	int base = th_port_block(10);
	struct th_request pub = {0};
	struct th_response r;
	struct tn_error err;
	size_t len = 0;
	json_t *ident, *t;
	int rc;

	th_http(&fx->srv, "/install.sh", &pub, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(tn_read_file(fx->ca, 1 << 16, &ca_text, &len, &err), 0);
	expect_in(r.body, ca_text, "install.sh");
	assert_int_equal(tn_write_file_atomic(script, r.body, r.len, 0644, &err), 0);
	th_response_free(&r);

	base_s = xasprintf("%d", base);
	{
		const char *argv[] = {"/bin/sh",     script,	 "--server", fx->srv.url, "--token",
				      token,	     "--prefix", prefix,     "--state",	  hstate,
				      "--port-base", base_s,	 NULL};

		rc = th_run(argv, log, 60);
	}
	if (rc != 0) {
		char *text = NULL;

		if (tn_read_file(log, 1 << 16, &text, &len, NULL) == 0)
			fprintf(stderr, "# install.sh:\n%s", text);
		fail_msg("install.sh exited with %d", rc);
	}
	/* the CA is kept beside the agent's state, for its later starts */
	kept = xasprintf("%s/ca.pem", hstate);
	{
		char *copy = NULL;

		assert_int_equal(tn_read_file(kept, 1 << 16, &copy, &len, &err), 0);
		assert_string_equal(copy, ca_text);
		free(copy);
	}
	agent_json = xasprintf("%s/agent.json", hstate);
	{
		double deadline = th_now_s() + CONVERGE_S;
		char *text = NULL;

		while (tn_read_file(agent_json, 1 << 16, &text, &len, NULL) != 0) {
			if (th_now_s() > deadline)
				fail_msg("the hand-installed agent did not enroll");
			th_pause_ms(POLL_MS);
		}
		ident = json_loads(text, 0, NULL);
		free(text);
	}
	id = xstrdup(jstr(ident, "target_id"));
	t = wait_running(id);
	wait_serves(base, id);
	json_decref(t);
	json_decref(ident);
	assert_int_equal(th_kill_under(hstate), 0);
	free(agent_json);
	free(kept);
	free(id);
	free(base_s);
	free(ca_text);
	free(token);
	free(log);
	free(hstate);
	free(prefix);
	free(script);
}

/* ------------------------------------------------------------ plain HTTP */

/* Plain HTTP to the HTTPS port: no HTTP answer comes back, the CLI says it
 * cannot reach the server, and the server goes on serving HTTPS. */
static void test_plain_http_fails_cleanly(void **state)
{
	struct fx *fx = *state;
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	char *plain = xasprintf("http://%s", fx->srv.url + strlen("https://"));
	char *out = NULL;
	struct th_response r;
	struct th_run run;

	assert_int_equal(th_raw_http(&fx->srv, req, sizeof req - 1, 10, &out), 0);
	assert_null(strstr(out ? out : "", "HTTP/1.1 200"));
	free(out);
	assert_int_equal(cli(&run, plain, NULL), 3);
	expect_in(run.err, "tender: cannot reach http://127.0.0.1:", "plain HTTP");
	th_run_free(&run);
	th_http(&fx->srv, "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	th_response_free(&r);
	free(plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cli_verifies_the_server),
	    cmocka_unit_test(test_agent_with_cacert_deploys),
	    cmocka_unit_test(test_provider_passes_the_ca_on),
	    cmocka_unit_test(test_agent_with_wrong_ca_refuses),
	    cmocka_unit_test(test_install_sh_carries_the_ca),
	    cmocka_unit_test(test_plain_http_fails_cleanly),
	};
	return cmocka_run_group_tests_name("tls", tests, group_setup, group_teardown);
}
