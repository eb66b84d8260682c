/* probe.h - health checks of a bundle inside the agent's loop, without
 * blocking (DESIGN §2 "Bundle" health, "Agent phases" Commit): one probe
 * attempt (http, tcp or exec, bounded by a timeout), and a tracker that
 * probes every interval and decides healthy / commit / unhealthy. */
#ifndef TN_PROBE_H
#define TN_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "loop.h"
#include "manifest.h"

/* Whether the bundle's process runs, and which one: its pid, 0 when down.
 * A change of pid is a restart. */
typedef pid_t (*tn_probe_up_fn)(void *ctx);

/* What and how to probe.  Strings are copied by tn_probe_start and
 * tn_health_new. */
struct tn_probe_spec {
	enum tn_probe_kind kind; /* TN_PROBE_NONE: the process staying up */
	const char *http_path;	 /* HTTP: "/healthz" */
	const char *port;	 /* HTTP, TCP: rendered, "8081"; on 127.0.0.1 */
	const char *const *exec; /* EXEC: rendered argv, NULL-terminated */
	const char *cwd;	 /* EXEC: the bundle's directory */
	int interval_ms;	 /* between attempt starts */
	int timeout_ms;		 /* of one attempt */
	int healthy_after;	 /* consecutive passes to be healthy */
	int unhealthy_after;	 /* consecutive failures to be unhealthy after
				    being healthy (liveness); <= 0 means 3 */
	uint64_t deadline_ms;	 /* commit mode: healthy before this, or fail */
	tn_probe_up_fn up;	 /* may be NULL: always up */
	void *up_ctx;
};

/* Fills spec from a manifest's health section (whose timing defaults apply
 * without one, see manifest.h): kind, path, exec, port and times as
 * written.  The templated strings (port, exec) still need the caller's
 * rendered values; cwd, up and up_ctx are the caller's to set. */
void tn_probe_spec_from_manifest(struct tn_probe_spec *spec, const struct tn_manifest_health *h,
				 bool has_health);

/* ------------------------------------------------------------ one attempt */

struct tn_probe;

/* The end of an attempt.  message is borrowed for the call: on a pass
 * "GET /healthz: HTTP 200", "connect 127.0.0.1:8081: ok", "exec check: exit
 * 0"; on a failure "GET /healthz: HTTP 503", "connect 127.0.0.1:8081:
 * Connection refused", "GET /healthz: no status line within 1000 ms",
 * "exec bin/check: exited with status 1: <first line of its output>",
 * "exec bin/check: no result within 1000 ms". */
typedef void (*tn_probe_done_fn)(void *ctx, bool pass, const char *message);

/* Starts one attempt of spec (TN_PROBE_NONE passes when spec->up says up).
 * fn is always called from the loop, exactly once unless the attempt is
 * cancelled; the attempt frees itself after fn returns.  *out (may be
 * NULL) is valid until then.  Fails (TN_E_INVALID) only on a bad spec: a
 * port that is not 1..65535, an empty path or argv. */
int tn_probe_start(struct tn_loop *loop, const struct tn_probe_spec *spec, tn_probe_done_fn fn,
		   void *ctx, struct tn_probe **out, struct tn_error *err) TN_MUST_CHECK;
/* Ends an attempt whose fn was not called yet, without calling it (an exec
 * probe's process group is SIGKILLed and reaped).  NULL is a no-op. */
void tn_probe_cancel(struct tn_probe *p);

/* ------------------------------------------------------------ tracker */

enum tn_health_event {
	TN_HEALTH_COMMIT_OK,   /* commit mode: healthy before the deadline;
				  the tracker goes on in liveness mode */
	TN_HEALTH_COMMIT_FAIL, /* commit mode: the deadline passed first; probing
				  stops */
	TN_HEALTH_HEALTHY,     /* liveness: became healthy */
	TN_HEALTH_UNHEALTHY,   /* liveness: became unhealthy (message says why) */
};

const char *tn_health_event_name(enum tn_health_event ev);

/* message is borrowed for the call: for COMMIT_FAIL "no healthy state within
 * 60 s (1 of 2 passes); last failure: GET /healthz: HTTP 503"; for
 * UNHEALTHY the failure (or "restarted (pid 10 -> 12)"); NULL otherwise.
 * The callback may free the tracker. */
typedef void (*tn_health_fn)(void *ctx, enum tn_health_event ev, const char *message);

struct tn_health;

/* Starts tracking: the first attempt one interval from now, then one per
 * interval (never two at once).  With commit, reports COMMIT_OK as soon as
 * healthy_after consecutive passes are seen, or COMMIT_FAIL at deadline_ms;
 * without, starts in liveness mode, whose first event is HEALTHY or
 * UNHEALTHY.  Liveness: healthy after healthy_after consecutive passes,
 * unhealthy after unhealthy_after consecutive failures or at once when the
 * process restarted (spec->up gave another pid).  *out is freed with
 * tn_health_free. */
int tn_health_new(struct tn_loop *loop, const struct tn_probe_spec *spec, bool commit,
		  tn_health_fn fn, void *ctx, struct tn_health **out,
		  struct tn_error *err) TN_MUST_CHECK;
/* Stops probing (cancelling an attempt in flight); NULL is a no-op. */
void tn_health_free(struct tn_health *h);

bool tn_health_is_healthy(const struct tn_health *h);
/* Consecutive passes so far (reset by a failure or a restart). */
int tn_health_passes(const struct tn_health *h);
/* The last failure message, "" when none; borrowed until the next attempt
 * ends. */
const char *tn_health_last_failure(const struct tn_health *h);

#endif
