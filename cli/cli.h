/* cli.h - what the parts of `tender`, the command-line client, share: the
 * session (server, token, output form), the command tables every cmd_*.c
 * file contributes to, and the exit statuses.
 *
 * Command handlers return an exit status (enum cli_exit), not the
 * project's negative error: what they return is what the process exits with. */
#ifndef TN_CLI_H
#define TN_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Exit statuses, documented in `tender --help` and docs/cli.md. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_REFUSED = 1,     /* the server refused; its message was printed */
	CLI_EXIT_USAGE = 2,       /* bad arguments; a hint was printed */
	CLI_EXIT_UNREACHABLE = 3, /* no answer from the server */
};

struct cli_http;
struct cli_args;

/* One run of the program. */
struct cli {
	char *server;  /* base URL without a trailing '/' (owned) */
	char *token;   /* owned; NULL when none was configured */
	char *cacert;  /* owned; a CA bundle for https, or NULL */
	bool json;     /* --output json */
	struct cli_http *http; /* made at the first request */
};

/* One option of a command.  Options with an `arg` take a value (the
 * metavariable shown in help); the others are flags. */
struct cli_option {
	const char *name; /* long name, without "--" */
	char letter;      /* short name, or 0 */
	const char *arg;  /* "NAME@VER", or NULL for a flag */
	const char *help;
};

/* Flags of a command. */
#define CLI_NEEDS_NEWER 1u /* its endpoint is not in every server yet */

struct cli_command {
	const char *verb; /* NULL when the noun alone is the command */
	int (*run)(struct cli *cli, const struct cli_args *a);
	const char *synopsis; /* positional arguments, as in "FILE..." */
	unsigned min_args, max_args;
	const struct cli_option *options; /* {NULL}-terminated, or NULL */
	const char *summary;              /* one line */
	const char *help;                 /* more, for `--help`, or NULL */
	unsigned flags;
};

struct cli_noun {
	const char *name;
	const char *summary;
	const struct cli_command *commands; /* ended by an entry whose run is NULL */
};

/* The command tables (cmd_*.c). */
extern const struct cli_command cli_bundle_commands[];
extern const struct cli_command cli_dist_commands[];
extern const struct cli_command cli_cluster_commands[];
extern const struct cli_command cli_target_commands[];
extern const struct cli_command cli_rollout_commands[];
extern const struct cli_command cli_events_commands[];
extern const struct cli_command cli_webhook_commands[];
extern const struct cli_command cli_token_commands[];
extern const struct cli_command cli_enroll_commands[];

/* The nouns, in the order help lists them (main.c). */
extern const struct cli_noun cli_nouns[];

#endif
