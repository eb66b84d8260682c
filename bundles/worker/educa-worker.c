/* educa-worker.c - the worker bundle of Educa, Tender's sample application: a
 * background process that every interval_s seconds GETs a path of the web
 * bundle on the same node and writes one line about it to stdout (which
 * the agent keeps as the bundle's log).  libc only.
 *
 * SIGTERM and SIGINT are blocked and read through a signalfd that every
 * wait polls, so the worker stops at once, even in the middle of a job, and
 * exits 0. */
#ifndef EDUCA_VERSION
#error "build with -DEDUCA_VERSION='\"1.2.3\"'"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "educa-conf.h"

#define JOB_TIMEOUT_MS 2000 /* one GET, connect to last byte */
#define RESPONSE_MAX 4096   /* what is read of a response */
#define INTERVAL_MAX 86400

static const char usage[] =
	"Usage: educa-worker --port PORT --config FILE [--host ADDR]\n"
	"The worker bundle of Educa, Tender's sample application (version " EDUCA_VERSION ").\n"
	"Every interval_s seconds, GETs http://ADDR:PORT/PATH and logs the answer on stdout.\n"
	"\n"
	"  -p, --port PORT    the web bundle's port (1-65535)\n"
	"  -c, --config FILE  settings, \"key = value\" lines: interval_s, path, target,\n"
	"                     cluster, version (rendered from etc/worker.conf.tmpl)\n"
	"  -H, --host ADDR    the web bundle's IPv4 address (default 127.0.0.1)\n"
	"  -h, --help         this text\n"
	"  -V, --version      print the version\n"
	"\n"
	"SIGTERM or SIGINT: stop at once and exit 0.\n";

struct settings {
	long interval_s;
	char *path;
	char *target;
	char *cluster;
	char *dist_version;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("educa-worker: ", stderr);
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

static int set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = educa_strdup(value);
	return 0;
}

static int on_setting(const char *key, const char *value, void *ctx, char *err, size_t size)
{
	struct settings *s = ctx;

	if (strcmp(key, "interval_s") == 0) {
		if (educa_parse_long(value, 1, INTERVAL_MAX, &s->interval_s) == 0)
			return 0;
		snprintf(err, size, "\"%s\" is not a whole number from 1 to %d", value,
			 INTERVAL_MAX);
		return -1;
	}
	if (strcmp(key, "path") == 0) {
		if (value[0] != '/' || strpbrk(value, " \t\r\n")) {
			snprintf(err, size, "\"%s\" is not a path starting with '/'", value);
			return -1;
		}
		return set_string(&s->path, value);
	}
	if (strcmp(key, "target") == 0)
		return set_string(&s->target, value);
	if (strcmp(key, "cluster") == 0)
		return set_string(&s->cluster, value);
	if (strcmp(key, "version") == 0)
		return set_string(&s->dist_version, value);
	snprintf(err, size, "unknown setting (known: interval_s, path, target, cluster, version)");
	return -1;
}

/* Waits for fd to be ready for events, or for a stop signal on sfd, until
 * deadline.  1: ready; 0: timed out; -1: stop requested. */
static int wait_for(int fd, short events, int sfd, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = fd, .events = events}};
		int64_t left = deadline - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(p, fd >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("poll: %s", strerror(errno));
		if (p[0].revents)
			return -1;
		if (n > 0)
			return 1;
		if (left == 0)
			return 0;
	}
}

/* One job: GET path over a fresh connection.  Writes a line describing the
 * outcome into line.  Returns -1 when a stop signal came meanwhile. */
static int job(const struct sockaddr_in *sa, const char *host, long port, const char *path,
	       int sfd, char *line, size_t size)
{
	int64_t deadline = now_ms() + JOB_TIMEOUT_MS;
	char req[512], resp[RESPONSE_MAX + 1];
	size_t got = 0, sent = 0;
	int fd, rc, status = 0, reqlen, soerr = 0;
	socklen_t slen = sizeof soerr;
	char *body;

	reqlen = snprintf(req, sizeof req,
			  "GET %s HTTP/1.1\r\nHost: %s:%ld\r\nUser-Agent: educa-worker/" EDUCA_VERSION
			  "\r\nConnection: close\r\n\r\n",
			  path, host, port);
	if (reqlen < 0 || (size_t)reqlen >= sizeof req) {
		snprintf(line, size, "GET %s: path too long", path);
		return 0;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 && errno != EINPROGRESS) {
		snprintf(line, size, "GET %s failed: connect: %s", path, strerror(errno));
		goto out;
	}
	if ((rc = wait_for(fd, POLLOUT, sfd, deadline)) <= 0)
		goto timed_out;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
	if (soerr) {
		snprintf(line, size, "GET %s failed: connect: %s", path, strerror(soerr));
		goto out;
	}
	while (sent < (size_t)reqlen) {
		ssize_t n = send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_for(fd, POLLOUT, sfd, deadline)) <= 0)
				goto timed_out;
			continue;
		}
		if (n < 0) {
			snprintf(line, size, "GET %s failed: send: %s", path, strerror(errno));
			goto out;
		}
		sent += (size_t)n;
	}
	for (;;) {
		ssize_t n;

		if ((rc = wait_for(fd, POLLIN, sfd, deadline)) <= 0)
			goto timed_out;
		n = recv(fd, resp + got, RESPONSE_MAX - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(line, size, "GET %s failed: recv: %s", path, strerror(errno));
			goto out;
		}
		got += (size_t)n;
		if (n == 0 || got == RESPONSE_MAX)
			break;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*[01] %3d", &status) != 1) {
		snprintf(line, size, "GET %s failed: not an HTTP response", path);
		goto out;
	}
	body = strstr(resp, "\r\n\r\n");
	body = body ? body + 4 : resp + got;
	body[strcspn(body, "\r\n")] = '\0';
	snprintf(line, size, "GET %s -> %d %.200s", path, status, body);
	close(fd);
	return 0;

timed_out:
	if (rc < 0) {
		close(fd);
		return -1;
	}
	snprintf(line, size, "GET %s failed: no answer within %d ms", path, JOB_TIMEOUT_MS);
out:
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'}, {"config", required_argument, NULL, 'c'},
		{"host", required_argument, NULL, 'H'}, {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	{NULL, 0, NULL, 0},
	};
	struct settings cfg = {.interval_s = 5};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *config = NULL, *host = "127.0.0.1";
	unsigned long jobs = 0;
	char err[1024], line[512];
	long port = 0;
	sigset_t sigs;
	int opt, sfd;

	while ((opt = getopt_long(argc, argv, "p:c:H:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (educa_parse_long(optarg, 1, 65535, &port) != 0)
				die("--port: \"%s\" is not a port (1-65535)", optarg);
			break;
		case 'c':
			config = optarg;
			break;
		case 'H':
			host = optarg;
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
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("--host: \"%s\" is not an IPv4 address", host);
	sa.sin_port = htons((uint16_t)port);

	cfg.path = educa_strdup("/healthz");
	cfg.target = educa_strdup("unknown");
	cfg.cluster = educa_strdup("");
	cfg.dist_version = educa_strdup("");
	if (educa_conf_read(config, on_setting, &cfg, err, sizeof err) != 0)
		die("%s", err);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0)
		die("sigprocmask: %s", strerror(errno));
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd: %s", strerror(errno));
	/* The agent sends stdout to a file: a line at a time, not 4 KiB. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("educa-worker %s on %s: distribution %s, every %ld s GET http://%s:%ld%s\n",
	       EDUCA_VERSION, cfg.target, cfg.dist_version, cfg.interval_s, host, port, cfg.path);
	for (;;) {
		if (wait_for(-1, 0, sfd, now_ms() + cfg.interval_s * 1000) < 0)
			break;
		if (job(&sa, host, port, cfg.path, sfd, line, sizeof line) < 0)
			break;
		printf("educa-worker %s on %s: job %lu: %s\n", EDUCA_VERSION, cfg.target, ++jobs,
		       line);
	}
	printf("educa-worker %s on %s: stopping after %lu jobs\n", EDUCA_VERSION, cfg.target, jobs);
	close(sfd);
	free(cfg.path);
	free(cfg.target);
	free(cfg.cluster);
	free(cfg.dist_version);
	return 0;
}
