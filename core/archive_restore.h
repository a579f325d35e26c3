/* Restore: read a .tar.gz / .tar.zst stream and write its entries beneath a root,
 * refusing (and reporting) anything that would land outside it. */
#ifndef AMBER_ARCHIVE_RESTORE_H
#define AMBER_ARCHIVE_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "report.h"
#include "stream.h"

struct archive_restore_progress {
	uint64_t bytes_in;      /* compressed bytes read from the source */
	uint64_t bytes_written; /* file bytes written */
	uint64_t files;
};

struct archive_restore_opts {
	const char *root;  /* created if missing */
	bool truncate;     /* empty root first, but only once the source's first entry
			    * has been read and parsed */
	int64_t uid, gid;  /* owner for every entry when running as root; -1 = keep ours */
	/* File bytes written per second, checked per write; 0: no limit. */
	uint64_t io_bytes_per_s;
	/* 1: everything on the caller's thread; otherwise gzip is inflated on a thread of
	 * its own (the restore uses at most two). */
	unsigned threads;
	void (*progress)(void *opaque, const struct archive_restore_progress *p);
	void *progress_opaque;
	/* Also asked from the gzip decompression thread, never two calls at once. */
	int (*cancelled)(void *opaque);
	void *cancelled_opaque;
};

struct archive_restore_result {
	uint64_t files, dirs, symlinks;
	uint64_t bytes_written;
	uint64_t refused;     /* entries not written, each named in report */
	struct report report;
};

/* 0 when the stream was read to its end (refused entries do not fail the restore;
 * see ret->refused), or a negative errno: -EBADMSG for a stream that is not a
 * tar.gz/tar.zst or is corrupt, the source's own error, -ENOSPC, ... */
int archive_restore(const struct archive_restore_opts *opts, const struct amber_source *src,
		    struct archive_restore_result *ret);
void archive_restore_result_clear(struct archive_restore_result *r);

#endif
