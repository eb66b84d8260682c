/* main.c - tender-server: the provisioning server.  Parses options, opens
 * (or, on the first start, creates) the data directory, the store, the
 * blob store and the signing key, serves HTTP until SIGINT or SIGTERM, and
 * `tender-server backup FILE` copies the live database. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auth.h"
#include "blobstore.h"
#include "api.h"
#include "console.h"
#include "documents.h"
#include "fsutil.h"
#include "http.h"
#include "janitor.h"
#include "lbsync.h"
#include "lifecycle.h"
#include "offload.h"
#include "orchestrator.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "provider.h"
#include "ratelimit.h"
#include "server.h"
#include "sign.h"
#include "signkey.h"
#include "store.h"
#include "webhook.h"
#include "xalloc.h"

#include "config.h"

#define DEFAULT_MAX_UPLOAD (4ull << 30)
/* Seconds between blob collections after the one at start. */
#define GC_INTERVAL_S 3600
#define PROVIDERS_MAX 8
/* A CA bundle for the agents: a few certificates. */
#define CACERT_MAX (64 * 1024)
/* Bad credentials from one address within the window before it is refused
 * (429) for a window: far above what a person mistyping or an agent whose
 * token was revoked (it backs off to one poll in 30 s) sends, far below a
 * guessing script. */
#define DEFAULT_AUTH_FAIL_LIMIT 30
#define DEFAULT_AUTH_FAIL_WINDOW_S 60
#define DEFAULT_CONN_TIMEOUT_S 60

static void usage(FILE *out)
{
	fputs("Usage: tender-server [OPTION]...\n"
	      "       tender-server backup FILE [--data DIR]\n"
	      "       tender-server rotate-key [--data DIR]\n"
	      "Tender's provisioning server: stores bundles and distributions, keeps the\n"
	      "record of targets and clusters, and drives rolling updates (HTTP API).\n"
	      "\n"
	      "  -l, --listen ADDR:PORT     address to serve on (default 127.0.0.1:8080;\n"
	      "                             port 0 picks a free one)\n"
	      "  -d, --data DIR             data directory (default ./var); made on the first start\n"
	      "      --tls-cert FILE        serve HTTPS with this PEM certificate...\n"
	      "      --tls-key FILE         ...and this PEM private key\n"
	      "      --agent-cacert FILE    the PEM CA file the agents this server starts (and\n"
	      "                             install.sh) verify its HTTPS certificate with\n"
	      "      --admin-token-file FILE  on the first start, write the admin token there\n"
	      "                             (mode 0600) instead of printing it\n"
	      "      --max-upload SIZE      largest archive accepted (default 4G; K, M, G suffixes)\n"
	      "      --threads N            HTTP worker threads (default 2 x cores)\n"
	      "      --conn-timeout S       close a connection idle for S seconds, or whose\n"
	      "                             request headers are not all in S seconds after it\n"
	      "                             connected (default 60); long-polls and event\n"
	      "                             streams are not cut by it\n"
	      "      --auth-fail-limit N    after N bad tokens (API, target or enrollment)\n"
	      "                             from one address within the window, refuse that\n"
	      "                             address with 429 for a window (default 30; 0: off)\n"
	      "      --auth-fail-window S   the window of --auth-fail-limit (default 60)\n"
	      "      --ready-file FILE      write the server's URL there once it is listening\n"
	      "      --public-url URL       the server as nodes reach it (default: the --listen\n"
	      "                             URL, 0.0.0.0 read as 127.0.0.1)\n"
	      "      --provider NAME[:KEY=VALUE,...]  configure a provider (repeatable): local\n"
	      "                             (always there; ports=LOW-HIGH, agent=PATH, grace_s=N)\n"
	      "                             or netns (subnet=A.B.C.D/LEN, prefix=, port_base=,\n"
	      "                             agent=, server=URL, grace_s=)\n"
	      "      --enroll-timeout S     a booted node that has not enrolled after S seconds\n"
	      "                             fails (default 120)\n"
	      "      --drain-timeout S      a draining node whose agent does not confirm is\n"
	      "                             terminated after S seconds, and a load-balancer\n"
	      "                             member leaving still holding sessions is deleted\n"
	      "                             after S seconds (default 60)\n"
	      "      --web-dir DIR          the web console's files (default: the installed\n"
	      "                             copy, " TN_PKGDATADIR "/web; the source tree's web/\n"
	      "                             for a binary of the build tree)\n"
	      "      --lb-interval MS       milliseconds between load-balancer reconciliations\n"
	      "                             (default 2000; 100 to 600000)\n"
	      "      --webhook-backoff-ms MS  wait before a failed webhook delivery's first\n"
	      "                             retry, doubled at each further one up to 60 s\n"
	      "                             (default 1000; 1 to 60000); 8 attempts in all\n"
	      "      --log-level LEVEL      debug, info (default), warn or error\n"
	      "      --log-json             log one JSON object per line\n"
	      "      --no-fsync             skip fsync of uploaded blobs (benchmarks only: a crash\n"
	      "                             can then lose acknowledged uploads)\n"
	      "  -h, --help                 show this help and exit\n"
	      "  -V, --version              show the version and exit\n"
	      "\n"
	      "backup FILE writes a consistent copy of the live database to FILE (SQLite's\n"
	      "online backup), safe while the server runs.\n"
	      "\n"
	      "rotate-key replaces the key that signs desired documents with a new one,\n"
	      "endorsed by the old: agents follow at their next document, without\n"
	      "enrolling again.  Run it while the server is stopped; the next start signs\n"
	      "with the new key.\n",
	      out);
}

struct options {
	const char *listen;
	const char *data;
	const char *tls_cert, *tls_key;
	const char *agent_cacert;
	const char *admin_token_file;
	const char *ready_file;
	const char *public_url;
	const char *web_dir;
	const char *providers[PROVIDERS_MAX];
	size_t nproviders;
	unsigned enroll_timeout_s, drain_timeout_s;
	unsigned lb_interval_ms;
	unsigned webhook_backoff_ms;
	uint64_t max_upload;
	unsigned threads;
	unsigned conn_timeout_s;
	unsigned auth_fail_limit, auth_fail_window_s;
	bool no_fsync;
};

/* Seconds for a timeout option: 1 to a day. */
static int parse_seconds(const char *opt, const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s < '0' || *s > '9' || *end || v < 1 || v > 86400) {
		fprintf(stderr, "tender-server: %s \"%s\": expected 1 to 86400 seconds\n", opt, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

/* Returns 0 to go on, 1 to exit 0 (help), 2 on a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_TLS_CERT = 256, O_TLS_KEY, O_ADMIN_FILE, O_MAX_UPLOAD, O_THREADS, O_READY,
	       O_LOG_LEVEL, O_LOG_JSON, O_NO_FSYNC, O_PUBLIC_URL, O_PROVIDER, O_ENROLL_TIMEOUT,
	       O_DRAIN_TIMEOUT, O_LB_INTERVAL, O_WEB_DIR, O_WEBHOOK_BACKOFF, O_AGENT_CACERT,
	       O_CONN_TIMEOUT, O_AUTH_FAIL_LIMIT, O_AUTH_FAIL_WINDOW };
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"data", required_argument, NULL, 'd'},
		{"tls-cert", required_argument, NULL, O_TLS_CERT},
		{"tls-key", required_argument, NULL, O_TLS_KEY},
		{"agent-cacert", required_argument, NULL, O_AGENT_CACERT},
		{"admin-token-file", required_argument, NULL, O_ADMIN_FILE},
		{"max-upload", required_argument, NULL, O_MAX_UPLOAD},
		{"threads", required_argument, NULL, O_THREADS},
		{"ready-file", required_argument, NULL, O_READY},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"log-json", no_argument, NULL, O_LOG_JSON},
		{"no-fsync", no_argument, NULL, O_NO_FSYNC},
		{"public-url", required_argument, NULL, O_PUBLIC_URL},
		{"provider", required_argument, NULL, O_PROVIDER},
		{"enroll-timeout", required_argument, NULL, O_ENROLL_TIMEOUT},
		{"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
		{"lb-interval", required_argument, NULL, O_LB_INTERVAL},
		{"web-dir", required_argument, NULL, O_WEB_DIR},
		{"webhook-backoff-ms", required_argument, NULL, O_WEBHOOK_BACKOFF},
		{"conn-timeout", required_argument, NULL, O_CONN_TIMEOUT},
		{"auth-fail-limit", required_argument, NULL, O_AUTH_FAIL_LIMIT},
		{"auth-fail-window", required_argument, NULL, O_AUTH_FAIL_WINDOW},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "l:d:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'd': o->data = optarg; break;
		case O_TLS_CERT: o->tls_cert = optarg; break;
		case O_TLS_KEY: o->tls_key = optarg; break;
		case O_AGENT_CACERT: o->agent_cacert = optarg; break;
		case O_ADMIN_FILE: o->admin_token_file = optarg; break;
		case O_READY: o->ready_file = optarg; break;
		case O_LOG_JSON: tn_log_set_json(true); break;
		case O_NO_FSYNC: o->no_fsync = true; break;
		case O_PUBLIC_URL: o->public_url = optarg; break;
		case O_WEB_DIR: o->web_dir = optarg; break;
		case O_PROVIDER:
			if (o->nproviders == PROVIDERS_MAX) {
				fputs("tender-server: too many --provider options\n", stderr);
				return 2;
			}
			o->providers[o->nproviders++] = optarg;
			break;
		case O_ENROLL_TIMEOUT:
			if (parse_seconds("--enroll-timeout", optarg, &o->enroll_timeout_s))
				return 2;
			break;
		case O_DRAIN_TIMEOUT:
			if (parse_seconds("--drain-timeout", optarg, &o->drain_timeout_s))
				return 2;
			break;
		case O_CONN_TIMEOUT:
			if (parse_seconds("--conn-timeout", optarg, &o->conn_timeout_s))
				return 2;
			break;
		case O_AUTH_FAIL_WINDOW:
			if (parse_seconds("--auth-fail-window", optarg, &o->auth_fail_window_s))
				return 2;
			break;
		case O_AUTH_FAIL_LIMIT: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg < '0' || *optarg > '9' || *end || v > 1000000) {
				fprintf(stderr, "tender-server: --auth-fail-limit \"%s\": expected 0 "
						"(off) to 1000000\n", optarg);
				return 2;
			}
			o->auth_fail_limit = (unsigned)v;
			break;
		}
		case O_LB_INTERVAL: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg < '1' || *optarg > '9' || *end || v < 100 || v > 600000) {
				fprintf(stderr, "tender-server: --lb-interval \"%s\": expected 100 to "
						"600000 milliseconds\n", optarg);
				return 2;
			}
			o->lb_interval_ms = (unsigned)v;
			break;
		}
		case O_WEBHOOK_BACKOFF: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg < '1' || *optarg > '9' || *end || v > 60000) {
				fprintf(stderr, "tender-server: --webhook-backoff-ms \"%s\": expected 1 "
						"to 60000 milliseconds\n", optarg);
				return 2;
			}
			o->webhook_backoff_ms = (unsigned)v;
			break;
		}
		case O_MAX_UPLOAD:
			if (parse_size(optarg, &o->max_upload) != 0) {
				fprintf(stderr, "tender-server: --max-upload \"%s\": expected a size "
						"such as 512M or 4G\n", optarg);
				return 2;
			}
			break;
		case O_THREADS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg < '1' || *optarg > '9' || *end || v > 1024) {
				fprintf(stderr, "tender-server: --threads \"%s\": expected 1 to 1024\n",
					optarg);
				return 2;
			}
			o->threads = (unsigned)v;
			break;
		}
		case O_LOG_LEVEL: {
			int level = tn_log_level_parse(optarg);

			if (level < 0) {
				fprintf(stderr, "tender-server: --log-level \"%s\": expected debug, "
						"info, warn or error\n", optarg);
				return 2;
			}
			tn_log_set_level((enum tn_log_level)level);
			break;
		}
		case 'h': usage(stdout); return 1;
		case 'V': printf("tender-server %s\n", PACKAGE_VERSION); return 1;
		default:
			fputs("Try 'tender-server --help' for more information.\n", stderr);
			return 2;
		}
	}
	return 0;
}

/* On the first start: an admin token, printed once or written to a file;
 * only its hash is kept. */
static int create_admin_token(struct tn_server *srv, const char *file, struct tn_error *err)
{
	char *secret = tn_token_generate("tn_");
	char hash[65];
	int rc;

	tn_token_hash(secret, hash);
	rc = tn_store_api_token_create(srv->store, "admin", hash, "admin", NULL, "tender-server",
				       err);
	if (rc == 0 && file) {
		char *line = xasprintf("%s\n", secret);

		rc = tn_write_file_atomic(file, line, strlen(line), 0600, err);
		free(line);
		if (rc == 0)
			tn_log(TN_LOG_INFO, "server", "admin_token_written", "{s:s}", "file", file);
	} else if (rc == 0) {
		printf("Admin token (shown once; keep it safe): %s\n", secret);
		fflush(stdout);
	}
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return rc;
}

static int data_lock_fd = -1;

/* One server per data directory: start-up empties DATA/tmp and
 * DATA/blobs/tmp, which would destroy a running server's uploads.  The
 * lock (flock on DATA/lock) goes with the process, kill -9 included;
 * `backup` does not take it. */
static int lock_data_dir(const char *data, int *fd_out, struct tn_error *err)
{
	char *path = xasprintf("%s/lock", data);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = 0;

	if (fd < 0) {
		rc = tn_fail_errno(err, errno, "open %s", path);
	} else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			rc = tn_fail(err, TN_E_CONFLICT,
				     "data directory %s is in use by another tender-server", data);
		else
			rc = tn_fail_errno(err, errno, "lock %s", path);
		close(fd);
	} else {
		*fd_out = fd;
	}
	free(path);
	return rc;
}

/* --public-url: an http(s) URL a shell script can quote (install.sh
 * carries it), without a trailing slash.  Caller frees. */
static int check_public_url(const char *url, char **out, struct tn_error *err)
{
	size_t n = strlen(url);

	if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || n > 1024)
		return tn_fail(err, TN_E_INVALID, "--public-url \"%s\": expected an http(s) URL",
			       url);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || strchr("'\"\\`$", *p))
			return tn_fail(err, TN_E_INVALID,
				       "--public-url \"%s\": quotes, spaces, $ and ` are not "
				       "allowed",
				       url);
	while (n && url[n - 1] == '/')
		n--;
	*out = xstrndup(url, n);
	return 0;
}

/* The listen URL with the port really bound; an any-address listen is
 * reached on loopback.  Caller frees. */
static char *listen_url(const struct options *o, uint16_t port)
{
	const char *colon = strrchr(o->listen, ':');
	int hlen = (int)(colon - o->listen);
	const char *host = o->listen;

	if (hlen == 7 && strncmp(host, "0.0.0.0", 7) == 0)
		host = "127.0.0.1", hlen = 9;
	else if (hlen == 4 && strncmp(host, "[::]", 4) == 0)
		host = "[::1]", hlen = 5;
	return xasprintf("%s://%.*s:%u", o->tls_cert ? "https" : "http", hlen, host, port);
}

/* The providers, parsed already (opened before the store, so that a bad
 * setting leaves no half-made first start, and before HTTP starts: the
 * netns bridge must exist for a --listen on its address), with the agent
 * they and /downloads use. */
static int open_providers(const struct options *o, struct tn_server *srv, struct tn_error *err)
{
	struct tn_provider_env env = {.data_dir = o->data, .listen = o->listen,
				      .agent_cacert = srv->agent_cacert};
	char *agent = tn_node_default_agent();
	int rc;

	env.agent_path = agent;
	if ((rc = tn_providers_open(srv->providers, &env, err)) == 0) {
		const char *local = tn_provider_setting(
			tn_providers_find(srv->providers, TN_PROVIDER_DEFAULT), "agent");

		srv->agent_path = xstrdup(local ? local : agent);
	}
	free(agent);
	return rc;
}

/* --agent-cacert: a PEM file of certificates, read whole (install.sh
 * carries its text in a here-document, so only PEM lines are taken), and
 * its absolute path for the agents, whose working directory is their own. */
static int open_agent_cacert(const char *path, struct tn_server *srv, struct tn_error *err)
{
	char *text = NULL, *abs = NULL;
	size_t len = 0;
	int rc;

	if ((rc = tn_read_file(path, CACERT_MAX, &text, &len, err)))
		goto out;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];

		if (!(ch == '\n' || ch == '\r' || (ch >= ' ' && ch < 127))) {
			rc = tn_fail(err, TN_E_INVALID, "%s: not a PEM file (byte %zu)", path, i);
			goto out;
		}
	}
	if (len != strlen(text) || !strstr(text, "-----BEGIN CERTIFICATE-----") ||
	    strstr(text, INSTALL_CA_MARK)) {
		rc = tn_fail(err, TN_E_INVALID, "%s: not a PEM certificate file", path);
		goto out;
	}
	abs = realpath(path, NULL);
	if (!abs) {
		rc = tn_fail_errno(err, errno, "%s", path);
		goto out;
	}
	srv->agent_cacert = xstrdup(abs);
	srv->agent_cacert_pem = text;
	text = NULL;
out:
	free(abs);
	free(text);
	if (rc)
		tn_error_prefix(err, "--agent-cacert");
	return rc;
}

/* The console's directory: --web-dir, which must hold the console, or
 * the default (console.h), without which the server runs console-less. */
static int open_console(const struct options *o, struct tn_server *srv, struct tn_error *err)
{
	struct tn_error why;
	char *exe_dir = NULL, *dir;
	char exe[PATH_MAX];
	ssize_t n;

	if (o->web_dir) {
		if (tn_console_check_dir(o->web_dir, err) != 0)
			return tn_error_prefix(err, "--web-dir");
		srv->web_dir = xstrdup(o->web_dir);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		if (strrchr(exe, '/'))
			exe_dir = xstrndup(exe, (size_t)(strrchr(exe, '/') - exe));
	}
	dir = tn_console_default_dir(exe_dir, TN_BUILDDIR, TN_SRCDIR, TN_PKGDATADIR);
	free(exe_dir);
	if (tn_console_check_dir(dir, &why) != 0) {
		tn_log(TN_LOG_WARN, "server", "no_console", "{s:s}", "message", why.message);
		free(dir);
		return 0;
	}
	srv->web_dir = dir;
	return 0;
}

static int open_server(const struct options *o, struct tn_server *srv, struct tn_error *err)
{
	char *db = NULL;
	struct stat st;
	bool first;
	int rc;

	srv->data_dir = xstrdup(o->data);
	srv->tmp_dir = xasprintf("%s/tmp", o->data);
	srv->max_upload = o->max_upload;
	srv->archive_limits = tn_archive_limits_default;
	db = xasprintf("%s/tender.db", o->data);
	first = stat(db, &st) != 0;
	if ((o->agent_cacert && (rc = open_agent_cacert(o->agent_cacert, srv, err))) ||
	    (rc = open_console(o, srv, err)) || /* before the data directory is touched */
	    (rc = tn_mkdir_p(o->data, 0700, err)) ||
	    (rc = lock_data_dir(o->data, &data_lock_fd, err)) ||
	    (rc = tn_remove_tree(srv->tmp_dir, err)) ||
	    (rc = tn_mkdir_p(srv->tmp_dir, 0700, err)) ||
	    (rc = open_providers(o, srv, err)) ||
	    (rc = tn_store_open(db, &srv->store, err)) ||
	    (rc = tn_blobstore_open(o->data, &srv->blobs, err)) ||
	    (rc = tn_signkey_open(o->data, &srv->key, &srv->key_endorsements, err)))
		goto out;
	tn_blobstore_set_fsync(srv->blobs, !o->no_fsync);
	if ((first && (rc = create_admin_token(srv, o->admin_token_file, err))) ||
	    (rc = tn_janitor_collect(srv, err)))
		goto out;
	if ((rc = tn_auth_open(srv->store, &srv->auth, err)))
		goto out;
	srv->metrics = tn_metrics_new();
	srv->documents = tn_documents_new();
out:
	free(db);
	return rc;
}

static void close_server(struct tn_server *srv)
{
	tn_providers_free(srv->providers);
	free(srv->agent_path);
	free(srv->agent_cacert);
	free(srv->agent_cacert_pem);
	free(srv->key_endorsements);
	free(srv->web_dir);
	free(srv->public_url);
	tn_auth_free(srv->auth);
	tn_ratelimit_free(srv->ratelimit);
	tn_documents_free(srv->documents);
	tn_metrics_free(srv->metrics);
	tn_key_free(srv->key);
	tn_blobstore_close(srv->blobs);
	tn_store_close(srv->store);
	free(srv->tmp_dir);
	free(srv->data_dir);
	if (data_lock_fd >= 0) /* last: the directory is free once all is closed */
		close(data_lock_fd);
	data_lock_fd = -1;
}

static int run_backup(const char *data, const char *dest)
{
	char *db = xasprintf("%s/tender.db", data);
	struct tn_store *store = NULL;
	struct tn_error err;
	struct stat st;
	int rc = 1;

	if (stat(db, &st) != 0) {
		fprintf(stderr, "tender-server: backup: no database at %s (see --data)\n", db);
		goto out;
	}
	if (tn_store_open(db, &store, &err) != 0 || tn_store_backup(store, dest, &err) != 0) {
		fprintf(stderr, "tender-server: backup: %s\n", err.message);
		goto out;
	}
	printf("backup of %s written to %s\n", db, dest);
	rc = 0;
out:
	tn_store_close(store);
	free(db);
	return rc;
}

/* rotate-key: on a stopped server's data directory (its lock taken, so a
 * running server is refused rather than left signing with a key that is
 * no longer on disk). */
static int run_rotate_key(const char *data)
{
	char *old_b64 = NULL, *new_b64 = NULL;
	struct tn_error err;
	int fd = -1, rc = 1;

	if (lock_data_dir(data, &fd, &err) != 0 ||
	    tn_signkey_rotate(data, &old_b64, &new_b64, &err) != 0) {
		fprintf(stderr, "tender-server: rotate-key: %s\n", err.message);
		goto out;
	}
	tn_log(TN_LOG_INFO, "server", "key_rotated", "{s:s, s:s, s:s}", "data", data, "old",
	       old_b64, "new", new_b64);
	printf("signing key of %s rotated\n  old %s\n  new %s (endorsed by the old)\n"
	       "Start the server: agents take the new key with their next document.\n",
	       data, old_b64, new_b64);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(old_b64);
	free(new_b64);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = {.listen = "127.0.0.1:8080", .data = "./var",
			    .max_upload = DEFAULT_MAX_UPLOAD,
			    .conn_timeout_s = DEFAULT_CONN_TIMEOUT_S,
			    .auth_fail_limit = DEFAULT_AUTH_FAIL_LIMIT,
			    .auth_fail_window_s = DEFAULT_AUTH_FAIL_WINDOW_S};
	struct tn_server srv = {0};
	struct tn_http_config hc = {0};
	struct tn_janitor *janitor;
	struct tn_lifecycle_config lcc;
	struct tn_lbsync_config lbc;
	struct tn_webhooks_config whc = {0};
	struct tn_error err;
	sigset_t sigs;
	int sig, rc;

	json_object_seed(0); /* before any thread starts */
	curl_global_init(CURL_GLOBAL_DEFAULT); /* likewise */
	rc = parse_options(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (optind < argc && strcmp(argv[optind], "backup") == 0) {
		if (optind + 2 != argc || argv[optind + 1][0] == '\0') {
			fputs("tender-server: backup needs one FILE\n", stderr);
			return 2;
		}
		return run_backup(o.data, argv[optind + 1]);
	}
	if (optind < argc && strcmp(argv[optind], "rotate-key") == 0) {
		if (optind + 1 != argc) {
			fputs("tender-server: rotate-key takes no argument (see --data)\n", stderr);
			return 2;
		}
		return run_rotate_key(o.data);
	}
	if (optind < argc) {
		fprintf(stderr, "tender-server: unexpected argument \"%s\"\n"
				"Try 'tender-server --help' for more information.\n", argv[optind]);
		return 2;
	}
	/* Signals are taken by sigwait in this thread; every thread started
	 * from here on inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((o.public_url && check_public_url(o.public_url, &srv.public_url, &err) != 0) ||
	    tn_providers_new(o.providers, o.nproviders, &srv.providers, &err) != 0) {
		fprintf(stderr, "tender-server: %s\n", err.message);
		free(srv.public_url);
		return 2;
	}
	if (open_server(&o, &srv, &err) != 0) {
		tn_log(TN_LOG_ERROR, "server", "start_failed", "{s:s}", "message", err.message);
		close_server(&srv);
		return 1;
	}
	/* Before HTTP: request threads read srv.webhooks (tn_audit). */
	whc.backoff_ms = o.webhook_backoff_ms;
	srv.webhooks = tn_webhooks_start(&srv, &whc);
	srv.offload = tn_offload_start();
	tn_documents_start_writer(&srv);
	hc.listen = o.listen;
	hc.tls_cert = o.tls_cert;
	hc.tls_key = o.tls_key;
	hc.threads = o.threads;
	hc.conn_timeout_s = o.conn_timeout_s;
	srv.ratelimit = tn_ratelimit_new(o.auth_fail_limit, o.auth_fail_window_s);
	tn_log(TN_LOG_INFO, "auth", "rate_limit", "{s:i, s:i}", "bad_credentials",
	       (int)o.auth_fail_limit, "window_s", (int)o.auth_fail_window_s);
	if (tn_http_start(&srv, &hc, &srv.http, &err) != 0) {
		tn_log(TN_LOG_ERROR, "server", "start_failed", "{s:s}", "message", err.message);
		tn_offload_stop(srv.offload);
		srv.offload = NULL;
		tn_documents_stop_writer(&srv);
		tn_webhooks_stop(srv.webhooks);
		srv.webhooks = NULL;
		close_server(&srv);
		curl_global_cleanup();
		return 1;
	}
	{
		const char *colon = strrchr(o.listen, ':');
		char *url = xasprintf("%s://%.*s:%u", o.tls_cert ? "https" : "http",
				      (int)(colon - o.listen), o.listen, tn_http_port(srv.http));

		tn_log(TN_LOG_INFO, "server", "listening", "{s:s, s:s}", "url", url, "data", o.data);
		if (o.ready_file) {
			char *line = xasprintf("%s\n", url);

			if (tn_write_file_atomic(o.ready_file, line, strlen(line), 0644, &err) != 0)
				tn_log(TN_LOG_WARN, "server", "ready_file_failed", "{s:s}", "message",
				       err.message);
			free(line);
		}
		free(url);
	}
	if (!srv.public_url)
		srv.public_url = listen_url(&o, tn_http_port(srv.http));
	tn_log(TN_LOG_INFO, "server", "public_url", "{s:s, s:s, s:s?}", "url", srv.public_url,
	       "agent", srv.agent_path, "console", srv.web_dir);
	lcc = (struct tn_lifecycle_config){o.enroll_timeout_s, o.drain_timeout_s};
	srv.lifecycle = tn_lifecycle_start(&srv, &lcc);
	lbc = (struct tn_lbsync_config){o.lb_interval_ms, o.drain_timeout_s};
	srv.lbsync = tn_lbsync_start(&srv, &lbc);
	srv.orchestrator = tn_orchestrator_start(&srv);
	janitor = tn_janitor_start(&srv, GC_INTERVAL_S);
	sigwait(&sigs, &sig);
	tn_log(TN_LOG_INFO, "server", "stopping", "{s:s}", "signal", sig == SIGINT ? "INT" : "TERM");
	/* The worker first (it wakes HTTP waiters); requests that still queue
	 * jobs find them dropped, and the next start recovers their targets. */
	tn_lifecycle_halt(srv.lifecycle);
	tn_http_stop(srv.http); /* its parked exchanges wait for their jobs */
	srv.http = NULL;
	tn_offload_stop(srv.offload);
	srv.offload = NULL;
	tn_documents_stop_writer(&srv);
	tn_lbsync_stop(srv.lbsync); /* after the requests that wake them */
	srv.lbsync = NULL;
	tn_orchestrator_stop(srv.orchestrator);
	srv.orchestrator = NULL;
	tn_lifecycle_stop(srv.lifecycle);
	srv.lifecycle = NULL;
	tn_janitor_stop(janitor);
	/* Last: every thread that audits has stopped.  Deliveries in flight
	 * stay pending in the store for the next start. */
	tn_webhooks_stop(srv.webhooks);
	srv.webhooks = NULL;
	close_server(&srv);
	curl_global_cleanup();
	return 0;
}
