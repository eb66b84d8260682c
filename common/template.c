/* template.c - `{{name}}` substitution for bundle templates and for the
 * strings of run, health and serves (DESIGN §2).  One scanner splits a
 * template into literal text and names; rendering and name listing both walk
 * it, so what is checked at upload is exactly what is rendered at Prepare. */
#include "template.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* How much of an input an error message quotes: enough to recognise it, not
 * so much that a hostile input crowds the reason out of the message. */
#define SHOW_MAX 80

/* First allocation of the output; it doubles from there up to max_out. */
#define OUT_INITIAL 256

struct shown {
	char s[SHOW_MAX + 8];
};

/* Makes s[0..len) safe to put between quotes in a message that ends up on a
 * terminal or in JSON: '"' and '\' escaped, bytes outside printable ASCII as
 * \xNN, cut with "..." once it passes SHOW_MAX.  Returns out->s. */
static const char *show(const char *s, size_t len, struct shown *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4];
		size_t k = 0;

		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 0xf];
		} else {
			esc[k++] = (char)c;
		}
		if (n + k > SHOW_MAX) {
			memcpy(out->s + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(out->s + n, esc, k);
		n += k;
	}
	out->s[n] = '\0';
	return out->s;
}

static bool is_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

struct scanner {
	const char *t;
	size_t len;
	size_t pos;	   /* next byte to look at */
	unsigned line;	   /* 1-based line of t[pos] */
	size_t line_start; /* offset where that line starts */
};

enum piece_kind { PIECE_END, PIECE_TEXT, PIECE_NAME };

struct piece {
	enum piece_kind kind;
	const char *text; /* PIECE_TEXT: borrowed from the template */
	size_t text_len;
	char name[TN_TEMPLATE_NAME_MAX + 1]; /* PIECE_NAME */
	unsigned line, column;		     /* PIECE_NAME: of its "{{" */
};

/* True when a name opens at t[i].  In "{{{" the first brace is text, so
 * that "{{{x}}}" mirrors the "}}}" side, where the extra brace is text too. */
static bool opens_at(const struct scanner *sc, size_t i)
{
	return sc->t[i] == '{' && i + 1 < sc->len && sc->t[i + 1] == '{' &&
	       !(i + 2 < sc->len && sc->t[i + 2] == '{');
}

/* Reads "{{ name }}" at sc->pos into pc.  The closing "}}" is looked for
 * first, so that a missing one is reported as such rather than as whatever
 * character happens to follow the name. */
static int scan_name(struct scanner *sc, struct piece *pc, struct tn_error *err)
{
	const char *t = sc->t;
	size_t open = sc->pos;
	size_t i = open + 2;
	size_t end, name_start, name_end;
	const char *close;
	struct shown w, c;

	pc->line = sc->line;
	pc->column = (unsigned)(open - sc->line_start + 1);
	close = memmem(t + i, sc->len - i, "}}", 2);
	if (!close)
		return tn_fail(err, TN_E_INVALID,
			       "unterminated \"{{\" at line %u, column %u (no \"}}\" after it)",
			       pc->line, pc->column);
	end = (size_t)(close - t);

	while (i < end && t[i] == ' ')
		i++;
	name_start = i;
	while (i < end && is_name_char((unsigned char)t[i]))
		i++;
	name_end = i;
	while (i < end && t[i] == ' ')
		i++;
	if (i < end) {
		if (t[i] == '\0')
			return tn_fail(err, TN_E_INVALID,
				       "NUL byte in template name \"%s\" at line %u, column %u",
				       show(t + open, end + 2 - open, &w), pc->line, pc->column);
		if (is_name_char((unsigned char)t[i]))
			return tn_fail(err, TN_E_INVALID,
				       "space inside template name \"%s\" at line %u, column %u",
				       show(t + open, end + 2 - open, &w), pc->line, pc->column);
		return tn_fail(err, TN_E_INVALID,
			       "invalid character '%s' in template name \"%s\" at line %u, "
			       "column %u (names are A-Z a-z 0-9 _ . -)",
			       show(t + i, 1, &c), show(t + open, end + 2 - open, &w), pc->line,
			       pc->column);
	}
	if (name_end == name_start)
		return tn_fail(err, TN_E_INVALID,
			       "empty template name \"%s\" at line %u, column %u",
			       show(t + open, end + 2 - open, &w), pc->line, pc->column);
	if (name_end - name_start > TN_TEMPLATE_NAME_MAX)
		return tn_fail(err, TN_E_INVALID,
			       "template name \"%s\" at line %u, column %u is longer than %d "
			       "characters",
			       show(t + open, end + 2 - open, &w), pc->line, pc->column,
			       TN_TEMPLATE_NAME_MAX);
	memcpy(pc->name, t + name_start, name_end - name_start);
	pc->name[name_end - name_start] = '\0';
	pc->kind = PIECE_NAME;
	sc->pos = end + 2;
	return 0;
}

/* Yields the next piece of the template.  Every call either advances
 * sc->pos, fails, or returns PIECE_END, so loops over it are bounded by the
 * template's length. */
static int next_piece(struct scanner *sc, struct piece *pc, struct tn_error *err)
{
	size_t i = sc->pos;

	if (i >= sc->len) {
		pc->kind = PIECE_END;
		return 0;
	}
	if (opens_at(sc, i))
		return scan_name(sc, pc, err);
	while (i < sc->len && !opens_at(sc, i)) {
		if (sc->t[i] == '\n') {
			sc->line++;
			sc->line_start = i + 1;
		}
		i++;
	}
	pc->kind = PIECE_TEXT;
	pc->text = sc->t + sc->pos;
	pc->text_len = i - sc->pos;
	sc->pos = i;
	return 0;
}

/* Makes room for need bytes, doubling but never past limit (the caller has
 * already checked that need fits). */
static void grow(char **buf, size_t *cap, size_t need, size_t limit)
{
	size_t n = *cap ? *cap : OUT_INITIAL;

	if (need <= *cap)
		return;
	while (n < need)
		n = n > SIZE_MAX / 2 ? SIZE_MAX : n * 2;
	if (n > limit)
		n = limit;
	*buf = xrealloc(*buf, n);
	*cap = n;
}

int tn_template_render(const char *tmpl, size_t len, tn_template_lookup_fn lookup, void *ctx,
		       size_t max_out, char **out, size_t *out_len, struct tn_error *err)
{
	struct scanner sc = {.t = tmpl, .len = len, .pos = 0, .line = 1, .line_start = 0};
	/* Room for the output plus its NUL; need never exceeds it. */
	size_t limit = max_out < SIZE_MAX ? max_out + 1 : SIZE_MAX;
	struct piece pc;
	char *buf = NULL;
	size_t used = 0, cap = 0;
	int rc;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	for (;;) {
		const char *add;
		size_t n;

		rc = next_piece(&sc, &pc, err);
		if (rc)
			goto out;
		if (pc.kind == PIECE_END)
			break;
		if (pc.kind == PIECE_TEXT) {
			add = pc.text;
			n = pc.text_len;
		} else {
			add = lookup(pc.name, ctx);
			if (!add) {
				rc = tn_fail(
				    err, TN_E_INVALID,
				    "unknown template name \"{{%s}}\" at line %u, column %u",
				    pc.name, pc.line, pc.column);
				goto out;
			}
			n = strlen(add);
		}
		if (n > max_out - used) {
			rc = tn_fail(err, TN_E_TOO_LARGE,
				     "rendered template is larger than %zu bytes", max_out);
			goto out;
		}
		grow(&buf, &cap, used + n + 1, limit);
		memcpy(buf + used, add, n);
		used += n;
	}
	grow(&buf, &cap, used + 1, limit);
	buf[used] = '\0';
	*out = buf;
	buf = NULL;
	if (out_len)
		*out_len = used;
	rc = 0;
out:
	free(buf);
	return rc;
}

int tn_template_names(const char *tmpl, size_t len, tn_template_name_fn fn, void *ctx,
		      struct tn_error *err)
{
	struct scanner sc = {.t = tmpl, .len = len, .pos = 0, .line = 1, .line_start = 0};
	struct piece pc;
	int rc;

	for (;;) {
		rc = next_piece(&sc, &pc, err);
		if (rc)
			goto out;
		if (pc.kind == PIECE_END)
			break;
		if (pc.kind == PIECE_NAME) {
			rc = fn(pc.name, ctx, err);
			if (rc < 0)
				goto out;
		}
	}
	rc = 0;
out:
	return rc;
}
