/* offload.h - a request's heavy work (a rollout staging a fleet's
 * documents) on a worker thread while its connection is parked, so that no
 * MHD thread is held by it and the long-polls it wakes are answered at once
 * (DESIGN §5: the orchestrator never runs on a request thread). */
#ifndef TN_OFFLOAD_H
#define TN_OFFLOAD_H

#include <jansson.h>

#include "error.h"

struct tn_offload;
struct tn_request;
struct tn_response;
struct tn_server;

/* The work: *out (a new reference) is the body of the answer. */
typedef int (*tn_offload_fn)(struct tn_server *srv, void *arg, json_t **out,
			     struct tn_error *err);

/* One worker thread, jobs in the order they came. */
struct tn_offload *tn_offload_start(void);
/* Runs what is queued, then joins; NULL is a no-op.  Call it after the HTTP
 * layer stopped (its parked exchanges wait for their jobs). */
void tn_offload_stop(struct tn_offload *o);

/* Answers req with status and fn's result, or fn's error: on the worker
 * when the server has one (the response is deferred until fn ended; 0),
 * at once otherwise (in-process use: fn's own return and err).  Takes
 * ownership of arg (free_arg releases it).  The audit entry names fn's
 * result by its "id", as an object of audit_type. */
int tn_offload_respond(struct tn_request *req, struct tn_response *resp, int status,
		       const char *audit_type, tn_offload_fn fn, void *arg,
		       void (*free_arg)(void *arg), struct tn_error *err);

#endif
