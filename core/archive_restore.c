/*
 * Restore: a tar stream (gzip, zstd or uncompressed, detected from its first bytes)
 * pulled from an amber_source and written beneath opts->root.
 *
 * gzip is decoded here with ISA-L, which checks each member's CRC-32: libarchive's own
 * gzip reader skips that check, so a damaged stored block would restore silently.
 * zstd is decoded here with libzstd's streaming decoder (which checks the frame
 * checksum when there is one) rather than libarchive's zstd filter: both cost the same
 * (measured on the bench's 256 MiB dataset: within noise, ~5 % less CPU here), but
 * ours caps the window a stream may demand (ZD_WINDOW_LOG_MAX), which bounds memory.
 * libarchive then only parses the tar. Writing is ours, relative to a root directory
 * fd, because archive_write_disk resolves names against the process cwd and a daemon
 * must not chdir. Every parent directory is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) from the root fd (see path_beneath.c;
 * without openat2, one O_NOFOLLOW lookup per component), and the last component is
 * never followed. The root path itself is the daemon's and is trusted.
 *
 * Safety policy. A refused entry is named in result.report with the reason, counted in
 * result.refused, and the restore goes on with the next entry:
 *
 *  - Names: empty, absolute (leading '/'), or with any ".." component. Empty and "."
 *    components are dropped ("./a//b" is "a/b"). An entry naming the root itself ("./")
 *    is skipped silently if it is a directory: the root's own mode, owner and mtime are
 *    the daemon's, not the archive's; any other type naming the root is refused.
 *    A non-directory whose name ends in '/' is refused, and so is a name of PATH_MAX
 *    bytes or more (or with a component over NAME_MAX).
 *  - NUL bytes: tar and pax names reach us as C strings, so whatever followed a NUL is
 *    gone before we look; what is left is checked like any other name.
 *  - Through a symlink: an entry whose path has a symlink in any parent position is
 *    refused, whether the link came from the archive or was already in the root, and
 *    even if it points inside the root.
 *  - Symlinks: the target must be relative, its ".." components must all come first, and
 *    they may climb no higher than the root from the link's own directory. A ".." after a
 *    named component ("a/../b") is refused even when it looks harmless, because "a" may
 *    itself be a link, and chains of such links can step out of the root. Absolute
 *    targets are refused: the game server sees the root under another path anyway.
 *  - Hard links: the target must pass the name rules, name an entry already restored,
 *    and be a regular file (not a symlink: a relative target that stays inside from one
 *    directory can escape from another; not a directory). It is linked with linkat
 *    beneath the root, never following anything. A link to itself is refused. A hard
 *    link counts in result.files.
 *  - Character and block devices, FIFOs, sockets and unknown types: refused.
 *  - Existing paths: a non-directory in the way (file, symlink, FIFO, device) is unlinked
 *    and the entry created afresh. Regular files are always created O_CREAT|O_EXCL and
 *    never opened when they exist, so an old inode never receives data: a FIFO would
 *    block, a device would get the bytes, and a hard link would carry them to its other
 *    names, which may be outside the root. A directory in the way of a non-directory is
 *    never removed (it may hold user data): refused. A directory entry over an existing
 *    directory keeps it and applies the archive's mode and mtime.
 *  - Modes: permission bits and the sticky bit are kept; setuid and setgid are always
 *    stripped, also as root, since the archive is untrusted input.
 *  - Owner: opts->uid/gid (each when >= 0) when running as root, for every entry
 *    including directories created because a name implied them (0755 with the umask);
 *    otherwise entries are ours. The root is given the same owner if we create it.
 *  - Directories get their mode and mtime at the end, deepest first, so writing into a
 *    directory neither resets its mtime nor is blocked by a read-only mode.
 *
 * Errors: storage and resource errors (ENOSPC, EDQUOT, EIO, EROFS, EFBIG, ENOMEM, EMFILE,
 * ENFILE) end the restore with that code; errors that concern one entry only (name too
 * long, parent not a directory, ...) refuse that entry. A stream that is not a tar or is
 * damaged (including a header libarchive would skip to resync) ends it with -EBADMSG;
 * so does an empty stream. The source's own error and -ECANCELED pass through. A file
 * being written when the restore fails is removed rather than left short.
 * Truncation (opts->truncate) empties the root, never following links and never
 * removing the root, only once the first entry header has parsed (or the stream proved
 * to be a valid empty archive), so a bad source leaves the old files alone.
 */
#include "archive_restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "path_beneath.h"
#include "ratelimit.h"

#define IN_BUF_SIZE (256u * 1024u)
#define GZ_OUT_SIZE (256u * 1024u)
#define ZD_OUT_SIZE (256u * 1024u)
/* The largest zstd window a restore accepts: 8 MiB (what `zstd -19` uses; Amber's own
 * archives use 2 MiB at most), so a stream cannot make the restore allocate the 128 MiB
 * or more its header may ask for. Larger ones (--ultra, --long) are refused. */
#define ZD_WINDOW_LOG_MAX 23
/* Decompressors hand out 64 KiB blocks; gathering them cuts write calls 16-fold. */
#define OUT_BUF_SIZE (1024u * 1024u)
#define PROGRESS_INTERVAL_NS 250000000LL
/* gzip is inflated on a thread of its own, this many GZ_OUT_SIZE buffers ahead of the
 * tar parser and the file writes. */
#define GZ_SLOTS 8

/* The decompression thread's hand-off: a ring of output buffers. The one libarchive is
 * parsing stays counted (held) until its next read, as libarchive requires. */
struct gz_pipe {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* either side: a slot filled or freed, an end, or stop */
	unsigned char *buf[GZ_SLOTS];
	size_t len[GZ_SLOTS];
	unsigned head, count; /* filled slots, oldest first, the held one included */
	bool held;
	bool end;             /* no more slots will be filled: err says why */
	int err;              /* 0: the stream ended cleanly */
	bool stop;
};

struct dir_fixup {
	char *path;
	mode_t mode;
	bool has_times;
	struct timespec times[2];
	size_t depth, seq;
};

struct restore {
	const struct archive_restore_opts *opts;
	const struct amber_source *src;
	struct archive_restore_result *res;
	struct archive *a;
	struct beneath b;
	int err; /* the source's error, -ECANCELED or bad gzip, caught in the read callback */
	_Atomic uint64_t bytes_in; /* counted by the decompression thread when there is one */
	struct gz_pipe *pipe;      /* gzip: the decompression thread */
	unsigned char *gz_out;     /* gzip inflated on this thread (opts->threads == 1) */
	pthread_mutex_t cancel_lock; /* opts->cancelled is asked from both threads */
	struct ratelimit *rl;        /* NULL: file writes are not limited */
	unsigned char *in_buf, *out_buf;
	size_t in_len, in_pos; /* what the sniff read and raw_read has yet to hand out */
	bool src_eof;
	struct inflate_state *gz; /* set when the stream is gzip */
	bool gz_in_member;
	ZSTD_DStream *zd; /* set when the stream is zstd */
	ZSTD_inBuffer zd_in;
	unsigned char *zd_out;
	bool zd_in_frame;
	char *name, *link; /* normalized entry name and hard link target */
	size_t name_cap, link_cap;
	/* The last parent directory looked up: runs of entries share one. */
	char *cache_path;
	size_t cache_len, cache_cap;
	int cache_fd;
	struct dir_fixup *fix;
	size_t nfix, fix_cap;
	bool is_root; /* euid 0: permission bits never stand in our way */
	bool do_chown;
	uid_t uid;
	gid_t gid;
	int umask; /* -1 when unknown: then every file gets an fchmod */
	int64_t last_progress;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void progress(struct restore *r, bool force)
{
	if (!r->opts->progress)
		return;
	int64_t now = mono_ns();
	if (!force && now - r->last_progress < PROGRESS_INTERVAL_NS)
		return;
	r->last_progress = now;
	struct archive_restore_progress p = {
		.bytes_in = atomic_load(&r->bytes_in),
		.bytes_written = r->res->bytes_written,
		.files = r->res->files + r->res->dirs + r->res->symlinks,
	};
	r->opts->progress(r->opts->progress_opaque, &p);
}

static int check_cancel(struct restore *r)
{
	if (!r->opts->cancelled)
		return 0;
	pthread_mutex_lock(&r->cancel_lock);
	int c = r->opts->cancelled(r->opts->cancelled_opaque);
	pthread_mutex_unlock(&r->cancel_lock);
	return c ? -ECANCELED : 0;
}

static bool is_fatal(int err)
{
	switch (-err) {
	case ENOSPC:
	case EDQUOT:
	case EIO:
	case EROFS:
	case EFBIG:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EBADF:
	case EFAULT:
	case ECANCELED:
		return true;
	default:
		return false;
	}
}

static const char *errmsg(int err)
{
	switch (-err) {
	case ELOOP:
		return "path goes through a symlink";
	case ENOTDIR:
		return "a parent is not a directory";
	case ENAMETOOLONG:
		return "name too long";
	case EISDIR:
		return "a directory is in the way";
	case EXDEV:
		return "path leaves the root";
	default: {
		const char *s = strerrordesc_np(-err);
		return s ? s : "unknown error";
	}
	}
}

static int vnote(struct restore *r, const char *path, bool refused, const char *fmt,
		 va_list ap)
{
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return -ENOMEM;
	int err = report_add(&r->res->report, path, "%s", msg);
	free(msg);
	if (refused)
		r->res->refused++;
	return err;
}

/* A refused entry: reported and counted; 0 lets the restore go on. */
__attribute__((format(printf, 3, 4))) static int refuse(struct restore *r, const char *path,
							  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int err = vnote(r, path, true, fmt, ap);
	va_end(ap);
	return err;
}

/* An entry that was written but some detail of it (owner, mode, time) was not. */
__attribute__((format(printf, 3, 4))) static int note(struct restore *r, const char *path,
							const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int err = vnote(r, path, false, fmt, ap);
	va_end(ap);
	return err;
}

/* A failed syscall for one entry: the restore stops for storage trouble, otherwise the
 * entry is refused. */
static int entry_error(struct restore *r, const char *path, int err, const char *what)
{
	if (is_fatal(err))
		return err;
	return refuse(r, path, "%s: %s", what, errmsg(err));
}

static int meta_error(struct restore *r, const char *path, int err, const char *what)
{
	if (is_fatal(err))
		return err;
	return note(r, path, "%s: %s", what, errmsg(err));
}

static int stream_error(struct restore *r)
{
	if (r->err)
		return r->err;
	if (archive_errno(r->a) == ENOMEM)
		return -ENOMEM;
	return -EBADMSG;
}

/* Up to cap fresh bytes from the source at dst: > 0, 0 at its end, or an error. */
static int64_t source_fill(struct restore *r, unsigned char *dst, size_t cap)
{
	int err = check_cancel(r);
	if (err)
		return err;
	int64_t n = r->src->read(r->src->opaque, dst, cap);
	if (n < 0)
		return n >= -4095 ? n : -EIO;
	if ((uint64_t)n > cap)
		return -EIO;
	atomic_fetch_add(&r->bytes_in, (uint64_t)n);
	/* On the decompression thread, progress is the parser's to report. */
	if (!r->pipe)
		progress(r, false);
	return n;
}

/* Tar or zstd bytes go to libarchive as they come (after what the sniff read). */
static int64_t raw_read(struct restore *r, const void **buf)
{
	if (r->in_pos < r->in_len) {
		*buf = r->in_buf + r->in_pos;
		int64_t n = (int64_t)(r->in_len - r->in_pos);
		r->in_pos = r->in_len;
		return n;
	}
	if (r->src_eof)
		return 0;
	int64_t n = source_fill(r, r->in_buf, IN_BUF_SIZE);
	if (n <= 0) {
		r->src_eof = n == 0;
		return n;
	}
	*buf = r->in_buf;
	return n;
}

/* gzip is decoded here with ISA-L rather than by libarchive, whose gzip reader never
 * checks the CRC-32 in a member's trailer: a flipped bit in a stored block would be
 * restored without a word. Members follow one another; anything after the last one
 * that is not another member (block padding) is ignored, as gzip(1) does. */
static int64_t gunzip_fill(struct restore *r, unsigned char *out)
{
	struct inflate_state *st = r->gz;
	for (;;) {
		if (st->avail_in == 0 && !r->src_eof) {
			int64_t n = source_fill(r, r->in_buf, IN_BUF_SIZE);
			if (n < 0)
				return n;
			r->src_eof = n == 0;
			st->next_in = r->in_buf;
			st->avail_in = (uint32_t)n;
		}
		if (!r->gz_in_member) {
			if (st->avail_in == 0 || st->next_in[0] != 0x1f)
				return 0;
			uint8_t *in = st->next_in;
			uint32_t avail = st->avail_in;
			isal_inflate_reset(st);
			st->next_in = in;
			st->avail_in = avail;
			st->crc_flag = ISAL_GZIP;
			r->gz_in_member = true;
		}
		st->next_out = out;
		st->avail_out = GZ_OUT_SIZE;
		/* Anything but plain progress (a dictionary request, say) is not a gzip we
		 * wrote: the reader would otherwise spin on it. */
		int ret = isal_inflate(st);
		if (ret != ISAL_DECOMP_OK && ret != ISAL_END_INPUT && ret != ISAL_OUT_OVERFLOW)
			return -EBADMSG;
		if (st->block_state == ISAL_BLOCK_FINISH)
			r->gz_in_member = false;
		uint32_t produced = GZ_OUT_SIZE - st->avail_out;
		if (produced)
			return produced;
		if (r->gz_in_member && st->avail_in == 0 && r->src_eof)
			return -EBADMSG; /* cut off inside a member */
	}
}

/* zstd is decoded here too, with libzstd's streaming decoder (which checks each
 * frame's checksum when it has one), so its window can be capped and its errors are
 * ours. Frames follow one another; a stream that ends inside one is damaged. */
static int64_t unzstd_read(struct restore *r, const void **buf)
{
	for (;;) {
		if (r->zd_in.pos == r->zd_in.size && !r->src_eof) {
			int64_t n = source_fill(r, r->in_buf, IN_BUF_SIZE);
			if (n < 0)
				return n;
			r->src_eof = n == 0;
			r->zd_in = (ZSTD_inBuffer){ r->in_buf, (size_t)n, 0 };
		}
		ZSTD_outBuffer out = { r->zd_out, ZD_OUT_SIZE, 0 };
		size_t before = r->zd_in.pos;
		size_t rc = ZSTD_decompressStream(r->zd, &out, &r->zd_in);
		if (ZSTD_isError(rc))
			return -EBADMSG;
		/* Between frames with nothing read, the hint is for a next frame that may
		 * never come: only bytes taken or given say where we are. */
		if (r->zd_in.pos != before || out.pos)
			r->zd_in_frame = rc != 0;
		if (out.pos) {
			*buf = r->zd_out;
			return (int64_t)out.pos;
		}
		if (r->zd_in.pos == r->zd_in.size && r->src_eof)
			return r->zd_in_frame ? -EBADMSG : 0;
	}
}

static void *gz_main(void *arg)
{
	struct restore *r = arg;
	struct gz_pipe *p = r->pipe;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->count == GZ_SLOTS)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		unsigned slot = (p->head + p->count) % GZ_SLOTS;
		pthread_mutex_unlock(&p->lock);
		int64_t n = gunzip_fill(r, p->buf[slot]);
		pthread_mutex_lock(&p->lock);
		if (n <= 0) {
			p->end = true;
			p->err = (int)n;
			pthread_cond_broadcast(&p->cond);
			break;
		}
		p->len[slot] = (size_t)n;
		p->count++;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The next inflated buffer from the decompression thread: its length, 0 at the end of
 * the stream, or the thread's error. */
static int64_t gunzip_read(struct restore *r, const void **buf)
{
	struct gz_pipe *p = r->pipe;
	if (!p) {
		*buf = r->gz_out;
		return gunzip_fill(r, r->gz_out);
	}
	pthread_mutex_lock(&p->lock);
	if (p->held) {
		p->held = false;
		p->head = (p->head + 1) % GZ_SLOTS;
		p->count--;
		pthread_cond_broadcast(&p->cond);
	}
	while (!p->count && !p->end)
		pthread_cond_wait(&p->cond, &p->lock);
	int64_t n;
	if (p->count) {
		p->held = true;
		*buf = p->buf[p->head];
		n = (int64_t)p->len[p->head];
	} else {
		n = p->err;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static int gz_pipe_start(struct restore *r)
{
	struct gz_pipe *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	r->pipe = p;
	for (unsigned i = 0; i < GZ_SLOTS; i++)
		if (!(p->buf[i] = malloc(GZ_OUT_SIZE)))
			return -ENOMEM;
	int e = pthread_create(&p->thread, NULL, gz_main, r);
	p->started = e == 0;
	return -e;
}

static void gz_pipe_free(struct restore *r)
{
	struct gz_pipe *p = r->pipe;
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	for (unsigned i = 0; i < GZ_SLOTS; i++)
		free(p->buf[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	r->pipe = NULL;
}

static la_ssize_t source_read(struct archive *a, void *opaque, const void **buf)
{
	struct restore *r = opaque;
	int64_t n = r->gz ? gunzip_read(r, buf) : r->zd ? unzstd_read(r, buf) : raw_read(r, buf);
	if (n < 0) {
		r->err = (int)n;
		archive_set_error(a, (int)-n, "%s", n == -EBADMSG ? "damaged compressed data"
					     : n == -ECANCELED ? "cancelled"
							       : "source read failed");
		return -1;
	}
	return (la_ssize_t)n;
}

static int zstd_drain(struct restore *r)
{
	const void *buf;
	int64_t n;
	while ((n = unzstd_read(r, &buf)) > 0)
		;
	if (n < 0 && !r->err)
		r->err = (int)n;
	return (int)n;
}

static int zstd_start(struct restore *r)
{
	r->zd = ZSTD_createDStream();
	r->zd_out = malloc(ZD_OUT_SIZE);
	if (!r->zd || !r->zd_out)
		return -ENOMEM;
	if (ZSTD_isError(ZSTD_DCtx_setParameter(r->zd, ZSTD_d_windowLogMax, ZD_WINDOW_LOG_MAX)))
		return -ENOTSUP;
	r->zd_in = (ZSTD_inBuffer){ r->in_buf, r->in_len, 0 };
	r->in_pos = r->in_len;
	return 0;
}

/* Reads the first bytes, to tell gzip and zstd (ours to decode) from a plain tar
 * (libarchive's). */
static int sniff(struct restore *r)
{
	while (r->in_len < 4 && !r->src_eof) {
		int64_t n = source_fill(r, r->in_buf + r->in_len, IN_BUF_SIZE - r->in_len);
		if (n < 0)
			return (int)n;
		r->src_eof = n == 0;
		r->in_len += (size_t)n;
	}
	/* Not even an empty archive: a tar always has its end blocks. */
	if (r->in_len == 0)
		return -EBADMSG;
	if (r->in_len >= 4 && r->in_buf[0] == 0x28 && r->in_buf[1] == 0xb5 &&
	    r->in_buf[2] == 0x2f && r->in_buf[3] == 0xfd)
		return zstd_start(r);
	if (r->in_len < 2 || r->in_buf[0] != 0x1f || r->in_buf[1] != 0x8b)
		return 0;
	r->gz = malloc(sizeof(*r->gz));
	if (!r->gz)
		return -ENOMEM;
	isal_inflate_init(r->gz);
	r->gz->next_in = r->in_buf;
	r->gz->avail_in = (uint32_t)r->in_len;
	r->in_pos = r->in_len;
	if (r->opts->threads == 1) {
		r->gz_out = malloc(GZ_OUT_SIZE);
		return r->gz_out ? 0 : -ENOMEM;
	}
	/* From here on the source and the inflate state are the thread's. */
	return gz_pipe_start(r);
}

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t cap2 = *cap ? *cap : 256;
	while (cap2 < need)
		cap2 *= 2;
	char *p = realloc(*buf, cap2);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = cap2;
	return 0;
}

/* The directory holding r->name[0, plen), opened beneath the root (and created, with
 * its missing ancestors, if absent). The fd belongs to the cache; don't close it. */
static int parent_dir(struct restore *r, size_t plen, int *ret_fd)
{
	if (plen == 0) {
		*ret_fd = r->b.root_fd;
		return 0;
	}
	if (r->cache_fd >= 0 && r->cache_len == plen && !memcmp(r->cache_path, r->name, plen)) {
		*ret_fd = r->cache_fd;
		return 0;
	}
	int err = grow(&r->cache_path, &r->cache_cap, plen + 1);
	if (err)
		return err;
	char saved = r->name[plen];
	r->name[plen] = '\0';
	int fd;
	err = beneath_open_dir(&r->b, r->name, O_PATH, &fd);
	if (err == -ENOENT)
		err = beneath_mkdirs(&r->b, r->name, r->do_chown ? r->uid : (uid_t)-1,
				     r->do_chown ? r->gid : (gid_t)-1, &fd);
	r->name[plen] = saved;
	if (err)
		return err;
	if (r->cache_fd >= 0)
		close(r->cache_fd);
	r->cache_fd = fd;
	memcpy(r->cache_path, r->name, plen);
	r->cache_len = plen;
	*ret_fd = fd;
	return 0;
}

/* Clears a non-directory out of the way; -EISDIR for a directory, which stays. */
static int remove_nondir(int dir_fd, const char *leaf)
{
	if (unlinkat(dir_fd, leaf, 0) == 0 || errno == ENOENT)
		return 0;
	return errno == EPERM ? -EISDIR : -errno;
}

static bool entry_times(struct archive_entry *e, struct timespec ts[2])
{
	if (!archive_entry_mtime_is_set(e))
		return false;
	long ns = archive_entry_mtime_nsec(e);
	ts[1].tv_sec = archive_entry_mtime(e);
	ts[1].tv_nsec = ns >= 0 && ns < 1000000000L ? ns : 0;
	if (archive_entry_atime_is_set(e)) {
		ns = archive_entry_atime_nsec(e);
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = ns >= 0 && ns < 1000000000L ? ns : 0;
	} else {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
	}
	return true;
}

static mode_t entry_mode(struct archive_entry *e)
{
	return archive_entry_perm(e) & (S_ISVTX | S_IRWXU | S_IRWXG | S_IRWXO);
}

static int is_cancelled(void *opaque)
{
	return check_cancel(opaque) != 0;
}

static int write_all(struct restore *r, int fd, const unsigned char *p, size_t len, int64_t off)
{
	if (r->rl) {
		int err = ratelimit_wait(r->rl, len, is_cancelled, r);
		if (err)
			return err;
	}
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
		r->res->bytes_written += (uint64_t)n;
	}
	return 0;
}

/* Copies the entry's data into fd. Blocks are gathered into out_buf; a jump in the
 * offsets (a sparse file's hole) flushes and leaves the hole unwritten. */
static int write_data(struct restore *r, int fd, int64_t size)
{
	size_t fill = 0;
	int64_t buf_off = 0, end = 0;
	int err = 0;
	for (;;) {
		const void *blk;
		size_t len;
		la_int64_t off;
		int ar = archive_read_data_block(r->a, &blk, &len, &off);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
			return stream_error(r);
		if ((err = check_cancel(r)))
			return err;
		if (len == 0)
			continue;
		if (off < 0)
			return -EBADMSG;
		if (fill && off != buf_off + (int64_t)fill) {
			if ((err = write_all(r, fd, r->out_buf, fill, buf_off)))
				return err;
			fill = 0;
		}
		if (!fill)
			buf_off = off;
		const unsigned char *p = blk;
		if (!fill && len >= OUT_BUF_SIZE) {
			if ((err = write_all(r, fd, p, len, off)))
				return err;
			end = off + (int64_t)len;
		} else {
			while (len) {
				size_t n = OUT_BUF_SIZE - fill;
				n = n < len ? n : len;
				memcpy(r->out_buf + fill, p, n);
				fill += n;
				p += n;
				len -= n;
				if (fill == OUT_BUF_SIZE) {
					if ((err = write_all(r, fd, r->out_buf, fill, buf_off)))
						return err;
					buf_off += (int64_t)fill;
					fill = 0;
				}
			}
			end = buf_off + (int64_t)fill;
		}
		progress(r, false);
	}
	if (fill && (err = write_all(r, fd, r->out_buf, fill, buf_off)))
		return err;
	/* A sparse file that ends in a hole. */
	if (size > end && ftruncate(fd, size) < 0)
		return -errno;
	return 0;
}

static int restore_file(struct restore *r, struct archive_entry *e, const char *raw, int dir_fd,
			const char *leaf)
{
	mode_t mode = entry_mode(e);
	int fd;
	for (int tries = 0;; tries++) {
		fd = openat(dir_fd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    mode);
		if (fd >= 0)
			break;
		int err = -errno;
		if (err == -EEXIST && tries == 0 && !(err = remove_nondir(dir_fd, leaf)))
			continue;
		return entry_error(r, raw, err, "cannot create file");
	}
	int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
	int err = write_data(r, fd, size);
	if (err) {
		/* No silently short file is left behind for a restore that failed. */
		close(fd);
		unlinkat(dir_fd, leaf, 0);
		return err;
	}
	if (r->do_chown && fchown(fd, r->uid, r->gid) < 0)
		err = meta_error(r, raw, -errno, "cannot set owner");
	/* O_CREAT applied the umask; only then does the mode need setting again. */
	if (!err && (r->umask < 0 || (mode & (mode_t)r->umask)) && fchmod(fd, mode) < 0)
		err = meta_error(r, raw, -errno, "cannot set mode");
	struct timespec ts[2];
	if (!err && entry_times(e, ts) && futimens(fd, ts) < 0)
		err = meta_error(r, raw, -errno, "cannot set mtime");
	if (close(fd) < 0 && !err && errno != EINTR)
		err = -errno;
	if (err)
		return err;
	r->res->files++;
	return 0;
}

static int add_fixup(struct restore *r, struct archive_entry *e, size_t depth)
{
	if (r->nfix == r->fix_cap) {
		size_t cap = r->fix_cap ? r->fix_cap * 2 : 64;
		struct dir_fixup *f = realloc(r->fix, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		r->fix = f;
		r->fix_cap = cap;
	}
	struct dir_fixup *f = &r->fix[r->nfix];
	if (!(f->path = strdup(r->name)))
		return -ENOMEM;
	f->mode = entry_mode(e);
	f->has_times = entry_times(e, f->times);
	f->depth = depth;
	f->seq = r->nfix++;
	return 0;
}

static int restore_dir(struct restore *r, struct archive_entry *e, const char *raw, int dir_fd,
		       const char *leaf, size_t depth)
{
	if (mkdirat(dir_fd, leaf, 0755) < 0) {
		int err = -errno;
		struct stat st;
		if (err != -EEXIST)
			return entry_error(r, raw, err, "cannot create directory");
		if (fstatat(dir_fd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return entry_error(r, raw, -errno, "cannot create directory");
		if (!S_ISDIR(st.st_mode)) {
			if ((err = remove_nondir(dir_fd, leaf)) ||
			    (mkdirat(dir_fd, leaf, 0755) < 0 && (err = -errno)))
				return entry_error(r, raw, err, "cannot create directory");
		} else if (!r->is_root && (st.st_mode & (S_IWUSR | S_IXUSR)) != (S_IWUSR | S_IXUSR)) {
			/* A read-only directory from an earlier restore would refuse the
			 * entries about to go into it; its mode is set again at the end. */
			int fd;
			if (!beneath_open_dir(&r->b, r->name, O_RDONLY, &fd)) {
				err = fchmod(fd, (st.st_mode & 07777) | S_IRWXU) < 0 ? -errno : 0;
				close(fd);
				if (is_fatal(err))
					return err;
			}
		}
	}
	if (r->do_chown && fchownat(dir_fd, leaf, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		int err = meta_error(r, raw, -errno, "cannot set owner");
		if (err)
			return err;
	}
	int err = add_fixup(r, e, depth);
	if (err)
		return err;
	r->res->dirs++;
	return 0;
}

static int restore_symlink(struct restore *r, struct archive_entry *e, const char *raw,
			   const char *target, int dir_fd, const char *leaf)
{
	for (int tries = 0;; tries++) {
		if (symlinkat(target, dir_fd, leaf) == 0)
			break;
		int err = -errno;
		if (err == -EEXIST && tries == 0 && !(err = remove_nondir(dir_fd, leaf)))
			continue;
		return entry_error(r, raw, err, "cannot create symlink");
	}
	if (r->do_chown && fchownat(dir_fd, leaf, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		int err = meta_error(r, raw, -errno, "cannot set owner");
		if (err)
			return err;
	}
	struct timespec ts[2];
	if (entry_times(e, ts) && utimensat(dir_fd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0) {
		int err = meta_error(r, raw, -errno, "cannot set mtime");
		if (err)
			return err;
	}
	r->res->symlinks++;
	return 0;
}

/* r->link holds the normalized target (depth >= 1), already checked by name. */
static int restore_hardlink(struct restore *r, const char *raw, int dir_fd, const char *leaf)
{
	char *slash = strrchr(r->link, '/');
	const char *tleaf = slash ? slash + 1 : r->link;
	int tdir = r->b.root_fd;
	if (slash) {
		*slash = '\0';
		int err = beneath_open_dir(&r->b, r->link, O_PATH, &tdir);
		*slash = '/';
		if (err == -ENOENT)
			return refuse(r, raw, "hard link target \"%s\" not found", r->link);
		if (err)
			return entry_error(r, raw, err, "hard link target");
	}
	int err = 0;
	struct stat st;
	if (fstatat(tdir, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		err = errno == ENOENT
			      ? refuse(r, raw, "hard link target \"%s\" not found", r->link)
			      : entry_error(r, raw, -errno, "hard link target");
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = refuse(r, raw, "hard link target \"%s\" is not a regular file", r->link);
		goto out;
	}
	for (int tries = 0;; tries++) {
		if (linkat(tdir, tleaf, dir_fd, leaf, 0) == 0) {
			r->res->files++;
			break;
		}
		err = -errno;
		if (err == -EEXIST && tries == 0 && !(err = remove_nondir(dir_fd, leaf)))
			continue;
		err = entry_error(r, raw, err, "cannot create hard link");
		break;
	}
out:
	if (tdir != r->b.root_fd)
		close(tdir);
	return err;
}

static const char *type_name(mode_t type)
{
	switch (type) {
	case AE_IFCHR:
		return "character device";
	case AE_IFBLK:
		return "block device";
	case AE_IFIFO:
		return "FIFO";
	case AE_IFSOCK:
		return "socket";
	default:
		return NULL;
	}
}

static int restore_entry(struct restore *r, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e);
	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	if (!raw)
		return refuse(r, "", "name cannot be read");
	size_t len = strlen(raw);
	int err = grow(&r->name, &r->name_cap, len + 1);
	if (err)
		return err;
	size_t depth;
	enum beneath_verdict v = beneath_normalize(raw, r->name, &depth);
	if (v)
		return refuse(r, raw, "name %s", beneath_verdict_str(v));
	/* openat2 would say so for the parent; the component walk would not, and a tree
	 * no path can name is one that other tools cannot clean up. */
	if (strlen(r->name) >= PATH_MAX)
		return refuse(r, raw, "name too long");

	const char *hardlink = archive_entry_hardlink(e);
	if (!hardlink)
		hardlink = archive_entry_hardlink_utf8(e);
	mode_t type = archive_entry_filetype(e);
	bool is_dir = !hardlink && type == AE_IFDIR;
	if (depth == 0)
		return is_dir ? 0 : refuse(r, raw, "a non-directory names the root itself");
	if (!is_dir && raw[len - 1] == '/')
		return refuse(r, raw, "trailing slash on a non-directory");

	/* Everything that can be judged from the header is, before any directory is
	 * looked up or created for the entry. */
	const char *target = NULL;
	if (hardlink) {
		if ((err = grow(&r->link, &r->link_cap, strlen(hardlink) + 1)))
			return err;
		size_t tdepth;
		v = beneath_normalize(hardlink, r->link, &tdepth);
		if (v)
			return refuse(r, raw, "hard link target \"%s\" %s", hardlink,
				      beneath_verdict_str(v));
		if (tdepth == 0)
			return refuse(r, raw, "hard link to the root");
		if (!strcmp(r->link, r->name))
			return refuse(r, raw, "hard link to itself");
	} else if (type == AE_IFLNK) {
		target = archive_entry_symlink(e);
		if (!target)
			target = archive_entry_symlink_utf8(e);
		v = beneath_check_link_target(target, depth - 1);
		if (v)
			return refuse(r, raw, "symlink target \"%s\" %s", target ? target : "",
				      beneath_verdict_str(v));
	} else if (type != AE_IFREG && type != AE_IFDIR) {
		const char *tn = type_name(type);
		if (tn)
			return refuse(r, raw, "%s not restored", tn);
		return refuse(r, raw, "unsupported entry type 0%o", (unsigned)type);
	}

	char *slash = strrchr(r->name, '/');
	size_t plen = slash ? (size_t)(slash - r->name) : 0;
	const char *leaf = slash ? slash + 1 : r->name;
	int dir_fd;
	if ((err = parent_dir(r, plen, &dir_fd)))
		return entry_error(r, raw, err, "parent directory");

	if (hardlink)
		return restore_hardlink(r, raw, dir_fd, leaf);
	if (target)
		return restore_symlink(r, e, raw, target, dir_fd, leaf);
	if (is_dir)
		return restore_dir(r, e, raw, dir_fd, leaf, depth);
	return restore_file(r, e, raw, dir_fd, leaf);
}

static int fixup_cmp(const void *pa, const void *pb)
{
	const struct dir_fixup *a = pa, *b = pb;
	if (a->depth != b->depth)
		return a->depth > b->depth ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Deepest first, so a parent's mode never bars the way to a child still to be fixed;
 * for the same directory twice, the later entry wins. */
static int apply_fixups(struct restore *r)
{
	if (r->nfix > 1)
		qsort(r->fix, r->nfix, sizeof(*r->fix), fixup_cmp);
	for (size_t i = 0; i < r->nfix; i++) {
		struct dir_fixup *f = &r->fix[i];
		int fd, err = beneath_open_dir(&r->b, f->path, O_RDONLY, &fd);
		if (err) {
			if ((err = meta_error(r, f->path, err, "cannot set mode and mtime")))
				return err;
			continue;
		}
		if (fchmod(fd, f->mode) < 0)
			err = meta_error(r, f->path, -errno, "cannot set mode");
		if (!err && f->has_times && futimens(fd, f->times) < 0)
			err = meta_error(r, f->path, -errno, "cannot set mtime");
		close(fd);
		if (err)
			return err;
	}
	return 0;
}

/* The umask, without the set-and-restore dance that would race other threads. */
static int read_umask(void)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nUmask:");
	if (!p)
		return -1;
	char *endp;
	long m = strtol(p + 7, &endp, 8);
	return endp == p + 7 || m < 0 || m > 0777 ? -1 : (int)m;
}

/* mkdir -p for the root itself, a path the daemon trusts; only the last directory, if
 * we create it, is given to the configured owner. */
static int make_root(struct restore *r, const char *root)
{
	char *p = strdup(root);
	if (!p)
		return -ENOMEM;
	int err = 0;
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	for (char *s = p + 1;; s++) {
		bool last = *s == '\0';
		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, 0755) == 0) {
			if (last && r->do_chown && lchown(p, r->uid, r->gid) < 0)
				err = -errno;
		} else if (errno != EEXIST) {
			err = -errno;
		}
		if (last || err)
			break;
		*s = '/';
	}
	free(p);
	return err;
}

static int run(struct restore *r)
{
	const struct archive_restore_opts *opts = r->opts;
	int err = make_root(r, opts->root);
	if (err)
		return err;
	r->b.root_fd = open(opts->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->b.root_fd < 0)
		return -errno;
	r->umask = read_umask();
	r->in_buf = malloc(IN_BUF_SIZE);
	r->out_buf = malloc(OUT_BUF_SIZE);
	r->a = archive_read_new();
	if (!r->in_buf || !r->out_buf || !r->a)
		return -ENOMEM;
	if ((err = sniff(r)))
		return err;
	/* WARN from a filter means it would run an external program: still usable.
	 * Behind our gzip decoder there must be a tar, so no filter is offered there:
	 * a tar whose first name happens to start like gzip is not decoded twice. */
	if (archive_read_support_format_tar(r->a) < ARCHIVE_WARN ||
	    (!r->gz && !r->zd && (archive_read_support_filter_gzip(r->a) < ARCHIVE_WARN ||
			archive_read_support_filter_zstd(r->a) < ARCHIVE_WARN)))
		return -ENOTSUP;
	if (archive_read_open2(r->a, r, NULL, source_read, NULL, NULL) != ARCHIVE_OK)
		return stream_error(r);

	bool truncate_pending = opts->truncate, first = true;
	for (;;) {
		if ((err = check_cancel(r)))
			return err;
		struct archive_entry *e;
		int ar = archive_read_next_header(r->a, &e);
		if (ar == ARCHIVE_EOF) {
			/* An empty archive still has its end blocks, which is how libarchive
			 * recognized it; no bytes at all is not one. */
			if (first && archive_format(r->a) == 0)
				return -EBADMSG;
			/* The tar ends before the frame does: its last bytes (the checksum)
			 * must still be read for the frame to count as whole. */
			if (r->zd && (err = zstd_drain(r)))
				return err;
			break;
		}
		first = false;
		if (ar == ARCHIVE_FAILED) {
			/* This entry is unusable but the stream can go on. */
			const char *raw = archive_entry_pathname(e);
			if ((err = refuse(r, raw ? raw : "", "unreadable entry: %s",
					  archive_error_string(r->a) ? archive_error_string(r->a)
								     : "unknown error")))
				return err;
			continue;
		}
		/* RETRY is libarchive resyncing after a damaged header: for a backup that
		 * means a damaged archive, not something to skip over. */
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
			return stream_error(r);
		if (truncate_pending) {
			truncate_pending = false;
			if ((err = beneath_empty_dir(r->b.root_fd)))
				return err;
		}
		if ((err = restore_entry(r, e)))
			return err;
		progress(r, false);
	}
	if (truncate_pending && (err = beneath_empty_dir(r->b.root_fd)))
		return err;
	return 0;
}

int archive_restore(const struct archive_restore_opts *opts, const struct amber_source *src,
		    struct archive_restore_result *ret)
{
	if (!ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (!opts || !opts->root || !*opts->root || !src || !src->read)
		return -EINVAL;
	if (opts->uid > (int64_t)UINT32_MAX - 1 || opts->gid > (int64_t)UINT32_MAX - 1)
		return -EINVAL;
	struct restore r = {
		.opts = opts,
		.src = src,
		.res = ret,
		.b = { .root_fd = -1 },
		.cache_fd = -1,
		.umask = -1,
		.is_root = geteuid() == 0,
		.do_chown = geteuid() == 0 && (opts->uid >= 0 || opts->gid >= 0),
		.uid = opts->uid >= 0 ? (uid_t)opts->uid : (uid_t)-1,
		.gid = opts->gid >= 0 ? (gid_t)opts->gid : (gid_t)-1,
		.last_progress = mono_ns(),
	};
	pthread_mutex_init(&r.cancel_lock, NULL);
	int err = opts->io_bytes_per_s ? ratelimit_new(opts->io_bytes_per_s, NULL, &r.rl) : 0;
	if (!err)
		err = run(&r);
	/* Stops the decompression thread, the other user of the source and r.gz. */
	gz_pipe_free(&r);
	/* Directories restored before a failure still get their modes: a half-restored
	 * tree with the archive's permissions beats one with ours. */
	if (r.b.root_fd >= 0 && r.nfix) {
		int ferr = apply_fixups(&r);
		if (!err)
			err = ferr;
	}
	if (!err)
		progress(&r, true);
	if (r.a)
		archive_read_free(r.a);
	if (r.cache_fd >= 0)
		close(r.cache_fd);
	if (r.b.root_fd >= 0)
		close(r.b.root_fd);
	for (size_t i = 0; i < r.nfix; i++)
		free(r.fix[i].path);
	free(r.fix);
	free(r.cache_path);
	free(r.name);
	free(r.link);
	free(r.in_buf);
	free(r.gz);
	ZSTD_freeDStream(r.zd);
	free(r.zd_out);
	free(r.out_buf);
	free(r.gz_out);
	pthread_mutex_destroy(&r.cancel_lock);
	ratelimit_free(r.rl);
	return err;
}

void archive_restore_result_clear(struct archive_restore_result *r)
{
	if (!r)
		return;
	report_clear(&r->report);
	memset(r, 0, sizeof(*r));
}
