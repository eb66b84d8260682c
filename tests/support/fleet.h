/* fleet.h - integration-test support for a whole fleet: a tender-server
 * with the local provider, the cluster "educa" of n local targets running
 * the sample application, optionally behind a real HAProxy (haproxy.h),
 * and the waits every such test needs (targets running, members up).
 * A wait that runs out prints the targets, HAProxy's view and the end of
 * the server's log, then aborts the test program (its exit handlers kill
 * whatever it started). */
#ifndef TN_TEST_FLEET_H
#define TN_TEST_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "haproxy.h"
#include "harness.h"

#define TH_FLEET_NODE_DEADLINE_S 90
#define TH_FLEET_LB_DEADLINE_S 30

struct th_fleet {
	struct th_server srv;
	struct th_haproxy h; /* pid 0 without a load balancer */
	bool with_lb;
	char *args[12];
	size_t nargs;
};

/* Starts HAProxy (backend "educa") when with_lb, and tender-server with the
 * local provider on a port range of its own (range: 0..9, to keep test
 * programs that run at once apart); uploads build/distributions/NAME.zip
 * for each of uploads (NULL-terminated); creates the cluster "educa" on
 * dist with the load balancer; creates n targets and waits until they run
 * (and are up in the backend). */
void th_fleet_start(struct th_fleet *f, unsigned range, bool with_lb,
		    const char *const *uploads, const char *dist, size_t n);
/* The same with a port range of ports ports (th_fleet_start: 300, room
 * for 30 nodes of 10 ports), for fleets of more nodes. */
void th_fleet_start_ports(struct th_fleet *f, unsigned range, unsigned ports, bool with_lb,
			  const char *const *uploads, const char *dist, size_t n);
/* Kills everything and removes the directories; NULL-safe on a zeroed
 * struct.  False when the server did not exit cleanly on SIGTERM (its
 * log's end is printed): a group teardown returns that as its failure. */
bool th_fleet_destroy(struct th_fleet *f);

/* A JSON request with the admin token; the response is the caller's. */
void th_fleet_call(struct th_fleet *f, const char *method, const char *path, const char *body,
		   struct th_response *r);
/* GET path, which must answer 200; the body (caller decrefs). */
json_t *th_fleet_get(struct th_fleet *f, const char *path);
/* POSTs body (JSON text or NULL) to path, which must answer want; the
 * answer's JSON (caller decrefs). */
json_t *th_fleet_post(struct th_fleet *f, const char *path, const char *body, long want);
/* Creates a rollout of "educa" to dist with strategy (JSON text), which
 * must be pending approval; its id (caller frees). */
char *th_fleet_rollout(struct th_fleet *f, const char *dist, const char *strategy);
/* POST /api/v1/rollouts/ID/VERB, which must answer 200. */
void th_fleet_act(struct th_fleet *f, const char *id, const char *verb);
void th_fleet_upload(struct th_fleet *f, const char *name);
/* Prints the targets, HAProxy's `show stat` and the end of the server's log. */
void th_fleet_dump(struct th_fleet *f);
/* Prints why and what th_fleet_dump shows, then aborts. */
void th_fleet_fail(struct th_fleet *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Once the cluster has exactly n targets that are not removed, all
 * running, healthy, idle (or prepared: a release staged for a later batch)
 * and on their desired release: them (caller decrefs). */
json_t *th_fleet_wait_running(struct th_fleet *f, size_t n);
/* Once the backend holds n members, all UP: the seconds it took. */
double th_fleet_wait_members(struct th_fleet *f, size_t n);
/* Once the rollout is in state (one of a '|'-separated list): it (caller
 * decrefs). */
json_t *th_fleet_wait_rollout(struct th_fleet *f, const char *id, const char *states);

#endif
