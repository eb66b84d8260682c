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
};

/* Starts tender-server (from the build tree) on 127.0.0.1 with a fresh
 * data directory, waits (with a deadline) until it serves /healthz, and
 * reads the admin token.  extra_args is NULL-terminated or NULL.  Aborts
 * the test program when the server does not come up, printing its log. */
void th_server_start(struct th_server *s, const char *const *extra_args);
/* Starts the server again on the same data directory (after a stop or a
 * kill); the admin token is kept. */
void th_server_restart(struct th_server *s, const char *const *extra_args);
/* SIGTERM, then waits (bounded) for the exit; returns the exit status. */
int th_server_stop(struct th_server *s);
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

#endif
