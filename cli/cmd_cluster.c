/* cmd_cluster.c - `tender cluster create|ls|show|set|rm|undo`: clusters, their
 * revision, provider and load-balancer binding, and the counts of their
 * targets per state and per release. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

/* "none", "haproxy 127.0.0.1:9999 backend educa", ...; caller frees. */
static char *lb_text(json_t *lb)
{
	const char *driver = json_string_value(json_object_get(lb, "driver"));
	char *out, *admin, *backend;

	if (!driver || strcmp(driver, "haproxy") != 0)
		return cli_text(json_object_get(lb, "driver"));
	admin = cli_text(json_object_get(lb, "admin"));
	backend = cli_text(json_object_get(lb, "backend"));
	out = xasprintf("haproxy %s backend %s", admin, backend);
	free(admin);
	free(backend);
	return out;
}

static char *lb_column(json_t *item)
{
	return lb_text(json_object_get(item, "lb"));
}

/* Builds the fields shared by create and set from the options into body;
 * a usage error's status, or 0. */
static int common_fields(const struct cli_args *a, json_t *body)
{
	const char *lb = cli_arg(a, "lb");
	struct tn_error err;
	json_t *lb_json = NULL;

	if (lb) {
		if (cli_parse_lb(lb, &lb_json, &err) != 0)
			return cli_usage(a, "%s", err.message);
		json_object_set_new(body, "lb", lb_json);
	}
	if (cli_arg(a, "provider"))
		json_object_set_new(body, "provider", json_string(cli_arg(a, "provider")));
	if (cli_arg(a, "description"))
		json_object_set_new(body, "description", json_string(cli_arg(a, "description")));
	return CLI_EXIT_OK;
}

static int cluster_create(struct cli *cli, const struct cli_args *a)
{
	json_t *body = json_pack("{s:s}", "name", cli_pos(a, 0)), *config = NULL,
	       *answer = NULL;
	const char *dist = cli_arg(a, "dist");
	int rc;

	if ((rc = common_fields(a, body)) || (rc = cli_json_option(a, "config", &config)))
		goto out;
	if (dist) {
		char *name = NULL, *version = NULL;
		struct tn_error err;

		if (cli_parse_ref(dist, &name, &version, &err) != 0) {
			rc = cli_usage(a, "--dist: %s", err.message);
			goto out;
		}
		free(name);
		free(version);
		json_object_set_new(body, "distribution", json_string(dist));
	}
	if (config)
		json_object_set(body, "config", config);
	if ((rc = cli_api(cli, "POST", "/api/v1/clusters", body, &answer)))
		goto out;
	cli_done(cli, answer, "created cluster %s%s%s", cli_pos(a, 0), dist ? " on " : "",
		 dist ? dist : " (no distribution yet: its targets will wait)");
out:
	json_decref(body);
	json_decref(config);
	json_decref(answer);
	return rc;
}

static int cluster_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"NAME", "name", NULL},
		{"DISTRIBUTION", "revision.distribution", NULL},
		{"REVISION", "revision.number", NULL},
		{"TARGETS", "targets.total", NULL},
		{"PROVIDER", "provider", NULL},
		{"LB", NULL, lb_column},
		{"DESCRIPTION", "description", NULL},
		{NULL, NULL, NULL},
	};

	return cli_list(cli, a, "/api/v1/clusters", NULL, columns);
}

/* "  key  count" lines of a {key: count} object, non-zero counts only
 * unless all is set. */
static void print_counts(const char *title, json_t *counts, bool all)
{
	size_t width = 0, shown = 0;
	const char *key;
	json_t *v;

	json_object_foreach(counts, key, v) {
		if (all || json_integer_value(v) != 0) {
			shown++;
			if (strlen(key) > width)
				width = strlen(key);
		}
	}
	cli_printf("%s:%s\n", title, shown ? "" : " none");
	json_object_foreach(counts, key, v) {
		json_t *k;
		char *name, *n;

		if (!all && json_integer_value(v) == 0)
			continue;
		k = json_string(key);
		name = cli_text(k);
		n = cli_text(v);
		cli_printf("  %-*s  %s\n", (int)width, name, n);
		json_decref(k);
		free(name);
		free(n);
	}
}

static int cluster_show(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_field fields[] = {
		{"Name", "name"},
		{"Description", "description"},
		{"Provider", "provider"},
		{"Revision", "revision.number"},
		{"Distribution", "revision.distribution"},
		{"Distribution", "_no_distribution"},
		{"Revised", "revision.created"},
		{"Revised by", "revision.created_by"},
		{"Created", "created"},
		{"Updated", "updated"},
		{"Load balancer", "_lb"},
		{"Targets", "targets.total"},
		{NULL, NULL},
	};
	char *path = cli_path("/api/v1/clusters/%s", cli_pos(a, 0));
	json_t *answer = NULL, *config;
	char *lb;
	int rc;

	if ((rc = cli_api(cli, "GET", path, NULL, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
		goto out;
	}
	/* derived lines, for people only */
	lb = lb_column(answer);
	json_object_set_new(answer, "_lb", json_string(lb));
	free(lb);
	if (json_is_null(json_object_get(answer, "revision")))
		json_object_set_new(answer, "_no_distribution",
				    json_string("none yet (targets enroll and wait)"));
	cli_print_fields(answer, fields);
	print_counts("Targets by state", cli_json_at(answer, "targets.by_state"), false);
	print_counts("Targets by release", cli_json_at(answer, "targets.by_release"), true);
	config = cli_json_at(answer, "revision.config");
	if (json_object_size(config)) {
		cli_printf("Config:\n");
		cli_print_json(config);
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int cluster_set(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/clusters/%s", cli_pos(a, 0));
	json_t *body = json_object(), *answer = NULL;
	int rc;

	if ((rc = common_fields(a, body)))
		goto out;
	if (json_object_size(body) == 0) {
		rc = cli_usage(a, "nothing to change: give --lb, --provider or --description "
				  "(the distribution and config change through a rollout)");
		goto out;
	}
	if ((rc = cli_api(cli, "PATCH", path, body, &answer)))
		goto out;
	cli_done(cli, answer, "updated cluster %s", cli_pos(a, 0));
out:
	json_decref(body);
	json_decref(answer);
	free(path);
	return rc;
}

static int cluster_rm(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/clusters/%s", cli_pos(a, 0));
	int rc;

	if ((rc = cli_api(cli, "DELETE", path, NULL, NULL)) == CLI_EXIT_OK)
		cli_done(cli, NULL, "removed cluster %s", cli_pos(a, 0));
	free(path);
	return rc;
}

static int cluster_undo(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/clusters/%s/undo", cli_pos(a, 0));
	json_t *body = NULL, *strategy = NULL, *answer = NULL;
	struct tn_error err;
	int rc;

	if (cli_parse_strategy(a, &strategy, &err) != 0) {
		rc = cli_usage(a, "%s", err.message);
		goto out;
	}
	if (json_object_size(strategy))
		body = json_pack("{s:O}", "strategy", strategy);
	if ((rc = cli_api(cli, "POST", path, body, &answer)) == CLI_EXIT_OK)
		cli_rollout_created(cli, answer);
out:
	json_decref(body);
	json_decref(strategy);
	json_decref(answer);
	free(path);
	return rc;
}

static const struct cli_option create_options[] = {
	{"dist", 'd', "NAME@VER", "the distribution its targets run (default: none yet)"},
	{"provider", 'p', "PROVIDER", "the provider that boots its targets (local, netns...)"},
	{"lb", 0, "LB", "none, or haproxy:ADDR:PORT:BACKEND (haproxy:unix:/PATH:BACKEND)"},
	{"description", 0, "TEXT", "a line for people"},
	{"config", 0, "FILE", "cluster config: a JSON object per bundle name"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option set_options[] = {
	{"provider", 'p', "PROVIDER", "the provider that boots its targets"},
	{"lb", 0, "LB", "none, or haproxy:ADDR:PORT:BACKEND (haproxy:unix:/PATH:BACKEND)"},
	{"description", 0, "TEXT", "a line for people"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option undo_options[] = {
	CLI_STRATEGY_OPTIONS,
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_cluster_commands[] = {
	{"create", cluster_create, "NAME", 1, 1, create_options, "create a cluster",
	 "NAME is a DNS label (a-z, 0-9, -).  Without --dist its targets enroll and wait\n"
	 "until a rollout gives the cluster a distribution.",
	 0},
	{"ls", cluster_ls, "", 0, 0, ls_options, "list clusters", NULL, 0},
	{"show", cluster_show, "NAME", 1, 1, NULL,
	 "show a cluster: revision, load balancer, targets per state and release", NULL, 0},
	{"set", cluster_set, "NAME", 1, 1, set_options,
	 "change a cluster's load balancer, provider or description",
	 "The distribution and config of a cluster change only through a rollout.", 0},
	{"rm", cluster_rm, "NAME", 1, 1, NULL, "remove a cluster",
	 "Refused while it has targets that are not removed.", 0},
	{"undo", cluster_undo, "NAME", 1, 1, undo_options,
	 "make a rollout back to the previous revision (pending approval)",
	 "A new rollout, pending approval, back to where the cluster's last succeeded\n"
	 "rollout began: its distribution and config.  The nodes kept that release, so\n"
	 "the switch needs no download.  It takes the strategy options of `tender\n"
	 "rollout create` (by default batches of 1); approve it with `tender rollout\n"
	 "approve ID`.",
	 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
