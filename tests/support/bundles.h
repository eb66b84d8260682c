/* bundles.h - test fixtures made on the spot (never downloaded): bundle
 * zips from a bundle.json and extra files, and distribution archives of
 * distribution.json and bundles/NAME.zip, built with the zip writer so that
 * tests can also make them hostile. */
#ifndef TN_BUNDLES_H
#define TN_BUNDLES_H

#include <stddef.h>

#include "zipwriter.h"

/* A bundle zip: bundle.json (the text given, as is) at the root, then the
 * n extra entries.  Caller frees the result's p. */
struct buf th_bundle_zip(const char *bundle_json, const struct zentry *extra, size_t n);

/* A small valid bundle: {"name", "version"} plus "requires" when
 * requires_json (an object's text, e.g. "{\"b\": \"[1.0,2.0)\"}") is not
 * NULL, and one payload file whose content includes `salt` (so that two
 * bundles of one name@version can differ).  Caller frees p. */
struct buf th_simple_bundle(const char *name, const char *version, const char *requires_json,
			    const char *salt);

/* One bundle inside a distribution archive: stored as bundles/<file>. */
struct th_member {
	const char *file; /* "web.zip" */
	struct buf zip;	  /* borrowed */
};

/* A distribution archive: distribution.json (as given) and bundles/<file>
 * for each member.  Caller frees p. */
struct buf th_distribution_zip(const char *distribution_json, const struct th_member *m, size_t n);

#endif
