/* router.c - runs one HTTP exchange against the route table: match the
 * path, authenticate the caller, refuse oversized bodies before reading
 * them, buffer or stream the body, call the handler, and write the audit
 * entry of every write.  Used by http.c (libmicrohttpd) and in-process by
 * tests and fuzzers through tn_router_call(). */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "events.h"
#include "log.h"
#include "ratelimit.h"
#include "server.h"
#include "xalloc.h"

static const char *const role_names[] = {
	[TN_ROLE_PUBLIC] = "public",     [TN_ROLE_VIEWER] = "viewer",
	[TN_ROLE_DEVELOPER] = "developer", [TN_ROLE_OPERATOR] = "operator",
	[TN_ROLE_ADMIN] = "admin",       [TN_ROLE_AGENT] = "agent",
};

const char *tn_role_name(enum tn_role role)
{
	return role <= TN_ROLE_AGENT ? role_names[role] : "?";
}

int tn_role_parse(const char *name)
{
	for (int r = TN_ROLE_VIEWER; r <= TN_ROLE_ADMIN; r++)
		if (strcmp(name, role_names[r]) == 0)
			return r;
	return -1;
}

/* ------------------------------------------------------------ responses */

void tn_response_init(struct tn_response *resp)
{
	memset(resp, 0, sizeof *resp);
	resp->fd = -1;
	resp->status = 500;
}

void tn_response_clear(struct tn_response *resp)
{
	json_decref(resp->json);
	free(resp->body);
	if (resp->fd >= 0)
		close(resp->fd);
	if (resp->stream && resp->stream->free)
		resp->stream->free(resp->stream_ctx);
	if (resp->defer && resp->defer->free)
		resp->defer->free(resp->defer_ctx);
	free(resp->defer_key);
	if (resp->on_release)
		resp->on_release(resp->release_ctx);
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	free(resp->audit_id);
	json_decref(resp->audit_detail);
	tn_response_init(resp);
}

void tn_response_json(struct tn_response *resp, int status, json_t *body)
{
	json_decref(resp->json);
	resp->status = status;
	resp->json = body;
}

/* The length of the well-formed UTF-8 sequence at s (1 for ASCII), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF (what JSON
 * strings, and so our messages, hold). */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	uint32_t cp;
	size_t more;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		more = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		more = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		more = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i <= more; i++) {
		if ((s[i] & 0xc0) != 0x80) /* the NUL at the end stops it too */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return more + 1;
}

/* Whether the NUL-terminated s is well-formed UTF-8. */
static bool utf8_valid(const unsigned char *s)
{
	for (size_t n; *s; s += n)
		if (!(n = utf8_seq(s)))
			return false;
	return true;
}

/* msg as a JSON string.  Messages quote what the client sent (a header, a
 * name), which need not be UTF-8: jansson refuses such text, and the error
 * would go out without its body.  Each byte that does not start a
 * well-formed sequence becomes '?'. */
static json_t *message_string(const char *msg)
{
	const unsigned char *in = (const unsigned char *)msg;
	char clean[TN_ERROR_MESSAGE_MAX];
	size_t out = 0, n;

	if (utf8_valid(in))
		return json_string(msg);
	while (*in && out < sizeof clean - 1) {
		n = utf8_seq(in);
		if (n && out + n < sizeof clean) {
			memcpy(clean + out, in, n);
			out += n;
			in += n;
		} else {
			clean[out++] = '?';
			in++;
		}
	}
	clean[out] = '\0';
	return json_string(clean);
}

void tn_response_error(struct tn_response *resp, const struct tn_error *err)
{
	enum tn_errcode code = err->code ? err->code : TN_E_INTERNAL;

	tn_response_json(resp, tn_errcode_http_status(code),
			 json_pack("{s:{s:s, s:o}}", "error", "code", tn_errcode_name(code),
				   "message", message_string(err->message[0] ? err->message
									: tn_errcode_name(code))));
}

void tn_response_add_header(struct tn_response *resp, const char *name, const char *value)
{
	if (resp->nheaders == TN_RESPONSE_MAX_HEADERS)
		abort(); /* a programming error: the cap is far above any route's needs */
	resp->headers[resp->nheaders].name = xstrdup(name);
	resp->headers[resp->nheaders].value = xstrdup(value);
	resp->nheaders++;
}

void tn_response_audit(struct tn_response *resp, const char *type, const char *id)
{
	resp->audit_type = type;
	free(resp->audit_id);
	resp->audit_id = id ? xstrdup(id) : NULL;
}

/* ------------------------------------------------------------- requests */

const char *tn_request_query(const struct tn_request *req, const char *key)
{
	for (size_t i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].key, key) == 0)
			return req->query[i].value;
	return NULL;
}

const char *tn_request_header(const struct tn_request *req, const char *name)
{
	return req->header ? req->header(req->header_ctx, name) : NULL;
}

int tn_request_limit(const struct tn_request *req, long def, long max, long *out,
		     struct tn_error *err)
{
	const char *s = tn_request_query(req, "limit");
	char *end;
	long v;

	if (!s) {
		*out = def;
		return 0;
	}
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > max)
		return tn_fail(err, TN_E_INVALID, "limit: \"%s\" is not a number from 1 to %ld", s,
			       max);
	*out = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes src[0..len) into a new string (caller frees); NULL on a
 * bad escape or an encoded NUL, which no name or value of ours may hold. */
static char *percent_decode(const char *src, size_t len, bool plus_is_space)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (src[i] == '%') {
			int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(src[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = src[i] == '+' && plus_is_space ? ' ' : src[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------- exchange */

struct tn_exchange {
	struct tn_request req;
	struct tn_response resp;
	const struct tn_route *route;
	struct tn_error err;
	char *segs[TN_MAX_SEGMENTS];
	size_t nsegs;
	bool done;          /* the response is final */
	bool authenticated; /* req.who is a real caller: audit what happens */
	bool secret_tried;  /* a secret was presented: a 401 counts against the address */
	uint64_t max_body;
	size_t body_alloc;
};

/* Matches the decoded segments against pattern, capturing {} segments. */
static bool match(const char *pattern, struct tn_exchange *ex)
{
	const char *p = pattern + 1;
	size_t i = 0;

	ex->req.nparams = 0;
	if (*p == '\0')
		return ex->nsegs == 0;
	for (;; i++) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);

		if (i == ex->nsegs)
			return false;
		if (n == 2 && p[0] == '{' && p[1] == '}') {
			if (ex->req.nparams == TN_ROUTE_MAX_PARAMS)
				return false;
			ex->req.params[ex->req.nparams++] = ex->segs[i];
		} else if (strlen(ex->segs[i]) != n || memcmp(ex->segs[i], p, n) != 0) {
			return false;
		}
		if (*end == '\0')
			return i + 1 == ex->nsegs;
		p = end + 1;
	}
}

/* A decoded path segment every handler may take as a name: never a dot
 * segment, an encoded '/', a control character or non-UTF-8 (which no
 * name of ours holds and no message could quote), nor overlong.  The
 * message names the segment by its position, not its bytes. */
static int check_segment(struct tn_exchange *ex, const char *seg)
{
	size_t n = strlen(seg);
	size_t pos = ex->nsegs + 1;

	if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
		return tn_fail(&ex->err, TN_E_INVALID, "path segment %zu is \"%s\": dot segments "
			       "are not allowed", pos, seg);
	if (n > TN_SEGMENT_MAX)
		return tn_fail(&ex->err, TN_E_INVALID,
			       "path segment %zu is %zu bytes long: the limit is %d", pos, n,
			       TN_SEGMENT_MAX);
	if (strchr(seg, '/'))
		return tn_fail(&ex->err, TN_E_INVALID,
			       "path segment %zu holds an encoded '/' (%%2F): not allowed", pos);
	for (const unsigned char *p = (const unsigned char *)seg; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return tn_fail(&ex->err, TN_E_INVALID,
				       "path segment %zu holds a control character", pos);
	if (!utf8_valid((const unsigned char *)seg))
		return tn_fail(&ex->err, TN_E_INVALID, "path segment %zu is not valid UTF-8", pos);
	return 0;
}

/* Splits the path into decoded segments; a trailing slash and empty
 * segments are refused (there is one spelling of every resource). */
static int split_path(struct tn_exchange *ex, const char *path, size_t len)
{
	const char *p = path + 1;
	const char *end = path + len;

	if (len == 0 || path[0] != '/')
		return tn_fail(&ex->err, TN_E_INVALID, "request target must start with /");
	if (len == 1)
		return 0;
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *stop = slash ? slash : end;
		char *seg;

		if (ex->nsegs == TN_MAX_SEGMENTS)
			return tn_fail(&ex->err, TN_E_NOT_FOUND, "path has too many segments");
		if (stop == p)
			return tn_fail(&ex->err, TN_E_NOT_FOUND, "path has an empty segment");
		seg = percent_decode(p, (size_t)(stop - p), false);
		if (!seg)
			return tn_fail(&ex->err, TN_E_INVALID,
				       "path has a bad percent-escape (or an encoded NUL, %%00)");
		if (check_segment(ex, seg) != 0) {
			free(seg);
			return -1;
		}
		ex->segs[ex->nsegs++] = seg;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

static int parse_query(struct tn_exchange *ex, const char *q)
{
	while (*q) {
		const char *amp = strchrnul(q, '&');
		const char *eq = memchr(q, '=', (size_t)(amp - q));
		const char *kend = eq ? eq : amp;
		char *key, *value;

		if (amp == q) {
			q++;
			continue;
		}
		if (ex->req.nquery == TN_QUERY_MAX)
			return tn_fail(&ex->err, TN_E_INVALID, "more than %d query parameters",
				       TN_QUERY_MAX);
		key = percent_decode(q, (size_t)(kend - q), true);
		value = percent_decode(eq ? eq + 1 : amp, eq ? (size_t)(amp - eq - 1) : 0, true);
		if (!key || !value) {
			free(key);
			free(value);
			return tn_fail(&ex->err, TN_E_INVALID,
				       "query has a bad percent-escape (or an encoded NUL, %%00)");
		}
		if (!utf8_valid((unsigned char *)key) || !utf8_valid((unsigned char *)value)) {
			free(key);
			free(value);
			return tn_fail(&ex->err, TN_E_INVALID,
				       "query parameter %zu is not valid UTF-8", ex->req.nquery + 1);
		}
		ex->req.query[ex->req.nquery].key = key;
		ex->req.query[ex->req.nquery].value = value;
		ex->req.nquery++;
		q = *amp ? amp + 1 : amp;
	}
	return 0;
}

/* Writes the audit entry of a write by a known caller, whatever its
 * outcome: who, what, on what, and how it ended. */
static void audit(struct tn_exchange *ex)
{
	const struct tn_response *r = &ex->resp;
	const char *outcome = "ok";
	json_t *detail = NULL;

	if (!ex->route || !ex->route->action || !ex->authenticated)
		return;
	if (r->status >= 400) {
		outcome = tn_errcode_name(ex->err.code ? ex->err.code : TN_E_INTERNAL);
		detail = json_pack("{s:i, s:s}", "status", r->status, "message", ex->err.message);
	} else if (r->audit_detail) {
		detail = json_incref(r->audit_detail);
	}
	tn_audit(ex->req.srv, &ex->req.who, ex->route->action, r->audit_type,
		 r->audit_id, outcome, detail);
	json_decref(detail);
}

static void release_upload(struct tn_exchange *ex)
{
	if (ex->route && ex->route->upload && ex->req.upload) {
		ex->route->upload->release(&ex->req);
		ex->req.upload = NULL;
	}
}

/* Counts a refused secret against the caller's address.  The failure that
 * trips the limit is logged and audited once, for the address: not every
 * refused request after it, which would let a flood fill the log and the
 * audit table. */
static void count_bad_secret(struct tn_exchange *ex)
{
	struct tn_server *srv = ex->req.srv;
	struct tn_principal who = {TN_ROLE_PUBLIC, ""};
	json_t *detail;

	if (!ex->secret_tried || ex->err.code != TN_E_UNAUTHORIZED ||
	    !tn_ratelimit_fail(srv->ratelimit, ex->req.client, tn_clock_ms()))
		return;
	tn_log(TN_LOG_WARN, "auth", "rate_limited", "{s:s, s:i, s:i, s:s}", "address",
	       ex->req.client, "failures", (int)tn_ratelimit_limit(srv->ratelimit), "window_s",
	       (int)tn_ratelimit_window(srv->ratelimit), "route", ex->route->pattern);
	snprintf(who.name, sizeof who.name, "%s", ex->req.client);
	detail = json_pack("{s:i, s:i, s:s}", "failures", (int)tn_ratelimit_limit(srv->ratelimit),
			   "window_s", (int)tn_ratelimit_window(srv->ratelimit), "last_message",
			   ex->err.message);
	tn_audit(srv, &who, "auth.rate_limit", "address", ex->req.client, "refused", detail);
	json_decref(detail);
}

/* Makes the response final with the error in ex->err.  Whatever body the
 * handler had started goes; its headers (Allow of a 405) and what it named
 * for the audit log stay, so that a refused write is recorded against its
 * object too. */
static void refuse(struct tn_exchange *ex)
{
	__typeof__(ex->resp.headers) headers;
	size_t nheaders = ex->resp.nheaders;
	const char *audit_type = ex->resp.audit_type;
	char *audit_id = ex->resp.audit_id;

	if (ex->err.code == TN_OK)
		tn_fail(&ex->err, TN_E_INTERNAL, "internal error");
	memcpy(headers, ex->resp.headers, sizeof headers);
	ex->resp.nheaders = 0;
	ex->resp.audit_id = NULL;
	tn_response_clear(&ex->resp);
	memcpy(ex->resp.headers, headers, sizeof headers);
	ex->resp.nheaders = nheaders;
	ex->resp.audit_type = audit_type;
	ex->resp.audit_id = audit_id;
	tn_response_error(&ex->resp, &ex->err);
	ex->done = true;
	release_upload(ex);
	audit(ex);
	count_bad_secret(ex);
}

static const struct tn_route *find_route(struct tn_exchange *ex, const char *method)
{
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
	char allow[64] = "";
	size_t used = 0;

	for (size_t i = 0; i < tn_routes_count; i++) {
		const struct tn_route *r = &tn_routes[i];

		if (!match(r->pattern, ex))
			continue;
		if (strcmp(r->method, want) == 0)
			return r;
		if (used + strlen(r->method) + 3 < sizeof allow)
			used += (size_t)snprintf(allow + used, sizeof allow - used, "%s%s",
						 used ? ", " : "", r->method);
	}
	if (used) {
		tn_fail(&ex->err, TN_E_METHOD, "method %s is not allowed on %s (allowed: %s)", method,
			ex->req.path, allow);
		tn_response_add_header(&ex->resp, "Allow", allow);
	} else {
		tn_fail(&ex->err, TN_E_NOT_FOUND, "no such resource: %s", ex->req.path);
	}
	return NULL;
}

static int authenticate(struct tn_exchange *ex)
{
	const struct tn_route *r = ex->route;
	const char *auth = tn_request_header(&ex->req, "Authorization");
	int rc;

	if (r->role == TN_ROLE_PUBLIC)
		return 0;
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		tn_response_add_header(&ex->resp, "WWW-Authenticate", "Bearer");
		return tn_fail(&ex->err, TN_E_UNAUTHORIZED,
			       "missing credentials: send Authorization: Bearer <token>");
	}
	ex->secret_tried = true;
	rc = tn_auth_check(ex->req.srv->auth, auth + 7, &ex->req.who, &ex->err);
	if (rc != 0) {
		tn_response_add_header(&ex->resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		return rc;
	}
	ex->authenticated = true;
	if (r->role == TN_ROLE_AGENT ? ex->req.who.role != TN_ROLE_AGENT
				     : (ex->req.who.role == TN_ROLE_AGENT || ex->req.who.role < r->role))
		return tn_fail(&ex->err, TN_E_FORBIDDEN, "token \"%s\" has role %s; %s %s needs %s",
			       ex->req.who.name, tn_role_name(ex->req.who.role), r->method,
			       r->pattern, tn_role_name(r->role));
	return 0;
}

/* 429 for a route that takes a secret while the caller's address is
 * refused for its bad credentials: checked before the secret, so that
 * guessing stops, whatever the guess. */
static int check_rate(struct tn_exchange *ex)
{
	const struct tn_route *r = ex->route;
	unsigned retry_s;
	char value[16];

	if (r->role == TN_ROLE_PUBLIC && !r->secret_in_body)
		return 0;
	if (!tn_ratelimit_blocked(ex->req.srv->ratelimit, ex->req.client, tn_clock_ms(), &retry_s))
		return 0;
	snprintf(value, sizeof value, "%u", retry_s);
	tn_response_add_header(&ex->resp, "Retry-After", value);
	return tn_fail(&ex->err, TN_E_RATE_LIMITED,
		       "too many bad credentials from %s: refused for %u more seconds "
		       "(Retry-After)",
		       ex->req.client, retry_s);
}

static int check_length(struct tn_exchange *ex)
{
	const char *cl = tn_request_header(&ex->req, "Content-Length");
	char *end;
	unsigned long long n;

	if (!cl)
		return 0;
	n = strtoull(cl, &end, 10);
	if (*cl < '0' || *cl > '9' || *end != '\0')
		return tn_fail(&ex->err, TN_E_INVALID, "Content-Length \"%s\" is not a number", cl);
	ex->req.has_length = true;
	ex->req.content_length = n;
	if (n > ex->max_body)
		return tn_fail(&ex->err, TN_E_TOO_LARGE,
			       "body of %llu bytes is over the limit of %llu bytes", n,
			       (unsigned long long)ex->max_body);
	return 0;
}

struct tn_exchange *tn_exchange_begin(struct tn_server *srv, const char *method, const char *url,
				      tn_header_fn header, void *header_ctx, const char *client)
{
	struct tn_exchange *ex = xcalloc(1, sizeof *ex);
	const char *qmark = strchr(url, '?');
	size_t path_len = qmark ? (size_t)(qmark - url) : strlen(url);

	tn_response_init(&ex->resp);
	ex->req.srv = srv;
	ex->req.method = method;
	ex->req.header = header;
	ex->req.header_ctx = header_ctx;
	ex->req.client = client;
	ex->req.path = xstrndup(url, path_len);
	if (split_path(ex, url, path_len) != 0 || (qmark && parse_query(ex, qmark + 1) != 0)) {
		refuse(ex);
		return ex;
	}
	ex->route = find_route(ex, method);
	if (!ex->route) {
		refuse(ex);
		return ex;
	}
	ex->max_body = ex->route->max_body ? ex->route->max_body : TN_MAX_JSON_BODY;
	if (ex->route->max_body == TN_MAX_BODY_UPLOAD)
		ex->max_body = srv->max_upload;
	ex->secret_tried = ex->route->secret_in_body;
	if (check_rate(ex) != 0 || authenticate(ex) != 0 || check_length(ex) != 0 ||
	    (ex->route->upload && ex->route->upload->begin(&ex->req, &ex->err) != 0))
		refuse(ex);
	return ex;
}

void tn_exchange_body(struct tn_exchange *ex, const char *data, size_t len)
{
	if (ex->done || len == 0)
		return;
	ex->req.body_seen += len;
	if (ex->req.body_seen > ex->max_body) {
		tn_fail(&ex->err, TN_E_TOO_LARGE, "body is over the limit of %llu bytes",
			(unsigned long long)ex->max_body);
		refuse(ex);
		return;
	}
	if (ex->route->upload) {
		if (ex->route->upload->chunk(&ex->req, data, len, &ex->err) != 0)
			refuse(ex);
		return;
	}
	if (ex->req.body_len + len + 1 > ex->body_alloc) {
		size_t want = ex->body_alloc ? ex->body_alloc : 4096;

		while (want < ex->req.body_len + len + 1)
			want *= 2;
		ex->req.body = xrealloc(ex->req.body, want);
		ex->body_alloc = want;
	}
	memcpy(ex->req.body + ex->req.body_len, data, len);
	ex->req.body_len += len;
}

void tn_exchange_finish(struct tn_exchange *ex)
{
	int rc;

	if (ex->done)
		return;
	if (!ex->req.body)
		ex->req.body = xcalloc(1, 1);
	ex->req.body[ex->req.body_len] = '\0';
	rc = ex->route->handler(&ex->req, &ex->resp, &ex->err);
	if (rc != 0) {
		refuse(ex);
		return;
	}
	ex->done = true;
	release_upload(ex);
	if (!ex->resp.defer) /* else once resumed: the outcome is known then */
		audit(ex);
}

bool tn_exchange_done(const struct tn_exchange *ex)
{
	return ex->done;
}

void tn_exchange_resume(struct tn_exchange *ex)
{
	const struct tn_defer_ops *ops = ex->resp.defer;
	void *ctx = ex->resp.defer_ctx;

	if (!ops)
		return;
	/* The deferred parts go; the rest of the response is built anew. */
	ex->resp.defer = NULL;
	ex->resp.defer_ctx = NULL;
	free(ex->resp.defer_key);
	ex->resp.defer_key = NULL;
	if (ops->resume(ctx, &ex->req, &ex->resp, &ex->err) != 0)
		refuse(ex);
	else
		audit(ex);
	if (ops->free)
		ops->free(ctx);
}

struct tn_response *tn_exchange_response(struct tn_exchange *ex)
{
	return &ex->resp;
}

const char *tn_exchange_route(const struct tn_exchange *ex)
{
	return ex->route ? ex->route->pattern : "unmatched";
}

const struct tn_principal *tn_exchange_principal(const struct tn_exchange *ex)
{
	return ex->authenticated ? &ex->req.who : NULL;
}

void tn_exchange_free(struct tn_exchange *ex)
{
	if (!ex)
		return;
	release_upload(ex);
	tn_response_clear(&ex->resp);
	for (size_t i = 0; i < ex->nsegs; i++)
		free(ex->segs[i]);
	for (size_t i = 0; i < ex->req.nquery; i++) {
		free(ex->req.query[i].key);
		free(ex->req.query[i].value);
	}
	free(ex->req.path);
	free(ex->req.body);
	free(ex);
}

/* ------------------------------------------------------------ in-process */

static const char *list_header(void *ctx, const char *name)
{
	const char *const *headers = ctx;
	size_t n = strlen(name);

	for (size_t i = 0; headers && headers[i]; i++)
		if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':') {
			const char *v = headers[i] + n + 1;

			while (*v == ' ')
				v++;
			return v;
		}
	return NULL;
}

void tn_router_call(struct tn_server *srv, const char *method, const char *url,
		    const char *const *headers, const char *body, size_t len,
		    struct tn_response *resp)
{
	struct tn_exchange *ex =
		tn_exchange_begin(srv, method, url, list_header, (void *)headers, NULL);
	/* Feed the body in pieces, as the network would. */
	const size_t piece = 16384;

	for (size_t off = 0; off < len && !ex->done; off += piece)
		tn_exchange_body(ex, body + off, len - off < piece ? len - off : piece);
	tn_exchange_finish(ex);
	tn_exchange_resume(ex);
	*resp = ex->resp;
	tn_response_init(&ex->resp);
	tn_exchange_free(ex);
}
