/* api_distributions.c - distributions: created from JSON naming bundles
 * already on the server, or from one archive (distribution.json +
 * bundles/NAME.zip) ingested all or nothing; list, get, delete. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "blobstore.h"
#include "fsutil.h"
#include "ingest.h"
#include "json.h"
#include "server.h"
#include "store.h"
#include "version.h"
#include "xalloc.h"

#define DESCRIPTOR_MAX (1u << 20)
#define COPY_CHUNK (1u << 20)

/* ---------------------------------------------------------------- upload */

/* The body is JSON (kept in memory, small) or a zip (staged on disk). */
struct dist_upload {
	bool is_zip;
	struct tn_blob_writer *zip;
	char *json;
	size_t len;
};

static int upload_begin(struct tn_request *req, struct tn_error *err)
{
	const char *type = tn_request_header(req, "Content-Type");
	struct dist_upload *u;

	if (!type)
		type = "application/json";
	u = xcalloc(1, sizeof *u);
	req->upload = u;
	if (strncasecmp(type, "application/zip", 15) == 0) {
		u->is_zip = true;
		return tn_blob_writer_begin(req->srv->blobs, req->srv->max_upload, &u->zip, err);
	}
	if (strncasecmp(type, "application/json", 16) != 0)
		return tn_fail(err, TN_E_MEDIA_TYPE,
			       "Content-Type \"%s\": send application/json (a distribution naming "
			       "bundles on the server) or application/zip (a distribution archive)",
			       type);
	/* The route takes archives up to --max-upload; a JSON body has the
	 * JSON limit, refused by its announced length before it is read. */
	if (req->has_length && req->content_length > DESCRIPTOR_MAX)
		return tn_fail(err, TN_E_TOO_LARGE,
			       "a JSON distribution of %llu bytes is over the limit of %u bytes",
			       (unsigned long long)req->content_length, DESCRIPTOR_MAX);
	return 0;
}

static int upload_chunk(struct tn_request *req, const char *data, size_t len,
			struct tn_error *err)
{
	struct dist_upload *u = req->upload;

	if (u->is_zip)
		return tn_blob_writer_write(u->zip, data, len, err);
	if (u->len + len > DESCRIPTOR_MAX)
		return tn_fail(err, TN_E_TOO_LARGE, "a JSON distribution is at most %u bytes",
			       DESCRIPTOR_MAX);
	u->json = xrealloc(u->json, u->len + len + 1);
	memcpy(u->json + u->len, data, len);
	u->len += len;
	u->json[u->len] = '\0';
	return 0;
}

static void upload_release(struct tn_request *req)
{
	struct dist_upload *u = req->upload;

	if (u->zip)
		tn_blob_writer_abort(u->zip);
	free(u->json);
	free(u);
}

const struct tn_upload_ops tn_distribution_upload_ops = {upload_begin, upload_chunk,
							 upload_release};

/* ---------------------------------------------------------------- the set */

/* The bundles of a distribution being created: each either new (from the
 * archive: a staged blob and its manifest) or already stored. */
struct member {
	struct tn_manifest *m;
	struct tn_blob_writer *w; /* NULL when the bundle is already stored */
	char *label;
	char sha[TN_BLOB_HEX_LEN + 1];
	uint64_t size;
};

struct dist {
	const char *name;
	struct tn_version version;
	bool named; /* name and version are valid: the audit log can name it */
	json_t *config;
	struct member *members;
	size_t n;
};

static void dist_free(struct dist *d)
{
	for (size_t i = 0; i < d->n; i++) {
		tn_manifest_free(d->members[i].m);
		if (d->members[i].w)
			tn_blob_writer_abort(d->members[i].w);
		free(d->members[i].label);
	}
	free(d->members);
}

static struct member *dist_add(struct dist *d)
{
	d->members = xrealloc(d->members, (d->n + 1) * sizeof *d->members);
	memset(&d->members[d->n], 0, sizeof *d->members);
	return &d->members[d->n++];
}

static struct member *dist_find(struct dist *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->members[i].m->name, name) == 0)
			return &d->members[i];
	return NULL;
}

/* Adds a bundle already on the server, by name and version. */
static int add_stored(struct tn_server *srv, struct dist *d, const char *name, const char *ver,
		      const char *where, struct tn_error *err)
{
	struct tn_version v;
	struct tn_store_version sv;
	json_t *b = NULL;
	struct member *mb;
	int rc;

	if ((rc = tn_version_parse(ver, &v, err))) {
		tn_error_prefix(err, "%s.version", where);
		return rc;
	}
	sv = (struct tn_store_version){v.major, v.minor, v.micro, v.qualifier};
	mb = dist_add(d);
	if ((rc = tn_ingest_stored_manifest(srv->store, name, &sv, &mb->m, &b, err))) {
		d->n--; /* mb holds nothing */
		if (err && err->code == TN_E_NOT_FOUND)
			rc = tn_fail(err, TN_E_UNRESOLVED,
				     "%s: bundle %s@%s is not on the server (upload it first, or "
				     "send a distribution archive that includes it)",
				     where, name, ver);
		return rc;
	}
	mb->label = xstrdup(where);
	snprintf(mb->sha, sizeof mb->sha, "%s", json_string_value(json_object_get(b, "sha256")));
	mb->size = (uint64_t)json_integer_value(json_object_get(b, "size"));
	json_decref(b);
	return rc;
}

/* Reads {name, version, bundles?, config?} (the JSON body, or the archive's
 * distribution.json); bundles named there and not in the archive must be
 * on the server. */
static int read_descriptor(struct tn_server *srv, json_t *doc, bool from_archive, struct dist *d,
			   struct tn_error *err)
{
	static const char *const keys[] = {"name", "version", "bundles", "config", NULL};
	const char *ver = NULL;
	json_t *bundles = NULL, *item;
	size_t i;
	int rc;

	if ((rc = tn_json_check_keys(doc, "", keys, err)) ||
	    (rc = tn_json_get_string(doc, "", "name", true, &d->name, err)) ||
	    (rc = tn_json_get_string(doc, "", "version", true, &ver, err)) ||
	    (rc = tn_json_get_array(doc, "", "bundles", !from_archive, &bundles, err)) ||
	    (rc = tn_json_get_object(doc, "", "config", false, &d->config, err)))
		return rc;
	if (!tn_ingest_name_valid(d->name))
		return tn_fail(err, TN_E_INVALID,
			       "name: \"%s\" must be 1 to 128 of letters, digits, '.', '_' and '-'",
			       d->name);
	if ((rc = tn_version_parse(ver, &d->version, err)))
		return tn_error_prefix(err, "version");
	d->named = true;
	json_array_foreach(bundles, i, item) {
		static const char *const bkeys[] = {"name", "version", NULL};
		char *where = xasprintf("bundles[%zu]", i);
		const char *bname = NULL, *bver = NULL;
		struct member *have;

		if (!json_is_object(item))
			rc = tn_fail(err, TN_E_INVALID, "%s: must be an object {name, version}", where);
		else if (!(rc = tn_json_check_keys(item, where, bkeys, err)) &&
			 !(rc = tn_json_get_string(item, where, "name", true, &bname, err)) &&
			 !(rc = tn_json_get_string(item, where, "version", true, &bver, err))) {
			have = dist_find(d, bname);
			if (!have) {
				rc = add_stored(srv, d, bname, bver, where, err);
			} else {
				struct tn_version v;

				if ((rc = tn_version_parse(bver, &v, err)) == 0 &&
				    tn_version_compare(&v, &have->m->version) != 0)
					rc = tn_fail(err, TN_E_INVALID,
						     "%s: names %s@%s, but the archive holds %s@%s",
						     where, bname, bver, bname, have->m->version_str);
			}
		}
		free(where);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Copies an extracted bundle archive into a staged blob and checks it. */
static int stage_bundle(struct tn_server *srv, const char *path, const char *label,
			struct dist *d, struct tn_error *err)
{
	struct member *mb = dist_add(d);
	char *buf = xmalloc(COPY_CHUNK);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = 0;

	mb->label = xstrdup(label);
	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "open %s", label);
		goto out;
	}
	if ((rc = tn_blob_writer_begin(srv->blobs, srv->max_upload, &mb->w, err)))
		goto out;
	for (;;) {
		ssize_t n = read(fd, buf, COPY_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tn_fail_errno(err, errno, "read %s", label);
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = tn_blob_writer_write(mb->w, buf, (size_t)n, err)))
			goto out;
	}
	if ((rc = tn_blob_writer_flush(mb->w, err)) ||
	    (rc = tn_ingest_check_bundle(tn_blob_writer_path(mb->w), &srv->archive_limits, label,
					 &mb->m, err)))
		goto out;
	if (dist_find(d, mb->m->name) != mb)
		rc = tn_fail(err, TN_E_INVALID, "%s: bundle %s is in the archive twice", label,
			     mb->m->name);
out:
	if (rc != 0 && !mb->m) {
		if (mb->w)
			tn_blob_writer_abort(mb->w);
		free(mb->label);
		d->n--;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int is_zip_name(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".zip") == 0;
}

/* Unpacks a distribution archive into a staging directory and stages each
 * of its bundles.  *doc receives distribution.json (caller decrefs). */
static int read_archive(struct tn_server *srv, struct tn_blob_writer *zip, struct dist *d,
			json_t **doc, struct tn_error *err)
{
	struct tn_archive *ar = NULL;
	char *parent = NULL, *stage = NULL, *text = NULL, *bdir = NULL;
	size_t len = 0;
	DIR *dir = NULL;
	struct dirent *e;
	int rc;

	if ((rc = tn_blob_writer_flush(zip, err)) ||
	    (rc = tn_archive_open(tn_blob_writer_path(zip), &srv->archive_limits, &ar, err)))
		goto out;
	for (size_t i = 0; i < tn_archive_entry_count(ar); i++) {
		const struct tn_archive_entry *en = tn_archive_entry(ar, i);
		bool ok = strcmp(en->name, "distribution.json") == 0 ||
			  (en->is_dir && strcmp(en->name, "bundles/") == 0) ||
			  (!en->is_dir && strncmp(en->name, "bundles/", 8) == 0 &&
			   !strchr(en->name + 8, '/') && is_zip_name(en->name + 8));

		if (!ok) {
			rc = tn_fail(err, TN_E_INVALID,
				     "unexpected entry \"%s\": a distribution archive holds "
				     "distribution.json and bundles/*.zip",
				     en->name);
			goto out;
		}
	}
	if (!tn_archive_find(ar, "distribution.json")) {
		rc = tn_fail(err, TN_E_INVALID, "distribution.json: missing at the root of the archive");
		goto out;
	}
	if ((rc = tn_archive_read_entry(ar, "distribution.json", DESCRIPTOR_MAX, &text, &len, err)) ||
	    (rc = tn_json_parse_object(text, len, doc, err))) {
		tn_error_prefix(err, "distribution.json");
		goto out;
	}
	parent = xasprintf("%s/dist-XXXXXX", srv->tmp_dir);
	if (!mkdtemp(parent)) {
		rc = tn_fail_errno(err, errno, "create a staging directory in %s", srv->tmp_dir);
		free(parent);
		parent = NULL;
		goto out;
	}
	stage = xasprintf("%s/archive", parent);
	if ((rc = tn_archive_extract(ar, stage, err)))
		goto out;
	bdir = xasprintf("%s/bundles", stage);
	dir = opendir(bdir);
	while (dir && (e = readdir(dir))) {
		char *path, *label;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", bdir, e->d_name);
		label = xasprintf("bundles/%s", e->d_name);
		rc = stage_bundle(srv, path, label, d, err);
		free(path);
		free(label);
		if (rc != 0)
			goto out;
	}
out:
	/* unpacking and staging take about twice the archive's size again */
	if (rc != 0 && err && err->code == TN_E_NO_SPACE &&
	    strncmp(err->message, "no space left", 13) != 0)
		tn_error_prefix(err, "no space left on the server's disk to unpack the "
				     "distribution; nothing was kept");
	if (dir)
		closedir(dir);
	if (parent) {
		struct tn_error cleanup;

		if (tn_remove_tree(parent, &cleanup) != 0 && rc == 0)
			rc = tn_fail(err, cleanup.code, "%s", cleanup.message);
	}
	free(parent);
	free(bdir);
	free(stage);
	free(text);
	tn_archive_close(ar);
	return rc;
}

/* Commits the staged blobs, then records new bundles and the
 * distribution in one transaction; on failure, blobs no row references
 * are removed again. */
static int keep(struct tn_server *srv, struct dist *d, const char *actor,
		enum tn_store_outcome *outcome, struct tn_error *err)
{
	struct tn_store_new_bundle *fresh = xcalloc(d->n, sizeof *fresh);
	struct tn_store_bundle_ref *refs = xcalloc(d->n, sizeof *refs);
	size_t nfresh = 0;
	int rc = 0;

	tn_blobstore_lock(srv->blobs, TN_BLOBSTORE_SHARED);
	for (size_t i = 0; i < d->n; i++) {
		struct member *mb = &d->members[i];
		const struct tn_version *v = &mb->m->version;

		refs[i] = (struct tn_store_bundle_ref){mb->m->name,
						       {v->major, v->minor, v->micro, v->qualifier}};
		if (!mb->w)
			continue;
		rc = tn_blob_writer_commit(mb->w, NULL, mb->sha, &mb->size, err);
		mb->w = NULL;
		if (rc != 0)
			break;
		fresh[nfresh++] = (struct tn_store_new_bundle){mb->m->name, refs[i].version, mb->sha,
							       (int64_t)mb->size, mb->m->raw};
	}
	if (rc == 0) {
		const struct tn_version *v = &d->version;

		rc = tn_store_distribution_ingest(
			srv->store, d->name, &(struct tn_store_version){v->major, v->minor, v->micro,
									v->qualifier},
			d->config, fresh, nfresh, refs, d->n, actor, outcome, err);
	}
	tn_blobstore_unlock(srv->blobs);
	if (rc != 0)
		for (size_t i = 0; i < nfresh; i++)
			tn_api_drop_unreferenced(srv, fresh[i].sha256);
	free(fresh);
	free(refs);
	return rc;
}

TN_HANDLER(tn_api_distribution_create)
{
	struct tn_server *srv = req->srv;
	struct dist_upload *u = req->upload;
	struct dist d = {0};
	struct tn_manifest **ms = NULL;
	json_t *doc = NULL, *out = NULL;
	enum tn_store_outcome outcome = TN_STORE_CREATED;
	char canon[TN_VERSION_STR_MAX];
	char *id = NULL;
	int rc;

	if (u->is_zip)
		rc = read_archive(srv, u->zip, &d, &doc, err);
	else
		rc = tn_json_parse_object(u->json ? u->json : "", u->len, &doc, err);
	if (rc == 0)
		rc = read_descriptor(srv, doc, u->is_zip, &d, err);
	if (d.named) { /* refused or not, the audit log names what it was */
		id = xasprintf("%s@%s", d.name, tn_version_format(&d.version, canon, sizeof canon));
		tn_response_audit(resp, "distribution", id);
	}
	if (rc)
		goto out;
	ms = xcalloc(d.n ? d.n : 1, sizeof *ms);
	for (size_t i = 0; i < d.n; i++)
		ms[i] = d.members[i].m;
	if ((rc = tn_ingest_check_distribution(ms, d.n, d.config, err)) ||
	    (rc = keep(srv, &d, req->who.name, &outcome, err)) ||
	    (rc = tn_store_distribution_get(srv->store, d.name,
					    &(struct tn_store_version){d.version.major,
								       d.version.minor,
								       d.version.micro,
								       d.version.qualifier},
					    &out, err)))
		goto out;
	tn_response_json(resp, outcome == TN_STORE_CREATED ? 201 : 200, out);
out:
	free(ms);
	free(id);
	dist_free(&d);
	json_decref(doc);
	return rc;
}

/* ---------------------------------------------------------------- reads */

TN_HANDLER(tn_api_distribution_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_distribution_list(req->srv->store, tn_request_query(req, "name"),
					     (unsigned)limit, tn_request_query(req, "after"), &out,
					     err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_distribution_get)
{
	struct tn_version v;
	struct tn_store_version sv;
	json_t *out = NULL;
	int rc;

	if ((rc = tn_api_name_version(req, &v, &sv, err)) ||
	    (rc = tn_store_distribution_get(req->srv->store, req->params[0], &sv, &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_distribution_delete)
{
	struct tn_version v;
	struct tn_store_version sv;
	char canon[TN_VERSION_STR_MAX];
	char *id;
	int rc;

	if ((rc = tn_api_name_version(req, &v, &sv, err)))
		return rc;
	id = xasprintf("%s@%s", req->params[0], tn_version_format(&v, canon, sizeof canon));
	tn_response_audit(resp, "distribution", id);
	free(id);
	if ((rc = tn_store_distribution_delete(req->srv->store, req->params[0], &sv, err)))
		return rc;
	resp->status = 204;
	return 0;
}
