/* test_probe.c - health probes in the loop: http against a tiny server the
 * test runs in the same loop (pass, 503, refused, silent, garbage), tcp,
 * exec (pass, fail with output, timeout, missing), and the tracker's
 * healthy_after counting, deadline, liveness transitions and restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "loop.h"
#include "manifest.h"
#include "probe.h"
#include "xalloc.h"

#define DEADLINE_MS 5000

/* ---------------------------------------------------------------- server */

struct server {
	struct tn_loop *loop;
	int lfd;
	char port[8];
	/* The answer to connection i is answers[min(i, n-1)]; NULL: say
	 * nothing and keep the connection open. */
	const char *answers[8];
	size_t nanswers;
	int conns;
	char request[1024];
	int held[8];
	size_t nheld;
	struct client *clients[32]; /* still reading their request */
};

struct client {
	struct server *srv;
	size_t slot;
	int fd;
	const char *answer;
	char buf[1024];
	size_t got;
};

static void on_client(void *ctx, int fd, short revents)
{
	struct client *c = ctx;
	ssize_t n = read(fd, c->buf + c->got, sizeof c->buf - 1 - c->got);

	if (n > 0) {
		c->got += (size_t)n;
		c->buf[c->got] = '\0';
		if (!strstr(c->buf, "\r\n\r\n"))
			return;
		memcpy(c->srv->request, c->buf, c->got + 1);
		if (c->answer)
			assert_int_equal(write(fd, c->answer, strlen(c->answer)),
					 (ssize_t)strlen(c->answer));
	}
	tn_loop_unwatch(c->srv->loop, fd);
	if (c->answer || n <= 0)
		close(fd);
	else
		c->srv->held[c->srv->nheld++] = fd;
	c->srv->clients[c->slot] = NULL;
	free(c);
}

static void on_accept(void *ctx, int fd, short revents)
{
	struct server *srv = ctx;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *c;
	size_t i;

	if (cfd < 0)
		return;
	i = (size_t)srv->conns < srv->nanswers ? (size_t)srv->conns : srv->nanswers - 1;
	srv->conns++;
	c = xcalloc(1, sizeof *c);
	c->srv = srv;
	c->fd = cfd;
	c->answer = srv->answers[i];
	for (c->slot = 0; srv->clients[c->slot]; c->slot++)
		assert_true(c->slot + 1 < sizeof srv->clients / sizeof srv->clients[0]);
	srv->clients[c->slot] = c;
	tn_loop_watch(srv->loop, cfd, POLLIN, on_client, c);
}

static void server_start(struct server *srv, struct tn_loop *loop)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;

	srv->loop = loop;
	srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(srv->lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(srv->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(srv->lfd, 16), 0);
	assert_int_equal(getsockname(srv->lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(srv->port, sizeof srv->port, "%u", (unsigned)ntohs(sa.sin_port));
	tn_loop_watch(loop, srv->lfd, POLLIN, on_accept, srv);
}

static void server_stop(struct server *srv)
{
	tn_loop_unwatch(srv->loop, srv->lfd);
	close(srv->lfd);
	for (size_t i = 0; i < srv->nheld; i++)
		close(srv->held[i]);
	for (size_t i = 0; i < sizeof srv->clients / sizeof srv->clients[0]; i++) {
		if (!srv->clients[i])
			continue;
		tn_loop_unwatch(srv->loop, srv->clients[i]->fd);
		close(srv->clients[i]->fd);
		free(srv->clients[i]);
	}
}

/* A loopback port nobody listens on (bound, then closed). */
static void closed_port(char *buf, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(buf, size, "%u", (unsigned)ntohs(sa.sin_port));
	close(fd);
}

/* ---------------------------------------------------------------- attempts */

struct result {
	bool done, pass;
	char msg[512];
	uint64_t at;
};

static void on_result(void *ctx, bool pass, const char *message)
{
	struct result *r = ctx;

	assert_false(r->done); /* exactly once */
	r->done = true;
	r->pass = pass;
	r->at = tn_loop_now_ms();
	snprintf(r->msg, sizeof r->msg, "%s", message);
}

/* Runs one attempt to its end; returns how long it took. */
static uint64_t run_probe(struct tn_loop *loop, const struct tn_probe_spec *spec, struct result *r)
{
	uint64_t t0 = tn_loop_now_ms(), end = t0 + DEADLINE_MS;
	struct tn_probe *p;

	memset(r, 0, sizeof *r);
	assert_int_equal(tn_probe_start(loop, spec, on_result, r, &p, NULL), 0);
	assert_non_null(p);
	assert_false(r->done); /* even an instant failure comes from the loop */
	while (!r->done && tn_loop_now_ms() < end)
		tn_loop_run_once(loop, 20);
	assert_true(r->done);
	return r->at - t0;
}

static void test_http_pass_and_request(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct server srv = {.answers = {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
			     .nanswers = 1};
	struct tn_probe_spec spec = {
	    .kind = TN_PROBE_HTTP, .http_path = "/healthz", .timeout_ms = 1000};
	struct result r;
	char *host;

	server_start(&srv, loop);
	spec.port = srv.port;
	run_probe(loop, &spec, &r);
	assert_true(r.pass);
	assert_string_equal(r.msg, "GET /healthz: HTTP 200");
	assert_int_equal(strncmp(srv.request, "GET /healthz HTTP/1.0\r\n", 23), 0);
	host = xasprintf("\r\nHost: 127.0.0.1:%s\r\n", srv.port);
	assert_non_null(strstr(srv.request, host));
	free(host);
	server_stop(&srv);
	tn_loop_free(loop);
}

static void test_http_failures(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct server srv = {.answers = {"HTTP/1.1 503 Service Unavailable\r\n\r\n", "hello\n",
					 "HTTP/1.1 204 No Content\r\n\r\n",
					 "HTTP/1.1 302 Found\r\n\r\n", NULL},
			     .nanswers = 5};
	struct tn_probe_spec spec = {
	    .kind = TN_PROBE_HTTP, .http_path = "/healthz", .timeout_ms = 300};
	struct result r;
	char port[8], *want;
	uint64_t took;

	server_start(&srv, loop);
	spec.port = srv.port;
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "GET /healthz: HTTP 503");
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "GET /healthz: not an HTTP status line: \"hello\"");
	run_probe(loop, &spec, &r);
	assert_true(r.pass); /* any 2xx */
	assert_string_equal(r.msg, "GET /healthz: HTTP 204");
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "GET /healthz: HTTP 302");
	/* Accepted, never answered: bounded by the timeout. */
	took = run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "GET /healthz: no status line within 300 ms");
	assert_true(took >= 300 && took < 2000);
	server_stop(&srv);

	closed_port(port, sizeof port);
	spec.port = port;
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	want = xasprintf("connect 127.0.0.1:%s: Connection refused", port);
	assert_string_equal(r.msg, want);
	free(want);
	tn_loop_free(loop);
}

static void test_tcp(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct server srv = {.answers = {NULL}, .nanswers = 1};
	struct tn_probe_spec spec = {.kind = TN_PROBE_TCP, .timeout_ms = 1000};
	struct result r;
	char port[8], *want;

	server_start(&srv, loop);
	spec.port = srv.port;
	run_probe(loop, &spec, &r);
	assert_true(r.pass);
	want = xasprintf("connect 127.0.0.1:%s: ok", srv.port);
	assert_string_equal(r.msg, want);
	free(want);
	server_stop(&srv);

	closed_port(port, sizeof port);
	spec.port = port;
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	want = xasprintf("connect 127.0.0.1:%s: Connection refused", port);
	assert_string_equal(r.msg, want);
	free(want);
	tn_loop_free(loop);
}

static void test_exec(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	char *dir = th_tmpdir(), *check = xasprintf("%s/check.sh", dir);
	const char *ok[] = {"./check.sh", "0", NULL}, *bad[] = {"./check.sh", "2", NULL};
	const char *slow[] = {"sleep", "30", NULL}, *missing[] = {"tender-no-such-check", NULL};
	struct tn_probe_spec spec = {.kind = TN_PROBE_EXEC, .cwd = dir, .timeout_ms = 300};
	const char *script = "#!/bin/sh\n[ -f check.sh ] || exit 9\n"
			     "[ \"$1\" = 0 ] || echo \"database unreachable\"\nexit $1\n";
	struct result r;
	uint64_t took;

	assert_int_equal(tn_write_file_atomic(check, script, strlen(script), 0755, NULL), 0);
	spec.exec = ok;
	run_probe(loop, &spec, &r);
	assert_true(r.pass);
	assert_string_equal(r.msg, "exec ./check.sh: exit 0");

	spec.exec = bad;
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "exec ./check.sh: exited with status 2: database unreachable");

	spec.exec = slow;
	took = run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "exec sleep: no result within 300 ms");
	assert_true(took >= 300 && took < 2000);

	spec.exec = missing;
	run_probe(loop, &spec, &r);
	assert_false(r.pass);
	assert_string_equal(r.msg, "exec tender-no-such-check: not found in PATH");

	/* Cancelled mid-run: killed and reaped, the callback never comes. */
	{
		struct tn_probe *p;

		memset(&r, 0, sizeof r);
		spec.exec = slow;
		assert_int_equal(tn_probe_start(loop, &spec, on_result, &r, &p, NULL), 0);
		tn_loop_run_once(loop, 10);
		tn_probe_cancel(p);
		for (int i = 0; i < 5; i++)
			tn_loop_run_once(loop, 10);
		assert_false(r.done);
	}
	th_rmtree(dir);
	free(dir);
	free(check);
	tn_loop_free(loop);
}

static void test_bad_specs(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_probe_spec spec = {.kind = TN_PROBE_HTTP, .http_path = "/x", .port = "80a"};
	struct tn_health *h = NULL;
	struct tn_error err;
	const char *none[] = {NULL};

	assert_int_equal(tn_probe_start(loop, &spec, on_result, NULL, NULL, &err), -TN_E_INVALID);
	assert_string_equal(err.message, "health.port: \"80a\" is not a port (1..65535)");
	spec.port = "70000";
	assert_int_equal(tn_health_new(loop, &spec, true, NULL, NULL, &h, &err), -TN_E_INVALID);
	assert_null(h);
	spec.port = "80";
	spec.http_path = "healthz";
	assert_int_equal(tn_probe_start(loop, &spec, on_result, NULL, NULL, &err), -TN_E_INVALID);
	spec = (struct tn_probe_spec){.kind = TN_PROBE_EXEC, .exec = none};
	assert_int_equal(tn_probe_start(loop, &spec, on_result, NULL, NULL, &err), -TN_E_INVALID);
	tn_loop_free(loop);
}

static void test_spec_from_manifest(void **state)
{
	const char *json = "{\"name\": \"web\", \"version\": \"1.0\", \"run\": {\"command\": "
			   "[\"bin/web\"]}, \"health\": {\"http\": \"/healthz\", \"port\": "
			   "\"{{target.port_base}}\", \"interval_ms\": 250, \"healthy_after\": 3, "
			   "\"deadline_s\": 7}}";
	struct tn_manifest *m;
	struct tn_probe_spec spec;

	assert_int_equal(tn_manifest_parse(json, strlen(json), &m, NULL), 0);
	tn_probe_spec_from_manifest(&spec, &m->health, m->has_health);
	assert_int_equal(spec.kind, TN_PROBE_HTTP);
	assert_string_equal(spec.http_path, "/healthz");
	assert_string_equal(spec.port, "{{target.port_base}}");
	assert_int_equal(spec.interval_ms, 250);
	assert_int_equal(spec.timeout_ms, TN_MANIFEST_TIMEOUT_MS);
	assert_int_equal(spec.healthy_after, 3);
	assert_true(spec.deadline_ms == 7000);
	tn_probe_spec_from_manifest(&spec, &m->health, false);
	assert_int_equal(spec.kind, TN_PROBE_NONE);
	tn_manifest_free(m);
}

/* ---------------------------------------------------------------- tracker */

struct events {
	enum tn_health_event ev[16];
	char msg[16][512];
	uint64_t at[16];
	size_t n;
};

static void on_health(void *ctx, enum tn_health_event ev, const char *message)
{
	struct events *e = ctx;

	assert_true(e->n < 16);
	e->ev[e->n] = ev;
	snprintf(e->msg[e->n], sizeof e->msg[0], "%s", message ? message : "");
	e->at[e->n] = tn_loop_now_ms();
	e->n++;
}

static bool run_events(struct tn_loop *loop, struct events *e, size_t n)
{
	uint64_t end = tn_loop_now_ms() + DEADLINE_MS;

	while (e->n < n && tn_loop_now_ms() < end)
		tn_loop_run_once(loop, 20);
	return e->n >= n;
}

static void test_commit_after_consecutive_passes(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	/* pass, fail, then passes: the failure restarts the count. */
	struct server srv = {.answers = {"HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 500 Oops\r\n\r\n",
					 "HTTP/1.0 200 OK\r\n\r\n"},
			     .nanswers = 3};
	struct tn_probe_spec spec = {.kind = TN_PROBE_HTTP,
				     .http_path = "/healthz",
				     .interval_ms = 30,
				     .timeout_ms = 500,
				     .healthy_after = 3,
				     .deadline_ms = 5000};
	struct tn_health *h;
	struct events e = {.n = 0};
	uint64_t t0 = tn_loop_now_ms();

	server_start(&srv, loop);
	spec.port = srv.port;
	assert_int_equal(tn_health_new(loop, &spec, true, on_health, &e, &h, NULL), 0);
	assert_false(tn_health_is_healthy(h));
	assert_true(run_events(loop, &e, 1));
	assert_int_equal(e.ev[0], TN_HEALTH_COMMIT_OK);
	assert_string_equal(tn_health_event_name(e.ev[0]), "commit_ok");
	assert_int_equal(srv.conns, 5); /* 1 pass, 1 fail, 3 passes */
	assert_true(e.at[0] - t0 >= 5 * 30 - 10);
	assert_true(tn_health_is_healthy(h));
	assert_string_equal(tn_health_last_failure(h), "GET /healthz: HTTP 500");
	/* Liveness goes on quietly while all is well. */
	for (int i = 0; i < 6; i++)
		tn_loop_run_once(loop, 30);
	assert_int_equal(e.n, 1);
	assert_true(srv.conns > 5);
	tn_health_free(h);
	server_stop(&srv);
	tn_loop_free(loop);
}

static void test_deadline_expires_with_last_failure(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct server srv = {.answers = {"HTTP/1.1 503 Service Unavailable\r\n\r\n"},
			     .nanswers = 1};
	struct tn_probe_spec spec = {.kind = TN_PROBE_HTTP,
				     .http_path = "/healthz",
				     .interval_ms = 40,
				     .timeout_ms = 500,
				     .healthy_after = 2,
				     .deadline_ms = 300};
	struct tn_health *h;
	struct events e = {.n = 0};
	uint64_t t0 = tn_loop_now_ms();
	int conns;

	server_start(&srv, loop);
	spec.port = srv.port;
	assert_int_equal(tn_health_new(loop, &spec, true, on_health, &e, &h, NULL), 0);
	assert_true(run_events(loop, &e, 1));
	assert_int_equal(e.ev[0], TN_HEALTH_COMMIT_FAIL);
	assert_string_equal(e.msg[0], "no healthy state within 300 ms (0 of 2 passes); "
				      "last failure: GET /healthz: HTTP 503");
	assert_true(e.at[0] - t0 >= 300 && e.at[0] - t0 < 2000);
	/* Probing stops after a failed commit. */
	conns = srv.conns;
	for (int i = 0; i < 5; i++)
		tn_loop_run_once(loop, 40);
	assert_int_equal(srv.conns, conns);
	assert_int_equal(e.n, 1);
	tn_health_free(h);
	server_stop(&srv);
	tn_loop_free(loop);
}

static pid_t fake_pid;

static pid_t fake_up(void *ctx)
{
	return fake_pid;
}

static void test_no_health_section_counts_intervals_up(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_probe_spec spec = {.kind = TN_PROBE_NONE,
				     .interval_ms = 30,
				     .healthy_after = 3,
				     .unhealthy_after = 2,
				     .deadline_ms = 5000,
				     .up = fake_up};
	struct tn_health *h;
	struct events e = {.n = 0};
	uint64_t t0 = tn_loop_now_ms();

	fake_pid = 100;
	assert_int_equal(tn_health_new(loop, &spec, true, on_health, &e, &h, NULL), 0);
	assert_true(run_events(loop, &e, 1));
	assert_int_equal(e.ev[0], TN_HEALTH_COMMIT_OK);
	assert_true(e.at[0] - t0 >= 3 * 30 - 5);

	/* A restart between two probes is reported, then healthy again. */
	fake_pid = 200;
	assert_true(run_events(loop, &e, 3));
	assert_int_equal(e.ev[1], TN_HEALTH_UNHEALTHY);
	assert_string_equal(e.msg[1], "restarted (pid 100 -> 200)");
	assert_int_equal(e.ev[2], TN_HEALTH_HEALTHY);
	assert_true(e.at[2] - e.at[1] >= 3 * 30 - 40);

	/* Down for unhealthy_after intervals. */
	fake_pid = 0;
	assert_true(run_events(loop, &e, 4));
	assert_int_equal(e.ev[3], TN_HEALTH_UNHEALTHY);
	assert_string_equal(e.msg[3], "process not running");
	assert_false(tn_health_is_healthy(h));
	tn_health_free(h);
	tn_loop_free(loop);
}

static void test_liveness_mode_transitions(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct server srv = {.answers = {"HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n",
					 "HTTP/1.0 503 Busy\r\n\r\n"},
			     .nanswers = 3};
	struct tn_probe_spec spec = {.kind = TN_PROBE_HTTP,
				     .http_path = "/ready",
				     .interval_ms = 20,
				     .timeout_ms = 500,
				     .healthy_after = 2,
				     .unhealthy_after = 2};
	struct tn_health *h;
	struct events e = {.n = 0};

	server_start(&srv, loop);
	spec.port = srv.port;
	assert_int_equal(tn_health_new(loop, &spec, false, on_health, &e, &h, NULL), 0);
	assert_true(run_events(loop, &e, 2));
	assert_int_equal(e.ev[0], TN_HEALTH_HEALTHY);
	assert_int_equal(e.ev[1], TN_HEALTH_UNHEALTHY);
	assert_string_equal(e.msg[1], "GET /ready: HTTP 503");
	assert_int_equal(srv.conns, 4); /* 2 passes, 2 failures */
	assert_false(tn_health_is_healthy(h));
	assert_int_equal(tn_health_passes(h), 0);
	tn_health_free(h);
	server_stop(&srv);
	tn_loop_free(loop);
}

static void test_free_with_exec_in_flight(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	const char *slow[] = {"sleep", "30", NULL};
	struct tn_probe_spec spec = {
	    .kind = TN_PROBE_EXEC, .exec = slow, .interval_ms = 10, .timeout_ms = 10000};
	struct tn_health *h;
	struct events e = {.n = 0};

	assert_int_equal(tn_health_new(loop, &spec, true, on_health, &e, &h, NULL), 0);
	for (int i = 0; i < 5; i++)
		tn_loop_run_once(loop, 10);
	/* Killed and reaped: no zombie, no callback. */
	tn_health_free(h);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	for (int i = 0; i < 3; i++)
		tn_loop_run_once(loop, 10);
	assert_int_equal(e.n, 0);
	tn_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_pass_and_request),
	    cmocka_unit_test(test_http_failures),
	    cmocka_unit_test(test_tcp),
	    cmocka_unit_test(test_exec),
	    cmocka_unit_test(test_bad_specs),
	    cmocka_unit_test(test_spec_from_manifest),
	    cmocka_unit_test(test_commit_after_consecutive_passes),
	    cmocka_unit_test(test_deadline_expires_with_last_failure),
	    cmocka_unit_test(test_no_health_section_counts_intervals_up),
	    cmocka_unit_test(test_liveness_mode_transitions),
	    cmocka_unit_test(test_free_with_exec_in_flight),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
