/* Presigned part uploads (core/part_upload.c) against tests/tools/fake_part_store.py, and
 * the size bound the node asks the panel to presign for (backup_compressed_bound). */
#include "archive_create.h"
#include "backup.h"
#include "part_upload.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static unsigned char *random_bytes(size_t n, unsigned seed)
{
	unsigned char *b = malloc(n);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)(x >> 32);
	}
	return b;
}

static void md5_etag(const unsigned char *d, size_t n, char out[40])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	ck_assert(EVP_Digest(d, n, md, &len, EVP_md5(), NULL));
	out[0] = '"';
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 1 + 2 * i, "%02x", md[i]);
	strcpy(out + 1 + 2 * len, "\"");
}

struct urls {
	char **v;
	size_t n;
};

static struct urls make_urls(int port, size_t n)
{
	struct urls u = { calloc(n, sizeof(char *)), n };
	for (size_t i = 0; i < n; i++)
		ck_assert_int_ge(asprintf(&u.v[i], "http://127.0.0.1:%d/part/%zu?sig=s%zu", port,
					  i + 1, i + 1),
				 0);
	return u;
}

static void free_urls(struct urls *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i]);
	free(u->v);
}

static const struct host_retry_policy FAST_RETRY = { .max_attempts = 4, .base_ms = 10,
						     .max_ms = 40 };

/* Writes data in uneven chunks; returns the first error (or finish's). */
static int upload_all(struct part_upload *pu, const unsigned char *data, size_t len)
{
	size_t off = 0, step = 100003;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		int r = part_upload_write(pu, data + off, n);
		if (r < 0)
			return r;
		off += n;
		step = step * 3 % 300007 + 1;
	}
	return part_upload_finish(pu);
}

/* The stored object is data, the parts are in order with the store's ETags. */
static void check_stored(struct fake_store *st, struct part_upload *pu, const unsigned char *data,
			 size_t len, size_t part_size)
{
	size_t n = 0;
	const struct part_upload_part *parts = part_upload_parts(pu, &n);
	ck_assert_uint_eq(n, (len + part_size - 1) / part_size);
	for (size_t i = 0; i < n; i++) {
		size_t pl = i + 1 < n ? part_size : len - i * part_size;
		char want[40];
		md5_etag(data + i * part_size, pl, want);
		ck_assert_uint_eq(parts[i].part_number, i + 1);
		ck_assert_str_eq(parts[i].etag, want);
	}
	size_t got_len = 0;
	unsigned char *got = fake_store_object(st, (unsigned)n, &got_len);
	ck_assert_uint_eq(got_len, len);
	ck_assert(memcmp(got, data, len) == 0);
	free(got);
	ck_assert_uint_eq(part_upload_bytes_stored(pu), len);
}

/* One upload test's store, part URLs and data; cfg starts as the common case (1 MiB
 * parts, fast retries) for the test to adjust before part_upload_new. */
struct fx {
	char *dir;
	struct fake_store st;
	struct urls u;
	unsigned char *data;
	size_t len;
	struct part_upload_config cfg;
	struct part_upload *pu;
};

/* The store with rules (or NULL), n_urls part URLs into it, and len random bytes from
 * seed (none for 0). */
static void fx_start(struct fx *f, const char *const *rules, size_t n_urls, size_t len,
		     unsigned seed)
{
	memset(f, 0, sizeof(*f));
	f->dir = tu_mkdtemp("pu");
	fake_store_start(&f->st, f->dir, NULL, rules);
	f->len = len;
	f->data = len ? random_bytes(len, seed) : NULL;
	f->u = make_urls(f->st.port, n_urls);
	f->cfg = (struct part_upload_config){ .urls = (const char *const *)f->u.v,
					      .n_urls = f->u.n,
					      .part_size = MiB,
					      .retry = FAST_RETRY };
}

/* part_upload_new with f->cfg, then uploads the first len bytes of the data; returns
 * upload_all's result. */
static int fx_upload(struct fx *f, size_t len)
{
	ck_assert_int_eq(part_upload_new(&f->cfg, &f->pu), 0);
	return upload_all(f->pu, f->data, len);
}

static void fx_stop(struct fx *f)
{
	part_upload_free(f->pu);
	free_urls(&f->u);
	free(f->data);
	fake_store_stop(&f->st);
	tu_rmrf(f->dir);
	free(f->dir);
}

START_TEST(multipart_in_order)
{
	struct fx f;
	fx_start(&f, NULL, 9, 5 * MiB + MiB / 2, 1);
	ck_assert_int_eq(fx_upload(&f, f.len), 0);
	check_stored(&f.st, f.pu, f.data, f.len, MiB);
	ck_assert_uint_eq(part_upload_retries(f.pu), 0);
	/* exactly the parts used were sent, with Wings' content type */
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", NULL, NULL), 6);
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "ctype", "application/x-gzip"), 6);
	fx_stop(&f);
}
END_TEST

START_TEST(transient_failures_are_resent_from_memory)
{
	static const char *const rules[] = { "put:1:1:429", "put:2:1:drop", "put:3:1:503",
					     "put:3:2:500", "put:5:1:drop", NULL };
	struct fx f;
	fx_start(&f, rules, 5, 4 * MiB + 1234, 2);
	f.cfg.in_flight = 3;
	ck_assert_int_eq(fx_upload(&f, f.len), 0);
	check_stored(&f.st, f.pu, f.data, f.len, MiB);
	/* every fault was met; curl may itself re-send a part whose reused connection died
	 * (rewinding through the seek callback), so a drop is not always our retry */
	ck_assert_uint_ge(part_upload_retries(f.pu), 3);
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "drop"), 2);
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "429"), 1);
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "503"), 1);
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "500"), 1);
	fx_stop(&f);
}
END_TEST

START_TEST(permanent_failure_fails_fast)
{
	static const char *const rules[] = { "put:3:*:403", NULL };
	struct fx f;
	fx_start(&f, rules, 8, 8 * MiB, 3);
	time_t t0 = time(NULL);
	ck_assert_int_eq(fx_upload(&f, f.len), -EPERM);
	ck_assert_int_le(time(NULL) - t0, 5);
	ck_assert_msg(strstr(part_upload_error(f.pu), "part 3: HTTP 403"), "%s",
		      part_upload_error(f.pu));
	/* a 403 is the store's decision: never re-sent */
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "403"), 1);
	fx_stop(&f);
}
END_TEST

START_TEST(transient_failures_run_out_of_attempts)
{
	static const char *const rules[] = { "put:2:*:503", NULL };
	struct fx f;
	fx_start(&f, rules, 3, 3 * MiB, 4);
	f.cfg.retry = (struct host_retry_policy){ .max_attempts = 2, .base_ms = 5, .max_ms = 10 };
	ck_assert_int_eq(fx_upload(&f, f.len), -EAGAIN);
	ck_assert_msg(strstr(part_upload_error(f.pu), "gave up after 3 attempts"), "%s",
		      part_upload_error(f.pu));
	ck_assert_uint_eq(fake_store_count(&f.st, "PUT", "fault", "503"), 3);
	size_t n = 99;
	part_upload_parts(f.pu, &n);
	ck_assert_uint_eq(n, 0);
	fx_stop(&f);
}
END_TEST

START_TEST(more_parts_than_urls_fails_clearly)
{
	struct fx f;
	fx_start(&f, NULL, 2, 3 * MiB, 5);
	ck_assert_int_eq(fx_upload(&f, f.len), -EFBIG);
	ck_assert_msg(strstr(part_upload_error(f.pu), "more than the 2 parts"), "%s",
		      part_upload_error(f.pu));
	part_upload_free(f.pu);

	/* exactly two parts' worth fits, and leaves no empty third part */
	ck_assert_int_eq(fx_upload(&f, 2 * MiB), 0);
	size_t n = 0;
	part_upload_parts(f.pu, &n);
	ck_assert_uint_eq(n, 2);
	fx_stop(&f);
}
END_TEST

static unsigned dir_entries(const char *path)
{
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	unsigned n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(large_parts_are_spooled)
{
	static const char *const rules[] = { "put:2:1:drop", "put:3:1:500", NULL };
	struct fx f;
	fx_start(&f, rules, 4, 3 * MiB + 77, 6);
	char *spool = NULL;
	ck_assert_int_ge(asprintf(&spool, "%s/spool", f.dir), 0);
	ck_assert_int_eq(mkdir(spool, 0700), 0);
	/* parts above memory_max go to files: here 1 MiB parts over a 256 KiB limit */
	f.cfg.memory_max = 256 << 10;
	f.cfg.spool_dir = spool;
	ck_assert_int_eq(fx_upload(&f, f.len), 0);
	check_stored(&f.st, f.pu, f.data, f.len, MiB);
	/* anonymous files: nothing to see or leave behind */
	ck_assert_uint_eq(dir_entries(spool), 0);
	part_upload_free(f.pu);
	f.pu = NULL;
	ck_assert_uint_eq(dir_entries(spool), 0);
	free(spool);
	fx_stop(&f);
}
END_TEST

START_TEST(cancel_stops_the_writer)
{
	struct fx f;
	fx_start(&f, NULL, 4, 0, 0);
	atomic_int cancel;
	atomic_init(&cancel, 1);
	f.cfg.retry = (struct host_retry_policy){ 0 };
	f.cfg.cancel = &cancel;
	ck_assert_int_eq(part_upload_new(&f.cfg, &f.pu), 0);
	ck_assert_int_eq(part_upload_write(f.pu, "x", 1), -ECANCELED);
	ck_assert_int_eq(part_upload_finish(f.pu), -ECANCELED);
	fx_stop(&f);
}
END_TEST

/* ---- the size bound ---- */

struct counting_sink {
	uint64_t n;
};

static int count_write(void *opaque, const void *buf, size_t len)
{
	(void)buf;
	((struct counting_sink *)opaque)->n += len;
	return 0;
}

static void write_tree(const char *root)
{
	char *p = NULL;
	/* incompressible bulk, an odd size */
	unsigned char *big = random_bytes(3 * MiB + 517, 7);
	ck_assert_int_ge(asprintf(&p, "%s/world/region.bin", root), 0);
	tu_write_file(p, big, 3 * MiB + 517, 0644);
	free(p);
	free(big);
	/* many small incompressible files with names past ustar's 100 bytes (pax) */
	char longdir[200];
	memset(longdir, 'd', 150);
	longdir[150] = 0;
	for (int i = 0; i < 300; i++) {
		unsigned char *b = random_bytes((size_t)(i * 37 % 2000), 100 + (unsigned)i);
		ck_assert_int_ge(asprintf(&p, "%s/%s/f%03d-%s", root, longdir, i,
					  "ünïcödé-name-that-is-fairly-long-too"),
				 0);
		tu_write_file(p, b, (size_t)(i * 37 % 2000), 0600);
		free(p);
		free(b);
	}
	/* symlinks with long targets, empty directories, an empty file */
	char target[300];
	memset(target, 't', 299);
	target[299] = 0;
	for (int i = 0; i < 20; i++) {
		ck_assert_int_ge(asprintf(&p, "%s/links/l%d", root, i), 0);
		if (i == 0) {
			char *d = NULL;
			ck_assert_int_ge(asprintf(&d, "%s/links", root), 0);
			mkdir(d, 0755);
			free(d);
		}
		ck_assert_int_eq(symlink(target, p), 0);
		free(p);
		ck_assert_int_ge(asprintf(&p, "%s/empty/e%d", root, i), 0);
		char *d = NULL;
		ck_assert_int_ge(asprintf(&d, "%s/empty", root), 0);
		mkdir(d, 0755);
		free(d);
		mkdir(p, 0755);
		free(p);
	}
	ck_assert_int_ge(asprintf(&p, "%s/zero", root), 0);
	tu_write_file(p, "", 0, 0644);
	free(p);
}

START_TEST(size_bound_holds_for_incompressible_data)
{
	char *dir = tu_mkdtemp("bound");
	write_tree(dir);
	struct amber_ctx ctx;
	host_ctx_init(&ctx, "s3", "test", "bound", "t");
	struct backup_create_req req = { .root = dir, .ignore = "" };
	uint64_t bound = 0;
	ck_assert_int_eq(backup_compressed_bound(&req, &ctx, &bound), 0);
	enum archive_level levels[] = { ARCHIVE_LEVEL_FAST, ARCHIVE_LEVEL_NONE,
					ARCHIVE_LEVEL_BEST };
	for (size_t i = 0; i < 3; i++) {
		struct counting_sink cs = { 0 };
		struct amber_sink sink = { count_write, &cs };
		struct archive_create_result res;
		req.level = levels[i];
		ck_assert_int_eq(backup_create_sink(&req, &sink, &ctx, &res), 0);
		ck_assert_uint_eq(cs.n, res.bytes_out);
		ck_assert_msg(res.bytes_out <= bound, "level %zu: %llu bytes > bound %llu", i,
			      (unsigned long long)res.bytes_out, (unsigned long long)bound);
		/* an upper bound, not a wild one: the pax allowance (at most 2.5 KiB an
		 * entry here) and stored-block framing are all it adds */
		ck_assert_uint_le(bound - res.bytes_out, 361u * 2560u + 64u * 1024u);
		archive_create_result_clear(&res);
	}
	/* ignore rules shrink the bound as they shrink the archive */
	req.ignore = "world/";
	uint64_t smaller = 0;
	ck_assert_int_eq(backup_compressed_bound(&req, &ctx, &smaller), 0);
	ck_assert_uint_lt(smaller + 3 * MiB, bound);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("part_upload");
	TCase *tc = tcase_create("upload");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, multipart_in_order);
	tcase_add_test(tc, transient_failures_are_resent_from_memory);
	tcase_add_test(tc, permanent_failure_fails_fast);
	tcase_add_test(tc, transient_failures_run_out_of_attempts);
	tcase_add_test(tc, more_parts_than_urls_fails_clearly);
	tcase_add_test(tc, large_parts_are_spooled);
	tcase_add_test(tc, cancel_stops_the_writer);
	tcase_add_test(tc, size_bound_holds_for_incompressible_data);
	suite_add_tcase(s, tc);
	int rc = tu_run_suite(s);
	curl_global_cleanup();
	return rc;
}
