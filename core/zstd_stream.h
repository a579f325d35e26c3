/* A zstd stream (RFC 8878) of ONE frame, compressed by libzstd's own worker threads
 * (ZSTD_c_nbWorkers): the input is cut into jobs that the workers compress in parallel,
 * each job reusing the tail of the previous one as history, and libzstd emits them in
 * order into a single frame with a content checksum. One frame, not one per block, so
 * every zstd reader (zstd -d, tar --zstd, bsdtar, libarchive) sees one plain stream.
 *
 * The same shape as gzip_parallel so the archive engine can drive either: the sink is
 * called from a writer thread of ours, one call at a time, in stream order, so hashing
 * and storing overlap with the producer's reading. Memory is bounded whatever the input
 * size: libzstd keeps a fixed number of jobs in flight, a fixed ring of output pieces
 * circulates, and the worker count is capped by a budget (see zstd_stream.c). */
#ifndef AMBER_ZSTD_STREAM_H
#define AMBER_ZSTD_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

enum zstd_stream_level {
	ZSTD_STREAM_FAST = 0, /* zstd level 1 */
	ZSTD_STREAM_RAW,      /* raw (uncompressed) blocks: no compression, still valid zstd */
	ZSTD_STREAM_BEST,     /* a high level with its windows capped to stay in budget */
};

struct zstd_stream_opts {
	enum zstd_stream_level level;
	unsigned threads; /* compression workers; 0 = one per usable CPU */
};

struct zstd_stream;

/* Starts libzstd's workers and our writer thread. 0 or a negative errno. */
int zstd_stream_new(const struct zstd_stream_opts *opts, const struct amber_sink *sink,
		    struct zstd_stream **ret);
/* Appends bytes. 0, or the stream's first error (a failed sink write, say); after an
 * error nothing more reaches the sink. */
int zstd_stream_write(struct zstd_stream *zs, const void *buf, size_t len);
/* Ends the frame and waits until the sink has all of it. 0 or the first error. At most
 * once. */
int zstd_stream_finish(struct zstd_stream *zs);
/* Bytes the sink has accepted so far; safe from any thread. */
uint64_t zstd_stream_bytes_out(const struct zstd_stream *zs);
/* Uncompressed bytes written so far. */
uint64_t zstd_stream_bytes_in(const struct zstd_stream *zs);
/* Stops the workers, abandoning an unfinished frame, and frees everything. NULL is ok. */
void zstd_stream_free(struct zstd_stream *zs);
/* The most the output can be for len input bytes, at any level: zstd sends a block it
 * cannot shrink as a raw block, so this is ZSTD_compressBound's formula (computed in 64
 * bits) plus the frame header, the closing empty block and the checksum. */
uint64_t zstd_stream_bound(uint64_t len);

#endif
