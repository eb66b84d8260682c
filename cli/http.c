/* http.c - the transport of `tender` over libcurl (see http.h).  The easy
 * handle is reset before each request, which keeps its connection cache:
 * a run that lists ten pages opens one connection. */
#include "http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "output.h"
#include "xalloc.h"

#define CONNECT_TIMEOUT_S 15L
#define REQUEST_TIMEOUT_S 120L
/* Uploads and streams have no total timeout; a stall ends them instead.
 * An upload's answer can take a while after the last byte (the archive is
 * checked then), so its stall limit is long. */
#define STALL_BYTES_PER_S 1L
#define STALL_S 60L
#define UPLOAD_STALL_S 600L
/* An answer longer than this is not one the API gives. */
#define BODY_MAX ((size_t)64 << 20)

struct cli_http {
	CURL *curl;
	char *base;
	char *auth; /* "Authorization: Bearer ..." or NULL */
	char *cacert;
	const volatile sig_atomic_t *stop;
	char errbuf[CURL_ERROR_SIZE];
};

/* What the callbacks of one request share. */
struct xfer {
	struct cli_http *h;
	struct cli_response *out;
	size_t cap_hit;
	/* streaming */
	bool (*on_data)(const char *p, size_t n, void *ctx);
	void *ctx;
	bool sink_done;
	double last_byte;
	int idle_s;
	bool idle;
	/* uploads */
	struct cli_progress bar;
	bool show_bar;
	FILE *file;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct cli_http *cli_http_new(const char *base_url, const char *token, const char *cacert)
{
	struct cli_http *h = xcalloc(1, sizeof *h);
	static bool global_done;

	if (!global_done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		atexit(curl_global_cleanup);
		global_done = true;
	}
	h->curl = curl_easy_init();
	if (!h->curl) {
		cli_error("internal error: libcurl could not make a handle");
		abort();
	}
	h->base = xstrdup(base_url);
	h->auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
	h->cacert = cacert ? xstrdup(cacert) : NULL;
	return h;
}

void cli_http_free(struct cli_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	free(h->base);
	if (h->auth) {
		explicit_bzero(h->auth, strlen(h->auth));
		free(h->auth);
	}
	free(h->cacert);
	free(h);
}

void cli_http_set_stop(struct cli_http *h, const volatile sig_atomic_t *flag)
{
	h->stop = flag;
}

const char *cli_http_base(const struct cli_http *h)
{
	return h->base;
}

void cli_response_free(struct cli_response *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
}

char *cli_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = xmalloc(3 * n + 1), *p = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

static void keep(struct xfer *x, const char *data, size_t n)
{
	struct cli_response *out = x->out;

	if (out->len + n > BODY_MAX) {
		x->cap_hit = 1;
		return;
	}
	out->body = xrealloc(out->body, out->len + n + 1);
	memcpy(out->body + out->len, data, n);
	out->len += n;
	out->body[out->len] = '\0';
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t n = size * nmemb;
	long status = 0;

	x->last_byte = now_s();
	if (x->h->stop && *x->h->stop)
		return 0;
	if (x->on_data) {
		curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status < 400) {
			if (!x->on_data(data, n, x->ctx)) {
				x->sink_done = true;
				return 0;
			}
			return n;
		}
	}
	keep(x, data, n);
	return x->cap_hit ? 0 : n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t n = fread(buf, 1, size * nmemb, x->file);

	if (n == 0 && ferror(x->file))
		return CURL_READFUNC_ABORT;
	return n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = ctx;

	(void)dltotal;
	(void)dlnow;
	if (x->h->stop && *x->h->stop)
		return 1;
	if (x->idle_s && now_s() - x->last_byte > x->idle_s) {
		x->idle = true;
		return 1;
	}
	if (x->show_bar && ultotal > 0) {
		char a[32], b[32], detail[80];

		snprintf(detail, sizeof detail, "%s / %s", cli_size((double)ulnow, a, sizeof a),
			 cli_size((double)ultotal, b, sizeof b));
		cli_progress_update(&x->bar, (double)ulnow, (double)ultotal, detail);
	}
	return 0;
}

/* The common options of every request. */
static void setup(struct cli_http *h, struct xfer *x, const char *url)
{
	CURL *c = h->curl;

	curl_easy_reset(c);
	h->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tender/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	if (h->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
}

/* Performs the request set up on h->curl; 0 when an answer came. */
static int perform(struct cli_http *h, struct xfer *x, struct curl_slist *hdrs,
		   struct tn_error *err)
{
	struct cli_response *out = x->out;
	CURLcode cc;

	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(h->curl);
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &out->status);
	if (!out->body)
		out->body = xstrdup("");
	if (x->show_bar)
		cli_progress_end(&x->bar);
	if (cc == CURLE_OK || x->sink_done)
		return 0;
	if (h->stop && *h->stop) {
		out->stopped = true;
		return 0;
	}
	if (x->cap_hit)
		return tn_fail(err, TN_E_TOO_LARGE, "the answer of %s is larger than %zu MiB",
			       h->base, BODY_MAX >> 20);
	if (x->idle)
		return tn_fail(err, TN_E_UNAVAILABLE, "lost %s: nothing received for %d s",
			       h->base, x->idle_s);
	/* A server that refuses an upload early may close the connection
	 * while the body is still being sent: its answer is what counts. */
	if (out->status >= 400 && out->len)
		return 0;
	if (out->status)
		return tn_fail(err, TN_E_UNAVAILABLE, "lost %s: %s", h->base,
			       h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
	return tn_fail(err, TN_E_UNAVAILABLE, "cannot reach %s: %s", h->base,
		       h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
}

static struct curl_slist *base_headers(struct cli_http *h, const char *content_type)
{
	struct curl_slist *hdrs = NULL;

	if (h->auth)
		hdrs = curl_slist_append(hdrs, h->auth);
	if (content_type) {
		char *line = xasprintf("Content-Type: %s", content_type);

		hdrs = curl_slist_append(hdrs, line);
		free(line);
	}
	return hdrs;
}

int cli_http_request(struct cli_http *h, const char *method, const char *path,
		     const struct cli_body *body, struct cli_response *out, struct tn_error *err)
{
	struct xfer x = {.h = h, .out = out};
	char *url = xasprintf("%s%s", h->base, path);
	struct curl_slist *hdrs;
	CURL *c = h->curl;
	int rc;

	memset(out, 0, sizeof *out);
	setup(h, &x, url);
	hdrs = base_headers(h, body ? body->content_type : NULL);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body && body->file) {
		x.file = body->file;
		x.show_bar = body->label != NULL;
		if (x.show_bar)
			cli_progress_begin(&x.bar, body->label);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &x);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->file_size);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, STALL_BYTES_PER_S);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, UPLOAD_STALL_S);
	} else {
		if (body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
		} else if (strcmp(method, "POST") == 0) {
			/* a POST without a body still says so */
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		}
		curl_easy_setopt(c, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = perform(h, &x, hdrs, err);
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}

int cli_http_stream(struct cli_http *h, const char *path, const char *const *headers,
		    bool (*on_data)(const char *p, size_t n, void *ctx), void *ctx, int idle_s,
		    struct cli_response *out, struct tn_error *err)
{
	struct xfer x = {.h = h, .out = out, .on_data = on_data, .ctx = ctx, .idle_s = idle_s};
	char *url = xasprintf("%s%s", h->base, path);
	struct curl_slist *hdrs;
	int rc;

	memset(out, 0, sizeof *out);
	setup(h, &x, url);
	x.last_byte = now_s();
	hdrs = base_headers(h, NULL);
	hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
	for (size_t i = 0; headers && headers[i]; i++)
		hdrs = curl_slist_append(hdrs, headers[i]);
	rc = perform(h, &x, hdrs, err);
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}
