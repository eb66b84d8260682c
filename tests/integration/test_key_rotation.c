/* test_key_rotation.c - rotation of the server's signing key with real
 * agents running educa: `tender-server rotate-key` on the stopped server's
 * data directory, then the agents take the next document (signed by the
 * new key, endorsed by the old), pin the new key on disk and deploy; a
 * second rotation and a config rollout; an agent restarted after it; an
 * agent that was stopped through both rotations follows the whole chain;
 * and a stranger key that endorses itself is refused while the agent goes
 * on serving what it ran.  Tests run in order on one fixture. */
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
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "keychain.h"
#include "nodes.h"
#include "sign.h"
#include "xalloc.h"

#define CONVERGE_S 60.0
#define POLL_MS 50
#define WEB_10 "educa-web 1.0.0 on "
#define WEB_11 "educa-web 1.1.0 on "

struct fx {
	struct th_server srv;
	char *var;		/* the server's --data */
	struct th_agent rot[2]; /* cluster "rot": they run through the rotations */
	struct th_agent away;	/* cluster "away": stopped during both */
	char *keys[3];		/* the server's public keys: first, after 1, after 2 */
};

static struct fx the_fx;

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void fail_agent(const struct th_agent *a, const char *what)
{
	char *log = th_agent_log(a);

	fprintf(stderr, "--- log of agent %s\n%s--- end\n", a->target_id, log);
	free(log);
	fail_msg("agent %s: %s", a->target_id, what);
}

static json_t *api(const char *method, const char *path, const char *body, long want)
{
	struct th_response r;
	json_t *j;

	th_json(&the_fx.srv, method, path, the_fx.srv.admin_token, body, &r);
	if (r.status != want)
		fail_msg("%s %s: want %ld, got %ld %s", method, path, want, r.status, r.body);
	j = r.json ? json_incref(r.json) : NULL;
	th_response_free(&r);
	return j;
}

/* The key the agent has pinned on disk (caller frees). */
static char *pinned(const struct th_agent *a)
{
	char *path = xasprintf("%s/agent.json", a->state_dir), *text = NULL, *key;
	size_t len = 0;
	json_t *j;

	assert_int_equal(tn_read_file(path, 1 << 16, &text, &len, NULL), 0);
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	key = xstrdup(jstr(j, "server_key"));
	json_decref(j);
	free(text);
	free(path);
	return key;
}

static void expect_pinned(const struct th_agent *a, const char *want)
{
	char *have = pinned(a);

	if (strcmp(have, want) != 0)
		fail_agent(a, "pins another key than the server's");
	free(have);
}

/* Waits until the agent's web bundle answers a page holding want. */
static void wait_serves(const struct th_agent *a, const char *want)
{
	char *url = xasprintf("http://127.0.0.1:%d/", a->port_base);
	double deadline = th_now_s() + CONVERGE_S;
	char body[512] = "";

	while (!(th_get(url, body, sizeof body) == 200 && strstr(body, want))) {
		if (th_now_s() > deadline)
			fail_agent(a, "its web bundle never answered the page wanted");
		th_pause_ms(POLL_MS);
	}
	free(url);
}

/* Waits until the agent's log holds needle. */
static void wait_log(const struct th_agent *a, const char *needle)
{
	double deadline = th_now_s() + CONVERGE_S;

	while (!th_agent_log_has(a, needle)) {
		if (th_now_s() > deadline)
			fail_agent(a, needle);
		th_pause_ms(POLL_MS);
	}
}

/* Creates and approves a rollout (body: its JSON); its id. */
static char *rollout(const char *body)
{
	json_t *r = api("POST", "/api/v1/rollouts", body, 201);
	char *id = xstrdup(jstr(r, "id"));
	char *path = xasprintf("/api/v1/rollouts/%s/approve", id);

	json_decref(api("POST", path, NULL, 200));
	json_decref(r);
	free(path);
	return id;
}

static void wait_rollout_succeeded(const char *id)
{
	char *path = xasprintf("/api/v1/rollouts/%s", id);
	double deadline = th_now_s() + CONVERGE_S;

	for (;;) {
		json_t *r = api("GET", path, NULL, 200);
		const char *state = jstr(r, "state");

		if (strcmp(state, "succeeded") == 0) {
			json_decref(r);
			break;
		}
		if (strcmp(state, "running") != 0 && strcmp(state, "pending_approval") != 0) {
			char *s = json_dumps(r, JSON_COMPACT);

			fail_msg("rollout %s ended %s: %s", id, state, s);
		}
		if (th_now_s() > deadline)
			fail_msg("rollout %s did not end in time", id);
		json_decref(r);
		th_pause_ms(POLL_MS);
	}
	free(path);
}

/* tender-server ARGS... --data VAR; its exit status, its output in *out
 * (caller frees). */
static int server_cmd(const char *verb, char **out)
{
	char *log = xasprintf("%s/cmd.log", the_fx.srv.data_dir);
	const char *argv[] = {TN_BUILDDIR "/tender-server", verb, "--data", the_fx.var, NULL};
	size_t len = 0;
	int rc;

	unlink(log);
	rc = th_run(argv, log, 30);
	if (tn_read_file(log, 1 << 16, out, &len, NULL) != 0)
		*out = xstrdup("");
	free(log);
	return rc;
}

/* Stops the server, rotates its key, starts it again; the new public key
 * (caller frees). */
static char *rotate(void)
{
	char *out = NULL, *key;
	const char *at;
	int status = th_server_stop(&the_fx.srv);

	assert_true(th_server_exited_cleanly(&the_fx.srv, status));
	if (server_cmd("rotate-key", &out) != 0)
		fail_msg("rotate-key failed: %s", out);
	at = strstr(out, "  new ");
	assert_non_null(at);
	key = xstrndup(at + 6, 44);
	free(out);
	th_server_restart(&the_fx.srv, NULL);
	return key;
}

/* An enrollment token for a new cluster running educa 1.0. */
static char *cluster(const char *name)
{
	char *body = xasprintf("{\"name\": \"%s\", \"distribution\": \"educa@1.0\"}", name);
	json_t *j;
	char *token;

	json_decref(api("POST", "/api/v1/clusters", body, 201));
	free(body);
	body = xasprintf("{\"cluster\": \"%s\", \"uses\": 2, \"ttl_s\": 3600}", name);
	j = api("POST", "/api/v1/enrollment-tokens", body, 201);
	token = xstrdup(jstr(j, "token"));
	json_decref(j);
	free(body);
	return token;
}

/* ------------------------------------------------------------ fixture */

static void upload(const char *file)
{
	struct th_request up = {.method = "POST",
				.content_type = "application/zip",
				.token = the_fx.srv.admin_token,
				.upload_file = file};
	struct th_response r;

	th_http(&the_fx.srv, "/api/v1/distributions", &up, &r);
	if (r.status != 201)
		fail_msg("upload %s: %ld %s", file, r.status, r.body);
	th_response_free(&r);
}

static int group_setup(void **state)
{
	struct fx *fx = &the_fx;
	char *rot, *away;

	th_server_start(&fx->srv, NULL);
	fx->var = xasprintf("%s/var", fx->srv.data_dir);
	upload(TN_BUILDDIR "/distributions/educa-1.0.zip");
	upload(TN_BUILDDIR "/distributions/educa-1.1.zip");
	rot = cluster("rot");
	away = cluster("away");
	for (int i = 0; i < 2; i++)
		th_agent_start(&fx->rot[i], fx->srv.url, rot, NULL);
	th_agent_start(&fx->away, fx->srv.url, away, NULL);
	for (int i = 0; i < 2; i++)
		wait_serves(&fx->rot[i], WEB_10);
	wait_serves(&fx->away, WEB_10);
	fx->keys[0] = pinned(&fx->rot[0]);
	free(rot);
	free(away);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *fx = *state;
	int status;

	for (int i = 0; i < 2; i++)
		th_agent_destroy(&fx->rot[i]);
	th_agent_destroy(&fx->away);
	status = th_server_stop(&fx->srv);
	assert_true(th_server_exited_cleanly(&fx->srv, status));
	th_server_destroy(&fx->srv);
	for (int i = 0; i < 3; i++)
		free(fx->keys[i]);
	free(fx->var);
	return 0;
}

/* ------------------------------------------------------------ tests */

/* A running server's key is not rotated under it: refused, nothing
 * changed on disk. */
static void test_rotate_refused_while_running(void **state)
{
	struct fx *fx = *state;
	char *keyfile = xasprintf("%s/server.key", fx->var), *chain;
	char *before = NULL, *after = NULL, *out = NULL;
	size_t len = 0;

	assert_int_equal(tn_read_file(keyfile, 1 << 16, &before, &len, NULL), 0);
	assert_int_equal(server_cmd("rotate-key", &out), 1);
	if (!strstr(out, "rotate-key: data directory") || !strstr(out, "in use"))
		fail_msg("rotate-key said: %s", out);
	assert_int_equal(tn_read_file(keyfile, 1 << 16, &after, &len, NULL), 0);
	assert_string_equal(before, after);
	chain = xasprintf("%s/server.key.chain", fx->var);
	assert_int_not_equal(access(chain, F_OK), 0);
	free(chain);
	free(out);
	free(after);
	free(before);
	free(keyfile);
}

/* Rotation while the agents run: the next document (a rollout to 1.1) is
 * signed by the new key; they pin it and deploy. */
static void test_agents_follow_a_rotation(void **state)
{
	struct fx *fx = *state;
	char *id;

	/* offline through both rotations (a clean exit: no sanitizer report) */
	assert_int_equal(th_agent_stop(&fx->away), 0);
	fx->keys[1] = rotate();
	assert_string_not_equal(fx->keys[1], fx->keys[0]);
	id = rollout("{\"cluster\": \"rot\", \"distribution\": \"educa@1.1\"}");
	wait_rollout_succeeded(id);
	for (int i = 0; i < 2; i++) {
		wait_serves(&fx->rot[i], WEB_11);
		expect_pinned(&fx->rot[i], fx->keys[1]);
		assert_true(th_agent_log_has(&fx->rot[i], "server_key_rotated"));
		assert_false(th_agent_log_has(&fx->rot[i], "document_refused"));
	}
	free(id);
}

/* A second rotation, then a config change: deployed too. */
static void test_second_rotation_and_config_change(void **state)
{
	struct fx *fx = *state;
	char *id;

	fx->keys[2] = rotate();
	id = rollout("{\"cluster\": \"rot\", \"config\": {\"org.educa.web\": "
		     "{\"greeting\": \"signed by the third key\"}}}");
	wait_rollout_succeeded(id);
	for (int i = 0; i < 2; i++) {
		wait_serves(&fx->rot[i], "signed by the third key");
		expect_pinned(&fx->rot[i], fx->keys[2]);
	}
	free(id);
}

/* An agent restarted after the rotations trusts the key it pinned: it
 * takes the next rollout (back to 1.0). */
static void test_restarted_agent_still_works(void **state)
{
	struct fx *fx = *state;
	char *id;

	/* it pinned two new keys: it still exits cleanly */
	assert_int_equal(th_agent_stop(&fx->rot[0]), 0);
	th_agent_restart(&fx->rot[0]);
	id = rollout("{\"cluster\": \"rot\", \"distribution\": \"educa@1.0\"}");
	wait_rollout_succeeded(id);
	for (int i = 0; i < 2; i++) {
		wait_serves(&fx->rot[i], WEB_10);
		expect_pinned(&fx->rot[i], fx->keys[2]);
	}
	free(id);
}

/* The agent stopped through both rotations still pins the first key; back,
 * it follows the chain of two endorsements and deploys the next rollout. */
static void test_offline_agent_follows_the_chain(void **state)
{
	struct fx *fx = *state;
	char *id;

	expect_pinned(&fx->away, fx->keys[0]);
	th_agent_restart(&fx->away);
	wait_log(&fx->away, "server_key_rotated");
	expect_pinned(&fx->away, fx->keys[2]);
	id = rollout("{\"cluster\": \"away\", \"distribution\": \"educa@1.1\"}");
	wait_rollout_succeeded(id);
	wait_serves(&fx->away, WEB_11);
	assert_false(th_agent_log_has(&fx->away, "document_refused"));
	free(id);
}

/* A stranger key that endorses itself, put in the server's place: the
 * agent refuses its documents, keeps its pinned key, and goes on serving
 * what it ran. */
static void test_self_endorsed_stranger_refused(void **state)
{
	struct fx *fx = *state;
	char *keyfile = xasprintf("%s/server.key", fx->var);
	char *chainfile = xasprintf("%s/server.key.chain", fx->var);
	char *pem = xasprintf("%s/stranger.pem", fx->srv.data_dir);
	const char *gen[] = {
	    "/usr/bin/openssl", "genpkey", "-algorithm", "ed25519", "-out", pem, NULL};
	struct tn_key *stranger = NULL;
	struct tn_error err;
	char *link = NULL, *line;
	int status;

	assert_int_equal(th_run(gen, NULL, 30), 0);
	assert_int_equal(tn_key_load_private_pem(pem, &stranger, &err), 0);
	assert_int_equal(tn_keychain_endorse(stranger, stranger, &link, &err), 0);
	line = xasprintf("%s\n", link);
	status = th_server_stop(&fx->srv);
	assert_true(th_server_exited_cleanly(&fx->srv, status));
	assert_int_equal(tn_key_save_private_pem(stranger, keyfile, &err), 0);
	assert_int_equal(tn_write_file_atomic(chainfile, line, strlen(line), 0644, &err), 0);
	th_server_restart(&fx->srv, NULL);

	/* the next document of "away" comes signed by the stranger */
	json_decref(api("POST", "/api/v1/rollouts",
			"{\"cluster\": \"away\", \"distribution\": \"educa@1.0\"}", 201));
	wait_log(&fx->away, "document_refused");
	assert_true(th_agent_log_has(&fx->away, "not endorsed"));
	expect_pinned(&fx->away, fx->keys[2]);
	wait_serves(&fx->away, WEB_11);
	/* refusing left nothing behind: a clean exit */
	assert_int_equal(th_agent_stop(&fx->away), 0);
	tn_key_free(stranger);
	free(line);
	free(link);
	free(pem);
	free(chainfile);
	free(keyfile);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rotate_refused_while_running),
	    cmocka_unit_test(test_agents_follow_a_rotation),
	    cmocka_unit_test(test_second_rotation_and_config_change),
	    cmocka_unit_test(test_restarted_agent_still_works),
	    cmocka_unit_test(test_offline_agent_follows_the_chain),
	    cmocka_unit_test(test_self_endorsed_stranger_refused),
	};
	return cmocka_run_group_tests_name("key_rotation", tests, group_setup, group_teardown);
}
