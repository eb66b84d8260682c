/* json.c - strict JSON reading over jansson: every refusal names the field
 * by its path, so the HTTP layer and the CLI can show the message as is. */
#include "json.h"

#include <string.h>

#include "xalloc.h"

int tn_json_parse_object(const char *buf, size_t len, json_t **out, struct tn_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!root)
		return tn_fail(err, TN_E_JSON, "malformed JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return tn_fail(err, TN_E_INVALID, "expected a JSON object at the top level");
	}
	*out = root;
	return 0;
}

char *tn_json_path(const char *where, const char *key)
{
	if (!where || !*where)
		return xstrdup(key);
	return xasprintf("%s.%s", where, key);
}

char *tn_json_path_index(const char *where, size_t i)
{
	return xasprintf("%s[%zu]", where ? where : "", i);
}

int tn_json_check_keys(json_t *obj, const char *where, const char *const allowed[],
		       struct tn_error *err)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value) {
		bool known = false;

		for (size_t i = 0; allowed[i] && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (!known) {
			char *path = tn_json_path(where, key);
			int rc = tn_fail(err, TN_E_INVALID, "%s: unknown field", path);

			free(path);
			return rc;
		}
	}
	return 0;
}

/* Looks key up and checks its type; 1 when found with the right type, 0
 * when absent and optional, negative on error. */
static int lookup(json_t *obj, const char *where, const char *key, bool required,
		  json_type type, const char *type_name, json_t **out, struct tn_error *err)
{
	json_t *value = json_object_get(obj, key);
	char *path;
	int rc;

	if (value && (json_typeof(value) == type ||
		      (type == JSON_TRUE && json_is_boolean(value))))  {
		*out = value;
		return 1;
	}
	if (!value && !required)
		return 0;
	path = tn_json_path(where, key);
	if (!value)
		rc = tn_fail(err, TN_E_INVALID, "%s: is required", path);
	else
		rc = tn_fail(err, TN_E_INVALID, "%s: must be %s", path, type_name);
	free(path);
	return rc;
}

int tn_json_get_string(json_t *obj, const char *where, const char *key, bool required,
		       const char **out, struct tn_error *err)
{
	json_t *v;
	int rc = lookup(obj, where, key, required, JSON_STRING, "a string", &v, err);

	if (rc > 0)
		*out = json_string_value(v);
	return rc < 0 ? rc : 0;
}

int tn_json_get_int(json_t *obj, const char *where, const char *key, bool required,
		    json_int_t min, json_int_t max, json_int_t *out, struct tn_error *err)
{
	json_t *v;
	int rc = lookup(obj, where, key, required, JSON_INTEGER, "an integer", &v, err);

	if (rc <= 0)
		return rc;
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		char *path = tn_json_path(where, key);

		rc = tn_fail(err, TN_E_INVALID, "%s: %" JSON_INTEGER_FORMAT
			     " is out of range [%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT "]",
			     path, json_integer_value(v), min, max);
		free(path);
		return rc;
	}
	*out = json_integer_value(v);
	return 0;
}

int tn_json_get_bool(json_t *obj, const char *where, const char *key, bool required,
		     bool *out, struct tn_error *err)
{
	json_t *v;
	int rc = lookup(obj, where, key, required, JSON_TRUE, "true or false", &v, err);

	if (rc > 0)
		*out = json_is_true(v);
	return rc < 0 ? rc : 0;
}

int tn_json_get_object(json_t *obj, const char *where, const char *key, bool required,
		       json_t **out, struct tn_error *err)
{
	json_t *v;
	int rc = lookup(obj, where, key, required, JSON_OBJECT, "an object", &v, err);

	if (rc > 0)
		*out = v;
	return rc < 0 ? rc : 0;
}

int tn_json_get_array(json_t *obj, const char *where, const char *key, bool required,
		      json_t **out, struct tn_error *err)
{
	json_t *v;
	int rc = lookup(obj, where, key, required, JSON_ARRAY, "an array", &v, err);

	if (rc > 0)
		*out = v;
	return rc < 0 ? rc : 0;
}

char *tn_json_canonical(const json_t *value)
{
	char *s = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (!s)
		return xstrdup("null");
	return s;
}
