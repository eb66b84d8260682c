/* provider_netns.c - a node per Linux network namespace: several real
 * hosts on one machine, each with its own address and the same ports.
 * The provider makes a bridge (<prefix>-br, the subnet's first address);
 * each node gets a namespace (<prefix>-<target id>), a veth pair to the
 * bridge (<prefix>-v<slot> outside, eth0 inside), its own address, no
 * default route, and the agent started inside it (`ip netns exec`), which
 * reaches the server at the bridge's address.  Everything goes through
 * iproute2's `ip`, run without a shell.
 *
 * Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (probed at start: the provider is
 * listed unavailable with the reason when they are missing), and a server
 * that listens where the nodes can reach it (--listen 0.0.0.0:PORT or the
 * bridge's address).  Every name carries a per-server prefix (from the
 * data directory), and at start what an earlier run left behind with that
 * prefix, and no node record, is swept.
 *
 * Settings: subnet=A.B.C.D/LEN (default 10.213.0.0/24), prefix=NAME (1-8
 * of [a-z0-9]; default "tn" + 6 hex of the data directory's hash),
 * port_base=PORT (every node's {{target.port_base}}; default 8000),
 * agent=PATH, server=URL (the server as nodes reach it; default
 * http://<bridge address>:<port>), grace_s=N (default 10). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "node.h"
#include "provider.h"
#include "xalloc.h"

#define SLOTS_MAX 4096
#define PIDS_MAX 1024

struct netns {
	char *data_dir;
	char *agent;
	char *cacert; /* passed on as --cacert, or NULL */
	char *ip; /* iproute2's ip, found in PATH */
	char prefix[16];
	char bridge[24];
	uint32_t network; /* host order */
	unsigned len;	  /* prefix length */
	unsigned slots;	  /* host numbers 2 .. slots + 1 */
	unsigned port_base;
	char *server; /* server= or NULL */
	unsigned grace_ms;
};

static const char *const keys[] = {"subnet", "prefix",	"port_base", "agent",
				   "server", "grace_s", NULL};

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

static void addr_text(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(host_order)};

	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

static int parse_subnet(struct netns *n, const char *s, struct tn_error *err)
{
	const char *slash = strchr(s, '/');
	struct in_addr a;
	char *host;
	int ok;

	if (!slash)
		goto bad;
	host = xstrndup(s, (size_t)(slash - s));
	ok = inet_pton(AF_INET, host, &a) == 1;
	free(host);
	if (!ok || parse_uint(slash + 1, 16, 29, &n->len))
		goto bad;
	n->network = ntohl(a.s_addr) & ~((1u << (32 - n->len)) - 1);
	n->slots = (1u << (32 - n->len)) - 3; /* not the network, the bridge, the broadcast */
	if (n->slots > SLOTS_MAX)
		n->slots = SLOTS_MAX;
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID,
		       "netns: subnet=\"%s\": expected an IPv4 network A.B.C.D/LEN with LEN from "
		       "16 to 29",
		       s);
}

static bool prefix_valid(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > 8 || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9'))
			return false;
	return true;
}

/* argv[0] found in PATH, or NULL (caller frees). */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = xasprintf("%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	char *save = NULL, *found = NULL;

	for (char *dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char *cand;

		if (dir[0] != '/')
			continue;
		cand = xasprintf("%s/%s", dir, name);
		if (access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(copy);
	return found;
}

/* Runs `ip ARGS...` (NULL-terminated, at most 15). */
static int ip(struct netns *n, struct tn_error *err, ...)
{
	const char *argv[16] = {n->ip};
	size_t argc = 1;
	va_list ap;
	const char *a;

	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && argc < 15)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return tn_provider_run(argv, NULL, err);
}

static bool netns_exists(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "/run/netns/%s", name);
	return access(path, F_OK) == 0;
}

static bool link_exists(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

/* The processes inside namespace name, 0-terminated (caller frees). */
static pid_t *netns_pids(struct netns *n, const char *name)
{
	const char *argv[] = {n->ip, "netns", "pids", name, NULL};
	pid_t *pids = xcalloc(PIDS_MAX + 1, sizeof *pids);
	char *out = NULL, *save = NULL;
	size_t k = 0;

	if (netns_exists(name) && tn_provider_run(argv, &out, NULL) == 0)
		for (char *t = strtok_r(out, " \n", &save); t && k < PIDS_MAX;
		     t = strtok_r(NULL, " \n", &save)) {
			long pid = strtol(t, NULL, 10);

			if (pid > 1)
				pids[k++] = (pid_t)pid;
		}
	free(out);
	return pids;
}

/* ------------------------------------------------------------ records */

struct live {
	struct netns *n;
	bool *slot_taken; /* by slot index (host number - 2) */
	char **names;	  /* namespaces of live nodes */
	size_t nnames;
};

static void note_live(void *ctx, const char *id, json_t *rec)
{
	struct live *lv = ctx;
	const char *provider = json_string_value(json_object_get(rec, "provider"));
	const char *name = json_string_value(json_object_get(rec, "netns"));
	json_int_t slot = json_integer_value(json_object_get(rec, "slot"));

	(void)id;
	if (!provider || strcmp(provider, "netns") != 0 || !name)
		return;
	if (slot >= 2 && slot < (json_int_t)lv->n->slots + 2)
		lv->slot_taken[slot - 2] = true;
	lv->names = xrealloc(lv->names, (lv->nnames + 1) * sizeof *lv->names);
	lv->names[lv->nnames++] = xstrdup(name);
}

static void live_load(struct netns *n, struct live *lv)
{
	memset(lv, 0, sizeof *lv);
	lv->n = n;
	lv->slot_taken = xcalloc(n->slots, sizeof *lv->slot_taken);
	tn_node_each(n->data_dir, note_live, lv);
}

static void live_free(struct live *lv)
{
	for (size_t i = 0; i < lv->nnames; i++)
		free(lv->names[i]);
	free(lv->names);
	free(lv->slot_taken);
}

static bool live_has(const struct live *lv, const char *name)
{
	for (size_t i = 0; i < lv->nnames; i++)
		if (strcmp(lv->names[i], name) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------ sweep */

static void kill_pids(const pid_t *pids)
{
	for (size_t i = 0; pids[i]; i++)
		kill(pids[i], SIGKILL);
}

/* What an earlier run left with our prefix and no node record:
 * namespaces (and what runs in them) and veth links. */
static void sweep(struct netns *n)
{
	const char *list_ns[] = {n->ip, "netns", "list", NULL};
	const char *list_links[] = {n->ip, "-o", "link", "show", NULL};
	char *out = NULL, *save = NULL, *vpre = xasprintf("%s-v", n->prefix);
	size_t plen = strlen(n->prefix);
	struct live lv;
	struct tn_error err;

	live_load(n, &lv);
	if (tn_provider_run(list_ns, &out, NULL) == 0)
		for (char *line = strtok_r(out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			pid_t *pids;

			line[strcspn(line, " ")] = '\0';
			if (strncmp(line, n->prefix, plen) != 0 || line[plen] != '-' ||
			    live_has(&lv, line))
				continue;
			pids = netns_pids(n, line);
			kill_pids(pids);
			free(pids);
			if (ip(n, &err, "netns", "del", line, NULL) == 0)
				tn_log(TN_LOG_INFO, "provider", "swept", "{s:s, s:s}", "provider",
				       "netns", "netns", line);
			else
				tn_log(TN_LOG_WARN, "provider", "sweep_failed", "{s:s, s:s}",
				       "provider", "netns", "message", err.message);
		}
	free(out);
	out = NULL;
	if (tn_provider_run(list_links, &out, NULL) == 0)
		for (char *line = strtok_r(out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			/* "7: tnab12cd-v2@if2: <BROADCAST,..." */
			char *name = strchr(line, ' ');
			unsigned slot;

			if (!name)
				continue;
			name++;
			name[strcspn(name, ":@")] = '\0';
			if (strncmp(name, vpre, strlen(vpre)) != 0 ||
			    parse_uint(name + strlen(vpre), 2, n->slots + 1, &slot) ||
			    lv.slot_taken[slot - 2])
				continue;
			if (ip(n, &err, "link", "del", name, NULL) == 0)
				tn_log(TN_LOG_INFO, "provider", "swept", "{s:s, s:s}", "provider",
				       "netns", "link", name);
		}
	free(out);
	free(vpre);
	live_free(&lv);
}

static int bridge_up(struct netns *n, struct tn_error *err)
{
	char gw[INET_ADDRSTRLEN], *cidr;
	int rc;

	addr_text(n->network + 1, gw);
	cidr = xasprintf("%s/%u", gw, n->len);
	if (!link_exists(n->bridge) &&
	    (rc = ip(n, err, "link", "add", n->bridge, "type", "bridge", NULL)))
		goto out;
	if ((rc = ip(n, err, "addr", "replace", cidr, "dev", n->bridge, NULL)) ||
	    (rc = ip(n, err, "link", "set", n->bridge, "up", NULL)))
		goto out;
out:
	free(cidr);
	return rc;
}

/* ------------------------------------------------------------ open */

static bool loopback_only(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]", 5) == 0 ||
	       strncmp(listen, "localhost:", 10) == 0;
}

static void unavailable(struct tn_provider *p, const char *fmt, ...) TN_PRINTF(2, 3);

static void unavailable(struct tn_provider *p, const char *fmt, ...)
{
	va_list ap;

	p->available = false;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	va_end(ap);
}

static int netns_open(struct tn_provider *p, const struct tn_provider_env *env,
		      struct tn_error *err)
{
	struct netns *n = xcalloc(1, sizeof *n);
	const char *subnet = tn_provider_setting(p, "subnet");
	const char *prefix = tn_provider_setting(p, "prefix");
	const char *port = tn_provider_setting(p, "port_base");
	const char *agent = tn_provider_setting(p, "agent");
	const char *server = tn_provider_setting(p, "server");
	const char *grace = tn_provider_setting(p, "grace_s");
	unsigned grace_s = 10;
	char probe[32], gw[INET_ADDRSTRLEN];
	struct tn_error perr;
	int rc;

	p->priv = n;
	n->data_dir = xstrdup(env->data_dir);
	if (!subnet)
		json_object_set_new(p->settings, "subnet", json_string(subnet = "10.213.0.0/24"));
	if ((rc = parse_subnet(n, subnet, err)))
		return rc;
	if (prefix && !prefix_valid(prefix))
		return tn_fail(err, TN_E_INVALID,
			       "netns: prefix=\"%s\": expected 1 to 8 of [a-z0-9], starting with a "
			       "letter",
			       prefix);
	if (prefix) {
		snprintf(n->prefix, sizeof n->prefix, "%s", prefix);
	} else {
		char real[PATH_MAX], hash[TN_SHA256_HEX_LEN + 1];
		const char *d = realpath(env->data_dir, real) ? real : env->data_dir;

		tn_sha256_hex(d, strlen(d), hash);
		snprintf(n->prefix, sizeof n->prefix, "tn%.6s", hash);
		json_object_set_new(p->settings, "prefix", json_string(n->prefix));
	}
	snprintf(n->bridge, sizeof n->bridge, "%s-br", n->prefix);
	n->port_base = 8000;
	if (port && parse_uint(port, 1024, 65526, &n->port_base))
		return tn_fail(err, TN_E_INVALID, "netns: port_base=\"%s\": expected 1024 to 65526",
			       port);
	if (!port)
		json_object_set_new(p->settings, "port_base", json_sprintf("%u", n->port_base));
	if (grace && parse_uint(grace, 1, 3600, &grace_s))
		return tn_fail(err, TN_E_INVALID, "netns: grace_s=\"%s\": expected 1 to 3600",
			       grace);
	n->grace_ms = grace_s * 1000;
	if (server && strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0)
		return tn_fail(err, TN_E_INVALID, "netns: server=\"%s\": expected an http(s) URL",
			       server);
	n->server = server ? xstrdup(server) : NULL;
	n->agent = xstrdup(agent ? agent : env->agent_path);
	n->cacert = env->agent_cacert ? xstrdup(env->agent_cacert) : NULL;
	if (!agent)
		json_object_set_new(p->settings, "agent", json_string(n->agent));
	addr_text(n->network + 1, gw);
	json_object_set_new(p->settings, "bridge", json_sprintf("%s (%s)", n->bridge, gw));

	n->ip = which("ip");
	if (!n->ip) {
		unavailable(p, "%s", "iproute2's ip is not installed (apt-get install iproute2)");
		return 0;
	}
	/* The probe: a namespace made and removed, as every boot will. */
	snprintf(probe, sizeof probe, "%s-probe", n->prefix);
	if (netns_exists(probe))
		(void)ip(n, NULL, "netns", "del", probe, NULL);
	if (ip(n, &perr, "netns", "add", probe, NULL) != 0) {
		unavailable(p,
			    "network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN (run "
			    "tender-server as root, or grant both): %s",
			    perr.message);
		return 0;
	}
	if (ip(n, &perr, "netns", "del", probe, NULL) != 0) {
		unavailable(p, "cannot remove the probe namespace: %s", perr.message);
		return 0;
	}
	if (!n->server && loopback_only(env->listen)) {
		unavailable(p,
			    "tender-server listens on %s only, where nodes in namespaces cannot "
			    "reach it: start it with --listen 0.0.0.0:PORT (or %s:PORT), or set "
			    "server=URL",
			    env->listen, gw);
		return 0;
	}
	sweep(n);
	if (bridge_up(n, &perr) != 0) {
		unavailable(p, "cannot set up the bridge: %s", perr.message);
		return 0;
	}
	return 0;
}

static void netns_close(struct tn_provider *p)
{
	struct netns *n = p->priv;

	if (n->ip && p->available && link_exists(n->bridge)) {
		struct live lv;
		struct tn_error err;

		/* The bridge stays while nodes do: they outlive the server. */
		live_load(n, &lv);
		if (lv.nnames == 0 && ip(n, &err, "link", "del", n->bridge, NULL) != 0)
			tn_log(TN_LOG_WARN, "provider", "bridge_del_failed", "{s:s, s:s}",
			       "provider", "netns", "message", err.message);
		live_free(&lv);
	}
	free(n->data_dir);
	free(n->agent);
	free(n->cacert);
	free(n->ip);
	free(n->server);
	free(n);
	p->priv = NULL;
}

/* ------------------------------------------------------------ nodes */

/* "<prefix>-<target id>" → the target id (caller frees). */
static int instance_id(struct netns *n, const char *instance, char **id, struct tn_error *err)
{
	size_t plen = strlen(n->prefix);

	if (strncmp(instance, n->prefix, plen) != 0 || instance[plen] != '-' ||
	    !tn_node_id_valid(instance + plen + 1))
		return tn_fail(err, TN_E_INVALID, "netns: \"%s\" is not a namespace of this server",
			       instance);
	*id = xstrdup(instance + plen + 1);
	return 0;
}

/* Ends the node in dir (namespace name, its record if any) and removes it. */
static int teardown(struct netns *n, const char *dir, const char *name, struct tn_error *err)
{
	json_t *rec = NULL;
	pid_t pid = 0, *pids;
	uint64_t start = 0;
	json_int_t slot = 0;
	int rc;

	if (tn_node_record_read(dir, &rec, NULL) == 0) {
		pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
		start = (uint64_t)json_integer_value(json_object_get(rec, "start_time"));
		slot = json_integer_value(json_object_get(rec, "slot"));
	}
	json_decref(rec);
	pids = netns_pids(n, name);
	rc = access(dir, F_OK) == 0 || pids[0]
		 ? tn_node_kill(dir, pid, start, pids, n->grace_ms, err)
		 : 0;
	free(pids);
	if (rc)
		return rc;
	if (netns_exists(name) && (rc = ip(n, err, "netns", "del", name, NULL)))
		return rc;
	if (slot >= 2) {
		char link[32];

		snprintf(link, sizeof link, "%s-v%d", n->prefix, (int)slot);
		/* the namespace's end takes its veth along, but the kernel does
		 * that later: delete it now, so that the slot is free at once */
		if (link_exists(link) && ip(n, err, "link", "del", link, NULL) != 0 &&
		    link_exists(link))
			return -TN_E_IO;
	}
	return tn_remove_tree(dir, err);
}

static int netns_boot(struct tn_provider *p, const struct tn_boot_spec *spec,
		      struct tn_instance *out, struct tn_error *err)
{
	struct netns *n = p->priv;
	char *dir = NULL, *state = NULL, *name = NULL, *link = NULL, *cidr = NULL;
	char *server = NULL, *port_s = NULL, *token_file = NULL;
	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	json_t *rec = NULL;
	struct live lv = {0};
	unsigned slot = 0;
	pid_t pid = 0;
	uint64_t start = 0;
	bool made = false;
	int rc;

	if ((rc = tn_node_boot_check("netns", n->agent, spec->target_id, err)))
		return rc;
	dir = tn_node_dir(n->data_dir, spec->target_id);
	state = xasprintf("%s/state", dir);
	name = xasprintf("%s-%s", n->prefix, spec->target_id);
	if ((rc = teardown(n, dir, name, err)))
		goto out;
	live_load(n, &lv);
	for (unsigned i = 0; i < n->slots && !slot; i++)
		if (!lv.slot_taken[i])
			slot = i + 2;
	if (!slot) {
		rc = tn_fail(err, TN_E_UNAVAILABLE, "netns: every address of the subnet is taken");
		goto out;
	}
	addr_text(n->network + slot, addr);
	addr_text(n->network + 1, gw);
	link = xasprintf("%s-v%u", n->prefix, slot);
	cidr = xasprintf("%s/%u", addr, n->len);
	port_s = xasprintf("%u", n->port_base);
	server = n->server
		     ? xstrdup(n->server)
		     : xasprintf("%s://%s:%u",
				 strncmp(spec->server_url, "https:", 6) == 0 ? "https" : "http", gw,
				 (unsigned)spec->server_port);
	if ((rc = tn_mkdir_p(state, 0700, err)))
		goto out;
	made = true;
	rec = json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:I}", "provider", "netns", "target",
			spec->target_id, "netns", name, "slot", (int)slot, "address", addr,
			"port_base", (int)n->port_base, "pid", 0, "start_time", (json_int_t)0);
	if ((rc = tn_node_record_write(dir, rec, err)) ||
	    (rc = tn_node_token_write(dir, spec->enroll_token, &token_file, err)) ||
	    (rc = ip(n, err, "netns", "add", name, NULL)) ||
	    (rc = ip(n, err, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns",
		     name, NULL)) ||
	    (rc = ip(n, err, "link", "set", link, "master", n->bridge, "up", NULL)) ||
	    (rc = ip(n, err, "-n", name, "addr", "add", cidr, "dev", "eth0", NULL)) ||
	    (rc = ip(n, err, "-n", name, "link", "set", "eth0", "up", NULL)) ||
	    (rc = ip(n, err, "-n", name, "link", "set", "lo", "up", NULL)))
		goto out;
	{
		const char *argv[] = {n->ip,
				      "netns",
				      "exec",
				      name,
				      n->agent,
				      "--state",
				      state,
				      "--server",
				      server,
				      "--enroll-token-file",
				      token_file,
				      "--port-base",
				      port_s,
				      "--address",
				      addr,
				      /* the argv ends at the first NULL: no CA, no option */
				      n->cacert ? "--cacert" : NULL,
				      n->cacert,
				      NULL};

		/* `ip netns exec` enters the namespace and execs the agent:
		 * the pid is the agent's */
		if ((rc = tn_node_spawn(dir, argv, &pid, &start, err)))
			goto out;
	}
	json_object_set_new(rec, "pid", json_integer(pid));
	json_object_set_new(rec, "start_time", json_integer((json_int_t)start));
	if ((rc = tn_node_record_write(dir, rec, err)))
		goto out;
	out->id = xstrdup(name);
	out->address = xstrdup(addr);
	tn_log(TN_LOG_INFO, "provider", "booted", "{s:s, s:s, s:s, s:s, s:i}", "provider", "netns",
	       "target", spec->target_id, "netns", name, "address", addr, "pid", (int)pid);
out:
	if (rc && made) {
		struct tn_error e2;

		if (teardown(n, dir, name, &e2) != 0)
			tn_log(TN_LOG_WARN, "provider", "cleanup_failed", "{s:s, s:s}", "provider",
			       "netns", "message", e2.message);
	}
	live_free(&lv);
	json_decref(rec);
	free(server);
	free(port_s);
	free(token_file);
	free(cidr);
	free(link);
	free(name);
	free(state);
	free(dir);
	return rc;
}

static int netns_terminate(struct tn_provider *p, const char *instance, struct tn_error *err)
{
	struct netns *n = p->priv;
	char *id = NULL, *dir = NULL;
	int rc;

	if (!n->ip)
		return tn_fail(err, TN_E_UNAVAILABLE, "netns: iproute2's ip is not installed");
	if ((rc = instance_id(n, instance, &id, err)))
		return rc;
	dir = tn_node_dir(n->data_dir, id);
	rc = teardown(n, dir, instance, err);
	if (rc == 0)
		tn_log(TN_LOG_INFO, "provider", "terminated", "{s:s, s:s}", "provider", "netns",
		       "instance", instance);
	free(dir);
	free(id);
	return rc;
}

static int netns_status(struct tn_provider *p, const char *instance, struct tn_instance_status *out,
			struct tn_error *err)
{
	struct netns *n = p->priv;
	char *id = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = instance_id(n, instance, &id, err)))
		return rc;
	tn_node_status(n->data_dir, id, out);
	free(id);
	return 0;
}

const struct tn_provider_ops tn_provider_netns_ops = {
    .name = "netns",
    .keys = keys,
    .secrets = NULL,
    .open = netns_open,
    .close = netns_close,
    .boot = netns_boot,
    .terminate = netns_terminate,
    .status = netns_status,
};
