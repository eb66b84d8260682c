/* test_agentcheck.c - the agent-check listener with real sockets on
 * loopback, played the way HAProxy does: connect, maybe send the agent-send
 * text, read one line until the agent closes.  The answers follow the
 * state, the count of answers restarts at each change, the "heard"
 * notification comes once an answer of the current state went out, and the
 * listener moves ports without losing its state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentcheck.h"
#include "loop.h"

#define DEADLINE_MS 5000

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Runs the loop until fd has sent everything and closed (or the
 * deadline); the text read, NUL-terminated, into buf.  *reset tells
 * whether the end was a reset rather than an orderly close. */
static void read_all(struct tn_loop *loop, int fd, char *buf, size_t size, bool *reset)
{
	uint64_t start = tn_loop_now_ms();
	size_t len = 0;

	*reset = false;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		assert_true(tn_loop_now_ms() - start < DEADLINE_MS);
		tn_loop_run_once(loop, 10);
		if (poll(&p, 1, 0) <= 0)
			continue;
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == ECONNRESET)
			*reset = true;
		if (n <= 0)
			break;
		len += (size_t)n;
		assert_true(len < size - 1);
	}
	buf[len] = '\0';
}

/* One agent check: the line the agent answered. */
static void ask(struct tn_loop *loop, int port, const char *send_first, char *buf, size_t size)
{
	int fd = connect_to(port);
	bool reset;

	assert_true(fd >= 0);
	if (send_first)
		assert_int_equal(write(fd, send_first, strlen(send_first)),
				 (ssize_t)strlen(send_first));
	read_all(loop, fd, buf, size, &reset);
	assert_false(reset);
	close(fd);
}

static void expect_answer(struct tn_loop *loop, struct tn_agentcheck *ac, const char *want)
{
	char buf[64];

	ask(loop, tn_agentcheck_port(ac), NULL, buf, sizeof buf);
	assert_string_equal(buf, want);
}

static void test_answers_follow_the_state(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_agentcheck *ac = NULL;

	(void)state;
	assert_int_equal(tn_agentcheck_new(loop, 0, &ac, NULL), 0);
	assert_true(tn_agentcheck_port(ac) > 0);
	/* Not ready until told so. */
	assert_int_equal(tn_agentcheck_state(ac), TN_AC_DRAIN);
	assert_int_equal(tn_agentcheck_answers(ac), 0);
	assert_int_equal(tn_agentcheck_total(ac), 0);
	expect_answer(loop, ac, "drain\n");
	expect_answer(loop, ac, "drain\n");
	assert_int_equal(tn_agentcheck_answers(ac), 2);

	tn_agentcheck_set(ac, TN_AC_READY);
	assert_int_equal(tn_agentcheck_answers(ac), 0);
	expect_answer(loop, ac, "up ready 100%\n");
	assert_int_equal(tn_agentcheck_answers(ac), 1);
	/* The same state again is no change: the count stays. */
	tn_agentcheck_set(ac, TN_AC_READY);
	assert_int_equal(tn_agentcheck_answers(ac), 1);

	tn_agentcheck_set(ac, TN_AC_DRAIN);
	expect_answer(loop, ac, "drain\n");
	tn_agentcheck_set(ac, TN_AC_MAINT);
	expect_answer(loop, ac, "maint\n");
	assert_int_equal(tn_agentcheck_answers(ac), 1);
	assert_int_equal(tn_agentcheck_total(ac), 5);
	assert_string_equal(tn_agentcheck_state_name(TN_AC_MAINT), "maint");
	assert_string_equal(tn_agentcheck_answer(TN_AC_READY), "up ready 100%\n");
	tn_agentcheck_free(ac);
	tn_loop_free(loop);
}

/* HAProxy's agent-send text is read and dropped, never waited for; the
 * connection still ends with an orderly close, not a reset. */
static void test_agent_send_text_is_ignored(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_agentcheck *ac = NULL;
	char buf[64];

	(void)state;
	assert_int_equal(tn_agentcheck_new(loop, 0, &ac, NULL), 0);
	tn_agentcheck_set(ac, TN_AC_READY);
	ask(loop, tn_agentcheck_port(ac), "hello from haproxy\n", buf, sizeof buf);
	assert_string_equal(buf, "up ready 100%\n");
	/* More text than the agent ever reads: still answered. */
	{
		char big[TN_AGENTCHECK_LINGER_BYTES * 2];

		memset(big, 'x', sizeof big - 1);
		big[sizeof big - 1] = '\0';
		int fd = connect_to(tn_agentcheck_port(ac));
		bool reset;

		assert_int_equal(write(fd, big, strlen(big)), (ssize_t)strlen(big));
		read_all(loop, fd, buf, sizeof buf, &reset);
		assert_string_equal(buf, "up ready 100%\n");
		close(fd);
	}
	assert_int_equal(tn_agentcheck_answers(ac), 2);
	tn_agentcheck_free(ac);
	tn_loop_free(loop);
}

/* More connections at once than one wakeup accepts and than may linger:
 * every one gets its answer. */
static void test_many_checks_at_once(void **state)
{
	enum { N = TN_AGENTCHECK_LINGER_MAX + TN_AGENTCHECK_ACCEPT_BURST };
	struct tn_loop *loop = tn_loop_new();
	struct tn_agentcheck *ac = NULL;
	int fds[N];

	(void)state;
	assert_int_equal(tn_agentcheck_new(loop, 0, &ac, NULL), 0);
	for (int i = 0; i < N; i++) {
		fds[i] = connect_to(tn_agentcheck_port(ac));
		assert_true(fds[i] >= 0);
	}
	for (int i = 0; i < N; i++) {
		char buf[64];
		bool reset;

		read_all(loop, fds[i], buf, sizeof buf, &reset);
		assert_string_equal(buf, "drain\n");
		close(fds[i]);
	}
	assert_int_equal(tn_agentcheck_answers(ac), N);
	tn_agentcheck_free(ac);
	tn_loop_free(loop);
}

struct heard {
	int calls;
};

static void on_heard(void *ctx)
{
	((struct heard *)ctx)->calls++;
}

static void run_ms(struct tn_loop *loop, uint64_t ms)
{
	uint64_t start = tn_loop_now_ms();

	while (tn_loop_now_ms() - start < ms)
		tn_loop_run_once(loop, 5);
}

static void test_heard_once_an_answer_went_out(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_agentcheck *ac = NULL;
	struct heard h = {0};

	(void)state;
	assert_int_equal(tn_agentcheck_new(loop, 0, &ac, NULL), 0);
	tn_agentcheck_set(ac, TN_AC_READY);
	expect_answer(loop, ac, "up ready 100%\n");

	/* drain: nobody has heard it yet. */
	tn_agentcheck_set(ac, TN_AC_DRAIN);
	tn_agentcheck_when_heard(ac, on_heard, &h);
	run_ms(loop, 50);
	assert_int_equal(h.calls, 0);
	expect_answer(loop, ac, "drain\n");
	assert_int_equal(h.calls, 1);
	expect_answer(loop, ac, "drain\n");
	assert_int_equal(h.calls, 1); /* once */

	/* Heard already: the notification comes from the loop, unasked. */
	tn_agentcheck_when_heard(ac, on_heard, &h);
	assert_int_equal(h.calls, 1);
	run_ms(loop, 20);
	assert_int_equal(h.calls, 2);

	/* Heard already, but the state changes before the loop runs: it
	 * waits for an answer of the new state. */
	tn_agentcheck_when_heard(ac, on_heard, &h);
	tn_agentcheck_set(ac, TN_AC_MAINT);
	run_ms(loop, 50);
	assert_int_equal(h.calls, 2);
	expect_answer(loop, ac, "maint\n");
	assert_int_equal(h.calls, 3);

	/* Cancelled: never called. */
	tn_agentcheck_set(ac, TN_AC_DRAIN);
	tn_agentcheck_when_heard(ac, on_heard, &h);
	tn_agentcheck_when_heard(ac, NULL, NULL);
	expect_answer(loop, ac, "drain\n");
	run_ms(loop, 20);
	assert_int_equal(h.calls, 3);
	tn_agentcheck_free(ac);
	tn_loop_free(loop);
}

/* A listening socket on a free port that the listener cannot take. */
static int hold_port(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void test_listener_moves(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_agentcheck *ac = NULL, *other = NULL;
	struct tn_error err;
	int held_port, held = hold_port(&held_port);
	int first, fd;

	(void)state;
	/* A port in use: refused, naming it. */
	assert_int_equal(tn_agentcheck_new(loop, held_port, &other, &err), -TN_E_IO);
	assert_null(other);
	assert_non_null(strstr(err.message, "agent port"));

	assert_int_equal(tn_agentcheck_new(loop, 0, &ac, NULL), 0);
	first = tn_agentcheck_port(ac);
	tn_agentcheck_set(ac, TN_AC_READY);
	/* Moving to a port in use fails and keeps the old one answering. */
	assert_int_equal(tn_agentcheck_listen(ac, held_port, &err), -TN_E_IO);
	assert_int_equal(tn_agentcheck_port(ac), first);
	expect_answer(loop, ac, "up ready 100%\n");

	/* Moving to a free port: the old one is closed, the state kept. */
	assert_int_equal(tn_agentcheck_listen(ac, 0, NULL), 0);
	assert_int_not_equal(tn_agentcheck_port(ac), first);
	expect_answer(loop, ac, "up ready 100%\n");
	assert_int_equal(tn_agentcheck_answers(ac), 2);
	fd = connect_to(first);
	assert_int_equal(fd, -1);

	/* And back to the first port: SO_REUSEADDR takes it at once. */
	assert_int_equal(tn_agentcheck_listen(ac, first, NULL), 0);
	assert_int_equal(tn_agentcheck_port(ac), first);
	expect_answer(loop, ac, "up ready 100%\n");
	tn_agentcheck_free(ac);
	close(held);
	tn_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers_follow_the_state),
	    cmocka_unit_test(test_agent_send_text_is_ignored),
	    cmocka_unit_test(test_many_checks_at_once),
	    cmocka_unit_test(test_heard_once_an_answer_went_out),
	    cmocka_unit_test(test_listener_moves),
	};
	return cmocka_run_group_tests_name("agentcheck", tests, NULL, NULL);
}
