/* The compressed half of a create: gzip (gzip_parallel) or zstd (zstd_stream) behind
 * one interface, chosen per adapter instance (`compression`, `level`) or per command,
 * and the names, media types and size bounds that go with each choice. */
#ifndef AMBER_COMPRESSOR_H
#define AMBER_COMPRESSOR_H

#include <stddef.h>
#include <stdint.h>

#include "archive_create.h"
#include "stream.h"

struct compressor;

/* threads: compression workers; 0 = one per usable CPU. 0 or a negative errno. */
int compressor_new(enum archive_compression comp, enum archive_level level, unsigned threads,
		   const struct amber_sink *sink, struct compressor **ret);
/* As gzip_parallel_write / zstd_stream_write: 0 or the stream's first error. */
int compressor_write(struct compressor *c, const void *buf, size_t len);
/* Ends the stream; the sink has everything when it returns 0. At most once. */
int compressor_finish(struct compressor *c);
/* Bytes the sink has accepted so far. */
uint64_t compressor_bytes_out(const struct compressor *c);
/* Stops the threads, abandoning an unfinished stream. NULL is ok. */
void compressor_free(struct compressor *c);
/* The most the compressed stream can be for tar_bytes of input, at any level. */
uint64_t compressor_bound(enum archive_compression comp, uint64_t tar_bytes);

/* "gzip" / "zstd", "none" / "fast" / "best": 0, or -EINVAL for anything else. */
int compression_parse(const char *s, enum archive_compression *ret);
int compression_level_parse(const char *s, enum archive_level *ret);
const char *compression_name(enum archive_compression comp);
const char *compression_level_name(enum archive_level level);
/* "application/gzip" / "application/zstd". */
const char *compression_media_type(enum archive_compression comp);

/* What the first bytes of a stored archive say it is. */
enum stored_format {
	STORED_UNKNOWN = 0, /* too short to tell */
	STORED_GZIP,
	STORED_ZSTD,
	STORED_TAR, /* neither magic: handed to the tar reader as is */
};
enum stored_format stored_format_sniff(const void *buf, size_t len);

#endif
