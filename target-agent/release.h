/* release.h - releases on the node's disk (DESIGN §2 "Release", §2 "Agent
 * phases" 1 and the `current` pointer of 2): staging a release from its
 * cached bundle zips, loading one already staged, switching `current`, and
 * pruning old ones.
 *
 * On disk, under the state directory:
 *   releases/<release id>/            a complete release (only ever made by
 *                                     renaming a finished staging directory)
 *       .release.json                 the RELEASE object it was made from
 *       <bundle name>/                one bundle, unpacked, templates rendered
 *           <data path> -> ../../../data/<bundle name>/<data path>
 *   releases/.staging-<release id>/   a release being made (removed on failure,
 *                                     and swept as a crash leftover)
 *   data/<bundle name>/<data path>/   data directories, outliving every release
 *   current -> releases/<release id>  switched atomically (rename of a symlink)
 * Bundle names never start with '.', so they never collide with the names
 * above. */
#ifndef TN_RELEASE_H
#define TN_RELEASE_H

#include <stdbool.h>
#include <stddef.h>

#include "desired.h"
#include "error.h"
#include "manifest.h"

/* Templates and bundle.json are small text files. */
#define TN_RELEASE_TEMPLATE_MAX (4 * 1024 * 1024)
#define TN_RELEASE_RENDER_MAX (16 * 1024 * 1024)
#define TN_RELEASE_KEEP_DEFAULT 2

/* The built-in template names (DESIGN §2 "Bundle") that do not come from
 * the release itself; distribution.version is the release's version.
 * Every string is required (not NULL); borrowed for the call. */
struct tn_release_env {
	const char *target_id;
	const char *target_address;
	int port_base;
	const char *cluster;
};

/* One bundle of a staged release, its strings rendered; everything is
 * owned by the release. */
struct tn_release_bundle {
	char *name;
	char *version;
	char *dir; /* STATE/releases/<id>/<name>: the bundle's cwd (absolute when
		    * the state directory is) */
	bool has_run;
	char **argv; /* run.command rendered, NULL-terminated; NULL without run */
	int stop_timeout_s;
	/* health, rendered: kind TN_PROBE_NONE without a health object (the
	 * timings then still hold their defaults). */
	enum tn_probe_kind probe;
	char *http_path; /* TN_PROBE_HTTP */
	char **exec;	 /* TN_PROBE_EXEC: NULL-terminated argv */
	int probe_port;	 /* HTTP and TCP: 1..65535; 0 otherwise */
	int interval_ms, timeout_ms, healthy_after, deadline_s;
	int serves_port; /* 0 without serves */
};

struct tn_release {
	char *id;
	char *dir;			 /* STATE/releases/<id> */
	struct tn_desired_release *spec; /* what it was made from; one reference */
	/* In start order: every bundle after those it requires.  Stop in
	 * reverse. */
	struct tn_release_bundle *bundles;
	size_t n_bundles;
};

/* Stages spec under state_dir, from the blobs in the fetch cache
 * (STATE/cache/sha256/<hex>; all must be there, see fetch.h).  When
 * releases/<id> already exists it is complete (see the layout above) and
 * is loaded instead, without touching the blobs.  Otherwise, in
 * releases/.staging-<id>: each bundle's zip is opened and checked
 * (tn_archive_open), its bundle.json parsed and matched against the
 * document's name and version, the release config checked against the
 * bundle's model, the requires resolved inside the release and sorted
 * (a cycle is TN_E_UNRESOLVED naming the bundles in it), then each bundle
 * extracted, its templates rendered (a template "x.tmpl" renders to "x",
 * any other in place; an unknown {{name}} is TN_E_INVALID naming the file),
 * its data directories linked, and the whole renamed to releases/<id>.
 * On any failure nothing is left in releases/ (data directories made on
 * the way stay: they are data).  spec is borrowed (the release takes a
 * reference); env borrowed for the call.  *out is the caller's
 * (tn_release_free). */
int tn_release_stage(const char *state_dir, struct tn_desired_release *spec,
		     const struct tn_release_env *env, struct tn_release **out,
		     struct tn_error *err) TN_MUST_CHECK;

/* Loads the complete release releases/<id> (after an agent restart):
 * reads its .release.json and each bundle's bundle.json and renders the
 * strings again.  TN_E_NOT_FOUND when it is not there. */
int tn_release_load(const char *state_dir, const char *id, const struct tn_release_env *env,
		    struct tn_release **out, struct tn_error *err) TN_MUST_CHECK;

/* Whether releases/<id> exists (and so is complete). */
bool tn_release_exists(const char *state_dir, const char *id);

void tn_release_free(struct tn_release *r);

/* Points STATE/current at releases/<id> atomically: a symlink made under a
 * temporary name, renamed over `current`, and the directory fsynced.  The
 * release must exist (TN_E_NOT_FOUND).  Also marks it as the most recently
 * used, for tn_release_prune. */
int tn_release_switch(const char *state_dir, const char *id, struct tn_error *err)
	TN_MUST_CHECK;

/* The id `current` points at: *id is caller-freed, NULL when there is no
 * current release (then 0 is returned). */
int tn_release_current(const char *state_dir, char **id, struct tn_error *err) TN_MUST_CHECK;

/* Removes releases beyond the keep most recently staged or switched to
 * (0: TN_RELEASE_KEEP_DEFAULT), never the current one nor those named in
 * protect (n_protect ids, borrowed: the one being prepared, the one to
 * roll back to).  Also sweeps staging directories, except those of
 * protected ids.  Data directories are never touched. */
int tn_release_prune(const char *state_dir, unsigned keep, const char *const *protect,
		     size_t n_protect, struct tn_error *err) TN_MUST_CHECK;

/* The ids of the complete releases on disk, most recent first; *ids is
 * caller-freed (each string and the array), *n its length. */
int tn_release_list(const char *state_dir, char ***ids, size_t *n, struct tn_error *err)
	TN_MUST_CHECK;

/* The RELEASE object a staged release was made from (its .release.json);
 * *out has one reference, the caller's.  For pruning the blob cache
 * against the releases kept (tn_fetch_prune). */
int tn_release_spec(const char *state_dir, const char *id, struct tn_desired_release **out,
		    struct tn_error *err) TN_MUST_CHECK;

#endif
