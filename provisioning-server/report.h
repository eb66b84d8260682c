/* report.h - what an agent reports (POST /agent/v1/report), parsed
 * strictly: every field checked, every string capped, so a hostile agent
 * can neither corrupt a target's record nor flood the store. */
#ifndef TN_REPORT_H
#define TN_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define TN_REPORT_MESSAGE_MAX 4096
#define TN_REPORT_TAIL_MAX 16384
#define TN_REPORT_BUNDLES_MAX 256

struct tn_agent_report {
	json_t *root;        /* owns every string below */
	int64_t generation;  /* the document generation the agent acts on */
	const char *release; /* the release the phase is about (after a
				rollback: the one now running again) */
	/* prepare, switch, commit, rollback, remove; NULL for a status report
	 * (health and bundles only, e.g. a liveness change after a commit),
	 * and then state is NULL too. */
	const char *phase;
	const char *state;   /* started, progress, succeeded, failed */
	bool has_progress;
	int64_t done, total; /* bytes prepared so far / to prepare */
	const char *health;  /* unknown, healthy, unhealthy; NULL when absent */
	json_t *bundles;     /* [{name, state, restarts, reason?}] or NULL */
	const char *message; /* NULL when absent */
	json_t *log_tail;    /* {bundle: text} or NULL */
	int serves_port;     /* the port the running release serves on (where
				the load balancer sends traffic); 0 when absent */
};

int tn_agent_report_parse(const char *body, size_t len, struct tn_agent_report *out,
			  struct tn_error *err) TN_MUST_CHECK;
void tn_agent_report_clear(struct tn_agent_report *r);

#endif
