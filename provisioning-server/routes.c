/* routes.c - the route table of tender-server (DESIGN §3): method,
 * pattern, the least role that may call it, the handler, and the audit
 * name of every write.  Order matters only between patterns that could
 * both match, and none here do. */
#include "api.h"
#include "console.h"
#include "events.h"
#include "router.h"

#define R(m, p, role, h) {m, p, TN_ROLE_##role, h, NULL, 0, NULL, false}
#define W(m, p, role, h, action) {m, p, TN_ROLE_##role, h, NULL, 0, action, false}
#define UPLOAD(m, p, role, h, ops, action) \
	{m, p, TN_ROLE_##role, h, &ops, TN_MAX_BODY_UPLOAD, action, false}
/* Public, but its body carries a secret: refused secrets are rate-limited. */
#define SECRET(m, p, h) {m, p, TN_ROLE_PUBLIC, h, NULL, 0, NULL, true}

const struct tn_route tn_routes[] = {
	R("GET", "/healthz", PUBLIC, tn_api_healthz),
	R("GET", "/metrics", PUBLIC, tn_api_metrics),

	UPLOAD("POST", "/api/v1/bundles", DEVELOPER, tn_api_bundle_upload, tn_bundle_upload_ops,
	       "bundle.upload"),
	R("GET", "/api/v1/bundles", VIEWER, tn_api_bundle_list),
	R("GET", "/api/v1/bundles/{}/{}", VIEWER, tn_api_bundle_get),
	R("GET", "/api/v1/bundles/{}/{}/archive", VIEWER, tn_api_bundle_archive),
	W("DELETE", "/api/v1/bundles/{}/{}", DEVELOPER, tn_api_bundle_delete, "bundle.delete"),

	UPLOAD("POST", "/api/v1/distributions", DEVELOPER, tn_api_distribution_create,
	       tn_distribution_upload_ops, "distribution.create"),
	R("GET", "/api/v1/distributions", VIEWER, tn_api_distribution_list),
	R("GET", "/api/v1/distributions/{}/{}", VIEWER, tn_api_distribution_get),
	W("DELETE", "/api/v1/distributions/{}/{}", DEVELOPER, tn_api_distribution_delete,
	  "distribution.delete"),

	W("POST", "/api/v1/clusters", OPERATOR, tn_api_cluster_create, "cluster.create"),
	R("GET", "/api/v1/clusters", VIEWER, tn_api_cluster_list),
	R("GET", "/api/v1/clusters/{}", VIEWER, tn_api_cluster_get),
	W("PATCH", "/api/v1/clusters/{}", OPERATOR, tn_api_cluster_patch, "cluster.update"),
	W("DELETE", "/api/v1/clusters/{}", OPERATOR, tn_api_cluster_delete, "cluster.delete"),
	W("POST", "/api/v1/clusters/{}/undo", OPERATOR, tn_api_cluster_undo, "cluster.undo"),

	W("POST", "/api/v1/targets", OPERATOR, tn_api_target_create, "target.create"),
	R("GET", "/api/v1/targets", VIEWER, tn_api_target_list),
	R("GET", "/api/v1/targets/{}", VIEWER, tn_api_target_get),
	W("PATCH", "/api/v1/targets/{}", OPERATOR, tn_api_target_patch, "target.update"),
	W("DELETE", "/api/v1/targets/{}", OPERATOR, tn_api_target_delete, "target.remove"),
	W("POST", "/api/v1/targets/{}/copy", OPERATOR, tn_api_target_copy, "target.copy"),
	W("POST", "/api/v1/targets/{}/revoke", OPERATOR, tn_api_target_revoke, "target.revoke"),
	R("GET", "/api/v1/targets/{}/logs", VIEWER, tn_api_target_logs),

	W("POST", "/api/v1/rollouts", OPERATOR, tn_api_rollout_create, "rollout.create"),
	R("GET", "/api/v1/rollouts", VIEWER, tn_api_rollout_list),
	R("GET", "/api/v1/rollouts/{}", VIEWER, tn_api_rollout_get),
	W("POST", "/api/v1/rollouts/{}/approve", OPERATOR, tn_api_rollout_approve,
	  "rollout.approve"),
	W("POST", "/api/v1/rollouts/{}/resume", OPERATOR, tn_api_rollout_resume, "rollout.resume"),
	W("POST", "/api/v1/rollouts/{}/pause", OPERATOR, tn_api_rollout_pause, "rollout.pause"),
	W("POST", "/api/v1/rollouts/{}/abort", OPERATOR, tn_api_rollout_abort, "rollout.abort"),

	W("POST", "/api/v1/enrollment-tokens", OPERATOR, tn_api_enrollment_token_create,
	  "enrollment_token.create"),
	W("POST", "/api/v1/enrollment-tokens/revoke", OPERATOR, tn_api_enrollment_token_revoke,
	  "enrollment_token.revoke"),

	R("GET", "/api/v1/providers", VIEWER, tn_api_provider_list),

	R("GET", "/api/v1/events", VIEWER, tn_api_events_list),
	R("GET", "/api/v1/events/stream", VIEWER, tn_api_events_stream),

	W("POST", "/api/v1/webhooks", OPERATOR, tn_api_webhook_create, "webhook.create"),
	R("GET", "/api/v1/webhooks", VIEWER, tn_api_webhook_list),
	R("GET", "/api/v1/webhooks/{}", VIEWER, tn_api_webhook_get),
	W("DELETE", "/api/v1/webhooks/{}", OPERATOR, tn_api_webhook_delete, "webhook.delete"),

	/* The agents' side: a target token opens its own target only (the
	 * handlers act on the caller's target id, never on one in the path). */
	SECRET("POST", "/agent/v1/enroll", tn_api_agent_enroll),
	R("GET", "/agent/v1/desired", AGENT, tn_api_agent_desired),
	R("GET", "/agent/v1/blobs/{}", AGENT, tn_api_agent_blob),
	R("POST", "/agent/v1/report", AGENT, tn_api_agent_report),

	/* A hand install (DESIGN §2 Provider): no token, the enrollment
	 * token given to the script is the secret. */
	R("GET", "/install.sh", PUBLIC, tn_api_install_script),
	R("GET", "/downloads/tender-agent", PUBLIC, tn_api_download_agent),
	R("GET", "/downloads/tender-agent.sha256", PUBLIC, tn_api_download_agent_sha256),

	/* The web console: its page and its files, one prefix (console.c). */
	R("GET", "/", PUBLIC, tn_console_index),
	R("GET", "/ui/{}", PUBLIC, tn_console_asset),

	W("POST", "/api/v1/tokens", ADMIN, tn_api_token_create, "token.create"),
	R("GET", "/api/v1/tokens", ADMIN, tn_api_token_list),
	W("DELETE", "/api/v1/tokens/{}", ADMIN, tn_api_token_revoke, "token.revoke"),
};

const size_t tn_routes_count = sizeof tn_routes / sizeof tn_routes[0];
