/* test_agent_api.c - the agents' side of a real tender-server (DESIGN §2
 * Release, Desired document, Rollout; §3 agent endpoints), played over
 * plain HTTP by this program.  It is a protocol peer, like curl: it is not
 * the tender-agent and uses none of its code (only common/'s sha256 and
 * Ed25519 verification), so what it checks is the wire protocol an agent
 * relies on:
 *   - enrollment with an operator's enrollment token (uses counted,
 *     unknown or malformed refused) and what the operator then sees;
 *   - the desired document: signed with the key given at enrollment, its
 *     ETag the sha256 of the exact body, If-None-Match, and the long-poll
 *     that parks until the document changes (woken at once by a rollout of
 *     its own cluster, not by another cluster's) or its wait runs out;
 *   - releases (id, bundles, config layered defaults < distribution <
 *     cluster) and the blobs behind them, with Range, and the cap on
 *     downloads in flight (503 + Retry-After; a dropped download frees its
 *     place);
 *   - isolation of target tokens from each other and from the management
 *     API, and revocation;
 *   - reports and the minimal rollout (prepare on create, run on approve,
 *     ended by the reports; a rolled-back target goes back), bad reports;
 *   - the audit events all of this leaves;
 *   - a clean stop (exit 0, no sanitizer report) with a long-poll parked.
 * One server for the whole group; each test works in its own cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bundles.h"
#include "digest.h"
#include "fsutil.h"
#include "harness.h"
#include "json.h"
#include "sign.h"
#include "xalloc.h"
#include "zipwriter.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	struct th_server srv;
	char *ops; /* API tokens of an operator and a viewer */
	char *viewer;
	struct buf web1, web2, db1, stray; /* bundle zips as uploaded */
	char web1_sha[TN_SHA256_HEX_LEN + 1], web2_sha[TN_SHA256_HEX_LEN + 1];
	char db1_sha[TN_SHA256_HEX_LEN + 1], stray_sha[TN_SHA256_HEX_LEN + 1];
};

static void expect_status(const struct th_response *r, long status, const char *what)
{
	if (r->status != status)
		fail_msg("%s: want %ld, got %ld %s", what, status, r->status, r->body);
}

static void get(struct th_server *s, const char *path, const char *token, struct th_response *r)
{
	struct th_request req = {.token = token};

	th_http(s, path, &req, r);
}

/* A JSON request whose body is made from `body` (stolen; NULL: none). */
static void send_json(struct th_server *s, const char *method, const char *path, const char *token,
		      json_t *body, struct th_response *r)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	th_json(s, method, path, token, text, r);
	free(text);
	json_decref(body);
}

static const char *str(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	if (!v) {
		char *dump = json_dumps(obj, JSON_COMPACT);

		fail_msg("no string \"%s\" in %s", key, dump ? dump : "(null)");
	}
	return v;
}

static json_int_t num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v)) {
		char *dump = json_dumps(obj, JSON_COMPACT);

		fail_msg("no integer \"%s\" in %s", key, dump ? dump : "(null)");
	}
	return json_integer_value(v);
}

/* A bundle with a config model, a payload of a few KiB (so that ranges
 * fall inside it) and `salt` in it. */
static struct buf model_bundle(const char *name, const char *version, const char *config_json,
			       const char *salt)
{
	char *manifest = xasprintf("{\"name\": \"%s\", \"version\": \"%s\", \"config\": %s}", name,
				   version, config_json);
	char payload[4096];
	struct zentry files[] = {
	    {.name = "share/"},
	    {.name = "share/payload.bin", .data = payload, .len = sizeof payload}};
	struct buf z;

	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (char)((i * 31 + strlen(salt) * 7 + (unsigned char)salt[0]) & 0xff);
	z = th_bundle_zip(manifest, files, 2);
	free(manifest);
	return z;
}

static const char web_model[] =
    "{\"greeting\": {\"type\": \"string\", \"default\": \"hello\", \"description\": \"shown\"},"
    " \"workers\": {\"type\": \"int\", \"default\": 4, \"description\": \"threads\"},"
    " \"debug\": {\"type\": \"bool\", \"default\": false, \"description\": \"verbose\"}}";
static const char db_model[] =
    "{\"port\": {\"type\": \"int\", \"default\": 5432, \"description\": \"listen port\"}}";

static void upload_bundle(struct th_server *s, struct buf z, char sha[TN_SHA256_HEX_LEN + 1])
{
	struct th_request req = {.method = "POST",
				 .token = s->admin_token,
				 .content_type = "application/zip",
				 .body = z.p,
				 .len = z.len};
	struct th_response r;

	th_http(s, "/api/v1/bundles", &req, &r);
	expect_status(&r, 201, "POST /api/v1/bundles");
	tn_sha256_hex(z.p, z.len, sha);
	assert_string_equal(str(r.json, "sha256"), sha);
	th_response_free(&r);
}

/* Distribution D = shop: 1.0 from JSON naming uploaded bundles, 2.0 from a
 * distribution archive holding the new org.web and naming org.db. */
static int group_setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);
	struct th_server *s = &fx->srv;
	struct th_response r;

	th_server_start(s, NULL);
	fx->ops = th_make_token(s, "ops-olga", "operator");
	fx->viewer = th_make_token(s, "viewer-vic", "viewer");
	fx->web1 = model_bundle("org.web", "1.0", web_model, "web one");
	fx->web2 = model_bundle("org.web", "2.0", web_model, "web two");
	fx->db1 = model_bundle("org.db", "1.0", db_model, "db");
	fx->stray = model_bundle("org.stray", "1.0", db_model, "stray");
	upload_bundle(s, fx->web1, fx->web1_sha);
	upload_bundle(s, fx->db1, fx->db1_sha);
	upload_bundle(s, fx->stray, fx->stray_sha);
	tn_sha256_hex(fx->web2.p, fx->web2.len, fx->web2_sha);

	th_json(s, "POST", "/api/v1/distributions", s->admin_token,
		"{\"name\": \"shop\", \"version\": \"1.0\", \"bundles\": ["
		"{\"name\": \"org.web\", \"version\": \"1.0\"},"
		"{\"name\": \"org.db\", \"version\": \"1.0\"}],"
		" \"config\": {\"org.web\": {\"greeting\": \"from-dist\", \"workers\": 6}}}",
		&r);
	expect_status(&r, 201, "POST distribution shop@1.0");
	th_response_free(&r);
	{
		const struct th_member m[] = {{"web-2.0.zip", fx->web2}};
		struct buf z = th_distribution_zip(
		    "{\"name\": \"shop\", \"version\": \"2.0\","
		    " \"bundles\": [{\"name\": \"org.db\", \"version\": \"1.0\"}],"
		    " \"config\": {\"org.web\": {\"greeting\": \"from-dist-2\"}}}",
		    m, 1);
		struct th_request req = {.method = "POST",
					 .token = s->admin_token,
					 .content_type = "application/zip",
					 .body = z.p,
					 .len = z.len};

		th_http(s, "/api/v1/distributions", &req, &r);
		expect_status(&r, 201, "POST distribution archive shop@2.0");
		th_response_free(&r);
		free(z.p);
	}
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	th_server_destroy(&fx->srv);
	free(fx->ops);
	free(fx->viewer);
	free(fx->web1.p);
	free(fx->web2.p);
	free(fx->db1.p);
	free(fx->stray.p);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ the agent */

struct agent {
	char *id;
	char *token;
	struct tn_key *key; /* the server's, as learnt at enrollment */
	char etag[TN_SHA256_HEX_LEN + 1];
};

static void agent_free(struct agent *a)
{
	free(a->id);
	free(a->token);
	tn_key_free(a->key);
	memset(a, 0, sizeof *a);
}

/* Creates a cluster (distribution and config may be NULL) as the operator. */
static void make_cluster(struct fx *fx, const char *name, const char *dist, const char *config)
{
	char *body =
	    xasprintf("{\"name\": \"%s\"%s%s%s%s%s}", name, dist ? ", \"distribution\": \"" : "",
		      dist ? dist : "", dist ? "\"" : "", config ? ", \"config\": " : "",
		      config ? config : "");
	struct th_response r;

	th_json(&fx->srv, "POST", "/api/v1/clusters", fx->ops, body, &r);
	expect_status(&r, 201, body);
	th_response_free(&r);
	free(body);
}

/* An enrollment token for cluster, good `uses` times; caller frees. */
static char *enrollment_token(struct fx *fx, const char *cluster, int uses)
{
	struct th_response r;
	char *token;

	send_json(&fx->srv, "POST", "/api/v1/enrollment-tokens", fx->ops,
		  json_pack("{s:s, s:i, s:i}", "cluster", cluster, "uses", uses, "ttl_s", 3600),
		  &r);
	expect_status(&r, 201, "POST /api/v1/enrollment-tokens");
	assert_int_equal(num(r.json, "uses"), uses);
	token = xstrdup(str(r.json, "token"));
	th_response_free(&r);
	return token;
}

/* POST /agent/v1/enroll {enrollment_token, inventory, address, agent_port}. */
static void enroll_raw(struct th_server *s, const char *token, const char *hostname,
		       const char *address, struct th_response *r)
{
	send_json(s, "POST", "/agent/v1/enroll", NULL,
		  json_pack("{s:s, s:{s:s, s:s, s:i, s:i, s:s, s:{s:s}}, s:s, s:i}",
			    "enrollment_token", token, "inventory", "hostname", hostname, "os",
			    "debian-12", "cpus", 2, "memory", 2147483647, "agent_version", "0.1.0",
			    "labels", "rack", "r1", "address", address, "agent_port", 9100),
		  r);
}

/* Enrolls and checks the answer {target_id, target_token, server_key,
 * poll_wait_s}. */
static void enroll(struct th_server *s, const char *token, const char *hostname,
		   const char *address, struct agent *a)
{
	struct th_response r;
	struct tn_error err;

	memset(a, 0, sizeof *a);
	enroll_raw(s, token, hostname, address, &r);
	expect_status(&r, 200, "POST /agent/v1/enroll");
	assert_int_equal(json_object_size(r.json), 4);
	a->id = xstrdup(str(r.json, "target_id"));
	a->token = xstrdup(str(r.json, "target_token"));
	assert_true(strncmp(a->id, "t-", 2) == 0);
	assert_true(strlen(a->token) >= 22);
	if (tn_key_from_public_b64(str(r.json, "server_key"), &a->key, &err) != 0)
		fail_msg("server_key \"%s\": %s", str(r.json, "server_key"), err.message);
	assert_true(num(r.json, "poll_wait_s") >= 1 && num(r.json, "poll_wait_s") <= 30);
	th_response_free(&r);
}

/* A 200 desired document must carry a valid signature over the exact body
 * bytes and the sha256 of those bytes as its (quoted) ETag. */
static void check_signed(const struct agent *a, const struct th_response *r)
{
	char sig[256], etag[128], want[128], hex[TN_SHA256_HEX_LEN + 1], type[128];
	struct tn_error err;
	char *tampered;

	if (!th_header(r, "Tender-Signature", sig, sizeof sig))
		fail_msg("no Tender-Signature header: %s", r->headers);
	if (strncmp(sig, "ed25519=", 8) != 0)
		fail_msg("Tender-Signature \"%s\" is not ed25519=<base64>", sig);
	if (tn_verify_b64(a->key, r->body, r->len, sig + 8, &err) != 0)
		fail_msg("the document does not verify with the enrollment key: %s\n%s",
			 err.message, r->body);
	/* ... and the check is real: one byte changed does not verify */
	tampered = xstrdup(r->body);
	tampered[r->len / 2] ^= 1;
	assert_int_not_equal(tn_verify_b64(a->key, tampered, r->len, sig + 8, &err), 0);
	free(tampered);
	tn_sha256_hex(r->body, r->len, hex);
	snprintf(want, sizeof want, "\"%s\"", hex);
	if (!th_header(r, "ETag", etag, sizeof etag))
		fail_msg("no ETag header: %s", r->headers);
	assert_string_equal(etag, want);
	assert_non_null(th_header(r, "Content-Type", type, sizeof type));
	assert_non_null(strstr(type, "application/json"));
	assert_non_null(r->json);
}

/* GET /agent/v1/desired[?query] as a, with If-None-Match: "etag" when etag
 * is not NULL.  A 200 is checked (signature, ETag, own target_id) and
 * remembered in a->etag; returns the status, the document in *doc (a new
 * reference, or NULL for a 304). */
static long desired(struct th_server *s, struct agent *a, const char *query, const char *etag,
		    json_t **doc)
{
	char *path = xasprintf("/agent/v1/desired%s%s", query ? "?" : "", query ? query : "");
	char *inm = etag ? xasprintf("If-None-Match: \"%s\"", etag) : NULL;
	const char *hdrs[] = {inm, NULL};
	struct th_request req = {.token = a->token, .headers = inm ? hdrs : NULL};
	struct th_response r;
	long status;

	th_http(s, path, &req, &r);
	status = r.status;
	*doc = NULL;
	if (status == 200) {
		check_signed(a, &r);
		assert_string_equal(str(r.json, "target_id"), a->id);
		tn_sha256_hex(r.body, r.len, a->etag);
		*doc = json_incref(r.json);
	} else if (status != 304) {
		fail_msg("GET %s: %ld %s", path, status, r.body);
	} else {
		assert_int_equal(r.len, 0);
	}
	th_response_free(&r);
	free(path);
	free(inm);
	return status;
}

/* The current document (must be a 200). */
static json_t *document(struct th_server *s, struct agent *a)
{
	json_t *doc;

	if (desired(s, a, NULL, NULL, &doc) != 200)
		fail_msg("no document for %s", a->id);
	return doc;
}

static const char *release_id(json_t *doc, const char *which)
{
	return json_string_value(json_object_get(json_object_get(doc, which), "id"));
}

/* GET /api/v1/targets/{id} as the viewer. */
static json_t *target(struct fx *fx, const char *id)
{
	char *path = xasprintf("/api/v1/targets/%s", id);
	struct th_response r;
	json_t *t;

	get(&fx->srv, path, fx->viewer, &r);
	expect_status(&r, 200, path);
	t = json_incref(r.json);
	th_response_free(&r);
	free(path);
	return t;
}

/* POST /agent/v1/report as a; returns the status (the response freed). */
static long report(struct th_server *s, const struct agent *a, json_t *body)
{
	struct th_response r;
	long status;

	send_json(s, "POST", "/agent/v1/report", a ? a->token : NULL, body, &r);
	status = r.status;
	if (status >= 400 && !*th_error_message(&r))
		fail_msg("report refused (%ld) without a message: %s", status, r.body);
	th_response_free(&r);
	return status;
}

/* The actions of the audit events after `after` that succeeded, about
 * object_id (or all when NULL), as one string "a,b,c,".  (Refused writes
 * are in the log too, with their outcome.) */
static char *actions_after(struct th_server *s, long long after, const char *object_id)
{
	json_t *events = th_events_after(s, after), *e;
	char *out = xstrdup("");
	size_t i;

	json_array_foreach(events, i, e)
	{
		char *next;

		if (object_id && (!json_is_string(json_object_get(e, "object_id")) ||
				  strcmp(str(e, "object_id"), object_id) != 0))
			continue;
		if (strcmp(str(e, "outcome"), "ok") != 0)
			continue;
		next = xasprintf("%s%s,", out, str(e, "action"));
		free(out);
		out = next;
	}
	json_decref(events);
	return out;
}

/* The event of `action` on object_id after `after`, or NULL (new ref). */
static json_t *event_of(struct th_server *s, long long after, const char *action,
			const char *object_id)
{
	json_t *events = th_events_after(s, after), *e, *found = NULL;
	size_t i;

	json_array_foreach(events, i, e)
	{
		if (strcmp(str(e, "action"), action) == 0 &&
		    json_is_string(json_object_get(e, "object_id")) &&
		    strcmp(str(e, "object_id"), object_id) == 0) {
			found = json_incref(e);
			break;
		}
	}
	json_decref(events);
	return found;
}

/* ------------------------------------------------------------ enrollment */

static void test_enroll_and_what_the_operator_sees(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	long long before = th_last_event_id(s);
	char *once, *twice;
	struct agent a, b, c;
	struct th_response r;
	json_t *items, *t, *ev;

	make_cluster(fx, "enroll", NULL, NULL);
	once = enrollment_token(fx, "enroll", 1);
	twice = enrollment_token(fx, "enroll", 2);

	enroll(s, once, "node-a", "10.0.0.5", &a);
	/* the token is used up: a second enrollment is refused, saying why */
	enroll_raw(s, once, "node-x", "10.0.0.9", &r);
	expect_status(&r, 401, "a used-up enrollment token");
	assert_string_equal(th_error_code(&r), "unauthorized");
	assert_non_null(strstr(th_error_message(&r), "used up"));
	th_response_free(&r);

	/* uses 2: two targets, then refused */
	enroll(s, twice, "node-b", "10.0.0.6", &b);
	enroll(s, twice, "node-c", "10.0.0.7", &c);
	assert_string_not_equal(b.id, c.id);
	assert_string_not_equal(b.token, c.token);
	enroll_raw(s, twice, "node-y", "10.0.0.10", &r);
	expect_status(&r, 401, "a third enrollment with uses 2");
	assert_non_null(strstr(th_error_message(&r), "used up"));
	th_response_free(&r);

	/* unknown token */
	enroll_raw(s, "tne_no-such-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "node-z",
		   "10.0.0.11", &r);
	expect_status(&r, 401, "an unknown enrollment token");
	assert_non_null(strstr(th_error_message(&r), "unknown enrollment token"));
	th_response_free(&r);

	/* malformed bodies: 400 with a message, nothing enrolled */
	{
		static const char *const bad[] = {
		    "{",
		    "[]",
		    "{}",
		    "{\"enrollment_token\": 5}",
		    "{\"enrollment_token\": \"x\", \"inventory\": \"big\"}",
		    "{\"enrollment_token\": \"x\", \"address\": 7}",
		    "{\"enrollment_token\": \"x\", \"agent_port\": 70000}",
		    "{\"enrollment_token\": \"x\", \"surprise\": true}",
		};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			th_json(s, "POST", "/agent/v1/enroll", NULL, bad[i], &r);
			if (r.status != 400 || !*th_error_message(&r))
				fail_msg("enroll with %s: want 400 and a message, got %ld %s",
					 bad[i], r.status, r.body);
			th_response_free(&r);
		}
	}

	/* the operator sees exactly the three targets, enrolled, with what
	 * their agents sent */
	get(s, "/api/v1/targets?cluster=enroll", fx->viewer, &r);
	expect_status(&r, 200, "GET /api/v1/targets?cluster=enroll");
	items = json_object_get(r.json, "items");
	assert_int_equal(json_array_size(items), 3);
	t = json_array_get(items, 0);
	assert_string_equal(str(t, "id"), a.id);
	assert_string_equal(str(t, "cluster"), "enroll");
	assert_string_equal(str(t, "state"), "enrolled");
	assert_string_equal(str(t, "address"), "10.0.0.5");
	assert_int_equal(num(t, "agent_port"), 9100);
	assert_string_equal(str(t, "provider"), "manual");
	assert_string_equal(str(json_object_get(t, "inventory"), "hostname"), "node-a");
	assert_string_equal(str(json_object_get(t, "inventory"), "os"), "debian-12");
	assert_int_equal(num(json_object_get(t, "inventory"), "cpus"), 2);
	assert_string_equal(str(json_object_get(json_object_get(t, "inventory"), "labels"), "rack"),
			    "r1");
	assert_string_equal(str(json_array_get(items, 1), "id"), b.id);
	assert_string_equal(str(json_array_get(items, 2), "address"), "10.0.0.7");
	th_response_free(&r);
	t = target(fx, b.id);
	assert_string_equal(str(t, "state"), "enrolled");
	assert_string_equal(str(json_object_get(t, "inventory"), "hostname"), "node-b");
	assert_true(json_is_string(json_object_get(t, "last_seen")));
	json_decref(t);
	get(s, "/api/v1/targets?state=enrolled&cluster=enroll", fx->viewer, &r);
	expect_status(&r, 200, "GET /api/v1/targets?state=enrolled");
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
	th_response_free(&r);

	/* every enrollment is in the audit log, done by the target itself */
	ev = event_of(s, before, "target.enroll", a.id);
	if (!ev)
		fail_msg("no target.enroll event for %s", a.id);
	assert_string_equal(str(ev, "actor"), a.id);
	assert_string_equal(str(ev, "object_type"), "target");
	json_decref(ev);
	{
		char *acts = actions_after(s, before, NULL);
		size_t n = 0;

		for (const char *p = acts; (p = strstr(p, "target.enroll,")); p++)
			n++;
		assert_int_equal(n, 3); /* refused enrollments made no target */
		free(acts);
	}
	agent_free(&a);
	agent_free(&b);
	agent_free(&c);
	free(once);
	free(twice);
}

/* ------------------------------------------------------------ the document */

static void test_desired_document_signed_with_etag(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok;
	struct agent a, b;
	char etag[TN_SHA256_HEX_LEN + 1];
	json_t *doc, *again;
	struct th_response r;

	make_cluster(fx, "waiting", NULL, NULL);
	tok = enrollment_token(fx, "waiting", 2);
	enroll(s, tok, "node-w", "10.0.1.1", &a);
	enroll(s, tok, "node-v", "10.0.1.2", &b);

	doc = document(s, &a);
	assert_string_equal(str(doc, "target_id"), a.id);
	assert_string_equal(str(doc, "cluster"), "waiting");
	assert_true(num(doc, "generation") >= 1);
	assert_string_equal(str(doc, "state"), "active");
	assert_true(json_is_null(json_object_get(doc, "run"))); /* no distribution yet */
	assert_true(json_is_null(json_object_get(doc, "prepare")));
	assert_non_null(json_object_get(doc, "lb"));
	memcpy(etag, a.etag, sizeof etag);

	/* unchanged: the same bytes again, 304 for If-None-Match */
	assert_int_equal(desired(s, &a, NULL, NULL, &again), 200);
	assert_true(json_equal(doc, again));
	assert_string_equal(a.etag, etag);
	json_decref(again);
	assert_int_equal(desired(s, &a, NULL, etag, &again), 304);
	assert_int_equal(desired(s, &a, "wait=0", etag, &again), 304);
	{
		char *inm = xasprintf("If-None-Match: W/\"%s\"", etag);
		const char *hdrs[] = {inm, NULL};
		struct th_request req = {.token = a.token, .headers = hdrs};
		char h[128];

		th_http(s, "/agent/v1/desired", &req, &r);
		expect_status(&r, 304, "a weak If-None-Match");
		assert_non_null(th_header(&r, "ETag", h, sizeof h));
		assert_non_null(strstr(h, etag));
		th_response_free(&r);
		free(inm);
	}
	/* another etag: the document */
	assert_int_equal(desired(s, &a, "wait=0",
				 "0000000000000000000000000000000000000000000000000000000000000000",
				 &again),
			 200);
	json_decref(again);

	/* a long-poll with a stale etag is answered at once */
	{
		double t0 = th_now_s();

		assert_int_equal(
		    desired(s, &a, "wait=20",
			    "1111111111111111111111111111111111111111111111111111111111111111",
			    &again),
		    200);
		assert_true(th_now_s() - t0 < 5);
		assert_true(json_equal(doc, again));
		json_decref(again);
	}

	/* b's document is b's: its own id, the same cluster */
	again = document(s, &b);
	assert_string_equal(str(again, "target_id"), b.id);
	assert_string_not_equal(a.etag, b.etag);
	json_decref(again);

	/* a wait outside 0..30 is refused */
	{
		static const char *const bad[] = {
		    "/agent/v1/desired?wait=31", "/agent/v1/desired?wait=-1",
		    "/agent/v1/desired?wait=soon", "/agent/v1/desired?wait="};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			get(s, bad[i], a.token, &r);
			if (r.status != 400 || !strstr(th_error_message(&r), "wait"))
				fail_msg("GET %s: want 400 naming wait, got %ld %s", bad[i],
					 r.status, r.body);
			th_response_free(&r);
		}
	}

	/* a long-poll with nothing changing answers 304 once its wait is over */
	{
		double t0 = th_now_s(), took;

		memcpy(etag, a.etag, sizeof etag);
		assert_int_equal(desired(s, &a, "wait=1", etag, &again), 304);
		took = th_now_s() - t0;
		if (took < 0.9 || took > 5.0)
			fail_msg("a ?wait=1 long-poll with no change took %.2f s", took);
	}
	json_decref(doc);
	agent_free(&a);
	agent_free(&b);
	free(tok);
}

/* ------------------------------------------------------------ long-polls */

struct sink {
	char *p;
	size_t len;
};

static size_t sink_write(char *data, size_t size, size_t n, void *ctx)
{
	struct sink *k = ctx;

	k->p = xrealloc(k->p, k->len + size * n + 1);
	memcpy(k->p + k->len, data, size * n);
	k->len += size * n;
	k->p[k->len] = '\0';
	return size * n;
}

/* One long-poll in flight on a shared multi handle. */
struct lp {
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	struct sink body, head;
	bool sent; /* the request's header block went out */
	bool done;
	CURLcode result;
	double started, ended;
	struct th_response r; /* once done */
};

static int lp_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *ctx)
{
	struct lp *p = ctx;

	(void)easy;
	(void)data;
	(void)size;
	if (type == CURLINFO_HEADER_OUT)
		p->sent = true;
	return 0;
}

static void lp_start(CURLM *multi, struct th_server *s, struct lp *p, const struct agent *a,
		     int wait)
{
	char *auth = xasprintf("Authorization: Bearer %s", a->token);
	char *inm = xasprintf("If-None-Match: \"%s\"", a->etag);

	memset(p, 0, sizeof *p);
	p->url = xasprintf("%s/agent/v1/desired?wait=%d", s->url, wait);
	p->hdrs = curl_slist_append(p->hdrs, auth);
	p->hdrs = curl_slist_append(p->hdrs, inm);
	free(auth);
	free(inm);
	p->easy = curl_easy_init();
	curl_easy_setopt(p->easy, CURLOPT_URL, p->url);
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdrs);
	curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, &p->body);
	curl_easy_setopt(p->easy, CURLOPT_HEADERFUNCTION, sink_write);
	curl_easy_setopt(p->easy, CURLOPT_HEADERDATA, &p->head);
	curl_easy_setopt(p->easy, CURLOPT_DEBUGFUNCTION, lp_debug);
	curl_easy_setopt(p->easy, CURLOPT_DEBUGDATA, p);
	curl_easy_setopt(p->easy, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(p->easy, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->easy, CURLOPT_PRIVATE, p);
	p->started = th_now_s();
	curl_multi_add_handle(multi, p->easy);
}

/* Drives the transfers until done(ctx) or the deadline (absolute, th_now_s()
 * clock); returns whether done(ctx) came true. */
static bool lp_drive(CURLM *multi, bool (*done)(void *), void *ctx, double deadline)
{
	for (;;) {
		int running = 0, left = 0;
		CURLMsg *m;

		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left))) {
			struct lp *p = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&p);
			p->done = true;
			p->ended = th_now_s();
			p->result = m->data.result;
			curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &p->r.status);
			p->r.body = p->body.p ? p->body.p : xstrdup("");
			p->r.len = p->body.len;
			p->r.headers = p->head.p ? p->head.p : xstrdup("");
			p->r.json = json_loadb(p->r.body, p->r.len, 0, NULL);
			p->body.p = p->head.p = NULL;
		}
		if (done(ctx))
			return true;
		if (th_now_s() > deadline)
			return false;
		curl_multi_poll(multi, NULL, 0, 50, NULL);
	}
}

static bool lp_is_done(void *ctx)
{
	return ((struct lp *)ctx)->done;
}

static bool lp_is_sent(void *ctx)
{
	return ((struct lp *)ctx)->sent;
}

static bool never(void *ctx)
{
	(void)ctx;
	return false;
}

static void lp_end(CURLM *multi, struct lp *p)
{
	curl_multi_remove_handle(multi, p->easy);
	curl_easy_cleanup(p->easy);
	curl_slist_free_all(p->hdrs);
	free(p->url);
	free(p->body.p);
	free(p->head.p);
	th_response_free(&p->r);
}

/* A parked long-poll returns the moment a rollout of its cluster changes
 * its document; one of another cluster, parked at the same time, is not
 * woken by it and answers 304 when its own wait is over. */
static void test_long_poll_wakes_on_rollout(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok = NULL, *other_tok = NULL;
	struct agent a, o;
	json_t *doc, *rollout_doc;
	int64_t generation;
	char *run_before;
	CURLM *multi = curl_multi_init();
	struct lp pa, po;
	struct th_response r;
	double created_at;

	make_cluster(fx, "polled", "shop@1.0", NULL);
	make_cluster(fx, "bystander", "shop@1.0", NULL);
	tok = enrollment_token(fx, "polled", 1);
	other_tok = enrollment_token(fx, "bystander", 1);
	enroll(s, tok, "node-p", "10.0.2.1", &a);
	enroll(s, other_tok, "node-q", "10.0.2.2", &o);
	doc = document(s, &a);
	generation = num(doc, "generation");
	run_before = xstrdup(release_id(doc, "run"));
	json_decref(doc);
	json_decref(document(s, &o));

	lp_start(multi, s, &pa, &a, 10);
	lp_start(multi, s, &po, &o, 3);
	/* both requests are out, and both are held by the server */
	if (!lp_drive(multi, lp_is_sent, &pa, th_now_s() + 10) ||
	    !lp_drive(multi, lp_is_sent, &po, th_now_s() + 10))
		fail_msg("the long-poll requests were not sent within 10 s");
	lp_drive(multi, never, NULL, th_now_s() + 0.5);
	if (pa.done || po.done)
		fail_msg("a long-poll with a current etag answered at once: %ld %s",
			 pa.done ? pa.r.status : po.r.status, pa.done ? pa.r.body : po.r.body);

	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s}", "cluster", "polled", "distribution", "shop@2.0"), &r);
	created_at = th_now_s();
	expect_status(&r, 201, "POST /api/v1/rollouts");
	th_response_free(&r);

	if (!lp_drive(multi, lp_is_done, &pa, pa.started + 10))
		fail_msg("the long-poll did not return within its 10 s wait after the rollout");
	if (pa.result != CURLE_OK)
		fail_msg("long-poll: %s", curl_easy_strerror(pa.result));
	if (pa.r.status != 200)
		fail_msg("the woken long-poll answered %ld %s", pa.r.status, pa.r.body);
	if (pa.ended - pa.started >= 10 || pa.ended - created_at > 5)
		fail_msg("the long-poll returned %.2f s after the rollout (%.2f s after it began)",
			 pa.ended - created_at, pa.ended - pa.started);
	check_signed(&a, &pa.r);
	rollout_doc = pa.r.json;
	assert_string_equal(str(rollout_doc, "target_id"), a.id);
	assert_true(num(rollout_doc, "generation") > generation);
	assert_string_equal(release_id(rollout_doc, "run"), run_before);
	assert_non_null(release_id(rollout_doc, "prepare"));
	assert_true(strncmp(release_id(rollout_doc, "prepare"), "shop@2.0.0+", 11) == 0);

	/* the bystander was not woken: 304 after its own 3 s */
	if (!lp_drive(multi, lp_is_done, &po, po.started + 10))
		fail_msg("the other cluster's long-poll outlived its wait by 7 s");
	if (po.result != CURLE_OK)
		fail_msg("long-poll: %s", curl_easy_strerror(po.result));
	if (po.r.status != 304)
		fail_msg("another cluster's rollout woke this long-poll: %ld %s", po.r.status,
			 po.r.body);
	if (po.ended - po.started < 2.9)
		fail_msg("a ?wait=3 long-poll with no change ended after %.2f s",
			 po.ended - po.started);

	lp_end(multi, &pa);
	lp_end(multi, &po);
	curl_multi_cleanup(multi);
	free(run_before);
	agent_free(&a);
	agent_free(&o);
	free(tok);
	free(other_tok);
}

/* ------------------------------------------------------------ releases */

/* The 12 hex of a release id: sha256 of the canonical effective config. */
static void config_hash12(json_t *config, char out[13])
{
	char *canon = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
	char hex[TN_SHA256_HEX_LEN + 1];

	tn_sha256_hex(canon, strlen(canon), hex);
	memcpy(out, hex, 12);
	out[12] = '\0';
	free(canon);
}

static void test_release_of_a_new_target(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok;
	struct agent a, b;
	json_t *da, *db, *run, *bundles, *web, *dbb, *config, *want, *t;
	char hash[13], *want_id;

	make_cluster(fx, "stores", "shop@1.0", "{\"org.web\": {\"workers\": 8}}");
	tok = enrollment_token(fx, "stores", 2);
	enroll(s, tok, "node-s1", "10.0.3.1", &a);
	enroll(s, tok, "node-s2", "10.0.3.2", &b);
	da = document(s, &a);
	db = document(s, &b);
	run = json_object_get(da, "run");
	assert_true(json_is_object(run));
	assert_true(json_is_null(json_object_get(da, "prepare")));
	assert_string_equal(str(run, "distribution"), "shop");
	assert_string_equal(str(run, "version"), "1.0.0");

	/* bundles: what was uploaded, fetched from the agent's blob route */
	bundles = json_object_get(run, "bundles");
	assert_int_equal(json_array_size(bundles), 2);
	web = json_array_get(bundles, 0);
	dbb = json_array_get(bundles, 1);
	assert_string_equal(str(web, "name"), "org.web");
	assert_string_equal(str(web, "version"), "1.0.0");
	assert_string_equal(str(web, "sha256"), fx->web1_sha);
	assert_int_equal(num(web, "size"), fx->web1.len);
	{
		char *url = xasprintf("/agent/v1/blobs/%s", fx->web1_sha);

		assert_string_equal(str(web, "url"), url);
		free(url);
	}
	assert_string_equal(str(dbb, "name"), "org.db");
	assert_string_equal(str(dbb, "sha256"), fx->db1_sha);
	assert_int_equal(num(dbb, "size"), fx->db1.len);

	/* config: bundle defaults < distribution < cluster, per bundle */
	config = json_object_get(run, "config");
	want = json_pack("{s:{s:s, s:i, s:b}, s:{s:i}}", "org.web", "greeting", "from-dist",
			 "workers", 8, "debug", 0, "org.db", "port", 5432);
	if (!json_equal(config, want))
		fail_msg("effective config %s, want %s", json_dumps(config, JSON_COMPACT),
			 json_dumps(want, JSON_COMPACT));

	/* id: shop@1.0.0+<first 12 hex of the sha256 of the canonical config> */
	config_hash12(want, hash);
	want_id = xasprintf("shop@1.0.0+%s", hash);
	assert_string_equal(str(run, "id"), want_id);
	/* the same config: the same release */
	assert_string_equal(release_id(db, "run"), want_id);
	/* and the operator sees it as the target's desired release */
	t = target(fx, a.id);
	assert_string_equal(str(json_object_get(t, "desired"), "release"), want_id);
	assert_int_equal(num(json_object_get(t, "desired"), "generation"), num(da, "generation"));
	json_decref(t);

	json_decref(want);
	free(want_id);
	json_decref(da);
	json_decref(db);
	agent_free(&a);
	agent_free(&b);
	free(tok);
}

/* ------------------------------------------------------------ blobs */

static void blob(struct th_server *s, const char *sha, const char *token, const char *range,
		 struct th_response *r)
{
	char *path = xasprintf("/agent/v1/blobs/%s", sha);
	char *h = range ? xasprintf("Range: %s", range) : NULL;
	const char *hdrs[] = {h, NULL};
	struct th_request req = {.token = token, .headers = h ? hdrs : NULL};

	th_http(s, path, &req, r);
	free(path);
	free(h);
}

static void test_blobs_with_range(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	size_t size = fx->web1.len;
	char *tok, *idle_tok, want[128], h[128];
	struct agent a, idle;
	struct th_response r;

	make_cluster(fx, "fetching", "shop@1.0", NULL);
	make_cluster(fx, "idle", NULL, NULL);
	tok = enrollment_token(fx, "fetching", 1);
	idle_tok = enrollment_token(fx, "idle", 1);
	enroll(s, tok, "node-f", "10.0.4.1", &a);
	enroll(s, idle_tok, "node-i", "10.0.4.2", &idle);
	json_decref(document(s, &a));

	/* the whole blob: the very bytes uploaded */
	blob(s, fx->web1_sha, a.token, NULL, &r);
	expect_status(&r, 200, "GET blob");
	assert_int_equal(r.len, size);
	assert_memory_equal(r.body, fx->web1.p, size);
	assert_non_null(th_header(&r, "Accept-Ranges", h, sizeof h));
	assert_string_equal(h, "bytes");
	assert_non_null(th_header(&r, "ETag", h, sizeof h));
	snprintf(want, sizeof want, "\"%s\"", fx->web1_sha);
	assert_string_equal(h, want);
	th_response_free(&r);
	blob(s, fx->db1_sha, a.token, NULL, &r);
	expect_status(&r, 200, "GET the other bundle's blob");
	assert_int_equal(r.len, fx->db1.len);
	assert_memory_equal(r.body, fx->db1.p, fx->db1.len);
	th_response_free(&r);

	/* HEAD: the size, no body */
	{
		struct th_request req = {.method = "HEAD", .token = a.token};
		char *path = xasprintf("/agent/v1/blobs/%s", fx->web1_sha);

		th_http(s, path, &req, &r);
		expect_status(&r, 200, "HEAD blob");
		assert_int_equal(r.len, 0);
		assert_non_null(th_header(&r, "Content-Length", h, sizeof h));
		assert_int_equal(strtoull(h, NULL, 10), size);
		th_response_free(&r);
		free(path);
	}
	/* what is not one satisfiable-or-not byte range is ignored: the whole */
	{
		static const char *const whole[] = {"bytes=0-1,5-6", "bytes=9-2", "items=0-5",
						    "bytes=x-"};

		for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
			blob(s, fx->web1_sha, a.token, whole[i], &r);
			expect_status(&r, 200, whole[i]);
			assert_int_equal(r.len, size);
			th_response_free(&r);
		}
	}

	/* bytes=10-19 */
	blob(s, fx->web1_sha, a.token, "bytes=10-19", &r);
	expect_status(&r, 206, "Range bytes=10-19");
	assert_int_equal(r.len, 10);
	assert_memory_equal(r.body, fx->web1.p + 10, 10);
	snprintf(want, sizeof want, "bytes 10-19/%zu", size);
	assert_non_null(th_header(&r, "Content-Range", h, sizeof h));
	assert_string_equal(h, want);
	th_response_free(&r);

	/* bytes=-5: the last five */
	blob(s, fx->web1_sha, a.token, "bytes=-5", &r);
	expect_status(&r, 206, "Range bytes=-5");
	assert_int_equal(r.len, 5);
	assert_memory_equal(r.body, fx->web1.p + size - 5, 5);
	snprintf(want, sizeof want, "bytes %zu-%zu/%zu", size - 5, size - 1, size);
	assert_non_null(th_header(&r, "Content-Range", h, sizeof h));
	assert_string_equal(h, want);
	th_response_free(&r);

	/* bytes=N- resumes a download */
	{
		char *range = xasprintf("bytes=%zu-", size - 100);

		blob(s, fx->web1_sha, a.token, range, &r);
		expect_status(&r, 206, range);
		assert_int_equal(r.len, 100);
		assert_memory_equal(r.body, fx->web1.p + size - 100, 100);
		th_response_free(&r);
		free(range);
	}

	/* bytes=size-: nothing there to send */
	{
		char *range = xasprintf("bytes=%zu-", size);

		blob(s, fx->web1_sha, a.token, range, &r);
		expect_status(&r, 416, range);
		snprintf(want, sizeof want, "bytes */%zu", size);
		assert_non_null(th_header(&r, "Content-Range", h, sizeof h));
		assert_string_equal(h, want);
		assert_string_equal(th_error_code(&r), "range_not_satisfiable");
		th_response_free(&r);
		free(range);
	}

	/* a blob the server holds, but not in this target's releases */
	blob(s, fx->stray_sha, a.token, NULL, &r);
	expect_status(&r, 404, "a blob outside the target's releases");
	assert_non_null(strstr(th_error_message(&r), "not part of this target"));
	th_response_free(&r);
	blob(s, fx->web1_sha, idle.token, NULL, &r);
	expect_status(&r, 404, "a blob of another cluster's release");
	th_response_free(&r);
	blob(s, "not-a-digest", a.token, NULL, &r);
	expect_status(&r, 404, "a blob name that is no digest");
	th_response_free(&r);

	/* no token, an operator's token */
	blob(s, fx->web1_sha, NULL, NULL, &r);
	expect_status(&r, 401, "GET blob without a token");
	th_response_free(&r);
	blob(s, fx->web1_sha, fx->ops, NULL, &r);
	expect_status(&r, 403, "GET blob with an API token");
	th_response_free(&r);
	blob(s, fx->web1_sha, s->admin_token, NULL, &r);
	expect_status(&r, 403, "GET blob with the admin token");
	th_response_free(&r);

	agent_free(&a);
	agent_free(&idle);
	free(tok);
	free(idle_tok);
}

/* A connection that sent `GET path` and read the status line of the
 * answer, then reads nothing more: for the server, a download in flight. */
static int stalled_get(struct th_server *s, const char *path, const char *token, char *status,
		       size_t size)
{
	const char *colon = strrchr(s->url, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(colon + 1))};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
	char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			      "Authorization: Bearer %s\r\n\r\n",
			      path, token);
	size_t got = 0;
	double deadline = th_now_s() + 10;

	assert_true(fd >= 0);
	/* a small window, so that the blob cannot all fit in flight */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		fail_msg("cannot send a request to %s", s->url);
	free(req);
	/* the status line (12 bytes, "HTTP/1.1 200") is enough */
	while (got < 12) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (th_now_s() > deadline || poll(&p, 1, 100) < 0)
			fail_msg("no answer to GET %s within 10 s", path);
		if (!(p.revents & POLLIN))
			continue;
		n = read(fd, status + got, 12 - got);
		if (n <= 0)
			fail_msg("GET %s: connection closed before a status line", path);
		got += (size_t)n;
	}
	status[got < size ? got : size - 1] = '\0';
	return fd;
}

/* Downloads in flight are capped: the next gets 503 with Retry-After, and
 * a download the agent gave up on frees its place. */
static void test_blob_downloads_capped(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	enum { CAP = 64, BIG = 16 << 20 };
	char *payload = xmalloc(BIG), *tok, *path, sha[TN_SHA256_HEX_LEN + 1], h[64];
	const struct zentry files[] = {{.name = "big.bin", .data = payload, .len = BIG}};
	struct buf z;
	struct agent a;
	struct th_response r;
	int fds[CAP];
	uint64_t x = 88172645463325252ull;
	double deadline;

	for (size_t i = 0; i < BIG; i++) { /* incompressible, stored */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		payload[i] = (char)x;
	}
	z = th_bundle_zip("{\"name\": \"org.big\", \"version\": \"1.0\"}", files, 1);
	free(payload);
	upload_bundle(s, z, sha);
	th_json(s, "POST", "/api/v1/distributions", s->admin_token,
		"{\"name\": \"big\", \"version\": \"1.0\","
		" \"bundles\": [{\"name\": \"org.big\", \"version\": \"1.0\"}]}",
		&r);
	expect_status(&r, 201, "POST distribution big@1.0");
	th_response_free(&r);
	make_cluster(fx, "crowd", "big@1.0", NULL);
	tok = enrollment_token(fx, "crowd", 1);
	enroll(s, tok, "node-big", "10.0.9.1", &a);
	json_decref(document(s, &a));
	path = xasprintf("/agent/v1/blobs/%s", sha);

	for (int i = 0; i < CAP; i++) {
		char status[16];

		fds[i] = stalled_get(s, path, a.token, status, sizeof status);
		if (strcmp(status, "HTTP/1.1 200") != 0)
			fail_msg("download %d of %d: \"%s\"", i + 1, CAP, status);
	}
	blob(s, sha, a.token, NULL, &r);
	expect_status(&r, 503, "one download more than the cap");
	assert_string_equal(th_error_code(&r), "unavailable");
	assert_non_null(th_header(&r, "Retry-After", h, sizeof h));
	assert_true(atoi(h) >= 1);
	th_response_free(&r);

	/* the agents give up: their places come free */
	for (int i = 0; i < CAP; i++)
		close(fds[i]);
	deadline = th_now_s() + 10;
	for (;;) {
		blob(s, sha, a.token, "bytes=0-15", &r);
		if (r.status == 206)
			break;
		if (r.status != 503 || th_now_s() > deadline)
			fail_msg("after the stalled downloads closed: %ld %s", r.status, r.body);
		th_response_free(&r);
		{
			struct timespec ts = {0, 20 * 1000000L};

			nanosleep(&ts, NULL); /* a retry's pause, not a synchronisation */
		}
	}
	assert_memory_equal(r.body, z.p, 16);
	th_response_free(&r);
	/* a full download still works, and refused ones (416) do not hold a
	 * place: more of them than the cap, then a download */
	for (int i = 0; i < CAP + 6; i++) {
		char *range = xasprintf("bytes=%zu-", z.len);

		blob(s, sha, a.token, range, &r);
		expect_status(&r, 416, range);
		th_response_free(&r);
		free(range);
	}
	blob(s, sha, a.token, NULL, &r);
	expect_status(&r, 200, "a download after many refused ranges");
	assert_int_equal(r.len, z.len);
	assert_memory_equal(r.body, z.p, z.len);
	th_response_free(&r);

	free(path);
	free(z.p);
	agent_free(&a);
	free(tok);
}

/* ------------------------------------------------------------ isolation */

static void test_tokens_are_isolated_and_revocable(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok;
	struct agent a, b;
	struct th_response r;
	json_t *doc, *tb;
	char *path;
	long long before;

	make_cluster(fx, "apart", "shop@1.0", NULL);
	tok = enrollment_token(fx, "apart", 2);
	enroll(s, tok, "node-ia", "10.0.5.1", &a);
	enroll(s, tok, "node-ib", "10.0.5.2", &b);

	/* A's token always gets A's document, whatever else the request names */
	{
		char *q = xasprintf("target_id=%s&target=%s", b.id, b.id);

		assert_int_equal(desired(s, &a, q, NULL, &doc), 200);
		assert_string_equal(str(doc, "target_id"), a.id);
		json_decref(doc);
		free(q);
	}
	path = xasprintf("/agent/v1/desired/%s", b.id);
	get(s, path, a.token, &r);
	assert_int_equal(r.status, 404); /* there is no per-target path */
	th_response_free(&r);
	free(path);

	/* A's reports land on A only */
	tb = target(fx, b.id);
	assert_int_equal(report(s, &a,
				json_pack("{s:i, s:s, s:s, s:s}", "generation", 1, "phase",
					  "prepare", "state", "started", "health", "unhealthy")),
			 204);
	{
		json_t *ta = target(fx, a.id), *tb2 = target(fx, b.id);

		assert_string_equal(str(ta, "phase"), "preparing");
		assert_string_equal(str(ta, "health"), "unhealthy");
		assert_string_equal(str(tb2, "phase"), str(tb, "phase"));
		assert_string_equal(str(tb2, "health"), str(tb, "health"));
		json_decref(ta);
		json_decref(tb2);
	}
	json_decref(tb);

	/* a management token on the agents' side, a target token on the
	 * management side */
	get(s, "/agent/v1/desired", s->admin_token, &r);
	expect_status(&r, 403, "the admin token on /agent/v1/desired");
	th_response_free(&r);
	get(s, "/agent/v1/desired", fx->ops, &r);
	expect_status(&r, 403, "an operator token on /agent/v1/desired");
	th_response_free(&r);
	assert_int_equal(report(s, NULL,
				json_pack("{s:i, s:s, s:s}", "generation", 1, "phase", "prepare",
					  "state", "started")),
			 401);
	{
		struct th_response rr;

		send_json(s, "POST", "/agent/v1/report", fx->ops,
			  json_pack("{s:i, s:s, s:s}", "generation", 1, "phase", "prepare", "state",
				    "started"),
			  &rr);
		expect_status(&rr, 403, "an operator token on /agent/v1/report");
		th_response_free(&rr);
	}
	get(s, "/api/v1/clusters", a.token, &r);
	expect_status(&r, 403, "a target token on /api/v1/clusters");
	th_response_free(&r);
	path = xasprintf("/api/v1/targets/%s", a.id);
	get(s, path, a.token, &r);
	expect_status(&r, 403, "a target token on its own /api/v1/targets/{id}");
	th_response_free(&r);
	free(path);
	th_json(s, "POST", "/api/v1/enrollment-tokens", a.token,
		"{\"cluster\": \"apart\", \"uses\": 5}", &r);
	expect_status(&r, 403, "a target token making enrollment tokens");
	th_response_free(&r);
	get(s, "/agent/v1/desired", "tnt_forged-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r);
	expect_status(&r, 401, "a forged target token");
	th_response_free(&r);

	/* revoke: a viewer may not; the operator may; then A's token is dead
	 * everywhere and B's still works */
	path = xasprintf("/api/v1/targets/%s/revoke", a.id);
	th_json(s, "POST", path, fx->viewer, NULL, &r);
	expect_status(&r, 403, "a viewer revoking a target");
	th_response_free(&r);
	before = th_last_event_id(s);
	th_json(s, "POST", path, fx->ops, NULL, &r);
	expect_status(&r, 204, "POST revoke");
	th_response_free(&r);
	free(path);
	{
		json_t *ev = event_of(s, before, "target.revoke", a.id);

		if (!ev)
			fail_msg("no target.revoke event");
		assert_string_equal(str(ev, "actor"), "ops-olga");
		json_decref(ev);
	}
	get(s, "/agent/v1/desired", a.token, &r);
	expect_status(&r, 401, "a revoked target token on desired");
	assert_non_null(strstr(th_error_message(&r), "enroll again"));
	th_response_free(&r);
	blob(s, fx->web1_sha, a.token, NULL, &r);
	expect_status(&r, 401, "a revoked target token on blobs");
	th_response_free(&r);
	assert_int_equal(report(s, &a,
				json_pack("{s:i, s:s, s:s}", "generation", 1, "phase", "prepare",
					  "state", "started")),
			 401);
	doc = document(s, &b);
	json_decref(doc);
	th_json(s, "POST", "/api/v1/targets/t-no-such-target/revoke", fx->ops, NULL, &r);
	expect_status(&r, 404, "revoke an unknown target");
	th_response_free(&r);

	agent_free(&a);
	agent_free(&b);
	free(tok);
}

/* ------------------------------------------------------------ rollouts */

static json_t *rollout_get(struct fx *fx, const char *id)
{
	char *path = xasprintf("/api/v1/rollouts/%s", id);
	struct th_response r;
	json_t *out;

	get(&fx->srv, path, fx->viewer, &r);
	expect_status(&r, 200, path);
	out = json_incref(r.json);
	th_response_free(&r);
	free(path);
	return out;
}

static const char *rollout_state(struct fx *fx, const char *id, char *buf, size_t size)
{
	json_t *ro = rollout_get(fx, id);

	snprintf(buf, size, "%s", str(ro, "state"));
	json_decref(ro);
	return buf;
}

/* The state of target id in the rollout's (only) batch. */
static const char *rollout_target_state(json_t *ro, const char *id)
{
	json_t *ts = json_object_get(json_array_get(json_object_get(ro, "batches"), 0), "targets");
	json_t *t;
	size_t i;

	json_array_foreach(ts, i, t) if (strcmp(str(t, "id"), id) == 0) return str(t, "state");
	fail_msg("target %s is not in rollout %s", id, str(ro, "id"));
	return NULL;
}

/* The report of a committed switch to release. */
static json_t *commit_report(int64_t generation, const char *release)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:i}, {s:s, s:s, s:i}]}",
			 "generation", (json_int_t)generation, "phase", "commit", "state",
			 "succeeded", "release", release, "health", "healthy", "bundles", "name",
			 "org.db", "state", "ACTIVE", "restarts", 0, "name", "org.web", "state",
			 "ACTIVE", "restarts", 1);
}

static void test_rollout_prepare_approve_commit_then_rollback(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	long long before = th_last_event_id(s), before2;
	char *tok, *r1, *r2, *r3, *ro_id, *ro2_id, buf[64];
	struct agent a, b, c;
	json_t *da, *db, *dc, *ro, *t;
	int64_t ga, gb, gc;
	struct th_response r;

	make_cluster(fx, "roll", "shop@1.0", NULL);
	tok = enrollment_token(fx, "roll", 3);
	enroll(s, tok, "node-ra", "10.0.6.1", &a);
	enroll(s, tok, "node-rb", "10.0.6.2", &b);
	da = document(s, &a);
	db = document(s, &b);
	r1 = xstrdup(release_id(da, "run"));
	ga = num(da, "generation");
	gb = num(db, "generation");
	json_decref(da);
	json_decref(db);

	/* checks at create */
	send_json(s, "POST", "/api/v1/rollouts", fx->viewer,
		  json_pack("{s:s, s:s}", "cluster", "roll", "distribution", "shop@2.0"), &r);
	expect_status(&r, 403, "a viewer creating a rollout");
	th_response_free(&r);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s, s:{s:i}}", "cluster", "roll", "distribution", "shop@2.0",
			    "strategy", "batch_size", 0),
		  &r);
	expect_status(&r, 400, "a batch of no target");
	assert_non_null(strstr(th_error_message(&r), "strategy.batch_size"));
	th_response_free(&r);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s}", "cluster", "roll", "distribution", "shop@9.0"), &r);
	expect_status(&r, 404, "a rollout to an unknown distribution");
	th_response_free(&r);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s, s:{s:{s:s}}}", "cluster", "roll", "distribution",
			    "shop@2.0", "config", "org.web", "workers", "many"),
		  &r);
	expect_status(&r, 400, "a rollout config of the wrong type");
	th_response_free(&r);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s}", "cluster", "no-such-cluster", "distribution", "shop@2.0"),
		  &r);
	expect_status(&r, 404, "a rollout of an unknown cluster");
	th_response_free(&r);

	/* create: every target stages the new release, runs the old one; one
	 * batch of both */
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s, s:{s:i}}", "cluster", "roll", "distribution", "shop@2",
			    "strategy", "batch_size", 10),
		  &r);
	expect_status(&r, 201, "POST /api/v1/rollouts");
	ro_id = xstrdup(str(r.json, "id"));
	assert_true(strncmp(ro_id, "r-", 2) == 0);
	assert_string_equal(str(r.json, "state"), "pending_approval");
	assert_string_equal(str(r.json, "cluster"), "roll");
	assert_string_equal(str(r.json, "from"), "shop@1.0.0");
	assert_string_equal(str(r.json, "to"), "shop@2.0.0");
	assert_string_equal(str(r.json, "created_by"), "ops-olga");
	assert_int_equal(json_array_size(json_object_get(r.json, "batches")), 1);
	assert_string_equal(rollout_target_state(r.json, a.id), "pending");
	assert_string_equal(rollout_target_state(r.json, b.id), "pending");
	th_response_free(&r);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:s}", "cluster", "roll", "distribution", "shop@1.0"), &r);
	expect_status(&r, 409, "a second rollout while one is pending");
	assert_non_null(strstr(th_error_message(&r), ro_id));
	th_response_free(&r);

	da = document(s, &a);
	db = document(s, &b);
	assert_int_equal(num(da, "generation"), ga + 1);
	assert_int_equal(num(db, "generation"), gb + 1);
	assert_string_equal(release_id(da, "run"), r1);
	assert_string_equal(release_id(db, "run"), r1);
	r2 = xstrdup(release_id(da, "prepare"));
	assert_string_equal(release_id(db, "prepare"), r2);
	assert_true(strncmp(r2, "shop@2.0.0+", 11) == 0);
	{
		json_t *prep = json_object_get(da, "prepare");
		json_t *want =
		    json_pack("{s:{s:s, s:i, s:b}, s:{s:i}}", "org.web", "greeting", "from-dist-2",
			      "workers", 4, "debug", 0, "org.db", "port", 5432);

		assert_true(json_equal(json_object_get(prep, "config"), want));
		assert_string_equal(
		    str(json_array_get(json_object_get(prep, "bundles"), 0), "sha256"),
		    fx->web2_sha);
		json_decref(want);
	}
	ga = num(da, "generation");
	gb = num(db, "generation");
	json_decref(da);
	json_decref(db);
	/* the staged release's blobs may now be fetched */
	blob(s, fx->web2_sha, a.token, NULL, &r);
	expect_status(&r, 200, "GET a blob of the prepare release");
	assert_int_equal(r.len, fx->web2.len);
	assert_memory_equal(r.body, fx->web2.p, fx->web2.len);
	th_response_free(&r);
	/* the agents stage it and say so (no effect on the rollout) */
	assert_int_equal(report(s, &a,
				json_pack("{s:I, s:s, s:s, s:s, s:{s:i, s:i}}", "generation",
					  (json_int_t)ga, "phase", "prepare", "state", "progress",
					  "release", r2, "progress", "done", 10, "total", 100)),
			 204);
	t = target(fx, a.id);
	assert_string_equal(str(t, "phase"), "preparing");
	json_decref(t);
	assert_int_equal(report(s, &a,
				json_pack("{s:I, s:s, s:s, s:s}", "generation", (json_int_t)ga,
					  "phase", "prepare", "state", "succeeded", "release", r2)),
			 204);
	t = target(fx, a.id);
	assert_string_equal(str(t, "phase"), "prepared");
	json_decref(t);
	assert_string_equal(rollout_state(fx, ro_id, buf, sizeof buf), "pending_approval");

	/* approve: everyone runs the new release, nothing is staged */
	{
		char *path = xasprintf("/api/v1/rollouts/%s/approve", ro_id);

		th_json(s, "POST", path, fx->viewer, NULL, &r);
		expect_status(&r, 403, "a viewer approving");
		th_response_free(&r);
		th_json(s, "POST", path, fx->ops, NULL, &r);
		expect_status(&r, 200, "POST approve");
		assert_string_equal(str(r.json, "state"), "running");
		assert_int_equal(json_array_size(json_object_get(r.json, "approvals")), 1);
		assert_string_equal(
		    str(json_array_get(json_object_get(r.json, "approvals"), 0), "by"), "ops-olga");
		assert_string_equal(rollout_target_state(r.json, a.id), "switching");
		th_response_free(&r);
		th_json(s, "POST", path, fx->ops, NULL, &r);
		expect_status(&r, 409, "approving twice");
		th_response_free(&r);
		free(path);
	}
	th_json(s, "POST", "/api/v1/rollouts/r-nope/approve", fx->ops, NULL, &r);
	expect_status(&r, 404, "approving an unknown rollout");
	th_response_free(&r);
	da = document(s, &a);
	db = document(s, &b);
	assert_string_equal(release_id(da, "run"), r2);
	assert_string_equal(release_id(db, "run"), r2);
	assert_true(json_is_null(json_object_get(da, "prepare")));
	assert_true(json_is_null(json_object_get(db, "prepare")));
	assert_int_equal(num(da, "generation"), ga + 1);
	ga = num(da, "generation");
	gb = num(db, "generation");
	json_decref(da);
	json_decref(db);

	/* the agents switch and commit; the rollout ends with the last one */
	assert_int_equal(report(s, &a,
				json_pack("{s:I, s:s, s:s, s:s}", "generation", (json_int_t)ga,
					  "phase", "switch", "state", "started", "release", r2)),
			 204);
	t = target(fx, a.id);
	assert_string_equal(str(t, "phase"), "switching");
	json_decref(t);
	assert_int_equal(report(s, &a, commit_report(ga, r2)), 204);
	ro = rollout_get(fx, ro_id);
	assert_string_equal(str(ro, "state"), "running");
	assert_string_equal(rollout_target_state(ro, a.id), "succeeded");
	assert_string_equal(rollout_target_state(ro, b.id), "switching");
	json_decref(ro);
	/* a commit of some other release does not count */
	assert_int_equal(report(s, &b, commit_report(gb, r1)), 204);
	assert_string_equal(rollout_state(fx, ro_id, buf, sizeof buf), "running");
	assert_int_equal(report(s, &b, commit_report(gb, r2)), 204);
	ro = rollout_get(fx, ro_id);
	assert_string_equal(str(ro, "state"), "succeeded");
	assert_string_equal(rollout_target_state(ro, b.id), "succeeded");
	assert_string_equal(str(json_array_get(json_object_get(ro, "batches"), 0), "state"),
			    "done");
	json_decref(ro);
	{
		json_t *ts[2] = {target(fx, a.id), target(fx, b.id)};

		for (int i = 0; i < 2; i++) {
			assert_string_equal(str(ts[i], "actual"), r2);
			assert_string_equal(str(json_object_get(ts[i], "last_result"), "result"),
					    "succeeded");
			assert_string_equal(str(ts[i], "state"), "running");
			assert_string_equal(str(ts[i], "phase"), "idle");
			assert_string_equal(str(ts[i], "health"), "healthy");
			assert_string_equal(str(json_object_get(ts[i], "desired"), "release"), r2);
			assert_int_equal(json_array_size(json_object_get(ts[i], "bundles")), 2);
			assert_string_equal(
			    str(json_array_get(json_object_get(ts[i], "bundles"), 1), "state"),
			    "ACTIVE");
			json_decref(ts[i]);
		}
	}
	/* the cluster's revision moved; a newcomer starts on it */
	get(s, "/api/v1/clusters/roll", fx->viewer, &r);
	expect_status(&r, 200, "GET cluster");
	assert_string_equal(str(json_object_get(r.json, "revision"), "distribution"), "shop@2.0.0");
	th_response_free(&r);
	enroll(s, tok, "node-rc", "10.0.6.3", &c);
	dc = document(s, &c);
	assert_string_equal(release_id(dc, "run"), r2);
	json_decref(dc);
	/* listed */
	get(s, "/api/v1/rollouts?cluster=roll", fx->viewer, &r);
	expect_status(&r, 200, "GET /api/v1/rollouts?cluster=roll");
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
	assert_string_equal(str(json_array_get(json_object_get(r.json, "items"), 0), "id"), ro_id);
	th_response_free(&r);
	{
		char *acts = actions_after(s, before, ro_id);

		/* (the approval's own entry is written once its request is
		 * answered, after the batch it started) */
		assert_string_equal(acts, "rollout.create,rollout.batch_started,rollout.approve,"
					  "rollout.target_succeeded,rollout.target_succeeded,"
					  "rollout.succeeded,");
		free(acts);
	}

	/* a second rollout (config only), the newcomer in it, without automatic
	 * rollback: b fails and rolls back by itself, which halts the rollout
	 * (failure_threshold 1); a and c, switching then, stay switched */
	before2 = th_last_event_id(s);
	send_json(s, "POST", "/api/v1/rollouts", fx->ops,
		  json_pack("{s:s, s:{s:{s:s}}, s:{s:i, s:b}}", "cluster", "roll", "config",
			    "org.web", "greeting", "third", "strategy", "batch_size", 10,
			    "auto_rollback", 0),
		  &r);
	expect_status(&r, 201, "POST a config-only rollout");
	ro2_id = xstrdup(str(r.json, "id"));
	assert_string_equal(str(r.json, "to"), "shop@2.0.0");
	th_response_free(&r);
	da = document(s, &a);
	r3 = xstrdup(release_id(da, "prepare"));
	assert_true(strncmp(r3, "shop@2.0.0+", 11) == 0);
	assert_string_not_equal(r3, r2);
	assert_string_equal(
	    str(json_object_get(json_object_get(json_object_get(da, "prepare"), "config"),
				"org.web"),
		"greeting"),
	    "third");
	json_decref(da);
	{
		char *path = xasprintf("/api/v1/rollouts/%s/approve", ro2_id);

		th_json(s, "POST", path, fx->ops, NULL, &r);
		expect_status(&r, 200, "approve the second rollout");
		th_response_free(&r);
		free(path);
	}
	da = document(s, &a);
	db = document(s, &b);
	assert_string_equal(release_id(db, "run"), r3);
	dc = document(s, &c);
	assert_string_equal(release_id(dc, "run"), r3);
	ga = num(da, "generation");
	gb = num(db, "generation");
	gc = num(dc, "generation");
	json_decref(da);
	json_decref(db);
	json_decref(dc);
	assert_int_equal(
	    report(s, &b,
		   json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "generation",
			     (json_int_t)gb, "phase", "rollback", "state", "succeeded", "release",
			     r2, "health", "healthy", "message", "health check failed: HTTP 503",
			     "log_tail", "org.x", "boom\n")),
	    204);
	/* b's failure halts it; a's and c's results are still to come */
	ro = rollout_get(fx, ro2_id);
	assert_string_equal(str(ro, "state"), "failed");
	assert_string_equal(rollout_target_state(ro, b.id), "failed");
	assert_string_equal(rollout_target_state(ro, a.id), "switching");
	json_decref(ro);
	/* b's document follows it back to r2, as a new generation */
	db = document(s, &b);
	assert_string_equal(release_id(db, "run"), r2);
	assert_true(json_is_null(json_object_get(db, "prepare")));
	assert_true(num(db, "generation") > gb);
	json_decref(db);
	/* and the rolled-back release's blobs are not b's to fetch any more...
	 * (r2 and r3 share their bundles, so ask for one of r1's instead) */
	blob(s, fx->web1_sha, b.token, NULL, &r);
	expect_status(&r, 404, "a blob of a release the target no longer has");
	th_response_free(&r);

	assert_int_equal(report(s, &a, commit_report(ga, r3)), 204);
	assert_int_equal(report(s, &c, commit_report(gc, r3)), 204);
	assert_string_equal(rollout_state(fx, ro2_id, buf, sizeof buf), "failed");
	t = target(fx, b.id);
	assert_string_equal(str(json_object_get(t, "last_result"), "result"), "failed");
	assert_string_equal(str(json_object_get(t, "last_result"), "message"),
			    "health check failed: HTTP 503");
	assert_string_equal(str(t, "actual"), r2);
	assert_string_equal(str(t, "state"), "running"); /* still in service, on r2 */
	assert_string_equal(str(t, "phase"), "idle");
	assert_string_equal(str(json_object_get(t, "desired"), "release"), r2);
	json_decref(t);
	t = target(fx, a.id);
	assert_string_equal(str(t, "actual"), r3); /* without auto_rollback, nobody else goes back */
	assert_string_equal(str(json_object_get(t, "last_result"), "result"), "succeeded");
	json_decref(t);
	ro = rollout_get(fx, ro2_id);
	{
		json_t *ts = json_object_get(json_array_get(json_object_get(ro, "batches"), 0),
					     "targets"),
		       *x;
		size_t i;

		json_array_foreach(ts, i, x) if (strcmp(str(x, "id"), b.id) == 0)
		    assert_string_equal(str(x, "message"), "health check failed: HTTP 503");
	}
	json_decref(ro);

	/* the log tail the agent sent */
	{
		char *path = xasprintf("/api/v1/targets/%s/logs?bundle=org.x", b.id);

		get(s, path, fx->viewer, &r);
		expect_status(&r, 200, path);
		assert_string_equal(str(r.json, "target"), b.id);
		assert_string_equal(str(json_object_get(r.json, "logs"), "org.x"), "boom\n");
		assert_int_equal(json_object_size(json_object_get(r.json, "logs")), 1);
		th_response_free(&r);
		free(path);
		path = xasprintf("/api/v1/targets/%s/logs?bundle=org.none", b.id);
		get(s, path, fx->viewer, &r);
		expect_status(&r, 404, "the log of a bundle never reported");
		th_response_free(&r);
		free(path);
		path = xasprintf("/api/v1/targets/%s/logs?lines=0", b.id);
		get(s, path, fx->viewer, &r);
		expect_status(&r, 400, "lines=0");
		th_response_free(&r);
		free(path);
	}
	{
		char *acts = actions_after(s, before2, ro2_id);

		assert_string_equal(acts, "rollout.create,rollout.batch_started,rollout.approve,"
					  "rollout.target_failed,rollout.failed,");
		free(acts);
	}
	{
		json_t *ev = event_of(s, before2, "rollout.failed", ro2_id);

		assert_string_equal(str(ev, "object_type"), "rollout");
		json_decref(ev);
	}

	free(r1);
	free(r2);
	free(r3);
	free(ro_id);
	free(ro2_id);
	agent_free(&a);
	agent_free(&b);
	agent_free(&c);
	free(tok);
}

/* The tail of a longer log is cut to the lines asked for. */
static void test_log_tail_lines(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok, *path;
	struct agent a;
	struct th_response r;

	make_cluster(fx, "logs", NULL, NULL);
	tok = enrollment_token(fx, "logs", 1);
	enroll(s, tok, "node-l", "10.0.7.1", &a);
	assert_int_equal(report(s, &a,
				json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "generation", 1, "phase",
					  "prepare", "state", "failed", "log_tail", "org.a",
					  "one\ntwo\nthree\n", "org.b", "bee\n")),
			 204);
	path = xasprintf("/api/v1/targets/%s/logs?bundle=org.a&lines=2", a.id);
	get(s, path, fx->viewer, &r);
	expect_status(&r, 200, path);
	assert_string_equal(str(json_object_get(r.json, "logs"), "org.a"), "two\nthree\n");
	th_response_free(&r);
	free(path);
	path = xasprintf("/api/v1/targets/%s/logs", a.id);
	get(s, path, fx->viewer, &r);
	expect_status(&r, 200, path);
	assert_int_equal(json_object_size(json_object_get(r.json, "logs")), 2);
	assert_string_equal(str(json_object_get(r.json, "logs"), "org.b"), "bee\n");
	th_response_free(&r);
	free(path);
	{
		json_t *t = target(fx, a.id);

		assert_string_equal(str(json_object_get(t, "last_result"), "result"), "failed");
		json_decref(t);
	}
	agent_free(&a);
	free(tok);
}

/* ------------------------------------------------------------ bad reports */

static void test_bad_reports_refused(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok, *long_msg, *long_tail;
	struct agent a;
	json_t *before, *after;

	make_cluster(fx, "noisy", NULL, NULL);
	tok = enrollment_token(fx, "noisy", 1);
	enroll(s, tok, "node-n", "10.0.8.1", &a);
	before = target(fx, a.id);
	long_msg = xcalloc(1, 4098);
	memset(long_msg, 'm', 4097);
	long_tail = xcalloc(1, 16386);
	memset(long_tail, 't', 16385);
	{
		json_t *bad[] = {
		    json_pack("{s:i, s:s, s:s}", "generation", 1, "phase", "deploy", "state",
			      "started"),
		    json_pack("{s:i, s:s, s:s}", "generation", 1, "phase", "commit", "state",
			      "done"),
		    json_pack("{s:i, s:s, s:s, s:s}", "generation", 1, "phase", "commit", "state",
			      "succeeded", "health", "fine"),
		    json_pack("{s:i, s:s, s:s, s:b}", "generation", 1, "phase", "commit", "state",
			      "succeeded", "surprise", 1),
		    json_pack("{s:s, s:s}", "phase", "commit", "state", "succeeded"),
		    json_pack("{s:i, s:s}", "generation", 1, "state", "succeeded"),
		    json_pack("{s:i, s:s, s:s}", "generation", -1, "phase", "commit", "state",
			      "succeeded"),
		    json_pack("{s:i, s:s, s:s, s:s}", "generation", 1, "phase", "rollback", "state",
			      "failed", "message", long_msg),
		    json_pack("{s:i, s:s, s:s, s:{s:s}}", "generation", 1, "phase", "rollback",
			      "state", "failed", "log_tail", "org.x", long_tail),
		    json_pack("{s:i, s:s, s:s, s:{s:i}}", "generation", 1, "phase", "rollback",
			      "state", "failed", "log_tail", "org.x", 5),
		    json_pack("{s:i, s:s, s:s, s:[{s:s, s:s}]}", "generation", 1, "phase", "commit",
			      "state", "succeeded", "bundles", "name", "org.web", "state",
			      "DANCING"),
		    json_pack("{s:i, s:s, s:s, s:[s]}", "generation", 1, "phase", "commit", "state",
			      "succeeded", "bundles", "org.web"),
		    json_pack("{s:i, s:s, s:s, s:{s:i}}", "generation", 1, "phase", "prepare",
			      "state", "progress", "progress", "done", 1),
		};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			char *text = json_dumps(bad[i], JSON_COMPACT);
			long status = report(s, &a, bad[i]);

			if (status != 400)
				fail_msg("report %.200s: want 400, got %ld", text, status);
			free(text);
		}
	}
	{
		struct th_response r;

		th_json(s, "POST", "/agent/v1/report", a.token, "{\"generation\": 1,", &r);
		expect_status(&r, 400, "a report that is not JSON");
		th_response_free(&r);
		th_json(s, "POST", "/agent/v1/report", a.token, "[1]", &r);
		expect_status(&r, 400, "a report that is no object");
		th_response_free(&r);
	}
	/* the refused reports changed nothing */
	after = target(fx, a.id);
	assert_string_equal(str(after, "phase"), str(before, "phase"));
	assert_string_equal(str(after, "health"), str(before, "health"));
	assert_true(json_equal(json_object_get(after, "last_result"),
			       json_object_get(before, "last_result")));
	json_decref(after);
	json_decref(before);
	/* the limits themselves are fine */
	long_msg[4096] = '\0';
	long_tail[16384] = '\0';
	assert_int_equal(report(s, &a,
				json_pack("{s:i, s:s, s:s, s:s, s:{s:s}}", "generation", 1, "phase",
					  "rollback", "state", "failed", "message", long_msg,
					  "log_tail", "org.x", long_tail)),
			 204);
	free(long_msg);
	free(long_tail);
	agent_free(&a);
	free(tok);
}

/* A rollout of a cluster without targets succeeds when approved, and says
 * so in the audit log like any other. */
static void test_empty_rollout(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	long long before = th_last_event_id(s);
	struct th_response r;
	char *id, *path;

	make_cluster(fx, "empty", NULL, NULL);
	th_json(s, "POST", "/api/v1/rollouts", fx->ops, "{\"cluster\": \"empty\"}", &r);
	expect_status(&r, 400, "a rollout naming no distribution for a cluster without one");
	assert_non_null(strstr(th_error_message(&r), "distribution"));
	th_response_free(&r);
	th_json(s, "POST", "/api/v1/rollouts", fx->ops,
		"{\"cluster\": \"empty\", \"distribution\": \"shop@1.0\"}", &r);
	expect_status(&r, 201, "a rollout of an empty cluster");
	id = xstrdup(str(r.json, "id"));
	assert_null(json_string_value(json_object_get(r.json, "from")));
	th_response_free(&r);
	path = xasprintf("/api/v1/rollouts/%s/approve", id);
	th_json(s, "POST", path, fx->ops, NULL, &r);
	expect_status(&r, 200, "approve");
	assert_string_equal(str(r.json, "state"), "succeeded");
	th_response_free(&r);
	{
		/* (the approval's own entry is written once its request is
		 * answered, so here it comes after the end it caused) */
		char *acts = actions_after(s, before, id);

		assert_non_null(strstr(acts, "rollout.create,"));
		assert_non_null(strstr(acts, "rollout.approve,"));
		assert_non_null(strstr(acts, "rollout.succeeded,"));
		assert_int_equal(strlen(acts), strlen("rollout.create,rollout.approve,"
						      "rollout.succeeded,"));
		free(acts);
	}
	get(s, "/api/v1/clusters/empty", fx->viewer, &r);
	assert_string_equal(str(json_object_get(r.json, "revision"), "distribution"), "shop@1.0.0");
	th_response_free(&r);
	free(path);
	free(id);
}

/* Sanitizer builds: a server that crashed, leaked or tripped UBSan does not
 * exit 0, and says why in its log.  A long-poll parked at the time does not
 * hold the stop up, and its agent hears back (an answer or a close). */
static void test_server_exits_cleanly(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *tok = enrollment_token(fx, "enroll", 1);
	CURLM *multi = curl_multi_init();
	struct agent a;
	struct lp p;
	double t0;
	int status;

	enroll(s, tok, "node-last", "10.0.10.1", &a);
	json_decref(document(s, &a));
	lp_start(multi, s, &p, &a, 30);
	if (!lp_drive(multi, lp_is_sent, &p, th_now_s() + 10))
		fail_msg("the long-poll was not sent within 10 s");
	lp_drive(multi, never, NULL, th_now_s() + 0.3);
	assert_false(p.done);
	t0 = th_now_s();
	status = th_server_stop(s);
	assert_true(th_now_s() - t0 < 10);
	if (!lp_drive(multi, lp_is_done, &p, th_now_s() + 10))
		fail_msg("the parked long-poll was left hanging by the stopped server");
	if (p.result == CURLE_OK && p.r.status != 304 && p.r.status != 503)
		fail_msg("the parked long-poll got %ld %s at shutdown", p.r.status, p.r.body);
	lp_end(multi, &p);
	curl_multi_cleanup(multi);
	agent_free(&a);
	free(tok);
	assert_true(th_server_exited_cleanly(&fx->srv, status));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_enroll_and_what_the_operator_sees),
	    T(test_desired_document_signed_with_etag),
	    T(test_long_poll_wakes_on_rollout),
	    T(test_release_of_a_new_target),
	    T(test_blobs_with_range),
	    T(test_blob_downloads_capped),
	    T(test_tokens_are_isolated_and_revocable),
	    T(test_rollout_prepare_approve_commit_then_rollback),
	    T(test_log_tail_lines),
	    T(test_bad_reports_refused),
	    T(test_empty_rollout),
	    T(test_server_exits_cleanly),
	};
#undef T
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests_name("agent_api", tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
