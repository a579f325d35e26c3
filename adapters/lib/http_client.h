/*
 * http_client: the request plumbing the remote-store adapters share (s3, gcs). The
 * adapter builds and signs a request on a curl handle; this runs it with the body from
 * memory (re-readable for retries), captures the answer's status, body and headers,
 * maps transport failures, and retries with the host's backoff. What a status means is
 * the adapter's call (judge), since S3 and GCS disagree.
 */
#ifndef AMBER_ADAPTERS_HTTP_CLIENT_H
#define AMBER_ADAPTERS_HTTP_CLIENT_H

#include <amber/adapter.h>

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* What a failed request said, kept apart from the host's ctx so worker threads can
 * record it and the calling thread can hand it over (the adapter's set_error). */
struct http_err {
	int code;	/* AMBER_E* */
	long status;	/* HTTP status, 0 for a transport error */
	char reason[64]; /* the store's error code (S3 <Code>, GCS reason), "" if none */
	char msg[512];
};

/* An answer: the status, the body (caller frees with strbuf_reset) and the headers
 * either store sends that an adapter uses. */
struct http_resp {
	long status;
	struct strbuf body;
	char location[2048];
	char range[128];
	char etag[256];
	char generation[32]; /* X-Goog-Generation */
	char crc32c[16];     /* the crc32c= of X-Goog-Hash */
	char content_range[128];
	int64_t content_length; /* -1 when absent */
};

/* The common options (timeouts, cancellation through ctx, User-Agent) on a handle. */
void http_curl_common(CURL *h, amber_ctx *ctx, long connect_timeout_ms, long stall_timeout_ms,
		      const char *user_agent);

/* Sets the method on h: PUT and POST upload body_len bytes (given to http_perform), HEAD
 * has no body, anything else but GET is a custom request. */
void http_set_method(CURL *h, const char *method, size_t body_len);

/* Forgets the last answer's headers (at a new status line: 100 Continue, a retry). */
void http_resp_clear(struct http_resp *r);
/* Parses one header line into r (a status line sets status and clears the rest). */
void http_resp_header(struct http_resp *r, const char *line, size_t len);

/* One attempt on h, which the adapter has set up (URL, headers, method): the body comes
 * from memory for PUT and POST. 0 when an HTTP answer arrived (any status; caller frees
 * resp->body), or AMBER_EAGAIN (transport) / AMBER_ECANCELED with err filled. */
int http_perform(CURL *h, const char *method, const void *body, size_t body_len,
		 const char *what, struct http_resp *resp, struct http_err *err);

/* The host's backoff after a transient failure (err) of attempt: 0 to try again; once
 * the host says stop, err->code becomes AMBER_ECANCELED or AMBER_EAGAIN (with the count
 * on err's message), and is returned. */
int http_backoff(amber_ctx *ctx, unsigned attempt, struct http_err *err);

/* Transfers err to the ctx, with "http_status" and reason_key details; the message is
 * prefixed with prefix when non-NULL. Returns err->code. */
int http_set_error(amber_ctx *ctx, const struct http_err *err, const char *reason_key,
		   const char *prefix);

/* A request with retries, the adapter's side given as callbacks. */
struct http_retry_ops {
	/* One attempt (set up h, then http_perform). */
	int (*attempt)(void *arg, CURL *h, amber_ctx *ctx, struct http_resp *resp,
		       struct http_err *err);
	/* A non-2xx answer: fills err and says what next: HTTP_RETRY_FAIL (err->code is
	 * returned), HTTP_RETRY_BACKOFF (transient) or HTTP_RETRY_NOW (e.g. after a token
	 * refresh, at most once per request is the adapter's business). */
	int (*judge)(void *arg, const struct http_resp *resp, struct http_err *err);
};
enum { HTTP_RETRY_FAIL, HTTP_RETRY_BACKOFF, HTTP_RETRY_NOW };

/* 0 with a 2xx in resp (caller frees resp->body), or an AMBER_E* with err filled. curl
 * may be NULL (a fresh handle is used). ctx is used only for is_cancelled and backoff,
 * so worker threads may pass the operation's ctx; NULL: no retries are cancelled. */
int http_request(CURL *curl, amber_ctx *ctx, const char *what, const struct http_retry_ops *ops,
		 void *arg, struct http_resp *resp, struct http_err *err);

#endif
