/* The node API over real HTTP: an http_server on 127.0.0.1 with node_service_routes, a
 * "wings" instance (the real adapter, loaded from AMBER_ADAPTER_DIR) storing in a
 * scratch directory, and tests/tools/fake_panel.py as the panel, which records every
 * report the node sends. Requests go through the curl tool, as a panel's would. */
#include "adapter_loader.h"
#include "backup.h"
#include "host.h"
#include "config.h"
#include "instances.h"
#include "jwt.h"
#include "node_service.h"
#include "http.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "node-token-0123456789abcdef"
#define TOKEN_ID "tokid01"
#define SERVER "11111111-2222-4333-8444-555555555555"
#define SERVER2 "99999999-2222-4333-8444-555555555555"
#define BACKUP1 "aaaaaaaa-1111-4222-8333-944455556666"
#define BACKUP2 "bbbbbbbb-1111-4222-8333-944455556666"

/* ---- the fake panel (as test_remote_client.c starts it) ---- */

/* ---- the node ---- */

struct fx {
	char *dir, *data, *store, *state;
	struct adapter_registry *reg;
	struct config *cfg;
	struct instance_set *set;
	struct node_service *svc;
	struct http_server *srv;
	unsigned port;
	struct tu_panel panel;
	int dead_port; /* > 0: panel_url points at a port nobody listens on */
	unsigned max_jobs; /* 0: 2 */
};

/* Per-test fixture variations (each test runs in its own forked process): a second
 * local instance "disk2" storing in <dir>/store2, and a hook that runs once the
 * directories exist and before the node starts (no thread has started yet). */
static bool g_second_local;
static bool g_limits; /* a [limits] table in the node's configuration */
static void (*g_before_node)(struct fx *f);

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	ck_assert_int_ge(vasprintf(&s, f, ap), 0);
	va_end(ap);
	return s;
}

static void write_server_files(struct fx *f, const char *server)
{
	char *p = fmt("%s/%s/a.txt", f->data, server);
	tu_write_file(p, "hello amber\n", 12, 0644);
	free(p);
	size_t n = 1 << 20;
	char *big = malloc(n);
	unsigned x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		big[i] = (char)(x >> 24);
	}
	p = fmt("%s/%s/sub/b.bin", f->data, server);
	tu_write_file(p, big, n, 0600);
	free(p);
	free(big);
}

static void fx_start_jobs(struct fx *f, const char *const *panel_steps, unsigned budget_ms,
			 unsigned max_jobs)
{
	memset(f, 0, sizeof(*f));
	f->max_jobs = max_jobs;
	f->dir = tu_mkdtemp("node");
	f->data = fmt("%s/data", f->dir);
	f->store = fmt("%s/store", f->dir);
	f->state = fmt("%s/state", f->dir);
	write_server_files(f, SERVER);
	char *p = fmt("%s/%s", f->data, SERVER2);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	free(p);

	ck_assert_int_eq(adapter_registry_new(&f->reg), 0);
	ck_assert_int_ge(adapter_registry_load_dir(f->reg, tu_env("AMBER_ADAPTER_DIR", ".")), 1);
	/* the SDK's example adapter stands in for an object store (not wings-type) */
	char *mem = fmt("%s/examples-out/memory.so", tu_env("AMBER_BUILD_DIR", "."));
	char *err = NULL;
	ck_assert_msg(adapter_registry_load_file(f->reg, mem, &err) == 0, "%s", err);
	free(mem);
	if (g_before_node)
		g_before_node(f);
	char *text = fmt("%s[adapters.wings]\npath = \"%s\"\n\n[adapters.mem]\ntype = \"memory\"\n"
			 "%s%s%s",
			 g_limits ? "[limits]\nthreads = 1\nio_mib_per_s = 200\n\n" : "", f->store, g_second_local ? "\n[adapters.disk2]\ntype = \"wings\"\n"
						   "path = \"" : "",
			 g_second_local ? f->dir : "", g_second_local ? "/store2\"\n" : "");
	ck_assert_msg(config_load_text(text, strlen(text), "amber.toml", &f->cfg, &err) == 0,
		      "%s", err);
	free(text);
	ck_assert_msg(instance_set_open(f->cfg, f->reg, NULL, &f->set, &err) == 0, "%s", err);

	char url[64] = "";
	if (panel_steps) {
		tu_panel_start(&f->panel, f->dir, 0, 0, panel_steps);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->panel.port);
	} else {
		/* a port a fake panel had and gave back: nothing listens there */
		const char *steps[] = { "204", NULL };
		tu_panel_start(&f->panel, f->dir, 0, 0, steps);
		f->dead_port = f->panel.port;
		tu_panel_stop(&f->panel);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->dead_port);
	}
	struct node_service_config nc = {
		.data_dir = f->data,
		.state_dir = f->state,
		.token_id = TOKEN_ID,
		.token = TOKEN,
		.panel_url = url,
		.max_concurrent_jobs = f->max_jobs ? f->max_jobs : 2,
		.report_retry_budget_ms = budget_ms,
		.instances = f->set,
		.restore_uid = -1,
		.restore_gid = -1,
		/* As amberd passes them. */
		.threads = f->cfg->threads,
		.io_bytes_per_s = f->cfg->io_mib_per_s << 20,
	};
	ck_assert_msg(node_service_new(&nc, &f->svc, &err) == 0, "%s", err);
	size_t n = 0;
	const struct http_route *routes = node_service_routes(f->svc, &n);
	struct http_config hc = { .listen = "127.0.0.1:0", .routes = routes, .n_routes = n };
	ck_assert_int_eq(http_server_new(&hc, &f->srv), 0);
	f->port = http_server_port(f->srv);
}

static void fx_start(struct fx *f, const char *const *panel_steps, unsigned budget_ms)
{
	fx_start_jobs(f, panel_steps, budget_ms, 0);
}

static void fx_stop(struct fx *f)
{
	http_server_free(f->srv);
	node_service_free(f->svc);
	instance_set_free(f->set);
	config_free(f->cfg);
	adapter_registry_free(f->reg);
	tu_panel_stop(&f->panel);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->data);
	free(f->store);
	free(f->state);
}

/* One request through curl. auth NULL: no Authorization header; ctype NULL: none;
 * body NULL: none. extra: more curl arguments (already quoted). Returns the status;
 * *ret_body (if not NULL) gets the response body. */
static unsigned req(struct fx *f, const char *method, const char *path, const char *auth,
		    const char *ctype, const char *body, const char *extra, char **ret_body)
{
	char *bodyf = fmt("%s/req.body", f->dir), *outf = fmt("%s/resp.body", f->dir);
	unlink(outf);
	if (body)
		tu_write_file(bodyf, body, strlen(body), 0600);
	char *a = auth ? fmt("-H 'Authorization: %s'", auth) : strdup("");
	char *c = ctype ? fmt("-H 'Content-Type: %s'", ctype) : strdup("");
	char *d = body ? fmt("--data-binary @'%s'", bodyf) : strdup("");
	int st = 0;
	char *code = tu_sh_out(&st, "curl -s -o '%s' -w '%%{http_code}' -X %s %s %s %s %s "
				    "'http://127.0.0.1:%u%s'",
			       outf, method, a, c, d, extra ? extra : "", f->port, path);
	ck_assert_int_eq(st, 0);
	unsigned status = (unsigned)atoi(code);
	if (ret_body) {
		*ret_body = tu_read_file(outf, NULL);
		if (!*ret_body)
			*ret_body = strdup("");
	}
	free(code);
	free(a);
	free(c);
	free(d);
	free(bodyf);
	free(outf);
	return status;
}

#define BEARER "Bearer " TOKEN
#define JSON "application/json"

/* Asserts status and that the error body mentions want (if not NULL). */
static void expect(struct fx *f, const char *method, const char *path, const char *auth,
		   const char *ctype, const char *body, unsigned want_status, const char *want)
{
	char *out = NULL;
	unsigned st = req(f, method, path, auth, ctype, body, NULL, &out);
	ck_assert_msg(st == want_status, "%s %s: %u, want %u (%s)", method, path, st,
		      want_status, out);
	if (want)
		ck_assert_msg(strstr(out, want), "%s %s: body %s lacks %s", method, path, out,
			      want);
	free(out);
}

/* Polls the status route until the job has finished; returns its JSON. */
static json_t *wait_job(struct fx *f, const char *server, const char *backup)
{
	char *path = fmt("/api/servers/%s/backup/%s", server, backup);
	for (int i = 0; i < 600; i++) {
		char *out = NULL;
		unsigned st = req(f, "GET", path, BEARER, NULL, NULL, NULL, &out);
		ck_assert_msg(st == 200, "status %u: %s", st, out);
		json_t *j = json_loads(out, 0, NULL);
		free(out);
		ck_assert_ptr_nonnull(j);
		const char *state = json_string_value(json_object_get(j, "state"));
		if (!strcmp(state, "done") || !strcmp(state, "failed")) {
			free(path);
			return j;
		}
		json_decref(j);
		usleep(50 * 1000);
	}
	ck_abort_msg("job %s did not finish", backup);
	return NULL;
}

static void create_backup(struct fx *f, const char *server, const char *backup)
{
	char *path = fmt("/api/servers/%s/backup", server);
	char *body = fmt("{\"adapter\":\"wings\",\"uuid\":\"%s\",\"ignore\":\"\"}", backup);
	expect(f, "POST", path, BEARER, JSON, body, 202, NULL);
	json_t *j = wait_job(f, server, backup);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "backup");
	ck_assert(json_is_true(json_object_get(j, "successful")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "percent")), 100);
	/* progress came from the archive engine: everything it planned to read, it read */
	json_int_t total = json_integer_value(json_object_get(j, "total_bytes"));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_read")), total);
	ck_assert_int_gt(json_integer_value(json_object_get(j, "bytes_written")), 0);
	ck_assert(json_is_integer(json_object_get(j, "started_at")));
	ck_assert(json_is_integer(json_object_get(j, "finished_at")));
	ck_assert(json_is_null(json_object_get(j, "error")));
	json_decref(j);
	free(path);
	free(body);
}

/* ---- tests ---- */

START_TEST(auth_and_validation)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps, 2000);
	const char *create = "/api/servers/" SERVER "/backup";
	const char *ok = "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}";

	expect(&f, "POST", create, NULL, JSON, ok, 401, "authorization heads were not present");
	expect(&f, "POST", create, "Basic " TOKEN, JSON, ok, 401, "heads");
	expect(&f, "POST", create, "Bearer", JSON, ok, 401, "heads");
	expect(&f, "POST", create, "Bearer wrong", JSON, ok, 403, "not authorized");
	expect(&f, "POST", create, "Bearer " TOKEN "x", JSON, ok, 403, "not authorized");
	expect(&f, "GET", "/api/servers/" SERVER "/backup/" BACKUP1, "Bearer nope", NULL, NULL,
	       403, "not authorized");

	expect(&f, "POST", "/api/servers/not-a-uuid/backup", BEARER, JSON, ok, 400, "valid UUID");
	expect(&f, "POST", "/api/servers/12345678-2222-4333-8444-555555555555/backup", BEARER,
	       JSON, ok, 404, "does not exist");
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"../../etc/x\",\"ignore\":\"\"}", 400,
	       "backup identifier must be a valid UUID");
	/* "s3" without an instance is the panel-presigned mode (below); any other name
	 * the node does not have is refused */
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"azure\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", 400,
	       "configured: wings, mem");
	expect(&f, "POST", create, BEARER, JSON, "{\"uuid\":\"" BACKUP1 "\"}", 400, "wings");
	expect(&f, "POST", create, BEARER, JSON, "{\"adapter\":", 400, NULL);
	expect(&f, "POST", create, BEARER, "text/plain", ok, 400, NULL);
	expect(&f, "POST", create, BEARER, JSON, "", 400, NULL);
	expect(&f, "POST", create, BEARER, JSON, "[1]", 400, "JSON object");
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":5}", 400, "ignore");

	const char *restore = "/api/servers/" SERVER "/backup/" BACKUP1 "/restore";
	expect(&f, "POST", restore, NULL, JSON, "{}", 401, NULL);
	expect(&f, "POST", "/api/servers/" SERVER "/backup/nope/restore", BEARER, JSON,
	       "{\"adapter\":\"wings\"}", 400, "valid UUID");
	expect(&f, "POST", restore, BEARER, JSON, "{\"adapter\":\"azure\"}", 400, "wings");
	expect(&f, "POST", restore, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"truncate_directory\":\"yes\"}", 400, "truncate");
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, "Bearer x", NULL, NULL, 403,
	       NULL);
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/zzz", BEARER, NULL, NULL, 400, NULL);
	expect(&f, "GET", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, NULL, NULL, 404,
	       "not found");

	/* nothing was accepted, so nothing was reported */
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	fx_stop(&f);
}
END_TEST

static char *sha1_of(const char *path)
{
	int st = 0;
	char *out = tu_sh_out(&st, "sha1sum '%s' | cut -c1-40", path);
	ck_assert_int_eq(st, 0);
	out[strcspn(out, "\n")] = 0;
	return out;
}

START_TEST(create_report_restore_delete)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps, 2000);
	create_backup(&f, SERVER, BACKUP1);

	/* Wings' layout: <path>/<uuid>.tar.gz */
	char *stored = fmt("%s/%s.tar.gz", f.store, BACKUP1);
	struct stat st;
	ck_assert_int_eq(stat(stored, &st), 0);
	char *sum = sha1_of(stored);
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
	ck_assert_uint_eq(json_array_size(r), 1);
	json_t *b = json_object_get(json_array_get(r, 0), "body");
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum")), sum);
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum_type")), "sha1");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), st.st_size);
	ck_assert(json_is_null(json_object_get(b, "parts")));
	json_decref(r);
	free(sum);

	/* change the server, then restore with truncate: the backup's tree comes back */
	char *a = fmt("%s/%s/a.txt", f.data, SERVER), *extra = fmt("%s/%s/extra", f.data, SERVER);
	tu_write_file(a, "changed", 7, 0644);
	tu_write_file(extra, "x", 1, 0644);
	expect(&f, "POST", "/api/servers/" SERVER "/backup/" BACKUP1 "/restore", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"truncate_directory\":true,\"download_url\":\"\"}", 202,
	       NULL);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "restore");
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	size_t len = 0;
	char *got = tu_read_file(a, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, 12);
	ck_assert(!memcmp(got, "hello amber\n", 12));
	free(got);
	ck_assert_int_ne(access(extra, F_OK), 0);
	char *bin = fmt("%s/%s/sub/b.bin", f.data, SERVER);
	ck_assert_int_eq(stat(bin, &st), 0);
	ck_assert_int_eq(st.st_size, 1 << 20);
	free(bin);
	r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1 "/restore");
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert(json_is_true(
		json_object_get(json_object_get(json_array_get(r, 0), "body"), "successful")));
	json_decref(r);

	/* a restore of a backup that does not exist fails, and says so to the panel */
	expect(&f, "POST", "/api/servers/" SERVER "/backup/" BACKUP2 "/restore", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"truncate_directory\":true}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	ck_assert(json_is_false(json_object_get(j, "successful")));
	json_decref(j);
	r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP2 "/restore");
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert(json_is_false(
		json_object_get(json_object_get(json_array_get(r, 0), "body"), "successful")));
	json_decref(r);
	/* ...and, the source being checked first, truncated nothing */
	ck_assert_int_eq(access(a, F_OK), 0);

	/* delete: 204, then 404; a body may name the instance */
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, NULL, NULL, 204,
	       NULL);
	ck_assert_int_ne(access(stored, F_OK), 0);
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, JSON,
	       "{\"adapter\":\"wings\"}", 404, "backup was not found");
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, JSON,
	       "{\"adapter\":\"nope\"}", 400, "configured: wings, mem");
	free(a);
	free(extra);
	free(stored);
	fx_stop(&f);
}
END_TEST

/* [limits] reach every job: a backup and a restore under a thread cap of 1 and an I/O
 * limit still produce the same tree. */
START_TEST(limits_apply_to_jobs)
{
	static const char *const steps[] = { "204", NULL };
	g_limits = true;
	struct fx f;
	fx_start(&f, steps, 2000);
	ck_assert_uint_eq(f.cfg->threads, 1);
	ck_assert_uint_eq(f.cfg->io_mib_per_s, 200);
	create_backup(&f, SERVER, BACKUP1);
	char *a = fmt("%s/%s/a.txt", f.data, SERVER);
	tu_write_file(a, "changed", 7, 0644);
	expect(&f, "POST", "/api/servers/" SERVER "/backup/" BACKUP1 "/restore", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"truncate_directory\":true,\"download_url\":\"\"}", 202,
	       NULL);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	size_t len = 0;
	char *got = tu_read_file(a, &len);
	ck_assert_uint_eq(len, 12);
	ck_assert(!memcmp(got, "hello amber\n", 12));
	free(got);
	free(a);
	fx_stop(&f);
}
END_TEST

START_TEST(one_job_per_server)
{
	/* The panel holds the first report for 3 s, so the first job is still running
	 * (reporting) when the second request comes: deterministic without timing luck. */
	static const char *const steps[] = { "slow:3", "204", NULL };
	struct fx f;
	fx_start(&f, steps, 10000);
	const char *path = "/api/servers/" SERVER "/backup";
	expect(&f, "POST", path, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", 202, NULL);
	/* wait until the report is on the wire */
	for (int i = 0; i < 200; i++) {
		json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
		size_t n = json_array_size(r);
		json_decref(r);
		if (n)
			break;
		usleep(25 * 1000);
	}
	expect(&f, "POST", path, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\"}", 409,
	       "already running");
	expect(&f, "POST", "/api/servers/" SERVER "/backup/" BACKUP1 "/restore", BEARER, JSON,
	       "{\"adapter\":\"wings\"}", 409, NULL);
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, NULL, NULL, 409,
	       NULL);
	/* another server is not held up */
	create_backup(&f, SERVER2, BACKUP2);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);

	/* a draining node takes no new work */
	ck_assert_int_eq(node_service_drain(f.svc, 1000), 0);
	expect(&f, "POST", path, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\"}", 503,
	       "shutting down");
	fx_stop(&f);
}
END_TEST

static char *sign(const char *server, const char *backup, const char *unique, long long exp,
		  const char *key)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "server_uuid", server, "backup_uuid",
			      backup, "unique_id", unique, "iat", (json_int_t)time(NULL),
			      "exp", (json_int_t)exp);
	char *tok = NULL;
	ck_assert_int_eq(jwt_hs256_sign(c, key, strlen(key), &tok), 0);
	json_decref(c);
	return tok;
}

static unsigned download(struct fx *f, const char *token, const char *extra, const char *out)
{
	int st = 0;
	char *code = tu_sh_out(&st, "curl -s -o '%s' -w '%%{http_code}' %s "
				    "'http://127.0.0.1:%u/download/backup?token=%s'",
			       out, extra ? extra : "", f->port, token);
	ck_assert_int_eq(st, 0);
	unsigned s = (unsigned)atoi(code);
	free(code);
	return s;
}

START_TEST(signed_download)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps, 2000);
	create_backup(&f, SERVER, BACKUP1);
	char *stored = fmt("%s/%s.tar.gz", f.store, BACKUP1);
	char *out = fmt("%s/dl.tar.gz", f.dir);
	long long later = (long long)time(NULL) + 900;

	char *tok = sign(SERVER, BACKUP1, "uniqueid00000001", later, TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 200);
	ck_assert_int_eq(tu_sh("cmp -s '%s' '%s'", stored, out), 0);
	/* the id is spent: a replay is refused */
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);

	/* the headers a browser needs */
	tok = sign(SERVER, BACKUP1, "uniqueid00000002", later, TOKEN);
	char *hdrs = fmt("%s/dl.headers", f.dir);
	char *extra = fmt("-D '%s' -r 0-9", hdrs);
	ck_assert_uint_eq(download(&f, tok, extra, out), 206);
	struct stat st;
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_size, 10);
	char *h = tu_read_file(hdrs, NULL);
	ck_assert_ptr_nonnull(strcasestr(h, "filename=\"" BACKUP1 ".tar.gz\""));
	ck_assert_ptr_nonnull(strcasestr(h, "Content-Range: bytes 0-9/"));
	free(h);
	free(extra);
	free(hdrs);
	free(tok);

	tok = sign(SERVER, BACKUP1, "uniqueid00000003", (long long)time(NULL) - 10, TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 401);
	free(tok);
	tok = sign(SERVER, BACKUP1, "uniqueid00000004", later, "another-key");
	ck_assert_uint_eq(download(&f, tok, NULL, out), 403);
	free(tok);
	ck_assert_uint_eq(download(&f, "garbage", NULL, out), 401);
	ck_assert_uint_eq(download(&f, "", NULL, out), 401);
	/* unknown server: 404, and the id is not spent */
	tok = sign("12345678-2222-4333-8444-555555555555", BACKUP1, "uniqueid00000005", later,
		   TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	tok = sign(SERVER, BACKUP1, "uniqueid00000005", later, TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 200);
	free(tok);
	/* a backup that is not there */
	tok = sign(SERVER, BACKUP2, "uniqueid00000006", later, TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);

	free(out);
	free(stored);
	fx_stop(&f);
}
END_TEST

START_TEST(unreachable_panel_spools)
{
	struct fx f;
	fx_start(&f, NULL, 300);
	create_backup(&f, SERVER, BACKUP1);
	char *spooled = fmt("%s/outbox/%s.backup.json", f.state, BACKUP1);
	ck_assert_int_eq(access(spooled, F_OK), 0);

	/* the panel comes back on the same address; a flush delivers the report */
	static const char *const steps[] = { "204", NULL };
	tu_panel_start(&f.panel, f.dir, f.dead_port, 0, steps);
	ck_assert_int_eq(node_service_flush_outbox(f.svc), 0);
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
	ck_assert_uint_eq(json_array_size(r), 1);
	json_t *b = json_object_get(json_array_get(r, 0), "body");
	ck_assert(json_is_true(json_object_get(b, "successful")));
	char *stored = fmt("%s/%s.tar.gz", f.store, BACKUP1);
	char *sum = sha1_of(stored);
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum")), sum);
	json_decref(r);
	ck_assert_int_ne(access(spooled, F_OK), 0);
	free(sum);
	free(stored);
	free(spooled);
	fx_stop(&f);
}
END_TEST

START_TEST(object_store_adapter)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps, 2000);
	/* an object store keeps <server>/<uuid>.tar.gz (Pelican's layout) */
	expect(&f, "POST", "/api/servers/" SERVER "/backup", BEARER, JSON,
	       "{\"adapter\":\"mem\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"sub\"}", 202, NULL);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	struct instance *mem = instance_set_find(f.set, "mem");
	ck_assert_ptr_nonnull(mem);
	struct amber_ctx ctx;
	host_ctx_init(&ctx, "memory", "mem", "list", "test");
	struct amber_buf list = { 0 };
	ck_assert_int_eq(backup_list(mem, "", &ctx, &list), 0);
	ck_assert_msg(strstr(list.data, SERVER "/" BACKUP1 ".tar.gz\t"), "%s", list.data);
	amber_buf_clear(&list);
	char *wings_file = fmt("%s/%s.tar.gz", f.store, BACKUP1);
	ck_assert_int_ne(access(wings_file, F_OK), 0);
	free(wings_file);
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
	ck_assert_uint_eq(json_array_size(r), 1);
	json_t *b = json_object_get(json_array_get(r, 0), "body");
	ck_assert(json_is_true(json_object_get(b, "successful")));
	/* "sub" was ignored: the archive holds a.txt only, far below the 1 MiB file */
	ck_assert_int_lt(json_integer_value(json_object_get(b, "size")), 4096);
	json_decref(r);

	/* a download_url wins over the instance (it is what the panel asked for): one that
	 * answers 404 fails the restore before anything is truncated; without one, the
	 * node restores through its own instance */
	char *a = fmt("%s/%s/a.txt", f.data, SERVER);
	const char *restore = "/api/servers/" SERVER "/backup/" BACKUP1 "/restore";
	char *sdir = fmt("%s/store-url", f.dir);
	ck_assert_int_eq(mkdir(sdir, 0700), 0);
	struct fake_store fs;
	fake_store_start(&fs, sdir, NULL, NULL);
	char *body = fmt("{\"adapter\":\"mem\",\"truncate_directory\":true,"
			 "\"download_url\":\"http://127.0.0.1:%d/status/404?sig=x\"}", fs.port);
	expect(&f, "POST", restore, BEARER, JSON, body, 202, NULL);
	json_t *fj = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(fj, "state")), "failed");
	json_decref(fj);
	ck_assert_uint_eq(fake_store_count(&fs, "GET", NULL, NULL), 1);
	fake_store_stop(&fs);
	free(body);
	free(sdir);
	expect(&f, "POST", restore, BEARER, JSON,
	       "{\"adapter\":\"mem\",\"download_url\":\"file:///etc/passwd\"}", 400,
	       "http or https");
	ck_assert_int_eq(access(a, F_OK), 0);
	ck_assert_int_eq(unlink(a), 0);
	expect(&f, "POST", restore, BEARER, JSON,
	       "{\"adapter\":\"mem\",\"truncate_directory\":true}", 202, NULL);
	json_t *rj = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(rj, "state")), "done");
	json_decref(rj);
	ck_assert_int_eq(access(a, F_OK), 0);
	free(a);

	/* delete through the instance the body names */
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, JSON,
	       "{\"adapter\":\"mem\"}", 204, NULL);
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, JSON,
	       "{\"adapter\":\"mem\"}", 404, NULL);
	fx_stop(&f);
}
END_TEST

START_TEST(drain_reports_failures)
{
	/* One worker. The first backup's report hangs at the panel; the second server's
	 * backup waits in the queue. A drain with no grace period cancels the first (its
	 * report is cut short and spooled) and discards the second (reported failed). */
	static const char *const steps[] = { "slow:20", "204", NULL };
	struct fx f;
	fx_start_jobs(&f, steps, 30000, 1);
	expect(&f, "POST", "/api/servers/" SERVER "/backup", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", 202, NULL);
	for (int i = 0; i < 400; i++) {
		json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
		size_t n = json_array_size(r);
		json_decref(r);
		if (n)
			break;
		usleep(25 * 1000);
	}
	expect(&f, "POST", "/api/servers/" SERVER2 "/backup", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\"}", 202, NULL);
	ck_assert_int_eq(node_service_drain(f.svc, 0), -ETIMEDOUT);

	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP2);
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert(json_is_false(
		json_object_get(json_object_get(json_array_get(r, 0), "body"), "successful")));
	json_decref(r);
	char *spooled = fmt("%s/outbox/%s.backup.json", f.state, BACKUP1);
	ck_assert_int_eq(access(spooled, F_OK), 0);
	free(spooled);
	json_t *j = wait_job(&f, SERVER2, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	json_decref(j);
	fx_stop(&f);
}
END_TEST

/* Files directly in dir, hidden ones included. */
static unsigned dir_entries(const char *dir)
{
	int st = 0;
	char *out = tu_sh_out(&st, "ls -A '%s' 2>/dev/null | wc -l", dir);
	unsigned n = (unsigned)atoi(out);
	free(out);
	return n;
}

START_TEST(max_size_limits_the_archive)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps, 2000);
	const char *create = "/api/servers/" SERVER "/backup";
	/* only a non-negative integer will do */
	const char *bad[] = { "\"4096\"", "-1", "1.5", "true", "{}", NULL };
	for (size_t i = 0; bad[i]; i++) {
		char *body = fmt("{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\","
				 "\"max_size\":%s}", bad[i]);
		expect(&f, "POST", create, BEARER, JSON, body, 400,
		       "max_size field must be a non-negative integer");
		free(body);
	}
	/* 1 MiB of random bytes cannot fit in 4 KiB: the job fails, nothing is stored */
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\","
	       "\"max_size\":4096}", 202, NULL);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	ck_assert(json_is_false(json_object_get(j, "successful")));
	/* it stopped at the limit, not after compressing everything */
	ck_assert_int_lt(json_integer_value(json_object_get(j, "bytes_written")), 4096 + 1);
	json_decref(j);
	ck_assert_uint_eq(dir_entries(f.store), 0);
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1);
	ck_assert_uint_eq(json_array_size(r), 1);
	json_t *b = json_object_get(json_array_get(r, 0), "body");
	ck_assert(json_is_false(json_object_get(b, "successful")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "error")),
			 "the archive grew past the maximum backup size of 4096 bytes");
	json_decref(r);

	/* a limit it fits in, and 0 (no limit) */
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\","
	       "\"max_size\":10000000}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	expect(&f, "POST", "/api/servers/" SERVER2 "/backup", BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\","
	       "\"max_size\":0}", 202, NULL);
	j = wait_job(&f, SERVER2, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	ck_assert_uint_eq(dir_entries(f.store), 2);
	r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP2);
	b = json_object_get(json_array_get(r, 0), "body");
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_ptr_null(json_object_get(b, "error"));
	json_decref(r);
	fx_stop(&f);
}
END_TEST

static bool g_small_store;

/* The wings path on a 1 MiB tmpfs, in a mount namespace of this test's own (it needs
 * root; the test says so and passes without it). */
static void mount_small_store(struct fx *f)
{
	ck_assert_int_eq(mkdir(f->store, 0755), 0);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", f->store, "tmpfs", 0, "size=1m") < 0) {
		fprintf(stderr, "insufficient_storage: skipped, no tmpfs: %s\n", strerror(errno));
		return;
	}
	g_small_store = true;
}

START_TEST(insufficient_storage)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	g_before_node = mount_small_store;
	fx_start(&f, steps, 2000);
	g_before_node = NULL;
	if (!g_small_store) {
		fx_stop(&f);
		return;
	}
	struct statvfs vfs;
	ck_assert_int_eq(statvfs(f.store, &vfs), 0);
	unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
	/* SERVER holds 1 MiB of random bytes and a small file: more than the tmpfs */
	const char *create = "/api/servers/" SERVER "/backup";
	char *out = NULL;
	unsigned st = req(&f, "POST", create, BEARER, JSON,
			  "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", NULL,
			  &out);
	ck_assert_msg(st == 507, "%u %s", st, out);
	json_t *j = json_loads(out, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));
	ck_assert_ptr_nonnull(msg);
	char *want = fmt(" bytes needed, %llu bytes available on wings.", avail);
	ck_assert_msg(strncmp(msg, "Not enough storage space for this backup: about ", 48) == 0 &&
			      strstr(msg, want),
		      "%s", msg);
	unsigned long long need = strtoull(msg + 48, NULL, 10);
	ck_assert_uint_gt(need, (1u << 20) + 12);
	ck_assert_uint_gt(need, avail);
	free(want);
	json_decref(j);
	free(out);
	/* no job, no report, nothing stored */
	expect(&f, "GET", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, NULL, NULL, 404,
	       NULL);
	ck_assert_uint_eq(dir_entries(f.store), 0);
	json_t *r = tu_panel_requests(&f.panel, NULL);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);

	/* a limit below the free space bounds what the backup can take: accepted (and
	 * then stopped at the limit, the random MiB being incompressible) */
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\","
	       "\"max_size\":65536}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	json_decref(j);
	ck_assert_uint_eq(dir_entries(f.store), 0);

	/* the estimate applies the backup's ignore rules: without sub/ it fits... */
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"sub\"}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	/* ...and so does a .pteroignore when the request has none */
	char *pi = fmt("%s/%s/.pteroignore", f.data, SERVER);
	tu_write_file(pi, "sub/\n", 5, 0644);
	free(pi);
	expect(&f, "POST", create, BEARER, JSON,
	       "{\"adapter\":\"wings\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\"}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	/* an object store is not checked against the local disk */
	pi = fmt("%s/%s/.pteroignore", f.data, SERVER);
	unlink(pi);
	free(pi);
	expect(&f, "POST", "/api/servers/" SERVER "/backup", BEARER, JSON,
	       "{\"adapter\":\"mem\",\"uuid\":\"" BACKUP2 "\",\"ignore\":\"\"}", 202, NULL);
	j = wait_job(&f, SERVER, BACKUP2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	umount2(f.store, MNT_DETACH);
	fx_stop(&f);
}
END_TEST

static char *sign_adapter(const char *unique, json_t *adapter /* stolen */)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "server_uuid", SERVER,
			      "backup_uuid", BACKUP1, "unique_id", unique, "iat",
			      (json_int_t)time(NULL), "exp", (json_int_t)time(NULL) + 900,
			      "adapter", adapter);
	char *tok = NULL;
	ck_assert_int_eq(jwt_hs256_sign(c, TOKEN, strlen(TOKEN), &tok), 0);
	json_decref(c);
	return tok;
}

START_TEST(download_names_its_instance)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	g_second_local = true;
	fx_start(&f, steps, 2000);
	/* the backup is on disk2, not on the default instance */
	expect(&f, "POST", "/api/servers/" SERVER "/backup", BEARER, JSON,
	       "{\"adapter\":\"disk2\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", 202, NULL);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	char *stored = fmt("%s/store2/%s.tar.gz", f.dir, BACKUP1);
	char *out = fmt("%s/dl.tar.gz", f.dir);

	/* unknown, not local, or not a string: 404, and the id is not spent */
	char *tok = sign_adapter("uniqueid00000011", json_string("nope"));
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	tok = sign_adapter("uniqueid00000011", json_string("mem"));
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	tok = sign_adapter("uniqueid00000011", json_integer(1));
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	tok = sign_adapter("uniqueid00000011", json_string("disk2"));
	ck_assert_uint_eq(download(&f, tok, NULL, out), 200);
	ck_assert_int_eq(tu_sh("cmp -s '%s' '%s'", stored, out), 0);
	free(tok);
	/* "wings" named explicitly, or no claim (the default): not there */
	tok = sign_adapter("uniqueid00000012", json_string("wings"));
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	tok = sign(SERVER, BACKUP1, "uniqueid00000013", (long long)time(NULL) + 900, TOKEN);
	ck_assert_uint_eq(download(&f, tok, NULL, out), 404);
	free(tok);
	free(out);
	free(stored);
	fx_stop(&f);
}
END_TEST

/* ---- "s3" without an instance: Wings' s3 mode through a stock panel ---- */

#define PART (1u << 20)

/* Another 3 MiB of incompressible data, so the archive spans several 1 MiB parts. */
static void add_bulk(struct fx *f)
{
	size_t n = 3u << 20;
	char *b = malloc(n);
	uint32_t x = 4242;
	for (size_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		b[i] = (char)(x >> 24);
	}
	char *p = fmt("%s/%s/world/region.mca", f->data, SERVER);
	tu_write_file(p, b, n, 0644);
	free(p);
	free(b);
}

/* The store first (the panel hands out its URLs), then the node with the panel.
 * Returns the store's scratch directory, for fx_stop_s3. */
static char *fx_start_s3(struct fx *f, struct fake_store *st, const char *const *rules)
{
	char *sdir = tu_mkdtemp("s3store");
	fake_store_start(st, sdir, NULL, rules);
	char *step = fmt("s3parts:%u:http://127.0.0.1:%d", PART, st->port);
	const char *steps[] = { step, "204", NULL };
	fx_start(f, steps, 2000);
	free(step);
	add_bulk(f);
	return sdir;
}

static void fx_stop_s3(struct fx *f, struct fake_store *st, char *sdir)
{
	fx_stop(f);
	fake_store_stop(st);
	tu_rmrf(sdir);
	free(sdir);
}

/* Runs a presigned create to its end; returns the report's body (a new reference) and
 * the size the node asked part URLs for. */
static json_t *presigned_create(struct fx *f, const char *want_state, long long *ret_size)
{
	expect(f, "POST", "/api/servers/" SERVER "/backup", BEARER, JSON,
	       "{\"adapter\":\"s3\",\"uuid\":\"" BACKUP1 "\",\"ignore\":\"\"}", 202, NULL);
	json_t *j = wait_job(f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), want_state);
	ck_assert_int_gt(json_integer_value(json_object_get(j, "bytes_written")), 0);
	json_decref(j);
	json_t *all = tu_panel_requests(&f->panel, NULL);
	ck_assert_uint_eq(json_array_size(all), 2);
	/* 1: the part URLs for the archive's upper bound, as Wings asks (§3.1) */
	json_t *q = json_array_get(all, 0);
	ck_assert_str_eq(json_string_value(json_object_get(q, "method")), "GET");
	const char *path = json_string_value(json_object_get(q, "path"));
	const char *pre = "/api/remote/backups/" BACKUP1 "?size=";
	ck_assert_msg(!strncmp(path, pre, strlen(pre)), "%s", path);
	*ret_size = atoll(path + strlen(pre));
	ck_assert_int_gt(*ret_size, 4 << 20);
	/* 2: the report */
	json_t *rep = json_array_get(all, 1);
	ck_assert_str_eq(json_string_value(json_object_get(rep, "method")), "POST");
	ck_assert_str_eq(json_string_value(json_object_get(rep, "path")),
			 "/api/remote/backups/" BACKUP1);
	json_t *body = json_incref(json_object_get(rep, "body"));
	json_decref(all);
	return body;
}

/* The report lists the store's parts in order, their concatenation is the archive it
 * describes, and GNU tar reads it. */
static void check_presigned_report(struct fx *f, struct fake_store *st, json_t *b,
				   long long asked)
{
	ck_assert(json_is_true(json_object_get(b, "successful")));
	json_int_t size = json_integer_value(json_object_get(b, "size"));
	ck_assert_int_le(size, asked);
	json_t *parts = json_object_get(b, "parts");
	size_t n = json_array_size(parts);
	ck_assert_uint_eq(n, (size_t)((size + PART - 1) / PART));
	ck_assert_uint_ge(n, 4);
	json_t *log = fake_store_requests(st);
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(parts, i);
		ck_assert_int_eq(json_integer_value(json_object_get(p, "part_number")), i + 1);
		const char *etag = json_string_value(json_object_get(p, "etag"));
		ck_assert_ptr_nonnull(etag);
		ck_assert(etag[0] == '"' && etag[strlen(etag) - 1] == '"');
		/* the ETag of the PUT that stored the part: the last 200 for it */
		const char *stored = NULL;
		size_t k;
		json_t *e;
		json_array_foreach(log, k, e) {
			if (json_integer_value(json_object_get(e, "part")) == (json_int_t)(i + 1) &&
			    json_integer_value(json_object_get(e, "status")) == 200)
				stored = json_string_value(json_object_get(e, "etag"));
		}
		ck_assert_ptr_nonnull(stored);
		ck_assert_str_eq(etag, stored);
	}
	json_decref(log);
	size_t len = 0;
	unsigned char *obj = fake_store_object(st, (unsigned)n, &len);
	ck_assert_uint_eq(len, (size_t)size);
	char *file = fmt("%s/object.tar.gz", f->dir);
	tu_write_file(file, obj, len, 0600);
	free(obj);
	char *sum = sha1_of(file);
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum")), sum);
	free(sum);
	ck_assert_int_eq(tu_sh("tar -tzf '%s' > '%s.list'", file, file), 0);
	ck_assert_int_eq(tu_sh("grep -Eqx '(./)?world/region.mca' '%s.list' && "
			       "grep -Eqx '(./)?sub/b.bin' '%s.list'", file, file), 0);
	/* the bytes themselves: GNU tar extracts what the server holds */
	ck_assert_int_eq(tu_sh("mkdir '%s/x' && tar -xzf '%s' -C '%s/x' && "
			       "cmp '%s/x/world/region.mca' '%s/%s/world/region.mca'",
			       f->dir, file, f->dir, f->dir, f->data, SERVER),
			 0);
	free(file);
}

/* A presigned create that succeeds, its report checked against the store. */
static void presigned_create_ok(struct fx *f, struct fake_store *st)
{
	long long asked = 0;
	json_t *b = presigned_create(f, "done", &asked);
	check_presigned_report(f, st, b, asked);
	json_decref(b);
}

START_TEST(presigned_backup_and_restore_from_download_url)
{
	static const char *const rules[] = { "get:1:drop:700000", NULL };
	struct fx f;
	struct fake_store st;
	char *sdir = fx_start_s3(&f, &st, rules);
	presigned_create_ok(&f, &st);

	/* restore through the panel's download_url, the store dropping the connection once:
	 * the node resumes with a Range and the tree comes back */
	char *a = fmt("%s/%s/a.txt", f.data, SERVER), *extra = fmt("%s/%s/extra", f.data, SERVER);
	tu_write_file(a, "changed", 7, 0644);
	tu_write_file(extra, "x", 1, 0644);
	const char *restore = "/api/servers/" SERVER "/backup/" BACKUP1 "/restore";
	char *body = fmt("{\"adapter\":\"s3\",\"truncate_directory\":true,"
			 "\"download_url\":\"http://127.0.0.1:%d/object?X-Amz-Signature=abc\"}",
			 st.port);
	expect(&f, "POST", restore, BEARER, JSON, body, 202, NULL);
	free(body);
	json_t *j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	size_t len = 0;
	char *got = tu_read_file(a, &len);
	ck_assert_uint_eq(len, 12);
	ck_assert(!memcmp(got, "hello amber\n", 12));
	free(got);
	ck_assert_int_ne(access(extra, F_OK), 0);
	ck_assert_int_eq(tu_sh("cmp '%s/x/world/region.mca' '%s/%s/world/region.mca' && "
			       "cmp '%s/x/sub/b.bin' '%s/%s/sub/b.bin'",
			       f.dir, f.data, SERVER, f.dir, f.data, SERVER),
			 0);
	ck_assert_uint_eq(fake_store_count(&st, "GET", "range", "bytes=700000-"), 1);
	json_t *r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1 "/restore");
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert(json_is_true(
		json_object_get(json_object_get(json_array_get(r, 0), "body"), "successful")));
	json_decref(r);

	/* a download_url answering 403 fails the restore before anything is truncated */
	tu_write_file(extra, "x", 1, 0644);
	body = fmt("{\"adapter\":\"s3\",\"truncate_directory\":true,"
		   "\"download_url\":\"http://127.0.0.1:%d/status/403\"}", st.port);
	expect(&f, "POST", restore, BEARER, JSON, body, 202, NULL);
	free(body);
	j = wait_job(&f, SERVER, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	json_decref(j);
	ck_assert_int_eq(access(extra, F_OK), 0);
	ck_assert_int_eq(access(a, F_OK), 0);
	r = tu_panel_requests(&f.panel, "/api/remote/backups/" BACKUP1 "/restore");
	ck_assert_uint_eq(json_array_size(r), 2);
	ck_assert(json_is_false(
		json_object_get(json_object_get(json_array_get(r, 1), "body"), "successful")));
	json_decref(r);

	/* s3 needs its download_url; delete answers Wings' 404 (the panel removes the
	 * object itself and takes a 404 as deleted) */
	expect(&f, "POST", restore, BEARER, JSON, "{\"adapter\":\"s3\",\"download_url\":\"\"}",
	       400, "download_url field is required");
	expect(&f, "DELETE", "/api/servers/" SERVER "/backup/" BACKUP1, BEARER, JSON,
	       "{\"adapter\":\"s3\"}", 404, "backup was not found");
	free(a);
	free(extra);
	fx_stop_s3(&f, &st, sdir);
}
END_TEST

START_TEST(presigned_backup_survives_transient_failures)
{
	static const char *const rules[] = { "put:1:1:drop", "put:2:1:503", "put:2:2:500",
					     "put:3:1:429", "put:4:1:drop", NULL };
	struct fx f;
	struct fake_store st;
	char *sdir = fx_start_s3(&f, &st, rules);
	presigned_create_ok(&f, &st);
	ck_assert_uint_eq(fake_store_count(&st, "PUT", "fault", "drop"), 2);
	ck_assert_uint_eq(fake_store_count(&st, "PUT", "fault", "503"), 1);
	fx_stop_s3(&f, &st, sdir);
}
END_TEST

START_TEST(presigned_backup_permanent_failure_reports_failed)
{
	static const char *const rules[] = { "put:3:*:403", NULL };
	struct fx f;
	struct fake_store st;
	char *sdir = fx_start_s3(&f, &st, rules);
	time_t t0 = time(NULL);
	long long asked = 0;
	json_t *b = presigned_create(&f, "failed", &asked);
	ck_assert_int_le(time(NULL) - t0, 10);
	/* Wings' failure report: the panel aborts the multipart upload */
	ck_assert(json_is_false(json_object_get(b, "successful")));
	ck_assert(json_is_null(json_object_get(b, "parts")));
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 0);
	const char *err = json_string_value(json_object_get(b, "error"));
	ck_assert_msg(err && strstr(err, "part 3: HTTP 403"), "%s", err ? err : "(none)");
	json_decref(b);
	ck_assert_uint_eq(fake_store_count(&st, "PUT", "fault", "403"), 1);
	fx_stop_s3(&f, &st, sdir);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("node_service");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, auth_and_validation);
	tcase_add_test(tc, create_report_restore_delete);
	tcase_add_test(tc, limits_apply_to_jobs);
	tcase_add_test(tc, one_job_per_server);
	tcase_add_test(tc, signed_download);
	tcase_add_test(tc, unreachable_panel_spools);
	tcase_add_test(tc, object_store_adapter);
	tcase_add_test(tc, drain_reports_failures);
	tcase_add_test(tc, max_size_limits_the_archive);
	tcase_add_test(tc, insufficient_storage);
	tcase_add_test(tc, download_names_its_instance);
	tcase_add_test(tc, presigned_backup_and_restore_from_download_url);
	tcase_add_test(tc, presigned_backup_survives_transient_failures);
	tcase_add_test(tc, presigned_backup_permanent_failure_reports_failed);
	suite_add_tcase(s, tc);
	int rc = tu_run_suite(s);
	curl_global_cleanup();
	return rc;
}
