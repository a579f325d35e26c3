/* Resumable-session uploads through a presigned start URL; see resumable_upload.h.
 *
 * Synchronous on the archive engine's writer thread: a session takes one chunk at a
 * time in order, so there is nothing to overlap but the filling of the next chunk, and
 * holding one chunk is what keeps memory flat. The buffer always starts at the store's
 * committed offset; nothing is ever sent from a guessed one. */
#include "resumable_upload.h"

#include "crc32c.h"
#include "curl_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_STALL_TIMEOUT_MS 60000u
#define DEFAULT_RETRY ((struct host_retry_policy){ .max_attempts = 6, .base_ms = 250, \
						    .max_ms = 8000 })
#define CANCEL_TIMEOUT_MS 10000L
#define HDR_MAX 2048
#define ERR_BODY_MAX 300

struct resumable_upload {
	const char *start_url;
	const char *const *start_headers;
	size_t n_start_headers;
	const char *content_type;
	struct host_retry_policy retry;
	const atomic_int *cancel;
	unsigned connect_timeout_ms, stall_timeout_ms;
	CURL *h;

	char *session;		/* from the opening POST's Location */
	unsigned char *buf;	/* bytes from offset `committed` on */
	size_t len, cap;
	uint64_t committed;	/* acknowledged by the store */
	uint64_t total;		/* bytes taken from the writer */
	uint32_t crc;
	bool finished;
	unsigned retries;
	int err;
	char message[RESUMABLE_UPLOAD_MESSAGE_MAX];
};

/* One response: what the protocol reads from it. */
struct resp {
	long status;
	char location[HDR_MAX];
	char range[128];
	char hash[256]; /* x-goog-hash values, comma-joined */
	char body[ERR_BODY_MAX + 1];
	size_t body_len;
	/* the request body */
	const unsigned char *data;
	size_t data_len, data_off;
	const atomic_int *cancel;
};

enum outcome { REQ_OK, REQ_RETRY, REQ_FAIL };

static int fail(struct resumable_upload *ru, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct resumable_upload *ru, int err, const char *fmt, ...)
{
	if (!ru->err) {
		ru->err = err;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ru->message, sizeof(ru->message), fmt, ap);
		va_end(ap);
	}
	return ru->err;
}

static bool cancelled(const struct resumable_upload *ru)
{
	return ru->cancel && atomic_load(ru->cancel);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct resp *r = userdata;
	size_t n = size * nmemb;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) /* a new response (after 100 Continue) */
		r->location[0] = r->range[0] = r->hash[0] = 0;
	curl_util_header_value(data, n, "location:", r->location, sizeof(r->location));
	curl_util_header_value(data, n, "range:", r->range, sizeof(r->range));
	/* GCS may send x-goog-hash twice (crc32c, md5): keep them comma-joined. */
	size_t o = strlen(r->hash);
	if (o + 2 < sizeof(r->hash) &&
	    curl_util_header_value(data, n, "x-goog-hash:", r->hash + o + (o ? 1 : 0),
				   sizeof(r->hash) - o - 1) >= 0 && o)
		r->hash[o] = ',';
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct resp *r = userdata;
	size_t n = size * nmemb, room = ERR_BODY_MAX - r->body_len;
	size_t k = n < room ? n : room;
	for (size_t i = 0; i < k; i++)
		r->body[r->body_len++] = (data[i] == '\n' || data[i] == '\r' || data[i] == '\t')
						 ? ' ' : data[i];
	r->body[r->body_len] = 0;
	return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *userdata)
{
	struct resp *r = userdata;
	size_t want = size * nmemb, left = r->data_len - r->data_off;
	if (want > left)
		want = left;
	memcpy(buf, r->data + r->data_off, want);
	r->data_off += want;
	return want;
}

/* curl rewinds when it re-sends on a fresh connection: the chunk is still all here. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
	struct resp *r = userdata;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->data_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->data_off = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const struct resp *r = userdata;
	return r->cancel && atomic_load(r->cancel) ? 1 : 0;
}

/* One request. REQ_OK: an HTTP answer is in *r (any status). REQ_RETRY: a transport
 * failure another attempt may fix; REQ_FAIL: one it would not, or a cancel (*err, why). */
static enum outcome request(struct resumable_upload *ru, const char *method, const char *url,
			    const char *const *headers, size_t n_headers, const void *data,
			    size_t len, struct resp *r, int *err, char *why, size_t why_cap)
{
	memset(r, 0, sizeof(*r));
	r->data = data;
	r->data_len = len;
	r->cancel = ru->cancel;
	struct curl_slist *hdrs = NULL, *tmp;
	for (size_t i = 0; i <= n_headers; i++) {
		/* "Expect:": send the body at once rather than wait for a 100 Continue. */
		tmp = curl_slist_append(hdrs, i < n_headers ? headers[i] : "Expect:");
		if (!tmp) {
			curl_slist_free_all(hdrs);
			*err = -ENOMEM;
			snprintf(why, why_cap, "out of memory");
			return REQ_FAIL;
		}
		hdrs = tmp;
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_reset(ru->h); /* keeps the connection cache */
	struct curl_util_opts o = { .url = url,
				    .errbuf = errbuf,
				    .on_header = on_header,
				    .on_body = on_body,
				    .data = r,
				    .on_progress = on_progress,
				    .progress_data = r,
				    .connect_timeout_ms = ru->connect_timeout_ms,
				    .stall_timeout_ms = ru->stall_timeout_ms };
	curl_util_setup(ru->h, &o);
	if (!ru->stall_timeout_ms) /* the cancelling DELETE: short, whole */
		curl_easy_setopt(ru->h, CURLOPT_TIMEOUT_MS, CANCEL_TIMEOUT_MS);
	/* A signed URL addresses exactly the path it was signed for (gcs-protocol.md §1). */
	curl_easy_setopt(ru->h, CURLOPT_PATH_AS_IS, 1L);
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(ru->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(ru->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(ru->h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(ru->h, CURLOPT_READDATA, r);
		curl_easy_setopt(ru->h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(ru->h, CURLOPT_SEEKDATA, r);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(ru->h, CURLOPT_POST, 1L);
		curl_easy_setopt(ru->h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(ru->h, CURLOPT_POSTFIELDSIZE, 0L);
	} else {
		curl_easy_setopt(ru->h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(ru->h, CURLOPT_HTTPHEADER, hdrs);
	CURLcode cc = curl_easy_perform(ru->h);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK) {
		if (cc == CURLE_ABORTED_BY_CALLBACK || cancelled(ru)) {
			*err = -ECANCELED;
			snprintf(why, why_cap, "cancelled");
			return REQ_FAIL;
		}
		*err = curl_util_request_error(cc) ? -EINVAL : -EIO;
		snprintf(why, why_cap, "%s", *errbuf ? errbuf : curl_easy_strerror(cc));
		return curl_util_request_error(cc) ? REQ_FAIL : REQ_RETRY;
	}
	curl_easy_getinfo(ru->h, CURLINFO_RESPONSE_CODE, &r->status);
	return REQ_OK;
}

static bool transient(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

static int status_errno(long status)
{
	return status == 401 ? -EACCES : status == 403 ? -EPERM
	       : status == 404 || status == 410 ? -EIO : -EINVAL;
}

/* Sleeps before retry number `attempt`; a failure once the attempts are used up. */
static int backoff(struct resumable_upload *ru, unsigned attempt, int err, const char *what,
		   const char *why)
{
	if (attempt > ru->retry.max_attempts)
		return fail(ru, err == -EIO ? -EIO : -EAGAIN, "%s: %s (gave up after %u attempts)",
			    what, why, attempt);
	ru->retries++;
	if (curl_util_sleep_ms(host_backoff_delay_ms(&ru->retry, attempt), NULL, ru->cancel) < 0)
		return fail(ru, -ECANCELED, "cancelled");
	return 0;
}

static int open_session(struct resumable_upload *ru)
{
	const char *hdrs[18];
	size_t n = 0;
	for (size_t i = 0; i < ru->n_start_headers && n < 16; i++)
		hdrs[n++] = ru->start_headers[i];
	char ct[160];
	snprintf(ct, sizeof(ct), "Content-Type: %s", ru->content_type);
	hdrs[n++] = ct;
	for (unsigned attempt = 1;; attempt++) {
		struct resp r;
		int err = 0;
		char why[400];
		enum outcome o = request(ru, "POST", ru->start_url, hdrs, n, NULL, 0, &r, &err, why,
					 sizeof(why));
		if (o == REQ_FAIL)
			return fail(ru, err, "opening the upload session: %s", why);
		if (o == REQ_OK && (r.status == 200 || r.status == 201) && r.location[0]) {
			ru->session = strdup(r.location);
			return ru->session ? 0 : fail(ru, -ENOMEM, "out of memory");
		}
		if (o == REQ_OK && (r.status == 200 || r.status == 201))
			return fail(ru, -EIO, "opening the upload session: HTTP %ld without a "
					      "Location", r.status);
		if (o == REQ_OK)
			snprintf(why, sizeof(why), "HTTP %ld%s%s", r.status, r.body_len ? ": " : "",
				 r.body);
		if (o == REQ_OK && !transient(r.status))
			return fail(ru, status_errno(r.status), "opening the upload session: %s", why);
		/* Retrying the opening is harmless: an unused session just expires. */
		if (backoff(ru, attempt, err ? err : -EAGAIN, "opening the upload session", why) < 0)
			return ru->err;
	}
}

/* A 308's Range ("bytes=0-K", or none: nothing stored yet) moves the committed offset:
 * never back past what was confirmed (those bytes are gone from memory) nor beyond
 * what was sent. */
static int apply_range(struct resumable_upload *ru, const char *range)
{
	uint64_t next = 0;
	if (range[0]) {
		const char *dash = strchr(range, '-');
		char *end = NULL;
		if (strncmp(range, "bytes=0-", 8) != 0 || !dash)
			return fail(ru, -EIO, "upload: unexpected Range \"%s\"", range);
		next = strtoull(dash + 1, &end, 10) + 1;
		if (end == dash + 1 || *end)
			return fail(ru, -EIO, "upload: unexpected Range \"%s\"", range);
	}
	if (next < ru->committed || next > ru->committed + ru->len)
		return fail(ru, -EIO, "upload: the store reports %" PRIu64 " bytes, outside the %"
				      PRIu64 "..%" PRIu64 " it can have", next, ru->committed,
			    ru->committed + ru->len);
	size_t drop = (size_t)(next - ru->committed);
	memmove(ru->buf, ru->buf + drop, ru->len - drop);
	ru->len -= drop;
	ru->committed = next;
	return 0;
}

/* The final answer: the object exists. Its x-goog-hash, when it sends one, must be
 * the stream's (the store also checked the one the final request carried). */
static int check_final(struct resumable_upload *ru, const struct resp *r, bool final)
{
	if (!final || ru->committed + ru->len != ru->total)
		return fail(ru, -EIO, "upload: the store finalised the object before its end");
	char mine[9];
	amber_crc32c_b64(ru->crc, mine);
	const char *c = strstr(r->hash, "crc32c=");
	if (c && (strncmp(c + 7, mine, 8) != 0 || (c[15] && c[15] != ',')))
		return fail(ru, -EBADMSG, "upload: the stored object's crc32c is %.8s, the "
					  "stream's %s", c + 7, mine);
	ru->committed += ru->len;
	ru->len = 0;
	ru->finished = true;
	return 0;
}

/* Sends what the buffer holds: a full chunk (final false) until the store has all of
 * it, or the rest with the total (final true) until the object exists. */
static int send_buffer(struct resumable_upload *ru, bool final)
{
	if (!ru->session && open_session(ru) < 0)
		return ru->err;
	unsigned attempt = 1;
	bool query = false;
	for (;;) {
		if (cancelled(ru))
			return fail(ru, -ECANCELED, "cancelled");
		char cr[96], hash[64];
		const char *hdrs[3];
		size_t n_hdrs = 0, n = query ? 0 : ru->len;
		if (query)
			snprintf(cr, sizeof(cr), "Content-Range: bytes */*");
		else if (n == 0)
			snprintf(cr, sizeof(cr), "Content-Range: bytes */%" PRIu64, ru->total);
		else if (final)
			snprintf(cr, sizeof(cr), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
				 ru->committed, ru->committed + n - 1, ru->total);
		else
			snprintf(cr, sizeof(cr), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/*",
				 ru->committed, ru->committed + n - 1);
		hdrs[n_hdrs++] = cr;
		hdrs[n_hdrs++] = "Content-Type: application/octet-stream";
		if (final && !query) {
			char b64[9];
			amber_crc32c_b64(ru->crc, b64);
			snprintf(hash, sizeof(hash), "X-Goog-Hash: crc32c=%s", b64);
			hdrs[n_hdrs++] = hash;
		}
		const char *what = query ? "upload status query" : "upload chunk";
		struct resp r;
		int err = 0;
		char why[400];
		enum outcome o = request(ru, "PUT", ru->session, hdrs, n_hdrs, ru->buf, n, &r, &err,
					 why, sizeof(why));
		if (o == REQ_FAIL)
			return fail(ru, err, "%s at byte %" PRIu64 ": %s", what, ru->committed, why);
		if (o == REQ_OK && r.status == 308) {
			uint64_t before = ru->committed;
			bool was_query = query;
			if (apply_range(ru, r.range) < 0)
				return ru->err;
			query = false;
			/* Room in the buffer again: what was not taken goes out at the front of
			 * the next chunk, which keeps every non-final chunk a full one. */
			if (!final && ru->len < ru->cap)
				return 0;
			if (was_query)
				continue; /* the backoff came before the query */
			if (ru->committed > before) {
				attempt = 1;
				continue;
			}
			/* Not a byte further: back off so a store stuck this way cannot spin. */
			if (backoff(ru, attempt++, -EAGAIN, what, "HTTP 308 without progress") < 0)
				return ru->err;
			continue;
		}
		if (o == REQ_OK && (r.status == 200 || r.status == 201))
			return check_final(ru, &r, final);
		if (o == REQ_OK) {
			snprintf(why, sizeof(why), "HTTP %ld%s%s", r.status, r.body_len ? ": " : "",
				 r.body);
			if (r.status == 404 || r.status == 410)
				return fail(ru, -EIO, "%s: upload session lost (%s): the stream cannot "
						      "be replayed", what, why);
			if (r.status == 400 && final && !query && strcasestr(r.body, "digest"))
				return fail(ru, -EBADMSG, "%s: the store refused the stream's "
							  "checksum: %s", what, why);
			if (!transient(r.status))
				return fail(ru, status_errno(r.status), "%s: %s", what, why);
			err = -EAGAIN;
		}
		if (backoff(ru, attempt++, err, what, why) < 0)
			return ru->err;
		/* Where does the session stand? Nothing is re-sent before the store says. */
		query = true;
	}
}

int resumable_upload_new(const struct resumable_upload_config *cfg,
			 struct resumable_upload **ret)
{
	*ret = NULL;
	if (!cfg->start_url || !*cfg->start_url || cfg->chunk_size == 0 ||
	    cfg->chunk_size % RESUMABLE_UPLOAD_UNIT || cfg->chunk_size > SIZE_MAX / 2 ||
	    cfg->n_start_headers > 16)
		return -EINVAL;
	struct resumable_upload *ru = calloc(1, sizeof(*ru));
	if (!ru)
		return -ENOMEM;
	ru->start_url = cfg->start_url;
	ru->start_headers = cfg->start_headers;
	ru->n_start_headers = cfg->n_start_headers;
	ru->content_type = cfg->content_type ? cfg->content_type : "application/gzip";
	ru->retry = cfg->retry.max_attempts || cfg->retry.base_ms ? cfg->retry : DEFAULT_RETRY;
	ru->cancel = cfg->cancel;
	ru->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
							 : DEFAULT_CONNECT_TIMEOUT_MS;
	ru->stall_timeout_ms = cfg->stall_timeout_ms ? cfg->stall_timeout_ms
						     : DEFAULT_STALL_TIMEOUT_MS;
	ru->cap = (size_t)cfg->chunk_size;
	ru->buf = malloc(ru->cap);
	ru->h = curl_easy_init();
	if (!ru->buf || !ru->h) {
		resumable_upload_free(ru);
		return -ENOMEM;
	}
	*ret = ru;
	return 0;
}

int resumable_upload_write(struct resumable_upload *ru, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len > 0) {
		if (ru->err)
			return ru->err;
		if (ru->finished)
			return fail(ru, -EINVAL, "write after the end of the upload");
		size_t k = ru->cap - ru->len < len ? ru->cap - ru->len : len;
		memcpy(ru->buf + ru->len, p, k);
		ru->crc = amber_crc32c(ru->crc, p, k);
		ru->len += k;
		ru->total += k;
		p += k;
		len -= k;
		if (ru->len == ru->cap && send_buffer(ru, false) < 0)
			return ru->err;
	}
	return ru->err;
}

static int sink_write(void *opaque, const void *buf, size_t len)
{
	return resumable_upload_write(opaque, buf, len);
}

struct amber_sink resumable_upload_sink(struct resumable_upload *ru)
{
	return (struct amber_sink){ .write = sink_write, .opaque = ru };
}

int resumable_upload_finish(struct resumable_upload *ru)
{
	if (ru->err)
		return ru->err;
	if (ru->finished)
		return fail(ru, -EINVAL, "the upload was already finished");
	return send_buffer(ru, true);
}

uint64_t resumable_upload_bytes_stored(const struct resumable_upload *ru)
{
	return ru->committed;
}

unsigned resumable_upload_retries(const struct resumable_upload *ru)
{
	return ru->retries;
}

const char *resumable_upload_error(const struct resumable_upload *ru)
{
	return ru->message;
}

void resumable_upload_free(struct resumable_upload *ru)
{
	if (!ru)
		return;
	if (ru->session && !ru->finished && ru->h) {
		/* The store discards a cancelled session's bytes (GCS answers 499). One try,
		 * briefly: the session expires on its own if this does not get through. */
		struct resp r;
		int err;
		char why[64];
		const atomic_int *cancel = ru->cancel;
		ru->cancel = NULL; /* a cancelled job still cancels its session */
		const char *hdrs[1] = { "Content-Length: 0" };
		ru->stall_timeout_ms = 0;
		request(ru, "DELETE", ru->session, hdrs, 1, NULL, 0, &r, &err, why, sizeof(why));
		ru->cancel = cancel;
	}
	if (ru->h)
		curl_easy_cleanup(ru->h);
	free(ru->session);
	free(ru->buf);
	free(ru);
}
