/* server.h - what every handler of tender-server reaches through its
 * request: the store, the blob store, the token index, the signing key, the
 * counters and the server's settings. */
#ifndef TN_SERVER_H
#define TN_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "archive.h"

struct tn_store;
struct tn_blobstore;
struct tn_auth;
struct tn_key;
struct tn_metrics;
struct tn_http;
struct tn_documents;
struct tn_providers;
struct tn_lifecycle;
struct tn_lbsync;
struct tn_offload;
struct tn_orchestrator;
struct tn_webhooks;
struct tn_ratelimit;

struct tn_server {
	char *data_dir;
	char *tmp_dir;                 /* DATA/tmp: staging for uploads being inspected */
	struct tn_store *store;
	struct tn_blobstore *blobs;
	struct tn_auth *auth;
	/* Bad credentials per client address (NULL: no limit). */
	struct tn_ratelimit *ratelimit;
	struct tn_key *key;
	struct tn_metrics *metrics;
	struct tn_http *http;          /* NULL in in-process use */
	struct tn_documents *documents; /* targets' desired documents, cached */
	uint64_t max_upload;           /* largest bundle or distribution archive */
	struct tn_archive_limits archive_limits;
	/* Providers and the target lifecycle (NULL in in-process use: creating
	 * or removing targets then answers 503). */
	struct tn_providers *providers;
	struct tn_lifecycle *lifecycle;
	/* The load-balancer reconciler (NULL in in-process use). */
	struct tn_lbsync *lbsync;
	/* The rollout orchestrator's thread (NULL in in-process use: rollouts
	 * then move only when tn_rollout_step is called). */
	struct tn_orchestrator *orchestrator;
	/* The worker that runs rollout writes while their requests wait
	 * parked (NULL in in-process use: they run on the caller). */
	struct tn_offload *offload;
	/* The webhook deliveries' worker (NULL in in-process use: events are
	 * then matched and sent by the next server that runs on the store). */
	struct tn_webhooks *webhooks;
	char *public_url;              /* the server as nodes on this host reach it */
	char *agent_path;              /* the tender-agent served by /downloads */
	/* --agent-cacert: the CA file agents verify this server's HTTPS
	 * certificate with (absolute path, passed on by the providers) and its
	 * PEM text (install.sh carries it); both NULL without the option. */
	char *agent_cacert;
	char *agent_cacert_pem;
	/* The endorsements of the signing key (keychain.h): the value of the
	 * Tender-Key-Endorsement header sent with every desired document, NULL
	 * while the key was never rotated. */
	char *key_endorsements;
	char *web_dir;                 /* the console's files (NULL: no console) */
};

#endif
