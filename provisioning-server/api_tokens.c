/* api_tokens.c - API tokens (admin: create, list, revoke) and enrollment
 * tokens (operator).  A secret is shown once, in the creation answer; the
 * store keeps only its sha256. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "json.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

/* Longest ttl accepted: ten years. */
#define TTL_MAX_S (10ll * 365 * 24 * 3600)

static bool valid_token_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static void expiry(json_int_t ttl_s, char out[TN_STORE_TIME_LEN + 1])
{
	tn_store_time_format(time(NULL) + (time_t)ttl_s, out);
}

TN_HANDLER(tn_api_token_create)
{
	static const char *const keys[] = {"name", "role", "ttl_s", NULL};
	json_t *body = NULL;
	const char *name = NULL, *role = NULL;
	json_int_t ttl = 0;
	char expires[TN_STORE_TIME_LEN + 1], hash[65];
	char *secret = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "name", true, &name, err)) ||
	    (rc = tn_json_get_string(body, "", "role", true, &role, err)) ||
	    (rc = tn_json_get_int(body, "", "ttl_s", false, 1, TTL_MAX_S, &ttl, err)))
		goto out;
	if (!valid_token_name(name)) {
		rc = tn_fail(err, TN_E_INVALID,
			     "name: \"%s\" must be 1 to 64 of letters, digits, '-', '_' and '.'",
			     name);
		goto out;
	}
	if (tn_role_parse(role) < 0) {
		rc = tn_fail(err, TN_E_INVALID,
			     "role: \"%s\" is not one of viewer, developer, operator, admin", role);
		goto out;
	}
	if (ttl)
		expiry(ttl, expires);
	secret = tn_token_generate("tn_");
	tn_token_hash(secret, hash);
	if ((rc = tn_store_api_token_create(req->srv->store, name, hash, role, ttl ? expires : NULL,
					    req->who.name, err)) ||
	    (rc = tn_auth_reload(req->srv->auth, err)))
		goto out;
	tn_response_audit(resp, "token", name);
	tn_response_json(resp, 201,
			 json_pack("{s:s, s:s, s:s, s:s?}", "name", name, "role", role, "token",
				   secret, "expires", ttl ? expires : NULL));
out:
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	json_decref(body);
	return rc;
}

TN_HANDLER(tn_api_token_list)
{
	json_t *out = NULL;
	long limit;
	int rc;

	if ((rc = tn_request_limit(req, TN_STORE_LIMIT_DEFAULT, TN_STORE_LIMIT_MAX, &limit, err)) ||
	    (rc = tn_store_api_token_list(req->srv->store, (unsigned)limit,
					  tn_request_query(req, "after"), &out, err)))
		return rc;
	tn_response_json(resp, 200, out);
	return 0;
}

TN_HANDLER(tn_api_token_revoke)
{
	const char *name = req->params[0];
	int rc;

	tn_response_audit(resp, "token", name);
	if ((rc = tn_store_api_token_revoke(req->srv->store, name, err)) ||
	    (rc = tn_auth_reload(req->srv->auth, err)))
		return rc;
	resp->status = 204;
	return 0;
}

TN_HANDLER(tn_api_enrollment_token_create)
{
	static const char *const keys[] = {"cluster", "uses", "ttl_s", NULL};
	json_t *body = NULL, *out = NULL;
	const char *cluster = NULL;
	json_int_t uses = 1, ttl = 24 * 3600;
	char expires[TN_STORE_TIME_LEN + 1], hash[65];
	char *secret = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "cluster", true, &cluster, err)) ||
	    (rc = tn_json_get_int(body, "", "uses", false, 1, 100000, &uses, err)) ||
	    (rc = tn_json_get_int(body, "", "ttl_s", false, 60, TTL_MAX_S, &ttl, err)))
		goto out;
	tn_response_audit(resp, "cluster", cluster);
	expiry(ttl, expires);
	secret = tn_token_generate("tne_");
	tn_token_hash(secret, hash);
	if ((rc = tn_store_enrollment_token_create(req->srv->store, hash, cluster, uses, expires,
						   req->who.name, &out, err)))
		goto out;
	json_object_set_new(out, "token", json_string(secret));
	tn_response_json(resp, 201, out);
out:
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	json_decref(body);
	return rc;
}

/* The operator gives the secret back (it was shown once, and is what the
 * node's install command holds): a token has no other name. */
TN_HANDLER(tn_api_enrollment_token_revoke)
{
	static const char *const keys[] = {"token", NULL};
	json_t *body = NULL;
	const char *token = NULL;
	char hash[65];
	char *cluster = NULL;
	int rc;

	if ((rc = tn_json_parse_object(req->body, req->body_len, &body, err)) ||
	    (rc = tn_json_check_keys(body, "", keys, err)) ||
	    (rc = tn_json_get_string(body, "", "token", true, &token, err)))
		goto out;
	tn_token_hash(token, hash);
	if ((rc = tn_store_enrollment_token_revoke(req->srv->store, hash, &cluster, err)))
		goto out;
	tn_response_audit(resp, "cluster", cluster);
	resp->status = 204;
out:
	free(cluster);
	json_decref(body);
	return rc;
}
