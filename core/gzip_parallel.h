/* Parallel gzip that produces ONE gzip member (RFC 1952), the way pigz does it: the input
 * is cut into blocks, a pool of worker threads deflates each block on its own (primed
 * with the 32 KiB before it as dictionary, so ratios barely suffer) and ends it with a
 * sync flush so it stops on a byte boundary; only the last block carries BFINAL. A writer
 * thread hands the blocks to the sink strictly in order between the gzip header and a
 * trailer whose CRC-32 is combined from per-block CRCs. One member matters: readers such
 * as Python's streaming tarfile (`r|gz`) stop at the first member of a multi-member file.
 *
 * At the fast level, 64 KiB segments that look like noise (already compressed data:
 * jars, .gz logs, images) are sent as stored blocks without trying deflate on them,
 * which would cost as much CPU as any other data and gain nothing.
 *
 * Memory is bounded whatever the input size: a fixed pool of blocks circulates between
 * the producer, the workers and the writer, and the producer waits when all are busy. */
#ifndef AMBER_GZIP_PARALLEL_H
#define AMBER_GZIP_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

enum gzip_parallel_level {
	GZIP_PARALLEL_FAST = 0, /* ISA-L level 1 */
	GZIP_PARALLEL_STORED,   /* stored deflate blocks: no compression, still valid gzip */
	GZIP_PARALLEL_BEST,     /* ISA-L's highest level */
};

struct gzip_parallel_opts {
	enum gzip_parallel_level level;
	unsigned threads;  /* compression workers; 0 = one per usable CPU */
	size_t block_size; /* uncompressed bytes per block; 0 = the default */
};

struct gzip_parallel;

/* Starts the worker and writer threads. The sink is called from the writer thread only,
 * one call at a time, in stream order. 0 or a negative errno. */
int gzip_parallel_new(const struct gzip_parallel_opts *opts, const struct amber_sink *sink,
		      struct gzip_parallel **ret);
/* Appends bytes, waiting while every block is in flight. One producer thread only.
 * 0, or the pipeline's first error (a failed sink write, say); after an error nothing
 * more reaches the sink. */
int gzip_parallel_write(struct gzip_parallel *gz, const void *buf, size_t len);
/* Ends the stream (last block, trailer) and waits until the sink has all of it.
 * 0 or the pipeline's first error. Call at most once. */
int gzip_parallel_finish(struct gzip_parallel *gz);
/* Bytes the sink has accepted so far; safe from any thread. */
uint64_t gzip_parallel_bytes_out(const struct gzip_parallel *gz);
/* Uncompressed bytes written so far (the producer's count). */
uint64_t gzip_parallel_bytes_in(const struct gzip_parallel *gz);
/* Stops the threads, abandoning an unfinished stream, and frees everything. NULL is ok. */
void gzip_parallel_free(struct gzip_parallel *gz);
/* The most the output can be for len input bytes, at any level: a block that deflate
 * would expand is sent as stored blocks instead. block_size as in the options. */
uint64_t gzip_parallel_bound(uint64_t len, size_t block_size);

#endif
