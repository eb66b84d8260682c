/* test_supervisor.c - the bundle supervisor with real processes (shell
 * scripts written here): logs and pid files, SIGTERM and SIGKILL stops,
 * restarts with backoff up to FAILED, start and reverse stop order,
 * adoption after the agent's "death" and stale pid files.  The loop is
 * driven until a condition holds or a deadline passes; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "log.h"
#include "loop.h"
#include "spawn.h"
#include "supervisor.h"
#include "xalloc.h"

#define DEADLINE_MS 5000

static char *tmp, *state_dir, *bundle_dir;

/* Every event seen, and the groups to kill should a test fail midway. */
struct seen {
	enum tn_sup_event ev;
	char name[32];
	enum tn_bundle_state state;
	unsigned restarts;
	pid_t pid;
	uint64_t restart_in_ms;
	uint64_t at;
	char reason[256];
};
static struct seen seen[64];
static size_t nseen;
static pid_t groups[64];
static size_t ngroups;

static void on_event(void *ctx, enum tn_sup_event ev, const struct tn_bundle_info *info)
{
	struct seen *s;

	assert_true(nseen < sizeof seen / sizeof seen[0]);
	s = &seen[nseen++];
	s->ev = ev;
	snprintf(s->name, sizeof s->name, "%s", info->name);
	s->state = info->state;
	s->restarts = info->restarts;
	s->pid = info->pid;
	s->restart_in_ms = info->restart_in_ms;
	s->at = tn_loop_now_ms();
	snprintf(s->reason, sizeof s->reason, "%s", info->reason);
	if (info->pid > 0 && ngroups < sizeof groups / sizeof groups[0])
		groups[ngroups++] = info->pid;
}

static size_t count_events(enum tn_sup_event ev)
{
	size_t n = 0;

	for (size_t i = 0; i < nseen; i++)
		n += seen[i].ev == ev;
	return n;
}

static bool exited_seen(void *ctx)
{
	return count_events(TN_SUP_EXITED) > 0;
}

static int setup(void **state)
{
	tmp = th_tmpdir();
	state_dir = xasprintf("%s/state", tmp);
	bundle_dir = xasprintf("%s/bundle", tmp);
	assert_int_equal(mkdir(bundle_dir, 0700), 0);
	nseen = 0;
	ngroups = 0;
	return 0;
}

static int teardown(void **state)
{
	/* Whatever a failed test left running. */
	for (size_t i = 0; i < ngroups; i++)
		kill(-groups[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	th_rmtree(tmp);
	free(tmp);
	free(state_dir);
	free(bundle_dir);
	return 0;
}

static void write_script(const char *name, const char *body)
{
	char *path = xasprintf("%s/%s", bundle_dir, name);
	char *text = xasprintf("#!/bin/sh\n%s\n", body);

	assert_int_equal(tn_write_file_atomic(path, text, strlen(text), 0755, NULL), 0);
	free(text);
	free(path);
}

static char *read_text(const char *path)
{
	char *buf = NULL;
	size_t len;

	if (tn_read_file(path, 1 << 20, &buf, &len, NULL) != 0)
		return xstrdup("");
	return buf;
}

static size_t count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

struct log_wait {
	char *path;
	const char *text;
};

static bool log_has(void *ctx)
{
	struct log_wait *w = ctx;
	char *t = read_text(w->path);
	bool yes = strstr(t, w->text) != NULL;

	free(t);
	return yes;
}

/* Runs the loop until cond(ctx) or the deadline; returns cond's value. */
static bool run_until(struct tn_loop *loop, bool (*cond)(void *), void *ctx, uint64_t ms)
{
	uint64_t end = tn_loop_now_ms() + ms;

	while (!cond(ctx) && tn_loop_now_ms() < end)
		tn_loop_run_once(loop, 20);
	return cond(ctx);
}

static bool flag_set(void *ctx)
{
	return *(bool *)ctx;
}

static void set_flag(void *ctx)
{
	*(bool *)ctx = true;
}

struct state_wait {
	struct tn_supervisor *sup;
	const char *name;
	enum tn_bundle_state state;
};

static bool in_state(void *ctx)
{
	struct state_wait *w = ctx;
	struct tn_bundle_info info;

	return tn_supervisor_find(w->sup, w->name, &info) && info.state == w->state;
}

static void wait_log(struct tn_loop *loop, const char *name, const char *text)
{
	struct log_wait w = {xasprintf("%s/logs/%s.log", state_dir, name), text};

	assert_true(run_until(loop, log_has, &w, DEADLINE_MS));
	free(w.path);
}

static struct tn_bundle_spec spec_of(const char *name, const char *const *argv)
{
	return (struct tn_bundle_spec){name, argv, bundle_dir, NULL, 1};
}

static bool process_gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

/* Processes (not zombies) in the group pgid. */
static size_t group_size(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char *path, *text, *p;
		char state;
		long pgrp;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		path = xasprintf("/proc/%s/stat", de->d_name);
		text = read_text(path);
		p = strrchr(text, ')');
		if (p && sscanf(p + 1, " %c %*d %ld", &state, &pgrp) == 2 && pgrp == pgid &&
		    state != 'Z')
			n++;
		free(text);
		free(path);
	}
	closedir(d);
	return n;
}

static void test_start_log_pid_file_and_sigterm_stop(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./run.sh", "--flag", NULL};
	const char *env[] = {"GREETING=tender", NULL};
	struct tn_bundle_spec spec = {"web", argv, bundle_dir, env, 5};
	struct tn_supervisor *sup;
	struct tn_bundle_info info;
	struct tn_error err;
	char *pid_path = xasprintf("%s/run/web.pid", state_dir);
	char *text, *want, *tail;
	size_t len;
	uint64_t start_time, t0;
	bool done = false;

	write_script("run.sh", "echo \"hello from $GREETING $1\"\necho oops >&2\nexec sleep 1000");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &sup, &err), 0);
	assert_true(tn_supervisor_find(sup, "web", &info));
	assert_int_equal(info.state, TN_BUNDLE_INSTALLED);
	assert_int_equal(tn_supervisor_start_all(sup, &err), 0);
	assert_int_equal(count_events(TN_SUP_STARTED), 1);
	assert_true(tn_supervisor_find(sup, "web", &info));
	assert_int_equal(info.state, TN_BUNDLE_STARTING);
	assert_true(info.pid > 0);
	assert_false(info.adopted);
	assert_string_equal(tn_bundle_state_name(info.state), "STARTING");

	wait_log(loop, "web", "hello from tender --flag\n");
	wait_log(loop, "web", "oops\n");
	/* The pid file names the process and its start time. */
	assert_int_equal(tn_proc_start_time(info.pid, &start_time), 0);
	text = read_text(pid_path);
	want = xasprintf("%d %llu\n", (int)info.pid, (unsigned long long)start_time);
	assert_string_equal(text, want);
	free(text);
	free(want);
	assert_int_equal(getpgid(info.pid), info.pid); /* its own group */

	tn_supervisor_set_active(sup, "web");
	assert_true(tn_supervisor_find(sup, "web", &info));
	assert_int_equal(info.state, TN_BUNDLE_ACTIVE);

	t0 = tn_loop_now_ms();
	assert_int_equal(tn_supervisor_stop(sup, "web", set_flag, &done, &err), 0);
	assert_false(done); /* always from the loop */
	assert_true(tn_supervisor_find(sup, "web", &info));
	assert_int_equal(info.state, TN_BUNDLE_STOPPING);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	assert_true(tn_loop_now_ms() - t0 < 2000); /* SIGTERM did it */
	assert_true(tn_supervisor_find(sup, "web", &info));
	assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
	assert_int_equal(info.pid, 0);
	assert_string_equal(info.reason, "killed by signal 15 (SIGTERM)");
	assert_true(process_gone(seen[0].pid));
	assert_int_equal(access(pid_path, F_OK), -1);
	assert_int_equal(count_events(TN_SUP_STOPPED), 1);
	assert_true(tn_supervisor_all_down(sup));

	assert_int_equal(tn_supervisor_log_tail(sup, "web", 4096, &tail, &len, &err), 0);
	assert_non_null(strstr(tail, "hello from tender"));
	assert_non_null(strstr(tail, "killed by signal 15"));
	assert_int_equal(strlen(tail), len);
	free(tail);

	tn_supervisor_free(sup);
	tn_loop_free(loop);
	free(pid_path);
}

static void test_sigterm_ignored_gets_sigkill(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./stubborn.sh", NULL};
	struct tn_bundle_spec spec = spec_of("stubborn", argv);
	struct tn_supervisor *sup;
	struct tn_bundle_info info;
	uint64_t t0, took;
	bool done = false;

	/* An ignored signal stays ignored across exec: sleep ignores it too. */
	write_script("stubborn.sh", "trap '' TERM\necho ready\nexec sleep 1000");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &sup, NULL), 0);
	assert_int_equal(tn_supervisor_start(sup, "stubborn", NULL), 0);
	wait_log(loop, "stubborn", "ready\n");
	t0 = tn_loop_now_ms();
	assert_int_equal(tn_supervisor_stop(sup, "stubborn", set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	took = tn_loop_now_ms() - t0;
	assert_true(took >= 1000); /* stop_timeout_s = 1 */
	assert_true(took < 3000);
	assert_true(tn_supervisor_find(sup, "stubborn", &info));
	assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
	assert_string_equal(info.reason, "killed by signal 9 (SIGKILL)");
	assert_true(process_gone(seen[0].pid));
	tn_supervisor_free(sup);
	tn_loop_free(loop);
}

static void test_stragglers_of_the_group_are_waited_for_then_killed(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir, .group_poll_ms = 10};
	const char *argv[] = {"./parent.sh", NULL};
	struct tn_bundle_spec spec = spec_of("parent", argv);
	struct tn_supervisor *sup;
	pid_t pgid;
	uint64_t t0;
	bool done = false;

	/* The leader obeys SIGTERM, a child it left ignores it. */
	write_script("parent.sh", "(trap '' TERM; echo child-ready; exec sleep 1000) &\n"
				  "exec sleep 1000");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &sup, NULL), 0);
	assert_int_equal(tn_supervisor_start(sup, "parent", NULL), 0);
	pgid = seen[0].pid;
	wait_log(loop, "parent", "child-ready\n");
	assert_int_equal(group_size(pgid), 2);
	t0 = tn_loop_now_ms();
	assert_int_equal(tn_supervisor_stop(sup, "parent", set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	assert_true(tn_loop_now_ms() - t0 >= 1000);
	assert_int_equal(group_size(pgid), 0);
	tn_supervisor_free(sup);
	tn_loop_free(loop);
}

static void test_crash_restarts_with_backoff_then_fails(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {
	    .state_dir = state_dir,
	    .backoff_base_ms = 40,
	    .backoff_cap_ms = 100,
	    .restart_limit = 3,
	    .restart_window_ms = 10000,
	};
	const char *argv[] = {"./crash.sh", NULL};
	struct tn_bundle_spec spec = spec_of("crashy", argv);
	struct state_wait w = {NULL, "crashy", TN_BUNDLE_FAILED};
	struct tn_bundle_info info;
	char *log_path = xasprintf("%s/logs/crashy.log", state_dir);
	char *text, *pid_path = xasprintf("%s/run/crashy.pid", state_dir);
	const uint64_t want_backoff[] = {40, 80, 100};
	size_t exited = 0;

	write_script("crash.sh", "echo crashing\nexit 3");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &w.sup, NULL), 0);
	assert_int_equal(tn_supervisor_start(w.sup, "crashy", NULL), 0);
	assert_true(run_until(loop, in_state, &w, DEADLINE_MS));

	/* started, (exited, started) x 3, failed */
	assert_int_equal(nseen, 8);
	assert_int_equal(seen[0].ev, TN_SUP_STARTED);
	for (size_t i = 1; i < 7; i += 2) {
		assert_int_equal(seen[i].ev, TN_SUP_EXITED);
		assert_string_equal(seen[i].reason, "exited with status 3");
		assert_int_equal(seen[i].restarts, exited + 1);
		assert_true(seen[i].restart_in_ms == want_backoff[exited]);
		assert_int_equal(seen[i + 1].ev, TN_SUP_STARTED);
		assert_int_equal(seen[i + 1].restarts, exited + 1);
		/* The restart waited its backoff. */
		assert_true(seen[i + 1].at - seen[i].at >= want_backoff[exited]);
		exited++;
	}
	assert_int_equal(seen[7].ev, TN_SUP_FAILED);
	assert_true(tn_supervisor_find(w.sup, "crashy", &info));
	assert_int_equal(info.state, TN_BUNDLE_FAILED);
	assert_int_equal(info.restarts, 3);
	assert_int_equal(info.pid, 0);
	assert_string_equal(info.reason,
			    "restarted 3 times within 10 s; last: exited with status 3");
	text = read_text(log_path);
	assert_int_equal(count_substr(text, "crashing\n"), 4);
	free(text);
	assert_int_equal(access(pid_path, F_OK), -1);
	assert_true(tn_supervisor_all_down(w.sup));

	/* An explicit start begins afresh. */
	nseen = 0;
	assert_int_equal(tn_supervisor_start(w.sup, "crashy", NULL), 0);
	assert_int_equal(seen[0].ev, TN_SUP_STARTED);
	assert_int_equal(seen[0].restarts, 0);
	{
		bool done = false;

		/* Stopped while waiting for a restart: no restart happens. */
		assert_true(run_until(loop, exited_seen, NULL, DEADLINE_MS));
		assert_int_equal(tn_supervisor_stop(w.sup, "crashy", set_flag, &done, NULL), 0);
		assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
		assert_true(tn_supervisor_find(w.sup, "crashy", &info));
		assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
		for (int i = 0; i < 10; i++)
			tn_loop_run_once(loop, 20);
		assert_int_equal(count_events(TN_SUP_STARTED), 1);
	}
	tn_supervisor_free(w.sup);
	tn_loop_free(loop);
	free(log_path);
	free(pid_path);
}

static void test_start_order_and_reverse_stop_order(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./svc.sh", NULL};
	char *order = xasprintf("%s/order", tmp);
	char *env_a[] = {"NAME=a", NULL, NULL}, *env_b[] = {"NAME=b", NULL, NULL},
	     *env_c[] = {"NAME=c", NULL, NULL};
	struct tn_bundle_spec specs[3] = {
	    {"a", argv, bundle_dir, (const char *const *)env_a, 2},
	    {"b", argv, bundle_dir, (const char *const *)env_b, 2},
	    {"c", argv, bundle_dir, (const char *const *)env_c, 2},
	};
	struct tn_supervisor *sup;
	struct tn_bundle_info info;
	struct tn_error err;
	char *text;
	bool done = false;

	env_a[1] = env_b[1] = env_c[1] = xasprintf("ORDER=%s", order);
	/* Each records its stop in the shared file when SIGTERM comes. */
	write_script("svc.sh", "trap 'echo stop-$NAME >> \"$ORDER\"; exit 0' TERM\n"
			       "echo up\nsleep 1000 &\nwait");
	assert_int_equal(tn_supervisor_new(loop, &cfg, specs, 3, on_event, NULL, &sup, NULL), 0);
	assert_int_equal(tn_supervisor_count(sup), 3);
	assert_int_equal(tn_supervisor_start_all(sup, &err), 0);
	assert_int_equal(nseen, 3);
	assert_string_equal(seen[0].name, "a");
	assert_string_equal(seen[1].name, "b");
	assert_string_equal(seen[2].name, "c");
	/* Spawned in order: their start times (fork times) agree. */
	{
		uint64_t ta, tb, tc;

		assert_int_equal(tn_proc_start_time(seen[0].pid, &ta), 0);
		assert_int_equal(tn_proc_start_time(seen[1].pid, &tb), 0);
		assert_int_equal(tn_proc_start_time(seen[2].pid, &tc), 0);
		assert_true(ta <= tb && tb <= tc);
	}
	wait_log(loop, "a", "up\n");
	wait_log(loop, "b", "up\n");
	wait_log(loop, "c", "up\n");

	assert_int_equal(tn_supervisor_stop_all(sup, set_flag, &done, &err), 0);
	assert_int_equal(tn_supervisor_stop_all(sup, NULL, NULL, &err), -TN_E_CONFLICT);
	assert_int_equal(tn_supervisor_start(sup, "a", &err), -TN_E_CONFLICT);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	text = read_text(order);
	assert_string_equal(text, "stop-c\nstop-b\nstop-a\n");
	free(text);
	for (size_t i = 0; i < 3; i++) {
		assert_true(tn_supervisor_get(sup, i, &info));
		assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
		assert_string_equal(info.reason, "exited with status 0");
	}
	assert_false(tn_supervisor_get(sup, 3, &info));
	assert_true(tn_supervisor_all_down(sup));
	/* STOPPED events came in reverse order too. */
	{
		const char *want = "cba";
		size_t k = 0;

		for (size_t i = 0; i < nseen; i++)
			if (seen[i].ev == TN_SUP_STOPPED)
				assert_int_equal(seen[i].name[0], want[k++]);
		assert_int_equal(k, 3);
	}
	assert_int_equal(tn_supervisor_uninstall(sup, "b", &err), 0);
	assert_true(tn_supervisor_find(sup, "b", &info));
	assert_string_equal(tn_bundle_state_name(info.state), "UNINSTALLED");
	assert_int_equal(tn_supervisor_start(sup, "b", &err), -TN_E_CONFLICT);

	tn_supervisor_free(sup);
	tn_loop_free(loop);
	free(env_a[1]);
	free(order);
}

static void test_adoption_after_agent_death(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./daemon.sh", NULL};
	struct tn_bundle_spec spec = spec_of("daemon", argv);
	struct tn_supervisor *a, *b;
	struct tn_bundle_info info;
	char *log_path = xasprintf("%s/logs/daemon.log", state_dir);
	char *pid_path = xasprintf("%s/run/daemon.pid", state_dir);
	char *text;
	pid_t pid;
	bool done = false;

	write_script("daemon.sh", "echo started\nexec sleep 1000");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &a, NULL), 0);
	assert_int_equal(tn_supervisor_start(a, "daemon", NULL), 0);
	pid = seen[0].pid;
	wait_log(loop, "daemon", "started\n");

	/* The agent dies: the supervisor goes, the bundle and its pid file
	 * stay. */
	tn_supervisor_free(a);
	for (int i = 0; i < 5; i++)
		tn_loop_run_once(loop, 10);
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(access(pid_path, F_OK), 0);

	nseen = 0;
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &b, NULL), 0);
	assert_true(tn_supervisor_find(b, "daemon", &info));
	assert_int_equal(info.pid, pid);
	assert_true(info.adopted);
	assert_int_equal(info.state, TN_BUNDLE_STARTING);
	assert_int_equal(nseen, 0); /* reported from the loop */
	tn_loop_run_once(loop, 10);
	assert_int_equal(count_events(TN_SUP_ADOPTED), 1);
	/* Starting again is a no-op: still one process, one "started". */
	assert_int_equal(tn_supervisor_start_all(b, NULL), 0);
	assert_int_equal(count_events(TN_SUP_STARTED), 0);
	assert_true(tn_supervisor_find(b, "daemon", &info));
	assert_int_equal(info.pid, pid);
	assert_int_equal(group_size(pid), 1);
	text = read_text(log_path);
	assert_int_equal(count_substr(text, "started\n"), 1);
	assert_non_null(strstr(text, "adopted daemon"));
	free(text);

	assert_int_equal(tn_supervisor_stop(b, "daemon", set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	assert_true(process_gone(pid));
	assert_int_equal(access(pid_path, F_OK), -1);
	assert_true(tn_supervisor_find(b, "daemon", &info));
	assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
	/* Still this test's child, so the status was there to collect. */
	assert_string_equal(info.reason, "killed by signal 15 (SIGTERM)");
	tn_supervisor_free(b);
	tn_loop_free(loop);
	free(log_path);
	free(pid_path);
}

/* The real thing: another process runs the supervisor and dies of
 * SIGKILL; the bundle is then no child of ours. */
static void test_adoption_after_kill9_of_another_agent(void **state)
{
	struct tn_loop *loop;
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./daemon.sh", NULL};
	struct tn_bundle_spec spec = spec_of("daemon", argv);
	struct tn_supervisor *b;
	struct tn_bundle_info info;
	char *pid_path = xasprintf("%s/run/daemon.pid", state_dir);
	char *text;
	pid_t agent, pid;
	int status;
	bool done = false;

	write_script("daemon.sh", "echo started\nexec sleep 1000");
	agent = fork();
	assert_true(agent >= 0);
	if (agent == 0) {
		struct tn_supervisor *a;
		struct log_wait w = {xasprintf("%s/logs/daemon.log", state_dir), "started\n"};

		loop = tn_loop_new();
		if (tn_supervisor_new(loop, &cfg, &spec, 1, NULL, NULL, &a, NULL) != 0 ||
		    tn_supervisor_start(a, "daemon", NULL) != 0 ||
		    !run_until(loop, log_has, &w, DEADLINE_MS))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(agent, &status, 0), agent);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	text = read_text(pid_path);
	pid = (pid_t)strtol(text, NULL, 10);
	free(text);
	assert_true(pid > 0);
	groups[ngroups++] = pid;
	assert_int_equal(group_size(pid), 1);

	loop = tn_loop_new();
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &b, NULL), 0);
	assert_true(tn_supervisor_find(b, "daemon", &info));
	assert_int_equal(info.pid, pid);
	assert_true(info.adopted);
	assert_int_equal(tn_supervisor_start_all(b, NULL), 0);
	assert_int_equal(count_events(TN_SUP_STARTED), 0);
	assert_int_equal(group_size(pid), 1);
	assert_int_equal(tn_supervisor_stop_all(b, set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	assert_int_equal(group_size(pid), 0);
	assert_true(tn_supervisor_find(b, "daemon", &info));
	assert_int_equal(info.state, TN_BUNDLE_RESOLVED);
	assert_string_equal(info.reason, "exited (status unknown: adopted process)");
	assert_int_equal(access(pid_path, F_OK), -1);
	tn_supervisor_free(b);
	tn_loop_free(loop);
	free(pid_path);
}

static void test_stale_pid_files_are_not_adopted(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./daemon.sh", NULL};
	struct tn_bundle_spec specs[2] = {spec_of("one", argv), spec_of("two", argv)};
	struct tn_supervisor *sup;
	struct tn_bundle_info info;
	char *run_dir = xasprintf("%s/run", state_dir);
	char *one = xasprintf("%s/one.pid", run_dir), *two = xasprintf("%s/two.pid", run_dir);
	char *stale = xasprintf("%d 1\n", (int)getpid());
	char *text, *want;
	uint64_t start;
	bool done = false;

	write_script("daemon.sh", "echo started\nexec sleep 1000");
	assert_int_equal(tn_mkdir_p(run_dir, 0700, NULL), 0);
	/* A live pid (this test) with the wrong start time, and garbage. */
	assert_int_equal(tn_write_file_atomic(one, stale, strlen(stale), 0600, NULL), 0);
	assert_int_equal(tn_write_file_atomic(two, "nonsense", 8, 0600, NULL), 0);
	assert_int_equal(tn_supervisor_new(loop, &cfg, specs, 2, on_event, NULL, &sup, NULL), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_true(tn_supervisor_get(sup, i, &info));
		assert_int_equal(info.state, TN_BUNDLE_INSTALLED);
		assert_false(info.adopted);
		assert_int_equal(info.pid, 0);
	}
	assert_int_equal(access(one, F_OK), -1);
	assert_int_equal(access(two, F_OK), -1);

	assert_int_equal(tn_supervisor_start(sup, "one", NULL), 0);
	assert_true(tn_supervisor_find(sup, "one", &info));
	assert_true(info.pid > 0 && info.pid != getpid());
	assert_int_equal(tn_proc_start_time(info.pid, &start), 0);
	text = read_text(one);
	want = xasprintf("%d %llu\n", (int)info.pid, (unsigned long long)start);
	assert_string_equal(text, want);
	free(text);
	free(want);
	assert_int_equal(kill(getpid(), 0), 0); /* and we are still here */

	assert_int_equal(tn_supervisor_stop_all(sup, set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	tn_supervisor_free(sup);
	tn_loop_free(loop);
	free(run_dir);
	free(one);
	free(two);
	free(stale);
}

static void test_spawn_and_exec_failures(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *missing[] = {"./missing.sh", NULL}, *bad[] = {"./bad", NULL};
	struct tn_bundle_spec specs[2] = {spec_of("missing", missing), spec_of("bad", bad)};
	struct state_wait w = {NULL, "bad", TN_BUNDLE_FAILED};
	struct tn_bundle_info info;
	struct tn_error err;
	char *bad_path = xasprintf("%s/bad", bundle_dir);

	assert_int_equal(tn_write_file_atomic(bad_path,
					      "\x7f"
					      "ELFjunk",
					      8, 0755, NULL),
			 0);
	assert_int_equal(tn_supervisor_new(loop, &cfg, specs, 2, on_event, NULL, &w.sup, NULL), 0);
	assert_true(tn_supervisor_start(w.sup, "missing", &err) < 0);
	assert_non_null(strstr(err.message, "bundle missing: "));
	assert_non_null(strstr(err.message, "missing.sh: No such file or directory"));
	assert_true(tn_supervisor_find(w.sup, "missing", &info));
	assert_int_equal(info.state, TN_BUNDLE_FAILED);
	assert_string_equal(info.reason, err.message);
	assert_int_equal(count_events(TN_SUP_FAILED), 1);

	/* Only execve can tell: seen from the loop, and not retried. */
	assert_int_equal(tn_supervisor_start(w.sup, "bad", &err), 0);
	assert_true(run_until(loop, in_state, &w, DEADLINE_MS));
	assert_true(tn_supervisor_find(w.sup, "bad", &info));
	assert_string_equal(info.reason, "exec ./bad: Exec format error");
	assert_int_equal(info.restarts, 0);

	assert_int_equal(tn_supervisor_start(w.sup, "nobody", &err), -TN_E_NOT_FOUND);
	tn_supervisor_free(w.sup);
	tn_loop_free(loop);
	free(bad_path);
}

static void test_bad_specs_are_refused(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir};
	const char *argv[] = {"./x", NULL}, *empty[] = {NULL};
	struct tn_bundle_spec twice[2] = {spec_of("x", argv), spec_of("x", argv)};
	struct tn_bundle_spec dotdot = spec_of("..", argv), slash = spec_of("a/b", argv),
			      noargs = spec_of("y", empty);
	struct tn_supervisor *sup = NULL;
	struct tn_error err;

	assert_int_equal(tn_supervisor_new(loop, &cfg, twice, 2, NULL, NULL, &sup, &err),
			 -TN_E_INVALID);
	assert_string_equal(err.message, "bundle x: listed twice");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &dotdot, 1, NULL, NULL, &sup, &err),
			 -TN_E_INVALID);
	assert_int_equal(tn_supervisor_new(loop, &cfg, &slash, 1, NULL, NULL, &sup, &err),
			 -TN_E_INVALID);
	assert_int_equal(tn_supervisor_new(loop, &cfg, &noargs, 1, NULL, NULL, &sup, &err),
			 -TN_E_INVALID);
	assert_null(sup);
	tn_loop_free(loop);
}

static void test_log_rotation_and_tail(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct tn_supervisor_config cfg = {.state_dir = state_dir, .log_max_bytes = 1000};
	const char *argv[] = {"./once.sh", NULL};
	struct tn_bundle_spec spec = spec_of("once", argv);
	struct tn_supervisor *sup;
	char *logs = xasprintf("%s/logs", state_dir);
	char *log_path = xasprintf("%s/once.log", logs), *old_path = xasprintf("%s.1", log_path);
	char big[4001], *text, *tail;
	size_t len;
	bool done = false;

	/* 100 numbered lines of 40 bytes. */
	for (int i = 0; i < 100; i++) {
		memset(big + i * 40, '.', 40);
		memcpy(big + i * 40, "line ", 5);
		big[i * 40 + 5] = (char)('0' + i / 100);
		big[i * 40 + 6] = (char)('0' + i / 10 % 10);
		big[i * 40 + 7] = (char)('0' + i % 10);
		big[i * 40 + 8] = ' ';
		big[i * 40 + 39] = '\n';
	}
	big[4000] = '\0';
	assert_int_equal(tn_mkdir_p(logs, 0700, NULL), 0);
	assert_int_equal(tn_write_file_atomic(log_path, big, 4000, 0600, NULL), 0);
	write_script("once.sh", "echo fresh\nexec sleep 1000");
	assert_int_equal(tn_supervisor_new(loop, &cfg, &spec, 1, on_event, NULL, &sup, NULL), 0);

	/* A tail cut inside a line starts at the next one. */
	assert_int_equal(tn_supervisor_log_tail(sup, "once", 100, &tail, &len, NULL), 0);
	assert_string_equal(tail, "line 098 ..............................\n"
				  "line 099 ..............................\n");
	assert_int_equal(len, 80);
	free(tail);

	assert_int_equal(tn_supervisor_start(sup, "once", NULL), 0);
	wait_log(loop, "once", "fresh\n");
	text = read_text(old_path);
	assert_int_equal(strlen(text), 4000);
	free(text);
	text = read_text(log_path);
	assert_null(strstr(text, "line 000"));
	free(text);
	assert_int_equal(tn_supervisor_stop_all(sup, set_flag, &done, NULL), 0);
	assert_true(run_until(loop, flag_set, &done, DEADLINE_MS));
	assert_int_equal(tn_supervisor_log_tail(sup, "nobody", 100, &tail, &len, NULL),
			 -TN_E_NOT_FOUND);
	tn_supervisor_free(sup);
	tn_loop_free(loop);
	free(logs);
	free(log_path);
	free(old_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_start_log_pid_file_and_sigterm_stop),
	    T(test_sigterm_ignored_gets_sigkill),
	    T(test_stragglers_of_the_group_are_waited_for_then_killed),
	    T(test_crash_restarts_with_backoff_then_fails),
	    T(test_start_order_and_reverse_stop_order),
	    T(test_adoption_after_agent_death),
	    T(test_adoption_after_kill9_of_another_agent),
	    T(test_stale_pid_files_are_not_adopted),
	    T(test_spawn_and_exec_failures),
	    T(test_bad_specs_are_refused),
	    T(test_log_rotation_and_tail),
#undef T
	};
	tn_log_set_level(TN_LOG_ERROR);
	return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
