/* The panel's SQLite store, on real database files in scratch directories. What the store
 * wrote is also read back by an independent reader: the sqlite3 CLI, or Python's sqlite3
 * module where the CLI is missing. */
#include "store.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ---- */

static char *db_in(const char *dir)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/amber.db", dir), 0);
	return p;
}

/* s with every ' turned into '\'' and the whole in single quotes, for sh -c. */
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

/* Runs sql against the database file with the independent reader; returns its output
 * with rows on lines and columns joined by '|', trailing newline removed. */
static char *reader(const char *db, const char *sql)
{
	char *qdb = shq(db), *qsql = shq(sql);
	int status = -1;
	char *out = tu_sh_out(
		&status,
		"if command -v sqlite3 >/dev/null 2>&1; then sqlite3 -batch -noheader %s %s; "
		"else python3 -c 'import sqlite3, sys\n"
		"c = sqlite3.connect(sys.argv[1])\n"
		"for r in c.execute(sys.argv[2]): print(\"|\".join(map(str, r)))' %s %s; fi",
		qdb, qsql, qdb, qsql);
	free(qdb);
	free(qsql);
	ck_assert_msg(status == 0, "reader failed on %s: %s", db, sql);
	ck_assert(out != NULL);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = 0;
	return out;
}

static void expect_reader(const char *db, const char *sql, const char *want)
{
	char *got = reader(db, sql);
	ck_assert_msg(strcmp(got, want) == 0, "%s: got [%s], want [%s]", sql, got, want);
	free(got);
}

static void uuid_of(unsigned a, unsigned b, char out[STORE_UUID_LEN + 1])
{
	snprintf(out, STORE_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", a, b);
}

static struct store *open_ok(const char *path)
{
	struct store *st = NULL;
	int r = store_open(path, &st);
	ck_assert_msg(r == 0, "store_open(%s) = %d", path, r);
	ck_assert(st != NULL);
	return st;
}

/* A node, and a server on it with the given limit. Returns the node id. */
static int64_t add_node_server(struct store *st, const char *server_uuid, int64_t limit)
{
	int64_t id = 0;
	ck_assert_int_eq(store_node_add(st, "node1", "http://127.0.0.1:8080", "tokid1",
					"secret-token-1", &id),
			 0);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(store_server_add(st, server_uuid, id, limit), 0);
	return id;
}

static void add_backup(struct store *st, const char *uuid, const char *server, int64_t created)
{
	struct store_backup b = {
		.uuid = (char *)uuid,
		.server_uuid = (char *)server,
		.name = "nightly",
		.adapter = "wings",
		.ignored = "*.log\ncache/",
		.created_at = created,
	};
	ck_assert_int_eq(store_backup_create(st, &b), 0);
}

#define SRV "0a1b2c3d-1111-4222-8333-444455556666"

/* ---- open and migrations ---- */

START_TEST(test_migrate_from_empty)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir), *spec = NULL;
	ck_assert_int_ge(asprintf(&spec, "sqlite:%s", db), 0);
	struct store *st = open_ok(spec);
	ck_assert_int_ge(store_schema_version(), 2);
	store_close(st);

	char want[16];
	snprintf(want, sizeof(want), "%d", store_schema_version());
	expect_reader(db, "PRAGMA user_version", want);
	expect_reader(db, "PRAGMA journal_mode", "wal");
	expect_reader(db, "PRAGMA integrity_check", "ok");
	expect_reader(db,
		      "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
		      "WHERE type = 'table' ORDER BY name)",
		      "api_key_servers,api_keys,backup_creations,backups,download_uses,nodes,servers");
	/* the foreign keys the store relies on are declared */
	expect_reader(db, "SELECT \"table\" FROM pragma_foreign_key_list('backups')", "servers");
	expect_reader(db, "SELECT \"table\" FROM pragma_foreign_key_list('servers')", "nodes");

	struct stat sb;
	ck_assert_int_eq(stat(db, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);

	/* an unusable path */
	struct store *bad = NULL;
	ck_assert_int_eq(store_open("sqlite:/nonexistent-dir-amber/x.db", &bad), -ENOENT);
	ck_assert(bad == NULL);
	ck_assert_int_eq(store_open("sqlite:", &bad), -EINVAL);

	free(spec);
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_reopen_keeps_data)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	add_node_server(st, SRV, 3);
	char u[STORE_UUID_LEN + 1];
	uuid_of(1, 1, u);
	add_backup(st, u, SRV, 1000);
	store_close(st);

	/* "sqlite:///abs" names the same file as the bare path */
	char *spec = NULL;
	ck_assert_int_ge(asprintf(&spec, "sqlite://%s", db), 0);
	st = open_ok(spec);
	struct store_backup *b = NULL;
	ck_assert_int_eq(store_backup_get(st, u, &b), 0);
	ck_assert_str_eq(b->name, "nightly");
	ck_assert_str_eq(b->server_uuid, SRV);
	store_backup_free(b);
	struct store_node *n = NULL;
	ck_assert_int_eq(store_node_get_by_token_id(st, "tokid1", &n), 0);
	ck_assert_str_eq(n->name, "node1");
	store_node_free(n);
	store_close(st);

	/* a third open of an up-to-date database changes nothing */
	st = open_ok(db);
	store_close(st);
	char want[16];
	snprintf(want, sizeof(want), "%d", store_schema_version());
	expect_reader(db, "PRAGMA user_version", want);
	expect_reader(db, "SELECT count(*) FROM backups", "1");

	free(spec);
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_newer_version_refused)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	free(reader(db, "PRAGMA user_version = 99"));
	struct store *st = NULL;
	ck_assert_int_eq(store_open(db, &st), -EPROTO);
	ck_assert(st == NULL);
	/* left as it was: not migrated, not switched to WAL */
	expect_reader(db, "PRAGMA user_version", "99");
	expect_reader(db, "PRAGMA journal_mode", "delete");
	expect_reader(db, "SELECT count(*) FROM sqlite_master", "0");
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A migration that fails half-way leaves nothing behind: it runs in one transaction. */
START_TEST(test_failed_migration_rolls_back)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	/* version 0, but a foreign table where the migration's third table goes */
	free(reader(db, "CREATE TABLE backups (x)"));
	struct store *st = NULL;
	ck_assert_int_eq(store_open(db, &st), -EIO);
	ck_assert(st == NULL);
	expect_reader(db, "PRAGMA user_version", "0");
	expect_reader(db, "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table'",
		      "backups");
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_memory)
{
	struct store *st = open_ok(":memory:");
	add_node_server(st, SRV, 1);
	ck_assert_int_eq(store_download_use_once(st, "jti", 5), 0);
	ck_assert_int_eq(store_download_use_once(st, "jti", 6), -EEXIST);
	store_close(st);
	st = open_ok("sqlite::memory:");
	ck_assert_int_eq(store_download_use_once(st, "jti", 5), 0); /* a fresh database */
	store_close(st);
	store_close(NULL);
}
END_TEST

/* ---- nodes ---- */

START_TEST(test_nodes)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	int64_t a = 0, b = 0, id = 0;
	ck_assert_int_eq(store_node_add(st, "alpha", "https://a.example:8080", "idA", "tokA", &a),
			 0);
	ck_assert_int_eq(store_node_add(st, "beta", "https://b.example:8080", "idB", "tokB", &b),
			 0);
	ck_assert_int_ne(a, b);
	ck_assert_int_eq(store_node_add(st, "alpha", "u", "idC", "tokC", NULL), -EEXIST);
	ck_assert_int_eq(store_node_add(st, "gamma", "u", "idA", "tokC", NULL), -EEXIST);
	ck_assert_int_eq(store_node_add(st, "gamma", "u", "id.C", "tokC", NULL), -EINVAL);
	ck_assert_int_eq(store_node_add(st, "gamma", "u", "idC", "", NULL), -EINVAL);
	ck_assert_int_eq(store_node_add(st, "", "u", "idC", "tokC", NULL), -EINVAL);

	struct store_node *n = NULL;
	ck_assert_int_eq(store_node_get_by_token_id(st, "idB", &n), 0);
	ck_assert_int_eq(n->id, b);
	ck_assert_str_eq(n->name, "beta");
	ck_assert_str_eq(n->url, "https://b.example:8080");
	ck_assert_str_eq(n->token_id, "idB");
	store_node_free(n);
	n = NULL;
	ck_assert_int_eq(store_node_get_by_token_id(st, "nope", &n), -ENOENT);
	ck_assert(n == NULL);

	struct store_node *v = NULL;
	size_t cnt = 0;
	ck_assert_int_eq(store_node_list(st, &v, &cnt), 0);
	ck_assert_uint_eq(cnt, 2);
	ck_assert_str_eq(v[0].name, "alpha");
	ck_assert_str_eq(v[1].name, "beta");
	store_node_list_free(v, cnt);

	/* token check: right, wrong, other node's, unknown id, prefix, empty */
	ck_assert_int_eq(store_node_check_token(st, "idA", "tokA", &id), 0);
	ck_assert_int_eq(id, a);
	ck_assert_int_eq(store_node_check_token(st, "idB", "tokB", NULL), 0);
	id = -7;
	ck_assert_int_eq(store_node_check_token(st, "idA", "tokB", &id), -EACCES);
	ck_assert_int_eq(id, -7);
	ck_assert_int_eq(store_node_check_token(st, "idA", "tokA ", NULL), -EACCES);
	ck_assert_int_eq(store_node_check_token(st, "idA", "tok", NULL), -EACCES);
	ck_assert_int_eq(store_node_check_token(st, "idA", "", NULL), -EACCES);
	ck_assert_int_eq(store_node_check_token(st, "idZ", "tokA", NULL), -EACCES);
	ck_assert_int_eq(store_node_check_token(st, "", "", NULL), -EACCES);
	ck_assert_int_eq(store_node_check_token(st, NULL, "tokA", NULL), -EACCES);
	store_close(st);

	/* the remote API checks the SHA-256 (compare with sha256sum); the token itself is
	 * kept for the panel to call the node with, in a file only the owner reads */
	int status = -1;
	char *hex = tu_sh_out(&status, "printf %%s tokA | sha256sum | cut -c1-64");
	ck_assert_int_eq(status, 0);
	hex[64] = 0;
	for (char *c = hex; *c; c++)
		*c = (char)(*c >= 'a' ? *c - 32 : *c);
	expect_reader(db, "SELECT hex(token_hash) FROM nodes WHERE token_id = 'idA'", hex);
	free(hex);
	expect_reader(db, "SELECT token FROM nodes WHERE token_id = 'idA'", "tokA");
	struct stat sb;
	ck_assert_int_eq(stat(db, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0077, 0);

	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- servers ---- */

START_TEST(test_servers)
{
	struct store *st = open_ok(":memory:");
	int64_t node = add_node_server(st, SRV, 5), other = 0;
	ck_assert_int_eq(store_node_add(st, "n2", "u", "tokid2", "t2", &other), 0);

	ck_assert_int_eq(store_server_add(st, SRV, node, 1), -EEXIST);
	/* same first 8 hex digits: the short id is taken */
	ck_assert_int_eq(store_server_add(st, "0A1B2C3D-9999-4222-8333-444455556666", node, 1),
			 -EEXIST);
	ck_assert_int_eq(store_server_add(st, "ffffffff-1111-4222-8333-444455556666", 999, 1),
			 -ENOENT);
	ck_assert_int_eq(store_server_add(st, "not-a-uuid", node, 1), -EINVAL);
	ck_assert_int_eq(store_server_add(st, "0a1b2c3d_1111-4222-8333-444455556666", node, 1),
			 -EINVAL);
	ck_assert_int_eq(store_server_add(st, "0a1b2c3g-1111-4222-8333-444455556666", node, 1),
			 -EINVAL);
	/* stored lower-case */
	ck_assert_int_eq(store_server_add(st, "ABCDEF01-1111-4222-8333-444455556666", other, 0),
			 0);

	struct store_server *s = NULL;
	ck_assert_int_eq(store_server_get(st, SRV, &s), 0);
	ck_assert_str_eq(s->uuid, SRV);
	ck_assert_str_eq(s->short_id, "0a1b2c3d");
	ck_assert_int_eq(s->node_id, node);
	ck_assert_int_eq(s->backup_limit, 5);
	ck_assert(s->state == NULL);
	store_server_free(s);
	ck_assert_int_eq(store_server_get(st, "0a1b2c3d", &s), 0);
	ck_assert_str_eq(s->uuid, SRV);
	store_server_free(s);
	ck_assert_int_eq(store_server_get(st, "ABCDEF01", &s), 0);
	ck_assert_str_eq(s->uuid, "abcdef01-1111-4222-8333-444455556666");
	ck_assert_int_eq(s->node_id, other);
	store_server_free(s);
	s = NULL;
	ck_assert_int_eq(store_server_get(st, "0a1b2c3e", &s), -ENOENT);
	ck_assert_int_eq(store_server_get(st, "0a1b2c3", &s), -ENOENT);
	ck_assert_int_eq(store_server_get(st, "0a1b2c3d-1111-4222-8333-444455556667", &s), -ENOENT);
	ck_assert_int_eq(store_server_get(st, "' OR 1=1 --", &s), -ENOENT);
	ck_assert(s == NULL);

	struct store_server *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_server_list(st, 0, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].uuid, SRV);
	ck_assert_str_eq(v[1].short_id, "abcdef01");
	store_server_list_free(v, n);
	ck_assert_int_eq(store_server_list(st, other, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].short_id, "abcdef01");
	store_server_list_free(v, n);
	ck_assert_int_eq(store_server_list(st, 12345, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_server_list_free(v, n);

	/* state: unconditional, then compare-and-set */
	ck_assert_int_eq(store_server_set_state(st, SRV, NULL, "installing"), 0);
	ck_assert_int_eq(store_server_set_state(st, SRV, "", "restoring_backup"), -EEXIST);
	ck_assert_int_eq(store_server_set_state(st, SRV, NULL, NULL), 0);
	ck_assert_int_eq(store_server_set_state(st, SRV, "", "restoring_backup"), 0);
	ck_assert_int_eq(store_server_set_state(st, SRV, "", "restoring_backup"), -EEXIST);
	ck_assert_int_eq(store_server_get(st, SRV, &s), 0);
	ck_assert_str_eq(s->state, "restoring_backup");
	store_server_free(s);
	ck_assert_int_eq(store_server_set_state(st, SRV, "restoring_backup", NULL), 0);
	ck_assert_int_eq(store_server_set_state(st, "ffffffff-1111-4222-8333-444455556666", NULL,
						"x"),
			 -ENOENT);
	ck_assert_int_eq(store_server_set_state(st, "ffffffff-1111-4222-8333-444455556666", "",
						"x"),
			 -ENOENT);
	ck_assert_int_eq(store_server_set_state(st, "junk", NULL, "x"), -ENOENT);

	/* a node's reboot clears its jobs, not other states nor other nodes */
	ck_assert_int_eq(store_server_set_state(st, SRV, NULL, "restoring_backup"), 0);
	ck_assert_int_eq(store_server_set_state(st, "abcdef01-1111-4222-8333-444455556666", NULL,
						"restoring_backup"),
			 0);
	ck_assert_int_eq(store_servers_reset_state(st, node), 1);
	ck_assert_int_eq(store_servers_reset_state(st, node), 0);
	ck_assert_int_eq(store_server_get(st, "abcdef01", &s), 0);
	ck_assert_str_eq(s->state, "restoring_backup");
	store_server_free(s);
	ck_assert_int_eq(store_server_set_state(st, SRV, NULL, "suspended"), 0);
	ck_assert_int_eq(store_servers_reset_state(st, node), 0);
	store_close(st);
}
END_TEST

/* ---- backups ---- */

START_TEST(test_backups)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	add_node_server(st, SRV, 2);
	char u1[STORE_UUID_LEN + 1], u2[STORE_UUID_LEN + 1], nx[STORE_UUID_LEN + 1];
	uuid_of(1, 1, u1);
	uuid_of(2, 2, u2);
	uuid_of(9, 9, nx);

	add_backup(st, u1, SRV, 1000);
	struct store_backup dup = { .uuid = u1, .server_uuid = SRV, .name = "other",
				    .adapter = "s3", .created_at = 1 };
	ck_assert_int_eq(store_backup_create(st, &dup), -EEXIST);
	dup.uuid = u2;
	dup.server_uuid = "ffffffff-1111-4222-8333-444455556666";
	ck_assert_int_eq(store_backup_create(st, &dup), -ENOENT);
	dup.server_uuid = SRV;
	dup.uuid = "nope";
	ck_assert_int_eq(store_backup_create(st, &dup), -EINVAL);
	/* NULL ignored is stored as "" and returned so; is_locked on create */
	dup.uuid = u2;
	dup.ignored = NULL;
	dup.is_locked = true;
	ck_assert_int_eq(store_backup_create(st, &dup), 0);

	struct store_backup *b = NULL;
	ck_assert_int_eq(store_backup_get(st, u1, &b), 0);
	ck_assert_str_eq(b->uuid, u1);
	ck_assert_str_eq(b->server_uuid, SRV);
	ck_assert_str_eq(b->name, "nightly");
	ck_assert_str_eq(b->adapter, "wings");
	ck_assert_str_eq(b->ignored, "*.log\ncache/");
	ck_assert(!b->is_locked);
	ck_assert_int_eq(b->state, STORE_BACKUP_RUNNING);
	ck_assert_int_eq(b->is_successful, -1);
	ck_assert(b->checksum == NULL && b->sha256 == NULL && b->upload_id == NULL &&
		  b->parts == NULL);
	ck_assert_int_eq(b->bytes, 0);
	ck_assert_int_eq(b->created_at, 1000);
	ck_assert_int_eq(b->completed_at, 0);
	store_backup_free(b);
	ck_assert_int_eq(store_backup_get(st, u2, &b), 0);
	ck_assert_str_eq(b->ignored, "");
	ck_assert(b->is_locked);
	ck_assert_str_eq(b->adapter, "s3");
	store_backup_free(b);
	b = NULL;
	ck_assert_int_eq(store_backup_get(st, nx, &b), -ENOENT);
	ck_assert_int_eq(store_backup_get(st, "x", &b), -ENOENT);
	ck_assert(b == NULL);

	int64_t c = -1;
	ck_assert_int_eq(store_backup_count_for_server(st, SRV, &c), 0);
	ck_assert_int_eq(c, 2);
	ck_assert_int_eq(store_backup_count_for_server(st, "ffffffff-1111-4222-8333-444455556666",
						       &c),
			 -ENOENT);

	/* lock */
	bool locked = true;
	ck_assert_int_eq(store_backup_set_locked(st, u1, true), 0);
	ck_assert_int_eq(store_backup_toggle_locked(st, u1, &locked), 0);
	ck_assert(!locked);
	ck_assert_int_eq(store_backup_toggle_locked(st, u1, &locked), 0);
	ck_assert(locked);
	ck_assert_int_eq(store_backup_set_locked(st, nx, true), -ENOENT);
	ck_assert_int_eq(store_backup_toggle_locked(st, nx, NULL), -ENOENT);

	/* upload id while running */
	ck_assert_int_eq(store_backup_set_upload_id(st, u1, "upl-123"), 0);
	ck_assert_int_eq(store_backup_set_upload_id(st, nx, "upl-123"), -ENOENT);

	/* completion, then a second report refused */
	const char *sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
	const char *sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	const char *parts = "[{\"etag\":\"\\\"abc\\\"\",\"part_number\":1}]";
	ck_assert_int_eq(store_backup_mark_completed(st, u1, true, sha1, sha256, 4096, "{\"a\":1}", NULL,
						     2000),
			 -EINVAL);
	ck_assert_int_eq(store_backup_mark_completed(st, u1, true, sha1, sha256, 4096, "[1,", NULL, 2000),
			 -EINVAL);
	ck_assert_int_eq(store_backup_mark_completed(st, u1, true, sha1, sha256, -1, NULL, NULL, 2000),
			 -EINVAL);
	ck_assert_int_eq(store_backup_get(st, u1, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_RUNNING); /* the refusals changed nothing */
	store_backup_free(b);
	ck_assert_int_eq(store_backup_mark_completed(st, u1, true, sha1, sha256, 4096, parts, NULL, 2000),
			 0);
	ck_assert_int_eq(store_backup_mark_completed(st, u1, true, sha1, sha256, 1, NULL, NULL, 2001),
			 -EALREADY);
	ck_assert_int_eq(store_backup_mark_completed(st, u1, false, NULL, NULL, 0, NULL, NULL, 2001),
			 -EALREADY);
	ck_assert_int_eq(store_backup_mark_failed(st, u1, 2002), -EALREADY);
	ck_assert_int_eq(store_backup_set_upload_id(st, u1, "late"), -EALREADY);
	ck_assert_int_eq(store_backup_mark_completed(st, nx, true, sha1, sha256, 1, NULL, NULL, 1),
			 -ENOENT);
	ck_assert_int_eq(store_backup_mark_failed(st, nx, 1), -ENOENT);
	ck_assert_int_eq(store_backup_get(st, u1, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_COMPLETED);
	ck_assert_int_eq(b->is_successful, 1);
	ck_assert(b->is_locked); /* success keeps the lock */
	ck_assert_str_eq(b->checksum, sha1);
	ck_assert_str_eq(b->sha256, sha256);
	ck_assert_str_eq(b->parts, parts);
	ck_assert_str_eq(b->upload_id, "upl-123");
	ck_assert_int_eq(b->bytes, 4096);
	ck_assert_int_eq(b->completed_at, 2000);
	store_backup_free(b);

	/* failure: unlocked, no checksums, 0 bytes; may be reported again, even as success */
	ck_assert_int_eq(store_backup_mark_completed(st, u2, false, sha1, sha256, 77, parts, NULL, 3000),
			 0);
	ck_assert_int_eq(store_backup_get(st, u2, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_FAILED);
	ck_assert_int_eq(b->is_successful, 0);
	ck_assert(!b->is_locked);
	ck_assert(b->checksum == NULL && b->sha256 == NULL && b->parts == NULL);
	ck_assert_int_eq(b->bytes, 0);
	ck_assert_int_eq(b->completed_at, 3000);
	store_backup_free(b);
	/* failed ones do not count against the limit, but are in the total */
	ck_assert_int_eq(store_backup_count_for_server(st, SRV, &c), 0);
	ck_assert_int_eq(c, 1);
	ck_assert_int_eq(store_backup_total_for_server(st, SRV, &c), 0);
	ck_assert_int_eq(c, 2);
	ck_assert_int_eq(store_backup_mark_failed(st, u2, 3100), 0);
	ck_assert_int_eq(store_backup_mark_completed(st, u2, true, "", NULL, 10, NULL, NULL, 3200), 0);
	ck_assert_int_eq(store_backup_get(st, u2, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_COMPLETED);
	ck_assert(b->checksum == NULL); /* "" is treated as null, as the panel does */
	ck_assert_int_eq(b->completed_at, 3200);
	store_backup_free(b);

	/* delete: a locked successful backup is kept when the lock is respected */
	ck_assert_int_eq(store_backup_delete(st, u1, true), -EPERM);
	ck_assert_int_eq(store_backup_set_locked(st, u1, false), 0);
	ck_assert_int_eq(store_backup_delete(st, u1, true), 0);
	ck_assert_int_eq(store_backup_delete(st, u1, true), -ENOENT);
	ck_assert_int_eq(store_backup_get(st, u1, &b), -ENOENT);
	ck_assert_int_eq(store_backup_set_locked(st, u2, true), 0);
	ck_assert_int_eq(store_backup_delete(st, u2, false), 0);
	ck_assert_int_eq(store_backup_delete(st, "junk", false), -ENOENT);
	/* a locked one that is running or failed may go */
	char u3[STORE_UUID_LEN + 1];
	uuid_of(3, 3, u3);
	add_backup(st, u3, SRV, 5000);
	ck_assert_int_eq(store_backup_set_locked(st, u3, true), 0);
	ck_assert_int_eq(store_backup_delete(st, u3, true), 0);
	ck_assert_int_eq(store_backup_total_for_server(st, SRV, &c), 0);
	ck_assert_int_eq(c, 0);
	store_close(st);

	expect_reader(db, "SELECT count(*) FROM backups", "0");
	expect_reader(db, "PRAGMA foreign_key_check", "");
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_pagination)
{
	struct store *st = open_ok(":memory:");
	add_node_server(st, SRV, 100);
	ck_assert_int_eq(store_server_add(st, "bbbbbbbb-1111-4222-8333-444455556666", 1, 1), 0);
	/* 25 backups; created_at goes up by 10 s, but pairs share a second to check the
	 * tie-break (later insert first), and they are inserted out of time order. */
	for (unsigned i = 0; i < 25; i++) {
		char u[STORE_UUID_LEN + 1];
		unsigned k = (i * 7) % 25; /* a permutation of 0..24 */
		uuid_of(k, 0, u);
		add_backup(st, u, SRV, 100000 + (int64_t)(k / 2) * 10);
	}
	char other[STORE_UUID_LEN + 1];
	uuid_of(999, 0, other);
	add_backup(st, other, "bbbbbbbb-1111-4222-8333-444455556666", 999999);

	int64_t total = 0;
	ck_assert_int_eq(store_backup_total_for_server(st, SRV, &total), 0);
	ck_assert_int_eq(total, 25);

	struct store_backup *all = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_backup_list_for_server(st, SRV, 0, 0, &all, &n), 0);
	ck_assert_uint_eq(n, 25);
	for (size_t i = 1; i < n; i++) {
		ck_assert_int_ge(all[i - 1].created_at, all[i].created_at);
		ck_assert_str_eq(all[i].server_uuid, SRV);
	}
	/* the newest second holds only k = 24 */
	char want[STORE_UUID_LEN + 1];
	uuid_of(24, 0, want);
	ck_assert_str_eq(all[0].uuid, want);

	/* pages of 10 put together equal the whole list */
	size_t seen = 0;
	for (size_t off = 0; off < 30; off += 10) {
		struct store_backup *page = NULL;
		size_t pn = 0;
		ck_assert_int_eq(store_backup_list_for_server(st, SRV, 10, off, &page, &pn), 0);
		ck_assert_uint_eq(pn, off < 20 ? 10 : 5);
		for (size_t i = 0; i < pn; i++)
			ck_assert_str_eq(page[i].uuid, all[off + i].uuid);
		seen += pn;
		store_backup_list_free(page, pn);
	}
	ck_assert_uint_eq(seen, 25);
	store_backup_list_free(all, n);

	struct store_backup *v = NULL;
	ck_assert_int_eq(store_backup_list_for_server(st, SRV, 10, 100, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_backup_list_free(v, n);
	ck_assert_int_eq(store_backup_list_for_server(st, "ffffffff-1111-4222-8333-444455556666",
						      10, 0, &v, &n),
			 -ENOENT);
	ck_assert_int_eq(store_backup_list_for_server(st, "bbbbbbbb-1111-4222-8333-444455556666",
						      10, 0, &v, &n),
			 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].uuid, other);
	store_backup_list_free(v, n);
	store_close(st);
}
END_TEST

START_TEST(test_fail_stuck)
{
	struct store *st = open_ok(":memory:");
	add_node_server(st, SRV, 10);
	const int64_t now = 1700000000, age = 6 * 3600;
	char old1[STORE_UUID_LEN + 1], old2[STORE_UUID_LEN + 1], edge[STORE_UUID_LEN + 1],
		young[STORE_UUID_LEN + 1], done[STORE_UUID_LEN + 1];
	uuid_of(1, 0, old1);
	uuid_of(2, 0, old2);
	uuid_of(3, 0, edge);
	uuid_of(4, 0, young);
	uuid_of(5, 0, done);
	add_backup(st, old1, SRV, now - age - 100);
	add_backup(st, old2, SRV, now - 2 * age);
	add_backup(st, edge, SRV, now - age); /* exactly prune_age old: not older */
	add_backup(st, young, SRV, now - 60);
	add_backup(st, done, SRV, now - 3 * age);
	ck_assert_int_eq(store_backup_set_locked(st, old1, true), 0);
	ck_assert_int_eq(
		store_backup_mark_completed(st, done, true, "ab", NULL, 5, NULL, NULL, now - age), 0);

	ck_assert_int_eq(store_backups_fail_stuck(st, age, now), 2);
	ck_assert_int_eq(store_backups_fail_stuck(st, age, now), 0);
	ck_assert_int_eq(store_backups_fail_stuck(st, -1, now), -EINVAL);

	struct store_backup *b = NULL;
	ck_assert_int_eq(store_backup_get(st, old1, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_FAILED);
	ck_assert_int_eq(b->is_successful, 0);
	ck_assert_int_eq(b->completed_at, now);
	ck_assert(!b->is_locked);
	store_backup_free(b);
	ck_assert_int_eq(store_backup_get(st, edge, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_RUNNING);
	store_backup_free(b);
	ck_assert_int_eq(store_backup_get(st, young, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_RUNNING);
	store_backup_free(b);
	ck_assert_int_eq(store_backup_get(st, done, &b), 0);
	ck_assert_int_eq(b->state, STORE_BACKUP_COMPLETED);
	ck_assert_int_eq(b->completed_at, now - age);
	store_backup_free(b);

	int64_t c = 0;
	ck_assert_int_eq(store_backup_count_for_server(st, SRV, &c), 0);
	ck_assert_int_eq(c, 3);
	/* later, the rest */
	ck_assert_int_eq(store_backups_fail_stuck(st, age, now + age), 2);
	store_close(st);
}
END_TEST

/* ---- the client API's create checks, discard, retention ---- */

static int create_checked(struct store *st, const char *uuid, int64_t now,
			  struct store_create_check *c)
{
	struct store_backup b = { .uuid = (char *)uuid, .server_uuid = SRV, .name = "n",
				  .adapter = "wings", .created_at = now };
	c->now = now;
	c->throttle_limit = 2;
	c->throttle_period = 600;
	return store_backup_create_checked(st, &b, c);
}

START_TEST(test_create_checked)
{
	struct store *st = open_ok(":memory:");
	int64_t node = add_node_server(st, SRV, 3);
	const int64_t now = 1700000000;
	char u[6][STORE_UUID_LEN + 1];
	for (unsigned i = 0; i < 6; i++)
		uuid_of(100 + i, i, u[i]);
	struct store_create_check c;

	/* the node's token comes back for dispatch, the hash still checks it */
	struct store_node *n = NULL;
	ck_assert_int_eq(store_node_get(st, node, &n), 0);
	ck_assert_str_eq(n->token, "secret-token-1");
	store_node_free(n);
	ck_assert_int_eq(store_node_get(st, node + 1, &n), -ENOENT);

	ck_assert_int_eq(create_checked(st, u[0], now, &c), 0);
	/* one running: the second is refused, and not inserted */
	ck_assert_int_eq(create_checked(st, u[1], now + 1, &c), -ECANCELED);
	ck_assert_int_eq(c.refusal, STORE_CREATE_RUNNING);
	struct store_backup *b = NULL;
	ck_assert_int_eq(store_backup_get(st, u[1], &b), -ENOENT);
	ck_assert_int_eq(store_backup_mark_completed(st, u[0], true, "ab", NULL, 1, NULL, NULL, now + 2), 0);
	ck_assert_int_eq(create_checked(st, u[1], now + 10, &c), 0);
	ck_assert_int_eq(store_backup_mark_completed(st, u[1], true, "ab", NULL, 1, NULL, NULL, now + 11), 0);
	/* two inside ten minutes: throttled until the older one leaves the window */
	ck_assert_int_eq(create_checked(st, u[2], now + 100, &c), -ECANCELED);
	ck_assert_int_eq(c.refusal, STORE_CREATE_THROTTLED);
	ck_assert_int_eq(c.retry_after, 500);
	/* deleting does not give the slot back (the panel counts soft-deleted rows)... */
	ck_assert_int_eq(store_backup_delete(st, u[0], true), 0);
	ck_assert_int_eq(create_checked(st, u[2], now + 100, &c), -ECANCELED);
	ck_assert_int_eq(c.refusal, STORE_CREATE_THROTTLED);
	/* ...but a discarded create does */
	ck_assert_int_eq(store_backup_discard(st, u[1]), 0);
	ck_assert_int_eq(store_backup_get(st, u[1], &b), -ENOENT);
	ck_assert_int_eq(create_checked(st, u[2], now + 100, &c), 0);
	/* a failed backup counts neither for the throttle nor for the limit */
	ck_assert_int_eq(store_backup_mark_completed(st, u[2], false, NULL, NULL, 0, NULL,
						     "too big", now + 101), 0);
	ck_assert_int_eq(store_backup_get(st, u[2], &b), 0);
	ck_assert_str_eq(b->failure_reason, "too big"); /* with the state, in one update */
	ck_assert_int_eq(b->state, STORE_BACKUP_FAILED);
	store_backup_free(b);

	/* the limit: 3 non-failed; throttle window passed */
	int64_t later = now + 10000;
	for (unsigned i = 3; i < 5; i++) {
		ck_assert_int_eq(create_checked(st, u[i], later + i * 1000, &c), 0);
		ck_assert_int_eq(store_backup_mark_completed(st, u[i], true, "ab", NULL, 1, NULL, NULL,
							     later + i * 1000), 0);
	}
	ck_assert_int_eq(create_checked(st, u[5], later + 9000, &c), 0);
	ck_assert_int_eq(store_backup_mark_completed(st, u[5], true, "ab", NULL, 1, NULL, NULL,
						     later + 9000), 0);
	char extra[STORE_UUID_LEN + 1];
	uuid_of(200, 0, extra);
	ck_assert_int_eq(create_checked(st, extra, later + 20000, &c), -ECANCELED);
	ck_assert_int_eq(c.refusal, STORE_CREATE_LIMIT);
	ck_assert_int_eq(c.limit, 3);

	/* a restoring server refuses before anything else */
	ck_assert_int_eq(store_server_set_state(st, SRV, "", "restoring_backup"), 0);
	ck_assert_int_eq(create_checked(st, extra, later + 20000, &c), -ECANCELED);
	ck_assert_int_eq(c.refusal, STORE_CREATE_SERVER_BUSY);
	ck_assert_int_eq(store_server_set_state(st, SRV, NULL, NULL), 0);

	/* retention candidates: unlocked, finished, old enough */
	ck_assert_int_eq(store_backup_set_locked(st, u[3], true), 0);
	struct store_backup *v = NULL;
	size_t nv = 0;
	ck_assert_int_eq(store_backups_expired(st, 3600, later + 5000 + 3600, &v, &nv), 0);
	ck_assert_uint_eq(nv, 2); /* u[2] (failed) and u[4]; u[3] is locked */
	ck_assert_str_eq(v[0].uuid, u[2]);
	ck_assert_str_eq(v[1].uuid, u[4]);
	store_backup_list_free(v, nv);

	/* creations of deleted backups are forgotten once old */
	ck_assert_int_eq(store_backup_creations_prune(st, 3600, now + 7200), 1);
	ck_assert_int_eq(store_backup_creations_prune(st, 3600, now + 7200), 0);
	store_close(st);
}
END_TEST

/* ---- one-time download ids ---- */

START_TEST(test_download_once_persisted)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	ck_assert_int_eq(store_download_use_once(st, "jti-1", 100), 0);
	ck_assert_int_eq(store_download_use_once(st, "jti-1", 101), -EEXIST);
	ck_assert_int_eq(store_download_use_once(st, "jti-2", 200), 0);
	ck_assert_int_eq(store_download_use_once(st, "", 200), -EINVAL);
	ck_assert_int_eq(store_download_use_once(st, NULL, 200), -EINVAL);
	store_close(st);

	/* a restart does not forget */
	st = open_ok(db);
	ck_assert_int_eq(store_download_use_once(st, "jti-1", 300), -EEXIST);
	ck_assert_int_eq(store_download_use_once(st, "jti-2", 300), -EEXIST);
	ck_assert_int_eq(store_download_use_once(st, "jti-3", 300), 0);

	/* prune what was spent more than 150 s before t=300: only jti-1 (t=100) */
	ck_assert_int_eq(store_download_uses_prune(st, 150, 300), 1);
	ck_assert_int_eq(store_download_uses_prune(st, 150, 300), 0);
	ck_assert_int_eq(store_download_uses_prune(st, -5, 300), -EINVAL);
	ck_assert_int_eq(store_download_use_once(st, "jti-2", 301), -EEXIST);
	store_close(st);
	expect_reader(db, "SELECT unique_id || ':' || used_at FROM download_uses ORDER BY 1",
		      "jti-2:200\njti-3:300");
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- hostile strings ---- */

START_TEST(test_injection_verbatim)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	const char *evil_name = "x'); DROP TABLE backups; --";
	const char *evil_node = "n\"; DELETE FROM nodes; /*";
	const char *evil_ign = "*.log' OR '1'='1\n%_\\\n\xc3\xa9t\xc3\xa9";
	int64_t node = 0;
	ck_assert_int_eq(store_node_add(st, evil_node, "http://h/?a='b'", "id'x", "t'; --", &node),
			 0);
	ck_assert_int_eq(store_server_add(st, SRV, node, 1), 0);
	char u[STORE_UUID_LEN + 1];
	uuid_of(7, 7, u);
	struct store_backup nb = { .uuid = u, .server_uuid = SRV, .name = (char *)evil_name,
				   .adapter = "wings' --", .ignored = (char *)evil_ign,
				   .created_at = 1 };
	ck_assert_int_eq(store_backup_create(st, &nb), 0);
	ck_assert_int_eq(store_download_use_once(st, "a' OR '1'='1", 1), 0);
	ck_assert_int_eq(store_download_use_once(st, "a' OR '1'='1", 1), -EEXIST);
	ck_assert_int_eq(store_download_use_once(st, "a", 1), 0);

	struct store_backup *b = NULL;
	ck_assert_int_eq(store_backup_get(st, u, &b), 0);
	ck_assert_str_eq(b->name, evil_name);
	ck_assert_str_eq(b->adapter, "wings' --");
	ck_assert_str_eq(b->ignored, evil_ign);
	store_backup_free(b);
	struct store_node *n = NULL;
	ck_assert_int_eq(store_node_get_by_token_id(st, "id'x", &n), 0);
	ck_assert_str_eq(n->name, evil_node);
	ck_assert_str_eq(n->url, "http://h/?a='b'");
	store_node_free(n);
	ck_assert_int_eq(store_node_check_token(st, "id'x", "t'; --", NULL), 0);
	ck_assert_int_eq(store_node_check_token(st, "id'x' OR '1'='1", "t'; --", NULL), -EACCES);
	store_close(st);

	expect_reader(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", "7");
	expect_reader(db, "SELECT name FROM backups", evil_name);
	expect_reader(db, "SELECT count(*) FROM download_uses", "2");
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- threads ---- */

#define NTHREADS 4
#define NIDS 200
#define NBACKUPS 60

struct race {
	struct store *shared; /* NULL: each thread opens its own connection to path */
	const char *path;
	int thread;
	atomic_int *wins;	    /* per shared download id */
	atomic_int *backup_wins; /* per shared backup uuid */
	atomic_int errors;
	int first_error;
};

static void race_err(struct race *r, int code)
{
	if (atomic_fetch_add(&r->errors, 1) == 0)
		r->first_error = code;
}

static void *race_main(void *arg)
{
	struct race *r = arg;
	struct store *st = r->shared;
	if (!st && store_open(r->path, &st) < 0) {
		race_err(r, -1000);
		return NULL;
	}
	for (int i = 0; i < NIDS; i++) {
		char id[64];
		/* threads walk the shared ids from different ends to collide more */
		int k = r->thread % 2 ? NIDS - 1 - i : i;
		snprintf(id, sizeof(id), "shared-%d", k);
		int rc = store_download_use_once(st, id, i);
		if (rc == 0)
			atomic_fetch_add(&r->wins[k], 1);
		else if (rc != -EEXIST)
			race_err(r, rc);
		snprintf(id, sizeof(id), "t%d-%d", r->thread, i);
		rc = store_download_use_once(st, id, i);
		if (rc != 0)
			race_err(r, rc);
	}
	for (unsigned i = 0; i < NBACKUPS; i++) {
		char u[STORE_UUID_LEN + 1];
		struct store_backup b = { .uuid = u, .server_uuid = SRV, .name = "race",
					  .adapter = "wings", .created_at = i };
		uuid_of(0x5000 + i, 0, u);
		int rc = store_backup_create(st, &b);
		if (rc == 0)
			atomic_fetch_add(&r->backup_wins[i], 1);
		else if (rc != -EEXIST)
			race_err(r, rc);
		uuid_of(0x6000 + i, (unsigned)r->thread, u);
		if ((rc = store_backup_create(st, &b)) != 0)
			race_err(r, rc);
		/* and a write that checks then changes, in its transaction */
		rc = store_backup_mark_completed(st, u, true, "ab", NULL, 1, NULL, NULL, i);
		if (rc != 0)
			race_err(r, rc);
	}
	if (!r->shared)
		store_close(st);
	return NULL;
}

static void run_race(bool shared)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	add_node_server(st, SRV, 1000);
	if (!shared) {
		store_close(st);
		st = NULL;
	}
	static atomic_int wins[NIDS], bwins[NBACKUPS];
	for (int i = 0; i < NIDS; i++)
		atomic_init(&wins[i], 0);
	for (int i = 0; i < NBACKUPS; i++)
		atomic_init(&bwins[i], 0);
	struct race r[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		r[i] = (struct race){ .shared = st, .path = db, .thread = i, .wins = wins,
				      .backup_wins = bwins };
		atomic_init(&r[i].errors, 0);
		ck_assert_int_eq(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_msg(atomic_load(&r[i].errors) == 0, "thread %d: %d errors, first %d", i,
			      atomic_load(&r[i].errors), r[i].first_error);
	}
	for (int i = 0; i < NIDS; i++)
		ck_assert_msg(atomic_load(&wins[i]) == 1, "id %d won %d times", i,
			      atomic_load(&wins[i]));
	for (int i = 0; i < NBACKUPS; i++)
		ck_assert_int_eq(atomic_load(&bwins[i]), 1);
	if (st)
		store_close(st);

	char want[32];
	snprintf(want, sizeof(want), "%d", NIDS + NTHREADS * NIDS);
	expect_reader(db, "SELECT count(*) FROM download_uses", want);
	snprintf(want, sizeof(want), "%d", NBACKUPS + NTHREADS * NBACKUPS);
	expect_reader(db, "SELECT count(*) FROM backups", want);
	snprintf(want, sizeof(want), "%d", NTHREADS * NBACKUPS);
	expect_reader(db, "SELECT count(*) FROM backups WHERE state = 'completed'", want);
	expect_reader(db, "PRAGMA integrity_check", "ok");
	free(db);
	tu_rmrf(dir);
	free(dir);
}

START_TEST(test_threads_shared_store)
{
	run_race(true);
}
END_TEST

START_TEST(test_threads_own_connections)
{
	run_race(false);
}
END_TEST

/* A reader in another process sees committed rows while the store keeps the file open. */
START_TEST(test_concurrent_reader)
{
	char *dir = tu_mkdtemp("store");
	char *db = db_in(dir);
	struct store *st = open_ok(db);
	add_node_server(st, SRV, 1);
	char u[STORE_UUID_LEN + 1];
	uuid_of(42, 42, u);
	add_backup(st, u, SRV, 123);
	char want[64];
	snprintf(want, sizeof(want), "%s|running|123", u);
	expect_reader(db, "SELECT uuid, state, created_at FROM backups", want);
	expect_reader(db, "PRAGMA journal_mode", "wal");
	store_close(st);
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_migrate_from_empty);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_newer_version_refused);
	tcase_add_test(tc, test_failed_migration_rolls_back);
	tcase_add_test(tc, test_memory);
	tcase_add_test(tc, test_nodes);
	tcase_add_test(tc, test_servers);
	tcase_add_test(tc, test_backups);
	tcase_add_test(tc, test_pagination);
	tcase_add_test(tc, test_fail_stuck);
	tcase_add_test(tc, test_create_checked);
	tcase_add_test(tc, test_download_once_persisted);
	tcase_add_test(tc, test_injection_verbatim);
	tcase_add_test(tc, test_threads_shared_store);
	tcase_add_test(tc, test_threads_own_connections);
	tcase_add_test(tc, test_concurrent_reader);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
