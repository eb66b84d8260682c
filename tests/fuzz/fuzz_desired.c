/* fuzz_desired.c - libFuzzer target for the agent's desired-document check
 * (target-agent/desired.c) and the signature and base64 code under it
 * (common/sign.c).  The first byte chooses how the rest is used:
 *   'S'  the rest is a body the fuzzer signs with the server's key, so the
 *        strict parser behind the signature check is reached;
 *   'H'  the rest is "HEADER\nBODY": a Tender-Signature header as sent,
 *        over the body (almost always refused: it exercises the header and
 *        base64 parsing);
 *   else the rest is a body with no header at all (refused unparsed).
 * The key is made at start-up; the target is t-abc123, the highest
 * generation seen is 2. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "sign.h"
#include "xalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tn_key *server_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (tn_key_generate(&server_key, NULL))
		abort();
	return 0;
}

/* What desired.h promises of an accepted release: blob URLs under the
 * prefix, sha256 in hex, and a config keyed by the release's bundles. */
static void walk_release(const struct tn_desired_release *r)
{
	const char *key;
	json_t *value;
	size_t found = 0;

	if (!r)
		return;
	for (size_t i = 0; i < r->n_bundles; i++) {
		if (strncmp(r->bundles[i].url, TN_DESIRED_BLOB_PREFIX,
			    strlen(TN_DESIRED_BLOB_PREFIX)) != 0 ||
		    strlen(r->bundles[i].sha256) != 64)
			abort();
		if (tn_desired_release_config(r, r->bundles[i].name))
			found++;
	}
	json_object_foreach(r->config, key, value) if (!json_is_object(value)) abort();
	if (found != json_object_size(r->config))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	char *header = NULL, *sig = NULL, *endorsements = NULL, *bar;
	struct tn_desired *d = NULL;
	struct tn_error err = {0};

	if (size == 0)
		goto out;
	if (data[0] == 'S') {
		if (tn_sign_b64(server_key, body, len, &sig, NULL))
			abort();
		header = xasprintf("ed25519=%s", sig);
	} else if (data[0] == 'H') {
		const char *nl = memchr(body, '\n', len);

		if (!nl)
			goto out;
		header = xstrndup(body, (size_t)(nl - body));
		len -= (size_t)(nl - body) + 1;
		body = nl + 1;
		/* "SIGNATURE|ENDORSEMENTS": the key chain header too */
		if ((bar = strchr(header, '|'))) {
			*bar = '\0';
			endorsements = xstrdup(bar + 1);
		}
	}
	if (tn_desired_parse(body, len, header, endorsements, server_key, "t-abc123", 2, &d,
			     &err) == 0) {
		if (strcmp(d->target_id, "t-abc123") != 0 || d->generation < 2)
			abort();
		walk_release(d->run);
		walk_release(d->prepare);
		if (!tn_desired_state_name(d->state))
			abort();
	} else if (d || strncmp(err.message, "desired document: ", 18) != 0) {
		abort();
	}
out:
	tn_desired_free(d);
	free(header);
	free(sig);
	free(endorsements);
	return 0;
}
