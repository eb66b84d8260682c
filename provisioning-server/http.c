/* http.c - libmicrohttpd glue.  Each connection's request runs as one
 * router exchange; responses become MHD responses (buffers, sendfile for
 * file ranges, a suspended-between-events callback for streams).  Limits
 * are set explicitly (DESIGN §5): MHD's defaults allow ~1,000 connections,
 * no timeout, and a 32 KiB pool per connection. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

/* A held long-poll keeps its whole pool (MHD zeroes it between requests, so
 * every page is touched): keep it small.  12 KiB against 16 KiB: 5.5 KB less
 * per held long-poll (10,000 of them under 256 MB) for ~2% more CPU per
 * upload (6 KiB reads instead of 8; docs/performance.md). */
#define CONN_MEMORY_LIMIT (12 * 1024)
/* Descriptors kept for everything that is not a client connection. */
#define FD_RESERVE 512
/* Once a request is refused mid-body, this much more is read and thrown
 * away so the client can read the error; past it the connection closes. */
#define DISCARD_MAX (64ull << 20)

struct stream_conn;
struct waiter;
struct head_wait;

/* Parked long-polls by key, so a change wakes exactly its own waiters. */
#define WAIT_BUCKETS 4096

struct tn_http {
	struct MHD_Daemon *daemon;
	struct tn_server *srv;
	uint16_t port;
	pthread_mutex_t lock;
	uint64_t wake_gen;             /* grows at every tn_http_wake_streams */
	struct stream_conn *suspended; /* streams waiting for the next wake */
	struct waiter *waiters[WAIT_BUCKETS];
	pthread_t ticker;
	pthread_cond_t stop_cond;
	bool stopping;
	/* Connections whose request head is still coming in (their own
	 * lock: every connection passes here). */
	pthread_mutex_t heads_lock;
	struct head_wait *heads;
	uint64_t head_timeout_ms;
};

/* Streams are woken at least this often, so that they send keep-alives and
 * a client that left is noticed (MHD cannot see it while suspended). */
#define STREAM_TICK_MS 15000
/* How often parked long-polls are checked against their deadlines. */
#define WAIT_TICK_MS 250

/* Per connection and request: the exchange and what is needed to answer. */
struct conn {
	struct tn_http *http;
	struct MHD_Connection *mhd;
	struct tn_exchange *ex;
	char client[INET6_ADDRSTRLEN]; /* the caller's address, for the rate limit */
	uint64_t bytes_in;
	uint64_t discarded;
	bool queued;
	bool parked; /* a deferred response waits: resume it when MHD calls again */
};

struct waiter {
	struct conn *conn;
	char *key;
	uint64_t until_ms;
	struct waiter *next;
};

/* A connection waiting for its request head (request line and headers).
 * MHD's timeout is on idleness only: a client that trickles a byte more
 * often than that (slowloris) would keep its connection as long as its
 * pool lasts.  The whole head must come within the connection timeout,
 * counted from the connection's start or the end of its previous
 * request; past it the ticker shuts the socket down and MHD closes it.
 * MHD calls the connection's CLOSED notification before it closes the
 * socket, and that unlinks it under heads_lock: a listed descriptor is
 * always still the connection's own. */
struct head_wait {
	int fd;
	uint64_t since_ms;
	bool listed;
	struct head_wait *prev, *next;
};

struct stream_conn {
	struct tn_http *http;
	struct MHD_Connection *mhd;
	const struct tn_stream_ops *ops;
	void *ctx;
	bool suspended;
	struct stream_conn *next;
};

static const char *mhd_header(void *ctx, const char *name)
{
	return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

/* MHD would unescape the path and the query; the router does it itself,
 * the same way for HTTP and in-process calls, so MHD passes them raw. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	char **q = cls;
	char *next = xasprintf("%s%s%s%s%s", *q, **q ? "&" : "", key, value ? "=" : "",
			       value ? value : "");

	(void)kind;
	free(*q);
	*q = next;
	return MHD_YES;
}

/* The client's address as text ("" when MHD cannot say); an IPv4 client
 * of an IPv6 socket is written as IPv4, so that it has one spelling. */
static void client_address(struct MHD_Connection *mhd, char *out, size_t size)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;

	out[0] = '\0';
	if (sa && sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6))
			inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)size);
		else
			inet_ntop(AF_INET6, a6, out, (socklen_t)size);
	}
}

/* ------------------------------------------------------------ request heads */

/* Both with heads_lock held. */
static void head_link(struct tn_http *http, struct head_wait *hw)
{
	if (hw->listed)
		return;
	hw->since_ms = tn_clock_ms();
	hw->prev = NULL;
	hw->next = http->heads;
	if (http->heads)
		http->heads->prev = hw;
	http->heads = hw;
	hw->listed = true;
}

static void head_unlink(struct tn_http *http, struct head_wait *hw)
{
	if (!hw->listed)
		return;
	if (hw->prev)
		hw->prev->next = hw->next;
	else
		http->heads = hw->next;
	if (hw->next)
		hw->next->prev = hw->prev;
	hw->listed = false;
}

static void on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct tn_http *http = cls;
	struct head_wait *hw = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);

		hw = xcalloc(1, sizeof *hw);
		hw->fd = info ? info->connect_fd : -1;
		*socket_context = hw;
		if (hw->fd < 0)
			return; /* not watched: MHD's idle timeout still applies */
		pthread_mutex_lock(&http->heads_lock);
		head_link(http, hw);
		pthread_mutex_unlock(&http->heads_lock);
		return;
	}
	if (!hw)
		return;
	pthread_mutex_lock(&http->heads_lock);
	head_unlink(http, hw);
	pthread_mutex_unlock(&http->heads_lock);
	free(hw);
	*socket_context = NULL;
}

/* The head of the connection's request is in (listed: false), or its
 * request is over and the next head is awaited (listed: true). */
static void head_state(struct tn_http *http, struct MHD_Connection *mhd, bool waiting)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct head_wait *hw = info ? info->socket_context : NULL;

	if (!hw || hw->fd < 0)
		return;
	pthread_mutex_lock(&http->heads_lock);
	if (waiting)
		head_link(http, hw);
	else
		head_unlink(http, hw);
	pthread_mutex_unlock(&http->heads_lock);
}

/* Shuts down the connections whose head is overdue (the ticker's). */
static void cut_slow_heads(struct tn_http *http)
{
	uint64_t now = tn_clock_ms();
	unsigned cut = 0;

	pthread_mutex_lock(&http->heads_lock);
	for (struct head_wait *hw = http->heads, *next; hw; hw = next) {
		next = hw->next;
		if (now - hw->since_ms < http->head_timeout_ms)
			continue;
		shutdown(hw->fd, SHUT_RDWR);
		head_unlink(http, hw);
		cut++;
	}
	pthread_mutex_unlock(&http->heads_lock);
	if (cut)
		tn_log(TN_LOG_DEBUG, "http", "slow_requests_cut", "{s:i}", "connections", (int)cut);
}

/* ------------------------------------------------------------ streams */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_conn *sc = cls;
	struct tn_http *http = sc->http;
	uint64_t gen;
	ssize_t n;

	pthread_mutex_lock(&http->lock);
	gen = http->wake_gen;
	if (http->stopping) {
		pthread_mutex_unlock(&http->lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	pthread_mutex_unlock(&http->lock);
	n = sc->ops->read(sc->ctx, pos, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return n;
	/* Nothing to send: sleep until the next wake, unless one happened
	 * while we were reading (then read again at once). */
	pthread_mutex_lock(&http->lock);
	if (http->wake_gen == gen && !http->stopping) {
		sc->suspended = true;
		sc->next = http->suspended;
		http->suspended = sc;
		MHD_suspend_connection(sc->mhd);
	}
	pthread_mutex_unlock(&http->lock);
	return 0;
}

static void stream_free(void *cls)
{
	struct stream_conn *sc = cls;
	struct tn_http *http = sc->http;

	pthread_mutex_lock(&http->lock);
	for (struct stream_conn **p = &http->suspended; *p; p = &(*p)->next)
		if (*p == sc) {
			*p = sc->next;
			break;
		}
	pthread_mutex_unlock(&http->lock);
	if (sc->ops->free)
		sc->ops->free(sc->ctx);
	free(sc);
}

void tn_http_wake_streams(struct tn_http *http)
{
	pthread_mutex_lock(&http->lock);
	http->wake_gen++;
	while (http->suspended) {
		struct stream_conn *sc = http->suspended;

		http->suspended = sc->next;
		sc->next = NULL;
		sc->suspended = false;
		MHD_resume_connection(sc->mhd);
	}
	pthread_mutex_unlock(&http->lock);
}

/* ------------------------------------------------------------ long-polls */

static size_t bucket(const char *key)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % WAIT_BUCKETS);
}

/* Unlinks w and resumes its connection; the caller holds the lock. */
static void wake_locked(struct tn_http *http, struct waiter **link)
{
	struct waiter *w = *link;

	*link = w->next;
	MHD_resume_connection(w->conn->mhd);
	free(w->key);
	free(w);
}

void tn_http_wake_key(struct tn_http *http, const char *key)
{
	struct waiter **link;

	pthread_mutex_lock(&http->lock);
	link = &http->waiters[bucket(key)];
	while (*link) {
		if (strcmp((*link)->key, key) == 0)
			wake_locked(http, link);
		else
			link = &(*link)->next;
	}
	pthread_mutex_unlock(&http->lock);
}

/* Wakes every waiter whose deadline passed (all of them when stopping). */
static void wake_due(struct tn_http *http, bool all)
{
	uint64_t now = tn_clock_ms();

	pthread_mutex_lock(&http->lock);
	for (size_t b = 0; b < WAIT_BUCKETS; b++) {
		struct waiter **link = &http->waiters[b];

		while (*link) {
			if (all || (*link)->until_ms <= now)
				wake_locked(http, link);
			else
				link = &(*link)->next;
		}
	}
	pthread_mutex_unlock(&http->lock);
}

/* Parks the connection of a deferred response until its key is woken or
 * its deadline passes. */
static void park(struct conn *c)
{
	struct tn_http *http = c->http;
	struct tn_response *r = tn_exchange_response(c->ex);
	struct waiter *w = xcalloc(1, sizeof *w);
	struct waiter **link;

	w->conn = c;
	w->key = xstrdup(r->defer_key ? r->defer_key : "");
	w->until_ms = r->defer_until_ms;
	c->parked = true;
	pthread_mutex_lock(&http->lock);
	if (http->stopping) {
		/* tn_http_stop has woken the waiters already, and MHD must not
		 * be stopped with a connection suspended: not parked, the wait
		 * ends at MHD's next call, now. */
		pthread_mutex_unlock(&http->lock);
		free(w->key);
		free(w);
		return;
	}
	link = &http->waiters[bucket(w->key)];
	w->next = *link;
	*link = w;
	MHD_suspend_connection(c->mhd);
	pthread_mutex_unlock(&http->lock);
	/* What it waits for may have happened before it was parked. */
	if (r->defer->ready && r->defer->ready(r->defer_ctx)) {
		pthread_mutex_lock(&http->lock);
		for (link = &http->waiters[bucket(w->key)]; *link; link = &(*link)->next)
			if (*link == w) {
				wake_locked(http, link);
				break;
			}
		pthread_mutex_unlock(&http->lock);
	}
}

static void *tick(void *arg)
{
	struct tn_http *http = arg;
	uint64_t next_stream_wake = tn_clock_ms() + STREAM_TICK_MS;
	struct timespec until;

	pthread_mutex_lock(&http->lock);
	while (!http->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WAIT_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&http->stop_cond, &http->lock, &until) == 0 ||
		    http->stopping)
			continue;
		pthread_mutex_unlock(&http->lock);
		wake_due(http, false);
		cut_slow_heads(http);
		if (tn_clock_ms() >= next_stream_wake) {
			tn_http_wake_streams(http);
			next_stream_wake = tn_clock_ms() + STREAM_TICK_MS;
		}
		pthread_mutex_lock(&http->lock);
	}
	pthread_mutex_unlock(&http->lock);
	return NULL;
}

/* ------------------------------------------------------------ responses */

/* Turns the router's response into an MHD response and queues it. */
static enum MHD_Result send_response(struct conn *c)
{
	struct tn_response *r = tn_exchange_response(c->ex);
	struct MHD_Response *m = NULL;
	const char *type = r->content_type;
	uint64_t out_bytes = 0;
	enum MHD_Result ret;

	if (r->defer) {
		park(c);
		return MHD_YES;
	}
	if (r->stream) {
		struct stream_conn *sc = xcalloc(1, sizeof *sc);

		sc->http = c->http;
		sc->mhd = c->mhd;
		sc->ops = r->stream;
		sc->ctx = r->stream_ctx;
		r->stream = NULL;
		r->stream_ctx = NULL;
		m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc,
						      stream_free);
	} else if (r->fd >= 0) {
		m = MHD_create_response_from_fd_at_offset64(r->fd_size, r->fd, r->fd_offset);
		if (m)
			r->fd = -1; /* MHD closes it */
		out_bytes = r->fd_size;
	} else if (r->json) {
		char *text = json_dumps(r->json, JSON_COMPACT | JSON_PRESERVE_ORDER);
		size_t len;

		if (!text)
			text = xstrdup("{}");
		len = strlen(text);
		text = xrealloc(text, len + 2);
		text[len++] = '\n';
		text[len] = '\0';
		m = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
		type = "application/json";
		out_bytes = len;
	} else {
		m = MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (char *)"",
						    r->body ? MHD_RESPMEM_MUST_FREE
							    : MHD_RESPMEM_PERSISTENT);
		if (m)
			r->body = NULL;
		out_bytes = r->body_len;
	}
	if (!m)
		return MHD_NO;
	if (type)
		MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	for (size_t i = 0; i < r->nheaders; i++)
		MHD_add_response_header(m, r->headers[i].name, r->headers[i].value);
	ret = MHD_queue_response(c->mhd, (unsigned)r->status, m);
	MHD_destroy_response(m);
	c->queued = true;
	tn_metrics_request(c->http->srv->metrics, tn_exchange_route(c->ex), r->status, c->bytes_in,
			   out_bytes);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct tn_http *http = cls;
	struct conn *c = *con_cls;

	(void)version;
	if (!c) {
		char *query = xstrdup("");
		char *target;

		MHD_get_connection_values(mhd, MHD_GET_ARGUMENT_KIND, add_arg, &query);
		target = xasprintf("%s%s%s", url, *query ? "?" : "", query);
		free(query);
		head_state(http, mhd, false);
		c = xcalloc(1, sizeof *c);
		c->http = http;
		c->mhd = mhd;
		client_address(mhd, c->client, sizeof c->client);
		c->ex = tn_exchange_begin(http->srv, method, target, mhd_header, mhd,
					  c->client[0] ? c->client : NULL);
		free(target);
		*con_cls = c;
		/* Refused before the body (404, 401, 413 by Content-Length...):
		 * answer now; MHD closes the connection instead of reading it. */
		if (tn_exchange_done(c->ex))
			return send_response(c);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		c->bytes_in += n;
		if (tn_exchange_done(c->ex)) {
			c->discarded += n;
			return c->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		tn_exchange_body(c->ex, upload_data, n);
		return MHD_YES;
	}
	if (c->queued)
		return MHD_YES;
	if (c->parked) {
		c->parked = false;
		tn_exchange_resume(c->ex);
		return send_response(c);
	}
	tn_exchange_finish(c->ex);
	return send_response(c);
}

static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;

	(void)toe;
	/* A kept-alive connection now waits for its next request's head. */
	head_state(cls, mhd, true);
	if (!c)
		return;
	tn_exchange_free(c->ex);
	free(c);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) TN_PRINTF(2, 0);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	tn_log(TN_LOG_WARN, "http", "mhd", "{s:s}", "message", msg);
}

/* ------------------------------------------------------------ lifecycle */

static int parse_listen(const char *listen, struct sockaddr_storage *ss, struct tn_error *err)
{
	const char *colon = strrchr(listen, ':');
	char host[64];
	char *end;
	unsigned long port;
	size_t hlen;

	if (!colon)
		return tn_fail(err, TN_E_INVALID, "--listen \"%s\": expected ADDR:PORT", listen);
	hlen = (size_t)(colon - listen);
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port > 65535 || hlen >= sizeof host)
		return tn_fail(err, TN_E_INVALID, "--listen \"%s\": bad port or address", listen);
	memcpy(host, listen, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof *ss);
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1)
			return 0;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
			return 0;
	}
	return tn_fail(err, TN_E_INVALID, "--listen \"%s\": \"%s\" is not an IP address", listen,
		       host);
}

/* Raises the soft open-file limit to the hard one and sizes the
 * connection limit under it, so accept() never fails for want of a
 * descriptor that the store or a blob needs. */
static unsigned connection_limit(unsigned wanted)
{
	struct rlimit rl;
	unsigned limit;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 20000;
	limit = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
					     : (unsigned)(rl.rlim_cur / 2);
	if (wanted && wanted < limit)
		limit = wanted;
	tn_log(TN_LOG_INFO, "http", "limits", "{s:I, s:i, s:i}", "open_files",
	       (json_int_t)rl.rlim_cur, "connections", (int)limit, "conn_memory",
	       CONN_MEMORY_LIMIT);
	return limit;
}

int tn_http_start(struct tn_server *srv, const struct tn_http_config *cfg, struct tn_http **out,
		  struct tn_error *err)
{
	struct tn_http *http = NULL;
	struct sockaddr_storage ss;
	char *cert = NULL, *key = NULL;
	size_t len;
	unsigned threads = cfg->threads;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	const union MHD_DaemonInfo *info;
	int rc;

	if ((rc = parse_listen(cfg->listen, &ss, err)) != 0)
		return rc;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (!cfg->tls_cert != !cfg->tls_key)
		return tn_fail(err, TN_E_INVALID, "--tls-cert and --tls-key go together");
	if (cfg->tls_cert) {
		if ((rc = tn_read_file(cfg->tls_cert, 1 << 20, &cert, &len, err)) != 0 ||
		    (rc = tn_read_file(cfg->tls_key, 1 << 20, &key, &len, err)) != 0)
			goto out;
		flags |= MHD_USE_TLS;
	}
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)(2 * n) : 4;
	}
	http = xcalloc(1, sizeof *http);
	http->srv = srv;
	http->head_timeout_ms = 1000ull * (cfg->conn_timeout_s ? cfg->conn_timeout_s : 60u);
	pthread_mutex_init(&http->lock, NULL);
	pthread_mutex_init(&http->heads_lock, NULL);
	pthread_cond_init(&http->stop_cond, NULL);
	http->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, http,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, connection_limit(cfg->conn_limit),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout_s ? cfg->conn_timeout_s : 60u,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, http,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, http,
		cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
		MHD_OPTION_HTTPS_MEM_KEY, key,
		MHD_OPTION_END);
	if (!http->daemon) {
		rc = tn_fail(err, TN_E_IO, "cannot listen on %s (in use, or not an address of this host?)",
			     cfg->listen);
		goto out;
	}
	info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
	http->port = info ? info->port : 0;
	pthread_create(&http->ticker, NULL, tick, http);
	*out = http;
	http = NULL;
out:
	if (http) {
		pthread_cond_destroy(&http->stop_cond);
		pthread_mutex_destroy(&http->heads_lock);
		pthread_mutex_destroy(&http->lock);
		free(http);
	}
	free(cert);
	free(key);
	return rc;
}

uint16_t tn_http_port(const struct tn_http *http)
{
	return http->port;
}

void tn_http_stop(struct tn_http *http)
{
	if (!http)
		return;
	pthread_mutex_lock(&http->lock);
	http->stopping = true;
	pthread_cond_signal(&http->stop_cond);
	pthread_mutex_unlock(&http->lock);
	pthread_join(http->ticker, NULL);
	/* MHD must not be stopped with connections suspended. */
	MHD_quiesce_daemon(http->daemon);
	tn_http_wake_streams(http);
	wake_due(http, true);
	MHD_stop_daemon(http->daemon);
	pthread_cond_destroy(&http->stop_cond);
	pthread_mutex_destroy(&http->heads_lock);
	pthread_mutex_destroy(&http->lock);
	free(http);
}
