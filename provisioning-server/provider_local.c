/* provider_local.c - the embedded default provider: a node is a
 * tender-agent process on this host, detached from the server, with its
 * own state directory (DATA/nodes/<target id>/state) and its own block of
 * ports.  No root needed.  The instance is "<target id>:<port base>"; the
 * node's record (node.json: port block, agent pid and start time) lives in
 * its directory, so a restarted server keeps track of the nodes it
 * started.
 *
 * Settings: ports=LOW-HIGH (the range blocks of BLOCK ports are taken
 * from; default 20000-29999), agent=PATH (default: tender-agent beside
 * tender-server), grace_s=N (SIGTERM to SIGKILL at terminate; default 10). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "node.h"
#include "provider.h"
#include "xalloc.h"

/* {{target.port_base}} .. +9; the agent-check port is the last. */
#define BLOCK 10
#define BLOCKS_MAX 6553

struct local {
	char *data_dir;
	char *agent;
	char *cacert; /* passed on as --cacert, or NULL */
	unsigned low, high;
	unsigned grace_ms;
};

static const char *const keys[] = {"ports", "agent", "grace_s", NULL};

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_ports(const char *s, unsigned *low, unsigned *high, struct tn_error *err)
{
	const char *dash = strchr(s, '-');
	char *a;
	int bad;

	if (!dash)
		goto bad;
	a = xstrndup(s, (size_t)(dash - s));
	bad = parse_uint(a, 1024, 65535, low) || parse_uint(dash + 1, 1024, 65535, high);
	free(a);
	if (bad || *high < *low + BLOCK - 1)
		goto bad;
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID,
		       "local: ports=\"%s\": expected LOW-HIGH, two ports from 1024 to 65535 at "
		       "least %d apart",
		       s, BLOCK - 1);
}

static int local_open(struct tn_provider *p, const struct tn_provider_env *env,
		      struct tn_error *err)
{
	struct local *l = xcalloc(1, sizeof *l);
	const char *ports = tn_provider_setting(p, "ports");
	const char *agent = tn_provider_setting(p, "agent");
	const char *grace = tn_provider_setting(p, "grace_s");
	unsigned grace_s = 10;
	int rc;

	p->priv = l;
	l->data_dir = xstrdup(env->data_dir);
	if (!ports)
		json_object_set_new(p->settings, "ports", json_string(ports = "20000-29999"));
	if ((rc = parse_ports(ports, &l->low, &l->high, err)))
		return rc;
	if (grace && parse_uint(grace, 1, 3600, &grace_s))
		return tn_fail(err, TN_E_INVALID, "local: grace_s=\"%s\": expected 1 to 3600",
			       grace);
	l->grace_ms = grace_s * 1000;
	l->agent = xstrdup(agent ? agent : env->agent_path);
	l->cacert = env->agent_cacert ? xstrdup(env->agent_cacert) : NULL;
	if (!agent)
		json_object_set_new(p->settings, "agent", json_string(l->agent));
	/* A missing agent is a boot failure, named then: the provider stays
	 * listed, and the agent may be installed later. */
	if (access(l->agent, X_OK) != 0)
		tn_log(TN_LOG_WARN, "provider", "agent_missing", "{s:s, s:s, s:s}", "provider",
		       "local", "agent", l->agent, "message", strerror(errno));
	return 0;
}

static void local_close(struct tn_provider *p)
{
	struct local *l = p->priv;

	free(l->data_dir);
	free(l->agent);
	free(l->cacert);
	free(l);
	p->priv = NULL;
}

/* ------------------------------------------------------------ port blocks */

struct used {
	bool *taken; /* by block index */
	unsigned low, nblocks;
};

static void note_used(void *ctx, const char *id, json_t *rec)
{
	struct used *u = ctx;
	json_int_t base = json_integer_value(json_object_get(rec, "port_base"));

	(void)id;
	if (base >= u->low && (base - u->low) % BLOCK == 0 && (base - u->low) / BLOCK < u->nblocks)
		u->taken[(base - u->low) / BLOCK] = true;
}

/* Whether nothing on this host listens on port (a bind test: cheap, and
 * enough to step over ports some other program holds). */
static bool port_free(unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

static bool block_free(unsigned base)
{
	for (unsigned i = 0; i < BLOCK; i++)
		if (!port_free(base + i))
			return false;
	return true;
}

/* The lowest block of the range that no node of ours has and nobody
 * listens on. */
static int take_block(struct local *l, unsigned *base, struct tn_error *err)
{
	struct used u = {.low = l->low, .nblocks = (l->high - l->low + 1) / BLOCK};
	bool found = false;

	if (u.nblocks > BLOCKS_MAX)
		u.nblocks = BLOCKS_MAX;
	u.taken = xcalloc(u.nblocks, sizeof *u.taken);
	tn_node_each(l->data_dir, note_used, &u);
	for (unsigned i = 0; i < u.nblocks && !found; i++)
		if (!u.taken[i] && block_free(l->low + i * BLOCK)) {
			*base = l->low + i * BLOCK;
			found = true;
		}
	free(u.taken);
	if (!found)
		return tn_fail(err, TN_E_UNAVAILABLE,
			       "local: no free block of %d ports left in %u-%u (see ports=)", BLOCK,
			       l->low, l->high);
	return 0;
}

/* ------------------------------------------------------------ nodes */

/* "t-...:PORT" → the target id (caller frees). */
static int split_instance(const char *instance, char **id, struct tn_error *err)
{
	const char *colon = strrchr(instance, ':');

	*id = colon ? xstrndup(instance, (size_t)(colon - instance)) : NULL;
	if (!*id || !tn_node_id_valid(*id)) {
		free(*id);
		*id = NULL;
		return tn_fail(err, TN_E_INVALID, "local: \"%s\" is not a local instance",
			       instance);
	}
	return 0;
}

/* Ends what runs in dir and removes it. */
static int teardown(struct local *l, const char *dir, struct tn_error *err)
{
	json_t *rec = NULL;
	pid_t pid = 0;
	uint64_t start = 0;
	int rc;

	if (tn_node_record_read(dir, &rec, NULL) == 0) {
		pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
		start = (uint64_t)json_integer_value(json_object_get(rec, "start_time"));
	}
	json_decref(rec);
	if (access(dir, F_OK) != 0)
		return 0;
	if ((rc = tn_node_kill(dir, pid, start, NULL, l->grace_ms, err)))
		return rc;
	return tn_remove_tree(dir, err);
}

static int local_boot(struct tn_provider *p, const struct tn_boot_spec *spec,
		      struct tn_instance *out, struct tn_error *err)
{
	struct local *l = p->priv;
	char *dir = NULL, *state = NULL, *base_s = NULL, *token_file = NULL;
	json_t *rec = NULL;
	unsigned base = 0;
	pid_t pid = 0;
	uint64_t start = 0;
	bool made = false;
	int rc;

	if ((rc = tn_node_boot_check("local", l->agent, spec->target_id, err)))
		return rc;
	dir = tn_node_dir(l->data_dir, spec->target_id);
	state = xasprintf("%s/state", dir);
	/* A boot of this target that was cut short (a server crash) left its
	 * node: it goes first, so the target has one node only. */
	if ((rc = teardown(l, dir, err)) || (rc = take_block(l, &base, err)) ||
	    (rc = tn_mkdir_p(state, 0700, err)))
		goto out;
	made = true;
	base_s = xasprintf("%u", base);
	/* The record before the process: a crash in between leaves a record
	 * whose pid is 0, which teardown and the sweep handle. */
	rec = json_pack("{s:s, s:s, s:i, s:s, s:i, s:I}", "provider", "local", "target",
			spec->target_id, "port_base", (int)base, "address", "127.0.0.1", "pid", 0,
			"start_time", (json_int_t)0);
	if ((rc = tn_node_record_write(dir, rec, err)) ||
	    (rc = tn_node_token_write(dir, spec->enroll_token, &token_file, err)))
		goto out;
	{
		const char *argv[] = {l->agent,		  "--state",	    state,
				      "--server",	  spec->server_url, "--enroll-token-file",
				      token_file,	  "--port-base",    base_s,
				      "--address",	  "127.0.0.1",
				      /* the argv ends at the first NULL: no CA, no option */
				      l->cacert ? "--cacert" : NULL, l->cacert, NULL};

		if ((rc = tn_node_spawn(dir, argv, &pid, &start, err)))
			goto out;
	}
	json_object_set_new(rec, "pid", json_integer(pid));
	json_object_set_new(rec, "start_time", json_integer((json_int_t)start));
	if ((rc = tn_node_record_write(dir, rec, err)))
		goto out;
	out->id = xasprintf("%s:%u", spec->target_id, base);
	out->address = xstrdup("127.0.0.1");
	tn_log(TN_LOG_INFO, "provider", "booted", "{s:s, s:s, s:i, s:i}", "provider", "local",
	       "target", spec->target_id, "port_base", (int)base, "pid", (int)pid);
out:
	if (rc && made) {
		struct tn_error e2;

		if (teardown(l, dir, &e2) != 0)
			tn_log(TN_LOG_WARN, "provider", "cleanup_failed", "{s:s, s:s}", "provider",
			       "local", "message", e2.message);
	}
	json_decref(rec);
	free(token_file);
	free(base_s);
	free(state);
	free(dir);
	return rc;
}

static int local_terminate(struct tn_provider *p, const char *instance, struct tn_error *err)
{
	struct local *l = p->priv;
	char *id = NULL, *dir = NULL;
	int rc;

	if ((rc = split_instance(instance, &id, err)))
		return rc;
	dir = tn_node_dir(l->data_dir, id);
	rc = teardown(l, dir, err);
	if (rc == 0)
		tn_log(TN_LOG_INFO, "provider", "terminated", "{s:s, s:s}", "provider", "local",
		       "instance", instance);
	free(dir);
	free(id);
	return rc;
}

static int local_status(struct tn_provider *p, const char *instance, struct tn_instance_status *out,
			struct tn_error *err)
{
	struct local *l = p->priv;
	char *id = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = split_instance(instance, &id, err)))
		return rc;
	tn_node_status(l->data_dir, id, out);
	free(id);
	return 0;
}

const struct tn_provider_ops tn_provider_local_ops = {
    .name = "local",
    .keys = keys,
    .secrets = NULL,
    .open = local_open,
    .close = local_close,
    .boot = local_boot,
    .terminate = local_terminate,
    .status = local_status,
};
