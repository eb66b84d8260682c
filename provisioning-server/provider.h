/* provider.h - IaaS providers (DESIGN §2 "Provider"): boot a node that
 * already runs an agent, terminate it, and tell whether it still lives.
 * Each provider is a struct tn_provider_ops in its own file, chosen by
 * name; tender-server configures them with --provider NAME:key=value,...
 *
 * Provider calls block (fork/exec, waits for processes to end): they are
 * made from the lifecycle's worker thread (lifecycle.c), never from a
 * request thread, one at a time. */
#ifndef TN_PROVIDER_H
#define TN_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* What a provider boots: the user-data of a cloud.  All borrowed. */
struct tn_boot_spec {
	const char *target_id;
	const char *cluster;
	const char *server_url;	  /* the server as a node on this host reaches it */
	uint16_t server_port;	  /* the port it listens on (nodes on another network) */
	const char *enroll_token; /* one use, bound to the target */
};

/* What a boot made; both caller-freed. */
struct tn_instance {
	char *id;      /* the provider's name for the node (the target's `instance`) */
	char *address; /* the node's address, or NULL when the agent will say */
};

enum tn_instance_state {
	TN_INSTANCE_RUNNING, /* the node (its agent) is alive */
	TN_INSTANCE_GONE,    /* nothing runs for it any more */
};

struct tn_instance_status {
	enum tn_instance_state state;
	char detail[512]; /* for GONE: what is known of why (the end of its log) */
};

/* What the server tells its providers when it opens them.  Borrowed for the
 * call only: providers copy what they keep. */
struct tn_provider_env {
	const char *data_dir;	/* nodes of this host live in DATA/nodes/<target id>/ */
	const char *listen;	/* the server's --listen ADDR:PORT */
	const char *agent_path; /* tender-agent beside tender-server (may not exist) */
	/* --agent-cacert: an absolute path to the PEM CA file the agents
	 * verify the server's HTTPS certificate with (NULL: their system's) */
	const char *agent_cacert;
};

struct tn_provider_ops;

/* A configured provider. */
struct tn_provider {
	const struct tn_provider_ops *ops;
	json_t *settings; /* key → string as configured; open() adds its defaults */
	bool available;
	char reason[512]; /* why it is unavailable, when it is */
	void *priv;	  /* the provider's own state (open to close) */
};

struct tn_provider_ops {
	const char *name;
	const char *const *keys;    /* the settings it takes; others are refused */
	const char *const *secrets; /* settings never shown (GET /providers); may be NULL */
	/* Checks the settings (TN_E_INVALID naming the key: the server does
	 * not start), probes what the provider needs (when it is missing:
	 * available = false with the reason, and 0), sweeps what an earlier
	 * run left behind. */
	int (*open)(struct tn_provider *p, const struct tn_provider_env *env, struct tn_error *err);
	void (*close)(struct tn_provider *p);
	/* Boots a node for spec; on failure nothing of it is left. */
	int (*boot)(struct tn_provider *p, const struct tn_boot_spec *spec, struct tn_instance *out,
		    struct tn_error *err);
	/* Ends the node and everything it ran, and removes what the provider
	 * made for it.  Terminating a node that is already gone succeeds. */
	int (*terminate)(struct tn_provider *p, const char *instance, struct tn_error *err);
	int (*status)(struct tn_provider *p, const char *instance, struct tn_instance_status *out,
		      struct tn_error *err);
};

extern const struct tn_provider_ops tn_provider_local_ops;
extern const struct tn_provider_ops tn_provider_netns_ops;

/* The provider used when neither the request nor the cluster names one. */
#define TN_PROVIDER_DEFAULT "local"

/* ------------------------------------------------------------ the set */

struct tn_providers;

/* Parses the --provider arguments ("NAME" or "NAME:key=value,...", each
 * NAME at most once); `local` is always configured, with its defaults
 * unless an argument sets it.  TN_E_INVALID naming the argument.  *out is
 * freed with tn_providers_free. */
int tn_providers_new(const char *const *specs, size_t n, struct tn_providers **out,
		     struct tn_error *err) TN_MUST_CHECK;
/* Opens every provider (see ops->open). */
int tn_providers_open(struct tn_providers *ps, const struct tn_provider_env *env,
		      struct tn_error *err) TN_MUST_CHECK;
/* Closes and frees; NULL is a no-op. */
void tn_providers_free(struct tn_providers *ps);

/* The provider name, ready to boot: TN_E_INVALID for one not configured
 * (naming those that are), TN_E_UNAVAILABLE with its reason.  Borrowed. */
int tn_providers_get(struct tn_providers *ps, const char *name, struct tn_provider **out,
		     struct tn_error *err) TN_MUST_CHECK;
/* The provider name whatever its availability, or NULL.  Borrowed. */
struct tn_provider *tn_providers_find(struct tn_providers *ps, const char *name);

/* {"items": [{name, available, reason, settings}], "next": null}, secrets
 * hidden; caller decrefs. */
json_t *tn_providers_list(struct tn_providers *ps);

/* A setting's value, or NULL (borrowed). */
const char *tn_provider_setting(const struct tn_provider *p, const char *key);

/* Runs argv (argv[0] looked up in PATH) and waits for it, with stdout and
 * stderr captured together (at most 64 KiB kept) into *output (caller
 * frees; may be NULL to drop it).  Exit status 0 is success; otherwise
 * TN_E_IO with "ARGV...: OUTPUT".  Never through a shell. */
int tn_provider_run(const char *const *argv, char **output, struct tn_error *err) TN_MUST_CHECK;

#endif
