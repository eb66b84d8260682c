/* supervisor.h - runs a release's bundles as processes inside the agent's
 * loop (DESIGN §2 "Supervisor"): start in the given order, restart crashes
 * with capped backoff, stop in reverse with SIGTERM then SIGKILL, and adopt
 * bundles an earlier agent left running.
 *
 * Each bundle runs in its own session and process group (setsid), with
 * stdin from /dev/null and stdout and stderr appended to
 * STATE/logs/NAME.log, so it outlives the agent.  STATE/run/NAME.pid holds
 * "PID STARTTIME\n" (STARTTIME: field 22 of /proc/PID/stat) while it runs;
 * a new supervisor adopts the process when the pid is alive with that start
 * time, and removes the file otherwise.  Processes are watched with pidfds
 * registered in the loop: nothing here sleeps or waits.
 *
 * Completion callbacks (tn_sup_done_fn) are always called from the loop,
 * never from inside the call that asked for them.  Events are reported
 * where they happen: from the loop, and also from inside
 * tn_supervisor_start (STARTED, FAILED) and tn_supervisor_stop (STOPPED of
 * a bundle that was waiting for a restart); TN_SUP_ADOPTED is reported from
 * the loop.  Callbacks must not free the supervisor, except the done
 * callback of tn_supervisor_stop_all. */
#ifndef TN_SUPERVISOR_H
#define TN_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "loop.h"

/* The OSGi lifecycle states the agent reports per bundle (DESIGN §2). */
enum tn_bundle_state {
	TN_BUNDLE_INSTALLED,   /* known, never started by this supervisor */
	TN_BUNDLE_RESOLVED,    /* stopped (on request, or exited during a stop) */
	TN_BUNDLE_STARTING,    /* running (or waiting for a restart), not yet
				  confirmed by tn_supervisor_set_active */
	TN_BUNDLE_ACTIVE,      /* running and confirmed healthy by the caller */
	TN_BUNDLE_STOPPING,    /* SIGTERM sent, waiting for the group to end */
	TN_BUNDLE_UNINSTALLED, /* removed with tn_supervisor_uninstall */
	TN_BUNDLE_FAILED,      /* gave up: see the reason */
};

/* "INSTALLED", "RESOLVED", ... as reported. */
const char *tn_bundle_state_name(enum tn_bundle_state state);

/* One bundle to run.  Everything is copied by tn_supervisor_new. */
struct tn_bundle_spec {
	const char *name; /* one safe path segment: names the log and pid files */
	/* Rendered, NULL-terminated.  argv[0] with a '/' is relative to cwd
	 * (or absolute); without one it is looked up in PATH (absolute
	 * entries only). */
	const char *const *argv;
	const char *cwd;	/* the bundle's directory in the release */
	const char *const *env; /* extra "K=V", NULL-terminated, or NULL */
	int stop_timeout_s;	/* SIGTERM to SIGKILL; <= 0 means 10 */
};

/* Tunables; zero fields take the production default in brackets. */
struct tn_supervisor_config {
	const char *state_dir;	  /* required: logs/ and run/ go below */
	uint64_t backoff_base_ms; /* first restart delay [500], doubling */
	uint64_t backoff_cap_ms;  /* [30000] */
	/* More than restart_limit restarts within restart_window_ms: FAILED.
	 * A run that lasted restart_window_ms also resets the backoff. */
	unsigned restart_limit;	    /* [5] */
	uint64_t restart_window_ms; /* [60000] */
	uint64_t log_max_bytes;	    /* rotate NAME.log to NAME.log.1 at a start
				       when over this [8 MiB] */
	/* Checking that the whole group has ended after the leader exited
	 * during a stop. */
	uint64_t group_poll_ms; /* [50] */
};

/* A bundle as the agent reports it.  Strings are borrowed from the
 * supervisor: valid until the next call into it or the next loop
 * iteration. */
struct tn_bundle_info {
	const char *name;
	enum tn_bundle_state state;
	unsigned restarts; /* automatic restarts since the last explicit start */
	pid_t pid;	   /* 0 when not running */
	bool adopted;	   /* started by an earlier agent: not our child, so
			      its exit status is unknown */
	/* The last exit or failure, for reports: "exited with status 3",
	 * "killed by signal 9", "exited (status unknown: adopted process)",
	 * "restarted 5 times within 60 s; last: exited with status 1",
	 * "exec bin/web: No such file or directory"; "" when none. */
	const char *reason;
	uint64_t restart_in_ms; /* with TN_SUP_EXITED: the backoff before the restart */
	const char *log_path;	/* STATE/logs/NAME.log */
};

enum tn_sup_event {
	TN_SUP_STARTED, /* a process was spawned (info.restarts > 0: a restart) */
	TN_SUP_ADOPTED, /* a process left by an earlier agent was taken over */
	TN_SUP_EXITED,	/* it exited on its own; a restart is scheduled */
	TN_SUP_FAILED,	/* gave up: restart limit, or it could not be spawned */
	TN_SUP_STOPPED, /* stopped on request (or gone while stopping all) */
};

const char *tn_sup_event_name(enum tn_sup_event ev);

/* Called for every event; info is borrowed for the call. */
typedef void (*tn_sup_event_fn)(void *ctx, enum tn_sup_event ev, const struct tn_bundle_info *info);
/* A stop (or stop-all) has completed. */
typedef void (*tn_sup_done_fn)(void *ctx);

struct tn_supervisor;

/* Makes a supervisor for specs[0..n) (copied; names must be unique), in
 * dependency order.  Creates STATE/logs and STATE/run, then adopts every
 * bundle whose pid file names a live process with the recorded start time
 * (state STARTING, adopted, TN_SUP_ADOPTED reported from the loop) and
 * removes stale pid files (those bundles are INSTALLED).  event_fn may be
 * NULL.  *out is freed with tn_supervisor_free. */
int tn_supervisor_new(struct tn_loop *loop, const struct tn_supervisor_config *config,
		      const struct tn_bundle_spec *specs, size_t n, tn_sup_event_fn event_fn,
		      void *ctx, struct tn_supervisor **out, struct tn_error *err) TN_MUST_CHECK;

/* Forgets everything WITHOUT stopping any process and without touching the
 * pid files: the bundles keep running for the next supervisor (or agent)
 * to adopt.  Pending callbacks are dropped.  NULL is a no-op. */
void tn_supervisor_free(struct tn_supervisor *sup);

/* Starts one bundle (INSTALLED, RESOLVED or FAILED; an explicit start
 * resets the restart count).  A running or restarting bundle is left as it
 * is (0).  TN_E_CONFLICT while it is stopping or a stop-all runs,
 * TN_E_NOT_FOUND for an unknown name.  A spawn that fails before exec (no
 * such cwd or program, log not writable) puts the bundle in FAILED and
 * returns the error; an exec failure is seen from the loop (FAILED). */
int tn_supervisor_start(struct tn_supervisor *sup, const char *name,
			struct tn_error *err) TN_MUST_CHECK;
/* Starts every bundle in the given order; stops at the first error (the
 * bundles already started keep running). */
int tn_supervisor_start_all(struct tn_supervisor *sup, struct tn_error *err) TN_MUST_CHECK;

/* STARTING -> ACTIVE: the caller's health tracker says the bundle is
 * healthy.  Ignored in any other state. */
void tn_supervisor_set_active(struct tn_supervisor *sup, const char *name);

/* Stops one bundle: SIGTERM to its process group, SIGKILL to the group
 * after its stop_timeout_s, done once the leader has exited and the group
 * is empty (or was SIGKILLed).  A bundle waiting for a restart is simply
 * not restarted.  done (may be NULL) is called from the loop when it is
 * down, also when it was not running.  TN_E_NOT_FOUND for an unknown name. */
int tn_supervisor_stop(struct tn_supervisor *sup, const char *name, tn_sup_done_fn done, void *ctx,
		       struct tn_error *err) TN_MUST_CHECK;
/* Stops every bundle, one after another, in REVERSE of the given order
 * (dependants before what they depend on); no bundle is restarted
 * meanwhile.  done is called once, from the loop, when all are down.  A
 * second stop-all while one runs is TN_E_CONFLICT. */
int tn_supervisor_stop_all(struct tn_supervisor *sup, tn_sup_done_fn done, void *ctx,
			   struct tn_error *err) TN_MUST_CHECK;

/* A stopped (INSTALLED, RESOLVED, FAILED) bundle becomes UNINSTALLED; its
 * log stays.  TN_E_CONFLICT while it runs. */
int tn_supervisor_uninstall(struct tn_supervisor *sup, const char *name,
			    struct tn_error *err) TN_MUST_CHECK;

/* Queries.  count/get iterate in the given order; get and find fill *out
 * (strings borrowed, see struct tn_bundle_info) and return false past the
 * end / for an unknown name. */
size_t tn_supervisor_count(const struct tn_supervisor *sup);
bool tn_supervisor_get(const struct tn_supervisor *sup, size_t i, struct tn_bundle_info *out);
bool tn_supervisor_find(const struct tn_supervisor *sup, const char *name,
			struct tn_bundle_info *out);
/* true when no bundle is running, stopping or waiting for a restart. */
bool tn_supervisor_all_down(const struct tn_supervisor *sup);

#define TN_SUPERVISOR_TAIL_DEFAULT 4096

/* The last max bytes (at most 1 MiB) of the bundle's log, for failure
 * reports; when the cut falls inside a line, that partial first line is
 * dropped.  A missing log is an empty tail.  *out is caller-freed and
 * NUL-terminated. */
int tn_supervisor_log_tail(const struct tn_supervisor *sup, const char *name, size_t max,
			   char **out, size_t *len, struct tn_error *err) TN_MUST_CHECK;

#endif
