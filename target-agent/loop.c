/* loop.c - see loop.h.  The number of fds and timers an agent has is small
 * (a long-poll, a few downloads, a pidfd per bundle, the agent-check
 * socket and its clients), so both are plain arrays scanned in order. */
#include "loop.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "xalloc.h"

#define MAX_WAIT_MS 1000

struct watch {
	int fd;
	short events;
	tn_loop_fd_fn fn;
	void *ctx;
	bool gone; /* unwatched during dispatch; compacted afterwards */
};

struct timer {
	uint64_t id;
	uint64_t due;
	tn_loop_timer_fn fn;
	void *ctx;
};

struct transfer {
	CURL *easy;
	tn_loop_done_fn fn;
	void *ctx;
};

struct tn_loop {
	CURLM *multi;
	struct watch *watches;
	size_t nwatches, capwatches;
	struct timer *timers;
	size_t ntimers, captimers;
	uint64_t next_id;
	struct transfer *transfers;
	size_t ntransfers, captransfers;
	volatile sig_atomic_t stopping;
};

uint64_t tn_loop_now_ms(void)
{
	return tn_clock_ms();
}

struct tn_loop *tn_loop_new(void)
{
	struct tn_loop *loop = xcalloc(1, sizeof *loop);

	loop->multi = curl_multi_init();
	if (!loop->multi)
		abort();
	return loop;
}

void tn_loop_free(struct tn_loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->ntransfers; i++)
		curl_multi_remove_handle(loop->multi, loop->transfers[i].easy);
	curl_multi_cleanup(loop->multi);
	free(loop->watches);
	free(loop->timers);
	free(loop->transfers);
	free(loop);
}

static struct watch *find_watch(struct tn_loop *loop, int fd)
{
	for (size_t i = 0; i < loop->nwatches; i++)
		if (loop->watches[i].fd == fd && !loop->watches[i].gone)
			return &loop->watches[i];
	return NULL;
}

void tn_loop_watch(struct tn_loop *loop, int fd, short events, tn_loop_fd_fn fn, void *ctx)
{
	if (find_watch(loop, fd))
		abort();
	if (loop->nwatches == loop->capwatches) {
		loop->capwatches = loop->capwatches ? 2 * loop->capwatches : 8;
		loop->watches = xrealloc(loop->watches, loop->capwatches * sizeof *loop->watches);
	}
	loop->watches[loop->nwatches++] = (struct watch){fd, events, fn, ctx, false};
}

void tn_loop_modify(struct tn_loop *loop, int fd, short events)
{
	struct watch *w = find_watch(loop, fd);

	if (w)
		w->events = events;
}

void tn_loop_unwatch(struct tn_loop *loop, int fd)
{
	struct watch *w = find_watch(loop, fd);

	if (w)
		w->gone = true;
}

uint64_t tn_loop_timer(struct tn_loop *loop, uint64_t ms, tn_loop_timer_fn fn, void *ctx)
{
	if (loop->ntimers == loop->captimers) {
		loop->captimers = loop->captimers ? 2 * loop->captimers : 8;
		loop->timers = xrealloc(loop->timers, loop->captimers * sizeof *loop->timers);
	}
	loop->timers[loop->ntimers++] = (struct timer){++loop->next_id, tn_loop_now_ms() + ms, fn,
						      ctx};
	return loop->next_id;
}

void tn_loop_cancel(struct tn_loop *loop, uint64_t id)
{
	for (size_t i = 0; id && i < loop->ntimers; i++)
		if (loop->timers[i].id == id) {
			loop->timers[i] = loop->timers[--loop->ntimers];
			return;
		}
}

void tn_loop_transfer(struct tn_loop *loop, CURL *easy, tn_loop_done_fn fn, void *ctx)
{
	if (loop->ntransfers == loop->captransfers) {
		loop->captransfers = loop->captransfers ? 2 * loop->captransfers : 4;
		loop->transfers =
			xrealloc(loop->transfers, loop->captransfers * sizeof *loop->transfers);
	}
	loop->transfers[loop->ntransfers++] = (struct transfer){easy, fn, ctx};
	curl_multi_add_handle(loop->multi, easy);
}

/* Forgets the transfer of easy; returns it (copied) for its callback. */
static bool take_transfer(struct tn_loop *loop, CURL *easy, struct transfer *out)
{
	for (size_t i = 0; i < loop->ntransfers; i++)
		if (loop->transfers[i].easy == easy) {
			*out = loop->transfers[i];
			loop->transfers[i] = loop->transfers[--loop->ntransfers];
			curl_multi_remove_handle(loop->multi, easy);
			return true;
		}
	return false;
}

void tn_loop_abort_transfer(struct tn_loop *loop, CURL *easy)
{
	struct transfer t;

	take_transfer(loop, easy, &t);
}

static int wait_ms(struct tn_loop *loop, int max_ms)
{
	uint64_t now = tn_loop_now_ms();
	long curl_ms = -1;
	int ms = max_ms < 0 || max_ms > MAX_WAIT_MS ? MAX_WAIT_MS : max_ms;

	for (size_t i = 0; i < loop->ntimers; i++) {
		uint64_t due = loop->timers[i].due;

		if (due <= now)
			return 0;
		if (due - now < (uint64_t)ms)
			ms = (int)(due - now);
	}
	curl_multi_timeout(loop->multi, &curl_ms);
	if (curl_ms >= 0 && curl_ms < ms)
		ms = (int)curl_ms;
	return ms;
}

static void run_timers(struct tn_loop *loop)
{
	uint64_t now = tn_loop_now_ms();

	/* A callback may add or cancel timers: restart the scan after each. */
	for (size_t i = 0; i < loop->ntimers;) {
		if (loop->timers[i].due > now) {
			i++;
			continue;
		}
		{
			struct timer t = loop->timers[i];

			loop->timers[i] = loop->timers[--loop->ntimers];
			t.fn(t.ctx);
			i = 0;
		}
	}
}

static void run_transfers(struct tn_loop *loop)
{
	int running, left;
	CURLMsg *msg;

	curl_multi_perform(loop->multi, &running);
	while ((msg = curl_multi_info_read(loop->multi, &left))) {
		struct transfer t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (take_transfer(loop, msg->easy_handle, &t))
			t.fn(t.ctx, t.easy, msg->data.result);
	}
}

bool tn_loop_run_once(struct tn_loop *loop, int max_ms)
{
	struct curl_waitfd *fds = NULL;
	size_t n = loop->nwatches;
	int numfds = 0;

	if (loop->stopping)
		return false;
	if (n)
		fds = xcalloc(n, sizeof *fds);
	for (size_t i = 0; i < n; i++) {
		fds[i].fd = loop->watches[i].fd;
		fds[i].events = loop->watches[i].gone ? 0 : loop->watches[i].events;
	}
	curl_multi_poll(loop->multi, fds, (unsigned)n, wait_ms(loop, max_ms), &numfds);
	run_transfers(loop);
	/* Dispatch by position: callbacks only append or mark gone. */
	for (size_t i = 0; i < n; i++) {
		struct watch w = loop->watches[i];

		if (!w.gone && fds[i].revents)
			w.fn(w.ctx, w.fd, fds[i].revents);
	}
	free(fds);
	{
		size_t j = 0;

		for (size_t i = 0; i < loop->nwatches; i++)
			if (!loop->watches[i].gone)
				loop->watches[j++] = loop->watches[i];
		loop->nwatches = j;
	}
	run_timers(loop);
	return !loop->stopping;
}

void tn_loop_run(struct tn_loop *loop)
{
	while (tn_loop_run_once(loop, MAX_WAIT_MS))
		;
}

void tn_loop_stop(struct tn_loop *loop)
{
	loop->stopping = 1;
	curl_multi_wakeup(loop->multi);
}
