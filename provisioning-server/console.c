/* console.c - serves the web console's static files (see console.h).
 * Only names of one plain segment are served, opened relative to the
 * console directory without following symlinks, so nothing outside it
 * can be reached; every answer carries a strict Content-Security-Policy
 * (the page loads nothing from elsewhere) and an ETag, the sha256 of the
 * file, so that a browser revalidates cheaply and never runs a stale
 * script after an upgrade. */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "server.h"
#include "xalloc.h"

#define NAME_MAX_LEN 128

static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".txt", "text/plain; charset=utf-8"},
};

/* Nothing from outside the server; no inline script or style; the page
 * talks to its own origin only and may not be framed. */
static const char csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

char *tn_console_default_dir(const char *exe_dir, const char *build_dir, const char *src_dir,
			     const char *pkgdata_dir)
{
	char a[PATH_MAX], b[PATH_MAX];

	char *dir;

	if (exe_dir && build_dir && src_dir && realpath(exe_dir, a) && realpath(build_dir, b) &&
	    strcmp(a, b) == 0)
		dir = xasprintf("%s/web", src_dir);
	else
		dir = xasprintf("%s/web", pkgdata_dir);
	/* "build/../web" reads better as "web" in the log */
	if (realpath(dir, a)) {
		free(dir);
		dir = xstrdup(a);
	}
	return dir;
}

const char *tn_console_content_type(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t e = strlen(types[i].ext);

		if (n > e && strcmp(name + n - e, types[i].ext) == 0)
			return types[i].type;
	}
	return NULL;
}

bool tn_console_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return tn_console_content_type(name) != NULL;
}

/* Reads name from dir into *out (caller frees): a regular file, never
 * through a symlink, at most TN_CONSOLE_FILE_MAX bytes. */
static int read_file_in(const char *dir, const char *name, char **out, size_t *len,
			struct tn_error *err)
{
	int dfd = -1, fd = -1, rc = 0;
	char *buf = NULL;
	struct stat st;
	size_t got = 0;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = tn_fail(err, TN_E_NOT_FOUND, "the console is not installed (%s: %s)", dir,
			     strerror(errno));
		goto out;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = tn_fail(err, TN_E_NOT_FOUND, "no such console file: %s", name);
		goto out;
	}
	if ((uint64_t)st.st_size > TN_CONSOLE_FILE_MAX) {
		rc = tn_fail(err, TN_E_TOO_LARGE, "console file %s is over %u bytes", name,
			     TN_CONSOLE_FILE_MAX);
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	/* Bounded by the size fstat gave: a file growing meanwhile is cut. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tn_fail_errno(err, errno, "read console file %s", name);
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* true when an If-None-Match value names etag (quoted, W/ allowed) or is *. */
static bool etag_matches(const char *inm, const char *etag)
{
	const char *p;

	if (!inm)
		return false;
	while (*inm == ' ')
		inm++;
	if (strcmp(inm, "*") == 0)
		return true;
	p = strstr(inm, etag);
	return p != NULL;
}

static int serve(struct tn_request *req, struct tn_response *resp, const char *name,
		 const char *cache_control, struct tn_error *err)
{
	const char *dir = req->srv->web_dir;
	char hex[TN_SHA256_HEX_LEN + 1], etag[TN_SHA256_HEX_LEN + 3];
	char *body = NULL;
	size_t len = 0;
	int rc;

	if (!dir)
		return tn_fail(err, TN_E_NOT_FOUND,
			       "this server serves no console (see --web-dir)");
	if (!tn_console_name_ok(name))
		return tn_fail(err, TN_E_NOT_FOUND, "no such console file: %s", name);
	if ((rc = read_file_in(dir, name, &body, &len, err)) != 0)
		return rc;
	tn_sha256_hex(body, len, hex);
	snprintf(etag, sizeof etag, "\"%s\"", hex);
	tn_response_add_header(resp, "ETag", etag);
	tn_response_add_header(resp, "Cache-Control", cache_control);
	tn_response_add_header(resp, "X-Content-Type-Options", "nosniff");
	tn_response_add_header(resp, "Content-Security-Policy", csp);
	tn_response_add_header(resp, "Referrer-Policy", "no-referrer");
	tn_response_add_header(resp, "X-Frame-Options", "DENY");
	if (etag_matches(tn_request_header(req, "If-None-Match"), etag)) {
		free(body);
		resp->status = 304;
		return 0;
	}
	resp->status = 200;
	resp->body = body;
	resp->body_len = len;
	resp->content_type = tn_console_content_type(name);
	return 0;
}

int tn_console_check_dir(const char *dir, struct tn_error *err)
{
	char *path = xasprintf("%s/index.html", dir);
	struct stat st;
	int rc = 0;

	if (lstat(path, &st) != 0)
		rc = tn_fail(err, TN_E_NOT_FOUND, "no console in %s (%s: %s)", dir, path,
			     strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = tn_fail(err, TN_E_INVALID, "no console in %s (%s is not a regular file)",
			     dir, path);
	free(path);
	return rc;
}

/* The page and the scripts change together at an upgrade: both are
 * revalidated at every load (a 304 when unchanged), never taken from a
 * cache unasked. */
TN_HANDLER(tn_console_index)
{
	return serve(req, resp, "index.html", "no-cache", err);
}

TN_HANDLER(tn_console_asset)
{
	return serve(req, resp, req->params[0], "no-cache", err);
}
