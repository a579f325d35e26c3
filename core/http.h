/* The HTTP server layer under amberd's routes: libmicrohttpd with a thread pool, a route
 * table with named path parameters, bounded request bodies, JSON/error/file responses in
 * the Wings node-API shapes, a request id on every response, and one access-log line per
 * request handed to a callback (never printed here).
 *
 * Threading: handlers run on MHD's pool threads, several at once; whatever userdata a
 * route carries must be safe for that. A handler answers with exactly one http_respond_*
 * call before it returns; one that returns without answering gets a 500.
 *
 * Requests MHD rejects itself before routing (headers over its memory limit → 431, a
 * malformed request line → 400) get MHD's own reply, without X-Request-Id or an access
 * log line; everything that reaches routing gets both. */
#ifndef AMBER_HTTP_H
#define AMBER_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_server;
struct http_request;

/* Returns 0 or a negative errno; the value is only logged through error_log, what the
 * client sees is whatever the handler responded (or 500 when it did not). */
typedef int (*http_handler_fn)(struct http_request *req, void *userdata);

struct http_route {
	const char *method;  /* "GET", "POST", ...; a GET route also answers HEAD */
	/* "/api/servers/:server/backup/:backup": literal segments match exactly, ":name"
	 * captures one non-empty segment. No wildcards, no trailing-slash folding. */
	const char *pattern;
	http_handler_fn handler;
	void *userdata;
};

/* One finished request, for the access log. path is the raw path without the query
 * string (queries carry secrets such as the download token), with control and non-ASCII
 * bytes replaced by '?'. status is 0 when nothing was queued (connection died first). */
struct http_access_entry {
	const char *method;
	const char *path;
	const char *client;
	const char *request_id;
	unsigned status;
	uint64_t bytes;       /* body bytes of the response (0 for HEAD) */
	double duration_ms;
	int completed;        /* 1 if MHD finished sending, 0 if aborted/timed out */
};

typedef void (*http_access_log_fn)(const struct http_access_entry *e, void *userdata);
typedef void (*http_error_log_fn)(const char *message, void *userdata);

#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)
#define HTTP_DEFAULT_THREADS 4
#define HTTP_DEFAULT_TIMEOUT_S 30
#define HTTP_DEFAULT_MAX_CONNECTIONS 256

struct http_config {
	/* "host:port" or "[v6addr]:port"; the host is required ("0.0.0.0", "[::]" for
	 * all addresses; "[::]" is IPv6 only) and may be a name; port 0 picks a free port. */
	const char *listen;
	const struct http_route *routes; /* copied; patterns need not outlive the call */
	size_t n_routes;
	size_t max_body;                  /* 0: HTTP_DEFAULT_MAX_BODY */
	unsigned threads;                 /* 0: HTTP_DEFAULT_THREADS */
	unsigned timeout_s;               /* idle connection timeout; 0: default */
	unsigned max_connections;         /* 0: default */
	unsigned max_connections_per_ip;  /* 0: unlimited */
	http_access_log_fn access_log;    /* may be NULL */
	void *access_log_data;
	http_error_log_fn error_log;      /* MHD's own error messages; NULL drops them */
	void *error_log_data;
};

/* Parses cfg, binds and starts serving. -EINVAL for a bad listen string or route
 * pattern, -EADDRINUSE/-EACCES/... when the socket cannot be set up. */
int http_server_new(const struct http_config *cfg, struct http_server **ret);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const struct http_server *srv);
/* For a drain on SIGTERM: closes the listening socket so new connections are refused,
 * while connections already open finish. Idempotent; call from one thread. */
int http_server_stop_accepting(struct http_server *srv);
/* Connections currently open (0 once a drain is complete). */
unsigned http_server_connections(const struct http_server *srv);
/* Stops the threads, closes every connection, frees. NULL is fine. */
void http_server_free(struct http_server *srv);

/* Request accessors. Strings live as long as the request (until the handler's response
 * is sent); NULL when absent. */
const char *http_request_method(const struct http_request *req);
/* Raw (still percent-encoded) path, without the query string. */
const char *http_request_path(const struct http_request *req);
/* A ":name" capture, percent-decoded. %2F decodes to '/' inside the value (segments are
 * split before decoding, so it never adds a segment); %00 or a broken escape in the path
 * gets a 400 before any handler runs. */
const char *http_request_param(const struct http_request *req, const char *name);
/* First query argument with exactly this name, decoded ('+' is a space); "" for "?a".
 * The first 32 arguments are kept; %00 or a broken escape in the query gets a 400. */
const char *http_request_query(const struct http_request *req, const char *name);
/* Header by case-insensitive name. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The whole body (NUL-terminated for convenience, len excludes it); never NULL. */
const void *http_request_body(const struct http_request *req, size_t *ret_len);
/* Numeric client address ("127.0.0.1", "::1"). */
const char *http_request_client(const struct http_request *req);
/* The incoming X-Request-Id if it matches [A-Za-z0-9-]{1,64}, else a fresh UUID v4. */
const char *http_request_id(const struct http_request *req);

/* Responses. Each returns 0, or a negative errno (-EALREADY when the request already has
 * a response, -ENOMEM); the resources handed over (json ref, fd) are released either way.
 * Every response carries X-Request-Id. */
/* Adds a header to the response the handler is about to send (at most 4; name < 32 and
 * value < 128 bytes, no line breaks). 0 or -EINVAL. */
int http_response_header(struct http_request *req, const char *name, const char *value);
int http_respond_json(struct http_request *req, unsigned status, json_t *body);
/* {"error":"message"}; 5xx bodies also carry "request_id", as Wings' captured errors. */
int http_respond_error(struct http_request *req, unsigned status, const char *message);
/* The panel's error form, {"errors":[{"code","status","detail"}]} (client and remote
 * APIs); 5xx errors also carry "meta":{"request_id"}. */
int http_respond_panel_error(struct http_request *req, unsigned status, const char *code,
			     const char *detail);
int http_respond_empty(struct http_request *req, unsigned status);
/* Streams fd (ownership passes here; closed when sent or on error) of size bytes with
 * Content-Length, Accept-Ranges: bytes and, when download_name is set, an attachment
 * Content-Disposition. A single satisfiable "Range: bytes=" on GET gives 206 with
 * Content-Range; an unsatisfiable one 416 with a Content-Range of "*" over the size;
 * malformed, multi-range or If-Range requests get the full 200 (RFC 9110 §14.2). */
int http_respond_file(struct http_request *req, int fd, off_t size, const char *content_type,
		      const char *download_name);

/* For JSON endpoints: requires a JSON Content-Type (415 otherwise: refusing form and
 * text bodies keeps cross-site "simple" requests out) and a body that parses (400 with
 * jansson's message and position otherwise). On success *ret holds a new reference;
 * on failure the error response has been sent and a negative errno comes back. */
int http_require_json(struct http_request *req, json_t **ret);

/* A request field under the panel's (Laravel's) `boolean` rule: true, false, 1, 0, "1"
 * and "0" are 1 or 0; anything else is -1. */
int http_json_bool(const json_t *v);

#endif
