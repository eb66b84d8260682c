/* janitor.c - see janitor.h. */
#include "janitor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "blobstore.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

struct tn_janitor {
	struct tn_server *srv;
	unsigned interval_s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
};

static int referenced(void *ctx, const char *hex, struct tn_error *err)
{
	struct tn_server *srv = ctx;
	bool used = true;
	int rc = tn_store_blob_referenced(srv->store, hex, &used, err);

	return rc < 0 ? rc : used ? 1 : 0;
}

int tn_janitor_collect(struct tn_server *srv, struct tn_error *err)
{
	uint64_t count = 0, bytes = 0;
	int rc = tn_blobstore_gc(srv->blobs, referenced, srv, &count, &bytes, err);

	if (rc == 0 && count)
		tn_log(TN_LOG_INFO, "janitor", "blobs_collected", "{s:I, s:I}", "blobs",
		       (json_int_t)count, "bytes", (json_int_t)bytes);
	return rc;
}

static void *run(void *arg)
{
	struct tn_janitor *j = arg;
	struct timespec until;

	pthread_mutex_lock(&j->lock);
	while (!j->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += j->interval_s;
		if (pthread_cond_timedwait(&j->cond, &j->lock, &until) != 0 && !j->stopping) {
			struct tn_error err;

			pthread_mutex_unlock(&j->lock);
			if (tn_janitor_collect(j->srv, &err) != 0)
				tn_log(TN_LOG_WARN, "janitor", "gc_failed", "{s:s}", "message",
				       err.message);
			pthread_mutex_lock(&j->lock);
		}
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

struct tn_janitor *tn_janitor_start(struct tn_server *srv, unsigned interval_s)
{
	struct tn_janitor *j = xcalloc(1, sizeof *j);

	j->srv = srv;
	j->interval_s = interval_s;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	pthread_create(&j->thread, NULL, run, j);
	return j;
}

void tn_janitor_stop(struct tn_janitor *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
