/* fsutil.c - file-system helpers shared by the server and the agent: path
 * checks done per segment (a substring test misses a trailing ".."), mkdir
 * -p, atomic replacement of a file, and removal of a tree that never
 * follows a symlink out of it. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

const char *tn_path_unsafe_reason(const char *rel)
{
	const char *seg = rel;
	size_t len = strnlen(rel, PATH_MAX + 1);

	if (len == 0)
		return "is empty";
	if (len > PATH_MAX)
		return "is too long";
	if (rel[0] == '/')
		return "is an absolute path";
	if (strchr(rel, '\\'))
		return "has a backslash";
	for (;;) {
		const char *end = strchrnul(seg, '/');
		size_t n = (size_t)(end - seg);

		if (n == 0)
			return "has an empty segment";
		if (n == 1 && seg[0] == '.')
			return "has a '.' segment";
		if (n == 2 && seg[0] == '.' && seg[1] == '.')
			return "has a '..' segment";
		if (*end == '\0')
			return NULL;
		seg = end + 1;
	}
}

bool tn_path_is_safe_relative(const char *rel)
{
	return tn_path_unsafe_reason(rel) == NULL;
}

int tn_path_join(const char *dir, const char *rel, char **out, struct tn_error *err)
{
	const char *why = tn_path_unsafe_reason(rel);
	struct tn_shown shown;

	if (why)
		return tn_fail(err, TN_E_INVALID, "path \"%s\" %s", tn_show(rel, strlen(rel), &shown),
			       why);
	*out = xasprintf("%s/%s", dir, rel);
	return 0;
}

int tn_mkdir_p(const char *path, mode_t mode, struct tn_error *err)
{
	struct stat st;
	char *copy;
	int rc = 0;

	if (!*path)
		return tn_fail(err, TN_E_INVALID, "mkdir: empty path");
	copy = xstrdup(path);
	for (char *p = copy + 1; ; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(copy, mode) != 0 && errno != EEXIST) {
			rc = tn_fail_errno(err, errno, "mkdir %s", copy);
			goto out;
		}
		if (last)
			break;
		*p = '/';
	}
	if (stat(path, &st) != 0)
		rc = tn_fail_errno(err, errno, "stat %s", path);
	else if (!S_ISDIR(st.st_mode))
		rc = tn_fail(err, TN_E_IO, "%s exists and is not a directory", path);
out:
	free(copy);
	return rc;
}

int tn_open_regular(const char *path, const char *what, int *fd, off_t *size,
		    struct tn_error *err)
{
	struct stat st;
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (f < 0) {
		if (errno == ENOENT)
			return tn_fail(err, TN_E_NOT_FOUND, "%s %s: no such file", what, path);
		return tn_fail_errno(err, errno, "%s %s: open", what, path);
	}
	if (fstat(f, &st) < 0) {
		int e = errno;

		close(f);
		return tn_fail_errno(err, e, "%s %s: stat", what, path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(f);
		return tn_fail(err, TN_E_INVALID, "%s %s: not a regular file", what, path);
	}
	*fd = f;
	if (size)
		*size = st.st_size;
	return 0;
}

int tn_fsync_parent(const char *path, struct tn_error *err)
{
	char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		rc = tn_fail_errno(err, errno, "open directory of %s", path);
	else if (fsync(fd) != 0)
		rc = tn_fail_errno(err, errno, "fsync directory of %s", path);
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

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

int tn_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct tn_error *err)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	int rc = 0;

	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "create %s", tmp);
		free(tmp);
		return rc;
	}
	if (fchmod(fd, mode) != 0) {
		rc = tn_fail_errno(err, errno, "chmod %s", tmp);
		goto out;
	}
	if (write_all(fd, data, len) != 0) {
		rc = tn_fail_errno(err, errno, "write %s", tmp);
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = tn_fail_errno(err, errno, "fsync %s", tmp);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = tn_fail_errno(err, errno, "close %s", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = tn_fail_errno(err, errno, "rename %s to %s", tmp, path);
		goto out;
	}
	rc = tn_fsync_parent(path, err);
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

int tn_read_file(const char *path, size_t max, char **out, size_t *len, struct tn_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t used = 0, cap = 0;
	int rc = 0;

	if (fd < 0)
		return tn_fail_errno(err, errno, "open %s", path);
	for (;;) {
		ssize_t n;

		if (cap - used < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tn_fail_errno(err, errno, "read %s", path);
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			rc = tn_fail(err, TN_E_TOO_LARGE, "%s is larger than %zu bytes", path, max);
			goto out;
		}
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
out:
	close(fd);
	free(buf);
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int tn_remove_tree(const char *path, struct tn_error *err)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : tn_fail_errno(err, errno, "stat %s", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) != 0)
			return tn_fail_errno(err, errno, "remove %s", path);
		return 0;
	}
	/* FTW_PHYS: symlinks are removed, never followed; FTW_DEPTH: children
	 * before their directory; FTW_MOUNT: never cross into another mount. */
	if (nftw(path, remove_entry, 32, FTW_PHYS | FTW_DEPTH | FTW_MOUNT) != 0)
		return tn_fail_errno(err, errno, "remove %s", path);
	return 0;
}
