/* agentcheck.h - the agent's half of the load balancer (DESIGN §2 "Load
 * balancer", readiness): HAProxy's agent-check protocol on the agent port.
 * HAProxy connects every agent-inter, may send its `agent-send` text, and
 * reads one ASCII line; this listener writes the node's current answer on
 * every connection it accepts and closes, never waiting for what HAProxy
 * sends.  It counts the answers given since the answer last changed, so that
 * a switch can wait until HAProxy has heard "drain" before stopping
 * anything. */
#ifndef TN_AGENTCHECK_H
#define TN_AGENTCHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "loop.h"

/* Bounds: connections accepted per wakeup of the listening socket, and
 * answered connections kept open at once while the peer's agent-send text
 * is read and discarded (so that closing never resets the connection before
 * HAProxy has read the answer), each for at most TN_AGENTCHECK_LINGER_MS. */
#define TN_AGENTCHECK_ACCEPT_BURST 16
#define TN_AGENTCHECK_LINGER_MAX 32
#define TN_AGENTCHECK_LINGER_MS 2000
#define TN_AGENTCHECK_LINGER_BYTES 4096

enum tn_ac_state {
	TN_AC_DRAIN, /* "drain\n": not ready (starting, unhealthy, switching) */
	TN_AC_READY, /* "up ready 100%\n": in service */
	TN_AC_MAINT, /* "maint\n": being removed, bundles stopped */
};

struct tn_agentcheck;

/* Called once when HAProxy has been answered with the current state. */
typedef void (*tn_ac_heard_fn)(void *ctx);

/* Listens on 0.0.0.0:port (0: any free port, see tn_agentcheck_port) with
 * SO_REUSEADDR, non-blocking and close-on-exec, watched by loop.  The first
 * answer is TN_AC_DRAIN.  *out is the caller's (tn_agentcheck_free);
 * TN_E_IO naming the port when it cannot be bound. */
int tn_agentcheck_new(struct tn_loop *loop, int port, struct tn_agentcheck **out,
		      struct tn_error *err) TN_MUST_CHECK;
/* Closes the listener and every connection; NULL is a no-op. */
void tn_agentcheck_free(struct tn_agentcheck *ac);

/* Moves the listener to port: the new socket is bound first, and the old
 * one closed only when that worked (else the old one keeps answering).
 * The state and its count are kept. */
int tn_agentcheck_listen(struct tn_agentcheck *ac, int port, struct tn_error *err) TN_MUST_CHECK;
/* The port really listened on. */
int tn_agentcheck_port(const struct tn_agentcheck *ac);

/* Sets the answer.  A change resets the count of answers; setting the
 * state it already has changes nothing. */
void tn_agentcheck_set(struct tn_agentcheck *ac, enum tn_ac_state state);
enum tn_ac_state tn_agentcheck_state(const struct tn_agentcheck *ac);
/* Answers written in the current state since it was set. */
uint64_t tn_agentcheck_answers(const struct tn_agentcheck *ac);
/* Answers written since the listener was made, in any state: 0 when no
 * load balancer has asked (yet). */
uint64_t tn_agentcheck_total(const struct tn_agentcheck *ac);

/* Calls fn(ctx) once, as soon as at least one answer has been written in
 * the state current at that time: from the loop (a 0 ms timer) when one
 * was written already, else right after the next one.  One notification at
 * a time: a new call replaces the pending one; fn NULL cancels it. */
void tn_agentcheck_when_heard(struct tn_agentcheck *ac, tn_ac_heard_fn fn, void *ctx);

/* The line for a state ("up ready 100%\n", "drain\n", "maint\n"). */
const char *tn_agentcheck_answer(enum tn_ac_state state);
/* "ready", "drain", "maint": for logs. */
const char *tn_agentcheck_state_name(enum tn_ac_state state);

#endif
