#include "curl_util.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* How often a sleeping retry looks at its cancel flags. */
#define SLEEP_SLICE_MS 50u

void curl_util_setup(CURL *h, const struct curl_util_opts *o)
{
	curl_easy_setopt(h, CURLOPT_URL, o->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, o->errbuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, o->on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, o->data);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, o->on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, o->data);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, o->on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, o->progress_data);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
	if (o->stall_timeout_ms > 0) {
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
				 (long)((o->stall_timeout_ms + 999) / 1000));
	}
	/* A presigned URL is signed for its host and the panel's token must not go to
	 * another; a redirect is not the answer asked for anyway. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
}

bool curl_util_request_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return true;
	default:
		return false;
	}
}

static bool raised(const atomic_int *stop, const atomic_int *cancel)
{
	return (stop && atomic_load(stop)) || (cancel && atomic_load(cancel));
}

int curl_util_sleep_ms(uint64_t ms, const atomic_int *stop, const atomic_int *cancel)
{
	while (ms > 0) {
		if (raised(stop, cancel))
			return -ECANCELED;
		uint64_t slice = ms > SLEEP_SLICE_MS ? SLEEP_SLICE_MS : ms;
		struct timespec ts = { 0, (long)slice * 1000000L };
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return raised(stop, cancel) ? -ECANCELED : 0;
}

long curl_util_header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
	size_t k = strlen(name);
	if (n < k || strncasecmp(line, name, k) != 0 || cap == 0)
		return -1;
	const char *v = line + k;
	size_t vl = n - k;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' ||
		      v[vl - 1] == '\t'))
		vl--;
	size_t c = vl < cap ? vl : cap - 1;
	memcpy(out, v, c);
	out[c] = 0;
	return (long)vl;
}
