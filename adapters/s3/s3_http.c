/* One signed S3 request with retries; error mapping. */
#include "s3_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

char *s3_object_path(const amber_instance *in, const char *key)
{
	struct strbuf b = { 0 };
	strbuf_printf(&b, "%s/%s%s", in->path_prefix, in->prefix, key ? key : "");
	return strbuf_take(&b);
}

int s3_is_transient(long status, const char *reason)
{
	return status >= 500 || status == 429 || strcmp(reason, "SlowDown") == 0 ||
	       strcmp(reason, "RequestTimeout") == 0 || strcmp(reason, "InternalError") == 0;
}

void s3_err_from_response(struct http_err *err, long status, const char *body, const char *what)
{
	const char *pos = body;
	char *code = body ? xml_text(body, "Code", &pos) : NULL;
	pos = body;
	char *msg = body ? xml_text(body, "Message", &pos) : NULL;

	err->status = status;
	snprintf(err->reason, sizeof(err->reason), "%s", code ? code : "");
	if (status == 404 && !code)
		snprintf(err->reason, sizeof(err->reason), "NotFound");
	const char *c = err->reason;
	if (!strcmp(c, "SignatureDoesNotMatch") || !strcmp(c, "InvalidAccessKeyId") ||
	    !strcmp(c, "ExpiredToken") || !strcmp(c, "InvalidToken") ||
	    !strcmp(c, "TokenRefreshRequired") || !strcmp(c, "RequestTimeTooSkewed") ||
	    status == 401)
		err->code = AMBER_EAUTH;
	else if (status == 403)
		err->code = AMBER_EPERM;
	else if (!strcmp(c, "NoSuchKey") || !strcmp(c, "NoSuchUpload") || !strcmp(c, "NotFound"))
		err->code = AMBER_ENOTFOUND;
	else if (!strcmp(c, "NoSuchBucket") || !strcmp(c, "InvalidBucketName") ||
		 !strcmp(c, "InvalidArgument") || !strcmp(c, "InvalidStorageClass"))
		err->code = AMBER_EINVAL;
	else if (!strcmp(c, "QuotaExceeded") || status == 507)
		err->code = AMBER_ENOSPC;
	else if (!strcmp(c, "BadDigest") || !strcmp(c, "InvalidDigest") || !strcmp(c, "InvalidPart"))
		err->code = AMBER_EINTEGRITY;
	else if (status == 405 || status == 501)
		err->code = AMBER_ENOTSUP;
	else if (s3_is_transient(status, c))
		err->code = AMBER_EAGAIN;
	else
		err->code = AMBER_EIO;
	snprintf(err->msg, sizeof(err->msg), "%s: HTTP %ld%s%s%s%.300s", what, status,
		 code ? " " : "", code ? code : "", msg ? ": " : "", msg ? msg : "");
	free(code);
	free(msg);
}

int s3_set_error(amber_ctx *ctx, const struct http_err *err)
{
	return http_set_error(ctx, err, "s3_code", NULL);
}

static int md5_base64(const void *data, size_t len, char out[32])
{
	unsigned char md[16];
	unsigned int n = 0;
	if (EVP_Digest(data, len, md, &n, EVP_md5(), NULL) != 1 || n != 16)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 16);
	return 0;
}

int s3_setup_handle(amber_instance *in, CURL *h, amber_ctx *ctx, const struct s3_req *rq,
		    const char *md5, struct curl_slist **ret_hl, struct http_err *err)
{
	char *path = rq->key ? s3_object_path(in, rq->key) : NULL;
	const char *sign_path = rq->key ? path : (*in->path_prefix ? in->path_prefix : "/");

	struct sigv4_kv hv[16];
	size_t nh = 0;
	hv[nh++] = (struct sigv4_kv){ "host", in->host };
	/* S3 wants the payload hash header on every request; the bodies go unhashed
	 * (Content-MD5 protects parts instead), which saves a SHA-256 pass per part. */
	hv[nh++] = (struct sigv4_kv){ "x-amz-content-sha256",
				      rq->body_len ? "UNSIGNED-PAYLOAD" : SIGV4_EMPTY_SHA256 };
	if (md5)
		hv[nh++] = (struct sigv4_kv){ "content-md5", md5 };
	for (size_t i = 0; i < rq->n_headers && nh < 14; i++)
		hv[nh++] = rq->headers[i];
	struct sigv4_request sr = {
		.method = rq->method,
		.path = sign_path ? sign_path : "/",
		.query = rq->query,
		.n_query = rq->n_query,
		.headers = hv,
		.n_headers = nh,
		.payload_hash = hv[1].value,
		.normalize = 0, /* S3 keys are literal: "a/../b" is a key, not a path */
		.when = time(NULL),
	};
	struct sigv4_out so;
	int rc = sign_path ? sigv4_sign_headers(&sigv4_scheme_aws, &in->creds, &sr, &so) : -1;
	free(path);
	if (rc < 0) {
		err->code = AMBER_ENOMEM;
		err->status = 0;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot sign the request", rq->what);
		return -1;
	}

	struct strbuf url = { 0 };
	strbuf_printf(&url, "%s%s%s%s", in->base_url, so.canonical_uri, *so.query ? "?" : "",
		      so.query);
	struct curl_slist *hl = NULL;
	struct strbuf line = { 0 };
	for (size_t i = 0; i < nh; i++) {
		strbuf_printf(&line, "%s: %s", hv[i].name, hv[i].value);
		hl = curl_slist_append(hl, line.data);
		strbuf_reset(&line);
	}
	strbuf_printf(&line, "x-amz-date: %s", so.date);
	hl = curl_slist_append(hl, line.data);
	strbuf_reset(&line);
	if (in->creds.session_token) {
		strbuf_printf(&line, "x-amz-security-token: %s", in->creds.session_token);
		hl = curl_slist_append(hl, line.data);
		strbuf_reset(&line);
	}
	strbuf_printf(&line, "Authorization: %s", so.authorization);
	hl = curl_slist_append(hl, line.data);
	strbuf_reset(&line);
	/* curl would otherwise wait for 100-continue and add its own Content-Type. */
	hl = curl_slist_append(hl, "Expect:");
	hl = curl_slist_append(hl, "Content-Type:");
	sigv4_out_free(&so);
	if (strbuf_failed(&url) || !hl) {
		strbuf_reset(&url);
		curl_slist_free_all(hl);
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: out of memory", rq->what);
		return -1;
	}

	curl_easy_reset(h);
	http_curl_common(h, ctx, in->connect_timeout_ms, in->stall_timeout_ms, "amber-s3/" S3_VERSION);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	strbuf_reset(&url); /* curl copies the URL */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	http_set_method(h, rq->method, rq->body_len);
	*ret_hl = hl;
	return 0;
}

struct attempt_arg {
	amber_instance *in;
	const struct s3_req *rq;
	const char *md5;
};

static int attempt(void *p, CURL *h, amber_ctx *ctx, struct http_resp *resp,
		   struct http_err *err)
{
	struct attempt_arg *a = p;
	struct curl_slist *hl = NULL;
	if (s3_setup_handle(a->in, h, ctx, a->rq, a->md5, &hl, err) < 0)
		return err->code;
	int r = http_perform(h, a->rq->method, a->rq->body, a->rq->body_len, a->rq->what, resp,
			     err);
	curl_slist_free_all(hl);
	return r;
}

static int judge(void *p, const struct http_resp *resp, struct http_err *err)
{
	struct attempt_arg *a = p;
	s3_err_from_response(err, resp->status, resp->body.data, a->rq->what);
	return s3_is_transient(resp->status, err->reason) ? HTTP_RETRY_BACKOFF : HTTP_RETRY_FAIL;
}

int s3_request(amber_instance *in, CURL *curl, amber_ctx *ctx, const struct s3_req *rq,
	       struct http_resp *resp, struct http_err *err)
{
	char md5[32];
	if (rq->md5 && md5_base64(rq->body ? (const void *)rq->body : "", rq->body_len, md5) < 0) {
		memset(resp, 0, sizeof(*resp));
		memset(err, 0, sizeof(*err));
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot set up the request", rq->what);
		return err->code;
	}
	static const struct http_retry_ops ops = { attempt, judge };
	struct attempt_arg a = { in, rq, rq->md5 ? md5 : NULL };
	return http_request(curl, ctx, rq->what, &ops, &a, resp, err);
}
