/* harness.c - see harness.h.  Servers and agents are children of the test
 * program with PR_SET_PDEATHSIG, so they die with it whatever happens; at
 * exit, and when the harness aborts, a server or an agent the test did not
 * destroy is killed and its directory removed (its log shown first), and
 * so are the bundles an agent left running.  Bundles are nobody's children
 * once their agent is gone: a guardian process, started with the first
 * agent, kills them should the test program die without cleaning up. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "xalloc.h"

#define START_DEADLINE_S 20
#define STOP_DEADLINE_S 20
#define MAX_SERVERS 16
#define MAX_AGENTS 32

/* Every server from th_server_start to th_server_destroy, running or not:
 * what is left here when the program ends (a failed fixture, an abort) is
 * killed and its directory removed. */
static struct th_server *owned[MAX_SERVERS];
static struct th_agent *owned_agents[MAX_AGENTS];

static void clean_up_all(bool show_logs);
static void clean_up_agents(bool show_logs);

static void show_log(const struct th_server *s)
{
	char *log = NULL;
	size_t len = 0;

	if (s->log_path && tn_read_file(s->log_path, 1 << 20, &log, &len, NULL) == 0)
		fprintf(stderr, "--- server log (%s)\n%s---\n", s->log_path, log);
	free(log);
}

static void fatal(const char *what, const struct th_server *s)
{
	fprintf(stderr, "harness: %s\n", what);
	if (s)
		show_log(s);
	/* abort() skips atexit: stop the servers and remove their data here */
	clean_up_all(false);
	abort();
}

double th_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void th_pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

const char *th_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void clean_up_all(bool show_logs)
{
	/* Agents first: some of them talk to a server through the test. */
	clean_up_agents(show_logs);
	for (size_t i = 0; i < MAX_SERVERS; i++) {
		struct th_server *s = owned[i];

		if (!s)
			continue;
		owned[i] = NULL;
		if (s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			s->pid = 0;
		}
		if (show_logs) {
			fprintf(stderr, "harness: a server was not destroyed by the test\n");
			show_log(s);
		}
		if (s->data_dir && tn_remove_tree(s->data_dir, NULL) != 0)
			fprintf(stderr, "harness: could not remove %s\n", s->data_dir);
	}
}

static void clean_up_at_exit(void)
{
	clean_up_all(true);
}

static void register_exit(void)
{
	static bool registered;

	if (!registered) {
		atexit(clean_up_at_exit);
		curl_global_init(CURL_GLOBAL_DEFAULT);
		registered = true;
	}
}

static void track(struct th_server *s, bool on)
{
	register_exit();
	for (size_t i = 0; i < MAX_SERVERS; i++) {
		if (on && !owned[i]) {
			owned[i] = s;
			return;
		}
		if (!on && owned[i] == s) {
			owned[i] = NULL;
			return;
		}
	}
	if (on)
		fatal("too many servers", NULL);
}

char *th_tmpdir(void)
{
	char *dir = xstrdup("/tmp/tender-test-XXXXXX");

	if (!mkdtemp(dir))
		fatal("mkdtemp failed", NULL);
	return dir;
}

void th_rmtree(const char *dir)
{
	if (tn_remove_tree(dir, NULL) != 0)
		fprintf(stderr, "harness: could not remove %s\n", dir);
}

static void spawn(struct th_server *s, const char *const *extra_args)
{
	char *ready = xasprintf("%s/ready", s->data_dir);
	char *data = xasprintf("%s/var", s->data_dir);
	char *token_file = xasprintf("%s/admin-token", s->data_dir);
	const char *argv[64];
	char listen[64] = "127.0.0.1:0";
	const char *colon = s->url ? strrchr(s->url, ':') : NULL;
	size_t argc = 0;
	double deadline;
	pid_t pid;

	/* A restart listens where the server listened: agents and nodes keep
	 * the URL they enrolled with (docs/operations.md, --public-url). */
	if (colon)
		snprintf(listen, sizeof listen, "127.0.0.1:%s", colon + 1);
	unlink(ready);
	argv[argc++] = TN_BUILDDIR "/tender-server";
	argv[argc++] = "--listen";
	argv[argc++] = listen;
	argv[argc++] = "--data";
	argv[argc++] = data;
	argv[argc++] = "--ready-file";
	argv[argc++] = ready;
	argv[argc++] = "--admin-token-file";
	argv[argc++] = token_file;
	argv[argc++] = "--threads";
	argv[argc++] = "4";
	for (size_t i = 0; extra_args && extra_args[i] && argc < 62; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0)
		fatal("fork failed", s);
	if (pid == 0) {
		int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	deadline = th_now_s() + START_DEADLINE_S;
	for (;;) {
		char *url = NULL;
		size_t len = 0;
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			s->pid = 0;
			fatal("tender-server exited during start-up", s);
		}
		if (tn_read_file(ready, 4096, &url, &len, NULL) == 0 && len > 1) {
			url[strcspn(url, "\n")] = '\0';
			free(s->url);
			s->url = url;
			break;
		}
		free(url);
		if (th_now_s() > deadline)
			fatal("tender-server did not start within the deadline", s);
		th_pause_ms(20);
	}
	if (!s->admin_token) {
		char *tok = NULL;
		size_t len = 0;

		if (tn_read_file(token_file, 4096, &tok, &len, NULL) != 0)
			fatal("no admin token file after the first start", s);
		tok[strcspn(tok, "\n")] = '\0';
		s->admin_token = tok;
	}
	free(ready);
	free(data);
	free(token_file);
}

void th_server_start(struct th_server *s, const char *const *extra_args)
{
	memset(s, 0, sizeof *s);
	s->data_dir = th_tmpdir();
	s->log_path = xasprintf("%s/server.log", s->data_dir);
	track(s, true);
	spawn(s, extra_args);
}

void th_server_restart(struct th_server *s, const char *const *extra_args)
{
	if (s->pid > 0)
		th_server_stop(s);
	spawn(s, extra_args);
}

int th_server_stop(struct th_server *s)
{
	double deadline = th_now_s() + STOP_DEADLINE_S;
	int status = 0;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	while (waitpid(s->pid, &status, WNOHANG) != s->pid) {
		if (th_now_s() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			s->pid = 0;
			fatal("tender-server did not stop on SIGTERM within the deadline", s);
		}
		th_pause_ms(10);
	}
	s->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool th_server_exited_cleanly(const struct th_server *s, int status)
{
	char *log = NULL;
	size_t len = 0;
	bool clean;

	if (tn_read_file(s->log_path, 256u << 20, &log, &len, NULL) != 0)
		log = xstrdup("(no log)");
	clean = status == 0 && !strstr(log, "Sanitizer") && !strstr(log, "runtime error");
	if (!clean) {
		const char *tail = log;

		if (strlen(log) > 64 * 1024)
			tail = log + strlen(log) - 64 * 1024;
		fprintf(stderr, "tender-server exited with %d; the end of its log (%s):\n%s---\n",
			status, s->log_path, tail);
	}
	free(log);
	return clean;
}

void th_server_kill9(struct th_server *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

void th_server_destroy(struct th_server *s)
{
	if (s->pid > 0)
		th_server_stop(s);
	if (s->data_dir)
		th_rmtree(s->data_dir);
	track(s, false);
	free(s->data_dir);
	free(s->url);
	free(s->admin_token);
	free(s->log_path);
	memset(s, 0, sizeof *s);
}

static size_t file_count;

static int count_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (type == FTW_F)
		file_count++;
	return 0;
}

size_t th_count_files(const char *dir)
{
	file_count = 0;
	if (nftw(dir, count_cb, 16, FTW_PHYS) != 0)
		return 0;
	return file_count;
}

/* ------------------------------------------------------------ HTTP */

struct sink {
	char *p;
	size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;

	s->p = xrealloc(s->p, s->len + size * n + 1);
	memcpy(s->p + s->len, data, size * n);
	s->len += size * n;
	s->p[s->len] = '\0';
	return size * n;
}

void th_http(struct th_server *s, const char *path, const struct th_request *req,
	     struct th_response *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct sink body = {0}, head = {0};
	char *url = xasprintf("%s%s", s->url, path);
	char *auth = NULL, *type = NULL;
	FILE *upload = NULL;
	const char *method = req && req->method ? req->method : "GET";
	CURLcode cc;

	memset(out, 0, sizeof *out);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (s->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, s->cacert);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (req && req->token) {
		auth = xasprintf("Authorization: Bearer %s", req->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (req && (req->body || req->upload_file)) {
		type = xasprintf("Content-Type: %s",
				 req->content_type ? req->content_type : "application/json");
		hdrs = curl_slist_append(hdrs, type);
	}
	for (size_t i = 0; req && req->headers && req->headers[i]; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (req && req->upload_file) {
		struct stat st;

		upload = fopen(req->upload_file, "rb");
		if (!upload || fstat(fileno(upload), &st) != 0)
			fatal("cannot open the upload file", NULL);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_READDATA, upload);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	} else if (req && req->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		/* A refused upload may see the connection closed once the answer
		 * is sent; the answer itself is still what counts. */
		long status = 0;

		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status == 0) {
			fprintf(stderr, "harness: %s %s: %s\n", method, url, curl_easy_strerror(cc));
			fatal("request failed", s);
		}
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	out->body = body.p ? body.p : xstrdup("");
	out->len = body.len;
	out->headers = head.p ? head.p : xstrdup("");
	out->json = json_loadb(out->body, out->len, 0, NULL);
	if (upload)
		fclose(upload);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(auth);
	free(type);
	free(url);
}

void th_response_free(struct th_response *r)
{
	free(r->body);
	free(r->headers);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

const char *th_error_message(const struct th_response *r)
{
	const char *m = json_string_value(
		json_object_get(json_object_get(r->json, "error"), "message"));

	return m ? m : "";
}

const char *th_error_code(const struct th_response *r)
{
	const char *m = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));

	return m ? m : "";
}

const char *th_header(const struct th_response *r, const char *name, char *buf, size_t size)
{
	size_t n = strlen(name);

	for (const char *line = r->headers; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			size_t vlen = len - n - 1;

			while (vlen && (*v == ' '))
				v++, vlen--;
			while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
				vlen--;
			snprintf(buf, size, "%.*s", (int)vlen, v);
			return buf;
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

void th_json(struct th_server *s, const char *method, const char *path, const char *token,
	     const char *json_body, struct th_response *out)
{
	struct th_request req = {.method = method, .token = token, .body = json_body,
				 .len = json_body ? strlen(json_body) : 0};

	th_http(s, path, &req, out);
}

char *th_make_token(struct th_server *s, const char *name, const char *role)
{
	char *body = xasprintf("{\"name\": \"%s\", \"role\": \"%s\"}", name, role);
	struct th_response r;
	char *secret;

	th_json(s, "POST", "/api/v1/tokens", s->admin_token, body, &r);
	if (r.status != 201)
		fatal("could not create a token", s);
	secret = xstrdup(json_string_value(json_object_get(r.json, "token")));
	th_response_free(&r);
	free(body);
	return secret;
}

/* ------------------------------------------------------------ audit log */

long long th_last_event_id(struct th_server *s)
{
	long long last = 0;

	/* bounded: each page moves the cursor forward, and the log is a test's */
	for (int page = 0; page < 1000; page++) {
		char *path = xasprintf("/api/v1/events?limit=1000&after=%lld", last);
		struct th_request req = {.token = s->admin_token};
		struct th_response r;
		json_t *items;
		size_t n;

		th_http(s, path, &req, &r);
		free(path);
		if (r.status != 200)
			fatal("GET /api/v1/events failed", s);
		items = json_object_get(r.json, "items");
		n = json_array_size(items);
		if (n)
			last = (long long)json_integer_value(
			    json_object_get(json_array_get(items, n - 1), "id"));
		th_response_free(&r);
		if (n < 1000)
			return last;
	}
	fatal("the audit log does not end", s);
	return last;
}

json_t *th_events_after(struct th_server *s, long long id)
{
	char *path = xasprintf("/api/v1/events?limit=1000&after=%lld", id);
	struct th_request req = {.token = s->admin_token};
	struct th_response r;
	json_t *items;

	th_http(s, path, &req, &r);
	free(path);
	if (r.status != 200)
		fatal("GET /api/v1/events failed", s);
	items = json_incref(json_object_get(r.json, "items"));
	th_response_free(&r);
	return items;
}

/* ------------------------------------------------------------ raw HTTP */

/* The end of the header block in p[0..len), or NULL. */
static const char *header_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0)
			return p + i + 4;
	return NULL;
}

long th_raw_http(struct th_server *s, const void *request, size_t len, double deadline_s,
		 char **out)
{
	const char *port = strrchr(s->url, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	double deadline = th_now_s() + deadline_s;
	struct sink got = {0};
	size_t sent = 0;
	long status = 0;
	int fd;

	sa.sin_port = htons((uint16_t)strtoul(port + 1, NULL, 10));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		fatal("cannot connect to the server", s);
	/* A server that answers early may stop reading: stop sending then. */
	while (sent < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT | POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			break;
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
			break;
		if (!(pfd.revents & POLLOUT)) {
			if (th_now_s() > deadline)
				break;
			continue;
		}
		n = send(fd, (const char *)request + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	/* Bounded by the deadline: each pass waits at most until it. */
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		double left = deadline - th_now_s();
		const char *body;
		char buf[4096];
		ssize_t n;

		if (got.p && (body = header_end(got.p, got.len))) {
			const char *cl = strcasestr(got.p, "\r\nContent-Length:");

			if (cl && cl < body &&
			    (size_t)(got.p + got.len - body) >= strtoul(cl + 17, NULL, 10))
				break;
		}
		if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			break;
		n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		collect(buf, 1, (size_t)n, &got);
	}
	close(fd);
	if (got.p && strncmp(got.p, "HTTP/1.", 7) == 0 && strlen(got.p) > 12)
		status = strtol(got.p + 9, NULL, 10);
	*out = got.p ? got.p : xstrdup("");
	return status;
}

/* ------------------------------------------------------------ child programs */

void th_run_start(struct th_run *r, const char *path, const char *const *args,
		  const char *const *env, bool tty_stderr)
{
	static const char *const passed_on[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
						 NULL};
	const char *argv[256], *envp[256];
	char *kept[8] = {NULL};
	int out[2], err[2], nkept = 0;
	size_t argc = 0, envc = 0;
	pid_t pid;

	memset(r, 0, sizeof *r);
	r->status = -1;
	argv[argc++] = path;
	for (size_t i = 0; args && args[i] && argc < 255; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	for (size_t i = 0; env && env[i] && envc < 240; i++)
		envp[envc++] = env[i];
	for (size_t i = 0; passed_on[i]; i++) {
		const char *v = getenv(passed_on[i]);

		if (v) {
			kept[nkept] = xasprintf("%s=%s", passed_on[i], v);
			envp[envc++] = kept[nkept++];
		}
	}
	envp[envc] = NULL;
	if (pipe2(out, O_CLOEXEC) != 0)
		fatal("pipe2 failed", NULL);
	if (tty_stderr) {
		struct winsize ws = {.ws_row = 40, .ws_col = 100};

		if (openpty(&err[0], &err[1], NULL, NULL, &ws) != 0)
			fatal("openpty failed", NULL);
		fcntl(err[0], F_SETFD, FD_CLOEXEC);
		fcntl(err[1], F_SETFD, FD_CLOEXEC);
	} else if (pipe2(err, O_CLOEXEC) != 0) {
		fatal("pipe2 failed", NULL);
	}
	pid = fork();
	if (pid < 0)
		fatal("fork failed", NULL);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* the test program may ignore or block signals: the child must not */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		dup2(null, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execve(path, (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	r->pid = pid;
	r->out_fd = out[0];
	r->err_fd = err[0];
	r->out = xstrdup("");
	r->err = xstrdup("");
	for (int i = 0; i < nkept; i++)
		free(kept[i]);
}

/* Reads what comes within wait_ms: the bytes read, -1 when both streams
 * are closed. */
static long run_read(struct th_run *r, int wait_ms)
{
	struct pollfd pfd[2] = {{.fd = r->out_fd, .events = POLLIN},
				{.fd = r->err_fd, .events = POLLIN}};
	long total = 0;

	if (r->out_fd < 0 && r->err_fd < 0)
		return -1;
	if (poll(pfd, 2, wait_ms) <= 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		int *fd = i ? &r->err_fd : &r->out_fd;
		char **buf = i ? &r->err : &r->out;
		size_t *len = i ? &r->err_len : &r->out_len;
		char chunk[4096];
		ssize_t n;

		if (*fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(*fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* a pty's master reads EIO once the child is gone */
			close(*fd);
			*fd = -1;
			continue;
		}
		*buf = xrealloc(*buf, *len + (size_t)n + 1);
		memcpy(*buf + *len, chunk, (size_t)n);
		*len += (size_t)n;
		(*buf)[*len] = '\0';
		total += n;
	}
	return total;
}

bool th_run_wait_for(struct th_run *r, const char *needle, bool err_too, double deadline_s)
{
	double deadline = th_now_s() + deadline_s;

	for (;;) {
		if (strstr(r->out, needle) || (err_too && strstr(r->err, needle)))
			return true;
		if (th_now_s() > deadline)
			return false;
		if (run_read(r, 50) < 0)
			th_pause_ms(50);
	}
}

int th_run_finish(struct th_run *r, double deadline_s)
{
	double deadline = th_now_s() + deadline_s;
	int status;

	/* bounded by the deadline */
	for (;;) {
		long n = run_read(r, 50);

		if (r->pid > 0 && waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			continue; /* read what it left once more */
		}
		/* gone, and nothing more came (a grandchild may hold a stream) */
		if (r->pid == 0 && n <= 0)
			return r->status;
		if (th_now_s() > deadline) {
			fprintf(stderr, "harness: a child did not end within %.0f s; killed\n",
				deadline_s);
			kill(r->pid, SIGKILL);
			waitpid(r->pid, NULL, 0);
			r->pid = 0;
			return -1;
		}
		if (n < 0)
			th_pause_ms(20);
	}
}

void th_run_free(struct th_run *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
	r->out_fd = r->err_fd = -1;
}

int th_tender(struct th_run *r, const char *const *args, const char *const *env)
{
	th_run_start(r, TN_BUILDDIR "/tender", args, env, false);
	return th_run_finish(r, 60);
}

/* ------------------------------------------------------------ agents */

/* The state of a process from /proc/PID/stat (0 when it is gone), its
 * name into comm, and its start time (field 22). */
static char proc_stat(pid_t pid, char comm[64], unsigned long long *start)
{
	char path[64], buf[1024];
	const char *open_paren, *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ')
		return 0;
	if (comm)
		snprintf(comm, 64, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	if (start) {
		/* fields 3.. follow ") "; the start time is field 22 */
		const char *p = close_paren + 2;

		*start = 0;
		for (int field = 3; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		*start = strtoull(p, NULL, 10);
	}
	return close_paren[2];
}

static bool live(char state)
{
	return state != 0 && state != 'Z' && state != 'X' && state != 'x';
}

static bool cwd_under(pid_t pid, const char *dir)
{
	char link[64], target[PATH_MAX];
	size_t dl = strlen(dir);
	ssize_t n;

	snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
	n = readlink(link, target, sizeof target - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	return strncmp(target, dir, dl) == 0 && (target[dl] == '/' || target[dl] == '\0');
}

static bool listed(const pid_t *pids, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* The live processes of a state directory (see th_agent_processes); uses
 * only libc, so that the guardian can call it too. */
static size_t state_processes(const char *state_dir, const char *comm, pid_t *pids, size_t max)
{
	char run[PATH_MAX];
	pid_t seen[1024];
	size_t nseen = 0, count = 0;
	DIR *d;
	struct dirent *de;

	/* the pid files, checked against the start time they record */
	snprintf(run, sizeof run, "%s/run", state_dir);
	if ((d = opendir(run))) {
		while ((de = readdir(d)) && nseen < 1024) {
			char path[PATH_MAX + 300], buf[128];
			unsigned long long want = 0, start = 0;
			long pid;
			ssize_t n;
			int fd;
			size_t len = strlen(de->d_name);

			if (len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", run, de->d_name);
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
				continue;
			n = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			if (sscanf(buf, "%ld %llu", &pid, &want) != 2 || pid <= 0)
				continue;
			if (live(proc_stat((pid_t)pid, NULL, &start)) && start == want &&
			    !listed(seen, nseen, (pid_t)pid))
				seen[nseen++] = (pid_t)pid;
		}
		closedir(d);
	}
	/* and every process working under the state directory */
	if ((d = opendir("/proc"))) {
		while ((de = readdir(d)) && nseen < 1024) {
			char *end;
			long pid = strtol(de->d_name, &end, 10);

			if (*end || pid <= 0 || pid == getpid() || listed(seen, nseen, (pid_t)pid))
				continue;
			if (cwd_under((pid_t)pid, state_dir) && live(proc_stat((pid_t)pid, NULL, NULL)))
				seen[nseen++] = (pid_t)pid;
		}
		closedir(d);
	}
	for (size_t i = 0; i < nseen; i++) {
		char name[64] = "";

		if (!live(proc_stat(seen[i], name, NULL)) || (comm && strcmp(name, comm) != 0))
			continue;
		if (count < max)
			pids[count] = seen[i];
		count++;
	}
	return count;
}

/* SIGKILLs the processes of a state directory, their groups too, until
 * none is left (bounded); returns how many the first pass found. */
static size_t kill_state_processes(const char *state_dir)
{
	pid_t pids[256];
	size_t first = 0;

	for (int pass = 0; pass < 500; pass++) {
		size_t n = state_processes(state_dir, NULL, pids, 256);

		if (pass == 0)
			first = n;
		if (n == 0)
			break;
		for (size_t i = 0; i < n && i < 256; i++) {
			kill(-pids[i], SIGKILL); /* bundles lead their own group */
			kill(pids[i], SIGKILL);
		}
		th_pause_ms(20);
	}
	return first;
}

/* ---- the guardian: the test program tells it, through a pipe, "+DIR"
 * for each agent's directory it makes and "-DIR" when it has cleaned one
 * up.  At the end of the pipe (the test program is gone, however it went)
 * the processes of every directory still listed are killed and the
 * directory removed. */
static int guard_fd = -1;

static void guardian(int fd)
{
	char *text = NULL;
	size_t len = 0;
	char buf[4096];
	ssize_t n;

	setsid(); /* a ^C to the test's process group is not for us */
	prctl(PR_SET_NAME, "th-guardian");
	for (int i = 3; i < 1024; i++)
		if (i != fd)
			close(i);
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		text = realloc(text, len + (size_t)n + 1);
		if (!text)
			_exit(1);
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
		text[len] = '\0';
	}
	for (char *line = text, *nl; line && *line; line = nl + 1) {
		bool forgotten = false;

		if (!(nl = strchr(line, '\n')))
			break;
		*nl = '\0';
		if (line[0] != '+')
			continue;
		/* a later "-DIR" cancels it */
		for (char *l = nl + 1, *e; *l && (e = strchr(l, '\n')); l = e + 1)
			if (l[0] == '-' && strncmp(l + 1, line + 1, (size_t)(e - l - 1)) == 0 &&
			    strlen(line + 1) == (size_t)(e - l - 1))
				forgotten = true;
		if (!forgotten) {
			char state[PATH_MAX];

			snprintf(state, sizeof state, "%s/state", line + 1);
			kill_state_processes(state);
			if (tn_remove_tree(line + 1, NULL) != 0) {
				/* nobody is left to tell */
			}
		}
	}
	_exit(0);
}

static void guard(char op, const char *dir)
{
	char *line;

	if (guard_fd < 0) {
		int p[2];
		pid_t pid;

		if (pipe2(p, O_CLOEXEC) != 0)
			fatal("pipe2 failed", NULL);
		pid = fork();
		if (pid < 0)
			fatal("fork failed", NULL);
		if (pid == 0) {
			close(p[1]);
			guardian(p[0]);
		}
		close(p[0]);
		guard_fd = p[1];
	}
	line = xasprintf("%c%s\n", op, dir);
	if (write(guard_fd, line, strlen(line)) != (ssize_t)strlen(line))
		fprintf(stderr, "harness: could not tell the guardian about %s\n", dir);
	free(line);
}

static void show_agent_log(const struct th_agent *a)
{
	char *log = NULL;
	size_t len = 0;

	if (a->log_path && tn_read_file(a->log_path, 1 << 20, &log, &len, NULL) == 0)
		fprintf(stderr, "--- agent log (%s)\n%s---\n", a->log_path, log);
	free(log);
}

static void agent_fatal(const char *what, const struct th_agent *a)
{
	fprintf(stderr, "harness: %s\n", what);
	show_agent_log(a);
	clean_up_all(false);
	abort();
}

static void kill_agent_now(struct th_agent *a)
{
	if (a->pid > 0) {
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
		a->pid = 0;
	}
}

static void clean_up_agents(bool show_logs)
{
	for (size_t i = 0; i < MAX_AGENTS; i++) {
		struct th_agent *a = owned_agents[i];

		if (!a)
			continue;
		owned_agents[i] = NULL;
		kill_agent_now(a);
		if (a->state_dir)
			kill_state_processes(a->state_dir);
		if (show_logs) {
			fprintf(stderr, "harness: an agent was not destroyed by the test\n");
			show_agent_log(a);
		}
		if (a->dir && tn_remove_tree(a->dir, NULL) != 0)
			fprintf(stderr, "harness: could not remove %s\n", a->dir);
		if (a->dir)
			guard('-', a->dir);
	}
}

static void track_agent(struct th_agent *a, bool on)
{
	register_exit();
	for (size_t i = 0; i < MAX_AGENTS; i++) {
		if (on && !owned_agents[i]) {
			owned_agents[i] = a;
			return;
		}
		if (!on && owned_agents[i] == a) {
			owned_agents[i] = NULL;
			return;
		}
	}
	if (on)
		agent_fatal("too many agents", a);
}

int th_port_block(int n)
{
	/* Below the kernel's ephemeral range (32768 and up by default). */
	enum { LOW = 20000, HIGH = 32000 };
	static int handed[256];
	static size_t nhanded;
	unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);

	for (int attempt = 0; attempt < 1000; attempt++) {
		int base = LOW + (int)(rand_r(&seed) % (unsigned)((HIGH - LOW - n) / n)) * n;
		bool ok = true;

		for (size_t i = 0; i < nhanded && ok; i++)
			if (base < handed[i] + n && handed[i] < base + n)
				ok = false;
		for (int p = 0; p < n && ok; p++) {
			struct sockaddr_in sa = {.sin_family = AF_INET};
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

			sa.sin_port = htons((uint16_t)(base + p));
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
				ok = false;
			if (fd >= 0)
				close(fd);
		}
		if (ok) {
			if (nhanded < 256)
				handed[nhanded++] = base;
			return base;
		}
	}
	fatal("no free block of ports", NULL);
	return 0;
}

static void agent_spawn(struct th_agent *a, const char *enroll_token)
{
	char port[16];
	const char *argv[64];
	size_t argc = 0;
	pid_t parent = getpid(), pid;

	snprintf(port, sizeof port, "%d", a->port_base);
	argv[argc++] = TN_BUILDDIR "/tender-agent";
	argv[argc++] = "--state";
	argv[argc++] = a->state_dir;
	if (enroll_token) {
		argv[argc++] = "--server";
		argv[argc++] = a->server_url;
		argv[argc++] = "--enroll-token";
		argv[argc++] = enroll_token;
	}
	argv[argc++] = "--port-base";
	argv[argc++] = port;
	argv[argc++] = "--poll-wait";
	argv[argc++] = "5";
	for (size_t i = 0; a->args && a->args[i] && argc < 62; i++)
		argv[argc++] = a->args[i];
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0)
		agent_fatal("fork failed", a);
	if (pid == 0) {
		int fd = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	a->pid = pid;
}

void th_agent_start(struct th_agent *a, const char *server_url, const char *enroll_token,
		    const char *const *extra_args)
{
	double deadline = th_now_s() + START_DEADLINE_S;
	char *identity;
	size_t n = 0;

	memset(a, 0, sizeof *a);
	a->dir = th_tmpdir();
	a->state_dir = xasprintf("%s/state", a->dir);
	a->log_path = xasprintf("%s/agent.log", a->dir);
	a->server_url = xstrdup(server_url);
	a->port_base = th_port_block(10);
	while (extra_args && extra_args[n])
		n++;
	a->args = xcalloc(n + 1, sizeof *a->args);
	for (size_t i = 0; i < n; i++)
		a->args[i] = xstrdup(extra_args[i]);
	track_agent(a, true);
	guard('+', a->dir);
	agent_spawn(a, enroll_token);

	identity = xasprintf("%s/agent.json", a->state_dir);
	for (;;) {
		char *text = NULL;
		size_t len = 0;
		int status;

		if (tn_read_file(identity, 1 << 16, &text, &len, NULL) == 0) {
			json_t *j = json_loadb(text, len, 0, NULL);
			const char *id = json_string_value(json_object_get(j, "target_id"));

			if (id)
				a->target_id = xstrdup(id);
			json_decref(j);
		}
		free(text);
		if (a->target_id)
			break;
		if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
			a->pid = 0;
			agent_fatal("tender-agent exited before it enrolled", a);
		}
		if (th_now_s() > deadline)
			agent_fatal("tender-agent did not enroll within the deadline", a);
		th_pause_ms(20);
	}
	free(identity);
}

void th_agent_restart(struct th_agent *a)
{
	if (a->pid > 0)
		th_agent_stop(a);
	agent_spawn(a, NULL);
}

int th_agent_stop(struct th_agent *a)
{
	double deadline = th_now_s() + STOP_DEADLINE_S;
	int status = 0;

	if (a->pid <= 0)
		return -1;
	kill(a->pid, SIGTERM);
	while (waitpid(a->pid, &status, WNOHANG) != a->pid) {
		if (th_now_s() > deadline) {
			kill_agent_now(a);
			agent_fatal("tender-agent did not stop on SIGTERM within the deadline", a);
		}
		th_pause_ms(10);
	}
	a->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void th_agent_kill9(struct th_agent *a)
{
	kill_agent_now(a);
}

void th_agent_destroy(struct th_agent *a)
{
	if (!a->dir)
		return;
	kill_agent_now(a);
	kill_state_processes(a->state_dir);
	th_rmtree(a->dir);
	guard('-', a->dir);
	track_agent(a, false);
	for (size_t i = 0; a->args && a->args[i]; i++)
		free(a->args[i]);
	free(a->args);
	free(a->dir);
	free(a->state_dir);
	free(a->log_path);
	free(a->server_url);
	free(a->target_id);
	memset(a, 0, sizeof *a);
}

size_t th_agent_processes(const struct th_agent *a, const char *comm, pid_t *pids, size_t max)
{
	return state_processes(a->state_dir, comm, pids, max);
}

size_t th_agent_kill_bundles(struct th_agent *a)
{
	return kill_state_processes(a->state_dir);
}

char *th_agent_log(const struct th_agent *a)
{
	char *log = NULL;
	size_t len = 0;

	if (tn_read_file(a->log_path, 64u << 20, &log, &len, NULL) != 0)
		return xstrdup("");
	return log;
}

bool th_agent_log_has(const struct th_agent *a, const char *needle)
{
	char *log = th_agent_log(a);
	bool has = strstr(log, needle) != NULL;

	free(log);
	return has;
}
