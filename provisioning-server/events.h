/* events.h - the audit log: every write, by whom, on what, with what
 * outcome; read as a list or followed as server-sent events. */
#ifndef TN_EVENTS_H
#define TN_EVENTS_H

#include <jansson.h>

#include "router.h"

struct tn_server;

/* Appends an entry (detail borrowed, may be NULL) and wakes the event
 * streams and the webhook worker (which matches and delivers the entry in
 * its own thread).  A failure to write is logged, never returned: the write it
 * describes has already happened. */
void tn_audit(struct tn_server *srv, const struct tn_principal *who, const char *action,
	      const char *object_type, const char *object_id, const char *outcome,
	      json_t *detail);

/* GET /api/v1/events and GET /api/v1/events/stream. */
int tn_api_events_list(struct tn_request *req, struct tn_response *resp, struct tn_error *err);
int tn_api_events_stream(struct tn_request *req, struct tn_response *resp, struct tn_error *err);

#endif
