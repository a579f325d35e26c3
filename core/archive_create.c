/* The create side of the archive engine: walk → tar (libarchive, fed by hand) → parallel
 * gzip or zstd (compressor.h) → SHA-1/SHA-256 → sink, all in one pass.
 *
 * Three stages overlap: this (the caller's) thread walks the tree, reads files and frames
 * them as tar; the compressor's workers compress blocks of that stream; its writer
 * thread hashes the compressed blocks and hands them to the sink in order.
 *
 * A server keeps running while it is backed up, so the walk expects the tree to move
 * under it: every file is archived at the size its header announced (zero-padded if it
 * shrank, cut if it grew), entries that vanish are skipped, and each such event becomes
 * a line in the result's report instead of an error. Only the root itself, memory, the
 * sink and cancellation can stop a run. */
#include "archive_create.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "compressor.h"
#include "hash.h"
#include "ignore.h"

#define READ_CHUNK ((size_t)256 << 10)
#define PROGRESS_INTERVAL_NS 250000000LL
/* Longer symlink targets than this are not something a game server makes. */
#define SYMLINK_MAX ((size_t)1 << 20)

/* --- the relative path of the entry being visited ------------------------------------ */

struct path {
	char *s;
	size_t len, cap;
};

static int path_push(struct path *p, const char *name, size_t *mark)
{
	size_t n = strlen(name);
	size_t need = p->len + 1 + n + 1;

	if (need > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap < need)
			cap *= 2;
		char *s = realloc(p->s, cap);
		if (!s)
			return -ENOMEM;
		p->s = s;
		p->cap = cap;
	}
	*mark = p->len;
	if (p->len)
		p->s[p->len++] = '/';
	memcpy(p->s + p->len, name, n + 1);
	p->len += n;
	return 0;
}

static void path_pop(struct path *p, size_t mark)
{
	p->len = mark;
	p->s[mark] = '\0';
}

/* --- the walk, shared by the pre-walk and the real one ------------------------------- */

struct walker {
	const struct ignore_rules *ignore;
	struct path path;
	struct report *report; /* NULL: problems are not recorded (the pre-walk) */
	/* Every entry the rules keep, a directory before its contents; st describes what
	 * will be read (for a directory, the one actually opened). < 0 stops the walk. */
	int (*visit)(void *opaque, int dirfd, const char *name, const struct stat *st);
	void *opaque;
};

static const char *errstr(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

/* Records a problem with the current path; only running out of memory is fatal. */
__attribute__((format(printf, 2, 3))) static int note(struct walker *w, const char *fmt, ...)
{
	if (!w->report)
		return 0;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int r = report_add(w->report, w->path.s, "%s", msg);
	free(msg);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* All names in the directory but . and .., sorted so archives come out in a stable
 * order. *ret_err gets a readdir failure (the names read so far are still returned). */
static int list_dir(DIR *d, char ***ret_names, size_t *ret_n, int *ret_err)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	*ret_err = 0;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			*ret_err = errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof(*p));
			if (!p)
				goto oom;
			names = p;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			goto oom;
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	*ret_names = names;
	*ret_n = n;
	return 0;
oom:
	names_free(names, n);
	return -ENOMEM;
}

static int walk_dir(struct walker *w, int fd);

static int walk_entry(struct walker *w, int dirfd, const char *name)
{
	char eb[128];
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return note(w, "vanished before it could be archived");
		return note(w, "cannot be examined (%s); not archived",
			    errstr(errno, eb, sizeof(eb)));
	}
	bool is_dir = S_ISDIR(st.st_mode);
	/* Not descending into an ignored directory is what makes git's rule hold: nothing
	 * below an excluded directory can be re-included. */
	if (w->ignore && ignore_rules_match(w->ignore, w->path.s, is_dir))
		return 0;
	if (!is_dir)
		return w->visit(w->opaque, dirfd, name, &st);

	int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0) {
		int e = errno;
		if (e == ENOENT)
			return note(w, "directory vanished before it could be archived");
		if (e == ENOTDIR || e == ELOOP)
			return note(w, "stopped being a directory while being archived; "
				       "not archived");
		/* Keep the directory itself so the tree's shape and modes survive. */
		int r = w->visit(w->opaque, dirfd, name, &st);
		if (r < 0)
			return r;
		return note(w, "directory cannot be opened (%s); its contents are not archived",
			    errstr(e, eb, sizeof(eb)));
	}
	struct stat sst;
	if (fstat(sub, &sst) < 0) {
		int e = errno;
		close(sub);
		return note(w, "cannot be examined (%s); not archived", errstr(e, eb, sizeof(eb)));
	}
	int r = w->visit(w->opaque, dirfd, name, &sst);
	if (r < 0) {
		close(sub);
		return r;
	}
	return walk_dir(w, sub);
}

/* Takes fd. Problems below the root are notes; at the root they are the caller's error. */
static int walk_dir(struct walker *w, int fd)
{
	char eb[128];
	bool is_root = w->path.len == 0;
	DIR *d = fdopendir(fd);

	if (!d) {
		int e = errno;
		close(fd);
		if (is_root)
			return -e;
		return note(w, "directory cannot be read (%s); its contents are not archived",
			    errstr(e, eb, sizeof(eb)));
	}
	char **names = NULL;
	size_t n = 0;
	int list_err = 0;
	int r = list_dir(d, &names, &n, &list_err);
	if (r == 0 && list_err) {
		if (is_root)
			r = -list_err;
		else
			r = note(w, "directory could not be listed completely (%s); "
				    "some of its contents may be missing",
				 errstr(list_err, eb, sizeof(eb)));
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		size_t mark;
		r = path_push(&w->path, names[i], &mark);
		if (r < 0)
			break;
		r = walk_entry(w, dirfd(d), names[i]);
		path_pop(&w->path, mark);
	}
	names_free(names, n);
	closedir(d);
	return r;
}

/* The root may itself be a symlink (a volume on another disk): it is the operator's
 * path, not the server's. Only what lies below it is never followed. */
static int open_root(const char *root)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Takes fd, the root opened by open_root. */
static int walk_root(struct walker *w, int fd)
{
	w->path.cap = 256;
	w->path.s = malloc(w->path.cap);
	if (!w->path.s) {
		close(fd);
		return -ENOMEM;
	}
	w->path.s[0] = '\0';
	w->path.len = 0;
	int r = walk_dir(w, fd);
	free(w->path.s);
	w->path.s = NULL;
	return r;
}

/* --- pre-walk --------------------------------------------------------------------------- */

struct tally {
	uint64_t bytes, entries;
};

static int tally_visit(void *opaque, int dirfd, const char *name, const struct stat *st)
{
	struct tally *t = opaque;

	if (S_ISREG(st->st_mode))
		t->bytes += (uint64_t)st->st_size;
	if (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode))
		t->entries++;
	return 0;
}

static int prewalk_fd(int fd, const struct ignore_rules *ignore, uint64_t *ret_bytes,
		      uint64_t *ret_files)
{
	struct tally t = { 0, 0 };
	struct walker w = { .ignore = ignore, .visit = tally_visit, .opaque = &t };
	int r = walk_root(&w, fd);
	if (r < 0)
		return r;
	*ret_bytes = t.bytes;
	*ret_files = t.entries;
	return 0;
}

int archive_prewalk(const char *root, const struct ignore_rules *ignore, uint64_t *ret_bytes,
		    uint64_t *ret_files)
{
	if (!root)
		return -EINVAL;
	int fd = open_root(root);
	return fd < 0 ? fd : prewalk_fd(fd, ignore, ret_bytes, ret_files);
}

/* The bound behind archive_tar_bound. Per entry: its ustar header, plus room for a pax
 * extended header (its own ustar header and records) whether or not libarchive ends up
 * writing one: path and linkpath records (the name and the target at full length, plus
 * the "NN key=\n" framing) and TAR_PAX_OTHER for every other record restricted pax may
 * add (size, uid, gid, mtime, hdrcharset, ...), rounded up to whole blocks; then the
 * content padded to a block. Past the last entry, the two zero blocks that end a tar. */
#define TAR_BLOCK 512u
#define TAR_PAX_RECORD 32u
#define TAR_PAX_OTHER 512u

struct tar_tally {
	struct walker *w;
	uint64_t bytes, entries;
};

static uint64_t round_block(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

static int tar_bound_visit(void *opaque, int dirfd, const char *name, const struct stat *st)
{
	(void)dirfd, (void)name;
	struct tar_tally *t = opaque;
	uint64_t content = 0, link = 0;
	if (S_ISREG(st->st_mode))
		content = (uint64_t)st->st_size;
	else if (S_ISLNK(st->st_mode))
		link = st->st_size > 0 ? (uint64_t)st->st_size : 0;
	else if (!S_ISDIR(st->st_mode))
		return 0; /* sockets, devices, FIFOs are not archived */
	/* +1: a directory's name goes out with a trailing '/'. */
	uint64_t pax = TAR_PAX_OTHER + t->w->path.len + 1 + TAR_PAX_RECORD + link + TAR_PAX_RECORD;
	t->bytes += TAR_BLOCK + TAR_BLOCK + round_block(pax) + round_block(content);
	t->entries++;
	return 0;
}

int archive_tar_bound(const char *root, const struct ignore_rules *ignore, uint64_t *ret_bytes,
		      uint64_t *ret_entries)
{
	if (!root)
		return -EINVAL;
	int fd = open_root(root);
	if (fd < 0)
		return fd;
	struct tar_tally t = { 0 };
	struct walker w = { .ignore = ignore, .visit = tar_bound_visit, .opaque = &t };
	t.w = &w;
	int r = walk_root(&w, fd);
	if (r < 0)
		return r;
	*ret_bytes = t.bytes + 2 * TAR_BLOCK;
	*ret_entries = t.entries;
	return 0;
}

uint64_t archive_compressed_bound(enum archive_compression comp, uint64_t tar_bytes)
{
	return compressor_bound(comp, tar_bytes);
}

/* --- create ----------------------------------------------------------------------------- */

struct creator {
	const struct archive_create_opts *opts;
	struct archive_create_result *res;
	struct walker walker;
	struct archive *ar;
	struct archive_entry *entry;
	struct compressor *gz;
	unsigned char *buf; /* READ_CHUNK bytes */
	int err;	    /* why the compressed stream failed, as libarchive cannot carry it */
	struct archive_progress progress;
	struct timespec last_progress;
};

static int64_t elapsed_ns(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static void send_progress(struct creator *c)
{
	c->progress.bytes_written = compressor_bytes_out(c->gz);
	c->opts->progress(c->opts->progress_opaque, &c->progress);
}

/* Between blocks of file data and between entries: cancellation and progress. */
static int checkpoint(struct creator *c)
{
	if (c->opts->cancelled && c->opts->cancelled(c->opts->cancelled_opaque))
		return -ECANCELED;
	if (c->opts->progress) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
		if (elapsed_ns(&c->last_progress, &now) >= PROGRESS_INTERVAL_NS) {
			c->last_progress = now;
			send_progress(c);
		}
	}
	return 0;
}

/* Never reports failure to libarchive: libarchive 3.6 frees its output filter only in
 * archive_write_close and skips that once an archive is FATAL, leaking it. The error
 * travels in c->err instead, each archive_write_* call is checked against it, and once
 * it is set the rest (the trailer written by close) is swallowed. */
static la_ssize_t tar_out(struct archive *a, void *opaque, const void *buf, size_t len)
{
	struct creator *c = opaque;

	if (!c->err) {
		int r = compressor_write(c->gz, buf, len);
		if (r < 0)
			c->err = r;
	}
	return (la_ssize_t)len;
}

static int tar_failed(struct creator *c)
{
	return c->err ? c->err : -EIO;
}

/* 0 when the header is out, 1 when libarchive refused this one entry (noted), or a
 * fatal negative errno. */
static int put_header(struct creator *c, const struct stat *st, unsigned type,
		      const char *symlink, uint64_t size)
{
	struct archive_entry *e = archive_entry_clear(c->entry);

	archive_entry_copy_pathname(e, c->walker.path.s);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, st->st_mode & 07777);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(e, (la_int64_t)size);
	if (symlink)
		archive_entry_copy_symlink(e, symlink);

	int r = archive_write_header(c->ar, e);
	if (c->err)
		return c->err;
	/* WARN: a name that is not UTF-8 went out as raw bytes (hdrcharset=BINARY), which
	 * is the faithful choice for a backup. */
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
		return 0;
	if (r == ARCHIVE_FAILED) {
		r = note(&c->walker, "cannot be stored in a tar archive (%s); not archived",
			 archive_error_string(c->ar));
		return r < 0 ? r : 1;
	}
	return tar_failed(c);
}

static int put_data(struct creator *c, const void *buf, size_t len)
{
	la_ssize_t n = archive_write_data(c->ar, buf, len);
	if (c->err)
		return c->err;
	return n >= 0 && (size_t)n == len ? 0 : tar_failed(c);
}

static int put_symlink(struct creator *c, int dirfd, const char *name, const struct stat *st)
{
	char eb[128];
	size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;
	char *target = NULL;
	ssize_t n;

	for (;;) {
		char *p = realloc(target, cap);
		if (!p) {
			free(target);
			return -ENOMEM;
		}
		target = p;
		n = readlinkat(dirfd, name, target, cap);
		if (n < 0 || (size_t)n < cap || cap >= SYMLINK_MAX)
			break;
		cap *= 2; /* the link was replaced by a longer one since fstatat */
	}
	int r;
	if (n < 0) {
		int e = errno;
		if (e == ENOENT)
			r = note(&c->walker, "vanished before it could be archived");
		else if (e == EINVAL)
			r = note(&c->walker, "stopped being a symlink while being archived; "
					     "not archived");
		else
			r = note(&c->walker, "symlink cannot be read (%s); not archived",
				 errstr(e, eb, sizeof(eb)));
	} else if ((size_t)n >= cap) {
		r = note(&c->walker, "symlink target longer than %zu bytes; not archived", cap);
	} else {
		target[n] = '\0';
		r = put_header(c, st, AE_IFLNK, target, 0);
		if (r == 0) {
			c->res->symlinks++;
			c->progress.files++;
		}
	}
	free(target);
	return r < 0 ? r : 0;
}

/* The rest of an entry whose file came up short: the header promised size bytes. */
static int pad_zeros(struct creator *c, uint64_t n)
{
	memset(c->buf, 0, READ_CHUNK);
	while (n) {
		size_t k = n < READ_CHUNK ? (size_t)n : READ_CHUNK;
		int r = put_data(c, c->buf, k);
		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

static int copy_file(struct creator *c, int fd, const struct stat *st)
{
	char eb[128];
	uint64_t size = (uint64_t)st->st_size, done = 0;
	int read_err = 0;

	while (done < size) {
		uint64_t want = size - done < READ_CHUNK ? size - done : READ_CHUNK;
		ssize_t n = read(fd, c->buf, (size_t)want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			read_err = errno;
			break;
		}
		if (n == 0)
			break;
		int r = put_data(c, c->buf, (size_t)n);
		if (r < 0)
			return r;
		done += (uint64_t)n;
		c->progress.bytes_read += (uint64_t)n;
		r = checkpoint(c);
		if (r < 0)
			return r;
	}
	c->res->bytes_in += size;
	if (done < size) {
		int r = pad_zeros(c, size - done);
		if (r < 0)
			return r;
		if (read_err)
			return note(&c->walker, "read failed after %llu of %llu bytes (%s); the rest "
						"is zero-filled", (unsigned long long)done,
				    (unsigned long long)size, errstr(read_err, eb, sizeof(eb)));
		return note(&c->walker, "file shrank from %llu to %llu bytes while being read; "
					"padded with zeros", (unsigned long long)size,
			    (unsigned long long)done);
	}
	struct stat after;
	if (fstat(fd, &after) < 0)
		return 0;
	if ((uint64_t)after.st_size > size)
		return note(&c->walker, "file grew from %llu to %llu bytes while being read; "
					"archived its first %llu bytes", (unsigned long long)size,
			    (unsigned long long)after.st_size, (unsigned long long)size);
	if (after.st_mtim.tv_sec != st->st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
		return note(&c->walker, "file changed while being read; the archived copy may "
					"mix old and new contents");
	return 0;
}

static int put_file(struct creator *c, int dirfd, const char *name)
{
	char eb[128];
	/* O_NONBLOCK: should the name have turned into a FIFO since fstatat, open must not
	 * wait for a writer. O_NOFOLLOW: nor may it have turned into a way out of the root. */
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return note(&c->walker, "vanished before it could be read; not archived");
		if (e == ELOOP)
			return note(&c->walker, "became a symlink while being archived; "
						"not archived");
		return note(&c->walker, "cannot be opened (%s); not archived",
			    errstr(e, eb, sizeof(eb)));
	}
	struct stat st;
	int r;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		r = note(&c->walker, "cannot be examined (%s); not archived",
			 errstr(e, eb, sizeof(eb)));
	} else if (!S_ISREG(st.st_mode)) {
		r = note(&c->walker, "stopped being a regular file while being archived; "
				     "not archived");
	} else {
		/* A regular file after all: O_NONBLOCK has done its job, and some network
		 * and FUSE filesystems would otherwise answer reads with EAGAIN. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		r = put_header(c, &st, AE_IFREG, NULL, (uint64_t)st.st_size);
		if (r == 0) {
			c->res->files++;
			c->progress.files++;
			r = copy_file(c, fd, &st);
		}
	}
	close(fd);
	return r < 0 ? r : 0;
}

static const char *special_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFSOCK:
		return "socket";
	case S_IFIFO:
		return "FIFO";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	default:
		return "special file";
	}
}

static int create_visit(void *opaque, int dirfd, const char *name, const struct stat *st)
{
	struct creator *c = opaque;
	int r;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		r = put_header(c, st, AE_IFDIR, NULL, 0);
		if (r == 0) {
			c->res->dirs++;
			c->progress.files++;
		}
		break;
	case S_IFLNK:
		r = put_symlink(c, dirfd, name, st);
		break;
	case S_IFREG:
		r = put_file(c, dirfd, name);
		break;
	default:
		c->res->skipped++;
		r = note(&c->walker, "%s: not archived", special_kind(st->st_mode));
		break;
	}
	if (r < 0)
		return r;
	return checkpoint(c);
}

/* The sink as the compressor's output sees it: hashes first, then passes on. */
struct hashing_sink {
	struct hash *hash;
	const struct amber_sink *next;
	uint64_t written, max; /* max 0: no limit */
	bool too_big;
};

static int hashing_write(void *opaque, const void *buf, size_t len)
{
	struct hashing_sink *hs = opaque;
	/* Checked here, on the compressed bytes themselves, so the run stops at the block
	 * that would pass the limit and the sink never holds more than it allows. */
	if (hs->max && (len > hs->max || hs->written > hs->max - len)) {
		hs->too_big = true;
		return -EFBIG;
	}
	hs->written += len;
	int r = hash_update(hs->hash, buf, len);
	return r < 0 ? r : hs->next->write(hs->next->opaque, buf, len);
}

/* libarchive converts names from the thread's locale to UTF-8 for pax headers. A daemon
 * runs in the C locale, where any non-ASCII name would fail that conversion and go out
 * as raw bytes with hdrcharset=BINARY, which GNU tar warns about. C.UTF-8 on this thread
 * only (uselocale, no process-wide state) lets UTF-8 names through as proper UTF-8. */
static locale_t utf8_locale_new(void)
{
	locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (loc == (locale_t)0)
		loc = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
	return loc;
}

static int tar_open(struct creator *c)
{
	c->ar = archive_write_new();
	c->entry = archive_entry_new();
	if (!c->ar || !c->entry)
		return -ENOMEM;
	/* Restricted pax: plain ustar headers unless a name, size or id needs an extended
	 * one, which every tar reader handles. No blocking: no 10 KiB padding at the end,
	 * and data goes straight to the compressor without another copy. */
	if (archive_write_set_format_pax_restricted(c->ar) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(c->ar, 0) != ARCHIVE_OK ||
	    archive_write_open2(c->ar, c, NULL, tar_out, NULL, NULL) != ARCHIVE_OK)
		return tar_failed(c);
	return 0;
}

/* Takes root_fd. */
static int run(struct creator *c, int root_fd, const struct amber_sink *sink)
{
	const struct archive_create_opts *o = c->opts;
	struct hash *hash = NULL;
	int r = hash_new(&hash);
	if (r < 0) {
		close(root_fd);
		return r;
	}
	struct hashing_sink hs = { .hash = hash, .next = sink, .max = o->max_bytes };
	struct amber_sink hsink = { hashing_write, &hs };
	c->buf = malloc(READ_CHUNK);
	if (!c->buf)
		r = -ENOMEM;
	if (r == 0)
		r = compressor_new(o->compression, o->level, o->threads, &hsink, &c->gz);
	if (r == 0)
		r = tar_open(c);
	if (r == 0) {
		clock_gettime(CLOCK_MONOTONIC_COARSE, &c->last_progress);
		r = walk_root(&c->walker, root_fd);
	} else {
		close(root_fd);
	}
	if (r < 0 && !c->err)
		c->err = r; /* from here on tar_out swallows what close writes */
	if (c->ar && archive_write_close(c->ar) != ARCHIVE_OK && r == 0)
		r = tar_failed(c);
	if (r == 0 && c->err)
		r = c->err;
	if (r == 0)
		r = compressor_finish(c->gz);
	if (c->ar)
		archive_write_free(c->ar);
	archive_entry_free(c->entry);
	if (c->gz) {
		c->res->bytes_out = compressor_bytes_out(c->gz);
		if (r == 0 && o->progress)
			send_progress(c);
	}
	/* Joins the writer thread, the only other user of the hash (and of hs). */
	compressor_free(c->gz);
	c->res->too_big = hs.too_big;
	if (r == 0)
		r = hash_final(hash, c->res->sha1, c->res->sha256);
	hash_free(hash);
	free(c->buf);
	return r;
}

int archive_create(const struct archive_create_opts *opts, const struct amber_sink *sink,
		   struct archive_create_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!opts || !opts->root || !sink || !sink->write)
		return -EINVAL;

	struct creator c = {
		.opts = opts,
		.res = ret,
		.walker = {
			.ignore = opts->ignore,
			.report = &ret->report,
			.visit = create_visit,
		},
	};
	c.walker.opaque = &c;
	if ((unsigned)opts->compression > ARCHIVE_COMPRESSION_ZSTD ||
	    (unsigned)opts->level > ARCHIVE_LEVEL_BEST)
		return -EINVAL;
	int r;
	/* Root problems are reported before anything reaches the sink. */
	int root_fd = open_root(opts->root);
	if (root_fd < 0)
		return root_fd;
	/* Totals only matter to someone watching progress; the extra metadata pass also
	 * warms the inode cache for the real walk. openat(".") rather than dup: a dup
	 * would share the directory offset the pre-walk leaves at the end. */
	if (opts->progress) {
		int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 ? -errno
			   : prewalk_fd(fd, opts->ignore, &c.progress.total_bytes,
					&c.progress.total_files);
		if (r < 0) {
			close(root_fd);
			return r;
		}
	}

	locale_t loc = utf8_locale_new();
	locale_t old = loc != (locale_t)0 ? uselocale(loc) : (locale_t)0;
	r = run(&c, root_fd, sink);
	if (loc != (locale_t)0) {
		uselocale(old);
		freelocale(loc);
	}
	return r;
}

void archive_create_result_clear(struct archive_create_result *r)
{
	report_clear(&r->report);
	memset(r, 0, sizeof(*r));
}
