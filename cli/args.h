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

/* Reads a JSON object from path ("-" is stdin), at most 1 MiB, duplicate
 * keys refused; *out caller-decref'd.  what names it in messages. */
int cli_read_json_file(const char *path, const char *what, json_t **out, struct tn_error *err)
	TN_MUST_CHECK;

#endif
