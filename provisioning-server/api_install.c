/* api_install.c - GET /api/v1/providers (the configured providers and
 * their settings, secrets hidden), and what installing an agent by hand
 * on an existing machine fetches (DESIGN §2 Provider): GET /install.sh (a
 * POSIX sh script), GET /downloads/tender-agent (the agent beside this
 * server, sent with sendfile) and its .sha256.  The downloads need no
 * token: the enrollment token given to the script is the secret. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "digest.h"
#include "provider.h"
#include "server.h"
#include "xalloc.h"

TN_HANDLER(tn_api_provider_list)
{
	tn_response_json(resp, 200, tn_providers_list(req->srv->providers));
	return 0;
}

/* ------------------------------------------------------------ install.sh */

/* @SERVER@ is replaced by the server's public URL (checked at start to
 * hold no quote), @CACERT@ by the PEM text of --agent-cacert (checked at
 * start to be PEM lines without the here-document's end mark) or by
 * nothing.  A script fetched with `curl --cacert` from an HTTPS server so
 * brings the CA the agent then verifies every request with.  Laid out as
 * the script, not as C. */
/* clang-format off */
static const char script[] =
	"#!/bin/sh\n"
	"# install.sh - installs tender-agent from a Tender server and starts it,\n"
	"# enrolled with an enrollment token (POST /api/v1/enrollment-tokens):\n"
	"#   curl -fsSL @SERVER@/install.sh | sh -s -- --token TOKEN\n"
	"# (over HTTPS with a private CA: curl --cacert CA.pem -fsSL ...)\n"
	"set -eu\n"
	"\n"
	"server='@SERVER@'\n"
	"token=''\n"
	"prefix=/usr/local/bin\n"
	"state=/var/lib/tender-agent\n"
	"port_base=''\n"
	"address=''\n"
	"cacert=''\n"
	"start=yes\n"
	"libs='libcurl4 libjansson4 libzip4 libssl3 zlib1g'\n"
	"\n"
	"usage() {\n"
	"\tcat <<EOF\n"
	"Usage: sh install.sh --token TOKEN [--server URL] [--prefix DIR] [--state DIR]\n"
	"                     [--port-base PORT] [--address ADDR] [--cacert FILE]\n"
	"                     [--no-start]\n"
	"Installs tender-agent from a Tender server, checks its sha256, installs the\n"
	"libraries it needs with apt-get when some are missing, and starts it.\n"
	"  --server URL      the Tender server (default $server)\n"
	"  --token TOKEN     an enrollment token (required to start)\n"
	"  --prefix DIR      where the agent goes (default /usr/local/bin)\n"
	"  --state DIR       the agent's state directory (default /var/lib/tender-agent)\n"
	"  --port-base PORT  first port of the node's block (the agent's default: 8000)\n"
	"  --address ADDR    this node's address as the load balancer sees it\n"
	"  --cacert FILE     the CA (PEM) of the server's HTTPS certificate (default:\n"
	"                    the one the server gives its agents, if any; else the\n"
	"                    system's CAs); kept as STATE/ca.pem for the agent\n"
	"  --no-start        install only\n"
	"Later starts need no token: tender-agent --state DIR\n"
	"EOF\n"
	"}\n"
	"\n"
	"die() {\n"
	"\techo \"install.sh: $*\" >&2\n"
	"\texit 1\n"
	"}\n"
	"\n"
	"while [ $# -gt 0 ]; do\n"
	"\tcase \"$1\" in\n"
	"\t--server|--token|--prefix|--state|--port-base|--address|--cacert)\n"
	"\t\t[ $# -ge 2 ] || die \"$1 needs a value\"\n"
	"\t\tcase \"$1\" in\n"
	"\t\t--server) server=$2 ;;\n"
	"\t\t--token) token=$2 ;;\n"
	"\t\t--prefix) prefix=$2 ;;\n"
	"\t\t--state) state=$2 ;;\n"
	"\t\t--port-base) port_base=$2 ;;\n"
	"\t\t--address) address=$2 ;;\n"
	"\t\t--cacert) cacert=$2 ;;\n"
	"\t\tesac\n"
	"\t\tshift 2 ;;\n"
	"\t--no-start) start=no; shift ;;\n"
	"\t-h|--help) usage; exit 0 ;;\n"
	"\t*) die \"unknown option $1 (see --help)\" ;;\n"
	"\tesac\n"
	"done\n"
	"[ \"$start\" = no ] || [ -n \"$token\" ] || die \"--token TOKEN is required (an "
	"enrollment token)\"\n"
	"command -v sha256sum >/dev/null 2>&1 || die \"sha256sum is missing (coreutils)\"\n"
	"\n"
	"tmp=$(mktemp -d)\n"
	"trap 'rm -rf \"$tmp\"' EXIT\n"
	"# The CA this server gives its agents (empty when it gives none).\n"
	"cat >\"$tmp/ca.pem\" <<'" INSTALL_CA_MARK "'\n"
	"@CACERT@"
	INSTALL_CA_MARK "\n"
	"if [ -z \"$cacert\" ] && grep -q 'BEGIN CERTIFICATE' \"$tmp/ca.pem\"; then\n"
	"\tcacert=$tmp/ca.pem\n"
	"fi\n"
	"[ -z \"$cacert\" ] || [ -r \"$cacert\" ] || die \"--cacert $cacert: cannot read it\"\n"
	"\n"
	"fetch() {\n"
	"\tif command -v curl >/dev/null 2>&1; then\n"
	"\t\tif [ -n \"$cacert\" ]; then\n"
	"\t\t\tcurl -fsS --cacert \"$cacert\" -o \"$2\" \"$1\"\n"
	"\t\telse\n"
	"\t\t\tcurl -fsS -o \"$2\" \"$1\"\n"
	"\t\tfi\n"
	"\telif command -v wget >/dev/null 2>&1; then\n"
	"\t\tif [ -n \"$cacert\" ]; then\n"
	"\t\t\twget -q --ca-certificate=\"$cacert\" -O \"$2\" \"$1\"\n"
	"\t\telse\n"
	"\t\t\twget -q -O \"$2\" \"$1\"\n"
	"\t\tfi\n"
	"\telse\n"
	"\t\tdie \"neither curl nor wget is installed\"\n"
	"\tfi\n"
	"}\n"
	"\n"
	"fetch \"$server/downloads/tender-agent\" \"$tmp/tender-agent\" ||\n"
	"\tdie \"cannot download $server/downloads/tender-agent\"\n"
	"fetch \"$server/downloads/tender-agent.sha256\" \"$tmp/sha256\" ||\n"
	"\tdie \"cannot download $server/downloads/tender-agent.sha256\"\n"
	"want=$(cut -d ' ' -f 1 \"$tmp/sha256\")\n"
	"got=$(sha256sum \"$tmp/tender-agent\" | cut -d ' ' -f 1)\n"
	"[ -n \"$want\" ] && [ \"$want\" = \"$got\" ] ||\n"
	"\tdie \"sha256 mismatch: the server says $want, the download is $got\"\n"
	"chmod 0755 \"$tmp/tender-agent\"\n"
	"\n"
	"# The runtime libraries: apt-get only when some are missing.\n"
	"missing() {\n"
	"\tcommand -v ldd >/dev/null 2>&1 || return 1\n"
	"\tldd \"$tmp/tender-agent\" 2>/dev/null | grep 'not found'\n"
	"}\n"
	"if missing >/dev/null; then\n"
	"\tcommand -v apt-get >/dev/null 2>&1 || die \"missing libraries ($(missing | tr -s "
	"'\\t\\n' ' ')); install: $libs\"\n"
	"\t[ \"$(id -u)\" = 0 ] || die \"missing libraries: run as root, or apt-get install "
	"$libs\"\n"
	"\techo \"install.sh: installing $libs\"\n"
	"\tDEBIAN_FRONTEND=noninteractive apt-get update -qq\n"
	"\t# shellcheck disable=SC2086\n"
	"\tDEBIAN_FRONTEND=noninteractive apt-get install -y -qq $libs\n"
	"\t! missing >/dev/null || die \"libraries still missing: $(missing | tr -s '\\t\\n' "
	"' ')\"\n"
	"fi\n"
	"\n"
	"mkdir -p \"$prefix\"\n"
	"cp \"$tmp/tender-agent\" \"$prefix/.tender-agent.new\"\n"
	"mv -f \"$prefix/.tender-agent.new\" \"$prefix/tender-agent\"\n"
	"echo \"install.sh: installed $prefix/tender-agent (sha256 $got)\"\n"
	"[ \"$start\" = yes ] || exit 0\n"
	"\n"
	"mkdir -p \"$state\"\n"
	"chmod 0700 \"$state\"\n"
	"# the token goes in a file the agent removes once enrolled: never in `ps`\n"
	"(umask 077 && printf '%s\\n' \"$token\" >\"$state/enroll-token\")\n"
	"set -- --state \"$state\" --server \"$server\" --enroll-token-file \"$state/enroll-token\"\n"
	"if [ -n \"$cacert\" ]; then\n"
	"\t[ \"$cacert\" = \"$state/ca.pem\" ] || cp \"$cacert\" \"$state/ca.pem\"\n"
	"\tset -- \"$@\" --cacert \"$state/ca.pem\"\n"
	"fi\n"
	"[ -z \"$port_base\" ] || set -- \"$@\" --port-base \"$port_base\"\n"
	"[ -z \"$address\" ] || set -- \"$@\" --address \"$address\"\n"
	"cd \"$state\"\n"
	"if command -v setsid >/dev/null 2>&1; then\n"
	"\tsetsid \"$prefix/tender-agent\" \"$@\" </dev/null >>\"$state/agent.log\" 2>&1 &\n"
	"else\n"
	"\tnohup \"$prefix/tender-agent\" \"$@\" </dev/null >>\"$state/agent.log\" 2>&1 &\n"
	"fi\n"
	"echo \"$!\" >\"$state/agent.pid\"\n"
	"echo \"install.sh: tender-agent started (pid $!); its log: $state/agent.log\"\n";
/* clang-format on */

/* Appends text[0..n) to the buffer of at most cap bytes. */
static void put(char *out, size_t *len, const char *text, size_t n)
{
	memcpy(out + *len, text, n);
	*len += n;
}

TN_HANDLER(tn_api_install_script)
{
	const char *url = req->srv->public_url ? req->srv->public_url : "http://127.0.0.1:8080";
	const char *ca = req->srv->agent_cacert_pem ? req->srv->agent_cacert_pem : "";
	size_t ulen = strlen(url), calen = strlen(ca), n = 0;
	/* @SERVER@ a few times, @CACERT@ once, a newline after the PEM */
	size_t cap = sizeof script + 8 * ulen + calen + 1;
	char *out = xmalloc(cap);
	const char *p = script, *at;

	while ((at = strchr(p, '@'))) {
		put(out, &n, p, (size_t)(at - p));
		if (strncmp(at, "@SERVER@", 8) == 0) {
			put(out, &n, url, ulen);
			p = at + 8;
		} else if (strncmp(at, "@CACERT@", 8) == 0) {
			put(out, &n, ca, calen);
			if (calen && ca[calen - 1] != '\n')
				put(out, &n, "\n", 1);
			p = at + 8;
		} else {
			put(out, &n, "@", 1);
			p = at + 1;
		}
	}
	put(out, &n, p, strlen(p) + 1);
	n--;
	resp->status = 200;
	resp->body = out;
	resp->body_len = n;
	resp->content_type = "text/x-shellscript";
	return 0;
}

/* ------------------------------------------------------------ downloads */

/* The agent's hash, computed once per version of the file. */
static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char hex[TN_SHA256_HEX_LEN + 1];
} cached;

static int open_agent(struct tn_server *srv, int *fd, struct stat *st, struct tn_error *err)
{
	const char *path = srv->agent_path;

	if (!path)
		return tn_fail(err, TN_E_NOT_FOUND, "this server has no tender-agent to serve");
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return tn_fail(err, errno == ENOENT ? TN_E_NOT_FOUND : TN_E_IO,
			       "tender-agent is not installed beside this server (%s: %s)", path,
			       strerror(errno));
	if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(*fd);
		*fd = -1;
		return tn_fail(err, TN_E_IO, "%s is not a regular file", path);
	}
	return 0;
}

TN_HANDLER(tn_api_download_agent)
{
	struct stat st;
	int fd = -1;
	int rc = open_agent(req->srv, &fd, &st, err);

	if (rc)
		return rc;
	resp->status = 200;
	resp->fd = fd;
	resp->fd_offset = 0;
	resp->fd_size = (uint64_t)st.st_size;
	resp->content_type = "application/octet-stream";
	tn_response_add_header(resp, "Cache-Control", "no-cache");
	return 0;
}

TN_HANDLER(tn_api_download_agent_sha256)
{
	struct stat st;
	char hex[TN_SHA256_HEX_LEN + 1];
	int fd = -1;
	int rc = open_agent(req->srv, &fd, &st, err);

	if (rc)
		return rc;
	pthread_mutex_lock(&hash_lock);
	if (cached.dev != st.st_dev || cached.ino != st.st_ino || cached.size != st.st_size ||
	    cached.mtime.tv_sec != st.st_mtim.tv_sec ||
	    cached.mtime.tv_nsec != st.st_mtim.tv_nsec || !cached.hex[0]) {
		char path[64];

		/* the file opened, not the name: it may be replaced meanwhile */
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		rc = tn_sha256_file_hex(path, cached.hex, err);
		cached.dev = st.st_dev;
		cached.ino = st.st_ino;
		cached.size = st.st_size;
		cached.mtime = st.st_mtim;
		if (rc)
			cached.hex[0] = '\0';
	}
	memcpy(hex, cached.hex, sizeof hex);
	pthread_mutex_unlock(&hash_lock);
	close(fd);
	if (rc)
		return rc;
	resp->status = 200;
	resp->body = xasprintf("%s  tender-agent\n", hex);
	resp->body_len = strlen(resp->body);
	resp->content_type = "text/plain";
	tn_response_add_header(resp, "Cache-Control", "no-cache");
	return 0;
}
