/* spawn.h - starting and watching child processes for the supervisor and
 * the exec probe: fork+exec into a new session with chosen stdio and no
 * other inherited fd, a pidfd to watch each one in the loop, the exec
 * error carried back through a close-on-exec pipe, and adoption of a
 * process an earlier agent started (checked by its start time). */
#ifndef TN_SPAWN_H
#define TN_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct tn_spawn {
	/* NULL-terminated.  argv[0] with a '/' is taken relative to cwd (or
	 * absolute); without one it is looked up in PATH, absolute entries
	 * only (a relative entry would mean something else after chdir). */
	const char *const *argv;
	const char *cwd;	/* NULL: the agent's own */
	const char *const *env; /* extra "K=V" over the agent's, or NULL */
	/* Borrowed; -1 means /dev/null.  The child gets copies on 0, 1, 2. */
	int stdin_fd, stdout_fd, stderr_fd;
};

/* A process being watched.  pidfd turns readable (POLLIN) when it ends. */
struct tn_child {
	pid_t pid;
	int pidfd;
	int errfd;	     /* ours only: read end of the exec-error pipe */
	pid_t pgid;	     /* == pid when it leads its group, else 0 */
	uint64_t start_time; /* field 22 of /proc/PID/stat */
	bool ours;	     /* our child: its status can be reaped */
};

/* How a process ended. */
struct tn_exit {
	bool known;	   /* false: not our child, the status is lost */
	int code;	   /* exit status when !signal */
	int signal;	   /* the killing signal, or 0 */
	int exec_errno;	   /* non-zero: the child never ran the program */
	bool chdir_failed; /* exec_errno came from chdir(cwd), not execve */
};

/* Starts s in a new session (it leads its own process group, pgid == pid),
 * with signal dispositions and mask reset and every fd but 0, 1, 2 closed.
 * Failures before the fork (no such program, no pipe) are returned with a
 * message naming the program; failures in the child (chdir, execve) are
 * reported by tn_child_reap.  Release *out with tn_child_reap (after the
 * pidfd turned readable), tn_child_kill_reap or tn_child_forget. */
int tn_spawn_start(const struct tn_spawn *s, struct tn_child *out,
		   struct tn_error *err) TN_MUST_CHECK;

/* Takes over pid when it is alive, is not this process and started at
 * start_time.  Returns 1 and fills *out (ours = false) when adopted, 0 when
 * the pid names something else or nothing (stale), < 0 on an unexpected
 * error. */
int tn_child_adopt(pid_t pid, uint64_t start_time, struct tn_child *out,
		   struct tn_error *err) TN_MUST_CHECK;

/* Once the pidfd was readable: collects the status (for our child) and the
 * exec error, and closes the fds.  c->pid is 0 afterwards. */
void tn_child_reap(struct tn_child *c, struct tn_exit *out);

/* SIGKILL to the group, then reaps (the only wait here, and it lasts as
 * long as the kernel needs to end a killed process).  For cancelling short
 * helpers like exec probes; never for bundles. */
void tn_child_kill_reap(struct tn_child *c);

/* Closes the fds and leaves the process running (and, if ours, a zombie
 * once it ends, to be reaped by whoever adopts it next). */
void tn_child_forget(struct tn_child *c);

/* Sends sig to c's process group when c leads one, else (or while a fresh
 * child has not reached setsid yet) to c alone.  Returns 0 or -errno
 * (-ESRCH: nobody left). */
int tn_child_signal_group(const struct tn_child *c, int sig);

/* Sends sig to the group pgid; for what remains after its leader ended.
 * Returns 0 or -errno. */
int tn_group_signal(pid_t pgid, int sig);
/* Whether any process of the group pgid remains. */
bool tn_group_alive(pid_t pgid);

/* "exited with status 3", "killed by signal 9 (SIGKILL)", "exec bin/web: No
 * such file or directory" (argv0 names the program), "exited (status unknown:
 * adopted process)". */
void tn_exit_describe(const struct tn_exit *e, const char *argv0, const char *cwd, char *buf,
		      size_t size);

/* Field 22 of /proc/PID/stat (clock ticks since boot at which pid started).
 * Returns 0, or -1 when there is no such process or the file is odd. */
int tn_proc_start_time(pid_t pid, uint64_t *out);

#endif
