/* test_digest.c - SHA-256 against the FIPS 180-2 vectors, streaming equal to
 * one-shot, files, and the hex helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "xalloc.h"

#define EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* One million 'a' (FIPS 180-2, appendix B.3). */
#define MILLION_A_HEX "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define MILLION 1000000

static void test_known_vectors(void **state)
{
	char hex[TN_SHA256_HEX_LEN + 1];

	tn_sha256_hex("", 0, hex);
	assert_string_equal(hex, EMPTY_HEX);
	tn_sha256_hex(NULL, 0, hex);
	assert_string_equal(hex, EMPTY_HEX);
	tn_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, ABC_HEX);
}

static void test_binary_digest_matches_hex(void **state)
{
	struct tn_sha256 *h = tn_sha256_new();
	uint8_t md[TN_SHA256_LEN];
	char hex[TN_SHA256_HEX_LEN + 1];

	tn_sha256_update(h, "abc", 3);
	tn_sha256_final(h, md);
	tn_hex_encode(md, sizeof md, hex);
	assert_string_equal(hex, ABC_HEX);
	tn_sha256_free(h);
}

static void test_streamed_odd_chunks_equal_one_shot(void **state)
{
	uint8_t *data = xmalloc(MILLION);
	struct tn_sha256 *h = tn_sha256_new();
	char one[TN_SHA256_HEX_LEN + 1], streamed[TN_SHA256_HEX_LEN + 1];
	size_t off = 0, step = 1;

	memset(data, 'a', MILLION);
	tn_sha256_hex(data, MILLION, one);
	assert_string_equal(one, MILLION_A_HEX);

	/* Irregular chunk sizes (1, 8, 57, 400, ... up to 4099) that start
	 * and end at all sorts of offsets within SHA-256's 64-byte blocks. */
	while (off < MILLION) {
		size_t n = step < MILLION - off ? step : MILLION - off;

		tn_sha256_update(h, data + off, n);
		tn_sha256_update(h, data + off, 0);
		off += n;
		step = step * 7 % 4099 + 1;
	}
	tn_sha256_final_hex(h, streamed);
	assert_string_equal(streamed, one);

	/* Different content, same length: a different digest. */
	data[MILLION / 2] = 'b';
	tn_sha256_hex(data, MILLION, one);
	assert_string_not_equal(one, MILLION_A_HEX);

	tn_sha256_free(h);
	free(data);
}

static void test_reset_reuses_context(void **state)
{
	struct tn_sha256 *h = tn_sha256_new();
	char hex[TN_SHA256_HEX_LEN + 1];

	tn_sha256_update(h, "something else", 14);
	tn_sha256_final_hex(h, hex);
	tn_sha256_reset(h);
	tn_sha256_update(h, "ab", 2);
	tn_sha256_update(h, "c", 1);
	tn_sha256_final_hex(h, hex);
	assert_string_equal(hex, ABC_HEX);
	tn_sha256_reset(h);
	tn_sha256_final_hex(h, hex);
	assert_string_equal(hex, EMPTY_HEX);
	tn_sha256_free(h);
	tn_sha256_free(NULL);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void test_file_hex(void **state)
{
	const char *tmpdir = getenv("TMPDIR");
	char *dir = xasprintf("%s/tn-digest-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	char hex[TN_SHA256_HEX_LEN + 1];
	struct tn_error err;
	uint8_t *data = xmalloc(MILLION);
	char *path, *empty;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/a", dir);
	empty = xasprintf("%s/empty", dir);

	/* Larger than the 64 KiB read chunk and not a multiple of it. */
	memset(data, 'a', MILLION);
	write_file(path, data, MILLION);
	assert_int_equal(tn_sha256_file_hex(path, hex, &err), 0);
	assert_string_equal(hex, MILLION_A_HEX);

	write_file(empty, "", 0);
	assert_int_equal(tn_sha256_file_hex(empty, hex, &err), 0);
	assert_string_equal(hex, EMPTY_HEX);

	assert_int_equal(tn_sha256_file_hex(dir, hex, &err), -(int)TN_E_INVALID);
	assert_non_null(strstr(err.message, "not a regular file"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(tn_sha256_file_hex(path, hex, &err), -(int)TN_E_NOT_FOUND);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, path));

	assert_int_equal(unlink(empty), 0);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
	free(empty);
	free(path);
	free(data);
}

static void test_hex_encode(void **state)
{
	const uint8_t in[] = {0x00, 0xff, 0x10, 0xab, 0x09};
	char out[2 * sizeof in + 1];

	tn_hex_encode(in, sizeof in, out);
	assert_string_equal(out, "00ff10ab09");
	tn_hex_encode(in, 0, out);
	assert_string_equal(out, "");
}

static void test_hex_valid(void **state)
{
	char s[TN_SHA256_HEX_LEN + 2];

	assert_true(tn_sha256_hex_valid(EMPTY_HEX));
	assert_true(tn_sha256_hex_valid(ABC_HEX));

	assert_false(tn_sha256_hex_valid(NULL));
	assert_false(tn_sha256_hex_valid(""));
	assert_false(tn_sha256_hex_valid("abc"));

	memcpy(s, EMPTY_HEX, TN_SHA256_HEX_LEN);
	s[TN_SHA256_HEX_LEN - 1] = '\0'; /* 63 digits */
	assert_false(tn_sha256_hex_valid(s));
	s[TN_SHA256_HEX_LEN - 1] = '5';
	s[TN_SHA256_HEX_LEN] = '0'; /* 65 digits */
	s[TN_SHA256_HEX_LEN + 1] = '\0';
	assert_false(tn_sha256_hex_valid(s));
	s[TN_SHA256_HEX_LEN] = '\0';
	assert_true(tn_sha256_hex_valid(s));

	s[0] = 'E'; /* uppercase */
	assert_false(tn_sha256_hex_valid(s));
	s[0] = 'g';
	assert_false(tn_sha256_hex_valid(s));
	s[0] = ' ';
	assert_false(tn_sha256_hex_valid(s));
	s[0] = 'e';
	s[TN_SHA256_HEX_LEN - 1] = '\n';
	assert_false(tn_sha256_hex_valid(s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_binary_digest_matches_hex),
		cmocka_unit_test(test_streamed_odd_chunks_equal_one_shot),
		cmocka_unit_test(test_reset_reuses_context),
		cmocka_unit_test(test_file_hex),
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_hex_valid),
	};
	return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
