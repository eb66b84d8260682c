/* keychain.h - rotation of the server's Ed25519 signing key by
 * endorsement: each new key is endorsed by the key before it (the old key
 * signs the new public key under a purpose string of its own, so that an
 * endorsement can never pass for a document signature, nor the reverse),
 * and an agent that pinned any key of the chain follows it, link by
 * verified link, to the key that signs now.
 *
 * An endorsement is written "OLD.NEW.SIG" (base64 of the old and the new
 * 32-byte public keys, and of the old key's 64-byte signature over
 * TN_KEYCHAIN_PURPOSE "\n" OLD "\n" NEW "\n"); a chain is its endorsements
 * oldest first, joined by ", " (the Tender-Key-Endorsement header) or one a
 * line (the server's DATA/server.key.chain), each one's NEW the next one's
 * OLD. */
#ifndef TN_KEYCHAIN_H
#define TN_KEYCHAIN_H

#include "error.h"
#include "sign.h"

#define TN_KEYCHAIN_PURPOSE "tender-key-endorsement-v1"
/* Rotations a chain may hold: a bound on the header and on the work of
 * following it. */
#define TN_KEYCHAIN_MAX 64

/* The endorsement of new_key by old_key (a private key) as "OLD.NEW.SIG";
 * *out is caller-freed, NULL on failure. */
int tn_keychain_endorse(const struct tn_key *old_key, const struct tn_key *new_key, char **out,
			struct tn_error *err) TN_MUST_CHECK;

/* The server's check of its own chain (separated by ", " or newlines; NULL
 * or empty is no chain): well-formed, at most TN_KEYCHAIN_MAX links, each
 * link starting where the one before ended, every signature valid, and
 * the last NEW is current_b64.  TN_E_INVALID naming the link otherwise
 * (TN_E_SIGNATURE for a signature that does not verify). */
int tn_keychain_check(const char *chain, const char *current_b64,
		      struct tn_error *err) TN_MUST_CHECK;

/* The agent's walk: from the link whose OLD is pinned_b64, verifies every
 * link to the end of chain and gives in *end_b64 (caller frees) the last
 * NEW; a chain that does not name pinned_b64 as an OLD gives pinned_b64
 * back (there is nothing for this agent to follow).  TN_E_INVALID for a
 * malformed chain (a part that is not a key or a signature, links that do
 * not join, too many), TN_E_SIGNATURE for a link on the walk that its OLD
 * did not sign (a forgery).  Links before the pinned key are not verified:
 * this agent never trusted them. */
int tn_keychain_follow(const char *chain, const char *pinned_b64, char **end_b64,
		       struct tn_error *err) TN_MUST_CHECK;

#endif
