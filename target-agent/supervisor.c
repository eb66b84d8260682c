/* supervisor.c - see supervisor.h.  Each bundle is a small state machine
 * driven by three things in the loop: its pidfd (the process ended), its
 * timers (restart backoff, SIGKILL deadline, group check) and the caller's
 * start/stop requests. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "spawn.h"
#include "xalloc.h"

#define DEFAULT_BACKOFF_BASE_MS 500
#define DEFAULT_BACKOFF_CAP_MS 30000
#define DEFAULT_RESTART_LIMIT 5
#define DEFAULT_RESTART_WINDOW_MS 60000
#define DEFAULT_LOG_MAX_BYTES (8u * 1024 * 1024)
#define DEFAULT_GROUP_POLL_MS 50
#define DEFAULT_STOP_TIMEOUT_S 10
#define NAME_MAX_LEN 128
#define PIDFILE_MAX 128
#define TAIL_MAX (1024 * 1024)
#define REASON_MAX 384
/* After SIGKILL, how long to wait for the group to be gone before calling
 * the stop done anyway (a process stuck in the kernel cannot be helped). */
#define KILL_GRACE_MS 5000

struct waiter {
	tn_sup_done_fn fn;
	void *ctx;
};

struct bundle {
	struct tn_supervisor *sup;
	/* The spec, copied. */
	char *name;
	char **argv;
	char *cwd;
	char **env;
	int stop_timeout_s;
	char *log_path;
	char *pid_path;

	enum tn_bundle_state state;
	struct tn_child child; /* pid 0 when no process runs */
	pid_t lingering_pgid;  /* stopping: the leader ended, its group not yet */
	bool killed;	       /* this stop already sent SIGKILL */
	uint64_t give_up_at;   /* ms: after SIGKILL, stop waiting for the group */
	bool adopted;
	uint64_t started_at; /* ms, of the current process */

	unsigned restarts;
	unsigned crashes;	 /* in a row, for the backoff */
	uint64_t *restart_times; /* ms of the restarts inside the window */
	size_t nrestart_times;
	uint64_t restart_in_ms;
	char reason[REASON_MAX];

	uint64_t restart_timer, kill_timer, poll_timer, done_timer;
	struct waiter *waiters;
	size_t nwaiters, capwaiters;
};

struct tn_supervisor {
	struct tn_loop *loop;
	struct tn_supervisor_config cfg;
	char *state_dir;
	struct bundle **b;
	size_t n;
	tn_sup_event_fn event_fn;
	void *ctx;
	uint64_t adopted_timer;

	bool stopping_all;
	size_t stop_next; /* bundles [0, stop_next) are still to be stopped */
	tn_sup_done_fn all_done;
	void *all_ctx;
	uint64_t all_timer;
};

static const char *const state_names[] = {
    [TN_BUNDLE_INSTALLED] = "INSTALLED", [TN_BUNDLE_RESOLVED] = "RESOLVED",
    [TN_BUNDLE_STARTING] = "STARTING",	 [TN_BUNDLE_ACTIVE] = "ACTIVE",
    [TN_BUNDLE_STOPPING] = "STOPPING",	 [TN_BUNDLE_UNINSTALLED] = "UNINSTALLED",
    [TN_BUNDLE_FAILED] = "FAILED",
};

static const char *const event_names[] = {
    [TN_SUP_STARTED] = "started", [TN_SUP_ADOPTED] = "adopted", [TN_SUP_EXITED] = "exited",
    [TN_SUP_FAILED] = "failed",	  [TN_SUP_STOPPED] = "stopped",
};

const char *tn_bundle_state_name(enum tn_bundle_state state)
{
	if ((unsigned)state >= sizeof state_names / sizeof state_names[0])
		return "UNKNOWN";
	return state_names[state];
}

const char *tn_sup_event_name(enum tn_sup_event ev)
{
	if ((unsigned)ev >= sizeof event_names / sizeof event_names[0])
		return "unknown";
	return event_names[ev];
}

/* ---------------------------------------------------------------- helpers */

static char **copy_strv(const char *const *v)
{
	size_t n = 0;
	char **out;

	if (!v)
		return NULL;
	while (v[n])
		n++;
	out = xcalloc(n + 1, sizeof *out);
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void fill_info(const struct bundle *b, struct tn_bundle_info *out)
{
	*out = (struct tn_bundle_info){
	    .name = b->name,
	    .state = b->state,
	    .restarts = b->restarts,
	    .pid = b->child.pid,
	    .adopted = b->adopted,
	    .reason = b->reason,
	    .restart_in_ms = b->restart_in_ms,
	    .log_path = b->log_path,
	};
}

static void emit(struct bundle *b, enum tn_sup_event ev)
{
	struct tn_bundle_info info;

	tn_log(ev == TN_SUP_FAILED || ev == TN_SUP_EXITED ? TN_LOG_WARN : TN_LOG_INFO, "supervisor",
	       tn_sup_event_name(ev), "{s:s, s:s, s:i, s:i, s:s}", "bundle", b->name, "state",
	       tn_bundle_state_name(b->state), "pid", (int)b->child.pid, "restarts",
	       (int)b->restarts, "reason", b->reason);
	if (!b->sup->event_fn)
		return;
	fill_info(b, &info);
	b->sup->event_fn(b->sup->ctx, ev, &info);
}

static void set_reason(struct bundle *b, const char *fmt, ...) TN_PRINTF(2, 3);
static void set_reason(struct bundle *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof b->reason, fmt, ap);
	va_end(ap);
}

/* A line of the agent's own in the bundle's log, so that a log tail shows
 * starts and exits between the bundle's output. */
static void log_note(const struct bundle *b, const char *fmt, ...) TN_PRINTF(2, 3);
static void log_note(const struct bundle *b, const char *fmt, ...)
{
	char line[512], when[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	int fd, len;

	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	len = snprintf(line, sizeof line, "== tender-agent %s: ", when);
	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof line - (size_t)len, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof line - 5)
		len = (int)sizeof line - 5;
	memcpy(line + len, " ==\n", 4);
	len += 4;
	fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)len) < 0) {
		/* a full disk must not stop the supervisor */
	}
	close(fd);
}

static void cancel_timer(struct bundle *b, uint64_t *id)
{
	tn_loop_cancel(b->sup->loop, *id);
	*id = 0;
}

static void remove_pid_file(const struct bundle *b)
{
	if (unlink(b->pid_path) != 0 && errno != ENOENT)
		tn_log(TN_LOG_WARN, "supervisor", "pid_file_remove_failed", "{s:s, s:s}", "path",
		       b->pid_path, "message", strerror(errno));
}

static bool running(const struct bundle *b)
{
	return b->child.pid > 0 || b->lingering_pgid > 0;
}

static struct bundle *find(const struct tn_supervisor *sup, const char *name)
{
	for (size_t i = 0; i < sup->n; i++)
		if (strcmp(sup->b[i]->name, name) == 0)
			return sup->b[i];
	return NULL;
}

/* ---------------------------------------------------------------- waiters */

static void add_waiter(struct bundle *b, tn_sup_done_fn fn, void *ctx)
{
	if (!fn)
		return;
	if (b->nwaiters == b->capwaiters) {
		b->capwaiters = b->capwaiters ? 2 * b->capwaiters : 2;
		b->waiters = xrealloc(b->waiters, b->capwaiters * sizeof *b->waiters);
	}
	b->waiters[b->nwaiters++] = (struct waiter){fn, ctx};
}

/* Calls and forgets the waiters.  The list is taken first: a waiter may
 * start another stop of this bundle. */
static void call_waiters(struct bundle *b)
{
	struct waiter *w = b->waiters;
	size_t n = b->nwaiters;

	b->waiters = NULL;
	b->nwaiters = b->capwaiters = 0;
	for (size_t i = 0; i < n; i++)
		w[i].fn(w[i].ctx);
	free(w);
}

static void on_done_timer(void *ctx)
{
	struct bundle *b = ctx;

	b->done_timer = 0;
	call_waiters(b);
}

/* Waiters of a stop that had nothing to wait for: called from the loop. */
static void defer_waiters(struct bundle *b)
{
	if (b->nwaiters && !b->done_timer)
		b->done_timer = tn_loop_timer(b->sup->loop, 0, on_done_timer, b);
}

/* ---------------------------------------------------------------- spawning */

static void on_exit_fd(void *ctx, int fd, short revents);

static void rotate_log(const struct bundle *b)
{
	struct stat st;
	char *old;

	if (stat(b->log_path, &st) != 0 || (uint64_t)st.st_size <= b->sup->cfg.log_max_bytes)
		return;
	old = xasprintf("%s.1", b->log_path);
	if (rename(b->log_path, old) != 0)
		tn_log(TN_LOG_WARN, "supervisor", "log_rotate_failed", "{s:s, s:s}", "path",
		       b->log_path, "message", strerror(errno));
	free(old);
}

static void write_pid_file(const struct bundle *b)
{
	char buf[64];
	struct tn_error err;
	int len =
	    snprintf(buf, sizeof buf, "%d %" PRIu64 "\n", (int)b->child.pid, b->child.start_time);

	/* Without it a restarted agent would start a second copy; the bundle
	 * itself runs fine, so this is a warning, not a failed start. */
	if (tn_write_file_atomic(b->pid_path, buf, (size_t)len, 0640, &err) != 0)
		tn_log(TN_LOG_WARN, "supervisor", "pid_file_failed", "{s:s, s:s}", "bundle",
		       b->name, "message", err.message);
}

static int spawn_bundle(struct bundle *b, struct tn_error *err)
{
	struct tn_spawn s;
	int logfd = -1, rc;

	rotate_log(b);
	logfd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0)
		return tn_fail_errno(err, errno, "bundle %s: open %s", b->name, b->log_path);
	log_note(b, "starting %s%s", b->name, b->restarts ? " (restart)" : "");
	s = (struct tn_spawn){
	    .argv = (const char *const *)b->argv,
	    .cwd = b->cwd,
	    .env = (const char *const *)b->env,
	    .stdin_fd = -1,
	    .stdout_fd = logfd,
	    .stderr_fd = logfd,
	};
	rc = tn_spawn_start(&s, &b->child, err);
	close(logfd);
	if (rc < 0) {
		tn_error_prefix(err, "bundle %s", b->name);
		log_note(b, "could not start: %s", err ? err->message : "spawn failed");
		return rc;
	}
	b->adopted = false;
	b->started_at = tn_loop_now_ms();
	b->state = TN_BUNDLE_STARTING;
	b->restart_in_ms = 0;
	write_pid_file(b);
	tn_loop_watch(b->sup->loop, b->child.pidfd, POLLIN, on_exit_fd, b);
	return 0;
}

/* Spawns and reports; on failure the bundle is FAILED. */
static int start_and_report(struct bundle *b, struct tn_error *err)
{
	struct tn_error local;
	int rc;

	if (!err)
		err = &local;
	rc = spawn_bundle(b, err);
	if (rc < 0) {
		b->state = TN_BUNDLE_FAILED;
		set_reason(b, "%s", err->message);
		emit(b, TN_SUP_FAILED);
		return rc;
	}
	emit(b, TN_SUP_STARTED);
	return 0;
}

static void on_restart_timer(void *ctx)
{
	struct bundle *b = ctx;

	b->restart_timer = 0;
	if (start_and_report(b, NULL) != 0) {
		/* reported as FAILED */
	}
}

/* ---------------------------------------------------------------- stopping */

static void finish_stop(struct bundle *b)
{
	cancel_timer(b, &b->kill_timer);
	cancel_timer(b, &b->poll_timer);
	b->lingering_pgid = 0;
	b->killed = false;
	b->state = TN_BUNDLE_RESOLVED;
	remove_pid_file(b);
	emit(b, TN_SUP_STOPPED);
	call_waiters(b);
}

static void on_group_poll(void *ctx)
{
	struct bundle *b = ctx;

	b->poll_timer = 0;
	if (!tn_group_alive(b->lingering_pgid)) {
		finish_stop(b);
		return;
	}
	if (b->killed && tn_loop_now_ms() >= b->give_up_at) {
		tn_log(TN_LOG_WARN, "supervisor", "group_survived_sigkill", "{s:s, s:i}", "bundle",
		       b->name, "pgid", (int)b->lingering_pgid);
		finish_stop(b);
		return;
	}
	b->poll_timer = tn_loop_timer(b->sup->loop, b->sup->cfg.group_poll_ms, on_group_poll, b);
}

static void on_kill_timer(void *ctx)
{
	struct bundle *b = ctx;

	b->kill_timer = 0;
	b->killed = true;
	b->give_up_at = tn_loop_now_ms() + KILL_GRACE_MS;
	log_note(b, "%s did not stop within %d s: SIGKILL", b->name, b->stop_timeout_s);
	tn_log(TN_LOG_WARN, "supervisor", "stop_timeout", "{s:s, s:i}", "bundle", b->name,
	       "stop_timeout_s", b->stop_timeout_s);
	if (b->child.pid > 0) {
		/* The pidfd reports the end of the leader. */
		tn_child_signal_group(&b->child, SIGKILL);
		return;
	}
	/* Only stragglers of a finished leader: the group check goes on
	 * until they are gone. */
	tn_group_signal(b->lingering_pgid, SIGKILL);
}

static void begin_stop(struct bundle *b)
{
	int rc;

	b->state = TN_BUNDLE_STOPPING;
	b->killed = false;
	log_note(b, "stopping %s (SIGTERM)", b->name);
	rc = tn_child_signal_group(&b->child, SIGTERM);
	if (rc < 0 && rc != -ESRCH)
		tn_log(TN_LOG_WARN, "supervisor", "signal_failed", "{s:s, s:s}", "bundle", b->name,
		       "message", strerror(-rc));
	b->kill_timer =
	    tn_loop_timer(b->sup->loop, (uint64_t)b->stop_timeout_s * 1000, on_kill_timer, b);
}

static void stop_bundle(struct bundle *b, tn_sup_done_fn fn, void *ctx)
{
	add_waiter(b, fn, ctx);
	if (b->state == TN_BUNDLE_STOPPING)
		return; /* already on its way down */
	if (b->child.pid > 0) {
		begin_stop(b);
		return;
	}
	if (b->restart_timer) {
		cancel_timer(b, &b->restart_timer);
		b->state = TN_BUNDLE_RESOLVED;
		b->restart_in_ms = 0;
		emit(b, TN_SUP_STOPPED);
	}
	defer_waiters(b);
}

/* ---------------------------------------------------------------- exits */

static uint64_t backoff_ms(const struct bundle *b)
{
	const struct tn_supervisor_config *cfg = &b->sup->cfg;
	uint64_t d = cfg->backoff_base_ms;

	for (unsigned i = 1; i < b->crashes && d < cfg->backoff_cap_ms; i++)
		d *= 2;
	return d < cfg->backoff_cap_ms ? d : cfg->backoff_cap_ms;
}

/* The bundle exited without being asked to: restart it after a backoff,
 * or give up when it has been restarted too often lately. */
static void on_crash(struct bundle *b, bool exec_failed)
{
	const struct tn_supervisor_config *cfg = &b->sup->cfg;
	uint64_t now = tn_loop_now_ms();
	size_t kept = 0;

	remove_pid_file(b);
	if (exec_failed) {
		/* The program cannot run at all: retrying cannot help. */
		b->state = TN_BUNDLE_FAILED;
		emit(b, TN_SUP_FAILED);
		return;
	}
	if (b->sup->stopping_all) {
		b->state = TN_BUNDLE_RESOLVED;
		emit(b, TN_SUP_STOPPED);
		return;
	}
	if (now - b->started_at >= cfg->restart_window_ms)
		b->crashes = 0;
	b->crashes++;
	for (size_t i = 0; i < b->nrestart_times; i++)
		if (now - b->restart_times[i] < cfg->restart_window_ms)
			b->restart_times[kept++] = b->restart_times[i];
	b->nrestart_times = kept;
	if (b->nrestart_times >= cfg->restart_limit) {
		char last[REASON_MAX];

		memcpy(last, b->reason, sizeof last);
		set_reason(b, "restarted %u times within %" PRIu64 " s; last: %s",
			   (unsigned)b->nrestart_times, (cfg->restart_window_ms + 999) / 1000,
			   last);
		b->state = TN_BUNDLE_FAILED;
		log_note(b, "%s failed: %s", b->name, b->reason);
		emit(b, TN_SUP_FAILED);
		return;
	}
	b->restart_times[b->nrestart_times++] = now;
	b->restarts++;
	b->restart_in_ms = backoff_ms(b);
	b->state = TN_BUNDLE_STARTING;
	b->restart_timer = tn_loop_timer(b->sup->loop, b->restart_in_ms, on_restart_timer, b);
	emit(b, TN_SUP_EXITED);
}

static void on_exit_fd(void *ctx, int fd, short revents)
{
	struct bundle *b = ctx;
	struct tn_exit ex;
	pid_t pgid = b->child.pgid, pid = b->child.pid;

	tn_loop_unwatch(b->sup->loop, fd);
	tn_child_reap(&b->child, &ex);
	tn_exit_describe(&ex, b->argv[0], b->cwd, b->reason, sizeof b->reason);
	log_note(b, "%s (pid %d) %s", b->name, (int)pid, b->reason);
	if (b->state == TN_BUNDLE_STOPPING) {
		if (pgid > 0 && tn_group_alive(pgid)) {
			/* Its children got the SIGTERM too: give them the
			 * rest of the stop timeout (or, after SIGKILL, the
			 * moment the kernel needs). */
			if (b->killed)
				tn_group_signal(pgid, SIGKILL);
			b->lingering_pgid = pgid;
			b->poll_timer = tn_loop_timer(b->sup->loop, b->sup->cfg.group_poll_ms,
						      on_group_poll, b);
			return;
		}
		finish_stop(b);
		return;
	}
	/* A bundle is its whole group: what its leader left behind would
	 * collide with the restarted copy (ports, files). */
	if (pgid > 0)
		tn_group_signal(pgid, SIGKILL);
	on_crash(b, ex.exec_errno != 0);
}

/* ---------------------------------------------------------------- adoption */

static int parse_pid_file(const char *buf, pid_t *pid, uint64_t *start)
{
	char *end;
	long p;
	unsigned long long t;

	errno = 0;
	p = strtol(buf, &end, 10);
	if (errno || end == buf || *end != ' ' || p <= 0 || p > INT32_MAX)
		return -1;
	buf = end + 1;
	t = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end != '\n' && *end != '\0'))
		return -1;
	*pid = (pid_t)p;
	*start = t;
	return 0;
}

/* Adopts b's process from its pid file, or removes a stale file. */
static int adopt(struct bundle *b, struct tn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	pid_t pid = 0;
	uint64_t start = 0;
	struct tn_error rerr;
	int rc;

	if (tn_read_file(b->pid_path, PIDFILE_MAX, &buf, &len, &rerr) != 0) {
		if (rerr.code == TN_E_NOT_FOUND || access(b->pid_path, F_OK) != 0)
			return 0;
		goto stale; /* unreadable or oversized */
	}
	if (parse_pid_file(buf, &pid, &start) != 0)
		goto stale;
	rc = tn_child_adopt(pid, start, &b->child, err);
	if (rc < 0) {
		tn_error_prefix(err, "bundle %s: adopt pid %d", b->name, (int)pid);
		goto out;
	}
	if (rc == 1) {
		b->adopted = true;
		b->state = TN_BUNDLE_STARTING;
		b->started_at = tn_loop_now_ms();
		tn_loop_watch(b->sup->loop, b->child.pidfd, POLLIN, on_exit_fd, b);
		log_note(b, "adopted %s (pid %d) after an agent restart", b->name, (int)pid);
		rc = 0;
		goto out;
	}
stale:
	tn_log(TN_LOG_INFO, "supervisor", "stale_pid_file", "{s:s, s:i}", "bundle", b->name, "pid",
	       (int)pid);
	remove_pid_file(b);
	rc = 0;
out:
	free(buf);
	return rc;
}

static void on_adopted_timer(void *ctx)
{
	struct tn_supervisor *sup = ctx;

	sup->adopted_timer = 0;
	for (size_t i = 0; i < sup->n; i++)
		if (sup->b[i]->adopted && sup->b[i]->child.pid > 0)
			emit(sup->b[i], TN_SUP_ADOPTED);
}

/* ---------------------------------------------------------------- life */

static bool valid_name(const char *name)
{
	return name && strlen(name) <= NAME_MAX_LEN && tn_path_is_safe_relative(name) &&
	       !strchr(name, '/');
}

static void bundle_free(struct bundle *b)
{
	if (!b)
		return;
	free(b->name);
	free_strv(b->argv);
	free(b->cwd);
	free_strv(b->env);
	free(b->log_path);
	free(b->pid_path);
	free(b->restart_times);
	free(b->waiters);
	free(b);
}

int tn_supervisor_new(struct tn_loop *loop, const struct tn_supervisor_config *config,
		      const struct tn_bundle_spec *specs, size_t n, tn_sup_event_fn event_fn,
		      void *ctx, struct tn_supervisor **out, struct tn_error *err)
{
	struct tn_supervisor *sup = NULL;
	char *logs = NULL, *run = NULL;
	bool any_adopted = false;
	int rc = 0;

	*out = NULL;
	if (!config || !config->state_dir || !*config->state_dir)
		return tn_fail(err, TN_E_INVALID, "supervisor: no state directory");
	for (size_t i = 0; i < n; i++) {
		if (!valid_name(specs[i].name))
			return tn_fail(err, TN_E_INVALID,
				       "bundle name \"%s\": not a safe file name",
				       specs[i].name ? specs[i].name : "");
		if (!specs[i].argv || !specs[i].argv[0] || !specs[i].argv[0][0])
			return tn_fail(err, TN_E_INVALID, "bundle %s: empty command",
				       specs[i].name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(specs[i].name, specs[j].name) == 0)
				return tn_fail(err, TN_E_INVALID, "bundle %s: listed twice",
					       specs[i].name);
	}
	sup = xcalloc(1, sizeof *sup);
	sup->loop = loop;
	sup->cfg = *config;
	sup->state_dir = xstrdup(config->state_dir);
	sup->cfg.state_dir = sup->state_dir;
	if (!sup->cfg.backoff_base_ms)
		sup->cfg.backoff_base_ms = DEFAULT_BACKOFF_BASE_MS;
	if (!sup->cfg.backoff_cap_ms)
		sup->cfg.backoff_cap_ms = DEFAULT_BACKOFF_CAP_MS;
	if (sup->cfg.backoff_cap_ms < sup->cfg.backoff_base_ms)
		sup->cfg.backoff_cap_ms = sup->cfg.backoff_base_ms;
	if (!sup->cfg.restart_limit)
		sup->cfg.restart_limit = DEFAULT_RESTART_LIMIT;
	if (!sup->cfg.restart_window_ms)
		sup->cfg.restart_window_ms = DEFAULT_RESTART_WINDOW_MS;
	if (!sup->cfg.log_max_bytes)
		sup->cfg.log_max_bytes = DEFAULT_LOG_MAX_BYTES;
	if (!sup->cfg.group_poll_ms)
		sup->cfg.group_poll_ms = DEFAULT_GROUP_POLL_MS;
	sup->event_fn = event_fn;
	sup->ctx = ctx;

	logs = xasprintf("%s/logs", sup->state_dir);
	run = xasprintf("%s/run", sup->state_dir);
	rc = tn_mkdir_p(logs, 0750, err);
	if (rc == 0)
		rc = tn_mkdir_p(run, 0750, err);
	if (rc < 0)
		goto out;

	sup->b = xcalloc(n ? n : 1, sizeof *sup->b);
	for (size_t i = 0; i < n; i++) {
		struct bundle *b = xcalloc(1, sizeof *b);

		sup->b[sup->n++] = b;
		b->sup = sup;
		b->name = xstrdup(specs[i].name);
		b->argv = copy_strv(specs[i].argv);
		b->cwd = specs[i].cwd ? xstrdup(specs[i].cwd) : NULL;
		b->env = copy_strv(specs[i].env);
		b->stop_timeout_s =
		    specs[i].stop_timeout_s > 0 ? specs[i].stop_timeout_s : DEFAULT_STOP_TIMEOUT_S;
		b->log_path = xasprintf("%s/%s.log", logs, b->name);
		b->pid_path = xasprintf("%s/%s.pid", run, b->name);
		b->state = TN_BUNDLE_INSTALLED;
		b->child = (struct tn_child){0, -1, -1, 0, 0, false};
		b->restart_times = xcalloc(sup->cfg.restart_limit, sizeof *b->restart_times);
	}
	for (size_t i = 0; i < sup->n; i++) {
		rc = adopt(sup->b[i], err);
		if (rc < 0)
			goto out;
		any_adopted |= sup->b[i]->adopted;
	}
	if (any_adopted)
		sup->adopted_timer = tn_loop_timer(loop, 0, on_adopted_timer, sup);
	*out = sup;
	sup = NULL;
out:
	tn_supervisor_free(sup);
	free(logs);
	free(run);
	return rc;
}

void tn_supervisor_free(struct tn_supervisor *sup)
{
	if (!sup)
		return;
	tn_loop_cancel(sup->loop, sup->adopted_timer);
	tn_loop_cancel(sup->loop, sup->all_timer);
	for (size_t i = 0; i < sup->n; i++) {
		struct bundle *b = sup->b[i];

		cancel_timer(b, &b->restart_timer);
		cancel_timer(b, &b->kill_timer);
		cancel_timer(b, &b->poll_timer);
		cancel_timer(b, &b->done_timer);
		if (b->child.pid > 0) {
			tn_loop_unwatch(sup->loop, b->child.pidfd);
			/* The process keeps running, pid file and all, for
			 * whoever comes next to adopt. */
			tn_child_forget(&b->child);
		}
		bundle_free(b);
	}
	free(sup->b);
	free(sup->state_dir);
	free(sup);
}

int tn_supervisor_start(struct tn_supervisor *sup, const char *name, struct tn_error *err)
{
	struct bundle *b = find(sup, name);

	if (!b)
		return tn_fail(err, TN_E_NOT_FOUND, "no bundle %s", name);
	if (sup->stopping_all)
		return tn_fail(err, TN_E_CONFLICT, "bundle %s: all bundles are stopping", name);
	if (b->state == TN_BUNDLE_STOPPING)
		return tn_fail(err, TN_E_CONFLICT, "bundle %s: stopping", name);
	if (b->state == TN_BUNDLE_UNINSTALLED)
		return tn_fail(err, TN_E_CONFLICT, "bundle %s: uninstalled", name);
	if (running(b) || b->restart_timer)
		return 0;
	b->restarts = 0;
	b->crashes = 0;
	b->nrestart_times = 0;
	b->reason[0] = '\0';
	return start_and_report(b, err);
}

int tn_supervisor_start_all(struct tn_supervisor *sup, struct tn_error *err)
{
	for (size_t i = 0; i < sup->n; i++) {
		int rc = tn_supervisor_start(sup, sup->b[i]->name, err);

		if (rc < 0)
			return rc;
	}
	return 0;
}

void tn_supervisor_set_active(struct tn_supervisor *sup, const char *name)
{
	struct bundle *b = find(sup, name);

	if (b && b->state == TN_BUNDLE_STARTING && b->child.pid > 0)
		b->state = TN_BUNDLE_ACTIVE;
}

int tn_supervisor_stop(struct tn_supervisor *sup, const char *name, tn_sup_done_fn done, void *ctx,
		       struct tn_error *err)
{
	struct bundle *b = find(sup, name);

	if (!b)
		return tn_fail(err, TN_E_NOT_FOUND, "no bundle %s", name);
	stop_bundle(b, done, ctx);
	return 0;
}

static void stop_all_step(void *ctx);

static void on_all_timer(void *ctx)
{
	struct tn_supervisor *sup = ctx;
	tn_sup_done_fn fn = sup->all_done;
	void *fctx = sup->all_ctx;

	sup->all_timer = 0;
	sup->all_done = NULL;
	/* Last: the callback may free the supervisor. */
	if (fn)
		fn(fctx);
}

/* Stops the next running bundle from the end, or finishes. */
static void stop_all_step(void *ctx)
{
	struct tn_supervisor *sup = ctx;

	while (sup->stop_next > 0) {
		struct bundle *b = sup->b[--sup->stop_next];

		if (running(b) || b->restart_timer) {
			stop_bundle(b, stop_all_step, sup);
			return;
		}
	}
	sup->stopping_all = false;
	tn_log(TN_LOG_INFO, "supervisor", "all_stopped", NULL);
	sup->all_timer = tn_loop_timer(sup->loop, 0, on_all_timer, sup);
}

int tn_supervisor_stop_all(struct tn_supervisor *sup, tn_sup_done_fn done, void *ctx,
			   struct tn_error *err)
{
	if (sup->stopping_all || sup->all_timer)
		return tn_fail(err, TN_E_CONFLICT, "already stopping all bundles");
	sup->stopping_all = true;
	sup->stop_next = sup->n;
	sup->all_done = done;
	sup->all_ctx = ctx;
	stop_all_step(sup);
	return 0;
}

int tn_supervisor_uninstall(struct tn_supervisor *sup, const char *name, struct tn_error *err)
{
	struct bundle *b = find(sup, name);

	if (!b)
		return tn_fail(err, TN_E_NOT_FOUND, "no bundle %s", name);
	if (running(b) || b->restart_timer || b->state == TN_BUNDLE_STOPPING)
		return tn_fail(err, TN_E_CONFLICT, "bundle %s: still running; stop it first", name);
	b->state = TN_BUNDLE_UNINSTALLED;
	remove_pid_file(b);
	return 0;
}

size_t tn_supervisor_count(const struct tn_supervisor *sup)
{
	return sup->n;
}

bool tn_supervisor_get(const struct tn_supervisor *sup, size_t i, struct tn_bundle_info *out)
{
	if (i >= sup->n)
		return false;
	fill_info(sup->b[i], out);
	return true;
}

bool tn_supervisor_find(const struct tn_supervisor *sup, const char *name,
			struct tn_bundle_info *out)
{
	const struct bundle *b = find(sup, name);

	if (!b)
		return false;
	fill_info(b, out);
	return true;
}

bool tn_supervisor_all_down(const struct tn_supervisor *sup)
{
	for (size_t i = 0; i < sup->n; i++)
		if (running(sup->b[i]) || sup->b[i]->restart_timer)
			return false;
	return true;
}

int tn_supervisor_log_tail(const struct tn_supervisor *sup, const char *name, size_t max,
			   char **out, size_t *len, struct tn_error *err)
{
	const struct bundle *b = find(sup, name);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	off_t from;
	int fd = -1, rc = 0;

	*out = NULL;
	*len = 0;
	if (!b)
		return tn_fail(err, TN_E_NOT_FOUND, "no bundle %s", name);
	if (max > TAIL_MAX)
		max = TAIL_MAX;
	fd = open(b->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return tn_fail_errno(err, errno, "open %s", b->log_path);
		*out = xstrdup("");
		return 0;
	}
	if (fstat(fd, &st) != 0) {
		rc = tn_fail_errno(err, errno, "stat %s", b->log_path);
		goto out;
	}
	from = (uint64_t)st.st_size > max ? st.st_size - (off_t)max : 0;
	buf = xmalloc(max + 1);
	while (got < max) {
		ssize_t r = pread(fd, buf + got, max - got, from + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = tn_fail_errno(err, errno, "read %s", b->log_path);
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (from > 0) {
		char *nl = memchr(buf, '\n', got);

		/* A cut line is noise at the top of a report. */
		if (nl && (size_t)(nl - buf) + 1 < got) {
			size_t skip = (size_t)(nl - buf) + 1;

			memmove(buf, buf + skip, got - skip + 1);
			got -= skip;
		}
	}
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}
