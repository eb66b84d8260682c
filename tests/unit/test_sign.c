/* test_sign.c - Ed25519 sign/verify (RFC 8032 vectors, tampering), key
 * files (atomic 0600 writes, reload, refusal of other key types), strict
 * base64 and the random source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sign.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- helpers */

/* Per-test scratch directory: *state is its path. */
static int make_dir(void **state)
{
	const char *tmpdir = getenv("TMPDIR");
	char *dir = xasprintf("%s/tn-sign-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");

	if (!mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

/* The scratch directory is flat: unlink its entries, then rmdir it. */
static int remove_dir(void **state)
{
	char *dir = *state;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (unlink(p) < 0)
			rc = -1;
		free(p);
	}
	closedir(d);
	if (rmdir(dir) < 0)
		rc = -1;
	free(dir);
	return rc;
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Whole file as a NUL-terminated string; caller frees. */
static char *read_whole(const char *path)
{
	char *buf = xmalloc(65536);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, 65535);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* Writes pkey as PEM (PKCS#8), encrypted with pass when it is not NULL. */
static void write_pem(const char *path, EVP_PKEY *pkey, const char *pass)
{
	BIO *bio = BIO_new_file(path, "w");

	assert_non_null(bio);
	if (pass)
		assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, EVP_aes_256_cbc(),
							  (const unsigned char *)pass,
							  (int)strlen(pass), NULL, NULL),
				 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
	BIO_free(bio);
}

static void hex_decode(const char *hex, uint8_t *out, size_t len)
{
	assert_int_equal(strlen(hex), 2 * len);
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void expect_verify_fails(const struct tn_key *key, const void *data, size_t len,
				const char *sig)
{
	struct tn_error err;

	assert_int_equal(tn_verify_b64(key, data, len, sig, &err), -(int)TN_E_SIGNATURE);
	assert_int_equal(err.code, TN_E_SIGNATURE);
	assert_string_equal(tn_errcode_name(err.code), "bad_signature");
}

static char *sign_or_die(const struct tn_key *key, const void *data, size_t len)
{
	struct tn_error err;
	char *sig = NULL;

	assert_int_equal(tn_sign_b64(key, data, len, &sig, &err), 0);
	assert_non_null(sig);
	return sig;
}

/* ---------------------------------------------------------------- random */

static void test_random_bytes(void **state)
{
	uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};

	tn_random_bytes(a, sizeof a);
	tn_random_bytes(b, sizeof b);
	assert_memory_not_equal(a, b, sizeof a);
	assert_memory_not_equal(a, zero, sizeof a);
	tn_random_bytes(a, 0);
}

/* ---------------------------------------------------------------- base64 */

static void test_base64_rfc4648_vectors(void **state)
{
	static const struct {
		const char *plain, *b64;
	} v[] = {
		{"", ""},
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		size_t n = strlen(v[i].plain), len = 99;
		struct tn_error err;
		uint8_t *out = NULL;
		char *enc = tn_base64_encode(v[i].plain, n);

		assert_string_equal(enc, v[i].b64);
		free(enc);
		assert_int_equal(tn_base64_decode(v[i].b64, 16, &out, &len, &err), 0);
		assert_non_null(out);
		assert_int_equal(len, n);
		assert_memory_equal(out, v[i].plain, n);
		free(out);
	}
}

static void test_base64_round_trips(void **state)
{
	/* Every length up to 300, then one larger than an encode/decode chunk
	 * (16 Ki groups) so the chunked paths are crossed. */
	size_t big = 3 * 16 * 1024 * 4 + 2;
	uint8_t *data = xmalloc(big);

	tn_random_bytes(data, big);
	for (size_t n = 0; n <= 301; n++) {
		size_t len = n == 301 ? big : n;
		char *enc = tn_base64_encode(data, len);
		uint8_t *out = NULL;
		size_t out_len = 0;
		struct tn_error err;

		assert_int_equal(strlen(enc), (len + 2) / 3 * 4);
		assert_int_equal(tn_base64_decode(enc, len, &out, &out_len, &err), 0);
		assert_int_equal(out_len, len);
		assert_memory_equal(out, data, len);
		free(out);
		/* One byte under the cap is refused. */
		if (len > 0) {
			out = (uint8_t *)"x";
			assert_int_equal(tn_base64_decode(enc, len - 1, &out, &out_len, &err),
					 -(int)TN_E_INVALID);
			assert_null(out);
			assert_int_equal(out_len, 0);
		}
		free(enc);
	}
	free(data);
}

static void test_base64_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg",         /* no padding */
		"Zg=",        /* short padding */
		"Zm9",        /* not a whole group */
		"Z===",       /* three '=' */
		"====",       /* only padding */
		"=Zg=",       /* padding first */
		"Zg==Zg==",   /* padding inside */
		"Zm=v",       /* '=' mid-group */
		"Zm9v\n",     /* trailing newline */
		" Zm9v",      /* leading space */
		"Zm 9v",      /* inner space */
		"Zm9v\r\n",   /* CRLF */
		"Zm9v    ",   /* trailing spaces, a whole group of them */
		"    Zm9v",   /* leading spaces, likewise */
		"Zm-v",       /* url-safe alphabet */
		"Zm_v",       /* url-safe alphabet */
		"Zm9v!!!!",   /* garbage */
		"Zh==",       /* non-zero bits cut by the padding */
		"Zm9=",       /* same, one '=' */
		"Zm9v\xc3\xa9\xc3\xa9", /* non-ASCII */
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tn_error err;
		uint8_t *out = NULL;
		size_t len = 0;

		assert_int_equal(tn_base64_decode(bad[i], 64, &out, &len, &err),
				 -(int)TN_E_INVALID);
		assert_int_equal(err.code, TN_E_INVALID);
		assert_null(out);
	}
}

/* ---------------------------------------------------------------- signatures */

static void test_sign_verify_round_trip(void **state)
{
	const char msg[] = "{\"desired\":[\"a-1.0.0\"]}";
	struct tn_key *key = NULL;
	struct tn_error err;
	char *sig, *sig2, *empty;

	assert_int_equal(tn_key_generate(&key, &err), 0);
	sig = sign_or_die(key, msg, strlen(msg));
	assert_int_equal(strlen(sig), 88); /* base64 of 64 bytes */
	assert_int_equal(tn_verify_b64(key, msg, strlen(msg), sig, &err), 0);

	/* Ed25519 is deterministic. */
	sig2 = sign_or_die(key, msg, strlen(msg));
	assert_string_equal(sig, sig2);

	/* The empty message, given as NULL or "". */
	empty = sign_or_die(key, NULL, 0);
	assert_int_equal(tn_verify_b64(key, "", 0, empty, &err), 0);
	assert_int_equal(tn_verify_b64(key, NULL, 0, empty, NULL), 0);
	expect_verify_fails(key, "x", 1, empty);

	free(empty);
	free(sig2);
	free(sig);
	tn_key_free(key);
	tn_key_free(NULL);
}

static void test_verify_rejects_tampered_body(void **state)
{
	char msg[] = "{\"desired\":[\"a-1.0.0\"]}";
	size_t len = strlen(msg);
	struct tn_key *key = NULL;
	struct tn_error err;
	char *sig;

	assert_int_equal(tn_key_generate(&key, &err), 0);
	sig = sign_or_die(key, msg, len);

	msg[len - 3] ^= 0x01; /* one bit */
	expect_verify_fails(key, msg, len, sig);
	msg[len - 3] ^= 0x01;
	expect_verify_fails(key, msg, len - 1, sig); /* truncated body */
	expect_verify_fails(key, msg, len + 1, sig); /* extended (by its NUL) */
	assert_int_equal(tn_verify_b64(key, msg, len, sig, &err), 0);

	free(sig);
	tn_key_free(key);
}

static void test_verify_rejects_other_key(void **state)
{
	const char msg[] = "hello";
	struct tn_key *a = NULL, *b = NULL;
	struct tn_error err;
	char *sig_a, *sig_b;

	assert_int_equal(tn_key_generate(&a, &err), 0);
	assert_int_equal(tn_key_generate(&b, &err), 0);
	sig_a = sign_or_die(a, msg, 5);
	sig_b = sign_or_die(b, msg, 5);
	assert_string_not_equal(sig_a, sig_b);
	expect_verify_fails(b, msg, 5, sig_a);
	expect_verify_fails(a, msg, 5, sig_b);
	free(sig_a);
	free(sig_b);
	tn_key_free(a);
	tn_key_free(b);
}

static void test_verify_rejects_malformed_signatures(void **state)
{
	const char msg[] = "hello";
	struct tn_key *key = NULL;
	struct tn_error err;
	uint8_t raw[65], *dec = NULL;
	size_t dec_len = 0;
	char *sig, *s;

	assert_int_equal(tn_key_generate(&key, &err), 0);
	sig = sign_or_die(key, msg, 5);

	/* Truncated: by a whole group (63 bytes), by one character (bad
	 * base64), and the empty string. */
	s = xstrndup(sig, 84);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	s = xstrndup(sig, 87);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	expect_verify_fails(key, msg, 5, "");

	/* Garbage and near misses of the encoding. */
	expect_verify_fails(key, msg, 5, "not a signature");
	expect_verify_fails(key, msg, 5, "!!!!");
	s = xasprintf("%s\n", sig);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	s = xasprintf(" %s", sig);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	s = xasprintf("%sAAAA", sig);
	expect_verify_fails(key, msg, 5, s);
	free(s);

	/* Valid base64 of the wrong length: 63, 65 and 32 bytes. */
	assert_int_equal(tn_base64_decode(sig, 64, &dec, &dec_len, &err), 0);
	assert_int_equal(dec_len, 64);
	memcpy(raw, dec, 64);
	raw[64] = 0;
	s = tn_base64_encode(raw, 63);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	s = tn_base64_encode(raw, 65);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	s = tn_base64_encode(raw, 32);
	expect_verify_fails(key, msg, 5, s);
	free(s);

	/* Right length, one bit flipped in R and in S; all zeros. */
	raw[0] ^= 0x80;
	s = tn_base64_encode(raw, 64);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	raw[0] ^= 0x80;
	raw[40] ^= 0x01;
	s = tn_base64_encode(raw, 64);
	expect_verify_fails(key, msg, 5, s);
	free(s);
	memset(raw, 0, sizeof raw);
	s = tn_base64_encode(raw, 64);
	expect_verify_fails(key, msg, 5, s);
	free(s);

	/* Still fine afterwards (no stale OpenSSL error state). */
	assert_int_equal(tn_verify_b64(key, msg, 5, sig, &err), 0);

	free(dec);
	free(sig);
	tn_key_free(key);
}

static void test_public_key_b64(void **state)
{
	const char msg[] = "hello";
	struct tn_key *key = NULL, *pub = NULL;
	struct tn_error err;
	char *b64, *b64_again, *sig, *none = (char *)"x";
	uint8_t *raw = NULL;
	size_t len = 0;

	assert_int_equal(tn_key_generate(&key, &err), 0);
	b64 = tn_key_public_b64(key);
	assert_int_equal(strlen(b64), 44);
	assert_int_equal(tn_base64_decode(b64, 64, &raw, &len, &err), 0);
	assert_int_equal(len, TN_ED25519_PUB_LEN);

	assert_int_equal(tn_key_from_public_b64(b64, &pub, &err), 0);
	b64_again = tn_key_public_b64(pub);
	assert_string_equal(b64, b64_again);

	/* The public key verifies what the private key signed... */
	sig = sign_or_die(key, msg, 5);
	assert_int_equal(tn_verify_b64(pub, msg, 5, sig, &err), 0);
	expect_verify_fails(pub, "hellO", 5, sig);
	/* ...and can neither sign nor be saved as a private key. */
	assert_int_equal(tn_sign_b64(pub, msg, 5, &none, &err), -(int)TN_E_INVALID);
	assert_null(none);
	assert_int_equal(tn_key_save_private_pem(pub, "/nonexistent/never-written", &err),
			 -(int)TN_E_INVALID);

	free(sig);
	free(raw);
	free(b64_again);
	free(b64);
	tn_key_free(pub);
	tn_key_free(key);
}

static void test_public_key_from_b64_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"AAAA",
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo",   /* missing '=' */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n", /* newline */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUQ==",  /* 31 bytes */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA",  /* 33 bytes */
		"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=",  /* url-safe */
	};
	struct tn_key *key;
	struct tn_error err;

	assert_int_equal(tn_key_from_public_b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
						&key, &err),
			 0);
	tn_key_free(key);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		key = (struct tn_key *)&err; /* must be reset to NULL */
		assert_int_equal(tn_key_from_public_b64(bad[i], &key, &err), -(int)TN_E_INVALID);
		assert_null(key);
		assert_non_null(strstr(err.message, "public key"));
	}
}

/* RFC 8032 section 7.1, tests 1 and 2: a known private key loaded through
 * a PEM file gives the known public key and signatures. */
static void test_rfc8032_vectors(void **state)
{
	static const struct {
		const char *secret, *public, *message, *signature;
	} v[] = {
		{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
		 "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
		 "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		 "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
		 "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
		 "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	};
	const char *dir = *state;
	char *path = xasprintf("%s/rfc.pem", dir);

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint8_t secret[32], public[32], sig[64], msg[1];
		size_t msg_len = strlen(v[i].message) / 2;
		struct tn_key *key = NULL, *pub = NULL;
		char *pub_b64, *want_pub, *got_sig, *want_sig;
		struct tn_error err;
		EVP_PKEY *pkey;

		hex_decode(v[i].secret, secret, 32);
		hex_decode(v[i].public, public, 32);
		hex_decode(v[i].signature, sig, 64);
		hex_decode(v[i].message, msg, msg_len);
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, secret, 32);
		assert_non_null(pkey);
		write_pem(path, pkey, NULL);
		EVP_PKEY_free(pkey);

		assert_int_equal(tn_key_load_private_pem(path, &key, &err), 0);
		pub_b64 = tn_key_public_b64(key);
		want_pub = tn_base64_encode(public, 32);
		assert_string_equal(pub_b64, want_pub);
		got_sig = sign_or_die(key, msg, msg_len);
		want_sig = tn_base64_encode(sig, 64);
		assert_string_equal(got_sig, want_sig);

		assert_int_equal(tn_key_from_public_b64(want_pub, &pub, &err), 0);
		assert_int_equal(tn_verify_b64(pub, msg, msg_len, want_sig, &err), 0);

		free(want_sig);
		free(got_sig);
		free(want_pub);
		free(pub_b64);
		tn_key_free(pub);
		tn_key_free(key);
	}
	free(path);
}

/* ---------------------------------------------------------------- key files */

static void assert_mode_0600(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_key_save_load_round_trip(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/server.pem", dir);
	struct tn_key *key = NULL, *loaded = NULL;
	struct tn_error err;
	char *b64, *b64_loaded, *sig, *pem;
	mode_t old_umask;

	assert_int_equal(tn_key_generate(&key, &err), 0);
	/* A permissive umask must not widen the mode. */
	old_umask = umask(0);
	assert_int_equal(tn_key_save_private_pem(key, path, &err), 0);
	umask(old_umask);
	assert_mode_0600(path);
	assert_int_equal(count_entries(dir), 1); /* no temp file left behind */
	pem = read_whole(path);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----\n"));
	free(pem);

	assert_int_equal(tn_key_load_private_pem(path, &loaded, &err), 0);
	b64 = tn_key_public_b64(key);
	b64_loaded = tn_key_public_b64(loaded);
	assert_string_equal(b64, b64_loaded);
	/* Signs like the original. */
	sig = sign_or_die(loaded, "x", 1);
	assert_int_equal(tn_verify_b64(key, "x", 1, sig, &err), 0);

	free(sig);
	free(b64_loaded);
	free(b64);
	tn_key_free(loaded);
	tn_key_free(key);
	free(path);
}

static void test_save_replaces_existing_file(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/server.pem", dir);
	struct tn_key *key = NULL, *loaded = NULL;
	struct tn_error err;
	char *b64, *b64_loaded;

	write_file(path, "old", 3, 0644);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(tn_key_generate(&key, &err), 0);
	assert_int_equal(tn_key_save_private_pem(key, path, &err), 0);
	assert_mode_0600(path);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(tn_key_load_private_pem(path, &loaded, &err), 0);
	b64 = tn_key_public_b64(key);
	b64_loaded = tn_key_public_b64(loaded);
	assert_string_equal(b64, b64_loaded);

	free(b64_loaded);
	free(b64);
	tn_key_free(loaded);
	tn_key_free(key);
	free(path);
}

static void test_load_or_create(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/agent.pem", dir);
	struct tn_key *first = NULL, *second = NULL, *other = NULL;
	struct tn_error err;
	char *b1, *b2, *b3, *sig;

	assert_int_equal(tn_key_load_or_create(path, &first, &err), 0);
	assert_non_null(first);
	assert_mode_0600(path);
	assert_int_equal(count_entries(dir), 1);

	assert_int_equal(tn_key_load_or_create(path, &second, &err), 0);
	b1 = tn_key_public_b64(first);
	b2 = tn_key_public_b64(second);
	assert_string_equal(b1, b2);
	sig = sign_or_die(second, "doc", 3);
	assert_int_equal(tn_verify_b64(first, "doc", 3, sig, &err), 0);

	/* A different path gets a different key. */
	free(path);
	path = xasprintf("%s/other.pem", dir);
	assert_int_equal(tn_key_load_or_create(path, &other, &err), 0);
	b3 = tn_key_public_b64(other);
	assert_string_not_equal(b1, b3);

	free(sig);
	free(b3);
	free(b2);
	free(b1);
	tn_key_free(other);
	tn_key_free(second);
	tn_key_free(first);
	free(path);
}

static void test_missing_directory_fails(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/no/such/dir/key.pem", dir);
	struct tn_key *key = NULL, *gen = NULL;
	struct tn_error err;

	assert_int_equal(tn_key_load_private_pem(path, &key, &err), -(int)TN_E_NOT_FOUND);
	assert_null(key);
	assert_int_equal(tn_key_load_or_create(path, &key, &err), -(int)TN_E_IO);
	assert_null(key);
	assert_non_null(strstr(err.message, "No such file or directory"));
	assert_int_equal(tn_key_generate(&gen, &err), 0);
	assert_int_equal(tn_key_save_private_pem(gen, path, &err), -(int)TN_E_IO);
	assert_int_equal(count_entries(dir), 0);
	tn_key_free(gen);
	free(path);
}

/* A key of another type is refused by name, and load_or_create leaves the
 * file as it was instead of replacing it with a new key. */
static void expect_refused_type(const char *dir, EVP_PKEY *pkey, const char *type)
{
	char *path = xasprintf("%s/%s.pem", dir, type);
	struct tn_key *key = NULL;
	struct tn_error err;
	char *before, *after;

	assert_non_null(pkey);
	write_pem(path, pkey, NULL);
	before = read_whole(path);

	assert_int_equal(tn_key_load_private_pem(path, &key, &err), -(int)TN_E_INVALID);
	assert_null(key);
	assert_non_null(strstr(err.message, "not Ed25519"));
	assert_non_null(strstr(err.message, type));
	assert_int_equal(tn_key_load_or_create(path, &key, &err), -(int)TN_E_INVALID);
	assert_null(key);

	after = read_whole(path);
	assert_string_equal(before, after);
	free(after);
	free(before);
	free(path);
	EVP_PKEY_free(pkey);
}

static void test_load_refuses_other_key_types(void **state)
{
	const char *dir = *state;

	expect_refused_type(dir, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), "EC");
	expect_refused_type(dir, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), "RSA");
	expect_refused_type(dir, EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), "X25519");
	expect_refused_type(dir, EVP_PKEY_Q_keygen(NULL, NULL, "ED448"), "ED448");
}

static void test_load_refuses_bad_files(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/bad.pem", dir);
	struct tn_key *key = NULL, *gen = NULL;
	struct tn_error err;
	BIO *bio;
	char *big;

	/* Empty, garbage, and a PEM that holds only a public key. */
	write_file(path, "", 0, 0600);
	assert_int_equal(tn_key_load_private_pem(path, &key, &err), -(int)TN_E_INVALID);
	assert_null(key);
	write_file(path, "hello\n", 6, 0600);
	assert_int_equal(tn_key_load_private_pem(path, &key, &err), -(int)TN_E_INVALID);
	assert_int_equal(tn_key_generate(&gen, &err), 0);
	{
		EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

		bio = BIO_new_file(path, "w");
		assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
		BIO_free(bio);
		assert_int_equal(tn_key_load_private_pem(path, &key, &err),
				 -(int)TN_E_INVALID);
		assert_null(key);

		/* Encrypted: refused, never prompting for a passphrase. */
		write_pem(path, pkey, "secret");
		assert_int_equal(tn_key_load_private_pem(path, &key, &err),
				 -(int)TN_E_INVALID);
		assert_null(key);
		assert_non_null(strstr(err.message, "unencrypted"));
		EVP_PKEY_free(pkey);
	}

	/* Over the size cap, even with a valid key at the start. */
	assert_int_equal(tn_key_save_private_pem(gen, path, &err), 0);
	big = xmalloc(20000);
	memset(big, '\n', 20000);
	{
		int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, big, 20000), 20000);
		close(fd);
	}
	assert_int_equal(tn_key_load_private_pem(path, &key, &err), -(int)TN_E_TOO_LARGE);
	assert_null(key);

	/* Not a regular file. */
	assert_int_equal(tn_key_load_private_pem(dir, &key, &err), -(int)TN_E_INVALID);
	assert_non_null(strstr(err.message, "not a regular file"));
	assert_int_equal(tn_key_load_or_create(dir, &key, &err), -(int)TN_E_INVALID);
	assert_null(key);

	free(big);
	tn_key_free(gen);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_base64_rfc4648_vectors),
		cmocka_unit_test(test_base64_round_trips),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_sign_verify_round_trip),
		cmocka_unit_test(test_verify_rejects_tampered_body),
		cmocka_unit_test(test_verify_rejects_other_key),
		cmocka_unit_test(test_verify_rejects_malformed_signatures),
		cmocka_unit_test(test_public_key_b64),
		cmocka_unit_test(test_public_key_from_b64_rejects),
		cmocka_unit_test_setup_teardown(test_rfc8032_vectors, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_key_save_load_round_trip, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_save_replaces_existing_file, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_load_or_create, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_missing_directory_fails, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_load_refuses_other_key_types, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_load_refuses_bad_files, make_dir,
						remove_dir),
	};
	return cmocka_run_group_tests_name("sign", tests, NULL, NULL);
}
