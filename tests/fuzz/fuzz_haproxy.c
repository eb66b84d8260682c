/* fuzz_haproxy.c - libFuzzer target for the parsers of HAProxy's runtime
 * API answers (provisioning-server/lb_haproxy.c): `show stat` and `show
 * backend`.  The input's first line is the backend asked about, the rest
 * the answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "lb_haproxy.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	char *reply = strchr(text, '\n'), *copy = NULL;
	struct tn_lb_member *m = NULL;
	size_t n = 0;
	int rc;

	if (!reply)
		goto out;
	*reply++ = '\0';
	copy = xstrdup(reply);
	if (tn_haproxy_parse_stat(reply, text, &m, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			if (strncmp(m[i].name, "t-", 2) != 0 || !m[i].addr || !m[i].status)
				abort();
		tn_lb_members_free(m, n);
	} else if (m || n) {
		abort();
	}
	rc = tn_haproxy_parse_backends(copy, text, NULL);
	if (rc != 0 && rc != -TN_E_NOT_FOUND && rc != -TN_E_CONFLICT)
		abort();
out:
	free(copy);
	free(text);
	return 0;
}
