/* test_sample_app.c - the Educa sample application (bundles/, distributions/)
 * as the rest of Tender will meet it: each packed bundle passes the server's
 * own upload checks, the web bundle extracted and run the way an agent would
 * (templates and run.command rendered) serves what it should and stops
 * cleanly on SIGTERM, and the distributions resolve and upload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "fsutil.h"
#include "harness.h"
#include "ingest.h"
#include "manifest.h"
#include "template.h"
#include "version.h"
#include "xalloc.h"

#define DEADLINE_MS 10000 /* for anything that should take milliseconds */

struct bundle_ref {
	const char *name, *version, *binary;
};

static const struct bundle_ref bundles[] = {
	{"org.educa.web", "1.0.0", "educa-web"},
	{"org.educa.web", "1.1.0", "educa-web"},
	{"org.educa.web", "1.2.0", "educa-web"},
	{"org.educa.worker", "1.0.0", "educa-worker"},
};
#define N_BUNDLES (sizeof bundles / sizeof bundles[0])

static const char *const dists[] = {"educa-1.0", "educa-1.1", "educa-1.2-broken"};
#define N_DISTS (sizeof dists / sizeof dists[0])

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_ok(int rc, const struct tn_error *err, const char *what)
{
	if (rc != 0)
		fail_msg("%s: %s", what, err->message);
}

static char *bundle_zip(const char *name, const char *version)
{
	return xasprintf("%s/bundles/%s-%s.zip", TN_BUILDDIR, name, version);
}

static char *read_whole(const char *path, size_t *len)
{
	struct tn_error err = {0};
	char *text = NULL;
	size_t n = 0;

	check_ok(tn_read_file(path, 64u << 20, &text, &n, &err), &err, path);
	if (len)
		*len = n;
	return text;
}

/* The manifest of a packed bundle, read the way the upload path reads it. */
static struct tn_manifest *zip_manifest(const char *zip)
{
	struct tn_archive *ar = NULL;
	struct tn_manifest *m = NULL;
	struct tn_error err = {0};
	char *text = NULL;
	size_t len = 0;

	check_ok(tn_archive_open(zip, NULL, &ar, &err), &err, zip);
	check_ok(tn_archive_read_entry(ar, "bundle.json", TN_MANIFEST_MAX_BYTES, &text, &len, &err),
		 &err, zip);
	check_ok(tn_manifest_parse(text, len, &m, &err), &err, zip);
	free(text);
	tn_archive_close(ar);
	return m;
}

/* ------------------------------------------------------------ (a) bundles */

struct name_check {
	const struct tn_manifest *m;
	const char *file;
	size_t count;
};

static int check_name(const char *name, void *ctx, struct tn_error *err)
{
	struct name_check *nc = ctx;

	nc->count++;
	if (tn_manifest_name_known(nc->m, name))
		return 0;
	return tn_fail(err, TN_E_INVALID, "%s: unknown name {{%s}}", nc->file, name);
}

static bool entry_expected(const char *name, const char *const *expected)
{
	for (size_t i = 0; expected[i]; i++)
		if (strcmp(name, expected[i]) == 0)
			return true;
	return false;
}

/* Every packed bundle: a safe zip whose entries are exactly bundle.json,
 * its binary (executable) and its template; bundle.json parses and names the
 * bundle the file is named for; every {{name}} of its templates is known;
 * and the server's own check of an upload accepts it. */
static void test_bundles_pass_upload_checks(void **state)
{
	for (size_t b = 0; b < N_BUNDLES; b++) {
		char *zip = bundle_zip(bundles[b].name, bundles[b].version);
		char *bin = xasprintf("bin/%s", bundles[b].binary);
		struct tn_archive *ar = NULL;
		struct tn_manifest *m = NULL, *m2 = NULL;
		const struct tn_archive_entry *e;
		struct tn_error err = {0};
		char *text = NULL;
		size_t len = 0, n_names = 0;
		const char *expected[8] = {"bundle.json", "bin/", bin, "etc/", NULL};

		check_ok(tn_archive_open(zip, NULL, &ar, &err), &err, zip);
		check_ok(tn_archive_read_entry(ar, "bundle.json", TN_MANIFEST_MAX_BYTES, &text, &len,
					       &err),
			 &err, zip);
		check_ok(tn_manifest_parse(text, len, &m, &err), &err, zip);
		assert_string_equal(m->name, bundles[b].name);
		assert_string_equal(m->version_str, bundles[b].version);

		assert_true(m->has_run);
		assert_string_equal(m->run.command[0], bin);
		e = tn_archive_find(ar, bin);
		assert_non_null(e);
		assert_true(e->is_exec);
		assert_true(e->size > 0);

		assert_int_equal(m->n_templates, 1);
		expected[4] = m->templates[0];
		for (size_t t = 0; t < m->n_templates; t++) {
			struct name_check nc = {m, m->templates[t], 0};
			char *tmpl = NULL;
			size_t tlen = 0;

			e = tn_archive_find(ar, m->templates[t]);
			assert_non_null(e);
			assert_false(e->is_dir);
			assert_false(e->is_exec);
			check_ok(tn_archive_read_entry(ar, m->templates[t], 1 << 20, &tmpl, &tlen,
						       &err),
				 &err, m->templates[t]);
			check_ok(tn_template_names(tmpl, tlen, check_name, &nc, &err), &err,
				 m->templates[t]);
			n_names += nc.count;
			free(tmpl);
		}
		assert_true(n_names >= 5); /* config keys and built-ins */

		for (size_t i = 0; i < tn_archive_entry_count(ar); i++) {
			const char *name = tn_archive_entry(ar, i)->name;

			if (!entry_expected(name, expected))
				fail_msg("%s: unexpected entry %s", zip, name);
		}
		assert_int_equal(tn_archive_entry_count(ar), 5);

		/* The server's upload path itself. */
		check_ok(tn_ingest_check_bundle(zip, NULL, NULL, &m2, &err), &err, zip);
		assert_string_equal(m2->version_str, bundles[b].version);

		tn_manifest_free(m2);
		tn_manifest_free(m);
		free(text);
		tn_archive_close(ar);
		free(bin);
		free(zip);
	}
}

static void assert_config_key(const struct tn_manifest *m, const char *key,
			      enum tn_config_type type, const char *def)
{
	const struct tn_manifest_config_key *k = tn_manifest_config_find(m, key);
	char *shown;

	assert_non_null(k);
	assert_int_equal(k->type, type);
	assert_non_null(k->description);
	shown = json_dumps(k->default_value, JSON_ENCODE_ANY);
	assert_string_equal(shown, def);
	free(shown);
}

/* The web bundle's manifest says what the rest of Tender relies on. */
static void test_web_manifest(void **state)
{
	for (size_t b = 0; b < 3; b++) {
		char *zip = bundle_zip("org.educa.web", bundles[b].version);
		struct tn_manifest *m = zip_manifest(zip);

		assert_int_equal(m->n_requires, 0);
		assert_int_equal(m->run.command_len, 7);
		assert_string_equal(m->run.command[2], "{{target.port_base}}");
		assert_true(m->has_health);
		assert_int_equal(m->health.kind, TN_PROBE_HTTP);
		assert_string_equal(m->health.http_path, "/healthz");
		assert_string_equal(m->health.port, "{{target.port_base}}");
		assert_non_null(m->serves_port);
		assert_string_equal(m->serves_port, "{{target.port_base}}");
		assert_int_equal(m->n_data, 1);
		assert_string_equal(m->data[0], "var");
		assert_string_equal(m->templates[0], "etc/educa.conf.tmpl");
		assert_int_equal(m->n_config, 2);
		assert_config_key(m, "greeting", TN_CONFIG_STRING, "\"hello\"");
		assert_config_key(m, "workers", TN_CONFIG_INT, "4");
		tn_manifest_free(m);
		free(zip);
	}
}

static void test_worker_manifest(void **state)
{
	char *zip = bundle_zip("org.educa.worker", "1.0.0");
	struct tn_manifest *m = zip_manifest(zip);
	char buf[TN_RANGE_STR_MAX];

	assert_int_equal(m->n_requires, 1);
	assert_string_equal(m->requires[0].name, "org.educa.web");
	assert_string_equal(tn_range_format(&m->requires[0].range, buf, sizeof buf),
			    "[1.0.0,2.0.0)");
	assert_false(m->has_health);
	assert_null(m->serves_port);
	assert_int_equal(m->n_data, 0);
	assert_int_equal(m->n_config, 2);
	assert_config_key(m, "interval_s", TN_CONFIG_INT, "5");
	assert_config_key(m, "path", TN_CONFIG_STRING, "\"/healthz\"");
	tn_manifest_free(m);
	free(zip);
}

/* Runs argv (NULL-terminated) and returns its exit status; stdout and
 * stderr go to the test's. */
static int run(const char *const *argv)
{
	pid_t pid = fork();
	int st = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void assert_same_bytes(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *x = read_whole(a, &la), *y = read_whole(b, &lb);

	if (la != lb || memcmp(x, y, la) != 0)
		fail_msg("%s and %s differ", a, b);
	free(x);
	free(y);
}

/* Packing again gives the same bytes: the zips are reproducible. */
static void test_packing_is_reproducible(void **state)
{
	char *dir = th_tmpdir();
	char *out = xasprintf("%s/again.zip", dir), *dout = xasprintf("%s/again-dist.zip", dir);
	char *zip = bundle_zip("org.educa.web", "1.1.0");
	char *wzip = bundle_zip("org.educa.worker", "1.0.0");
	const char *pack[] = {"/bin/sh",
			      TN_SRCDIR "/bundles/pack",
			      out,
			      "1.1.0",
			      TN_SRCDIR "/bundles/web",
			      TN_BUILDDIR "/bundles/web/educa-web-1.1.0",
			      "educa-web",
			      NULL};
	const char *dpack[] = {"/bin/sh", TN_SRCDIR "/distributions/pack", dout,
			       TN_SRCDIR "/distributions/educa-1.1.json", zip, wzip, NULL};

	assert_int_equal(run(pack), 0);
	assert_same_bytes(out, zip);
	assert_int_equal(run(dpack), 0);
	assert_same_bytes(dout, TN_BUILDDIR "/distributions/educa-1.1.zip");
	th_rmtree(dir);
	free(dir);
	free(out);
	free(dout);
	free(zip);
	free(wzip);
}

/* ------------------------------------------------------------ (b) educa-web */

/* A bundle extracted and prepared as an agent would: templates and
 * run.command rendered with the built-ins and the config; then its process. */
struct proc {
	char *dir;     /* temporary */
	char *release; /* dir/release: the extracted bundle; the process's cwd */
	char *log;     /* dir/out.log: its stderr (and stdout unless piped) */
	char **argv;   /* run.command, rendered */
	char *name;    /* "org.educa.web@1.1.0" */
	int port;      /* {{target.port_base}} */
	pid_t pid;
	int pidfd;
};

struct values {
	const char *const *kv; /* name, value, ..., NULL */
};

static const char *lookup(const char *name, void *ctx)
{
	const struct values *v = ctx;

	for (size_t i = 0; v->kv[i]; i += 2)
		if (strcmp(v->kv[i], name) == 0)
			return v->kv[i + 1];
	return NULL;
}

static char *render(const char *tmpl, size_t len, const struct values *v)
{
	struct tn_error err = {0};
	char *out = NULL;

	check_ok(tn_template_render(tmpl, len, lookup, (void *)v, 1 << 20, &out, NULL, &err), &err,
		 tmpl);
	return out;
}

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Extracts NAME-VERSION.zip and renders it with the config values in kv
 * (name, value, ..., NULL) and the built-ins, port being
 * {{target.port_base}}; `extra` is a line appended to each rendered
 * template (or NULL). */
static void proc_prepare(struct proc *w, const char *name, const char *version,
			 const char *const *kv, int port, const char *extra)
{
	char *zip = bundle_zip(name, version), *path;
	const char *all_kv[32];
	struct tn_archive *ar = NULL;
	struct tn_manifest *m = NULL;
	struct tn_error err = {0};
	struct values v = {all_kv};
	char port_s[16], *text;
	size_t len = 0, n = 0;

	memset(w, 0, sizeof *w);
	w->pid = -1;
	w->pidfd = -1;
	w->name = xasprintf("%s@%s", name, version);
	w->dir = th_tmpdir();
	w->release = xasprintf("%s/release", w->dir);
	w->log = xasprintf("%s/out.log", w->dir);
	w->port = port;
	snprintf(port_s, sizeof port_s, "%d", port);

	check_ok(tn_archive_open(zip, NULL, &ar, &err), &err, zip);
	check_ok(tn_archive_extract(ar, w->release, &err), &err, zip);
	tn_archive_close(ar);
	free(zip);

	for (size_t i = 0; kv[i] && n < 20; i++)
		all_kv[n++] = kv[i];
	all_kv[n++] = "target.id";
	all_kv[n++] = "t-test";
	all_kv[n++] = "target.address";
	all_kv[n++] = "127.0.0.1";
	all_kv[n++] = "target.port_base";
	all_kv[n++] = port_s;
	all_kv[n++] = "cluster.name";
	all_kv[n++] = "educa-test";
	all_kv[n++] = "distribution.version";
	all_kv[n++] = "9.9.0";
	all_kv[n] = NULL;

	path = xasprintf("%s/bundle.json", w->release);
	text = read_whole(path, &len);
	check_ok(tn_manifest_parse(text, len, &m, &err), &err, path);
	free(text);
	free(path);
	for (size_t t = 0; t < m->n_templates; t++) {
		char *src = xasprintf("%s/%s", w->release, m->templates[t]);
		char *dst = xstrdup(src), *out, *whole;

		/* The rendered file is the template's name without .tmpl. */
		assert_true(strlen(dst) > 5 && strcmp(dst + strlen(dst) - 5, ".tmpl") == 0);
		dst[strlen(dst) - 5] = '\0';
		text = read_whole(src, &len);
		out = render(text, len, &v);
		whole = xasprintf("%s%s%s", out, extra ? extra : "", extra ? "\n" : "");
		check_ok(tn_write_file_atomic(dst, whole, strlen(whole), 0644, &err), &err, dst);
		free(whole);
		free(out);
		free(text);
		free(dst);
		free(src);
	}
	w->argv = xcalloc(m->run.command_len + 1, sizeof *w->argv);
	for (size_t i = 0; i < m->run.command_len; i++)
		w->argv[i] = render(m->run.command[i], strlen(m->run.command[i]), &v);
	tn_manifest_free(m);
}

/* The web bundle with greeting, 2 workers and a free port. */
static void web_prepare(struct proc *w, const char *version, const char *greeting,
			const char *extra)
{
	const char *const kv[] = {"greeting", greeting, "workers", "2", NULL};

	proc_prepare(w, "org.educa.web", version, kv, free_port(), extra);
}

static char *proc_log(const struct proc *w)
{
	char *text = NULL;
	size_t len = 0;

	if (tn_read_file(w->log, 1 << 20, &text, &len, NULL) != 0)
		return xstrdup("(no log)");
	return text;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Starts the prepared bundle's process in its directory, stdout to out_fd
 * (or the log when -1), stderr to the log, watched through a pidfd. */
static void proc_spawn(struct proc *w, int out_fd)
{
	w->pid = fork();
	assert_true(w->pid >= 0);
	if (w->pid == 0) {
		int fd = open(w->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || chdir(w->release) != 0)
			_exit(126);
		dup2(out_fd >= 0 ? out_fd : fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(w->argv[0], w->argv);
		_exit(127);
	}
	w->pidfd = (int)syscall(SYS_pidfd_open, w->pid, 0);
	assert_true(w->pidfd >= 0);
}

/* Starts the prepared web bundle and waits until it accepts connections;
 * a failed start is seen at once through the pidfd. */
static void web_start(struct proc *w)
{
	int64_t deadline = now_ms() + DEADLINE_MS;

	proc_spawn(w, -1);
	for (;;) {
		struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
		int fd = tcp_connect(w->port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		if (poll(&p, 1, 10) > 0) {
			char *log = proc_log(w);

			fail_msg("%s exited during start-up:\n%s", w->name, log);
		}
		if (now_ms() > deadline)
			fail_msg("%s did not listen within the deadline", w->name);
	}
}

/* Waits (up to ms) for the process to end; returns its wait status, or -1
 * when it is still running. */
static int proc_wait(struct proc *w, int ms)
{
	struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
	int st = 0;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	assert_int_equal(waitpid(w->pid, &st, 0), w->pid);
	close(w->pidfd);
	w->pidfd = -1;
	w->pid = -1;
	return st;
}

/* SIGTERM; the process must exit 0 within max_ms.  Returns how long it
 * took. */
static int64_t proc_stop(struct proc *w, int max_ms)
{
	int64_t t0 = now_ms();
	int st;

	assert_int_equal(kill(w->pid, SIGTERM), 0);
	st = proc_wait(w, max_ms);
	if (st == -1)
		fail_msg("%s still running %d ms after SIGTERM", w->name, max_ms);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *log = proc_log(w);

		fail_msg("%s: wait status %#x after SIGTERM:\n%s", w->name, st, log);
	}
	return now_ms() - t0;
}

static void proc_destroy(struct proc *w)
{
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
	}
	if (w->pidfd >= 0)
		close(w->pidfd);
	for (size_t i = 0; w->argv && w->argv[i]; i++)
		free(w->argv[i]);
	free(w->argv);
	th_rmtree(w->dir);
	free(w->name);
	free(w->dir);
	free(w->release);
	free(w->log);
}

/* A client connection with its own read buffer, so that pipelined
 * responses are split correctly. */
struct client {
	int fd;
	size_t len;
	char buf[65536];
};

struct resp {
	int status;
	char head[4096];
	char body[8192];
	bool close; /* Connection: close */
};

static struct client *client_open(int port)
{
	struct client *c = xcalloc(1, sizeof *c);

	c->fd = tcp_connect(port);
	if (c->fd < 0)
		fail_msg("connect to port %d: %s", port, strerror(errno));
	return c;
}

static void client_close(struct client *c)
{
	close(c->fd);
	free(c);
}

static void client_send(struct client *c, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			fail_msg("send: %s", strerror(errno));
		off += (size_t)n;
	}
}

/* Reads more into c->buf before the deadline; 0 on EOF. */
static ssize_t client_fill(struct client *c, int64_t deadline)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int64_t left = deadline - now_ms();
	ssize_t n;

	if (left <= 0 || poll(&p, 1, (int)left) <= 0)
		fail_msg("no answer within the deadline");
	assert_true(c->len < sizeof c->buf);
	n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	if (n < 0)
		return 0; /* a reset counts as the end */
	c->len += (size_t)n;
	return n;
}

/* Reads one response (to a HEAD request when head: no body); false on EOF
 * before its first byte. */
static bool client_read_response(struct client *c, struct resp *r, bool head)
{
	int64_t deadline = now_ms() + DEADLINE_MS;
	char *end, *cl;
	size_t hl, bl;

	memset(r, 0, sizeof *r);
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (client_fill(c, deadline) == 0) {
			if (c->len == 0)
				return false;
			fail_msg("connection closed inside a response head");
		}
	hl = (size_t)(end - c->buf) + 4;
	assert_true(hl < sizeof r->head);
	memcpy(r->head, c->buf, hl);
	assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
	cl = strcasestr(r->head, "\r\nContent-Length:");
	assert_non_null(cl);
	bl = strtoul(cl + 17, NULL, 10);
	assert_true(bl < sizeof r->body);
	r->close = strcasestr(r->head, "\r\nConnection: close\r\n") != NULL;
	if (head)
		bl = 0;
	while (c->len < hl + bl)
		if (client_fill(c, deadline) == 0)
			fail_msg("connection closed inside a response body");
	memcpy(r->body, c->buf + hl, bl);
	memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
	c->len -= hl + bl;
	return true;
}

static bool client_read(struct client *c, struct resp *r)
{
	return client_read_response(c, r, false);
}

/* The connection ends (EOF or reset) before the deadline, with nothing
 * more sent. */
static void client_expect_eof(struct client *c)
{
	int64_t deadline = now_ms() + DEADLINE_MS;

	while (client_fill(c, deadline) > 0)
		;
	assert_int_equal(c->len, 0);
}

/* One request on a fresh connection. */
static void get(const struct proc *w, const char *path, struct resp *r)
{
	struct client *c = client_open(w->port);
	char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
			      path);

	client_send(c, req);
	assert_true(client_read(c, r));
	assert_true(r->close);
	client_expect_eof(c);
	client_close(c);
	free(req);
}

static const char *const web_versions[] = {"1.0.0", "1.1.0", "1.2.0"};

/* Each version answers with its own version and the rendered greeting;
 * 1.2.0 is the broken one, whose /healthz answers 503. */
static void test_web_versions(void **state)
{
	for (size_t i = 0; i < 3; i++) {
		const char *v = web_versions[i];
		char *want = xasprintf("educa-web %s on t-test: hello from the test\n", v);
		char *wantv = xasprintf("%s\n", v);
		char *hdr = xasprintf("\r\nX-Educa-Version: %s\r\n", v);
		struct proc w;
		struct resp r;

		web_prepare(&w, v, "hello from the test", NULL);
		web_start(&w);
		get(&w, "/", &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, want);
		assert_non_null(strstr(r.head, hdr));
		assert_non_null(strstr(r.head, "\r\nX-Educa-Target: t-test\r\n"));
		get(&w, "/version", &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, wantv);
		get(&w, "/healthz?probe=1", &r);
		if (strcmp(v, "1.2.0") == 0) {
			assert_int_equal(r.status, 503);
		} else {
			assert_int_equal(r.status, 200);
			assert_string_equal(r.body, "ok\n");
		}
		proc_stop(&w, 1000);
		proc_destroy(&w);
		free(want);
		free(wantv);
		free(hdr);
	}
}

static unsigned long counter(const struct proc *w)
{
	struct resp r;

	get(w, "/counter", &r);
	assert_int_equal(r.status, 200);
	return strtoul(r.body, NULL, 10);
}

/* /counter counts in the data directory, and the count survives a
 * restart on the same directory. */
static void test_web_counter_survives_restart(void **state)
{
	struct proc w;
	char *path, *text;

	web_prepare(&w, "1.1.0", "hi", NULL);
	web_start(&w);
	assert_int_equal(counter(&w), 1);
	assert_int_equal(counter(&w), 2);
	assert_int_equal(counter(&w), 3);
	path = xasprintf("%s/var/counter", w.release);
	text = read_whole(path, NULL);
	assert_string_equal(text, "3\n");
	free(text);
	proc_stop(&w, 1000);

	web_start(&w);
	assert_int_equal(counter(&w), 4);
	proc_stop(&w, 1000);
	text = read_whole(path, NULL);
	assert_string_equal(text, "4\n");
	free(text);
	free(path);
	proc_destroy(&w);
}

/* HTTP/1.1 keeps the connection, pipelined requests are answered in
 * order, HTTP/1.0 closes unless asked, HEAD has no body. */
static void test_web_keep_alive(void **state)
{
	struct proc w;
	struct client *c;
	struct resp r;

	web_prepare(&w, "1.0.0", "hi", NULL);
	web_start(&w);
	c = client_open(w.port);
	client_send(c, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(client_read(c, &r));
	assert_int_equal(r.status, 200);
	assert_false(r.close);
	client_send(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
		       "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
		       "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_true(client_read(c, &r));
	assert_string_equal(r.body, "ok\n");
	assert_true(client_read(c, &r));
	assert_string_equal(r.body, "1.0.0\n");
	assert_true(client_read(c, &r));
	assert_int_equal(r.status, 404);
	assert_true(r.close);
	client_expect_eof(c);
	client_close(c);

	c = client_open(w.port);
	client_send(c, "GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_true(client_read(c, &r));
	assert_non_null(strstr(r.head, "\r\nConnection: keep-alive\r\n"));
	client_send(c, "HEAD / HTTP/1.0\r\n\r\n");
	assert_true(client_read_response(c, &r, true));
	assert_non_null(strstr(r.head, "\r\nContent-Length: 30\r\n"));
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "");
	assert_true(r.close);
	client_expect_eof(c);
	client_close(c);
	proc_stop(&w, 1000);
	proc_destroy(&w);
}

/* Requests it cannot serve get a status that says why. */
static void test_web_refuses(void **state)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{"POST /counter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 405},
		{"GET /counter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 400},
		{"GET /counter HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"GET /\r\n\r\n", 400},
		{"GET / HTTP/2.0\r\n\r\n", 505},
		{"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400},
	};
	struct proc w;
	struct client *c;
	struct resp r;
	char *big = xcalloc(1, 10000);

	web_prepare(&w, "1.1.0", "hi", NULL);
	web_start(&w);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = client_open(w.port);
		client_send(c, cases[i].req);
		assert_true(client_read(c, &r));
		assert_int_equal(r.status, cases[i].status);
		assert_true(r.close);
		if (cases[i].status == 405)
			assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
		client_expect_eof(c);
		client_close(c);
	}
	/* A head larger than the server reads. */
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', 9000);
	c = client_open(w.port);
	client_send(c, big);
	assert_true(client_read(c, &r));
	assert_int_equal(r.status, 431);
	client_close(c);
	free(big);
	/* Nothing of that counted. */
	assert_int_equal(counter(&w), 1);
	proc_stop(&w, 1000);
	proc_destroy(&w);
}

/* Stalled and idle connections hold no worker: with 2 worker loops, 16
 * half-sent requests do not keep a 17th client from its answer, and 48
 * clients at once are all served. */
static void test_web_concurrent(void **state)
{
	struct client *stalled[16], *many[48];
	struct proc w;
	struct resp r;

	web_prepare(&w, "1.1.0", "hi", NULL);
	web_start(&w);
	for (size_t i = 0; i < 16; i++) {
		stalled[i] = client_open(w.port);
		client_send(stalled[i], "GET /version HTTP/1.1\r\nHost: x\r\n");
	}
	get(&w, "/healthz", &r);
	assert_int_equal(r.status, 200);
	for (size_t i = 0; i < 16; i++) {
		client_send(stalled[i], "\r\n");
		assert_true(client_read(stalled[i], &r));
		assert_string_equal(r.body, "1.1.0\n");
		client_close(stalled[i]);
	}
	for (size_t i = 0; i < 48; i++)
		many[i] = client_open(w.port);
	for (size_t i = 0; i < 48; i++)
		client_send(many[i], "GET /counter HTTP/1.1\r\nHost: x\r\n\r\n");
	for (size_t i = 0; i < 48; i++) {
		assert_true(client_read(many[i], &r));
		assert_int_equal(r.status, 200);
		client_close(many[i]);
	}
	assert_int_equal(counter(&w), 49); /* every increment kept */
	proc_stop(&w, 1000);
	proc_destroy(&w);
}

/* SIGTERM: idle connections are closed, new ones refused, the request in
 * flight is finished (with Connection: close), and the process exits 0
 * within a second. */
static void test_web_sigterm_finishes_in_flight(void **state)
{
	struct client *idle, *busy;
	struct proc w;
	struct resp r;
	int64_t t0;
	int fd;

	web_prepare(&w, "1.1.0", "hi", NULL);
	web_start(&w);
	idle = client_open(w.port);
	busy = client_open(w.port);
	/* One request each, so that both are accepted and kept alive. */
	client_send(idle, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(client_read(idle, &r));
	client_send(busy, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(client_read(busy, &r));
	/* busy starts a second request and stops half-way. */
	client_send(busy, "GET /counter HTTP/1.1\r\nHost: x\r\n");

	t0 = now_ms();
	assert_int_equal(kill(w.pid, SIGTERM), 0);
	client_expect_eof(idle); /* the server has seen the signal */
	fd = tcp_connect(w.port);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_int_equal(proc_wait(&w, 0), -1); /* still finishing busy's request */

	client_send(busy, "\r\n");
	assert_true(client_read(busy, &r));
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "1\n");
	assert_true(r.close);
	client_expect_eof(busy);
	{
		int st = proc_wait(&w, 1000);

		assert_int_not_equal(st, -1);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_true(now_ms() - t0 < 1000);
	client_close(idle);
	client_close(busy);
	proc_destroy(&w);
}

/* A request that never completes does not hold the exit: 0 within a
 * second all the same. */
static void test_web_sigterm_bounded(void **state)
{
	struct client *c;
	struct proc w;
	struct resp r;

	web_prepare(&w, "1.0.0", "hi", NULL);
	web_start(&w);
	c = client_open(w.port);
	client_send(c, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(client_read(c, &r));
	client_send(c, "GET /version HTTP/1.1\r\n");
	assert_true(proc_stop(&w, 1000) < 1000);
	client_expect_eof(c);
	client_close(c);
	proc_destroy(&w);
}

/* A config it does not understand stops it at start, naming the line. */
static void test_web_bad_config(void **state)
{
	struct proc w;
	char *log;
	int st;

	web_prepare(&w, "1.1.0", "hi", "colour = blue");
	proc_spawn(&w, -1);
	st = proc_wait(&w, DEADLINE_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	log = proc_log(&w);
	assert_non_null(strstr(log, "etc/educa.conf:8: colour: unknown setting"));
	free(log);
	proc_destroy(&w);
}

/* Reads from fd into buf (NUL-terminated, *len bytes so far) until it
 * holds want or the stream ends; fails at the deadline. */
static bool read_until(int fd, char *buf, size_t size, size_t *len, const char *want)
{
	int64_t deadline = now_ms() + DEADLINE_MS;

	while (!(want && strstr(buf, want))) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			fail_msg("no \"%s\" within the deadline; got:\n%s", want, buf);
		assert_true(*len < size - 1);
		n = read(fd, buf + *len, size - 1 - *len);
		if (n <= 0)
			return false;
		*len += (size_t)n;
		buf[*len] = '\0';
	}
	return true;
}

/* The worker against a running web bundle: a job every interval_s, each
 * GETting its path and logging the answer on stdout; a web that has gone
 * is logged, not fatal; SIGTERM stops it at once, exit 0. */
static void test_worker_runs(void **state)
{
	const char *const kv[] = {"interval_s", "1", "path", "/counter", NULL};
	struct proc web, worker;
	char out[16384] = "", *want;
	size_t len = 0;
	int pipefd[2];

	web_prepare(&web, "1.1.0", "hi", NULL);
	web_start(&web);
	proc_prepare(&worker, "org.educa.worker", "1.0.0", kv, web.port, NULL);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	proc_spawn(&worker, pipefd[1]);
	close(pipefd[1]);

	want = xasprintf("educa-worker 1.0.0 on t-test: distribution 9.9.0, every 1 s GET "
			 "http://127.0.0.1:%d/counter\n",
			 web.port);
	assert_true(read_until(pipefd[0], out, sizeof out, &len, want));
	assert_true(read_until(pipefd[0], out, sizeof out, &len,
			       "educa-worker 1.0.0 on t-test: job 1: GET /counter -> 200 1\n"));
	proc_stop(&web, 1000);
	assert_true(read_until(pipefd[0], out, sizeof out, &len,
			       "failed: connect: Connection refused\n"));
	assert_true(proc_stop(&worker, 1000) < 1000);
	assert_false(read_until(pipefd[0], out, sizeof out, &len, NULL));
	assert_non_null(strstr(out, " jobs\n"));
	assert_non_null(strstr(out, ": stopping after "));

	close(pipefd[0]);
	free(want);
	proc_destroy(&worker);
	proc_destroy(&web);
}

/* ------------------------------------------------------------ (c) distributions */

struct dist {
	json_t *doc;
	struct tn_manifest *ms[8];
	size_t n;
};

static void dist_load(struct dist *d, const char *name)
{
	char *path = xasprintf("%s/distributions/%s.json", TN_SRCDIR, name);
	json_error_t jerr;
	json_t *b;
	size_t i;

	memset(d, 0, sizeof *d);
	d->doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!d->doc)
		fail_msg("%s: %s", path, jerr.text);
	assert_string_equal(json_string_value(json_object_get(d->doc, "name")), "educa");
	json_array_foreach(json_object_get(d->doc, "bundles"), i, b)
	{
		char *zip = bundle_zip(json_string_value(json_object_get(b, "name")),
				       json_string_value(json_object_get(b, "version")));

		assert_true(d->n < 8);
		d->ms[d->n++] = zip_manifest(zip);
		free(zip);
	}
	free(path);
}

static void dist_free(struct dist *d)
{
	for (size_t i = 0; i < d->n; i++)
		tn_manifest_free(d->ms[i]);
	json_decref(d->doc);
}

/* Every requirement of a bundle of the set is met by a bundle of the set,
 * in range; returns how many requirements there were. */
static size_t resolve(struct tn_manifest *const *ms, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		for (size_t r = 0; r < ms[i]->n_requires; r++) {
			const struct tn_manifest_require *req = &ms[i]->requires[r];
			bool met = false;

			for (size_t j = 0; j < n; j++)
				if (strcmp(ms[j]->name, req->name) == 0)
					met = tn_range_contains(&req->range, &ms[j]->version);
			if (!met)
				return SIZE_MAX;
			count++;
		}
	}
	return count;
}

/* Each distribution's bundle set resolves (the worker's requirement on
 * web [1.0,2.0) is met, by 1.2.0 too: its fault shows only at run time),
 * and the server's own distribution check, config included, accepts it. */
static void test_distributions_resolve(void **state)
{
	static const char *const greetings[] = {"hello from 1.0", "hello from 1.1",
						 "hello from 1.2"};

	for (size_t i = 0; i < N_DISTS; i++) {
		struct dist d;
		struct tn_error err = {0};
		json_t *web;

		dist_load(&d, dists[i]);
		assert_int_equal(d.n, 2);
		assert_string_equal(d.ms[0]->name, "org.educa.web");
		assert_string_equal(d.ms[0]->version_str, web_versions[i]);
		assert_string_equal(d.ms[1]->name, "org.educa.worker");
		assert_int_equal(resolve(d.ms, d.n), 1);
		check_ok(tn_ingest_check_distribution(d.ms, d.n, json_object_get(d.doc, "config"),
						      &err),
			 &err, dists[i]);
		web = json_object_get(json_object_get(d.doc, "config"), "org.educa.web");
		assert_string_equal(json_string_value(json_object_get(web, "greeting")),
				    greetings[i]);
		dist_free(&d);
	}
}

/* The requirement bites: a web 2.0.0 or no web at all does not resolve. */
static void test_worker_requires_web(void **state)
{
	char *zip = bundle_zip("org.educa.web", "1.1.0");
	char *wzip = bundle_zip("org.educa.worker", "1.0.0");
	struct tn_manifest *web = zip_manifest(zip), *worker = zip_manifest(wzip), *web2 = NULL;
	struct tn_manifest *set[2];
	struct tn_error err = {0};
	json_t *raw = json_deep_copy(web->raw);
	char *text;

	json_object_set_new(raw, "version", json_string("2.0.0"));
	text = json_dumps(raw, 0);
	check_ok(tn_manifest_parse(text, strlen(text), &web2, &err), &err, "web 2.0.0");

	set[0] = web2;
	set[1] = worker;
	assert_int_equal(resolve(set, 2), SIZE_MAX);
	assert_int_equal(tn_ingest_check_distribution(set, 2, NULL, &err), -TN_E_UNRESOLVED);
	assert_non_null(strstr(err.message, "org.educa.web"));
	assert_non_null(strstr(err.message, "2.0.0"));

	set[0] = worker;
	assert_int_equal(resolve(set, 1), SIZE_MAX);
	assert_int_equal(tn_ingest_check_distribution(set, 1, NULL, &err), -TN_E_UNRESOLVED);

	set[0] = web;
	set[1] = worker;
	assert_int_equal(resolve(set, 2), 1);

	free(text);
	json_decref(raw);
	tn_manifest_free(web2);
	tn_manifest_free(worker);
	tn_manifest_free(web);
	free(zip);
	free(wzip);
}

/* Each distribution archive holds distribution.json (the source file as
 * is) and exactly the bundles it names, byte for byte as packed. */
static void test_distribution_archives(void **state)
{
	for (size_t i = 0; i < N_DISTS; i++) {
		char *zip = xasprintf("%s/distributions/%s.zip", TN_BUILDDIR, dists[i]);
		char *json = xasprintf("%s/distributions/%s.json", TN_SRCDIR, dists[i]);
		struct tn_archive *ar = NULL;
		struct tn_error err = {0};
		size_t len = 0, slen = 0, files = 0, idx, n_bundles;
		char *text = NULL, *src = read_whole(json, &slen);
		json_t *doc = json_loads(src, 0, NULL), *b;

		check_ok(tn_archive_open(zip, NULL, &ar, &err), &err, zip);
		check_ok(tn_archive_read_entry(ar, "distribution.json", 1 << 20, &text, &len, &err),
			 &err, zip);
		assert_int_equal(len, slen);
		assert_memory_equal(text, src, len);
		free(text);
		json_array_foreach(json_object_get(doc, "bundles"), idx, b)
		{
			const char *bn = json_string_value(json_object_get(b, "name"));
			const char *bv = json_string_value(json_object_get(b, "version"));
			char *entry = xasprintf("bundles/%s-%s.zip", bn, bv);
			char *built = bundle_zip(bn, bv), *want;
			size_t wlen = 0;

			check_ok(tn_archive_read_entry(ar, entry, 64u << 20, &text, &len, &err),
				 &err, entry);
			want = read_whole(built, &wlen);
			assert_int_equal(len, wlen);
			assert_memory_equal(text, want, len);
			free(want);
			free(text);
			free(built);
			free(entry);
			files++;
		}
		n_bundles = files;
		files = 0;
		for (size_t e = 0; e < tn_archive_entry_count(ar); e++)
			if (!tn_archive_entry(ar, e)->is_dir)
				files++;
		assert_int_equal(n_bundles, 2);
		assert_int_equal(files, n_bundles + 1); /* and distribution.json */
		json_decref(doc);
		free(src);
		tn_archive_close(ar);
		free(json);
		free(zip);
	}
}

/* A real tender-server takes the three distribution archives as they are. */
static void test_distributions_upload(void **state)
{
	struct th_server s;
	char *dev;

	th_server_start(&s, NULL);
	dev = th_make_token(&s, "dev", "developer");
	for (size_t i = 0; i < N_DISTS; i++) {
		char *zip = xasprintf("%s/distributions/%s.zip", TN_BUILDDIR, dists[i]);
		struct th_request rq = {.method = "POST",
					.token = dev,
					.content_type = "application/zip",
					.upload_file = zip};
		struct th_response r;

		th_http(&s, "/api/v1/distributions", &rq, &r);
		if (r.status != 201)
			fail_msg("%s: %ld %s", zip, r.status, r.body);
		th_response_free(&r);
		free(zip);
	}
	{
		struct th_request rq = {.token = dev};
		struct th_response r;
		json_t *items;

		th_http(&s, "/api/v1/distributions/educa/1.1", &rq, &r);
		assert_int_equal(r.status, 200);
		assert_non_null(r.json);
		assert_string_equal(json_string_value(json_object_get(r.json, "version")), "1.1.0");
		th_response_free(&r);

		th_http(&s, "/api/v1/bundles", &rq, &r);
		assert_int_equal(r.status, 200);
		items = json_object_get(r.json, "items");
		assert_int_equal(json_array_size(items), N_BUNDLES);
		th_response_free(&r);
	}
	free(dev);
	assert_true(th_server_exited_cleanly(&s, th_server_stop(&s)));
	th_server_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bundles_pass_upload_checks),
		cmocka_unit_test(test_web_manifest),
		cmocka_unit_test(test_worker_manifest),
		cmocka_unit_test(test_packing_is_reproducible),
		cmocka_unit_test(test_web_versions),
		cmocka_unit_test(test_web_counter_survives_restart),
		cmocka_unit_test(test_web_keep_alive),
		cmocka_unit_test(test_web_refuses),
		cmocka_unit_test(test_web_concurrent),
		cmocka_unit_test(test_web_sigterm_finishes_in_flight),
		cmocka_unit_test(test_web_sigterm_bounded),
		cmocka_unit_test(test_web_bad_config),
		cmocka_unit_test(test_worker_runs),
		cmocka_unit_test(test_distributions_resolve),
		cmocka_unit_test(test_worker_requires_web),
		cmocka_unit_test(test_distribution_archives),
		cmocka_unit_test(test_distributions_upload),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
