/* api_agent.c - what agents call: enroll, the desired document (a
 * long-poll parked without a thread until the document changes or the wait
 * runs out), blobs (sendfile, one Range, a cap on downloads in flight) and
 * reports.  A target token opens its own target's endpoints only. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "blobstore.h"
#include "clock.h"
#include "documents.h"
#include "events.h"
#include "json.h"
#include "lbsync.h"
#include "lifecycle.h"
#include "log.h"
#include "rollout.h"
#include "server.h"
#include "sign.h"
#include "store.h"
#include "xalloc.h"

#define POLL_WAIT_MAX_S 30
/* Downloads in flight before new ones get 503 + Retry-After. */
#define DOWNLOADS_MAX 64

static atomic_int downloads;

/* ------------------------------------------------------------ enroll */

TN_HANDLER(tn_api_agent_enroll)
{
	static const char *const keys[] = {"enrollment_token", "inventory", "address", "agent_port",
					   NULL};
	struct tn_server *srv = req->srv;
	json_t *body = NULL, *inventory = NULL, *cluster = NULL;
	const char *token = NULL, *address = NULL;
	json_int_t agent_port = 0;
	char enroll_hash[65], target_hash[65];
	char *target_token = NULL, *target_id = NULL, *server_key = NULL;
	struct tn_principal who = {TN_ROLE_AGENT, ""};
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "enrollment_token", true, &token, err)) ||
	    (rc = tn_json_get_object(body, "", "inventory", false, &inventory, err)) ||
	    (rc = tn_json_get_string(body, "", "address", false, &address, err)) ||
	    (rc = tn_json_get_int(body, "", "agent_port", false, 0, 65535, &agent_port, err)))
		goto out;
	tn_token_hash(token, enroll_hash);
	target_token = tn_token_generate("tnt_");
	tn_token_hash(target_token, target_hash);
	if ((rc = tn_store_enroll(srv->store, enroll_hash, target_hash, inventory, address,
				  (int)agent_port, &target_id, err)))
		goto out;
	snprintf(who.name, sizeof who.name, "%s", target_id);
	/* A target joining a cluster that runs a distribution starts on the
	 * cluster's current release. */
	if ((rc = tn_rollout_place_new_target(srv, target_id, err)))
		goto out;
	tn_audit(srv, &who, "target.enroll", "target", target_id, "ok", NULL);
	tn_lbsync_wake(srv->lbsync);
	server_key = tn_key_public_b64(srv->key);
	tn_response_json(resp, 200,
			 json_pack("{s:s, s:s, s:s, s:i}", "target_id", target_id, "target_token",
				   target_token, "server_key", server_key, "poll_wait_s",
				   POLL_WAIT_MAX_S));
out:
	if (target_token) {
		explicit_bzero(target_token, strlen(target_token));
		free(target_token);
	}
	free(target_id);
	free(server_key);
	json_decref(cluster);
	json_decref(body);
	return rc;
}

/* ------------------------------------------------------------ desired */

/* The etag a client sent: If-None-Match "hex" (quotes and W/ stripped). */
static bool client_etag(struct tn_request *req, char out[65])
{
	const char *v = tn_request_header(req, "If-None-Match");
	size_t n;

	if (!v)
		return false;
	if (strncmp(v, "W/", 2) == 0)
		v += 2;
	if (*v == '"')
		v++;
	n = strcspn(v, "\"");
	if (n != 64)
		return false;
	memcpy(out, v, 64);
	out[64] = '\0';
	return true;
}

static int answer_document(struct tn_request *req, struct tn_response *resp, const char *etag,
			   struct tn_error *err)
{
	struct tn_doc_view v;
	char quoted[70], sig[128];
	int rc = tn_documents_get(req->srv, req->who.name, &v, err);

	if (rc != 0)
		return rc;
	snprintf(quoted, sizeof quoted, "\"%s\"", v.etag);
	tn_response_add_header(resp, "ETag", quoted);
	tn_response_add_header(resp, "Cache-Control", "no-store");
	if (etag && strcmp(etag, v.etag) == 0) {
		resp->status = 304;
	} else {
		snprintf(sig, sizeof sig, "ed25519=%s", v.signature);
		tn_response_add_header(resp, "Tender-Signature", sig);
		/* after a rotation: how an agent that pinned an older key gets
		 * from it to the key that signed (keychain.h) */
		if (req->srv->key_endorsements)
			tn_response_add_header(resp, "Tender-Key-Endorsement",
					       req->srv->key_endorsements);
		resp->status = 200;
		resp->content_type = "application/json";
		resp->body = v.body;
		resp->body_len = strlen(v.body);
		v.body = NULL;
	}
	tn_doc_view_clear(&v);
	return 0;
}

struct poll_wait {
	struct tn_server *srv;
	char target[128];
	char etag[65];
};

static bool poll_ready(void *ctx)
{
	struct poll_wait *w = ctx;

	return !tn_documents_etag_is(w->srv, w->target, w->etag);
}

static int poll_resume(void *ctx, struct tn_request *req, struct tn_response *resp,
		       struct tn_error *err)
{
	struct poll_wait *w = ctx;

	return answer_document(req, resp, w->etag, err);
}

static const struct tn_defer_ops poll_ops = {poll_ready, poll_resume, free};

TN_HANDLER(tn_api_agent_desired)
{
	const char *wait_s = tn_request_query(req, "wait");
	char etag[65];
	bool has_etag = client_etag(req, etag);
	long wait = 0;
	struct tn_doc_view v;
	int rc;

	if (wait_s) {
		char *end;

		wait = strtol(wait_s, &end, 10);
		if (*wait_s == '\0' || *end != '\0' || wait < 0 || wait > POLL_WAIT_MAX_S)
			return tn_fail(err, TN_E_INVALID, "wait: \"%s\" is not 0 to %d seconds", wait_s,
				       POLL_WAIT_MAX_S);
	}
	if (!has_etag || wait == 0) {
		rc = answer_document(req, resp, has_etag ? etag : NULL, err);
		tn_documents_seen(req->srv, req->who.name);
		return rc;
	}
	if ((rc = tn_documents_get(req->srv, req->who.name, &v, err)))
		return rc;
	tn_documents_seen(req->srv, req->who.name);
	if (strcmp(v.etag, etag) != 0) {
		tn_doc_view_clear(&v);
		return answer_document(req, resp, etag, err);
	}
	tn_doc_view_clear(&v);
	{
		struct poll_wait *w = xcalloc(1, sizeof *w);

		w->srv = req->srv;
		snprintf(w->target, sizeof w->target, "%s", req->who.name);
		memcpy(w->etag, etag, sizeof w->etag);
		resp->defer = &poll_ops;
		resp->defer_ctx = w;
		resp->defer_key = xstrdup(req->who.name);
		resp->defer_until_ms = tn_clock_ms() + (uint64_t)wait * 1000;
	}
	return 0;
}

/* ------------------------------------------------------------ blobs */

static void download_done(void *ctx)
{
	(void)ctx;
	atomic_fetch_sub(&downloads, 1);
}

/* Parses a single "bytes=a-b" / "a-" / "-n" range against size.  Returns
 * 1 with [*first, *last] set, 0 when there is no usable Range header (the
 * whole file), -1 when it cannot be satisfied. */
static int parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	unsigned long long a = 0, b = 0;
	const char *p;
	char *end;

	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0; /* not a single byte range: RFC 9110 lets us send it all */
	p = h + 6;
	if (*p == '-') {
		b = strtoull(p + 1, &end, 10);
		if (end == p + 1 || *end != '\0')
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	a = strtoull(p, &end, 10);
	if (end == p || *end != '-')
		return 0;
	p = end + 1;
	if (*p == '\0') {
		b = size ? size - 1 : 0;
	} else {
		b = strtoull(p, &end, 10);
		if (*end != '\0' || b < a)
			return 0;
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return -1;
	*first = a;
	*last = b;
	return 1;
}

TN_HANDLER(tn_api_agent_blob)
{
	struct tn_server *srv = req->srv;
	const char *sha = req->params[0];
	struct tn_doc_view v;
	uint64_t size = 0, first = 0, last = 0;
	char buf[96];
	int fd = -1, range, rc;

	if ((rc = tn_documents_get(srv, req->who.name, &v, err)))
		return rc;
	tn_doc_view_clear(&v);
	if (!tn_documents_blob_allowed(srv, req->who.name, sha))
		return tn_fail(err, TN_E_NOT_FOUND,
			       "blob %.64s is not part of this target's run or prepare release", sha);
	if (atomic_fetch_add(&downloads, 1) >= DOWNLOADS_MAX) {
		atomic_fetch_sub(&downloads, 1);
		tn_response_add_header(resp, "Retry-After", "2");
		return tn_fail(err, TN_E_UNAVAILABLE,
			       "too many downloads in flight (%d); retry after the time given",
			       DOWNLOADS_MAX);
	}
	resp->on_release = download_done;
	if ((rc = tn_blob_open(srv->blobs, sha, &fd, &size, err)))
		return rc;
	range = parse_range(tn_request_header(req, "Range"), size, &first, &last);
	if (range < 0) {
		snprintf(buf, sizeof buf, "bytes */%" PRIu64, size);
		tn_response_add_header(resp, "Content-Range", buf);
		close(fd);
		return tn_fail(err, TN_E_RANGE, "range \"%s\" is outside the blob's %" PRIu64 " bytes",
			       tn_request_header(req, "Range"), size);
	}
	resp->fd = fd;
	resp->content_type = "application/zip";
	tn_response_add_header(resp, "Accept-Ranges", "bytes");
	snprintf(buf, sizeof buf, "\"%.64s\"", sha);
	tn_response_add_header(resp, "ETag", buf);
	if (range == 1) {
		snprintf(buf, sizeof buf, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
		tn_response_add_header(resp, "Content-Range", buf);
		resp->status = 206;
		resp->fd_offset = first;
		resp->fd_size = last - first + 1;
	} else {
		resp->status = 200;
		resp->fd_offset = 0;
		resp->fd_size = size;
	}
	return 0;
}

/* ------------------------------------------------------------ report */

TN_HANDLER(tn_api_agent_report)
{
	struct tn_agent_report r;
	int rc = tn_agent_report_parse(req->body, req->body_len, &r, err);

	if (rc == 0)
		rc = tn_rollout_on_report(req->srv, req->who.name, &r, err);
	if (rc == 0) /* a drained node is terminated */
		tn_lifecycle_on_report(req->srv, req->who.name, &r);
	/* a node entering or leaving service: its member follows soon */
	if (rc == 0 && r.phase && strcmp(r.phase, "prepare") != 0 && strcmp(r.phase, "switch") != 0)
		tn_lbsync_wake(req->srv->lbsync);
	tn_agent_report_clear(&r);
	if (rc == 0)
		resp->status = 204;
	return rc;
}
