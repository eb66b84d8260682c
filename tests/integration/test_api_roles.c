/* test_api_roles.c - the role matrix of the management API, against a real
 * tender-server: every route of tn_routes[] (read from the server library,
 * so a new route is covered without touching this file) called by every
 * kind of caller: no token, an invalid token, a revoked and an expired
 * admin token, viewer, developer, operator and admin.
 *
 *   - a PUBLIC route never answers 401 or 403;
 *   - otherwise a caller without a valid token gets 401 with a message;
 *   - a role below the route's is 403, and the message names the role
 *     needed;
 *   - a role at or above it is neither 401 nor 403 (nor a 5xx): the request
 *     may still be 400 or 404, since the path parameters are dummies.
 *
 * One TAP test case per route, so a failure names the route.  Before them,
 * the table is checked against DESIGN §3; after them, an open event stream
 * must end when its token is revoked or expires, and the server must stop
 * cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fsutil.h"
#include "harness.h"
#include "router.h"
#include "xalloc.h"

/* Dummy values for the {} segments, in order: a name, then a version. */
static const char *const dummy_params[] = {"educa", "1.0.0", "x", "y"};

/* A caller of role TN_ROLE_PUBLIC with a token_name has an admin token
 * that is revoked (revoked) or has expired (otherwise) before the matrix. */
struct caller {
	const char *label;
	const char *token_name; /* NULL: no token created */
	enum tn_role role;	/* TN_ROLE_PUBLIC: not authenticated */
	bool revoked;
	char *token; /* NULL: no Authorization header */
};

#define DEADLINE_S 10

/* Token names must not contain a role name: the 403 message is checked for
 * the needed role's name. */
static struct caller callers[] = {
    {"no token", NULL, TN_ROLE_PUBLIC, false, NULL},
    {"invalid token", NULL, TN_ROLE_PUBLIC, false, NULL},
    {"revoked admin token", "matrix-r", TN_ROLE_PUBLIC, true, NULL},
    {"expired admin token", "matrix-x", TN_ROLE_PUBLIC, false, NULL},
    {"viewer", "matrix-v", TN_ROLE_VIEWER, false, NULL},
    {"developer", "matrix-d", TN_ROLE_DEVELOPER, false, NULL},
    {"operator", "matrix-o", TN_ROLE_OPERATOR, false, NULL},
    {"admin", "matrix-a", TN_ROLE_ADMIN, false, NULL},
};
#define NCALLERS (sizeof callers / sizeof callers[0])

static struct th_server server;
static bool server_up;

/* ------------------------------------------------------------ HTTP probe */

struct probe_result {
	long status;
	char *body;
	size_t len;
};

static size_t probe_body(char *data, size_t size, size_t n, void *ctx)
{
	struct probe_result *r = ctx;

	r->body = xrealloc(r->body, r->len + size * n + 1);
	memcpy(r->body + r->len, data, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	/* A stream (GET /api/v1/events/stream) never ends: its status and
	 * first bytes are all a role check needs. */
	return r->len > 64 * 1024 ? 0 : size * n;
}

struct header_state {
	bool streaming; /* Content-Type: text/event-stream */
};

static size_t probe_header(char *data, size_t size, size_t n, void *ctx)
{
	struct header_state *h = ctx;
	static const char ct[] = "content-type: text/event-stream";

	if (size * n >= sizeof ct - 1 && strncasecmp(data, ct, sizeof ct - 1) == 0)
		h->streaming = true;
	/* End of the header block of a stream: stop here. */
	if (h->streaming && size * n <= 2 && (data[0] == '\r' || data[0] == '\n'))
		return 0;
	return size * n;
}

/* One request; the status and body, whatever the body's shape.  Aborts the
 * test when the server cannot be reached at all. */
static void probe(const char *method, const char *path, const char *token, struct probe_result *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct header_state hs = {false};
	char *url = xasprintf("%s%s", server.url, path);
	char *auth = NULL;
	bool write = strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0 &&
		     strcmp(method, "HEAD") != 0;
	CURLcode cc;

	memset(out, 0, sizeof *out);
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, probe_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, probe_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (token) {
		auth = xasprintf("Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (write) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 2L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if (cc != CURLE_OK && out->status == 0)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
	if (!out->body)
		out->body = xstrdup("");
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
}

/* The error message of an {"error": {"message"}} body, or "". */
static char *error_message(const struct probe_result *r)
{
	json_t *root = json_loadb(r->body, r->len, 0, NULL);
	const char *m =
	    json_string_value(json_object_get(json_object_get(root, "error"), "message"));
	char *out = xstrdup(m ? m : "");

	json_decref(root);
	return out;
}

/* The pattern with every {} replaced by a dummy value. */
static char *concrete_path(const char *pattern)
{
	size_t cap = strlen(pattern) + 64, used = 0, k = 0;
	char *out = xmalloc(cap);

	for (const char *p = pattern; *p;) {
		if (p[0] == '{' && p[1] == '}') {
			const char *v = dummy_params[k < 4 ? k : 3];

			k++;
			used += (size_t)snprintf(out + used, cap - used, "%s", v);
			p += 2;
		} else {
			out[used++] = *p++;
		}
		out[used] = '\0';
	}
	out[used] = '\0';
	return out;
}

/* ------------------------------------------------------------ fixtures */

/* A token of role that expires a second from now (ttl_s 1); its secret,
 * or NULL when the server refused it. */
static char *make_expiring_token(const char *name, const char *role)
{
	char *body = xasprintf("{\"name\": \"%s\", \"role\": \"%s\", \"ttl_s\": 1}", name, role);
	struct th_response r;
	char *secret = NULL;

	th_json(&server, "POST", "/api/v1/tokens", server.admin_token, body, &r);
	if (r.status == 201)
		secret = xstrdup(json_string_value(json_object_get(r.json, "token")));
	else
		fprintf(stderr, "creating token %s: %ld %s\n", name, r.status, r.body);
	th_response_free(&r);
	free(body);
	return secret;
}

/* Polls until token is refused (401), at most DEADLINE_S; 0 once it is. */
static int wait_expired(const char *token)
{
	double deadline = th_now_s() + DEADLINE_S;

	for (;;) {
		struct th_response r;
		long status;

		th_json(&server, "GET", "/api/v1/events?limit=1", token, NULL, &r);
		status = r.status;
		th_response_free(&r);
		if (status == 401)
			return 0;
		if (th_now_s() > deadline) {
			fprintf(stderr, "a token with ttl_s 1 still answers %ld after %d s\n",
				status, DEADLINE_S);
			return -1;
		}
		th_pause_ms(50);
	}
}

/* SIGTERM: the server exits 0, and its log holds no sanitizer report (an
 * ASan build prints leaks and errors there). */
static void assert_stops_cleanly(struct th_server *s)
{
	assert_true(th_server_exited_cleanly(s, th_server_stop(s)));
}

static int group_setup(void **state)
{
	/* The matrix sends about 150 bad tokens from 127.0.0.1 in seconds:
	 * far past the limit on bad credentials, which is not what this file
	 * tests (test_hostile does). */
	static const char *const args[] = {"--auth-fail-limit", "0", NULL};

	(void)state;
	th_server_start(&server, args);
	server_up = true;
	callers[1].token = xstrdup("tn_this-is-not-a-token-of-this-server");
	for (size_t i = 0; i < NCALLERS; i++) {
		struct caller *c = &callers[i];

		if (!c->token_name)
			continue;
		if (c->role == TN_ROLE_PUBLIC && !c->revoked) {
			c->token = make_expiring_token(c->token_name, "admin");
			if (!c->token)
				return -1;
			continue;
		}
		c->token = th_make_token(&server, c->token_name,
					 tn_role_name(c->revoked ? TN_ROLE_ADMIN : c->role));
		if (c->revoked) {
			char *path = xasprintf("/api/v1/tokens/%s", c->token_name);
			struct th_response r;

			th_json(&server, "DELETE", path, server.admin_token, NULL, &r);
			free(path);
			if (r.status != 204) {
				fprintf(stderr, "revoking %s: %ld %s\n", c->token_name, r.status,
					r.body);
				th_response_free(&r);
				return -1;
			}
			th_response_free(&r);
		}
	}
	for (size_t i = 0; i < NCALLERS; i++)
		if (callers[i].role == TN_ROLE_PUBLIC && callers[i].token_name &&
		    !callers[i].revoked && wait_expired(callers[i].token) != 0)
			return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCALLERS; i++) {
		free(callers[i].token);
		callers[i].token = NULL;
	}
	if (server_up)
		th_server_destroy(&server);
	server_up = false;
	return 0;
}

/* ------------------------------------------------------------ the matrix */

static void check_route(void **state)
{
	const struct tn_route *r = *state;
	char *path = concrete_path(r->pattern);

	for (size_t i = 0; i < NCALLERS; i++) {
		const struct caller *who = &callers[i];
		struct probe_result res;
		char *msg;

		probe(r->method, path, who->token, &res);
		msg = error_message(&res);
		if (getenv("TN_TEST_VERBOSE"))
			print_message("# %s %s as %s: %ld %s\n", r->method, path, who->label,
				      res.status, msg);
		if (r->role == TN_ROLE_PUBLIC) {
			if (res.status == 401 || res.status == 403 || res.status >= 500)
				fail_msg("%s %s is public, yet %s got %ld: %s", r->method, path,
					 who->label, res.status, msg);
		} else if (who->role == TN_ROLE_PUBLIC) {
			if (res.status != 401)
				fail_msg("%s %s with %s: expected 401, got %ld: %s", r->method,
					 path, who->label, res.status, msg);
			if (strstr(msg, "token") == NULL)
				fail_msg(
				    "%s %s with %s: the 401 message \"%s\" does not speak of the "
				    "token",
				    r->method, path, who->label, msg);
			/* the expired token: the refusal says so */
			if (who->token_name && !who->revoked && !strstr(msg, "has expired"))
				fail_msg("%s %s with %s: the 401 message \"%s\" does not say the "
					 "token has expired",
					 r->method, path, who->label, msg);
		} else if (who->role < r->role) {
			if (res.status != 403)
				fail_msg("%s %s needs %s; %s got %ld, expected 403: %s", r->method,
					 path, tn_role_name(r->role), who->label, res.status, msg);
			if (strstr(msg, tn_role_name(r->role)) == NULL)
				fail_msg("%s %s: the 403 message \"%s\" does not name the role "
					 "needed (%s)",
					 r->method, path, msg, tn_role_name(r->role));
		} else {
			if (res.status == 401 || res.status == 403 || res.status >= 500 ||
			    res.status < 200)
				fail_msg("%s %s needs %s; %s got %ld: %s", r->method, path,
					 tn_role_name(r->role), who->label, res.status, msg);
		}
		free(msg);
		free(res.body);
	}
	free(path);
}

static bool under(const char *pattern, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(pattern, prefix, n) == 0 && (pattern[n] == '\0' || pattern[n] == '/');
}

/* The role DESIGN §3 gives a route, worked out independently of the table:
 * viewer reads everything; developer also writes bundles and distributions;
 * operator also clusters, targets, rollouts, enrollment tokens and webhooks;
 * admin also API tokens and providers.  -1 for a route §3 does not place
 * (then this function needs the new resource). */
static int design_role(const char *method, const char *pattern)
{
	static const char *const public_routes[] = {"/healthz",
						    "/metrics",
						    "/install.sh",
						    "/downloads/tender-agent",
						    "/downloads/tender-agent.sha256",
						    /* the web console's page and files */
						    "/",
						    "/ui/{}",
						    NULL};
	static const char *const developer[] = {"/api/v1/bundles", "/api/v1/distributions", NULL};
	static const char *const operator[] = {"/api/v1/clusters", "/api/v1/targets",
					       "/api/v1/rollouts", "/api/v1/enrollment-tokens",
					       "/api/v1/webhooks", NULL};
	bool read = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	for (size_t k = 0; public_routes[k]; k++)
		if (strcmp(pattern, public_routes[k]) == 0)
			return read ? TN_ROLE_PUBLIC : -1;
	/* Enrollment is open: the enrollment token in the body is the secret. */
	if (strcmp(pattern, "/agent/v1/enroll") == 0)
		return read ? -1 : TN_ROLE_PUBLIC;
	if (under(pattern, "/agent/v1"))
		return TN_ROLE_AGENT;
	if (under(pattern, "/api/v1/tokens")) /* listing them too: "(admin)" */
		return TN_ROLE_ADMIN;
	if (read && under(pattern, "/api/v1"))
		return TN_ROLE_VIEWER;
	for (size_t k = 0; developer[k]; k++)
		if (under(pattern, developer[k]))
			return TN_ROLE_DEVELOPER;
	for (size_t k = 0; operator[k]; k++)
		if (under(pattern, operator[k]))
			return TN_ROLE_OPERATOR;
	if (under(pattern, "/api/v1/providers"))
		return TN_ROLE_ADMIN;
	return -1;
}

/* The table agrees with DESIGN §3 (the matrix below then checks that the
 * server enforces the table). */
static void test_table_matches_design(void **state)
{
	(void)state;
	assert_true(tn_routes_count > 0);
	for (size_t i = 0; i < tn_routes_count; i++) {
		const struct tn_route *r = &tn_routes[i];
		int want = design_role(r->method, r->pattern);

		if (want < 0)
			fail_msg("%s %s: DESIGN §3 gives it no role that this test knows; "
				 "extend design_role()",
				 r->method, r->pattern);
		if ((int)r->role != want)
			fail_msg("%s %s has role %s in tn_routes[]; DESIGN §3 gives it %s",
				 r->method, r->pattern, tn_role_name(r->role),
				 tn_role_name((enum tn_role)want));
	}
}

/* ------------------------------------------------------------ open streams */

/* GET /api/v1/events/stream read in a thread, whose body the test reads. */
struct watcher {
	pthread_t thread;
	const char *token;
	pthread_mutex_t lock;
	char *body;
	size_t len;
	atomic_bool done, abort;
	long status;
};

static size_t watch_body(char *data, size_t size, size_t n, void *ctx)
{
	struct watcher *w = ctx;

	pthread_mutex_lock(&w->lock);
	w->body = xrealloc(w->body, w->len + size * n + 1);
	memcpy(w->body + w->len, data, size * n);
	w->len += size * n;
	w->body[w->len] = '\0';
	pthread_mutex_unlock(&w->lock);
	return size * n;
}

static int watch_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct watcher *w = ctx;

	(void)a, (void)b, (void)c, (void)d;
	return atomic_load(&w->abort) ? 1 : 0;
}

static void *watch(void *arg)
{
	struct watcher *w = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *url = xasprintf("%s/api/v1/events/stream", server.url);
	char *auth = xasprintf("Authorization: Bearer %s", w->token);

	hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &w->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
	atomic_store(&w->done, true);
	return NULL;
}

static bool watcher_saw(struct watcher *w, const char *text)
{
	bool saw;

	pthread_mutex_lock(&w->lock);
	saw = w->body && strstr(w->body, text);
	pthread_mutex_unlock(&w->lock);
	return saw;
}

static void watcher_stop(struct watcher *w)
{
	atomic_store(&w->abort, true);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
}

static void create_cluster(const char *name)
{
	char *body = xasprintf("{\"name\": \"%s\"}", name);
	struct th_response r;

	th_json(&server, "POST", "/api/v1/clusters", server.admin_token, body, &r);
	if (r.status != 201)
		fail_msg("POST /api/v1/clusters %s: %ld %s", name, r.status, r.body);
	th_response_free(&r);
	free(body);
}

/* Opens a stream with token, checks that it delivers, runs end_token (which
 * revokes the token or waits out its expiry), and then expects the stream
 * to end without delivering anything more. */
static void check_stream_ends(const char *token, const char *tag, void (*end_token)(void))
{
	struct watcher w = {.token = token};
	char *before = xasprintf("%s-before", tag), *after = xasprintf("%s-after", tag);
	double deadline;

	pthread_mutex_init(&w.lock, NULL);
	assert_int_equal(pthread_create(&w.thread, NULL, watch, &w), 0);
	/* The stream starts after the newest event at the time it is opened;
	 * its first bytes (a comment) say it is open. */
	deadline = th_now_s() + DEADLINE_S;
	while (!watcher_saw(&w, "")) {
		if (th_now_s() > deadline || atomic_load(&w.done)) {
			watcher_stop(&w);
			fail_msg("the event stream (status %ld) did not open", w.status);
		}
		th_pause_ms(10);
	}
	create_cluster(before);
	deadline = th_now_s() + DEADLINE_S;
	while (!watcher_saw(&w, before)) {
		if (th_now_s() > deadline || atomic_load(&w.done)) {
			watcher_stop(&w);
			fail_msg(
			    "the event stream (status %ld) did not deliver cluster.create of %s",
			    w.status, before);
		}
		th_pause_ms(10);
	}
	end_token();
	create_cluster(after); /* an event: wakes every stream */
	deadline = th_now_s() + DEADLINE_S;
	while (!atomic_load(&w.done)) {
		if (th_now_s() > deadline) {
			watcher_stop(&w);
			fail_msg("the event stream of the %s token is still open %d s later", tag,
				 DEADLINE_S);
		}
		th_pause_ms(10);
	}
	watcher_stop(&w);
	if (strstr(w.body, after))
		fail_msg("the event stream of the %s token delivered an event after that: %s", tag,
			 w.body);
	free(w.body);
	free(before);
	free(after);
}

static char *stream_token;

static void revoke_stream_token(void)
{
	struct th_response r;

	th_json(&server, "DELETE", "/api/v1/tokens/stream-r", server.admin_token, NULL, &r);
	assert_int_equal(r.status, 204);
	th_response_free(&r);
}

static void expire_stream_token(void)
{
	assert_int_equal(wait_expired(stream_token), 0);
}

/* Revoking a token ends the event streams it opened. */
static void test_revoked_token_ends_its_stream(void **state)
{
	(void)state;
	stream_token = th_make_token(&server, "stream-r", "viewer");
	check_stream_ends(stream_token, "revoked", revoke_stream_token);
	free(stream_token);
}

/* So does its expiry. */
static void test_expired_token_ends_its_stream(void **state)
{
	(void)state;
	stream_token = make_expiring_token("stream-x", "viewer");
	assert_non_null(stream_token);
	check_stream_ends(stream_token, "expired", expire_stream_token);
	free(stream_token);
}

/* Last: after all of the above, the server still stops cleanly. */
static void test_server_stops_cleanly(void **state)
{
	(void)state;
	assert_stops_cleanly(&server);
}

int main(void)
{
	size_t n = tn_routes_count + 4;
	struct CMUnitTest *tests = xcalloc(n, sizeof *tests);
	char **names = xcalloc(n, sizeof *names);
	int rc;

	tests[0] = (struct CMUnitTest)cmocka_unit_test(test_table_matches_design);
	for (size_t i = 0; i < tn_routes_count; i++) {
		names[i + 1] = xasprintf("%s %s (%s)", tn_routes[i].method, tn_routes[i].pattern,
					 tn_role_name(tn_routes[i].role));
		tests[i + 1] = (struct CMUnitTest){.name = names[i + 1],
						   .test_func = check_route,
						   .initial_state = (void *)&tn_routes[i]};
	}
	tests[n - 3] = (struct CMUnitTest)cmocka_unit_test(test_revoked_token_ends_its_stream);
	tests[n - 2] = (struct CMUnitTest)cmocka_unit_test(test_expired_token_ends_its_stream);
	tests[n - 1] = (struct CMUnitTest)cmocka_unit_test(test_server_stops_cleanly);
	rc = _cmocka_run_group_tests("api_roles", tests, n, group_setup, group_teardown);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
