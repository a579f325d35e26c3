/* Helpers shared by the Check programs: scratch directories, files, running the real
 * tools (tar, bsdtar, git, python3) that judge what the code under test produced. */
#ifndef AMBER_TESTUTIL_H
#define AMBER_TESTUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
/* A python test double from tests/tools/ run as a child: its stdin is a pipe whose EOF
 * stops it (a test that dies leaves nothing behind), its stdout carries the port line it
 * prints once it listens. */
struct tu_server {
	pid_t pid;
	int in_fd, out_fd;
};
/* Runs python3 (Debian's, or $AMBER_PYTHON) $AMBER_SOURCE_DIR/tests/tools/<script> with args, then extra (both
 * NULL-terminated; extra may be NULL). wait: waits (10 s at the most) for the port line
 * and returns the port; otherwise returns 0 at once. Aborts the test on failure. */
int tu_server_start(struct tu_server *s, const char *script, const char *const *args,
		    const char *const *extra, bool wait);
/* Stops it; nothing if it was not started. */
void tu_server_stop(struct tu_server *s);
/* A test double's JSON-lines request log as an array of objects, only those whose
 * "path" is path unless NULL. No log yet: an empty array. */
json_t *tu_log_requests(const char *log, const char *path);

/* tests/tools/fake_panel.py, the scripted panel double: started with its steps
 * (NULL-terminated), it records every request to a JSON-lines log. port 0: any free
 * port. start_after > 0 delays its listening on purpose (then port must be given). */
struct tu_panel {
	struct tu_server server;
	int port;
	char *log;
};
void tu_panel_start(struct tu_panel *p, const char *dir, int port, double start_after,
		    const char *const *steps);
/* Stops it and frees the log's name. */
void tu_panel_stop(struct tu_panel *p);
/* The recorded requests (an array of objects), only those for `path` unless NULL. */
json_t *tu_panel_requests(const struct tu_panel *p, const char *path);

/* tests/tools/fake_part_store.py: a fake S3 part store (presigned UploadPart PUTs, a GET
 * of the object with Range) with scripted faults; see the script for the RULE syntax. */
struct fake_store {
	struct tu_server server;
	int port;
	char *dir; /* where the parts land: <dir>/part.<n>, and <dir>/object if served */
	char *log;
};
/* Its files go under parent. ctype NULL: application/x-gzip. rules NULL-terminated (or
 * NULL). */
void fake_store_start(struct fake_store *s, const char *parent, const char *ctype,
		      const char *const *rules);
/* Stops it and frees the names. */
void fake_store_stop(struct fake_store *s);
/* The logged requests (an array of objects). */
json_t *fake_store_requests(const struct fake_store *s);
/* Requests whose "method" is method and whose "fault"/"range" etc. field key equals
 * value (value NULL: key present and not null). */
size_t fake_store_count(const struct fake_store *s, const char *method, const char *key,
			const char *value);
/* The parts stored, concatenated in part order (parts 1..n). */
unsigned char *fake_store_object(const struct fake_store *s, unsigned n, size_t *ret_len);

/* An environment value the test harness sets (AMBER_SOURCE_DIR, ...), or fallback. */
const char *tu_env(const char *name, const char *fallback);
/* "<a>/<b>", malloc'd. */
char *tu_join(const char *a, const char *b);
/* len deterministic pseudo-random bytes (xorshift from seed), malloc'd. */
unsigned char *tu_random_bytes(size_t len, uint64_t seed);
/* len bytes of log-like text: compresses well but not trivially; malloc'd. */
unsigned char *tu_text_bytes(size_t len, uint64_t seed);
/* A sink into a file (fd < 0: count only) that can be told to fail: the write that
 * would pass fail_after bytes returns fail_code instead. */
struct tu_file_sink {
	int fd;
	uint64_t written;
	uint64_t fail_after;
	int fail_code;
	unsigned calls;
};
int tu_file_sink_write(void *opaque, const void *buf, size_t len);
/* sha1sum and sha256sum of the file agree with the digests (20 and 32 bytes). */
void tu_check_digests(const char *path, const uint8_t *sha1, const uint8_t *sha256);
/* The threads this process has now (entries of /proc/self/task). */
unsigned tu_count_tasks(void);

#endif
