/* test_signkey.c - the server's signing key on disk: made at the first
 * open, rotated (the new key endorsed by the old, the chain kept and
 * checked), and a rotation cut short at each step settled at the next
 * open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "keychain.h"
#include "sign.h"
#include "signkey.h"
#include "xalloc.h"

static int make_dir(void **state)
{
	char *dir = xstrdup("/tmp/tn-signkey-XXXXXX");

	if (!mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int remove_dir(void **state)
{
	char *dir = *state;

	assert_int_equal(tn_remove_tree(dir, NULL), 0);
	free(dir);
	return 0;
}

/* The public key the data directory signs with now (caller frees), and
 * its chain as the header carries it (*chain, caller frees, NULL: none). */
static char *open_pub(const char *dir, char **chain)
{
	struct tn_key *key = NULL;
	struct tn_error err;
	char *pub;

	if (tn_signkey_open(dir, &key, chain, &err) != 0)
		fail_msg("open: %s", err.message);
	pub = tn_key_public_b64(key);
	tn_key_free(key);
	return pub;
}

static char *path(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void test_first_open_makes_a_key(void **state)
{
	const char *dir = *state;
	char *chain = (char *)"untouched", *a, *b, *kp = path(dir, "server.key");
	struct stat st;

	a = open_pub(dir, &chain);
	assert_null(chain);
	assert_int_equal(stat(kp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	b = open_pub(dir, &chain); /* the same key again */
	assert_string_equal(a, b);
	free(a);
	free(b);
	free(kp);
}

/* Two rotations: the key changes each time, the old one is gone from
 * disk, and the chain leads from the first key to the last. */
static void test_rotate_twice(void **state)
{
	const char *dir = *state;
	char *first, *o1, *n1, *o2, *n2, *chain = NULL, *now, *end = NULL;
	struct tn_error err;

	first = open_pub(dir, &chain);
	if (tn_signkey_rotate(dir, &o1, &n1, &err) != 0)
		fail_msg("rotate: %s", err.message);
	assert_string_equal(o1, first);
	assert_string_not_equal(n1, first);
	assert_int_equal(tn_signkey_rotate(dir, &o2, &n2, &err), 0);
	assert_string_equal(o2, n1);
	now = open_pub(dir, &chain);
	assert_string_equal(now, n2);
	assert_non_null(chain);
	assert_non_null(strstr(chain, ", ")); /* two links */
	assert_int_equal(tn_keychain_follow(chain, first, &end, &err), 0);
	assert_string_equal(end, n2);
	free(end);
	assert_int_equal(tn_keychain_follow(chain, n1, &end, &err), 0);
	assert_string_equal(end, n2);
	free(end);
	free(first), free(o1), free(n1), free(o2), free(n2), free(now), free(chain);
}

static void test_rotate_without_key(void **state)
{
	const char *dir = *state;
	char *o = NULL, *n = NULL;
	struct tn_error err;

	assert_int_equal(tn_signkey_rotate(dir, &o, &n, &err), -TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, "start the server once"));
	assert_null(o);
	assert_null(n);
}

/* A crash after the new key was written aside, before the chain: the old
 * key still signs and the leftover goes. */
static void test_cut_short_before_chain(void **state)
{
	const char *dir = *state;
	char *chain = NULL, *before, *after, *next = path(dir, "server.key.next");
	struct tn_key *stray = NULL;
	struct tn_error err;

	before = open_pub(dir, &chain);
	assert_int_equal(tn_key_generate(&stray, NULL), 0);
	assert_int_equal(tn_key_save_private_pem(stray, next, &err), 0);
	after = open_pub(dir, &chain);
	assert_string_equal(before, after);
	assert_null(chain);
	assert_int_not_equal(access(next, F_OK), 0);
	tn_key_free(stray);
	free(before), free(after), free(next);
}

/* A crash after the chain was written, before the rename: the new key
 * takes over at the next open. */
static void test_cut_short_after_chain(void **state)
{
	const char *dir = *state;
	char *chain = NULL, *before, *after, *line = NULL, *text, *want;
	char *kp = path(dir, "server.key"), *next = path(dir, "server.key.next");
	char *cp = path(dir, "server.key.chain");
	struct tn_key *old = NULL, *new_key = NULL;
	struct tn_error err;

	before = open_pub(dir, &chain);
	assert_int_equal(tn_key_load_private_pem(kp, &old, &err), 0);
	assert_int_equal(tn_key_generate(&new_key, NULL), 0);
	assert_int_equal(tn_keychain_endorse(old, new_key, &line, &err), 0);
	text = xasprintf("%s\n", line);
	assert_int_equal(tn_key_save_private_pem(new_key, next, &err), 0);
	assert_int_equal(tn_write_file_atomic(cp, text, strlen(text), 0644, &err), 0);
	after = open_pub(dir, &chain);
	want = tn_key_public_b64(new_key);
	assert_string_equal(after, want);
	assert_string_equal(chain, line);
	assert_int_not_equal(access(next, F_OK), 0);
	tn_key_free(old), tn_key_free(new_key);
	free(before), free(after), free(line), free(text), free(want), free(chain);
	free(kp), free(next), free(cp);
}

/* A chain file that does not verify or end at the key stops the start,
 * naming the file. */
static void test_bad_chain_refused(void **state)
{
	const char *dir = *state;
	char *chain = NULL, *first, *o, *n, *cp = path(dir, "server.key.chain"), *text = NULL;
	struct tn_key *key = NULL;
	struct tn_error err;
	size_t len = 0;

	first = open_pub(dir, &chain);
	assert_int_equal(tn_signkey_rotate(dir, &o, &n, &err), 0);
	assert_int_equal(tn_read_file(cp, 1 << 16, &text, &len, &err), 0);
	text[100] = text[100] == 'A' ? 'B' : 'A'; /* inside the signature */
	assert_int_equal(tn_write_file_atomic(cp, text, len, 0644, &err), 0);
	assert_true(tn_signkey_open(dir, &key, &chain, &err) < 0);
	assert_null(key);
	assert_non_null(strstr(err.message, "server.key.chain"));
	/* and a rotation refuses to extend it */
	free(o), free(n);
	assert_true(tn_signkey_rotate(dir, &o, &n, &err) < 0);
	free(first), free(text), free(cp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_open_makes_a_key, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_rotate_twice, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_rotate_without_key, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_cut_short_before_chain, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_cut_short_after_chain, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_bad_chain_refused, make_dir, remove_dir),
	};
	return cmocka_run_group_tests_name("signkey", tests, NULL, NULL);
}
