/* Uploading a stream of unknown length into presigned S3 UploadPart URLs, as a sink the
 * archive engine writes into (design.md §3, the S3 path; pterodactyl-protocol.md §4.3
 * for what Wings does and where Amber differs).
 *
 * The stream is cut into parts of exactly part_size bytes (the last one shorter). A
 * part is PUT to urls[i] as soon as it is full, by one of in_flight worker threads, and
 * the next part fills meanwhile; the writer waits only when every slot is busy. Each
 * part stays where it was filled until the store answers 2xx with an ETag, so a
 * transient failure (transport error, 5xx, 429) re-sends it from there, with
 * exponential backoff and full jitter, at most retry.max_attempts times after the
 * first try. Any other answer, or a part that runs out of attempts, fails the whole
 * upload; the other transfers are cut short and nothing more is sent.
 *
 * Memory: at most (in_flight + 1) × part_size, whatever the stream's length. A part
 * larger than memory_max is spooled to an anonymous temporary file instead (O_TMPFILE,
 * or a file unlinked at once), one per slot, and then only PART_UPLOAD_SPOOL_IN_FLIGHT
 * parts are in flight, so the disk holds at most that many parts plus one, never the
 * whole archive.
 *
 * The caller must have called curl_global_init once, before any thread starts. */
#ifndef AMBER_PART_UPLOAD_H
#define AMBER_PART_UPLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "stream.h"

#define PART_UPLOAD_IN_FLIGHT 4u
/* Parts above this are spooled to disk rather than held in memory. */
#define PART_UPLOAD_MEMORY_MAX ((uint64_t)256 << 20)
#define PART_UPLOAD_SPOOL_IN_FLIGHT 2u
#define PART_UPLOAD_MESSAGE_MAX 512

struct part_upload_config {
	const char *const *urls; /* urls[i] takes part number i + 1; borrowed until free */
	size_t n_urls;
	uint64_t part_size;      /* > 0 */
	unsigned in_flight;      /* 0: PART_UPLOAD_IN_FLIGHT */
	uint64_t memory_max;     /* 0: PART_UPLOAD_MEMORY_MAX */
	const char *spool_dir;   /* where spooled parts live; NULL: $TMPDIR, else /tmp */
	/* Per part: retries after the first try, first delay, cap. max_attempts 0 with
	 * base_ms 0: the host's default policy. */
	struct host_retry_policy retry;
	const atomic_int *cancel; /* non-zero: every transfer stops, -ECANCELED; may be NULL */
	unsigned connect_timeout_ms; /* 0: 10000 */
	unsigned stall_timeout_ms;   /* an attempt that moves no byte this long fails; 0: 60000 */
};

struct part_upload_part {
	char *etag;           /* exactly as the store returned it, quotes included */
	unsigned part_number; /* from 1 */
};

struct part_upload;

/* Starts the worker threads. 0, -EINVAL (no urls, part_size 0) or -ENOMEM. */
int part_upload_new(const struct part_upload_config *cfg, struct part_upload **ret);
/* The sink the archive engine writes into: part_upload_write. */
struct amber_sink part_upload_sink(struct part_upload *pu);
/* Takes all len bytes or fails with the upload's first error: -EFBIG when the stream
 * needs more parts than there are urls, -ECANCELED, or what a failed part gave (-EIO
 * transport, -EAGAIN transient failures outlasted the attempts, -EACCES/-EPERM 401/403,
 * -EINVAL another 4xx, -EBADMSG a 2xx without an ETag). One writer thread only. */
int part_upload_write(struct part_upload *pu, const void *buf, size_t len);
/* Sends what is left (a last, shorter part) and waits for every part to be stored.
 * 0 or the first error. Call once, after the last write. */
int part_upload_finish(struct part_upload *pu);
/* After a successful finish: the parts used, in order (n may be fewer than n_urls). */
const struct part_upload_part *part_upload_parts(const struct part_upload *pu, size_t *ret_n);
/* Bytes the store has acknowledged so far; safe from any thread. */
uint64_t part_upload_bytes_stored(const struct part_upload *pu);
/* Attempts that failed and were retried so far (for logs and tests). */
unsigned part_upload_retries(const struct part_upload *pu);
/* Why the upload failed ("" while it has not). */
const char *part_upload_error(const struct part_upload *pu);
/* Stops the workers (cutting transfers short) and frees everything. NULL is ok. */
void part_upload_free(struct part_upload *pu);

#endif
