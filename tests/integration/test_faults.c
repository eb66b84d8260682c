/* test_faults.c - faults that the other integration tests do not cause,
 * with real processes (a tender-server, local-provider agents running the
 * sample application, a real HAProxy with traffic through it):
 *   - the disk full under the server's data directory: an upload bigger
 *     than the free space, then the database itself out of space;
 *   - the server unreachable for a minute (kill -9, then SIGSTOP: a hung
 *     server) while the targets keep serving through HAProxy;
 *   - a target's whole node vanishing in the middle of a rolling update.
 * After each fault: what was committed before is still there, the store
 * passes PRAGMA integrity_check once the server stopped, and every target
 * runs exactly one release, the one it reports (the load generator's
 * answers carry the version).  FAULTS_OUTAGE_S sets the outage (default
 * 60 s).  Every wait polls with a deadline; every process started is
 * killed and the file system mounted is unmounted, even on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bundles.h"
#include "fleet.h"
#include "haproxy.h"
#include "dbcheck.h"
#include "harness.h"
#include "nodes.h"
#include "xalloc.h"

#define TARGETS 3
#define SETTLE_DEADLINE_S 90

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The wall clock as the server writes times (RFC 3339 UTC), which sort
 * as strings. */
static void utc_now(char *buf, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void assert_db_consistent(const char *db_path)
{
	char why[512];

	if (!th_db_consistent(db_path, why, sizeof why))
		fail_msg("%s", why);
}

/* ------------------------------------------------------------ the fleet */

/* Kept here, not in *state: cmocka gives each case the group's state, and
 * without a group setup that is NULL again for every case. */
static struct th_fleet *the_fleet;

static struct th_fleet *fleet(void)
{
	static const char *const uploads[] = {"educa-1.0", "educa-1.1", NULL};

	if (the_fleet)
		return the_fleet;
	the_fleet = xcalloc(1, sizeof *the_fleet);
	th_fleet_start(the_fleet, 5, true, uploads, "educa@1.0", TARGETS);
	return the_fleet;
}

/* The mount of the disk-full case, kept here so that an aborted test
 * still unmounts it at exit. */
static char *the_mount;

static void unmount_disk(void)
{
	if (!the_mount)
		return;
	if (umount2(the_mount, MNT_DETACH) != 0)
		fprintf(stderr, "# umount %s: %s\n", the_mount, strerror(errno));
	rmdir(the_mount);
	free(the_mount);
	the_mount = NULL;
}

static int teardown(void **state)
{
	bool clean = th_fleet_destroy(the_fleet);

	(void)state;
	free(the_fleet);
	the_fleet = NULL;
	unmount_disk();
	return clean ? 0 : -1;
}

/* The number of items of a list path (one page of up to 500). */
static size_t count_items(struct th_fleet *f, const char *path)
{
	json_t *l = th_fleet_get(f, path);
	size_t n = json_array_size(json_object_get(l, "items"));

	json_decref(l);
	return n;
}

/* "educa@1.1.0+abc" → "1.1.0" into buf. */
static const char *release_version(const char *release, char *buf, size_t size)
{
	const char *at = release ? strchr(release, '@') : NULL;
	size_t n = at ? strcspn(at + 1, "+") : 0;

	snprintf(buf, size, "%.*s", (int)n, at ? at + 1 : "");
	return buf;
}

/* Every live target answers through HAProxy with the version of the
 * release it reports as actual, and nothing else: traffic until each of
 * them answered a few times (bounded), then every answer is checked. */
static void assert_serving_what_reported(struct th_fleet *f, json_t *live)
{
	struct th_load *l = th_load_start(f->h.front_port, 2, 5);
	double deadline = th_now_s() + SETTLE_DEADLINE_S;
	const struct th_hit *hits;
	size_t n, i, total, failed;
	json_t *t;

	for (;;) {
		bool all = true;

		th_load_peek(l, &hits, &n);
		json_array_foreach(live, i, t)
		{
			size_t seen = 0;

			for (size_t k = 0; k < n; k++)
				seen += is(hits[k].target, th_str(t, "id"));
			all &= seen >= 3;
		}
		if (all)
			break;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "not every target answered through HAProxy");
		th_pause_ms(50);
	}
	th_load_stop(l, &hits, &n);
	th_load_counts(l, &total, &failed);
	assert_int_equal(failed, 0);
	for (size_t k = 0; k < n; k++) {
		bool known = false;

		json_array_foreach(live, i, t)
		{
			char version[32], want[64];

			if (!is(hits[k].target, th_str(t, "id")))
				continue;
			known = true;
			snprintf(want, sizeof want, "educa-web %s ",
				 release_version(th_str(t, "actual"), version, sizeof version));
			if (!starts(hits[k].body, want))
				th_fleet_fail(f, "target %s reports %s, answers \"%s\"",
					      th_str(t, "id"), th_str(t, "actual"), hits[k].body);
		}
		if (!known)
			th_fleet_fail(f, "an answer from %s, not a live target", hits[k].target);
	}
	th_load_free(l);
}

/* What was committed before a fault, checked after it. */
struct committed {
	size_t bundles, distributions, rollouts;
};

static struct committed committed_now(struct th_fleet *f)
{
	struct committed c = {
	    count_items(f, "/api/v1/bundles?limit=500"),
	    count_items(f, "/api/v1/distributions?limit=500"),
	    count_items(f, "/api/v1/rollouts?cluster=educa&limit=500"),
	};

	return c;
}

/* After a fault: the committed data is there, the store passes
 * integrity_check once the server stopped (cleanly), and every target of
 * n runs exactly the release it reports. */
static void assert_after_fault(struct th_fleet *f, const struct committed *before, size_t n)
{
	struct committed now = committed_now(f);
	char *db = xasprintf("%s/var/tender.db", f->srv.data_dir);
	json_t *live;

	assert_true(now.bundles >= before->bundles);
	assert_true(now.distributions >= before->distributions);
	assert_true(now.rollouts >= before->rollouts);
	assert_true(th_server_exited_cleanly(&f->srv, th_server_stop(&f->srv)));
	assert_db_consistent(db);
	th_server_restart(&f->srv, (const char *const *)f->args);
	now = committed_now(f);
	assert_true(now.bundles >= before->bundles);
	assert_true(now.distributions >= before->distributions);
	live = th_fleet_wait_running(f, n);
	th_fleet_wait_members(f, n);
	assert_serving_what_reported(f, live);
	json_decref(live);
	free(db);
}

/* ------------------------------------------------------------ disk full */

/* A directory for the server's data on a small file system: a tmpfs of
 * size_mib mounted here, or (mounting refused) a plain directory, and
 * then *fsize_limit says the fallback (RLIMIT_FSIZE) must be used. */
static char *small_disk(unsigned size_mib, bool *fsize_limit)
{
	char *dir = th_tmpdir();
	char opts[32];

	snprintf(opts, sizeof opts, "size=%um,mode=0700", size_mib);
	*fsize_limit = mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0;
	if (*fsize_limit)
		printf("# mounting a tmpfs refused (%s): RLIMIT_FSIZE of %u MiB instead\n",
		       strerror(errno), size_mib);
	else {
		printf("# the server's data on a tmpfs of %u MiB\n", size_mib);
		the_mount = xstrdup(dir);
	}
	return dir;
}

/* Fills the file system of dir with one file until no byte is left;
 * returns its path (caller unlinks and frees). */
static char *fill_disk(const char *dir)
{
	static char block[65536];
	char *path = xasprintf("%s/filler", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t chunk = sizeof block;

	assert_true(fd >= 0);
	memset(block, 0x5a, sizeof block);
	while (chunk > 0) {
		ssize_t w = write(fd, block, chunk);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			chunk /= 2; /* ENOSPC (or EFBIG): smaller writes for the last bytes */
	}
	close(fd);
	return path;
}

static void upload_bundle(struct th_server *s, const struct buf *zip, struct th_response *r)
{
	struct th_request rq = {.method = "POST",
				.token = s->admin_token,
				.content_type = "application/zip",
				.body = zip->p,
				.len = zip->len};

	th_http(s, "/api/v1/bundles", &rq, r);
}

/* A bundle whose payload is size bytes that do not compress. */
static struct buf big_bundle(const char *name, size_t size)
{
	unsigned char *payload = xmalloc(size);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct zentry e = {.name = "payload.bin", .data = payload, .len = size};
	struct buf zip;
	char *manifest = xasprintf("{\"name\": \"%s\", \"version\": \"1.0\"}", name);

	for (size_t i = 0; i < size; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		payload[i] = (unsigned char)x;
	}
	zip = th_bundle_zip(manifest, &e, 1);
	free(manifest);
	free(payload);
	return zip;
}

static void assert_no_space_error(const struct th_response *r, const char *what)
{
	if (r->status != 507 || !is(th_error_code(r), "no_space") ||
	    !strstr(th_error_message(r), "no space left on the server's disk"))
		fail_msg("%s: want 507 no_space \"no space left on the server's disk\", got %ld %s",
			 what, r->status, r->body);
}

static void test_disk_full(void **state)
{
	struct th_server s;
	bool fsize_limit = false;
	char *disk = small_disk(24, &fsize_limit);
	char *data = xasprintf("%s/var", disk);
	char *blobs = xasprintf("%s/blobs/sha256", data), *tmp = xasprintf("%s/blobs/tmp", data);
	char *db = xasprintf("%s/tender.db", data);
	const char *args[] = {"--data", data, NULL};
	struct buf small = th_simple_bundle("org.faults.small", "1.0", NULL, "before");
	struct buf big = big_bundle("org.faults.big", 40u << 20);
	struct buf after = th_simple_bundle("org.faults.after", "1.0", NULL, "after");
	struct rlimit old_fsize;
	struct th_response r;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_xfsz;
	char *filler;
	size_t bundles_before, full_at = 0;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_fsize), 0);
	if (fsize_limit) {
		/* the server inherits both: a write past the limit fails with
		 * EFBIG instead of killing it */
		struct rlimit lim = {24u << 20, old_fsize.rlim_max};

		assert_int_equal(sigaction(SIGXFSZ, &ign, &old_xfsz), 0);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	}
	th_server_start(&s, args);

	/* committed before the fault */
	upload_bundle(&s, &small, &r);
	assert_int_equal(r.status, 201);
	th_response_free(&r);
	bundles_before = th_count_files(blobs);

	/* an upload bigger than the free space */
	upload_bundle(&s, &big, &r);
	printf("# upload of %zu bytes to a %u MiB disk: %ld %s\n", big.len, 24u, r.status, r.body);
	if (fsize_limit)
		assert_int_equal(r.status, 413); /* EFBIG: the limit is per file */
	else
		assert_no_space_error(&r, "the big upload");
	th_response_free(&r);
	assert_int_equal(th_count_files(tmp), 0);
	assert_int_equal(th_count_files(blobs), bundles_before);
	th_json(&s, "GET", "/api/v1/bundles/org.faults.big/1.0", s.admin_token, NULL, &r);
	assert_int_equal(r.status, 404);
	th_response_free(&r);

	/* a distribution archive that fits, but not once unpacked and staged */
	if (!fsize_limit) {
		struct statvfs fs;
		size_t files = th_count_files(data), member_size;
		struct buf member, dist;
		struct th_member m = {"big.zip", {0}};
		struct th_request rq = {
		    .method = "POST", .token = s.admin_token, .content_type = "application/zip"};

		assert_int_equal(statvfs(data, &fs), 0);
		member_size = (size_t)fs.f_bavail * fs.f_frsize * 6 / 10;
		member = big_bundle("org.faults.member", member_size);
		m.zip = member;
		dist = th_distribution_zip(
		    "{\"name\": \"big\", \"version\": \"1.0\", \"bundles\": "
		    "[{\"name\": \"org.faults.member\", \"version\": \"1.0\"}]}",
		    &m, 1);
		rq.body = dist.p;
		rq.len = dist.len;
		th_http(&s, "/api/v1/distributions", &rq, &r);
		printf("# a distribution of %zu bytes with %llu bytes free: %ld %s\n", dist.len,
		       (unsigned long long)fs.f_bavail * fs.f_frsize, r.status, r.body);
		assert_no_space_error(&r, "the distribution upload");
		th_response_free(&r);
		assert_int_equal(th_count_files(data), files);
		th_json(&s, "GET", "/api/v1/distributions/big/1.0", s.admin_token, NULL, &r);
		assert_int_equal(r.status, 404);
		th_response_free(&r);
		th_json(&s, "GET", "/api/v1/bundles/org.faults.member/1.0", s.admin_token, NULL,
			&r);
		assert_int_equal(r.status, 404);
		th_response_free(&r);
		free(member.p);
		free(dist.p);
	}

	/* the server keeps serving, and a smaller upload succeeds */
	th_json(&s, "GET", "/healthz", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	th_response_free(&r);
	upload_bundle(&s, &after, &r);
	assert_int_equal(r.status, 201);
	th_response_free(&r);

	if (!fsize_limit) {
		/* the database out of space: writes until one fails, each
		 * either kept (201) or refused with 507 */
		filler = fill_disk(disk);
		for (size_t i = 0; i < 20000 && !full_at; i++) {
			char *body = xasprintf("{\"name\": \"fill-%zu\", \"role\": \"viewer\"}", i);

			th_json(&s, "POST", "/api/v1/tokens", s.admin_token, body, &r);
			free(body);
			if (r.status == 507) {
				assert_no_space_error(&r, "a token created on a full disk");
				printf("# the database full after %zu more writes: %ld %s\n", i,
				       r.status, r.body);
				full_at = i + 1;
			} else if (r.status != 201) {
				fail_msg("a token created on a full disk: %ld %s", r.status,
					 r.body);
			}
			th_response_free(&r);
		}
		assert_true(full_at > 0);
		/* reads still answer while the disk is full */
		th_json(&s, "GET", "/api/v1/bundles/org.faults.small/1.0", s.admin_token, NULL, &r);
		assert_int_equal(r.status, 200);
		th_response_free(&r);
		/* space again: writes work again */
		assert_int_equal(unlink(filler), 0);
		free(filler);
		th_json(&s, "POST", "/api/v1/tokens", s.admin_token,
			"{\"name\": \"after-full\", \"role\": \"viewer\"}", &r);
		assert_int_equal(r.status, 201);
		th_response_free(&r);
	}

	assert_true(th_server_exited_cleanly(&s, th_server_stop(&s)));
	assert_db_consistent(db);
	th_server_restart(&s, args);
	th_json(&s, "GET", "/api/v1/bundles/org.faults.small/1.0", s.admin_token, NULL, &r);
	assert_int_equal(r.status, 200);
	th_response_free(&r);
	th_json(&s, "GET", "/api/v1/bundles/org.faults.after/1.0", s.admin_token, NULL, &r);
	assert_int_equal(r.status, 200);
	th_response_free(&r);
	assert_true(th_server_exited_cleanly(&s, th_server_stop(&s)));
	th_server_destroy(&s);

	if (fsize_limit) {
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_fsize), 0);
		assert_int_equal(sigaction(SIGXFSZ, &old_xfsz, NULL), 0);
		th_rmtree(disk);
	} else {
		unmount_disk();
		rmdir(disk);
	}
	free(small.p);
	free(big.p);
	free(after.p);
	free(db);
	free(tmp);
	free(blobs);
	free(data);
	free(disk);
}

/* ------------------------------------------------------------ server unreachable */

static unsigned outage_s(void)
{
	const char *v = getenv("FAULTS_OUTAGE_S");
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 60;

	return v && (*end || n == 0 || n > 3600) ? 60 : (unsigned)n;
}

/* For the outage: every member of the backend stays UP and no request
 * fails; returns when it is over. */
static void ride_out(struct th_fleet *f, struct th_load *l, unsigned seconds)
{
	double end = th_now_s() + seconds;
	size_t total, failed, up, all;

	while (th_now_s() < end) {
		all = th_haproxy_members(&f->h, &up);
		th_load_counts(l, &total, &failed);
		if (all != TARGETS || up != TARGETS || failed != 0)
			th_fleet_fail(f,
				      "during the outage: %zu members, %zu up; %zu of %zu "
				      "requests failed",
				      all, up, failed, total);
		th_pause_ms(500);
	}
}

/* Once every target polled again (last_seen at or after since) and none
 * is stale. */
static void wait_polling_again(struct th_fleet *f, const char *since)
{
	double deadline = th_now_s() + SETTLE_DEADLINE_S;

	for (;;) {
		json_t *all = th_fleet_get(f, "/api/v1/targets?cluster=educa&limit=500"), *t;
		size_t i, fresh = 0;

		json_array_foreach(json_object_get(all, "items"), i, t)
		{
			const char *seen = th_str(t, "last_seen");

			fresh += seen && strcmp(seen, since) >= 0 && !is(th_str(t, "health"), "stale");
		}
		json_decref(all);
		if (fresh == TARGETS)
			return;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "%zu of %d targets polled since %s", fresh, TARGETS,
				      since);
		th_pause_ms(200);
	}
}

static void test_server_unreachable(void **state)
{
	struct th_fleet *f = fleet();
	struct committed before = committed_now(f);
	struct th_load *l = th_load_start(f->h.front_port, 2, 5);
	unsigned seconds = outage_s();
	size_t total, failed, at_kill, at_stop;
	char since[32];
	json_t *r;
	char *id;

	(void)state;
	/* the server dead */
	th_server_kill9(&f->srv);
	th_load_counts(l, &at_kill, &failed);
	ride_out(f, l, seconds);
	th_load_counts(l, &total, &failed);
	printf("# server killed for %u s: %zu requests through HAProxy meanwhile, %zu failed\n",
	       seconds, total - at_kill, failed);
	utc_now(since, sizeof since);
	th_server_restart(&f->srv, (const char *const *)f->args);
	wait_polling_again(f, since);

	/* the server hung: it holds its connections and answers nothing */
	at_stop = total;
	assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
	ride_out(f, l, seconds);
	assert_int_equal(kill(f->srv.pid, SIGCONT), 0);
	th_load_counts(l, &total, &failed);
	printf("# server stopped (SIGSTOP) for %u s: %zu requests meanwhile, %zu failed\n", seconds,
	       total - at_stop, failed);
	utc_now(since, sizeof since);
	wait_polling_again(f, since);

	/* and a rollout afterwards succeeds */
	id = th_fleet_rollout(f, "educa@1.1", "{\"batch_size\": 1}");
	th_fleet_act(f, id, "approve");
	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back");
	assert_string_equal(th_str(r, "state"), "succeeded");
	json_decref(r);
	json_decref(th_fleet_wait_running(f, TARGETS));
	th_fleet_wait_members(f, TARGETS);
	{
		const struct th_hit *hits;
		size_t n;

		th_load_stop(l, &hits, &n);
	}
	th_load_counts(l, &total, &failed);
	printf("# the whole case: %zu requests through HAProxy, %zu failed\n", total, failed);
	assert_int_equal(failed, 0);
	th_load_free(l);
	before.rollouts++;
	assert_after_fault(f, &before, TARGETS);
	free(id);
}

/* ------------------------------------------------------------ a node vanishes */

/* The rollout's targets in state (one of a '|' list of one name). */
static const char *target_in(json_t *r, const char *state)
{
	json_t *b, *t;
	size_t i, j;

	json_array_foreach(json_object_get(r, "batches"), i, b)
	{
		json_array_foreach(json_object_get(b, "targets"), j, t)
		{
			if (is(th_str(t, "state"), state))
				return th_str(t, "id");
		}
	}
	return NULL;
}

/* Waits until batch index of rollout id has a target switching that
 * HAProxy no longer sends new requests to (DRAIN or MAINT): its id
 * (caller frees). */
static char *wait_drained_switch(struct th_fleet *f, const char *id, size_t index)
{
	double deadline = th_now_s() + SETTLE_DEADLINE_S;
	char *path = xasprintf("/api/v1/rollouts/%s", id);

	for (;;) {
		json_t *r = th_fleet_get(f, path);
		json_t *b = json_array_get(json_object_get(r, "batches"), index), *t;
		char *victim = NULL;
		size_t j;

		json_array_foreach(json_object_get(b, "targets"), j, t)
		{
			char status[32] = "";
			long sessions = -1;

			if (is(th_str(t, "state"), "switching") &&
			    th_haproxy_server(&f->h, th_str(t, "id"), status, sizeof status,
					      &sessions) &&
			    (starts(status, "DRAIN") || starts(status, "MAINT")) && sessions == 0)
				victim = xstrdup(th_str(t, "id"));
		}
		json_decref(r);
		if (victim) {
			free(path);
			return victim;
		}
		if (th_now_s() > deadline)
			th_fleet_fail(f, "rollout %s: no drained target switching in batch %zu", id,
				      index);
		th_pause_ms(20);
	}
}

static json_t *target_get(struct th_fleet *f, const char *tid)
{
	char *path = xasprintf("/api/v1/targets/%s", tid);
	json_t *t = th_fleet_get(f, path);

	free(path);
	return t;
}

static void test_node_vanishes_mid_batch(void **state)
{
	struct th_fleet *f = fleet();
	struct committed before = committed_now(f);
	json_t *start = th_fleet_wait_running(f, TARGETS), *r, *t, *live;
	struct th_load *l = th_load_start(f->h.front_port, 2, 5);
	char *id, *victim, *node, *path;
	size_t total, failed, i;
	double deadline;
	struct th_response resp;
	const char *first;
	char version[32];

	(void)state;
	release_version(th_str(json_array_get(start, 0), "actual"), version, sizeof version);
	id = th_fleet_rollout(f, is(version, "1.1.0") ? "educa@1.0" : "educa@1.1",
		     "{\"batch_size\": 1, \"health_timeout_s\": 10, \"failure_threshold\": 1, "
		     "\"auto_rollback\": true}");
	th_fleet_act(f, id, "approve");
	/* the second batch's target dies with its whole node while it switches,
	 * after the first batch's switched: the rollback has something to undo */
	victim = wait_drained_switch(f, id, 1);
	node = xasprintf("%s/var/nodes/%s", f->srv.data_dir, victim);
	assert_int_equal(th_kill_under(node), 0);
	th_rmtree(node);
	printf("# node %s killed and removed while switching\n", victim);

	r = th_fleet_wait_rollout(f, id, "succeeded|failed|rolled_back|aborted");
	assert_string_equal(th_str(r, "state"), "rolled_back");
	first = target_in(r, "reverted");
	assert_non_null(first);
	{
		/* the victim: failed, for want of a result in time */
		json_t *b = json_array_get(json_object_get(r, "batches"), 1);

		json_array_foreach(json_object_get(b, "targets"), i, t)
		{
			if (!is(th_str(t, "id"), victim))
				continue;
			assert_string_equal(th_str(t, "state"), "failed");
			assert_non_null(strstr(th_str(t, "message"), "health_timeout_s"));
		}
	}
	json_decref(r);

	/* the victim shows stale once it has been silent long enough */
	deadline = th_now_s() + SETTLE_DEADLINE_S;
	for (;;) {
		t = target_get(f, victim);
		if (is(th_str(t, "health"), "stale"))
			break;
		json_decref(t);
		if (th_now_s() > deadline)
			th_fleet_fail(f, "target %s never stale", victim);
		th_pause_ms(500);
	}
	json_decref(t);

	/* the others: on the release they started with, in service */
	deadline = th_now_s() + SETTLE_DEADLINE_S;
	for (;;) {
		size_t ok = 0, n = 0;
		json_t *all = th_fleet_get(f, "/api/v1/targets?cluster=educa&limit=500");

		json_array_foreach(json_object_get(all, "items"), i, t)
		{
			char v[32];

			if (is(th_str(t, "id"), victim) || is(th_str(t, "state"), "removed"))
				continue;
			n++;
			ok += is(th_str(t, "health"), "healthy") && is(th_str(t, "phase"), "idle") &&
			      is(release_version(th_str(t, "actual"), v, sizeof v), version) &&
			      is(th_str(t, "actual"), th_str(json_object_get(t, "desired"), "release"));
		}
		json_decref(all);
		if (ok == TARGETS - 1 && n == TARGETS - 1)
			break;
		if (th_now_s() > deadline)
			th_fleet_fail(f, "%zu of %d targets back on %s", ok, TARGETS - 1, version);
		th_pause_ms(200);
	}

	/* the vanished node goes with force */
	path = xasprintf("/api/v1/targets/%s?force=true", victim);
	th_fleet_call(f, "DELETE", path, NULL, &resp);
	if (resp.status != 202)
		th_fleet_fail(f, "DELETE %s: %ld %s", path, resp.status, resp.body);
	th_response_free(&resp);
	deadline = th_now_s() + SETTLE_DEADLINE_S;
	for (;;) {
		t = target_get(f, victim);
		if (is(th_str(t, "state"), "removed"))
			break;
		json_decref(t);
		if (th_now_s() > deadline)
			th_fleet_fail(f, "target %s not removed", victim);
		th_pause_ms(200);
	}
	json_decref(t);
	th_fleet_wait_members(f, TARGETS - 1);

	{
		const struct th_hit *hits;
		size_t n;

		th_load_stop(l, &hits, &n);
	}
	th_load_counts(l, &total, &failed);
	printf("# node vanished mid-batch: %zu requests through HAProxy, %zu failed\n", total,
	       failed);
	assert_int_equal(failed, 0);
	th_load_free(l);
	before.rollouts++;
	live = th_fleet_wait_running(f, TARGETS - 1);
	json_decref(live);
	assert_after_fault(f, &before, TARGETS - 1);
	json_decref(start);
	free(path);
	free(node);
	free(victim);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_server_unreachable),
	    cmocka_unit_test(test_node_vanishes_mid_batch),
	};

	if (!th_haproxy_available()) {
		printf("1..0 # SKIP haproxy is not installed (scripts/bootstrap installs it)\n");
		return 0;
	}
	atexit(unmount_disk);
	/* TN_TEST_FILTER=test_disk_full runs one case (a glob). */
	if (getenv("TN_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TN_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, teardown);
}
