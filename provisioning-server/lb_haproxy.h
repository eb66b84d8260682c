/* lb_haproxy.h - the `haproxy` load-balancer driver (lb.h) and the parsers
 * of its `show stat` and `show backend` answers, exposed for the unit tests
 * and the fuzzer. */
#ifndef TN_LB_HAPROXY_H
#define TN_LB_HAPROXY_H

#include "lb.h"

extern const struct tn_lb_ops tn_lb_haproxy;

/* The members of backend in a `show stat` answer (CSV with a "# pxname,..."
 * header): the servers named like targets ("t-…"); reply is cut up in
 * place.  *out caller-freed with tn_lb_members_free.  TN_E_INVALID without
 * a usable header, TN_E_TOO_LARGE over 10,000 servers. */
int tn_haproxy_parse_stat(char *reply, const char *backend, struct tn_lb_member **out,
			  size_t *count, struct tn_error *err) TN_MUST_CHECK;

/* Whether a `show backend` answer ("# name", then one name a line) lists
 * backend: 0 when it does, TN_E_NOT_FOUND when not, TN_E_CONFLICT for an
 * answer without that header (a refusal).  reply is cut up in place. */
int tn_haproxy_parse_backends(char *reply, const char *backend, struct tn_error *err)
	TN_MUST_CHECK;

#endif
