/* Restores from a download_url (core/url_source.c, backup_restore_url) against
 * tests/tools/fake_part_store.py: status and content checks before anything is
 * truncated, Range resumes after a dropped connection, a 200 answer to a Range. */
#include "archive_restore.h"
#include "backup.h"
#include "url_source.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct host_retry_policy FAST_RETRY = { .max_attempts = 3, .base_ms = 10,
						     .max_ms = 40 };

/* <dir>/src: a tree with an incompressible 2 MiB file; its tar.gz (GNU tar) is the
 * store's object. Returns the object's length. */
static size_t make_object(const char *dir, const struct fake_store *st)
{
	char *p = NULL;
	size_t n = 2u << 20;
	unsigned char *b = malloc(n);
	uint32_t x = 99;
	for (size_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		b[i] = (unsigned char)(x >> 24);
	}
	ck_assert_int_ge(asprintf(&p, "%s/src/world/region.bin", dir), 0);
	tu_write_file(p, b, n, 0644);
	free(p);
	free(b);
	ck_assert_int_ge(asprintf(&p, "%s/src/server.properties", dir), 0);
	tu_write_file(p, "motd=hi\n", 8, 0644);
	free(p);
	ck_assert_int_eq(tu_sh("mkdir -p '%s' && tar -czf '%s/object' -C '%s/src' .", st->dir,
			       st->dir, dir),
			 0);
	struct stat sb;
	ck_assert_int_ge(asprintf(&p, "%s/object", st->dir), 0);
	ck_assert_int_eq(stat(p, &sb), 0);
	free(p);
	return (size_t)sb.st_size;
}

static char *object_url(const struct fake_store *st, const char *path)
{
	char *u = NULL;
	ck_assert_int_ge(asprintf(&u, "http://127.0.0.1:%d%s", st->port, path), 0);
	return u;
}

/* Reads the whole URL through url_source; returns its bytes. */
static char *read_all(const char *url, size_t *ret_len, unsigned *ret_resumes)
{
	struct url_source_config cfg = { .url = url, .retry = FAST_RETRY };
	struct url_source *s = NULL;
	char err[URL_SOURCE_MESSAGE_MAX];
	int r = url_source_open(&cfg, &s, err, sizeof(err));
	ck_assert_msg(r == 0, "open: %d %s", r, err);
	size_t len = 0, cap = 1 << 16;
	char *out = malloc(cap);
	for (;;) {
		if (len + 7000 > cap)
			out = realloc(out, cap *= 2);
		int64_t n = url_source_read(s, out + len, 7000);
		ck_assert_msg(n >= 0, "read: %lld %s", (long long)n, url_source_error(s));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_len = len;
	*ret_resumes = url_source_resumes(s);
	url_source_free(s);
	return out;
}

static void check_same_as_object(const struct fake_store *st, const char *got, size_t len)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/object", st->dir), 0);
	size_t want_len = 0;
	char *want = tu_read_file(p, &want_len);
	ck_assert_uint_eq(len, want_len);
	ck_assert(memcmp(got, want, len) == 0);
	free(want);
	free(p);
}

static void stop_store(struct fake_store *st, char *dir)
{
	fake_store_stop(st);
	tu_rmrf(dir);
	free(dir);
}

/* Serves the object with rules' faults and reads it whole through url_source: the bytes
 * are the object's, after want_resumes resumes. The store stays up for the caller to
 * check its log; returns the scratch directory for stop_store. */
static char *read_through_faults(struct fake_store *st, const char *const *rules,
				 unsigned want_resumes)
{
	char *dir = tu_mkdtemp("url");
	fake_store_start(st, dir, NULL, rules);
	size_t total = make_object(dir, st);
	char *url = object_url(st, "/object");
	size_t len = 0;
	unsigned resumes = 0;
	char *got = read_all(url, &len, &resumes);
	ck_assert_uint_eq(len, total);
	check_same_as_object(st, got, len);
	ck_assert_uint_eq(resumes, want_resumes);
	free(got);
	free(url);
	return dir;
}

START_TEST(dropped_connection_resumes_with_range)
{
	static const char *const rules[] = { "get:1:drop:300000", "get:2:drop:500000", NULL };
	struct fake_store st;
	char *dir = read_through_faults(&st, rules, 2);
	ck_assert_uint_eq(fake_store_count(&st, "GET", "range", "bytes=300000-"), 1);
	ck_assert_uint_eq(fake_store_count(&st, "GET", "range", "bytes=800000-"), 1);
	stop_store(&st, dir);
}
END_TEST

START_TEST(a_200_to_a_range_skips_what_was_read)
{
	static const char *const rules[] = { "get:1:drop:250000", "get:2:norange", NULL };
	struct fake_store st;
	stop_store(&st, read_through_faults(&st, rules, 1));
}
END_TEST

static int open_error(const char *url, char *err, size_t cap)
{
	struct url_source_config cfg = { .url = url, .retry = FAST_RETRY };
	struct url_source *s = NULL;
	int r = url_source_open(&cfg, &s, err, cap);
	ck_assert_ptr_null(s);
	return r;
}

START_TEST(refused_answers_fail_at_open)
{
	char *dir = tu_mkdtemp("url");
	struct fake_store st;
	fake_store_start(&st, dir, NULL, NULL);
	char err[URL_SOURCE_MESSAGE_MAX];
	char *u = object_url(&st, "/status/404");
	ck_assert_int_eq(open_error(u, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "HTTP 404"), "%s", err);
	free(u);
	u = object_url(&st, "/status/403");
	ck_assert_int_eq(open_error(u, err, sizeof(err)), -EACCES);
	free(u);
	u = object_url(&st, "/status/302");
	ck_assert_int_eq(open_error(u, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "not followed"), "%s", err);
	free(u);
	/* a 5xx is retried, then given up */
	u = object_url(&st, "/status/503");
	ck_assert_int_eq(open_error(u, err, sizeof(err)), -EAGAIN);
	ck_assert_msg(strstr(err, "gave up after 4 attempts"), "%s", err);
	free(u);
	ck_assert_int_eq(open_error("ftp://example.com/x", err, sizeof(err)), -EINVAL);
	fake_store_stop(&st);

	/* an HTML page with a 200 is not a backup */
	fake_store_start(&st, dir, "text/html; charset=utf-8", NULL);
	make_object(dir, &st);
	u = object_url(&st, "/object");
	ck_assert_int_eq(open_error(u, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "text/html"), "%s", err);
	free(u);
	stop_store(&st, dir);
}
END_TEST

static struct archive_restore_opts restore_opts(const char *root)
{
	return (struct archive_restore_opts){ .root = root, .truncate = true, .uid = -1,
					      .gid = -1 };
}

START_TEST(restore_from_url_with_a_drop)
{
	char *dir = tu_mkdtemp("url");
	static const char *const rules[] = { "get:1:drop:400000", NULL };
	struct fake_store st;
	fake_store_start(&st, dir, NULL, rules);
	make_object(dir, &st);
	char *target = NULL, *old = NULL;
	ck_assert_int_ge(asprintf(&target, "%s/target", dir), 0);
	ck_assert_int_ge(asprintf(&old, "%s/target/old.txt", dir), 0);
	tu_write_file(old, "old", 3, 0644);
	char *url = object_url(&st, "/object");
	struct amber_ctx ctx;
	host_ctx_init(&ctx, "s3", "(download_url)", "restore", "t");
	ctx.retry = FAST_RETRY;
	struct archive_restore_opts opts = restore_opts(target);
	struct archive_restore_result res;
	unsigned resumes = 0;
	int r = backup_restore_url(url, &opts, &ctx, &res, &resumes);
	ck_assert_msg(r == 0, "%d %s", r, ctx.message);
	ck_assert_uint_eq(resumes, 1);
	ck_assert_uint_eq(res.files, 2);
	archive_restore_result_clear(&res);
	ck_assert_int_eq(tu_sh("diff -r '%s/src' '%s' >&2", dir, target), 0);
	ck_assert_int_ne(access(old, F_OK), 0); /* truncated */
	free(url);

	/* a 404 (or 403) fails before the truncation: the directory is untouched */
	tu_write_file(old, "old", 3, 0644);
	const char *bad[] = { "/status/404", "/status/403" };
	for (size_t i = 0; i < 2; i++) {
		url = object_url(&st, bad[i]);
		host_ctx_init(&ctx, "s3", "(download_url)", "restore", "t");
		ctx.retry = FAST_RETRY;
		r = backup_restore_url(url, &opts, &ctx, &res, NULL);
		ck_assert_int_eq(r, i == 0 ? -ENOENT : -EACCES);
		ck_assert_msg(strstr(ctx.message, bad[i] + 8), "%s", ctx.message);
		archive_restore_result_clear(&res);
		ck_assert_int_eq(access(old, F_OK), 0);
		ck_assert_int_eq(tu_sh("diff -r '%s/src/world' '%s/world' >&2", dir, target), 0);
		free(url);
	}
	free(old);
	free(target);
	stop_store(&st, dir);
}
END_TEST

/* A zstd backup (what an instance with compression = "zstd" stores) comes through the
 * same engine: served as application/zstd, resumed after a drop, restored whole. */
START_TEST(restore_zstd_from_url_with_a_drop)
{
	char *dir = tu_mkdtemp("url");
	static const char *const rules[] = { "get:1:drop:300000", NULL };
	struct fake_store st;
	fake_store_start(&st, dir, "application/zstd", rules);
	make_object(dir, &st);
	ck_assert_int_eq(tu_sh("tar -I 'zstd -1 -T2' -cf '%s/object' -C '%s/src' .", st.dir, dir),
			 0);
	char *target = NULL;
	ck_assert_int_ge(asprintf(&target, "%s/target", dir), 0);
	char *url = object_url(&st, "/object");
	struct amber_ctx ctx;
	host_ctx_init(&ctx, "s3", "(download_url)", "restore", "t");
	ctx.retry = FAST_RETRY;
	struct archive_restore_opts opts = restore_opts(target);
	struct archive_restore_result res;
	unsigned resumes = 0;
	int r = backup_restore_url(url, &opts, &ctx, &res, &resumes);
	ck_assert_msg(r == 0, "%d %s", r, ctx.message);
	ck_assert_uint_eq(resumes, 1);
	ck_assert_uint_eq(res.files, 2);
	archive_restore_result_clear(&res);
	ck_assert_int_eq(tu_sh("diff -r '%s/src' '%s' >&2", dir, target), 0);
	free(url);
	free(target);
	stop_store(&st, dir);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("url_source");
	TCase *tc = tcase_create("download");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, dropped_connection_resumes_with_range);
	tcase_add_test(tc, a_200_to_a_range_skips_what_was_read);
	tcase_add_test(tc, refused_answers_fail_at_open);
	tcase_add_test(tc, restore_from_url_with_a_drop);
	tcase_add_test(tc, restore_zstd_from_url_with_a_drop);
	suite_add_tcase(s, tc);
	int rc = tu_run_suite(s);
	curl_global_cleanup();
	return rc;
}
