/* A token bucket for I/O politeness: so many bytes per second on average, in bursts of at
 * most a tenth of a second's worth (never less than one block). Checked once per block,
 * so an unlimited run never gets here at all (the caller holds no bucket then). The
 * clock is injectable so tests need no wall clock. One thread at a time. */
#ifndef AMBER_RATELIMIT_H
#define AMBER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>


struct ratelimit_clock {
	int64_t (*now_ns)(void *opaque);           /* monotonic */
	void (*sleep_ns)(void *opaque, int64_t ns);
	void *opaque;
};

struct ratelimit;

/* bytes_per_s > 0. clock NULL: CLOCK_MONOTONIC and nanosleep. 0 or -ENOMEM/-EINVAL. */
int ratelimit_new(uint64_t bytes_per_s, const struct ratelimit_clock *clock,
		  struct ratelimit **ret);
void ratelimit_free(struct ratelimit *rl);
/* Takes n bytes' worth of tokens (the bucket may go into debt for a block larger than a
 * burst) and returns how many nanoseconds the caller must wait before doing that I/O so
 * the average holds: 0 while tokens last. */
int64_t ratelimit_reserve(struct ratelimit *rl, uint64_t n);
/* ratelimit_reserve, then the wait, in slices of at most 100 ms with cancelled (when not
 * NULL) asked between them: 0 or -ECANCELED. */
int ratelimit_wait(struct ratelimit *rl, uint64_t n, int (*cancelled)(void *opaque),
		   void *opaque);

#endif
