/* node.c - see node.h.  Agents are started with posix_spawn (safe in the
 * threaded server) in their own session; processes are found through
 * /proc and checked against their start time, so that a recycled pid is
 * never signalled. */
#include "node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "xalloc.h"

#define RECORD_MAX (64u << 10)
#define PIDFILE_MAX 128
/* Processes one teardown follows at most (a node's agent and bundles). */
#define VICTIMS_MAX 1024
#define SPAWNED_MAX 4096
#define KILL_WAIT_MS 3000

bool tn_node_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n < 3 || n > 64 || strncmp(id, "t-", 2) != 0)
		return false;
	for (size_t i = 2; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= '0' && id[i] <= '9'))
			return false;
	return true;
}

char *tn_node_root(const char *data_dir)
{
	return xasprintf("%s/nodes", data_dir);
}

char *tn_node_dir(const char *data_dir, const char *id)
{
	return xasprintf("%s/nodes/%s", data_dir, id);
}

int tn_node_record_write(const char *dir, json_t *record, struct tn_error *err)
{
	char *path = xasprintf("%s/node.json", dir);
	char *text = json_dumps(record, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc = tn_write_file_atomic(path, text, strlen(text), 0600, err);

	free(text);
	free(path);
	return rc;
}

int tn_node_token_write(const char *dir, const char *token, char **path, struct tn_error *err)
{
	char *file = xasprintf("%s/enroll-token", dir);
	char *line = xasprintf("%s\n", token);
	int rc = tn_write_file_atomic(file, line, strlen(line), 0600, err);

	free(line);
	if (rc)
		free(file);
	else
		*path = file;
	return rc;
}

int tn_node_record_read(const char *dir, json_t **out, struct tn_error *err)
{
	char *path = xasprintf("%s/node.json", dir);
	char *text = NULL;
	size_t len = 0;
	json_error_t je;
	int rc = tn_read_file(path, RECORD_MAX, &text, &len, err);

	if (rc == 0) {
		*out = json_loadb(text, len, 0, &je);
		if (!json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			rc = tn_fail(err, TN_E_INVALID, "%s: not a node record: %s", path, je.text);
		}
	}
	free(text);
	free(path);
	return rc;
}

void tn_node_each(const char *data_dir, tn_node_fn fn, void *ctx)
{
	char *root = tn_node_root(data_dir);
	DIR *d = opendir(root);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *dir;
		json_t *rec = NULL;

		if (!tn_node_id_valid(e->d_name))
			continue;
		dir = xasprintf("%s/%s", root, e->d_name);
		if (tn_node_record_read(dir, &rec, NULL) == 0)
			fn(ctx, e->d_name, rec);
		json_decref(rec);
		free(dir);
	}
	if (d)
		closedir(d);
	free(root);
}

/* ------------------------------------------------------------ processes */

/* Fields 3 (state) and 22 (starttime) of /proc/PID/stat; -1 when the
 * process does not exist. */
static int proc_stat(pid_t pid, char *state, uint64_t *start_time)
{
	char path[64], buf[1024];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the command (field 2) may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start_time = strtoull(p, NULL, 10);
	return 0;
}

bool tn_node_alive(pid_t pid, uint64_t start_time)
{
	char state;
	uint64_t st;

	if (pid <= 0 || proc_stat(pid, &state, &st) != 0)
		return false;
	return st == start_time && state != 'Z' && state != 'X';
}

static pthread_mutex_t spawned_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t spawned[SPAWNED_MAX];
static size_t nspawned;

void tn_node_reap(void)
{
	pthread_mutex_lock(&spawned_lock);
	for (size_t i = 0; i < nspawned;) {
		pid_t r = waitpid(spawned[i], NULL, WNOHANG);

		if (r == spawned[i] || (r < 0 && errno == ECHILD))
			spawned[i] = spawned[--nspawned];
		else
			i++;
	}
	pthread_mutex_unlock(&spawned_lock);
}

int tn_node_spawn(const char *dir, const char *const *argv, pid_t *pid, uint64_t *start_time,
		  struct tn_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *log = xasprintf("%s/agent.log", dir);
	char state;
	int e, rc = 0;

	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* nothing of the server's (its sockets, its database) goes along */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF);
	e = posix_spawn(pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (e != 0) {
		rc = tn_fail(err, TN_E_IO, "cannot start %s: %s", argv[0], strerror(e));
		goto out;
	}
	if (proc_stat(*pid, &state, start_time) != 0)
		*start_time = 0; /* already gone and reaped: status will say so */
	pthread_mutex_lock(&spawned_lock);
	if (nspawned < SPAWNED_MAX)
		spawned[nspawned++] = *pid;
	pthread_mutex_unlock(&spawned_lock);
out:
	free(log);
	return rc;
}

/* A process to end, with its start time (so a recycled pid is left alone)
 * and whether it leads its own process group (bundles: the whole group
 * goes). */
struct victim {
	pid_t pid;
	uint64_t start;
	bool group;
};

struct victims {
	struct victim v[VICTIMS_MAX];
	size_t n;
};

static void victim_add(struct victims *vs, pid_t pid, uint64_t start, bool group)
{
	for (size_t i = 0; i < vs->n; i++)
		if (vs->v[i].pid == pid)
			return;
	if (vs->n < VICTIMS_MAX && pid > 1 && pid != getpid())
		vs->v[vs->n++] = (struct victim){pid, start, group};
}

static void add_if_alive(struct victims *vs, pid_t pid, bool group)
{
	char state;
	uint64_t start;

	if (pid > 1 && proc_stat(pid, &state, &start) == 0 && state != 'Z')
		victim_add(vs, pid, start, group);
}

/* The bundles of dir/state/run/NAME.pid, alive with their recorded start. */
static void add_bundles(struct victims *vs, const char *dir)
{
	char *run = xasprintf("%s/state/run", dir);
	DIR *d = opendir(run);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *path, *text = NULL;
		size_t len = 0;
		unsigned long long pid = 0;
		uint64_t start = 0;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", run, e->d_name);
		if (tn_read_file(path, PIDFILE_MAX, &text, &len, NULL) == 0 &&
		    sscanf(text, "%llu %" SCNu64, &pid, &start) == 2 && pid > 1 &&
		    pid < (unsigned long long)INT_MAX && tn_node_alive((pid_t)pid, start))
			victim_add(vs, (pid_t)pid, start, true);
		free(text);
		free(path);
	}
	if (d)
		closedir(d);
	free(run);
}

/* Every process whose working directory is dir or below it. */
static void add_by_cwd(struct victims *vs, const char *dir)
{
	size_t dlen = strlen(dir);
	DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[64], cwd[PATH_MAX];
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		ssize_t n;

		if (*end || pid <= 1)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/cwd", pid);
		n = readlink(path, cwd, sizeof cwd - 1);
		if (n <= 0)
			continue;
		cwd[n] = '\0';
		if (strncmp(cwd, dir, dlen) == 0 && (cwd[dlen] == '\0' || cwd[dlen] == '/'))
			add_if_alive(vs, (pid_t)pid, false);
	}
	if (d)
		closedir(d);
}

static void signal_all(const struct victims *vs, int sig)
{
	for (size_t i = 0; i < vs->n; i++) {
		const struct victim *v = &vs->v[i];

		if (!tn_node_alive(v->pid, v->start))
			continue;
		if (v->group)
			kill(-v->pid, sig);
		kill(v->pid, sig);
	}
}

static size_t count_alive(const struct victims *vs)
{
	size_t n = 0;

	tn_node_reap();
	for (size_t i = 0; i < vs->n; i++)
		if (tn_node_alive(vs->v[i].pid, vs->v[i].start))
			n++;
	return n;
}

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Waits until every victim has ended or ms have passed; the count left. */
static size_t wait_gone(const struct victims *vs, unsigned ms)
{
	uint64_t until = tn_clock_ms() + ms;
	size_t left;

	while ((left = count_alive(vs)) && tn_clock_ms() < until)
		pause_ms(20);
	return left;
}

int tn_node_kill(const char *dir, pid_t agent, uint64_t start_time, const pid_t *extra,
		 unsigned grace_ms, struct tn_error *err)
{
	struct victims *vs = xcalloc(1, sizeof *vs);
	char real[PATH_MAX];
	const char *where = realpath(dir, real) ? real : dir;
	size_t left;
	int rc = 0;

	if (tn_node_alive(agent, start_time))
		victim_add(vs, agent, start_time, false);
	add_bundles(vs, dir);
	for (size_t i = 0; extra && extra[i]; i++)
		add_if_alive(vs, extra[i], false);
	add_by_cwd(vs, where);
	signal_all(vs, SIGTERM);
	left = wait_gone(vs, grace_ms);
	/* what a bundle forked meanwhile, and what ignored SIGTERM */
	add_by_cwd(vs, where);
	if (left || count_alive(vs)) {
		signal_all(vs, SIGKILL);
		left = wait_gone(vs, KILL_WAIT_MS);
	}
	if (left)
		rc = tn_fail(err, TN_E_IO, "%zu process(es) of node %s still run after SIGKILL",
			     left, dir);
	free(vs);
	return rc;
}

void tn_node_log_tail(const char *dir, char *out, size_t max)
{
	char *path = xasprintf("%s/agent.log", dir);
	char buf[4096];
	ssize_t n = 0;
	off_t size;
	char *line, *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	out[0] = '\0';
	free(path);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > 0)
		n = pread(fd, buf, sizeof buf - 1,
			  size > (off_t)sizeof buf - 1 ? size - (off_t)(sizeof buf - 1) : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	end = buf + n;
	while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	snprintf(out, max, "%s", line);
}

char *tn_node_default_agent(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (n <= 0)
		return xstrdup("tender-agent");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return xstrdup("tender-agent");
	*slash = '\0';
	return xasprintf("%s/tender-agent", exe);
}

void tn_node_status(const char *data_dir, const char *id, struct tn_instance_status *out)
{
	char *dir = tn_node_dir(data_dir, id);
	json_t *rec = NULL;

	memset(out, 0, sizeof *out);
	out->state = TN_INSTANCE_GONE;
	if (tn_node_record_read(dir, &rec, NULL) == 0 &&
	    tn_node_alive((pid_t)json_integer_value(json_object_get(rec, "pid")),
			  (uint64_t)json_integer_value(json_object_get(rec, "start_time"))))
		out->state = TN_INSTANCE_RUNNING;
	else
		tn_node_log_tail(dir, out->detail, sizeof out->detail);
	json_decref(rec);
	free(dir);
}

int tn_node_boot_check(const char *provider, const char *agent, const char *target_id,
		       struct tn_error *err)
{
	if (!tn_node_id_valid(target_id))
		return tn_fail(err, TN_E_INVALID, "%s: bad target id %s", provider, target_id);
	if (access(agent, X_OK) != 0)
		return tn_fail(err, TN_E_NOT_FOUND,
			       "%s: the agent %s cannot be run (%s); install tender-agent beside "
			       "tender-server or set --provider %s:agent=PATH",
			       provider, agent, strerror(errno), provider);
	return 0;
}
