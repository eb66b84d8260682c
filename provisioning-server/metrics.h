/* metrics.h - request counters for GET /metrics (Prometheus text format):
 * requests by route and status, bytes in and out. */
#ifndef TN_METRICS_H
#define TN_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct tn_metrics;

struct tn_metrics *tn_metrics_new(void);
void tn_metrics_free(struct tn_metrics *m);
/* route is a pattern from the route table (static storage). */
void tn_metrics_request(struct tn_metrics *m, const char *route, int status, uint64_t bytes_in,
			uint64_t bytes_out);
/* Writes the counters in Prometheus text format. */
void tn_metrics_write(struct tn_metrics *m, FILE *out);

#endif
