/* test_api_backup.c - `tender-server backup FILE --data DIR` against a live
 * server under write load, and the command line's own answers.
 *
 * A writer thread keeps creating clusters over HTTP.  For every 201 it
 * notes how many backups had been started when the answer arrived; a row
 * answered before backup g started is committed before it, so backup g must
 * hold it.  Each backup is checked with SQLite itself (read-only open,
 * PRAGMA integrity_check, every such row present), and the last one is
 * served by a second tender-server whose data directory holds nothing but
 * that file: the clusters come back over HTTP, and the old admin token
 * still works there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
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
#include "xalloc.h"

#define DEADLINE_S 30
#define ROUNDS 3	/* backups taken while the writer runs */
#define WARMUP_ROWS 100 /* rows committed before the first backup */

/* ------------------------------------------------------------ child runs */

struct run {
	int status; /* exit code; 128 + signal; -1 when killed at the deadline */
	char *out, *err;
};

/* Runs tender-server with args (NULL-terminated) in dir, waiting at most
 * DEADLINE_S; its stdout and stderr are kept in dir. */
static void run_server_cmd(const char *dir, const char *const *args, struct run *r)
{
	char *out_path = xasprintf("%s/cmd.out", dir);
	char *err_path = xasprintf("%s/cmd.err", dir);
	const char *argv[16];
	size_t argc = 0;
	double deadline = th_now_s() + DEADLINE_S;
	int status = 0;
	size_t len;
	pid_t pid;

	argv[argc++] = TN_BUILDDIR "/tender-server";
	for (size_t i = 0; args[i] && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	memset(r, 0, sizeof *r);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Only async-signal-safe calls until exec: the parent has threads. */
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (o < 0 || e < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(e, STDERR_FILENO) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (th_now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			status = -1;
			break;
		}
		th_pause_ms(5);
	}
	r->status = status == -1	? -1
		    : WIFEXITED(status) ? WEXITSTATUS(status)
					: 128 + WTERMSIG(status);
	if (tn_read_file(out_path, 1 << 20, &r->out, &len, NULL) != 0)
		r->out = xstrdup("");
	if (tn_read_file(err_path, 1 << 20, &r->err, &len, NULL) != 0)
		r->err = xstrdup("");
	unlink(out_path);
	unlink(err_path);
	free(out_path);
	free(err_path);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* ------------------------------------------------------------ the writer */

/* The writer creates clusters, and every TOKEN_EVERY-th time an API token. */
#define TOKEN_EVERY 16

struct row {
	int n;	      /* cluster load-%06d, or token load-tok-%06d */
	int before;   /* backups started when its 201 arrived */
	char *secret; /* a token's; NULL for a cluster */
};

struct writer {
	struct th_server *srv;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	atomic_int backups_started;
	pthread_mutex_t lock;
	struct row *rows;
	size_t nrows, cap;
	size_t errors;
	char first_error[512];
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;

	for (int n = 1; !atomic_load(&w->stop); n++) {
		bool token = n % TOKEN_EVERY == 0;
		char body[96];
		struct th_response r;
		int before;

		if (token)
			snprintf(body, sizeof body,
				 "{\"name\": \"load-tok-%06d\", \"role\": \"viewer\"}", n);
		else
			snprintf(body, sizeof body, "{\"name\": \"load-%06d\"}", n);
		th_json(w->srv, "POST", token ? "/api/v1/tokens" : "/api/v1/clusters",
			w->srv->admin_token, body, &r);
		/* Read after the answer arrived: a backup started later must
		 * hold this row. */
		before = atomic_load(&w->backups_started);
		pthread_mutex_lock(&w->lock);
		if (r.status == 201) {
			const char *secret = json_string_value(json_object_get(r.json, "token"));

			if (w->nrows == w->cap) {
				w->cap = w->cap ? 2 * w->cap : 1024;
				w->rows = xrealloc(w->rows, w->cap * sizeof *w->rows);
			}
			w->rows[w->nrows++] =
			    (struct row){n, before, token ? xstrdup(secret ? secret : "") : NULL};
		} else if (w->errors++ == 0) {
			snprintf(w->first_error, sizeof w->first_error, "POST %s: %ld %s", body,
				 r.status, r.body);
		}
		pthread_mutex_unlock(&w->lock);
		th_response_free(&r);
	}
	return NULL;
}

static size_t writer_rows(struct writer *w)
{
	size_t n;

	pthread_mutex_lock(&w->lock);
	n = w->nrows;
	pthread_mutex_unlock(&w->lock);
	return n;
}

static void writer_stop(struct writer *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	w->running = false;
}

/* ------------------------------------------------------------ fixtures */

struct fixture {
	struct th_server src, copy;
	bool src_up, copy_up;
	char *dir; /* backups and command output */
	struct writer w;
};

static int setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof *fx);

	*state = fx;
	fx->dir = th_tmpdir();
	pthread_mutex_init(&fx->w.lock, NULL);
	th_server_start(&fx->src, NULL);
	fx->src_up = true;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	writer_stop(&fx->w);
	if (fx->src_up)
		th_server_destroy(&fx->src);
	if (fx->copy_up)
		th_server_destroy(&fx->copy);
	th_rmtree(fx->dir);
	free(fx->dir);
	for (size_t i = 0; i < fx->w.nrows; i++)
		free(fx->w.rows[i].secret);
	free(fx->w.rows);
	pthread_mutex_destroy(&fx->w.lock);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------ checks */

/* SIGTERM: the server exits 0, and its log holds no sanitizer report (an
 * ASan build prints leaks and errors there). */
static void assert_stops_cleanly(struct th_server *s)
{
	assert_true(th_server_exited_cleanly(s, th_server_stop(s)));
}

/* The backup at path, opened read-only: intact, and holding every row
 * committed before backup `round` started.  Returns the cluster count. */
static long check_backup(struct writer *w, const char *path, int round)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long clusters = 0;
	size_t expected = 0, expected_clusters = 0;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	if (rc != SQLITE_OK)
		fail_msg("backup %s: open read-only: %s", path, sqlite3_errstr(rc));
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
		fail_msg("backup %s: integrity_check: %s", path, sqlite3_column_text(st, 0));
	sqlite3_finalize(st);

	/* A snapshot: no dangling reference, and every cluster has the
	 * revision created in the same transaction. */
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail_msg("backup %s: foreign_key_check: a row of %s references nothing", path,
			 sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM clusters c LEFT JOIN "
					    "cluster_revisions r ON r.id = c.current_revision_id "
					    "AND r.cluster_id = c.id WHERE r.id IS NULL",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	if (sqlite3_column_int(st, 0) != 0)
		fail_msg("backup %s: %d cluster(s) without their current revision", path,
			 sqlite3_column_int(st, 0));
	sqlite3_finalize(st);

	for (int kind = 0; kind < 2; kind++) {
		assert_int_equal(sqlite3_prepare_v2(db,
						    kind ? "SELECT count(*) FROM api_tokens "
							   "WHERE name = ?"
							 : "SELECT count(*) FROM clusters "
							   "WHERE name = ?",
						    -1, &st, NULL),
				 SQLITE_OK);
		pthread_mutex_lock(&w->lock);
		for (size_t i = 0; i < w->nrows; i++) {
			char name[32];

			if (w->rows[i].before >= round || (w->rows[i].secret != NULL) != kind)
				continue;
			expected++;
			expected_clusters += !kind;
			snprintf(name, sizeof name, kind ? "load-tok-%06d" : "load-%06d",
				 w->rows[i].n);
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) {
				pthread_mutex_unlock(&w->lock);
				fail_msg("backup %d (%s) lacks %s %s, committed (201) before it "
					 "started",
					 round, path, kind ? "API token" : "cluster", name);
			}
		}
		pthread_mutex_unlock(&w->lock);
		sqlite3_finalize(st);
	}
	assert_true(expected >= WARMUP_ROWS);

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM clusters", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	clusters = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_true((size_t)clusters >= expected_clusters);
	return clusters;
}

/* Every cluster name the second server lists, page by page. */
static bool *listed_clusters(struct th_server *s, int max_n)
{
	bool *seen = xcalloc((size_t)max_n + 1, sizeof *seen);
	char *after = NULL;

	for (int pages = 0; pages < 1000; pages++) {
		char *path = after ? xasprintf("/api/v1/clusters?limit=1000&after=%s", after)
				   : xstrdup("/api/v1/clusters?limit=1000");
		struct th_response r;
		json_t *item;
		size_t i;
		const char *next;

		th_json(s, "GET", path, s->admin_token, NULL, &r);
		free(path);
		if (r.status != 200)
			fail_msg("GET /api/v1/clusters on the restored server: %ld %s", r.status,
				 r.body);
		json_array_foreach(json_object_get(r.json, "items"), i, item) {
			const char *name = json_string_value(json_object_get(item, "name"));
			int n = 0;

			if (name && sscanf(name, "load-%d", &n) == 1 && n >= 1 && n <= max_n)
				seen[n] = true;
		}
		next = json_string_value(json_object_get(r.json, "next"));
		free(after);
		after = next ? xstrdup(next) : NULL;
		th_response_free(&r);
		if (!after)
			return seen;
	}
	fail_msg("GET /api/v1/clusters: more than 1000 pages");
	return seen;
}

/* ------------------------------------------------------------ tests */

static void test_backup_under_write_load(void **state)
{
	struct fixture *fx = *state;
	struct writer *w = &fx->w;
	char *data = xasprintf("%s/var", fx->src.data_dir);
	char *files[ROUNDS];
	size_t during = 0;
	double deadline;

	w->srv = &fx->src;
	assert_int_equal(pthread_create(&w->thread, NULL, write_loop, w), 0);
	w->running = true;
	deadline = th_now_s() + DEADLINE_S;
	while (writer_rows(w) < WARMUP_ROWS) {
		if (th_now_s() > deadline) {
			writer_stop(w);
			fail_msg("the writer committed %zu clusters in %d s (%zu errors: %s)",
				 w->nrows, DEADLINE_S, w->errors, w->first_error);
		}
		th_pause_ms(10);
	}

	for (int g = 1; g <= ROUNDS; g++) {
		const char *args[] = {"backup", NULL, "--data", data, NULL};
		struct run r;
		size_t rows_at_start;

		files[g - 1] = xasprintf("%s/backup-%d.db", fx->dir, g);
		args[1] = files[g - 1];
		/* From here on the writer's answers count as "after backup g". */
		atomic_store(&w->backups_started, g);
		rows_at_start = writer_rows(w);
		run_server_cmd(fx->dir, args, &r);
		during += writer_rows(w) - rows_at_start;
		if (r.status != 0)
			fail_msg("backup %d exited %d: %s%s", g, r.status, r.out, r.err);
		assert_non_null(strstr(r.out, files[g - 1]));
		run_free(&r);
	}
	writer_stop(w);
	if (w->errors)
		fail_msg("%zu writes failed while backups ran; the first: %s", w->errors,
			 w->first_error);
	print_message("# %zu rows (clusters and tokens) written, %zu of them while a backup "
		      "ran\n",
		      w->nrows, during);

	for (int g = 1; g <= ROUNDS; g++) {
		struct stat st;
		char *wal = xasprintf("%s-wal", files[g - 1]);

		check_backup(w, files[g - 1], g);
		/* One self-contained file: nothing beside it to replay. */
		assert_int_not_equal(stat(wal, &st), 0);
		free(wal);
	}

	/* A second server on a data directory holding only the last backup. */
	{
		struct th_server *c = &fx->copy;
		char *var, *db;
		char *bytes = NULL;
		size_t len = 0;
		struct tn_error err;
		int max_n = 0;
		bool *seen;
		struct th_response r;

		memset(c, 0, sizeof *c);
		c->data_dir = th_tmpdir();
		c->log_path = xasprintf("%s/server.log", c->data_dir);
		c->admin_token = xstrdup(fx->src.admin_token);
		fx->copy_up = true;
		var = xasprintf("%s/var", c->data_dir);
		db = xasprintf("%s/tender.db", var);
		assert_int_equal(tn_mkdir_p(var, 0700, &err), 0);
		assert_int_equal(tn_read_file(files[ROUNDS - 1], 1ull << 30, &bytes, &len, &err),
				 0);
		assert_int_equal(tn_write_file_atomic(db, bytes, len, 0600, &err), 0);
		free(bytes);
		th_server_restart(c, NULL); /* the first start on that directory */

		for (size_t i = 0; i < w->nrows; i++)
			if (w->rows[i].n > max_n)
				max_n = w->rows[i].n;
		seen = listed_clusters(c, max_n);
		for (size_t i = 0; i < w->nrows; i++)
			if (w->rows[i].before < ROUNDS && !w->rows[i].secret && !seen[w->rows[i].n])
				fail_msg("the server on the backup does not list load-%06d, "
					 "committed before the backup",
					 w->rows[i].n);
		free(seen);
		/* Tokens created before the backup authenticate on its server. */
		for (size_t i = 0, tried = 0; i < w->nrows && tried < 4; i++) {
			if (w->rows[i].before >= ROUNDS || !w->rows[i].secret)
				continue;
			tried++;
			th_json(c, "GET", "/api/v1/clusters?limit=1", w->rows[i].secret, NULL, &r);
			if (r.status != 200)
				fail_msg("token load-tok-%06d (created before the backup) on the "
					 "restored server: %ld %s",
					 w->rows[i].n, r.status, r.body);
			th_response_free(&r);
		}
		{
			char path[64];

			snprintf(path, sizeof path, "/api/v1/clusters/load-%06d", w->rows[0].n);
			th_json(c, "GET", path, c->admin_token, NULL, &r);
			assert_int_equal(r.status, 200);
			assert_string_equal(json_string_value(json_object_get(r.json, "name")),
					    path + strlen("/api/v1/clusters/"));
			th_response_free(&r);
		}
		assert_stops_cleanly(c);
		free(var);
		free(db);
	}
	assert_stops_cleanly(&fx->src);
	for (int g = 0; g < ROUNDS; g++)
		free(files[g]);
	free(data);
}

static void test_backup_into_missing_directory(void **state)
{
	struct fixture *fx = *state;
	char *data = xasprintf("%s/var", fx->src.data_dir);
	char *dest = xasprintf("%s/no-such-dir/sub/backup.db", fx->dir);
	char *parent = xasprintf("%s/no-such-dir", fx->dir);
	const char *args[] = {"backup", dest, "--data", data, NULL};
	struct stat st;
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	if (r.status == 0 || r.status == -1 || r.status >= 128)
		fail_msg("backup into a missing directory: exit %d, stderr: %s", r.status, r.err);
	/* The message names the file and says what is wrong with it. */
	if (!strstr(r.err, dest) || !strstr(r.err, strerror(ENOENT)))
		fail_msg("backup into a missing directory: unclear message: %s", r.err);
	assert_int_not_equal(stat(parent, &st), 0); /* nothing made on the way */
	run_free(&r);
	free(parent);
	free(dest);
	free(data);
}

static void test_backup_without_database(void **state)
{
	struct fixture *fx = *state;
	char *dest = xasprintf("%s/nothing.db", fx->dir);
	const char *args[] = {"backup", dest, "--data", fx->dir, NULL};
	struct stat st;
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	assert_int_equal(r.status, 1);
	if (!strstr(r.err, "no database"))
		fail_msg("backup of a directory without a database: unclear message: %s", r.err);
	assert_int_not_equal(stat(dest, &st), 0);
	run_free(&r);
	free(dest);
}

static void test_backup_without_file_is_usage_error(void **state)
{
	struct fixture *fx = *state;
	const char *args[] = {"backup", NULL};
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	assert_int_equal(r.status, 2);
	if (!strstr(r.err, "FILE"))
		fail_msg("`tender-server backup`: the message does not ask for FILE: %s", r.err);
	run_free(&r);
}

/* An empty FILE is no file either (it used to get as far as the rename,
 * failing with "backup : rename: No such file or directory", exit 1). */
static void test_backup_to_empty_name_is_usage_error(void **state)
{
	struct fixture *fx = *state;
	char *data = xasprintf("%s/var", fx->src.data_dir);
	const char *args[] = {"backup", "", "--data", data, NULL};
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	assert_int_equal(r.status, 2);
	if (!strstr(r.err, "FILE"))
		fail_msg("`tender-server backup \"\"`: the message does not ask for FILE: %s",
			 r.err);
	run_free(&r);
	free(data);
}

static void test_help_exits_0(void **state)
{
	struct fixture *fx = *state;
	const char *args[] = {"--help", NULL};
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "--listen"));
	assert_non_null(strstr(r.out, "backup FILE"));
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void test_unknown_option_exits_2(void **state)
{
	struct fixture *fx = *state;
	const char *args[] = {"--no-such-option", NULL};
	struct run r;

	run_server_cmd(fx->dir, args, &r);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--help"));
	assert_string_equal(r.out, "");
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backup_under_write_load),
	    cmocka_unit_test(test_backup_into_missing_directory),
	    cmocka_unit_test(test_backup_without_database),
	    cmocka_unit_test(test_backup_without_file_is_usage_error),
	    cmocka_unit_test(test_backup_to_empty_name_is_usage_error),
	    cmocka_unit_test(test_help_exits_0),
	    cmocka_unit_test(test_unknown_option_exits_2),
	};

	return cmocka_run_group_tests_name("api_backup", tests, setup, teardown);
}
