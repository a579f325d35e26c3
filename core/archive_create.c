/* The create side of the archive engine: walk → tar (libarchive, fed by hand) → parallel
 * gzip or zstd (compressor.h) → SHA-1/SHA-256 → sink, all in one pass.
 *
 * Four stages overlap: a walk thread lists directories, stats, opens and reads small
 * files; this (the caller's) thread frames what it queued as tar and reads the bigger
 * files; the compressor's workers compress blocks of that stream (gzip_parallel or
 * zstd_stream); its writer thread hashes the compressed blocks and hands them to the
 * sink in order.
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
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "ratelimit.h"

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
	/* Optional: a name readdir says is a regular file, visited without a stat first
	 * (the visit opens it and looks at what it opened). 1: not a regular file after
	 * all, look at it the usual way. */
	int (*visit_reg)(void *opaque, int dirfd, const char *name);
	void *opaque;
	pthread_mutex_t *report_lock; /* when another thread adds to the report too */
};

static const char *errstr(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

/* One line into the report, under its lock when the walk and the framer share it. */
static int report_note(struct report *rep, pthread_mutex_t *lock, const char *path,
		       const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return -ENOMEM;
	if (lock)
		pthread_mutex_lock(lock);
	int r = report_add(rep, path, "%s", msg);
	if (lock)
		pthread_mutex_unlock(lock);
	free(msg);
	return r;
}

/* Records a problem with the current path; only running out of memory is fatal. */
__attribute__((format(printf, 2, 3))) static int note(struct walker *w, const char *fmt, ...)
{
	if (!w->report)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	int r = report_note(w->report, w->report_lock, w->path.s, fmt, ap);
	va_end(ap);
	return r;
}

/* One directory's entries: names in one arena (a malloc per name was a tenth of the
 * walk's CPU time on trees of tiny files) with the type readdir gave, if any. */
struct dent {
	const char *name;
	unsigned char type; /* DT_* from readdir; DT_UNKNOWN when the file system says so */
};

struct dir_list {
	struct dent *v;
	size_t n;
	char *arena;
};

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static void dir_list_free(struct dir_list *l)
{
	free(l->v);
	free(l->arena);
}

/* All names in the directory but . and .., sorted so archives come out in a stable
 * order. *ret_err gets a readdir failure (the names read so far are still returned). */
static int list_dir(DIR *d, struct dir_list *ret, int *ret_err)
{
	struct dent *v = NULL;
	size_t n = 0, cap = 0, used = 0, acap = 0;
	char *arena = NULL;
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
			struct dent *p = realloc(v, cap * sizeof(*p));
			if (!p)
				goto oom;
			v = p;
		}
		size_t len = strlen(de->d_name) + 1;
		if (used + len > acap) {
			acap = acap ? acap * 2 : 4096;
			while (used + len > acap)
				acap *= 2;
			char *a = realloc(arena, acap);
			if (!a)
				goto oom;
			arena = a;
		}
		memcpy(arena + used, de->d_name, len);
		/* An offset until the arena stops moving. */
		v[n] = (struct dent){ .name = (const char *)(uintptr_t)used, .type = de->d_type };
		used += len;
		n++;
	}
	for (size_t i = 0; i < n; i++)
		v[i].name = arena + (uintptr_t)v[i].name;
	if (n)
		qsort(v, n, sizeof(*v), dent_cmp);
	ret->v = v;
	ret->n = n;
	ret->arena = arena;
	return 0;
oom:
	free(v);
	free(arena);
	return -ENOMEM;
}

static int walk_dir(struct walker *w, int fd);

static int walk_entry(struct walker *w, int dirfd, const char *name, unsigned char type)
{
	char eb[128];
	struct stat st;

	/* Most entries are regular files, and the visit's open and fstat say all a stat
	 * would: one path lookup per file instead of two. */
	if (type == DT_REG && w->visit_reg) {
		if (w->ignore && ignore_rules_match(w->ignore, w->path.s, false))
			return 0;
		int r = w->visit_reg(w->opaque, dirfd, name);
		if (r <= 0)
			return r;
	}
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
	struct dir_list l = { 0 };
	int list_err = 0;
	int r = list_dir(d, &l, &list_err);
	if (r == 0 && list_err) {
		if (is_root)
			r = -list_err;
		else
			r = note(w, "directory could not be listed completely (%s); "
				    "some of its contents may be missing",
				 errstr(list_err, eb, sizeof(eb)));
	}
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		size_t mark;
		r = path_push(&w->path, l.v[i].name, &mark);
		if (r < 0)
			break;
		r = walk_entry(w, dirfd(d), l.v[i].name, l.v[i].type);
		path_pop(&w->path, mark);
	}
	dir_list_free(&l);
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

/* --- create ----------------------------------------------------------------------------- *
 *
 * Two threads share the front of the pipeline. The walk thread lists directories, stats,
 * opens and (for files up to SMALL_MAX) reads, and queues one record per entry in archive
 * order; this (the caller's) thread frames the records as tar for the compressor. On
 * trees of many small files the system calls and the framing each take about half of
 * what one thread used to do alone.
 *
 * A bigger file is queued open and read here, in blocks, and the walk waits until it has
 * been: nothing after it is read before it, as when one thread did everything, and the
 * memory held does not depend on file sizes. */

#define SMALL_MAX ((off_t)128 << 10)
#define QUEUE_MAX_RECS 512
#define QUEUE_MAX_BYTES ((size_t)8 << 20)
/* The framer, once it has run dry, is woken when this many records wait (or an open
 * file, or the end): one wake-up per record cost more than the framing on small files. */
#define QUEUE_WAKE_RECS 32
#define QUEUE_WAKE_BYTES ((size_t)512 << 10)
/* How long the framer waits for the walk before it looks at cancellation and progress
 * anyway (a walk through thousands of ignored or unreadable entries queues nothing). */
#define QUEUE_POLL_NS 100000000LL

enum rec_kind { REC_DIR, REC_SYMLINK, REC_FILE, REC_END };

struct rec {
	enum rec_kind kind;
	struct rec *next;
	const char *path;    /* the archive name; stored after the struct */
	const char *link;    /* REC_SYMLINK */
	struct stat st;      /* what the header says: of the open file or directory */
	int fd;              /* REC_FILE read by the framer; -1 when the data is here */
	unsigned char *data; /* REC_FILE: done bytes read by the walk */
	size_t done;
	int read_err;
	bool have_after;     /* after: fstat once the walk had read it */
	struct stat after;
	int err;             /* REC_END: how the walk ended */
	size_t bytes;        /* counted against QUEUE_MAX_BYTES */
};

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t cond_put;  /* walk: room, the barrier lifted, or stop */
	pthread_cond_t cond_get;  /* framer: a record */
	struct rec *head, *tail;
	size_t count, bytes;
	/* Framed records go back to the walk thread to be freed: freed here, each would
	 * take the lock of the malloc arena the walk allocates from, while it does. */
	struct rec *done;
	bool barrier;             /* an open file is queued: the walk waits for the framer */
	bool framer_waiting;
	bool walk_waiting;        /* for room */
	atomic_bool stop;         /* the framer gave up: the walk ends at its next step */
};

struct creator {
	const struct archive_create_opts *opts;
	struct archive_create_result *res;
	struct walker walker;
	struct queue q;
	pthread_mutex_t report_lock;
	int root_fd;
	bool noatime;         /* the walk thread's: O_NOATIME has not been refused yet */
	struct ratelimit *rl; /* NULL: no I/O limit */
	struct archive *ar;
	struct archive_entry *entry;
	struct compressor *gz;
	bool la_entry_open; /* libarchive's last entry may still owe its padding */
	bool plain;         /* the entry being framed has a plain ustar header (ours) */
	uint64_t plain_size;
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

static int is_cancelled(void *opaque)
{
	struct creator *c = opaque;
	return c->opts->cancelled && c->opts->cancelled(c->opts->cancelled_opaque);
}

/* Between blocks of file data and between entries: cancellation and progress. */
static int checkpoint(struct creator *c)
{
	if (is_cancelled(c))
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

/* File bytes about to be archived: the I/O limit's say, per block. */
static int throttle(struct creator *c, size_t n)
{
	return c->rl ? ratelimit_wait(c->rl, n, is_cancelled, c) : 0;
}

/* A problem with an entry the framer holds (the walk's notes go through note()). */
__attribute__((format(printf, 3, 4))) static int fnote(struct creator *c, const char *path,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = report_note(&c->res->report, &c->report_lock, path, fmt, ap);
	va_end(ap);
	return r;
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

/* --- plain ustar headers -------------------------------------------------------------- *
 *
 * Most entries of a game server fit a plain ustar header: an ASCII name under 100 bytes,
 * small ids, a size under 8 GiB, a time before 2038. For those the header is written
 * here, as libarchive's restricted pax would write it (no extended header), which on
 * trees of small files takes a fifth of the CPU time libarchive's per-entry work did.
 * Everything else (long or non-ASCII names, big files and ids) goes through libarchive,
 * whose state stays consistent: its previous entry is finished (padded) before a plain
 * header follows, and plain entries pad themselves. */

#define USTAR_NAME_MAX 100

static bool ustar_name_ok(const char *s, size_t len)
{
	if (len >= USTAR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* digits octal digits and a space, as libarchive writes them (the rest of the field is
 * already NUL), so the same tree gives the same bytes whichever side framed an entry. */
static void ustar_octal(unsigned char *field, size_t digits, uint64_t v)
{
	field[digits] = ' ';
	for (size_t i = digits; i-- > 0; v >>= 3)
		field[i] = (unsigned char)('0' + (v & 7));
}

/* Raw tar bytes, for entries framed here: the same error handling as tar_out. */
static int raw_out(struct creator *c, const void *buf, size_t len)
{
	if (!c->err) {
		int r = compressor_write(c->gz, buf, len);
		if (r < 0)
			c->err = r;
	}
	return c->err;
}

/* 0 when written, 1 when the entry needs more than plain ustar (libarchive's then). */
static int ustar_header(struct creator *c, const char *path, const struct stat *st,
			unsigned type, const char *symlink, uint64_t size)
{
	size_t len = strlen(path), llen = symlink ? strlen(symlink) : 0;
	bool dir = type == AE_IFDIR;
	if (!ustar_name_ok(path, len + dir) || (symlink && !ustar_name_ok(symlink, llen)) ||
	    size > 077777777777ULL || st->st_uid > 0777777 || st->st_gid > 0777777 ||
	    st->st_mtim.tv_sec < 0 || st->st_mtim.tv_sec >= 0x7fffffff)
		return 1;
	unsigned char h[TAR_BLOCK];
	memset(h, 0, sizeof(h));
	memcpy(h, path, len);
	if (dir)
		h[len] = '/';
	ustar_octal(h + 100, 6, st->st_mode & 07777);
	ustar_octal(h + 108, 6, st->st_uid);
	ustar_octal(h + 116, 6, st->st_gid);
	ustar_octal(h + 124, 11, size);
	ustar_octal(h + 136, 11, (uint64_t)st->st_mtim.tv_sec);
	h[156] = dir ? '5' : symlink ? '2' : '0';
	if (symlink)
		memcpy(h + 157, symlink, llen);
	memcpy(h + 257, "ustar\0" "00", 8);
	ustar_octal(h + 329, 6, 0); /* devmajor */
	ustar_octal(h + 337, 6, 0); /* devminor */
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < sizeof(h); i++)
		sum += h[i];
	/* The checksum alone ends in a NUL and then the space. */
	ustar_octal(h + 148, 6, sum);
	h[154] = '\0';
	h[155] = ' ';

	/* libarchive's last entry (if it was one) gets its padding first. */
	if (c->la_entry_open) {
		c->la_entry_open = false;
		if (archive_write_finish_entry(c->ar) != ARCHIVE_OK)
			return tar_failed(c);
		if (c->err)
			return c->err;
	}
	c->plain = true;
	c->plain_size = size;
	return raw_out(c, h, sizeof(h));
}

/* 0 when the header is out, 1 when libarchive refused this one entry (noted), or a
 * fatal negative errno. */
static int put_header(struct creator *c, const char *path, const struct stat *st,
		      unsigned type, const char *symlink, uint64_t size)
{
	int r = ustar_header(c, path, st, type, symlink, size);
	if (r <= 0)
		return r;
	c->plain = false;

	struct archive_entry *e = archive_entry_clear(c->entry);

	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, st->st_mode & 07777);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(e, (la_int64_t)size);
	if (symlink)
		archive_entry_copy_symlink(e, symlink);

	r = archive_write_header(c->ar, e);
	if (c->err)
		return c->err;
	/* WARN: a name that is not UTF-8 went out as raw bytes (hdrcharset=BINARY), which
	 * is the faithful choice for a backup. */
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN) {
		c->la_entry_open = true;
		return 0;
	}
	if (r == ARCHIVE_FAILED) {
		r = fnote(c, path, "cannot be stored in a tar archive (%s); not archived",
			  archive_error_string(c->ar));
		return r < 0 ? r : 1;
	}
	return tar_failed(c);
}

static int put_data(struct creator *c, const void *buf, size_t len)
{
	if (c->plain)
		return raw_out(c, buf, len);
	la_ssize_t n = archive_write_data(c->ar, buf, len);
	if (c->err)
		return c->err;
	return n >= 0 && (size_t)n == len ? 0 : tar_failed(c);
}

/* After a plain entry's data: the zeros up to its next block. */
static int end_entry(struct creator *c)
{
	static const unsigned char zeros[TAR_BLOCK];
	size_t pad = (size_t)(-c->plain_size % TAR_BLOCK);
	c->plain = false;
	return pad ? raw_out(c, zeros, pad) : 0;
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

/* What became of a file after its data: short, grown or changed. */
static int file_outcome(struct creator *c, const char *path, const struct stat *st,
			uint64_t done, int read_err, const struct stat *after)
{
	char eb[128];
	uint64_t size = (uint64_t)st->st_size;
	if (done < size) {
		int r = pad_zeros(c, size - done);
		if (r < 0)
			return r;
		if (read_err)
			return fnote(c, path, "read failed after %llu of %llu bytes (%s); the rest "
					      "is zero-filled", (unsigned long long)done,
				     (unsigned long long)size, errstr(read_err, eb, sizeof(eb)));
		return fnote(c, path, "file shrank from %llu to %llu bytes while being read; "
				      "padded with zeros", (unsigned long long)size,
			     (unsigned long long)done);
	}
	if (!after)
		return 0;
	if ((uint64_t)after->st_size > size)
		return fnote(c, path, "file grew from %llu to %llu bytes while being read; "
				      "archived its first %llu bytes", (unsigned long long)size,
			     (unsigned long long)after->st_size, (unsigned long long)size);
	if (after->st_mtim.tv_sec != st->st_mtim.tv_sec ||
	    after->st_mtim.tv_nsec != st->st_mtim.tv_nsec)
		return fnote(c, path, "file changed while being read; the archived copy may "
				      "mix old and new contents");
	return 0;
}

/* read() of up to len bytes; a regular file opened O_NONBLOCK (see open_file) is
 * switched back to blocking only if the file system answers EAGAIN, as some network and
 * FUSE ones do, which saves two system calls per file everywhere else. */
static ssize_t read_some(int fd, void *buf, size_t len, bool *blocking)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && !*blocking) {
			*blocking = true;
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			continue;
		}
		return -1;
	}
}

/* A file queued open: read here in blocks, with cancellation and progress between. */
static int copy_file(struct creator *c, const struct rec *rec)
{
	uint64_t size = (uint64_t)rec->st.st_size, done = 0;
	int read_err = 0;
	bool blocking = false;

	while (done < size) {
		uint64_t want = size - done < READ_CHUNK ? size - done : READ_CHUNK;
		int r = throttle(c, (size_t)want);
		if (r < 0)
			return r;
		ssize_t n = read_some(rec->fd, c->buf, (size_t)want, &blocking);
		if (n < 0) {
			read_err = errno;
			break;
		}
		if (n == 0)
			break;
		r = put_data(c, c->buf, (size_t)n);
		if (r < 0)
			return r;
		done += (uint64_t)n;
		c->progress.bytes_read += (uint64_t)n;
		r = checkpoint(c);
		if (r < 0)
			return r;
	}
	c->res->bytes_in += size;
	struct stat after;
	bool have_after = done == size && fstat(rec->fd, &after) == 0;
	return file_outcome(c, rec->path, &rec->st, done, read_err, have_after ? &after : NULL);
}

static int frame(struct creator *c, const struct rec *rec)
{
	int r;
	switch (rec->kind) {
	case REC_DIR:
		r = put_header(c, rec->path, &rec->st, AE_IFDIR, NULL, 0);
		if (r == 0) {
			c->res->dirs++;
			c->progress.files++;
		}
		break;
	case REC_SYMLINK:
		r = put_header(c, rec->path, &rec->st, AE_IFLNK, rec->link, 0);
		if (r == 0) {
			c->res->symlinks++;
			c->progress.files++;
		}
		break;
	case REC_FILE:
		r = put_header(c, rec->path, &rec->st, AE_IFREG, NULL, (uint64_t)rec->st.st_size);
		if (r != 0)
			break;
		c->res->files++;
		c->progress.files++;
		if (rec->fd >= 0) {
			r = copy_file(c, rec);
			break;
		}
		if (rec->done && (r = throttle(c, rec->done)) < 0)
			break;
		if (rec->done && (r = put_data(c, rec->data, rec->done)) < 0)
			break;
		c->progress.bytes_read += rec->done;
		c->res->bytes_in += (uint64_t)rec->st.st_size;
		r = file_outcome(c, rec->path, &rec->st, rec->done, rec->read_err,
				 rec->have_after ? &rec->after : NULL);
		break;
	default:
		r = -EINVAL;
		break;
	}
	if (r == 0 && c->plain)
		r = end_entry(c);
	if (r < 0)
		return r;
	return checkpoint(c);
}

/* --- the walk thread's side --------------------------------------------------------- */

static struct rec *rec_new(enum rec_kind kind, const char *path, size_t path_len,
			   size_t link_len, size_t data_len)
{
	size_t extra = path_len + 1 + (link_len ? link_len + 1 : 0);
	struct rec *r = malloc(sizeof(*r) + extra + data_len);
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->fd = -1;
	char *p = (char *)(r + 1);
	memcpy(p, path, path_len);
	p[path_len] = '\0';
	r->path = p;
	p += path_len + 1;
	if (link_len) {
		r->link = p;
		p += link_len + 1;
	}
	r->data = (unsigned char *)p;
	r->bytes = sizeof(*r) + extra + data_len;
	return r;
}

static void rec_free(struct rec *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* Queues rec (taking it) and, for a file queued open, waits until the framer is done
 * with it. -ECANCELED once the framer has stopped. */
static void rec_free_list(struct rec *r)
{
	while (r) {
		struct rec *next = r->next;
		rec_free(r);
		r = next;
	}
}

static int enqueue(struct creator *c, struct rec *rec)
{
	struct queue *q = &c->q;
	pthread_mutex_lock(&q->lock);
	struct rec *done = q->done;
	q->done = NULL;
	while (!q->stop && rec->kind != REC_END && q->count &&
	       (q->count >= QUEUE_MAX_RECS || q->bytes + rec->bytes > QUEUE_MAX_BYTES)) {
		pthread_cond_signal(&q->cond_get);
		q->walk_waiting = true;
		pthread_cond_wait(&q->cond_put, &q->lock);
		q->walk_waiting = false;
	}
	if (q->stop && rec->kind != REC_END) {
		pthread_mutex_unlock(&q->lock);
		rec_free(rec);
		rec_free_list(done);
		return -ECANCELED;
	}
	bool open_file = rec->fd >= 0;
	rec->next = NULL;
	if (q->tail)
		q->tail->next = rec;
	else
		q->head = rec;
	q->tail = rec;
	q->count++;
	q->bytes += rec->bytes;
	if (open_file)
		q->barrier = true;
	if (q->framer_waiting && (open_file || rec->kind == REC_END || q->count >= QUEUE_WAKE_RECS ||
				  q->bytes >= QUEUE_WAKE_BYTES))
		pthread_cond_signal(&q->cond_get);
	while (open_file && q->barrier && !q->stop)
		pthread_cond_wait(&q->cond_put, &q->lock);
	int r = q->stop ? -ECANCELED : 0;
	pthread_mutex_unlock(&q->lock);
	rec_free_list(done);
	return r;
}

static int queue_stopped(struct creator *c)
{
	return atomic_load_explicit(&c->q.stop, memory_order_relaxed) ? -ECANCELED : 0;
}

static int queue_symlink(struct creator *c, int dirfd, const char *name, const struct stat *st)
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
		/* An empty target cannot be one (symlink(2) refuses it). */
		size_t len = n ? (size_t)n : 1;
		struct rec *rec = rec_new(REC_SYMLINK, c->walker.path.s, c->walker.path.len,
					  len, 0);
		if (!rec) {
			r = -ENOMEM;
		} else {
			memcpy((char *)rec->link, target, (size_t)n);
			((char *)rec->link)[n] = '\0';
			rec->st = *st;
			r = enqueue(c, rec);
		}
	}
	free(target);
	return r;
}

/* 0 when queued or noted, 1 when the name is no regular file any more (only when
 * probing, i.e. without a stat before: the caller then looks again), or < 0. */
static int queue_file(struct creator *c, int dirfd, const char *name, bool probing)
{
	char eb[128];
	/* O_NONBLOCK: should the name have turned into a FIFO since fstatat, open must not
	 * wait for a writer. O_NOFOLLOW: nor may it have turned into a way out of the root.
	 * O_NOATIME: a backup is no reason to dirty every inode; only the owner (or root)
	 * may ask, so after the first EPERM the walk stops asking. */
	int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = openat(dirfd, name, flags | (c->noatime ? O_NOATIME : 0));
	if (fd < 0 && errno == EPERM && c->noatime) {
		fd = openat(dirfd, name, flags);
		if (fd >= 0)
			c->noatime = false;
	}
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return note(&c->walker, "vanished before it could be read; not archived");
		if (e == ELOOP)
			return probing ? 1
				       : note(&c->walker, "became a symlink while being archived; "
							  "not archived");
		return note(&c->walker, "cannot be opened (%s); not archived",
			    errstr(e, eb, sizeof(eb)));
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return note(&c->walker, "cannot be examined (%s); not archived",
			    errstr(e, eb, sizeof(eb)));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return probing ? 1
			       : note(&c->walker, "stopped being a regular file while being "
						  "archived; not archived");
	}
	bool small = st.st_size <= SMALL_MAX;
	struct rec *rec = rec_new(REC_FILE, c->walker.path.s, c->walker.path.len, 0,
				  small ? (size_t)st.st_size : 0);
	if (!rec) {
		close(fd);
		return -ENOMEM;
	}
	rec->st = st;
	if (small) {
		size_t size = (size_t)st.st_size;
		bool blocking = false;
		while (rec->done < size) {
			ssize_t n = read_some(fd, rec->data + rec->done, size - rec->done, &blocking);
			if (n < 0) {
				rec->read_err = errno;
				break;
			}
			if (n == 0)
				break;
			rec->done += (size_t)n;
		}
		rec->have_after = rec->done == size && fstat(fd, &rec->after) == 0;
		close(fd);
	} else {
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		rec->fd = fd;
	}
	return enqueue(c, rec);
}

static int create_visit_reg(void *opaque, int dirfd, const char *name)
{
	struct creator *c = opaque;
	int r = queue_stopped(c);
	return r < 0 ? r : queue_file(c, dirfd, name, true);
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
	int r = queue_stopped(c);
	if (r < 0)
		return r;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR: {
		struct rec *rec = rec_new(REC_DIR, c->walker.path.s, c->walker.path.len, 0, 0);
		if (!rec)
			return -ENOMEM;
		rec->st = *st;
		return enqueue(c, rec);
	}
	case S_IFLNK:
		return queue_symlink(c, dirfd, name, st);
	case S_IFREG:
		r = queue_file(c, dirfd, name, false);
		return r < 0 ? r : 0;
	default:
		/* Only this thread counts these. */
		c->res->skipped++;
		return note(&c->walker, "%s: not archived", special_kind(st->st_mode));
	}
}

static void *walk_main(void *arg)
{
	struct creator *c = arg;
	/* Names go into records as bytes; no locale is involved on this side. */
	int r = walk_root(&c->walker, c->root_fd);
	struct rec *end = rec_new(REC_END, "", 0, 0, 0);
	if (!end) {
		/* Without memory for the last record, stop the framer the hard way. */
		pthread_mutex_lock(&c->q.lock);
		c->q.stop = true;
		pthread_cond_broadcast(&c->q.cond_get);
		pthread_mutex_unlock(&c->q.lock);
		return NULL;
	}
	end->err = r;
	enqueue(c, end);
	return NULL;
}

/* The next record, or NULL when the walk thread died without one (out of memory).
 * Cancellation and progress are looked at while waiting, too. */
static int dequeue(struct creator *c, struct rec *framed, struct rec **ret)
{
	struct queue *q = &c->q;
	*ret = NULL;
	pthread_mutex_lock(&q->lock);
	if (framed) {
		framed->next = q->done;
		q->done = framed;
	}
	while (!q->head && !q->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += QUEUE_POLL_NS;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		q->framer_waiting = true;
		int w = pthread_cond_timedwait(&q->cond_get, &q->lock, &until);
		q->framer_waiting = false;
		if (w == ETIMEDOUT && !q->head) {
			pthread_mutex_unlock(&q->lock);
			int r = checkpoint(c);
			if (r < 0)
				return r;
			pthread_mutex_lock(&q->lock);
		}
	}
	struct rec *rec = q->head;
	if (rec) {
		q->head = rec->next;
		if (!q->head)
			q->tail = NULL;
		q->count--;
		q->bytes -= rec->bytes;
		/* The walk waiting for room is woken once there is plenty, not per record. */
		if (q->walk_waiting &&
		    (q->count <= QUEUE_MAX_RECS / 2 && q->bytes <= QUEUE_MAX_BYTES / 2))
			pthread_cond_signal(&q->cond_put);
	}
	pthread_mutex_unlock(&q->lock);
	*ret = rec;
	return rec ? 0 : -ENOMEM;
}

/* A file queued open has been framed: the walk may go on. */
static void lift_barrier(struct creator *c)
{
	pthread_mutex_lock(&c->q.lock);
	c->q.barrier = false;
	pthread_cond_broadcast(&c->q.cond_put);
	pthread_mutex_unlock(&c->q.lock);
}

/* Frames every record until the walk's end; 0 or the first error. On an error the walk
 * is stopped and what it queued is thrown away, up to its end record. */
static int frame_all(struct creator *c)
{
	int r = 0;
	struct rec *framed = NULL;
	for (;;) {
		struct rec *rec = NULL;
		int e = dequeue(c, framed, &rec);
		framed = NULL;
		if (e < 0 && !rec) {
			if (r == 0)
				r = e;
			if (e == -ENOMEM)
				break; /* the walk thread has already left */
		} else if (rec->kind == REC_END) {
			if (r == 0)
				r = rec->err;
			rec_free(rec);
			break;
		} else {
			if (r == 0)
				r = frame(c, rec);
			framed = rec;
			if (rec->fd >= 0) {
				close(rec->fd);
				rec->fd = -1;
				lift_barrier(c);
			}
		}
		if (r < 0) {
			pthread_mutex_lock(&c->q.lock);
			if (!c->q.stop) {
				c->q.stop = true;
				pthread_cond_broadcast(&c->q.cond_put);
			}
			pthread_mutex_unlock(&c->q.lock);
		}
	}
	return r;
}

/* After the walk thread has been joined: whatever a stop left behind. */
static void queue_clear(struct queue *q)
{
	rec_free_list(q->head);
	rec_free_list(q->done);
	q->head = q->tail = q->done = NULL;
}

/* The sink as the compressor's writer thread sees it: hashes first, then passes on.
 * SHA-256 of each block is computed on a helper thread while this one computes SHA-1 and
 * hands the block to the sink: done one after the other, the two digests alone kept a
 * core busy for as long as it took to compress incompressible data. */
struct hashing_sink {
	struct hash *hash;
	const struct amber_sink *next;
	uint64_t written, max; /* max 0: no limit */
	bool too_big;
	/* The SHA-256 helper; absent when the thread budget is one. */
	bool helper;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const void *buf; /* the block the helper is to hash; NULL when it is done */
	size_t len;
	int err;
	bool stop;
};

static void *sha256_main(void *arg)
{
	struct hashing_sink *hs = arg;
	pthread_mutex_lock(&hs->lock);
	for (;;) {
		while (!hs->buf && !hs->stop)
			pthread_cond_wait(&hs->cond, &hs->lock);
		if (hs->stop)
			break;
		const void *buf = hs->buf;
		size_t len = hs->len;
		pthread_mutex_unlock(&hs->lock);
		int r = hash_update_sha256(hs->hash, buf, len);
		pthread_mutex_lock(&hs->lock);
		if (r < 0 && !hs->err)
			hs->err = r;
		hs->buf = NULL;
		pthread_cond_broadcast(&hs->cond);
	}
	pthread_mutex_unlock(&hs->lock);
	return NULL;
}

static int hashing_start(struct hashing_sink *hs, unsigned threads)
{
	pthread_mutex_init(&hs->lock, NULL);
	pthread_cond_init(&hs->cond, NULL);
	if (threads == 1)
		return 0;
	int r = pthread_create(&hs->thread, NULL, sha256_main, hs);
	hs->helper = r == 0;
	return -r;
}

/* After compressor_free: no block is in flight any more. */
static void hashing_stop(struct hashing_sink *hs)
{
	if (hs->helper) {
		pthread_mutex_lock(&hs->lock);
		hs->stop = true;
		pthread_cond_broadcast(&hs->cond);
		pthread_mutex_unlock(&hs->lock);
		pthread_join(hs->thread, NULL);
		hs->helper = false;
	}
	pthread_cond_destroy(&hs->cond);
	pthread_mutex_destroy(&hs->lock);
}

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
	if (!hs->helper) {
		int r = hash_update(hs->hash, buf, len);
		return r < 0 ? r : hs->next->write(hs->next->opaque, buf, len);
	}
	pthread_mutex_lock(&hs->lock);
	hs->buf = buf;
	hs->len = len;
	pthread_cond_broadcast(&hs->cond);
	pthread_mutex_unlock(&hs->lock);
	int r = hash_update_sha1(hs->hash, buf, len);
	if (r == 0)
		r = hs->next->write(hs->next->opaque, buf, len);
	/* The block is the compressor's again once this returns. */
	pthread_mutex_lock(&hs->lock);
	while (hs->buf)
		pthread_cond_wait(&hs->cond, &hs->lock);
	if (r == 0)
		r = hs->err;
	pthread_mutex_unlock(&hs->lock);
	return r;
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
	r = hashing_start(&hs, o->threads);
	c->buf = malloc(READ_CHUNK);
	if (!c->buf && r == 0)
		r = -ENOMEM;
	if (r == 0)
		r = compressor_new(o->compression, o->level, o->threads, &hsink, &c->gz);
	if (r == 0)
		r = tar_open(c);
	if (r == 0 && o->io_bytes_per_s)
		r = ratelimit_new(o->io_bytes_per_s, NULL, &c->rl);
	pthread_t walk_thread;
	bool walking = false;
	if (r == 0) {
		clock_gettime(CLOCK_MONOTONIC_COARSE, &c->last_progress);
		c->root_fd = root_fd;
		r = -pthread_create(&walk_thread, NULL, walk_main, c);
		walking = r == 0;
	}
	if (walking) {
		r = frame_all(c);
		pthread_join(walk_thread, NULL);
		queue_clear(&c->q);
	} else {
		close(root_fd);
	}
	ratelimit_free(c->rl);
	c->rl = NULL;
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
		/* Failed runs too: how far it got should not depend on how long it took. */
		if (o->progress)
			send_progress(c);
	}
	/* Joins the writer thread, the only other user of the hash (and of hs) but for
	 * the SHA-256 helper, which is stopped next. */
	compressor_free(c->gz);
	hashing_stop(&hs);
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
			.visit_reg = create_visit_reg,
		},
		.root_fd = -1,
		.noatime = true,
	};
	c.walker.opaque = &c;
	c.walker.report_lock = &c.report_lock;
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

	pthread_mutex_init(&c.report_lock, NULL);
	pthread_mutex_init(&c.q.lock, NULL);
	pthread_cond_init(&c.q.cond_put, NULL);
	pthread_cond_init(&c.q.cond_get, NULL);
	locale_t loc = utf8_locale_new();
	locale_t old = loc != (locale_t)0 ? uselocale(loc) : (locale_t)0;
	r = run(&c, root_fd, sink);
	if (loc != (locale_t)0) {
		uselocale(old);
		freelocale(loc);
	}
	pthread_cond_destroy(&c.q.cond_get);
	pthread_cond_destroy(&c.q.cond_put);
	pthread_mutex_destroy(&c.q.lock);
	pthread_mutex_destroy(&c.report_lock);
	return r;
}

void archive_create_result_clear(struct archive_create_result *r)
{
	report_clear(&r->report);
	memset(r, 0, sizeof(*r));
}
