/* One signed S3 request with retries; error mapping. */
#include "s3_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RESP_BODY_MAX (16u << 20) /* listing pages are ~1 MiB at most; errors tiny */

char *s3_object_path(const amber_instance *in, const char *key)
{
	struct strbuf b = { 0 };
	strbuf_printf(&b, "%s/%s%s", in->path_prefix, in->prefix, key ? key : "");
	return strbuf_take(&b);
}

static int progress_cb(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	amber_ctx *ctx = p;
	return ctx && amber_host_api->is_cancelled(ctx) ? 1 : 0;
}

void s3_curl_common(amber_instance *in, CURL *h, amber_ctx *ctx)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, in->connect_timeout_ms);
	/* A stalled transfer (under 1 byte/s for the whole window) fails and is retried:
	 * no request can hang forever, whatever its size. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (in->stall_timeout_ms + 999) / 1000);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, ctx);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "amber-s3/" S3_VERSION);
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
	memcpy(buf, s->data + s->off, want);
	s->off += want;
	return want;
}

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
	struct s3_resp *r = p;
	size_t len = size * n;
	if (r->body.len + len > RESP_BODY_MAX)
		return 0; /* fails the transfer: no answer we use is this large */
	strbuf_append(&r->body, data, len);
	return strbuf_failed(&r->body) ? 0 : len;
}

/* Copies header `name`'s value (trimmed) into out when line is that header. */
static void grab_header(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	size_t l = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
	memcpy(out, v, l);
	out[l] = '\0';
}

static size_t header_cb(char *data, size_t size, size_t n, void *p)
{
	struct s3_resp *r = p;
	size_t len = size * n;
	char cl[32] = "";
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue or a retry): forget the last one's. */
		r->etag[0] = r->content_range[0] = '\0';
		r->content_length = -1;
	}
	grab_header(data, len, "ETag", r->etag, sizeof(r->etag));
	grab_header(data, len, "Content-Range", r->content_range, sizeof(r->content_range));
	grab_header(data, len, "Content-Length", cl, sizeof(cl));
	if (cl[0])
		r->content_length = strtoll(cl, NULL, 10);
	return len;
}

int s3_is_transient(long status, const char *s3code)
{
	return status >= 500 || status == 429 || strcmp(s3code, "SlowDown") == 0 ||
	       strcmp(s3code, "RequestTimeout") == 0 || strcmp(s3code, "InternalError") == 0;
}

void s3_err_from_response(struct s3_err *err, long status, const char *body, const char *what)
{
	const char *pos = body;
	char *code = body ? xml_text(body, "Code", &pos) : NULL;
	pos = body;
	char *msg = body ? xml_text(body, "Message", &pos) : NULL;

	err->status = status;
	snprintf(err->s3code, sizeof(err->s3code), "%s", code ? code : "");
	if (status == 404 && !code)
		snprintf(err->s3code, sizeof(err->s3code), "NotFound");
	const char *c = err->s3code;
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

int s3_set_error(amber_ctx *ctx, const struct s3_err *err)
{
	char st[16];
	if (err->status) {
		snprintf(st, sizeof(st), "%ld", err->status);
		amber_host_api->set_error_detail(ctx, "http_status", st);
	}
	if (err->s3code[0])
		amber_host_api->set_error_detail(ctx, "s3_code", err->s3code);
	return amber_host_api->set_error(ctx, err->code, "%s", err->msg);
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
		    const char *md5, struct curl_slist **ret_hl, struct s3_err *err)
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
	s3_curl_common(in, h, ctx);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	strbuf_reset(&url); /* curl copies the URL */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(rq->method, "PUT") || !strcmp(rq->method, "POST")) {
		/* Upload mode for both: the body comes from memory and is re-read from the
		 * start on every attempt, and curl adds no form Content-Type. */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		if (strcmp(rq->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	*ret_hl = hl;
	return 0;
}

/* One attempt. Returns 0 when an HTTP answer arrived (any status), -1 with err filled
 * otherwise. */
static int attempt_once(amber_instance *in, CURL *h, amber_ctx *ctx, const struct s3_req *rq,
			const char *md5, struct s3_resp *resp, struct s3_err *err)
{
	struct curl_slist *hl = NULL;
	if (s3_setup_handle(in, h, ctx, rq, md5, &hl, err) < 0)
		return -1;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	struct upload_src src = { rq->body, rq->body_len, 0 };
	if (!strcmp(rq->method, "PUT") || !strcmp(rq->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, &src);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &src);
	}
	strbuf_reset(&resp->body);
	resp->status = 0;
	resp->etag[0] = resp->content_range[0] = '\0';
	resp->content_length = -1;
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		err->status = 0;
		err->s3code[0] = '\0';
		err->code = cc == CURLE_ABORTED_BY_CALLBACK ? AMBER_ECANCELED : AMBER_EAGAIN;
		snprintf(err->msg, sizeof(err->msg), "%s: %s", rq->what,
			 cc == CURLE_ABORTED_BY_CALLBACK ? "cancelled" : curl_easy_strerror(cc));
		return -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	return 0;
}

int s3_backoff(amber_ctx *ctx, unsigned attempt, struct s3_err *err)
{
	int b = amber_host_api->backoff(ctx, attempt);
	if (b >= 0)
		return 0;
	err->code = b == AMBER_ECANCELED ? AMBER_ECANCELED : AMBER_EAGAIN;
	size_t l = strlen(err->msg);
	snprintf(err->msg + l, sizeof(err->msg) - l, " (gave up after %u attempts)", attempt);
	return err->code;
}

int s3_request(amber_instance *in, CURL *curl, amber_ctx *ctx, const struct s3_req *rq,
	       struct s3_resp *resp, struct s3_err *err)
{
	CURL *h = curl ? curl : curl_easy_init();
	char md5[32];
	memset(resp, 0, sizeof(*resp));
	memset(err, 0, sizeof(*err));
	if (!h || (rq->md5 && md5_base64(rq->body ? (const void *)rq->body : "", rq->body_len, md5) < 0)) {
		if (!curl && h)
			curl_easy_cleanup(h);
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot set up the request", rq->what);
		return err->code;
	}
	int rc;
	for (unsigned attempt = 1;; attempt++) {
		if (ctx && amber_host_api->is_cancelled(ctx)) {
			err->code = AMBER_ECANCELED;
			snprintf(err->msg, sizeof(err->msg), "%s: cancelled", rq->what);
			rc = err->code;
			break;
		}
		int transient;
		if (attempt_once(in, h, ctx, rq, rq->md5 ? md5 : NULL, resp, err) < 0) {
			transient = err->code == AMBER_EAGAIN;
		} else if (resp->status >= 200 && resp->status < 300) {
			rc = 0;
			break;
		} else {
			s3_err_from_response(err, resp->status, resp->body.data, rq->what);
			transient = s3_is_transient(resp->status, err->s3code);
		}
		if (!transient) {
			rc = err->code;
			break;
		}
		rc = s3_backoff(ctx, attempt, err);
		if (rc < 0)
			break;
	}
	if (rc != 0)
		strbuf_reset(&resp->body);
	if (!curl)
		curl_easy_cleanup(h);
	return rc;
}
