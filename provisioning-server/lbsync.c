/* lbsync.c - see lbsync.h. */
#include "lbsync.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "events.h"
#include "lb.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

#define INTERVAL_DEFAULT_MS 2000
#define DRAIN_TIMEOUT_DEFAULT_S 60
#define WOKEN_GAP_MS 100   /* rounds asked for by wakes, at most this often */
#define CLUSTERS_MAX 4096  /* statuses and drains kept, bounded */
#define DRAINS_MAX 10000
#define PAGES_MAX 1000     /* of TN_STORE_LIMIT_MAX items */

static const struct tn_principal system_actor = {TN_ROLE_ADMIN, "tender-server"};

/* A member being drained: when it began. */
struct drain {
	char *cluster, *name;
	uint64_t since_ms;
};

struct status {
	char *cluster;
	char *state; /* ok, unreachable, failing */
	char *message;
	time_t checked;
	size_t members;
	bool seen; /* in the last round (a deleted cluster's is dropped) */
};

struct tn_lbsync {
	struct tn_server *srv;
	unsigned interval_ms, drain_timeout_s;
	pthread_t thread;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;
	bool stopping, woken;
	struct status *st;
	size_t nst;
	struct drain *drains; /* the worker's alone: no lock needed */
	size_t ndrains;
};

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------ drains */

static struct drain *drain_find(struct tn_lbsync *s, const char *cluster, const char *name)
{
	for (size_t i = 0; i < s->ndrains; i++)
		if (strcmp(s->drains[i].cluster, cluster) == 0 &&
		    strcmp(s->drains[i].name, name) == 0)
			return &s->drains[i];
	return NULL;
}

static void drain_drop(struct tn_lbsync *s, struct drain *d)
{
	free(d->cluster);
	free(d->name);
	*d = s->drains[--s->ndrains];
}

/* ------------------------------------------------------------ statuses */

/* Records what a round found; logs and audits a change of state. */
static void status_set(struct tn_lbsync *s, const char *cluster, const char *state,
		       const char *message, size_t members)
{
	struct status *st = NULL;
	bool changed;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nst; i++)
		if (strcmp(s->st[i].cluster, cluster) == 0)
			st = &s->st[i];
	if (!st && s->nst < CLUSTERS_MAX) {
		s->st = xrealloc(s->st, (s->nst + 1) * sizeof *s->st);
		st = &s->st[s->nst++];
		*st = (struct status){.cluster = xstrdup(cluster), .state = xstrdup("ok")};
	}
	if (!st) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	changed = strcmp(st->state, state) != 0;
	free(st->state);
	free(st->message);
	st->state = xstrdup(state);
	st->message = message ? xstrdup(message) : NULL;
	st->checked = time(NULL);
	st->members = members;
	st->seen = true;
	pthread_mutex_unlock(&s->lock);
	if (!changed)
		return;
	if (strcmp(state, "ok") == 0) {
		tn_log(TN_LOG_INFO, "lb", "reachable", "{s:s}", "cluster", cluster);
		tn_audit(s->srv, &system_actor, "lb.reachable", "cluster", cluster, "ok", NULL);
	} else {
		json_t *detail = json_pack("{s:s}", "message", message ? message : "");

		tn_log(TN_LOG_WARN, "lb", state, "{s:s, s:s?}", "cluster", cluster, "message",
		       message);
		tn_audit(s->srv, &system_actor, strcmp(state, "unreachable") == 0 ? "lb.unreachable"
										    : "lb.failing",
			 "cluster", cluster, "failed", detail);
		json_decref(detail);
	}
}

json_t *tn_lbsync_status(struct tn_lbsync *s, const char *cluster)
{
	json_t *out = NULL;
	char when[TN_STORE_TIME_LEN + 1];

	if (!s)
		return NULL;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nst; i++) {
		struct status *st = &s->st[i];

		if (strcmp(st->cluster, cluster) != 0)
			continue;
		tn_store_time_format(st->checked, when);
		out = json_pack("{s:s, s:s?, s:s, s:I}", "state", st->state, "message", st->message,
				"checked", when, "members", (json_int_t)st->members);
	}
	pthread_mutex_unlock(&s->lock);
	return out;
}

/* ------------------------------------------------------------ a round */

/* The member a target should be, or false when it should not be one. */
static bool wanted(json_t *t, struct tn_lb_want *w)
{
	const char *state = str(t, "state");
	json_t *serves = json_object_get(t, "serves_port");
	json_t *agent = json_object_get(t, "agent_port");

	if (!state || (strcmp(state, "enrolled") != 0 && strcmp(state, "running") != 0) ||
	    !str(t, "address") || !json_is_integer(serves) || !json_is_integer(agent))
		return false;
	*w = (struct tn_lb_want){.name = str(t, "id"),
				 .address = str(t, "address"),
				 .port = (int)json_integer_value(serves),
				 .agent_port = (int)json_integer_value(agent)};
	return true;
}

/* The cluster's targets (all pages); caller-decref'd array, NULL on a
 * failure (logged). */
static json_t *targets_of(struct tn_lbsync *s, const char *cluster)
{
	json_t *all = json_array();
	char *after = NULL;

	for (int page = 0; page < PAGES_MAX; page++) {
		json_t *list = NULL;
		struct tn_error err;

		if (tn_store_target_list(s->srv->store, cluster, NULL, TN_STORE_LIMIT_MAX, after,
					 &list, &err) != 0) {
			tn_log(TN_LOG_WARN, "lb", "list_failed", "{s:s, s:s}", "cluster", cluster,
			       "message", err.message);
			json_decref(all);
			all = NULL;
			break;
		}
		json_array_extend(all, json_object_get(list, "items"));
		free(after);
		after = str(list, "next") ? xstrdup(str(list, "next")) : NULL;
		json_decref(list);
		if (!after)
			break;
	}
	free(after);
	return all;
}

static void audit_member(struct tn_lbsync *s, const char *action, const char *cluster,
			 const char *name, const char *addr, long sessions)
{
	json_t *detail = json_pack("{s:s, s:s?, s:I}", "cluster", cluster, "addr", addr,
				   "sessions", (json_int_t)sessions);

	tn_log(TN_LOG_INFO, "lb", action, "{s:s, s:s, s:s?}", "cluster", cluster, "target", name,
	       "addr", addr);
	tn_audit(s->srv, &system_actor, action, "target", name, "ok", detail);
	json_decref(detail);
}

/* Drains a member that should not be there, and deletes it once idle or
 * out of time.  Returns 0 or the driver's error. */
static int leave(struct tn_lbsync *s, const struct tn_lb_ops *ops, json_t *lb,
		 const char *cluster, const struct tn_lb_member *m, struct tn_error *err)
{
	struct drain *d = drain_find(s, cluster, m->name);
	uint64_t now = tn_clock_ms();
	int rc;

	if (!d) {
		if (s->ndrains == DRAINS_MAX)
			return 0; /* the next rounds get to it */
		if (!m->draining && (rc = ops->drain(lb, m->name, err)))
			return rc;
		s->drains = xrealloc(s->drains, (s->ndrains + 1) * sizeof *s->drains);
		d = &s->drains[s->ndrains++];
		*d = (struct drain){xstrdup(cluster), xstrdup(m->name), now};
		audit_member(s, "lb.member_draining", cluster, m->name, m->addr, m->sessions);
	}
	if (m->sessions > 0 && now - d->since_ms < s->drain_timeout_s * 1000ull)
		return 0;
	if ((rc = ops->remove(lb, m->name, err)))
		return rc;
	audit_member(s, "lb.member_removed", cluster, m->name, m->addr, m->sessions);
	drain_drop(s, d);
	return 0;
}

static void sync_cluster(struct tn_lbsync *s, json_t *cluster)
{
	const char *name = str(cluster, "name");
	json_t *lb = json_object_get(cluster, "lb");
	const struct tn_lb_ops *ops = tn_lb_driver(lb);
	struct tn_lb_member *members = NULL;
	size_t nmembers = 0, i, j;
	json_t *targets = NULL, *t;
	struct tn_error err = {0};
	int rc = 0;

	if (!ops || strcmp(ops->name, "none") == 0 || !(targets = targets_of(s, name)))
		return;
	if ((rc = ops->list(lb, &members, &nmembers, &err)))
		goto out;
	/* every target that should be a member is one, at its address */
	json_array_foreach(targets, i, t) {
		struct tn_lb_want w;
		char *addr;
		struct tn_lb_member *m = NULL;

		if (!wanted(t, &w))
			continue;
		for (j = 0; j < nmembers && !m; j++)
			if (strcmp(members[j].name, w.name) == 0)
				m = &members[j];
		addr = strchr(w.address, ':') ? xasprintf("[%s]:%d", w.address, w.port)
					       : xasprintf("%s:%d", w.address, w.port);
		if (m && strcmp(m->addr, addr) != 0) {
			/* moved (a new serves port): the old address serves
			 * nothing of this target any more */
			if ((rc = ops->remove(lb, m->name, &err)) == 0)
				audit_member(s, "lb.member_removed", name, m->name, m->addr,
					     m->sessions);
			m = NULL;
		}
		if (rc == 0 && !m && (rc = ops->add(lb, &w, &err)) == 0)
			audit_member(s, "lb.member_added", name, w.name, addr, 0);
		free(addr);
		if (rc)
			goto out;
	}
	/* every member that is not a wanted target leaves */
	for (j = 0; j < nmembers; j++) {
		struct tn_lb_want w;
		bool keep = false;

		json_array_foreach(targets, i, t) {
			if (strcmp(str(t, "id"), members[j].name) == 0) {
				keep = wanted(t, &w);
				break;
			}
		}
		if (!keep && (rc = leave(s, ops, lb, name, &members[j], &err)))
			goto out;
		if (keep) {
			struct drain *d = drain_find(s, name, members[j].name);

			if (d)
				drain_drop(s, d);
		}
	}
out:
	status_set(s, name, rc == 0 ? "ok" : err.code == TN_E_UNAVAILABLE ? "unreachable" : "failing",
		   rc == 0 ? NULL : err.message, nmembers);
	tn_lb_members_free(members, nmembers);
	json_decref(targets);
}

static void round_all(struct tn_lbsync *s)
{
	char *after = NULL;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nst; i++)
		s->st[i].seen = false;
	pthread_mutex_unlock(&s->lock);
	for (int page = 0; page < PAGES_MAX; page++) {
		json_t *list = NULL, *c;
		struct tn_error err;
		size_t i;

		if (tn_store_cluster_list(s->srv->store, TN_STORE_LIMIT_MAX, after, &list, &err) !=
		    0) {
			tn_log(TN_LOG_WARN, "lb", "list_failed", "{s:s}", "message", err.message);
			break;
		}
		json_array_foreach(json_object_get(list, "items"), i, c) sync_cluster(s, c);
		free(after);
		after = str(list, "next") ? xstrdup(str(list, "next")) : NULL;
		json_decref(list);
		if (!after)
			break;
	}
	free(after);
	/* clusters gone (or no longer balanced) keep no status */
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nst;) {
		if (s->st[i].seen) {
			i++;
			continue;
		}
		free(s->st[i].cluster);
		free(s->st[i].state);
		free(s->st[i].message);
		s->st[i] = s->st[--s->nst];
	}
	pthread_mutex_unlock(&s->lock);
}

static struct timespec in_ms(uint64_t ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static void *run(void *arg)
{
	struct tn_lbsync *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec gap, next;

		s->woken = false;
		pthread_mutex_unlock(&s->lock);
		round_all(s);
		pthread_mutex_lock(&s->lock);
		/* at least the gap between rounds, however often woken; then
		 * the interval, unless woken (a wake during the round or the
		 * gap counts) */
		gap = in_ms(WOKEN_GAP_MS);
		next = in_ms(s->interval_ms);
		while (!s->stopping && pthread_cond_timedwait(&s->cond, &s->lock, &gap) == 0)
			;
		while (!s->stopping && !s->woken &&
		       pthread_cond_timedwait(&s->cond, &s->lock, &next) == 0)
			;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct tn_lbsync *tn_lbsync_start(struct tn_server *srv, const struct tn_lbsync_config *cfg)
{
	struct tn_lbsync *s = xcalloc(1, sizeof *s);

	s->srv = srv;
	s->interval_ms = cfg && cfg->interval_ms ? cfg->interval_ms : INTERVAL_DEFAULT_MS;
	s->drain_timeout_s =
	    cfg && cfg->drain_timeout_s ? cfg->drain_timeout_s : DRAIN_TIMEOUT_DEFAULT_S;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_create(&s->thread, NULL, run, s);
	return s;
}

void tn_lbsync_wake(struct tn_lbsync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->woken = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void tn_lbsync_stop(struct tn_lbsync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	for (size_t i = 0; i < s->nst; i++) {
		free(s->st[i].cluster);
		free(s->st[i].state);
		free(s->st[i].message);
	}
	while (s->ndrains)
		drain_drop(s, &s->drains[0]);
	free(s->st);
	free(s->drains);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
