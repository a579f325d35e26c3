/*
 * The create stream.
 *
 * Bearer-token modes: a JSON API resumable upload of unknown length. Bytes collect in
 * one chunk buffer; a full buffer goes out as "bytes a-b/STAR" (total unknown), the last one (or an empty
 * request) as "bytes a-b/N" with X-Goog-Hash. The buffer always starts at the server's
 * committed offset: what a 308's Range acknowledges is dropped from its front, the rest
 * stays and is sent again, so only unacknowledged bytes are in memory and nothing is
 * ever sent from a guessed offset. After a transport error, 408, 429 or 5xx the session
 * is asked where it stands (Content-Range "bytes STAR/STAR") before anything is re-sent.
 *
 * HMAC mode: the XML API multipart upload through the shared part engine (the S3
 * adapter's part discipline, lib/part_engine.h): up to parallel_parts parts in flight,
 * each held until its PUT is acknowledged and re-sent (by gcs_request) on transient
 * failures; an archive smaller than one part is a single PUT. Memory: the part being
 * filled plus parallel_parts parts, i.e. (parallel_parts + 1) x part_size.
 *
 * The CRC32C of the whole object is computed as bytes enter the buffer (once each,
 * whatever is re-sent) and checked against the server's.
 */
#include "gcs_internal.h"
#include "part_engine.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct amber_writer {
	amber_instance *in;
	char *key;
	char *content_type;
	CURL *curl;
	int xml; /* HMAC: XML multipart */

	char *buf; /* bytes from offset `committed` on */
	size_t len, cap;
	uint64_t committed; /* acknowledged by the server (resumable) or in sent parts */
	uint64_t total;	    /* bytes received from the host */
	uint32_t crc;
	int done;

	char *session; /* resumable session URI */

	char *upload_id; /* XML multipart */
	struct part_engine *parts;
};

static int oom(amber_ctx *ctx)
{
	return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
}

int gcs_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
		    const amber_object_info *hint, amber_writer **ret)
{
	*ret = NULL;
	size_t klen = key ? strnlen(key, 1025) : 0;
	if (klen == 0 || klen + strlen(self->prefix) > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "gcs instance %s: object names "
						 "are 1 to 1024 bytes", self->name);
	amber_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return oom(ctx);
	const char *ct = hint && AMBER_HAS(hint, amber_object_info, content_type) &&
					 hint->content_type
				 ? hint->content_type
				 : "application/gzip";
	w->in = self;
	w->xml = self->auth == GCS_AUTH_HMAC;
	w->key = strdup(key);
	w->content_type = strdup(ct);
	w->curl = curl_easy_init();
	w->cap = (size_t)(w->xml ? self->part_size : self->chunk_size);
	if (!w->key || !w->content_type || !w->curl) {
		gcs_writer_free(w);
		return oom(ctx);
	}
	*ret = w;
	return AMBER_OK;
}

/* ---- JSON API resumable upload ---- */

static int start_session(amber_writer *w, amber_ctx *ctx)
{
	amber_instance *in = w->in;
	char *name = gcs_full_name(in, w->key);
	char *enc = name ? gcs_enc_json(name) : NULL;
	char *bk = gcs_enc_json(in->bucket);
	json_t *meta = name ? json_pack("{s:s,s:s}", "name", name, "contentType", w->content_type)
			    : NULL;
	char *body = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	json_decref(meta);
	struct strbuf url = { 0 }, xct = { 0 };
	strbuf_printf(&url, "%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s", in->endpoint,
		      bk ? bk : "", enc ? enc : "");
	strbuf_printf(&xct, "X-Upload-Content-Type: %s", w->content_type);
	int rc;
	if (!name || !enc || !bk || !body || strbuf_failed(&url) || strbuf_failed(&xct)) {
		rc = oom(ctx);
		goto out;
	}
	const char *hdrs[2] = { "Content-Type: application/json; charset=UTF-8", xct.data };
	struct gcs_req rq = { .method = "POST", .api = GCS_JSON, .url = url.data, .headers = hdrs,
			      .n_headers = 2, .body = body, .body_len = strlen(body),
			      .what = "resumable upload start" };
	struct http_resp resp;
	struct http_err err;
	/* Retrying the initiation is harmless: an unused session just expires. */
	if (gcs_request(in, w->curl, ctx, &rq, &resp, &err) < 0) {
		rc = gcs_set_error(ctx, in, &err);
		goto out;
	}
	strbuf_reset(&resp.body);
	if (!resp.location[0]) {
		rc = amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: resumable upload "
					       "start: HTTP %ld without a Location", in->name,
					       resp.status);
		goto out;
	}
	w->session = strdup(resp.location);
	rc = w->session ? AMBER_OK : oom(ctx);
out:
	free(name);
	free(enc);
	free(bk);
	free(body);
	strbuf_reset(&url);
	strbuf_reset(&xct);
	return rc;
}

/* Applies a 308's Range ("bytes=0-K", or none: nothing committed). */
static int apply_range(amber_writer *w, amber_ctx *ctx, const char *range)
{
	uint64_t next = 0;
	if (range[0]) {
		const char *dash = strchr(range, '-');
		if (strncmp(range, "bytes=0-", 8) || !dash)
			return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: upload: "
							 "unexpected Range \"%s\"", w->in->name, range);
		next = strtoull(dash + 1, NULL, 10) + 1;
	}
	/* The server may keep less than was sent, never less than it had confirmed
	 * (those bytes are gone from memory) nor more than it was given. */
	if (next < w->committed || next > w->committed + w->len)
		return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: upload: the "
						 "server reports %" PRIu64 " bytes, outside the %" PRIu64
						 "..%" PRIu64 " it can have", w->in->name, next,
						 w->committed, w->committed + w->len);
	size_t drop = (size_t)(next - w->committed);
	memmove(w->buf, w->buf + drop, w->len - drop);
	w->len -= drop;
	w->committed = next;
	return AMBER_OK;
}

/* The final answer: the object's JSON, checked against what was sent. */
static int verify_final(amber_writer *w, amber_ctx *ctx, const char *body)
{
	json_t *root = json_loads(body ? body : "", 0, NULL);
	const char *crc = json_string_value(json_object_get(root, "crc32c"));
	const char *size = json_string_value(json_object_get(root, "size"));
	char mine[9];
	amber_crc32c_b64(w->crc, mine);
	int rc = AMBER_OK;
	if (!crc || strcmp(crc, mine) != 0)
		rc = amber_host_api->set_error(ctx, AMBER_EINTEGRITY, "gcs instance %s: %s: the "
					       "stored object's crc32c is %s, the stream's %s",
					       w->in->name, w->key, crc ? crc : "(none)", mine);
	else if (size && strtoull(size, NULL, 10) != w->total)
		rc = amber_host_api->set_error(ctx, AMBER_EINTEGRITY, "gcs instance %s: %s: the "
					       "stored object has %s bytes, the stream %" PRIu64,
					       w->in->name, w->key, size, w->total);
	json_decref(root);
	if (rc < 0) {
		/* Never leave a corrupt object under the backup's name. */
		char *url = gcs_json_object_url(w->in, w->key, NULL);
		struct gcs_req rq = { .method = "DELETE", .api = GCS_JSON, .url = url,
				      .what = "delete of the corrupt object" };
		struct http_resp resp = { 0 };
		struct http_err err;
		if (url)
			gcs_request(w->in, w->curl, NULL, &rq, &resp, &err);
		strbuf_reset(&resp.body);
		free(url);
	}
	return rc;
}

/* A status query (Content-Range "bytes STAR/STAR", STAR being an asterisk): where does the session stand? 0: committed updated; 1: the upload is
 * already complete (the final answer was lost) and verified. */
static int query_status(amber_writer *w, amber_ctx *ctx, unsigned *attempt)
{
	const char *hdrs[1] = { "Content-Range: bytes */*" };
	struct gcs_req rq = { .method = "PUT", .api = GCS_SESSION, .url = w->session,
			      .headers = hdrs, .n_headers = 1, .what = "upload status query" };
	for (;;) {
		struct http_resp resp;
		struct http_err err;
		int r = gcs_perform(w->in, w->curl, ctx, &rq, &resp, &err);
		if (r == 0 && resp.status == 308) {
			strbuf_reset(&resp.body);
			return apply_range(w, ctx, resp.range);
		}
		if (r == 0 && (resp.status == 200 || resp.status == 201)) {
			if (w->committed + w->len != w->total || !w->done) {
				strbuf_reset(&resp.body);
				return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: "
								 "upload finalised before its end",
								 w->in->name);
			}
			r = verify_final(w, ctx, resp.body.data);
			strbuf_reset(&resp.body);
			return r < 0 ? r : 1;
		}
		if (r == 0) {
			gcs_err_from_response(&err, resp.status, resp.body.data, "upload status query");
			strbuf_reset(&resp.body);
			if (resp.status == 404 || resp.status == 410) {
				err.code = AMBER_EIO;
				snprintf(err.msg, sizeof(err.msg), "upload session lost (HTTP %ld): "
					 "the stream cannot be replayed, the backup fails", resp.status);
				return gcs_set_error(ctx, w->in, &err);
			}
			if (!gcs_is_transient(resp.status))
				return gcs_set_error(ctx, w->in, &err);
		} else if (r != AMBER_EAGAIN) {
			return gcs_set_error(ctx, w->in, &err);
		}
		if (http_backoff(ctx, (*attempt)++, &err) < 0)
			return gcs_set_error(ctx, w->in, &err);
	}
}

/* Sends the buffer: a full chunk (final = 0), or everything left (final = 1). Returns
 * with the acknowledged bytes dropped; for final, only once the object exists. */
static int send_chunk(amber_writer *w, amber_ctx *ctx, int final)
{
	if (!w->session) {
		int r = start_session(w, ctx);
		if (r < 0)
			return r;
	}
	unsigned attempt = 1;
	int need_query = 0;
	for (;;) {
		if (amber_host_api->is_cancelled(ctx))
			return amber_host_api->set_error(ctx, AMBER_ECANCELED, "%s: cancelled", w->key);
		if (need_query) {
			int q = query_status(w, ctx, &attempt);
			if (q < 0)
				return q;
			if (q == 1)
				return AMBER_OK;
			need_query = 0;
			/* A non-final chunk partly taken: the rest waits for more bytes. */
			if (!final && w->len < w->cap)
				return AMBER_OK;
		}
		char cr[96], hash[64];
		size_t n = w->len;
		if (final && n == 0)
			snprintf(cr, sizeof(cr), "Content-Range: bytes */%" PRIu64, w->total);
		else
			snprintf(cr, sizeof(cr), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%s",
				 w->committed, w->committed + n - 1, final ? "" : "*");
		if (final && n > 0) {
			size_t l = strlen(cr);
			snprintf(cr + l, sizeof(cr) - l, "%" PRIu64, w->total);
		}
		char b64[9];
		amber_crc32c_b64(w->crc, b64);
		snprintf(hash, sizeof(hash), "X-Goog-Hash: crc32c=%s", b64);
		const char *hdrs[3] = { cr, "Content-Type: application/octet-stream", hash };
		struct gcs_req rq = { .method = "PUT", .api = GCS_SESSION, .url = w->session,
				      .headers = hdrs, .n_headers = final ? 3 : 2, .body = w->buf,
				      .body_len = n, .what = "upload chunk" };
		struct http_resp resp;
		struct http_err err;
		int r = gcs_perform(w->in, w->curl, ctx, &rq, &resp, &err);
		if (r == 0 && resp.status == 308) {
			uint64_t before = w->committed;
			strbuf_reset(&resp.body);
			if ((r = apply_range(w, ctx, resp.range)) < 0)
				return r;
			if (!final)
				return AMBER_OK; /* what was not taken is sent with the next chunk */
			/* A final request the server did not finish: re-send the rest, but back
			 * off while it makes no progress so this cannot spin. */
			if (w->committed > before) {
				attempt = 1;
			} else if (http_backoff(ctx, attempt++, &err) < 0) {
				snprintf(err.msg, sizeof(err.msg), "upload: the server keeps answering "
					 "308 to the final chunk without progress");
				return gcs_set_error(ctx, w->in, &err);
			}
			continue;
		}
		if (r == 0 && (resp.status == 200 || resp.status == 201)) {
			if (!final) {
				strbuf_reset(&resp.body);
				return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: "
								 "upload finalised before its end",
								 w->in->name);
			}
			r = verify_final(w, ctx, resp.body.data);
			strbuf_reset(&resp.body);
			if (r == 0) {
				w->committed += w->len;
				w->len = 0;
			}
			return r;
		}
		if (r == 0) {
			gcs_err_from_response(&err, resp.status, resp.body.data, "upload chunk");
			strbuf_reset(&resp.body);
			if (resp.status == 404 || resp.status == 410) {
				err.code = AMBER_EIO;
				snprintf(err.msg, sizeof(err.msg), "upload session lost (HTTP %ld): "
					 "the stream cannot be replayed, the backup fails", resp.status);
				return gcs_set_error(ctx, w->in, &err);
			}
			if (resp.status == 400 && final && strstr(err.msg, "rc32c")) {
				err.code = AMBER_EINTEGRITY;
				return gcs_set_error(ctx, w->in, &err);
			}
			if (!gcs_is_transient(resp.status))
				return gcs_set_error(ctx, w->in, &err);
		} else if (r != AMBER_EAGAIN) {
			return gcs_set_error(ctx, w->in, &err);
		}
		if (http_backoff(ctx, attempt++, &err) < 0)
			return gcs_set_error(ctx, w->in, &err);
		need_query = 1;
	}
}

/* ---- XML multipart (HMAC) ---- */

static int xml_fail(amber_writer *w, amber_ctx *ctx, struct http_err *err)
{
	return gcs_set_error(ctx, w->in, err);
}

static int mpu_start(amber_writer *w, amber_ctx *ctx)
{
	char ct[300];
	snprintf(ct, sizeof(ct), "Content-Type: %s", w->content_type);
	const char *hdrs[1] = { ct };
	struct sigv4_kv q[1] = { { "uploads", NULL } };
	struct gcs_req rq = { .method = "POST", .api = GCS_XML, .key = w->key, .query = q,
			      .n_query = 1, .headers = hdrs, .n_headers = 1,
			      .what = "multipart upload start" };
	struct http_resp resp;
	struct http_err err;
	if (gcs_request(w->in, w->curl, ctx, &rq, &resp, &err) < 0)
		return xml_fail(w, ctx, &err);
	const char *pos = resp.body.data;
	w->upload_id = pos ? xml_text(resp.body.data, "UploadId", &pos) : NULL;
	strbuf_reset(&resp.body);
	if (!w->upload_id || !*w->upload_id)
		return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: multipart upload "
						 "start: no UploadId in the answer", w->in->name);
	return AMBER_OK;
}

/* A worker's part, with its CRC32C for the server to check. */
static int send_part(void *arg, CURL *curl, amber_ctx *ctx, uint32_t number, const void *data,
		     size_t len, char **ret_etag, struct http_err *err)
{
	amber_writer *w = arg;
	char num[16], hash[64], b64[9];
	snprintf(num, sizeof(num), "%u", (unsigned)number);
	amber_crc32c_b64(amber_crc32c(0, data, len), b64);
	snprintf(hash, sizeof(hash), "x-goog-hash: crc32c=%s", b64);
	const char *hdrs[1] = { hash };
	struct sigv4_kv q[2] = { { "partNumber", num }, { "uploadId", w->upload_id } };
	struct gcs_req rq = { .method = "PUT", .api = GCS_XML, .key = w->key, .query = q,
			      .n_query = 2, .headers = hdrs, .n_headers = 1, .body = data,
			      .body_len = len, .what = "multipart upload part" };
	struct http_resp resp;
	int r = gcs_request(w->in, curl, ctx, &rq, &resp, err);
	strbuf_reset(&resp.body);
	if (r < 0)
		return r;
	if (!resp.etag[0]) {
		err->code = AMBER_EIO;
		snprintf(err->msg, sizeof(err->msg), "part %s: no ETag", num);
		return err->code;
	}
	if (!(*ret_etag = strdup(resp.etag))) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return err->code;
	}
	return 0;
}

/* Hands the full buffer to the part engine (which owns it from here on). */
static int mpu_part(amber_writer *w, amber_ctx *ctx)
{
	struct http_err err;
	if (!w->upload_id) {
		int r = mpu_start(w, ctx);
		if (r < 0)
			return r;
		if (part_engine_new(w->in->parallel_parts, GCS_MAX_PARTS, send_part, w, ctx,
				    &w->parts, &err) < 0)
			return xml_fail(w, ctx, &err);
	}
	if (!w->parts) /* its start failed, and said so */
		return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: %s: the upload "
						 "failed", w->in->name, w->key);
	size_t len = w->len;
	int r = part_engine_submit(w->parts, ctx, w->buf, len, &err);
	w->buf = NULL; /* the next part gets its own buffer */
	w->len = 0;
	if (r < 0)
		return xml_fail(w, ctx, &err);
	w->committed += len;
	return AMBER_OK;
}

static int mpu_complete(amber_writer *w, amber_ctx *ctx)
{
	char *const *etags = NULL;
	size_t n = 0;
	struct http_err perr;
	if (!w->parts)
		return amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: %s: the upload "
						 "failed", w->in->name, w->key);
	if (part_engine_finish(w->parts, ctx, &etags, &n, &perr) < 0)
		return xml_fail(w, ctx, &perr);
	struct strbuf body = { 0 };
	strbuf_puts(&body, "<CompleteMultipartUpload>");
	for (size_t i = 0; i < n; i++) {
		strbuf_printf(&body, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
		xml_escape(&body, etags[i]);
		strbuf_puts(&body, "</ETag></Part>");
	}
	strbuf_puts(&body, "</CompleteMultipartUpload>");
	if (strbuf_failed(&body))
		return oom(ctx);
	const char *hdrs[1] = { "Content-Type: application/xml" };
	struct sigv4_kv q[1] = { { "uploadId", w->upload_id } };
	struct gcs_req rq = { .method = "POST", .api = GCS_XML, .key = w->key, .query = q,
			      .n_query = 1, .headers = hdrs, .n_headers = 1, .body = body.data,
			      .body_len = body.len, .what = "multipart upload complete" };
	struct http_resp resp;
	struct http_err err;
	int r = gcs_request(w->in, w->curl, ctx, &rq, &resp, &err);
	strbuf_reset(&body);
	if (r < 0)
		return xml_fail(w, ctx, &err);
	const char *doc = resp.body.data ? resp.body.data : "";
	if (strstr(doc, "<Error>")) {
		gcs_err_from_response(&err, 200, doc, "multipart upload complete");
		if (err.code == AMBER_OK || err.code == AMBER_EAGAIN)
			err.code = AMBER_EIO;
		strbuf_reset(&resp.body);
		return xml_fail(w, ctx, &err);
	}
	strbuf_reset(&resp.body);
	return AMBER_OK;
}

/* An archive under one part: one PUT, with its CRC32C for the server to check. */
static int xml_put(amber_writer *w, amber_ctx *ctx)
{
	char ct[300], hash[64], b64[9];
	snprintf(ct, sizeof(ct), "Content-Type: %s", w->content_type);
	amber_crc32c_b64(w->crc, b64);
	snprintf(hash, sizeof(hash), "x-goog-hash: crc32c=%s", b64);
	const char *hdrs[2] = { ct, hash };
	struct gcs_req rq = { .method = "PUT", .api = GCS_XML, .key = w->key, .headers = hdrs,
			      .n_headers = 2, .body = w->buf, .body_len = w->len,
			      .what = "object upload" };
	struct http_resp resp;
	struct http_err err;
	int r = gcs_request(w->in, w->curl, ctx, &rq, &resp, &err);
	strbuf_reset(&resp.body);
	if (r < 0)
		return xml_fail(w, ctx, &err);
	if (resp.crc32c[0] && strcmp(resp.crc32c, b64) != 0)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY, "gcs instance %s: %s: stored "
						 "crc32c %s, the stream's %s", w->in->name, w->key,
						 resp.crc32c, b64);
	return AMBER_OK;
}

/* ---- the host's calls ---- */

int gcs_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len)
{
	const char *src = data;
	if (w->done)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (amber_host_api->is_cancelled(ctx))
		return amber_host_api->set_error(ctx, AMBER_ECANCELED, "%s: cancelled", w->key);
	while (len > 0) {
		if (!w->buf) {
			/* The one chunk (or part) buffer, at full size once: bounded memory. */
			w->buf = malloc(w->cap);
			if (!w->buf)
				return oom(ctx);
		}
		size_t n = w->cap - w->len;
		if (n > len)
			n = len;
		memcpy(w->buf + w->len, src, n);
		/* Hashed once, as the bytes enter: re-sends never count twice. */
		w->crc = amber_crc32c(w->crc, src, n);
		w->len += n;
		w->total += n;
		src += n;
		len -= n;
		if (w->len < w->cap)
			continue;
		int r = w->xml ? mpu_part(w, ctx) : send_chunk(w, ctx, 0);
		if (r < 0)
			return r;
	}
	return AMBER_OK;
}

int gcs_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *final_info)
{
	if (w->done)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (final_info && AMBER_HAS(final_info, amber_object_info, size) &&
	    final_info->size != AMBER_SIZE_UNKNOWN && final_info->size != w->total)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
						 "%s: received %" PRIu64 " bytes, expected %" PRIu64,
						 w->key, w->total, final_info->size);
	int r;
	if (w->xml) {
		if (!w->upload_id)
			r = xml_put(w, ctx);
		else if ((r = w->len ? mpu_part(w, ctx) : AMBER_OK) == AMBER_OK)
			r = mpu_complete(w, ctx);
	} else {
		w->done = 1; /* the end is known: status queries may now see completion */
		r = send_chunk(w, ctx, 1);
		if (r < 0)
			w->done = 0;
	}
	if (r == AMBER_OK)
		w->done = 2;
	return r;
}

void gcs_writer_free(amber_writer *w)
{
	if (!w)
		return;
	if (w->done != 2 && w->session) {
		/* Cancel the session so no object appears; GCS answers 499. One attempt:
		 * an abandoned session expires on its own within a week anyway. */
		struct gcs_req rq = { .method = "DELETE", .api = GCS_SESSION, .url = w->session,
				      .what = "upload cancel" };
		struct http_resp resp;
		struct http_err err;
		int r = gcs_perform(w->in, w->curl, NULL, &rq, &resp, &err);
		if (r < 0 || (resp.status != 499 && resp.status != 204 && resp.status != 200 &&
			      resp.status != 404 && resp.status != 410))
			amber_host_api->log(NULL, AMBER_LOG_NOTICE, "gcs instance %s: %s: cancelling "
					    "the upload session failed (%s); it expires on its own",
					    w->in->name, w->key, r < 0 ? err.msg : "unexpected status");
		strbuf_reset(&resp.body);
	}
	part_engine_free(w->parts); /* stops and joins the workers before the abort */
	if (w->done != 2 && w->upload_id) {
		struct sigv4_kv q[1] = { { "uploadId", w->upload_id } };
		struct gcs_req rq = { .method = "DELETE", .api = GCS_XML, .key = w->key, .query = q,
				      .n_query = 1, .what = "multipart upload abort" };
		struct http_resp resp;
		struct http_err err;
		if (gcs_request(w->in, w->curl, NULL, &rq, &resp, &err) < 0)
			amber_host_api->log(NULL, AMBER_LOG_NOTICE, "gcs instance %s: %s: abort of "
					    "the multipart upload failed: %s", w->in->name, w->key,
					    err.msg);
		strbuf_reset(&resp.body);
	}
	free(w->upload_id);
	free(w->session);
	free(w->buf);
	free(w->key);
	free(w->content_type);
	if (w->curl)
		curl_easy_cleanup(w->curl);
	free(w);
}
