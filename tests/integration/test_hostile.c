/* test_hostile.c - hostile clients against a real tender-server over HTTP,
 * what test_api_roles, test_api_input and test_agent_api do not already
 * play:
 *   1. bad credentials (API, target and enrollment tokens) from one source
 *      address: 401 up to the limit, then 429 + Retry-After for that address
 *      only, one log line and one audit entry per trip, recovery after the
 *      window (several 127.x source addresses, bound with CURLOPT_INTERFACE);
 *   2. hostile path segments in every parameter of every route of the route
 *      table (and /ui/, /agent/v1/blobs/): a 4xx naming the problem;
 *   3. over limits: one huge header, very many headers, a huge request
 *      line, bodies over each body-taking route's limit;
 *   4. slow clients: 300 connections trickling a request and stalling are
 *      cut at --conn-timeout while ordinary requests and long-polls are
 *      answered; long-polls and a stream that are never read;
 *   5. enrollment tokens: expired, revoked, of a deleted cluster, of another
 *      server
 *      (test_agent_api has the unknown and the used-up ones).
 * Each test prints, as TAP comments, what it tried and how many cases
 * passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "digest.h"
#include "harness.h"
#include "router.h"
#include "xalloc.h"

#define AUTH_LIMIT 5
#define AUTH_WINDOW_S 5
#define CONN_TIMEOUT_S 3
#define DEADLINE_S 60
#define SLOW_CLIENTS 300

static struct th_server server;
static char *target_token; /* an enrolled target's, for the agent routes */
static char *target_etag;  /* its desired document's ETag (quoted) */

/* ------------------------------------------------------------ helpers */

struct resp {
	long status;
	char *body;
	size_t len;
	char retry_after[32];
	char etag[80];
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct resp *r = ctx;

	r->body = xrealloc(r->body, r->len + size * n + 1);
	memcpy(r->body + r->len, data, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	size_t v;

	if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return;
	line += n + 1;
	len -= n + 1;
	while (len && *line == ' ') {
		line++;
		len--;
	}
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	v = len < size - 1 ? len : size - 1;
	memcpy(out, line, v);
	out[v] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct resp *r = ctx;

	header_value(data, size * n, "Retry-After", r->retry_after, sizeof r->retry_after);
	header_value(data, size * n, "ETag", r->etag, sizeof r->etag);
	return size * n;
}

/* One request from source address src (NULL: the default, 127.0.0.1),
 * the path sent exactly as written (no dot-segment squashing).  body NULL:
 * none; extra is one more header line or NULL. */
static void hreq(const char *src, const char *method, const char *path, const char *token,
		 const char *body, size_t body_len, const char *extra, struct resp *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *url = xasprintf("%s%s", server.url, path);
	char *auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
	CURLcode cc;

	memset(out, 0, sizeof *out);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (src)
		curl_easy_setopt(c, CURLOPT_INTERFACE, src);
	if (auth)
		hdrs = curl_slist_append(hdrs, auth);
	if (extra)
		hdrs = curl_slist_append(hdrs, extra);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if (cc != CURLE_OK && out->status == 0)
		fail_msg("%s %s from %s: %s", method, path, src ? src : "default",
			 curl_easy_strerror(cc));
	if (!out->body)
		out->body = xstrdup("");
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* The error message of an {"error": {"message"}} body (caller frees; ""
 * when there is none). */
static char *message_of(const struct resp *r)
{
	json_t *root = json_loadb(r->body, r->len, 0, NULL);
	const char *m =
	    json_string_value(json_object_get(json_object_get(root, "error"), "message"));
	char *out = xstrdup(m ? m : "");

	json_decref(root);
	return out;
}

static void expect(const struct resp *r, long status, const char *needle, const char *what)
{
	char *m = message_of(r);

	if (r->status != status || (needle && !strstr(m, needle)))
		fail_msg("%s: want %ld with \"%s\", got %ld %s", what, status, needle ? needle : "",
			 r->status, r->body);
	free(m);
}

/* Lines of the server's log holding both a and b. */
static int log_lines_with(const char *a, const char *b)
{
	FILE *f = fopen(server.log_path, "r");
	char line[4096];
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof line, f))
		if (strstr(line, a) && strstr(line, b))
			n++;
	fclose(f);
	return n;
}

/* An enrollment token of s for cluster (caller frees). */
static char *enrollment_token(struct th_server *s, const char *cluster, int uses, int ttl_s)
{
	char *body =
	    xasprintf("{\"cluster\": \"%s\", \"uses\": %d, \"ttl_s\": %d}", cluster, uses, ttl_s);
	struct th_response r;
	char *tok;

	th_json(s, "POST", "/api/v1/enrollment-tokens", s->admin_token, body, &r);
	if (r.status != 201)
		fail_msg("POST /api/v1/enrollment-tokens: %ld %s", r.status, r.body);
	tok = xstrdup(json_string_value(json_object_get(r.json, "token")));
	th_response_free(&r);
	free(body);
	return tok;
}

static void make_cluster(struct th_server *s, const char *name)
{
	char *body = xasprintf("{\"name\": \"%s\"}", name);
	struct th_response r;

	th_json(s, "POST", "/api/v1/clusters", s->admin_token, body, &r);
	if (r.status != 201)
		fail_msg("POST /api/v1/clusters %s: %ld %s", name, r.status, r.body);
	th_response_free(&r);
	free(body);
}

static void enroll_from(const char *src, const char *token, struct resp *out)
{
	char *body = xasprintf("{\"enrollment_token\": \"%s\", \"inventory\": {\"hostname\": "
			       "\"hostile\"}, \"address\": \"10.9.9.9\"}",
			       token);

	hreq(src, "POST", "/agent/v1/enroll", NULL, body, strlen(body), NULL, out);
	free(body);
}

/* ------------------------------------------------------------ raw sockets */

static int connect_raw(void)
{
	const char *port = strrchr(server.url, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	sa.sin_port = htons((uint16_t)strtoul(port + 1, NULL, 10));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};

		if (errno != EINPROGRESS || poll(&pfd, 1, 30000) != 1)
			fail_msg("connect: %s", strerror(errno));
	}
	return fd;
}

/* Whether the server closed fd (EOF or reset), reading what it sent. */
static bool closed_by_server(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
		if (n < 0)
			return false;
	}
}

/* ------------------------------------------------------------ fixtures */

static int group_setup(void **state)
{
	static const char *const args[] = {"--auth-fail-limit=5", "--auth-fail-window=5",
					   "--conn-timeout=3", "--max-upload=1M", NULL};
	struct resp r;
	char *tok;

	(void)state;
	/* The flags above are the test's AUTH_LIMIT, AUTH_WINDOW_S and
	 * CONN_TIMEOUT_S. */
	th_server_start(&server, args);
	make_cluster(&server, "hostile");
	tok = enrollment_token(&server, "hostile", 1, 3600);
	enroll_from(NULL, tok, &r);
	expect(&r, 200, NULL, "enroll the test's target");
	{
		json_t *j = json_loads(r.body, 0, NULL);

		target_token = xstrdup(json_string_value(json_object_get(j, "target_token")));
		json_decref(j);
	}
	resp_free(&r);
	hreq(NULL, "GET", "/agent/v1/desired", target_token, NULL, 0, NULL, &r);
	expect(&r, 200, NULL, "the target's document");
	target_etag = xstrdup(r.etag);
	resp_free(&r);
	free(tok);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(target_token);
	free(target_etag);
	assert_true(th_server_exited_cleanly(&server, th_server_stop(&server)));
	th_server_destroy(&server);
	return 0;
}

/* ------------------------------------------------------------ 1. rate limit */

struct bad_kind {
	const char *what;
	const char *src;    /* its own source address */
	const char *method; /* a request with a bad secret */
	const char *path;
	const char *token;
	const char *body;
};

static void test_bad_credentials_are_rate_limited(void **state)
{
	static const struct bad_kind kinds[] = {
	    {"API token", "127.0.0.2", "GET", "/api/v1/clusters",
	     "tn_not-a-token-of-this-server-AAAAAAAAAAAAAAAAAAAAAAAA", NULL},
	    {"target token", "127.0.0.3", "GET", "/agent/v1/desired",
	     "tnt_not-a-token-of-this-server-AAAAAAAAAAAAAAAAAAAAAAA", NULL},
	    {"enrollment token", "127.0.0.4", "POST", "/agent/v1/enroll", NULL,
	     "{\"enrollment_token\": \"tne_not-a-token-of-this-server\"}"},
	};
	const char *other = "127.0.0.9";
	long long first_event = th_last_event_id(&server);
	json_t *events;
	size_t i, refused_audits = 0;
	struct resp r;
	double t0;
	int cases = 0;

	(void)state;
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		const struct bad_kind *k = &kinds[i];
		const size_t blen = k->body ? strlen(k->body) : 0;
		char *m;
		long retry;

		for (int n = 0; n < AUTH_LIMIT; n++) {
			hreq(k->src, k->method, k->path, k->token, k->body, blen, NULL, &r);
			expect(&r, 401, NULL, k->what);
			resp_free(&r);
		}
		/* past the limit: 429, whatever the secret, saying why and when */
		hreq(k->src, k->method, k->path, k->token, k->body, blen, NULL, &r);
		expect(&r, 429, "too many bad credentials from", k->what);
		retry = strtol(r.retry_after, NULL, 10);
		assert_true(retry >= 1 && retry <= AUTH_WINDOW_S);
		m = message_of(&r);
		printf("# %s x%d from %s, then: %ld Retry-After %ld \"%s\"\n", k->what, AUTH_LIMIT,
		       k->src, r.status, retry, m);
		free(m);
		resp_free(&r);
		hreq(k->src, "GET", "/api/v1/clusters", server.admin_token, NULL, 0, NULL, &r);
		expect(&r, 429, "too many bad credentials", "a good token from a refused address");
		resp_free(&r);
		/* what needs no secret still answers there */
		hreq(k->src, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
		expect(&r, 200, NULL, "/healthz from a refused address");
		resp_free(&r);
		/* another address: its good token works, its bad one is a 401 */
		hreq(other, "GET", "/api/v1/clusters", server.admin_token, NULL, 0, NULL, &r);
		expect(&r, 200, NULL, "a good token from another address");
		resp_free(&r);
		hreq(other, k->method, k->path, k->token, k->body, blen, NULL, &r);
		expect(&r, 401, NULL, "one bad secret from another address");
		resp_free(&r);
		cases++;
	}
	/* a good enrollment from another address goes through */
	{
		char *tok = enrollment_token(&server, "hostile", 1, 3600);

		enroll_from(other, tok, &r);
		expect(&r, 200, NULL, "a good enrollment from another address");
		resp_free(&r);
		free(tok);
	}
	/* one log line and one audit entry per address, not per request */
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		char needle[64];

		snprintf(needle, sizeof needle, "address=%s ", kinds[i].src);
		assert_int_equal(log_lines_with("event=rate_limited", needle), 1);
	}
	events = th_events_after(&server, first_event);
	for (i = 0; i < json_array_size(events); i++) {
		json_t *e = json_array_get(events, i);
		const char *action = json_string_value(json_object_get(e, "action"));

		if (action && strcmp(action, "auth.rate_limit") == 0) {
			assert_string_equal(json_string_value(json_object_get(e, "outcome")),
					    "refused");
			refused_audits++;
		}
	}
	json_decref(events);
	assert_int_equal(refused_audits, 3);
	/* the refused address recovers after the window */
	t0 = th_now_s();
	for (;;) {
		long status;

		hreq(kinds[0].src, "GET", "/api/v1/clusters", server.admin_token, NULL, 0, NULL,
		     &r);
		status = r.status;
		resp_free(&r);
		if (status == 200)
			break;
		assert_int_equal(status, 429);
		if (th_now_s() - t0 > DEADLINE_S)
			fail_msg("%s still refused after %d s", kinds[0].src, DEADLINE_S);
		th_pause_ms(200);
	}
	printf("# rate limit: %d kinds of secret refused with 429 past %d failures; other "
	       "addresses served; %s served again %.1f s later (window %d s); 3 log lines, "
	       "3 audit entries\n",
	       cases, AUTH_LIMIT, kinds[0].src, th_now_s() - t0, AUTH_WINDOW_S);
}

/* ------------------------------------------------------------ 2. paths */

static const char *const hostile_segments[] = {
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "%2e",
    "a%2fb",
    "%2f",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "../../../../etc/passwd",
    "%00",
    "x%00y",
    "%01",
    "%7f",
    "%ff%fe",
    "%c0%ae%c0%ae",
    "%ed%a0%80",
    "%f8%88%80%80%80",
    "%",
    "%zz",
    NULL /* the overlong one, made below */,
};
#define NHOSTILE (sizeof hostile_segments / sizeof hostile_segments[0])

/* The pattern with its k-th {} replaced by seg and the others by a
 * harmless name.  Caller frees. */
static char *path_with(const char *pattern, size_t k, const char *seg)
{
	size_t cap = strlen(pattern) + strlen(seg) + 64, used = 0, idx = 0;
	char *out = xmalloc(cap);

	for (const char *p = pattern; *p;) {
		if (p[0] == '{' && p[1] == '}') {
			used +=
			    (size_t)snprintf(out + used, cap - used, "%s", idx == k ? seg : "x1");
			idx++;
			p += 2;
		} else {
			out[used++] = *p++;
		}
	}
	out[used] = '\0';
	return out;
}

static size_t nparams(const char *pattern)
{
	size_t n = 0;

	for (const char *p = pattern; (p = strstr(p, "{}")); p += 2)
		n++;
	return n;
}

static void test_hostile_path_segments(void **state)
{
	char overlong[TN_SEGMENT_MAX + 100];
	size_t routes = 0, cases = 0, by_status[600] = {0};

	(void)state;
	memset(overlong, 'a', sizeof overlong - 1);
	overlong[sizeof overlong - 1] = '\0';
	for (size_t i = 0; i < tn_routes_count; i++) {
		const struct tn_route *rt = &tn_routes[i];
		size_t np = nparams(rt->pattern);
		const char *token = rt->role == TN_ROLE_PUBLIC	? NULL
				    : rt->role == TN_ROLE_AGENT ? target_token
								: server.admin_token;
		bool write = strcmp(rt->method, "POST") == 0 || strcmp(rt->method, "PATCH") == 0;

		if (!np)
			continue;
		routes++;
		for (size_t k = 0; k < np; k++)
			for (size_t h = 0; h < NHOSTILE; h++) {
				const char *seg =
				    hostile_segments[h] ? hostile_segments[h] : overlong;
				char *path = path_with(rt->pattern, k, seg);
				struct resp r;
				char *m;

				hreq(NULL, rt->method, path, token, write ? "{}" : NULL,
				     write ? 2 : 0, NULL, &r);
				m = message_of(&r);
				if (r.status < 400 || r.status >= 500 || !*m ||
				    strstr(r.body, "root:") || !strstr(m, "path"))
					fail_msg("%s %s: want a 4xx naming the path, got %ld %s",
						 rt->method, path, r.status, r.body);
				by_status[r.status]++;
				cases++;
				free(m);
				resp_free(&r);
				free(path);
			}
	}
	printf("# paths: %zu routes with parameters (/ui/{} and /agent/v1/blobs/{} "
	       "included), every parameter x %zu hostile segments = %zu requests: "
	       "%zu x 400, %zu x 404, %zu other 4xx, 0 x 5xx\n",
	       routes, NHOSTILE, cases, by_status[400], by_status[404],
	       cases - by_status[400] - by_status[404]);
}

/* ------------------------------------------------------------ 3. limits */

static long raw_status(const char *what, const char *req, size_t len, char **out)
{
	long status = th_raw_http(&server, req, len, 30, out);

	printf("# %s (%zu bytes): %ld\n", what, len, status);
	return status;
}

static void test_over_limits(void **state)
{
	const size_t big = 64 * 1024;
	char *req, *out = NULL, *p;
	size_t bodies = 0, refused = 0, files_before;
	char *tmp = xasprintf("%s/var/tmp", server.data_dir);
	char *blobs = xasprintf("%s/var/blobs", server.data_dir);
	struct resp r;

	(void)state;
	/* one huge header */
	req = xmalloc(big + 256);
	p = req + snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(p, 'a', big);
	p += big;
	p += snprintf(p, 8, "\r\n\r\n");
	assert_int_equal(raw_status("one 64 KiB header", req, (size_t)(p - req), &out), 431);
	assert_non_null(strstr(out, "too big"));
	free(out);
	free(req);
	/* very many headers */
	req = xmalloc(4000 * 16 + 256);
	p = req + snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 4000; i++)
		p += snprintf(p, 16, "X-H%d: 1\r\n", i);
	p += snprintf(p, 8, "\r\n");
	assert_int_equal(raw_status("4,000 headers", req, (size_t)(p - req), &out), 431);
	free(out);
	free(req);
	/* a request line over the limit */
	req = xmalloc(big + 256);
	p = req + snprintf(req, 256, "GET /");
	memset(p, 'a', big);
	p += big;
	p += snprintf(p, 64, " HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(raw_status("a 64 KiB request line", req, (size_t)(p - req), &out), 414);
	free(out);
	free(req);
	hreq(NULL, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
	expect(&r, 200, NULL, "/healthz after the oversized requests");
	resp_free(&r);

	/* every body-taking route: a body over its limit is a 413 naming it,
	 * said before the body is read (Content-Length) */
	files_before = th_count_files(blobs);
	for (size_t i = 0; i < tn_routes_count; i++) {
		const struct tn_route *rt = &tn_routes[i];
		const char *token = rt->role == TN_ROLE_PUBLIC	? NULL
				    : rt->role == TN_ROLE_AGENT ? target_token
								: server.admin_token;
		char *path, *head;
		long status;

		if (strcmp(rt->method, "POST") != 0 && strcmp(rt->method, "PATCH") != 0)
			continue;
		path = path_with(rt->pattern, 0, "x1");
		/* the head alone: the answer must come before any body byte
		 * (a client sending a body at once may see the connection
		 * closed under it, by design) */
		head = xasprintf("%s %s HTTP/1.1\r\nHost: x\r\n%s%s%s"
				 "Content-Type: application/json\r\nContent-Length: %u\r\n\r\n",
				 rt->method, path, token ? "Authorization: Bearer " : "",
				 token ? token : "", token ? "\r\n" : "", 2u << 20);
		status = th_raw_http(&server, head, strlen(head), 30, &out);
		bodies++;
		if (status != 413 || !strstr(out, "over the limit"))
			fail_msg("%s %s with Content-Length 2 MiB: want 413 naming the limit, got "
				 "%ld %s",
				 rt->method, path, status, out);
		refused++;
		free(out);
		free(head);
		free(path);
	}
	/* the same without Content-Length (chunked): refused once over */
	{
		const char *chunked_head =
		    "POST /api/v1/bundles HTTP/1.1\r\nHost: x\r\n"
		    "Transfer-Encoding: chunked\r\n"
		    "Content-Type: application/zip\r\nAuthorization: Bearer ";
		size_t hl = strlen(chunked_head), tl = strlen(server.admin_token);
		size_t chunk = 64 * 1024, n = 20; /* 1.25 MiB: over --max-upload 1M */
		char *raw = xmalloc(hl + tl + 8 + n * (chunk + 16) + 16);
		size_t used = 0;
		long st;

		memcpy(raw, chunked_head, hl);
		used = hl;
		memcpy(raw + used, server.admin_token, tl);
		used += tl;
		used += (size_t)snprintf(raw + used, 8, "\r\n\r\n");
		for (size_t c = 0; c < n; c++) {
			used += (size_t)snprintf(raw + used, 16, "%zx\r\n", chunk);
			memset(raw + used, 'z', chunk);
			used += chunk;
			used += (size_t)snprintf(raw + used, 4, "\r\n");
		}
		used += (size_t)snprintf(raw + used, 8, "0\r\n\r\n");
		st = raw_status("a chunked 1.25 MiB upload, --max-upload 1M", raw, used, &out);
		assert_int_equal(st, 413);
		assert_non_null(strstr(out, "over the limit"));
		free(out);
		free(raw);
	}
	/* nothing left behind by the refused uploads */
	assert_int_equal(th_count_files(tmp), 0);
	assert_int_equal(th_count_files(blobs), files_before);
	printf("# bodies: %zu POST/PATCH routes announcing a 2 MiB body: %zu x 413 naming the "
	       "limit before it was sent; "
	       "chunked upload over --max-upload: 413; no file left in DATA/tmp or blobs\n",
	       bodies, refused);
	free(tmp);
	free(blobs);
}

/* ------------------------------------------------------------ 4. slow clients */

/* A long-poll of the test's target that must come back 304 when its wait
 * runs out: the server parks it and answers it meanwhile. */
static void long_poll(const char *what)
{
	char inm[128];
	struct resp r;

	snprintf(inm, sizeof inm, "If-None-Match: %s", target_etag);
	hreq(NULL, "GET", "/agent/v1/desired?wait=1", target_token, NULL, 0, inm, &r);
	if (r.status != 304)
		fail_msg("a long-poll %s: want 304, got %ld %s", what, r.status, r.body);
	resp_free(&r);
}

static void test_slow_clients(void **state)
{
	/* Half stall after a few bytes; half trickle a byte at a time, more
	 * often than the connection timeout, a header that never ends. */
	static const char head[] = "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
	const size_t first = 12; /* bytes sent one at a time by both halves */
	int fds[SLOW_CLIENTS];
	double opened[SLOW_CLIENTS], closed_at[SLOW_CLIENTS], last_byte = 0, t0;
	size_t nclosed = 0, served = 0, polls = 0, trickled = first;
	struct resp r;

	(void)state;
	for (int i = 0; i < SLOW_CLIENTS; i++) {
		fds[i] = connect_raw();
		opened[i] = th_now_s();
		closed_at[i] = 0;
	}
	for (size_t b = 0; b < first; b++) {
		for (int i = 0; i < SLOW_CLIENTS; i++)
			if (send(fds[i], head + b, 1, MSG_NOSIGNAL) != 1 && errno != EAGAIN)
				fail_msg("slow client %d: send: %s", i, strerror(errno));
		last_byte = th_now_s();
		th_pause_ms(100);
	}
	/* while they hold their connections, others are served; until the
	 * server has cut every one of them */
	t0 = th_now_s();
	while (nclosed < SLOW_CLIENTS) {
		/* the trickling half: one more byte each round (a round takes
		 * about the long-poll's 1 s wait, under the 3 s timeout) */
		for (int i = SLOW_CLIENTS / 2; i < SLOW_CLIENTS; i++)
			if (!closed_at[i])
				(void)send(fds[i],
					   trickled < sizeof head - 1 ? head + trickled : "a", 1,
					   MSG_NOSIGNAL | MSG_DONTWAIT);
		trickled++;
		hreq(NULL, "GET", "/api/v1/clusters", server.admin_token, NULL, 0, NULL, &r);
		expect(&r, 200, NULL, "an ordinary request among slow clients");
		resp_free(&r);
		served++;
		long_poll("among slow clients");
		polls++;
		for (int i = 0; i < SLOW_CLIENTS; i++)
			if (!closed_at[i] && closed_by_server(fds[i])) {
				closed_at[i] = th_now_s();
				nclosed++;
			}
		if (th_now_s() - t0 > DEADLINE_S)
			fail_msg("%zu of %d slow clients still connected after %d s", nclosed,
				 SLOW_CLIENTS, DEADLINE_S);
	}
	{
		double lo = 1e9, hi = 0, tlo = 1e9, thi = 0;

		for (int i = 0; i < SLOW_CLIENTS; i++) {
			double d = closed_at[i] - (i < SLOW_CLIENTS / 2 ? last_byte : opened[i]);

			if (i < SLOW_CLIENTS / 2) {
				lo = d < lo ? d : lo;
				hi = d > hi ? d : hi;
			} else {
				tlo = d < tlo ? d : tlo;
				thi = d > thi ? d : thi;
			}
			close(fds[i]);
		}
		printf("# slow clients (--conn-timeout %d): %d sent %zu bytes one at a time and "
		       "stalled: cut %.1f to %.1f s after their last byte; %d trickled a byte "
		       "about every second (never idle %d s): cut %.1f to %.1f s after they "
		       "connected; meanwhile %zu ordinary requests answered 200 and %zu "
		       "long-polls 304\n",
		       CONN_TIMEOUT_S, SLOW_CLIENTS / 2, first, lo, hi, SLOW_CLIENTS / 2,
		       CONN_TIMEOUT_S, tlo, thi, served, polls);
	}

	/* long-polls (and an event stream) whose clients never read */
	{
		enum { NEVER = 20 };
		int lp[NEVER + 1];
		char *req = xasprintf("GET /agent/v1/desired?wait=2 HTTP/1.1\r\nHost: x\r\n"
				      "Authorization: Bearer %s\r\nIf-None-Match: %s\r\n\r\n",
				      target_token, target_etag);
		char *stream = xasprintf("GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\n"
					 "Authorization: Bearer %s\r\n\r\n",
					 server.admin_token);

		for (int i = 0; i < NEVER + 1; i++) {
			const char *what = i < NEVER ? req : stream;
			struct pollfd pfd;

			lp[i] = connect_raw();
			pfd = (struct pollfd){.fd = lp[i], .events = POLLOUT};
			assert_int_equal(poll(&pfd, 1, 10000), 1);
			assert_int_equal(send(lp[i], what, strlen(what), MSG_NOSIGNAL),
					 (ssize_t)strlen(what));
		}
		/* their waits run out and are answered into sockets nobody
		 * reads; the server goes on serving */
		for (int k = 0; k < 3; k++) {
			long_poll("beside long-polls nobody reads");
			hreq(NULL, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
			expect(&r, 200, NULL, "/healthz beside long-polls nobody reads");
			resp_free(&r);
		}
		for (int i = 0; i < NEVER + 1; i++)
			close(lp[i]);
		long_poll("after the unread long-polls closed");
		printf("# %d long-polls and 1 event stream never read: later long-polls and "
		       "requests answered; their clients closed without a trace (clean exit at "
		       "the end)\n",
		       NEVER);
		free(req);
		free(stream);
	}
}

/* ------------------------------------------------------------ 5. enrollment */

/* Sets the expiry of the enrollment token secret to a time long past. */
static void expire_in_store(const char *secret)
{
	char *db_path = xasprintf("%s/var/tender.db", server.data_dir);
	char hash[TN_SHA256_HEX_LEN + 1];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	tn_sha256_hex(secret, strlen(secret), hash);
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "UPDATE enrollment_tokens SET expires = "
					    "'2001-01-01T00:00:00Z' WHERE token_hash = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(db_path);
}

static void test_enrollment_tokens_refused(void **state)
{
	/* Their 401s count against this address, not the other tests'. */
	const char *src = "127.0.0.20";
	char *expired = NULL, *doomed = NULL;
	struct resp r;
	int cases = 0;

	(void)state;
	make_cluster(&server, "doomed");
	expired = enrollment_token(&server, "hostile", 5, 60);
	doomed = enrollment_token(&server, "doomed", 5, 3600);

	/* expired: the least ttl_s is 60; rather than wait a minute, the
	 * token's expiry is moved into the past in the live database (WAL:
	 * the server reads it at the next enrollment) */
	expire_in_store(expired);
	enroll_from(src, expired, &r);
	expect(&r, 401, "enrollment token expired at", "an expired enrollment token");
	resp_free(&r);
	cases++;

	/* revoked by an operator, giving the secret back: refused, saying so;
	 * revoking again is no error, revoking what is no token is a 404 */
	{
		char *revoked = enrollment_token(&server, "hostile", 5, 3600);
		char *body = xasprintf("{\"token\": \"%s\"}", revoked);
		struct th_response d;

		for (int k = 0; k < 2; k++) {
			th_json(&server, "POST", "/api/v1/enrollment-tokens/revoke",
				server.admin_token, body, &d);
			assert_int_equal(d.status, 204);
			th_response_free(&d);
		}
		th_json(&server, "POST", "/api/v1/enrollment-tokens/revoke", server.admin_token,
			"{\"token\": \"tne_no-such-token\"}", &d);
		assert_int_equal(d.status, 404);
		assert_non_null(strstr(th_error_message(&d), "unknown enrollment token"));
		th_response_free(&d);
		enroll_from(src, revoked, &r);
		expect(&r, 401, "enrollment token revoked", "a revoked enrollment token");
		resp_free(&r);
		cases++;
		free(body);
		free(revoked);
	}

	/* revoked with its cluster: deleting the cluster deletes its tokens */
	{
		struct th_response d;

		th_json(&server, "DELETE", "/api/v1/clusters/doomed", server.admin_token, NULL, &d);
		assert_int_equal(d.status, 204);
		th_response_free(&d);
	}
	enroll_from(src, doomed, &r);
	expect(&r, 401, "unknown enrollment token", "a token of a deleted cluster");
	resp_free(&r);
	cases++;

	/* another server's (another installation's cluster): unknown here */
	{
		struct th_server other;
		char *foreign;

		th_server_start(&other, NULL);
		make_cluster(&other, "hostile");
		foreign = enrollment_token(&other, "hostile", 5, 3600);
		assert_true(th_server_exited_cleanly(&other, th_server_stop(&other)));
		th_server_destroy(&other);
		enroll_from(src, foreign, &r);
		expect(&r, 401, "unknown enrollment token", "another server's enrollment token");
		resp_free(&r);
		free(foreign);
		cases++;
	}
	/* none of them made a target */
	{
		struct th_response l;

		th_json(&server, "GET", "/api/v1/targets?cluster=hostile", server.admin_token, NULL,
			&l);
		assert_int_equal(l.status, 200);
		/* the group's own target and the one enrolled from another
		 * address in the rate-limit test */
		assert_int_equal(json_array_size(json_object_get(l.json, "items")), 2);
		printf("# enrollment: expired, revoked, deleted cluster's and another server's "
		       "token refused (401, saying which): %d of 4 cases; targets in the cluster: "
		       "%zu\n",
		       cases, json_array_size(json_object_get(l.json, "items")));
		th_response_free(&l);
	}
	free(expired);
	free(doomed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_credentials_are_rate_limited),
	    cmocka_unit_test(test_hostile_path_segments),
	    cmocka_unit_test(test_over_limits),
	    cmocka_unit_test(test_slow_clients),
	    cmocka_unit_test(test_enrollment_tokens_refused),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
