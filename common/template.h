/* template.h - `{{name}}` substitution for bundle templates and for the
 * strings of run, health and serves (DESIGN §2).  A name is
 * [A-Za-z0-9_.-]+, optionally with spaces inside the braces ("{{ name }}").
 * An unknown name is an error naming it, never an empty string.
 *
 * Only "{{" opens a name: a lone "{" or "}", and a "}}" with no opener, are
 * literal text.  In a run of three or more "{", the last two open, so
 * "{{{x}}}" renders as "{" value "}".  There is no escape for a literal
 * "{{".  Values are inserted as they are, never rendered again.  Errors
 * give the line and column (1-based, in bytes) of the offending "{{". */
#ifndef TN_TEMPLATE_H
#define TN_TEMPLATE_H

#include <stddef.h>

#include "error.h"

/* Longest name accepted between the braces. */
#define TN_TEMPLATE_NAME_MAX 255

/* Returns the value of name (borrowed; must stay valid until the render
 * returns), or NULL when name is unknown. */
typedef const char *(*tn_template_lookup_fn)(const char *name, void *ctx);

/* Renders tmpl (len bytes, need not be NUL-terminated; NUL bytes in literal
 * text are copied, inside braces they are an error) into *out (caller frees;
 * NUL-terminated, length in *out_len when out_len is not NULL; *out is NULL
 * on failure).  Fails with TN_E_INVALID on an unknown name, an unterminated
 * "{{" or a malformed name, and with TN_E_TOO_LARGE when the output would
 * exceed max_out bytes (not counting the terminating NUL). */
int tn_template_render(const char *tmpl, size_t len, tn_template_lookup_fn lookup,
		       void *ctx, size_t max_out, char **out, size_t *out_len,
		       struct tn_error *err) TN_MUST_CHECK;

/* Calls fn for each name referenced by tmpl, in order and once per
 * occurrence, without rendering; used to refuse unknown names at upload.
 * name is borrowed for the call only.  Stops and returns fn's negative
 * result when fn fails (err is then whatever fn left in it); fails like
 * tn_template_render on malformed input, after calling fn for the names
 * before it. */
typedef int (*tn_template_name_fn)(const char *name, void *ctx, struct tn_error *err);
int tn_template_names(const char *tmpl, size_t len, tn_template_name_fn fn, void *ctx,
		      struct tn_error *err) TN_MUST_CHECK;

#endif
