/* metrics.c - request counters.  Routes come from a fixed table and
 * statuses from a short list, so a small array searched linearly under one
 * mutex is enough; the cap keeps a hostile mix of statuses from growing it. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define MAX_SERIES 512

struct series {
	const char *route;
	int status;
	uint64_t count;
};

struct tn_metrics {
	pthread_mutex_t lock;
	struct series series[MAX_SERIES];
	size_t nseries;
	uint64_t bytes_in, bytes_out;
};

struct tn_metrics *tn_metrics_new(void)
{
	struct tn_metrics *m = xcalloc(1, sizeof *m);

	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void tn_metrics_free(struct tn_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void tn_metrics_request(struct tn_metrics *m, const char *route, int status, uint64_t bytes_in,
			uint64_t bytes_out)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	m->bytes_in += bytes_in;
	m->bytes_out += bytes_out;
	for (i = 0; i < m->nseries; i++)
		if (m->series[i].status == status && strcmp(m->series[i].route, route) == 0)
			break;
	if (i == m->nseries) {
		if (m->nseries == MAX_SERIES)
			goto out;
		m->series[i].route = route;
		m->series[i].status = status;
		m->nseries++;
	}
	m->series[i].count++;
out:
	pthread_mutex_unlock(&m->lock);
}

void tn_metrics_write(struct tn_metrics *m, FILE *out)
{
	pthread_mutex_lock(&m->lock);
	fputs("# HELP tender_http_requests_total HTTP requests by route pattern and status.\n"
	      "# TYPE tender_http_requests_total counter\n", out);
	for (size_t i = 0; i < m->nseries; i++)
		fprintf(out, "tender_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
			m->series[i].route, m->series[i].status,
			(unsigned long long)m->series[i].count);
	fprintf(out,
		"# HELP tender_http_received_bytes_total Request body bytes received.\n"
		"# TYPE tender_http_received_bytes_total counter\n"
		"tender_http_received_bytes_total %llu\n"
		"# HELP tender_http_sent_bytes_total Response body bytes sent.\n"
		"# TYPE tender_http_sent_bytes_total counter\n"
		"tender_http_sent_bytes_total %llu\n",
		(unsigned long long)m->bytes_in, (unsigned long long)m->bytes_out);
	pthread_mutex_unlock(&m->lock);
}
