#include "path_beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *beneath_verdict_str(enum beneath_verdict v)
{
	switch (v) {
	case BENEATH_OK:
		return "ok";
	case BENEATH_EMPTY:
		return "is empty";
	case BENEATH_ABSOLUTE:
		return "is absolute";
	case BENEATH_DOTDOT:
		return "has a '..' component";
	case BENEATH_ESCAPES:
		return "climbs above the root";
	case BENEATH_INNER_DOTDOT:
		return "has '..' after a named component";
	}
	return "is invalid";
}

/* Finds the next component: it starts at *s and is *n bytes long (0 at the end); the
 * return value points just past it. */
static const char *next_component(const char *p, const char **s, size_t *n)
{
	while (*p == '/')
		p++;
	*s = p;
	while (*p && *p != '/')
		p++;
	*n = (size_t)(p - *s);
	return p;
}

static bool is_dot(const char *s, size_t n)
{
	return n == 1 && s[0] == '.';
}

static bool is_dotdot(const char *s, size_t n)
{
	return n == 2 && s[0] == '.' && s[1] == '.';
}

enum beneath_verdict beneath_normalize(const char *name, char *out, size_t *ret_depth)
{
	*ret_depth = 0;
	out[0] = '\0';
	if (!name || !*name)
		return BENEATH_EMPTY;
	if (name[0] == '/')
		return BENEATH_ABSOLUTE;
	char *o = out;
	size_t depth = 0;
	const char *p = name, *s;
	size_t n;
	for (;;) {
		p = next_component(p, &s, &n);
		if (n == 0)
			break;
		if (is_dot(s, n))
			continue;
		if (is_dotdot(s, n))
			return BENEATH_DOTDOT;
		if (o != out)
			*o++ = '/';
		memcpy(o, s, n);
		o += n;
		depth++;
	}
	*o = '\0';
	*ret_depth = depth;
	return BENEATH_OK;
}

enum beneath_verdict beneath_check_link_target(const char *target, size_t parent_depth)
{
	if (!target || !*target)
		return BENEATH_EMPTY;
	if (target[0] == '/')
		return BENEATH_ABSOLUTE;
	size_t up = 0;
	bool named = false;
	const char *p = target, *s;
	size_t n;
	for (;;) {
		p = next_component(p, &s, &n);
		if (n == 0)
			break;
		if (is_dot(s, n))
			continue;
		if (is_dotdot(s, n)) {
			if (named)
				return BENEATH_INNER_DOTDOT;
			up++;
		} else {
			named = true;
		}
	}
	return up > parent_depth ? BENEATH_ESCAPES : BENEATH_OK;
}

static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)flags,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	/* EAGAIN: the kernel saw a concurrent rename and could not vouch for the
	 * lookup; a few retries are what the man page suggests. */
	for (int tries = 0;; tries++) {
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if ((errno != EAGAIN && errno != EINTR) || tries >= 8)
			return -errno;
	}
}

/* openat of one component that must be a directory; a symlink in its place reads as
 * -ELOOP, as openat2 would say, rather than O_NOFOLLOW|O_DIRECTORY's -ENOTDIR. */
static int open_component(int dirfd, const char *comp, int flags)
{
	int fd = openat(dirfd, comp, flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int err = -errno;
	struct stat st;
	if (err == -ENOTDIR && fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = -ELOOP;
	return err;
}

/* Copies the component [s, s+n) into comp; -ENAMETOOLONG past NAME_MAX. Components
 * here come from normalized paths, so "." and ".." are refused outright. */
static int take_component(char comp[static NAME_MAX + 1], const char *s, size_t n)
{
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	if (n == 0 || is_dot(s, n) || is_dotdot(s, n))
		return -EINVAL;
	memcpy(comp, s, n);
	comp[n] = '\0';
	return 0;
}

/* The fallback for kernels without openat2: one O_NOFOLLOW lookup per component. With
 * no ".." allowed and no symlink followed, each step stays beneath the previous one. */
static int walk_beneath(int root_fd, const char *path, int flags)
{
	char comp[NAME_MAX + 1];
	int cur = root_fd;
	const char *p = path, *s;
	size_t n;
	p = next_component(p, &s, &n);
	for (;;) {
		int r = take_component(comp, s, n);
		const char *ns;
		size_t nn;
		const char *np = next_component(p, &ns, &nn);
		bool last = nn == 0;
		int fd = r < 0 ? r : open_component(cur, comp, last ? flags : O_PATH);
		if (cur != root_fd)
			close(cur);
		if (fd < 0 || last)
			return fd;
		cur = fd;
		p = np;
		s = ns;
		n = nn;
	}
}

int beneath_open_dir(struct beneath *b, const char *rel, int flags, int *ret_fd)
{
	*ret_fd = -1;
	if (!rel || !*rel)
		return -EINVAL;
	flags |= O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = -ENOSYS;
	if (!b->no_openat2) {
		fd = openat2_beneath(b->root_fd, rel, flags);
		if (fd == -ENOSYS)
			b->no_openat2 = true;
	}
	if (b->no_openat2)
		fd = walk_beneath(b->root_fd, rel, flags);
	if (fd == -ENOTDIR && !b->no_openat2) {
		/* O_DIRECTORY speaks first when the last component is a symlink; ask again
		 * for the link itself so the caller can say which it was. */
		int lfd = openat2_beneath(b->root_fd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (lfd >= 0) {
			if (fstat(lfd, &st) == 0 && S_ISLNK(st.st_mode))
				fd = -ELOOP;
			close(lfd);
		}
	}
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

int beneath_mkdirs(struct beneath *b, const char *rel, uid_t uid, gid_t gid, int *ret_fd)
{
	*ret_fd = -1;
	if (!rel || !*rel)
		return -EINVAL;
	bool chown_new = uid != (uid_t)-1 || gid != (gid_t)-1;
	char comp[NAME_MAX + 1];
	int cur = b->root_fd;
	const char *p = rel, *s;
	size_t n;
	p = next_component(p, &s, &n);
	int err = 0;
	while (n) {
		err = take_component(comp, s, n);
		if (err < 0)
			break;
		int fd = open_component(cur, comp, O_PATH);
		if (fd == -ENOENT) {
			if (mkdirat(cur, comp, 0755) == 0) {
				if (chown_new &&
				    fchownat(cur, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
					/* Best effort: an owner the system will not take (an
					 * unmapped uid in a user namespace) still leaves a
					 * usable directory. */
				}
			} else if (errno != EEXIST) {
				err = -errno;
				break;
			}
			fd = open_component(cur, comp, O_PATH);
		}
		if (fd < 0) {
			err = fd;
			break;
		}
		if (cur != b->root_fd)
			close(cur);
		cur = fd;
		p = next_component(p, &s, &n);
	}
	if (err < 0) {
		if (cur != b->root_fd)
			close(cur);
		return err;
	}
	*ret_fd = cur;
	return 0;
}

struct namelist {
	char **v;
	size_t n, cap;
};

static int namelist_push(struct namelist *l, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(name)))
		return -ENOMEM;
	l->n++;
	return 0;
}

static void namelist_free(struct namelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* unlinkat that copes with a directory we own but may not write (a read-only directory
 * restored earlier by a non-root daemon): make it writable once, then retry. */
static int unlink_in(int dir_fd, const char *name, int flags, bool *made_writable)
{
	for (;;) {
		if (unlinkat(dir_fd, name, flags) == 0 || errno == ENOENT)
			return 0;
		int err = -errno;
		struct stat st;
		if (err != -EACCES || *made_writable || fstat(dir_fd, &st) < 0 ||
		    fchmod(dir_fd, (st.st_mode & 07777) | S_IRWXU) < 0)
			return err;
		*made_writable = true;
	}
}

int beneath_empty_dir(int dir_fd)
{
	/* A description of our own, so reading it moves no offset the caller shares. */
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct namelist subdirs = { 0 };
	bool made_writable = false;
	int err = 0;
	/* Subdirectories are emptied after the stream is closed, so the descriptors held
	 * at once stay at one per level of depth, not two. */
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			err = -errno;
			break;
		}
		const char *name = de->d_name;
		if (is_dot(name, strlen(name)) || is_dotdot(name, strlen(name)))
			continue;
		if (de->d_type != DT_DIR) {
			err = unlink_in(dir_fd, name, 0, &made_writable);
			if (err != -EISDIR) {
				if (err < 0)
					break;
				continue;
			}
		}
		if ((err = namelist_push(&subdirs, name)) < 0)
			break;
	}
	closedir(d);
	for (size_t i = 0; i < subdirs.n && !err; i++) {
		const char *name = subdirs.v[i];
		int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			/* Replaced by a non-directory since it was listed: unlink that. */
			if (errno == ENOTDIR || errno == ELOOP)
				err = unlink_in(dir_fd, name, 0, &made_writable);
			else if (errno != ENOENT)
				err = -errno;
			continue;
		}
		err = beneath_empty_dir(sub);
		close(sub);
		if (!err)
			err = unlink_in(dir_fd, name, AT_REMOVEDIR, &made_writable);
	}
	namelist_free(&subdirs);
	return err;
}
