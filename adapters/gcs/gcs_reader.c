/*
 * The restore stream: GET alt=media (XML GET with HMAC keys), pulled by the host. The
 * transfer runs on the caller's thread through a curl multi handle, only while
 * reader_read needs bytes, and is paused when a window of bytes is waiting, so memory
 * stays bounded without a thread. A connection dropped mid-body is resumed with
 * Range: bytes=<next>- pinned to the generation the first answer named, so the rest
 * cannot come from a newer object. A whole-object read is checked against the
 * X-Goog-Hash CRC32C at its end.
 */
#include "gcs_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WINDOW_MAX (1u << 20)

struct amber_reader {
	amber_instance *in;
	char *key;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hl;
	int attached;

	uint64_t pos, size, skip;
	char generation[32];
	char want_crc[16];	/* from the first full answer's X-Goog-Hash */
	int check_crc;		/* the read started at 0 with no Range */
	uint32_t crc;
	struct strbuf win;
	size_t win_off;
	int paused;

	struct gcs_resp resp; /* the current answer's status and headers */
	int headers_done, done;
	CURLcode result;
	struct strbuf errbody;
};

static size_t rd_header(char *data, size_t size, size_t n, void *p);

static size_t rd_write(char *data, size_t size, size_t n, void *p)
{
	amber_reader *r = p;
	size_t len = size * n;
	r->headers_done = 1;
	if (r->resp.status < 200 || r->resp.status >= 300) {
		if (r->errbody.len < 65536)
			strbuf_append(&r->errbody, data, len);
		return len;
	}
	if (r->win.len - r->win_off >= WINDOW_MAX) {
		r->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	size_t drop = r->skip < len ? (size_t)r->skip : len;
	r->skip -= drop;
	strbuf_append(&r->win, data + drop, len - drop);
	return strbuf_failed(&r->win) ? 0 : len;
}

/* Reuses the request layer's header parsing through a throwaway answer: only the
 * fields the reader needs are copied. */
static size_t rd_header(char *data, size_t size, size_t n, void *p)
{
	amber_reader *r = p;
	size_t len = size * n;
	if (len >= 12 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', len);
		r->resp.status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->resp.content_range[0] = r->resp.generation[0] = r->resp.crc32c[0] = '\0';
		r->resp.content_length = -1;
		return len;
	}
	if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
		if (r->resp.status >= 200)
			r->headers_done = 1;
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return len;
	size_t nl = (size_t)(colon - data);
	const char *v = colon + 1, *e = data + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	char val[128];
	size_t vl = (size_t)(e - v) < sizeof(val) - 1 ? (size_t)(e - v) : sizeof(val) - 1;
	memcpy(val, v, vl);
	val[vl] = '\0';
	if (nl == 13 && !strncasecmp(data, "Content-Range", nl))
		snprintf(r->resp.content_range, sizeof(r->resp.content_range), "%.127s", val);
	else if (nl == 14 && !strncasecmp(data, "Content-Length", nl))
		r->resp.content_length = strtoll(val, NULL, 10);
	else if (nl == 17 && !strncasecmp(data, "X-Goog-Generation", nl))
		snprintf(r->resp.generation, sizeof(r->resp.generation), "%.31s", val);
	else if (nl == 11 && !strncasecmp(data, "X-Goog-Hash", nl)) {
		for (char *tok = strtok(val, ","); tok; tok = strtok(NULL, ",")) {
			while (*tok == ' ')
				tok++;
			if (!strncmp(tok, "crc32c=", 7))
				snprintf(r->resp.crc32c, sizeof(r->resp.crc32c), "%.15s", tok + 7);
		}
	}
	return len;
}

static void detach(amber_reader *r)
{
	if (r->attached)
		curl_multi_remove_handle(r->multi, r->easy);
	r->attached = 0;
	curl_slist_free_all(r->hl);
	r->hl = NULL;
}

static int start(amber_reader *r, struct gcs_err *err)
{
	detach(r);
	amber_instance *in = r->in;
	char range[64];
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", r->pos);
	const char *hdrs[1] = { range };
	struct gcs_req rq = { .method = "GET", .headers = hdrs, .n_headers = r->pos ? 1 : 0,
			      .what = "download" };
	char *url = NULL;
	struct sigv4_kv q[1] = { { "generation", r->generation } };
	if (in->auth == GCS_AUTH_HMAC) {
		rq.api = GCS_XML;
		rq.key = r->key;
		rq.query = q;
		rq.n_query = r->generation[0] ? 1 : 0;
	} else {
		struct strbuf qs = { 0 };
		strbuf_printf(&qs, "alt=media%s%s", r->generation[0] ? "&generation=" : "",
			      r->generation);
		url = qs.data ? gcs_json_object_url(in, r->key, qs.data) : NULL;
		strbuf_reset(&qs);
		if (!url) {
			err->code = AMBER_ENOMEM;
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			return err->code;
		}
		rq.api = GCS_JSON;
		rq.url = url;
	}
	int c = gcs_setup_handle(in, r->easy, NULL, &rq, &r->hl, err);
	free(url);
	if (c < 0)
		return c;
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, rd_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, rd_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	r->resp.status = 0;
	r->headers_done = r->done = r->paused = 0;
	r->result = CURLE_OK;
	r->skip = 0;
	strbuf_reset(&r->errbody);
	if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "download: cannot start the transfer");
		return err->code;
	}
	r->attached = 1;
	return 0;
}

static int drive(amber_reader *r, amber_ctx *ctx)
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

/* 0: body bytes may flow; 1: transient, retry; < 0: fatal. */
static int await_headers(amber_reader *r, amber_ctx *ctx, struct gcs_err *err)
{
	while (!r->headers_done && !r->done) {
		int c = drive(r, ctx);
		if (c < 0) {
			err->code = c;
			snprintf(err->msg, sizeof(err->msg), "download: cancelled");
			return c;
		}
	}
	long st = r->resp.status;
	if (st < 200 || st >= 300) {
		while (!r->done)
			if (drive(r, ctx) < 0)
				break;
		if (st == 0) {
			err->code = AMBER_EAGAIN;
			err->status = 0;
			snprintf(err->msg, sizeof(err->msg), "download: %s",
				 curl_easy_strerror(r->result));
			return 1;
		}
		if (st == 416 && r->pos > 0) { /* from == size: nothing left */
			const char *slash = strchr(r->resp.content_range, '/');
			uint64_t total = slash ? strtoull(slash + 1, NULL, 10) : r->pos;
			if (total == r->pos) {
				r->size = total;
				r->resp.status = 206;
				r->headers_done = 1;
				r->result = CURLE_OK;
				return 0;
			}
		}
		gcs_err_from_response(err, st, r->errbody.data, "download");
		return gcs_is_transient(st) ? 1 : err->code;
	}
	const char *slash = strchr(r->resp.content_range, '/');
	uint64_t total = AMBER_SIZE_UNKNOWN;
	if (st == 206 && slash && slash[1] != '*')
		total = strtoull(slash + 1, NULL, 10);
	else if (st == 200 && r->resp.content_length >= 0)
		total = (uint64_t)r->resp.content_length;
	if (total != AMBER_SIZE_UNKNOWN) {
		if (r->size != AMBER_SIZE_UNKNOWN && r->size != total) {
			err->code = AMBER_EINTEGRITY;
			snprintf(err->msg, sizeof(err->msg), "download: the object changed size "
				 "while being read");
			return err->code;
		}
		r->size = total;
	}
	if (!r->generation[0] && r->resp.generation[0])
		snprintf(r->generation, sizeof(r->generation), "%s", r->resp.generation);
	if (r->check_crc && !r->want_crc[0] && st == 200)
		snprintf(r->want_crc, sizeof(r->want_crc), "%s", r->resp.crc32c);
	if (st == 200 && r->pos > 0)
		r->skip = r->pos; /* Range ignored: drop what was delivered already */
	return 0;
}

static int open_at(amber_reader *r, amber_ctx *ctx, struct gcs_err *err)
{
	for (unsigned attempt = 1;; attempt++) {
		int c = start(r, err);
		if (c < 0)
			return c;
		c = await_headers(r, ctx, err);
		if (c <= 0)
			return c;
		if ((c = gcs_backoff(ctx, attempt, err)) < 0)
			return c;
	}
}

int gcs_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
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
	r->check_crc = offset == 0;
	if (!r->key || !r->multi || !r->easy) {
		gcs_reader_free(r);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	struct gcs_err err = { 0 };
	int c = open_at(r, ctx, &err);
	if (c < 0) {
		gcs_reader_free(r);
		if (c == AMBER_ENOTFOUND)
			return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "gcs instance %s: no "
							 "object %s", self->name, key);
		return gcs_set_error(ctx, self, &err);
	}
	if (r->size != AMBER_SIZE_UNKNOWN && offset > r->size) {
		gcs_reader_free(r);
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: offset past the end", key);
	}
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = r->size;
	*ret = r;
	return AMBER_OK;
}

int64_t gcs_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	for (;;) {
		size_t have = r->win.len - r->win_off;
		if (have > 0) {
			size_t n = have < cap ? have : cap;
			memcpy(buf, r->win.data + r->win_off, n);
			if (r->check_crc)
				r->crc = gcs_crc32c(r->crc, buf, n);
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
			if (r->result == CURLE_OK && (r->size == AMBER_SIZE_UNKNOWN || r->pos >= r->size)) {
				if (r->result == CURLE_OK && r->pos > r->size && r->size != AMBER_SIZE_UNKNOWN)
					return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
									 "download: more bytes than the object's size");
				if (r->check_crc && r->want_crc[0]) {
					char mine[9];
					gcs_crc32c_b64(r->crc, mine);
					if (strcmp(mine, r->want_crc) != 0)
						return amber_host_api->set_error(
							ctx, AMBER_EINTEGRITY,
							"gcs instance %s: %s: downloaded crc32c %s, "
							"the object's %s", r->in->name, r->key, mine,
							r->want_crc);
				}
				return 0;
			}
			/* Dropped mid-body: resume at the next byte, same generation. */
			struct gcs_err err = { 0 };
			for (unsigned attempt = 1;; attempt++) {
				int b = amber_host_api->backoff(ctx, attempt);
				if (b < 0)
					return amber_host_api->set_error(
						ctx, b == AMBER_ECANCELED ? b : AMBER_EAGAIN,
						"gcs instance %s: download: connection lost at byte "
						"%" PRIu64 " (%s); gave up resuming", r->in->name,
						r->pos, curl_easy_strerror(r->result));
				int c = open_at(r, ctx, &err);
				if (c == 0)
					break;
				if (c != AMBER_EAGAIN)
					return gcs_set_error(ctx, r->in, &err);
			}
			continue;
		}
		if (amber_host_api->is_cancelled(ctx))
			return amber_host_api->set_error(ctx, AMBER_ECANCELED, "download: cancelled");
		drive(r, ctx);
	}
}

void gcs_reader_free(amber_reader *r)
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
	free(r->key);
	free(r);
}
