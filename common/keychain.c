/* keychain.c - see keychain.h.  A chain is parsed whole (bounded) into
 * links before any signature is looked at; verification then walks the
 * links in order. */
#include "keychain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* base64 of 32 and of 64 bytes, with padding. */
#define KEY_B64_LEN 44
#define SIG_B64_LEN 88
#define LINK_LEN (KEY_B64_LEN + 1 + KEY_B64_LEN + 1 + SIG_B64_LEN)

struct link {
	char old[KEY_B64_LEN + 1];
	char new[KEY_B64_LEN + 1];
	char sig[SIG_B64_LEN + 1];
};

/* What the old key signs: the purpose first, so that no JSON document
 * (which starts with '{') can be this message, and both keys. */
static char *message(const char *old_b64, const char *new_b64)
{
	return xasprintf("%s\n%s\n%s\n", TN_KEYCHAIN_PURPOSE, old_b64, new_b64);
}

int tn_keychain_endorse(const struct tn_key *old_key, const struct tn_key *new_key, char **out,
			struct tn_error *err)
{
	char *old_b64 = tn_key_public_b64(old_key), *new_b64 = tn_key_public_b64(new_key);
	char *msg = message(old_b64, new_b64), *sig = NULL;
	int rc;

	*out = NULL;
	if ((rc = tn_sign_b64(old_key, msg, strlen(msg), &sig, err)))
		goto out;
	*out = xasprintf("%s.%s.%s", old_b64, new_b64, sig);
out:
	free(sig);
	free(msg);
	free(new_b64);
	free(old_b64);
	return rc;
}

static bool is_sep(char c)
{
	return c == ',' || c == '\n' || c == '\r' || c == ' ' || c == '\t';
}

/* Splits chain into links (*out caller-freed, *n of them); NULL or only
 * separators is no link.  Checks the shape and that links join, not the
 * signatures. */
static int parse(const char *chain, struct link **out, size_t *n, struct tn_error *err)
{
	struct link *links = xcalloc(TN_KEYCHAIN_MAX, sizeof *links);
	const char *p = chain ? chain : "";
	size_t count = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	for (;;) {
		const char *start, *d1, *d2;
		size_t len;

		while (*p && is_sep(*p))
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && !is_sep(*p))
			p++;
		len = (size_t)(p - start);
		if (count == TN_KEYCHAIN_MAX) {
			rc = tn_fail(err, TN_E_INVALID, "key chain: more than %d endorsements",
				     TN_KEYCHAIN_MAX);
			goto out;
		}
		d1 = len == LINK_LEN ? start + KEY_B64_LEN : NULL;
		d2 = d1 ? d1 + 1 + KEY_B64_LEN : NULL;
		if (!d1 || *d1 != '.' || *d2 != '.') {
			rc = tn_fail(err, TN_E_INVALID,
				     "key chain: endorsement %zu is not OLD.NEW.SIGNATURE (base64 "
				     "of two Ed25519 public keys and a signature)",
				     count + 1);
			goto out;
		}
		memcpy(links[count].old, start, KEY_B64_LEN);
		memcpy(links[count].new, d1 + 1, KEY_B64_LEN);
		memcpy(links[count].sig, d2 + 1, SIG_B64_LEN);
		if (count > 0 && strcmp(links[count - 1].new, links[count].old) != 0) {
			rc = tn_fail(err, TN_E_INVALID,
				     "key chain: endorsement %zu does not start from the key "
				     "endorsement %zu endorsed",
				     count + 1, count);
			goto out;
		}
		count++;
	}
	*out = links;
	*n = count;
	links = NULL;
out:
	free(links);
	return rc;
}

/* Link i (0-based) was signed by its OLD, and NEW is a key. */
static int verify_link(const struct link *l, size_t i, struct tn_error *err)
{
	struct tn_key *old_key = NULL, *new_key = NULL;
	char *msg = NULL;
	int rc;

	if ((rc = tn_key_from_public_b64(l->old, &old_key, err)) ||
	    (rc = tn_key_from_public_b64(l->new, &new_key, err))) {
		tn_error_prefix(err, "key chain: endorsement %zu", i + 1);
		goto out;
	}
	msg = message(l->old, l->new);
	if (tn_verify_b64(old_key, msg, strlen(msg), l->sig, NULL) != 0)
		rc = tn_fail(err, TN_E_SIGNATURE,
			     "key chain: endorsement %zu of key %s was not signed by key %s "
			     "(forged)",
			     i + 1, l->new, l->old);
out:
	free(msg);
	tn_key_free(new_key);
	tn_key_free(old_key);
	return rc;
}

int tn_keychain_check(const char *chain, const char *current_b64, struct tn_error *err)
{
	struct link *links = NULL;
	size_t n = 0;
	int rc;

	if ((rc = parse(chain, &links, &n, err)))
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((rc = verify_link(&links[i], i, err)))
			goto out;
	if (n > 0 && strcmp(links[n - 1].new, current_b64) != 0)
		rc = tn_fail(err, TN_E_INVALID,
			     "key chain: it ends at key %s, but the signing key is %s",
			     links[n - 1].new, current_b64);
out:
	free(links);
	return rc;
}

int tn_keychain_follow(const char *chain, const char *pinned_b64, char **end_b64,
		       struct tn_error *err)
{
	struct link *links = NULL;
	const char *end = pinned_b64;
	size_t n = 0, from = 0;
	int rc;

	*end_b64 = NULL;
	if ((rc = parse(chain, &links, &n, err)))
		goto out;
	/* Links join, so the pinned key is the OLD of one link at most (a
	 * chain that came back to a key would be a loop of rotations, which
	 * the server never makes; the first occurrence is followed). */
	while (from < n && strcmp(links[from].old, pinned_b64) != 0)
		from++;
	for (size_t i = from; i < n; i++) {
		if ((rc = verify_link(&links[i], i, err)))
			goto out;
		end = links[i].new;
	}
	*end_b64 = xstrdup(end);
out:
	free(links);
	return rc;
}
