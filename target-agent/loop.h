/* loop.h - the agent's one event loop: file descriptors, timers and
 * libcurl transfers, all waited for in one curl_multi_poll() call, so the
 * agent is a single thread that never blocks on any one thing. */
#ifndef TN_LOOP_H
#define TN_LOOP_H

#include <curl/curl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

struct tn_loop;

/* revents as poll(2) reports them (POLLIN, POLLOUT, POLLERR, POLLHUP). */
typedef void (*tn_loop_fd_fn)(void *ctx, int fd, short revents);
typedef void (*tn_loop_timer_fn)(void *ctx);
/* A finished transfer: result is curl's, the easy handle is still the
 * caller's (remove it from nothing: the loop has removed it already). */
typedef void (*tn_loop_done_fn)(void *ctx, CURL *easy, CURLcode result);

struct tn_loop *tn_loop_new(void);
/* Removes every transfer still running (their done callbacks are not
 * called) and frees the loop. */
void tn_loop_free(struct tn_loop *loop);

/* Watches fd for events (POLLIN and/or POLLOUT); one watch per fd.
 * Aborts on a second watch of the same fd (a programming error). */
void tn_loop_watch(struct tn_loop *loop, int fd, short events, tn_loop_fd_fn fn, void *ctx);
/* Changes the events of a watched fd. */
void tn_loop_modify(struct tn_loop *loop, int fd, short events);
/* Stops watching fd (safe from inside its own callback). */
void tn_loop_unwatch(struct tn_loop *loop, int fd);

/* Calls fn once, after ms milliseconds.  Returns an id (never 0). */
uint64_t tn_loop_timer(struct tn_loop *loop, uint64_t ms, tn_loop_timer_fn fn, void *ctx);
/* Cancels a timer that has not fired; 0 and unknown ids are ignored. */
void tn_loop_cancel(struct tn_loop *loop, uint64_t id);

/* Runs an easy handle inside the loop; fn is called when it ends. */
void tn_loop_transfer(struct tn_loop *loop, CURL *easy, tn_loop_done_fn fn, void *ctx);
/* Stops a running transfer without calling its done callback. */
void tn_loop_abort_transfer(struct tn_loop *loop, CURL *easy);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t tn_loop_now_ms(void);

/* Waits at most max_ms for anything, then runs what is due.  Returns
 * false once tn_loop_stop() was called. */
bool tn_loop_run_once(struct tn_loop *loop, int max_ms);
/* Runs until tn_loop_stop(). */
void tn_loop_run(struct tn_loop *loop);
/* Makes the loop return (safe from a signal handler: it only sets a flag
 * and wakes the poll). */
void tn_loop_stop(struct tn_loop *loop);

#endif
