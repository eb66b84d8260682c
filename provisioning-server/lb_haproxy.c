/* lb_haproxy.c - the `haproxy` load-balancer driver: HAProxy's runtime API
 * ("stats socket ... level admin"), over TCP (lb.admin "ADDR:PORT") or a
 * unix socket ("unix:/PATH"), one command per connection (the socket's
 * non-interactive mode: HAProxy answers and closes).
 *
 * Members are dynamic servers (HAProxy 2.6 has them without experimental
 * mode).  A dynamic server starts in maintenance and inherits nothing from
 * `default-server`, so every check setting goes on the `add server` line;
 * it then needs `enable health`, `enable agent` and `set server ... state
 * ready`, and stays DOWN (no traffic) until its checks pass. */
#include "lb_haproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "xalloc.h"

#define TIMEOUT_MS 3000		 /* per command, connect to last byte */
#define REPLY_MAX (4u << 20)	 /* show stat of a large backend fits */
#define MEMBERS_MAX 10000	 /* per backend */

/* Names and addresses go into a command line, where a space, ';' or a
 * newline would start another word or command: only these characters. */
static bool safe_word(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static int check_names(const char *backend, const char *name, struct tn_error *err)
{
	if (!backend || !safe_word(backend, 64))
		return tn_fail(err, TN_E_INVALID, "lb.backend: not a backend name");
	if (name && !safe_word(name, 64))
		return tn_fail(err, TN_E_INVALID, "%s: not a server name", name);
	return 0;
}

/* A connected socket to the runtime API, or -1 with err set. */
static int dial(const char *admin, uint64_t deadline, struct tn_error *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fd = -1, rc;

	if (strncmp(admin, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		if (strlen(admin + 5) >= sizeof un->sun_path) {
			tn_fail(err, TN_E_INVALID, "lb.admin: socket path too long");
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, admin + 5, strlen(admin + 5) + 1);
		len = sizeof *un;
	} else {
		const char *colon = strrchr(admin, ':');
		char host[256];
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV},
				*ai = NULL;
		size_t hl;

		if (!colon || (hl = (size_t)(colon - admin)) == 0 || hl >= sizeof host) {
			tn_fail(err, TN_E_INVALID, "lb.admin: \"%s\" is not ADDR:PORT", admin);
			return -1;
		}
		/* "[::1]:9999" or "127.0.0.1:9999" */
		if (admin[0] == '[' && hl >= 2 && admin[hl - 1] == ']')
			memcpy(host, admin + 1, hl - 2), host[hl - 2] = '\0';
		else
			memcpy(host, admin, hl), host[hl] = '\0';
		if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
			tn_fail(err, TN_E_UNAVAILABLE, "HAProxy at %s: %s", admin, gai_strerror(rc));
			return -1;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		len = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tn_fail(err, TN_E_IO, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int soerr = errno;
		socklen_t sl = sizeof soerr;
		uint64_t now = tn_clock_ms();

		if (errno == EINPROGRESS) {
			rc = poll(&p, 1, now < deadline ? (int)(deadline - now) : 0);
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				return fd;
			if (rc == 0)
				soerr = ETIMEDOUT;
		}
		close(fd);
		tn_fail(err, TN_E_UNAVAILABLE, "HAProxy's runtime API at %s: %s", admin,
			strerror(soerr));
		return -1;
	}
	return fd;
}

/* Sends one command and reads the whole answer (*reply caller-freed). */
static int command(json_t *lb, const char *cmd, char **reply, struct tn_error *err)
{
	const char *admin = json_string_value(json_object_get(lb, "admin"));
	uint64_t deadline = tn_clock_ms() + TIMEOUT_MS;
	char *line = xasprintf("%s\n", cmd), *buf = NULL;
	size_t len = 0, cap = 0, off = 0, total = strlen(line);
	int fd = -1, rc = 0;

	*reply = NULL;
	if (!admin) {
		rc = tn_fail(err, TN_E_INVALID, "lb.admin: missing");
		goto out;
	}
	if ((fd = dial(admin, deadline, err)) < 0) {
		rc = -(int)err->code;
		goto out;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = off < total ? POLLOUT : POLLIN};
		uint64_t now = tn_clock_ms();
		ssize_t n;

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0) {
			rc = tn_fail(err, TN_E_UNAVAILABLE, "HAProxy at %s: no answer to \"%s\" in %d ms",
				     admin, cmd, TIMEOUT_MS);
			goto out;
		}
		if (off < total) {
			n = send(fd, line + off, total - off, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (n > 0)
				off += (size_t)n;
			continue;
		}
		if (len + 4096 + 1 > cap) {
			if (cap >= REPLY_MAX) {
				rc = tn_fail(err, TN_E_TOO_LARGE, "HAProxy at %s: answer over %u bytes",
					     admin, REPLY_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n == 0) {
			buf[len] = '\0';
			*reply = buf;
			buf = NULL;
			goto out;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (n > 0)
			len += (size_t)n;
	}
	rc = tn_fail(err, TN_E_UNAVAILABLE, "HAProxy at %s: %s", admin, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(line);
	free(buf);
	return rc;
}

/* The answer's first line, trimmed, for a message. */
static const char *first_line(char *reply)
{
	char *nl;

	while (*reply == '\n' || *reply == ' ')
		reply++;
	if ((nl = strchr(reply, '\n')))
		*nl = '\0';
	return reply;
}

/* A command whose success is an empty answer or the expected one. */
static int expect(json_t *lb, const char *cmd, const char *ok, const char *also_ok,
		  struct tn_error *err)
{
	char *reply = NULL;
	const char *line;
	int rc;

	if ((rc = command(lb, cmd, &reply, err)))
		return rc;
	line = first_line(reply);
	if (!(line[0] == '\0' || (ok && strcmp(line, ok) == 0) ||
	      (also_ok && strcmp(line, also_ok) == 0)))
		rc = tn_fail(err, strstr(line, "No such backend") ? TN_E_NOT_FOUND : TN_E_CONFLICT,
			     "HAProxy refused \"%s\": %.200s", cmd, line);
	free(reply);
	return rc;
}

/* ------------------------------------------------------------ show stat */

/* Splits a CSV line in place (HAProxy's fields hold no commas). */
static size_t split(char *line, char **fields, size_t max)
{
	size_t n = 0;

	while (n < max) {
		fields[n++] = line;
		line = strchr(line, ',');
		if (!line)
			break;
		*line++ = '\0';
	}
	return n;
}

static int column(char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

#define FIELDS_MAX 256

int tn_haproxy_parse_stat(char *reply, const char *backend, struct tn_lb_member **out,
			  size_t *count, struct tn_error *err)
{
	char *names[FIELDS_MAX], *f[FIELDS_MAX], *save = NULL, *line;
	int px = -1, sv = -1, scur = -1, status = -1, addr = -1;
	size_t nnames = 0, n = 0;
	struct tn_lb_member *m = NULL;

	*out = NULL;
	*count = 0;
	for (line = strtok_r(reply, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t nf;

		if (strncmp(line, "# ", 2) == 0) {
			nnames = split(line + 2, names, FIELDS_MAX);
			px = column(names, nnames, "pxname");
			sv = column(names, nnames, "svname");
			scur = column(names, nnames, "scur");
			status = column(names, nnames, "status");
			addr = column(names, nnames, "addr");
			continue;
		}
		if (px < 0 || sv < 0 || scur < 0 || status < 0 || addr < 0) {
			tn_lb_members_free(m, n);
			return tn_fail(err, TN_E_INVALID,
				       "HAProxy's show stat: no header with pxname, svname, scur, "
				       "status and addr (answer: %.120s)",
				       line);
		}
		nf = split(line, f, FIELDS_MAX);
		if (nf < nnames || strcmp(f[px], backend) != 0 || strncmp(f[sv], "t-", 2) != 0)
			continue;
		if (n == MEMBERS_MAX) {
			tn_lb_members_free(m, n);
			return tn_fail(err, TN_E_TOO_LARGE, "backend %s: more than %d servers",
				       backend, MEMBERS_MAX);
		}
		m = xrealloc(m, (n + 1) * sizeof *m);
		m[n] = (struct tn_lb_member){
			.name = xstrdup(f[sv]),
			.addr = xstrdup(f[addr]),
			.status = xstrdup(f[status]),
			.sessions = strtol(f[scur], NULL, 10),
			.draining = strncmp(f[status], "DRAIN", 5) == 0 ||
				    strncmp(f[status], "MAINT", 5) == 0,
		};
		n++;
	}
	*out = m;
	*count = n;
	return 0;
}

/* ------------------------------------------------------------ the driver */

static const char *backend_of(json_t *lb)
{
	return json_string_value(json_object_get(lb, "backend"));
}

int tn_haproxy_parse_backends(char *reply, const char *backend, struct tn_error *err)
{
	char *save = NULL, *line;
	bool found = false;

	if (strncmp(reply, "# name", 6) != 0)
		return tn_fail(err, TN_E_CONFLICT, "HAProxy refused \"show backend\": %.200s",
			       first_line(reply));
	for (line = strtok_r(reply, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save))
		found = strcmp(line, backend) == 0;
	return found ? 0 : tn_fail(err, TN_E_NOT_FOUND, "HAProxy has no backend %s", backend);
}

/* Whether HAProxy has a backend of that name. */
static int has_backend(json_t *lb, const char *backend, struct tn_error *err)
{
	char *reply = NULL;
	int rc;

	if ((rc = command(lb, "show backend", &reply, err)))
		return rc;
	rc = tn_haproxy_parse_backends(reply, backend, err);
	free(reply);
	return rc;
}

/* Every proxy's servers, filtered on pxname: `show stat NAME` answers for
 * the first proxy of that name, which may be a frontend named like the
 * backend. */
static int hx_list(json_t *lb, struct tn_lb_member **out, size_t *n, struct tn_error *err)
{
	const char *backend = backend_of(lb);
	char *reply = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = check_names(backend, NULL, err)) || (rc = has_backend(lb, backend, err)) ||
	    (rc = command(lb, "show stat -1 4 -1", &reply, err)))
		return rc;
	if (strncmp(reply, "# ", 2) != 0)
		rc = tn_fail(err, TN_E_CONFLICT, "HAProxy refused \"show stat\": %.200s",
			     first_line(reply));
	else
		rc = tn_haproxy_parse_stat(reply, backend, out, n, err);
	free(reply);
	return rc;
}

static int hx_add(json_t *lb, const struct tn_lb_want *w, struct tn_error *err)
{
	const char *b = backend_of(lb);
	struct in6_addr a6;
	char *cmd, host[INET6_ADDRSTRLEN + 2];
	int rc;

	if ((rc = check_names(b, w->name, err)))
		return rc;
	if (!safe_word(w->address, 253) || w->port < 1 || w->port > 65535 || w->agent_port < 1 ||
	    w->agent_port > 65535)
		return tn_fail(err, TN_E_INVALID, "%s: address %s, port %d, agent port %d: not usable",
			       w->name, w->address, w->port, w->agent_port);
	if (inet_pton(AF_INET6, w->address, &a6) == 1)
		snprintf(host, sizeof host, "[%s]", w->address);
	else
		snprintf(host, sizeof host, "%s", w->address);
	/* inter 1s: a node back from a switch is in service within ~2 s of
	 * its port answering again (rise 2). */
	cmd = xasprintf("add server %s/%s %s:%d check inter 1s agent-check agent-addr %s "
			"agent-port %d agent-inter 500ms",
			b, w->name, host, w->port, w->address, w->agent_port);
	rc = expect(lb, cmd, "New server registered.", NULL, err);
	free(cmd);
	if (rc)
		return rc;
	const char *const steps[] = {"enable health", "enable agent", "set server"};
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		cmd = i < 2 ? xasprintf("%s %s/%s", steps[i], b, w->name)
			    : xasprintf("set server %s/%s state ready", b, w->name);
		rc = expect(lb, cmd, NULL, NULL, err);
		free(cmd);
	}
	return rc;
}

static int hx_drain(json_t *lb, const char *name, struct tn_error *err)
{
	const char *b = backend_of(lb);
	char *cmd;
	int rc;

	if ((rc = check_names(b, name, err)))
		return rc;
	cmd = xasprintf("set server %s/%s state drain", b, name);
	rc = expect(lb, cmd, NULL, NULL, err);
	free(cmd);
	return rc;
}

static int hx_remove(json_t *lb, const char *name, struct tn_error *err)
{
	const char *b = backend_of(lb);
	char *cmd;
	int rc;

	if ((rc = check_names(b, name, err)))
		return rc;
	cmd = xasprintf("set server %s/%s state maint", b, name);
	rc = expect(lb, cmd, NULL, "No such server.", err);
	free(cmd);
	if (rc)
		return rc;
	cmd = xasprintf("del server %s/%s", b, name);
	rc = expect(lb, cmd, "Server deleted.", "No such server.", err);
	free(cmd);
	return rc;
}

const struct tn_lb_ops tn_lb_haproxy = {
	.name = "haproxy", .list = hx_list, .add = hx_add, .drain = hx_drain, .remove = hx_remove,
};
