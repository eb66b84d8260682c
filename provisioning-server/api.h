/* api.h - the handlers of the management API, one file per resource
 * (api_bundles.c, api_distributions.c, api_clusters.c, api_tokens.c,
 * api_system.c); routes.c puts them in the route table. */
#ifndef TN_API_H
#define TN_API_H

#include "router.h"

#define TN_HANDLER(name) \
	int name(struct tn_request *req, struct tn_response *resp, struct tn_error *err)

/* api_system.c */
TN_HANDLER(tn_api_healthz);
TN_HANDLER(tn_api_metrics);

struct tn_server;
struct tn_version;
struct tn_store_version;

/* The {}/{} of a bundle or distribution route as a name and a version
 * (TN_E_INVALID for a bad version). */
int tn_api_name_version(struct tn_request *req, struct tn_version *v, struct tn_store_version *sv,
			struct tn_error *err) TN_MUST_CHECK;
/* Removes a blob that no row references (after a refused insert, or a
 * delete).  Takes the blob store's exclusive lock, which waits out uploads
 * that may be about to reference the same bytes. */
void tn_api_drop_unreferenced(struct tn_server *srv, const char *sha);

/* api_bundles.c */
TN_HANDLER(tn_api_bundle_upload);
TN_HANDLER(tn_api_bundle_list);
TN_HANDLER(tn_api_bundle_get);
TN_HANDLER(tn_api_bundle_archive);
TN_HANDLER(tn_api_bundle_delete);
extern const struct tn_upload_ops tn_bundle_upload_ops;

/* api_distributions.c */
TN_HANDLER(tn_api_distribution_create);
TN_HANDLER(tn_api_distribution_list);
TN_HANDLER(tn_api_distribution_get);
TN_HANDLER(tn_api_distribution_delete);
extern const struct tn_upload_ops tn_distribution_upload_ops;

/* api_clusters.c */
TN_HANDLER(tn_api_cluster_create);
TN_HANDLER(tn_api_cluster_list);
TN_HANDLER(tn_api_cluster_get);
TN_HANDLER(tn_api_cluster_patch);
TN_HANDLER(tn_api_cluster_delete);

/* api_agent.c: the agents' endpoints */
TN_HANDLER(tn_api_agent_enroll);
TN_HANDLER(tn_api_agent_desired);
TN_HANDLER(tn_api_agent_blob);
TN_HANDLER(tn_api_agent_report);

/* api_targets.c */
TN_HANDLER(tn_api_target_list);
TN_HANDLER(tn_api_target_get);
TN_HANDLER(tn_api_target_revoke);
TN_HANDLER(tn_api_target_logs);
TN_HANDLER(tn_api_target_create);
TN_HANDLER(tn_api_target_copy);
TN_HANDLER(tn_api_target_delete);
TN_HANDLER(tn_api_target_patch);

/* api_install.c: providers, and what a hand install fetches.  install.sh
 * carries the server's --agent-cacert text in a here-document ended by
 * this line, which the CA file must therefore not hold. */
#define INSTALL_CA_MARK "TENDER_CA_PEM"
TN_HANDLER(tn_api_provider_list);
TN_HANDLER(tn_api_install_script);
TN_HANDLER(tn_api_download_agent);
TN_HANDLER(tn_api_download_agent_sha256);

/* api_rollouts.c */
TN_HANDLER(tn_api_rollout_create);
TN_HANDLER(tn_api_rollout_approve);
TN_HANDLER(tn_api_rollout_resume);
TN_HANDLER(tn_api_rollout_pause);
TN_HANDLER(tn_api_rollout_abort);
TN_HANDLER(tn_api_cluster_undo);
TN_HANDLER(tn_api_rollout_list);
TN_HANDLER(tn_api_rollout_get);

/* api_webhooks.c */
TN_HANDLER(tn_api_webhook_create);
TN_HANDLER(tn_api_webhook_list);
TN_HANDLER(tn_api_webhook_get);
TN_HANDLER(tn_api_webhook_delete);

/* api_tokens.c */
TN_HANDLER(tn_api_token_create);
TN_HANDLER(tn_api_token_list);
TN_HANDLER(tn_api_token_revoke);
TN_HANDLER(tn_api_enrollment_token_create);
TN_HANDLER(tn_api_enrollment_token_revoke);

#endif
