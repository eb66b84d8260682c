/* test_blobstore.c - the blob store: streamed writes land at their sha256 address with
 * the right bytes, refused uploads leave nothing behind, stale temp files go at open,
 * and the collector removes exactly the unreferenced blobs without following links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blobstore.h"
#include "fsutil.h"
#include "xalloc.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char *tmpdir;

static int setup(void **state)
{
	tmpdir = xstrdup("/tmp/tn-blobstore-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	struct tn_error err;
	int rc = tn_remove_tree(tmpdir, &err);

	free(tmpdir);
	return rc;
}

static struct tn_blobstore *open_store(void)
{
	struct tn_blobstore *bs = NULL;
	struct tn_error err;

	assert_int_equal(tn_blobstore_open(tmpdir, &bs, &err), 0);
	assert_non_null(bs);
	return bs;
}

static void sha256_hex(const void *data, size_t len, char out[TN_BLOB_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
	assert_int_equal(md_len, 32);
	for (unsigned int i = 0; i < md_len; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 0xf];
	}
	out[64] = '\0';
}

/* Deterministic bytes that are not all alike, so a misplaced chunk changes the hash. */
static unsigned char *make_data(size_t len, uint32_t seed)
{
	unsigned char *p = xmalloc(len ? len : 1);
	uint32_t x = seed ? seed : 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

static size_t counted;

static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag != FTW_D && flag != FTW_DP)
		counted++;
	return 0;
}

/* Files (anything not a directory) under DATA/blobs/<sub>. */
static size_t count_files(const char *sub)
{
	char *dir = xasprintf("%s/blobs/%s", tmpdir, sub);

	counted = 0;
	assert_int_equal(nftw(dir, count_entry, 16, FTW_PHYS), 0);
	free(dir);
	return counted;
}

static void read_whole(const char *path, unsigned char **out, size_t *len)
{
	char *data = NULL;
	struct tn_error err;

	assert_int_equal(tn_read_file(path, 64 << 20, &data, len, &err), 0);
	*out = (unsigned char *)data;
}

static void commit_bytes(struct tn_blobstore *bs, const void *data, size_t len,
			 char hex[TN_BLOB_HEX_LEN + 1])
{
	struct tn_blob_writer *w = NULL;
	struct tn_error err;
	uint64_t size = 0;

	assert_int_equal(tn_blob_writer_begin(bs, UINT64_MAX, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, data, len, &err), 0);
	assert_int_equal(tn_blob_writer_commit(w, NULL, hex, &size, &err), 0);
	assert_int_equal(size, len);
}

static void test_odd_chunks_land_at_their_address(void **state)
{
	/* chunk sizes below, at and above the writer's gathering size, in a mixed order */
	static const size_t chunks[] = {
	    1, 7, 8191, 8192, 262143, 262144, 1, 600000, 3, 65536, 262145, 13, 1 << 20, 99,
	};
	size_t total = 0, off = 0, len = 0;
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	unsigned char *data, *back = NULL;
	char want[TN_BLOB_HEX_LEN + 1], got[TN_BLOB_HEX_LEN + 1];
	char *path = NULL;
	uint64_t size = 0, open_size = 0;
	struct tn_error err;
	struct stat st;
	int fd = -1;

	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
		total += chunks[i];
	data = make_data(total, 42);
	sha256_hex(data, total, want);

	assert_int_equal(tn_blob_writer_begin(bs, total, &w, &err), 0);
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		assert_int_equal(tn_blob_writer_write(w, data + off, chunks[i], &err), 0);
		off += chunks[i];
	}
	assert_int_equal(tn_blob_writer_size(w), total);
	assert_false(tn_blob_exists(bs, want)); /* not visible before commit */

	/* after a flush the staged file can be inspected before committing */
	assert_int_equal(tn_blob_writer_flush(w, &err), 0);
	read_whole(tn_blob_writer_path(w), &back, &len);
	assert_int_equal(len, total);
	assert_memory_equal(back, data, total);
	free(back);
	back = NULL;

	assert_int_equal(tn_blob_writer_commit(w, want, got, &size, &err), 0);
	assert_string_equal(got, want);
	assert_int_equal(size, total);

	assert_int_equal(tn_blob_path(bs, want, &path, &err), 0);
	assert_non_null(strstr(path, "/blobs/sha256/"));
	{
		char *tail = xasprintf("/%.2s/%s", want, want);

		assert_string_equal(path + strlen(path) - strlen(tail), tail);
		free(tail);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	read_whole(path, &back, &len);
	assert_int_equal(len, total);
	assert_memory_equal(back, data, total);
	assert_true(tn_blob_exists(bs, want));

	assert_int_equal(tn_blob_open(bs, want, &fd, &open_size, &err), 0);
	assert_true(fd >= 0);
	assert_int_equal(open_size, total);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);

	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 1);
	free(back);
	free(path);
	free(data);
	tn_blobstore_close(bs);
}

/* Many small chunks, the size an HTTP server hands over, fill the gathering buffer many
 * times over (the writer then hashes in a thread of its own, beside the writes); the
 * hash and bytes must be those of the whole, and an abort with a buffer still being
 * hashed must leave nothing. */
static void test_many_small_chunks_hashed_in_order(void **state)
{
	const size_t total = (3u << 20) + 12345, chunk = 7948;
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	unsigned char *data = make_data(total, 7), *back = NULL;
	char want[TN_BLOB_HEX_LEN + 1], got[TN_BLOB_HEX_LEN + 1];
	char *path = NULL;
	struct tn_error err;
	size_t len = 0;

	sha256_hex(data, total, want);
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(tn_blob_writer_begin(bs, UINT64_MAX, &w, &err), 0);
		for (size_t off = 0; off < total; off += chunk) {
			size_t n = total - off < chunk ? total - off : chunk;

			assert_int_equal(tn_blob_writer_write(w, data + off, n, &err), 0);
		}
		if (pass == 0) {
			tn_blob_writer_abort(w);
			assert_int_equal(count_files("tmp"), 0);
			continue;
		}
		assert_int_equal(tn_blob_writer_commit(w, NULL, got, NULL, &err), 0);
		assert_string_equal(got, want);
	}
	assert_int_equal(tn_blob_path(bs, want, &path, &err), 0);
	read_whole(path, &back, &len);
	assert_int_equal(len, total);
	assert_memory_equal(back, data, total);
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 1);
	free(back);
	free(path);
	free(data);
	tn_blobstore_close(bs);
}

static void test_empty_blob_and_fsync_off(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	char got[TN_BLOB_HEX_LEN + 1];
	uint64_t size = 1;
	struct tn_error err;

	tn_blobstore_set_fsync(bs, false);
	assert_int_equal(tn_blob_writer_begin(bs, 0, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, "", 0, &err), 0);
	assert_int_equal(tn_blob_writer_commit(w, EMPTY_SHA256, got, &size, &err), 0);
	assert_string_equal(got, EMPTY_SHA256);
	assert_int_equal(size, 0);
	assert_true(tn_blob_exists(bs, EMPTY_SHA256));
	tn_blobstore_close(bs);
}

static void test_expected_mismatch_leaves_nothing(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	char got[TN_BLOB_HEX_LEN + 1] = "untouched";
	struct tn_error err;

	assert_int_equal(tn_blob_writer_begin(bs, 1000, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, "hello", 5, &err), 0);
	assert_int_equal(count_files("tmp"), 1);
	assert_int_equal(tn_blob_writer_commit(w, EMPTY_SHA256, got, NULL, &err), -TN_E_SIGNATURE);
	assert_int_equal(err.code, TN_E_SIGNATURE);
	assert_non_null(strstr(err.message, EMPTY_SHA256));
	assert_string_equal(got, "untouched");
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);
	assert_false(tn_blob_exists(bs, EMPTY_SHA256));
	tn_blobstore_close(bs);
}

static void test_too_large_leaves_nothing(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	unsigned char *big = make_data(300000, 7);
	struct tn_error err;

	/* exactly at the cap is fine */
	assert_int_equal(tn_blob_writer_begin(bs, 10, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, "0123456789", 10, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, "x", 1, &err), -TN_E_TOO_LARGE);
	assert_int_equal(err.code, TN_E_TOO_LARGE);
	/* a refused writer never commits what it has */
	assert_int_not_equal(tn_blob_writer_commit(w, NULL, NULL, NULL, &err), 0);
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);

	/* a large direct write over the cap: refused before anything is written */
	assert_int_equal(tn_blob_writer_begin(bs, 299999, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, big, 300000, &err), -TN_E_TOO_LARGE);
	{
		struct stat st;

		assert_int_equal(stat(tn_blob_writer_path(w), &st), 0);
		assert_int_equal(st.st_size, 0);
	}
	tn_blob_writer_abort(w);
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);
	free(big);
	tn_blobstore_close(bs);
}

static void test_abort_leaves_nothing(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	unsigned char *data = make_data(1 << 20, 3);
	struct tn_error err;

	assert_int_equal(tn_blob_writer_begin(bs, UINT64_MAX, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, data, 1 << 20, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, data, 100, &err), 0);
	assert_int_equal(count_files("tmp"), 1);
	tn_blob_writer_abort(w);
	tn_blob_writer_abort(NULL);
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);
	free(data);
	tn_blobstore_close(bs);
}

static void test_same_bytes_twice_one_file(void **state)
{
	struct tn_blobstore *bs = open_store();
	char a[TN_BLOB_HEX_LEN + 1], b[TN_BLOB_HEX_LEN + 1];
	char *path = NULL;
	struct tn_error err;
	struct stat before, after;

	commit_bytes(bs, "same bytes", 10, a);
	assert_int_equal(tn_blob_path(bs, a, &path, &err), 0);
	assert_int_equal(stat(path, &before), 0);
	commit_bytes(bs, "same bytes", 10, b);
	assert_string_equal(a, b);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino); /* the existing file was kept */
	assert_int_equal(count_files("sha256"), 1);
	assert_int_equal(count_files("tmp"), 0);

	/* a truncated file at the address is replaced, not trusted */
	assert_int_equal(truncate(path, 3), 0);
	commit_bytes(bs, "same bytes", 10, b);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, 10);
	assert_int_equal(count_files("sha256"), 1);
	free(path);
	tn_blobstore_close(bs);
}

static void test_stale_tmp_removed_at_open(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	char *stale = xasprintf("%s/blobs/tmp/upload-abc123", tmpdir);
	char *crashed = xasprintf("%s/blobs/tmp/upload-crashed", tmpdir);
	char *symlinked = xasprintf("%s/blobs/tmp/upload-link", tmpdir);
	char *outside = xasprintf("%s/outside", tmpdir);
	struct tn_error err;
	struct stat st;

	/* what a crash in mid-upload leaves: a real writer's temp file, kept by a hard
	 * link after the writer itself is gone */
	assert_int_equal(tn_blob_writer_begin(bs, UINT64_MAX, &w, &err), 0);
	assert_int_equal(tn_blob_writer_write(w, "partial", 7, &err), 0);
	assert_int_equal(tn_blob_writer_flush(w, &err), 0);
	assert_int_equal(link(tn_blob_writer_path(w), crashed), 0);
	tn_blob_writer_abort(w);
	assert_int_equal(tn_write_file_atomic(stale, "old", 3, 0644, &err), 0);
	assert_int_equal(tn_write_file_atomic(outside, "keep", 4, 0644, &err), 0);
	assert_int_equal(symlink(outside, symlinked), 0);
	assert_int_equal(count_files("tmp"), 3);
	tn_blobstore_close(bs);

	bs = open_store();
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);
	assert_int_equal(stat(outside, &st), 0); /* the link was removed, not followed */
	assert_int_equal(st.st_size, 4);
	free(stale);
	free(crashed);
	free(symlinked);
	free(outside);
	tn_blobstore_close(bs);
}

static void test_invalid_hex_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
	    "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "../../../../etc/passwd/fc1c149afbf4c8996fb92427ae41e4649b934ca49",
	    "e3/0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    NULL,
	};
	struct tn_blobstore *bs = open_store();
	struct tn_blob_writer *w = NULL;
	struct tn_error err;

	for (size_t i = 0; bad[i]; i++) {
		char *path = NULL;
		int fd = -1;

		assert_false(tn_blob_hex_valid(bad[i]));
		assert_int_equal(tn_blob_path(bs, bad[i], &path, &err), -TN_E_INVALID);
		assert_int_equal(err.code, TN_E_INVALID);
		assert_null(path);
		assert_false(tn_blob_exists(bs, bad[i]));
		assert_int_equal(tn_blob_open(bs, bad[i], &fd, NULL, &err), -TN_E_INVALID);
		assert_int_equal(fd, -1);
		assert_int_equal(tn_blob_remove(bs, bad[i], &err), -TN_E_INVALID);

		assert_int_equal(tn_blob_writer_begin(bs, 100, &w, &err), 0);
		assert_int_equal(tn_blob_writer_write(w, "", 0, &err), 0);
		assert_int_equal(tn_blob_writer_commit(w, bad[i], NULL, NULL, &err), -TN_E_INVALID);
	}
	assert_false(tn_blob_hex_valid(NULL));
	assert_true(tn_blob_hex_valid(EMPTY_SHA256));
	assert_int_equal(count_files("tmp"), 0);
	assert_int_equal(count_files("sha256"), 0);
	tn_blobstore_close(bs);
}

static void test_open_and_remove_missing(void **state)
{
	struct tn_blobstore *bs = open_store();
	char hex[TN_BLOB_HEX_LEN + 1];
	struct tn_error err;
	int fd = -1;

	assert_int_equal(tn_blob_open(bs, EMPTY_SHA256, &fd, NULL, &err), -TN_E_NOT_FOUND);
	assert_int_equal(tn_blob_remove(bs, EMPTY_SHA256, &err), -TN_E_NOT_FOUND);
	commit_bytes(bs, "abc", 3, hex);
	assert_int_equal(tn_blob_remove(bs, hex, &err), 0);
	assert_false(tn_blob_exists(bs, hex));
	assert_int_equal(tn_blob_remove(bs, hex, &err), -TN_E_NOT_FOUND);
	tn_blobstore_close(bs);
}

struct refs {
	const char *live[4];
	int calls;
	bool fail;
};

static int is_referenced(void *ctx, const char *hex, struct tn_error *err)
{
	struct refs *r = ctx;

	r->calls++;
	if (r->fail)
		return tn_fail(err, TN_E_UNAVAILABLE, "database is busy");
	for (size_t i = 0; i < 4 && r->live[i]; i++)
		if (!strcmp(r->live[i], hex))
			return 1;
	return 0;
}

static void test_gc_removes_exactly_the_unreferenced(void **state)
{
	struct tn_blobstore *bs = open_store();
	char h[4][TN_BLOB_HEX_LEN + 1];
	static const char *const bodies[] = {"a", "bb", "cccc", "dddddddd"};
	char *outside = xasprintf("%s/outside", tmpdir);
	char *junk_dir = xasprintf("%s/blobs/sha256/zz", tmpdir);
	char *fan_link = xasprintf("%s/blobs/sha256/00", tmpdir);
	char *outside_dir = xasprintf("%s/outside-tree", tmpdir);
	char *outside_blob = xasprintf("%s/outside-tree/00%062d", tmpdir, 0);
	char *bad_name = NULL, *misplaced = NULL, *evil = NULL;
	char evil_hex[TN_BLOB_HEX_LEN + 1];
	struct refs refs = {0};
	uint64_t count = 99, bytes = 99;
	struct tn_error err;
	struct stat st;

	for (int i = 0; i < 4; i++)
		commit_bytes(bs, bodies[i], strlen(bodies[i]), h[i]);
	refs.live[0] = h[1];
	refs.live[1] = h[3];

	/* things the collector must skip: a badly named file, a blob under the wrong
	 * fan-out, a symlink with a valid blob name, a fan-out that is a symlink, and a
	 * directory not named by two hex digits; none of them may be followed */
	assert_int_equal(tn_write_file_atomic(outside, "keep", 4, 0644, &err), 0);
	bad_name = xasprintf("%s/blobs/sha256/%.2s/not-a-hash", tmpdir, h[0]);
	assert_int_equal(tn_write_file_atomic(bad_name, "x", 1, 0644, &err), 0);
	sha256_hex("evil", 4, evil_hex);
	evil = xasprintf("%s/blobs/sha256/%.2s/%s", tmpdir, evil_hex, evil_hex);
	{
		char *dir = xasprintf("%s/blobs/sha256/%.2s", tmpdir, evil_hex);

		assert_int_equal(tn_mkdir_p(dir, 0755, &err), 0);
		free(dir);
	}
	assert_int_equal(symlink(outside, evil), 0);
	misplaced = xasprintf("%s/blobs/sha256/%.2s/%s", tmpdir, h[0], h[2]);
	if (strncmp(h[0], h[2], 2) != 0)
		assert_int_equal(tn_write_file_atomic(misplaced, "m", 1, 0644, &err), 0);
	assert_int_equal(tn_mkdir_p(junk_dir, 0755, &err), 0);
	/* a fan-out "00" that is a link to a directory holding a blob-named file, which
	 * the collector would remove (nothing references it) if it followed the link */
	assert_int_equal(tn_mkdir_p(outside_dir, 0755, &err), 0);
	assert_true(tn_blob_hex_valid(strrchr(outside_blob, '/') + 1));
	assert_int_equal(tn_write_file_atomic(outside_blob, "o", 1, 0644, &err), 0);
	if (strncmp(h[0], "00", 2) && strncmp(h[1], "00", 2) && strncmp(h[2], "00", 2) &&
	    strncmp(h[3], "00", 2) && strncmp(evil_hex, "00", 2))
		assert_int_equal(symlink(outside_dir, fan_link), 0);

	/* an unknown answer stops the collection and removes nothing */
	refs.fail = true;
	assert_int_equal(tn_blobstore_gc(bs, is_referenced, &refs, &count, &bytes, &err),
			 -TN_E_UNAVAILABLE);
	assert_int_equal(err.code, TN_E_UNAVAILABLE);
	assert_non_null(strstr(err.message, "database is busy"));
	assert_int_equal(count, 0);
	for (int i = 0; i < 4; i++)
		assert_true(tn_blob_exists(bs, h[i]));

	refs.fail = false;
	refs.calls = 0;
	assert_int_equal(tn_blobstore_gc(bs, is_referenced, &refs, &count, &bytes, &err), 0);
	assert_int_equal(refs.calls, 4); /* only the four real blobs were asked about */
	assert_int_equal(count, 2);
	assert_int_equal(bytes, strlen(bodies[0]) + strlen(bodies[2]));
	assert_false(tn_blob_exists(bs, h[0]));
	assert_true(tn_blob_exists(bs, h[1]));
	assert_false(tn_blob_exists(bs, h[2]));
	assert_true(tn_blob_exists(bs, h[3]));
	assert_int_equal(lstat(bad_name, &st), 0);
	assert_int_equal(lstat(evil, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(stat(junk_dir, &st), 0);
	assert_int_equal(stat(outside_blob, &st), 0);
	if (strncmp(h[0], h[2], 2) != 0)
		assert_int_equal(stat(misplaced, &st), 0);

	/* nothing left to remove */
	assert_int_equal(tn_blobstore_gc(bs, is_referenced, &refs, &count, &bytes, &err), 0);
	assert_int_equal(count, 0);
	assert_int_equal(bytes, 0);

	free(outside);
	free(junk_dir);
	free(fan_link);
	free(outside_dir);
	free(outside_blob);
	free(bad_name);
	free(misplaced);
	free(evil);
	tn_blobstore_close(bs);
}

struct gc_thread {
	struct tn_blobstore *bs;
	volatile int done;
	int rc;
};

static int nothing_referenced(void *ctx, const char *hex, struct tn_error *err)
{
	return 0;
}

static void *run_gc(void *arg)
{
	struct gc_thread *t = arg;
	struct tn_error err;

	t->rc = tn_blobstore_gc(t->bs, nothing_referenced, NULL, NULL, NULL, &err);
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_gc_waits_for_a_commit_in_progress(void **state)
{
	struct tn_blobstore *bs = open_store();
	struct gc_thread t = {.bs = bs};
	char hex[TN_BLOB_HEX_LEN + 1];
	pthread_t th;

	/* an upload holds the shared lock from commit until its row is in */
	tn_blobstore_lock(bs, TN_BLOBSTORE_SHARED);
	commit_bytes(bs, "about to be referenced", 22, hex);
	assert_int_equal(pthread_create(&th, NULL, run_gc, &t), 0);
	usleep(100 * 1000);
	assert_int_equal(__atomic_load_n(&t.done, __ATOMIC_SEQ_CST), 0);
	assert_true(tn_blob_exists(bs, hex));
	tn_blobstore_unlock(bs);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.rc, 0);
	assert_false(tn_blob_exists(bs, hex)); /* unreferenced once the lock was free */
	tn_blobstore_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_odd_chunks_land_at_their_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_small_chunks_hashed_in_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_empty_blob_and_fsync_off, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expected_mismatch_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_bytes_twice_one_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_tmp_removed_at_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_hex_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_and_remove_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_removes_exactly_the_unreferenced, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_waits_for_a_commit_in_progress, setup,
					    teardown),
	};
	return cmocka_run_group_tests_name("blobstore", tests, NULL, NULL);
}
