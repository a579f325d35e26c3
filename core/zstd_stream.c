#include "zstd_stream.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>
#include <zstd_errors.h>

/* Small writes (tar headers) are gathered so libzstd is not called per 512 bytes;
 * larger ones go straight in (libzstd copies them into its job buffers anyway). */
#define IN_BUF_SIZE ((size_t)256 << 10)
/* Output is handed to the sink in pieces this large, by a writer thread of ours, so
 * hashing and the sink's write run beside the producer's reading instead of after it.
 * OUT_BUFS pieces circulate between the two. */
#define OUT_BUF_SIZE ((size_t)1 << 20)
#define OUT_BUFS 4
#define FAST_LEVEL 1
/* Each job starts with the whole window of the job before it as history (the default
 * at level 1 is a fraction of it): ~0.1 % smaller output for the same speed and memory,
 * as the jobs are cut every 2 MiB whatever the data. */
#define FAST_OVERLAP_LOG 9
/* "best": level 19 would want a 64 MiB chain table and 32 MiB jobs per worker. Level 12
 * with the tables, window and jobs below keeps a whole create with two workers near
 * 57 MiB RSS (the bench's 256 MiB dataset) and is ~8 % smaller than level 1; its speed
 * (tens of MB/s per core) stays usable for a backup. */
#define BEST_LEVEL 12
#define BEST_WINDOW_LOG 21
#define BEST_HASH_LOG 19
#define BEST_CHAIN_LOG 19
#define BEST_JOB_SIZE ((int)4 << 20)
/* What the workers may take together, as gzip_parallel's POOL_BUDGET: a 64-core box
 * does not buy 64 workers' buffers that a single tar producer could never keep busy.
 * Per worker at level 1: a 2 MiB job in, its output, and a small context (~6 MiB). */
#define WORKER_BUDGET ((size_t)32 << 20)
#define FAST_PER_WORKER ((size_t)6 << 20)
#define BEST_PER_WORKER ((size_t)16 << 20)

/* Raw frames, written by hand: libzstd has no level that only frames. */
#define ZSTD_MAGIC 0xFD2FB528u
#define RAW_BLOCK_MAX ((size_t)128 << 10)
#define RAW_WINDOW_LOG 17 /* = RAW_BLOCK_MAX: the decoder needs no larger window */
#define BLOCK_HDR 3u
#define FRAME_HDR_MAX 18u
#define CHECKSUM_LEN 4u

struct out_buf {
	unsigned char *data;
	size_t len;
};

struct zstd_stream {
	enum zstd_stream_level level;
	struct amber_sink sink;
	ZSTD_CCtx *cctx; /* NULL in raw mode */
	unsigned char *in;
	size_t in_len;
	unsigned char *out; /* the producer's current piece: bufs[cur] */
	size_t out_len;
	bool started; /* raw mode: the frame header is out */
	bool finished;
	uint64_t bytes_in;
	_Atomic uint64_t bytes_out;

	/* The ring of pieces: [head, head + queued) wait for the writer, the producer
	 * fills bufs[cur] = bufs[(head + queued) % OUT_BUFS]. All under lock. */
	struct out_buf bufs[OUT_BUFS];
	unsigned head, queued, cur;
	bool stop;         /* the writer leaves once the queue is empty */
	int err;           /* the first error, from either thread */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a piece queued, a piece written, an error, or stop */
	pthread_t writer;
	bool writer_started;
};

static unsigned usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

uint64_t zstd_stream_bound(uint64_t len)
{
	const uint64_t block = 128u << 10;
	uint64_t margin = len < block ? (block - len) >> 11 : 0;
	return len + (len >> 8) + margin + FRAME_HDR_MAX + BLOCK_HDR + CHECKSUM_LEN;
}

static void *writer_main(void *arg)
{
	struct zstd_stream *zs = arg;
	pthread_mutex_lock(&zs->lock);
	for (;;) {
		while (!zs->queued && !zs->stop && !zs->err)
			pthread_cond_wait(&zs->cond, &zs->lock);
		/* After an error nothing more reaches the sink. */
		if (zs->err || !zs->queued)
			break;
		struct out_buf *b = &zs->bufs[zs->head];
		pthread_mutex_unlock(&zs->lock);
		int r = zs->sink.write(zs->sink.opaque, b->data, b->len);
		if (r == 0)
			atomic_fetch_add(&zs->bytes_out, b->len);
		pthread_mutex_lock(&zs->lock);
		if (r < 0 && !zs->err)
			zs->err = r;
		zs->head = (zs->head + 1) % OUT_BUFS;
		zs->queued--;
		pthread_cond_broadcast(&zs->cond);
	}
	pthread_mutex_unlock(&zs->lock);
	return NULL;
}

static int set_err(struct zstd_stream *zs, int err)
{
	pthread_mutex_lock(&zs->lock);
	if (!zs->err)
		zs->err = err;
	err = zs->err;
	pthread_cond_broadcast(&zs->cond);
	pthread_mutex_unlock(&zs->lock);
	return err;
}

/* Queues the current piece for the writer and takes the next free one, waiting while
 * all are queued. 0 or the first error. */
static int flush_out(struct zstd_stream *zs)
{
	pthread_mutex_lock(&zs->lock);
	if (zs->out_len && !zs->err) {
		zs->bufs[zs->cur].len = zs->out_len;
		zs->queued++;
		pthread_cond_broadcast(&zs->cond);
		while (zs->queued == OUT_BUFS && !zs->err)
			pthread_cond_wait(&zs->cond, &zs->lock);
		zs->cur = (zs->head + zs->queued) % OUT_BUFS;
		zs->out = zs->bufs[zs->cur].data;
		zs->out_len = 0;
	}
	int err = zs->err;
	pthread_mutex_unlock(&zs->lock);
	return err;
}

/* Waits until the writer has handed everything queued to the sink. */
static int drain(struct zstd_stream *zs)
{
	pthread_mutex_lock(&zs->lock);
	while (zs->queued && !zs->err)
		pthread_cond_wait(&zs->cond, &zs->lock);
	int err = zs->err;
	pthread_mutex_unlock(&zs->lock);
	return err;
}

static int failed(struct zstd_stream *zs)
{
	pthread_mutex_lock(&zs->lock);
	int err = zs->err;
	pthread_mutex_unlock(&zs->lock);
	return err;
}

static int zstd_error(size_t rc)
{
	return ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

/* Feeds libzstd until it has taken all of in (or, for ZSTD_e_end, until the frame is
 * complete), flushing the output buffer whenever it fills. */
static int compress(struct zstd_stream *zs, const void *buf, size_t len, ZSTD_EndDirective op)
{
	ZSTD_inBuffer in = { buf, len, 0 };
	for (;;) {
		ZSTD_outBuffer out = { zs->out, OUT_BUF_SIZE, zs->out_len };
		size_t rc = ZSTD_compressStream2(zs->cctx, &out, &in, op);
		zs->out_len = out.pos;
		if (ZSTD_isError(rc))
			return set_err(zs, zstd_error(rc));
		bool done = op == ZSTD_e_end ? rc == 0 : in.pos == in.size;
		if (zs->out_len == OUT_BUF_SIZE || (done && op == ZSTD_e_end)) {
			int r = flush_out(zs);
			if (r < 0)
				return r;
		}
		if (done)
			return 0;
	}
}

static void put_le(unsigned char *p, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* One raw block of len <= RAW_BLOCK_MAX bytes into the output buffer. */
static int raw_block(struct zstd_stream *zs, const void *buf, size_t len, bool last)
{
	if (OUT_BUF_SIZE - zs->out_len < BLOCK_HDR + len) {
		int r = flush_out(zs);
		if (r < 0)
			return r;
	}
	/* Last_Block in bit 0, Block_Type 0 (raw) in bits 1-2, Block_Size above. */
	put_le(zs->out + zs->out_len, (uint32_t)(len << 3) | (last ? 1u : 0u), BLOCK_HDR);
	memcpy(zs->out + zs->out_len + BLOCK_HDR, buf, len);
	zs->out_len += BLOCK_HDR + len;
	return 0;
}

static int raw_start(struct zstd_stream *zs)
{
	if (zs->started)
		return 0;
	zs->started = true;
	/* Frame_Header_Descriptor 0: no content size, not single-segment, no checksum
	 * (the archive's SHA-256 is recorded beside it), no dictionary. Then the window
	 * descriptor: exponent RAW_WINDOW_LOG - 10, mantissa 0. */
	put_le(zs->out, ZSTD_MAGIC, 4);
	zs->out[4] = 0;
	zs->out[5] = (unsigned char)((RAW_WINDOW_LOG - 10) << 3);
	zs->out_len = 6;
	return 0;
}

/* Raw mode keeps up to one block's worth in zs->in: a block is only written once it
 * is full or the stream ends, so block sizes do not depend on how writes were cut. */
static int raw_write(struct zstd_stream *zs, const unsigned char *p, size_t len)
{
	raw_start(zs);
	while (len) {
		size_t k = RAW_BLOCK_MAX - zs->in_len;
		if (k > len)
			k = len;
		memcpy(zs->in + zs->in_len, p, k);
		zs->in_len += k;
		p += k;
		len -= k;
		if (zs->in_len == RAW_BLOCK_MAX) {
			int r = raw_block(zs, zs->in, zs->in_len, false);
			if (r < 0)
				return r;
			zs->in_len = 0;
		}
	}
	return 0;
}

static int apply(ZSTD_CCtx *c, ZSTD_cParameter p, int v)
{
	size_t rc = ZSTD_CCtx_setParameter(c, p, v);
	return ZSTD_isError(rc) ? zstd_error(rc) : 0;
}

static int cctx_setup(struct zstd_stream *zs, unsigned threads)
{
	zs->cctx = ZSTD_createCCtx();
	if (!zs->cctx)
		return -ENOMEM;
	bool best = zs->level == ZSTD_STREAM_BEST;
	size_t per_worker = best ? BEST_PER_WORKER : FAST_PER_WORKER;
	if (!threads)
		threads = usable_cpus();
	if (threads > WORKER_BUDGET / per_worker)
		threads = (unsigned)(WORKER_BUDGET / per_worker);
	int r = apply(zs->cctx, ZSTD_c_compressionLevel, best ? BEST_LEVEL : FAST_LEVEL);
	if (r == 0)
		r = apply(zs->cctx, ZSTD_c_checksumFlag, 1);
	if (r == 0 && best)
		r = apply(zs->cctx, ZSTD_c_windowLog, BEST_WINDOW_LOG);
	if (r == 0 && best)
		r = apply(zs->cctx, ZSTD_c_hashLog, BEST_HASH_LOG);
	if (r == 0 && best)
		r = apply(zs->cctx, ZSTD_c_chainLog, BEST_CHAIN_LOG);

	/* Even one worker runs beside the producer, overlapping reading and compressing.
	 * A libzstd built without threads refuses this: then it compresses inline. */
	if (r == 0 && apply(zs->cctx, ZSTD_c_nbWorkers, (int)threads) == 0) {
		if (best)
			(void)apply(zs->cctx, ZSTD_c_jobSize, BEST_JOB_SIZE);
		else
			(void)apply(zs->cctx, ZSTD_c_overlapLog, FAST_OVERLAP_LOG);
	}
	return r;
}

int zstd_stream_new(const struct zstd_stream_opts *opts, const struct amber_sink *sink,
		    struct zstd_stream **ret)
{
	if (!opts || !sink || !sink->write || opts->level > ZSTD_STREAM_BEST)
		return -EINVAL;
	struct zstd_stream *zs = calloc(1, sizeof(*zs));
	if (!zs)
		return -ENOMEM;
	zs->level = opts->level;
	zs->sink = *sink;
	atomic_init(&zs->bytes_out, 0);
	pthread_mutex_init(&zs->lock, NULL);
	pthread_cond_init(&zs->cond, NULL);
	zs->in = malloc(zs->level == ZSTD_STREAM_RAW ? RAW_BLOCK_MAX : IN_BUF_SIZE);
	int r = zs->in ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < OUT_BUFS; i++)
		if (!(zs->bufs[i].data = malloc(OUT_BUF_SIZE)))
			r = -ENOMEM;
	zs->out = zs->bufs[0].data;
	if (r == 0 && zs->level != ZSTD_STREAM_RAW)
		r = cctx_setup(zs, opts->threads);
	if (r == 0) {
		r = -pthread_create(&zs->writer, NULL, writer_main, zs);
		zs->writer_started = r == 0;
	}
	if (r < 0) {
		zstd_stream_free(zs);
		return r;
	}
	*ret = zs;
	return 0;
}

int zstd_stream_write(struct zstd_stream *zs, const void *buf, size_t len)
{
	if (zs->finished)
		return -EINVAL;
	int err = failed(zs);
	if (err)
		return err;
	zs->bytes_in += len;
	if (zs->level == ZSTD_STREAM_RAW)
		return raw_write(zs, buf, len);
	if (zs->in_len + len <= IN_BUF_SIZE) {
		memcpy(zs->in + zs->in_len, buf, len);
		zs->in_len += len;
		return 0;
	}
	if (zs->in_len) {
		int r = compress(zs, zs->in, zs->in_len, ZSTD_e_continue);
		if (r < 0)
			return r;
		zs->in_len = 0;
	}
	if (len < IN_BUF_SIZE) {
		memcpy(zs->in, buf, len);
		zs->in_len = len;
		return 0;
	}
	return compress(zs, buf, len, ZSTD_e_continue);
}

int zstd_stream_finish(struct zstd_stream *zs)
{
	if (zs->finished)
		return -EINVAL;
	zs->finished = true;
	int r = failed(zs);
	if (r == 0 && zs->level == ZSTD_STREAM_RAW) {
		raw_start(zs);
		r = raw_block(zs, zs->in, zs->in_len, true);
		if (r == 0)
			r = flush_out(zs);
	} else if (r == 0) {
		r = compress(zs, zs->in, zs->in_len, ZSTD_e_end);
	}
	zs->in_len = 0;
	return r < 0 ? r : drain(zs);
}

uint64_t zstd_stream_bytes_out(const struct zstd_stream *zs)
{
	return atomic_load(&((struct zstd_stream *)zs)->bytes_out);
}

uint64_t zstd_stream_bytes_in(const struct zstd_stream *zs)
{
	return zs->bytes_in;
}

void zstd_stream_free(struct zstd_stream *zs)
{
	if (!zs)
		return;
	if (zs->writer_started) {
		/* An unfinished stream is abandoned: what is queued is not written. */
		pthread_mutex_lock(&zs->lock);
		zs->stop = true;
		if (!zs->finished && !zs->err)
			zs->err = -ECANCELED;
		pthread_cond_broadcast(&zs->cond);
		pthread_mutex_unlock(&zs->lock);
		pthread_join(zs->writer, NULL);
	}
	/* Joins libzstd's workers, whatever state the frame is in. */
	ZSTD_freeCCtx(zs->cctx);
	free(zs->in);
	for (size_t i = 0; i < OUT_BUFS; i++)
		free(zs->bufs[i].data);
	pthread_cond_destroy(&zs->cond);
	pthread_mutex_destroy(&zs->lock);
	free(zs);
}
