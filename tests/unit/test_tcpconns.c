/* test_tcpconns.c - counting the connections to a local port from the
 * kernel's own tables: a real listening socket and client on loopback
 * count 1, then 0 once closed; the parser on tables written here, IPv4
 * and IPv6, and on hostile text (a failure, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "tcpconns.h"
#include "xalloc.h"

#define HEADER                                                                                     \
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "      \
	"timeout inode\n"
#define HEADER6                                                                                    \
	"  sl  local_address                         remote_address                        st "    \
	"tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

static int listener(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static unsigned count(int port)
{
	unsigned n = 99;
	struct tn_error err;

	if (tn_tcpconns_established(&port, 1, &n, &err) != 0)
		fail_msg("count: %s", err.message);
	return n;
}

/* Polls (with a deadline) until the count of port is want: the kernel
 * moves a closed connection's states on its own. */
static void wait_count(int port, unsigned want)
{
	uint64_t start = tn_loop_now_ms();
	unsigned n;

	while ((n = count(port)) != want) {
		struct timespec ts = {0, 10 * 1000000L};

		if (tn_loop_now_ms() - start > 5000)
			fail_msg("port %d: %u connections, want %u", port, n, want);
		nanosleep(&ts, NULL);
	}
}

static void test_real_connections(void **state)
{
	int port, lfd = listener(&port);
	int other, ofd = listener(&other);
	int c, s, c2, s2;
	int ports[2];
	unsigned n;

	(void)state;
	/* The listening socket itself is not a connection. */
	assert_int_equal(count(port), 0);
	c = connect_to(port);
	s = accept(lfd, NULL, NULL);
	assert_true(s >= 0);
	/* Only the server's end has local port `port` (the client's end has
	 * it as its remote port). */
	assert_int_equal(count(port), 1);
	assert_int_equal(count(other), 0);
	c2 = connect_to(other);
	s2 = accept(ofd, NULL, NULL);
	ports[0] = port;
	ports[1] = other;
	assert_int_equal(tn_tcpconns_established(ports, 2, &n, NULL), 0);
	assert_int_equal(n, 2);

	/* The client leaves: the server's end is no longer established. */
	close(c);
	wait_count(port, 0);
	close(s);
	wait_count(port, 0);
	close(c2);
	close(s2);
	wait_count(other, 0);
	close(lfd);
	close(ofd);
}

static void test_tables_written_here(void **state)
{
	static const char v4[] = HEADER
	    "   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 "
	    "       0 1 1 0000000000000000 100 0 0 10 0\n"
	    "   1: 0100007F:1F40 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000  1000 "
	    "       0 2 1 0000000000000000 20 4 30 10 -1\n"
	    "   2: 0100007F:1F40 0100007F:A2C6 06 00000000:00000000 03:00000F6A 00000000     0 "
	    "       0 0 3 0000000000000000\n"
	    "   3: 0100007F:A2C8 0100007F:1F40 01 00000000:00000000 00:00000000 00000000  1000 "
	    "       0 4 1 0000000000000000 20 4 30 10 -1\n"
	    "  14: 0100007F:1F41 0100007F:A2CA 01 00000000:00000000 00:00000000 00000000  1000 "
	    "       0 5 1 0000000000000000 20 4 30 10 -1\n";
	static const char v6[] = HEADER6
	    "   0: 00000000000000000000000001000000:1F40 00000000000000000000000001000000:D0A2 "
	    "01 00000000:00000000 00:00000000 00000000  1000        0 6 1 0000000000000000\n"
	    "   1: 0000000000000000FFFF00000100007F:1F40 0000000000000000FFFF00000100007F:D0A4 "
	    "08 00000000:00000000 00:00000000 00000000  1000        0 7 1 0000000000000000";
	int p8000 = 8000, both[2] = {8000, 8001};
	unsigned n = 0;

	(void)state;
	/* One established to 8000 (listening, time-wait and the outgoing one
	 * from A2C8 are not); one to 8001. */
	assert_int_equal(tn_tcpconns_count_text(v4, strlen(v4), &p8000, 1, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tn_tcpconns_count_text(v4, strlen(v4), both, 2, &n, NULL), 0);
	assert_int_equal(n, 2);
	/* IPv6: one established, one close-wait; no newline at the end. */
	assert_int_equal(tn_tcpconns_count_text(v6, strlen(v6), &p8000, 1, &n, NULL), 0);
	assert_int_equal(n, 1);
	/* The header alone: nothing. */
	assert_int_equal(tn_tcpconns_count_text(HEADER, strlen(HEADER), &p8000, 1, &n, NULL), 0);
	assert_int_equal(n, 0);
}

static void test_hostile_tables_fail(void **state)
{
	static const struct {
		const char *text;
		const char *message;
	} bad[] = {
	    {"", "empty"},
	    {"hello\n", "line 1: not a TCP table header"},
	    {HEADER "   0: 0100007F:1F40 0100007F:A2C4\n", "line 2: malformed"},
	    {HEADER "   0: 0100007F:1F4 0100007F:A2C4 01 0\n", "line 2: malformed"},
	    {HEADER "   0: 0100007G:1F40 0100007F:A2C4 01 0\n", "line 2: malformed"},
	    {HEADER "   0: 0100007F1F40 0100007F:A2C4 01 0\n", "line 2: malformed"},
	    {HEADER "   0: 0100007F:1F40 0100007F:A2C4 1 0\n", "line 2: malformed"},
	    {HEADER "   0: 0100:1F40 0100007F:A2C4 01 0\n", "line 2: malformed"},
	    {HEADER "   x: 0100007F:1F40 0100007F:A2C4 01 0\n", "line 2: malformed"},
	    {HEADER "\n", "line 2: malformed"},
	};
	int port = 8000;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned n = 77;
		struct tn_error err = {0};
		int rc =
		    tn_tcpconns_count_text(bad[i].text, strlen(bad[i].text), &port, 1, &n, &err);

		if (rc == 0 || !strstr(err.message, bad[i].message))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.message);
		assert_int_equal(n, 77); /* unknown: left alone */
	}
	/* A NUL byte, an overlong line, too many lines. */
	{
		static const char nul[] = HEADER "   0: 0100007F:1F40\0";
		char *longline = xcalloc(1, TN_TCPCONNS_LINE_MAX * 2);
		size_t per = strlen("   0: 0100007F:1F40 0100007F:A2C4 0A 0\n");
		size_t lines = TN_TCPCONNS_LINES_MAX + 1;
		char *many = xcalloc(1, strlen(HEADER) + per * lines + 1);
		struct tn_error err;
		unsigned n;

		assert_int_equal(tn_tcpconns_count_text(nul, sizeof nul - 1, &port, 1, &n, &err),
				 -TN_E_INVALID);
		assert_non_null(strstr(err.message, "NUL"));
		memcpy(longline, HEADER, strlen(HEADER));
		memset(longline + strlen(HEADER), ' ', TN_TCPCONNS_LINE_MAX + 1);
		assert_int_equal(
		    tn_tcpconns_count_text(longline, strlen(longline), &port, 1, &n, &err),
		    -TN_E_INVALID);
		assert_non_null(strstr(err.message, "longer than the limit"));
		memcpy(many, HEADER, strlen(HEADER));
		for (size_t i = 0; i < lines; i++)
			memcpy(many + strlen(HEADER) + i * per,
			       "   0: 0100007F:1F40 0100007F:A2C4 0A 0\n", per);
		assert_int_equal(tn_tcpconns_count_text(many, strlen(many), &port, 1, &n, &err),
				 -TN_E_TOO_LARGE);
		free(many);
		free(longline);
	}
	/* A file that is not there: unknown, with its name. */
	{
		struct tn_error err;
		unsigned n;

		assert_true(tn_tcpconns_count_file("/nonexistent/tcp", &port, 1, &n, &err) < 0);
		assert_non_null(strstr(err.message, "/nonexistent/tcp"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_connections),
	    cmocka_unit_test(test_tables_written_here),
	    cmocka_unit_test(test_hostile_tables_fail),
	};
	return cmocka_run_group_tests_name("tcpconns", tests, NULL, NULL);
}
