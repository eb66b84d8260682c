/* api_webhooks.c - webhooks (operator: create, delete; viewer: list, get).
 * The deliveries themselves are webhook.c's.  Every webhook shown carries
 * public_key, the server's Ed25519 key that signs the deliveries, so that
 * whoever sets up the receiver has what it verifies them with. */
#include <stdlib.h>

#include "api.h"
#include "json.h"
#include "server.h"
#include "sign.h"
#include "store.h"
#include "webhook.h"

/* Adds public_key to one webhook (borrowed). */
static void with_key(struct tn_server *srv, json_t *hook)
{
	char *key = tn_key_public_b64(srv->key);

	json_object_set_new(hook, "public_key", json_string(key));
	free(key);
}

TN_HANDLER(tn_api_webhook_create)
{
	static const char *const keys[] = {"url", "events", NULL};
	json_t *body = NULL, *events = NULL, *out = NULL;
	const char *url = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "url", true, &url, err)) ||
	    (rc = tn_json_get_array(body, "", "events", true, &events, err)) ||
	    (rc = tn_webhook_check_url(url, err)) || (rc = tn_webhook_check_events(events, err)))
		goto out;
	if ((rc = tn_store_webhook_create(req->srv->store, url, events, req->who.name, &out, err)))
		goto out;
	tn_response_audit(resp, "webhook", json_string_value(json_object_get(out, "id")));
	resp->audit_detail = json_pack("{s:s, s:O}", "url", url, "events", events);
	with_key(req->srv, out);
	tn_response_json(resp, 201, out);
out:
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_webhook_list)
{
	json_t *out = NULL, *hook;
	long limit;
	size_t i;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_webhook_list(req->srv->store, (unsigned)limit,
					tn_request_query(req, "after"), &out, err)))
		return rc;
	json_array_foreach(json_object_get(out, "items"), i, hook) with_key(req->srv, hook);
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_webhook_get)
{
	json_t *out = NULL;
	int rc;

	if ((rc = tn_store_webhook_get(req->srv->store, req->params[0], &out, err)))
		return rc;
	with_key(req->srv, out);
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_webhook_delete)
{
	int rc;

	tn_response_audit(resp, "webhook", req->params[0]);
	if ((rc = tn_store_webhook_delete(req->srv->store, req->params[0], err)))
		return rc;
	resp->status = 204;
	return 0;
}
