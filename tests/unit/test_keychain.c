/* test_keychain.c - endorsements of a new signing key by the old one: the
 * format, the purpose string that keeps them apart from document
 * signatures, the server's check of its chain and an agent's walk from the
 * key it pinned, through one or several rotations, and every forgery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "keychain.h"
#include "sign.h"
#include "xalloc.h"

#define NKEYS 4

/* keys[0] -> keys[1] -> keys[2] -> keys[3], each endorsed by the one
 * before; pub[i] their public keys; links[i] the endorsement of keys[i+1]. */
struct fx {
	struct tn_key *keys[NKEYS];
	char *pub[NKEYS];
	char *links[NKEYS - 1];
	struct tn_key *stranger;
	char *stranger_pub;
};

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	for (int i = 0; i < NKEYS; i++) {
		assert_int_equal(tn_key_generate(&fx->keys[i], NULL), 0);
		fx->pub[i] = tn_key_public_b64(fx->keys[i]);
	}
	for (int i = 0; i + 1 < NKEYS; i++)
		assert_int_equal(
		    tn_keychain_endorse(fx->keys[i], fx->keys[i + 1], &fx->links[i], NULL), 0);
	assert_int_equal(tn_key_generate(&fx->stranger, NULL), 0);
	fx->stranger_pub = tn_key_public_b64(fx->stranger);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < NKEYS; i++) {
		tn_key_free(fx->keys[i]);
		free(fx->pub[i]);
	}
	for (int i = 0; i + 1 < NKEYS; i++)
		free(fx->links[i]);
	tn_key_free(fx->stranger);
	free(fx->stranger_pub);
	free(fx);
	return 0;
}

/* links[from..to) joined as the header carries them. */
static char *chain(const struct fx *fx, int from, int to)
{
	char *out = xstrdup("");

	for (int i = from; i < to; i++) {
		char *next = xasprintf("%s%s%s", out, *out ? ", " : "", fx->links[i]);

		free(out);
		out = next;
	}
	return out;
}

static void expect_follow(const char *c, const char *pinned, const char *want)
{
	struct tn_error err;
	char *end = NULL;

	if (tn_keychain_follow(c, pinned, &end, &err) != 0)
		fail_msg("follow failed: %s", err.message);
	assert_string_equal(end, want);
	free(end);
}

static void expect_refused(const char *c, const char *pinned, int code, const char *needle)
{
	struct tn_error err;
	char *end = (char *)"untouched";

	assert_int_equal(tn_keychain_follow(c, pinned, &end, &err), -code);
	assert_null(end);
	if (!strstr(err.message, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
}

/* OLD.NEW.SIG: both public keys in base64, the old key's signature over the
 * purpose string and both keys; never a valid signature of the bare new key. */
static void test_endorsement_format(void **state)
{
	struct fx *fx = *state;
	const char *l = fx->links[0];
	char *msg = xasprintf("%s\n%s\n%s\n", TN_KEYCHAIN_PURPOSE, fx->pub[0], fx->pub[1]);

	assert_int_equal(strlen(l), 44 + 1 + 44 + 1 + 88);
	assert_int_equal(strncmp(l, fx->pub[0], 44), 0);
	assert_int_equal(l[44], '.');
	assert_int_equal(strncmp(l + 45, fx->pub[1], 44), 0);
	assert_int_equal(l[89], '.');
	assert_int_equal(tn_verify_b64(fx->keys[0], msg, strlen(msg), l + 90, NULL), 0);
	/* the purpose string is part of what is signed */
	assert_int_equal(tn_verify_b64(fx->keys[0], fx->pub[1], strlen(fx->pub[1]), l + 90, NULL),
			 -TN_E_SIGNATURE);
	free(msg);
}

/* A public key cannot endorse (no private part). */
static void test_endorse_needs_private_key(void **state)
{
	struct fx *fx = *state;
	struct tn_key *pub = NULL;
	struct tn_error err;
	char *out = NULL;

	assert_int_equal(tn_key_from_public_b64(fx->pub[0], &pub, NULL), 0);
	assert_int_equal(tn_keychain_endorse(pub, fx->keys[1], &out, &err), -TN_E_INVALID);
	assert_null(out);
	tn_key_free(pub);
}

/* The agent's walk: one rotation, two missed rotations, a key pinned in
 * the middle, the last key, and no chain. */
static void test_follow(void **state)
{
	struct fx *fx = *state;
	char *all = chain(fx, 0, 3), *one = chain(fx, 0, 1);

	expect_follow(one, fx->pub[0], fx->pub[1]);
	expect_follow(all, fx->pub[0], fx->pub[3]); /* offline for three rotations */
	expect_follow(all, fx->pub[1], fx->pub[3]);
	expect_follow(all, fx->pub[3], fx->pub[3]); /* already there */
	expect_follow(NULL, fx->pub[0], fx->pub[0]);
	expect_follow("", fx->pub[0], fx->pub[0]);
	/* a key the chain never names: nothing to follow */
	expect_follow(all, fx->stranger_pub, fx->stranger_pub);
	/* newlines separate as well as ", " (the server's file) */
	{
		char *lines = xasprintf("%s\n%s\n", fx->links[0], fx->links[1]);

		expect_follow(lines, fx->pub[0], fx->pub[2]);
		free(lines);
	}
	free(one);
	free(all);
}

/* A stranger key endorsing itself, or claiming an endorsement from the
 * pinned key that the pinned key never signed, is a forgery. */
static void test_follow_refuses_forgeries(void **state)
{
	struct fx *fx = *state;
	char *self = NULL, *forged, *sig = NULL, *msg, *tail;

	/* stranger -> stranger, appended to the genuine chain: the walk from
	 * pub[0] reaches pub[3], and the stranger link does not join */
	assert_int_equal(tn_keychain_endorse(fx->stranger, fx->stranger, &self, NULL), 0);
	tail = xasprintf("%s, %s", fx->links[0], self);
	expect_refused(tail, fx->pub[0], TN_E_INVALID, "does not start from");
	free(tail);
	/* alone, it does not start from the pinned key: nothing to follow */
	expect_follow(self, fx->pub[0], fx->pub[0]);

	/* pinned -> stranger, signed by the stranger */
	msg = xasprintf("%s\n%s\n%s\n", TN_KEYCHAIN_PURPOSE, fx->pub[0], fx->stranger_pub);
	assert_int_equal(tn_sign_b64(fx->stranger, msg, strlen(msg), &sig, NULL), 0);
	forged = xasprintf("%s.%s.%s", fx->pub[0], fx->stranger_pub, sig);
	expect_refused(forged, fx->pub[0], TN_E_SIGNATURE, "was not signed by key");
	free(forged);
	free(sig);
	free(msg);

	/* a genuine link, then stranger-signed pub[1] -> stranger */
	msg = xasprintf("%s\n%s\n%s\n", TN_KEYCHAIN_PURPOSE, fx->pub[1], fx->stranger_pub);
	assert_int_equal(tn_sign_b64(fx->stranger, msg, strlen(msg), &sig, NULL), 0);
	forged = xasprintf("%s, %s.%s.%s", fx->links[0], fx->pub[1], fx->stranger_pub, sig);
	expect_refused(forged, fx->pub[0], TN_E_SIGNATURE, "endorsement 2");
	free(forged);
	free(sig);
	free(msg);

	/* a document signature passed off as an endorsement: the purpose
	 * string is missing from what was signed */
	assert_int_equal(tn_sign_b64(fx->keys[0], fx->pub[1], strlen(fx->pub[1]), &sig, NULL), 0);
	forged = xasprintf("%s.%s.%s", fx->pub[0], fx->pub[1], sig);
	expect_refused(forged, fx->pub[0], TN_E_SIGNATURE, "forged");
	free(forged);
	free(sig);
	free(self);
}

static void test_follow_refuses_malformed(void **state)
{
	struct fx *fx = *state;
	char *c, *swapped;

	expect_refused("garbage", fx->pub[0], TN_E_INVALID, "not OLD.NEW.SIGNATURE");
	c = xstrndup(fx->links[0], strlen(fx->links[0]) - 1); /* cut short */
	expect_refused(c, fx->pub[0], TN_E_INVALID, "endorsement 1");
	free(c);
	/* right length, a part that is not base64 of a key */
	c = xstrdup(fx->links[0]);
	memset(c, '*', 44);
	{
		char *pinned = xstrndup(c, 44);

		expect_refused(c, pinned, TN_E_INVALID, "endorsement 1");
		free(pinned);
	}
	free(c);
	c = xstrdup(fx->links[0]);
	memset(c + 45, '*', 44);
	expect_refused(c, fx->pub[0], TN_E_INVALID, "endorsement 1");
	free(c);
	/* links out of order do not join */
	swapped = xasprintf("%s, %s", fx->links[1], fx->links[0]);
	expect_refused(swapped, fx->pub[0], TN_E_INVALID, "does not start from");
	free(swapped);
	/* more links than the cap (a key endorsing itself joins itself) */
	{
		char *many = xstrdup(""), *self = NULL;

		assert_int_equal(tn_keychain_endorse(fx->stranger, fx->stranger, &self, NULL), 0);
		for (int i = 0; i <= TN_KEYCHAIN_MAX; i++) {
			char *next = xasprintf("%s%s%s", many, i ? ", " : "", self);

			free(many);
			many = next;
		}
		expect_refused(many, fx->pub[0], TN_E_INVALID, "more than");
		free(many);
		free(self);
	}
}

/* The server's own check: the chain must end at its current key. */
static void test_check(void **state)
{
	struct fx *fx = *state;
	char *all = chain(fx, 0, 3);
	struct tn_error err;

	assert_int_equal(tn_keychain_check(all, fx->pub[3], &err), 0);
	assert_int_equal(tn_keychain_check(NULL, fx->pub[0], &err), 0);
	assert_int_equal(tn_keychain_check(all, fx->pub[2], &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "but the signing key is"));
	/* a bad signature anywhere, even before any agent's pin */
	all[strlen(fx->links[0]) - 5] ^= 1;
	assert_true(tn_keychain_check(all, fx->pub[3], &err) < 0);
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_endorsement_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_endorse_needs_private_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_follow_refuses_forgeries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_follow_refuses_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};
	return cmocka_run_group_tests_name("keychain", tests, NULL, NULL);
}
