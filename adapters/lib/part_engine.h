/*
 * part_engine: the parallel part uploader of the S3-style multipart uploads (S3, the GCS
 * XML API with HMAC keys).
 *
 * Parts go out on worker threads, each with its own curl handle (and so its own
 * connection), rather than through one curl multi loop: a part's life (send, wait, back
 * off, re-send the same bytes from memory) is then straight-line code, the host's
 * backoff service (which sleeps) can be called as is, and the host thread is never
 * needed to drive transfers between writer_write calls.
 *
 * A part is held in memory until its PUT is acknowledged (send_part retries transient
 * failures on the same bytes). Memory: at most `parallel` parts queued or in flight.
 * Workers use the operation's ctx only for is_cancelled and backoff (thread-safe host
 * services); the first failure is recorded and returned to the host's thread.
 */
#ifndef AMBER_ADAPTERS_PART_ENGINE_H
#define AMBER_ADAPTERS_PART_ENGINE_H

#include "http_client.h"

/* Sends part `number` (with its retries) on curl: 0 with *ret_etag malloc'd, or an
 * AMBER_E* with err filled. Called on worker threads, concurrently. */
typedef int (*part_send_fn)(void *arg, CURL *curl, amber_ctx *ctx, uint32_t number,
			    const void *data, size_t len, char **ret_etag, struct http_err *err);

struct part_engine;

/* Starts up to `parallel` workers (at least one, or AMBER_ENOMEM with err filled).
 * max_parts bounds the part numbers. */
int part_engine_new(unsigned parallel, uint32_t max_parts, part_send_fn send, void *arg,
		    amber_ctx *ctx, struct part_engine **ret, struct http_err *err);
/* Queues the next part (the engine takes data, malloc'd, in every case), waiting while
 * `parallel` parts are pending. 0, or an AMBER_E* with err filled: a worker's failure,
 * cancellation, too many parts. */
int part_engine_submit(struct part_engine *pe, amber_ctx *ctx, void *data, size_t len,
		       struct http_err *err);
/* Waits for every part: 0 with ret_etags (one per part, [number - 1]) and ret_n, owned
 * by the engine, or an AMBER_E* with err filled. */
int part_engine_finish(struct part_engine *pe, amber_ctx *ctx, char *const **ret_etags,
		       size_t *ret_n, struct http_err *err);
/* Stops the workers (parts not started are dropped) and frees everything. */
void part_engine_free(struct part_engine *pe);

#endif
