/* fleet.c - the fleet benchmark's load generator (`make bench`, issue 11):
 * enrolls N simulated agents with one tender-server, holds one long-poll
 * per agent open (each on its own connection, spread over many 127.x
 * source addresses), tells when they all wait, then creates a rollout of
 * their cluster and measures, for every agent, the time from the rollout
 * request until its long-poll answered with the changed document.
 *
 * One thread, epoll, plain non-blocking sockets and a minimal HTTP/1.1
 * client: its own cost stays small next to the server's, which is what is
 * measured (bench/run samples the server's RSS and CPU from /proc).
 *
 * Output: progress on stderr; on stdout one line `holding N` once every
 * agent waits, then after the rollout `notified N p50_ms P p99_ms P max_ms
 * M missed K`.  Exit 0 measured, 1 failed, 2 usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX 16384
#define AGENTS_MAX 20000
#define ENROLL_CONNS 8

enum phase { P_ENROLL, P_FIRST, P_WAIT, P_DONE };

struct agent {
	int fd;
	enum phase phase;
	char id[40];
	char token[80];
	char etag[80];
	char src[16]; /* 127.a.b.c it connects from */
	char *req;
	size_t req_len, req_off;
	char buf[BUF_MAX];
	size_t len;
	double notified; /* seconds after the rollout request; < 0 not yet */
};

static struct {
	struct sockaddr_in server;
	const char *host; /* Host: header */
	const char *enroll_token, *admin_token, *cluster, *dist;
	int count, wait_s;
	int ep;
	struct agent *agents;
	int enrolled, holding, notified, failed;
	double t0; /* when the rollout request was sent */
	int rollout_status;
	double rollout_s; /* until its answer */
	char rollout_answer[8192];
} g;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fleet: %s%s\n", what, detail);
	exit(1);
}

/* A blocking request on a fresh connection (the rollout, the token); the
 * status, the body into out (NUL-terminated, cut to size). */
static int request(const char *method, const char *path, const char *token, const char *body,
		   char *out, size_t size)
{
	char head[1024];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0;
	size_t len = 0;
	ssize_t n;
	int hl;

	if (fd < 0 || connect(fd, (struct sockaddr *)&g.server, sizeof g.server) != 0)
		die("cannot connect to the server: ", strerror(errno));
	hl = snprintf(head, sizeof head,
		      "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		      "Connection: close\r\n\r\n",
		      method, path, g.host, token, body ? strlen(body) : 0);
	if (write(fd, head, (size_t)hl) != hl ||
	    (body && write(fd, body, strlen(body)) != (ssize_t)strlen(body)))
		die("cannot send a request: ", strerror(errno));
	while (len + 1 < size && (n = read(fd, out + len, size - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
	sscanf(out, "HTTP/1.%*d %d", &status);
	return status;
}

/* ------------------------------------------------------------ connections */

static void arm(struct agent *a, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = a};

	if (epoll_ctl(g.ep, EPOLL_CTL_MOD, a->fd, &ev) != 0)
		epoll_ctl(g.ep, EPOLL_CTL_ADD, a->fd, &ev);
}

static bool dial(struct agent *a)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	int one = 1;

	a->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0)
		return false;
	setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	inet_pton(AF_INET, a->src, &src.sin_addr);
	if (bind(a->fd, (struct sockaddr *)&src, sizeof src) != 0 ||
	    (connect(a->fd, (struct sockaddr *)&g.server, sizeof g.server) != 0 &&
	     errno != EINPROGRESS)) {
		close(a->fd);
		a->fd = -1;
		return false;
	}
	return true;
}

static void send_request(struct agent *a, char *req)
{
	free(a->req);
	a->req = req;
	a->req_len = strlen(req);
	a->req_off = 0;
	a->len = 0;
	if (a->fd < 0 && !dial(a)) {
		g.failed++;
		a->phase = P_DONE;
		return;
	}
	arm(a, EPOLLOUT);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static void enroll(struct agent *a, int i)
{
	char *body = fmt("{\"enrollment_token\": \"%s\", \"inventory\": {\"hostname\": "
			 "\"sim-%d\"}, \"address\": \"%s\", \"agent_port\": 9}",
			 g.enroll_token, i, a->src);

	a->phase = P_ENROLL;
	send_request(a, fmt("POST /agent/v1/enroll HTTP/1.1\r\nHost: %s\r\n"
			    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			    g.host, strlen(body), body));
	free(body);
}

static void poll_desired(struct agent *a)
{
	if (a->etag[0])
		send_request(a, fmt("GET /agent/v1/desired?wait=%d HTTP/1.1\r\nHost: %s\r\n"
				    "Authorization: Bearer %s\r\nIf-None-Match: \"%s\"\r\n\r\n",
				    g.wait_s, g.host, a->token, a->etag));
	else
		send_request(a, fmt("GET /agent/v1/desired HTTP/1.1\r\nHost: %s\r\n"
				    "Authorization: Bearer %s\r\n\r\n",
				    g.host, a->token));
}

/* The value of a header of the head in buf (NUL-terminated at the blank
 * line), unquoted, into out. */
static void header(const char *buf, const char *name, char *out, size_t size)
{
	const char *p = strcasestr(buf, name);
	size_t n;

	out[0] = '\0';
	if (!p)
		return;
	p += strlen(name);
	while (*p == ' ' || *p == '"')
		p++;
	n = strcspn(p, "\"\r\n");
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

/* A whole response is in a->buf: act on it. */
static void answered(struct agent *a, int status, const char *head, const char *body)
{
	if (a->phase == P_ENROLL) {
		const char *id = strstr(body, "\"target_id\":\""), *tok = strstr(body, "\"target_token\":\"");

		if (status != 200 || !id || !tok) {
			fprintf(stderr, "fleet: enroll answered %d: %.200s\n", status, body);
			g.failed++;
			a->phase = P_DONE;
			return;
		}
		sscanf(id + 13, "%39[^\"]", a->id);
		sscanf(tok + 16, "%79[^\"]", a->token);
		g.enrolled++;
		/* a connection of its own from here on */
		close(a->fd);
		a->fd = -1;
		a->phase = P_FIRST;
		return;
	}
	if (status == 200) {
		header(head, "\nETag:", a->etag, sizeof a->etag);
		if (a->phase == P_FIRST) {
			a->phase = P_WAIT;
			g.holding++;
		} else if (g.t0 > 0) {
			a->notified = now_s() - g.t0;
			g.notified++;
			a->phase = P_DONE;
			return;
		}
	} else if (status != 304) {
		fprintf(stderr, "fleet: %s: desired answered %d\n", a->id, status);
		g.failed++;
		a->phase = P_DONE;
		return;
	}
	poll_desired(a);
}

static void readable(struct agent *a)
{
	for (;;) {
		ssize_t n = read(a->fd, a->buf + a->len, BUF_MAX - 1 - a->len);
		char *end;
		size_t clen, hlen;
		int status = 0;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* the server closed a kept-alive connection: poll again */
			close(a->fd);
			a->fd = -1;
			if (a->phase == P_ENROLL || a->len) {
				g.failed++;
				a->phase = P_DONE;
			} else {
				poll_desired(a);
			}
			return;
		}
		if (n < 0)
			return;
		a->len += (size_t)n;
		a->buf[a->len] = '\0';
		if (!(end = strstr(a->buf, "\r\n\r\n")))
			continue;
		hlen = (size_t)(end - a->buf) + 4;
		{
			char cl[32];

			*end = '\0';
			header(a->buf, "\nContent-Length:", cl, sizeof cl);
			clen = (size_t)strtoul(cl, NULL, 10);
			*end = '\r';
		}
		if (a->len < hlen + clen)
			continue;
		*end = '\0';
		sscanf(a->buf, "HTTP/1.%*d %d", &status);
		arm(a, 0);
		answered(a, status, a->buf, end + 4);
		return;
	}
}

static void writable(struct agent *a)
{
	while (a->req_off < a->req_len) {
		ssize_t n = write(a->fd, a->req + a->req_off, a->req_len - a->req_off);

		if (n < 0) {
			if (errno == EAGAIN)
				return;
			close(a->fd);
			a->fd = -1;
			g.failed++;
			a->phase = P_DONE;
			return;
		}
		a->req_off += (size_t)n;
	}
	arm(a, EPOLLIN);
}

static void run_until(bool (*done)(void), double deadline)
{
	struct epoll_event evs[256];

	while (!done()) {
		int n = epoll_wait(g.ep, evs, 256, 200);

		for (int i = 0; i < n; i++) {
			struct agent *a = evs[i].data.ptr;

			if (a->fd < 0)
				continue;
			if (evs[i].events & EPOLLOUT)
				writable(a);
			else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				readable(a);
		}
		if (now_s() > deadline) {
			fprintf(stderr, "fleet: out of time (enrolled %d, holding %d, notified %d, "
					"failed %d)\n",
				g.enrolled, g.holding, g.notified, g.failed);
			exit(1);
		}
	}
}

static bool all_enrolled(void)
{
	return g.enrolled + g.failed >= g.count;
}

static bool all_holding(void)
{
	return g.holding + g.failed >= g.count;
}

static bool all_notified(void)
{
	return g.notified + g.failed >= g.count;
}

static void *create_rollout(void *arg)
{
	char *body = fmt("{\"cluster\": \"%s\", \"distribution\": \"%s\"}", g.cluster, g.dist);

	(void)arg;
	g.rollout_status = request("POST", "/api/v1/rollouts", g.admin_token, body,
				   g.rollout_answer, sizeof g.rollout_answer);
	g.rollout_s = now_s() - g.t0;
	free(body);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void usage(FILE *out)
{
	fputs("Usage: fleet --server HOST:PORT --enroll-token T --admin-token T --cluster C\n"
	      "             --dist NAME@VER [--count N] [--wait S]\n"
	      "Enrolls N simulated agents (default 10000) with tender-server, holds a long-poll\n"
	      "per agent (wait S seconds, default 30), prints `holding N`, creates a rollout of\n"
	      "cluster C to NAME@VER and prints how long each agent took to get the changed\n"
	      "document: `notified N p50_ms P p99_ms P max_ms M missed K`.\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'}, {"enroll-token", required_argument, NULL, 'e'},
		{"admin-token", required_argument, NULL, 'a'}, {"cluster", required_argument, NULL, 'c'},
		{"dist", required_argument, NULL, 'd'}, {"count", required_argument, NULL, 'n'},
		{"wait", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char host[64] = "", *colon;
	double *lat;
	struct rlimit rl;
	int c, port, next = 0;

	g.count = 10000;
	g.wait_s = 30;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': snprintf(host, sizeof host, "%s", optarg); break;
		case 'e': g.enroll_token = optarg; break;
		case 'a': g.admin_token = optarg; break;
		case 'c': g.cluster = optarg; break;
		case 'd': g.dist = optarg; break;
		case 'n': g.count = atoi(optarg); break;
		case 'w': g.wait_s = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!host[0] || !g.enroll_token || !g.admin_token || !g.cluster || !g.dist ||
	    g.count < 1 || g.count > AGENTS_MAX || g.wait_s < 1 || g.wait_s > 30 ||
	    !(colon = strrchr(host, ':'))) {
		usage(stderr);
		return 2;
	}
	*colon = '\0';
	port = atoi(colon + 1);
	g.server.sin_family = AF_INET;
	g.server.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &g.server.sin_addr) != 1)
		die("--server: not an IPv4 address: ", host);
	*colon = ':';
	g.host = host;
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)g.count + 64)
			die("the open-file limit is too low for --count agents", "");
	}
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	g.agents = calloc((size_t)g.count, sizeof *g.agents);
	if (!g.agents)
		abort();
	for (int i = 0; i < g.count; i++) {
		struct agent *a = &g.agents[i];

		a->fd = -1;
		a->notified = -1;
		/* 1000 agents per source address: 127.1.0.1, 127.1.0.2, ... */
		snprintf(a->src, sizeof a->src, "127.1.%d.%d", (i / 1000) / 250, (i / 1000) % 250 + 1);
	}

	/* enroll, a few connections at once */
	fprintf(stderr, "fleet: enrolling %d agents\n", g.count);
	{
		double start = now_s();

		while (!all_enrolled()) {
			int busy = 0;

			for (int i = 0; i < next; i++)
				busy += g.agents[i].phase == P_ENROLL;
			while (busy < ENROLL_CONNS && next < g.count) {
				enroll(&g.agents[next], next);
				next++;
				busy++;
			}
			{
				struct epoll_event evs[64];
				int n = epoll_wait(g.ep, evs, 64, 200);

				for (int i = 0; i < n; i++) {
					struct agent *a = evs[i].data.ptr;

					if (a->fd < 0)
						continue;
					if (evs[i].events & EPOLLOUT)
						writable(a);
					else
						readable(a);
				}
			}
			if (now_s() - start > 600)
				die("enrolling took over 600 s", "");
		}
		fprintf(stderr, "fleet: enrolled %d in %.1f s (%d failed)\n", g.enrolled,
			now_s() - start, g.failed);
	}
	/* every agent reads its document, then holds a long-poll */
	for (int i = 0; i < g.count; i++)
		if (g.agents[i].phase == P_FIRST)
			poll_desired(&g.agents[i]);
	run_until(all_holding, now_s() + 300);
	printf("holding %d\n", g.holding);
	fflush(stdout);
	/* let the server settle, still holding (the caller samples it now) */
	{
		double until = now_s() + (g.wait_s > 10 ? 10 : g.wait_s / 2.0);
		struct epoll_event evs[256];

		while (now_s() < until) {
			int n = epoll_wait(g.ep, evs, 256, 100);

			for (int i = 0; i < n; i++) {
				struct agent *a = evs[i].data.ptr;

				if (a->fd >= 0 && (evs[i].events & EPOLLOUT))
					writable(a);
				else if (a->fd >= 0)
					readable(a);
			}
		}
	}

	/* the rollout: every agent's document changes (prepare); requested from
	 * a thread of its own, so that the answers are read as they come */
	{
		pthread_t t;

		g.t0 = now_s();
		pthread_create(&t, NULL, create_rollout, NULL);
		run_until(all_notified, g.t0 + 120);
		pthread_join(t, NULL);
		if (g.rollout_status != 201)
			die("the rollout was refused: ", g.rollout_answer);
		fprintf(stderr, "fleet: rollout created in %.3f s\n", g.rollout_s);
	}

	lat = calloc((size_t)g.count, sizeof *lat);
	{
		int n = 0;

		for (int i = 0; i < g.count; i++)
			if (g.agents[i].notified >= 0)
				lat[n++] = g.agents[i].notified * 1000;
		qsort(lat, (size_t)n, sizeof *lat, cmp_double);
		printf("notified %d p50_ms %.0f p99_ms %.0f max_ms %.0f missed %d\n", n,
		       n ? lat[n / 2] : 0, n ? lat[(size_t)((n - 1) * 0.99)] : 0,
		       n ? lat[n - 1] : 0, g.count - n);
	}
	free(lat);
	return g.failed ? 1 : 0;
}
