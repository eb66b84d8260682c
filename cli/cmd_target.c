/* cmd_target.c - `tender target ls|show|logs|revoke|create|copy|rm`: the
 * nodes of the clusters.  create, copy and rm call endpoints that arrive
 * with the providers; on a server without them they say so plainly. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

static const struct cli_column target_columns[] = {
	{"ID", "id", NULL},
	{"CLUSTER", "cluster", NULL},
	{"STATE", "state", NULL},
	{"PHASE", "phase", NULL},
	{"HEALTH", "health", NULL},
	{"ADDRESS", "address", NULL},
	{"RELEASE", "actual", NULL},
	{"LAST SEEN", "last_seen", NULL},
	{NULL, NULL, NULL},
};

/* Targets an answer carries: {"items": [...]} or one target. */
static void print_targets(struct cli *cli, json_t *answer, const char *verb)
{
	json_t *items = json_object_get(answer, "items"), *one = NULL;

	if (cli->json) {
		cli_print_json(answer);
		return;
	}
	if (!json_is_array(items))
		items = one = json_pack("[O]", answer);
	cli_printf("%s %zu target%s:\n", verb, json_array_size(items),
		   json_array_size(items) == 1 ? "" : "s");
	cli_print_table(items, target_columns);
	json_decref(one);
}

static int target_create(struct cli *cli, const struct cli_args *a)
{
	const char *count_text = cli_arg(a, "count"), *cluster = cli_arg(a, "cluster");
	json_t *body = NULL, *config = NULL, *answer = NULL;
	struct tn_error err;
	long count = 1;
	int rc;

	if (!cluster)
		return cli_usage(a, "--cluster is required");
	body = json_pack("{s:s}", "cluster", cluster);
	if (count_text && cli_parse_long(count_text, "--count", 1, 1000, &count, &err) != 0) {
		rc = cli_usage(a, "%s", err.message);
		goto out;
	}
	if ((rc = cli_json_option(a, "config", &config)))
		goto out;
	if (count_text)
		json_object_set_new(body, "count", json_integer(count));
	if (cli_arg(a, "provider"))
		json_object_set_new(body, "provider", json_string(cli_arg(a, "provider")));
	if (config)
		json_object_set(body, "config", config);
	if ((rc = cli_api_newer(cli, "target create", "POST", "/api/v1/targets", body, &answer)))
		goto out;
	print_targets(cli, answer, "provisioning");
out:
	json_decref(body);
	json_decref(config);
	json_decref(answer);
	return rc;
}

static int target_copy(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/targets/%s/copy", cli_pos(a, 0));
	json_t *answer = NULL;
	int rc;

	if ((rc = cli_api_newer(cli, "target copy", "POST", path, NULL, &answer)) == CLI_EXIT_OK)
		print_targets(cli, answer, "provisioning");
	json_decref(answer);
	free(path);
	return rc;
}

static int target_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/targets/%s", cli_pos(a, 0));
	json_t *answer = NULL;
	int rc;

	if (cli_flag(a, "force"))
		cli_query(&path, "force", "true");
	if ((rc = cli_api_newer(cli, "target rm", "DELETE", path, NULL, &answer)) == CLI_EXIT_OK)
		cli_done(cli, answer, "removing target %s (draining, then terminated)",
			 cli_pos(a, 0));
	json_decref(answer);
	free(path);
	return rc;
}

static int target_ls(struct cli *cli, const struct cli_args *a)
{
	char *path = xstrdup("/api/v1/targets");
	int rc;

	cli_query(&path, "cluster", cli_arg(a, "cluster"));
	cli_query(&path, "state", cli_arg(a, "state"));
	rc = cli_list(cli, a, path, NULL, target_columns);
	free(path);
	return rc;
}

static char *last_result(json_t *t)
{
	json_t *r = json_object_get(t, "last_result");
	char *result, *message, *out;

	if (!json_is_object(r))
		return xstrdup("-");
	result = cli_text(json_object_get(r, "result"));
	message = cli_text(json_object_get(r, "message"));
	out = strcmp(message, "-") && *message ? xasprintf("%s: %s", result, message)
					       : xstrdup(result);
	free(result);
	free(message);
	return out;
}

static int target_show(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_field fields[] = {
		{"ID", "id"},
		{"Cluster", "cluster"},
		{"Provider", "provider"},
		{"Instance", "instance"},
		{"Address", "address"},
		{"Agent port", "agent_port"},
		{"State", "state"},
		{"Phase", "phase"},
		{"Health", "health"},
		{"Desired", "desired.release"},
		{"Generation", "desired.generation"},
		{"Running", "actual"},
		{"Last result", "_last_result"},
		{"Last seen", "last_seen"},
		{"Created", "created"},
		{"Updated", "updated"},
		{"Inventory", "inventory"},
		{"Config", "config"},
		{NULL, NULL},
	};
	static const struct cli_column bundle_columns[] = {
		{"BUNDLE", "name", NULL},
		{"STATE", "state", NULL},
		{"RESTARTS", "restarts", NULL},
		{"REASON", "reason", NULL},
		{NULL, NULL, NULL},
	};
	char *path = cli_path("/api/v1/targets/%s", cli_pos(a, 0)), *last;
	json_t *answer = NULL, *bundles;
	int rc;

	if ((rc = cli_api(cli, "GET", path, NULL, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
		goto out;
	}
	last = last_result(answer);
	json_object_set_new(answer, "_last_result", json_string(last));
	free(last);
	cli_print_fields(answer, fields);
	bundles = json_object_get(answer, "bundles");
	if (json_array_size(bundles)) {
		cli_printf("\n");
		cli_print_table(bundles, bundle_columns);
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int target_logs(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/targets/%s/logs", cli_pos(a, 0));
	const char *lines = cli_arg(a, "lines");
	json_t *answer = NULL, *logs, *text;
	struct tn_error err;
	const char *bundle;
	long n;
	int rc;

	if (lines && cli_parse_long(lines, "--lines", 1, 10000, &n, &err) != 0) {
		rc = cli_usage(a, "%s", err.message);
		goto out;
	}
	cli_query(&path, "bundle", cli_arg(a, "bundle"));
	cli_query(&path, "lines", lines);
	if ((rc = cli_api(cli, "GET", path, NULL, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
		goto out;
	}
	logs = json_object_get(answer, "logs");
	if (json_object_size(logs) == 0)
		cli_eprintf("(target %s has reported no logs)\n", cli_pos(a, 0));
	json_object_foreach(logs, bundle, text) {
		const char *s = json_string_value(text);
		size_t len = json_string_length(text);

		/* one bundle: its text alone, as tail(1) would print it */
		if (json_object_size(logs) > 1) {
			json_t *name = json_string(bundle);
			char *shown = cli_text(name);

			cli_printf("==> %s <==\n", shown);
			free(shown);
			json_decref(name);
		}
		cli_print_text(s ? s : "", len);
		if (len && s[len - 1] != '\n')
			cli_printf("\n");
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int target_revoke(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/targets/%s/revoke", cli_pos(a, 0));
	int rc;

	if ((rc = cli_api(cli, "POST", path, NULL, NULL)) == CLI_EXIT_OK)
		cli_done(cli, NULL,
			 "revoked the agent token of %s: its node must enroll again",
			 cli_pos(a, 0));
	free(path);
	return rc;
}

static const struct cli_option create_options[] = {
	{"cluster", 'c', "CLUSTER", "the cluster of the new targets (required)"},
	{"count", 'n', "N", "how many (default 1)"},
	{"provider", 'p', "PROVIDER", "boot them with this provider (default: the cluster's)"},
	{"config", 0, "FILE", "target config: a JSON object per bundle name"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option rm_options[] = {
	{"force", 'f', NULL, "terminate without waiting for the node to drain"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	{"cluster", 'c', "CLUSTER", "only the targets of this cluster"},
	{"state", 0, "STATE", "only targets in this state (enrolled, running, ...)"},
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

static const struct cli_option logs_options[] = {
	{"bundle", 'b', "BUNDLE", "only this bundle's log"},
	{"lines", 'n', "N", "the last N lines (default 100)"},
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_target_commands[] = {
	{"ls", target_ls, "", 0, 0, ls_options, "list targets", NULL, 0},
	{"show", target_show, "ID", 1, 1, NULL, "show a target: state, release, bundles", NULL,
	 0},
	{"logs", target_logs, "ID", 1, 1, logs_options,
	 "the tail of a target's bundle logs, as its agent last reported them", NULL, 0},
	{"revoke", target_revoke, "ID", 1, 1, NULL,
	 "revoke a target's agent token (its node must enroll again)", NULL, 0},
	{"create", target_create, "--cluster CLUSTER", 0, 0, create_options,
	 "create targets: boot nodes with an agent",
	 "POST /api/v1/targets: the provider boots COUNT nodes whose agents enroll into the\n"
	 "cluster.  Existing machines enroll with `tender enroll-command`.",
	 0},
	{"copy", target_copy, "ID", 1, 1, NULL, "a new target like this one, in its cluster", NULL,
	 0},
	{"rm", target_rm, "ID", 1, 1, rm_options, "drain, stop and terminate a target", NULL, 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
