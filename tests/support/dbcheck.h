/* dbcheck.h - integration-test support: whether a stopped server's SQLite
 * file is consistent (PRAGMA integrity_check), read-only. */
#ifndef TN_DBCHECK_H
#define TN_DBCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when the database at path opens read-only and integrity_check says
 * "ok"; otherwise false with the reason in why. */
bool th_db_consistent(const char *path, char *why, size_t size);

#endif
