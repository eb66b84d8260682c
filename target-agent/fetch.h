/* fetch.h - the agent's content-addressed blob cache and the downloads that
 * fill it, run inside the event loop: resumable (Range), hashed while
 * received, verified, fsynced and renamed into place, never half visible.
 *
 * On disk, under the state directory:
 *   cache/sha256/<hex>         verified blobs (bundle zips)
 *   cache/partial/<hex>.part   a download in progress or cut short; the
 *                              next attempt resumes it with a Range request */
#ifndef TN_FETCH_H
#define TN_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "desired.h"
#include "error.h"
#include "loop.h"

struct tn_fetch;
struct tn_fetch_job;

/* Zero means the default given after each field. */
struct tn_fetch_opts {
	const char *state_dir;	/* required; copied */
	const char *server_url; /* required, "http://host:port", no trailing '/'; copied */
	const char *token;	/* the target token (Authorization: Bearer); copied */
	/* PEM file of the CAs that sign the server's certificate (NULL: the
	 * system's); copied */
	const char *cacert;
	unsigned max_parallel;	/* downloads at once: 2 */
	/* Failed transfers (connection cut, timeout, 5xx other than 503) of
	 * one blob before its jobs fail: 5.  503 + Retry-After is the server
	 * pacing us and counts against a separate cap of 100 waits. */
	unsigned max_attempts;
	long connect_timeout_s;	 /* 10 */
	/* A transfer slower than low_speed_bytes per second for
	 * low_speed_time_s is cut (100 and 30).  No total timeout: blobs can
	 * be big and links slow. */
	long low_speed_bytes;
	long low_speed_time_s;
	unsigned backoff_ms;	 /* first retry delay, doubled at each failure: 1000 */
	unsigned backoff_max_ms; /* 60000 */
	unsigned jitter_ms;	 /* up to this much added to every wait: 1000 */
};

/* Creates the cache directories under opts->state_dir.  *out is the
 * caller's (tn_fetch_free); loop is borrowed and must outlive it. */
int tn_fetch_new(struct tn_loop *loop, const struct tn_fetch_opts *opts, struct tn_fetch **out,
		 struct tn_error *err) TN_MUST_CHECK;
/* Cancels every job (their done callbacks are not called), stops their
 * transfers (keeping the .part files) and frees f.  Not from inside one of
 * f's callbacks. */
void tn_fetch_free(struct tn_fetch *f);

/* A new token (after enrolling again); later requests use it. */
void tn_fetch_set_token(struct tn_fetch *f, const char *token);

/* done counts bytes of the job's blobs in the cache or in their .part
 * files, total is the sum of their sizes.  Called from the loop (never
 * from inside libcurl), at most about every 200 ms while bytes arrive; the
 * end is told by done alone.  May cancel jobs or start others; must not
 * free f. */
typedef void (*tn_fetch_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* The job ended: rc 0 when every blob is in the cache, else negative with
 * err saying which blob and why ("blob <hex>: sha256 mismatch (tampered
 * or corrupt)", "blob <hex>: HTTP 404", "blob <hex>: download failed
 * (attempt 5 of 5): ...").  err is borrowed for the call.  The job is freed before the
 * call: do not cancel it.  May free f. */
typedef void (*tn_fetch_done_fn)(void *ctx, int rc, const struct tn_error *err);

/* Makes sure every blob of r is in the cache, downloading what is missing
 * (at most max_parallel at once across all jobs; a blob two jobs need is
 * fetched once).  r is borrowed for the call only (the job copies what it
 * needs); progress may be NULL.  done is always called later from the
 * loop, never from inside this call, even when nothing was missing.
 * Returns the job (owned by f until done or tn_fetch_cancel). */
struct tn_fetch_job *tn_fetch_release(struct tn_fetch *f, const struct tn_desired_release *r,
				      tn_fetch_progress_fn progress, tn_fetch_done_fn done,
				      void *ctx);
/* Ends a job without calling its done callback; a transfer no other job
 * needs is stopped, its .part kept for later.  job is freed. */
void tn_fetch_cancel(struct tn_fetch_job *job);

/* STATE/cache/sha256/<hex>; caller frees. */
char *tn_fetch_blob_path(const char *state_dir, const char *hex);
/* Whether the blob is in the cache with the expected size. */
bool tn_fetch_have(const char *state_dir, const char *hex, uint64_t size);

/* Removes cached blobs and .part files that no release in keep (borrowed,
 * n entries) and no running job needs. */
int tn_fetch_prune(struct tn_fetch *f, const struct tn_desired_release *const *keep, size_t n,
		   struct tn_error *err) TN_MUST_CHECK;

#endif
