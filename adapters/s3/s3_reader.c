/*
 * The restore stream: GetObject driven through a curl multi handle on the caller's
 * thread. reader_read runs the transfer only until it has bytes to return, and pauses
 * it when more than SPILL_MAX is waiting, so memory stays bounded with no background
 * thread. A connection dropped mid-body is resumed with Range: bytes=<next>- (bounded
 * by the host's backoff), and every answer's status is checked before its first byte
 * is handed out.
 */
#include "s3_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPILL_MAX (1u << 20)

struct amber_reader {
	amber_instance *in;
	char *key;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hl;
	int attached;

	uint64_t pos;  /* absolute offset of the next byte the caller gets */
	uint64_t size; /* the whole object's size, or AMBER_SIZE_UNKNOWN */
	uint64_t skip; /* bytes to drop: a server that ignored our Range */
	struct strbuf spill;
	size_t spill_off;
	int paused;

	/* the current response */
	long status;
	int headers_done;
	int done;
	CURLcode result;
	struct strbuf errbody;
	char content_range[128];
	int64_t content_length;
};

static size_t rd_header(char *data, size_t size, size_t n, void *p)
{
	amber_reader *r = p;
	size_t len = size * n;
	if (len >= 12 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', len);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->content_range[0] = '\0';
		r->content_length = -1;
	} else if (len > 14 && !strncasecmp(data, "Content-Range:", 14)) {
		size_t l = len - 14 < sizeof(r->content_range) - 1 ? len - 14
								   : sizeof(r->content_range) - 1;
		memcpy(r->content_range, data + 14, l);
		r->content_range[l] = '\0';
	} else if (len > 15 && !strncasecmp(data, "Content-Length:", 15)) {
		r->content_length = strtoll(data + 15, NULL, 10);
	} else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
		if (r->status >= 200) /* not a 100 Continue */
			r->headers_done = 1;
	}
	return len;
}

static size_t rd_write(char *data, size_t size, size_t n, void *p)
{
	amber_reader *r = p;
	size_t len = size * n;
	r->headers_done = 1;
	if (r->status < 200 || r->status >= 300) {
		if (r->errbody.len < 65536)
			strbuf_append(&r->errbody, data, len);
		return len;
	}
	if (r->spill.len - r->spill_off >= SPILL_MAX) {
		r->paused = 1;
		return CURL_WRITEFUNC_PAUSE; /* curl keeps these bytes and re-delivers them */
	}
	size_t drop = r->skip < len ? (size_t)r->skip : len;
	r->skip -= drop;
	strbuf_append(&r->spill, data + drop, len - drop);
	return strbuf_failed(&r->spill) ? 0 : len;
}

static void detach(amber_reader *r)
{
	if (r->attached)
		curl_multi_remove_handle(r->multi, r->easy);
	r->attached = 0;
	curl_slist_free_all(r->hl);
	r->hl = NULL;
}

/* Starts GET from absolute offset `from`. */
static int start(amber_reader *r, uint64_t from, struct s3_err *err)
{
	detach(r);
	char range[64];
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", from);
	struct sigv4_kv h[1] = { { "range", range } };
	struct s3_req rq = { .method = "GET", .key = r->key, .headers = h,
			     .n_headers = from ? 1 : 0, .what = "GetObject" };
	/* No ctx on the handle: the ctx is per call here, and cancellation is checked in
	 * the drive loop instead. */
	if (s3_setup_handle(r->in, r->easy, NULL, &rq, NULL, &r->hl, err) < 0)
		return err->code;
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, rd_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, rd_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	r->status = 0;
	r->headers_done = r->done = r->paused = 0;
	r->result = CURLE_OK;
	r->skip = 0;
	strbuf_reset(&r->errbody);
	r->content_range[0] = '\0';
	r->content_length = -1;
	if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "GetObject: cannot start the transfer");
		return err->code;
	}
	r->attached = 1;
	return 0;
}

/* Runs the transfer a little. */
static int drive(amber_reader *r, amber_ctx *ctx)
{
	if (amber_host_api->is_cancelled(ctx))
		return AMBER_ECANCELED;
	int running = 0;
	curl_multi_perform(r->multi, &running);
	int left;
	CURLMsg *m;
	while ((m = curl_multi_info_read(r->multi, &left)))
		if (m->msg == CURLMSG_DONE && m->easy_handle == r->easy) {
			r->done = 1;
			r->result = m->data.result;
		}
	if (!r->done && r->spill.len == r->spill_off && !r->paused)
		curl_multi_poll(r->multi, NULL, 0, 200, NULL);
	return 0;
}

/* Drives until the current answer's headers are in (or it ended), and judges them.
 * Returns 0 when body bytes may flow, 1 to retry (transient), or an AMBER_E*. */
static int await_headers(amber_reader *r, amber_ctx *ctx, uint64_t from, struct s3_err *err)
{
	while (!r->headers_done && !r->done) {
		int c = drive(r, ctx);
		if (c < 0) {
			err->code = c;
			snprintf(err->msg, sizeof(err->msg), "GetObject: cancelled");
			return c;
		}
	}
	if (r->status >= 300 || r->status < 200) {
		while (!r->done) /* the error body, for its Code */
			if (drive(r, ctx) < 0)
				break;
		if (r->status == 0) {
			err->code = AMBER_EAGAIN;
			err->status = 0;
			snprintf(err->msg, sizeof(err->msg), "GetObject: %s",
				 curl_easy_strerror(r->result));
			return 1;
		}
		if (r->status == 416) { /* from == size: nothing left, which is fine */
			r->done = 1;
			r->result = CURLE_OK;
			r->status = 206;
			r->headers_done = 1;
			return 0;
		}
		s3_err_from_response(err, r->status, r->errbody.data, "GetObject");
		return s3_is_transient(r->status, err->s3code) ? 1 : err->code;
	}
	/* The whole object's size, whatever the offset. */
	const char *slash = strchr(r->content_range, '/');
	uint64_t total = AMBER_SIZE_UNKNOWN;
	if (r->status == 206 && slash && slash[1] != '*')
		total = strtoull(slash + 1, NULL, 10);
	else if (r->status == 200 && r->content_length >= 0)
		total = (uint64_t)r->content_length;
	if (total != AMBER_SIZE_UNKNOWN) {
		if (r->size != AMBER_SIZE_UNKNOWN && r->size != total) {
			err->code = AMBER_EINTEGRITY;
			snprintf(err->msg, sizeof(err->msg),
				 "GetObject: the object changed size while being read "
				 "(%" PRIu64 " then %" PRIu64 " bytes)", r->size, total);
			return err->code;
		}
		r->size = total;
	}
	if (r->status == 200 && from > 0)
		r->skip = from; /* the Range was ignored: drop what we already have */
	return 0;
}

/* Opens (or reopens, after a drop) at r->pos, with retries. */
static int open_at(amber_reader *r, amber_ctx *ctx, struct s3_err *err)
{
	for (unsigned attempt = 1;; attempt++) {
		int c = start(r, r->pos, err);
		if (c < 0)
			return c;
		c = await_headers(r, ctx, r->pos, err);
		if (c <= 0)
			return c;
		c = s3_backoff(ctx, attempt, err);
		if (c < 0)
			return c;
	}
}

int s3_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
		   amber_object_info *ret_info, amber_reader **ret)
{
	*ret = NULL;
	size_t len = key ? strnlen(key, 1025) : 0;
	if (len == 0 || len > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "key must be 1 to 1024 bytes");
	amber_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	r->in = self;
	r->key = strdup(key);
	r->multi = curl_multi_init();
	r->easy = curl_easy_init();
	r->pos = offset;
	r->size = AMBER_SIZE_UNKNOWN;
	if (!r->key || !r->multi || !r->easy) {
		s3_reader_free(r);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	struct s3_err err = { 0 };
	int c = open_at(r, ctx, &err);
	if (c < 0) {
		s3_reader_free(r);
		if (c == AMBER_ENOTFOUND)
			return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s", key);
		return s3_set_error(ctx, &err);
	}
	if (r->size != AMBER_SIZE_UNKNOWN && offset > r->size) {
		uint64_t sz = r->size;
		s3_reader_free(r);
		return amber_host_api->set_error(ctx, AMBER_EINVAL,
						 "%s: offset %" PRIu64 " is past the end (%" PRIu64
						 " bytes)", key, offset, sz);
	}
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = r->size;
	*ret = r;
	return AMBER_OK;
}

int64_t s3_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	for (;;) {
		size_t have = r->spill.len - r->spill_off;
		if (have > 0) {
			size_t n = have < cap ? have : cap;
			memcpy(buf, r->spill.data + r->spill_off, n);
			r->spill_off += n;
			r->pos += n;
			if (r->spill_off == r->spill.len)
				r->spill.len = r->spill_off = 0;
			if (r->paused && r->spill.len - r->spill_off < SPILL_MAX) {
				r->paused = 0;
				curl_easy_pause(r->easy, CURLPAUSE_CONT);
			}
			return (int64_t)n;
		}
		if (r->done) {
			int complete = r->result == CURLE_OK &&
				       (r->size == AMBER_SIZE_UNKNOWN || r->pos >= r->size);
			if (complete)
				return 0;
			if (r->result == CURLE_OK && r->pos > r->size)
				return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
								 "GetObject: more bytes than the "
								 "object's size");
			/* Dropped mid-body (or ended short): resume from the next byte. */
			struct s3_err err = { 0 };
			int b = 0;
			for (unsigned attempt = 1; b == 0; attempt++) {
				b = amber_host_api->backoff(ctx, attempt);
				if (b < 0)
					return amber_host_api->set_error(
						ctx, b == AMBER_ECANCELED ? b : AMBER_EAGAIN,
						"GetObject: connection lost at byte %" PRIu64
						" (%s); gave up resuming",
						r->pos, curl_easy_strerror(r->result));
				int c = open_at(r, ctx, &err);
				if (c == 0)
					break;
				if (c != AMBER_EAGAIN)
					return s3_set_error(ctx, &err);
			}
			continue;
		}
		if (amber_host_api->is_cancelled(ctx))
			return amber_host_api->set_error(ctx, AMBER_ECANCELED, "GetObject: cancelled");
		drive(r, ctx);
	}
}

void s3_reader_free(amber_reader *r)
{
	if (!r)
		return;
	if (r->multi)
		detach(r);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	strbuf_reset(&r->spill);
	strbuf_reset(&r->errbody);
	free(r->key);
	free(r);
}
