/* test_rollouts.c - rolling updates of a cluster of 5 local targets running
 * the sample application behind a real HAProxy, with traffic through it
 * the whole time (DESIGN §2 "Rollout"):
 *   - 1.0 → 1.1 with a 20% canary: every target stages 1.1 first; after
 *     approval the canary switches and the rollout pauses; a second
 *     approval finishes it; zero failed requests;
 *   - 1.1 → 1.2 (broken): the canary fails, the rollout halts and ends
 *     rolled_back; the canary is back on 1.1, the others never left it, no
 *     request ever reached 1.2, none failed;
 *   - kill -9 of the server while a batch switches: restarted, the rollout
 *     finishes, every target on exactly one release;
 *   - abort after the first batch: the switched targets go back;
 *   - undo after a success: back to the previous release without a single
 *     blob download;
 *   - a target copied during a rollout ends on the new release.
 * The cases run in this order on one fleet.  Nothing sleeps to synchronise:
 * every wait polls with a deadline.  Every process is killed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet.h"
#include "haproxy.h"
#include "harness.h"
#include "xalloc.h"

#define TARGETS 5

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Kept here, not in *state: cmocka gives each case the group's state, and
 * without a group setup that is NULL again for every case. */
static struct th_fleet *the_fleet;

static struct th_fleet *fleet(void **state)
{
	static const char *const uploads[] = {"educa-1.0", "educa-1.1", "educa-1.2-broken", NULL};

	(void)state;
	if (the_fleet)
		return the_fleet;
	the_fleet = xcalloc(1, sizeof *the_fleet);
	th_fleet_start(the_fleet, 7, true, uploads, "educa@1.0", TARGETS);
	return the_fleet;
}

static int teardown(void **state)
{
	bool clean = th_fleet_destroy(the_fleet);

	(void)state;
	free(the_fleet);
	the_fleet = NULL;
	return clean ? 0 : -1;
}

/* Waits until every target of the rollout staged its release. */
static void wait_prepared(struct th_fleet *f, const char *id, size_t n)
{
	char *path = xasprintf("/api/v1/rollouts/%s", id);
	double deadline = th_now_s() + TH_FLEET_NODE_DEADLINE_S;

	for (;;) {
		json_t *r = th_fleet_get(f, path);
		json_int_t prepared = json_integer_value(json_object_get(r, "prepared"));

		json_decref(r);
		if (prepared == (json_int_t)n)
			break;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "rollout %s: %lld of %zu targets prepared", id,
				      (long long)prepared, n);
		th_pause_ms(100);
	}
	free(path);
}

/* How many of the live targets run a release of dist_prefix ("educa@1.1."). */
static size_t count_on(json_t *live, const char *dist_prefix)
{
	json_t *t;
	size_t i, n = 0;

	json_array_foreach(live, i, t) n += starts(th_str(t, "actual"), dist_prefix);
	return n;
}

/* The state of target in rollout r. */
static const char *part_of(json_t *r, const char *target)
{
	json_t *b, *t;
	size_t i, j;

	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), j, t) {
			if (is(th_str(t, "id"), target))
				return th_str(t, "state");
		}
	}
	return NULL;
}

struct traffic {
	size_t total, failed, on[3]; /* answers from 1.0, 1.1, 1.2 */
};

static struct traffic stop_traffic(struct th_load *l)
{
	static const char *const versions[] = {"educa-web 1.0.0 ", "educa-web 1.1.0 ",
					       "educa-web 1.2.0 "};
	const struct th_hit *hits;
	struct traffic tr = {0};
	size_t n;

	th_load_stop(l, &hits, &n);
	th_load_counts(l, &tr.total, &tr.failed);
	for (size_t i = 0; i < n; i++)
		for (size_t v = 0; v < 3; v++)
			tr.on[v] += starts(hits[i].body, versions[v]);
	for (size_t i = 0; i < n && tr.failed; i++)
		if (hits[i].status != 200)
			printf("# a failed request: status %d\n", hits[i].status);
	th_load_free(l);
	return tr;
}

static struct th_load *start_traffic(struct th_fleet *f)
{
	return th_load_start(f->h.front_port, 2, 5);
}

/* ------------------------------------------------------------ the cases */

static void test_canary_pause_then_finish(void **state)
{
	struct th_fleet *f = fleet(state);
	struct th_load *l = start_traffic(f);
	char *id = th_fleet_rollout(f, "educa@1.1", "{\"canary_percent\": 20, \"batch_size\": 2}");
	json_t *r, *live, *list;
	struct traffic tr;
	double t0;

	list = th_fleet_get(f, "/api/v1/rollouts?cluster=educa&limit=1");
	r = json_incref(json_array_get(json_object_get(list, "items"), 0));
	json_decref(list);
	/* a canary of 1 (20% of 5), then batches of 2; a pause after the canary */
	assert_int_equal(json_array_size(json_object_get(r, "batches")), 3);
	assert_int_equal(json_array_size(json_object_get(
			     json_array_get(json_object_get(r, "batches"), 0), "targets")),
			 1);
	assert_int_equal(json_integer_value(json_array_get(
			     json_object_get(json_object_get(r, "strategy"), "pause_after"), 0)),
			 0);
	json_decref(r);
	wait_prepared(f, id, TARGETS);

	t0 = th_now_s();
	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "paused");
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.1.0+"), 1);
	assert_string_equal(th_str(json_array_get(json_object_get(r, "batches"), 0), "state"), "done");
	assert_string_equal(th_str(json_array_get(json_object_get(r, "batches"), 1), "state"),
			    "pending");
	json_decref(live);
	json_decref(r);

	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	assert_int_equal(json_array_size(json_object_get(r, "approvals")), 2);
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(json_object_get(r, "approvals"), 1), "batch")),
			 1);
	json_decref(r);
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.1.0+"), TARGETS);
	json_decref(live);
	th_fleet_wait_members(f, TARGETS);
	tr = stop_traffic(l);
	printf("# canary rollout 1.0 -> 1.1 of %d targets: %.1f s, %zu requests, %zu failed "
	       "(%zu answered by 1.0, %zu by 1.1)\n",
	       TARGETS, th_now_s() - t0, tr.total, tr.failed, tr.on[0], tr.on[1]);
	assert_int_equal(tr.failed, 0);
	assert_true(tr.on[0] > 0 && tr.on[1] > 0);
	r = th_fleet_get(f, "/api/v1/clusters/educa");
	assert_string_equal(th_str(json_object_get(r, "revision"), "distribution"), "educa@1.1.0");
	json_decref(r);
	free(id);
}

static void test_broken_canary_rolls_back(void **state)
{
	struct th_fleet *f = fleet(state);
	json_t *before = th_fleet_wait_running(f, TARGETS), *r, *live, *t;
	struct th_load *l = start_traffic(f);
	char *id = th_fleet_rollout(f, "educa@1.2", "{\"canary_percent\": 20}");
	const char *canary = NULL;
	struct traffic tr;
	size_t i;

	wait_prepared(f, id, TARGETS);
	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back|paused");
	assert_string_equal(th_str(r, "state"), "rolled_back");
	live = th_fleet_wait_running(f, TARGETS);
	/* everyone on the release it ran before, the same one */
	json_array_foreach(live, i, t) {
		json_t *b = json_array_get(before, i);
		const char *part = part_of(r, th_str(t, "id"));

		assert_string_equal(th_str(t, "id"), th_str(b, "id"));
		assert_string_equal(th_str(t, "actual"), th_str(b, "actual"));
		if (is(part, "failed")) {
			assert_null(canary);
			canary = th_str(t, "id");
			assert_string_equal(th_str(json_object_get(t, "last_result"), "result"),
					    "failed");
			assert_non_null(strstr(th_str(json_object_get(t, "last_result"), "message"),
					       "HTTP 503"));
		} else {
			/* never switched */
			assert_string_equal(part, "skipped");
			assert_string_equal(th_str(json_object_get(t, "last_result"), "result"),
					    "succeeded");
		}
	}
	assert_non_null(canary);
	th_fleet_wait_members(f, TARGETS);
	tr = stop_traffic(l);
	printf("# broken canary: %zu requests, %zu failed, %zu reached 1.2\n", tr.total, tr.failed,
	       tr.on[2]);
	assert_int_equal(tr.failed, 0);
	assert_int_equal(tr.on[2], 0);
	json_decref(r);
	r = th_fleet_get(f, "/api/v1/clusters/educa");
	assert_string_equal(th_str(json_object_get(r, "revision"), "distribution"), "educa@1.1.0");
	json_decref(r);
	json_decref(live);
	json_decref(before);
	free(id);
}

/* Waits until some target of the rollout is switching. */
static void wait_switching(struct th_fleet *f, const char *id)
{
	double deadline = th_now_s() + TH_FLEET_NODE_DEADLINE_S;
	char *path = xasprintf("/api/v1/rollouts/%s", id);

	for (;;) {
		json_t *r = th_fleet_get(f, path), *b, *t;
		bool switching = false;
		size_t i, j;

		json_array_foreach(json_object_get(r, "batches"), i, b) {
			json_array_foreach(json_object_get(b, "targets"), j, t) switching |=
			    is(th_str(t, "state"), "switching");
		}
		json_decref(r);
		if (switching)
			break;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "rollout %s: no target switching", id);
		th_pause_ms(20);
	}
	free(path);
}

static void test_server_killed_mid_batch(void **state)
{
	struct th_fleet *f = fleet(state);
	struct th_load *l = start_traffic(f);
	char *id = th_fleet_rollout(f, "educa@1.0", "{\"batch_size\": 2}");
	json_t *r, *live;
	struct traffic tr;

	th_fleet_act(f, id, "approve");
	wait_switching(f, id);
	th_server_kill9(&f->srv);
	th_server_restart(&f->srv, (const char *const *)f->args);
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	json_decref(r);
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.0.0+"), TARGETS);
	json_decref(live);
	th_fleet_wait_members(f, TARGETS);
	tr = stop_traffic(l);
	printf("# server killed mid-batch: %zu requests, %zu failed\n", tr.total, tr.failed);
	assert_int_equal(tr.failed, 0);
	free(id);
}

static void test_abort_after_first_batch(void **state)
{
	struct th_fleet *f = fleet(state);
	char *id = th_fleet_rollout(f, "educa@1.1", "{\"batch_size\": 2, \"pause_after\": [0]}");
	json_t *r, *live, *b, *t;
	size_t i, j, reverted = 0, skipped = 0;

	th_fleet_act(f, id, "approve");
	json_decref(th_fleet_wait_rollout(f, id, "paused"));
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.1.0+"), 2);
	json_decref(live);
	th_fleet_act(f, id, "abort");
	r = th_fleet_wait_rollout(f, id, "aborted");
	json_array_foreach(json_object_get(r, "batches"), i, b) {
		json_array_foreach(json_object_get(b, "targets"), j, t) {
			reverted += is(th_str(t, "state"), "reverted");
			skipped += is(th_str(t, "state"), "skipped");
		}
	}
	assert_int_equal(reverted, 2);
	assert_int_equal(skipped, TARGETS - 2);
	json_decref(r);
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.0.0+"), TARGETS);
	json_decref(live);
	/* a finished rollout takes no verb */
	{
		char *path = xasprintf("/api/v1/rollouts/%s/approve", id);

		json_decref(th_fleet_post(f, path, NULL, 409));
		free(path);
	}
	free(id);
}

/* Blob downloads answered so far (GET /metrics). */
static long long blob_downloads(struct th_fleet *f)
{
	struct th_request req = {.token = f->srv.admin_token};
	struct th_response r;
	long long n = 0;
	const char *p;

	th_http(&f->srv, "/metrics", &req, &r);
	for (p = r.body; p && (p = strstr(p, "route=\"/agent/v1/blobs/{}\",status=\"20"));) {
		p = strchr(p, '}');
		if (p)
			n += strtoll(p + 1, NULL, 10);
	}
	th_response_free(&r);
	return n;
}

static void test_undo_without_download(void **state)
{
	struct th_fleet *f = fleet(state);
	char *id = th_fleet_rollout(f, "educa@1.1", "{\"batch_size\": 5}");
	json_t *r, *live;
	long long downloads;
	char *undo;

	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	json_decref(r);
	json_decref(th_fleet_wait_running(f, TARGETS));
	downloads = blob_downloads(f);

	r = th_fleet_post(f, "/api/v1/clusters/educa/undo", "{\"strategy\": {\"batch_size\": 5}}", 201);
	undo = xstrdup(th_str(r, "id"));
	assert_string_equal(th_str(r, "to"), "educa@1.0.0");
	assert_string_equal(th_str(r, "state"), "pending_approval");
	json_decref(r);
	th_fleet_act(f, undo, "approve");
	r = th_fleet_wait_rollout(f, undo, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	json_decref(r);
	live = th_fleet_wait_running(f, TARGETS);
	assert_int_equal(count_on(live, "educa@1.0.0+"), TARGETS);
	json_decref(live);
	printf("# undo: %lld blob downloads\n", blob_downloads(f) - downloads);
	assert_int_equal(blob_downloads(f), downloads);
	free(undo);
	free(id);
}

static void test_copy_joins_the_rollout(void **state)
{
	struct th_fleet *f = fleet(state);
	char *id = th_fleet_rollout(f, "educa@1.1", "{\"batch_size\": 2}");
	json_t *live = th_fleet_wait_running(f, TARGETS), *r, *copy;
	char *path = xasprintf("/api/v1/targets/%s/copy", th_str(json_array_get(live, 0), "id"));
	char *copy_id;

	copy = th_fleet_post(f, path, NULL, 202);
	/* the new target itself (docs/api.md), as POST .../copy answers it */
	copy_id = xstrdup(th_str(copy, "id") ? th_str(copy, "id") : "");
	if (!copy_id[0] || !starts(copy_id, "t-")) {
		char *text = json_dumps(copy, 0);

		th_fleet_fail(f, "copy answered %s", text);
	}
	json_decref(copy);
	/* it starts on the current release, and is in the rollout */
	json_decref(th_fleet_wait_running(f, TARGETS + 1));
	r = th_fleet_get(f, "/api/v1/rollouts?cluster=educa&limit=1");
	assert_string_equal(part_of(json_array_get(json_object_get(r, "items"), 0), copy_id),
			    "pending");
	json_decref(r);
	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	assert_string_equal(part_of(r, copy_id), "succeeded");
	json_decref(r);
	json_decref(live);
	live = th_fleet_wait_running(f, TARGETS + 1);
	assert_int_equal(count_on(live, "educa@1.1.0+"), TARGETS + 1);
	json_decref(live);
	free(copy_id);
	free(path);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary_pause_then_finish),
		cmocka_unit_test(test_broken_canary_rolls_back),
		cmocka_unit_test(test_server_killed_mid_batch),
		cmocka_unit_test(test_abort_after_first_batch),
		cmocka_unit_test(test_undo_without_download),
		cmocka_unit_test(test_copy_joins_the_rollout),
	};

	if (!th_haproxy_available()) {
		printf("1..0 # SKIP haproxy is not installed (scripts/bootstrap installs it)\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, teardown);
}
