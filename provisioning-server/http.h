/* http.h - the HTTP front of tender-server on libmicrohttpd: an internal
 * epoll thread pool, explicit limits (DESIGN §5), exchanges run through
 * router.c, files sent with sendfile, streams suspended between events. */
#ifndef TN_HTTP_H
#define TN_HTTP_H

#include <stdint.h>

#include "error.h"

struct tn_server;
struct tn_http;

struct tn_http_config {
	const char *listen;      /* "ADDR:PORT" or "[V6ADDR]:PORT"; port 0 picks one */
	const char *tls_cert;    /* PEM files, both or neither */
	const char *tls_key;
	unsigned threads;        /* pool size; 0: 2 × cores */
	unsigned conn_limit;     /* 0: derived from the open-file limit */
	unsigned conn_timeout_s; /* idle connections are closed after this */
};

int tn_http_start(struct tn_server *srv, const struct tn_http_config *cfg, struct tn_http **out,
		  struct tn_error *err) TN_MUST_CHECK;
/* The port really bound (useful with port 0). */
uint16_t tn_http_port(const struct tn_http *http);
/* Resumes the long-polls parked under key (its deferred responses are
 * then made: see struct tn_defer_ops). */
void tn_http_wake_key(struct tn_http *http, const char *key);
/* Resumes every suspended stream so that it reads again (new events). */
void tn_http_wake_streams(struct tn_http *http);
/* Resumes everything suspended, then stops the daemon. */
void tn_http_stop(struct tn_http *http);

#endif
