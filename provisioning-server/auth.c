/* auth.c - the token index.  Secrets never reach the store: it keeps their
 * sha256, and the index here is a sorted array of those hashes, rebuilt
 * whole on every change (tokens change rarely; requests read often). */
#include "auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "sign.h"
#include "store.h"
#include "xalloc.h"

struct entry {
	char hash[65];
	char name[128];
	enum tn_role role;
	time_t expires; /* 0: never */
};

struct tn_auth {
	struct tn_store *store;
	pthread_rwlock_t lock;
	struct entry *entries;
	size_t n;
};

struct loading {
	struct entry *entries;
	size_t n, cap;
};

static time_t parse_time(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	return end && *end == '\0' ? timegm(&tm) : (time_t)-1;
}

static int load_one(void *ctx, const char *name, const char *hash, const char *role,
		    const char *expires)
{
	struct loading *l = ctx;
	struct entry *e;
	int r = tn_role_parse(role);

	if (r < 0 || strlen(hash) != 64)
		return 0; /* a row this build does not understand grants nothing */
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->entries = xrealloc(l->entries, l->cap * sizeof *l->entries);
	}
	e = &l->entries[l->n++];
	memset(e, 0, sizeof *e);
	memcpy(e->hash, hash, 65);
	snprintf(e->name, sizeof e->name, "%s", name);
	e->role = (enum tn_role)r;
	e->expires = expires ? parse_time(expires) : 0;
	return 0;
}

static int by_hash(const void *a, const void *b)
{
	return memcmp(((const struct entry *)a)->hash, ((const struct entry *)b)->hash, 64);
}

int tn_auth_reload(struct tn_auth *auth, struct tn_error *err)
{
	struct loading l = {0};
	int rc = tn_store_api_token_each_active(auth->store, load_one, &l, err);

	if (rc != 0) {
		free(l.entries);
		return rc;
	}
	qsort(l.entries, l.n, sizeof *l.entries, by_hash);
	pthread_rwlock_wrlock(&auth->lock);
	free(auth->entries);
	auth->entries = l.entries;
	auth->n = l.n;
	pthread_rwlock_unlock(&auth->lock);
	return 0;
}

int tn_auth_open(struct tn_store *store, struct tn_auth **out, struct tn_error *err)
{
	struct tn_auth *auth = xcalloc(1, sizeof *auth);
	int rc;

	auth->store = store;
	pthread_rwlock_init(&auth->lock, NULL);
	rc = tn_auth_reload(auth, err);
	if (rc != 0) {
		tn_auth_free(auth);
		return rc;
	}
	*out = auth;
	return 0;
}

void tn_auth_free(struct tn_auth *auth)
{
	if (!auth)
		return;
	pthread_rwlock_destroy(&auth->lock);
	free(auth->entries);
	free(auth);
}

/* The entry of hash, or NULL; call with the lock held. */
static const struct entry *find(struct tn_auth *auth, const struct entry *key)
{
	const struct entry *e =
	    bsearch(key, auth->entries, auth->n, sizeof *auth->entries, by_hash);

	/* The search compares hashes, which tell an attacker nothing about a
	 * secret; the final comparison is constant-time all the same. */
	return e && CRYPTO_memcmp(e->hash, key->hash, 64) == 0 ? e : NULL;
}

static bool expired(const struct entry *e)
{
	return e->expires != 0 && (e->expires == (time_t)-1 || e->expires <= time(NULL));
}

bool tn_auth_hash_valid(struct tn_auth *auth, const char hash[65])
{
	struct entry key;
	const struct entry *e;
	bool valid;

	memcpy(key.hash, hash, 65);
	pthread_rwlock_rdlock(&auth->lock);
	e = find(auth, &key);
	valid = e && !expired(e);
	pthread_rwlock_unlock(&auth->lock);
	return valid;
}

int tn_auth_check(struct tn_auth *auth, const char *token, struct tn_principal *who,
		  struct tn_error *err)
{
	struct entry key;
	const struct entry *e;
	int rc = 0;

	tn_token_hash(token, key.hash);
	/* An agent's token names its target; the store holds its hash. */
	if (strncmp(token, "tnt_", 4) == 0) {
		char *id = NULL;

		if (tn_store_target_by_token(auth->store, key.hash, &id, NULL) != 0)
			return tn_fail(err, TN_E_UNAUTHORIZED,
				       "invalid or revoked target token: enroll again");
		who->role = TN_ROLE_AGENT;
		snprintf(who->name, sizeof who->name, "%s", id);
		free(id);
		return 0;
	}
	pthread_rwlock_rdlock(&auth->lock);
	e = find(auth, &key);
	if (!e)
		rc = tn_fail(err, TN_E_UNAUTHORIZED, "invalid token");
	else if (expired(e))
		rc = tn_fail(err, TN_E_UNAUTHORIZED, "token \"%s\" has expired", e->name);
	else {
		who->role = e->role;
		snprintf(who->name, sizeof who->name, "%s", e->name);
	}
	pthread_rwlock_unlock(&auth->lock);
	return rc;
}

char *tn_token_generate(const char *prefix)
{
	unsigned char raw[32];
	char *b64, *out;

	tn_random_bytes(raw, sizeof raw);
	b64 = tn_base64_encode(raw, sizeof raw);
	/* base64url without padding: safe in headers, URLs and shells. */
	for (char *p = b64; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	out = xasprintf("%s%s", prefix, b64);
	free(b64);
	return out;
}

void tn_token_hash(const char *token, char out[65])
{
	tn_sha256_hex(token, strlen(token), out);
}
