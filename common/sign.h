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

/* Generates a new key pair.  Caller frees with tn_key_free. */
int tn_key_generate(struct tn_key **out, struct tn_error *err) TN_MUST_CHECK;
/* Loads the private key from a PEM file (PKCS#8), or generates one and
 * writes it there (mode 0600, write-temp + fsync + rename) when the file
 * does not exist. */
int tn_key_load_or_create(const char *path, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
int tn_key_load_private_pem(const char *path, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
int tn_key_save_private_pem(const struct tn_key *key, const char *path,
			    struct tn_error *err) TN_MUST_CHECK;
/* A public-only key from base64 of the raw 32 bytes. */
int tn_key_from_public_b64(const char *b64, struct tn_key **out, struct tn_error *err)
	TN_MUST_CHECK;
/* base64 of the raw 32 public bytes; caller frees. */
char *tn_key_public_b64(const struct tn_key *key);
void tn_key_free(struct tn_key *key);

/* Signs data; *sig_b64 is base64 of the 64-byte signature, caller frees. */
int tn_sign_b64(const struct tn_key *key, const void *data, size_t len, char **sig_b64,
		struct tn_error *err) TN_MUST_CHECK;
/* 0 when sig_b64 is a valid signature of data by key; TN_E_SIGNATURE when
 * it is not (or is not valid base64 of 64 bytes). */
int tn_verify_b64(const struct tn_key *key, const void *data, size_t len,
		  const char *sig_b64, struct tn_error *err) TN_MUST_CHECK;

/* Standard base64 with padding.  Encode: caller frees.  Decode: *out is
 * caller-freed, fails with TN_E_INVALID on bad input; at most max_out bytes. */
char *tn_base64_encode(const void *data, size_t len);
int tn_base64_decode(const char *b64, size_t max_out, uint8_t **out, size_t *out_len,
		     struct tn_error *err) TN_MUST_CHECK;

/* n random bytes from the OS CSPRNG (RAND_bytes); aborts if it fails. */
void tn_random_bytes(void *buf, size_t n);

#endif
