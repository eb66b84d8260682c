/* tcpconns.c - see tcpconns.h.  A table is read in small chunks and parsed
 * line by line, so that counting costs no memory however many connections
 * the host has.  A line reads
 *    "  12: 0100007F:1F40 0100007F:A2C4 01 00000000:00000000 ..."
 * (slot, local address:port, remote address:port, state, ...), addresses
 * and ports in hex; tcp6 addresses are 32 hex digits. */
#include "tcpconns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define TCP_ESTABLISHED 0x01
#define CHUNK 4096

struct parser {
	const char *name; /* for messages */
	const int *ports;
	size_t nports;
	char line[TN_TCPCONNS_LINE_MAX + 1];
	size_t len;
	size_t lineno;
	unsigned count;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Reads exactly n hex digits at *s into *out (n <= 8). */
static bool hex_field(const char **s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		int d = hexval((*s)[i]);

		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	*s += n;
	*out = v;
	return true;
}

static void skip_spaces(const char **s)
{
	while (**s == ' ' || **s == '\t')
		(*s)++;
}

/* "ADDR:PORT" with ADDR 8 or 32 hex digits; *port gets PORT. */
static bool endpoint(const char **s, unsigned *port)
{
	size_t n = 0;
	unsigned ignored;

	while (hexval((*s)[n]) >= 0)
		n++;
	if ((n != 8 && n != 32) || (*s)[n] != ':')
		return false;
	for (size_t i = 0; i < n; i += 8)
		if (!hex_field(s, 8, &ignored))
			return false;
	(*s)++; /* ':' */
	return hex_field(s, 4, port) && (**s == ' ' || **s == '\t');
}

static int parse_line(struct parser *p, const char *s, struct tn_error *err)
{
	unsigned local, remote, state;
	const char *start = s;

	if (p->lineno == 1) {
		if (!strstr(s, "local_address"))
			return tn_fail(err, TN_E_INVALID, "%s: line 1: not a TCP table header",
				       p->name);
		return 0;
	}
	skip_spaces(&s);
	if (!(*s >= '0' && *s <= '9'))
		goto bad;
	while (*s >= '0' && *s <= '9')
		s++;
	if (*s++ != ':')
		goto bad;
	skip_spaces(&s);
	if (!endpoint(&s, &local))
		goto bad;
	skip_spaces(&s);
	if (!endpoint(&s, &remote))
		goto bad;
	skip_spaces(&s);
	if (!hex_field(&s, 2, &state) || (*s != ' ' && *s != '\t' && *s != '\0'))
		goto bad;
	if (state != TCP_ESTABLISHED)
		return 0;
	for (size_t i = 0; i < p->nports; i++)
		if ((unsigned)p->ports[i] == local) {
			p->count++;
			break;
		}
	return 0;
bad:
	return tn_fail(err, TN_E_INVALID, "%s: line %zu: malformed at column %zu", p->name,
		       p->lineno, (size_t)(s - start) + 1);
}

static int end_line(struct parser *p, struct tn_error *err)
{
	p->line[p->len] = '\0';
	p->len = 0;
	if (++p->lineno > TN_TCPCONNS_LINES_MAX)
		return tn_fail(err, TN_E_TOO_LARGE, "%s: more than %d lines", p->name,
			       TN_TCPCONNS_LINES_MAX);
	return parse_line(p, p->line, err);
}

static int feed(struct parser *p, const char *data, size_t len, struct tn_error *err)
{
	int rc;

	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			if ((rc = end_line(p, err)))
				return rc;
			continue;
		}
		if (data[i] == '\0' || p->len == TN_TCPCONNS_LINE_MAX)
			return tn_fail(err, TN_E_INVALID, "%s: line %zu: %s", p->name,
				       p->lineno + 1,
				       data[i] == '\0' ? "a NUL byte" : "longer than the limit");
		p->line[p->len++] = data[i];
	}
	return 0;
}

/* After the last chunk: a last line without its newline; a table without
 * even a header is not a table. */
static int finish(struct parser *p, struct tn_error *err)
{
	int rc;

	if (p->len && (rc = end_line(p, err)))
		return rc;
	if (p->lineno == 0)
		return tn_fail(err, TN_E_INVALID, "%s: empty, not a TCP table", p->name);
	return 0;
}

int tn_tcpconns_count_text(const char *text, size_t len, const int *ports, size_t n,
			   unsigned *count, struct tn_error *err)
{
	struct parser p = {.name = "TCP table", .ports = ports, .nports = n};
	int rc;

	if ((rc = feed(&p, text, len, err)) || (rc = finish(&p, err)))
		return rc;
	*count = p.count;
	return 0;
}

int tn_tcpconns_count_file(const char *path, const int *ports, size_t n, unsigned *count,
			   struct tn_error *err)
{
	struct parser p = {.name = path, .ports = ports, .nports = n};
	char buf[CHUNK];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return tn_fail_errno(err, errno, "%s", path);
	for (;;) {
		ssize_t got = read(fd, buf, sizeof buf);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = tn_fail_errno(err, errno, "%s: read", path);
			goto out;
		}
		if (got == 0)
			break;
		if ((rc = feed(&p, buf, (size_t)got, err)))
			goto out;
	}
	if ((rc = finish(&p, err)))
		goto out;
	*count = p.count;
out:
	close(fd);
	return rc;
}

int tn_tcpconns_established(const int *ports, size_t n, unsigned *count, struct tn_error *err)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	unsigned total = 0;
	int rc;

	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		unsigned c = 0;

		if (access(tables[i], F_OK) != 0 && errno == ENOENT)
			continue; /* no IPv6 here: nothing to count */
		if ((rc = tn_tcpconns_count_file(tables[i], ports, n, &c, err)))
			return rc;
		total += c;
	}
	*count = total;
	return 0;
}
