/* The panel's remote API over real HTTP: a server on 127.0.0.1 port 0 with the panel
 * service's routes, a store in a scratch directory, real adapters (wings, the SDK's
 * memory example) plus one in-test adapter that can presign part uploads (no shipped
 * adapter can yet). Requests come from the curl program and from Python's requests (as
 * a node would send them); what the store wrote is read back through the store and with
 * the sqlite3 program. */
#include "adapter_loader.h"
#include "config.h"
#include "host.h"
#include "http.h"
#include "instances.h"
#include "panel_service.h"
#include "store.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The CLI's admin commands, from the ambercli library the amber program is built on. */
#include "admin.h"

#define S1 "11111111-1111-4111-8111-111111111111"	/* on node1 */
#define S2 "22222222-2222-4222-8222-222222222222"	/* on node2 */
#define B_WINGS "aaaaaaaa-0000-4000-8000-000000000001"
#define B_MEM "aaaaaaaa-0000-4000-8000-000000000002"
#define B_S3 "aaaaaaaa-0000-4000-8000-000000000003"
#define B_S3B "aaaaaaaa-0000-4000-8000-000000000004"
#define B_FOREIGN "bbbbbbbb-0000-4000-8000-000000000001"
#define B_STUCK "aaaaaaaa-0000-4000-8000-000000000005"
#define B_UNKNOWN "cccccccc-0000-4000-8000-000000000001"
#define AUTH1 "Bearer node1id.secret-one"
#define AUTH2 "Bearer node2id.secret-two"
#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define PART_SIZE 100

/* ---- an adapter with the multipart group, recording what the panel asks of it ---- */

struct amber_instance {
	int creates, completes, aborts;
	size_t last_n_parts;
	char last_upload[64];
	char last_etag[64];
	uint32_t last_number;
};

static int fake_create(amber_instance *self, amber_ctx *ctx, const char *key,
		       const amber_object_info *hint, amber_buf *upload_id)
{
	char id[32];
	int n = snprintf(id, sizeof(id), "upload-%d", ++self->creates);
	return host_services()->buf_append(upload_id, id, (size_t)n);
}

static int fake_presign_part(amber_instance *self, amber_ctx *ctx, const char *key,
			     const char *upload_id, uint32_t part, uint32_t ttl_seconds,
			     amber_buf *url, uint64_t *ret_expires_unix)
{
	if (part == 0 || !upload_id)
		return AMBER_EINVAL;
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "http://s3.invalid/bucket/%s?uploadId=%s&partNumber=%u&ttl=%u", key,
			 upload_id, part, ttl_seconds);
	*ret_expires_unix = (uint64_t)time(NULL) + ttl_seconds;
	return host_services()->buf_append(url, buf, (size_t)n);
}

static int fake_complete(amber_instance *self, amber_ctx *ctx, const char *key,
			 const char *upload_id, const amber_part *const *parts, size_t n_parts)
{
	self->completes++;
	self->last_n_parts = n_parts;
	snprintf(self->last_upload, sizeof(self->last_upload), "%s", upload_id);
	if (n_parts) {
		snprintf(self->last_etag, sizeof(self->last_etag), "%s", parts[0]->etag);
		self->last_number = parts[0]->number;
	}
	return 0;
}

static int fake_abort(amber_instance *self, amber_ctx *ctx, const char *key,
		      const char *upload_id)
{
	self->aborts++;
	snprintf(self->last_upload, sizeof(self->last_upload), "%s", upload_id);
	/* a store that does not implement the abort (s3rver answers 405) */
	return strcmp(upload_id, "upload-405") == 0 ? AMBER_EIO : 0;
}

static const amber_adapter fake_s3 = {
	.struct_size = sizeof(amber_adapter),
	.abi_major = AMBER_ABI_MAJOR,
	.name = "fakes3",
	.version = "0",
	.caps = AMBER_CAP_MULTIPART,
	.multipart_create = fake_create,
	.presign_part = fake_presign_part,
	.multipart_complete = fake_complete,
	.multipart_abort = fake_abort,
};

/* ---- fixture ---- */

struct env {
	char *dir, *db;
	struct store *st;
	struct config *cfg;
	struct adapter_registry *reg;
	struct instance_set *set;
	struct instance fake;
	struct amber_instance fake_state;
	struct panel_service *svc;
	struct http_server *srv;
	unsigned port;
	int64_t node1, node2;
};

static void add_backup(struct env *e, const char *uuid, const char *server, const char *adapter,
		       int64_t created_at)
{
	struct store_backup b = { .uuid = (char *)uuid, .server_uuid = (char *)server,
				  .name = "test", .adapter = (char *)adapter,
				  .created_at = created_at };
	ck_assert_int_eq(store_backup_create(e->st, &b), 0);
}

static void env_up(struct env *e)
{
	memset(e, 0, sizeof(*e));
	e->dir = tu_mkdtemp("panel");
	ck_assert_int_ge(asprintf(&e->db, "%s/amber.db", e->dir), 0);
	ck_assert_int_eq(store_open(e->db, &e->st), 0);
	ck_assert_int_eq(store_node_add(e->st, "node1", "http://127.0.0.1:1", "node1id",
					"secret-one", &e->node1), 0);
	ck_assert_int_eq(store_node_add(e->st, "node2", "http://127.0.0.1:2", "node2id",
					"secret-two", &e->node2), 0);
	ck_assert_int_eq(store_server_add(e->st, S1, e->node1, 5), 0);
	ck_assert_int_eq(store_server_add(e->st, S2, e->node2, 5), 0);
	int64_t now = (int64_t)time(NULL);
	add_backup(e, B_WINGS, S1, "wings", now);
	add_backup(e, B_MEM, S1, "memory", now);
	add_backup(e, B_S3, S1, "s3", now);
	add_backup(e, B_S3B, S1, "s3", now);
	add_backup(e, B_FOREIGN, S2, "s3", now);
	add_backup(e, B_STUCK, S1, "wings", now - 7 * 3600);

	/* The real adapters as the daemon loads them. */
	char *text = NULL, *err = NULL;
	ck_assert_int_ge(asprintf(&text, "[adapters.wings]\npath = \"%s/backups\"\n"
					 "[adapters.memory]\n", e->dir), 0);
	ck_assert_msg(config_load_text(text, strlen(text), "amber.toml", &e->cfg, &err) == 0,
		      "%s", err);
	free(text);
	ck_assert_int_eq(adapter_registry_new(&e->reg), 0);
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/wings.so", tu_env("AMBER_ADAPTER_DIR", ".")), 0);
	ck_assert_msg(adapter_registry_load_file(e->reg, path, &err) == 0, "%s", err);
	free(path);
	ck_assert_int_ge(asprintf(&path, "%s/examples-out/memory.so",
				  tu_env("AMBER_BUILD_DIR", ".")), 0);
	ck_assert_msg(adapter_registry_load_file(e->reg, path, &err) == 0, "%s", err);
	free(path);
	ck_assert_msg(instance_set_open(e->cfg, e->reg, NULL, &e->set, &err) == 0, "%s", err);
	/* ... and the presigning one as instance "s3". */
	e->fake.name = "s3";
	e->fake.ops = &fake_s3;
	e->fake.handle = &e->fake_state;
	pthread_mutex_init(&e->fake.serial, NULL);
	struct instance **v = realloc(e->set->v, (e->set->n + 1) * sizeof(*v));
	ck_assert(v != NULL);
	v[e->set->n++] = &e->fake;
	e->set->v = v;

	struct panel_service_config pc = { .store = e->st, .instances = e->set,
					   .part_size = PART_SIZE, .presign_ttl_s = 600 };
	ck_assert_int_eq(panel_service_new(&pc, &e->svc, &err), 0);
	size_t n;
	const struct http_route *routes = panel_service_routes(e->svc, &n);
	struct http_config hc = { .listen = "127.0.0.1:0", .routes = routes, .n_routes = n };
	ck_assert_int_eq(http_server_new(&hc, &e->srv), 0);
	e->port = http_server_port(e->srv);
}

static void env_down(struct env *e)
{
	http_server_free(e->srv);
	panel_service_free(e->svc);
	e->set->n--; /* the in-test instance is not the set's to free */
	pthread_mutex_destroy(&e->fake.serial);
	instance_set_free(e->set);
	adapter_registry_free(e->reg);
	config_free(e->cfg);
	store_close(e->st);
	tu_rmrf(e->dir);
	free(e->db);
	free(e->dir);
}

/* ---- requests with curl ---- */

struct resp {
	long status;
	json_t *json; /* NULL for an empty or non-JSON body */
	char *body;
};

static void resp_free(struct resp *r)
{
	json_decref(r->json);
	free(r->body);
}

/* method path [auth header value or NULL] [JSON body or NULL]. */
static struct resp call(struct env *e, const char *method, const char *path, const char *auth,
			const char *body)
{
	char *bodyfile = NULL, *hdr = NULL;
	ck_assert_int_ge(asprintf(&bodyfile, "%s/body.json", e->dir), 0);
	if (body)
		tu_write_file(bodyfile, body, strlen(body), 0600);
	if (auth)
		ck_assert_int_ge(asprintf(&hdr, "-H 'Authorization: %s'", auth), 0);
	int st;
	char *out = tu_sh_out(&st,
			      "curl -sS -X %s %s -H 'Accept: application/vnd.pterodactyl.v1+json' "
			      "-H 'Content-Type: application/json' %s%s%s -w '\\n%%{http_code}' "
			      "'http://127.0.0.1:%u%s'",
			      method, hdr ? hdr : "", body ? "--data-binary '@" : "",
			      body ? bodyfile : "", body ? "'" : "", e->port, path);
	ck_assert_msg(st == 0 && out, "curl failed");
	char *nl = strrchr(out, '\n');
	ck_assert(nl != NULL);
	*nl = 0;
	struct resp r = { .status = strtol(nl + 1, NULL, 10), .body = out };
	r.json = json_loads(out, 0, NULL);
	free(bodyfile);
	free(hdr);
	return r;
}

/* The panel's error form: {"errors":[{"code":code,"status":"<status>","detail":...}]}. */
static void expect_error(struct resp *r, long status, const char *code, const char *detail_part)
{
	ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body);
	json_t *e0 = json_array_get(json_object_get(r->json, "errors"), 0);
	ck_assert_msg(e0 != NULL, "no errors[0] in %s", r->body);
	ck_assert_str_eq(json_string_value(json_object_get(e0, "code")), code);
	char want[8];
	snprintf(want, sizeof(want), "%ld", status);
	ck_assert_str_eq(json_string_value(json_object_get(e0, "status")), want);
	const char *detail = json_string_value(json_object_get(e0, "detail"));
	ck_assert(detail != NULL);
	if (detail_part)
		ck_assert_msg(strstr(detail, detail_part), "detail '%s' lacks '%s'", detail,
			      detail_part);
	resp_free(r);
}

static void expect_status(struct resp *r, long status)
{
	ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body);
	resp_free(r);
}

/* s in single quotes for sh, every ' as '\''. */
static char *shq(const char *s)
{
	size_t n = 3;
	for (const char *c = s; *c; c++)
		n += *c == '\'' ? 4 : 1;
	char *out = malloc(n), *o = out;
	ck_assert(out != NULL);
	*o++ = '\'';
	for (const char *c = s; *c; c++) {
		if (*c == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *c;
		}
	}
	*o++ = '\'';
	*o = 0;
	return out;
}

/* What the sqlite3 program reads from the database file: rows on lines, columns
 * joined by '|'. */
static char *sql(struct env *e, const char *query)
{
	int st;
	char *q = shq(query);
	char *out = tu_sh_out(&st, "sqlite3 -batch -noheader '%s' %s", e->db, q);
	free(q);
	ck_assert_msg(st == 0 && out, "sqlite3 failed: %s", query);
	size_t n = strlen(out);
	while (n && out[n - 1] == '\n')
		out[--n] = 0;
	return out;
}

static void expect_sql(struct env *e, const char *query, const char *want)
{
	char *got = sql(e, query);
	ck_assert_msg(strcmp(got, want) == 0, "%s: got [%s], want [%s]", query, got, want);
	free(got);
}

static void expect_reader_line(const char *dir, const char *query, const char *want)
{
	struct env e = { .db = NULL };
	ck_assert_int_ge(asprintf(&e.db, "%s/amber.db", dir), 0);
	expect_sql(&e, query, want);
	free(e.db);
}

/* ---- authentication ---- */

START_TEST(test_auth)
{
	struct env e;
	env_up(&e);
	const char *p = "/api/remote/backups/" B_S3 "?size=10";
	expect_error((struct resp[]){ call(&e, "GET", p, NULL, NULL) }, 401, "HttpException",
		     "must include an Authorization header");
	expect_error((struct resp[]){ call(&e, "GET", p, "Basic bm9kZTE6eA==", NULL) }, 401,
		     "HttpException", NULL);
	expect_error((struct resp[]){ call(&e, "GET", p, "Bearer ", NULL) }, 401,
		     "HttpException", NULL);
	const char *malformed[] = { "Bearer node1id", "Bearer node1id.", "Bearer .secret-one",
				    "Bearer a.b.c" };
	for (size_t i = 0; i < 4; i++)
		expect_error((struct resp[]){ call(&e, "GET", p, malformed[i], NULL) }, 400,
			     "BadRequestHttpException", "not in a valid format");
	expect_error((struct resp[]){ call(&e, "GET", p, "Bearer node1id.secret-two", NULL) },
		     403, "AccessDeniedHttpException", "not authorized");
	expect_error((struct resp[]){ call(&e, "GET", p, "Bearer nobody.secret-one", NULL) },
		     403, "AccessDeniedHttpException", NULL);
	/* Every route checks it, before anything else. */
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_UNKNOWN,
					   "Bearer node1id.x", "{}") },
		     403, "AccessDeniedHttpException", NULL);
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_S3 "/restore",
					   NULL, "{\"successful\":true}") },
		     401, "HttpException", NULL);
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/servers/reset", "Bearer x.y",
					   "") },
		     403, "AccessDeniedHttpException", NULL);
	env_down(&e);
}
END_TEST

/* ---- part URLs ---- */

START_TEST(test_upload_urls)
{
	struct env e;
	env_up(&e);
	const char *bad_sizes[] = { "", "?size=", "?size=0", "?size=abc", "?size=-5",
				    "?size=12abc", "?size=99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		char p[128];
		snprintf(p, sizeof(p), "/api/remote/backups/" B_S3 "%s", bad_sizes[i]);
		expect_error((struct resp[]){ call(&e, "GET", p, AUTH1, NULL) }, 400,
			     "BadRequestHttpException", "\"size\" query parameter");
	}
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_UNKNOWN "?size=5",
					   AUTH1, NULL) },
		     404, "NotFoundHttpException", "could not be found");
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/not-a-uuid?size=5",
					   AUTH1, NULL) },
		     404, "NotFoundHttpException", NULL);
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_FOREIGN "?size=5",
					   AUTH1, NULL) },
		     403, "HttpForbiddenException", "permission to access that backup");
	/* Adapters that cannot presign part uploads: wings (local disk) and memory (it
	 * presigns downloads only). */
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_WINGS "?size=5",
					   AUTH1, NULL) },
		     400, "BadRequestHttpException", "not an S3 compatible adapter");
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_MEM "?size=5",
					   AUTH1, NULL) },
		     400, "BadRequestHttpException", "instance 'memory'");
	/* More parts than a multipart upload can have. */
	expect_error((struct resp[]){ call(&e, "GET",
					   "/api/remote/backups/" B_S3 "?size=1000001", AUTH1,
					   NULL) },
		     400, "BadRequestHttpException", "at most 10000");

	/* ceil(size / part_size) URLs, part i for part number i. */
	const struct {
		const char *size;
		size_t parts;
	} cases[] = { { "1", 1 }, { "100", 1 }, { "101", 2 }, { "250", 3 }, { "1000000", 10000 } };
	for (size_t c = 0; c < 5; c++) {
		char p[128];
		snprintf(p, sizeof(p), "/api/remote/backups/" B_S3 "?size=%s", cases[c].size);
		struct resp r = call(&e, "GET", p, AUTH1, NULL);
		ck_assert_msg(r.status == 200, "%s: %ld %s", p, r.status, r.body);
		ck_assert_int_eq(json_object_size(r.json), 2);
		ck_assert_int_eq(json_integer_value(json_object_get(r.json, "part_size")),
				 PART_SIZE);
		json_t *parts = json_object_get(r.json, "parts");
		ck_assert_int_eq(json_array_size(parts), cases[c].parts);
		for (size_t i = 0; i < json_array_size(parts); i++) {
			char want[200];
			snprintf(want, sizeof(want),
				 "http://s3.invalid/bucket/" S1 "/" B_S3
				 ".tar.gz?uploadId=upload-1&partNumber=%zu&ttl=600",
				 i + 1);
			ck_assert_str_eq(json_string_value(json_array_get(parts, i)), want);
		}
		resp_free(&r);
	}
	/* One upload for the backup, opened by the first request and kept with it. */
	ck_assert_int_eq(e.fake_state.creates, 1);
	struct store_backup *sb;
	ck_assert_int_eq(store_backup_get(e.st, B_S3, &sb), 0);
	ck_assert_str_eq(sb->upload_id, "upload-1");
	store_backup_free(sb);
	/* Once completed, no more URLs. */
	ck_assert_int_eq(store_backup_mark_completed(e.st, B_S3, true, SHA1, NULL, 5, NULL, NULL,
						     time(NULL)),
			 0);
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_S3 "?size=5",
					   AUTH1, NULL) },
		     409, "ConflictHttpException", "already in a completed state");
	ck_assert_int_eq(store_backup_mark_failed(e.st, B_S3B, time(NULL)), 0);
	expect_error((struct resp[]){ call(&e, "GET", "/api/remote/backups/" B_S3B "?size=5",
					   AUTH1, NULL) },
		     409, "ConflictHttpException", NULL);
	env_down(&e);
}
END_TEST

/* ---- backup reports ---- */

START_TEST(test_report)
{
	struct env e;
	env_up(&e);
	const char *p = "/api/remote/backups/" B_S3;
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "{\"successful\": tru") }, 400,
		     "BadRequestHttpException", "not valid JSON");
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "[true]") }, 400,
		     "BadRequestHttpException", "JSON object");
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "") }, 400,
		     "BadRequestHttpException", NULL);
	/* Validation: 422 with the field, as Laravel's validator answers. */
	struct resp r = call(&e, "POST", p, AUTH1, "{\"checksum\":\"" SHA1 "\"}");
	json_t *meta = json_object_get(json_array_get(json_object_get(r.json, "errors"), 0), "meta");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "source_field")), "successful");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "rule")), "required");
	expect_error(&r, 422, "ValidationException", "successful field is required");
	const char *invalid[][2] = {
		{ "{\"successful\":\"yes\"}", "true or false" },
		{ "{\"successful\":true,\"checksum_type\":\"sha1\",\"size\":5}", "checksum field" },
		{ "{\"successful\":true,\"checksum\":\"\",\"checksum_type\":\"sha1\",\"size\":5}",
		  "checksum field" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"size\":5}", "checksum type" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"sha1\"}",
		  "size field" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"sha1\","
		  "\"size\":-1}",
		  "whole number" },
		{ "{\"successful\":true,\"checksum\":\"abc\",\"checksum_type\":\"sha1\",\"size\":1}",
		  "hex digest" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"md5\","
		  "\"size\":1}",
		  "hex digest" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"sha1\","
		  "\"size\":1,\"parts\":{}}",
		  "array" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"sha1\","
		  "\"size\":1,\"parts\":[{\"part_number\":1}]}",
		  "parts.0.etag" },
		{ "{\"successful\":true,\"checksum\":\"" SHA1 "\",\"checksum_type\":\"sha1\","
		  "\"size\":1,\"parts\":[{\"etag\":\"x\",\"part_number\":0}]}",
		  "parts.0.part_number" },
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, invalid[i][0]) }, 422,
			     "ValidationException", invalid[i][1]);
	const char *ok_body = "{\"successful\":true,\"checksum\":\"" SHA1 "\","
			      "\"checksum_type\":\"sha1\",\"size\":1234,\"parts\":"
			      "[{\"etag\":\"\\\"fad65e\\\"\",\"part_number\":1}]}";
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_UNKNOWN, AUTH1,
					   ok_body) },
		     404, "NotFoundHttpException", NULL);
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_FOREIGN, AUTH1,
					   ok_body) },
		     403, "HttpForbiddenException", "permission to access that backup");
	/* Nothing of that changed the rows. */
	expect_sql(&e, "SELECT state FROM backups WHERE uuid = '" B_S3 "'", "running");
	expect_sql(&e, "SELECT state FROM backups WHERE uuid = '" B_FOREIGN "'", "running");

	/* No upload was opened here: the node wrote the object with its own credentials
	 * (Amber's direct mode). Its report is recorded; nothing is completed on the store
	 * (the reference panel answers 400 here, its nodes cannot upload alone). */
	const char *direct = "aaaaaaaa-0000-4000-8000-0000000000d1";
	add_backup(&e, direct, S1, "s3", 1);
	char pd[96];
	snprintf(pd, sizeof(pd), "/api/remote/backups/%s", direct);
	r = call(&e, "POST", pd, AUTH1, ok_body);
	ck_assert_msg(r.status == 204, "%ld %s", r.status, r.body);
	resp_free(&r);
	ck_assert_int_eq(e.fake_state.completes, 0);
	expect_sql(&e, "SELECT state FROM backups WHERE uuid = 'aaaaaaaa-0000-4000-8000-0000000000d1'",
		   "completed");
	ck_assert_int_eq(store_backup_set_upload_id(e.st, B_S3, "upload-77"), 0);

	/* Success: the upload is completed with the node's parts, then recorded. */
	r = call(&e, "POST", p, AUTH1, ok_body);
	ck_assert_msg(r.status == 204 && r.body[0] == 0, "%ld %s", r.status, r.body);
	resp_free(&r);
	ck_assert_int_eq(e.fake_state.completes, 1);
	ck_assert_str_eq(e.fake_state.last_upload, "upload-77");
	ck_assert_uint_eq(e.fake_state.last_n_parts, 1);
	ck_assert_str_eq(e.fake_state.last_etag, "\"fad65e\"");
	ck_assert_uint_eq(e.fake_state.last_number, 1);
	struct store_backup *b;
	ck_assert_int_eq(store_backup_get(e.st, B_S3, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_COMPLETED);
	ck_assert_int_eq(b->is_successful, 1);
	ck_assert_str_eq(b->checksum, SHA1);
	ck_assert_int_eq(b->bytes, 1234);
	ck_assert_ptr_nonnull(b->parts);
	ck_assert(b->completed_at > 0);
	store_backup_free(b);
	expect_sql(&e,
		   "SELECT state, is_successful, checksum, bytes, completed_at > 0 FROM backups "
		   "WHERE uuid = '" B_S3 "'",
		   "completed|1|" SHA1 "|1234|1");
	expect_sql(&e, "SELECT json_extract(parts, '$[0].etag') FROM backups WHERE uuid = '" B_S3
		       "'",
		   "\"fad65e\"");
	/* Twice: the panel refuses to change a completed backup. */
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, ok_body) }, 400,
		     "BadRequestHttpException", "already marked as completed");
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "{\"successful\":false}") }, 400,
		     "BadRequestHttpException", "already marked as completed");
	expect_sql(&e, "SELECT state, bytes FROM backups WHERE uuid = '" B_S3 "'", "completed|1234");

	/* Failure, sent as Wings and remote_client send it; a failed backup may be
	 * reported again, and then succeed (body wrapped in "data", as one seed shows). */
	const char *fail_body = "{\"successful\":false,\"checksum\":\"\",\"checksum_type\":\"\","
				"\"size\":0,\"parts\":null}";
	ck_assert_int_eq(store_backup_set_locked(e.st, B_WINGS, true), 0);
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_WINGS, AUTH1,
					    fail_body) },
		      204);
	ck_assert_int_eq(store_backup_get(e.st, B_WINGS, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_FAILED);
	ck_assert_int_eq(b->is_successful, 0);
	ck_assert_int_eq(b->bytes, 0);
	ck_assert(!b->is_locked);
	ck_assert_ptr_null(b->checksum);
	store_backup_free(b);
	expect_sql(&e,
		   "SELECT state, is_successful, ifnull(checksum, 'null'), bytes, is_locked "
		   "FROM backups WHERE uuid = '" B_WINGS "'",
		   "failed|0|null|0|0");
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_WINGS, AUTH1,
					    fail_body) },
		      204);
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_WINGS, AUTH1,
					    "{\"data\":{\"successful\":true,\"checksum\":\"" SHA1
					    "\",\"checksum_type\":\"sha1\",\"size\":7,"
					    "\"parts\":null}}") },
		      204);
	expect_sql(&e,
		   "SELECT state, checksum, bytes, ifnull(parts, 'null') FROM backups "
		   "WHERE uuid = '" B_WINGS "'",
		   "completed|" SHA1 "|7|null");
	/* A SHA-256 report lands in its own column, lower-cased. */
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_MEM, AUTH1,
					    "{\"successful\":1,\"checksum\":\"ABCDEF0123456789"
					    "abcdef0123456789abcdef0123456789abcdef0123456789\","
					    "\"checksum_type\":\"sha256\",\"size\":9}") },
		      204);
	expect_sql(&e,
		   "SELECT ifnull(checksum, 'null'), sha256 FROM backups WHERE uuid = '" B_MEM "'",
		   "null|abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	/* A failure report aborts the open upload before it is recorded. */
	ck_assert_int_eq(store_backup_set_upload_id(e.st, B_S3B, "upload-88"), 0);
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_S3B, AUTH1,
					    fail_body) },
		      204);
	ck_assert_int_eq(e.fake_state.aborts, 1);
	ck_assert_str_eq(e.fake_state.last_upload, "upload-88");
	expect_sql(&e, "SELECT state FROM backups WHERE uuid = '" B_S3B "'", "failed");
	/* The failure is recorded even when the store cannot abort the upload. */
	const char *noabort = "aaaaaaaa-0000-4000-8000-0000000000d2";
	add_backup(&e, noabort, S1, "s3", 1);
	ck_assert_int_eq(store_backup_set_upload_id(e.st, noabort, "upload-405"), 0);
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/"
					    "aaaaaaaa-0000-4000-8000-0000000000d2", AUTH1,
					    fail_body) },
		      204);
	ck_assert_int_eq(e.fake_state.aborts, 2);
	expect_sql(&e, "SELECT state FROM backups WHERE uuid = '" "aaaaaaaa-0000-4000-8000-0000000000d2" "'",
		   "failed");
	env_down(&e);
}
END_TEST

/* ---- restore reports, node reset ---- */

START_TEST(test_restore_report)
{
	struct env e;
	env_up(&e);
	ck_assert_int_eq(store_server_set_state(e.st, S1, "", "restoring_backup"), 0);
	ck_assert_int_eq(store_server_set_state(e.st, S2, "", "restoring_backup"), 0);
	const char *p = "/api/remote/backups/" B_WINGS "/restore";
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "{}") }, 422,
		     "ValidationException", "successful field is required");
	expect_error((struct resp[]){ call(&e, "POST", p, AUTH1, "{\"successful\":") }, 400,
		     "BadRequestHttpException", NULL);
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_UNKNOWN
							   "/restore",
					   AUTH1, "{\"successful\":true}") },
		     404, "NotFoundHttpException", NULL);
	expect_error((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_FOREIGN
							   "/restore",
					   AUTH1, "{\"successful\":true}") },
		     403, "HttpForbiddenException", NULL);
	expect_sql(&e, "SELECT state FROM servers WHERE uuid = '" S1 "'", "restoring_backup");
	/* Cleared whatever the outcome. */
	expect_status((struct resp[]){ call(&e, "POST", p, AUTH1, "{\"successful\":false}") }, 204);
	struct store_server *s;
	ck_assert_int_eq(store_server_get(e.st, S1, &s), 0);
	ck_assert_ptr_null(s->state);
	store_server_free(s);
	expect_sql(&e, "SELECT ifnull(state, 'null') FROM servers WHERE uuid = '" S1 "'", "null");
	expect_sql(&e, "SELECT state FROM servers WHERE uuid = '" S2 "'", "restoring_backup");
	/* The owner of S2 may. */
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_FOREIGN
							    "/restore",
					    AUTH2, "{\"successful\":true}") },
		      204);
	expect_sql(&e, "SELECT ifnull(state, 'null') FROM servers WHERE uuid = '" S2 "'", "null");

	/* A node that boots clears its own servers' state, no one else's. */
	ck_assert_int_eq(store_server_set_state(e.st, S1, NULL, "restoring_backup"), 0);
	ck_assert_int_eq(store_server_set_state(e.st, S2, NULL, "restoring_backup"), 0);
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/servers/reset", AUTH2, "") },
		      204);
	expect_sql(&e, "SELECT uuid, ifnull(state, 'null') FROM servers ORDER BY uuid",
		   S1 "|restoring_backup\n" S2 "|null");
	env_down(&e);
}
END_TEST

/* ---- the stuck sweep ---- */

START_TEST(test_sweep)
{
	struct env e;
	env_up(&e);
	int64_t now = (int64_t)time(NULL);
	/* Default: 6 h. Only B_STUCK (7 h old) goes. */
	ck_assert_int_eq(panel_service_sweep(e.svc, now), 1);
	expect_sql(&e, "SELECT uuid FROM backups WHERE state = 'failed'", B_STUCK);
	ck_assert_int_eq(panel_service_sweep(e.svc, now), 0);
	struct store_backup *b;
	ck_assert_int_eq(store_backup_get(e.st, B_STUCK, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_FAILED);
	ck_assert(b->completed_at >= now);
	store_backup_free(b);
	/* A failed backup may still report in (protocol §3.2). */
	expect_status((struct resp[]){ call(&e, "POST", "/api/remote/backups/" B_STUCK, AUTH1,
					    "{\"successful\":false}") },
		      204);
	/* A shorter configured limit. */
	struct panel_service *svc2;
	struct panel_service_config pc = { .store = e.st, .stuck_after_s = 60 };
	ck_assert_int_eq(panel_service_new(&pc, &svc2, NULL), 0);
	ck_assert_int_eq(panel_service_sweep(svc2, now + 61), 5); /* the 5 still running */
	panel_service_free(svc2);
	expect_sql(&e, "SELECT count(*) FROM backups WHERE state = 'running'", "0");
	env_down(&e);
}
END_TEST

/* ---- as a node sends it: Python requests ---- */

START_TEST(test_python_node)
{
	struct env e;
	env_up(&e);
	char *py = NULL;
	ck_assert_int_ge(asprintf(&py, "%s/node.py", e.dir), 0);
	const char *script =
		"import json, sys, requests\n"
		"base = 'http://127.0.0.1:%s/api/remote' % sys.argv[1]\n"
		"h = {'Authorization': 'Bearer node1id.secret-one', 'Accept':\n"
		"     'application/vnd.pterodactyl.v1+json', 'Content-Type': 'application/json',\n"
		"     'User-Agent': 'Pterodactyl Wings/v1.11.11 (id:node1id)'}\n"
		"u = '" B_S3 "'\n"
		"r = requests.get(base + '/backups/' + u, params={'size': 350}, headers=h)\n"
		"assert r.status_code == 200, r.text\n"
		"d = r.json()\n"
		"assert d['part_size'] == 100 and len(d['parts']) == 4, d\n"
		"assert d['parts'][3].endswith('partNumber=4&ttl=600'), d\n"
		"parts = [{'etag': '\"e%d\"' % (i + 1), 'part_number': i + 1} for i in range(4)]\n"
		"body = {'checksum': '" SHA1 "', 'checksum_type': 'sha1', 'size': 350,\n"
		"        'successful': True, 'parts': parts}\n"
		"r = requests.post(base + '/backups/' + u, json=body, headers=h)\n"
		"assert r.status_code == 204 and r.content == b'', (r.status_code, r.text)\n"
		"r = requests.post(base + '/backups/' + u, json=body, headers=h)\n"
		"assert r.status_code == 400, r.text\n"
		"e = r.json()['errors'][0]\n"
		"assert e['code'] == 'BadRequestHttpException' and e['status'] == '400', e\n"
		"r = requests.post(base + '/backups/' + u + '/restore', json={'successful': True},\n"
		"                  headers=h)\n"
		"assert r.status_code == 204, r.text\n"
		"r = requests.get(base + '/backups/' + u, params={'size': 1},\n"
		"                 headers=dict(h, Authorization='Bearer node1id.nope'))\n"
		"assert r.status_code == 403 and r.json()['errors'][0]['status'] == '403', r.text\n"
		"print('ok')\n";
	tu_write_file(py, script, strlen(script), 0600);
	ck_assert_int_eq(store_server_set_state(e.st, S1, NULL, "restoring_backup"), 0);
	int st;
	char *out = tu_sh_out(&st, "/usr/bin/python3 '%s' %u 2>&1", py, e.port);
	ck_assert_msg(st == 0, "python: %s", out);
	free(out);
	expect_sql(&e, "SELECT state, bytes, json_array_length(parts) FROM backups WHERE uuid = '"
		       B_S3 "'",
		   "completed|350|4");
	expect_sql(&e, "SELECT ifnull(state, 'null') FROM servers WHERE uuid = '" S1 "'", "null");
	free(py);
	env_down(&e);
}
END_TEST

START_TEST(test_new_needs_store)
{
	struct panel_service *svc = (void *)1;
	char *err = NULL;
	struct panel_service_config pc = { 0 };
	ck_assert_int_eq(panel_service_new(&pc, &svc, &err), -EINVAL);
	ck_assert_ptr_null(svc);
	ck_assert_ptr_nonnull(err);
	free(err);
}
END_TEST


/* ---- the admin CLI ---- */

typedef int (*admin_fn)(int argc, char **argv, const char *database, bool json);

/* Runs fn on a NULL-terminated argument list with stdout captured; *ret_out gets what
 * it printed (caller frees). */
/* `amber server add` with a [panel] backup_limit of 0 (servers added without
 * --backup-limit allow no backups). */
static int server_main(int argc, char **argv, const char *database, bool json)
{
	return cli_server_main(argc, argv, database, 0, json);
}

static int run_admin(admin_fn fn, const char *db, char **ret_out, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, ret_out);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 31;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	char path[] = "/tmp/amber-admin-out-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stdout);
	int saved = dup(1);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, 1), 0);
	int rc = fn(argc, argv, db, false);
	fflush(stdout);
	ck_assert_int_ge(dup2(saved, 1), 0);
	close(saved);
	close(fd);
	size_t len;
	*ret_out = tu_read_file(path, &len);
	ck_assert_ptr_nonnull(*ret_out);
	unlink(path);
	return rc;
}

START_TEST(test_admin_cli)
{
	char *dir = tu_mkdtemp("admin"), *db = NULL, *tokfile = NULL, *out = NULL;
	ck_assert_int_ge(asprintf(&db, "sqlite:%s/amber.db", dir), 0);
	ck_assert_int_ge(asprintf(&tokfile, "%s/token", dir), 0);
	tu_write_file(tokfile, "Sup3rSecretTok\n", 15, 0600);

	/* node add / list */
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "add", "--name", "n1", "--url",
				   "https://n1.example:8080", "--token-id", "tokid1",
				   "--token-file", tokfile, "--json", NULL),
			 0);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(j != NULL, "%s", out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "n1");
	ck_assert_str_eq(json_string_value(json_object_get(j, "token_id")), "tokid1");
	ck_assert(!strstr(out, "Sup3rSecretTok"));
	json_decref(j);
	free(out);
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "add", "--name", "n2", "--url",
				   "http://n2", "--token-id", "tokid2", "--token", "other", NULL),
			 0);
	ck_assert(strstr(out, "node n2 added") && !strstr(out, "other"));
	free(out);
	const char *bad[][12] = {
		{ "add", "--name", "n3", "--url", "http://x", "--token-id", "t3", NULL },
		{ "add", "--name", "n3", "--url", "http://x", "--token-id", "t3", "--token", "a",
		  "--token-file", "/dev/null", NULL },
		{ "add", "--name", "n3", "--url", "ftp://x", "--token-id", "t3", "--token", "a",
		  NULL },
		{ "add", "--name", "n3", "--url", "http://x", "--token-id", "t3", "--token", "a.b",
		  NULL },
		{ "add", "--name", "n3", "--url", "http://x", "--token-id", "t.3", "--token", "a",
		  NULL },
		{ "add", "--name", "n3", "--url", "http://x", "--token-id", "t3", "--token-file",
		  "/nonexistent/token", NULL },
		{ "add", "--bogus", NULL },
		{ "frob", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const *b = bad[i];
		ck_assert_msg(run_admin(cli_node_main, db, &out, b[0], b[1], b[2], b[3], b[4], b[5],
					b[6], b[7], b[8], b[9], b[10], b[11]) == 2,
			      "case %zu", i);
		free(out);
	}
	/* Duplicate name, duplicate token id: failure. */
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "add", "--name", "n1", "--url",
				   "http://x", "--token-id", "tokid9", "--token", "z", NULL),
			 1);
	free(out);
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "add", "--name", "n9", "--url",
				   "http://x", "--token-id", "tokid1", "--token", "z", NULL),
			 1);
	free(out);
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "list", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	ck_assert_int_eq(json_array_size(j), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 1), "url")),
			 "http://n2");
	ck_assert_ptr_null(json_object_get(json_array_get(j, 0), "token"));
	json_decref(j);
	free(out);
	ck_assert_int_eq(run_admin(cli_node_main, db, &out, "list", NULL), 0);
	ck_assert(strstr(out, "tokid1") && strstr(out, "https://n1.example:8080"));
	ck_assert(!strstr(out, "Sup3rSecretTok"));
	free(out);
	/* What was stored is the token's SHA-256 and nothing else: the file's token works
	 * for the remote API, and its plaintext is nowhere in the database. (The store is
	 * opened only while the CLI functions are not running: a second store_open in a
	 * process drops the first connection's POSIX locks, see the report.) */
	struct store *st;
	ck_assert_int_eq(store_open(db, &st), 0);
	int64_t nid = 0;
	ck_assert_int_eq(store_node_check_token(st, "tokid1", "Sup3rSecretTok", &nid), 0);
	ck_assert_int_eq(store_node_check_token(st, "tokid1", "Sup3rSecretTok\n", NULL), -EACCES);
	store_close(st);
	int status;
	char *h1 = tu_sh_out(&status, "sqlite3 '%s/amber.db' \"SELECT lower(hex(token_hash)) "
				      "FROM nodes WHERE token_id = 'tokid1'\"", dir);
	char *h2 = tu_sh_out(&status, "printf %%s Sup3rSecretTok | sha256sum | cut -c1-64");
	ck_assert_str_eq(h1, h2);
	free(h1);
	free(h2);
	/* kept for calling the node, in a database only its owner can read */
	ck_assert_int_eq(tu_sh("test \"$(stat -c %%a '%s/amber.db')\" = 600", dir), 0);

	/* server add / list */
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", S1, "--node", "n1",
				   "--backup-limit", "3", "--json", NULL),
			 0);
	j = json_loads(out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "short_id")), "11111111");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "backup_limit")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(j, "node")), "n1");
	json_decref(j);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", S2, "--node", "n2",
				   NULL),
			 0);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", B_UNKNOWN,
				   "--node", "nope", NULL),
			 3);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", "not-a-uuid",
				   "--node", "n1", NULL),
			 2);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", S1, "--node", "n2",
				   NULL),
			 1);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "add", "--uuid", B_UNKNOWN,
				   "--node", "n1", "--backup-limit", "-1", NULL),
			 2);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "list", "--node", "n2", "--json",
				   NULL),
			 0);
	j = json_loads(out, 0, NULL);
	ck_assert_int_eq(json_array_size(j), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "uuid")), S2);
	json_decref(j);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "list", "--node", "nope", NULL), 3);
	free(out);
	ck_assert_int_eq(run_admin(server_main, db, &out, "list", NULL), 0);
	ck_assert(strstr(out, S1) && strstr(out, S2) && strstr(out, " n1 "));
	free(out);
	expect_reader_line(dir, "SELECT uuid, node_id, backup_limit FROM servers ORDER BY uuid",
			   S1 "|1|3\n" S2 "|2|0");

	/* backups list */
	ck_assert_int_eq(run_admin(cli_backups_main, db, &out, "list", "--json", NULL), 0);
	ck_assert_str_eq(out, "[]\n");
	free(out);
	ck_assert_int_eq(store_open(db, &st), 0);
	struct store_backup b = { .uuid = B_S3, .server_uuid = S1, .name = "nightly",
				  .adapter = "s3", .created_at = 1700000000 };
	ck_assert_int_eq(store_backup_create(st, &b), 0);
	b.uuid = B_FOREIGN;
	b.server_uuid = S2;
	ck_assert_int_eq(store_backup_create(st, &b), 0);
	ck_assert_int_eq(store_backup_mark_completed(st, B_FOREIGN, true, SHA1, NULL, 42, NULL, NULL,
						     1700000100),
			 0);
	store_close(st);
	ck_assert_int_eq(run_admin(cli_backups_main, db, &out, "list", "--server", "11111111",
				   "--json", NULL),
			 0);
	j = json_loads(out, 0, NULL);
	ck_assert_int_eq(json_array_size(j), 1);
	json_t *b0 = json_array_get(j, 0);
	ck_assert_str_eq(json_string_value(json_object_get(b0, "uuid")), B_S3);
	ck_assert_str_eq(json_string_value(json_object_get(b0, "state")), "running");
	ck_assert(json_is_null(json_object_get(b0, "is_successful")));
	ck_assert(json_is_null(json_object_get(b0, "completed_at")));
	ck_assert_str_eq(json_string_value(json_object_get(b0, "created_at")),
			 "2023-11-14T22:13:20+00:00");
	json_decref(j);
	free(out);
	ck_assert_int_eq(run_admin(cli_backups_main, db, &out, "list", NULL), 0);
	ck_assert(strstr(out, B_S3) && strstr(out, B_FOREIGN) && strstr(out, "completed"));
	free(out);
	ck_assert_int_eq(run_admin(cli_backups_main, db, &out, "list", "--server", B_UNKNOWN,
				   NULL),
			 3);
	free(out);
	ck_assert_int_eq(run_admin(cli_backups_main, db, &out, "list", "--frob", NULL), 2);
	free(out);
	ck_assert_int_eq(run_admin(cli_backups_main, NULL, &out, "list", NULL), 2);
	free(out);
	tu_rmrf(dir);
	free(dir);
	free(db);
	free(tokfile);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("panel_service");
	TCase *tc = tcase_create("remote_api");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_upload_urls);
	tcase_add_test(tc, test_report);
	tcase_add_test(tc, test_restore_report);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_python_node);
	tcase_add_test(tc, test_new_needs_store);
	suite_add_tcase(s, tc);
	TCase *tc2 = tcase_create("admin_cli");
	tcase_set_timeout(tc2, 60);
	tcase_add_test(tc2, test_admin_cli);
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
