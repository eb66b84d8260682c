/* release.c - see release.h.  A release directory exists only once it is
 * complete: everything is built in a staging directory and renamed into
 * place last, so after a crash a release is either whole or absent, and a
 * half-built one is swept.  Data directories live beside the releases and
 * are reached through symlinks, so no switch or rollback ever touches them. */
#include "release.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "fetch.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "sign.h"
#include "template.h"
#include "version.h"
#include "xalloc.h"

#define SPEC_FILE ".release.json"
#define STAGING_PREFIX ".staging-"
/* A rendered string of run, health or serves. */
#define STRING_MAX (64 * 1024)

/* ---------------------------------------------------------------- names */

/* The values {{name}} may stand for in one bundle: the built-ins, then the
 * bundle's config keys (release config over manifest defaults). */
struct names {
	char **name; /* borrowed (built-in literals and manifest keys) */
	char **value; /* owned */
	size_t n;
};

static void names_add(struct names *nm, const char *name, char *value)
{
	nm->name = xrealloc(nm->name, (nm->n + 1) * sizeof *nm->name);
	nm->value = xrealloc(nm->value, (nm->n + 1) * sizeof *nm->value);
	nm->name[nm->n] = (char *)name;
	nm->value[nm->n] = value;
	nm->n++;
}

static void names_free(struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->value[i]);
	free(nm->name);
	free(nm->value);
	*nm = (struct names){0};
}

static const char *names_lookup(const char *name, void *ctx)
{
	const struct names *nm = ctx;

	for (size_t i = 0; i < nm->n; i++)
		if (strcmp(nm->name[i], name) == 0)
			return nm->value[i];
	return NULL;
}

/* A config value as text in a file or an argument. */
static char *value_text(json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	if (json_is_true(v))
		return xstrdup("true");
	if (json_is_false(v))
		return xstrdup("false");
	return tn_json_canonical(v); /* a real: jansson's shortest exact form */
}

static int names_build(struct names *nm, const struct tn_manifest *m,
		       const struct tn_desired_release *spec, const struct tn_release_env *env,
		       struct tn_error *err)
{
	json_t *cfg = tn_desired_release_config(spec, m->name);
	int rc;

	if ((rc = tn_manifest_check_config(m, cfg, "release config", err)) < 0)
		return rc;
	names_add(nm, "target.id", xstrdup(env->target_id));
	names_add(nm, "target.address", xstrdup(env->target_address));
	names_add(nm, "target.port_base", xasprintf("%d", env->port_base));
	names_add(nm, "cluster.name", xstrdup(env->cluster));
	names_add(nm, "distribution.version", xstrdup(spec->version));
	for (size_t i = 0; i < m->n_config; i++) {
		json_t *v = cfg ? json_object_get(cfg, m->config[i].name) : NULL;

		names_add(nm, m->config[i].name, value_text(v ? v : m->config[i].default_value));
	}
	return 0;
}

/* ---------------------------------------------------------------- strings */

static int render(const struct names *nm, const char *s, const char *what, char **out,
		  struct tn_error *err)
{
	int rc = tn_template_render(s, strlen(s), names_lookup, (void *)nm, STRING_MAX, out, NULL,
				    err);

	return rc < 0 ? tn_error_prefix(err, "%s", what) : 0;
}

static int render_argv(const struct names *nm, const char *const *in, size_t n, const char *what,
		       char ***out, struct tn_error *err)
{
	char **argv = xcalloc(n + 1, sizeof *argv);
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		char *path = xasprintf("%s[%zu]", what, i);

		rc = render(nm, in[i], path, &argv[i], err);
		free(path);
	}
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(argv[i]);
		free(argv);
		return rc;
	}
	*out = argv;
	return 0;
}

static int render_port(const struct names *nm, const char *s, const char *what, int *out,
		       struct tn_error *err)
{
	char *text = NULL;
	unsigned long port = 0;
	struct tn_shown shown;
	int rc = render(nm, s, what, &text, err);

	if (rc < 0)
		return rc;
	for (const char *p = text; *p && port <= 65535; p++)
		port = *p >= '0' && *p <= '9' ? port * 10 + (unsigned long)(*p - '0') : 65536;
	if (!*text || port < 1 || port > 65535)
		rc = tn_fail(err, TN_E_INVALID, "%s: \"%s\" is not a port (1..65535)", what,
			     tn_show(text, strlen(text), &shown));
	else
		*out = (int)port;
	free(text);
	return rc;
}

static void free_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static void bundle_clear(struct tn_release_bundle *b)
{
	free(b->name);
	free(b->version);
	free(b->dir);
	free_argv(b->argv);
	free(b->http_path);
	free_argv(b->exec);
}

/* Fills b from the manifest, rendering what is templated. */
static int bundle_fill(struct tn_release_bundle *b, const struct tn_manifest *m,
		       const struct names *nm, const char *release_dir, struct tn_error *err)
{
	const struct tn_manifest_health *h = &m->health;
	int rc = 0;

	b->name = xstrdup(m->name);
	b->version = xstrdup(m->version_str);
	b->dir = xasprintf("%s/%s", release_dir, m->name);
	b->has_run = m->has_run;
	b->stop_timeout_s = m->has_run ? m->run.stop_timeout_s : TN_MANIFEST_STOP_TIMEOUT_S;
	b->probe = h->kind;
	b->interval_ms = h->interval_ms;
	b->timeout_ms = h->timeout_ms;
	b->healthy_after = h->healthy_after;
	b->deadline_s = h->deadline_s;
	if (m->has_run)
		rc = render_argv(nm, m->run.command, m->run.command_len, "run.command", &b->argv,
				 err);
	if (rc == 0 && h->kind == TN_PROBE_HTTP)
		rc = render(nm, h->http_path, "health.http", &b->http_path, err);
	if (rc == 0 && h->kind == TN_PROBE_EXEC)
		rc = render_argv(nm, h->exec, h->exec_len, "health.exec", &b->exec, err);
	if (rc == 0 && h->port)
		rc = render_port(nm, h->port, "health.port", &b->probe_port, err);
	if (rc == 0 && m->serves_port)
		rc = render_port(nm, m->serves_port, "serves.port", &b->serves_port, err);
	return rc;
}

/* ---------------------------------------------------------------- order */

enum mark { UNSEEN, ON_PATH, PLACED };

struct order {
	struct tn_manifest **m;
	size_t n;
	enum mark *mark;
	size_t *path; /* the DFS path, for naming a cycle */
	size_t depth;
	size_t *out; /* start order: indexes into m */
	size_t nout;
};

static size_t find_manifest(const struct order *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->m[i]->name, name) == 0)
			return i;
	return o->n;
}

static int cycle_error(const struct order *o, size_t from, struct tn_error *err)
{
	char msg[TN_ERROR_MESSAGE_MAX];
	size_t used = 0, start = 0;

	while (start < o->depth && o->path[start] != from)
		start++;
	msg[0] = '\0';
	for (size_t i = start; i <= o->depth && used < sizeof msg; i++) {
		size_t k = i < o->depth ? o->path[i] : from;
		int n = snprintf(msg + used, sizeof msg - used, "%s%s", i > start ? " -> " : "",
				 o->m[k]->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	return tn_fail(err, TN_E_UNRESOLVED, "bundles require each other in a cycle: %s", msg);
}

static int visit(struct order *o, size_t i, struct tn_error *err)
{
	const struct tn_manifest *m = o->m[i];
	int rc;

	o->mark[i] = ON_PATH;
	o->path[o->depth++] = i;
	for (size_t r = 0; r < m->n_requires; r++) {
		const struct tn_manifest_require *req = &m->requires[r];
		size_t j = find_manifest(o, req->name);
		char have[TN_VERSION_STR_MAX];

		if (j == o->n)
			return tn_fail(err, TN_E_UNRESOLVED,
				       "bundle %s requires %s %s, which is not in the release",
				       m->name, req->name, req->range_text);
		if (!tn_range_contains(&req->range, &o->m[j]->version))
			return tn_fail(err, TN_E_UNRESOLVED,
				       "bundle %s requires %s %s, the release has %s", m->name,
				       req->name, req->range_text,
				       tn_version_format(&o->m[j]->version, have, sizeof have));
		if (o->mark[j] == ON_PATH)
			return cycle_error(o, j, err);
		if (o->mark[j] == UNSEEN && (rc = visit(o, j, err)) < 0)
			return rc;
	}
	o->depth--;
	o->mark[i] = PLACED;
	o->out[o->nout++] = i;
	return 0;
}

/* Sorts by requires: *order gets the start order (caller frees). */
static int sort_bundles(struct tn_manifest **m, size_t n, size_t **order, struct tn_error *err)
{
	struct order o = {m, n, xcalloc(n, sizeof *o.mark), xcalloc(n, sizeof *o.path), 0,
			  xcalloc(n, sizeof *o.out), 0};
	int rc = 0;

	/* Document order among independent bundles: the order is stable. */
	for (size_t i = 0; i < n && rc == 0; i++)
		if (o.mark[i] == UNSEEN)
			rc = visit(&o, i, err);
	free(o.mark);
	free(o.path);
	if (rc < 0)
		free(o.out);
	else
		*order = o.out;
	return rc;
}

/* ---------------------------------------------------------------- bundles */

/* Everything staging and loading share: manifests are given, in document
 * order; the release's bundles come out in start order. */
static int build(struct tn_release *r, struct tn_manifest **m, struct names *nm,
		 size_t **order_out, struct tn_error *err)
{
	size_t n = r->spec->n_bundles;
	size_t *order = NULL;
	int rc;

	if ((rc = sort_bundles(m, n, &order, err)) < 0)
		return rc;
	r->bundles = xcalloc(n, sizeof *r->bundles);
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];

		r->n_bundles = k + 1;
		if ((rc = bundle_fill(&r->bundles[k], m[i], &nm[i], r->dir, err)) < 0) {
			tn_error_prefix(err, "bundle %s", m[i]->name);
			break;
		}
	}
	if (rc == 0 && order_out)
		*order_out = order;
	else
		free(order);
	return rc;
}

/* The manifest must be the one the document names. */
static int check_identity(const struct tn_manifest *m, const struct tn_desired_bundle *db,
			  struct tn_error *err)
{
	struct tn_version v;

	if (strcmp(m->name, db->name) != 0)
		return tn_fail(err, TN_E_INVALID, "bundle %s: the blob %s holds bundle %s",
			       db->name, db->sha256, m->name);
	if (tn_version_parse(db->version, &v, err) < 0 || tn_version_compare(&v, &m->version) != 0)
		return tn_fail(err, TN_E_INVALID, "bundle %s: the blob %s holds version %s, not %s",
			       db->name, db->sha256, m->version_str, db->version);
	return 0;
}

static int read_manifest_zip(const char *state_dir, const struct tn_desired_bundle *db,
			     struct tn_manifest **out, struct tn_error *err)
{
	char *zip = tn_fetch_blob_path(state_dir, db->sha256);
	struct tn_archive *ar = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = tn_archive_open(zip, NULL, &ar, err)) < 0 ||
	    (rc = tn_archive_read_entry(ar, "bundle.json", TN_MANIFEST_MAX_BYTES, &buf, &len,
					err)) < 0 ||
	    (rc = tn_manifest_parse(buf, len, out, err)) < 0)
		tn_error_prefix(err, "bundle %s", db->name);
	tn_archive_close(ar);
	free(buf);
	free(zip);
	return rc;
}

static int read_manifest_dir(const char *dir, const struct tn_desired_bundle *db,
			     struct tn_manifest **out, struct tn_error *err)
{
	char *path = xasprintf("%s/%s/bundle.json", dir, db->name);
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = tn_read_file(path, TN_MANIFEST_MAX_BYTES, &buf, &len, err)) < 0 ||
	    (rc = tn_manifest_parse(buf, len, out, err)) < 0)
		tn_error_prefix(err, "bundle %s", db->name);
	free(buf);
	free(path);
	return rc;
}

/* "x.tmpl" renders to "x"; any other template in place. */
static int render_template(const char *bdir, const char *rel, const struct names *nm,
			   struct tn_error *err)
{
	size_t n = strlen(rel);
	char *src = NULL, *dst = NULL, *text = NULL, *out = NULL;
	size_t len = 0, out_len = 0;
	struct stat st;
	int rc;

	if ((rc = tn_path_join(bdir, rel, &src, err)) < 0)
		goto out;
	if (n > 5 && strcmp(rel + n - 5, ".tmpl") == 0 && rel[n - 6] != '/')
		dst = xstrndup(src, strlen(src) - 5);
	else
		dst = xstrdup(src);
	if (lstat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = tn_fail(err, TN_E_INVALID, "not a file in the bundle");
		goto out;
	}
	if ((rc = tn_read_file(src, TN_RELEASE_TEMPLATE_MAX, &text, &len, err)) < 0 ||
	    (rc = tn_template_render(text, len, names_lookup, (void *)nm, TN_RELEASE_RENDER_MAX,
				     &out, &out_len, err)) < 0 ||
	    (rc = tn_write_file_atomic(dst, out, out_len, st.st_mode & 0777, err)) < 0)
		goto out;
out:
	if (rc < 0)
		tn_error_prefix(err, "template %s", rel);
	free(src);
	free(dst);
	free(text);
	free(out);
	return rc;
}

static size_t segments(const char *p)
{
	size_t n = 1;

	for (; *p; p++)
		n += *p == '/';
	return n;
}

/* true when a is b or a directory above it (segment-wise). */
static bool path_within(const char *a, const char *b)
{
	size_t n = strlen(a);

	return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/');
}

/* Links <bundle>/<rel> to STATE/data/<bundle>/<rel>, making the data
 * directory when missing: from what the bundle ships there when it ships a
 * directory (a seed), else empty.  What a bundle ships there once the data
 * directory exists is dropped: the data wins. */
static int link_data(const char *state_dir, const char *bdir, const char *bundle,
		     const char *rel, struct tn_error *err)
{
	char *at = xasprintf("%s/%s", bdir, rel);
	char *data = xasprintf("%s/data/%s/%s", state_dir, bundle, rel);
	char *target = NULL, *parent = NULL;
	struct stat st;
	size_t up = segments(rel) + 2, used = 0;
	int rc = 0;

	if (lstat(at, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			rc = tn_fail(err, TN_E_INVALID, "the bundle ships a file there");
			goto out;
		}
		parent = xstrdup(data);
		*strrchr(parent, '/') = '\0';
		if (lstat(data, &st) != 0 && errno == ENOENT) {
			if ((rc = tn_mkdir_p(parent, 0755, err)) < 0)
				goto out;
			if (rename(at, data) != 0) {
				rc = tn_fail_errno(err, errno, "seed %s", data);
				goto out;
			}
		} else if ((rc = tn_remove_tree(at, err)) < 0) {
			goto out;
		}
	} else {
		parent = xstrdup(at);
		*strrchr(parent, '/') = '\0';
		if ((rc = tn_mkdir_p(parent, 0755, err)) < 0)
			goto out;
	}
	if ((rc = tn_mkdir_p(data, 0755, err)) < 0)
		goto out;
	target = xmalloc(3 * up + strlen("data/") + strlen(bundle) + 1 + strlen(rel) + 1);
	for (size_t i = 0; i < up; i++, used += 3)
		memcpy(target + used, "../", 3);
	snprintf(target + used, strlen("data/") + strlen(bundle) + strlen(rel) + 2, "data/%s/%s",
		 bundle, rel);
	if (symlink(target, at) != 0)
		rc = tn_fail_errno(err, errno, "symlink %s", at);
	else
		rc = tn_fsync_parent(at, err); /* the rename of the release comes next */
out:
	if (rc < 0)
		tn_error_prefix(err, "data %s", rel);
	free(at);
	free(data);
	free(target);
	free(parent);
	return rc;
}

/* Unpacks bundle m into staging/<name>, renders its templates and links
 * its data directories. */
static int unpack_bundle(const char *state_dir, const char *staging,
			 const struct tn_desired_bundle *db, const struct tn_manifest *m,
			 const struct names *nm, struct tn_error *err)
{
	char *zip = tn_fetch_blob_path(state_dir, db->sha256);
	char *bdir = xasprintf("%s/%s", staging, m->name);
	struct tn_archive *ar = NULL;
	int rc;

	for (size_t i = 0; i < m->n_data; i++)
		for (size_t j = 0; j < m->n_data; j++)
			if (i != j && path_within(m->data[i], m->data[j])) {
				rc = tn_fail(err, TN_E_INVALID, "data %s and %s overlap",
					     m->data[i], m->data[j]);
				goto out;
			}
	if ((rc = tn_archive_open(zip, NULL, &ar, err)) < 0 ||
	    (rc = tn_archive_extract(ar, bdir, err)) < 0)
		goto out;
	/* Templates before data links: rendering never writes through one. */
	for (size_t i = 0; i < m->n_templates; i++)
		if ((rc = render_template(bdir, m->templates[i], nm, err)) < 0)
			goto out;
	for (size_t i = 0; i < m->n_data; i++)
		if ((rc = link_data(state_dir, bdir, m->name, m->data[i], err)) < 0)
			goto out;
out:
	if (rc < 0)
		tn_error_prefix(err, "bundle %s", db->name);
	tn_archive_close(ar);
	free(zip);
	free(bdir);
	return rc;
}

/* ---------------------------------------------------------------- public */

void tn_release_free(struct tn_release *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_bundles; i++)
		bundle_clear(&r->bundles[i]);
	free(r->bundles);
	tn_desired_release_unref(r->spec);
	free(r->id);
	free(r->dir);
	free(r);
}

static char *release_dir(const char *state_dir, const char *id)
{
	return xasprintf("%s/releases/%s", state_dir, id);
}

bool tn_release_exists(const char *state_dir, const char *id)
{
	char *dir = release_dir(state_dir, id);
	struct stat st;
	bool ok = lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);

	free(dir);
	return ok;
}

/* Release ids come from a verified document or our own disk, but they name
 * a directory: one safe segment, never a dot-name. */
static int check_id(const char *id, struct tn_error *err)
{
	struct tn_shown shown;

	if (!*id || id[0] == '.' || strchr(id, '/') || !tn_path_is_safe_relative(id))
		return tn_fail(err, TN_E_INVALID, "release id \"%s\" is not a directory name",
			       tn_show(id, strlen(id), &shown));
	return 0;
}

static void free_manifests(struct tn_manifest **m, struct names *nm, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tn_manifest_free(m[i]);
		names_free(&nm[i]);
	}
	free(m);
	free(nm);
}

int tn_release_spec(const char *state_dir, const char *id, struct tn_desired_release **out,
		    struct tn_error *err)
{
	char *path = NULL, *buf = NULL;
	json_t *obj = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if ((rc = check_id(id, err)) < 0)
		return rc;
	path = xasprintf("%s/releases/%s/" SPEC_FILE, state_dir, id);
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		rc = tn_fail(err, TN_E_NOT_FOUND, "release %s is not on this node", id);
		goto out;
	}
	if ((rc = tn_read_file(path, TN_DESIRED_MAX_BYTES, &buf, &len, err)) < 0 ||
	    (rc = tn_json_parse_object(buf, len, &obj, err)) < 0 ||
	    (rc = tn_desired_release_parse(obj, path, out, err)) < 0)
		goto out;
	if (strcmp((*out)->id, id) != 0) {
		tn_desired_release_unref(*out);
		*out = NULL;
		rc = tn_fail(err, TN_E_INVALID, "%s: holds release %s", path, id);
	}
out:
	json_decref(obj);
	free(buf);
	free(path);
	return rc;
}

int tn_release_load(const char *state_dir, const char *id, const struct tn_release_env *env,
		    struct tn_release **out, struct tn_error *err)
{
	struct tn_desired_release *spec = NULL;
	struct tn_release *r = NULL;
	struct tn_manifest **m = NULL;
	struct names *nm = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if ((rc = tn_release_spec(state_dir, id, &spec, err)) < 0)
		return rc;
	r = xcalloc(1, sizeof *r);
	r->spec = spec;
	r->id = xstrdup(spec->id);
	r->dir = release_dir(state_dir, id);
	n = spec->n_bundles;
	m = xcalloc(n, sizeof *m);
	nm = xcalloc(n, sizeof *nm);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if ((rc = read_manifest_dir(r->dir, &spec->bundles[i], &m[i], err)) == 0 &&
		    (rc = check_identity(m[i], &spec->bundles[i], err)) == 0)
			rc = names_build(&nm[i], m[i], spec, env, err);
	}
	if (rc == 0)
		rc = build(r, m, nm, NULL, err);
	free_manifests(m, nm, n);
	if (rc < 0) {
		tn_error_prefix(err, "release %s", id);
		tn_release_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Sets the release directory's mtime to now: the recency prune goes by. */
static void touch(const char *dir)
{
	utimensat(AT_FDCWD, dir, NULL, AT_SYMLINK_NOFOLLOW);
}

int tn_release_stage(const char *state_dir, struct tn_desired_release *spec,
		     const struct tn_release_env *env, struct tn_release **out,
		     struct tn_error *err)
{
	struct tn_release *r = NULL;
	struct tn_manifest **m = NULL;
	struct names *nm = NULL;
	char *releases = NULL, *staging = NULL, *json = NULL, *spec_path = NULL;
	size_t n = spec->n_bundles, *order = NULL;
	bool made_staging = false;
	int rc;

	*out = NULL;
	if ((rc = check_id(spec->id, err)) < 0)
		return rc;
	if (tn_release_exists(state_dir, spec->id))
		return tn_release_load(state_dir, spec->id, env, out, err);
	releases = xasprintf("%s/releases", state_dir);
	staging = xasprintf("%s/" STAGING_PREFIX "%s", releases, spec->id);
	r = xcalloc(1, sizeof *r);
	r->spec = tn_desired_release_ref(spec);
	r->id = xstrdup(spec->id);
	r->dir = release_dir(state_dir, spec->id);
	m = xcalloc(n, sizeof *m);
	nm = xcalloc(n, sizeof *nm);
	/* Everything that can be checked without writing, first. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		if ((rc = read_manifest_zip(state_dir, &spec->bundles[i], &m[i], err)) == 0 &&
		    (rc = check_identity(m[i], &spec->bundles[i], err)) == 0)
			rc = names_build(&nm[i], m[i], spec, env, err);
	}
	if (rc == 0)
		rc = build(r, m, nm, &order, err);
	if (rc < 0)
		goto out;
	/* A leftover of a crash while staging this very release. */
	if ((rc = tn_mkdir_p(releases, 0755, err)) < 0 || (rc = tn_remove_tree(staging, err)) < 0)
		goto out;
	if (mkdir(staging, 0755) != 0) {
		rc = tn_fail_errno(err, errno, "mkdir %s", staging);
		goto out;
	}
	made_staging = true;
	for (size_t k = 0; k < n && rc == 0; k++) {
		size_t i = order[k];

		rc = unpack_bundle(state_dir, staging, &spec->bundles[i], m[i], &nm[i], err);
	}
	if (rc < 0)
		goto out;
	json = tn_json_canonical(spec->raw);
	spec_path = xasprintf("%s/" SPEC_FILE, staging);
	if ((rc = tn_write_file_atomic(spec_path, json, strlen(json), 0644, err)) < 0)
		goto out;
	/* The one step that makes the release exist. */
	if (rename(staging, r->dir) != 0) {
		rc = tn_fail_errno(err, errno, "rename %s to %s", staging, r->dir);
		goto out;
	}
	made_staging = false;
	touch(r->dir);
	if ((rc = tn_fsync_parent(r->dir, err)) < 0)
		goto out;
	tn_log(TN_LOG_INFO, "release", "staged", "{s:s, s:i}", "release", spec->id, "bundles",
	       (int)n);
out:
	if (made_staging) {
		struct tn_error ignored;

		if (tn_remove_tree(staging, &ignored) < 0)
			tn_log(TN_LOG_WARN, "release", "staging_left", "{s:s, s:s}", "dir",
			       staging, "error", ignored.message);
	}
	if (rc < 0) {
		tn_error_prefix(err, "release %s", spec->id);
		tn_release_free(r);
	} else {
		*out = r;
	}
	free_manifests(m, nm, n);
	free(order);
	free(releases);
	free(staging);
	free(json);
	free(spec_path);
	return rc;
}

/* ---------------------------------------------------------------- current */

int tn_release_switch(const char *state_dir, const char *id, struct tn_error *err)
{
	char *dir = NULL, *link = NULL, *tmp = NULL, *target = NULL;
	uint8_t rnd[8];
	char hex[2 * sizeof rnd + 1];
	int rc;

	if ((rc = check_id(id, err)) < 0)
		return rc;
	if (!tn_release_exists(state_dir, id))
		return tn_fail(err, TN_E_NOT_FOUND, "release %s is not on this node", id);
	dir = release_dir(state_dir, id);
	link = xasprintf("%s/current", state_dir);
	tn_random_bytes(rnd, sizeof rnd);
	tn_hex_encode(rnd, sizeof rnd, hex);
	tmp = xasprintf("%s/.current.tmp-%s", state_dir, hex);
	/* Relative: the state directory may move. */
	target = xasprintf("releases/%s", id);
	if (symlink(target, tmp) != 0) {
		rc = tn_fail_errno(err, errno, "symlink %s", tmp);
		goto out;
	}
	if (rename(tmp, link) != 0) {
		rc = tn_fail_errno(err, errno, "rename %s to %s", tmp, link);
		unlink(tmp);
		goto out;
	}
	if ((rc = tn_fsync_parent(link, err)) < 0)
		goto out;
	touch(dir);
	tn_log(TN_LOG_INFO, "release", "current", "{s:s}", "release", id);
out:
	free(dir);
	free(link);
	free(tmp);
	free(target);
	return rc;
}

int tn_release_current(const char *state_dir, char **id, struct tn_error *err)
{
	char *link = xasprintf("%s/current", state_dir);
	char buf[512];
	ssize_t n = readlink(link, buf, sizeof buf - 1);
	int rc = 0;

	*id = NULL;
	if (n < 0) {
		if (errno != ENOENT)
			rc = tn_fail_errno(err, errno, "readlink %s", link);
		goto out;
	}
	buf[n] = '\0';
	if (strncmp(buf, "releases/", 9) != 0 || check_id(buf + 9, NULL) < 0) {
		rc = tn_fail(err, TN_E_INVALID, "%s does not point at a release", link);
		goto out;
	}
	*id = xstrdup(buf + 9);
out:
	free(link);
	return rc;
}

/* ---------------------------------------------------------------- prune */

struct entry {
	char *name;
	struct timespec mtime;
};

static int by_recency(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec > y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec > y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The entries of releases/: complete releases (most recent first) and,
 * separately, staging directories (their ids). */
static int scan(const char *state_dir, struct entry **rel, size_t *nrel, char ***staging,
		size_t *nstaging, struct tn_error *err)
{
	char *dir = xasprintf("%s/releases", state_dir);
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	*rel = NULL;
	*nrel = 0;
	*staging = NULL;
	*nstaging = 0;
	if (!d) {
		if (errno != ENOENT)
			rc = tn_fail_errno(err, errno, "open %s", dir);
		goto out;
	}
	while ((e = readdir(d))) {
		struct stat st;
		char *path;

		if (strncmp(e->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) == 0) {
			*staging = xrealloc(*staging, (*nstaging + 1) * sizeof **staging);
			(*staging)[(*nstaging)++] = xstrdup(e->d_name + strlen(STAGING_PREFIX));
			continue;
		}
		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			*rel = xrealloc(*rel, (*nrel + 1) * sizeof **rel);
			(*rel)[*nrel].name = xstrdup(e->d_name);
			(*rel)[*nrel].mtime = st.st_mtim;
			(*nrel)++;
		}
		free(path);
	}
	closedir(d);
	if (*nrel)
		qsort(*rel, *nrel, sizeof **rel, by_recency);
out:
	free(dir);
	return rc;
}

int tn_release_list(const char *state_dir, char ***ids, size_t *n, struct tn_error *err)
{
	struct entry *rel = NULL;
	char **staging = NULL;
	size_t nrel = 0, nstaging = 0;
	int rc = scan(state_dir, &rel, &nrel, &staging, &nstaging, err);

	*ids = xcalloc(nrel + 1, sizeof **ids);
	*n = nrel;
	for (size_t i = 0; i < nrel; i++)
		(*ids)[i] = rel[i].name;
	for (size_t i = 0; i < nstaging; i++)
		free(staging[i]);
	free(staging);
	free(rel);
	return rc;
}

static bool listed(const char *id, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] && strcmp(list[i], id) == 0)
			return true;
	return false;
}

int tn_release_prune(const char *state_dir, unsigned keep, const char *const *protect,
		     size_t n_protect, struct tn_error *err)
{
	struct entry *rel = NULL;
	char **staging = NULL, *current = NULL;
	size_t nrel = 0, nstaging = 0;
	int rc;

	if (keep == 0)
		keep = TN_RELEASE_KEEP_DEFAULT;
	if ((rc = tn_release_current(state_dir, &current, err)) < 0 ||
	    (rc = scan(state_dir, &rel, &nrel, &staging, &nstaging, err)) < 0)
		goto out;
	for (size_t i = 0; i < nrel && rc == 0; i++) {
		char *dir;

		if (i < keep || (current && strcmp(current, rel[i].name) == 0) ||
		    listed(rel[i].name, protect, n_protect))
			continue;
		dir = release_dir(state_dir, rel[i].name);
		rc = tn_remove_tree(dir, err);
		if (rc == 0)
			tn_log(TN_LOG_INFO, "release", "pruned", "{s:s}", "release", rel[i].name);
		free(dir);
	}
	for (size_t i = 0; i < nstaging && rc == 0; i++) {
		char *dir;

		if (listed(staging[i], protect, n_protect))
			continue;
		dir = xasprintf("%s/releases/" STAGING_PREFIX "%s", state_dir, staging[i]);
		rc = tn_remove_tree(dir, err);
		free(dir);
	}
out:
	for (size_t i = 0; i < nrel; i++)
		free(rel[i].name);
	for (size_t i = 0; i < nstaging; i++)
		free(staging[i]);
	free(rel);
	free(staging);
	free(current);
	return rc;
}
