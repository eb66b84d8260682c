/* args.h - the command line of `tender`, read against the option tables of
 * the commands (cli.h), and the small value syntaxes its options take:
 * counts, durations, NAME@VER references, load-balancer bindings. */
#ifndef TN_CLI_ARGS_H
#define TN_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "error.h"

/* Options per command, at most (a bound checked by the unit test). */
#define CLI_MAX_OPTIONS 24
/* Values one option may be given, and positional arguments, at most. */
#define CLI_MAX_VALUES 1024

/* The options every command takes, before the noun or after the verb
 * (--version only before the noun). */
struct cli_globals {
	const char *server, *token, *cacert, *output; /* borrowed from argv */
	bool help, version;
};

extern const struct cli_option cli_global_options[];

struct cli_values {
	const char **v; /* borrowed from argv; the array is owned */
	size_t n;
};

struct cli_args {
	const char *noun;
	const struct cli_command *cmd;  /* NULL while reading global options */
	const struct cli_option *options;
	struct cli_values opt[CLI_MAX_OPTIONS]; /* per options[i]; flags count in n */
	struct cli_values pos;                  /* positional arguments */
	int next;                               /* where reading stopped in argv */
};

/* Reads argv[0..argc): the options of `options` (NULL-terminated table, may
 * be NULL) and the global ones (into *g) in any order with positional
 * arguments, "--name value", "--name=value", "-x value", "-xvalue", and "--"
 * ending options.  With stop_at_positional, stops at the first positional
 * argument (out->next is its index).  A usage error is TN_E_INVALID with a
 * message naming the option.  Free *out with cli_args_free, even on error. */
int cli_args_parse(const struct cli_option *options, int argc, char **argv,
		   bool stop_at_positional, struct cli_args *out, struct cli_globals *g,
		   struct tn_error *err) TN_MUST_CHECK;
void cli_args_free(struct cli_args *a);

/* The last value of option `name` (NULL when not given); borrowed.  name
 * must be in the command's table (else abort: a bug). */
const char *cli_arg(const struct cli_args *a, const char *name);
/* Whether flag or option `name` was given. */
bool cli_flag(const struct cli_args *a, const char *name);
/* Every value of `name`, in order; *n receives the count.  Borrowed. */
const char *const *cli_arg_all(const struct cli_args *a, const char *name, size_t *n);
/* Positional argument i (NULL past the end); borrowed. */
const char *cli_pos(const struct cli_args *a, size_t i);

/* A decimal integer in [min, max], nothing else ("10", not "1e1" or "+3");
 * `what` names it in the message. */
int cli_parse_long(const char *s, const char *what, long min, long max, long *out,
		   struct tn_error *err) TN_MUST_CHECK;

/* A duration: seconds as a bare number, or numbers with units s, m, h, d,
 * w in a row ("90", "15m", "1h30m", "30d"); at least 1 s, at most ~100
 * years. */
int cli_parse_duration(const char *s, long long *seconds, struct tn_error *err) TN_MUST_CHECK;

/* "NAME@VERSION" (split at the last '@'; both parts non-empty).  *name and
 * *version are caller-freed. */
int cli_parse_ref(const char *s, char **name, char **version, struct tn_error *err)
	TN_MUST_CHECK;

/* A load-balancer binding: "none", or "haproxy:ADMIN:BACKEND" where ADMIN
 * is ADDR:PORT or unix:/PATH and BACKEND is the text after the last ':'.
 * *out is the API's object ({"driver": ...}); caller decrefs. */
int cli_parse_lb(const char *s, json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* The options of a rollout's strategy, for the option table of every
 * command that makes a rollout (`rollout create`, `cluster undo`); read
 * with cli_parse_strategy. */
#define CLI_STRATEGY_OPTIONS                                                              \
	{"canary", 0, "PERCENT", "a first batch of this share of the targets (10%)"},       \
	{"batch", 0, "N|N%", "targets per batch, or a share of them (default 1)"},           \
	{"pause-after", 0, "I,...", "wait for approval after these batches (0: the first)"}, \
	{"max-unavailable", 0, "N", "targets switching at once in a batch (default: all)"},  \
	{"health-timeout", 0, "TIME", "wait this long for a switched target (90, 90s, 2m)"}, \
	{"failure-threshold", 0, "N", "failed targets that halt the rollout (default 1)"},    \
	{"no-auto-rollback", 0, NULL, "when it halts, leave switched targets as they are"}

/* The API's `strategy` object from the CLI_STRATEGY_OPTIONS given in a
 * (an empty object when none was): --canary 10% is canary_percent 10,
 * --batch 5 batch_size 5, --batch 25% batch_percent 25, --pause-after
 * (repeated, or a,b) the pause_after array, --health-timeout a duration
 * of at most a day.  The ranges are the server's.  A bad value is
 * TN_E_INVALID with a message that names the option; *out is
 * caller-decref'd (NULL on error).  a's command must have the options. */
int cli_parse_strategy(const struct cli_args *a, json_t **out, struct tn_error *err)
	TN_MUST_CHECK;

/* Reads a JSON object from path ("-" is stdin), at most 1 MiB, duplicate
 * keys refused; *out caller-decref'd.  what names it in messages. */
int cli_read_json_file(const char *path, const char *what, json_t **out, struct tn_error *err)
	TN_MUST_CHECK;

#endif
