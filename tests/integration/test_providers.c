/* test_providers.c - targets created, copied, reconfigured and removed
 * through tender-server's providers, with real agents running the sample
 * application (DESIGN §2 Target, Provider; §3 targets):
 *   - local: a cluster of 3 on educa 1.0, all serving on their own port
 *     blocks; a copy (4); a target-level config change; a removal (its
 *     agent, its bundles and its node directory gone, 3 left and healthy);
 *     a restart of the server that keeps the 3 (serving, polling); a
 *     machine enrolled by hand through install.sh that joins and serves;
 *   - failures: a missing agent (boot failed), a node that never enrolls
 *     (failed after the enroll timeout, its process ended), an agent that
 *     exits at once, and the refusals of bad requests;
 *   - netns, where the capability is there (skipped with the reason
 *     otherwise): 3 nodes with 3 addresses serving on the same port, what
 *     an earlier run left swept, nothing of the provider's left at the end.
 * Nothing here sleeps to synchronise: every wait polls with a deadline.
 * Whatever a test starts is killed and removed at its end, failed or not
 * (teardown, and the nodes.c guard at exit or abort). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "harness.h"
#include "nodes.h"
#include "xalloc.h"

/* Booting, fetching, starting and probing a node takes a few seconds. */
#define NODE_DEADLINE_S 45
#define SHORT_DEADLINE_S 15

struct fx {
	struct th_server srv;
	bool started;
	char *tmp;	/* the hand-installed machine, the fake agents */
	char *args[16]; /* the server's extra arguments (owned) */
	size_t nargs;
	unsigned low;	 /* the local provider's port range: low .. low + 99 */
	char prefix[16]; /* netns names */
	char *viewer;
};

/* ------------------------------------------------------------ helpers */

static void arg(struct fx *f, const char *fmt, ...) TN_PRINTF(2, 3);

static void arg(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	assert_true(f->nargs < 15);
	f->args[f->nargs++] = xstrdup(buf);
	f->args[f->nargs] = NULL;
}

static void start(struct fx *f)
{
	th_server_start(&f->srv, (const char *const *)f->args);
	f->started = true;
	th_guard_dir(f->srv.data_dir);
}

static void expect_status(const struct th_response *r, long status, const char *what)
{
	if (r->status != status)
		fail_msg("%s: want %ld, got %ld %s", what, status, r->status, r->body);
}

static void get(struct fx *f, const char *path, const char *token, struct th_response *r)
{
	struct th_request req = {.token = token ? token : f->srv.admin_token};

	th_http(&f->srv, path, &req, r);
}

static void call(struct fx *f, const char *method, const char *path, const char *body,
		 struct th_response *r)
{
	th_json(&f->srv, method, path, f->srv.admin_token, body, r);
}

static void upload_educa(struct fx *f)
{
	char *zip = xasprintf("%s/distributions/educa-1.0.zip", TN_BUILDDIR);
	struct th_request rq = {.method = "POST",
				.token = f->srv.admin_token,
				.content_type = "application/zip",
				.upload_file = zip};
	struct th_response r;

	th_http(&f->srv, "/api/v1/distributions", &rq, &r);
	expect_status(&r, 201, "upload educa 1.0");
	th_response_free(&r);
	free(zip);
}

static void make_cluster(struct fx *f, const char *name, const char *extra)
{
	char *body = xasprintf("{\"name\": \"%s\", \"distribution\": \"educa@1.0\"%s}", name,
			       extra ? extra : "");
	struct th_response r;

	call(f, "POST", "/api/v1/clusters", body, &r);
	expect_status(&r, 201, "create cluster");
	th_response_free(&r);
	free(body);
}

/* The cluster's targets in state (NULL: all), as an array (caller decrefs). */
static json_t *targets(struct fx *f, const char *cluster, const char *state)
{
	char *path = xasprintf("/api/v1/targets?cluster=%s%s%s", cluster, state ? "&state=" : "",
			       state ? state : "");
	struct th_response r;
	json_t *items;

	get(f, path, NULL, &r);
	expect_status(&r, 200, path);
	items = json_incref(json_object_get(r.json, "items"));
	th_response_free(&r);
	free(path);
	return items;
}

static json_t *target(struct fx *f, const char *id)
{
	char *path = xasprintf("/api/v1/targets/%s", id);
	struct th_response r;
	json_t *t;

	get(f, path, NULL, &r);
	expect_status(&r, 200, path);
	t = json_incref(r.json);
	th_response_free(&r);
	free(path);
	return t;
}

/* The end of the server's log, for a failure's message. */
static void dump_log(struct fx *f)
{
	char *text = NULL;
	size_t len = 0;

	if (tn_read_file(f->srv.log_path, 1 << 22, &text, &len, NULL) == 0)
		fprintf(stderr, "# server log (end):\n%s\n", len > 6000 ? text + len - 6000 : text);
	free(text);
}

/* A clean stop: exit 0 (and, in the sanitizer build, no report). */
static void stop_clean(struct fx *f)
{
	assert_true(th_server_exited_cleanly(&f->srv, th_server_stop(&f->srv)));
}

static void dump_targets(struct fx *f, const char *cluster)
{
	json_t *all = targets(f, cluster, NULL), *t;
	size_t i;

	json_array_foreach(all, i, t)
	{
		char *text = json_dumps(t, JSON_COMPACT);
		char *log = xasprintf("%s/var/nodes/%s/agent.log", f->srv.data_dir, th_str(t, "id"));
		char *tail = NULL;
		size_t len = 0;

		fprintf(stderr, "# target %s\n", text);
		if (strcmp(th_str(t, "state"), "running") != 0 &&
		    tn_read_file(log, 1 << 20, &tail, &len, NULL) == 0)
			fprintf(stderr, "# its agent's log (end):\n%s\n",
				len > 3000 ? tail + len - 3000 : tail);
		free(tail);
		free(log);
		free(text);
	}
	json_decref(all);
}

/* Waits until the cluster has exactly n targets that are not removed, all
 * running, healthy and on their desired release; returns them. */
static json_t *wait_running(struct fx *f, const char *cluster, size_t n)
{
	double deadline = th_now_s() + NODE_DEADLINE_S;

	for (;;) {
		json_t *all = targets(f, cluster, NULL), *live = json_array(), *t;
		bool ok = true;
		size_t i;

		json_array_foreach(all, i, t)
		{
			const char *actual = th_str(t, "actual");
			const char *desired = th_str(json_object_get(t, "desired"), "release");

			if (strcmp(th_str(t, "state"), "removed") == 0)
				continue;
			json_array_append(live, t);
			if (strcmp(th_str(t, "state"), "running") != 0 ||
			    strcmp(th_str(t, "health"), "healthy") != 0 || !actual || !desired ||
			    strcmp(actual, desired) != 0)
				ok = false;
		}
		json_decref(all);
		if (ok && json_array_size(live) == n)
			return live;
		json_decref(live);
		if (th_now_s() > deadline) {
			dump_targets(f, cluster);
			dump_log(f);
			fail_msg("cluster %s: %zu targets not running and healthy within %d s",
				 cluster, n, NODE_DEADLINE_S);
		}
		th_pause_ms(100);
	}
}

/* Waits until target id is in state; returns it. */
static json_t *wait_state(struct fx *f, const char *id, const char *state, double deadline_s)
{
	double deadline = th_now_s() + deadline_s;

	for (;;) {
		json_t *t = target(f, id);

		if (strcmp(th_str(t, "state"), state) == 0)
			return t;
		if (th_now_s() > deadline) {
			char *text = json_dumps(t, JSON_COMPACT);

			fail_msg("target %s not %s within %.0f s: %s", id, state, deadline_s, text);
		}
		json_decref(t);
		th_pause_ms(100);
	}
}

/* The port block of a local node: its instance is "ID:PORT". */
static unsigned local_port(json_t *t)
{
	const char *instance = th_str(t, "instance");
	const char *colon = instance ? strrchr(instance, ':') : NULL;

	assert_non_null(colon);
	return (unsigned)strtoul(colon + 1, NULL, 10);
}

/* GET url answers 200 with a body that starts with want (within the short
 * deadline: a switch may still be on its way). */
static void expect_serves(const char *url, const char *want)
{
	double deadline = th_now_s() + SHORT_DEADLINE_S;
	char body[512];
	long status;

	while ((status = th_get(url, body, sizeof body)) != 200 ||
	       strncmp(body, want, strlen(want)) != 0) {
		if (th_now_s() > deadline)
			fail_msg("%s: want 200 \"%s...\", got %ld \"%s\"", url, want, status, body);
		th_pause_ms(100);
	}
}

static void expect_serves_local(json_t *t, const char *greeting)
{
	char *url = xasprintf("http://127.0.0.1:%u/", local_port(t));
	char *want = xasprintf("educa-web 1.0.0 on %s: %s", th_str(t, "id"), greeting);

	expect_serves(url, want);
	free(want);
	free(url);
}

static bool has_event(json_t *events, const char *action, const char *object)
{
	json_t *e;
	size_t i;

	json_array_foreach(events, i, e)
	{
		if (strcmp(th_str(e, "action"), action) == 0 &&
		    (!object || (th_str(e, "object_id") && strcmp(th_str(e, "object_id"), object) == 0)))
			return true;
	}
	return false;
}

static char *node_dir(struct fx *f, const char *id)
{
	return xasprintf("%s/var/nodes/%s", f->srv.data_dir, id);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A block of 10 ports nobody listens on, outside the provider's range. */
static unsigned free_block(struct fx *f)
{
	for (unsigned base = f->low + 100; base < f->low + 1000; base += 10) {
		char url[64];

		snprintf(url, sizeof url, "http://127.0.0.1:%u/", base);
		if (th_get(url, NULL, 0) == 0)
			return base;
	}
	fail_msg("no free port block");
	return 0;
}

/* ------------------------------------------------------------ fixture */

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);

	f->tmp = th_tmpdir();
	th_guard_dir(f->tmp);
	/* ranges of concurrent test runs stay apart (and ports in use are
	 * stepped over anyway), below the ephemeral range (32768-) that busy
	 * clients on the machine fill */
	f->low = 20000 + (unsigned)(getpid() % 11) * 1000;
	snprintf(f->prefix, sizeof f->prefix, "tt%05x", (unsigned)getpid() & 0xfffff);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->started) {
		if (th_kill_under(f->srv.data_dir))
			fprintf(stderr, "# processes under %s survived\n", f->srv.data_dir);
		th_server_destroy(&f->srv);
	}
	if (th_kill_under(f->tmp))
		fprintf(stderr, "# processes under %s survived\n", f->tmp);
	th_rmtree(f->tmp);
	th_netns_remove(f->prefix);
	for (size_t i = 0; i < f->nargs; i++)
		free(f->args[i]);
	free(f->viewer);
	free(f->tmp);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ local */

static void test_local_lifecycle(void **state)
{
	struct fx *f = *state;
	struct th_response r;
	json_t *live, *t, *items, *events;
	char *copy_id, *gone_id, *keep_id, *dir, *path, *url;
	long long mark;
	unsigned port;
	size_t i;

	arg(f, "--provider");
	arg(f, "local:ports=%u-%u", f->low, f->low + 99);
	start(f);
	upload_educa(f);
	make_cluster(f, "educa", NULL);
	mark = th_last_event_id(&f->srv);

	/* 3 targets: 202 at once, in provisioning */
	call(f, "POST", "/api/v1/targets", "{\"cluster\": \"educa\", \"count\": 3}", &r);
	expect_status(&r, 202, "create 3 targets");
	items = json_object_get(r.json, "items");
	assert_int_equal(json_array_size(items), 3);
	json_array_foreach(items, i, t)
	{
		assert_string_equal(th_str(t, "state"), "provisioning");
		assert_string_equal(th_str(t, "provider"), "local");
		assert_string_equal(th_str(t, "cluster"), "educa");
	}
	th_response_free(&r);

	live = wait_running(f, "educa", 3);
	/* the enrollment tokens never showed in `ps`, and are spent and gone */
	assert_int_equal(th_cmdline_under(f->srv.data_dir, "--enroll-token "), 0);
	assert_int_equal(th_cmdline_under(f->srv.data_dir, "tne_"), 0);
	json_array_foreach(live, i, t)
	{
		char *node = node_dir(f, th_str(t, "id"));
		char *token_file = xasprintf("%s/enroll-token", node);

		assert_int_equal(access(token_file, F_OK), -1);
		free(token_file);
		free(node);
		assert_string_equal(th_str(t, "address"), "127.0.0.1");
		assert_int_equal(json_integer_value(json_object_get(t, "agent_port")),
				 local_port(t) + 9);
		expect_serves_local(t, "hello from 1.0");
	}
	keep_id = xstrdup(th_str(json_array_get(live, 0), "id"));
	gone_id = xstrdup(th_str(json_array_get(live, 1), "id"));
	json_decref(live);

	/* a copy: same cluster, provider and config, on the current release */
	path = xasprintf("/api/v1/targets/%s/copy", keep_id);
	call(f, "POST", path, NULL, &r);
	expect_status(&r, 202, "copy");
	assert_string_equal(th_str(r.json, "state"), "provisioning");
	assert_string_equal(th_str(r.json, "provider"), "local");
	assert_string_equal(th_str(r.json, "cluster"), "educa");
	copy_id = xstrdup(th_str(r.json, "id"));
	th_response_free(&r);
	free(path);
	live = wait_running(f, "educa", 4);
	json_array_foreach(live, i, t) expect_serves_local(t, "hello from 1.0");
	json_decref(live);

	/* target-level config: a release of that target only, switched at once */
	path = xasprintf("/api/v1/targets/%s", copy_id);
	call(f, "PATCH", path, "{\"config\": {\"org.educa.web\": {\"nope\": 1}}}", &r);
	expect_status(&r, 400, "patch with an unknown key");
	assert_non_null(strstr(th_error_message(&r), "nope"));
	th_response_free(&r);
	call(f, "PATCH", path, "{\"config\": {\"org.educa.web\": {\"greeting\": \"patched\"}}}",
	     &r);
	expect_status(&r, 200, "patch");
	th_response_free(&r);
	free(path);
	t = target(f, copy_id);
	expect_serves_local(t, "patched");
	json_decref(t);
	live = wait_running(f, "educa", 4);
	json_decref(live);
	t = target(f, keep_id);
	expect_serves_local(t, "hello from 1.0"); /* the others keep theirs */
	json_decref(t);

	/* removal: draining, then the node terminated and the target removed */
	t = target(f, gone_id);
	port = local_port(t);
	json_decref(t);
	dir = node_dir(f, gone_id);
	assert_true(exists(dir));
	assert_true(th_procs_under(dir) >= 3); /* the agent, web and worker */
	path = xasprintf("/api/v1/targets/%s", gone_id);
	call(f, "DELETE", path, NULL, &r);
	expect_status(&r, 202, "delete");
	assert_string_equal(th_str(r.json, "state"), "draining");
	th_response_free(&r);
	t = wait_state(f, gone_id, "removed", NODE_DEADLINE_S);
	json_decref(t);
	assert_false(exists(dir));
	assert_int_equal(th_procs_under(dir), 0);
	url = xasprintf("http://127.0.0.1:%u/", port);
	assert_int_equal(th_get(url, NULL, 0), 0);
	free(url);
	call(f, "DELETE", path, NULL, &r);
	expect_status(&r, 409, "delete a removed target");
	th_response_free(&r);
	call(f, "PATCH", path, "{\"config\": {}}", &r);
	expect_status(&r, 409, "patch a removed target");
	th_response_free(&r);
	free(path);
	free(dir);
	live = wait_running(f, "educa", 3);
	json_decref(live);
	get(f, "/api/v1/clusters/educa", NULL, &r);
	expect_status(&r, 200, "cluster");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(r.json, "targets"), "total")), 3);
	th_response_free(&r);

	/* every step in the audit log */
	events = th_events_after(&f->srv, mark);
	assert_true(has_event(events, "target.create", "educa"));
	assert_true(has_event(events, "target.booted", keep_id));
	assert_true(has_event(events, "target.enroll", keep_id));
	assert_true(has_event(events, "target.copy", keep_id));
	assert_true(has_event(events, "target.booted", copy_id));
	assert_true(has_event(events, "target.update", copy_id));
	assert_true(has_event(events, "target.remove", gone_id));
	assert_true(has_event(events, "target.removed", gone_id));
	json_decref(events);

	/* a restart of the server (same port: the nodes hold its URL) keeps
	 * the nodes: they still serve and poll */
	{
		const char *colon = strrchr(f->srv.url, ':');
		char t0[32];
		time_t now;
		double deadline;

		arg(f, "--listen");
		arg(f, "127.0.0.1:%s", colon + 1);
		stop_clean(f);
		th_server_restart(&f->srv, (const char *const *)f->args);
		now = time(NULL);
		strftime(t0, sizeof t0, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		deadline = th_now_s() + NODE_DEADLINE_S;
		for (;;) {
			json_t *all = targets(f, "educa", "running");
			size_t fresh = 0;

			json_array_foreach(all, i, t)
			{
				const char *seen = th_str(t, "last_seen");

				if (seen && strcmp(seen, t0) >= 0 &&
				    strcmp(th_str(t, "health"), "healthy") == 0)
					fresh++;
			}
			if (fresh == 3 && json_array_size(all) == 3) {
				json_array_foreach(all, i, t) expect_serves_local(t, "");
				json_decref(all);
				break;
			}
			json_decref(all);
			if (th_now_s() > deadline) {
				dump_targets(f, "educa");
				fail_msg("the nodes did not poll the restarted server");
			}
			th_pause_ms(100);
		}
	}

	/* a machine enrolled by hand through install.sh joins and serves */
	{
		char *script = xasprintf("%s/install.sh", f->tmp);
		char *prefix = xasprintf("%s/bin", f->tmp);
		char *agent = xasprintf("%s/bin/tender-agent", f->tmp);
		char *hstate = xasprintf("%s/state", f->tmp);
		char *log = xasprintf("%s/install.log", f->tmp);
		char *base_s, *want, *token, *found = NULL;
		char sha[TN_SHA256_HEX_LEN + 1];
		struct tn_error err;
		unsigned base = free_block(f);
		struct th_request pub = {0};
		double deadline;
		int rc;

		th_http(&f->srv, "/downloads/tender-agent.sha256", &pub, &r);
		expect_status(&r, 200, "GET /downloads/tender-agent.sha256 (no token)");
		assert_int_equal(tn_sha256_file_hex(TN_BUILDDIR "/tender-agent", sha, &err), 0);
		assert_int_equal(strncmp(r.body, sha, 64), 0);
		th_response_free(&r);
		th_http(&f->srv, "/install.sh", &pub, &r);
		expect_status(&r, 200, "GET /install.sh (no token)");
		assert_int_equal(strncmp(r.body, "#!/bin/sh\n", 10), 0);
		assert_int_equal(tn_write_file_atomic(script, r.body, r.len, 0644, &err), 0);
		th_response_free(&r);

		call(f, "POST", "/api/v1/enrollment-tokens",
		     "{\"cluster\": \"educa\", \"uses\": 1}", &r);
		expect_status(&r, 201, "enrollment token");
		token = xstrdup(th_str(r.json, "token"));
		th_response_free(&r);

		base_s = xasprintf("%u", base);
		{
			const char *argv[] = {"/bin/sh", script, "--server",	f->srv.url,
					      "--token", token,	 "--prefix",	prefix,
					      "--state", hstate, "--port-base", base_s,
					      NULL};

			rc = th_run(argv, log, 60);
		}
		if (rc != 0) {
			char *text = NULL;
			size_t len = 0;

			if (tn_read_file(log, 1 << 16, &text, &len, NULL) == 0)
				fprintf(stderr, "# install.sh:\n%s", text);
			free(text);
			fail_msg("install.sh exited with %d", rc);
		}
		assert_int_equal(access(agent, X_OK), 0);
		deadline = th_now_s() + NODE_DEADLINE_S;
		while (!found) {
			json_t *all = targets(f, "educa", "running");

			json_array_foreach(all, i, t)
			{
				if (strcmp(th_str(t, "provider"), "manual") == 0 &&
				    strcmp(th_str(t, "health"), "healthy") == 0)
					found = xstrdup(th_str(t, "id"));
			}
			json_decref(all);
			if (!found && th_now_s() > deadline) {
				dump_targets(f, "educa");
				fail_msg("the hand-installed node did not join within %d s",
					 NODE_DEADLINE_S);
			}
			if (!found)
				th_pause_ms(100);
		}
		url = xasprintf("http://127.0.0.1:%u/", base);
		want = xasprintf("educa-web 1.0.0 on %s: hello from 1.0", found);
		expect_serves(url, want);
		live = wait_running(f, "educa", 4);
		json_decref(live);
		/* the hand-installed node is ours to stop */
		assert_int_equal(th_kill_under(f->tmp), 0);
		free(want);
		free(url);
		free(found);
		free(base_s);
		free(token);
		free(log);
		free(hstate);
		free(agent);
		free(prefix);
		free(script);
	}

	stop_clean(f);
	free(keep_id);
	free(gone_id);
	free(copy_id);
}

/* ------------------------------------------------------------ failures */

static void write_agent(const char *path, const char *body)
{
	char *text = xasprintf("#!/bin/sh\n%s\n", body);
	struct tn_error err;

	assert_int_equal(tn_write_file_atomic(path, text, strlen(text), 0755, &err), 0);
	free(text);
}

static char *create_one(struct fx *f, const char *body, long want)
{
	struct th_response r;
	char *id = NULL;

	call(f, "POST", "/api/v1/targets", body, &r);
	expect_status(&r, want, body);
	if (want == 202)
		id = xstrdup(th_str(json_array_get(json_object_get(r.json, "items"), 0), "id"));
	th_response_free(&r);
	return id;
}

static void expect_failed(struct fx *f, const char *id, const char *reason)
{
	json_t *t = wait_state(f, id, "failed", SHORT_DEADLINE_S);
	json_t *last = json_object_get(t, "last_result");
	char *dir = node_dir(f, id);
	double deadline = th_now_s() + SHORT_DEADLINE_S;

	assert_string_equal(th_str(last, "result"), "failed");
	if (!strstr(th_str(last, "message"), reason))
		fail_msg("target %s: want a reason with \"%s\", got \"%s\"", id, reason,
			 th_str(last, "message"));
	/* nothing of the node is left */
	while (exists(dir) || th_procs_under(dir)) {
		if (th_now_s() > deadline)
			fail_msg("node %s still has processes or its directory", id);
		th_pause_ms(50);
	}
	json_decref(t);
	free(dir);
}

static void test_failures(void **state)
{
	struct fx *f = *state;
	char *fake = xasprintf("%s/fake-agent", f->tmp);
	struct th_response r;
	json_t *events;
	char *id, *path;
	long long mark;

	arg(f, "--provider");
	arg(f, "local:ports=%u-%u,agent=%s", f->low + 100, f->low + 199, fake);
	arg(f, "--provider");
	arg(f, "netns:prefix=%s", f->prefix); /* on loopback: unavailable */
	arg(f, "--enroll-timeout");
	arg(f, "2");
	start(f);
	f->viewer = th_make_token(&f->srv, "viewer", "viewer");
	upload_educa(f);
	make_cluster(f, "bad", NULL);
	mark = th_last_event_id(&f->srv);

	/* the providers as configured: viewers read them */
	get(f, "/api/v1/providers", f->viewer, &r);
	expect_status(&r, 200, "providers");
	{
		json_t *items = json_object_get(r.json, "items");
		json_t *local = json_array_get(items, 0), *netns = json_array_get(items, 1);

		assert_string_equal(th_str(local, "name"), "local");
		assert_true(json_is_true(json_object_get(local, "available")));
		assert_string_equal(th_str(json_object_get(local, "settings"), "agent"), fake);
		assert_string_equal(th_str(netns, "name"), "netns");
		assert_false(json_is_true(json_object_get(netns, "available")));
		assert_non_null(th_str(netns, "reason"));
	}
	th_response_free(&r);

	/* refusals */
	th_json(&f->srv, "POST", "/api/v1/targets", f->viewer, "{\"cluster\": \"bad\"}", &r);
	expect_status(&r, 403, "a viewer creates a target");
	th_response_free(&r);
	free(create_one(f, "{\"cluster\": \"bad\", \"count\": 0}", 400));
	free(create_one(f, "{\"cluster\": \"bad\", \"count\": 101}", 400));
	free(create_one(f, "{\"cluster\": \"bad\", \"size\": 1}", 400));
	free(create_one(f, "{\"cluster\": \"nope\"}", 404));
	free(create_one(f, "{\"cluster\": \"bad\", \"provider\": \"ec2\"}", 400));
	free(create_one(f,
			"{\"cluster\": \"bad\", \"config\": {\"org.educa.web\": {\"workers\": "
			"\"many\"}}}",
			400));
	call(f, "POST", "/api/v1/targets", "{\"cluster\": \"bad\", \"provider\": \"netns\"}", &r);
	expect_status(&r, 503, "an unavailable provider");
	assert_non_null(strstr(th_error_message(&r), "unavailable"));
	th_response_free(&r);
	call(f, "POST", "/api/v1/targets/t-nosuchtarget/copy", NULL, &r);
	expect_status(&r, 404, "copy of an unknown target");
	th_response_free(&r);

	/* no agent to run: the boot fails, with the reason */
	id = create_one(f, "{\"cluster\": \"bad\"}", 202);
	expect_failed(f, id, "boot failed");
	expect_failed(f, id, fake);
	/* failed targets block DELETE /clusters until removed */
	call(f, "DELETE", "/api/v1/clusters/bad", NULL, &r);
	expect_status(&r, 409, "delete a cluster with a failed target");
	th_response_free(&r);
	path = xasprintf("/api/v1/targets/%s", id);
	call(f, "DELETE", path, NULL, &r);
	expect_status(&r, 202, "delete a failed target");
	th_response_free(&r);
	json_decref(wait_state(f, id, "removed", SHORT_DEADLINE_S));
	free(path);
	free(id);

	/* an agent that never enrolls: failed after the enroll timeout, its
	 * process ended and its directory gone */
	write_agent(fake, "exec sleep 600");
	id = create_one(f, "{\"cluster\": \"bad\"}", 202);
	expect_failed(f, id, "never enrolled within 2 s");
	free(id);

	/* an agent that exits at once: failed with the end of its log */
	write_agent(fake, "echo 'fake agent: cannot reach the server' >&2; exit 3");
	id = create_one(f, "{\"cluster\": \"bad\"}", 202);
	expect_failed(f, id, "cannot reach the server");
	free(id);

	events = th_events_after(&f->srv, mark);
	assert_true(has_event(events, "target.boot_failed", NULL));
	assert_true(has_event(events, "target.enroll_timeout", NULL));
	assert_true(has_event(events, "target.removed", NULL));
	json_decref(events);

	/* removed targets do not block DELETE /clusters; failed ones do */
	{
		json_t *all = targets(f, "bad", "failed"), *t;
		size_t i;

		json_array_foreach(all, i, t)
		{
			path = xasprintf("/api/v1/targets/%s", th_str(t, "id"));
			call(f, "DELETE", path, NULL, &r);
			expect_status(&r, 202, "delete a failed target");
			th_response_free(&r);
			json_decref(wait_state(f, th_str(t, "id"), "removed", SHORT_DEADLINE_S));
			free(path);
		}
		json_decref(all);
	}
	call(f, "DELETE", "/api/v1/clusters/bad", NULL, &r);
	expect_status(&r, 204, "delete a cluster whose targets are removed");
	th_response_free(&r);
	stop_clean(f);
	free(fake);
}

/* ------------------------------------------------------------ netns */

static const char *ip_cmd(void)
{
	return access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip"
	       : access("/sbin/ip", X_OK) == 0	 ? "/sbin/ip"
						 : "/bin/ip";
}

/* Whether this process may make network namespaces; why not into why. */
static bool netns_capable(const char *prefix, char *why, size_t size)
{
	char *name = xasprintf("%s-canary", prefix);
	const char *add[] = {ip_cmd(), "netns", "add", name, NULL};
	const char *del[] = {ip_cmd(), "netns", "del", name, NULL};
	bool ok;

	if (access(ip_cmd(), X_OK) != 0) {
		snprintf(why, size, "iproute2's ip is not installed");
		free(name);
		return false;
	}
	ok = th_run(add, NULL, 10) == 0;
	if (ok)
		th_run(del, NULL, 10);
	else
		snprintf(why, size, "`ip netns add` failed: no CAP_NET_ADMIN/CAP_SYS_ADMIN here");
	free(name);
	return ok;
}

static void test_netns(void **state)
{
	struct fx *f = *state;
	unsigned net = 20 + (unsigned)getpid() % 200;
	char why[128], names[4096], *leftover, *leftlink;
	struct th_response r;
	json_t *live, *t;
	double deadline;
	size_t i;

	if (!netns_capable(f->prefix, why, sizeof why)) {
		printf("# netns not run: %s\n", why);
		return;
	}
	th_guard_prefix(f->prefix);
	/* what a crashed earlier run of this server would have left */
	leftover = xasprintf("%s-t-leftover", f->prefix);
	leftlink = xasprintf("%s-v77", f->prefix);
	{
		const char *ns[] = {ip_cmd(), "netns", "add", leftover, NULL};
		const char *link[] = {ip_cmd(), "link", "add",	leftlink,  "type",
				      "veth",	"peer", "name", "eth77tt", NULL};

		assert_int_equal(th_run(ns, NULL, 10), 0);
		assert_int_equal(th_run(link, NULL, 10), 0);
	}
	arg(f, "--listen");
	arg(f, "0.0.0.0:0");
	arg(f, "--provider");
	arg(f, "netns:subnet=10.213.%u.0/24,prefix=%s", net, f->prefix);
	start(f);
	th_netns_leftovers(f->prefix, names, sizeof names);
	if (strstr(names, leftover) || strstr(names, leftlink))
		fail_msg("the leftovers of an earlier run were not swept: %s", names);

	get(f, "/api/v1/providers", NULL, &r);
	expect_status(&r, 200, "providers");
	t = json_array_get(json_object_get(r.json, "items"), 1);
	assert_string_equal(th_str(t, "name"), "netns");
	if (!json_is_true(json_object_get(t, "available")))
		fail_msg("netns unavailable: %s", th_str(t, "reason"));
	th_response_free(&r);

	upload_educa(f);
	make_cluster(f, "net", ", \"provider\": \"netns\"");
	call(f, "POST", "/api/v1/targets", "{\"cluster\": \"net\", \"count\": 3}", &r);
	expect_status(&r, 202, "create 3 netns targets");
	th_response_free(&r);
	live = wait_running(f, "net", 3);
	json_array_foreach(live, i, t)
	{
		const char *addr = th_str(t, "address");
		char *url = xasprintf("http://%s:8000/", addr);
		char *want = xasprintf("educa-web 1.0.0 on %s: hello from 1.0", th_str(t, "id"));
		char *subnet = xasprintf("10.213.%u.", net);

		assert_string_equal(th_str(t, "provider"), "netns");
		assert_int_equal(strncmp(th_str(t, "instance"), f->prefix, strlen(f->prefix)), 0);
		assert_int_equal(strncmp(addr, subnet, strlen(subnet)), 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(addr, th_str(json_array_get(live, j), "address"));
		expect_serves(url, want);
		free(subnet);
		free(want);
		free(url);
	}

	/* removed, and the server stopped: nothing of the provider's is left */
	json_array_foreach(live, i, t)
	{
		char *path = xasprintf("/api/v1/targets/%s", th_str(t, "id"));

		call(f, "DELETE", path, NULL, &r);
		expect_status(&r, 202, "delete a netns target");
		th_response_free(&r);
		free(path);
	}
	json_array_foreach(live, i, t)
	    json_decref(wait_state(f, th_str(t, "id"), "removed", NODE_DEADLINE_S));
	json_decref(live);
	assert_int_equal(th_procs_under(f->srv.data_dir), 0);
	stop_clean(f);
	deadline = th_now_s() + SHORT_DEADLINE_S;
	while (th_netns_leftovers(f->prefix, names, sizeof names)) {
		if (th_now_s() > deadline)
			fail_msg("left behind by the netns provider: %s", names);
		th_pause_ms(50);
	}
	free(leftover);
	free(leftlink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_local_lifecycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_netns, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
