/* store.h - the server's database: bundles, distributions, clusters, targets,
 * tokens and the audit log, behind functions named for what they do (DESIGN §4).
 * SQLite today; nothing SQL-shaped leaks through this header.
 *
 * Threads: a store may be used from any number of threads at once.  Each
 * thread gets its own SQLite connection, opened on its first call and closed
 * when the thread exits (or by tn_store_close for the calling thread).
 *
 * Reads return jansson objects shaped as the HTTP API answers them (DESIGN
 * §3); lists are {"items": [...], "next": cursor|null}.  `after` is a cursor
 * from an earlier `next` (NULL for the first page); `limit` 0 means
 * TN_STORE_LIMIT_DEFAULT and anything above TN_STORE_LIMIT_MAX is clamped.
 * Every json_t handed out is the caller's (json_decref); every json_t and
 * string passed in is borrowed. */
#ifndef TN_STORE_H
#define TN_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

#define TN_STORE_LIMIT_DEFAULT 100
#define TN_STORE_LIMIT_MAX 1000
/* Most bundles one distribution may name. */
#define TN_STORE_DIST_BUNDLES_MAX 1000

/* "2026-11-23T09:00:00Z": 20 characters. */
#define TN_STORE_TIME_LEN 20

struct tn_store; /* opaque */

/* A version already parsed by the caller (common/version.h); the store writes
 * the canonical text "M.m.u[.q]" itself and sorts by the parts (OSGi order).
 * qualifier: "" or NULL when absent; at most 64 of [A-Za-z0-9_-]. */
struct tn_store_version {
	uint32_t major, minor, micro;
	const char *qualifier;
};

/* What an idempotent insert did. */
enum tn_store_outcome {
	TN_STORE_CREATED = 1,  /* a new row: HTTP 201 */
	TN_STORE_UNCHANGED = 2 /* the identical object was already there: HTTP 200 */
};

/* ------------------------------------------------------------ lifecycle */

/* Opens (creating if missing) the database file at path and brings its schema
 * up to date.  A file written by a newer Tender (a schema this code does not
 * know) is refused with TN_E_INVALID and left untouched.  *out is freed with
 * tn_store_close. */
int tn_store_open(const char *path, struct tn_store **out, struct tn_error *err) TN_MUST_CHECK;

/* Closes every connection of the store and frees it.  No other thread may be
 * using the store (or start to) during or after the call.  NULL is a no-op. */
void tn_store_close(struct tn_store *store);

/* A consistent copy of the live database at dest_path (SQLite's online backup
 * API), written under a temporary name beside it and renamed into place when
 * complete.  Refused when dest_path has a -wal or -journal beside it, which
 * SQLite would replay onto the copy. */
int tn_store_backup(struct tn_store *store, const char *dest_path,
		    struct tn_error *err) TN_MUST_CHECK;

/* The schema version this code writes (PRAGMA user_version). */
int tn_store_schema_version(void);

/* RFC 3339 UTC text of t / of now, into out (TN_STORE_TIME_LEN + 1 bytes). */
void tn_store_time_format(time_t t, char out[TN_STORE_TIME_LEN + 1]);
void tn_store_now(char out[TN_STORE_TIME_LEN + 1]);

/* ------------------------------------------------------------ bundles */

/* Records a bundle whose archive is stored under sha256 (64 lowercase hex).
 * manifest is its bundle.json (an object).  The same name@version with the
 * same sha256 again is *outcome = TN_STORE_UNCHANGED; with another sha256 it
 * is TN_E_EXISTS (HTTP 409). */
int tn_store_bundle_insert(struct tn_store *store, const char *name,
			   const struct tn_store_version *version, const char *sha256, int64_t size,
			   json_t *manifest, const char *actor, enum tn_store_outcome *outcome,
			   struct tn_error *err) TN_MUST_CHECK;

/* {name, version, sha256, size, created, created_by, manifest}; TN_E_NOT_FOUND. */
int tn_store_bundle_get(struct tn_store *store, const char *name,
			const struct tn_store_version *version, json_t **out,
			struct tn_error *err) TN_MUST_CHECK;

/* Bundles ordered by name, then OSGi version (1.9 before 1.10); name NULL for
 * all.  Items are as from get without the manifest. */
int tn_store_bundle_list(struct tn_store *store, const char *name, unsigned limit,
			 const char *after, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* TN_E_NOT_FOUND; TN_E_CONFLICT naming a distribution that uses it.  On
 * success *sha256_out (when not NULL) receives the blob's digest, caller
 * frees, so the blob can be collected. */
int tn_store_bundle_delete(struct tn_store *store, const char *name,
			   const struct tn_store_version *version, char **sha256_out,
			   struct tn_error *err) TN_MUST_CHECK;

/* Whether any bundle row references the blob: the garbage collector's test. */
int tn_store_blob_referenced(struct tn_store *store, const char *sha256, bool *out,
			     struct tn_error *err) TN_MUST_CHECK;

int tn_store_bundle_count(struct tn_store *store, int64_t *out, struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ distributions */

/* A bundle named by a distribution. */
struct tn_store_bundle_ref {
	const char *name;
	struct tn_store_version version;
};

/* Records a distribution of exactly these n bundles (each already stored)
 * and its config object (NULL for {}), all in one transaction.  A missing
 * bundle is TN_E_NOT_FOUND, a bundle name twice TN_E_INVALID; either way no
 * row is left.  The same name@version with the same bundles and config is
 * TN_STORE_UNCHANGED, with others TN_E_EXISTS. */
int tn_store_distribution_insert(struct tn_store *store, const char *name,
				 const struct tn_store_version *version, json_t *config,
				 const struct tn_store_bundle_ref *bundles, size_t n,
				 const char *actor, enum tn_store_outcome *outcome,
				 struct tn_error *err) TN_MUST_CHECK;

/* A bundle to record with a distribution (its blob already stored). */
struct tn_store_new_bundle {
	const char *name;
	struct tn_store_version version;
	const char *sha256;
	int64_t size;
	json_t *manifest;
};

/* A distribution archive's ingest, all or nothing: records the nfresh
 * bundles (each as tn_store_bundle_insert: the same bytes again are fine,
 * other bytes under a stored name@version are TN_E_EXISTS), then the
 * distribution of the n bundles as tn_store_distribution_insert, in one
 * transaction. */
int tn_store_distribution_ingest(struct tn_store *store, const char *name,
				 const struct tn_store_version *version, json_t *config,
				 const struct tn_store_new_bundle *fresh, size_t nfresh,
				 const struct tn_store_bundle_ref *bundles, size_t n,
				 const char *actor, enum tn_store_outcome *outcome,
				 struct tn_error *err) TN_MUST_CHECK;

/* {name, version, config, bundles: [{name, version, sha256, size}] in the
 * order given at insert, created, created_by}; TN_E_NOT_FOUND. */
int tn_store_distribution_get(struct tn_store *store, const char *name,
			      const struct tn_store_version *version, json_t **out,
			      struct tn_error *err) TN_MUST_CHECK;

/* Ordered by name, then OSGi version; items as from get. */
int tn_store_distribution_list(struct tn_store *store, const char *name, unsigned limit,
			       const char *after, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* TN_E_CONFLICT naming the cluster whose current revision uses it, an active
 * rollout (pending_approval, running, paused) to or from it, or an older
 * revision kept for undo. */
int tn_store_distribution_delete(struct tn_store *store, const char *name,
				 const struct tn_store_version *version,
				 struct tn_error *err) TN_MUST_CHECK;

int tn_store_distribution_count(struct tn_store *store, int64_t *out,
				struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ clusters */

/* Creates the cluster with its revision 1 in one transaction.  distribution
 * may be NULL (its targets enroll and wait); provider, lb and description may
 * be NULL; config NULL is {}.  TN_E_EXISTS for a taken name, TN_E_NOT_FOUND
 * for an unknown distribution.  *out (may be NULL) gets the cluster as get. */
int tn_store_cluster_create(struct tn_store *store, const char *name, const char *description,
			    const char *provider, json_t *lb,
			    const struct tn_store_bundle_ref *distribution, json_t *config,
			    const char *actor, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* {name, description, provider, lb, revision: {number, distribution:
 * "name@version"|null, config, created, created_by}, targets: {total,
 * by_state: {state: n}, by_release: {release: n}}, created, updated};
 * removed targets are not counted. */
int tn_store_cluster_get(struct tn_store *store, const char *name, json_t **out,
			 struct tn_error *err) TN_MUST_CHECK;

/* Ordered by name; items as from get. */
int tn_store_cluster_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			  struct tn_error *err) TN_MUST_CHECK;

/* Changes what is not NULL (description "" clears it).  *out (may be NULL)
 * gets the cluster as get.  TN_E_NOT_FOUND. */
int tn_store_cluster_patch(struct tn_store *store, const char *name, const char *description,
			   const char *provider, json_t *lb, json_t **out,
			   struct tn_error *err) TN_MUST_CHECK;

/* TN_E_CONFLICT while targets not in state "removed" exist; the removed ones,
 * the revisions, rollouts and enrollment tokens go with the cluster. */
int tn_store_cluster_delete(struct tn_store *store, const char *name,
			    struct tn_error *err) TN_MUST_CHECK;

int tn_store_cluster_count(struct tn_store *store, int64_t *out,
			   struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ targets */

struct tn_store_target_spec {
	const char *id;	      /* NULL: a new random "t-..." id */
	const char *cluster;  /* cluster name, required */
	const char *provider; /* may be NULL */
	const char *instance; /* the provider's id; may be NULL */
	const char *address;  /* may be NULL */
	const char *state;    /* NULL: "provisioning" */
	json_t *inventory;    /* may be NULL */
	json_t *config;	      /* target-level config; NULL is {} */
};

/* TN_E_NOT_FOUND for an unknown cluster, TN_E_INVALID for an unknown state,
 * TN_E_EXISTS for a taken id.  *out (may be NULL) gets the target as get. */
int tn_store_target_create(struct tn_store *store, const struct tn_store_target_spec *spec,
			   json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* {id, cluster, provider, instance, address, state, phase, health,
 * desired: {release, generation}, actual, last_result: {result, message}|null,
 * last_seen, inventory, config, created, updated}; TN_E_NOT_FOUND. */
int tn_store_target_get(struct tn_store *store, const char *id, json_t **out,
			struct tn_error *err) TN_MUST_CHECK;

/* In creation order; cluster and state filter when not NULL. */
int tn_store_target_list(struct tn_store *store, const char *cluster, const char *state,
			 unsigned limit, const char *after, json_t **out,
			 struct tn_error *err) TN_MUST_CHECK;

/* {state: n} over targets not removed, of one cluster or (NULL) all. */
int tn_store_target_count_by_state(struct tn_store *store, const char *cluster, json_t **out,
				   struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ API tokens */

/* role: viewer, developer, operator or admin; token_hash: sha256 hex of the
 * secret; expires: RFC 3339 UTC or NULL.  TN_E_EXISTS for a name in use (a
 * revoked token's name may be taken again: the old row is replaced). */
int tn_store_api_token_create(struct tn_store *store, const char *name, const char *token_hash,
			      const char *role, const char *expires, const char *actor,
			      struct tn_error *err) TN_MUST_CHECK;

/* Items {name, role, expires, created, created_by, revoked_at}, by name;
 * never the hashes. */
int tn_store_api_token_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			    struct tn_error *err) TN_MUST_CHECK;

/* TN_E_NOT_FOUND for an unknown name; revoking twice keeps the first time. */
int tn_store_api_token_revoke(struct tn_store *store, const char *name,
			      struct tn_error *err) TN_MUST_CHECK;

/* Called once per active token (not revoked, not expired).  Strings are
 * borrowed for the call; expires is NULL for no expiry.  A non-zero return
 * stops the walk and is returned.  The rows are read before the first call,
 * so fn may use the store. */
typedef int (*tn_store_token_fn)(void *ctx, const char *name, const char *token_hash,
				 const char *role, const char *expires);
int tn_store_api_token_each_active(struct tn_store *store, tn_store_token_fn fn, void *ctx,
				   struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ enrollment tokens */

/* A hand-enrollment token for cluster, good for uses enrollments until
 * expires (RFC 3339 UTC).  *out (may be NULL) gets {cluster, uses, expires}.
 * TN_E_NOT_FOUND for an unknown cluster. */
int tn_store_enrollment_token_create(struct tn_store *store, const char *token_hash,
				     const char *cluster, int64_t uses, const char *expires,
				     const char *actor, json_t **out,
				     struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ events */

/* Appends to the audit log; detail may be NULL.  *id (may be NULL) gets the
 * new event's id: ids only grow. */
int tn_store_event_append(struct tn_store *store, const char *actor, const char *action,
			  const char *object_type, const char *object_id, const char *outcome,
			  json_t *detail, int64_t *id, struct tn_error *err) TN_MUST_CHECK;

/* Events with id > after (a decimal id, as `?after=N` and Last-Event-ID give
 * it; NULL for the start), oldest first: items {id, at, actor, action,
 * object_type, object_id, outcome, detail}; next is the last id as a string
 * when more follow. */
int tn_store_event_list(struct tn_store *store, const char *after, unsigned limit, json_t **out,
			struct tn_error *err) TN_MUST_CHECK;

/* The highest event id, 0 when the log is empty. */
int tn_store_event_last_id(struct tn_store *store, int64_t *out,
			   struct tn_error *err) TN_MUST_CHECK;

#endif
