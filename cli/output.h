/* output.h - everything `tender` writes: aligned tables and "Label: value"
 * blocks for people, the server's JSON for scripts, messages on stderr,
 * and a progress bar drawn only when stderr is a terminal.  The only part
 * of the client that prints. */
#ifndef TN_CLI_OUTPUT_H
#define TN_CLI_OUTPUT_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* prefix, the message, a newline, on f (stdout is flushed first when f is
 * stderr, so that the two stay in order). */
void cli_vmessage(FILE *f, const char *prefix, const char *fmt, va_list ap) TN_PRINTF(3, 0);
/* "tender: <message>" on stderr. */
void cli_error(const char *fmt, ...) TN_PRINTF(1, 2);
/* "tender: warning: <message>" on stderr. */
void cli_warn(const char *fmt, ...) TN_PRINTF(1, 2);
/* As given, on stdout / on stderr. */
void cli_printf(const char *fmt, ...) TN_PRINTF(1, 2);
void cli_eprintf(const char *fmt, ...) TN_PRINTF(1, 2);
/* Text that came from elsewhere (the server, a log), on stdout with
 * terminal control characters other than newline and tab made visible. */
void cli_print_text(const char *s, size_t len);

/* JSON on stdout: indented, keys in the server's order, a newline after. */
void cli_print_json(const json_t *v);
/* JSON on one line (JSON Lines: one event per line). */
void cli_print_json_line(const json_t *v);

/* The value at a dotted path ("revision.distribution") of obj; borrowed,
 * NULL when any step is missing. */
json_t *cli_json_at(json_t *obj, const char *path);

/* The text of a value for a person: a string as is (control characters
 * made visible), null or missing as "-", numbers, true/false, and
 * objects and arrays as compact JSON.  Caller frees. */
char *cli_text(const json_t *v);

/* A column of a table: its header, and the value of each item at `path`,
 * or what `format` makes of the item (a caller-freed string; its control
 * characters are made visible too). */
struct cli_column {
	const char *header;
	const char *path;
	char *(*format)(json_t *item);
};

/* Prints items (an array of objects) as a table: a header line, one line
 * per item, columns two spaces apart and as wide as their widest cell.
 * columns ends with a NULL header. */
void cli_print_table(json_t *items, const struct cli_column *columns);

/* A line "Label:  value" per field, labels aligned; fields end with a NULL
 * label.  A field whose path is missing in obj is left out. */
struct cli_field {
	const char *label;
	const char *path;
};
void cli_print_fields(json_t *obj, const struct cli_field *fields);

/* "12 B", "3.4 KiB", "1.2 MiB"... into buf. */
const char *cli_size(double bytes, char *buf, size_t size);

/* Whether stderr is a terminal (and so gets progress bars). */
bool cli_stderr_is_tty(void);

/* A one-line progress bar on stderr, redrawn in place; it does nothing
 * when stderr is not a terminal. */
struct cli_progress {
	bool on;
	bool drawn;
	double last; /* monotonic seconds of the last redraw */
	char label[48];
};
void cli_progress_begin(struct cli_progress *p, const char *label);
/* Redraws (at most ten times a second unless done == total): a bar of
 * done/total (an empty bar when total is 0) and `detail` after it. */
void cli_progress_update(struct cli_progress *p, double done, double total, const char *detail);
/* Ends the line of a bar that was drawn. */
void cli_progress_end(struct cli_progress *p);

#endif
