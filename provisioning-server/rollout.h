/* rollout.h - moving a cluster from its current revision to a new one
 * (DESIGN §2 "Rollout"): batches, a canary, pauses for approval, health
 * gates with a failure threshold, automatic rollback, abort and undo.
 *
 * Creating a rollout splits the cluster's targets into batches and stages
 * the new release on every one of them (prepare), so that approval only
 * switches.  The orchestrator's thread (orchestrator.c) calls
 * tn_rollout_step for every running or paused rollout whenever something
 * happened (an approval, an agent's report, a new target) and once a
 * second; each step reads the rollout from the store, decides, writes the
 * decision to the store and only then acts on the targets' documents, so
 * a server killed at any point goes on from where it stopped.  Every
 * change of a rollout, from a request or from the orchestrator, holds one
 * lock: they never interleave. */
#ifndef TN_ROLLOUT_H
#define TN_ROLLOUT_H

#include <jansson.h>

#include "error.h"
#include "report.h"

struct tn_server;

/* POST /api/v1/rollouts: {cluster, distribution?, config?, strategy?};
 * distribution defaults to the cluster's current one, config to the
 * current revision's.  The strategy is checked and stored with its
 * defaults filled in.  *out is the rollout (caller decrefs). */
int tn_rollout_create(struct tn_server *srv, json_t *body, const char *actor, json_t **out,
		      struct tn_error *err) TN_MUST_CHECK;
/* POST /api/v1/clusters/{name}/undo {strategy?}: a rollout back to the
 * revision the cluster's last succeeded rollout started from. */
int tn_rollout_undo(struct tn_server *srv, const char *cluster, json_t *body, const char *actor,
		    json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* The operator's verbs; each answers TN_E_CONFLICT naming the state it
 * found when the verb does not apply.  *out is the rollout after it. */
enum tn_rollout_verb {
	TN_ROLLOUT_APPROVE, /* pending_approval or paused → running */
	TN_ROLLOUT_RESUME,  /* paused → running */
	TN_ROLLOUT_PAUSE,   /* running → paused (the targets switching finish) */
	TN_ROLLOUT_ABORT,   /* any active → aborted: every target it switched goes back */
};
int tn_rollout_act(struct tn_server *srv, const char *id, enum tn_rollout_verb verb,
		   const char *actor, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* One decision round for a running or paused rollout (the orchestrator's
 * thread calls it; it is safe from any thread). */
int tn_rollout_step(struct tn_server *srv, const char *id, struct tn_error *err) TN_MUST_CHECK;

/* A target just enrolled: give it the cluster's current release, if the
 * cluster has a distribution; while a rollout is active it also stages the
 * rollout's release and joins its remaining batches. */
int tn_rollout_place_new_target(struct tn_server *srv, const char *target_id,
				struct tn_error *err) TN_MUST_CHECK;

/* An agent reported: record it on the target, and move its rollout on. */
int tn_rollout_on_report(struct tn_server *srv, const char *target_id,
			 const struct tn_agent_report *r, struct tn_error *err) TN_MUST_CHECK;

#endif
