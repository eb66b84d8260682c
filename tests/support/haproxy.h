/* haproxy.h - a real HAProxy for integration tests, and a load generator to
 * send traffic through it.
 *
 * The HAProxy runs in the foreground as a child of the test program (it
 * dies with it) with a generated config: its runtime API on a loopback
 * port (level admin), a frontend on another, and one empty backend with
 * `balance roundrobin` — no `retry-on` and no `redispatch`, which would
 * hide failed requests. */
#ifndef TN_TEST_HAPROXY_H
#define TN_TEST_HAPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct th_haproxy {
	pid_t pid;
	char *dir;	  /* temporary: the config and the log */
	char *backend;
	int admin_port;	  /* the runtime API */
	int front_port;	  /* where clients send requests */
	char admin[32];	  /* "127.0.0.1:PORT", as a cluster's lb.admin */
};

/* Whether haproxy is installed (a test without it prints why and passes
 * over its cases; scripts/bootstrap installs it). */
bool th_haproxy_available(void);
/* Starts HAProxy with one backend named backend; waits (bounded) until its
 * runtime API answers.  Aborts the program when it does not start. */
void th_haproxy_start(struct th_haproxy *h, const char *backend);
/* Stops it (SIGTERM, bounded wait, then SIGKILL); the ports stay reserved
 * for a start again. */
void th_haproxy_stop(struct th_haproxy *h);
/* Starts it again with its original config on the same ports (what a
 * reload does to dynamic servers: they are gone). */
void th_haproxy_restart(struct th_haproxy *h);
/* Stops it and removes its directory; NULL-safe on a zeroed struct. */
void th_haproxy_destroy(struct th_haproxy *h);
/* One runtime API command; its answer (caller frees), NULL when the API
 * cannot be reached. */
char *th_haproxy_cmd(const struct th_haproxy *h, const char *cmd);

/* One server's line of `show stat`: its status ("UP", "DOWN", "DRAIN",
 * "MAINT", ...) and current sessions; false when the backend has no
 * server of that name. */
bool th_haproxy_server(const struct th_haproxy *h, const char *name, char *status,
		       size_t status_size, long *sessions);
/* How many servers named like targets ("t-…") the backend has, and how
 * many of them are UP. */
size_t th_haproxy_members(const struct th_haproxy *h, size_t *up);

/* ------------------------------------------------------------ load */

/* Clients sending `GET /` through the frontend on keep-alive connections,
 * each at most one request per pace_ms, recording every answer. */
struct th_load;

struct th_hit {
	double t;	  /* seconds (CLOCK_MONOTONIC) the request was sent */
	int status;	  /* HTTP status, 0 for a connection error */
	char target[40];  /* X-Educa-Target of the answer */
	char body[96];	  /* its first line */
};

struct th_load *th_load_start(int port, int clients, int pace_ms);
/* Stops the clients; returns every hit (in no particular order) in *hits
 * (owned by the load: freed by th_load_free) and their count. */
void th_load_stop(struct th_load *l, const struct th_hit **hits, size_t *n);
/* The hits so far, while it runs (the array stays valid until
 * th_load_free; entries up to *n are complete). */
void th_load_peek(struct th_load *l, const struct th_hit **hits, size_t *n);
/* Requests so far and failed ones (a status other than 200, or a
 * connection error), while it runs. */
void th_load_counts(struct th_load *l, size_t *total, size_t *failed);
void th_load_free(struct th_load *l);

#endif
