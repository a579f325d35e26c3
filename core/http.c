#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Paths deeper than this cannot match any route; bounding it bounds the work per request. */
#define MAX_SEGMENTS 32
#define MAX_PARAMS 8
#define MAX_EXTRA_HEADERS 4
#define MAX_QUERY 32
#define REQUEST_ID_MAX 64
#define DISCARD_SLACK (64 * 1024)

struct route_seg {
	char *text;  /* literal text, or the parameter name without ':' */
	bool is_param;
};

struct route {
	char *method;
	char *pattern;
	struct route_seg *segs;
	size_t n_segs;
	http_handler_fn handler;
	void *userdata;
};

struct http_server {
	struct MHD_Daemon *daemon;
	struct route *routes;
	size_t n_routes;
	size_t max_body;
	unsigned port;
	bool quiesced;
	http_access_log_fn access_log;
	void *access_log_data;
	http_error_log_fn error_log;
	void *error_log_data;
};

struct kv {
	const char *name;
	char *value;
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct timespec start;
	char *raw_uri;     /* as received, query included: never logged */
	char *path;        /* raw_uri up to '?' */
	char *log_path;    /* path with unprintable bytes masked */
	const char *method;
	char client[INET6_ADDRSTRLEN];
	char id[REQUEST_ID_MAX + 1];
	bool started;      /* the first access-handler call has run */
	const struct route *route;
	struct kv params[MAX_PARAMS];
	size_t n_params;
	struct kv query[MAX_QUERY];
	size_t n_query;
	char *query_buf;   /* decoded query names/values point into here */
	char *body;
	size_t body_len, body_cap;
	size_t discarded;  /* bytes of an over-limit chunked body thrown away */
	bool too_large;
	bool responded;
	bool is_head;
	unsigned status;
	uint64_t bytes;
	struct {
		char name[32];
		char value[128];
	} extra[MAX_EXTRA_HEADERS]; /* set by the handler for its response */
	size_t n_extra;
};

static const char msg_not_found[] = "The requested resource does not exist on this instance.";
static const char msg_internal[] =
	"An unexpected error was encountered while processing this request";

/* ---- small parsing helpers ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..len) into out (at least len+1 bytes). '+' becomes a space only in query
 * strings. Refuses broken escapes and %00, which would silently truncate C strings. */
static int percent_decode(const char *s, size_t len, char *out, bool plus_is_space)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return 0;
}

static bool request_id_sane(const char *s)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= REQUEST_ID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					      (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return n > 0;
}

/* A UUID v4, the form Wings puts in X-Request-Id, so panel messages look the same. */
static void request_id_generate(char out[REQUEST_ID_MAX + 1])
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* No entropy source: an id only has to be unique enough to correlate
			 * logs, so fall back to time and address bits rather than fail. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
				     (uint64_t)(uintptr_t)out;
			for (size_t i = got; i < sizeof(b); i++) {
				x = x * 6364136223846793005ULL + 1442695040888963407ULL;
				b[i] = (unsigned char)(x >> 56);
			}
			break;
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, REQUEST_ID_MAX + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

/* ---- routes ---- */

static void route_clear(struct route *r)
{
	for (size_t i = 0; i < r->n_segs; i++)
		free(r->segs[i].text);
	free(r->segs);
	free(r->method);
	free(r->pattern);
}

/* Splits "/a/:b/c" into segments; pattern "/" has none. */
static int route_parse(const struct http_route *in, struct route *r)
{
	memset(r, 0, sizeof(*r));
	if (!in->method || !*in->method || !in->pattern || in->pattern[0] != '/' || !in->handler)
		return -EINVAL;
	r->method = strdup(in->method);
	r->pattern = strdup(in->pattern);
	r->segs = calloc(MAX_SEGMENTS, sizeof(*r->segs));
	if (!r->method || !r->pattern || !r->segs)
		return -ENOMEM;
	r->handler = in->handler;
	r->userdata = in->userdata;
	const char *p = in->pattern + 1;
	size_t n_params = 0;
	if (*p == '\0')
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (r->n_segs == MAX_SEGMENTS)
			return -EINVAL;
		struct route_seg *seg = &r->segs[r->n_segs];
		seg->is_param = len > 0 && p[0] == ':';
		if (seg->is_param && (len == 1 || ++n_params > MAX_PARAMS))
			return -EINVAL;
		seg->text = strndup(seg->is_param ? p + 1 : p, seg->is_param ? len - 1 : len);
		if (!seg->text)
			return -ENOMEM;
		r->n_segs++;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

/* Raw path → decoded segments, each a string inside buf (sized strlen(path)+1). */
static int path_split(const char *path, char *buf, char *segs[MAX_SEGMENTS], size_t *n_segs)
{
	*n_segs = 0;
	if (path[0] != '/')
		return -EINVAL;
	const char *p = path + 1;
	if (*p == '\0')
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (*n_segs == MAX_SEGMENTS)
			return -E2BIG;
		int rc = percent_decode(p, len, buf, false);
		if (rc < 0)
			return rc;
		segs[(*n_segs)++] = buf;
		buf += strlen(buf) + 1;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

static bool route_matches_path(const struct route *r, char *const segs[], size_t n_segs)
{
	if (r->n_segs != n_segs)
		return false;
	for (size_t i = 0; i < n_segs; i++) {
		if (r->segs[i].is_param ? segs[i][0] == '\0' : strcmp(r->segs[i].text, segs[i]) != 0)
			return false;
	}
	return true;
}

static bool method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Adds m to a ", "-separated Allow list unless it is there already. */
static void allow_add(char *allow, size_t cap, const char *m)
{
	size_t ml = strlen(m);
	for (const char *p = allow; *p;) {
		const char *e = strstr(p, ", ");
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == ml && memcmp(p, m, ml) == 0)
			return;
		if (!e)
			break;
		p = e + 2;
	}
	size_t used = strlen(allow);
	if (used + ml + 3 > cap)
		return;
	if (used)
		strcat(allow, ", ");
	strcat(allow, m);
}

/* ---- query string ---- */

static int query_parse(struct http_request *req)
{
	const char *q = strchr(req->raw_uri, '?');
	if (!q || !q[1])
		return 0;
	q++;
	size_t qlen = strlen(q);
	/* Every name and value decodes to at most its own length; +1 per '\0'. */
	req->query_buf = malloc(qlen * 2 + 2);
	if (!req->query_buf)
		return -ENOMEM;
	char *out = req->query_buf;
	while (*q && req->n_query < MAX_QUERY) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		if (len > 0) {
			const char *eq = memchr(q, '=', len);
			size_t nlen = eq ? (size_t)(eq - q) : len;
			char *name = out;
			if (percent_decode(q, nlen, name, true) < 0)
				return -EINVAL;
			out += strlen(name) + 1;
			char *value = out;
			if (eq) {
				if (percent_decode(eq + 1, len - nlen - 1, value, true) < 0)
					return -EINVAL;
			} else {
				value[0] = '\0';
			}
			out += strlen(value) + 1;
			req->query[req->n_query].name = name;
			req->query[req->n_query].value = value;
			req->n_query++;
		}
		if (!amp)
			break;
		q = amp + 1;
	}
	return 0;
}

/* ---- responses ---- */

/* Queues resp (consumed) with the headers every response carries. */
static int respond(struct http_request *req, unsigned status, struct MHD_Response *resp,
		   uint64_t bytes)
{
	if (!resp)
		return -ENOMEM;
	if (req->responded) {
		MHD_destroy_response(resp);
		return -EALREADY;
	}
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	for (size_t i = 0; i < req->n_extra; i++)
		MHD_add_response_header(resp, req->extra[i].name, req->extra[i].value);
	enum MHD_Result ok = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	if (ok != MHD_YES)
		return -EIO;
	req->responded = true;
	req->status = status;
	req->bytes = req->is_head ? 0 : bytes;
	return 0;
}

int http_response_header(struct http_request *req, const char *name, const char *value)
{
	if (req->n_extra == MAX_EXTRA_HEADERS || strlen(name) >= sizeof(req->extra[0].name) ||
	    strlen(value) >= sizeof(req->extra[0].value) || strpbrk(value, "\r\n"))
		return -EINVAL;
	snprintf(req->extra[req->n_extra].name, sizeof(req->extra[0].name), "%s", name);
	snprintf(req->extra[req->n_extra].value, sizeof(req->extra[0].value), "%s", value);
	req->n_extra++;
	return 0;
}

int http_respond_json(struct http_request *req, unsigned status, json_t *body)
{
	if (req->responded) {
		json_decref(body);
		return -EALREADY;
	}
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return -ENOMEM;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return respond(req, status, resp, len);
}

int http_respond_error(struct http_request *req, unsigned status, const char *message)
{
	if (!message)
		message = msg_internal;
	json_t *body = status >= 500 ? json_pack("{s:s,s:s}", "error", message, "request_id", req->id)
				     : json_pack("{s:s}", "error", message);
	if (!body)
		return -ENOMEM;
	return http_respond_json(req, status, body);
}

int http_respond_panel_error(struct http_request *req, unsigned status, const char *code,
			     const char *detail)
{
	char st[8];
	snprintf(st, sizeof(st), "%u", status);
	json_t *e = json_pack("{s:s, s:s, s:s}", "code", code, "status", st, "detail", detail);
	if (e && status >= 500)
		json_object_set_new(e, "meta", json_pack("{s:s}", "request_id", req->id));
	json_t *body = e ? json_pack("{s:[o]}", "errors", e) : NULL;
	if (!body)
		return -ENOMEM;
	return http_respond_json(req, status, body);
}

int http_json_bool(const json_t *v)
{
	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
		return (int)json_integer_value(v);
	if (json_is_string(v) && (strcmp(json_string_value(v), "0") == 0 ||
				  strcmp(json_string_value(v), "1") == 0))
		return json_string_value(v)[0] == '1';
	return -1;
}

int http_respond_empty(struct http_request *req, unsigned status)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	return respond(req, status, resp, 0);
}

/* Reads a decimal without sign; false on no digits or overflow. */
static bool parse_u64(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*ret = v;
	return true;
}

enum range_result { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

/* One "bytes=first-last", "bytes=first-" or "bytes=-suffix" (RFC 9110 §14.1.2). Anything
 * else, including several ranges, is RANGE_NONE: the server may ignore Range and send the
 * whole representation, which is simpler and safer than multipart/byteranges. */
static enum range_result range_parse(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "bytes", 5) != 0)
		return RANGE_NONE;
	h += 5;
	while (*h == ' ' || *h == '\t')
		h++;
	if (*h++ != '=')
		return RANGE_NONE;
	while (*h == ' ' || *h == '\t')
		h++;
	uint64_t first = 0, last = 0;
	bool has_first = parse_u64(&h, &first);
	if (*h++ != '-')
		return RANGE_NONE;
	bool has_last = parse_u64(&h, &last);
	while (*h == ' ' || *h == '\t')
		h++;
	if (*h != '\0' || (!has_first && !has_last))
		return RANGE_NONE;
	if (!has_first) {
		/* suffix: the last `last` bytes; a zero suffix selects nothing */
		if (last == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		*len = last < size ? last : size;
		*off = size - *len;
		return RANGE_OK;
	}
	if (has_last && last < first)
		return RANGE_NONE;
	if (first >= size)
		return RANGE_UNSATISFIABLE;
	if (!has_last || last >= size)
		last = size - 1;
	*off = first;
	*len = last - first + 1;
	return RANGE_OK;
}

/* filename="..." with only printable ASCII kept; '"' and '\' escaped as quoted-pairs so
 * the value cannot end the header parameter early or inject another one. */
static char *disposition_value(const char *name)
{
	size_t n = strlen(name);
	char *out = malloc(n * 2 + sizeof("attachment; filename=\"\""));
	if (!out)
		return NULL;
	char *o = out + sprintf(out, "attachment; filename=\"");
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = (*p < 0x20 || *p >= 0x7f) ? '_' : (char)*p;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

int http_respond_file(struct http_request *req, int fd, off_t size, const char *content_type,
		      const char *download_name)
{
	if (req->responded || size < 0) {
		close(fd);
		return req->responded ? -EALREADY : -EINVAL;
	}
	uint64_t total = (uint64_t)size, off = 0, len = total;
	unsigned status = MHD_HTTP_OK;
	char crange[96] = "";
	const char *range = http_request_header(req, MHD_HTTP_HEADER_RANGE);
	/* Range only means something on GET; with If-Range we have no validator to compare,
	 * so the full representation is the correct answer. */
	if (range && strcmp(req->method, "GET") == 0 &&
	    !http_request_header(req, MHD_HTTP_HEADER_IF_RANGE)) {
		switch (range_parse(range, total, &off, &len)) {
		case RANGE_OK:
			status = MHD_HTTP_PARTIAL_CONTENT;
			snprintf(crange, sizeof(crange), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
				 off + len - 1, total);
			break;
		case RANGE_UNSATISFIABLE: {
			close(fd);
			snprintf(crange, sizeof(crange), "bytes */%" PRIu64, total);
			json_t *body = json_pack("{s:s}", "error", "The requested range is not satisfiable.");
			char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
			json_decref(body);
			if (!text)
				return -ENOMEM;
			struct MHD_Response *resp = MHD_create_response_from_buffer(
				strlen(text), text, MHD_RESPMEM_MUST_FREE);
			if (!resp) {
				free(text);
				return -ENOMEM;
			}
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
			return respond(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp, strlen(text));
		}
		case RANGE_NONE:
			break;
		}
	}
	struct MHD_Response *resp;
	if (len == 0) {
		close(fd);
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		/* MHD owns fd from here, also when creation fails */
		resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
		if (!resp)
			close(fd);
	}
	if (!resp)
		return -ENOMEM;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type ? content_type : "application/octet-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (crange[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
	if (download_name) {
		char *cd = disposition_value(download_name);
		if (!cd) {
			MHD_destroy_response(resp);
			return -ENOMEM;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
		free(cd);
	}
	return respond(req, status, resp, len);
}

/* "application/json" or any "+json" media type, parameters allowed. */
static bool content_type_is_json(const char *ct)
{
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, "; \t");
	if (n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0)
		return true;
	return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

int http_require_json(struct http_request *req, json_t **ret)
{
	*ret = NULL;
	const char *ct = http_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ct || !content_type_is_json(ct)) {
		/* 400 as for every other unusable body: a panel or script reads one status
		 * for "fix your request". */
		http_respond_error(req, MHD_HTTP_BAD_REQUEST,
				   "The request body must be sent as application/json.");
		return -EPROTO;
	}
	if (req->body_len == 0) {
		/* Wings' wording for an empty body */
		http_respond_error(req, MHD_HTTP_BAD_REQUEST,
				   "The data passed in the request was not in a parsable format. "
				   "Please try again.");
		return -ENODATA;
	}
	json_error_t err;
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		char msg[320];
		snprintf(msg, sizeof(msg),
			 "The data passed in the request was not in a parsable format: %s "
			 "(line %d, column %d).",
			 err.text, err.line, err.column);
		http_respond_error(req, MHD_HTTP_BAD_REQUEST, msg);
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}

/* ---- accessors ---- */

const char *http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *http_request_param(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_params; i++)
		if (strcmp(req->params[i].name, name) == 0)
			return req->params[i].value;
	return NULL;
}

const char *http_request_query(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_query; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return req->query[i].value;
	return NULL;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	/* MHD compares header names without regard to case */
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const void *http_request_body(const struct http_request *req, size_t *ret_len)
{
	if (ret_len)
		*ret_len = req->body_len;
	return req->body ? req->body : "";
}

const char *http_request_client(const struct http_request *req)
{
	return req->client;
}

const char *http_request_id(const struct http_request *req)
{
	return req->id;
}

/* ---- MHD callbacks ---- */

static void request_free(struct http_request *req)
{
	for (size_t i = 0; i < req->n_params; i++)
		free(req->params[i].value);
	free(req->query_buf);
	free(req->body);
	free(req->raw_uri);
	free(req->path);
	free(req->log_path);
	free(req);
}

/* Called by MHD with the raw request target before anything else: the one place the
 * undecoded path is available, which is what lets %2F stay inside a segment. What it
 * returns becomes the connection's per-request context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->srv = cls;
	req->conn = conn;
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	req->raw_uri = strdup(uri ? uri : "");
	if (req->raw_uri) {
		req->path = strndup(req->raw_uri, strcspn(req->raw_uri, "?"));
		req->log_path = req->path ? strdup(req->path) : NULL;
	}
	if (!req->log_path) {
		request_free(req);
		return NULL;
	}
	for (char *p = req->log_path; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	if (!req)
		return;
	*con_cls = NULL;
	if (srv->access_log && req->started) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		struct http_access_entry e = {
			.method = req->method ? req->method : "-",
			.path = req->log_path,
			.client = req->client,
			.request_id = req->id,
			.status = req->status,
			.bytes = req->bytes,
			.duration_ms = (double)(now.tv_sec - req->start.tv_sec) * 1e3 +
				       (double)(now.tv_nsec - req->start.tv_nsec) / 1e6,
			.completed = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK,
		};
		srv->access_log(&e, srv->access_log_data);
	}
	request_free(req);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	struct http_server *srv = cls;
	if (!srv->error_log)
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	srv->error_log(msg, srv->error_log_data);
}

/* First call for a request: identity, routing, query, size check. May respond at once
 * (404/405/400/413), in which case MHD never reads the body. */
static void request_start(struct http_server *srv, struct http_request *req, const char *method)
{
	req->started = true;
	req->method = method;
	req->is_head = strcmp(method, "HEAD") == 0;

	const char *rid = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
	if (request_id_sane(rid))
		snprintf(req->id, sizeof(req->id), "%s", rid);
	else
		request_id_generate(req->id);

	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr ||
	    getnameinfo(ci->client_addr,
			ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in),
			req->client, sizeof(req->client), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(req->client, sizeof(req->client), "-");

	char *buf = malloc(strlen(req->path) + 1 + MAX_SEGMENTS);
	char *segs[MAX_SEGMENTS];
	size_t n_segs;
	if (!buf) {
		http_respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, msg_internal);
		return;
	}
	int rc = path_split(req->path, buf, segs, &n_segs);
	if (rc == -E2BIG) {
		free(buf);
		http_respond_error(req, MHD_HTTP_NOT_FOUND, msg_not_found);
		return;
	}
	if (rc < 0) {
		free(buf);
		http_respond_error(req, MHD_HTTP_BAD_REQUEST, "The request path is not valid.");
		return;
	}
	char allow[128] = "";
	for (size_t i = 0; i < srv->n_routes; i++) {
		const struct route *r = &srv->routes[i];
		if (!route_matches_path(r, segs, n_segs))
			continue;
		if (method_matches(r->method, method)) {
			req->route = r;
			break;
		}
		allow_add(allow, sizeof(allow), r->method);
		if (strcmp(r->method, "GET") == 0)
			allow_add(allow, sizeof(allow), "HEAD");
	}
	if (req->route) {
		for (size_t i = 0; i < n_segs; i++) {
			if (!req->route->segs[i].is_param)
				continue;
			char *v = strdup(segs[i]);
			if (!v)
				break;
			req->params[req->n_params].name = req->route->segs[i].text;
			req->params[req->n_params++].value = v;
		}
	}
	free(buf);
	if (!req->route) {
		if (!allow[0]) {
			http_respond_error(req, MHD_HTTP_NOT_FOUND, msg_not_found);
			return;
		}
		allow_add(allow, sizeof(allow), "OPTIONS");
		struct MHD_Response *resp;
		if (strcmp(method, "OPTIONS") == 0) {
			resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
			if (resp)
				MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
			respond(req, MHD_HTTP_NO_CONTENT, resp, 0);
			return;
		}
		json_t *body = json_pack("{s:s}", "error", "The request method is not allowed here.");
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		resp = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
			    : NULL;
		if (!resp) {
			free(text);
			return;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
		respond(req, MHD_HTTP_METHOD_NOT_ALLOWED, resp, strlen(text));
		return;
	}
	if (query_parse(req) < 0) {
		http_respond_error(req, MHD_HTTP_BAD_REQUEST, "The query string is not valid.");
		return;
	}
	/* A declared length over the limit is refused before a byte of it is read. */
	const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t declared;
	const char *p = cl;
	if (cl && parse_u64(&p, &declared) && declared > srv->max_body) {
		char msg[128];
		snprintf(msg, sizeof(msg), "The request body is larger than the %zu bytes allowed.",
			 srv->max_body);
		http_respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	}
}

/* Appends a body chunk within the limit; a chunked body that goes over is discarded
 * (not kept) and answered with 413 at its end. Returns false to drop the connection
 * when such a body keeps coming far beyond the limit. */
static bool body_append(struct http_server *srv, struct http_request *req, const char *data,
			size_t n)
{
	if (req->too_large || req->body_len + n > srv->max_body) {
		/* Reading a little past the limit lets the client see the 413; past that
		 * slack, the stream could be endless and closing is the only defence. */
		req->too_large = true;
		req->discarded += n;
		return req->discarded <= srv->max_body + DISCARD_SLACK;
	}
	if (req->body_len + n + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 4096;
		while (cap < req->body_len + n + 1)
			cap *= 2;
		if (cap > srv->max_body + 1)
			cap = srv->max_body + 1;
		char *b = realloc(req->body, cap);
		if (!b)
			return false;
		req->body = b;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	if (!req)
		return MHD_NO; /* on_uri ran out of memory: drop the connection */
	if (!req->started) {
		request_start(srv, req, method);
		return MHD_YES;
	}
	if (req->responded) {
		/* answered early; MHD should not hand us a body, but never keep one */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		bool ok = body_append(srv, req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ok ? MHD_YES : MHD_NO;
	}
	if (req->too_large) {
		char msg[128];
		snprintf(msg, sizeof(msg), "The request body is larger than the %zu bytes allowed.",
			 srv->max_body);
		http_respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, msg);
		return MHD_YES;
	}
	if (!req->route)
		return MHD_NO; /* an early answer could not even be queued (out of memory) */
	int rc = req->route->handler(req, req->route->userdata);
	if (!req->responded) {
		if (srv->error_log) {
			char msg[256];
			snprintf(msg, sizeof(msg), "%s %s: handler returned (%d) without a response",
				 req->method, req->route->pattern, rc);
			srv->error_log(msg, srv->error_log_data);
		}
		if (http_respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, msg_internal) < 0)
			return MHD_NO;
	}
	return MHD_YES;
}

/* ---- server ---- */

/* "host:port" / "[v6]:port" → a socket address. */
static int listen_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *ss_len)
{
	char host[256];
	const char *port;
	if (!listen)
		return -EINVAL;
	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');
		if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, listen + 1, (size_t)(end - listen - 1));
		host[end - listen - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
		    memchr(listen, ':', (size_t)(colon - listen)))
			return -EINVAL;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
		port = colon + 1;
	}
	const char *pp = port;
	uint64_t pn;
	if (!parse_u64(&pp, &pn) || *pp || pn > 65535 || host[0] == '\0')
		return -EINVAL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	hints.ai_family = listen[0] == '[' ? AF_INET6 : AF_UNSPEC;
	struct addrinfo *ai = NULL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*ss_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int http_server_new(const struct http_config *cfg, struct http_server **ret)
{
	*ret = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len;
	int rc = listen_parse(cfg->listen, &ss, &ss_len);
	if (rc < 0)
		return rc;
	struct http_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	srv->access_log = cfg->access_log;
	srv->access_log_data = cfg->access_log_data;
	srv->error_log = cfg->error_log;
	srv->error_log_data = cfg->error_log_data;
	srv->routes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(*srv->routes));
	if (!srv->routes) {
		free(srv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		srv->n_routes++;
		rc = route_parse(&cfg->routes[i], &srv->routes[i]);
		if (rc < 0) {
			http_server_free(srv);
			return rc;
		}
	}

	unsigned threads = cfg->threads ? cfg->threads : HTTP_DEFAULT_THREADS;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL
									  : MHD_USE_POLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	uint16_t port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
						 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	/* MHD reports bind failures only through its logger; errno after a failed start is
	 * the best hint we get for the caller. */
	errno = 0;
	srv->daemon = MHD_start_daemon(
		flags, port, NULL, NULL, on_request, srv,
		/* first, so that MHD's messages about the options below reach it too */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT,
		cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : HTTP_DEFAULT_TIMEOUT_S,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_END);
	if (!srv->daemon) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		http_server_free(srv);
		return rc;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : port;
	*ret = srv;
	return 0;
}

unsigned http_server_port(const struct http_server *srv)
{
	return srv->port;
}

int http_server_stop_accepting(struct http_server *srv)
{
	if (srv->quiesced)
		return 0;
	MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
	if (fd == MHD_INVALID_SOCKET)
		return -EINVAL;
	/* the listening socket is ours once quiesced; closing it refuses new clients */
	close(fd);
	srv->quiesced = true;
	return 0;
}

unsigned http_server_connections(const struct http_server *srv)
{
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di ? di->num_connections : 0;
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	for (size_t i = 0; i < srv->n_routes; i++)
		route_clear(&srv->routes[i]);
	free(srv->routes);
	free(srv);
}
