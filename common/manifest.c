/* manifest.c - reads bundle.json strictly into struct tn_manifest and checks
 * config layers against a bundle's config model.  The format and its limits
 * are documented in manifest.h. */
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json.h"
#include "template.h"
#include "xalloc.h"

const char *const tn_manifest_builtins[] = {
	"target.id", "target.address", "target.port_base", "cluster.name",
	"distribution.version", NULL,
};

static const char *const top_keys[] = {
	"name", "version", "requires", "run", "health", "config", "templates", "data", "serves",
	NULL,
};
static const char *const run_keys[] = {"command", "stop_timeout_s", NULL};
static const char *const health_keys[] = {
	"http", "tcp", "exec", "port", "interval_ms", "timeout_ms", "healthy_after", "deadline_s",
	NULL,
};
static const char *const config_entry_keys[] = {"type", "default", "description", NULL};
static const char *const serves_keys[] = {"port", NULL};

static const struct {
	const char *name;
	enum tn_config_type type;
	const char *must; /* what a value of the wrong type is told */
} config_types[] = {
	{"string", TN_CONFIG_STRING, "must be a string"},
	{"int", TN_CONFIG_INT, "must be an integer"},
	{"bool", TN_CONFIG_BOOL, "must be true or false"},
	{"number", TN_CONFIG_NUMBER, "must be a number"},
};
#define N_CONFIG_TYPES (sizeof config_types / sizeof config_types[0])

#define NAME_RULE                                                                                \
	"letters, digits, '_', '.' and '-', 1 to 128 characters, not starting with '.' or '-'"
#define KEY_RULE "[A-Za-z_][A-Za-z0-9_]*, at most 64 characters"

/* User text quoted in a message is cut to this many bytes, on a UTF-8
 * character boundary so that the message stays valid UTF-8 for JSON. */
#define QUOTE_MAX 80

static int quote_len(const char *s)
{
	size_t n = strlen(s);

	if (n <= QUOTE_MAX)
		return (int)n;
	n = QUOTE_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}

/* Expands to the two arguments of a "%.*s" conversion. */
#define Q(s) quote_len(s), (s)

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool tn_manifest_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TN_MANIFEST_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '.' &&
		    s[i] != '-')
			return false;
	return true;
}

static bool valid_config_key(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TN_MANIFEST_KEY_MAX || is_digit(s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
			return false;
	return true;
}

/* ---------------------------------------------------------------- values */

/* Fails unless v (at path) is a value of type. */
static int check_value(enum tn_config_type type, json_t *v, const char *path,
		       struct tn_error *err)
{
	bool ok = false;

	switch (type) {
	case TN_CONFIG_STRING:
		ok = json_is_string(v);
		/* Jansson refuses \u0000 when parsing, but values may be built
		 * in code: a NUL would silently cut the rendered string. */
		if (ok && strlen(json_string_value(v)) != json_string_length(v))
			return tn_fail(err, TN_E_INVALID, "%s: must not contain a NUL byte",
				       path);
		break;
	case TN_CONFIG_INT:
		ok = json_is_integer(v);
		break;
	case TN_CONFIG_BOOL:
		ok = json_is_boolean(v);
		break;
	case TN_CONFIG_NUMBER:
		ok = json_is_number(v);
		break;
	}
	if (ok)
		return 0;
	for (size_t i = 0; i < N_CONFIG_TYPES; i++)
		if (config_types[i].type == type)
			return tn_fail(err, TN_E_INVALID, "%s: %s", path, config_types[i].must);
	return tn_fail(err, TN_E_INTERNAL, "%s: unknown config type %d", path, (int)type);
}

const char *tn_config_type_name(enum tn_config_type type)
{
	for (size_t i = 0; i < N_CONFIG_TYPES; i++)
		if (config_types[i].type == type)
			return config_types[i].name;
	return "unknown";
}

/* ---------------------------------------------------------------- pieces */

/* A safe relative path, by the rule of tn_path_is_safe_relative. */
static int check_relative_path(const char *s, const char *path, struct tn_error *err)
{
	size_t n = strlen(s);
	const char *why;

	if (n == 0)
		return tn_fail(err, TN_E_INVALID, "%s: must not be empty", path);
	if (n > TN_MANIFEST_PATH_MAX)
		return tn_fail(err, TN_E_INVALID, "%s: longer than %d bytes", path,
			       TN_MANIFEST_PATH_MAX);
	why = tn_path_unsafe_reason(s);
	if (why)
		return tn_fail(err, TN_E_INVALID, "%s: \"%.*s\" %s%s", path, Q(s), why,
			       s[0] == '/' ? "; give it relative to the bundle root" : "");
	return 0;
}

/* Reads the array obj.key (at where) of strings: an argv (non-empty, first
 * element non-empty) or a list of safe relative paths.  *out is a new
 * NULL-terminated array of strings borrowed from obj (caller frees the
 * array), *n its length; both untouched when the key is absent. */
enum list_kind { LIST_ARGV, LIST_PATHS };

static int get_string_list(json_t *obj, const char *where, const char *key, bool required,
			   enum list_kind kind, const char ***out, size_t *n,
			   struct tn_error *err)
{
	json_t *arr = NULL;
	const char **list = NULL;
	char *path = NULL, *elem_path = NULL;
	size_t count, max = kind == LIST_ARGV ? TN_MANIFEST_ARGS_MAX : TN_MANIFEST_PATHS_MAX;
	int rc;

	rc = tn_json_get_array(obj, where, key, required, &arr, err);
	if (rc < 0 || !arr)
		goto out;
	path = tn_json_path(where, key);
	count = json_array_size(arr);
	if (kind == LIST_ARGV && count == 0) {
		rc = tn_fail(err, TN_E_INVALID, "%s: must not be empty", path);
		goto out;
	}
	if (count > max) {
		rc = tn_fail(err, TN_E_INVALID, "%s: more than %zu elements", path, max);
		goto out;
	}
	list = xcalloc(count + 1, sizeof *list);
	for (size_t i = 0; i < count; i++) {
		json_t *v = json_array_get(arr, i);

		free(elem_path);
		elem_path = tn_json_path_index(path, i);
		if (!json_is_string(v)) {
			rc = tn_fail(err, TN_E_INVALID, "%s: must be a string", elem_path);
			goto out;
		}
		list[i] = json_string_value(v);
		if (kind == LIST_ARGV && i == 0 && !*list[i]) {
			rc = tn_fail(err, TN_E_INVALID, "%s: must not be empty", elem_path);
			goto out;
		}
		if (kind == LIST_PATHS) {
			rc = check_relative_path(list[i], elem_path, err);
			if (rc < 0)
				goto out;
			for (size_t j = 0; j < i; j++)
				if (strcmp(list[j], list[i]) == 0) {
					rc = tn_fail(err, TN_E_INVALID,
						     "%s: \"%.*s\" is listed twice", elem_path,
						     Q(list[i]));
					goto out;
				}
		}
	}
	*out = list;
	*n = count;
	list = NULL;
out:
	free(list);
	free(path);
	free(elem_path);
	return rc;
}

/* Reads an optional integer with its default already in *out. */
static int get_int(json_t *obj, const char *where, const char *key, int min, int max, int *out,
		   struct tn_error *err)
{
	json_int_t v = *out;
	int rc = tn_json_get_int(obj, where, key, false, min, max, &v, err);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

/* A port with no placeholder must be a decimal port number. */
static int check_port(const char *s, const char *path, struct tn_error *err)
{
	unsigned long port = 0;
	size_t n = strlen(s);

	if (strstr(s, "{{"))
		return 0;
	for (size_t i = 0; i < n && port <= 65535; i++) {
		if (!is_digit(s[i])) {
			port = 0;
			break;
		}
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	if (port < 1 || port > 65535)
		return tn_fail(err, TN_E_INVALID,
			       "%s: \"%.*s\" is not a port (1..65535) nor a {{placeholder}}", path,
			       Q(s));
	return 0;
}

/* ---------------------------------------------------------------- sections */

static int parse_name_version(struct tn_manifest *m, struct tn_error *err)
{
	const char *version = NULL;
	int rc;

	rc = tn_json_get_string(m->raw, NULL, "name", true, &m->name, err);
	if (rc < 0)
		return rc;
	if (!tn_manifest_name_valid(m->name))
		return tn_fail(err, TN_E_INVALID, "name: \"%.*s\" is not a valid bundle name (%s)",
			       Q(m->name), NAME_RULE);
	rc = tn_json_get_string(m->raw, NULL, "version", true, &version, err);
	if (rc < 0)
		return rc;
	if (tn_version_parse(version, &m->version, err) < 0)
		return tn_error_prefix(err, "version: \"%.*s\" is not a valid version",
				       Q(version));
	tn_version_format(&m->version, m->version_str, sizeof m->version_str);
	return 0;
}

static int parse_require(struct tn_manifest *m, const char *key, json_t *v,
			 struct tn_manifest_require *r, struct tn_error *err)
{
	char *path = tn_json_path("requires", key);
	int rc = 0;

	if (!tn_manifest_name_valid(key)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: not a valid bundle name (%s)", path,
			     NAME_RULE);
		goto out;
	}
	if (strcmp(key, m->name) == 0) {
		rc = tn_fail(err, TN_E_INVALID, "%s: a bundle cannot require itself", path);
		goto out;
	}
	if (!json_is_string(v)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: must be a string (a version range)", path);
		goto out;
	}
	r->name = key;
	r->range_text = json_string_value(v);
	if (tn_range_parse(r->range_text, &r->range, err) < 0)
		rc = tn_error_prefix(err, "%s: \"%.*s\" is not a valid version range", path,
				     Q(r->range_text));
out:
	free(path);
	return rc;
}

static int parse_requires(struct tn_manifest *m, struct tn_error *err)
{
	json_t *obj = NULL, *v;
	const char *key;
	int rc;

	rc = tn_json_get_object(m->raw, NULL, "requires", false, &obj, err);
	if (rc < 0 || !obj)
		return rc;
	if (json_object_size(obj) > TN_MANIFEST_REQUIRES_MAX)
		return tn_fail(err, TN_E_INVALID, "requires: more than %d bundles",
			       TN_MANIFEST_REQUIRES_MAX);
	m->requires = xcalloc(json_object_size(obj) + 1, sizeof *m->requires);
	json_object_foreach(obj, key, v) {
		rc = parse_require(m, key, v, &m->requires[m->n_requires], err);
		if (rc < 0)
			return rc;
		m->n_requires++;
	}
	return 0;
}

static int parse_run(struct tn_manifest *m, struct tn_error *err)
{
	json_t *run = NULL;
	int rc;

	rc = tn_json_get_object(m->raw, NULL, "run", false, &run, err);
	if (rc < 0 || !run)
		return rc;
	m->has_run = true;
	m->run.stop_timeout_s = TN_MANIFEST_STOP_TIMEOUT_S;
	rc = tn_json_check_keys(run, "run", run_keys, err);
	if (rc < 0)
		return rc;
	rc = get_string_list(run, "run", "command", true, LIST_ARGV, &m->run.command,
			     &m->run.command_len, err);
	if (rc < 0)
		return rc;
	return get_int(run, "run", "stop_timeout_s", 1, 600, &m->run.stop_timeout_s, err);
}

static int parse_health(struct tn_manifest *m, struct tn_error *err)
{
	static const char *const probes[] = {"http", "tcp", "exec"};
	struct tn_manifest_health *h = &m->health;
	json_t *obj = NULL;
	char given[32] = "";
	size_t n_given = 0;
	int rc;

	h->interval_ms = TN_MANIFEST_INTERVAL_MS;
	h->timeout_ms = TN_MANIFEST_TIMEOUT_MS;
	h->healthy_after = TN_MANIFEST_HEALTHY_AFTER;
	h->deadline_s = TN_MANIFEST_DEADLINE_S;
	rc = tn_json_get_object(m->raw, NULL, "health", false, &obj, err);
	if (rc < 0 || !obj)
		return rc;
	m->has_health = true;
	rc = tn_json_check_keys(obj, "health", health_keys, err);
	if (rc < 0)
		return rc;

	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		if (!json_object_get(obj, probes[i]))
			continue;
		snprintf(given + strlen(given), sizeof given - strlen(given), "%s%s",
			 n_given ? ", " : "", probes[i]);
		n_given++;
	}
	if (n_given != 1)
		return tn_fail(err, TN_E_INVALID,
			       "health: %s%s; give exactly one of http, tcp, exec",
			       n_given ? "has more than one probe: " : "has no probe", given);

	if (json_object_get(obj, "http")) {
		h->kind = TN_PROBE_HTTP;
		rc = tn_json_get_string(obj, "health", "http", true, &h->http_path, err);
		if (rc < 0)
			return rc;
		if (h->http_path[0] != '/')
			return tn_fail(err, TN_E_INVALID,
				       "health.http: \"%.*s\" must be a path starting with '/'",
				       Q(h->http_path));
	} else if (json_object_get(obj, "tcp")) {
		bool tcp = false;

		h->kind = TN_PROBE_TCP;
		rc = tn_json_get_bool(obj, "health", "tcp", true, &tcp, err);
		if (rc < 0)
			return rc;
		if (!tcp)
			return tn_fail(err, TN_E_INVALID,
				       "health.tcp: must be true (leave health out for no probe)");
	} else {
		h->kind = TN_PROBE_EXEC;
		rc = get_string_list(obj, "health", "exec", true, LIST_ARGV, &h->exec,
				     &h->exec_len, err);
		if (rc < 0)
			return rc;
	}

	if (h->kind == TN_PROBE_EXEC) {
		if (json_object_get(obj, "port"))
			return tn_fail(err, TN_E_INVALID, "health.port: not used by an exec probe");
	} else {
		rc = tn_json_get_string(obj, "health", "port", true, &h->port, err);
		if (rc < 0)
			return rc;
		rc = check_port(h->port, "health.port", err);
		if (rc < 0)
			return rc;
	}

	rc = get_int(obj, "health", "interval_ms", 50, 60000, &h->interval_ms, err);
	if (rc == 0)
		rc = get_int(obj, "health", "timeout_ms", 50, 60000, &h->timeout_ms, err);
	if (rc == 0)
		rc = get_int(obj, "health", "healthy_after", 1, 100, &h->healthy_after, err);
	if (rc == 0)
		rc = get_int(obj, "health", "deadline_s", 1, 3600, &h->deadline_s, err);
	return rc;
}

static int parse_config_key(const char *key, json_t *entry, struct tn_manifest_config_key *k,
			    struct tn_error *err)
{
	char *path = tn_json_path("config", key);
	char *default_path = NULL;
	const char *type = NULL;
	size_t i;
	int rc = 0;

	if (!valid_config_key(key)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: not a valid config key (%s)", path, KEY_RULE);
		goto out;
	}
	if (!json_is_object(entry)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: must be an object", path);
		goto out;
	}
	rc = tn_json_check_keys(entry, path, config_entry_keys, err);
	if (rc < 0)
		goto out;
	k->name = key;
	rc = tn_json_get_string(entry, path, "type", true, &type, err);
	if (rc < 0)
		goto out;
	for (i = 0; i < N_CONFIG_TYPES; i++)
		if (strcmp(type, config_types[i].name) == 0)
			break;
	if (i == N_CONFIG_TYPES) {
		rc = tn_fail(err, TN_E_INVALID,
			     "%s.type: \"%.*s\" is not a type (string, int, bool, number)", path,
			     Q(type));
		goto out;
	}
	k->type = config_types[i].type;
	rc = tn_json_get_string(entry, path, "description", false, &k->description, err);
	if (rc < 0)
		goto out;
	default_path = tn_json_path(path, "default");
	k->default_value = json_object_get(entry, "default");
	if (!k->default_value) {
		rc = tn_fail(err, TN_E_INVALID, "%s: is required", default_path);
		goto out;
	}
	rc = check_value(k->type, k->default_value, default_path, err);
out:
	free(path);
	free(default_path);
	return rc;
}

static int parse_config(struct tn_manifest *m, struct tn_error *err)
{
	json_t *obj = NULL, *entry;
	const char *key;
	int rc;

	rc = tn_json_get_object(m->raw, NULL, "config", false, &obj, err);
	if (rc < 0 || !obj)
		return rc;
	if (json_object_size(obj) > TN_MANIFEST_CONFIG_MAX)
		return tn_fail(err, TN_E_INVALID, "config: more than %d keys",
			       TN_MANIFEST_CONFIG_MAX);
	m->config = xcalloc(json_object_size(obj) + 1, sizeof *m->config);
	json_object_foreach(obj, key, entry) {
		rc = parse_config_key(key, entry, &m->config[m->n_config], err);
		if (rc < 0)
			return rc;
		m->n_config++;
	}
	return 0;
}

static int parse_serves(struct tn_manifest *m, struct tn_error *err)
{
	json_t *obj = NULL;
	int rc;

	rc = tn_json_get_object(m->raw, NULL, "serves", false, &obj, err);
	if (rc < 0 || !obj)
		return rc;
	rc = tn_json_check_keys(obj, "serves", serves_keys, err);
	if (rc < 0)
		return rc;
	rc = tn_json_get_string(obj, "serves", "port", true, &m->serves_port, err);
	if (rc < 0)
		return rc;
	return check_port(m->serves_port, "serves.port", err);
}

/* ---------------------------------------------------------------- placeholders */

bool tn_manifest_name_known(const struct tn_manifest *m, const char *name)
{
	for (size_t i = 0; tn_manifest_builtins[i]; i++)
		if (strcmp(name, tn_manifest_builtins[i]) == 0)
			return true;
	return tn_manifest_config_find(m, name) != NULL;
}

static int placeholder_known(const char *name, void *ctx, struct tn_error *err)
{
	const struct tn_manifest *m = ctx;

	if (tn_manifest_name_known(m, name))
		return 0;
	return tn_fail(err, TN_E_INVALID,
		       "unknown placeholder {{%.*s}}: neither a built-in (target.id, "
		       "target.address, target.port_base, cluster.name, distribution.version) "
		       "nor a config key of this bundle",
		       Q(name));
}

static int check_placeholders_in(const struct tn_manifest *m, const char *s, const char *path,
				 struct tn_error *err)
{
	if (tn_template_names(s, strlen(s), placeholder_known, (void *)m, err) < 0)
		return tn_error_prefix(err, "%s", path);
	return 0;
}

static int check_argv_placeholders(const struct tn_manifest *m, const char *const *argv,
				   size_t argc, const char *where, struct tn_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < argc && rc == 0; i++) {
		char *path = tn_json_path_index(where, i);

		rc = check_placeholders_in(m, argv[i], path, err);
		free(path);
	}
	return rc;
}

static int check_placeholders(const struct tn_manifest *m, struct tn_error *err)
{
	const struct tn_manifest_health *h = &m->health;
	int rc = 0;

	if (m->has_run)
		rc = check_argv_placeholders(m, m->run.command, m->run.command_len, "run.command",
					     err);
	if (rc == 0 && h->http_path)
		rc = check_placeholders_in(m, h->http_path, "health.http", err);
	if (rc == 0 && h->port)
		rc = check_placeholders_in(m, h->port, "health.port", err);
	if (rc == 0 && h->exec)
		rc = check_argv_placeholders(m, h->exec, h->exec_len, "health.exec", err);
	if (rc == 0 && m->serves_port)
		rc = check_placeholders_in(m, m->serves_port, "serves.port", err);
	return rc;
}

/* ---------------------------------------------------------------- public */

int tn_manifest_parse(const char *buf, size_t len, struct tn_manifest **out,
		      struct tn_error *err)
{
	struct tn_error local;
	struct tn_manifest *m = NULL;
	json_t *root = NULL;
	int rc;

	*out = NULL;
	if (!err)
		err = &local; /* the steps below add context to the message */
	if (len > TN_MANIFEST_MAX_BYTES) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "%zu bytes, over the limit of %d", len,
			     TN_MANIFEST_MAX_BYTES);
		goto out;
	}
	rc = tn_json_parse_object(buf, len, &root, err);
	if (rc < 0)
		goto out;
	m = xcalloc(1, sizeof *m);
	m->raw = root;
	rc = tn_json_check_keys(m->raw, NULL, top_keys, err);
	if (rc == 0)
		rc = parse_name_version(m, err);
	if (rc == 0)
		rc = parse_requires(m, err);
	if (rc == 0)
		rc = parse_run(m, err);
	if (rc == 0)
		rc = parse_health(m, err);
	if (rc == 0)
		rc = parse_config(m, err);
	if (rc == 0)
		rc = get_string_list(m->raw, NULL, "templates", false, LIST_PATHS, &m->templates,
				     &m->n_templates, err);
	if (rc == 0)
		rc = get_string_list(m->raw, NULL, "data", false, LIST_PATHS, &m->data,
				     &m->n_data, err);
	if (rc == 0)
		rc = parse_serves(m, err);
	/* Last: it needs the config keys. */
	if (rc == 0)
		rc = check_placeholders(m, err);
out:
	if (rc < 0) {
		tn_error_prefix(err, "bundle.json");
		tn_manifest_free(m);
	} else {
		*out = m;
	}
	return rc;
}

void tn_manifest_free(struct tn_manifest *m)
{
	if (!m)
		return;
	free(m->requires);
	free(m->run.command);
	free(m->health.exec);
	free(m->config);
	free(m->templates);
	free(m->data);
	json_decref(m->raw);
	free(m);
}

const struct tn_manifest_config_key *tn_manifest_config_find(const struct tn_manifest *m,
							     const char *key)
{
	for (size_t i = 0; i < m->n_config; i++)
		if (strcmp(key, m->config[i].name) == 0)
			return &m->config[i];
	return NULL;
}

json_t *tn_manifest_config_defaults(const struct tn_manifest *m)
{
	json_t *obj = json_object();

	if (!obj)
		abort(); /* out of memory: the one policy (xalloc.h) */
	for (size_t i = 0; i < m->n_config; i++)
		if (json_object_set(obj, m->config[i].name, m->config[i].default_value) < 0)
			abort();
	return obj;
}

/* "greeting, workers" (cut short with "..." when it does not fit). */
static void list_keys(const struct tn_manifest *m, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->n_config; i++) {
		int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
				 m->config[i].name);

		if (n < 0 || (size_t)n >= size - used) {
			/* Keys are ASCII, so cutting anywhere is safe. */
			snprintf(buf + used, size - used, "%s...", i ? ", " : "");
			return;
		}
		used += (size_t)n;
	}
}

int tn_manifest_check_config(const struct tn_manifest *m, json_t *values, const char *where,
			     struct tn_error *err)
{
	const char *sep = where && *where ? ": " : "";
	const char *key;
	json_t *v;
	char *path = NULL;
	int rc = 0;

	where = where ? where : "";
	if (!values)
		goto out;
	if (!json_is_object(values)) {
		rc = tn_fail(err, TN_E_INVALID, "%s%s%s: must be an object", where, sep, m->name);
		goto out;
	}
	json_object_foreach(values, key, v) {
		const struct tn_manifest_config_key *k = tn_manifest_config_find(m, key);

		free(path);
		path = xasprintf("%s%s%s.%.*s", where, sep, m->name, Q(key));
		if (!k) {
			char keys[256];

			list_keys(m, keys, sizeof keys);
			if (m->n_config)
				rc = tn_fail(err, TN_E_INVALID,
					     "%s: unknown key (bundle %s@%s has: %s)", path,
					     m->name, m->version_str, keys);
			else
				rc = tn_fail(err, TN_E_INVALID,
					     "%s: unknown key (bundle %s@%s has no config)", path,
					     m->name, m->version_str);
			goto out;
		}
		rc = check_value(k->type, v, path, err);
		if (rc < 0)
			goto out;
	}
out:
	free(path);
	return rc;
}
