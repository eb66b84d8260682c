/* json.h - thin helpers over jansson for strict parsing: duplicate keys
 * refused, unknown keys refused, wrong types refused, each error naming the
 * field by its path ("run.command[1]").
 *
 * `where` arguments are the path of the object being read ("" or NULL for
 * the top level); it prefixes every message. */
#ifndef TN_JSON_H
#define TN_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Parses len bytes (need not be NUL-terminated) with duplicate keys
 * refused; the top level must be an object.  *out is caller-decref'd.
 * TN_E_JSON with line and column on malformed input. */
int tn_json_parse_object(const char *buf, size_t len, json_t **out, struct tn_error *err)
	TN_MUST_CHECK;

/* Fails with TN_E_INVALID naming the first key of obj not in allowed
 * (a NULL-terminated list). */
int tn_json_check_keys(json_t *obj, const char *where, const char *const allowed[],
		       struct tn_error *err) TN_MUST_CHECK;

/* Typed getters.  When the key is absent: required → TN_E_INVALID
 * ("where.key: is required"), otherwise 0 with *out untouched (so callers
 * preset defaults).  A present key of the wrong type or out of range is
 * TN_E_INVALID naming it.  Strings and containers are borrowed from obj. */
int tn_json_get_string(json_t *obj, const char *where, const char *key, bool required,
		       const char **out, struct tn_error *err) TN_MUST_CHECK;
int tn_json_get_int(json_t *obj, const char *where, const char *key, bool required,
		    json_int_t min, json_int_t max, json_int_t *out, struct tn_error *err)
	TN_MUST_CHECK;
int tn_json_get_bool(json_t *obj, const char *where, const char *key, bool required,
		     bool *out, struct tn_error *err) TN_MUST_CHECK;
int tn_json_get_object(json_t *obj, const char *where, const char *key, bool required,
		       json_t **out, struct tn_error *err) TN_MUST_CHECK;
int tn_json_get_array(json_t *obj, const char *where, const char *key, bool required,
		      json_t **out, struct tn_error *err) TN_MUST_CHECK;

/* The path of a child for messages: "where.key" (or "key" at the top);
 * caller frees. */
char *tn_json_path(const char *where, const char *key);
/* "where[i]"; caller frees. */
char *tn_json_path_index(const char *where, size_t i);

/* Compact dump with keys sorted: the canonical form hashed into release
 * ids.  Caller frees. */
char *tn_json_canonical(const json_t *value);

#endif
