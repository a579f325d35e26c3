/* Uploading a stream of unknown length through a resumable upload session that the
 * panel's store presigned for this node (ABI 1.1 AMBER_PRESIGN_RESUMABLE; the protocol
 * of GCS's XML API, gcs-protocol.md §3.2, §3.6, §5.5), as a sink the archive engine
 * writes into. The node holds no credentials: the start URL is signed, the session URI
 * it opens needs none.
 *
 * The stream is sent in chunks of chunk_size bytes with "Content-Range: bytes a-b/STAR",
 * the last one with the total and the CRC32C of the whole object in X-Goog-Hash (the
 * store refuses a mismatch; a final answer's own x-goog-hash is compared too). Only the
 * unacknowledged chunk is in memory: what a 308's Range acknowledges is dropped, the
 * rest is re-sent from exactly there. After a transport error, 408, 429 or 5xx the
 * session is asked where it stands ("bytes STAR/STAR") before anything is re-sent, with
 * the host's backoff between attempts; a lost session (404/410) fails the upload, as
 * the stream cannot be replayed. An upload freed before it finished is cancelled
 * (DELETE of the session), so the store keeps nothing.
 *
 * The caller must have called curl_global_init once, before any thread starts. */
#ifndef AMBER_RESUMABLE_UPLOAD_H
#define AMBER_RESUMABLE_UPLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "stream.h"

#define RESUMABLE_UPLOAD_UNIT (UINT64_C(256) << 10) /* chunks are multiples of this */
#define RESUMABLE_UPLOAD_MESSAGE_MAX 512

struct resumable_upload_config {
	const char *start_url;              /* borrowed until free */
	const char *const *start_headers;   /* "Name: value" lines for the opening POST */
	size_t n_start_headers;
	const char *content_type;           /* NULL: application/gzip */
	uint64_t chunk_size;                /* > 0, a multiple of RESUMABLE_UPLOAD_UNIT */
	/* Retries after the first try of each request; max_attempts 0 with base_ms 0: a
	 * default policy. */
	struct host_retry_policy retry;
	const atomic_int *cancel;    /* non-zero: the transfer stops, -ECANCELED; may be NULL */
	unsigned connect_timeout_ms; /* 0: 10000 */
	unsigned stall_timeout_ms;   /* an attempt that moves no byte this long fails; 0: 60000 */
};

struct resumable_upload;

/* 0, -EINVAL (no URL, a chunk size that is not a multiple of 256 KiB) or -ENOMEM.
 * Nothing is sent before the first chunk is full (or finish). */
int resumable_upload_new(const struct resumable_upload_config *cfg,
			 struct resumable_upload **ret);
/* The sink the archive engine writes into: resumable_upload_write. */
struct amber_sink resumable_upload_sink(struct resumable_upload *ru);
/* Takes all len bytes, sending a chunk whenever one is full. 0 or the upload's first
 * error: -ECANCELED, -EIO (transport, lost session, protocol), -EAGAIN (transient
 * failures outlasted the attempts), -EACCES/-EPERM (401/403: a refused or expired
 * URL), -EINVAL (another 4xx), -EBADMSG (the store's checksum differs). */
int resumable_upload_write(struct resumable_upload *ru, const void *buf, size_t len);
/* Sends the rest as the final chunk and waits until the object exists. Call once. */
int resumable_upload_finish(struct resumable_upload *ru);
/* Bytes the store has acknowledged so far. */
uint64_t resumable_upload_bytes_stored(const struct resumable_upload *ru);
/* Attempts that failed and were retried so far (for logs and tests). */
unsigned resumable_upload_retries(const struct resumable_upload *ru);
/* Why the upload failed ("" while it has not). */
const char *resumable_upload_error(const struct resumable_upload *ru);
/* Cancels an unfinished session (best effort) and frees everything. NULL is ok. */
void resumable_upload_free(struct resumable_upload *ru);

#endif
