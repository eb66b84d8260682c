/* ingest.c - the checks an upload passes before a byte of it is kept. */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "template.h"
#include "xalloc.h"

/* bundle.json and templates are read whole; these are small text files. */
#define MANIFEST_MAX (1u << 20)
#define TEMPLATE_MAX (4u << 20)

bool tn_ingest_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

struct name_check {
	const struct tn_manifest *m;
	const char *file;
};

static int check_name(const char *name, void *ctx, struct tn_error *err)
{
	struct name_check *nc = ctx;

	if (tn_manifest_name_known(nc->m, name))
		return 0;
	return tn_fail(err, TN_E_INVALID,
		       "template %s: unknown name \"{{%s}}\" (neither a config key of %s nor a "
		       "built-in such as target.port_base)",
		       nc->file, name, nc->m->name);
}

static int check_templates(struct tn_archive *ar, const struct tn_manifest *m,
			   struct tn_error *err)
{
	for (size_t i = 0; i < m->n_templates; i++) {
		const struct tn_archive_entry *e = tn_archive_find(ar, m->templates[i]);
		struct name_check nc = {m, m->templates[i]};
		char *text = NULL;
		size_t len = 0;
		int rc;

		if (!e || e->is_dir)
			return tn_fail(err, TN_E_INVALID,
				       "bundle.json: templates[%zu]: \"%s\" is not a file in the "
				       "archive",
				       i, m->templates[i]);
		rc = tn_archive_read_entry(ar, m->templates[i], TEMPLATE_MAX, &text, &len, err);
		if (rc == 0)
			rc = tn_template_names(text, len, check_name, &nc, err);
		free(text);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int tn_ingest_check_bundle(const char *path, const struct tn_archive_limits *limits,
			   const char *label, struct tn_manifest **out, struct tn_error *err)
{
	struct tn_archive *ar = NULL;
	struct tn_manifest *m = NULL;
	const struct tn_archive_entry *e;
	char *text = NULL;
	size_t len = 0;
	int rc;

	/* Every entry is read once here: only bundle.json and the templates
	 * are used, but a bomb or a corrupt payload must not be kept either. */
	if ((rc = tn_archive_open(path, limits, &ar, err)) != 0 ||
	    (rc = tn_archive_verify(ar, err)) != 0)
		goto out;
	e = tn_archive_find(ar, "bundle.json");
	if (!e || e->is_dir) {
		rc = tn_fail(err, TN_E_INVALID, "bundle.json: missing at the root of the archive");
		goto out;
	}
	if ((rc = tn_archive_read_entry(ar, "bundle.json", MANIFEST_MAX, &text, &len, err)) ||
	    (rc = tn_manifest_parse(text, len, &m, err)) || (rc = check_templates(ar, m, err)))
		goto out;
	*out = m;
	m = NULL;
out:
	if (rc != 0 && label && err)
		tn_error_prefix(err, "%s", label);
	tn_manifest_free(m);
	free(text);
	tn_archive_close(ar);
	return rc;
}

static const struct tn_manifest *find(struct tn_manifest *const *bundles, size_t n,
				      const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(bundles[i]->name, name) == 0)
			return bundles[i];
	return NULL;
}

int tn_ingest_check_distribution(struct tn_manifest *const *bundles, size_t n, json_t *config,
				 struct tn_error *err)
{
	const char *key;
	json_t *values;

	if (n == 0)
		return tn_fail(err, TN_E_INVALID, "bundles: a distribution needs at least one bundle");
	for (size_t i = 0; i < n; i++) {
		const struct tn_manifest *b = bundles[i];

		for (size_t j = 0; j < i; j++)
			if (strcmp(bundles[j]->name, b->name) == 0)
				return tn_fail(err, TN_E_INVALID,
					       "bundles: %s is named twice (%s and %s)", b->name,
					       bundles[j]->version_str, b->version_str);
		for (size_t r = 0; r < b->n_requires; r++) {
			const struct tn_manifest_require *req = &b->requires[r];
			const struct tn_manifest *dep = find(bundles, n, req->name);

			if (!dep)
				return tn_fail(err, TN_E_UNRESOLVED,
					       "%s@%s requires %s %s, which the distribution does "
					       "not include",
					       b->name, b->version_str, req->name, req->range_text);
			if (!tn_range_contains(&req->range, &dep->version))
				return tn_fail(err, TN_E_UNRESOLVED,
					       "%s@%s requires %s %s, but the distribution has %s@%s",
					       b->name, b->version_str, req->name, req->range_text,
					       dep->name, dep->version_str);
		}
	}
	if (!config)
		return 0;
	if (!json_is_object(config))
		return tn_fail(err, TN_E_INVALID, "config: must be an object of bundle name to values");
	json_object_foreach(config, key, values) {
		const struct tn_manifest *b = find(bundles, n, key);
		int rc;

		if (!b)
			return tn_fail(err, TN_E_INVALID,
				       "config.%s: not a bundle of this distribution", key);
		if ((rc = tn_manifest_check_config(b, values, "distribution config", err)) != 0)
			return rc;
	}
	return 0;
}

int tn_ingest_stored_manifest(struct tn_store *store, const char *name,
			      const struct tn_store_version *version, struct tn_manifest **out,
			      json_t **row, struct tn_error *err)
{
	json_t *b = NULL;
	char *text = NULL;
	int rc;

	if ((rc = tn_store_bundle_get(store, name, version, &b, err)))
		return rc;
	text = json_dumps(json_object_get(b, "manifest"), JSON_COMPACT);
	rc = tn_manifest_parse(text ? text : "", text ? strlen(text) : 0, out, err);
	free(text);
	if (rc == 0 && row)
		*row = json_incref(b);
	json_decref(b);
	return rc;
}

int tn_ingest_split_ref(const char *ref, const char *what, char **name,
			struct tn_store_version *sv, struct tn_version *v, struct tn_error *err)
{
	const char *at = strrchr(ref, '@');
	int rc;

	if (!at || at == ref || at[1] == '\0')
		return tn_fail(err, TN_E_INVALID, "%s: \"%s\" is not of the form NAME@VERSION", what,
			       ref);
	if ((rc = tn_version_parse(at + 1, v, err)))
		return tn_error_prefix(err, "%s", what);
	*sv = (struct tn_store_version){v->major, v->minor, v->micro, v->qualifier};
	*name = xstrndup(ref, (size_t)(at - ref));
	return 0;
}

int tn_ingest_check_config_for(struct tn_store *store, const char *dist, json_t *config,
			       const char *where, struct tn_error *err)
{
	struct tn_version v;
	struct tn_store_version sv;
	char *name = NULL;
	json_t *d = NULL, *b;
	const char *key;
	json_t *values;
	int rc;

	if (!config || json_object_size(config) == 0)
		return 0;
	if ((rc = tn_ingest_split_ref(dist, "distribution", &name, &sv, &v, err)) ||
	    (rc = tn_store_distribution_get(store, name, &sv, &d, err)))
		goto out;
	json_object_foreach(config, key, values) {
		struct tn_manifest *m = NULL;
		size_t i;
		bool found = false;

		json_array_foreach(json_object_get(d, "bundles"), i, b) {
			struct tn_version bv;
			struct tn_store_version bsv;

			if (strcmp(json_string_value(json_object_get(b, "name")), key) != 0)
				continue;
			found = true;
			if ((rc = tn_version_parse(json_string_value(json_object_get(b, "version")), &bv,
						   err)))
				goto out;
			bsv = (struct tn_store_version){bv.major, bv.minor, bv.micro, bv.qualifier};
			if ((rc = tn_ingest_stored_manifest(store, key, &bsv, &m, NULL, err)))
				goto out;
			rc = tn_manifest_check_config(m, values, where, err);
			tn_manifest_free(m);
			if (rc)
				goto out;
		}
		if (!found) {
			rc = tn_fail(err, TN_E_INVALID, "%s: %s is not a bundle of %s", where, key, dist);
			goto out;
		}
	}
out:
	json_decref(d);
	free(name);
	return rc;
}
