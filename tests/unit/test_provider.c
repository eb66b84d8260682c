/* test_provider.c - the provider set (provider.c: --provider arguments,
 * the list, helper commands), a node's processes (node.c: detached spawn,
 * start-time checks, teardown by working directory) and the stale-health
 * view of lifecycle.c, without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "lifecycle.h"
#include "node.h"
#include "nodes.h"
#include "provider.h"
#include "store.h"
#include "xalloc.h"

static void refused(const char *const *specs, size_t n, const char *want)
{
	struct tn_providers *ps = NULL;
	struct tn_error err = {0};

	assert_int_equal(tn_providers_new(specs, n, &ps, &err), -TN_E_INVALID);
	assert_null(ps);
	if (!strstr(err.message, want))
		fail_msg("want \"%s\" in \"%s\"", want, err.message);
}

static void test_arguments(void **state)
{
	const char *unknown[] = {"ec2:region=x"};
	const char *bad_key[] = {"local:port=1-2"};
	const char *twice[] = {"local", "local:ports=20000-20099"};
	const char *twice_key[] = {"netns:prefix=a,prefix=b"};
	const char *not_kv[] = {"local:ports"};
	struct tn_providers *ps = NULL;
	struct tn_error err;

	(void)state;
	refused(unknown, 1, "unknown provider \"ec2\"");
	refused(bad_key, 1, "no setting \"port\" (it has: ports, agent, grace_s)");
	refused(twice, 2, "given twice");
	refused(twice_key, 1, "\"prefix\" is set twice");
	refused(not_kv, 1, "is not key=value");

	/* local is always there, first */
	assert_int_equal(tn_providers_new(NULL, 0, &ps, &err), 0);
	assert_non_null(tn_providers_find(ps, "local"));
	assert_null(tn_providers_find(ps, "netns"));
	tn_providers_free(ps);
}

static void test_open_and_list(void **state)
{
	const char *specs[] = {"netns:prefix=zz9,subnet=10.99.0.0/24",
			       "local:ports=21000-21099,agent=/nonexistent/agent"};
	const char *bad_ports[] = {"local:ports=21000-21005"};
	char *dir = th_tmpdir();
	struct tn_provider_env env = {
	    .data_dir = dir, .listen = "127.0.0.1:0", .agent_path = "/nonexistent/default"};
	struct tn_providers *ps = NULL;
	struct tn_provider *p = NULL;
	struct tn_error err;
	json_t *list, *local, *netns;

	(void)state;
	assert_int_equal(tn_providers_new(specs, 2, &ps, &err), 0);
	assert_int_equal(tn_providers_open(ps, &env, &err), 0);
	list = tn_providers_list(ps);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
	netns = json_array_get(json_object_get(list, "items"), 0);
	local = json_array_get(json_object_get(list, "items"), 1);
	assert_string_equal(json_string_value(json_object_get(local, "name")), "local");
	assert_true(json_is_true(json_object_get(local, "available")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(local, "settings"), "agent")),
	    "/nonexistent/agent");
	/* on a loopback listen (or without the capability) netns is unavailable, and
	 * says why; either way it is listed */
	assert_string_equal(json_string_value(json_object_get(netns, "name")), "netns");
	assert_false(json_is_true(json_object_get(netns, "available")));
	assert_non_null(json_string_value(json_object_get(netns, "reason")));
	assert_int_equal(tn_providers_get(ps, "netns", &p, &err), -TN_E_UNAVAILABLE);
	assert_non_null(strstr(err.message, "unavailable"));
	assert_int_equal(tn_providers_get(ps, "ec2", &p, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "configured: netns, local"));
	assert_int_equal(tn_providers_get(ps, "local", &p, &err), 0);
	json_decref(list);
	tn_providers_free(ps);

	assert_int_equal(tn_providers_new(bad_ports, 1, &ps, &err), 0);
	assert_int_equal(tn_providers_open(ps, &env, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "ports=\"21000-21005\""));
	tn_providers_free(ps);
	th_rmtree(dir);
	free(dir);
}

static void test_run(void **state)
{
	const char *ok[] = {"echo", "hello", NULL};
	const char *fails[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
	const char *missing[] = {"/nonexistent/command", NULL};
	struct tn_error err;
	char *out = NULL;

	(void)state;
	assert_int_equal(tn_provider_run(ok, &out, &err), 0);
	assert_string_equal(out, "hello");
	free(out);
	assert_int_equal(tn_provider_run(fails, NULL, &err), -TN_E_IO);
	assert_non_null(strstr(err.message, "oops"));
	assert_int_not_equal(tn_provider_run(missing, NULL, &err), 0);
}

static void test_node_processes(void **state)
{
	char *dir = th_tmpdir();
	char *sub = xasprintf("%s/state", dir);
	/* a process that forks one more (with its cwd in the node) and ignores
	 * SIGTERM: the teardown must end both */
	const char *argv[] = {"/bin/sh", "-c",
			      "trap '' TERM; (cd state && exec sleep 60) & sleep 60", NULL};
	struct tn_error err;
	pid_t pid = 0;
	uint64_t start = 0;
	double t0;

	(void)state;
	assert_true(tn_node_id_valid("t-abc234"));
	assert_false(tn_node_id_valid("t-"));
	assert_false(tn_node_id_valid("t-../x"));
	assert_false(tn_node_id_valid("x-abc"));
	assert_int_equal(tn_mkdir_p(sub, 0700, &err), 0);
	assert_int_equal(tn_node_spawn(dir, argv, &pid, &start, &err), 0);
	assert_true(pid > 0);
	assert_true(tn_node_alive(pid, start));
	assert_false(tn_node_alive(pid, start + 1)); /* another process's start time */
	t0 = th_now_s();
	while (th_procs_under(dir) < 2) { /* the shell has forked its child */
		if (th_now_s() - t0 > 10)
			fail_msg("the spawned shell did not start its child");
		usleep(10000);
	}
	t0 = th_now_s();
	assert_int_equal(tn_node_kill(dir, pid, start, NULL, 300, &err), 0);
	assert_false(tn_node_alive(pid, start));
	assert_int_equal(th_procs_under(dir), 0);
	assert_true(th_now_s() - t0 < 5);
	th_rmtree(dir);
	free(sub);
	free(dir);
}

static void test_stale_view(void **state)
{
	char old[TN_STORE_TIME_LEN + 1], fresh[TN_STORE_TIME_LEN + 1];
	json_t *t;

	(void)state;
	tn_store_time_format(time(NULL) - TN_STALE_AFTER_S - 5, old);
	tn_store_time_format(time(NULL) - 5, fresh);
	t = json_pack("{s:s, s:s, s:s}", "state", "running", "health", "healthy", "last_seen", old);
	tn_lifecycle_view(t);
	assert_string_equal(json_string_value(json_object_get(t, "health")), "stale");
	json_decref(t);
	t = json_pack("{s:s, s:s, s:s}", "state", "running", "health", "healthy", "last_seen",
		      fresh);
	tn_lifecycle_view(t);
	assert_string_equal(json_string_value(json_object_get(t, "health")), "healthy");
	json_decref(t);
	/* a removed target is not stale: it is removed */
	t = json_pack("{s:s, s:s, s:s}", "state", "removed", "health", "unknown", "last_seen", old);
	tn_lifecycle_view(t);
	assert_string_equal(json_string_value(json_object_get(t, "health")), "unknown");
	json_decref(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arguments),  cmocka_unit_test(test_open_and_list),
	    cmocka_unit_test(test_run),	       cmocka_unit_test(test_node_processes),
	    cmocka_unit_test(test_stale_view),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
