/* Paths that untrusted input names, resolved strictly beneath a root directory fd:
 * lexical checks of archive names and symlink targets, directory lookups that never
 * follow a symlink or leave the root, and emptying a directory without following links.
 * No process-wide state: nothing here depends on or changes the cwd. */
#ifndef AMBER_PATH_BENEATH_H
#define AMBER_PATH_BENEATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum beneath_verdict {
	BENEATH_OK = 0,
	BENEATH_EMPTY,        /* "" */
	BENEATH_ABSOLUTE,     /* leading '/' */
	BENEATH_DOTDOT,       /* a ".." component in a name */
	BENEATH_ESCAPES,      /* a symlink target climbing above the root */
	BENEATH_INNER_DOTDOT, /* a symlink target with ".." after a named component */
};

/* The verdict as a predicate for a report line: "name " + "is absolute". */
const char *beneath_verdict_str(enum beneath_verdict v);

/* Normalizes an archive member name into out (which must hold strlen(name) + 1 bytes):
 * empty and "." components and trailing slashes go, components are joined by one '/'.
 * *ret_depth gets the number of components; 0 means the name is the root itself
 * ("." or "./"). */
enum beneath_verdict beneath_normalize(const char *name, char *out, size_t *ret_depth);

/* Whether a symlink whose parent directory is parent_depth components below the root
 * may point at target. Accepted: relative targets whose ".." components all come first
 * and climb no higher than the root. A ".." after a named component is refused even
 * when it looks harmless lexically ("a/../b"), because that name may itself be a
 * symlink, and chains of such links can climb out of the root one step at a time. */
enum beneath_verdict beneath_check_link_target(const char *target, size_t parent_depth);

struct beneath {
	int root_fd;     /* the caller's; never closed here */
	bool no_openat2; /* set once the kernel said ENOSYS; then components are walked */
};

/* Opens the directory rel (a normalized, non-empty relative path) beneath b->root_fd.
 * flags: O_PATH or O_RDONLY (O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC are added).
 * -ELOOP (or -ENOTDIR without openat2) when any component is a symlink, -ENOENT,
 * -ENOTDIR, -ENAMETOOLONG, ... */
int beneath_open_dir(struct beneath *b, const char *rel, int flags, int *ret_fd);

/* Like beneath_open_dir with O_PATH, creating missing components (0755, the umask
 * applies) and giving each one it creates to uid:gid, as far as the system allows,
 * unless both are (uid_t)-1 / (gid_t)-1. */
int beneath_mkdirs(struct beneath *b, const char *rel, uid_t uid, gid_t gid, int *ret_fd);

/* Removes everything inside the directory open as dir_fd (an O_RDONLY fd; not closed),
 * never following a symlink: links are unlinked, never entered. */
int beneath_empty_dir(int dir_fd);

#endif
