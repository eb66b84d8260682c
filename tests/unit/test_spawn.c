/* test_spawn.c - starting processes for bundles and exec probes: stdio and
 * fds the child gets, its own process group, reset signals, environment,
 * exec errors carried back, /proc start times (odd command names too) and
 * adoption checks.  Real processes; waits are poll() on the pidfd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "spawn.h"
#include "xalloc.h"

static char *tmp;

static int setup(void **state)
{
	tmp = th_tmpdir();
	return 0;
}

static int teardown(void **state)
{
	th_rmtree(tmp);
	free(tmp);
	return 0;
}

/* Waits (bounded) for the child's end and reaps it. */
static void wait_exit(struct tn_child *c, struct tn_exit *ex)
{
	struct pollfd pfd = {c->pidfd, POLLIN, 0};

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	tn_child_reap(c, ex);
}

static char *read_all(const char *path)
{
	char *buf = NULL;
	size_t len;

	assert_int_equal(tn_read_file(path, 1 << 20, &buf, &len, NULL), 0);
	return buf;
}

static void test_stdio_group_env_and_fds(void **state)
{
	char *out_path = xasprintf("%s/out", tmp);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* Not close-on-exec on purpose: the child must not get it anyway. */
	int leak = open("/dev/null", O_RDONLY);
	char *script = xasprintf("echo \"greeting=$GREETING\"; "
				 "if [ -e /dev/fd/%d ]; then echo leaked; else echo clean; fi; "
				 "read x || echo eof; pwd",
				 leak);
	const char *argv[] = {"sh", "-c", script, NULL};
	const char *env[] = {"GREETING=hi", NULL};
	struct tn_spawn s = {argv, tmp, env, -1, out, out};
	struct tn_child c;
	struct tn_exit ex;
	struct tn_error err;
	char *text, *want;
	uint64_t start;

	assert_true(out >= 0 && leak >= 0);
	assert_int_equal(tn_spawn_start(&s, &c, &err), 0);
	assert_true(c.ours);
	assert_int_equal(c.pgid, c.pid);
	assert_int_equal(tn_proc_start_time(c.pid, &start), 0);
	assert_true(c.start_time == start);
	wait_exit(&c, &ex);
	assert_true(ex.known);
	assert_int_equal(ex.code, 0);
	assert_int_equal(ex.exec_errno, 0);
	assert_int_equal(c.pid, 0);
	text = read_all(out_path);
	assert_non_null(strstr(text, "greeting=hi\n"));
	assert_non_null(strstr(text, "clean\n"));
	assert_null(strstr(text, "leaked"));
	assert_non_null(strstr(text, "eof\n")); /* stdin is /dev/null */
	want = xasprintf("%s\n", tmp);
	assert_non_null(strstr(text, want));
	free(want);
	free(text);
	close(out);
	close(leak);
	free(script);
	free(out_path);
}

static void test_signals_reset_in_child(void **state)
{
	const char *argv[] = {"sleep", "1000", NULL};
	struct tn_spawn s = {argv, NULL, NULL, -1, -1, -1};
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	struct tn_child c;
	struct tn_exit ex;
	char why[128];

	/* The agent ignoring SIGTERM must not make its bundles immune. */
	sigaction(SIGTERM, &ign, &old);
	assert_int_equal(tn_spawn_start(&s, &c, NULL), 0);
	sigaction(SIGTERM, &old, NULL);
	assert_int_equal(tn_child_signal_group(&c, SIGTERM), 0);
	wait_exit(&c, &ex);
	assert_true(ex.known);
	assert_int_equal(ex.signal, SIGTERM);
	tn_exit_describe(&ex, argv[0], NULL, why, sizeof why);
	assert_string_equal(why, "killed by signal 15 (SIGTERM)");
}

static void test_exec_errors(void **state)
{
	const char *missing[] = {"./missing", NULL};
	const char *nopath[] = {"tender-no-such-program", NULL};
	const char *bad[] = {"./bad", NULL};
	struct tn_spawn s = {missing, tmp, NULL, -1, -1, -1};
	char *bad_path = xasprintf("%s/bad", tmp);
	struct tn_child c;
	struct tn_exit ex;
	struct tn_error err;
	char why[256];

	assert_true(tn_spawn_start(&s, &c, &err) < 0);
	assert_non_null(strstr(err.message, "missing"));
	assert_non_null(strstr(err.message, "No such file"));
	s.argv = nopath;
	assert_true(tn_spawn_start(&s, &c, &err) < 0);
	assert_string_equal(err.message, "tender-no-such-program: not found in PATH");

	/* Executable, but no format the kernel knows: only execve can tell. */
	assert_int_equal(tn_write_file_atomic(bad_path, "\x01\x02\x03\x04garbage", 11, 0755, NULL),
			 0);
	s.argv = bad;
	assert_int_equal(tn_spawn_start(&s, &c, &err), 0);
	wait_exit(&c, &ex);
	assert_int_equal(ex.exec_errno, ENOEXEC);
	tn_exit_describe(&ex, bad[0], tmp, why, sizeof why);
	assert_string_equal(why, "exec ./bad: Exec format error");
	free(bad_path);
}

static void test_start_time_with_odd_name(void **state)
{
	/* A command name with ") " in it must not shift the fields. */
	char *link = xasprintf("%s/a) b 1 2", tmp);
	const char *argv[] = {link, "1000", NULL};
	struct tn_spawn s = {argv, NULL, NULL, -1, -1, -1};
	struct tn_child c, adopted;
	uint64_t start = 0, self = 0;
	pid_t pgid;

	assert_int_equal(symlink("/bin/sleep", link), 0);
	assert_int_equal(tn_spawn_start(&s, &c, NULL), 0);
	/* The exec-error pipe closes at the exec: then the odd name is in
	 * place, and setsid has happened. */
	{
		struct pollfd pfd = {c.errfd, POLLIN, 0};
		char comm[64] = "", *path = xasprintf("/proc/%d/comm", (int)c.pid);
		FILE *f;

		assert_int_equal(poll(&pfd, 1, 5000), 1);
		f = fopen(path, "r");
		assert_non_null(f);
		assert_non_null(fgets(comm, sizeof comm, f));
		fclose(f);
		free(path);
		assert_string_equal(comm, "a) b 1 2\n");
		assert_int_equal(getpgid(c.pid), c.pid);
		assert_int_equal(getsid(c.pid), c.pid);
	}
	assert_int_equal(tn_proc_start_time(c.pid, &start), 0);
	assert_true(start == c.start_time);
	assert_int_equal(tn_proc_start_time(getpid(), &self), 0);
	assert_true(self > 0 && self <= start);

	/* Adoption: right start time yes; wrong one, ourselves, nobody no. */
	assert_int_equal(tn_child_adopt(c.pid, start + 1, &adopted, NULL), 0);
	assert_int_equal(tn_child_adopt(getpid(), self, &adopted, NULL), 0);
	assert_int_equal(tn_child_adopt(c.pid, start, &adopted, NULL), 1);
	assert_false(adopted.ours);
	assert_int_equal(adopted.pgid, c.pid);
	tn_child_forget(&adopted);
	pgid = c.pgid;
	assert_true(tn_group_alive(pgid));
	tn_child_kill_reap(&c);
	assert_int_equal(c.pid, 0);
	assert_false(tn_group_alive(pgid));
	assert_int_equal(tn_proc_start_time(999999999, &start), -1);
	free(link);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_stdio_group_env_and_fds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signals_reset_in_child, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_time_with_odd_name, setup, teardown),
	};
	return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
}
