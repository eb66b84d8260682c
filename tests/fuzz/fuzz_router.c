/* fuzz_router.c - libFuzzer target for the server's HTTP API run in-process
 * (provisioning-server/router.c: tn_router_call, as tests/unit/test_router.c
 * does): route matching, path and query decoding, headers, authentication,
 * and every handler's JSON body parsing, on a real store in a temporary data
 * directory (removed at exit).  An input is
 *   FLAGS METHOD SP URL LF (NAME: VALUE LF)* LF BODY
 * where FLAGS is one byte: 'A' adds an admin's Authorization header, 'V' a
 * viewer's, anything else none.  State accumulates between inputs, as on a
 * running server. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "auth.h"
#include "blobstore.h"
#include "documents.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "server.h"
#include "sign.h"
#include "store.h"
#include "xalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADERS_MAX 8

static struct tn_server srv;
static char *admin_header, *viewer_header;

static char *make_token(const char *name, const char *role)
{
	char *secret = tn_token_generate("tn_");
	char hash[65], *header;

	tn_token_hash(secret, hash);
	if (tn_store_api_token_create(srv.store, name, hash, role, NULL, "fuzz", NULL))
		abort();
	header = xasprintf("Authorization: Bearer %s", secret);
	free(secret);
	return header;
}

static void teardown(void)
{
	int ignored;

	tn_documents_free(srv.documents);
	tn_auth_free(srv.auth);
	tn_metrics_free(srv.metrics);
	tn_blobstore_close(srv.blobs);
	tn_store_close(srv.store);
	tn_key_free(srv.key);
	ignored = tn_remove_tree(srv.data_dir, NULL);
	(void)ignored;
	free(srv.tmp_dir);
	free(srv.data_dir);
	free(admin_header);
	free(viewer_header);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char *db;

	(void)argc;
	(void)argv;
	tn_log_set_level(TN_LOG_ERROR); /* a line per request would drown the fuzzer */
	json_object_seed(0);
	srv.data_dir = xasprintf("%s/tn-fuzz-router-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(srv.data_dir))
		abort();
	db = xasprintf("%s/tender.db", srv.data_dir);
	srv.tmp_dir = xasprintf("%s/tmp", srv.data_dir);
	srv.max_upload = 1 << 20;
	srv.archive_limits = tn_archive_limits_default;
	if (tn_mkdir_p(srv.tmp_dir, 0700, NULL) || tn_store_open(db, &srv.store, NULL) ||
	    tn_blobstore_open(srv.data_dir, &srv.blobs, NULL) || tn_key_generate(&srv.key, NULL))
		abort();
	admin_header = make_token("root", "admin");
	viewer_header = make_token("watcher", "viewer");
	if (tn_auth_open(srv.store, &srv.auth, NULL))
		abort();
	srv.metrics = tn_metrics_new();
	srv.documents = tn_documents_new();
	free(db);
	atexit(teardown);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *line, *next, *sp, *body;
	const char *headers[HEADERS_MAX + 2];
	struct tn_response resp;
	size_t nh = 0, body_len;

	if (size < 2)
		return 0;
	text = xstrndup((const char *)data + 1, size - 1);
	/* The body may hold NUL bytes: it is taken by length from data. */
	if (!(next = strchr(text, '\n')) || !(sp = memchr(text, ' ', (size_t)(next - text))))
		goto out;
	*next++ = '\0';
	*sp = '\0';
	if (data[0] == 'A')
		headers[nh++] = admin_header;
	else if (data[0] == 'V')
		headers[nh++] = viewer_header;
	while ((line = next) && *line != '\n' && *line != '\0') {
		if (!(next = strchr(line, '\n')))
			goto out;
		*next++ = '\0';
		if (nh < HEADERS_MAX + 1)
			headers[nh++] = line;
	}
	headers[nh] = NULL;
	body = next && *next == '\n' ? next + 1 : next;
	body_len = body ? size - 1 - (size_t)(body - text) : 0;
	tn_router_call(&srv, text, sp + 1, headers,
		       body ? (const char *)data + 1 + (body - text) : NULL, body_len, &resp);
	if (resp.status < 100 || resp.status > 599)
		abort();
	if (resp.status >= 400 && !json_object_get(resp.json, "error"))
		abort(); /* every refusal says why */
	tn_response_clear(&resp);
out:
	free(text);
	return 0;
}
