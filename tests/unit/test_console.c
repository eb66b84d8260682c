/* test_console.c - the console's static files through the route table, in
 * process: which names are served and with which headers, revalidation
 * by ETag, and everything that must not be reachable (other directories,
 * symlinks, hidden files, directories, unknown types); and where the
 * files are looked for when --web-dir is not given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"
#include "digest.h"
#include "fsutil.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

static struct tn_server srv;
static char *dir;    /* the test's own directory */
static char *webdir; /* dir/web: the console */

static void put(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", webdir, name);

	assert_int_equal(tn_write_file_atomic(path, text, strlen(text), 0644, NULL), 0);
	free(path);
}

static int setup(void **state)
{
	char *secret, *link, *sub;
	int rc;

	(void)state;
	dir = xstrdup("/tmp/tn-console-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	webdir = xasprintf("%s/web", dir);
	if (tn_mkdir_p(webdir, 0755, NULL))
		return -1;
	put("index.html", "<!doctype html><title>t</title>");
	put("app.js", "'use strict';\n");
	put("app.css", "body{}\n");
	put(".hidden.js", "hidden\n");
	put("notes.md", "# not a console file type\n");
	/* Outside the console, a symlink to it from inside, and a directory
	 * with a servable name. */
	secret = xasprintf("%s/secret.js", dir);
	link = xasprintf("%s/link.js", webdir);
	sub = xasprintf("%s/sub.js", webdir);
	rc = tn_write_file_atomic(secret, "outside\n", 8, 0600, NULL) || symlink(secret, link) ||
	     mkdir(sub, 0755);
	free(secret);
	free(link);
	free(sub);
	srv.web_dir = webdir;
	return rc ? -1 : 0;
}

static int teardown(void **state)
{
	int rc = tn_remove_tree(dir, NULL);

	(void)state;
	free(webdir);
	free(dir);
	return rc;
}

static const char *header(const struct tn_response *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void get(const char *url, const char *const *headers, struct tn_response *r)
{
	tn_router_call(&srv, "GET", url, headers, NULL, 0, r);
}

static void test_index_and_files_with_their_headers(void **state)
{
	struct tn_response r;
	char hex[TN_SHA256_HEX_LEN + 1], *etag;
	const char *csp;

	(void)state;
	get("/", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/html; charset=utf-8");
	assert_int_equal(r.body_len, strlen("<!doctype html><title>t</title>"));
	assert_memory_equal(r.body, "<!doctype html>", 15);
	assert_string_equal(header(&r, "Cache-Control"), "no-cache");
	assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");
	csp = header(&r, "Content-Security-Policy");
	assert_non_null(csp);
	assert_non_null(strstr(csp, "default-src 'none'"));
	assert_non_null(strstr(csp, "script-src 'self'"));
	assert_non_null(strstr(csp, "connect-src 'self'"));
	assert_null(strstr(csp, "unsafe-inline"));
	tn_sha256_hex("<!doctype html><title>t</title>", 31, hex);
	etag = xasprintf("\"%s\"", hex);
	assert_string_equal(header(&r, "ETag"), etag);
	free(etag);
	tn_response_clear(&r);

	get("/ui/app.js", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/javascript; charset=utf-8");
	assert_memory_equal(r.body, "'use strict';\n", r.body_len);
	tn_response_clear(&r);
	get("/ui/app.css", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/css; charset=utf-8");
	tn_response_clear(&r);
	/* HEAD is answered like GET (MHD leaves the body out). */
	tn_router_call(&srv, "HEAD", "/ui/app.css", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	tn_response_clear(&r);
}

static void test_etag_revalidation(void **state)
{
	struct tn_response r;
	char *inm, *stale = xstrdup("If-None-Match: \"0000\"");
	const char *hdrs[2] = {NULL, NULL};

	(void)state;
	get("/ui/app.js", NULL, &r);
	inm = xasprintf("If-None-Match: %s", header(&r, "ETag"));
	tn_response_clear(&r);
	hdrs[0] = inm;
	get("/ui/app.js", hdrs, &r);
	assert_int_equal(r.status, 304);
	assert_int_equal(r.body_len, 0);
	assert_non_null(header(&r, "ETag"));
	tn_response_clear(&r);
	/* W/ and lists are understood too */
	free(inm);
	get("/ui/app.js", NULL, &r);
	inm = xasprintf("If-None-Match: \"abc\", W/%s", header(&r, "ETag"));
	tn_response_clear(&r);
	hdrs[0] = inm;
	get("/ui/app.js", hdrs, &r);
	assert_int_equal(r.status, 304);
	tn_response_clear(&r);
	hdrs[0] = stale;
	get("/ui/app.js", hdrs, &r);
	assert_int_equal(r.status, 200);
	tn_response_clear(&r);
	/* a changed file has a new ETag */
	put("app.js", "'use strict'; // v2\n");
	hdrs[0] = inm;
	get("/ui/app.js", hdrs, &r);
	assert_int_equal(r.status, 200);
	tn_response_clear(&r);
	free(inm);
	free(stale);
}

static void test_nothing_else_is_reachable(void **state)
{
	static const char *const refused[] = {
		"/ui/..%2Fsecret.js",  /* out of the directory */
		"/ui/%2E%2E",          /* .. itself */
		"/ui/link.js",         /* a symlink, even to a servable name */
		"/ui/.hidden.js",      /* hidden */
		"/ui/notes.md",        /* not a console type */
		"/ui/sub.js",          /* a directory */
		"/ui/missing.js",
		"/ui/index.html%00.js",
		"/ui/a%2Fb.js",
	};
	struct tn_response r;

	(void)state;
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		get(refused[i], NULL, &r);
		if (r.status != 404 && r.status != 400)
			fail_msg("%s: %d, not 404", refused[i], r.status);
		assert_null(r.body);
		tn_response_clear(&r);
	}
	/* one segment only */
	get("/ui/x/app.js", NULL, &r);
	assert_int_equal(r.status, 404);
	tn_response_clear(&r);
	/* writes are not allowed */
	tn_router_call(&srv, "POST", "/ui/app.js", NULL, "x", 1, &r);
	assert_int_equal(r.status, 405);
	tn_response_clear(&r);
}

static void test_no_console(void **state)
{
	struct tn_response r;

	(void)state;
	srv.web_dir = NULL;
	get("/", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(r.json, "error"), "message")),
			       "--web-dir"));
	tn_response_clear(&r);
	srv.web_dir = webdir;
}

static void test_names_and_types(void **state)
{
	(void)state;
	assert_true(tn_console_name_ok("app.js"));
	assert_true(tn_console_name_ok("index.html"));
	assert_true(tn_console_name_ok("favicon.svg"));
	assert_true(tn_console_name_ok("app-2_x.css"));
	assert_false(tn_console_name_ok(""));
	assert_false(tn_console_name_ok(".js"));
	assert_false(tn_console_name_ok(".."));
	assert_false(tn_console_name_ok("a/b.js"));
	assert_false(tn_console_name_ok("a b.js"));
	assert_false(tn_console_name_ok("app.js~"));
	assert_false(tn_console_name_ok("js"));
	assert_false(tn_console_name_ok("app.exe"));
	assert_string_equal(tn_console_content_type("x.svg"), "image/svg+xml");
	assert_string_equal(tn_console_content_type("x.png"), "image/png");
	assert_null(tn_console_content_type("x.html.bak"));
}

static void test_default_dir(void **state)
{
	char *d, *build = xasprintf("%s/build", dir), *other = xasprintf("%s/bin", dir);

	(void)state;
	assert_int_equal(tn_mkdir_p(build, 0755, NULL), 0);
	assert_int_equal(tn_mkdir_p(other, 0755, NULL), 0);
	/* the build tree's binary: the source tree's web/ */
	d = tn_console_default_dir(build, build, "/src", "/usr/share/tender");
	assert_string_equal(d, "/src/web");
	free(d);
	/* the same directory spelt otherwise */
	{
		char *dotted = xasprintf("%s/bin/../build", dir);

		d = tn_console_default_dir(dotted, build, "/src", "/usr/share/tender");
		assert_string_equal(d, "/src/web");
		free(d);
		free(dotted);
	}
	/* an installed binary: the installed copy */
	d = tn_console_default_dir(other, build, "/src", "/usr/share/tender");
	assert_string_equal(d, "/usr/share/tender/web");
	free(d);
	/* a build tree that is gone, an unknown executable */
	d = tn_console_default_dir(other, "/nonexistent/build", "/src", "/usr/share/tender");
	assert_string_equal(d, "/usr/share/tender/web");
	free(d);
	d = tn_console_default_dir(NULL, build, "/src", "/usr/share/tender");
	assert_string_equal(d, "/usr/share/tender/web");
	free(d);
	assert_int_equal(tn_console_check_dir(webdir, NULL), 0);
	assert_int_not_equal(tn_console_check_dir(build, NULL), 0);
	free(build);
	free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_and_files_with_their_headers),
		cmocka_unit_test(test_etag_revalidation),
		cmocka_unit_test(test_nothing_else_is_reachable),
		cmocka_unit_test(test_no_console),
		cmocka_unit_test(test_names_and_types),
		cmocka_unit_test(test_default_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
