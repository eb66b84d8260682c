/* fleet.c - see fleet.h. */
#include "fleet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "nodes.h"
#include "xalloc.h"

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

void th_fleet_dump(struct th_fleet *f)
{
	struct th_request req = {.token = f->srv.admin_token};
	struct th_response r;
	char *text, *stat = f->with_lb ? th_haproxy_cmd(&f->h, "show stat") : NULL;
	char *log = NULL;
	size_t len = 0;

	th_http(&f->srv, "/api/v1/targets?cluster=educa", &req, &r);
	text = r.json ? json_dumps(r.json, JSON_INDENT(1)) : xstrdup(r.body ? r.body : "");
	fprintf(stderr, "# targets: %s\n", text);
	if (f->with_lb)
		fprintf(stderr, "# haproxy: %s\n", stat ? stat : "(unreachable)");
	if (tn_read_file(f->srv.log_path, 1 << 22, &log, &len, NULL) == 0)
		fprintf(stderr, "# server log (end):\n%s\n", len > 8000 ? log + len - 8000 : log);
	free(log);
	free(stat);
	free(text);
	th_response_free(&r);
}

void th_fleet_fail(struct th_fleet *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fleet: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	th_fleet_dump(f);
	abort();
}

void th_fleet_call(struct th_fleet *f, const char *method, const char *path, const char *body,
		   struct th_response *r)
{
	th_json(&f->srv, method, path, f->srv.admin_token, body, r);
}

json_t *th_fleet_get(struct th_fleet *f, const char *path)
{
	struct th_request req = {.token = f->srv.admin_token};
	struct th_response r;
	json_t *out;

	th_http(&f->srv, path, &req, &r);
	if (r.status != 200)
		th_fleet_fail(f, "GET %s: %ld %s", path, r.status, r.body);
	out = json_incref(r.json);
	th_response_free(&r);
	return out;
}

void th_fleet_upload(struct th_fleet *f, const char *name)
{
	char *zip = xasprintf("%s/distributions/%s.zip", TN_BUILDDIR, name);
	struct th_request rq = {.method = "POST",
				.token = f->srv.admin_token,
				.content_type = "application/zip",
				.upload_file = zip};
	struct th_response r;

	th_http(&f->srv, "/api/v1/distributions", &rq, &r);
	if (r.status != 201)
		th_fleet_fail(f, "upload %s: %ld %s", zip, r.status, r.body);
	th_response_free(&r);
	free(zip);
}

json_t *th_fleet_wait_running(struct th_fleet *f, size_t n)
{
	double deadline = th_now_s() + TH_FLEET_NODE_DEADLINE_S;

	for (;;) {
		json_t *all = th_fleet_get(f, "/api/v1/targets?cluster=educa&limit=500");
		json_t *live = json_array(), *t;
		bool ok = true;
		size_t i;

		json_array_foreach(json_object_get(all, "items"), i, t) {
			const char *actual = th_str(t, "actual");

			if (is(th_str(t, "state"), "removed"))
				continue;
			json_array_append(live, t);
			if (!is(th_str(t, "state"), "running") || !is(th_str(t, "health"), "healthy") ||
			    (!is(th_str(t, "phase"), "idle") && !is(th_str(t, "phase"), "prepared")) ||
			    !is(actual, th_str(json_object_get(t, "desired"), "release")))
				ok = false;
		}
		json_decref(all);
		if (ok && json_array_size(live) == n)
			return live;
		json_decref(live);
		if (th_now_s() > deadline)
			th_fleet_fail(f, "%zu targets not running and healthy within %d s", n,
				      TH_FLEET_NODE_DEADLINE_S);
		th_pause_ms(100);
	}
}

double th_fleet_wait_members(struct th_fleet *f, size_t n)
{
	double start = th_now_s(), deadline = start + TH_FLEET_LB_DEADLINE_S;

	for (;;) {
		size_t up = 0, all = th_haproxy_members(&f->h, &up);

		if (all == n && up == n)
			return th_now_s() - start;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "the backend has %zu members (%zu up), not %zu up, after %d s",
				      all, up, n, TH_FLEET_LB_DEADLINE_S);
		th_pause_ms(50);
	}
}

json_t *th_fleet_post(struct th_fleet *f, const char *path, const char *body, long want)
{
	struct th_response r;
	json_t *out;

	th_fleet_call(f, "POST", path, body, &r);
	if (r.status != want)
		th_fleet_fail(f, "POST %s %s: want %ld, got %ld %s", path, body ? body : "", want,
			      r.status, r.body);
	out = json_incref(r.json);
	th_response_free(&r);
	return out;
}

char *th_fleet_rollout(struct th_fleet *f, const char *dist, const char *strategy)
{
	char *body = xasprintf("{\"cluster\": \"educa\", \"distribution\": \"%s\", \"strategy\": %s}",
			       dist, strategy);
	json_t *r = th_fleet_post(f, "/api/v1/rollouts", body, 201);
	char *id = xstrdup(th_str(r, "id"));

	if (!th_str(r, "state") || strcmp(th_str(r, "state"), "pending_approval") != 0)
		th_fleet_fail(f, "rollout %s: state %s, not pending_approval", id, th_str(r, "state"));
	json_decref(r);
	free(body);
	return id;
}

void th_fleet_act(struct th_fleet *f, const char *id, const char *verb)
{
	char *path = xasprintf("/api/v1/rollouts/%s/%s", id, verb);

	json_decref(th_fleet_post(f, path, NULL, 200));
	free(path);
}

json_t *th_fleet_wait_rollout(struct th_fleet *f, const char *id, const char *states)
{
	double deadline = th_now_s() + 2 * TH_FLEET_NODE_DEADLINE_S;
	char *path = xasprintf("/api/v1/rollouts/%s", id);

	for (;;) {
		json_t *r = th_fleet_get(f, path);
		const char *state = th_str(r, "state");
		size_t len = state ? strlen(state) : 0;

		for (const char *p = states; state && *p;) {
			size_t n = strcspn(p, "|");

			if (n == len && strncmp(p, state, n) == 0) {
				free(path);
				return r;
			}
			p += n + (p[n] == '|');
		}
		if (th_now_s() > deadline) {
			char *text = json_dumps(r, JSON_INDENT(1));

			fprintf(stderr, "# rollout: %s\n", text);
			free(text);
			th_fleet_fail(f, "rollout %s not %s within %d s", id, states,
				      2 * TH_FLEET_NODE_DEADLINE_S);
		}
		json_decref(r);
		th_pause_ms(100);
	}
}

static void arg(struct th_fleet *f, char *value)
{
	f->args[f->nargs++] = value;
	f->args[f->nargs] = NULL;
}

void th_fleet_start(struct th_fleet *f, unsigned range, bool with_lb,
		    const char *const *uploads, const char *dist, size_t n)
{
	th_fleet_start_ports(f, range, 300, with_lb, uploads, dist, n);
}

void th_fleet_start_ports(struct th_fleet *f, unsigned range, unsigned ports, bool with_lb,
			  const char *const *uploads, const char *dist, size_t n)
{
	/* ports ports of 20000-31999 starting at a multiple of 300, apart for
	 * each program and range (other test programs' nodes take ports in
	 * there at the same time) */
	unsigned slots = ports < 12000 ? (12000u - ports) / 300u + 1u : 1u;
	unsigned low = 20000 + (((unsigned)getpid() * 7u + range * 13u) % slots) * 300u;
	struct th_response r;
	char *body, *lb;
	json_t *live;

	memset(f, 0, sizeof *f);
	f->with_lb = with_lb;
	if (with_lb)
		th_haproxy_start(&f->h, "educa");
	arg(f, xstrdup("--provider"));
	arg(f, xasprintf("local:ports=%u-%u", low, low + ports - 1));
	arg(f, xstrdup("--lb-interval"));
	arg(f, xstrdup("300"));
	th_server_start(&f->srv, (const char *const *)f->args);
	th_guard_dir(f->srv.data_dir);
	for (size_t i = 0; uploads && uploads[i]; i++)
		th_fleet_upload(f, uploads[i]);
	lb = with_lb ? xasprintf("{\"driver\": \"haproxy\", \"admin\": \"%s\", \"backend\": "
				 "\"educa\"}",
				 f->h.admin)
		     : xstrdup("{\"driver\": \"none\"}");
	body = xasprintf("{\"name\": \"educa\", \"distribution\": \"%s\", \"lb\": %s}", dist, lb);
	th_fleet_call(f, "POST", "/api/v1/clusters", body, &r);
	if (r.status != 201)
		th_fleet_fail(f, "create the cluster: %ld %s", r.status, r.body);
	th_response_free(&r);
	free(body);
	free(lb);
	body = xasprintf("{\"cluster\": \"educa\", \"count\": %zu}", n);
	th_fleet_call(f, "POST", "/api/v1/targets", body, &r);
	if (r.status != 202)
		th_fleet_fail(f, "create %zu targets: %ld %s", n, r.status, r.body);
	th_response_free(&r);
	free(body);
	live = th_fleet_wait_running(f, n);
	json_decref(live);
	if (with_lb)
		th_fleet_wait_members(f, n);
}

bool th_fleet_destroy(struct th_fleet *f)
{
	bool clean = true;

	if (!f)
		return true;
	if (f->srv.data_dir && th_kill_under(f->srv.data_dir))
		fprintf(stderr, "# processes under %s survived\n", f->srv.data_dir);
	if (f->srv.pid > 0)
		clean = th_server_exited_cleanly(&f->srv, th_server_stop(&f->srv));
	th_server_destroy(&f->srv);
	th_haproxy_destroy(&f->h);
	for (size_t i = 0; i < f->nargs; i++)
		free(f->args[i]);
	memset(f, 0, sizeof *f);
	return clean;
}
