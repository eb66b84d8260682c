/* lb.h - load-balancer drivers (DESIGN §2 "Load balancer", the membership
 * half): a cluster's `lb` object names a driver, and the driver adds,
 * drains and deletes the backend's members, one per target, named by the
 * target id.  Each driver is a struct tn_lb_ops chosen by name; `none`
 * does nothing, `haproxy` (lb_haproxy.c) speaks HAProxy's runtime API.
 *
 * Driver calls block on the network (bounded by short timeouts): they are
 * made from the reconciler's thread (lbsync.c), never from a request. */
#ifndef TN_LB_H
#define TN_LB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* A member as the load balancer shows it; strings caller-freed (with
 * tn_lb_members_free). */
struct tn_lb_member {
	char *name;	/* the target id */
	char *addr;	/* "ADDR:PORT" traffic goes to */
	char *status;	/* the load balancer's word: UP, DOWN, DRAIN, MAINT ... */
	long sessions;	/* current sessions (HAProxy's scur) */
	bool draining;	/* set to drain or in maintenance by the operator (us) */
};

/* What a member should be. All borrowed. */
struct tn_lb_want {
	const char *name;
	const char *address;
	int port;	/* where traffic goes: the target's serves port */
	int agent_port; /* where the load balancer asks the agent for its state */
};

struct tn_lb_ops {
	const char *name;
	/* The backend's members this server manages (named like targets);
	 * *out caller-freed with tn_lb_members_free.  TN_E_UNAVAILABLE when
	 * the load balancer cannot be reached, TN_E_NOT_FOUND for a backend
	 * it does not have. */
	int (*list)(json_t *lb, struct tn_lb_member **out, size_t *n, struct tn_error *err);
	/* Adds the member with its checks, ready for traffic once they pass. */
	int (*add)(json_t *lb, const struct tn_lb_want *w, struct tn_error *err);
	/* No new connections to the member; those it has go on. */
	int (*drain)(json_t *lb, const char *name, struct tn_error *err);
	/* Takes the member out (maintenance) and deletes it. */
	int (*remove)(json_t *lb, const char *name, struct tn_error *err);
};

/* The driver a cluster's lb object names, or NULL for an unknown one
 * (api_clusters.c refuses those).  NULL lb means `none`. */
const struct tn_lb_ops *tn_lb_driver(json_t *lb);

void tn_lb_members_free(struct tn_lb_member *m, size_t n);

#endif
