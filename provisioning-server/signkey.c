/* signkey.c - see signkey.h.  Offline rotation: the running server reads
 * its key once at start, so a rotation is made on a stopped server's data
 * directory and takes effect at the next start; agents ride out the
 * restart and follow the chain at their next document. */
#include "signkey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "keychain.h"
#include "log.h"
#include "xalloc.h"

/* TN_KEYCHAIN_MAX lines of about 180 bytes. */
#define CHAIN_FILE_MAX (16 * 1024)

struct paths {
	char *key, *chain, *next;
};

static void paths_init(struct paths *p, const char *data_dir)
{
	p->key = xasprintf("%s/server.key", data_dir);
	p->chain = xasprintf("%s/server.key.chain", data_dir);
	p->next = xasprintf("%s/server.key.next", data_dir);
}

static void paths_free(struct paths *p)
{
	free(p->key);
	free(p->chain);
	free(p->next);
}

/* The chain file's text (caller frees), "" when there is none. */
static int read_chain(const struct paths *p, char **out, struct tn_error *err)
{
	size_t len = 0;

	if (access(p->chain, F_OK) != 0 && errno == ENOENT) {
		*out = xstrdup("");
		return 0;
	}
	return tn_read_file(p->chain, CHAIN_FILE_MAX, out, &len, err);
}

/* A rotation cut short left server.key.next: when the chain already
 * endorses it, the rotation is finished (renamed into place), else undone
 * (the chain was not written: the old key still signs). */
static int settle_rotation(const struct paths *p, struct tn_error *err)
{
	struct tn_key *next = NULL;
	char *chain = NULL, *pub = NULL;
	int rc = tn_key_load_private_pem(p->next, &next, err);

	if (rc == -(int)TN_E_NOT_FOUND) {
		rc = 0;
		goto out;
	}
	if (rc || (rc = read_chain(p, &chain, err)))
		goto out;
	pub = tn_key_public_b64(next);
	if (*chain && tn_keychain_check(chain, pub, NULL) == 0) {
		if (rename(p->next, p->key) != 0) {
			rc = tn_fail_errno(err, errno, "rename %s to %s", p->next, p->key);
			goto out;
		}
		if ((rc = tn_fsync_parent(p->key, err)))
			goto out;
		tn_log(TN_LOG_WARN, "server", "key_rotation_finished", "{s:s}", "key", pub);
	} else {
		if (unlink(p->next) != 0) {
			rc = tn_fail_errno(err, errno, "remove %s", p->next);
			goto out;
		}
		tn_log(TN_LOG_WARN, "server", "key_rotation_undone", "{s:s}", "file", p->next);
	}
out:
	free(pub);
	free(chain);
	tn_key_free(next);
	return rc;
}

/* The chain's lines joined by ", " (caller frees), NULL for no line. */
static char *header_value(const char *chain)
{
	size_t n = strlen(chain);
	char *out = xmalloc(2 * n + 1), *o = out;

	for (const char *q = chain; *q;) {
		size_t len;

		while (*q == '\n' || *q == '\r' || *q == ' ')
			q++;
		len = strcspn(q, "\r\n ");
		if (len == 0)
			break;
		if (o != out)
			*o++ = ',', *o++ = ' ';
		memcpy(o, q, len);
		o += len;
		q += len;
	}
	*o = '\0';
	if (o == out) {
		free(out);
		return NULL;
	}
	return out;
}

int tn_signkey_open(const char *data_dir, struct tn_key **key, char **endorsements,
		    struct tn_error *err)
{
	struct paths p;
	char *chain = NULL, *pub = NULL;
	int rc;

	*key = NULL;
	*endorsements = NULL;
	paths_init(&p, data_dir);
	if ((rc = settle_rotation(&p, err)) || (rc = tn_key_load_or_create(p.key, key, err)) ||
	    (rc = read_chain(&p, &chain, err)))
		goto out;
	pub = tn_key_public_b64(*key);
	if ((rc = tn_keychain_check(chain, pub, err))) {
		tn_error_prefix(err, "%s", p.chain);
		goto out;
	}
	*endorsements = header_value(chain);
out:
	if (rc) {
		tn_key_free(*key);
		*key = NULL;
	}
	free(pub);
	free(chain);
	paths_free(&p);
	return rc;
}

int tn_signkey_rotate(const char *data_dir, char **old_b64, char **new_b64, struct tn_error *err)
{
	struct tn_key *old_key = NULL, *new_key = NULL;
	char *chain = NULL, *line = NULL, *text = NULL, *oldp = NULL, *newp = NULL;
	struct paths p;
	int rc;

	*old_b64 = *new_b64 = NULL;
	paths_init(&p, data_dir);
	if ((rc = settle_rotation(&p, err)))
		goto out;
	rc = tn_key_load_private_pem(p.key, &old_key, err);
	if (rc == -(int)TN_E_NOT_FOUND) {
		rc = tn_fail(err, TN_E_NOT_FOUND,
			     "no signing key in %s (start the server once to make one)", data_dir);
		goto out;
	}
	if (rc || (rc = read_chain(&p, &chain, err)))
		goto out;
	oldp = tn_key_public_b64(old_key);
	/* never extend a chain that agents could not follow */
	if ((rc = tn_keychain_check(chain, oldp, err))) {
		tn_error_prefix(err, "%s", p.chain);
		goto out;
	}
	if ((rc = tn_key_generate(&new_key, err)) ||
	    (rc = tn_keychain_endorse(old_key, new_key, &line, err)))
		goto out;
	newp = tn_key_public_b64(new_key);
	text = xasprintf("%s%s%s\n", chain, *chain && chain[strlen(chain) - 1] != '\n' ? "\n" : "",
			 line);
	if ((rc = tn_keychain_check(text, newp, err))) /* over TN_KEYCHAIN_MAX */
		goto out;
	/* the order that makes a crash harmless: see signkey.h */
	if ((rc = tn_key_save_private_pem(new_key, p.next, err)) ||
	    (rc = tn_write_file_atomic(p.chain, text, strlen(text), 0644, err)))
		goto out;
	if (rename(p.next, p.key) != 0) {
		rc = tn_fail_errno(err, errno, "rename %s to %s", p.next, p.key);
		goto out;
	}
	if ((rc = tn_fsync_parent(p.key, err)))
		goto out;
	*old_b64 = oldp;
	*new_b64 = newp;
	oldp = newp = NULL;
out:
	free(newp);
	free(oldp);
	free(text);
	free(line);
	free(chain);
	tn_key_free(new_key);
	tn_key_free(old_key);
	paths_free(&p);
	return rc;
}
