/* tests/tools/fake_part_store.py from a Check test: a fake S3 part store (presigned
 * UploadPart PUTs, a GET of the object with Range) with scripted faults. Header-only so
 * each test program that needs it includes it; see the script for the RULE syntax. */
#ifndef AMBER_TEST_FAKE_STORE_H
#define AMBER_TEST_FAKE_STORE_H

#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct fake_store {
	pid_t pid;
	int in_fd, out_fd;
	int port;
	char *dir; /* where the parts land: <dir>/part.<n>, and <dir>/object if served */
	char *log;
};

/* ctype NULL: application/x-gzip. rules NULL-terminated (or NULL). */
static inline void fake_store_start(struct fake_store *s, const char *parent, const char *ctype,
				    const char *const *rules)
{
	memset(s, 0, sizeof(*s));
	ck_assert_int_ge(asprintf(&s->dir, "%s/objects", parent), 0);
	ck_assert_int_ge(asprintf(&s->log, "%s/store.jsonl", parent), 0);
	char *script = NULL;
	ck_assert_int_ge(asprintf(&script, "%s/tests/tools/fake_part_store.py",
				  tu_env("AMBER_SOURCE_DIR", ".")),
			 0);
	const char *argv[64] = { "python3", script, "--dir", s->dir, "--log", s->log,
				 "--ctype", ctype ? ctype : "application/x-gzip" };
	size_t n = 8;
	for (size_t i = 0; rules && rules[i] && n < 63; i++)
		argv[n++] = rules[i];
	argv[n] = NULL;
	int in[2], out[2];
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	fflush(NULL);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->in_fd = in[1];
	s->out_fd = out[0];
	free(script);
	struct pollfd pfd = { s->out_fd, POLLIN, 0 };
	ck_assert_msg(poll(&pfd, 1, 10000) == 1, "fake part store did not start");
	char buf[32] = "";
	ck_assert_int_gt(read(s->out_fd, buf, sizeof(buf) - 1), 0);
	s->port = atoi(buf);
	ck_assert_int_gt(s->port, 0);
}

static inline void fake_store_stop(struct fake_store *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		close(s->in_fd);
		close(s->out_fd);
	}
	s->pid = 0;
	free(s->dir);
	free(s->log);
	s->dir = s->log = NULL;
}

/* The logged requests (an array of objects). */
static inline json_t *fake_store_requests(const struct fake_store *s)
{
	json_t *arr = json_array();
	FILE *f = fopen(s->log, "r");
	if (!f)
		return arr;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		if (j)
			json_array_append_new(arr, j);
	}
	free(line);
	fclose(f);
	return arr;
}

/* Requests whose "method" is method and whose "fault"/"range" etc. field key equals
 * value (value NULL: key present and not null). */
static inline size_t fake_store_count(const struct fake_store *s, const char *method,
				      const char *key, const char *value)
{
	json_t *arr = fake_store_requests(s);
	size_t n = 0, i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "method")), method) != 0)
			continue;
		json_t *v = key ? json_object_get(e, key) : NULL;
		if (key && (!v || json_is_null(v)))
			continue;
		if (key && value && (!json_is_string(v) || strcmp(json_string_value(v), value)))
			continue;
		n++;
	}
	json_decref(arr);
	return n;
}

/* The parts stored, concatenated in part order (parts 1..n). */
static inline unsigned char *fake_store_object(const struct fake_store *s, unsigned n,
					       size_t *ret_len)
{
	unsigned char *all = NULL;
	size_t len = 0;
	for (unsigned i = 1; i <= n; i++) {
		char *p = NULL;
		ck_assert_int_ge(asprintf(&p, "%s/part.%u", s->dir, i), 0);
		size_t l = 0;
		char *d = tu_read_file(p, &l);
		ck_assert_msg(d != NULL, "part %u missing", i);
		all = realloc(all, len + l + 1);
		memcpy(all + len, d, l);
		len += l;
		free(d);
		free(p);
	}
	*ret_len = len;
	return all;
}

#endif
