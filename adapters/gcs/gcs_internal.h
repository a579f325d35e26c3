/* Internals shared by the gcs adapter's files. */
#ifndef AMBER_GCS_INTERNAL_H
#define AMBER_GCS_INTERNAL_H

#include <amber/adapter.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "gcs_util.h"
#include "http_client.h"
#include "sigv4.h"
#include "strbuf.h"
#include "xml.h"

#define GCS_CHUNK_QUANTUM (256u * 1024u)
#define GCS_MAX_PRESIGN_TTL 604800u
#define GCS_MAX_PARTS 10000

enum gcs_auth { GCS_AUTH_SA, GCS_AUTH_METADATA, GCS_AUTH_HMAC, GCS_AUTH_NONE };

struct amber_instance {
	const char *name; /* the instance's name, for messages */
	char *endpoint;   /* no trailing slash */
	char *metadata_url;
	const char *bucket;
	const char *prefix;
	enum gcs_auth auth;
	struct gcs_sa_key key; /* GCS_AUTH_SA */
	const char *hmac_id, *hmac_secret;
	struct sigv4_creds hmac_creds;
	char *host; /* Host header for endpoint, as signed (HMAC) */
	uint64_t chunk_size, part_size;
	unsigned parallel_parts;
	long connect_timeout_ms, stall_timeout_ms;

	/* The cached access token: one refresh at a time, under the lock. */
	pthread_mutex_t token_lock;
	char *token;
	time_t token_expiry;
};

/* What a request talks to. */
enum gcs_api { GCS_JSON, GCS_XML, GCS_SESSION, GCS_RAW };

struct gcs_req {
	const char *method;
	enum gcs_api api;
	/* GCS_JSON / GCS_SESSION / GCS_RAW: the full URL. GCS_XML: the object (without the
	 * prefix, NULL for the bucket) and query, signed per the instance's auth. */
	const char *url;
	const char *key;
	const struct sigv4_kv *query;
	size_t n_query;
	const char *const *headers; /* "Name: value" lines */
	size_t n_headers;
	const void *body;
	size_t body_len;
	const char *what;
};

/* One attempt: 0 when an HTTP answer arrived (any status; caller frees resp->body), or
 * an AMBER_E* with err filled (transport failures: AMBER_EAGAIN). */
int gcs_perform(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		struct http_resp *resp, struct http_err *err);
/* With retries (transient: transport, 408, 429, 5xx; a 401 refreshes the token once):
 * 0 with a 2xx in resp, or an AMBER_E*. */
int gcs_request(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		struct http_resp *resp, struct http_err *err);
void gcs_err_from_response(struct http_err *err, long status, const char *body, const char *what);
int gcs_is_transient(long status);
int gcs_set_error(amber_ctx *ctx, const amber_instance *in, const struct http_err *err);
/* Sets URL, method and headers (auth included) of rq on h after a reset; *ret_hl to be
 * freed after the transfer. */
int gcs_setup_handle(amber_instance *in, CURL *h, amber_ctx *ctx, const struct gcs_req *rq,
		     struct curl_slist **ret_hl, struct http_err *err);

/* The Authorization header line for JSON/XML requests ("" for none), per auth mode;
 * fetches or refreshes the token when needed (force: even if cached). */
int gcs_auth_header(amber_instance *in, int force, char **ret_line, struct http_err *err);

/* URLs. */
char *gcs_json_object_url(const amber_instance *in, const char *key, const char *query);
char *gcs_full_name(const amber_instance *in, const char *key);

int gcs_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
		    const amber_object_info *hint, amber_writer **ret);
int gcs_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len);
int gcs_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *final_info);
void gcs_writer_free(amber_writer *w);
int gcs_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t offset,
		    amber_object_info *ret_info, amber_reader **ret);
int64_t gcs_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap);
void gcs_reader_free(amber_reader *r);

#endif
