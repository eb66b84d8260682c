/* cmd_dist.c - `tender dist push|ls|show|rm`: distributions, pushed as one
 * archive (distribution.json + bundles/NAME.zip), as a distribution.json, or
 * from the command line as a list of bundles already on the server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fsutil.h"
#include "xalloc.h"

#define DESCRIPTOR_MAX (1u << 20)

/* "name@version, ..." of a distribution's bundles; caller frees. */
static char *bundle_list_text(json_t *dist)
{
	json_t *bundles = json_object_get(dist, "bundles"), *b;
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	json_array_foreach(bundles, i, b) {
		char *name = cli_text(json_object_get(b, "name"));
		char *version = cli_text(json_object_get(b, "version"));

		fprintf(f, "%s%s@%s", i ? ", " : "", name, version);
		free(name);
		free(version);
	}
	fclose(f);
	return out;
}

static void pushed(struct cli *cli, json_t *answer, long status)
{
	char *name = cli_text(json_object_get(answer, "name"));
	char *version = cli_text(json_object_get(answer, "version"));
	char *bundles = bundle_list_text(answer);

	cli_done(cli, answer, "%s distribution %s@%s (%zu bundles: %s)",
		 status == 200 ? "already there:" : "pushed", name, version,
		 json_array_size(json_object_get(answer, "bundles")), bundles);
	free(name);
	free(version);
	free(bundles);
}

/* What a file starts with: 'z' a zip, 'j' a JSON object, 0 neither. */
static int file_kind(const char *file, char *why, size_t size)
{
	unsigned char head[64];
	size_t n;
	FILE *f = fopen(file, "rb");

	if (!f) {
		snprintf(why, size, "cannot open %s: %s", file, strerror(errno));
		return -1;
	}
	n = fread(head, 1, sizeof head, f);
	fclose(f);
	if (n >= 4 && memcmp(head, "PK\003\004", 4) == 0)
		return 'z';
	for (size_t i = 0; i < n; i++) {
		if (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')
			continue;
		if (head[i] == '{')
			return 'j';
		break;
	}
	snprintf(why, size, "%s is neither a distribution archive (zip) nor a JSON document",
		 file);
	return 0;
}

static int push_file(struct cli *cli, const struct cli_args *a, const char *file)
{
	struct tn_error err;
	json_t *answer = NULL;
	char why[512], *text = NULL;
	long status = 0;
	size_t len = 0;
	int kind = file_kind(file, why, sizeof why), rc;

	if (kind <= 0)
		return cli_usage(a, "%s", why);
	if (kind == 'z') {
		rc = cli_upload_file(cli, a, "/api/v1/distributions", file, "application/zip",
				     &status, &answer);
	} else {
		struct cli_body body = {.content_type = "application/json"};

		if (tn_read_file(file, DESCRIPTOR_MAX, &text, &len, &err) != 0)
			return cli_usage(a, "%s", err.message);
		body.data = text;
		body.len = len;
		rc = cli_api_do(cli, "POST", "/api/v1/distributions", &body, 0, NULL, &status,
				&answer);
	}
	if (rc == CLI_EXIT_OK)
		pushed(cli, answer, status);
	json_decref(answer);
	free(text);
	return rc;
}

/* --bundle values: each "a@1,b@2" or "a@1" into [{name, version}]. */
static int bundle_refs(const struct cli_args *a, json_t *out)
{
	size_t n;
	const char *const *values = cli_arg_all(a, "bundle", &n);
	int rc = CLI_EXIT_OK;

	for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
		char *copy = xstrdup(values[i]), *save = NULL;

		for (char *ref = strtok_r(copy, ",", &save); ref && rc == CLI_EXIT_OK;
		     ref = strtok_r(NULL, ",", &save)) {
			char *name = NULL, *version = NULL;
			struct tn_error err;

			if (cli_parse_ref(ref, &name, &version, &err) != 0) {
				rc = cli_usage(a, "--bundle: %s", err.message);
				break;
			}
			json_array_append_new(out, json_pack("{s:s, s:s}", "name", name,
							     "version", version));
			free(name);
			free(version);
		}
		free(copy);
	}
	return rc;
}

static int dist_push(struct cli *cli, const struct cli_args *a)
{
	const char *name = cli_arg(a, "name"), *version = cli_arg(a, "version");
	json_t *body = NULL, *bundles = json_array(), *config = NULL, *answer = NULL;
	long status = 0;
	int rc;

	if (cli_pos(a, 0)) {
		if (name || version || cli_flag(a, "bundle") || cli_flag(a, "config")) {
			rc = cli_usage(a, "give FILE, or --name, --version and --bundle; not both");
			goto out;
		}
		rc = push_file(cli, a, cli_pos(a, 0));
		goto out;
	}
	if (!name || !version || !cli_flag(a, "bundle")) {
		rc = cli_usage(a, "give FILE, or --name, --version and at least one --bundle");
		goto out;
	}
	if ((rc = bundle_refs(a, bundles)) || (rc = cli_json_option(a, "config", &config)))
		goto out;
	body = json_pack("{s:s, s:s, s:O}", "name", name, "version", version, "bundles", bundles);
	if (config)
		json_object_set(body, "config", config);
	{
		char *text = json_dumps(body, JSON_COMPACT);
		struct cli_body b = {.content_type = "application/json", .data = text,
				     .len = strlen(text)};

		rc = cli_api_do(cli, "POST", "/api/v1/distributions", &b, 0, NULL, &status,
				&answer);
		free(text);
	}
	if (rc == CLI_EXIT_OK)
		pushed(cli, answer, status);
out:
	json_decref(body);
	json_decref(bundles);
	json_decref(config);
	json_decref(answer);
	return rc;
}

static char *bundle_count(json_t *item)
{
	return xasprintf("%zu", json_array_size(json_object_get(item, "bundles")));
}

static int dist_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"NAME", "name", NULL},	      {"VERSION", "version", NULL},
		{"BUNDLES", NULL, bundle_count}, {"CREATED", "created", NULL},
		{"BY", "created_by", NULL},   {NULL, NULL, NULL},
	};
	char *path = xstrdup("/api/v1/distributions");
	int rc;

	cli_query(&path, "name", cli_arg(a, "name"));
	rc = cli_list(cli, a, path, NULL, columns);
	free(path);
	return rc;
}

static int dist_show(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_field fields[] = {
		{"Name", "name"},
		{"Version", "version"},
		{"Created", "created"},
		{"Created by", "created_by"},
		{NULL, NULL},
	};
	static const struct cli_column columns[] = {
		{"BUNDLE", "name", NULL},
		{"VERSION", "version", NULL},
		{"SIZE", "size", NULL},
		{"SHA256", NULL, cli_short_sha},
		{NULL, NULL, NULL},
	};
	json_t *answer = NULL, *config;
	char *path = NULL;
	int rc;

	if ((rc = cli_ref_path(a, cli_pos(a, 0), "/api/v1/distributions/%s/%s", &path)) ||
	    (rc = cli_api(cli, "GET", path, NULL, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
		goto out;
	}
	cli_print_fields(answer, fields);
	cli_printf("\n");
	cli_print_table(json_object_get(answer, "bundles"), columns);
	config = json_object_get(answer, "config");
	if (json_object_size(config)) {
		cli_printf("\nConfig:\n");
		cli_print_json(config);
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int dist_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = NULL;
	int rc;

	if ((rc = cli_ref_path(a, cli_pos(a, 0), "/api/v1/distributions/%s/%s", &path)) ||
	    (rc = cli_api(cli, "DELETE", path, NULL, NULL)))
		goto out;
	cli_done(cli, NULL, "removed distribution %s", cli_pos(a, 0));
out:
	free(path);
	return rc;
}

static const struct cli_option push_options[] = {
	{"name", 0, "NAME", "the distribution's name"},
	{"version", 0, "VERSION", "its version"},
	{"bundle", 'b', "NAME@VER", "a bundle already on the server (repeat, or a,b)"},
	{"config", 0, "FILE", "distribution config: a JSON object per bundle name"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	{"name", 0, "NAME", "only the versions of this distribution"},
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_dist_commands[] = {
	{"push", dist_push, "FILE | --name N --version V --bundle NAME@VER...", 0, 1,
	 push_options, "upload a distribution",
	 "FILE is a distribution archive (distribution.json and bundles/*.zip), ingested all\n"
	 "or nothing and streamed with a progress bar on a terminal, or a distribution.json\n"
	 "naming bundles already on the server.  Without FILE the distribution is made from\n"
	 "--name, --version and the --bundle list (and --config).  A distribution whose\n"
	 "bundles do not satisfy each other's requirements is refused, naming the one unmet.",
	 0},
	{"ls", dist_ls, "", 0, 0, ls_options, "list distributions", NULL, 0},
	{"show", dist_show, "NAME@VERSION", 1, 1, NULL, "show a distribution: bundles, config",
	 NULL, 0},
	{"rm", dist_rm, "NAME@VERSION", 1, 1, NULL, "remove a distribution",
	 "Refused while a cluster's revision or an active rollout uses it.", 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
