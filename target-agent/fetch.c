/* fetch.c - see fetch.h.  Blobs are the unit of download and jobs (one per
 * release) the unit of waiting: a blob lives while an unfinished job needs
 * it, so two releases sharing a bundle fetch it once.  User callbacks run
 * only from loop timers, never from inside libcurl or from a call the user
 * made, so a callback may start or cancel jobs freely. */
#include "fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "sign.h"
#include "xalloc.h"

#define DEFAULT_PARALLEL 2
#define DEFAULT_ATTEMPTS 5
#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_LOW_SPEED_BYTES 100
#define DEFAULT_LOW_SPEED_TIME_S 30
#define DEFAULT_BACKOFF_MS 1000
#define DEFAULT_BACKOFF_MAX_MS 60000
#define DEFAULT_JITTER_MS 1000
/* The server asking us to wait is not our failure, but it is bounded. */
#define MAX_BUSY_WAITS 100
#define MAX_RETRY_AFTER_S 300
/* Starting over after a refused resume: more means a broken server. */
#define MAX_RESTARTS 3
#define PROGRESS_EVERY_MS 200
#define HASH_CHUNK (64 * 1024)

enum blob_state {
	B_QUEUED,  /* wants a transfer slot */
	B_ACTIVE,  /* transferring */
	B_WAITING, /* a retry timer runs */
	B_FAILED,  /* for good; err says why; freed when its jobs let go */
};

struct blob {
	struct blob *next;
	struct tn_fetch *f;
	char hex[TN_SHA256_HEX_LEN + 1];
	uint64_t size;
	char *url; /* the path part, from the document */
	int users; /* (job, blob) pairs not done that name it */
	enum blob_state state;
	unsigned attempts, busy_waits, restarts;
	uint64_t timer;
	struct tn_error err;
	/* The transfer in progress (B_ACTIVE). */
	CURL *easy;
	struct curl_slist *headers;
	int fd;
	struct tn_sha256 *sha;
	uint64_t have;	      /* bytes in the .part, all hashed */
	uint64_t resume_from; /* where this transfer started */
	bool checked_status;  /* the first body bytes were seen */
	bool keep_body;	      /* the response is the blob (200 or 206) */
	bool restart;	      /* a 200 to a Range request: start over */
	bool too_big;	      /* more bytes than the declared size */
	int write_errno;
	char curl_err[CURL_ERROR_SIZE];
};

struct job_blob {
	char hex[TN_SHA256_HEX_LEN + 1];
	uint64_t size;
	bool done;
};

struct tn_fetch_job {
	struct tn_fetch_job *next;
	struct tn_fetch *f;
	struct job_blob *blobs;
	size_t n;
	tn_fetch_progress_fn progress;
	tn_fetch_done_fn done;
	void *ctx;
	bool finished; /* the end is decided; finish_timer will report it */
	int rc;
	struct tn_error err;
	uint64_t finish_timer;
	uint64_t reported; /* the last done value given to progress */
	bool progress_due;
};

struct tn_fetch {
	struct tn_loop *loop;
	char *state_dir, *server_url, *auth, *cacert;
	char *blob_dir, *part_dir;
	struct tn_fetch_opts o; /* numbers only; strings are the copies above */
	struct blob *blobs;
	struct tn_fetch_job *jobs;
	unsigned active;
	uint64_t progress_timer;
};

static void pump(struct tn_fetch *f);

/* ---------------------------------------------------------------- paths */

char *tn_fetch_blob_path(const char *state_dir, const char *hex)
{
	return xasprintf("%s/cache/sha256/%s", state_dir, hex);
}

static char *part_path(const struct tn_fetch *f, const char *hex)
{
	return xasprintf("%s/%s.part", f->part_dir, hex);
}

bool tn_fetch_have(const char *state_dir, const char *hex, uint64_t size)
{
	char *path = tn_fetch_blob_path(state_dir, hex);
	struct stat st;
	bool ok = lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;

	free(path);
	return ok;
}

/* ---------------------------------------------------------------- set-up */

int tn_fetch_new(struct tn_loop *loop, const struct tn_fetch_opts *opts, struct tn_fetch **out,
		 struct tn_error *err)
{
	struct tn_fetch *f = xcalloc(1, sizeof *f);
	int rc;

	*out = NULL;
	f->loop = loop;
	f->o = *opts;
	f->o.state_dir = f->o.server_url = f->o.token = f->o.cacert = NULL;
	f->state_dir = xstrdup(opts->state_dir);
	f->server_url = xstrdup(opts->server_url);
	f->cacert = opts->cacert ? xstrdup(opts->cacert) : NULL;
	f->auth = xasprintf("Authorization: Bearer %s", opts->token ? opts->token : "");
	f->blob_dir = xasprintf("%s/cache/sha256", opts->state_dir);
	f->part_dir = xasprintf("%s/cache/partial", opts->state_dir);
#define DEFAULT(field, value)                                                                      \
	do {                                                                                       \
		if (!f->o.field)                                                                   \
			f->o.field = (value);                                                      \
	} while (0)
	DEFAULT(max_parallel, DEFAULT_PARALLEL);
	DEFAULT(max_attempts, DEFAULT_ATTEMPTS);
	DEFAULT(connect_timeout_s, DEFAULT_CONNECT_TIMEOUT_S);
	DEFAULT(low_speed_bytes, DEFAULT_LOW_SPEED_BYTES);
	DEFAULT(low_speed_time_s, DEFAULT_LOW_SPEED_TIME_S);
	DEFAULT(backoff_ms, DEFAULT_BACKOFF_MS);
	DEFAULT(backoff_max_ms, DEFAULT_BACKOFF_MAX_MS);
	DEFAULT(jitter_ms, DEFAULT_JITTER_MS);
#undef DEFAULT
	if ((rc = tn_mkdir_p(f->blob_dir, 0755, err)) < 0 ||
	    (rc = tn_mkdir_p(f->part_dir, 0755, err)) < 0) {
		tn_fetch_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void tn_fetch_set_token(struct tn_fetch *f, const char *token)
{
	free(f->auth);
	f->auth = xasprintf("Authorization: Bearer %s", token);
}

/* ---------------------------------------------------------------- blobs */

static struct blob *find_blob(struct tn_fetch *f, const char *hex)
{
	for (struct blob *b = f->blobs; b; b = b->next)
		if (strcmp(b->hex, hex) == 0)
			return b;
	return NULL;
}

/* Ends the transfer of b, if any, keeping its .part. */
static void stop_transfer(struct blob *b)
{
	if (b->easy) {
		tn_loop_abort_transfer(b->f->loop, b->easy);
		curl_easy_cleanup(b->easy);
		b->easy = NULL;
		b->f->active--;
	}
	curl_slist_free_all(b->headers);
	b->headers = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

static void free_blob(struct blob *b)
{
	struct tn_fetch *f = b->f;

	for (struct blob **p = &f->blobs; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	stop_transfer(b);
	tn_loop_cancel(f->loop, b->timer);
	tn_sha256_free(b->sha);
	free(b->url);
	free(b);
}

static void schedule_progress(struct tn_fetch *f);

/* A job's end is reported from a timer: see the file comment. */
static void on_job_finish(void *ctx);

static void finish_job(struct tn_fetch_job *job, int rc, const struct tn_error *err)
{
	if (job->finished)
		return;
	job->finished = true;
	job->rc = rc;
	if (err)
		job->err = *err;
	job->finish_timer = tn_loop_timer(job->f->loop, 0, on_job_finish, job);
}

static void check_job_done(struct tn_fetch_job *job)
{
	for (size_t i = 0; i < job->n; i++)
		if (!job->blobs[i].done)
			return;
	finish_job(job, 0, NULL);
}

/* b is in the cache: every job waiting for it has one blob less to wait
 * for, and b is no longer needed. */
static void blob_succeeded(struct blob *b)
{
	struct tn_fetch *f = b->f;

	tn_log(TN_LOG_INFO, "fetch", "blob_cached", "{s:s, s:I}", "sha256", b->hex, "size",
	       (json_int_t)b->size);
	for (struct tn_fetch_job *job = f->jobs; job; job = job->next)
		for (size_t i = 0; i < job->n; i++)
			if (!job->blobs[i].done && strcmp(job->blobs[i].hex, b->hex) == 0) {
				job->blobs[i].done = true;
				check_job_done(job);
			}
	schedule_progress(f);
	free_blob(b);
}

/* b cannot be had: every job that needs it fails with b->err. */
static void blob_failed(struct blob *b)
{
	stop_transfer(b);
	b->state = B_FAILED;
	tn_log(TN_LOG_WARN, "fetch", "blob_failed", "{s:s, s:s}", "sha256", b->hex, "error",
	       b->err.message);
	for (struct tn_fetch_job *job = b->f->jobs; job; job = job->next)
		for (size_t i = 0; i < job->n; i++)
			if (!job->blobs[i].done && strcmp(job->blobs[i].hex, b->hex) == 0)
				finish_job(job, -(int)b->err.code, &b->err);
}

static void on_retry_timer(void *ctx)
{
	struct blob *b = ctx;

	b->timer = 0;
	b->state = B_QUEUED;
	pump(b->f);
}

static uint64_t jitter(const struct tn_fetch *f)
{
	uint32_t r;

	tn_random_bytes(&r, sizeof r);
	return r % ((uint64_t)f->o.jitter_ms + 1);
}

static void wait_then_retry(struct blob *b, uint64_t ms)
{
	b->state = B_WAITING;
	b->timer = tn_loop_timer(b->f->loop, ms + jitter(b->f), on_retry_timer, b);
}

/* A failure worth another try (the .part is kept unless the caller removed
 * it); fails the blob for good after max_attempts. */
static void transient(struct blob *b, const char *why)
{
	struct tn_fetch *f = b->f;
	uint64_t delay = f->o.backoff_ms;

	stop_transfer(b);
	b->attempts++;
	if (b->attempts >= f->o.max_attempts) {
		tn_fail(&b->err, TN_E_UNAVAILABLE,
			"blob %s: download failed (attempt %u of %u): %s", b->hex, b->attempts,
			f->o.max_attempts, why);
		blob_failed(b);
		return;
	}
	for (unsigned i = 1; i < b->attempts && delay < f->o.backoff_max_ms; i++)
		delay *= 2;
	if (delay > f->o.backoff_max_ms)
		delay = f->o.backoff_max_ms;
	tn_log(TN_LOG_INFO, "fetch", "blob_retry", "{s:s, s:i, s:I, s:s}", "sha256", b->hex,
	       "attempt", (int)b->attempts, "delay_ms", (json_int_t)delay, "reason", why);
	wait_then_retry(b, delay);
}

/* ---------------------------------------------------------------- disk */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Hashes the first len bytes of path into b->sha (after a reset). */
static int hash_part(struct blob *b, const char *path, uint64_t len)
{
	char *buf = xmalloc(HASH_CHUNK);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = -1;

	tn_sha256_reset(b->sha);
	if (fd < 0)
		goto out;
	while (len > 0) {
		ssize_t n = read(fd, buf, len < HASH_CHUNK ? (size_t)len : HASH_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		tn_sha256_update(b->sha, buf, (size_t)n);
		len -= (uint64_t)n;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* The part is complete and its hash right: fsync it and rename it into
 * the cache.  Uses b->fd when open, else opens the part. */
static void finalize(struct blob *b, const char *part)
{
	char *final = NULL;
	int fd = b->fd;

	b->fd = -1;
	if (fd < 0)
		fd = open(part, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) != 0) {
		tn_fail_errno(&b->err, errno, "blob %s: fsync %s", b->hex, part);
		goto fail;
	}
	final = tn_fetch_blob_path(b->f->state_dir, b->hex);
	if (rename(part, final) != 0) {
		tn_fail_errno(&b->err, errno, "blob %s: rename into the cache", b->hex);
		goto fail;
	}
	if (tn_fsync_parent(final, &b->err) < 0)
		goto fail;
	close(fd);
	free(final);
	blob_succeeded(b);
	return;
fail:
	if (fd >= 0)
		close(fd);
	free(final);
	blob_failed(b);
}

/* ---------------------------------------------------------------- transfer */

/* Inside libcurl: only record, never call back into the loop's users. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct blob *b = ctx;
	size_t n = size * nmemb;

	if (!b->checked_status) {
		long code = 0;

		b->checked_status = true;
		curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code == 200 && b->resume_from > 0) {
			/* The server ignored Range: these bytes are from 0. */
			b->restart = true;
			return 0;
		}
		b->keep_body = (code == 200 && b->resume_from == 0) ||
			       (code == 206 && b->resume_from > 0);
	}
	if (!b->keep_body)
		return n; /* an error body: read and drop */
	if (n > b->size - b->have) {
		b->too_big = true;
		return 0;
	}
	if (write_all(b->fd, data, n) != 0) {
		b->write_errno = errno;
		return 0;
	}
	tn_sha256_update(b->sha, data, n);
	b->have += n;
	schedule_progress(b->f);
	return n;
}

static void on_transfer_done(void *ctx, CURL *easy, CURLcode result)
{
	struct blob *b = ctx;
	struct tn_fetch *f = b->f; /* b may be freed below */
	char *part = part_path(f, b->hex);
	curl_off_t retry_after = 0;
	long code = 0;
	char why[TN_ERROR_MESSAGE_MAX];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
	curl_easy_cleanup(easy);
	b->easy = NULL;
	b->f->active--;
	if (b->too_big) {
		unlink(part);
		tn_fail(&b->err, TN_E_SIGNATURE,
			"blob %s: more bytes than its declared size %llu (tampered or corrupt)",
			b->hex, (unsigned long long)b->size);
		blob_failed(b);
	} else if (b->write_errno) {
		tn_fail_errno(&b->err, b->write_errno, "blob %s: write %s", b->hex, part);
		blob_failed(b);
	} else if (code == 503 && b->busy_waits < MAX_BUSY_WAITS) {
		uint64_t ms = retry_after > 0 ? (uint64_t)retry_after * 1000 : b->f->o.backoff_ms;

		if (retry_after > MAX_RETRY_AFTER_S)
			ms = MAX_RETRY_AFTER_S * 1000;
		stop_transfer(b);
		b->busy_waits++;
		tn_log(TN_LOG_INFO, "fetch", "server_busy", "{s:s, s:I}", "sha256", b->hex,
		       "retry_after_ms", (json_int_t)ms);
		wait_then_retry(b, ms);
	} else if (b->resume_from > 0 && (code == 416 || code == 200 || b->restart ||
					  result == CURLE_RANGE_ERROR)) {
		/* 416: the part does not fit the server's blob (a complete
		 * part never gets here: start_blob checks it first); 200 or
		 * a range error: the server ignored Range.  Either way the
		 * part is no use: start over from byte 0, at once. */
		unlink(part);
		stop_transfer(b);
		tn_log(TN_LOG_INFO, "fetch", "blob_restart", "{s:s, s:i, s:I}", "sha256", b->hex,
		       "status", (int)code, "from", (json_int_t)b->resume_from);
		if (++b->restarts > MAX_RESTARTS) {
			tn_fail(&b->err, TN_E_UNAVAILABLE,
				"blob %s: the server keeps refusing to resume (HTTP %ld)", b->hex,
				code);
			blob_failed(b);
		} else {
			b->state = B_QUEUED;
		}
	} else if (code >= 400 && code < 500) {
		tn_fail(&b->err, code == 404   ? TN_E_NOT_FOUND
				 : code == 401 ? TN_E_UNAUTHORIZED
				 : code == 403 ? TN_E_FORBIDDEN
					       : TN_E_INVALID,
			"blob %s: HTTP %ld from the server", b->hex, code);
		blob_failed(b);
	} else if (code >= 500) {
		snprintf(why, sizeof why, "HTTP %ld", code);
		transient(b, why);
	} else if (result != CURLE_OK) {
		snprintf(why, sizeof why, "%s%s%s", curl_easy_strerror(result),
			 b->curl_err[0] ? ": " : "", b->curl_err);
		transient(b, why);
	} else if (code != 200 && code != 206) {
		tn_fail(&b->err, TN_E_IO, "blob %s: unexpected HTTP %ld", b->hex, code);
		blob_failed(b);
	} else if (b->have < b->size) {
		snprintf(why, sizeof why, "the response ended after %llu of %llu bytes",
			 (unsigned long long)b->have, (unsigned long long)b->size);
		transient(b, why);
	} else {
		char hex[TN_SHA256_HEX_LEN + 1];

		curl_slist_free_all(b->headers);
		b->headers = NULL;
		tn_sha256_final_hex(b->sha, hex);
		if (strcmp(hex, b->hex) == 0) {
			finalize(b, part);
		} else {
			unlink(part);
			tn_fail(&b->err, TN_E_SIGNATURE,
				"blob %s: sha256 mismatch (tampered or corrupt)", b->hex);
			blob_failed(b);
		}
	}
	free(part);
	pump(f);
}

/* Starts (or resumes) the download of b, or finishes it at once when the
 * blob or a complete part is already on disk. */
static void start_blob(struct blob *b)
{
	struct tn_fetch *f = b->f;
	char *part = part_path(f, b->hex);
	char *final = tn_fetch_blob_path(f->state_dir, b->hex);
	char *url = NULL;
	uint64_t have = 0;
	struct stat st;
	int flags;

	if (tn_fetch_have(f->state_dir, b->hex, b->size)) {
		blob_succeeded(b);
		goto out;
	}
	unlink(final); /* a blob of the wrong size is not ours */
	if (!b->sha)
		b->sha = tn_sha256_new();
	if (lstat(part, &st) == 0) {
		if (S_ISREG(st.st_mode) && (uint64_t)st.st_size <= b->size &&
		    hash_part(b, part, (uint64_t)st.st_size) == 0)
			have = (uint64_t)st.st_size;
		else
			unlink(part);
	}
	if (have == b->size) {
		/* A complete part: a crash came before the rename.  Keep it if
		 * it is right, else start over. */
		char hex[TN_SHA256_HEX_LEN + 1];

		tn_sha256_final_hex(b->sha, hex);
		if (strcmp(hex, b->hex) == 0) {
			finalize(b, part);
			goto out;
		}
		unlink(part);
		have = 0;
	}
	if (have == 0)
		tn_sha256_reset(b->sha);
	flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (have ? O_APPEND : O_TRUNC);
	b->fd = open(part, flags, 0644);
	if (b->fd < 0) {
		tn_fail_errno(&b->err, errno, "blob %s: open %s", b->hex, part);
		blob_failed(b);
		goto out;
	}
	b->have = b->resume_from = have;
	b->checked_status = b->keep_body = b->restart = b->too_big = false;
	b->write_errno = 0;
	b->curl_err[0] = '\0';
	b->easy = curl_easy_init();
	if (!b->easy)
		abort(); /* out of memory: the one policy */
	url = xasprintf("%s%s", f->server_url, b->url);
	b->headers = curl_slist_append(NULL, f->auth);
	curl_easy_setopt(b->easy, CURLOPT_URL, url);
	curl_easy_setopt(b->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (f->cacert)
		curl_easy_setopt(b->easy, CURLOPT_CAINFO, f->cacert);
	curl_easy_setopt(b->easy, CURLOPT_HTTPHEADER, b->headers);
	curl_easy_setopt(b->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(b->easy, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(b->easy, CURLOPT_ERRORBUFFER, b->curl_err);
	curl_easy_setopt(b->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->easy, CURLOPT_CONNECTTIMEOUT, f->o.connect_timeout_s);
	/* No total timeout: a big blob on a slow link is fine while it moves. */
	curl_easy_setopt(b->easy, CURLOPT_LOW_SPEED_LIMIT, f->o.low_speed_bytes);
	curl_easy_setopt(b->easy, CURLOPT_LOW_SPEED_TIME, f->o.low_speed_time_s);
	if (have)
		curl_easy_setopt(b->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
	b->state = B_ACTIVE;
	f->active++;
	tn_log(TN_LOG_DEBUG, "fetch", "blob_get", "{s:s, s:I, s:I}", "sha256", b->hex, "from",
	       (json_int_t)have, "size", (json_int_t)b->size);
	tn_loop_transfer(f->loop, b->easy, on_transfer_done, b);
out:
	free(url);
	free(part);
	free(final);
}

static void pump(struct tn_fetch *f)
{
	while (f->active < f->o.max_parallel) {
		struct blob *b = f->blobs;

		while (b && b->state != B_QUEUED)
			b = b->next;
		if (!b)
			return;
		start_blob(b);
	}
}

/* ---------------------------------------------------------------- progress */

static uint64_t job_done_bytes(const struct tn_fetch_job *job)
{
	uint64_t done = 0;

	for (size_t i = 0; i < job->n; i++) {
		struct blob *b;

		if (job->blobs[i].done)
			done += job->blobs[i].size;
		else if ((b = find_blob(job->f, job->blobs[i].hex)) && b->state == B_ACTIVE)
			done += b->have;
	}
	return done;
}

static uint64_t job_total(const struct tn_fetch_job *job)
{
	uint64_t total = 0;

	for (size_t i = 0; i < job->n; i++)
		total += job->blobs[i].size;
	return total;
}

static void on_progress(void *ctx)
{
	struct tn_fetch *f = ctx;
	struct tn_fetch_job *job;

	f->progress_timer = 0;
	for (job = f->jobs; job; job = job->next)
		job->progress_due = !job->finished && job->progress;
	/* A callback may cancel or add jobs: look again from the top after
	 * each one. */
	for (;;) {
		uint64_t done;

		for (job = f->jobs; job && !job->progress_due; job = job->next)
			;
		if (!job)
			return;
		job->progress_due = false;
		done = job_done_bytes(job);
		if (done != job->reported) {
			job->reported = done;
			job->progress(job->ctx, done, job_total(job));
		}
	}
}

static void schedule_progress(struct tn_fetch *f)
{
	if (!f->progress_timer)
		f->progress_timer = tn_loop_timer(f->loop, PROGRESS_EVERY_MS, on_progress, f);
}

/* ---------------------------------------------------------------- jobs */

/* Unlinks job and lets go of its blobs; a blob no one needs stops. */
static void release_job(struct tn_fetch_job *job)
{
	struct tn_fetch *f = job->f;

	for (struct tn_fetch_job **p = &f->jobs; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	tn_loop_cancel(f->loop, job->finish_timer);
	for (size_t i = 0; i < job->n; i++) {
		struct blob *b;

		if (job->blobs[i].done || !(b = find_blob(f, job->blobs[i].hex)))
			continue;
		if (--b->users == 0)
			free_blob(b);
	}
	free(job->blobs);
	free(job);
}

static void on_job_finish(void *ctx)
{
	struct tn_fetch_job *job = ctx;
	tn_fetch_done_fn done = job->done;
	void *user = job->ctx;
	struct tn_fetch *f = job->f;
	struct tn_error err = job->err;
	int rc = job->rc;

	job->finish_timer = 0;
	release_job(job);
	pump(f);
	/* Last: the callback may free f. */
	done(user, rc, rc < 0 ? &err : NULL);
}

struct tn_fetch_job *tn_fetch_release(struct tn_fetch *f, const struct tn_desired_release *r,
				      tn_fetch_progress_fn progress, tn_fetch_done_fn done,
				      void *ctx)
{
	struct tn_fetch_job *job = xcalloc(1, sizeof *job);

	job->f = f;
	job->progress = progress;
	job->done = done;
	job->ctx = ctx;
	job->n = r->n_bundles;
	job->blobs = xcalloc(r->n_bundles ? r->n_bundles : 1, sizeof *job->blobs);
	job->next = f->jobs;
	f->jobs = job;
	for (size_t i = 0; i < r->n_bundles; i++) {
		const struct tn_desired_bundle *rb = &r->bundles[i];
		struct job_blob *jb = &job->blobs[i];
		struct blob *b;

		memcpy(jb->hex, rb->sha256, TN_SHA256_HEX_LEN);
		jb->size = rb->size;
		if (tn_fetch_have(f->state_dir, jb->hex, jb->size)) {
			jb->done = true;
			continue;
		}
		b = find_blob(f, jb->hex);
		if (!b) {
			b = xcalloc(1, sizeof *b);
			b->f = f;
			b->fd = -1;
			memcpy(b->hex, jb->hex, sizeof b->hex);
			b->size = jb->size;
			b->url = xstrdup(rb->url);
			b->state = B_QUEUED;
			b->next = f->blobs;
			f->blobs = b;
		} else if (b->state == B_FAILED) {
			/* A new job is a new chance (the caller's retry). */
			b->state = B_QUEUED;
			b->attempts = b->busy_waits = b->restarts = 0;
		}
		b->users++;
	}
	check_job_done(job);
	pump(f);
	return job;
}

void tn_fetch_cancel(struct tn_fetch_job *job)
{
	struct tn_fetch *f = job->f;

	release_job(job);
	pump(f);
}

void tn_fetch_free(struct tn_fetch *f)
{
	if (!f)
		return;
	while (f->jobs)
		release_job(f->jobs);
	while (f->blobs)
		free_blob(f->blobs); /* only failed ones are left: no users */
	tn_loop_cancel(f->loop, f->progress_timer);
	free(f->state_dir);
	free(f->server_url);
	free(f->cacert);
	free(f->auth);
	free(f->blob_dir);
	free(f->part_dir);
	free(f);
}

/* ---------------------------------------------------------------- garbage */

static bool needed(struct tn_fetch *f, const struct tn_desired_release *const *keep, size_t n,
		   const char *hex)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < keep[i]->n_bundles; j++)
			if (strcmp(keep[i]->bundles[j].sha256, hex) == 0)
				return true;
	for (struct tn_fetch_job *job = f->jobs; job; job = job->next)
		for (size_t i = 0; i < job->n; i++)
			if (strcmp(job->blobs[i].hex, hex) == 0)
				return true;
	return find_blob(f, hex) != NULL;
}

/* Removes the entries of dir whose name, less suffix, is not needed. */
static int prune_dir(struct tn_fetch *f, const char *dir, const char *suffix,
		     const struct tn_desired_release *const *keep, size_t n, struct tn_error *err)
{
	DIR *d = opendir(dir);
	size_t slen = strlen(suffix);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return tn_fail_errno(err, errno, "open %s", dir);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char hex[TN_SHA256_HEX_LEN + 1] = "";
		char *path;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (len == TN_SHA256_HEX_LEN + slen &&
		    strcmp(e->d_name + TN_SHA256_HEX_LEN, suffix) == 0)
			memcpy(hex, e->d_name, TN_SHA256_HEX_LEN);
		if (tn_sha256_hex_valid(hex) && needed(f, keep, n, hex))
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (unlink(path) != 0 && errno != ENOENT)
			rc = tn_fail_errno(err, errno, "remove %s", path);
		else
			tn_log(TN_LOG_INFO, "fetch", "blob_pruned", "{s:s}", "file", path);
		free(path);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

int tn_fetch_prune(struct tn_fetch *f, const struct tn_desired_release *const *keep, size_t n,
		   struct tn_error *err)
{
	int rc = prune_dir(f, f->blob_dir, "", keep, n, err);

	if (rc == 0)
		rc = prune_dir(f, f->part_dir, ".part", keep, n, err);
	return rc;
}
