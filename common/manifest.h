/* manifest.h - a bundle's bundle.json (DESIGN §2 "Bundle") read strictly into
 * a struct: unknown fields, wrong types, bad names, versions, ranges, paths
 * and unknown {{placeholders}} are refused with a message naming the field.
 *
 * The format, with its defaults and limits:
 *
 *   name       required; [A-Za-z0-9_.-], 1 to 128 characters, not starting
 *              with '.' or '-'
 *   version    required; OSGi version (version.h), kept parsed and in its
 *              canonical form
 *   requires   optional object: bundle name -> OSGi range ("[1.0,2.0)", or
 *              a bare "1.0" meaning at least 1.0); not the bundle itself
 *   run        optional object:
 *                command         required; non-empty array of strings, the
 *                                first non-empty (templated)
 *                stop_timeout_s  default 10, 1..600
 *   health     optional object with exactly one probe:
 *                http            a path starting with '/' (GET, 2xx)
 *                tcp             true (connect)
 *                exec            an argv array like run.command (exit 0)
 *              and:
 *                port            string (templated); required for http and
 *                                tcp, refused for exec; a literal port is
 *                                1..65535
 *                interval_ms     default 500, 50..60000
 *                timeout_ms      default 1000, 50..60000
 *                healthy_after   default 2, 1..100
 *                deadline_s      default 60, 1..3600
 *              Without health the bundle counts as healthy once running for
 *              healthy_after intervals, so the timing defaults apply anyway.
 *   config     optional object: key -> {"type": "string"|"int"|"bool"|
 *              "number", "default": <required, of that type>,
 *              "description": <optional string>}; keys are
 *              [A-Za-z_][A-Za-z0-9_]*, at most 64 characters
 *   templates  optional array of safe relative paths (below)
 *   data       optional array of safe relative paths (directories)
 *   serves     optional object {"port": <required string, templated>}
 *
 * A safe relative path is not empty, not absolute, has no backslash and no
 * empty, "." or ".." segment, and is at most TN_MANIFEST_PATH_MAX bytes.  No string may
 * hold a NUL byte.  The strings of run.command, health (http, port, exec)
 * and serves.port may use {{name}} where name is a built-in (target.id,
 * target.address, target.port_base, cluster.name, distribution.version) or
 * one of the bundle's own config keys. */
#ifndef TN_MANIFEST_H
#define TN_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "version.h"

/* Limits: every list read from input has a cap. */
#define TN_MANIFEST_MAX_BYTES (1024 * 1024) /* size of bundle.json */
#define TN_MANIFEST_NAME_MAX 128
#define TN_MANIFEST_KEY_MAX 64         /* a config key */
#define TN_MANIFEST_PATH_MAX 1024      /* a templates/data path */
#define TN_MANIFEST_ARGS_MAX 256       /* run.command, health.exec */
#define TN_MANIFEST_REQUIRES_MAX 256
#define TN_MANIFEST_CONFIG_MAX 256     /* config keys */
#define TN_MANIFEST_PATHS_MAX 1024     /* templates, data (each) */

/* Defaults. */
#define TN_MANIFEST_STOP_TIMEOUT_S 10
#define TN_MANIFEST_INTERVAL_MS 500
#define TN_MANIFEST_TIMEOUT_MS 1000
#define TN_MANIFEST_HEALTHY_AFTER 2
#define TN_MANIFEST_DEADLINE_S 60

enum tn_probe_kind {
	TN_PROBE_NONE = 0, /* no health object */
	TN_PROBE_HTTP,
	TN_PROBE_TCP,
	TN_PROBE_EXEC,
};

enum tn_config_type {
	TN_CONFIG_STRING,
	TN_CONFIG_INT,    /* a JSON integer */
	TN_CONFIG_BOOL,
	TN_CONFIG_NUMBER, /* a JSON integer or real */
};

/* All strings and json_t values below are borrowed from the manifest's raw
 * JSON: valid as long as the manifest is. */
struct tn_manifest_require {
	const char *name;
	const char *range_text; /* as written in bundle.json */
	struct tn_range range;
};

struct tn_manifest_config_key {
	const char *name;
	enum tn_config_type type;
	json_t *default_value;   /* of the declared type */
	const char *description; /* NULL when absent */
};

struct tn_manifest_run {
	const char **command; /* NULL-terminated; command_len entries */
	size_t command_len;
	int stop_timeout_s;
};

struct tn_manifest_health {
	enum tn_probe_kind kind;
	const char *http_path; /* TN_PROBE_HTTP: starts with '/' */
	const char **exec;     /* TN_PROBE_EXEC: NULL-terminated argv */
	size_t exec_len;
	const char *port;      /* HTTP and TCP: templated; NULL for EXEC/NONE */
	int interval_ms;
	int timeout_ms;
	int healthy_after;
	int deadline_s;
};

struct tn_manifest {
	/* bundle.json as parsed, to return it as is; owned by the manifest
	 * (tn_manifest_free decrefs it).  Take a reference to keep it
	 * longer. */
	json_t *raw;

	const char *name;
	struct tn_version version;
	char version_str[TN_VERSION_STR_MAX]; /* canonical: "1.1.0" */

	struct tn_manifest_require *requires; /* in the order written */
	size_t n_requires;

	bool has_run;
	struct tn_manifest_run run; /* zeroed when !has_run */

	bool has_health;
	/* Always filled: the timing defaults apply without health too. */
	struct tn_manifest_health health;

	struct tn_manifest_config_key *config; /* in the order written */
	size_t n_config;

	const char **templates; /* NULL-terminated; n_templates entries */
	size_t n_templates;
	const char **data; /* NULL-terminated; n_data entries */
	size_t n_data;

	const char *serves_port; /* NULL when there is no serves */
};

/* The built-in template names, NULL-terminated. */
extern const char *const tn_manifest_builtins[];

/* Parses and validates len bytes of bundle.json (need not be
 * NUL-terminated).  On success *out is the manifest (caller frees with
 * tn_manifest_free); on failure *out is NULL and err holds a message
 * starting with "bundle.json: " that names the field: TN_E_JSON for
 * malformed JSON (duplicate keys included), TN_E_TOO_LARGE over
 * TN_MANIFEST_MAX_BYTES, TN_E_INVALID for everything else. */
int tn_manifest_parse(const char *buf, size_t len, struct tn_manifest **out,
		      struct tn_error *err) TN_MUST_CHECK;

/* Frees m and its raw JSON; NULL is a no-op. */
void tn_manifest_free(struct tn_manifest *m);

/* Whether s is a valid bundle name (the rule under "name" above); the
 * agent checks the names a desired document gives with it. */
bool tn_manifest_name_valid(const char *s);

/* Whether {{name}} may appear in this bundle's strings and templates: a
 * built-in or one of its config keys.  The server uses it on the template
 * files of an uploaded archive. */
bool tn_manifest_name_known(const struct tn_manifest *m, const char *name);

/* The config key called key (borrowed from m), or NULL. */
const struct tn_manifest_config_key *tn_manifest_config_find(const struct tn_manifest *m,
							     const char *key);

/* The bottom config layer: a new object key -> default; caller decrefs. */
json_t *tn_manifest_config_defaults(const struct tn_manifest *m);

/* "string", "int", "bool" or "number". */
const char *tn_config_type_name(enum tn_config_type type);

/* Checks one config layer's values for this bundle (DESIGN §2 "Config"):
 * values (borrowed; NULL means nothing set) must be an object whose keys
 * are config keys of m, each of the declared type.  where names the layer
 * ("cluster config"; NULL or "" for none) and prefixes the message, e.g.
 *   cluster config: org.educa.web.greeting: must be a string
 *   cluster config: org.educa.web.colour: unknown key (bundle
 *     org.educa.web@1.1.0 has: greeting, workers)
 * All failures are TN_E_INVALID. */
int tn_manifest_check_config(const struct tn_manifest *m, json_t *values, const char *where,
			     struct tn_error *err) TN_MUST_CHECK;

#endif
