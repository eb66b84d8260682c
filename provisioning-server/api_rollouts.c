/* api_rollouts.c - create, approve, resume, pause, abort, list and get
 * rollouts; undo a cluster's last rollout. */
#include "api.h"
#include "json.h"
#include "rollout.h"
#include "server.h"
#include "store.h"

TN_HANDLER(tn_api_rollout_create)
{
	json_t *body = NULL, *out = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)))
		return rc;
	tn_response_audit(resp, "cluster",
			  json_string_value(json_object_get(body, "cluster")));
	rc = tn_rollout_create(req->srv, body, req->who.name, &out, err);
	if (rc == 0) {
		tn_response_audit(resp, "rollout", json_string_value(json_object_get(out, "id")));
		tn_response_json(resp, 201, out);
	}
	json_decref(body);
	return rc;
}

static int act(struct tn_request *req, struct tn_response *resp, enum tn_rollout_verb verb,
	       struct tn_error *err)
{
	json_t *out = NULL;
	int rc;

	tn_response_audit(resp, "rollout", req->params[0]);
	if ((rc = tn_rollout_act(req->srv, req->params[0], verb, req->who.name, &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_rollout_approve)
{
	return act(req, resp, TN_ROLLOUT_APPROVE, err);
}

TN_HANDLER(tn_api_rollout_resume)
{
	return act(req, resp, TN_ROLLOUT_RESUME, err);
}

TN_HANDLER(tn_api_rollout_pause)
{
	return act(req, resp, TN_ROLLOUT_PAUSE, err);
}

TN_HANDLER(tn_api_rollout_abort)
{
	return act(req, resp, TN_ROLLOUT_ABORT, err);
}

TN_HANDLER(tn_api_cluster_undo)
{
	json_t *body = NULL, *out = NULL;
	int rc;

	tn_response_audit(resp, "cluster", req->params[0]);
	if (req->body_len && (rc = tn_json_parse_object(req->body, req->body_len, &body, err)))
		return rc;
	rc = tn_rollout_undo(req->srv, req->params[0], body, req->who.name, &out, err);
	if (rc == 0) {
		tn_response_audit(resp, "rollout", json_string_value(json_object_get(out, "id")));
		tn_response_json(resp, 201, out);
	}
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_rollout_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_rollout_list(req->srv->store, tn_request_query(req, "cluster"),
					(unsigned)limit, tn_request_query(req, "after"), &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_rollout_get)
{
	json_t *out = NULL;
	int rc = tn_store_rollout_get(req->srv->store, req->params[0], &out, err);

	if (rc == 0)
		tn_response_json(resp, 200, out);
	return rc;
}
