/* xalloc.h - the one out-of-memory policy: allocation failure aborts.
 * Callers never check these for NULL. */
#ifndef TN_XALLOC_H
#define TN_XALLOC_H

#include <stddef.h>

#include "error.h"

/* All return memory the caller frees with free(). */
void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...) TN_PRINTF(1, 2) __attribute__((malloc, returns_nonnull));

#endif
