/* rollout.c - see rollout.h.  The state lives in the store (the rollout,
 * its targets, their from and to releases); every change to what a target
 * should run goes through its desired document (documents.c). */
#include "rollout.h"

#include <stdlib.h>
#include <string.h>

#include "documents.h"
#include "events.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

static const struct tn_principal system_actor = {TN_ROLE_ADMIN, "tender-server"};

/* The cluster's current revision: its distribution ("n@v" or NULL) and
 * config, borrowed from *cluster (caller decrefs it). */
static int current_revision(struct tn_server *srv, const char *cluster, json_t **row,
			    const char **dist, json_t **config, struct tn_error *err)
{
	json_t *rev;
	int rc = tn_store_cluster_get(srv->store, cluster, row, err);

	if (rc != 0)
		return rc;
	rev = json_object_get(*row, "revision");
	*dist = json_string_value(json_object_get(rev, "distribution"));
	*config = json_object_get(rev, "config");
	return 0;
}

int tn_rollout_place_new_target(struct tn_server *srv, const char *target_id,
				struct tn_error *err)
{
	struct tn_store_doc doc = {0};
	struct tn_doc_change ch = {0};
	json_t *cluster = NULL, *config, *release = NULL;
	const char *dist;
	int rc;

	if ((rc = tn_store_doc_get(srv->store, target_id, &doc, err)) ||
	    (rc = current_revision(srv, doc.cluster, &cluster, &dist, &config, err)))
		goto out;
	if (dist) {
		if ((rc = tn_release_build(srv, dist, config, doc.config, &release, err)))
			goto out;
		ch.set_run = true;
		ch.run = release;
	}
	rc = tn_documents_change(srv, target_id, &ch, err);
out:
	json_decref(release);
	json_decref(cluster);
	tn_store_doc_clear(&doc);
	return rc;
}

int tn_rollout_create(struct tn_server *srv, json_t *body, const char *actor, json_t **out,
		      struct tn_error *err)
{
	static const char *const keys[] = {"cluster", "distribution", "config", "strategy", NULL};
	const char *cluster = NULL, *dist = NULL, *cur_dist = NULL;
	json_t *config = NULL, *strategy = NULL, *row = NULL, *cur_config, *targets = json_array();
	char **ids = NULL, *id = NULL, *dist_name = NULL;
	struct tn_store_bundle_ref ref;
	struct tn_version v;
	size_t n = 0;
	int rc;

	if ((rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "cluster", true, &cluster, err)) ||
	    (rc = tn_json_get_string(body, "", "distribution", false, &dist, err)) ||
	    (rc = tn_json_get_object(body, "", "config", false, &config, err)) ||
	    (rc = tn_json_get_object(body, "", "strategy", false, &strategy, err)) ||
	    (rc = current_revision(srv, cluster, &row, &cur_dist, &cur_config, err)))
		goto out;
	if (strategy && json_object_size(strategy)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "strategy: this server switches every target of the cluster at once; "
			     "batches, canaries and pauses are not available yet");
		goto out;
	}
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
	if ((rc = tn_ingest_split_ref(dist, "distribution", &dist_name, &ref.version, &v, err)) ||
	    (rc = tn_ingest_check_config_for(srv->store, dist, config, "rollout config", err)) ||
	    (rc = tn_store_cluster_target_ids(srv->store, cluster, &ids, &n, err)))
		goto out;
	ref.name = dist_name;
	for (size_t i = 0; i < n; i++) {
		struct tn_store_doc doc = {0};
		json_t *release = NULL;

		rc = tn_store_doc_get(srv->store, ids[i], &doc, err);
		if (rc == 0)
			rc = tn_release_build(srv, dist, config, doc.config, &release, err);
		if (rc == 0)
			json_array_append_new(targets, json_pack("{s:s, s:O?, s:o}", "id", ids[i],
								 "from_release", doc.run,
								 "to_release", release));
		tn_store_doc_clear(&doc);
		if (rc)
			goto out;
	}
	if ((rc = tn_store_rollout_create(srv->store, cluster, &ref, config, strategy, targets, actor,
					  &id, err)))
		goto out;
	/* Every target stages the new release now, so approval only switches. */
	for (size_t i = 0; i < json_array_size(targets); i++) {
		json_t *t = json_array_get(targets, i);
		struct tn_doc_change ch = {.set_prepare = true,
					   .prepare = json_object_get(t, "to_release")};

		if ((rc = tn_documents_change(srv, json_string_value(json_object_get(t, "id")), &ch,
					      err)))
			goto out;
	}
	rc = tn_store_rollout_get(srv->store, id, out, err);
out:
	tn_store_free_ids(ids);
	free(id);
	free(dist_name);
	json_decref(targets);
	json_decref(row);
	return rc;
}

/* The targets of a rollout's (only) batch. */
static json_t *rollout_targets(json_t *rollout)
{
	return json_object_get(json_array_get(json_object_get(rollout, "batches"), 0), "targets");
}

int tn_rollout_approve(struct tn_server *srv, const char *id, const char *actor, json_t **out,
		       struct tn_error *err)
{
	json_t *r = NULL, *t;
	const char *state;
	size_t i;
	int rc;

	if ((rc = tn_store_rollout_get(srv->store, id, &r, err)))
		goto out;
	state = json_string_value(json_object_get(r, "state"));
	if (strcmp(state, "pending_approval") != 0) {
		rc = tn_fail(err, TN_E_CONFLICT, "rollout %s is %s; only a rollout pending approval "
			     "can be approved", id, state);
		goto out;
	}
	if ((rc = tn_store_rollout_approve(srv->store, id, actor, 0, err)) ||
	    (rc = tn_store_rollout_set_state(srv->store, id,
					     json_array_size(rollout_targets(r)) ? "running"
										 : "succeeded",
					     err)))
		goto out;
	/* No target to wait for: it ends here, and says so like any other. */
	if (json_array_size(rollout_targets(r)) == 0)
		tn_audit(srv, &system_actor, "rollout.succeeded", "rollout", id, "ok", NULL);
	json_array_foreach(rollout_targets(r), i, t) {
		const char *target = json_string_value(json_object_get(t, "id"));
		struct tn_doc_change ch = {.set_run = true,
					   .run = json_object_get(t, "to_release"),
					   .set_prepare = true};

		if ((rc = tn_store_rollout_target_set(srv->store, id, target, "switching", NULL,
						      err)) ||
		    (rc = tn_documents_change(srv, target, &ch, err)))
			goto out;
	}
	json_decref(r);
	r = NULL;
	rc = tn_store_rollout_get(srv->store, id, out, err);
out:
	json_decref(r);
	return rc;
}

/* Ends the rollout when every target has a result. */
static int maybe_finish(struct tn_server *srv, const char *id, struct tn_error *err)
{
	json_t *r = NULL, *t;
	bool all_done = true, all_ok = true;
	size_t i;
	int rc = tn_store_rollout_get(srv->store, id, &r, err);

	if (rc != 0)
		return rc;
	json_array_foreach(rollout_targets(r), i, t) {
		const char *s = json_string_value(json_object_get(t, "state"));

		if (strcmp(s, "succeeded") != 0 && strcmp(s, "failed") != 0)
			all_done = false;
		if (strcmp(s, "failed") == 0)
			all_ok = false;
	}
	if (all_done) {
		const char *end = all_ok ? "succeeded" : "failed";

		rc = tn_store_rollout_set_state(srv->store, id, end, err);
		if (rc == 0)
			tn_audit(srv, &system_actor, all_ok ? "rollout.succeeded" : "rollout.failed",
				 "rollout", id, "ok", NULL);
	}
	json_decref(r);
	return rc;
}

/* A target's part of its rollout, after a report about release. */
static int advance(struct tn_server *srv, const char *target, const struct tn_agent_report *r,
		   struct tn_error *err)
{
	json_t *row = NULL;
	const char *rollout, *to;
	bool committed, failed;
	int rc = tn_store_rollout_for_target(srv->store, target, &row, err);

	if (rc == -(int)TN_E_NOT_FOUND) {
		tn_error_clear(err);
		return 0;
	}
	if (rc != 0)
		return rc;
	rollout = json_string_value(json_object_get(row, "rollout"));
	to = json_string_value(json_object_get(json_object_get(row, "to_release"), "id"));
	if (strcmp(json_string_value(json_object_get(row, "state")), "running") != 0 ||
	    strcmp(json_string_value(json_object_get(row, "target_state")), "switching") != 0)
		goto out;
	committed = strcmp(r->phase, "commit") == 0 && strcmp(r->state, "succeeded") == 0 &&
		    r->release && to && strcmp(r->release, to) == 0;
	failed = strcmp(r->phase, "rollback") == 0 ||
		 (strcmp(r->state, "failed") == 0 &&
		  (strcmp(r->phase, "switch") == 0 || strcmp(r->phase, "commit") == 0 ||
		   strcmp(r->phase, "prepare") == 0));
	if (committed) {
		rc = tn_store_rollout_target_set(srv->store, rollout, target, "succeeded", NULL, err);
	} else if (failed) {
		/* The node went back by itself: its document follows it there,
		 * and the failed release is never retried on its own. */
		struct tn_doc_change ch = {.set_run = true,
					   .run = json_object_get(row, "from_release"),
					   .set_prepare = true};

		rc = tn_store_rollout_target_set(srv->store, rollout, target, "failed",
						 r->message ? r->message : "the target reported a failure",
						 err);
		if (rc == 0)
			rc = tn_documents_change(srv, target, &ch, err);
	} else {
		goto out;
	}
	if (rc == 0)
		rc = maybe_finish(srv, rollout, err);
out:
	json_decref(row);
	return rc;
}

/* The target's phase after a report (DESIGN §2 "phase"). */
static const char *phase_after(const struct tn_agent_report *r)
{
	bool ongoing = strcmp(r->state, "started") == 0 || strcmp(r->state, "progress") == 0;
	bool ok = strcmp(r->state, "succeeded") == 0;

	if (strcmp(r->phase, "prepare") == 0)
		return ongoing ? "preparing" : ok ? "prepared" : "idle";
	if (strcmp(r->phase, "switch") == 0)
		return ongoing ? "switching" : ok ? "committing" : "rolling_back";
	if (strcmp(r->phase, "commit") == 0)
		return ongoing ? "committing" : ok ? "idle" : "rolling_back";
	if (strcmp(r->phase, "rollback") == 0)
		return ongoing ? "rolling_back" : "idle";
	return "idle";
}

/* Whether the document names release as its run or prepare release. */
static bool doc_names(const struct tn_store_doc *doc, const char *release)
{
	const char *run = json_string_value(json_object_get(doc->run, "id"));
	const char *prep = json_string_value(json_object_get(doc->prepare, "id"));

	return (run && strcmp(run, release) == 0) || (prep && strcmp(prep, release) == 0);
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
	bool done = strcmp(r->state, "succeeded") == 0 || strcmp(r->state, "failed") == 0;
	bool commit_ok = strcmp(r->phase, "commit") == 0 && strcmp(r->state, "succeeded") == 0;
	bool rolled_back = strcmp(r->phase, "rollback") == 0 && done;
	bool failed = done && strcmp(r->state, "failed") == 0;
	struct tn_store_doc doc = {0};
	int rc;

	if ((commit_ok || rolled_back || failed) &&
	    (rc = tn_store_doc_get(srv->store, target_id, &doc, err)))
		return rc;
	if (commit_ok || rolled_back) {
		u.actual_release = r->release;
		/* A node that runs a release is in service (unless it is on
		 * its way out). */
		if (strcmp(doc.state, "enrolled") == 0)
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
	if (done && strcmp(r->phase, "remove") != 0)
		tn_log(TN_LOG_INFO, "rollout", "report", "{s:s, s:s, s:s, s:s?, s:s?}", "target",
		       target_id, "phase", r->phase, "state", r->state, "release", r->release,
		       "message", r->message);
	return advance(srv, target_id, r, err);
}
