/* The job pool: the node-wide limit, one job per server, progress, cancel, drain, reaping,
 * and that every argument is released exactly once whatever happens to its job.
 *
 * The job functions here never sleep to "let things happen": they report to a probe
 * (atomics for what is measured, a mutex and condvar for what the test waits on) and
 * block on tickets the test hands out, so each step is reached deterministically. The
 * only sleeps are the retention time of the reaping test and the 1 ms poll of a job that
 * waits for its cancel flag, as a real job function would. */
#include "jobs.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXJ 64
#define WAIT_MS 5000

enum mode {
	M_QUICK,        /* returns at once */
	M_GATE,         /* waits for a ticket from the test */
	M_UNTIL_CANCEL, /* ignores everything but its cancel flag */
	M_PROGRESS,     /* publishes the steps of progress_steps, one per ticket */
};

struct probe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu: what the test waits for */
	int tickets, started, finished, discards, acks;
	/* measured */
	atomic_int running, max_running;
	atomic_int freed;
	atomic_int ran[MAXJ], freed_idx[MAXJ], discarded_idx[MAXJ], saw_cancel[MAXJ];
};

struct targ {
	struct probe *pr;
	enum mode mode;
	int idx;
};

static const uint64_t progress_steps[][4] = {
	/* read, written, files, total */
	{250, 100, 3, 1000},
	{10, 5, 1, 0},                                     /* total not known yet */
	{2000, 1500, 9, 1000},                             /* read past the estimate */
	{3ull << 60, 1ull << 60, 7, 1ull << 62},           /* read * 100 overflows */
	{999, 900, 12, 1000},
};
static const unsigned progress_percent[] = {25, 0, 100, 75, 99};
#define N_STEPS (sizeof(progress_steps) / sizeof(progress_steps[0]))

static void probe_init(struct probe *pr)
{
	memset(pr, 0, sizeof(*pr));
	pthread_mutex_init(&pr->mu, NULL);
	pthread_cond_init(&pr->cv, NULL);
}

static void probe_fini(struct probe *pr)
{
	pthread_cond_destroy(&pr->cv);
	pthread_mutex_destroy(&pr->mu);
}

static struct timespec deadline_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (bounded) until cond, an expression over the probe's mutex-guarded fields. */
#define WAIT_FOR(pr, cond)                                                                     \
	do {                                                                                   \
		struct timespec dl_ = deadline_in(WAIT_MS);                                    \
		pthread_mutex_lock(&(pr)->mu);                                                 \
		while (!(cond)) {                                                              \
			int e_ = pthread_cond_timedwait(&(pr)->cv, &(pr)->mu, &dl_);           \
			ck_assert_msg(e_ != ETIMEDOUT || (cond), "timed out waiting for %s",   \
				      #cond);                                                  \
		}                                                                              \
		pthread_mutex_unlock(&(pr)->mu);                                               \
	} while (0)

static void give_tickets(struct probe *pr, int n)
{
	pthread_mutex_lock(&pr->mu);
	pr->tickets += n;
	pthread_cond_broadcast(&pr->cv);
	pthread_mutex_unlock(&pr->mu);
}

static void take_ticket(struct probe *pr)
{
	pthread_mutex_lock(&pr->mu);
	while (pr->tickets == 0)
		pthread_cond_wait(&pr->cv, &pr->mu);
	pr->tickets--;
	pthread_mutex_unlock(&pr->mu);
}

static int until_cancelled(struct job *job)
{
	/* Bounded, so a broken cancel fails the test instead of hanging it. */
	for (int i = 0; i < 10000; i++) {
		if (atomic_load(job_cancel_flag(job))) {
			ck_assert(job_cancelled(job));
			return -ECANCELED;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return -ETIME;
}

static int tjob(struct job *job, void *opaque)
{
	struct targ *a = opaque;
	struct probe *pr = a->pr;
	atomic_fetch_add(&pr->ran[a->idx], 1);
	int now = atomic_fetch_add(&pr->running, 1) + 1;
	int m = atomic_load(&pr->max_running);
	while (now > m && !atomic_compare_exchange_weak(&pr->max_running, &m, now))
		;
	pthread_mutex_lock(&pr->mu);
	pr->started++;
	pthread_cond_broadcast(&pr->cv);
	pthread_mutex_unlock(&pr->mu);

	int rc = 0;
	switch (a->mode) {
	case M_QUICK:
		break;
	case M_GATE:
		take_ticket(pr);
		break;
	case M_UNTIL_CANCEL:
		rc = until_cancelled(job);
		break;
	case M_PROGRESS:
		for (size_t i = 0; i < N_STEPS; i++) {
			take_ticket(pr);
			job_progress_update(job, progress_steps[i][0], progress_steps[i][1],
					    progress_steps[i][2], progress_steps[i][3]);
			pthread_mutex_lock(&pr->mu);
			pr->acks++;
			pthread_cond_broadcast(&pr->cv);
			pthread_mutex_unlock(&pr->mu);
		}
		take_ticket(pr);
		break;
	}
	atomic_store(&pr->saw_cancel[a->idx], job_cancelled(job));
	atomic_fetch_sub(&pr->running, 1);
	pthread_mutex_lock(&pr->mu);
	pr->finished++;
	pthread_cond_broadcast(&pr->cv);
	pthread_mutex_unlock(&pr->mu);
	return rc;
}

static void targ_free(void *opaque)
{
	struct targ *a = opaque;
	atomic_fetch_add(&a->pr->freed, 1);
	atomic_fetch_add(&a->pr->freed_idx[a->idx], 1);
	free(a);
}

static void on_discard(void *ctx, struct job *job, void *arg)
{
	struct probe *pr = ctx;
	struct targ *a = arg;
	ck_assert_ptr_eq(a->pr, pr);
	ck_assert(job_cancelled(job));
	/* arg is still alive here: arg_free comes after. */
	ck_assert_int_eq(atomic_load(&pr->freed_idx[a->idx]), 0);
	atomic_fetch_add(&pr->discarded_idx[a->idx], 1);
	pthread_mutex_lock(&pr->mu);
	pr->discards++;
	pthread_cond_broadcast(&pr->cv);
	pthread_mutex_unlock(&pr->mu);
}

static int submit(struct job_pool *pool, struct probe *pr, const char *srv, int idx,
		  enum mode mode, struct job **ret)
{
	struct targ *a = calloc(1, sizeof(*a));
	ck_assert_ptr_nonnull(a);
	a->pr = pr;
	a->mode = mode;
	a->idx = idx;
	char id[32];
	snprintf(id, sizeof(id), "job-%d", idx);
	return job_submit(pool, srv, id, JOB_BACKUP, tjob, a, targ_free, ret);
}

static const char *srv_name(int i)
{
	static const char *const names[] = {"srv-0", "srv-1", "srv-2", "srv-3", "srv-4",
					    "srv-5", "srv-6", "srv-7", "srv-8", "srv-9"};
	return names[i];
}

static void snap(struct job_pool *pool, const char *srv, int idx, struct job_status *st)
{
	char id[32];
	snprintf(id, sizeof(id), "job-%d", idx);
	ck_assert_int_eq(job_pool_snapshot(pool, srv, id, st), 0);
}

static int snap_rc(struct job_pool *pool, const char *srv, int idx)
{
	char id[32];
	struct job_status st;
	snprintf(id, sizeof(id), "job-%d", idx);
	return job_pool_snapshot(pool, srv, id, &st);
}

static int cancel(struct job_pool *pool, const char *srv, int idx)
{
	char id[32];
	snprintf(id, sizeof(id), "job-%d", idx);
	return job_cancel(pool, srv, id);
}

/* ---- tests ---- */

START_TEST(test_invalid)
{
	struct job_pool *pool = NULL;
	ck_assert_int_eq(job_pool_new(0, &pool), -EINVAL);
	ck_assert_int_eq(job_pool_new(JOB_MAX_CONCURRENT_MAX + 1, &pool), -EINVAL);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);

	struct probe pr;
	probe_init(&pr);
	struct job *h = (struct job *)&pr;
	struct targ *a = calloc(1, sizeof(*a));
	a->pr = &pr;
	ck_assert_int_eq(job_submit(pool, "", "x", JOB_BACKUP, tjob, a, targ_free, &h), -EINVAL);
	ck_assert_ptr_null(h);
	a = calloc(1, sizeof(*a));
	a->pr = &pr;
	ck_assert_int_eq(job_submit(pool, "s", NULL, JOB_BACKUP, tjob, a, targ_free, NULL), -EINVAL);
	a = calloc(1, sizeof(*a));
	a->pr = &pr;
	ck_assert_int_eq(job_submit(pool, "s", "x", JOB_BACKUP, NULL, a, targ_free, NULL), -EINVAL);
	ck_assert_int_eq(atomic_load(&pr.freed), 3);

	struct job_status st;
	ck_assert_int_eq(job_pool_snapshot(pool, "s", "x", &st), -ENOENT);
	ck_assert_int_eq(job_cancel(pool, "s", "x"), -ENOENT);
	ck_assert_str_eq(job_state_name(JOB_RUNNING), "running");
	ck_assert_str_eq(job_kind_name(JOB_RESTORE), "restore");
	job_pool_free(pool);
	job_pool_free(NULL);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_node_wide_limit)
{
	struct job_pool *pool;
	struct probe pr;
	struct job *h[6];
	struct job_status st;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(2, &pool), 0);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(submit(pool, &pr, srv_name(i), i, M_GATE, &h[i]), 0);

	WAIT_FOR(&pr, pr.started == 2);
	ck_assert_int_eq(atomic_load(&pr.running), 2);
	/* FIFO: the first two run, the rest wait. */
	for (int i = 0; i < 6; i++) {
		snap(pool, srv_name(i), i, &st);
		ck_assert_int_eq(st.state, i < 2 ? JOB_RUNNING : JOB_QUEUED);
		ck_assert_int_eq(atomic_load(&pr.ran[i]), i < 2);
	}
	/* Each finished job frees exactly one slot, taken by the next in line. */
	for (int k = 0; k < 4; k++) {
		give_tickets(&pr, 1);
		WAIT_FOR(&pr, pr.started == 3 + k);
		ck_assert_int_eq(atomic_load(&pr.running), 2);
		ck_assert_int_eq(atomic_load(&pr.ran[2 + k]), 1);
		if (k + 3 < 6)
			ck_assert_int_eq(atomic_load(&pr.ran[3 + k]), 0);
	}
	give_tickets(&pr, 2);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(job_wait(h[i], WAIT_MS), 0);
		job_get_status(h[i], &st);
		ck_assert_int_eq(st.state, JOB_DONE);
		ck_assert_int_eq(st.result, 0);
		job_unref(h[i]);
	}
	ck_assert_int_eq(atomic_load(&pr.max_running), 2);
	ck_assert_int_eq(atomic_load(&pr.freed), 6);
	job_pool_free(pool);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_one_job_per_server)
{
	struct job_pool *pool;
	struct probe pr;
	struct job *ha, *hb, *hc;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_GATE, &ha), 0);
	ck_assert_int_eq(submit(pool, &pr, "b", 1, M_GATE, &hb), 0);
	WAIT_FOR(&pr, pr.started == 1);
	struct job_status st;
	snap(pool, "b", 1, &st);
	ck_assert_int_eq(st.state, JOB_QUEUED);

	struct job *h = (struct job *)&pr;
	ck_assert_int_eq(submit(pool, &pr, "a", 2, M_QUICK, &h), -EBUSY); /* running */
	ck_assert_ptr_null(h);
	ck_assert_int_eq(submit(pool, &pr, "b", 3, M_QUICK, NULL), -EBUSY); /* queued */
	ck_assert_int_eq(atomic_load(&pr.freed_idx[2]), 1);
	ck_assert_int_eq(atomic_load(&pr.freed_idx[3]), 1);
	ck_assert_int_eq(atomic_load(&pr.ran[2]) + atomic_load(&pr.ran[3]), 0);
	/* The refused submits left the accepted jobs alone. */
	snap(pool, "a", 0, &st);
	ck_assert_int_eq(st.state, JOB_RUNNING);

	give_tickets(&pr, 2);
	ck_assert_int_eq(job_wait(ha, WAIT_MS), 0);
	ck_assert_int_eq(job_wait(hb, WAIT_MS), 0);
	/* Finished jobs still show, but no longer hold their server. */
	ck_assert_int_eq(submit(pool, &pr, "a", 4, M_QUICK, &hc), 0);
	ck_assert_int_eq(job_wait(hc, WAIT_MS), 0);
	snap(pool, "a", 0, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	snap(pool, "a", 4, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(atomic_load(&pr.freed), 5);
	job_unref(ha);
	job_unref(hb);
	job_unref(hc);
	job_pool_free(pool);
	probe_fini(&pr);
}
END_TEST

#define RACERS 8
#define ROUNDS 40

struct racer {
	struct job_pool *pool;
	struct probe *pr;
	pthread_barrier_t *bar;
	int idx;
	int rc;
	struct job *h;
};

static void *racer_main(void *opaque)
{
	struct racer *r = opaque;
	pthread_barrier_wait(r->bar);
	r->rc = submit(r->pool, r->pr, "contended", r->idx, M_GATE, &r->h);
	return NULL;
}

START_TEST(test_submit_race)
{
	struct job_pool *pool;
	struct probe pr;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(4, &pool), 0);
	for (int round = 0; round < ROUNDS; round++) {
		pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, RACERS);
		struct racer r[RACERS];
		pthread_t t[RACERS];
		for (int i = 0; i < RACERS; i++) {
			r[i] = (struct racer){.pool = pool, .pr = &pr, .bar = &bar, .idx = i};
			ck_assert_int_eq(pthread_create(&t[i], NULL, racer_main, &r[i]), 0);
		}
		for (int i = 0; i < RACERS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&bar);
		/* The winner is held on its gate until every racer has tried. */
		int won = -1;
		for (int i = 0; i < RACERS; i++) {
			if (r[i].rc == 0) {
				ck_assert_msg(won < 0, "round %d: two submits won", round);
				won = i;
			} else {
				ck_assert_int_eq(r[i].rc, -EBUSY);
				ck_assert_ptr_null(r[i].h);
			}
		}
		ck_assert_msg(won >= 0, "round %d: nobody won", round);
		give_tickets(&pr, 1);
		ck_assert_int_eq(job_wait(r[won].h, WAIT_MS), 0);
		job_unref(r[won].h);
	}
	ck_assert_int_eq(atomic_load(&pr.freed), ROUNDS * RACERS);
	ck_assert_int_eq(pr.started, ROUNDS);
	ck_assert_int_eq(atomic_load(&pr.max_running), 1);
	job_pool_free(pool);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_progress)
{
	struct job_pool *pool;
	struct probe pr;
	struct job_status st;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	struct targ *a = calloc(1, sizeof(*a));
	a->pr = &pr;
	a->mode = M_PROGRESS;
	struct job *h;
	time_t t0 = time(NULL);
	ck_assert_int_eq(job_submit(pool, "srv", "bk", JOB_RESTORE, tjob, a, targ_free, &h), 0);
	ck_assert_str_eq(job_server_uuid(h), "srv");
	ck_assert_str_eq(job_id(h), "bk");
	ck_assert_int_eq(job_get_kind(h), JOB_RESTORE);
	WAIT_FOR(&pr, pr.started == 1);

	ck_assert_int_eq(job_pool_snapshot(pool, "srv", "bk", &st), 0);
	ck_assert_int_eq(st.state, JOB_RUNNING);
	ck_assert_int_eq(st.kind, JOB_RESTORE);
	ck_assert_uint_eq(st.bytes_read, 0);
	ck_assert_uint_eq(st.percent, 0);
	ck_assert_int_ge(st.submitted_at, t0);
	ck_assert_int_ge(st.started_at, st.submitted_at);
	ck_assert_int_eq(st.finished_at, 0);
	ck_assert(!st.cancel_requested);
	/* Another server's view, or another id, knows nothing of it. */
	ck_assert_int_eq(job_pool_snapshot(pool, "other", "bk", &st), -ENOENT);
	ck_assert_int_eq(job_pool_snapshot(pool, "srv", "other", &st), -ENOENT);

	for (size_t i = 0; i < N_STEPS; i++) {
		give_tickets(&pr, 1);
		WAIT_FOR(&pr, pr.acks == (int)i + 1);
		ck_assert_int_eq(job_pool_snapshot(pool, "srv", "bk", &st), 0);
		ck_assert_int_eq(st.state, JOB_RUNNING);
		ck_assert_uint_eq(st.bytes_read, progress_steps[i][0]);
		ck_assert_uint_eq(st.bytes_written, progress_steps[i][1]);
		ck_assert_uint_eq(st.files, progress_steps[i][2]);
		ck_assert_uint_eq(st.total_bytes, progress_steps[i][3]);
		ck_assert_uint_eq(st.percent, progress_percent[i]);
	}
	give_tickets(&pr, 1);
	ck_assert_int_eq(job_wait(h, WAIT_MS), 0);
	ck_assert_int_eq(job_pool_snapshot(pool, "srv", "bk", &st), 0);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, 0);
	ck_assert_uint_eq(st.percent, 100);
	ck_assert_uint_eq(st.files, 12);
	ck_assert_int_ge(st.finished_at, st.started_at);
	ck_assert_int_eq(atomic_load(&pr.freed), 1);
	job_unref(h);
	job_pool_free(pool);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_cancel_running)
{
	struct job_pool *pool;
	struct probe pr;
	struct job_status st;
	struct job *h;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	ck_assert_int_eq(submit(pool, &pr, "s", 0, M_UNTIL_CANCEL, &h), 0);
	WAIT_FOR(&pr, pr.started == 1);
	ck_assert(!job_cancelled(h));
	ck_assert_int_eq(job_wait(h, 0), -ETIMEDOUT);
	ck_assert_int_eq(cancel(pool, "s", 0), 0);
	ck_assert_int_eq(job_wait(h, WAIT_MS), 0);
	snap(pool, "s", 0, &st);
	ck_assert_int_eq(st.state, JOB_FAILED);
	ck_assert_int_eq(st.result, -ECANCELED);
	ck_assert(st.cancel_requested);
	ck_assert_int_eq(atomic_load(&pr.saw_cancel[0]), 1);
	ck_assert_int_eq(cancel(pool, "s", 0), -EALREADY);
	ck_assert_int_eq(atomic_load(&pr.freed), 1);
	job_unref(h);
	job_pool_free(pool);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_cancel_queued)
{
	struct job_pool *pool;
	struct probe pr;
	struct job_status st;
	struct job *ha, *hb, *hc;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	job_pool_set_on_discard(pool, on_discard, &pr);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_GATE, &ha), 0);
	ck_assert_int_eq(submit(pool, &pr, "b", 1, M_GATE, &hb), 0);
	WAIT_FOR(&pr, pr.started == 1);

	ck_assert_int_eq(cancel(pool, "b", 1), 0);
	/* All done by the time job_cancel returns, on this thread. */
	ck_assert_int_eq(atomic_load(&pr.discarded_idx[1]), 1);
	ck_assert_int_eq(atomic_load(&pr.freed_idx[1]), 1);
	ck_assert_int_eq(job_wait(hb, 0), 0);
	snap(pool, "b", 1, &st);
	ck_assert_int_eq(st.state, JOB_FAILED);
	ck_assert_int_eq(st.result, -ECANCELED);
	ck_assert_int_eq(st.started_at, 0);
	ck_assert(st.cancel_requested);
	ck_assert_int_eq(cancel(pool, "b", 1), -EALREADY);
	/* The server is free again. */
	ck_assert_int_eq(submit(pool, &pr, "b", 2, M_GATE, &hc), 0);

	give_tickets(&pr, 2);
	ck_assert_int_eq(job_wait(ha, WAIT_MS), 0);
	ck_assert_int_eq(job_wait(hc, WAIT_MS), 0);
	ck_assert_int_eq(atomic_load(&pr.ran[1]), 0);
	ck_assert_int_eq(atomic_load(&pr.ran[2]), 1);
	ck_assert_int_eq(pr.discards, 1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(atomic_load(&pr.freed_idx[i]), 1);
	job_unref(ha);
	job_unref(hb);
	job_unref(hc);
	job_pool_free(pool);
	ck_assert_int_eq(pr.discards, 1);
	probe_fini(&pr);
}
END_TEST

struct drainer {
	struct job_pool *pool;
	int timeout_ms;
	int rc;
	int64_t elapsed_ms;
};

static void *drainer_main(void *opaque)
{
	struct drainer *d = opaque;
	int64_t t0 = mono_ms();
	d->rc = job_pool_drain(d->pool, d->timeout_ms);
	d->elapsed_ms = mono_ms() - t0;
	return NULL;
}

START_TEST(test_drain)
{
	struct job_pool *pool;
	struct probe pr;
	struct job_status st;
	struct job *h[4];
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(2, &pool), 0);
	job_pool_set_on_discard(pool, on_discard, &pr);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_GATE, &h[0]), 0);         /* finishes */
	ck_assert_int_eq(submit(pool, &pr, "b", 1, M_UNTIL_CANCEL, &h[1]), 0); /* must be cut */
	ck_assert_int_eq(submit(pool, &pr, "c", 2, M_QUICK, &h[2]), 0);        /* queued */
	ck_assert_int_eq(submit(pool, &pr, "d", 3, M_QUICK, &h[3]), 0);        /* queued */
	WAIT_FOR(&pr, pr.started == 2);

	struct drainer d = {.pool = pool, .timeout_ms = 400};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, drainer_main, &d), 0);
	/* The discards are the drain's first step; from then on nothing is accepted. */
	WAIT_FOR(&pr, pr.discards == 2);
	ck_assert_int_eq(submit(pool, &pr, "e", 4, M_QUICK, NULL), -ESHUTDOWN);
	ck_assert_int_eq(atomic_load(&pr.freed_idx[4]), 1);
	give_tickets(&pr, 1); /* a finishes within the timeout, b never does */
	pthread_join(t, NULL);

	ck_assert_int_eq(d.rc, -ETIMEDOUT);
	ck_assert_int_ge(d.elapsed_ms, 390);
	ck_assert_int_eq(atomic_load(&pr.running), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(job_wait(h[i], 0), 0);

	snap(pool, "a", 0, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(atomic_load(&pr.saw_cancel[0]), 0);
	snap(pool, "b", 1, &st);
	ck_assert_int_eq(st.state, JOB_FAILED);
	ck_assert_int_eq(st.result, -ECANCELED);
	ck_assert_int_eq(atomic_load(&pr.saw_cancel[1]), 1);
	for (int i = 2; i < 4; i++) {
		snap(pool, i == 2 ? "c" : "d", i, &st);
		ck_assert_int_eq(st.state, JOB_FAILED);
		ck_assert_int_eq(st.result, -ECANCELED);
		ck_assert_int_eq(atomic_load(&pr.ran[i]), 0);
		ck_assert_int_eq(atomic_load(&pr.discarded_idx[i]), 1);
	}
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(atomic_load(&pr.freed_idx[i]), 1);

	/* Again: nothing left to wait for. */
	ck_assert_int_eq(job_pool_drain(pool, 1000), 0);
	ck_assert_int_eq(submit(pool, &pr, "a", 5, M_QUICK, NULL), -ESHUTDOWN);
	for (int i = 0; i < 4; i++)
		job_unref(h[i]);
	job_pool_free(pool);
	ck_assert_int_eq(atomic_load(&pr.freed), 6);
	ck_assert_int_eq(pr.discards, 2);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_drain_in_time)
{
	struct job_pool *pool;
	struct probe pr;
	struct job *h[2];
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(2, &pool), 0);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_GATE, &h[0]), 0);
	ck_assert_int_eq(submit(pool, &pr, "b", 1, M_GATE, &h[1]), 0);
	WAIT_FOR(&pr, pr.started == 2);

	struct drainer d = {.pool = pool, .timeout_ms = WAIT_MS};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, drainer_main, &d), 0);
	/* Until the drain has begun, a probe submit is accepted (and then cancelled). */
	int n = 0, rc;
	while ((rc = submit(pool, &pr, "probe", 2 + n % (MAXJ - 2), M_GATE, NULL)) == 0) {
		/* -EALREADY: the drain began in between and discarded it. */
		int crc = cancel(pool, "probe", 2 + n % (MAXJ - 2));
		ck_assert_msg(crc == 0 || crc == -EALREADY, "cancel: %d", crc);
		ck_assert_int_lt(++n, 10 * 1000 * 1000);
		sched_yield();
	}
	ck_assert_int_eq(rc, -ESHUTDOWN);
	give_tickets(&pr, 2);
	pthread_join(t, NULL);
	ck_assert_int_eq(d.rc, 0);
	for (int i = 0; i < 2; i++) {
		struct job_status st;
		job_get_status(h[i], &st);
		ck_assert_int_eq(st.state, JOB_DONE);
		ck_assert_int_eq(atomic_load(&pr.saw_cancel[i]), 0);
		job_unref(h[i]);
	}
	job_pool_free(pool);
	ck_assert_int_eq(atomic_load(&pr.freed), 2 + n + 1);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_free_without_drain)
{
	struct job_pool *pool;
	struct probe pr;
	struct job *h;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	job_pool_set_on_discard(pool, on_discard, &pr);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_UNTIL_CANCEL, &h), 0);
	ck_assert_int_eq(submit(pool, &pr, "b", 1, M_QUICK, NULL), 0);
	WAIT_FOR(&pr, pr.started == 1);
	job_pool_free(pool);
	ck_assert_int_eq(atomic_load(&pr.freed), 2);
	ck_assert_int_eq(pr.discards, 1);
	ck_assert_int_eq(atomic_load(&pr.ran[1]), 0);
	/* The reference outlives the pool. */
	struct job_status st;
	job_get_status(h, &st);
	ck_assert_int_eq(st.state, JOB_FAILED);
	ck_assert_int_eq(st.result, -ECANCELED);
	ck_assert_int_eq(job_wait(h, 0), 0);
	job_unref(h);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_reap_by_age)
{
	struct job_pool *pool;
	struct probe pr;
	struct job *h;
	struct job_status st;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(1, &pool), 0);
	job_pool_set_retention(pool, 150, 100);
	ck_assert_int_eq(submit(pool, &pr, "a", 0, M_QUICK, &h), 0);
	ck_assert_int_eq(job_wait(h, WAIT_MS), 0);
	int64_t done = mono_ms();
	snap(pool, "a", 0, &st); /* a panel polling right after completion sees it */
	ck_assert_int_eq(st.state, JOB_DONE);
	nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
	ck_assert_int_ge(mono_ms() - done, 150);
	ck_assert_int_eq(snap_rc(pool, "a", 0), -ENOENT);
	ck_assert_int_eq(cancel(pool, "a", 0), -ENOENT);
	/* The holder of a reference still has it. */
	job_get_status(h, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	job_unref(h);
	job_pool_free(pool);
	ck_assert_int_eq(atomic_load(&pr.freed), 1);
	probe_fini(&pr);
}
END_TEST

START_TEST(test_reap_by_count)
{
	struct job_pool *pool;
	struct probe pr;
	probe_init(&pr);
	ck_assert_int_eq(job_pool_new(2, &pool), 0);
	job_pool_set_retention(pool, 60 * 1000, 2);
	for (int i = 0; i < 4; i++) {
		struct job *h;
		ck_assert_int_eq(submit(pool, &pr, srv_name(i), i, M_QUICK, &h), 0);
		ck_assert_int_eq(job_wait(h, WAIT_MS), 0);
		job_unref(h);
	}
	ck_assert_int_eq(snap_rc(pool, srv_name(0), 0), -ENOENT);
	ck_assert_int_eq(snap_rc(pool, srv_name(1), 1), -ENOENT);
	ck_assert_int_eq(snap_rc(pool, srv_name(2), 2), 0);
	ck_assert_int_eq(snap_rc(pool, srv_name(3), 3), 0);
	/* Many more through one server: still only two kept. */
	for (int i = 4; i < 40; i++) {
		struct job *h;
		ck_assert_int_eq(submit(pool, &pr, "busy", i, M_QUICK, &h), 0);
		ck_assert_int_eq(job_wait(h, WAIT_MS), 0);
		job_unref(h);
	}
	ck_assert_int_eq(snap_rc(pool, "busy", 38), 0);
	ck_assert_int_eq(snap_rc(pool, "busy", 39), 0);
	ck_assert_int_eq(snap_rc(pool, "busy", 37), -ENOENT);
	ck_assert_int_eq(snap_rc(pool, srv_name(3), 3), -ENOENT);
	job_pool_free(pool);
	ck_assert_int_eq(atomic_load(&pr.freed), 40);
	probe_fini(&pr);
}
END_TEST

static Suite *jobs_suite(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_invalid);
	tcase_add_test(tc, test_node_wide_limit);
	tcase_add_test(tc, test_one_job_per_server);
	tcase_add_test(tc, test_submit_race);
	tcase_add_test(tc, test_progress);
	tcase_add_test(tc, test_cancel_running);
	tcase_add_test(tc, test_cancel_queued);
	tcase_add_test(tc, test_drain);
	tcase_add_test(tc, test_drain_in_time);
	tcase_add_test(tc, test_free_without_drain);
	tcase_add_test(tc, test_reap_by_age);
	tcase_add_test(tc, test_reap_by_count);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(jobs_suite());
}
