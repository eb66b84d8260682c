/* probe.c - see probe.h.  An attempt is a small state machine on one fd
 * (http, tcp) or one pidfd plus an output pipe (exec), with a timeout timer;
 * its result is always delivered through a 0 ms timer, so a failure found
 * inside tn_probe_start still reaches the caller from the loop. */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spawn.h"
#include "xalloc.h"

#define MSG_MAX 512
#define STATUS_LINE_MAX 512 /* bytes read looking for the status line */
#define OUTPUT_KEEP 200	    /* bytes of an exec probe's output kept */
#define DEFAULT_UNHEALTHY_AFTER 3

enum phase { CONNECTING, SENDING, READING, RUNNING, DONE };

struct tn_probe {
	struct tn_loop *loop;
	enum tn_probe_kind kind;
	tn_probe_done_fn fn;
	void *ctx;
	int timeout_ms;
	enum phase phase;
	char what[160]; /* "GET /healthz", "connect 127.0.0.1:8081", "exec check" */
	char addr[32];	/* "127.0.0.1:8081" */

	/* http, tcp */
	int fd;
	char *req;
	size_t req_len, req_off;
	char buf[STATUS_LINE_MAX + 1];
	size_t got;

	/* exec */
	struct tn_child child;
	int out_fd;
	char out[OUTPUT_KEEP + 1];
	size_t out_len;
	bool timed_out;

	uint64_t timeout_timer, result_timer;
	bool pass;
	char msg[MSG_MAX];
};

static void finish(struct tn_probe *p, bool pass, const char *fmt, ...) TN_PRINTF(3, 4);

/* ---------------------------------------------------------------- spec */

void tn_probe_spec_from_manifest(struct tn_probe_spec *spec, const struct tn_manifest_health *h,
				 bool has_health)
{
	memset(spec, 0, sizeof *spec);
	spec->kind = has_health ? h->kind : TN_PROBE_NONE;
	spec->http_path = h->http_path;
	spec->port = h->port;
	spec->exec = h->exec;
	spec->interval_ms = h->interval_ms;
	spec->timeout_ms = h->timeout_ms;
	spec->healthy_after = h->healthy_after;
	spec->deadline_ms = (uint64_t)h->deadline_s * 1000;
}

static int parse_port(const char *s, uint16_t *out, struct tn_error *err)
{
	char *end;
	long v;

	if (!s || !*s)
		return tn_fail(err, TN_E_INVALID, "health.port: missing");
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 65535 || s[0] == '+' || s[0] == '-' ||
	    s[0] == ' ') {
		struct tn_shown shown;

		return tn_fail(err, TN_E_INVALID, "health.port: \"%s\" is not a port (1..65535)",
			       tn_show(s, strlen(s), &shown));
	}
	*out = (uint16_t)v;
	return 0;
}

static int check_spec(const struct tn_probe_spec *spec, uint16_t *port, struct tn_error *err)
{
	switch (spec->kind) {
	case TN_PROBE_HTTP:
		if (!spec->http_path || spec->http_path[0] != '/' ||
		    strpbrk(spec->http_path, " \r\n"))
			return tn_fail(err, TN_E_INVALID,
				       "health.http: a path starting with '/' without spaces");
		return parse_port(spec->port, port, err);
	case TN_PROBE_TCP:
		return parse_port(spec->port, port, err);
	case TN_PROBE_EXEC:
		if (!spec->exec || !spec->exec[0] || !spec->exec[0][0])
			return tn_fail(err, TN_E_INVALID, "health.exec: empty command");
		return 0;
	case TN_PROBE_NONE:
		return 0;
	}
	return tn_fail(err, TN_E_INVALID, "health: unknown probe kind %d", (int)spec->kind);
}

/* ---------------------------------------------------------------- attempt */

static void release(struct tn_probe *p)
{
	tn_loop_cancel(p->loop, p->timeout_timer);
	p->timeout_timer = 0;
	if (p->fd >= 0) {
		tn_loop_unwatch(p->loop, p->fd);
		close(p->fd);
		p->fd = -1;
	}
	if (p->out_fd >= 0) {
		tn_loop_unwatch(p->loop, p->out_fd);
		close(p->out_fd);
		p->out_fd = -1;
	}
	if (p->child.pid > 0) {
		tn_loop_unwatch(p->loop, p->child.pidfd);
		tn_child_kill_reap(&p->child);
	}
}

static void on_result_timer(void *ctx)
{
	struct tn_probe *p = ctx;
	tn_probe_done_fn fn = p->fn;
	void *fctx = p->ctx;
	char msg[MSG_MAX];
	bool pass = p->pass;

	memcpy(msg, p->msg, sizeof msg);
	free(p->req);
	free(p);
	fn(fctx, pass, msg);
}

static void finish(struct tn_probe *p, bool pass, const char *fmt, ...)
{
	va_list ap;

	if (p->phase == DONE)
		return;
	p->phase = DONE;
	p->pass = pass;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof p->msg, fmt, ap);
	va_end(ap);
	release(p);
	p->result_timer = tn_loop_timer(p->loop, 0, on_result_timer, p);
}

static void on_timeout(void *ctx)
{
	struct tn_probe *p = ctx;

	p->timeout_timer = 0;
	switch (p->phase) {
	case CONNECTING:
		finish(p, false, "connect %s: no connection within %d ms", p->addr, p->timeout_ms);
		break;
	case SENDING:
	case READING:
		finish(p, false, "%s: no status line within %d ms", p->what, p->timeout_ms);
		break;
	case RUNNING:
		/* Killed now, reported when reaped. */
		p->timed_out = true;
		tn_child_signal_group(&p->child, SIGKILL);
		break;
	case DONE:
		break;
	}
}

/* "HTTP/1.1 503 Service Unavailable" -> 503; -1 if not a status line. */
static int status_code(const char *line, size_t len)
{
	size_t i = 5;
	int code = 0;

	if (len < 12 || memcmp(line, "HTTP/", 5) != 0)
		return -1;
	while (i < len && line[i] != ' ')
		i++;
	if (i + 4 > len)
		return -1;
	for (size_t k = i + 1; k < i + 4; k++) {
		if (line[k] < '0' || line[k] > '9')
			return -1;
		code = code * 10 + (line[k] - '0');
	}
	if (i + 4 < len && line[i + 4] != ' ' && line[i + 4] != '\r')
		return -1;
	return code;
}

static void http_read(struct tn_probe *p)
{
	for (;;) {
		ssize_t n = recv(p->fd, p->buf + p->got, STATUS_LINE_MAX - p->got, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			finish(p, false, "%s: %s", p->what, strerror(errno));
			return;
		}
		p->got += (size_t)n;
		p->buf[p->got] = '\0';
		nl = memchr(p->buf, '\n', p->got);
		if (nl || n == 0 || p->got == STATUS_LINE_MAX) {
			size_t len = nl ? (size_t)(nl - p->buf) : p->got;
			int code;
			struct tn_shown shown;

			if (!nl && n == 0) {
				finish(p, false, "%s: connection closed before the status line",
				       p->what);
				return;
			}
			code = status_code(p->buf, len);
			if (code < 0)
				finish(p, false, "%s: not an HTTP status line: \"%s\"", p->what,
				       tn_show(p->buf, len, &shown));
			else
				finish(p, code >= 200 && code <= 299, "%s: HTTP %d", p->what, code);
			return;
		}
	}
}

static void http_send(struct tn_probe *p)
{
	while (p->req_off < p->req_len) {
		ssize_t n = send(p->fd, p->req + p->req_off, p->req_len - p->req_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			finish(p, false, "%s: %s", p->what, strerror(errno));
			return;
		}
		p->req_off += (size_t)n;
	}
	p->phase = READING;
	tn_loop_modify(p->loop, p->fd, POLLIN);
}

static void on_socket(void *ctx, int fd, short revents)
{
	struct tn_probe *p = ctx;

	if (p->phase == CONNECTING) {
		int soerr = 0;
		socklen_t len = sizeof soerr;

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
			soerr = errno;
		if (soerr) {
			finish(p, false, "connect %s: %s", p->addr, strerror(soerr));
			return;
		}
		if (p->kind == TN_PROBE_TCP) {
			finish(p, true, "connect %s: ok", p->addr);
			return;
		}
		p->phase = SENDING;
	}
	if (p->phase == SENDING) {
		http_send(p);
		return;
	}
	if (p->phase == READING)
		http_read(p);
}

static void start_socket(struct tn_probe *p, uint16_t port)
{
	struct sockaddr_in sa;

	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		finish(p, false, "connect %s: socket: %s", p->addr, strerror(errno));
		return;
	}
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(p->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
		finish(p, false, "connect %s: %s", p->addr, strerror(errno));
		return;
	}
	/* Connected or on its way: writable tells, with SO_ERROR. */
	tn_loop_watch(p->loop, p->fd, POLLOUT, on_socket, p);
}

/* Keeps the first OUTPUT_KEEP bytes and drains the rest, so a chatty probe
 * never blocks on a full pipe. */
static void drain_output(struct tn_probe *p)
{
	char junk[1024];

	for (int i = 0; i < 64 && p->out_fd >= 0; i++) {
		bool keep = p->out_len < OUTPUT_KEEP;
		ssize_t n = keep ? read(p->out_fd, p->out + p->out_len, OUTPUT_KEEP - p->out_len)
				 : read(p->out_fd, junk, sizeof junk);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return; /* EAGAIN: nothing more for now */
		if (n == 0) {
			tn_loop_unwatch(p->loop, p->out_fd);
			close(p->out_fd);
			p->out_fd = -1;
			return;
		}
		if (keep)
			p->out_len += (size_t)n;
	}
}

static void on_output(void *ctx, int fd, short revents)
{
	drain_output(ctx);
}

/* The first line of the output, for the failure message. */
static const char *first_line(struct tn_probe *p, struct tn_shown *shown)
{
	size_t len = 0;

	while (len < p->out_len && p->out[len] != '\n' && p->out[len] != '\r')
		len++;
	return tn_show(p->out, len, shown);
}

static void on_exec_exit(void *ctx, int fd, short revents)
{
	struct tn_probe *p = ctx;
	struct tn_exit ex;
	struct tn_shown shown;
	pid_t pgid = p->child.pgid;
	char why[MSG_MAX];

	tn_loop_unwatch(p->loop, fd);
	tn_child_reap(&p->child, &ex);
	/* Whatever it left behind in its group goes with it. */
	tn_group_signal(pgid, SIGKILL);
	drain_output(p);
	if (p->timed_out) {
		finish(p, false, "%s: no result within %d ms", p->what, p->timeout_ms);
		return;
	}
	if (ex.known && !ex.signal && !ex.exec_errno && ex.code == 0) {
		finish(p, true, "%s: exit 0", p->what);
		return;
	}
	tn_exit_describe(&ex, NULL, NULL, why, sizeof why);
	if (ex.exec_errno)
		finish(p, false, "%s: %s", p->what, strerror(ex.exec_errno));
	else if (p->out_len)
		finish(p, false, "%s: %s: %s", p->what, why, first_line(p, &shown));
	else
		finish(p, false, "%s: %s", p->what, why);
}

static void start_exec(struct tn_probe *p, const struct tn_probe_spec *spec)
{
	int pipefd[2] = {-1, -1};
	struct tn_spawn s;
	struct tn_error err;
	int rc;

	/* Only our end is non-blocking: the probe writes as it likes. */
	if (pipe2(pipefd, O_CLOEXEC) != 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) != 0) {
		finish(p, false, "%s: pipe: %s", p->what, strerror(errno));
		goto out;
	}
	s = (struct tn_spawn){
	    .argv = spec->exec,
	    .cwd = spec->cwd,
	    .env = NULL,
	    .stdin_fd = -1,
	    .stdout_fd = pipefd[1],
	    .stderr_fd = pipefd[1],
	};
	rc = tn_spawn_start(&s, &p->child, &err);
	if (rc < 0) {
		finish(p, false, "exec %s", err.message);
		goto out;
	}
	p->phase = RUNNING;
	p->out_fd = pipefd[0];
	pipefd[0] = -1;
	tn_loop_watch(p->loop, p->out_fd, POLLIN, on_output, p);
	tn_loop_watch(p->loop, p->child.pidfd, POLLIN, on_exec_exit, p);
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
}

int tn_probe_start(struct tn_loop *loop, const struct tn_probe_spec *spec, tn_probe_done_fn fn,
		   void *ctx, struct tn_probe **out, struct tn_error *err)
{
	struct tn_probe *p;
	uint16_t port = 0;
	int rc = check_spec(spec, &port, err);

	if (out)
		*out = NULL;
	if (rc < 0)
		return rc;
	p = xcalloc(1, sizeof *p);
	p->loop = loop;
	p->kind = spec->kind;
	p->fn = fn;
	p->ctx = ctx;
	p->fd = -1;
	p->out_fd = -1;
	p->child = (struct tn_child){0, -1, -1, 0, 0, false};
	p->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : TN_MANIFEST_TIMEOUT_MS;
	snprintf(p->addr, sizeof p->addr, "127.0.0.1:%u", (unsigned)port);
	if (out)
		*out = p;
	p->timeout_timer = tn_loop_timer(loop, (uint64_t)p->timeout_ms, on_timeout, p);
	switch (spec->kind) {
	case TN_PROBE_HTTP:
		snprintf(p->what, sizeof p->what, "GET %s", spec->http_path);
		p->req = xasprintf("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: tender-agent\r\n"
				   "Connection: close\r\n\r\n",
				   spec->http_path, p->addr);
		p->req_len = strlen(p->req);
		p->phase = CONNECTING;
		start_socket(p, port);
		break;
	case TN_PROBE_TCP:
		snprintf(p->what, sizeof p->what, "connect %s", p->addr);
		p->phase = CONNECTING;
		start_socket(p, port);
		break;
	case TN_PROBE_EXEC:
		snprintf(p->what, sizeof p->what, "exec %s", spec->exec[0]);
		start_exec(p, spec);
		break;
	case TN_PROBE_NONE: {
		pid_t pid = spec->up ? spec->up(spec->up_ctx) : 1;

		snprintf(p->what, sizeof p->what, "process");
		if (pid > 0)
			finish(p, true, "process running");
		else
			finish(p, false, "process not running");
		break;
	}
	}
	return 0;
}

void tn_probe_cancel(struct tn_probe *p)
{
	if (!p)
		return;
	release(p);
	tn_loop_cancel(p->loop, p->result_timer);
	free(p->req);
	free(p);
}

/* ---------------------------------------------------------------- tracker */

enum status { UNKNOWN, HEALTHY, UNHEALTHY };

struct tn_health {
	struct tn_loop *loop;
	struct tn_probe_spec spec; /* strings point at the copies below */
	char *http_path, *port, *cwd, **exec;
	tn_health_fn fn;
	void *ctx;

	bool commit;   /* still deciding the commit */
	bool given_up; /* the commit failed: no more probing */
	enum status status;
	int passes, fails;
	pid_t last_pid;
	struct tn_probe *attempt;
	uint64_t attempt_started;
	uint64_t tick_timer, deadline_timer;
	char last_failure[MSG_MAX];
};

static const char *const health_event_names[] = {
    [TN_HEALTH_COMMIT_OK] = "commit_ok",
    [TN_HEALTH_COMMIT_FAIL] = "commit_fail",
    [TN_HEALTH_HEALTHY] = "healthy",
    [TN_HEALTH_UNHEALTHY] = "unhealthy",
};

const char *tn_health_event_name(enum tn_health_event ev)
{
	if ((unsigned)ev >= sizeof health_event_names / sizeof health_event_names[0])
		return "unknown";
	return health_event_names[ev];
}

static void tick(void *ctx);

static void schedule_next(struct tn_health *h)
{
	uint64_t now = tn_loop_now_ms(), due = h->attempt_started + (uint64_t)h->spec.interval_ms;

	h->tick_timer = tn_loop_timer(h->loop, due > now ? due - now : 0, tick, h);
}

/* Counts one result and reports a change; the report is the last thing
 * done, since the callback may free h. */
static void record(struct tn_health *h, bool pass, const char *msg)
{
	bool emit_event = false;
	enum tn_health_event ev = TN_HEALTH_HEALTHY;
	char text[MSG_MAX];

	text[0] = '\0';
	if (pass) {
		h->passes++;
		h->fails = 0;
	} else {
		h->fails++;
		h->passes = 0;
		snprintf(h->last_failure, sizeof h->last_failure, "%s", msg);
	}
	schedule_next(h);
	if (h->commit) {
		if (h->passes >= h->spec.healthy_after) {
			h->commit = false;
			h->status = HEALTHY;
			tn_loop_cancel(h->loop, h->deadline_timer);
			h->deadline_timer = 0;
			emit_event = true;
			ev = TN_HEALTH_COMMIT_OK;
		}
	} else if (h->status != HEALTHY && h->passes >= h->spec.healthy_after) {
		h->status = HEALTHY;
		emit_event = true;
		ev = TN_HEALTH_HEALTHY;
	} else if (h->status != UNHEALTHY && h->fails >= h->spec.unhealthy_after) {
		h->status = UNHEALTHY;
		emit_event = true;
		ev = TN_HEALTH_UNHEALTHY;
		snprintf(text, sizeof text, "%s", msg);
	}
	if (emit_event)
		h->fn(h->ctx, ev, ev == TN_HEALTH_UNHEALTHY ? text : NULL);
}

static void on_attempt(void *ctx, bool pass, const char *message)
{
	struct tn_health *h = ctx;

	h->attempt = NULL;
	record(h, pass, message);
}

static void tick(void *ctx)
{
	struct tn_health *h = ctx;
	pid_t pid = h->spec.up ? h->spec.up(h->spec.up_ctx) : 0;
	struct tn_error err;

	h->tick_timer = 0;
	h->attempt_started = tn_loop_now_ms();
	if (h->spec.up) {
		if (pid <= 0) {
			record(h, false, "process not running");
			return;
		}
		if (h->last_pid > 0 && pid != h->last_pid) {
			char text[MSG_MAX];
			pid_t before = h->last_pid;

			h->last_pid = pid;
			h->passes = 0;
			if (!h->commit && h->status == HEALTHY) {
				/* A restart between two probes is no less a
				 * failure for being quick. */
				h->status = UNHEALTHY;
				snprintf(text, sizeof text, "restarted (pid %d -> %d)", (int)before,
					 (int)pid);
				snprintf(h->last_failure, sizeof h->last_failure, "%s", text);
				h->tick_timer = tn_loop_timer(h->loop, 0, tick, h);
				h->fn(h->ctx, TN_HEALTH_UNHEALTHY, text);
				return;
			}
		}
		h->last_pid = pid;
	}
	if (h->spec.kind == TN_PROBE_NONE) {
		record(h, true, "process running");
		return;
	}
	if (tn_probe_start(h->loop, &h->spec, on_attempt, h, &h->attempt, &err) != 0)
		record(h, false, err.message);
}

static void format_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 " s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 " ms", ms);
}

static void on_deadline(void *ctx)
{
	struct tn_health *h = ctx;
	char msg[2 * MSG_MAX], dur[32];

	h->deadline_timer = 0;
	if (!h->commit)
		return;
	h->commit = false;
	h->given_up = true;
	tn_probe_cancel(h->attempt);
	h->attempt = NULL;
	tn_loop_cancel(h->loop, h->tick_timer);
	h->tick_timer = 0;
	format_duration(h->spec.deadline_ms, dur, sizeof dur);
	if (h->last_failure[0])
		snprintf(msg, sizeof msg,
			 "no healthy state within %s (%d of %d passes); "
			 "last failure: %s",
			 dur, h->passes, h->spec.healthy_after, h->last_failure);
	else
		snprintf(msg, sizeof msg, "no healthy state within %s (%d of %d passes)", dur,
			 h->passes, h->spec.healthy_after);
	h->fn(h->ctx, TN_HEALTH_COMMIT_FAIL, msg);
}

static char **copy_argv(const char *const *v)
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

void tn_health_free(struct tn_health *h)
{
	if (!h)
		return;
	tn_probe_cancel(h->attempt);
	tn_loop_cancel(h->loop, h->tick_timer);
	tn_loop_cancel(h->loop, h->deadline_timer);
	free(h->http_path);
	free(h->port);
	free(h->cwd);
	for (size_t i = 0; h->exec && h->exec[i]; i++)
		free(h->exec[i]);
	free(h->exec);
	free(h);
}

int tn_health_new(struct tn_loop *loop, const struct tn_probe_spec *spec, bool commit,
		  tn_health_fn fn, void *ctx, struct tn_health **out, struct tn_error *err)
{
	struct tn_health *h;
	uint16_t port;
	int rc;

	*out = NULL;
	rc = check_spec(spec, &port, err);
	if (rc < 0)
		return rc;
	h = xcalloc(1, sizeof *h);
	h->loop = loop;
	h->spec = *spec;
	h->http_path = spec->http_path ? xstrdup(spec->http_path) : NULL;
	h->port = spec->port ? xstrdup(spec->port) : NULL;
	h->cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
	h->exec = copy_argv(spec->exec);
	h->spec.http_path = h->http_path;
	h->spec.port = h->port;
	h->spec.cwd = h->cwd;
	h->spec.exec = (const char *const *)h->exec;
	if (h->spec.interval_ms <= 0)
		h->spec.interval_ms = TN_MANIFEST_INTERVAL_MS;
	if (h->spec.timeout_ms <= 0)
		h->spec.timeout_ms = TN_MANIFEST_TIMEOUT_MS;
	if (h->spec.healthy_after <= 0)
		h->spec.healthy_after = TN_MANIFEST_HEALTHY_AFTER;
	if (h->spec.unhealthy_after <= 0)
		h->spec.unhealthy_after = DEFAULT_UNHEALTHY_AFTER;
	if (!h->spec.deadline_ms)
		h->spec.deadline_ms = (uint64_t)TN_MANIFEST_DEADLINE_S * 1000;
	h->fn = fn;
	h->ctx = ctx;
	h->commit = commit;
	h->attempt_started = tn_loop_now_ms();
	schedule_next(h);
	if (commit)
		h->deadline_timer = tn_loop_timer(loop, h->spec.deadline_ms, on_deadline, h);
	*out = h;
	return 0;
}

bool tn_health_is_healthy(const struct tn_health *h)
{
	return h->status == HEALTHY;
}

int tn_health_passes(const struct tn_health *h)
{
	return h->passes;
}

const char *tn_health_last_failure(const struct tn_health *h)
{
	return h->last_failure;
}
