/* sign.c - Ed25519 keys and signatures through OpenSSL 3 EVP, strict
 * base64, and the CSPRNG.  Private keys live on disk as unencrypted PKCS#8
 * PEM, mode 0600, written atomically. */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "fsutil.h"
#include "xalloc.h"

/* An Ed25519 PKCS#8 PEM is about 120 bytes; the cap still admits large RSA
 * or EC keys so that they are refused by type, with a clear message. */
#define PEM_MAX (16 * 1024)

/* base64 works in groups: 3 bytes <-> 4 characters.  Chunks are a whole
 * number of groups and small enough for OpenSSL's int lengths. */
#define B64_CHUNK_GROUPS (16 * 1024)

struct tn_key {
	EVP_PKEY *pkey; /* always of type ED25519 */
	bool has_private;
};

static void fatal(const char *what)
{
	fprintf(stderr, "fatal tender event=openssl_failed op=%s\n", what);
	abort();
}

/* tn_fail with the reason OpenSSL left in its (per-thread) error queue
 * appended; the queue is emptied so no later call reports a stale reason. */
static int ossl_fail(struct tn_error *err, enum tn_errcode code, const char *fmt, ...)
	TN_PRINTF(3, 4);
static int ossl_fail(struct tn_error *err, enum tn_errcode code, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	char msg[TN_ERROR_MESSAGE_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (reason)
		rc = tn_fail(err, code, "%s: %s", msg, reason);
	else
		rc = tn_fail(err, code, "%s", msg);
	ERR_clear_error();
	return rc;
}

static struct tn_key *key_wrap(EVP_PKEY *pkey, bool has_private)
{
	struct tn_key *key = xmalloc(sizeof *key);

	key->pkey = pkey;
	key->has_private = has_private;
	return key;
}

/* ---------------------------------------------------------------- random */

void tn_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			fatal("rand_bytes");
		p += chunk;
		n -= (size_t)chunk;
	}
}

/* ---------------------------------------------------------------- base64 */

char *tn_base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t groups = len / 3 + (len % 3 != 0);
	char *out, *o;

	if (groups > (SIZE_MAX - 1) / 4)
		fatal("base64_encode_size");
	out = xmalloc(4 * groups + 1);
	o = out;
	*o = '\0';
	/* Whole groups encode independently, so the chunks concatenate to the
	 * encoding of the whole input; only the last chunk is padded. */
	while (len > 0) {
		size_t n = len > 3 * B64_CHUNK_GROUPS ? 3 * B64_CHUNK_GROUPS : len;
		int w = EVP_EncodeBlock((unsigned char *)o, in, (int)n);

		if (w < 0)
			fatal("base64_encode");
		o += w;
		in += n;
		len -= n;
	}
	*o = '\0';
	return out;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The 6-bit value of a base64 character already checked by b64_char. */
static unsigned b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0' + 52);
	return c == '+' ? 62 : 63;
}

int tn_base64_decode(const char *b64, size_t max_out, uint8_t **out, size_t *out_len,
		     struct tn_error *err)
{
	size_t max_chars, n, pad = 0, len;
	uint8_t *buf = NULL;
	size_t done = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (max_out / 3 >= (PTRDIFF_MAX - 8) / 4)
		max_chars = PTRDIFF_MAX - 1; /* "no limit", as large as an object */
	else
		max_chars = max_out / 3 * 4 + (max_out % 3 ? 4 : 0);
	/* Bounded scan: anything longer than max_chars is refused unread. */
	n = strnlen(b64, max_chars + 1);
	if (n > max_chars) {
		rc = tn_fail(err, TN_E_INVALID, "base64: longer than %zu bytes", max_out);
		goto out;
	}
	if (n % 4 != 0) {
		rc = tn_fail(err, TN_E_INVALID, "base64: length %zu is not a multiple of 4", n);
		goto out;
	}
	/* EVP_DecodeBlock skips whitespace and takes '=' anywhere in a group
	 * ("Q===", "===="), so the alphabet and the padding are checked here. */
	if (n > 0 && b64[n - 1] == '=')
		pad = b64[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++) {
		if (!b64_char(b64[i])) {
			rc = tn_fail(err, TN_E_INVALID, "base64: invalid character at offset %zu",
				     i);
			goto out;
		}
	}
	/* Canonical form only: the bits the padding cuts off must be zero, so
	 * each byte string has exactly one accepted encoding. */
	if (pad > 0 && (b64_value(b64[n - pad - 1]) & (pad == 2 ? 0x0f : 0x03))) {
		rc = tn_fail(err, TN_E_INVALID, "base64: non-zero bits before the padding");
		goto out;
	}
	len = n / 4 * 3 - pad;
	if (len > max_out) {
		rc = tn_fail(err, TN_E_INVALID, "base64: longer than %zu bytes", max_out);
		goto out;
	}

	/* DecodeBlock writes whole groups, padding included as zero bytes. */
	buf = xmalloc(n / 4 * 3 + 1);
	while (done < n) {
		size_t chunk = n - done > 4 * B64_CHUNK_GROUPS ? 4 * B64_CHUNK_GROUPS : n - done;
		int w = EVP_DecodeBlock(buf + done / 4 * 3, (const unsigned char *)b64 + done,
					(int)chunk);

		if (w < 0 || (size_t)w != chunk / 4 * 3) {
			rc = ossl_fail(err, TN_E_INVALID, "base64: cannot decode");
			goto out;
		}
		done += chunk;
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- keys */

int tn_key_generate(struct tn_key **out, struct tn_error *err)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	*out = NULL;
	if (!pkey)
		return ossl_fail(err, TN_E_INTERNAL, "generate Ed25519 key");
	*out = key_wrap(pkey, true);
	return 0;
}

void tn_key_free(struct tn_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* Never asks for a passphrase: an encrypted key file is refused instead of
 * OpenSSL's default of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Reads at most PEM_MAX bytes of a regular file; *out is caller-freed with
 * OPENSSL_clear_free (it holds a secret).  ENOENT is TN_E_NOT_FOUND. */
static int read_pem(const char *path, char **out, size_t *out_len, struct tn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	off_t size = 0;
	int fd = -1;
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = tn_open_regular(path, "key", &fd, &size, err)))
		goto out;
	if (size > PEM_MAX) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "key %s: larger than %d bytes", path, PEM_MAX);
		goto out;
	}
	/* One byte more than the cap, in case the file grew since fstat. */
	buf = OPENSSL_malloc(PEM_MAX + 1);
	if (!buf)
		fatal("malloc");
	while (len <= PEM_MAX) {
		ssize_t n = read(fd, buf + len, PEM_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tn_fail_errno(err, errno, "key %s: read", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > PEM_MAX) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "key %s: larger than %d bytes", path, PEM_MAX);
		goto out;
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	OPENSSL_clear_free(buf, PEM_MAX + 1);
	if (fd >= 0)
		close(fd);
	return rc;
}

int tn_key_load_private_pem(const char *path, struct tn_key **out, struct tn_error *err)
{
	EVP_PKEY *pkey = NULL;
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = read_pem(path, &pem, &len, err);
	if (rc < 0)
		goto out;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		fatal("bio_new_mem_buf");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!pkey) {
		rc = ossl_fail(err, TN_E_INVALID, "key %s: not an unencrypted PEM private key",
			       path);
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		const char *type = EVP_PKEY_get0_type_name(pkey);

		rc = tn_fail(err, TN_E_INVALID, "key %s: %s key, not Ed25519", path,
			     type ? type : "unknown");
		goto out;
	}
	*out = key_wrap(pkey, true);
	pkey = NULL;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	OPENSSL_clear_free(pem, PEM_MAX + 1);
	return rc;
}

int tn_key_save_private_pem(const struct tn_key *key, const char *path, struct tn_error *err)
{
	BIO *bio = NULL;
	char *data = NULL;
	long len;
	int rc;

	if (!key->has_private) {
		rc = tn_fail(err, TN_E_INVALID, "key %s: a public key has no private part to save",
			     path);
		goto out;
	}
	/* A secure-memory BIO is a memory BIO whose buffer is wiped on free. */
	bio = BIO_new(BIO_s_secmem());
	if (!bio)
		fatal("bio_new");
	if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = ossl_fail(err, TN_E_INTERNAL, "key %s: cannot encode as PEM", path);
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data) {
		rc = tn_fail(err, TN_E_INTERNAL, "key %s: empty PEM encoding", path);
		goto out;
	}
	rc = tn_write_file_atomic(path, data, (size_t)len, 0600, err);
	if (rc < 0)
		tn_error_prefix(err, "key %s", path);
out:
	BIO_free(bio);
	return rc;
}

int tn_key_load_or_create(const char *path, struct tn_key **out, struct tn_error *err)
{
	struct tn_key *key = NULL;
	int rc;

	*out = NULL;
	rc = tn_key_load_private_pem(path, &key, err);
	if (rc != -(int)TN_E_NOT_FOUND)
		goto out; /* loaded, or a file that is there but unusable */

	rc = tn_key_generate(&key, err);
	if (rc < 0)
		goto out;
	rc = tn_key_save_private_pem(key, path, err);
out:
	if (rc < 0) {
		tn_key_free(key);
		key = NULL;
	}
	*out = key;
	return rc;
}

int tn_key_from_public_b64(const char *b64, struct tn_key **out, struct tn_error *err)
{
	uint8_t *raw = NULL;
	EVP_PKEY *pkey;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = tn_base64_decode(b64, TN_ED25519_PUB_LEN, &raw, &len, err);
	if (rc < 0) {
		tn_error_prefix(err, "public key");
		goto out;
	}
	if (len != TN_ED25519_PUB_LEN) {
		rc = tn_fail(err, TN_E_INVALID, "public key: %zu bytes, not %d", len,
			     TN_ED25519_PUB_LEN);
		goto out;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
	if (!pkey) {
		rc = ossl_fail(err, TN_E_INVALID, "public key: not an Ed25519 key");
		goto out;
	}
	*out = key_wrap(pkey, false);
	rc = 0;
out:
	free(raw);
	return rc;
}

char *tn_key_public_b64(const struct tn_key *key)
{
	uint8_t raw[TN_ED25519_PUB_LEN];
	size_t len = sizeof raw;

	if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &len) != 1 || len != sizeof raw)
		fatal("get_raw_public_key");
	return tn_base64_encode(raw, len);
}

/* ---------------------------------------------------------------- signatures */

int tn_sign_b64(const struct tn_key *key, const void *data, size_t len, char **sig_b64,
		struct tn_error *err)
{
	static const uint8_t empty[1];
	uint8_t sig[TN_ED25519_SIG_LEN];
	size_t sig_len = sizeof sig;
	EVP_MD_CTX *ctx = NULL;
	int rc;

	*sig_b64 = NULL;
	if (!key->has_private) {
		rc = tn_fail(err, TN_E_INVALID, "sign: a public key cannot sign");
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		fatal("md_ctx_new");
	/* Ed25519 is one-shot: no digest is named, the message goes in whole. */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, data ? data : empty, len) != 1 ||
	    sig_len != sizeof sig) {
		rc = ossl_fail(err, TN_E_INTERNAL, "sign: Ed25519 signing failed");
		goto out;
	}
	*sig_b64 = tn_base64_encode(sig, sig_len);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int tn_verify_b64(const struct tn_key *key, const void *data, size_t len, const char *sig_b64,
		  struct tn_error *err)
{
	static const uint8_t empty[1];
	EVP_MD_CTX *ctx = NULL;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	int rc;

	rc = tn_base64_decode(sig_b64, TN_ED25519_SIG_LEN, &sig, &sig_len, NULL);
	if (rc < 0 || sig_len != TN_ED25519_SIG_LEN) {
		rc = tn_fail(err, TN_E_SIGNATURE,
			     "signature: not base64 of a %d-byte Ed25519 signature",
			     TN_ED25519_SIG_LEN);
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		fatal("md_ctx_new");
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) != 1) {
		rc = ossl_fail(err, TN_E_INTERNAL, "signature: cannot start verification");
		goto out;
	}
	/* 1 is valid; 0 (mismatch) and negative (malformed) are both refusals. */
	if (EVP_DigestVerify(ctx, sig, sig_len, data ? data : empty, len) != 1) {
		ERR_clear_error();
		rc = tn_fail(err, TN_E_SIGNATURE, "signature: does not verify");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(sig);
	return rc;
}
