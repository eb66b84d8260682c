/* test_webhooks.c - webhooks against a real tender-server: a receiver in
 * this program (libmicrohttpd on a free loopback port) gets the matching
 * events as signed JSON, the Tender-Event header and a signature that
 * verifies with the server's key; a receiver failing twice gets the event
 * on the third attempt; an unreachable URL is given up after the attempts;
 * a pending delivery survives a restart of the server (clean or kill -9);
 * bad input is refused naming the problem, with nothing stored; and a
 * deleted webhook hears nothing more.  The group's server retries every
 * 20 ms (--webhook-backoff-ms) so that eight attempts take well under a
 * second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "sign.h"
#include "xalloc.h"

#define HITS_MAX 4096
#define BODY_MAX (1u << 20)
#define DEADLINE_S 20.0

/* ------------------------------------------------------------ the receiver */

/* One POST the receiver got, and what it answered. */
struct hit {
	char *path, *event, *signature, *content_type, *delivery, *body;
	size_t len;
	unsigned status;
};

/* Answers by path: /fail... 500 always; /flaky... 500 to the first two
 * requests on that path, then 200; /down... 500 while down is set;
 * anything else 200. */
struct receiver {
	struct MHD_Daemon *daemon;
	int port;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;
	struct hit hits[HITS_MAX];
	size_t nhits;
	bool down;
};

struct upload {
	char *data;
	size_t len;
	bool too_big;
};

static char *header_dup(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	return v ? xstrdup(v) : NULL;
}

static size_t path_hits_locked(struct receiver *r, const char *path)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nhits; i++)
		n += strcmp(r->hits[i].path, path) == 0;
	return n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_size, void **ctx)
{
	struct receiver *r = cls;
	struct upload *u = *ctx;
	struct MHD_Response *resp;
	unsigned status = 200;
	enum MHD_Result ret;

	(void)version;
	if (!u) {
		*ctx = xcalloc(1, sizeof *u);
		return MHD_YES;
	}
	if (*data_size) {
		if (u->len + *data_size > BODY_MAX) {
			u->too_big = true;
		} else {
			u->data = xrealloc(u->data, u->len + *data_size + 1);
			memcpy(u->data + u->len, data, *data_size);
			u->len += *data_size;
			u->data[u->len] = '\0';
		}
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&r->lock);
	if (strncmp(url, "/fail", 5) == 0 || u->too_big || strcmp(method, "POST") != 0)
		status = 500;
	else if (strncmp(url, "/flaky", 6) == 0 && path_hits_locked(r, url) < 2)
		status = 500;
	else if (strncmp(url, "/down", 5) == 0 && r->down)
		status = 500;
	if (r->nhits < HITS_MAX) {
		struct hit *h = &r->hits[r->nhits++];

		h->path = xstrdup(url);
		h->event = header_dup(c, "Tender-Event");
		h->signature = header_dup(c, "Tender-Signature");
		h->content_type = header_dup(c, "Content-Type");
		h->delivery = header_dup(c, "Tender-Delivery");
		h->body = u->data ? u->data : xstrdup("");
		h->len = u->len;
		h->status = status;
		u->data = NULL;
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	resp = MHD_create_response_from_buffer(status == 200 ? 2 : 6,
					       (void *)(status == 200 ? "ok" : "broken"),
					       MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode why)
{
	struct upload *u = *ctx;

	(void)cls;
	(void)c;
	(void)why;
	if (u) {
		free(u->data);
		free(u);
	}
	*ctx = NULL;
}

static void receiver_start(struct receiver *r)
{
	const union MHD_DaemonInfo *info;

	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->daemon =
	    MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
			     on_request, r, MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
	assert_non_null(r->daemon);
	info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	r->port = info->port;
}

static void receiver_stop(struct receiver *r)
{
	MHD_stop_daemon(r->daemon);
	for (size_t i = 0; i < r->nhits; i++) {
		struct hit *h = &r->hits[i];

		free(h->path);
		free(h->event);
		free(h->signature);
		free(h->content_type);
		free(h->delivery);
		free(h->body);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

static char *receiver_url(struct receiver *r, const char *path)
{
	return xasprintf("http://127.0.0.1:%d%s", r->port, path);
}

/* Hits on path (whose body's id is event_id, when > 0), and with status
 * (when not 0). */
static size_t count_locked(struct receiver *r, const char *path, long long event_id,
			   unsigned status)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nhits; i++) {
		struct hit *h = &r->hits[i];
		char id[32];

		if (strcmp(h->path, path) != 0 || (status && h->status != status))
			continue;
		snprintf(id, sizeof id, "{\"id\":%lld,", event_id);
		if (event_id > 0 && strncmp(h->body, id, strlen(id)) != 0)
			continue;
		n++;
	}
	return n;
}

static size_t count(struct receiver *r, const char *path, long long event_id, unsigned status)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = count_locked(r, path, event_id, status);
	pthread_mutex_unlock(&r->lock);
	return n;
}

static struct timespec in_s(double s)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)s;
	t.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Waits until at least want such hits came, or deadline_s passed; returns
 * how many there are. */
static size_t wait_hits(struct receiver *r, const char *path, long long event_id, unsigned status,
			size_t want, double deadline_s)
{
	struct timespec until = in_s(deadline_s);
	size_t n;

	pthread_mutex_lock(&r->lock);
	while ((n = count_locked(r, path, event_id, status)) < want &&
	       pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* A copy of the last hit on path (fields borrowed from the receiver,
 * which only ever appends). */
static struct hit last_hit(struct receiver *r, const char *path)
{
	struct hit h = {0};

	pthread_mutex_lock(&r->lock);
	for (size_t i = r->nhits; i-- > 0;)
		if (strcmp(r->hits[i].path, path) == 0) {
			h = r->hits[i];
			break;
		}
	pthread_mutex_unlock(&r->lock);
	assert_non_null(h.path);
	return h;
}

/* ------------------------------------------------------------ fixture */

struct fx {
	struct th_server srv;
	struct receiver rx;
	char *viewer, *developer, *operator;
};

static const char *const fast_retries[] = {"--webhook-backoff-ms", "20", NULL};

static int group_setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	receiver_start(&fx->rx);
	th_server_start(&fx->srv, fast_retries);
	fx->viewer = th_make_token(&fx->srv, "wh-viewer", "viewer");
	fx->developer = th_make_token(&fx->srv, "wh-developer", "developer");
	fx->operator= th_make_token(&fx->srv, "wh-operator", "operator");
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	th_server_destroy(&fx->srv);
	receiver_stop(&fx->rx);
	free(fx->viewer);
	free(fx->developer);
	free(fx->operator);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static json_int_t num(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static void expect_status(const struct th_response *r, long status, const char *what)
{
	if (r->status != status)
		fail_msg("%s: want %ld, got %ld %s", what, status, r->status, r->body);
}

/* POSTs a webhook as the operator; returns the answer (caller decrefs). */
static json_t *add_webhook(struct th_server *s, const char *token, const char *url,
			   const char *events_json)
{
	char *body = xasprintf("{\"url\": \"%s\", \"events\": %s}", url, events_json);
	struct th_response r;
	json_t *out;

	th_json(s, "POST", "/api/v1/webhooks", token, body, &r);
	expect_status(&r, 201, body);
	out = json_incref(r.json);
	th_response_free(&r);
	free(body);
	return out;
}

static json_t *get_webhook(struct th_server *s, const char *token, const char *id, long want_status)
{
	char *path = xasprintf("/api/v1/webhooks/%s", id);
	struct th_response r;
	json_t *out;

	th_json(s, "GET", path, token, NULL, &r);
	expect_status(&r, want_status, path);
	out = json_incref(r.json);
	th_response_free(&r);
	free(path);
	return out;
}

static json_t *list_webhooks(struct th_server *s, const char *token)
{
	struct th_response r;
	json_t *out;

	th_json(s, "GET", "/api/v1/webhooks", token, NULL, &r);
	expect_status(&r, 200, "GET /api/v1/webhooks");
	out = json_incref(r.json);
	th_response_free(&r);
	return out;
}

/* Polls the webhook until its deliveries show ok + failed >= finished;
 * returns the webhook (caller decrefs). */
static json_t *wait_finished(struct th_server *s, const char *token, const char *id,
			     json_int_t finished)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		json_t *w = get_webhook(s, token, id, 200);
		json_t *d = json_object_get(w, "deliveries");

		if (num(d, "ok") + num(d, "failed") >= finished)
			return w;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > (time_t)DEADLINE_S) {
			char *text = json_dumps(w, JSON_INDENT(2));

			fail_msg("webhook %s: %lld deliveries not finished in time:\n%s", id,
				 (long long)finished, text);
		}
		json_decref(w);
		th_pause_ms(20); /* the poll's interval, not a synchronisation */
	}
}

/* Makes an audited write the webhooks can match: a cluster. */
static long long make_cluster(struct th_server *s, const char *name)
{
	char *body = xasprintf("{\"name\": \"%s\"}", name);
	struct th_response r;
	long long id;

	th_json(s, "POST", "/api/v1/clusters", s->admin_token, body, &r);
	expect_status(&r, 201, body);
	th_response_free(&r);
	free(body);
	id = th_last_event_id(s);
	assert_true(id > 0);
	return id;
}

static void delete_cluster(struct th_server *s, const char *name)
{
	char *path = xasprintf("/api/v1/clusters/%s", name);
	struct th_response r;

	th_json(s, "DELETE", path, s->admin_token, NULL, &r);
	expect_status(&r, 204, path);
	th_response_free(&r);
	free(path);
}

static void verify(const struct hit *h, struct tn_key *key, bool want)
{
	struct tn_error err;
	int rc;

	assert_non_null(h->signature);
	assert_true(strncmp(h->signature, "ed25519=", 8) == 0);
	rc = tn_verify_b64(key, h->body, h->len, h->signature + 8, &err);
	if (want && rc != 0)
		fail_msg("the signature does not verify: %s\n%s", err.message, h->body);
	if (!want && rc == 0)
		fail_msg("a changed body verifies");
}

/* ------------------------------------------------------------ tests */

static void test_event_delivered_signed(void **state)
{
	struct fx *fx = *state;
	char *url = receiver_url(&fx->rx, "/ok"), *keyfile, *pub_file = NULL, *pub_api;
	json_t *w =
	    add_webhook(&fx->srv, fx->operator, url, "[\"cluster.create\", \"cluster.delete\"]");
	struct tn_key *key = NULL, *file_key = NULL;
	struct tn_error err;
	long long created, deleted;
	json_t *body, *last, *events;
	struct hit h;
	char *tampered;

	assert_true(strncmp(th_str(w, "id"), "w-", 2) == 0);
	assert_string_equal(th_str(w, "url"), url);
	assert_string_equal(th_str(w, "created_by"), "wh-operator");
	assert_non_null(th_str(w, "created"));
	events = json_object_get(w, "events");
	assert_int_equal(json_array_size(events), 2);
	assert_string_equal(json_string_value(json_array_get(events, 0)), "cluster.create");

	/* the key the API shows is the server's own */
	assert_int_equal(tn_key_from_public_b64(th_str(w, "public_key"), &key, &err), 0);
	keyfile = xasprintf("%s/var/server.key", fx->srv.data_dir);
	if (tn_key_load_private_pem(keyfile, &file_key, &err) != 0)
		fail_msg("%s: %s", keyfile, err.message);
	pub_file = tn_key_public_b64(file_key);
	pub_api = tn_key_public_b64(key);
	assert_string_equal(pub_api, pub_file);

	created = make_cluster(&fx->srv, "wh-signed");
	assert_int_equal(wait_hits(&fx->rx, "/ok", created, 0, 1, DEADLINE_S), 1);
	h = last_hit(&fx->rx, "/ok");
	assert_string_equal(h.event, "cluster.create");
	assert_string_equal(h.content_type, "application/json");
	assert_non_null(h.delivery);
	verify(&h, key, true);
	verify(&h, file_key, true);
	tampered = xstrdup(h.body);
	tampered[h.len - 2] ^= 1;
	{
		struct hit t = h;

		t.body = tampered;
		verify(&t, key, false);
	}
	free(tampered);

	/* the body: the audit event, as GET /api/v1/events has it */
	body = json_loadb(h.body, h.len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(body);
	assert_int_equal(num(body, "id"), created);
	assert_string_equal(th_str(body, "event"), "cluster.create");
	assert_string_equal(th_str(body, "actor"), "admin");
	assert_string_equal(th_str(body, "outcome"), "ok");
	assert_string_equal(th_str(json_object_get(body, "object"), "type"), "cluster");
	assert_string_equal(th_str(json_object_get(body, "object"), "id"), "wh-signed");
	assert_true(json_object_get(body, "detail") != NULL);
	{
		json_t *ev = th_events_after(&fx->srv, created - 1);
		json_t *e0 = json_array_get(ev, 0);

		assert_int_equal(num(e0, "id"), created);
		assert_string_equal(th_str(body, "at"), th_str(e0, "at"));
		assert_true(
		    json_equal(json_object_get(body, "detail"), json_object_get(e0, "detail")));
		json_decref(ev);
	}
	assert_int_equal(json_object_size(body), 7);
	json_decref(body);

	/* an event it did not ask for is never queued; the next one it did is */
	{
		struct th_response r;

		th_json(&fx->srv, "PATCH", "/api/v1/clusters/wh-signed", fx->srv.admin_token,
			"{\"description\": \"x\"}", &r);
		expect_status(&r, 200, "PATCH cluster");
		th_response_free(&r);
	}
	delete_cluster(&fx->srv, "wh-signed");
	deleted = th_last_event_id(&fx->srv);
	assert_int_equal(wait_hits(&fx->rx, "/ok", deleted, 0, 1, DEADLINE_S), 1);
	assert_string_equal(last_hit(&fx->rx, "/ok").event, "cluster.delete");
	assert_int_equal(count(&fx->rx, "/ok", 0, 0), 2);

	/* the viewer's list shows the outcome: two delivered at the first
	 * attempt, the last one the delete */
	{
		json_t *got = wait_finished(&fx->srv, fx->viewer, th_str(w, "id"), 2), *list, *item;
		size_t i;
		bool found = false;

		json_decref(got);
		list = list_webhooks(&fx->srv, fx->viewer);
		assert_true(json_is_null(json_object_get(list, "next")));
		json_array_foreach(json_object_get(list, "items"), i, item)
		{
			if (strcmp(th_str(item, "id"), th_str(w, "id")) != 0)
				continue;
			found = true;
			assert_int_equal(num(json_object_get(item, "deliveries"), "ok"), 2);
			assert_int_equal(num(json_object_get(item, "deliveries"), "failed"), 0);
			last = json_object_get(json_object_get(item, "deliveries"), "last");
			assert_string_equal(th_str(last, "event"), "cluster.delete");
			assert_int_equal(num(last, "event_id"), deleted);
			assert_string_equal(th_str(last, "state"), "delivered");
			assert_int_equal(num(last, "status"), 200);
			assert_int_equal(num(last, "attempts"), 1);
			assert_true(json_is_null(json_object_get(last, "error")));
			assert_non_null(th_str(last, "at"));
			assert_string_equal(th_str(item, "public_key"), pub_api);
		}
		assert_true(found);
		json_decref(list);
	}
	json_decref(w);
	free(url);
	free(keyfile);
	free(pub_file);
	free(pub_api);
	tn_key_free(key);
	tn_key_free(file_key);
}

static void test_retried_until_it_answers(void **state)
{
	struct fx *fx = *state;
	char *url = receiver_url(&fx->rx, "/flaky");
	json_t *w = add_webhook(&fx->srv, fx->operator, url, "[\"cluster.*\"]"), *got, *last,
	       *tries;
	struct tn_key *key = NULL;
	struct tn_error err;
	long long id;

	assert_int_equal(tn_key_from_public_b64(th_str(w, "public_key"), &key, &err), 0);
	id = make_cluster(&fx->srv, "wh-flaky");
	/* 500, 500, then 200: the same event three times */
	assert_int_equal(wait_hits(&fx->rx, "/flaky", id, 200, 1, DEADLINE_S), 1);
	assert_int_equal(count(&fx->rx, "/flaky", id, 500), 2);
	verify((struct hit[]){last_hit(&fx->rx, "/flaky")}, key, true);

	got = wait_finished(&fx->srv, fx->viewer, th_str(w, "id"), 1);
	assert_int_equal(num(json_object_get(got, "deliveries"), "ok"), 1);
	last = json_object_get(json_object_get(got, "deliveries"), "last");
	assert_int_equal(num(last, "attempts"), 3);
	assert_int_equal(num(last, "status"), 200);
	assert_string_equal(th_str(last, "state"), "delivered");
	/* GET of the webhook: each attempt */
	tries = json_object_get(json_array_get(json_object_get(got, "recent"), 0), "tries");
	assert_int_equal(json_array_size(tries), 3);
	assert_int_equal(num(json_array_get(tries, 0), "status"), 500);
	assert_string_equal(th_str(json_array_get(tries, 0), "error"), "HTTP 500: broken");
	assert_int_equal(num(json_array_get(tries, 1), "status"), 500);
	assert_int_equal(num(json_array_get(tries, 2), "status"), 200);
	assert_true(json_is_null(json_object_get(json_array_get(tries, 2), "error")));
	json_decref(got);
	json_decref(w);
	tn_key_free(key);
	free(url);
}

static void test_unreachable_given_up(void **state)
{
	struct fx *fx = *state;
	int port = th_port_block(1); /* free, and nothing will listen there */
	char *url = xasprintf("http://127.0.0.1:%d/hook", port);
	json_t *w = add_webhook(&fx->srv, fx->operator, url, "[\"cluster.create\"]"), *got, *last,
	       *recent;
	long long id = make_cluster(&fx->srv, "wh-unreachable");

	got = wait_finished(&fx->srv, fx->viewer, th_str(w, "id"), 1);
	assert_int_equal(num(json_object_get(got, "deliveries"), "ok"), 0);
	assert_int_equal(num(json_object_get(got, "deliveries"), "failed"), 1);
	assert_int_equal(num(json_object_get(got, "deliveries"), "pending"), 0);
	last = json_object_get(json_object_get(got, "deliveries"), "last");
	assert_int_equal(num(last, "event_id"), id);
	assert_string_equal(th_str(last, "state"), "failed");
	assert_int_equal(num(last, "attempts"), 8);
	assert_true(json_is_null(json_object_get(last, "status")));
	if (!strstr(th_str(last, "error"), "onnect"))
		fail_msg("error \"%s\" does not say it could not connect", th_str(last, "error"));
	recent = json_object_get(got, "recent");
	assert_int_equal(json_array_size(json_object_get(json_array_get(recent, 0), "tries")), 8);
	json_decref(got);
	json_decref(w);
	free(url);
}

/* Refused with a 4xx naming the problem; nothing stored. */
static void refused(struct fx *fx, const char *token, const char *body, long status,
		    const char *message)
{
	struct th_response r;
	json_t *before = list_webhooks(&fx->srv, fx->viewer), *after;

	th_json(&fx->srv, "POST", "/api/v1/webhooks", token, body, &r);
	expect_status(&r, status, body);
	if (!strstr(th_error_message(&r), message))
		fail_msg("%s: \"%s\" does not say \"%s\"", body, th_error_message(&r), message);
	th_response_free(&r);
	after = list_webhooks(&fx->srv, fx->viewer);
	assert_true(json_equal(before, after));
	json_decref(before);
	json_decref(after);
}

static void test_bad_input_refused(void **state)
{
	struct fx *fx = *state;
	const char *op = fx->operator;
	char *long_url = xmalloc(2100), *body;
	struct th_response r;

	refused(fx, op, "{\"url\": \"http://h/x\"}", 400, "events: is required");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": []}", 400,
		"events: must name at least one event");
	refused(fx, op, "{\"url\": \"ftp://h/x\", \"events\": [\"*\"]}", 400,
		"url: must begin with http:// or https://");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": [\"*\"], \"secret\": \"s\"}", 400,
		"secret");
	refused(fx, op, "{\"events\": [\"*\"]}", 400, "url: is required");
	refused(fx, op, "{\"url\": 7, \"events\": [\"*\"]}", 400, "url");
	refused(fx, op, "{\"url\": \"http://\", \"events\": [\"*\"]}", 400, "url: has no host");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": \"*\"}", 400, "events");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": [\"rollout\"]}", 400,
		"events[0]: \"rollout\" is not an event name");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": [\"rollout.*\", 3]}", 400,
		"events[1]: must be a string");
	refused(fx, op, "{\"url\": \"http://h/x\", \"events\": [\"*\"]", 400, "");
	memset(long_url, 'a', 2099);
	memcpy(long_url, "http://h/", 9);
	long_url[2049] = '\0';
	body = xasprintf("{\"url\": \"%s\", \"events\": [\"*\"]}", long_url);
	refused(fx, op, body, 400, "url: longer than 2048 bytes");
	free(body);
	free(long_url);
	/* roles: operators manage webhooks, viewers and developers read them */
	refused(fx, fx->viewer, "{\"url\": \"http://h/x\", \"events\": [\"*\"]}", 403, "");
	refused(fx, fx->developer, "{\"url\": \"http://h/x\", \"events\": [\"*\"]}", 403, "");
	refused(fx, NULL, "{\"url\": \"http://h/x\", \"events\": [\"*\"]}", 401, "");
	th_json(&fx->srv, "GET", "/api/v1/webhooks", NULL, NULL, &r);
	expect_status(&r, 401, "GET without a token");
	th_response_free(&r);
	th_json(&fx->srv, "DELETE", "/api/v1/webhooks/w-nosuch", fx->viewer, NULL, &r);
	expect_status(&r, 403, "DELETE as a viewer");
	th_response_free(&r);
	th_json(&fx->srv, "DELETE", "/api/v1/webhooks/w-nosuch", op, NULL, &r);
	expect_status(&r, 404, "DELETE of an unknown webhook");
	assert_non_null(strstr(th_error_message(&r), "w-nosuch"));
	th_response_free(&r);
	json_decref(get_webhook(&fx->srv, fx->viewer, "w-nosuch", 404));
}

static void test_deleted_hears_nothing(void **state)
{
	struct fx *fx = *state;
	char *failing = receiver_url(&fx->rx, "/fail-deleted"),
	     *other = receiver_url(&fx->rx, "/other");
	json_t *a = add_webhook(&fx->srv, fx->operator, failing, "[\"cluster.*\"]");
	json_t *b = add_webhook(&fx->srv, fx->operator, other, "[\"cluster.*\"]");
	char *path = xasprintf("/api/v1/webhooks/%s", th_str(a, "id"));
	struct th_response r;
	long long first, second;
	size_t n;

	/* a retries its delivery every few tens of milliseconds... */
	first = make_cluster(&fx->srv, "wh-deleted-1");
	assert_int_equal(wait_hits(&fx->rx, "/fail-deleted", first, 0, 2, DEADLINE_S), 2);
	th_json(&fx->srv, "DELETE", path, fx->operator, NULL, &r);
	expect_status(&r, 204, path);
	th_response_free(&r);
	n = count(&fx->rx, "/fail-deleted", 0, 0);
	json_decref(get_webhook(&fx->srv, fx->viewer, th_str(a, "id"), 404));

	/* ...and stops once deleted (an attempt already in flight may still
	 * land); new events go to b alone */
	second = make_cluster(&fx->srv, "wh-deleted-2");
	assert_int_equal(wait_hits(&fx->rx, "/other", second, 0, 1, DEADLINE_S), 1);
	/* a second lets the deleted webhook's schedule (20, 40, 80 ... ms)
	 * show itself if it were still running */
	assert_true(wait_hits(&fx->rx, "/fail-deleted", 0, 0, n + 2, 1.0) <= n + 1);
	assert_int_equal(count(&fx->rx, "/fail-deleted", second, 0), 0);
	json_decref(a);
	json_decref(b);
	free(path);
	free(failing);
	free(other);
}

/* A delivery pending when the server stops (cleanly, or killed) is
 * delivered after it starts again.  Its own server: retries every 300 ms,
 * so that none runs out while it is down. */
static void test_pending_survives_restart(void **state)
{
	struct fx *fx = *state;
	static const char *const slow[] = {"--webhook-backoff-ms", "300", NULL};
	struct th_server s = {0};
	char *url = receiver_url(&fx->rx, "/down");
	json_t *w, *got;
	long long first, second;

	th_server_start(&s, slow);
	w = add_webhook(&s, s.admin_token, url, "[\"cluster.create\"]");
	pthread_mutex_lock(&fx->rx.lock);
	fx->rx.down = true;
	pthread_mutex_unlock(&fx->rx.lock);

	/* refused once: pending; then the server stops cleanly */
	first = make_cluster(&s, "wh-restart-1");
	assert_int_equal(wait_hits(&fx->rx, "/down", first, 500, 1, DEADLINE_S), 1);
	got = get_webhook(&s, s.admin_token, th_str(w, "id"), 200);
	assert_int_equal(num(json_object_get(got, "deliveries"), "pending"), 1);
	json_decref(got);
	assert_true(th_server_exited_cleanly(&s, th_server_stop(&s)));

	pthread_mutex_lock(&fx->rx.lock);
	fx->rx.down = false;
	pthread_mutex_unlock(&fx->rx.lock);
	th_server_restart(&s, slow);
	assert_int_equal(wait_hits(&fx->rx, "/down", first, 200, 1, DEADLINE_S), 1);
	got = wait_finished(&s, s.admin_token, th_str(w, "id"), 1);
	assert_int_equal(num(json_object_get(got, "deliveries"), "ok"), 1);
	assert_true(num(json_object_get(json_object_get(got, "deliveries"), "last"), "attempts") >=
		    2);
	json_decref(got);

	/* kill -9 right after the event was written: whether or not it was
	 * tried, it arrives after the restart */
	pthread_mutex_lock(&fx->rx.lock);
	fx->rx.down = true;
	pthread_mutex_unlock(&fx->rx.lock);
	second = make_cluster(&s, "wh-restart-2");
	th_server_kill9(&s);
	pthread_mutex_lock(&fx->rx.lock);
	fx->rx.down = false;
	pthread_mutex_unlock(&fx->rx.lock);
	th_server_restart(&s, slow);
	assert_int_equal(wait_hits(&fx->rx, "/down", second, 200, 1, DEADLINE_S), 1);
	got = wait_finished(&s, s.admin_token, th_str(w, "id"), 2);
	assert_int_equal(num(json_object_get(got, "deliveries"), "ok"), 2);
	assert_int_equal(num(json_object_get(got, "deliveries"), "failed"), 0);
	json_decref(got);
	assert_true(th_server_exited_cleanly(&s, th_server_stop(&s)));
	th_server_destroy(&s);
	json_decref(w);
	free(url);
}

static void test_server_exits_cleanly(void **state)
{
	struct fx *fx = *state;

	assert_true(th_server_exited_cleanly(&fx->srv, th_server_stop(&fx->srv)));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_event_delivered_signed), T(test_retried_until_it_answers),
	    T(test_unreachable_given_up),   T(test_bad_input_refused),
	    T(test_deleted_hears_nothing),  T(test_pending_survives_restart),
	    T(test_server_exits_cleanly),
	};
#undef T
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("webhooks", tests, group_setup, group_teardown);
}
