/* proxy.h - an HTTP/1.1 proxy for integration tests, run by threads of the
 * test program, to put between an agent and its server: it relays each
 * request on a fresh upstream connection (one request per client
 * connection: it answers with the connection closed), logs what passed,
 * and on the test's word damages the traffic the way a bad network or an
 * attacker would: cuts a blob download short, flips a byte of blobs, holds
 * blob downloads half-way, or answers the desired document itself. */
#ifndef TN_PROXY_H
#define TN_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct th_proxy;

/* Listens on a free loopback port, relaying to upstream_url
 * ("http://127.0.0.1:PORT").  Aborts when it cannot. */
struct th_proxy *th_proxy_start(const char *upstream_url);
/* "http://127.0.0.1:PORT" of the proxy itself. */
const char *th_proxy_url(const struct th_proxy *p);
/* Closes every connection (releasing held downloads), joins the threads
 * and frees p.  NULL is a no-op. */
void th_proxy_stop(struct th_proxy *p);

/* Blob responses are those to GET /agent/v1/blobs/... with a body.
 * The next one is cut after `after` bytes of its body (the connection
 * closed), once. */
void th_proxy_cut_blob_once(struct th_proxy *p, size_t after);
/* Flips one byte in the middle of every blob response's body. */
void th_proxy_flip_blobs(struct th_proxy *p, bool on);
/* Sends half of each blob response's body and then holds it until this is
 * turned off (then the connection is closed: the download is cut). */
void th_proxy_stall_blobs(struct th_proxy *p, bool on);
/* Blob responses being held right now. */
size_t th_proxy_stalled(struct th_proxy *p);

/* Answers GET /agent/v1/desired itself, at once, with 200, this body and
 * "Tender-Signature: <signature_header>" (none when NULL), until cleared. */
void th_proxy_override_desired(struct th_proxy *p, const char *body, const char *signature_header);
void th_proxy_clear_desired(struct th_proxy *p);

/* What passed so far, oldest first: a JSON array (caller decrefs) of
 * {"method", "path", "range" (the Range header or null), "status" (0 when
 * no answer came), "request" (the request body, when there was one),
 * "response" and "signature" (for 200 answers to /agent/v1/desired),
 * "cut" (body bytes sent before a cut or a held download ended, or null),
 * "overridden" (true when the proxy answered itself)}. */
json_t *th_proxy_log(struct th_proxy *p);

#endif
