/* rollout.h - moving a cluster from its current revision to a new one.
 * For now the minimal form (the rollouts issue grows it into batches,
 * canaries, pauses and automatic rollback): creating a rollout stages the
 * new release on every target (prepare), approving it switches every
 * target at once, and the targets' reports end it succeeded or failed. */
#ifndef TN_ROLLOUT_H
#define TN_ROLLOUT_H

#include <jansson.h>

#include "error.h"
#include "report.h"

struct tn_server;

/* POST /api/v1/rollouts: {cluster, distribution?, config?, strategy?};
 * distribution defaults to the cluster's current one, config to {}.
 * *out is the rollout (caller decrefs). */
int tn_rollout_create(struct tn_server *srv, json_t *body, const char *actor, json_t **out,
		      struct tn_error *err) TN_MUST_CHECK;
int tn_rollout_approve(struct tn_server *srv, const char *id, const char *actor, json_t **out,
		       struct tn_error *err) TN_MUST_CHECK;

/* A target just enrolled: give it the cluster's current release, if the
 * cluster has a distribution. */
int tn_rollout_place_new_target(struct tn_server *srv, const char *target_id,
				struct tn_error *err) TN_MUST_CHECK;

/* An agent reported: record it on the target, and move its rollout on. */
int tn_rollout_on_report(struct tn_server *srv, const char *target_id,
			 const struct tn_agent_report *r, struct tn_error *err) TN_MUST_CHECK;

#endif
