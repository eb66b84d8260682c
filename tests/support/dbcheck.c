/* dbcheck.c - see dbcheck.h.  Apart from harness.c, so that only the
 * programs that call it link SQLite. */
#include "dbcheck.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

bool th_db_consistent(const char *path, char *why, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *result;
	bool ok = false;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	if (rc != SQLITE_OK) {
		snprintf(why, size, "open %s read-only: %s", path, sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		snprintf(why, size, "%s: integrity_check did not run: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	result = (const char *)sqlite3_column_text(st, 0);
	if (!result || strcmp(result, "ok") != 0 || sqlite3_step(st) != SQLITE_DONE) {
		snprintf(why, size, "%s: integrity_check says %s", path, result ? result : "(null)");
		goto out;
	}
	ok = true;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}
