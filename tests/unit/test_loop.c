/* test_loop.c - the agent's event loop: timers in due order and
 * cancellable, fd callbacks, unwatching from a callback, transfers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "xalloc.h"

static char order[16];
static size_t norder;

static void mark(void *ctx)
{
	order[norder++] = *(const char *)ctx;
}

static void test_timers_fire_in_due_order(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	uint64_t start = tn_loop_now_ms(), cancelled;

	norder = 0;
	tn_loop_timer(loop, 30, mark, "c");
	tn_loop_timer(loop, 10, mark, "a");
	cancelled = tn_loop_timer(loop, 15, mark, "x");
	tn_loop_timer(loop, 20, mark, "b");
	tn_loop_cancel(loop, cancelled);
	while (norder < 3 && tn_loop_now_ms() - start < 5000)
		tn_loop_run_once(loop, 100);
	assert_int_equal(norder, 3);
	assert_memory_equal(order, "abc", 3);
	assert_true(tn_loop_now_ms() - start >= 30);
	tn_loop_free(loop);
}

struct reader {
	struct tn_loop *loop;
	int calls;
	char got;
};

static void on_readable(void *ctx, int fd, short revents)
{
	struct reader *r = ctx;

	assert_true(revents & POLLIN);
	assert_int_equal(read(fd, &r->got, 1), 1);
	r->calls++;
	tn_loop_unwatch(r->loop, fd);
}

static void test_fd_callback_and_unwatch(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	struct reader r = {loop, 0, 0};
	int p[2];

	assert_int_equal(pipe(p), 0);
	tn_loop_watch(loop, p[0], POLLIN, on_readable, &r);
	assert_int_equal(write(p[1], "zz", 2), 2);
	for (int i = 0; i < 5; i++)
		tn_loop_run_once(loop, 50);
	/* unwatched after the first byte: the second stays in the pipe */
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.got, 'z');
	close(p[0]);
	close(p[1]);
	tn_loop_free(loop);
}

struct fetch {
	bool done;
	CURLcode result;
	size_t bytes;
};

static size_t count(char *data, size_t size, size_t n, void *ctx)
{
	(void)data;
	((struct fetch *)ctx)->bytes += size * n;
	return size * n;
}

static void on_done(void *ctx, CURL *easy, CURLcode result)
{
	struct fetch *f = ctx;

	f->done = true;
	f->result = result;
}

static void test_transfer_completes(void **state)
{
	struct tn_loop *loop = tn_loop_new();
	char path[] = "/tmp/tn-loop-XXXXXX";
	int fd = mkstemp(path);
	char *url = xasprintf("file://%s", path);
	struct fetch f = {0};
	CURL *easy = curl_easy_init();
	uint64_t start = tn_loop_now_ms();

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello loop", 10), 10);
	close(fd);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, count);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &f);
	tn_loop_transfer(loop, easy, on_done, &f);
	while (!f.done && tn_loop_now_ms() - start < 5000)
		tn_loop_run_once(loop, 100);
	assert_true(f.done);
	assert_int_equal(f.result, CURLE_OK);
	assert_int_equal(f.bytes, 10);
	curl_easy_cleanup(easy);
	unlink(path);
	free(url);
	tn_loop_free(loop);
}

static void stop_it(void *ctx)
{
	tn_loop_stop(ctx);
}

static void test_stop_ends_run(void **state)
{
	struct tn_loop *loop = tn_loop_new();

	tn_loop_timer(loop, 5, stop_it, loop);
	tn_loop_run(loop);
	assert_false(tn_loop_run_once(loop, 0));
	tn_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_fire_in_due_order),
		cmocka_unit_test(test_fd_callback_and_unwatch),
		cmocka_unit_test(test_transfer_completes),
		cmocka_unit_test(test_stop_ends_run),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
