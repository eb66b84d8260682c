/* test_manifest.c - bundle.json: the DESIGN example, defaults, a table of
 * refused manifests each naming its field, and config layers checked
 * against a bundle's model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "xalloc.h"

/* The example of DESIGN §2 "Bundle", as written there. */
static const char design_example[] =
	"{\n"
	"  \"name\": \"org.educa.web\",\n"
	"  \"version\": \"1.1.0\",\n"
	"  \"requires\": { \"org.educa.db\": \"[1.0,2.0)\" },\n"
	"  \"run\": { \"command\": [\"bin/educa-web\", \"--port\", \"{{target.port_base}}\", "
	"\"--config\", \"etc/educa.conf\"],\n"
	"           \"stop_timeout_s\": 10 },\n"
	"  \"health\": { \"http\": \"/healthz\", \"port\": \"{{target.port_base}}\", "
	"\"interval_ms\": 500, \"timeout_ms\": 1000,\n"
	"              \"healthy_after\": 2, \"deadline_s\": 60 },\n"
	"  \"config\": { \"greeting\": { \"type\": \"string\", \"default\": \"hello\", "
	"\"description\": \"shown on the front page\" },\n"
	"              \"workers\": { \"type\": \"int\", \"default\": 4, \"description\": "
	"\"request threads\" } },\n"
	"  \"templates\": [\"etc/educa.conf.tmpl\"],\n"
	"  \"data\": [\"var\"],\n"
	"  \"serves\": { \"port\": \"{{target.port_base}}\" }\n"
	"}\n";

static struct tn_manifest *parse_ok(const char *text)
{
	struct tn_manifest *m = NULL;
	struct tn_error err = {0};
	int rc = tn_manifest_parse(text, strlen(text), &m, &err);

	if (rc != 0)
		print_error("unexpected failure: %s\n", err.message);
	assert_int_equal(rc, 0);
	assert_non_null(m);
	return m;
}

static void test_design_example(void **state)
{
	struct tn_manifest *m = parse_ok(design_example);
	struct tn_version v;
	struct tn_error err;

	assert_string_equal(m->name, "org.educa.web");
	assert_string_equal(m->version_str, "1.1.0");
	assert_int_equal(m->version.major, 1);
	assert_int_equal(m->version.minor, 1);
	assert_int_equal(m->version.micro, 0);

	assert_int_equal(m->n_requires, 1);
	assert_string_equal(m->requires[0].name, "org.educa.db");
	assert_string_equal(m->requires[0].range_text, "[1.0,2.0)");
	assert_int_equal(tn_version_parse("1.9.9", &v, &err), 0);
	assert_true(tn_range_contains(&m->requires[0].range, &v));
	assert_int_equal(tn_version_parse("2.0", &v, &err), 0);
	assert_false(tn_range_contains(&m->requires[0].range, &v));

	assert_true(m->has_run);
	assert_int_equal(m->run.command_len, 5);
	assert_string_equal(m->run.command[0], "bin/educa-web");
	assert_string_equal(m->run.command[2], "{{target.port_base}}");
	assert_string_equal(m->run.command[4], "etc/educa.conf");
	assert_null(m->run.command[5]);
	assert_int_equal(m->run.stop_timeout_s, 10);

	assert_true(m->has_health);
	assert_int_equal(m->health.kind, TN_PROBE_HTTP);
	assert_string_equal(m->health.http_path, "/healthz");
	assert_string_equal(m->health.port, "{{target.port_base}}");
	assert_null(m->health.exec);
	assert_int_equal(m->health.interval_ms, 500);
	assert_int_equal(m->health.timeout_ms, 1000);
	assert_int_equal(m->health.healthy_after, 2);
	assert_int_equal(m->health.deadline_s, 60);

	assert_int_equal(m->n_config, 2);
	assert_string_equal(m->config[0].name, "greeting");
	assert_int_equal(m->config[0].type, TN_CONFIG_STRING);
	assert_string_equal(json_string_value(m->config[0].default_value), "hello");
	assert_string_equal(m->config[0].description, "shown on the front page");
	assert_string_equal(m->config[1].name, "workers");
	assert_int_equal(m->config[1].type, TN_CONFIG_INT);
	assert_int_equal(json_integer_value(m->config[1].default_value), 4);
	assert_string_equal(tn_config_type_name(m->config[1].type), "int");

	assert_int_equal(m->n_templates, 1);
	assert_string_equal(m->templates[0], "etc/educa.conf.tmpl");
	assert_null(m->templates[1]);
	assert_int_equal(m->n_data, 1);
	assert_string_equal(m->data[0], "var");
	assert_string_equal(m->serves_port, "{{target.port_base}}");

	/* The manifest as written stays available. */
	assert_true(json_is_object(m->raw));
	assert_string_equal(json_string_value(json_object_get(m->raw, "version")), "1.1.0");
	tn_manifest_free(m);
}

static void test_minimal_and_defaults(void **state)
{
	struct tn_manifest *m = parse_ok("{\"name\": \"a\", \"version\": \"1.2\"}");

	assert_string_equal(m->name, "a");
	assert_string_equal(m->version_str, "1.2.0");
	assert_int_equal(m->n_requires, 0);
	assert_false(m->has_run);
	assert_null(m->run.command);
	assert_false(m->has_health);
	assert_int_equal(m->health.kind, TN_PROBE_NONE);
	assert_null(m->health.port);
	/* Without health, the timings still count (DESIGN §2). */
	assert_int_equal(m->health.interval_ms, TN_MANIFEST_INTERVAL_MS);
	assert_int_equal(m->health.timeout_ms, TN_MANIFEST_TIMEOUT_MS);
	assert_int_equal(m->health.healthy_after, TN_MANIFEST_HEALTHY_AFTER);
	assert_int_equal(m->health.deadline_s, TN_MANIFEST_DEADLINE_S);
	assert_int_equal(m->n_config, 0);
	assert_int_equal(m->n_templates, 0);
	assert_int_equal(m->n_data, 0);
	assert_null(m->serves_port);
	tn_manifest_free(m);
}

static void test_defaults_inside_sections(void **state)
{
	struct tn_manifest *m = parse_ok(
		"{\"name\": \"w\", \"version\": \"2.0.0.rc1\",\n"
		" \"run\": {\"command\": [\"bin/w\", \"{{queue}}\"]},\n"
		" \"health\": {\"exec\": [\"bin/check\", \"--queue={{ queue }}\"],\n"
		"             \"deadline_s\": 120},\n"
		" \"config\": {\"queue\": {\"type\": \"string\", \"default\": \"jobs\"},\n"
		"            \"ratio\": {\"type\": \"number\", \"default\": 1},\n"
		"            \"verbose\": {\"type\": \"bool\", \"default\": false}}}");

	assert_string_equal(m->version_str, "2.0.0.rc1");
	assert_int_equal(m->run.stop_timeout_s, TN_MANIFEST_STOP_TIMEOUT_S);
	assert_int_equal(m->health.kind, TN_PROBE_EXEC);
	assert_int_equal(m->health.exec_len, 2);
	assert_string_equal(m->health.exec[1], "--queue={{ queue }}");
	assert_null(m->health.exec[2]);
	assert_null(m->health.port);
	assert_null(m->health.http_path);
	assert_int_equal(m->health.interval_ms, TN_MANIFEST_INTERVAL_MS);
	assert_int_equal(m->health.deadline_s, 120);
	assert_null(m->config[0].description);
	assert_int_equal(m->config[1].type, TN_CONFIG_NUMBER);
	assert_int_equal(m->config[2].type, TN_CONFIG_BOOL);
	tn_manifest_free(m);
}

static void test_tcp_probe_and_literal_port(void **state)
{
	struct tn_manifest *m = parse_ok(
		"{\"name\": \"db_2-x.y\", \"version\": \"1\",\n"
		" \"health\": {\"tcp\": true, \"port\": \"5432\"},\n"
		" \"serves\": {\"port\": \"5432\"}}");

	assert_int_equal(m->health.kind, TN_PROBE_TCP);
	assert_string_equal(m->health.port, "5432");
	assert_string_equal(m->serves_port, "5432");
	tn_manifest_free(m);
}

static void test_names_known(void **state)
{
	struct tn_manifest *m = parse_ok(design_example);
	json_t *defaults = tn_manifest_config_defaults(m);

	for (size_t i = 0; tn_manifest_builtins[i]; i++)
		assert_true(tn_manifest_name_known(m, tn_manifest_builtins[i]));
	assert_true(tn_manifest_name_known(m, "greeting"));
	assert_true(tn_manifest_name_known(m, "workers"));
	assert_false(tn_manifest_name_known(m, "colour"));
	assert_false(tn_manifest_name_known(m, "target"));
	assert_non_null(tn_manifest_config_find(m, "workers"));
	assert_null(tn_manifest_config_find(m, "Workers"));

	assert_int_equal(json_object_size(defaults), 2);
	assert_string_equal(json_string_value(json_object_get(defaults, "greeting")), "hello");
	assert_int_equal(json_integer_value(json_object_get(defaults, "workers")), 4);
	json_decref(defaults);
	tn_manifest_free(m);
}

#define NV "\"name\": \"org.x\", \"version\": \"1.0\""
#define CMD_OK "\"run\": {\"command\": [\"bin/x\"]}"

static const struct bad_case {
	const char *json;
	enum tn_errcode code;
	const char *message; /* a substring, after "bundle.json: " */
} bad_cases[] = {
	/* JSON itself */
	{"{\"name\": ", TN_E_JSON, "malformed JSON"},
	{"{" NV ", \"name\": \"org.y\"}", TN_E_JSON, "duplicate"},
	{"[1, 2]", TN_E_INVALID, "expected a JSON object"},
	{"{" NV ", \"colour\": \"red\"}", TN_E_INVALID, "colour: unknown field"},
	/* name and version */
	{"{\"version\": \"1.0\"}", TN_E_INVALID, "name: is required"},
	{"{\"name\": \"org.x\"}", TN_E_INVALID, "version: is required"},
	{"{\"name\": 7, \"version\": \"1.0\"}", TN_E_INVALID, "name: must be a string"},
	{"{\"name\": \"org x\", \"version\": \"1.0\"}", TN_E_INVALID,
	 "name: \"org x\" is not a valid bundle name"},
	{"{\"name\": \"org/x\", \"version\": \"1.0\"}", TN_E_INVALID, "name: \"org/x\" is not"},
	{"{\"name\": \".x\", \"version\": \"1.0\"}", TN_E_INVALID, "name: \".x\" is not"},
	{"{\"name\": \"-x\", \"version\": \"1.0\"}", TN_E_INVALID, "name: \"-x\" is not"},
	{"{\"name\": \"\", \"version\": \"1.0\"}", TN_E_INVALID, "name: \"\" is not"},
	{"{\"name\": \"org.x\", \"version\": \"1.x\"}", TN_E_INVALID,
	 "version: \"1.x\" is not a valid version: "},
	{"{\"name\": \"org.x\", \"version\": 1}", TN_E_INVALID, "version: must be a string"},
	/* requires */
	{"{" NV ", \"requires\": {\"org.educa.db\": \"[2.0,1.0)\"}}", TN_E_INVALID,
	 "requires.org.educa.db: \"[2.0,1.0)\" is not a valid version range: "},
	{"{" NV ", \"requires\": {\"org.educa.db\": \"[1.0,\"}}", TN_E_INVALID,
	 "requires.org.educa.db: \"[1.0,\" is not a valid version range"},
	{"{" NV ", \"requires\": {\"org.educa.db\": 1}}", TN_E_INVALID,
	 "requires.org.educa.db: must be a string"},
	{"{" NV ", \"requires\": {\"no way\": \"1.0\"}}", TN_E_INVALID,
	 "requires.no way: not a valid bundle name"},
	{"{" NV ", \"requires\": {\"org.x\": \"1.0\"}}", TN_E_INVALID,
	 "requires.org.x: a bundle cannot require itself"},
	{"{" NV ", \"requires\": [\"org.y\"]}", TN_E_INVALID, "requires: must be an object"},
	/* run */
	{"{" NV ", \"run\": {\"command\": \"bin/x --port 80\"}}", TN_E_INVALID,
	 "run.command: must be an array"},
	{"{" NV ", \"run\": {\"command\": []}}", TN_E_INVALID, "run.command: must not be empty"},
	{"{" NV ", \"run\": {\"command\": [\"bin/x\", 80]}}", TN_E_INVALID,
	 "run.command[1]: must be a string"},
	{"{" NV ", \"run\": {\"command\": [\"\"]}}", TN_E_INVALID,
	 "run.command[0]: must not be empty"},
	{"{" NV ", \"run\": {}}", TN_E_INVALID, "run.command: is required"},
	{"{" NV ", \"run\": {\"command\": [\"x\"], \"user\": \"root\"}}", TN_E_INVALID,
	 "run.user: unknown field"},
	{"{" NV ", \"run\": {\"command\": [\"x\"], \"stop_timeout_s\": 0}}", TN_E_INVALID,
	 "run.stop_timeout_s: 0 is out of range [1, 600]"},
	{"{" NV ", \"run\": {\"command\": [\"x\"], \"stop_timeout_s\": \"10\"}}", TN_E_INVALID,
	 "run.stop_timeout_s: must be an integer"},
	{"{" NV ", \"run\": [\"x\"]}", TN_E_INVALID, "run: must be an object"},
	/* health */
	{"{" NV ", \"health\": {\"http\": \"/h\", \"tcp\": true, \"port\": \"80\"}}", TN_E_INVALID,
	 "health: has more than one probe: http, tcp"},
	{"{" NV ", \"health\": {\"port\": \"80\"}}", TN_E_INVALID, "health: has no probe"},
	{"{" NV ", \"health\": {\"http\": \"/h\", \"port\": \"80\", \"path\": \"/\"}}",
	 TN_E_INVALID, "health.path: unknown field"},
	{"{" NV ", \"health\": {\"http\": \"healthz\", \"port\": \"80\"}}", TN_E_INVALID,
	 "health.http: \"healthz\" must be a path starting with '/'"},
	{"{" NV ", \"health\": {\"http\": true, \"port\": \"80\"}}", TN_E_INVALID,
	 "health.http: must be a string"},
	{"{" NV ", \"health\": {\"http\": \"/h\"}}", TN_E_INVALID, "health.port: is required"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": 80}}", TN_E_INVALID,
	 "health.port: must be a string"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"70000\"}}", TN_E_INVALID,
	 "health.port: \"70000\" is not a port"},
	{"{" NV ", \"health\": {\"tcp\": false, \"port\": \"80\"}}", TN_E_INVALID,
	 "health.tcp: must be true"},
	{"{" NV ", \"health\": {\"exec\": [\"bin/c\"], \"port\": \"80\"}}", TN_E_INVALID,
	 "health.port: not used by an exec probe"},
	{"{" NV ", \"health\": {\"exec\": []}}", TN_E_INVALID, "health.exec: must not be empty"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"80\", \"interval_ms\": 10}}",
	 TN_E_INVALID, "health.interval_ms: 10 is out of range [50, 60000]"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"80\", \"timeout_ms\": 1.5}}",
	 TN_E_INVALID, "health.timeout_ms: must be an integer"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"80\", \"healthy_after\": 0}}",
	 TN_E_INVALID, "health.healthy_after: 0 is out of range [1, 100]"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"80\", \"deadline_s\": 3601}}",
	 TN_E_INVALID, "health.deadline_s: 3601 is out of range [1, 3600]"},
	/* config */
	{"{" NV ", \"config\": {\"workers\": {\"type\": \"int\", \"default\": \"4\"}}}",
	 TN_E_INVALID, "config.workers.default: must be an integer"},
	{"{" NV ", \"config\": {\"workers\": {\"type\": \"int\", \"default\": 4.5}}}",
	 TN_E_INVALID, "config.workers.default: must be an integer"},
	{"{" NV ", \"config\": {\"on\": {\"type\": \"bool\", \"default\": \"yes\"}}}",
	 TN_E_INVALID, "config.on.default: must be true or false"},
	{"{" NV ", \"config\": {\"r\": {\"type\": \"number\", \"default\": null}}}", TN_E_INVALID,
	 "config.r.default: must be a number"},
	{"{" NV ", \"config\": {\"g\": {\"type\": \"string\", \"default\": 1}}}", TN_E_INVALID,
	 "config.g.default: must be a string"},
	{"{" NV ", \"config\": {\"workers\": {\"type\": \"int\"}}}", TN_E_INVALID,
	 "config.workers.default: is required"},
	{"{" NV ", \"config\": {\"workers\": {\"type\": \"float\", \"default\": 4}}}",
	 TN_E_INVALID, "config.workers.type: \"float\" is not a type"},
	{"{" NV ", \"config\": {\"workers\": {\"default\": 4}}}", TN_E_INVALID,
	 "config.workers.type: is required"},
	{"{" NV ", \"config\": {\"workers\": {\"type\": \"int\", \"default\": 4, "
	 "\"label\": \"W\"}}}",
	 TN_E_INVALID, "config.workers.label: unknown field"},
	{"{" NV ", \"config\": {\"g\": {\"type\": \"string\", \"default\": \"\", "
	 "\"description\": 1}}}",
	 TN_E_INVALID, "config.g.description: must be a string"},
	{"{" NV ", \"config\": {\"max-workers\": {\"type\": \"int\", \"default\": 4}}}",
	 TN_E_INVALID, "config.max-workers: not a valid config key"},
	{"{" NV ", \"config\": {\"1st\": {\"type\": \"int\", \"default\": 4}}}", TN_E_INVALID,
	 "config.1st: not a valid config key"},
	{"{" NV ", \"config\": {\"workers\": 4}}", TN_E_INVALID,
	 "config.workers: must be an object"},
	/* placeholders */
	{"{" NV ", \"run\": {\"command\": [\"bin/x\", \"--colour={{colour}}\"]}}", TN_E_INVALID,
	 "run.command[1]: unknown placeholder {{colour}}"},
	{"{" NV ", \"run\": {\"command\": [\"bin/x\", \"{{target.port}}\"]}}", TN_E_INVALID,
	 "run.command[1]: unknown placeholder {{target.port}}"},
	{"{" NV ", \"run\": {\"command\": [\"bin/x\", \"{{target.port_base\"]}}", TN_E_INVALID,
	 "run.command[1]: "},
	{"{" NV ", \"health\": {\"http\": \"/{{path}}\", \"port\": \"80\"}}", TN_E_INVALID,
	 "health.http: unknown placeholder {{path}}"},
	{"{" NV ", \"health\": {\"tcp\": true, \"port\": \"{{port}}\"}}", TN_E_INVALID,
	 "health.port: unknown placeholder {{port}}"},
	{"{" NV ", \"health\": {\"exec\": [\"c\", \"{{x}}\"]}}", TN_E_INVALID,
	 "health.exec[1]: unknown placeholder {{x}}"},
	{"{" NV ", \"serves\": {\"port\": \"{{target.port_base}}{{p}}\"}}", TN_E_INVALID,
	 "serves.port: unknown placeholder {{p}}"},
	/* serves */
	{"{" NV ", \"serves\": {\"port\": \"80\", \"host\": \"x\"}}", TN_E_INVALID,
	 "serves.host: unknown field"},
	{"{" NV ", \"serves\": {}}", TN_E_INVALID, "serves.port: is required"},
	/* paths */
	{"{" NV ", \"data\": [\"../var\"]}", TN_E_INVALID,
	 "data[0]: \"../var\" has a '..' segment"},
	{"{" NV ", \"data\": [\"var\", \"var/..\"]}", TN_E_INVALID,
	 "data[1]: \"var/..\" has a '..' segment"},
	{"{" NV ", \"data\": [\"var/../../etc\"]}", TN_E_INVALID, "data[0]: "},
	{"{" NV ", \"data\": [\"var//db\"]}", TN_E_INVALID, "data[0]: \"var//db\" has an empty"},
	{"{" NV ", \"data\": [\"var/\"]}", TN_E_INVALID, "data[0]: \"var/\" has an empty"},
	{"{" NV ", \"data\": [\"./var\"]}", TN_E_INVALID, "data[0]: \"./var\" has a '.' segment"},
	{"{" NV ", \"data\": [\"\"]}", TN_E_INVALID, "data[0]: must not be empty"},
	{"{" NV ", \"data\": [\"var\\\\db\"]}", TN_E_INVALID,
	 "data[0]: \"var\\db\" has a backslash"},
	{"{" NV ", \"data\": [\"var\", \"var\"]}", TN_E_INVALID,
	 "data[1]: \"var\" is listed twice"},
	{"{" NV ", \"data\": \"var\"}", TN_E_INVALID, "data: must be an array"},
	{"{" NV ", \"templates\": [\"/etc/educa.conf.tmpl\"]}", TN_E_INVALID,
	 "templates[0]: \"/etc/educa.conf.tmpl\" is an absolute path"},
	{"{" NV ", \"templates\": [\"etc/a\", null]}", TN_E_INVALID,
	 "templates[1]: must be a string"},
};

/* One test per case of bad_cases, so that TAP counts and names each. */
static void test_bad_manifest(void **state)
{
	const struct bad_case *c = *state;
	struct tn_manifest *m = (struct tn_manifest *)1;
	struct tn_error err = {0};
	int rc = tn_manifest_parse(c->json, strlen(c->json), &m, &err);

	if (rc == 0 || err.code != c->code || strncmp(err.message, "bundle.json: ", 13) != 0 ||
	    !strstr(err.message + 13, c->message))
		fail_msg("%s\n  rc %d, code %s, message: %s\n  wanted %s: %s", c->json, rc,
			 tn_errcode_name(err.code), err.message, tn_errcode_name(c->code),
			 c->message);
	assert_int_equal(rc, -(int)c->code);
	assert_null(m);
}

static void test_too_large_and_null_err(void **state)
{
	struct tn_manifest *m = NULL;
	struct tn_error err;
	size_t len = TN_MANIFEST_MAX_BYTES + 1;
	char *big = xmalloc(len);

	memset(big, ' ', len);
	assert_int_equal(tn_manifest_parse(big, len, &m, &err), -(int)TN_E_TOO_LARGE);
	assert_non_null(strstr(err.message, "bundle.json: "));
	assert_null(m);
	free(big);

	/* err is optional; the code survives. */
	assert_int_equal(tn_manifest_parse("{\"name\": 1}", 11, &m, NULL), -(int)TN_E_INVALID);
	assert_null(m);
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(tn_manifest_parse("{\"name\":\"a\",\"version\":\"1\"}xyz", 26, &m, &err),
			 0);
	tn_manifest_free(m);
	tn_manifest_free(NULL);
}

static json_t *values(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	assert_non_null(v);
	return v;
}

/* Checks text as a layer of config for m: NULL want means accepted. */
static void check_layer(const struct tn_manifest *m, const char *text, const char *where,
			const char *want)
{
	json_t *v = values(text);
	struct tn_error err = {0};
	int rc = tn_manifest_check_config(m, v, where, &err);

	if (!want) {
		if (rc != 0)
			fail_msg("%s refused: %s", text, err.message);
	} else {
		assert_int_equal(rc, -(int)TN_E_INVALID);
		assert_int_equal(err.code, TN_E_INVALID);
		assert_string_equal(err.message, want);
	}
	json_decref(v);
}

static void test_check_config(void **state)
{
	struct tn_manifest *m = parse_ok(design_example);
	struct tn_manifest *typed = parse_ok(
		"{\"name\": \"t\", \"version\": \"1\", \"config\": {"
		"\"s\": {\"type\": \"string\", \"default\": \"\"},"
		"\"i\": {\"type\": \"int\", \"default\": 0},"
		"\"b\": {\"type\": \"bool\", \"default\": true},"
		"\"n\": {\"type\": \"number\", \"default\": 0.5}}}");
	struct tn_manifest *bare = parse_ok("{\"name\": \"files\", \"version\": \"3\"}");
	struct tn_error err;

	assert_int_equal(tn_manifest_check_config(m, NULL, "cluster config", &err), 0);
	check_layer(m, "{}", "cluster config", NULL);
	check_layer(m, "{\"greeting\": \"hi\", \"workers\": 8}", "cluster config", NULL);
	check_layer(m, "{\"greeting\": 3}", "cluster config",
		    "cluster config: org.educa.web.greeting: must be a string");
	check_layer(m, "{\"workers\": 8, \"colour\": \"red\"}", "cluster config",
		    "cluster config: org.educa.web.colour: unknown key "
		    "(bundle org.educa.web@1.1.0 has: greeting, workers)");
	check_layer(m, "{\"workers\": 8.0}", "target config",
		    "target config: org.educa.web.workers: must be an integer");
	check_layer(m, "{\"workers\": \"8\"}", NULL, "org.educa.web.workers: must be an integer");
	check_layer(m, "[\"greeting\"]", "distribution config",
		    "distribution config: org.educa.web: must be an object");

	check_layer(typed, "{\"s\": \"x\", \"i\": -3, \"b\": false, \"n\": 2}", "c", NULL);
	check_layer(typed, "{\"n\": -2.25}", "c", NULL);
	check_layer(typed, "{\"n\": \"2\"}", "c", "c: t.n: must be a number");
	check_layer(typed, "{\"b\": \"true\"}", "c", "c: t.b: must be true or false");
	check_layer(typed, "{\"b\": 1}", "c", "c: t.b: must be true or false");
	check_layer(typed, "{\"i\": null}", "c", "c: t.i: must be an integer");
	check_layer(typed, "{\"s\": null}", "c", "c: t.s: must be a string");

	check_layer(bare, "{\"x\": 1}", "cluster config",
		    "cluster config: files.x: unknown key (bundle files@3.0.0 has no config)");
	tn_manifest_free(m);
	tn_manifest_free(typed);
	tn_manifest_free(bare);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_minimal_and_defaults),
		cmocka_unit_test(test_defaults_inside_sections),
		cmocka_unit_test(test_tcp_probe_and_literal_port),
		cmocka_unit_test(test_names_known),
		cmocka_unit_test(test_too_large_and_null_err),
		cmocka_unit_test(test_check_config),
	};
	size_t n_fixed = sizeof fixed / sizeof fixed[0];
	size_t n_bad = sizeof bad_cases / sizeof bad_cases[0];
	struct CMUnitTest *tests = xcalloc(n_fixed + n_bad, sizeof *tests);
	char **names = xcalloc(n_bad, sizeof *names);
	int rc;

	memcpy(tests, fixed, sizeof fixed);
	for (size_t i = 0; i < n_bad; i++) {
		names[i] = xasprintf("refused %02zu: %s", i, bad_cases[i].message);
		tests[n_fixed + i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_bad_manifest,
			.initial_state = (void *)&bad_cases[i],
		};
	}
	rc = _cmocka_run_group_tests("manifest", tests, n_fixed + n_bad, NULL, NULL);
	for (size_t i = 0; i < n_bad; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
