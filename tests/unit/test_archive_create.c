/* archive_create: the archives it writes are judged by the real tools (gzip, pigz, GNU tar,
 * bsdtar, Python's streaming tarfile), and what GNU tar extracts is compared file by file
 * with the tree that was archived. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "archive_create.h"
#include "gzip_parallel.h"
#include "hash.h"
#include "ignore.h"
#include "testutil.h"

#define MiB ((size_t)1 << 20)

/* --- data and trees ------------------------------------------------------------------ */

static void put(const char *root, const char *rel, const void *data, size_t len, unsigned mode)
{
	char *p = tu_join(root, rel);
	tu_write_file(p, data, len, mode);
	free(p);
}

static void put_dir(const char *root, const char *rel, unsigned mode)
{
	char *p = tu_join(root, rel);
	ck_assert_int_eq(tu_sh("mkdir -p '%s'", p), 0);
	ck_assert_int_eq(chmod(p, mode), 0);
	free(p);
}

static void put_link(const char *root, const char *rel, const char *target)
{
	char *p = tu_join(root, rel);
	ck_assert_msg(symlink(target, p) == 0, "symlink %s: %s", p, strerror(errno));
	free(p);
}

/* Distinct whole-second mtimes for everything, directories last (post-order), so the
 * comparison can check them all. */
static int stamp_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	uint64_t h = 1469598103934665603ULL;
	for (const char *c = p; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	struct timespec ts[2] = { { (time_t)(1500000000 + h % 100000000), 0 },
				  { (time_t)(1500000000 + h % 100000000), 0 } };
	if (ftw->level > 0)
		utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static void stamp_mtimes(const char *root)
{
	ck_assert_int_eq(nftw(root, stamp_one, 32, FTW_DEPTH | FTW_PHYS), 0);
}

/* Everything a game server directory can throw at a tar writer, minus special files. */
static void make_tricky_tree(const char *root)
{
	static const char hello[] = "hello, world\n";
	char name[256], deep[1024];

	put_dir(root, "empty", 0755);
	put_dir(root, "a/b/c/empty2", 0755);
	put(root, "a/b/c/file.txt", hello, sizeof(hello) - 1, 0644);
	put(root, "a/zero", "", 0, 0644);
	put(root, "zero", "", 0, 0600);
	put(root, "mode600", "secret\n", 7, 0600);
	put(root, "mode755.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	put(root, "mode444", "read only\n", 10, 0444);
	put_dir(root, "private", 0700);
	put(root, "private/key", "k\n", 2, 0600);
	put(root, "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt",
	    "unicode\n", 8, 0644);
	put(root, "emoji_\xf0\x9f\x98\x80.bin", "emoji\n", 6, 0644);
	put(root, "raw\xff\xfe-not-utf8.bin", "raw\n", 4, 0644);

	memset(name, 'n', 250);
	memcpy(name + 250, ".txt", 5); /* 254 bytes: about NAME_MAX */
	put(root, name, "long name\n", 10, 0644);
	size_t o = (size_t)snprintf(deep, sizeof(deep), "deep");
	for (int i = 0; i < 6; i++) {
		deep[o++] = '/';
		for (int j = 0; j < 60; j++)
			deep[o++] = (char)('a' + (i + j) % 26);
	}
	snprintf(deep + o, sizeof(deep) - o, "/leaf-%s.txt", "beyond-255-bytes");
	put(root, deep, "deep\n", 5, 0644);

	unsigned char *rnd = tu_random_bytes(3 * MiB + 123, 7);
	put(root, "data/random.bin", rnd, 3 * MiB + 123, 0644);
	free(rnd);
	unsigned char *txt = tu_text_bytes(5 * MiB + 77, 9);
	put(root, "data/logs/latest.log", txt, 5 * MiB + 77, 0644);
	free(txt);

	put_link(root, "rel_link", "a/b/c/file.txt");
	put_link(root, "dangling", "does/not/exist");
	put_link(root, "abs_link", "/etc/hostname");
	put_link(root, "dir_link", "a");
	put_link(root, "a/b/up_link", "../../zero");
	char *src = tu_join(root, "a/b/c/file.txt"), *dst = tu_join(root, "hard.txt");
	ck_assert_int_eq(link(src, dst), 0);
	free(src);
	free(dst);
	stamp_mtimes(root);
}

/* --- sinks and options --------------------------------------------------------------- */

static int create_to(const char *root, const char *out, enum archive_level level,
		     unsigned threads, const struct ignore_rules *ignore,
		     struct archive_create_result *res)
{
	struct tu_file_sink s = { .fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) };
	ck_assert_int_ge(s.fd, 0);
	struct archive_create_opts o = {
		.root = root, .ignore = ignore, .level = level, .threads = threads
	};
	struct amber_sink sink = { tu_file_sink_write, &s };
	int r = archive_create(&o, &sink, res);
	close(s.fd);
	if (r == 0)
		ck_assert_uint_eq(res->bytes_out, s.written);
	return r;
}

static bool report_has(const struct report *r, const char *path, const char *needle)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->entries[i].path, path) && strstr(r->entries[i].reason, needle))
			return true;
	return false;
}

static void dump_report(const struct report *r)
{
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "  report: %s: %s\n", r->entries[i].path, r->entries[i].reason);
}

/* --- judging an archive with the real tools ------------------------------------------ */

static const char py_stream_read[] =
	"import sys, tarfile\n"
	"n = 0\n"
	"with tarfile.open(sys.argv[1], mode='r|gz') as t:\n"
	"    for m in t:\n"
	"        if m.isfile():\n"
	"            f = t.extractfile(m)\n"
	"            while f.read(1 << 20):\n"
	"                pass\n"
	"        n += 1\n"
	"print(n)\n";

/* Compares two trees (bytes paths, symlinks not followed): type, mode, mtime (whole
 * seconds; not for symlinks), content, symlink target. argv[3]: paths to leave out. */
static const char py_compare[] =
	"import os, sys, stat, hashlib\n"
	"def scan(root, skip):\n"
	"    out = {}\n"
	"    for d, dirs, files in os.walk(root):\n"
	"        for n in dirs + files:\n"
	"            p = os.path.join(d, n)\n"
	"            rel = os.path.relpath(p, root)\n"
	"            if rel in skip:\n"
	"                continue\n"
	"            st = os.lstat(p)\n"
	"            m, t = stat.S_IMODE(st.st_mode), int(st.st_mtime)\n"
	"            if stat.S_ISREG(st.st_mode):\n"
	"                h = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
	"                out[rel] = ('file', m, t, st.st_size, h)\n"
	"            elif stat.S_ISDIR(st.st_mode):\n"
	"                out[rel] = ('dir', m, t)\n"
	"            elif stat.S_ISLNK(st.st_mode):\n"
	"                out[rel] = ('link', os.readlink(p))\n"
	"            else:\n"
	"                out[rel] = ('special',)\n"
	"    return out\n"
	"skip = set(os.fsencode(s) for s in sys.argv[3].split(',') if s) if len(sys.argv) > 3 "
	"else set()\n"
	"a = scan(os.fsencode(sys.argv[1]), skip)\n"
	"b = scan(os.fsencode(sys.argv[2]), skip)\n"
	"bad = 0\n"
	"for k in sorted(set(a) | set(b)):\n"
	"    if a.get(k) != b.get(k):\n"
	"        print('DIFF', k, a.get(k), b.get(k))\n"
	"        bad += 1\n"
	"print('compared', len(a), 'entries,', bad, 'differences')\n"
	"sys.exit(1 if bad or not a else 0)\n";

static char *write_script(const char *dir, const char *name, const char *text)
{
	char *p = tu_join(dir, name);
	tu_write_file(p, text, strlen(text), 0644);
	return p;
}

/* Every reader accepts it; returns the member count Python's streaming reader saw. */
static long check_readers(const char *work, const char *archive)
{
	ck_assert_int_eq(tu_sh("gzip -t '%s'", archive), 0);
	ck_assert_int_eq(tu_sh("pigz -t '%s'", archive), 0);
	/* GNU tar does not know pax's hdrcharset (the non-UTF-8 name) and says so. */
	ck_assert_int_eq(tu_sh("tar -tzf '%s' > /dev/null 2> '%s.err'; rc=$?; "
			       "grep -v hdrcharset '%s.err' >&2; exit $rc", archive, archive, archive),
			 0);
	ck_assert_int_eq(tu_sh("bsdtar -tf '%s' > /dev/null", archive), 0);
	char *py = write_script(work, "stream_read.py", py_stream_read);
	int st = -1;
	char *out = tu_sh_out(&st, "python3 '%s' '%s'", py, archive);
	ck_assert_msg(st == 0, "python r|gz failed: %s", out);
	long n = strtol(out, NULL, 10);
	free(out);
	free(py);
	return n;
}

/* GNU tar extracts it into a scratch dir, which must match the source tree. */
static void check_extract_matches(const char *work, const char *archive, const char *src,
				  const char *skip)
{
	char *dst = tu_join(work, "extracted");
	tu_rmrf(dst);
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	ck_assert_int_eq(tu_sh("tar --numeric-owner -xpzf '%s' -C '%s' 2> '%s.err'; rc=$?; "
			       "grep -v hdrcharset '%s.err' >&2; exit $rc",
			       archive, dst, dst, dst), 0);
	char *py = write_script(work, "compare.py", py_compare);
	ck_assert_msg(tu_sh("python3 '%s' '%s' '%s' '%s'", py, src, dst, skip ? skip : "") == 0,
		      "extracted tree differs from the source");
	free(py);
	tu_rmrf(dst);
	free(dst);
}

static void check_hashes(const char *archive, const struct archive_create_result *res)
{
	tu_check_digests(archive, res->sha1, res->sha256);
	struct stat st;
	ck_assert_int_eq(stat(archive, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, res->bytes_out);
}

/* --- tests --------------------------------------------------------------------------- */

/* The compressor on its own, at the edges: empty input, exactly one block, one byte past
 * it, many blocks, writes of every size, and the size bound whatever the data. */
static void gzip_round_trip(const char *work, enum gzip_parallel_level level, unsigned threads,
			    const unsigned char *data, size_t len)
{
	const size_t bs = 64 << 10;
	char *gz_path = tu_join(work, "x.gz"), *raw = tu_join(work, "x.raw");
	tu_write_file(raw, data, len, 0644);
	struct tu_file_sink s = { .fd = open(gz_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
	struct gzip_parallel_opts o = { .level = level, .threads = threads, .block_size = bs };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct gzip_parallel *gz = NULL;
	ck_assert_int_eq(gzip_parallel_new(&o, &sink, &gz), 0);
	for (size_t off = 0, step = 1; off < len; step = step > 200000 ? 7 : step * 3 + 1) {
		size_t n = len - off < step ? len - off : step;
		ck_assert_int_eq(gzip_parallel_write(gz, data + off, n), 0);
		off += n;
	}
	ck_assert_int_eq(gzip_parallel_finish(gz), 0);
	ck_assert_uint_eq(gzip_parallel_bytes_out(gz), s.written);
	ck_assert_uint_eq(gzip_parallel_bytes_in(gz), len);
	ck_assert_uint_le(s.written, gzip_parallel_bound(len, bs));
	gzip_parallel_free(gz);
	close(s.fd);
	ck_assert_msg(tu_sh("gzip -t '%s' && pigz -t '%s' && gzip -dc '%s' | cmp -s - '%s'", gz_path,
			    gz_path, gz_path, raw) == 0,
		      "level %d threads %u len %zu: bad gzip", (int)level, threads, len);
	free(raw);
	free(gz_path);
}

START_TEST(gzip_parallel_edges)
{
	static const enum gzip_parallel_level levels[] = { GZIP_PARALLEL_STORED, GZIP_PARALLEL_FAST,
							   GZIP_PARALLEL_BEST };
	const size_t bs = 64 << 10;
	const size_t lens[] = { 0, 1, bs - 1, bs, bs + 1, 3 * bs, 20 * bs + 12345 };
	char *work = tu_mkdtemp("gzp");
	unsigned char *rnd = tu_random_bytes(20 * bs + 12345, 11);
	unsigned char *txt = tu_text_bytes(20 * bs + 12345, 12);

	for (size_t l = 0; l < 3; l++)
		for (unsigned threads = 1; threads <= 3; threads += 2)
			for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
				gzip_round_trip(work, levels[l], threads, txt, lens[i]);
				gzip_round_trip(work, levels[l], threads, rnd, lens[i]);
			}
	free(txt);
	free(rnd);
	tu_rmrf(work);
	free(work);
}
END_TEST

START_TEST(tricky_tree_round_trips_through_every_reader)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	make_tricky_tree(src);

	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, archive, ARCHIVE_LEVEL_FAST, 2, NULL, &res), 0);
	dump_report(&res.report);
	ck_assert_uint_eq(report_total(&res.report), 0);
	ck_assert_uint_eq(res.skipped, 0);
	ck_assert_uint_eq(res.symlinks, 5);
	ck_assert_uint_eq(res.bytes_in, 3 * MiB + 123 + 5 * MiB + 77 + 13 + 7 + 18 + 10 + 2 + 8 +
					    6 + 4 + 10 + 5 + 13);

	long members = check_readers(work, archive);
	ck_assert_int_eq(members, (long)(res.files + res.dirs + res.symlinks));
	check_extract_matches(work, archive, src, NULL);
	check_hashes(archive, &res);

	/* The pre-walk counts exactly what was archived. */
	uint64_t bytes = 0, entries = 0;
	ck_assert_int_eq(archive_prewalk(src, NULL, &bytes, &entries), 0);
	ck_assert_uint_eq(bytes, res.bytes_in);
	ck_assert_uint_eq(entries, res.files + res.dirs + res.symlinks);

	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

START_TEST(every_level_and_thread_count_is_valid)
{
	static const enum archive_level levels[] = { ARCHIVE_LEVEL_NONE, ARCHIVE_LEVEL_FAST,
						     ARCHIVE_LEVEL_BEST };
	static const unsigned threads[] = { 1, 2, 4 };
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	make_tricky_tree(src);
	uint64_t sizes[3] = { 0, 0, 0 };

	for (size_t l = 0; l < 3; l++) {
		for (size_t t = 0; t < 3; t++) {
			struct archive_create_result res;
			ck_assert_int_eq(create_to(src, archive, levels[l], threads[t], NULL, &res),
					 0);
			long members = check_readers(work, archive);
			ck_assert_int_eq(members, (long)(res.files + res.dirs + res.symlinks));
			check_hashes(archive, &res);
			if (t == 1)
				check_extract_matches(work, archive, src, NULL);
			sizes[l] = res.bytes_out;
			archive_create_result_clear(&res);
		}
	}
	/* Stored is bigger than fast, which is no smaller than best. */
	ck_assert_uint_gt(sizes[0], sizes[1]);
	ck_assert_uint_ge(sizes[1], sizes[2]);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

START_TEST(large_input_spans_many_blocks)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	/* 64 MiB, alternating random and text MiBs, plus a few odd-sized files so block
	 * boundaries fall inside headers and data alike. */
	unsigned char *big = malloc(64 * MiB);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < 64; i++) {
		unsigned char *part = i % 2 ? tu_random_bytes(MiB, i + 1) : tu_text_bytes(MiB, i + 1);
		memcpy(big + i * MiB, part, MiB);
		free(part);
	}
	put(src, "world/big.bin", big, 64 * MiB, 0644);
	for (int i = 0; i < 40; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "world/region/r.%d.mca", i);
		put(src, rel, big + (size_t)i * 1000003, 100000 + (size_t)i * 7919, 0644);
	}
	free(big);
	stamp_mtimes(src);

	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, archive, ARCHIVE_LEVEL_FAST, 2, NULL, &res), 0);
	ck_assert_uint_eq(report_total(&res.report), 0);
	ck_assert_int_eq(check_readers(work, archive), 43);
	check_extract_matches(work, archive, src, NULL);
	check_hashes(archive, &res);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

/* The cancel poll runs between blocks of file data on the walking thread, which makes it
 * a deterministic place to change the tree under the walker: as soon as a file is open
 * (visible in /proc/self/fd), it is truncated or appended to, and a later file removed. */
struct mutator {
	char *shrink, *grow, *vanish;
	bool shrunk, grown;
};

#define CHANGING_SIZE (4 * MiB)
#define SHRUNK_SIZE (MiB + 1000)

static bool is_open_here(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false;

	ck_assert_ptr_nonnull(d);
	while (!found && (de = readdir(d))) {
		char link[PATH_MAX], fdp[PATH_MAX];
		snprintf(fdp, sizeof(fdp), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(fdp, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = !strcmp(link, path);
		}
	}
	closedir(d);
	return found;
}

static int mutate_when_open(void *opaque)
{
	struct mutator *m = opaque;

	if (!m->grown && is_open_here(m->grow)) {
		int fd = open(m->grow, O_WRONLY | O_APPEND);
		ck_assert_int_ge(fd, 0);
		unsigned char *more = tu_random_bytes(MiB, 99);
		ck_assert_int_eq(write(fd, more, MiB), (ssize_t)MiB);
		free(more);
		close(fd);
		ck_assert_int_eq(unlink(m->vanish), 0);
		m->grown = true;
	}
	if (!m->shrunk && is_open_here(m->shrink)) {
		ck_assert_int_eq(truncate(m->shrink, SHRUNK_SIZE), 0);
		m->shrunk = true;
	}
	return 0;
}

START_TEST(files_that_change_while_read_keep_the_archive_valid)
{
	char *work = tu_mkdtemp("create");
	char *src0 = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	char src[PATH_MAX];
	unsigned char *orig = tu_random_bytes(CHANGING_SIZE, 5);
	put(src0, "grow.bin", orig, CHANGING_SIZE, 0644);
	put(src0, "shrink.bin", orig, CHANGING_SIZE, 0644);
	put(src0, "zz_vanish.txt", "gone\n", 5, 0644);
	put(src0, "zz_stays.txt", "here\n", 5, 0644);
	ck_assert_ptr_nonnull(realpath(src0, src));

	struct mutator m = { tu_join(src, "shrink.bin"), tu_join(src, "grow.bin"),
			     tu_join(src, "zz_vanish.txt"), false, false };
	struct tu_file_sink s = { .fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
	struct archive_create_opts o = { .root = src, .threads = 2,
					 .cancelled = mutate_when_open, .cancelled_opaque = &m };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct archive_create_result res;
	ck_assert_int_eq(archive_create(&o, &sink, &res), 0);
	close(s.fd);
	ck_assert(m.shrunk && m.grown);
	dump_report(&res.report);

	char want[128];
	snprintf(want, sizeof(want), "shrank from %zu to %zu bytes", CHANGING_SIZE, SHRUNK_SIZE);
	ck_assert(report_has(&res.report, "shrink.bin", want));
	ck_assert(report_has(&res.report, "shrink.bin", "padded with zeros"));
	snprintf(want, sizeof(want), "grew from %zu to %zu bytes", CHANGING_SIZE,
		 CHANGING_SIZE + MiB);
	ck_assert(report_has(&res.report, "grow.bin", want));
	ck_assert(report_has(&res.report, "zz_vanish.txt", "vanished"));
	ck_assert_uint_eq(report_total(&res.report), 3);
	ck_assert_uint_eq(res.files, 3);

	ck_assert_int_eq(check_readers(work, archive), 3);
	char *dst = tu_join(work, "x");
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	ck_assert_int_eq(tu_sh("tar -xzf '%s' -C '%s'", archive, dst), 0);
	size_t len = 0;
	char *p = tu_join(dst, "grow.bin");
	char *got = tu_read_file(p, &len);
	ck_assert_uint_eq(len, CHANGING_SIZE);
	ck_assert(!memcmp(got, orig, CHANGING_SIZE)); /* cut at the announced size */
	free(got);
	free(p);
	p = tu_join(dst, "shrink.bin");
	got = tu_read_file(p, &len);
	ck_assert_uint_eq(len, CHANGING_SIZE);
	ck_assert(!memcmp(got, orig, SHRUNK_SIZE));
	for (size_t i = SHRUNK_SIZE; i < CHANGING_SIZE; i++)
		ck_assert_msg(got[i] == 0, "byte %zu not zero-filled", i);
	free(got);
	free(p);
	p = tu_join(dst, "zz_stays.txt");
	ck_assert_int_eq(access(p, F_OK), 0);
	free(p);

	free(dst);
	free(m.shrink);
	free(m.grow);
	free(m.vanish);
	free(orig);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src0);
	free(work);
}
END_TEST

static void fill_for_failure(const char *src)
{
	unsigned char *rnd = tu_random_bytes(16 * MiB, 3);
	put(src, "a.bin", rnd, 16 * MiB, 0644);
	put(src, "b.bin", rnd, 8 * MiB, 0644);
	free(rnd);
}

START_TEST(sink_failure_stops_everything_and_is_returned)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	fill_for_failure(src);
	struct tu_file_sink whole = { .fd = -1 };
	struct archive_create_opts o1 = { .root = src, .threads = 2 };
	struct amber_sink sink1 = { tu_file_sink_write, &whole };
	struct archive_create_result res1;
	ck_assert_int_eq(archive_create(&o1, &sink1, &res1), 0);
	archive_create_result_clear(&res1);
	/* At the gzip header, in the middle, and at the very end (the trailer). */
	const uint64_t fail_at[] = { 0, whole.written / 2, whole.written - 1 };

	for (size_t i = 0; i < 3; i++) {
		for (unsigned threads = 1; threads <= 4; threads *= 2) {
			struct tu_file_sink s = { .fd = -1, .fail_after = fail_at[i],
					       .fail_code = -ENOSPC };
			struct archive_create_opts o = { .root = src, .threads = threads };
			struct amber_sink sink = { tu_file_sink_write, &s };
			struct archive_create_result res;
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

START_TEST(max_bytes_stops_the_run_before_the_sink_passes_it)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	fill_for_failure(src);
	struct tu_file_sink whole = { .fd = -1 };
	struct archive_create_opts o1 = { .root = src, .threads = 2 };
	struct amber_sink sink1 = { tu_file_sink_write, &whole };
	struct archive_create_result res;
	ck_assert_int_eq(archive_create(&o1, &sink1, &res), 0);
	ck_assert(!res.too_big);
	archive_create_result_clear(&res);

	/* exactly the archive's size fits */
	struct tu_file_sink s = { .fd = -1 };
	struct archive_create_opts o = { .root = src, .threads = 2, .max_bytes = whole.written };
	struct amber_sink sink = { tu_file_sink_write, &s };
	ck_assert_int_eq(archive_create(&o, &sink, &res), 0);
	ck_assert_uint_eq(s.written, whole.written);
	ck_assert(!res.too_big);
	archive_create_result_clear(&res);

	/* one byte less, half, or a few KiB: stopped, and the sink never got past it */
	const uint64_t limits[] = { whole.written - 1, whole.written / 2, 4096, 1 };
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct tu_file_sink t = { .fd = -1 };
		sink.opaque = &t;
		o.max_bytes = limits[i];
		ck_assert_int_eq(archive_create(&o, &sink, &res), -EFBIG);
		ck_assert(res.too_big);
		ck_assert_uint_le(t.written, limits[i]);
		ck_assert_uint_eq(res.bytes_out, t.written);
		archive_create_result_clear(&res);
	}

	/* a sink's own -EFBIG is not the limit's */
	struct tu_file_sink f = { .fd = -1, .fail_after = 1000, .fail_code = -EFBIG };
	sink.opaque = &f;
	o.max_bytes = 0;
	ck_assert_int_eq(archive_create(&o, &sink, &res), -EFBIG);
	ck_assert(!res.too_big);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(src);
	free(work);
}
END_TEST

static int cancel_after(void *opaque)
{
	unsigned *left = opaque;
	return *left == 0 || --*left == 0;
}

START_TEST(cancellation_is_polled_and_returned)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	fill_for_failure(src);
	unsigned left = 5;
	struct tu_file_sink s = { .fd = -1 };
	struct archive_create_opts o = { .root = src, .threads = 2, .cancelled = cancel_after,
					 .cancelled_opaque = &left };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct archive_create_result res;
	ck_assert_int_eq(archive_create(&o, &sink, &res), -ECANCELED);
	ck_assert_uint_eq(left, 0);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(src);
	free(work);
}
END_TEST

struct progress_log {
	unsigned calls;
	struct archive_progress last;
};

static void record_progress(void *opaque, const struct archive_progress *p)
{
	struct progress_log *l = opaque;
	ck_assert_uint_le(p->bytes_read, p->total_bytes);
	ck_assert_uint_le(p->files, p->total_files);
	if (l->calls)
		ck_assert_uint_ge(p->bytes_written, l->last.bytes_written);
	l->calls++;
	l->last = *p;
}

START_TEST(progress_reports_totals_from_the_prewalk)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	make_tricky_tree(src);
	struct progress_log log = { 0 };
	struct tu_file_sink s = { .fd = -1 };
	struct archive_create_opts o = { .root = src, .threads = 2, .progress = record_progress,
					 .progress_opaque = &log };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct archive_create_result res;
	ck_assert_int_eq(archive_create(&o, &sink, &res), 0);
	ck_assert_uint_ge(log.calls, 1);
	ck_assert_uint_eq(log.last.total_bytes, res.bytes_in);
	ck_assert_uint_eq(log.last.bytes_read, res.bytes_in);
	ck_assert_uint_eq(log.last.total_files, res.files + res.dirs + res.symlinks);
	ck_assert_uint_eq(log.last.files, log.last.total_files);
	ck_assert_uint_eq(log.last.bytes_written, res.bytes_out);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(src);
	free(work);
}
END_TEST

START_TEST(special_files_are_skipped_and_noted)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	put(src, "keep.txt", "keep\n", 5, 0644);
	char *fifo = tu_join(src, "pipe");
	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	unsigned expected = 1;

	char *sock_path = tu_join(src, "sock");
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ck_assert_int_ge(sfd, 0);
	if (strlen(sock_path) < sizeof(sa.sun_path)) {
		strcpy(sa.sun_path, sock_path);
		ck_assert_int_eq(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		expected++;
	}
	char *dev = tu_join(src, "null");
	bool have_dev = mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0; /* needs privileges */
	expected += have_dev;

	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, archive, ARCHIVE_LEVEL_FAST, 2, NULL, &res), 0);
	close(sfd);
	dump_report(&res.report);
	ck_assert_uint_eq(res.skipped, expected);
	ck_assert_uint_eq(res.files, 1);
	ck_assert(report_has(&res.report, "pipe", "FIFO: not archived"));
	if (expected - have_dev > 1)
		ck_assert(report_has(&res.report, "sock", "socket: not archived"));
	if (have_dev)
		ck_assert(report_has(&res.report, "null", "character device: not archived"));
	ck_assert_int_eq(check_readers(work, archive), 1);
	int st = -1;
	char *list = tu_sh_out(&st, "tar -tzf '%s'", archive);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(list, "keep.txt\n");
	free(list);

	free(dev);
	free(sock_path);
	free(fifo);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

START_TEST(ignore_rules_leave_out_files_and_whole_directories)
{
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	put(src, "server.jar", "jar", 3, 0644);
	put(src, "logs/latest.log", "log", 3, 0644);
	put(src, "logs/keep/inner.txt", "x", 1, 0644);
	put(src, "cache/a/b.bin", "b", 1, 0644);
	put(src, "world/level.dat", "lvl", 3, 0644);
	put(src, "world/session.lock", "lock", 4, 0644);
	put(src, "notes.tmp", "tmp", 3, 0644);
	put(src, "plugins/x.tmp", "tmp", 3, 0644);
	put(src, "plugins/important.tmp", "tmp", 3, 0644);
	put_dir(src, "empty_ignored", 0755);

	static const char rules_text[] = "*.tmp\n!plugins/important.tmp\ncache/\n"
					 "/logs\n*.lock,empty_ignored\n";
	struct ignore_rules *rules = NULL;
	ck_assert_int_eq(ignore_rules_new(rules_text, strlen(rules_text), &rules), 0);

	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, archive, ARCHIVE_LEVEL_FAST, 2, rules, &res), 0);
	ck_assert_uint_eq(report_total(&res.report), 0);
	int st = -1;
	char *list = tu_sh_out(&st, "tar -tzf '%s' | sort", archive);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(list, "plugins/\nplugins/important.tmp\nserver.jar\nworld/\n"
			       "world/level.dat\n");
	free(list);
	uint64_t bytes = 0, entries = 0;
	ck_assert_int_eq(archive_prewalk(src, rules, &bytes, &entries), 0);
	ck_assert_uint_eq(entries, 5);
	ck_assert_uint_eq(bytes, 3 + 3 + 3);
	check_readers(work, archive);

	ignore_rules_free(rules);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

START_TEST(root_errors)
{
	char *work = tu_mkdtemp("create");
	char *missing = tu_join(work, "missing");
	char *file = tu_join(work, "file");
	put(work, "file", "x", 1, 0644);
	struct tu_file_sink s = { .fd = -1 };
	struct amber_sink sink = { tu_file_sink_write, &s };
	struct archive_create_result res;
	uint64_t b, e;

	struct archive_create_opts o = { .root = missing };
	ck_assert_int_eq(archive_create(&o, &sink, &res), -ENOENT);
	archive_create_result_clear(&res);
	ck_assert_int_eq(archive_prewalk(missing, NULL, &b, &e), -ENOENT);
	o.root = file;
	ck_assert_int_eq(archive_create(&o, &sink, &res), -ENOTDIR);
	archive_create_result_clear(&res);
	ck_assert_int_eq(archive_prewalk(file, NULL, &b, &e), -ENOTDIR);
	o.root = work;
	o.level = (enum archive_level)42;
	ck_assert_int_eq(archive_create(&o, &sink, &res), -EINVAL);
	archive_create_result_clear(&res);
	ck_assert_uint_eq(s.calls, 0); /* nothing reached the sink */

	/* An empty root is a valid, empty archive. */
	char *empty = tu_join(work, "empty");
	char *archive = tu_join(work, "empty.tar.gz");
	ck_assert_int_eq(mkdir(empty, 0755), 0);
	ck_assert_int_eq(create_to(empty, archive, ARCHIVE_LEVEL_FAST, 1, NULL, &res), 0);
	ck_assert_int_eq(check_readers(work, archive), 0);
	archive_create_result_clear(&res);

	free(archive);
	free(empty);
	free(file);
	free(missing);
	tu_rmrf(work);
	free(work);
}
END_TEST

/* Permission bits do not stop root, so this only means something unprivileged. */
START_TEST(unreadable_entries_are_noted_not_fatal)
{
	if (geteuid() == 0)
		return;
	char *work = tu_mkdtemp("create");
	char *src = tu_join(work, "src");
	char *archive = tu_join(work, "out.tar.gz");
	put(src, "ok.txt", "ok", 2, 0644);
	put(src, "locked.txt", "no", 2, 0000);
	put(src, "closed/inside.txt", "no", 2, 0644);
	char *closed = tu_join(src, "closed");
	ck_assert_int_eq(chmod(closed, 0000), 0);

	struct archive_create_result res;
	ck_assert_int_eq(create_to(src, archive, ARCHIVE_LEVEL_FAST, 2, NULL, &res), 0);
	ck_assert(report_has(&res.report, "locked.txt", "cannot be opened"));
	ck_assert(report_has(&res.report, "closed", "contents are not archived"));
	int st = -1;
	char *list = tu_sh_out(&st, "tar -tzf '%s' | sort", archive);
	ck_assert_str_eq(list, "closed/\nok.txt\n");
	free(list);
	chmod(closed, 0755);
	free(closed);
	archive_create_result_clear(&res);
	tu_rmrf(work);
	free(archive);
	free(src);
	free(work);
}
END_TEST

/* Noise (compressed data) is stored and the rest deflated, segment by segment inside
 * one block: runs of both kinds, of odd lengths, must still make one valid member. */
START_TEST(mixed_noise_and_text_in_one_block_round_trip)
{
	char *work = tu_mkdtemp("gzmix");
	const size_t parts[] = { 40000, 200000, 65536, 131072, 7, 300000, 65536, 1 << 20, 12345 };
	size_t len = 0, noise = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		len += parts[i];
		noise += i % 2 ? parts[i] : 0;
	}
	unsigned char *data = malloc(len);
	size_t off = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		unsigned char *p = i % 2 ? tu_random_bytes(parts[i], 20 + i) : tu_text_bytes(parts[i], 30 + i);
		memcpy(data + off, p, parts[i]);
		off += parts[i];
		free(p);
	}
	char *gz_path = tu_join(work, "x.gz"), *raw = tu_join(work, "x.raw");
	tu_write_file(raw, data, len, 0644);
	for (unsigned threads = 1; threads <= 2; threads++) {
		struct tu_file_sink s = { .fd = open(gz_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
		struct gzip_parallel_opts o = { .level = GZIP_PARALLEL_FAST, .threads = threads };
		struct amber_sink sink = { tu_file_sink_write, &s };
		struct gzip_parallel *gz = NULL;
		ck_assert_int_eq(gzip_parallel_new(&o, &sink, &gz), 0);
		ck_assert_int_eq(gzip_parallel_write(gz, data, len), 0);
		ck_assert_int_eq(gzip_parallel_finish(gz), 0);
		ck_assert_uint_le(s.written, gzip_parallel_bound(len, 0));
		/* The text parts did compress. */
		ck_assert_uint_lt(s.written, noise + (len - noise) * 3 / 4);
		gzip_parallel_free(gz);
		close(s.fd);
		ck_assert_msg(tu_sh("gzip -t '%s' && gzip -dc '%s' | cmp -s - '%s'", gz_path,
				    gz_path, raw) == 0, "threads %u: bad gzip", threads);
	}
	free(data);
	free(raw);
	free(gz_path);
	tu_rmrf(work);
	free(work);
}
END_TEST

/* The thread cap, seen from inside: every thread of the process, counted in
 * /proc/self/task while the run polls for cancellation. */
static int note_tasks(void *opaque)
{
	unsigned *max = opaque, n = tu_count_tasks();
	if (n > *max)
		*max = n;
	return 0;
}

START_TEST(thread_cap_is_honoured)
{
	char *work = tu_mkdtemp("create-threads");
	char *src = tu_join(work, "src"), *archive = tu_join(work, "out.tar.gz");
	unsigned char *big = tu_text_bytes(3 * MiB, 3);
	put(src, "big.txt", big, 3 * MiB, 0644);
	put(src, "small.txt", "x\n", 2, 0644);
	free(big);
	unsigned base = tu_count_tasks();
	for (unsigned threads = 1; threads <= 3; threads += 2) {
		unsigned max = 0;
		struct tu_file_sink s = { .fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
		struct archive_create_opts o = { .root = src, .threads = threads,
						 .cancelled = note_tasks, .cancelled_opaque = &max };
		struct amber_sink sink = { tu_file_sink_write, &s };
		struct archive_create_result res;
		ck_assert_int_eq(archive_create(&o, &sink, &res), 0);
		close(s.fd);
		archive_create_result_clear(&res);
		/* This thread, the walk, the compression workers, the gzip writer and, unless
		 * the budget is one thread, its SHA-256 helper. */
		ck_assert_uint_eq(max, base + 1 + threads + 1 + (threads > 1));
	}
	ck_assert_uint_eq(tu_count_tasks(), base);
	free(archive);
	free(src);
	tu_rmrf(work);
	free(work);
}
END_TEST

/* With an I/O limit the run still produces the same archive (the limiter's timing is
 * test_ratelimit's; a high limit keeps this quick). */
START_TEST(io_limit_keeps_the_archive_the_same)
{
	char *work = tu_mkdtemp("create-iolimit");
	char *src = tu_join(work, "src"), *a1 = tu_join(work, "a.tar.gz"), *a2 = tu_join(work, "b.tar.gz");
	unsigned char *big = tu_text_bytes(2 * MiB, 4);
	put(src, "big.txt", big, 2 * MiB, 0644);
	put(src, "small.txt", "x\n", 2, 0644);
	free(big);
	struct archive_create_result r1, r2;
	ck_assert_int_eq(create_to(src, a1, ARCHIVE_LEVEL_FAST, 2, NULL, &r1), 0);
	struct tu_file_sink s = { .fd = open(a2, O_WRONLY | O_CREAT | O_TRUNC, 0644) };
	struct archive_create_opts o = { .root = src, .threads = 2, .io_bytes_per_s = 1024 * MiB };
	struct amber_sink sink = { tu_file_sink_write, &s };
	ck_assert_int_eq(archive_create(&o, &sink, &r2), 0);
	close(s.fd);
	ck_assert_mem_eq(r1.sha256, r2.sha256, sizeof(r1.sha256));
	ck_assert_uint_eq(r2.bytes_in, 2 * MiB + 2);
	archive_create_result_clear(&r1);
	archive_create_result_clear(&r2);
	free(a1);
	free(a2);
	free(src);
	tu_rmrf(work);
	free(work);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("archive_create");
	TCase *tc = tcase_create("archive_create");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, gzip_parallel_edges);
	tcase_add_test(tc, tricky_tree_round_trips_through_every_reader);
	tcase_add_test(tc, every_level_and_thread_count_is_valid);
	tcase_add_test(tc, large_input_spans_many_blocks);
	tcase_add_test(tc, files_that_change_while_read_keep_the_archive_valid);
	tcase_add_test(tc, sink_failure_stops_everything_and_is_returned);
	tcase_add_test(tc, cancellation_is_polled_and_returned);
	tcase_add_test(tc, progress_reports_totals_from_the_prewalk);
	tcase_add_test(tc, special_files_are_skipped_and_noted);
	tcase_add_test(tc, ignore_rules_leave_out_files_and_whole_directories);
	tcase_add_test(tc, root_errors);
	tcase_add_test(tc, max_bytes_stops_the_run_before_the_sink_passes_it);
	tcase_add_test(tc, unreadable_entries_are_noted_not_fatal);
	tcase_add_test(tc, mixed_noise_and_text_in_one_block_round_trip);
	tcase_add_test(tc, thread_cap_is_honoured);
	tcase_add_test(tc, io_limit_keeps_the_archive_the_same);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
