/* agent.h - tender-agent's state machine: long-polls its desired document,
 * stages releases in the background, and switches, commits or rolls back
 * exactly as DESIGN §2 says, journalling every step first so that a
 * restarted agent finishes the step or rolls it back — never a mix. */
#ifndef TN_AGENT_H
#define TN_AGENT_H

#include <stdint.h>

#include "error.h"
#include "loop.h"

struct tn_agent_options {
	const char *state_dir;
	const char *address;   /* this node's address, as the server and LB see it */
	/* PEM file of the CAs that sign the server's certificate, for every
	 * request (NULL: the system's CAs) */
	const char *cacert;
	int port_base;         /* first port of the node's block */
	int agent_port;        /* HAProxy agent-check port (last of the block) */
	unsigned poll_wait_s;  /* long-poll wait the server is asked for */
	/* At a switch or a removal with a load balancer: how long to wait for
	 * the connections to the serves port to end once HAProxy has heard
	 * "drain" (0: not at all). */
	uint64_t drain_wait_ms;
	/* Test knobs (0: defaults): supervisor backoff, for fast crash tests. */
	uint64_t backoff_base_ms;
	unsigned restart_limit;
	uint64_t restart_window_ms;
};

struct tn_agent;

/* The agent must be enrolled (a journal in state_dir).  Recovers from the
 * journal (adopting bundles a killed agent left running), then starts
 * polling.  *out is freed with tn_agent_free (bundles keep running). */
int tn_agent_start(struct tn_loop *loop, const struct tn_agent_options *opts,
		   struct tn_agent **out, struct tn_error *err) TN_MUST_CHECK;
void tn_agent_free(struct tn_agent *a);

/* Enrolls with the server (blocking; before the loop runs) and writes the
 * identity into state_dir.  server_key, when not NULL, must match the key
 * the server answers with (pinning it in advance).  cacert as in
 * tn_agent_options (NULL: the system's CAs); a certificate that does not
 * verify fails with curl's reason ("SSL certificate problem: ..."). */
int tn_agent_enroll(const char *state_dir, const char *server, const char *enroll_token,
		    const char *server_key, const char *cacert, const char *address,
		    int agent_port, struct tn_error *err) TN_MUST_CHECK;

#endif
