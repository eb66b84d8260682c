/* desired.h - the desired document (DESIGN §2 "Desired document") as the
 * agent receives it: the signature over the exact bytes is checked first,
 * then the body is parsed strictly, then it must be for this target and not
 * older than a generation already seen. */
#ifndef TN_DESIRED_H
#define TN_DESIRED_H

#include <jansson.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "sign.h"

/* Caps: every list read from the document has one. */
#define TN_DESIRED_MAX_BYTES (1024 * 1024) /* the body */
#define TN_DESIRED_BUNDLES_MAX 256	    /* bundles in a release */
#define TN_DESIRED_CONFIG_KEYS_MAX 256	    /* keys of one bundle's config */
#define TN_DESIRED_ID_MAX 128		    /* target_id */
#define TN_DESIRED_URL_MAX 256		    /* a bundle's url */
#define TN_DESIRED_LB_DRIVER_MAX 32	    /* lb.driver */
#define TN_DESIRED_BLOB_MAX ((int64_t)1 << 40) /* a bundle's size */

/* Blob URLs are relative to the server and always under this prefix, so a
 * document can never send the agent's token to another host. */
#define TN_DESIRED_BLOB_PREFIX "/agent/v1/blobs/"

enum tn_desired_state {
	TN_DESIRED_ACTIVE,
	TN_DESIRED_DRAINING,
	TN_DESIRED_REMOVED,
};

/* Strings are borrowed from the release's raw JSON. */
struct tn_desired_bundle {
	const char *name;
	const char *version; /* as written; a valid OSGi version */
	const char *sha256;  /* 64 lowercase hex */
	uint64_t size;
	const char *url; /* starts with TN_DESIRED_BLOB_PREFIX */
};

/* RELEASE = {id, distribution, version, bundles, config}.  Reference
 * counted, so that a release can outlive the document it came in (a
 * download or a staging still running when the next document arrives). */
struct tn_desired_release {
	int refs;
	json_t *raw; /* the RELEASE object; one reference, owned */
	const char *id;		  /* "dist@ver+<12 hex>" */
	const char *distribution;
	const char *version;
	struct tn_desired_bundle *bundles; /* owned array; n_bundles entries */
	size_t n_bundles;
	/* Borrowed from raw: bundle name -> {key: scalar}; every key is the
	 * name of a bundle of this release (a bundle may have no entry). */
	json_t *config;
};

struct tn_desired {
	json_t *raw; /* the whole document; owned */
	const char *target_id;
	const char *cluster;
	int64_t generation;
	enum tn_desired_state state;
	struct tn_desired_release *run;	    /* NULL when null; owned (one ref) */
	struct tn_desired_release *prepare; /* NULL when null; owned (one ref) */
	json_t *lb; /* borrowed from raw; NULL when null */
	/* lb, checked: the driver asking this node for its readiness (borrowed
	 * from raw; NULL when lb is null or its driver is "none"), and the
	 * agent-check port the load balancer asks on (0: not named). */
	const char *lb_driver;
	int lb_agent_port;
	char etag[TN_SHA256_HEX_LEN + 1]; /* sha256 hex of the body, as the ETag */
	/* NULL when the pinned key signed the document; else base64 of the
	 * newer key that signed it, reached from the pinned key through the
	 * endorsements (owned): the key to pin from now on. */
	char *signer_key;
};

/* Verifies and parses a desired document, in this order:
 *   1. signature: sig_header is the value of the Tender-Signature header
 *      ("ed25519=<base64>"), NULL when the response had none.  No header:
 *      TN_E_UNSIGNED; a header that is not "ed25519=...": TN_E_UNSIGNED too
 *      (no signature of a kind we know).  The signature must verify over
 *      the exact len bytes of body with server_key (the pinned key) or,
 *      after a rotation, with the key that endorsements (the value of the
 *      Tender-Key-Endorsement header, NULL when none; keychain.h) lead to
 *      from server_key, every link verified; then d->signer_key names that
 *      key.  Otherwise (tampered body, another key, a forged or malformed
 *      endorsement): TN_E_SIGNATURE, or TN_E_INVALID for an endorsement
 *      header that is not a chain.  Nothing of the body is parsed before.
 *   2. strict parse: TN_E_TOO_LARGE over TN_DESIRED_MAX_BYTES (checked
 *      before the signature, as a cheap bound), TN_E_JSON for malformed
 *      JSON, TN_E_INVALID naming the field for everything else (unknown
 *      keys, bad sha256, url, name, version, release id, config, lb: an
 *      object {driver: name, agent_port?: 1..65535} or null).
 *   3. target_id must equal target_id: TN_E_WRONG_TARGET.
 *   4. generation must be >= min_generation (the highest one seen; 0 at
 *      first): TN_E_STALE for a replay or a downgrade.
 * Every message starts with "desired document: ".  On success *out is the
 * caller's (tn_desired_free); on failure it is NULL. */
int tn_desired_parse(const char *body, size_t len, const char *sig_header,
		     const char *endorsements, const struct tn_key *server_key, const char *target_id,
		     int64_t min_generation, struct tn_desired **out,
		     struct tn_error *err) TN_MUST_CHECK;

/* Frees d and drops its references to its releases; NULL is a no-op. */
void tn_desired_free(struct tn_desired *d);

/* Parses one RELEASE object strictly (step 2 above for a release alone).
 * obj is borrowed (the release takes its own reference); where prefixes
 * messages ("run", "prepare", or a file name).  Used for a release kept on
 * disk by the agent itself.  *out has one reference, the caller's. */
int tn_desired_release_parse(json_t *obj, const char *where, struct tn_desired_release **out,
			     struct tn_error *err) TN_MUST_CHECK;

/* Takes one more reference; returns r. */
struct tn_desired_release *tn_desired_release_ref(struct tn_desired_release *r);
/* Drops one reference, freeing r at the last; NULL is a no-op. */
void tn_desired_release_unref(struct tn_desired_release *r);

/* The config of bundle name in r (borrowed), or NULL when it has none. */
json_t *tn_desired_release_config(const struct tn_desired_release *r, const char *name);

/* "active", "draining", "removed". */
const char *tn_desired_state_name(enum tn_desired_state state);

#endif
