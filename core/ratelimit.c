#include "ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define SLICE_NS (100 * 1000000LL)
#define MIN_BURST ((int64_t)256 << 10)

struct ratelimit {
	struct ratelimit_clock clock;
	uint64_t rate;  /* bytes per second */
	int64_t burst;  /* the most tokens the bucket holds */
	int64_t tokens; /* may be negative: debt from a block bigger than what was there */
	int64_t last;   /* when tokens was last brought up to date */
};

static int64_t mono_now(void *opaque)
{
	(void)opaque;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void mono_sleep(void *opaque, int64_t ns)
{
	(void)opaque;
	struct timespec ts = { .tv_sec = ns / NS_PER_S, .tv_nsec = ns % NS_PER_S };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int ratelimit_new(uint64_t bytes_per_s, const struct ratelimit_clock *clock,
		  struct ratelimit **ret)
{
	*ret = NULL;
	/* Above this the arithmetic below could overflow, and no disk is that fast. */
	if (bytes_per_s == 0 || bytes_per_s > ((uint64_t)1 << 40))
		return -EINVAL;
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	if (clock)
		rl->clock = *clock;
	else
		rl->clock = (struct ratelimit_clock){ mono_now, mono_sleep, NULL };
	rl->rate = bytes_per_s;
	rl->burst = (int64_t)(bytes_per_s / 10);
	if (rl->burst < MIN_BURST)
		rl->burst = MIN_BURST;
	/* A full bucket to start: the first blocks go without waiting. */
	rl->tokens = rl->burst;
	rl->last = rl->clock.now_ns(rl->clock.opaque);
	*ret = rl;
	return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
	free(rl);
}

int64_t ratelimit_reserve(struct ratelimit *rl, uint64_t n)
{
	int64_t now = rl->clock.now_ns(rl->clock.opaque);
	int64_t dt = now - rl->last;
	if (dt > 0) {
		/* Refill; capping dt first keeps dt * rate far from overflowing. */
		int64_t cap_dt = NS_PER_S * 10;
		if (dt > cap_dt)
			dt = cap_dt;
		rl->tokens += (int64_t)((__int128)dt * rl->rate / NS_PER_S);
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last = now;
	}
	rl->tokens -= (int64_t)n;
	if (rl->tokens >= 0)
		return 0;
	/* Round up, so the debt is surely paid once the wait is over. */
	return (int64_t)(((__int128)-rl->tokens * NS_PER_S + rl->rate - 1) / rl->rate);
}

int ratelimit_wait(struct ratelimit *rl, uint64_t n, int (*cancelled)(void *opaque),
		   void *opaque)
{
	int64_t wait = ratelimit_reserve(rl, n);
	while (wait > 0) {
		if (cancelled && cancelled(opaque))
			return -ECANCELED;
		int64_t step = wait < SLICE_NS ? wait : SLICE_NS;
		rl->clock.sleep_ns(rl->clock.opaque, step);
		wait -= step;
	}
	return 0;
}
