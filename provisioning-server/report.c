/* report.c - see report.h. */
#include "report.h"

#include <string.h>

#include "json.h"
#include "xalloc.h"

static bool one_of(const char *s, const char *const list[])
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static int check_enum(const char *value, const char *field, const char *const list[],
		      struct tn_error *err)
{
	if (!value || one_of(value, list))
		return 0;
	return tn_fail(err, TN_E_INVALID, "%s: \"%.64s\" is not one of the allowed values", field,
		       value);
}

static int check_bundles(json_t *bundles, struct tn_error *err)
{
	static const char *const keys[] = {"name", "state", "restarts", "reason", NULL};
	static const char *const states[] = {"INSTALLED", "RESOLVED", "STARTING", "ACTIVE",
					     "STOPPING",  "UNINSTALLED", "FAILED", NULL};
	json_t *b;
	size_t i;

	if (json_array_size(bundles) > TN_REPORT_BUNDLES_MAX)
		return tn_fail(err, TN_E_INVALID, "bundles: more than %d entries",
			       TN_REPORT_BUNDLES_MAX);
	json_array_foreach(bundles, i, b) {
		char *where = xasprintf("bundles[%zu]", i);
		const char *name = NULL, *state = NULL, *reason = NULL;
		json_int_t restarts = 0;
		int rc;

		if (!json_is_object(b))
			rc = tn_fail(err, TN_E_INVALID, "%s: must be an object", where);
		else if (!(rc = tn_json_check_keys(b, where, keys, err)) &&
			 !(rc = tn_json_get_string(b, where, "name", true, &name, err)) &&
			 !(rc = tn_json_get_string(b, where, "state", true, &state, err)) &&
			 !(rc = tn_json_get_int(b, where, "restarts", false, 0, INT32_MAX, &restarts,
						err)) &&
			 !(rc = tn_json_get_string(b, where, "reason", false, &reason, err)))
			rc = check_enum(state, "bundles[].state", states, err);
		if (rc == 0 && (strlen(name) > 128 || (reason && strlen(reason) > 1024)))
			rc = tn_fail(err, TN_E_INVALID, "%s: name or reason too long", where);
		free(where);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_tails(json_t *tails, struct tn_error *err)
{
	const char *key;
	json_t *value;

	if (json_object_size(tails) > TN_REPORT_BUNDLES_MAX)
		return tn_fail(err, TN_E_INVALID, "log_tail: more than %d bundles",
			       TN_REPORT_BUNDLES_MAX);
	json_object_foreach(tails, key, value) {
		if (!json_is_string(value) || json_string_length(value) > TN_REPORT_TAIL_MAX)
			return tn_fail(err, TN_E_INVALID,
				       "log_tail.%.128s: must be a string of at most %d bytes", key,
				       TN_REPORT_TAIL_MAX);
	}
	return 0;
}

int tn_agent_report_parse(const char *body, size_t len, struct tn_agent_report *out,
			  struct tn_error *err)
{
	static const char *const keys[] = {"generation", "release", "phase",   "state",
					   "progress",   "health",  "bundles", "message",
					   "log_tail",   "serves_port", NULL};
	static const char *const phases[] = {"prepare", "switch", "commit", "rollback", "remove",
					     NULL};
	static const char *const states[] = {"started", "progress", "succeeded", "failed", NULL};
	static const char *const healths[] = {"unknown", "healthy", "unhealthy", NULL};
	json_t *progress = NULL;
	json_int_t generation = 0, done = 0, total = 0, serves_port = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = tn_json_parse_object(body, len, &out->root, err)))
		return rc;
	if ((rc = tn_json_check_keys(out->root, "", keys, err)) ||
	    (rc = tn_json_get_int(out->root, "", "generation", true, 0, INT64_MAX, &generation,
				  err)) ||
	    (rc = tn_json_get_string(out->root, "", "release", false, &out->release, err)) ||
	    (rc = tn_json_get_string(out->root, "", "phase", false, &out->phase, err)) ||
	    (rc = tn_json_get_string(out->root, "", "state", !!json_object_get(out->root, "phase"),
				     &out->state, err)) ||
	    (rc = tn_json_get_object(out->root, "", "progress", false, &progress, err)) ||
	    (rc = tn_json_get_string(out->root, "", "health", false, &out->health, err)) ||
	    (rc = tn_json_get_array(out->root, "", "bundles", false, &out->bundles, err)) ||
	    (rc = tn_json_get_string(out->root, "", "message", false, &out->message, err)) ||
	    (rc = tn_json_get_object(out->root, "", "log_tail", false, &out->log_tail, err)) ||
	    (rc = tn_json_get_int(out->root, "", "serves_port", false, 1, 65535, &serves_port,
				  err)) ||
	    (rc = check_enum(out->phase, "phase", phases, err)) ||
	    (rc = check_enum(out->state, "state", states, err)) ||
	    (rc = check_enum(out->health, "health", healths, err)))
		goto out;
	if (!out->phase && out->state) {
		rc = tn_fail(err, TN_E_INVALID, "state: given without a phase");
		goto out;
	}
	if (progress) {
		static const char *const pkeys[] = {"done", "total", NULL};

		if ((rc = tn_json_check_keys(progress, "progress", pkeys, err)) ||
		    (rc = tn_json_get_int(progress, "progress", "done", true, 0, INT64_MAX, &done,
					  err)) ||
		    (rc = tn_json_get_int(progress, "progress", "total", true, 0, INT64_MAX, &total,
					  err)))
			goto out;
		out->has_progress = true;
	}
	if (out->release && strlen(out->release) > 256) {
		rc = tn_fail(err, TN_E_INVALID, "release: longer than 256 bytes");
		goto out;
	}
	if (out->message && strlen(out->message) > TN_REPORT_MESSAGE_MAX) {
		rc = tn_fail(err, TN_E_INVALID, "message: longer than %d bytes",
			     TN_REPORT_MESSAGE_MAX);
		goto out;
	}
	if ((out->bundles && (rc = check_bundles(out->bundles, err))) ||
	    (out->log_tail && (rc = check_tails(out->log_tail, err))))
		goto out;
	out->generation = generation;
	out->done = done;
	out->total = total;
	out->serves_port = (int)serves_port;
out:
	if (rc)
		tn_agent_report_clear(out);
	return rc;
}

void tn_agent_report_clear(struct tn_agent_report *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof *r);
}
