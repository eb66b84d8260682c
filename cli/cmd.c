/* cmd.c - helpers the command files share (see cmd.h). */
#include "cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xalloc.h"

int cli_usage(const struct cli_args *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vmessage(stderr, "tender: ", fmt, ap);
	va_end(ap);
	if (a->cmd && a->cmd->verb)
		cli_eprintf("Try 'tender %s %s --help'.\n", a->noun, a->cmd->verb);
	else if (a->noun)
		cli_eprintf("Try 'tender %s --help'.\n", a->noun);
	else
		cli_eprintf("Try 'tender --help'.\n");
	return CLI_EXIT_USAGE;
}

int cli_list(struct cli *cli, const struct cli_args *a, const char *path, const char *after,
	     const struct cli_column *columns)
{
	const char *limit_text = cli_arg(a, "limit");
	struct tn_error err;
	json_t *list = NULL;
	long limit = 0;
	int rc;

	if (limit_text && cli_parse_long(limit_text, "--limit", 1, 1000000000L, &limit, &err) != 0)
		return cli_usage(a, "%s", err.message);
	rc = cli_api_list(cli, path, after, limit, NULL, &list);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (cli->json)
		cli_print_json(list);
	else
		cli_print_table(json_object_get(list, "items"), columns);
	json_decref(list);
	return CLI_EXIT_OK;
}

int cli_ref_path(const struct cli_args *a, const char *ref, const char *fmt, char **path)
{
	char *name = NULL, *version = NULL;
	struct tn_error err;

	if (cli_parse_ref(ref, &name, &version, &err) != 0)
		return cli_usage(a, "%s", err.message);
	*path = cli_path(fmt, name, version);
	free(name);
	free(version);
	return CLI_EXIT_OK;
}

void cli_done(struct cli *cli, json_t *answer, const char *fmt, ...)
{
	va_list ap;

	if (cli->json) {
		if (answer)
			cli_print_json(answer);
		return;
	}
	va_start(ap, fmt);
	cli_vmessage(stdout, "", fmt, ap);
	va_end(ap);
}

int cli_json_option(const struct cli_args *a, const char *option, json_t **out)
{
	const char *file = cli_arg(a, option);
	struct tn_error err;
	char *what;
	int rc;

	*out = NULL;
	if (!file)
		return CLI_EXIT_OK;
	what = xasprintf("--%s", option);
	rc = cli_read_json_file(file, what, out, &err);
	free(what);
	return rc ? cli_usage(a, "%s", err.message) : CLI_EXIT_OK;
}

char *cli_short_sha(json_t *item)
{
	const char *sha = json_string_value(json_object_get(item, "sha256"));
	json_t *part;
	char *out;

	if (!sha)
		return xstrdup("-");
	part = json_stringn(sha, strnlen(sha, 12));
	out = cli_text(part);
	json_decref(part);
	return out;
}

int cli_upload_file(struct cli *cli, const struct cli_args *a, const char *path, const char *file,
		    const char *content_type, long *status, json_t **out)
{
	struct cli_body body = {.content_type = content_type};
	const char *base = strrchr(file, '/');
	struct stat st;
	FILE *f;
	int rc;

	*out = NULL;
	f = fopen(file, "rb");
	if (!f)
		return cli_usage(a, "cannot open %s: %s", file, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return cli_usage(a, "%s is not a regular file", file);
	}
	body.file = f;
	body.file_size = (uint64_t)st.st_size;
	body.label = base ? base + 1 : file;
	rc = cli_api_do(cli, "POST", path, &body, 0, NULL, status, out);
	fclose(f);
	return rc;
}
