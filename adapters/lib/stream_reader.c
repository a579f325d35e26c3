/* The streaming, resuming GET; see stream_reader.h. */
#include "stream_reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MAX (1u << 20)

struct stream_reader {
	const struct stream_reader_ops *ops;
	void *arg;
	const char *what;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hl;
	int attached;

	uint64_t pos;  /* absolute offset of the next byte the caller gets */
	uint64_t size; /* the whole object's size, or AMBER_SIZE_UNKNOWN */
	uint64_t skip; /* bytes to drop: a server that ignored our Range */
	struct strbuf win;
	size_t win_off;
	int paused;

	/* the current answer */
	struct http_resp resp;
	int headers_done, done;
	CURLcode result;
	struct strbuf errbody;
};

static size_t sr_header(char *data, size_t size, size_t n, void *p)
{
	struct stream_reader *r = p;
	size_t len = size * n;
	if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
		if (r->resp.status >= 200) /* not a 100 Continue */
			r->headers_done = 1;
		return len;
	}
	http_resp_header(&r->resp, data, len);
	return len;
}

static size_t sr_write(char *data, size_t size, size_t n, void *p)
{
	struct stream_reader *r = p;
	size_t len = size * n;
	r->headers_done = 1;
	if (r->resp.status < 200 || r->resp.status >= 300) {
		if (r->errbody.len < 65536)
			strbuf_append(&r->errbody, data, len);
		return len;
	}
	if (r->win.len - r->win_off >= WINDOW_MAX) {
		r->paused = 1;
		return CURL_WRITEFUNC_PAUSE; /* curl keeps these bytes and re-delivers them */
	}
	size_t drop = r->skip < len ? (size_t)r->skip : len;
	r->skip -= drop;
	strbuf_append(&r->win, data + drop, len - drop);
	return strbuf_failed(&r->win) ? 0 : len;
}

static void detach(struct stream_reader *r)
{
	if (r->attached)
		curl_multi_remove_handle(r->multi, r->easy);
	r->attached = 0;
	curl_slist_free_all(r->hl);
	r->hl = NULL;
}

/* Starts the GET from r->pos. */
static int start(struct stream_reader *r, struct http_err *err)
{
	detach(r);
	int c = r->ops->setup(r->arg, r->easy, r->pos, &r->hl, err);
	if (c < 0)
		return c;
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, sr_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, sr_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	r->resp.status = 0;
	http_resp_clear(&r->resp);
	r->headers_done = r->done = r->paused = 0;
	r->result = CURLE_OK;
	r->skip = 0;
	strbuf_reset(&r->errbody);
	if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot start the transfer", r->what);
		return err->code;
	}
	r->attached = 1;
	return 0;
}

/* Runs the transfer a little. */
static int drive(struct stream_reader *r, amber_ctx *ctx)
{
	if (amber_host_api->is_cancelled(ctx))
		return AMBER_ECANCELED;
	int running = 0, left;
	curl_multi_perform(r->multi, &running);
	CURLMsg *m;
	while ((m = curl_multi_info_read(r->multi, &left)))
		if (m->msg == CURLMSG_DONE && m->easy_handle == r->easy) {
			r->done = 1;
			r->result = m->data.result;
		}
	if (!r->done && r->win.len == r->win_off && !r->paused)
		curl_multi_poll(r->multi, NULL, 0, 200, NULL);
	return 0;
}

/* Drives until the current answer's headers are in (or it ended), and judges them.
 * Returns 0 when body bytes may flow, 1 to retry (transient), or an AMBER_E*. */
static int await_headers(struct stream_reader *r, amber_ctx *ctx, struct http_err *err)
{
	while (!r->headers_done && !r->done) {
		int c = drive(r, ctx);
		if (c < 0) {
			err->code = c;
			snprintf(err->msg, sizeof(err->msg), "%s: cancelled", r->what);
			return c;
		}
	}
	long st = r->resp.status;
	if (st < 200 || st >= 300) {
		while (!r->done) /* the error body, for its code */
			if (drive(r, ctx) < 0)
				break;
		if (st == 0) {
			err->code = AMBER_EAGAIN;
			err->status = 0;
			snprintf(err->msg, sizeof(err->msg), "%s: %s", r->what,
				 curl_easy_strerror(r->result));
			return 1;
		}
		if (st == 416 && r->pos > 0) {
			/* from == size: nothing left, which is fine (a store that names no
			 * size is believed; one that names another is judged below). */
			const char *slash = strchr(r->resp.content_range, '/');
			uint64_t total = slash ? strtoull(slash + 1, NULL, 10) : r->pos;
			if (total == r->pos) {
				if (slash)
					r->size = total;
				r->done = 1;
				r->result = CURLE_OK;
				r->resp.status = 206;
				r->headers_done = 1;
				return 0;
			}
		}
		return r->ops->judge(r->arg, st, r->errbody.data, err);
	}
	/* The whole object's size, whatever the offset. */
	const char *slash = strchr(r->resp.content_range, '/');
	uint64_t total = AMBER_SIZE_UNKNOWN;
	if (st == 206 && slash && slash[1] != '*')
		total = strtoull(slash + 1, NULL, 10);
	else if (st == 200 && r->resp.content_length >= 0)
		total = (uint64_t)r->resp.content_length;
	if (total != AMBER_SIZE_UNKNOWN) {
		if (r->size != AMBER_SIZE_UNKNOWN && r->size != total) {
			err->code = AMBER_EINTEGRITY;
			snprintf(err->msg, sizeof(err->msg),
				 "%s: the object changed size while being read "
				 "(%" PRIu64 " then %" PRIu64 " bytes)", r->what, r->size, total);
			return err->code;
		}
		r->size = total;
	}
	if (st == 200 && r->pos > 0)
		r->skip = r->pos; /* the Range was ignored: drop what we already have */
	if (r->ops->accepted)
		r->ops->accepted(r->arg, &r->resp);
	return 0;
}

/* Opens (or reopens, after a drop) at r->pos, with retries. */
static int open_at(struct stream_reader *r, amber_ctx *ctx, struct http_err *err)
{
	for (unsigned attempt = 1;; attempt++) {
		int c = start(r, err);
		if (c < 0)
			return c;
		c = await_headers(r, ctx, err);
		if (c <= 0)
			return c;
		if ((c = http_backoff(ctx, attempt, err)) < 0)
			return c;
	}
}

int stream_reader_open(const struct stream_reader_ops *ops, void *arg, const char *what,
		       amber_ctx *ctx, uint64_t offset, struct stream_reader **ret,
		       struct http_err *err)
{
	*ret = NULL;
	memset(err, 0, sizeof(*err));
	struct stream_reader *r = calloc(1, sizeof(*r));
	if (r) {
		r->ops = ops;
		r->arg = arg;
		r->what = what;
		r->multi = curl_multi_init();
		r->easy = curl_easy_init();
		r->pos = offset;
		r->size = AMBER_SIZE_UNKNOWN;
	}
	if (!r || !r->multi || !r->easy) {
		stream_reader_free(r);
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return err->code;
	}
	int c = open_at(r, ctx, err);
	if (c < 0) {
		stream_reader_free(r);
		return c;
	}
	if (r->size != AMBER_SIZE_UNKNOWN && offset > r->size) {
		err->code = AMBER_EINVAL;
		err->status = 0;
		err->reason[0] = '\0';
		snprintf(err->msg, sizeof(err->msg),
			 "offset %" PRIu64 " is past the end (%" PRIu64 " bytes)", offset, r->size);
		stream_reader_free(r);
		return err->code;
	}
	*ret = r;
	return 0;
}

uint64_t stream_reader_size(const struct stream_reader *sr)
{
	return sr->size;
}

int64_t stream_reader_read(struct stream_reader *r, amber_ctx *ctx, void *buf, size_t cap,
			   struct http_err *err)
{
	memset(err, 0, sizeof(*err));
	for (;;) {
		size_t have = r->win.len - r->win_off;
		if (have > 0) {
			size_t n = have < cap ? have : cap;
			memcpy(buf, r->win.data + r->win_off, n);
			r->win_off += n;
			r->pos += n;
			if (r->win_off == r->win.len)
				r->win.len = r->win_off = 0;
			if (r->paused && r->win.len - r->win_off < WINDOW_MAX) {
				r->paused = 0;
				curl_easy_pause(r->easy, CURLPAUSE_CONT);
			}
			return (int64_t)n;
		}
		if (r->done) {
			if (r->result == CURLE_OK && r->size != AMBER_SIZE_UNKNOWN && r->pos > r->size) {
				err->code = AMBER_EINTEGRITY;
				snprintf(err->msg, sizeof(err->msg),
					 "%s: more bytes than the object's size", r->what);
				return err->code;
			}
			if (r->result == CURLE_OK &&
			    (r->size == AMBER_SIZE_UNKNOWN || r->pos >= r->size))
				return 0;
			/* Dropped mid-body (or ended short): resume from the next byte. */
			for (unsigned attempt = 1;; attempt++) {
				int b = amber_host_api->backoff(ctx, attempt);
				if (b < 0) {
					err->code = b == AMBER_ECANCELED ? b : AMBER_EAGAIN;
					err->status = 0;
					err->reason[0] = '\0';
					snprintf(err->msg, sizeof(err->msg),
						 "%s: connection lost at byte %" PRIu64
						 " (%s); gave up resuming", r->what, r->pos,
						 curl_easy_strerror(r->result));
					return err->code;
				}
				int c = open_at(r, ctx, err);
				if (c == 0)
					break;
				if (c != AMBER_EAGAIN)
					return c;
			}
			continue;
		}
		if (amber_host_api->is_cancelled(ctx)) {
			err->code = AMBER_ECANCELED;
			snprintf(err->msg, sizeof(err->msg), "%s: cancelled", r->what);
			return err->code;
		}
		drive(r, ctx);
	}
}

void stream_reader_free(struct stream_reader *r)
{
	if (!r)
		return;
	if (r->multi)
		detach(r);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	strbuf_reset(&r->win);
	strbuf_reset(&r->errbody);
	free(r);
}
