/* The job pool. One mutex (pool->mu) guards the three lists a job moves through
 * (queued -> running -> finished) and the pool's flags; each job has its own small mutex
 * for the fields a job function or a status reader touch often (progress, state, times),
 * so publishing progress never contends with the pool. Lock order: pool->mu, then
 * job->mu. The cancel flag and the reference count are atomics.
 *
 * The pool holds one reference on every job it lists; a job function's handle is covered
 * by that (a running job is never reaped); callers of job_submit's ret_opt and a thread
 * that discards a job hold their own. */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct job {
	/* Fixed at submit. */
	char *server_uuid, *job_id;
	enum job_kind kind;
	job_fn run;
	void (*arg_free)(void *);
	/* Owned by whoever moves the job out of the queue (a worker, or a cancel/drain);
	 * written under pool->mu until then. */
	void *arg;

	atomic_int cancel;
	atomic_uint refs;

	/* Under pool->mu. */
	struct job *prev, *next;
	struct job *discard_next; /* a drain's private list of jobs it discarded */
	struct timespec finished_mono;

	/* Under job->mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* settled became true */
	enum job_state state;
	bool settled; /* finished and arg_free has run: what job_wait waits for */
	uint64_t bytes_read, bytes_written, files, total_bytes;
	time_t submitted_at, started_at, finished_at;
	int result;
};

struct job_list {
	struct job *head, *tail;
	size_t n;
};

struct job_pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* the queue got a job, or the workers must stop */
	pthread_cond_t idle_cv; /* a running job finished (CLOCK_MONOTONIC, for drain) */
	struct job_list queued, running, finished;
	bool draining; /* no more submits */
	bool stopping; /* workers exit */
	unsigned retention_ms, max_finished;
	job_discard_fn on_discard;
	void *discard_ctx;
	unsigned n_threads;
	pthread_t *threads;
};

/* ---- lists (caller holds pool->mu) ---- */

static void list_append(struct job_list *l, struct job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static void list_remove(struct job_list *l, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
	l->n--;
}

static bool job_matches(const struct job *j, const char *server_uuid, const char *job_id)
{
	return strcmp(j->server_uuid, server_uuid) == 0 &&
	       (!job_id || strcmp(j->job_id, job_id) == 0);
}

/* Newest first: an id may come back after a failure, and the retry is what counts. */
static struct job *list_find(const struct job_list *l, const char *server_uuid, const char *job_id)
{
	for (struct job *j = l->tail; j; j = j->prev)
		if (job_matches(j, server_uuid, job_id))
			return j;
	return NULL;
}

/* ---- time ---- */

static struct timespec mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static struct timespec ts_add_ms(struct timespec ts, unsigned long ms)
{
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static uint64_t ms_between(struct timespec a, struct timespec b)
{
	int64_t ms = ((int64_t)b.tv_sec - (int64_t)a.tv_sec) * 1000 +
		     (b.tv_nsec - a.tv_nsec) / 1000000L;
	return ms > 0 ? (uint64_t)ms : 0;
}

/* Condition variables on CLOCK_MONOTONIC, so a wall-clock step (NTP) cannot stretch or
 * cut a drain's timeout. */
static int cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int rc = pthread_condattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

/* ---- jobs ---- */

static void job_destroy(struct job *j)
{
	/* Every path hands arg to arg_free before the last reference goes; this only
	 * guards against a future path that forgets. */
	if (j->arg && j->arg_free)
		j->arg_free(j->arg);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j->server_uuid);
	free(j->job_id);
	free(j);
}

struct job *job_ref(struct job *job)
{
	atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
	return job;
}

void job_unref(struct job *job)
{
	if (job && atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) == 1)
		job_destroy(job);
}

static int job_alloc(const char *server_uuid, const char *job_id, enum job_kind kind, job_fn run,
		     void (*arg_free)(void *), struct job **ret)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->server_uuid = strdup(server_uuid);
	j->job_id = strdup(job_id);
	if (!j->server_uuid || !j->job_id) {
		free(j->server_uuid);
		free(j->job_id);
		free(j);
		return -ENOMEM;
	}
	int rc = pthread_mutex_init(&j->mu, NULL);
	if (rc) {
		free(j->server_uuid);
		free(j->job_id);
		free(j);
		return -rc;
	}
	rc = cond_init_mono(&j->cv);
	if (rc) {
		pthread_mutex_destroy(&j->mu);
		free(j->server_uuid);
		free(j->job_id);
		free(j);
		return rc;
	}
	j->kind = kind;
	j->run = run;
	j->arg_free = arg_free;
	atomic_init(&j->cancel, 0);
	atomic_init(&j->refs, 1);
	j->state = JOB_QUEUED;
	j->submitted_at = time(NULL);
	*ret = j;
	return 0;
}

static unsigned percent_of(uint64_t done, uint64_t total)
{
	if (total == 0)
		return 0;
	if (done >= total)
		return 100;
	if (done <= UINT64_MAX / 100)
		return (unsigned)(done * 100 / total);
	/* done * 100 would overflow; total > done > UINT64_MAX / 100 here, so total / 100
	 * is far from 0. The rounding can reach 100 although the job is not there yet. */
	uint64_t p = done / (total / 100);
	return p > 99 ? 99 : (unsigned)p;
}

static void job_fill_status(struct job *j, struct job_status *out)
{
	pthread_mutex_lock(&j->mu);
	out->state = j->state;
	out->kind = j->kind;
	out->bytes_read = j->bytes_read;
	out->bytes_written = j->bytes_written;
	out->files = j->files;
	out->total_bytes = j->total_bytes;
	/* A finished backup shows 100 even when the estimate of total_bytes was off (files
	 * shrank while being read). */
	out->percent = j->state == JOB_DONE ? 100 : percent_of(j->bytes_read, j->total_bytes);
	out->submitted_at = j->submitted_at;
	out->started_at = j->started_at;
	out->finished_at = j->finished_at;
	out->result = j->result;
	pthread_mutex_unlock(&j->mu);
	out->cancel_requested = atomic_load(&j->cancel) != 0;
}

static void job_settle(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	j->settled = true;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

/* ---- pool internals (caller holds pool->mu) ---- */

static void reap_locked(struct job_pool *p)
{
	struct timespec now = mono_now();
	struct job *j;
	/* The finished list is in completion order, so the oldest is always at the head. */
	while ((j = p->finished.head) &&
	       (p->finished.n > p->max_finished ||
		ms_between(j->finished_mono, now) >= p->retention_ms)) {
		list_remove(&p->finished, j);
		job_unref(j);
	}
}

/* Moves j (already off the queued or running list) to the finished list. */
static void finish_locked(struct job_pool *p, struct job *j, int result, bool settled)
{
	pthread_mutex_lock(&j->mu);
	j->state = result == 0 ? JOB_DONE : JOB_FAILED;
	j->result = result;
	j->finished_at = time(NULL);
	if (settled) {
		j->settled = true;
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	j->finished_mono = mono_now();
	list_append(&p->finished, j);
	reap_locked(p);
}

/* Takes a queued job off the queue for good. The caller gets a reference and the arg,
 * and must call settle_discarded without the pool lock. */
static void *discard_locked(struct job_pool *p, struct job *j)
{
	list_remove(&p->queued, j);
	atomic_store(&j->cancel, 1);
	void *arg = j->arg;
	j->arg = NULL;
	job_ref(j);
	finish_locked(p, j, -ECANCELED, false);
	return arg;
}

/* The callbacks run without the pool lock: they may report to the panel, take time, or
 * even submit (and be refused). */
static void settle_discarded(struct job *j, void *arg, job_discard_fn fn, void *ctx)
{
	if (fn)
		fn(ctx, j, arg);
	if (j->arg_free)
		j->arg_free(arg);
	job_settle(j);
	job_unref(j);
}

static void *worker_main(void *opaque)
{
	struct job_pool *p = opaque;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->queued.head && !p->stopping)
			pthread_cond_wait(&p->work_cv, &p->mu);
		struct job *j = p->queued.head;
		if (!j)
			break;
		list_remove(&p->queued, j);
		list_append(&p->running, j);
		void *arg = j->arg;
		j->arg = NULL;
		pthread_mutex_lock(&j->mu);
		j->state = JOB_RUNNING;
		j->started_at = time(NULL);
		pthread_mutex_unlock(&j->mu);
		pthread_mutex_unlock(&p->mu);

		int rc = j->run(j, arg);
		/* Before the job shows as finished, so that whoever sees it finished may rely
		 * on the argument's resources being released. */
		if (j->arg_free)
			j->arg_free(arg);

		pthread_mutex_lock(&p->mu);
		list_remove(&p->running, j);
		finish_locked(p, j, rc, true);
		pthread_cond_broadcast(&p->idle_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- public ---- */

static void pool_destroy(struct job_pool *p)
{
	pthread_cond_destroy(&p->idle_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

int job_pool_new(unsigned max_concurrent, struct job_pool **ret)
{
	if (!ret || max_concurrent == 0 || max_concurrent > JOB_MAX_CONCURRENT_MAX)
		return -EINVAL;
	struct job_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->threads = calloc(max_concurrent, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	int rc = pthread_mutex_init(&p->mu, NULL);
	if (rc) {
		free(p->threads);
		free(p);
		return -rc;
	}
	if ((rc = -pthread_cond_init(&p->work_cv, NULL)) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p->threads);
		free(p);
		return rc;
	}
	if ((rc = cond_init_mono(&p->idle_cv)) != 0) {
		pthread_cond_destroy(&p->work_cv);
		pthread_mutex_destroy(&p->mu);
		free(p->threads);
		free(p);
		return rc;
	}
	p->retention_ms = JOB_RETENTION_MS_DEFAULT;
	p->max_finished = JOB_MAX_FINISHED_DEFAULT;

	/* Workers start with every signal blocked, so SIGTERM and friends reach the thread
	 * that waits for them, never a job in the middle of its work. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; p->n_threads < max_concurrent; p->n_threads++) {
		rc = pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		pthread_cond_broadcast(&p->work_cv);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->n_threads; i++)
			pthread_join(p->threads[i], NULL);
		pool_destroy(p);
		return -rc;
	}
	*ret = p;
	return 0;
}

void job_pool_set_retention(struct job_pool *pool, unsigned retention_ms, unsigned max_finished)
{
	pthread_mutex_lock(&pool->mu);
	pool->retention_ms = retention_ms;
	pool->max_finished = max_finished;
	pthread_mutex_unlock(&pool->mu);
}

void job_pool_set_on_discard(struct job_pool *pool, job_discard_fn fn, void *ctx)
{
	pthread_mutex_lock(&pool->mu);
	pool->on_discard = fn;
	pool->discard_ctx = ctx;
	pthread_mutex_unlock(&pool->mu);
}

int job_submit(struct job_pool *pool, const char *server_uuid, const char *job_id,
	       enum job_kind kind, job_fn run, void *arg, void (*arg_free)(void *),
	       struct job **ret_opt)
{
	struct job *j = NULL;
	int rc;
	if (ret_opt)
		*ret_opt = NULL;
	if (!pool || !server_uuid || !*server_uuid || !job_id || !*job_id || !run) {
		rc = -EINVAL;
		goto fail;
	}
	/* Allocated before taking the lock, so the lock covers only the check and the
	 * insertion, which must be one step: of two racing submits for a server, exactly
	 * one may win. */
	rc = job_alloc(server_uuid, job_id, kind, run, arg_free, &j);
	if (rc)
		goto fail;

	pthread_mutex_lock(&pool->mu);
	if (pool->draining) {
		rc = -ESHUTDOWN;
	} else if (list_find(&pool->queued, server_uuid, NULL) ||
		   list_find(&pool->running, server_uuid, NULL)) {
		rc = -EBUSY;
	} else {
		j->arg = arg;
		list_append(&pool->queued, j);
		if (ret_opt)
			*ret_opt = job_ref(j);
		reap_locked(pool);
		pthread_cond_signal(&pool->work_cv);
	}
	pthread_mutex_unlock(&pool->mu);
	if (rc == 0)
		return 0;
fail:
	if (j)
		job_destroy(j); /* its arg is still NULL: the one arg_free is below */
	if (arg_free)
		arg_free(arg);
	return rc;
}

int job_pool_snapshot(struct job_pool *pool, const char *server_uuid, const char *job_id,
		      struct job_status *out)
{
	if (!pool || !server_uuid || !job_id || !out)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	/* Reaping here too, so an expired job is gone at the first look after its time,
	 * even on an idle node. */
	reap_locked(pool);
	struct job *j = list_find(&pool->running, server_uuid, job_id);
	if (!j)
		j = list_find(&pool->queued, server_uuid, job_id);
	if (!j)
		j = list_find(&pool->finished, server_uuid, job_id);
	if (j)
		job_fill_status(j, out);
	pthread_mutex_unlock(&pool->mu);
	return j ? 0 : -ENOENT;
}

int job_cancel(struct job_pool *pool, const char *server_uuid, const char *job_id)
{
	if (!pool || !server_uuid || !job_id)
		return -EINVAL;
	struct job *discarded = NULL;
	void *arg = NULL;
	job_discard_fn fn = NULL;
	void *ctx = NULL;
	int rc;

	pthread_mutex_lock(&pool->mu);
	struct job *j;
	if ((j = list_find(&pool->running, server_uuid, job_id)) != NULL) {
		atomic_store(&j->cancel, 1);
		rc = 0;
	} else if ((j = list_find(&pool->queued, server_uuid, job_id)) != NULL) {
		arg = discard_locked(pool, j);
		discarded = j;
		fn = pool->on_discard;
		ctx = pool->discard_ctx;
		rc = 0;
	} else {
		rc = list_find(&pool->finished, server_uuid, job_id) ? -EALREADY : -ENOENT;
	}
	pthread_mutex_unlock(&pool->mu);

	if (discarded)
		settle_discarded(discarded, arg, fn, ctx);
	return rc;
}

int job_pool_drain(struct job_pool *pool, int timeout_ms)
{
	struct job *discarded = NULL;
	int rc = 0;

	pthread_mutex_lock(&pool->mu);
	/* The deadline counts from the call, not from after the discard callbacks. */
	struct timespec deadline = ts_add_ms(mono_now(), timeout_ms > 0 ? (unsigned)timeout_ms : 0);
	pool->draining = true;
	/* Queued jobs are discarded rather than run: on SIGTERM the node should stop soon,
	 * and a backup that never started is better reported failed now than cut off
	 * half-way by the timeout. */
	while (pool->queued.head) {
		struct job *j = pool->queued.head;
		j->arg = discard_locked(pool, j);
		/* Parked on the job until the callbacks below; nobody else touches arg of a
		 * finished job. */
		j->discard_next = discarded;
		discarded = j;
	}
	job_discard_fn fn = pool->on_discard;
	void *ctx = pool->discard_ctx;
	pthread_mutex_unlock(&pool->mu);

	/* Oldest first, in submission order (the list was built reversed). */
	struct job *fwd = NULL;
	while (discarded) {
		struct job *n = discarded->discard_next;
		discarded->discard_next = fwd;
		fwd = discarded;
		discarded = n;
	}
	while (fwd) {
		struct job *n = fwd->discard_next;
		void *arg = fwd->arg;
		fwd->arg = NULL;
		settle_discarded(fwd, arg, fn, ctx);
		fwd = n;
	}

	pthread_mutex_lock(&pool->mu);
	bool timed_out = false;
	while (pool->running.n > 0 && !timed_out) {
		if (timeout_ms < 0)
			pthread_cond_wait(&pool->idle_cv, &pool->mu);
		else
			timed_out = pthread_cond_timedwait(&pool->idle_cv, &pool->mu, &deadline) ==
				    ETIMEDOUT;
	}
	if (pool->running.n > 0) {
		rc = -ETIMEDOUT;
		for (struct job *j = pool->running.head; j; j = j->next)
			atomic_store(&j->cancel, 1);
		while (pool->running.n > 0)
			pthread_cond_wait(&pool->idle_cv, &pool->mu);
	}
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

void job_pool_free(struct job_pool *pool)
{
	if (!pool)
		return;
	job_pool_drain(pool, 0);
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	struct job *j;
	while ((j = pool->finished.head)) {
		list_remove(&pool->finished, j);
		job_unref(j);
	}
	pool_destroy(pool);
}

/* ---- the handle ---- */

void job_progress_update(struct job *job, uint64_t bytes_read, uint64_t bytes_written,
			 uint64_t files, uint64_t total_bytes)
{
	/* One lock rather than four atomics: a reader must never pair a new bytes_read
	 * with an old total_bytes, or the percentage jumps around. */
	pthread_mutex_lock(&job->mu);
	job->bytes_read = bytes_read;
	job->bytes_written = bytes_written;
	job->files = files;
	job->total_bytes = total_bytes;
	pthread_mutex_unlock(&job->mu);
}

bool job_cancelled(const struct job *job)
{
	return atomic_load_explicit(&job->cancel, memory_order_relaxed) != 0;
}

const atomic_int *job_cancel_flag(const struct job *job)
{
	return &job->cancel;
}

const char *job_server_uuid(const struct job *job)
{
	return job->server_uuid;
}

const char *job_id(const struct job *job)
{
	return job->job_id;
}

enum job_kind job_get_kind(const struct job *job)
{
	return job->kind;
}

void job_get_status(struct job *job, struct job_status *out)
{
	job_fill_status(job, out);
}

int job_wait(struct job *job, int timeout_ms)
{
	struct timespec deadline = ts_add_ms(mono_now(), timeout_ms > 0 ? (unsigned)timeout_ms : 0);
	int rc = 0;
	pthread_mutex_lock(&job->mu);
	while (!job->settled && rc == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&job->cv, &job->mu);
		else if (pthread_cond_timedwait(&job->cv, &job->mu, &deadline) == ETIMEDOUT)
			rc = job->settled ? 0 : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&job->mu);
	return rc;
}

const char *job_state_name(enum job_state s)
{
	switch (s) {
	case JOB_QUEUED:
		return "queued";
	case JOB_RUNNING:
		return "running";
	case JOB_DONE:
		return "done";
	case JOB_FAILED:
		return "failed";
	}
	return "unknown";
}

const char *job_kind_name(enum job_kind k)
{
	switch (k) {
	case JOB_BACKUP:
		return "backup";
	case JOB_RESTORE:
		return "restore";
	case JOB_DELETE:
		return "delete";
	case JOB_OTHER:
		return "other";
	}
	return "unknown";
}
