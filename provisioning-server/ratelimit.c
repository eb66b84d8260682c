/* ratelimit.c - the per-address count of bad credentials (see ratelimit.h).
 * A set-associative table: an address hashes to one set of WAYS entries,
 * so a lookup is a few comparisons under one mutex, and a new address
 * takes the free or least recently seen entry of its set.  Memory is
 * SETS × WAYS entries whatever the traffic. */
#include "ratelimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "xalloc.h"

#define SETS 512
#define WAYS 8

struct slot {
	char addr[INET6_ADDRSTRLEN];
	uint64_t window_start_ms;
	uint64_t blocked_until_ms;
	uint64_t last_ms; /* 0: free */
	unsigned failures;
};

struct tn_ratelimit {
	pthread_mutex_t lock;
	unsigned limit;
	unsigned window_s;
	struct slot slots[SETS][WAYS];
};

struct tn_ratelimit *tn_ratelimit_new(unsigned limit, unsigned window_s)
{
	struct tn_ratelimit *rl = xcalloc(1, sizeof *rl);

	pthread_mutex_init(&rl->lock, NULL);
	rl->limit = limit;
	rl->window_s = window_s ? window_s : 1;
	return rl;
}

void tn_ratelimit_free(struct tn_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

unsigned tn_ratelimit_limit(const struct tn_ratelimit *rl)
{
	return rl->limit;
}

unsigned tn_ratelimit_window(const struct tn_ratelimit *rl)
{
	return rl->window_s;
}

static struct slot *set_of(struct tn_ratelimit *rl, const char *addr)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return rl->slots[h % SETS];
}

/* The entry of addr, or NULL; the caller holds the lock. */
static struct slot *find(struct tn_ratelimit *rl, const char *addr)
{
	struct slot *set = set_of(rl, addr);

	for (size_t i = 0; i < WAYS; i++)
		if (set[i].last_ms && strcmp(set[i].addr, addr) == 0)
			return &set[i];
	return NULL;
}

/* A fresh entry for addr: a free one of its set, else the one seen
 * longest ago. */
static struct slot *take(struct tn_ratelimit *rl, const char *addr, uint64_t now_ms)
{
	struct slot *set = set_of(rl, addr);
	struct slot *s = &set[0];

	for (size_t i = 0; i < WAYS && s->last_ms; i++)
		if (!set[i].last_ms || set[i].last_ms < s->last_ms)
			s = &set[i];
	memset(s, 0, sizeof *s);
	snprintf(s->addr, sizeof s->addr, "%s", addr);
	s->window_start_ms = now_ms;
	s->last_ms = now_ms ? now_ms : 1;
	return s;
}

bool tn_ratelimit_blocked(struct tn_ratelimit *rl, const char *addr, uint64_t now_ms,
			  unsigned *retry_after_s)
{
	struct slot *s;
	bool blocked = false;

	if (!rl || !rl->limit || !addr)
		return false;
	pthread_mutex_lock(&rl->lock);
	s = find(rl, addr);
	if (s && s->blocked_until_ms > now_ms) {
		blocked = true;
		*retry_after_s = (unsigned)((s->blocked_until_ms - now_ms + 999) / 1000);
	}
	pthread_mutex_unlock(&rl->lock);
	return blocked;
}

bool tn_ratelimit_fail(struct tn_ratelimit *rl, const char *addr, uint64_t now_ms)
{
	struct slot *s;
	bool tripped = false;

	if (!rl || !rl->limit || !addr)
		return false;
	pthread_mutex_lock(&rl->lock);
	s = find(rl, addr);
	if (!s)
		s = take(rl, addr, now_ms);
	s->last_ms = now_ms ? now_ms : 1;
	if (s->blocked_until_ms <= now_ms) {
		if (now_ms - s->window_start_ms >= (uint64_t)rl->window_s * 1000) {
			s->window_start_ms = now_ms;
			s->failures = 0;
		}
		if (++s->failures >= rl->limit) {
			/* Refused for a whole window from now; counting starts
			 * again when it ends. */
			s->blocked_until_ms = now_ms + (uint64_t)rl->window_s * 1000;
			s->window_start_ms = s->blocked_until_ms;
			s->failures = 0;
			tripped = true;
		}
	}
	pthread_mutex_unlock(&rl->lock);
	return tripped;
}
