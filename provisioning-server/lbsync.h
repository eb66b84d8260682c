/* lbsync.h - the load-balancer reconciler (DESIGN §2 "Load balancer", the
 * membership half): a worker thread that makes each cluster's backend hold
 * exactly its targets in service.  A target that is enrolled or running,
 * with an address, an agent port and a reported serves port, is a member
 * (added with its health and agent checks); a member that is not one of
 * those (a target being removed, one removed, one the store does not
 * know) is drained, deleted once HAProxy shows no current sessions on it
 * or its drain timeout ran out.  It runs on a timer, so what an HAProxy
 * reload dropped comes back, and when woken (an enrollment, a report, a
 * removal).  An unreachable load balancer is logged and audited once, shown
 * in the cluster's lb_status, and retried every round. */
#ifndef TN_LBSYNC_H
#define TN_LBSYNC_H

#include <jansson.h>

struct tn_server;
struct tn_lbsync;

struct tn_lbsync_config {
	unsigned interval_ms;	  /* between rounds; 0 = 2000 */
	unsigned drain_timeout_s; /* longest wait for a member's sessions to end; 0 = 60 */
};

/* Starts the thread (it runs a first round at once). */
struct tn_lbsync *tn_lbsync_start(struct tn_server *srv, const struct tn_lbsync_config *cfg);
/* Asks for a round soon; NULL is a no-op (in-process use). */
void tn_lbsync_wake(struct tn_lbsync *s);
/* What the last round found for a cluster: {state: "ok"|"unreachable"|
 * "failing", message, checked (RFC 3339), members: n}; NULL when the
 * cluster has no load balancer or no round has looked at it yet (or s is
 * NULL).  Caller-decref'd. */
json_t *tn_lbsync_status(struct tn_lbsync *s, const char *cluster);
/* Joins the thread; NULL is a no-op. */
void tn_lbsync_stop(struct tn_lbsync *s);

#endif
