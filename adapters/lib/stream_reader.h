/*
 * stream_reader: the pull-model streaming GET both remote-store adapters restore with.
 *
 * The transfer runs on the caller's thread through a curl multi handle, only while
 * stream_reader_read needs bytes, and is paused when a window of bytes is waiting, so
 * memory stays bounded with no background thread. A connection dropped mid-body is
 * resumed from the next byte (the adapter's setup sends Range: bytes=<from>- and
 * whatever pins the object, e.g. GCS's generation), bounded by the host's backoff; every
 * answer's status is checked before its first byte is handed out, and a size that
 * changes between answers is an integrity error.
 */
#ifndef AMBER_ADAPTERS_STREAM_READER_H
#define AMBER_ADAPTERS_STREAM_READER_H

#include "http_client.h"

struct stream_reader_ops {
	/* Sets up easy (after a reset) for a GET from absolute offset `from`: 0, or an
	 * AMBER_E* with err filled. *ret_hl is freed once the transfer is over. */
	int (*setup)(void *arg, CURL *easy, uint64_t from, struct curl_slist **ret_hl,
		     struct http_err *err);
	/* A non-2xx answer (body: its error document, may be NULL): fills err; returns 1
	 * when transient, else err->code. */
	int (*judge)(void *arg, long status, const char *body, struct http_err *err);
	/* Optional: a 2xx answer is accepted (e.g. to pin its generation). */
	void (*accepted)(void *arg, const struct http_resp *resp);
};

struct stream_reader;

/* Opens at offset, with retries. 0 with *ret set, or an AMBER_E* with err filled (an
 * offset past the end: AMBER_EINVAL). what names the request in messages. */
int stream_reader_open(const struct stream_reader_ops *ops, void *arg, const char *what,
		       amber_ctx *ctx, uint64_t offset, struct stream_reader **ret,
		       struct http_err *err);
/* The object's size, or AMBER_SIZE_UNKNOWN. */
uint64_t stream_reader_size(const struct stream_reader *sr);
/* Up to cap bytes: their count, 0 at the end, or an AMBER_E* with err filled. */
int64_t stream_reader_read(struct stream_reader *sr, amber_ctx *ctx, void *buf, size_t cap,
			   struct http_err *err);
void stream_reader_free(struct stream_reader *sr);

#endif
