/* The panel side's node client against a real node: Amber's node service on an
 * in-process http_server (127.0.0.1, a "wings" instance loaded from AMBER_ADAPTER_DIR)
 * with tests/tools/fake_panel.py as the panel that receives its reports. The wire format
 * and the 5xx/3xx/reset mappings are checked against fake_panel.py itself standing in for
 * a node; the transport errors against a closed port and a listener that never answers. */
#include "adapter_loader.h"
#include "config.h"
#include "http.h"
#include "instances.h"
#include "node_client.h"
#include "node_service.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "node-token-0123456789abcdef"
#define TOKEN_ID "tokid01"
#define SERVER "11111111-2222-4333-8444-555555555555"
#define BACKUP1 "aaaaaaaa-1111-4222-8333-944455556666"
#define BACKUP2 "bbbbbbbb-1111-4222-8333-944455556666"

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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the node ---- */

struct fx {
	char *dir, *data, *store, *state;
	struct adapter_registry *reg;
	struct config *cfg;
	struct instance_set *set;
	struct node_service *svc;
	struct http_server *srv;
	struct tu_panel panel;
	struct node_client *nc;
};

static struct node_client *client_for(const char *url, const char *token, unsigned timeout_ms)
{
	struct node_client_config cc = { .base_url = url, .token = token, .timeout_ms = timeout_ms };
	struct node_client *c = NULL;
	ck_assert_int_eq(node_client_new(&cc, &c), 0);
	return c;
}

static void fx_start(struct fx *f, const char *const *panel_steps)
{
	memset(f, 0, sizeof(*f));
	f->dir = tu_mkdtemp("nodeclient");
	f->data = fmt("%s/data", f->dir);
	f->store = fmt("%s/store", f->dir);
	f->state = fmt("%s/state", f->dir);
	char *p = fmt("%s/%s/a.txt", f->data, SERVER);
	tu_write_file(p, "hello amber\n", 12, 0644);
	free(p);

	char *err = NULL;
	ck_assert_int_eq(adapter_registry_new(&f->reg), 0);
	ck_assert_int_ge(adapter_registry_load_dir(f->reg, tu_env("AMBER_ADAPTER_DIR", ".")), 1);
	char *text = fmt("[adapters.wings]\npath = \"%s\"\n", f->store);
	ck_assert_msg(config_load_text(text, strlen(text), "amber.toml", &f->cfg, &err) == 0,
		      "%s", err);
	free(text);
	ck_assert_msg(instance_set_open(f->cfg, f->reg, NULL, &f->set, &err) == 0, "%s", err);

	tu_panel_start(&f->panel, f->dir, 0, 0, panel_steps);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->panel.port);
	struct node_service_config nc = {
		.data_dir = f->data,
		.state_dir = f->state,
		.token_id = TOKEN_ID,
		.token = TOKEN,
		.panel_url = url,
		.max_concurrent_jobs = 2,
		.report_retry_budget_ms = 10000,
		.instances = f->set,
		.restore_uid = -1,
		.restore_gid = -1,
	};
	ck_assert_msg(node_service_new(&nc, &f->svc, &err) == 0, "%s", err);
	size_t n = 0;
	const struct http_route *routes = node_service_routes(f->svc, &n);
	struct http_config hc = { .listen = "127.0.0.1:0", .routes = routes, .n_routes = n };
	ck_assert_int_eq(http_server_new(&hc, &f->srv), 0);
	/* a trailing '/' on the base URL is dropped */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", http_server_port(f->srv));
	f->nc = client_for(url, TOKEN, 0);
}

static void fx_stop(struct fx *f)
{
	node_client_free(f->nc);
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

/* Polls the node's status route until the job has finished; returns its JSON. */
static json_t *wait_job(struct node_client *c, const char *backup)
{
	for (int i = 0; i < 400; i++) {
		struct node_status st;
		json_t *j = NULL;
		int rc = node_backup_status(c, SERVER, backup, &j, &st);
		ck_assert_msg(rc == 0, "status: %d %ld %s", rc, st.http_status, st.message);
		ck_assert_int_eq(st.http_status, 200);
		const char *state = json_string_value(json_object_get(j, "state"));
		ck_assert_ptr_nonnull(state);
		if (!strcmp(state, "done") || !strcmp(state, "failed"))
			return j;
		json_decref(j);
		usleep(50 * 1000);
	}
	ck_abort_msg("job %s did not finish", backup);
	return NULL;
}

static void assert_request_id(const struct node_status *st)
{
	/* the node's ids are UUID v4s */
	ck_assert_msg(strlen(st->request_id) == 36 && st->request_id[14] == '4',
		      "request id '%s'", st->request_id);
}

/* ---- tests ---- */

START_TEST(create_restore_delete)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps);
	struct node_status st;

	const char *ignore[] = { "*.log", "cache/", NULL };
	ck_assert_int_eq(node_backup_create(f.nc, SERVER, "wings", BACKUP1, ignore, 0, &st), 0);
	ck_assert_int_eq(st.http_status, 202);
	assert_request_id(&st);
	ck_assert_str_eq(st.message, "");
	json_t *j = wait_job(f.nc, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "backup");
	ck_assert(json_is_true(json_object_get(j, "successful")));
	json_decref(j);
	char *stored = fmt("%s/%s.tar.gz", f.store, BACKUP1);
	ck_assert_int_eq(access(stored, F_OK), 0);

	/* restore with truncate: the backup's tree comes back */
	char *a = fmt("%s/%s/a.txt", f.data, SERVER), *extra = fmt("%s/%s/x", f.data, SERVER);
	tu_write_file(a, "changed", 7, 0644);
	tu_write_file(extra, "x", 1, 0644);
	ck_assert_int_eq(node_backup_restore(f.nc, SERVER, BACKUP1, "wings", true, NULL, &st), 0);
	ck_assert_int_eq(st.http_status, 202);
	j = wait_job(f.nc, BACKUP1);
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

	/* delete: 0, then -ENOENT with the node's 404 and message (the panel's "success") */
	ck_assert_int_eq(node_backup_delete(f.nc, SERVER, BACKUP1, NULL, &st), 0);
	ck_assert_int_eq(st.http_status, 204);
	ck_assert_int_ne(access(stored, F_OK), 0);
	ck_assert_int_eq(node_backup_delete(f.nc, SERVER, BACKUP1, "wings", &st), -ENOENT);
	ck_assert_int_eq(st.http_status, 404);
	ck_assert_msg(strstr(st.message, "backup was not found"), "%s", st.message);
	assert_request_id(&st);
	/* an adapter the node does not have: its 400 */
	ck_assert_int_eq(node_backup_delete(f.nc, SERVER, BACKUP1, "nope", &st), -EINVAL);
	ck_assert_int_eq(st.http_status, 400);

	/* the panel got the two reports */
	json_t *r = tu_panel_requests(&f.panel, NULL);
	ck_assert_uint_eq(json_array_size(r), 2);
	json_decref(r);
	free(a);
	free(extra);
	free(stored);
	fx_stop(&f);
}
END_TEST

START_TEST(node_errors)
{
	static const char *const steps[] = { "204", NULL };
	struct fx f;
	fx_start(&f, steps);
	struct node_status st;
	json_t *j = (json_t *)1;

	/* wrong token: 403 with the node's message */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", http_server_port(f.srv));
	struct node_client *bad = client_for(url, "wrong-token", 0);
	ck_assert_int_eq(node_backup_create(bad, SERVER, "wings", BACKUP1, NULL, 0, &st), -EACCES);
	ck_assert_int_eq(st.http_status, 403);
	ck_assert_msg(strstr(st.message, "not authorized"), "%s", st.message);
	assert_request_id(&st);
	ck_assert_int_eq(node_backup_status(bad, SERVER, BACKUP1, &j, &st), -EACCES);
	ck_assert_ptr_null(j);
	node_client_free(bad);

	/* unknown server: 404 */
	ck_assert_int_eq(node_backup_create(f.nc, "12345678-2222-4333-8444-555555555555", "wings",
					    BACKUP1, NULL, 0, &st),
			 -ENOENT);
	ck_assert_int_eq(st.http_status, 404);
	ck_assert_msg(strstr(st.message, "does not exist"), "%s", st.message);
	assert_request_id(&st);

	/* bad uuids: 400 (the path one is percent-encoded, still one segment) */
	ck_assert_int_eq(node_backup_create(f.nc, SERVER, "wings", "../../etc/x", NULL, 0, &st),
			 -EINVAL);
	ck_assert_int_eq(st.http_status, 400);
	ck_assert_msg(strstr(st.message, "valid UUID"), "%s", st.message);
	ck_assert_int_eq(node_backup_restore(f.nc, SERVER, "../x", "wings", false, NULL, &st),
			 -EINVAL);
	ck_assert_int_eq(st.http_status, 400);
	ck_assert_int_eq(node_backup_create(f.nc, SERVER, "azure", BACKUP1, NULL, 0, &st), -EINVAL);
	ck_assert_msg(strstr(st.message, "wings"), "%s", st.message);

	/* status of a backup with no job: 404 */
	ck_assert_int_eq(node_backup_status(f.nc, SERVER, BACKUP2, &j, &st), -ENOENT);
	ck_assert_int_eq(st.http_status, 404);
	ck_assert_ptr_null(j);

	/* bad arguments: nothing sent */
	ck_assert_int_eq(node_backup_create(f.nc, "", "wings", BACKUP1, NULL, 0, &st), -EINVAL);
	ck_assert_int_eq(st.http_status, 0);
	ck_assert_int_eq(node_backup_delete(f.nc, SERVER, NULL, NULL, &st), -EINVAL);

	/* the client refuses configurations it cannot use */
	struct node_client *c = (struct node_client *)1;
	struct node_client_config cc = { .base_url = "ftp://x", .token = "t" };
	ck_assert_int_eq(node_client_new(&cc, &c), -EINVAL);
	ck_assert_ptr_null(c);
	cc.base_url = "http://127.0.0.1:1";
	cc.token = "a\r\nX-Evil: 1";
	ck_assert_int_eq(node_client_new(&cc, &c), -EINVAL);
	cc.token = "";
	ck_assert_int_eq(node_client_new(&cc, &c), -EINVAL);

	/* nothing was accepted, so nothing was reported */
	json_t *r = tu_panel_requests(&f.panel, NULL);
	ck_assert_uint_eq(json_array_size(r), 0);
	json_decref(r);
	fx_stop(&f);
}
END_TEST

START_TEST(one_job_per_server)
{
	/* The panel holds the first report for 3 s, so the first job is still running
	 * (reporting) when the second create comes: deterministic without timing luck. */
	static const char *const steps[] = { "slow:3", "204", NULL };
	struct fx f;
	fx_start(&f, steps);
	struct node_status st;
	ck_assert_int_eq(node_backup_create(f.nc, SERVER, "wings", BACKUP1, NULL, 0, &st), 0);
	for (int i = 0; i < 200; i++) {
		json_t *r = tu_panel_requests(&f.panel, NULL);
		size_t n = json_array_size(r);
		json_decref(r);
		if (n)
			break;
		usleep(25 * 1000);
	}
	ck_assert_int_eq(node_backup_create(f.nc, SERVER, "wings", BACKUP2, NULL, 0, &st), -EBUSY);
	ck_assert_int_eq(st.http_status, 409);
	ck_assert_msg(strstr(st.message, "already running"), "%s", st.message);
	assert_request_id(&st);
	ck_assert_int_eq(node_backup_restore(f.nc, SERVER, BACKUP1, "wings", false, NULL, &st),
			 -EBUSY);
	json_t *j = wait_job(f.nc, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	fx_stop(&f);
}
END_TEST

/* fake_panel.py stands in for a node: what goes on the wire, and the mappings of
 * answers a healthy Amber node does not give. */
START_TEST(wire_format_and_odd_answers)
{
	static const char *const steps[] = { "202", "500", "close", "close", "garbage",
					     "close", "302", NULL };
	char *dir = tu_mkdtemp("nodeclient");
	struct tu_panel p;
	tu_panel_start(&p, dir, 0, 0, steps);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
	struct node_client *c = client_for(url, TOKEN, 0);
	struct node_status st;
	json_t *j = NULL;

	const char *ignore[] = { "*.log", "cache/", NULL };
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, ignore, 0, &st), 0);
	ck_assert_int_eq(st.http_status, 202);
	ck_assert_int_eq(node_backup_delete(c, SERVER, BACKUP1, "wings", &st), -EBADE);
	ck_assert_int_eq(st.http_status, 500);
	/* a reset: the status GET tries twice */
	ck_assert_int_eq(node_backup_status(c, SERVER, BACKUP1, &j, &st), -EHOSTUNREACH);
	ck_assert_int_eq(st.http_status, 0);
	ck_assert_str_ne(st.message, "");
	ck_assert_int_eq(node_backup_status(c, SERVER, BACKUP1, &j, &st), -EBADMSG);
	ck_assert_ptr_null(j);
	/* ...a restore is sent once */
	ck_assert_int_eq(node_backup_restore(c, SERVER, BACKUP1, "s3", true, "http://s3/x", &st),
			 -EHOSTUNREACH);
	ck_assert_int_eq(node_backup_restore(c, SERVER, BACKUP1, "wings", false, NULL, &st),
			 -EPROTO);
	ck_assert_int_eq(st.http_status, 302);

	json_t *r = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(r), 7);
	json_t *q = json_array_get(r, 0), *h = json_object_get(q, "headers");
	ck_assert_str_eq(json_string_value(json_object_get(q, "method")), "POST");
	ck_assert_str_eq(json_string_value(json_object_get(q, "path")),
			 "/api/servers/" SERVER "/backup");
	ck_assert_str_eq(json_string_value(json_object_get(h, "authorization")), "Bearer " TOKEN);
	ck_assert_str_eq(json_string_value(json_object_get(h, "accept")), "application/json");
	ck_assert_str_eq(json_string_value(json_object_get(h, "content-type")),
			 "application/json");
	json_t *b = json_object_get(q, "body");
	ck_assert_str_eq(json_string_value(json_object_get(b, "adapter")), "wings");
	ck_assert_str_eq(json_string_value(json_object_get(b, "uuid")), BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(b, "ignore")), "*.log\ncache/");

	q = json_array_get(r, 1);
	ck_assert_str_eq(json_string_value(json_object_get(q, "method")), "DELETE");
	ck_assert_str_eq(json_string_value(json_object_get(q, "path")),
			 "/api/servers/" SERVER "/backup/" BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(q, "body"), "adapter")),
			 "wings");
	for (size_t i = 2; i <= 4; i++) {
		q = json_array_get(r, i);
		ck_assert_str_eq(json_string_value(json_object_get(q, "method")), "GET");
		ck_assert_str_eq(json_string_value(json_object_get(q, "path")),
				 "/api/servers/" SERVER "/backup/" BACKUP1);
	}
	q = json_array_get(r, 5);
	ck_assert_str_eq(json_string_value(json_object_get(q, "path")),
			 "/api/servers/" SERVER "/backup/" BACKUP1 "/restore");
	b = json_object_get(q, "body");
	ck_assert_str_eq(json_string_value(json_object_get(b, "adapter")), "s3");
	ck_assert(json_is_true(json_object_get(b, "truncate_directory")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "download_url")), "http://s3/x");
	b = json_object_get(json_array_get(r, 6), "body");
	ck_assert(json_is_false(json_object_get(b, "truncate_directory")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "download_url")), "");
	json_decref(r);

	node_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* Amber's extensions: max_size in the create body (left out when 0), X-Request-Id on
 * every request, 507 → -ENOSPC. The wire against fake_panel.py; the id's echo against
 * the real node. */
START_TEST(amber_extensions)
{
	static const char *const steps[] = { "202", "507", NULL };
	char *dir = tu_mkdtemp("nodeclient");
	struct tu_panel p;
	tu_panel_start(&p, dir, 0, 0, steps);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
	struct node_client_config cc = { .base_url = url, .token = TOKEN,
					  .request_id = "panel-req-0042" };
	struct node_client *c = NULL;
	ck_assert_int_eq(node_client_new(&cc, &c), 0);
	struct node_status st;
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, NULL, 123456789, &st),
			 0);
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP2, NULL, 0, &st), -ENOSPC);
	ck_assert_int_eq(st.http_status, 507);
	/* past what JSON's integers carry: refused, nothing sent */
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP2, NULL,
					    (uint64_t)INT64_MAX + 1, &st),
			 -EINVAL);
	ck_assert_int_eq(st.http_status, 0);
	json_t *r = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(r), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *h = json_object_get(json_array_get(r, i), "headers");
		ck_assert_str_eq(json_string_value(json_object_get(h, "x-request-id")),
				 "panel-req-0042");
	}
	json_t *b = json_object_get(json_array_get(r, 0), "body");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "max_size")), 123456789);
	b = json_object_get(json_array_get(r, 1), "body");
	ck_assert_ptr_null(json_object_get(b, "max_size"));
	json_decref(r);
	node_client_free(c);

	/* ids a node would not log verbatim are refused */
	const char *bad[] = { "", "has space", "semi;colon", "a\r\nX-Evil: 1",
			      "0123456789012345678901234567890123456789012345678901234567890123456",
			      NULL };
	for (size_t i = 0; bad[i]; i++) {
		cc.request_id = bad[i];
		c = (struct node_client *)1;
		ck_assert_msg(node_client_new(&cc, &c) == -EINVAL, "%s", bad[i]);
		ck_assert_ptr_null(c);
	}
	/* without one, no header */
	cc.request_id = NULL;
	ck_assert_int_eq(node_client_new(&cc, &c), 0);
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, NULL, 0, &st), -ENOSPC);
	r = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(r), 3);
	ck_assert_ptr_null(json_object_get(json_object_get(json_array_get(r, 2), "headers"),
					   "x-request-id"));
	json_decref(r);
	node_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);

	/* the real node takes the id as its own and answers with it */
	struct fx f;
	fx_start(&f, (const char *const[]){ "204", NULL });
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", http_server_port(f.srv));
	cc.base_url = url;
	cc.request_id = "0123456789abcdef-ABCDEF";
	ck_assert_int_eq(node_client_new(&cc, &c), 0);
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, NULL, 1u << 20, &st), 0);
	ck_assert_str_eq(st.request_id, "0123456789abcdef-ABCDEF");
	json_t *j = wait_job(c, BACKUP1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	node_client_free(c);
	fx_stop(&f);
}
END_TEST

/* A listening socket on 127.0.0.1 with a free port; *ret_port gets the port. */
static int listener(int *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

START_TEST(transport_errors)
{
	struct node_status st;
	char url[64];
	int port = 0;

	/* a port nobody listens on: refused at once */
	int fd = listener(&port);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct node_client *c = client_for(url, TOKEN, 0);
	double t0 = now_s();
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, NULL, 0, &st), -EHOSTUNREACH);
	ck_assert_int_eq(st.http_status, 0);
	ck_assert_str_ne(st.message, "");
	ck_assert(strstr(st.message, TOKEN) == NULL);
	json_t *j = NULL;
	ck_assert_int_eq(node_backup_status(c, SERVER, BACKUP1, &j, &st), -EHOSTUNREACH);
	ck_assert_msg(now_s() - t0 < 2.0, "refused took %.2f s", now_s() - t0);
	node_client_free(c);

	/* a listener whose backlog completes the handshake but that never answers */
	fd = listener(&port);
	ck_assert_int_eq(listen(fd, 8), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	c = client_for(url, TOKEN, 1000);
	t0 = now_s();
	ck_assert_int_eq(node_backup_create(c, SERVER, "wings", BACKUP1, NULL, 0, &st), -ETIMEDOUT);
	double took = now_s() - t0;
	ck_assert_msg(took >= 0.9 && took < 3.0, "timeout took %.2f s", took);
	ck_assert_int_eq(st.http_status, 0);
	/* a GET is not retried after a timeout */
	t0 = now_s();
	ck_assert_int_eq(node_backup_status(c, SERVER, BACKUP1, &j, &st), -ETIMEDOUT);
	took = now_s() - t0;
	ck_assert_msg(took < 1.9, "status timeout took %.2f s", took);
	node_client_free(c);
	close(fd);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("node_client");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, create_restore_delete);
	tcase_add_test(tc, node_errors);
	tcase_add_test(tc, one_job_per_server);
	tcase_add_test(tc, wire_format_and_odd_answers);
	tcase_add_test(tc, transport_errors);
	tcase_add_test(tc, amber_extensions);
	suite_add_tcase(s, tc);
	int rc = tu_run_suite(s);
	curl_global_cleanup();
	return rc;
}
