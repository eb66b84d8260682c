/* orchestrator.c - see orchestrator.h. */
#include "orchestrator.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "rollout.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

#define TICK_MS 1000

struct tn_orchestrator {
	struct tn_server *srv;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping, woken;
};

static void round_all(struct tn_orchestrator *o)
{
	char **ids = NULL;
	struct tn_error err;

	if (tn_store_rollout_ids_moving(o->srv->store, &ids, &err) != 0) {
		tn_log(TN_LOG_WARN, "orchestrator", "list_failed", "{s:s}", "message", err.message);
		return;
	}
	for (size_t i = 0; ids[i]; i++)
		if (tn_rollout_step(o->srv, ids[i], &err) != 0)
			tn_log(TN_LOG_WARN, "orchestrator", "step_failed", "{s:s, s:s}", "rollout",
			       ids[i], "message", err.message);
	tn_store_free_ids(ids);
}

static void *run(void *arg)
{
	struct tn_orchestrator *o = arg;

	pthread_mutex_lock(&o->lock);
	while (!o->stopping) {
		struct timespec until;

		o->woken = false;
		pthread_mutex_unlock(&o->lock);
		round_all(o);
		pthread_mutex_lock(&o->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += TICK_MS / 1000;
		while (!o->stopping && !o->woken &&
		       pthread_cond_timedwait(&o->cond, &o->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

struct tn_orchestrator *tn_orchestrator_start(struct tn_server *srv)
{
	struct tn_orchestrator *o = xcalloc(1, sizeof *o);

	o->srv = srv;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	pthread_create(&o->thread, NULL, run, o);
	return o;
}

void tn_orchestrator_wake(struct tn_orchestrator *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->woken = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

void tn_orchestrator_stop(struct tn_orchestrator *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o);
}
