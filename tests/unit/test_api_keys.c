/* Client API keys (api_keys.c) and `amber key` (cli/keys.c). The sqlite3 command-line
 * tool and sha256sum judge what is stored, independently of the code under test. */
#include "api_keys.h"
#include "store.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `amber key`, from the ambercli library the amber program is built on. */
#include "keys.h"

#define SRV1 "0a1b2c3d-1111-4222-8333-444455556666"
#define SRV2 "9f8e7d6c-aaaa-4bbb-8ccc-dddddddddddd"
#define SRV3 "12345678-0000-4000-8000-000000000000" /* never added */

static char *db_in(const char *dir)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/amber.db", dir), 0);
	return p;
}

/* Runs sql with the sqlite3 tool; rows on lines, columns joined by '|', trailing
 * newline removed. The SQL and path here hold no single quotes. */
static char *reader(const char *db, const char *sql)
{
	int status = -1;
	char *out = tu_sh_out(&status, "sqlite3 -batch -noheader '%s' '%s'", db, sql);
	ck_assert_msg(status == 0 && out, "sqlite3 failed on %s: %s", db, sql);
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

static struct store *open_ok(const char *db)
{
	struct store *st = NULL;
	ck_assert_int_eq(store_open(db, &st), 0);
	ck_assert_ptr_nonnull(st);
	return st;
}

static void add_servers(struct store *st)
{
	int64_t node = 0;
	ck_assert_int_eq(store_node_add(st, "node1", "https://n1", "tokid1", "nodetoken", &node),
			 0);
	ck_assert_int_eq(store_server_add(st, SRV1, node, 3), 0);
	ck_assert_int_eq(store_server_add(st, SRV2, node, 3), 0);
}

/* Whether needle occurs in the file's bytes (a missing file holds nothing). */
static bool file_contains(const char *path, const char *needle)
{
	size_t len = 0, nl = strlen(needle);
	char *data = tu_read_file(path, &len);
	if (!data)
		return false;
	bool found = memmem(data, len, needle, nl) != NULL;
	free(data);
	return found;
}

static bool key_shape_ok(const char *k)
{
	if (strlen(k) != API_KEY_LEN || strncmp(k, "ptlc_", 5) != 0)
		return false;
	for (const char *c = k + 5; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9')))
			return false;
	return true;
}

/* ---- permissions ---- */

START_TEST(test_perms)
{
	unsigned m = 0;
	ck_assert_int_eq(api_key_perms_parse("backup.read", &m), 0);
	ck_assert_uint_eq(m, API_KEY_PERM_BACKUP_READ);
	ck_assert_int_eq(api_key_perms_parse(" backup.restore , backup.read,backup.read", &m), 0);
	ck_assert_uint_eq(m, API_KEY_PERM_BACKUP_READ | API_KEY_PERM_BACKUP_RESTORE);
	ck_assert_int_eq(api_key_perms_parse("backup.read,backup.create,backup.download,"
					     "backup.delete,backup.restore",
					     &m),
			 0);
	ck_assert_uint_eq(m, API_KEY_PERM_ALL);
	const char *bad[] = { "", " ", "backup.read,", ",backup.read", "backup.read,,backup.delete",
			      "backup.READ", "backup", "backup.read2", "*", "file.read" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = 99;
		ck_assert_msg(api_key_perms_parse(bad[i], &m) == -EINVAL, "%s", bad[i]);
		ck_assert_uint_eq(m, 0);
	}
	char buf[API_KEY_PERMS_STR_MAX];
	ck_assert_int_eq(api_key_perms_format(API_KEY_PERM_ALL, buf, sizeof(buf)),
			 (int)strlen("backup.read,backup.create,backup.download,backup.delete,"
				     "backup.restore"));
	ck_assert_str_eq(buf,
			 "backup.read,backup.create,backup.download,backup.delete,backup.restore");
	ck_assert_int_eq(api_key_perms_format(0, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(api_key_perms_format(API_KEY_PERM_BACKUP_DELETE |
						      API_KEY_PERM_BACKUP_READ,
					      buf, sizeof(buf)),
			 25);
	ck_assert_str_eq(buf, "backup.read,backup.delete");
	ck_assert_int_eq(api_key_perms_format(1u << 5, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(api_key_perms_format(API_KEY_PERM_ALL, buf, 20), -ENOSPC);
	/* round trip */
	for (unsigned p = 1; p <= API_KEY_PERM_ALL; p++) {
		ck_assert_int_ge(api_key_perms_format(p, buf, sizeof(buf)), 0);
		ck_assert_int_eq(api_key_perms_parse(buf, &m), 0);
		ck_assert_uint_eq(m, p);
	}
	ck_assert_str_eq(api_key_perm_name(API_KEY_PERM_BACKUP_DOWNLOAD), "backup.download");
	ck_assert_ptr_null(api_key_perm_name(3));
}
END_TEST

/* ---- create and check ---- */

START_TEST(test_create_check)
{
	char *dir = tu_mkdtemp("keys"), *db = db_in(dir);
	struct store *st = open_ok(db);
	add_servers(st);

	char *key = NULL;
	int64_t id = 0;
	/* upper case uuid: stored canonical lower case */
	const char *servers[] = { "0A1B2C3D-1111-4222-8333-444455556666", SRV1 };
	ck_assert_int_eq(api_key_create(st, "ci pipeline",
					API_KEY_PERM_BACKUP_READ | API_KEY_PERM_BACKUP_CREATE,
					servers, 2, false, 1000, &key, &id),
			 0);
	ck_assert_ptr_nonnull(key);
	ck_assert_msg(key_shape_ok(key), "%s", key);
	ck_assert_int_gt(id, 0);

	/* accepted, bare and as a bearer */
	struct api_key *k = NULL;
	ck_assert_int_eq(api_key_check(st, key, 2000, &k), 0);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(k->id, id);
	ck_assert_int_eq(strncmp(k->identifier, key, API_KEY_IDENTIFIER_LEN), 0);
	ck_assert_int_eq(strlen(k->identifier), API_KEY_IDENTIFIER_LEN);
	ck_assert_str_eq(k->description, "ci pipeline");
	ck_assert_uint_eq(k->permissions, API_KEY_PERM_BACKUP_READ | API_KEY_PERM_BACKUP_CREATE);
	ck_assert(!k->all_servers);
	ck_assert_uint_eq(k->n_servers, 1);
	ck_assert_str_eq(k->servers[0], SRV1);
	ck_assert_int_eq(k->created_at, 1000);
	ck_assert_int_eq(k->last_used_at, 2000);
	ck_assert(!k->revoked);

	/* scoping */
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_READ, SRV1));
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_CREATE, SRV1));
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_READ | API_KEY_PERM_BACKUP_CREATE,
				 "0A1B2C3D-1111-4222-8333-444455556666"));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_DELETE, SRV1));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ | API_KEY_PERM_BACKUP_DELETE,
				  SRV1));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_DOWNLOAD, SRV1));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_RESTORE, SRV1));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ, SRV2));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ, NULL));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ, "0a1b2c3d"));
	ck_assert(!api_key_allows(k, 0, SRV1));
	ck_assert(!api_key_allows(k, 1u << 7, SRV1));
	ck_assert(!api_key_allows(NULL, API_KEY_PERM_BACKUP_READ, SRV1));
	api_key_free(k);
	k = NULL;

	char *bearer = NULL, *lower = NULL;
	ck_assert_int_ge(asprintf(&bearer, "Bearer %s", key), 0);
	ck_assert_int_ge(asprintf(&lower, "bearer   %s", key), 0);
	ck_assert_int_eq(api_key_check(st, bearer, 3000, NULL), 0);
	ck_assert_int_eq(api_key_check(st, lower, 2500, NULL), 0);
	/* last_used_at moved to 3000 and not back */
	char ident[API_KEY_IDENTIFIER_LEN + 1];
	memcpy(ident, key, API_KEY_IDENTIFIER_LEN);
	ident[API_KEY_IDENTIFIER_LEN] = 0;
	ck_assert_int_eq(api_key_get(st, ident, &k), 0);
	ck_assert_int_eq(k->last_used_at, 3000);
	api_key_free(k);
	k = NULL;

	/* refused: wrong secret, unknown identifier, malformed, empty */
	char *wrong = strdup(key);
	wrong[API_KEY_LEN - 1] = wrong[API_KEY_LEN - 1] == 'a' ? 'b' : 'a';
	ck_assert_int_eq(api_key_check(st, wrong, 4000, &k), -EACCES);
	ck_assert_ptr_null(k);
	char *unknown = strdup(key);
	unknown[6] = unknown[6] == 'a' ? 'b' : 'a';
	ck_assert_int_eq(api_key_check(st, unknown, 4000, &k), -EACCES);
	ck_assert_ptr_null(k);
	char *shortk = strndup(key, API_KEY_LEN - 1);
	char *longk = NULL, *badchar = strdup(key), *prefix = strdup(key);
	ck_assert_int_ge(asprintf(&longk, "%sx", key), 0);
	badchar[30] = '-';
	prefix[3] = 'a'; /* "ptla_" */
	const char *malformed[] = { "", "Bearer ", "Bearer", shortk, longk, badchar, prefix,
				    ident, "Basic dXNlcjpwYXNz" };
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		ck_assert_msg(api_key_check(st, malformed[i], 4000, &k) == -EACCES, "%s",
			      malformed[i]);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(api_key_check(st, NULL, 4000, &k), -EINVAL);
	/* a refusal does not count as a use */
	expect_reader(db, "SELECT last_used_at FROM api_keys", "3000");

	/* an all-servers key with every permission */
	char *key2 = NULL;
	ck_assert_int_eq(api_key_create(st, NULL, API_KEY_PERM_ALL, NULL, 0, true, 1100, &key2,
					NULL),
			 0);
	ck_assert_int_eq(api_key_check(st, key2, 1200, &k), 0);
	ck_assert(k->all_servers);
	ck_assert_uint_eq(k->n_servers, 0);
	ck_assert_str_eq(k->description, "");
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_RESTORE, SRV2));
	ck_assert(api_key_allows(k, API_KEY_PERM_ALL, SRV3));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ, "not-a-uuid"));
	api_key_free(k);
	k = NULL;
	/* two keys never share an identifier or secret */
	ck_assert_int_ne(strncmp(key, key2, API_KEY_IDENTIFIER_LEN), 0);
	ck_assert_str_ne(key + API_KEY_IDENTIFIER_LEN, key2 + API_KEY_IDENTIFIER_LEN);
	/* one key's identifier with the other's secret */
	char *mixed = NULL;
	ck_assert_int_ge(asprintf(&mixed, "%.16s%s", key, key2 + API_KEY_IDENTIFIER_LEN), 0);
	ck_assert_int_eq(api_key_check(st, mixed, 4000, NULL), -EACCES);

	/* The stored row: identifier and the sha256 of the secret, no plaintext. */
	char *secret = key + API_KEY_IDENTIFIER_LEN;
	int status = -1;
	char *sum = tu_sh_out(&status, "printf %%s '%s' | sha256sum | cut -c1-64", secret);
	ck_assert_int_eq(status, 0);
	ck_assert_ptr_nonnull(sum);
	sum[strcspn(sum, "\n")] = 0;
	ck_assert_int_eq(strlen(sum), 64);
	char *sql = NULL;
	ck_assert_int_ge(asprintf(&sql,
				  "SELECT lower(hex(secret_hash)) FROM api_keys "
				  "WHERE identifier = \"%s\"",
				  ident),
			 0);
	expect_reader(db, sql, sum);
	expect_reader(db, "SELECT count(*) FROM api_keys", "2");
	expect_reader(db, "SELECT server_uuid FROM api_key_servers", SRV1);
	store_close(st);
	/* the secret appears nowhere in the files (closing checkpointed the WAL) */
	char *wal = NULL, *dump = NULL;
	ck_assert_int_ge(asprintf(&wal, "%s-wal", db), 0);
	ck_assert(!file_contains(db, secret));
	ck_assert(!file_contains(wal, secret));
	ck_assert(!file_contains(db, key2 + API_KEY_IDENTIFIER_LEN));
	ck_assert(file_contains(db, ident)); /* while the identifier is there */
	dump = tu_sh_out(&status, "sqlite3 '%s' .dump", db);
	ck_assert(dump && status == 0);
	ck_assert(!strstr(dump, secret));
	ck_assert(!strstr(dump, key));

	/* keys survive a reopen */
	st = open_ok(db);
	ck_assert_int_eq(api_key_check(st, bearer, 5000, NULL), 0);
	ck_assert_int_eq(api_key_check(st, key2, 5000, NULL), 0);
	store_close(st);

	free(dump);
	free(wal);
	free(sql);
	free(sum);
	free(mixed);
	free(shortk);
	free(longk);
	free(badchar);
	free(prefix);
	free(wrong);
	free(unknown);
	free(bearer);
	free(lower);
	api_key_plaintext_free(key);
	api_key_plaintext_free(key2);
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_create_invalid)
{
	struct store *st = open_ok(":memory:");
	add_servers(st);
	char *key = (char *)"sentinel";
	const char *one[] = { SRV1 };
	const char *bad_uuid[] = { "0a1b2c3d" };
	const char *unknown[] = { SRV1, SRV3 };
	char longd[API_KEY_DESCRIPTION_MAX + 2];
	memset(longd, 'd', sizeof(longd) - 1);
	longd[sizeof(longd) - 1] = 0;

	ck_assert_int_eq(api_key_create(st, "d", 0, one, 1, false, 1, &key, NULL), -EINVAL);
	ck_assert_ptr_null(key);
	ck_assert_int_eq(api_key_create(st, "d", 1u << 5, one, 1, false, 1, &key, NULL), -EINVAL);
	ck_assert_int_eq(api_key_create(st, "d", 1, one, 1, true, 1, &key, NULL), -EINVAL);
	ck_assert_int_eq(api_key_create(st, "d", 1, NULL, 0, false, 1, &key, NULL), -EINVAL);
	ck_assert_int_eq(api_key_create(st, "d", 1, bad_uuid, 1, false, 1, &key, NULL), -EINVAL);
	ck_assert_int_eq(api_key_create(st, "a\nb", 1, one, 1, false, 1, &key, NULL), -EINVAL);
	ck_assert_int_eq(api_key_create(st, longd, 1, one, 1, false, 1, &key, NULL), -EINVAL);
	longd[API_KEY_DESCRIPTION_MAX] = 0;
	/* an unknown server: nothing is left behind */
	ck_assert_int_eq(api_key_create(st, "d", 1, unknown, 2, false, 1, &key, NULL), -ENOENT);
	ck_assert_ptr_null(key);
	struct api_key *v = NULL;
	size_t n = 99;
	ck_assert_int_eq(api_key_list(st, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* the longest description is fine */
	ck_assert_int_eq(api_key_create(st, longd, 1, one, 1, false, 1, &key, NULL), 0);
	api_key_plaintext_free(key);
	ck_assert_int_eq(api_key_list(st, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(strlen(v[0].description), API_KEY_DESCRIPTION_MAX);
	api_key_list_free(v, n);
	store_close(st);
}
END_TEST

/* ---- list, revoke ---- */

START_TEST(test_list_revoke)
{
	struct store *st = open_ok(":memory:");
	add_servers(st);
	const char *both[] = { SRV2, SRV1 };
	char *k1 = NULL, *k2 = NULL;
	int64_t id1 = 0, id2 = 0;
	ck_assert_int_eq(api_key_create(st, "first", API_KEY_PERM_BACKUP_READ, both, 2, false, 10,
					&k1, &id1),
			 0);
	ck_assert_int_eq(api_key_create(st, "second", API_KEY_PERM_BACKUP_DOWNLOAD, NULL, 0, true,
					20, &k2, &id2),
			 0);
	struct api_key *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(api_key_list(st, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].id, id1);
	ck_assert_str_eq(v[0].description, "first");
	ck_assert_uint_eq(v[0].n_servers, 2);
	ck_assert_str_eq(v[0].servers[0], SRV1); /* sorted */
	ck_assert_str_eq(v[0].servers[1], SRV2);
	ck_assert_int_eq(v[0].last_used_at, 0);
	ck_assert(v[1].all_servers);
	ck_assert_uint_eq(v[1].permissions, API_KEY_PERM_BACKUP_DOWNLOAD);
	ck_assert_int_eq(v[1].created_at, 20);
	ck_assert(!v[0].revoked && !v[1].revoked);
	api_key_list_free(v, n);

	char ident1[API_KEY_IDENTIFIER_LEN + 1];
	memcpy(ident1, k1, API_KEY_IDENTIFIER_LEN);
	ident1[API_KEY_IDENTIFIER_LEN] = 0;

	/* unknown ones */
	ck_assert_int_eq(api_key_revoke(st, "ptlc_AAAAAAAAAAA", 30), -ENOENT);
	ck_assert_int_eq(api_key_revoke(st, "999", 30), -ENOENT);
	ck_assert_int_eq(api_key_revoke(st, "nonsense", 30), -ENOENT);
	ck_assert_int_eq(api_key_revoke(st, k1, 30), -ENOENT); /* the whole key is no name */
	ck_assert_int_eq(api_key_revoke(st, "", 30), -EINVAL);
	struct api_key *k = NULL;
	ck_assert_int_eq(api_key_get(st, "ptlc_AAAAAAAAAAA", &k), -ENOENT);
	ck_assert_int_eq(api_key_get(st, "12345", &k), -ENOENT);
	ck_assert_ptr_null(k);

	/* by identifier, then again (kept as first revoked) */
	ck_assert_int_eq(api_key_check(st, k1, 25, &k), 0);
	ck_assert_int_eq(api_key_revoke(st, ident1, 30), 0);
	ck_assert_int_eq(api_key_revoke(st, ident1, 40), 0);
	ck_assert_int_eq(api_key_check(st, k1, 50, NULL), -EACCES);
	/* a key object fetched before knows nothing of it; a fresh one is revoked */
	api_key_free(k);
	ck_assert_int_eq(api_key_get(st, ident1, &k), 0);
	ck_assert(k->revoked);
	ck_assert_int_eq(k->revoked_at, 30);
	ck_assert_int_eq(k->last_used_at, 25);
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_READ, SRV1));
	api_key_free(k);

	/* by id */
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id2);
	ck_assert_int_eq(api_key_check(st, k2, 60, NULL), 0);
	ck_assert_int_eq(api_key_revoke(st, idbuf, 70), 0);
	ck_assert_int_eq(api_key_check(st, k2, 80, NULL), -EACCES);

	ck_assert_int_eq(api_key_list(st, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(v[0].revoked && v[1].revoked);
	ck_assert_int_eq(v[1].revoked_at, 70);
	ck_assert_int_eq(v[1].last_used_at, 60);
	api_key_list_free(v, n);

	api_key_plaintext_free(k1);
	api_key_plaintext_free(k2);
	store_close(st);
}
END_TEST

/* ---- migration from a version-1 database ---- */

START_TEST(test_migrate_from_v1)
{
	char *dir = tu_mkdtemp("keys"), *db = db_in(dir);
	struct store *st = open_ok(db);
	add_servers(st);
	store_close(st);
	/* what a database written before the keys existed looks like */
	free(reader(db, "DROP INDEX api_key_servers_server; DROP TABLE api_key_servers; "
			"DROP TABLE api_keys; DROP TABLE backup_creations; "
			"ALTER TABLE nodes DROP COLUMN token; "
			"ALTER TABLE backups DROP COLUMN failure_reason; PRAGMA user_version = 1;"));
	expect_reader(db, "PRAGMA user_version", "1");
	expect_reader(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE \"api_key%\"", "0");

	st = open_ok(db);
	char want[16];
	snprintf(want, sizeof(want), "%d", store_schema_version());
	expect_reader(db, "PRAGMA user_version", want);
	ck_assert_int_ge(store_schema_version(), 2);
	expect_reader(db,
		      "SELECT group_concat(name, \",\") FROM (SELECT name FROM sqlite_master "
		      "WHERE type = \"table\" AND name LIKE \"api_key%\" ORDER BY name)",
		      "api_key_servers,api_keys");
	expect_reader(db, "SELECT \"table\" FROM pragma_foreign_key_list(\"api_key_servers\") "
			  "ORDER BY 1",
		      "api_keys\nservers");
	/* the old data is still there and keys work */
	struct store_server *s = NULL;
	ck_assert_int_eq(store_server_get(st, SRV1, &s), 0);
	store_server_free(s);
	const char *one[] = { SRV1 };
	char *key = NULL;
	ck_assert_int_eq(api_key_create(st, "after", 1, one, 1, false, 1, &key, NULL), 0);
	ck_assert_int_eq(api_key_check(st, key, 2, NULL), 0);
	api_key_plaintext_free(key);
	store_close(st);
	expect_reader(db, "PRAGMA integrity_check", "ok");
	expect_reader(db, "PRAGMA foreign_key_check", "");

	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- the CLI ---- */

/* Runs cli_key_main on a NULL-terminated argument list with stdout captured; *ret_out
 * gets what it printed (caller frees). */
static int run_cli(const char *db, bool json, char **ret_out, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, ret_out);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 31;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	char path[] = "/tmp/amber-keys-out-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stdout);
	int saved = dup(1);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, 1), 0);
	int rc = cli_key_main(argc, argv, db, json);
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

START_TEST(test_cli)
{
	char *dir = tu_mkdtemp("keys"), *db = NULL, *out = NULL;
	ck_assert_int_ge(asprintf(&db, "sqlite:%s/amber.db", dir), 0);
	struct store *st = open_ok(db);
	add_servers(st);
	store_close(st);

	/* create --json */
	ck_assert_int_eq(run_cli(db, false, &out, "create", "--description", "deploy bot",
				 "--permissions", "backup.read,backup.create", "--server", SRV1,
				 "--server", SRV2, "--json", NULL),
			 0);
	json_error_t err;
	json_t *j = json_loads(out, 0, &err);
	ck_assert_msg(j != NULL, "%s", out);
	const char *key = json_string_value(json_object_get(j, "key"));
	ck_assert_ptr_nonnull(key);
	ck_assert_msg(key_shape_ok(key), "%s", key);
	char *key1 = strdup(key);
	ck_assert_int_eq(strncmp(json_string_value(json_object_get(j, "identifier")), key1,
				 API_KEY_IDENTIFIER_LEN),
			 0);
	ck_assert_str_eq(json_string_value(json_object_get(j, "description")), "deploy bot");
	json_t *perms = json_object_get(j, "permissions");
	ck_assert_uint_eq(json_array_size(perms), 2);
	ck_assert_str_eq(json_string_value(json_array_get(perms, 0)), "backup.read");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "servers")), 2);
	ck_assert(json_is_false(json_object_get(j, "all_servers")));
	ck_assert(json_is_null(json_object_get(j, "last_used_at")));
	ck_assert(strstr(json_string_value(json_object_get(j, "note")), "cannot be shown again"));
	json_decref(j);
	free(out);

	/* create, as text, with the global --json off */
	ck_assert_int_eq(run_cli(db, false, &out, "create", "--permissions", "backup.restore",
				 "--all-servers", NULL),
			 0);
	ck_assert(strstr(out, "cannot be shown again"));
	char *p = strstr(out, "ptlc_");
	ck_assert_ptr_nonnull(p);
	/* the line holding the whole key */
	char *line = strstr(out, "\nptlc_");
	ck_assert_ptr_nonnull(line);
	char *key2 = strndup(line + 1, API_KEY_LEN);
	ck_assert_msg(key_shape_ok(key2), "%s", out);
	free(out);

	st = open_ok(db);
	struct api_key *k = NULL;
	ck_assert_int_eq(api_key_check(st, key1, 100, &k), 0);
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_CREATE, SRV2));
	ck_assert(!api_key_allows(k, API_KEY_PERM_BACKUP_RESTORE, SRV2));
	api_key_free(k);
	ck_assert_int_eq(api_key_check(st, key2, 100, &k), 0);
	ck_assert(api_key_allows(k, API_KEY_PERM_BACKUP_RESTORE, SRV3));
	api_key_free(k);
	store_close(st);

	/* list: identifiers, never secrets */
	ck_assert_int_eq(run_cli(db, false, &out, "list", NULL), 0);
	ck_assert(strstr(out, "IDENTIFIER"));
	ck_assert(strstr(out, "deploy bot"));
	ck_assert(strstr(out, "backup.read,backup.create"));
	ck_assert(strstr(out, SRV1) && strstr(out, SRV2));
	char id1[API_KEY_IDENTIFIER_LEN + 1], id2[API_KEY_IDENTIFIER_LEN + 1];
	snprintf(id1, sizeof(id1), "%s", key1);
	snprintf(id2, sizeof(id2), "%s", key2);
	ck_assert(strstr(out, id1) && strstr(out, id2));
	ck_assert(!strstr(out, key1 + API_KEY_IDENTIFIER_LEN));
	ck_assert(!strstr(out, key2 + API_KEY_IDENTIFIER_LEN));
	free(out);
	ck_assert_int_eq(run_cli(db, true, &out, "list", NULL), 0);
	j = json_loads(out, 0, &err);
	ck_assert_msg(j && json_array_size(j) == 2, "%s", out);
	ck_assert(!strstr(out, key1 + API_KEY_IDENTIFIER_LEN));
	ck_assert(!strstr(out, key2 + API_KEY_IDENTIFIER_LEN));
	ck_assert_ptr_null(json_object_get(json_array_get(j, 0), "key"));
	ck_assert(json_is_string(json_object_get(json_array_get(j, 0), "last_used_at")));
	ck_assert(json_is_true(json_object_get(json_array_get(j, 1), "all_servers")));
	json_decref(j);
	free(out);

	/* revoke */
	ck_assert_int_eq(run_cli(db, false, &out, "revoke", id1, NULL), 0);
	ck_assert(strstr(out, "revoked"));
	free(out);
	ck_assert_int_eq(run_cli(db, false, &out, "revoke", "ptlc_AAAAAAAAAAA", NULL), 3);
	free(out);
	ck_assert_int_eq(run_cli(db, false, &out, "revoke", "nope", NULL), 3);
	free(out);
	ck_assert_int_eq(run_cli(db, true, &out, "list", NULL), 0);
	j = json_loads(out, 0, &err);
	ck_assert_msg(j != NULL, "%s", out);
	ck_assert(json_is_true(json_object_get(json_array_get(j, 0), "revoked")));
	ck_assert(json_is_false(json_object_get(json_array_get(j, 1), "revoked")));
	json_decref(j);
	free(out);
	st = open_ok(db);
	ck_assert_int_eq(api_key_check(st, key1, 200, NULL), -EACCES);
	ck_assert_int_eq(api_key_check(st, key2, 200, NULL), 0);
	store_close(st);

	/* usage errors: 2; an unknown server: 3 */
	const char *usage[][8] = {
		{ "create", "--permissions", "backup.read", NULL },
		{ "create", "--server", SRV1, NULL },
		{ "create", "--permissions", "backup.read", "--server", SRV1, "--all-servers",
		  NULL },
		{ "create", "--permissions", "backup.fly", "--all-servers", NULL },
		{ "create", "--permissions", "backup.read", "--server", "0a1b", NULL },
		{ "create", "--permissions", "backup.read", "--all-servers", "extra", NULL },
		{ "revoke", NULL },
		{ "revoke", "a", "b", NULL },
	};
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		char *argv[8];
		int argc = 0;
		while (usage[i][argc]) {
			argv[argc] = (char *)usage[i][argc];
			argc++;
		}
		argv[argc] = NULL;
		ck_assert_msg(cli_key_main(argc, argv, db, false) == 2, "case %zu", i);
	}
	char *none[] = { NULL };
	ck_assert_int_eq(cli_key_main(0, none, db, false), 2);
	char *frob[] = { (char *)"frob", NULL };
	ck_assert_int_eq(cli_key_main(1, frob, db, false), 2);
	ck_assert_int_eq(run_cli(db, false, &out, "create", "--permissions", "backup.read",
				 "--server", SRV3, NULL),
			 3);
	ck_assert_str_eq(out, "");
	free(out);
	char *list[] = { (char *)"list", NULL };
	ck_assert_int_eq(cli_key_main(1, list, NULL, false), 2);

	free(key1);
	free(key2);
	free(db);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api_keys");
	TCase *tc = tcase_create("api_keys");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_perms);
	tcase_add_test(tc, test_create_check);
	tcase_add_test(tc, test_create_invalid);
	tcase_add_test(tc, test_list_revoke);
	tcase_add_test(tc, test_migrate_from_v1);
	tcase_add_test(tc, test_cli);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
