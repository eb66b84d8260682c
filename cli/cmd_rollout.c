/* cmd_rollout.c - `tender rollout create|approve|show|ls|pause|resume|abort`,
 * and `rollout show --watch`, which follows a rollout to its end (through
 * its pauses) with a progress bar on a terminal (plain lines otherwise) and
 * exits 0 when it succeeded, 1 when it did not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "xalloc.h"

/* Consecutive failed polls a watch tolerates before giving up. */
#define WATCH_RETRIES 5
/* Batches named one by one in `rollout show`; the rest are counted. */
#define BATCHES_SHOWN 20

struct summary {
	size_t targets, succeeded, failed, reverted, skipped, prepared;
	size_t batches, batches_done;
	const char *state; /* borrowed from the rollout */
	/* the first batch not done (-1: none) and its state (borrowed) */
	json_int_t current;
	const char *current_state;
};

static bool is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static void summarize(json_t *ro, struct summary *s)
{
	json_t *batch, *t;
	size_t i, j;

	memset(s, 0, sizeof *s);
	s->current = -1;
	s->state = json_string_value(json_object_get(ro, "state"));
	if (!s->state)
		s->state = "?";
	json_array_foreach(json_object_get(ro, "batches"), i, batch) {
		const char *bs = json_string_value(json_object_get(batch, "state"));

		s->batches++;
		if (is(bs, "done")) {
			s->batches_done++;
		} else if (s->current < 0) {
			s->current = json_integer_value(json_object_get(batch, "index"));
			s->current_state = bs;
		}
		json_array_foreach(json_object_get(batch, "targets"), j, t) {
			const char *ts = json_string_value(json_object_get(t, "state"));

			s->targets++;
			s->prepared += json_is_true(json_object_get(t, "prepared"));
			if (is(ts, "succeeded"))
				s->succeeded++;
			else if (is(ts, "failed"))
				s->failed++;
			else if (is(ts, "reverted"))
				s->reverted++;
			else if (is(ts, "skipped"))
				s->skipped++;
		}
	}
	/* the server's count, when it gives one */
	if (json_is_integer(json_object_get(ro, "prepared")))
		s->prepared = (size_t)json_integer_value(json_object_get(ro, "prepared"));
}

static bool ended(const char *state)
{
	static const char *const states[] = {"succeeded", "failed", "rolled_back", "aborted"};

	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
		if (strcmp(state, states[i]) == 0)
			return true;
	return false;
}

/* Targets that have their end in this rollout: reverted and skipped ones
 * too, so that an aborted or rolled back rollout reads as finished. */
static size_t targets_done(const struct summary *s)
{
	return s->succeeded + s->failed + s->reverted + s->skipped;
}

/* "1/3 targets done (1 succeeded, 0 failed), 0/1 batches done", with the
 * reverted and skipped ones when there are; caller frees. */
static char *progress_text(const struct summary *s)
{
	char reverted[48] = "", skipped[48] = "";

	if (s->reverted)
		snprintf(reverted, sizeof reverted, ", %zu reverted", s->reverted);
	if (s->skipped)
		snprintf(skipped, sizeof skipped, ", %zu skipped", s->skipped);
	return xasprintf("%zu/%zu targets done (%zu succeeded, %zu failed%s%s), %zu/%zu batches "
			 "done",
			 targets_done(s), s->targets, s->succeeded, s->failed, reverted, skipped,
			 s->batches_done, s->batches);
}

/* The state for people: what a paused or pending rollout waits for.
 * Caller frees. */
static char *state_text(const struct summary *s)
{
	if (is(s->state, "pending_approval"))
		return xasprintf("pending_approval, prepared %zu/%zu", s->prepared, s->targets);
	if (!is(s->state, "paused"))
		return xstrdup(s->state);
	/* a pause point: the batch before the next one is done */
	if (s->current > 0 && is(s->current_state, "pending"))
		return xasprintf("paused after batch %" JSON_INTEGER_FORMAT ": approve to go on",
				 s->current - 1);
	/* `rollout pause`: the targets switching finish, nothing new starts */
	if (s->current >= 0)
		return xasprintf("paused in batch %" JSON_INTEGER_FORMAT ": resume to go on",
				 s->current);
	return xstrdup("paused: resume to go on");
}

static char *targets_column(json_t *item)
{
	struct summary s;

	summarize(item, &s);
	return xasprintf("%zu/%zu", targets_done(&s), s.targets);
}

/* "batches of 1, canary 10%, pause after 0, ..." from the stored strategy
 * (its defaults filled in by the server); caller frees. */
static char *strategy_text(json_t *st)
{
	json_t *v, *p;
	char *out = NULL, *pauses = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		abort(); /* out of memory */
	if (!json_is_object(st)) {
		fclose(f);
		free(out);
		return cli_text(st);
	}
	if ((v = json_object_get(st, "batch_percent")))
		fprintf(f, "batches of %" JSON_INTEGER_FORMAT "%%", json_integer_value(v));
	else if ((v = json_object_get(st, "batch_size")))
		fprintf(f, "batches of %" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		fprintf(f, "default batches");
	if ((v = json_object_get(st, "canary_percent")) && json_integer_value(v) > 0)
		fprintf(f, ", canary %" JSON_INTEGER_FORMAT "%%", json_integer_value(v));
	json_array_foreach(json_object_get(st, "pause_after"), i, p) {
		char *before = pauses;

		pauses = xasprintf("%s%s%" JSON_INTEGER_FORMAT, before ? before : "", before ? "," : "",
				   json_integer_value(p));
		free(before);
	}
	if (pauses)
		fprintf(f, ", pause after %s", pauses);
	if ((v = json_object_get(st, "max_unavailable")) && json_is_integer(v))
		fprintf(f, ", max unavailable %" JSON_INTEGER_FORMAT, json_integer_value(v));
	if ((v = json_object_get(st, "health_timeout_s")))
		fprintf(f, ", health timeout %" JSON_INTEGER_FORMAT " s", json_integer_value(v));
	if ((v = json_object_get(st, "failure_threshold")))
		fprintf(f, ", failure threshold %" JSON_INTEGER_FORMAT, json_integer_value(v));
	if (json_is_false(json_object_get(st, "auto_rollback")))
		fprintf(f, ", no auto rollback");
	else
		fprintf(f, ", auto rollback");
	fclose(f);
	free(pauses);
	return out;
}

/* "0 done, 1 running, 2 pending" (the first BATCHES_SHOWN); caller
 * frees. */
static char *batches_text(json_t *ro)
{
	json_t *batches = json_object_get(ro, "batches"), *b;
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		abort(); /* out of memory */
	json_array_foreach(batches, i, b) {
		char *state;

		if (i == BATCHES_SHOWN) {
			fprintf(f, ", and %zu more", json_array_size(batches) - i);
			break;
		}
		state = cli_text(json_object_get(b, "state"));
		fprintf(f, "%s%" JSON_INTEGER_FORMAT " %s", i ? ", " : "",
			json_integer_value(json_object_get(b, "index")), state);
		free(state);
	}
	if (i == 0)
		fprintf(f, "none (no target takes part)");
	fclose(f);
	return out;
}

static void print_rollout(json_t *ro)
{
	static const struct cli_field fields[] = {
		{"ID", "id"},
		{"Cluster", "cluster"},
		{"From", "from"},
		{"To", "to"},
		{"State", "_state"},
		{"Prepared", "_prepared"},
		{"Progress", "_progress"},
		{"Batches", "_batches"},
		{"Strategy", "_strategy"},
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
	/* derived lines, for people only */
	progress = progress_text(&s);
	json_object_set_new(ro, "_progress", json_string(progress));
	free(progress);
	progress = state_text(&s);
	json_object_set_new(ro, "_state", json_string(progress));
	free(progress);
	if (is(s.state, "pending_approval")) {
		progress = xasprintf("%zu/%zu targets staged the new release", s.prepared,
				     s.targets);
		json_object_set_new(ro, "_prepared", json_string(progress));
		free(progress);
	}
	progress = batches_text(ro);
	json_object_set_new(ro, "_batches", json_string(progress));
	free(progress);
	progress = strategy_text(json_object_get(ro, "strategy"));
	json_object_set_new(ro, "_strategy", json_string(progress));
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

void cli_rollout_created(struct cli *cli, json_t *ro)
{
	char *id = cli_text(json_object_get(ro, "id"));
	char *cluster = cli_text(json_object_get(ro, "cluster"));
	char *from = cli_text(json_object_get(ro, "from"));
	char *to = cli_text(json_object_get(ro, "to"));
	struct summary s;

	summarize(ro, &s);
	cli_done(cli, ro,
		 "created rollout %s of cluster %s: %s -> %s, %s; %zu target%s staging it, in %zu "
		 "batch%s\n"
		 "approve it with: tender rollout approve %s",
		 id, cluster, from, to, s.state, s.targets, s.targets == 1 ? "" : "s", s.batches,
		 s.batches == 1 ? "" : "es", id);
	free(id);
	free(cluster);
	free(from);
	free(to);
}

static int rollout_create(struct cli *cli, const struct cli_args *a)
{
	const char *cluster = cli_arg(a, "cluster"), *to = cli_arg(a, "to");
	json_t *body = NULL, *config = NULL, *strategy = NULL, *answer = NULL;
	struct tn_error err;
	int rc;

	if (!cluster)
		return cli_usage(a, "--cluster is required");
	if (!to && !cli_flag(a, "config"))
		return cli_usage(a, "give --to NAME@VER, --config FILE, or both");
	if (to) {
		char *name = NULL, *version = NULL;

		if (cli_parse_ref(to, &name, &version, &err) != 0)
			return cli_usage(a, "--to: %s", err.message);
		free(name);
		free(version);
	}
	if (cli_parse_strategy(a, &strategy, &err) != 0)
		return cli_usage(a, "%s", err.message);
	if ((rc = cli_json_option(a, "config", &config)))
		goto out;
	body = json_pack("{s:s}", "cluster", cluster);
	if (to)
		json_object_set_new(body, "distribution", json_string(to));
	if (config)
		json_object_set(body, "config", config);
	if (json_object_size(strategy))
		json_object_set(body, "strategy", strategy);
	if ((rc = cli_api(cli, "POST", "/api/v1/rollouts", body, &answer)))
		goto out;
	cli_rollout_created(cli, answer);
out:
	json_decref(body);
	json_decref(config);
	json_decref(strategy);
	json_decref(answer);
	return rc;
}

/* POST /api/v1/rollouts/ID/action. */
static int rollout_action(struct cli *cli, const struct cli_args *a, const char *action,
			  const char *done)
{
	char *fmt = xasprintf("/api/v1/rollouts/%%s/%s", action);
	char *path = cli_path(fmt, cli_pos(a, 0));
	json_t *answer = NULL;
	int rc;

	rc = cli_api(cli, "POST", path, NULL, &answer);
	if (rc == CLI_EXIT_OK) {
		struct summary s;
		char *state, *progress;

		summarize(answer, &s);
		state = state_text(&s);
		progress = progress_text(&s);
		cli_done(cli, answer, "%s rollout %s: now %s; %s", done, cli_pos(a, 0), state,
			 progress);
		free(state);
		free(progress);
	}
	json_decref(answer);
	free(fmt);
	free(path);
	return rc;
}

static int rollout_approve(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "approve", "approved");
}

static int rollout_pause(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "pause", "paused");
}

static int rollout_resume(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "resume", "resumed");
}

static int rollout_abort(struct cli *cli, const struct cli_args *a)
{
	return rollout_action(cli, a, "abort", "aborted");
}

static void pause_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

/* Polls the rollout until it ends (a paused one is watched on: it waits
 * for someone); *out is its last state (caller decrefs). */
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
		char *line, *progress, *state;

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
		state = state_text(&s);
		line = xasprintf("%s: %s, %s", id, state, progress);
		if (bar.on) {
			char *detail = xasprintf("%zu/%zu targets  batch %zu/%zu  %s", targets_done(&s),
						 s.targets, s.batches_done, s.batches, state);

			cli_progress_update(&bar, (double)targets_done(&s), (double)s.targets,
					    detail);
			free(detail);
		} else if (!last_line || strcmp(line, last_line) != 0) {
			cli_eprintf("%s\n", line);
		}
		free(progress);
		free(state);
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
		if (!is(s.state, "succeeded")) {
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
	{"config", 0, "FILE", "new cluster config: a JSON object per bundle name (- is stdin)"},
	CLI_STRATEGY_OPTIONS,
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
	{"create", rollout_create, "--cluster CLUSTER [--to NAME@VER] [--config FILE]", 0, 0,
	 create_options, "move a cluster to a new distribution or config (pending approval)",
	 "Give --to, --config or both: --config replaces the cluster's config, and\n"
	 "without --to the cluster keeps its distribution.  Every target stages the new\n"
	 "release at once; nothing switches before `tender rollout approve`.  Then the\n"
	 "targets switch batch by batch: an optional canary batch first (--canary), then\n"
	 "batches of --batch targets (5) or of a share of them (25%).  The rollout waits\n"
	 "for approval after each batch of --pause-after (by default after the canary,\n"
	 "when there is one).  --failure-threshold failed targets halt it, and every\n"
	 "target it switched goes back, unless --no-auto-rollback.  --health-timeout is\n"
	 "seconds or a duration (90, 90s, 2m; by default the largest bundle deadline_s\n"
	 "+ 30 s).  A bad value is a usage error (exit 2).",
	 0},
	{"approve", rollout_approve, "ID", 1, 1, NULL,
	 "approve a rollout pending approval or paused: it goes on", NULL, 0},
	{"show", rollout_show, "ID", 1, 1, show_options, "show a rollout, or --watch it",
	 "Shows its state (what a pending or paused rollout waits for), how many targets\n"
	 "staged the new release while it waits for approval, its batches and their\n"
	 "states, its strategy and a line per target.\n"
	 "\n"
	 "With --watch, polls the rollout until it ends, with a progress bar of the\n"
	 "targets done when stderr is a terminal and a line per change otherwise (on\n"
	 "stderr), then shows it; exits 0 when it succeeded and 1 when it failed, rolled\n"
	 "back or was aborted.  A paused rollout is watched on (it waits for someone to\n"
	 "approve or resume it).  Reverted and skipped targets count as done.",
	 0},
	{"ls", rollout_ls, "", 0, 0, ls_options, "list rollouts, newest first", NULL, 0},
	{"pause", rollout_pause, "ID", 1, 1, NULL,
	 "pause a running rollout: the targets switching now finish, nothing new starts",
	 NULL, 0},
	{"resume", rollout_resume, "ID", 1, 1, NULL, "resume a paused rollout (as approve does)",
	 NULL, 0},
	{"abort", rollout_abort, "ID", 1, 1, NULL,
	 "abort a rollout: the targets it switched go back, the others never switch", NULL, 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
