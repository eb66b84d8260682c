/* test_api_input.c - bad input against a real tender-server (DESIGN §6):
 * every hostile archive, invalid manifest, unresolvable distribution,
 * malformed or oversized body is refused with the right status and a
 * message naming the problem, and leaves nothing behind: no blob, no temp
 * file, no row, and one audit entry whose outcome is the error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundles.h"
#include "fsutil.h"
#include "harness.h"
#include "xalloc.h"
#include "zipwriter.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	struct th_server srv;	/* default limits */
	struct th_server small; /* --max-upload 64K */
	char *viewer;		/* a viewer's token on srv */
};

#define SMALL_LIMIT 65536

static void upload_ok(struct th_server *s, struct buf z)
{
	struct th_request req = {.method = "POST",
				 .token = s->admin_token,
				 .content_type = "application/zip",
				 .body = z.p,
				 .len = z.len};
	struct th_response r;

	th_http(s, "/api/v1/bundles", &req, &r);
	if (r.status != 201)
		fail_msg("fixture upload: %ld %s", r.status, r.body);
	th_response_free(&r);
	free(z.p);
}

static void json_ok(struct th_server *s, const char *method, const char *path, const char *body,
		    long want)
{
	struct th_response r;

	th_json(s, method, path, s->admin_token, body, &r);
	if (r.status != want)
		fail_msg("fixture %s %s: %ld %s", method, path, r.status, r.body);
	th_response_free(&r);
}

static int group_setup(void **state)
{
	static const char *const small_args[] = {"--max-upload", "64K", NULL};
	struct fx *fx = xcalloc(1, sizeof *fx);

	th_server_start(&fx->srv, NULL);
	th_server_start(&fx->small, small_args);
	fx->viewer = th_make_token(&fx->srv, "viewer1", "viewer");
	/* What the refusals below refer to: a bundle with a config model,
	 * and two bundles whose requirement the pair does not meet. */
	upload_ok(&fx->srv,
		  th_bundle_zip("{\"name\": \"org.cfg\", \"version\": \"1.0\", \"config\": "
				"{\"workers\": {\"type\": \"int\", \"default\": 4}}}",
				NULL, 0));
	upload_ok(&fx->srv, th_simple_bundle("org.lib", "1.0", NULL, NULL));
	upload_ok(&fx->srv,
		  th_simple_bundle("org.app", "1.0", "{\"org.lib\": \"[2.0,3.0)\"}", NULL));
	json_ok(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"edu\"}", 201);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;

	th_server_destroy(&fx->srv);
	th_server_destroy(&fx->small);
	free(fx->viewer);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ what is kept */

/* Every entry (file or directory) under dir, dir itself not counted. */
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

static size_t count_entries(const char *dir)
{
	entry_count = 0;
	if (nftw(dir, count_entry, 16, FTW_PHYS) != 0)
		fail_msg("cannot walk %s", dir);
	return entry_count;
}

static const char *const LISTS[] = {
    "/api/v1/bundles?limit=1000",
    "/api/v1/distributions?limit=1000",
    "/api/v1/clusters?limit=1000",
    "/api/v1/tokens?limit=1000",
};
#define NLISTS (sizeof LISTS / sizeof LISTS[0])

/* What a refused request must not change. */
struct snap {
	size_t blobs;	 /* files under var/blobs/sha256 */
	size_t blob_tmp; /* entries under var/blobs/tmp */
	size_t tmp;	 /* entries under var/tmp */
	json_t *lists[NLISTS];
	long long last_event;
};

static void snap_take(struct th_server *s, struct snap *sn)
{
	char *blobs = xasprintf("%s/var/blobs/sha256", s->data_dir);
	char *blob_tmp = xasprintf("%s/var/blobs/tmp", s->data_dir);
	char *tmp = xasprintf("%s/var/tmp", s->data_dir);

	sn->blobs = th_count_files(blobs);
	sn->blob_tmp = count_entries(blob_tmp);
	sn->tmp = count_entries(tmp);
	for (size_t i = 0; i < NLISTS; i++) {
		struct th_request req = {.token = s->admin_token};
		struct th_response r;

		th_http(s, LISTS[i], &req, &r);
		if (r.status != 200)
			fail_msg("GET %s: %ld %s", LISTS[i], r.status, r.body);
		sn->lists[i] = json_incref(json_object_get(r.json, "items"));
		th_response_free(&r);
	}
	sn->last_event = th_last_event_id(s);
	free(blobs);
	free(blob_tmp);
	free(tmp);
}

static void snap_free(struct snap *sn)
{
	for (size_t i = 0; i < NLISTS; i++)
		json_decref(sn->lists[i]);
}

/* Nothing of the refused request was kept: no blob, no temp file, no row;
 * and the audit log holds exactly one entry for it, by actor, with the
 * error code as outcome and the object it aimed at (object NULL: not
 * checked).  action NULL: a request no route took, which is not audited. */
static void expect_nothing_kept(struct th_server *s, struct snap *before, const char *actor,
				const char *action, const char *outcome, const char *object)
{
	struct snap after;
	json_t *events, *e;

	snap_take(s, &after);
	if (after.blobs != before->blobs)
		fail_msg("blobs: %zu before, %zu after", before->blobs, after.blobs);
	if (after.blob_tmp != 0 || before->blob_tmp != 0)
		fail_msg("var/blobs/tmp holds %zu entries (before: %zu)", after.blob_tmp,
			 before->blob_tmp);
	if (after.tmp != 0 || before->tmp != 0)
		fail_msg("var/tmp holds %zu entries (before: %zu)", after.tmp, before->tmp);
	for (size_t i = 0; i < NLISTS; i++)
		if (!json_equal(before->lists[i], after.lists[i])) {
			char *a = json_dumps(before->lists[i], JSON_COMPACT);
			char *b = json_dumps(after.lists[i], JSON_COMPACT);

			fail_msg("GET %s changed:\nbefore %s\nafter  %s", LISTS[i], a, b);
		}
	events = th_events_after(s, before->last_event);
	if (!action) {
		if (json_array_size(events) != 0)
			fail_msg("an unrouted request was audited: %s",
				 json_dumps(events, JSON_COMPACT));
	} else {
		char *text = json_dumps(events, JSON_COMPACT);

		if (json_array_size(events) != 1)
			fail_msg("want one audit entry, got %s", text);
		e = json_array_get(events, 0);
		assert_string_equal(json_string_value(json_object_get(e, "action")), action);
		assert_string_equal(json_string_value(json_object_get(e, "outcome")), outcome);
		assert_string_equal(json_string_value(json_object_get(e, "actor")), actor);
		if (object && (!json_is_string(json_object_get(e, "object_id")) ||
			       strcmp(json_string_value(json_object_get(e, "object_id")), object)))
			fail_msg("audit entry should name %s: %s", object, text);
		if (!strstr(text, "\"message\""))
			fail_msg("audit entry should keep the error message: %s", text);
		free(text);
	}
	json_decref(events);
	snap_free(&after);
}

/* The response is status + {"error": {code, message}} whose message
 * contains every needle (NULL-terminated). */
static void expect_error(const struct th_response *r, long status, const char *code, ...)
{
	const char *needle;
	va_list ap;

	if (r->status != status || strcmp(th_error_code(r), code) != 0)
		fail_msg("want %ld %s, got %ld %s", status, code, r->status, r->body);
	va_start(ap, code);
	while ((needle = va_arg(ap, const char *)))
		if (!strstr(th_error_message(r), needle)) {
			va_end(ap);
			fail_msg("the message should name \"%s\": %s", needle, th_error_message(r));
		}
	va_end(ap);
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

/* Uploads z as a bundle; it must be refused as said, and leave nothing. */
#define REFUSE_BUNDLE(fx, z, status, code, ...)                                                    \
	do {                                                                                       \
		struct snap before_;                                                               \
		struct th_response r_;                                                             \
                                                                                                   \
		snap_take(&(fx)->srv, &before_);                                                   \
		post_zip(&(fx)->srv, "/api/v1/bundles", (fx)->srv.admin_token, (z), &r_);          \
		expect_error(&r_, (status), (code), __VA_ARGS__, NULL);                            \
		expect_nothing_kept(&(fx)->srv, &before_, "admin", "bundle.upload", (code), NULL); \
		th_response_free(&r_);                                                             \
		snap_free(&before_);                                                               \
	} while (0)

/* Sends a JSON body; refused as said, nothing kept, audited. */
static void refuse_json(struct th_server *s, const char *method, const char *path, const char *body,
			long status, const char *code, const char *action, const char *object,
			const char *needle1, const char *needle2)
{
	struct snap before;
	struct th_response r;

	snap_take(s, &before);
	th_json(s, method, path, s->admin_token, body, &r);
	expect_error(&r, status, code, needle1, needle2, NULL);
	expect_nothing_kept(s, &before, "admin", action, code, object);
	th_response_free(&r);
	snap_free(&before);
}

static const char GOOD_MANIFEST[] = "{\"name\": \"org.evil\", \"version\": \"1.0\"}";

/* ------------------------------------------------------------ hostile zips */

static void test_zip_slip_refused(void **state)
{
	struct fx *fx = *state;
	const struct zentry e[] = {{.name = "../evil", .data = "owned", .len = 5}};
	struct buf z = th_bundle_zip(GOOD_MANIFEST, e, 1);

	REFUSE_BUNDLE(fx, z, 400, "archive_traversal", "\"../evil\"", "escapes");
	free(z.p);
}

static void test_absolute_path_refused(void **state)
{
	struct fx *fx = *state;
	const struct zentry e[] = {{.name = "/etc/evil", .data = "owned", .len = 5}};
	struct buf z = th_bundle_zip(GOOD_MANIFEST, e, 1);

	REFUSE_BUNDLE(fx, z, 400, "archive_absolute_path", "\"/etc/evil\"", "absolute path");
	free(z.p);
}

static void test_symlink_entry_refused(void **state)
{
	struct fx *fx = *state;
	const struct zentry e[] = {{.name = "bin/passwd",
				    .data = "/etc/passwd",
				    .len = 11,
				    .attr = (uint32_t)(0120777u << 16)}};
	struct buf z = th_bundle_zip(GOOD_MANIFEST, e, 1);

	REFUSE_BUNDLE(fx, z, 400, "archive_not_regular", "\"bin/passwd\"", "symbolic link");
	free(z.p);
}

static void test_duplicate_entry_refused(void **state)
{
	struct fx *fx = *state;
	const struct zentry e[] = {{.name = "etc/app.conf", .data = "a=1\n", .len = 4},
				   {.name = "etc/app.conf", .data = "a=2\n", .len = 4}};
	struct buf z = th_bundle_zip(GOOD_MANIFEST, e, 2);

	REFUSE_BUNDLE(fx, z, 400, "archive_duplicate", "\"etc/app.conf\"", "twice");
	free(z.p);
}

#define BOMB_BYTES (16u << 20)

/* A payload that declares 1000 bytes and inflates to 16 MiB: its declared
 * size passes every limit, its real size does not. */
static void test_zip_bomb_in_payload_refused(void **state)
{
	struct fx *fx = *state;
	void *zeros = xcalloc(1, BOMB_BYTES);
	const struct zentry e[] = {{.name = "data/bomb.bin",
				    .data = zeros,
				    .len = BOMB_BYTES,
				    .deflate = true,
				    .lie = true,
				    .declared = 1000}};
	struct buf z = th_bundle_zip(GOOD_MANIFEST, e, 1);

	free(zeros);
	assert_true(z.len < BOMB_BYTES / 100);
	REFUSE_BUNDLE(fx, z, 413, "archive_too_large", "\"data/bomb.bin\"",
		      "inflates past its declared size of 1000 bytes");
	free(z.p);
}

/* The same lie in bundle.json itself. */
static void test_zip_bomb_manifest_refused(void **state)
{
	struct fx *fx = *state;
	char *big = xmalloc(BOMB_BYTES);
	const struct zentry es[] = {{.name = "bundle.json",
				     .data = big,
				     .len = BOMB_BYTES,
				     .deflate = true,
				     .lie = true,
				     .declared = 100}};
	struct buf z;

	memset(big, ' ', BOMB_BYTES);
	memcpy(big, GOOD_MANIFEST, sizeof GOOD_MANIFEST - 1);
	z = build_zip(es, 1, NULL, NULL);
	free(big);
	REFUSE_BUNDLE(fx, z, 413, "archive_too_large", "\"bundle.json\"",
		      "inflates past its declared size of 100 bytes");
	free(z.p);
}

static void test_truncated_zip_refused(void **state)
{
	struct fx *fx = *state;
	struct buf z = th_simple_bundle("org.evil", "1.0", NULL, "cut");

	z.len /= 2;
	REFUSE_BUNDLE(fx, z, 400, "archive_corrupt", "not a valid zip archive");
	free(z.p);
}

/* The directory is whole, but a payload's compressed data is cut short. */
static void test_cut_payload_refused(void **state)
{
	struct fx *fx = *state;
	unsigned char data[8192];
	struct buf z;

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 7919u >> 3);
	{
		const struct zentry e[] = {{.name = "lib/blob.bin",
					    .data = data,
					    .len = sizeof data,
					    .deflate = true,
					    .cut = 100}};

		z = th_bundle_zip(GOOD_MANIFEST, e, 1);
	}
	REFUSE_BUNDLE(fx, z, 400, "archive_corrupt", "\"lib/blob.bin\"", "cut short");
	free(z.p);
}

static void test_not_a_zip_refused(void **state)
{
	struct fx *fx = *state;
	static char text[] = "{\"name\": \"org.evil\", \"version\": \"1.0\"}\n";
	struct buf z = {.p = (unsigned char *)text, .len = sizeof text - 1};

	REFUSE_BUNDLE(fx, z, 400, "archive_corrupt", "not a valid zip archive");
	z.len = 0; /* an empty body */
	REFUSE_BUNDLE(fx, z, 400, "archive_corrupt", "not a valid zip archive");
}

/* ------------------------------------------------------------ manifests */

static void test_missing_bundle_json_refused(void **state)
{
	struct fx *fx = *state;
	const struct zentry e[] = {{.name = "README", .data = "hi", .len = 2}};
	struct buf z = build_zip(e, 1, NULL, NULL);

	REFUSE_BUNDLE(fx, z, 400, "invalid", "bundle.json", "missing");
	free(z.p);
}

static void refuse_manifest(struct fx *fx, const char *manifest, const char *code,
			    const char *needle)
{
	struct buf z = th_bundle_zip(manifest, NULL, 0);

	REFUSE_BUNDLE(fx, z, 400, code, "bundle.json", needle);
	free(z.p);
}

static void test_malformed_bundle_json_refused(void **state)
{
	refuse_manifest(*state, "{\"name\": \"org.evil\", \"version\": ", "malformed_json",
			"malformed JSON at line 1");
}

static void test_bundle_json_wrong_type_refused(void **state)
{
	refuse_manifest(*state, "{\"name\": \"org.evil\", \"version\": 1}", "invalid",
			"version: must be a string");
	refuse_manifest(*state,
			"{\"name\": \"org.evil\", \"version\": \"1.0\", \"run\": {\"command\": "
			"\"bin/x\"}}",
			"invalid", "run.command");
}

static void test_bundle_json_unknown_field_refused(void **state)
{
	refuse_manifest(*state, "{\"name\": \"org.evil\", \"version\": \"1.0\", \"colour\": 3}",
			"invalid", "colour: unknown field");
}

static void test_bundle_json_bad_name_refused(void **state)
{
	refuse_manifest(*state, "{\"name\": \"../etc\", \"version\": \"1.0\"}", "invalid",
			"\"../etc\" is not a valid bundle name");
}

static void test_bundle_json_bad_version_refused(void **state)
{
	refuse_manifest(*state, "{\"name\": \"org.evil\", \"version\": \"1.x\"}", "invalid",
			"\"1.x\" is not a valid version");
}

static void test_bundle_json_bad_range_refused(void **state)
{
	refuse_manifest(*state,
			"{\"name\": \"org.evil\", \"version\": \"1.0\", \"requires\": "
			"{\"org.lib\": \"[1.0,\"}}",
			"invalid", "requires.org.lib: \"[1.0,\" is not a valid version range");
}

static void test_template_unknown_name_refused(void **state)
{
	struct fx *fx = *state;
	static const char conf[] = "port = {{target.port_base}}\ncolour = {{colour}}\n";
	const struct zentry e[] = {
	    {.name = "etc/app.conf.tmpl", .data = conf, .len = sizeof conf - 1}};
	struct buf z = th_bundle_zip("{\"name\": \"org.evil\", \"version\": \"1.0\", "
				     "\"templates\": [\"etc/app.conf.tmpl\"]}",
				     e, 1);

	REFUSE_BUNDLE(fx, z, 400, "invalid", "etc/app.conf.tmpl", "unknown name \"{{colour}}\"");
	free(z.p);
}

/* ------------------------------------------------------------ distributions */

static void test_distribution_unknown_bundle_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.ghost\", \"version\": \"9.9\"}]}",
		    422, "unresolved", "distribution.create", "edu@1.0.0", "org.ghost@9.9",
		    "not on the server");
}

static void test_distribution_unresolvable_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.app\", \"version\": \"1.0\"}, "
		    "{\"name\": \"org.lib\", \"version\": \"1.0\"}]}",
		    422, "unresolved", "distribution.create", "edu@1.0.0",
		    "org.app@1.0.0 requires org.lib [2.0,3.0)", "has org.lib@1.0.0");
	/* and a set that lacks the requirement altogether */
	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.app\", \"version\": \"1.0\"}]}",
		    422, "unresolved", "distribution.create", "edu@1.0.0",
		    "org.app@1.0.0 requires org.lib", "does not include");
}

static void test_distribution_config_unknown_key_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.cfg\", \"version\": \"1.0\"}], "
		    "\"config\": {\"org.cfg\": {\"threads\": 8}}}",
		    400, "invalid", "distribution.create", "edu@1.0.0", "org.cfg.threads",
		    "unknown key");
	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.cfg\", \"version\": \"1.0\"}], "
		    "\"config\": {\"org.other\": {\"workers\": 8}}}",
		    400, "invalid", "distribution.create", "edu@1.0.0", "config.org.other",
		    "not a bundle of this distribution");
}

static void test_distribution_config_wrong_type_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.cfg\", \"version\": \"1.0\"}], "
		    "\"config\": {\"org.cfg\": {\"workers\": \"many\"}}}",
		    400, "invalid", "distribution.create", "edu@1.0.0", "org.cfg.workers",
		    "must be an integer");
}

static void test_distribution_bad_fields_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": [], \"colour\": 1}",
		    400, "invalid", "distribution.create", NULL, "colour", "unknown field");
	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": 1, \"bundles\": []}", 400, "invalid",
		    "distribution.create", NULL, "version", "must be a string");
	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.x\", \"bundles\": []}", 400, "invalid",
		    "distribution.create", NULL, "version", "\"1.x\"");
	refuse_json(&fx->srv, "POST", "/api/v1/distributions",
		    "{\"name\": \"edu\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.cfg\", \"version\": 1}]}",
		    400, "invalid", "distribution.create", NULL, "bundles[0].version",
		    "must be a string");
}

static void test_distribution_wrong_content_type_refused(void **state)
{
	struct fx *fx = *state;
	static const char body[] = "name=edu&version=1.0";
	struct th_request req = {.method = "POST",
				 .token = fx->srv.admin_token,
				 .content_type = "application/x-www-form-urlencoded",
				 .body = body,
				 .len = sizeof body - 1};
	struct snap before;
	struct th_response r;

	snap_take(&fx->srv, &before);
	th_http(&fx->srv, "/api/v1/distributions", &req, &r);
	expect_error(&r, 415, "unsupported_media_type", "application/x-www-form-urlencoded",
		     "application/json", "application/zip", NULL);
	expect_nothing_kept(&fx->srv, &before, "admin", "distribution.create",
			    "unsupported_media_type", NULL);
	th_response_free(&r);
	snap_free(&before);
}

/* ------------------------------------------------------------ JSON bodies */

static void test_malformed_json_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/distributions", "{\"name\": \"edu\",", 400,
		    "malformed_json", "distribution.create", NULL, "malformed JSON", "line 1");
	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"c1\"", 400,
		    "malformed_json", "cluster.create", NULL, "malformed JSON", "line 1");
	refuse_json(&fx->srv, "POST", "/api/v1/tokens", "{name: \"t\"}", 400, "malformed_json",
		    "token.create", NULL, "malformed JSON", "line 1");
	refuse_json(&fx->srv, "PATCH", "/api/v1/clusters/edu", "[", 400, "malformed_json",
		    "cluster.update", "edu", "malformed JSON", "line 1");
	refuse_json(&fx->srv, "POST", "/api/v1/enrollment-tokens", "", 400, "malformed_json",
		    "enrollment_token.create", NULL, "malformed JSON", NULL);
	/* well-formed, but not an object */
	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "[\"c1\"]", 400, "invalid",
		    "cluster.create", NULL, "JSON object", NULL);
	/* the same key twice is ambiguous: refused, not last-wins */
	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"c1\", \"name\": \"c2\"}",
		    400, "malformed_json", "cluster.create", NULL, "duplicate", NULL);
}

static void test_wrong_field_types_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": 5}", 400, "invalid",
		    "cluster.create", NULL, "name: must be a string", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"c1\", \"lb\": \"none\"}",
		    400, "invalid", "cluster.create", NULL, "lb: must be an object", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/clusters",
		    "{\"name\": \"c1\", \"lb\": {\"driver\": \"nginx\"}}", 400, "invalid",
		    "cluster.create", "c1", "lb.driver", "\"nginx\"");
	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"Bad_Name\"}", 400,
		    "invalid", "cluster.create", NULL, "name: \"Bad_Name\"", NULL);
	refuse_json(&fx->srv, "PATCH", "/api/v1/clusters/edu", "{\"description\": 7}", 400,
		    "invalid", "cluster.update", "edu", "description: must be a string", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/tokens",
		    "{\"name\": \"t1\", \"role\": \"viewer\", \"ttl_s\": \"60\"}", 400, "invalid",
		    "token.create", NULL, "ttl_s: must be an integer", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/tokens", "{\"name\": \"t1\", \"role\": \"root\"}",
		    400, "invalid", "token.create", NULL, "role: \"root\"", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/tokens", "{\"name\": \"t1\", \"role\": [\"admin\"]}",
		    400, "invalid", "token.create", NULL, "role: must be a string", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/enrollment-tokens",
		    "{\"cluster\": \"edu\", \"uses\": \"3\"}", 400, "invalid",
		    "enrollment_token.create", NULL, "uses: must be an integer", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/enrollment-tokens",
		    "{\"cluster\": \"edu\", \"uses\": 0}", 400, "invalid",
		    "enrollment_token.create", NULL, "uses", "out of range");
}

static void test_unknown_fields_refused(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "POST", "/api/v1/clusters", "{\"name\": \"c1\", \"colour\": 1}", 400,
		    "invalid", "cluster.create", NULL, "colour: unknown field", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/clusters",
		    "{\"name\": \"c1\", \"lb\": {\"driver\": \"none\", \"admin\": \"x:1\"}}", 400,
		    "invalid", "cluster.create", "c1", "lb.admin: unknown field", NULL);
	refuse_json(&fx->srv, "PATCH", "/api/v1/clusters/edu", "{\"colour\": 1}", 400, "invalid",
		    "cluster.update", "edu", "colour: unknown field", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/tokens",
		    "{\"name\": \"t1\", \"role\": \"viewer\", \"secret\": \"mine\"}", 400,
		    "invalid", "token.create", NULL, "secret: unknown field", NULL);
	refuse_json(&fx->srv, "POST", "/api/v1/enrollment-tokens",
		    "{\"cluster\": \"edu\", \"count\": 2}", 400, "invalid",
		    "enrollment_token.create", NULL, "count: unknown field", NULL);
}

/* ------------------------------------------------------------ sizes */

/* A body announced over the limit is answered before a byte of it is sent. */
static void refuse_announced(struct th_server *s, const char *path, const char *type,
			     unsigned long long length, const char *action, const char *limit)
{
	char *head = xasprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			       "Authorization: Bearer %s\r\nContent-Type: %s\r\n"
			       "Content-Length: %llu\r\n\r\n",
			       path, s->admin_token, type, length);
	char *answer = NULL;
	char *text = xasprintf("over the limit of %s bytes", limit);
	struct snap before;
	long status;

	snap_take(s, &before);
	status = th_raw_http(s, head, strlen(head), 10, &answer);
	if (status != 413 || !strstr(answer, text) || !strstr(answer, "too_large"))
		fail_msg("POST %s with Content-Length %llu and no body sent: want 413 naming "
			 "\"%s\" at once, got:\n%s",
			 path, length, text, answer);
	expect_nothing_kept(s, &before, "admin", action, "too_large", NULL);
	snap_free(&before);
	free(answer);
	free(text);
	free(head);
}

static void test_oversized_json_body_refused_before_reading(void **state)
{
	struct fx *fx = *state;

	refuse_announced(&fx->srv, "/api/v1/clusters", "application/json", 2ull << 20,
			 "cluster.create", "1048576");
	refuse_announced(&fx->srv, "/api/v1/tokens", "application/json", (1ull << 20) + 1,
			 "token.create", "1048576");
	/* the JSON form of a distribution has the same limit as any JSON body,
	 * although its route takes archives of up to --max-upload */
	refuse_announced(&fx->srv, "/api/v1/distributions", "application/json", 2ull << 20,
			 "distribution.create", "1048576");
}

static void test_upload_over_max_upload_refused(void **state)
{
	struct fx *fx = *state;
	struct th_server *s = &fx->small;
	const size_t len = SMALL_LIMIT + 40000;
	unsigned char *payload = xmalloc(len);
	struct snap before;
	struct th_response r;
	struct buf z;

	/* incompressible, so the archive really is over the limit */
	for (size_t i = 0; i < len; i++)
		payload[i] = (unsigned char)((i * 2654435761u) >> 13);
	{
		const struct zentry e[] = {{.name = "big.bin", .data = payload, .len = len}};

		z = th_bundle_zip(GOOD_MANIFEST, e, 1);
	}
	free(payload);
	assert_true(z.len > SMALL_LIMIT);

	/* announced by Content-Length: refused before the body */
	snap_take(s, &before);
	post_zip(s, "/api/v1/bundles", s->admin_token, z, &r);
	expect_error(&r, 413, "too_large", "over the limit of 65536 bytes", NULL);
	expect_nothing_kept(s, &before, "admin", "bundle.upload", "too_large", NULL);
	th_response_free(&r);
	snap_free(&before);

	/* the same as a distribution archive */
	snap_take(s, &before);
	post_zip(s, "/api/v1/distributions", s->admin_token, z, &r);
	expect_error(&r, 413, "too_large", "over the limit of 65536 bytes", NULL);
	expect_nothing_kept(s, &before, "admin", "distribution.create", "too_large", NULL);
	th_response_free(&r);
	snap_free(&before);

	/* chunked, with no length announced: refused once the count passes
	 * the limit, and the part already staged is removed */
	{
		struct buf req = {0};
		char *head = xasprintf("POST /api/v1/bundles HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				       "Authorization: Bearer %s\r\n"
				       "Content-Type: application/zip\r\n"
				       "Transfer-Encoding: chunked\r\n\r\n",
				       s->admin_token);
		char *answer = NULL;
		long status;
		size_t cap = strlen(head) + z.len + 64 * (z.len / 4096 + 2);

		req.p = xmalloc(cap);
		memcpy(req.p, head, strlen(head));
		req.len = strlen(head);
		for (size_t off = 0; off < z.len; off += 4096) {
			size_t n = z.len - off < 4096 ? z.len - off : 4096;

			req.len +=
			    (size_t)snprintf((char *)req.p + req.len, cap - req.len, "%zx\r\n", n);
			memcpy(req.p + req.len, z.p + off, n);
			req.len += n;
			memcpy(req.p + req.len, "\r\n", 2);
			req.len += 2;
		}
		memcpy(req.p + req.len, "0\r\n\r\n", 5);
		req.len += 5;
		snap_take(s, &before);
		status = th_raw_http(s, req.p, req.len, 10, &answer);
		if (status != 413 || !strstr(answer, "over the limit of 65536 bytes"))
			fail_msg("chunked upload over --max-upload: want 413, got:\n%s", answer);
		expect_nothing_kept(s, &before, "admin", "bundle.upload", "too_large", NULL);
		snap_free(&before);
		free(answer);
		free(head);
		free(req.p);
	}
	free(z.p);
}

/* ------------------------------------------------------------ routes */

static void test_unknown_route_is_404(void **state)
{
	struct fx *fx = *state;
	static const char *const paths[] = {"/api/v1/bundle", "/api/v2/bundles",
					    "/api/v1/bundles/a/1.0/archive/x", "/nothing"};

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		struct th_request req = {.token = fx->srv.admin_token};
		struct snap before;
		struct th_response r;

		snap_take(&fx->srv, &before);
		th_http(&fx->srv, paths[i], &req, &r);
		expect_error(&r, 404, "not_found", "no such resource", paths[i], NULL);
		expect_nothing_kept(&fx->srv, &before, NULL, NULL, NULL, NULL);
		th_response_free(&r);
		snap_free(&before);
	}
}

/* Bad query parameters and event ids: 400 naming the parameter. */
static void test_bad_query_refused(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *path, *last_event_id, *needle;
	} cases[] = {
	    {"/api/v1/bundles?limit=0", NULL, "limit: \"0\""},
	    {"/api/v1/bundles?limit=ten", NULL, "limit: \"ten\""},
	    {"/api/v1/distributions?limit=1001", NULL, "limit: \"1001\""},
	    {"/api/v1/bundles?after=not-a-cursor", NULL, "after"},
	    {"/api/v1/clusters?after=%25%25", NULL, "after"},
	    {"/api/v1/events?after=-1", NULL, "after"},
	    {"/api/v1/bundles/org.cfg/1.x", NULL, "\"1.x\""},
	    {"/api/v1/events/stream", "yesterday", "Last-Event-ID \"yesterday\""},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *h = cases[i].last_event_id
			      ? xasprintf("Last-Event-ID: %s", cases[i].last_event_id)
			      : NULL;
		const char *headers[] = {h, NULL};
		struct th_request req = {.token = fx->srv.admin_token, .headers = headers};
		struct snap before;
		struct th_response r;

		snap_take(&fx->srv, &before);
		th_http(&fx->srv, cases[i].path, &req, &r);
		expect_error(&r, 400, "invalid", cases[i].needle, NULL);
		expect_nothing_kept(&fx->srv, &before, NULL, NULL, NULL, NULL);
		th_response_free(&r);
		snap_free(&before);
		free(h);
	}
}

static void test_wrong_method_is_405_with_allow(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
	    {"PUT", "/api/v1/bundles", "POST, GET"},
	    {"DELETE", "/api/v1/clusters", "POST, GET"},
	    {"POST", "/api/v1/clusters/edu", "GET, PATCH, DELETE"},
	    {"PATCH", "/healthz", "GET"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct th_request req = {.method = cases[i].method,
					 .token = fx->srv.admin_token,
					 .body = "{}",
					 .len = 2};
		struct snap before;
		struct th_response r;
		char allow[128];

		snap_take(&fx->srv, &before);
		th_http(&fx->srv, cases[i].path, &req, &r);
		expect_error(&r, 405, "method_not_allowed", cases[i].method, cases[i].path,
			     cases[i].allow, NULL);
		if (!th_header(&r, "Allow", allow, sizeof allow))
			fail_msg("%s %s: 405 without an Allow header", cases[i].method,
				 cases[i].path);
		assert_string_equal(allow, cases[i].allow);
		expect_nothing_kept(&fx->srv, &before, NULL, NULL, NULL, NULL);
		th_response_free(&r);
		snap_free(&before);
	}
}

static void test_patch_distribution_is_409_use_a_rollout(void **state)
{
	struct fx *fx = *state;

	refuse_json(&fx->srv, "PATCH", "/api/v1/clusters/edu", "{\"distribution\": \"edu@1.0\"}",
		    409, "conflict", "cluster.update", "edu", "use a rollout", NULL);
	refuse_json(&fx->srv, "PATCH", "/api/v1/clusters/edu",
		    "{\"description\": \"x\", \"config\": {}}", 409, "conflict", "cluster.update",
		    "edu", "use a rollout", NULL);
}

/* Roles: a valid token with too little role is 403, naming both roles. */
static void test_too_little_role_is_403(void **state)
{
	struct fx *fx = *state;
	struct buf z = th_simple_bundle("org.evil", "1.0", NULL, NULL);
	struct snap before;
	struct th_response r;

	snap_take(&fx->srv, &before);
	post_zip(&fx->srv, "/api/v1/bundles", fx->viewer, z, &r);
	expect_error(&r, 403, "forbidden", "viewer1", "role viewer", "needs developer", NULL);
	expect_nothing_kept(&fx->srv, &before, "viewer1", "bundle.upload", "forbidden", NULL);
	th_response_free(&r);
	snap_free(&before);
	free(z.p);
}

/* Sanitizer builds: a server that crashed, leaked or tripped UBSan does not
 * exit 0, and says why in its log. */
static void test_servers_exit_cleanly(void **state)
{
	struct fx *fx = *state;
	struct th_server *servers[] = {&fx->srv, &fx->small};

	for (size_t i = 0; i < 2; i++)
		assert_true(th_server_exited_cleanly(servers[i], th_server_stop(servers[i])));
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
	    T(test_zip_slip_refused),
	    T(test_absolute_path_refused),
	    T(test_symlink_entry_refused),
	    T(test_duplicate_entry_refused),
	    T(test_zip_bomb_in_payload_refused),
	    T(test_zip_bomb_manifest_refused),
	    T(test_truncated_zip_refused),
	    T(test_cut_payload_refused),
	    T(test_not_a_zip_refused),
	    T(test_missing_bundle_json_refused),
	    T(test_malformed_bundle_json_refused),
	    T(test_bundle_json_wrong_type_refused),
	    T(test_bundle_json_unknown_field_refused),
	    T(test_bundle_json_bad_name_refused),
	    T(test_bundle_json_bad_version_refused),
	    T(test_bundle_json_bad_range_refused),
	    T(test_template_unknown_name_refused),
	    T(test_distribution_unknown_bundle_refused),
	    T(test_distribution_unresolvable_refused),
	    T(test_distribution_config_unknown_key_refused),
	    T(test_distribution_config_wrong_type_refused),
	    T(test_distribution_bad_fields_refused),
	    T(test_distribution_wrong_content_type_refused),
	    T(test_malformed_json_refused),
	    T(test_wrong_field_types_refused),
	    T(test_unknown_fields_refused),
	    T(test_oversized_json_body_refused_before_reading),
	    T(test_upload_over_max_upload_refused),
	    T(test_unknown_route_is_404),
	    T(test_bad_query_refused),
	    T(test_wrong_method_is_405_with_allow),
	    T(test_patch_distribution_is_409_use_a_rollout),
	    T(test_too_little_role_is_403),
	    T(test_servers_exit_cleanly),
	};
#undef T
	return cmocka_run_group_tests_name("api_input", tests, group_setup, group_teardown);
}
