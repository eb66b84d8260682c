/* fuzz_manifest.c - libFuzzer target for the bundle.json parser
 * (common/manifest.c) and what the server and agent do next with a parsed
 * manifest: defaults, placeholder names, and checking a config layer. */
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tn_manifest *m = NULL;
	struct tn_error err = {0};
	json_t *defaults;

	if (tn_manifest_parse((const char *)data, size, &m, &err)) {
		if (m || err.message[0] == '\0')
			abort(); /* a failure must say why and give nothing */
		return 0;
	}
	/* The defaults pass the manifest's own config check. */
	defaults = tn_manifest_config_defaults(m);
	if (tn_manifest_check_config(m, defaults, "defaults", &err))
		abort();
	json_decref(defaults);
	for (size_t i = 0; i < m->n_config; i++)
		if (!tn_manifest_name_known(m, m->config[i].name) ||
		    tn_manifest_config_find(m, m->config[i].name) != &m->config[i])
			abort();
	/* The whole document as a config layer: almost always refused, and
	 * then with a reason. */
	err.message[0] = '\0';
	if (tn_manifest_check_config(m, m->raw, "fuzz", &err) && err.message[0] == '\0')
		abort();
	tn_manifest_free(m);
	return 0;
}
