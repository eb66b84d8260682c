/* test_release.c - staging releases from bundle zips made here: files
 * unpacked, templates and strings rendered from config and built-ins,
 * refusals leaving nothing behind, data directories shared across releases,
 * dependency order, the `current` switch, pruning and loading again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "desired.h"
#include "digest.h"
#include "fetch.h"
#include "fsutil.h"
#include "release.h"
#include "xalloc.h"
#include "zipwriter.h"

/* ------------------------------------------------------------ bundles */

static const char web_json[] =
	"{\"name\":\"org.test.web\",\"version\":\"1.1\","
	"\"requires\":{\"org.test.db\":\"[1.0,2.0)\"},"
	"\"run\":{\"command\":[\"bin/web\",\"--greet\",\"{{greeting}}\",\"--port\","
	"\"{{target.port_base}}\"],\"stop_timeout_s\":7},"
	"\"health\":{\"http\":\"/healthz?from={{target.id}}\",\"port\":\"{{target.port_base}}\","
	"\"interval_ms\":100},"
	"\"config\":{\"greeting\":{\"type\":\"string\",\"default\":\"hello\"},"
	"\"workers\":{\"type\":\"int\",\"default\":4},"
	"\"ratio\":{\"type\":\"number\",\"default\":0.5},"
	"\"debug\":{\"type\":\"bool\",\"default\":false}},"
	"\"templates\":[\"etc/web.conf.tmpl\"],"
	"\"data\":[\"var/uploads\"],"
	"\"serves\":{\"port\":\"{{target.port_base}}\"}}";

static const char web_tmpl[] = "greeting={{greeting}}\nworkers={{ workers }}\nratio={{ratio}}\n"
			       "debug={{debug}}\nid={{target.id}}\n"
			       "at={{target.address}}:{{target.port_base}}\n"
			       "cluster={{cluster.name}}\nversion={{distribution.version}}\n";

static const char db_json[] =
	"{\"name\":\"org.test.db\",\"version\":\"1.0.0\","
	"\"run\":{\"command\":[\"bin/db\"]},"
	"\"health\":{\"exec\":[\"bin/db\",\"--check\",\"{{size}}\"]},"
	"\"config\":{\"size\":{\"type\":\"int\",\"default\":10}},"
	"\"data\":[\"var\"]}";

struct fx {
	char dir[64];
	struct tn_release_env env;
};

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	snprintf(fx->dir, sizeof fx->dir, "/tmp/tn-test-release-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->env = (struct tn_release_env){"t-node1", "10.0.0.5", 8100, "educa"};
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int rc = tn_remove_tree(fx->dir, NULL);

	free(fx);
	return rc;
}

/* Puts a zip of the entries into the blob cache; fills hex and size. */
static void cache_zip(struct fx *fx, const struct zentry *es, size_t n, char *hex, size_t *size)
{
	struct buf z = build_zip(es, n, NULL, NULL);
	char *dir = xasprintf("%s/cache/sha256", fx->dir), *path;

	tn_sha256_hex(z.p, z.len, hex);
	path = tn_fetch_blob_path(fx->dir, hex);
	assert_int_equal(tn_mkdir_p(dir, 0755, NULL), 0);
	assert_int_equal(tn_write_file_atomic(path, z.p, z.len, 0644, NULL), 0);
	*size = z.len;
	free(z.p);
	free(dir);
	free(path);
}

struct bundle {
	const char *name, *version;
	char hex[TN_SHA256_HEX_LEN + 1];
	size_t size;
};

static void web_bundle(struct fx *fx, struct bundle *b, const char *json, const char *tmpl)
{
	const struct zentry es[] = {
		{.name = "bundle.json", .data = json, .len = strlen(json)},
		{.name = "bin/web", .data = "#!/bin/sh\n", .len = 10, .attr = 0100755u << 16},
		{.name = "etc/web.conf.tmpl", .data = tmpl, .len = strlen(tmpl), .deflate = true},
	};

	b->name = "org.test.web";
	b->version = "1.1.0";
	cache_zip(fx, es, 3, b->hex, &b->size);
}

static void db_bundle(struct fx *fx, struct bundle *b, const char *seed)
{
	const struct zentry es[] = {
		{.name = "bundle.json", .data = db_json, .len = strlen(db_json)},
		{.name = "bin/db", .data = "db", .len = 2, .attr = 0100755u << 16},
		{.name = "var/", .data = "", .len = 0},
		{.name = "var/seed.txt", .data = seed, .len = strlen(seed)},
	};

	b->name = "org.test.db";
	b->version = "1.0";
	cache_zip(fx, es, 4, b->hex, &b->size);
}

/* A release "test@1.0.0+<12 hex of n>" of the bundles (document order as
 * given), with config (a JSON object text, "{}" for none). */
static struct tn_desired_release *make_release(int n, const struct bundle *bs, size_t nb,
					       const char *config)
{
	json_t *bundles = json_array(), *obj, *cfg = json_loads(config, 0, NULL);
	struct tn_desired_release *r = NULL;
	struct tn_error err;
	char id[64];

	assert_non_null(cfg);
	snprintf(id, sizeof id, "test@1.0.0+%012x", n);
	for (size_t i = 0; i < nb; i++) {
		char url[128];

		snprintf(url, sizeof url, "/agent/v1/blobs/%s", bs[i].hex);
		json_array_append_new(bundles,
				      json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", bs[i].name,
						"version", bs[i].version, "sha256", bs[i].hex,
						"size", (json_int_t)bs[i].size, "url", url));
	}
	obj = json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", id, "distribution", "test", "version",
			"1.0.0", "bundles", bundles, "config", cfg);
	if (tn_desired_release_parse(obj, "release", &r, &err) < 0)
		fail_msg("%s", err.message);
	json_decref(obj);
	return r;
}

static char *path_of(struct fx *fx, const char *rel)
{
	return xasprintf("%s/%s", fx->dir, rel);
}

static char *read_text(const char *path)
{
	char *buf = NULL;
	size_t len = 0;

	if (tn_read_file(path, 1 << 20, &buf, &len, NULL) < 0)
		fail_msg("cannot read %s", path);
	return buf;
}

static void assert_missing(struct fx *fx, const char *rel)
{
	char *p = path_of(fx, rel);
	struct stat st;

	if (lstat(p, &st) == 0)
		fail_msg("%s should not exist", p);
	free(p);
}

/* releases/ holds exactly n entries. */
static void assert_releases_count(struct fx *fx, size_t n)
{
	char *p = path_of(fx, "releases");
	DIR *d = opendir(p);
	size_t count = 0;
	struct dirent *e;

	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				count++;
		closedir(d);
	}
	assert_int_equal(count, n);
	free(p);
}

/* Stages the usual two-bundle release with id n. */
static struct tn_release *stage_usual(struct fx *fx, int n, const char *config)
{
	struct bundle bs[2];
	struct tn_desired_release *spec;
	struct tn_release *r = NULL;
	struct tn_error err;

	web_bundle(fx, &bs[0], web_json, web_tmpl);
	db_bundle(fx, &bs[1], "seed one\n");
	spec = make_release(n, bs, 2, config);
	if (tn_release_stage(fx->dir, spec, &fx->env, &r, &err) < 0)
		fail_msg("%s", err.message);
	tn_desired_release_unref(spec);
	return r;
}

/* ------------------------------------------------------------ tests */

static void test_stage_unpacks_and_renders(void **state)
{
	struct fx *fx = *state;
	struct tn_release *r = stage_usual(fx, 1, "{\"org.test.web\":{\"greeting\":\"hi there\"}}");
	char *conf = path_of(fx, "releases/test@1.0.0+000000000001/org.test.web/etc/web.conf");
	char *bin = path_of(fx, "releases/test@1.0.0+000000000001/org.test.web/bin/web");
	char *text = read_text(conf);
	const struct tn_release_bundle *web, *db;
	struct stat st;

	assert_string_equal(text, "greeting=hi there\nworkers=4\nratio=0.5\ndebug=false\n"
				  "id=t-node1\nat=10.0.0.5:8100\ncluster=educa\nversion=1.0.0\n");
	assert_int_equal(stat(bin, &st), 0);
	assert_true(st.st_mode & 0100);
	assert_string_equal(r->id, "test@1.0.0+000000000001");
	assert_int_equal(r->n_bundles, 2);
	/* web requires db: db starts first, though listed second. */
	db = &r->bundles[0];
	web = &r->bundles[1];
	assert_string_equal(db->name, "org.test.db");
	assert_string_equal(web->name, "org.test.web");
	assert_string_equal(web->version, "1.1.0");
	assert_true(web->has_run);
	assert_string_equal(web->argv[0], "bin/web");
	assert_string_equal(web->argv[2], "hi there");
	assert_string_equal(web->argv[4], "8100");
	assert_null(web->argv[5]);
	assert_int_equal(web->stop_timeout_s, 7);
	assert_int_equal(web->probe, TN_PROBE_HTTP);
	assert_string_equal(web->http_path, "/healthz?from=t-node1");
	assert_int_equal(web->probe_port, 8100);
	assert_int_equal(web->interval_ms, 100);
	assert_int_equal(web->serves_port, 8100);
	assert_non_null(strstr(web->dir, "/releases/test@1.0.0+000000000001/org.test.web"));
	assert_int_equal(db->probe, TN_PROBE_EXEC);
	assert_string_equal(db->exec[2], "10");
	assert_int_equal(db->probe_port, 0);
	assert_int_equal(db->serves_port, 0);
	assert_int_equal(db->stop_timeout_s, 10);
	/* Complete: the spec is kept, no staging left. */
	assert_true(tn_release_exists(fx->dir, r->id));
	assert_releases_count(fx, 1);
	free(text);
	free(conf);
	free(bin);
	tn_release_free(r);
}

static void test_unknown_name_in_template_leaves_nothing(void **state)
{
	struct fx *fx = *state;
	struct bundle bs[2];
	struct tn_desired_release *spec;
	struct tn_release *r = (void *)1;
	struct tn_error err;

	web_bundle(fx, &bs[0], web_json, "a={{greeting}}\nb={{colour}}\n");
	db_bundle(fx, &bs[1], "seed\n");
	spec = make_release(2, bs, 2, "{}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_INVALID);
	assert_null(r);
	assert_non_null(strstr(err.message, "bundle org.test.web: template etc/web.conf.tmpl: "
					    "unknown template name \"{{colour}}\" at line 2"));
	assert_releases_count(fx, 0);
	assert_false(tn_release_exists(fx->dir, spec->id));
	tn_desired_release_unref(spec);
}

static void test_bad_config_and_identity_are_refused(void **state)
{
	struct fx *fx = *state;
	struct bundle bs[2];
	struct tn_desired_release *spec;
	struct tn_release *r = NULL;
	struct tn_error err;

	web_bundle(fx, &bs[0], web_json, web_tmpl);
	db_bundle(fx, &bs[1], "seed\n");
	spec = make_release(3, bs, 2, "{\"org.test.web\":{\"colour\":\"red\"}}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "release config: org.test.web.colour: unknown key"));
	tn_desired_release_unref(spec);
	spec = make_release(3, bs, 2, "{\"org.test.web\":{\"workers\":\"many\"}}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "workers"));
	tn_desired_release_unref(spec);
	/* The document says 1.2.0 but the zip holds 1.1.0. */
	bs[0].version = "1.2.0";
	spec = make_release(3, bs, 2, "{}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "holds version 1.1.0, not 1.2.0"));
	tn_desired_release_unref(spec);
	/* A blob missing from the cache. */
	bs[0].version = "1.1.0";
	memset(bs[0].hex, 'a', TN_SHA256_HEX_LEN);
	spec = make_release(3, bs, 2, "{}");
	assert_true(tn_release_stage(fx->dir, spec, &fx->env, &r, &err) < 0);
	assert_non_null(strstr(err.message, "bundle org.test.web"));
	tn_desired_release_unref(spec);
	assert_releases_count(fx, 0);
}

static void test_data_is_linked_and_shared_across_releases(void **state)
{
	struct fx *fx = *state;
	struct tn_release *a = stage_usual(fx, 1, "{}");
	struct tn_release *b;
	char *via_a = path_of(fx, "releases/test@1.0.0+000000000001/org.test.web/var/uploads/f");
	char *via_b = path_of(fx, "releases/test@1.0.0+000000000002/org.test.web/var/uploads/f");
	char *link = path_of(fx, "releases/test@1.0.0+000000000001/org.test.web/var/uploads");
	char *seed = path_of(fx, "data/org.test.db/var/seed.txt");
	char *text, target[256];
	ssize_t n;
	struct stat st;

	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(link, target, sizeof target - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "../../../../data/org.test.web/var/uploads");
	assert_int_equal(tn_write_file_atomic(via_a, "kept", 4, 0644, NULL), 0);
	/* The db bundle shipped var/seed.txt: it seeded its data directory. */
	text = read_text(seed);
	assert_string_equal(text, "seed one\n");
	free(text);
	/* Release B: another config, another seed that must not win. */
	{
		struct bundle bs[2];
		struct tn_desired_release *spec;
		struct tn_error err;

		web_bundle(fx, &bs[0], web_json, web_tmpl);
		db_bundle(fx, &bs[1], "seed two\n");
		spec = make_release(2, bs, 2, "{\"org.test.db\":{\"size\":20}}");
		if (tn_release_stage(fx->dir, spec, &fx->env, &b, &err) < 0)
			fail_msg("%s", err.message);
		tn_desired_release_unref(spec);
	}
	text = read_text(via_b);
	assert_string_equal(text, "kept");
	free(text);
	text = read_text(seed);
	assert_string_equal(text, "seed one\n");
	free(text);
	/* Switching and pruning A away leaves the data alone. */
	assert_int_equal(tn_release_switch(fx->dir, b->id, NULL), 0);
	assert_int_equal(tn_release_prune(fx->dir, 1, NULL, 0, NULL), 0);
	assert_false(tn_release_exists(fx->dir, a->id));
	text = read_text(via_b);
	assert_string_equal(text, "kept");
	free(text);
	tn_release_free(a);
	tn_release_free(b);
	free(via_a);
	free(via_b);
	free(link);
	free(seed);
}

/* A bundle named name requiring the others given (NULL-terminated). */
static void dep_bundle(struct fx *fx, struct bundle *b, const char *name, const char *version,
		       const char *requires)
{
	char *json = xasprintf("{\"name\":\"%s\",\"version\":\"%s\",\"requires\":{%s}}", name,
			       version, requires);
	const struct zentry es[] = {{.name = "bundle.json", .data = json, .len = strlen(json)}};

	b->name = name;
	b->version = version;
	cache_zip(fx, es, 1, b->hex, &b->size);
	free(json);
}

static void test_dependency_order_and_cycles(void **state)
{
	struct fx *fx = *state;
	struct bundle bs[4];
	struct tn_desired_release *spec;
	struct tn_release *r = NULL;
	struct tn_error err;

	/* d requires c and b, c requires a, b requires a: a first, d last. */
	dep_bundle(fx, &bs[0], "d", "1.0.0", "\"c\":\"1.0\",\"b\":\"1.0\"");
	dep_bundle(fx, &bs[1], "c", "1.0.0", "\"a\":\"[1.0,2.0)\"");
	dep_bundle(fx, &bs[2], "b", "1.0.0", "\"a\":\"1.0\"");
	dep_bundle(fx, &bs[3], "a", "1.5.0", "");
	spec = make_release(1, bs, 4, "{}");
	if (tn_release_stage(fx->dir, spec, &fx->env, &r, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(r->bundles[0].name, "a");
	assert_string_equal(r->bundles[1].name, "c");
	assert_string_equal(r->bundles[2].name, "b");
	assert_string_equal(r->bundles[3].name, "d");
	assert_false(r->bundles[0].has_run);
	assert_null(r->bundles[0].argv);
	tn_release_free(r);
	tn_desired_release_unref(spec);

	/* A cycle: c -> a -> b -> c. */
	dep_bundle(fx, &bs[0], "a", "1.0.0", "\"b\":\"1.0\"");
	dep_bundle(fx, &bs[1], "b", "1.0.0", "\"c\":\"1.0\"");
	dep_bundle(fx, &bs[2], "c", "1.0.0", "\"a\":\"1.0\"");
	spec = make_release(2, bs, 3, "{}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_UNRESOLVED);
	assert_non_null(
	    strstr(err.message, "bundles require each other in a cycle: a -> b -> c -> a"));
	tn_desired_release_unref(spec);

	/* Unmet: a missing bundle, a version out of range. */
	spec = make_release(3, bs, 2, "{}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_UNRESOLVED);
	assert_non_null(
	    strstr(err.message, "bundle b requires c 1.0, which is not in the release"));
	tn_desired_release_unref(spec);
	dep_bundle(fx, &bs[0], "a", "1.0.0", "\"b\":\"[2.0,3.0)\"");
	dep_bundle(fx, &bs[1], "b", "1.0.0", "");
	spec = make_release(4, bs, 2, "{}");
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &r, &err), -TN_E_UNRESOLVED);
	assert_non_null(
	    strstr(err.message, "bundle a requires b [2.0,3.0), the release has 1.0.0"));
	tn_desired_release_unref(spec);
	/* Only the first release was made; no staging directory is left. */
	assert_releases_count(fx, 1);
}

static void test_current_switch_is_atomic(void **state)
{
	struct fx *fx = *state;
	struct tn_release *a = stage_usual(fx, 1, "{}");
	struct tn_release *b = stage_usual(fx, 2, "{\"org.test.db\":{\"size\":3}}");
	char *cur = path_of(fx, "current"), target[256], *id = NULL;
	struct tn_error err;
	ssize_t n;
	DIR *d;
	struct dirent *e;

	assert_int_equal(tn_release_current(fx->dir, &id, NULL), 0);
	assert_null(id);
	assert_int_equal(tn_release_switch(fx->dir, a->id, NULL), 0);
	assert_int_equal(tn_release_current(fx->dir, &id, NULL), 0);
	assert_string_equal(id, a->id);
	free(id);
	assert_int_equal(tn_release_switch(fx->dir, b->id, NULL), 0);
	n = readlink(cur, target, sizeof target - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "releases/test@1.0.0+000000000002");
	/* Through the link, the release's files. */
	{
		char *conf = path_of(fx, "current/org.test.web/etc/web.conf");

		assert_int_equal(access(conf, R_OK), 0);
		free(conf);
	}
	/* An unknown release: refused, current unchanged. */
	assert_int_equal(tn_release_switch(fx->dir, "test@9.9.9+000000000000", &err),
			 -TN_E_NOT_FOUND);
	assert_int_equal(tn_release_switch(fx->dir, "../x", &err), -TN_E_INVALID);
	assert_int_equal(tn_release_current(fx->dir, &id, NULL), 0);
	assert_string_equal(id, b->id);
	free(id);
	/* No temporary link left behind. */
	d = opendir(fx->dir);
	while ((e = readdir(d)))
		assert_null(strstr(e->d_name, ".current.tmp"));
	closedir(d);
	tn_release_free(a);
	tn_release_free(b);
	free(cur);
}

static void pause_a_little(void)
{
	/* Recency is the directory's mtime, of coarse kernel-clock grain. */
	struct timespec ts = {0, 20 * 1000 * 1000};

	nanosleep(&ts, NULL);
}

static void test_prune_keeps_n_current_and_protected(void **state)
{
	struct fx *fx = *state;
	struct tn_release *r[4];
	char **ids = NULL;
	size_t n = 0;
	char *leftover = path_of(fx, "releases/.staging-test@1.0.0+00000000dead");
	char *uploads = path_of(fx, "data/org.test.web/var/uploads");
	char cfg[64];

	for (int i = 0; i < 4; i++) {
		snprintf(cfg, sizeof cfg, "{\"org.test.db\":{\"size\":%d}}", i);
		r[i] = stage_usual(fx, i + 1, cfg);
		pause_a_little();
	}
	assert_int_equal(tn_mkdir_p(leftover, 0755, NULL), 0);
	/* r2 becomes current: the most recent use. */
	assert_int_equal(tn_release_switch(fx->dir, r[1]->id, NULL), 0);
	assert_int_equal(tn_release_list(fx->dir, &ids, &n, NULL), 0);
	assert_int_equal(n, 4);
	assert_string_equal(ids[0], r[1]->id);
	assert_string_equal(ids[1], r[3]->id);
	assert_string_equal(ids[2], r[2]->id);
	assert_string_equal(ids[3], r[0]->id);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	/* keep 2 (r2, r4) + r1 protected (say, being prepared): r3 goes. */
	assert_int_equal(tn_release_prune(fx->dir, 2, (const char *const[]){r[0]->id}, 1, NULL),
			 0);
	assert_true(tn_release_exists(fx->dir, r[0]->id));
	assert_true(tn_release_exists(fx->dir, r[1]->id));
	assert_false(tn_release_exists(fx->dir, r[2]->id));
	assert_true(tn_release_exists(fx->dir, r[3]->id));
	assert_missing(fx, "releases/.staging-test@1.0.0+00000000dead");
	/* keep 1: only the current one is left; data stays. */
	assert_int_equal(tn_release_prune(fx->dir, 1, NULL, 0, NULL), 0);
	assert_releases_count(fx, 1);
	assert_true(tn_release_exists(fx->dir, r[1]->id));
	assert_int_equal(access(uploads, F_OK), 0);
	for (int i = 0; i < 4; i++)
		tn_release_free(r[i]);
	free(leftover);
	free(uploads);
}

static void test_load_after_restart(void **state)
{
	struct fx *fx = *state;
	struct tn_release *a = stage_usual(fx, 1, "{\"org.test.web\":{\"greeting\":\"yo\"}}");
	struct tn_release *b = NULL, *c = NULL;
	struct tn_desired_release *spec = NULL;
	char *cache = path_of(fx, "cache");
	struct tn_error err;

	assert_int_equal(tn_release_load(fx->dir, a->id, &fx->env, &b, &err), 0);
	assert_int_equal(b->n_bundles, a->n_bundles);
	for (size_t i = 0; i < a->n_bundles; i++) {
		assert_string_equal(a->bundles[i].name, b->bundles[i].name);
		assert_string_equal(a->bundles[i].dir, b->bundles[i].dir);
	}
	assert_string_equal(b->bundles[1].argv[2], "yo");
	/* Staging a release that is complete loads it: no blob needed. */
	assert_int_equal(tn_release_spec(fx->dir, a->id, &spec, NULL), 0);
	assert_int_equal(tn_remove_tree(cache, NULL), 0);
	assert_int_equal(tn_release_stage(fx->dir, spec, &fx->env, &c, &err), 0);
	assert_string_equal(c->bundles[1].argv[2], "yo");
	tn_release_free(c);
	assert_int_equal(tn_release_load(fx->dir, "test@9.9.9+000000000000", &fx->env, &c, &err),
			 -TN_E_NOT_FOUND);
	assert_null(c);
	tn_desired_release_unref(spec);
	tn_release_free(a);
	tn_release_free(b);
	free(cache);
}

static void test_crash_leftover_staging_is_replaced(void **state)
{
	struct fx *fx = *state;
	char *left = path_of(fx, "releases/.staging-test@1.0.0+000000000001/org.test.web/junk");
	struct tn_release *r;

	/* A crash halfway through staging this release left a part of it. */
	assert_int_equal(tn_mkdir_p(left, 0755, NULL), 0);
	r = stage_usual(fx, 1, "{}");
	assert_releases_count(fx, 1);
	assert_missing(fx, "releases/test@1.0.0+000000000001/org.test.web/junk");
	tn_release_free(r);
	free(left);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_stage_unpacks_and_renders),
		T(test_unknown_name_in_template_leaves_nothing),
		T(test_bad_config_and_identity_are_refused),
		T(test_data_is_linked_and_shared_across_releases),
		T(test_dependency_order_and_cycles),
		T(test_current_switch_is_atomic),
		T(test_prune_keeps_n_current_and_protected),
		T(test_load_after_restart),
		T(test_crash_leftover_staging_is_replaced),
	};
	return cmocka_run_group_tests_name("release", tests, NULL, NULL);
}
