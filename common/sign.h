/* sign.h - Ed25519 keys, signatures and base64, through OpenSSL 3 EVP.
 * The server signs desired documents; agents verify them with the server's
 * public key, exchanged as base64 of the 32 raw key bytes. */
#ifndef TN_SIGN_H
#define TN_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TN_ED25519_SIG_LEN 64
#define TN_ED25519_PUB_LEN 32

struct tn_key; /* opaque; a private key (can sign) or a public key (verify only) */

/* Every function that gives a key sets *out to NULL on failure; the caller
 * frees a key with tn_key_free. */

/* Generates a new key pair. */
int tn_key_generate(struct tn_key **out, struct tn_error *err) TN_MUST_CHECK;
/* Loads the private key from a PEM file (PKCS#8), or generates one and
 * writes it there (mode 0600, write-temp + fsync + rename) when the file
 * does not exist.  A file that exists but is unusable is an error, never
 * replaced.  Two processes creating the same missing file at once may each
 * keep their own key while only the later rename stays on disk: call it
 * from one process (the server at start-up). */
int tn_key_load_or_create(const char *path, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
/* Reads an unencrypted PEM private key of at most 16 KiB.  TN_E_NOT_FOUND
 * when path does not exist; TN_E_INVALID for a key that is not Ed25519, an
 * encrypted key (no passphrase prompt), or anything not a private key;
 * TN_E_TOO_LARGE over the cap. */
int tn_key_load_private_pem(const char *path, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
/* Writes key as PKCS#8 PEM, mode 0600, atomically (replacing any file at
 * path).  TN_E_INVALID for a public-only key. */
int tn_key_save_private_pem(const struct tn_key *key, const char *path,
			    struct tn_error *err) TN_MUST_CHECK;
/* A public-only key from base64 of the raw 32 bytes (TN_E_INVALID for
 * anything else). */
int tn_key_from_public_b64(const char *b64, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
/* base64 of the raw 32 public bytes; caller frees. */
char *tn_key_public_b64(const struct tn_key *key);
void tn_key_free(struct tn_key *key);

/* Signs data (NULL with len 0 is the empty message); *sig_b64 is base64 of
 * the 64-byte signature, caller frees, NULL on failure.  TN_E_INVALID for a
 * public-only key. */
int tn_sign_b64(const struct tn_key *key, const void *data, size_t len, char **sig_b64,
		struct tn_error *err) TN_MUST_CHECK;
/* 0 when sig_b64 is a valid signature of data by key; TN_E_SIGNATURE when
 * it is not (or is not valid base64 of 64 bytes). */
int tn_verify_b64(const struct tn_key *key, const void *data, size_t len,
		  const char *sig_b64, struct tn_error *err) TN_MUST_CHECK;

/* Standard base64 (RFC 4648 alphabet) with padding.  Encode: caller frees.
 * Decode is strict: padding required, no whitespace or line breaks, no
 * url-safe characters, no non-zero bits hidden by the padding.  *out is
 * caller-freed (binary, not NUL-terminated; NULL on failure);
 * fails with TN_E_INVALID on bad input or when the result would be longer
 * than max_out bytes (checked before anything is decoded). */
char *tn_base64_encode(const void *data, size_t len);
int tn_base64_decode(const char *b64, size_t max_out, uint8_t **out, size_t *out_len,
		     struct tn_error *err) TN_MUST_CHECK;

/* n random bytes from the OS CSPRNG (RAND_bytes); aborts if it fails. */
void tn_random_bytes(void *buf, size_t n);

#endif
