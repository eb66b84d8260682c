/* cmd_rollout.c - `tender rollout create|approve|show|ls|pause|resume|abort`,
 * and `rollout show --watch`, which follows a rollout to its end with a
 * progress bar on a terminal (plain lines otherwise) and exits 0 when it
 * succeeded, 1 when it did not. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "xalloc.h"

/* Consecutive failed polls a watch tolerates before giving up. */
#define WATCH_RETRIES 5

struct summary {
	size_t targets, succeeded, failed, batches, batches_done;
	const char *state; /* borrowed from the rollout */
};

static void summarize(json_t *ro, struct summary *s)
{
	json_t *batch, *t;
	size_t i, j;

	memset(s, 0, sizeof *s);
	s->state = json_string_value(json_object_get(ro, "state"));
	if (!s->state)
		s->state = "?";
	json_array_foreach(json_object_get(ro, "batches"), i, batch) {
		const char *bs = json_string_value(json_object_get(batch, "state"));

		s->batches++;
		if (bs && strcmp(bs, "done") == 0)
			s->batches_done++;
		json_array_foreach(json_object_get(batch, "targets"), j, t) {
			const char *ts = json_string_value(json_object_get(t, "state"));

			s->targets++;
			if (ts && strcmp(ts, "succeeded") == 0)
				s->succeeded++;
			else if (ts && strcmp(ts, "failed") == 0)
				s->failed++;
		}
	}
}

static bool ended(const char *state)
{
	static const char *const states[] = {"succeeded", "failed", "rolled_back", "aborted"};

	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
		if (strcmp(state, states[i]) == 0)
			return true;
	return false;
}

/* "1/3 targets done (1 succeeded, 0 failed), 0/1 batches done"; caller
 * frees. */
static char *progress_text(const struct summary *s)
{
	return xasprintf("%zu/%zu targets done (%zu succeeded, %zu failed), %zu/%zu batches done",
			 s->succeeded + s->failed, s->targets, s->succeeded, s->failed,
			 s->batches_done, s->batches);
}

static char *targets_column(json_t *item)
{
	struct summary s;

	summarize(item, &s);
	return xasprintf("%zu/%zu", s.succeeded + s.failed, s.targets);
}

static void print_rollout(json_t *ro)
{
	static const struct cli_field fields[] = {
		{"ID", "id"},
		{"Cluster", "cluster"},
		{"From", "from"},
		{"To", "to"},
		{"State", "state"},
		{"Progress", "_progress"},
		{"Strategy", "strategy"},
		{"Created", "created"},
		{"Created by", "created_by"},
		{"Updated", "updated"},
		{"Approved", "_approved"},
		{NULL, NULL},
	};
	static const struct cli_column columns[] = {
		{"BATCH", "batch", NULL},    {"BATCH STATE", "batch_state", NULL},
		{"TARGET", "id", NULL},      {"STATE", "state", NULL},
		{"MESSAGE", "message", NULL}, {NULL, NULL, NULL},
	};
	json_t *rows = json_array(), *batch, *t, *approval;
	struct summary s;
	char *progress;
	size_t i, j;

	summarize(ro, &s);
	progress = progress_text(&s);
	json_object_set_new(ro, "_progress", json_string(progress));
	free(progress);
	json_array_foreach(json_object_get(ro, "approvals"), i, approval) {
		char *by = cli_text(json_object_get(approval, "by"));
		char *at = cli_text(json_object_get(approval, "at"));
		char *index = cli_text(json_object_get(approval, "batch"));
		const char *before = json_string_value(json_object_get(ro, "_approved"));
		char *text = xasprintf("%s%s%s at %s (batch %s)", before ? before : "",
				       before ? "; " : "", by, at, index);

		json_object_set_new(ro, "_approved", json_string(text));
		free(text);
		free(by);
		free(at);
		free(index);
	}
	cli_print_fields(ro, fields);
	json_array_foreach(json_object_get(ro, "batches"), i, batch) {
		json_array_foreach(json_object_get(batch, "targets"), j, t) {
			json_t *row = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "batch",
						json_object_get(batch, "index"), "batch_state",
						json_object_get(batch, "state"), "id",
						json_object_get(t, "id"), "state",
						json_object_get(t, "state"), "message",
						json_object_get(t, "message"));

			json_array_append_new(rows, row);
		}
	}
	if (json_array_size(rows)) {
		cli_printf("\n");
		cli_print_table(rows, columns);
	}
	json_decref(rows);
}

static int strategy_refused(const struct cli_args *a)
{
	static const char *const options[] = {"canary", "batch", "pause-after"};

	for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
		if (cli_flag(a, options[i]))
			return cli_usage(a,
					 "--%s is not supported by this server yet: it rolls out "
					 "to every target of the cluster at once",
					 options[i]);
	return CLI_EXIT_OK;
}

static int rollout_create(struct cli *cli, const struct cli_args *a)
{
	const char *cluster = cli_arg(a, "cluster"), *to = cli_arg(a, "to");
	json_t *body = NULL, *config = NULL, *answer = NULL;
	char *id = NULL, *from = NULL, *dest = NULL;
	struct summary s;
	int rc;

	if ((rc = strategy_refused(a)))
		return rc;
	if (!cluster)
		return cli_usage(a, "--cluster is required");
	if (!to && !cli_flag(a, "config"))
		return cli_usage(a, "give --to NAME@VER, --config FILE, or both");
	if (to) {
		char *name = NULL, *version = NULL;
		struct tn_error err;

		if (cli_parse_ref(to, &name, &version, &err) != 0)
			return cli_usage(a, "--to: %s", err.message);
		free(name);
		free(version);
	}
	if ((rc = cli_json_option(a, "config", &config)))
		return rc;
	body = json_pack("{s:s}", "cluster", cluster);
	if (to)
		json_object_set_new(body, "distribution", json_string(to));
	if (config)
		json_object_set(body, "config", config);
	if ((rc = cli_api(cli, "POST", "/api/v1/rollouts", body, &answer)))
		goto out;
	summarize(answer, &s);
	id = cli_text(json_object_get(answer, "id"));
	from = cli_text(json_object_get(answer, "from"));
	dest = cli_text(json_object_get(answer, "to"));
	cli_done(cli, answer,
		 "created rollout %s of cluster %s: %s -> %s, %s, %zu target%s staging it\n"
		 "approve it with: tender rollout approve %s",
		 id, cluster, from, dest, s.state, s.targets, s.targets == 1 ? "" : "s", id);
out:
	free(id);
	free(from);
	free(dest);
	json_decref(body);
	json_decref(config);
	json_decref(answer);
	return rc;
}

/* POST /api/v1/rollouts/ID/action; newer: the endpoint may be missing. */
static int rollout_action(struct cli *cli, const struct cli_args *a, const char *action,
			  const char *done, bool newer)
{
	char *fmt = xasprintf("/api/v1/rollouts/%%s/%s", action);
	char *path = cli_path(fmt, cli_pos(a, 0));
	char *what = xasprintf("rollout %s", action);
	json_t *answer = NULL;
	int rc;

	rc = newer ? cli_api_newer(cli, what, "POST", path, NULL, &answer)
		   : cli_api(cli, "POST", path, NULL, &answer);
	if (rc == CLI_EXIT_OK) {
		struct summary s;

		summarize(answer, &s);
		cli_done(cli, answer, "%s rollout %s: now %s", done, cli_pos(a, 0), s.state);
	}
	json_decref(answer);
	free(fmt);
	free(path);
	free(what);
	return rc;
}

static int rollout_approve(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "approve", "approved", false);
}

static int rollout_pause(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "pause", "paused", true);
}

static int rollout_resume(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "resume", "resumed", true);
}

static int rollout_abort(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "abort", "aborted", true);
}

static void pause_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

/* Polls the rollout until it ends; *out is its last state (caller
 * decrefs). */
static int watch(struct cli *cli, const char *path, const char *id, double interval,
		 json_t **out)
{
	struct cli_progress bar;
	char *last_line = NULL;
	int failures = 0, rc = CLI_EXIT_OK;

	*out = NULL;
	cli_progress_begin(&bar, id);
	/* bounded by the rollout: it ends, or the server stops answering */
	for (;;) {
		json_t *ro = NULL;
		struct summary s;
		char *line, *progress;

		rc = cli_api(cli, "GET", path, NULL, &ro);
		if (rc == CLI_EXIT_UNREACHABLE && ++failures < WATCH_RETRIES) {
			pause_s(interval);
			continue;
		}
		if (rc != CLI_EXIT_OK)
			break;
		failures = 0;
		summarize(ro, &s);
		progress = progress_text(&s);
		line = xasprintf("%s: %s, %s", id, s.state, progress);
		if (bar.on) {
			char *detail = xasprintf("%zu/%zu targets  batch %zu/%zu  %s",
						 s.succeeded + s.failed, s.targets, s.batches_done,
						 s.batches, s.state);

			cli_progress_update(&bar, (double)(s.succeeded + s.failed),
					    (double)s.targets, detail);
			free(detail);
		} else if (!last_line || strcmp(line, last_line) != 0) {
			cli_eprintf("%s\n", line);
		}
		free(progress);
		free(last_line);
		last_line = line;
		if (ended(s.state)) {
			*out = ro;
			break;
		}
		json_decref(ro);
		pause_s(interval);
	}
	cli_progress_end(&bar);
	free(last_line);
	return rc;
}

static int rollout_show(struct cli *cli, const struct cli_args *a)
{
	const char *interval_text = cli_arg(a, "interval");
	char *path = cli_path("/api/v1/rollouts/%s", cli_pos(a, 0));
	json_t *answer = NULL;
	struct tn_error err;
	long interval_ms = 1000;
	int rc;

	if (interval_text && !cli_flag(a, "watch")) {
		rc = cli_usage(a, "--interval goes with --watch");
		goto out;
	}
	if (interval_text && cli_parse_long(interval_text, "--interval (milliseconds)", 100,
					    3600000, &interval_ms, &err) != 0) {
		rc = cli_usage(a, "%s", err.message);
		goto out;
	}
	if (cli_flag(a, "watch"))
		rc = watch(cli, path, cli_pos(a, 0), (double)interval_ms / 1000, &answer);
	else
		rc = cli_api(cli, "GET", path, NULL, &answer);
	if (rc != CLI_EXIT_OK)
		goto out;
	if (cli->json)
		cli_print_json(answer);
	else
		print_rollout(answer);
	if (cli_flag(a, "watch")) {
		struct summary s;

		summarize(answer, &s);
		if (strcmp(s.state, "succeeded") != 0) {
			cli_error("rollout %s ended %s", cli_pos(a, 0), s.state);
			rc = CLI_EXIT_REFUSED;
		}
	}
out:
	json_decref(answer);
	free(path);
	return rc;
}

static int rollout_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"ID", "id", NULL},	     {"CLUSTER", "cluster", NULL},
		{"FROM", "from", NULL},	     {"TO", "to", NULL},
		{"STATE", "state", NULL},    {"TARGETS", NULL, targets_column},
		{"CREATED", "created", NULL}, {"BY", "created_by", NULL},
		{NULL, NULL, NULL},
	};
	char *path = xstrdup("/api/v1/rollouts");
	int rc;

	cli_query(&path, "cluster", cli_arg(a, "cluster"));
	rc = cli_list(cli, a, path, NULL, columns);
	free(path);
	return rc;
}

static const struct cli_option create_options[] = {
	{"cluster", 'c', "CLUSTER", "the cluster to move (required)"},
	{"to", 't', "NAME@VER", "the distribution to move it to (default: its current one)"},
	{"config", 0, "FILE", "new cluster config: a JSON object per bundle name"},
	{"canary", 0, "PERCENT", "a first batch of this share (not supported by this server yet)"},
	{"batch", 0, "N|N%", "targets per batch (not supported by this server yet)"},
	{"pause-after", 0, "LIST", "batches to pause after (not supported by this server yet)"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option show_options[] = {
	{"watch", 'w', NULL, "follow it until it ends: exit 0 if it succeeded, 1 if not"},
	{"interval", 0, "MS", "with --watch: poll every MS milliseconds (default 1000)"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	{"cluster", 'c', "CLUSTER", "only this cluster's rollouts"},
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_rollout_commands[] = {
	{"create", rollout_create, "--cluster CLUSTER --to NAME@VER", 0, 0, create_options,
	 "move a cluster to a new distribution or config (pending approval)",
	 "Every target stages the new release at once; nothing switches before `tender\n"
	 "rollout approve`.  This server rolls out to all targets of the cluster in one\n"
	 "batch: --canary, --batch and --pause-after are refused (exit 2) until it can\n"
	 "follow them.",
	 0},
	{"approve", rollout_approve, "ID", 1, 1, NULL, "approve a rollout: its targets switch",
	 NULL, 0},
	{"show", rollout_show, "ID", 1, 1, show_options, "show a rollout, or --watch it",
	 "With --watch, polls the rollout until it ends, with a progress bar of the targets\n"
	 "done when stderr is a terminal and a line per change otherwise (on stderr), then\n"
	 "shows it; exits 0 when it succeeded and 1 when it failed, rolled back or was\n"
	 "aborted.",
	 0},
	{"ls", rollout_ls, "", 0, 0, ls_options, "list rollouts, newest first", NULL, 0},
	{"pause", rollout_pause, "ID", 1, 1, NULL,
	 "pause after the targets switching now (needs a newer server)", NULL, CLI_NEEDS_NEWER},
	{"resume", rollout_resume, "ID", 1, 1, NULL,
	 "resume a paused rollout (needs a newer server)", NULL, CLI_NEEDS_NEWER},
	{"abort", rollout_abort, "ID", 1, 1, NULL,
	 "abort a rollout: switched targets go back (needs a newer server)", NULL,
	 CLI_NEEDS_NEWER},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
