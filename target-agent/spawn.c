/* spawn.c - see spawn.h.  Everything that can be prepared is prepared before
 * the fork (program path, environment, stdio copies), so the child only
 * makes async-signal-safe calls between fork and exec. */
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xalloc.h"

extern char **environ;

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define STAT_MAX 4096
#define ENV_MAX 4096 /* entries of the agent's environment passed on */

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* A close-on-exec copy of fd at 3 or above, so that dup2 onto 0, 1 and 2 in
 * the child never overwrites a source it still needs. */
static int high_fd(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* Fields of /proc/PID/stat: 3 (state), 5 (pgrp) and 22 (starttime).  The
 * command name (field 2) is in parentheses and may itself hold spaces and
 * ')': fields are counted from the last ')'. */
static int read_stat(pid_t pid, char *state, pid_t *pgrp, uint64_t *start)
{
	char path[64], buf[STAT_MAX];
	const char *p;
	char *end;
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
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	p += 2; /* field 3 */
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
		if (field + 1 == 5) {
			errno = 0;
			*pgrp = (pid_t)strtol(p, &end, 10);
			if (errno || end == p)
				return -1;
		}
	}
	errno = 0;
	*start = strtoull(p, &end, 10);
	if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -1;
	return 0;
}

int tn_proc_start_time(pid_t pid, uint64_t *out)
{
	char state;
	pid_t pgrp;

	return read_stat(pid, &state, &pgrp, out);
}

/* The path to execve: argv0 itself when it has a '/', else the first
 * executable match in PATH's absolute entries.  Caller frees. */
static int find_program(const char *argv0, const char *cwd, char **out, struct tn_error *err)
{
	const char *path = getenv("PATH");
	char *copy = NULL, *save = NULL, *dir;
	int rc = 0;

	*out = NULL;
	if (!argv0 || !*argv0)
		return tn_fail(err, TN_E_INVALID, "empty program name");
	if (strchr(argv0, '/')) {
		char *full =
		    argv0[0] == '/' || !cwd ? xstrdup(argv0) : xasprintf("%s/%s", cwd, argv0);

		if (access(full, X_OK) != 0) {
			rc = tn_fail_errno(err, errno, "%s", full);
			free(full);
			return rc;
		}
		free(full);
		/* Relative to the child's cwd, which is cwd by then. */
		*out = xstrdup(argv0);
		return 0;
	}
	copy = xstrdup(path && *path ? path : DEFAULT_PATH);
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *full;
		struct stat st;

		if (dir[0] != '/')
			continue;
		full = xasprintf("%s/%s", dir, argv0);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
			*out = full;
			goto out;
		}
		free(full);
	}
	rc = tn_fail(err, TN_E_NOT_FOUND, "%s: not found in PATH", argv0);
out:
	free(copy);
	return rc;
}

/* The agent's environment with the extras laid over it (an extra "K=V"
 * replaces the agent's K).  The array is caller-freed; its strings are
 * borrowed. */
static char **build_env(const char *const *extra)
{
	size_t n = 0, nextra = 0, used = 0;
	char **envp;

	for (char **e = environ; e && *e && n < ENV_MAX; e++)
		n++;
	for (const char *const *x = extra; x && *x; x++)
		nextra++;
	envp = xcalloc(n + nextra + 1, sizeof *envp);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;

		for (size_t j = 0; j < nextra && !replaced; j++)
			replaced =
			    strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=';
		if (!replaced)
			envp[used++] = environ[i];
	}
	for (size_t j = 0; j < nextra; j++)
		envp[used++] = (char *)extra[j];
	envp[used] = NULL;
	return envp;
}

/* What a failed child writes to the error pipe before _exit(127). */
struct child_error {
	int chdir_failed;
	int errnum;
};

static void close_from(int lowfd)
{
	if (syscall(SYS_close_range, lowfd, ~0U, 0) != 0) {
		/* Kernels before 5.9: close what a small agent can have. */
		for (int fd = lowfd; fd < 4096; fd++)
			close(fd);
	}
}

/* In the child: only async-signal-safe calls from here on. */
static void __attribute__((noreturn))
child_run(const char *path, char *const argv[], char *const envp[], const char *cwd, int in,
	  int out, int errout, int errw)
{
	struct child_error ce = {0, 0};
	struct sigaction dfl;
	sigset_t none;

	/* Dispositions the agent set (SIGPIPE ignored by libcurl users, say)
	 * would survive exec: the bundle gets the defaults. */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errout, 2) < 0)
		goto fail;
	if (errw != 3) {
		if (dup3(errw, 3, O_CLOEXEC) < 0)
			goto fail;
	}
	close_from(4);
	if (cwd && chdir(cwd) != 0) {
		ce.chdir_failed = 1;
		goto fail;
	}
	execve(path, argv, envp);
fail:
	ce.errnum = errno;
	if (write(3, &ce, sizeof ce) < 0) {
		/* nobody left to tell */
	}
	_exit(127);
}

int tn_spawn_start(const struct tn_spawn *s, struct tn_child *out, struct tn_error *err)
{
	char *path = NULL;
	char **envp = NULL;
	int fds[3] = {-1, -1, -1}, given[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
	int pipefd[2] = {-1, -1}, errw = -1, null_fd = -1, pidfd = -1;
	sigset_t all, old;
	pid_t pid;
	int rc = 0;

	*out = (struct tn_child){0, -1, -1, 0, 0, false};
	if (!s->argv || !s->argv[0])
		return tn_fail(err, TN_E_INVALID, "empty command");
	rc = find_program(s->argv[0], s->cwd, &path, err);
	if (rc < 0)
		goto out;
	if (s->cwd) {
		struct stat st;

		if (stat(s->cwd, &st) != 0) {
			rc = tn_fail_errno(err, errno, "%s", s->cwd);
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			rc = tn_fail(err, TN_E_INVALID, "%s: not a directory", s->cwd);
			goto out;
		}
	}
	for (int i = 0; i < 3; i++) {
		int src = given[i];

		if (src < 0) {
			if (null_fd < 0)
				null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (null_fd < 0) {
				rc = tn_fail_errno(err, errno, "open /dev/null");
				goto out;
			}
			src = null_fd;
		}
		fds[i] = high_fd(src);
		if (fds[i] < 0) {
			rc = tn_fail_errno(err, errno, "dup");
			goto out;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		rc = tn_fail_errno(err, errno, "pipe");
		goto out;
	}
	errw = high_fd(pipefd[1]);
	if (errw < 0) {
		rc = tn_fail_errno(err, errno, "dup");
		goto out;
	}
	envp = build_env(s->env);

	/* Signals stay blocked across fork so no handler of the agent runs
	 * in the child before it resets them. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_run(path, (char *const *)s->argv, envp, s->cwd, fds[0], fds[1], fds[2], errw);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		rc = tn_fail_errno(err, errno, "fork");
		goto out;
	}
	/* Only we can reap it, so the pid stays ours while we open this. */
	pidfd = pidfd_open(pid);
	if (pidfd < 0) {
		rc = tn_fail_errno(err, errno, "pidfd_open");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out;
	}
	out->pid = pid;
	out->pgid = pid;
	out->pidfd = pidfd;
	out->errfd = pipefd[0];
	pipefd[0] = -1;
	out->ours = true;
	/* The start time is fixed at fork, so reading it before the exec is
	 * fine; a failure here only weakens adoption later. */
	if (tn_proc_start_time(pid, &out->start_time) != 0)
		out->start_time = 0;
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (null_fd >= 0)
		close(null_fd);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (errw >= 0)
		close(errw);
	free(envp);
	free(path);
	return rc;
}

int tn_child_adopt(pid_t pid, uint64_t start_time, struct tn_child *out, struct tn_error *err)
{
	struct pollfd pfd;
	uint64_t now_start;
	int fd;

	*out = (struct tn_child){0, -1, -1, 0, 0, false};
	if (pid <= 1 || pid == getpid())
		return 0;
	fd = pidfd_open(pid);
	if (fd < 0) {
		if (errno == ESRCH || errno == EINVAL)
			return 0;
		return tn_fail_errno(err, errno, "pidfd_open %d", (int)pid);
	}
	/* Checked after the pidfd is open: if the start time still matches
	 * now, the pidfd was opened on that very process. */
	if (tn_proc_start_time(pid, &now_start) != 0 || now_start != start_time) {
		close(fd);
		return 0;
	}
	pfd = (struct pollfd){fd, POLLIN, 0};
	if (poll(&pfd, 1, 0) == 1) {
		/* Already ended (a zombie of ours, when the earlier supervisor
		 * lived in this process): reap it and call it stale. */
		siginfo_t si;

		memset(&si, 0, sizeof si);
		waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG);
		close(fd);
		return 0;
	}
	out->pid = pid;
	out->pgid = getpgid(pid) == pid ? pid : 0;
	out->pidfd = fd;
	out->start_time = start_time;
	out->ours = false;
	return 1;
}

void tn_child_reap(struct tn_child *c, struct tn_exit *out)
{
	siginfo_t si;
	struct child_error ce;

	memset(out, 0, sizeof *out);
	if (c->pid <= 0)
		return;
	memset(&si, 0, sizeof si);
	/* An adopted process may still be our child (an earlier supervisor in
	 * this same process started it): try anyway, ECHILD means unknown. */
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0 && c->ours) {
		/* The pidfd said it ended; the zombie is there or about to be. */
		waitid(P_PID, (id_t)c->pid, &si, WEXITED);
	}
	if (si.si_pid == c->pid) {
		out->known = true;
		if (si.si_code == CLD_EXITED)
			out->code = si.si_status;
		else
			out->signal = si.si_status;
	}
	if (c->errfd >= 0) {
		/* The write end closed at exec or at _exit: this never blocks. */
		if (read(c->errfd, &ce, sizeof ce) == (ssize_t)sizeof ce) {
			out->exec_errno = ce.errnum;
			out->chdir_failed = ce.chdir_failed != 0;
		}
	}
	tn_child_forget(c);
}

void tn_child_kill_reap(struct tn_child *c)
{
	struct tn_exit ignored;

	if (c->pid <= 0)
		return;
	tn_child_signal_group(c, SIGKILL);
	if (c->ours) {
		siginfo_t si;

		memset(&si, 0, sizeof si);
		waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOWAIT);
	}
	tn_child_reap(c, &ignored);
}

void tn_child_forget(struct tn_child *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->errfd >= 0)
		close(c->errfd);
	c->pidfd = -1;
	c->errfd = -1;
	c->pid = 0;
	c->pgid = 0;
}

int tn_child_signal_group(const struct tn_child *c, int sig)
{
	if (c->pid <= 0)
		return -ESRCH;
	/* Our bundles lead their group (setsid); an adopted pid that does
	 * not is signalled alone rather than hitting someone else's group.
	 * A child that has not reached setsid yet has no group: the signal
	 * to it alone stays pending until it unblocks signals, then acts. */
	if (c->pgid > 0 && kill(-c->pgid, sig) == 0)
		return 0;
	if (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) == 0)
		return 0;
	return -errno;
}

int tn_group_signal(pid_t pgid, int sig)
{
	if (pgid <= 0)
		return -ESRCH;
	return kill(-pgid, sig) == 0 ? 0 : -errno;
}

bool tn_group_alive(pid_t pgid)
{
	DIR *proc;
	struct dirent *de;
	bool alive = false;

	if (pgid <= 0 || (kill(-pgid, 0) != 0 && errno != EPERM))
		return false;
	/* kill() also counts zombies, and orphans stay zombies for good
	 * where pid 1 does not reap (containers): look at their state. */
	proc = opendir("/proc");
	if (!proc)
		return true;
	while (!alive && (de = readdir(proc))) {
		char state, *end;
		pid_t pgrp = 0;
		uint64_t start;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		if (read_stat((pid_t)pid, &state, &pgrp, &start) == 0 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			alive = true;
	}
	closedir(proc);
	return alive;
}

void tn_exit_describe(const struct tn_exit *e, const char *argv0, const char *cwd, char *buf,
		      size_t size)
{
	if (e->exec_errno) {
		if (e->chdir_failed)
			snprintf(buf, size, "chdir %s: %s", cwd ? cwd : ".",
				 strerror(e->exec_errno));
		else
			snprintf(buf, size, "exec %s: %s", argv0 ? argv0 : "?",
				 strerror(e->exec_errno));
	} else if (!e->known) {
		snprintf(buf, size, "exited (status unknown: adopted process)");
	} else if (e->signal) {
		const char *abbrev = sigabbrev_np(e->signal);

		snprintf(buf, size, "killed by signal %d (SIG%s)", e->signal,
			 abbrev ? abbrev : "?");
	} else {
		snprintf(buf, size, "exited with status %d", e->code);
	}
}
