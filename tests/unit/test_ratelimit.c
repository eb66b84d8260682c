/* test_ratelimit.c - the per-address count of bad credentials: the limit
 * trips once and refuses only that address, the address recovers after
 * the window, failures spread over windows never trip it, and a flood of
 * addresses evicts old entries instead of growing the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "ratelimit.h"

#define S 1000ull /* one second, in the table's milliseconds */

static void test_trips_once_for_that_address_only(void **state)
{
	struct tn_ratelimit *rl = tn_ratelimit_new(3, 60);
	uint64_t t = 5 * S;
	unsigned retry = 0;
	int trips = 0;

	(void)state;
	for (int i = 0; i < 3; i++)
		trips += tn_ratelimit_fail(rl, "127.0.0.2", t + (uint64_t)i);
	assert_int_equal(trips, 1);
	assert_true(tn_ratelimit_blocked(rl, "127.0.0.2", t + 10, &retry));
	assert_int_equal(retry, 60);
	/* failures while refused do not trip it again */
	assert_false(tn_ratelimit_fail(rl, "127.0.0.2", t + 20));
	assert_false(tn_ratelimit_blocked(rl, "127.0.0.3", t + 10, &retry));
	/* recovered after the window, counting from zero again */
	assert_true(tn_ratelimit_blocked(rl, "127.0.0.2", t + 2 + 59 * S, &retry));
	assert_int_equal(retry, 1);
	assert_false(tn_ratelimit_blocked(rl, "127.0.0.2", t + 2 + 60 * S, &retry));
	assert_false(tn_ratelimit_fail(rl, "127.0.0.2", t + 61 * S));
	assert_false(tn_ratelimit_blocked(rl, "127.0.0.2", t + 61 * S, &retry));
	tn_ratelimit_free(rl);
}

static void test_failures_spread_over_windows_never_trip(void **state)
{
	struct tn_ratelimit *rl = tn_ratelimit_new(3, 10);
	unsigned retry;

	(void)state;
	for (uint64_t t = 1; t < 100; t++)
		assert_false(tn_ratelimit_fail(rl, "10.0.0.1", t * 6 * S));
	assert_false(tn_ratelimit_blocked(rl, "10.0.0.1", 600 * S, &retry));
	tn_ratelimit_free(rl);
}

static void test_off_and_unknown_address(void **state)
{
	struct tn_ratelimit *off = tn_ratelimit_new(0, 60);
	struct tn_ratelimit *on = tn_ratelimit_new(1, 60);
	unsigned retry;

	(void)state;
	for (int i = 0; i < 100; i++)
		assert_false(tn_ratelimit_fail(off, "10.0.0.1", S));
	assert_false(tn_ratelimit_blocked(off, "10.0.0.1", S, &retry));
	/* in-process calls have no address: never counted */
	assert_false(tn_ratelimit_fail(on, NULL, S));
	assert_false(tn_ratelimit_blocked(on, NULL, S, &retry));
	assert_false(tn_ratelimit_blocked(NULL, "10.0.0.1", S, &retry));
	tn_ratelimit_free(off);
	tn_ratelimit_free(on);
}

static void test_flood_of_addresses_evicts_the_oldest(void **state)
{
	struct tn_ratelimit *rl = tn_ratelimit_new(1, 3600);
	char addr[64];
	unsigned retry;
	int still = 0;

	(void)state;
	assert_true(tn_ratelimit_fail(rl, "192.0.2.1", S));
	/* 100,000 other addresses: the table stays its size; the first
	 * entry, seen longest ago, has made room */
	for (int i = 0; i < 100000; i++) {
		snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		tn_ratelimit_fail(rl, addr, 2 * S + (uint64_t)i);
	}
	assert_false(tn_ratelimit_blocked(rl, "192.0.2.1", 3 * S, &retry));
	/* the newest are all still there */
	for (int i = 99990; i < 100000; i++) {
		snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		still += tn_ratelimit_blocked(rl, addr, 200 * S, &retry);
	}
	assert_int_equal(still, 10);
	tn_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trips_once_for_that_address_only),
	    cmocka_unit_test(test_failures_spread_over_windows_never_trip),
	    cmocka_unit_test(test_off_and_unknown_address),
	    cmocka_unit_test(test_flood_of_addresses_evicts_the_oldest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
