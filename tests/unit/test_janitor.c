/* test_janitor.c - the blob collector keeps what a bundle row references
 * and removes what nothing references (a crash between a blob's commit
 * and its row leaves such a blob). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "blobstore.h"
#include "fsutil.h"
#include "janitor.h"
#include "server.h"
#include "store.h"
#include "xalloc.h"

static void commit_blob(struct tn_server *srv, const char *bytes, char hex[65])
{
	struct tn_blob_writer *w = NULL;
	uint64_t size;

	assert_int_equal(tn_blob_writer_begin(srv->blobs, 1 << 20, &w, NULL), 0);
	assert_int_equal(tn_blob_writer_write(w, bytes, strlen(bytes), NULL), 0);
	assert_int_equal(tn_blob_writer_commit(w, NULL, hex, &size, NULL), 0);
}

static void test_collects_only_unreferenced_blobs(void **state)
{
	struct tn_server srv = {0};
	char *dir = xstrdup("/tmp/tn-janitor-XXXXXX");
	char *db;
	char kept[65], orphan[65];
	enum tn_store_outcome outcome;
	struct tn_store_version v = {1, 0, 0, ""};
	json_t *manifest = json_pack("{s:s, s:s}", "name", "b", "version", "1.0.0");

	assert_non_null(mkdtemp(dir));
	db = xasprintf("%s/tender.db", dir);
	assert_int_equal(tn_store_open(db, &srv.store, NULL), 0);
	assert_int_equal(tn_blobstore_open(dir, &srv.blobs, NULL), 0);
	commit_blob(&srv, "referenced bytes", kept);
	commit_blob(&srv, "orphaned bytes", orphan);
	assert_int_equal(tn_store_bundle_insert(srv.store, "b", &v, kept, 16, manifest, "test",
						&outcome, NULL),
			 0);
	assert_int_equal(tn_janitor_collect(&srv, NULL), 0);
	assert_true(tn_blob_exists(srv.blobs, kept));
	assert_false(tn_blob_exists(srv.blobs, orphan));

	json_decref(manifest);
	tn_blobstore_close(srv.blobs);
	tn_store_close(srv.store);
	assert_int_equal(tn_remove_tree(dir, NULL), 0);
	free(db);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collects_only_unreferenced_blobs),
	};
	return cmocka_run_group_tests_name("janitor", tests, NULL, NULL);
}
