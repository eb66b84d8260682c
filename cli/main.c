/* main.c - `tender`, the command-line client of Tender: global options, where
 * the server and token come from (flags > environment > config file), help,
 * and dispatch through the table of nouns and their verbs (cli.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "cmd.h"
#include "config.h"
#include "fsutil.h"
#include "http.h"
#include "output.h"
#include "xalloc.h"

#define CONFIG_MAX (64u << 10)

const struct cli_noun cli_nouns[] = {
	{"bundle", "bundle archives: the versioned parts of an application", cli_bundle_commands},
	{"dist", "distributions: named, versioned sets of bundles", cli_dist_commands},
	{"cluster", "clusters: targets that run one release line", cli_cluster_commands},
	{"target", "targets: the nodes, one agent each", cli_target_commands},
	{"rollout", "rollouts: moving a cluster to a new revision", cli_rollout_commands},
	{"events", "the audit log", cli_events_commands},
	{"webhook", "URLs the server posts events to", cli_webhook_commands},
	{"token", "API tokens", cli_token_commands},
	{"enroll-command", "enroll an existing machine", cli_enroll_commands},
	{NULL, NULL, NULL},
};

/* ------------------------------------------------------------ help */

static void print_option(const struct cli_option *o)
{
	char left[64], letter[8] = "    ";

	if (o->letter)
		snprintf(letter, sizeof letter, "-%c, ", o->letter);
	snprintf(left, sizeof left, "%s--%s%s%s", letter, o->name, o->arg ? " " : "",
		 o->arg ? o->arg : "");
	cli_printf("  %-26s %s\n", left, o->help);
}

static void print_main_help(void)
{
	cli_printf("Usage: tender [OPTIONS] NOUN VERB [ARGUMENTS] [OPTIONS]\n"
		   "\n"
		   "The command-line client of Tender: bundles, distributions, clusters, targets\n"
		   "and rollouts on a tender-server.\n"
		   "\n"
		   "Commands:\n");
	for (const struct cli_noun *n = cli_nouns; n->name; n++) {
		for (const struct cli_command *c = n->commands; c->run; c++) {
			char left[64];

			snprintf(left, sizeof left, "%s%s%s", n->name, c->verb ? " " : "",
				 c->verb ? c->verb : "");
			cli_printf("  %-22s %s\n", left, c->summary);
		}
	}
	cli_printf("\n"
		   "Commands that \"need a newer server\" call endpoints today's server does not\n"
		   "have yet: they send their request anyway and, when the server answers that\n"
		   "it has no such endpoint, say so and exit 1.  They work once the server does.\n"
		   "\n"
		   "Options, anywhere on the line (--version: before the command):\n");
	for (const struct cli_option *o = cli_global_options; o->name; o++)
		print_option(o);
	cli_printf(
	    "\n"
	    "The server and token come from --server and --token, else TENDER_URL and\n"
	    "TENDER_TOKEN, else the lines `server = URL` and `token = TOKEN` (and `cacert =\n"
	    "FILE`) of ~/.config/tender/config (or $TENDER_CONFIG), which should be mode 600.\n"
	    "\n"
	    "Output: aligned tables for people; --output json prints the server's JSON as\n"
	    "is (a list: every page in one {\"items\": [...]}).  Progress bars are drawn on\n"
	    "stderr when it is a terminal.\n"
	    "\n"
	    "Exit status: 0 done; 1 the server refused (its message is printed); 2 usage\n"
	    "error; 3 the server cannot be reached.\n"
	    "\n"
	    "`tender NOUN --help` and `tender NOUN VERB --help` say more.\n");
}

static void print_noun_help(const struct cli_noun *n)
{
	cli_printf("Usage: tender %s VERB [ARGUMENTS] [OPTIONS]\n\n%s: %s\n\nVerbs:\n", n->name,
		   n->name, n->summary);
	for (const struct cli_command *c = n->commands; c->run; c++)
		cli_printf("  %-10s %s\n", c->verb, c->summary);
	cli_printf("\n`tender %s VERB --help` says more.\n", n->name);
}

static void print_command_help(const struct cli_noun *n, const struct cli_command *c)
{
	cli_printf("Usage: tender %s%s%s%s%s [OPTIONS]\n\n%c%s.\n", n->name, c->verb ? " " : "",
		   c->verb ? c->verb : "", *c->synopsis ? " " : "", c->synopsis,
		   toupper((unsigned char)c->summary[0]), c->summary + 1);
	if (c->help)
		cli_printf("\n%s\n", c->help);
	if (c->flags & CLI_NEEDS_NEWER)
		cli_printf("\nNeeds a newer server: on one without this endpoint it exits 1 with\n"
			   "\"this server does not support %s%s%s yet\".\n",
			   n->name, c->verb ? " " : "", c->verb ? c->verb : "");
	if (c->options && c->options->name) {
		cli_printf("\nOptions:\n");
		for (const struct cli_option *o = c->options; o->name; o++)
			print_option(o);
	}
	cli_printf("\nGlobal options (see tender --help):\n");
	for (const struct cli_option *o = cli_global_options; o->name; o++)
		if (strcmp(o->name, "version") != 0)
			print_option(o);
}

/* ------------------------------------------------------------ configuration */

/* The config file's path (caller frees), or NULL when there is no home. */
static char *config_path(void)
{
	const char *explicit_path = getenv("TENDER_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (explicit_path && *explicit_path)
		return xstrdup(explicit_path);
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/tender/config", xdg);
	if (home && *home)
		return xasprintf("%s/.config/tender/config", home);
	return NULL;
}

struct file_config {
	char *server, *token, *cacert;
};

static void file_config_free(struct file_config *fc)
{
	if (fc->token)
		explicit_bzero(fc->token, strlen(fc->token));
	free(fc->server);
	free(fc->token);
	free(fc->cacert);
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* Reads `key = value` lines (server, token, cacert; '#' comments).  A
 * missing file is no error; anything unknown or repeated is. */
static int read_config(const char *path, struct file_config *fc, struct tn_error *err)
{
	char *text = NULL, *save = NULL, *line;
	struct tn_error rerr;
	struct stat st;
	size_t len = 0;
	unsigned lineno = 0;
	int rc = 0;

	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return tn_fail_errno(err, errno, "config file %s", path);
	}
	if ((rc = tn_read_file(path, CONFIG_MAX, &text, &len, &rerr)) != 0)
		return tn_fail(err, rerr.code, "config file: %s", rerr.message);
	if (memchr(text, '\0', len)) {
		rc = tn_fail(err, TN_E_INVALID, "config file %s is not text", path);
		goto out;
	}
	/* bounded by the file's size: each pass consumes a line */
	for (char *p = text; p; p = save) {
		char *eq, *key, *value, **slot = NULL;

		save = strchr(p, '\n');
		if (save)
			*save++ = '\0';
		line = trim(p);
		lineno++;
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			rc = tn_fail(err, TN_E_INVALID, "%s:%u: expected `key = value`", path,
				     lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (strcmp(key, "server") == 0)
			slot = &fc->server;
		else if (strcmp(key, "token") == 0)
			slot = &fc->token;
		else if (strcmp(key, "cacert") == 0)
			slot = &fc->cacert;
		if (!slot) {
			struct tn_shown shown;

			rc = tn_fail(err, TN_E_INVALID,
				     "%s:%u: unknown key \"%s\" (known: server, token, cacert)",
				     path, lineno, tn_show(key, strlen(key), &shown));
			goto out;
		}
		if (*slot) {
			rc = tn_fail(err, TN_E_INVALID, "%s:%u: %s is given twice", path, lineno,
				     key);
			goto out;
		}
		if (!*value) {
			rc = tn_fail(err, TN_E_INVALID, "%s:%u: %s has no value", path, lineno,
				     key);
			goto out;
		}
		*slot = xstrdup(value);
	}
	if (fc->token && (st.st_mode & (S_IRGRP | S_IROTH)))
		cli_warn("%s holds a token and is readable by others (mode %03o): chmod 600 %s",
			 path, (unsigned)(st.st_mode & 0777), path);
out:
	if (text) {
		explicit_bzero(text, len);
		free(text);
	}
	return rc;
}

static const char *first(const char *a, const char *b, const char *c)
{
	if (a && *a)
		return a;
	if (b && *b)
		return b;
	return c && *c ? c : NULL;
}

/* Sets cli's server, token and cacert: flags, else environment, else the
 * config file.  A usage error's exit status, or 0. */
static int configure(struct cli *cli, const struct cli_globals *g, const struct cli_args *a)
{
	struct file_config fc = {0};
	char *path = config_path();
	const char *server;
	struct tn_error err;
	size_t len;
	int rc = CLI_EXIT_OK;

	if (path && read_config(path, &fc, &err) != 0) {
		rc = cli_usage(a, "%s", err.message);
		goto out;
	}
	server = first(g->server, getenv("TENDER_URL"), fc.server);
	if (!server) {
		rc = cli_usage(a, "no server: give --server URL, set TENDER_URL, or write "
				  "`server = URL` in %s",
			       path ? path : "~/.config/tender/config");
		goto out;
	}
	if (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0) {
		struct tn_shown shown;

		rc = cli_usage(a, "server \"%s\" is not an http:// or https:// URL",
			       tn_show(server, strlen(server), &shown));
		goto out;
	}
	cli->server = xstrdup(server);
	len = strlen(cli->server);
	while (len > 8 && cli->server[len - 1] == '/')
		cli->server[--len] = '\0';
	if (first(g->token, getenv("TENDER_TOKEN"), fc.token))
		cli->token = xstrdup(first(g->token, getenv("TENDER_TOKEN"), fc.token));
	if (first(g->cacert, getenv("TENDER_CACERT"), fc.cacert))
		cli->cacert = xstrdup(first(g->cacert, getenv("TENDER_CACERT"), fc.cacert));
out:
	file_config_free(&fc);
	free(path);
	return rc;
}

/* ------------------------------------------------------------ dispatch */

static const struct cli_noun *find_noun(const char *name)
{
	for (const struct cli_noun *n = cli_nouns; n->name; n++)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static const struct cli_command *find_verb(const struct cli_noun *n, const char *verb)
{
	for (const struct cli_command *c = n->commands; c->run; c++)
		if (c->verb && verb && strcmp(c->verb, verb) == 0)
			return c;
	return NULL;
}

/* The noun's only command when it takes no verb (events, enroll-command). */
static const struct cli_command *verbless(const struct cli_noun *n)
{
	return n->commands[0].verb ? NULL : &n->commands[0];
}

/* Whether --help or -h comes before any "--" in argv. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

static char *verb_list(const struct cli_noun *n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	for (const struct cli_command *c = n->commands; c->run; c++)
		fprintf(f, "%s%s", c == n->commands ? "" : ", ", c->verb);
	fclose(f);
	return out;
}

/* `tender help [NOUN [VERB]]`. */
static int help_command(int argc, char **argv)
{
	const struct cli_noun *n = argc > 0 ? find_noun(argv[0]) : NULL;
	const struct cli_command *c;
	struct cli_args none = {0};

	if (argc == 0) {
		print_main_help();
		return CLI_EXIT_OK;
	}
	if (!n)
		return cli_usage(&none, "no command \"%s\"", argv[0]);
	c = verbless(n);
	if (!c && argc > 1 && !(c = find_verb(n, argv[1]))) {
		none.noun = n->name;
		return cli_usage(&none, "%s has no verb \"%s\"", n->name, argv[1]);
	}
	if (c)
		print_command_help(n, c);
	else
		print_noun_help(n);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	struct cli_globals g = {0};
	struct cli_args pre = {0}, args = {0};
	const struct cli_noun *noun;
	const struct cli_command *cmd;
	struct tn_error err;
	char **rest;
	int nrest, rc;

	/* the global options before the noun */
	if (cli_args_parse(NULL, argc - 1, argv + 1, true, &pre, &g, &err) != 0) {
		rc = cli_usage(&pre, "%s", err.message);
		goto out;
	}
	rest = argv + 1 + pre.next;
	nrest = argc - 1 - pre.next;
	if (g.version) {
		cli_printf("tender %s\n", PACKAGE_VERSION);
		rc = CLI_EXIT_OK;
		goto out;
	}
	if (nrest == 0) {
		if (g.help) {
			print_main_help();
			rc = CLI_EXIT_OK;
		} else {
			rc = cli_usage(&pre, "no command given");
		}
		goto out;
	}
	if (strcmp(rest[0], "help") == 0) {
		rc = help_command(nrest - 1, rest + 1);
		goto out;
	}
	noun = find_noun(rest[0]);
	if (!noun) {
		rc = cli_usage(&pre, "no command \"%s\"", rest[0]);
		goto out;
	}
	args.noun = noun->name;
	cmd = verbless(noun);
	if (cmd) {
		rest++, nrest--;
	} else {
		if (nrest < 2 || rest[1][0] == '-') {
			char *verbs = verb_list(noun);

			if (g.help || wants_help(nrest - 1, rest + 1)) {
				print_noun_help(noun);
				rc = CLI_EXIT_OK;
			} else {
				rc = cli_usage(&args, "tender %s needs a verb: %s", noun->name,
					       verbs);
			}
			free(verbs);
			goto out;
		}
		cmd = find_verb(noun, rest[1]);
		if (!cmd) {
			char *verbs = verb_list(noun);

			rc = cli_usage(&args, "%s has no verb \"%s\" (verbs: %s)", noun->name,
				       rest[1], verbs);
			free(verbs);
			goto out;
		}
		rest += 2, nrest -= 2;
	}
	if (g.help || wants_help(nrest, rest)) {
		print_command_help(noun, cmd);
		rc = CLI_EXIT_OK;
		goto out;
	}
	if (cli_args_parse(cmd->options, nrest, rest, false, &args, &g, &err) != 0) {
		args.noun = noun->name;
		args.cmd = cmd;
		rc = cli_usage(&args, "%s", err.message);
		goto out;
	}
	args.noun = noun->name;
	args.cmd = cmd;
	if (args.pos.n < cmd->min_args) {
		rc = cli_usage(&args, "missing argument: %s", cmd->synopsis);
		goto out;
	}
	if (args.pos.n > cmd->max_args) {
		rc = cli_usage(&args, "unexpected argument \"%s\"", args.pos.v[cmd->max_args]);
		goto out;
	}
	if (g.output && strcmp(g.output, "json") != 0 && strcmp(g.output, "table") != 0) {
		rc = cli_usage(&args, "--output is table or json, not \"%s\"", g.output);
		goto out;
	}
	cli.json = g.output && strcmp(g.output, "json") == 0;
	if ((rc = configure(&cli, &g, &args)))
		goto out;
	rc = cmd->run(&cli, &args);
out:
	cli_http_free(cli.http);
	free(cli.server);
	if (cli.token)
		explicit_bzero(cli.token, strlen(cli.token));
	free(cli.token);
	free(cli.cacert);
	cli_args_free(&pre);
	cli_args_free(&args);
	fflush(stdout);
	return rc;
}
