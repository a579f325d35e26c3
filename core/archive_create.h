/* Create: walk a server directory and stream a gzip- or zstd-compressed tar of it into a
 * sink, hashing the compressed bytes as they pass. No temporary file, one pass. */
#ifndef AMBER_ARCHIVE_CREATE_H
#define AMBER_ARCHIVE_CREATE_H

#include <stdbool.h>
#include <stdint.h>

#include "report.h"
#include "stream.h"

struct ignore_rules;

enum archive_compression {
	ARCHIVE_COMPRESSION_GZIP = 0, /* the default: .tar.gz, what every panel expects */
	ARCHIVE_COMPRESSION_ZSTD,     /* .tar.zst: one multi-threaded zstd frame */
};

/* "none" keeps the container: a reader (and the name and media type the object is
 * stored under) never has to learn a third format. */
enum archive_level {
	ARCHIVE_LEVEL_FAST = 0, /* the default: deflate level 1 / zstd level 1 */
	ARCHIVE_LEVEL_NONE,     /* stored deflate / raw zstd blocks: still .tar.gz / .tar.zst */
	ARCHIVE_LEVEL_BEST,
};

struct archive_progress {
	uint64_t bytes_read;    /* file bytes read so far */
	uint64_t bytes_written; /* compressed bytes handed to the sink */
	uint64_t files;         /* entries written */
	uint64_t total_bytes;   /* from the pre-walk; 0 if not known */
	uint64_t total_files;
};

struct archive_create_opts {
	const char *root;                   /* the directory to archive */
	const struct ignore_rules *ignore;  /* NULL: none */
	enum archive_compression compression;
	enum archive_level level;
	unsigned threads;                   /* compression workers; 0 = one per core */
	/* File bytes read per second, checked per block; 0: no limit. */
	uint64_t io_bytes_per_s;
	/* Called from the engine's thread now and then (at most a few times a second). */
	void (*progress)(void *opaque, const struct archive_progress *p);
	void *progress_opaque;
	/* Polled between blocks; non-zero stops the run with -ECANCELED. */
	int (*cancelled)(void *opaque);
	void *cancelled_opaque;
	/* Compressed bytes the sink may take; 0: no limit. The write that would pass it
	 * never reaches the sink, and the run stops with -EFBIG and result.too_big set. */
	uint64_t max_bytes;
};

struct archive_create_result {
	uint64_t files, dirs, symlinks, skipped; /* skipped: sockets, devices, FIFOs */
	uint64_t bytes_in;   /* file content bytes archived */
	uint64_t bytes_out;  /* compressed bytes handed to the sink */
	uint8_t sha1[20];    /* of the compressed bytes */
	uint8_t sha256[32];
	bool too_big;        /* stopped at opts->max_bytes (the -EFBIG was not the sink's) */
	struct report report; /* files that changed, shrank, grew or vanished */
};

/* Counts what the walk will read (ignore rules applied): total bytes and entries. */
int archive_prewalk(const char *root, const struct ignore_rules *ignore,
		    uint64_t *ret_bytes, uint64_t *ret_files);

/* An upper bound on the tar stream archive_create would produce for the tree as this
 * walk sees it (same ignore rules): every entry's header, a pax extended header whether
 * needed or not, its content padded to 512 bytes, and the end-of-archive blocks. Files
 * added or grown after this walk are not covered. */
int archive_tar_bound(const char *root, const struct ignore_rules *ignore, uint64_t *ret_bytes,
		      uint64_t *ret_entries);
/* The most archive_create's output can be for tar_bytes of input, at any level. gzip:
 * deflate's worst case is capped by falling back to stored blocks (5 bytes per 64 KiB
 * and per compression block), plus the gzip header and trailer (gzip_parallel_bound).
 * zstd: raw blocks cap it the same way (zstd_stream_bound). */
uint64_t archive_compressed_bound(enum archive_compression comp, uint64_t tar_bytes);

/* 0 or a negative errno; on failure the sink has received a partial stream and the
 * caller aborts it. ret->report is filled either way; clear it with
 * archive_create_result_clear. */
int archive_create(const struct archive_create_opts *opts, const struct amber_sink *sink,
		   struct archive_create_result *ret);
void archive_create_result_clear(struct archive_create_result *r);

#endif
