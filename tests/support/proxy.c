/* proxy.c - see proxy.h.  An acceptor thread and one thread per client
 * connection; everything the test can change is under one mutex.  A
 * response is read whole from upstream (bodies are small here) before the
 * rules decide what the client gets of it. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xalloc.h"

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (256u * 1024 * 1024)

struct conn {
	struct th_proxy *p;
	int cfd, ufd;
	pthread_t thread;
	bool done;
};

struct th_proxy {
	char url[64];
	struct sockaddr_in upstream;
	int lfd;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	struct conn **conns;
	size_t nconns;

	size_t cut_after;
	bool cut_armed, flip, stall;
	size_t stalled;
	bool override;
	char *desired_body, *desired_sig;
	json_t *log;
};

struct sbuf {
	char *p;
	size_t len;
};

static void sbuf_add(struct sbuf *b, const void *data, size_t n)
{
	b->p = xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void die(const char *what)
{
	fprintf(stderr, "proxy: %s: %s\n", what, strerror(errno));
	abort();
}

static bool send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static const char *head_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0)
			return p + i + 4;
	return NULL;
}

/* The value of header name in the head [head, end) (copied), or NULL. */
static char *header_value(const char *head, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (const char *line = strstr(head, "\r\n"); line && line + 2 < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *l = line + 2;

		if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
			const char *v = l + n + 1, *e = strstr(v, "\r\n");

			while (*v == ' ' || *v == '\t')
				v++;
			return xstrndup(v, (size_t)(e - v));
		}
	}
	return NULL;
}

static bool hop_by_hop(const char *line)
{
	static const char *const names[] = {"Connection:", "Keep-Alive:", "Expect:",
					    "Proxy-Connection:"};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strncasecmp(line, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

static int connect_upstream(struct th_proxy *p)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&p->upstream, sizeof p->upstream) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads from fd until the head is complete and then Content-Length bytes
 * of body (or, without one, until the end).  want_body false: the head
 * only.  Returns false when the peer went away first. */
static bool read_message(int fd, struct sbuf *b, bool want_body, size_t *head_len)
{
	char buf[16384];
	const char *end = NULL;
	size_t need = (size_t)-1;

	for (;;) {
		ssize_t n;

		if (!end && b->p && (end = head_end(b->p, b->len))) {
			char *cl = header_value(b->p, end, "Content-Length");

			*head_len = (size_t)(end - b->p);
			if (!want_body)
				need = 0;
			else if (cl)
				need = strtoull(cl, NULL, 10);
			free(cl);
		}
		if (end && (need == (size_t)-1 ? false : b->len - *head_len >= need))
			return true;
		if (!end && b->len > HEAD_MAX)
			return false;
		if (end && b->len - *head_len > BODY_MAX)
			return false;
		n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return end != NULL && need == (size_t)-1;
		sbuf_add(b, buf, (size_t)n);
	}
}

static void record(struct th_proxy *p, json_t *entry)
{
	pthread_mutex_lock(&p->lock);
	json_array_append_new(p->log, entry);
	pthread_mutex_unlock(&p->lock);
}

static void handle(struct conn *c)
{
	struct th_proxy *p = c->p;
	struct sbuf req = {0}, resp = {0}, out = {0};
	size_t req_head = 0, resp_head = 0, body_len;
	char method[16] = "", path[2048] = "";
	char *range = NULL, *expect = NULL;
	json_t *entry;
	bool blob, desired;

	/* the request head, then (after a 100 Continue when asked) its body */
	if (!read_message(c->cfd, &req, false, &req_head))
		goto out;
	if (sscanf(req.p, "%15s %2047s", method, path) != 2)
		goto out;
	range = header_value(req.p, req.p + req_head, "Range");
	expect = header_value(req.p, req.p + req_head, "Expect");
	{
		char *cl = header_value(req.p, req.p + req_head, "Content-Length");
		size_t want = cl ? strtoull(cl, NULL, 10) : 0;

		free(cl);
		if (want && expect && strcasecmp(expect, "100-continue") == 0 &&
		    req.len == req_head && !send_all(c->cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
			goto out;
		while (req.len - req_head < want) {
			char buf[16384];
			ssize_t n = recv(c->cfd, buf, sizeof buf, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto out;
			sbuf_add(&req, buf, (size_t)n);
		}
	}
	blob = strcmp(method, "GET") == 0 && strncmp(path, "/agent/v1/blobs/", 16) == 0;
	desired = strcmp(method, "GET") == 0 && strncmp(path, "/agent/v1/desired", 17) == 0;
	entry = json_pack("{s:s, s:s, s:s?, s:i, s:n, s:b}", "method", method, "path", path,
			  "range", range, "status", 0, "cut", "overridden", false);
	if (req.len > req_head)
		json_object_set_new(entry, "request",
				    json_stringn(req.p + req_head, req.len - req_head));

	pthread_mutex_lock(&p->lock);
	if (desired && p->override) {
		char *head = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				       "Content-Length: %zu\r\n%s%s%sConnection: close\r\n\r\n",
				       strlen(p->desired_body), p->desired_sig ? "Tender-Signature: " : "",
				       p->desired_sig ? p->desired_sig : "", p->desired_sig ? "\r\n" : "");

		sbuf_add(&out, head, strlen(head));
		sbuf_add(&out, p->desired_body, strlen(p->desired_body));
		free(head);
		pthread_mutex_unlock(&p->lock);
		json_object_set_new(entry, "status", json_integer(200));
		json_object_set_new(entry, "overridden", json_true());
		send_all(c->cfd, out.p, out.len);
		record(p, entry);
		goto out;
	}
	pthread_mutex_unlock(&p->lock);

	/* relay: the request as it came, but for one request per connection */
	{
		const char *line = req.p;
		const char *end = req.p + req_head - 2; /* the blank line */
		int fd = connect_upstream(p);

		pthread_mutex_lock(&p->lock);
		c->ufd = fd;
		pthread_mutex_unlock(&p->lock);
		if (fd < 0) {
			record(p, entry);
			goto out;
		}
		while (line < end) {
			const char *eol = strstr(line, "\r\n");

			if (!hop_by_hop(line))
				sbuf_add(&out, line, (size_t)(eol + 2 - line));
			line = eol + 2;
		}
		sbuf_add(&out, "Connection: close\r\n\r\n", 21);
		sbuf_add(&out, req.p + req_head, req.len - req_head);
		if (!send_all(fd, out.p, out.len) || !read_message(fd, &resp, true, &resp_head)) {
			record(p, entry);
			goto out;
		}
	}
	{
		int status = 0;

		sscanf(resp.p, "HTTP/%*s %d", &status);
		json_object_set_new(entry, "status", json_integer(status));
		body_len = resp.len - resp_head;
		if (desired && status == 200) {
			char *sig = header_value(resp.p, resp.p + resp_head, "Tender-Signature");

			json_object_set_new(entry, "response", json_stringn(resp.p + resp_head, body_len));
			json_object_set_new(entry, "signature", sig ? json_string(sig) : json_null());
			free(sig);
		}
		if (blob && (status == 200 || status == 206) && body_len > 0) {
			size_t send_len = body_len;
			bool hold = false;

			pthread_mutex_lock(&p->lock);
			if (p->flip)
				resp.p[resp_head + body_len / 2] ^= 0x5a;
			if (p->cut_armed) {
				p->cut_armed = false;
				send_len = p->cut_after < body_len ? p->cut_after : body_len;
			} else if (p->stall) {
				hold = true;
				send_len = body_len / 2;
			}
			pthread_mutex_unlock(&p->lock);
			if (send_len < body_len || hold)
				json_object_set_new(entry, "cut", json_integer((json_int_t)send_len));
			send_all(c->cfd, resp.p, resp_head + send_len);
			if (hold) {
				pthread_mutex_lock(&p->lock);
				p->stalled++;
				while (p->stall && !p->stopping)
					pthread_cond_wait(&p->cond, &p->lock);
				p->stalled--;
				pthread_mutex_unlock(&p->lock);
			}
		} else {
			send_all(c->cfd, resp.p, resp.len);
		}
		record(p, entry);
	}
out:
	free(range);
	free(expect);
	free(req.p);
	free(resp.p);
	free(out.p);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct th_proxy *p = c->p;

	handle(c);
	pthread_mutex_lock(&p->lock);
	shutdown(c->cfd, SHUT_RDWR);
	close(c->cfd);
	c->cfd = -1;
	if (c->ufd >= 0)
		close(c->ufd);
	c->ufd = -1;
	c->done = true;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Joins the threads of finished connections (called with the lock held,
 * from the acceptor: they are done, so joining does not block long). */
static void reap(struct th_proxy *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->nconns; i++) {
		struct conn *c = p->conns[i];

		if (c->done) {
			pthread_join(c->thread, NULL);
			free(c);
		} else {
			p->conns[kept++] = c;
		}
	}
	p->nconns = kept;
}

static void *accept_main(void *arg)
{
	struct th_proxy *p = arg;

	for (;;) {
		struct pollfd pfd = {.fd = p->lfd, .events = POLLIN};
		struct conn *c;
		int fd;

		pthread_mutex_lock(&p->lock);
		if (p->stopping) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		reap(p);
		pthread_mutex_unlock(&p->lock);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = xcalloc(1, sizeof *c);
		c->p = p;
		c->cfd = fd;
		c->ufd = -1;
		pthread_mutex_lock(&p->lock);
		if (p->stopping) {
			pthread_mutex_unlock(&p->lock);
			close(fd);
			free(c);
			return NULL;
		}
		p->conns = xrealloc(p->conns, (p->nconns + 1) * sizeof *p->conns);
		p->conns[p->nconns++] = c;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
			die("pthread_create");
		pthread_mutex_unlock(&p->lock);
	}
}

struct th_proxy *th_proxy_start(const char *upstream_url)
{
	struct th_proxy *p = xcalloc(1, sizeof *p);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	const char *port = strrchr(upstream_url, ':');

	if (!port || strncmp(upstream_url, "http://127.0.0.1:", 17) != 0) {
		fprintf(stderr, "proxy: upstream %s is not http://127.0.0.1:PORT\n", upstream_url);
		abort();
	}
	p->upstream.sin_family = AF_INET;
	p->upstream.sin_port = htons((uint16_t)strtoul(port + 1, NULL, 10));
	p->upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->log = json_array();
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(p->lfd, 64) != 0 || getsockname(p->lfd, (struct sockaddr *)&sa, &len) != 0)
		die("listen");
	snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	if (pthread_create(&p->acceptor, NULL, accept_main, p) != 0)
		die("pthread_create");
	return p;
}

const char *th_proxy_url(const struct th_proxy *p)
{
	return p->url;
}

void th_proxy_stop(struct th_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->acceptor, NULL);
	/* Wake every connection thread out of its reads. */
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->nconns; i++) {
		if (p->conns[i]->cfd >= 0)
			shutdown(p->conns[i]->cfd, SHUT_RDWR);
		if (p->conns[i]->ufd >= 0)
			shutdown(p->conns[i]->ufd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->nconns; i++) {
		pthread_join(p->conns[i]->thread, NULL);
		free(p->conns[i]);
	}
	free(p->conns);
	close(p->lfd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	json_decref(p->log);
	free(p->desired_body);
	free(p->desired_sig);
	free(p);
}

void th_proxy_cut_blob_once(struct th_proxy *p, size_t after)
{
	pthread_mutex_lock(&p->lock);
	p->cut_armed = true;
	p->cut_after = after;
	pthread_mutex_unlock(&p->lock);
}

void th_proxy_flip_blobs(struct th_proxy *p, bool on)
{
	pthread_mutex_lock(&p->lock);
	p->flip = on;
	pthread_mutex_unlock(&p->lock);
}

void th_proxy_stall_blobs(struct th_proxy *p, bool on)
{
	pthread_mutex_lock(&p->lock);
	p->stall = on;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

size_t th_proxy_stalled(struct th_proxy *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->stalled;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void th_proxy_override_desired(struct th_proxy *p, const char *body, const char *signature_header)
{
	pthread_mutex_lock(&p->lock);
	free(p->desired_body);
	free(p->desired_sig);
	p->desired_body = xstrdup(body);
	p->desired_sig = signature_header ? xstrdup(signature_header) : NULL;
	p->override = true;
	pthread_mutex_unlock(&p->lock);
}

void th_proxy_clear_desired(struct th_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->override = false;
	pthread_mutex_unlock(&p->lock);
}

json_t *th_proxy_log(struct th_proxy *p)
{
	json_t *copy;

	pthread_mutex_lock(&p->lock);
	copy = json_deep_copy(p->log);
	pthread_mutex_unlock(&p->lock);
	return copy;
}
