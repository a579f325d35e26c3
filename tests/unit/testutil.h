/* Helpers shared by the Check programs: scratch directories, files, running the real
 * tools (tar, bsdtar, git, python3) that judge what the code under test produced. */
#ifndef AMBER_TESTUTIL_H
#define AMBER_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

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
/* tests/tools/fake_panel.py, the scripted panel double: started with its steps
 * (NULL-terminated), it records every request to a JSON-lines log. port 0: any free
 * port. start_after > 0 delays its listening on purpose (then port must be given). */
struct tu_panel {
	pid_t pid;
	int in_fd, out_fd; /* its stdin (EOF stops it) and stdout (the port line) */
	int port;
	char *log;
};
void tu_panel_start(struct tu_panel *p, const char *dir, int port, double start_after,
		    const char *const *steps);
/* Stops it and frees the log's name. */
void tu_panel_stop(struct tu_panel *p);
/* The recorded requests (an array of objects), only those for `path` unless NULL. */
json_t *tu_panel_requests(const struct tu_panel *p, const char *path);

/* An environment value the test harness sets (AMBER_SOURCE_DIR, ...), or fallback. */
const char *tu_env(const char *name, const char *fallback);

#endif
