/* nodes.c - see nodes.h.  Processes are found through /proc/PID/cwd: a
 * provider starts each agent in its node directory and bundles run in
 * their release directories below it, so "cwd inside the node directory"
 * is everything a node runs. */
#include "nodes.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

#define GUARDS_MAX 16

static bool zombie(long pid)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

/* Calls fn for every live process with its cwd inside dir; the count of
 * those fn accepts (all when fn is NULL). */
static size_t each_under(const char *dir, bool (*fn)(long pid, void *ctx), void *ctx)
{
	char real[PATH_MAX];
	const char *d = realpath(dir, real) ? real : dir;
	size_t dlen = strlen(d), count = 0;
	DIR *proc = opendir("/proc");
	struct dirent *e;

	while (proc && (e = readdir(proc))) {
		char path[64], cwd[PATH_MAX];
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		ssize_t n;

		if (*end || pid <= 1 || pid == (long)getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%ld/cwd", pid);
		n = readlink(path, cwd, sizeof cwd - 1);
		if (n <= 0)
			continue;
		cwd[n] = '\0';
		if (strncmp(cwd, d, dlen) != 0 ||
		    (cwd[dlen] != '\0' && cwd[dlen] != '/' && cwd[dlen] != ' ') || zombie(pid))
			continue;
		if (!fn || fn(pid, ctx))
			count++;
	}
	if (proc)
		closedir(proc);
	return count;
}

static bool kill9(long pid, void *ctx)
{
	(void)ctx;
	kill((pid_t)pid, SIGKILL);
	return true;
}

/* Whether the process's command line holds the text ctx. */
static bool cmdline_has(long pid, void *ctx)
{
	char path[64], buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return strstr(buf, ctx) != NULL;
}

size_t th_procs_under(const char *dir)
{
	return each_under(dir, NULL, NULL);
}

size_t th_cmdline_under(const char *dir, const char *text)
{
	return each_under(dir, cmdline_has, (void *)text);
}

size_t th_kill_under(const char *dir)
{
	double deadline = th_now_s() + 10;
	size_t left;

	while ((left = each_under(dir, kill9, NULL)) && th_now_s() < deadline) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			; /* orphans reparented to us, if we are their reaper */
		th_pause_ms(20);
	}
	return each_under(dir, NULL, NULL);
}

/* ------------------------------------------------------------ HTTP */

struct sink {
	char *p;
	size_t size, len;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t take = size * n;

	if (s->p && s->len + 1 < s->size) {
		size_t room = s->size - 1 - s->len;
		size_t k = take < room ? take : room;

		memcpy(s->p + s->len, data, k);
		s->len += k;
		s->p[s->len] = '\0';
	}
	return take;
}

long th_get(const char *url, char *body, size_t size)
{
	CURL *c = curl_easy_init();
	struct sink s = {body, size, 0};
	long status = 0;

	if (body && size)
		body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

/* ------------------------------------------------------------ netns */

static size_t names_in(const char *dir, const char *prefix, char *names, size_t size, size_t *used)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t count = 0;

	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		count++;
		if (names && *used + strlen(e->d_name) + 2 < size)
			*used += (size_t)snprintf(names + *used, size - *used, "%s%s",
						  *used ? " " : "", e->d_name);
	}
	if (d)
		closedir(d);
	return count;
}

size_t th_netns_leftovers(const char *prefix, char *names, size_t size)
{
	size_t used = 0;

	if (names && size)
		names[0] = '\0';
	return names_in("/run/netns", prefix, names, size, &used) +
	       names_in("/sys/class/net", prefix, names, size, &used);
}

static const char *ip_path(void)
{
	static const char *const cands[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

	for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return "/usr/sbin/ip";
}

void th_netns_remove(const char *prefix)
{
	char names[4096];
	char *save = NULL;

	th_netns_leftovers(prefix, names, sizeof names);
	for (char *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
		char path[PATH_MAX];

		snprintf(path, sizeof path, "/run/netns/%s", name);
		if (access(path, F_OK) == 0) {
			const char *del[] = {ip_path(), "netns", "del", name, NULL};

			th_run(del, NULL, 10);
		} else {
			const char *del[] = {ip_path(), "link", "del", name, NULL};

			th_run(del, NULL, 10);
		}
	}
}

/* ------------------------------------------------------------ commands */

int th_run(const char *const *argv, const char *log_path, double deadline_s)
{
	double deadline = th_now_s() + deadline_s;
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log_path ? log_path : "/dev/null",
			      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (in >= 0)
			dup2(in, STDIN_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (th_now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -1;
		}
		th_pause_ms(20);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ------------------------------------------------------------ guard */

static char *guard_dirs[GUARDS_MAX];
static char *guard_prefixes[GUARDS_MAX];

static void clean_guarded(void)
{
	for (size_t i = 0; i < GUARDS_MAX; i++) {
		if (guard_dirs[i] && th_kill_under(guard_dirs[i]))
			fprintf(stderr, "nodes: processes under %s survived SIGKILL\n",
				guard_dirs[i]);
		if (guard_prefixes[i])
			th_netns_remove(guard_prefixes[i]);
	}
}

static void on_abort(int sig)
{
	(void)sig;
	clean_guarded();
	/* SA_RESETHAND: the abort goes on with the default action */
	raise(SIGABRT);
}

static void register_guard(void)
{
	static bool done;
	struct sigaction sa = {0};

	if (done)
		return;
	done = true;
	atexit(clean_guarded);
	sa.sa_handler = on_abort;
	sa.sa_flags = (int)SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGABRT, &sa, NULL);
}

static void guard(char **slots, const char *s)
{
	register_guard();
	for (size_t i = 0; i < GUARDS_MAX; i++)
		if (!slots[i]) {
			slots[i] = xstrdup(s);
			return;
		}
}

void th_guard_dir(const char *dir)
{
	guard(guard_dirs, dir);
}

void th_guard_prefix(const char *prefix)
{
	guard(guard_prefixes, prefix);
}
