/* The I/O limiter's token bucket, on an injected clock: no test here sleeps or reads a
 * wall clock. */
#include <check.h>
#include <errno.h>
#include <stdint.h>

#include "ratelimit.h"
#include "testutil.h"

#define MiB ((uint64_t)1 << 20)
#define SEC 1000000000LL

struct fake_clock {
	int64_t now;
	int64_t slept; /* total asked for */
	int sleeps;
};

static int64_t fake_now(void *opaque)
{
	return ((struct fake_clock *)opaque)->now;
}

static void fake_sleep(void *opaque, int64_t ns)
{
	struct fake_clock *c = opaque;
	ck_assert_int_gt(ns, 0);
	c->now += ns;
	c->slept += ns;
	c->sleeps++;
}

static struct ratelimit *limiter(struct fake_clock *fc, uint64_t rate)
{
	struct ratelimit_clock clock = { fake_now, fake_sleep, fc };
	struct ratelimit *rl = NULL;
	ck_assert_int_eq(ratelimit_new(rate, &clock, &rl), 0);
	return rl;
}

START_TEST(burst_passes_then_debt_is_paid_at_the_rate)
{
	struct fake_clock fc = { .now = 1000 };
	/* 10 MiB/s: the burst is a tenth of a second's worth, 1 MiB. */
	struct ratelimit *rl = limiter(&fc, 10 * MiB);
	ck_assert_int_eq(ratelimit_reserve(rl, MiB / 2), 0);
	ck_assert_int_eq(ratelimit_reserve(rl, MiB / 2), 0);
	/* Empty now: the next MiB is a tenth of a second away. */
	ck_assert_int_eq(ratelimit_reserve(rl, MiB), SEC / 10);
	/* That debt stands until time passes: another MiB waits twice as long. */
	ck_assert_int_eq(ratelimit_reserve(rl, MiB), 2 * SEC / 10);
	/* A fifth of a second later the debt is paid exactly. */
	fc.now += 2 * SEC / 10;
	ck_assert_int_eq(ratelimit_reserve(rl, 0), 0);
	ratelimit_free(rl);
}
END_TEST

START_TEST(refill_stops_at_the_burst)
{
	struct fake_clock fc = { 0 };
	struct ratelimit *rl = limiter(&fc, 10 * MiB);
	/* An hour idle buys no more than one burst. */
	fc.now += 3600 * SEC;
	ck_assert_int_eq(ratelimit_reserve(rl, MiB), 0);
	ck_assert_int_eq(ratelimit_reserve(rl, MiB), SEC / 10);
	ratelimit_free(rl);
}
END_TEST

START_TEST(small_rates_have_a_one_block_burst_and_round_up)
{
	struct fake_clock fc = { 0 };
	/* 1 KiB/s: a tenth of a second is 102 bytes, less than a block, so the burst is
	 * 256 KiB and a block is never refused outright. */
	struct ratelimit *rl = limiter(&fc, 1024);
	ck_assert_int_eq(ratelimit_reserve(rl, 256 << 10), 0);
	/* One byte of debt at 1024 B/s: rounded up, never early. */
	ck_assert_int_eq(ratelimit_reserve(rl, 1), (SEC + 1023) / 1024);
	ratelimit_free(rl);
}
END_TEST

START_TEST(long_run_average_holds)
{
	struct fake_clock fc = { 0 };
	uint64_t rate = 5 * MiB;
	struct ratelimit *rl = limiter(&fc, rate);
	/* 100 MiB in 256 KiB blocks, sleeping as told: the time taken is what the rate
	 * says, less the first burst, to within a nanosecond per block. */
	uint64_t total = 100 * MiB, block = 256 << 10;
	for (uint64_t done = 0; done < total; done += block)
		ck_assert_int_eq(ratelimit_wait(rl, block, NULL, NULL), 0);
	int64_t want = (int64_t)((total - rate / 10) * (uint64_t)SEC / rate);
	ck_assert_int_ge(fc.now, want);
	ck_assert_int_le(fc.now, want + (int64_t)(total / block));
	/* Waits come in slices of at most 100 ms, for cancellation's sake. */
	ck_assert_int_ge(fc.sleeps, (int)(fc.slept / (SEC / 10)));
	ratelimit_free(rl);
}
END_TEST

static int cancel_now(void *opaque)
{
	return ++*(int *)opaque >= 2;
}

START_TEST(waiting_can_be_cancelled)
{
	struct fake_clock fc = { 0 };
	struct ratelimit *rl = limiter(&fc, MiB);
	ck_assert_int_eq(ratelimit_reserve(rl, MiB / 10), 0);
	int calls = 0;
	/* Ten seconds' worth: cancelled at the second slice, not after ten seconds. */
	ck_assert_int_eq(ratelimit_wait(rl, 10 * MiB, cancel_now, &calls), -ECANCELED);
	ck_assert_int_eq(calls, 2);
	ck_assert_int_le(fc.slept, SEC / 10);
	ratelimit_free(rl);
}
END_TEST

START_TEST(bad_rates_are_refused)
{
	struct ratelimit *rl = (struct ratelimit *)1;
	ck_assert_int_eq(ratelimit_new(0, NULL, &rl), -EINVAL);
	ck_assert_ptr_null(rl);
	ck_assert_int_eq(ratelimit_new(((uint64_t)1 << 40) + 1, NULL, &rl), -EINVAL);
	/* The real clock works too (no sleeping: the first burst is free). */
	ck_assert_int_eq(ratelimit_new(MiB, NULL, &rl), 0);
	ck_assert_int_eq(ratelimit_wait(rl, 1000, NULL, NULL), 0);
	ratelimit_free(rl);
	ratelimit_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("ratelimit");
	tcase_add_test(tc, burst_passes_then_debt_is_paid_at_the_rate);
	tcase_add_test(tc, refill_stops_at_the_burst);
	tcase_add_test(tc, small_rates_have_a_one_block_burst_and_round_up);
	tcase_add_test(tc, long_run_average_holds);
	tcase_add_test(tc, waiting_can_be_cancelled);
	tcase_add_test(tc, bad_rates_are_refused);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
