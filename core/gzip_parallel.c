#include "gzip_parallel.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>

#define DEFAULT_BLOCK_SIZE ((size_t)1 << 20)
/* Blocks must be at least a window long so every block after the first gets a full
 * dictionary, and stay well inside ISA-L's 32-bit counters. */
#define MIN_BLOCK_SIZE ((size_t)64 << 10)
#define MAX_BLOCK_SIZE ((size_t)64 << 20)
#define DICT_SIZE ((size_t)ISAL_DEF_HIST_SIZE)
/* What the block pool may take, so a 64-core box does not buy 64 blocks' worth of
 * buffers that a single tar producer could never keep busy anyway. */
#define POOL_BUDGET ((size_t)32 << 20)
#define STORED_MAX 65535u
#define STORED_HDR 5u
#define GZIP_HDR_LEN 10
#define GZIP_TRAILER_LEN 8
/* Noise detection (fast level only): per segment, two samples of NOISE_SAMPLE bytes. */
#define NOISE_SEG ((size_t)64 << 10)
#define NOISE_SAMPLE ((size_t)2048)
#define NOISE_CHI2_MAX 400

struct block {
	unsigned char *in;
	size_t in_len;
	unsigned char *dict; /* copy of the DICT_SIZE input bytes before this block */
	size_t dict_len;
	unsigned char *out;
	size_t out_len, out_cap;
	uint32_t crc; /* of in[0..in_len) alone */
	uint64_t seq;
	bool last;
	bool done;
	struct block *next; /* free list or work queue */
};

struct worker {
	struct gzip_parallel *gz;
	pthread_t thread;
	bool started;
	struct isal_zstream *zs;
	unsigned char *level_buf;
	uint32_t level_buf_size;
};

struct gzip_parallel {
	enum gzip_parallel_level level;
	struct amber_sink sink;
	size_t block_size;

	struct block *blocks;
	struct block **ring; /* in-flight blocks by seq % nblocks, for the writer */
	size_t nblocks;
	struct worker *workers;
	unsigned nworkers;
	pthread_t writer;
	bool writer_started;
	bool joined;

	pthread_mutex_t lock;
	pthread_cond_t cond_free; /* producer: a block came back */
	pthread_cond_t cond_work; /* workers: a block to compress, or stop */
	pthread_cond_t cond_done; /* writer: a block is compressed, or an error */
	struct block *free_list;
	struct block *work_head, *work_tail;
	bool stopping;
	int err; /* first error; sticky */

	/* The producer's own state, never touched by the other threads. */
	struct block *cur;
	uint64_t next_seq;
	unsigned char tail[DICT_SIZE];
	uint64_t bytes_in;
	bool finish_called;

	_Atomic uint64_t bytes_out;
};

/* --- CRC-32 combination ------------------------------------------------------------ */

/* Polynomial product modulo the CRC-32 polynomial, in the reflected bit order gzip uses
 * (bit 31 holds x^0). Lets each worker checksum its own block; the writer then shifts
 * the running CRC past a block's length and folds the block's CRC in. */
static uint32_t crc_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t m = UINT32_C(1) << 31; m; m >>= 1) {
		if (a & m)
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ UINT32_C(0xedb88320) : b >> 1;
	}
	return prod;
}

/* x^(8 * len) mod P: what a CRC is multiplied by when len zero bytes follow. */
static uint32_t crc_shift_factor(uint64_t len)
{
	uint32_t result = UINT32_C(1) << 31; /* x^0 */
	uint32_t base = UINT32_C(1) << 23;   /* x^8 */

	for (; len; len >>= 1) {
		if (len & 1)
			result = crc_mulmod(result, base);
		base = crc_mulmod(base, base);
	}
	return result;
}

static uint32_t crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return crc_mulmod(crc_a, crc_shift_factor(len_b)) ^ crc_b;
}

/* --- stored blocks ------------------------------------------------------------------ */

static size_t stored_size(size_t len)
{
	size_t n = (len + STORED_MAX - 1) / STORED_MAX;
	return len + STORED_HDR * (n ? n : 1);
}

/* The block as stored deflate blocks; the stream is byte-aligned at each block start, so
 * the three header bits plus padding are one byte. Returns the bytes written. */
static size_t write_stored(unsigned char *out, const unsigned char *in, size_t len, bool last)
{
	size_t o = 0;

	if (len == 0 && !last)
		return 0;
	do {
		size_t n = len < STORED_MAX ? len : STORED_MAX;
		bool final = last && n == len;
		out[o++] = final ? 1 : 0;
		out[o++] = (unsigned char)(n & 0xff);
		out[o++] = (unsigned char)(n >> 8);
		out[o++] = (unsigned char)(~n & 0xff);
		out[o++] = (unsigned char)((~n >> 8) & 0xff);
		memcpy(out + o, in, n);
		o += n;
		in += n;
		len -= n;
	} while (len);
	return o;
}

uint64_t gzip_parallel_bound(uint64_t len, size_t block_size)
{
	size_t bs = block_size ? block_size : DEFAULT_BLOCK_SIZE;
	if (bs < MIN_BLOCK_SIZE)
		bs = MIN_BLOCK_SIZE;
	if (bs > MAX_BLOCK_SIZE)
		bs = MAX_BLOCK_SIZE;
	uint64_t full = len / bs;
	/* The last block may be empty: it still holds the final (empty) stored block. */
	return GZIP_HDR_LEN + GZIP_TRAILER_LEN + full * stored_size(bs) + stored_size(len % bs);
}

/* --- shared state ------------------------------------------------------------------- */

static void fail_locked(struct gzip_parallel *gz, int err)
{
	if (!gz->err)
		gz->err = err;
	pthread_cond_broadcast(&gz->cond_free);
	pthread_cond_broadcast(&gz->cond_work);
	pthread_cond_broadcast(&gz->cond_done);
}

static void fail(struct gzip_parallel *gz, int err)
{
	pthread_mutex_lock(&gz->lock);
	fail_locked(gz, err);
	pthread_mutex_unlock(&gz->lock);
}

/* --- workers ------------------------------------------------------------------------ */

/* Deflates in[pos, end) of the block as one raw deflate stream into out (at most cap
 * bytes), primed with the DICT_SIZE bytes before pos, ending with a sync flush (byte
 * aligned, not final) unless final. 0 with *ret_len, 1 when it did not fit in cap (stored
 * is then at least as small when cap >= stored_size(end - pos)), or a negative errno. */
static int deflate_run(struct worker *w, struct block *b, size_t pos, size_t end, bool final,
		       unsigned char *out, size_t cap, size_t *ret_len)
{
	struct isal_zstream *zs = w->zs;

	isal_deflate_init(zs);
	zs->level = w->gz->level == GZIP_PARALLEL_BEST ? ISAL_DEF_MAX_LEVEL : 1;
	zs->level_buf = w->level_buf;
	zs->level_buf_size = w->level_buf_size;
	zs->gzip_flag = IGZIP_DEFLATE;
	const unsigned char *dict = pos ? b->in + pos - DICT_SIZE : b->dict;
	size_t dict_len = pos ? DICT_SIZE : b->dict_len;
	if (dict_len && isal_deflate_set_dict(zs, (uint8_t *)dict, (uint32_t)dict_len) != COMP_OK)
		return -EIO;
	zs->end_of_stream = final;
	/* A sync flush ends the run with an empty stored block: byte-aligned and not
	 * final, so whatever comes next can simply follow. */
	zs->flush = final ? NO_FLUSH : SYNC_FLUSH;
	zs->next_in = b->in + pos;
	zs->avail_in = (uint32_t)(end - pos);
	zs->next_out = out;
	zs->avail_out = (uint32_t)cap;
	for (int calls = 0;; calls++) {
		if (isal_deflate(zs) != COMP_OK)
			return -EIO;
		if (zs->avail_out == 0)
			return 1;
		if (zs->avail_in == 0 && (!final || zs->internal_state.state == ZSTATE_END))
			break;
		if (calls == 8)
			return -EIO; /* ISA-L stopped making progress: never seen, never trusted */
	}
	*ret_len = zs->total_out;
	return 0;
}

/* Whether a segment looks like noise (compressed or encrypted data: jars, .gz logs,
 * media), judged from the byte histograms of two samples: a chi-square statistic of
 * uniformity per sample (mean 255 for random bytes, sd about 23; text and structured
 * data score in the thousands). Deflating such data costs as much CPU as deflating
 * anything else and buys nothing, so it goes out stored. */
static bool seg_is_noise(const unsigned char *p, size_t len)
{
	if (len < 4 * NOISE_SAMPLE)
		return false;
	for (int k = 1; k <= 3; k += 2) {
		const unsigned char *s = p + len * (size_t)k / 4 - NOISE_SAMPLE / 2;
		uint32_t h[256] = { 0 };
		for (size_t i = 0; i < NOISE_SAMPLE; i++)
			h[s[i]]++;
		uint64_t sq = 0;
		for (int i = 0; i < 256; i++)
			sq += (uint64_t)h[i] * h[i];
		/* chi2 = 256 * sq / N - N */
		uint64_t chi2 = 256 * sq / NOISE_SAMPLE - NOISE_SAMPLE;
		if (chi2 > NOISE_CHI2_MAX)
			return false;
	}
	return true;
}

/* The block as runs of segments: noise stored, the rest deflated. 0 when that came to
 * at most stored_size(in_len) bytes (so gzip_parallel_bound() holds), 1 when plain
 * stored blocks are the answer, or a negative errno. */
static int compress_runs(struct worker *w, struct block *b)
{
	size_t len = b->in_len, cap = stored_size(len), o = 0, pos = 0;
	bool fast = w->gz->level == GZIP_PARALLEL_FAST;

	if (len == 0) {
		int r = deflate_run(w, b, 0, 0, b->last, b->out, cap, &o);
		b->out_len = o;
		return r;
	}
	while (pos < len) {
		size_t end = pos + NOISE_SEG < len ? pos + NOISE_SEG : len;
		bool noise = fast && seg_is_noise(b->in + pos, end - pos);
		while (fast && end < len) {
			size_t next = end + NOISE_SEG < len ? end + NOISE_SEG : len;
			if (seg_is_noise(b->in + end, next - end) != noise)
				break;
			end = next;
		}
		bool final = b->last && end == len;
		if (noise) {
			if (o + stored_size(end - pos) > cap)
				return 1;
			o += write_stored(b->out + o, b->in + pos, end - pos, final);
		} else {
			size_t n = 0;
			int r = deflate_run(w, b, pos, end, final, b->out + o, cap - o, &n);
			if (r != 0)
				return r;
			o += n;
		}
		pos = end;
	}
	if (o > cap)
		return 1;
	b->out_len = o;
	return 0;
}

static int compress_block(struct worker *w, struct block *b)
{
	b->crc = crc32_gzip_refl(0, b->in, b->in_len);
	if (w->gz->level != GZIP_PARALLEL_STORED) {
		/* Incompressible input goes out stored (5 bytes per 64 KiB), which keeps
		 * gzip_parallel_bound() true whatever deflate does. */
		int r = compress_runs(w, b);
		if (r <= 0)
			return r;
	}
	b->out_len = write_stored(b->out, b->in, b->in_len, b->last);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct gzip_parallel *gz = w->gz;

	pthread_mutex_lock(&gz->lock);
	for (;;) {
		while (!gz->work_head && !gz->stopping && !gz->err)
			pthread_cond_wait(&gz->cond_work, &gz->lock);
		if (gz->err || !gz->work_head)
			break;
		struct block *b = gz->work_head;
		gz->work_head = b->next;
		if (!gz->work_head)
			gz->work_tail = NULL;
		pthread_mutex_unlock(&gz->lock);

		int r = compress_block(w, b);

		pthread_mutex_lock(&gz->lock);
		if (r < 0) {
			fail_locked(gz, r);
			break;
		}
		b->done = true;
		pthread_cond_signal(&gz->cond_done);
	}
	pthread_mutex_unlock(&gz->lock);
	return NULL;
}

/* --- writer ------------------------------------------------------------------------- */

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static int sink_put(struct gzip_parallel *gz, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	int r = gz->sink.write(gz->sink.opaque, buf, len);
	if (r < 0)
		return r;
	if (r > 0)
		return -EIO; /* the contract says 0 or negative; do not guess at the rest */
	atomic_fetch_add(&gz->bytes_out, (uint64_t)len);
	return 0;
}

static void *writer_main(void *arg)
{
	struct gzip_parallel *gz = arg;
	unsigned char hdr[GZIP_HDR_LEN] = {
		0x1f, 0x8b, 8 /* deflate */, 0 /* no flags */, 0, 0, 0, 0 /* no mtime */,
		gz->level == GZIP_PARALLEL_FAST ? 4 : gz->level == GZIP_PARALLEL_BEST ? 2 : 0,
		3 /* Unix */,
	};
	uint32_t crc = 0;
	uint64_t isize = 0;
	int r = sink_put(gz, hdr, sizeof(hdr));

	for (uint64_t seq = 0; r == 0; seq++) {
		struct block **slot = &gz->ring[seq % gz->nblocks];

		pthread_mutex_lock(&gz->lock);
		while (!gz->err && !(*slot && (*slot)->done))
			pthread_cond_wait(&gz->cond_done, &gz->lock);
		struct block *b = gz->err ? NULL : *slot;
		pthread_mutex_unlock(&gz->lock);
		if (!b)
			return NULL;

		r = sink_put(gz, b->out, b->out_len);
		if (r < 0)
			break;
		crc = crc_combine(crc, b->crc, b->in_len);
		isize += b->in_len;
		bool last = b->last;

		pthread_mutex_lock(&gz->lock);
		*slot = NULL;
		b->next = gz->free_list;
		gz->free_list = b;
		pthread_cond_signal(&gz->cond_free);
		pthread_mutex_unlock(&gz->lock);

		if (last) {
			unsigned char trailer[GZIP_TRAILER_LEN];
			put_le32(trailer, crc);
			put_le32(trailer + 4, (uint32_t)isize); /* ISIZE is mod 2^32 */
			r = sink_put(gz, trailer, sizeof(trailer));
			break;
		}
	}
	if (r < 0)
		fail(gz, r);
	return NULL;
}

/* --- producer ----------------------------------------------------------------------- */

static int acquire_block(struct gzip_parallel *gz)
{
	pthread_mutex_lock(&gz->lock);
	while (!gz->free_list && !gz->err)
		pthread_cond_wait(&gz->cond_free, &gz->lock);
	int err = gz->err;
	struct block *b = err ? NULL : gz->free_list;
	if (b)
		gz->free_list = b->next;
	pthread_mutex_unlock(&gz->lock);
	if (!b)
		return err;

	b->in_len = 0;
	b->out_len = 0;
	b->done = false;
	b->last = false;
	b->next = NULL;
	b->dict_len = gz->next_seq ? DICT_SIZE : 0;
	if (b->dict_len)
		memcpy(b->dict, gz->tail, DICT_SIZE);
	gz->cur = b;
	return 0;
}

static int submit_block(struct gzip_parallel *gz, bool last)
{
	struct block *b = gz->cur;

	gz->cur = NULL;
	/* Full blocks are at least DICT_SIZE long; the last block needs no successor. */
	if (!last)
		memcpy(gz->tail, b->in + b->in_len - DICT_SIZE, DICT_SIZE);
	pthread_mutex_lock(&gz->lock);
	b->seq = gz->next_seq++;
	b->last = last;
	gz->ring[b->seq % gz->nblocks] = b;
	if (gz->work_tail)
		gz->work_tail->next = b;
	else
		gz->work_head = b;
	gz->work_tail = b;
	pthread_cond_signal(&gz->cond_work);
	int err = gz->err;
	pthread_mutex_unlock(&gz->lock);
	return err;
}

int gzip_parallel_write(struct gzip_parallel *gz, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	if (gz->finish_called)
		return -EINVAL;
	while (len) {
		if (!gz->cur) {
			int r = acquire_block(gz);
			if (r < 0)
				return r;
		}
		struct block *b = gz->cur;
		size_t n = gz->block_size - b->in_len;
		if (n > len)
			n = len;
		memcpy(b->in + b->in_len, p, n);
		b->in_len += n;
		gz->bytes_in += n;
		p += n;
		len -= n;
		if (b->in_len == gz->block_size) {
			int r = submit_block(gz, false);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void join_all(struct gzip_parallel *gz)
{
	if (gz->joined)
		return;
	if (gz->writer_started)
		pthread_join(gz->writer, NULL);
	pthread_mutex_lock(&gz->lock);
	gz->stopping = true;
	pthread_cond_broadcast(&gz->cond_work);
	pthread_mutex_unlock(&gz->lock);
	for (unsigned i = 0; i < gz->nworkers; i++)
		if (gz->workers[i].started)
			pthread_join(gz->workers[i].thread, NULL);
	gz->joined = true;
}

int gzip_parallel_finish(struct gzip_parallel *gz)
{
	if (gz->finish_called)
		return -EINVAL;
	gz->finish_called = true;
	int r = gz->cur ? 0 : acquire_block(gz);
	if (r == 0)
		r = submit_block(gz, true);
	if (r < 0)
		fail(gz, r);
	/* The writer leaves after the trailer or at the first error, whichever comes. */
	join_all(gz);
	return gz->err;
}

uint64_t gzip_parallel_bytes_out(const struct gzip_parallel *gz)
{
	return atomic_load(&((struct gzip_parallel *)gz)->bytes_out);
}

uint64_t gzip_parallel_bytes_in(const struct gzip_parallel *gz)
{
	return gz->bytes_in;
}

/* --- setup and teardown ------------------------------------------------------------- */

static unsigned usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static int worker_init(struct worker *w, struct gzip_parallel *gz)
{
	w->gz = gz;
	if (gz->level == GZIP_PARALLEL_STORED)
		return 0;
	w->zs = calloc(1, sizeof(*w->zs));
	w->level_buf_size = gz->level == GZIP_PARALLEL_BEST ? ISAL_DEF_LVL3_DEFAULT
							     : ISAL_DEF_LVL1_DEFAULT;
	w->level_buf = malloc(w->level_buf_size);
	return w->zs && w->level_buf ? 0 : -ENOMEM;
}

static int pool_init(struct gzip_parallel *gz)
{
	size_t out_cap = stored_size(gz->block_size);

	gz->blocks = calloc(gz->nblocks, sizeof(*gz->blocks));
	gz->ring = calloc(gz->nblocks, sizeof(*gz->ring));
	if (!gz->blocks || !gz->ring)
		return -ENOMEM;
	for (size_t i = 0; i < gz->nblocks; i++) {
		struct block *b = &gz->blocks[i];
		b->in = malloc(gz->block_size);
		b->dict = malloc(DICT_SIZE);
		b->out = malloc(out_cap);
		if (!b->in || !b->dict || !b->out)
			return -ENOMEM;
		b->out_cap = out_cap;
		b->next = gz->free_list;
		gz->free_list = b;
	}
	return 0;
}

int gzip_parallel_new(const struct gzip_parallel_opts *opts, const struct amber_sink *sink,
		      struct gzip_parallel **ret)
{
	if (!sink || !sink->write || opts->level > GZIP_PARALLEL_BEST)
		return -EINVAL;
	struct gzip_parallel *gz = calloc(1, sizeof(*gz));
	if (!gz)
		return -ENOMEM;
	gz->level = opts->level;
	gz->sink = *sink;
	gz->block_size = opts->block_size ? opts->block_size : DEFAULT_BLOCK_SIZE;
	if (gz->block_size < MIN_BLOCK_SIZE)
		gz->block_size = MIN_BLOCK_SIZE;
	if (gz->block_size > MAX_BLOCK_SIZE)
		gz->block_size = MAX_BLOCK_SIZE;
	atomic_init(&gz->bytes_out, 0);

	unsigned nworkers = opts->threads ? opts->threads : usable_cpus();
	/* Enough blocks for every worker to hold one, one being filled and slack for the
	 * writer to reorder; fewer workers if the budget cannot feed them all. */
	size_t per_block = gz->block_size + DICT_SIZE + stored_size(gz->block_size);
	size_t max_blocks = POOL_BUDGET / per_block;
	if (max_blocks < 4)
		max_blocks = 4;
	if ((size_t)nworkers + 2 > max_blocks)
		nworkers = (unsigned)(max_blocks - 2);
	gz->nworkers = nworkers;
	gz->nblocks = 2 * (size_t)nworkers + 2;
	if (gz->nblocks > max_blocks)
		gz->nblocks = max_blocks;

	/* Initialised first so gzip_parallel_free can always destroy them. */
	pthread_mutex_init(&gz->lock, NULL);
	pthread_cond_init(&gz->cond_free, NULL);
	pthread_cond_init(&gz->cond_work, NULL);
	pthread_cond_init(&gz->cond_done, NULL);

	int r = pool_init(gz);
	gz->workers = calloc(nworkers, sizeof(*gz->workers));
	if (r == 0 && !gz->workers)
		r = -ENOMEM;
	for (unsigned i = 0; r == 0 && i < nworkers; i++)
		r = worker_init(&gz->workers[i], gz);
	for (unsigned i = 0; r == 0 && i < nworkers; i++) {
		r = -pthread_create(&gz->workers[i].thread, NULL, worker_main, &gz->workers[i]);
		gz->workers[i].started = r == 0;
	}
	if (r == 0) {
		r = -pthread_create(&gz->writer, NULL, writer_main, gz);
		gz->writer_started = r == 0;
	}
	if (r < 0) {
		gzip_parallel_free(gz);
		return r;
	}
	*ret = gz;
	return 0;
}

void gzip_parallel_free(struct gzip_parallel *gz)
{
	if (!gz)
		return;
	if (!gz->joined) {
		/* Abandoned mid-stream: make every thread leave at its next wait. */
		fail(gz, -ECANCELED);
		join_all(gz);
	}
	for (size_t i = 0; gz->blocks && i < gz->nblocks; i++) {
		free(gz->blocks[i].in);
		free(gz->blocks[i].dict);
		free(gz->blocks[i].out);
	}
	for (unsigned i = 0; gz->workers && i < gz->nworkers; i++) {
		free(gz->workers[i].zs);
		free(gz->workers[i].level_buf);
	}
	free(gz->workers);
	free(gz->blocks);
	free(gz->ring);
	pthread_cond_destroy(&gz->cond_done);
	pthread_cond_destroy(&gz->cond_work);
	pthread_cond_destroy(&gz->cond_free);
	pthread_mutex_destroy(&gz->lock);
	free(gz);
}
