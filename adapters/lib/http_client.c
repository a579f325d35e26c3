/* Request execution shared by the remote-store adapters; see http_client.h. */
#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESP_BODY_MAX (16u << 20) /* listing pages are ~1 MiB at most; errors tiny */

static int progress_cb(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	amber_ctx *ctx = p;
	return ctx && amber_host_api->is_cancelled(ctx) ? 1 : 0;
}

void http_curl_common(CURL *h, amber_ctx *ctx, long connect_timeout_ms, long stall_timeout_ms,
		      const char *user_agent)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	/* A stalled transfer (under 1 byte/s for the whole window) fails and is retried:
	 * no request can hang forever, whatever its size. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (stall_timeout_ms + 999) / 1000);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, ctx);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent);
}

void http_set_method(CURL *h, const char *method, size_t body_len)
{
	if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
		/* Upload mode for both: the body comes from memory and is re-read from the
		 * start on every attempt, and curl adds no form Content-Type. */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
		if (strcmp(method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
}

struct upload_src {
	const char *data;
	size_t len, off;
};

static size_t read_cb(char *buf, size_t size, size_t n, void *p)
{
	struct upload_src *s = p;
	size_t want = size * n, left = s->len - s->off;
	if (want > left)
		want = left;
	if (want)
		memcpy(buf, s->data + s->off, want);
	s->off += want;
	return want;
}

/* curl rewinds the body when it must send it again (a redirect, a re-used connection
 * that closed). */
static int seek_cb(void *p, curl_off_t off, int origin)
{
	struct upload_src *s = p;
	if (origin != SEEK_SET || off < 0 || (size_t)off > s->len)
		return CURL_SEEKFUNC_FAIL;
	s->off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t n, void *p)
{
	struct http_resp *r = p;
	size_t len = size * n;
	if (r->body.len + len > RESP_BODY_MAX)
		return 0; /* fails the transfer: no answer we use is this large */
	strbuf_append(&r->body, data, len);
	return strbuf_failed(&r->body) ? 0 : len;
}

/* Copies header `name`'s value (trimmed) into out when line is that header. */
static int grab(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return 0;
	const char *v = line + nl + 1, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	size_t l = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
	memcpy(out, v, l);
	out[l] = '\0';
	return 1;
}

void http_resp_clear(struct http_resp *r)
{
	r->location[0] = r->range[0] = r->etag[0] = r->generation[0] = '\0';
	r->crc32c[0] = r->content_range[0] = '\0';
	r->content_length = -1;
}

void http_resp_header(struct http_resp *r, const char *line, size_t len)
{
	char v[256];
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue or a retry): forget the last one's. */
		const char *sp = memchr(line, ' ', len);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		http_resp_clear(r);
		return;
	}
	grab(line, len, "Location", r->location, sizeof(r->location));
	grab(line, len, "Range", r->range, sizeof(r->range));
	grab(line, len, "ETag", r->etag, sizeof(r->etag));
	grab(line, len, "X-Goog-Generation", r->generation, sizeof(r->generation));
	grab(line, len, "Content-Range", r->content_range, sizeof(r->content_range));
	if (grab(line, len, "Content-Length", v, sizeof(v)))
		r->content_length = strtoll(v, NULL, 10);
	/* X-Goog-Hash may come as one comma-joined line or one line per hash. */
	if (grab(line, len, "X-Goog-Hash", v, sizeof(v))) {
		char *save = NULL;
		for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ')
				tok++;
			if (!strncmp(tok, "crc32c=", 7))
				snprintf(r->crc32c, sizeof(r->crc32c), "%.15s", tok + 7);
		}
	}
}

static size_t header_cb(char *data, size_t size, size_t n, void *p)
{
	http_resp_header(p, data, size * n);
	return size * n;
}

int http_perform(CURL *h, const char *method, const void *body, size_t body_len,
		 const char *what, struct http_resp *resp, struct http_err *err)
{
	struct upload_src src = { body, body_len, 0 };
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, &src);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &src);
	}
	strbuf_reset(&resp->body);
	resp->status = 0;
	http_resp_clear(resp);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		strbuf_reset(&resp->body);
		err->status = 0;
		err->reason[0] = '\0';
		err->code = cc == CURLE_ABORTED_BY_CALLBACK ? AMBER_ECANCELED : AMBER_EAGAIN;
		snprintf(err->msg, sizeof(err->msg), "%s: %s", what,
			 cc == CURLE_ABORTED_BY_CALLBACK ? "cancelled" : curl_easy_strerror(cc));
		return err->code;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	return 0;
}

int http_backoff(amber_ctx *ctx, unsigned attempt, struct http_err *err)
{
	int b = amber_host_api->backoff(ctx, attempt);
	if (b >= 0)
		return 0;
	err->code = b == AMBER_ECANCELED ? AMBER_ECANCELED : AMBER_EAGAIN;
	size_t l = strlen(err->msg);
	snprintf(err->msg + l, sizeof(err->msg) - l, " (gave up after %u attempts)", attempt);
	return err->code;
}

int http_set_error(amber_ctx *ctx, const struct http_err *err, const char *reason_key,
		   const char *prefix)
{
	char st[16];
	if (err->status) {
		snprintf(st, sizeof(st), "%ld", err->status);
		amber_host_api->set_error_detail(ctx, "http_status", st);
	}
	if (err->reason[0])
		amber_host_api->set_error_detail(ctx, reason_key, err->reason);
	return amber_host_api->set_error(ctx, err->code, "%s%s", prefix ? prefix : "", err->msg);
}

int http_request(CURL *curl, amber_ctx *ctx, const char *what, const struct http_retry_ops *ops,
		 void *arg, struct http_resp *resp, struct http_err *err)
{
	CURL *h = curl ? curl : curl_easy_init();
	memset(resp, 0, sizeof(*resp));
	memset(err, 0, sizeof(*err));
	resp->content_length = -1;
	if (!h) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot set up the request", what);
		return err->code;
	}
	int rc;
	for (unsigned attempt = 1;; attempt++) {
		if (ctx && amber_host_api->is_cancelled(ctx)) {
			err->code = AMBER_ECANCELED;
			snprintf(err->msg, sizeof(err->msg), "%s: cancelled", what);
			rc = err->code;
			break;
		}
		int next;
		int r = ops->attempt(arg, h, ctx, resp, err);
		if (r < 0) {
			next = r == AMBER_EAGAIN ? HTTP_RETRY_BACKOFF : HTTP_RETRY_FAIL;
		} else if (resp->status >= 200 && resp->status < 300) {
			rc = 0;
			break;
		} else {
			next = ops->judge(arg, resp, err);
		}
		if (next == HTTP_RETRY_NOW) {
			attempt--; /* not a failure of the store's */
			continue;
		}
		if (next == HTTP_RETRY_FAIL) {
			rc = err->code;
			break;
		}
		rc = http_backoff(ctx, attempt, err);
		if (rc < 0)
			break;
	}
	if (rc != 0)
		strbuf_reset(&resp->body);
	if (!curl)
		curl_easy_cleanup(h);
	return rc;
}
