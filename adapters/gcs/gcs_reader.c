/*
 * The restore stream: GET alt=media (XML GET with HMAC keys), pulled by the host
 * through the shared stream reader (lib/stream_reader.h: bounded memory, no thread,
 * resumed with Range after a drop). What GCS adds: every resumed request is pinned to
 * the generation the first answer named, so the rest cannot come from a newer object,
 * and a whole-object read is checked against the X-Goog-Hash CRC32C at its end.
 */
#include "gcs_internal.h"
#include "stream_reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct amber_reader {
	amber_instance *in;
	char *key;
	struct stream_reader *sr;
	char generation[32];
	char want_crc[16]; /* from the first full answer's X-Goog-Hash */
	int check_crc;	   /* the read started at 0 */
	uint32_t crc;
};

static int setup(void *arg, CURL *easy, uint64_t from, struct curl_slist **ret_hl,
		 struct http_err *err)
{
	amber_reader *r = arg;
	amber_instance *in = r->in;
	char range[64];
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", from);
	const char *hdrs[1] = { range };
	struct gcs_req rq = { .method = "GET", .headers = hdrs, .n_headers = from ? 1 : 0,
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
	int c = gcs_setup_handle(in, easy, NULL, &rq, ret_hl, err);
	free(url);
	return c;
}

static int judge(void *arg, long status, const char *body, struct http_err *err)
{
	(void)arg;
	gcs_err_from_response(err, status, body, "download");
	return gcs_is_transient(status) ? 1 : err->code;
}

static void accepted(void *arg, const struct http_resp *resp)
{
	amber_reader *r = arg;
	if (!r->generation[0] && resp->generation[0])
		snprintf(r->generation, sizeof(r->generation), "%s", resp->generation);
	if (r->check_crc && !r->want_crc[0] && resp->status == 200)
		snprintf(r->want_crc, sizeof(r->want_crc), "%s", resp->crc32c);
}

static const struct stream_reader_ops ops = { setup, judge, accepted };

int gcs_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
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
	r->check_crc = offset == 0;
	struct http_err err;
	int c = stream_reader_open(&ops, r, "download", ctx, offset, &r->sr, &err);
	if (c < 0) {
		gcs_reader_free(r);
		if (c == AMBER_ENOTFOUND)
			return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "gcs instance %s: no "
							 "object %s", self->name, key);
		if (c == AMBER_EINVAL && !err.status)
			return amber_host_api->set_error(ctx, c, "%s: %s", key, err.msg);
		return gcs_set_error(ctx, self, &err);
	}
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = stream_reader_size(r->sr);
	*ret = r;
	return AMBER_OK;
}

int64_t gcs_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	struct http_err err;
	int64_t n = stream_reader_read(r->sr, ctx, buf, cap, &err);
	if (n < 0)
		return gcs_set_error(ctx, r->in, &err);
	if (n > 0 && r->check_crc)
		r->crc = amber_crc32c(r->crc, buf, (size_t)n);
	if (n == 0 && r->check_crc && r->want_crc[0]) {
		char mine[9];
		amber_crc32c_b64(r->crc, mine);
		if (strcmp(mine, r->want_crc) != 0)
			return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
							 "gcs instance %s: %s: downloaded crc32c %s, "
							 "the object's %s", r->in->name, r->key, mine,
							 r->want_crc);
	}
	return n;
}

void gcs_reader_free(amber_reader *r)
{
	if (!r)
		return;
	stream_reader_free(r->sr);
	free(r->key);
	free(r);
}
