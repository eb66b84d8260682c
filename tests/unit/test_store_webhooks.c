/* test_store_webhooks.c - the store's webhook side on real files: webhooks
 * made, listed, deleted with their deliveries; the scan cursor; deliveries
 * queued once per event, bounded per webhook, due one per webhook in
 * order; attempts recorded, counted and pruned; and all of it kept across
 * a reopen (a server restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "harness.h"
#include "log.h"
#include "store.h"
#include "xalloc.h"

struct fixture {
	char *dir;
	char *path;
	struct tn_store *store;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct tn_error err;

	f->dir = xstrdup("/tmp/tn-store-webhooks-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->path = xasprintf("%s/tender.db", f->dir);
	if (tn_store_open(f->path, &f->store, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	int rc;

	tn_store_close(f->store);
	rc = tn_remove_tree(f->dir, &err);
	free(f->path);
	free(f->dir);
	free(f);
	return rc;
}

static json_int_t num(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static int64_t event(struct tn_store *store, const char *action)
{
	struct tn_error err;
	int64_t id = 0;

	assert_int_equal(
	    tn_store_event_append(store, "admin", action, "cluster", "c1", "ok", NULL, &id, &err),
	    0);
	return id;
}

/* Makes a webhook; returns its id (caller frees). */
static char *hook(struct tn_store *store, const char *url, const char *pattern)
{
	json_t *events = json_pack("[s]", pattern), *out = NULL;
	struct tn_error err;
	char *id;

	if (tn_store_webhook_create(store, url, events, "ops", &out, &err) != 0)
		fail_msg("create: %s", err.message);
	assert_true(strncmp(th_str(out, "id"), "w-", 2) == 0);
	id = xstrdup(th_str(out, "id"));
	json_decref(out);
	json_decref(events);
	return id;
}

static json_t *get(struct tn_store *store, const char *id)
{
	struct tn_error err;
	json_t *out = NULL;

	if (tn_store_webhook_get(store, id, &out, &err) != 0)
		fail_msg("get %s: %s", id, err.message);
	return out;
}

static json_t *due(struct tn_store *store, int64_t now_ms, int64_t *next)
{
	struct tn_error err;
	json_t *out = NULL;
	int64_t n = 0;

	assert_int_equal(tn_store_webhook_due(store, now_ms, 100, &out, &n, &err), 0);
	if (next)
		*next = n;
	return out;
}

static void attempt(struct tn_store *store, int64_t delivery, const char *state, int status,
		    const char *error, int64_t at_ms, int64_t next_ms, unsigned keep, bool want)
{
	struct tn_store_webhook_attempt a = {.delivery_id = delivery,
					     .status = status,
					     .error = error,
					     .at_ms = at_ms,
					     .duration_ms = 5,
					     .state = state,
					     .next_ms = next_ms,
					     .keep = keep};
	struct tn_error err;
	bool recorded = !want;

	if (tn_store_webhook_attempt(store, &a, &recorded, &err) != 0)
		fail_msg("attempt: %s", err.message);
	assert_int_equal(recorded, want);
}

static void test_create_get_list_delete(void **state)
{
	struct fixture *f = *state;
	json_t *events = json_pack("[s, s]", "rollout.*", "cluster.create"), *out = NULL, *list;
	struct tn_error err;
	char *id2;

	event(f->store, "cluster.create"); /* before: not for the webhook */
	assert_int_equal(tn_store_webhook_create(f->store, "http://h/a", events, "ops", &out, &err),
			 0);
	assert_string_equal(th_str(out, "url"), "http://h/a");
	assert_true(json_equal(json_object_get(out, "events"), events));
	assert_string_equal(th_str(out, "created_by"), "ops");
	assert_non_null(th_str(out, "created"));
	assert_int_equal(num(json_object_get(out, "deliveries"), "ok"), 0);
	assert_int_equal(num(json_object_get(out, "deliveries"), "failed"), 0);
	assert_int_equal(num(json_object_get(out, "deliveries"), "pending"), 0);
	assert_true(json_is_null(json_object_get(json_object_get(out, "deliveries"), "last")));
	id2 = hook(f->store, "https://h/b", "*");

	/* matchers: since_event is the last event when each was made */
	{
		json_t *m = NULL;

		assert_int_equal(tn_store_webhook_matchers(f->store, &m, &err), 0);
		assert_int_equal(json_array_size(m), 2);
		assert_string_equal(th_str(json_array_get(m, 0), "id"), th_str(out, "id"));
		assert_int_equal(num(json_array_get(m, 0), "since_event"), 1);
		assert_true(json_equal(json_object_get(json_array_get(m, 0), "events"), events));
		json_decref(m);
	}

	/* a list in creation order, in pages */
	assert_int_equal(tn_store_webhook_list(f->store, 1, NULL, &list, &err), 0);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
	assert_string_equal(th_str(json_array_get(json_object_get(list, "items"), 0), "id"),
			    th_str(out, "id"));
	{
		json_t *rest = NULL;

		assert_int_equal(tn_store_webhook_list(f->store, 1, th_str(list, "next"), &rest, &err),
				 0);
		assert_string_equal(th_str(json_array_get(json_object_get(rest, "items"), 0), "id"),
				    id2);
		assert_true(json_is_null(json_object_get(rest, "next")));
		json_decref(rest);
	}
	json_decref(list);
	assert_int_not_equal(tn_store_webhook_list(f->store, 1, "junk", &list, &err), 0);
	assert_int_equal(err.code, TN_E_INVALID);

	/* delete, twice */
	assert_int_equal(tn_store_webhook_delete(f->store, id2, &err), 0);
	assert_int_not_equal(tn_store_webhook_delete(f->store, id2, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_int_not_equal(tn_store_webhook_get(f->store, id2, &list, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
	assert_non_null(strstr(err.message, id2));

	json_decref(out);
	json_decref(events);
	free(id2);
}

static void test_scan_cursor(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	int64_t v = -1;

	assert_int_equal(tn_store_webhook_scan_get(f->store, &v, &err), 0);
	assert_int_equal(v, 0);
	assert_int_equal(tn_store_webhook_scan_set(f->store, 5, &err), 0);
	assert_int_equal(tn_store_webhook_scan_set(f->store, 3, &err), 0); /* never back */
	assert_int_equal(tn_store_webhook_scan_get(f->store, &v, &err), 0);
	assert_int_equal(v, 5);
}

static void test_event_get(void **state)
{
	struct fixture *f = *state;
	struct tn_error err;
	int64_t id = event(f->store, "cluster.delete");
	json_t *e = NULL;

	assert_int_equal(tn_store_event_get(f->store, id, &e, &err), 0);
	assert_int_equal(num(e, "id"), id);
	assert_string_equal(th_str(e, "action"), "cluster.delete");
	assert_string_equal(th_str(e, "object_id"), "c1");
	json_decref(e);
	assert_int_not_equal(tn_store_event_get(f->store, id + 1, &e, &err), 0);
	assert_int_equal(err.code, TN_E_NOT_FOUND);
}

static void test_deliveries(void **state)
{
	struct fixture *f = *state;
	char *a = hook(f->store, "http://h/a", "*"), *b = hook(f->store, "http://h/b", "*");
	int64_t e1 = event(f->store, "cluster.create"), e2 = event(f->store, "cluster.update");
	struct tn_error err;
	unsigned dropped = 9;
	json_t *d, *w, *last, *recent;
	int64_t next = -1, d1, d2;

	/* queued once per webhook and event */
	assert_int_equal(
	    tn_store_webhook_enqueue(f->store, a, e1, "cluster.create", 1000, 10, &dropped, &err),
	    0);
	assert_int_equal(dropped, 0);
	assert_int_equal(
	    tn_store_webhook_enqueue(f->store, a, e1, "cluster.create", 1000, 10, NULL, &err), 0);
	assert_int_equal(
	    tn_store_webhook_enqueue(f->store, a, e2, "cluster.update", 1000, 10, NULL, &err), 0);
	assert_int_equal(
	    tn_store_webhook_enqueue(f->store, b, e2, "cluster.update", 1000, 10, NULL, &err), 0);
	/* a webhook gone: nothing */
	assert_int_equal(tn_store_webhook_enqueue(f->store, "w-gone", e2, "cluster.update", 1000,
						  10, NULL, &err),
			 0);
	w = get(f->store, a);
	assert_int_equal(num(json_object_get(w, "deliveries"), "pending"), 2);
	assert_int_equal(json_array_size(json_object_get(w, "recent")), 2);
	json_decref(w);

	/* not due yet */
	d = due(f->store, 999, &next);
	assert_int_equal(json_array_size(d), 0);
	assert_int_equal(next, 1000);
	json_decref(d);
	/* due: one per webhook, a's first event first */
	d = due(f->store, 1000, &next);
	assert_int_equal(json_array_size(d), 2);
	assert_string_equal(th_str(json_array_get(d, 0), "webhook"), a);
	assert_int_equal(num(json_array_get(d, 0), "event_id"), e1);
	assert_string_equal(th_str(json_array_get(d, 0), "event"), "cluster.create");
	assert_string_equal(th_str(json_array_get(d, 0), "url"), "http://h/a");
	assert_int_equal(num(json_array_get(d, 0), "attempts"), 0);
	assert_string_equal(th_str(json_array_get(d, 1), "webhook"), b);
	assert_int_equal(next, 0);
	d1 = num(json_array_get(d, 0), "id");
	json_decref(d);

	/* a's first attempt fails: pending again at 1500; its second event is
	 * due now */
	attempt(f->store, d1, "pending", 500, "HTTP 500", 1000, 1500, 100, true);
	d = due(f->store, 1100, &next);
	assert_int_equal(json_array_size(d), 2);
	assert_int_equal(num(json_array_get(d, 0), "event_id"), e2);
	assert_string_equal(th_str(json_array_get(d, 0), "webhook"), a);
	assert_int_equal(next, 1500);
	d2 = num(json_array_get(d, 0), "id");
	json_decref(d);
	w = get(f->store, a);
	last = json_object_get(json_object_get(w, "deliveries"), "last");
	assert_int_equal(num(last, "event_id"), e1);
	assert_string_equal(th_str(last, "state"), "pending");
	assert_int_equal(num(last, "status"), 500);
	assert_int_equal(num(last, "attempts"), 1);
	assert_string_equal(th_str(last, "error"), "HTTP 500");
	assert_string_equal(th_str(last, "at"), "1970-01-01T00:00:01Z");
	json_decref(w);

	/* then delivered on the second attempt, and the other one fails for good */
	attempt(f->store, d1, "delivered", 200, NULL, 1600, 0, 100, true);
	attempt(f->store, d2, "failed", 0, "Connection refused", 1700, 0, 100, true);
	/* again: no longer pending, nothing recorded */
	attempt(f->store, d1, "delivered", 200, NULL, 1800, 0, 100, false);
	w = get(f->store, a);
	assert_int_equal(num(json_object_get(w, "deliveries"), "ok"), 1);
	assert_int_equal(num(json_object_get(w, "deliveries"), "failed"), 1);
	assert_int_equal(num(json_object_get(w, "deliveries"), "pending"), 0);
	last = json_object_get(json_object_get(w, "deliveries"), "last");
	assert_int_equal(num(last, "event_id"), e2);
	assert_string_equal(th_str(last, "state"), "failed");
	assert_true(json_is_null(json_object_get(last, "status")));
	recent = json_object_get(w, "recent");
	assert_int_equal(json_array_size(recent), 2);
	/* newest first; the first delivery's two attempts */
	assert_int_equal(num(json_array_get(recent, 1), "event_id"), e1);
	assert_int_equal(num(json_array_get(recent, 1), "attempts"), 2);
	assert_int_equal(json_array_size(json_object_get(json_array_get(recent, 1), "tries")), 2);
	assert_int_equal(
	    num(json_array_get(json_object_get(json_array_get(recent, 1), "tries"), 0), "status"),
	    500);
	assert_int_equal(num(json_array_get(json_object_get(json_array_get(recent, 1), "tries"), 1),
			     "duration_ms"),
			 5);
	json_decref(w);

	/* a bad state is refused */
	{
		struct tn_store_webhook_attempt bad = {.delivery_id = d1, .state = "done"};

		assert_int_not_equal(tn_store_webhook_attempt(f->store, &bad, NULL, &err), 0);
		assert_int_equal(err.code, TN_E_INVALID);
	}

	/* deleting b takes its pending delivery with it */
	assert_int_equal(tn_store_webhook_delete(f->store, b, &err), 0);
	d = due(f->store, 100000, NULL);
	assert_int_equal(json_array_size(d), 0);
	json_decref(d);
	free(a);
	free(b);
}

static void test_queue_bound_and_pruning(void **state)
{
	struct fixture *f = *state;
	char *a = hook(f->store, "http://h/a", "*");
	struct tn_error err;
	unsigned dropped = 0, total = 0;
	json_t *w, *d;
	int64_t first = 0;

	for (int i = 0; i < 5; i++) {
		int64_t e = event(f->store, "cluster.update");

		if (!first)
			first = e;
		assert_int_equal(tn_store_webhook_enqueue(f->store, a, e, "cluster.update", 10, 3,
							  &dropped, &err),
				 0);
		total += dropped;
	}
	/* the two oldest went: failed, "queue full" */
	assert_int_equal(total, 2);
	w = get(f->store, a);
	assert_int_equal(num(json_object_get(w, "deliveries"), "pending"), 3);
	assert_int_equal(num(json_object_get(w, "deliveries"), "failed"), 2);
	assert_string_equal(th_str(json_object_get(json_object_get(w, "deliveries"), "last"), "error"),
			    "queue full");
	json_decref(w);
	d = due(f->store, 10, NULL);
	assert_int_equal(num(json_array_get(d, 0), "event_id"), first + 2);
	json_decref(d);

	/* finished ones beyond keep go; the counts stay */
	for (int i = 0; i < 3; i++) {
		d = due(f->store, 10, NULL);
		attempt(f->store, num(json_array_get(d, 0), "id"), "delivered", 204, NULL, 20 + i,
			0, 2, true);
		json_decref(d);
	}
	w = get(f->store, a);
	assert_int_equal(num(json_object_get(w, "deliveries"), "ok"), 3);
	assert_int_equal(num(json_object_get(w, "deliveries"), "failed"), 2);
	assert_int_equal(json_array_size(json_object_get(w, "recent")), 2);
	json_decref(w);
	free(a);
}

/* A server restart: pending deliveries and the cursor are still there. */
static void test_kept_across_reopen(void **state)
{
	struct fixture *f = *state;
	char *a = hook(f->store, "http://h/a", "*");
	int64_t e = event(f->store, "cluster.create");
	struct tn_error err;
	json_t *d;
	int64_t v = 0;

	assert_int_equal(
	    tn_store_webhook_enqueue(f->store, a, e, "cluster.create", 50, 10, NULL, &err), 0);
	assert_int_equal(tn_store_webhook_scan_set(f->store, e, &err), 0);
	tn_store_close(f->store);
	assert_int_equal(tn_store_open(f->path, &f->store, &err), 0);
	d = due(f->store, 50, NULL);
	assert_int_equal(json_array_size(d), 1);
	assert_int_equal(num(json_array_get(d, 0), "event_id"), e);
	json_decref(d);
	assert_int_equal(tn_store_webhook_scan_get(f->store, &v, &err), 0);
	assert_int_equal(v, e);
	free(a);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_create_get_list_delete),
	    T(test_scan_cursor),
	    T(test_event_get),
	    T(test_deliveries),
	    T(test_queue_bound_and_pruning),
	    T(test_kept_across_reopen),
	};
#undef T

	json_object_seed(0);
	tn_log_set_level(TN_LOG_WARN);
	return cmocka_run_group_tests_name("store_webhooks", tests, NULL, NULL);
}
