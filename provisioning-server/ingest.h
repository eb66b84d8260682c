/* ingest.h - checking what is uploaded before anything is kept: a bundle
 * archive (safe zip, valid bundle.json, templates naming only known
 * values) and a distribution (its bundles resolve, its config fits their
 * models).  Used by the bundle upload and by both forms of distribution
 * upload, so that every path applies the same rules. */
#ifndef TN_INGEST_H
#define TN_INGEST_H

#include <jansson.h>

#include "archive.h"
#include "error.h"
#include "manifest.h"

/* Checks the bundle archive at path (every entry's data is read once, so
 * that bombs and corrupt payloads are refused too) and returns its
 * manifest (caller frees with tn_manifest_free).  `label` names the archive in messages
 * ("bundles/web.zip"), NULL for a plain upload. */
int tn_ingest_check_bundle(const char *path, const struct tn_archive_limits *limits,
			   const char *label, struct tn_manifest **out, struct tn_error *err)
	TN_MUST_CHECK;

/* Checks that the n bundles (manifests) of a distribution resolve: no name
 * twice, every `requires` met by a bundle of the set in range
 * (TN_E_UNRESOLVED naming the bundle, the requirement and what the set
 * has), and that config (borrowed, may be NULL) is an object of bundle name
 * → values that fit that bundle's model. */
int tn_ingest_check_distribution(struct tn_manifest *const *bundles, size_t n, json_t *config,
				 struct tn_error *err) TN_MUST_CHECK;

struct tn_store;
struct tn_store_version;

/* The manifest of a bundle already stored (caller frees); TN_E_NOT_FOUND
 * when there is no such bundle. */
int tn_ingest_stored_manifest(struct tn_store *store, const char *name,
			      const struct tn_store_version *version, struct tn_manifest **out,
			      json_t **row, struct tn_error *err) TN_MUST_CHECK;

/* Checks config (an object of bundle name → values) against the bundles of
 * the stored distribution "name@version" (TN_E_NOT_FOUND when there is no
 * such distribution); `where` starts every message ("cluster config"). */
int tn_ingest_check_config_for(struct tn_store *store, const char *dist, json_t *config,
			       const char *where, struct tn_error *err) TN_MUST_CHECK;

/* Splits "name@version" (the last '@'); TN_E_INVALID naming `what` when it
 * is not of that form or the version is bad. */
int tn_ingest_split_ref(const char *ref, const char *what, char **name,
			struct tn_store_version *sv, struct tn_version *v, struct tn_error *err)
	TN_MUST_CHECK;

/* A distribution or bundle name: 1 to 128 of [A-Za-z0-9_.-], not starting
 * with '.' or '-'. */
bool tn_ingest_name_valid(const char *name);

#endif
