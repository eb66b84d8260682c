/* cmd_events.c - `tender events [--follow]`: the audit log, listed, or read
 * live from the server-sent event stream (GET /api/v1/events/stream) and
 * printed one line per event until interrupted. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

/* A line of the stream longer than this is not one the server sends. */
#define SSE_LINE_MAX ((size_t)1 << 20)
/* The server sends a comment every 15 s: four missed, the link is gone. */
#define STREAM_IDLE_S 60

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static char *object_column(json_t *e)
{
	char *type = cli_text(json_object_get(e, "object_type"));
	char *id = cli_text(json_object_get(e, "object_id"));
	char *out = xasprintf("%s/%s", type, id);

	free(type);
	free(id);
	return out;
}

static const struct cli_column columns[] = {
	{"ID", "id", NULL},	      {"AT", "at", NULL},
	{"ACTOR", "actor", NULL},     {"ACTION", "action", NULL},
	{"OBJECT", NULL, object_column}, {"OUTCOME", "outcome", NULL},
	{NULL, NULL, NULL},
};

/* Reading the stream: the line being assembled and the event's data. */
struct sse {
	struct cli *cli;
	char *line;
	size_t len;
	char *data; /* the data: lines of the current event, joined by '\n' */
	size_t data_len;
	bool too_long;
	unsigned long printed;
};

/* One event on one line: JSON under --output json, else fixed columns
 * (the table's, though the widths cannot be known ahead). */
static void print_event(struct sse *s, json_t *e)
{
	if (s->cli->json) {
		cli_print_json_line(e);
	} else {
		char *cells[6];

		for (size_t i = 0; i < 6; i++)
			cells[i] = columns[i].format
					   ? columns[i].format(e)
					   : cli_text(json_object_get(e, columns[i].path));
		cli_printf("%-6s  %-20s  %-12s  %-24s  %-28s  %s\n", cells[0], cells[1], cells[2],
			   cells[3], cells[4], cells[5]);
		for (size_t i = 0; i < 6; i++)
			free(cells[i]);
		fflush(stdout);
	}
	s->printed++;
}

static void dispatch(struct sse *s)
{
	json_t *e;

	if (!s->data_len)
		return;
	e = json_loadb(s->data, s->data_len, 0, NULL);
	if (json_is_object(e))
		print_event(s, e);
	else
		cli_warn("an event that is not a JSON object was skipped");
	json_decref(e);
	s->data_len = 0;
}

/* One complete line of the stream (without its end of line). */
static void sse_line(struct sse *s, const char *line, size_t len)
{
	if (len == 0) {
		dispatch(s);
		return;
	}
	if (line[0] == ':')
		return; /* a comment: keep-alive */
	if (len >= 5 && memcmp(line, "data:", 5) == 0) {
		const char *v = line + 5;
		size_t n = len - 5;

		if (n && *v == ' ')
			v++, n--;
		if (s->data_len + n + 1 > SSE_LINE_MAX) {
			s->too_long = true;
			return;
		}
		s->data = xrealloc(s->data, s->data_len + n + 2);
		if (s->data_len)
			s->data[s->data_len++] = '\n';
		memcpy(s->data + s->data_len, v, n);
		s->data_len += n;
	}
	/* id: and event: are in the data too; other fields are ignored */
}

static bool on_chunk(const char *p, size_t n, void *ctx)
{
	struct sse *s = ctx;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			size_t len = s->len;

			if (len && s->line[len - 1] == '\r')
				len--;
			sse_line(s, s->line, len);
			s->len = 0;
			continue;
		}
		if (s->len + 1 >= SSE_LINE_MAX) {
			s->too_long = true;
			return false;
		}
		s->line = xrealloc(s->line, s->len + 2);
		s->line[s->len++] = p[i];
	}
	return !s->too_long;
}

static int follow(struct cli *cli, const struct cli_args *a)
{
	struct sse s = {.cli = cli};
	struct sigaction sa = {.sa_handler = on_signal};
	char *path = xstrdup("/api/v1/events/stream");
	struct cli_response r = {0};
	struct tn_error err;
	json_t *answer = NULL;
	int rc;

	cli_query(&path, "after", cli_arg(a, "after"));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	cli_http_set_stop(cli_api_http(cli), &interrupted);
	if (!cli->json)
		cli_printf("%-6s  %-20s  %-12s  %-24s  %-28s  %s\n", "ID", "AT", "ACTOR", "ACTION",
			   "OBJECT", "OUTCOME");
	fflush(stdout);
	if (cli_http_stream(cli_api_http(cli), path, NULL, on_chunk, &s, STREAM_IDLE_S, &r,
			    &err) != 0) {
		cli_error("%s", err.message);
		rc = CLI_EXIT_UNREACHABLE;
		goto out;
	}
	if (r.status >= 400) {
		answer = json_loadb(r.body, r.len, 0, NULL);
		if (json_string_value(cli_json_at(answer, "error.message"))) {
			char *m = cli_text(cli_json_at(answer, "error.message"));

			cli_error("%s", m);
			free(m);
		} else {
			cli_error("HTTP %ld on GET %s", r.status, path);
		}
		rc = CLI_EXIT_REFUSED;
		goto out;
	}
	if (s.too_long) {
		cli_error("the event stream sent a line longer than %zu bytes", SSE_LINE_MAX);
		rc = CLI_EXIT_REFUSED;
		goto out;
	}
	if (r.stopped || interrupted) {
		rc = CLI_EXIT_OK;
		goto out;
	}
	/* the server ended it: stopping, or the token was revoked */
	cli_error("the server ended the event stream after %lu events", s.printed);
	rc = CLI_EXIT_REFUSED;
out:
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	cli_http_set_stop(cli_api_http(cli), NULL);
	json_decref(answer);
	cli_response_free(&r);
	free(s.line);
	free(s.data);
	free(path);
	return rc;
}

static int events(struct cli *cli, const struct cli_args *a)
{
	const char *after = cli_arg(a, "after");
	struct tn_error err;
	long id;

	if (after && cli_parse_long(after, "--after", 0, 0x7fffffffffffffffL, &id, &err) != 0)
		return cli_usage(a, "%s", err.message);
	if (cli_flag(a, "follow")) {
		if (cli_flag(a, "limit"))
			return cli_usage(a, "--limit does not go with --follow");
		return follow(cli, a);
	}
	return cli_list(cli, a, "/api/v1/events", after, columns);
}

static const struct cli_option options[] = {
	{"follow", 'f', NULL, "print events as they happen, until interrupted"},
	{"after", 0, "ID", "only the events after this one"},
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_events_commands[] = {
	{NULL, events, "", 0, 0, options, "the audit log: who did what, when, to what",
	 "Lists the audit log, oldest first.  With --follow, reads the server's event stream\n"
	 "and prints each new event on one line (a JSON object per line with --output json)\n"
	 "until interrupted (Ctrl-C: exit 0); a stream the server ends is exit 1.",
	 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
