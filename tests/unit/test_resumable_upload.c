/* The node's resumable-session uploader against the strict GCS test server
 * (tests/gcs/gcs_test_server.py, written from gcs-protocol.md, NOT real GCS), in its
 * no-auth mode: the start URL is an XML API POST that needs no signature there, which
 * is all that differs from a signed one for this code. */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resumable_upload.h"
#include "testutil.h"

#define BUCKET "rb"
#define K256 (256u * 1024u)

struct fx {
	char *dir, *log;
	struct tu_server srv;
	int port;
};

static void fx_start(struct fx *f)
{
	f->dir = tu_mkdtemp("resumable");
	char data[512], key[512];
	snprintf(data, sizeof(data), "%s/data", f->dir);
	snprintf(key, sizeof(key), "%s/key.json", f->dir);
	ck_assert_int_ne(asprintf(&f->log, "%s/log.jsonl", f->dir), -1);
	const char *args[] = { "--port", "0",	  "--dir", data, "--key-out", key, "--bucket",
			       BUCKET,	 "--log", f->log, "--no-auth", NULL };
	f->port = tu_server_start(&f->srv, "../gcs/gcs_test_server.py", args, NULL, true);
}

static void fx_stop(struct fx *f)
{
	tu_server_stop(&f->srv);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->log);
}

static void faults(const struct fx *f, const char *json)
{
	ck_assert_int_eq(tu_sh("curl -sf -o /dev/null -X POST --data '%s' "
			       "http://127.0.0.1:%d/__control/faults",
			       json, f->port),
			 0);
}

/* The stored object's bytes, or NULL. */
static unsigned char *object(const struct fx *f, const char *name, size_t *len)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/data/objects/%s/%s", f->dir, BUCKET, name);
	return (unsigned char *)tu_read_file(p, len);
}

static const char *const START_HDRS[] = { "x-goog-resumable: start" };

static struct resumable_upload *upload_new(const struct fx *f, const char *name, uint64_t chunk)
{
	static char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/" BUCKET "/%s", f->port, name);
	struct resumable_upload_config cfg = {
		.start_url = url,
		.start_headers = START_HDRS,
		.n_start_headers = 1,
		.chunk_size = chunk,
		.retry = { .max_attempts = 4, .base_ms = 10, .max_ms = 50 },
	};
	struct resumable_upload *ru;
	ck_assert_int_eq(resumable_upload_new(&cfg, &ru), 0);
	return ru;
}

static unsigned char *pattern(size_t n)
{
	unsigned char *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		b[i] = (unsigned char)x;
	}
	return b;
}

/* Writes data in uneven pieces, then finishes. */
static int send_all(struct resumable_upload *ru, const unsigned char *data, size_t n)
{
	size_t off = 0, step = 1000;
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		int r = resumable_upload_write(ru, data + off, k);
		if (r < 0)
			return r;
		off += k;
		step = step * 3 + 7;
	}
	return resumable_upload_finish(ru);
}

static size_t count_log(const struct fx *f, const char *method, const char *substr)
{
	json_t *all = tu_log_requests(f->log, NULL);
	size_t i, n = 0;
	json_t *x;
	json_array_foreach(all, i, x) {
		const char *m = json_string_value(json_object_get(x, "method"));
		const char *q = json_string_value(json_object_get(x, "query"));
		const char *p = json_string_value(json_object_get(x, "path"));
		char both[1024];
		snprintf(both, sizeof(both), "%s?%s", p ? p : "", q ? q : "");
		if (m && strcmp(m, method) == 0 && (!substr || strstr(both, substr)))
			n++;
	}
	json_decref(all);
	return n;
}

/* The server logs a request after answering it: give the line a moment to land. */
static size_t await_log(const struct fx *f, const char *method, const char *substr, size_t want)
{
	size_t n = 0;
	for (int i = 0; i < 200 && (n = count_log(f, method, substr)) < want; i++)
		usleep(50 * 1000);
	return n;
}

START_TEST(test_round_trip)
{
	struct fx f;
	fx_start(&f);
	size_t n = 4 * K256 + 12345;
	unsigned char *data = pattern(n);
	struct resumable_upload *ru = upload_new(&f, "a.tar.gz", K256);
	ck_assert_int_eq(send_all(ru, data, n), 0);
	ck_assert_uint_eq(resumable_upload_bytes_stored(ru), n);
	ck_assert_uint_eq(resumable_upload_retries(ru), 0);
	ck_assert_str_eq(resumable_upload_error(ru), "");
	resumable_upload_free(ru);
	size_t len = 0;
	unsigned char *got = object(&f, "a.tar.gz", &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(got, data, n) == 0);
	/* a finished session is not cancelled */
	ck_assert_uint_eq(count_log(&f, "DELETE", NULL), 0);
	free(got);
	free(data);
	fx_stop(&f);
}
END_TEST

/* An empty stream is a zero-byte object ("bytes STAR/0"). */
START_TEST(test_empty)
{
	struct fx f;
	fx_start(&f);
	struct resumable_upload *ru = upload_new(&f, "empty", K256);
	ck_assert_int_eq(resumable_upload_finish(ru), 0);
	ck_assert_int_eq(resumable_upload_finish(ru), -EINVAL); /* once */
	resumable_upload_free(ru);
	size_t len = 99;
	unsigned char *got = object(&f, "empty", &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, 0);
	free(got);
	fx_stop(&f);
}
END_TEST

START_TEST(test_faults)
{
	struct fx f;
	fx_start(&f);
	faults(&f, "[{\"op\":\"init\",\"n\":1,\"action\":\"503\"},"
		   "{\"op\":\"chunk\",\"n\":1,\"action\":\"partial\",\"keep\":262144},"
		   "{\"op\":\"chunk\",\"n\":2,\"action\":\"drop\"},"
		   "{\"op\":\"chunk\",\"n\":3,\"action\":\"500\"},"
		   "{\"op\":\"chunk\",\"n\":4,\"action\":\"429\"}]");
	size_t n = 6 * K256 + 777;
	unsigned char *data = pattern(n);
	struct resumable_upload *ru = upload_new(&f, "f.tar.gz", 2 * K256);
	ck_assert_int_eq(send_all(ru, data, n), 0);
	/* the 503 on the opening, the 500 and the 429; the dropped chunk may be re-sent by
	 * curl itself on a fresh connection (a reused one died before any answer) */
	ck_assert_uint_ge(resumable_upload_retries(ru), 3);
	resumable_upload_free(ru);
	size_t len = 0;
	unsigned char *got = object(&f, "f.tar.gz", &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(got, data, n) == 0);
	/* the session's state was asked before re-sending after the drop and the 5xx */
	size_t queries = 0, met = 0;
	for (int tries = 0; tries < 200 && met < 5; tries++) {
		if (tries)
			usleep(50 * 1000); /* log lines land after the answers */
		json_t *all = tu_log_requests(f.log, NULL);
		size_t i;
		json_t *x;
		queries = met = 0;
		json_array_foreach(all, i, x) {
			const char *cr = json_string_value(json_object_get(x, "content_range"));
			queries += cr && strcmp(cr, "bytes */*") == 0;
			met += json_object_get(x, "fault") != NULL;
		}
		json_decref(all);
	}
	ck_assert_uint_ge(queries, 2);
	ck_assert_uint_eq(met, 5);
	free(got);
	free(data);
	fx_stop(&f);
}
END_TEST

/* Freed before the end: the session is cancelled and no object appears. */
START_TEST(test_cancel)
{
	struct fx f;
	fx_start(&f);
	unsigned char *data = pattern(3 * K256);
	struct resumable_upload *ru = upload_new(&f, "c.tar.gz", K256);
	ck_assert_int_eq(resumable_upload_write(ru, data, 3 * K256), 0);
	ck_assert_uint_eq(resumable_upload_bytes_stored(ru), 3 * K256);
	resumable_upload_free(ru);
	ck_assert_uint_eq(await_log(&f, "DELETE", "upload_id=", 1), 1);
	size_t len;
	ck_assert_ptr_null(object(&f, "c.tar.gz", &len));
	free(data);
	fx_stop(&f);
}
END_TEST

START_TEST(test_lost_session)
{
	struct fx f;
	fx_start(&f);
	faults(&f, "[{\"op\":\"chunk\",\"n\":2,\"action\":\"gone\"}]");
	unsigned char *data = pattern(4 * K256);
	struct resumable_upload *ru = upload_new(&f, "l.tar.gz", K256);
	ck_assert_int_eq(send_all(ru, data, 4 * K256), -EIO);
	ck_assert_ptr_nonnull(strstr(resumable_upload_error(ru), "session lost"));
	/* the error sticks */
	ck_assert_int_eq(resumable_upload_write(ru, data, 1), -EIO);
	resumable_upload_free(ru);
	size_t len;
	ck_assert_ptr_null(object(&f, "l.tar.gz", &len));
	free(data);
	fx_stop(&f);
}
END_TEST

/* A store that keeps answering 5xx: the attempts run out, no hang. */
START_TEST(test_gives_up)
{
	struct fx f;
	fx_start(&f);
	faults(&f, "[{\"op\":\"chunk\",\"n\":1,\"action\":\"503\",\"times\":100}]");
	unsigned char *data = pattern(K256);
	struct resumable_upload *ru = upload_new(&f, "g.tar.gz", K256);
	ck_assert_int_eq(resumable_upload_write(ru, data, K256), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(resumable_upload_error(ru), "gave up after"));
	resumable_upload_free(ru);
	free(data);
	fx_stop(&f);
}
END_TEST

/* The opening POST refused (no x-goog-resumable header): a 4xx is final. */
START_TEST(test_start_refused)
{
	struct fx f;
	fx_start(&f);
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/" BUCKET "/r", f.port);
	struct resumable_upload_config cfg = { .start_url = url, .chunk_size = K256 };
	struct resumable_upload *ru;
	ck_assert_int_eq(resumable_upload_new(&cfg, &ru), 0);
	ck_assert_int_eq(resumable_upload_finish(ru), -EINVAL);
	ck_assert_ptr_nonnull(strstr(resumable_upload_error(ru), "opening the upload session: "
								  "HTTP 400"));
	ck_assert_uint_eq(resumable_upload_retries(ru), 0);
	resumable_upload_free(ru);
	fx_stop(&f);
}
END_TEST

START_TEST(test_bad_config)
{
	struct resumable_upload *ru = (void *)1;
	struct resumable_upload_config cfg = { .start_url = "http://x/b/o", .chunk_size = 1000 };
	ck_assert_int_eq(resumable_upload_new(&cfg, &ru), -EINVAL);
	ck_assert_ptr_null(ru);
	cfg.chunk_size = 0;
	ck_assert_int_eq(resumable_upload_new(&cfg, &ru), -EINVAL);
	cfg.chunk_size = K256;
	cfg.start_url = "";
	ck_assert_int_eq(resumable_upload_new(&cfg, &ru), -EINVAL);
	resumable_upload_free(NULL);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	Suite *s = suite_create("resumable_upload");
	TCase *tc = tcase_create("gcs_test_server");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_lost_session);
	tcase_add_test(tc, test_gives_up);
	tcase_add_test(tc, test_start_refused);
	tcase_add_test(tc, test_bad_config);
	suite_add_tcase(s, tc);
	int r = tu_run_suite(s);
	curl_global_cleanup();
	return r;
}
