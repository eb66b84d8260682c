/* events.c - the audit log and its live stream.  A stream keeps the id of
 * the last event it sent and reads the store for newer ones whenever the
 * HTTP layer resumes it (on every new event, and on a 15 s tick that also
 * sends a keep-alive comment and so notices clients that left). */
#include "events.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "webhook.h"
#include "xalloc.h"

#define KEEPALIVE_S 15
#define STREAM_BATCH 100

void tn_audit(struct tn_server *srv, const struct tn_principal *who, const char *action,
	      const char *object_type, const char *object_id, const char *outcome,
	      json_t *detail)
{
	struct tn_error err;
	int64_t id = 0;

	if (tn_store_event_append(srv->store, who ? who->name : "system", action, object_type,
				  object_id, outcome, detail, &id, &err) != 0) {
		tn_log(TN_LOG_ERROR, "audit", "append_failed", "{s:s, s:s}", "action", action,
		       "message", err.message);
		return;
	}
	tn_log(TN_LOG_INFO, "audit", action, "{s:I, s:s, s:s?, s:s}", "id", (json_int_t)id, "actor",
	       who ? who->name : "system", "object", object_id, "outcome", outcome);
	if (srv->http)
		tn_http_wake_streams(srv->http);
	tn_webhooks_wake(srv->webhooks); /* never waits for a delivery */
}

int tn_api_events_list(struct tn_request *req, struct tn_response *resp, struct tn_error *err)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_event_list(req->srv->store, tn_request_query(req, "after"),
				      (unsigned)limit, &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

struct stream {
	struct tn_server *srv;
	char token_hash[65]; /* the caller's: the stream ends with the token */
	char *after;    /* id of the last event sent, as text */
	char *pending;  /* formatted events not yet handed to the HTTP layer */
	size_t len, off;
	time_t last_write;
};

/* Formats events newer than s->after into s->pending; 0 when none. */
static size_t fill(struct stream *s)
{
	struct tn_error err;
	json_t *page = NULL, *item;
	size_t i;
	FILE *mem;

	if (tn_store_event_list(s->srv->store, s->after, STREAM_BATCH, &page, &err) != 0) {
		tn_log(TN_LOG_WARN, "events", "stream_read_failed", "{s:s}", "message", err.message);
		return 0;
	}
	free(s->pending);
	s->pending = NULL;
	s->len = s->off = 0;
	mem = open_memstream(&s->pending, &s->len);
	json_array_foreach(json_object_get(page, "items"), i, item) {
		char *data = json_dumps(item, JSON_COMPACT | JSON_PRESERVE_ORDER);

		fprintf(mem, "id: %lld\nevent: %s\ndata: %s\n\n",
			(long long)json_integer_value(json_object_get(item, "id")),
			json_string_value(json_object_get(item, "action")), data ? data : "{}");
		free(data);
		free(s->after);
		s->after = xasprintf("%lld", (long long)json_integer_value(json_object_get(item, "id")));
	}
	fclose(mem);
	json_decref(page);
	return s->len;
}

static ssize_t stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = ctx;
	size_t n;

	(void)pos;
	/* Revoked or expired since the stream began: send nothing more (a
	 * revocation wakes every stream, so this is at once). */
	if (!tn_auth_hash_valid(s->srv->auth, s->token_hash)) {
		tn_log(TN_LOG_INFO, "events", "stream_ended", "{s:s}", "reason",
		       "token revoked or expired");
		return -1;
	}
	if (s->off == s->len && fill(s) == 0) {
		if (time(NULL) - s->last_write < KEEPALIVE_S)
			return 0;
		free(s->pending);
		s->pending = xstrdup(": keepalive\n\n");
		s->len = strlen(s->pending);
		s->off = 0;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->pending + s->off, n);
	s->off += n;
	s->last_write = time(NULL);
	return (ssize_t)n;
}

static void stream_free(void *ctx)
{
	struct stream *s = ctx;

	free(s->after);
	free(s->pending);
	free(s);
}

static const struct tn_stream_ops stream_ops = {stream_read, stream_free};

int tn_api_events_stream(struct tn_request *req, struct tn_response *resp, struct tn_error *err)
{
	const char *from = tn_request_header(req, "Last-Event-ID");
	const char *auth = tn_request_header(req, "Authorization");
	struct stream *s;
	int64_t last = 0;
	int rc;

	if (!from)
		from = tn_request_query(req, "after");
	if (from) {
		char *end;
		long long v = strtoll(from, &end, 10);

		if (*from == '\0' || *end != '\0' || v < 0)
			return tn_fail(err, TN_E_INVALID, "Last-Event-ID \"%s\" is not an event id",
				       from);
	} else if ((rc = tn_store_event_last_id(req->srv->store, &last, err)) != 0) {
		return rc;
	}
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return tn_fail(err, TN_E_UNAUTHORIZED, "missing credentials");
	s = xcalloc(1, sizeof *s);
	s->srv = req->srv;
	tn_token_hash(auth + 7, s->token_hash);
	s->after = from ? xstrdup(from) : xasprintf("%lld", (long long)last);
	s->last_write = time(NULL);
	/* An initial comment gets headers and a first byte to the client. */
	s->pending = xstrdup(": tender events\n\n");
	s->len = strlen(s->pending);
	resp->status = 200;
	resp->content_type = "text/event-stream";
	resp->stream = &stream_ops;
	resp->stream_ctx = s;
	tn_response_add_header(resp, "Cache-Control", "no-store");
	tn_response_add_header(resp, "X-Accel-Buffering", "no");
	return 0;
}
