/* webhook.c - see webhook.h.  The worker is one thread driving a libcurl
 * multi handle: at most one delivery in flight per webhook (so that a
 * webhook hears its events in order while it answers), up to FLIGHTS_MAX
 * webhooks at once (so that a slow receiver does not hold up the others).
 * It sleeps in curl_multi_poll, which tn_webhooks_wake interrupts. */
#include "webhook.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "server.h"
#include "sign.h"
#include "store.h"
#include "xalloc.h"

#include "config.h"

#define BACKOFF_DEFAULT_MS 1000
#define ATTEMPTS_DEFAULT 8
#define MAX_PENDING_DEFAULT 1000
#define FLIGHTS_MAX 16
#define CONNECT_TIMEOUT_MS 5000
#define TOTAL_TIMEOUT_MS 10000
/* Events matched per store transaction, and transactions per scan. */
#define SCAN_BATCH 500
#define SCAN_BATCHES 20
/* Longest sleep: the queue and the log are looked at again this often,
 * whatever the wakes say (a wake may come before its event commits). */
#define IDLE_MS 1000
#define SCAN_EVERY_MS 5000
/* Scans asked for by wakes, at most this often: a burst of events is
 * matched in one transaction, not one each. */
#define SCAN_GAP_MS 50
/* Finished deliveries kept per webhook (their counts are kept apart). */
#define KEEP_FINISHED 100
/* The part of a receiver's refusal kept as the attempt's error. */
#define ERROR_BODY_MAX 200

/* ------------------------------------------------------------ what is accepted */

static bool host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

int tn_webhook_check_url(const char *url, struct tn_error *err)
{
	size_t n = strlen(url), skip;
	const char *auth, *end, *host, *host_end, *at, *p;

	if (n > TN_WEBHOOK_URL_MAX)
		return tn_fail(err, TN_E_INVALID, "url: longer than %d bytes", TN_WEBHOOK_URL_MAX);
	if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return tn_fail(err, TN_E_INVALID, "url: must begin with http:// or https://");
	for (p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return tn_fail(err, TN_E_INVALID,
				       "url: spaces, control characters and non-ASCII bytes are "
				       "not allowed (percent-encode them)");
	auth = url + skip;
	end = auth + strcspn(auth, "/?#");
	/* user:password@ comes before the host; the last @ ends it */
	host = auth;
	for (at = auth; at < end; at++)
		if (*at == '@')
			host = at + 1;
	if (host < end && *host == '[') {
		host_end = memchr(host, ']', (size_t)(end - host));
		if (!host_end || host_end == host + 1)
			return tn_fail(err, TN_E_INVALID, "url: a bracketed IPv6 host has no ']'");
		for (p = host + 1; p < host_end; p++)
			if (!strchr("0123456789abcdefABCDEF:.", *p))
				return tn_fail(err, TN_E_INVALID, "url: bad IPv6 address");
		host_end++;
	} else {
		for (host_end = host; host_end < end && host_char(*host_end); host_end++)
			;
		if (host_end == host)
			return tn_fail(err, TN_E_INVALID, "url: has no host");
	}
	if (host_end < end) {
		unsigned long port = 0;

		if (*host_end != ':' || host_end + 1 == end)
			return tn_fail(err, TN_E_INVALID, "url: bad character in the host");
		for (p = host_end + 1; p < end; p++) {
			if (*p < '0' || *p > '9' || p - host_end > 5)
				return tn_fail(err, TN_E_INVALID, "url: bad port");
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port < 1 || port > 65535)
			return tn_fail(err, TN_E_INVALID, "url: port must be 1 to 65535");
	}
	return 0;
}

/* "name.part[.part...]" of [a-z0-9_], n bytes; parts counted into *parts. */
static bool name_valid(const char *s, size_t n, unsigned *parts)
{
	size_t len = 0;

	*parts = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (len == 0)
				return false;
			(*parts)++;
			len = 0;
		} else if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			   s[i] == '_') {
			len++;
		} else {
			return false;
		}
	}
	return true;
}

static bool pattern_valid(const char *s)
{
	size_t n = strlen(s);
	unsigned parts;

	if (strcmp(s, "*") == 0)
		return true;
	if (n == 0 || n > TN_WEBHOOK_PATTERN_MAX)
		return false;
	if (n > 2 && strcmp(s + n - 2, ".*") == 0)
		return name_valid(s, n - 2, &parts);
	return name_valid(s, n, &parts) && parts >= 2;
}

int tn_webhook_check_events(json_t *events, struct tn_error *err)
{
	size_t i, j, n;
	json_t *e;

	if (!json_is_array(events))
		return tn_fail(err, TN_E_INVALID, "events: must be an array of event names");
	n = json_array_size(events);
	if (n == 0)
		return tn_fail(err, TN_E_INVALID,
			       "events: must name at least one event (e.g. rollout.failed, "
			       "rollout.*, or *)");
	if (n > TN_WEBHOOK_EVENTS_MAX)
		return tn_fail(err, TN_E_INVALID, "events: more than %d entries",
			       TN_WEBHOOK_EVENTS_MAX);
	json_array_foreach(events, i, e)
	{
		const char *s = json_string_value(e);

		if (!s)
			return tn_fail(err, TN_E_INVALID, "events[%zu]: must be a string", i);
		if (!pattern_valid(s)) {
			char shown[TN_WEBHOOK_PATTERN_MAX + 1];

			snprintf(shown, sizeof shown, "%s", s);
			return tn_fail(err, TN_E_INVALID,
				       "events[%zu]: \"%s\" is not an event name (such as "
				       "rollout.succeeded), a prefix (rollout.*) or *",
				       i, shown);
		}
		for (j = 0; j < i; j++)
			if (strcmp(s, json_string_value(json_array_get(events, j))) == 0)
				return tn_fail(err, TN_E_INVALID,
					       "events[%zu]: \"%s\" is there twice", i, s);
	}
	return 0;
}

bool tn_webhook_pattern_matches(const char *pattern, const char *action)
{
	size_t n = strlen(pattern);

	if (strcmp(pattern, "*") == 0)
		return true;
	if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
		/* "rollout.*": the prefix and its dot, then at least one byte */
		return strncmp(action, pattern, n - 1) == 0 && action[n - 1] != '\0';
	return strcmp(pattern, action) == 0;
}

bool tn_webhook_matches(json_t *patterns, const char *action)
{
	size_t i;
	json_t *p;

	json_array_foreach(patterns, i, p)
	{
		if (json_is_string(p) && tn_webhook_pattern_matches(json_string_value(p), action))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ what is sent */

uint64_t tn_webhook_backoff_ms(unsigned base_ms, unsigned failed)
{
	uint64_t d = base_ms;

	for (unsigned i = 1; i < failed && d < TN_WEBHOOK_BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > TN_WEBHOOK_BACKOFF_CAP_MS)
		d = base_ms > TN_WEBHOOK_BACKOFF_CAP_MS ? base_ms : TN_WEBHOOK_BACKOFF_CAP_MS;
	return d;
}

char *tn_webhook_body(json_t *event)
{
	json_t *type = json_object_get(event, "object_type");
	json_t *id = json_object_get(event, "object_id");
	json_t *object = (json_is_null(type) || !type) && (json_is_null(id) || !id)
			     ? json_null()
			     : json_pack("{s:O?, s:O?}", "type", type, "id", id);
	json_t *detail = json_object_get(event, "detail");
	json_t *body = json_pack(
	    "{s:O?, s:O?, s:O?, s:O?, s:o, s:O?, s:O?}", "id", json_object_get(event, "id"),
	    "event", json_object_get(event, "action"), "at", json_object_get(event, "at"), "actor",
	    json_object_get(event, "actor"), "object", object, "outcome",
	    json_object_get(event, "outcome"), "detail", detail);
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(body);
	return text ? text : xstrdup("{}");
}

/* ------------------------------------------------------------ the worker */

/* One delivery attempt in flight. */
struct flight {
	CURL *easy; /* kept across attempts (its connection cache) */
	bool busy;
	int64_t delivery;
	char *webhook; /* the webhook's id */
	char *event;   /* its action */
	int64_t event_id;
	unsigned attempts; /* before this one */
	char *body;	   /* the exact bytes signed and sent */
	struct curl_slist *headers;
	int64_t started_ms; /* wall clock, for the store */
	uint64_t started_mono;
	char answer[ERROR_BODY_MAX + 1]; /* the start of the receiver's answer */
	size_t answer_len;
	char errbuf[CURL_ERROR_SIZE];
};

struct tn_webhooks {
	struct tn_server *srv;
	unsigned backoff_ms, attempts, max_pending;
	pthread_t thread;
	pthread_mutex_t lock; /* stopping, woken */
	bool stopping, woken;
	CURLM *multi;
	/* the worker's alone */
	struct flight flights[FLIGHTS_MAX];
	int64_t next_due_ms; /* of the next pending delivery not due yet; 0: none */
	bool look;	     /* look at the queue on the next turn */
	uint64_t last_scan;  /* monotonic */
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Matches the events after the scan cursor against the webhooks and
 * queues their deliveries, moving the cursor in the same transaction.
 * Returns true when more events wait. */
static bool scan(struct tn_webhooks *w)
{
	struct tn_store *store = w->srv->store;
	json_t *page = NULL, *hooks = NULL, *ev, *h;
	struct tn_error err = {0};
	char after[24];
	int64_t cursor = 0, last = 0, now = wall_ms();
	size_t i, j;
	bool more = false, in_tx = false;

	/* Nothing new (the usual case of the periodic look): no write lock. */
	if (tn_store_webhook_scan_get(store, &cursor, &err) != 0 ||
	    tn_store_event_last_id(store, &last, &err) != 0)
		goto out;
	if (last <= cursor)
		goto out;
	/* No webhook: move the cursor past what no one can hear (a webhook
	 * made meanwhile hears only events after `last` anyway). */
	if (tn_store_webhook_matchers(store, &hooks, &err) != 0)
		goto out;
	if (json_array_size(hooks) == 0) {
		int rc = tn_store_webhook_scan_set(store, last, &err); /* a failure is in err */

		(void)rc;
		goto out;
	}
	json_decref(hooks);
	hooks = NULL;
	if (tn_store_begin(store, &err) != 0)
		goto out;
	in_tx = true;
	if (tn_store_webhook_scan_get(store, &cursor, &err) != 0)
		goto out;
	snprintf(after, sizeof after, "%" PRId64, cursor);
	if (tn_store_event_list(store, after, SCAN_BATCH, &page, &err) != 0)
		goto out;
	if (json_array_size(json_object_get(page, "items")) == 0)
		goto out; /* nothing new: the empty transaction commits */
	if (tn_store_webhook_matchers(store, &hooks, &err) != 0)
		goto out;
	json_array_foreach(json_object_get(page, "items"), i, ev)
	{
		int64_t id = json_integer_value(json_object_get(ev, "id"));
		const char *action = json_string_value(json_object_get(ev, "action"));

		last = id;
		if (!action)
			continue;
		json_array_foreach(hooks, j, h)
		{
			const char *hook = json_string_value(json_object_get(h, "id"));
			unsigned dropped = 0;

			if (id <= json_integer_value(json_object_get(h, "since_event")) ||
			    !tn_webhook_matches(json_object_get(h, "events"), action))
				continue;
			if (tn_store_webhook_enqueue(store, hook, id, action, now, w->max_pending,
						     &dropped, &err) != 0)
				goto out;
			if (dropped)
				tn_log(TN_LOG_WARN, "webhook", "queue_full", "{s:s, s:i, s:i}",
				       "webhook", hook, "dropped", (int)dropped, "max_pending",
				       (int)w->max_pending);
		}
	}
	if (tn_store_webhook_scan_set(store, last, &err) != 0)
		goto out;
	more = !json_is_null(json_object_get(page, "next"));
	w->look = true;
out:
	if (in_tx) {
		if (err.code == TN_OK && tn_store_commit(store, &err) == 0)
			in_tx = false;
		if (in_tx)
			tn_store_rollback(store);
	}
	if (err.code != TN_OK) {
		tn_log(TN_LOG_WARN, "webhook", "scan_failed", "{s:s}", "message", err.message);
		more = false;
	}
	json_decref(page);
	json_decref(hooks);
	return more;
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
	struct flight *f = ctx;
	size_t len = size * n, room = ERROR_BODY_MAX - f->answer_len;
	size_t take = len < room ? len : room;

	memcpy(f->answer + f->answer_len, data, take);
	f->answer_len += take;
	f->answer[f->answer_len] = '\0';
	return len;
}

static void flight_clear(struct flight *f)
{
	free(f->webhook);
	free(f->event);
	free(f->body);
	curl_slist_free_all(f->headers);
	f->webhook = f->event = f->body = NULL;
	f->headers = NULL;
	f->busy = false;
}

/* Records an attempt's outcome and says what comes next. */
static void finish(struct tn_webhooks *w, struct flight *f, int status, const char *error)
{
	struct tn_store_webhook_attempt a = {0};
	struct tn_error err;
	unsigned n = f->attempts + 1;
	uint64_t wait = 0;
	bool recorded = false;

	a.delivery_id = f->delivery;
	a.status = status;
	a.error = error;
	a.at_ms = f->started_ms;
	a.duration_ms = (int64_t)(tn_clock_ms() - f->started_mono);
	a.keep = KEEP_FINISHED;
	if (!error) {
		a.state = "delivered";
	} else if (n >= w->attempts) {
		a.state = "failed";
	} else {
		a.state = "pending";
		wait = tn_webhook_backoff_ms(w->backoff_ms, n);
		a.next_ms = f->started_ms + a.duration_ms + (int64_t)wait;
	}
	if (tn_store_webhook_attempt(w->srv->store, &a, &recorded, &err) != 0)
		tn_log(TN_LOG_ERROR, "webhook", "record_failed", "{s:s, s:I, s:s}", "webhook",
		       f->webhook, "delivery", (json_int_t)f->delivery, "message", err.message);
	else if (!recorded)
		tn_log(TN_LOG_INFO, "webhook", "delivery_dropped", "{s:s, s:I, s:s}", "webhook",
		       f->webhook, "delivery", (json_int_t)f->delivery, "reason",
		       "the webhook was deleted");
	else if (!error)
		tn_log(TN_LOG_INFO, "webhook", "delivered", "{s:s, s:s, s:I, s:i, s:i}", "webhook",
		       f->webhook, "event", f->event, "event_id", (json_int_t)f->event_id, "status",
		       status, "attempt", (int)n);
	else
		tn_log(strcmp(a.state, "failed") == 0 ? TN_LOG_WARN : TN_LOG_INFO, "webhook",
		       strcmp(a.state, "failed") == 0 ? "gave_up" : "attempt_failed",
		       "{s:s, s:s, s:I, s:i, s:s, s:i, s:I}", "webhook", f->webhook, "event",
		       f->event, "event_id", (json_int_t)f->event_id, "attempt", (int)n, "error",
		       error, "status", status, "retry_in_ms", (json_int_t)wait);
	w->look = true;
}

/* A failure before anything was sent (the event is gone, signing failed):
 * recorded as an attempt like any other. */
static void fail_early(struct tn_webhooks *w, struct flight *f, const char *error)
{
	f->started_ms = wall_ms();
	f->started_mono = tn_clock_ms();
	finish(w, f, 0, error);
	flight_clear(f);
}

static bool webhook_in_flight(struct tn_webhooks *w, const char *id)
{
	for (size_t i = 0; i < FLIGHTS_MAX; i++)
		if (w->flights[i].busy && strcmp(w->flights[i].webhook, id) == 0)
			return true;
	return false;
}

static struct flight *free_flight(struct tn_webhooks *w)
{
	for (size_t i = 0; i < FLIGHTS_MAX; i++)
		if (!w->flights[i].busy)
			return &w->flights[i];
	return NULL;
}

/* Starts one attempt of delivery d ({id, webhook, url, event_id, event,
 * attempts}) on f. */
static void launch(struct tn_webhooks *w, struct flight *f, json_t *d)
{
	const char *url = json_string_value(json_object_get(d, "url"));
	json_t *event = NULL;
	struct tn_error err;
	char *sig = NULL, *line;
	CURL *e;

	f->busy = true;
	f->delivery = json_integer_value(json_object_get(d, "id"));
	f->webhook = xstrdup(json_string_value(json_object_get(d, "webhook")));
	f->event = xstrdup(json_string_value(json_object_get(d, "event")));
	for (char *p = f->event; *p; p++) /* it goes into a header line */
		if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
			*p = '?';
	f->event_id = json_integer_value(json_object_get(d, "event_id"));
	f->attempts = (unsigned)json_integer_value(json_object_get(d, "attempts"));
	if (tn_store_event_get(w->srv->store, f->event_id, &event, &err) != 0) {
		fail_early(w, f,
			   err.code == TN_E_NOT_FOUND ? "the event is no longer in the log"
						      : err.message);
		return;
	}
	f->body = tn_webhook_body(event);
	json_decref(event);
	if (tn_sign_b64(w->srv->key, f->body, strlen(f->body), &sig, &err) != 0) {
		fail_early(w, f, err.message);
		return;
	}
	f->headers = curl_slist_append(f->headers, "Content-Type: application/json");
	line = xasprintf("Tender-Event: %s", f->event);
	f->headers = curl_slist_append(f->headers, line);
	free(line);
	line = xasprintf("Tender-Signature: ed25519=%s", sig);
	f->headers = curl_slist_append(f->headers, line);
	free(line);
	free(sig);
	line = xasprintf("Tender-Delivery: %" PRId64, f->delivery);
	f->headers = curl_slist_append(f->headers, line);
	free(line);
	f->headers = curl_slist_append(f->headers, "Expect:"); /* no 100-continue wait */

	if (!f->easy)
		f->easy = curl_easy_init();
	e = f->easy;
	if (!e) {
		fail_early(w, f, "libcurl: cannot make a handle");
		return;
	}
	curl_easy_reset(e);
	f->errbuf[0] = '\0';
	f->answer[0] = '\0';
	f->answer_len = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)TOTAL_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(f->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tender-server/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	f->started_ms = wall_ms();
	f->started_mono = tn_clock_ms();
	if (curl_multi_add_handle(w->multi, e) != CURLM_OK)
		fail_early(w, f, "libcurl: cannot start the request");
}

/* Starts the due deliveries of the webhooks with none in flight, as many
 * as there are free flights. */
static void start_due(struct tn_webhooks *w)
{
	json_t *due = NULL, *d;
	struct tn_error err;
	int64_t next = 0;
	size_t i;

	w->look = false;
	if (!free_flight(w))
		return; /* a completion sets look again */
	if (tn_store_webhook_due(w->srv->store, wall_ms(), FLIGHTS_MAX * 2, &due, &next, &err) !=
	    0) {
		tn_log(TN_LOG_WARN, "webhook", "queue_read_failed", "{s:s}", "message",
		       err.message);
		w->next_due_ms = wall_ms() + IDLE_MS;
		return;
	}
	w->next_due_ms = next;
	json_array_foreach(due, i, d)
	{
		struct flight *f = free_flight(w);

		if (!f)
			break;
		if (webhook_in_flight(w, json_string_value(json_object_get(d, "webhook"))))
			continue;
		launch(w, f, d);
	}
	json_decref(due);
}

/* Collects the attempts that ended. */
static void collect(struct tn_webhooks *w)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(w->multi, &left))) {
		struct flight *f = NULL;
		long status = 0;
		char *error = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (m->data.result != CURLE_OK)
			error =
			    xstrdup(f->errbuf[0] ? f->errbuf : curl_easy_strerror(m->data.result));
		else if (status < 200 || status > 299)
			error = f->answer_len
				    ? xasprintf("HTTP %ld: %.*s", status,
						(int)strcspn(f->answer, "\r\n"), f->answer)
				    : xasprintf("HTTP %ld", status);
		curl_multi_remove_handle(w->multi, m->easy_handle);
		finish(w, f, (int)status, error);
		flight_clear(f);
		free(error);
	}
}

static void *run(void *arg)
{
	struct tn_webhooks *w = arg;
	bool scan_now = true; /* at start: whatever the log holds since the last run */

	for (;;) {
		int64_t now, wait = IDLE_MS;
		uint64_t since_scan;
		int running;

		pthread_mutex_lock(&w->lock);
		if (w->stopping) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		if (w->woken)
			scan_now = true;
		w->woken = false;
		pthread_mutex_unlock(&w->lock);

		since_scan = tn_clock_ms() - w->last_scan;
		if ((scan_now && since_scan >= SCAN_GAP_MS) || since_scan >= SCAN_EVERY_MS) {
			w->last_scan = tn_clock_ms();
			scan_now = false;
			for (int b = 0; b < SCAN_BATCHES && scan(w); b++)
				;
		} else if (scan_now) {
			wait = (int64_t)(SCAN_GAP_MS - since_scan);
		}
		now = wall_ms();
		if (w->look || (w->next_due_ms && now >= w->next_due_ms))
			start_due(w);
		curl_multi_perform(w->multi, &running);
		collect(w);
		if (w->look)
			wait = 0;
		else if (w->next_due_ms && w->next_due_ms - now < wait)
			wait = w->next_due_ms > now ? w->next_due_ms - now : 0;
		curl_multi_poll(w->multi, NULL, 0, (int)wait, NULL);
	}
	return NULL;
}

struct tn_webhooks *tn_webhooks_start(struct tn_server *srv, const struct tn_webhooks_config *cfg)
{
	struct tn_webhooks *w = xcalloc(1, sizeof *w);

	w->srv = srv;
	w->backoff_ms = cfg && cfg->backoff_ms ? cfg->backoff_ms : BACKOFF_DEFAULT_MS;
	w->attempts = cfg && cfg->attempts ? cfg->attempts : ATTEMPTS_DEFAULT;
	w->max_pending = cfg && cfg->max_pending ? cfg->max_pending : MAX_PENDING_DEFAULT;
	w->multi = curl_multi_init();
	if (!w->multi) { /* out of memory: the one policy is to abort */
		tn_log(TN_LOG_ERROR, "webhook", "curl_multi_init_failed", NULL);
		abort();
	}
	pthread_mutex_init(&w->lock, NULL);
	w->last_scan = 0; /* a scan at once */
	w->look = true;	  /* deliveries left pending by the last run */
	pthread_create(&w->thread, NULL, run, w);
	tn_log(TN_LOG_INFO, "webhook", "started", "{s:i, s:i, s:i}", "backoff_ms",
	       (int)w->backoff_ms, "attempts", (int)w->attempts, "max_pending",
	       (int)w->max_pending);
	return w;
}

void tn_webhooks_wake(struct tn_webhooks *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (!w->stopping) {
		w->woken = true;
		curl_multi_wakeup(w->multi);
	}
	pthread_mutex_unlock(&w->lock);
}

void tn_webhooks_stop(struct tn_webhooks *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	curl_multi_wakeup(w->multi);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	for (size_t i = 0; i < FLIGHTS_MAX; i++) {
		struct flight *f = &w->flights[i];

		if (f->busy) {
			curl_multi_remove_handle(w->multi, f->easy);
			tn_log(TN_LOG_INFO, "webhook", "abandoned", "{s:s, s:I}", "webhook",
			       f->webhook, "delivery", (json_int_t)f->delivery);
		}
		flight_clear(f);
		if (f->easy)
			curl_easy_cleanup(f->easy);
	}
	curl_multi_cleanup(w->multi);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
