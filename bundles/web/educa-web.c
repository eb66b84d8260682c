/* educa-web.c - the web bundle of Educa, Tender's sample application: a small
 * HTTP/1.1 server (libc only) answering /, /healthz, /counter and /version.
 * Built several times from this one file: EDUCA_VERSION is the bundle's
 * version, and EDUCA_BROKEN makes /healthz answer 503 (a release to roll
 * back from).
 *
 * Shape: `workers` threads each run a poll() loop over the shared
 * non-blocking listening socket and their own connections.  The main thread
 * only waits for SIGTERM or SIGINT (blocked in every thread, taken with
 * sigwait), then shuts the listening socket down and wakes the loops through
 * a pipe.  Each loop closes its idle connections, finishes the requests in
 * flight (answering them with "Connection: close") and ends; whatever is
 * left after STOP_GRACE_MS is closed, so the process exits 0 within a
 * second. */
#ifndef EDUCA_VERSION
#error "build with -DEDUCA_VERSION='\"1.2.3\"'"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "educa-conf.h"

#define IN_MAX 8192		 /* a request head, and pipelined bytes after it */
#define CONNS_MAX 256		 /* connections per loop */
#define IDLE_TIMEOUT_MS 30000	 /* keep-alive connection between requests */
#define REQUEST_TIMEOUT_MS 10000 /* first byte to whole head; a stalled write */
#define LINGER_MS 2000		 /* after "Connection: close", for the client's EOF */
#define STOP_GRACE_MS 700	 /* in-flight requests after SIGTERM */
#define WORKERS_MAX 64
#define COUNTER_FILE "counter"
#define COUNTER_TMP "counter.tmp"

static const char usage[] =
	"Usage: educa-web --port PORT --config FILE [--bind ADDR] [--data DIR]\n"
	"The web bundle of Educa, Tender's sample application (version " EDUCA_VERSION ").\n"
	"\n"
	"  -p, --port PORT    TCP port to listen on (1-65535)\n"
	"  -c, --config FILE  settings, \"key = value\" lines: greeting, version, target,\n"
	"                     cluster, workers (rendered from etc/educa.conf.tmpl)\n"
	"  -b, --bind ADDR    IPv4 address to listen on (default 0.0.0.0)\n"
	"  -d, --data DIR     data directory, kept across releases (default var);\n"
	"                     GET /counter keeps its count in DIR/" COUNTER_FILE "\n"
	"  -h, --help         this text\n"
	"  -V, --version      print the version\n"
	"\n"
	"GET / (greeting), /healthz, /counter, /version.  SIGTERM: stop accepting,\n"
	"finish the requests in flight, exit 0.\n";

struct settings {
	char *greeting;
	char *dist_version; /* {{distribution.version}} */
	char *target;
	char *cluster;
	long workers;
};

static struct settings cfg;
static int listen_fd = -1;
static int stop_pipe[2] = {-1, -1};

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long counter;
static int data_fd = -1;

struct conn {
	int fd;
	bool eof;	  /* the client sent FIN */
	bool close_after; /* close once out is sent */
	bool lingering;	  /* write side shut; reading until the client's EOF */
	int64_t deadline; /* CLOCK_MONOTONIC ms */
	char *out;	  /* one response being sent, or NULL */
	size_t out_len, out_off;
	size_t in_len;
	char in[IN_MAX];
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("educa-web: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ settings */

static int set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = educa_strdup(value);
	return 0;
}

static int on_setting(const char *key, const char *value, void *ctx, char *err, size_t size)
{
	struct settings *s = ctx;

	if (strcmp(key, "greeting") == 0)
		return set_string(&s->greeting, value);
	if (strcmp(key, "version") == 0)
		return set_string(&s->dist_version, value);
	if (strcmp(key, "target") == 0)
		return set_string(&s->target, value);
	if (strcmp(key, "cluster") == 0)
		return set_string(&s->cluster, value);
	if (strcmp(key, "workers") == 0) {
		if (educa_parse_long(value, 1, WORKERS_MAX, &s->workers) == 0)
			return 0;
		snprintf(err, size, "\"%s\" is not a whole number from 1 to %d", value,
			 WORKERS_MAX);
		return -1;
	}
	snprintf(err, size, "unknown setting (known: greeting, version, target, cluster, workers)");
	return -1;
}

/* ------------------------------------------------------------ counter */

static int counter_save(unsigned long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%llu\n", v), fd;
	size_t off = 0;

	fd = openat(data_fd, COUNTER_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	while (off < (size_t)n) {
		ssize_t w = write(fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		return -1;
	if (renameat(data_fd, COUNTER_TMP, data_fd, COUNTER_FILE) != 0)
		return -1;
	return fsync(data_fd);
}

/* Increments the counter and persists it; on failure nothing changes. */
static int counter_next(unsigned long long *out)
{
	int rc;

	pthread_mutex_lock(&counter_lock);
	rc = counter_save(counter + 1);
	if (rc == 0)
		*out = ++counter;
	pthread_mutex_unlock(&counter_lock);
	return rc;
}

static unsigned long long counter_get(void)
{
	unsigned long long v;

	pthread_mutex_lock(&counter_lock);
	v = counter;
	pthread_mutex_unlock(&counter_lock);
	return v;
}

static void counter_open(const char *dir)
{
	char buf[32], *end;
	ssize_t n;
	int fd;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("data directory %s: %s", dir, strerror(errno));
	data_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data_fd < 0)
		die("data directory %s: %s", dir, strerror(errno));
	fd = openat(data_fd, COUNTER_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			die("%s/%s: %s", dir, COUNTER_FILE, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		die("%s/%s: %s", dir, COUNTER_FILE, strerror(errno));
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	errno = 0;
	counter = strtoull(buf, &end, 10);
	if (n == 0 || buf[0] < '0' || buf[0] > '9' || *end || errno)
		die("%s/%s: not a count: \"%s\"", dir, COUNTER_FILE, buf);
}

/* ------------------------------------------------------------ HTTP */

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* A heap copy of the formatted text. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, f);
	n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	p = malloc((size_t)n + 1);
	if (!p)
		die("out of memory");
	va_start(ap, f);
	vsnprintf(p, (size_t)n + 1, f, ap);
	va_end(ap);
	return p;
}

struct request {
	bool http10;
	bool keep_alive;
	bool head; /* HEAD: headers only */
};

/* Queues one response on c; body is consumed (freed). */
static void respond(struct conn *c, const struct request *rq, int status, char *body,
		    const char *extra)
{
	const char *connection = !rq->keep_alive ? "Connection: close\r\n"
				 : rq->http10	 ? "Connection: keep-alive\r\n"
						 : "";

	c->out = fmt("HTTP/1.1 %d %s\r\n"
		     "Server: educa-web/" EDUCA_VERSION "\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\n"
		     "Content-Length: %zu\r\n"
		     "Cache-Control: no-store\r\n"
		     "X-Educa-Version: " EDUCA_VERSION "\r\n"
		     "X-Educa-Target: %s\r\n"
		     "%s%s\r\n"
		     "%s",
		     status, reason(status), strlen(body), cfg.target, connection, extra ? extra : "",
		     rq->head ? "" : body);
	c->out_len = strlen(c->out);
	c->out_off = 0;
	c->close_after = !rq->keep_alive;
	free(body);
}

static void route(struct conn *c, const struct request *rq, const char *path)
{
	unsigned long long v;

	if (strcmp(path, "/") == 0) {
		respond(c, rq, 200,
			fmt("educa-web %s on %s: %s\n", EDUCA_VERSION, cfg.target, cfg.greeting),
			NULL);
	} else if (strcmp(path, "/healthz") == 0) {
#ifdef EDUCA_BROKEN
		respond(c, rq, 503,
			fmt("unhealthy: educa-web %s is built broken\n", EDUCA_VERSION), NULL);
#else
		respond(c, rq, 200, fmt("ok\n"), NULL);
#endif
	} else if (strcmp(path, "/version") == 0) {
		respond(c, rq, 200, fmt("%s\n", EDUCA_VERSION), NULL);
	} else if (strcmp(path, "/counter") == 0) {
		if (rq->head)
			respond(c, rq, 200, fmt("%llu\n", counter_get()), NULL);
		else if (counter_next(&v) == 0)
			respond(c, rq, 200, fmt("%llu\n", v), NULL);
		else
			respond(c, rq, 500, fmt("counter: %s\n", strerror(errno)), NULL);
	} else {
		respond(c, rq, 404, fmt("not found: %s\n", path), NULL);
	}
}

/* Length of the request head at the start of p (through its blank line),
 * or 0 while it is incomplete.  Lines end in "\r\n" or "\n". */
static size_t head_length(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Whether the comma-separated header value holds token (any case). */
static bool has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);

	while (*value) {
		size_t n;

		while (*value == ' ' || *value == '\t' || *value == ',')
			value++;
		n = strcspn(value, ", \t");
		if (n == tl && strncasecmp(value, token, tl) == 0)
			return true;
		value += n;
	}
	return false;
}

/* Answers the request at the start of c->in when its head is complete;
 * returns false when it is not (more bytes needed). */
static bool handle(struct conn *c, bool stopping)
{
	struct request rq = {.keep_alive = false};
	char head[IN_MAX + 1], *line, *next, *method, *target, *version, *query;
	bool conn_close = false, conn_keep = false, has_body = false;
	size_t skip = 0, hl;

	while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n'))
		skip++; /* stray line ends before a request are allowed */
	if (skip) {
		memmove(c->in, c->in + skip, c->in_len - skip);
		c->in_len -= skip;
	}
	hl = head_length(c->in, c->in_len);
	if (!hl) {
		if (c->in_len < IN_MAX)
			return false;
		respond(c, &rq, 431, fmt("request head over %d bytes\n", IN_MAX), NULL);
		return true;
	}
	memcpy(head, c->in, hl);
	head[hl] = '\0';
	memmove(c->in, c->in + hl, c->in_len - hl);
	c->in_len -= hl;

	/* Request line: METHOD SP TARGET SP HTTP/1.x */
	line = head;
	next = strchr(line, '\n');
	*next++ = '\0';
	line[strcspn(line, "\r")] = '\0';
	method = line;
	target = strchr(method, ' ');
	version = target ? strchr(target + 1, ' ') : NULL;
	if (!target || !version || strchr(version + 1, ' ')) {
		respond(c, &rq, 400, fmt("malformed request line\n"), NULL);
		return true;
	}
	*target++ = '\0';
	*version++ = '\0';
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		bool http = strncmp(version, "HTTP/", 5) == 0;

		respond(c, &rq, http ? 505 : 400, fmt("unsupported protocol \"%s\"\n", version),
			NULL);
		return true;
	}
	rq.http10 = strcmp(version, "HTTP/1.0") == 0;

	/* Headers: only Connection and the body's framing matter here. */
	for (line = next; *line && *line != '\r' && *line != '\n'; line = next) {
		char *colon, *value;

		next = strchr(line, '\n');
		*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		colon = strchr(line, ':');
		if (!colon || colon == line) {
			respond(c, &rq, 400, fmt("malformed header line\n"), NULL);
			return true;
		}
		*colon = '\0';
		value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		if (strcasecmp(line, "Connection") == 0) {
			conn_close |= has_token(value, "close");
			conn_keep |= has_token(value, "keep-alive");
		} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
			has_body = true;
		} else if (strcasecmp(line, "Content-Length") == 0) {
			long n;

			if (educa_parse_long(value, 0, 1L << 30, &n) != 0 || n > 0)
				has_body = true;
		}
	}
	rq.keep_alive = !stopping && (rq.http10 ? conn_keep && !conn_close : !conn_close);

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		rq.keep_alive = false;
		respond(c, &rq, 405, fmt("method %s not allowed\n", method),
			"Allow: GET, HEAD\r\n");
		return true;
	}
	rq.head = strcmp(method, "HEAD") == 0;
	if (has_body) {
		/* Nothing here takes a body: refuse rather than guess its end. */
		rq.keep_alive = false;
		respond(c, &rq, 400, fmt("request bodies are not accepted\n"), NULL);
		return true;
	}
	query = strchr(target, '?');
	if (query)
		*query = '\0';
	route(c, &rq, target);
	return true;
}

/* ------------------------------------------------------------ connections */

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->out);
	free(c);
}

/* Reads what is there.  false: close the connection now. */
static bool conn_read(struct conn *c, int64_t now)
{
	for (;;) {
		char junk[4096];
		ssize_t n;

		if (c->lingering) {
			n = recv(c->fd, junk, sizeof junk, 0);
		} else {
			if (c->in_len == IN_MAX)
				return true;
			n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
		}
		if (n == 0) {
			c->eof = true;
			return !c->lingering;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		if (c->lingering)
			continue;
		if (c->in_len == 0)
			c->deadline = now + REQUEST_TIMEOUT_MS;
		c->in_len += (size_t)n;
	}
}

/* Sends what it can of the pending response.  false: close now. */
static bool conn_flush(struct conn *c, int64_t now)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			return false;
		}
		c->out_off += (size_t)n;
		c->deadline = now + REQUEST_TIMEOUT_MS;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->close_after) {
		/* Shut the write side and read until the client closes, so
		 * that unread bytes of its do not turn into a reset that
		 * could destroy the response on its way. */
		shutdown(c->fd, SHUT_WR);
		c->lingering = true;
		c->in_len = 0;
		c->deadline = now + LINGER_MS;
		return !c->eof;
	}
	c->deadline = now + (c->in_len ? REQUEST_TIMEOUT_MS : IDLE_TIMEOUT_MS);
	return true;
}

/* Answers what has arrived, one response at a time.  false: close now. */
static bool conn_pump(struct conn *c, bool stopping, int64_t now)
{
	for (;;) {
		if (c->out) {
			if (!conn_flush(c, now))
				return false;
			if (c->out)
				return true; /* the socket is full: wait for POLLOUT */
		}
		if (c->lingering)
			return true;
		if (c->in_len == 0 || !handle(c, stopping))
			return !c->eof;
	}
}

/* Nothing in progress: no request begun, no response pending. */
static bool conn_idle(const struct conn *c)
{
	int pending = 0;

	if (c->lingering)
		return true;
	if (c->in_len || c->out)
		return false;
	return ioctl(c->fd, FIONREAD, &pending) != 0 || pending == 0;
}

/* Drops the NULL slots of conns[0..n); returns the new count. */
static size_t compact(struct conn **conns, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (conns[i])
			conns[k++] = conns[i];
	return k;
}

static void *loop(void *arg)
{
	struct conn *conns[CONNS_MAX];
	struct pollfd pfd[CONNS_MAX + 2];
	size_t n = 0;
	bool stopping = false;
	int64_t stop_deadline = 0, accept_pause_until = 0;

	(void)arg;
	for (;;) {
		int64_t now = now_ms(), wake = now + 1000;
		size_t np = 0, first_conn, stop_at = SIZE_MAX, listen_at = SIZE_MAX;
		bool listening = !stopping && n < CONNS_MAX && now >= accept_pause_until;
		int ready;

		if (!stopping) {
			stop_at = np; /* never read: it stays readable once written */
			pfd[np++] = (struct pollfd){.fd = stop_pipe[0], .events = POLLIN};
		}
		if (listening) {
			listen_at = np;
			pfd[np++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
		} else if (!stopping && accept_pause_until > now && accept_pause_until < wake)
			wake = accept_pause_until;
		first_conn = np;
		for (size_t i = 0; i < n; i++) {
			pfd[np++] = (struct pollfd){.fd = conns[i]->fd,
						    .events = conns[i]->out ? POLLOUT : POLLIN};
			if (conns[i]->deadline < wake)
				wake = conns[i]->deadline;
		}
		if (stopping && stop_deadline < wake)
			wake = stop_deadline;
		ready = poll(pfd, np, wake > now ? (int)(wake - now) : 0);
		if (ready < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		now = now_ms();

		/* Connections first, so that bytes that arrived with the stop
		 * count as a request in flight. */
		for (size_t i = 0; i < n; i++) {
			struct conn *c = conns[i];
			short revents = ready > 0 ? pfd[first_conn + i].revents : 0;
			bool keep = true;

			if (revents & (POLLIN | POLLHUP | POLLERR))
				keep = conn_read(c, now);
			if (keep && revents)
				keep = conn_pump(c, stopping, now);
			if (keep && now >= c->deadline)
				keep = false;
			if (!keep) {
				conn_close(c);
				conns[i] = NULL;
			}
		}
		n = compact(conns, n);

		if (stop_at != SIZE_MAX && ready > 0 && (pfd[stop_at].revents & POLLIN)) {
			stopping = true;
			stop_deadline = now + STOP_GRACE_MS;
			for (size_t i = 0; i < n; i++) {
				if (conn_idle(conns[i])) {
					conn_close(conns[i]);
					conns[i] = NULL;
				}
			}
			n = compact(conns, n);
		}
		if (stopping && (n == 0 || now >= stop_deadline))
			break;

		if (!stopping && listen_at != SIZE_MAX && ready > 0 &&
		    (pfd[listen_at].revents & POLLIN)) {
			while (n < CONNS_MAX) {
				int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				struct conn *c;

				if (fd < 0) {
					if (errno == EINTR || errno == ECONNABORTED)
						continue;
					if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
					    errno == ENOMEM)
						accept_pause_until = now + 100;
					break; /* EAGAIN: another loop took it */
				}
				c = calloc(1, sizeof *c);
				if (!c)
					die("out of memory");
				c->fd = fd;
				c->deadline = now + REQUEST_TIMEOUT_MS;
				conns[n++] = c;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		conn_close(conns[i]);
	return NULL;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},	  {"config", required_argument, NULL, 'c'},
		{"bind", required_argument, NULL, 'b'},	  {"data", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},	  {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *bind_addr = "0.0.0.0", *data_dir = "var";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	pthread_t threads[WORKERS_MAX];
	char err[1024];
	long port = 0;
	sigset_t sigs;
	int opt, sig, one = 1;

	while ((opt = getopt_long(argc, argv, "p:c:b:d:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (educa_parse_long(optarg, 1, 65535, &port) != 0)
				die("--port: \"%s\" is not a port (1-65535)", optarg);
			break;
		case 'c':
			config = optarg;
			break;
		case 'b':
			bind_addr = optarg;
			break;
		case 'd':
			data_dir = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			puts(EDUCA_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	if (!port || !config)
		die("--port and --config are required (see --help)");
	if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1)
		die("--bind: \"%s\" is not an IPv4 address", bind_addr);
	sa.sin_port = htons((uint16_t)port);

	cfg.greeting = educa_strdup("hello");
	cfg.dist_version = educa_strdup("");
	cfg.target = educa_strdup("unknown");
	cfg.cluster = educa_strdup("");
	cfg.workers = 4;
	if (educa_conf_read(config, on_setting, &cfg, err, sizeof err) != 0)
		die("%s", err);

	/* Signals are taken by the main thread alone, with sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	counter_open(data_dir);
	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		die("pipe: %s", strerror(errno));
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("bind %s:%ld: %s", bind_addr, port, strerror(errno));
	if (listen(listen_fd, 128) != 0)
		die("listen: %s", strerror(errno));

	for (long i = 0; i < cfg.workers; i++) {
		int rc = pthread_create(&threads[i], NULL, loop, NULL);

		if (rc != 0)
			die("pthread_create: %s", strerror(rc));
	}
	fprintf(stderr,
		"educa-web %s: listening on %s:%ld; target %s, cluster %s, distribution %s, "
		"%ld workers, counter %llu\n",
		EDUCA_VERSION, bind_addr, port, cfg.target, cfg.cluster, cfg.dist_version,
		cfg.workers, counter);
#ifdef EDUCA_BROKEN
	fprintf(stderr, "educa-web %s: built broken: /healthz answers 503\n", EDUCA_VERSION);
#endif

	if (sigwait(&sigs, &sig) != 0)
		die("sigwait failed");
	fprintf(stderr, "educa-web %s: %s: stopping\n", EDUCA_VERSION,
		sig == SIGTERM ? "SIGTERM" : "SIGINT");
	/* Linux: a shut-down listening socket refuses new connections at once
	 * (connections still in its backlog are reset). */
	shutdown(listen_fd, SHUT_RDWR);
	if (write(stop_pipe[1], "x", 1) != 1)
		die("write: %s", strerror(errno));
	for (long i = 0; i < cfg.workers; i++)
		pthread_join(threads[i], NULL);
	close(listen_fd);
	close(data_fd);
	fprintf(stderr, "educa-web %s: stopped\n", EDUCA_VERSION);
	return 0;
}
