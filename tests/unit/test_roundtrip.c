/* The archive engine's own round trip: a tricky tree archived by archive_create and
 * restored by archive_restore comes back entry for entry, and the archive in between is
 * read by every independent reader, Go's included. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "archive_create.h"
#include "archive_restore.h"
#include "testutil.h"

static int file_sink(void *opaque, const void *buf, size_t len)
{
	return fwrite(buf, 1, len, opaque) == len ? 0 : -EIO;
}

static int64_t file_source(void *opaque, void *buf, size_t cap)
{
	size_t n = fread(buf, 1, cap, opaque);
	return n ? (int64_t)n : (ferror((FILE *)opaque) ? -EIO : 0);
}

static void set_mtime(const char *path, time_t t)
{
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };
	ck_assert_int_eq(lutimes(path, tv), 0);
}

/* Empty dirs, symlinks (relative, dangling, absolute target kept as text), unicode,
 * a 255-byte name, a path over 300 bytes, 0-byte and multi-MiB files, odd modes and
 * mtimes. */
static void make_tricky_tree(const char *root)
{
	char p[1024], name255[256];
	mkdir(root, 0755);
	snprintf(p, sizeof(p), "%s/empty/nested-empty", root);
	ck_assert_int_eq(tu_sh("mkdir -p '%s'", p), 0);
	snprintf(p, sizeof(p), "%s/zero", root);
	tu_write_file(p, "", 0, 0644);
	size_t big = 5u << 20;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 2654435761u >> (i % 7 == 0 ? 3 : 24));
	snprintf(p, sizeof(p), "%s/world/region/r.0.0.mca", root);
	tu_write_file(p, data, big, 0600);
	snprintf(p, sizeof(p), "%s/plugins/random.jar", root);
	ck_assert_int_eq(tu_sh("mkdir -p '%s/plugins' && head -c 3145728 /dev/urandom > '%s'",
			       root, p), 0);
	free(data);
	snprintf(p, sizeof(p), "%s/config/\xc3\xbc" "berwelt \xe2\x9c\x93 \xf0\x9f\x8e\xae.yml", root);
	tu_write_file(p, "spawn: 0\n", 9, 0444);
	memset(name255, 'n', 255);
	name255[255] = 0;
	snprintf(p, sizeof(p), "%s/%s", root, name255);
	tu_write_file(p, "long name\n", 10, 0640);
	snprintf(p, sizeof(p), "%s/deep/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/"
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc/"
		 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/"
		 "file-in-a-path-over-300-bytes.txt", root);
	ck_assert_uint_gt(strlen(p) - strlen(root), 300);
	tu_write_file(p, "deep\n", 5, 0644);
	snprintf(p, sizeof(p), "%s/start.sh", root);
	tu_write_file(p, "#!/bin/sh\n", 10, 0755);
	snprintf(p, sizeof(p), "%s/current-world", root);
	ck_assert_int_eq(symlink("world", p), 0);
	snprintf(p, sizeof(p), "%s/dangling", root);
	ck_assert_int_eq(symlink("does/not/exist", p), 0);
	snprintf(p, sizeof(p), "%s/world/region/up", root);
	ck_assert_int_eq(symlink("../../config", p), 0);
	/* mtimes last, deepest first, so creating children does not move them */
	ck_assert_int_eq(tu_sh("cd '%s' && find . -depth -mindepth 1 -print0 | "
			       "xargs -0 touch -h -d '2024-02-29 12:34:56'", root), 0);
	snprintf(p, sizeof(p), "%s/zero", root);
	set_mtime(p, 86400 * 365);
}

START_TEST(tricky_tree_round_trips_through_create_and_restore)
{
	char *dir = tu_mkdtemp("roundtrip");
	char src[512], dst[512], arc[512];
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	snprintf(arc, sizeof(arc), "%s/backup.tar.gz", dir);
	make_tricky_tree(src);

	FILE *out = fopen(arc, "wb");
	struct archive_create_opts co = { .root = src, .threads = 2 };
	struct amber_sink sink = { file_sink, out };
	struct archive_create_result cr = { 0 };
	ck_assert_int_eq(archive_create(&co, &sink, &cr), 0);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_uint_eq(cr.report.n, 0);
	ck_assert_uint_eq(cr.symlinks, 3);
	archive_create_result_clear(&cr);

	/* Every reader accepts what we wrote. */
	ck_assert_int_eq(tu_sh("gzip -t '%s' && pigz -t '%s'", arc, arc), 0);
	ck_assert_int_eq(tu_sh("tar -tzf '%s' >/dev/null && bsdtar -tf '%s' >/dev/null", arc, arc), 0);
	ck_assert_int_eq(tu_sh("python3 -c 'import tarfile,sys; "
			       "[m for m in tarfile.open(sys.argv[1], \"r|gz\")]' '%s'", arc), 0);
	ck_assert_int_eq(tu_sh("cd '%s' && GOCACHE='%s/gocache' GOPATH='%s/gopath' GO111MODULE=off "
			       "go run '%s/tests/tools/gzcheck.go' '%s'",
			       dir, dir, dir, tu_env("AMBER_SOURCE_DIR", "."), arc), 0);

	FILE *in = fopen(arc, "rb");
	struct archive_restore_opts ro = { .root = dst, .uid = -1, .gid = -1 };
	struct amber_source source = { file_source, in };
	struct archive_restore_result rr = { 0 };
	ck_assert_int_eq(archive_restore(&ro, &source, &rr), 0);
	fclose(in);
	ck_assert_uint_eq(rr.refused, 0);
	archive_restore_result_clear(&rr);

	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s'",
			       tu_env("AMBER_SOURCE_DIR", "."), src, dst), 0);
	/* Symlinks came back as links, never followed. */
	char link[600], target[64] = { 0 };
	snprintf(link, sizeof(link), "%s/dangling", dst);
	ck_assert_int_gt(readlink(link, target, sizeof(target) - 1), 0);
	ck_assert_str_eq(target, "does/not/exist");
	tu_rmrf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("roundtrip");
	TCase *tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, tricky_tree_round_trips_through_create_and_restore);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
