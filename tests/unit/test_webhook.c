/* test_webhook.c - what a webhook accepts (its url and event patterns),
 * which actions its patterns match, the backoff between attempts, and the
 * body it is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "webhook.h"
#include "xalloc.h"

static void url_ok(const char *url)
{
	struct tn_error err;

	if (tn_webhook_check_url(url, &err) != 0)
		fail_msg("%s refused: %s", url, err.message);
}

static void url_bad(const char *url, const char *want)
{
	struct tn_error err = {0};

	if (tn_webhook_check_url(url, &err) == 0)
		fail_msg("%s accepted", url);
	assert_int_equal(err.code, TN_E_INVALID);
	if (!strstr(err.message, want))
		fail_msg("%s: \"%s\" does not say \"%s\"", url, err.message, want);
	assert_true(strncmp(err.message, "url: ", 5) == 0);
}

static void test_url(void **state)
{
	char *longest, *too_long;

	(void)state;
	url_ok("http://example.com");
	url_ok("https://example.com/hooks/tender?x=1#f");
	url_ok("HTTPS://Example.COM:8443/");
	url_ok("http://127.0.0.1:1/x");
	url_ok("http://[::1]:8080/x");
	url_ok("http://user:secret@hooks.example.com/x");
	url_ok("http://my_host.internal/x");
	url_ok("http://host:65535");

	url_bad("ftp://example.com/x", "http:// or https://");
	url_bad("example.com/x", "http:// or https://");
	url_bad("file:///etc/passwd", "http:// or https://");
	url_bad("http://", "no host");
	url_bad("http:///path", "no host");
	url_bad("http://user@/x", "no host");
	url_bad("http://:80/x", "no host");
	url_bad("http://host:0/", "port");
	url_bad("http://host:65536/", "port");
	url_bad("http://host:123456/", "port");
	url_bad("http://host:/", "bad character");
	url_bad("http://host:8a/", "port");
	url_bad("http://ho!st/", "bad character");
	url_bad("http://[::1/x", "']'");
	url_bad("http://[zz]/x", "IPv6");
	url_bad("http://host/a b", "spaces");
	url_bad("http://host/a\nb", "control");
	url_bad("http://host/\xc3\xa9", "non-ASCII");

	/* 2048 bytes exactly is the limit */
	longest = xmalloc(TN_WEBHOOK_URL_MAX + 2);
	memset(longest, 'a', TN_WEBHOOK_URL_MAX + 1);
	memcpy(longest, "http://h/", 9);
	longest[TN_WEBHOOK_URL_MAX] = '\0';
	url_ok(longest);
	too_long = xasprintf("%sa", longest);
	url_bad(too_long, "longer than 2048");
	free(longest);
	free(too_long);
}

static void events_bad(const char *json, const char *want)
{
	json_t *events = json_loads(json, JSON_DECODE_ANY, NULL);
	struct tn_error err = {0};

	assert_non_null(events);
	if (tn_webhook_check_events(events, &err) == 0)
		fail_msg("%s accepted", json);
	assert_int_equal(err.code, TN_E_INVALID);
	if (!strstr(err.message, want))
		fail_msg("%s: \"%s\" does not say \"%s\"", json, err.message, want);
	json_decref(events);
}

static void events_ok(const char *json)
{
	json_t *events = json_loads(json, 0, NULL);
	struct tn_error err;

	assert_non_null(events);
	if (tn_webhook_check_events(events, &err) != 0)
		fail_msg("%s refused: %s", json, err.message);
	json_decref(events);
}

static void test_events(void **state)
{
	json_t *many = json_array();
	char *text;
	struct tn_error err;

	(void)state;
	events_ok("[\"rollout.succeeded\"]");
	events_ok("[\"rollout.*\", \"cluster.create\", \"*\"]");
	events_ok("[\"enrollment_token.create\", \"lb.member_added\", \"a.b.c\", \"a.b.*\"]");

	events_bad("[]", "events: must name at least one event");
	events_bad("{}", "events: must be an array");
	events_bad("\"rollout.*\"", "events: must be an array");
	events_bad("[1]", "events[0]: must be a string");
	events_bad("[\"rollout.failed\", null]", "events[1]: must be a string");
	events_bad("[\"rollout\"]", "events[0]: \"rollout\" is not an event name");
	events_bad("[\"Rollout.failed\"]", "events[0]: \"Rollout.failed\"");
	events_bad("[\"rollout.\"]", "events[0]");
	events_bad("[\".failed\"]", "events[0]");
	events_bad("[\"rollout..failed\"]", "events[0]");
	events_bad("[\"rollout*\"]", "events[0]");
	events_bad("[\"*.failed\"]", "events[0]");
	events_bad("[\"rollout.*.x\"]", "events[0]");
	events_bad("[\".*\"]", "events[0]");
	events_bad("[\"**\"]", "events[0]");
	events_bad("[\"\"]", "events[0]");
	events_bad("[\"rollout.fail ed\"]", "events[0]");
	events_bad("[\"a.b\", \"c.d\", \"a.b\"]", "events[2]: \"a.b\" is there twice");

	/* at most 64 */
	for (int i = 0; i < TN_WEBHOOK_EVENTS_MAX; i++) {
		char name[32];

		snprintf(name, sizeof name, "x.e%d", i);
		json_array_append_new(many, json_string(name));
	}
	assert_int_equal(tn_webhook_check_events(many, &err), 0);
	json_array_append_new(many, json_string("x.one_more"));
	text = json_dumps(many, JSON_COMPACT);
	events_bad(text, "more than 64");
	free(text);
	json_decref(many);
}

static void test_matching(void **state)
{
	json_t *patterns = json_pack("[s, s]", "rollout.*", "cluster.create");
	json_t *none = json_array();

	(void)state;
	assert_true(tn_webhook_pattern_matches("*", "rollout.succeeded"));
	assert_true(tn_webhook_pattern_matches("*", "x"));
	assert_true(tn_webhook_pattern_matches("rollout.succeeded", "rollout.succeeded"));
	assert_false(tn_webhook_pattern_matches("rollout.succeeded", "rollout.succeeded2"));
	assert_false(tn_webhook_pattern_matches("rollout.succeeded", "rollout.succeede"));
	assert_true(tn_webhook_pattern_matches("rollout.*", "rollout.succeeded"));
	assert_true(tn_webhook_pattern_matches("rollout.*", "rollout.batch_started"));
	assert_true(tn_webhook_pattern_matches("rollout.*", "rollout.target.x"));
	assert_false(tn_webhook_pattern_matches("rollout.*", "rollout"));
	assert_false(tn_webhook_pattern_matches("rollout.*", "rollout."));
	assert_false(tn_webhook_pattern_matches("rollout.*", "rollouts.created"));
	assert_false(tn_webhook_pattern_matches("rollout.*", "cluster.create"));
	assert_true(tn_webhook_pattern_matches("lb.member.*", "lb.member.added"));
	assert_false(tn_webhook_pattern_matches("lb.member.*", "lb.member_added"));

	assert_true(tn_webhook_matches(patterns, "rollout.approved"));
	assert_true(tn_webhook_matches(patterns, "cluster.create"));
	assert_false(tn_webhook_matches(patterns, "cluster.delete"));
	assert_false(tn_webhook_matches(none, "cluster.delete"));
	json_decref(none);
	json_decref(patterns);
}

static void test_backoff(void **state)
{
	(void)state;
	/* 1 s, 2 s, 4 s ... capped at 60 s */
	assert_int_equal(tn_webhook_backoff_ms(1000, 1), 1000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 2), 2000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 3), 4000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 6), 32000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 7), 60000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 8), 60000);
	assert_int_equal(tn_webhook_backoff_ms(1000, 1000), 60000);
	assert_int_equal(tn_webhook_backoff_ms(10, 1), 10);
	assert_int_equal(tn_webhook_backoff_ms(10, 4), 80);
	assert_int_equal(tn_webhook_backoff_ms(60000, 3), 60000);
}

static void test_body(void **state)
{
	json_t *event = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:i}}", "id", 42, "at",
				  "2026-11-23T09:00:00Z", "actor", "admin", "action",
				  "rollout.paused", "object_type", "rollout", "object_id", "r-abc",
				  "outcome", "ok", "detail", "batch", 1);
	json_t *bare =
	    json_pack("{s:i, s:s, s:s, s:s, s:n, s:n, s:s, s:n}", "id", 7, "at",
		      "2026-11-23T09:00:00Z", "actor", "tender-server", "action", "lb.unreachable",
		      "object_type", "object_id", "outcome", "failed", "detail");
	char *body;

	(void)state;
	body = tn_webhook_body(event);
	assert_string_equal(body, "{\"id\":42,\"event\":\"rollout.paused\","
				  "\"at\":\"2026-11-23T09:00:00Z\",\"actor\":\"admin\","
				  "\"object\":{\"type\":\"rollout\",\"id\":\"r-abc\"},"
				  "\"outcome\":\"ok\",\"detail\":{\"batch\":1}}");
	free(body);
	body = tn_webhook_body(bare);
	assert_string_equal(body, "{\"id\":7,\"event\":\"lb.unreachable\","
				  "\"at\":\"2026-11-23T09:00:00Z\",\"actor\":\"tender-server\","
				  "\"object\":null,\"outcome\":\"failed\",\"detail\":null}");
	free(body);
	json_decref(event);
	json_decref(bare);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),	     cmocka_unit_test(test_events),
	    cmocka_unit_test(test_matching), cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_body),
	};

	tn_log_set_level(TN_LOG_WARN);
	return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
