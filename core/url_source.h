/* A backup read from a URL (the download_url a panel sends with an S3 restore,
 * pterodactyl-protocol.md §2.2) as an amber_source for the restore engine.
 *
 * open sends the GET (no Authorization: a presigned URL carries its own) and waits for
 * the response head, so a URL that is not a backup fails there, before the restore
 * engine (and a truncation) ever starts: the status must be 200, and a Content-Type, when
 * there is one, must be one a tar archive can carry (gzip, zstd, tar, octet-stream) —
 * an HTML or XML error page with a 200 is refused. The content itself is then sniffed by
 * the engine, which truncates only after the first entry parsed.
 *
 * Redirects are not followed at all: a presigned URL is signed for its host and a store
 * answers it directly, so a 3xx is either a misconfiguration or a way to make the node
 * fetch something else (an internal address); it fails with the Location named.
 *
 * A connection that drops mid-body (or a body shorter than its Content-Length) is
 * resumed with "Range: bytes=<received>-". A 206 must start exactly there (and report the
 * same total). A 200 (a server that ignores Range) is accepted only when it is the same
 * object — same ETag when both answers have one, same length when both say it — and its
 * first <received> bytes are read and dropped: slower than a 206, but correct, and a
 * store that cannot do ranges still restores. Anything else fails. At most
 * retry.max_attempts attempts in a row may fail without a new byte arriving.
 *
 * The caller must have called curl_global_init once, before any thread starts. */
#ifndef AMBER_URL_SOURCE_H
#define AMBER_URL_SOURCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "stream.h"

#define URL_SOURCE_MESSAGE_MAX 512

struct url_source_config {
	const char *url;            /* http:// or https:// */
	const atomic_int *cancel;   /* non-zero: reads fail with -ECANCELED; may be NULL */
	/* Failed attempts in a row (before a byte arrives) and their backoff; all 0: the
	 * host's default policy. */
	struct host_retry_policy retry;
	unsigned connect_timeout_ms; /* 0: 10000 */
	unsigned stall_timeout_ms;   /* no byte for this long fails the attempt; 0: 60000 */
};

struct url_source;

/* 0 with *ret once a usable response head arrived; otherwise a negative errno and the
 * reason in err (if not NULL): -ENOENT 404/410, -EACCES 401/403, -EINVAL another 4xx, a
 * redirect or a bad URL, -EPROTO an unacceptable content type, -EAGAIN 5xx/429/transport
 * errors outlasted the attempts, -ECANCELED, -ENOMEM. */
int url_source_open(const struct url_source_config *cfg, struct url_source **ret, char *err,
		    size_t err_cap);
/* Bytes (> 0), 0 at the end, or a negative errno (the reason: url_source_error). */
int64_t url_source_read(struct url_source *s, void *buf, size_t cap);
struct amber_source url_source_source(struct url_source *s);
const char *url_source_error(const struct url_source *s);
/* Requests sent after the first (resumes and retries), for logs and tests. */
unsigned url_source_resumes(const struct url_source *s);
uint64_t url_source_bytes(const struct url_source *s);
void url_source_free(struct url_source *s);

#endif
