/* desired.c - see desired.h.  The document is the server's instruction to
 * run code on this node, so nothing in it is looked at before its signature
 * verifies, and everything in it is checked before anyone acts on it. */
#include "desired.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "keychain.h"
#include "manifest.h"
#include "version.h"
#include "xalloc.h"

#define SIG_SCHEME "ed25519="
#define RELEASE_HASH_LEN 12

static const char *const top_keys[] = {
	"target_id", "cluster", "generation", "state", "run", "prepare", "lb", NULL,
};
static const char *const release_keys[] = {
	"id", "distribution", "version", "bundles", "config", NULL,
};
static const char *const bundle_keys[] = {
	"name", "version", "sha256", "size", "url", NULL,
};
static const char *const lb_keys[] = {
	"driver", "agent_port", NULL,
};

static const char *const state_names[] = {
	[TN_DESIRED_ACTIVE] = "active",
	[TN_DESIRED_DRAINING] = "draining",
	[TN_DESIRED_REMOVED] = "removed",
};

const char *tn_desired_state_name(enum tn_desired_state state)
{
	return state_names[state];
}

/* Fails with "<path>: <what>" where path is where.key. */
static int fail_at(struct tn_error *err, const char *where, const char *key, const char *what,
		   const char *value)
{
	char *path = tn_json_path(where, key);
	struct tn_shown shown;
	int rc;

	if (value)
		rc = tn_fail(err, TN_E_INVALID, "%s: \"%s\" %s", path,
			     tn_show(value, strlen(value), &shown), what);
	else
		rc = tn_fail(err, TN_E_INVALID, "%s: %s", path, what);
	free(path);
	return rc;
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The part after the prefix is one path segment of unreserved characters:
 * no query, fragment, escape or dot-segment that could lead elsewhere. */
static bool blob_url_valid(const char *url)
{
	size_t plen = strlen(TN_DESIRED_BLOB_PREFIX);
	size_t n = strlen(url);
	const char *rest = url + plen;

	if (n <= plen || n > TN_DESIRED_URL_MAX || strncmp(url, TN_DESIRED_BLOB_PREFIX, plen) != 0)
		return false;
	if (strcmp(rest, ".") == 0 || strcmp(rest, "..") == 0)
		return false;
	for (const char *p = rest; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* ---------------------------------------------------------------- release */

static int parse_bundle(json_t *obj, const char *where, struct tn_desired_bundle *b,
			struct tn_error *err)
{
	struct tn_version v;
	json_int_t size = 0;
	int rc;

	if (!json_is_object(obj))
		return tn_fail(err, TN_E_INVALID, "%s: must be an object", where);
	if ((rc = tn_json_check_keys(obj, where, bundle_keys, err)) < 0 ||
	    (rc = tn_json_get_string(obj, where, "name", true, &b->name, err)) < 0 ||
	    (rc = tn_json_get_string(obj, where, "version", true, &b->version, err)) < 0 ||
	    (rc = tn_json_get_string(obj, where, "sha256", true, &b->sha256, err)) < 0 ||
	    (rc = tn_json_get_int(obj, where, "size", true, 1, TN_DESIRED_BLOB_MAX, &size, err)) <
		    0 ||
	    (rc = tn_json_get_string(obj, where, "url", true, &b->url, err)) < 0)
		return rc;
	b->size = (uint64_t)size;
	if (!tn_manifest_name_valid(b->name))
		return fail_at(err, where, "name", "is not a valid bundle name", b->name);
	if (tn_version_parse(b->version, &v, NULL) < 0)
		return fail_at(err, where, "version", "is not a valid version", b->version);
	if (!tn_sha256_hex_valid(b->sha256))
		return fail_at(err, where, "sha256", "is not 64 lowercase hex digits", b->sha256);
	if (!blob_url_valid(b->url))
		return fail_at(err, where, "url",
			       "is not a blob path (" TN_DESIRED_BLOB_PREFIX "<name>)", b->url);
	return 0;
}

static int parse_bundles(struct tn_desired_release *r, json_t *arr, const char *where,
			 struct tn_error *err)
{
	char *bwhere = tn_json_path(where, "bundles");
	size_t n = json_array_size(arr);
	int rc = 0;

	if (n == 0 || n > TN_DESIRED_BUNDLES_MAX) {
		rc = tn_fail(err, TN_E_INVALID, "%s: must hold 1 to %d bundles", bwhere,
			     TN_DESIRED_BUNDLES_MAX);
		goto out;
	}
	r->bundles = xcalloc(n, sizeof *r->bundles);
	for (size_t i = 0; i < n; i++) {
		char *iwhere = tn_json_path_index(bwhere, i);

		rc = parse_bundle(json_array_get(arr, i), iwhere, &r->bundles[i], err);
		for (size_t j = 0; rc == 0 && j < i; j++)
			if (strcmp(r->bundles[j].name, r->bundles[i].name) == 0)
				rc = fail_at(err, iwhere, "name", "appears twice",
					     r->bundles[i].name);
		free(iwhere);
		if (rc < 0)
			goto out;
		r->n_bundles = i + 1;
	}
out:
	free(bwhere);
	return rc;
}

static bool has_bundle(const struct tn_desired_release *r, const char *name)
{
	for (size_t i = 0; i < r->n_bundles; i++)
		if (strcmp(r->bundles[i].name, name) == 0)
			return true;
	return false;
}

/* config: {bundle: {key: scalar}}.  The types are checked against each
 * bundle's model at staging, where the manifest is known. */
static int parse_config(struct tn_desired_release *r, const char *where, struct tn_error *err)
{
	char *cwhere = tn_json_path(where, "config");
	const char *name, *key;
	json_t *values, *v;
	int rc = 0;

	json_object_foreach(r->config, name, values) {
		char *bwhere = tn_json_path(cwhere, name);

		if (!has_bundle(r, name))
			rc = tn_fail(err, TN_E_INVALID, "%s: not a bundle of this release", bwhere);
		else if (!json_is_object(values))
			rc = tn_fail(err, TN_E_INVALID, "%s: must be an object", bwhere);
		else if (json_object_size(values) > TN_DESIRED_CONFIG_KEYS_MAX)
			rc = tn_fail(err, TN_E_INVALID, "%s: more than %d keys", bwhere,
				     TN_DESIRED_CONFIG_KEYS_MAX);
		json_object_foreach(values, key, v) {
			if (rc < 0)
				break;
			if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
				rc = fail_at(err, bwhere, key,
					     "must be a string, a number or a boolean", NULL);
		}
		free(bwhere);
		if (rc < 0)
			break;
	}
	free(cwhere);
	return rc;
}

/* id = distribution "@" version "+" 12 lowercase hex. */
static int check_release_id(const struct tn_desired_release *r, const char *where,
			    struct tn_error *err)
{
	size_t dl = strlen(r->distribution), vl = strlen(r->version), il = strlen(r->id);
	const char *id = r->id;

	if (il != dl + 1 + vl + 1 + RELEASE_HASH_LEN || strncmp(id, r->distribution, dl) != 0 ||
	    id[dl] != '@' || strncmp(id + dl + 1, r->version, vl) != 0 || id[dl + 1 + vl] != '+' ||
	    !is_lower_hex(id + dl + vl + 2, RELEASE_HASH_LEN))
		return fail_at(err, where, "id",
			       "is not <distribution>@<version>+<12 hex> for this release", id);
	return 0;
}

static void release_free(struct tn_desired_release *r)
{
	free(r->bundles);
	json_decref(r->raw);
	free(r);
}

int tn_desired_release_parse(json_t *obj, const char *where, struct tn_desired_release **out,
			     struct tn_error *err)
{
	struct tn_desired_release *r = NULL;
	struct tn_version v;
	json_t *bundles = NULL;
	int rc;

	*out = NULL;
	if (!json_is_object(obj)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: must be an object or null", where);
		goto out;
	}
	r = xcalloc(1, sizeof *r);
	r->refs = 1;
	r->raw = json_incref(obj);
	if ((rc = tn_json_check_keys(obj, where, release_keys, err)) < 0 ||
	    (rc = tn_json_get_string(obj, where, "id", true, &r->id, err)) < 0 ||
	    (rc = tn_json_get_string(obj, where, "distribution", true, &r->distribution, err)) <
		    0 ||
	    (rc = tn_json_get_string(obj, where, "version", true, &r->version, err)) < 0 ||
	    (rc = tn_json_get_array(obj, where, "bundles", true, &bundles, err)) < 0 ||
	    (rc = tn_json_get_object(obj, where, "config", true, &r->config, err)) < 0)
		goto out;
	if (!tn_manifest_name_valid(r->distribution)) {
		rc = fail_at(err, where, "distribution", "is not a valid name", r->distribution);
		goto out;
	}
	if (tn_version_parse(r->version, &v, NULL) < 0) {
		rc = fail_at(err, where, "version", "is not a valid version", r->version);
		goto out;
	}
	if ((rc = check_release_id(r, where, err)) < 0 ||
	    (rc = parse_bundles(r, bundles, where, err)) < 0 ||
	    (rc = parse_config(r, where, err)) < 0)
		goto out;
	*out = r;
	r = NULL;
out:
	if (r)
		release_free(r);
	return rc;
}

struct tn_desired_release *tn_desired_release_ref(struct tn_desired_release *r)
{
	r->refs++;
	return r;
}

void tn_desired_release_unref(struct tn_desired_release *r)
{
	if (r && --r->refs == 0)
		release_free(r);
}

json_t *tn_desired_release_config(const struct tn_desired_release *r, const char *name)
{
	return json_object_get(r->config, name);
}

/* ---------------------------------------------------------------- document */

/* The header value is "ed25519=<base64>", maybe with spaces around it (the
 * HTTP layer may hand over the raw field value).  The pinned key first;
 * then the key the endorsements lead to from it, if they lead anywhere:
 * *signer (caller frees) is that key when it signed. */
static int verify_signature(const char *body, size_t len, const char *sig_header,
			    const char *endorsements, const struct tn_key *key, char **signer,
			    struct tn_error *err)
{
	struct tn_key *end_key = NULL;
	char *sig = NULL, *pinned = NULL, *end = NULL;
	const char *start, *stop;
	bool unknown_key = true; /* no key we trust signed: local says why */
	struct tn_error local;
	int rc;

	*signer = NULL;
	if (!sig_header)
		return tn_fail(err, TN_E_UNSIGNED,
			       "unsigned: the response has no Tender-Signature header");
	start = sig_header;
	while (*start == ' ' || *start == '\t')
		start++;
	stop = start + strlen(start);
	while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r' ||
				stop[-1] == '\n'))
		stop--;
	if ((size_t)(stop - start) <= strlen(SIG_SCHEME) ||
	    strncmp(start, SIG_SCHEME, strlen(SIG_SCHEME)) != 0)
		return tn_fail(err, TN_E_UNSIGNED,
			       "unsigned: the Tender-Signature header is not \"ed25519=<base64>\"");
	sig = xstrndup(start + strlen(SIG_SCHEME),
		       (size_t)(stop - start) - strlen(SIG_SCHEME));
	rc = tn_verify_b64(key, body, len, sig, &local);
	if (rc == 0 || !endorsements)
		goto out;
	pinned = tn_key_public_b64(key);
	if ((rc = tn_keychain_follow(endorsements, pinned, &end, err))) {
		unknown_key = false;
		tn_error_prefix(err, "endorsement refused");
		goto out;
	}
	if (strcmp(end, pinned) == 0) { /* nothing endorsed from the pinned key */
		rc = -(int)TN_E_SIGNATURE;
		goto out;
	}
	if ((rc = tn_key_from_public_b64(end, &end_key, err))) {
		unknown_key = false;
		goto out;
	}
	if ((rc = tn_verify_b64(end_key, body, len, sig, &local)) == 0) {
		*signer = end;
		end = NULL;
	}
out:
	if (rc < 0 && unknown_key)
		rc = tn_fail(err, TN_E_SIGNATURE,
			     "bad signature: the body was not signed by the server's key "
			     "(tampered, or signed by another key%s): %s",
			     endorsements ? " that the pinned key has not endorsed" : "",
			     local.message);
	tn_key_free(end_key);
	free(end);
	free(pinned);
	free(sig);
	return rc;
}

static int parse_state(const char *s, enum tn_desired_state *out, struct tn_error *err)
{
	for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum tn_desired_state)i;
			return 0;
		}
	return fail_at(err, NULL, "state", "is not active, draining or removed", s);
}

/* run and prepare: a RELEASE, null, or absent (= null). */
static int parse_release_slot(json_t *root, const char *key, struct tn_desired_release **out,
			      struct tn_error *err)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v))
		return 0;
	return tn_desired_release_parse(v, key, out, err);
}

/* lb: {driver, agent_port?}.  The driver is a name; "none" is the same as
 * no lb at all.  The runtime API's address never comes here (no node holds
 * load-balancer credentials). */
static int parse_lb(struct tn_desired *d, struct tn_error *err)
{
	const char *driver = NULL;
	json_int_t port = 0;
	int rc;

	if ((rc = tn_json_check_keys(d->lb, "lb", lb_keys, err)) < 0 ||
	    (rc = tn_json_get_string(d->lb, "lb", "driver", true, &driver, err)) < 0 ||
	    (rc = tn_json_get_int(d->lb, "lb", "agent_port", false, 1, 65535, &port, err)) < 0)
		return rc;
	if (!tn_manifest_name_valid(driver) || strlen(driver) > TN_DESIRED_LB_DRIVER_MAX)
		return fail_at(err, "lb", "driver", "is not a driver name", driver);
	d->lb_driver = strcmp(driver, "none") == 0 ? NULL : driver;
	d->lb_agent_port = (int)port;
	return 0;
}

static int parse_document(struct tn_desired *d, struct tn_error *err)
{
	json_t *lb;
	json_int_t gen = 0;
	const char *state = NULL;
	int rc;

	if ((rc = tn_json_check_keys(d->raw, NULL, top_keys, err)) < 0 ||
	    (rc = tn_json_get_string(d->raw, NULL, "target_id", true, &d->target_id, err)) < 0 ||
	    (rc = tn_json_get_string(d->raw, NULL, "cluster", true, &d->cluster, err)) < 0 ||
	    (rc = tn_json_get_int(d->raw, NULL, "generation", true, 0, INT64_MAX, &gen, err)) <
		    0 ||
	    (rc = tn_json_get_string(d->raw, NULL, "state", true, &state, err)) < 0)
		return rc;
	d->generation = gen;
	if (strlen(d->target_id) == 0 || strlen(d->target_id) > TN_DESIRED_ID_MAX)
		return fail_at(err, NULL, "target_id", "is not a target id", d->target_id);
	if (!tn_manifest_name_valid(d->cluster))
		return fail_at(err, NULL, "cluster", "is not a valid name", d->cluster);
	if ((rc = parse_state(state, &d->state, err)) < 0 ||
	    (rc = parse_release_slot(d->raw, "run", &d->run, err)) < 0 ||
	    (rc = parse_release_slot(d->raw, "prepare", &d->prepare, err)) < 0)
		return rc;
	lb = json_object_get(d->raw, "lb");
	if (lb && !json_is_null(lb) && !json_is_object(lb))
		return fail_at(err, NULL, "lb", "must be an object or null", NULL);
	d->lb = lb && json_is_object(lb) ? lb : NULL;
	return d->lb ? parse_lb(d, err) : 0;
}

int tn_desired_parse(const char *body, size_t len, const char *sig_header,
		     const char *endorsements, const struct tn_key *server_key, const char *target_id,
		     int64_t min_generation, struct tn_desired **out, struct tn_error *err)
{
	struct tn_desired *d = NULL;
	struct tn_error local;
	char *signer = NULL;
	int rc;

	*out = NULL;
	if (!err)
		err = &local; /* the prefix below needs a message to prefix */
	if (len > TN_DESIRED_MAX_BYTES) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "%zu bytes, over the limit of %d", len,
			     TN_DESIRED_MAX_BYTES);
		goto out;
	}
	/* STYLE: verify signed metadata before touching the payload. */
	if ((rc = verify_signature(body, len, sig_header, endorsements, server_key, &signer,
				   err)) < 0)
		goto out;
	d = xcalloc(1, sizeof *d);
	d->signer_key = signer;
	tn_sha256_hex(body, len, d->etag);
	if ((rc = tn_json_parse_object(body, len, &d->raw, err)) < 0 ||
	    (rc = parse_document(d, err)) < 0)
		goto out;
	if (strcmp(d->target_id, target_id) != 0) {
		struct tn_shown shown;

		rc = tn_fail(err, TN_E_WRONG_TARGET, "wrong target: the document is for \"%s\", "
			     "this agent is %s",
			     tn_show(d->target_id, strlen(d->target_id), &shown), target_id);
		goto out;
	}
	if (d->generation < min_generation) {
		rc = tn_fail(err, TN_E_STALE,
			     "older generation %" PRId64 " than %" PRId64
			     " already seen (a replay or a downgrade)",
			     d->generation, min_generation);
		goto out;
	}
	*out = d;
	d = NULL;
out:
	if (rc < 0)
		tn_error_prefix(err, "desired document");
	tn_desired_free(d);
	return rc;
}

void tn_desired_free(struct tn_desired *d)
{
	if (!d)
		return;
	tn_desired_release_unref(d->run);
	tn_desired_release_unref(d->prepare);
	json_decref(d->raw);
	free(d->signer_key);
	free(d);
}
