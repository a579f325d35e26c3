/* One GCS request (JSON API with a bearer token, XML API with a bearer token or an
 * HMAC signature, or a resumable session URI), retries, error mapping, and the OAuth2
 * token cache. */
#include "gcs_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *gcs_full_name(const amber_instance *in, const char *key)
{
	struct strbuf b = { 0 };
	strbuf_printf(&b, "%s%s", in->prefix, key ? key : "");
	return strbuf_take(&b);
}

char *gcs_json_object_url(const amber_instance *in, const char *key, const char *query)
{
	char *name = gcs_full_name(in, key);
	char *enc = name ? gcs_enc_json(name) : NULL;
	char *bk = gcs_enc_json(in->bucket);
	struct strbuf b = { 0 };
	if (enc && bk)
		strbuf_printf(&b, "%s/storage/v1/b/%s/o/%s%s%s", in->endpoint, bk, enc,
			      query ? "?" : "", query ? query : "");
	free(name);
	free(enc);
	free(bk);
	return enc && bk ? strbuf_take(&b) : NULL;
}

/* The common options, and the one GCS adds: XML paths and signed URLs must reach the
 * server exactly as signed. */
static void curl_common(amber_instance *in, CURL *h, amber_ctx *ctx)
{
	http_curl_common(h, ctx, in->connect_timeout_ms, in->stall_timeout_ms,
			 "amber-gcs/" GCS_VERSION);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
}

/* A token endpoint's answer body. */
static size_t token_body_cb(char *data, size_t size, size_t n, void *p)
{
	struct strbuf *b = p;
	size_t len = size * n;
	if (b->len + len > 65536)
		return 0; /* no token answer is this large */
	strbuf_append(b, data, len);
	return strbuf_failed(b) ? 0 : len;
}

int gcs_is_transient(long status)
{
	return status >= 500 || status == 429 || status == 408;
}

void gcs_err_from_response(struct http_err *err, long status, const char *body, const char *what)
{
	char reason[64] = "", msg[320] = "";
	if (body && *body == '{') {
		json_t *root = json_loads(body, 0, NULL);
		json_t *e = json_object_get(root, "error");
		const char *m = json_string_value(json_object_get(e, "message"));
		const char *rs = json_string_value(
			json_object_get(json_array_get(json_object_get(e, "errors"), 0), "reason"));
		if (!e && json_is_string(e = json_object_get(root, "error"))) /* OAuth2 form */
			rs = json_string_value(e);
		if (!m)
			m = json_string_value(json_object_get(root, "error_description"));
		snprintf(reason, sizeof(reason), "%s", rs ? rs : "");
		snprintf(msg, sizeof(msg), "%s", m ? m : "");
		json_decref(root);
	} else if (body && strstr(body, "<Error>")) {
		const char *pos = body;
		char *c = xml_text(body, "Code", &pos);
		pos = body;
		char *m = xml_text(body, "Message", &pos);
		snprintf(reason, sizeof(reason), "%s", c ? c : "");
		snprintf(msg, sizeof(msg), "%s", m ? m : "");
		free(c);
		free(m);
	}
	err->status = status;
	snprintf(err->reason, sizeof(err->reason), "%s", reason);
	if (status == 401 || !strcmp(reason, "SignatureDoesNotMatch") ||
	    !strcmp(reason, "InvalidSecurity") || !strcmp(reason, "invalid_grant"))
		err->code = AMBER_EAUTH;
	else if (status == 403)
		err->code = AMBER_EPERM;
	else if (status == 404 || status == 410)
		err->code = AMBER_ENOTFOUND;
	else if (status == 409 || status == 412)
		err->code = AMBER_EEXISTS;
	else if (status == 507)
		err->code = AMBER_ENOSPC;
	else if (status == 400 && strstr(reason, "nvalidDigest"))
		err->code = AMBER_EINTEGRITY;
	else if (status == 405 || status == 501)
		err->code = AMBER_ENOTSUP;
	else if (gcs_is_transient(status))
		err->code = AMBER_EAGAIN;
	else if (status == 400)
		err->code = AMBER_EINVAL;
	else
		err->code = AMBER_EIO;
	snprintf(err->msg, sizeof(err->msg), "%s: HTTP %ld%s%s%s%.300s", what, status,
		 *reason ? " " : "", reason, *msg ? ": " : "", msg);
}

int gcs_set_error(amber_ctx *ctx, const amber_instance *in, const struct http_err *err)
{
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "gcs instance %s: ", in ? in->name : "?");
	return http_set_error(ctx, err, "gcs_reason", prefix);
}

/* ---- tokens ---- */

/* One token request, no retries beyond what the caller does; the token and its
 * lifetime on success. */
static int fetch_token(amber_instance *in, char **ret_tok, long *ret_ttl, struct http_err *err)
{
	CURL *h = curl_easy_init();
	struct http_resp resp;
	memset(&resp, 0, sizeof(resp));
	struct curl_slist *hl = NULL;
	struct strbuf url = { 0 }, form = { 0 };
	char *jwt = NULL;
	const char *what;
	if (in->auth == GCS_AUTH_SA) {
		what = "token request";
		jwt = gcs_jwt_assertion(&in->key, GCS_SCOPE, time(NULL));
		strbuf_printf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s",
			      jwt ? jwt : "");
		strbuf_puts(&url, in->key.token_uri);
		hl = curl_slist_append(hl, "Content-Type: application/x-www-form-urlencoded");
	} else {
		what = "metadata token request";
		strbuf_printf(&url, "%s/computeMetadata/v1/instance/service-accounts/default/token",
			      in->metadata_url);
		hl = curl_slist_append(hl, "Metadata-Flavor: Google");
	}
	int rc = AMBER_OK;
	if (!h || !hl || strbuf_failed(&url) || strbuf_failed(&form) ||
	    (in->auth == GCS_AUTH_SA && !jwt)) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: cannot build it (JWT signing failed?)", what);
		rc = err->code;
		goto out;
	}
	hl = curl_slist_append(hl, "Expect:");
	curl_common(in, h, NULL);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	/* The metadata server refuses proxied requests. */
	if (in->auth == GCS_AUTH_METADATA)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (form.data) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, form.data);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form.len);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, token_body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		err->code = AMBER_EAGAIN;
		err->status = 0;
		snprintf(err->msg, sizeof(err->msg), "%s to %s: %s", what, url.data,
			 curl_easy_strerror(cc));
		rc = err->code;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
	if (resp.status != 200) {
		gcs_err_from_response(err, resp.status, resp.body.data, what);
		/* A refused grant is the credentials' fault, not a transient one. */
		if (resp.status == 400 || resp.status == 401 || resp.status == 403)
			err->code = AMBER_EAUTH;
		rc = err->code;
		goto out;
	}
	json_t *root = json_loads(resp.body.data ? resp.body.data : "", 0, NULL);
	const char *tok = json_string_value(json_object_get(root, "access_token"));
	json_int_t ttl = json_integer_value(json_object_get(root, "expires_in"));
	if (!tok || !*tok) {
		err->code = AMBER_EAUTH;
		err->status = 200;
		snprintf(err->msg, sizeof(err->msg), "%s: the answer holds no access_token", what);
		rc = err->code;
	} else {
		*ret_tok = strdup(tok);
		*ret_ttl = ttl > 0 ? (long)ttl : 300;
		if (!*ret_tok) {
			err->code = AMBER_ENOMEM;
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			rc = err->code;
		}
	}
	json_decref(root);
out:
	free(jwt);
	strbuf_reset(&url);
	strbuf_reset(&form);
	strbuf_reset(&resp.body);
	curl_slist_free_all(hl);
	if (h)
		curl_easy_cleanup(h);
	return rc;
}

int gcs_auth_header(amber_instance *in, int force, char **ret_line, struct http_err *err)
{
	*ret_line = NULL;
	if (in->auth == GCS_AUTH_NONE || in->auth == GCS_AUTH_HMAC) {
		*ret_line = strdup("");
		goto done;
	}
	pthread_mutex_lock(&in->token_lock);
	time_t now = time(NULL);
	/* Refresh 5 minutes early (or at half-life for short-lived tokens). */
	if (force || !in->token || now > in->token_expiry) {
		char *tok = NULL;
		long ttl = 0;
		int r = fetch_token(in, &tok, &ttl, err);
		if (r == 0) {
			free(in->token);
			in->token = tok;
			long early = ttl > 600 ? 300 : ttl / 2;
			in->token_expiry = now + ttl - early;
		} else if (!in->token || force || now > in->token_expiry + 300) {
			/* No token left that is still valid: fail (the old one, if any, is
			 * kept only while it has not really expired). */
			pthread_mutex_unlock(&in->token_lock);
			return r;
		}
	}
	struct strbuf b = { 0 };
	strbuf_printf(&b, "Authorization: Bearer %s", in->token);
	pthread_mutex_unlock(&in->token_lock);
	*ret_line = strbuf_take(&b);
done:
	if (!*ret_line) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return err->code;
	}
	return 0;
}

/* ---- requests ---- */

static int setup(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		 int force_token, struct curl_slist **ret_hl, struct http_err *err)
{
	struct curl_slist *hl = NULL;
	struct strbuf url = { 0 }, line = { 0 };
	char *auth = NULL;
	if (rq->api == GCS_XML && in->auth == GCS_AUTH_HMAC) {
		char *name = gcs_full_name(in, rq->key);
		struct strbuf path = { 0 };
		strbuf_printf(&path, "/%s%s%s", in->bucket, rq->key ? "/" : "", rq->key ? name : "");
		struct sigv4_kv hv[2] = { { "host", in->host },
					  { "x-goog-content-sha256", "UNSIGNED-PAYLOAD" } };
		struct sigv4_request sr = { .method = rq->method, .path = path.data,
					    .query = rq->query, .n_query = rq->n_query,
					    .headers = hv, .n_headers = 2,
					    .payload_hash = "UNSIGNED-PAYLOAD", .when = time(NULL) };
		struct sigv4_out so;
		int r = name && path.data ? sigv4_sign_headers(&sigv4_scheme_goog, &in->hmac_creds,
							       &sr, &so)
					  : -1;
		free(name);
		strbuf_reset(&path);
		if (r < 0) {
			err->code = AMBER_ENOMEM;
			snprintf(err->msg, sizeof(err->msg), "%s: cannot sign the request", rq->what);
			return err->code;
		}
		strbuf_printf(&url, "%s%s%s%s", in->endpoint, so.canonical_uri, *so.query ? "?" : "",
			      so.query);
		strbuf_printf(&line, "x-goog-date: %s", so.date);
		hl = curl_slist_append(hl, line.data);
		strbuf_reset(&line);
		hl = curl_slist_append(hl, "x-goog-content-sha256: UNSIGNED-PAYLOAD");
		strbuf_printf(&line, "Authorization: %s", so.authorization);
		hl = curl_slist_append(hl, line.data);
		strbuf_reset(&line);
		sigv4_out_free(&so);
	} else if (rq->api == GCS_XML) {
		char *name = gcs_full_name(in, rq->key);
		char *enc = name ? gcs_enc_xml_path(name) : NULL;
		strbuf_printf(&url, "%s/%s%s%s", in->endpoint, in->bucket, rq->key ? "/" : "",
			      rq->key && enc ? enc : "");
		for (size_t i = 0; i < rq->n_query; i++) {
			char *k = gcs_enc_json(rq->query[i].name);
			char *v = rq->query[i].value ? gcs_enc_json(rq->query[i].value) : NULL;
			strbuf_printf(&url, "%c%s%s%s", i ? '&' : '?', k ? k : "", v ? "=" : "",
				      v ? v : "");
			free(k);
			free(v);
		}
		free(name);
		free(enc);
	} else {
		strbuf_puts(&url, rq->url);
	}
	if (rq->api == GCS_JSON || (rq->api == GCS_XML && in->auth != GCS_AUTH_HMAC)) {
		int r = gcs_auth_header(in, force_token, &auth, err);
		if (r < 0) {
			strbuf_reset(&url);
			curl_slist_free_all(hl);
			return r;
		}
		if (*auth)
			hl = curl_slist_append(hl, auth);
		free(auth);
	}
	for (size_t i = 0; i < rq->n_headers; i++)
		hl = curl_slist_append(hl, rq->headers[i]);
	/* No 100-continue wait, no form Content-Type from curl. */
	hl = curl_slist_append(hl, "Expect:");
	int has_ct = 0;
	for (size_t i = 0; i < rq->n_headers; i++)
		if (!strncasecmp(rq->headers[i], "Content-Type:", 13))
			has_ct = 1;
	if (!has_ct)
		hl = curl_slist_append(hl, "Content-Type:");
	if (strbuf_failed(&url) || !hl) {
		strbuf_reset(&url);
		curl_slist_free_all(hl);
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "%s: out of memory", rq->what);
		return err->code;
	}
	curl_easy_reset(h);
	curl_common(in, h, ctx);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	strbuf_reset(&url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	http_set_method(h, rq->method, rq->body_len);
	*ret_hl = hl;
	return 0;
}

int gcs_setup_handle(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		     struct curl_slist **ret_hl, struct http_err *err)
{
	return setup(in, h, ctx, rq, 0, ret_hl, err);
}

static int perform(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		   int force_token, struct http_resp *resp, struct http_err *err)
{
	struct curl_slist *hl = NULL;
	int r = setup(in, h, ctx, rq, force_token, &hl, err);
	if (r < 0)
		return r;
	r = http_perform(h, rq->method, rq->body, rq->body_len, rq->what, resp, err);
	curl_slist_free_all(hl);
	return r;
}

int gcs_perform(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		struct http_resp *resp, struct http_err *err)
{
	memset(resp, 0, sizeof(*resp));
	memset(err, 0, sizeof(*err));
	resp->content_length = -1;
	return perform(in, h, ctx, rq, 0, resp, err);
}

struct attempt_arg {
	amber_instance *in;
	const struct gcs_req *rq;
	int refreshed, force;
};

static int attempt(void *p, CURL *h, amber_ctx *ctx, struct http_resp *resp,
		   struct http_err *err)
{
	struct attempt_arg *a = p;
	int force = a->force;
	a->force = 0;
	return perform(a->in, h, ctx, a->rq, force, resp, err);
}

static int judge(void *p, const struct http_resp *resp, struct http_err *err)
{
	struct attempt_arg *a = p;
	gcs_err_from_response(err, resp->status, resp->body.data, a->rq->what);
	/* An unexpected 401 with a bearer token: refresh it once, retry. */
	if (resp->status == 401 && !a->refreshed &&
	    (a->in->auth == GCS_AUTH_SA || a->in->auth == GCS_AUTH_METADATA) &&
	    a->rq->api != GCS_SESSION && a->rq->api != GCS_RAW) {
		a->refreshed = a->force = 1;
		return HTTP_RETRY_NOW;
	}
	return gcs_is_transient(resp->status) ? HTTP_RETRY_BACKOFF : HTTP_RETRY_FAIL;
}

int gcs_request(amber_instance *in, CURL *curl, amber_ctx *ctx, const struct gcs_req *rq,
		struct http_resp *resp, struct http_err *err)
{
	static const struct http_retry_ops ops = { attempt, judge };
	struct attempt_arg a = { in, rq, 0, 0 };
	return http_request(curl, ctx, rq->what, &ops, &a, resp, err);
}
