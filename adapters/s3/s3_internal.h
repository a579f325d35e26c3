/* Internals shared by the s3 adapter's files. */
#ifndef AMBER_S3_INTERNAL_H
#define AMBER_S3_INTERNAL_H

#include <amber/adapter.h>

#include <curl/curl.h>
#include <stdint.h>

#include "http_client.h"
#include "sigv4.h"
#include "strbuf.h"
#include "xml.h"

#define S3_MAX_PARTS 10000
#define S3_MAX_PRESIGN_TTL 604800u

struct amber_instance {
	char *base_url;    /* "http://127.0.0.1:9000" or "https://bucket.s3.amazonaws.com" */
	char *host;        /* the Host header, as clients will compute it from base_url */
	char *path_prefix; /* "/<bucket>" with path_style, "" otherwise */
	const char *bucket;
	const char *prefix; /* key prefix, "" for none */
	const char *storage_class; /* NULL when unset or empty: the header is then omitted */
	struct sigv4_creds creds;
	uint64_t part_size;
	unsigned parallel_parts;
	long connect_timeout_ms;
	long stall_timeout_ms;
};

struct s3_req {
	const char *method;
	const char *key; /* object key without the prefix; NULL for bucket requests */
	const struct sigv4_kv *query;
	size_t n_query;
	const struct sigv4_kv *headers; /* besides Host, x-amz-date/content-sha256/token */
	size_t n_headers;
	const void *body;
	size_t body_len;
	int md5; /* send Content-MD5 of the body (parts, PutObject) */
	const char *what; /* "PutObject", for messages */
};

/* One request, retried with the host's backoff on transient failures (transport error,
 * 5xx, 429, SlowDown, RequestTimeout). Returns 0 with a 2xx in resp (caller frees
 * resp->body), or an AMBER_E* with err filled. curl may be NULL (a fresh handle is
 * used) or a handle the caller reuses; ctx is used only for is_cancelled and backoff,
 * so worker threads may pass the operation's ctx. */
int s3_request(amber_instance *in, CURL *curl, amber_ctx *ctx, const struct s3_req *rq,
	       struct http_resp *resp, struct http_err *err);

/* Transfers err to the ctx (message and details); returns err->code. */
int s3_set_error(amber_ctx *ctx, const struct http_err *err);

/* Builds the object path "/<bucket>/<prefix><key>" (path style) unencoded. */
char *s3_object_path(const amber_instance *in, const char *key);

/* Signs rq and sets the URL, headers and method on h (after a reset); *ret_hl is the
 * header list to free after the transfer. -1 with err filled on failure. */
int s3_setup_handle(amber_instance *in, CURL *h, amber_ctx *ctx, const struct s3_req *rq,
		    const char *md5, struct curl_slist **ret_hl, struct http_err *err);

/* Fills err from a non-2xx answer (status and the S3 <Error> body). */
void s3_err_from_response(struct http_err *err, long status, const char *body, const char *what);
int s3_is_transient(long status, const char *reason);

/* The writer and reader (s3_writer.c, s3_reader.c). */
int s3_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
		   const amber_object_info *hint, amber_writer **ret);
int s3_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len);
int s3_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *final_info);
void s3_writer_free(amber_writer *w);
int s3_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
		   amber_object_info *ret_info, amber_reader **ret);
int64_t s3_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap);
void s3_reader_free(amber_reader *r);

/* Multipart calls the writer shares with the multipart_* group (s3.c). */
int s3_mpu_create(amber_instance *in, CURL *curl, amber_ctx *ctx, const char *key,
		  const char *content_type, char **ret_upload_id, struct http_err *err);
int s3_mpu_complete(amber_instance *in, CURL *curl, amber_ctx *ctx, const char *key,
		    const char *upload_id, const uint32_t *numbers, char *const *etags, size_t n,
		    struct http_err *err);
int s3_mpu_abort(amber_instance *in, CURL *curl, amber_ctx *ctx, const char *key,
		 const char *upload_id, struct http_err *err);

#endif
