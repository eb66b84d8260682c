/* api_targets.c - targets as operators see them: create (booted by a
 * provider), copy, remove, change target-level config, list, get (health
 * "stale" worked out from last_seen as they are read), revoke an agent's
 * token, and the tail of a bundle's log as the agent last sent it. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "documents.h"
#include "json.h"
#include "lifecycle.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

#define LOG_LINES_MAX 10000

TN_HANDLER(tn_api_target_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_target_list(req->srv->store, tn_request_query(req, "cluster"),
				       tn_request_query(req, "state"), (unsigned)limit,
				       tn_request_query(req, "after"), &out, err)))
		return rc;
	{
		json_t *t;
		size_t i;

		json_array_foreach(json_object_get(out, "items"), i, t) tn_lifecycle_view(t);
	}
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_target_get)
{
	json_t *out = NULL;
	int rc = tn_store_target_get(req->srv->store, req->params[0], &out, err);

	if (rc == 0) {
		tn_lifecycle_view(out);
		tn_response_json(resp, 200, out);
	}
	return rc;
}

TN_HANDLER(tn_api_target_create)
{
	static const char *const keys[] = {"cluster", "provider", "count", "config", NULL};
	json_t *body = NULL, *config = NULL, *items = NULL, *ids;
	const char *cluster = NULL, *provider = NULL;
	json_int_t count = 1;
	size_t i;
	json_t *t;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "cluster", true, &cluster, err)) ||
	    (rc = tn_json_get_string(body, "", "provider", false, &provider, err)) ||
	    (rc = tn_json_get_int(body, "", "count", false, 1, TN_TARGETS_CREATE_MAX, &count,
				  err)) ||
	    (rc = tn_json_get_object(body, "", "config", false, &config, err)))
		goto out;
	tn_response_audit(resp, "cluster", cluster);
	if ((rc = tn_lifecycle_create(req->srv, cluster, provider, (int)count, config,
				      req->who.name, &items, err)))
		goto out;
	ids = json_array();
	json_array_foreach(items, i, t)
		json_array_append(ids, json_object_get(t, "id"));
	resp->audit_detail = json_pack("{s:o, s:O}", "targets", ids, "provider",
				       json_object_get(json_array_get(items, 0), "provider"));
	tn_response_json(resp, 202, json_pack("{s:o, s:n}", "items", items, "next"));
	items = NULL;
out:
	json_decref(items);
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_target_copy)
{
	json_t *out = NULL;
	int rc;

	tn_response_audit(resp, "target", req->params[0]);
	if ((rc = tn_lifecycle_copy(req->srv, req->params[0], req->who.name, &out, err)))
		return rc;
	resp->audit_detail = json_pack("{s:O}", "copy", json_object_get(out, "id"));
	tn_response_json(resp, 202, out);
	return 0;
}

TN_HANDLER(tn_api_target_delete)
{
	const char *force_s = tn_request_query(req, "force");
	bool force = false;
	json_t *out = NULL;
	int rc;

	tn_response_audit(resp, "target", req->params[0]);
	if (force_s && strcmp(force_s, "true") != 0 && strcmp(force_s, "false") != 0)
		return tn_fail(err, TN_E_INVALID, "force: \"%s\" is not true or false", force_s);
	force = force_s && strcmp(force_s, "true") == 0;
	if ((rc = tn_lifecycle_remove(req->srv, req->params[0], force, &out, err)))
		return rc;
	resp->audit_detail = json_pack("{s:b}", "force", force);
	tn_response_json(resp, 202, out);
	return 0;
}

TN_HANDLER(tn_api_target_patch)
{
	static const char *const keys[] = {"config", NULL};
	json_t *body = NULL, *config = NULL, *out = NULL;
	char *release = NULL;
	int rc;

	tn_response_audit(resp, "target", req->params[0]);
	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_object(body, "", "config", true, &config, err)) ||
	    (rc = tn_lifecycle_configure(req->srv, req->params[0], config, &out, &release, err)))
		goto out;
	resp->audit_detail = json_pack("{s:O, s:s?}", "config", config, "release", release);
	tn_lifecycle_view(out);
	tn_response_json(resp, 200, out);
out:
	free(release);
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_target_revoke)
{
	int rc;

	tn_response_audit(resp, "target", req->params[0]);
	if ((rc = tn_store_target_revoke(req->srv->store, req->params[0], err)))
		return rc;
	tn_documents_forget(req->srv, req->params[0]);
	resp->status = 204;
	return 0;
}

/* The last `lines` lines of text (all of it when it has fewer). */
static const char *last_lines(const char *text, long lines)
{
	const char *p = text + strlen(text);

	if (p > text && p[-1] == '\n')
		p--;
	while (p > text) {
		if (p[-1] == '\n' && --lines == 0)
			break;
		p--;
	}
	return p;
}

TN_HANDLER(tn_api_target_logs)
{
	const char *bundle = tn_request_query(req, "bundle");
	const char *lines_s = tn_request_query(req, "lines");
	json_t *logs = NULL, *out;
	const char *key;
	json_t *value;
	long lines = 100;
	int rc;

	if (lines_s) {
		char *end;

		lines = strtol(lines_s, &end, 10);
		if (*lines_s == '\0' || *end != '\0' || lines < 1 || lines > LOG_LINES_MAX)
			return tn_fail(err, TN_E_INVALID, "lines: \"%s\" is not 1 to %d", lines_s,
				       LOG_LINES_MAX);
	}
	if ((rc = tn_store_target_logs(req->srv->store, req->params[0], &logs, err)))
		return rc;
	if (bundle && !json_object_get(logs, bundle)) {
		json_decref(logs);
		return tn_fail(err, TN_E_NOT_FOUND, "target %s has reported no log of bundle %s",
			       req->params[0], bundle);
	}
	out = json_object();
	json_object_foreach(logs, key, value) {
		if (bundle && strcmp(key, bundle) != 0)
			continue;
		json_object_set_new(out, key, json_string(last_lines(json_string_value(value),
								      lines)));
	}
	json_decref(logs);
	tn_response_json(resp, 200, json_pack("{s:s, s:o}", "target", req->params[0], "logs", out));
	return 0;
}
