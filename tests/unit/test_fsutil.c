/* test_fsutil.c - path checks per segment, mkdir -p, atomic writes, reads
 * with a cap, and tree removal that does not follow symlinks. */
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

#include "fsutil.h"
#include "xalloc.h"

static char *tmpdir;

static int setup(void **state)
{
	tmpdir = xstrdup("/tmp/tn-fsutil-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	struct tn_error err;
	int rc = tn_remove_tree(tmpdir, &err);

	free(tmpdir);
	return rc;
}

static void test_safe_relative_paths(void **state)
{
	static const char *const good[] = {"a", "a/b", "etc/educa.conf.tmpl", "a..b", "..a", ".hidden", NULL};
	static const char *const bad[] = {"", "/etc/passwd", "..", "../x", "a/..", "a/../b", "a//b",
					  "a/", "./a", "a/.", "a\\..\\b", NULL};

	for (size_t i = 0; good[i]; i++)
		assert_true(tn_path_is_safe_relative(good[i]));
	for (size_t i = 0; bad[i]; i++) {
		char *out = NULL;
		struct tn_error err;

		assert_false(tn_path_is_safe_relative(bad[i]));
		assert_int_not_equal(tn_path_join("/x", bad[i], &out, &err), 0);
		assert_null(out);
	}
}

static void test_join(void **state)
{
	char *out = NULL;
	struct tn_error err;

	assert_int_equal(tn_path_join("/data", "releases/r1", &out, &err), 0);
	assert_string_equal(out, "/data/releases/r1");
	free(out);
}

static void test_mkdir_p_and_atomic_write_read(void **state)
{
	char *dir = xasprintf("%s/a/b/c", tmpdir);
	char *file = xasprintf("%s/f.txt", dir);
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	struct tn_error err;

	assert_int_equal(tn_mkdir_p(dir, 0755, &err), 0);
	assert_int_equal(tn_mkdir_p(dir, 0755, &err), 0); /* idempotent */
	assert_int_equal(tn_write_file_atomic(file, "first", 5, 0600, &err), 0);
	assert_int_equal(tn_write_file_atomic(file, "second!", 7, 0600, &err), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(tn_read_file(file, 100, &data, &len, &err), 0);
	assert_int_equal(len, 7);
	assert_string_equal(data, "second!");
	free(data);
	data = NULL;
	assert_int_not_equal(tn_read_file(file, 3, &data, &len, &err), 0);
	assert_int_equal(err.code, TN_E_TOO_LARGE);
	assert_null(data);
	/* only the file itself: no temp file left beside it */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int entries = 0;

		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				entries++;
		closedir(d);
		assert_int_equal(entries, 1);
	}
	/* a file in the way of mkdir -p */
	assert_int_not_equal(tn_mkdir_p(file, 0755, &err), 0);
	free(file);
	free(dir);
}

static void test_atomic_write_failure_leaves_nothing(void **state)
{
	char *file = xasprintf("%s/missing-dir/f", tmpdir);
	struct tn_error err;

	assert_int_not_equal(tn_write_file_atomic(file, "x", 1, 0644, &err), 0);
	assert_int_equal(err.code, TN_E_IO);
	assert_non_null(strstr(err.message, "missing-dir"));
	free(file);
}

static void test_remove_tree_does_not_follow_symlinks(void **state)
{
	char *outside = xasprintf("%s/outside", tmpdir);
	char *keep = xasprintf("%s/outside/keep", tmpdir);
	char *tree = xasprintf("%s/tree/sub", tmpdir);
	char *link = xasprintf("%s/tree/sub/link", tmpdir);
	char *top = xasprintf("%s/tree", tmpdir);
	struct tn_error err;
	struct stat st;

	assert_int_equal(tn_mkdir_p(outside, 0755, &err), 0);
	assert_int_equal(tn_write_file_atomic(keep, "k", 1, 0644, &err), 0);
	assert_int_equal(tn_mkdir_p(tree, 0755, &err), 0);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(tn_remove_tree(top, &err), 0);
	assert_int_not_equal(lstat(top, &st), 0);
	assert_int_equal(stat(keep, &st), 0);
	assert_int_equal(tn_remove_tree(top, &err), 0); /* missing is fine */
	free(outside);
	free(keep);
	free(tree);
	free(link);
	free(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_relative_paths),
		cmocka_unit_test(test_join),
		cmocka_unit_test_setup_teardown(test_mkdir_p_and_atomic_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree_does_not_follow_symlinks, setup, teardown),
	};
	return cmocka_run_group_tests_name("fsutil", tests, NULL, NULL);
}
