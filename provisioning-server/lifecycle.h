/* lifecycle.h - targets from creation to removal (DESIGN §2 Target,
 * Provider): create (the record in `provisioning` and its one-use bound
 * enrollment token first, then the boot), copy, remove (`draining`, then
 * the node terminated and the target `removed`), target-level config, and
 * the timeouts (a node that never enrolls fails; a draining node whose
 * agent is gone is terminated anyway).
 *
 * Provider calls run in the lifecycle's worker thread, from a queue of
 * jobs (boot, terminate), never on a request thread; the same thread
 * sweeps provisioning and draining targets every second.  Every step is
 * in the audit log. */
#ifndef TN_LIFECYCLE_H
#define TN_LIFECYCLE_H

#include <jansson.h>
#include <stdbool.h>

#include "error.h"
#include "report.h"

struct tn_server;
struct tn_lifecycle;

/* Health is "stale" when an agent has not polled for 2 × the longest
 * long-poll wait (30 s) + 10 s. */
#define TN_STALE_AFTER_S 70
#define TN_TARGETS_CREATE_MAX 100

struct tn_lifecycle_config {
	unsigned enroll_timeout_s; /* provisioning → failed after this; 0: 120 */
	unsigned drain_timeout_s;  /* draining → terminated without the agent's word; 0: 60 */
};

/* Starts the worker.  Targets left in provisioning without a node by an
 * earlier run get a new enrollment token and are booted; draining ones
 * wait out their timeout again.  srv->providers must be open. */
struct tn_lifecycle *tn_lifecycle_start(struct tn_server *srv,
					const struct tn_lifecycle_config *cfg);
/* Stops and joins the worker; jobs queued then or later are dropped (the
 * next start recovers their targets).  NULL is a no-op; twice is fine. */
void tn_lifecycle_halt(struct tn_lifecycle *lc);
/* Halts and frees.  NULL is a no-op. */
void tn_lifecycle_stop(struct tn_lifecycle *lc);

/* POST /api/v1/targets: count (1..TN_TARGETS_CREATE_MAX) targets of
 * cluster, booted by provider (NULL: the cluster's, else local), with
 * target-level config (borrowed, may be NULL; checked against the
 * cluster's distribution).  All records and tokens in one transaction,
 * then the boot jobs.  *out is the array of the new targets (caller
 * decrefs). */
int tn_lifecycle_create(struct tn_server *srv, const char *cluster, const char *provider, int count,
			json_t *config, const char *actor, json_t **out,
			struct tn_error *err) TN_MUST_CHECK;

/* POST /api/v1/targets/{id}/copy: one new target like id (cluster,
 * provider, target-level config; a hand-installed target's copy uses the
 * cluster's provider).  *out is the new target. */
int tn_lifecycle_copy(struct tn_server *srv, const char *id, const char *actor, json_t **out,
		      struct tn_error *err) TN_MUST_CHECK;

/* DELETE /api/v1/targets/{id}: draining now; terminated once its agent
 * reports remove succeeded, at once with force (and for a target with no
 * agent: provisioning, failed), or after the drain timeout.  A removed
 * target is TN_E_CONFLICT.  *out is the target. */
int tn_lifecycle_remove(struct tn_server *srv, const char *id, bool force, json_t **out,
			struct tn_error *err) TN_MUST_CHECK;

/* PATCH /api/v1/targets/{id} {config}: stores the target-level config
 * (checked against the cluster's distribution) and switches the target
 * to the release it makes, at once.  *out is the target; *release (may be
 * NULL) the new release id or NULL (caller frees). */
int tn_lifecycle_configure(struct tn_server *srv, const char *id, json_t *config, json_t **out,
			   char **release, struct tn_error *err) TN_MUST_CHECK;

/* An agent reported (after the report was recorded): a draining target
 * whose agent has stopped its bundles is terminated. */
void tn_lifecycle_on_report(struct tn_server *srv, const char *target_id,
			    const struct tn_agent_report *r);

/* A target as shown (GET): health "stale" when its agent went silent. */
void tn_lifecycle_view(json_t *target);

#endif
