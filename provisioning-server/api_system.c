/* api_system.c - GET /healthz (is the server up and its store readable)
 * and GET /metrics (Prometheus text format). */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

TN_HANDLER(tn_api_healthz)
{
	int64_t last;
	int rc = tn_store_event_last_id(req->srv->store, &last, err);

	if (rc != 0)
		return rc;
	tn_response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
	return 0;
}

/* One gauge line per {label: count} entry of obj. */
static void write_gauge(FILE *out, const char *name, const char *help, const char *label,
			json_t *obj)
{
	const char *key;
	json_t *value;

	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	json_object_foreach(obj, key, value)
		fprintf(out, "%s{%s=\"%s\"} %lld\n", name, label, key,
			(long long)json_integer_value(value));
}

TN_HANDLER(tn_api_metrics)
{
	struct tn_store *st = req->srv->store;
	int64_t bundles, dists, clusters;
	json_t *by_state = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	int rc;

	if ((rc = tn_store_bundle_count(st, &bundles, err)) ||
	    (rc = tn_store_distribution_count(st, &dists, err)) ||
	    (rc = tn_store_cluster_count(st, &clusters, err)) ||
	    (rc = tn_store_target_count_by_state(st, NULL, &by_state, err)))
		return rc;
	out = open_memstream(&text, &len);
	tn_metrics_write(req->srv->metrics, out);
	fprintf(out,
		"# HELP tender_bundles Bundles stored.\n# TYPE tender_bundles gauge\n"
		"tender_bundles %lld\n"
		"# HELP tender_distributions Distributions stored.\n"
		"# TYPE tender_distributions gauge\ntender_distributions %lld\n"
		"# HELP tender_clusters Clusters.\n# TYPE tender_clusters gauge\n"
		"tender_clusters %lld\n",
		(long long)bundles, (long long)dists, (long long)clusters);
	write_gauge(out, "tender_targets", "Targets by state (removed ones not counted).",
		    "state", by_state);
	fclose(out);
	json_decref(by_state);
	resp->status = 200;
	resp->body = text;
	resp->body_len = len;
	resp->content_type = "text/plain; version=0.0.4";
	return 0;
}
