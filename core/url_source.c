/* A URL as a restore source; see url_source.h for the contract.
 *
 * curl pushes bytes, the restore engine pulls them: the transfer runs on a curl multi
 * handle that read() drives, and the write callback appends into a small buffer that
 * read() drains. When that buffer is full the callback pauses the transfer (curl keeps
 * the chunk and delivers it again on resume), so memory stays at about PENDING_MAX
 * whatever the download's size. Everything runs on the reader's thread. */
#include "url_source.h"

#include "curl_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_STALL_TIMEOUT_MS 60000u
#define DEFAULT_RETRY ((struct host_retry_policy){ .max_attempts = 6, .base_ms = 250, \
						    .max_ms = 8000 })
#define PENDING_MAX ((size_t)256 << 10)
#define POLL_MS 100
#define HDR_MAX 256

struct url_source {
	char *url;
	const atomic_int *cancel;
	struct host_retry_policy retry;
	unsigned connect_timeout_ms, stall_timeout_ms;
	CURLM *m;
	CURL *h;
	bool running, paused, eof;
	int err;
	char message[URL_SOURCE_MESSAGE_MAX];
	char errbuf[CURL_ERROR_SIZE];

	/* the current response */
	long status;
	char ctype[HDR_MAX], etag[HDR_MAX], location[HDR_MAX], crange[HDR_MAX];
	int64_t clen; /* -1: not given */
	bool head_ok;
	int attempt_err; /* the head was refused: this code, transient or not */
	bool attempt_transient;
	char attempt_msg[URL_SOURCE_MESSAGE_MAX];
	uint64_t req_offset, skip;
	bool progressed;

	/* the object, from the first accepted answer */
	bool have_first, have_total;
	uint64_t total;
	char first_etag[HDR_MAX];
	uint64_t received;
	unsigned fails, resumes;

	unsigned char *buf;
	size_t len, off, cap;
};

static bool cancelled(const struct url_source *s)
{
	return s->cancel && atomic_load(s->cancel);
}

static void set_error(struct url_source *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_error(struct url_source *s, int err, const char *fmt, ...)
{
	if (s->err)
		return;
	s->err = err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->message, sizeof(s->message), fmt, ap);
	va_end(ap);
}

static void refuse_attempt(struct url_source *s, int err, bool transient, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse_attempt(struct url_source *s, int err, bool transient, const char *fmt, ...)
{
	s->attempt_err = err;
	s->attempt_transient = transient;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->attempt_msg, sizeof(s->attempt_msg), fmt, ap);
	va_end(ap);
}

/* ---- the response head ---- */

/* What a tar archive may travel as. Anything else with a 200 is some error page. */
static bool content_type_ok(const char *ct)
{
	static const char *const ok[] = {
		"application/x-gzip", "application/gzip", "application/x-gtar",
		"application/x-tar", "application/x-compressed-tar", "application/zstd",
		"application/x-zstd", "application/octet-stream", "binary/octet-stream",
	};
	size_t n = strcspn(ct, "; \t");
	if (n == 0)
		return true; /* none given: the engine sniffs the bytes */
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strlen(ok[i]) == n && strncasecmp(ct, ok[i], n) == 0)
			return true;
	return false;
}

/* "bytes a-b/t" (t may be '*'). */
static bool parse_content_range(const char *v, uint64_t *start, bool *have_total,
				uint64_t *total)
{
	unsigned long long a, b;
	char t[32];
	if (sscanf(v, "bytes %llu-%llu/%31s", &a, &b, t) != 3 || b < a)
		return false;
	*start = a;
	*have_total = t[0] != '*';
	*total = *have_total ? strtoull(t, NULL, 10) : 0;
	return true;
}

/* The decision on a complete head; refuse_attempt when it is not usable. */
static void check_head(struct url_source *s)
{
	long st = s->status;
	if (st >= 300 && st < 400) {
		refuse_attempt(s, -EINVAL, false, "HTTP %ld redirect%s%s not followed", st,
			       s->location[0] ? " to " : "", s->location);
		return;
	}
	if (st == 429 || st >= 500) {
		refuse_attempt(s, -EAGAIN, true, "HTTP %ld", st);
		return;
	}
	if (st >= 400) {
		int e = st == 404 || st == 410 ? -ENOENT
			: st == 401 || st == 403 ? -EACCES
						 : -EINVAL;
		refuse_attempt(s, e, false, "HTTP %ld", st);
		return;
	}
	if (!content_type_ok(s->ctype)) {
		refuse_attempt(s, -EPROTO, false,
			       "\"%s\" is not a content type a backup archive is served as", s->ctype);
		return;
	}
	if (s->req_offset == 0) {
		if (st != 200) {
			refuse_attempt(s, -EINVAL, false, "HTTP %ld, expected 200", st);
			return;
		}
		if (!s->have_first) {
			s->have_first = true;
			snprintf(s->first_etag, sizeof(s->first_etag), "%s", s->etag);
			s->have_total = s->clen >= 0;
			s->total = s->have_total ? (uint64_t)s->clen : 0;
		}
		s->head_ok = true;
		return;
	}
	if (st == 206) {
		uint64_t start = 0, total = 0;
		bool has_total = false;
		if (!parse_content_range(s->crange, &start, &has_total, &total) ||
		    start != s->req_offset) {
			refuse_attempt(s, -EBADMSG, false,
				       "resume at byte %" PRIu64 " answered Content-Range \"%s\"",
				       s->req_offset, s->crange);
			return;
		}
		if (has_total && s->have_total && total != s->total) {
			refuse_attempt(s, -ESTALE, false,
				       "the object changed during the download (%" PRIu64
				       " bytes, now %" PRIu64 ")", s->total, total);
			return;
		}
		s->head_ok = true;
		return;
	}
	if (st == 200) {
		/* Range ignored: the whole object again, of which the first req_offset bytes
		 * are already consumed. Only the same object may continue the stream. */
		if ((s->first_etag[0] && s->etag[0] && strcmp(s->first_etag, s->etag) != 0) ||
		    (s->have_total && s->clen >= 0 && (uint64_t)s->clen != s->total)) {
			refuse_attempt(s, -ESTALE, false,
				       "the object changed during the download (a resume answered "
				       "200 with another ETag or length)");
			return;
		}
		s->skip = s->req_offset;
		s->head_ok = true;
		return;
	}
	refuse_attempt(s, -EINVAL, false, "HTTP %ld to a range request", st);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct url_source *s = userdata;
	size_t n = size * nmemb;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', n);
		s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		s->ctype[0] = s->etag[0] = s->location[0] = s->crange[0] = 0;
		s->clen = -1;
		return n;
	}
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{ "content-type:", offsetof(struct url_source, ctype) },
		{ "etag:", offsetof(struct url_source, etag) },
		{ "location:", offsetof(struct url_source, location) },
		{ "content-range:", offsetof(struct url_source, crange) },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (curl_util_header_value(data, n, fields[i].name, (char *)s + fields[i].off,
					   HDR_MAX) >= 0)
			return n;
	}
	char v[HDR_MAX];
	if (curl_util_header_value(data, n, "content-length:", v, sizeof(v)) >= 0) {
		char *end = NULL;
		unsigned long long x = strtoull(v, &end, 10);
		s->clen = end != v && x <= INT64_MAX ? (int64_t)x : -1;
		return n;
	}
	if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
		if (s->status >= 100 && s->status < 200)
			return n; /* an interim answer; the real head follows */
		check_head(s);
		/* 0 ends the transfer: nothing of a refused answer reaches the reader. */
		return s->attempt_err ? 0 : n;
	}
	return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct url_source *s = userdata;
	size_t n = size * nmemb;
	size_t drop = s->skip < n ? (size_t)s->skip : n;
	size_t rest = n - drop;
	size_t unread = s->len - s->off;
	/* Decided before skip changes: a paused chunk comes back whole. */
	if (rest > 0 && unread > 0 && unread + rest > PENDING_MAX) {
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	s->skip -= drop;
	if (rest == 0)
		return n;
	if (s->off > 0) {
		memmove(s->buf, s->buf + s->off, unread);
		s->len = unread;
		s->off = 0;
	}
	if (s->len + rest > s->cap) {
		size_t cap = s->cap ? s->cap : PENDING_MAX;
		while (cap < s->len + rest)
			cap *= 2;
		unsigned char *b = realloc(s->buf, cap);
		if (!b) {
			set_error(s, -ENOMEM, "out of memory");
			return 0;
		}
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data + drop, rest);
	s->len += rest;
	s->received += rest;
	s->progressed = true;
	return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return cancelled(userdata) ? 1 : 0;
}

/* ---- attempts ---- */

static void drop_handle(struct url_source *s)
{
	if (s->h) {
		curl_multi_remove_handle(s->m, s->h);
		curl_easy_cleanup(s->h);
		s->h = NULL;
	}
	s->running = s->paused = false;
}

static int start_attempt(struct url_source *s)
{
	drop_handle(s);
	s->h = curl_easy_init();
	if (!s->h)
		return -ENOMEM;
	s->status = 0;
	s->clen = -1;
	s->ctype[0] = s->etag[0] = s->location[0] = s->crange[0] = 0;
	s->head_ok = false;
	s->attempt_err = 0;
	s->attempt_transient = false;
	s->attempt_msg[0] = s->errbuf[0] = 0;
	s->req_offset = s->received;
	s->skip = 0;
	s->progressed = false;
	CURL *h = s->h;
	struct curl_util_opts o = { .url = s->url,
				    .errbuf = s->errbuf,
				    .on_header = on_header,
				    .on_body = on_write,
				    .data = s,
				    .on_progress = on_progress,
				    .progress_data = s,
				    .connect_timeout_ms = s->connect_timeout_ms,
				    .stall_timeout_ms = s->stall_timeout_ms };
	curl_util_setup(h, &o);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	if (s->received > 0) {
		char range[32];
		snprintf(range, sizeof(range), "%" PRIu64 "-", s->received);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	if (curl_multi_add_handle(s->m, h) != CURLM_OK)
		return -ENOMEM;
	s->running = true;
	return 0;
}

/* The request's own errors, and a host that does not resolve: the URL came as it is from
 * the panel, and another attempt would not find that host either. */
static bool curl_permanent(CURLcode cc)
{
	return curl_util_request_error(cc) || cc == CURLE_COULDNT_RESOLVE_HOST;
}

/* One attempt ended with cc: end of stream, a retry (after its backoff) or an error. */
static void attempt_done(struct url_source *s, CURLcode cc)
{
	char why[URL_SOURCE_MESSAGE_MAX];
	bool transient;
	int err;
	drop_handle(s);
	if (s->err)
		return;
	if (cancelled(s)) {
		set_error(s, -ECANCELED, "cancelled");
		return;
	}
	if (s->attempt_err) {
		err = s->attempt_err;
		transient = s->attempt_transient;
		snprintf(why, sizeof(why), "%s", s->attempt_msg);
	} else if (cc == CURLE_OK) {
		if (!s->have_total || s->received >= s->total) {
			s->eof = true;
			return;
		}
		err = -EIO;
		transient = true;
		snprintf(why, sizeof(why), "the body ended after %" PRIu64 " of %" PRIu64 " bytes",
			 s->received, s->total);
	} else {
		err = curl_permanent(cc) ? -EINVAL : -EIO;
		transient = !curl_permanent(cc);
		snprintf(why, sizeof(why), "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
	}
	if (!transient) {
		set_error(s, err, "%s", why);
		return;
	}
	if (s->progressed)
		s->fails = 0;
	s->fails++;
	if (s->fails > s->retry.max_attempts) {
		set_error(s, err == -EIO ? -EIO : -EAGAIN,
			  "%s (gave up after %u attempts in a row, %" PRIu64 " bytes received)", why,
			  s->fails, s->received);
		return;
	}
	if (curl_util_sleep_ms(host_backoff_delay_ms(&s->retry, s->fails), NULL, s->cancel) < 0) {
		set_error(s, -ECANCELED, "cancelled");
		return;
	}
	s->resumes++;
	int r = start_attempt(s);
	if (r < 0)
		set_error(s, r, "%s", strerror(-r));
}

/* Moves the transfer along once (waiting up to POLL_MS for the network). */
static void pump(struct url_source *s)
{
	int still = 0;
	if (curl_multi_perform(s->m, &still) != CURLM_OK) {
		set_error(s, -ENOMEM, "curl multi failure");
		return;
	}
	int left = 0;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(s->m, &left))) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->h) {
			attempt_done(s, msg->data.result);
			return;
		}
	}
	if (s->running && !s->paused)
		curl_multi_poll(s->m, NULL, 0, POLL_MS, NULL);
}

int url_source_open(const struct url_source_config *cfg, struct url_source **ret, char *err,
		    size_t err_cap)
{
	*ret = NULL;
	if (err && err_cap)
		err[0] = 0;
	if (!cfg || !cfg->url ||
	    (strncasecmp(cfg->url, "http://", 7) != 0 && strncasecmp(cfg->url, "https://", 8) != 0)) {
		if (err)
			snprintf(err, err_cap, "not an http(s) URL");
		return -EINVAL;
	}
	struct url_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->url = strdup(cfg->url);
	s->m = curl_multi_init();
	if (!s->url || !s->m) {
		url_source_free(s);
		return -ENOMEM;
	}
	s->cancel = cfg->cancel;
	s->retry = cfg->retry.max_attempts || cfg->retry.base_ms ? cfg->retry : DEFAULT_RETRY;
	s->connect_timeout_ms =
		cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	s->stall_timeout_ms = cfg->stall_timeout_ms ? cfg->stall_timeout_ms
						    : DEFAULT_STALL_TIMEOUT_MS;
	int r = start_attempt(s);
	if (r < 0) {
		url_source_free(s);
		return r;
	}
	/* The head decides; a transient failure before it is retried in attempt_done. */
	while (!s->err && !s->eof && !s->head_ok) {
		if (cancelled(s))
			set_error(s, -ECANCELED, "cancelled");
		else
			pump(s);
	}
	if (s->err) {
		r = s->err;
		if (err)
			snprintf(err, err_cap, "%s", s->message);
		url_source_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int64_t url_source_read(struct url_source *s, void *buf, size_t cap)
{
	while (s->len == s->off) {
		if (s->err)
			return s->err;
		if (s->eof)
			return 0;
		if (cancelled(s)) {
			set_error(s, -ECANCELED, "cancelled");
			continue;
		}
		if (s->paused) {
			s->paused = false;
			/* May deliver the held chunk right here, through on_write. */
			curl_easy_pause(s->h, CURLPAUSE_CONT);
			continue;
		}
		pump(s);
	}
	size_t n = s->len - s->off;
	if (n > cap)
		n = cap;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	if (s->off == s->len)
		s->off = s->len = 0;
	return (int64_t)n;
}

static int64_t source_read(void *opaque, void *buf, size_t cap)
{
	return url_source_read(opaque, buf, cap);
}

struct amber_source url_source_source(struct url_source *s)
{
	return (struct amber_source){ source_read, s };
}

const char *url_source_error(const struct url_source *s)
{
	return s->message;
}

unsigned url_source_resumes(const struct url_source *s)
{
	return s->resumes;
}

uint64_t url_source_bytes(const struct url_source *s)
{
	return s->received;
}

void url_source_free(struct url_source *s)
{
	if (!s)
		return;
	drop_handle(s);
	if (s->m)
		curl_multi_cleanup(s->m);
	free(s->buf);
	free(s->url);
	free(s);
}
