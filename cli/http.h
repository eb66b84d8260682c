/* http.h - how `tender` talks to the server: one libcurl easy handle reused
 * for every request of a run (so one connection), timeouts always set,
 * uploads streamed from a file with a progress bar on a terminal, and a
 * streaming GET for server-sent events.  Transport only: what a status
 * means is api.h's business. */
#ifndef TN_CLI_HTTP_H
#define TN_CLI_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

struct cli_http;

/* base_url: "http://host:port" without a trailing '/'; token and cacert
 * may be NULL.  All are copied.  Free with cli_http_free. */
struct cli_http *cli_http_new(const char *base_url, const char *token, const char *cacert);
void cli_http_free(struct cli_http *h);

/* Requests stop (and report `stopped`) once *flag becomes non-zero: set it
 * from a signal handler.  Borrowed; NULL for none. */
void cli_http_set_stop(struct cli_http *h, const volatile sig_atomic_t *flag);

/* What a request sends: a body in memory, or an open file of a known size
 * streamed as the body (with a progress bar labelled `label` when stderr
 * is a terminal). */
struct cli_body {
	const char *content_type;
	const char *data;
	size_t len;
	FILE *file; /* borrowed */
	uint64_t file_size;
	const char *label;
};

struct cli_response {
	long status;
	char *body; /* NUL-terminated, owned */
	size_t len;
	bool stopped; /* the stop flag ended the request */
};

/* Performs `method path` (path starts with '/' and is already escaped).
 * 0 when the server answered, whatever the status; TN_E_UNAVAILABLE with
 * "cannot reach URL: reason" when it could not be reached or the answer
 * was cut off.  Free *out with cli_response_free in every case. */
int cli_http_request(struct cli_http *h, const char *method, const char *path,
		     const struct cli_body *body, struct cli_response *out, struct tn_error *err)
	TN_MUST_CHECK;

/* A GET whose body goes to on_data chunk by chunk as it arrives, while the
 * status is below 400 (a refusal's body is kept in out->body instead).
 * Ends when the server ends the body, when on_data returns false, when the
 * stop flag is set, or after idle_s seconds without a byte (then
 * TN_E_UNAVAILABLE).  headers: extra "Name: value" lines, NULL-terminated,
 * or NULL. */
int cli_http_stream(struct cli_http *h, const char *path, const char *const *headers,
		    bool (*on_data)(const char *p, size_t n, void *ctx), void *ctx, int idle_s,
		    struct cli_response *out, struct tn_error *err) TN_MUST_CHECK;

void cli_response_free(struct cli_response *r);

/* The server's base URL as given; borrowed. */
const char *cli_http_base(const struct cli_http *h);

/* s percent-encoded for a path segment or a query value (everything but
 * A-Z a-z 0-9 - . _ ~).  Caller frees. */
char *cli_url_escape(const char *s);

#endif
