/* test_desired.c - the desired document: signature first (unsigned, tampered,
 * another key, a newer key reached through endorsements, forged ones), then strict parsing (every malformed field refused by name),
 * then target and generation checks (wrong target, replay/downgrade). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "keychain.h"
#include "sign.h"
#include "xalloc.h"

#define SHA_A "3f2a9c0d51e7aa0011223344556677889900aabbccddeeff0011223344556677"
#define SHA_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A good document: two bundles, a config, an lb object. */
static const char *const good =
	"{\"target_id\":\"t-abc123\",\"cluster\":\"educa\",\"generation\":7,"
	"\"state\":\"active\","
	"\"run\":{\"id\":\"educa@1.0.0+3f2a9c0d51e7\",\"distribution\":\"educa\","
	"\"version\":\"1.0.0\",\"bundles\":["
	"{\"name\":\"org.educa.web\",\"version\":\"1.0.0\",\"sha256\":\"" SHA_A "\","
	"\"size\":48213,\"url\":\"/agent/v1/blobs/" SHA_A "\"},"
	"{\"name\":\"org.educa.db\",\"version\":\"1.2\",\"sha256\":\"" SHA_B "\","
	"\"size\":100,\"url\":\"/agent/v1/blobs/" SHA_B "\"}],"
	"\"config\":{\"org.educa.web\":{\"greeting\":\"hi\",\"workers\":4}}},"
	"\"prepare\":null,"
	"\"lb\":{\"driver\":\"haproxy\",\"agent_port\":8009}}";

struct fx {
	struct tn_key *key;
	struct tn_key *other;
};

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);

	if (tn_key_generate(&fx->key, NULL) < 0 || tn_key_generate(&fx->other, NULL) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	tn_key_free(fx->key);
	tn_key_free(fx->other);
	free(fx);
	return 0;
}

/* "ed25519=<signature of body by key>"; caller frees. */
static char *sign_header(const struct tn_key *key, const char *body)
{
	char *sig = NULL, *h;

	assert_int_equal(tn_sign_b64(key, body, strlen(body), &sig, NULL), 0);
	h = xasprintf("ed25519=%s", sig);
	free(sig);
	return h;
}

/* body with the first occurrence of from replaced by to; caller frees. */
static char *replace(const char *body, const char *from, const char *to)
{
	const char *at = strstr(body, from);

	assert_non_null(at);
	return xasprintf("%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
}

/* Signs body with the right key and parses it as target t-abc123 with a
 * highest generation of min_gen; returns rc, err filled. */
static int parse_signed(struct fx *fx, const char *body, int64_t min_gen, struct tn_desired **d,
			struct tn_error *err)
{
	char *h = sign_header(fx->key, body);
	int rc = tn_desired_parse(body, strlen(body), h, NULL, fx->key, "t-abc123", min_gen, d, err);

	free(h);
	return rc;
}

static void test_good_document_is_accepted(void **state)
{
	struct fx *fx = *state;
	struct tn_desired *d = NULL;
	struct tn_error err = {0};
	char etag[TN_SHA256_HEX_LEN + 1];
	const struct tn_desired_release *r;

	assert_int_equal(parse_signed(fx, good, 7, &d, &err), 0);
	assert_string_equal(d->target_id, "t-abc123");
	assert_string_equal(d->cluster, "educa");
	assert_int_equal(d->generation, 7);
	assert_int_equal(d->state, TN_DESIRED_ACTIVE);
	assert_null(d->prepare);
	r = d->run;
	assert_non_null(r);
	assert_string_equal(r->id, "educa@1.0.0+3f2a9c0d51e7");
	assert_string_equal(r->distribution, "educa");
	assert_int_equal(r->n_bundles, 2);
	assert_string_equal(r->bundles[0].name, "org.educa.web");
	assert_string_equal(r->bundles[0].sha256, SHA_A);
	assert_int_equal(r->bundles[0].size, 48213);
	assert_string_equal(r->bundles[1].version, "1.2");
	assert_int_equal(json_integer_value(json_object_get(
				 tn_desired_release_config(r, "org.educa.web"), "workers")),
			 4);
	assert_null(tn_desired_release_config(r, "org.educa.db"));
	assert_non_null(d->lb);
	assert_string_equal(d->lb_driver, "haproxy");
	assert_int_equal(d->lb_agent_port, 8009);
	tn_sha256_hex(good, strlen(good), etag);
	assert_string_equal(d->etag, etag);
	assert_string_equal(tn_desired_state_name(d->state), "active");
	tn_desired_free(d);
}

static void test_release_outlives_document(void **state)
{
	struct fx *fx = *state;
	struct tn_desired *d = NULL;
	struct tn_desired_release *r;

	assert_int_equal(parse_signed(fx, good, 0, &d, NULL), 0);
	r = tn_desired_release_ref(d->run);
	tn_desired_free(d);
	assert_string_equal(r->bundles[1].name, "org.educa.db");
	assert_string_equal(json_string_value(json_object_get(
				    tn_desired_release_config(r, "org.educa.web"), "greeting")),
			    "hi");
	tn_desired_release_unref(r);
}

static void test_tampered_body_is_refused(void **state)
{
	struct fx *fx = *state;
	char *h = sign_header(fx->key, good);
	char *tampered = replace(good, "\"generation\":7", "\"generation\":9");
	struct tn_desired *d = (void *)1;
	struct tn_error err;

	assert_int_equal(tn_desired_parse(tampered, strlen(tampered), h, NULL, fx->key, "t-abc123", 0, &d,
					  &err),
			 -TN_E_SIGNATURE);
	assert_null(d);
	assert_int_equal(err.code, TN_E_SIGNATURE);
	assert_non_null(strstr(err.message, "desired document: bad signature"));
	/* One byte less is a different body too. */
	assert_int_equal(tn_desired_parse(good, strlen(good) - 1, h, NULL, fx->key, "t-abc123", 0, &d,
					  &err),
			 -TN_E_SIGNATURE);
	free(tampered);
	free(h);
}

static void test_other_key_is_refused(void **state)
{
	struct fx *fx = *state;
	char *h = sign_header(fx->other, good);
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(tn_desired_parse(good, strlen(good), h, NULL, fx->key, "t-abc123", 0, &d, &err),
			 -TN_E_SIGNATURE);
	assert_non_null(strstr(err.message, "bad signature"));
	assert_null(d);
	free(h);
}

/* After a rotation: a document signed by the key the pinned one endorsed
 * is accepted and names that key; without the endorsement, or with one
 * the pinned key did not sign, it is refused. */
static void test_endorsed_key_is_followed(void **state)
{
	struct fx *fx = *state;
	char *h = sign_header(fx->other, good), *link = NULL, *forged = NULL, *sig = NULL;
	char *pinned = tn_key_public_b64(fx->key), *newer = tn_key_public_b64(fx->other);
	char *msg = xasprintf("%s\n%s\n%s\n", TN_KEYCHAIN_PURPOSE, pinned, newer);
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(tn_keychain_endorse(fx->key, fx->other, &link, NULL), 0);
	assert_int_equal(tn_desired_parse(good, strlen(good), h, link, fx->key, "t-abc123", 0, &d,
					  &err),
			 0);
	assert_string_equal(d->signer_key, newer);
	tn_desired_free(d);
	d = NULL;
	/* the pinned key still signing, endorsements or not: nothing to pin */
	{
		char *own = sign_header(fx->key, good);

		assert_int_equal(tn_desired_parse(good, strlen(good), own, link, fx->key,
						  "t-abc123", 0, &d, &err),
				 0);
		assert_null(d->signer_key);
		tn_desired_free(d);
		d = NULL;
		free(own);
	}
	/* the newer key endorsing itself: a forgery */
	assert_int_equal(tn_sign_b64(fx->other, msg, strlen(msg), &sig, NULL), 0);
	forged = xasprintf("%s.%s.%s", pinned, newer, sig);
	assert_int_equal(tn_desired_parse(good, strlen(good), h, forged, fx->key, "t-abc123", 0,
					  &d, &err),
			 -TN_E_SIGNATURE);
	assert_non_null(strstr(err.message, "endorsement refused"));
	assert_null(d);
	/* an endorsement that does not start from the pinned key */
	assert_int_equal(tn_desired_parse(good, strlen(good), h, "", fx->key, "t-abc123", 0, &d,
					  &err),
			 -TN_E_SIGNATURE);
	assert_non_null(strstr(err.message, "not endorsed"));
	free(forged), free(sig), free(msg), free(link), free(h), free(pinned), free(newer);
}

static void test_missing_signature_is_refused(void **state)
{
	struct fx *fx = *state;
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(tn_desired_parse(good, strlen(good), NULL, NULL, fx->key, "t-abc123", 0, &d,
					  &err),
			 -TN_E_UNSIGNED);
	assert_string_equal(err.message, "desired document: unsigned: the response has no "
					 "Tender-Signature header");
	assert_string_equal(tn_errcode_name(err.code), "unsigned");
	/* A scheme we do not know is no signature at all. */
	assert_int_equal(tn_desired_parse(good, strlen(good), "rsa=AAAA", NULL, fx->key, "t-abc123", 0,
					  &d, &err),
			 -TN_E_UNSIGNED);
	assert_int_equal(tn_desired_parse(good, strlen(good), "ed25519=", NULL, fx->key, "t-abc123", 0,
					  &d, &err),
			 -TN_E_UNSIGNED);
	/* A signature that is not one: bad, not unsigned. */
	assert_int_equal(tn_desired_parse(good, strlen(good), "ed25519=not*base64", NULL, fx->key,
					  "t-abc123", 0, &d, &err),
			 -TN_E_SIGNATURE);
	assert_null(d);
}

static void test_signature_header_tolerates_spaces(void **state)
{
	struct fx *fx = *state;
	char *h = sign_header(fx->key, good);
	char *spaced = xasprintf("  %s \r\n", h);
	struct tn_desired *d = NULL;

	assert_int_equal(tn_desired_parse(good, strlen(good), spaced, NULL, fx->key, "t-abc123", 0, &d,
					  NULL),
			 0);
	tn_desired_free(d);
	free(spaced);
	free(h);
}

static void test_signature_is_checked_before_parsing(void **state)
{
	struct fx *fx = *state;
	const char *junk = "{not json";
	char *h = sign_header(fx->other, junk);
	struct tn_desired *d = NULL;
	struct tn_error err;

	/* Garbage with a bad signature: the signature is what is reported. */
	assert_int_equal(tn_desired_parse(junk, strlen(junk), h, NULL, fx->key, "t-abc123", 0, &d, &err),
			 -TN_E_SIGNATURE);
	free(h);
	/* Signed garbage gets as far as the parser. */
	assert_int_equal(parse_signed(fx, junk, 0, &d, &err), -TN_E_JSON);
	assert_non_null(strstr(err.message, "desired document: malformed JSON"));
}

static void test_wrong_target_is_refused(void **state)
{
	struct fx *fx = *state;
	char *body = replace(good, "t-abc123", "t-other");
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(parse_signed(fx, body, 0, &d, &err), -TN_E_WRONG_TARGET);
	assert_string_equal(err.message, "desired document: wrong target: the document is for "
					 "\"t-other\", this agent is t-abc123");
	assert_null(d);
	free(body);
}

static void test_older_generation_is_refused(void **state)
{
	struct fx *fx = *state;
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(parse_signed(fx, good, 8, &d, &err), -TN_E_STALE);
	assert_string_equal(err.message, "desired document: older generation 7 than 8 already "
					 "seen (a replay or a downgrade)");
	assert_null(d);
	/* The same generation again is the same document: fine. */
	assert_int_equal(parse_signed(fx, good, 7, &d, &err), 0);
	tn_desired_free(d);
}

/* Each case: a replacement in the good document and a piece of the
 * expected message. */
static const struct {
	const char *from, *to, *message;
	enum tn_errcode code;
} malformed[] = {
	{"\"sha256\":\"3f2a", "\"sha256\":\"3F2A", "run.bundles[0].sha256: \"3F2A", TN_E_INVALID},
	{"\"sha256\":\"" SHA_B "\"", "\"sha256\":\"0123\"",
	 "run.bundles[1].sha256: \"0123\" is not 64 lowercase hex digits", TN_E_INVALID},
	{"\"prepare\":null", "\"prepare\":null,\"extra\":1", "extra: unknown field", TN_E_INVALID},
	{"\"size\":100,", "\"size\":100,\"mode\":\"x\",", "run.bundles[1].mode: unknown field",
	 TN_E_INVALID},
	{"\"distribution\":\"educa\",", "\"distribution\":\"educa\",\"note\":1,",
	 "run.note: unknown field", TN_E_INVALID},
	{"\"url\":\"/agent/v1/blobs/" SHA_A "\"", "\"url\":\"http://evil.example/" SHA_A "\"",
	 "run.bundles[0].url: \"http://evil.example/", TN_E_INVALID},
	{"\"url\":\"/agent/v1/blobs/" SHA_A "\"", "\"url\":\"/agent/v1/blobs/../../x\"",
	 "run.bundles[0].url", TN_E_INVALID},
	{"\"url\":\"/agent/v1/blobs/" SHA_A "\"", "\"url\":\"/agent/v1/blobs/a?b=c\"",
	 "run.bundles[0].url", TN_E_INVALID},
	{"\"url\":\"/agent/v1/blobs/" SHA_A "\"", "\"url\":\"/agent/v1/blobs/\"",
	 "run.bundles[0].url", TN_E_INVALID},
	{"\"name\":\"org.educa.web\"", "\"name\":\"../etc\"", "run.bundles[0].name: \"../etc\"",
	 TN_E_INVALID},
	{"\"name\":\"org.educa.db\"", "\"name\":\"org.educa.web\"",
	 "run.bundles[1].name: \"org.educa.web\" appears twice", TN_E_INVALID},
	{"\"version\":\"1.2\"", "\"version\":\"1.x\"", "run.bundles[1].version: \"1.x\"",
	 TN_E_INVALID},
	{"\"size\":48213", "\"size\":-1", "run.bundles[0].size", TN_E_INVALID},
	{"\"size\":48213", "\"size\":\"48213\"", "run.bundles[0].size: must be an integer",
	 TN_E_INVALID},
	{"educa@1.0.0+3f2a9c0d51e7", "educa@1.0.1+3f2a9c0d51e7", "run.id: \"educa@1.0.1+",
	 TN_E_INVALID},
	{"educa@1.0.0+3f2a9c0d51e7", "educa@1.0.0+3f2a9c0d51", "run.id", TN_E_INVALID},
	{"educa@1.0.0+3f2a9c0d51e7", "educa@1.0.0+3F2A9C0D51E7", "run.id", TN_E_INVALID},
	{"\"state\":\"active\"", "\"state\":\"paused\"", "state: \"paused\"", TN_E_INVALID},
	{"\"generation\":7", "\"generation\":-7", "generation", TN_E_INVALID},
	{"\"cluster\":\"educa\",", "", "cluster: is required", TN_E_INVALID},
	{"{\"org.educa.web\":{", "{\"org.educa.cms\":{", "run.config.org.educa.cms: not a bundle",
	 TN_E_INVALID},
	{"\"workers\":4", "\"workers\":{\"n\":4}", "run.config.org.educa.web.workers: must be",
	 TN_E_INVALID},
	{"\"workers\":4", "\"workers\":null", "run.config.org.educa.web.workers: must be",
	 TN_E_INVALID},
	{"\"bundles\":[", "\"bundles\":[],\"x\":[", "run.x: unknown field", TN_E_INVALID},
	{"\"prepare\":null", "\"prepare\":[]", "prepare: must be an object or null", TN_E_INVALID},
	{"\"lb\":{", "\"lb\":[{", "lb: must be an object or null", TN_E_JSON},
	{"\"lb\":{\"driver\":\"haproxy\",\"agent_port\":8009}", "\"lb\":\"haproxy\"",
	 "lb: must be an object or null", TN_E_INVALID},
	{"\"agent_port\":8009", "\"agent_port\":8009,\"weight\":100", "lb.weight: unknown field",
	 TN_E_INVALID},
	{"\"agent_port\":8009", "\"agent_port\":0", "lb.agent_port", TN_E_INVALID},
	{"\"agent_port\":8009", "\"agent_port\":65536", "lb.agent_port", TN_E_INVALID},
	{"\"agent_port\":8009", "\"agent_port\":\"8009\"", "lb.agent_port: must be an integer",
	 TN_E_INVALID},
	{"\"driver\":\"haproxy\",", "", "lb.driver: is required", TN_E_INVALID},
	{"\"driver\":\"haproxy\"", "\"driver\":7", "lb.driver: must be a string", TN_E_INVALID},
	{"\"driver\":\"haproxy\"", "\"driver\":\"ha proxy\"",
	 "lb.driver: \"ha proxy\" is not a driver name", TN_E_INVALID},
	{"\"generation\":7", "\"generation\":7,\"generation\":8", "duplicate", TN_E_JSON},
};

static void test_malformed_fields_are_refused(void **state)
{
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
		char *body = replace(good, malformed[i].from, malformed[i].to);
		struct tn_desired *d = NULL;
		struct tn_error err = {0};
		int rc = parse_signed(fx, body, 0, &d, &err);

		if (rc != -(int)malformed[i].code || (malformed[i].code == TN_E_INVALID &&
						      !strstr(err.message, malformed[i].message)))
			fail_msg("case %zu (%s): rc %d, message \"%s\"", i, malformed[i].to, rc,
				 err.message);
		assert_null(d);
		assert_true(strncmp(err.message, "desired document: ", 18) == 0);
		free(body);
	}
}

static void test_empty_bundles_and_prepare(void **state)
{
	struct fx *fx = *state;
	char *body = replace(good, "\"prepare\":null", "\"prepare\":{\"id\":\"educa@1.1.0+"
						       "000000000000\",\"distribution\":\"educa\","
						       "\"version\":\"1.1.0\",\"bundles\":[],"
						       "\"config\":{}}");
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(parse_signed(fx, body, 0, &d, &err), -TN_E_INVALID);
	assert_non_null(strstr(err.message, "prepare.bundles: must hold 1 to 256 bundles"));
	free(body);
	/* run, prepare and lb may be null or absent; draining parses. */
	body = xstrdup("{\"target_id\":\"t-abc123\",\"cluster\":\"educa\",\"generation\":0,"
		       "\"state\":\"draining\"}");
	assert_int_equal(parse_signed(fx, body, 0, &d, &err), 0);
	assert_null(d->run);
	assert_null(d->prepare);
	assert_null(d->lb);
	assert_int_equal(d->state, TN_DESIRED_DRAINING);
	tn_desired_free(d);
	free(body);
}

/* lb without agent_port, and the "none" driver, which asks nothing. */
static void test_lb_forms(void **state)
{
	struct fx *fx = *state;
	char *body = replace(good, ",\"agent_port\":8009", "");
	struct tn_desired *d = NULL;
	struct tn_error err;

	assert_int_equal(parse_signed(fx, body, 0, &d, &err), 0);
	assert_string_equal(d->lb_driver, "haproxy");
	assert_int_equal(d->lb_agent_port, 0);
	tn_desired_free(d);
	free(body);
	body = replace(good, "\"driver\":\"haproxy\"", "\"driver\":\"none\"");
	assert_int_equal(parse_signed(fx, body, 0, &d, &err), 0);
	assert_non_null(d->lb);
	assert_null(d->lb_driver);
	tn_desired_free(d);
	free(body);
	body = replace(good, "\"lb\":{\"driver\":\"haproxy\",\"agent_port\":8009}", "\"lb\":null");
	assert_int_equal(parse_signed(fx, body, 0, &d, &err), 0);
	assert_null(d->lb);
	assert_null(d->lb_driver);
	tn_desired_free(d);
	free(body);
}

static void test_oversized_body_is_refused(void **state)
{
	struct fx *fx = *state;
	size_t len = TN_DESIRED_MAX_BYTES + 1;
	char *big = xcalloc(1, len + 1);
	struct tn_desired *d = NULL;
	struct tn_error err;

	memset(big, ' ', len);
	assert_int_equal(tn_desired_parse(big, len, "ed25519=AAAA", NULL, fx->key, "t-abc123", 0, &d,
					  &err),
			 -TN_E_TOO_LARGE);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_document_is_accepted),
		cmocka_unit_test(test_release_outlives_document),
		cmocka_unit_test(test_tampered_body_is_refused),
		cmocka_unit_test(test_other_key_is_refused),
		cmocka_unit_test(test_endorsed_key_is_followed),
		cmocka_unit_test(test_missing_signature_is_refused),
		cmocka_unit_test(test_signature_header_tolerates_spaces),
		cmocka_unit_test(test_signature_is_checked_before_parsing),
		cmocka_unit_test(test_wrong_target_is_refused),
		cmocka_unit_test(test_older_generation_is_refused),
		cmocka_unit_test(test_malformed_fields_are_refused),
		cmocka_unit_test(test_empty_bundles_and_prepare),
		cmocka_unit_test(test_lb_forms),
		cmocka_unit_test(test_oversized_body_is_refused),
	};
	return cmocka_run_group_tests_name("desired", tests, setup, teardown);
}
