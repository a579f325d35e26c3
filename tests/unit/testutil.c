#include "testutil.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag)
{
	const char *tmp = tu_env("TMPDIR", "/tmp");
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/amber-%s-XXXXXX", tmp, tag), 0);
	ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s: %s", path, strerror(errno));
	return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		chmod(p, 0700), rmdir(p);
	else
		unlink(p);
	return 0;
}

void tu_rmrf(const char *path)
{
	if (path)
		nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static void mkparents(const char *path)
{
	char *p = strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	}
	free(p);
}

void tu_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	mkparents(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	const char *c = data;
	while (len) {
		ssize_t n = write(fd, c, len);
		ck_assert_msg(n > 0, "write %s: %s", path, strerror(errno));
		c += n;
		len -= (size_t)n;
	}
	fchmod(fd, mode);
	close(fd);
}

char *tu_read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	fclose(m);
	if (ret_len)
		*ret_len = len;
	return buf;
}

static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;
	ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
	return s;
}

int tu_sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = vfmt(fmt, ap);
	va_end(ap);
	fflush(NULL);
	int st = system(cmd);
	free(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

char *tu_sh_out(int *ret_status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = vfmt(fmt, ap);
	va_end(ap);
	fflush(NULL);
	FILE *p = popen(cmd, "r");
	free(cmd);
	ck_assert(p != NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(m);
	int st = pclose(p);
	if (ret_status)
		*ret_status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
	return buf;
}

const char *tu_env(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int tu_server_start(struct tu_server *s, const char *script, const char *const *args,
		    const char *const *extra, bool wait)
{
	memset(s, 0, sizeof(*s));
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/tests/tools/%s", tu_env("AMBER_SOURCE_DIR", "."),
				  script),
			 0);
	/* Debian's interpreter: the test doubles use its packages (python3-jwt,
	 * python3-cryptography), which another python3 first on PATH may lack. */
	const char *python = tu_env("AMBER_PYTHON", access("/usr/bin/python3", X_OK) == 0
							? "/usr/bin/python3" : "python3");
	const char *argv[64] = { python, path };
	size_t n = 2;
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	for (size_t i = 0; extra && extra[i] && n < 63; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	int in[2], out[2];
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	/* nothing buffered may be written twice, by the child too */
	fflush(NULL);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp(python, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->in_fd = in[1];
	s->out_fd = out[0];
	free(path);
	if (!wait)
		return 0;
	struct pollfd pfd = { s->out_fd, POLLIN, 0 };
	ck_assert_msg(poll(&pfd, 1, 10000) == 1, "%s did not start", script);
	char buf[32] = "";
	ck_assert_int_gt(read(s->out_fd, buf, sizeof(buf) - 1), 0);
	/* "<port>", or "ready <port>" as the GCS test server says it */
	int port = atoi(strncmp(buf, "ready ", 6) == 0 ? buf + 6 : buf);
	ck_assert_int_gt(port, 0);
	return port;
}

void tu_server_stop(struct tu_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		close(s->in_fd);
		close(s->out_fd);
	}
	s->pid = 0;
}

json_t *tu_log_requests(const char *log, const char *path)
{
	json_t *all = json_array();
	char *text = log ? tu_read_file(log, NULL) : NULL;
	if (!text)
		return all;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL);
		ck_assert_msg(j != NULL, "bad log line %s", line);
		if (!path || !strcmp(json_string_value(json_object_get(j, "path")), path))
			json_array_append(all, j);
		json_decref(j);
	}
	free(text);
	return all;
}

void tu_panel_start(struct tu_panel *p, const char *dir, int port, double start_after,
		    const char *const *steps)
{
	static unsigned seq;
	memset(p, 0, sizeof(*p));
	ck_assert_int_ge(asprintf(&p->log, "%s/panel-%d-%u.jsonl", dir, (int)getpid(), seq++), 0);
	char portbuf[16], afterbuf[32];
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	snprintf(afterbuf, sizeof(afterbuf), "%.3f", start_after);
	const char *args[] = { "--log", p->log, "--port", portbuf, "--start-after", afterbuf,
			       NULL };
	/* a late panel is not waited for: the test is about what happens meanwhile */
	int got = tu_server_start(&p->server, "fake_panel.py", args, steps, start_after <= 0);
	p->port = start_after > 0 ? port : got;
}

void tu_panel_stop(struct tu_panel *p)
{
	tu_server_stop(&p->server);
	free(p->log);
	p->log = NULL;
}

json_t *tu_panel_requests(const struct tu_panel *p, const char *path)
{
	return tu_log_requests(p->log, path);
}

void fake_store_start(struct fake_store *s, const char *parent, const char *ctype,
		      const char *const *rules)
{
	memset(s, 0, sizeof(*s));
	ck_assert_int_ge(asprintf(&s->dir, "%s/objects", parent), 0);
	ck_assert_int_ge(asprintf(&s->log, "%s/store.jsonl", parent), 0);
	const char *args[] = { "--dir", s->dir, "--log", s->log, "--ctype",
			       ctype ? ctype : "application/x-gzip", NULL };
	s->port = tu_server_start(&s->server, "fake_part_store.py", args, rules, true);
}

void fake_store_stop(struct fake_store *s)
{
	tu_server_stop(&s->server);
	free(s->dir);
	free(s->log);
	s->dir = s->log = NULL;
}

json_t *fake_store_requests(const struct fake_store *s)
{
	return tu_log_requests(s->log, NULL);
}

size_t fake_store_count(const struct fake_store *s, const char *method, const char *key,
			const char *value)
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

unsigned char *fake_store_object(const struct fake_store *s, unsigned n, size_t *ret_len)
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

unsigned tu_count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	ck_assert_ptr_nonnull(d);
	unsigned n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

char *tu_join(const char *a, const char *b)
{
	char *s = NULL;
	ck_assert_int_ge(asprintf(&s, "%s/%s", a, b), 0);
	return s;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

unsigned char *tu_random_bytes(size_t len, uint64_t seed)
{
	unsigned char *p = malloc(len ? len : 1);
	uint64_t s = seed | 1;
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(rng_next(&s) >> 24);
	return p;
}

unsigned char *tu_text_bytes(size_t len, uint64_t seed)
{
	static const char *words[] = { "joined", "left", "the", "game", "Steve", "Alex",
				       "[Server thread/INFO]:", "moved", "too", "quickly!",
				       "chunk", "saved", "region", "r.0.-1.mca", "\n" };
	unsigned char *p = malloc(len ? len : 1);
	uint64_t s = seed | 1;
	size_t o = 0;
	ck_assert_ptr_nonnull(p);
	while (o < len) {
		char w[64];
		int n = snprintf(w, sizeof(w), "%s %u ", words[rng_next(&s) % 15],
				 (unsigned)(rng_next(&s) % 1000));
		for (int i = 0; i < n && o < len; i++)
			p[o++] = (unsigned char)w[i];
	}
	return p;
}

int tu_file_sink_write(void *opaque, const void *buf, size_t len)
{
	struct tu_file_sink *s = opaque;
	const char *p = buf;
	s->calls++;
	if (s->fail_code && s->written + len > s->fail_after)
		return s->fail_code;
	s->written += len;
	while (s->fd >= 0 && len) {
		ssize_t n = write(s->fd, p, len);
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void tu_check_digests(const char *path, const uint8_t *sha1, const uint8_t *sha256)
{
	char h1[41], h256[65];
	hex(sha1, 20, h1);
	hex(sha256, 32, h256);
	char *o1 = tu_sh_out(NULL, "sha1sum '%s' | cut -d' ' -f1", path);
	char *o2 = tu_sh_out(NULL, "sha256sum '%s' | cut -d' ' -f1", path);
	ck_assert_msg(!strncmp(o1, h1, strlen(h1)), "sha1 %s vs %s", h1, o1);
	ck_assert_msg(!strncmp(o2, h256, strlen(h256)), "sha256 %s vs %s", h256, o2);
	free(o1);
	free(o2);
}
