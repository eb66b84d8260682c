/* agentcheck.c - see agentcheck.h.
 *
 * One answer per connection, written as soon as the connection is
 * accepted: the line is a few bytes and a fresh socket's send buffer is
 * empty, so a non-blocking send writes it whole (when it does not, the
 * connection is closed unanswered and not counted).  The write side is then
 * shut down (HAProxy reads the line and sees the end), and the connection
 * lingers until HAProxy closes it, reading and discarding its agent-send
 * text: closing a socket with unread input sends a reset, which could reach
 * HAProxy before it has read the answer. */
#include "agentcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

/* Accepting stops this long when the process is out of descriptors: the
 * listening socket stays readable, and watching it would spin. */
#define ACCEPT_PAUSE_MS 1000
#define LISTEN_BACKLOG 64

struct parting {
	struct tn_agentcheck *ac;
	int fd; /* -1: a free slot */
	uint64_t timer;
	size_t bytes; /* read and discarded so far */
};

struct tn_agentcheck {
	struct tn_loop *loop;
	int fd;
	int port;
	bool watching;
	uint64_t pause_timer;
	enum tn_ac_state state;
	uint64_t answers; /* in state, since it was set */
	uint64_t total;
	tn_ac_heard_fn heard_fn;
	void *heard_ctx;
	uint64_t heard_timer;
	struct parting partings[TN_AGENTCHECK_LINGER_MAX];
};

static const char *const answers[] = {
    [TN_AC_DRAIN] = "drain\n",
    [TN_AC_READY] = "up ready 100%\n",
    [TN_AC_MAINT] = "maint\n",
};

static const char *const names[] = {
    [TN_AC_DRAIN] = "drain",
    [TN_AC_READY] = "ready",
    [TN_AC_MAINT] = "maint",
};

const char *tn_agentcheck_answer(enum tn_ac_state state)
{
	return answers[state];
}

const char *tn_agentcheck_state_name(enum tn_ac_state state)
{
	return names[state];
}

/* ------------------------------------------------------------ lingering */

static void parting_drop(struct parting *l)
{
	tn_loop_unwatch(l->ac->loop, l->fd);
	tn_loop_cancel(l->ac->loop, l->timer);
	close(l->fd);
	l->fd = -1;
	l->timer = 0;
	l->bytes = 0;
}

static void parting_timeout(void *ctx)
{
	struct parting *l = ctx;

	l->timer = 0;
	parting_drop(l);
}

static void parting_readable(void *ctx, int fd, short revents)
{
	struct parting *l = ctx;
	char buf[512];

	(void)revents;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		/* The end, an error, or more than HAProxy ever sends. */
		if (n <= 0 || (l->bytes += (size_t)n) > TN_AGENTCHECK_LINGER_BYTES) {
			parting_drop(l);
			return;
		}
	}
}

/* Keeps fd open until the peer closes it (or the bounds pass); closes it
 * at once when every slot is taken. */
static void linger(struct tn_agentcheck *ac, int fd)
{
	for (size_t i = 0; i < TN_AGENTCHECK_LINGER_MAX; i++) {
		struct parting *l = &ac->partings[i];

		if (l->fd >= 0)
			continue;
		l->fd = fd;
		l->bytes = 0;
		tn_loop_watch(ac->loop, fd, POLLIN, parting_readable, l);
		l->timer = tn_loop_timer(ac->loop, TN_AGENTCHECK_LINGER_MS, parting_timeout, l);
		return;
	}
	close(fd);
}

/* ------------------------------------------------------------ answering */

static void heard_now(struct tn_agentcheck *ac)
{
	tn_ac_heard_fn fn = ac->heard_fn;

	tn_loop_cancel(ac->loop, ac->heard_timer);
	ac->heard_timer = 0;
	ac->heard_fn = NULL;
	if (fn)
		fn(ac->heard_ctx);
}

static void answer(struct tn_agentcheck *ac, int fd)
{
	const char *line = answers[ac->state];
	size_t len = strlen(line);
	ssize_t n = send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n != (ssize_t)len) {
		close(fd);
		return;
	}
	ac->answers++;
	ac->total++;
	shutdown(fd, SHUT_WR);
	linger(ac, fd);
	if (ac->heard_fn)
		heard_now(ac);
}

static void watch_listener(struct tn_agentcheck *ac);

static void accept_again(void *ctx)
{
	struct tn_agentcheck *ac = ctx;

	ac->pause_timer = 0;
	watch_listener(ac);
}

static void acceptable(void *ctx, int fd, short revents)
{
	struct tn_agentcheck *ac = ctx;

	(void)revents;
	for (int i = 0; i < TN_AGENTCHECK_ACCEPT_BURST; i++) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c >= 0) {
			answer(ac, c);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			tn_log(TN_LOG_WARN, "agentcheck", "accept_paused", "{s:s, s:i}", "message",
			       strerror(errno), "pause_ms", ACCEPT_PAUSE_MS);
			tn_loop_unwatch(ac->loop, ac->fd);
			ac->watching = false;
			ac->pause_timer =
			    tn_loop_timer(ac->loop, ACCEPT_PAUSE_MS, accept_again, ac);
		}
		return; /* EAGAIN: all taken; anything else: the next wakeup */
	}
}

static void watch_listener(struct tn_agentcheck *ac)
{
	if (ac->fd >= 0 && !ac->watching) {
		tn_loop_watch(ac->loop, ac->fd, POLLIN, acceptable, ac);
		ac->watching = true;
	}
}

static void close_listener(struct tn_agentcheck *ac)
{
	if (ac->fd < 0)
		return;
	if (ac->watching)
		tn_loop_unwatch(ac->loop, ac->fd);
	tn_loop_cancel(ac->loop, ac->pause_timer);
	ac->pause_timer = 0;
	ac->watching = false;
	close(ac->fd);
	ac->fd = -1;
}

/* ------------------------------------------------------------ listening */

static int open_listener(int port, int *fd_out, int *port_out, struct tn_error *err)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t len = sizeof sa;
	int one = 1, rc = 0;
	int fd = -1;

	if (port < 0 || port > 65535) {
		rc = tn_fail(err, TN_E_INVALID, "agent port %d: expected 0 to 65535", port);
		goto out;
	}
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "agent port %d: socket", port);
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		rc = tn_fail_errno(err, errno, "agent port %d: cannot listen on 0.0.0.0:%d", port,
				   port);
		goto out;
	}
	*port_out = ntohs(sa.sin_port);
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int tn_agentcheck_new(struct tn_loop *loop, int port, struct tn_agentcheck **out,
		      struct tn_error *err)
{
	struct tn_agentcheck *ac = xcalloc(1, sizeof *ac);
	int rc;

	*out = NULL;
	ac->loop = loop;
	ac->fd = -1;
	ac->state = TN_AC_DRAIN;
	for (size_t i = 0; i < TN_AGENTCHECK_LINGER_MAX; i++)
		ac->partings[i] = (struct parting){ac, -1, 0, 0};
	if ((rc = open_listener(port, &ac->fd, &ac->port, err)))
		goto out;
	watch_listener(ac);
	tn_log(TN_LOG_INFO, "agentcheck", "listening", "{s:i, s:s}", "port", ac->port, "answer",
	       names[ac->state]);
	*out = ac;
	ac = NULL;
out:
	tn_agentcheck_free(ac);
	return rc;
}

void tn_agentcheck_free(struct tn_agentcheck *ac)
{
	if (!ac)
		return;
	close_listener(ac);
	tn_loop_cancel(ac->loop, ac->heard_timer);
	for (size_t i = 0; i < TN_AGENTCHECK_LINGER_MAX; i++)
		if (ac->partings[i].fd >= 0)
			parting_drop(&ac->partings[i]);
	free(ac);
}

int tn_agentcheck_listen(struct tn_agentcheck *ac, int port, struct tn_error *err)
{
	int fd = -1, bound = 0, rc;

	if ((rc = open_listener(port, &fd, &bound, err)))
		return rc;
	close_listener(ac);
	ac->fd = fd;
	ac->port = bound;
	watch_listener(ac);
	tn_log(TN_LOG_INFO, "agentcheck", "listening", "{s:i, s:s}", "port", ac->port, "answer",
	       names[ac->state]);
	return 0;
}

int tn_agentcheck_port(const struct tn_agentcheck *ac)
{
	return ac->port;
}

/* ------------------------------------------------------------ state */

void tn_agentcheck_set(struct tn_agentcheck *ac, enum tn_ac_state state)
{
	if (state == ac->state)
		return;
	tn_log(TN_LOG_INFO, "agentcheck", "answer", "{s:s, s:s, s:I}", "from", names[ac->state],
	       "to", names[state], "answers_before", (json_int_t)ac->answers);
	ac->state = state;
	ac->answers = 0;
	/* A notification already due was for the old state: it waits now
	 * for an answer of the new one. */
	tn_loop_cancel(ac->loop, ac->heard_timer);
	ac->heard_timer = 0;
}

enum tn_ac_state tn_agentcheck_state(const struct tn_agentcheck *ac)
{
	return ac->state;
}

uint64_t tn_agentcheck_answers(const struct tn_agentcheck *ac)
{
	return ac->answers;
}

uint64_t tn_agentcheck_total(const struct tn_agentcheck *ac)
{
	return ac->total;
}

static void heard_due(void *ctx)
{
	struct tn_agentcheck *ac = ctx;

	ac->heard_timer = 0;
	if (ac->answers > 0)
		heard_now(ac);
}

void tn_agentcheck_when_heard(struct tn_agentcheck *ac, tn_ac_heard_fn fn, void *ctx)
{
	tn_loop_cancel(ac->loop, ac->heard_timer);
	ac->heard_timer = 0;
	ac->heard_fn = fn;
	ac->heard_ctx = ctx;
	if (fn && ac->answers > 0)
		ac->heard_timer = tn_loop_timer(ac->loop, 0, heard_due, ac);
}
