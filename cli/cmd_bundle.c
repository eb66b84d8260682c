/* cmd_bundle.c - `tender bundle push|ls|show|rm`: bundle archives on the
 * server (POST/GET/DELETE /api/v1/bundles). */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

static int bundle_push(struct cli *cli, const struct cli_args *a)
{
	int worst = CLI_EXIT_OK;

	for (size_t i = 0; i < a->pos.n; i++) {
		const char *file = cli_pos(a, i);
		json_t *answer = NULL;
		long status = 0;
		int rc;

		rc = cli_upload_file(cli, a, "/api/v1/bundles", file, "application/zip", &status,
				     &answer);
		if (rc == CLI_EXIT_OK) {
			char *name = cli_text(json_object_get(answer, "name"));
			char *version = cli_text(json_object_get(answer, "version"));
			char *size = cli_text(json_object_get(answer, "size"));
			char *sha = cli_short_sha(answer);

			cli_done(cli, answer, "%s %s@%s (sha256 %s, %s bytes)",
				 status == 201 ? "pushed" : "already there (same bytes):", name,
				 version, sha, size);
			free(name);
			free(version);
			free(size);
			free(sha);
		} else if (rc == CLI_EXIT_REFUSED) {
			cli_error("%s was not pushed", file);
		}
		json_decref(answer);
		if (rc > worst)
			worst = rc;
		/* nothing more will get through */
		if (rc == CLI_EXIT_UNREACHABLE)
			break;
	}
	return worst;
}

static int bundle_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"NAME", "name", NULL},	      {"VERSION", "version", NULL},
		{"SIZE", "size", NULL},	      {"SHA256", NULL, cli_short_sha},
		{"CREATED", "created", NULL}, {"BY", "created_by", NULL},
		{NULL, NULL, NULL},
	};
	char *path = xstrdup("/api/v1/bundles");
	int rc;

	cli_query(&path, "name", cli_arg(a, "name"));
	rc = cli_list(cli, a, path, NULL, columns);
	free(path);
	return rc;
}

static int bundle_show(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_field fields[] = {
		{"Name", "name"},	{"Version", "version"}, {"SHA256", "sha256"},
		{"Size", "size"},	{"Created", "created"}, {"Created by", "created_by"},
		{NULL, NULL},
	};
	json_t *answer = NULL;
	char *path = NULL;
	int rc;

	if ((rc = cli_ref_path(a, cli_pos(a, 0), "/api/v1/bundles/%s/%s", &path)) ||
	    (rc = cli_api(cli, "GET", path, NULL, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
	} else {
		cli_print_fields(answer, fields);
		if (json_object_get(answer, "manifest")) {
			cli_printf("Manifest:\n");
			cli_print_json(json_object_get(answer, "manifest"));
		}
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int bundle_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = NULL;
	int rc;

	if ((rc = cli_ref_path(a, cli_pos(a, 0), "/api/v1/bundles/%s/%s", &path)) ||
	    (rc = cli_api(cli, "DELETE", path, NULL, NULL)))
		goto out;
	cli_done(cli, NULL, "removed bundle %s", cli_pos(a, 0));
out:
	free(path);
	return rc;
}

static const struct cli_option ls_options[] = {
	{"name", 0, "NAME", "only the versions of this bundle"},
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_bundle_commands[] = {
	{"push", bundle_push, "FILE...", 1, CLI_MAX_VALUES, NULL, "upload bundle archives",
	 "Uploads each FILE (a bundle zip with bundle.json at its root), streamed, with a\n"
	 "progress bar when stderr is a terminal.  Pushing the same bytes again is not an\n"
	 "error; the same NAME@VERSION with other bytes is refused.  Every file is tried;\n"
	 "the exit status is the worst one.  With --output json, one JSON object per file.",
	 0},
	{"ls", bundle_ls, "", 0, 0, ls_options, "list bundles", NULL, 0},
	{"show", bundle_show, "NAME@VERSION", 1, 1, NULL, "show a bundle and its manifest", NULL,
	 0},
	{"rm", bundle_rm, "NAME@VERSION", 1, 1, NULL, "remove a bundle",
	 "Refused while a distribution uses the bundle.", 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
