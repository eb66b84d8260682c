/* output.c - tables, field blocks, JSON, messages and the progress bar of
 * `tender` (see output.h).  Text from the server is shown with terminal
 * control characters made visible: a hostname an agent reported must not
 * be able to move the cursor or change the title of an operator's
 * terminal. */
#include "output.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define DEFAULT_COLUMNS 80

void cli_vmessage(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	if (f == stderr)
		fflush(stdout);
	fputs(prefix, f);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vmessage(stderr, "tender: ", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vmessage(stderr, "tender: warning: ", fmt, ap);
	va_end(ap);
}

void cli_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
}

void cli_eprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* Appends s[0..len) to a memstream with control characters as \xNN
 * (keep_lines: newline and tab kept). */
static void put_safe(FILE *f, const char *s, size_t len, bool keep_lines)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(keep_lines && (c == '\n' || c == '\t'))) || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

void cli_print_text(const char *s, size_t len)
{
	put_safe(stdout, s, len, true);
}

void cli_print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	fputc('\n', stdout);
}

void cli_print_json_line(const json_t *v)
{
	json_dumpf(v, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	fputc('\n', stdout);
	fflush(stdout);
}

json_t *cli_json_at(json_t *obj, const char *path)
{
	const char *p = path;

	/* bounded by the length of path: each step consumes a segment */
	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		char *key = xstrndup(p, len);

		obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
		free(key);
		p += len + (dot ? 1 : 0);
	}
	return obj;
}

/* s with control characters made visible; takes ownership of s. */
static char *safe_copy(char *s)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	put_safe(f, s, strlen(s), false);
	fclose(f);
	free(s);
	return out;
}

char *cli_text(const json_t *v)
{
	char *out = NULL, *dump;
	size_t len = 0;
	FILE *f;

	if (!v)
		return xstrdup("-");
	switch (json_typeof(v)) {
	case JSON_STRING:
		f = open_memstream(&out, &len);
		put_safe(f, json_string_value(v), json_string_length(v), false);
		fclose(f);
		return out;
	case JSON_INTEGER:
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return xasprintf("%g", json_real_value(v));
	case JSON_TRUE:
		return xstrdup("true");
	case JSON_FALSE:
		return xstrdup("false");
	case JSON_OBJECT:
	case JSON_ARRAY:
		dump = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
		f = open_memstream(&out, &len);
		put_safe(f, dump ? dump : "", dump ? strlen(dump) : 0, false);
		fclose(f);
		free(dump);
		return out;
	case JSON_NULL:
	default:
		return xstrdup("-");
	}
}

/* The columns a string takes on a terminal: UTF-8 continuation bytes do
 * not count (wide characters are rare in these tables). */
static size_t width_of(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void cli_print_table(json_t *items, const struct cli_column *columns)
{
	size_t ncols = 0, nrows = json_array_size(items);
	size_t *widths;
	char **cells;

	while (columns[ncols].header)
		ncols++;
	widths = xcalloc(ncols, sizeof *widths);
	cells = xcalloc((nrows + 1) * ncols, sizeof *cells);
	for (size_t c = 0; c < ncols; c++) {
		cells[c] = xstrdup(columns[c].header);
		widths[c] = width_of(cells[c]);
	}
	for (size_t r = 0; r < nrows; r++) {
		json_t *item = json_array_get(items, r);

		for (size_t c = 0; c < ncols; c++) {
			char *cell = columns[c].format
					 ? safe_copy(columns[c].format(item))
					 : cli_text(cli_json_at(item, columns[c].path));
			size_t w = width_of(cell);

			cells[(r + 1) * ncols + c] = cell;
			if (w > widths[c])
				widths[c] = w;
		}
	}
	for (size_t r = 0; r <= nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *cell = cells[r * ncols + c];

			fputs(cell, stdout);
			if (c + 1 < ncols)
				fprintf(stdout, "%*s", (int)(widths[c] - width_of(cell) + 2), "");
		}
		fputc('\n', stdout);
	}
	for (size_t i = 0; i < (nrows + 1) * ncols; i++)
		free(cells[i]);
	free(cells);
	free(widths);
}

void cli_print_fields(json_t *obj, const struct cli_field *fields)
{
	size_t width = 0;

	for (size_t i = 0; fields[i].label; i++)
		if (cli_json_at(obj, fields[i].path) && width_of(fields[i].label) > width)
			width = width_of(fields[i].label);
	for (size_t i = 0; fields[i].label; i++) {
		json_t *v = cli_json_at(obj, fields[i].path);
		char *text;

		if (!v)
			continue;
		text = cli_text(v);
		fprintf(stdout, "%s:%*s%s\n", fields[i].label,
			(int)(width - width_of(fields[i].label) + 2), "", text);
		free(text);
	}
}

const char *cli_size(double bytes, char *buf, size_t size)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%.0f B", bytes);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* ------------------------------------------------------------ progress */

bool cli_stderr_is_tty(void)
{
	return isatty(STDERR_FILENO) == 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int terminal_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return DEFAULT_COLUMNS;
}

void cli_progress_begin(struct cli_progress *p, const char *label)
{
	memset(p, 0, sizeof *p);
	p->on = cli_stderr_is_tty();
	snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

void cli_progress_update(struct cli_progress *p, double done, double total, const char *detail)
{
	int cols, bar, fill;
	double t = now_s();

	if (!p->on || (p->drawn && t - p->last < 0.1 && !(total > 0 && done >= total)))
		return;
	p->last = t;
	p->drawn = true;
	cols = terminal_columns();
	/* label, " [", bar, "] ", percent, " ", detail: the bar takes what is left */
	bar = cols - (int)width_of(p->label) - (int)width_of(detail ? detail : "") - 12;
	if (bar > 40)
		bar = 40;
	if (bar < 10)
		bar = 10;
	fill = total > 0 ? (int)(bar * (done > total ? 1.0 : done / total)) : 0;
	fprintf(stderr, "\r\033[K%s [", p->label);
	for (int i = 0; i < bar; i++)
		fputc(i < fill ? '#' : '.', stderr);
	if (total > 0)
		fprintf(stderr, "] %3d%% %s", (int)(100 * (done > total ? 1.0 : done / total)),
			detail ? detail : "");
	else
		fprintf(stderr, "]      %s", detail ? detail : "");
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->on && p->drawn)
		fputc('\n', stderr);
	p->drawn = false;
}
