/* agent.c - see agent.h.
 *
 * One event loop, one piece of work at a time:
 *   IDLE         the current release runs (or nothing); a new document may
 *                start staging its `prepare` release in the background and,
 *                when its `run` differs from what runs, a switch.
 *   FETCHING     the `run` release is downloaded and staged before the switch.
 *   SWITCHING    bundles of the old release stop (reverse order), `current`
 *                moves, bundles of the new one start (dependency order).
 *   COMMITTING   every bundle must become healthy before its deadline_s.
 *   ROLLING_BACK the new release failed: stop it, go back to the previous
 *                one (data directories untouched), report why.
 *   ANNOUNCING   a commit or a rollback is done and the node answers ready:
 *                its report waits until the load balancer has heard that.
 *   REMOVING     the document says draining or removed: drain, stop.
 * The journal is written before each of these steps.
 *
 * Readiness (DESIGN §2 "Load balancer"): the agent answers HAProxy's
 * agent checks (agentcheck.h) with drain until its release runs healthy,
 * ready once it does, drain again from the start of a switch, ready after
 * the commit or a healthy rollback, and maint once removed.  When the
 * document names a load balancer, a switch or a removal first waits until
 * HAProxy has heard "drain" and the connections to the serves port have
 * ended, each wait bounded; without one (lb null) nothing waits. */
#include "agent.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agentcheck.h"
#include "config.h"
#include "desired.h"
#include "fetch.h"
#include "fsutil.h"
#include "journal.h"
#include "log.h"
#include "probe.h"
#include "release.h"
#include "sign.h"
#include "supervisor.h"
#include "tcpconns.h"
#include "xalloc.h"

#define BODY_MAX (1u << 20)
#define POLL_BACKOFF_MIN_MS 1000
#define POLL_BACKOFF_MAX_MS 30000
#define REPORT_QUEUE_MAX 64
#define PROGRESS_EVERY_MS 1000
#define KEEP_RELEASES 2
/* The load balancer: how long a switch waits for HAProxy to hear a new
 * answer (a few of its agent-inter; it goes on after that, and says so),
 * how often it looks at the connections still open, and how long it waits
 * for the agent port again when it could not listen on it. */
#define LB_HEARD_WAIT_MS 5000
#define LB_CONNS_EVERY_MS 100
#define LB_LISTEN_RETRY_MS 5000
#define SERVES_PORTS_MAX 16

enum work {
	W_IDLE,
	W_FETCHING,
	W_SWITCHING,
	W_COMMITTING,
	W_ROLLING_BACK,
	W_ANNOUNCING,
	W_REMOVING,
};

/* One bundle's health tracker and what its callbacks need. */
struct slot {
	struct tn_agent *a;
	const char *name; /* borrowed from the release */
	struct tn_health *h;
	bool ok;
};

struct buf {
	char *p;
	size_t len;
	bool over;
};

struct tn_agent {
	struct tn_loop *loop;
	struct tn_agent_options opts;
	char *state_dir;
	char *address;
	struct tn_journal j;
	struct tn_key *server_key;
	struct tn_fetch *fetch;
	struct tn_release_env env;
	char *auth_header;

	/* the long-poll */
	CURL *poll;
	struct curl_slist *poll_headers;
	struct buf poll_body;
	char *poll_sig;
	char *poll_endorse; /* the Tender-Key-Endorsement header, or NULL */
	char poll_err[CURL_ERROR_SIZE]; /* curl's reason for a failed poll */
	uint64_t poll_timer;
	unsigned poll_backoff_ms;
	struct tn_desired *doc; /* the last accepted document */

	/* reports, sent one at a time in order */
	json_t *queue;
	CURL *report;
	struct curl_slist *report_headers;
	char *report_body;
	uint64_t report_timer;
	unsigned report_backoff_ms;

	/* what runs */
	struct tn_release *cur;
	struct tn_supervisor *sup;
	struct slot *slots; /* a health tracker per bundle of cur that runs */
	size_t nslots, healthy;
	bool all_healthy;

	/* work in progress */
	enum work work;
	struct tn_desired_release *to;   /* the release being switched to */
	struct tn_release *from;         /* the release to go back to */
	struct tn_fetch_job *run_job;
	struct tn_fetch_job *prep_job;
	struct tn_desired_release *prep; /* being staged in the background */
	int64_t prep_generation;         /* of the document that asked for it */
	char *prepared;                  /* the last prepare reported done */
	char *prep_failed;               /* the last prepare reported failed ... */
	int64_t prep_failed_generation;  /* ... for this generation */
	uint64_t last_progress_ms;
	char *rollback_message;
	json_t *rollback_tails;
	bool rollback_ok;
	bool stopped_for_state;          /* draining/removed: bundles stopped */

	/* readiness, answered on the agent port */
	struct tn_agentcheck *ac;        /* NULL while the port cannot be had */
	int ac_port;                     /* the port to answer on */
	enum tn_ac_state ac_state;       /* the answer, kept while ac is NULL */
	uint64_t ac_timer;               /* a retry of the listener */
	/* a drain or an announcement in progress, then lb_then(a) */
	tn_sup_done_fn lb_then;
	uint64_t lb_timer;
	uint64_t lb_started_ms;          /* when the wait began */
	uint64_t lb_conns_ms;            /* when the wait for connections began */
	bool lb_unknown_logged;
};

static void reconcile(struct tn_agent *a);
static void poll_soon(struct tn_agent *a, unsigned delay_ms);
static void start_health(struct tn_agent *a, bool commit);
static void rollback(struct tn_agent *a, const char *message, const char *bundle);
static void lb_idle(struct tn_agent *a);

/* ------------------------------------------------------------ helpers */

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * n;

	if (b->len + len > BODY_MAX) {
		b->over = true;
		return 0;
	}
	b->p = xrealloc(b->p, b->len + len + 1);
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static void buf_reset(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static unsigned jitter(unsigned max_ms)
{
	unsigned r;

	tn_random_bytes(&r, sizeof r);
	return max_ms ? r % max_ms : 0;
}

static void save_journal(struct tn_agent *a)
{
	struct tn_error err;

	/* A journal that cannot be written is a broken disk: say so loudly;
	 * the step goes on (refusing it would leave a mix of versions). */
	if (tn_journal_save(a->state_dir, &a->j, &err) != 0)
		tn_log(TN_LOG_ERROR, "agent", "journal_failed", "{s:s}", "message", err.message);
}

static const char *cur_id(const struct tn_agent *a)
{
	return a->cur ? a->cur->id : NULL;
}

/* The distinct serves ports of r's bundles (at most max, in bundle order)
 * into ports; how many there are. */
static size_t serves_ports(const struct tn_release *r, int *ports, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; r && i < r->n_bundles && n < max; i++) {
		int p = r->bundles[i].serves_port;
		bool seen = false;

		for (size_t k = 0; k < n; k++)
			seen |= ports[k] == p;
		if (p > 0 && !seen)
			ports[n++] = p;
	}
	return n;
}

/* ------------------------------------------------------------ reports */

static json_t *bundle_states(struct tn_agent *a)
{
	json_t *list = json_array();

	for (size_t i = 0; a->sup && i < tn_supervisor_count(a->sup); i++) {
		struct tn_bundle_info info;

		if (!tn_supervisor_get(a->sup, i, &info))
			continue;
		json_t *b = json_pack("{s:s, s:s, s:i}", "name", info.name, "state",
				      tn_bundle_state_name(info.state), "restarts",
				      (int)info.restarts);

		if (info.reason[0])
			json_object_set_new(b, "reason", json_string(info.reason));
		json_array_append_new(list, b);
	}
	return list;
}

static const char *health_word(struct tn_agent *a)
{
	if (!a->cur)
		return "unknown";
	return a->all_healthy ? "healthy" : "unhealthy";
}

static void send_next_report(struct tn_agent *a);

static void report_done(void *ctx, CURL *easy, CURLcode result)
{
	struct tn_agent *a = ctx;
	long status = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (result == CURLE_OK && status >= 200 && status < 300) {
		json_array_remove(a->queue, 0);
		a->report_backoff_ms = 0;
		send_next_report(a);
		return;
	}
	if (result == CURLE_OK && status >= 400 && status < 500 && status != 401 && status != 429) {
		/* The server refused this report for good: drop it, not the rest. */
		tn_log(TN_LOG_WARN, "agent", "report_refused", "{s:i}", "status", (int)status);
		json_array_remove(a->queue, 0);
		send_next_report(a);
		return;
	}
	a->report_backoff_ms = a->report_backoff_ms ? a->report_backoff_ms * 2 : 500;
	if (a->report_backoff_ms > POLL_BACKOFF_MAX_MS)
		a->report_backoff_ms = POLL_BACKOFF_MAX_MS;
	a->report_timer = tn_loop_timer(a->loop, a->report_backoff_ms + jitter(500),
					(tn_loop_timer_fn)send_next_report, a);
}

static void send_next_report(struct tn_agent *a)
{
	char *url;

	a->report_timer = 0;
	free(a->report_body);
	a->report_body = NULL;
	if (json_array_size(a->queue) == 0)
		return;
	a->report_body = json_dumps(json_array_get(a->queue, 0), JSON_COMPACT);
	url = xasprintf("%s/agent/v1/report", a->j.server);
	curl_easy_reset(a->report);
	curl_easy_setopt(a->report, CURLOPT_URL, url);
	curl_easy_setopt(a->report, CURLOPT_POSTFIELDS, a->report_body);
	curl_easy_setopt(a->report, CURLOPT_HTTPHEADER, a->report_headers);
	curl_easy_setopt(a->report, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(a->report, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(a->report, CURLOPT_NOSIGNAL, 1L);
	if (a->opts.cacert)
		curl_easy_setopt(a->report, CURLOPT_CAINFO, a->opts.cacert);
	tn_loop_transfer(a->loop, a->report, report_done, a);
	free(url);
}

/* Queues a report; phase NULL makes a status report (health, bundles).
 * extra (may be NULL) is borrowed: its keys are copied into the report. */
static void report(struct tn_agent *a, const char *phase, const char *state, const char *release,
		   const char *message, json_t *extra)
{
	json_t *r = json_pack("{s:I, s:s, s:o}", "generation",
			      (json_int_t)(a->doc ? a->doc->generation : a->j.generation), "health",
			      health_word(a), "bundles", bundle_states(a));
	bool idle = json_array_size(a->queue) == 0;

	if (phase) {
		json_object_set_new(r, "phase", json_string(phase));
		json_object_set_new(r, "state", json_string(state));
	}
	if (release)
		json_object_set_new(r, "release", json_string(release));
	if (message)
		json_object_set_new(r, "message", json_string(message));
	{
		/* The load balancer's member for this node is address:serves_port
		 * of the release that runs (the first, when several serve). */
		int port;

		if (serves_ports(a->cur, &port, 1) == 1)
			json_object_set_new(r, "serves_port", json_integer(port));
	}
	if (extra)
		json_object_update(r, extra);
	/* Progress reports are the first to go when the server is away. */
	while (json_array_size(a->queue) >= REPORT_QUEUE_MAX)
		json_array_remove(a->queue, json_array_size(a->queue) > 1 ? 1 : 0);
	json_array_append_new(a->queue, r);
	tn_log(TN_LOG_INFO, "agent", "report", "{s:s?, s:s?, s:s?, s:s?}", "phase", phase, "state",
	       state, "release", release, "message", message);
	if (idle && !a->report_timer)
		send_next_report(a);
}

/* ------------------------------------------------------------ running */

static void free_health(struct tn_agent *a)
{
	for (size_t i = 0; i < a->nslots; i++)
		tn_health_free(a->slots[i].h);
	free(a->slots);
	a->slots = NULL;
	a->nslots = 0;
	a->healthy = 0;
	a->all_healthy = false;
}

static void sup_event(void *ctx, enum tn_sup_event ev, const struct tn_bundle_info *info)
{
	struct tn_agent *a = ctx;

	tn_log(ev == TN_SUP_FAILED ? TN_LOG_WARN : TN_LOG_INFO, "agent", tn_sup_event_name(ev),
	       "{s:s, s:i, s:i, s:s}", "bundle", info->name, "pid", (int)info->pid, "restarts",
	       (int)info->restarts, "reason", info->reason);
	if (ev == TN_SUP_FAILED && (a->work == W_COMMITTING || a->work == W_ROLLING_BACK)) {
		char *msg = xasprintf("bundle %s: %s", info->name, info->reason);

		rollback(a, msg, info->name);
		free(msg);
		return;
	}
	if (ev == TN_SUP_FAILED || (ev == TN_SUP_STARTED && info->restarts > 0))
		report(a, NULL, NULL, cur_id(a), NULL, NULL);
}

static bool has_bundle(const struct tn_release *r, const char *name)
{
	for (size_t i = 0; r && i < r->n_bundles; i++)
		if (r->bundles[i].has_run && strcmp(r->bundles[i].name, name) == 0)
			return true;
	return false;
}

/* Builds the supervisor for release r (adopting what an earlier agent left
 * running under the same bundle names).  The bundles of also (may be NULL)
 * that r lacks come last, so that a stop-all stops them first (they may
 * depend on bundles of r's names): a supervisor of both releases, only
 * ever made to stop them all. */
static int make_supervisor_of(struct tn_agent *a, struct tn_release *r,
			      const struct tn_release *also, struct tn_error *err)
{
	struct tn_supervisor_config cfg = {
		.state_dir = a->state_dir,
		.backoff_base_ms = a->opts.backoff_base_ms,
		.restart_limit = a->opts.restart_limit,
		.restart_window_ms = a->opts.restart_window_ms,
	};
	size_t max = r->n_bundles + (also ? also->n_bundles : 0);
	struct tn_bundle_spec *specs = xcalloc(max ? max : 1, sizeof *specs);
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < r->n_bundles; i++) {
		const struct tn_release_bundle *b = &r->bundles[i];

		if (!b->has_run)
			continue;
		specs[n++] = (struct tn_bundle_spec){b->name, (const char *const *)b->argv, b->dir,
						     NULL, b->stop_timeout_s};
	}
	for (size_t i = 0; also && i < also->n_bundles; i++) {
		const struct tn_release_bundle *b = &also->bundles[i];

		if (!b->has_run || has_bundle(r, b->name))
			continue;
		specs[n++] = (struct tn_bundle_spec){b->name, (const char *const *)b->argv, b->dir,
						     NULL, b->stop_timeout_s};
	}
	rc = tn_supervisor_new(a->loop, &cfg, specs, n, sup_event, a, &a->sup, err);
	free(specs);
	return rc;
}

static int make_supervisor(struct tn_agent *a, struct tn_release *r, struct tn_error *err)
{
	return make_supervisor_of(a, r, NULL, err);
}

static pid_t bundle_pid(void *ctx)
{
	struct slot *sl = ctx;
	struct tn_bundle_info info;

	return sl->a->sup && tn_supervisor_find(sl->a->sup, sl->name, &info) ? info.pid : 0;
}

static void commit_done(struct tn_agent *a);
static void rollback_healthy(struct tn_agent *a);

static void health_event(void *ctx, enum tn_health_event ev, const char *message)
{
	struct slot *sl = ctx;
	struct tn_agent *a = sl->a;

	switch (ev) {
	case TN_HEALTH_COMMIT_OK:
	case TN_HEALTH_HEALTHY:
		if (!sl->ok) {
			sl->ok = true;
			a->healthy++;
		}
		if (a->sup)
			tn_supervisor_set_active(a->sup, sl->name);
		break;
	case TN_HEALTH_COMMIT_FAIL:
	case TN_HEALTH_UNHEALTHY:
		if (sl->ok) {
			sl->ok = false;
			a->healthy--;
		}
		break;
	}
	a->all_healthy = a->healthy == a->nslots;
	if (ev == TN_HEALTH_COMMIT_FAIL && a->work == W_COMMITTING) {
		char *msg = xasprintf("bundle %s: %s", sl->name, message ? message : "not healthy");

		rollback(a, msg, sl->name);
		free(msg);
		return;
	}
	if (a->work == W_COMMITTING && a->all_healthy) {
		commit_done(a);
		return;
	}
	if (a->work == W_ROLLING_BACK && (a->all_healthy || ev == TN_HEALTH_COMMIT_FAIL)) {
		/* Back and healthy; or the release we went back to fails too. */
		if (a->all_healthy)
			rollback_healthy(a);
		else
			rollback(a, message, sl->name);
		return;
	}
	if (a->work == W_IDLE && (ev == TN_HEALTH_HEALTHY || ev == TN_HEALTH_UNHEALTHY))
		report(a, NULL, NULL, cur_id(a), message, NULL);
	lb_idle(a);
}

/* Health trackers for every bundle of cur that runs; commit mode gives each
 * its deadline_s. */
static void start_health(struct tn_agent *a, bool commit)
{
	struct tn_error err;

	free_health(a);
	a->slots = xcalloc(a->cur->n_bundles ? a->cur->n_bundles : 1, sizeof *a->slots);
	for (size_t i = 0; i < a->cur->n_bundles; i++) {
		const struct tn_release_bundle *b = &a->cur->bundles[i];
		struct slot *sl = &a->slots[a->nslots];
		struct tn_probe_spec spec = {0};
		char port[16];

		if (!b->has_run)
			continue;
		sl->a = a;
		sl->name = b->name;
		snprintf(port, sizeof port, "%d", b->probe_port);
		spec.kind = b->probe;
		spec.http_path = b->http_path;
		spec.port = port;
		spec.exec = (const char *const *)b->exec;
		spec.cwd = b->dir;
		spec.interval_ms = b->interval_ms;
		spec.timeout_ms = b->timeout_ms;
		spec.healthy_after = b->healthy_after;
		spec.deadline_ms = (uint64_t)b->deadline_s * 1000;
		spec.up = bundle_pid;
		spec.up_ctx = sl;
		if (tn_health_new(a->loop, &spec, commit, health_event, sl, &sl->h, &err) != 0) {
			tn_log(TN_LOG_ERROR, "agent", "health_failed", "{s:s, s:s}", "bundle", b->name,
			       "message", err.message);
			continue;
		}
		a->nslots++;
	}
	a->all_healthy = a->nslots == 0;
}

/* ------------------------------------------------------------ releases */

static void prune(struct tn_agent *a)
{
	const char *protect[2];
	size_t n = 0;
	struct tn_error err;

	if (a->cur)
		protect[n++] = a->cur->id;
	if (a->doc && a->doc->prepare)
		protect[n++] = a->doc->prepare->id;
	if (tn_release_prune(a->state_dir, KEEP_RELEASES, protect, n, &err) != 0)
		tn_log(TN_LOG_WARN, "agent", "prune_failed", "{s:s}", "message", err.message);
	{
		/* Blobs stay for every release still on disk. */
		char **ids = NULL;
		size_t nids = 0;
		struct tn_desired_release **keep = NULL;
		size_t nkeep = 0;

		if (tn_release_list(a->state_dir, &ids, &nids, &err) == 0) {
			keep = xcalloc(nids + 2, sizeof *keep);
			for (size_t i = 0; i < nids; i++)
				if (tn_release_spec(a->state_dir, ids[i], &keep[nkeep], &err) == 0)
					nkeep++;
			if (a->doc && a->doc->prepare)
				keep[nkeep++] = tn_desired_release_ref(a->doc->prepare);
			if (a->doc && a->doc->run)
				keep[nkeep++] = tn_desired_release_ref(a->doc->run);
			if (tn_fetch_prune(a->fetch, (const struct tn_desired_release *const *)keep,
					   nkeep, &err) != 0)
				tn_log(TN_LOG_WARN, "agent", "prune_failed", "{s:s}", "message",
				       err.message);
			for (size_t i = 0; i < nkeep; i++)
				tn_desired_release_unref(keep[i]);
			for (size_t i = 0; i < nids; i++)
				free(ids[i]);
		}
		free(keep);
		free(ids);
	}
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	struct tn_agent *a = ctx;
	uint64_t now = tn_loop_now_ms();
	const char *id = a->work == W_FETCHING && a->to ? a->to->id : a->prep ? a->prep->id : NULL;
	json_t *extra;

	if (now - a->last_progress_ms < PROGRESS_EVERY_MS)
		return;
	a->last_progress_ms = now;
	extra = json_pack("{s:{s:I, s:I}}", "progress", "done", (json_int_t)done, "total",
			  (json_int_t)total);
	report(a, "prepare", "progress", id, NULL, extra); /* borrows extra */
	json_decref(extra);
}

/* Stages a fetched release; *out (may be NULL) gets it. */
static int stage(struct tn_agent *a, struct tn_desired_release *r, struct tn_release **out,
		 struct tn_error *err)
{
	struct tn_release *rel = NULL;
	int rc = tn_release_stage(a->state_dir, r, &a->env, &rel, err);

	if (rc == 0 && out)
		*out = rel;
	else
		tn_release_free(rel);
	return rc;
}

static void prepared(void *ctx, int rc, const struct tn_error *ferr)
{
	struct tn_agent *a = ctx;
	struct tn_desired_release *r = a->prep;
	struct tn_error err;

	a->prep_job = NULL;
	a->prep = NULL;
	if (rc == 0)
		rc = stage(a, r, NULL, &err);
	else
		err = *ferr;
	if (rc == 0) {
		tn_journal_set(&a->prepared, r->id);
		report(a, "prepare", "succeeded", r->id, NULL, NULL);
	} else {
		/* Not again for this generation (the fetch has retried what
		 * was worth retrying): a new document is an explicit retry. */
		tn_journal_set(&a->prep_failed, r->id);
		a->prep_failed_generation = a->prep_generation;
		report(a, "prepare", "failed", r->id, err.message, NULL);
	}
	tn_desired_release_unref(r);
	reconcile(a);
}

/* Stages doc->prepare in the background, so that approval only switches. */
static void maybe_prepare(struct tn_agent *a)
{
	struct tn_desired_release *p = a->doc ? a->doc->prepare : NULL;

	if (!p || a->prep_job || (a->prepared && strcmp(a->prepared, p->id) == 0))
		return;
	if (a->prep_failed && strcmp(a->prep_failed, p->id) == 0 &&
	    a->prep_failed_generation == a->doc->generation)
		return;
	if (tn_release_exists(a->state_dir, p->id)) {
		tn_journal_set(&a->prepared, p->id);
		report(a, "prepare", "succeeded", p->id, NULL, NULL);
		return;
	}
	a->prep = tn_desired_release_ref(p);
	a->prep_generation = a->doc->generation;
	report(a, "prepare", "started", p->id, NULL, NULL);
	a->prep_job = tn_fetch_release(a->fetch, p, progress, prepared, a);
}

/* ------------------------------------------------------------ load balancer */

static void lb_set(struct tn_agent *a, enum tn_ac_state state)
{
	a->ac_state = state;
	if (a->ac)
		tn_agentcheck_set(a->ac, state);
}

/* Whether a change of answer is worth waiting for: the document names a
 * load balancer, and bundles of a release with a serves port run (only
 * then is the node a member taking traffic). */
static bool lb_waits(const struct tn_agent *a)
{
	int port;

	return a->doc && a->doc->lb_driver && a->sup && serves_ports(a->cur, &port, 1) > 0;
}

/* Whether a load balancer has asked at all since the agent started: a
 * node it does not ask yet (its first release, not yet a member) is not
 * worth waiting for it to hear anything. */
static bool lb_asked(const struct tn_agent *a)
{
	return a->ac && tn_agentcheck_total(a->ac) > 0;
}

/* Idle on a healthy release, in service by the document: ready. */
static void lb_idle(struct tn_agent *a)
{
	if (a->work == W_IDLE && a->cur && a->sup && a->all_healthy && !a->stopped_for_state &&
	    (!a->doc || a->doc->state == TN_DESIRED_ACTIVE))
		lb_set(a, TN_AC_READY);
}

/* Listens on a->ac_port, or moves the listener there; while the port
 * cannot be had (another process holds it), tries again on a timer and
 * keeps the answer for when it can. */
static void ac_open(void *ctx)
{
	struct tn_agent *a = ctx;
	struct tn_error err;
	int rc;

	a->ac_timer = 0;
	if (a->ac && tn_agentcheck_port(a->ac) == a->ac_port)
		return;
	if (a->ac)
		rc = tn_agentcheck_listen(a->ac, a->ac_port, &err);
	else if ((rc = tn_agentcheck_new(a->loop, a->ac_port, &a->ac, &err)) == 0)
		tn_agentcheck_set(a->ac, a->ac_state);
	if (rc == 0)
		return;
	tn_log(TN_LOG_ERROR, "agent", "agentcheck_failed", "{s:i, s:s, s:i}", "port", a->ac_port,
	       "message", err.message, "retry_ms", LB_LISTEN_RETRY_MS);
	a->ac_timer = tn_loop_timer(a->loop, LB_LISTEN_RETRY_MS, ac_open, a);
}

/* The load balancer asks on the agent port the server knows (the one this
 * agent enrolled with, unless it was started with another since): when the
 * document names a port other than the one answered on, answer there. */
static void lb_follow(struct tn_agent *a)
{
	int want = a->doc && a->doc->lb_driver ? a->doc->lb_agent_port : 0;

	if (!want || want == a->ac_port)
		return;
	tn_log(TN_LOG_WARN, "agent", "agent_port_differs", "{s:i, s:i, s:I, s:s}", "agent_port",
	       a->ac_port, "document", want, "generation", (json_int_t)a->doc->generation,
	       "message", "the load balancer asks on the document's agent port: answering there");
	a->ac_port = want;
	tn_loop_cancel(a->loop, a->ac_timer);
	ac_open(a);
}

static void lb_finish(struct tn_agent *a)
{
	tn_sup_done_fn then = a->lb_then;

	tn_loop_cancel(a->loop, a->lb_timer);
	a->lb_timer = 0;
	a->lb_then = NULL;
	if (a->ac)
		tn_agentcheck_when_heard(a->ac, NULL, NULL);
	then(a);
}

/* Every LB_CONNS_EVERY_MS: done when no connection to a serves port of
 * the running release is left, or when --drain-wait-ms has passed (a
 * client holding its connection open must not hold up the switch). */
static void conns_tick(void *ctx)
{
	struct tn_agent *a = ctx;
	int ports[SERVES_PORTS_MAX];
	size_t n = serves_ports(a->cur, ports, SERVES_PORTS_MAX);
	uint64_t now = tn_loop_now_ms(), waited = now - a->lb_conns_ms;
	unsigned left = 0;
	struct tn_error err;
	bool known = tn_tcpconns_established(ports, n, &left, &err) == 0;

	a->lb_timer = 0;
	if (!known && !a->lb_unknown_logged) {
		/* Unknown is not none: wait the bound out. */
		a->lb_unknown_logged = true;
		tn_log(TN_LOG_WARN, "agent", "connections_unknown", "{s:s}", "message", err.message);
	}
	if (known && left == 0) {
		tn_log(TN_LOG_INFO, "agent", "drained", "{s:I, s:I}", "connections_ms",
		       (json_int_t)waited, "total_ms", (json_int_t)(now - a->lb_started_ms));
		lb_finish(a);
		return;
	}
	if (waited >= a->opts.drain_wait_ms) {
		tn_log(TN_LOG_WARN, "agent", "drain_timeout", "{s:I, s:I, s:o}", "connections_ms",
		       (json_int_t)waited, "total_ms", (json_int_t)(now - a->lb_started_ms),
		       "connections_left", known ? json_integer(left) : json_string("unknown"));
		lb_finish(a);
		return;
	}
	a->lb_timer = tn_loop_timer(a->loop, LB_CONNS_EVERY_MS, conns_tick, a);
}

static void conns_begin(struct tn_agent *a)
{
	a->lb_conns_ms = tn_loop_now_ms();
	a->lb_unknown_logged = false;
	conns_tick(a);
}

static void drain_heard(void *ctx)
{
	struct tn_agent *a = ctx;

	tn_loop_cancel(a->loop, a->lb_timer);
	a->lb_timer = 0;
	tn_log(TN_LOG_INFO, "agent", "lb_heard", "{s:s, s:I}", "answer", "drain", "waited_ms",
	       (json_int_t)(tn_loop_now_ms() - a->lb_started_ms));
	conns_begin(a);
}

static void drain_not_heard(void *ctx)
{
	struct tn_agent *a = ctx;

	a->lb_timer = 0;
	if (a->ac)
		tn_agentcheck_when_heard(a->ac, NULL, NULL);
	tn_log(TN_LOG_WARN, "agent", "lb_not_heard", "{s:s, s:i, s:i, s:s}", "answer", "drain",
	       "waited_ms", LB_HEARD_WAIT_MS, "agent_port", a->ac_port, "message",
	       "no agent check was answered with drain: going on");
	conns_begin(a);
}

/* Takes the node out of the load balancer's rotation before its bundles
 * stop: answers drain, waits until HAProxy has been answered drain at
 * least once (so it sends no new connection; bounded by
 * LB_HEARD_WAIT_MS; not at all when no check has come since the agent
 * started), then until the connections to the serves ports have ended
 * (bounded by --drain-wait-ms), then calls then(a).  Without a load
 * balancer, or with nothing serving, then(a) is called at once. */
static void drain_then(struct tn_agent *a, tn_sup_done_fn then)
{
	lb_set(a, TN_AC_DRAIN);
	if (!lb_waits(a)) {
		then(a);
		return;
	}
	a->lb_then = then;
	a->lb_started_ms = tn_loop_now_ms();
	tn_log(TN_LOG_INFO, "agent", "drain_started", "{s:s, s:i, s:i}", "driver", a->doc->lb_driver,
	       "agent_port", a->ac_port, "drain_wait_ms", (int)a->opts.drain_wait_ms);
	if (!lb_asked(a)) {
		tn_log(TN_LOG_WARN, "agent", "lb_not_asking", "{s:s, s:i, s:s}", "answer", "drain",
		       "agent_port", a->ac_port, "message",
		       "no agent check has come since the agent started: not waiting for one");
		conns_begin(a);
		return;
	}
	a->lb_timer = tn_loop_timer(a->loop, LB_HEARD_WAIT_MS, drain_not_heard, a);
	if (a->ac)
		tn_agentcheck_when_heard(a->ac, drain_heard, a);
}

static void ready_heard(void *ctx)
{
	struct tn_agent *a = ctx;

	tn_log(TN_LOG_INFO, "agent", "lb_heard", "{s:s, s:I}", "answer", "ready", "waited_ms",
	       (json_int_t)(tn_loop_now_ms() - a->lb_started_ms));
	lb_finish(a);
}

static void ready_not_heard(void *ctx)
{
	struct tn_agent *a = ctx;

	a->lb_timer = 0;
	tn_log(TN_LOG_WARN, "agent", "lb_not_heard", "{s:s, s:i, s:i, s:s}", "answer", "ready",
	       "waited_ms", LB_HEARD_WAIT_MS, "agent_port", a->ac_port, "message",
	       "no agent check was answered with ready: going on");
	lb_finish(a);
}

/* Answers ready, then calls then(a) once HAProxy has heard it (bounded by
 * LB_HEARD_WAIT_MS; at once when no check has come yet): the report that
 * follows lets the server drain the next node, which must not find this
 * one still out of rotation. */
static void ready_then(struct tn_agent *a, tn_sup_done_fn then)
{
	lb_set(a, TN_AC_READY);
	if (!lb_waits(a) || !lb_asked(a)) {
		then(a);
		return;
	}
	a->work = W_ANNOUNCING;
	a->lb_then = then;
	a->lb_started_ms = tn_loop_now_ms();
	a->lb_timer = tn_loop_timer(a->loop, LB_HEARD_WAIT_MS, ready_not_heard, a);
	if (a->ac)
		tn_agentcheck_when_heard(a->ac, ready_heard, a);
}

/* ------------------------------------------------------------ switch */

static void work_done(struct tn_agent *a)
{
	a->work = W_IDLE;
	tn_desired_release_unref(a->to);
	a->to = NULL;
	tn_release_free(a->from);
	a->from = NULL;
	free(a->rollback_message);
	a->rollback_message = NULL;
	json_decref(a->rollback_tails);
	a->rollback_tails = NULL;
	reconcile(a);
}

/* Runs release r: current points at it, its bundles start (adopting any
 * still running), its health is tracked (commit mode: with deadlines). */
static int run_release(struct tn_agent *a, struct tn_release *r, bool commit,
		       struct tn_error *err)
{
	int rc;

	free_health(a);
	tn_supervisor_free(a->sup);
	a->sup = NULL;
	if (a->cur != r)
		tn_release_free(a->cur);
	a->cur = r;
	if ((rc = tn_release_switch(a->state_dir, r->id, err)) ||
	    (rc = make_supervisor(a, r, err)) || (rc = tn_supervisor_start_all(a->sup, err)))
		return rc;
	start_health(a, commit);
	return 0;
}

/* Journalled only now, after the load balancer heard "ready": an agent
 * killed before that commits again on restart, and reports it. */
static void commit_reported(void *ctx)
{
	struct tn_agent *a = ctx;

	a->j.phase = TN_JOURNAL_IDLE;
	tn_journal_set(&a->j.to, cur_id(a));
	tn_journal_set(&a->j.from, NULL);
	save_journal(a);
	report(a, "commit", "succeeded", cur_id(a), NULL, NULL);
	prune(a);
	work_done(a);
}

static void commit_done(struct tn_agent *a)
{
	ready_then(a, commit_reported);
}

/* After the old bundles stopped: point current at the new release and
 * start it, then let health decide. */
static void switch_stopped(void *ctx)
{
	struct tn_agent *a = ctx;
	struct tn_release *next = NULL;
	struct tn_error err;

	if (stage(a, a->to, &next, &err) != 0 || run_release(a, next, true, &err) != 0) {
		rollback(a, err.message, NULL);
		return;
	}
	a->work = W_COMMITTING;
	a->j.phase = TN_JOURNAL_COMMITTING;
	save_journal(a);
	report(a, "commit", "started", a->to->id, NULL, NULL);
	if (a->all_healthy)
		commit_done(a);
}

/* Stops what runs, then calls done (at once when nothing runs). */
static void stop_all(struct tn_agent *a, tn_sup_done_fn done)
{
	struct tn_error err;

	free_health(a);
	if (!a->sup || tn_supervisor_stop_all(a->sup, done, a, &err) != 0)
		tn_loop_timer(a->loop, 0, done, a);
}

static void switch_drained(void *ctx)
{
	stop_all(ctx, switch_stopped);
}

static void do_switch(struct tn_agent *a)
{
	a->work = W_SWITCHING;
	a->j.phase = TN_JOURNAL_SWITCHING;
	tn_journal_set(&a->j.from, cur_id(a));
	tn_journal_set(&a->j.to, a->to->id);
	a->j.switch_generation = a->doc ? a->doc->generation : a->j.generation;
	save_journal(a);
	/* The release to go back to stays loaded. */
	if (a->cur) {
		struct tn_error err;

		if (tn_release_load(a->state_dir, a->cur->id, &a->env, &a->from, &err) != 0)
			a->from = NULL;
	}
	report(a, "switch", "started", a->to->id, NULL, NULL);
	drain_then(a, switch_drained);
}

static void fetched(void *ctx, int rc, const struct tn_error *ferr)
{
	struct tn_agent *a = ctx;
	struct tn_error err;

	a->run_job = NULL;
	if (rc == 0)
		rc = stage(a, a->to, NULL, &err);
	else
		err = *ferr;
	if (rc != 0) {
		/* Nothing was switched: the failure is the release's, not the
		 * node's; the server decides what to do with it. */
		tn_journal_set(&a->j.failed, a->to->id);
		a->j.failed_generation = a->doc ? a->doc->generation : a->j.generation;
		save_journal(a);
		report(a, "prepare", "failed", a->to->id, err.message, NULL);
		work_done(a);
		return;
	}
	report(a, "prepare", "succeeded", a->to->id, NULL, NULL);
	do_switch(a);
}

static void begin_switch(struct tn_agent *a, struct tn_desired_release *r)
{
	a->to = tn_desired_release_ref(r);
	if (tn_release_exists(a->state_dir, r->id)) {
		do_switch(a);
		return;
	}
	a->work = W_FETCHING;
	report(a, "prepare", "started", r->id, NULL, NULL);
	a->run_job = tn_fetch_release(a->fetch, r, progress, fetched, a);
}

/* ------------------------------------------------------------ rollback */

static void rollback_reported(void *ctx)
{
	struct tn_agent *a = ctx;
	json_t *extra = a->rollback_tails ? json_pack("{s:O}", "log_tail", a->rollback_tails)
					  : NULL;

	a->j.phase = TN_JOURNAL_IDLE;
	tn_journal_set(&a->j.to, cur_id(a));
	tn_journal_set(&a->j.from, NULL);
	save_journal(a);
	report(a, "rollback", a->rollback_ok ? "succeeded" : "failed", cur_id(a),
	       a->rollback_message, extra);
	json_decref(extra);
	work_done(a);
}

/* Back on the previous release and healthy: ready again, and the report
 * once the load balancer heard it; otherwise the node stays drained. */
static void rollback_finish(struct tn_agent *a, bool ok)
{
	a->rollback_ok = ok;
	if (ok && a->cur)
		ready_then(a, rollback_reported);
	else
		rollback_reported(a);
}

static void rollback_healthy(struct tn_agent *a)
{
	rollback_finish(a, true);
}

/* The failed release stopped: start the previous one again. */
static void rollback_stopped(void *ctx)
{
	struct tn_agent *a = ctx;
	struct tn_release *back = a->from;
	struct tn_error err;

	a->from = NULL;
	free_health(a);
	tn_supervisor_free(a->sup);
	a->sup = NULL;
	if (!back) {
		/* There was nothing before: nothing runs now. */
		tn_release_free(a->cur);
		a->cur = NULL;
		rollback_finish(a, true);
		return;
	}
	if (run_release(a, back, true, &err) != 0) {
		char *msg = xasprintf("%s; and going back failed: %s",
				      a->rollback_message ? a->rollback_message : "", err.message);

		free(a->rollback_message);
		a->rollback_message = msg;
		rollback_finish(a, false);
		return;
	}
	if (a->all_healthy)
		rollback_finish(a, true);
	/* else health_event calls rollback_healthy when all are healthy; a
	 * deadline passing while rolling back ends it as failed below. */
}

static void rollback(struct tn_agent *a, const char *message, const char *bundle)
{
	struct tn_error err;
	char *tail = NULL;
	size_t len = 0;

	if (a->work == W_ROLLING_BACK) {
		/* The release we went back to is not healthy either. */
		rollback_finish(a, false);
		return;
	}
	a->work = W_ROLLING_BACK;
	free(a->rollback_message);
	a->rollback_message = xstrdup(message ? message : "the new release failed");
	json_decref(a->rollback_tails);
	a->rollback_tails = json_object();
	for (size_t i = 0; a->sup && i < tn_supervisor_count(a->sup); i++) {
		struct tn_bundle_info info;

		if (!tn_supervisor_get(a->sup, i, &info) || (bundle && strcmp(bundle, info.name)))
			continue;
		if (tn_supervisor_log_tail(a->sup, info.name, TN_SUPERVISOR_TAIL_DEFAULT, &tail, &len,
					   &err) == 0)
			json_object_set_new(a->rollback_tails, info.name, json_stringn(tail, len));
		free(tail);
		tail = NULL;
	}
	a->j.phase = TN_JOURNAL_ROLLING_BACK;
	tn_journal_set(&a->j.failed, a->to ? a->to->id : a->j.to);
	a->j.failed_generation = a->j.switch_generation;
	tn_journal_set(&a->j.message, a->rollback_message);
	save_journal(a);
	report(a, "rollback", "started", a->j.failed, a->rollback_message, NULL);
	stop_all(a, rollback_stopped);
}

/* ------------------------------------------------------------ documents */

static void remove_stopped(void *ctx)
{
	struct tn_agent *a = ctx;

	lb_set(a, TN_AC_MAINT);
	a->work = W_IDLE;
	report(a, "remove", "succeeded", cur_id(a), NULL, NULL);
	reconcile(a);
}

static void remove_drained(void *ctx)
{
	stop_all(ctx, remove_stopped);
}

/* Drives the node towards the last accepted document, one step at a time. */
static void reconcile(struct tn_agent *a)
{
	struct tn_desired *d = a->doc;
	const char *want;

	if (!d || a->work != W_IDLE)
		return;
	if (d->state != TN_DESIRED_ACTIVE) {
		/* Draining or removed: the node leaves service, out of the
		 * load balancer first; the server terminates it on the
		 * report. */
		if (!a->stopped_for_state) {
			a->stopped_for_state = true;
			a->work = W_REMOVING;
			drain_then(a, remove_drained);
		}
		return;
	}
	if (a->stopped_for_state) {
		a->stopped_for_state = false;
		lb_set(a, TN_AC_DRAIN);
	}
	maybe_prepare(a);
	want = d->run ? d->run->id : NULL;
	if (!want || (cur_id(a) && strcmp(want, cur_id(a)) == 0))
		return;
	/* Never retried on its own: a new generation is an explicit retry. */
	if (a->j.failed && strcmp(a->j.failed, want) == 0 &&
	    a->j.failed_generation == d->generation)
		return;
	begin_switch(a, d->run);
}

/* The value of header line data (len bytes) when it is the header name
 * ("Name:"), trimmed and copied into *field (replacing what was there). */
static void take_header(const char *data, size_t len, const char *name, char **field)
{
	size_t nlen = strlen(name);
	const char *v = data + nlen;
	size_t vlen = len - nlen;

	if (len <= nlen || strncasecmp(data, name, nlen) != 0)
		return;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	free(*field);
	*field = xstrndup(v, vlen);
}

static size_t header_line(char *data, size_t size, size_t n, void *ctx)
{
	struct tn_agent *a = ctx;
	size_t len = size * n;

	take_header(data, len, "Tender-Signature:", &a->poll_sig);
	take_header(data, len, "Tender-Key-Endorsement:", &a->poll_endorse);
	return len;
}

/* The document was signed by a newer key that the pinned one endorsed
 * (through a chain of endorsements): pin it, durably, before acting on
 * the document, so that a restarted agent trusts what it already obeyed. */
static int pin_key(struct tn_agent *a, const char *key_b64, struct tn_error *err)
{
	struct tn_key *key = NULL;
	char *old = xstrdup(a->j.server_key);
	int rc;

	if ((rc = tn_key_from_public_b64(key_b64, &key, err)))
		goto out;
	tn_journal_set(&a->j.server_key, key_b64);
	if ((rc = tn_journal_save_identity(a->state_dir, &a->j, err))) {
		tn_journal_set(&a->j.server_key, old);
		goto out;
	}
	tn_key_free(a->server_key);
	a->server_key = key;
	key = NULL;
	tn_log(TN_LOG_INFO, "agent", "server_key_rotated", "{s:s, s:s}", "old", old, "new",
	       key_b64);
out:
	tn_key_free(key);
	free(old);
	return rc;
}

static void polled(void *ctx, CURL *easy, CURLcode result)
{
	struct tn_agent *a = ctx;
	long status = 0;
	struct tn_desired *d = NULL;
	struct tn_error err;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (result != CURLE_OK || (status != 200 && status != 304)) {
		unsigned backoff = a->poll_backoff_ms ? a->poll_backoff_ms * 2 : POLL_BACKOFF_MIN_MS;

		a->poll_backoff_ms = backoff > POLL_BACKOFF_MAX_MS ? POLL_BACKOFF_MAX_MS : backoff;
		tn_log(status == 401 ? TN_LOG_ERROR : TN_LOG_WARN, "agent", "poll_failed",
		       "{s:i, s:s, s:i}", "status", (int)status, "message",
		       status == 401 ? "the server refused this target's token: enroll again"
				     : a->poll_err[0] ? a->poll_err : curl_easy_strerror(result),
		       "retry_ms", (int)a->poll_backoff_ms);
		poll_soon(a, a->poll_backoff_ms + jitter(a->poll_backoff_ms / 2 + 1));
		return;
	}
	a->poll_backoff_ms = 0;
	if (status == 200) {
		if (a->poll_body.over ||
		    tn_desired_parse(a->poll_body.p ? a->poll_body.p : "", a->poll_body.len,
				     a->poll_sig, a->poll_endorse, a->server_key, a->j.target_id,
				     a->j.generation, &d, &err) != 0 ||
		    (d->signer_key && pin_key(a, d->signer_key, &err) != 0)) {
			/* Refused: keep running what runs; ask again later. */
			tn_desired_free(d);
			tn_log(TN_LOG_ERROR, "agent", "document_refused", "{s:s}", "message",
			       a->poll_body.over ? "document over its size limit" : err.message);
			poll_soon(a, POLL_BACKOFF_MAX_MS);
			return;
		}
		if (d->generation > a->j.generation ||
		    (d->cluster && (!a->j.cluster || strcmp(d->cluster, a->j.cluster)))) {
			a->j.generation = d->generation;
			tn_journal_set(&a->j.cluster, d->cluster);
			a->env.cluster = a->j.cluster ? a->j.cluster : "";
			save_journal(a);
		}
		tn_desired_free(a->doc);
		a->doc = d;
		lb_follow(a);
		tn_log(TN_LOG_INFO, "agent", "document", "{s:I, s:s?, s:s?}", "generation",
		       (json_int_t)d->generation, "run", d->run ? d->run->id : NULL, "prepare",
		       d->prepare ? d->prepare->id : NULL);
		reconcile(a);
	}
	poll_soon(a, 0);
}

static void poll_now(struct tn_agent *a)
{
	char *url = xasprintf("%s/agent/v1/desired?wait=%u", a->j.server, a->opts.poll_wait_s);
	char *inm = NULL;

	a->poll_timer = 0;
	buf_reset(&a->poll_body);
	free(a->poll_sig);
	a->poll_sig = NULL;
	free(a->poll_endorse);
	a->poll_endorse = NULL;
	curl_slist_free_all(a->poll_headers);
	a->poll_headers = curl_slist_append(NULL, a->auth_header);
	if (a->doc) {
		inm = xasprintf("If-None-Match: \"%s\"", a->doc->etag);
		a->poll_headers = curl_slist_append(a->poll_headers, inm);
	}
	curl_easy_reset(a->poll);
	curl_easy_setopt(a->poll, CURLOPT_URL, url);
	curl_easy_setopt(a->poll, CURLOPT_HTTPHEADER, a->poll_headers);
	curl_easy_setopt(a->poll, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(a->poll, CURLOPT_WRITEDATA, &a->poll_body);
	curl_easy_setopt(a->poll, CURLOPT_HEADERFUNCTION, header_line);
	curl_easy_setopt(a->poll, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(a->poll, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(a->poll, CURLOPT_TIMEOUT, (long)a->opts.poll_wait_s + 20);
	curl_easy_setopt(a->poll, CURLOPT_NOSIGNAL, 1L);
	a->poll_err[0] = '\0';
	curl_easy_setopt(a->poll, CURLOPT_ERRORBUFFER, a->poll_err);
	if (a->opts.cacert)
		curl_easy_setopt(a->poll, CURLOPT_CAINFO, a->opts.cacert);
	tn_loop_transfer(a->loop, a->poll, polled, a);
	free(inm);
	free(url);
}

static void poll_soon(struct tn_agent *a, unsigned delay_ms)
{
	a->poll_timer = tn_loop_timer(a->loop, delay_ms, (tn_loop_timer_fn)poll_now, a);
}

/* ------------------------------------------------------------ start */

/* After a crash or a restart: pick up where the journal says. */
static void recover(struct tn_agent *a)
{
	struct tn_release *r = NULL;
	struct tn_error err;
	const char *id = a->j.to;

	if (!id)
		return;
	if (tn_release_load(a->state_dir, id, &a->env, &r, &err) != 0) {
		tn_log(TN_LOG_ERROR, "agent", "recover_failed", "{s:s, s:s}", "release", id, "message",
		       err.message);
		return;
	}
	a->cur = r;
	if (a->j.from && tn_release_load(a->state_dir, a->j.from, &a->env, &a->from, &err) != 0)
		a->from = NULL;
	/* Whatever an earlier agent left running is adopted, never doubled.
	 * In the middle of a switch that may be bundles of either release:
	 * the supervisor then knows both, to stop them all. */
	if (make_supervisor_of(a, r, a->j.phase == TN_JOURNAL_SWITCHING ? a->from : NULL, &err) !=
	    0) {
		tn_log(TN_LOG_ERROR, "agent", "recover_failed", "{s:s, s:s}", "release", id, "message",
		       err.message);
		return;
	}
	tn_log(TN_LOG_INFO, "agent", "recovering", "{s:s, s:s, s:s?}", "phase",
	       tn_journal_phase_name(a->j.phase), "to", id, "from", a->j.from);
	switch (a->j.phase) {
	case TN_JOURNAL_IDLE:
		if (tn_release_switch(a->state_dir, r->id, &err) != 0 ||
		    tn_supervisor_start_all(a->sup, &err) != 0)
			tn_log(TN_LOG_ERROR, "agent", "recover_failed", "{s:s}", "message",
			       err.message);
		start_health(a, false);
		lb_idle(a); /* else once healthy (health_event) */
		break;
	case TN_JOURNAL_SWITCHING:
		/* Some of either release may run: stop all, then finish the
		 * switch as if it had just begun. */
		if (tn_release_spec(a->state_dir, id, &a->to, &err) != 0) {
			a->to = NULL;
			break;
		}
		a->work = W_SWITCHING;
		stop_all(a, switch_stopped);
		break;
	case TN_JOURNAL_COMMITTING:
		/* The new release runs (adopted): its health decides again, with
		 * a fresh deadline. */
		if (tn_release_spec(a->state_dir, id, &a->to, &err) != 0)
			a->to = NULL;
		a->work = W_COMMITTING;
		if (tn_supervisor_start_all(a->sup, &err) != 0) {
			rollback(a, err.message, NULL);
			break;
		}
		start_health(a, true);
		if (a->all_healthy)
			commit_done(a);
		break;
	case TN_JOURNAL_ROLLING_BACK:
		a->work = W_ROLLING_BACK;
		a->rollback_message = xstrdup(a->j.message ? a->j.message : "rolled back");
		stop_all(a, rollback_stopped);
		break;
	}
}

int tn_agent_start(struct tn_loop *loop, const struct tn_agent_options *opts,
		   struct tn_agent **out, struct tn_error *err)
{
	struct tn_agent *a = xcalloc(1, sizeof *a);
	struct tn_fetch_opts fo = {0};
	int rc;

	a->loop = loop;
	a->opts = *opts;
	if (!a->opts.poll_wait_s)
		a->opts.poll_wait_s = 30;
	a->state_dir = xstrdup(opts->state_dir);
	a->address = xstrdup(opts->address ? opts->address : "127.0.0.1");
	a->queue = json_array();
	if ((rc = tn_journal_load(a->state_dir, &a->j, err)) ||
	    (rc = tn_key_from_public_b64(a->j.server_key, &a->server_key, err)))
		goto out;
	a->auth_header = xasprintf("Authorization: Bearer %s", a->j.token);
	fo.state_dir = a->state_dir;
	fo.server_url = a->j.server;
	fo.token = a->j.token;
	fo.cacert = a->opts.cacert;
	if ((rc = tn_fetch_new(loop, &fo, &a->fetch, err)))
		goto out;
	a->env.target_id = a->j.target_id;
	a->env.target_address = a->address;
	a->env.port_base = opts->port_base;
	a->env.cluster = a->j.cluster ? a->j.cluster : "";
	a->poll = curl_easy_init();
	a->report = curl_easy_init();
	a->report_headers = curl_slist_append(NULL, a->auth_header);
	a->report_headers = curl_slist_append(a->report_headers, "Content-Type: application/json");
	if (!a->poll || !a->report)
		abort();
	/* Not ready until a release runs healthy. */
	a->ac_state = TN_AC_DRAIN;
	a->ac_port = opts->agent_port;
	if (a->ac_port > 0)
		ac_open(a);
	recover(a);
	poll_soon(a, 0);
	*out = a;
	a = NULL;
out:
	tn_agent_free(a);
	return rc;
}

void tn_agent_free(struct tn_agent *a)
{
	if (!a)
		return;
	if (a->poll)
		tn_loop_abort_transfer(a->loop, a->poll);
	if (a->report)
		tn_loop_abort_transfer(a->loop, a->report);
	tn_loop_cancel(a->loop, a->poll_timer);
	tn_loop_cancel(a->loop, a->report_timer);
	tn_loop_cancel(a->loop, a->ac_timer);
	tn_loop_cancel(a->loop, a->lb_timer);
	tn_agentcheck_free(a->ac);
	if (a->run_job)
		tn_fetch_cancel(a->run_job);
	if (a->prep_job)
		tn_fetch_cancel(a->prep_job);
	free_health(a);
	/* Freeing the supervisor leaves the bundles running: they outlive the
	 * agent, and the next one adopts them. */
	tn_supervisor_free(a->sup);
	tn_release_free(a->cur);
	tn_release_free(a->from);
	tn_desired_release_unref(a->to);
	tn_desired_release_unref(a->prep);
	tn_desired_free(a->doc);
	tn_fetch_free(a->fetch);
	tn_key_free(a->server_key);
	curl_easy_cleanup(a->poll);
	curl_easy_cleanup(a->report);
	curl_slist_free_all(a->poll_headers);
	curl_slist_free_all(a->report_headers);
	buf_reset(&a->poll_body);
	free(a->poll_sig);
	free(a->poll_endorse);
	free(a->report_body);
	free(a->prepared);
	free(a->prep_failed);
	free(a->rollback_message);
	json_decref(a->rollback_tails);
	json_decref(a->queue);
	free(a->auth_header);
	free(a->address);
	free(a->state_dir);
	tn_journal_clear(&a->j);
	free(a);
}

/* ------------------------------------------------------------ enroll */

static json_t *inventory(void)
{
	struct utsname u;
	struct sysinfo si;
	char host[256] = "";

	gethostname(host, sizeof host - 1);
	uname(&u);
	sysinfo(&si);
	return json_pack("{s:s, s:s, s:s, s:i, s:I, s:s}", "hostname", host, "os", u.sysname,
			 "kernel", u.release, "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN), "memory",
			 (json_int_t)si.totalram * si.mem_unit, "agent_version", PACKAGE_VERSION);
}

int tn_agent_enroll(const char *state_dir, const char *server, const char *enroll_token,
		    const char *server_key, const char *cacert, const char *address,
		    int agent_port, struct tn_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	json_t *req = json_pack("{s:s, s:o, s:s?, s:i}", "enrollment_token", enroll_token,
				"inventory", inventory(), "address", address, "agent_port",
				agent_port);
	char *body = json_dumps(req, JSON_COMPACT);
	char *url = xasprintf("%s/agent/v1/enroll", server);
	struct buf resp = {0};
	struct tn_journal j = {0};
	json_t *ans = NULL;
	long status = 0;
	CURLcode cc;
	int rc = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		/* errbuf names the certificate problem; strerror only its class. */
		rc = tn_fail(err, TN_E_UNAVAILABLE, "enroll at %s: %s", server,
			     errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	ans = resp.p ? json_loads(resp.p, 0, NULL) : NULL;
	if (status != 200) {
		const char *msg = json_string_value(
			json_object_get(json_object_get(ans, "error"), "message"));

		rc = tn_fail(err, status == 401 ? TN_E_UNAUTHORIZED : TN_E_INVALID,
			     "enroll at %s: HTTP %ld: %s", server, status, msg ? msg : "no message");
		goto out;
	}
	tn_journal_set(&j.server, server);
	tn_journal_set(&j.target_id, json_string_value(json_object_get(ans, "target_id")));
	tn_journal_set(&j.token, json_string_value(json_object_get(ans, "target_token")));
	tn_journal_set(&j.server_key, json_string_value(json_object_get(ans, "server_key")));
	if (!j.target_id || !j.token || !j.server_key) {
		rc = tn_fail(err, TN_E_INVALID, "enroll at %s: the answer lacks target_id, "
			     "target_token or server_key", server);
		goto out;
	}
	if (server_key && strcmp(server_key, j.server_key) != 0) {
		rc = tn_fail(err, TN_E_SIGNATURE,
			     "enroll at %s: the server's key is not the one given with --server-key",
			     server);
		goto out;
	}
	if ((rc = tn_mkdir_p(state_dir, 0700, err)) ||
	    (rc = tn_journal_save_identity(state_dir, &j, err)))
		goto out;
	tn_log(TN_LOG_INFO, "agent", "enrolled", "{s:s, s:s}", "target", j.target_id, "server",
	       server);
out:
	tn_journal_clear(&j);
	json_decref(ans);
	json_decref(req);
	buf_reset(&resp);
	free(body);
	free(url);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}
