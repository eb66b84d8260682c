/* offload.c - see offload.h.  A job is shared by the worker and the parked
 * exchange: the worker runs it, wakes the exchange's key and only then marks
 * it done; the exchange's resume waits for done.  So the HTTP layer cannot
 * finish stopping (it waits for its exchanges) while the worker still wakes
 * through it. */
#include "offload.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "http.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

/* Far enough never to run out: a job always ends, and wakes its exchange. */
#define PARK_MS (24ull * 3600 * 1000)

struct job {
	struct tn_server *srv;
	tn_offload_fn fn;
	void *arg;
	void (*free_arg)(void *arg);
	int status;
	const char *audit_type;
	char key[32];
	/* the result, set once by the worker */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool finished; /* the result is there (ready() may say so) */
	bool done;     /* and the wake went out: resume may answer */
	int rc;
	json_t *out;
	struct tn_error err;
	int refs; /* the worker's and the exchange's */
	struct job *next;
};

struct tn_offload {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	bool stopping;
};

static void job_unref(struct job *j)
{
	bool last;

	pthread_mutex_lock(&j->lock);
	last = --j->refs == 0;
	pthread_mutex_unlock(&j->lock);
	if (!last)
		return;
	if (j->free_arg)
		j->free_arg(j->arg);
	json_decref(j->out);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

static void job_run(struct job *j)
{
	json_t *out = NULL;
	struct tn_error err = {0};
	int rc = j->fn(j->srv, j->arg, &out, &err);

	pthread_mutex_lock(&j->lock);
	j->rc = rc;
	j->out = out;
	j->err = err;
	j->finished = true;
	pthread_mutex_unlock(&j->lock);
	if (j->srv->http)
		tn_http_wake_key(j->srv->http, j->key);
	pthread_mutex_lock(&j->lock);
	j->done = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

static void *worker(void *arg)
{
	struct tn_offload *o = arg;

	pthread_setname_np(pthread_self(), "tn-offload"); /* in top -H and perf */
	pthread_mutex_lock(&o->lock);
	for (;;) {
		struct job *j = o->head;

		if (!j) {
			if (o->stopping)
				break;
			pthread_cond_wait(&o->cond, &o->lock);
			continue;
		}
		o->head = j->next;
		if (!o->head)
			o->tail = &o->head;
		pthread_mutex_unlock(&o->lock);
		job_run(j);
		job_unref(j);
		pthread_mutex_lock(&o->lock);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

struct tn_offload *tn_offload_start(void)
{
	struct tn_offload *o = xcalloc(1, sizeof *o);

	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->tail = &o->head;
	pthread_create(&o->thread, NULL, worker, o);
	return o;
}

void tn_offload_stop(struct tn_offload *o)
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

/* ------------------------------------------------------------ the exchange's side */

static bool job_ready(void *ctx)
{
	struct job *j = ctx;
	bool finished;

	pthread_mutex_lock(&j->lock);
	finished = j->finished;
	pthread_mutex_unlock(&j->lock);
	return finished;
}

/* Makes the response from the job's result (fills the caller's err). */
static int answer(struct job *j, struct tn_response *resp, struct tn_error *err)
{
	if (j->rc != 0) {
		*err = j->err;
		return j->rc;
	}
	tn_response_audit(resp, j->audit_type, json_string_value(json_object_get(j->out, "id")));
	tn_response_json(resp, j->status, json_incref(j->out));
	return 0;
}

static int job_resume(void *ctx, struct tn_request *req, struct tn_response *resp,
		      struct tn_error *err)
{
	struct job *j = ctx;

	(void)req;
	pthread_mutex_lock(&j->lock);
	while (!j->done)
		pthread_cond_wait(&j->cond, &j->lock);
	pthread_mutex_unlock(&j->lock);
	return answer(j, resp, err);
}

static void job_free(void *ctx)
{
	job_unref(ctx);
}

static const struct tn_defer_ops job_ops = {job_ready, job_resume, job_free};

int tn_offload_respond(struct tn_request *req, struct tn_response *resp, int status,
		       const char *audit_type, tn_offload_fn fn, void *arg,
		       void (*free_arg)(void *arg), struct tn_error *err)
{
	static atomic_uint_fast64_t serial;
	struct tn_offload *o = req->srv->offload;
	struct job *j = xcalloc(1, sizeof *j);
	int rc = 0;

	j->srv = req->srv;
	j->fn = fn;
	j->arg = arg;
	j->free_arg = free_arg;
	j->status = status;
	j->audit_type = audit_type;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	if (!o || !req->srv->http) {
		/* in-process: now */
		j->refs = 1;
		job_run(j);
		rc = answer(j, resp, err);
		job_unref(j);
		return rc;
	}
	snprintf(j->key, sizeof j->key, "offload:%" PRIuFAST64, ++serial);
	j->refs = 2;
	resp->defer = &job_ops;
	resp->defer_ctx = j;
	resp->defer_key = xstrdup(j->key);
	resp->defer_until_ms = tn_clock_ms() + PARK_MS;
	pthread_mutex_lock(&o->lock);
	*o->tail = j;
	o->tail = &j->next;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return 0;
}
