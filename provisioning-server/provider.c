/* provider.c - the set of configured providers: the table of provider ops
 * chosen by name, the --provider arguments parsed into settings, the list
 * GET /api/v1/providers shows, and running a provider's helper commands
 * (iproute2) without a shell. */
#include "provider.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

/* Every provider this server knows, by name. */
static const struct tn_provider_ops *const known[] = {
    &tn_provider_local_ops,
    &tn_provider_netns_ops,
};
#define N_KNOWN (sizeof known / sizeof known[0])

#define RUN_OUTPUT_MAX (64u << 10)
#define SETTINGS_MAX 32

struct tn_providers {
	struct tn_provider *p[N_KNOWN];
	size_t n;
};

static const struct tn_provider_ops *ops_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < N_KNOWN; i++)
		if (strlen(known[i]->name) == len && strncmp(known[i]->name, name, len) == 0)
			return known[i];
	return NULL;
}

static bool key_known(const struct tn_provider_ops *ops, const char *key)
{
	for (size_t i = 0; ops->keys && ops->keys[i]; i++)
		if (strcmp(ops->keys[i], key) == 0)
			return true;
	return false;
}

static char *known_keys(const struct tn_provider_ops *ops)
{
	char *s = xstrdup("");

	for (size_t i = 0; ops->keys && ops->keys[i]; i++) {
		char *t = xasprintf("%s%s%s", s, i ? ", " : "", ops->keys[i]);

		free(s);
		s = t;
	}
	return s;
}

/* "key=value,key=value" into settings. */
static int parse_settings(const struct tn_provider_ops *ops, const char *arg, const char *text,
			  json_t *settings, struct tn_error *err)
{
	const char *p = text;
	size_t count = 0;

	while (*p) {
		const char *comma = strchrnul(p, ',');
		const char *eq = memchr(p, '=', (size_t)(comma - p));
		char *key, *keys;
		int rc;

		if (!eq || eq == p)
			return tn_fail(err, TN_E_INVALID,
				       "--provider \"%s\": \"%.*s\" is not key=value", arg,
				       (int)(comma - p), p);
		if (++count > SETTINGS_MAX)
			return tn_fail(err, TN_E_INVALID, "--provider \"%s\": too many settings",
				       arg);
		key = xstrndup(p, (size_t)(eq - p));
		if (!key_known(ops, key)) {
			keys = known_keys(ops);
			rc = tn_fail(err, TN_E_INVALID,
				     "--provider \"%s\": %s has no setting \"%s\" (it has: %s)",
				     arg, ops->name, key, keys);
			free(keys);
			free(key);
			return rc;
		}
		if (json_object_get(settings, key)) {
			rc = tn_fail(err, TN_E_INVALID, "--provider \"%s\": \"%s\" is set twice",
				     arg, key);
			free(key);
			return rc;
		}
		json_object_set_new(settings, key, json_stringn(eq + 1, (size_t)(comma - eq - 1)));
		free(key);
		p = *comma ? comma + 1 : comma;
	}
	return 0;
}

static struct tn_provider *provider_new(const struct tn_provider_ops *ops)
{
	struct tn_provider *p = xcalloc(1, sizeof *p);

	p->ops = ops;
	p->settings = json_object();
	p->available = true;
	return p;
}

static void provider_free(struct tn_provider *p)
{
	if (!p)
		return;
	json_decref(p->settings);
	free(p);
}

int tn_providers_new(const char *const *specs, size_t n, struct tn_providers **out,
		     struct tn_error *err)
{
	struct tn_providers *ps = xcalloc(1, sizeof *ps);
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		const char *arg = specs[i];
		const char *colon = strchrnul(arg, ':');
		const struct tn_provider_ops *ops = ops_by_name(arg, (size_t)(colon - arg));
		struct tn_provider *p;

		if (!ops) {
			rc = tn_fail(err, TN_E_INVALID,
				     "--provider \"%s\": unknown provider \"%.*s\" (known: local, "
				     "netns)",
				     arg, (int)(colon - arg), arg);
			goto out;
		}
		if (tn_providers_find(ps, ops->name)) {
			rc = tn_fail(err, TN_E_INVALID, "--provider %s: given twice", ops->name);
			goto out;
		}
		p = provider_new(ops);
		ps->p[ps->n++] = p;
		if (*colon && (rc = parse_settings(ops, arg, colon + 1, p->settings, err)))
			goto out;
	}
	if (!tn_providers_find(ps, TN_PROVIDER_DEFAULT)) {
		/* the embedded default: always there, listed first */
		memmove(&ps->p[1], &ps->p[0], ps->n * sizeof ps->p[0]);
		ps->p[0] = provider_new(&tn_provider_local_ops);
		ps->n++;
	}
out:
	if (rc) {
		for (size_t i = 0; i < ps->n; i++)
			provider_free(ps->p[i]);
		free(ps);
		ps = NULL;
	}
	*out = ps;
	return rc;
}

int tn_providers_open(struct tn_providers *ps, const struct tn_provider_env *env,
		      struct tn_error *err)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct tn_provider *p = ps->p[i];
		int rc = p->ops->open(p, env, err);

		if (rc != 0) /* the ones opened so far are closed by tn_providers_free */
			return rc;
		if (p->available)
			tn_log(TN_LOG_INFO, "provider", "ready", "{s:s}", "provider", p->ops->name);
		else
			tn_log(TN_LOG_WARN, "provider", "unavailable", "{s:s, s:s}", "provider",
			       p->ops->name, "reason", p->reason);
	}
	return 0;
}

void tn_providers_free(struct tn_providers *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->p[i]->priv && ps->p[i]->ops->close)
			ps->p[i]->ops->close(ps->p[i]);
		provider_free(ps->p[i]);
	}
	free(ps);
}

struct tn_provider *tn_providers_find(struct tn_providers *ps, const char *name)
{
	for (size_t i = 0; ps && i < ps->n; i++)
		if (strcmp(ps->p[i]->ops->name, name) == 0)
			return ps->p[i];
	return NULL;
}

int tn_providers_get(struct tn_providers *ps, const char *name, struct tn_provider **out,
		     struct tn_error *err)
{
	struct tn_provider *p = tn_providers_find(ps, name);

	if (!p) {
		char *names = xstrdup("");
		int rc;

		for (size_t i = 0; ps && i < ps->n; i++) {
			char *t = xasprintf("%s%s%s", names, i ? ", " : "", ps->p[i]->ops->name);

			free(names);
			names = t;
		}
		rc = tn_fail(err, TN_E_INVALID,
			     "provider: \"%s\" is not configured on this server (configured: %s)",
			     name, names);
		free(names);
		return rc;
	}
	if (!p->available)
		return tn_fail(err, TN_E_UNAVAILABLE, "provider %s is unavailable: %s", name,
			       p->reason);
	*out = p;
	return 0;
}

static bool is_secret(const struct tn_provider *p, const char *key)
{
	for (size_t i = 0; p->ops->secrets && p->ops->secrets[i]; i++)
		if (strcmp(p->ops->secrets[i], key) == 0)
			return true;
	return false;
}

json_t *tn_providers_list(struct tn_providers *ps)
{
	json_t *items = json_array();

	for (size_t i = 0; ps && i < ps->n; i++) {
		struct tn_provider *p = ps->p[i];
		json_t *settings = json_object();
		const char *key;
		json_t *value;

		json_object_foreach(p->settings, key, value)
		{
			json_object_set_new(settings, key,
					    is_secret(p, key) ? json_string("(hidden)")
							      : json_incref(value));
		}
		json_array_append_new(items, json_pack("{s:s, s:b, s:s?, s:o}", "name",
						       p->ops->name, "available", p->available,
						       "reason", p->available ? NULL : p->reason,
						       "settings", settings));
	}
	return json_pack("{s:o, s:n}", "items", items, "next");
}

const char *tn_provider_setting(const struct tn_provider *p, const char *key)
{
	return json_string_value(json_object_get(p->settings, key));
}

/* ------------------------------------------------------------ commands */

static char *argv_text(const char *const *argv)
{
	char *s = xstrdup("");

	for (size_t i = 0; argv[i]; i++) {
		char *t = xasprintf("%s%s%s", s, i ? " " : "", argv[i]);

		free(s);
		s = t;
	}
	return s;
}

int tn_provider_run(const char *const *argv, char **output, struct tn_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *buf = xmalloc(RUN_OUTPUT_MAX + 1);
	size_t len = 0;
	int fds[2] = {-1, -1};
	pid_t pid = -1;
	int status = 0, rc = 0, e;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		free(buf);
		return tn_fail_errno(err, errno, "pipe");
	}
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawnattr_init(&attr);
	/* the server blocks SIGTERM and ignores SIGPIPE: not its helpers */
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	e = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(fds[1]);
	if (e != 0) {
		char *cmd = argv_text(argv);

		rc = tn_fail(err, TN_E_IO, "%s: cannot run it: %s", cmd, strerror(e));
		free(cmd);
		goto out;
	}
	/* Bounded: the helper's output is capped, the rest is read and dropped. */
	for (;;) {
		char drop[4096];
		char *to = len < RUN_OUTPUT_MAX ? buf + len : drop;
		size_t room = len < RUN_OUTPUT_MAX ? RUN_OUTPUT_MAX - len : sizeof drop;
		ssize_t n = read(fds[0], to, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (to != drop)
			len += (size_t)n;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[len] = '\0';
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *cmd = argv_text(argv);

		rc = tn_fail(err, TN_E_IO, "%s: %s", cmd,
			     len		 ? buf
			     : WIFEXITED(status) ? "failed with no output"
						 : "killed by a signal");
		free(cmd);
	}
out:
	close(fds[0]);
	if (output) {
		*output = buf;
		buf = NULL;
	}
	free(buf);
	return rc;
}
