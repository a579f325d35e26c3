/*
 * wings: backups as plain files in one local directory.
 *
 * An object lives at <path>/<key>. A create stream writes a hidden temporary file beside
 * its final name, and only writer_commit moves it there, after the data reached the
 * disk: a crash, a full disk or an abort never leaves a half-written file under a key.
 * Every file system call is relative to a directory descriptor opened once, so a moved
 * or replaced <path> cannot redirect an operation, and no symbolic link below <path> is
 * ever followed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <amber/adapter.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef WINGS_VERSION
#define WINGS_VERSION "0.0.0"
#endif

#define KEY_COMPONENT_MAX 128
#define KEY_MAX (2 * KEY_COMPONENT_MAX + 1)
#define PARTIAL_SUFFIX ".partial"
#define PARTIAL_RANDOM_HEX 16
/* "." leaf "." random ".partial" */
#define PARTIAL_NAME_MAX (1 + KEY_COMPONENT_MAX + 1 + PARTIAL_RANDOM_HEX + 8)
/* A live create stream touches its file's mtime with every write; a temporary file left
 * alone this long belongs to a process that died. */
#define STALE_PARTIAL_SECONDS (24 * 60 * 60)
/* Name collisions and the race with remove() dropping an emptied server directory both
 * resolve on a retry; more than a few in a row means something else is wrong. */
#define CREATE_ATTEMPTS 8
/* read() of more than SSIZE_MAX is undefined, and Linux moves at most ~2 GiB a call. */
#define READ_CHUNK_MAX (1u << 30)
/* With fsync on, writeback of each this-many bytes is started as soon as they are
 * written, so the fsync before commit finds little left to do instead of the whole
 * archive (the kernel's own background writeback may not start for gigabytes). */
#define WRITEBACK_CHUNK ((uint64_t)8 << 20)
/* With fsync on, archives are written with O_DIRECT where the file system allows it,
 * through two aligned buffers of this size (one filled while a thread writes the other): the data must reach the disk before commit
 * anyway, and copying it into page cache first cost more CPU than compressing it (the
 * page cache a backup fills is rarely read again soon). */
#define DIRECT_BUF ((size_t)4 << 20)
#define DIRECT_ALIGN 4096

struct amber_instance {
	int root;         /* the backup directory, opened once */
	int fsync;        /* flush data and directory entries before reporting success */
	const char *path; /* for messages; the config keeps it alive */
};

/* A valid key, and its parts: sub is "" for a key without '/'. */
struct key {
	char full[KEY_MAX + 1];
	char sub[KEY_COMPONENT_MAX + 1];
	char leaf[KEY_COMPONENT_MAX + 1];
};

struct amber_writer {
	amber_instance *inst;
	struct key key;
	int dir; /* holds the temporary file and, after commit, the final one */
	int fd;
	int tmp_exists;
	int failed; /* a write or flush failed: the file's contents are unknown */
	int committed;
	uint64_t written;
	uint64_t flushed; /* writeback started for [0, flushed) */
	/* O_DIRECT: the buffer being filled (NULL: plain buffered writes) and the other
	 * one, which the I/O thread may be writing meanwhile. */
	unsigned char *dbuf, *dbuf_other;
	size_t dfill;
	pthread_t io;
	int io_started;
	pthread_mutex_t io_lock;
	pthread_cond_t io_cond;
	const unsigned char *io_buf; /* the full buffer being written; NULL: idle */
	int io_err;                  /* errno of the I/O thread's first failed write */
	int io_stop;
	int direct; /* O_DIRECT was set (set before the I/O thread starts, then read-only) */
	char tmp[PARTIAL_NAME_MAX + 1];
};

struct amber_reader {
	amber_instance *inst;
	struct key key;
	int fd;
	uint64_t pos;
};

static const amber_config_field wings_config[] = {
	{ "path", AMBER_CFG_STRING, AMBER_CFG_REQUIRED, NULL,
	  "absolute path of the backup directory; created (0700) if missing" },
	{ "fsync", AMBER_CFG_BOOL, 0, "true",
	  "flush every backup to disk before reporting it complete" },
	{ 0 },
};

/* What the host should do about a failed system call (see the codes in adapter.h). */
static int errno_code(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return AMBER_ENOSPC;
	case ENOMEM:
		return AMBER_ENOMEM;
	case EACCES:
	case EPERM:
	case EROFS:
		return AMBER_EPERM;
	case EMFILE:
	case ENFILE:
		return AMBER_EAGAIN;
	default:
		return AMBER_EIO;
	}
}

static int fail_errno(amber_ctx *ctx, int e, const char *fmt, ...) AMBER_PRINTF(3, 4);
static int fail_errno(amber_ctx *ctx, int e, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* glibc (2.32+) and musl return constant strings for every errno the kernel
	 * produces, so strerror is safe on the host's worker threads. */
	return amber_host_api->set_error(ctx, errno_code(e), "%s: %s", what, strerror(e));
}

static int is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* A leading '.' rules out "." and "..", and keeps keys apart from our temporary files. */
static int component_ok(const char *s, size_t n)
{
	if (n == 0 || n > KEY_COMPONENT_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_name_char(s[i]))
			return 0;
	return 1;
}

static int parse_key(amber_ctx *ctx, const char *key, struct key *ret)
{
	if (!key)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "no key given");

	size_t len = strnlen(key, KEY_MAX + 1);
	const char *slash = memchr(key, '/', len);
	const char *leaf = slash ? slash + 1 : key;
	size_t sub_len = slash ? (size_t)(slash - key) : 0;
	size_t leaf_len = len - (size_t)(leaf - key);

	if (len > KEY_MAX || (slash && !component_ok(key, sub_len)) ||
	    !component_ok(leaf, leaf_len)) {
		/* The key may come from a request: never echo bytes that could forge a log
		 * line. */
		char shown[64 + sizeof("...")];
		size_t n = 0;
		for (; key[n] && n < 64; n++)
			shown[n] = (key[n] >= 0x20 && key[n] < 0x7f) ? key[n] : '?';
		snprintf(shown + n, sizeof(shown) - n, "%s", key[n] ? "..." : "");
		return amber_host_api->set_error(
			ctx, AMBER_EINVAL,
			"invalid key \"%s\": expected NAME or DIR/NAME, each 1 to %d characters "
			"of [A-Za-z0-9._-] not starting with '.'",
			shown, KEY_COMPONENT_MAX);
	}
	memcpy(ret->full, key, len + 1);
	memcpy(ret->sub, key, sub_len);
	ret->sub[sub_len] = 0;
	memcpy(ret->leaf, leaf, leaf_len);
	ret->leaf[leaf_len] = 0;
	return AMBER_OK;
}

static int fsync_retry(int fd)
{
	int r;

	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Some file systems cannot fsync a directory at all; that is not a failure to store. */
static int fsync_dir(int fd)
{
	if (fsync_retry(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		return -1;
	return 0;
}

/* Opens the directory that holds key's file. When create is 0, a missing directory sets
 * *ret_missing and returns AMBER_ENOTFOUND without a message: the caller words it. */
static int open_key_dir(amber_instance *self, amber_ctx *ctx, const struct key *k, int create,
			int *ret_fd, int *ret_missing)
{
	int fd, e;

	*ret_missing = 0;
	if (!k->sub[0]) {
		/* A descriptor of its own, so every writer and reader closes what it holds. */
		fd = fcntl(self->root, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return fail_errno(ctx, errno, "%s", self->path);
		*ret_fd = fd;
		return AMBER_OK;
	}
	for (int attempt = 1;; attempt++) {
		if (create && mkdirat(self->root, k->sub, 0700) < 0 && errno != EEXIST)
			return fail_errno(ctx, errno, "create directory %s/%s", self->path, k->sub);
		fd = openat(self->root, k->sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			*ret_fd = fd;
			return AMBER_OK;
		}
		e = errno;
		/* A concurrent remove() may drop the directory between mkdir and open. */
		if (!create || e != ENOENT || attempt == CREATE_ATTEMPTS)
			break;
	}

	struct stat st;
	int is_link = fstatat(self->root, k->sub, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		      S_ISLNK(st.st_mode);
	if (is_link)
		return amber_host_api->set_error(
			ctx, AMBER_EIO, "%s/%s is a symbolic link, which is never followed",
			self->path, k->sub);
	if (!create && (e == ENOENT || e == ENOTDIR)) {
		*ret_missing = 1;
		return AMBER_ENOTFOUND;
	}
	if (e == ENOTDIR)
		return amber_host_api->set_error(ctx, AMBER_EIO, "%s/%s is not a directory",
						 self->path, k->sub);
	return fail_errno(ctx, e, "open directory %s/%s", self->path, k->sub);
}

/* A server directory is ours to drop once its last backup is gone. Anything but an
 * empty directory makes rmdir fail, which is the answer we want. */
static void drop_key_dir_if_empty(amber_instance *self, const struct key *k)
{
	if (k->sub[0])
		(void)unlinkat(self->root, k->sub, AT_REMOVEDIR);
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Only names we create: ".<key component>.<16 hex>.partial". */
static int is_partial_name(const char *name)
{
	size_t len = strlen(name);
	size_t fixed = 1 + 1 + PARTIAL_RANDOM_HEX + strlen(PARTIAL_SUFFIX);

	if (name[0] != '.' || len <= fixed || len > PARTIAL_NAME_MAX)
		return 0;
	const char *suffix = name + len - strlen(PARTIAL_SUFFIX);
	const char *rnd = suffix - PARTIAL_RANDOM_HEX;
	if (strcmp(suffix, PARTIAL_SUFFIX) != 0 || rnd[-1] != '.')
		return 0;
	for (int i = 0; i < PARTIAL_RANDOM_HEX; i++)
		if (!is_hex(rnd[i]))
			return 0;
	return component_ok(name + 1, (size_t)(rnd - 1 - (name + 1)));
}

/* Removes temporary files left by processes that died while writing, in the backup
 * directory and one level of server directories below it. Best effort: a failure here
 * costs disk space, not correctness. */
static void sweep_partials(amber_instance *self, amber_ctx *ctx, int dfd, const char *sub,
			   int depth)
{
	/* A fresh open file description: readdir on a dup would move the offset of dfd. */
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		amber_host_api->log(ctx, AMBER_LOG_WARNING,
				    "cannot scan %s/%s for stale temporary files: %s, ignoring",
				    self->path, sub, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}

	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		struct stat st;

		if (is_partial_name(name)) {
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode) || now - st.st_mtime < STALE_PARTIAL_SECONDS)
				continue;
			const char *sep = sub[0] ? "/" : "";
			if (unlinkat(dirfd(d), name, 0) == 0)
				amber_host_api->log(ctx, AMBER_LOG_NOTICE,
						    "removed %s/%s%s%s, left by an interrupted "
						    "backup",
						    self->path, sub, sep, name);
			else if (errno != ENOENT)
				amber_host_api->log(ctx, AMBER_LOG_WARNING,
						    "cannot remove stale %s/%s%s%s: %s, ignoring",
						    self->path, sub, sep, name, strerror(errno));
		} else if (depth == 0 && component_ok(name, strlen(name)) &&
			   (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)) {
			int sfd = openat(dirfd(d), name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd < 0)
				continue;
			sweep_partials(self, ctx, sfd, name, 1);
			close(sfd);
		}
	}
	closedir(d);
}

/* mkdir -p: every missing component is created 0700, like the directory itself. */
static int make_dirs(amber_ctx *ctx, const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "path is too long: %s", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return fail_errno(ctx, errno, "create directory %s", buf);
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return fail_errno(ctx, errno, "create directory %s", buf);
	return AMBER_OK;
}

static int get_path(const amber_config *cfg, amber_ctx *ctx, const char **ret)
{
	const char *path = NULL;
	int r = amber_host_api->config_get_string(cfg, "path", &path);

	if (r < 0 || !path)
		return amber_host_api->set_error(ctx, r < 0 ? r : AMBER_EINVAL,
						 "path: not set");
	/* A relative path would depend on the working directory of whichever process
	 * (daemon or CLI) opens the instance. */
	if (path[0] != '/')
		return amber_host_api->set_error(
			ctx, AMBER_EINVAL, "path: must be an absolute path, got \"%s\"", path);
	*ret = path;
	return AMBER_OK;
}

static int wings_config_check(const amber_config *cfg, amber_ctx *ctx)
{
	const char *path;

	return get_path(cfg, ctx, &path);
}

static int wings_instance_new(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret)
{
	const char *path = NULL;
	int do_fsync = 1;
	int r;

	*ret = NULL;
	r = get_path(cfg, ctx, &path);
	if (r < 0)
		return r;
	r = amber_host_api->config_get_bool(cfg, "fsync", &do_fsync);
	if (r < 0)
		return amber_host_api->set_error(ctx, r, "fsync: cannot read the setting");

	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		r = make_dirs(ctx, path);
		if (r < 0)
			return r;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return fail_errno(ctx, errno, "open backup directory %s", path);

	amber_instance *self = amber_host_api->alloc(sizeof(*self));
	if (!self) {
		close(fd);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	self->root = fd;
	self->fsync = do_fsync != 0;
	self->path = path;
	sweep_partials(self, ctx, self->root, "", 0);
	*ret = self;
	return AMBER_OK;
}

static void wings_instance_free(amber_instance *self)
{
	if (!self)
		return;
	close(self->root);
	amber_host_api->free(self);
}

/* Uniqueness is all the name needs (O_EXCL catches collisions), so a clock is a fine
 * stand-in when the kernel cannot give randomness. */
static void random_hex(char out[PARTIAL_RANDOM_HEX + 1], const void *salt)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		v = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)salt;
	}
	snprintf(out, PARTIAL_RANDOM_HEX + 1, "%016" PRIx64, v);
}

static void writer_release(amber_writer *w);
static void direct_on(amber_writer *w);

static int wings_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
			     const amber_object_info *hint, amber_writer **ret)
{
	struct key k;
	int r;

	*ret = NULL;
	r = parse_key(ctx, key, &k);
	if (r < 0)
		return r;

	amber_writer *w = amber_host_api->alloc(sizeof(*w));
	if (!w)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	memset(w, 0, sizeof(*w));
	w->inst = self;
	w->key = k;
	w->dir = w->fd = -1;

	for (int attempt = 1;; attempt++) {
		int missing;
		char rnd[PARTIAL_RANDOM_HEX + 1];

		r = open_key_dir(self, ctx, &k, 1, &w->dir, &missing);
		if (r < 0)
			goto fail;
		random_hex(rnd, w);
		snprintf(w->tmp, sizeof(w->tmp), ".%s.%s%s", k.leaf, rnd, PARTIAL_SUFFIX);
		w->fd = openat(w->dir, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			       0600);
		if (w->fd >= 0)
			break;

		int e = errno;
		close(w->dir);
		w->dir = -1;
		/* ENOENT: a concurrent remove() dropped the server directory after we made
		 * sure it exists. EEXIST: the random name is taken. */
		if ((e == ENOENT || e == EEXIST) && attempt < CREATE_ATTEMPTS)
			continue;
		r = fail_errno(ctx, e, "create a temporary file for %s/%s", self->path, k.full);
		goto fail;
	}
	w->tmp_exists = 1;
	if (self->fsync)
		direct_on(w);
	*ret = w;
	return AMBER_OK;

fail:
	writer_release(w);
	return r;
}

static int writer_usable(amber_writer *w, amber_ctx *ctx)
{
	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s/%s: already committed",
						 w->inst->path, w->key.full);
	/* After a failed write or flush the file's contents are unknown, and a second
	 * fsync would report success for data that never reached the disk. */
	if (w->failed)
		return amber_host_api->set_error(ctx, AMBER_EIO, "%s/%s: an earlier write failed",
						 w->inst->path, w->key.full);
	return AMBER_OK;
}

static void direct_off(amber_writer *w)
{
	int fl = fcntl(w->fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(w->fd, F_SETFL, fl & ~O_DIRECT);
}

/* write() of all of p, 0 or an errno; a file system that takes O_DIRECT at open but not
 * these writes gets them buffered instead. */
static int raw_write(amber_writer *w, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && w->direct) {
			direct_off(w);
			continue;
		}
		if (n <= 0)
			return n < 0 ? errno : EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The I/O thread: an O_DIRECT write blocks until the device has the data, so full
 * buffers are written here while the host's thread fills the other one. */
static void *io_main(void *arg)
{
	amber_writer *w = arg;
	pthread_mutex_lock(&w->io_lock);
	for (;;) {
		while (!w->io_buf && !w->io_stop)
			pthread_cond_wait(&w->io_cond, &w->io_lock);
		if (!w->io_buf)
			break;
		const unsigned char *p = w->io_buf;
		pthread_mutex_unlock(&w->io_lock);
		int e = w->io_err ? 0 : raw_write(w, p, DIRECT_BUF);
		pthread_mutex_lock(&w->io_lock);
		if (e && !w->io_err)
			w->io_err = e;
		w->io_buf = NULL;
		pthread_cond_broadcast(&w->io_cond);
	}
	pthread_mutex_unlock(&w->io_lock);
	return NULL;
}

/* Until the I/O thread is idle; its error, if it had one. */
static int io_wait(amber_writer *w)
{
	pthread_mutex_lock(&w->io_lock);
	while (w->io_buf)
		pthread_cond_wait(&w->io_cond, &w->io_lock);
	int e = w->io_err;
	pthread_mutex_unlock(&w->io_lock);
	return e;
}

static void direct_free(amber_writer *w)
{
	if (w->io_started) {
		pthread_mutex_lock(&w->io_lock);
		w->io_stop = 1;
		pthread_cond_broadcast(&w->io_cond);
		pthread_mutex_unlock(&w->io_lock);
		pthread_join(w->io, NULL);
		pthread_cond_destroy(&w->io_cond);
		pthread_mutex_destroy(&w->io_lock);
		w->io_started = 0;
	}
	free(w->dbuf);
	free(w->dbuf_other);
	w->dbuf = w->dbuf_other = NULL;
}

/* Tries O_DIRECT for a writer whose data is to be fsynced; silently stays buffered
 * where the file system, memory or threads say no. */
static void direct_on(amber_writer *w)
{
	void *a = NULL, *b = NULL;
	int fl = fcntl(w->fd, F_GETFL);
	if (fl < 0 || posix_memalign(&a, DIRECT_ALIGN, DIRECT_BUF) != 0)
		return;
	if (posix_memalign(&b, DIRECT_ALIGN, DIRECT_BUF) != 0) {
		free(a);
		return;
	}
	w->dbuf = a;
	w->dbuf_other = b;
	if (fcntl(w->fd, F_SETFL, fl | O_DIRECT) < 0) {
		direct_free(w);
		return;
	}
	w->direct = 1;
	pthread_mutex_init(&w->io_lock, NULL);
	pthread_cond_init(&w->io_cond, NULL);
	w->io_started = pthread_create(&w->io, NULL, io_main, w) == 0;
	if (!w->io_started) {
		pthread_cond_destroy(&w->io_cond);
		pthread_mutex_destroy(&w->io_lock);
	}
	if (!w->io_started) {
		direct_off(w);
		direct_free(w);
	}
}

static int write_all(amber_writer *w, amber_ctx *ctx, const char *p, size_t len)
{
	int e = raw_write(w, (const unsigned char *)p, len);
	if (e) {
		w->failed = 1;
		return fail_errno(ctx, e, "write %s/%s", w->inst->path, w->key.full);
	}
	return AMBER_OK;
}

/* A full buffer goes to the I/O thread (once it is done with the other one). */
static int direct_hand_off(amber_writer *w, amber_ctx *ctx)
{
	int e = io_wait(w);
	if (e) {
		w->failed = 1;
		return fail_errno(ctx, e, "write %s/%s", w->inst->path, w->key.full);
	}
	pthread_mutex_lock(&w->io_lock);
	w->io_buf = w->dbuf;
	pthread_cond_broadcast(&w->io_cond);
	pthread_mutex_unlock(&w->io_lock);
	unsigned char *t = w->dbuf;
	w->dbuf = w->dbuf_other;
	w->dbuf_other = t;
	w->dfill = 0;
	return AMBER_OK;
}

/* At commit: the last full buffer, then the tail through the page cache, which the
 * fsync then flushes. */
static int direct_finish(amber_writer *w, amber_ctx *ctx)
{
	int e = io_wait(w);
	if (e) {
		w->failed = 1;
		return fail_errno(ctx, e, "write %s/%s", w->inst->path, w->key.full);
	}
	direct_off(w);
	int r = write_all(w, ctx, (const char *)w->dbuf, w->dfill);
	w->dfill = 0;
	return r;
}

static int wings_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len)
{
	const char *p = data;
	int r = writer_usable(w, ctx);

	if (r < 0)
		return r;
	if (w->dbuf) {
		while (len > 0) {
			size_t n = DIRECT_BUF - w->dfill < len ? DIRECT_BUF - w->dfill : len;
			memcpy(w->dbuf + w->dfill, p, n);
			w->dfill += n;
			w->written += n;
			p += n;
			len -= n;
			if (w->dfill == DIRECT_BUF && (r = direct_hand_off(w, ctx)) < 0)
				return r;
		}
		return AMBER_OK;
	}
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->failed = 1;
			return fail_errno(ctx, n < 0 ? errno : EIO, "write %s/%s", w->inst->path,
					  w->key.full);
		}
		p += n;
		len -= (size_t)n;
		w->written += (uint64_t)n;
	}
	if (w->inst->fsync && w->written - w->flushed >= WRITEBACK_CHUNK) {
		/* Only a head start for the fsync, which still checks everything: a failure
		 * here changes nothing but the timing. */
		(void)sync_file_range(w->fd, (off_t)w->flushed, (off_t)(w->written - w->flushed),
				      SYNC_FILE_RANGE_WRITE);
		w->flushed = w->written;
	}
	return AMBER_OK;
}

static int wings_writer_commit(amber_writer *w, amber_ctx *ctx,
			       const amber_object_info *final_info)
{
	amber_instance *self = w->inst;
	const struct key *k = &w->key;
	int r = writer_usable(w, ctx);

	if (r < 0)
		return r;
	if (final_info && AMBER_HAS(final_info, amber_object_info, size) &&
	    final_info->size != AMBER_SIZE_UNKNOWN && final_info->size != w->written)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
						 "%s/%s: %" PRIu64 " bytes were written but the "
						 "object has %" PRIu64,
						 self->path, k->full, w->written, final_info->size);

	if (w->dbuf && (r = direct_finish(w, ctx)) < 0)
		return r;
	w->failed = 1; /* until the end: every step below is final */
	if (self->fsync && fsync_retry(w->fd) < 0)
		return fail_errno(ctx, errno, "flush %s/%s", self->path, k->full);
	/* Network file systems may report a failed write-back only here. */
	r = close(w->fd);
	w->fd = -1;
	if (r < 0 && errno != EINTR)
		return fail_errno(ctx, errno, "close %s/%s", self->path, k->full);

	if (renameat(w->dir, w->tmp, w->dir, k->leaf) < 0)
		return fail_errno(ctx, errno, "rename %s to %s/%s", w->tmp, self->path, k->full);
	w->tmp_exists = 0;

	/* The new directory entry must be durable too, and for DIR/NAME keys the server
	 * directory's own entry: whoever created it may not have committed yet. */
	if (self->fsync && (fsync_dir(w->dir) < 0 || (k->sub[0] && fsync_dir(self->root) < 0))) {
		int e = errno;
		/* Whether the file would survive a crash is unknown, and the host is about to
		 * report this backup as failed: leave nothing that looks like it. */
		(void)unlinkat(w->dir, k->leaf, 0);
		return fail_errno(ctx, e, "flush the directory of %s/%s", self->path, k->full);
	}
	w->failed = 0;
	w->committed = 1;
	return AMBER_OK;
}

static void writer_release(amber_writer *w)
{
	direct_free(w);
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_exists && unlinkat(w->dir, w->tmp, 0) < 0 && errno != ENOENT)
		amber_host_api->log(NULL, AMBER_LOG_WARNING,
				    "cannot remove %s, the temporary file of %s/%s: %s, ignoring",
				    w->tmp, w->inst->path, w->key.full, strerror(errno));
	if (w->dir >= 0)
		close(w->dir);
	if (!w->committed)
		drop_key_dir_if_empty(w->inst, &w->key);
	amber_host_api->free(w);
}

static void wings_writer_free(amber_writer *w)
{
	if (w)
		writer_release(w);
}

static int not_found(amber_instance *self, amber_ctx *ctx, const struct key *k)
{
	return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s in %s", k->full,
					 self->path);
}

static int wings_reader_open(amber_instance *self, amber_ctx *ctx, const char *key,
			     uint64_t offset, amber_object_info *ret_info, amber_reader **ret)
{
	struct key k;
	int dir, missing, r;

	*ret = NULL;
	r = parse_key(ctx, key, &k);
	if (r < 0)
		return r;
	r = open_key_dir(self, ctx, &k, 0, &dir, &missing);
	if (missing)
		return not_found(self, ctx, &k);
	if (r < 0)
		return r;

	/* O_NONBLOCK: opening a FIFO someone left under the key must not hang. */
	int fd = openat(dir, k.leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	int e = errno;
	close(dir);
	if (fd < 0 && e == ENOENT)
		return not_found(self, ctx, &k);
	if (fd < 0 && e == ELOOP)
		return amber_host_api->set_error(
			ctx, AMBER_EIO, "%s/%s is a symbolic link, which is never followed",
			self->path, k.full);
	if (fd < 0)
		return fail_errno(ctx, e, "open %s/%s", self->path, k.full);

	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = fail_errno(ctx, errno, "stat %s/%s", self->path, k.full);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = not_found(self, ctx, &k); /* a server directory, not an object */
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = amber_host_api->set_error(ctx, AMBER_EIO, "%s/%s is not a regular file",
					      self->path, k.full);
		goto fail;
	}
	if (offset > (uint64_t)st.st_size) {
		r = amber_host_api->set_error(ctx, AMBER_EINVAL,
					      "%s/%s: offset %" PRIu64 " is past its end (%" PRIu64
					      " bytes)",
					      self->path, k.full, offset, (uint64_t)st.st_size);
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = fail_errno(ctx, errno, "open %s/%s", self->path, k.full);
		goto fail;
	}
	/* Restores read front to back: a larger readahead window helps spinning disks. */
	(void)posix_fadvise(fd, (off_t)offset, 0, POSIX_FADV_SEQUENTIAL);

	amber_reader *rd = amber_host_api->alloc(sizeof(*rd));
	if (!rd) {
		r = amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		goto fail;
	}
	rd->inst = self;
	rd->key = k;
	rd->fd = fd;
	rd->pos = offset;
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = (uint64_t)st.st_size;
	*ret = rd;
	return AMBER_OK;

fail:
	close(fd);
	return r;
}

static int64_t wings_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	ssize_t n;

	if (cap > READ_CHUNK_MAX)
		cap = READ_CHUNK_MAX;
	do
		n = pread(r->fd, buf, cap, (off_t)r->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail_errno(ctx, errno, "read %s/%s", r->inst->path, r->key.full);
	r->pos += (uint64_t)n;
	return n;
}

static void wings_reader_free(amber_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	amber_host_api->free(r);
}

static int wings_remove(amber_instance *self, amber_ctx *ctx, const char *key)
{
	struct key k;
	int dir, missing, r;

	r = parse_key(ctx, key, &k);
	if (r < 0)
		return r;
	r = open_key_dir(self, ctx, &k, 0, &dir, &missing);
	if (missing)
		return not_found(self, ctx, &k);
	if (r < 0)
		return r;

	if (unlinkat(dir, k.leaf, 0) < 0) {
		int e = errno;
		close(dir);
		if (e == ENOENT || e == EISDIR) /* EISDIR: a server directory, not an object */
			return not_found(self, ctx, &k);
		return fail_errno(ctx, e, "remove %s/%s", self->path, k.full);
	}
	/* Otherwise a crash could bring back a backup the panel has forgotten. */
	if (self->fsync && fsync_dir(dir) < 0) {
		r = fail_errno(ctx, errno, "flush the directory of %s/%s", self->path, k.full);
		close(dir);
		return r;
	}
	close(dir);
	drop_key_dir_if_empty(self, &k);
	return AMBER_OK;
}

/* Could a key under directory d (or d itself, as a leaf) start with prefix? */
static int may_hold_prefix(const char *d, const char *prefix)
{
	size_t dl = strlen(d), pl = strlen(prefix);

	if (pl <= dl)
		return strncmp(d, prefix, pl) == 0;
	return strncmp(d, prefix, dl) == 0 && prefix[dl] == '/';
}

static int list_append(amber_ctx *ctx, amber_buf *out, const char *key, const struct stat *st)
{
	char line[KEY_MAX + 64];
	int64_t mtime = st->st_mtime > 0 ? (int64_t)st->st_mtime : 0;

	snprintf(line, sizeof(line), "%s\t%" PRIu64 "\t%" PRId64 "\n", key,
		 (uint64_t)st->st_size, mtime);
	int r = amber_host_api->buf_append(out, line, strlen(line));
	if (r < 0)
		return amber_host_api->set_error(ctx, r, "out of memory while listing");
	return AMBER_OK;
}

/* Lists one directory: objects, and with sub == "" the server directories below it.
 * Entries that vanish while we look (a concurrent remove) are simply not listed. */
static int list_dir(amber_instance *self, amber_ctx *ctx, int dfd, const char *sub,
		    const char *prefix, amber_buf *out)
{
	/* A fresh open file description: readdir on a dup would move the offset of dfd. */
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return fail_errno(ctx, e, "list %s/%s", self->path, sub);
	}

	int r = AMBER_OK;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				r = fail_errno(ctx, errno, "list %s/%s", self->path, sub);
			break;
		}
		const char *name = de->d_name;
		if (!component_ok(name, strlen(name)))
			continue; /* ".", "..", temporary files, anything not made by us */

		char key[KEY_MAX + 1];
		snprintf(key, sizeof(key), "%s%s%s", sub, sub[0] ? "/" : "", name);
		/* At the top, a server directory may hold matches even when its own name
		 * does not start with the whole prefix. */
		if (sub[0] ? strncmp(key, prefix, strlen(prefix)) != 0
			   : !may_hold_prefix(name, prefix))
			continue;

		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			r = fail_errno(ctx, errno, "list %s/%s", self->path, key);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			if (strncmp(key, prefix, strlen(prefix)) == 0)
				r = list_append(ctx, out, key, &st);
		} else if (S_ISDIR(st.st_mode) && !sub[0]) {
			/* A listing walks every server directory; let the host stop it. */
			if (amber_host_api->is_cancelled(ctx)) {
				r = amber_host_api->set_error(ctx, AMBER_ECANCELED,
							      "listing cancelled");
				break;
			}
			int sfd = openat(dirfd(d), name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd < 0) {
				if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
					continue;
				r = fail_errno(ctx, errno, "list %s/%s", self->path, name);
				break;
			}
			r = list_dir(self, ctx, sfd, name, prefix, out);
			close(sfd);
		}
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int wings_list(amber_instance *self, amber_ctx *ctx, const char *prefix, amber_buf *out)
{
	return list_dir(self, ctx, self->root, "", prefix ? prefix : "", out);
}

static const amber_adapter wings_adapter = {
	.struct_size = sizeof(amber_adapter),
	.abi_major = AMBER_ABI_MAJOR,
	.abi_minor = AMBER_ABI_MINOR,
	.min_host_abi_minor = 0,
	.name = "wings",
	.version = WINGS_VERSION,
	.description = "backups as files in a local directory",
	/* No presign: the daemon serves downloads by reading through the reader. */
	.caps = AMBER_CAP_CONCURRENT | AMBER_CAP_RANGE_READ,
	.config = wings_config,
	.config_check = wings_config_check,
	.instance_new = wings_instance_new,
	.instance_free = wings_instance_free,
	.writer_open = wings_writer_open,
	.writer_write = wings_writer_write,
	.writer_commit = wings_writer_commit,
	.writer_free = wings_writer_free,
	.reader_open = wings_reader_open,
	.reader_read = wings_reader_read,
	.reader_free = wings_reader_free,
	.remove = wings_remove,
	.list = wings_list,
};

AMBER_DECLARE_ADAPTER(wings_adapter)
