/* api_clusters.c - clusters: create (with revision 1), list, get, patch of
 * lb / provider / description (a change of distribution or config is a
 * rollout, never a patch), delete once no target remains. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "documents.h"
#include "ingest.h"
#include "json.h"
#include "lbsync.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

/* Cluster names end up in HAProxy backend and server names and in paths:
 * a DNS label. */
static bool valid_cluster_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return false;
	return true;
}

static bool valid_word(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && !strchr("-_.", s[i]))
			return false;
	return true;
}

/* {"driver": "none"} or {"driver": "haproxy", "admin": "ADDR:PORT" or
 * "unix:PATH", "backend": NAME}. */
static int check_lb(json_t *lb, struct tn_error *err)
{
	static const char *const none_keys[] = {"driver", NULL};
	static const char *const haproxy_keys[] = {"driver", "admin", "backend", NULL};
	const char *driver = NULL, *admin = NULL, *backend = NULL;
	int rc;

	if ((rc = tn_json_get_string(lb, "lb", "driver", true, &driver, err)))
		return rc;
	if (strcmp(driver, "none") == 0)
		return tn_json_check_keys(lb, "lb", none_keys, err);
	if (strcmp(driver, "haproxy") != 0)
		return tn_fail(err, TN_E_INVALID, "lb.driver: \"%s\" is not one of none, haproxy",
			       driver);
	if ((rc = tn_json_check_keys(lb, "lb", haproxy_keys, err)) ||
	    (rc = tn_json_get_string(lb, "lb", "admin", true, &admin, err)) ||
	    (rc = tn_json_get_string(lb, "lb", "backend", true, &backend, err)))
		return rc;
	if (strncmp(admin, "unix:/", 6) != 0 && (!strchr(admin, ':') || strlen(admin) > 255))
		return tn_fail(err, TN_E_INVALID,
			       "lb.admin: \"%s\" is not ADDR:PORT or unix:/PATH of HAProxy's "
			       "runtime API",
			       admin);
	if (!valid_word(backend, 64))
		return tn_fail(err, TN_E_INVALID, "lb.backend: \"%s\" is not a backend name", backend);
	return 0;
}

static int check_provider(const char *provider, struct tn_error *err)
{
	if (!valid_word(provider, 64))
		return tn_fail(err, TN_E_INVALID, "provider: \"%s\" is not a provider name", provider);
	return 0;
}

TN_HANDLER(tn_api_cluster_create)
{
	static const char *const keys[] = {"name",   "description", "distribution", "config",
					   "provider", "lb",        NULL};
	struct tn_store *st = req->srv->store;
	json_t *body = NULL, *config = NULL, *lb = NULL, *default_lb = NULL, *out = NULL;
	const char *name = NULL, *description = NULL, *dist = NULL, *provider = "local";
	struct tn_store_bundle_ref ref;
	struct tn_version v;
	char *dist_name = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "name", true, &name, err)) ||
	    (rc = tn_json_get_string(body, "", "description", false, &description, err)) ||
	    (rc = tn_json_get_string(body, "", "distribution", false, &dist, err)) ||
	    (rc = tn_json_get_object(body, "", "config", false, &config, err)) ||
	    (rc = tn_json_get_string(body, "", "provider", false, &provider, err)) ||
	    (rc = tn_json_get_object(body, "", "lb", false, &lb, err)))
		goto out;
	tn_response_audit(resp, "cluster", name);
	if (!valid_cluster_name(name)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "name: \"%s\" must be 1 to 63 of a-z, 0-9 and '-', not starting or "
			     "ending with '-'",
			     name);
		goto out;
	}
	if ((lb && (rc = check_lb(lb, err))) || (rc = check_provider(provider, err)))
		goto out;
	if (!lb)
		lb = default_lb = json_pack("{s:s}", "driver", "none");
	if (dist) {
		if ((rc = tn_ingest_split_ref(dist, "distribution", &dist_name, &ref.version, &v, err)))
			goto out;
		ref.name = dist_name;
		if ((rc = tn_ingest_check_config_for(st, dist, config, "cluster config", err)))
			goto out;
	} else if (config && json_object_size(config)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "config: a cluster without a distribution has no bundles to "
			     "configure; give a distribution too");
		goto out;
	}
	if ((rc = tn_store_cluster_create(st, name, description, provider, lb, dist ? &ref : NULL,
					  config, req->who.name, &out, err)))
		goto out;
	tn_response_json(resp, 201, out);
out:
	free(dist_name);
	json_decref(default_lb);
	json_decref(body);
	return rc;
}

/* What the load-balancer reconciler last found, as lb_status (null when it
 * has nothing to say: no load balancer, or no round yet). */
static void add_lb_status(struct tn_server *srv, json_t *cluster)
{
	json_t *st = tn_lbsync_status(srv->lbsync, json_string_value(json_object_get(cluster, "name")));

	json_object_set_new(cluster, "lb_status", st ? st : json_null());
}

/* A new lb binding reaches the agents through their documents (a new
 * generation each), and the reconciler at once. */
static int reissue_documents(struct tn_server *srv, const char *cluster, struct tn_error *err)
{
	char **ids = NULL;
	int rc;

	if ((rc = tn_store_cluster_target_ids(srv->store, cluster, &ids, NULL, err)))
		return rc;
	for (size_t i = 0; ids[i] && rc == 0; i++) {
		struct tn_doc_change none = {0};

		rc = tn_documents_change(srv, ids[i], &none, err);
	}
	tn_store_free_ids(ids);
	tn_lbsync_wake(srv->lbsync);
	return rc;
}

TN_HANDLER(tn_api_cluster_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_cluster_list(req->srv->store, (unsigned)limit,
					tn_request_query(req, "after"), &out, err)))
		return rc;
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(out, "items"), i, c) add_lb_status(req->srv, c);
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_cluster_get)
{
	json_t *out = NULL;
	int rc = tn_store_cluster_get(req->srv->store, req->params[0], &out, err);

	if (rc == 0) {
		add_lb_status(req->srv, out);
		tn_response_json(resp, 200, out);
	}
	return rc;
}

TN_HANDLER(tn_api_cluster_patch)
{
	static const char *const keys[] = {"description", "provider", "lb", NULL};
	json_t *body = NULL, *lb = NULL, *out = NULL;
	const char *description = NULL, *provider = NULL;
	int rc;

	tn_response_audit(resp, "cluster", req->params[0]);
	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)))
		goto out;
	if (json_object_get(body, "distribution") || json_object_get(body, "config")) {
		rc = tn_fail(err, TN_E_CONFLICT,
			     "a cluster's distribution and config change only through a rollout: "
			     "use a rollout (POST /api/v1/rollouts)");
		goto out;
	}
	if ((rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "description", false, &description, err)) ||
	    (rc = tn_json_get_string(body, "", "provider", false, &provider, err)) ||
	    (rc = tn_json_get_object(body, "", "lb", false, &lb, err)) ||
	    (lb && (rc = check_lb(lb, err))) || (provider && (rc = check_provider(provider, err))) ||
	    (rc = tn_store_cluster_patch(req->srv->store, req->params[0], description, provider, lb,
					 &out, err)))
		goto out;
	if (lb && (rc = reissue_documents(req->srv, req->params[0], err))) {
		json_decref(out);
		goto out;
	}
	tn_response_json(resp, 200, out);
out:
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_cluster_delete)
{
	int rc;

	tn_response_audit(resp, "cluster", req->params[0]);
	if ((rc = tn_store_cluster_delete(req->srv->store, req->params[0], err)))
		return rc;
	resp->status = 204;
	return 0;
}
