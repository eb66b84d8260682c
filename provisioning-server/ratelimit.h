/* ratelimit.h - bad credentials counted per client address: after `limit`
 * refused secrets (API tokens, target tokens, enrollment tokens) within
 * `window_s`, the address is refused (429) for `window_s`.  The table has a
 * fixed size: a flood of addresses evicts the oldest entries and never
 * grows the memory. */
#ifndef TN_RATELIMIT_H
#define TN_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct tn_ratelimit;

/* A new table (tn_ratelimit_free); limit 0 turns the limit off (then
 * nothing is counted and nothing refused). */
struct tn_ratelimit *tn_ratelimit_new(unsigned limit, unsigned window_s);
void tn_ratelimit_free(struct tn_ratelimit *rl);

/* Whether addr is refused at now_ms (CLOCK_MONOTONIC); when it is,
 * *retry_after_s is the whole seconds until it recovers (at least 1). */
bool tn_ratelimit_blocked(struct tn_ratelimit *rl, const char *addr, uint64_t now_ms,
			  unsigned *retry_after_s);

/* Counts one refused secret from addr at now_ms.  True exactly once per
 * trip: for the failure that reaches the limit (the caller logs and audits
 * that one, not every request after it). */
bool tn_ratelimit_fail(struct tn_ratelimit *rl, const char *addr, uint64_t now_ms);

unsigned tn_ratelimit_limit(const struct tn_ratelimit *rl);
unsigned tn_ratelimit_window(const struct tn_ratelimit *rl);

#endif
