/* node.h - a node that runs on this host, for the providers that start
 * agents here (local, netns): its directory DATA/nodes/<target id>/ (the
 * agent's state directory, its log, and node.json: what the provider
 * recorded of it), the agent started detached from the server, and the
 * teardown of everything the node ran.
 *
 * The directory is the provider's record: a restarted tender-server finds
 * its nodes there (they run on, detached), and a node is gone once its
 * directory is. */
#ifndef TN_NODE_H
#define TN_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "provider.h"

/* Whether id can name a node directory: a target id ("t-" and [a-z0-9]). */
bool tn_node_id_valid(const char *id);

/* DATA/nodes (caller frees). */
char *tn_node_root(const char *data_dir);
/* DATA/nodes/<id> (caller frees). */
char *tn_node_dir(const char *data_dir, const char *id);

/* node.json of a node directory: written atomically; read gives
 * TN_E_NOT_FOUND when the node has none.  *out is caller-decref'd. */
int tn_node_record_write(const char *dir, json_t *record, struct tn_error *err) TN_MUST_CHECK;
int tn_node_record_read(const char *dir, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* Writes the node's enrollment token to DIR/enroll-token (0600) for the
 * agent's --enroll-token-file, so that it never shows in `ps`; *path is
 * the file (caller frees).  The agent removes it once enrolled. */
int tn_node_token_write(const char *dir, const char *token, char **path,
			struct tn_error *err) TN_MUST_CHECK;

/* Calls fn for every node directory under DATA/nodes that has a record
 * (id and record borrowed for the call). */
typedef void (*tn_node_fn)(void *ctx, const char *id, json_t *record);
void tn_node_each(const char *data_dir, tn_node_fn fn, void *ctx);

/* Starts argv (argv[0] a path) detached from the server: its own session,
 * cwd dir, stdin /dev/null, stdout and stderr appended to dir/agent.log,
 * no other descriptor, default signal handling.  *pid and *start_time
 * (field 22 of /proc/PID/stat) identify it later.  The server reaps it
 * with tn_node_reap while it runs; after a restart, init does. */
int tn_node_spawn(const char *dir, const char *const *argv, pid_t *pid, uint64_t *start_time,
		  struct tn_error *err) TN_MUST_CHECK;
/* Reaps the agents this server started that have exited. */
void tn_node_reap(void);

/* Whether pid runs and is the process that started at start_time (a
 * zombie does not run). */
bool tn_node_alive(pid_t pid, uint64_t start_time);

/* Ends everything of the node: the agent (pid and start time as recorded;
 * pid 0 for none), the bundles of its state directory (dir/state/run/
 * *.pid: "PID STARTTIME", each its process group), the processes listed
 * in extra (NULL or 0-terminated: a namespace's), and any process whose
 * working directory is inside dir.  SIGTERM, then SIGKILL after grace_ms;
 * TN_E_IO naming what still runs after that. */
int tn_node_kill(const char *dir, pid_t agent, uint64_t start_time, const pid_t *extra,
		 unsigned grace_ms, struct tn_error *err) TN_MUST_CHECK;

/* The last lines of dir/agent.log (at most max bytes, one line), for a
 * message; "" when there is none.  Writes into out. */
void tn_node_log_tail(const char *dir, char *out, size_t max);

/* What every provider checks before booting a node: a valid target id
 * and an agent binary that can be run (messages start with provider). */
int tn_node_boot_check(const char *provider, const char *agent, const char *target_id,
		       struct tn_error *err) TN_MUST_CHECK;

/* The status of the node in data_dir's node directory of target id: running
 * while its recorded agent lives (start time checked), else gone with the
 * tail of its log as the detail. */
void tn_node_status(const char *data_dir, const char *id, struct tn_instance_status *out);

/* The tender-agent beside the running tender-server (/proc/self/exe's
 * directory); caller frees. */
char *tn_node_default_agent(void);

#endif
