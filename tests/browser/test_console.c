/* test_console.c - the web console driven in headless Chromium against a
 * real tender-server with the local provider (issue 9).  This program
 * starts the server (tests/support/harness.c), then runs
 * tests/browser/console.test.js under Node.js, which drives Debian's
 * chromium with playwright-core and prints TAP; its TAP and exit status are
 * this test's.  Without chromium, Node.js 20 or playwright-core (installed
 * by scripts/bootstrap into a cache directory) the whole test is skipped
 * with the reason ("1..0 # SKIP ...", which automake counts as SKIP).
 *
 * Every process it starts dies with it: the server and node are its
 * children (PR_SET_PDEATHSIG); the local provider's nodes run under the
 * server's data directory and the browser under the test's own directory,
 * and both are swept (th_guard_dir) when it exits or aborts. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "nodes.h"
#include "xalloc.h"

/* The whole browser run: uploads, boots, two rollouts. */
#define RUN_DEADLINE_S 420

static void skip_all(const char *fmt, ...) TN_PRINTF(1, 2);

/* The whole test is skipped, with the reason (TAP's "1..0 # SKIP"). */
static void skip_all(const char *fmt, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(0);
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The first executable name in PATH (caller frees), or NULL. */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL, *found = NULL;

	if (!path)
		return NULL;
	copy = xstrdup(path);
	for (char *dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", dir, name);

		if (is_file(p) && access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

/* Where scripts/bootstrap installs playwright-core: $TENDER_BROWSER_MODULES,
 * else $XDG_CACHE_HOME (or ~/.cache)/tender/browser-tests/node_modules. */
static char *modules_dir(void)
{
	const char *env = getenv("TENDER_BROWSER_MODULES");
	const char *cache = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (env && *env)
		return xstrdup(env);
	if (cache && *cache)
		return xasprintf("%s/tender/browser-tests/node_modules", cache);
	return xasprintf("%s/.cache/tender/browser-tests/node_modules", home ? home : "/root");
}

/* Node's major version ("v20.1.0" -> 20), 0 when it does not say. */
static long node_major(const char *node)
{
	const char *args[] = {"--version", NULL};
	const char *env[] = {"PATH=/usr/bin:/bin", NULL};
	struct th_run r;
	long major = 0;

	th_run_start(&r, node, args, env, false);
	if (th_run_finish(&r, 20) == 0 && r.out && r.out[0] == 'v')
		major = strtol(r.out + 1, NULL, 10);
	th_run_free(&r);
	return major;
}

/* What node's TAP said: the test lines passed on, the plan held back (this
 * program adds its own last test), and how it ended. */
struct run {
	int tests;  /* "ok"/"not ok" lines */
	int plan;   /* N of its "1..N", -1 when none came */
	int status; /* its exit status, or 128 + the signal that ended it */
};

static void relay_line(const char *line, struct run *r)
{
	char *end;
	long plan;

	if (strncmp(line, "1..", 3) == 0) {
		plan = strtol(line + 3, &end, 10);
		if (end != line + 3 && *end == '\0') {
			r->plan = (int)plan;
			return;
		}
	}
	if (strncmp(line, "ok ", 3) == 0 || strncmp(line, "not ok ", 7) == 0)
		r->tests++;
	printf("%s\n", line);
}

/* Passes node's output on line by line until it ends, within the deadline
 * (then its process group is killed). */
static void relay(int fd, pid_t pid, struct run *r)
{
	double deadline = th_now_s() + RUN_DEADLINE_S;
	char buf[65536];
	size_t used = 0;
	int status;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t got;
		char *nl;

		if (th_now_s() > deadline) {
			printf("# the browser run did not finish within %d s: killed\n",
			       RUN_DEADLINE_S);
			kill(-pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, 200) <= 0)
			continue;
		got = read(fd, buf + used, sizeof buf - 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		used += (size_t)got;
		buf[used] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			relay_line(buf, r);
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used);
			buf[used] = '\0';
		}
		if (used == sizeof buf - 1) { /* a line that long: pass it on in pieces */
			relay_line(buf, r);
			used = 0;
		}
	}
	if (used) {
		buf[used] = '\0';
		relay_line(buf, r);
	}
	waitpid(pid, &status, 0);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void)
{
	const char *chromium = getenv("CHROMIUM");
	char *node = which("node");
	char *modules = modules_dir();
	char *pw = xasprintf("%s/playwright-core/package.json", modules);
	char *dist = xasprintf("%s/distributions/educa-1.1.zip", TN_BUILDDIR);
	char *script = xasprintf("%s/tests/browser/console.test.js", TN_SRCDIR);
	char *shots = xasprintf("%s/tests/browser/screenshots", TN_BUILDDIR);
	char *providers_arg, *tmp, *env[16];
	struct th_server srv;
	const char *args[4];
	struct run r = {.plan = -1};
	char *log = NULL;
	int status, out[2];
	bool failed = false;
	size_t n = 0, len = 0;
	pid_t pid;
	unsigned low;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!chromium || !*chromium)
		chromium = "/usr/bin/chromium";
	if (!is_file(chromium) || access(chromium, X_OK) != 0)
		skip_all("no Chromium at %s (scripts/bootstrap installs Debian's chromium; "
			 "or set CHROMIUM)", chromium);
	if (!node)
		skip_all("%s", "no Node.js (node) in PATH (scripts/bootstrap installs it)");
	if (node_major(node) < 20)
		skip_all("Node.js at %s is older than 20, which playwright-core needs", node);
	if (!is_file(pw))
		skip_all("no playwright-core in %s (scripts/bootstrap installs it there; or set "
			 "TENDER_BROWSER_MODULES)", modules);
	if (!is_file(dist)) {
		printf("1..1\nnot ok 1 - the sample distributions are built (%s is missing: make "
		       "distributions)\n", dist);
		return 1;
	}

	/* Below the ephemeral range, apart from the other tests' ranges
	 * (20000-), and wide: the provider steps over ports in use, and other
	 * test runs on the machine hold some. */
	low = 28000 + (unsigned)(getpid() % 8) * 500;
	providers_arg = xasprintf("local:ports=%u-%u", low, low + 399);
	args[0] = "--provider";
	args[1] = providers_arg;
	args[2] = NULL;
	th_server_start(&srv, args);
	th_guard_dir(srv.data_dir);
	tmp = th_tmpdir();
	th_guard_dir(tmp);
	if (tn_mkdir_p(shots, 0755, NULL) != 0) {
		printf("1..1\nnot ok 1 - cannot make %s\n", shots);
		return 1;
	}
	printf("# server %s (log %s), browser directory %s\n", srv.url, srv.log_path, tmp);

	env[n++] = xasprintf("PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	env[n++] = xasprintf("HOME=%s", tmp);
	env[n++] = xasprintf("TENDER_URL=%s", srv.url);
	env[n++] = xasprintf("TENDER_TOKEN=%s", srv.admin_token);
	env[n++] = xasprintf("TENDER_BUILDDIR=%s", TN_BUILDDIR);
	env[n++] = xasprintf("TENDER_TMP=%s", tmp);
	env[n++] = xasprintf("TENDER_SHOTS=%s", shots);
	env[n++] = xasprintf("TENDER_BROWSER_MODULES=%s", modules);
	env[n++] = xasprintf("CHROMIUM=%s", chromium);
	env[n] = NULL;

	if (pipe2(out, O_CLOEXEC) != 0) {
		printf("1..1\nnot ok 1 - pipe: %s\n", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		printf("1..1\nnot ok 1 - fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		dup2(out[1], STDOUT_FILENO);
		/* The browser inherits this working directory: the guard finds it there. */
		if (chdir(tmp) != 0)
			_exit(127);
		execle(node, node, script, (char *)NULL, env);
		_exit(127);
	}
	setpgid(pid, pid);
	close(out[1]);
	relay(out[0], pid, &r);
	close(out[0]);

	/* Whatever the browser left, then the server, then its nodes. */
	if (th_kill_under(tmp))
		fprintf(stderr, "test_console: processes under %s survived\n", tmp);
	if (r.plan < 0 || r.plan != r.tests) {
		printf("not ok %d - the browser run reported all its steps (%d of %d; exit status "
		       "%d)\n", r.tests + 1, r.tests, r.plan, r.status);
		r.tests++;
		failed = true;
	}
	r.tests++;
	status = th_server_stop(&srv);
	if (!th_server_exited_cleanly(&srv, status)) {
		printf("not ok %d - tender-server stopped cleanly, no sanitizer report in its log "
		       "(exit status %d)\n", r.tests, status);
		failed = true;
	} else {
		printf("ok %d - tender-server stopped cleanly, no sanitizer report in its log\n",
		       r.tests);
	}
	if ((failed || r.status != 0) && tn_read_file(srv.log_path, 1 << 20, &log, &len, NULL) == 0)
		fprintf(stderr, "--- server log (%s)\n%s---\n", srv.log_path, log);
	printf("1..%d\n", r.tests);
	free(log);
	th_kill_under(srv.data_dir);
	th_server_destroy(&srv);
	th_rmtree(tmp);
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(tmp);
	free(providers_arg);
	free(node);
	free(modules);
	free(pw);
	free(dist);
	free(script);
	free(shots);
	return failed || r.status != 0 ? 1 : 0;
}
