/* soak.c - `make soak`: one tender-server and SOAK_AGENTS local-provider
 * agents (default 50) behind a real HAProxy, for SOAK_MINUTES (default
 * 10): rollouts back and forth between educa 1.0 and 1.1, a target copied
 * and another removed after each, with traffic through HAProxy the whole
 * time.  Every SOAK_SAMPLE_S seconds (default 5) it samples the server's
 * RSS and open fds and every agent's RSS, RssAnon and open fds from /proc;
 * at the end it prints a table (the first sample after the first rollout,
 * the last one once the fleet is quiet, the largest) and a verdict
 * against the bounds below.  Exit status: 0 every bound held, 1 one did
 * not (or a step failed), 2 not runnable here.  It builds on the
 * integration tests' support (tests/support: fleet, haproxy, harness), so
 * every process it starts dies with it. */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "haproxy.h"
#include "harness.h"
#include "xalloc.h"

/* The bounds of the verdict (docs/development.md, "The soak"). */
#define SERVER_RSS_GROWTH_KB (10 * 1024) /* after the first rollout */
#define FDS_DRIFT 5			 /* server's, and each agent's largest, vs start */
#define AGENT_RSS_ANON_KB (4 * 1024)	 /* every agent, every sample (DESIGN §5) */

#define FIRST_TARGETS 10 /* started by th_fleet_start; the rest added after */
#define STEP_DEADLINE_S 900

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* An environment knob: a whole number in [min, max], def when unset;
 * anything else ends the run (status 2). */
static unsigned knob(const char *name, unsigned def, unsigned min, unsigned max)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	n = strtoul(v, &end, 10);
	if (*end || n < min || n > max) {
		fprintf(stderr, "soak: %s=%s: want a whole number from %u to %u\n", name, v, min,
			max);
		exit(2);
	}
	return (unsigned)n;
}

/* ------------------------------------------------------------ sampling */

struct sample {
	double t;
	long server_rss_kb, server_fds;
	long server_conns; /* its established TCP connections, a share of its fds */
	size_t agents;
	long agent_rss_anon_kb, agent_rss_kb, agent_fds; /* the largest over the agents */
};

/* VmRSS and RssAnon of pid in KiB (-1 when gone). */
static void memory_of(pid_t pid, long *rss, long *anon)
{
	char path[64], line[256];
	FILE *fp;

	*rss = *anon = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(fp = fopen(path, "re")))
		return;
	while (fgets(line, sizeof line, fp)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "RssAnon:", 8) == 0)
			*anon = strtol(line + 8, NULL, 10);
	}
	fclose(fp);
}

static long fds_of(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static bool comm_is(pid_t pid, const char *name)
{
	char path[64], comm[64] = "";
	FILE *fp;

	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if (!(fp = fopen(path, "re")))
		return false;
	if (!fgets(comm, sizeof comm, fp))
		comm[0] = '\0';
	fclose(fp);
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, name) == 0;
}

static bool cwd_under(pid_t pid, const char *dir)
{
	char link[64], target[PATH_MAX];
	size_t dl = strlen(dir);
	ssize_t n;

	snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
	n = readlink(link, target, sizeof target - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	return strncmp(target, dir, dl) == 0 && target[dl] == '/';
}

/* The established TCP connections whose local port is port (IPv4: the
 * server listens on 127.0.0.1).  Agents hold some open between polls
 * until the server's idle timeout (60 s) closes them, so the server's fds
 * go up and down with them; less these, what is left is what leaks. */
static long connections_to(unsigned port)
{
	char line[512];
	long n = 0;
	FILE *fp = fopen("/proc/net/tcp", "re");

	while (fp && fgets(line, sizeof line, fp)) {
		unsigned local_port, state;

		if (sscanf(line, " %*u: %*x:%x %*x:%*x %x", &local_port, &state) == 2 &&
		    local_port == port && state == 1 /* TCP_ESTABLISHED */)
			n++;
	}
	if (fp)
		fclose(fp);
	return n;
}

/* The server and every tender-agent of its nodes (working under the
 * server's data directory) now. */
static struct sample take_sample(pid_t server, unsigned port, const char *nodes_dir, double t0)
{
	struct sample s = {.t = th_now_s() - t0};
	long ignored;
	struct dirent *de;
	DIR *d = opendir("/proc");

	memory_of(server, &s.server_rss_kb, &ignored);
	s.server_fds = fds_of(server);
	s.server_conns = connections_to(port);
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10), rss, anon, fds;

		if (*end || pid <= 0 || !comm_is((pid_t)pid, "tender-agent") ||
		    !cwd_under((pid_t)pid, nodes_dir))
			continue;
		memory_of((pid_t)pid, &rss, &anon);
		fds = fds_of((pid_t)pid);
		if (rss < 0 || fds < 0)
			continue; /* gone meanwhile */
		s.agents++;
		s.agent_rss_kb = rss > s.agent_rss_kb ? rss : s.agent_rss_kb;
		s.agent_rss_anon_kb = anon > s.agent_rss_anon_kb ? anon : s.agent_rss_anon_kb;
		s.agent_fds = fds > s.agent_fds ? fds : s.agent_fds;
	}
	if (d)
		closedir(d);
	return s;
}

#define SAMPLES_MAX 100000

struct sampler {
	pthread_t thread;
	pthread_mutex_t lock;
	bool stop;
	struct th_fleet *f;
	unsigned port; /* the server's */
	char *nodes_dir;
	unsigned every_s;
	double t0;
	struct sample *samples;
	size_t n;
};

static void record(struct sampler *sm)
{
	/* the server is never restarted meanwhile: its pid holds */
	struct sample s = take_sample(sm->f->srv.pid, sm->port, sm->nodes_dir, sm->t0);

	pthread_mutex_lock(&sm->lock);
	if (sm->n < SAMPLES_MAX)
		sm->samples[sm->n++] = s;
	pthread_mutex_unlock(&sm->lock);
}

static void *sampler_main(void *arg)
{
	struct sampler *sm = arg;

	for (;;) {
		double next = th_now_s() + sm->every_s;
		bool stop;

		record(sm);
		do {
			th_pause_ms(100);
			pthread_mutex_lock(&sm->lock);
			stop = sm->stop;
			pthread_mutex_unlock(&sm->lock);
		} while (!stop && th_now_s() < next);
		if (stop)
			return NULL;
	}
}

/* The number of samples so far: where a phase starts. */
static size_t samples_now(struct sampler *sm)
{
	size_t n;

	pthread_mutex_lock(&sm->lock);
	n = sm->n;
	pthread_mutex_unlock(&sm->lock);
	return n;
}

static struct sample last_sample(struct sampler *sm)
{
	struct sample s;

	pthread_mutex_lock(&sm->lock);
	s = sm->samples[sm->n ? sm->n - 1 : 0];
	pthread_mutex_unlock(&sm->lock);
	return s;
}

/* The size of the file at path and of its write-ahead log, in MiB. */
static double file_mib(const char *path)
{
	char *wal = xasprintf("%s-wal", path);
	struct stat st;
	double mib = 0;

	if (stat(path, &st) == 0)
		mib += st.st_size / 1048576.0;
	if (stat(wal, &st) == 0)
		mib += st.st_size / 1048576.0;
	free(wal);
	return mib;
}

/* ------------------------------------------------------------ the fleet */

/* Once the cluster has n targets that are not removed, all running,
 * healthy, idle and on their desired release, and HAProxy has n members
 * up (bounded by STEP_DEADLINE_S). */
static void settle(struct th_fleet *f, size_t n)
{
	double deadline = th_now_s() + STEP_DEADLINE_S;

	for (;;) {
		json_t *all = th_fleet_get(f, "/api/v1/targets?cluster=educa&limit=500"), *t;
		size_t i, live = 0, ok = 0, up = 0, members;

		json_array_foreach(json_object_get(all, "items"), i, t)
		{
			if (is(th_str(t, "state"), "removed"))
				continue;
			live++;
			ok += is(th_str(t, "state"), "running") && is(th_str(t, "health"), "healthy") &&
			      (is(th_str(t, "phase"), "idle") || is(th_str(t, "phase"), "prepared")) &&
			      is(th_str(t, "actual"), th_str(json_object_get(t, "desired"), "release"));
		}
		json_decref(all);
		members = th_haproxy_members(&f->h, &up);
		if (live == n && ok == n && members == n && up == n)
			return;
		if (th_now_s() > deadline)
			th_fleet_fail(f,
				      "%zu targets, %zu settled, %zu members (%zu up), not %zu, "
				      "after %d s",
				      live, ok, members, up, n, STEP_DEADLINE_S);
		th_pause_ms(500);
	}
}

static json_t *call(struct th_fleet *f, const char *method, const char *path, const char *body,
		    long want)
{
	struct th_response r;
	json_t *out;

	th_fleet_call(f, method, path, body, &r);
	if (r.status != want)
		th_fleet_fail(f, "%s %s: want %ld, got %ld %s", method, path, want, r.status,
			      r.body);
	out = json_incref(r.json);
	th_response_free(&r);
	return out;
}

/* One rollout to dist, approved at once: whether it succeeded. */
static bool roll(struct th_fleet *f, const char *dist)
{
	char *body = xasprintf("{\"cluster\": \"educa\", \"distribution\": \"%s\", \"strategy\": "
			       "{\"batch_percent\": 20}}",
			       dist);
	json_t *r = call(f, "POST", "/api/v1/rollouts", body, 201);
	char *path = xasprintf("/api/v1/rollouts/%s/approve", th_str(r, "id"));
	char *get = xasprintf("/api/v1/rollouts/%s", th_str(r, "id"));
	double deadline = th_now_s() + STEP_DEADLINE_S;
	bool ok;

	json_decref(call(f, "POST", path, NULL, 200));
	json_decref(r);
	for (;;) {
		const char *state;

		r = th_fleet_get(f, get);
		state = th_str(r, "state");
		if (is(state, "succeeded") || is(state, "failed") || is(state, "rolled_back") ||
		    is(state, "aborted"))
			break;
		json_decref(r);
		if (th_now_s() > deadline)
			th_fleet_fail(f, "rollout to %s not finished within %d s", dist,
				      STEP_DEADLINE_S);
		th_pause_ms(500);
	}
	ok = is(th_str(r, "state"), "succeeded");
	if (!ok)
		fprintf(stderr, "soak: rollout to %s ended %s\n", dist, th_str(r, "state"));
	json_decref(r);
	free(get);
	free(path);
	free(body);
	return ok;
}

/* Copies one running target and removes another (the oldest), then waits
 * until the cluster is n settled targets again. */
static void churn(struct th_fleet *f, size_t n)
{
	json_t *all = th_fleet_get(f, "/api/v1/targets?cluster=educa&limit=500"), *t;
	const char *first = NULL, *last = NULL;
	char *path;
	size_t i;

	json_array_foreach(json_object_get(all, "items"), i, t)
	{
		if (is(th_str(t, "state"), "removed"))
			continue;
		if (!first)
			first = th_str(t, "id");
		last = th_str(t, "id");
	}
	path = xasprintf("/api/v1/targets/%s/copy", last);
	json_decref(call(f, "POST", path, NULL, 202));
	free(path);
	path = xasprintf("/api/v1/targets/%s", first);
	json_decref(call(f, "DELETE", path, NULL, 202));
	free(path);
	json_decref(all);
	settle(f, n);
}

/* ------------------------------------------------------------ the report */

static void row(const char *figure, double start, double end, double max, const char *bound,
		bool ok, bool *all_ok)
{
	char max_text[32] = "-";

	if (max >= 0)
		snprintf(max_text, sizeof max_text, "%.1f", max);
	printf("%-34s %10.1f %10.1f %10s  %-28s %s\n", figure, start, end, max_text, bound,
	       ok ? "ok" : "MISSED");
	*all_ok &= ok;
}

int main(void)
{
	static const char *const uploads[] = {"educa-1.0", "educa-1.1", NULL};
	unsigned minutes = knob("SOAK_MINUTES", 10, 1, 1440);
	unsigned agents = knob("SOAK_AGENTS", 50, 2, 200);
	unsigned every = knob("SOAK_SAMPLE_S", 5, 1, 600);
	struct th_fleet f;
	struct sampler sm = {.every_s = every};
	struct th_load *l;
	struct sample start, end, last, max = {0};
	char *db;
	size_t total, failed, base, rollouts = 0, succeeded = 0, churns = 0;
	const char *versions[] = {"educa@1.1", "educa@1.0"};
	bool ok = true;
	double until;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!th_haproxy_available()) {
		fprintf(stderr, "soak: haproxy is not installed (scripts/bootstrap installs it)\n");
		return 2;
	}
	printf("soak: %u agents, %u minutes, a sample every %u s\n", agents, minutes, every);
	th_fleet_start_ports(&f, 0, 10 * (agents + 10), true, uploads, "educa@1.0",
			     agents < FIRST_TARGETS ? agents : FIRST_TARGETS);
	if (agents > FIRST_TARGETS) {
		char *body =
		    xasprintf("{\"cluster\": \"educa\", \"count\": %u}", agents - FIRST_TARGETS);

		json_decref(call(&f, "POST", "/api/v1/targets", body, 202));
		free(body);
	}
	settle(&f, agents);
	printf("soak: %u targets running behind HAProxy\n", agents);

	sm.f = &f;
	sm.port = (unsigned)strtoul(strrchr(f.srv.url, ':') + 1, NULL, 10);
	db = xasprintf("%s/var/tender.db", f.srv.data_dir);
	sm.nodes_dir = xasprintf("%s/var/nodes", f.srv.data_dir);
	sm.t0 = th_now_s();
	sm.samples = xcalloc(SAMPLES_MAX, sizeof *sm.samples);
	pthread_mutex_init(&sm.lock, NULL);
	pthread_create(&sm.thread, NULL, sampler_main, &sm);
	l = th_load_start(f.h.front_port, 4, 5);

	/* the first rollout is the warm-up: the baseline is the sample after it */
	until = th_now_s() + minutes * 60.0;
	base = 0;
	while (rollouts == 0 || th_now_s() < until) {
		succeeded += roll(&f, versions[rollouts % 2]);
		rollouts++;
		settle(&f, agents);
		if (rollouts == 1) {
			record(&sm);
			base = samples_now(&sm) - 1;
		}
		churn(&f, agents);
		churns++;
		th_load_counts(l, &total, &failed);
		last = last_sample(&sm);
		/* the database's size beside the server's RSS: its page cache
		 * (16 MiB per connection, taken as used) grows with it */
		printf(
		    "soak: %.0f s: %zu rollouts (%zu succeeded), %zu copies and removals, "
		    "%zu requests, %zu failed; server RSS %.1f MiB, fds %ld; database %.1f MiB\n",
		    th_now_s() - sm.t0, rollouts, succeeded, churns, total, failed,
		    last.server_rss_kb / 1024.0, last.server_fds, file_mib(db));
	}
	settle(&f, agents);
	record(&sm);
	{
		const struct th_hit *hits;
		size_t n;

		th_load_stop(l, &hits, &n);
	}
	th_load_counts(l, &total, &failed);
	th_load_free(l);
	pthread_mutex_lock(&sm.lock);
	sm.stop = true;
	pthread_mutex_unlock(&sm.lock);
	pthread_join(sm.thread, NULL);

	start = sm.samples[base];
	end = sm.samples[sm.n - 1];
	for (size_t i = base; i < sm.n; i++) {
		const struct sample *s = &sm.samples[i];

#define TAKE_MAX(field) max.field = s->field > max.field ? s->field : max.field
		TAKE_MAX(server_rss_kb);
		TAKE_MAX(server_fds);
		TAKE_MAX(server_conns);
		TAKE_MAX(agents);
		TAKE_MAX(agent_rss_anon_kb);
		TAKE_MAX(agent_rss_kb);
		TAKE_MAX(agent_fds);
#undef TAKE_MAX
	}
	for (size_t i = 0; i < base; i++) /* the agents' bound holds during the warm-up too */
		max.agent_rss_anon_kb = sm.samples[i].agent_rss_anon_kb > max.agent_rss_anon_kb
					    ? sm.samples[i].agent_rss_anon_kb
					    : max.agent_rss_anon_kb;

	printf("\nsoak: %u agents for %.1f min: %zu rollouts (%zu succeeded), %zu copies and "
	       "removals, %zu samples (%zu after the first rollout, at %.0f s)\n",
	       agents, (th_now_s() - sm.t0) / 60.0, rollouts, succeeded, churns, sm.n, sm.n - base,
	       start.t);
	printf("%-34s %10s %10s %10s  %-28s %s\n", "figure", "start", "end", "max", "bound",
	       "verdict");
	row("server RSS (MiB)", start.server_rss_kb / 1024.0, end.server_rss_kb / 1024.0,
	    max.server_rss_kb / 1024.0, "end - start < 10 MiB",
	    end.server_rss_kb - start.server_rss_kb < SERVER_RSS_GROWTH_KB, &ok);
	row("server open fds", (double)start.server_fds, (double)end.server_fds,
	    (double)max.server_fds, "(shown)", true, &ok);
	row("server connections", (double)start.server_conns, (double)end.server_conns,
	    (double)max.server_conns, "(shown)", true, &ok);
	row("server fds less connections", (double)(start.server_fds - start.server_conns),
	    (double)(end.server_fds - end.server_conns), -1, "|end - start| <= 5",
	    labs((end.server_fds - end.server_conns) - (start.server_fds - start.server_conns)) <=
		FDS_DRIFT,
	    &ok);
	row("agent RssAnon, largest (MiB)", start.agent_rss_anon_kb / 1024.0,
	    end.agent_rss_anon_kb / 1024.0, max.agent_rss_anon_kb / 1024.0, "max < 4 MiB",
	    max.agent_rss_anon_kb < AGENT_RSS_ANON_KB, &ok);
	row("agent RSS, largest (MiB)", start.agent_rss_kb / 1024.0, end.agent_rss_kb / 1024.0,
	    max.agent_rss_kb / 1024.0, "(shown)", true, &ok);
	row("agent open fds, largest", (double)start.agent_fds, (double)end.agent_fds,
	    (double)max.agent_fds, "|end - start| <= 5",
	    labs(end.agent_fds - start.agent_fds) <= FDS_DRIFT, &ok);
	row("agents running", (double)start.agents, (double)end.agents, (double)max.agents,
	    "end = SOAK_AGENTS", end.agents == agents, &ok);
	row("requests through HAProxy", 0, (double)total, (double)total, "(shown)", true, &ok);
	row("failed requests", 0, (double)failed, (double)failed, "0", failed == 0, &ok);
	row("rollouts that did not succeed", 0, (double)(rollouts - succeeded),
	    (double)(rollouts - succeeded), "0", succeeded == rollouts, &ok);
	printf("soak: the database (with its WAL) ends at %.1f MiB\n", file_mib(db));
	printf("soak: %s\n", ok ? "every bound held" : "a bound was MISSED");

	if (!th_fleet_destroy(&f))
		ok = false;
	pthread_mutex_destroy(&sm.lock);
	free(sm.samples);
	free(sm.nodes_dir);
	free(db);
	return ok ? 0 : 1;
}
