/* fsutil.h - file-system helpers: safe relative paths, mkdir -p, atomic
 * writes (temp + fsync + rename + fsync of the directory), tree removal. */
#ifndef TN_FSUTIL_H
#define TN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* true when rel is a safe relative path: not empty, not absolute, no empty,
 * "." or ".." segment, no NUL or backslash, at most PATH_MAX bytes. */
bool tn_path_is_safe_relative(const char *rel);
/* NULL when rel is safe, else why not: "is an absolute path", "has a '..'
 * segment", ... (a static string). */
const char *tn_path_unsafe_reason(const char *rel);

/* dir + "/" + rel, after checking rel with tn_path_is_safe_relative
 * (TN_E_INVALID otherwise).  *out is caller-freed. */
int tn_path_join(const char *dir, const char *rel, char **out, struct tn_error *err)
	TN_MUST_CHECK;

/* mkdir -p with mode for the directories it creates. */
int tn_mkdir_p(const char *path, mode_t mode, struct tn_error *err) TN_MUST_CHECK;

/* Writes data to path atomically: a temp file beside it, fsync, rename,
 * fsync of the directory.  Readers see the old content or the new, never a
 * part. */
int tn_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct tn_error *err) TN_MUST_CHECK;

/* Reads a whole file of at most max bytes (TN_E_TOO_LARGE above).  *out is
 * caller-freed and NUL-terminated (not counted in *len). */
int tn_read_file(const char *path, size_t max, char **out, size_t *len,
		 struct tn_error *err) TN_MUST_CHECK;

/* Opens path read-only if it is a regular file (O_NONBLOCK, so a FIFO
 * cannot hang the open; only regular files have an end, so read loops over
 * them are bounded).  what names the file in messages ("key", "sha256"):
 * "WHAT PATH: no such file" is TN_E_NOT_FOUND, "...: not a regular file"
 * TN_E_INVALID.  *fd is the caller's; *size (may be NULL) its size. */
int tn_open_regular(const char *path, const char *what, int *fd, off_t *size,
		    struct tn_error *err) TN_MUST_CHECK;

/* fsync of the directory that holds path's entry. */
int tn_fsync_parent(const char *path, struct tn_error *err) TN_MUST_CHECK;

/* rm -rf path without following symlinks; a missing path is success. */
int tn_remove_tree(const char *path, struct tn_error *err) TN_MUST_CHECK;

#endif
