/*
 * The restore stream: GetObject pulled by the host through the shared stream reader
 * (lib/stream_reader.h: bounded memory, no thread, resumed with Range after a drop).
 * S3 needs nothing to pin the object: an overwrite between answers shows as a size
 * change, which the stream reader refuses.
 */
#include "s3_internal.h"
#include "stream_reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct amber_reader {
	amber_instance *in;
	char *key;
	struct stream_reader *sr;
};

static int setup(void *arg, CURL *easy, uint64_t from, struct curl_slist **ret_hl,
		 struct http_err *err)
{
	amber_reader *r = arg;
	char range[64];
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", from);
	struct sigv4_kv h[1] = { { "range", range } };
	struct s3_req rq = { .method = "GET", .key = r->key, .headers = h,
			     .n_headers = from ? 1 : 0, .what = "GetObject" };
	/* No ctx on the handle: the ctx is per call here, and the stream reader checks
	 * cancellation itself. */
	return s3_setup_handle(r->in, easy, NULL, &rq, NULL, ret_hl, err) < 0 ? err->code : 0;
}

static int judge(void *arg, long status, const char *body, struct http_err *err)
{
	(void)arg;
	s3_err_from_response(err, status, body, "GetObject");
	return s3_is_transient(status, err->reason) ? 1 : err->code;
}

static const struct stream_reader_ops ops = { setup, judge, NULL };

int s3_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
		   amber_object_info *ret_info, amber_reader **ret)
{
	*ret = NULL;
	size_t len = key ? strnlen(key, 1025) : 0;
	if (len == 0 || len > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "key must be 1 to 1024 bytes");
	amber_reader *r = calloc(1, sizeof(*r));
	if (!r || !(r->key = strdup(key))) {
		free(r);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	r->in = self;
	struct http_err err;
	int c = stream_reader_open(&ops, r, "GetObject", ctx, offset, &r->sr, &err);
	if (c < 0) {
		s3_reader_free(r);
		if (c == AMBER_ENOTFOUND)
			return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s", key);
		if (c == AMBER_EINVAL && !err.status)
			return amber_host_api->set_error(ctx, c, "%s: %s", key, err.msg);
		return s3_set_error(ctx, &err);
	}
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = stream_reader_size(r->sr);
	*ret = r;
	return AMBER_OK;
}

int64_t s3_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	struct http_err err;
	int64_t n = stream_reader_read(r->sr, ctx, buf, cap, &err);
	return n < 0 ? s3_set_error(ctx, &err) : n;
}

void s3_reader_free(amber_reader *r)
{
	if (!r)
		return;
	stream_reader_free(r->sr);
	free(r->key);
	free(r);
}
