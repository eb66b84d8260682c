/* educa-conf.h - the Educa sample application's configuration files: one
 * "key = value" per line, as the Tender agent renders them from the
 * bundles' templates.  Shared by educa-web and educa-worker; libc only. */
#ifndef EDUCA_CONF_H
#define EDUCA_CONF_H

#include <stddef.h>

/* Longest line accepted, newline included. */
#define EDUCA_CONF_LINE_MAX 4096

/* Called for each setting with the key and the value (spaces around both
 * removed; borrowed for the call only).  Returns 0, or -1 after writing a
 * message (without the file and line, which the reader adds) into err. */
typedef int (*educa_conf_fn)(const char *key, const char *value, void *ctx, char *err,
			     size_t err_size);

/* Reads the file at path: blank lines and lines starting with '#' are
 * skipped, every other line must be "key = value".  Returns 0, or -1 with
 * "PATH:LINE: why" (or "PATH: why") in err. */
int educa_conf_read(const char *path, educa_conf_fn fn, void *ctx, char *err, size_t err_size);

/* Parses a decimal integer in [min, max] with nothing around it; 0 or -1. */
int educa_parse_long(const char *s, long min, long max, long *out);

/* A copy of s; exits with a message when memory runs out. */
char *educa_strdup(const char *s);

#endif
