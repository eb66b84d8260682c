/* api_rollouts.c - create, approve, resume, pause, abort, list and get
 * rollouts; undo a cluster's last rollout. */
#include "api.h"
#include "json.h"
#include "offload.h"
#include "rollout.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

/* A rollout write, run by the offload worker (it may write a document for
 * every target of a fleet). */
struct write_job {
	enum { JOB_CREATE, JOB_UNDO, JOB_ACT } kind;
	enum tn_rollout_verb verb;
	json_t *body; /* create, undo (may be NULL) */
	char *name;   /* the cluster (undo) or the rollout (act) */
	char *actor;
};

static int run_write(struct tn_server *srv, void *arg, json_t **out, struct tn_error *err)
{
	struct write_job *j = arg;

	switch (j->kind) {
	case JOB_CREATE: return tn_rollout_create(srv, j->body, j->actor, out, err);
	case JOB_UNDO: return tn_rollout_undo(srv, j->name, j->body, j->actor, out, err);
	case JOB_ACT: break;
	}
	return tn_rollout_act(srv, j->name, j->verb, j->actor, out, err);
}

static void free_write(void *arg)
{
	struct write_job *j = arg;

	json_decref(j->body);
	free(j->name);
	free(j->actor);
	free(j);
}

/* Takes ownership of body. */
static int offload(struct tn_request *req, struct tn_response *resp, int status,
		   struct write_job tmpl, struct tn_error *err)
{
	struct write_job *j = xmalloc(sizeof *j);

	*j = tmpl;
	j->actor = xstrdup(req->who.name);
	return tn_offload_respond(req, resp, status, "rollout", run_write, j, free_write, err);
}

TN_HANDLER(tn_api_rollout_create)
{
	json_t *body = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)))
		return rc;
	tn_response_audit(resp, "cluster",
			  json_string_value(json_object_get(body, "cluster")));
	return offload(req, resp, 201, (struct write_job){.kind = JOB_CREATE, .body = body}, err);
}

static int act(struct tn_request *req, struct tn_response *resp, enum tn_rollout_verb verb,
	       struct tn_error *err)
{
	tn_response_audit(resp, "rollout", req->params[0]);
	return offload(req, resp, 200,
		       (struct write_job){
			   .kind = JOB_ACT, .verb = verb, .name = xstrdup(req->params[0])},
		       err);
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
	json_t *body = NULL;
	int rc;

	tn_response_audit(resp, "cluster", req->params[0]);
	if (req->body_len && (rc = tn_json_parse_object(req->body, req->body_len, &body, err)))
		return rc;
	return offload(req, resp, 201,
		       (struct write_job){
			   .kind = JOB_UNDO, .body = body, .name = xstrdup(req->params[0])},
		       err);
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
