/* harness.h - integration-test support: a real tender-server process on a
 * free loopback port with a temporary data directory, and an HTTP client
 * (libcurl) to talk to it.  Every process started here is killed when the
 * test program exits, even when a test fails. */
#ifndef TN_HARNESS_H
#define TN_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct th_server {
	pid_t pid;
	char *data_dir;    /* temporary; removed by th_server_destroy */
	char *url;         /* "http://127.0.0.1:PORT" */
	char *admin_token;
	char *log_path;    /* the server's stderr */
	/* A server started with --tls-cert: the CA file th_http verifies it
	 * with (borrowed; set after th_server_start, kept across restarts). */
	const char *cacert;
};

/* Seconds of CLOCK_MONOTONIC, for deadlines; a pause of ms milliseconds
 * between the polls of a wait (never as synchronisation by itself). */
double th_now_s(void);
void th_pause_ms(long ms);
/* The string value of obj[key], or NULL (borrowed). */
const char *th_str(json_t *obj, const char *key);

/* Starts tender-server (from the build tree) on 127.0.0.1 with a fresh
 * data directory, waits (with a deadline) until it serves /healthz, and
 * reads the admin token.  extra_args is NULL-terminated or NULL.  Aborts
 * the test program when the server does not come up, printing its log. */
void th_server_start(struct th_server *s, const char *const *extra_args);
/* Starts the server again on the same data directory (after a stop or a
 * kill), listening on the same port (the agents keep its URL); the admin
 * token is kept. */
void th_server_restart(struct th_server *s, const char *const *extra_args);
/* SIGTERM, then waits (bounded) for the exit; returns the exit status. */
int th_server_stop(struct th_server *s);
/* Sanitizer builds: whether a server that exited with status (from
 * th_server_stop) exited 0 with no sanitizer report in its log; when not,
 * prints the status and the end of the log (where a report is) to stderr.
 * Use: assert_true(th_server_exited_cleanly(s, th_server_stop(s))). */
bool th_server_exited_cleanly(const struct th_server *s, int status);
/* SIGKILL and reap. */
void th_server_kill9(struct th_server *s);
/* Stops the server if it runs and removes its data directory. */
void th_server_destroy(struct th_server *s);

/* Number of regular files under dir (recursively); 0 when dir is missing. */
size_t th_count_files(const char *dir);

struct th_response {
	long status;
	char *body;        /* NUL-terminated */
	size_t len;
	json_t *json;      /* the body parsed, or NULL */
	char *headers;     /* raw header block */
};

struct th_request {
	const char *method;       /* default GET */
	const char *token;        /* NULL: no Authorization header */
	const char *content_type; /* default application/json when a body is given */
	const void *body;
	size_t len;
	const char *upload_file;  /* stream this file as the body instead */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
};

/* Performs one request against s (path starts with '/'); aborts when the
 * server cannot be reached at all.  Free the response with
 * th_response_free. */
void th_http(struct th_server *s, const char *path, const struct th_request *req,
	     struct th_response *out);
void th_response_free(struct th_response *r);
/* The error message of an {"error": {...}} body, or "". */
const char *th_error_message(const struct th_response *r);
const char *th_error_code(const struct th_response *r);
/* The value of a response header (case-insensitive), copied into buf. */
const char *th_header(const struct th_response *r, const char *name, char *buf, size_t size);

/* Convenience: a JSON body request. */
void th_json(struct th_server *s, const char *method, const char *path, const char *token,
	     const char *json_body, struct th_response *out);

/* Creates an API token with role and returns its secret (caller frees). */
char *th_make_token(struct th_server *s, const char *name, const char *role);

/* The id of the newest audit event (0 when none). */
long long th_last_event_id(struct th_server *s);
/* The audit events after id, oldest first (a JSON array the caller
 * decrefs). */
json_t *th_events_after(struct th_server *s, long long id);

/* Sends `request` as is (request line, headers, and as much of a body as
 * the test chooses) on a new connection, sends nothing more, and reads one
 * response until it is complete (Content-Length) or the server closes the
 * connection, within deadline_s.  Shows that a request is answered before
 * its body is sent.  Returns the status, 0 when no complete status line
 * came by the deadline; *out receives the raw response (caller frees). */
long th_raw_http(struct th_server *s, const void *request, size_t len, double deadline_s,
		 char **out);

/* A temporary directory (caller removes it with th_rmtree and frees). */
char *th_tmpdir(void);
void th_rmtree(const char *dir);

/* ------------------------------------------------------------ child programs */

/* A program run as a child (the tender CLI, or any other) with its output
 * captured.  Children die with the test program (PR_SET_PDEATHSIG). */
struct th_run {
	pid_t pid;
	int out_fd, err_fd; /* -1 once at end of file */
	char *out, *err;    /* NUL-terminated: what was read so far */
	size_t out_len, err_len;
	int status;         /* exit status, 128 + signal, -1 while running */
};

/* Starts path with args (NULL-terminated, argv[0] not included) and
 * exactly the environment env ("NAME=value", NULL-terminated; the test
 * program's sanitizer options are passed on too).  stdin is /dev/null;
 * with tty_stderr the child's stderr is a pseudo-terminal 100 columns wide
 * (read into err), else a pipe. */
void th_run_start(struct th_run *r, const char *path, const char *const *args,
		  const char *const *env, bool tty_stderr);
/* Reads the child's output until its stdout (err_too: or stderr) holds
 * needle, or deadline_s passes; true when it does. */
bool th_run_wait_for(struct th_run *r, const char *needle, bool err_too, double deadline_s);
/* Reads until the child closes both streams and exits; returns its exit
 * status (128 + signal).  Past deadline_s the child is killed and -1
 * returned. */
int th_run_finish(struct th_run *r, double deadline_s);
void th_run_free(struct th_run *r);

/* The tender CLI of the build tree: start + finish within 60 s. */
int th_tender(struct th_run *r, const char *const *args, const char *const *env);

/* ------------------------------------------------------------ agents */

/* A tender-agent process of the build tree with its own temporary
 * directory (DIR/state is its --state, DIR/agent.log its stderr and stdout,
 * appended across restarts) and its own block of free loopback ports.
 * Bundles outlive their agent by design (they are in their own sessions):
 * th_agent_destroy, the harness's exit handler and, should the test
 * program itself die without running either (SIGKILL, a sanitizer abort),
 * a guardian process kill every process whose cwd is under the state
 * directory or whose pid a STATE/run/NAME.pid names. */
struct th_agent {
	pid_t pid;
	char *dir;	 /* temporary; removed by th_agent_destroy */
	char *state_dir; /* DIR/state (absolute) */
	char *log_path;	 /* DIR/agent.log */
	char *server_url;
	int port_base;	 /* {{target.port_base}}: the web bundle listens here */
	char *target_id; /* from STATE/agent.json once enrolled */
	char **args;	 /* the extra arguments, kept for restarts */
};

/* The first of n consecutive loopback TCP ports that are free now (each
 * one bound and released), never one handed out before by this process.
 * Picked below the ephemeral range, so that the kernel does not give them
 * to other tests' clients meanwhile. */
int th_port_block(int n);

/* Starts tender-agent --state DIR/state --server URL --enroll-token TOKEN
 * --port-base P --poll-wait 5 [extra_args...] (NULL-terminated or NULL)
 * on a fresh port block, and waits (with a deadline) until it has
 * enrolled: a->target_id is set.  Aborts the program, showing the agent's
 * log, when it exits or does not enroll in time. */
void th_agent_start(struct th_agent *a, const char *server_url, const char *enroll_token,
		    const char *const *extra_args);
/* Starts the agent again on the same state directory (it is enrolled: no
 * token), with the same port block and extra arguments. */
void th_agent_restart(struct th_agent *a);
/* SIGTERM, then waits (bounded) for the exit; returns the exit status
 * (128 + signal when killed).  Bundles keep running. */
int th_agent_stop(struct th_agent *a);
/* SIGKILL and reap: the agent dies mid-step; bundles keep running. */
void th_agent_kill9(struct th_agent *a);
/* Kills the agent, every bundle process it left, and removes its
 * directory.  NULL-safe on a zeroed struct. */
void th_agent_destroy(struct th_agent *a);

/* The live (not zombie) processes whose cwd is under the agent's state
 * directory, or whose pid a STATE/run/NAME.pid names, whose name
 * (/proc/PID/comm) is comm (NULL: any), at most max into pids; returns how
 * many there are. */
size_t th_agent_processes(const struct th_agent *a, const char *comm, pid_t *pids, size_t max);
/* SIGKILLs every such process (and its process group) and waits, bounded,
 * until they are gone; returns how many there were. */
size_t th_agent_kill_bundles(struct th_agent *a);
/* Whether the agent's log holds needle. */
bool th_agent_log_has(const struct th_agent *a, const char *needle);
/* The agent's log (caller frees). */
char *th_agent_log(const struct th_agent *a);

#endif
