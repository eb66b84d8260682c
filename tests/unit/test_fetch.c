/* test_fetch.c - the blob cache and its downloads against a tiny HTTP server
 * run in a thread of this process.  The server supports Range and can be
 * scripted to cut a response after K bytes, send wrong bytes, ignore Range,
 * answer 503 + Retry-After or 404, or send slowly; it records every request
 * so that tests see what went over the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "desired.h"
#include "digest.h"
#include "fetch.h"
#include "fsutil.h"
#include "loop.h"
#include "xalloc.h"

/* ------------------------------------------------------------ server */

enum mode { M_NORMAL, M_CUT, M_BUSY, M_WRONG, M_IGNORE_RANGE, M_404, M_SLOW };

struct act {
	enum mode mode;
	size_t k; /* M_CUT: body bytes sent before the cut */
	int retry_after;
};

struct rec {
	char path[160];
	char range[64];
	char auth[128];
	int status;
	size_t sent; /* body bytes */
};

#define MAX_BLOBS 4
#define MAX_SCRIPT 8
#define MAX_RECS 32

struct srv {
	int lfd;
	int port;
	int stop[2];
	pthread_t th;
	pthread_mutex_t mu;
	struct {
		char path[160];
		const unsigned char *data;
		size_t len;
	} blobs[MAX_BLOBS];
	size_t nblobs;
	struct act script[MAX_SCRIPT];
	size_t nscript, next;
	struct rec recs[MAX_RECS];
	size_t nrecs;
};

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w <= 0)
			return; /* the client went away: fine for a test server */
		c += w;
		n -= (size_t)w;
	}
}

/* The value of header name in the request head, copied into out. */
static void header(const char *req, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);

	out[0] = '\0';
	for (const char *l = strstr(req, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *line = l + 2;

		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			const char *end = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, size, "%.*s", (int)(end - v), v);
			return;
		}
	}
}

static void serve_one(struct srv *s, int fd)
{
	char req[8192], head[512];
	size_t used = 0;
	struct act a = {M_NORMAL, 0, 0};
	struct rec r = {0};
	const unsigned char *data = NULL;
	size_t len = 0, from = 0, body;
	unsigned char *copy = NULL;

	while (used < sizeof req - 1) {
		ssize_t n = recv(fd, req + used, sizeof req - 1 - used, 0);

		if (n <= 0)
			return;
		used += (size_t)n;
		req[used] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	sscanf(req, "GET %159s", r.path);
	header(req, "Range", r.range, sizeof r.range);
	header(req, "Authorization", r.auth, sizeof r.auth);
	pthread_mutex_lock(&s->mu);
	if (s->next < s->nscript)
		a = s->script[s->next++];
	for (size_t i = 0; i < s->nblobs; i++)
		if (strcmp(s->blobs[i].path, r.path) == 0) {
			data = s->blobs[i].data;
			len = s->blobs[i].len;
		}
	pthread_mutex_unlock(&s->mu);
	if (r.range[0] && a.mode != M_IGNORE_RANGE)
		sscanf(r.range, "bytes=%zu-", &from);
	if (a.mode == M_BUSY) {
		r.status = 503;
		snprintf(head, sizeof head,
			 "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n"
			 "Content-Length: 4\r\nConnection: close\r\n\r\nbusy",
			 a.retry_after);
	} else if (!data || a.mode == M_404) {
		r.status = 404;
		snprintf(head, sizeof head, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
					    "Connection: close\r\n\r\n");
	} else if (from >= len) {
		r.status = 416;
		snprintf(head, sizeof head,
			 "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%zu\r\n"
			 "Content-Length: 0\r\nConnection: close\r\n\r\n",
			 len);
	} else if (from > 0) {
		r.status = 206;
		snprintf(head, sizeof head,
			 "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 from, len - 1, len, len - from);
	} else {
		r.status = 200;
		snprintf(head, sizeof head,
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 len);
	}
	body = r.status == 200 || r.status == 206 ? len - from : 0;
	if (a.mode == M_CUT && a.k < body)
		body = a.k;
	if (a.mode == M_WRONG && body) {
		copy = xmalloc(len);
		memcpy(copy, data, len);
		copy[len - 1] ^= 0xff;
		data = copy;
	}
	r.sent = body;
	/* Recorded before sending: the client may finish before we return. */
	pthread_mutex_lock(&s->mu);
	if (s->nrecs < MAX_RECS)
		s->recs[s->nrecs++] = r;
	pthread_mutex_unlock(&s->mu);
	send_all(fd, head, strlen(head));
	if (a.mode == M_SLOW) {
		for (size_t off = 0; off < body; off += body / 8 + 1) {
			size_t n = body - off < body / 8 + 1 ? body - off : body / 8 + 1;

			send_all(fd, data + from + off, n);
			usleep(80 * 1000);
		}
	} else if (body) {
		send_all(fd, data + from, body);
	}
	free(copy);
}

static void *serve(void *ctx)
{
	struct srv *s = ctx;

	for (;;) {
		struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(s, fd);
		/* An orderly close: a cut is a short body, not a reset. */
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

static void srv_start(struct srv *s)
{
	struct sockaddr_in a = {0};
	socklen_t alen = sizeof a;
	int one = 1;

	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pipe(s->stop), 0);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void srv_stop(struct srv *s)
{
	assert_int_equal(write(s->stop[1], "x", 1), 1);
	pthread_join(s->th, NULL);
	close(s->stop[0]);
	close(s->stop[1]);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
}

static void srv_script(struct srv *s, struct act a)
{
	pthread_mutex_lock(&s->mu);
	s->script[s->nscript++] = a;
	pthread_mutex_unlock(&s->mu);
}

static size_t srv_nrecs(struct srv *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->nrecs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ------------------------------------------------------------ fixture */

#define BLOB_LEN (200 * 1024)
#define CUT_AT 70000

struct fx {
	char dir[64];
	struct srv srv;
	struct tn_loop *loop;
	struct tn_fetch *fetch;
	char *url;
	unsigned char *data[3];
	char hex[3][TN_SHA256_HEX_LEN + 1];
	/* the last job's end */
	bool done;
	int rc;
	struct tn_error err;
	uint64_t progress_calls, last_done, last_total;
};

static struct fx *fx_of(void **state)
{
	return *state;
}

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	snprintf(fx->dir, sizeof fx->dir, "/tmp/tn-test-fetch-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	srv_start(&fx->srv);
	fx->url = xasprintf("http://127.0.0.1:%d", fx->srv.port);
	for (int b = 0; b < 3; b++) {
		uint32_t x = 2463534242u + (uint32_t)b;
		char hex[TN_SHA256_HEX_LEN + 1];

		fx->data[b] = xmalloc(BLOB_LEN);
		for (size_t i = 0; i < BLOB_LEN; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			fx->data[b][i] = (unsigned char)x;
		}
		tn_sha256_hex(fx->data[b], BLOB_LEN, hex);
		memcpy(fx->hex[b], hex, sizeof hex);
		snprintf(fx->srv.blobs[b].path, sizeof fx->srv.blobs[b].path, "/agent/v1/blobs/%s",
			 hex);
		fx->srv.blobs[b].data = fx->data[b];
		fx->srv.blobs[b].len = BLOB_LEN;
	}
	fx->srv.nblobs = 3;
	fx->loop = tn_loop_new();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	struct tn_error err;
	int rc;

	tn_fetch_free(fx->fetch);
	tn_loop_free(fx->loop);
	srv_stop(&fx->srv);
	rc = tn_remove_tree(fx->dir, &err);
	for (int b = 0; b < 3; b++)
		free(fx->data[b]);
	free(fx->url);
	free(fx);
	return rc;
}

static void open_fetch(struct fx *fx, unsigned max_attempts)
{
	struct tn_fetch_opts o = {
		.state_dir = fx->dir,
		.server_url = fx->url,
		.token = "tok-123",
		.max_attempts = max_attempts,
		.backoff_ms = 10,
		.backoff_max_ms = 50,
		.jitter_ms = 5,
	};

	assert_int_equal(tn_fetch_new(fx->loop, &o, &fx->fetch, NULL), 0);
}

/* A release of the blobs given by index (-1 ends the list). */
static struct tn_desired_release *release_of(struct fx *fx, const int *which)
{
	json_t *bundles = json_array(), *obj;
	struct tn_desired_release *r = NULL;
	struct tn_error err;

	for (int i = 0; which[i] >= 0; i++) {
		int b = which[i];
		char name[32], url[128];

		snprintf(name, sizeof name, "org.test.b%d", b);
		snprintf(url, sizeof url, "/agent/v1/blobs/%s", fx->hex[b]);
		json_array_append_new(bundles, json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", name,
							 "version", "1.0.0", "sha256", fx->hex[b],
							 "size", (json_int_t)BLOB_LEN, "url", url));
	}
	obj = json_pack("{s:s, s:s, s:s, s:o, s:{}}", "id", "test@1.0.0+000000000000",
			"distribution", "test", "version", "1.0.0", "bundles", bundles, "config");
	if (tn_desired_release_parse(obj, "release", &r, &err) < 0)
		fail_msg("%s", err.message);
	json_decref(obj);
	return r;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct fx *fx = ctx;

	assert_true(done <= total);
	assert_true(done >= fx->last_done);
	fx->progress_calls++;
	fx->last_done = done;
	fx->last_total = total;
}

static void on_done(void *ctx, int rc, const struct tn_error *err)
{
	struct fx *fx = ctx;

	fx->done = true;
	fx->rc = rc;
	if (err)
		fx->err = *err;
	else
		memset(&fx->err, 0, sizeof fx->err);
}

/* Fetches the release of the blobs given and waits for the end. */
static int fetch(struct fx *fx, const int *which)
{
	struct tn_desired_release *r = release_of(fx, which);
	uint64_t start = tn_loop_now_ms();

	fx->done = false;
	fx->progress_calls = fx->last_done = fx->last_total = 0;
	tn_fetch_release(fx->fetch, r, on_progress, on_done, fx);
	tn_desired_release_unref(r); /* the job copied what it needs */
	/* The end is never reported from inside the call. */
	assert_false(fx->done);
	while (!fx->done && tn_loop_now_ms() - start < 20000)
		tn_loop_run_once(fx->loop, 100);
	assert_true(fx->done);
	return fx->rc;
}

static char *cache_file(struct fx *fx, int b)
{
	return tn_fetch_blob_path(fx->dir, fx->hex[b]);
}

static char *part_file(struct fx *fx, int b)
{
	return xasprintf("%s/cache/partial/%s.part", fx->dir, fx->hex[b]);
}

static void assert_cached(struct fx *fx, int b)
{
	char *path = cache_file(fx, b), *buf = NULL, *part = part_file(fx, b);
	size_t len = 0;

	assert_int_equal(tn_read_file(path, 2 * BLOB_LEN, &buf, &len, NULL), 0);
	assert_int_equal(len, BLOB_LEN);
	assert_memory_equal(buf, fx->data[b], BLOB_LEN);
	assert_int_equal(access(part, F_OK), -1);
	free(buf);
	free(path);
	free(part);
}

static void assert_absent(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), -1);
}

static void write_part(struct fx *fx, int b, const void *p, size_t n)
{
	char *part = part_file(fx, b);

	assert_int_equal(tn_write_file_atomic(part, p, n, 0644, NULL), 0);
	free(part);
}

/* ------------------------------------------------------------ tests */

static void test_download_verifies_and_caches(void **state)
{
	struct fx *fx = fx_of(state);

	open_fetch(fx, 0);
	assert_int_equal(fetch(fx, (int[]){0, 1, -1}), 0);
	assert_cached(fx, 0);
	assert_cached(fx, 1);
	assert_int_equal(fx->srv.nrecs, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(fx->srv.recs[i].auth, "Bearer tok-123");
		assert_string_equal(fx->srv.recs[i].range, "");
		assert_int_equal(fx->srv.recs[i].status, 200);
	}
	assert_true(tn_fetch_have(fx->dir, fx->hex[0], BLOB_LEN));
	assert_false(tn_fetch_have(fx->dir, fx->hex[0], BLOB_LEN - 1));
	/* In the cache: a second job asks nothing of the server. */
	assert_int_equal(fetch(fx, (int[]){0, 1, -1}), 0);
	assert_int_equal(srv_nrecs(&fx->srv), 2);
}

static void test_progress_is_reported(void **state)
{
	struct fx *fx = fx_of(state);

	open_fetch(fx, 0);
	srv_script(&fx->srv, (struct act){M_SLOW, 0, 0});
	assert_int_equal(fetch(fx, (int[]){0, -1}), 0);
	assert_true(fx->progress_calls >= 1);
	assert_int_equal(fx->last_total, BLOB_LEN);
	assert_true(fx->last_done > 0);
}

static void test_cut_download_resumes_from_part(void **state)
{
	struct fx *fx = fx_of(state);
	char *part = part_file(fx, 0), *cached = cache_file(fx, 0);
	struct stat st;

	/* One attempt: the cut fails the job and leaves the part. */
	open_fetch(fx, 1);
	srv_script(&fx->srv, (struct act){M_CUT, CUT_AT, 0});
	assert_true(fetch(fx, (int[]){0, -1}) < 0);
	assert_int_equal(fx->err.code, TN_E_UNAVAILABLE);
	assert_non_null(strstr(fx->err.message, fx->hex[0]));
	assert_int_equal(lstat(part, &st), 0);
	assert_int_equal(st.st_size, CUT_AT);
	assert_absent(cached);
	/* The next job resumes with a Range request for the rest only. */
	assert_int_equal(fetch(fx, (int[]){0, -1}), 0);
	assert_int_equal(fx->srv.nrecs, 2);
	assert_string_equal(fx->srv.recs[1].range, "bytes=70000-");
	assert_int_equal(fx->srv.recs[1].status, 206);
	assert_int_equal(fx->srv.recs[1].sent, BLOB_LEN - CUT_AT);
	assert_cached(fx, 0);
	free(part);
	free(cached);
}

static void test_cut_download_retries_inside_job(void **state)
{
	struct fx *fx = fx_of(state);

	open_fetch(fx, 3);
	srv_script(&fx->srv, (struct act){M_CUT, CUT_AT, 0});
	srv_script(&fx->srv, (struct act){M_CUT, 1000, 0});
	assert_int_equal(fetch(fx, (int[]){0, -1}), 0);
	assert_int_equal(fx->srv.nrecs, 3);
	assert_string_equal(fx->srv.recs[1].range, "bytes=70000-");
	assert_string_equal(fx->srv.recs[2].range, "bytes=71000-");
	assert_int_equal(fx->srv.recs[2].sent, BLOB_LEN - CUT_AT - 1000);
	assert_cached(fx, 0);
}

static void test_tampered_blob_is_refused(void **state)
{
	struct fx *fx = fx_of(state);
	char *part = part_file(fx, 0), *cached = cache_file(fx, 0);
	char *want = xasprintf("blob %s: sha256 mismatch (tampered or corrupt)", fx->hex[0]);

	open_fetch(fx, 0);
	srv_script(&fx->srv, (struct act){M_WRONG, 0, 0});
	assert_int_equal(fetch(fx, (int[]){0, -1}), -TN_E_SIGNATURE);
	assert_string_equal(fx->err.message, want);
	/* Not retried (the same server would send the same bytes), nothing kept. */
	assert_int_equal(fx->srv.nrecs, 1);
	assert_absent(cached);
	assert_absent(part);
	free(want);
	free(part);
	free(cached);
}

static void test_tampered_resumed_part_is_refused(void **state)
{
	struct fx *fx = fx_of(state);
	unsigned char bad[CUT_AT];
	char *cached = cache_file(fx, 0);

	/* A part whose bytes are wrong: resumed, then refused as a whole. */
	memcpy(bad, fx->data[0], sizeof bad);
	bad[10] ^= 1;
	open_fetch(fx, 0);
	write_part(fx, 0, bad, sizeof bad);
	assert_int_equal(fetch(fx, (int[]){0, -1}), -TN_E_SIGNATURE);
	assert_string_equal(fx->srv.recs[0].range, "bytes=70000-");
	assert_absent(cached);
	free(cached);
}

static void test_busy_server_is_waited_for(void **state)
{
	struct fx *fx = fx_of(state);
	uint64_t start = tn_loop_now_ms();

	open_fetch(fx, 1); /* 503 is not a failed attempt */
	srv_script(&fx->srv, (struct act){M_BUSY, 0, 1});
	assert_int_equal(fetch(fx, (int[]){0, -1}), 0);
	assert_true(tn_loop_now_ms() - start >= 1000);
	assert_int_equal(fx->srv.nrecs, 2);
	assert_int_equal(fx->srv.recs[0].status, 503);
	assert_int_equal(fx->srv.recs[1].status, 200);
	assert_cached(fx, 0);
}

static void test_ignored_range_starts_over(void **state)
{
	struct fx *fx = fx_of(state);

	open_fetch(fx, 1);
	write_part(fx, 0, fx->data[0], CUT_AT);
	srv_script(&fx->srv, (struct act){M_IGNORE_RANGE, 0, 0});
	assert_int_equal(fetch(fx, (int[]){0, -1}), 0);
	assert_int_equal(fx->srv.nrecs, 2);
	assert_string_equal(fx->srv.recs[0].range, "bytes=70000-");
	assert_int_equal(fx->srv.recs[0].status, 200);
	assert_string_equal(fx->srv.recs[1].range, "");
	assert_cached(fx, 0);
}

static void test_unsatisfiable_range_starts_over(void **state)
{
	struct fx *fx = fx_of(state);
	char *part = part_file(fx, 0);

	/* The server's blob is shorter than our part says: 416, start over. */
	open_fetch(fx, 2);
	write_part(fx, 0, fx->data[0], CUT_AT);
	pthread_mutex_lock(&fx->srv.mu);
	fx->srv.blobs[0].len = CUT_AT;
	pthread_mutex_unlock(&fx->srv.mu);
	assert_true(fetch(fx, (int[]){0, -1}) < 0);
	assert_int_equal(fx->srv.recs[0].status, 416);
	assert_string_equal(fx->srv.recs[1].range, "");
	/* A whole 70000-byte body is a short one for a 200 KiB blob: the
	 * attempts run out and the job fails. */
	assert_non_null(strstr(fx->err.message, "download failed"));
	free(part);
}

static void test_complete_part_needs_no_request(void **state)
{
	struct fx *fx = fx_of(state);
	unsigned char *bad = xmalloc(BLOB_LEN);

	open_fetch(fx, 0);
	/* A crash between the last byte and the rename. */
	write_part(fx, 0, fx->data[0], BLOB_LEN);
	/* A complete part with wrong bytes is downloaded again. */
	memcpy(bad, fx->data[1], BLOB_LEN);
	bad[0] ^= 1;
	write_part(fx, 1, bad, BLOB_LEN);
	assert_int_equal(fetch(fx, (int[]){0, 1, -1}), 0);
	assert_int_equal(fx->srv.nrecs, 1);
	assert_string_equal(fx->srv.recs[0].path + strlen("/agent/v1/blobs/"), fx->hex[1]);
	assert_string_equal(fx->srv.recs[0].range, "");
	assert_cached(fx, 0);
	assert_cached(fx, 1);
	free(bad);
}

static void test_missing_blob_fails_at_once(void **state)
{
	struct fx *fx = fx_of(state);

	open_fetch(fx, 5);
	srv_script(&fx->srv, (struct act){M_404, 0, 0});
	assert_int_equal(fetch(fx, (int[]){0, -1}), -TN_E_NOT_FOUND);
	assert_int_equal(fx->srv.nrecs, 1);
	assert_non_null(strstr(fx->err.message, "HTTP 404"));
}

static void test_shared_blob_is_fetched_once(void **state)
{
	struct fx *fx = fx_of(state);
	struct tn_desired_release *a = release_of(fx, (int[]){0, 1, -1});
	struct tn_desired_release *b = release_of(fx, (int[]){1, 2, -1});
	struct fx other = {0};
	uint64_t start = tn_loop_now_ms();

	open_fetch(fx, 0);
	fx->done = false;
	tn_fetch_release(fx->fetch, a, NULL, on_done, fx);
	tn_fetch_release(fx->fetch, b, NULL, on_done, &other);
	while ((!fx->done || !other.done) && tn_loop_now_ms() - start < 20000)
		tn_loop_run_once(fx->loop, 100);
	assert_int_equal(fx->rc, 0);
	assert_int_equal(other.rc, 0);
	assert_int_equal(fx->srv.nrecs, 3);
	for (int i = 0; i < 3; i++)
		assert_cached(fx, i);
	tn_desired_release_unref(a);
	tn_desired_release_unref(b);
}

static void test_cancel_keeps_part(void **state)
{
	struct fx *fx = fx_of(state);
	struct tn_desired_release *r = release_of(fx, (int[]){0, -1});
	struct tn_fetch_job *job;
	char *part = part_file(fx, 0);
	uint64_t start = tn_loop_now_ms();
	struct stat st = {0};

	open_fetch(fx, 0);
	srv_script(&fx->srv, (struct act){M_SLOW, 0, 0});
	fx->done = false;
	job = tn_fetch_release(fx->fetch, r, NULL, on_done, fx);
	while (tn_loop_now_ms() - start < 5000 && (lstat(part, &st) != 0 || st.st_size == 0))
		tn_loop_run_once(fx->loop, 20);
	assert_true(st.st_size > 0);
	tn_fetch_cancel(job);
	for (int i = 0; i < 5; i++)
		tn_loop_run_once(fx->loop, 20);
	assert_false(fx->done);
	assert_int_equal(lstat(part, &st), 0);
	assert_true(st.st_size > 0 && st.st_size < BLOB_LEN);
	tn_desired_release_unref(r);
	free(part);
}

static void test_prune_keeps_what_releases_use(void **state)
{
	struct fx *fx = fx_of(state);
	struct tn_desired_release *keep = release_of(fx, (int[]){0, -1});
	char *c0 = cache_file(fx, 0), *c1 = cache_file(fx, 1), *p2 = part_file(fx, 2);
	char *stray = xasprintf("%s/cache/sha256/not-a-blob", fx->dir);

	open_fetch(fx, 0);
	assert_int_equal(fetch(fx, (int[]){0, 1, -1}), 0);
	write_part(fx, 2, fx->data[2], 10);
	assert_int_equal(tn_write_file_atomic(stray, "x", 1, 0644, NULL), 0);
	assert_int_equal(tn_fetch_prune(fx->fetch, (const struct tn_desired_release *const[]){keep},
					1, NULL),
			 0);
	assert_int_equal(access(c0, F_OK), 0);
	assert_absent(c1);
	assert_absent(p2);
	assert_absent(stray);
	tn_desired_release_unref(keep);
	free(c0);
	free(c1);
	free(p2);
	free(stray);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_download_verifies_and_caches),
		T(test_progress_is_reported),
		T(test_cut_download_resumes_from_part),
		T(test_cut_download_retries_inside_job),
		T(test_tampered_blob_is_refused),
		T(test_tampered_resumed_part_is_refused),
		T(test_busy_server_is_waited_for),
		T(test_ignored_range_starts_over),
		T(test_unsatisfiable_range_starts_over),
		T(test_complete_part_needs_no_request),
		T(test_missing_blob_fails_at_once),
		T(test_shared_blob_is_fetched_once),
		T(test_cancel_keeps_part),
		T(test_prune_keeps_what_releases_use),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests_name("fetch", tests, NULL, NULL);
}
