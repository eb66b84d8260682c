/* store.h - the server's database: bundles, distributions, clusters, targets
 * and their agents' documents, rollouts, tokens and the audit log, behind
 * functions named for what they do (DESIGN §4).
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
/* Only the cluster's current revision ({number, distribution, config,
 * created, created_by}, or json null; caller decrefs): without the counts
 * of its targets, which tn_store_cluster_get reads over every target. */
int tn_store_cluster_current_revision(struct tn_store *store, const char *name, json_t **out,
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
 * last_seen, inventory, config, bundles (array as the agent last reported
 * it, or null), agent_port (or null when unknown), created, updated};
 * TN_E_NOT_FOUND. */
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
/* Revokes the hand-enrollment token stored as token_hash: enrolling with it
 * is then refused ("enrollment token revoked"); again is not an error.
 * *cluster gets its cluster's name (caller frees).  TN_E_NOT_FOUND for a
 * token that is not one (a provider's token bound to a target goes with
 * its target). */
int tn_store_enrollment_token_revoke(struct tn_store *store, const char *token_hash,
				     char **cluster, struct tn_error *err) TN_MUST_CHECK;

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
/* One event, shaped as in tn_store_event_list.  TN_E_NOT_FOUND. */
int tn_store_event_get(struct tn_store *store, int64_t id, json_t **out,
		       struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ transactions */

/* Transactions for callers that group several store writes into one
 * (nested calls become savepoints).  Per thread: begin, then commit or
 * rollback on the same thread.  The outer begin takes the write lock
 * (BEGIN IMMEDIATE), so reads between begin and commit see no other
 * writer's changes: keep these transactions short.  commit without a begin
 * is TN_E_INTERNAL; rollback without one is a no-op.  A store function that
 * fails inside such a transaction has undone its own writes (its savepoint)
 * and left the caller's transaction open. */
int tn_store_begin(struct tn_store *store, struct tn_error *err) TN_MUST_CHECK;
int tn_store_commit(struct tn_store *store, struct tn_error *err) TN_MUST_CHECK;
void tn_store_rollback(struct tn_store *store);

/* ------------------------------------------------------------ agents */

/* A one-time enrollment token bound to target_id (DESIGN §2 Provider: made
 * with the target, carried in its boot spec): one use, in the target's
 * cluster, until expires (RFC 3339 UTC).  TN_E_NOT_FOUND for an unknown
 * target, TN_E_EXISTS for a hash in use, TN_E_INVALID for a bad hash or
 * time. */
int tn_store_target_enrollment_token_create(struct tn_store *store, const char *target_id,
					    const char *token_hash, const char *expires,
					    const char *actor, struct tn_error *err) TN_MUST_CHECK;

/* Redeems an enrollment token (given as its sha256 hex) in one transaction.
 * Unknown → TN_E_UNAUTHORIZED "unknown enrollment token"; revoked →
 * TN_E_UNAUTHORIZED "enrollment token revoked"; expired →
 * TN_E_UNAUTHORIZED "enrollment token expired at …"; no uses left →
 * TN_E_UNAUTHORIZED "enrollment token used up".  A token bound to a target
 * (enrollment_tokens.target_id set: made by a provider with the target) enrolls
 * THAT target, which must be in state provisioning or enrolled (else
 * TN_E_CONFLICT naming its state); a cluster token makes a new target in its
 * cluster (provider "manual").  Either way: the target's token_hash (sha256
 * hex of its new agent token), inventory (an object), address, agent_port
 * (0 = unknown) are set, state provisioning → enrolled, last_seen now, and
 * uses_left is decremented.  An address or inventory of NULL and an
 * agent_port of 0 keep what the target had (a provider may know the address
 * before the agent does).  A target_hash already held by another target is
 * TN_E_EXISTS.  Strings and inventory are borrowed; *target_id is
 * caller-freed. */
int tn_store_enroll(struct tn_store *store, const char *enroll_hash, const char *target_hash,
		    json_t *inventory, const char *address, int agent_port, char **target_id,
		    struct tn_error *err) TN_MUST_CHECK;

/* The target whose agent token hashes to hash, unless removed: *id caller-freed;
 * TN_E_NOT_FOUND otherwise. */
int tn_store_target_by_token(struct tn_store *store, const char *hash, char **id,
			     struct tn_error *err) TN_MUST_CHECK;
/* Forgets the target's agent token (it must enroll again). TN_E_NOT_FOUND. */
int tn_store_target_revoke(struct tn_store *store, const char *id,
			   struct tn_error *err) TN_MUST_CHECK;

/* A target's desired-document state.  Every member is owned by the struct:
 * free them all with tn_store_doc_clear. */
struct tn_store_doc {
	char *cluster; /* cluster name */
	char *state;   /* the target's lifecycle state */
	int64_t generation;
	json_t *run;	 /* RELEASE or NULL */
	json_t *prepare; /* RELEASE or NULL */
	json_t *config;	 /* target-level config, {} when none */
	json_t *lb;	 /* the cluster's lb binding, or NULL */
	char *body;	 /* the signed document as last written, or NULL */
	char *signature; /* base64, or NULL */
	char *etag;	 /* sha256 hex of body, or NULL */
	int agent_port;	 /* the agent's agent-check port, 0 = unknown */
};
/* Fills *out (zeroed first, also on failure); TN_E_NOT_FOUND. */
int tn_store_doc_get(struct tn_store *store, const char *target_id, struct tn_store_doc *out,
		     struct tn_error *err) TN_MUST_CHECK;
/* Frees every member and zeroes *doc; NULL is a no-op. */
void tn_store_doc_clear(struct tn_store_doc *doc);
/* Writes a new document: run/prepare (NULL for none), state, and the signed
 * body/signature/etag, with generation = expected_generation + 1.  When the
 * stored generation is not expected_generation: TN_E_CONFLICT (someone wrote
 * in between; callers read and write inside one tn_store_begin transaction).
 * run and prepare are RELEASE objects with a string "id" (TN_E_INVALID
 * otherwise); the target's desired.release becomes run's id (null for no
 * run).  state NULL keeps the target's lifecycle state; another value must
 * be a target state.  All borrowed.  TN_E_NOT_FOUND for an unknown target. */
int tn_store_doc_put(struct tn_store *store, const char *target_id, int64_t expected_generation,
		     json_t *run, json_t *prepare, const char *state, const char *body,
		     const char *signature, const char *etag, struct tn_error *err) TN_MUST_CHECK;

/* Ids of the cluster's targets that are not removed, in creation order;
 * *ids is a NULL-terminated caller-freed array of caller-freed strings (free
 * it with tn_store_free_ids), *n (may be NULL) their count.  TN_E_NOT_FOUND
 * for an unknown cluster. */
int tn_store_cluster_target_ids(struct tn_store *store, const char *cluster, char ***ids, size_t *n,
				struct tn_error *err) TN_MUST_CHECK;
/* Frees such an array; NULL is a no-op. */
void tn_store_free_ids(char **ids);

/* What an agent reported: each field NULL (or false) = unchanged.  All
 * borrowed. */
struct tn_store_target_update {
	const char *state;  /* lifecycle: enrolled, running, ... */
	const char *phase;  /* idle, preparing, prepared, switching, committing, rolling_back */
	const char *health; /* unknown, healthy, unhealthy (or stale, set by the server) */
	const char *actual_release; /* release id */
	const char *last_result;    /* succeeded | failed */
	const char *last_message;
	json_t *bundles; /* array */
	json_t *logs;	 /* object: bundle → tail; merged into the stored one */
	bool seen;	 /* set last_seen to now */
	/* What the server sets, never an agent: */
	const char *instance; /* the provider's name for the node */
	const char *address;  /* the node's address */
	json_t *config;	      /* target-level config: an object (replaces) */
	int serves_port;      /* reported by the agent; 0 = unchanged */
};
/* In one transaction.  A value outside the lists above, bundles not an array,
 * config not an object or logs not an object of strings is TN_E_INVALID; more than
 * TN_STORE_DIST_BUNDLES_MAX bundles in the merged logs too.  TN_E_NOT_FOUND. */
/* Sets last_seen (and updated) of each of n targets to its time (RFC 3339
 * UTC), in one transaction; an unknown id changes nothing. */
int tn_store_targets_seen(struct tn_store *store, const char *const *ids,
			  const char *const *times, size_t n, struct tn_error *err) TN_MUST_CHECK;
int tn_store_target_update(struct tn_store *store, const char *id,
			   const struct tn_store_target_update *u,
			   struct tn_error *err) TN_MUST_CHECK;
/* {bundle: tail} of the last reported logs, or {}; *out caller-decref'd.
 * TN_E_NOT_FOUND. */
int tn_store_target_logs(struct tn_store *store, const char *id, json_t **out,
			 struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ rollouts */

/* One in one transaction: a new cluster revision (number: one more than the
 * cluster's highest; distribution and config as given, NULL config = {},
 * NULL distribution = the current revision's, TN_E_INVALID when that has
 * none), the rollout (state pending_approval, from = the current revision,
 * to = the new one, strategy json as given (an object; NULL = {}), a new
 * "r-…" id), and one rollout_targets row per entry of targets [{id,
 * from_release (json or null), to_release (json), batch (default 0)}] in
 * state "pending".  TN_E_CONFLICT naming the active rollout when the cluster has
 * one (pending_approval, running, paused); TN_E_NOT_FOUND for an unknown
 * cluster, distribution or target; TN_E_INVALID for a malformed entry, a
 * target of another cluster or one listed twice.  All borrowed; *id
 * caller-freed. */
int tn_store_rollout_create(struct tn_store *store, const char *cluster,
			    const struct tn_store_bundle_ref *distribution, json_t *config,
			    json_t *strategy, json_t *targets, const char *actor, char **id,
			    struct tn_error *err) TN_MUST_CHECK;
/* {id, cluster, from: "n@v"|null, to: "n@v", from_revision, to_revision, state, strategy,
 *  batches: [{index, state, targets: [{id, state, message, from_release, to_release,
 *  switched_at and finished_at (Unix ms or null), prepared}]}], approvals: [{by, at, batch}], prepared
 *  (how many targets staged to_release), created_by, created, updated}.  The batch state
 *  is derived: "done" when every target is succeeded, failed, reverted or skipped,
 *  "pending" when all are pending, else the rollout's.
 *  Batches in index order, their targets in creation order; from_revision
 *  is null for a cluster that had none.  *out caller-decref'd;
 *  TN_E_NOT_FOUND. */
int tn_store_rollout_get(struct tn_store *store, const char *id, json_t **out,
			 struct tn_error *err) TN_MUST_CHECK;
/* Newest first; cluster filter when not NULL; items as get. */
int tn_store_rollout_list(struct tn_store *store, const char *cluster, unsigned limit,
			  const char *after, json_t **out, struct tn_error *err) TN_MUST_CHECK;
/* Any rollout state (pending_approval, running, paused, succeeded, failed,
 * rolled_back, aborted; TN_E_INVALID otherwise): the transitions are the
 * caller's to check.  Succeeded also makes the rollout's "to" revision the
 * cluster's current one, in the same transaction.  Making a rollout active while its cluster has another
 * active one is TN_E_CONFLICT.  TN_E_NOT_FOUND. */
int tn_store_rollout_set_state(struct tn_store *store, const char *id, const char *state,
			       struct tn_error *err) TN_MUST_CHECK;
/* Records an approval (by, now, batch); the state is left to
 * tn_store_rollout_set_state.  batch < 0 is recorded as null.  A finished
 * rollout is TN_E_CONFLICT; TN_E_NOT_FOUND. */
int tn_store_rollout_approve(struct tn_store *store, const char *id, const char *actor, int batch,
			     struct tn_error *err) TN_MUST_CHECK;
/* Sets a rollout target's state (any non-empty text) and message (NULL
 * clears it); "switching" also records now as its switched_at, succeeded
 * and failed as its finished_at.
 * TN_E_NOT_FOUND when target_id is not in the rollout. */
int tn_store_rollout_target_set(struct tn_store *store, const char *rollout_id,
				const char *target_id, const char *state, const char *message,
				struct tn_error *err) TN_MUST_CHECK;
/* Marks a rollout target as having staged its to_release. */
int tn_store_rollout_set_prepared(struct tn_store *store, const char *rollout_id,
				  const char *target_id, struct tn_error *err) TN_MUST_CHECK;
/* Ids of the rollouts running or paused (what the orchestrator moves), oldest
 * first; *ids NULL-terminated, freed with tn_store_free_ids. */
int tn_store_rollout_ids_moving(struct tn_store *store, char ***ids,
				struct tn_error *err) TN_MUST_CHECK;
/* Adds targets (entries as rollout_create takes them) to a rollout, in one
 * transaction.  TN_E_NOT_FOUND, TN_E_INVALID as rollout_create. */
int tn_store_rollout_add_targets(struct tn_store *store, const char *rollout_id, json_t *targets,
				 struct tn_error *err) TN_MUST_CHECK;
/* {number, distribution: "n@v"|null, config} of a cluster's revision;
 * TN_E_NOT_FOUND. */
int tn_store_cluster_revision(struct tn_store *store, const char *cluster, int64_t number,
			      json_t **out, struct tn_error *err) TN_MUST_CHECK;
/* The active rollout (pending_approval, running, paused) that holds target_id:
 * *out = {rollout, state, target_state, from_release, to_release}, caller-
 * decref'd; TN_E_NOT_FOUND when none. */
int tn_store_rollout_for_target(struct tn_store *store, const char *target_id, json_t **out,
				struct tn_error *err) TN_MUST_CHECK;

/* ------------------------------------------------------------ webhooks */

/* Registers a webhook for url and events (a JSON array of patterns, both
 * checked by the caller: webhook.h), with an id "w-..." made here.  It
 * receives the events appended after this call.  *out (may be NULL) is the
 * webhook as tn_store_webhook_get shows it. */
int tn_store_webhook_create(struct tn_store *store, const char *url, json_t *events,
			    const char *actor, json_t **out, struct tn_error *err) TN_MUST_CHECK;
/* {id, url, events, created, created_by, deliveries: {ok, failed, pending,
 * last}}, last being null or the delivery tried or ended last: {event_id,
 * event, state, status, at, attempts, error}.  get adds recent: the newest
 * deliveries, each {id, event_id, event, state, attempts, status, error,
 * created, at, next_attempt, tries: [{number, at, status, error,
 * duration_ms}]}.  TN_E_NOT_FOUND. */
int tn_store_webhook_get(struct tn_store *store, const char *id, json_t **out,
			 struct tn_error *err) TN_MUST_CHECK;
/* In creation order; items as get without recent. */
int tn_store_webhook_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			  struct tn_error *err) TN_MUST_CHECK;
/* Deletes a webhook and its deliveries, pending ones included.
 * TN_E_NOT_FOUND. */
int tn_store_webhook_delete(struct tn_store *store, const char *id,
			    struct tn_error *err) TN_MUST_CHECK;

/* The delivery worker's side (webhook.c). */

/* Every webhook as [{id, events, since_event}], in creation order. */
int tn_store_webhook_matchers(struct tn_store *store, json_t **out,
			      struct tn_error *err) TN_MUST_CHECK;
/* The id of the last event matched against the webhooks; setting it never
 * moves it back. */
int tn_store_webhook_scan_get(struct tn_store *store, int64_t *out,
			      struct tn_error *err) TN_MUST_CHECK;
int tn_store_webhook_scan_set(struct tn_store *store, int64_t last_event,
			      struct tn_error *err) TN_MUST_CHECK;
/* Queues event_id (its action is event) for webhook_id, due at due_ms
 * (milliseconds since the Unix epoch).  Nothing when the webhook is gone
 * or already has that event.  The webhook's oldest pending deliveries
 * beyond max_pending end failed with "queue full"; *dropped (may be NULL)
 * gets their number. */
int tn_store_webhook_enqueue(struct tn_store *store, const char *webhook_id, int64_t event_id,
			     const char *event, int64_t due_ms, unsigned max_pending,
			     unsigned *dropped, struct tn_error *err) TN_MUST_CHECK;
/* Pending deliveries due at now_ms, one per webhook (its earliest due),
 * earliest due first, at most limit: [{id, webhook, url, event_id, event,
 * attempts}].  *next_ms: the earliest due time after now_ms of any pending
 * delivery, 0 when there is none. */
int tn_store_webhook_due(struct tn_store *store, int64_t now_ms, unsigned limit, json_t **out,
			 int64_t *next_ms, struct tn_error *err) TN_MUST_CHECK;

struct tn_store_webhook_attempt {
	int64_t delivery_id;
	int status;	     /* the HTTP status answered, 0 when none */
	const char *error;   /* NULL when delivered */
	int64_t at_ms;	     /* when the attempt began */
	int64_t duration_ms;
	const char *state;   /* what the delivery becomes: pending, delivered, failed */
	int64_t next_ms;     /* pending: when it is tried again */
	unsigned keep;	     /* finished deliveries kept per webhook */
};

/* Records an attempt of a pending delivery and what the delivery becomes.
 * A finished one counts in its webhook's delivered or failed, and the
 * webhook's finished deliveries beyond the newest keep are pruned.  A
 * delivery that is gone or no longer pending (its webhook deleted
 * meanwhile) is no error: *recorded (may be NULL) is false. */
int tn_store_webhook_attempt(struct tn_store *store, const struct tn_store_webhook_attempt *a,
			     bool *recorded, struct tn_error *err) TN_MUST_CHECK;

#endif
