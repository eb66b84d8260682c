/* api_targets.c - targets as operators see them: list, get, revoke an
 * agent's token, and the tail of a bundle's log as the agent last sent it. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "documents.h"
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
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_target_get)
{
	json_t *out = NULL;
	int rc = tn_store_target_get(req->srv->store, req->params[0], &out, err);

	if (rc == 0)
		tn_response_json(resp, 200, out);
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
