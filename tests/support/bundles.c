/* bundles.c - see bundles.h. */
#include "bundles.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct buf th_bundle_zip(const char *bundle_json, const struct zentry *extra, size_t n)
{
	struct zentry *es = xcalloc(n + 1, sizeof *es);
	struct buf z;

	es[0] = (struct zentry){.name = "bundle.json",
				.data = bundle_json,
				.len = strlen(bundle_json),
				.deflate = true};
	for (size_t i = 0; i < n; i++)
		es[i + 1] = extra[i];
	z = build_zip(es, n + 1, NULL, NULL);
	free(es);
	return z;
}

struct buf th_simple_bundle(const char *name, const char *version, const char *requires_json,
			    const char *salt)
{
	char *manifest =
	    requires_json ? xasprintf("{\"name\": \"%s\", \"version\": \"%s\", \"requires\": %s}",
				      name, version, requires_json)
			  : xasprintf("{\"name\": \"%s\", \"version\": \"%s\"}", name, version);
	char *payload = xasprintf("payload of %s@%s (%s)\n", name, version, salt ? salt : "");
	const struct zentry files[] = {{.name = "share/"},
				       {.name = "share/payload.txt",
					.data = payload,
					.len = strlen(payload),
					.deflate = true}};
	struct buf z = th_bundle_zip(manifest, files, 2);

	free(manifest);
	free(payload);
	return z;
}

struct buf th_distribution_zip(const char *distribution_json, const struct th_member *m, size_t n)
{
	struct zentry *es = xcalloc(n + 2, sizeof *es);
	char **names = xcalloc(n ? n : 1, sizeof *names);
	struct buf z;

	es[0] = (struct zentry){.name = "distribution.json",
				.data = distribution_json,
				.len = strlen(distribution_json),
				.deflate = true};
	es[1] = (struct zentry){.name = "bundles/"};
	for (size_t i = 0; i < n; i++) {
		names[i] = xasprintf("bundles/%s", m[i].file);
		/* zips are stored: deflating them again gains nothing */
		es[i + 2] =
		    (struct zentry){.name = names[i], .data = m[i].zip.p, .len = m[i].zip.len};
	}
	z = build_zip(es, n + 2, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(es);
	return z;
}
