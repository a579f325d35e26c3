/* zstd backups: the zstd_stream compressor at its edges, whole creates judged by the
 * real readers (zstd, GNU tar, bsdtar), restore of what they wrote and of hostile
 * streams, the size bound, and the host's compression/level keys in the configuration. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_config.h"
#include "archive_create.h"
#include "archive_restore.h"
#include "compressor.h"
#include "config.h"
#include "hash.h"
#include "testutil.h"
#include "zstd_stream.h"

#define MiB ((size_t)1 << 20)

/* A tree with what trips tar writers: long and unicode names, links, an empty dir,
 * modes, an empty file, and big files of both kinds of data. */
static void make_tree(const char *root)
{
	char *p;
	unsigned char *rnd = tu_random_bytes(3 * MiB + 77, 5), *txt = tu_text_bytes(5 * MiB + 3, 6);
	char longname[300];
	memset(longname, 'n', 150);
	snprintf(longname + 150, sizeof(longname) - 150, "/%s", "deep-file-name-past-100.txt");
	p = tu_join(root, "world/region/r.0.0.mca");
	tu_write_file(p, rnd, 3 * MiB + 77, 0644);
	free(p);
	p = tu_join(root, "logs/latest.log");
	tu_write_file(p, txt, 5 * MiB + 3, 0640);
	free(p);
	p = tu_join(root, longname);
	tu_write_file(p, "x\n", 2, 0600);
	free(p);
	p = tu_join(root, "plugins/\xc3\xa9t\xc3\xa9.yml");
	tu_write_file(p, "a: b\n", 5, 0644);
	free(p);
	p = tu_join(root, "empty.txt");
	tu_write_file(p, "", 0, 0644);
	free(p);
	ck_assert_int_eq(tu_sh("mkdir -p '%s/cache/empty' && ln -s logs/latest.log '%s/current' "
			       "&& chmod 0755 '%s/cache'", root, root, root), 0);
	free(rnd);
	free(txt);
}

static int create_to(const char *root, const char *out, enum archive_compression comp,
		     enum archive_level level, unsigned threads, uint64_t max_bytes,
		     struct archive_create_result *res)
{
	struct tu_file_sink s = { .fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
						0644) : -1 };
	struct archive_create_opts o = { .root = root, .compression = comp, .level = level,
					 .threads = threads, .max_bytes = max_bytes };
	struct amber_sink sink = { tu_file_sink_write, &s };
	int r = archive_create(&o, &sink, res);
	if (s.fd >= 0)
		close(s.fd);
	ck_assert_uint_eq(res->bytes_out, s.written);
	return r;
}

static void compare(const char *a, const char *b)
{
	ck_assert_msg(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s' > /dev/null",
			    tu_env("AMBER_SOURCE_DIR", "."), a, b) == 0,
		      "%s differs from %s", b, a);
}

static void check_hashes(const char *archive, const struct archive_create_result *res)
{
	tu_check_digests(archive, res->sha1, res->sha256);
}

struct fd_source {
	int fd;
};

static int64_t fd_read(void *opaque, void *buf, size_t cap)
{
	struct fd_source *s = opaque;
	ssize_t n = read(s->fd, buf, cap);
	return n < 0 ? -errno : n;
}

static int restore_from(const char *archive, const char *root, bool truncate,
			struct archive_restore_result *res)
{
	struct fd_source s = { open(archive, O_RDONLY | O_CLOEXEC) };
	ck_assert_int_ge(s.fd, 0);
	struct amber_source src = { fd_read, &s };
	struct archive_restore_opts o = { .root = root, .truncate = truncate, .uid = -1,
					  .gid = -1 };
	int r = archive_restore(&o, &src, res);
	close(s.fd);
	return r;
}

/* --- the compressor ------------------------------------------------------------------- */

static void zstd_round_trip(const char *work, enum zstd_stream_level level, unsigned threads,
			    const unsigned char *data, size_t len)
{
	char *zp = tu_join(work, "x.zst"), *raw = tu_join(work, "x.raw");
	tu_write_file(raw, data, len, 0644);
	struct tu_file_sink s = { .fd = open(zp, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
	struct zstd_stream_opts o = { .level = level, .threads = threads };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct zstd_stream *zs = NULL;
	ck_assert_int_eq(zstd_stream_new(&o, &sink, &zs), 0);
	/* Writes of every size: 1 byte, tar-header-like, past the gathering buffer. */
	for (size_t off = 0, step = 1; off < len; step = step > 600000 ? 7 : step * 3 + 1) {
		size_t n = len - off < step ? len - off : step;
		ck_assert_int_eq(zstd_stream_write(zs, data + off, n), 0);
		off += n;
	}
	ck_assert_int_eq(zstd_stream_finish(zs), 0);
	ck_assert_uint_eq(zstd_stream_bytes_out(zs), s.written);
	ck_assert_uint_eq(zstd_stream_bytes_in(zs), len);
	ck_assert_uint_le(s.written, zstd_stream_bound(len));
	ck_assert_int_eq(zstd_stream_finish(zs), -EINVAL);
	zstd_stream_free(zs);
	close(s.fd);
	/* One frame whatever the worker count: a single stream to any reader. */
	ck_assert_msg(tu_sh("zstd -q -t '%s' && zstd -q -dc '%s' | cmp -s - '%s' && "
			    "zstd -lv '%s' 2>/dev/null | grep -q 'Zstandard Frames: 1'",
			    zp, zp, raw, zp) == 0,
		      "level %d threads %u len %zu: bad zstd", (int)level, threads, len);
	free(raw);
	free(zp);
}

START_TEST(zstd_stream_edges)
{
	static const enum zstd_stream_level levels[] = { ZSTD_STREAM_RAW, ZSTD_STREAM_FAST,
							 ZSTD_STREAM_BEST };
	const size_t block = 128 << 10;
	const size_t lens[] = { 0, 1, block - 1, block, block + 1, 9 * MiB + 12345 };
	char *work = tu_mkdtemp("zst");
	unsigned char *rnd = tu_random_bytes(9 * MiB + 12345, 11);
	unsigned char *txt = tu_text_bytes(9 * MiB + 12345, 12);

	for (size_t l = 0; l < 3; l++)
		for (unsigned threads = 1; threads <= 3; threads += 2)
			for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
				zstd_round_trip(work, levels[l], threads, txt, lens[i]);
				zstd_round_trip(work, levels[l], threads, rnd, lens[i]);
			}
	/* The bound never falls below what the formula promises for raw blocks. */
	for (uint64_t n = 0; n < 4 * MiB; n = n * 2 + 1)
		ck_assert_uint_ge(zstd_stream_bound(n), n + 3 * (n / block + 1) + 6);
	free(txt);
	free(rnd);
	tu_rmrf(work);
	free(work);
}
END_TEST

/* --- whole backups ---------------------------------------------------------------------- */

START_TEST(zstd_archives_pass_every_reader_and_restore)
{
	static const enum archive_level levels[] = { ARCHIVE_LEVEL_NONE, ARCHIVE_LEVEL_FAST,
						     ARCHIVE_LEVEL_BEST };
	char *work = tu_mkdtemp("zcreate");
	char *src = tu_join(work, "src"), *archive = tu_join(work, "out.tar.zst");
	char *dst = tu_join(work, "dst");
	make_tree(src);
	uint64_t sizes[3];

	for (size_t l = 0; l < 3; l++) {
		for (unsigned threads = 1; threads <= 2; threads++) {
			struct archive_create_result res;
			ck_assert_int_eq(create_to(src, archive, ARCHIVE_COMPRESSION_ZSTD, levels[l],
						   threads, 0, &res), 0);
			ck_assert_uint_eq(report_total(&res.report), 0);
			sizes[l] = res.bytes_out;
			check_hashes(archive, &res);
			ck_assert_int_eq(tu_sh("zstd -q -t '%s'", archive), 0);
			ck_assert_int_eq(tu_sh("zstd -lv '%s' 2>/dev/null | "
					       "grep -q 'Zstandard Frames: 1'", archive), 0);
			ck_assert_int_eq(tu_sh("test \"$(tar -I zstd -tf '%s' | wc -l)\" = %llu",
					       archive, (unsigned long long)(res.files + res.dirs +
									    res.symlinks)), 0);
			tu_rmrf(dst);
			ck_assert_int_eq(tu_sh("mkdir '%s' && tar --zstd -xpf '%s' -C '%s'", dst,
					       archive, dst), 0);
			compare(src, dst);
			tu_rmrf(dst);
			ck_assert_int_eq(tu_sh("mkdir '%s' && bsdtar -xpf '%s' -C '%s'", dst,
					       archive, dst), 0);
			compare(src, dst);
			tu_rmrf(dst);
			struct archive_restore_result rr;
			ck_assert_int_eq(restore_from(archive, dst, false, &rr), 0);
			ck_assert_uint_eq(rr.refused, 0);
			compare(src, dst);
			archive_restore_result_clear(&rr);
			archive_create_result_clear(&res);
		}
	}
	/* Raw blocks are bigger than level 1, which is no smaller than best. */
	ck_assert_uint_gt(sizes[0], sizes[1]);
	ck_assert_uint_ge(sizes[1], sizes[2]);
	tu_rmrf(work);
	free(dst);
	free(archive);
	free(src);
	free(work);
}
END_TEST

START_TEST(zstd_bound_covers_incompressible_trees)
{
	char *work = tu_mkdtemp("zbound");
	char *src = tu_join(work, "src");
	unsigned char *rnd = tu_random_bytes(6 * MiB + 5, 9);
	for (int i = 0; i < 30; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "src/f%02d", i);
		char *p = tu_join(work, rel);
		tu_write_file(p, rnd + i * 1000, (size_t)i * 7919 + 1, 0644);
		free(p);
	}
	char *p = tu_join(src, "big");
	tu_write_file(p, rnd, 6 * MiB + 5, 0644);
	free(p);
	free(rnd);
	uint64_t tar = 0, entries = 0;
	ck_assert_int_eq(archive_tar_bound(src, NULL, &tar, &entries), 0);
	static const enum archive_level levels[] = { ARCHIVE_LEVEL_NONE, ARCHIVE_LEVEL_FAST,
						     ARCHIVE_LEVEL_BEST };
	for (size_t l = 0; l < 3; l++) {
		struct archive_create_result res;
		ck_assert_int_eq(create_to(src, NULL, ARCHIVE_COMPRESSION_ZSTD, levels[l], 2, 0,
					   &res), 0);
		ck_assert_uint_le(res.bytes_out, archive_compressed_bound(ARCHIVE_COMPRESSION_ZSTD,
									  tar));
		archive_create_result_clear(&res);
	}
	tu_rmrf(work);
	free(src);
	free(work);
}
END_TEST

START_TEST(zstd_max_bytes_and_sink_failure_stop_the_run)
{
	char *work = tu_mkdtemp("zlimit");
	char *src = tu_join(work, "src");
	make_tree(src);
	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, NULL, ARCHIVE_COMPRESSION_ZSTD, ARCHIVE_LEVEL_FAST, 2, 0,
				   &res), 0);
	uint64_t whole = res.bytes_out;
	archive_create_result_clear(&res);

	ck_assert_int_eq(create_to(src, NULL, ARCHIVE_COMPRESSION_ZSTD, ARCHIVE_LEVEL_FAST, 2,
				   whole, &res), 0);
	ck_assert(!res.too_big);
	archive_create_result_clear(&res);
	const uint64_t limits[] = { whole - 1, whole / 2, 4096, 1 };
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		ck_assert_int_eq(create_to(src, NULL, ARCHIVE_COMPRESSION_ZSTD, ARCHIVE_LEVEL_FAST,
					   2, limits[i], &res), -EFBIG);
		ck_assert(res.too_big);
		ck_assert_uint_le(res.bytes_out, limits[i]);
		archive_create_result_clear(&res);
	}
	/* The sink's own error, at the start, in the middle and at the very end. */
	const uint64_t fail_at[] = { 0, whole / 2, whole - 1 };
	for (size_t i = 0; i < 3; i++) {
		for (size_t l = 0; l < 2; l++) {
			struct tu_file_sink s = { .fd = -1, .fail_after = fail_at[i],
					       .fail_code = -ENOSPC };
			struct archive_create_opts o = {
				.root = src, .compression = ARCHIVE_COMPRESSION_ZSTD, .threads = 2,
				.level = l ? ARCHIVE_LEVEL_NONE : ARCHIVE_LEVEL_FAST
			};
			struct amber_sink sink = { tu_file_sink_write, &s };
			ck_assert_int_eq(archive_create(&o, &sink, &res), -ENOSPC);
			ck_assert_uint_le(s.written, fail_at[i]);
			ck_assert_uint_eq(res.bytes_out, s.written);
			archive_create_result_clear(&res);
		}
	}
	tu_rmrf(work);
	free(src);
	free(work);
}
END_TEST

/* --- restore of what others wrote, and of damage ---------------------------------------- */

START_TEST(restore_reads_plain_tar_and_tools_zstd)
{
	char *work = tu_mkdtemp("zrestore");
	char *src = tu_join(work, "src"), *dst = tu_join(work, "dst");
	make_tree(src);
	static const char *const makers[] = { "tar -cf '%s/a' -C '%s' .",
					      "tar -I 'zstd -19 -T2' -cf '%s/a' -C '%s' .",
					      "tar -cf - -C '%s' . | zstd -q -3 --no-check > '%s/a'" };
	for (size_t i = 0; i < 3; i++) {
		int st = i == 2 ? tu_sh(makers[i], src, work) : tu_sh(makers[i], work, src);
		ck_assert_int_eq(st, 0);
		char *a = tu_join(work, "a");
		struct archive_restore_result rr;
		tu_rmrf(dst);
		ck_assert_int_eq(restore_from(a, dst, false, &rr), 0);
		ck_assert_uint_eq(rr.refused, 0);
		compare(src, dst);
		archive_restore_result_clear(&rr);
		free(a);
	}
	tu_rmrf(work);
	free(dst);
	free(src);
	free(work);
}
END_TEST

/* Damaged zstd: a clear -EBADMSG, the target's own files untouched (truncate waits for
 * a parsed first entry), and no half-written file left behind. */
START_TEST(damaged_zstd_is_refused_and_loses_nothing)
{
	char *work = tu_mkdtemp("zdamage");
	char *src = tu_join(work, "src"), *dst = tu_join(work, "dst");
	char *good = tu_join(work, "good.zst"), *raw = tu_join(work, "raw.zst");
	char *bad = tu_join(work, "bad.zst");
	make_tree(src);
	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, good, ARCHIVE_COMPRESSION_ZSTD, ARCHIVE_LEVEL_FAST, 2, 0,
				   &res), 0);
	uint64_t good_len = res.bytes_out;
	archive_create_result_clear(&res);
	ck_assert_int_eq(create_to(src, raw, ARCHIVE_COMPRESSION_ZSTD, ARCHIVE_LEVEL_NONE, 2, 0,
				   &res), 0);
	uint64_t raw_len = res.bytes_out;
	archive_create_result_clear(&res);

	char cmd[8][1024];
	snprintf(cmd[0], sizeof(cmd[0]), "printf '\\050\\265\\057\\375' > '%s' && "
		 "head -c 5000 /dev/urandom >> '%s'", bad, bad);
	snprintf(cmd[1], sizeof(cmd[1]), "printf '\\050\\265\\057\\375' > '%s'", bad);
	snprintf(cmd[2], sizeof(cmd[2]), "head -c 2 '%s' > '%s'", good, bad);
	/* cut in the middle, the checksum cut off, raw blocks cut, a flipped byte */
	snprintf(cmd[3], sizeof(cmd[3]), "head -c %llu '%s' > '%s'",
		 (unsigned long long)good_len / 2, good, bad);
	snprintf(cmd[4], sizeof(cmd[4]), "head -c %llu '%s' > '%s'",
		 (unsigned long long)good_len - 2, good, bad);
	snprintf(cmd[5], sizeof(cmd[5]), "head -c %llu '%s' > '%s'",
		 (unsigned long long)raw_len - 1000, raw, bad);
	snprintf(cmd[6], sizeof(cmd[6]), "cp '%s' '%s' && printf 'X' | dd of='%s' bs=1 "
		 "seek=%llu conv=notrunc 2>/dev/null", good, bad, bad,
		 (unsigned long long)good_len * 3 / 4);
	/* A window of 128 MiB: more than a restore will allocate. */
	snprintf(cmd[7], sizeof(cmd[7]), "tar -cf - -C '%s' . | zstd -q --long=27 > '%s'", src,
		 bad);
	/* Those failing before any entry leave the old files all there. */
	for (size_t i = 0; i < 8; i++) {
		ck_assert_int_eq(tu_sh("%s", cmd[i]), 0);
		tu_rmrf(dst);
		char *keep = tu_join(dst, "keep.txt");
		tu_write_file(keep, "mine\n", 5, 0644);
		struct archive_restore_result rr;
		int r = restore_from(bad, dst, true, &rr);
		ck_assert_msg(r == -EBADMSG, "case %zu: %d", i, r);
		if (i < 3 || i == 7)
			ck_assert_int_eq(access(keep, F_OK), 0);
		/* Whatever was written is whole: no file shorter than its source. */
		ck_assert_int_eq(tu_sh("cd '%s' && for f in $(find . -type f); do "
				       "[ ! -f '%s'/\"$f\" ] || [ $(stat -c %%s \"$f\") -eq "
				       "$(stat -c %%s '%s'/\"$f\") ] || exit 1; done", dst, src, src),
				 0);
		archive_restore_result_clear(&rr);
		free(keep);
	}
	tu_rmrf(work);
	free(bad);
	free(raw);
	free(good);
	free(dst);
	free(src);
	free(work);
}
END_TEST

/* --- configuration ---------------------------------------------------------------------- */

START_TEST(config_compression_and_level_are_host_keys)
{
	static const char good[] = "[adapters.a]\ntype = \"wings\"\npath = \"/x\"\n"
				   "compression = \"zstd\"\nlevel = \"best\"\n"
				   "[adapters.b]\ntype = \"wings\"\n";
	struct config *c = NULL;
	char *err = NULL;
	ck_assert_int_eq(config_load_text(good, strlen(good), "t.toml", &c, &err), 0);
	ck_assert_uint_eq(c->n_instances, 2);
	ck_assert_int_eq(c->instances[0].compression, ARCHIVE_COMPRESSION_ZSTD);
	ck_assert_int_eq(c->instances[0].level, ARCHIVE_LEVEL_BEST);
	ck_assert_int_eq(c->instances[1].compression, ARCHIVE_COMPRESSION_GZIP);
	ck_assert_int_eq(c->instances[1].level, ARCHIVE_LEVEL_FAST);
	/* The adapter's schema (only "path" here) never sees them. */
	static const amber_config_field schema[] = {
		{ "path", AMBER_CFG_STRING, AMBER_CFG_REQUIRED, NULL, "where" }, { 0 }
	};
	amber_config *ac = NULL;
	ck_assert_int_eq(adapter_config_new("adapters.a", "a", schema, c->instances[0].table,
					    c->file, config_instance_host_keys, &ac, &err), 0);
	adapter_config_free(ac);
	config_free(c);

	static const char *const bad[][2] = {
		{ "[adapters.a]\npath = \"/x\"\ncompression = \"xz\"\n",
		  "t.toml:3: adapters.a.compression: 'xz' is not one of \"gzip\", \"zstd\"" },
		{ "[adapters.a]\ncompression = true\n",
		  "t.toml:2: adapters.a.compression: must be a string (\"gzip\", \"zstd\")" },
		{ "[adapters.a]\n\nlevel = \"fastest\"\n",
		  "t.toml:3: adapters.a.level: 'fastest' is not one of \"none\", \"fast\", "
		  "\"best\"" },
		{ "[adapters.a]\nlevel = 1\n", "t.toml:2: adapters.a.level: must be a string" },
		{ "[adapters.a]\ncompression = \"ZSTD\"\n", "'ZSTD' is not one of" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = NULL;
		err = NULL;
		ck_assert_int_eq(config_load_text(bad[i][0], strlen(bad[i][0]), "t.toml", &c, &err),
				 -EINVAL);
		ck_assert_msg(err && strstr(err, bad[i][1]), "got: %s", err ? err : "(null)");
		free(err);
	}
}
END_TEST

START_TEST(names_and_sniffing)
{
	enum archive_compression comp;
	enum archive_level level;
	ck_assert_int_eq(compression_parse("zstd", &comp), 0);
	ck_assert_int_eq(comp, ARCHIVE_COMPRESSION_ZSTD);
	ck_assert_int_eq(compression_parse("gz", &comp), -EINVAL);
	ck_assert_int_eq(compression_level_parse("none", &level), 0);
	ck_assert_int_eq(level, ARCHIVE_LEVEL_NONE);
	ck_assert_str_eq(compression_name(ARCHIVE_COMPRESSION_GZIP), "gzip");
	ck_assert_str_eq(compression_level_name(ARCHIVE_LEVEL_BEST), "best");
	ck_assert_str_eq(compression_media_type(ARCHIVE_COMPRESSION_ZSTD), "application/zstd");
	ck_assert_int_eq(stored_format_sniff("\x28\xb5\x2f\xfd", 4), STORED_ZSTD);
	ck_assert_int_eq(stored_format_sniff("\x1f\x8b\x08\x00", 4), STORED_GZIP);
	ck_assert_int_eq(stored_format_sniff("abcd", 4), STORED_TAR);
	ck_assert_int_eq(stored_format_sniff("\x28\xb5", 2), STORED_UNKNOWN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("zstd");
	TCase *tc = tcase_create("zstd");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, zstd_stream_edges);
	tcase_add_test(tc, zstd_archives_pass_every_reader_and_restore);
	tcase_add_test(tc, zstd_bound_covers_incompressible_trees);
	tcase_add_test(tc, zstd_max_bytes_and_sink_failure_stop_the_run);
	tcase_add_test(tc, restore_reads_plain_tar_and_tools_zstd);
	tcase_add_test(tc, damaged_zstd_is_refused_and_loses_nothing);
	tcase_add_test(tc, config_compression_and_level_are_host_keys);
	tcase_add_test(tc, names_and_sniffing);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
