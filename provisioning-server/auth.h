/* auth.h - API tokens: random secrets shown once, stored as sha256, looked
 * up through an in-memory index and compared in constant time. */
#ifndef TN_AUTH_H
#define TN_AUTH_H

#include <stdbool.h>

#include "error.h"
#include "router.h"

struct tn_store;
struct tn_auth;

/* Loads the active tokens of store into a new index (tn_auth_free). */
int tn_auth_open(struct tn_store *store, struct tn_auth **out, struct tn_error *err)
	TN_MUST_CHECK;
void tn_auth_free(struct tn_auth *auth);
/* Rebuilds the index from the store (after a token is created or revoked). */
int tn_auth_reload(struct tn_auth *auth, struct tn_error *err) TN_MUST_CHECK;

/* Fills *who for a valid, unexpired token; TN_E_UNAUTHORIZED otherwise.
 * API tokens ("tn_...") come from the index; target tokens ("tnt_...")
 * from the store, with role TN_ROLE_AGENT and the target id as name. */
int tn_auth_check(struct tn_auth *auth, const char *token, struct tn_principal *who,
		  struct tn_error *err) TN_MUST_CHECK;

/* Whether the token stored as hash (tn_token_hash) is still valid: neither
 * revoked nor expired since it was checked.  Long-lived responses (the
 * event stream) ask again as they go, so that they stop with the token. */
bool tn_auth_hash_valid(struct tn_auth *auth, const char hash[65]);

/* A new random secret: prefix + 43 characters of base64url (256 bits).
 * Caller frees. */
char *tn_token_generate(const char *prefix);
/* The stored form of a secret: sha256 hex. */
void tn_token_hash(const char *token, char out[65]);

#endif
