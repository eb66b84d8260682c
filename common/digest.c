/* digest.c - SHA-256 through OpenSSL EVP: a streaming context, one-shot and
 * file helpers, and lowercase hex.  OpenSSL failures here can only mean
 * out-of-memory or a broken installation, so they abort like xmalloc. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fsutil.h"
#include "xalloc.h"

#define FILE_CHUNK (64 * 1024)

struct tn_sha256 {
	EVP_MD_CTX *ctx;
	bool done; /* final was called; update/final again is a bug */
};

static void fatal(const char *what)
{
	fprintf(stderr, "fatal tender event=sha256_failed op=%s\n", what);
	abort();
}

struct tn_sha256 *tn_sha256_new(void)
{
	struct tn_sha256 *h = xmalloc(sizeof *h);

	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx)
		fatal("new");
	h->done = false;
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		fatal("init");
	return h;
}

void tn_sha256_update(struct tn_sha256 *h, const void *data, size_t len)
{
	if (h->done)
		fatal("update_after_final");
	if (len && EVP_DigestUpdate(h->ctx, data, len) != 1)
		fatal("update");
}

void tn_sha256_final(struct tn_sha256 *h, uint8_t out[TN_SHA256_LEN])
{
	unsigned int n = 0;

	if (h->done)
		fatal("final_twice");
	if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != TN_SHA256_LEN)
		fatal("final");
	h->done = true;
}

void tn_sha256_final_hex(struct tn_sha256 *h, char out[TN_SHA256_HEX_LEN + 1])
{
	uint8_t md[TN_SHA256_LEN];

	tn_sha256_final(h, md);
	tn_hex_encode(md, sizeof md, out);
}

void tn_sha256_reset(struct tn_sha256 *h)
{
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		fatal("init");
	h->done = false;
}

void tn_sha256_free(struct tn_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void tn_sha256_hex(const void *data, size_t len, char out[TN_SHA256_HEX_LEN + 1])
{
	struct tn_sha256 *h = tn_sha256_new();

	tn_sha256_update(h, data, len);
	tn_sha256_final_hex(h, out);
	tn_sha256_free(h);
}

int tn_sha256_file_hex(const char *path, char out[TN_SHA256_HEX_LEN + 1], struct tn_error *err)
{
	struct tn_sha256 *h = NULL;
	uint8_t *buf = NULL;
	int fd = -1;
	int rc;

	if ((rc = tn_open_regular(path, "sha256", &fd, NULL, err)))
		goto out;

	h = tn_sha256_new();
	buf = xmalloc(FILE_CHUNK);
	for (;;) {
		ssize_t n = read(fd, buf, FILE_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tn_fail_errno(err, errno, "sha256 %s: read", path);
			goto out;
		}
		if (n == 0)
			break;
		tn_sha256_update(h, buf, (size_t)n);
	}
	tn_sha256_final_hex(h, out);
	rc = 0;
out:
	free(buf);
	tn_sha256_free(h);
	if (fd >= 0)
		close(fd);
	return rc;
}

void tn_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

bool tn_sha256_hex_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < TN_SHA256_HEX_LEN; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false; /* also stops at an early NUL */
	}
	return s[i] == '\0';
}
