/* test_store.c - the SQLite store on real files in a temporary directory:
 * migrations, each object's rules (idempotent inserts, conflicts, refusals
 * while in use), OSGi ordering, pagination, backup, and writers in threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "store.h"
#include "xalloc.h"

struct fixture {
	char *dir;
	char *path;
	struct tn_store *store;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct tn_error err;

	f->dir = xstrdup("/tmp/tn-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->path = xasprintf("%s/tender.db", f->dir);
	if (tn_store_open(f->path, &f->store, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	int rc;

	tn_store_close(f->store);
	rc = tn_remove_tree(f->dir, &err);
	free(f->path);
	free(f->dir);
	free(f);
	return rc;
}

/* ---- raw SQLite access, to look under the API and to set up states that
 * later issues will have functions for */

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* ---- helpers */

static struct tn_store_version ver(uint32_t major, uint32_t minor, uint32_t micro,
				   const char *qualifier)
{
	struct tn_store_version v = {major, minor, micro, qualifier};

	return v;
}

/* A fake digest: 64 copies of c. */
static const char *sha(char c)
{
	static char buf[8][65];
	static int next;
	char *s = buf[next++ % 8];

	memset(s, c, 64);
	s[64] = '\0';
	return s;
}

static enum tn_store_outcome put_bundle(struct tn_store *store, const char *name,
					struct tn_store_version v, char digest)
{
	enum tn_store_outcome outcome = 0;
	struct tn_error err;
	json_t *manifest = json_pack("{s:s}", "name", name);

	if (tn_store_bundle_insert(store, name, &v, sha(digest), 1000, manifest, "dev", &outcome,
				   &err) != 0)
		fail_msg("bundle insert: %s", err.message);
	json_decref(manifest);
	return outcome;
}

static void put_dist(struct tn_store *store, const char *name, struct tn_store_version v,
		     const struct tn_store_bundle_ref *refs, size_t n)
{
	enum tn_store_outcome outcome = 0;
	struct tn_error err;

	if (tn_store_distribution_insert(store, name, &v, NULL, refs, n, "dev", &outcome, &err))
		fail_msg("distribution insert: %s", err.message);
	assert_int_equal(outcome, TN_STORE_CREATED);
}

static void put_cluster(struct tn_store *store, const char *name,
			const struct tn_store_bundle_ref *dist)
{
	struct tn_error err;

	if (tn_store_cluster_create(store, name, NULL, "local", NULL, dist, NULL, "ops", NULL,
				    &err))
		fail_msg("cluster create: %s", err.message);
}

static char *put_target(struct tn_store *store, const char *cluster, const char *state)
{
	struct tn_store_target_spec spec = {.cluster = cluster, .state = state};
	struct tn_error err;
	json_t *t = NULL;
	char *id;

	if (tn_store_target_create(store, &spec, &t, &err))
		fail_msg("target create: %s", err.message);
	id = xstrdup(json_string_value(json_object_get(t, "id")));
	json_decref(t);
	return id;
}

/* "name@version" of every item of a list page, space separated; caller frees. */
static char *names(json_t *page_obj)
{
	json_t *items = json_object_get(page_obj, "items"), *item;
	char *out = xstrdup("");
	size_t i;

	json_array_foreach(items, i, item)
	{
		char *next = xasprintf("%s%s%s@%s", out, i ? " " : "",
				       json_string_value(json_object_get(item, "name")),
				       json_string_value(json_object_get(item, "version")));
		free(out);
		out = next;
	}
	return out;
}

static const char *next_of(json_t *page_obj)
{
	return json_string_value(json_object_get(page_obj, "next"));
}

/* ---- schema */

static void test_migrations_on_fresh_file(void **state)
{
	struct fixture *f = *state;

	assert_true(tn_store_schema_version() >= 1);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), tn_store_schema_version());
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
					  " AND name IN ('bundles', 'distributions', 'clusters',"
					  " 'targets', 'rollouts', 'api_tokens', 'events')"),
			 7);
	/* WAL is a property of the file */
	{
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), 0);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct tn_store_version v = ver(1, 0, 0, NULL);
	struct tn_error err;
	json_t *b = NULL;

	assert_int_equal(put_bundle(f->store, "org.a", v, 'a'), TN_STORE_CREATED);
	tn_store_close(f->store);
	f->store = NULL;
	assert_int_equal(tn_store_open(f->path, &f->store, &err), 0);
	assert_int_equal(tn_store_bundle_get(f->store, "org.a", &v, &b, &err), 0);
	assert_string_equal(json_string_value(json_object_get(b, "sha256")), sha('a'));
	json_decref(b);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct tn_store *other = NULL;
	struct tn_error err;

	tn_store_close(f->store);
	f->store = NULL;
	raw_exec(f->path, "PRAGMA user_version = 999");
	assert_int_not_equal(tn_store_open(f->path, &other, &err), 0);
	assert_null(other);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_non_null(strstr(err.message, "newer"));
	assert_non_null(strstr(err.message, "999"));
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 999); /* untouched */
	{
		char sql[64];

		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", tn_store_schema_version());
		raw_exec(f->path, sql);
	}
	assert_int_equal(tn_store_open(f->path, &f->store, &err), 0);
}

/* ---- bundles */

static void test_bundle_insert_same_bytes_conflict_get(void **state)
{
	struct fixture *f = *state;
	struct tn_store_version v = ver(1, 2, 0, NULL), v_long = ver(1, 2, 0, "");
	enum tn_store_outcome outcome = 0;
	struct tn_error err;
	json_t *manifest = json_pack("{s:s, s:s, s:{s:s}}", "name", "org.educa.web", "version",
				     "1.2.0", "requires", "org.educa.db", "[1.0,2.0)");
	json_t *b = NULL;
	int64_t n = 0;
	bool used = false;

	assert_int_equal(tn_store_bundle_insert(f->store, "org.educa.web", &v, sha('1'), 42,
						manifest, "dev", &outcome, &err),
			 0);
	assert_int_equal(outcome, TN_STORE_CREATED);
	assert_int_equal(tn_store_bundle_insert(f->store, "org.educa.web", &v_long, sha('1'), 42,
						manifest, "dev", &outcome, &err),
			 0);
	assert_int_equal(outcome, TN_STORE_UNCHANGED);
	assert_int_not_equal(tn_store_bundle_insert(f->store, "org.educa.web", &v, sha('2'), 42,
						    manifest, "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_non_null(strstr(err.message, "org.educa.web@1.2.0"));
	assert_int_not_equal(tn_store_bundle_insert(f->store, "org.educa.web", &v, "xyz", 42,
						    manifest, "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_INVALID);

	assert_int_equal(tn_store_bundle_get(f->store, "org.educa.web", &v, &b, &err), 0);
	assert_string_equal(json_string_value(json_object_get(b, "version")), "1.2.0");
	assert_int_equal(json_integer_value(json_object_get(b, "size")), 42);
	assert_string_equal(json_string_value(json_object_get(b, "created_by")), "dev");
	assert_true(json_equal(json_object_get(b, "manifest"), manifest));
	assert_int_equal(strlen(json_string_value(json_object_get(b, "created"))),
			 TN_STORE_TIME_LEN);
	json_decref(b);
	json_decref(manifest);

	v = ver(9, 9, 9, NULL);
	assert_int_not_equal(tn_store_bundle_get(f->store, "org.educa.web", &v, &b, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_equal(tn_store_bundle_count(f->store, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tn_store_blob_referenced(f->store, sha('1'), &used, &err), 0);
	assert_true(used);
	assert_int_equal(tn_store_blob_referenced(f->store, sha('2'), &used, &err), 0);
	assert_false(used);
}

static void test_bundle_list_osgi_order_and_pages(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *p = NULL;
	char *got, *all = NULL;
	const char *after = NULL;
	char *after_copy = NULL;
	int pages = 0;

	put_bundle(f->store, "org.b", ver(1, 0, 0, NULL), 'b');
	put_bundle(f->store, "org.a", ver(1, 10, 0, NULL), 'c');
	put_bundle(f->store, "org.a", ver(1, 9, 0, NULL), 'd');
	put_bundle(f->store, "org.a", ver(1, 9, 0, "beta"), 'e');
	put_bundle(f->store, "org.a", ver(1, 9, 0, "alpha"), 'f');
	put_bundle(f->store, "org.a", ver(2, 0, 0, NULL), '0');
	put_bundle(f->store, "org.a", ver(1, 0, 10, NULL), '1');

	static const char expect[] = "org.a@1.0.10 org.a@1.9.0 org.a@1.9.0.alpha "
				     "org.a@1.9.0.beta org.a@1.10.0 org.a@2.0.0 org.b@1.0.0";

	assert_int_equal(tn_store_bundle_list(f->store, NULL, 0, NULL, &p, &err), 0);
	got = names(p);
	assert_string_equal(got, expect);
	assert_true(json_is_null(json_object_get(p, "next")));
	assert_null(json_object_get(json_array_get(json_object_get(p, "items"), 0), "manifest"));
	free(got);
	json_decref(p);

	assert_int_equal(tn_store_bundle_list(f->store, "org.b", 0, NULL, &p, &err), 0);
	got = names(p);
	assert_string_equal(got, "org.b@1.0.0");
	free(got);
	json_decref(p);

	/* pages of 2 walk the same order: 2 + 2 + 2 + 1 */
	all = xstrdup("");
	do {
		assert_int_equal(tn_store_bundle_list(f->store, NULL, 2, after, &p, &err), 0);
		got = names(p);
		{
			char *joined = xasprintf("%s%s%s", all, *all ? " " : "", got);

			free(all);
			all = joined;
		}
		free(got);
		free(after_copy);
		after_copy = next_of(p) ? xstrdup(next_of(p)) : NULL;
		after = after_copy;
		json_decref(p);
		pages++;
	} while (after && pages < 10);
	assert_int_equal(pages, 4);
	assert_string_equal(all, expect);
	free(all);

	/* a page that ends exactly at the last row has no next */
	assert_int_equal(tn_store_bundle_list(f->store, "org.a", 6, NULL, &p, &err), 0);
	assert_true(json_is_null(json_object_get(p, "next")));
	json_decref(p);

	assert_int_not_equal(tn_store_bundle_list(f->store, NULL, 2, "garbage!", &p, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	/* valid base64url of JSON of the wrong shape: ["x"] */
	assert_int_not_equal(tn_store_bundle_list(f->store, NULL, 2, "WyJ4Il0", &p, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
}

static void test_bundle_delete_refused_while_used(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref refs[] = {{"org.a", ver(1, 0, 0, NULL)}};
	struct tn_store_version dv = ver(1, 0, 0, NULL);
	struct tn_error err;
	char *digest = NULL;
	bool used = true;

	put_bundle(f->store, "org.a", refs[0].version, 'a');
	put_dist(f->store, "educa", dv, refs, 1);
	assert_int_not_equal(
	    tn_store_bundle_delete(f->store, "org.a", &refs[0].version, &digest, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "educa@1.0.0"));
	assert_null(digest);

	assert_int_equal(tn_store_distribution_delete(f->store, "educa", &dv, &err), 0);
	assert_int_equal(tn_store_bundle_delete(f->store, "org.a", &refs[0].version, &digest, &err),
			 0);
	assert_string_equal(digest, sha('a'));
	free(digest);
	assert_int_equal(tn_store_blob_referenced(f->store, sha('a'), &used, &err), 0);
	assert_false(used);
	assert_int_not_equal(
	    tn_store_bundle_delete(f->store, "org.a", &refs[0].version, NULL, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
}

/* ---- distributions */

static void test_distribution_insert_is_one_transaction(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref refs[] = {
	    {"org.educa.web", ver(1, 1, 0, NULL)},
	    {"org.educa.db", ver(1, 0, 0, NULL)},
	    {"org.missing", ver(1, 0, 0, NULL)},
	};
	struct tn_store_bundle_ref twice[] = {
	    {"org.educa.web", ver(1, 1, 0, NULL)},
	    {"org.educa.web", ver(1, 0, 0, NULL)},
	};
	struct tn_store_version v = ver(1, 1, 0, NULL);
	enum tn_store_outcome outcome = 0;
	json_t *config = json_pack("{s:{s:s}}", "org.educa.web", "greeting", "hi");
	json_t *other_config = json_pack("{s:{s:s}}", "org.educa.web", "greeting", "ho");
	json_t *d = NULL, *b;
	struct tn_error err;
	int64_t n = -1;

	put_bundle(f->store, "org.educa.web", refs[0].version, 'b');
	put_bundle(f->store, "org.educa.db", refs[1].version, 'd');

	assert_int_not_equal(tn_store_distribution_insert(f->store, "educa", &v, config, refs, 3,
							  "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, "bundles[2]"));
	assert_non_null(strstr(err.message, "org.missing@1.0.0"));
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM distributions"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM distribution_bundles"), 0);

	assert_int_not_equal(tn_store_distribution_insert(f->store, "educa", &v, NULL, twice, 2,
							  "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_INVALID);

	assert_int_equal(tn_store_distribution_insert(f->store, "educa", &v, config, refs, 2, "dev",
						      &outcome, &err),
			 0);
	assert_int_equal(outcome, TN_STORE_CREATED);
	/* the same bundles in another order and the same config: already there */
	{
		struct tn_store_bundle_ref swapped[] = {refs[1], refs[0]};
		json_t *same_config = json_deep_copy(config);

		assert_int_equal(tn_store_distribution_insert(f->store, "educa", &v, same_config,
							      swapped, 2, "dev", &outcome, &err),
				 0);
		assert_int_equal(outcome, TN_STORE_UNCHANGED);
		json_decref(same_config);
	}
	assert_int_not_equal(tn_store_distribution_insert(f->store, "educa", &v, config, refs, 1,
							  "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_not_equal(tn_store_distribution_insert(f->store, "educa", &v, other_config, refs,
							  2, "dev", &outcome, &err),
			     0);
	assert_int_equal(err.code, TN_E_EXISTS);

	assert_int_equal(tn_store_distribution_get(f->store, "educa", &v, &d, &err), 0);
	assert_string_equal(json_string_value(json_object_get(d, "version")), "1.1.0");
	assert_true(json_equal(json_object_get(d, "config"), config));
	b = json_object_get(d, "bundles");
	assert_int_equal(json_array_size(b), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(b, 0), "name")),
			    "org.educa.web");
	assert_string_equal(json_string_value(json_object_get(json_array_get(b, 1), "sha256")),
			    sha('d'));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(b, 1), "size")), 1000);
	json_decref(d);

	assert_int_equal(tn_store_distribution_list(f->store, NULL, 0, NULL, &d, &err), 0);
	assert_int_equal(json_array_size(json_object_get(d, "items")), 1);
	assert_int_equal(json_array_size(json_object_get(
			     json_array_get(json_object_get(d, "items"), 0), "bundles")),
			 2);
	json_decref(d);
	assert_int_equal(tn_store_distribution_count(f->store, &n, &err), 0);
	assert_int_equal(n, 1);
	json_decref(config);
	json_decref(other_config);
}

static void test_distribution_delete_refused_while_used(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref refs[] = {{"org.a", ver(1, 0, 0, NULL)}};
	struct tn_store_bundle_ref d1 = {"educa", ver(1, 0, 0, NULL)};
	struct tn_store_bundle_ref d2 = {"educa", ver(1, 1, 0, NULL)};
	struct tn_error err;
	json_t *c = NULL;

	put_bundle(f->store, "org.a", refs[0].version, 'a');
	put_dist(f->store, d1.name, d1.version, refs, 1);
	put_dist(f->store, d2.name, d2.version, refs, 1);
	put_cluster(f->store, "prod", &d1);

	assert_int_equal(tn_store_cluster_get(f->store, "prod", &c, &err), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(c, "revision"), "distribution")),
	    "educa@1.0.0");
	json_decref(c);
	assert_int_not_equal(tn_store_distribution_delete(f->store, d1.name, &d1.version, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "current revision of cluster prod"));

	/* a rollout to educa@1.1.0 awaiting approval (rollouts get their
	 * functions in a later issue: set it up underneath) */
	raw_exec(f->path,
		 "INSERT INTO cluster_revisions (cluster_id, number, distribution_id, config,"
		 " created, created_by) SELECT c.id, 2, d.id, '{}', 'now', 'ops'"
		 " FROM clusters c, distributions d WHERE c.name = 'prod' AND d.version = '1.1.0';"
		 "INSERT INTO rollouts (id, cluster_id, from_revision_id, to_revision_id, state,"
		 " strategy, created_by, created, updated) SELECT 'r-test', c.id,"
		 " c.current_revision_id, r.id, 'pending_approval', '{}', 'ops', 'now', 'now'"
		 " FROM clusters c JOIN cluster_revisions r ON r.cluster_id = c.id"
		 " AND r.number = 2;");
	assert_int_not_equal(tn_store_distribution_delete(f->store, d2.name, &d2.version, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "rollout r-test (pending_approval)"));

	/* finished: the revision still pins it, for undo */
	raw_exec(f->path, "UPDATE rollouts SET state = 'succeeded'");
	assert_int_not_equal(tn_store_distribution_delete(f->store, d2.name, &d2.version, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "revision 2 of cluster prod"));

	/* the cluster, its revisions and rollout gone: deletable */
	assert_int_equal(tn_store_cluster_delete(f->store, "prod", &err), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rollouts"), 0);
	assert_int_equal(tn_store_distribution_delete(f->store, d2.name, &d2.version, &err), 0);
	assert_int_equal(tn_store_distribution_delete(f->store, d1.name, &d1.version, &err), 0);
	assert_int_not_equal(tn_store_distribution_delete(f->store, d1.name, &d1.version, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
}

/* ---- clusters and targets */

static void test_cluster_create_get_patch_delete(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref nodist = {"nothere", ver(1, 0, 0, NULL)};
	json_t *lb = json_pack("{s:s, s:s, s:s}", "driver", "haproxy", "admin", "127.0.0.1:9999",
			       "backend", "educa");
	json_t *config = json_pack("{s:{s:i}}", "org.educa.web", "workers", 8);
	json_t *c = NULL, *counts, *rev;
	char *ids[5];
	struct tn_error err;
	int64_t n = 0;

	assert_int_equal(tn_store_cluster_create(f->store, "educa", "the school site", NULL, NULL,
						 NULL, config, "ops", &c, &err),
			 0);
	rev = json_object_get(c, "revision");
	assert_int_equal(json_integer_value(json_object_get(rev, "number")), 1);
	assert_true(json_is_null(json_object_get(rev, "distribution")));
	assert_true(json_equal(json_object_get(rev, "config"), config));
	assert_true(json_is_null(json_object_get(c, "lb")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(c, "targets"), "total")), 0);
	json_decref(c);

	assert_int_not_equal(tn_store_cluster_create(f->store, "educa", NULL, NULL, NULL, NULL,
						     NULL, "ops", NULL, &err),
			     0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_not_equal(tn_store_cluster_create(f->store, "other", NULL, NULL, NULL, &nodist,
						     NULL, "ops", NULL, &err),
			     0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM clusters"), 1);

	ids[0] = put_target(f->store, "educa", NULL);
	ids[1] = put_target(f->store, "educa", "running");
	ids[2] = put_target(f->store, "educa", "running");
	ids[3] = put_target(f->store, "educa", "removed");
	ids[4] = put_target(f->store, "educa", "enrolled");
	assert_int_equal(strncmp(ids[0], "t-", 2), 0);
	assert_int_equal(strlen(ids[0]), 18);
	raw_exec(f->path, "UPDATE targets SET actual_release = 'educa@1.0.0+abc'"
			  " WHERE state IN ('running', 'removed')");

	assert_int_equal(tn_store_cluster_get(f->store, "educa", &c, &err), 0);
	counts = json_object_get(c, "targets");
	assert_int_equal(json_integer_value(json_object_get(counts, "total")), 4);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(counts, "by_state"), "running")), 2);
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(counts, "by_state"), "provisioning")),
			 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(counts, "by_state"), "draining")),
	    0);
	assert_null(json_object_get(json_object_get(counts, "by_state"), "removed"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(counts, "by_release"),
							    "educa@1.0.0+abc")),
			 2);
	json_decref(c);

	/* patch: only what is given changes */
	assert_int_equal(tn_store_cluster_patch(f->store, "educa", NULL, NULL, lb, &c, &err), 0);
	assert_true(json_equal(json_object_get(c, "lb"), lb));
	assert_string_equal(json_string_value(json_object_get(c, "description")),
			    "the school site");
	json_decref(c);
	assert_int_equal(tn_store_cluster_patch(f->store, "educa", "", "netns", NULL, &c, &err), 0);
	assert_string_equal(json_string_value(json_object_get(c, "description")), "");
	assert_string_equal(json_string_value(json_object_get(c, "provider")), "netns");
	assert_true(json_equal(json_object_get(c, "lb"), lb));
	json_decref(c);
	assert_int_not_equal(tn_store_cluster_patch(f->store, "nope", "x", NULL, NULL, NULL, &err),
			     0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	assert_int_equal(tn_store_cluster_list(f->store, 0, NULL, &c, &err), 0);
	assert_int_equal(json_array_size(json_object_get(c, "items")), 1);
	json_decref(c);
	assert_int_equal(tn_store_cluster_count(f->store, &n, &err), 0);
	assert_int_equal(n, 1);

	/* delete: refused while 4 targets are not removed */
	assert_int_not_equal(tn_store_cluster_delete(f->store, "educa", &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "4 targets"));
	raw_exec(f->path, "UPDATE targets SET state = 'removed'");
	assert_int_equal(tn_store_cluster_delete(f->store, "educa", &err), 0);
	assert_int_not_equal(tn_store_target_get(f->store, ids[3], &c, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM cluster_revisions"), 0);
	assert_int_not_equal(tn_store_cluster_get(f->store, "educa", &c, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	for (int i = 0; i < 5; i++)
		free(ids[i]);
	json_decref(lb);
	json_decref(config);
}

static void test_targets_list_get_counts(void **state)
{
	struct fixture *f = *state;
	struct tn_store_target_spec spec = {.id = "t-fixed",
					    .cluster = "a",
					    .provider = "local",
					    .address = "10.0.0.2",
					    .state = "enrolled"};
	struct tn_error err;
	json_t *t = NULL, *p = NULL;
	char *ids[6];
	const char *after;
	char *after_copy = NULL;

	put_cluster(f->store, "a", NULL);
	put_cluster(f->store, "b", NULL);
	spec.inventory = json_pack("{s:s, s:i}", "hostname", "n1", "cpus", 4);
	assert_int_equal(tn_store_target_create(f->store, &spec, &t, &err), 0);
	assert_string_equal(json_string_value(json_object_get(t, "id")), "t-fixed");
	assert_string_equal(json_string_value(json_object_get(t, "cluster")), "a");
	assert_string_equal(json_string_value(json_object_get(t, "phase")), "idle");
	assert_string_equal(json_string_value(json_object_get(t, "health")), "unknown");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(t, "desired"), "generation")), 0);
	assert_true(json_is_null(json_object_get(t, "last_result")));
	assert_true(json_equal(json_object_get(t, "inventory"), spec.inventory));
	assert_true(json_is_object(json_object_get(t, "config")));
	json_decref(t);
	assert_int_not_equal(tn_store_target_create(f->store, &spec, NULL, &err), 0);
	assert_int_equal(err.code, TN_E_EXISTS);
	json_decref(spec.inventory);
	spec.id = NULL;
	spec.inventory = NULL;
	spec.state = "sleeping";
	assert_int_not_equal(tn_store_target_create(f->store, &spec, NULL, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	spec.state = NULL;
	spec.cluster = "nope";
	assert_int_not_equal(tn_store_target_create(f->store, &spec, NULL, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	for (int i = 0; i < 6; i++)
		ids[i] = put_target(f->store, i % 2 ? "b" : "a", i < 3 ? "running" : NULL);

	/* creation order, filtered, in pages of 2 */
	assert_int_equal(tn_store_target_list(f->store, "a", NULL, 2, NULL, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 2);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(p, "items"), 0), "id")),
			    "t-fixed");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(p, "items"), 1), "id")),
			    ids[0]);
	after_copy = xstrdup(next_of(p));
	after = after_copy;
	json_decref(p);
	assert_int_equal(tn_store_target_list(f->store, "a", NULL, 2, after, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 2);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(p, "items"), 1), "id")),
			    ids[4]);
	assert_true(json_is_null(json_object_get(p, "next")));
	json_decref(p);
	free(after_copy);

	assert_int_equal(tn_store_target_list(f->store, NULL, "running", 0, NULL, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 3);
	json_decref(p);
	assert_int_equal(tn_store_target_list(f->store, "b", "running", 0, NULL, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 1);
	json_decref(p);

	assert_int_equal(tn_store_target_count_by_state(f->store, NULL, &p, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "running")), 3);
	assert_int_equal(json_integer_value(json_object_get(p, "provisioning")), 3);
	assert_int_equal(json_integer_value(json_object_get(p, "enrolled")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "failed")), 0);
	json_decref(p);
	assert_int_equal(tn_store_target_count_by_state(f->store, "b", &p, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "running")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "provisioning")), 2);
	json_decref(p);

	assert_int_equal(tn_store_target_get(f->store, ids[5], &t, &err), 0);
	assert_string_equal(json_string_value(json_object_get(t, "cluster")), "b");
	json_decref(t);
	for (int i = 0; i < 6; i++)
		free(ids[i]);
}

/* ---- tokens */

struct token_seen {
	int n;
	char names[8][32];
	char roles[8][16];
	bool expiry_seen;
};

static int collect_token(void *ctx, const char *name, const char *hash, const char *role,
			 const char *expires)
{
	struct token_seen *seen = ctx;

	assert_int_equal(strlen(hash), 64);
	if (seen->n < 8) {
		snprintf(seen->names[seen->n], sizeof seen->names[0], "%s", name);
		snprintf(seen->roles[seen->n], sizeof seen->roles[0], "%s", role);
	}
	if (expires)
		seen->expiry_seen = true;
	seen->n++;
	return 0;
}

static void test_api_tokens(void **state)
{
	struct fixture *f = *state;
	struct token_seen seen = {0};
	struct tn_error err;
	json_t *p = NULL, *item;
	char future[TN_STORE_TIME_LEN + 1];
	size_t i;

	tn_store_time_format(time(NULL) + 3600, future);
	assert_int_equal(
	    tn_store_api_token_create(f->store, "ci", sha('1'), "developer", future, "root", &err),
	    0);
	assert_int_equal(
	    tn_store_api_token_create(f->store, "admin", sha('2'), "admin", NULL, "root", &err), 0);
	assert_int_equal(tn_store_api_token_create(f->store, "old", sha('3'), "viewer",
						   "2001-01-01T00:00:00Z", "root", &err),
			 0);
	assert_int_not_equal(
	    tn_store_api_token_create(f->store, "ci", sha('4'), "viewer", NULL, "root", &err), 0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_not_equal(
	    tn_store_api_token_create(f->store, "x", sha('5'), "god", NULL, "root", &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_not_equal(
	    tn_store_api_token_create(f->store, "x", sha('5'), "viewer", "tomorrow", "root", &err),
	    0);
	assert_int_equal(err.code, TN_E_INVALID);

	assert_int_equal(tn_store_api_token_list(f->store, 0, NULL, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 3);
	json_array_foreach(json_object_get(p, "items"), i, item)
	{
		assert_null(json_object_get(item, "token_hash"));
		assert_true(json_is_null(json_object_get(item, "revoked_at")));
	}
	json_decref(p);
	assert_int_equal(tn_store_api_token_list(f->store, 1, NULL, &p, &err), 0);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(p, "items"), 0), "name")),
			    "admin");
	assert_non_null(next_of(p));
	json_decref(p);

	/* the expired one is not loaded */
	assert_int_equal(tn_store_api_token_each_active(f->store, collect_token, &seen, &err), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.names[0], "admin");
	assert_string_equal(seen.roles[1], "developer");
	assert_true(seen.expiry_seen);

	assert_int_equal(tn_store_api_token_revoke(f->store, "ci", &err), 0);
	assert_int_equal(tn_store_api_token_revoke(f->store, "ci", &err), 0);
	assert_int_not_equal(tn_store_api_token_revoke(f->store, "nope", &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	memset(&seen, 0, sizeof seen);
	assert_int_equal(tn_store_api_token_each_active(f->store, collect_token, &seen, &err), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(tn_store_api_token_list(f->store, 0, NULL, &p, &err), 0);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(p, "items"), 1), "name")),
			    "ci");
	assert_true(json_is_string(
	    json_object_get(json_array_get(json_object_get(p, "items"), 1), "revoked_at")));
	json_decref(p);

	/* a revoked name can be taken again (rotation) */
	assert_int_equal(
	    tn_store_api_token_create(f->store, "ci", sha('6'), "developer", NULL, "root", &err),
	    0);
	memset(&seen, 0, sizeof seen);
	assert_int_equal(tn_store_api_token_each_active(f->store, collect_token, &seen, &err), 0);
	assert_int_equal(seen.n, 2);
}

static void test_enrollment_tokens(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *t = NULL;

	assert_int_not_equal(tn_store_enrollment_token_create(f->store, sha('e'), "nope", 3,
							      "2030-01-01T00:00:00Z", "ops", &t,
							      &err),
			     0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	put_cluster(f->store, "educa", NULL);
	assert_int_equal(tn_store_enrollment_token_create(f->store, sha('e'), "educa", 3,
							  "2030-01-01T00:00:00Z", "ops", &t, &err),
			 0);
	assert_string_equal(json_string_value(json_object_get(t, "cluster")), "educa");
	assert_int_equal(json_integer_value(json_object_get(t, "uses")), 3);
	assert_string_equal(json_string_value(json_object_get(t, "expires")),
			    "2030-01-01T00:00:00Z");
	assert_null(json_object_get(t, "token"));
	json_decref(t);
	assert_int_not_equal(tn_store_enrollment_token_create(f->store, sha('e'), "educa", 1,
							      "2030-01-01T00:00:00Z", "ops", NULL,
							      &err),
			     0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_not_equal(tn_store_enrollment_token_create(f->store, sha('f'), "educa", 0,
							      "2030-01-01T00:00:00Z", "ops", NULL,
							      &err),
			     0);
	assert_int_equal(err.code, TN_E_INVALID);
	/* they go with their cluster */
	assert_int_equal(tn_store_cluster_delete(f->store, "educa", &err), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM enrollment_tokens"), 0);
}

/* ---- events */

static void test_events_append_list_pages(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *p = NULL, *e, *detail = json_pack("{s:s, s:i}", "version", "1.0.0", "size", 42);
	int64_t id = 0, last = -1;
	char *after = NULL;

	assert_int_equal(tn_store_event_last_id(f->store, &last, &err), 0);
	assert_int_equal(last, 0);
	for (int i = 0; i < 5; i++) {
		int64_t prev = id;

		assert_int_equal(tn_store_event_append(f->store, "dev", "bundle.upload", "bundle",
						       "org.a", "ok", i == 0 ? detail : NULL, &id,
						       &err),
				 0);
		assert_true(id > prev);
	}
	assert_int_equal(tn_store_event_last_id(f->store, &last, &err), 0);
	assert_int_equal(last, id);

	assert_int_equal(tn_store_event_list(f->store, NULL, 2, &p, &err), 0);
	e = json_array_get(json_object_get(p, "items"), 0);
	assert_int_equal(json_integer_value(json_object_get(e, "id")), 1);
	assert_string_equal(json_string_value(json_object_get(e, "actor")), "dev");
	assert_string_equal(json_string_value(json_object_get(e, "action")), "bundle.upload");
	assert_string_equal(json_string_value(json_object_get(e, "object_type")), "bundle");
	assert_string_equal(json_string_value(json_object_get(e, "object_id")), "org.a");
	assert_string_equal(json_string_value(json_object_get(e, "outcome")), "ok");
	assert_true(json_equal(json_object_get(e, "detail"), detail));
	assert_string_equal(next_of(p), "2");
	json_decref(p);

	assert_int_equal(tn_store_event_list(f->store, "2", 2, &p, &err), 0);
	assert_int_equal(json_integer_value(
			     json_object_get(json_array_get(json_object_get(p, "items"), 0), "id")),
			 3);
	assert_true(json_is_null(
	    json_object_get(json_array_get(json_object_get(p, "items"), 1), "detail")));
	after = xstrdup(next_of(p));
	json_decref(p);
	assert_int_equal(tn_store_event_list(f->store, after, 2, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 1);
	assert_true(json_is_null(json_object_get(p, "next")));
	json_decref(p);
	free(after);

	assert_int_equal(tn_store_event_list(f->store, "5", 0, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 0);
	json_decref(p);
	assert_int_not_equal(tn_store_event_list(f->store, "-1", 0, &p, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_not_equal(tn_store_event_list(f->store, "", 0, &p, &err), 0);
	json_decref(detail);
}

/* ---- backup */

static void test_backup_copy_has_every_row(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref refs[] = {{"org.a", ver(1, 0, 0, NULL)}};
	struct tn_store_version dv = ver(1, 0, 0, NULL);
	struct tn_store *copy = NULL;
	struct tn_error err;
	char *dest = xasprintf("%s/backup.db", f->dir);
	char *wal = xasprintf("%s-wal", dest);
	json_t *d = NULL;
	int64_t n = 0;
	char *tid;

	put_bundle(f->store, "org.a", refs[0].version, 'a');
	put_dist(f->store, "educa", dv, refs, 1);
	{
		struct tn_store_bundle_ref dist = {"educa", dv};

		put_cluster(f->store, "prod", &dist);
	}
	tid = put_target(f->store, "prod", "running");
	for (int i = 0; i < 50; i++)
		assert_int_equal(
		    tn_store_event_append(f->store, "x", "y", NULL, NULL, NULL, NULL, NULL, &err),
		    0);

	assert_int_equal(tn_store_backup(f->store, dest, &err), 0);
	/* a backup over an earlier one is fine too */
	assert_int_equal(tn_store_backup(f->store, dest, &err), 0);
	assert_int_equal(access(wal, F_OK), -1);

	assert_int_equal(tn_store_open(dest, &copy, &err), 0);
	assert_int_equal(tn_store_bundle_count(copy, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tn_store_distribution_get(copy, "educa", &dv, &d, &err), 0);
	assert_int_equal(json_array_size(json_object_get(d, "bundles")), 1);
	json_decref(d);
	assert_int_equal(tn_store_cluster_get(copy, "prod", &d, &err), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(d, "revision"), "distribution")),
	    "educa@1.0.0");
	json_decref(d);
	assert_int_equal(tn_store_target_get(copy, tid, &d, &err), 0);
	json_decref(d);
	assert_int_equal(tn_store_event_last_id(copy, &n, &err), 0);
	assert_int_equal(n, 50);
	/* the copy is open in WAL now: a backup onto it is refused */
	assert_int_not_equal(tn_store_backup(f->store, dest, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	tn_store_close(copy);

	/* no temporary file left behind */
	assert_int_equal(raw_int(f->path, "SELECT 1"), 1);
	{
		char *cmd = xasprintf("ls %s | grep -c tmp-", f->dir);
		FILE *ls = popen(cmd, "r");
		int found = -1;

		assert_non_null(ls);
		assert_int_equal(fscanf(ls, "%d", &found), 1);
		pclose(ls);
		assert_int_equal(found, 0);
		free(cmd);
	}
	free(tid);
	free(wal);
	free(dest);
}

/* ---- threads */

#define WRITERS 4
#define EVENTS_PER_WRITER 100

struct writer {
	struct tn_store *store;
	int failures;
	char first_error[TN_ERROR_MESSAGE_MAX];
};

static void *write_events(void *arg)
{
	struct writer *w = arg;
	struct tn_error err;
	json_t *p = NULL;

	for (int i = 0; i < EVENTS_PER_WRITER; i++) {
		json_t *detail = json_pack("{s:i}", "i", i);

		if (tn_store_event_append(w->store, "thread", "test.write", NULL, NULL, "ok",
					  detail, NULL, &err) != 0) {
			if (!w->failures++)
				memcpy(w->first_error, err.message, sizeof w->first_error);
		}
		json_decref(detail);
		/* readers interleaved with the writes, on the same connection */
		if (i % 10 == 0) {
			if (tn_store_event_list(w->store, NULL, 5, &p, &err) != 0)
				w->failures++;
			json_decref(p);
			p = NULL;
		}
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct writer w[WRITERS];
	pthread_t threads[WRITERS];
	struct tn_error err;
	int64_t last = 0;

	for (int i = 0; i < WRITERS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].store = f->store;
		assert_int_equal(pthread_create(&threads[i], NULL, write_events, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		if (w[i].failures)
			fail_msg("writer %d: %d failures, first: %s", i, w[i].failures,
				 w[i].first_error);
	}
	assert_int_equal(tn_store_event_last_id(f->store, &last, &err), 0);
	assert_int_equal(last, WRITERS * EVENTS_PER_WRITER);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"),
			 WRITERS * EVENTS_PER_WRITER);
}

/* A thread that used the store is still alive when the store is closed:
 * close takes its connection, and the thread's exit must not touch it. */
struct lingerer {
	struct tn_store *store;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stage; /* 1: used the store; 2: store closed, may exit */
	int rc;
};

static void *linger(void *arg)
{
	struct lingerer *l = arg;
	int64_t n = 0;

	l->rc = tn_store_bundle_count(l->store, &n, NULL);
	pthread_mutex_lock(&l->lock);
	l->stage = 1;
	pthread_cond_broadcast(&l->cond);
	while (l->stage < 2)
		pthread_cond_wait(&l->cond, &l->lock);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void test_close_while_a_user_thread_lives(void **state)
{
	struct fixture *f = *state;
	struct lingerer l = {.store = f->store, .rc = -1};
	pthread_t thread;

	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	assert_int_equal(pthread_create(&thread, NULL, linger, &l), 0);
	pthread_mutex_lock(&l.lock);
	while (l.stage < 1)
		pthread_cond_wait(&l.cond, &l.lock);
	pthread_mutex_unlock(&l.lock);

	tn_store_close(f->store);
	f->store = NULL;

	pthread_mutex_lock(&l.lock);
	l.stage = 2;
	pthread_cond_broadcast(&l.cond);
	pthread_mutex_unlock(&l.lock);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(l.rc, 0);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
}

static void test_time_format(void **state)
{
	char buf[TN_STORE_TIME_LEN + 1];

	tn_store_time_format(1795424400, buf); /* 2026-11-23T09:00:00Z */
	assert_string_equal(buf, "2026-11-23T09:00:00Z");
	tn_store_now(buf);
	assert_int_equal(strlen(buf), TN_STORE_TIME_LEN);
	assert_int_equal(buf[TN_STORE_TIME_LEN - 1], 'Z');
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_format),
	    T(test_migrations_on_fresh_file),
	    T(test_reopen_keeps_data),
	    T(test_newer_schema_refused),
	    T(test_bundle_insert_same_bytes_conflict_get),
	    T(test_bundle_list_osgi_order_and_pages),
	    T(test_bundle_delete_refused_while_used),
	    T(test_distribution_insert_is_one_transaction),
	    T(test_distribution_delete_refused_while_used),
	    T(test_cluster_create_get_patch_delete),
	    T(test_targets_list_get_counts),
	    T(test_api_tokens),
	    T(test_enrollment_tokens),
	    T(test_events_append_list_pages),
	    T(test_backup_copy_has_every_row),
	    T(test_concurrent_writers),
	    T(test_close_while_a_user_thread_lives),
	};
#undef T

	/* jansson's hash seed, before any thread (STYLE: jansson). */
	json_object_seed(0);
	tn_log_set_level(TN_LOG_WARN);
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
