/* main.c - tender-agent: enrolls a node with the provisioning server (once),
 * then runs its desired release for good: long-poll, prepare, switch,
 * commit or roll back, supervise, probe, report. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "fsutil.h"
#include "log.h"
#include "loop.h"

#include "config.h"

static struct tn_loop *the_loop;

static void on_signal(int sig)
{
	(void)sig;
	if (the_loop)
		tn_loop_stop(the_loop);
}

static void usage(FILE *out)
{
	fputs("Usage: tender-agent --state DIR [--server URL --enroll-token TOKEN] [OPTION]...\n"
	      "Runs a node's desired release for Tender: enrolls once with the provisioning\n"
	      "server, then long-polls its signed desired document and prepares, switches,\n"
	      "commits or rolls back releases, supervising their bundles.\n"
	      "\n"
	      "  -s, --state DIR           the node's state: identity, releases, data, logs\n"
	      "      --server URL          the provisioning server (to enroll)\n"
	      "      --enroll-token TOKEN  an enrollment token (first start only)\n"
	      "      --enroll-token-file FILE  the same, read from FILE (kept out of `ps`),\n"
	      "                            which is removed once the enrollment succeeded\n"
	      "      --server-key KEY      pin the server's Ed25519 key (base64) in advance;\n"
	      "                            enrollment fails when the server's differs\n"
	      "      --cacert FILE         verify the server's HTTPS certificate with the CAs\n"
	      "                            in this PEM file (default: the system's CAs)\n"
	      "      --address ADDR        this node's address as the load balancer sees it\n"
	      "                            (default 127.0.0.1)\n"
	      "      --port-base PORT      first port of this node's block ({{target.port_base}};\n"
	      "                            default 8000)\n"
	      "      --agent-port PORT     HAProxy agent-check port (default: port base + 9);\n"
	      "                            answers drain, up ready 100% or maint by phase\n"
	      "      --drain-wait-ms MS    at a switch or a removal behind a load balancer,\n"
	      "                            wait at most MS for the connections to the\n"
	      "                            serves port to end (0-600000, default 5000)\n"
	      "      --poll-wait S         long-poll wait asked of the server (1-30, default 30)\n"
	      "      --log-level LEVEL     debug, info (default), warn or error\n"
	      "      --log-json            log one JSON object per line\n"
	      "  -h, --help                show this help and exit\n"
	      "  -V, --version             show the version and exit\n"
	      "\n"
	      "Bundles keep running when the agent stops; the next agent adopts them.\n",
	      out);
}

static int number(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "tender-agent: %s \"%s\": expected %ld to %ld\n", opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_SERVER = 256, O_TOKEN, O_TOKEN_FILE, O_KEY, O_ADDRESS, O_PORT_BASE, O_AGENT_PORT, O_WAIT,
	       O_LOG_LEVEL, O_LOG_JSON, O_BACKOFF, O_RESTARTS, O_DRAIN_WAIT, O_CACERT };
	static const struct option longopts[] = {
		{"state", required_argument, NULL, 's'},
		{"server", required_argument, NULL, O_SERVER},
		{"enroll-token", required_argument, NULL, O_TOKEN},
		{"enroll-token-file", required_argument, NULL, O_TOKEN_FILE},
		{"server-key", required_argument, NULL, O_KEY},
		{"cacert", required_argument, NULL, O_CACERT},
		{"address", required_argument, NULL, O_ADDRESS},
		{"port-base", required_argument, NULL, O_PORT_BASE},
		{"agent-port", required_argument, NULL, O_AGENT_PORT},
		{"poll-wait", required_argument, NULL, O_WAIT},
		{"drain-wait-ms", required_argument, NULL, O_DRAIN_WAIT},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"log-json", no_argument, NULL, O_LOG_JSON},
		/* for tests: fast crash handling */
		{"restart-backoff-ms", required_argument, NULL, O_BACKOFF},
		{"restart-limit", required_argument, NULL, O_RESTARTS},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct tn_agent_options o = {
		.address = "127.0.0.1", .port_base = 8000, .poll_wait_s = 30, .drain_wait_ms = 5000};
	const char *server = NULL, *token = NULL, *token_file = NULL, *key = NULL;
	char *file_token = NULL;
	struct tn_agent *agent = NULL;
	struct tn_error err;
	long v;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.state_dir = optarg; break;
		case O_SERVER: server = optarg; break;
		case O_TOKEN: token = optarg; break;
		case O_TOKEN_FILE: token_file = optarg; break;
		case O_KEY: key = optarg; break;
		case O_CACERT: o.cacert = optarg; break;
		case O_ADDRESS: o.address = optarg; break;
		case O_PORT_BASE:
			if (number("--port-base", optarg, 1, 65526, &v))
				return 2;
			o.port_base = (int)v;
			break;
		case O_AGENT_PORT:
			if (number("--agent-port", optarg, 1, 65535, &v))
				return 2;
			o.agent_port = (int)v;
			break;
		case O_WAIT:
			if (number("--poll-wait", optarg, 1, 30, &v))
				return 2;
			o.poll_wait_s = (unsigned)v;
			break;
		case O_DRAIN_WAIT:
			if (number("--drain-wait-ms", optarg, 0, 600000, &v))
				return 2;
			o.drain_wait_ms = (uint64_t)v;
			break;
		case O_BACKOFF:
			if (number("--restart-backoff-ms", optarg, 1, 600000, &v))
				return 2;
			o.backoff_base_ms = (uint64_t)v;
			break;
		case O_RESTARTS:
			if (number("--restart-limit", optarg, 1, 1000, &v))
				return 2;
			o.restart_limit = (unsigned)v;
			break;
		case O_LOG_LEVEL: {
			int level = tn_log_level_parse(optarg);

			if (level < 0) {
				fprintf(stderr, "tender-agent: --log-level \"%s\": expected debug, "
						"info, warn or error\n", optarg);
				return 2;
			}
			tn_log_set_level((enum tn_log_level)level);
			break;
		}
		case O_LOG_JSON: tn_log_set_json(true); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("tender-agent %s\n", PACKAGE_VERSION); return 0;
		default:
			fputs("Try 'tender-agent --help' for more information.\n", stderr);
			return 2;
		}
	}
	if (!o.state_dir || optind < argc) {
		fputs("tender-agent: --state DIR is required (and no other arguments)\n"
		      "Try 'tender-agent --help' for more information.\n", stderr);
		return 2;
	}
	if (!o.agent_port)
		o.agent_port = o.port_base + 9;
	json_object_seed(0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	/* The file is gone once an enrollment succeeded: a restart runs
	 * enrolled. */
	if (token_file && !token && (access(token_file, F_OK) == 0 || errno != ENOENT)) {
		size_t len = 0;

		if (tn_read_file(token_file, 4096, &file_token, &len, &err) != 0) {
			fprintf(stderr, "tender-agent: --enroll-token-file: %s\n", err.message);
			rc = 2;
			goto out;
		}
		while (len && (file_token[len - 1] == '\n' || file_token[len - 1] == '\r' ||
			       file_token[len - 1] == ' '))
			file_token[--len] = '\0';
		if (!len || strlen(file_token) != len) {
			fprintf(stderr, "tender-agent: --enroll-token-file %s: no token in it\n",
				token_file);
			rc = 2;
			goto out;
		}
		token = file_token;
	}
	if (token) {
		if (!server) {
			fputs("tender-agent: --enroll-token needs --server\n", stderr);
			rc = 2;
			goto out;
		}
		if (tn_agent_enroll(o.state_dir, server, token, key, o.cacert, o.address,
				    o.agent_port, &err) != 0) {
			tn_log(TN_LOG_ERROR, "agent", "enroll_failed", "{s:s}", "message",
			       err.message);
			goto out;
		}
		if (file_token && unlink(token_file) != 0)
			tn_log(TN_LOG_WARN, "agent", "token_file_kept", "{s:s, s:s}", "file",
			       token_file, "message", strerror(errno));
	}
	the_loop = tn_loop_new();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (tn_agent_start(the_loop, &o, &agent, &err) != 0) {
		tn_log(TN_LOG_ERROR, "agent", "start_failed", "{s:s}", "message", err.message);
		goto out;
	}
	tn_loop_run(the_loop);
	tn_log(TN_LOG_INFO, "agent", "stopping", NULL);
	rc = 0;
out:
	free(file_token);
	tn_agent_free(agent);
	tn_loop_free(the_loop);
	curl_global_cleanup();
	return rc;
}
