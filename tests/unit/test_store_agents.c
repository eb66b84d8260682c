/* test_store_agents.c - the store's agent and rollout side on real files:
 * migration 2 over a version 1 file, enrollment tokens redeemed, agent
 * tokens, desired documents under their generation check, agent reports,
 * minimal rollouts, and transactions grouped by callers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "harness.h"
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

	f->dir = xstrdup("/tmp/tn-store-agents-XXXXXX");
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

/* ---- raw SQLite access, to look under the API */

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

static struct tn_store_version ver(uint32_t major, uint32_t minor, uint32_t micro)
{
	struct tn_store_version v = {major, minor, micro, NULL};

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

static char *future(void)
{
	char buf[TN_STORE_TIME_LEN + 1];

	tn_store_time_format(time(NULL) + 3600, buf);
	return xstrdup(buf);
}

/* educa@1.0.0 and educa@1.1.0, each of bundle org.a. */
static void put_dists(struct tn_store *store)
{
	struct tn_store_bundle_ref refs[] = {{"org.a", ver(1, 0, 0)}};
	struct tn_store_version v10 = ver(1, 0, 0), v11 = ver(1, 1, 0);
	enum tn_store_outcome outcome = 0;
	struct tn_error err;
	json_t *manifest = json_pack("{s:s}", "name", "org.a");

	if (tn_store_bundle_insert(store, "org.a", &refs[0].version, sha('a'), 1000, manifest,
				   "dev", &outcome, &err) ||
	    tn_store_distribution_insert(store, "educa", &v10, NULL, refs, 1, "dev", &outcome,
					 &err) ||
	    tn_store_distribution_insert(store, "educa", &v11, NULL, refs, 1, "dev", &outcome,
					 &err))
		fail_msg("distributions: %s", err.message);
	json_decref(manifest);
}

static void put_cluster(struct tn_store *store, const char *name,
			const struct tn_store_bundle_ref *dist, json_t *lb)
{
	struct tn_error err;

	if (tn_store_cluster_create(store, name, NULL, "local", lb, dist, NULL, "ops", NULL, &err))
		fail_msg("cluster create: %s", err.message);
}

static char *put_target(struct tn_store *store, const char *cluster, const char *state,
			const char *address)
{
	struct tn_store_target_spec spec = {
	    .cluster = cluster, .provider = "local", .state = state, .address = address};
	struct tn_error err;
	json_t *t = NULL;
	char *id;

	if (tn_store_target_create(store, &spec, &t, &err))
		fail_msg("target create: %s", err.message);
	id = xstrdup(th_str(t, "id"));
	json_decref(t);
	return id;
}

static json_t *get_target(struct tn_store *store, const char *id)
{
	struct tn_error err;
	json_t *t = NULL;

	if (tn_store_target_get(store, id, &t, &err))
		fail_msg("target get %s: %s", id, err.message);
	return t;
}

static int64_t revision_number(struct tn_store *store, const char *cluster, const char **dist)
{
	static char dist_buf[64];
	struct tn_error err;
	json_t *c = NULL, *rev;
	int64_t n;

	if (tn_store_cluster_get(store, cluster, &c, &err))
		fail_msg("cluster get: %s", err.message);
	rev = json_object_get(c, "revision");
	n = json_integer_value(json_object_get(rev, "number"));
	snprintf(dist_buf, sizeof dist_buf, "%s",
		 json_is_string(json_object_get(rev, "distribution")) ? th_str(rev, "distribution")
								      : "null");
	if (dist)
		*dist = dist_buf;
	json_decref(c);
	return n;
}

/* ---- schema */

/* A version 1 file (migrations 2 to 5 undone underneath, as an older
 * tender-server left it) with data in it: opening it migrates to the latest
 * version and keeps the rows. */
static void test_migration_1_to_2_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *t;
	char *id;

	assert_int_equal(tn_store_schema_version(), 5);
	put_cluster(f->store, "educa", NULL, NULL);
	id = put_target(f->store, "educa", "running", "10.0.0.9");
	assert_int_equal(tn_store_event_append(f->store, "admin", "cluster.create", "cluster",
					       "educa", "ok", NULL, NULL, &err),
			 0);
	tn_store_close(f->store);
	f->store = NULL;
	raw_exec(f->path, "DROP TABLE webhook_scan;"
			  "DROP TABLE webhook_attempts;"
			  "DROP TABLE webhook_deliveries;"
			  "ALTER TABLE webhooks DROP COLUMN since_event;"
			  "ALTER TABLE webhooks DROP COLUMN delivered;"
			  "ALTER TABLE webhooks DROP COLUMN failed;"
			  "DROP INDEX rollouts_one_active;"
			  "DROP INDEX rollouts_cluster_seq;"
			  "ALTER TABLE targets DROP COLUMN run_release;"
			  "ALTER TABLE targets DROP COLUMN prepare_release;"
			  "ALTER TABLE targets DROP COLUMN doc_body;"
			  "ALTER TABLE targets DROP COLUMN doc_sig;"
			  "ALTER TABLE targets DROP COLUMN doc_etag;"
			  "ALTER TABLE targets DROP COLUMN bundles;"
			  "ALTER TABLE targets DROP COLUMN logs;"
			  "ALTER TABLE targets DROP COLUMN agent_port;"
			  "ALTER TABLE targets DROP COLUMN serves_port;"
			  "ALTER TABLE rollout_targets DROP COLUMN from_release;"
			  "ALTER TABLE rollout_targets DROP COLUMN to_release;"
			  "ALTER TABLE rollout_targets DROP COLUMN switched_at;"
			  "ALTER TABLE rollout_targets DROP COLUMN finished_at;"
			  "ALTER TABLE rollout_targets DROP COLUMN prepared;"
			  "PRAGMA user_version = 1;");
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_table_info('targets')"), 20);

	assert_int_equal(tn_store_open(f->path, &f->store, &err), 0);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 5);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_table_info('webhooks')"), 9);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
					  " AND name IN ('webhook_deliveries', 'webhook_attempts',"
					  " 'webhook_scan')"),
			 3);
	/* the scan starts after the events already there: no old event is
	 * delivered to a webhook made later */
	assert_int_equal(raw_int(f->path, "SELECT last_event FROM webhook_scan"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_table_info('targets')"), 29);
	assert_int_equal(
	    raw_int(f->path, "SELECT count(*) FROM pragma_table_info('rollout_targets')"), 10);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
					  " AND name IN ('rollouts_one_active',"
					  " 'rollouts_cluster_seq')"),
			 2);
	t = get_target(f->store, id);
	assert_string_equal(th_str(t, "state"), "running");
	assert_string_equal(th_str(t, "address"), "10.0.0.9");
	assert_string_equal(th_str(t, "cluster"), "educa");
	assert_true(json_is_null(json_object_get(t, "bundles")));
	assert_true(json_is_null(json_object_get(t, "agent_port")));
	assert_true(json_is_null(json_object_get(t, "serves_port")));
	assert_true(json_is_null(json_object_get(json_object_get(t, "desired"), "release")));
	json_decref(t);
	free(id);
}

/* ---- enrollment and agent tokens */

static void test_enroll_with_cluster_token(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *inv = json_pack("{s:s, s:i}", "hostname", "n1", "cpus", 2), *t;
	char *exp = future(), *id1 = NULL, *id2 = NULL, *id3 = NULL, *found = NULL;

	put_cluster(f->store, "educa", NULL, NULL);
	assert_int_equal(tn_store_enrollment_token_create(f->store, sha('e'), "educa", 2, exp,
							  "ops", NULL, &err),
			 0);
	assert_int_equal(
	    tn_store_enroll(f->store, sha('e'), sha('1'), inv, "10.0.0.5", 7001, &id1, &err), 0);
	assert_int_equal(strncmp(id1, "t-", 2), 0);
	t = get_target(f->store, id1);
	assert_string_equal(th_str(t, "cluster"), "educa");
	assert_string_equal(th_str(t, "provider"), "manual");
	assert_string_equal(th_str(t, "state"), "enrolled");
	assert_string_equal(th_str(t, "address"), "10.0.0.5");
	assert_int_equal(json_integer_value(json_object_get(t, "agent_port")), 7001);
	assert_true(json_equal(json_object_get(t, "inventory"), inv));
	assert_true(json_is_string(json_object_get(t, "last_seen")));
	json_decref(t);
	assert_int_equal(raw_int(f->path, "SELECT uses_left FROM enrollment_tokens"), 1);

	/* the agent token finds it */
	assert_int_equal(tn_store_target_by_token(f->store, sha('1'), &found, &err), 0);
	assert_string_equal(found, id1);
	free(found);
	found = NULL;

	/* an agent token is one target's: taken → exists, and the use is not spent */
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('e'), sha('1'), NULL, NULL, 0, &id2, &err), 0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_equal(raw_int(f->path, "SELECT uses_left FROM enrollment_tokens"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM targets"), 1);

	/* the second use makes a second target */
	assert_int_equal(tn_store_enroll(f->store, sha('e'), sha('2'), NULL, NULL, 0, &id2, &err),
			 0);
	assert_string_not_equal(id1, id2);
	t = get_target(f->store, id2);
	assert_true(json_is_null(json_object_get(t, "agent_port")));
	assert_true(json_is_null(json_object_get(t, "address")));
	json_decref(t);
	assert_int_equal(raw_int(f->path, "SELECT uses_left FROM enrollment_tokens"), 0);

	/* used up, expired, unknown: 401s, nothing written */
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('e'), sha('3'), NULL, NULL, 0, &id3, &err), 0);
	assert_int_equal(err.code, TN_E_UNAUTHORIZED);
	assert_string_equal(err.message, "enrollment token used up");
	assert_int_equal(tn_store_enrollment_token_create(f->store, sha('c'), "educa", 5,
							  "2001-01-01T00:00:00Z", "ops", NULL,
							  &err),
			 0);
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('c'), sha('3'), NULL, NULL, 0, &id3, &err), 0);
	assert_int_equal(err.code, TN_E_UNAUTHORIZED);
	assert_string_equal(err.message, "enrollment token expired at 2001-01-01T00:00:00Z");
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('x'), sha('3'), NULL, NULL, 0, &id3, &err), 0);
	assert_int_equal(err.code, TN_E_UNAUTHORIZED);
	assert_string_equal(err.message, "unknown enrollment token");
	assert_null(id3);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM targets"), 2);
	assert_int_equal(raw_int(f->path, "SELECT uses_left FROM enrollment_tokens"
					  " WHERE expires < '2002'"),
			 5);

	/* bad arguments */
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('e'), "nothex", NULL, NULL, 0, &id3, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('e'), sha('4'), NULL, NULL, 70000, &id3, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);

	/* revoked: the token no longer finds it */
	assert_int_equal(tn_store_target_revoke(f->store, id1, &err), 0);
	assert_int_not_equal(tn_store_target_by_token(f->store, sha('1'), &found, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_null(found);
	assert_int_not_equal(tn_store_target_revoke(f->store, "t-nope", &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_equal(tn_store_target_by_token(f->store, sha('2'), &found, &err), 0);
	assert_string_equal(found, id2);
	free(found);

	json_decref(inv);
	free(exp);
	free(id1);
	free(id2);
}

static void test_enroll_with_bound_token(void **state)
{
	struct fixture *f = *state;
	struct tn_store_target_update removed = {.state = "removed"};
	struct tn_error err;
	char *exp = future(), *id = NULL, *gone, *t1, *found = NULL;
	json_t *t;

	put_cluster(f->store, "educa", NULL, NULL);
	put_cluster(f->store, "other", NULL, NULL);
	t1 = put_target(f->store, "educa", NULL, "10.1.1.1");
	gone = put_target(f->store, "educa", "removed", NULL);
	assert_int_equal(
	    tn_store_target_enrollment_token_create(f->store, t1, sha('b'), exp, "local", &err), 0);
	assert_int_equal(
	    tn_store_target_enrollment_token_create(f->store, gone, sha('d'), exp, "local", &err),
	    0);
	assert_int_not_equal(tn_store_target_enrollment_token_create(f->store, "t-nope", sha('9'),
								     exp, "local", &err),
			     0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(
	    tn_store_target_enrollment_token_create(f->store, t1, sha('b'), exp, "local", &err), 0);
	assert_int_equal(err.code, TN_E_EXISTS);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM enrollment_tokens"
					  " WHERE target_id IS NOT NULL AND uses_left = 1"),
			 2);

	/* that target, not a new one; what the provider knew is kept */
	assert_int_equal(tn_store_enroll(f->store, sha('b'), sha('1'), NULL, NULL, 0, &id, &err),
			 0);
	assert_string_equal(id, t1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM targets"), 2);
	t = get_target(f->store, t1);
	assert_string_equal(th_str(t, "state"), "enrolled");
	assert_string_equal(th_str(t, "address"), "10.1.1.1");
	assert_string_equal(th_str(t, "provider"), "local"); /* not "manual" */
	json_decref(t);
	free(id);
	id = NULL;
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('b'), sha('2'), NULL, NULL, 0, &id, &err), 0);
	assert_int_equal(err.code, TN_E_UNAUTHORIZED);

	/* a removed target cannot come back with its token */
	assert_int_not_equal(
	    tn_store_enroll(f->store, sha('d'), sha('3'), NULL, NULL, 0, &id, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, gone));
	assert_non_null(strstr(err.message, "removed"));
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM enrollment_tokens"
					  " WHERE uses_left = 1"),
			 1);

	/* nor does a removed target's agent token find it */
	assert_int_equal(tn_store_target_update(f->store, t1, &removed, &err), 0);
	assert_int_not_equal(tn_store_target_by_token(f->store, sha('1'), &found, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	free(exp);
	free(t1);
	free(gone);
}

/* ---- desired documents */

static void test_doc_get_put_generation(void **state)
{
	struct fixture *f = *state;
	struct tn_store_doc doc;
	struct tn_error err;
	json_t *lb = json_pack("{s:s, s:s, s:s}", "driver", "haproxy", "admin", "127.0.0.1:9999",
			       "backend", "educa");
	json_t *run = json_pack("{s:s, s:s, s:s, s:[], s:{}}", "id", "educa@1.0.0+abcdefabcdef",
				"distribution", "educa", "version", "1.0.0", "bundles", "config");
	json_t *prep = json_pack("{s:s}", "id", "educa@1.1.0+abcdefabcdef");
	json_t *noid = json_pack("{s:s}", "distribution", "educa"), *t;
	char *id;

	put_cluster(f->store, "educa", NULL, lb);
	id = put_target(f->store, "educa", "enrolled", NULL);

	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_string_equal(doc.cluster, "educa");
	assert_string_equal(doc.state, "enrolled");
	assert_int_equal(doc.generation, 0);
	assert_null(doc.run);
	assert_null(doc.prepare);
	assert_true(json_is_object(doc.config));
	assert_int_equal(json_object_size(doc.config), 0);
	assert_true(json_equal(doc.lb, lb));
	assert_null(doc.body);
	assert_null(doc.signature);
	assert_null(doc.etag);
	tn_store_doc_clear(&doc);
	assert_null(doc.cluster);
	tn_store_doc_clear(NULL);

	/* read and write in one transaction, as the server does */
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_int_equal(tn_store_doc_put(f->store, id, doc.generation, run, prep, "running",
					  "{\"generation\":1}", "c2lnMQ==", sha('1'), &err),
			 0);
	tn_store_doc_clear(&doc);
	assert_int_equal(tn_store_commit(f->store, &err), 0);

	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_int_equal(doc.generation, 1);
	assert_string_equal(doc.state, "running");
	assert_true(json_equal(doc.run, run));
	assert_true(json_equal(doc.prepare, prep));
	assert_string_equal(doc.body, "{\"generation\":1}");
	assert_string_equal(doc.signature, "c2lnMQ==");
	assert_string_equal(doc.etag, sha('1'));
	tn_store_doc_clear(&doc);
	t = get_target(f->store, id);
	assert_string_equal(th_str(json_object_get(t, "desired"), "release"),
			    "educa@1.0.0+abcdefabcdef");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(t, "desired"), "generation")), 1);
	assert_string_equal(th_str(t, "state"), "running");
	json_decref(t);

	/* a stale generation: conflict, nothing written */
	assert_int_not_equal(
	    tn_store_doc_put(f->store, id, 0, NULL, NULL, "draining", "{}", "x", sha('2'), &err),
	    0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, "generation 1"));
	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_int_equal(doc.generation, 1);
	assert_string_equal(doc.state, "running");
	assert_string_equal(doc.body, "{\"generation\":1}");
	assert_non_null(doc.run);

	/* no run: desired.release null; state NULL keeps it */
	assert_int_equal(tn_store_doc_put(f->store, id, doc.generation, NULL, NULL, NULL, "{}", "y",
					  sha('3'), &err),
			 0);
	tn_store_doc_clear(&doc);
	t = get_target(f->store, id);
	assert_true(json_is_null(json_object_get(json_object_get(t, "desired"), "release")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(t, "desired"), "generation")), 2);
	assert_string_equal(th_str(t, "state"), "running");
	json_decref(t);

	/* refusals */
	assert_int_not_equal(
	    tn_store_doc_put(f->store, id, 2, noid, NULL, NULL, "{}", "z", sha('4'), &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_not_equal(
	    tn_store_doc_put(f->store, id, 2, NULL, NULL, "asleep", "{}", "z", sha('4'), &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_not_equal(
	    tn_store_doc_put(f->store, "t-nope", 0, NULL, NULL, NULL, "{}", "z", sha('4'), &err),
	    0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_doc_get(f->store, "t-nope", &doc, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_null(doc.cluster);

	json_decref(lb);
	json_decref(run);
	json_decref(prep);
	json_decref(noid);
	free(id);
}

/* ---- agent reports */

static void test_target_update_and_logs(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	json_t *bundles =
	    json_pack("[{s:s, s:s, s:i}]", "name", "org.a", "state", "ACTIVE", "restarts", 0);
	json_t *logs1 = json_pack("{s:s, s:s}", "org.a", "a1\n", "org.b", "b1\n");
	json_t *logs2 = json_pack("{s:s, s:s}", "org.a", "a2\n", "org.c", "c2\n");
	json_t *bad_logs = json_pack("{s:i}", "org.a", 1);
	json_t *t, *logs = NULL, *want;
	struct tn_store_target_update u = {.state = "running",
					   .phase = "switching",
					   .health = "healthy",
					   .actual_release = "educa@1.0.0+abcdefabcdef",
					   .last_result = "failed",
					   .last_message = "probe /healthz: 500",
					   .bundles = bundles,
					   .logs = logs1,
					   .seen = true};
	struct tn_store_target_update only_logs = {.logs = logs2};
	char *id;

	put_cluster(f->store, "educa", NULL, NULL);
	id = put_target(f->store, "educa", "enrolled", NULL);
	assert_int_equal(tn_store_target_logs(f->store, id, &logs, &err), 0);
	assert_true(json_is_object(logs));
	assert_int_equal(json_object_size(logs), 0);
	json_decref(logs);
	t = get_target(f->store, id);
	assert_true(json_is_null(json_object_get(t, "last_seen")));
	json_decref(t);

	assert_int_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	t = get_target(f->store, id);
	assert_string_equal(th_str(t, "state"), "running");
	assert_string_equal(th_str(t, "phase"), "switching");
	assert_string_equal(th_str(t, "health"), "healthy");
	assert_string_equal(th_str(t, "actual"), "educa@1.0.0+abcdefabcdef");
	assert_string_equal(th_str(json_object_get(t, "last_result"), "result"), "failed");
	assert_string_equal(th_str(json_object_get(t, "last_result"), "message"),
			    "probe /healthz: 500");
	assert_true(json_equal(json_object_get(t, "bundles"), bundles));
	assert_true(json_is_string(json_object_get(t, "last_seen")));
	assert_null(json_object_get(t, "logs")); /* logs have their own call */
	json_decref(t);

	/* only the logs: merged, the rest unchanged */
	assert_int_equal(tn_store_target_update(f->store, id, &only_logs, &err), 0);
	assert_int_equal(tn_store_target_logs(f->store, id, &logs, &err), 0);
	want = json_pack("{s:s, s:s, s:s}", "org.a", "a2\n", "org.b", "b1\n", "org.c", "c2\n");
	assert_true(json_equal(logs, want));
	json_decref(want);
	json_decref(logs);
	t = get_target(f->store, id);
	assert_string_equal(th_str(t, "phase"), "switching");
	assert_string_equal(th_str(t, "state"), "running");
	assert_true(json_equal(json_object_get(t, "bundles"), bundles));
	json_decref(t);

	/* refusals change nothing */
	u = (struct tn_store_target_update){.phase = "dozing"};
	assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	u = (struct tn_store_target_update){.phase = "idle", .health = "great"};
	assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	u = (struct tn_store_target_update){.last_result = "meh"};
	assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	u = (struct tn_store_target_update){.bundles = logs1};
	assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	u = (struct tn_store_target_update){.logs = bad_logs};
	assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	t = get_target(f->store, id);
	assert_string_equal(th_str(t, "phase"), "switching");
	json_decref(t);

	u = (struct tn_store_target_update){.seen = true};
	assert_int_not_equal(tn_store_target_update(f->store, "t-nope", &u, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_target_update(f->store, "t-nope", &only_logs, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_target_logs(f->store, "t-nope", &logs, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	/* last_seen noted by polls, stored in one batch; an unknown id is
	 * skipped */
	{
		const char *ids[] = {id, "t-nope"};
		const char *times[] = {"2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"};

		assert_int_equal(tn_store_targets_seen(f->store, ids, times, 2, &err), 0);
		t = get_target(f->store, id);
		assert_string_equal(th_str(t, "last_seen"), "2026-01-02T03:04:05Z");
		assert_string_equal(th_str(t, "phase"), "switching");
		json_decref(t);
	}

	/* what the server sets: instance, address, target-level config */
	{
		json_t *config = json_pack("{s:{s:s}}", "web", "greeting", "hi");

		u = (struct tn_store_target_update){
		    .instance = "t-x:20000", .address = "127.0.0.1", .config = config};
		assert_int_equal(tn_store_target_update(f->store, id, &u, &err), 0);
		t = get_target(f->store, id);
		assert_string_equal(th_str(t, "instance"), "t-x:20000");
		assert_string_equal(th_str(t, "address"), "127.0.0.1");
		assert_true(json_equal(json_object_get(t, "config"), config));
		assert_string_equal(th_str(t, "phase"), "switching"); /* the rest kept */
		json_decref(t);
		json_decref(config);
		config = json_array();
		u = (struct tn_store_target_update){.config = config};
		assert_int_not_equal(tn_store_target_update(f->store, id, &u, &err), 0);
		assert_int_equal(err.code, TN_E_INVALID);
		json_decref(config);
	}

	json_decref(bundles);
	json_decref(logs1);
	json_decref(logs2);
	json_decref(bad_logs);
	free(id);
}

static void test_cluster_target_ids(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	char *a, *b, *c, **ids = NULL;
	size_t n = 99;

	put_cluster(f->store, "educa", NULL, NULL);
	put_cluster(f->store, "empty", NULL, NULL);
	a = put_target(f->store, "educa", "running", NULL);
	b = put_target(f->store, "educa", "removed", NULL);
	c = put_target(f->store, "educa", NULL, NULL);

	assert_int_equal(tn_store_cluster_target_ids(f->store, "educa", &ids, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], a);
	assert_string_equal(ids[1], c);
	assert_null(ids[2]);
	tn_store_free_ids(ids);
	ids = NULL;

	assert_int_equal(tn_store_cluster_target_ids(f->store, "empty", &ids, NULL, &err), 0);
	assert_null(ids[0]);
	tn_store_free_ids(ids);
	ids = NULL;
	assert_int_not_equal(tn_store_cluster_target_ids(f->store, "nope", &ids, &n, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_null(ids);
	tn_store_free_ids(NULL);
	free(a);
	free(b);
	free(c);
}

/* ---- rollouts */

/* [{id, from_release, to_release}] for each id (NULL-terminated). */
static json_t *rollout_targets(const char *from, const char *to, ...)
{
	json_t *list = json_array();
	va_list ap;
	const char *id;

	va_start(ap, to);
	while ((id = va_arg(ap, const char *)))
		json_array_append_new(list,
				      json_pack("{s:s, s:o, s:{s:s}}", "id", id, "from_release",
						from ? json_pack("{s:s}", "id", from) : json_null(),
						"to_release", "id", to));
	va_end(ap);
	return list;
}

static void test_rollout_create_get_approve(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref d10 = {"educa", ver(1, 0, 0)}, d11 = {"educa", ver(1, 1, 0)};
	struct tn_store_bundle_ref nodist = {"educa", ver(9, 0, 0)};
	struct tn_store_target_update removed = {.state = "removed"};
	struct tn_error err;
	json_t *strategy = json_pack("{s:i}", "batch_size", 1);
	json_t *config = json_pack("{s:{s:s}}", "org.a", "greeting", "hi");
	json_t *targets, *r = NULL, *batch, *bt, *ft = NULL;
	const char *dist = NULL;
	char *t1, *t2, *stranger, *id = NULL, *id2 = NULL;
	int64_t revisions;

	put_dists(f->store);
	put_cluster(f->store, "prod", &d10, NULL);
	put_cluster(f->store, "other", NULL, NULL);
	t1 = put_target(f->store, "prod", "running", NULL);
	t2 = put_target(f->store, "prod", "running", NULL);
	stranger = put_target(f->store, "other", NULL, NULL);
	assert_int_equal(revision_number(f->store, "prod", NULL), 1);

	targets = rollout_targets("educa@1.0.0+aaa", "educa@1.1.0+bbb", t1, t2, NULL);
	json_object_set_new(json_array_get(targets, 1), "from_release", json_null());
	assert_int_equal(tn_store_rollout_create(f->store, "prod", &d11, config, strategy, targets,
						 "ops", &id, &err),
			 0);
	json_decref(targets);
	assert_int_equal(strncmp(id, "r-", 2), 0);

	assert_int_equal(tn_store_rollout_get(f->store, id, &r, &err), 0);
	assert_string_equal(th_str(r, "id"), id);
	assert_string_equal(th_str(r, "cluster"), "prod");
	assert_string_equal(th_str(r, "from"), "educa@1.0.0");
	assert_string_equal(th_str(r, "to"), "educa@1.1.0");
	assert_int_equal(json_integer_value(json_object_get(r, "from_revision")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "to_revision")), 2);
	assert_string_equal(th_str(r, "state"), "pending_approval");
	assert_true(json_equal(json_object_get(r, "strategy"), strategy));
	assert_string_equal(th_str(r, "created_by"), "ops");
	assert_true(json_is_string(json_object_get(r, "created")));
	assert_true(json_is_string(json_object_get(r, "updated")));
	assert_int_equal(json_array_size(json_object_get(r, "approvals")), 0);
	assert_int_equal(json_array_size(json_object_get(r, "batches")), 1);
	batch = json_array_get(json_object_get(r, "batches"), 0);
	assert_int_equal(json_integer_value(json_object_get(batch, "index")), 0);
	assert_string_equal(th_str(batch, "state"), "pending"); /* none has begun */
	assert_int_equal(json_integer_value(json_object_get(r, "prepared")), 0);
	assert_int_equal(json_array_size(json_object_get(batch, "targets")), 2);
	bt = json_array_get(json_object_get(batch, "targets"), 0);
	assert_string_equal(th_str(bt, "id"), t1);
	assert_string_equal(th_str(bt, "state"), "pending");
	assert_true(json_is_null(json_object_get(bt, "message")));
	assert_string_equal(th_str(json_object_get(bt, "from_release"), "id"), "educa@1.0.0+aaa");
	assert_string_equal(th_str(json_object_get(bt, "to_release"), "id"), "educa@1.1.0+bbb");
	bt = json_array_get(json_object_get(batch, "targets"), 1);
	assert_string_equal(th_str(bt, "id"), t2);
	assert_true(json_is_null(json_object_get(bt, "from_release")));
	json_decref(r);
	/* not current until approved */
	assert_int_equal(revision_number(f->store, "prod", &dist), 1);
	assert_string_equal(dist, "educa@1.0.0");

	/* one active rollout per cluster: the second is refused naming the first */
	revisions = raw_int(f->path, "SELECT count(*) FROM cluster_revisions");
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_non_null(strstr(err.message, id));
	assert_non_null(strstr(err.message, "pending_approval"));
	assert_null(id2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM cluster_revisions"), revisions);

	assert_int_equal(tn_store_rollout_for_target(f->store, t1, &ft, &err), 0);
	assert_string_equal(th_str(ft, "rollout"), id);
	assert_string_equal(th_str(ft, "state"), "pending_approval");
	assert_string_equal(th_str(ft, "target_state"), "pending");
	assert_string_equal(th_str(json_object_get(ft, "from_release"), "id"), "educa@1.0.0+aaa");
	assert_string_equal(th_str(json_object_get(ft, "to_release"), "id"), "educa@1.1.0+bbb");
	json_decref(ft);
	ft = NULL;
	assert_int_not_equal(tn_store_rollout_for_target(f->store, stranger, &ft, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	/* approval records who and when; the to-revision is current only
	 * once the rollout succeeded */
	assert_int_equal(tn_store_rollout_approve(f->store, id, "boss", 0, &err), 0);
	assert_int_equal(revision_number(f->store, "prod", &dist), 1);
	assert_int_equal(tn_store_rollout_set_state(f->store, id, "running", &err), 0);
	assert_int_equal(tn_store_rollout_set_prepared(f->store, id, t2, &err), 0);
	assert_int_equal(tn_store_rollout_target_set(f->store, id, t1, "succeeded", NULL, &err), 0);
	assert_int_equal(tn_store_rollout_get(f->store, id, &r, &err), 0);
	assert_string_equal(th_str(r, "state"), "running");
	assert_int_equal(json_array_size(json_object_get(r, "approvals")), 1);
	assert_string_equal(th_str(json_array_get(json_object_get(r, "approvals"), 0), "by"), "boss");
	assert_true(json_is_string(
	    json_object_get(json_array_get(json_object_get(r, "approvals"), 0), "at")));
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(json_object_get(r, "approvals"), 0), "batch")),
			 0);
	batch = json_array_get(json_object_get(r, "batches"), 0);
	assert_string_equal(th_str(batch, "state"), "running"); /* t2 still pending */
	assert_int_equal(json_integer_value(json_object_get(r, "prepared")), 1);
	json_decref(r);
	assert_int_equal(
	    tn_store_rollout_target_set(f->store, id, t2, "failed", "probe: 500", &err), 0);
	assert_int_equal(tn_store_rollout_get(f->store, id, &r, &err), 0);
	batch = json_array_get(json_object_get(r, "batches"), 0);
	assert_string_equal(th_str(batch, "state"), "done");
	bt = json_array_get(json_object_get(batch, "targets"), 1);
	assert_string_equal(th_str(bt, "state"), "failed");
	assert_string_equal(th_str(bt, "message"), "probe: 500");
	assert_true(json_is_true(json_object_get(bt, "prepared")));
	json_decref(r);
	assert_int_equal(tn_store_rollout_for_target(f->store, t2, &ft, &err), 0);
	assert_string_equal(th_str(ft, "state"), "running");
	assert_string_equal(th_str(ft, "target_state"), "failed");
	json_decref(ft);
	ft = NULL;
	assert_int_not_equal(
	    tn_store_rollout_target_set(f->store, id, stranger, "failed", NULL, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_rollout_target_set(f->store, id, t1, "", NULL, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);

	/* finished: no longer any target's rollout, and not approvable */
	assert_int_not_equal(tn_store_rollout_set_state(f->store, id, "done-ish", &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_int_equal(tn_store_rollout_set_state(f->store, id, "succeeded", &err), 0);
	assert_int_equal(revision_number(f->store, "prod", &dist), 2);
	assert_string_equal(dist, "educa@1.1.0");
	assert_int_not_equal(tn_store_rollout_for_target(f->store, t1, &ft, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_rollout_approve(f->store, id, "boss", 1, &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_int_not_equal(tn_store_rollout_set_state(f->store, "r-nope", "paused", &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_rollout_approve(f->store, "r-nope", "boss", 0, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_rollout_get(f->store, "r-nope", &r, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);

	/* refusals leave no revision behind */
	revisions = raw_int(f->path, "SELECT count(*) FROM cluster_revisions");
	targets = rollout_targets(NULL, "x", t1, "t-nope", NULL);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, targets, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, "t-nope"));
	json_decref(targets);
	targets = rollout_targets(NULL, "x", t1, stranger, NULL);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, targets, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_INVALID);
	json_decref(targets);
	targets = rollout_targets(NULL, "x", t1, t1, NULL);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, targets, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_non_null(strstr(err.message, "twice"));
	json_decref(targets);
	targets = json_pack("[{s:s, s:s}]", "id", t1, "to_release", "not an object");
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, targets, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_INVALID);
	json_decref(targets);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "prod", &nodist, NULL, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "nope", &d10, NULL, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(
	    tn_store_rollout_create(f->store, "other", NULL, NULL, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(err.code, TN_E_INVALID);
	assert_null(id2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM cluster_revisions"), revisions);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rollouts"), 1);

	/* the next one: revision 3, and no distribution means the current one */
	assert_int_equal(
	    tn_store_rollout_create(f->store, "prod", NULL, config, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(tn_store_rollout_get(f->store, id2, &r, &err), 0);
	assert_string_equal(th_str(r, "from"), "educa@1.1.0");
	assert_string_equal(th_str(r, "to"), "educa@1.1.0");
	assert_int_equal(json_integer_value(json_object_get(r, "from_revision")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "to_revision")), 3);
	assert_int_equal(json_array_size(json_object_get(r, "batches")), 0);
	assert_int_equal(json_object_size(json_object_get(r, "strategy")), 0);
	json_decref(r);
	/* the old one cannot become active beside it */
	assert_int_not_equal(tn_store_rollout_set_state(f->store, id, "running", &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);

	/* an aborted rollout's revision is never current; the next number
	 * still grows past it */
	assert_int_equal(tn_store_rollout_set_state(f->store, id2, "aborted", &err), 0);
	free(id2);
	id2 = NULL;
	assert_int_equal(
	    tn_store_rollout_create(f->store, "prod", &d10, NULL, NULL, NULL, "ops", &id2, &err),
	    0);
	assert_int_equal(tn_store_rollout_get(f->store, id2, &r, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "from_revision")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "to_revision")), 4);
	json_decref(r);

	/* everything goes with the cluster */
	assert_int_equal(tn_store_target_update(f->store, t1, &removed, &err), 0);
	assert_int_equal(tn_store_target_update(f->store, t2, &removed, &err), 0);
	assert_int_equal(tn_store_cluster_delete(f->store, "prod", &err), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rollouts"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rollout_targets"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM rollout_approvals"), 0);

	json_decref(strategy);
	json_decref(config);
	free(t1);
	free(t2);
	free(stranger);
	free(id);
	free(id2);
}

/* Ids of a rollout page's items, space separated; caller frees. */
static char *page_ids(json_t *page)
{
	json_t *item;
	char *out = xstrdup("");
	size_t i;

	json_array_foreach(json_object_get(page, "items"), i, item)
	{
		char *next = xasprintf("%s%s%s", out, i ? " " : "", th_str(item, "id"));

		free(out);
		out = next;
	}
	return out;
}

static void test_rollout_list_newest_first(void **state)
{
	struct fixture *f = *state;
	struct tn_store_bundle_ref d10 = {"educa", ver(1, 0, 0)};
	struct tn_error err;
	json_t *p = NULL;
	char *ids[4], *want, *got, *after;

	put_dists(f->store);
	put_cluster(f->store, "a", &d10, NULL);
	put_cluster(f->store, "b", &d10, NULL);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(tn_store_rollout_create(f->store, i == 3 ? "b" : "a", NULL, NULL,
							 NULL, NULL, "ops", &ids[i], &err),
				 0);
		if (i < 2)
			assert_int_equal(
			    tn_store_rollout_set_state(f->store, ids[i], "succeeded", &err), 0);
	}

	assert_int_equal(tn_store_rollout_list(f->store, NULL, 3, NULL, &p, &err), 0);
	got = page_ids(p);
	want = xasprintf("%s %s %s", ids[3], ids[2], ids[1]);
	assert_string_equal(got, want);
	free(got);
	free(want);
	assert_string_equal(th_str(json_array_get(json_object_get(p, "items"), 0), "cluster"), "b");
	assert_true(json_is_array(
	    json_object_get(json_array_get(json_object_get(p, "items"), 0), "batches")));
	after = xstrdup(th_str(p, "next"));
	json_decref(p);
	assert_int_equal(tn_store_rollout_list(f->store, NULL, 3, after, &p, &err), 0);
	free(after);
	got = page_ids(p);
	assert_string_equal(got, ids[0]);
	free(got);
	assert_true(json_is_null(json_object_get(p, "next")));
	json_decref(p);

	/* one cluster's */
	assert_int_equal(tn_store_rollout_list(f->store, "a", 2, NULL, &p, &err), 0);
	got = page_ids(p);
	want = xasprintf("%s %s", ids[2], ids[1]);
	assert_string_equal(got, want);
	free(got);
	free(want);
	after = xstrdup(th_str(p, "next"));
	json_decref(p);
	assert_int_equal(tn_store_rollout_list(f->store, "a", 2, after, &p, &err), 0);
	free(after);
	got = page_ids(p);
	assert_string_equal(got, ids[0]);
	free(got);
	assert_true(json_is_null(json_object_get(p, "next")));
	json_decref(p);
	assert_int_equal(tn_store_rollout_list(f->store, "nope", 0, NULL, &p, &err), 0);
	assert_int_equal(json_array_size(json_object_get(p, "items")), 0);
	json_decref(p);
	assert_int_not_equal(tn_store_rollout_list(f->store, NULL, 0, "garbage!", &p, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);

	for (int i = 0; i < 4; i++)
		free(ids[i]);
}

/* ---- transactions grouped by the caller */

static const char *phase_of(struct tn_store *store, const char *id)
{
	static char buf[32];
	json_t *t = get_target(store, id);

	snprintf(buf, sizeof buf, "%s", th_str(t, "phase"));
	json_decref(t);
	return buf;
}

static void test_nested_transactions(void **state)
{
	struct fixture *f = *state;
	struct tn_store_target_update preparing = {.phase = "preparing"},
				      prepared = {.phase = "prepared"},
				      switching = {.phase = "switching"};
	struct tn_error err;
	json_t *run = json_pack("{s:s}", "id", "educa@1.0.0+abcdefabcdef");
	struct tn_store_doc doc;
	char *id;

	put_cluster(f->store, "educa", NULL, NULL);
	id = put_target(f->store, "educa", "enrolled", NULL);

	/* an inner commit is undone by the outer rollback */
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(tn_store_target_update(f->store, id, &preparing, &err), 0);
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(
	    tn_store_doc_put(f->store, id, 0, run, NULL, "running", "{}", "s", "e", &err), 0);
	assert_int_equal(tn_store_commit(f->store, &err), 0);
	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_int_equal(doc.generation, 1); /* seen inside */
	tn_store_doc_clear(&doc);
	tn_store_rollback(f->store);
	assert_int_equal(tn_store_doc_get(f->store, id, &doc, &err), 0);
	assert_int_equal(doc.generation, 0);
	assert_string_equal(doc.state, "enrolled");
	assert_null(doc.run);
	tn_store_doc_clear(&doc);
	assert_string_equal(phase_of(f->store, id), "idle");
	assert_int_equal(raw_int(f->path, "SELECT generation FROM targets"), 0);

	/* an inner rollback undoes only its own part */
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(tn_store_target_update(f->store, id, &preparing, &err), 0);
	tn_store_rollback(f->store);
	assert_string_equal(phase_of(f->store, id), "idle");
	assert_int_equal(tn_store_target_update(f->store, id, &prepared, &err), 0);
	assert_int_equal(tn_store_commit(f->store, &err), 0);
	assert_string_equal(phase_of(f->store, id), "prepared");

	/* a store function failing inside leaves the outer transaction whole */
	assert_int_equal(tn_store_begin(f->store, &err), 0);
	assert_int_equal(tn_store_target_update(f->store, id, &switching, &err), 0);
	assert_int_not_equal(
	    tn_store_doc_put(f->store, id, 7, NULL, NULL, NULL, "{}", "s", "e", &err), 0);
	assert_int_equal(err.code, TN_E_CONFLICT);
	assert_int_equal(tn_store_commit(f->store, &err), 0);
	assert_string_equal(phase_of(f->store, id), "switching");
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM targets WHERE phase = 'switching'"),
			 1);

	/* unbalanced calls */
	assert_int_not_equal(tn_store_commit(f->store, &err), 0);
	assert_int_equal(err.code, TN_E_INTERNAL);
	tn_store_rollback(f->store); /* nothing open: no-op */
	assert_string_equal(phase_of(f->store, id), "switching");

	json_decref(run);
	free(id);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_migration_1_to_2_keeps_data), T(test_enroll_with_cluster_token),
	    T(test_enroll_with_bound_token),	 T(test_doc_get_put_generation),
	    T(test_target_update_and_logs),	 T(test_cluster_target_ids),
	    T(test_rollout_create_get_approve),	 T(test_rollout_list_newest_first),
	    T(test_nested_transactions),
	};
#undef T

	/* jansson's hash seed, before any thread (STYLE: jansson). */
	json_object_seed(0);
	tn_log_set_level(TN_LOG_WARN);
	return cmocka_run_group_tests_name("store_agents", tests, NULL, NULL);
}
