/* nodes.h - integration-test support for nodes the test does not start
 * itself (agents a provider starts detached from the server, agents
 * installed by hand): finding and killing every process whose working
 * directory is inside a directory, plain HTTP GETs of a node's port,
 * network namespaces and links found by name prefix, and a guard that
 * kills and removes all of it when the test program exits or aborts. */
#ifndef TN_NODES_H
#define TN_NODES_H

#include <stddef.h>

/* The number of processes (zombies aside) whose working directory is dir
 * or inside it. */
size_t th_procs_under(const char *dir);
/* How many of them have text in their command line (what `ps` shows). */
size_t th_cmdline_under(const char *dir, const char *text);
/* SIGKILLs them until none is left (bounded: 10 s); returns how many are
 * left. */
size_t th_kill_under(const char *dir);

/* GET url (a short timeout, no retry): the status, 0 when nothing
 * answered; the body (cut to size - 1) into body when not NULL. */
long th_get(const char *url, char *body, size_t size);

/* Network namespaces (/run/netns) and links (/sys/class/net) whose name
 * starts with prefix: the count, their names (space-separated) into names
 * when not NULL. */
size_t th_netns_leftovers(const char *prefix, char *names, size_t size);
/* Deletes them (`ip netns del`, `ip link del`). */
void th_netns_remove(const char *prefix);

/* Runs argv (argv[0] a path) with stdout and stderr appended to log_path
 * (NULL: /dev/null) and waits up to deadline_s for it; the exit status,
 * or -1 when it had to be killed. */
int th_run(const char *const *argv, const char *log_path, double deadline_s);

/* What is cleaned when the program exits or aborts (copied): processes
 * under dir, namespaces and links under prefix. */
void th_guard_dir(const char *dir);
void th_guard_prefix(const char *prefix);

#endif
