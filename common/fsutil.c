/* fsutil.c - file-system helpers.  This is the minimal subset the sign
 * module needs (atomic writes and fsync of a parent directory); the full
 * module replaces it. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

/* Attempts at a fresh temp name; with 64 random bits a collision means
 * something else is wrong. */
#define TEMP_ATTEMPTS 16
/* Keeps ".<base>.tmp.<16 hex>" under NAME_MAX (255) for long base names. */
#define TEMP_BASE_MAX 200

/* The directory that holds path's entry, caller frees: "a/b" -> "a",
 * "b" -> ".", "/b" -> "/", "a/b/" -> "a". */
static char *parent_dir(const char *path)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	while (len > 0 && path[len - 1] != '/')
		len--;
	if (len == 0)
		return xstrdup(".");
	while (len > 1 && path[len - 1] == '/')
		len--;
	return xstrndup(path, len);
}

int tn_fsync_parent(const char *path, struct tn_error *err)
{
	char *dir = parent_dir(path);
	int fd = -1;
	int rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "open directory %s", dir);
		goto out;
	}
	if (fsync(fd) < 0) {
		rc = tn_fail_errno(err, errno, "fsync directory %s", dir);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

static int random_suffix(char out[17], struct tn_error *err)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t bytes[8];
	size_t got = 0;

	while (got < sizeof bytes) {
		ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tn_fail_errno(err, errno, "getrandom");
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof bytes; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	out[16] = '\0';
	return 0;
}

static int write_all(int fd, const void *data, size_t len, const char *name, struct tn_error *err)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tn_fail_errno(err, errno, "write %s", name);
		if (n == 0) /* not expected of a regular file; do not spin */
			return tn_fail_errno(err, EIO, "write %s", name);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tn_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct tn_error *err)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int dir_len = slash ? (int)(slash - path + 1) : 0;
	char *tmp = NULL;
	bool created = false;
	int fd = -1;
	int rc;

	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		rc = tn_fail(err, TN_E_INVALID, "write %s: not a file name", path);
		goto out;
	}

	/* A fresh name beside the target (same file system, so rename is
	 * atomic), created 0600 with O_EXCL: nobody else can have it open. */
	for (int i = 0; i < TEMP_ATTEMPTS && fd < 0; i++) {
		char suffix[17];

		rc = random_suffix(suffix, err);
		if (rc < 0)
			goto out;
		free(tmp);
		tmp = xasprintf("%.*s.%.*s.tmp.%s", dir_len, path, TEMP_BASE_MAX, base, suffix);
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST) {
			rc = tn_fail_errno(err, errno, "create %s", tmp);
			goto out;
		}
	}
	if (fd < 0) {
		rc = tn_fail_errno(err, EEXIST, "create a temp file for %s", path);
		goto out;
	}
	created = true;

	/* Exact mode whatever the umask; done before any byte is written. */
	if (fchmod(fd, mode) < 0) {
		rc = tn_fail_errno(err, errno, "chmod %s", tmp);
		goto out;
	}
	rc = write_all(fd, data, len, tmp, err);
	if (rc < 0)
		goto out;
	if (fsync(fd) < 0) {
		rc = tn_fail_errno(err, errno, "fsync %s", tmp);
		goto out;
	}
	/* close can report a deferred write error (NFS); it must not be lost. */
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = tn_fail_errno(err, errno, "close %s", tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		rc = tn_fail_errno(err, errno, "rename %s to %s", tmp, path);
		goto out;
	}
	created = false; /* the temp name is gone; path now holds the data */
	/* Makes the rename itself durable.  If this fails the new content is
	 * in place but may not survive a crash; the caller sees the error. */
	rc = tn_fsync_parent(path, err);
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	return rc;
}
