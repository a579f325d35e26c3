/* The HTTP layer driven by a real client: every case starts a server on 127.0.0.1 port 0
 * with a few test routes and talks to it with the curl program, reading status, headers
 * and body from what curl printed (-D - -o -). The access log goes to a list kept in the
 * fixture and is checked after http_server_free, when MHD has finished every request. */
#include "http.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE 100
#define MAX_LOG 256

struct log_line {
	char method[16];
	char path[256];
	char id[80];
	unsigned status;
	unsigned long long bytes;
};

struct fixture {
	struct http_server *srv;
	unsigned port;
	char *dir;
	char *file;  /* FILE_SIZE bytes: "0123456789" repeated */
	pthread_mutex_t lock;
	struct log_line log[MAX_LOG];
	size_t n_log;
	int twice_rc;
};

/* ---- routes ---- */

static int h_echo(struct http_request *req, void *ud)
{
	const char *q = http_request_query(req, "x");
	const char *h = http_request_header(req, "X-Test");
	json_t *body = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s,s:s,s:s,s:s}", "a",
				 http_request_param(req, "a"), "b", http_request_param(req, "b"), "x",
				 q, "h", h, "method", http_request_method(req), "path",
				 http_request_path(req), "client", http_request_client(req), "id",
				 http_request_id(req));
	json_object_set_new(body, "has_y", json_boolean(http_request_query(req, "y") != NULL));
	return http_respond_json(req, 200, body);
}

static int h_json(struct http_request *req, void *ud)
{
	json_t *j;
	int rc = http_require_json(req, &j);
	if (rc < 0)
		return rc;
	return http_respond_json(req, 200, json_pack("{s:o}", "got", j));
}

static int h_len(struct http_request *req, void *ud)
{
	size_t len;
	http_request_body(req, &len);
	return http_respond_json(req, 200, json_pack("{s:I}", "len", (json_int_t)len));
}

static int h_forget(struct http_request *req, void *ud)
{
	return -EIO;
}

static int h_delete(struct http_request *req, void *ud)
{
	return http_respond_empty(req, 204);
}

static int h_slow(struct http_request *req, void *ud)
{
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	return http_respond_error(req, 200, "slow");
}

static int h_file(struct http_request *req, void *ud)
{
	struct fixture *fx = ud;
	int fd = open(fx->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return http_respond_file(req, fd, FILE_SIZE, "application/x-gzip", "we\"ird\\na\nme.tar.gz");
}

/* Answers twice; what the second call returned is kept for the test to check (an
 * assertion here would run on an MHD thread). */
static int h_twice(struct http_request *req, void *ud)
{
	struct fixture *fx = ud;
	int rc = http_respond_empty(req, 204);
	int again = http_respond_error(req, 500, "again");
	pthread_mutex_lock(&fx->lock);
	fx->twice_rc = again;
	pthread_mutex_unlock(&fx->lock);
	return rc;
}

static void on_access(const struct http_access_entry *e, void *ud)
{
	struct fixture *fx = ud;
	pthread_mutex_lock(&fx->lock);
	if (fx->n_log < MAX_LOG) {
		struct log_line *l = &fx->log[fx->n_log++];
		snprintf(l->method, sizeof(l->method), "%s", e->method);
		snprintf(l->path, sizeof(l->path), "%s", e->path);
		snprintf(l->id, sizeof(l->id), "%s", e->request_id);
		l->status = e->status;
		l->bytes = (unsigned long long)e->bytes;
	}
	pthread_mutex_unlock(&fx->lock);
}

static int start_on(struct fixture *fx, const char *listen, size_t max_body)
{
	const struct http_route routes[] = {
		{ "GET", "/echo/:a/:b", h_echo, fx },
		{ "DELETE", "/echo/:a/:b", h_delete, fx },
		{ "POST", "/json", h_json, fx },
		{ "POST", "/len", h_len, fx },
		{ "PUT", "/len", h_len, fx },
		{ "GET", "/forget", h_forget, fx },
		{ "GET", "/slow", h_slow, fx },
		{ "GET", "/file", h_file, fx },
		{ "GET", "/twice", h_twice, fx },
		{ "GET", "/", h_delete, fx },
	};
	struct http_config cfg = {
		.listen = listen,
		.routes = routes,
		.n_routes = sizeof(routes) / sizeof(routes[0]),
		.max_body = max_body,
		.threads = 4,
		.timeout_s = 10,
		.access_log = on_access,
		.access_log_data = fx,
	};
	int rc = http_server_new(&cfg, &fx->srv);
	if (rc == 0)
		fx->port = http_server_port(fx->srv);
	return rc;
}

static struct fixture *fixture_new(size_t max_body)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	ck_assert_ptr_nonnull(fx);
	pthread_mutex_init(&fx->lock, NULL);
	fx->dir = tu_mkdtemp("http");
	size_t n = strlen(fx->dir) + 16;
	fx->file = malloc(n);
	snprintf(fx->file, n, "%s/data", fx->dir);
	char data[FILE_SIZE];
	for (size_t i = 0; i < FILE_SIZE; i++)
		data[i] = (char)('0' + i % 10);
	tu_write_file(fx->file, data, FILE_SIZE, 0600);
	ck_assert_int_eq(start_on(fx, "127.0.0.1:0", max_body), 0);
	ck_assert_uint_gt(fx->port, 0);
	return fx;
}

/* Stops the server (if still running) so the access log is complete. */
static void fixture_stop(struct fixture *fx)
{
	http_server_free(fx->srv);
	fx->srv = NULL;
}

static void fixture_free(struct fixture *fx)
{
	fixture_stop(fx);
	tu_rmrf(fx->dir);
	free(fx->dir);
	free(fx->file);
	pthread_mutex_destroy(&fx->lock);
	free(fx);
}

/* ---- driving curl ---- */

struct reply {
	unsigned status;
	char *raw;        /* headers then body, as curl wrote them */
	const char *body; /* after the blank line ending the last header block */
};

/* curl with -D - -o -: the header block(s) then the body. args is the rest of the
 * command line (printf-style), with the URL where the caller wants it. */
static struct reply curl_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct reply curl_run(const char *fmt, ...)
{
	char args[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	struct reply r = { 0 };
	int st;
	r.raw = tu_sh_out(&st, "curl -sS --max-time 20 -D - -o - %s", args);
	ck_assert_msg(r.raw && st == 0, "curl %s failed (%d)", args, st);
	/* the last "HTTP/" block wins (a 100 Continue may precede it) */
	const char *p = r.raw, *last = r.raw;
	while ((p = strstr(p, "HTTP/")) && (p == r.raw || p[-1] == '\n')) {
		last = p;
		const char *end = strstr(p, "\r\n\r\n");
		if (!end)
			break;
		p = end + 4;
		r.body = p;
	}
	ck_assert_int_eq(sscanf(last, "HTTP/%*s %u", &r.status), 1);
	if (!r.body)
		r.body = "";
	return r;
}

/* A header's value from the last header block, copied (caller frees), or NULL. */
static char *reply_header(const struct reply *r, const char *name)
{
	size_t nl = strlen(name);
	const char *p = r->raw, *found = NULL;
	for (const char *line = p; line && line < r->body; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':')
			found = line + nl + 1;
	}
	if (!found)
		return NULL;
	while (*found == ' ')
		found++;
	size_t len = strcspn(found, "\r\n");
	return strndup(found, len);
}

static json_t *reply_json(const struct reply *r)
{
	json_error_t err;
	json_t *j = json_loads(r->body, 0, &err);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, r->body);
	return j;
}

static const char *jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static bool is_uuid4(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
			return false;
	}
	return s[14] == '4';
}

/* ---- tests ---- */

START_TEST(test_params_query_headers)
{
	struct fixture *fx = fixture_new(0);
	struct reply r = curl_run("-H 'x-tEsT: hello' "
				  "'http://127.0.0.1:%u/echo/hello%%20w%%C3%%B6rld/a%%2Fb?x=1+2%%26&y'",
				  fx->port);
	ck_assert_uint_eq(r.status, 200);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "a"), "hello w\xc3\xb6rld");
	/* %2F is data inside one segment: it neither splits nor matches as a separator */
	ck_assert_str_eq(jstr(j, "b"), "a/b");
	ck_assert_str_eq(jstr(j, "x"), "1 2&");
	ck_assert(json_is_true(json_object_get(j, "has_y")));
	ck_assert_str_eq(jstr(j, "h"), "hello");
	ck_assert_str_eq(jstr(j, "method"), "GET");
	ck_assert_str_eq(jstr(j, "path"), "/echo/hello%20w%C3%B6rld/a%2Fb");
	ck_assert_str_eq(jstr(j, "client"), "127.0.0.1");
	char *ct = reply_header(&r, "content-type");
	ck_assert_str_eq(ct, "application/json");
	free(ct);
	json_decref(j);
	free(r.raw);

	/* a literal "/" inside would be a third segment: no route */
	r = curl_run("'http://127.0.0.1:%u/echo/a/b/c'", fx->port);
	ck_assert_uint_eq(r.status, 404);
	free(r.raw);
	/* %00 and broken escapes never reach a handler */
	r = curl_run("'http://127.0.0.1:%u/echo/a%%00b/c'", fx->port);
	ck_assert_uint_eq(r.status, 400);
	free(r.raw);
	r = curl_run("'http://127.0.0.1:%u/echo/a%%zz/c'", fx->port);
	ck_assert_uint_eq(r.status, 400);
	free(r.raw);
	/* empty segment is not a parameter value */
	r = curl_run("'http://127.0.0.1:%u/echo//c'", fx->port);
	ck_assert_uint_eq(r.status, 404);
	free(r.raw);
	r = curl_run("'http://127.0.0.1:%u/'", fx->port);
	ck_assert_uint_eq(r.status, 204);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

START_TEST(test_request_id)
{
	struct fixture *fx = fixture_new(0);
	struct reply r = curl_run("'http://127.0.0.1:%u/echo/a/b'", fx->port);
	char *id = reply_header(&r, "X-Request-Id");
	ck_assert_msg(is_uuid4(id), "generated id %s", id);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "id"), id);
	json_decref(j);
	free(id);
	free(r.raw);

	r = curl_run("-H 'X-Request-Id: Abc-123' 'http://127.0.0.1:%u/echo/a/b'", fx->port);
	id = reply_header(&r, "x-request-id");
	ck_assert_str_eq(id, "Abc-123");
	free(id);
	free(r.raw);

	const char *bad[] = { "bad id", "x;y", "\\\"q\\\"", "a_b",
			      "0123456789012345678901234567890123456789012345678901234567890123X" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = curl_run("-H \"X-Request-Id: %s\" 'http://127.0.0.1:%u/echo/a/b'", bad[i],
			     fx->port);
		id = reply_header(&r, "X-Request-Id");
		ck_assert_msg(is_uuid4(id), "'%s' replaced by %s", bad[i], id);
		free(id);
		free(r.raw);
	}
	/* 64 characters is still fine */
	r = curl_run("-H 'X-Request-Id: %s' 'http://127.0.0.1:%u/echo/a/b'",
		     "0123456789012345678901234567890123456789012345678901234567890123", fx->port);
	id = reply_header(&r, "X-Request-Id");
	ck_assert_str_eq(id, "0123456789012345678901234567890123456789012345678901234567890123");
	free(id);
	free(r.raw);

	/* errors carry it too */
	r = curl_run("'http://127.0.0.1:%u/nope'", fx->port);
	id = reply_header(&r, "X-Request-Id");
	ck_assert(is_uuid4(id));
	free(id);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

START_TEST(test_404_405)
{
	struct fixture *fx = fixture_new(0);
	struct reply r = curl_run("'http://127.0.0.1:%u/no/such/thing'", fx->port);
	ck_assert_uint_eq(r.status, 404);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "error"),
			 "The requested resource does not exist on this instance.");
	json_decref(j);
	free(r.raw);

	r = curl_run("-X POST 'http://127.0.0.1:%u/echo/a/b'", fx->port);
	ck_assert_uint_eq(r.status, 405);
	char *allow = reply_header(&r, "Allow");
	ck_assert_str_eq(allow, "GET, HEAD, DELETE, OPTIONS");
	free(allow);
	j = reply_json(&r);
	ck_assert_ptr_nonnull(jstr(j, "error"));
	json_decref(j);
	free(r.raw);

	r = curl_run("-X OPTIONS 'http://127.0.0.1:%u/echo/a/b'", fx->port);
	ck_assert_uint_eq(r.status, 204);
	allow = reply_header(&r, "Allow");
	ck_assert_str_eq(allow, "GET, HEAD, DELETE, OPTIONS");
	free(allow);
	free(r.raw);

	r = curl_run("-X DELETE 'http://127.0.0.1:%u/echo/a/b'", fx->port);
	ck_assert_uint_eq(r.status, 204);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

START_TEST(test_forgotten_response_and_double)
{
	struct fixture *fx = fixture_new(0);
	struct reply r = curl_run("'http://127.0.0.1:%u/forget'", fx->port);
	ck_assert_uint_eq(r.status, 500);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "error"),
			 "An unexpected error was encountered while processing this request");
	char *id = reply_header(&r, "X-Request-Id");
	ck_assert_str_eq(jstr(j, "request_id"), id);
	free(id);
	json_decref(j);
	free(r.raw);

	r = curl_run("'http://127.0.0.1:%u/twice'", fx->port);
	ck_assert_uint_eq(r.status, 204);
	free(r.raw);
	pthread_mutex_lock(&fx->lock);
	ck_assert_int_eq(fx->twice_rc, -EALREADY);
	pthread_mutex_unlock(&fx->lock);
	/* headers beyond MHD's per-connection memory: MHD refuses them itself; the request
	 * context made for it must still be freed (ASan) and the server keeps serving */
	int st;
	char *out = tu_sh_out(&st, "curl -s --max-time 20 -o /dev/null -w '%%{http_code}' "
				   "-H \"X-Big: $(head -c 60000 /dev/zero | tr '\\0' a)\" "
				   "'http://127.0.0.1:%u/echo/a/b'", fx->port);
	ck_assert_msg(out && atoi(out) >= 400, "big headers: %s", out ? out : "");
	free(out);
	/* the server still answers */
	r = curl_run("'http://127.0.0.1:%u/echo/a/b'", fx->port);
	ck_assert_uint_eq(r.status, 200);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

START_TEST(test_json_body)
{
	struct fixture *fx = fixture_new(0);
	const char *url = "http://127.0.0.1:%u/json";
	char u[128];
	snprintf(u, sizeof(u), url, fx->port);
	struct reply r = curl_run("-H 'Content-Type: application/json; charset=utf-8' "
				  "--data-binary '{\"adapter\":\"wings\",\"n\":[1,2]}' '%s'", u);
	ck_assert_uint_eq(r.status, 200);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "got"), "adapter"), "wings");
	json_decref(j);
	free(r.raw);

	r = curl_run("-H 'Content-Type: application/json' --data-binary '{\"a\":\n  tru}' '%s'", u);
	ck_assert_uint_eq(r.status, 400);
	j = reply_json(&r);
	ck_assert_msg(strstr(jstr(j, "error"), "line 2") != NULL, "%s", jstr(j, "error"));
	ck_assert_msg(strstr(jstr(j, "error"), "column") != NULL, "%s", jstr(j, "error"));
	json_decref(j);
	free(r.raw);

	r = curl_run("-X POST -H 'Content-Type: application/json' '%s'", u);
	ck_assert_uint_eq(r.status, 400);
	j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "error"),
			 "The data passed in the request was not in a parsable format. Please try "
			 "again.");
	json_decref(j);
	free(r.raw);

	/* curl -d sends a form; so does a cross-site HTML form */
	r = curl_run("-d '{}' '%s'", u);
	ck_assert_uint_eq(r.status, 400);
	free(r.raw);
	r = curl_run("-H 'Content-Type: application/vnd.pterodactyl.v1+json' -d '[1]' '%s'", u);
	ck_assert_uint_eq(r.status, 200);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

START_TEST(test_body_limit)
{
	struct fixture *fx = fixture_new(4096);
	char *big = malloc(strlen(fx->dir) + 8);
	sprintf(big, "%s/big", fx->dir);
	ck_assert_int_eq(tu_sh("head -c 8388608 /dev/zero > '%s'", big), 0);

	/* at the limit: accepted whole */
	ck_assert_int_eq(tu_sh("head -c 4096 /dev/zero > '%s.4k'", big), 0);
	struct reply r = curl_run("--data-binary @'%s.4k' 'http://127.0.0.1:%u/len'", big, fx->port);
	ck_assert_uint_eq(r.status, 200);
	json_t *j = reply_json(&r);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "len")), 4096);
	json_decref(j);
	free(r.raw);

	/* 8 MiB declared: refused at once, and curl does not get to send it */
	int st;
	char *out = tu_sh_out(&st,
			      "curl -sS --max-time 20 -o /dev/null -w '%%{http_code} %%{size_upload}' "
			      "--data-binary @'%s' 'http://127.0.0.1:%u/len'",
			      big, fx->port);
	unsigned code = 0;
	unsigned long long sent = 0;
	ck_assert_int_eq(sscanf(out, "%u %llu", &code, &sent), 2);
	ck_assert_uint_eq(code, 413);
	ck_assert_msg(sent < 8388608ULL / 2, "curl uploaded %llu bytes", sent);
	free(out);

	/* chunked (no length) a bit over: read, thrown away, 413 at its end */
	ck_assert_int_eq(tu_sh("head -c 6000 /dev/zero > '%s.6k'", big), 0);
	r = curl_run("-H 'Transfer-Encoding: chunked' --data-binary @'%s.6k' "
		     "'http://127.0.0.1:%u/len'",
		     big, fx->port);
	ck_assert_uint_eq(r.status, 413);
	free(r.raw);
	/* chunked far over: the connection is dropped rather than read forever */
	ck_assert_int_ne(tu_sh("curl -sS --max-time 20 -o /dev/null -H 'Transfer-Encoding: chunked' "
			       "--data-binary @'%s' 'http://127.0.0.1:%u/len' 2>/dev/null",
			       big, fx->port),
			 0);
	free(big);
	fixture_free(fx);
}
END_TEST

static void check_range(struct fixture *fx, const char *range, unsigned status,
			const char *content_range, const char *body)
{
	struct reply r = curl_run("-H 'Range: %s' 'http://127.0.0.1:%u/file'", range, fx->port);
	ck_assert_msg(r.status == status, "%s: status %u", range, r.status);
	char *cr = reply_header(&r, "Content-Range");
	if (content_range)
		ck_assert_msg(cr && strcmp(cr, content_range) == 0, "%s: Content-Range %s", range,
			      cr ? cr : "(none)");
	else
		ck_assert_msg(cr == NULL, "%s: unexpected Content-Range %s", range, cr);
	if (body)
		ck_assert_str_eq(r.body, body);
	free(cr);
	free(r.raw);
}

START_TEST(test_file_download)
{
	struct fixture *fx = fixture_new(0);
	char full[FILE_SIZE + 1];
	for (size_t i = 0; i < FILE_SIZE; i++)
		full[i] = (char)('0' + i % 10);
	full[FILE_SIZE] = '\0';

	struct reply r = curl_run("'http://127.0.0.1:%u/file'", fx->port);
	ck_assert_uint_eq(r.status, 200);
	ck_assert_str_eq(r.body, full);
	char *h = reply_header(&r, "Content-Length");
	ck_assert_str_eq(h, "100");
	free(h);
	h = reply_header(&r, "Accept-Ranges");
	ck_assert_str_eq(h, "bytes");
	free(h);
	h = reply_header(&r, "Content-Type");
	ck_assert_str_eq(h, "application/x-gzip");
	free(h);
	h = reply_header(&r, "Content-Disposition");
	ck_assert_str_eq(h, "attachment; filename=\"we\\\"ird\\\\na_me.tar.gz\"");
	free(h);
	h = reply_header(&r, "X-Request-Id");
	ck_assert_ptr_nonnull(h);
	free(h);
	free(r.raw);

	check_range(fx, "bytes=0-9", 206, "bytes 0-9/100", "0123456789");
	check_range(fx, "bytes=10-", 206, "bytes 10-99/100", full + 10);
	check_range(fx, "bytes=-5", 206, "bytes 95-99/100", "56789");
	check_range(fx, "bytes=-500", 206, "bytes 0-99/100", full);
	check_range(fx, "bytes=95-1000", 206, "bytes 95-99/100", "56789");
	check_range(fx, "BYTES = 3-3", 206, "bytes 3-3/100", "3");
	check_range(fx, "bytes=9999999-", 416, "bytes */100", NULL);
	check_range(fx, "bytes=100-", 416, "bytes */100", NULL);
	check_range(fx, "bytes=-0", 416, "bytes */100", NULL);
	check_range(fx, "bytes=5-2", 200, NULL, full);
	check_range(fx, "bytes=0-1,5-6", 200, NULL, full);
	check_range(fx, "items=0-1", 200, NULL, full);
	check_range(fx, "bytes=x-", 200, NULL, full);
	check_range(fx, "bytes=99999999999999999999999-", 200, NULL, full);

	/* If-Range with no validator to compare: the full file */
	r = curl_run("-H 'Range: bytes=0-1' -H 'If-Range: \"abc\"' 'http://127.0.0.1:%u/file'",
		     fx->port);
	ck_assert_uint_eq(r.status, 200);
	free(r.raw);

	/* HEAD: headers with the full length, no body */
	int st;
	char *out = tu_sh_out(&st, "curl -sS --max-time 20 -I 'http://127.0.0.1:%u/file'", fx->port);
	ck_assert_int_eq(st, 0);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
	ck_assert_msg(strcasestr(out, "\r\nContent-Length: 100\r\n") != NULL, "%s", out);
	free(out);
	out = tu_sh_out(&st, "curl -sS --max-time 20 -I -o /dev/null -w '%%{size_download}' "
			     "'http://127.0.0.1:%u/file'", fx->port);
	ck_assert_str_eq(out, "0");
	free(out);
	fixture_free(fx);
}
END_TEST

START_TEST(test_access_log)
{
	struct fixture *fx = fixture_new(0);
	struct reply r = curl_run("-H 'X-Request-Id: log-1' "
				  "'http://127.0.0.1:%u/echo/a/b?token=SECRET&x=1'",
				  fx->port);
	ck_assert_uint_eq(r.status, 200);
	size_t body_len = strlen(r.body);
	free(r.raw);
	r = curl_run("-H 'X-Request-Id: log-2' 'http://127.0.0.1:%u/nope?token=SECRET'", fx->port);
	free(r.raw);
	r = curl_run("-H 'X-Request-Id: log-3' 'http://127.0.0.1:%u/forget'", fx->port);
	free(r.raw);
	fixture_stop(fx);

	ck_assert_uint_eq(fx->n_log, 3);
	bool seen[3] = { false, false, false };
	for (size_t i = 0; i < fx->n_log; i++) {
		struct log_line *l = &fx->log[i];
		ck_assert_msg(strstr(l->path, "SECRET") == NULL && !strchr(l->path, '?'),
			      "query logged: %s", l->path);
		if (strcmp(l->id, "log-1") == 0) {
			ck_assert_str_eq(l->method, "GET");
			ck_assert_str_eq(l->path, "/echo/a/b");
			ck_assert_uint_eq(l->status, 200);
			ck_assert_uint_eq(l->bytes, body_len);
			seen[0] = true;
		} else if (strcmp(l->id, "log-2") == 0) {
			ck_assert_str_eq(l->path, "/nope");
			ck_assert_uint_eq(l->status, 404);
			seen[1] = true;
		} else if (strcmp(l->id, "log-3") == 0) {
			ck_assert_uint_eq(l->status, 500);
			seen[2] = true;
		}
	}
	ck_assert(seen[0] && seen[1] && seen[2]);
	fixture_free(fx);
}
END_TEST

START_TEST(test_concurrent_clients)
{
	struct fixture *fx = fixture_new(0);
	int st;
	/* 64 requests, 32 at a time; the slow route holds pool threads so requests queue */
	char *out = tu_sh_out(&st,
			      "seq 1 64 | xargs -P 32 -I{} sh -c 'if [ $(({} %% 8)) -eq 0 ]; "
			      "then p=slow; else p=echo/{}/x; fi; curl -s --max-time 30 -o /dev/null "
			      "-w \"%%{http_code}\\n\" http://127.0.0.1:%u/$p' | sort | uniq -c",
			      fx->port);
	ck_assert_int_eq(st, 0);
	ck_assert_msg(strstr(out, "64 200") != NULL, "answers: %s", out);
	free(out);
	fixture_stop(fx);
	ck_assert_uint_eq(fx->n_log, 64);
	fixture_free(fx);
}
END_TEST

START_TEST(test_stop_accepting)
{
	struct fixture *fx = fixture_new(0);
	char *out_file = malloc(strlen(fx->dir) + 8);
	sprintf(out_file, "%s/out", fx->dir);
	/* one request in flight when the drain starts */
	ck_assert_int_eq(tu_sh("(curl -s --max-time 20 -o /dev/null -w '%%{http_code}' "
			       "http://127.0.0.1:%u/slow > '%s.tmp'; mv '%s.tmp' '%s') &",
			       fx->port, out_file, out_file, out_file),
			 0);
	for (int i = 0; i < 200 && http_server_connections(fx->srv) == 0; i++)
		usleep(5000);
	ck_assert_uint_ge(http_server_connections(fx->srv), 1);
	ck_assert_int_eq(http_server_stop_accepting(fx->srv), 0);
	ck_assert_int_eq(http_server_stop_accepting(fx->srv), 0);
	/* new connections are refused (curl: 7, couldn't connect) */
	ck_assert_int_eq(tu_sh("curl -s --max-time 5 -o /dev/null http://127.0.0.1:%u/echo/a/b",
			       fx->port),
			 7);
	char *got = NULL;
	for (int i = 0; i < 400 && !got; i++) {
		got = tu_read_file(out_file, NULL);
		if (!got)
			usleep(25000);
	}
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "200");
	free(got);
	for (int i = 0; i < 400 && http_server_connections(fx->srv) > 0; i++)
		usleep(5000);
	ck_assert_uint_eq(http_server_connections(fx->srv), 0);
	free(out_file);
	fixture_free(fx);
}
END_TEST

START_TEST(test_idle_free_and_bad_config)
{
	struct fixture *fx = fixture_new(0);
	fixture_free(fx);

	struct http_server *srv = NULL;
	const struct http_route bad_route[] = { { "GET", "no-slash", h_delete, NULL } };
	const struct http_route bad_param[] = { { "GET", "/a/:", h_delete, NULL } };
	struct http_config cfg = { .listen = "127.0.0.1:0" };
	const char *bad_listen[] = { "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", ":80",
				     "[::1]80", "::1:80", "127.0.0.1:8x" };
	for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
		cfg.listen = bad_listen[i];
		ck_assert_msg(http_server_new(&cfg, &srv) == -EINVAL, "%s", bad_listen[i]);
		ck_assert_ptr_null(srv);
	}
	cfg.listen = "127.0.0.1:0";
	cfg.routes = bad_route;
	cfg.n_routes = 1;
	ck_assert_int_eq(http_server_new(&cfg, &srv), -EINVAL);
	cfg.routes = bad_param;
	ck_assert_int_eq(http_server_new(&cfg, &srv), -EINVAL);
	http_server_free(NULL);

	/* a port in use */
	cfg.routes = NULL;
	cfg.n_routes = 0;
	ck_assert_int_eq(http_server_new(&cfg, &srv), 0);
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", http_server_port(srv));
	struct http_server *srv2 = NULL;
	cfg.listen = listen;
	ck_assert_int_lt(http_server_new(&cfg, &srv2), 0);
	ck_assert_ptr_null(srv2);
	http_server_free(srv);
}
END_TEST

START_TEST(test_ipv6)
{
	struct fixture *fx = fixture_new(0);
	fixture_stop(fx);
	if (start_on(fx, "[::1]:0", 0) != 0) {
		fprintf(stderr, "test_ipv6: cannot listen on [::1], skipped\n");
		fixture_free(fx);
		return;
	}
	fx->port = http_server_port(fx->srv);
	struct reply r = curl_run("-g 'http://[::1]:%u/echo/six/x'", fx->port);
	ck_assert_uint_eq(r.status, 200);
	json_t *j = reply_json(&r);
	ck_assert_str_eq(jstr(j, "client"), "::1");
	ck_assert_str_eq(jstr(j, "a"), "six");
	json_decref(j);
	free(r.raw);
	fixture_free(fx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_params_query_headers);
	tcase_add_test(tc, test_request_id);
	tcase_add_test(tc, test_404_405);
	tcase_add_test(tc, test_forgotten_response_and_double);
	tcase_add_test(tc, test_json_body);
	tcase_add_test(tc, test_body_limit);
	tcase_add_test(tc, test_file_download);
	tcase_add_test(tc, test_access_log);
	tcase_add_test(tc, test_concurrent_clients);
	tcase_add_test(tc, test_stop_accepting);
	tcase_add_test(tc, test_idle_free_and_bad_config);
	tcase_add_test(tc, test_ipv6);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
