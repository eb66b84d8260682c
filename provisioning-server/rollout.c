/* rollout.c - see rollout.h.  The state lives in the store (the rollout,
 * its strategy, its targets with their batch, state and from and to
 * releases, its approvals); every change to what a target should run goes
 * through its desired document (documents.c). */
#include "rollout.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "documents.h"
#include "events.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "orchestrator.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

#define DEADLINE_DEFAULT_S 60 /* a bundle's health.deadline_s when it says none */
#define TIMEOUT_MARGIN_S 30   /* health_timeout_s default: largest deadline + this */
#define HISTORY_PAGES 100     /* of rollouts, looked through for undo */
#define STAGE_CHUNK 500       /* documents written per store transaction */

static const struct tn_principal system_actor = {TN_ROLE_ADMIN, "tender-server"};

/* Every change of a rollout's state, whoever makes it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void audit(struct tn_server *srv, const char *action, const char *rollout, json_t *detail)
{
	tn_log(TN_LOG_INFO, "rollout", action + strlen("rollout."), "{s:s, s:O?}", "rollout",
	       rollout, "detail", detail);
	tn_audit(srv, &system_actor, action, "rollout", rollout, "ok", detail);
	json_decref(detail);
}

/* The cluster's current revision: its distribution ("n@v" or NULL) and
 * config, borrowed from *rev (caller decrefs it). */
static int current_revision(struct tn_server *srv, const char *cluster, json_t **rev,
			    const char **dist, json_t **config, struct tn_error *err)
{
	int rc = tn_store_cluster_current_revision(srv->store, cluster, rev, err);

	if (rc != 0)
		return rc;
	*dist = str(*rev, "distribution");
	*config = json_object_get(*rev, "config");
	return 0;
}

/* ------------------------------------------------------------ strategy */

/* The largest health deadline of the release's bundles, in seconds. */
static int largest_deadline(struct tn_server *srv, json_t *release)
{
	json_t *b;
	size_t i;
	int most = 0;

	json_array_foreach(json_object_get(release, "bundles"), i, b) {
		char *ref = xasprintf("%s@%s", str(b, "name"), str(b, "version")), *name = NULL;
		struct tn_store_bundle_ref r;
		struct tn_version v;
		struct tn_error err;
		json_t *bundle = NULL, *health;
		int d = DEADLINE_DEFAULT_S;

		if (tn_ingest_split_ref(ref, "bundle", &name, &r.version, &v, &err) == 0 &&
		    tn_store_bundle_get(srv->store, name, &r.version, &bundle, &err) == 0) {
			health = json_object_get(json_object_get(bundle, "manifest"), "health");
			if (json_is_integer(json_object_get(health, "deadline_s")))
				d = (int)json_integer_value(json_object_get(health, "deadline_s"));
		}
		if (d > most)
			most = d;
		json_decref(bundle);
		free(name);
		free(ref);
	}
	return (most ? most : DEADLINE_DEFAULT_S) + TIMEOUT_MARGIN_S;
}

static int ceil_share(size_t n, json_int_t percent)
{
	int k = (int)(((json_int_t)n * percent + 99) / 100); /* rounded up */

	return k < 1 ? 1 : k;
}

/* Checks the strategy and returns it with every default filled in
 * (caller-decref'd), for n targets. */
static int strategy_resolve(json_t *in, size_t n, int health_timeout_default, json_t **out,
			    struct tn_error *err)
{
	static const char *const keys[] = {"batch_size",      "batch_percent",
					   "canary_percent",  "pause_after",
					   "max_unavailable", "health_timeout_s",
					   "failure_threshold", "auto_rollback",
					   NULL};
	json_int_t batch_size = 0, batch_percent = 0, canary = 0, max_unavailable = 0,
		   timeout = health_timeout_default, threshold = 1;
	json_t *pause_after = NULL, *p;
	bool auto_rollback = true;
	size_t i;
	int rc;

	*out = NULL;
	if (!in)
		in = json_object();
	else
		json_incref(in);
	if ((rc = tn_json_check_keys(in, "strategy", keys, err)) ||
	    (rc = tn_json_get_int(in, "strategy", "batch_size", false, 1, 100000, &batch_size,
				  err)) ||
	    (rc = tn_json_get_int(in, "strategy", "batch_percent", false, 1, 100, &batch_percent,
				  err)) ||
	    (rc = tn_json_get_int(in, "strategy", "canary_percent", false, 0, 100, &canary, err)) ||
	    (rc = tn_json_get_array(in, "strategy", "pause_after", false, &pause_after, err)) ||
	    (rc = tn_json_get_int(in, "strategy", "max_unavailable", false, 1, 100000,
				  &max_unavailable, err)) ||
	    (rc = tn_json_get_int(in, "strategy", "health_timeout_s", false, 1, 86400, &timeout,
				  err)) ||
	    (rc = tn_json_get_int(in, "strategy", "failure_threshold", false, 1, 100000,
				  &threshold, err)) ||
	    (rc = tn_json_get_bool(in, "strategy", "auto_rollback", false, &auto_rollback, err)))
		goto out;
	if (batch_size && batch_percent) {
		rc = tn_fail(err, TN_E_INVALID,
			     "strategy: give batch_size or batch_percent, not both");
		goto out;
	}
	if (json_array_size(pause_after) > 1000) {
		rc = tn_fail(err, TN_E_INVALID, "strategy.pause_after: more than 1000 entries");
		goto out;
	}
	json_array_foreach(pause_after, i, p) {
		if (!json_is_integer(p) || json_integer_value(p) < 0 ||
		    json_integer_value(p) > 100000) {
			rc = tn_fail(err, TN_E_INVALID,
				     "strategy.pause_after[%zu]: must be a batch index (0 or more)", i);
			goto out;
		}
	}
	if (!batch_size)
		batch_size = batch_percent ? ceil_share(n, batch_percent) : 1;
	*out = json_pack("{s:I, s:I, s:o, s:o?, s:I, s:I, s:b}", "batch_size", batch_size,
			 "canary_percent", canary, "pause_after",
			 pause_after ? json_deep_copy(pause_after)
			 : canary    ? json_pack("[i]", 0)
				     : json_array(),
			 "max_unavailable", max_unavailable ? json_integer(max_unavailable) : NULL,
			 "health_timeout_s", timeout, "failure_threshold", threshold, "auto_rollback",
			 auto_rollback);
	if (batch_percent)
		json_object_set_new(*out, "batch_percent", json_integer(batch_percent));
out:
	json_decref(in);
	return rc;
}

static json_int_t strategy_int(json_t *strategy, const char *key, json_int_t dflt)
{
	json_t *v = json_object_get(strategy, key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The batch of the i-th of n targets: a canary first, then batch_size
 * each. */
static json_int_t batch_of(json_t *strategy, size_t i, size_t n)
{
	json_int_t canary_percent = strategy_int(strategy, "canary_percent", 0);
	json_int_t size = strategy_int(strategy, "batch_size", 1);
	size_t canary = canary_percent ? (size_t)ceil_share(n, canary_percent) : 0;

	if (i < canary)
		return 0;
	return (json_int_t)((i - canary) / (size_t)size) + (canary ? 1 : 0);
}

/* ------------------------------------------------------------ create */

/* Targets that take part: in service or about to be. */
static bool takes_part(const char *state)
{
	return is(state, "enrolled") || is(state, "running");
}

static int create_locked(struct tn_server *srv, const char *cluster, const char *dist,
			 json_t *config, json_t *strategy_in, const char *actor, json_t **out,
			 struct tn_error *err)
{
	json_t *targets = json_array(), *strategy = NULL, *first_to = NULL, *probe = NULL;
	json_t *built = json_object(); /* canonical target config → release */
	json_t *froms = json_object(); /* release id → the first such release read */
	struct tn_doc_change_item *items = NULL;
	char **ids = NULL, *id = NULL, *dist_name = NULL;
	struct tn_store_bundle_ref ref;
	struct tn_version v;
	size_t n = 0, taking = 0;
	int rc;

	if ((rc = tn_ingest_split_ref(dist, "distribution", &dist_name, &ref.version, &v, err)) ||
	    (rc = tn_ingest_check_config_for(srv->store, dist, config, "rollout config", err)) ||
	    (rc = tn_store_cluster_target_ids(srv->store, cluster, &ids, &n, err)))
		goto out;
	ref.name = dist_name;
	for (size_t i = 0; i < n; i++) {
		struct tn_store_doc doc = {0};
		json_t *release = NULL;

		rc = tn_store_doc_get(srv->store, ids[i], &doc, err);
		if (rc == 0 && takes_part(doc.state)) {
			/* targets with the same config share their release */
			char *key = tn_json_canonical(doc.config);

			release = json_incref(json_object_get(built, key));
			if (!release &&
			    (rc = tn_release_build(srv, dist, config, doc.config, &release, err)) == 0)
				json_object_set(built, key, release);
			free(key);
		}
		if (rc == 0 && release) {
			/* one object per release: the store writes each out once */
			json_t *from = doc.run;
			const char *from_id = str(doc.run, "id");

			if (from_id && !(from = json_object_get(froms, from_id))) {
				from = doc.run;
				json_object_set(froms, from_id, from);
			}
			json_array_append_new(targets, json_pack("{s:s, s:O?, s:o}", "id", ids[i],
								 "from_release", from,
								 "to_release", release));
			if (!first_to)
				first_to = release;
			taking++;
		}
		tn_store_doc_clear(&doc);
		if (rc)
			goto out;
	}
	/* no target yet: the deadlines come from the distribution's release */
	if (!first_to && (rc = tn_release_build(srv, dist, config, NULL, &probe, err)))
		goto out;
	if ((rc = strategy_resolve(strategy_in, taking, largest_deadline(srv, first_to ? first_to
											: probe),
				   &strategy, err)))
		goto out;
	for (size_t i = 0; i < taking; i++)
		json_object_set_new(json_array_get(targets, i), "batch",
				    json_integer(batch_of(strategy, i, taking)));
	if ((rc = tn_store_rollout_create(srv->store, cluster, &ref, config, strategy, targets,
					  actor, &id, err)))
		goto out;
	/* Every target stages the new release now, so approval only switches:
	 * a few hundred documents per transaction (a fleet's worth of syncs
	 * would take seconds). */
	items = xcalloc(STAGE_CHUNK, sizeof *items);
	for (size_t i = 0; i < taking; i += STAGE_CHUNK) {
		size_t chunk = taking - i < STAGE_CHUNK ? taking - i : STAGE_CHUNK;

		for (size_t k = 0; k < chunk; k++) {
			json_t *t = json_array_get(targets, i + k);

			items[k] = (struct tn_doc_change_item){
			    str(t, "id"),
			    {.set_prepare = true, .prepare = json_object_get(t, "to_release")}};
		}
		if ((rc = tn_documents_change_many(srv, items, chunk, err)))
			goto out;
	}
	rc = tn_store_rollout_get(srv->store, id, out, err);
out:
	tn_store_free_ids(ids);
	free(id);
	free(dist_name);
	json_decref(targets);
	json_decref(strategy);
	json_decref(probe);
	json_decref(built);
	json_decref(froms);
	free(items);
	return rc;
}

int tn_rollout_create(struct tn_server *srv, json_t *body, const char *actor, json_t **out,
		      struct tn_error *err)
{
	static const char *const keys[] = {"cluster", "distribution", "config", "strategy", NULL};
	const char *cluster = NULL, *dist = NULL, *cur_dist = NULL;
	json_t *config = NULL, *strategy = NULL, *row = NULL, *cur_config;
	int rc;

	if ((rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "cluster", true, &cluster, err)) ||
	    (rc = tn_json_get_string(body, "", "distribution", false, &dist, err)) ||
	    (rc = tn_json_get_object(body, "", "config", false, &config, err)) ||
	    (rc = tn_json_get_object(body, "", "strategy", false, &strategy, err)) ||
	    (rc = current_revision(srv, cluster, &row, &cur_dist, &cur_config, err)))
		goto out;
	if (!dist)
		dist = cur_dist;
	if (!dist) {
		rc = tn_fail(err, TN_E_INVALID,
			     "distribution: cluster %s has none yet; name the one to roll out",
			     cluster);
		goto out;
	}
	if (!config)
		config = cur_config;
	pthread_mutex_lock(&lock);
	rc = create_locked(srv, cluster, dist, config, strategy, actor, out, err);
	pthread_mutex_unlock(&lock);
out:
	json_decref(row);
	return rc;
}

int tn_rollout_undo(struct tn_server *srv, const char *cluster, json_t *body, const char *actor,
		    json_t **out, struct tn_error *err)
{
	static const char *const keys[] = {"strategy", NULL};
	json_t *strategy = NULL, *list = NULL, *found = NULL, *rev = NULL, *r;
	char *after = NULL;
	size_t i;
	int rc;

	if (body && ((rc = tn_json_check_keys(body, "", keys, err)) ||
		     (rc = tn_json_get_object(body, "", "strategy", false, &strategy, err))))
		return rc;
	/* the newest rollout that succeeded: undo goes back to where it began */
	for (int page = 0; page < HISTORY_PAGES && !found; page++) {
		if ((rc = tn_store_rollout_list(srv->store, cluster, TN_STORE_LIMIT_MAX, after, &list,
						err)))
			goto out;
		json_array_foreach(json_object_get(list, "items"), i, r) {
			if (is(str(r, "state"), "succeeded")) {
				found = json_incref(r);
				break;
			}
		}
		free(after);
		after = str(list, "next") ? xstrdup(str(list, "next")) : NULL;
		json_decref(list);
		list = NULL;
		if (!after)
			break;
	}
	if (!found || !json_is_integer(json_object_get(found, "from_revision"))) {
		/* an unknown cluster answers 404 here */
		json_t *c = NULL;

		if ((rc = tn_store_cluster_get(srv->store, cluster, &c, err)) == 0)
			rc = tn_fail(err, TN_E_CONFLICT,
				     "cluster %s has no succeeded rollout with a revision before it: "
				     "there is nothing to undo",
				     cluster);
		json_decref(c);
		goto out;
	}
	if ((rc = tn_store_cluster_revision(srv->store, cluster,
					    json_integer_value(json_object_get(found, "from_revision")),
					    &rev, err)))
		goto out;
	if (!str(rev, "distribution")) {
		rc = tn_fail(err, TN_E_CONFLICT,
			     "cluster %s ran no distribution before its last rollout: there is "
			     "nothing to undo",
			     cluster);
		goto out;
	}
	pthread_mutex_lock(&lock);
	rc = create_locked(srv, cluster, str(rev, "distribution"), json_object_get(rev, "config"),
			   strategy, actor, out, err);
	pthread_mutex_unlock(&lock);
out:
	free(after);
	json_decref(list);
	json_decref(found);
	json_decref(rev);
	return rc;
}

/* ------------------------------------------------------------ moving targets */

/* Points a target's document at release (run) with nothing to stage. */
static int point(struct tn_server *srv, const char *target, json_t *release, struct tn_error *err)
{
	struct tn_doc_change ch = {.set_run = true, .run = release, .set_prepare = true};

	return tn_documents_change(srv, target, &ch, err);
}

/* Drops what a target stages (it stays where it runs): it is no longer
 * preparing or prepared for anything, whatever its agent said last. */
static int unstage(struct tn_server *srv, const char *target, struct tn_error *err)
{
	struct tn_doc_change ch = {.set_prepare = true};
	struct tn_store_target_update idle = {.phase = "idle"};
	int rc = tn_documents_change(srv, target, &ch, err);

	return rc ? rc : tn_store_target_update(srv->store, target, &idle, err);
}

/* A target that is gone (removed, or being removed) is not switched. */
static bool target_gone(struct tn_server *srv, const char *target)
{
	json_t *t = NULL;
	struct tn_error err;
	bool gone = tn_store_target_get(srv->store, target, &t, &err) != 0 ||
		    is(str(t, "state"), "draining") || is(str(t, "state"), "removed");

	json_decref(t);
	return gone;
}

/* Ends a rollout: state `end`; with back, every target it switched (or is
 * switching) returns to its from release; targets it never switched stop
 * staging.  Written target by target, each state before its document, so
 * a step after a crash finds what is left to do the same way. */
static int finish(struct tn_server *srv, json_t *r, const char *end, bool back,
		  struct tn_error *err)
{
	const char *id = str(r, "id");
	json_t *b, *t;
	size_t i, j;
	int rc;

	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), j, t) {
			const char *tid = str(t, "id"), *ts = str(t, "state");
			bool gone = target_gone(srv, tid);

			if (back && (is(ts, "switching") || is(ts, "succeeded"))) {
				if ((rc = tn_store_rollout_target_set(srv->store, id, tid, "reverted",
								      "switched back", err)) ||
				    (!gone &&
				     (rc = point(srv, tid, json_object_get(t, "from_release"), err))))
					return rc;
			} else if (is(ts, "pending")) {
				if ((rc = tn_store_rollout_target_set(srv->store, id, tid, "skipped",
								      NULL, err)) ||
				    (!gone && (rc = unstage(srv, tid, err))))
					return rc;
			}
		}
	}
	return tn_store_rollout_set_state(srv->store, id, end, err);
}

/* ------------------------------------------------------------ the verbs */

static int step_locked(struct tn_server *srv, const char *id, struct tn_error *err);

/* The index of the first batch not done, or -1. */
static json_int_t next_batch(json_t *r)
{
	json_t *b;
	size_t i;

	json_array_foreach(json_object_get(r, "batches"), i, b) {
		if (!is(str(b, "state"), "done"))
			return json_integer_value(json_object_get(b, "index"));
	}
	return -1;
}

static int act_locked(struct tn_server *srv, const char *id, enum tn_rollout_verb verb,
		      const char *actor, json_t **out, struct tn_error *err)
{
	static const char *const names[] = {"approved", "resumed", "paused", "aborted"};
	json_t *r = NULL;
	const char *state;
	bool ok;
	int rc;

	if ((rc = tn_store_rollout_get(srv->store, id, &r, err)))
		return rc;
	state = str(r, "state");
	switch (verb) {
	case TN_ROLLOUT_APPROVE: ok = is(state, "pending_approval") || is(state, "paused"); break;
	case TN_ROLLOUT_RESUME: ok = is(state, "paused"); break;
	case TN_ROLLOUT_PAUSE: ok = is(state, "running"); break;
	default:
		ok = is(state, "pending_approval") || is(state, "running") || is(state, "paused");
		break;
	}
	if (!ok) {
		rc = tn_fail(err, TN_E_CONFLICT, "rollout %s is %s: it cannot be %s", id, state,
			     names[verb]);
		goto out;
	}
	switch (verb) {
	case TN_ROLLOUT_APPROVE:
	case TN_ROLLOUT_RESUME:
		/* and the first step at once: the answer shows it moving */
		if ((rc = tn_store_rollout_approve(srv->store, id, actor, (int)next_batch(r), err)) ||
		    (rc = tn_store_rollout_set_state(srv->store, id, "running", err)) ||
		    (rc = step_locked(srv, id, err)))
			goto out;
		break;
	case TN_ROLLOUT_PAUSE:
		if ((rc = tn_store_rollout_set_state(srv->store, id, "paused", err)))
			goto out;
		break;
	default:
		if ((rc = finish(srv, r, "aborted", true, err)))
			goto out;
		break;
	}
	json_decref(r);
	r = NULL;
	rc = tn_store_rollout_get(srv->store, id, out, err);
out:
	json_decref(r);
	return rc;
}

int tn_rollout_act(struct tn_server *srv, const char *id, enum tn_rollout_verb verb,
		   const char *actor, json_t **out, struct tn_error *err)
{
	int rc;

	pthread_mutex_lock(&lock);
	rc = act_locked(srv, id, verb, actor, out, err);
	pthread_mutex_unlock(&lock);
	tn_orchestrator_wake(srv->orchestrator);
	return rc;
}

/* ------------------------------------------------------------ a step */

static bool approved_for(json_t *r, json_int_t batch)
{
	json_t *a;
	size_t i;

	json_array_foreach(json_object_get(r, "approvals"), i, a) {
		if (json_integer_value(json_object_get(a, "batch")) == batch)
			return true;
	}
	return false;
}

static bool pauses_after(json_t *strategy, json_int_t batch)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(strategy, "pause_after"), i, p) {
		if (json_integer_value(p) == batch)
			return true;
	}
	return false;
}

/* Switched targets whose result did not come within health_timeout_s
 * fail (the node may have vanished; its document goes back, for when it
 * returns). */
static int time_out(struct tn_server *srv, json_t *r, json_int_t timeout_s, struct tn_error *err)
{
	struct timespec now;
	json_t *b, *t;
	size_t i, j;
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), j, t) {
			json_t *at = json_object_get(t, "switched_at");
			int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
			char *msg;

			if (!is(str(t, "state"), "switching") || !json_is_integer(at) ||
			    now_ms - json_integer_value(at) < timeout_s * 1000)
				continue;
			msg = xasprintf("no result within health_timeout_s (%lld s)",
					(long long)timeout_s);
			rc = tn_store_rollout_target_set(srv->store, str(r, "id"), str(t, "id"),
							 "failed", msg, err);
			if (rc == 0 && !target_gone(srv, str(t, "id")))
				rc = point(srv, str(t, "id"), json_object_get(t, "from_release"), err);
			if (rc == 0)
				audit(srv, "rollout.target_failed", str(r, "id"),
				      json_pack("{s:s, s:s}", "target", str(t, "id"), "message", msg));
			free(msg);
			if (rc)
				return rc;
			json_object_set_new(t, "state", json_string("failed"));
		}
	}
	return 0;
}

static int step_locked(struct tn_server *srv, const char *id, struct tn_error *err)
{
	json_t *r = NULL, *strategy, *b, *t;
	const char *state;
	json_int_t failed = 0, threshold, max_unavailable;
	size_t i, j;
	int rc;

	if ((rc = tn_store_rollout_get(srv->store, id, &r, err)))
		return rc;
	state = str(r, "state");
	if (!is(state, "running") && !is(state, "paused"))
		goto out;
	strategy = json_object_get(r, "strategy");
	threshold = strategy_int(strategy, "failure_threshold", 1);
	if ((rc = time_out(srv, r, strategy_int(strategy, "health_timeout_s", 90), err)))
		goto out;
	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), j, t) failed +=
		    is(str(t, "state"), "failed");
	}
	if (failed >= threshold) {
		bool back = json_is_true(json_object_get(strategy, "auto_rollback"));
		const char *end = back ? "rolled_back" : "failed";

		if ((rc = finish(srv, r, end, back, err)))
			goto out;
		audit(srv, back ? "rollout.rolled_back" : "rollout.failed", id,
		      json_pack("{s:I, s:I}", "failed", failed, "failure_threshold", threshold));
		goto out;
	}
	if (is(state, "paused"))
		goto out; /* the targets switching finish; nothing new starts */
	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_int_t index = json_integer_value(json_object_get(b, "index"));
		json_t *targets = json_object_get(b, "targets");
		size_t in_flight = 0;

		if (is(str(b, "state"), "done"))
			continue;
		if (is(str(b, "state"), "pending")) {
			/* a pause point before this batch waits for its approval */
			if (index > 0 && pauses_after(strategy, index - 1) && !approved_for(r, index)) {
				if ((rc = tn_store_rollout_set_state(srv->store, id, "paused", err)))
					goto out;
				audit(srv, "rollout.paused", id,
				      json_pack("{s:I, s:I}", "after_batch", index - 1, "next_batch",
						index));
				goto out;
			}
			audit(srv, "rollout.batch_started", id,
			      json_pack("{s:I, s:I}", "batch", index, "targets",
					(json_int_t)json_array_size(targets)));
		}
		max_unavailable = strategy_int(strategy, "max_unavailable",
					       (json_int_t)json_array_size(targets));
		json_array_foreach(targets, j, t) in_flight += is(str(t, "state"), "switching");
		json_array_foreach(targets, j, t) {
			const char *tid = str(t, "id");

			if (!is(str(t, "state"), "pending") || (json_int_t)in_flight >= max_unavailable)
				continue;
			if (target_gone(srv, tid)) {
				if ((rc = tn_store_rollout_target_set(srv->store, id, tid, "skipped",
								      "the target was removed", err)))
					goto out;
				continue;
			}
			/* the decision first, then the act */
			if ((rc = tn_store_rollout_target_set(srv->store, id, tid, "switching", NULL,
							      err)) ||
			    (rc = point(srv, tid, json_object_get(t, "to_release"), err)))
				goto out;
			in_flight++;
		}
		goto out; /* one batch at a time */
	}
	/* every batch done, under the threshold */
	if ((rc = tn_store_rollout_set_state(srv->store, id, "succeeded", err)))
		goto out;
	audit(srv, "rollout.succeeded", id, json_pack("{s:I}", "failed", failed));
out:
	json_decref(r);
	return rc;
}

int tn_rollout_step(struct tn_server *srv, const char *id, struct tn_error *err)
{
	int rc;

	pthread_mutex_lock(&lock);
	rc = step_locked(srv, id, err);
	pthread_mutex_unlock(&lock);
	return rc;
}

/* ------------------------------------------------------------ new targets */

/* The cluster's active rollout (newest first: at most one is active), or
 * NULL. */
static json_t *active_rollout(struct tn_server *srv, const char *cluster)
{
	json_t *list = NULL, *r = NULL;
	struct tn_error err;

	if (tn_store_rollout_list(srv->store, cluster, 1, NULL, &list, &err) == 0) {
		json_t *newest = json_array_get(json_object_get(list, "items"), 0);
		const char *s = str(newest, "state");

		if (is(s, "pending_approval") || is(s, "running") || is(s, "paused"))
			r = json_incref(newest);
	}
	json_decref(list);
	return r;
}

/* Joins target to rollout r: it stages r's release and is switched with
 * the last batch, or in a batch of its own after it when that one began. */
static int join(struct tn_server *srv, json_t *r, const char *target, json_t *config,
		json_t *from, struct tn_error *err)
{
	json_t *batches = json_object_get(r, "batches"), *rev = NULL, *to = NULL, *entry = NULL;
	json_t *last = json_array_get(batches, json_array_size(batches) - 1);
	json_int_t batch = last ? json_integer_value(json_object_get(last, "index")) : 0;
	struct tn_doc_change ch = {.set_prepare = true};
	int rc;

	if (last && !is(str(last, "state"), "pending"))
		batch++;
	if ((rc = tn_store_cluster_revision(srv->store, str(r, "cluster"),
					    json_integer_value(json_object_get(r, "to_revision")),
					    &rev, err)) ||
	    (rc = tn_release_build(srv, str(rev, "distribution"), json_object_get(rev, "config"),
				   config, &to, err)))
		goto out;
	entry = json_pack("[{s:s, s:O?, s:O, s:I}]", "id", target, "from_release", from,
			  "to_release", to, "batch", batch);
	if ((rc = tn_store_rollout_add_targets(srv->store, str(r, "id"), entry, err)))
		goto out;
	ch.prepare = to;
	rc = tn_documents_change(srv, target, &ch, err);
	if (rc == 0)
		tn_log(TN_LOG_INFO, "rollout", "target_joined", "{s:s, s:s, s:I}", "rollout",
		       str(r, "id"), "target", target, "batch", batch);
out:
	json_decref(entry);
	json_decref(to);
	json_decref(rev);
	return rc;
}

int tn_rollout_place_new_target(struct tn_server *srv, const char *target_id,
				struct tn_error *err)
{
	struct tn_store_doc doc = {0};
	struct tn_doc_change ch = {0};
	json_t *cluster = NULL, *config, *release = NULL, *r = NULL;
	const char *dist;
	int rc;

	pthread_mutex_lock(&lock);
	if ((rc = tn_store_doc_get(srv->store, target_id, &doc, err)) ||
	    (rc = current_revision(srv, doc.cluster, &cluster, &dist, &config, err)))
		goto out;
	if (dist) {
		if ((rc = tn_release_build(srv, dist, config, doc.config, &release, err)))
			goto out;
		ch.set_run = true;
		ch.run = release;
	}
	if ((rc = tn_documents_change(srv, target_id, &ch, err)))
		goto out;
	/* not yet in it (a second enrollment of the same node finds it there) */
	if ((r = active_rollout(srv, doc.cluster))) {
		json_t *row = NULL;
		struct tn_error e2;

		if (tn_store_rollout_for_target(srv->store, target_id, &row, &e2) != 0)
			rc = join(srv, r, target_id, doc.config, release, err);
		json_decref(row);
	}
out:
	pthread_mutex_unlock(&lock);
	if (r)
		tn_orchestrator_wake(srv->orchestrator);
	json_decref(r);
	json_decref(release);
	json_decref(cluster);
	tn_store_doc_clear(&doc);
	return rc;
}

/* ------------------------------------------------------------ reports */

/* A target's part of its rollout, after a report about release. */
static int advance(struct tn_server *srv, const char *target, const struct tn_agent_report *r,
		   struct tn_error *err)
{
	json_t *row = NULL;
	const char *rollout, *to, *rstate;
	bool committed, failed;
	int rc = tn_store_rollout_for_target(srv->store, target, &row, err);

	if (rc == -(int)TN_E_NOT_FOUND) {
		tn_error_clear(err);
		return 0;
	}
	if (rc != 0)
		return rc;
	rollout = str(row, "rollout");
	rstate = str(row, "state");
	to = str(json_object_get(row, "to_release"), "id");
	if (is(r->phase, "prepare") && is(r->state, "succeeded") && is(r->release, to) &&
	    (rc = tn_store_rollout_set_prepared(srv->store, rollout, target, err)))
		goto out;
	if ((!is(rstate, "running") && !is(rstate, "paused")) ||
	    !is(str(row, "target_state"), "switching"))
		goto out;
	committed = is(r->phase, "commit") && is(r->state, "succeeded") && is(r->release, to);
	failed = is(r->phase, "rollback") ||
		 (is(r->state, "failed") &&
		  (is(r->phase, "switch") || is(r->phase, "commit") || is(r->phase, "prepare")));
	if (committed) {
		rc = tn_store_rollout_target_set(srv->store, rollout, target, "succeeded", NULL, err);
		if (rc == 0)
			audit(srv, "rollout.target_succeeded", rollout,
			      json_pack("{s:s, s:s}", "target", target, "release", to));
	} else if (failed) {
		/* The node went back by itself: its document follows it there,
		 * and the failed release is never retried on its own. */
		const char *msg = r->message ? r->message : "the target reported a failure";

		rc = tn_store_rollout_target_set(srv->store, rollout, target, "failed", msg, err);
		if (rc == 0)
			rc = point(srv, target, json_object_get(row, "from_release"), err);
		if (rc == 0)
			audit(srv, "rollout.target_failed", rollout,
			      json_pack("{s:s, s:s}", "target", target, "message", msg));
	} else {
		goto out;
	}
	/* the next decision at once (the next target of the batch, the end);
	 * its failure is the server's to log, not the agent's to hear */
	if (rc == 0) {
		struct tn_error serr;

		if (step_locked(srv, rollout, &serr) != 0)
			tn_log(TN_LOG_WARN, "rollout", "step_failed", "{s:s, s:s}", "rollout",
			       rollout, "message", serr.message);
	}
out:
	json_decref(row);
	return rc;
}

/* The target's phase after a report (DESIGN §2 "phase"). */
static const char *phase_after(const struct tn_agent_report *r)
{
	bool ongoing = is(r->state, "started") || is(r->state, "progress");
	bool ok = is(r->state, "succeeded");

	if (is(r->phase, "prepare"))
		return ongoing ? "preparing" : ok ? "prepared" : "idle";
	if (is(r->phase, "switch"))
		return ongoing ? "switching" : ok ? "committing" : "rolling_back";
	if (is(r->phase, "commit"))
		return ongoing ? "committing" : ok ? "idle" : "rolling_back";
	if (is(r->phase, "rollback"))
		return ongoing ? "rolling_back" : "idle";
	return "idle";
}

/* Whether the document names release as its run or prepare release. */
static bool doc_names(const struct tn_store_doc *doc, const char *release)
{
	const char *run = str(doc->run, "id");
	const char *prep = str(doc->prepare, "id");

	return is(run, release) || is(prep, release);
}

int tn_rollout_on_report(struct tn_server *srv, const char *target_id,
			 const struct tn_agent_report *r, struct tn_error *err)
{
	if (!r->phase) {
		struct tn_store_target_update status = {.health = r->health, .bundles = r->bundles,
							.logs = r->log_tail, .seen = true,
							.serves_port = r->serves_port};

		return tn_store_target_update(srv->store, target_id, &status, err);
	}
	struct tn_store_target_update u = {.phase = phase_after(r), .health = r->health,
					   .bundles = r->bundles, .logs = r->log_tail,
					   .seen = true, .serves_port = r->serves_port};
	bool done = is(r->state, "succeeded") || is(r->state, "failed");
	bool commit_ok = is(r->phase, "commit") && is(r->state, "succeeded");
	bool rolled_back = is(r->phase, "rollback") && done;
	bool failed = done && is(r->state, "failed");
	struct tn_store_doc doc = {0};
	int rc;

	if ((commit_ok || rolled_back || failed) &&
	    (rc = tn_store_doc_get(srv->store, target_id, &doc, err)))
		return rc;
	if (commit_ok || rolled_back) {
		u.actual_release = r->release;
		/* A node that runs a release is in service (unless it is on
		 * its way out). */
		if (is(doc.state, "enrolled"))
			u.state = "running";
	}
	if (commit_ok) {
		u.last_result = "succeeded";
		u.last_message = "";
	} else if (rolled_back || (failed && (!r->release || doc_names(&doc, r->release)))) {
		/* A failure about a release the document no longer names is
		 * late news: the server has moved on while the agent worked
		 * on it (a download of it the document no longer allows ends
		 * in 404), and the result it judged stands. */
		u.last_result = "failed";
		u.last_message = r->message ? r->message : "";
	}
	tn_store_doc_clear(&doc);
	if ((rc = tn_store_target_update(srv->store, target_id, &u, err)))
		return rc;
	if (done && !is(r->phase, "remove"))
		tn_log(TN_LOG_INFO, "rollout", "report", "{s:s, s:s, s:s, s:s?, s:s?}", "target",
		       target_id, "phase", r->phase, "state", r->state, "release", r->release,
		       "message", r->message);
	if (!done)
		return 0;
	pthread_mutex_lock(&lock);
	rc = advance(srv, target_id, r, err);
	pthread_mutex_unlock(&lock);
	return rc;
}
