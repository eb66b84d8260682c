/* cmd_token.c - API tokens (`tender token create|ls|revoke`, admin) and
 * `tender enroll-command`, which makes an enrollment token and prints the
 * one command that installs and enrolls an agent on an existing machine. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "xalloc.h"

/* Reads --ttl into body's ttl_s; a usage error's status, or 0. */
static int ttl_option(const struct cli_args *a, json_t *body)
{
	const char *ttl = cli_arg(a, "ttl");
	struct tn_error err;
	long long seconds;

	if (!ttl)
		return CLI_EXIT_OK;
	if (cli_parse_duration(ttl, &seconds, &err) != 0)
		return cli_usage(a, "--ttl: %s", err.message);
	json_object_set_new(body, "ttl_s", json_integer(seconds));
	return CLI_EXIT_OK;
}

static int token_create(struct cli *cli, const struct cli_args *a)
{
	const char *role = cli_arg(a, "role");
	json_t *body = NULL, *answer = NULL;
	char *secret = NULL, *expires = NULL;
	int rc;

	if (!role)
		return cli_usage(a, "--role is required (viewer, developer, operator or admin)");
	body = json_pack("{s:s, s:s}", "name", cli_pos(a, 0), "role", role);
	if ((rc = ttl_option(a, body)) ||
	    (rc = cli_api(cli, "POST", "/api/v1/tokens", body, &answer)))
		goto out;
	if (cli->json) {
		cli_print_json(answer);
		goto out;
	}
	secret = cli_text(json_object_get(answer, "token"));
	expires = cli_text(json_object_get(answer, "expires"));
	/* the secret alone on stdout, so that $(tender token create ...) is it */
	cli_eprintf("token %s (%s), expires %s; the secret is shown this once:\n", cli_pos(a, 0),
		    role, strcmp(expires, "-") ? expires : "never");
	cli_printf("%s\n", secret);
out:
	if (secret)
		explicit_bzero(secret, strlen(secret));
	free(secret);
	free(expires);
	json_decref(body);
	json_decref(answer);
	return rc;
}

static int token_ls(struct cli *cli, const struct cli_args *a)
{
	static const struct cli_column columns[] = {
		{"NAME", "name", NULL},       {"ROLE", "role", NULL},
		{"EXPIRES", "expires", NULL}, {"CREATED", "created", NULL},
		{"BY", "created_by", NULL},   {"REVOKED", "revoked_at", NULL},
		{NULL, NULL, NULL},
	};

	return cli_list(cli, a, "/api/v1/tokens", NULL, columns);
}

static int token_revoke(struct cli *cli, const struct cli_args *a)
{
	char *path = cli_path("/api/v1/tokens/%s", cli_pos(a, 0));
	int rc;

	if ((rc = cli_api(cli, "DELETE", path, NULL, NULL)) == CLI_EXIT_OK)
		cli_done(cli, NULL, "revoked token %s", cli_pos(a, 0));
	free(path);
	return rc;
}

/* s as one shell word: as is when it holds only safe characters, else in
 * single quotes.  Caller frees. */
static char *shell_word(const char *s)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_@%+=:,./-";
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (*s && strspn(s, safe) == strlen(s))
		return xstrdup(s);
	f = open_memstream(&out, &len);
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
	fclose(f);
	return out;
}

static int enroll_command(struct cli *cli, const struct cli_args *a)
{
	const char *cluster = cli_arg(a, "cluster"), *uses = cli_arg(a, "uses");
	json_t *body = NULL, *answer = NULL, *token;
	char *url = NULL, *script = NULL, *secret = NULL, *command = NULL;
	struct tn_error err;
	long n = 1;
	int rc;

	if (!cluster)
		return cli_usage(a, "--cluster is required");
	if (uses && cli_parse_long(uses, "--uses", 1, 100000, &n, &err) != 0)
		return cli_usage(a, "%s", err.message);
	body = json_pack("{s:s, s:I}", "cluster", cluster, "uses", (json_int_t)n);
	if ((rc = ttl_option(a, body)) ||
	    (rc = cli_api(cli, "POST", "/api/v1/enrollment-tokens", body, &answer)))
		goto out;
	token = json_object_get(answer, "token");
	if (!json_is_string(token)) {
		cli_error("the server's answer has no enrollment token");
		rc = CLI_EXIT_REFUSED;
		goto out;
	}
	url = shell_word(cli->server);
	script = xasprintf("%s/install.sh", cli->server);
	{
		char *quoted_script = shell_word(script);

		secret = shell_word(json_string_value(token));
		command = xasprintf("curl -fsSL %s | sh -s -- --server %s --token %s",
				    quoted_script, url, secret);
		free(quoted_script);
	}
	if (cli->json) {
		json_object_set_new(answer, "command", json_string(command));
		cli_print_json(answer);
	} else {
		char *expires = cli_text(json_object_get(answer, "expires"));

		cli_eprintf("# enrolls up to %ld machine%s into cluster %s, until %s; run it as "
			    "root on each:\n",
			    n, n == 1 ? "" : "s", cluster, expires);
		cli_printf("%s\n", command);
		free(expires);
	}
out:
	if (secret)
		explicit_bzero(secret, strlen(secret));
	if (command)
		explicit_bzero(command, strlen(command));
	free(url);
	free(script);
	free(secret);
	free(command);
	json_decref(body);
	json_decref(answer);
	return rc;
}

static const struct cli_option create_options[] = {
	{"role", 'r', "ROLE", "viewer, developer, operator or admin (required)"},
	{"ttl", 0, "DURATION", "expires after this long (30d, 12h, 3600...; default never)"},
	{NULL, 0, NULL, NULL},
};

static const struct cli_option ls_options[] = {
	CLI_LIMIT_OPTION,
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_token_commands[] = {
	{"create", token_create, "NAME", 1, 1, create_options, "create an API token (admin)",
	 "Prints the secret, once, alone on stdout (the rest goes to stderr).", 0},
	{"ls", token_ls, "", 0, 0, ls_options, "list API tokens (never their secrets)", NULL, 0},
	{"revoke", token_revoke, "NAME", 1, 1, NULL, "revoke an API token", NULL, 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};

static const struct cli_option enroll_options[] = {
	{"cluster", 'c', "CLUSTER", "the cluster the machines join (required)"},
	{"uses", 'n', "N", "how many machines may enroll with it (default 1)"},
	{"ttl", 0, "DURATION", "how long it is good for (default 1d)"},
	{NULL, 0, NULL, NULL},
};

const struct cli_command cli_enroll_commands[] = {
	{NULL, enroll_command, "--cluster CLUSTER", 0, 0, enroll_options,
	 "print the command that installs and enrolls an agent on a machine",
	 "Makes an enrollment token (POST /api/v1/enrollment-tokens) and prints, alone on\n"
	 "stdout, the one command to run as root on an existing machine:\n"
	 "\n"
	 "  curl -fsSL SERVER/install.sh | sh -s -- --server SERVER --token TOKEN\n"
	 "\n"
	 "The machine fetches the install script and the agent from the server: that needs\n"
	 "a server that serves /install.sh (one with providers, newer than today's).  With\n"
	 "an older server, install tender-agent by hand and give it --server and --token.",
	 0},
	{NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, 0},
};
