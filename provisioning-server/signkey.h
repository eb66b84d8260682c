/* signkey.h - the server's Ed25519 signing key on disk and its rotation.
 *
 *   DATA/server.key        the key that signs now (PKCS#8 PEM, 0600)
 *   DATA/server.key.chain  one endorsement a line, oldest first
 *                          (keychain.h): how agents that pinned an older
 *                          key reach this one
 *   DATA/server.key.next   a rotation under way (for a moment only)
 *
 * A rotation writes the new key aside, then the chain with the new
 * endorsement, then renames the new key into place: a crash at any point
 * leaves either the old key with the old chain or the new key with the new
 * chain once the next open finishes or undoes the step. */
#ifndef TN_SIGNKEY_H
#define TN_SIGNKEY_H

#include "error.h"
#include "sign.h"

/* Loads (or on the first start creates) the signing key, finishes or
 * undoes a rotation that was cut short, and checks the chain against the
 * key (keychain.h: tn_keychain_check).  *key is the caller's
 * (tn_key_free); *endorsements (caller frees) is the chain as the
 * Tender-Key-Endorsement header value, NULL while the key was never
 * rotated. */
int tn_signkey_open(const char *data_dir, struct tn_key **key, char **endorsements,
		    struct tn_error *err) TN_MUST_CHECK;

/* Rotates the signing key of data_dir (whose server must not run: the
 * caller holds the data directory's lock): a new key, endorsed by the
 * current one.  *old_b64 and *new_b64 (caller frees) are the public keys.
 * TN_E_NOT_FOUND when there is no key yet (a server never started). */
int tn_signkey_rotate(const char *data_dir, char **old_b64, char **new_b64,
		      struct tn_error *err) TN_MUST_CHECK;

#endif
