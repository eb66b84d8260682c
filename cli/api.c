/* api.c - requests as the commands make them, and the exit status each
 * answer earns (see api.h). */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "xalloc.h"

/* The largest page asked for (the server's cap), and a bound on pages. */
#define PAGE_MAX 1000
#define PAGES_MAX 100000

struct cli_http *cli_api_http(struct cli *cli)
{
	if (!cli->http)
		cli->http = cli_http_new(cli->server, cli->token, cli->cacert);
	return cli->http;
}

/* The "error" object of an answer, when it is one. */
static const char *error_field(json_t *answer, const char *key)
{
	return json_string_value(json_object_get(json_object_get(answer, "error"), key));
}

/* Whether a refusal says that the route itself is missing, as opposed to
 * an object it names: a 405, or the router's 404 "no such resource". */
static bool route_missing(long status, json_t *answer)
{
	const char *message = error_field(answer, "message");

	if (status == 405)
		return true;
	return status == 404 && (!message || strncmp(message, "no such resource", 16) == 0);
}

static void print_refusal(struct cli *cli, const char *method, const char *path, long status,
			  const struct cli_response *r, json_t *answer)
{
	const char *message = error_field(answer, "message");

	if (message) {
		char *shown = cli_text(cli_json_at(answer, "error.message"));

		cli_error("%s", shown);
		free(shown);
	} else {
		json_t *body = json_stringn(r->body, r->len < 200 ? r->len : 200);
		char *shown = cli_text(body);

		cli_error("HTTP %ld on %s %s%s%s", status, method, path, r->len ? ": " : "",
			  r->len ? shown : "");
		json_decref(body);
		free(shown);
	}
	if (status == 401 && !cli->token)
		cli_eprintf("(no token was given: use --token, TENDER_TOKEN, or `token = ...` in "
			    "~/.config/tender/config)\n");
}

int cli_api_do(struct cli *cli, const char *method, const char *path, const struct cli_body *body,
	       unsigned flags, const char *what, long *status, json_t **out)
{
	struct cli_response r;
	struct tn_error err;
	json_t *answer = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (cli_http_request(cli_api_http(cli), method, path, body, &r, &err) != 0) {
		cli_error("%s", err.message);
		rc = CLI_EXIT_UNREACHABLE;
		goto out;
	}
	if (status)
		*status = r.status;
	if (r.len)
		answer = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, NULL);
	if (r.status >= 200 && r.status < 300) {
		if (r.len && !answer) {
			cli_error("%s %s: the server's answer is not JSON", method, path);
			rc = CLI_EXIT_REFUSED;
			goto out;
		}
		if (out) {
			*out = answer;
			answer = NULL;
		}
		rc = CLI_EXIT_OK;
		goto out;
	}
	if ((flags & CLI_API_NEWER) && route_missing(r.status, answer))
		cli_error("this server does not support %s yet (HTTP %ld on %s %s)", what, r.status,
			  method, path);
	else
		print_refusal(cli, method, path, r.status, &r, answer);
	rc = CLI_EXIT_REFUSED;
out:
	json_decref(answer);
	cli_response_free(&r);
	return rc;
}

static int with_json(struct cli *cli, const char *method, const char *path, json_t *body,
		     unsigned flags, const char *what, json_t **out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct cli_body b = {.content_type = "application/json", .data = text,
			     .len = text ? strlen(text) : 0};
	int rc = cli_api_do(cli, method, path, text ? &b : NULL, flags, what, NULL, out);

	free(text);
	return rc;
}

int cli_api(struct cli *cli, const char *method, const char *path, json_t *body, json_t **out)
{
	return with_json(cli, method, path, body, 0, NULL, out);
}

int cli_api_newer(struct cli *cli, const char *what, const char *method, const char *path,
		  json_t *body, json_t **out)
{
	return with_json(cli, method, path, body, CLI_API_NEWER, what, out);
}

int cli_api_list(struct cli *cli, const char *path, const char *after, long limit,
		 const char *newer, json_t **out)
{
	json_t *all = json_array(), *next = json_null();
	char *cursor = after ? xstrdup(after) : NULL;
	int rc = CLI_EXIT_OK;

	*out = NULL;
	for (int page = 0; page < PAGES_MAX; page++) {
		long want = limit > 0 ? limit - (long)json_array_size(all) : PAGE_MAX;
		char *p = xstrdup(path), count[24];
		json_t *answer = NULL, *items;
		const char *n;

		snprintf(count, sizeof count, "%ld", want < PAGE_MAX ? want : PAGE_MAX);
		cli_query(&p, "limit", count);
		cli_query(&p, "after", cursor);
		rc = cli_api_do(cli, "GET", p, NULL, newer ? CLI_API_NEWER : 0, newer, NULL,
				&answer);
		free(p);
		if (rc != CLI_EXIT_OK)
			goto out;
		items = json_object_get(answer, "items");
		if (!json_is_array(items)) {
			cli_error("GET %s: the answer is not a list", path);
			json_decref(answer);
			rc = CLI_EXIT_REFUSED;
			goto out;
		}
		json_array_extend(all, items);
		n = json_string_value(json_object_get(answer, "next"));
		json_decref(next);
		next = n ? json_string(n) : json_null();
		/* a cursor that does not move would loop forever */
		if (!n || json_array_size(items) == 0 || (cursor && strcmp(cursor, n) == 0) ||
		    (limit > 0 && (long)json_array_size(all) >= limit)) {
			json_decref(answer);
			break;
		}
		free(cursor);
		cursor = xstrdup(n);
		json_decref(answer);
	}
	*out = json_pack("{s:O, s:O}", "items", all, "next", next);
out:
	json_decref(all);
	json_decref(next);
	free(cursor);
	return rc;
}

char *cli_path(const char *fmt, ...)
{
	char *out = NULL;
	size_t len = 0;
	va_list ap;
	FILE *f = open_memstream(&out, &len);

	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			char *escaped = cli_url_escape(va_arg(ap, const char *));

			fputs(escaped, f);
			free(escaped);
			p++;
		} else {
			fputc(*p, f);
		}
	}
	va_end(ap);
	fclose(f);
	return out;
}

void cli_query(char **path, const char *key, const char *value)
{
	char *escaped, *joined;

	if (!value)
		return;
	escaped = cli_url_escape(value);
	joined = xasprintf("%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', key, escaped);
	free(escaped);
	free(*path);
	*path = joined;
}
