/* orchestrator.h - the thread that moves rollouts (rollout.c decides): a
 * step for every running or paused rollout when woken (an approval, a
 * target's result, a target joining) and once a second (health timeouts),
 * never on a request thread.  At start it steps what a stopped or killed
 * server left running. */
#ifndef TN_ORCHESTRATOR_H
#define TN_ORCHESTRATOR_H

struct tn_server;
struct tn_orchestrator;

struct tn_orchestrator *tn_orchestrator_start(struct tn_server *srv);
/* Asks for a round soon; NULL is a no-op (in-process use). */
void tn_orchestrator_wake(struct tn_orchestrator *o);
/* Joins the thread; NULL is a no-op. */
void tn_orchestrator_stop(struct tn_orchestrator *o);

#endif
