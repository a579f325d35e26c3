/* What the core's HTTP clients (part_upload, url_source, remote_client) do with libcurl
 * alike: the options every transfer sets, which curl errors no retry can fix, and a
 * sleep between attempts (host_backoff_delay_ms) that a cancel cuts short. */
#ifndef AMBER_CURL_UTIL_H
#define AMBER_CURL_UTIL_H

#include "host.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct curl_util_opts {
	const char *url;
	char *errbuf; /* CURL_ERROR_SIZE bytes */
	curl_write_callback on_header, on_body;
	void *data; /* for on_header and on_body */
	/* Called as bytes move; non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
	curl_xferinfo_callback on_progress;
	void *progress_data;
	unsigned connect_timeout_ms;
	/* > 0: an attempt that moves no byte for this long fails (no overall timeout: a large
	 * backup takes what it takes); 0: the caller sets its own timeout. */
	unsigned stall_timeout_ms;
};

/* Sets o's options on h, and the ones every core transfer shares: no signals, and no
 * redirect nor a scheme beyond http(s). */
void curl_util_setup(CURL *h, const struct curl_util_opts *o);

/* When line (one header line as curl's header callback gets it, n bytes) is the header
 * `name` (lower case with its colon, "etag:"; matched case-insensitively): its value
 * without surrounding blanks and line end, copied into out (truncated to cap - 1), and
 * the value's full length is returned, so a caller can refuse a truncated one. Else -1
 * and out is untouched. */
long curl_util_header_value(const char *line, size_t n, const char *name, char *out, size_t cap);

/* A malformed URL, an unsupported scheme, no memory: errors of the request itself, which
 * another attempt would meet again. */
bool curl_util_request_error(CURLcode cc);

/* Sleeps ms in short slices, so a shutdown never waits out a long backoff: -ECANCELED as
 * soon as *stop or *cancel (either may be NULL) is non-zero, else 0. */
int curl_util_sleep_ms(uint64_t ms, const atomic_int *stop, const atomic_int *cancel);

#endif
