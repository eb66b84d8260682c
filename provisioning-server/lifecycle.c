/* lifecycle.c - see lifecycle.h.  Request threads write records and queue
 * jobs; the worker thread alone calls providers.  A job re-reads its target
 * before acting, so a job made stale by what happened meanwhile (a removal
 * before the boot, a second terminate) does nothing. */
#include "lifecycle.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "documents.h"
#include "events.h"
#include "http.h"
#include "ingest.h"
#include "lbsync.h"
#include "log.h"
#include "node.h"
#include "provider.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

#define ENROLL_TIMEOUT_DEFAULT_S 120
#define DRAIN_TIMEOUT_DEFAULT_S 60
/* An enrollment token outlives the enroll timeout a little: the target
 * fails first, with the clearer message. */
#define TOKEN_SLACK_S 60
#define SWEEP_MS 1000
#define JOBS_MAX 10000
#define DRAINS_MAX 100000

static const struct tn_principal system_actor = {TN_ROLE_ADMIN, "tender-server"};

enum job_type { JOB_BOOT, JOB_TERMINATE };

struct job {
	enum job_type type;
	char target[64];
	char *token;	 /* JOB_BOOT: the enrollment secret (owned, wiped) */
	bool to_removed; /* JOB_TERMINATE: the target ends removed (else: failed stays) */
	struct job *next;
};

/* When a draining target is terminated without its agent's word. */
struct drain {
	char target[64];
	uint64_t deadline_ms;
};

struct tn_lifecycle {
	struct tn_server *srv;
	unsigned enroll_timeout_s, drain_timeout_s;
	pthread_t thread;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	bool stopping;
	struct job *head, *tail;
	size_t njobs;
	struct drain *drains;
	size_t ndrains;
};

/* ------------------------------------------------------------ jobs */

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->token) {
		explicit_bzero(j->token, strlen(j->token));
		free(j->token);
	}
	free(j);
}

static struct job *job_new(enum job_type type, const char *target)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->type = type;
	snprintf(j->target, sizeof j->target, "%s", target);
	return j;
}

/* Called with the lock held. */
static void push_locked(struct tn_lifecycle *lc, struct job *j)
{
	if (lc->tail)
		lc->tail->next = j;
	else
		lc->head = j;
	lc->tail = j;
	lc->njobs++;
	pthread_cond_signal(&lc->cond);
}

static void push(struct tn_lifecycle *lc, struct job *j)
{
	pthread_mutex_lock(&lc->lock);
	push_locked(lc, j);
	pthread_mutex_unlock(&lc->lock);
}

static void enqueue_terminate(struct tn_lifecycle *lc, const char *target, bool to_removed)
{
	struct job *j = job_new(JOB_TERMINATE, target);

	j->to_removed = to_removed;
	push(lc, j);
}

/* Called with the lock held: the drain entry of target, or NULL. */
static struct drain *drain_find(struct tn_lifecycle *lc, const char *target)
{
	for (size_t i = 0; i < lc->ndrains; i++)
		if (strcmp(lc->drains[i].target, target) == 0)
			return &lc->drains[i];
	return NULL;
}

static void drain_set(struct tn_lifecycle *lc, const char *target, uint64_t deadline_ms)
{
	struct drain *d;

	pthread_mutex_lock(&lc->lock);
	d = drain_find(lc, target);
	if (!d && lc->ndrains < DRAINS_MAX) {
		lc->drains = xrealloc(lc->drains, (lc->ndrains + 1) * sizeof *lc->drains);
		d = &lc->drains[lc->ndrains++];
		snprintf(d->target, sizeof d->target, "%s", target);
	}
	if (d)
		d->deadline_ms = deadline_ms;
	pthread_mutex_unlock(&lc->lock);
}

static void drain_drop(struct tn_lifecycle *lc, const char *target)
{
	struct drain *d;

	pthread_mutex_lock(&lc->lock);
	d = drain_find(lc, target);
	if (d)
		*d = lc->drains[--lc->ndrains];
	pthread_mutex_unlock(&lc->lock);
}

/* ------------------------------------------------------------ helpers */

static time_t parse_time(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	return end && *end == '\0' ? timegm(&tm) : (time_t)-1;
}

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The target fails with reason, if it is still provisioning (a boot
 * failure or a node that never enrolled): checked and written in one
 * transaction, so that a removal meanwhile wins. */
static void fail_target(struct tn_server *srv, const char *id, const char *action,
			const char *reason)
{
	struct tn_store_target_update u = {
	    .state = "failed", .last_result = "failed", .last_message = reason};
	struct tn_store_doc doc = {0};
	struct tn_error err;
	json_t *detail;
	int rc;

	if ((rc = tn_store_begin(srv->store, &err)))
		goto out;
	if ((rc = tn_store_doc_get(srv->store, id, &doc, &err)) == 0 &&
	    strcmp(doc.state, "provisioning") == 0)
		rc = tn_store_target_update(srv->store, id, &u, &err);
	if (rc == 0)
		rc = tn_store_commit(srv->store, &err);
	else
		tn_store_rollback(srv->store);
out:
	if (rc) {
		tn_log(TN_LOG_ERROR, "lifecycle", "fail_failed", "{s:s, s:s}", "target", id,
		       "message", err.message);
	} else if (strcmp(doc.state, "provisioning") == 0) {
		tn_log(TN_LOG_WARN, "lifecycle", "target_failed", "{s:s, s:s}", "target", id,
		       "reason", reason);
		detail = json_pack("{s:s}", "message", reason);
		tn_audit(srv, &system_actor, action, "target", id, "failed", detail);
		json_decref(detail);
	}
	tn_store_doc_clear(&doc);
}

/* A new one-use enrollment token bound to target id; *secret caller-freed. */
static int bound_token(struct tn_lifecycle *lc, const char *id, const char *actor, char **secret,
		       struct tn_error *err)
{
	char hash[65], expires[TN_STORE_TIME_LEN + 1];
	int rc;

	*secret = tn_token_generate("tne_");
	tn_token_hash(*secret, hash);
	tn_store_time_format(time(NULL) + lc->enroll_timeout_s + TOKEN_SLACK_S, expires);
	rc = tn_store_target_enrollment_token_create(lc->srv->store, id, hash, expires, actor, err);
	if (rc) {
		explicit_bzero(*secret, strlen(*secret));
		free(*secret);
		*secret = NULL;
	}
	return rc;
}

/* ------------------------------------------------------------ the worker */

static void run_boot(struct tn_lifecycle *lc, struct job *j)
{
	struct tn_server *srv = lc->srv;
	struct tn_provider *p = NULL;
	struct tn_instance inst = {0};
	struct tn_error err;
	json_t *t = NULL;
	const char *provider;
	int rc;

	if (tn_store_target_get(srv->store, j->target, &t, &err) != 0)
		goto out; /* gone with its cluster */
	if (strcmp(str(t, "state"), "provisioning") != 0)
		goto out; /* removed (or enrolled by a node of an earlier boot) meanwhile */
	provider = str(t, "provider") ? str(t, "provider") : TN_PROVIDER_DEFAULT;
	if ((rc = tn_providers_get(srv->providers, provider, &p, &err)) == 0) {
		struct tn_boot_spec spec = {
		    .target_id = j->target,
		    .cluster = str(t, "cluster"),
		    .server_url = srv->public_url,
		    .server_port = srv->http ? tn_http_port(srv->http) : 0,
		    .enroll_token = j->token,
		};

		rc = p->ops->boot(p, &spec, &inst, &err);
	}
	if (rc) {
		char *reason = xasprintf("boot failed: %s", err.message);

		fail_target(srv, j->target, "target.boot_failed", reason);
		free(reason);
		goto out;
	}
	{
		struct tn_store_target_update u = {.instance = inst.id, .address = inst.address};
		json_t *detail = json_pack("{s:s, s:s, s:s?}", "provider", provider, "instance",
					   inst.id, "address", inst.address);

		if (tn_store_target_update(srv->store, j->target, &u, &err) != 0)
			tn_log(TN_LOG_ERROR, "lifecycle", "record_failed", "{s:s, s:s}", "target",
			       j->target, "message", err.message);
		tn_audit(srv, &system_actor, "target.booted", "target", j->target, "ok", detail);
		json_decref(detail);
	}
out:
	free(inst.id);
	free(inst.address);
	json_decref(t);
}

static void run_terminate(struct tn_lifecycle *lc, struct job *j)
{
	struct tn_server *srv = lc->srv;
	struct tn_provider *p;
	struct tn_error err;
	json_t *t = NULL;
	const char *state, *provider, *instance;
	int rc = 0;

	if (tn_store_target_get(srv->store, j->target, &t, &err) != 0)
		goto out;
	state = str(t, "state");
	if (strcmp(state, j->to_removed ? "draining" : "failed") != 0)
		goto out; /* done already, or not ours to end */
	provider = str(t, "provider");
	instance = str(t, "instance");
	if (instance && provider && strcmp(provider, "manual") != 0) {
		p = tn_providers_find(srv->providers, provider);
		if (!p || !p->priv)
			rc = tn_fail(&err, TN_E_UNAVAILABLE,
				     "provider %s is not configured on this server: its node %s "
				     "cannot be terminated",
				     provider, instance);
		else
			rc = p->ops->terminate(p, instance, &err);
	}
	if (rc) {
		json_t *detail =
		    json_pack("{s:s, s:s?}", "message", err.message, "instance", instance);

		tn_log(TN_LOG_WARN, "lifecycle", "terminate_failed", "{s:s, s:s}", "target",
		       j->target, "message", err.message);
		tn_audit(srv, &system_actor, "target.terminate_failed", "target", j->target,
			 "failed", detail);
		json_decref(detail);
		/* tried again when the drain timeout runs out once more */
		if (j->to_removed)
			drain_set(lc, j->target, tn_clock_ms() + lc->drain_timeout_s * 1000ull);
		goto out;
	}
	if (j->to_removed) {
		struct tn_doc_change ch = {.state = "removed"};
		/* what its agent last said is over */
		struct tn_store_target_update u = {.health = "unknown", .phase = "idle"};

		if (tn_documents_change(srv, j->target, &ch, &err) != 0 ||
		    tn_store_target_update(srv->store, j->target, &u, &err) != 0) {
			tn_log(TN_LOG_ERROR, "lifecycle", "remove_failed", "{s:s, s:s}", "target",
			       j->target, "message", err.message);
			goto out;
		}
		drain_drop(lc, j->target);
		tn_documents_forget(srv, j->target);
		tn_audit(srv, &system_actor, "target.removed", "target", j->target, "ok", NULL);
	} else {
		tn_audit(srv, &system_actor, "target.terminated", "target", j->target, "ok", NULL);
	}
out:
	json_decref(t);
}

/* Calls fn for each target in state (all clusters), page by page. */
static void each_target(struct tn_server *srv, const char *state,
			void (*fn)(struct tn_lifecycle *, json_t *), struct tn_lifecycle *lc)
{
	char *after = NULL;

	/* bounded: every page moves the cursor on */
	for (int page = 0; page < 1000; page++) {
		json_t *list = NULL, *t;
		struct tn_error err;
		size_t i;

		if (tn_store_target_list(srv->store, NULL, state, TN_STORE_LIMIT_MAX, after, &list,
					 &err) != 0) {
			tn_log(TN_LOG_WARN, "lifecycle", "list_failed", "{s:s}", "message",
			       err.message);
			break;
		}
		json_array_foreach(json_object_get(list, "items"), i, t) fn(lc, t);
		free(after);
		after = str(list, "next") ? xstrdup(str(list, "next")) : NULL;
		json_decref(list);
		if (!after)
			break;
	}
	free(after);
}

/* A provisioning target: its node died before enrolling, or never
 * enrolled in time. */
static void sweep_provisioning(struct tn_lifecycle *lc, json_t *t)
{
	struct tn_server *srv = lc->srv;
	const char *id = str(t, "id");
	const char *provider = str(t, "provider");
	const char *instance = str(t, "instance");
	time_t created = parse_time(str(t, "created"));
	struct tn_provider *p = provider ? tn_providers_find(srv->providers, provider) : NULL;
	struct tn_instance_status st;
	struct tn_error err;

	if (!p || !p->priv || !instance)
		return; /* not booted yet, or not ours to watch */
	if (p->ops->status(p, instance, &st, &err) == 0 && st.state == TN_INSTANCE_GONE) {
		char *reason = xasprintf("the node's agent exited before it enrolled%s%s",
					 st.detail[0] ? ": " : "", st.detail);

		fail_target(srv, id, "target.boot_failed", reason);
		free(reason);
		enqueue_terminate(lc, id, false);
		return;
	}
	if (created != (time_t)-1 && time(NULL) - created > (time_t)lc->enroll_timeout_s) {
		char *reason =
		    xasprintf("the node never enrolled within %u s (see its agent's log)",
			      lc->enroll_timeout_s);

		fail_target(srv, id, "target.enroll_timeout", reason);
		free(reason);
		enqueue_terminate(lc, id, false);
	}
}

static void sweep_draining(struct tn_lifecycle *lc, json_t *t)
{
	const char *id = str(t, "id");
	uint64_t now = tn_clock_ms();
	struct drain *d;
	bool due = false;

	pthread_mutex_lock(&lc->lock);
	d = drain_find(lc, id);
	if (d && now >= d->deadline_ms) {
		due = true;
		d->deadline_ms = now + lc->drain_timeout_s * 1000ull;
	}
	pthread_mutex_unlock(&lc->lock);
	if (!d) /* after a restart: the wait starts again */
		drain_set(lc, id, now + lc->drain_timeout_s * 1000ull);
	if (due) {
		tn_log(TN_LOG_INFO, "lifecycle", "drain_timeout", "{s:s, s:i}", "target", id,
		       "timeout_s", (int)lc->drain_timeout_s);
		enqueue_terminate(lc, id, true);
	}
}

static void sweep(struct tn_lifecycle *lc)
{
	tn_node_reap();
	each_target(lc->srv, "provisioning", sweep_provisioning, lc);
	each_target(lc->srv, "draining", sweep_draining, lc);
}

static void *worker(void *arg)
{
	struct tn_lifecycle *lc = arg;
	uint64_t next_sweep = tn_clock_ms();

	pthread_mutex_lock(&lc->lock);
	while (!lc->stopping) {
		struct job *j = lc->head;
		uint64_t now = tn_clock_ms();

		if (j) {
			lc->head = j->next;
			if (!lc->head)
				lc->tail = NULL;
			lc->njobs--;
			pthread_mutex_unlock(&lc->lock);
			if (j->type == JOB_BOOT)
				run_boot(lc, j);
			else
				run_terminate(lc, j);
			job_free(j);
			pthread_mutex_lock(&lc->lock);
		} else if (now >= next_sweep) {
			pthread_mutex_unlock(&lc->lock);
			sweep(lc);
			next_sweep = tn_clock_ms() + SWEEP_MS;
			pthread_mutex_lock(&lc->lock);
		} else {
			struct timespec until;
			uint64_t wait = next_sweep - now;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += (time_t)(wait / 1000);
			until.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&lc->cond, &lc->lock, &until);
		}
	}
	pthread_mutex_unlock(&lc->lock);
	return NULL;
}

/* Targets an earlier run left in provisioning before their boot: booted
 * now, with a new token (the old secret went with that run). */
static void recover_one(struct tn_lifecycle *lc, json_t *t)
{
	const char *id = str(t, "id");
	const char *provider = str(t, "provider");
	struct tn_error err;
	struct job *j;

	if (str(t, "instance") || !provider || !tn_providers_find(lc->srv->providers, provider))
		return;
	j = job_new(JOB_BOOT, id);
	if (bound_token(lc, id, system_actor.name, &j->token, &err) != 0) {
		tn_log(TN_LOG_WARN, "lifecycle", "recover_failed", "{s:s, s:s}", "target", id,
		       "message", err.message);
		job_free(j);
		return;
	}
	tn_log(TN_LOG_INFO, "lifecycle", "boot_resumed", "{s:s}", "target", id);
	push(lc, j);
}

struct tn_lifecycle *tn_lifecycle_start(struct tn_server *srv,
					const struct tn_lifecycle_config *cfg)
{
	struct tn_lifecycle *lc = xcalloc(1, sizeof *lc);

	lc->srv = srv;
	lc->enroll_timeout_s =
	    cfg && cfg->enroll_timeout_s ? cfg->enroll_timeout_s : ENROLL_TIMEOUT_DEFAULT_S;
	lc->drain_timeout_s =
	    cfg && cfg->drain_timeout_s ? cfg->drain_timeout_s : DRAIN_TIMEOUT_DEFAULT_S;
	pthread_mutex_init(&lc->lock, NULL);
	pthread_cond_init(&lc->cond, NULL);
	each_target(srv, "provisioning", recover_one, lc);
	pthread_create(&lc->thread, NULL, worker, lc);
	return lc;
}

void tn_lifecycle_halt(struct tn_lifecycle *lc)
{
	bool join;

	if (!lc)
		return;
	pthread_mutex_lock(&lc->lock);
	join = !lc->stopping;
	lc->stopping = true;
	pthread_cond_signal(&lc->cond);
	pthread_mutex_unlock(&lc->lock);
	if (join)
		pthread_join(lc->thread, NULL);
}

void tn_lifecycle_stop(struct tn_lifecycle *lc)
{
	if (!lc)
		return;
	tn_lifecycle_halt(lc);
	while (lc->head) {
		struct job *j = lc->head;

		lc->head = j->next;
		job_free(j);
	}
	free(lc->drains);
	pthread_cond_destroy(&lc->cond);
	pthread_mutex_destroy(&lc->lock);
	free(lc);
}

/* ------------------------------------------------------------ requests */

/* Config checked against the cluster's distribution (when it has one). */
static int check_config(struct tn_server *srv, const char *dist, json_t *config,
			struct tn_error *err)
{
	const char *key;
	json_t *value;

	if (dist)
		return tn_ingest_check_config_for(srv->store, dist, config, "config", err);
	json_object_foreach(config, key, value)
	{
		if (!json_is_object(value))
			return tn_fail(err, TN_E_INVALID, "config.%.*s: must be an object",
				       TN_SHOW_MAX, key);
	}
	return 0;
}

static int need_worker(struct tn_server *srv, struct tn_error *err)
{
	if (!srv->lifecycle || !srv->providers)
		return tn_fail(err, TN_E_UNAVAILABLE,
			       "this server runs no provider worker: targets cannot be created or "
			       "removed here");
	return 0;
}

int tn_lifecycle_create(struct tn_server *srv, const char *cluster, const char *provider, int count,
			json_t *config, const char *actor, json_t **out, struct tn_error *err)
{
	struct tn_lifecycle *lc = srv->lifecycle;
	struct tn_provider *p = NULL;
	json_t *row = NULL, *items = json_array();
	struct job *jobs[TN_TARGETS_CREATE_MAX] = {0};
	const char *dist;
	bool in_tx = false;
	size_t queued;
	int rc;

	if ((rc = need_worker(srv, err)))
		goto out;
	if (count < 1 || count > TN_TARGETS_CREATE_MAX) {
		rc = tn_fail(err, TN_E_INVALID, "count: %d is not 1 to %d", count,
			     TN_TARGETS_CREATE_MAX);
		goto out;
	}
	if ((rc = tn_store_cluster_get(srv->store, cluster, &row, err)))
		goto out;
	if (!provider)
		provider = str(row, "provider") ? str(row, "provider") : TN_PROVIDER_DEFAULT;
	dist = str(json_object_get(row, "revision"), "distribution");
	if ((rc = tn_providers_get(srv->providers, provider, &p, err)) ||
	    (config && (rc = check_config(srv, dist, config, err))))
		goto out;
	pthread_mutex_lock(&lc->lock);
	queued = lc->njobs;
	pthread_mutex_unlock(&lc->lock);
	if (queued + (size_t)count > JOBS_MAX) {
		rc = tn_fail(err, TN_E_UNAVAILABLE,
			     "%zu provider jobs are queued already; try again later", queued);
		goto out;
	}
	/* Records and tokens all or none, before any boot: whatever the
	 * timing, the agent enrolls into its own record. */
	if ((rc = tn_store_begin(srv->store, err)))
		goto out;
	in_tx = true;
	for (int i = 0; i < count; i++) {
		struct tn_store_target_spec spec = {
		    .cluster = cluster, .provider = provider, .config = config};
		json_t *t = NULL;

		if ((rc = tn_store_target_create(srv->store, &spec, &t, err)))
			goto out;
		json_array_append_new(items, t);
		jobs[i] = job_new(JOB_BOOT, str(t, "id"));
		if ((rc = bound_token(lc, str(t, "id"), actor, &jobs[i]->token, err)))
			goto out;
	}
	if ((rc = tn_store_commit(srv->store, err)))
		goto out;
	in_tx = false;
	pthread_mutex_lock(&lc->lock);
	for (int i = 0; i < count; i++) {
		push_locked(lc, jobs[i]);
		jobs[i] = NULL;
	}
	pthread_mutex_unlock(&lc->lock);
	*out = json_incref(items);
out:
	if (in_tx)
		tn_store_rollback(srv->store);
	for (int i = 0; i < TN_TARGETS_CREATE_MAX; i++)
		job_free(jobs[i]);
	json_decref(items);
	json_decref(row);
	return rc;
}

int tn_lifecycle_copy(struct tn_server *srv, const char *id, const char *actor, json_t **out,
		      struct tn_error *err)
{
	json_t *t = NULL, *items = NULL;
	const char *provider;
	int rc;

	if ((rc = need_worker(srv, err)) || (rc = tn_store_target_get(srv->store, id, &t, err)))
		goto out;
	provider = str(t, "provider");
	/* A node installed by hand has no provider to boot its like: the
	 * cluster's boots the copy. */
	if (provider && strcmp(provider, "manual") == 0)
		provider = NULL;
	if ((rc = tn_lifecycle_create(srv, str(t, "cluster"), provider, 1,
				      json_object_size(json_object_get(t, "config"))
					  ? json_object_get(t, "config")
					  : NULL,
				      actor, &items, err)))
		goto out;
	*out = json_incref(json_array_get(items, 0));
out:
	json_decref(items);
	json_decref(t);
	return rc;
}

int tn_lifecycle_remove(struct tn_server *srv, const char *id, bool force, json_t **out,
			struct tn_error *err)
{
	struct tn_lifecycle *lc = srv->lifecycle;
	struct tn_store_doc doc = {0};
	bool has_agent, terminate_now;
	int rc;

	if ((rc = need_worker(srv, err)) || (rc = tn_store_doc_get(srv->store, id, &doc, err)))
		goto out;
	if (strcmp(doc.state, "removed") == 0) {
		rc = tn_fail(err, TN_E_CONFLICT, "target %s is removed already", id);
		goto out;
	}
	/* Nothing to drain on a node whose agent never enrolled. */
	has_agent = strcmp(doc.state, "provisioning") != 0 && strcmp(doc.state, "failed") != 0;
	terminate_now = force || !has_agent;
	if (strcmp(doc.state, "draining") != 0) {
		struct tn_doc_change ch = {.state = "draining"};

		if ((rc = tn_documents_change(srv, id, &ch, err)))
			goto out;
		drain_set(lc, id, tn_clock_ms() + lc->drain_timeout_s * 1000ull);
	}
	if (terminate_now)
		enqueue_terminate(lc, id, true);
	/* out of its load balancer's backend first of all */
	tn_lbsync_wake(srv->lbsync);
	rc = tn_store_target_get(srv->store, id, out, err);
out:
	tn_store_doc_clear(&doc);
	return rc;
}

int tn_lifecycle_configure(struct tn_server *srv, const char *id, json_t *config, json_t **out,
			   char **release_id, struct tn_error *err)
{
	struct tn_store_doc doc = {0};
	json_t *row = NULL, *rollout = NULL, *release = NULL, *rev;
	const char *dist;
	bool in_tx = false;
	int rc;

	if (release_id)
		*release_id = NULL;
	if ((rc = tn_store_doc_get(srv->store, id, &doc, err)))
		goto out;
	if (strcmp(doc.state, "draining") == 0 || strcmp(doc.state, "removed") == 0 ||
	    strcmp(doc.state, "failed") == 0) {
		rc = tn_fail(err, TN_E_CONFLICT, "target %s is %s: its config can no longer change",
			     id, doc.state);
		goto out;
	}
	rc = tn_store_rollout_for_target(srv->store, id, &rollout, err);
	if (rc == 0) {
		rc = tn_fail(err, TN_E_CONFLICT,
			     "target %s is part of rollout %s (%s): change its config once the "
			     "rollout has ended",
			     id, str(rollout, "rollout"), str(rollout, "state"));
		goto out;
	}
	if (rc != -(int)TN_E_NOT_FOUND)
		goto out;
	tn_error_clear(err);
	if ((rc = tn_store_cluster_get(srv->store, doc.cluster, &row, err)))
		goto out;
	rev = json_object_get(row, "revision");
	dist = str(rev, "distribution");
	if ((rc = check_config(srv, dist, config, err)))
		goto out;
	if ((rc = tn_store_begin(srv->store, err)))
		goto out;
	in_tx = true;
	{
		struct tn_store_target_update u = {.config = config};

		if ((rc = tn_store_target_update(srv->store, id, &u, err)))
			goto out;
	}
	/* A node that runs (or will run) the cluster's release switches to
	 * this one at once; one still booting gets it at enrollment. */
	if (dist && strcmp(doc.state, "provisioning") != 0) {
		struct tn_doc_change ch = {.set_run = true};

		if ((rc = tn_release_build(srv, dist, json_object_get(rev, "config"), config,
					   &release, err)))
			goto out;
		ch.run = release;
		if ((rc = tn_documents_change(srv, id, &ch, err)))
			goto out;
		if (release_id)
			*release_id = xstrdup(str(release, "id"));
	}
	if ((rc = tn_store_commit(srv->store, err)))
		goto out;
	in_tx = false;
	rc = tn_store_target_get(srv->store, id, out, err);
out:
	if (in_tx)
		tn_store_rollback(srv->store);
	if (rc && release_id) {
		free(*release_id);
		*release_id = NULL;
	}
	json_decref(release);
	json_decref(rollout);
	json_decref(row);
	tn_store_doc_clear(&doc);
	return rc;
}

void tn_lifecycle_on_report(struct tn_server *srv, const char *target_id,
			    const struct tn_agent_report *r)
{
	struct tn_store_doc doc = {0};
	struct tn_error err;

	if (!srv->lifecycle || !r->phase || strcmp(r->phase, "remove") != 0 ||
	    strcmp(r->state, "succeeded") != 0)
		return;
	if (tn_store_doc_get(srv->store, target_id, &doc, &err) == 0 &&
	    strcmp(doc.state, "draining") == 0) {
		tn_log(TN_LOG_INFO, "lifecycle", "drained", "{s:s}", "target", target_id);
		enqueue_terminate(srv->lifecycle, target_id, true);
	}
	tn_store_doc_clear(&doc);
}

void tn_lifecycle_view(json_t *t)
{
	const char *state = str(t, "state");
	time_t seen = parse_time(str(t, "last_seen"));

	if (!state || seen == (time_t)-1)
		return;
	if ((strcmp(state, "enrolled") == 0 || strcmp(state, "running") == 0 ||
	     strcmp(state, "draining") == 0) &&
	    time(NULL) - seen > TN_STALE_AFTER_S)
		json_object_set_new(t, "health", json_string("stale"));
}
