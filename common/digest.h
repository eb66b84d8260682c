/* digest.h - streaming SHA-256 (OpenSSL EVP) and its lowercase hex form. */
#ifndef TN_DIGEST_H
#define TN_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TN_SHA256_LEN 32
#define TN_SHA256_HEX_LEN 64 /* plus one byte for the NUL */

struct tn_sha256; /* opaque */

/* Caller frees with tn_sha256_free.  Aborts on OOM like xmalloc (and on an
 * OpenSSL failure, which can only mean OOM or a broken installation). */
struct tn_sha256 *tn_sha256_new(void);
void tn_sha256_update(struct tn_sha256 *h, const void *data, size_t len);
/* Finishes the hash; h may not be updated or finished again until
 * tn_sha256_reset (doing so is a bug and aborts). */
void tn_sha256_final(struct tn_sha256 *h, uint8_t out[TN_SHA256_LEN]);
void tn_sha256_final_hex(struct tn_sha256 *h, char out[TN_SHA256_HEX_LEN + 1]);
void tn_sha256_reset(struct tn_sha256 *h);
void tn_sha256_free(struct tn_sha256 *h);

/* One-shot helpers. */
void tn_sha256_hex(const void *data, size_t len, char out[TN_SHA256_HEX_LEN + 1]);
/* Hashes a regular file in 64 KiB reads.  TN_E_NOT_FOUND when it does not
 * exist, TN_E_INVALID when it is not a regular file, TN_E_IO otherwise. */
int tn_sha256_file_hex(const char *path, char out[TN_SHA256_HEX_LEN + 1],
		       struct tn_error *err) TN_MUST_CHECK;

/* Lowercase hex of in, NUL-terminated; out has room for 2*len+1 bytes. */
void tn_hex_encode(const uint8_t *in, size_t len, char *out /* 2*len+1 */);
/* true when s is exactly 64 lowercase hex digits. */
bool tn_sha256_hex_valid(const char *s);

#endif
