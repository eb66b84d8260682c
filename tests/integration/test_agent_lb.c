/* test_agent_lb.c - the agent's half of the load balancer (DESIGN §2
 * "Load balancer", readiness), end to end: a real tender-server and real
 * tender-agent processes running the Educa sample application, and this
 * program playing HAProxy's agent check — it connects to the agent port
 * every ~200 ms and reads the answer, as HAProxy does every agent-inter.
 *   - a switch behind a load balancer: ready, then drain, and the old
 *     release keeps running while a client holds a connection to the serves
 *     port, stops once it closes, and the new release is ready;
 *   - the wait for connections is bounded by --drain-wait-ms, and the
 *     wait for HAProxy to hear "drain" by 5 s;
 *   - a removal: drain, the same wait, then maint;
 *   - without a load balancer (lb null) the agent answers too, and waits
 *     for nothing;
 *   - a document naming another agent port than --agent-port: the agent
 *     answers where the load balancer asks.
 * The cluster's lb names an HAProxy that is not there (127.0.0.1:1): the
 * server's membership half only logs that; the agent's half only needs the
 * document's lb.  Nothing waits by sleeping: every wait polls with a
 * deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

#define CONVERGE_S 45.0
#define POLL_MS 30
#define CHECK_EVERY_MS 200 /* HAProxy's agent-inter, roughly */

#define WEB_10 "educa-web 1.0.0 on "
#define WEB_11 "educa-web 1.1.0 on "
#define READY "up ready 100%\n"
#define DRAIN "drain\n"
#define MAINT "maint\n"

#define LB_JSON "{\"driver\": \"haproxy\", \"admin\": \"127.0.0.1:1\", \"backend\": \"x\"}"

#define MAX_AGENTS 4

struct fx {
	struct th_server srv;
	struct th_agent agents[MAX_AGENTS];
	size_t nagents;
	double started;
};

static struct fx the_fx;

static struct th_agent *new_agent(void)
{
	assert_true(the_fx.nagents < MAX_AGENTS);
	return &the_fx.agents[the_fx.nagents++];
}

/* ------------------------------------------------------------ helpers */

static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	return s ? s : xstrdup("null");
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool jis(json_t *o, const char *key, const char *want)
{
	const char *v = jstr(o, key);

	return v && want && strcmp(v, want) == 0;
}

static void fail_agent(const struct th_agent *a, const char *fmt, ...) TN_PRINTF(2, 3);
static void fail_agent(const struct th_agent *a, const char *fmt, ...)
{
	char msg[4096];
	char *log = th_agent_log(a);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "--- log of agent %s (%s)\n%s--- end of the agent's log\n", a->target_id,
		a->log_path, log);
	free(log);
	fail_msg("%s", msg);
}

static json_t *api_get(const char *fmt, ...) TN_PRINTF(1, 2);
static json_t *api_get(const char *fmt, ...)
{
	struct th_request req = {.token = the_fx.srv.admin_token};
	struct th_response r;
	char *path;
	json_t *j;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&path, fmt, ap) < 0)
		abort();
	va_end(ap);
	th_http(&the_fx.srv, path, &req, &r);
	if (r.status != 200 || !r.json)
		fail_msg("GET %s: %ld %s", path, r.status, r.body);
	j = json_incref(r.json);
	th_response_free(&r);
	free(path);
	return j;
}

static json_t *api_call(const char *method, const char *path, const char *body, long status)
{
	struct th_response r;
	json_t *j;

	th_json(&the_fx.srv, method, path, the_fx.srv.admin_token, body, &r);
	if (r.status != status)
		fail_msg("%s %s %s: want %ld, got %ld %s", method, path, body ? body : "", status,
			 r.status, r.body);
	j = r.json ? json_incref(r.json) : NULL;
	th_response_free(&r);
	return j;
}

/* A cluster running educa 1.0 (lb: a JSON object or NULL) and a one-use
 * enrollment token for it. */
static char *make_cluster(const char *name, const char *lb)
{
	char *body = xasprintf("{\"name\": \"%s\", \"distribution\": \"educa@1.0\"%s%s}", name,
			       lb ? ", \"lb\": " : "", lb ? lb : "");
	json_t *j;
	char *token;

	json_decref(api_call("POST", "/api/v1/clusters", body, 201));
	free(body);
	body = xasprintf("{\"cluster\": \"%s\", \"uses\": 1, \"ttl_s\": 3600}", name);
	j = api_call("POST", "/api/v1/enrollment-tokens", body, 201);
	token = xstrdup(jstr(j, "token"));
	json_decref(j);
	free(body);
	return token;
}

static json_t *target(const struct th_agent *a)
{
	return api_get("/api/v1/targets/%s", a->target_id);
}

/* What GET / of the web bundle answers ("" when nothing does); caller
 * frees. */
static char *web_now(const struct th_agent *a)
{
	char *url = xasprintf("http://127.0.0.1:%d/", a->port_base);
	CURL *c = curl_easy_init();
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	long status = 0;
	CURLcode cc;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	fclose(mem);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	free(url);
	if (cc != CURLE_OK || status != 200) {
		free(buf);
		return xstrdup("");
	}
	return buf;
}

/* Waits until the target is idle on its desired release, and GET /
 * answers with text holding web_says; returns the release (caller frees). */
static char *wait_on(const struct th_agent *a, const char *web_says)
{
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *t = target(a);
		json_t *desired = json_object_get(t, "desired");
		const char *want = jstr(desired, "release");
		char *web = web_now(a);

		if (want && jis(t, "actual", want) && jis(t, "phase", "idle") &&
		    strstr(web, web_says)) {
			char *id = xstrdup(want);

			free(web);
			json_decref(t);
			return id;
		}
		free(web);
		if (th_now_s() > deadline)
			fail_agent(a, "target %s never ran \"%s\": %s", a->target_id, web_says,
				   dump(t));
		json_decref(t);
		th_pause_ms(POLL_MS);
	}
}

/* Creates a rollout of cluster to dist, approves it; its id (caller frees). */
static char *rollout(const char *cluster, const char *dist)
{
	char *body = xasprintf("{\"cluster\": \"%s\", \"distribution\": \"%s\"}", cluster, dist);
	json_t *r = api_call("POST", "/api/v1/rollouts", body, 201);
	char *id = xstrdup(jstr(r, "id"));
	char *path = xasprintf("/api/v1/rollouts/%s/approve", id);

	json_decref(r);
	json_decref(api_call("POST", path, NULL, 200));
	free(path);
	free(body);
	return id;
}

static void expect_rollout(const char *id, const char *state)
{
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *r = api_get("/api/v1/rollouts/%s", id);
		const char *s = jstr(r, "state");

		if (s && strcmp(s, "running") != 0 && strcmp(s, "pending_approval") != 0) {
			if (strcmp(s, state) != 0)
				fail_msg("rollout %s: want %s, got %s", id, state, dump(r));
			json_decref(r);
			return;
		}
		if (th_now_s() > deadline)
			fail_msg("rollout %s did not end: %s", id, dump(r));
		json_decref(r);
		th_pause_ms(POLL_MS);
	}
}

/* Lines of the agent's log holding needle and also (when not NULL). */
static size_t log_lines(const struct th_agent *a, const char *needle, const char *also)
{
	char *log = th_agent_log(a);
	size_t n = 0;

	for (char *line = log, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, needle) && (!also || strstr(line, also)))
			n++;
	}
	free(log);
	return n;
}

/* The number after "key=" on the first log line holding needle; -1 when
 * there is none. */
static long log_number(const struct th_agent *a, const char *needle, const char *key)
{
	char *log = th_agent_log(a);
	char *line = log ? strstr(log, needle) : NULL;
	long v = -1;

	if (line) {
		char *nl = strchr(line, '\n');
		char *at;

		if (nl)
			*nl = '\0';
		at = strstr(line, key);
		if (at)
			v = strtol(at + strlen(key), NULL, 10);
	}
	free(log);
	return v;
}

/* A pid among the agent's educa-web processes, 0 when none runs. */
static pid_t web_pid(const struct th_agent *a)
{
	pid_t pids[8];

	return th_agent_processes(a, "educa-web", pids, 8) >= 1 ? pids[0] : 0;
}

static bool web_runs(const struct th_agent *a, pid_t pid)
{
	pid_t pids[8];
	size_t n = th_agent_processes(a, "educa-web", pids, 8);

	for (size_t i = 0; i < n && i < 8; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* ------------------------------------------------------------ HAProxy, played */

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One agent check on port, as HAProxy makes it (with its agent-send text):
 * the line answered, "" when nobody listens or nothing came in 2 s. */
static void agent_check(int port, char *buf, size_t size)
{
	static const char hello[] = "agent-send from the test\n";
	struct timeval tv = {2, 0};
	int fd = connect_to(port);
	size_t len = 0;

	buf[0] = '\0';
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (write(fd, hello, sizeof hello - 1) < 0) {
		close(fd);
		return;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	buf[len] = '\0';
	close(fd);
}

/* The distinct answers in the order heard (a repeat of the last is not
 * recorded). */
struct heard {
	char answers[16][64];
	size_t n;
};

static const char *last_answer(const struct heard *h)
{
	return h->n ? h->answers[h->n - 1] : "";
}

/* One check, recorded; returns the answer heard. */
static const char *check(struct heard *h, int port)
{
	char buf[64];

	agent_check(port, buf, sizeof buf);
	if (buf[0] && strcmp(buf, last_answer(h)) != 0 && h->n < 16) {
		snprintf(h->answers[h->n], sizeof h->answers[h->n], "%s", buf);
		h->n++;
	}
	return buf[0] ? last_answer(h) : "";
}

/* Checks every CHECK_EVERY_MS until the answer is want. */
static void wait_answer(const struct th_agent *a, struct heard *h, int port, const char *want)
{
	double deadline = th_now_s() + CONVERGE_S;

	while (strcmp(check(h, port), want) != 0) {
		if (th_now_s() > deadline)
			fail_agent(a, "agent port %d never answered %s (last: \"%s\")", port, want,
				   last_answer(h));
		th_pause_ms(CHECK_EVERY_MS);
	}
}

static void expect_heard(const struct th_agent *a, const struct heard *h, size_t n, ...)
{
	char got[512] = "", want[512] = "";
	bool same = h->n == n;
	va_list ap;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		const char *w = va_arg(ap, const char *);

		same = same && strcmp(h->answers[i], w) == 0;
		snprintf(want + strlen(want), sizeof want - strlen(want), "[%.*s] ",
			 (int)strcspn(w, "\n"), w);
	}
	va_end(ap);
	for (size_t i = 0; i < h->n; i++)
		snprintf(got + strlen(got), sizeof got - strlen(got), "[%.*s] ",
			 (int)strcspn(h->answers[i], "\n"), h->answers[i]);
	if (!same)
		fail_agent(a, "answers heard: %s; want %s", got, want);
}

/* ------------------------------------------------------------ setup */

static void upload_file(const char *path, const char *file)
{
	struct th_request req = {.method = "POST",
				 .token = the_fx.srv.admin_token,
				 .content_type = "application/zip",
				 .upload_file = file};
	struct th_response r;

	th_http(&the_fx.srv, path, &req, &r);
	if (r.status != 201)
		fail_msg("POST %s (%s): %ld %s", path, file, r.status, r.body);
	th_response_free(&r);
}

static int group_setup(void **state)
{
	th_server_start(&the_fx.srv, NULL);
	upload_file("/api/v1/distributions", TN_BUILDDIR "/distributions/educa-1.0.zip");
	upload_file("/api/v1/distributions", TN_BUILDDIR "/distributions/educa-1.1.zip");
	*state = &the_fx;
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = *state;

	fx->started = th_now_s();
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	for (size_t i = 0; i < fx->nagents; i++)
		th_agent_destroy(&fx->agents[i]);
	fx->nagents = 0;
	printf("# %.1f s\n", th_now_s() - fx->started);
	fflush(stdout);
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	bool clean;

	for (size_t i = 0; i < fx->nagents; i++)
		th_agent_destroy(&fx->agents[i]);
	clean = th_server_exited_cleanly(&fx->srv, th_server_stop(&fx->srv));
	th_server_destroy(&fx->srv);
	return clean ? 0 : -1;
}

/* A deployed agent in a new cluster behind the (absent) HAProxy, answering
 * ready; *release gets its release (caller frees). */
static struct th_agent *deployed(const char *cluster, const char *lb, const char *drain_wait_ms,
				 char **release)
{
	char *token = make_cluster(cluster, lb);
	struct th_agent *a = new_agent();
	const char *args[] = {"--drain-wait-ms", drain_wait_ms, NULL};
	struct heard h = {0};
	json_t *t;

	th_agent_start(a, the_fx.srv.url, token, args);
	*release = wait_on(a, WEB_10);
	wait_answer(a, &h, a->port_base + 9, READY);
	/* Every report carries the serves port: the server keeps it. */
	t = target(a);
	if (json_integer_value(json_object_get(t, "serves_port")) != a->port_base)
		fail_agent(a, "serves_port is not %d: %s", a->port_base, dump(t));
	json_decref(t);
	free(token);
	return a;
}

/* ------------------------------------------------------------ 1. switch */

/* ready → drain → ready across a switch, and the old release serves on
 * while a client holds a connection to it. */
static void test_switch_waits_for_connections(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-switch", LB_JSON, "30000", &rel10);
	int port = a->port_base + 9;
	struct heard h = {0};
	pid_t old = web_pid(a);
	int held;
	char *ro, *rel11;
	double drained_at = 0, closed_at, deadline;

	(void)state;
	check(&h, port);
	expect_heard(a, &h, 1, READY);
	held = connect_to(a->port_base);
	assert_true(held >= 0);
	ro = rollout("lb-switch", "educa@1.1");

	/* HAProxy hears drain; the old release keeps running and serving
	 * while the connection is open (held for 2 s after the drain). */
	deadline = th_now_s() + CONVERGE_S;
	while (strcmp(check(&h, port), DRAIN) != 0) {
		if (th_now_s() > deadline)
			fail_agent(a, "never answered drain (last: \"%s\")", last_answer(&h));
		th_pause_ms(CHECK_EVERY_MS);
	}
	drained_at = th_now_s();
	while (th_now_s() - drained_at < 2.0) {
		if (strcmp(check(&h, port), DRAIN) != 0 || !web_runs(a, old))
			fail_agent(a,
				   "the old release stopped (or the answer changed to \"%s\") "
				   "while a connection was open",
				   last_answer(&h));
		th_pause_ms(CHECK_EVERY_MS);
	}
	{
		char *web = web_now(a);

		if (!strstr(web, WEB_10))
			fail_agent(a, "the old release no longer serves while draining: \"%s\"",
				   web);
		free(web);
	}

	/* The connection ends: the switch goes on, and the new release is
	 * ready. */
	close(held);
	closed_at = th_now_s();
	wait_answer(a, &h, port, READY);
	rel11 = wait_on(a, WEB_11);
	expect_rollout(ro, "succeeded");
	expect_heard(a, &h, 3, READY, DRAIN, READY);
	assert_false(web_runs(a, old));
	if (log_lines(a, "event=lb_heard", "answer=drain") != 1 ||
	    log_lines(a, "event=drained", NULL) != 1 ||
	    log_lines(a, "event=lb_heard", "answer=ready") < 1 ||
	    log_lines(a, "event=drain_timeout", NULL) != 0)
		fail_agent(a, "the log does not show drain heard, drained, and ready heard");
	/* The wait for the connection lasted about as long as it was held. */
	{
		long ms = log_number(a, "event=drained", "connections_ms=");

		if (ms < 1500)
			fail_agent(a,
				   "drained after %ld ms of waiting for connections, though one "
				   "was held for 2 s",
				   ms);
		printf("# drain: connection held %.1f s after drain, switch went on %.1f s after "
		       "it closed (wait for connections %ld ms)\n",
		       closed_at - drained_at, th_now_s() - closed_at, ms);
	}
	free(rel11);
	free(ro);
	free(rel10);
}

/* ------------------------------------------------------------ 2. bound */

static void test_drain_wait_is_bounded(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-bound", LB_JSON, "1000", &rel10);
	int port = a->port_base + 9;
	struct heard h = {0};
	int held = connect_to(a->port_base);
	char *ro, *rel11;

	(void)state;
	assert_true(held >= 0);
	check(&h, port);
	ro = rollout("lb-bound", "educa@1.1");
	/* The connection stays open: the switch goes on after 1 s anyway. */
	wait_answer(a, &h, port, DRAIN);
	wait_answer(a, &h, port, READY);
	rel11 = wait_on(a, WEB_11);
	expect_rollout(ro, "succeeded");
	expect_heard(a, &h, 3, READY, DRAIN, READY);
	if (log_lines(a, "event=drain_timeout", "connections_left=1") != 1)
		fail_agent(a, "no drain_timeout with connections_left=1 in the log");
	if (log_number(a, "event=drain_timeout", "connections_ms=") < 1000)
		fail_agent(a, "the drain timed out before its 1000 ms");
	close(held);
	free(rel11);
	free(ro);
	free(rel10);
}

/* HAProxy stops asking (a reload, a lost route): a switch waits for it to
 * hear "drain" only so long, then goes on, and says so. */
static void test_unheard_drain_goes_on(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-deaf", LB_JSON, "5000", &rel10);
	char *ro = rollout("lb-deaf", "educa@1.1");
	char *rel11 = wait_on(a, WEB_11);

	(void)state;
	expect_rollout(ro, "succeeded");
	if (log_lines(a, "event=lb_not_heard", "answer=drain") != 1 ||
	    log_lines(a, "event=drained", NULL) != 1 ||
	    log_lines(a, "event=lb_not_heard", "answer=ready") != 1)
		fail_agent(a, "the log does not show drain and ready unheard, and drained");
	free(rel11);
	free(ro);
	free(rel10);
}

/* ------------------------------------------------------------ 3. removal */

static void test_removal_drains_then_maint(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-remove", LB_JSON, "30000", &rel10);
	int port = a->port_base + 9;
	struct heard h = {0};
	pid_t web = web_pid(a);
	int held = connect_to(a->port_base);
	char *path = xasprintf("/api/v1/targets/%s", a->target_id);
	double deadline, drained_at;
	json_t *t;

	(void)state;
	assert_true(held >= 0);
	check(&h, port);
	json_decref(api_call("DELETE", path, NULL, 202));
	wait_answer(a, &h, port, DRAIN);
	/* Held open: the bundles run on, the target stays draining. */
	drained_at = th_now_s();
	while (th_now_s() - drained_at < 1.5) {
		if (strcmp(check(&h, port), DRAIN) != 0 || !web_runs(a, web))
			fail_agent(a,
				   "the bundles stopped while a connection was open (answer "
				   "\"%s\")",
				   last_answer(&h));
		th_pause_ms(CHECK_EVERY_MS);
	}
	t = target(a);
	if (!jis(t, "state", "draining"))
		fail_agent(a, "target not draining while its connections last: %s", dump(t));
	json_decref(t);
	close(held);
	wait_answer(a, &h, port, MAINT);
	expect_heard(a, &h, 3, READY, DRAIN, MAINT);
	assert_false(web_runs(a, web));
	deadline = th_now_s() + CONVERGE_S;
	for (;;) {
		t = target(a);
		if (jis(t, "state", "removed"))
			break;
		if (th_now_s() > deadline)
			fail_agent(a, "target never removed: %s", dump(t));
		json_decref(t);
		th_pause_ms(POLL_MS);
	}
	json_decref(t);
	/* And it keeps saying so. */
	check(&h, port);
	assert_string_equal(last_answer(&h), MAINT);
	free(path);
	free(rel10);
}

/* ------------------------------------------------------------ 4. no lb */

static void test_without_lb_nothing_waits(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-none", NULL, "30000", &rel10);
	int port = a->port_base + 9;
	int held = connect_to(a->port_base);
	char *ro, *rel11;
	struct heard h = {0};

	(void)state;
	assert_true(held >= 0);
	ro = rollout("lb-none", "educa@1.1");
	/* A held connection does not hold a switch without a load balancer. */
	rel11 = wait_on(a, WEB_11);
	expect_rollout(ro, "succeeded");
	wait_answer(a, &h, port, READY);
	if (log_lines(a, "event=drain_started", NULL) != 0 || log_lines(a, "event=lb_", NULL) != 0)
		fail_agent(a, "the agent waited for a load balancer it does not have");
	close(held);
	free(rel11);
	free(ro);
	free(rel10);
}

/* ------------------------------------------------------------ 5. port */

/* Restarted with another --agent-port than it enrolled with: the document
 * names the port the load balancer asks on, and the agent answers there. */
static void test_document_agent_port_wins(void **state)
{
	char *rel10;
	struct th_agent *a = deployed("lb-port", LB_JSON, "5000", &rel10);
	int enrolled = a->port_base + 9, other = a->port_base + 8;
	char other_s[16];
	struct heard h = {0};

	(void)state;
	assert_int_equal(th_agent_stop(a), 0);
	snprintf(other_s, sizeof other_s, "%d", other);
	for (size_t i = 0; a->args[i]; i++)
		free(a->args[i]);
	free(a->args);
	a->args = xcalloc(3, sizeof *a->args);
	a->args[0] = xstrdup("--agent-port");
	a->args[1] = xstrdup(other_s);
	th_agent_restart(a);
	/* It answers on the document's port, ready once the release it
	 * adopted is healthy; and says why once. */
	wait_answer(a, &h, enrolled, READY);
	if (log_lines(a, "event=agent_port_differs", NULL) != 1)
		fail_agent(a, "no single agent_port_differs warning in the log");
	{
		char buf[64];

		agent_check(other, buf, sizeof buf);
		if (buf[0])
			fail_agent(a, "port %d still answers \"%s\"", other, buf);
	}
	free(rel10);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_switch_waits_for_connections), T(test_drain_wait_is_bounded),
	    T(test_unheard_drain_goes_on),	  T(test_removal_drains_then_maint),
	    T(test_without_lb_nothing_waits),	  T(test_document_agent_port_wins),
	};
#undef T
	if (getenv("TN_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TN_TEST_FILTER"));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("agent_lb", tests, group_setup, group_teardown);
}
