/* router.h - the HTTP API as one table {method, pattern, role, handler},
 * and the request/response exchange that runs a route: match, authenticate,
 * take the body (buffered or streamed), call the handler, audit the write.
 *
 * The exchange knows nothing of libmicrohttpd: http.c feeds it from MHD,
 * and tn_router_call() feeds it in-process (tests, fuzzers). */
#ifndef TN_ROUTER_H
#define TN_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct tn_server;

/* Ordered: a route needing `viewer` accepts developer, operator and admin.
 * TN_ROLE_AGENT is apart: only a target's own token has it. */
enum tn_role {
	TN_ROLE_PUBLIC,
	TN_ROLE_VIEWER,
	TN_ROLE_DEVELOPER,
	TN_ROLE_OPERATOR,
	TN_ROLE_ADMIN,
	TN_ROLE_AGENT,
};

const char *tn_role_name(enum tn_role role);
/* Parses viewer|developer|operator|admin; -1 for anything else. */
int tn_role_parse(const char *name);

struct tn_principal {
	enum tn_role role;
	char name[128]; /* token name, or target id for agents */
};

#define TN_ROUTE_MAX_PARAMS 4
#define TN_QUERY_MAX 16
#define TN_RESPONSE_MAX_HEADERS 8

typedef const char *(*tn_header_fn)(void *ctx, const char *name);

struct tn_request {
	struct tn_server *srv;
	const char *method;
	char *path;                           /* decoded path, no query */
	char *params[TN_ROUTE_MAX_PARAMS];    /* the {} segments of the pattern */
	size_t nparams;
	struct {
		char *key, *value;
	} query[TN_QUERY_MAX];
	size_t nquery;
	tn_header_fn header;
	void *header_ctx;
	const char *client;                   /* the caller's address; NULL in-process */
	struct tn_principal who;
	bool has_length;
	uint64_t content_length;
	/* Buffered routes: the whole body, NUL-terminated (not counted). */
	char *body;
	size_t body_len;
	/* Streamed routes: the upload's own state, owned by its ops. */
	void *upload;
	uint64_t body_seen;
};

/* A response body is one of: json, a byte buffer, a file range, a stream;
 * or the response is deferred (a long-poll): no answer yet. */
struct tn_stream_ops;
struct tn_defer_ops;

struct tn_response {
	int status;
	json_t *json;          /* owned */
	char *body;            /* owned */
	size_t body_len;
	const char *content_type;
	int fd;                /* owned; -1 when none */
	uint64_t fd_offset, fd_size;
	const struct tn_stream_ops *stream;
	void *stream_ctx;      /* owned by the stream's ops */
	const struct tn_defer_ops *defer;
	void *defer_ctx;       /* owned by the defer ops */
	char *defer_key;       /* what wakes it: tn_http_wake_key(key) */
	uint64_t defer_until_ms; /* CLOCK_MONOTONIC deadline of the wait */
	/* Called once when the response is done with (sent, or dropped):
	 * releases what the handler holds for it (a download slot). */
	void (*on_release)(void *ctx);
	void *release_ctx;
	struct {
		char *name, *value;
	} headers[TN_RESPONSE_MAX_HEADERS];
	size_t nheaders;
	/* What a write acted on, for the audit log: set by the handler. */
	const char *audit_type;
	char *audit_id;
	json_t *audit_detail;  /* owned */
};

/* A streamed response (server-sent events): read fills buf with up to max
 * bytes and returns the count, 0 when it has nothing now (the HTTP layer
 * then suspends the connection until tn_http_wake_streams()), or -1 to end
 * the stream.  free releases ctx. */
struct tn_stream_ops {
	ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
	void (*free)(void *ctx);
};

/* A deferred response: the HTTP layer parks the connection (suspended,
 * holding no thread) until tn_http_wake_key(defer_key) or the deadline,
 * then calls resume to make the real response.  ready is asked once the
 * connection is parked: true means what it waits for already happened
 * (a change between the handler's check and the parking), and it resumes
 * at once.  free releases ctx. */
struct tn_defer_ops {
	bool (*ready)(void *ctx);
	int (*resume)(void *ctx, struct tn_request *req, struct tn_response *resp,
		      struct tn_error *err);
	void (*free)(void *ctx);
};

/* Streamed request bodies: begin is called once the route and caller are
 * known and before any byte; chunk for each piece; abort when the exchange
 * ends without the handler having run (or after it, to release). */
struct tn_upload_ops {
	int (*begin)(struct tn_request *req, struct tn_error *err);
	int (*chunk)(struct tn_request *req, const char *data, size_t len, struct tn_error *err);
	void (*release)(struct tn_request *req);
};

typedef int (*tn_handler_fn)(struct tn_request *req, struct tn_response *resp,
			     struct tn_error *err);

struct tn_route {
	const char *method;
	const char *pattern; /* "/api/v1/bundles/{}/{}": {} matches one segment */
	enum tn_role role;
	tn_handler_fn handler;
	const struct tn_upload_ops *upload; /* NULL: the body is buffered */
	uint64_t max_body;                  /* 0: TN_MAX_JSON_BODY */
	const char *action;                 /* audit name of a write, NULL for reads */
	/* A public route whose body carries a secret (an enrollment token):
	 * its 401s count against the caller's address like a bad token's. */
	bool secret_in_body;
};

#define TN_MAX_JSON_BODY (1u << 20)
/* max_body of upload routes: the server's --max-upload. */
#define TN_MAX_BODY_UPLOAD UINT64_MAX
#define TN_MAX_SEGMENTS 16
/* The longest decoded path segment (names are at most 128 bytes). */
#define TN_SEGMENT_MAX 256

/* ---- responses */
void tn_response_init(struct tn_response *resp);
void tn_response_clear(struct tn_response *resp);
/* Takes ownership of body. */
void tn_response_json(struct tn_response *resp, int status, json_t *body);
/* {"error":{"code","message"}} with the status of err->code. */
void tn_response_error(struct tn_response *resp, const struct tn_error *err);
void tn_response_add_header(struct tn_response *resp, const char *name, const char *value);
/* Sets the audit object (copied). */
void tn_response_audit(struct tn_response *resp, const char *type, const char *id);

/* ---- requests */
/* The decoded value of a query parameter, NULL when absent (borrowed). */
const char *tn_request_query(const struct tn_request *req, const char *key);
const char *tn_request_header(const struct tn_request *req, const char *name);
/* ?limit= with default and maximum; TN_E_INVALID naming it when bad. */
int tn_request_limit(const struct tn_request *req, long def, long max, long *out,
		     struct tn_error *err) TN_MUST_CHECK;

/* ---- the exchange */
struct tn_exchange;

/* Starts a request.  url is the raw request target ("/a/b?x=1"); client
 * the caller's address (borrowed, kept for the exchange's life; NULL when
 * unknown: then no limit on bad credentials applies).  Returns
 * the exchange (caller frees with tn_exchange_free); when the request is
 * refused before its body (404, 405, 401, 403, 413), the exchange's
 * response is already final and tn_exchange_done() is true. */
struct tn_exchange *tn_exchange_begin(struct tn_server *srv, const char *method, const char *url,
				      tn_header_fn header, void *header_ctx, const char *client);
/* Feeds body bytes; after a refusal the rest is ignored. */
void tn_exchange_body(struct tn_exchange *ex, const char *data, size_t len);
/* The body is complete: runs the handler and writes the audit entry. */
void tn_exchange_finish(struct tn_exchange *ex);
bool tn_exchange_done(const struct tn_exchange *ex);
/* After a deferred response's wait: runs its resume to make the final
 * response (a failure becomes an error response). */
void tn_exchange_resume(struct tn_exchange *ex);
struct tn_response *tn_exchange_response(struct tn_exchange *ex);
/* The route's pattern ("unmatched" when none), for metrics. */
const char *tn_exchange_route(const struct tn_exchange *ex);
/* The authenticated caller, or NULL. */
const struct tn_principal *tn_exchange_principal(const struct tn_exchange *ex);
void tn_exchange_free(struct tn_exchange *ex);

/* In-process call: begin + body + finish.  headers is a NULL-terminated
 * list of "Name: value" strings.  *resp receives the response (the caller
 * clears it with tn_response_clear).  A deferred response is resumed at
 * once, as if its wait had run out. */
void tn_router_call(struct tn_server *srv, const char *method, const char *url,
		    const char *const *headers, const char *body, size_t len,
		    struct tn_response *resp);

/* The route table (defined in routes.c). */
extern const struct tn_route tn_routes[];
extern const size_t tn_routes_count;

#endif
