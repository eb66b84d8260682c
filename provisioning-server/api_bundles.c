/* api_bundles.c - bundle upload (streamed into the blob store's staging
 * area, hashed on the way, checked, and only then kept), list, get,
 * archive download and delete. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "blobstore.h"
#include "ingest.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "version.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- upload */

static int upload_begin(struct tn_request *req, struct tn_error *err)
{
	struct tn_blob_writer *w = NULL;
	int rc = tn_blob_writer_begin(req->srv->blobs, req->srv->max_upload, &w, err);

	req->upload = w;
	return rc;
}

static int upload_chunk(struct tn_request *req, const char *data, size_t len,
			struct tn_error *err)
{
	return tn_blob_writer_write(req->upload, data, len, err);
}

static void upload_release(struct tn_request *req)
{
	tn_blob_writer_abort(req->upload);
}

const struct tn_upload_ops tn_bundle_upload_ops = {upload_begin, upload_chunk, upload_release};

static void to_store_version(const struct tn_version *v, struct tn_store_version *out)
{
	out->major = v->major;
	out->minor = v->minor;
	out->micro = v->micro;
	out->qualifier = v->qualifier;
}

void tn_api_drop_unreferenced(struct tn_server *srv, const char *sha)
{
	struct tn_error err;
	bool referenced = true;

	tn_blobstore_lock(srv->blobs, TN_BLOBSTORE_EXCLUSIVE);
	/* On a failure the blob stays; the garbage collector tries again. */
	if (tn_store_blob_referenced(srv->store, sha, &referenced, &err) == 0 && !referenced &&
	    tn_blob_remove(srv->blobs, sha, &err) != 0)
		tn_log(TN_LOG_WARN, "blobstore", "remove_failed", "{s:s}", "message", err.message);
	tn_blobstore_unlock(srv->blobs);
}

static int keep(struct tn_server *srv, struct tn_blob_writer *w, const struct tn_manifest *m,
		   const char *actor, json_t **out, bool *created, struct tn_error *err)
{
	char sha[TN_BLOB_HEX_LEN + 1];
	uint64_t size = 0;
	struct tn_store_version v;
	enum tn_store_outcome outcome = TN_STORE_CREATED;
	bool committed;
	int rc;

	to_store_version(&m->version, &v);
	tn_blobstore_lock(srv->blobs, TN_BLOBSTORE_SHARED);
	rc = tn_blob_writer_commit(w, NULL, sha, &size, err);
	committed = rc == 0;
	if (rc == 0)
		rc = tn_store_bundle_insert(srv->store, m->name, &v, sha, (int64_t)size, m->raw,
					    actor, &outcome, err);
	tn_blobstore_unlock(srv->blobs);
	if (rc != 0) {
		/* a blob kept for a row that was refused (409) or could not be
		 * written (507: the disk full) goes, unless another row has it */
		if (committed)
			tn_api_drop_unreferenced(srv, sha);
		return rc;
	}
	*created = outcome == TN_STORE_CREATED;
	*out = json_pack("{s:s, s:s, s:s, s:I}", "name", m->name, "version", m->version_str,
			 "sha256", sha, "size", (json_int_t)size);
	return 0;
}

TN_HANDLER(tn_api_bundle_upload)
{
	struct tn_server *srv = req->srv;
	struct tn_blob_writer *w = req->upload;
	struct tn_manifest *m = NULL;
	json_t *out = NULL;
	bool created = false;
	int rc;

	if ((rc = tn_blob_writer_flush(w, err)) ||
	    (rc = tn_ingest_check_bundle(tn_blob_writer_path(w), &srv->archive_limits, NULL, &m,
					 err)))
		goto out;
	{
		char *id = xasprintf("%s@%s", m->name, m->version_str);

		tn_response_audit(resp, "bundle", id);
		free(id);
	}
	req->upload = NULL; /* commit or abort: the writer is gone either way */
	if ((rc = keep(srv, w, m, req->who.name, &out, &created, err)))
		goto out;
	tn_response_json(resp, created ? 201 : 200, out);
out:
	tn_manifest_free(m);
	return rc;
}

/* ---------------------------------------------------------------- reads */

int tn_api_name_version(struct tn_request *req, struct tn_version *v, struct tn_store_version *sv,
			struct tn_error *err)
{
	int rc = tn_version_parse(req->params[1], v, err);

	if (rc != 0)
		return rc;
	to_store_version(v, sv);
	return 0;
}

TN_HANDLER(tn_api_bundle_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_bundle_list(req->srv->store, tn_request_query(req, "name"),
				       (unsigned)limit, tn_request_query(req, "after"), &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_bundle_get)
{
	struct tn_version v;
	struct tn_store_version sv;
	json_t *out = NULL;
	int rc;

	if ((rc = tn_api_name_version(req, &v, &sv, err)) ||
	    (rc = tn_store_bundle_get(req->srv->store, req->params[0], &sv, &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_bundle_archive)
{
	struct tn_version v;
	struct tn_store_version sv;
	json_t *b = NULL;
	char *disposition = NULL;
	int fd = -1;
	uint64_t size = 0;
	int rc;

	if ((rc = tn_api_name_version(req, &v, &sv, err)) ||
	    (rc = tn_store_bundle_get(req->srv->store, req->params[0], &sv, &b, err)) ||
	    (rc = tn_blob_open(req->srv->blobs, json_string_value(json_object_get(b, "sha256")), &fd,
			       &size, err)))
		goto out;
	resp->status = 200;
	resp->fd = fd;
	resp->fd_offset = 0;
	resp->fd_size = size;
	resp->content_type = "application/zip";
	disposition = xasprintf("attachment; filename=\"%s-%s.zip\"", req->params[0],
				json_string_value(json_object_get(b, "version")));
	tn_response_add_header(resp, "Content-Disposition", disposition);
	tn_response_add_header(resp, "ETag", json_string_value(json_object_get(b, "sha256")));
out:
	free(disposition);
	json_decref(b);
	return rc;
}

TN_HANDLER(tn_api_bundle_delete)
{
	struct tn_version v;
	struct tn_store_version sv;
	char *sha = NULL;
	char *id = NULL;
	int rc;

	if ((rc = tn_api_name_version(req, &v, &sv, err)))
		return rc;
	{
		char canon[TN_VERSION_STR_MAX];

		id = xasprintf("%s@%s", req->params[0], tn_version_format(&v, canon, sizeof canon));
		tn_response_audit(resp, "bundle", id);
		free(id);
	}
	if ((rc = tn_store_bundle_delete(req->srv->store, req->params[0], &sv, &sha, err)))
		return rc;
	tn_api_drop_unreferenced(req->srv, sha);
	free(sha);
	resp->status = 204;
	return 0;
}
