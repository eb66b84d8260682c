/* test_journal.c - the agent's identity and step journal survive a
 * restart exactly as written; the identity file is private. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "journal.h"
#include "xalloc.h"

static void test_not_enrolled(void **state)
{
	char *dir = xstrdup("/tmp/tn-journal-XXXXXX");
	struct tn_journal j;
	struct tn_error err;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(tn_journal_load(dir, &j, &err), -(int)TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, "not enrolled"));
	assert_int_equal(tn_remove_tree(dir, NULL), 0);
	free(dir);
}

static void test_round_trip(void **state)
{
	char *dir = xstrdup("/tmp/tn-journal-XXXXXX");
	char *path;
	struct tn_journal j = {0}, back;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	tn_journal_set(&j.server, "http://127.0.0.1:8080");
	tn_journal_set(&j.target_id, "t-abc");
	tn_journal_set(&j.token, "tnt_secret");
	tn_journal_set(&j.server_key, "a2V5");
	assert_int_equal(tn_journal_save_identity(dir, &j, NULL), 0);
	/* enrolled, never switched: idle */
	assert_int_equal(tn_journal_load(dir, &back, NULL), 0);
	assert_int_equal(back.phase, TN_JOURNAL_IDLE);
	assert_null(back.to);
	tn_journal_clear(&back);

	j.generation = 12;
	j.phase = TN_JOURNAL_COMMITTING;
	tn_journal_set(&j.from, "educa@1.0.0+aaaaaaaaaaaa");
	tn_journal_set(&j.to, "educa@1.1.0+bbbbbbbbbbbb");
	j.switch_generation = 11;
	tn_journal_set(&j.failed, "educa@1.2.0+cccccccccccc");
	j.failed_generation = 9;
	tn_journal_set(&j.message, "GET /healthz: HTTP 503");
	assert_int_equal(tn_journal_save(dir, &j, NULL), 0);

	assert_int_equal(tn_journal_load(dir, &back, NULL), 0);
	assert_string_equal(back.server, "http://127.0.0.1:8080");
	assert_string_equal(back.target_id, "t-abc");
	assert_string_equal(back.token, "tnt_secret");
	assert_string_equal(back.server_key, "a2V5");
	assert_int_equal(back.generation, 12);
	assert_int_equal(back.phase, TN_JOURNAL_COMMITTING);
	assert_string_equal(back.from, "educa@1.0.0+aaaaaaaaaaaa");
	assert_string_equal(back.to, "educa@1.1.0+bbbbbbbbbbbb");
	assert_int_equal(back.switch_generation, 11);
	assert_string_equal(back.failed, "educa@1.2.0+cccccccccccc");
	assert_int_equal(back.failed_generation, 9);
	assert_string_equal(back.message, "GET /healthz: HTTP 503");
	tn_journal_clear(&back);

	path = xasprintf("%s/agent.json", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	tn_journal_clear(&j);
	assert_int_equal(tn_remove_tree(dir, NULL), 0);
	free(dir);
}

static void test_corrupt_journal_is_an_error(void **state)
{
	char *dir = xstrdup("/tmp/tn-journal-XXXXXX");
	char *path;
	struct tn_journal j = {0}, back;
	struct tn_error err;

	assert_non_null(mkdtemp(dir));
	tn_journal_set(&j.server, "http://x");
	tn_journal_set(&j.target_id, "t-1");
	tn_journal_set(&j.token, "tnt_1");
	tn_journal_set(&j.server_key, "a2V5");
	assert_int_equal(tn_journal_save_identity(dir, &j, NULL), 0);
	path = xasprintf("%s/journal.json", dir);
	assert_int_equal(tn_write_file_atomic(path, "{not json", 9, 0600, NULL), 0);
	assert_int_not_equal(tn_journal_load(dir, &back, &err), 0);
	assert_non_null(strstr(err.message, "journal.json"));
	free(path);
	tn_journal_clear(&j);
	assert_int_equal(tn_remove_tree(dir, NULL), 0);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_enrolled),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_corrupt_journal_is_an_error),
	};
	return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
