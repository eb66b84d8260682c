/* blobstore.c - content-addressed blob files: uploads are streamed into blobs/tmp while
 * being hashed, then fsynced and renamed to blobs/sha256/ab/abcd...; stale temp files are
 * removed at open; the garbage collector visits the tree's two levels and nothing else.
 * A large upload is hashed by a thread of its own, beside the one receiving it. */
#include "blobstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "xalloc.h"

/* Writes smaller than this are gathered and written together: with the few-KiB chunks an
 * HTTP server hands over, one write(2) each costs about as much as hashing them (measured:
 * 8 KiB writes ~1 GB/s, gathered ~4 GB/s, sha256 ~1.3 GB/s).  Writes at least this large
 * go straight from the caller's buffer, never copied. */
#define GATHER_SIZE (256 * 1024)

/* sha256 costs about as much CPU as receiving the bytes and writing them (measured on a
 * 1 GiB upload through MHD: 45% of the request thread's time in sha256, 33% in recv,
 * 18% in write), so an upload that fills the gather buffer once gets a hashing thread:
 * it hashes one buffer while the request thread writes it and fills the other.  Smaller
 * uploads are hashed in the caller's thread, without one. */
#define HASH_THREAD_MIN GATHER_SIZE

/* With fsync on, writeback of what is already written is started every this many bytes,
 * so the disk works while the rest is hashed and the fsync at commit finds little left. */
#define WRITEBACK_STEP (8 * 1024 * 1024)

struct tn_blobstore {
	char *sha_dir; /* DATA/blobs/sha256 */
	char *tmp_dir; /* DATA/blobs/tmp */
	bool fsync;
	bool lock_ready;
	pthread_rwlock_t lock;
};

/* The hashing thread: one buffer at a time, in order. */
struct hasher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tn_sha256 *md;	  /* the writer's; only this thread updates it while running */
	const unsigned char *job; /* being hashed, or NULL when idle */
	size_t job_len;
	bool stop;
};

struct tn_blob_writer {
	struct tn_blobstore *bs;
	char *path;
	int fd;
	bool created; /* the temp file is ours to remove */
	struct tn_sha256 *md;
	uint64_t max;
	uint64_t size;	       /* bytes accepted: hashed, or handed to the hashing thread */
	uint64_t on_disk;      /* bytes written to fd (size minus what is gathered) */
	uint64_t kicked;       /* bytes whose writeback was started */
	unsigned char *gather; /* being filled */
	size_t gathered;
	unsigned char *spare;  /* the other buffer: idle, or being hashed */
	struct hasher *hasher; /* NULL: hashed in the caller's thread */
	bool spoiled;	       /* a write failed: file and hash may disagree, never commit */
};

bool tn_blob_hex_valid(const char *hex)
{
	return hex && tn_sha256_hex_valid(hex);
}

static int fsync_dir(const char *dir, struct tn_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "open %s", dir);
		goto out;
	}
	if (fsync(fd) != 0)
		rc = tn_fail_errno(err, errno, "fsync %s", dir);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Everything in tmp/ is an upload that was neither committed nor aborted: the process
 * died.  Nothing refers to these files, and they are never inside the sha256 tree. */
static int remove_stale_tmp(struct tn_blobstore *bs, struct tn_error *err)
{
	int dfd = open(bs->tmp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = NULL;
	struct dirent *e;
	uint64_t removed = 0;
	int rc = 0;

	if (dfd < 0) {
		rc = tn_fail_errno(err, errno, "open %s", bs->tmp_dir);
		goto out;
	}
	d = fdopendir(dfd);
	if (!d) {
		rc = tn_fail_errno(err, errno, "open %s", bs->tmp_dir);
		close(dfd);
		goto out;
	}
	for (errno = 0; (e = readdir(d)); errno = 0) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				continue;
			rc = tn_fail_errno(err, errno, "stat %s/%s", bs->tmp_dir, e->d_name);
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			/* we never make directories here: someone else did, leave it to them */
			tn_log(TN_LOG_WARN, "blobstore", "tmp_unexpected_dir", "{s:s, s:s}", "dir",
			       bs->tmp_dir, "name", e->d_name);
			continue;
		}
		if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
			rc = tn_fail_errno(err, errno, "remove %s/%s", bs->tmp_dir, e->d_name);
			goto out;
		}
		removed++;
	}
	if (errno != 0) {
		rc = tn_fail_errno(err, errno, "read directory %s", bs->tmp_dir);
		goto out;
	}
	if (removed > 0)
		tn_log(TN_LOG_INFO, "blobstore", "stale_tmp_removed", "{s:s, s:I}", "dir",
		       bs->tmp_dir, "count", (json_int_t)removed);
out:
	if (d)
		closedir(d);
	return rc;
}

int tn_blobstore_open(const char *data_dir, struct tn_blobstore **out, struct tn_error *err)
{
	struct tn_blobstore *bs = xcalloc(1, sizeof *bs);
	pthread_rwlockattr_t attr;
	int rc = 0, prc;

	*out = NULL;
	bs->sha_dir = xasprintf("%s/blobs/sha256", data_dir);
	bs->tmp_dir = xasprintf("%s/blobs/tmp", data_dir);
	bs->fsync = true;

	/* glibc's default rwlock prefers readers: a steady stream of uploads would keep
	 * the collector out forever. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	prc = pthread_rwlock_init(&bs->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (prc != 0) {
		rc = tn_fail(err, TN_E_INTERNAL, "blobstore lock: %s", strerror(prc));
		goto out;
	}
	bs->lock_ready = true;

	rc = tn_mkdir_p(bs->sha_dir, 0755, err);
	if (rc != 0)
		goto out;
	rc = tn_mkdir_p(bs->tmp_dir, 0700, err);
	if (rc != 0)
		goto out;
	rc = remove_stale_tmp(bs, err);
	if (rc != 0)
		goto out;
	*out = bs;
	bs = NULL;
out:
	if (rc != 0)
		tn_error_prefix(err, "blob store in %s", data_dir);
	tn_blobstore_close(bs);
	return rc;
}

void tn_blobstore_close(struct tn_blobstore *bs)
{
	if (!bs)
		return;
	if (bs->lock_ready)
		pthread_rwlock_destroy(&bs->lock);
	free(bs->sha_dir);
	free(bs->tmp_dir);
	free(bs);
}

void tn_blobstore_set_fsync(struct tn_blobstore *bs, bool enabled)
{
	bs->fsync = enabled;
	if (!enabled)
		tn_log(TN_LOG_WARN, "blobstore", "fsync_disabled", "{s:s}", "note",
		       "for benchmarks only: committed blobs may be lost on a crash");
}

void tn_blobstore_lock(struct tn_blobstore *bs, enum tn_blobstore_lock_mode mode)
{
	int prc = mode == TN_BLOBSTORE_EXCLUSIVE ? pthread_rwlock_wrlock(&bs->lock)
						 : pthread_rwlock_rdlock(&bs->lock);

	/* only a bug fails here (EDEADLK: taken twice); going on unlocked could lose blobs */
	if (prc != 0) {
		tn_log(TN_LOG_ERROR, "blobstore", "lock_failed", "{s:s}", "reason", strerror(prc));
		abort();
	}
}

void tn_blobstore_unlock(struct tn_blobstore *bs)
{
	int prc = pthread_rwlock_unlock(&bs->lock);

	if (prc != 0) {
		tn_log(TN_LOG_ERROR, "blobstore", "unlock_failed", "{s:s}", "reason",
		       strerror(prc));
		abort();
	}
}

/* ---------------------------------------------------------------- writer */

static void *hash_loop(void *arg)
{
	struct hasher *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->job && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		if (!h->job)
			break;
		pthread_mutex_unlock(&h->lock);
		tn_sha256_update(h->md, h->job, h->job_len);
		pthread_mutex_lock(&h->lock);
		h->job = NULL;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Starts w's hashing thread; without one (it could not start) w hashes in the caller's
 * thread, which is only slower. */
static void hasher_start(struct tn_blob_writer *w)
{
	struct hasher *h = xcalloc(1, sizeof *h);
	int prc;

	h->md = w->md;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	prc = pthread_create(&h->thread, NULL, hash_loop, h);
	if (prc != 0) {
		tn_log(TN_LOG_WARN, "blobstore", "hash_thread_failed", "{s:s}", "reason",
		       strerror(prc));
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return;
	}
	w->hasher = h;
}

/* Waits until the hashing thread has finished with its buffer. */
static void hash_wait(struct tn_blob_writer *w)
{
	struct hasher *h = w->hasher;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	while (h->job)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

/* Hashes p[0..len) after everything submitted before it: hands it to the hashing thread
 * (p must then stay unchanged until the next hash_submit or hash_wait returns), or hashes
 * it here. */
static void hash_submit(struct tn_blob_writer *w, const unsigned char *p, size_t len)
{
	struct hasher *h = w->hasher;

	if (!h) {
		tn_sha256_update(w->md, p, len);
		return;
	}
	pthread_mutex_lock(&h->lock);
	while (h->job)
		pthread_cond_wait(&h->cond, &h->lock);
	h->job = p;
	h->job_len = len;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void hasher_stop(struct tn_blob_writer *w)
{
	struct hasher *h = w->hasher;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL); /* after the buffer in hand, if any */
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
	w->hasher = NULL;
}

/* A failed system call on an upload's behalf.  A full disk is the one an
 * uploader can act on, so it says so in words (the path goes to the log,
 * not to the client); anything else keeps the call and the path. */
static int writer_fail(const struct tn_blob_writer *w, int errnum, const char *what,
		       const char *path, struct tn_error *err)
{
	if (errnum == ENOSPC || errnum == EDQUOT) {
		tn_log(TN_LOG_ERROR, "blobstore", "no_space", "{s:s, s:s, s:I}", "what", what,
		       "path", path, "written", (json_int_t)w->on_disk);
		return tn_fail(err, TN_E_NO_SPACE,
			       "no space left on the server's disk for the upload (%s after "
			       "%llu bytes); nothing was kept",
			       what, (unsigned long long)w->on_disk);
	}
	return tn_fail_errno(err, errnum, "%s %s", what, path);
}

static void writer_free(struct tn_blob_writer *w, bool remove_tmp)
{
	hasher_stop(w); /* before the buffers it may be reading go */
	if (w->fd >= 0)
		close(w->fd);
	/* only a file we created: after a failed mkostemp the template may name
	 * another upload's file */
	if (remove_tmp && w->created)
		unlink(w->path);
	tn_sha256_free(w->md);
	free(w->gather);
	free(w->spare);
	free(w->path);
	free(w);
}

int tn_blob_writer_begin(struct tn_blobstore *bs, uint64_t max_bytes, struct tn_blob_writer **out,
			 struct tn_error *err)
{
	struct tn_blob_writer *w = xcalloc(1, sizeof *w);
	int rc = 0;

	*out = NULL;
	w->bs = bs;
	w->max = max_bytes;
	w->fd = -1;
	w->path = xasprintf("%s/upload-XXXXXX", bs->tmp_dir);
	w->fd = mkostemp(w->path, O_CLOEXEC);
	if (w->fd < 0) {
		rc = writer_fail(w, errno, "create a temp file in", bs->tmp_dir, err);
		goto out;
	}
	w->created = true;
	/* mkostemp makes 0600; blobs are read by whoever serves them, not only us */
	if (fchmod(w->fd, 0644) != 0) {
		rc = tn_fail_errno(err, errno, "chmod %s", w->path);
		goto out;
	}
	w->md = tn_sha256_new();
	*out = w;
	w = NULL;
out:
	if (w)
		writer_free(w, true);
	return rc;
}

static int write_fd(struct tn_blob_writer *w, const unsigned char *p, size_t len,
		    struct tn_error *err)
{
	int rc = 0;

	while (len > 0) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* 0 cannot happen on a regular file; taken as a failure, not a loop */
			rc = writer_fail(w, n < 0 ? errno : EIO, "write", w->path, err);
			goto out;
		}
		p += n;
		len -= (size_t)n;
		w->on_disk += (uint64_t)n;
	}
	if (w->bs->fsync && w->on_disk - w->kicked >= WRITEBACK_STEP) {
		/* advisory: fsync at commit is what guarantees durability */
		int ignored =
		    sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->on_disk - w->kicked),
				    SYNC_FILE_RANGE_WRITE);

		(void)ignored;
		w->kicked = w->on_disk;
	}
out:
	return rc;
}

/* Hashes and writes the gathered bytes, then fills the other buffer next: the hashing
 * thread, if any, goes on with this one meanwhile. */
static int flush_gathered(struct tn_blob_writer *w, struct tn_error *err)
{
	unsigned char *full = w->gather;
	int rc;

	if (w->gathered == 0)
		return 0;
	if (!w->hasher && w->size >= HASH_THREAD_MIN)
		hasher_start(w);
	hash_submit(w, full, w->gathered);
	rc = write_fd(w, full, w->gathered, err);
	w->gathered = 0;
	if (w->hasher) {
		/* the next hash_submit waits until the hashing thread is done with full */
		if (!w->spare)
			w->spare = xmalloc(GATHER_SIZE);
		w->gather = w->spare;
		w->spare = full;
	}
	return rc;
}

int tn_blob_writer_write(struct tn_blob_writer *w, const void *data, size_t len,
			 struct tn_error *err)
{
	int rc = 0;

	if (w->spoiled) {
		rc = tn_fail(err, TN_E_INTERNAL, "upload %s: an earlier write failed", w->path);
		goto out;
	}
	if (len > w->max - w->size) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "upload is over its limit of %" PRIu64 " bytes",
			     w->max);
		goto out;
	}
	if (len == 0)
		goto out;
	w->size += len;
	if (len >= GATHER_SIZE) {
		/* written straight from the caller's buffer, which is only borrowed: hashed
		 * (beside the write, with a hashing thread) before returning */
		rc = flush_gathered(w, err);
		if (rc != 0)
			goto out;
		if (!w->hasher && w->size >= HASH_THREAD_MIN)
			hasher_start(w);
		hash_submit(w, data, len);
		rc = write_fd(w, data, len, err);
		hash_wait(w);
		goto out;
	}
	if (w->gathered + len > GATHER_SIZE) {
		rc = flush_gathered(w, err);
		if (rc != 0)
			goto out;
	}
	if (!w->gather)
		w->gather = xmalloc(GATHER_SIZE);
	memcpy(w->gather + w->gathered, data, len);
	w->gathered += len;
	if (w->gathered == GATHER_SIZE)
		rc = flush_gathered(w, err);
out:
	if (rc != 0)
		w->spoiled = true;
	return rc;
}

int tn_blob_writer_flush(struct tn_blob_writer *w, struct tn_error *err)
{
	int rc;

	if (w->spoiled) {
		rc = tn_fail(err, TN_E_INTERNAL, "upload %s: an earlier write failed", w->path);
		goto out;
	}
	rc = flush_gathered(w, err);
	if (rc != 0)
		w->spoiled = true;
out:
	return rc;
}

const char *tn_blob_writer_path(const struct tn_blob_writer *w)
{
	return w->path;
}

uint64_t tn_blob_writer_size(const struct tn_blob_writer *w)
{
	return w->size;
}

int tn_blob_writer_commit(struct tn_blob_writer *w, const char *expected_hex,
			  char out_hex[TN_BLOB_HEX_LEN + 1], uint64_t *out_size,
			  struct tn_error *err)
{
	struct tn_blobstore *bs = w->bs;
	char hex[TN_BLOB_HEX_LEN + 1];
	char *fan = NULL, *final = NULL;
	bool renamed = false;
	struct stat st;
	int rc = 0;

	if (expected_hex && !tn_blob_hex_valid(expected_hex)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "expected sha256 \"%.80s\" is not 64 lowercase hex digits",
			     expected_hex);
		goto out;
	}
	rc = tn_blob_writer_flush(w, err);
	if (rc != 0)
		goto out;
	hasher_stop(w); /* every byte hashed */
	tn_sha256_final_hex(w->md, hex);
	if (expected_hex && strcmp(expected_hex, hex) != 0) {
		rc = tn_fail(err, TN_E_SIGNATURE, "sha256 mismatch: expected %s, got %s",
			     expected_hex, hex);
		goto out;
	}
	if (bs->fsync && fsync(w->fd) != 0) {
		rc = writer_fail(w, errno, "fsync", w->path, err);
		goto out;
	}
	/* close reports late write errors (some file systems only tell here) */
	if (close(w->fd) != 0) {
		rc = writer_fail(w, errno, "close", w->path, err);
		w->fd = -1;
		goto out;
	}
	w->fd = -1;

	fan = xasprintf("%s/%.2s", bs->sha_dir, hex);
	if (mkdir(fan, 0755) == 0) {
		/* a new fan-out directory is an entry of sha256/ that must survive too */
		if (bs->fsync) {
			rc = fsync_dir(bs->sha_dir, err);
			if (rc != 0)
				goto out;
		}
	} else if (errno != EEXIST) {
		rc = writer_fail(w, errno, "mkdir", fan, err);
		goto out;
	}
	final = xasprintf("%s/%s", fan, hex);
	/* Same address, same bytes: keep what is there (a reader may have it open).  The
	 * size check lets a truncated file, e.g. damaged by hand, be replaced.  Two equal
	 * uploads racing here may both rename: harmless, the bytes are the same. */
	if (!(lstat(final, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == w->size)) {
		if (rename(w->path, final) != 0) {
			rc = tn_fail_errno(err, errno, "rename %s to %s", w->path, final);
			goto out;
		}
		renamed = true;
	}
	/* also when an existing blob was kept: its own commit may not have synced yet */
	if (bs->fsync) {
		rc = fsync_dir(fan, err);
		if (rc != 0)
			goto out;
	}
	if (out_hex)
		memcpy(out_hex, hex, sizeof hex);
	if (out_size)
		*out_size = w->size;
out:
	writer_free(w, !renamed);
	free(fan);
	free(final);
	return rc;
}

void tn_blob_writer_abort(struct tn_blob_writer *w)
{
	if (w)
		writer_free(w, true);
}

/* ---------------------------------------------------------------- blobs */

int tn_blob_path(const struct tn_blobstore *bs, const char *hex, char **out, struct tn_error *err)
{
	int rc = 0;

	*out = NULL;
	if (!tn_blob_hex_valid(hex)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "\"%.80s\" is not a sha256 (64 lowercase hex digits)",
			     hex ? hex : "(null)");
		goto out;
	}
	*out = xasprintf("%s/%.2s/%s", bs->sha_dir, hex, hex);
out:
	return rc;
}

bool tn_blob_exists(const struct tn_blobstore *bs, const char *hex)
{
	char *path = NULL;
	struct stat st;
	bool found = false;

	if (tn_blob_path(bs, hex, &path, NULL) != 0)
		goto out;
	found = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
out:
	free(path);
	return found;
}

int tn_blob_open(const struct tn_blobstore *bs, const char *hex, int *fd, uint64_t *size,
		 struct tn_error *err)
{
	char *path = NULL;
	struct stat st;
	int f = -1, rc;

	*fd = -1;
	rc = tn_blob_path(bs, hex, &path, err);
	if (rc != 0)
		goto out;
	/* O_NONBLOCK: a FIFO planted at the address must not hang the caller; it has no
	 * effect on reading a regular file */
	f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (f < 0) {
		if (errno == ENOENT)
			rc = tn_fail(err, TN_E_NOT_FOUND, "blob %s not found", hex);
		else
			rc = tn_fail_errno(err, errno, "open %s", path);
		goto out;
	}
	if (fstat(f, &st) != 0) {
		rc = tn_fail_errno(err, errno, "stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tn_fail(err, TN_E_IO, "%s is not a regular file", path);
		goto out;
	}
	if (size)
		*size = (uint64_t)st.st_size;
	*fd = f;
	f = -1;
out:
	if (f >= 0)
		close(f);
	free(path);
	return rc;
}

int tn_blob_remove(const struct tn_blobstore *bs, const char *hex, struct tn_error *err)
{
	char *path = NULL;
	int rc;

	rc = tn_blob_path(bs, hex, &path, err);
	if (rc != 0)
		goto out;
	if (unlink(path) != 0) {
		if (errno == ENOENT)
			rc = tn_fail(err, TN_E_NOT_FOUND, "blob %s not found", hex);
		else
			rc = tn_fail_errno(err, errno, "remove %s", path);
	}
	/* no directory fsync: a removal lost in a crash only brings back a blob that
	 * nothing references, and the next collection removes it again */
out:
	free(path);
	return rc;
}

/* ---------------------------------------------------------------- gc */

struct gc_run {
	tn_blob_referenced_fn is_referenced;
	void *ctx;
	uint64_t seen, count, bytes;
};

static bool is_fanout_name(const char *name)
{
	return strlen(name) == 2 && strchr("0123456789abcdef", name[0]) &&
	       strchr("0123456789abcdef", name[1]);
}

static int gc_fanout(struct tn_blobstore *bs, int top_fd, const char *fan, struct gc_run *run,
		     struct tn_error *err)
{
	/* O_NOFOLLOW: a symlink here is skipped (ELOOP), never walked into */
	int dfd = openat(top_fd, fan, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = NULL;
	struct dirent *e;
	int rc = 0;

	if (dfd < 0) {
		if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
			rc = tn_fail_errno(err, errno, "open %s/%s", bs->sha_dir, fan);
		goto out;
	}
	d = fdopendir(dfd);
	if (!d) {
		rc = tn_fail_errno(err, errno, "open %s/%s", bs->sha_dir, fan);
		close(dfd);
		goto out;
	}
	for (errno = 0; (e = readdir(d)); errno = 0) {
		struct stat st;
		int ref;

		if (!tn_blob_hex_valid(e->d_name) || memcmp(e->d_name, fan, 2) != 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				continue;
			rc =
			    tn_fail_errno(err, errno, "stat %s/%s/%s", bs->sha_dir, fan, e->d_name);
			goto out;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		run->seen++;
		tn_error_clear(err);
		ref = run->is_referenced(run->ctx, e->d_name, err);
		if (ref < 0) {
			/* keep the callback's code; name the blob, also when it said nothing */
			rc = ref;
			if (err && err->code == TN_OK)
				tn_fail(err, TN_E_INTERNAL, "gc: no answer for blob %s", e->d_name);
			else
				tn_error_prefix(err, "gc: blob %s", e->d_name);
			goto out;
		}
		if (ref > 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
			if (errno == ENOENT)
				continue;
			rc = tn_fail_errno(err, errno, "remove %s/%s/%s", bs->sha_dir, fan,
					   e->d_name);
			goto out;
		}
		run->count++;
		run->bytes += (uint64_t)st.st_size;
		tn_log(TN_LOG_DEBUG, "blobstore", "gc_removed", "{s:s, s:I}", "sha256", e->d_name,
		       "size", (json_int_t)st.st_size);
	}
	if (errno != 0)
		rc = tn_fail_errno(err, errno, "read directory %s/%s", bs->sha_dir, fan);
out:
	if (d)
		closedir(d);
	return rc;
}

int tn_blobstore_gc(struct tn_blobstore *bs, tn_blob_referenced_fn is_referenced, void *ctx,
		    uint64_t *removed_count, uint64_t *removed_bytes, struct tn_error *err)
{
	struct gc_run run = {.is_referenced = is_referenced, .ctx = ctx};
	DIR *top = NULL;
	struct dirent *e;
	int top_fd, rc = 0;

	tn_blobstore_lock(bs, TN_BLOBSTORE_EXCLUSIVE);
	top_fd = open(bs->sha_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top_fd < 0) {
		rc = tn_fail_errno(err, errno, "open %s", bs->sha_dir);
		goto out;
	}
	top = fdopendir(top_fd);
	if (!top) {
		rc = tn_fail_errno(err, errno, "open %s", bs->sha_dir);
		close(top_fd);
		goto out;
	}
	/* Two levels, each a finite directory, no recursion and no symlink followed: the
	 * walk is bounded by what is in the tree. */
	for (errno = 0; (e = readdir(top)); errno = 0) {
		if (!is_fanout_name(e->d_name))
			continue;
		rc = gc_fanout(bs, dirfd(top), e->d_name, &run, err);
		if (rc != 0)
			goto out;
	}
	if (errno != 0)
		rc = tn_fail_errno(err, errno, "read directory %s", bs->sha_dir);
out:
	if (top)
		closedir(top);
	tn_blobstore_unlock(bs);
	tn_log(rc == 0 ? TN_LOG_INFO : TN_LOG_WARN, "blobstore", "gc", "{s:I, s:I, s:I, s:b}",
	       "seen", (json_int_t)run.seen, "removed", (json_int_t)run.count, "removed_bytes",
	       (json_int_t)run.bytes, "ok", rc == 0);
	if (removed_count)
		*removed_count = run.count;
	if (removed_bytes)
		*removed_bytes = run.bytes;
	return rc;
}
