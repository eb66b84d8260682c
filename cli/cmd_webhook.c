/* cmd_webhook.c - `tender webhook add|ls|rm`: URLs the server POSTs matching
 * events to, signed with its key, and how their deliveries went. */
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
	if ((rc = cli_api(cli, "POST", "/api/v1/webhooks", body, &answer)) == CLI_EXIT_OK) {
		char *id = cli_text(json_object_get(answer, "id"));
		char *key = cli_text(json_object_get(answer, "public_key"));

		cli_done(cli, answer, "added webhook %s; deliveries are signed with the key %s", id,
			 key);
		free(id);
		free(key);
	}
	json_decref(body);
	json_decref(events);
	json_decref(answer);
	return rc;
}

/* "rollout.*,cluster.create" */
static char *events_cell(json_t *item)
{
	json_t *events = json_object_get(item, "events"), *e;
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	json_array_foreach(events, i, e) fprintf(f, "%s%s", i ? "," : "", json_string_value(e));
	fclose(f);
	return out;
}

/* "delivered cluster.create (1 attempt, HTTP 200)", "-" when none yet. */
static char *last_cell(json_t *item)
{
	json_t *last = cli_json_at(item, "deliveries.last");
	json_t *status = json_object_get(last, "status");
	const char *error = json_string_value(json_object_get(last, "error"));
	json_int_t attempts = json_integer_value(json_object_get(last, "attempts"));

	if (!json_is_object(last))
		return xstrdup("-");
	if (error)
		return xasprintf("%s %s (%" JSON_INTEGER_FORMAT " attempt%s: %s)",
				 json_string_value(json_object_get(last, "state")),
				 json_string_value(json_object_get(last, "event")), attempts,
				 attempts == 1 ? "" : "s", error);
	return xasprintf("%s %s (%" JSON_INTEGER_FORMAT " attempt%s, HTTP %" JSON_INTEGER_FORMAT
			 ")",
			 json_string_value(json_object_get(last, "state")),
			 json_string_value(json_object_get(last, "event")), attempts,
			 attempts == 1 ? "" : "s", json_integer_value(status));
}

static int webhook_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"ID", "id", NULL},
		{"URL", "url", NULL},
		{"EVENTS", NULL, events_cell},
		{"OK", "deliveries.ok", NULL},
		{"FAILED", "deliveries.failed", NULL},
		{"PENDING", "deliveries.pending", NULL},
		{"LAST", NULL, last_cell},
		{NULL, NULL, NULL},
	};

	return cli_list(cli, a, "/api/v1/webhooks", NULL, columns);
}

static int webhook_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/webhooks/%s", cli_pos(a, 0));
	int rc;

	if ((rc = cli_api(cli, "DELETE", path, NULL, NULL)) == CLI_EXIT_OK)
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
	 "POST matching events to URL",
	 "EVENT is an event name (rollout.succeeded), a prefix (rollout.*) or *.\n"
	 "Each delivery is signed: Tender-Signature: ed25519=<base64> over the body,\n"
	 "with the server's key (public_key in the answer).",
	 0},
	{"ls", webhook_ls, "", 0, 0, ls_options, "list webhooks and how their deliveries went",
	 NULL, 0},
	{"rm", webhook_rm, "ID", 1, 1, NULL, "remove a webhook", NULL, 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
