/* console.h - the web console's static files (web/ in the source tree,
 * $(pkgdatadir)/web once installed), served by tender-server at / and
 * /ui/NAME with their content types, validators and security headers.
 * The files hold no secret: the console's API calls carry the token the
 * user pastes, so these routes are public. */
#ifndef TN_CONSOLE_H
#define TN_CONSOLE_H

#include <stdbool.h>

#include "api.h"

/* The largest file served (the console's own files are far smaller). */
#define TN_CONSOLE_FILE_MAX (4u << 20)

/* Where the console's files are when --web-dir is not given: the source
 * tree's web/ when the running binary is the build tree's own (exe_dir is
 * build_dir), else the installed copy under pkgdatadir.  Caller frees. */
char *tn_console_default_dir(const char *exe_dir, const char *build_dir, const char *src_dir,
			     const char *pkgdata_dir);

/* true when name may be served: one path segment of letters, digits, '.',
 * '_' and '-', not starting with '.', with an extension of a known type. */
bool tn_console_name_ok(const char *name);

/* The Content-Type of a servable name, NULL for any other. */
const char *tn_console_content_type(const char *name);

/* Checks at start that dir holds the console (an index.html); the
 * message says what is missing.  The server starts without a console
 * when the default directory lacks it, and refuses an explicit --web-dir
 * that does. */
int tn_console_check_dir(const char *dir, struct tn_error *err) TN_MUST_CHECK;

/* GET / (index.html) and GET /ui/{} (any servable file of the directory). */
TN_HANDLER(tn_console_index);
TN_HANDLER(tn_console_asset);

#endif
