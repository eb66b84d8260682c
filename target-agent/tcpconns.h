/* tcpconns.h - how many connections a bundle still serves: the established
 * TCP connections whose local port is its `serves` port, read from the
 * kernel's tables (/proc/net/tcp and /proc/net/tcp6 of this network
 * namespace).  A switch waits for them to end after the load balancer
 * stopped sending new ones (DESIGN §2 "Agent phases", Switch). */
#ifndef TN_TCPCONNS_H
#define TN_TCPCONNS_H

#include <stddef.h>

#include "error.h"

/* Bounds on one table: a line longer than this is malformed; a table with
 * more lines is not counted (a host that busy is "unknown", never a stall
 * of the agent's loop). */
#define TN_TCPCONNS_LINE_MAX 512
#define TN_TCPCONNS_LINES_MAX 200000

/* Counts into *count the ESTABLISHED connections whose local port is one
 * of ports[0..n) in both tables.  A missing table counts 0 (no IPv6); an
 * unreadable or malformed one fails (TN_E_IO, TN_E_INVALID naming the file
 * and line): the count is then unknown, and *count is left alone. */
int tn_tcpconns_established(const int *ports, size_t n, unsigned *count,
			    struct tn_error *err) TN_MUST_CHECK;

/* The same for one table in the format of /proc/net/tcp{,6} (for tests,
 * which also feed it hostile text): the file at path, or len bytes of
 * text. */
int tn_tcpconns_count_file(const char *path, const int *ports, size_t n, unsigned *count,
			   struct tn_error *err) TN_MUST_CHECK;
int tn_tcpconns_count_text(const char *text, size_t len, const int *ports, size_t n,
			   unsigned *count, struct tn_error *err) TN_MUST_CHECK;

#endif
