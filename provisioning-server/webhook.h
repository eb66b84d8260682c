/* webhook.h - webhooks (DESIGN §3): every audit event whose action matches
 * a webhook's patterns is POSTed to its URL as signed JSON by a worker
 * thread, retried with exponential backoff, each attempt recorded in the
 * store.  tn_audit only wakes the worker: events are already in the store,
 * and the worker matches them from where it last stopped (a restart loses
 * nothing), queues one delivery per webhook and event, and works the
 * queue. */
#ifndef TN_WEBHOOK_H
#define TN_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct tn_server;
struct tn_webhooks;

#define TN_WEBHOOK_URL_MAX 2048
#define TN_WEBHOOK_EVENTS_MAX 64
#define TN_WEBHOOK_PATTERN_MAX 128
/* No backoff between attempts grows beyond this. */
#define TN_WEBHOOK_BACKOFF_CAP_MS 60000u

/* ------------------------------------------------------------ what is accepted */

/* A webhook's url: http:// or https:// (either case), a host (a name, an
 * IPv4 address or a bracketed IPv6 one) with an optional port 1-65535,
 * printable ASCII only, at most TN_WEBHOOK_URL_MAX bytes.  TN_E_INVALID
 * with a message beginning "url: ". */
int tn_webhook_check_url(const char *url, struct tn_error *err) TN_MUST_CHECK;

/* A webhook's events: a non-empty array of at most TN_WEBHOOK_EVENTS_MAX
 * distinct patterns, each an action name of two or more dot-separated
 * parts of [a-z0-9_] ("rollout.succeeded"), such a prefix followed by
 * ".*" ("rollout.*"), or "*".  TN_E_INVALID naming the element
 * ("events[2]: ..."). */
int tn_webhook_check_events(json_t *events, struct tn_error *err) TN_MUST_CHECK;

/* Whether action matches pattern ("*", "prefix.*", or the exact name). */
bool tn_webhook_pattern_matches(const char *pattern, const char *action);
/* Whether action matches any string of the array patterns (borrowed). */
bool tn_webhook_matches(json_t *patterns, const char *action);

/* ------------------------------------------------------------ what is sent */

/* The wait before the next attempt after `failed` attempts (>= 1) failed:
 * base_ms, doubled at each further failure, at most
 * TN_WEBHOOK_BACKOFF_CAP_MS (and never more than base_ms when base_ms is
 * itself above the cap). */
uint64_t tn_webhook_backoff_ms(unsigned base_ms, unsigned failed);

/* The JSON body POSTed for an event (an item of tn_store_event_list,
 * borrowed): {"id", "event", "at", "actor", "object": {"type", "id"} or
 * null, "outcome", "detail"}, compact, keys in that order.  Caller
 * frees. */
char *tn_webhook_body(json_t *event);

/* ------------------------------------------------------------ the worker */

struct tn_webhooks_config {
	unsigned backoff_ms;  /* first wait between attempts; 0 = 1000 */
	unsigned attempts;    /* attempts before giving up; 0 = 8 */
	unsigned max_pending; /* pending deliveries kept per webhook; 0 = 1000 */
};

/* Starts the worker thread.  Call curl_global_init first (before any
 * thread). */
struct tn_webhooks *tn_webhooks_start(struct tn_server *srv, const struct tn_webhooks_config *cfg);
/* New events: look for matches now.  Never blocks on a delivery; NULL is a
 * no-op (in-process use). */
void tn_webhooks_wake(struct tn_webhooks *w);
/* Stops and joins the thread; deliveries in flight are abandoned and stay
 * pending in the store (tried again after the next start).  NULL is a
 * no-op. */
void tn_webhooks_stop(struct tn_webhooks *w);

#endif
