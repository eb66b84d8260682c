/* cmd.h - what the command files (cmd_*.c) of `tender` have in common:
 * usage errors with a hint, the --limit of lists, NAME@VER arguments made
 * into API paths, and "print the server's JSON or a line for people". */
#ifndef TN_CLI_CMD_H
#define TN_CLI_CMD_H

#include <jansson.h>

#include "api.h"
#include "args.h"
#include "cli.h"
#include "output.h"

/* The --limit option every list takes. */
#define CLI_LIMIT_OPTION {"limit", 0, "N", "show at most N items (default: all, page by page)"}

/* Prints "tender: <message>" and the hint "Try 'tender NOUN VERB --help'."
 * on stderr; returns CLI_EXIT_USAGE. */
int cli_usage(const struct cli_args *a, const char *fmt, ...) TN_PRINTF(2, 3);

/* Lists path (a query may be in it already) from after `after` (NULL: the
 * start) with the command's --limit, then prints it: the JSON under
 * --output json, else a table. */
int cli_list(struct cli *cli, const struct cli_args *a, const char *path, const char *after,
	     const struct cli_column *columns);

/* Parses ref ("NAME@VER") into the path fmt (two %s: name, then version).
 * A bad ref is a usage error (its exit status returned); *path is caller
 * freed. */
int cli_ref_path(const struct cli_args *a, const char *ref, const char *fmt, char **path);

/* The answer of a write: printed as JSON under --output json (when there
 * is one), else the message for people built from fmt. */
void cli_done(struct cli *cli, json_t *answer, const char *fmt, ...) TN_PRINTF(3, 4);

/* Reads the JSON object of option `option` (a file name, "-" for stdin)
 * into *out (NULL when the option was not given).  A bad file is a usage
 * error; caller decrefs. */
int cli_json_option(const struct cli_args *a, const char *option, json_t **out);

/* Streams file as the body of POST path (a progress bar on a terminal).
 * A file that cannot be read is a usage error.  *status receives the HTTP
 * status and *out the answer (see cli_api_do). */
int cli_upload_file(struct cli *cli, const struct cli_args *a, const char *path, const char *file,
		    const char *content_type, long *status, json_t **out);

/* The answer of a request that made a rollout (`rollout create`, `cluster
 * undo`): its JSON under --output json, else a line saying what it moves
 * and how to approve it.  ro is borrowed. */
void cli_rollout_created(struct cli *cli, json_t *ro);

/* The first 12 characters of a sha256 (a column format). */
char *cli_short_sha(json_t *item);

#endif
