/* haproxy.c - see haproxy.h.  The `show stat` reading here is the test's
 * own (not the server's parser): an oracle that shares no code with what
 * it checks. */
#include "haproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "xalloc.h"

#define START_DEADLINE_S 10.0
#define HITS_MAX 400000

static const char *haproxy_path(void)
{
	static const char *const paths[] = {"/usr/sbin/haproxy", "/usr/local/sbin/haproxy",
					    "/usr/bin/haproxy", NULL};

	for (size_t i = 0; paths[i]; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

bool th_haproxy_available(void)
{
	return haproxy_path() != NULL;
}

static void die(const struct th_haproxy *h, const char *what)
{
	char *log = NULL, *path = h->dir ? xasprintf("%s/haproxy.log", h->dir) : NULL;
	size_t len = 0;

	fprintf(stderr, "haproxy: %s\n", what);
	if (path && tn_read_file(path, 1 << 16, &log, &len, NULL) == 0)
		fprintf(stderr, "--- haproxy log\n%s---\n", log);
	free(log);
	free(path);
	abort();
}

static void spawn(struct th_haproxy *h)
{
	char *cfg = xasprintf("%s/haproxy.cfg", h->dir);
	char *log = xasprintf("%s/haproxy.log", h->dir);
	double deadline = th_now_s() + START_DEADLINE_S;
	pid_t pid = fork();

	if (pid < 0)
		die(h, "fork failed");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execl(haproxy_path(), "haproxy", "-db", "-f", cfg, (char *)NULL);
		_exit(127);
	}
	h->pid = pid;
	free(cfg);
	free(log);
	for (;;) {
		char *info = th_haproxy_cmd(h, "show info");
		bool up = info && strstr(info, "Name: HAProxy");
		int status;

		free(info);
		if (up)
			return;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->pid = 0;
			die(h, "haproxy exited during start-up");
		}
		if (th_now_s() > deadline)
			die(h, "haproxy's runtime API did not answer in time");
		th_pause_ms(20);
	}
}

void th_haproxy_start(struct th_haproxy *h, const char *backend)
{
	int ports = th_port_block(2);
	char *cfg, *path;
	struct tn_error err;

	memset(h, 0, sizeof *h);
	if (!th_haproxy_available())
		die(h, "haproxy is not installed (scripts/bootstrap installs it)");
	h->dir = th_tmpdir();
	h->backend = xstrdup(backend);
	h->admin_port = ports;
	h->front_port = ports + 1;
	snprintf(h->admin, sizeof h->admin, "127.0.0.1:%d", h->admin_port);
	cfg = xasprintf("global\n"
			"  stats socket ipv4@127.0.0.1:%d level admin\n"
			"  stats timeout 10s\n"
			"defaults\n"
			"  mode http\n"
			"  timeout connect 2s\n"
			"  timeout client 30s\n"
			"  timeout server 30s\n"
			"frontend front\n"
			"  bind 127.0.0.1:%d\n"
			"  default_backend %s\n"
			"backend %s\n"
			"  balance roundrobin\n",
			h->admin_port, h->front_port, backend, backend);
	path = xasprintf("%s/haproxy.cfg", h->dir);
	if (tn_write_file_atomic(path, cfg, strlen(cfg), 0644, &err) != 0)
		die(h, err.message);
	free(path);
	free(cfg);
	spawn(h);
}

void th_haproxy_stop(struct th_haproxy *h)
{
	double deadline = th_now_s() + 5;

	if (h->pid <= 0)
		return;
	kill(h->pid, SIGTERM);
	while (waitpid(h->pid, NULL, WNOHANG) != h->pid) {
		if (th_now_s() > deadline) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, NULL, 0);
			break;
		}
		th_pause_ms(10);
	}
	h->pid = 0;
}

void th_haproxy_restart(struct th_haproxy *h)
{
	th_haproxy_stop(h);
	spawn(h);
}

void th_haproxy_destroy(struct th_haproxy *h)
{
	if (!h)
		return;
	th_haproxy_stop(h);
	if (h->dir)
		th_rmtree(h->dir);
	free(h->dir);
	free(h->backend);
	memset(h, 0, sizeof *h);
}

char *th_haproxy_cmd(const struct th_haproxy *h, const char *cmd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char *buf = NULL, *line = xasprintf("%s\n", cmd);
	size_t len = 0, cap = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {3, 0};

	sa.sin_port = htons((uint16_t)h->admin_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		if (fd >= 0)
			close(fd);
		free(line);
		return NULL;
	}
	free(line);
	for (;;) {
		ssize_t n;

		if (len + 4097 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* Calls fn for each server line of the backend in `show stat`. */
static void each_server(const struct th_haproxy *h,
			void (*fn)(void *ctx, const char *name, const char *status, long scur),
			void *ctx)
{
	char *stat, *save = NULL, *line;
	int sv = -1, st = -1, scur = -1;

	{
		char *cmd = xasprintf("show stat %s 4 -1", h->backend);

		stat = th_haproxy_cmd(h, cmd);
		free(cmd);
	}
	if (!stat)
		return;
	for (line = strtok_r(stat, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[256], *p = line;
		int n = 0;

		if (strncmp(line, "# ", 2) == 0)
			p += 2;
		while (n < 256) {
			f[n++] = p;
			if (!(p = strchr(p, ',')))
				break;
			*p++ = '\0';
		}
		if (line[0] == '#') {
			for (int i = 0; i < n; i++) {
				sv = strcmp(f[i], "svname") == 0 ? i : sv;
				st = strcmp(f[i], "status") == 0 ? i : st;
				scur = strcmp(f[i], "scur") == 0 ? i : scur;
			}
			continue;
		}
		if (sv >= 0 && st >= 0 && scur >= 0 && n > sv && n > st && n > scur)
			fn(ctx, f[sv], f[st], strtol(f[scur], NULL, 10));
	}
	free(stat);
}

struct one {
	const char *name;
	char *status;
	size_t size;
	long sessions;
	bool found;
};

static void find_one(void *ctx, const char *name, const char *status, long scur)
{
	struct one *o = ctx;

	if (strcmp(name, o->name) != 0)
		return;
	o->found = true;
	snprintf(o->status, o->size, "%s", status);
	o->sessions = scur;
}

bool th_haproxy_server(const struct th_haproxy *h, const char *name, char *status,
		       size_t status_size, long *sessions)
{
	struct one o = {name, status, status_size, 0, false};

	each_server(h, find_one, &o);
	if (sessions)
		*sessions = o.sessions;
	return o.found;
}

struct count {
	size_t all, up;
};

static void count_one(void *ctx, const char *name, const char *status, long scur)
{
	struct count *c = ctx;

	(void)scur;
	if (strncmp(name, "t-", 2) != 0)
		return;
	c->all++;
	if (strncmp(status, "UP", 2) == 0)
		c->up++;
}

size_t th_haproxy_members(const struct th_haproxy *h, size_t *up)
{
	struct count c = {0, 0};

	each_server(h, count_one, &c);
	if (up)
		*up = c.up;
	return c.all;
}

/* ------------------------------------------------------------ load */

struct th_load {
	int port, pace_ms, nclients;
	pthread_t threads[16];
	atomic_bool stop;
	pthread_mutex_t lock;
	struct th_hit *hits;
	size_t nhits;
	atomic_size_t total, failed;
};

static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {10, 0};
	int one = 1;

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void header(const char *head, const char *name, char *out, size_t size)
{
	const char *p = strcasestr(head, name);

	out[0] = '\0';
	if (!p)
		return;
	p += strlen(name);
	while (*p == ' ')
		p++;
	snprintf(out, size, "%.*s", (int)strcspn(p, "\r\n"), p);
}

/* One request on *fd (dialled when -1); fills hit; the connection is
 * closed (and *fd -1) when the answer says so or anything failed. */
static void one_request(struct th_load *l, int *fd, struct th_hit *hit)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: load\r\n\r\n";
	char buf[8192], clen[32], conn[32];
	size_t len = 0;
	char *end = NULL;

	hit->status = 0;
	if (*fd < 0 && (*fd = dial(l->port)) < 0)
		return;
	if (send(*fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
		goto fail;
	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		ssize_t n = len < sizeof buf - 1 ? recv(*fd, buf + len, sizeof buf - 1 - len, 0) : -1;

		if (n <= 0)
			goto fail;
		len += (size_t)n;
		buf[len] = '\0';
	}
	*end = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &hit->status) != 1)
		goto fail;
	header(buf, "\nX-Educa-Target:", hit->target, sizeof hit->target);
	header(buf, "\nContent-Length:", clen, sizeof clen);
	header(buf, "\nConnection:", conn, sizeof conn);
	{
		size_t body_len = (size_t)strtoul(clen, NULL, 10), have = len - (size_t)(end + 4 - buf);
		char *body = end + 4;

		if (body_len >= sizeof buf / 2)
			goto fail;
		memmove(buf, body, have);
		while (have < body_len) {
			ssize_t n = recv(*fd, buf + have, sizeof buf - 1 - have, 0);

			if (n <= 0)
				goto fail;
			have += (size_t)n;
		}
		buf[body_len] = '\0';
		snprintf(hit->body, sizeof hit->body, "%.*s", (int)strcspn(buf, "\n"), buf);
	}
	if (strcasecmp(conn, "close") == 0) {
		close(*fd);
		*fd = -1;
	}
	return;
fail:
	if (hit->status == 200)
		hit->status = -1; /* a broken answer is a failure too */
	close(*fd);
	*fd = -1;
}

static void *client(void *arg)
{
	struct th_load *l = arg;
	int fd = -1;

	while (!atomic_load(&l->stop)) {
		struct th_hit hit = {.t = th_now_s()};

		one_request(l, &fd, &hit);
		atomic_fetch_add(&l->total, 1);
		if (hit.status != 200)
			atomic_fetch_add(&l->failed, 1);
		pthread_mutex_lock(&l->lock);
		if (l->nhits < HITS_MAX)
			l->hits[l->nhits++] = hit;
		pthread_mutex_unlock(&l->lock);
		th_pause_ms(l->pace_ms);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

struct th_load *th_load_start(int port, int clients, int pace_ms)
{
	struct th_load *l = xcalloc(1, sizeof *l);

	l->port = port;
	l->pace_ms = pace_ms;
	l->nclients = clients < 1 ? 1 : clients > 16 ? 16 : clients;
	l->hits = xcalloc(HITS_MAX, sizeof *l->hits);
	pthread_mutex_init(&l->lock, NULL);
	for (int i = 0; i < l->nclients; i++)
		pthread_create(&l->threads[i], NULL, client, l);
	return l;
}

void th_load_counts(struct th_load *l, size_t *total, size_t *failed)
{
	*total = atomic_load(&l->total);
	*failed = atomic_load(&l->failed);
}

void th_load_peek(struct th_load *l, const struct th_hit **hits, size_t *n)
{
	pthread_mutex_lock(&l->lock);
	*hits = l->hits;
	*n = l->nhits;
	pthread_mutex_unlock(&l->lock);
}

void th_load_stop(struct th_load *l, const struct th_hit **hits, size_t *n)
{
	if (!atomic_exchange(&l->stop, true))
		for (int i = 0; i < l->nclients; i++)
			pthread_join(l->threads[i], NULL);
	*hits = l->hits;
	*n = l->nhits;
}

void th_load_free(struct th_load *l)
{
	const struct th_hit *hits;
	size_t n;

	if (!l)
		return;
	th_load_stop(l, &hits, &n);
	pthread_mutex_destroy(&l->lock);
	free(l->hits);
	free(l);
}
