/* test_api_crash.c - kill -9 of tender-server in the middle of a large
 * upload, then a restart on the same data directory:
 *
 *   - the database is consistent (PRAGMA integrity_check, read-only) and
 *     the bundle list is empty;
 *   - no half-written blob is visible under blobs/sha256, and the partial
 *     upload left in blobs/tmp by the crash is gone after the start;
 *   - the same upload then succeeds (201) with the right sha256, and the
 *     archive downloads back byte for byte.
 *
 * The upload is a ~200 MiB bundle of incompressible bytes, streamed from a
 * libcurl read callback in a thread.  The callback holds the body after
 * HOLD_AT bytes (the server then waits for the rest), the test polls
 * blobs/tmp until the server has written a partial file, and kills it
 * there: the kill lands mid-body every time, with no timing guess.
 *
 * The same held upload serves two more cases: SIGTERM mid-upload with an
 * event stream open (exit 0, clean log, nothing of the upload kept), and a
 * second tender-server started on the live data directory (refused before
 * it touches anything; the first one's upload then completes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "dbcheck.h"
#include "harness.h"
#include "xalloc.h"
#include "zipwriter.h"

#define PAYLOAD_BYTES (200u << 20)
#define HOLD_AT (48u << 20)   /* bytes sent before the body is held */
#define PARTIAL_AT (8u << 20) /* a temp file this big is "mid-body" */
#define DEADLINE_S 60

struct fixture {
	struct th_server srv;
	bool srv_up;
	char *dir;     /* temp dir of the fixture archive */
	char *archive; /* the bundle zip */
	char sha[TN_SHA256_HEX_LEN + 1];
	uint64_t size;
	char *token; /* a developer's */
	/* The held upload. */
	pthread_t uploader;
	bool uploader_running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool released;
	bool resume; /* on release, send the rest instead of aborting */
	char *upload_body;
	size_t upload_len;
	uint64_t sent;
	long upload_status;
	CURLcode upload_result;
};

/* xorshift64*: fast, and nothing a compressor can use. */
static void *incompressible(size_t len, uint64_t seed)
{
	uint64_t *p = xmalloc(len + 8);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < (len + 7) / 8; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = x * 0x2545F4914F6CDD1Dull;
	}
	return p;
}

static char *data_path(struct fixture *fx, const char *rel)
{
	return xasprintf("%s/var/%s", fx->srv.data_dir, rel);
}

/* The largest regular file directly in dir (0 when none or missing). */
static uint64_t largest_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;

		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > best)
			best = (uint64_t)st.st_size;
		free(p);
	}
	closedir(d);
	return best;
}

/* ------------------------------------------------------------ the held upload */

struct reader {
	struct fixture *fx;
	FILE *f;
};

static size_t held_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct reader *rd = ctx;
	struct fixture *fx = rd->fx;
	size_t want = size * n, got;

	pthread_mutex_lock(&fx->lock);
	if (fx->sent >= HOLD_AT && !fx->resume) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += DEADLINE_S;
		while (!fx->released)
			if (pthread_cond_timedwait(&fx->cond, &fx->lock, &until) != 0)
				break;
		if (!fx->resume) {
			pthread_mutex_unlock(&fx->lock);
			return CURL_READFUNC_ABORT;
		}
	}
	if (!fx->resume && want > HOLD_AT - fx->sent)
		want = HOLD_AT - fx->sent;
	pthread_mutex_unlock(&fx->lock);
	got = fread(buf, 1, want, rd->f);
	pthread_mutex_lock(&fx->lock);
	fx->sent += got;
	pthread_mutex_unlock(&fx->lock);
	return got ? got : CURL_READFUNC_ABORT;
}

static size_t keep_body(char *data, size_t size, size_t n, void *ctx)
{
	struct fixture *fx = ctx;

	fx->upload_body = xrealloc(fx->upload_body, fx->upload_len + size * n + 1);
	memcpy(fx->upload_body + fx->upload_len, data, size * n);
	fx->upload_len += size * n;
	fx->upload_body[fx->upload_len] = '\0';
	return size * n;
}

static void *upload_held(void *arg)
{
	struct fixture *fx = arg;
	struct reader rd = {fx, fopen(fx->archive, "rb")};
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *url = xasprintf("%s/api/v1/bundles", fx->srv.url);
	char *auth = xasprintf("Authorization: Bearer %s", fx->token);

	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/zip");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
	curl_easy_setopt(c, CURLOPT_READFUNCTION, held_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &rd);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)fx->size);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, fx);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)DEADLINE_S * 2);
	fx->upload_result = rd.f ? curl_easy_perform(c) : CURLE_READ_ERROR;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &fx->upload_status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
	if (rd.f)
		fclose(rd.f);
	return NULL;
}

/* Lets the held upload go on: it aborts, or with resume sends the rest;
 * then waits for its end. */
static void release_uploader_to(struct fixture *fx, bool resume)
{
	if (!fx->uploader_running)
		return;
	pthread_mutex_lock(&fx->lock);
	fx->resume = resume;
	fx->released = true;
	pthread_cond_broadcast(&fx->cond);
	pthread_mutex_unlock(&fx->lock);
	pthread_join(fx->uploader, NULL);
	fx->uploader_running = false;
}

static void release_uploader(struct fixture *fx)
{
	release_uploader_to(fx, false);
}

/* ------------------------------------------------------------ fixtures */

static struct fixture the_fixture;

/* Once: the archive, its sha256 and size. */
static int group_setup(void **state)
{
	struct fixture *fx = &the_fixture;
	static const char manifest[] = "{\"name\": \"bigbundle\", \"version\": \"1.0.0\"}\n";
	void *payload = incompressible(PAYLOAD_BYTES, 42);
	const struct zentry es[] = {
	    {.name = "bundle.json", .data = manifest, .len = sizeof manifest - 1},
	    {.name = "payload.bin", .data = payload, .len = PAYLOAD_BYTES},
	};
	struct stat st;
	struct tn_error err;
	int rc = 0;

	(void)state;
	pthread_mutex_init(&fx->lock, NULL);
	pthread_cond_init(&fx->cond, NULL);
	fx->dir = th_tmpdir();
	fx->archive = xasprintf("%s/bigbundle.zip", fx->dir);
	write_zip_file(fx->archive, es, 2, NULL);
	free(payload);
	if (stat(fx->archive, &st) != 0 || tn_sha256_file_hex(fx->archive, fx->sha, &err) != 0)
		rc = -1;
	fx->size = (uint64_t)st.st_size;
	return rc;
}

static int group_teardown(void **state)
{
	struct fixture *fx = &the_fixture;

	(void)state;
	if (fx->dir)
		th_rmtree(fx->dir);
	free(fx->dir);
	free(fx->archive);
	pthread_cond_destroy(&fx->cond);
	pthread_mutex_destroy(&fx->lock);
	return 0;
}

/* Each test: a fresh server and a developer's token. */
static int setup(void **state)
{
	struct fixture *fx = &the_fixture;

	fx->released = false;
	fx->resume = false;
	fx->sent = 0;
	fx->upload_status = 0;
	free(fx->upload_body);
	fx->upload_body = NULL;
	fx->upload_len = 0;
	th_server_start(&fx->srv, NULL);
	fx->srv_up = true;
	fx->token = th_make_token(&fx->srv, "uploader", "developer");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = &the_fixture;

	(void)state;
	/* The server goes first: a held upload then fails at once. */
	if (fx->srv_up)
		th_server_destroy(&fx->srv);
	fx->srv_up = false;
	release_uploader(fx);
	free(fx->token);
	fx->token = NULL;
	free(fx->upload_body);
	fx->upload_body = NULL;
	return 0;
}

/* ------------------------------------------------------------ checks */

/* SIGTERM: the server exits 0, and its log holds no sanitizer report (an
 * ASan build prints leaks and errors there). */
static void assert_stops_cleanly(struct th_server *s)
{
	assert_true(th_server_exited_cleanly(s, th_server_stop(s)));
}

/* dir exists, and holds no file (what: why it matters). */
static void assert_no_files(const char *dir, const char *what)
{
	struct stat st;
	size_t n;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		fail_msg("%s: %s is not a directory", what, dir);
	n = th_count_files(dir);
	if (n != 0)
		fail_msg("%s: %s holds %zu file(s)", what, dir, n);
}

static void assert_db_consistent(const char *db_path)
{
	char why[512];

	if (!th_db_consistent(db_path, why, sizeof why))
		fail_msg("%s", why);
}

struct hashing_sink {
	struct tn_sha256 *h;
	uint64_t len;
};

static size_t hash_body(char *data, size_t size, size_t n, void *ctx)
{
	struct hashing_sink *s = ctx;

	tn_sha256_update(s->h, data, size * n);
	s->len += size * n;
	return size * n;
}

/* GETs path and returns its status, the sha256 and the length of its body,
 * streamed (never held in memory). */
static long download_hash(struct fixture *fx, const char *path, char hex[TN_SHA256_HEX_LEN + 1],
			  uint64_t *len)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct hashing_sink sink = {tn_sha256_new(), 0};
	char *url = xasprintf("%s%s", fx->srv.url, path);
	char *auth = xasprintf("Authorization: Bearer %s", fx->token);
	long status = 0;
	CURLcode cc;

	hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hash_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)DEADLINE_S);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	tn_sha256_final_hex(sink.h, hex);
	*len = sink.len;
	tn_sha256_free(sink.h);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
	if (cc != CURLE_OK)
		fail_msg("GET %s: %s", path, curl_easy_strerror(cc));
	return status;
}

/* Starts the held upload and waits until the server's blobs/tmp holds at
 * least PARTIAL_AT bytes of it. */
static void start_held_upload(struct fixture *fx, const char *tmp_dir)
{
	double deadline = th_now_s() + DEADLINE_S;
	uint64_t partial;

	assert_int_equal(pthread_create(&fx->uploader, NULL, upload_held, fx), 0);
	fx->uploader_running = true;
	while ((partial = largest_file(tmp_dir)) < PARTIAL_AT) {
		if (th_now_s() > deadline)
			fail_msg("after %d s the server's blobs/tmp holds no partial upload "
				 "(largest file: %llu bytes)",
				 DEADLINE_S, (unsigned long long)partial);
		th_pause_ms(10);
	}
}

/* ------------------------------------------------------------ event stream */

struct stream_reader {
	struct fixture *fx;
	pthread_t thread;
	atomic_size_t bytes;
	long status;
	CURLcode result;
};

static size_t count_stream(char *data, size_t size, size_t n, void *ctx)
{
	struct stream_reader *sr = ctx;

	(void)data;
	atomic_fetch_add(&sr->bytes, size * n);
	return size * n;
}

/* Reads GET /api/v1/events/stream until the server ends it. */
static void *read_stream(void *arg)
{
	struct stream_reader *sr = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *url = xasprintf("%s/api/v1/events/stream", sr->fx->srv.url);
	char *auth = xasprintf("Authorization: Bearer %s", sr->fx->token);

	hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, count_stream);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sr);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)DEADLINE_S);
	sr->result = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &sr->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(url);
	return NULL;
}

/* ------------------------------------------------------------ the tests */

static void test_kill9_mid_upload_then_restart(void **state)
{
	struct fixture *fx = *state;
	char *tmp_dir = data_path(fx, "blobs/tmp");
	char *sha_dir = data_path(fx, "blobs/sha256");
	char *server_tmp = data_path(fx, "tmp");
	char *db_path = data_path(fx, "tender.db");
	struct th_request up = {.method = "POST",
				.token = fx->token,
				.content_type = "application/zip",
				.upload_file = fx->archive};
	struct th_response r;
	uint64_t partial = 0;

	assert_true(fx->size > PAYLOAD_BYTES);
	/* Something acknowledged before the crash, which must survive it. */
	th_json(&fx->srv, "POST", "/api/v1/clusters", fx->srv.admin_token, "{\"name\": \"before\"}",
		&r);
	assert_int_equal(r.status, 201);
	th_response_free(&r);

	/* 1. Start the upload; the server streams it into blobs/tmp. */
	start_held_upload(fx, tmp_dir);

	/* 2. kill -9 mid-body: the upload never got an answer. */
	th_server_kill9(&fx->srv);
	release_uploader(fx);
	if (fx->upload_status != 0)
		fail_msg("the held upload was answered %ld before the kill", fx->upload_status);
	/* The crash left the partial upload there. */
	partial = largest_file(tmp_dir);
	if (partial < PARTIAL_AT || partial >= fx->size)
		fail_msg("after the kill, blobs/tmp's largest file has %llu of %llu bytes",
			 (unsigned long long)partial, (unsigned long long)fx->size);
	print_message("# killed with %llu of %llu bytes in blobs/tmp\n",
		      (unsigned long long)partial, (unsigned long long)fx->size);
	assert_no_files(sha_dir, "after the kill, no blob may be visible");

	/* 3. Restart on the same data directory. */
	th_server_restart(&fx->srv, NULL);
	assert_no_files(tmp_dir, "the partial upload must be removed at start-up");
	assert_no_files(sha_dir, "no half-written blob may be visible");
	assert_no_files(server_tmp, "the server's tmp must be empty at start-up");
	assert_db_consistent(db_path);
	th_json(&fx->srv, "GET", "/api/v1/bundles", fx->token, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
	th_response_free(&r);
	th_json(&fx->srv, "GET", "/api/v1/bundles/bigbundle/1.0.0", fx->token, NULL, &r);
	assert_int_equal(r.status, 404);
	th_response_free(&r);
	th_json(&fx->srv, "GET", "/api/v1/clusters/before", fx->token, NULL, &r);
	if (r.status != 200)
		fail_msg("a cluster created (201) before the crash is gone: %ld %s", r.status,
			 r.body);
	th_response_free(&r);

	/* 4. The same upload, whole this time. */
	th_http(&fx->srv, "/api/v1/bundles", &up, &r);
	if (r.status != 201)
		fail_msg("upload after the restart: %ld %s", r.status, r.body);
	assert_string_equal(json_string_value(json_object_get(r.json, "sha256")), fx->sha);
	assert_int_equal(json_integer_value(json_object_get(r.json, "size")), fx->size);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")), "bigbundle");
	assert_string_equal(json_string_value(json_object_get(r.json, "version")), "1.0.0");
	th_response_free(&r);
	assert_no_files(tmp_dir, "a committed upload leaves nothing in blobs/tmp");
	assert_int_equal(th_count_files(sha_dir), 1);

	/* 5. It lists, and downloads back byte for byte. */
	th_json(&fx->srv, "GET", "/api/v1/bundles", fx->token, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
	th_response_free(&r);
	{
		char hex[TN_SHA256_HEX_LEN + 1];
		uint64_t len = 0;

		assert_int_equal(
		    download_hash(fx, "/api/v1/bundles/bigbundle/1.0.0/archive", hex, &len), 200);
		assert_int_equal(len, fx->size);
		assert_string_equal(hex, fx->sha);
	}
	assert_stops_cleanly(&fx->srv);
	assert_db_consistent(db_path);

	free(tmp_dir);
	free(sha_dir);
	free(server_tmp);
	free(db_path);
}

/* SIGTERM while an upload is half-way and an event stream is open: the
 * server ends the stream, drops the unfinished upload, and exits 0 in
 * time with a clean log; nothing of the upload is kept. */
static void test_sigterm_mid_upload_with_open_stream(void **state)
{
	struct fixture *fx = *state;
	char *tmp_dir = data_path(fx, "blobs/tmp");
	char *sha_dir = data_path(fx, "blobs/sha256");
	struct stream_reader sr = {.fx = fx};
	double deadline;
	struct th_response r;

	/* Something for the stream to send: the token creation is an event. */
	assert_int_equal(pthread_create(&sr.thread, NULL, read_stream, &sr), 0);
	deadline = th_now_s() + DEADLINE_S;
	while (atomic_load(&sr.bytes) == 0) {
		if (th_now_s() > deadline) {
			th_server_kill9(&fx->srv);
			pthread_join(sr.thread, NULL);
			fail_msg("the event stream sent nothing in %d s", DEADLINE_S);
		}
		th_pause_ms(10);
	}
	start_held_upload(fx, tmp_dir);

	assert_stops_cleanly(&fx->srv);
	pthread_join(sr.thread, NULL);
	if (sr.status != 200)
		fail_msg("event stream: status %ld (%s)", sr.status, curl_easy_strerror(sr.result));
	release_uploader(fx);
	if (fx->upload_status != 0)
		fail_msg("the held upload was answered %ld", fx->upload_status);
	assert_no_files(tmp_dir, "an upload cut by a stop is dropped");
	assert_no_files(sha_dir, "an upload cut by a stop is not kept");

	th_server_restart(&fx->srv, NULL);
	th_json(&fx->srv, "GET", "/api/v1/bundles", fx->token, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
	th_response_free(&r);
	free(tmp_dir);
	free(sha_dir);
}

/* A second tender-server started by mistake on the data directory of a
 * running one is refused (exit 1, saying why) before it touches anything:
 * the running server's upload in progress goes on and succeeds. */
static void test_second_server_on_live_data_refused(void **state)
{
	struct fixture *fx = *state;
	char *tmp_dir = data_path(fx, "blobs/tmp");
	char *data = xasprintf("%s/var", fx->srv.data_dir);
	char *ready = xasprintf("%s/ready-second", fx->srv.data_dir);
	char *log = xasprintf("%s/second.log", fx->srv.data_dir);
	const char *argv[] = {TN_BUILDDIR "/tender-server",
			      "--listen",
			      "127.0.0.1:0",
			      "--data",
			      data,
			      "--ready-file",
			      ready,
			      NULL};
	double deadline;
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int status = 0;
	pid_t pid;

	start_held_upload(fx, tmp_dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	deadline = th_now_s() + DEADLINE_S;
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (stat(ready, &st) == 0 || th_now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail_msg("a second tender-server on a live data directory %s",
				 stat(ready, &st) == 0 ? "started serving"
						       : "neither served nor exited");
		}
		th_pause_ms(10);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(tn_read_file(log, 1 << 20, &text, &len, NULL), 0);
	if (!strstr(text, "in use"))
		fail_msg("the refused server does not say why: %s", text);
	free(text);

	/* The first server's upload survived: it completes, whole. */
	if (largest_file(tmp_dir) < PARTIAL_AT)
		fail_msg("the running server's partial upload is gone from blobs/tmp");
	release_uploader_to(fx, true);
	if (fx->upload_status != 201)
		fail_msg("the upload in progress, resumed: %ld %s", fx->upload_status,
			 fx->upload_body ? fx->upload_body : "");
	{
		json_t *j = json_loads(fx->upload_body, 0, NULL);

		assert_string_equal(json_string_value(json_object_get(j, "sha256")), fx->sha);
		json_decref(j);
	}
	assert_stops_cleanly(&fx->srv);

	/* Once the first is gone, the directory is free again. */
	th_server_restart(&fx->srv, NULL);
	free(tmp_dir);
	free(data);
	free(ready);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_kill9_mid_upload_then_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sigterm_mid_upload_with_open_stream, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_second_server_on_live_data_refused, setup,
					    teardown),
	};

	return cmocka_run_group_tests_name("api_crash", tests, group_setup, group_teardown);
}
