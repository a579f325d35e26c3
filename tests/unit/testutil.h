/* Helpers shared by the Check programs: scratch directories, files, running the real
 * tools (tar, bsdtar, git, python3) that judge what the code under test produced. */
#ifndef AMBER_TESTUTIL_H
#define AMBER_TESTUTIL_H

#include <stddef.h>

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string and may
 * remove the tree with tu_rmrf. Aborts the test on failure. */
char *tu_mkdtemp(const char *tag);
void tu_rmrf(const char *path);
/* Writes len bytes to path (parent directories created), with mode. */
void tu_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole file; *ret_len gets its length. NULL if it cannot be read. */
char *tu_read_file(const char *path, size_t *ret_len);
/* Runs a shell command line (printf-style); returns its exit status, or -1.
 * Output goes to the test's stderr unless redirected in the command. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like tu_sh, returning what the command printed on stdout (caller frees). */
char *tu_sh_out(int *ret_status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs every test of s (Check's default fork mode: a crash fails one test) and
 * returns the process exit status. */
struct Suite;
int tu_run_suite(struct Suite *s);
/* An environment value the test harness sets (AMBER_SOURCE_DIR, ...), or fallback. */
const char *tu_env(const char *name, const char *fallback);

#endif
