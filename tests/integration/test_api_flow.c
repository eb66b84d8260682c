/* test_api_flow.c - the paths a user follows through the management API of
 * a real tender-server (DESIGN §3): bundles, distributions (JSON and
 * archive, all or nothing), clusters, tokens and their expiry, enrollment
 * tokens, the audit log and its live stream, /healthz and /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bundles.h"
#include "digest.h"
#include "fsutil.h"
#include "harness.h"
#include "xalloc.h"
#include "zipwriter.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	struct th_server srv;
};

static int group_setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	th_server_start(&fx->srv, NULL);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	th_server_destroy(&fx->srv);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ helpers */

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

static void post_zip(struct th_server *s, const char *path, const char *token, struct buf z,
		     struct th_response *r)
{
	struct th_request req = {.method = "POST",
				 .token = token,
				 .content_type = "application/zip",
				 .body = z.p,
				 .len = z.len};

	th_http(s, path, &req, r);
}

/* Uploads z (not freed) and expects `status`. */
static void upload(struct th_server *s, struct buf z, long status)
{
	struct th_response r;

	post_zip(s, "/api/v1/bundles", s->admin_token, z, &r);
	expect_status(&r, status, "POST /api/v1/bundles");
	th_response_free(&r);
}

static const char *str(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	if (!v)
		fail_msg("no string \"%s\" in %s", key, json_dumps(obj, JSON_COMPACT));
	return v;
}

static size_t blob_count(struct th_server *s)
{
	char *dir = xasprintf("%s/var/blobs/sha256", s->data_dir);
	size_t n = th_count_files(dir);

	free(dir);
	return n;
}

static size_t entry_count;

static int count_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)type;
	if (ftw->level > 0)
		entry_count++;
	return 0;
}

/* Nothing is being uploaded now: the staging areas must be empty. */
static void expect_no_temp_files(struct th_server *s)
{
	const char *const dirs[] = {"var/blobs/tmp", "var/tmp"};

	for (size_t i = 0; i < 2; i++) {
		char *dir = xasprintf("%s/%s", s->data_dir, dirs[i]);

		entry_count = 0;
		if (nftw(dir, count_entry, 16, FTW_PHYS) != 0)
			fail_msg("cannot walk %s", dir);
		if (entry_count)
			fail_msg("%s holds %zu entries after the request", dirs[i], entry_count);
		free(dir);
	}
}

/* The items of a list (a new reference). */
static json_t *list(struct th_server *s, const char *path)
{
	struct th_response r;
	json_t *items;

	get(s, path, s->admin_token, &r);
	expect_status(&r, 200, path);
	items = json_incref(json_object_get(r.json, "items"));
	if (!json_is_array(items) || !json_object_get(r.json, "next"))
		fail_msg("GET %s: not a list {items, next}: %s", path, r.body);
	th_response_free(&r);
	return items;
}

static bool list_has(json_t *items, const char *key, const char *value)
{
	size_t i;
	json_t *it;

	json_array_foreach(items, i, it) if (json_is_string(json_object_get(it, key)) &&
					     strcmp(json_string_value(json_object_get(it, key)),
						    value) == 0) return true;
	return false;
}

static bool is_rfc3339_utc(const char *s)
{
	struct tm tm;
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	return end && *end == '\0';
}

/* ------------------------------------------------------------ bundles */

static void test_bundle_upload_again_and_conflict(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct buf z = th_simple_bundle("org.web", "1.0", NULL, "first");
	struct buf other = th_simple_bundle("org.web", "1.0", NULL, "second");
	char sha[TN_SHA256_HEX_LEN + 1];
	size_t blobs = blob_count(s);
	struct th_response r;

	tn_sha256_hex(z.p, z.len, sha);
	post_zip(s, "/api/v1/bundles", s->admin_token, z, &r);
	expect_status(&r, 201, "first upload");
	assert_int_equal(json_object_size(r.json), 4);
	assert_string_equal(str(r.json, "name"), "org.web");
	assert_string_equal(str(r.json, "version"), "1.0.0"); /* canonical form */
	assert_string_equal(str(r.json, "sha256"), sha);
	assert_int_equal(json_integer_value(json_object_get(r.json, "size")), z.len);
	assert_int_equal(blob_count(s), blobs + 1);
	th_response_free(&r);

	/* the same bytes again: nothing new, the same answer */
	post_zip(s, "/api/v1/bundles", s->admin_token, z, &r);
	expect_status(&r, 200, "same bytes again");
	assert_string_equal(str(r.json, "sha256"), sha);
	assert_int_equal(blob_count(s), blobs + 1);
	th_response_free(&r);

	/* other bytes under the same name@version: a version never changes */
	post_zip(s, "/api/v1/bundles", s->admin_token, other, &r);
	expect_status(&r, 409, "other bytes, same version");
	assert_string_equal(th_error_code(&r), "exists");
	assert_non_null(strstr(th_error_message(&r), "org.web@1.0.0"));
	assert_non_null(strstr(th_error_message(&r), sha));
	assert_int_equal(blob_count(s), blobs + 1); /* the refused bytes are not kept */
	expect_no_temp_files(s);
	th_response_free(&r);
	free(z.p);
	free(other.p);
}

static void test_bundle_get_and_archive_in_any_version_form(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	static const char manifest[] =
	    "{\"name\": \"org.get\", \"version\": \"2.1\", \"config\": {\"greeting\": "
	    "{\"type\": \"string\", \"default\": \"hello\", \"description\": \"shown\"}}}";
	const struct zentry files[] = {
	    {.name = "bin/", .attr = 040755u << 16},
	    {.name = "bin/run", .data = "#!/bin/sh\n", .len = 10, .attr = 0100755u << 16}};
	struct buf z = th_bundle_zip(manifest, files, 2);
	static const char *const forms[] = {"2.1", "2.1.0", "02.1.0"};
	char sha[TN_SHA256_HEX_LEN + 1];
	struct th_response r;

	tn_sha256_hex(z.p, z.len, sha);
	upload(s, z, 201);
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char *path = xasprintf("/api/v1/bundles/org.get/%s", forms[i]);
		char *apath = xasprintf("%s/archive", path);
		char type[128], disp[256];
		json_t *m;

		get(s, path, s->admin_token, &r);
		expect_status(&r, 200, path);
		assert_string_equal(str(r.json, "version"), "2.1.0");
		assert_string_equal(str(r.json, "sha256"), sha);
		assert_int_equal(json_integer_value(json_object_get(r.json, "size")), z.len);
		assert_true(is_rfc3339_utc(str(r.json, "created")));
		m = json_object_get(r.json, "manifest");
		assert_string_equal(str(m, "name"), "org.get");
		assert_string_equal(
		    str(json_object_get(json_object_get(m, "config"), "greeting"), "default"),
		    "hello");
		th_response_free(&r);

		get(s, apath, s->admin_token, &r);
		expect_status(&r, 200, apath);
		assert_int_equal(r.len, z.len);
		assert_memory_equal(r.body, z.p, z.len);
		assert_non_null(th_header(&r, "Content-Type", type, sizeof type));
		assert_string_equal(type, "application/zip");
		assert_non_null(th_header(&r, "Content-Disposition", disp, sizeof disp));
		assert_non_null(strstr(disp, "org.get-2.1.0.zip"));
		th_response_free(&r);
		free(path);
		free(apath);
	}
	get(s, "/api/v1/bundles/org.get/2.2", s->admin_token, &r);
	expect_status(&r, 404, "a version that is not there");
	assert_string_equal(th_error_code(&r), "not_found");
	assert_non_null(strstr(th_error_message(&r), "org.get@2.2.0"));
	th_response_free(&r);
	free(z.p);
}

static void test_bundle_list_filter_and_pages(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	const char *const versions[] = {"1.0", "1.10", "1.2"};
	json_t *all, *seen = json_array();
	char *after = NULL;
	int pages = 0;

	for (size_t i = 0; i < 3; i++) {
		struct buf z = th_simple_bundle("org.paged", versions[i], NULL, NULL);

		upload(s, z, 201);
		free(z.p);
	}
	all = list(s, "/api/v1/bundles?name=org.paged");
	assert_int_equal(json_array_size(all), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(str(json_array_get(all, i), "name"), "org.paged");
	/* versions sort as versions: 1.2 before 1.10 */
	assert_string_equal(str(json_array_get(all, 0), "version"), "1.0.0");
	assert_string_equal(str(json_array_get(all, 1), "version"), "1.2.0");
	assert_string_equal(str(json_array_get(all, 2), "version"), "1.10.0");

	/* one by one, following next, until it is null (bounded) */
	for (;;) {
		char *path =
		    after ? xasprintf("/api/v1/bundles?name=org.paged&limit=1&after=%s", after)
			  : xstrdup("/api/v1/bundles?name=org.paged&limit=1");
		struct th_response r;
		json_t *items, *next;

		get(s, path, s->admin_token, &r);
		expect_status(&r, 200, path);
		items = json_object_get(r.json, "items");
		next = json_object_get(r.json, "next");
		assert_int_equal(json_array_size(items), 1);
		json_array_append(seen, json_array_get(items, 0));
		free(after);
		after = json_is_string(next) ? xstrdup(json_string_value(next)) : NULL;
		assert_true(json_is_string(next) || json_is_null(next));
		th_response_free(&r);
		free(path);
		if (!after || ++pages > 3)
			break;
	}
	assert_null(after);
	assert_true(json_equal(seen, all));
	json_decref(seen);
	json_decref(all);
}

/* ------------------------------------------------------------ distributions */

/* org.db 1.0 and org.app 1.0 (requires org.db [1.0,2.0), has a config
 * model), uploaded; returns nothing, the names are fixed. */
static void upload_app_and_db(struct th_server *s, const char *app, const char *db)
{
	char *manifest = xasprintf(
	    "{\"name\": \"%s\", \"version\": \"1.0\", \"requires\": {\"%s\": \"[1.0,2.0)\"}, "
	    "\"config\": {\"greeting\": {\"type\": \"string\", \"default\": \"hello\"}}}",
	    app, db);
	struct buf a = th_bundle_zip(manifest, NULL, 0);
	struct buf d = th_simple_bundle(db, "1.0", NULL, NULL);

	upload(s, d, 201);
	upload(s, a, 201);
	free(manifest);
	free(a.p);
	free(d.p);
}

static void test_distribution_from_json(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	static const char body[] = "{\"name\": \"educa\", \"version\": \"1.0\", \"bundles\": ["
				   "{\"name\": \"org.educa.web\", \"version\": \"1.0.0\"}, "
				   "{\"name\": \"org.educa.db\", \"version\": \"1\"}], "
				   "\"config\": {\"org.educa.web\": {\"greeting\": \"hi\"}}}";
	struct th_response r, g;
	json_t *b;
	size_t i;

	upload_app_and_db(s, "org.educa.web", "org.educa.db");
	th_json(s, "POST", "/api/v1/distributions", s->admin_token, body, &r);
	expect_status(&r, 201, "POST distribution");
	assert_string_equal(str(r.json, "name"), "educa");
	assert_string_equal(str(r.json, "version"), "1.0.0");
	assert_string_equal(
	    str(json_object_get(json_object_get(r.json, "config"), "org.educa.web"), "greeting"),
	    "hi");
	assert_int_equal(json_array_size(json_object_get(r.json, "bundles")), 2);
	/* resolved: each bundle with its exact version, digest and size */
	json_array_foreach(json_object_get(r.json, "bundles"), i, b)
	{
		char *path = xasprintf("/api/v1/bundles/%s/%s", str(b, "name"), str(b, "version"));

		assert_string_equal(str(b, "version"), "1.0.0");
		get(s, path, s->admin_token, &g);
		expect_status(&g, 200, path);
		assert_string_equal(str(b, "sha256"), str(g.json, "sha256"));
		assert_true(
		    json_equal(json_object_get(b, "size"), json_object_get(g.json, "size")));
		th_response_free(&g);
		free(path);
	}
	/* the same again is not an error, and not a second row */
	th_json(s, "POST", "/api/v1/distributions", s->admin_token, body, &g);
	expect_status(&g, 200, "the same distribution again");
	assert_true(
	    json_equal(json_object_get(g.json, "bundles"), json_object_get(r.json, "bundles")));
	th_response_free(&g);
	get(s, "/api/v1/distributions/educa/1", s->admin_token, &g);
	expect_status(&g, 200, "GET distribution in another form");
	assert_true(
	    json_equal(json_object_get(g.json, "bundles"), json_object_get(r.json, "bundles")));
	th_response_free(&g);
	{
		json_t *items = list(s, "/api/v1/distributions?name=educa");

		assert_int_equal(json_array_size(items), 1);
		json_decref(items);
	}
	th_response_free(&r);
}

static void test_distribution_archive_creates_bundles_and_distribution(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct buf api = th_simple_bundle("org.shop.api", "2.0", NULL, NULL);
	struct buf worker =
	    th_simple_bundle("org.shop.worker", "2.0", "{\"org.shop.api\": \"[2.0,3.0)\"}", NULL);
	const struct th_member m[] = {{"api.zip", api}, {"worker.zip", worker}};
	struct buf z = th_distribution_zip("{\"name\": \"shop\", \"version\": \"2.0\"}", m, 2);
	size_t blobs = blob_count(s);
	struct th_response r, g;
	json_t *b;
	size_t i;

	post_zip(s, "/api/v1/distributions", s->admin_token, z, &r);
	expect_status(&r, 201, "POST distribution archive");
	assert_string_equal(str(r.json, "name"), "shop");
	assert_string_equal(str(r.json, "version"), "2.0.0");
	assert_int_equal(json_array_size(json_object_get(r.json, "bundles")), 2);
	json_array_foreach(json_object_get(r.json, "bundles"), i, b)
	{
		const struct buf *inner =
		    strcmp(str(b, "name"), "org.shop.api") == 0 ? &api : &worker;
		char sha[TN_SHA256_HEX_LEN + 1];
		char *path = xasprintf("/api/v1/bundles/%s/2.0/archive", str(b, "name"));

		tn_sha256_hex(inner->p, inner->len, sha);
		assert_string_equal(str(b, "sha256"), sha);
		/* the bundles are on the server now, byte for byte */
		get(s, path, s->admin_token, &g);
		expect_status(&g, 200, path);
		assert_int_equal(g.len, inner->len);
		assert_memory_equal(g.body, inner->p, inner->len);
		th_response_free(&g);
		free(path);
	}
	assert_int_equal(blob_count(s), blobs + 2); /* the bundles, not the archive */
	expect_no_temp_files(s);
	th_response_free(&r);

	/* the same archive again: nothing new */
	post_zip(s, "/api/v1/distributions", s->admin_token, z, &r);
	expect_status(&r, 200, "the same archive again");
	assert_int_equal(blob_count(s), blobs + 2);
	expect_no_temp_files(s);
	th_response_free(&r);
	free(z.p);
	free(api.p);
	free(worker.p);
}

/* A distribution archive that fails leaves nothing: no bundle, no
 * distribution, no blob, no temp file. */
static void expect_archive_refused(struct th_server *s, struct buf z, long status, const char *code,
				   const char *needle1, const char *needle2)
{
	json_t *bundles = list(s, "/api/v1/bundles?limit=1000");
	json_t *dists = list(s, "/api/v1/distributions?limit=1000");
	json_t *after;
	size_t blobs = blob_count(s);
	struct th_response r;

	post_zip(s, "/api/v1/distributions", s->admin_token, z, &r);
	if (r.status != status || strcmp(th_error_code(&r), code) != 0 ||
	    !strstr(th_error_message(&r), needle1) || !strstr(th_error_message(&r), needle2))
		fail_msg("want %ld %s naming \"%s\" and \"%s\", got %ld %s", status, code, needle1,
			 needle2, r.status, r.body);
	th_response_free(&r);
	after = list(s, "/api/v1/bundles?limit=1000");
	if (!json_equal(after, bundles))
		fail_msg("bundles changed: %s", json_dumps(after, JSON_COMPACT));
	json_decref(after);
	after = list(s, "/api/v1/distributions?limit=1000");
	if (!json_equal(after, dists))
		fail_msg("distributions changed: %s", json_dumps(after, JSON_COMPACT));
	json_decref(after);
	assert_int_equal(blob_count(s), blobs);
	expect_no_temp_files(s);
	json_decref(bundles);
	json_decref(dists);
}

static void test_distribution_archive_is_all_or_nothing(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct buf good = th_simple_bundle("org.aon.good", "1.0", NULL, NULL);
	const struct zentry slip[] = {{.name = "../../evil", .data = "x", .len = 1}};
	struct buf bad =
	    th_bundle_zip("{\"name\": \"org.aon.bad\", \"version\": \"1.0\"}", slip, 1);
	struct buf needs =
	    th_simple_bundle("org.aon.needs", "1.0", "{\"org.aon.good\": \"[5.0,6.0)\"}", NULL);
	struct buf z;

	/* one hostile bundle among good ones */
	{
		const struct th_member m[] = {{"good.zip", good}, {"bad.zip", bad}};

		z = th_distribution_zip("{\"name\": \"aon\", \"version\": \"1.0\"}", m, 2);
		expect_archive_refused(s, z, 400, "archive_traversal", "bundles/bad.zip",
				       "\"../../evil\"");
		free(z.p);
	}
	/* every bundle fine, but the set does not resolve */
	{
		const struct th_member m[] = {{"good.zip", good}, {"needs.zip", needs}};

		z = th_distribution_zip("{\"name\": \"aon\", \"version\": \"1.0\"}", m, 2);
		expect_archive_refused(s, z, 422, "unresolved", "org.aon.needs@1.0.0",
				       "org.aon.good@1.0.0");
		free(z.p);
	}
	/* a bundle that is on the server already with other bytes */
	{
		struct buf changed = th_simple_bundle("org.web", "1.0", NULL, "changed");
		const struct th_member m[] = {{"good.zip", good}, {"web.zip", changed}};

		z = th_distribution_zip("{\"name\": \"aon\", \"version\": \"1.0\"}", m, 2);
		expect_archive_refused(s, z, 409, "exists", "org.web@1.0.0", "other content");
		free(z.p);
		free(changed.p);
	}
	/* every bundle fine and resolved, refused only when it is recorded
	 * (the distribution exists with other bundles): the blobs already
	 * committed for the new bundles must go again */
	{
		const struct th_member m[] = {{"good.zip", good}};

		z = th_distribution_zip("{\"name\": \"educa\", \"version\": \"1.0\"}", m, 1);
		expect_archive_refused(s, z, 409, "exists", "educa@1.0.0", "");
		free(z.p);
	}
	free(good.p);
	free(bad.p);
	free(needs.p);
}

static void test_delete_refused_while_used_then_allowed(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	size_t blobs;
	struct th_response r;

	upload_app_and_db(s, "org.del.app", "org.del.db");
	th_json(s, "POST", "/api/v1/distributions", s->admin_token,
		"{\"name\": \"del\", \"version\": \"1.0\", \"bundles\": ["
		"{\"name\": \"org.del.app\", \"version\": \"1.0\"}, "
		"{\"name\": \"org.del.db\", \"version\": \"1.0\"}]}",
		&r);
	expect_status(&r, 201, "distribution del");
	th_response_free(&r);
	th_json(s, "POST", "/api/v1/clusters", s->admin_token,
		"{\"name\": \"del-cluster\", \"distribution\": \"del@1.0\"}", &r);
	expect_status(&r, 201, "cluster del-cluster");
	th_response_free(&r);
	blobs = blob_count(s);

	th_json(s, "DELETE", "/api/v1/bundles/org.del.db/1.0", s->admin_token, NULL, &r);
	expect_status(&r, 409, "delete a bundle a distribution uses");
	assert_string_equal(th_error_code(&r), "conflict");
	assert_non_null(strstr(th_error_message(&r), "org.del.db@1.0.0"));
	assert_non_null(strstr(th_error_message(&r), "distribution del@1.0.0"));
	th_response_free(&r);
	th_json(s, "DELETE", "/api/v1/distributions/del/1.0", s->admin_token, NULL, &r);
	expect_status(&r, 409, "delete a distribution a cluster runs");
	assert_non_null(strstr(th_error_message(&r), "del@1.0.0"));
	assert_non_null(strstr(th_error_message(&r), "del-cluster"));
	th_response_free(&r);

	/* in order, each goes */
	th_json(s, "DELETE", "/api/v1/clusters/del-cluster", s->admin_token, NULL, &r);
	expect_status(&r, 204, "delete the cluster");
	th_response_free(&r);
	th_json(s, "DELETE", "/api/v1/distributions/del/1.0.0", s->admin_token, NULL, &r);
	expect_status(&r, 204, "delete the distribution");
	th_response_free(&r);
	th_json(s, "DELETE", "/api/v1/bundles/org.del.db/1", s->admin_token, NULL, &r);
	expect_status(&r, 204, "delete the bundle");
	th_response_free(&r);
	get(s, "/api/v1/bundles/org.del.db/1.0", s->admin_token, &r);
	expect_status(&r, 404, "the deleted bundle");
	th_response_free(&r);
	get(s, "/api/v1/distributions/del/1.0", s->admin_token, &r);
	expect_status(&r, 404, "the deleted distribution");
	th_response_free(&r);
	/* its blob went with it */
	assert_int_equal(blob_count(s), blobs - 1);
}

/* ------------------------------------------------------------ clusters */

static void test_cluster_lifecycle(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct th_response r;
	json_t *targets, *items;

	upload_app_and_db(s, "org.cl.web", "org.cl.db");
	th_json(s, "POST", "/api/v1/distributions", s->admin_token,
		"{\"name\": \"cl\", \"version\": \"1.0\", \"bundles\": ["
		"{\"name\": \"org.cl.web\", \"version\": \"1.0\"}, "
		"{\"name\": \"org.cl.db\", \"version\": \"1.0\"}]}",
		&r);
	expect_status(&r, 201, "distribution cl");
	th_response_free(&r);
	th_json(s, "POST", "/api/v1/clusters", s->admin_token,
		"{\"name\": \"web\", \"description\": \"front\", \"distribution\": \"cl@1\", "
		"\"config\": {\"org.cl.web\": {\"greeting\": \"hey\"}}}",
		&r);
	expect_status(&r, 201, "POST cluster");
	assert_string_equal(str(r.json, "name"), "web");
	assert_string_equal(str(json_object_get(r.json, "revision"), "distribution"), "cl@1.0.0");
	assert_string_equal(
	    str(json_object_get(json_object_get(json_object_get(r.json, "revision"), "config"),
				"org.cl.web"),
		"greeting"),
	    "hey");
	assert_string_equal(str(json_object_get(r.json, "lb"), "driver"), "none");
	th_response_free(&r);

	get(s, "/api/v1/clusters/web", s->admin_token, &r);
	expect_status(&r, 200, "GET cluster");
	assert_string_equal(str(r.json, "description"), "front");
	targets = json_object_get(r.json, "targets");
	assert_int_equal(json_integer_value(json_object_get(targets, "total")), 0);
	assert_true(json_is_object(json_object_get(targets, "by_state")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(targets, "by_state"), "running")),
	    0);
	assert_true(json_is_object(json_object_get(targets, "by_release")));
	th_response_free(&r);

	th_json(s, "POST", "/api/v1/clusters", s->admin_token, "{\"name\": \"web\"}", &r);
	expect_status(&r, 409, "a second cluster web");
	assert_non_null(strstr(th_error_message(&r), "web"));
	th_response_free(&r);

	items = list(s, "/api/v1/clusters");
	assert_true(list_has(items, "name", "web"));
	json_decref(items);

	th_json(s, "PATCH", "/api/v1/clusters/web", s->admin_token,
		"{\"lb\": {\"driver\": \"haproxy\", \"admin\": \"127.0.0.1:9999\", "
		"\"backend\": \"educa\"}, \"description\": \"front end\"}",
		&r);
	expect_status(&r, 200, "PATCH lb");
	assert_string_equal(str(json_object_get(r.json, "lb"), "driver"), "haproxy");
	assert_string_equal(str(json_object_get(r.json, "lb"), "backend"), "educa");
	assert_string_equal(str(r.json, "description"), "front end");
	/* the revision does not move by a patch */
	assert_string_equal(str(json_object_get(r.json, "revision"), "distribution"), "cl@1.0.0");
	th_response_free(&r);
	get(s, "/api/v1/clusters/web", s->admin_token, &r);
	assert_string_equal(str(json_object_get(r.json, "lb"), "admin"), "127.0.0.1:9999");
	th_response_free(&r);

	th_json(s, "DELETE", "/api/v1/clusters/web", s->admin_token, NULL, &r);
	expect_status(&r, 204, "DELETE cluster");
	th_response_free(&r);
	get(s, "/api/v1/clusters/web", s->admin_token, &r);
	expect_status(&r, 404, "the deleted cluster");
	th_response_free(&r);
	items = list(s, "/api/v1/clusters");
	assert_false(list_has(items, "name", "web"));
	json_decref(items);
}

/* ------------------------------------------------------------ tokens */

static long status_with(struct th_server *s, const char *method, const char *path,
			const char *token, const char *body)
{
	struct th_response r;
	long status;

	th_json(s, method, path, token, body, &r);
	status = r.status;
	th_response_free(&r);
	return status;
}

static void test_token_roles_list_and_revoke(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct th_response r;
	char *secret;
	json_t *items, *it;
	size_t i;
	bool found = false;

	th_json(s, "POST", "/api/v1/tokens", s->admin_token,
		"{\"name\": \"dev-ann\", \"role\": \"developer\"}", &r);
	expect_status(&r, 201, "POST token");
	secret = xstrdup(str(r.json, "token"));
	assert_string_equal(str(r.json, "role"), "developer");
	assert_true(strlen(secret) >= 22 + 3); /* "tn_" + at least 128 bits */
	th_response_free(&r);

	/* the role: reads and uploads yes, clusters and tokens no */
	assert_int_equal(status_with(s, "GET", "/api/v1/bundles", secret, NULL), 200);
	{
		struct buf z = th_simple_bundle("org.ann", "1.0", NULL, NULL);

		post_zip(s, "/api/v1/bundles", secret, z, &r);
		expect_status(&r, 201, "a developer uploads");
		th_response_free(&r);
		free(z.p);
	}
	th_json(s, "POST", "/api/v1/clusters", secret, "{\"name\": \"ann\"}", &r);
	expect_status(&r, 403, "a developer creates a cluster");
	assert_non_null(strstr(th_error_message(&r), "needs operator"));
	th_response_free(&r);
	assert_int_equal(status_with(s, "GET", "/api/v1/tokens", secret, NULL), 403);

	/* the list never shows a secret */
	th_json(s, "GET", "/api/v1/tokens", s->admin_token, NULL, &r);
	expect_status(&r, 200, "GET tokens");
	assert_null(strstr(r.body, secret));
	assert_null(strstr(r.body, s->admin_token));
	json_array_foreach(json_object_get(r.json, "items"), i, it)
	{
		assert_null(json_object_get(it, "token"));
		assert_null(json_object_get(it, "hash"));
		if (strcmp(str(it, "name"), "dev-ann") == 0) {
			found = true;
			assert_string_equal(str(it, "role"), "developer");
			assert_true(json_is_null(json_object_get(it, "revoked_at")));
		}
	}
	assert_true(found);
	th_response_free(&r);

	th_json(s, "DELETE", "/api/v1/tokens/dev-ann", s->admin_token, NULL, &r);
	expect_status(&r, 204, "revoke");
	th_response_free(&r);
	th_json(s, "GET", "/api/v1/bundles", secret, NULL, &r);
	expect_status(&r, 401, "a revoked token");
	assert_string_equal(th_error_code(&r), "unauthorized");
	th_response_free(&r);
	items = list(s, "/api/v1/tokens");
	json_array_foreach(items, i, it) if (strcmp(str(it, "name"), "dev-ann") == 0)
	    assert_true(is_rfc3339_utc(json_string_value(json_object_get(it, "revoked_at"))));
	json_decref(items);
	free(secret);
}

static void test_token_with_ttl_expires(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct th_response r;
	struct tm tm = {0};
	time_t expires;
	double deadline = th_now_s() + 10;
	char *secret;

	th_json(s, "POST", "/api/v1/tokens", s->admin_token,
		"{\"name\": \"short\", \"role\": \"viewer\", \"ttl_s\": 2}", &r);
	expect_status(&r, 201, "POST token with ttl_s");
	secret = xstrdup(str(r.json, "token"));
	assert_true(is_rfc3339_utc(str(r.json, "expires")));
	strptime(str(r.json, "expires"), "%Y-%m-%dT%H:%M:%SZ", &tm);
	expires = timegm(&tm);
	assert_true(expires > time(NULL) - 1 && expires <= time(NULL) + 3);
	th_response_free(&r);

	/* good now... */
	assert_int_equal(status_with(s, "GET", "/api/v1/bundles", secret, NULL), 200);
	/* ...refused once it has expired: poll, bounded */
	for (;;) {
		th_json(s, "GET", "/api/v1/bundles", secret, NULL, &r);
		if (r.status == 401)
			break;
		expect_status(&r, 200, "a token before its expiry");
		th_response_free(&r);
		if (th_now_s() > deadline)
			fail_msg("the token still works 10 s after it was made with ttl_s 2");
		{
			struct timespec ts = {0, 50 * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	assert_true(time(NULL) >= expires); /* not refused early */
	assert_non_null(strstr(th_error_message(&r), "expired"));
	th_response_free(&r);
	free(secret);
}

static void test_enrollment_tokens(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct th_response r;

	th_json(s, "POST", "/api/v1/clusters", s->admin_token, "{\"name\": \"enroll\"}", &r);
	expect_status(&r, 201, "POST cluster");
	th_response_free(&r);
	th_json(s, "POST", "/api/v1/enrollment-tokens", s->admin_token,
		"{\"cluster\": \"enroll\", \"uses\": 3, \"ttl_s\": 3600}", &r);
	expect_status(&r, 201, "enrollment token for a cluster");
	assert_string_equal(str(r.json, "cluster"), "enroll");
	assert_int_equal(json_integer_value(json_object_get(r.json, "uses")), 3);
	assert_true(is_rfc3339_utc(str(r.json, "expires")));
	assert_true(strlen(str(r.json, "token")) >= 22);
	th_response_free(&r);

	th_json(s, "POST", "/api/v1/enrollment-tokens", s->admin_token,
		"{\"cluster\": \"no-such-cluster\", \"uses\": 1, \"ttl_s\": 3600}", &r);
	expect_status(&r, 404, "enrollment token for no cluster");
	assert_string_equal(th_error_code(&r), "not_found");
	assert_non_null(strstr(th_error_message(&r), "no-such-cluster"));
	th_response_free(&r);
}

/* ------------------------------------------------------------ audit log */

static void test_audit_log_records_who_did_what(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	char *dev = th_make_token(s, "dev-bob", "developer");
	long long before = th_last_event_id(s);
	struct buf z = th_simple_bundle("org.bob", "3.0", NULL, "a");
	struct buf other = th_simple_bundle("org.bob", "3.0", NULL, "b");
	struct th_response r;
	json_t *events, *e;
	long long prev = before;
	size_t i;

	post_zip(s, "/api/v1/bundles", dev, z, &r);
	expect_status(&r, 201, "upload");
	th_response_free(&r);
	post_zip(s, "/api/v1/bundles", dev, other, &r);
	expect_status(&r, 409, "other bytes");
	th_response_free(&r);
	get(s, "/api/v1/bundles/org.bob/3.0", dev, &r); /* reads are not audited */
	th_response_free(&r);

	events = th_events_after(s, before);
	assert_int_equal(json_array_size(events), 2);
	json_array_foreach(events, i, e)
	{
		long long id = (long long)json_integer_value(json_object_get(e, "id"));

		assert_true(id > prev); /* increasing integers */
		prev = id;
		assert_string_equal(str(e, "actor"), "dev-bob");
		assert_string_equal(str(e, "action"), "bundle.upload");
		assert_string_equal(str(e, "object_type"), "bundle");
		assert_string_equal(str(e, "object_id"), "org.bob@3.0.0");
		assert_true(is_rfc3339_utc(str(e, "at")));
	}
	assert_string_equal(str(json_array_get(events, 0), "outcome"), "ok");
	e = json_array_get(events, 1);
	assert_string_equal(str(e, "outcome"), "exists");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(e, "detail"), "status")), 409);
	json_decref(events);

	/* ?after=&limit= pages through the log, oldest first */
	{
		char *path = xasprintf("/api/v1/events?after=%lld&limit=1", before);

		get(s, path, s->admin_token, &r);
		expect_status(&r, 200, path);
		assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
		assert_string_equal(
		    str(json_array_get(json_object_get(r.json, "items"), 0), "outcome"), "ok");
		assert_true(json_is_string(json_object_get(r.json, "next")));
		th_response_free(&r);
		free(path);
	}
	free(z.p);
	free(other.p);
	free(dev);
}

/* ------------------------------------------------------------ event stream */

struct sse {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers;
	char *buf;
	size_t len;
	char *url;
};

static size_t sse_write(char *data, size_t size, size_t n, void *ctx)
{
	struct sse *c = ctx;

	c->buf = xrealloc(c->buf, c->len + size * n + 1);
	memcpy(c->buf + c->len, data, size * n);
	c->len += size * n;
	c->buf[c->len] = '\0';
	return size * n;
}

static void sse_open(struct th_server *s, struct sse *c, const char *last_event_id)
{
	char *auth = xasprintf("Authorization: Bearer %s", s->admin_token);

	memset(c, 0, sizeof *c);
	c->buf = xstrdup("");
	c->url = xasprintf("%s/api/v1/events/stream", s->url);
	c->headers = curl_slist_append(NULL, auth);
	if (last_event_id) {
		char *h = xasprintf("Last-Event-ID: %s", last_event_id);

		c->headers = curl_slist_append(c->headers, h);
		free(h);
	}
	free(auth);
	c->easy = curl_easy_init();
	curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	c->multi = curl_multi_init();
	curl_multi_add_handle(c->multi, c->easy);
}

/* Reads the stream until it holds needle, for at most deadline_s. */
static bool sse_wait_for(struct sse *c, const char *needle, double deadline_s)
{
	double deadline = th_now_s() + deadline_s;
	int running = 1;

	while (!strstr(c->buf, needle)) {
		if (!running || th_now_s() > deadline)
			return false;
		curl_multi_perform(c->multi, &running);
		if (!strstr(c->buf, needle))
			curl_multi_poll(c->multi, NULL, 0, 100, NULL);
	}
	return true;
}

static void sse_close(struct sse *c)
{
	long status = 0;

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(c->multi, c->easy);
	curl_easy_cleanup(c->easy);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	free(c->buf);
	free(c->url);
}

/* The first event in the stream text `from`: its
 * id, type and data, parsed from `id:`, `event:` and `data:` lines. */
struct sse_event {
	long long id;
	char type[64];
	json_t *data;
};

static bool sse_first_event(const char *from, struct sse_event *ev)
{
	const char *p = strstr(from, "id: ");
	const char *end = p ? strstr(p, "\n\n") : NULL;

	memset(ev, 0, sizeof *ev);
	if (!p || !end)
		return false;
	for (const char *line = p; line < end;) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, "id: ", 4) == 0)
			ev->id = strtoll(line + 4, NULL, 10);
		else if (strncmp(line, "event: ", 7) == 0)
			snprintf(ev->type, sizeof ev->type, "%.*s", (int)(nl - line - 7), line + 7);
		else if (strncmp(line, "data: ", 6) == 0)
			ev->data = json_loadb(line + 6, (size_t)(nl - line - 6), 0, NULL);
		line = nl + 1;
	}
	return ev->id > 0 && ev->type[0] && ev->data;
}

static void test_event_stream_live_and_resumed(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	struct sse c;
	struct sse_event ev;
	struct th_response r;
	json_t *events;
	long long before;
	char *from;

	/* live: an event written after the reader connected reaches it */
	sse_open(s, &c, NULL);
	if (!sse_wait_for(&c, ": tender events\n\n", 10))
		fail_msg("the stream did not open: %s", c.buf);
	before = th_last_event_id(s);
	th_json(s, "POST", "/api/v1/clusters", s->admin_token, "{\"name\": \"streamed\"}", &r);
	expect_status(&r, 201, "POST cluster");
	th_response_free(&r);
	if (!sse_wait_for(&c, "\"object_id\":\"streamed\"", 10))
		fail_msg("the event did not arrive on the stream within 10 s: %s", c.buf);
	assert_true(sse_first_event(c.buf, &ev));
	events = th_events_after(s, before);
	assert_int_equal(json_array_size(events), 1);
	/* the stream starts at its connection: nothing older, then this one */
	assert_int_equal(ev.id,
			 json_integer_value(json_object_get(json_array_get(events, 0), "id")));
	assert_string_equal(ev.type, "cluster.create");
	assert_true(json_equal(ev.data, json_array_get(events, 0)));
	json_decref(ev.data);
	json_decref(events);
	sse_close(&c);

	/* resumed: Last-Event-ID N starts right after N */
	th_json(s, "PATCH", "/api/v1/clusters/streamed", s->admin_token,
		"{\"description\": \"one\"}", &r);
	expect_status(&r, 200, "PATCH");
	th_response_free(&r);
	th_json(s, "DELETE", "/api/v1/clusters/streamed", s->admin_token, NULL, &r);
	expect_status(&r, 204, "DELETE");
	th_response_free(&r);
	events = th_events_after(s, before);
	assert_int_equal(json_array_size(events), 3); /* create, update, delete */
	from = xasprintf("%lld", (long long)json_integer_value(
				     json_object_get(json_array_get(events, 0), "id")));
	sse_open(s, &c, from);
	if (!sse_wait_for(&c, "event: cluster.delete", 10))
		fail_msg("the resumed stream did not replay: %s", c.buf);
	assert_true(sse_first_event(c.buf, &ev));
	assert_int_equal(ev.id,
			 json_integer_value(json_object_get(json_array_get(events, 1), "id")));
	assert_string_equal(ev.type, "cluster.update");
	assert_true(json_equal(ev.data, json_array_get(events, 1)));
	assert_null(strstr(c.buf, "event: cluster.create")); /* nothing at or before N */
	json_decref(ev.data);
	json_decref(events);
	sse_close(&c);
	free(from);
}

/* ------------------------------------------------------------ system */

/* The value of the metrics line that starts with `series ` (-1: none). */
static long long metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; line && *line;) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtoll(line + n + 1, NULL, 10);
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return -1;
}

static void test_healthz_and_metrics(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->srv;
	static const char series[] =
	    "tender_http_requests_total{route=\"/api/v1/bundles/{}/{}/archive\",status=\"200\"}";
	struct th_response r;
	char type[128];
	long long before;
	json_t *bundles;

	get(s, "/healthz", NULL, &r); /* no token needed */
	expect_status(&r, 200, "/healthz");
	assert_string_equal(str(r.json, "status"), "ok");
	th_response_free(&r);

	get(s, "/metrics", NULL, &r);
	expect_status(&r, 200, "/metrics");
	assert_non_null(th_header(&r, "Content-Type", type, sizeof type));
	assert_non_null(strstr(type, "text/plain"));
	before = metric(r.body, series);
	th_response_free(&r);
	if (before < 0)
		before = 0;

	{
		struct buf z = th_simple_bundle("org.metered", "1.0", NULL, NULL);

		upload(s, z, 201);
		free(z.p);
	}
	for (int i = 0; i < 2; i++) {
		get(s, "/api/v1/bundles/org.metered/1.0/archive", s->admin_token, &r);
		expect_status(&r, 200, "archive download");
		th_response_free(&r);
	}
	bundles = list(s, "/api/v1/bundles?limit=1000");
	get(s, "/metrics", NULL, &r);
	expect_status(&r, 200, "/metrics");
	assert_non_null(strstr(r.body, "# TYPE tender_http_requests_total counter\n"));
	assert_int_equal(metric(r.body, series), before + 2);
	assert_non_null(strstr(r.body, "# TYPE tender_bundles gauge\n"));
	assert_int_equal(metric(r.body, "tender_bundles"), json_array_size(bundles));
	th_response_free(&r);
	json_decref(bundles);
}

/* Sanitizer builds: a server that crashed, leaked or tripped UBSan does not
 * exit 0, and says why in its log. */
static void test_server_exits_cleanly(void **state)
{
	struct fx *fx = *state;

	assert_true(th_server_exited_cleanly(&fx->srv, th_server_stop(&fx->srv)));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_bundle_upload_again_and_conflict),
	    T(test_bundle_get_and_archive_in_any_version_form),
	    T(test_bundle_list_filter_and_pages),
	    T(test_distribution_from_json),
	    T(test_distribution_archive_creates_bundles_and_distribution),
	    T(test_distribution_archive_is_all_or_nothing),
	    T(test_delete_refused_while_used_then_allowed),
	    T(test_cluster_lifecycle),
	    T(test_token_roles_list_and_revoke),
	    T(test_token_with_ttl_expires),
	    T(test_enrollment_tokens),
	    T(test_audit_log_records_who_did_what),
	    T(test_event_stream_live_and_resumed),
	    T(test_healthz_and_metrics),
	    T(test_server_exits_cleanly),
	};
#undef T
	return cmocka_run_group_tests_name("api_flow", tests, group_setup, group_teardown);
}
