/* The node's client for the panel's remote API. See remote_client.h for the contract;
 * the wire facts are in pterodactyl-protocol.md §1.3 and §3.
 *
 * Each request uses its own curl easy handle: reports are rare, and a handle per request
 * is what lets one client serve several job threads without a lock. */
#include "remote_client.h"

#include "curl_util.h"
#include "log.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef AMBER_VERSION
#define AMBER_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_BUDGET_MS 30000u
#define DEFAULT_INITIAL_MS 500u
#define DEFAULT_MAX_INTERVAL_MS 12000u
/* A part URL is ~1 KiB and S3 allows 10000 parts; anything far past that is not a panel. */
#define MAX_RESPONSE_BYTES (32u << 20)
#define MAX_SPOOL_FILE_BYTES (32u << 20)
/* A temporary spool file this old belongs to a writer that died mid-write. */
#define STALE_TMP_SECONDS 600

struct remote_client {
	char *base; /* "<panel_url>/api/remote", no trailing '/' */
	char *auth_header, *ua_header, *accept_header;
	unsigned timeout_ms, connect_timeout_ms;
	unsigned budget_ms, initial_ms, max_interval_ms;
	bool no_retry, insecure;
	const atomic_int *cancel;
	char *outbox_dir;
};

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool is_cancelled(const struct remote_client *c)
{
	return c->cancel && atomic_load(c->cancel) != 0;
}

/* Sleeps in slices so a shutdown never waits out a long backoff. */
static int sleep_ms(const struct remote_client *c, uint64_t ms)
{
	return curl_util_sleep_ms(ms, NULL, c->cancel);
}

static uint32_t random_u32(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)now_ms() * 2654435761u;
	return r;
}

/* Full jitter over an exponentially growing cap: many nodes coming back after a panel
 * outage must not retry in step. */
static uint64_t backoff_ms(const struct remote_client *c, unsigned attempt)
{
	uint64_t cap = c->initial_ms;
	for (unsigned i = 0; i < attempt && cap < c->max_interval_ms; i++)
		cap *= 2;
	if (cap > c->max_interval_ms)
		cap = c->max_interval_ms;
	return cap ? random_u32() % (cap + 1) : 0;
}

/* What goes into a header and into the panel's "<id>.<secret>" split: visible ASCII and
 * no '.', which would make the panel see three parts and answer 400. */
static bool token_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == '.')
			return false;
	return true;
}

/* The uuid goes into a URL path and a file name: letters, digits and '-' only. */
static bool uuid_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || *s == '-'))
			return false;
	return true;
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void status_set_detail(struct remote_status *st, const char *msg)
{
	if (st && msg)
		snprintf(st->detail, sizeof(st->detail), "%s", msg);
}

/* ---- client ---- */

void remote_client_free(struct remote_client *c)
{
	if (!c)
		return;
	free(c->base);
	free(c->auth_header);
	free(c->ua_header);
	free(c->accept_header);
	free(c->outbox_dir);
	free(c);
}

int remote_client_new(const struct remote_client_config *cfg, struct remote_client **ret)
{
	if (!cfg || !ret || !cfg->panel_url || !*cfg->panel_url || !token_ok(cfg->token_id) ||
	    !token_ok(cfg->token))
		return -EINVAL;
	const char *version = cfg->version ? cfg->version : AMBER_VERSION;
	const char *product = cfg->ua_product ? cfg->ua_product : "Pterodactyl Wings";
	const char *accept = cfg->accept ? cfg->accept : "application/vnd.pterodactyl.v1+json";
	if (!header_value_ok(version) || !header_value_ok(product) || !header_value_ok(accept) ||
	    !header_value_ok(cfg->panel_url))
		return -EINVAL;

	struct remote_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* The doc: "remote" with any trailing '/' removed, then "/api/remote". */
	size_t ulen = strlen(cfg->panel_url);
	while (ulen > 0 && cfg->panel_url[ulen - 1] == '/')
		ulen--;
	if (asprintf(&c->base, "%.*s/api/remote", (int)ulen, cfg->panel_url) < 0)
		c->base = NULL;
	if (asprintf(&c->auth_header, "Authorization: Bearer %s.%s", cfg->token_id, cfg->token) <
	    0)
		c->auth_header = NULL;
	if (asprintf(&c->ua_header, "User-Agent: %s/v%s (id:%s)", product, version,
		     cfg->token_id) < 0)
		c->ua_header = NULL;
	if (asprintf(&c->accept_header, "Accept: %s", accept) < 0)
		c->accept_header = NULL;
	if (cfg->outbox_dir)
		c->outbox_dir = strdup(cfg->outbox_dir);
	if (!c->base || !c->auth_header || !c->ua_header || !c->accept_header ||
	    (cfg->outbox_dir && !c->outbox_dir)) {
		remote_client_free(c);
		return -ENOMEM;
	}
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
							: DEFAULT_CONNECT_TIMEOUT_MS;
	if (c->connect_timeout_ms > c->timeout_ms)
		c->connect_timeout_ms = c->timeout_ms;
	c->budget_ms = cfg->retry_budget_ms ? cfg->retry_budget_ms : DEFAULT_BUDGET_MS;
	c->initial_ms = cfg->retry_initial_ms ? cfg->retry_initial_ms : DEFAULT_INITIAL_MS;
	c->max_interval_ms =
		cfg->retry_max_interval_ms ? cfg->retry_max_interval_ms : DEFAULT_MAX_INTERVAL_MS;
	c->no_retry = cfg->no_retry;
	c->insecure = cfg->insecure;
	c->cancel = cfg->cancel;
	*ret = c;
	return 0;
}

/* ---- one HTTP exchange ---- */

struct response {
	long status;
	char *body;
	size_t len, cap;
	bool too_big;
	int64_t retry_after_ms; /* -1: no usable Retry-After */
};

static void response_reset(struct response *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
	r->retry_after_ms = -1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	if (r->len + n + 1 > MAX_RESPONSE_BYTES) {
		r->too_big = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *p = realloc(r->body, cap);
		if (!p)
			return 0;
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = 0;
	return n;
}

/* Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
static int64_t parse_retry_after(const char *v, size_t n)
{
	char buf[128];
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = 0;
	if (strspn(buf, "0123456789") == n) {
		errno = 0;
		unsigned long long s = strtoull(buf, NULL, 10);
		if (errno || s > INT64_MAX / 1000)
			return INT64_MAX;
		return (int64_t)s * 1000;
	}
	time_t t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	time_t now = time(NULL);
	return t > now ? (int64_t)(t - now) * 1000 : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	/* A new status line starts a new response (e.g. after 100 Continue): forget. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		r->retry_after_ms = -1;
	if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
		r->retry_after_ms =
			parse_retry_after(data + sizeof(name) - 1, n - (sizeof(name) - 1));
	return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const struct remote_client *c = userdata;
	return is_cancelled(c) ? 1 : 0;
}

/* Transport failures the next attempt may not see again. Anything else (a malformed
 * URL, an unsupported scheme) is a configuration error that retrying cannot fix. */
static bool curl_transient(CURLcode cc)
{
	/* a cancel is not a failure to retry either */
	return !curl_util_request_error(cc) && cc != CURLE_ABORTED_BY_CALLBACK;
}

/* One request. 0: a response came back (r->status set); -EIO: transient transport
 * failure; -ECANCELED, -ENOMEM, -EBADMSG (oversized body), -EINVAL otherwise. */
static int http_once(const struct remote_client *c, const char *url, const char *body,
		     struct response *r, struct remote_status *st)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	struct curl_slist *hdrs = NULL, *tmp;
	const char *lines[] = { c->auth_header, c->ua_header, c->accept_header,
				"Content-Type: application/json",
				/* Bodies are small and the panel answers at once; a 100-continue
				 * round trip (curl asks for one past 1 KiB) only adds latency. */
				"Expect:" };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		tmp = curl_slist_append(hdrs, lines[i]);
		if (!tmp) {
			curl_slist_free_all(hdrs);
			curl_easy_cleanup(h);
			return -ENOMEM;
		}
		hdrs = tmp;
	}
	/* The token must not follow a redirect to another host, and a redirect is not an
	 * answer from the panel's remote API anyway: curl_util_setup follows none. */
	struct curl_util_opts o = { .url = url,
				    .errbuf = errbuf,
				    .on_header = on_header,
				    .on_body = on_body,
				    .data = r,
				    .on_progress = on_progress,
				    .progress_data = (void *)c,
				    .connect_timeout_ms = c->connect_timeout_ms };
	curl_util_setup(h, &o);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	/* The only methods of the remote API: POST with a body, GET without. */
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	else
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);

	CURLcode cc = curl_easy_perform(h);
	int rc = 0;
	if (cc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	} else if (cc == CURLE_ABORTED_BY_CALLBACK || is_cancelled(c)) {
		rc = -ECANCELED;
		status_set_detail(st, "cancelled");
	} else if (r->too_big) {
		/* Not a panel's answer; asking again would only fetch it again. */
		status_set_detail(st, "response body too large");
		rc = -EBADMSG;
	} else if (cc == CURLE_WRITE_ERROR) {
		rc = -ENOMEM;
	} else {
		if (st)
			snprintf(st->detail, sizeof(st->detail), "%s",
				 *errbuf ? errbuf : curl_easy_strerror(cc));
		rc = curl_transient(cc) ? -EIO : -EINVAL;
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* The panel's error body is {"errors":[{"code","status","detail"}]} (§1.3); keep the
 * first detail for the caller's log line. */
static void note_panel_error(const struct response *r, struct remote_status *st)
{
	if (!st)
		return;
	snprintf(st->detail, sizeof(st->detail), "HTTP %ld", r->status);
	if (!r->body)
		return;
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *first = json_array_get(json_object_get(j, "errors"), 0);
	const char *d = json_string_value(json_object_get(first, "detail"));
	if (!d)
		d = json_string_value(json_object_get(j, "error"));
	if (d)
		snprintf(st->detail, sizeof(st->detail), "HTTP %ld: %s", r->status, d);
	json_decref(j);
}

static int status_to_errno(long status)
{
	switch (status) {
	case 401:
		return -EACCES;
	case 403:
		return -EPERM;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	default:
		return -EINVAL;
	}
}

/* A request with the retry policy: POST when body is set, else GET. On 0, r holds the
 * 2xx response. */
static int http_call(const struct remote_client *c, const char *path, const char *body,
		     struct response *r, struct remote_status *st)
{
	char *url = NULL;
	if (asprintf(&url, "%s%s", c->base, path) < 0)
		return -ENOMEM;
	uint64_t start = now_ms();
	int rc;
	for (unsigned attempt = 0;; attempt++) {
		if (is_cancelled(c)) {
			rc = -ECANCELED;
			status_set_detail(st, "cancelled");
			break;
		}
		response_reset(r);
		if (st)
			st->attempts++;
		rc = http_once(c, url, body, r, st);
		if (rc == 0) {
			if (st)
				st->http_status = r->status;
			if (r->status >= 200 && r->status <= 299) {
				if (st)
					st->detail[0] = 0; /* earlier attempts' errors are moot */
				break;
			}
			note_panel_error(r, st);
			/* 4xx is the panel's decision; 429 alone asks to come back later. */
			if (r->status >= 400 && r->status <= 499 && r->status != 429) {
				rc = status_to_errno(r->status);
				break;
			}
		} else if (rc != -EIO) {
			break;
		} else if (st) {
			st->http_status = 0;
		}
		/* Transient: transport error, 5xx, 429, or an unexpected 1xx/3xx. */
		rc = -EAGAIN;
		if (c->no_retry)
			break;
		uint64_t delay = r->retry_after_ms >= 0 && (r->status == 429 || r->status == 503)
					 ? (uint64_t)r->retry_after_ms
					 : backoff_ms(c, attempt);
		uint64_t elapsed = now_ms() - start;
		if (elapsed >= c->budget_ms || delay > c->budget_ms - elapsed)
			break;
		rc = sleep_ms(c, delay);
		if (rc < 0) {
			status_set_detail(st, "cancelled");
			break;
		}
	}
	free(url);
	return rc;
}

/* ---- bodies ---- */

static bool hex_ok(const char *s)
{
	if (!s || strlen(s) != 40)
		return false;
	return strspn(s, "0123456789abcdefABCDEF") == 40;
}

/* The reason may hold a file name in any encoding, which JSON cannot carry: bytes
 * that are not valid UTF-8 become '?' rather than costing the whole report. */
static json_t *reason_string(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *backup_body(const struct backup_report *r)
{
	if (!r->successful) {
		/* Wings reports a failure with an empty ArchiveDetails: every field at its Go
		 * zero value and parts null. The panel ignores them when successful is false
		 * (and "error", which only Amber's panel reads). */
		json_t *b = json_pack("{s:b, s:s, s:s, s:I, s:n}", "successful", 0, "checksum",
				      "", "checksum_type", "", "size", (json_int_t)0, "parts");
		if (b && r->error && *r->error &&
		    json_object_set_new(b, "error", reason_string(r->error)) < 0) {
			json_decref(b);
			return NULL;
		}
		return b;
	}
	if (!hex_ok(r->checksum) || r->size > (uint64_t)INT64_MAX)
		return NULL;
	json_t *parts;
	if (r->parts) {
		parts = json_array();
		for (size_t i = 0; parts && i < r->n_parts; i++) {
			const struct remote_part *p = &r->parts[i];
			if (!p->etag || p->part_number == 0 ||
			    json_array_append_new(parts, json_pack("{s:s, s:I}", "etag", p->etag,
								   "part_number",
								   (json_int_t)p->part_number))) {
				json_decref(parts);
				return NULL;
			}
		}
	} else {
		parts = json_null();
	}
	if (!parts)
		return NULL;
	json_t *b = json_pack("{s:b, s:s, s:s, s:I, s:o}", "successful", 1, "checksum", r->checksum,
			      "checksum_type", "sha1", "size", (json_int_t)r->size, "parts", parts);
	if (b && r->sha256 && strlen(r->sha256) == 64 &&
	    json_object_set_new(b, "sha256_hash", json_string(r->sha256)) < 0) {
		json_decref(b);
		return NULL;
	}
	return b;
}

static json_t *restore_body(bool successful)
{
	return json_pack("{s:b}", "successful", successful ? 1 : 0);
}

static const char *kind_name(enum remote_report_kind k)
{
	return k == REMOTE_REPORT_RESTORE ? "restore" : "backup";
}

static char *report_path(enum remote_report_kind k, const char *uuid)
{
	char *p = NULL;
	if (asprintf(&p, "/backups/%s%s", uuid, k == REMOTE_REPORT_RESTORE ? "/restore" : "") <
	    0)
		return NULL;
	return p;
}

/* ---- outbox files ---- */

static char *spool_name(const char *uuid, enum remote_report_kind k)
{
	char *n = NULL;
	if (asprintf(&n, "%s.%s.json", uuid, kind_name(k)) < 0)
		return NULL;
	return n;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int outbox_put(const char *dir, const char *uuid, enum remote_report_kind k,
		      json_t *body /* stolen */)
{
	if (!dir || !uuid_ok(uuid) || !body) {
		json_decref(body);
		return -EINVAL;
	}
	json_t *doc = json_pack("{s:i, s:s, s:s, s:I, s:o}", "amber_outbox", 1, "kind",
				kind_name(k), "uuid", uuid, "spooled_at", (json_int_t)time(NULL),
				"body", body);
	if (!doc)
		return -ENOMEM;
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	char *name = spool_name(uuid, k);
	char *final = NULL, *tmp = NULL;
	int rc = -ENOMEM, fd = -1;
	if (!text || !name || asprintf(&final, "%s/%s", dir, name) < 0 ||
	    asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dir, name) < 0)
		goto out;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* Durable before visible: the rename publishes a complete, synced file, and the
	 * directory sync makes the rename itself survive a crash. */
	rc = write_all(fd, text, strlen(text));
	if (rc == 0)
		rc = write_all(fd, "\n", 1);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	fd = -1;
	if (rc == 0 && rename(tmp, final) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	else
		rc = fsync_dir(dir);
out:
	free(text);
	free(name);
	free(final);
	free(tmp);
	return rc;
}

int remote_outbox_put_backup(const char *dir, const char *backup_uuid,
			     const struct backup_report *r)
{
	if (!r)
		return -EINVAL;
	return outbox_put(dir, backup_uuid, REMOTE_REPORT_BACKUP, backup_body(r));
}

int remote_outbox_put_restore(const char *dir, const char *backup_uuid, bool successful)
{
	return outbox_put(dir, backup_uuid, REMOTE_REPORT_RESTORE, restore_body(successful));
}

static void outbox_forget(const char *dir, const char *uuid, enum remote_report_kind k)
{
	char *name = spool_name(uuid, k), *path = NULL;
	if (name && asprintf(&path, "%s/%s", dir, name) >= 0) {
		if (unlink(path) == 0) {
			log_msg(LOG_LEVEL_INFO,
				"remote: %s report for %s delivered; older spooled copy removed",
				kind_name(k), uuid);
			fsync_dir(dir);
		}
		free(path);
	}
	free(name);
}

/* ---- reports ---- */

static int send_report(struct remote_client *c, enum remote_report_kind k, const char *uuid,
		       json_t *body /* stolen */, struct remote_status *st)
{
	struct remote_status local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!c || !uuid_ok(uuid) || !body) {
		json_decref(body);
		return -EINVAL;
	}
	char *text = json_dumps(body, JSON_COMPACT);
	char *path = report_path(k, uuid);
	struct response r = { .retry_after_ms = -1 };
	int rc = -ENOMEM;
	if (text && path)
		rc = http_call(c, path, text, &r, st);
	response_reset(&r);
	free(text);
	free(path);

	if (rc == 0 && c->outbox_dir) {
		/* A spooled copy of an older report for this backup is stale now; sending it
		 * later would overwrite what the panel was just told. */
		outbox_forget(c->outbox_dir, uuid, k);
	} else if ((rc == -EAGAIN || rc == -ECANCELED) && c->outbox_dir) {
		int prc = outbox_put(c->outbox_dir, uuid, k, json_incref(body));
		if (prc == 0) {
			st->spooled = true;
			log_msg(LOG_LEVEL_WARNING,
				"remote: %s report for %s not delivered (%s); kept in %s",
				kind_name(k), uuid, st->detail, c->outbox_dir);
		} else {
			log_msg(LOG_LEVEL_ERR,
				"remote: %s report for %s not delivered (%s) and not spooled: %s",
				kind_name(k), uuid, st->detail, strerror(-prc));
		}
	} else if (rc < 0) {
		log_msg(LOG_LEVEL_WARNING, "remote: %s report for %s failed: %s", kind_name(k),
			uuid, *st->detail ? st->detail : strerror(-rc));
	}
	json_decref(body);
	return rc;
}

int remote_backup_report(struct remote_client *c, const char *backup_uuid,
			 const struct backup_report *r, struct remote_status *st)
{
	if (!r) {
		if (st)
			memset(st, 0, sizeof(*st));
		return -EINVAL;
	}
	return send_report(c, REMOTE_REPORT_BACKUP, backup_uuid, backup_body(r), st);
}

int remote_restore_report(struct remote_client *c, const char *backup_uuid, bool successful,
			  struct remote_status *st)
{
	return send_report(c, REMOTE_REPORT_RESTORE, backup_uuid, restore_body(successful), st);
}

/* ---- part URLs ---- */

void remote_part_urls_free(struct remote_part_urls *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->urls[i]);
	free(p->urls);
	for (size_t i = 0; i < p->n_resumable_headers; i++)
		free(p->resumable_headers[i]);
	free(p->resumable_headers);
	free(p->resumable_url);
	memset(p, 0, sizeof(*p));
}

/* {"parts":["<url>",...], "part_size":<int>} plus [Pelican] "max_concurrent_uploads". */
/* The largest chunk a node agrees to hold in memory for a resumable session. */
#define RESUMABLE_CHUNK_MAX (UINT64_C(256) << 20)
#define RESUMABLE_CHUNK_UNIT (UINT64_C(256) << 10)

/* A header value the panel may hand over: printable, no line breaks (they would inject
 * headers of their own). */
static bool header_token_ok(const char *s, bool name)
{
	if (!s || !*s || strlen(s) > 256)
		return false;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c < 0x20 || *c == 0x7f || (name && (*c == ':' || *c == ' ')))
			return false;
	return true;
}

static int parse_resumable(json_t *j, struct remote_part_urls *out)
{
	const char *url = json_string_value(json_object_get(j, "resumable_url"));
	json_t *hdrs = json_object_get(j, "resumable_headers");
	json_t *cs = json_object_get(j, "chunk_size");
	if (!url || !*url || (hdrs && !json_is_object(hdrs)) || !json_is_integer(cs) ||
	    json_integer_value(cs) <= 0 || (uint64_t)json_integer_value(cs) > RESUMABLE_CHUNK_MAX ||
	    (uint64_t)json_integer_value(cs) % RESUMABLE_CHUNK_UNIT)
		return -EBADMSG;
	size_t n = json_object_size(hdrs);
	out->resumable_headers = calloc(n ? n : 1, sizeof(char *));
	if (!out->resumable_headers || !(out->resumable_url = strdup(url)))
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach(hdrs, k, v) {
		const char *val = json_string_value(v);
		if (!header_token_ok(k, true) || !header_token_ok(val, false))
			return -EBADMSG;
		char *line;
		if (asprintf(&line, "%s: %s", k, val) < 0)
			return -ENOMEM;
		out->resumable_headers[out->n_resumable_headers++] = line;
	}
	out->chunk_size = (uint64_t)json_integer_value(cs);
	return 0;
}

static int parse_part_urls(const struct response *r, uint64_t size, struct remote_part_urls *out)
{
	if (!r->body)
		return -EBADMSG;
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	if (json_object_get(j, "resumable_url")) {
		int rr = parse_resumable(j, out);
		if (rr < 0)
			remote_part_urls_free(out);
		json_decref(j);
		return rr;
	}
	json_t *parts = json_object_get(j, "parts");
	json_t *ps = json_object_get(j, "part_size");
	json_t *mcu = json_object_get(j, "max_concurrent_uploads");
	int rc = -EBADMSG;
	if (!json_is_array(parts) || !json_is_integer(ps) || json_integer_value(ps) <= 0 ||
	    (mcu && !json_is_null(mcu) &&
	     (!json_is_integer(mcu) || json_integer_value(mcu) < 0 ||
	      json_integer_value(mcu) > UINT_MAX)))
		goto out;
	uint64_t part_size = (uint64_t)json_integer_value(ps);
	size_t n = json_array_size(parts);
	/* The panel presigns ceil(size / part_size) parts; fewer cannot carry the archive. */
	uint64_t need = size / part_size + (size % part_size ? 1 : 0);
	if (n == 0 || n < need)
		goto out;
	out->urls = calloc(n, sizeof(*out->urls));
	if (!out->urls) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *u = json_string_value(json_array_get(parts, i));
		if (!u || !*u) {
			remote_part_urls_free(out);
			goto out;
		}
		out->urls[i] = strdup(u);
		out->n = i + 1;
		if (!out->urls[i]) {
			remote_part_urls_free(out);
			rc = -ENOMEM;
			goto out;
		}
	}
	out->part_size = part_size;
	out->max_concurrent_uploads = json_is_integer(mcu) ? (unsigned)json_integer_value(mcu) : 0;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int remote_backup_part_urls(struct remote_client *c, const char *backup_uuid, uint64_t size,
			    struct remote_part_urls *ret, struct remote_status *st)
{
	struct remote_status local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (ret)
		memset(ret, 0, sizeof(*ret));
	if (!c || !ret || !uuid_ok(backup_uuid) || size == 0 || size > (uint64_t)INT64_MAX)
		return -EINVAL;
	char *path = NULL;
	if (asprintf(&path, "/backups/%s?size=%" PRIu64, backup_uuid, size) < 0)
		return -ENOMEM;
	struct response r = { .retry_after_ms = -1 };
	int rc = http_call(c, path, NULL, &r, st);
	if (rc == 0) {
		rc = parse_part_urls(&r, size, ret);
		if (rc == -EBADMSG)
			status_set_detail(st, "part URL response does not parse");
	}
	response_reset(&r);
	free(path);
	return rc;
}

/* ---- outbox flush ---- */

/* "<uuid>.<kind>.json" -> uuid, kind. */
static bool parse_spool_name(const char *name, char *uuid, size_t uuid_size,
			     enum remote_report_kind *k)
{
	size_t n = strlen(name);
	static const char ext[] = ".json";
	if (n <= sizeof(ext) - 1 || strcmp(name + n - (sizeof(ext) - 1), ext) != 0)
		return false;
	n -= sizeof(ext) - 1;
	const char *dot = memrchr(name, '.', n);
	if (!dot)
		return false;
	size_t kl = n - (size_t)(dot + 1 - name);
	if (kl == 6 && memcmp(dot + 1, "backup", 6) == 0)
		*k = REMOTE_REPORT_BACKUP;
	else if (kl == 7 && memcmp(dot + 1, "restore", 7) == 0)
		*k = REMOTE_REPORT_RESTORE;
	else
		return false;
	size_t ul = (size_t)(dot - name);
	if (ul == 0 || ul >= uuid_size)
		return false;
	memcpy(uuid, name, ul);
	uuid[ul] = 0;
	return uuid_ok(uuid);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Puts a claimed file back under its name unless a newer report took the name since:
 * link() never replaces, so the newer one wins. */
static void unclaim(const char *claim, const char *final)
{
	if (link(claim, final) < 0 && errno != EEXIST)
		log_msg(LOG_LEVEL_ERR, "remote outbox: cannot put back %s: %s", final,
			strerror(errno));
	else
		unlink(claim);
}

/* Leftovers of a crash: claims of a flush that died mid-send go back into the queue,
 * temporary files of a writer that died mid-write are removed once clearly stale. */
static void outbox_recover(const char *dir, struct dirent **ents, int n)
{
	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		if (nm[0] != '.' || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		char *path = NULL, *final = NULL;
		if (asprintf(&path, "%s/%s", dir, nm) < 0)
			continue;
		if (has_suffix(nm, ".sending")) {
			if (asprintf(&final, "%s/%.*s", dir, (int)(strlen(nm) - 9), nm + 1) >= 0)
				unclaim(path, final);
		} else if (strstr(nm, ".tmp.")) {
			struct stat sb;
			if (stat(path, &sb) == 0 && time(NULL) - sb.st_mtime > STALE_TMP_SECONDS)
				unlink(path);
		}
		free(path);
		free(final);
	}
}

static json_t *load_spool(const char *path, const char *uuid, enum remote_report_kind k)
{
	json_error_t err;
	struct stat sb;
	if (stat(path, &sb) < 0 || sb.st_size > (off_t)MAX_SPOOL_FILE_BYTES)
		return NULL;
	json_t *doc = json_load_file(path, 0, &err);
	json_t *body = json_object_get(doc, "body");
	const char *dk = json_string_value(json_object_get(doc, "kind"));
	const char *du = json_string_value(json_object_get(doc, "uuid"));
	bool ok = json_integer_value(json_object_get(doc, "amber_outbox")) == 1 && dk && du &&
		  strcmp(dk, kind_name(k)) == 0 && strcmp(du, uuid) == 0 &&
		  json_is_object(body) && json_is_boolean(json_object_get(body, "successful"));
	if (!ok) {
		json_decref(doc);
		return NULL;
	}
	json_incref(body);
	json_decref(doc);
	return body;
}

static int skip_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int only_hidden(const struct dirent *d)
{
	return d->d_name[0] == '.';
}

int remote_outbox_flush(struct remote_client *c, const char *dir, remote_outbox_cb cb,
			void *userdata, struct remote_outbox_result *res)
{
	struct remote_outbox_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (!c || !dir)
		return -EINVAL;

	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, only_hidden, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	outbox_recover(dir, ents, n);
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);

	n = scandir(dir, &ents, skip_hidden, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	bool unreachable = false;
	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		char uuid[72];
		enum remote_report_kind k;
		struct remote_status st = { 0 };
		if (!parse_spool_name(nm, uuid, sizeof(uuid), &k))
			continue; /* not ours: *.corrupt files, anything a human left */
		if (unreachable) {
			res->kept++;
			if (cb)
				cb(userdata, nm, uuid, k, -EAGAIN, &st);
			continue;
		}
		char *final = NULL, *claim = NULL, *aside = NULL;
		if (asprintf(&final, "%s/%s", dir, nm) < 0 ||
		    asprintf(&claim, "%s/.%s.sending", dir, nm) < 0 ||
		    asprintf(&aside, "%s/%s.corrupt", dir, nm) < 0)
			goto next;
		/* Send from a claimed name, so a report spooled anew meanwhile lands beside it
		 * instead of being deleted with the copy that was just delivered. */
		if (rename(final, claim) < 0)
			goto next; /* gone meanwhile (delivered by a direct report) */
		json_t *body = load_spool(claim, uuid, k);
		if (!body) {
			log_msg(LOG_LEVEL_WARNING,
				"remote outbox: %s does not hold a report; moved aside to %s.corrupt",
				final, nm);
			if (rename(claim, aside) < 0)
				unlink(claim);
			res->corrupt++;
			status_set_detail(&st, "corrupt spool file");
			if (cb)
				cb(userdata, nm, uuid, k, -EBADMSG, &st);
			goto next;
		}
		char *text = json_dumps(body, JSON_COMPACT);
		char *path = report_path(k, uuid);
		struct response r = { .retry_after_ms = -1 };
		int rc = text && path ? http_call(c, path, text, &r, &st) : -ENOMEM;
		response_reset(&r);
		free(text);
		free(path);
		json_decref(body);
		if (rc == 0) {
			unlink(claim);
			res->delivered++;
			log_msg(LOG_LEVEL_INFO, "remote outbox: %s report for %s delivered",
				kind_name(k), uuid);
		} else if (rc == -EAGAIN || rc == -ECANCELED || rc == -ENOMEM) {
			unclaim(claim, final);
			res->kept++;
			unreachable = true;
		} else {
			/* The panel refused it for good (say, 400 "already completed"): keeping
			 * it would only repeat the refusal at every flush. */
			unlink(claim);
			res->rejected++;
			log_msg(LOG_LEVEL_WARNING,
				"remote outbox: %s report for %s rejected by the panel (%s); dropped",
				kind_name(k), uuid, st.detail);
		}
		fsync_dir(dir);
		if (cb)
			cb(userdata, nm, uuid, k, rc, &st);
next:
		free(final);
		free(claim);
		free(aside);
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return 0;
}
