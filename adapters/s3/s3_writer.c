/*
 * The create stream: buffered into part_size parts, uploaded as a multipart upload
 * through the shared part engine (lib/part_engine.h: up to parallel_parts parts in
 * flight on worker threads, each held in memory until acknowledged); a small archive is
 * one PutObject.
 *
 * Memory: the part being filled plus at most parallel_parts parts queued or in flight,
 * i.e. (parallel_parts + 1) x part_size. Nothing touches local disk.
 */
#include "s3_internal.h"
#include "part_engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct amber_writer {
	amber_instance *in;
	char *key;
	char *content_type;
	CURL *curl; /* the host thread's own requests */

	char *cur; /* the part being filled */
	size_t cur_len, cur_cap;
	uint64_t total;
	char *upload_id;
	struct part_engine *parts; /* once the upload is multipart */
	int committed;
};

/* A worker's part: sent with its Content-MD5, retried by s3_request. */
static int upload_part(void *arg, CURL *curl, amber_ctx *ctx, uint32_t number,
		       const void *data, size_t len, char **ret_etag, struct http_err *err)
{
	amber_writer *w = arg;
	char num[16];
	snprintf(num, sizeof(num), "%u", (unsigned)number);
	struct sigv4_kv q[2] = { { "partNumber", num }, { "uploadId", w->upload_id } };
	char what[48];
	snprintf(what, sizeof(what), "UploadPart %u", (unsigned)number);
	struct s3_req rq = { .method = "PUT", .key = w->key, .query = q, .n_query = 2,
			     .body = data, .body_len = len, .md5 = 1, .what = what };
	struct http_resp resp;
	int r = s3_request(w->in, curl, ctx, &rq, &resp, err);
	strbuf_reset(&resp.body);
	if (r < 0)
		return r;
	if (!resp.etag[0]) {
		err->code = AMBER_EIO;
		snprintf(err->msg, sizeof(err->msg), "%s: HTTP %ld without an ETag", what,
			 resp.status);
		return err->code;
	}
	*ret_etag = strdup(resp.etag);
	if (!*ret_etag) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return err->code;
	}
	return 0;
}

int s3_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
		   const amber_object_info *hint, amber_writer **ret)
{
	*ret = NULL;
	size_t len = key ? strnlen(key, 1025) : 0;
	if (len == 0 || len > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "key must be 1 to 1024 bytes");
	amber_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	const char *ct = hint && AMBER_HAS(hint, amber_object_info, content_type) &&
					 hint->content_type
				 ? hint->content_type
				 : "application/gzip";
	w->in = self;
	w->key = strdup(key);
	w->content_type = strdup(ct);
	w->curl = curl_easy_init();
	if (!w->key || !w->content_type || !w->curl) {
		s3_writer_free(w);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	*ret = w;
	return AMBER_OK;
}

/* Hands the filled part to the engine, waiting while parallel_parts are pending. */
static int submit(amber_writer *w, amber_ctx *ctx)
{
	if (!w->parts) /* its start failed, and said so */
		return amber_host_api->set_error(ctx, AMBER_EIO, "%s: the upload failed", w->key);
	struct http_err err;
	int r = part_engine_submit(w->parts, ctx, w->cur, w->cur_len, &err);
	w->cur = NULL; /* the part is the engine's now, whatever happened */
	w->cur_len = w->cur_cap = 0;
	if (r < 0) {
		if (err.status)
			return s3_set_error(ctx, &err);
		return amber_host_api->set_error(ctx, r, "%s: %s", w->key, err.msg);
	}
	return AMBER_OK;
}

int s3_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len)
{
	const char *src = data;
	size_t part = (size_t)w->in->part_size;
	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (amber_host_api->is_cancelled(ctx))
		return amber_host_api->set_error(ctx, AMBER_ECANCELED, "%s: cancelled", w->key);

	while (len > 0) {
		if (w->cur_len == w->cur_cap) {
			/* The first part grows as it fills (a small archive stays small); once
			 * the upload is multipart, every part takes its full size at once. */
			size_t cap = w->upload_id ? part
						  : (w->cur_cap ? w->cur_cap * 2 : (size_t)1 << 20);
			if (cap > part)
				cap = part;
			char *b = realloc(w->cur, cap);
			if (!b)
				return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
			w->cur = b;
			w->cur_cap = cap;
		}
		size_t n = w->cur_cap - w->cur_len;
		if (n > len)
			n = len;
		memcpy(w->cur + w->cur_len, src, n);
		w->cur_len += n;
		w->total += n;
		src += n;
		len -= n;
		if (w->cur_len < part)
			continue;
		/* A full part: the stream is at least this large, so it goes multipart. */
		if (!w->upload_id) {
			struct http_err err;
			if (s3_mpu_create(w->in, w->curl, ctx, w->key, w->content_type, &w->upload_id,
					  &err) < 0)
				return s3_set_error(ctx, &err);
			if (part_engine_new(w->in->parallel_parts, S3_MAX_PARTS, upload_part, w, ctx,
					    &w->parts, &err) < 0)
				return s3_set_error(ctx, &err);
		}
		int r = submit(w, ctx);
		if (r < 0)
			return r;
	}
	return AMBER_OK;
}

static int put_object(amber_writer *w, amber_ctx *ctx)
{
	struct sigv4_kv h[2];
	size_t nh = 0;
	h[nh++] = (struct sigv4_kv){ "content-type", w->content_type };
	if (w->in->storage_class)
		h[nh++] = (struct sigv4_kv){ "x-amz-storage-class", w->in->storage_class };
	struct s3_req rq = { .method = "PUT", .key = w->key, .headers = h, .n_headers = nh,
			     .body = w->cur, .body_len = w->cur_len, .md5 = 1,
			     .what = "PutObject" };
	struct http_resp resp;
	struct http_err err;
	int r = s3_request(w->in, w->curl, ctx, &rq, &resp, &err);
	strbuf_reset(&resp.body);
	return r < 0 ? s3_set_error(ctx, &err) : AMBER_OK;
}

int s3_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *final_info)
{
	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (final_info && AMBER_HAS(final_info, amber_object_info, size) &&
	    final_info->size != AMBER_SIZE_UNKNOWN && final_info->size != w->total)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
						 "%s: received %" PRIu64 " bytes, expected %" PRIu64,
						 w->key, w->total, final_info->size);
	if (!w->upload_id) {
		int r = put_object(w, ctx);
		if (r == AMBER_OK)
			w->committed = 1;
		return r;
	}
	if (w->cur_len > 0) {
		int r = submit(w, ctx);
		if (r < 0)
			return r;
	}
	if (!w->parts)
		return amber_host_api->set_error(ctx, AMBER_EIO, "%s: the upload failed", w->key);
	char *const *etags = NULL;
	size_t n = 0;
	struct http_err err;
	int r = part_engine_finish(w->parts, ctx, &etags, &n, &err);
	if (r < 0) {
		if (err.status)
			return s3_set_error(ctx, &err);
		return amber_host_api->set_error(ctx, r, "%s: %s", w->key, err.msg);
	}
	uint32_t *nums = calloc(n, sizeof(*nums));
	if (!nums)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		nums[i] = (uint32_t)(i + 1);
	r = s3_mpu_complete(w->in, w->curl, ctx, w->key, w->upload_id, nums, etags, n, &err);
	free(nums);
	if (r < 0)
		return s3_set_error(ctx, &err);
	w->committed = 1;
	return AMBER_OK;
}

void s3_writer_free(amber_writer *w)
{
	if (!w)
		return;
	part_engine_free(w->parts); /* stops and joins the workers first */
	if (!w->committed && w->upload_id) {
		/* No partial object can appear without a Complete, so this only frees the
		 * stored parts. Stores that do not implement it (s3rver answers 405) keep
		 * them until their own lifecycle rules clean up; nothing to do about it
		 * here, and no ctx to report on, hence a log line. */
		struct http_err err;
		if (s3_mpu_abort(w->in, w->curl, NULL, w->key, w->upload_id, &err) < 0)
			amber_host_api->log(NULL, AMBER_LOG_NOTICE,
					    "%s: abort of upload left parts behind: %s", w->key,
					    err.msg);
	}
	free(w->cur);
	free(w->upload_id);
	free(w->key);
	free(w->content_type);
	if (w->curl)
		curl_easy_cleanup(w->curl);
	free(w);
}
