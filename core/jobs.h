/* The job pool: backups and restores run as jobs on a fixed set of worker threads, off
 * the HTTP threads. The number of workers is the node-wide limit on concurrent jobs
 * (design §4); jobs beyond it wait in a FIFO queue. A server has at most one queued or
 * running job at a time, so a second request for it is refused (the route answers 409).
 *
 * Ownership: job_submit always takes over `arg`. Whatever happens (the job runs, is
 * refused, is cancelled while queued, is discarded by a drain), arg_free(arg) is called
 * exactly once, by the pool, and after the job function (if it ran) has returned.
 *
 * Lifecycle: queued -> running -> done | failed, or queued -> failed (-ECANCELED) when
 * cancelled or discarded before it started. Finished jobs stay visible to
 * job_pool_snapshot for a retention time (default JOB_RETENTION_MS_DEFAULT), and at most
 * max_finished of them are kept (oldest dropped first), so memory stays bounded.
 *
 * Every function is thread-safe. None may be called on a pool from inside one of its own
 * job functions except job_submit, job_cancel, job_pool_snapshot and the job_* handle
 * functions: job_pool_drain and job_pool_free would wait for the caller itself. */
#ifndef AMBER_JOBS_H
#define AMBER_JOBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct job;
struct job_pool;

enum job_kind {
	JOB_BACKUP,
	JOB_RESTORE,
	JOB_DELETE,
	JOB_OTHER,
};

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,   /* the job function returned 0 */
	JOB_FAILED, /* it returned non-zero, or the job never ran (result -ECANCELED) */
};

#define JOB_RETENTION_MS_DEFAULT (10u * 60u * 1000u)
#define JOB_MAX_FINISHED_DEFAULT 1024u
#define JOB_MAX_CONCURRENT_MAX 1024u

/* Runs on a worker thread. Returns 0 or a negative errno (recorded as the result);
 * should poll job_cancelled() between chunks of work and return -ECANCELED once it is
 * set. `job` is valid until the function returns. */
typedef int (*job_fn)(struct job *job, void *arg);

/* Called for a job that will never run (cancelled while queued, or discarded by a
 * drain), before arg_free, on the thread that cancelled or drained. Lets the daemon
 * report the backup as failed. */
typedef void (*job_discard_fn)(void *ctx, struct job *job, void *arg);

struct job_status {
	enum job_state state;
	enum job_kind kind;
	uint64_t bytes_read, bytes_written, files, total_bytes;
	/* bytes_read * 100 / total_bytes, at most 100; 0 while total_bytes is unknown (0);
	 * 100 once the job is done. */
	unsigned percent;
	/* Wall-clock times (seconds since the epoch); 0 when not reached yet. */
	time_t submitted_at, started_at, finished_at;
	int result;            /* the job function's return, -ECANCELED if it never ran */
	bool cancel_requested; /* job_cancel or a drain asked it to stop */
};

/* max_concurrent worker threads (1..JOB_MAX_CONCURRENT_MAX, else -EINVAL). */
int job_pool_new(unsigned max_concurrent, struct job_pool **ret);
/* How long finished jobs stay visible, and how many are kept at most (0 for either:
 * none is kept). Applies from the next submit, look-up or completion on. */
void job_pool_set_retention(struct job_pool *pool, unsigned retention_ms, unsigned max_finished);
/* The callback for jobs that never run; NULL for none. Set it before submitting. */
void job_pool_set_on_discard(struct job_pool *pool, job_discard_fn fn, void *ctx);

/* Queues a job. server_uuid and job_id are copied; arg_free may be NULL when arg needs
 * no release. The queue stays bounded by the number of servers, since each has at most
 * one job in it. 0; -EBUSY when server_uuid already has a queued or running job;
 * -ESHUTDOWN once a drain has begun; -EINVAL for a missing argument; -ENOMEM. On any
 * error arg_free(arg) has been called already and *ret_opt is NULL. With ret_opt,
 * *ret_opt gets a reference the caller releases with job_unref. */
int job_submit(struct job_pool *pool, const char *server_uuid, const char *job_id,
	       enum job_kind kind, job_fn run, void *arg, void (*arg_free)(void *),
	       struct job **ret_opt);

/* The latest job with this server and id. -ENOENT when unknown (or reaped). */
int job_pool_snapshot(struct job_pool *pool, const char *server_uuid, const char *job_id,
		      struct job_status *out);

/* Asks a job to stop. A running job gets its cancel flag set (it stops when it next
 * polls it); a queued job is removed at once: on_discard and arg_free are called before
 * this returns, its state becomes failed/-ECANCELED and the server is free again.
 * 0; -EALREADY when the job has finished; -ENOENT when unknown. */
int job_cancel(struct job_pool *pool, const char *server_uuid, const char *job_id);

/* For SIGTERM. Stops accepting jobs (job_submit answers -ESHUTDOWN from now on); queued
 * jobs are discarded (failed/-ECANCELED, on_discard then arg_free, on this thread);
 * running jobs get timeout_ms (< 0: no limit) to finish, then their cancel flags are set
 * and the drain waits, without limit, for them to return. 0 when everything finished
 * within the timeout, -ETIMEDOUT when running jobs had to be cancelled (they have
 * returned by then either way). Idempotent. */
int job_pool_drain(struct job_pool *pool, int timeout_ms);

/* Drains with a zero timeout (running jobs are cancelled at once; a no-op after an
 * earlier drain), joins the workers, drops the finished jobs. No other thread may use
 * the pool any more. References from job_submit stay valid until their job_unref. */
void job_pool_free(struct job_pool *pool);

/* ---- the job handle (for the job function, or the holder of a reference) ---- */

/* Publishes progress: the totals so far, not increments. Cheap (one uncontended
 * mutex), meant to be called often. total_bytes 0 means not known yet. */
void job_progress_update(struct job *job, uint64_t bytes_read, uint64_t bytes_written,
			 uint64_t files, uint64_t total_bytes);
bool job_cancelled(const struct job *job);
/* The cancel flag itself, for amber_ctx.cancel; valid as long as the job is. */
const atomic_int *job_cancel_flag(const struct job *job);
const char *job_server_uuid(const struct job *job);
const char *job_id(const struct job *job);
enum job_kind job_get_kind(const struct job *job);
void job_get_status(struct job *job, struct job_status *out);
/* Waits until the job has finished (done or failed; arg_free has run by then).
 * timeout_ms < 0 waits without limit. 0 or -ETIMEDOUT. */
int job_wait(struct job *job, int timeout_ms);

struct job *job_ref(struct job *job);
void job_unref(struct job *job);

const char *job_state_name(enum job_state s);
const char *job_kind_name(enum job_kind k);

#endif
