/* cmd_webhook.c - `tender webhook add|ls|rm`: URLs the server POSTs matching
 * events to.  The endpoints arrive with a newer server; until then every
 * verb says so plainly. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

static int webhook_add(struct cli *cli, const struct cli_args *a)
{
	json_t *body = NULL, *events = json_array(), *answer = NULL;
	const char *const *values;
	size_t n;
	int rc;

	values = cli_arg_all(a, "events", &n);
	if (n == 0) {
		json_decref(events);
		return cli_usage(a, "--events is required (e.g. rollout.failed,rollout.succeeded)");
	}
	for (size_t i = 0; i < n; i++) {
		char *copy = xstrdup(values[i]), *save = NULL;

		for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
			json_array_append_new(events, json_string(e));
		free(copy);
	}
	body = json_pack("{s:s, s:O}", "url", cli_pos(a, 0), "events", events);
	if ((rc = cli_api_newer(cli, "webhook add", "POST", "/api/v1/webhooks", body, &answer)) ==
	    CLI_EXIT_OK) {
		char *id = cli_text(json_object_get(answer, "id"));

		cli_done(cli, answer, "added webhook %s", id);
		free(id);
	}
	json_decref(body);
	json_decref(events);
	json_decref(answer);
	return rc;
}

static int webhook_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"ID", "id", NULL},
		{"URL", "url", NULL},
		{"EVENTS", "events", NULL},
		{"CREATED", "created", NULL},
		{NULL, NULL, NULL},
	};
	const char *limit_text = cli_arg(a, "limit");
	json_t *answer = NULL;
	struct tn_error err;
	long limit = 0;
	int rc;

	if (limit_text && cli_parse_long(limit_text, "--limit", 1, 1000000000L, &limit, &err) != 0)
		return cli_usage(a, "%s", err.message);
	if ((rc = cli_api_list(cli, "/api/v1/webhooks", NULL, limit, "webhook ls", &answer)))
		return rc;
	if (cli->json)
		cli_print_json(answer);
	else
		cli_print_table(json_object_get(answer, "items"), columns);
	json_decref(answer);
	return CLI_EXIT_OK;
}

static int webhook_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/webhooks/%s", cli_pos(a, 0));
	int rc;

	if ((rc = cli_api_newer(cli, "webhook rm", "DELETE", path, NULL, NULL)) == CLI_EXIT_OK)
		cli_done(cli, NULL, "removed webhook %s", cli_pos(a, 0));
	free(path);
	return rc;
}

static const struct cli_option add_options[] = {
	{"events", 'e', "EVENT,...", "the events to send (repeat, or a,b)"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_webhook_commands[] = {
	{"add", webhook_add, "URL --events EVENT,...", 1, 1, add_options,
	 "POST matching events to URL (needs a newer server)", NULL, CLI_NEEDS_NEWER},
	{"ls", webhook_ls, "", 0, 0, ls_options, "list webhooks (needs a newer server)", NULL,
	 CLI_NEEDS_NEWER},
	{"rm", webhook_rm, "ID", 1, 1, NULL, "remove a webhook (needs a newer server)", NULL,
	 CLI_NEEDS_NEWER},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
