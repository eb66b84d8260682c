/* args.c - the command line of `tender`: one reader for every command,
 * driven by the commands' option tables (so that `--help` and the parser
 * can never disagree), and the value syntaxes of the options. */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "json.h"
#include "xalloc.h"

#define JSON_FILE_MAX (1u << 20)

const struct cli_option cli_global_options[] = {
	{"server", 0, "URL", "the server (else TENDER_URL, else `server` in the config file)"},
	{"token", 0, "TOKEN", "the API token (else TENDER_TOKEN, else `token` in the config file)"},
	{"cacert", 0, "FILE", "CA certificates that sign an https server's certificate"},
	{"output", 'o', "FORMAT", "`table` (the default, for people) or `json` (for scripts)"},
	{"help", 'h', NULL, "show help and exit"},
	{"version", 0, NULL, "show the version and exit"},
	{NULL, 0, NULL, NULL},
};

static void push(struct cli_values *vals, const char *v)
{
	vals->v = xrealloc(vals->v, (vals->n + 1) * sizeof *vals->v);
	vals->v[vals->n++] = v;
}

/* Stores a global option's value (v is NULL for a flag). */
static void set_global(struct cli_globals *g, const char *name, const char *v)
{
	if (strcmp(name, "server") == 0)
		g->server = v;
	else if (strcmp(name, "token") == 0)
		g->token = v;
	else if (strcmp(name, "cacert") == 0)
		g->cacert = v;
	else if (strcmp(name, "output") == 0)
		g->output = v;
	else if (strcmp(name, "help") == 0)
		g->help = true;
	else if (strcmp(name, "version") == 0)
		g->version = true;
}

/* Finds an option by long name (len bytes of name) or by letter in the
 * command's table first, then in the global one.  *global tells which. */
static const struct cli_option *find(const struct cli_option *options, const char *name,
				     size_t len, char letter, bool before_noun, bool *global,
				     size_t *index)
{
	const struct cli_option *tables[2] = {options, cli_global_options};

	for (size_t t = 0; t < 2; t++) {
		for (size_t i = 0; tables[t] && tables[t][i].name; i++) {
			const struct cli_option *o = &tables[t][i];

			/* --version is the program's before the noun, and free for
			 * commands after it (dist push --version V) */
			if (t == 1 && !before_noun && strcmp(o->name, "version") == 0)
				continue;
			bool hit = letter ? o->letter == letter
					  : strlen(o->name) == len &&
						memcmp(o->name, name, len) == 0;

			if (hit) {
				*global = t == 1;
				*index = i;
				return o;
			}
		}
	}
	return NULL;
}

int cli_args_parse(const struct cli_option *options, int argc, char **argv,
		   bool stop_at_positional, struct cli_args *out, struct cli_globals *g,
		   struct tn_error *err)
{
	bool options_end = false;
	size_t count = 0;
	int i;

	memset(out, 0, sizeof *out);
	out->options = options;
	while (options && options[count].name)
		count++;
	if (count > CLI_MAX_OPTIONS)
		return tn_fail(err, TN_E_INTERNAL, "a command with %zu options", count);
	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *value = NULL, *name;
		const struct cli_option *o;
		bool global = false;
		size_t index = 0, len;
		char letter = 0;

		if (options_end || arg[0] != '-' || arg[1] == '\0') {
			if (stop_at_positional)
				break;
			if (out->pos.n >= CLI_MAX_VALUES)
				return tn_fail(err, TN_E_INVALID, "too many arguments (at most %d)",
					       CLI_MAX_VALUES);
			push(&out->pos, arg);
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_end = true;
			continue;
		}
		if (arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');

			name = arg + 2;
			len = eq ? (size_t)(eq - name) : strlen(name);
			if (eq)
				value = eq + 1;
		} else {
			name = arg + 1;
			len = 1;
			letter = arg[1];
			if (arg[2])
				value = arg + 2;
		}
		o = find(options, name, len, letter, stop_at_positional, &global, &index);
		if (!o)
			return tn_fail(err, TN_E_INVALID, "unknown option %s%.*s",
				       letter ? "-" : "--", (int)len, name);
		if (!o->arg && value)
			return tn_fail(err, TN_E_INVALID, "option --%s takes no value", o->name);
		if (o->arg && !value) {
			if (i + 1 >= argc)
				return tn_fail(err, TN_E_INVALID, "option --%s needs a value (%s)",
					       o->name, o->arg);
			value = argv[++i];
		}
		if (global) {
			set_global(g, o->name, value);
			continue;
		}
		if (out->opt[index].n >= CLI_MAX_VALUES)
			return tn_fail(err, TN_E_INVALID, "option --%s given too many times",
				       o->name);
		push(&out->opt[index], value);
	}
	out->next = i;
	return 0;
}

void cli_args_free(struct cli_args *a)
{
	for (size_t i = 0; i < CLI_MAX_OPTIONS; i++)
		free(a->opt[i].v);
	free(a->pos.v);
	memset(a, 0, sizeof *a);
}

static const struct cli_values *values_of(const struct cli_args *a, const char *name)
{
	for (size_t i = 0; a->options && a->options[i].name; i++)
		if (strcmp(a->options[i].name, name) == 0)
			return &a->opt[i];
	/* a handler asking for an option its table does not have */
	fprintf(stderr, "tender: internal error: no option --%s\n", name);
	abort();
}

const char *cli_arg(const struct cli_args *a, const char *name)
{
	const struct cli_values *v = values_of(a, name);

	return v->n ? v->v[v->n - 1] : NULL;
}

bool cli_flag(const struct cli_args *a, const char *name)
{
	return values_of(a, name)->n > 0;
}

const char *const *cli_arg_all(const struct cli_args *a, const char *name, size_t *n)
{
	const struct cli_values *v = values_of(a, name);

	*n = v->n;
	return v->v;
}

const char *cli_pos(const struct cli_args *a, size_t i)
{
	return i < a->pos.n ? a->pos.v[i] : NULL;
}

/* ------------------------------------------------------------ values */

int cli_parse_long(const char *s, const char *what, long min, long max, long *out,
		   struct tn_error *err)
{
	struct tn_shown shown;
	char *end;
	long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtol(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID, "%s: \"%s\" is not a number from %ld to %ld", what,
		       tn_show(s, strlen(s), &shown), min, max);
}

int cli_parse_duration(const char *s, long long *seconds, struct tn_error *err)
{
	static const struct {
		char unit;
		long long seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	const long long max = 100LL * 366 * 86400;
	struct tn_shown shown;
	const char *p = s;
	long long total = 0;

	if (!*p)
		goto bad;
	/* bounded: each pass consumes at least one character */
	while (*p) {
		const char *start = p;
		long long n = 0, mult = 0;

		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (*p++ - '0');
			if (n > max)
				goto bad;
		}
		if (!*p && start == s) {
			mult = 1; /* a bare number: seconds */
		} else {
			for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
				if (*p == units[i].unit)
					mult = units[i].seconds;
			if (!mult)
				goto bad;
			p++;
		}
		total += n * mult;
		if (total > max)
			goto bad;
	}
	if (total < 1)
		goto bad;
	*seconds = total;
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID,
		       "duration \"%s\": write seconds, or a number with s, m, h, d or w "
		       "(\"90\", \"15m\", \"1h30m\", \"30d\"), from 1 s to 100 years",
		       tn_show(s, strlen(s), &shown));
}

int cli_parse_ref(const char *s, char **name, char **version, struct tn_error *err)
{
	const char *at = strrchr(s, '@');
	struct tn_shown shown;

	if (!at || at == s || !at[1])
		return tn_fail(err, TN_E_INVALID, "\"%s\" is not NAME@VERSION (as in educa@1.1)",
			       tn_show(s, strlen(s), &shown));
	*name = xstrndup(s, (size_t)(at - s));
	*version = xstrdup(at + 1);
	return 0;
}

int cli_parse_lb(const char *s, json_t **out, struct tn_error *err)
{
	static const char haproxy[] = "haproxy:";
	struct tn_shown shown;
	const char *admin, *colon;

	if (strcmp(s, "none") == 0) {
		*out = json_pack("{s:s}", "driver", "none");
		return 0;
	}
	if (strncmp(s, haproxy, sizeof haproxy - 1) != 0)
		goto bad;
	admin = s + sizeof haproxy - 1;
	colon = strrchr(admin, ':');
	if (!colon || colon == admin || !colon[1])
		goto bad;
	*out = json_pack("{s:s, s:s%, s:s}", "driver", "haproxy", "admin", admin,
			 (size_t)(colon - admin), "backend", colon + 1);
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID,
		       "--lb \"%s\": write none, or haproxy:ADDR:PORT:BACKEND, or "
		       "haproxy:unix:/PATH:BACKEND",
		       tn_show(s, strlen(s), &shown));
}

/* ------------------------------------------------------------ strategy */

/* The server's bounds (provisioning-server/rollout.c, strategy_resolve). */
#define STRATEGY_COUNT_MAX 100000L
#define STRATEGY_PAUSES_MAX 1000
#define STRATEGY_TIMEOUT_MAX 86400LL

/* "N" or "N%" with N in [min, max]; *percent says which was written. */
static int parse_share(const char *s, const char *what, long min, long max, long *out,
		       bool *percent, struct tn_error *err)
{
	size_t len = strlen(s);
	char digits[24];

	*percent = len > 1 && s[len - 1] == '%';
	if (*percent) {
		if (len - 1 >= sizeof digits)
			return cli_parse_long(s, what, min, max, out, err); /* fails */
		memcpy(digits, s, len - 1);
		digits[len - 1] = '\0';
		s = digits;
	}
	return cli_parse_long(s, what, min, max, out, err);
}

static int strategy_count(const struct cli_args *a, json_t *st, const char *option,
			  const char *key, struct tn_error *err)
{
	const char *v = cli_arg(a, option);
	char *what;
	long n;
	int rc;

	if (!v)
		return 0;
	what = xasprintf("--%s", option);
	rc = cli_parse_long(v, what, 1, STRATEGY_COUNT_MAX, &n, err);
	free(what);
	if (rc == 0)
		json_object_set_new(st, key, json_integer(n));
	return rc;
}

static int strategy_canary(const struct cli_args *a, json_t *st, struct tn_error *err)
{
	const char *v = cli_arg(a, "canary");
	struct tn_shown shown;
	bool percent;
	long n;

	if (!v)
		return 0;
	if (parse_share(v, "--canary", 0, 100, &n, &percent, err) != 0)
		return tn_fail(err, TN_E_INVALID,
			       "--canary: \"%s\" is not a share of the targets from 0%% to 100%% "
			       "(as in 10%%)",
			       tn_show(v, strlen(v), &shown));
	json_object_set_new(st, "canary_percent", json_integer(n));
	return 0;
}

static int strategy_batch(const struct cli_args *a, json_t *st, struct tn_error *err)
{
	const char *v = cli_arg(a, "batch");
	struct tn_shown shown;
	bool percent;
	long n;

	if (!v)
		return 0;
	if (parse_share(v, "--batch", 1, STRATEGY_COUNT_MAX, &n, &percent, err) != 0 ||
	    (percent && n > 100))
		return tn_fail(err, TN_E_INVALID,
			       "--batch: \"%s\" is neither a number of targets from 1 to %ld (as "
			       "in 5) nor a share of them from 1%% to 100%% (as in 25%%)",
			       tn_show(v, strlen(v), &shown), STRATEGY_COUNT_MAX);
	json_object_set_new(st, percent ? "batch_percent" : "batch_size", json_integer(n));
	return 0;
}

static int strategy_pauses(const struct cli_args *a, json_t *st, struct tn_error *err)
{
	const char *const *values;
	json_t *pauses = json_array();
	size_t n;
	int rc = 0;

	values = cli_arg_all(a, "pause-after", &n);
	/* bounded: n values of argv, each split at its commas */
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *p = values[i];

		for (;;) {
			size_t len = strcspn(p, ",");
			char *item = xstrndup(p, len);
			long index;

			rc = cli_parse_long(item, "--pause-after", 0, STRATEGY_COUNT_MAX, &index, err);
			free(item);
			if (rc) {
				struct tn_shown shown;

				rc = tn_fail(err, TN_E_INVALID,
					     "--pause-after: \"%s\" is not a list of batch indexes "
					     "from 0 to %ld (as in 0,2; 0 is the first batch)",
					     tn_show(values[i], strlen(values[i]), &shown),
					     STRATEGY_COUNT_MAX);
				break;
			}
			if (json_array_size(pauses) >= STRATEGY_PAUSES_MAX) {
				rc = tn_fail(err, TN_E_INVALID,
					     "--pause-after: more than %d batch indexes",
					     STRATEGY_PAUSES_MAX);
				break;
			}
			json_array_append_new(pauses, json_integer(index));
			if (!p[len])
				break;
			p += len + 1;
		}
	}
	if (rc == 0 && n)
		json_object_set(st, "pause_after", pauses);
	json_decref(pauses);
	return rc;
}

static int strategy_timeout(const struct cli_args *a, json_t *st, struct tn_error *err)
{
	const char *v = cli_arg(a, "health-timeout");
	struct tn_shown shown;
	long long seconds;

	if (!v)
		return 0;
	if (cli_parse_duration(v, &seconds, err) != 0 || seconds > STRATEGY_TIMEOUT_MAX)
		return tn_fail(err, TN_E_INVALID,
			       "--health-timeout: \"%s\" is not seconds or a duration from 1 s to "
			       "a day (as in 90, 90s, 2m)",
			       tn_show(v, strlen(v), &shown));
	json_object_set_new(st, "health_timeout_s", json_integer(seconds));
	return 0;
}

int cli_parse_strategy(const struct cli_args *a, json_t **out, struct tn_error *err)
{
	json_t *st = json_object();
	int rc;

	*out = NULL;
	if ((rc = strategy_canary(a, st, err)) || (rc = strategy_batch(a, st, err)) ||
	    (rc = strategy_pauses(a, st, err)) ||
	    (rc = strategy_count(a, st, "max-unavailable", "max_unavailable", err)) ||
	    (rc = strategy_timeout(a, st, err)) ||
	    (rc = strategy_count(a, st, "failure-threshold", "failure_threshold", err))) {
		json_decref(st);
		return rc;
	}
	if (cli_flag(a, "no-auto-rollback"))
		json_object_set_new(st, "auto_rollback", json_false());
	*out = st;
	return 0;
}

int cli_read_json_file(const char *path, const char *what, json_t **out, struct tn_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (strcmp(path, "-") == 0) {
		/* stdin: read up to the cap, one byte more to notice a longer one */
		size_t cap = JSON_FILE_MAX + 1;
		ssize_t n;

		text = xmalloc(cap);
		while (len < cap && (n = read(STDIN_FILENO, text + len, cap - len)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = tn_fail_errno(err, errno, "%s: reading stdin", what);
				goto out;
			}
			len += (size_t)n;
		}
		if (len > JSON_FILE_MAX) {
			rc = tn_fail(err, TN_E_TOO_LARGE, "%s: stdin holds more than %u bytes",
				     what, JSON_FILE_MAX);
			goto out;
		}
	} else if ((rc = tn_read_file(path, JSON_FILE_MAX, &text, &len, err)) != 0) {
		rc = tn_error_prefix(err, "%s", what);
		goto out;
	}
	if ((rc = tn_json_parse_object(text, len, out, err)) != 0)
		rc = tn_error_prefix(err, "%s %s", what, path);
out:
	free(text);
	return rc;
}
