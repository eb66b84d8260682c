/* documents.h - the desired document of every target (DESIGN §2): built
 * from releases, signed with the server's key, stored with a generation
 * that grows at every change, cached in memory for the poll path, and
 * pushed to the target's parked long-polls the moment it changes. */
#ifndef TN_DOCUMENTS_H
#define TN_DOCUMENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct tn_server;
struct tn_documents;

struct tn_documents *tn_documents_new(void);
void tn_documents_free(struct tn_documents *docs);

/* The RELEASE of distribution "name@version" for one target:
 * {id, distribution, version, bundles: [{name, version, sha256, size, url}],
 *  config}, where config is the effective config per bundle (bundle
 * defaults < distribution < cluster < target; cluster_config and
 * target_config borrowed, may be NULL) and id is
 * "name@version+<first 12 hex of sha256 of the canonical config>".
 * *out is caller-decref'd. */
int tn_release_build(struct tn_server *srv, const char *dist_ref, json_t *cluster_config,
		     json_t *target_config, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* A change of one target's document; what is not set stays. */
struct tn_doc_change {
	bool set_run;
	json_t *run;      /* borrowed; NULL: no release */
	bool set_prepare;
	json_t *prepare;  /* borrowed; NULL: nothing to stage */
	const char *state; /* the target's lifecycle state, or NULL to keep */
};

/* Writes the target's next document (generation + 1), signed, in one
 * store transaction (nested in the caller's when there is one), updates
 * the cache and wakes the target's long-polls. */
int tn_documents_change(struct tn_server *srv, const char *target_id,
			const struct tn_doc_change *change, struct tn_error *err) TN_MUST_CHECK;

/* Many targets' changes in one store transaction (one commit, so one sync
 * for all): all or none.  The caches and long-polls follow the commit. */
struct tn_doc_change_item {
	const char *target_id;
	struct tn_doc_change change;
};
int tn_documents_change_many(struct tn_server *srv, const struct tn_doc_change_item *items,
			     size_t n, struct tn_error *err) TN_MUST_CHECK;

/* The target's current document, for GET /agent/v1/desired. */
struct tn_doc_view {
	char *body;       /* caller frees */
	char *signature;  /* base64; caller frees */
	char etag[65];
	int64_t generation;
};
int tn_documents_get(struct tn_server *srv, const char *target_id, struct tn_doc_view *out,
		     struct tn_error *err) TN_MUST_CHECK;
void tn_doc_view_clear(struct tn_doc_view *v);

/* Whether the target's current document has this etag (cache only: a
 * target not cached yet answers false, which only costs a re-send). */
bool tn_documents_etag_is(struct tn_server *srv, const char *target_id, const char *etag);

/* Whether sha256 is a blob of the target's run or prepare release. */
bool tn_documents_blob_allowed(struct tn_server *srv, const char *target_id, const char *sha256);

/* An agent polled: its target was seen.  Noted at most every few seconds
 * per target, and stored by the writer (below) in one transaction a
 * second, so the poll path stays read-only; without the writer (in-process
 * use), stored at once. */
void tn_documents_seen(struct tn_server *srv, const char *target_id);
/* Starts the thread that stores what tn_documents_seen noted (before the
 * HTTP layer); stop stores what is left and joins (after it). */
void tn_documents_start_writer(struct tn_server *srv);
void tn_documents_stop_writer(struct tn_server *srv);

/* Forgets a target's cached document (revoked, removed). */
void tn_documents_forget(struct tn_server *srv, const char *target_id);

#endif
