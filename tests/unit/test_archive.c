/* test_archive.c - the archive module against good and hostile zips, all made
 * here by a small zip writer that can lie about sizes, names, types and CRCs
 * and cut archives short.  Every refusal must leave nothing on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "archive.h"
#include "zipwriter.h"
#include "xalloc.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	char dir[64];	/* a fresh directory under /tmp */
	char zip[128];	/* dir/in.zip */
	char dest[128]; /* dir/out, not created */
};

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	snprintf(fx->dir, sizeof fx->dir, "/tmp/tn-test-archive-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->zip, sizeof fx->zip, "%s/in.zip", fx->dir);
	snprintf(fx->dest, sizeof fx->dest, "%s/out", fx->dir);
	*state = fx;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int rc = nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	free(fx);
	return rc;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void write_zip(struct fx *fx, const struct zentry *es, size_t n, const struct zopts *o)
{
	struct buf z = build_zip(es, n, o, NULL);

	write_bytes(fx->zip, z.p, z.len);
	free(z.p);
}

/* The fixture directory holds exactly the names given (NULL-terminated):
 * no destination, no staging directory left behind. */
static void assert_dir_holds(const char *dir, ...)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t seen = 0, want = 0;
	va_list ap;

	assert_non_null(d);
	while ((de = readdir(d))) {
		bool ok = false;
		const char *name;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		va_start(ap, dir);
		while ((name = va_arg(ap, const char *)))
			ok = ok || !strcmp(name, de->d_name);
		va_end(ap);
		if (!ok)
			fail_msg("unexpected %s/%s left behind", dir, de->d_name);
		seen++;
	}
	closedir(d);
	va_start(ap, dir);
	while (va_arg(ap, const char *))
		want++;
	va_end(ap);
	assert_int_equal(seen, want);
}

enum stage { AT_OPEN, AT_EXTRACT };

/* Opens (and extracts when open passes) the zip in fx; the refusal must
 * come at `at` with `code`, and its message must contain `needle` (the
 * quoted entry name). */
static void expect_refused(struct fx *fx, const struct tn_archive_limits *lim, enum stage at,
			   enum tn_errcode code, const char *needle)
{
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	int rc = tn_archive_open(fx->zip, lim, &ar, &err);

	if (at == AT_OPEN) {
		if (rc == 0)
			fail_msg("open accepted what it should refuse (%s)", tn_errcode_name(code));
		assert_null(ar);
	} else {
		if (rc != 0)
			fail_msg("open refused early: %s", err.message);
		rc = tn_archive_extract(ar, fx->dest, &err);
		tn_archive_close(ar);
	}
	if (rc != -(int)code || err.code != code)
		fail_msg("wanted %s, got %s: %s", tn_errcode_name(code), tn_errcode_name(err.code),
			 err.message);
	if (!strstr(err.message, needle))
		fail_msg("message \"%s\" does not contain %s", err.message, needle);
	assert_dir_holds(fx->dir, "in.zip", NULL);
}

static const struct zentry FILLER = {.name = "ok.txt", .data = "fine\n", .len = 5};

/* ------------------------------------------------------------ good archives */

static void *pseudo_random(size_t n, uint32_t seed)
{
	unsigned char *p = xmalloc(n);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
	return p;
}

static void assert_file(const char *dest, const char *rel, const void *data, size_t len, bool exec)
{
	char path[512];
	struct stat st;
	char *got;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dest, rel);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, len);
	assert_int_equal(!!(st.st_mode & S_IXUSR), exec);
	got = xmalloc(len + 1);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, len + 1, f), len);
	fclose(f);
	assert_memory_equal(got, data, len);
	free(got);
}

static void assert_is_dir(const char *dest, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dest, rel);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

static const char BUNDLE_JSON[] = "{\"name\": \"educa\", \"version\": \"1.0.0\"}\n";

static void test_extracts_a_good_tree(void **state)
{
	struct fx *fx = *state;
	size_t big_len = 300 * 1024;
	void *big = pseudo_random(big_len, 7);
	const struct zentry es[] = {
	    {.name = "bundle.json",
	     .data = BUNDLE_JSON,
	     .len = sizeof BUNDLE_JSON - 1,
	     .deflate = true},
	    {.name = "a/"},
	    {.name = "a/b/"},
	    {.name = "a/b/c.txt", .data = "nested\n", .len = 7, .deflate = true},
	    {.name = "x/y/z.txt", .data = "implicit parents\n", .len = 17},
	    {.name = "empty", .data = "", .len = 0, .deflate = true},
	    {.name = "empty-stored", .data = "", .len = 0},
	    {.name = "bin/run", .data = "#!/bin/sh\n", .len = 10, .attr = 0100755u << 16},
	    {.name = "lib/big.bin", .data = big, .len = big_len, .deflate = true},
	    {.name = "dos.txt", .data = "dos\n", .len = 4, .made_by = 0 << 8 | 20, .attr = 0x20},
	};
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	const struct tn_archive_entry *e;

	write_zip(fx, es, sizeof es / sizeof *es, NULL);
	if (tn_archive_open(fx->zip, NULL, &ar, &err))
		fail_msg("%s", err.message);
	assert_int_equal(tn_archive_entry_count(ar), sizeof es / sizeof *es);
	e = tn_archive_entry(ar, 1);
	assert_string_equal(e->name, "a/");
	assert_true(e->is_dir);
	e = tn_archive_entry(ar, 8);
	assert_string_equal(e->name, "lib/big.bin");
	assert_int_equal(e->size, big_len);
	assert_false(e->is_dir);
	assert_true(tn_archive_entry(ar, 7)->is_exec);
	assert_null(tn_archive_entry(ar, sizeof es / sizeof *es));
	assert_ptr_equal(tn_archive_find(ar, "a/b/"), tn_archive_entry(ar, 2));
	assert_null(tn_archive_find(ar, "a/b"));
	assert_null(tn_archive_find(ar, "bin/run/"));
	assert_null(tn_archive_find(ar, "x/y/"));

	if (tn_archive_extract(ar, fx->dest, &err))
		fail_msg("%s", err.message);
	tn_archive_close(ar);

	assert_dir_holds(fx->dir, "in.zip", "out", NULL);
	assert_file(fx->dest, "bundle.json", BUNDLE_JSON, sizeof BUNDLE_JSON - 1, false);
	assert_is_dir(fx->dest, "a/b");
	assert_file(fx->dest, "a/b/c.txt", "nested\n", 7, false);
	assert_is_dir(fx->dest, "x/y");
	assert_file(fx->dest, "x/y/z.txt", "implicit parents\n", 17, false);
	assert_file(fx->dest, "empty", "", 0, false);
	assert_file(fx->dest, "empty-stored", "", 0, false);
	assert_file(fx->dest, "bin/run", "#!/bin/sh\n", 10, true);
	assert_file(fx->dest, "lib/big.bin", big, big_len, false);
	assert_file(fx->dest, "dos.txt", "dos\n", 4, false);
	free(big);
}

static void test_reads_one_entry(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {
	    {.name = "bundle.json",
	     .data = BUNDLE_JSON,
	     .len = sizeof BUNDLE_JSON - 1,
	     .deflate = true},
	    {.name = "conf/"},
	    {.name = "conf/app.txt", .data = "stored\n", .len = 7},
	};
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	char *text = NULL;
	size_t len = 0;

	write_zip(fx, es, 3, NULL);
	assert_int_equal(tn_archive_open(fx->zip, NULL, &ar, &err), 0);

	assert_int_equal(tn_archive_read_entry(ar, "bundle.json", 4096, &text, &len, &err), 0);
	assert_int_equal(len, sizeof BUNDLE_JSON - 1);
	assert_string_equal(text, BUNDLE_JSON);
	free(text);
	assert_int_equal(tn_archive_read_entry(ar, "conf/app.txt", 7, &text, &len, &err), 0);
	assert_string_equal(text, "stored\n");
	free(text);

	assert_int_equal(tn_archive_read_entry(ar, "bundle.json", 10, &text, &len, &err),
			 -(int)TN_E_ARCHIVE_TOO_LARGE);
	assert_non_null(strstr(err.message, "\"bundle.json\""));
	assert_null(text);
	assert_int_equal(tn_archive_read_entry(ar, "nope.json", 10, &text, &len, &err),
			 -(int)TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, "\"nope.json\""));
	assert_int_equal(tn_archive_read_entry(ar, "conf/", 10, &text, &len, &err),
			 -(int)TN_E_INVALID);
	tn_archive_close(ar);
	assert_dir_holds(fx->dir, "in.zip", NULL);
}

static void test_reads_zip64_end_records(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER, {.name = "d/"}};
	const struct zopts needed = {.zip64 = true}, plain = {.zip64 = true, .zip64_plain = true};
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};

	write_zip(fx, es, 2, &needed);
	if (tn_archive_open(fx->zip, NULL, &ar, &err))
		fail_msg("%s", err.message);
	assert_int_equal(tn_archive_extract(ar, fx->dest, &err), 0);
	tn_archive_close(ar);
	assert_file(fx->dest, "ok.txt", "fine\n", 5, false);
	/* as zip writes them from a pipe: present though nothing needs it */
	write_zip(fx, es, 2, &plain);
	if (tn_archive_open(fx->zip, NULL, &ar, &err))
		fail_msg("%s", err.message);
	assert_int_equal(tn_archive_entry_count(ar), 2);
	tn_archive_close(ar);
}

static void test_refuses_disagreeing_zip64_record(void **state)
{
	struct fx *fx = *state;
	const struct zopts o = {.zip64 = true, .zip64_plain = true, .zip64_liar = true};

	/* libzip 1.7.3 refuses this one itself; our own reading of the end
	 * records would too */
	write_zip(fx, &FILLER, 1, &o);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "");
}

static void test_refuses_an_existing_destination(void **state)
{
	struct fx *fx = *state;
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	char marker[160];

	write_zip(fx, &FILLER, 1, NULL);
	assert_int_equal(mkdir(fx->dest, 0755), 0);
	snprintf(marker, sizeof marker, "%s/keep", fx->dest);
	write_bytes(marker, "x", 1);
	assert_int_equal(tn_archive_open(fx->zip, NULL, &ar, &err), 0);
	assert_int_equal(tn_archive_extract(ar, fx->dest, &err), -(int)TN_E_EXISTS);
	tn_archive_close(ar);
	assert_dir_holds(fx->dir, "in.zip", "out", NULL);
	assert_dir_holds(fx->dest, "keep", NULL);
}

/* ------------------------------------------------------------ hostile names */

static void refuse_name(void **state, const char *name, size_t name_len, enum tn_errcode code,
			const char *needle)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER,
				    {.name = name, .name_len = name_len, .data = "x", .len = 1}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, code, needle);
}

static void test_refuses_zip_slip(void **state)
{
	refuse_name(state, "../evil", 0, TN_E_ARCHIVE_TRAVERSAL, "\"../evil\"");
}

static void test_refuses_inner_traversal(void **state)
{
	refuse_name(state, "a/../../evil", 0, TN_E_ARCHIVE_TRAVERSAL, "\"a/../../evil\"");
}

static void test_refuses_trailing_dotdot(void **state)
{
	refuse_name(state, "a/..", 0, TN_E_ARCHIVE_TRAVERSAL, "\"a/..\"");
}

static void test_refuses_backslash_traversal(void **state)
{
	refuse_name(state, "..\\evil", 0, TN_E_ARCHIVE_TRAVERSAL, "\"..\\evil\"");
}

static void test_refuses_absolute_path(void **state)
{
	refuse_name(state, "/etc/passwd", 0, TN_E_ARCHIVE_ABSOLUTE, "\"/etc/passwd\"");
}

static void test_refuses_malformed_names(void **state)
{
	char long_name[TN_ARCHIVE_NAME_MAX + 2];
	char deep[2 * (TN_ARCHIVE_DEPTH_MAX + 1) + 1];

	refuse_name(state, "a//b", 0, TN_E_INVALID, "\"a//b\": empty path segment");
	refuse_name(state, "a/./b", 0, TN_E_INVALID, "\"a/./b\"");
	refuse_name(state, "a\\b", 0, TN_E_INVALID, "backslash");
	refuse_name(state, "a\nb", 0, TN_E_INVALID, "\"a?b\": name contains control");
	refuse_name(state, "a\0../evil", 9, TN_E_INVALID, "NUL");
	memset(long_name, 'n', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	refuse_name(state, long_name, 0, TN_E_INVALID, "over the limit");
	for (size_t i = 0; i < TN_ARCHIVE_DEPTH_MAX + 1; i++)
		memcpy(deep + 2 * i, "d/", 2);
	deep[sizeof deep - 2] = 'f';
	deep[sizeof deep - 1] = '\0';
	refuse_name(state, deep, 0, TN_E_INVALID, "path segments");
}

/* ------------------------------------------------------------ hostile types */

static void test_refuses_symlink(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER,
				    {.name = "link",
				     .data = "/etc/passwd",
				     .len = 11,
				     .attr = (uint32_t)(0120777u << 16),
				     .made_by = 3 << 8 | 20}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_SYMLINK, "\"link\": is a symbolic link");
}

static void test_refuses_device_node(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER, {.name = "null", .attr = 020666u << 16}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_SYMLINK, "\"null\"");
}

static void test_refuses_dir_mode_without_slash(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER, {.name = "d", .attr = 040755u << 16}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "\"d\"");
}

static void test_refuses_encrypted_entry(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {
	    FILLER, {.name = "secret", .data = "0123456789abcdef", .len = 16, .flags = 1}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_INVALID, "\"secret\": is encrypted");
}

static void test_refuses_unknown_method(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER,
				    {.name = "b.bz2", .data = "BZh9", .len = 4, .method = 12}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_INVALID, "\"b.bz2\": compression method 12");
}

/* ------------------------------------------------------------ duplicates, counts */

static void test_refuses_duplicate(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {FILLER,
				    {.name = "a.txt", .data = "1", .len = 1},
				    {.name = "a.txt", .data = "2", .len = 1}};

	write_zip(fx, es, 3, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_DUPLICATE, "\"a.txt\": appears twice");
}

static void test_refuses_file_and_dir_of_one_name(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {{.name = "a", .data = "1", .len = 1}, {.name = "a/"}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_DUPLICATE,
		       "\"a/\": duplicate of entry \"a\"");
}

static void test_refuses_file_used_as_parent(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {{.name = "a", .data = "1", .len = 1},
				    {.name = "a/b", .data = "2", .len = 1}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_DUPLICATE, "\"a/b\": lies under");
}

static void test_refuses_too_many_entries(void **state)
{
	struct fx *fx = *state;
	struct tn_archive_limits lim = tn_archive_limits_default;
	const struct zentry es[] = {{.name = "1"}, {.name = "2"}, {.name = "3"}, {.name = "4"}};

	lim.max_entries = 3;
	write_zip(fx, es, 4, NULL);
	expect_refused(fx, &lim, AT_OPEN, TN_E_ARCHIVE_TOO_MANY, "\"4\"");
}

/* ------------------------------------------------------------ sizes */

static const struct tn_archive_limits MIB_LIMITS = {
    .max_entries = 100,
    .max_entry_bytes = 1 << 20,
    .max_total_bytes = 2 << 20,
    .max_ratio = 200,
};

#define BOMB_BYTES (64u << 20)

/* 64 MiB of zeros deflated (about 64 KiB), declared as `declared` bytes. */
static void write_bomb(struct fx *fx, uint32_t declared)
{
	void *zeros = xcalloc(1, BOMB_BYTES);
	const struct zentry es[] = {FILLER,
				    {.name = "bomb.bin",
				     .data = zeros,
				     .len = BOMB_BYTES,
				     .deflate = true,
				     .lie = true,
				     .declared = declared}};

	write_zip(fx, es, 2, NULL);
	free(zeros);
}

static void test_refuses_bomb_with_lying_size(void **state)
{
	struct fx *fx = *state;
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	char *text = NULL;
	size_t len;

	write_bomb(fx, 1000);
	expect_refused(fx, &MIB_LIMITS, AT_EXTRACT, TN_E_ARCHIVE_TOO_LARGE,
		       "\"bomb.bin\": inflates past its declared size of 1000 bytes");
	/* reading it into memory stops at the same point */
	assert_int_equal(tn_archive_open(fx->zip, &MIB_LIMITS, &ar, &err), 0);
	assert_int_equal(tn_archive_read_entry(ar, "bomb.bin", 4096, &text, &len, &err),
			 -(int)TN_E_ARCHIVE_TOO_LARGE);
	assert_null(text);
	tn_archive_close(ar);
}

static void test_refuses_bomb_past_the_entry_limit(void **state)
{
	struct fx *fx = *state;

	write_bomb(fx, 1 << 20);
	expect_refused(fx, &MIB_LIMITS, AT_EXTRACT, TN_E_ARCHIVE_TOO_LARGE,
		       "\"bomb.bin\": inflates past the limit of 1048576 bytes per entry");
}

static void test_refuses_declared_size_over_limit(void **state)
{
	struct fx *fx = *state;
	size_t len = (1 << 20) + 1;
	void *data = pseudo_random(len, 3);
	const struct zentry es[] = {FILLER, {.name = "big.bin", .data = data, .len = len}};

	write_zip(fx, es, 2, NULL);
	free(data);
	expect_refused(fx, &MIB_LIMITS, AT_OPEN, TN_E_ARCHIVE_TOO_LARGE,
		       "\"big.bin\": declares 1048577 bytes");
}

static void test_refuses_declared_total_over_limit(void **state)
{
	struct fx *fx = *state;
	size_t len = 800 * 1024;
	void *data = pseudo_random(len, 5);
	const struct zentry es[] = {{.name = "one.bin", .data = data, .len = len},
				    {.name = "two.bin", .data = data, .len = len},
				    {.name = "three.bin", .data = data, .len = len}};

	write_zip(fx, es, 3, NULL);
	free(data);
	expect_refused(fx, &MIB_LIMITS, AT_OPEN, TN_E_ARCHIVE_TOO_LARGE,
		       "\"three.bin\": brings the declared total");
}

static void test_refuses_compression_ratio(void **state)
{
	struct fx *fx = *state;
	size_t len = 4u << 20;
	void *zeros = xcalloc(1, len);
	const struct zentry es[] = {
	    FILLER, {.name = "zeros.bin", .data = zeros, .len = len, .deflate = true}};

	write_zip(fx, es, 2, NULL);
	free(zeros);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_RATIO, "\"zeros.bin\": compression ratio");
}

static void test_refuses_stored_size_mismatch(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {
	    FILLER,
	    {.name = "s.txt", .data = "hello world", .len = 11, .lie = true, .declared = 5}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "\"s.txt\": stored in 11 bytes");
}

/* ------------------------------------------------------------ corrupt archives */

static void test_refuses_not_a_zip(void **state)
{
	struct fx *fx = *state;
	static const char junk[] = "this is not a zip archive, only some text\n";

	write_bytes(fx->zip, junk, sizeof junk - 1);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "not a valid zip archive");
	write_bytes(fx->zip, "", 0);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "not a valid zip archive");
}

static void test_refuses_archive_cut_in_half(void **state)
{
	struct fx *fx = *state;
	void *data = pseudo_random(8192, 9);
	const struct zentry es[] = {FILLER, {.name = "r.bin", .data = data, .len = 8192}};
	struct buf z = build_zip(es, 2, NULL, NULL);

	write_bytes(fx->zip, z.p, z.len / 2);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "not a valid zip archive");
	free(z.p);
	free(data);
}

static void test_refuses_archive_cut_inside_last_data(void **state)
{
	struct fx *fx = *state;
	void *data = pseudo_random(8192, 11);
	const struct zentry es[] = {FILLER,
				    {.name = "r.bin", .data = data, .len = 8192, .deflate = true}};
	size_t off[2];
	struct buf z = build_zip(es, 2, NULL, off);

	write_bytes(fx->zip, z.p, off[1] + 100);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT, "not a valid zip archive");
	free(z.p);
	free(data);
}

static void test_refuses_cut_deflate_stream(void **state)
{
	struct fx *fx = *state;
	void *data = pseudo_random(8192, 13);
	/* a tree already half written when the bad entry comes: all of it goes */
	const struct zentry es[] = {
	    FILLER,
	    {.name = "deep/er/still/file.txt", .data = "x", .len = 1},
	    {.name = "deep/empty/"},
	    {.name = "r.bin", .data = data, .len = 8192, .deflate = true, .cut = 4000}};

	write_zip(fx, es, 4, NULL);
	free(data);
	expect_refused(fx, NULL, AT_EXTRACT, TN_E_ARCHIVE_CORRUPT, "\"r.bin\": its deflate stream");
}

static void test_refuses_data_after_deflate_stream(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {
	    FILLER, {.name = "j.txt", .data = "some text", .len = 9, .deflate = true, .junk = 9}};

	write_zip(fx, es, 2, NULL);
	expect_refused(fx, NULL, AT_EXTRACT, TN_E_ARCHIVE_CORRUPT, "\"j.txt\": data after");
}

static void test_refuses_crc_mismatch(void **state)
{
	struct fx *fx = *state;
	const struct zentry es[] = {
	    FILLER,
	    {.name = "c.txt", .data = "checked", .len = 7, .bad_crc = true},
	    {.name = "d.txt", .data = "deflated", .len = 8, .deflate = true, .bad_crc = true}};

	write_zip(fx, es, 2, NULL);
	/* libzip checks stored data itself: its words, our code */
	expect_refused(fx, NULL, AT_EXTRACT, TN_E_ARCHIVE_CORRUPT, "\"c.txt\": reading its data");
	write_zip(fx, (const struct zentry[]){FILLER, es[2]}, 2, NULL);
	expect_refused(fx, NULL, AT_EXTRACT, TN_E_ARCHIVE_CORRUPT, "\"d.txt\": CRC mismatch");
}

/* Verification reads every entry as extraction would, writing nothing:
 * what a server runs on an archive it keeps without extracting. */
static void test_verify_reads_every_entry(void **state)
{
	struct fx *fx = *state;
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	const struct zentry good[] = {FILLER, {.name = "d/"},
				      {.name = "d/t.txt", .data = "text text", .len = 9,
				       .deflate = true}};
	const struct zentry crc[] = {
	    FILLER, {.name = "d.txt", .data = "deflated", .len = 8, .deflate = true, .bad_crc = true}};

	write_zip(fx, good, 3, NULL);
	assert_int_equal(tn_archive_open(fx->zip, NULL, &ar, &err), 0);
	assert_int_equal(tn_archive_verify(ar, &err), 0);
	tn_archive_close(ar);

	write_bomb(fx, 1000);
	assert_int_equal(tn_archive_open(fx->zip, &MIB_LIMITS, &ar, &err), 0);
	assert_int_equal(tn_archive_verify(ar, &err), -(int)TN_E_ARCHIVE_TOO_LARGE);
	assert_non_null(strstr(err.message, "\"bomb.bin\": inflates past its declared size"));
	tn_archive_close(ar);

	write_zip(fx, crc, 2, NULL);
	assert_int_equal(tn_archive_open(fx->zip, NULL, &ar, &err), 0);
	assert_int_equal(tn_archive_verify(ar, &err), -(int)TN_E_ARCHIVE_CORRUPT);
	assert_non_null(strstr(err.message, "\"d.txt\": CRC mismatch"));
	tn_archive_close(ar);
	assert_dir_holds(fx->dir, "in.zip", NULL);
}

static void test_refuses_two_end_records(void **state)
{
	struct fx *fx = *state;
	/* a comment ending in a second, empty end record that also ends the
	 * file: two readers could pick two different archives */
	static const unsigned char fake[22] = {0x50, 0x4b, 0x05, 0x06};
	const struct zopts o = {.comment = (const char *)fake, .comment_len = sizeof fake};

	write_zip(fx, &FILLER, 1, &o);
	expect_refused(fx, NULL, AT_OPEN, TN_E_ARCHIVE_CORRUPT,
		       "two end of central directory records");
}

/* The agent spawns bundles while archives may be open: none of the
 * descriptors behind an open archive may leak into them. */
static void test_descriptors_are_close_on_exec(void **state)
{
	struct fx *fx = *state;
	struct tn_archive *ar = NULL;
	struct tn_error err = {0};
	struct dirent *de;
	size_t checked = 0;
	DIR *d;

	write_zip(fx, &FILLER, 1, NULL);
	assert_int_equal(tn_archive_open(fx->zip, NULL, &ar, &err), 0);
	d = opendir("/proc/self/fd");
	assert_non_null(d);
	while ((de = readdir(d))) {
		char link[64], target[256];
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		fd = (int)strtol(de->d_name, NULL, 10);
		if (fd <= 2 || fd == dirfd(d))
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof target - 1);
		assert_true(n > 0);
		target[n] = '\0';
		if (strcmp(target, fx->zip))
			continue;
		checked++;
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	}
	closedir(d);
	assert_true(checked >= 1);
	tn_archive_close(ar);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_extracts_a_good_tree),
	    T(test_reads_one_entry),
	    T(test_reads_zip64_end_records),
	    T(test_refuses_an_existing_destination),
	    T(test_refuses_zip_slip),
	    T(test_refuses_inner_traversal),
	    T(test_refuses_trailing_dotdot),
	    T(test_refuses_backslash_traversal),
	    T(test_refuses_absolute_path),
	    T(test_refuses_malformed_names),
	    T(test_refuses_symlink),
	    T(test_refuses_device_node),
	    T(test_refuses_dir_mode_without_slash),
	    T(test_refuses_encrypted_entry),
	    T(test_refuses_unknown_method),
	    T(test_refuses_duplicate),
	    T(test_refuses_file_and_dir_of_one_name),
	    T(test_refuses_file_used_as_parent),
	    T(test_refuses_too_many_entries),
	    T(test_refuses_bomb_with_lying_size),
	    T(test_refuses_bomb_past_the_entry_limit),
	    T(test_refuses_declared_size_over_limit),
	    T(test_refuses_declared_total_over_limit),
	    T(test_refuses_compression_ratio),
	    T(test_refuses_stored_size_mismatch),
	    T(test_refuses_not_a_zip),
	    T(test_refuses_archive_cut_in_half),
	    T(test_refuses_archive_cut_inside_last_data),
	    T(test_refuses_cut_deflate_stream),
	    T(test_refuses_data_after_deflate_stream),
	    T(test_refuses_crc_mismatch),
	    T(test_verify_reads_every_entry),
	    T(test_refuses_two_end_records),
	    T(test_refuses_disagreeing_zip64_record),
	    T(test_descriptors_are_close_on_exec),
	};
#undef T
	return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
