/* test_agent_e2e.c - Tender end to end: a real tender-server and real
 * tender-agent processes on this host, each agent with its own state
 * directory and port block, running the Educa sample application (and
 * test bundles made here from it).  Every assertion is about what a user
 * sees: what the web bundle answers on the agent's port, what the server's
 * API says about targets and rollouts, what the agent's log says, which
 * processes run.  Nothing waits by sleeping: every wait polls HTTP state
 * (or the agent's log, or /proc) until a deadline.
 *
 * Some agents talk to the server through a proxy run by this program
 * (tests/support/proxy.h), which cuts, holds or damages the traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "bundles.h"
#include "fsutil.h"
#include "harness.h"
#include "proxy.h"
#include "sign.h"
#include "xalloc.h"

/* For anything that converges in seconds here (a deploy, a rollout). */
#define CONVERGE_S 45.0
#define POLL_MS 30

#define WEB "org.educa.web"
#define WEB_10 "educa-web 1.0.0 on "
#define WEB_11 "educa-web 1.1.0 on "

#define MAX_AGENTS 8
#define MAX_PROXIES 4

struct fx {
	struct th_server srv;
	/* the two agents of cluster "educa" (tests 1, 2, 4) */
	struct th_agent educa[2];
	char *rel10; /* their release of educa 1.0 */
	/* a test's own agents and proxies, destroyed after it, passed or
	 * failed (a failed test does not get to its own clean-up) */
	struct th_agent agents[MAX_AGENTS];
	size_t nagents;
	struct th_proxy *proxies[MAX_PROXIES];
	size_t nproxies;
	double started;
};

static struct fx the_fx;

static struct th_agent *new_agent(void)
{
	assert_true(the_fx.nagents < MAX_AGENTS);
	return &the_fx.agents[the_fx.nagents++];
}

static struct th_proxy *new_proxy(void)
{
	assert_true(the_fx.nproxies < MAX_PROXIES);
	return the_fx.proxies[the_fx.nproxies++] = th_proxy_start(the_fx.srv.url);
}

/* ------------------------------------------------------------ helpers */

static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	return s ? s : xstrdup("null");
}

/* A string at a dotted path ("last_result.result"), or NULL. */
static const char *jstr(json_t *o, const char *path)
{
	char *copy = xstrdup(path), *save = NULL;
	const char *v;

	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	free(copy);
	v = json_string_value(o);
	return v;
}

static bool jis(json_t *o, const char *path, const char *want)
{
	const char *v = jstr(o, path);

	return v && want && strcmp(v, want) == 0;
}

/* Fails the test, showing the agent's log on stderr first (cmocka cuts
 * long messages). */
static void fail_agent(const struct th_agent *a, const char *fmt, ...) TN_PRINTF(2, 3);
static void fail_agent(const struct th_agent *a, const char *fmt, ...)
{
	char msg[4096];
	char *log = th_agent_log(a);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "--- log of agent %s (%s)\n%s--- end of the agent's log\n",
		a->target_id, a->log_path, log);
	free(log);
	fail_msg("%s", msg);
}

/* GET path with the admin token; the JSON body (caller decrefs). */
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

/* POST body with the admin token, expecting status; the JSON answer
 * (caller decrefs; NULL when there is none). */
static json_t *api_post(const char *path, const char *body, long status)
{
	struct th_response r;
	json_t *j;

	th_json(&the_fx.srv, "POST", path, the_fx.srv.admin_token, body, &r);
	if (r.status != status)
		fail_msg("POST %s %s: want %ld, got %ld %s", path, body ? body : "", status, r.status,
			 r.body);
	j = r.json ? json_incref(r.json) : NULL;
	th_response_free(&r);
	return j;
}

static void post_zip(const char *path, struct buf z)
{
	struct th_request req = {.method = "POST",
				 .token = the_fx.srv.admin_token,
				 .content_type = "application/zip",
				 .body = z.p,
				 .len = z.len};
	struct th_response r;

	th_http(&the_fx.srv, path, &req, &r);
	if (r.status != 201)
		fail_msg("POST %s: %ld %s", path, r.status, r.body);
	th_response_free(&r);
}

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

/* A cluster running dist ("educa@1.0") and an enrollment token for it. */
static char *make_cluster(const char *name, const char *dist, int uses)
{
	char *body = xasprintf("{\"name\": \"%s\", \"distribution\": \"%s\"}", name, dist);
	json_t *j;
	char *token;

	json_decref(api_post("/api/v1/clusters", body, 201));
	free(body);
	body = xasprintf("{\"cluster\": \"%s\", \"uses\": %d, \"ttl_s\": 3600}", name, uses);
	j = api_post("/api/v1/enrollment-tokens", body, 201);
	token = xstrdup(jstr(j, "token"));
	json_decref(j);
	free(body);
	return token;
}

static json_t *target(const struct th_agent *a)
{
	return api_get("/api/v1/targets/%s", a->target_id);
}

/* One GET of the agent's web bundle: false when it does not answer. */
static bool web_get(const struct th_agent *a, const char *path, long *status, char **body)
{
	char *url = xasprintf("http://127.0.0.1:%d%s", a->port_base, path);
	CURL *c = curl_easy_init();
	FILE *mem;
	char *buf = NULL;
	size_t len = 0;
	CURLcode cc;

	mem = open_memstream(&buf, &len);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	fclose(mem);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	free(url);
	if (cc != CURLE_OK) {
		free(buf);
		*body = NULL;
		return false;
	}
	*body = buf;
	return true;
}

/* What GET / answers now ("" when nothing answers); caller frees. */
static char *web_now(const struct th_agent *a)
{
	long status;
	char *body;

	if (!web_get(a, "/", &status, &body))
		return xstrdup("");
	return body;
}

/* Waits until GET / answers 200 with text holding want. */
static void wait_web(const struct th_agent *a, const char *want)
{
	double deadline = th_now_s() + CONVERGE_S;
	char *last = NULL;

	for (;;) {
		long status = 0;
		char *body = NULL;

		if (web_get(a, "/", &status, &body) && status == 200 && strstr(body, want)) {
			free(body);
			free(last);
			return;
		}
		free(last);
		last = body;
		if (th_now_s() > deadline)
			fail_agent(a, "port %d never answered \"%s\"; last: %ld %s", a->port_base,
				   want, status, last ? last : "(no answer)");
		th_pause_ms(POLL_MS);
	}
}

/* GET /counter: it counts the request, and keeps its count in the web
 * bundle's data directory. */
static unsigned long long counter_next(const struct th_agent *a)
{
	long status;
	char *body;
	unsigned long long v;

	if (!web_get(a, "/counter", &status, &body) || status != 200)
		fail_msg("GET /counter on port %d: %ld", a->port_base, status);
	v = strtoull(body, NULL, 10);
	free(body);
	return v;
}

/* Waits until the target is idle on release want (and its report says
 * so), and returns it (caller decrefs). */
static json_t *wait_target_on(const struct th_agent *a, const char *want)
{
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *t = target(a);

		if (jis(t, "actual", want) && jis(t, "phase", "idle") &&
		    jis(t, "desired.release", want))
			return t;
		if (th_now_s() > deadline)
			fail_agent(a, "target %s never became idle on %s: %s", a->target_id, want,
				   dump(t));
		json_decref(t);
		th_pause_ms(POLL_MS);
	}
}

/* Waits until the target's phase is want (for a kill at that moment). */
static void wait_phase(const struct th_agent *a, const char *want)
{
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *t = target(a);
		bool ok = jis(t, "phase", want);

		if (ok) {
			json_decref(t);
			return;
		}
		if (th_now_s() > deadline)
			fail_agent(a, "target %s never reached phase %s: %s", a->target_id, want,
				   dump(t));
		json_decref(t);
		th_pause_ms(10);
	}
}

/* The first deploy: the target's desired release runs and answers. */
static char *wait_deployed(const struct th_agent *a, const char *web_says)
{
	double deadline = th_now_s() + CONVERGE_S;
	json_t *t;
	char *id;

	for (;;) {
		t = target(a);
		if (jstr(t, "desired.release"))
			break;
		json_decref(t);
		if (th_now_s() > deadline)
			fail_msg("target %s has no desired release", a->target_id);
		th_pause_ms(POLL_MS);
	}
	id = xstrdup(jstr(t, "desired.release"));
	json_decref(t);
	json_decref(wait_target_on(a, id));
	wait_web(a, web_says);
	return id;
}

/* Creates a rollout of cluster to dist and approves it; its id. */
static char *rollout(const char *cluster, const char *dist)
{
	char *body = xasprintf("{\"cluster\": \"%s\", \"distribution\": \"%s\"}", cluster, dist);
	char *path;
	json_t *r = api_post("/api/v1/rollouts", body, 201);
	char *id = xstrdup(jstr(r, "id"));

	json_decref(r);
	path = xasprintf("/api/v1/rollouts/%s/approve", id);
	json_decref(api_post(path, NULL, 200));
	free(path);
	free(body);
	return id;
}

/* Waits until the rollout has ended; returns it (caller decrefs). */
static json_t *wait_rollout(const char *id)
{
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *r = api_get("/api/v1/rollouts/%s", id);
		const char *state = jstr(r, "state");

		if (state && strcmp(state, "running") != 0 && strcmp(state, "pending_approval") != 0)
			return r;
		if (th_now_s() > deadline) {
			char *s = dump(r);

			fail_msg("rollout %s did not end: %s", id, s);
		}
		json_decref(r);
		th_pause_ms(POLL_MS);
	}
}

static void expect_rollout(const char *id, const char *state)
{
	json_t *r = wait_rollout(id);

	if (!jis(r, "state", state)) {
		char *s = dump(r);

		fail_msg("rollout %s: want %s, got %s", id, state, s);
	}
	json_decref(r);
}

/* The release the rollout moves the target to. */
/* The rollout's entry for a target: its to_release id (what = "to") or its
 * state in the rollout (what = "state"); caller frees. */
static char *rollout_entry(const char *id, const char *target_id, const char *what)
{
	json_t *r = api_get("/api/v1/rollouts/%s", id), *b, *t;
	size_t i, k;
	char *to = NULL;

	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), k, t) {
			if (jis(t, "id", target_id)) {
				const char *v = strcmp(what, "state") == 0 ? jstr(t, "state")
									   : jstr(t, "to_release.id");

				to = xstrdup(v ? v : jstr(t, "to_release"));
			}
		}
	}
	if (!to) {
		char *s = dump(r);

		fail_msg("rollout %s has no target %s: %s", id, target_id, s);
	}
	json_decref(r);
	return to;
}

static char *rollout_to(const char *id, const char *target_id)
{
	return rollout_entry(id, target_id, "to");
}

static size_t count_procs(const struct th_agent *a, const char *comm)
{
	pid_t pids[64];

	return th_agent_processes(a, comm, pids, 64);
}

static pid_t web_pid(const struct th_agent *a)
{
	pid_t pids[8];
	size_t n = th_agent_processes(a, "educa-web", pids, 8);

	if (n != 1)
		fail_msg("agent %s: %zu educa-web processes run, not 1", a->target_id, n);
	return pids[0];
}

static bool release_on_disk(const struct th_agent *a, const char *id)
{
	char *dir = xasprintf("%s/releases/%s", a->state_dir, id);
	struct stat st;
	bool there = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);

	free(dir);
	return there;
}

/* Stops the agent with SIGTERM: it exits 0, and (in a sanitizer build)
 * its log holds no sanitizer report, from this run or an earlier one. */
static void expect_clean_exit(struct th_agent *a)
{
	int status = th_agent_stop(a);

	if (status != 0 || th_agent_log_has(a, "Sanitizer") ||
	    th_agent_log_has(a, "runtime error"))
		fail_agent(a, "tender-agent exited with %d, or its log has a sanitizer report",
			   status);
}

/* Lines of the agent's log holding needle (and also, when not NULL). */
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

/* Waits until the agent's log has more than `had` lines holding needle
 * (and also, when not NULL). */
static void wait_log(const struct th_agent *a, const char *needle, const char *also, size_t had)
{
	double deadline = th_now_s() + CONVERGE_S;

	while (log_lines(a, needle, also) <= had) {
		if (th_now_s() > deadline)
			fail_agent(a, "the agent never logged \"%s\" with \"%s\"", needle,
				   also ? also : "");
		th_pause_ms(POLL_MS);
	}
}

/* A sorted listing of the files under dir (caller frees). */
static char *listing(const char *dir)
{
	char *cmd = xasprintf("find '%s' -type f | sort", dir);
	FILE *f = popen(cmd, "r");
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	char line[4096];

	while (f && fgets(line, sizeof line, f))
		fputs(line, mem);
	if (f)
		pclose(f);
	fclose(mem);
	free(cmd);
	return out;
}

/* The server's count of blob downloads (every status). */
static long long blob_requests(void)
{
	struct th_request req = {0};
	struct th_response r;
	static const char series[] = "tender_http_requests_total{route=\"/agent/v1/blobs/{}\"";
	long long n = 0;

	th_http(&the_fx.srv, "/metrics", &req, &r);
	if (r.status != 200)
		fail_msg("/metrics: %ld", r.status);
	for (const char *p = r.body; (p = strstr(p, series)); p++) {
		const char *v = strstr(p, "} "); /* the route itself holds "{}" */

		if (v)
			n += strtoll(v + 2, NULL, 10);
	}
	th_response_free(&r);
	return n;
}

/* ------------------------------------------------------------ fixtures */

/* The bundle zip of the sample application with its bundle.json passed
 * through edit (every other entry as it is, modes kept). */
static struct buf variant(const char *sample, void (*edit)(json_t *m, void *ctx), void *ctx)
{
	char *path = xasprintf("%s/bundles/%s", TN_BUILDDIR, sample);
	struct tn_archive *ar = NULL;
	struct tn_error err;
	size_t n;
	struct zentry *es;
	char **data;
	char *manifest = NULL;
	struct buf z;

	if (tn_archive_open(path, NULL, &ar, &err) != 0)
		fail_msg("%s: %s", path, err.message);
	n = tn_archive_entry_count(ar);
	es = xcalloc(n, sizeof *es);
	data = xcalloc(n, sizeof *data);
	for (size_t i = 0; i < n; i++) {
		const struct tn_archive_entry *e = tn_archive_entry(ar, i);
		size_t len = 0;

		es[i].name = e->name;
		if (e->is_dir)
			continue;
		if (tn_archive_read_entry(ar, e->name, 64u << 20, &data[i], &len, &err) != 0)
			fail_msg("%s: %s", path, err.message);
		if (strcmp(e->name, "bundle.json") == 0) {
			json_t *m = json_loadb(data[i], len, 0, NULL);

			assert_non_null(m);
			edit(m, ctx);
			manifest = json_dumps(m, JSON_INDENT(2));
			json_decref(m);
			es[i].data = manifest;
			es[i].len = strlen(manifest);
		} else {
			es[i].data = data[i];
			es[i].len = len;
		}
		es[i].deflate = true;
		es[i].attr = (e->is_exec ? 0100755u : 0100644u) << 16;
	}
	z = build_zip(es, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(data[i]);
	free(data);
	free(es);
	free(manifest);
	tn_archive_close(ar);
	free(path);
	return z;
}

/* The broken web 1.2.0, failing its health within 3 s instead of 30. */
static void short_deadline(json_t *m, void *ctx)
{
	(void)ctx;
	json_object_set_new(json_object_get(m, "health"), "deadline_s", json_integer(3));
}

static void upload_bundle(const char *manifest)
{
	struct buf z = th_bundle_zip(manifest, NULL, 0);

	post_zip("/api/v1/bundles", z);
	free(z.p);
}

static void upload_dist_json(const char *name, const char *version, const char *web_version,
			     const char *extra_bundle, const char *greeting)
{
	char *body = xasprintf(
	    "{\"name\": \"%s\", \"version\": \"%s\", \"bundles\": ["
	    "{\"name\": \"org.educa.web\", \"version\": \"%s\"},"
	    "{\"name\": \"org.educa.worker\", \"version\": \"1.0.0\"}%s%s%s],"
	    " \"config\": {\"org.educa.web\": {\"greeting\": \"%s\"}}}",
	    name, version, web_version, extra_bundle ? ", {\"name\": \"" : "",
	    extra_bundle ? extra_bundle : "", extra_bundle ? "\", \"version\": \"1.0.0\"}" : "",
	    greeting);

	json_decref(api_post("/api/v1/distributions", body, 201));
	free(body);
}

static int group_setup(void **state)
{
	struct fx *fx = &the_fx;
	struct buf broken;

	th_server_start(&fx->srv, NULL);
	upload_file("/api/v1/distributions", TN_BUILDDIR "/distributions/educa-1.0.zip");
	upload_file("/api/v1/distributions", TN_BUILDDIR "/distributions/educa-1.1.zip");

	/* educa 1.2: the broken web, quick to give up */
	broken = variant("org.educa.web-1.2.0.zip", short_deadline, NULL);
	post_zip("/api/v1/bundles", broken);
	free(broken.p);
	upload_dist_json("educa", "1.2", "1.2.0", NULL, "hello from 1.2");

	/* crashy 1.0: web 1.1 and a bundle that exits 1 at once */
	upload_bundle("{\"name\": \"org.test.crash\", \"version\": \"1.0.0\", \"run\": {\"command\":"
		      " [\"/bin/sh\", \"-c\", \"echo 'crash: giving up at once' >&2; exit 1\"]}}");
	upload_dist_json("crashy", "1.0", "1.1.0", "org.test.crash", "hello from crashy");

	/* slowstop 1.0: web 1.0 and a bundle that ignores SIGTERM, so that a
	 * switch away from it lasts its stop_timeout_s */
	upload_bundle("{\"name\": \"org.test.slowstop\", \"version\": \"1.0.0\", \"run\": "
		      "{\"command\": [\"/bin/sh\", \"-c\", \"trap '' TERM; exec sleep 600\"],"
		      " \"stop_timeout_s\": 3}}");
	upload_dist_json("slowstop", "1.0", "1.0.0", "org.test.slowstop", "hello from 1.0");

	/* slowstart 1.0: web 1.1 and a bundle healthy 3 s after its start, so
	 * that the commit lasts that long */
	upload_bundle("{\"name\": \"org.test.slowstart\", \"version\": \"1.0.0\", \"run\": "
		      "{\"command\": [\"/bin/sh\", \"-c\", \"sleep 3; touch ready; exec sleep 600\"]},"
		      " \"health\": {\"exec\": [\"/bin/sh\", \"-c\", \"test -e ready\"],"
		      " \"interval_ms\": 100, \"healthy_after\": 1, \"deadline_s\": 30}}");
	upload_dist_json("slowstart", "1.0", "1.1.0", "org.test.slowstart", "hello from 1.1");

	*state = fx;
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = *state;

	fx->started = th_now_s();
	return 0;
}

/* Whatever the test left (it failed, or it is done with them). */
static int teardown(void **state)
{
	struct fx *fx = *state;

	for (size_t i = 0; i < fx->nagents; i++)
		th_agent_destroy(&fx->agents[i]);
	fx->nagents = 0;
	for (size_t i = 0; i < fx->nproxies; i++)
		th_proxy_stop(fx->proxies[i]);
	fx->nproxies = 0;
	printf("# %.1f s\n", th_now_s() - fx->started);
	fflush(stdout);
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	for (size_t i = 0; i < fx->nagents; i++)
		th_agent_destroy(&fx->agents[i]);
	for (size_t i = 0; i < fx->nproxies; i++)
		th_proxy_stop(fx->proxies[i]);

	for (size_t i = 0; i < 2; i++)
		th_agent_destroy(&fx->educa[i]);
	th_server_destroy(&fx->srv);
	free(fx->rel10);
	return 0;
}

/* ------------------------------------------------------------ 1. deploy */

static void print_memory(const struct th_agent *a)
{
	char *path = xasprintf("/proc/%d/status", (int)a->pid);
	char *text = NULL;
	size_t len = 0;
	const char *rss, *anon;

	if (tn_read_file(path, 1 << 16, &text, &len, NULL) != 0)
		fail_msg("cannot read %s", path);
	rss = strstr(text, "VmRSS:");
	anon = strstr(text, "RssAnon:");
	printf("# idle agent (pid %d): %.*s, %.*s\n", (int)a->pid,
	       rss ? (int)strcspn(rss, "\n") : 0, rss ? rss : "",
	       anon ? (int)strcspn(anon, "\n") : 0, anon ? anon : "");
	fflush(stdout);
	free(text);
	free(path);
}

/* educa 1.0 on a cluster of two agents: both answer, and the server shows
 * both running, healthy, on the release, their last switch succeeded. */
static void test_deploy_two_agents(void **state)
{
	struct fx *fx = *state;
	char *token = make_cluster("educa", "educa@1.0", 2);
	json_t *list, *t;
	size_t i, seen = 0;

	for (size_t k = 0; k < 2; k++)
		th_agent_start(&fx->educa[k], fx->srv.url, token, NULL);
	for (size_t k = 0; k < 2; k++) {
		char *id = wait_deployed(&fx->educa[k], WEB_10);
		char *page = web_now(&fx->educa[k]);
		char *want = xasprintf("educa-web 1.0.0 on %s: hello from 1.0\n",
				       fx->educa[k].target_id);

		assert_string_equal(page, want);
		if (!fx->rel10)
			fx->rel10 = xstrdup(id);
		assert_non_null(strstr(id, "educa@1.0.0+"));
		free(want);
		free(page);
		free(id);
	}

	list = api_get("/api/v1/targets?cluster=educa");
	json_array_foreach(json_object_get(list, "items"), i, t) {
		char *s = dump(t);

		if (!jis(t, "state", "running") || !jis(t, "health", "healthy") ||
		    !jis(t, "actual", jstr(t, "desired.release")) ||
		    !jis(t, "last_result.result", "succeeded") || !jis(t, "phase", "idle"))
			fail_msg("target not running healthy on its release: %s", s);
		assert_true(jis(t, "actual", fx->rel10));
		free(s);
		seen++;
	}
	assert_int_equal(seen, 2);
	json_decref(list);
	for (size_t k = 0; k < 2; k++) {
		assert_int_equal(count_procs(&fx->educa[k], "educa-web"), 1);
		assert_int_equal(count_procs(&fx->educa[k], "educa-worker"), 1);
	}
	print_memory(&fx->educa[0]);
	free(token);
}

/* ------------------------------------------------------------ 2. rolling */

static void test_rollout_keeps_data_and_old_release(void **state)
{
	struct fx *fx = *state;
	unsigned long long before[2];
	char *rel10[2], *id, *cache[2], *cdir[2];
	long long blobs;

	for (size_t k = 0; k < 2; k++) {
		json_t *t = target(&fx->educa[k]);

		rel10[k] = xstrdup(jstr(t, "actual"));
		json_decref(t);
		before[k] = counter_next(&fx->educa[k]);
	}

	id = rollout("educa", "educa@1.1");
	expect_rollout(id, "succeeded");
	for (size_t k = 0; k < 2; k++) {
		char *to = rollout_to(id, fx->educa[k].target_id);
		json_t *t = wait_target_on(&fx->educa[k], to);

		assert_true(jis(t, "last_result.result", "succeeded"));
		wait_web(&fx->educa[k], WEB_11);
		/* the data directory went along */
		assert_int_equal(counter_next(&fx->educa[k]), before[k] + 1);
		/* the release switched from stays on disk */
		assert_true(release_on_disk(&fx->educa[k], rel10[k]));
		assert_true(release_on_disk(&fx->educa[k], to));
		assert_int_equal(count_procs(&fx->educa[k], "educa-web"), 1);
		json_decref(t);
		free(to);
	}
	free(id);

	/* Back to 1.0: found on disk by identity, nothing downloaded. */
	for (size_t k = 0; k < 2; k++) {
		cdir[k] = xasprintf("%s/cache", fx->educa[k].state_dir);
		cache[k] = listing(cdir[k]);
		assert_non_null(strstr(cache[k], "/cache/sha256/"));
	}
	blobs = blob_requests();
	assert_true(blobs >= 4); /* two blobs of 1.0 and one of 1.1, each */
	id = rollout("educa", "educa@1.0");
	expect_rollout(id, "succeeded");
	for (size_t k = 0; k < 2; k++) {
		char *after;

		json_decref(wait_target_on(&fx->educa[k], rel10[k]));
		wait_web(&fx->educa[k], WEB_10);
		assert_int_equal(counter_next(&fx->educa[k]), before[k] + 2);
		after = listing(cdir[k]);
		assert_string_equal(after, cache[k]);
		free(after);
		free(cache[k]);
		free(cdir[k]);
	}
	assert_int_equal(blob_requests(), blobs);
	free(id);
	for (size_t k = 0; k < 2; k++)
		free(rel10[k]);
}

/* ------------------------------------------------------------ 3. crash */

static bool report_shows_failed(json_t *log, const char *bundle, char **reason)
{
	json_t *e;
	size_t i;

	json_array_foreach(log, i, e) {
		json_t *rep, *b;
		size_t k;

		if (!jis(e, "path", "/agent/v1/report") || !jstr(e, "request"))
			continue;
		rep = json_loads(jstr(e, "request"), 0, NULL);
		json_array_foreach(json_object_get(rep, "bundles"), k, b) {
			if (jis(b, "name", bundle) && jis(b, "state", "FAILED") && jstr(b, "reason")) {
				*reason = xstrdup(jstr(b, "reason"));
				json_decref(rep);
				return true;
			}
		}
		json_decref(rep);
	}
	return false;
}

static void test_crashing_bundle_fails_and_rolls_back(void **state)
{
	(void)state;
	static const char *const fast[] = {"--restart-backoff-ms", "50", "--restart-limit", "3",
					   NULL};
	char *token = make_cluster("crash", "educa@1.0", 1);
	struct th_proxy *proxy = new_proxy();
	struct th_agent *a = new_agent();
	char *rel, *id, *reason = NULL;
	json_t *t, *log, *logs;

	th_agent_start(a, th_proxy_url(proxy), token, fast);
	rel = wait_deployed(a, WEB_10);

	id = rollout("crash", "crashy@1.0");
	expect_rollout(id, "rolled_back");
	t = wait_target_on(a, rel);
	if (!jis(t, "last_result.result", "failed") ||
	    !strstr(jstr(t, "last_result.message"), "org.test.crash") ||
	    !strstr(jstr(t, "last_result.message"), "exited with status 1")) {
		char *s = dump(t);

		fail_msg("the target does not say why: %s", s);
	}
	json_decref(t);
	wait_web(a, WEB_10);
	assert_int_equal(count_procs(a, "educa-web"), 1);
	assert_int_equal(count_procs(a, "sh"), 0);

	/* what the agent reported on the way: the bundle FAILED, and why */
	log = th_proxy_log(proxy);
	if (!report_shows_failed(log, "org.test.crash", &reason)) {
		char *s = dump(log);

		fail_msg("no report shows org.test.crash FAILED: %s", s);
	}
	assert_non_null(strstr(reason, "restarted 3 times"));
	assert_non_null(strstr(reason, "exited with status 1"));
	json_decref(log);
	/* and its log tail reached the server */
	logs = api_get("/api/v1/targets/%s/logs?bundle=org.test.crash", a->target_id);
	{
		const char *tail = json_string_value(
		    json_object_get(json_object_get(logs, "logs"), "org.test.crash"));

		assert_non_null(tail);
		assert_non_null(strstr(tail, "crash: giving up at once"));
	}
	json_decref(logs);

	expect_clean_exit(a);
	free(reason);
	free(id);
	free(rel);
	free(token);
}

/* ------------------------------------------------------------ 4. broken */

static void test_broken_release_rolls_back(void **state)
{
	struct fx *fx = *state;
	unsigned long long before[2];
	char *rel[2], *id;

	for (size_t k = 0; k < 2; k++) {
		json_t *t = target(&fx->educa[k]);

		rel[k] = xstrdup(jstr(t, "actual"));
		json_decref(t);
		before[k] = counter_next(&fx->educa[k]);
	}
	/* one target per batch: the first fails, which halts the rollout; the
	 * other is never switched */
	id = rollout("educa", "educa@1.2");
	expect_rollout(id, "rolled_back");
	for (size_t k = 0; k < 2; k++) {
		json_t *t = wait_target_on(&fx->educa[k], rel[k]);
		char *part = rollout_entry(id, fx->educa[k].target_id, "state");
		json_t *logs;
		const char *tail;

		if (strcmp(part, "skipped") == 0) {
			assert_false(jis(t, "last_result.result", "failed"));
			json_decref(t);
			wait_web(&fx->educa[k], WEB_10);
			assert_int_equal(counter_next(&fx->educa[k]), before[k] + 1);
			assert_int_equal(count_procs(&fx->educa[k], "educa-web"), 1);
			free(part);
			free(rel[k]);
			continue;
		}
		assert_string_equal(part, "failed");
		free(part);
		if (!jis(t, "last_result.result", "failed") ||
		    !strstr(jstr(t, "last_result.message"), "HTTP 503")) {
			char *s = dump(t);

			fail_msg("target %s: want a failed last_result saying HTTP 503: %s",
				 fx->educa[k].target_id, s);
		}
		assert_true(jis(t, "state", "running"));
		json_decref(t);
		wait_web(&fx->educa[k], WEB_10);
		assert_int_equal(counter_next(&fx->educa[k]), before[k] + 1);
		assert_int_equal(count_procs(&fx->educa[k], "educa-web"), 1);

		logs = api_get("/api/v1/targets/%s/logs?bundle=" WEB, fx->educa[k].target_id);
		tail = json_string_value(json_object_get(json_object_get(logs, "logs"), WEB));
		assert_non_null(tail);
		assert_non_null(strstr(tail, "educa-web 1.2.0: built broken"));
		json_decref(logs);
		free(rel[k]);
	}
	free(id);
}

/* ------------------------------------------------------------ 5. kill -9 */

/* After a restart the node converges: the target is idle on the release
 * its document runs (the rollout's outcome), the web answers that
 * version, and exactly the bundles of that release run, once each. */
static void expect_converged(const struct th_agent *a, const char *rollout_id,
			     const char *outcome, const char *web_says, const char *const *comms,
			     size_t ncomms)
{
	json_t *r = wait_rollout(rollout_id), *t;
	const char *want;
	pid_t pids[64];
	size_t n;

	if (!jis(r, "state", outcome))
		fail_agent(a, "rollout %s: want %s: %s", rollout_id, outcome, dump(r));
	json_decref(r);
	t = target(a);
	want = jstr(t, "desired.release");
	assert_non_null(want);
	json_decref(wait_target_on(a, want));
	json_decref(t);
	wait_web(a, web_says);
	n = th_agent_processes(a, NULL, pids, 64);
	for (size_t i = 0; i < ncomms; i++)
		if (count_procs(a, comms[i]) != 1)
			fail_msg("%zu %s processes run, not 1", count_procs(a, comms[i]), comms[i]);
	if (n != ncomms) {
		for (size_t i = 0; i < n && i < 64; i++) {
			char *path = xasprintf("/proc/%d/cmdline", (int)pids[i]), *cmd = NULL;
			size_t len = 0;

			if (tn_read_file(path, 4096, &cmd, &len, NULL) == 0) {
				for (size_t k = 0; k < len; k++)
					if (cmd[k] == '\0')
						cmd[k] = ' ';
				fprintf(stderr, "# process %d: %s\n", (int)pids[i], cmd);
			}
			free(cmd);
			free(path);
		}
		fail_agent(a, "%zu processes run for the agent, not %zu", n, ncomms);
	}
}

static void test_kill9_during_prepare(void **state)
{
	(void)state;
	static const char *const web_worker[] = {"educa-web", "educa-worker"};
	char *token = make_cluster("kill-prepare", "educa@1.0", 1);
	struct th_proxy *proxy = new_proxy();
	struct th_agent *a = new_agent();
	double deadline;
	char *rel, *id;

	th_agent_start(a, th_proxy_url(proxy), token, NULL);
	rel = wait_deployed(a, WEB_10);
	th_proxy_stall_blobs(proxy, true);
	id = rollout("kill-prepare", "educa@1.1");
	/* the agent is half-way through a blob, and said it is preparing */
	deadline = th_now_s() + CONVERGE_S;
	while (th_proxy_stalled(proxy) == 0) {
		if (th_now_s() > deadline)
			fail_msg("no blob download was held");
		th_pause_ms(10);
	}
	wait_phase(a, "preparing");
	th_agent_kill9(a);
	th_proxy_stall_blobs(proxy, false);
	wait_web(a, WEB_10); /* the bundles live on without their agent */
	th_agent_restart(a);
	expect_converged(a, id, "succeeded", WEB_11, web_worker, 2);

	expect_clean_exit(a);
	free(id);
	free(rel);
	free(token);
}

static void test_kill9_during_switch(void **state)
{
	struct fx *fx = *state;
	static const char *const web_worker[] = {"educa-web", "educa-worker"};
	char *token = make_cluster("kill-switch", "slowstop@1.0", 1);
	struct th_agent *a = new_agent();
	char *rel, *id;

	th_agent_start(a, fx->srv.url, token, NULL);
	rel = wait_deployed(a, WEB_10);
	assert_int_equal(count_procs(a, "sleep"), 1);
	id = rollout("kill-switch", "educa@1.1");
	/* the slow bundle holds the switch for its stop_timeout_s */
	wait_phase(a, "switching");
	th_agent_kill9(a);
	th_agent_restart(a);
	expect_converged(a, id, "succeeded", WEB_11, web_worker, 2);
	assert_int_equal(count_procs(a, "sleep"), 0);

	expect_clean_exit(a);
	free(id);
	free(rel);
	free(token);
}

static void test_kill9_during_commit(void **state)
{
	struct fx *fx = *state;
	static const char *const three[] = {"educa-web", "educa-worker", "sleep"};
	char *token = make_cluster("kill-commit", "educa@1.0", 1);
	struct th_agent *a = new_agent();
	char *rel, *id;

	th_agent_start(a, fx->srv.url, token, NULL);
	rel = wait_deployed(a, WEB_10);
	id = rollout("kill-commit", "slowstart@1.0");
	/* the slow bundle holds the commit for 3 s */
	wait_phase(a, "committing");
	th_agent_kill9(a);
	th_agent_restart(a);
	expect_converged(a, id, "succeeded", WEB_11, three, 3);

	expect_clean_exit(a);
	free(id);
	free(rel);
	free(token);
}

/* ------------------------------------------------------------ 6. resume */

static void test_download_cut_resumes(void **state)
{
	(void)state;
	enum { CUT = 20000 };
	char *token = make_cluster("resume", "educa@1.0", 1);
	struct th_proxy *proxy = new_proxy();
	struct th_agent *a = new_agent();
	json_t *log, *e;
	char *rel, *cut_path = NULL;
	size_t i;
	bool resumed = false;

	th_proxy_cut_blob_once(proxy, CUT);
	th_agent_start(a, th_proxy_url(proxy), token, NULL);
	rel = wait_deployed(a, WEB_10);

	log = th_proxy_log(proxy);
	json_array_foreach(log, i, e) {
		json_t *cut = json_object_get(e, "cut");

		if (!cut_path && json_is_integer(cut)) {
			assert_int_equal(json_integer_value(cut), CUT);
			cut_path = xstrdup(jstr(e, "path"));
			continue;
		}
		if (cut_path && jis(e, "path", cut_path)) {
			const char *range = jstr(e, "range");
			long long from;

			if (!range || strncmp(range, "bytes=", 6) != 0) {
				char *s = dump(log);

				fail_msg("the download started over: %s", s);
			}
			from = strtoll(range + 6, NULL, 10);
			assert_true(from > 0 && from <= CUT);
			assert_string_equal(range + strcspn(range, "-"), "-");
			assert_int_equal(json_integer_value(json_object_get(e, "status")), 206);
			resumed = true;
		}
	}
	if (!cut_path || !resumed) {
		char *s = dump(log);

		fail_msg("no cut download was resumed: %s", s);
	}

	expect_clean_exit(a);
	json_decref(log);
	free(cut_path);
	free(rel);
	free(token);
}

/* ------------------------------------------------------------ 7. refusals */

/* The agent, restarted (so that it asks for its document at once), is
 * served `body` (signed with sig, or not) and refuses it: its log says
 * why, and what ran runs on, the very same process. */
static void expect_refused(struct th_agent *a, struct th_proxy *proxy, const char *body,
			   const char *sig, const char *why)
{
	size_t had = log_lines(a, "event=document_refused", why);
	pid_t pid = web_pid(a);

	th_proxy_override_desired(proxy, body, sig);
	th_agent_restart(a);
	wait_log(a, "event=document_refused", why, had);
	th_proxy_clear_desired(proxy);
	wait_web(a, WEB_10);
	assert_int_equal(web_pid(a), pid);
	json_t *t = target(a);

	assert_true(jis(t, "actual", jstr(t, "desired.release")));
	json_decref(t);
}

/* The last document the server sent the agent through the proxy. */
static json_t *last_document(struct th_proxy *proxy, bool first)
{
	json_t *log = th_proxy_log(proxy), *e, *found = NULL;
	size_t i;

	json_array_foreach(log, i, e) {
		if (jstr(e, "response") && !json_is_true(json_object_get(e, "overridden"))) {
			json_decref(found);
			found = json_incref(e);
			if (first)
				break;
		}
	}
	json_decref(log);
	assert_non_null(found);
	return found;
}

static void test_refusals(void **state)
{
	struct fx *fx = *state;
	char *token = make_cluster("refuse", "educa@1.0", 1);
	char *other_token = make_cluster("other", "educa@1.0", 1);
	struct th_proxy *proxy = new_proxy();
	struct th_agent *a = new_agent();
	char *rel, *id, *to, *body, *sig, *header;
	json_t *t, *doc, *first, *j;
	struct tn_key *key = NULL;
	struct tn_error err;

	th_agent_start(a, th_proxy_url(proxy), token, NULL);
	rel = wait_deployed(a, WEB_10);

	/* A tampered blob: nothing is switched, the failure says why. */
	th_proxy_flip_blobs(proxy, true);
	id = rollout("refuse", "educa@1.1");
	expect_rollout(id, "rolled_back");
	to = rollout_to(id, a->target_id);
	t = wait_target_on(a, rel);
	if (!jis(t, "last_result.result", "failed") ||
	    !strstr(jstr(t, "last_result.message"), "sha256 mismatch"))
		fail_agent(a, "want a failed last_result saying sha256 mismatch: %s", dump(t));
	json_decref(t);
	assert_false(release_on_disk(a, to));
	assert_true(th_agent_log_has(a, "sha256 mismatch"));
	{
		/* what the agent reported: its prepare failed, and why */
		json_t *log = th_proxy_log(proxy), *e;
		size_t i, started = 0;
		bool said = false;

		json_array_foreach(log, i, e) {
			json_t *rep = jstr(e, "request") && jis(e, "path", "/agent/v1/report")
					  ? json_loads(jstr(e, "request"), 0, NULL)
					  : NULL;

			if (jis(rep, "phase", "prepare") && jis(rep, "state", "started") &&
			    jis(rep, "release", to))
				started++;
			if (jis(rep, "phase", "prepare") && jis(rep, "state", "failed") &&
			    jis(rep, "release", to) && jstr(rep, "message") &&
			    strstr(jstr(rep, "message"), "sha256 mismatch"))
				said = true;
			json_decref(rep);
		}
		if (!said)
			fail_agent(a, "no report of a failed prepare for sha256 mismatch: %s",
				   dump(log));
		/* staged in the background once, fetched for the switch once:
		 * a failed release is not retried on its own */
		if (started < 1 || started > 2)
			fail_agent(a, "%zu prepares of %s started, not 1 or 2", started, to);
		json_decref(log);
	}
	wait_web(a, WEB_10);
	th_proxy_flip_blobs(proxy, false);

	/* Documents the agent must refuse. */
	doc = last_document(proxy, false);
	first = last_document(proxy, true);
	j = json_loads(jstr(doc, "response"), 0, NULL);
	assert_non_null(j);
	/* a newer generation running 1.1: what an attacker would send */
	json_object_set_new(j, "generation",
			    json_integer(json_integer_value(json_object_get(j, "generation")) + 10));
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);

	expect_refused(a, proxy, body, NULL, "unsigned");
	if (tn_key_generate(&key, &err) != 0 || tn_sign_b64(key, body, strlen(body), &sig, &err) != 0)
		fail_msg("signing: %s", err.message);
	header = xasprintf("ed25519=%s", sig);
	expect_refused(a, proxy, body, header, "bad signature");
	/* the server's own signature over another body */
	expect_refused(a, proxy, body, jstr(doc, "signature"), "bad signature");
	/* an older generation, really signed by the server */
	expect_refused(a, proxy, jstr(first, "response"), jstr(first, "signature"),
		       "older generation");
	{
		/* another target's document, really signed by the server */
		char *enroll = xasprintf("{\"enrollment_token\": \"%s\"}", other_token);
		struct th_response r;
		char hbuf[512], *auth;
		const char *tok;

		th_json(&fx->srv, "POST", "/agent/v1/enroll", NULL, enroll, &r);
		assert_int_equal(r.status, 200);
		tok = jstr(r.json, "target_token");
		auth = xasprintf("Authorization: Bearer %s", tok);
		{
			const char *hdrs[] = {auth, NULL};
			struct th_request req = {.headers = hdrs};
			struct th_response d;

			th_http(&fx->srv, "/agent/v1/desired", &req, &d);
			assert_int_equal(d.status, 200);
			assert_non_null(th_header(&d, "Tender-Signature", hbuf, sizeof hbuf));
			expect_refused(a, proxy, d.body, hbuf, "wrong target");
			th_response_free(&d);
		}
		free(auth);
		th_response_free(&r);
		free(enroll);
	}

	expect_clean_exit(a);
	tn_key_free(key);
	json_decref(doc);
	json_decref(first);
	free(header);
	free(sig);
	free(body);
	free(to);
	free(id);
	free(rel);
	free(token);
	free(other_token);
}

/* ------------------------------------------------------------ 8. revoked */

static void test_revoked_token(void **state)
{
	struct fx *fx = *state;
	char *token = make_cluster("revoke", "educa@1.0", 1);
	struct th_agent *a = new_agent();
	char *rel, *path;
	pid_t pid;

	th_agent_start(a, fx->srv.url, token, NULL);
	rel = wait_deployed(a, WEB_10);
	pid = web_pid(a);
	path = xasprintf("/api/v1/targets/%s/revoke", a->target_id);
	json_decref(api_post(path, NULL, 204));
	wait_log(a, "event=poll_failed", "status=401", 0);
	assert_true(th_agent_log_has(a, "the server refused this target's token"));
	wait_web(a, WEB_10);
	assert_int_equal(web_pid(a), pid);
	assert_true(a->pid > 0 && kill(a->pid, 0) == 0);

	expect_clean_exit(a);
	free(path);
	free(rel);
	free(token);
}

/* ------------------------------------------------------------ exits */

/* Sanitizer builds: the agents and the server did not crash, leak or trip
 * UBSan, and say so by exiting 0 with no report in their logs. */
static void test_processes_exit_cleanly(void **state)
{
	struct fx *fx = *state;

	for (size_t k = 0; k < 2; k++)
		if (fx->educa[k].pid > 0)
			expect_clean_exit(&fx->educa[k]);
	assert_true(th_server_exited_cleanly(&fx->srv, th_server_stop(&fx->srv)));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_deploy_two_agents),
	    T(test_rollout_keeps_data_and_old_release),
	    T(test_broken_release_rolls_back),
	    T(test_crashing_bundle_fails_and_rolls_back),
	    T(test_kill9_during_prepare),
	    T(test_kill9_during_switch),
	    T(test_kill9_during_commit),
	    T(test_download_cut_resumes),
	    T(test_refusals),
	    T(test_revoked_token),
	    T(test_processes_exit_cleanly),
	};
#undef T
	/* TN_TEST_FILTER=test_refusals runs one test (a glob). */
	if (getenv("TN_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TN_TEST_FILTER"));
	return cmocka_run_group_tests_name("agent_e2e", tests, group_setup, group_teardown);
}
