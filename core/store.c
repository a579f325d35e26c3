/* The panel side's SQLite store. See store.h for the contract (threads, errors, times).
 *
 * Every statement is prepared with bound parameters. Multi-statement operations run in
 * BEGIN IMMEDIATE transactions: in WAL mode a deferred transaction that later wants to
 * write can fail with SQLITE_BUSY at once, without the busy handler being consulted,
 * when another connection wrote in between; taking the write lock up front makes the
 * busy timeout apply. */
#include "store.h"
#include "uuid.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000
#define TOKEN_HASH_LEN 32

struct store {
	pthread_mutex_t lock;
	sqlite3 *db;
};

/* Schema migrations, in order: step i brings the database from user_version i to i + 1,
 * and ends by setting that version itself, so the number is part of the SQL text and
 * never formatted in. Applied steps are never edited; changes go in a new step. */
static const char *const migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE nodes ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  url TEXT NOT NULL,"
	"  token_id TEXT NOT NULL UNIQUE,"
	/* SHA-256 of the token: the remote API only needs to check it. */
	"  token_hash BLOB NOT NULL CHECK (length(token_hash) = 32)"
	");"
	"CREATE TABLE servers ("
	"  uuid TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),"
	"  short_id TEXT NOT NULL UNIQUE CHECK (short_id = substr(uuid, 1, 8)),"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id),"
	"  backup_limit INTEGER NOT NULL DEFAULT 0,"
	"  state TEXT"
	");"
	"CREATE INDEX servers_node ON servers(node_id);"
	"CREATE TABLE backups ("
	"  uuid TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),"
	"  server_uuid TEXT NOT NULL REFERENCES servers(uuid) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  adapter TEXT NOT NULL,"
	"  ignored TEXT NOT NULL DEFAULT '',"
	"  is_locked INTEGER NOT NULL DEFAULT 0 CHECK (is_locked IN (0, 1)),"
	"  state TEXT NOT NULL DEFAULT 'running'"
	"    CHECK (state IN ('running', 'completed', 'failed')),"
	"  is_successful INTEGER,"
	"  checksum TEXT,"
	"  sha256 TEXT,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  upload_id TEXT,"
	"  parts TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  completed_at INTEGER,"
	/* The three columns that describe progress must agree; the client API derives
	 * "in progress" from completed_at and success from is_successful. */
	"  CHECK ((state = 'running' AND is_successful IS NULL AND completed_at IS NULL)"
	"      OR (state = 'completed' AND is_successful = 1 AND completed_at IS NOT NULL)"
	"      OR (state = 'failed' AND is_successful = 0 AND completed_at IS NOT NULL))"
	");"
	"CREATE INDEX backups_server ON backups(server_uuid, created_at);"
	"CREATE INDEX backups_running ON backups(created_at) WHERE state = 'running';"
	"CREATE TABLE download_uses ("
	"  unique_id TEXT PRIMARY KEY NOT NULL,"
	"  used_at INTEGER NOT NULL"
	");"
	"CREATE INDEX download_uses_used_at ON download_uses(used_at);"
	"PRAGMA user_version = 1;",
	/* 2: client API keys (api_keys.c). Only the SHA-256 of a key's secret is kept;
	 * permissions are the API_KEY_PERM_* bit flags; revoked_at NULL while valid. */
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  identifier TEXT NOT NULL UNIQUE CHECK (length(identifier) = 16),"
	"  secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),"
	"  description TEXT NOT NULL DEFAULT '',"
	"  permissions INTEGER NOT NULL CHECK (permissions > 0 AND permissions < 32),"
	"  all_servers INTEGER NOT NULL CHECK (all_servers IN (0, 1)),"
	"  created_at INTEGER NOT NULL,"
	"  last_used_at INTEGER,"
	"  revoked_at INTEGER"
	");"
	"CREATE TABLE api_key_servers ("
	"  key_id INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,"
	"  server_uuid TEXT NOT NULL REFERENCES servers(uuid) ON DELETE CASCADE,"
	"  PRIMARY KEY (key_id, server_uuid)"
	") WITHOUT ROWID;"
	"CREATE INDEX api_key_servers_server ON api_key_servers(server_uuid);"
	"PRAGMA user_version = 2;",
	/* 3: the client API. The panel must present a node's token to dispatch to it
	 * (as Pterodactyl keeps daemon_token): the file is 0600, the token is never
	 * printed. failure_reason: why a backup failed, as the node reported it.
	 * backup_creations outlives deleted backups, because the creation throttle counts
	 * them (protocol §5, "Create", step 1). */
	"ALTER TABLE nodes ADD COLUMN token TEXT;"
	"ALTER TABLE backups ADD COLUMN failure_reason TEXT;"
	"CREATE TABLE backup_creations ("
	"  backup_uuid TEXT PRIMARY KEY NOT NULL,"
	"  server_uuid TEXT NOT NULL REFERENCES servers(uuid) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE INDEX backup_creations_server ON backup_creations(server_uuid, created_at);"
	"PRAGMA user_version = 3;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

/* ---- small helpers ---- */

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		switch (rc) {
		case SQLITE_CONSTRAINT_FOREIGNKEY:
			return -ENOENT;
		case SQLITE_CONSTRAINT_PRIMARYKEY:
		case SQLITE_CONSTRAINT_UNIQUE:
			return -EEXIST;
		default:
			return -EINVAL;
		}
	default:
		return -EIO;
	}
}

static void lock(struct store *st)
{
	pthread_mutex_lock(&st->lock);
}

static void unlock(struct store *st)
{
	pthread_mutex_unlock(&st->lock);
}

static int prep(struct store *st, const char *sql, sqlite3_stmt **ret)
{
	*ret = NULL;
	return map_rc(sqlite3_prepare_v2(st->db, sql, -1, ret, NULL));
}

/* NULL binds SQL NULL. The strings outlive the statement, which is finalized before
 * the calling function returns. */
static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (!v)
		return map_rc(sqlite3_bind_null(s, i));
	return map_rc(sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC));
}

static int bind_int(sqlite3_stmt *s, int i, int64_t v)
{
	return map_rc(sqlite3_bind_int64(s, i, v));
}

/* Runs a statement with no result rows; returns 0 or the mapped error. */
static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	return rc == SQLITE_DONE ? 0 : map_rc(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
}

static int exec(struct store *st, const char *sql)
{
	return map_rc(sqlite3_exec(st->db, sql, NULL, NULL, NULL));
}

static int begin_write(struct store *st)
{
	return exec(st, "BEGIN IMMEDIATE");
}

/* Commits when r is 0, rolls back otherwise; returns r or the commit's error. */
static int finish(struct store *st, int r)
{
	if (r == 0) {
		r = exec(st, "COMMIT");
		if (r == 0)
			return 0;
	}
	/* Also after a failed COMMIT: SQLite may keep the transaction open then. */
	if (!sqlite3_get_autocommit(st->db))
		exec(st, "ROLLBACK");
	return r;
}

static int dup_col(sqlite3_stmt *s, int i, char **out)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	*out = NULL;
	if (!t) {
		if (sqlite3_column_type(s, i) != SQLITE_NULL)
			return -ENOMEM;
		return 0;
	}
	*out = strdup((const char *)t);
	return *out ? 0 : -ENOMEM;
}

static int64_t col_int_or0(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, i);
}

/* Grows a row array by one element of size sz; 0 or -ENOMEM. */
static int grow(void **v, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*v, ncap * sz);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * sz, 0, (ncap - *cap) * sz);
	*v = p;
	*cap = ncap;
	return 0;
}

/* Steps s to its end, appending one zeroed element of sz bytes per row for from_row to
 * fill. An element is counted before it is filled, so on failure *v holds every row
 * touched, half-filled ones included, for the caller's list_free. */
static int collect_rows(sqlite3_stmt *s, size_t sz, int (*from_row)(sqlite3_stmt *, void *),
			void **v, size_t *n)
{
	size_t cap = 0;
	for (;;) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return map_rc(rc);
		int r = grow(v, *n, &cap, sz);
		if (r < 0)
			return r;
		r = from_row(s, (char *)*v + (*n)++ * sz);
		if (r < 0)
			return r;
	}
}

/* Runs sql, which takes one integer parameter or none, under the store's lock and
 * collects its rows as collect_rows does: on failure *v and *n hold what was filled, for
 * the caller's list_free. */
static int select_rows(struct store *st, const char *sql, int64_t arg, size_t sz,
		       int (*from_row)(sqlite3_stmt *, void *), void **v, size_t *n)
{
	*v = NULL;
	*n = 0;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st, sql, &s);
	if (r == 0 && sqlite3_bind_parameter_count(s) > 0)
		r = bind_int(s, 1, arg);
	if (r == 0)
		r = collect_rows(s, sz, from_row, v, n);
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

static bool norm_short_id(const char *in, char out[STORE_SHORT_ID_LEN + 1])
{
	if (!in || strlen(in) != STORE_SHORT_ID_LEN)
		return false;
	for (int i = 0; i < STORE_SHORT_ID_LEN; i++) {
		if (!isxdigit((unsigned char)in[i]))
			return false;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[STORE_SHORT_ID_LEN] = 0;
	return true;
}

static int token_hash(const char *token, unsigned char out[TOKEN_HASH_LEN])
{
	unsigned int len = 0;
	if (!EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) ||
	    len != TOKEN_HASH_LEN)
		return -EIO;
	return 0;
}

/* ---- open, migrate, close ---- */

static int user_version(struct store *st, int *ret)
{
	sqlite3_stmt *s;
	int r = prep(st, "PRAGMA user_version", &s);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*ret = sqlite3_column_int(s, 0);
		else
			r = rc == SQLITE_DONE ? -EIO : map_rc(rc);
	}
	sqlite3_finalize(s);
	return r;
}

static int migrate(struct store *st)
{
	int v = 0;
	/* A first look without the write lock, so that an up-to-date or newer database is
	 * neither locked nor changed. */
	int r = user_version(st, &v);
	if (r < 0)
		return r;
	if (v > SCHEMA_VERSION)
		return -EPROTO;
	if (v == SCHEMA_VERSION)
		return 0;

	r = begin_write(st);
	if (r < 0)
		return r;
	/* Again under the lock: another process may have migrated meanwhile. */
	r = user_version(st, &v);
	if (r == 0 && v > SCHEMA_VERSION)
		r = -EPROTO;
	for (; r == 0 && v < SCHEMA_VERSION; v++) {
		int now_v = -1;
		r = exec(st, migrations[v]);
		if (r == 0)
			r = user_version(st, &now_v);
		if (r == 0 && now_v != v + 1)
			r = -EIO; /* a step that forgot its own version number */
	}
	return finish(st, r);
}

static const char *db_path(const char *path)
{
	if (strncmp(path, "sqlite:", 7) == 0) {
		path += 7;
		/* "sqlite:///abs/path" as in URLs */
		if (strncmp(path, "///", 3) == 0)
			path += 2;
	}
	return path;
}

int store_open(const char *path, struct store **ret)
{
	*ret = NULL;
	if (!path)
		return -EINVAL;
	path = db_path(path);
	if (!*path)
		return -EINVAL;
	bool memory = strcmp(path, ":memory:") == 0;

	/* The database holds token hashes: create it private; SQLite gives its -wal and
	 * -shm files the same mode. Only a file that does not exist yet is touched: closing
	 * any descriptor of a database this process already has open would drop the
	 * process's POSIX locks on it, and another process could then delete the WAL. */
	if (!memory) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST)
			return -errno;
	}

	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		return -ENOMEM;
	}
	int rc = sqlite3_open_v2(path, &st->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_FULLMUTEX,
				 NULL);
	int r = map_rc(rc);
	if (r == 0 && !st->db)
		r = -ENOMEM;
	if (r == 0) {
		sqlite3_extended_result_codes(st->db, 1);
		sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
		r = exec(st, "PRAGMA foreign_keys = ON");
	}
	if (r == 0) {
		int v = 0;
		r = user_version(st, &v);
		if (r == 0 && v > SCHEMA_VERSION)
			r = -EPROTO; /* before WAL mode changes anything in the file */
	}
	if (r == 0)
		r = exec(st, "PRAGMA journal_mode = WAL");
	if (r == 0)
		r = migrate(st);
	if (r < 0) {
		store_close(st);
		return r;
	}
	*ret = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	/* sqlite3_close_v2 also works while a statement leaked; none should have. */
	sqlite3_close_v2(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int store_with_db(struct store *st, int (*fn)(struct sqlite3 *db, void *arg), void *arg)
{
	if (!st || !fn)
		return -EINVAL;
	lock(st);
	int r = begin_write(st);
	if (r == 0) {
		r = fn(st->db, arg);
		int f = finish(st, r < 0 ? r : 0);
		if (r >= 0 && f < 0)
			r = f;
	}
	unlock(st);
	return r;
}

int store_sqlite_errno(int sqlite_rc)
{
	return map_rc(sqlite_rc);
}

/* ---- nodes ---- */

int store_node_add(struct store *st, const char *name, const char *url, const char *token_id,
		   const char *token, int64_t *ret_id)
{
	unsigned char h[TOKEN_HASH_LEN];
	/* The remote API's bearer is "<token_id>.<token>", split at the first dot. */
	if (!name || !*name || !url || !token_id || !*token_id || strchr(token_id, '.') ||
	    !token || !*token)
		return -EINVAL;
	int r = token_hash(token, h);
	if (r < 0)
		return r;

	lock(st);
	sqlite3_stmt *s;
	r = prep(st,
		 "INSERT INTO nodes (name, url, token_id, token_hash, token) VALUES (?, ?, ?, ?, ?)",
		 &s);
	if (r == 0)
		r = bind_text(s, 1, name);
	if (r == 0)
		r = bind_text(s, 2, url);
	if (r == 0)
		r = bind_text(s, 3, token_id);
	if (r == 0)
		r = map_rc(sqlite3_bind_blob(s, 4, h, sizeof(h), SQLITE_STATIC));
	if (r == 0)
		r = bind_text(s, 5, token);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && ret_id)
		*ret_id = sqlite3_last_insert_rowid(st->db);
	sqlite3_finalize(s);
	unlock(st);
	OPENSSL_cleanse(h, sizeof(h));
	return r;
}

int store_node_update(struct store *st, const char *name, const char *url, const char *token_id,
		      const char *token)
{
	unsigned char h[TOKEN_HASH_LEN];
	if (!name || !url || !token_id || !*token_id || strchr(token_id, '.') || !token || !*token)
		return -EINVAL;
	int r = token_hash(token, h);
	if (r < 0)
		return r;
	lock(st);
	sqlite3_stmt *s;
	r = prep(st, "UPDATE nodes SET url = ?, token_id = ?, token_hash = ?, token = ? "
		     "WHERE name = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, url);
	if (r == 0)
		r = bind_text(s, 2, token_id);
	if (r == 0)
		r = map_rc(sqlite3_bind_blob(s, 3, h, sizeof(h), SQLITE_STATIC));
	if (r == 0)
		r = bind_text(s, 4, token);
	if (r == 0)
		r = bind_text(s, 5, name);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && sqlite3_changes(st->db) == 0)
		r = -ENOENT;
	sqlite3_finalize(s);
	unlock(st);
	OPENSSL_cleanse(h, sizeof(h));
	return r;
}

#define NODE_COLS "id, name, url, token_id, token"

static int node_from_row(sqlite3_stmt *s, struct store_node *n)
{
	n->id = sqlite3_column_int64(s, 0);
	int r = dup_col(s, 1, &n->name);
	if (r == 0)
		r = dup_col(s, 2, &n->url);
	if (r == 0)
		r = dup_col(s, 3, &n->token_id);
	if (r == 0)
		r = dup_col(s, 4, &n->token);
	return r;
}

static int node_row(sqlite3_stmt *s, void *p)
{
	return node_from_row(s, p);
}

static void node_clear(struct store_node *n)
{
	free(n->name);
	free(n->url);
	free(n->token_id);
	if (n->token)
		OPENSSL_cleanse(n->token, strlen(n->token));
	free(n->token);
}

void store_node_free(struct store_node *n)
{
	if (!n)
		return;
	node_clear(n);
	free(n);
}

void store_node_list_free(struct store_node *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		node_clear(&v[i]);
	free(v);
}

/* One node by the column the statement's single parameter matches. */
static int node_get(struct store *st, const char *sql, const char *text, int64_t id,
		    struct store_node **ret)
{
	struct store_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st, sql, &s);
	if (r == 0)
		r = text ? bind_text(s, 1, text) : bind_int(s, 1, id);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			r = node_from_row(s, n);
		else
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
	}
	sqlite3_finalize(s);
	unlock(st);
	if (r < 0) {
		store_node_free(n);
		return r;
	}
	*ret = n;
	return 0;
}

int store_node_get_by_token_id(struct store *st, const char *token_id, struct store_node **ret)
{
	*ret = NULL;
	if (!token_id)
		return -EINVAL;
	return node_get(st, "SELECT " NODE_COLS " FROM nodes WHERE token_id = ?", token_id, 0, ret);
}

int store_node_get(struct store *st, int64_t id, struct store_node **ret)
{
	*ret = NULL;
	return node_get(st, "SELECT " NODE_COLS " FROM nodes WHERE id = ?", NULL, id, ret);
}

int store_node_check_token(struct store *st, const char *token_id, const char *token,
			   int64_t *ret_node_id)
{
	unsigned char want[TOKEN_HASH_LEN] = { 0 }, got[TOKEN_HASH_LEN];
	int64_t id = 0;
	bool found = false;
	if (!token_id || !token)
		return -EACCES;
	int r = token_hash(token, got);
	if (r < 0)
		return r;

	lock(st);
	sqlite3_stmt *s;
	r = prep(st, "SELECT id, token_hash FROM nodes WHERE token_id = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, token_id);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 1) == TOKEN_HASH_LEN) {
			const void *b = sqlite3_column_blob(s, 1);
			if (b) {
				memcpy(want, b, TOKEN_HASH_LEN);
				id = sqlite3_column_int64(s, 0);
				found = true;
			}
		} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			r = map_rc(rc);
		}
	}
	sqlite3_finalize(s);
	unlock(st);

	/* Compared whether or not the id was found (against zeros then), so that a wrong
	 * token and an unknown id cost the same. */
	bool equal = CRYPTO_memcmp(want, got, TOKEN_HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	if (r < 0)
		return r;
	if (!found || !equal)
		return -EACCES;
	if (ret_node_id)
		*ret_node_id = id;
	return 0;
}

int store_node_list(struct store *st, struct store_node **ret, size_t *ret_n)
{
	int r = select_rows(st, "SELECT " NODE_COLS " FROM nodes ORDER BY id", 0, sizeof(**ret),
			    node_row, (void **)ret, ret_n);
	if (r < 0) {
		store_node_list_free(*ret, *ret_n);
		*ret = NULL;
		*ret_n = 0;
	}
	return r;
}

/* ---- servers ---- */

#define SERVER_COLS "uuid, short_id, node_id, backup_limit, state"

static int server_from_row(sqlite3_stmt *s, struct store_server *sv)
{
	const unsigned char *u = sqlite3_column_text(s, 0);
	const unsigned char *sh = sqlite3_column_text(s, 1);
	if (!u || !sh || strlen((const char *)u) != STORE_UUID_LEN ||
	    strlen((const char *)sh) != STORE_SHORT_ID_LEN)
		return -EIO;
	memcpy(sv->uuid, u, STORE_UUID_LEN + 1);
	memcpy(sv->short_id, sh, STORE_SHORT_ID_LEN + 1);
	sv->node_id = sqlite3_column_int64(s, 2);
	sv->backup_limit = sqlite3_column_int64(s, 3);
	return dup_col(s, 4, &sv->state);
}

static int server_row(sqlite3_stmt *s, void *p)
{
	return server_from_row(s, p);
}

void store_server_free(struct store_server *s)
{
	if (!s)
		return;
	free(s->state);
	free(s);
}

void store_server_list_free(struct store_server *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].state);
	free(v);
}

int store_server_add(struct store *st, const char *uuid, int64_t node_id, int64_t backup_limit)
{
	char u[STORE_UUID_LEN + 1], sh[STORE_SHORT_ID_LEN + 1];
	if (!uuid_normalize(uuid, u) || backup_limit < 0)
		return -EINVAL;
	memcpy(sh, u, STORE_SHORT_ID_LEN);
	sh[STORE_SHORT_ID_LEN] = 0;

	lock(st);
	sqlite3_stmt *s;
	int r = prep(st,
		     "INSERT INTO servers (uuid, short_id, node_id, backup_limit) "
		     "VALUES (?, ?, ?, ?)",
		     &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0)
		r = bind_text(s, 2, sh);
	if (r == 0)
		r = bind_int(s, 3, node_id);
	if (r == 0)
		r = bind_int(s, 4, backup_limit);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

int store_server_get(struct store *st, const char *id, struct store_server **ret)
{
	char key[STORE_UUID_LEN + 1];
	const char *sql;
	*ret = NULL;
	if (uuid_normalize(id, key))
		sql = "SELECT " SERVER_COLS " FROM servers WHERE uuid = ?";
	else if (norm_short_id(id, key))
		sql = "SELECT " SERVER_COLS " FROM servers WHERE short_id = ?";
	else
		return -ENOENT; /* no server can have such an id */

	struct store_server *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st, sql, &s);
	if (r == 0)
		r = bind_text(s, 1, key);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			r = server_from_row(s, sv);
		else
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
	}
	sqlite3_finalize(s);
	unlock(st);
	if (r < 0) {
		store_server_free(sv);
		return r;
	}
	*ret = sv;
	return 0;
}

int store_server_list(struct store *st, int64_t node_id, struct store_server **ret, size_t *ret_n)
{
	int r = select_rows(st,
			    "SELECT " SERVER_COLS " FROM servers WHERE ?1 <= 0 OR node_id = ?1 "
			    "ORDER BY uuid",
			    node_id, sizeof(**ret), server_row, (void **)ret, ret_n);
	if (r < 0) {
		store_server_list_free(*ret, *ret_n);
		*ret = NULL;
		*ret_n = 0;
	}
	return r;
}

/* 0 if a row with key exists in the query's table, -ENOENT if not. */
static int exists(struct store *st, const char *sql, const char *key)
{
	sqlite3_stmt *s;
	int r = prep(st, sql, &s);
	if (r == 0)
		r = bind_text(s, 1, key);
	if (r == 0) {
		int rc = sqlite3_step(s);
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
	}
	sqlite3_finalize(s);
	return r;
}

#define SERVER_EXISTS "SELECT 1 FROM servers WHERE uuid = ?"
#define BACKUP_EXISTS "SELECT 1 FROM backups WHERE uuid = ?"

int store_server_set_state(struct store *st, const char *uuid, const char *expect_current,
			   const char *state)
{
	char u[STORE_UUID_LEN + 1];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	bool check = expect_current != NULL;
	if (check && !*expect_current)
		expect_current = NULL;

	lock(st);
	int r = begin_write(st);
	sqlite3_stmt *s = NULL;
	if (r == 0)
		r = prep(st,
			 "UPDATE servers SET state = ?1 "
			 "WHERE uuid = ?2 AND (?3 = 0 OR state IS ?4)",
			 &s);
	if (r == 0)
		r = bind_text(s, 1, state);
	if (r == 0)
		r = bind_text(s, 2, u);
	if (r == 0)
		r = bind_int(s, 3, check);
	if (r == 0)
		r = bind_text(s, 4, expect_current);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && sqlite3_changes(st->db) == 0) {
		r = exists(st, SERVER_EXISTS, u);
		if (r == 0)
			r = -EEXIST; /* exists, but in another state than expected */
	}
	sqlite3_finalize(s);
	r = finish(st, r);
	unlock(st);
	return r;
}

int store_servers_reset_state(struct store *st, int64_t node_id)
{
	lock(st);
	sqlite3_stmt *s;
	/* As the panel does on a node's boot: the node forgot these jobs. Other states
	 * (suspension, ...) are not the node's to clear. */
	int r = prep(st,
		     "UPDATE servers SET state = NULL WHERE node_id = ? "
		     "AND state IN ('installing', 'restoring_backup')",
		     &s);
	if (r == 0)
		r = bind_int(s, 1, node_id);
	if (r == 0)
		r = step_done(s);
	if (r == 0)
		r = sqlite3_changes(st->db);
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

/* ---- backups ---- */

#define BACKUP_COLS                                                                            \
	"uuid, server_uuid, name, adapter, ignored, is_locked, state, is_successful, "         \
	"checksum, sha256, bytes, upload_id, parts, created_at, completed_at, failure_reason"

static int backup_from_row(sqlite3_stmt *s, struct store_backup *b)
{
	int r = dup_col(s, 0, &b->uuid);
	if (r == 0)
		r = dup_col(s, 1, &b->server_uuid);
	if (r == 0)
		r = dup_col(s, 2, &b->name);
	if (r == 0)
		r = dup_col(s, 3, &b->adapter);
	if (r == 0)
		r = dup_col(s, 4, &b->ignored);
	if (r < 0)
		return r;
	b->is_locked = sqlite3_column_int(s, 5) != 0;
	const char *state = (const char *)sqlite3_column_text(s, 6);
	if (!state)
		return -EIO;
	if (strcmp(state, "completed") == 0)
		b->state = STORE_BACKUP_COMPLETED;
	else if (strcmp(state, "failed") == 0)
		b->state = STORE_BACKUP_FAILED;
	else
		b->state = STORE_BACKUP_RUNNING;
	b->is_successful = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1
								    : sqlite3_column_int(s, 7) != 0;
	r = dup_col(s, 8, &b->checksum);
	if (r == 0)
		r = dup_col(s, 9, &b->sha256);
	b->bytes = col_int_or0(s, 10);
	if (r == 0)
		r = dup_col(s, 11, &b->upload_id);
	if (r == 0)
		r = dup_col(s, 12, &b->parts);
	b->created_at = col_int_or0(s, 13);
	b->completed_at = col_int_or0(s, 14);
	if (r == 0)
		r = dup_col(s, 15, &b->failure_reason);
	return r;
}

static int backup_row(sqlite3_stmt *s, void *p)
{
	return backup_from_row(s, p);
}

static void backup_clear(struct store_backup *b)
{
	free(b->uuid);
	free(b->server_uuid);
	free(b->name);
	free(b->adapter);
	free(b->ignored);
	free(b->checksum);
	free(b->sha256);
	free(b->upload_id);
	free(b->parts);
	free(b->failure_reason);
}

void store_backup_free(struct store_backup *b)
{
	if (!b)
		return;
	backup_clear(b);
	free(b);
}

void store_backup_list_free(struct store_backup *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		backup_clear(&v[i]);
	free(v);
}

/* The INSERTs of a new backup, inside the caller's lock (and transaction). */
static int insert_backup(struct store *st, const char *u, const char *su,
			 const struct store_backup *b)
{
	sqlite3_stmt *s;
	int r = prep(st,
		     "INSERT INTO backups (uuid, server_uuid, name, adapter, ignored, is_locked, "
		     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		     &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0)
		r = bind_text(s, 2, su);
	if (r == 0)
		r = bind_text(s, 3, b->name);
	if (r == 0)
		r = bind_text(s, 4, b->adapter);
	if (r == 0)
		r = bind_text(s, 5, b->ignored ? b->ignored : "");
	if (r == 0)
		r = bind_int(s, 6, b->is_locked);
	if (r == 0)
		r = bind_int(s, 7, b->created_at);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	s = NULL;
	if (r == 0)
		r = prep(st,
			 "INSERT INTO backup_creations (backup_uuid, server_uuid, created_at) "
			 "VALUES (?, ?, ?)",
			 &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0)
		r = bind_text(s, 2, su);
	if (r == 0)
		r = bind_int(s, 3, b->created_at);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	return r;
}

int store_backup_create(struct store *st, const struct store_backup *b)
{
	char u[STORE_UUID_LEN + 1], su[STORE_UUID_LEN + 1];
	if (!b || !uuid_normalize(b->uuid, u) || !b->name || !b->adapter)
		return -EINVAL;
	if (!uuid_normalize(b->server_uuid, su))
		return -ENOENT;
	lock(st);
	int r = begin_write(st);
	if (r == 0)
		r = insert_backup(st, u, su, b);
	r = finish(st, r);
	unlock(st);
	return r;
}

/* One integer from a statement with a single text parameter; -ENOENT without a row. */
static int query_int(struct store *st, const char *sql, const char *text, int64_t arg2,
		     int64_t *ret)
{
	sqlite3_stmt *s;
	int r = prep(st, sql, &s);
	if (r == 0)
		r = bind_text(s, 1, text);
	if (r == 0 && sqlite3_bind_parameter_count(s) >= 2)
		r = bind_int(s, 2, arg2);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*ret = col_int_or0(s, 0);
		else
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
	}
	sqlite3_finalize(s);
	return r;
}

/* The checks of a client-API create, in the reference panel's order, inside the
 * transaction that inserts: a refusal and an insert cannot race with another request
 * for the same server. */
static int create_checks(struct store *st, const char *su, struct store_create_check *c)
{
	sqlite3_stmt *s;
	int r = prep(st, "SELECT backup_limit, state FROM servers WHERE uuid = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, su);
	char *state = NULL;
	int64_t limit = 0;
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			limit = sqlite3_column_int64(s, 0);
			r = dup_col(s, 1, &state);
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
		}
	}
	sqlite3_finalize(s);
	if (r < 0)
		return r;
	bool busy_state = state != NULL;
	free(state);
	if (busy_state) {
		c->refusal = STORE_CREATE_SERVER_BUSY;
		return -ECANCELED;
	}
	if (c->throttle_limit > 0 && c->throttle_period > 0) {
		/* Creations in the window that did not fail, deleted ones included. The
		 * window frees up when the oldest of the newest `limit` leaves it. */
		r = prep(st,
			 "SELECT c.created_at FROM backup_creations c "
			 "LEFT JOIN backups b ON b.uuid = c.backup_uuid "
			 "WHERE c.server_uuid = ? AND c.created_at > ? "
			 "AND (b.state IS NULL OR b.state <> 'failed') "
			 "ORDER BY c.created_at DESC LIMIT 1 OFFSET ?",
			 &s);
		if (r == 0)
			r = bind_text(s, 1, su);
		if (r == 0)
			r = bind_int(s, 2, c->now - c->throttle_period);
		if (r == 0)
			r = bind_int(s, 3, c->throttle_limit - 1);
		if (r == 0) {
			int rc = sqlite3_step(s);
			if (rc == SQLITE_ROW) {
				int64_t at = sqlite3_column_int64(s, 0);
				c->retry_after = at + c->throttle_period - c->now;
				if (c->retry_after < 1)
					c->retry_after = 1;
				c->refusal = STORE_CREATE_THROTTLED;
				r = -ECANCELED;
			} else if (rc != SQLITE_DONE) {
				r = map_rc(rc);
			}
		}
		sqlite3_finalize(s);
		if (r < 0)
			return r;
	}
	int64_t n = 0;
	r = query_int(st, "SELECT count(*) FROM backups WHERE server_uuid = ? AND state <> 'failed'",
		      su, 0, &n);
	if (r < 0)
		return r;
	c->limit = limit;
	if (limit <= 0 || n >= limit) {
		c->refusal = STORE_CREATE_LIMIT;
		return -ECANCELED;
	}
	r = query_int(st, "SELECT count(*) FROM backups WHERE server_uuid = ? AND state = 'running'",
		      su, 0, &n);
	if (r < 0)
		return r;
	if (n > 0) {
		c->refusal = STORE_CREATE_RUNNING;
		return -ECANCELED;
	}
	return 0;
}

int store_backup_create_checked(struct store *st, const struct store_backup *b,
				struct store_create_check *c)
{
	char u[STORE_UUID_LEN + 1], su[STORE_UUID_LEN + 1];
	if (!b || !c || !uuid_normalize(b->uuid, u) || !b->name || !b->adapter)
		return -EINVAL;
	c->refusal = STORE_CREATE_OK;
	c->retry_after = 0;
	c->limit = 0;
	if (!uuid_normalize(b->server_uuid, su))
		return -ENOENT;
	lock(st);
	int r = begin_write(st);
	if (r == 0)
		r = create_checks(st, su, c);
	if (r == 0)
		r = insert_backup(st, u, su, b);
	r = finish(st, r);
	unlock(st);
	return r;
}

int store_backup_discard(struct store *st, const char *uuid)
{
	char u[STORE_UUID_LEN + 1];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	lock(st);
	int r = begin_write(st);
	const char *const sql[] = { "DELETE FROM backups WHERE uuid = ?",
				    "DELETE FROM backup_creations WHERE backup_uuid = ?" };
	for (size_t i = 0; i < 2 && r == 0; i++) {
		sqlite3_stmt *s;
		r = prep(st, sql[i], &s);
		if (r == 0)
			r = bind_text(s, 1, u);
		if (r == 0)
			r = step_done(s);
		sqlite3_finalize(s);
	}
	r = finish(st, r);
	unlock(st);
	return r;
}

int store_backup_get(struct store *st, const char *uuid, struct store_backup **ret)
{
	char u[STORE_UUID_LEN + 1];
	*ret = NULL;
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	struct store_backup *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st, "SELECT " BACKUP_COLS " FROM backups WHERE uuid = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			r = backup_from_row(s, b);
		else
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
	}
	sqlite3_finalize(s);
	unlock(st);
	if (r < 0) {
		store_backup_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int store_backup_list_for_server(struct store *st, const char *server_uuid, size_t limit,
				 size_t offset, struct store_backup **ret, size_t *ret_n)
{
	char su[STORE_UUID_LEN + 1];
	struct store_backup *v = NULL;
	size_t n = 0;
	*ret = NULL;
	*ret_n = 0;
	if (!uuid_normalize(server_uuid, su))
		return -ENOENT;
	/* SQLite: a negative LIMIT means none. */
	int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
	int64_t off = offset > INT64_MAX ? INT64_MAX : (int64_t)offset;

	lock(st);
	/* One read transaction, so that "the server exists" and the rows agree. */
	int r = exec(st, "BEGIN");
	if (r == 0)
		r = exists(st, SERVER_EXISTS, su);
	sqlite3_stmt *s = NULL;
	if (r == 0)
		r = prep(st,
			 "SELECT " BACKUP_COLS " FROM backups WHERE server_uuid = ? "
			 "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
			 &s);
	if (r == 0)
		r = bind_text(s, 1, su);
	if (r == 0)
		r = bind_int(s, 2, lim);
	if (r == 0)
		r = bind_int(s, 3, off);
	if (r == 0)
		r = collect_rows(s, sizeof(*v), backup_row, (void **)&v, &n);
	sqlite3_finalize(s);
	r = finish(st, r);
	unlock(st);
	if (r < 0) {
		store_backup_list_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int count_for_server(struct store *st, const char *server_uuid, const char *sql,
			    int64_t *ret)
{
	char su[STORE_UUID_LEN + 1];
	*ret = 0;
	if (!uuid_normalize(server_uuid, su))
		return -ENOENT;
	lock(st);
	int r = exec(st, "BEGIN");
	if (r == 0)
		r = exists(st, SERVER_EXISTS, su);
	sqlite3_stmt *s = NULL;
	if (r == 0)
		r = prep(st, sql, &s);
	if (r == 0)
		r = bind_text(s, 1, su);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*ret = sqlite3_column_int64(s, 0);
		else
			r = rc == SQLITE_DONE ? -EIO : map_rc(rc);
	}
	sqlite3_finalize(s);
	r = finish(st, r);
	unlock(st);
	return r;
}

int store_backup_total_for_server(struct store *st, const char *server_uuid, int64_t *ret)
{
	return count_for_server(st, server_uuid,
				"SELECT count(*) FROM backups WHERE server_uuid = ?", ret);
}

int store_backup_count_for_server(struct store *st, const char *server_uuid, int64_t *ret)
{
	return count_for_server(
		st, server_uuid,
		"SELECT count(*) FROM backups WHERE server_uuid = ? AND state <> 'failed'", ret);
}

int store_backup_set_locked(struct store *st, const char *uuid, bool locked)
{
	char u[STORE_UUID_LEN + 1];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st, "UPDATE backups SET is_locked = ? WHERE uuid = ?", &s);
	if (r == 0)
		r = bind_int(s, 1, locked);
	if (r == 0)
		r = bind_text(s, 2, u);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && sqlite3_changes(st->db) == 0)
		r = -ENOENT;
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

int store_backup_toggle_locked(struct store *st, const char *uuid, bool *ret_locked)
{
	char u[STORE_UUID_LEN + 1];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	lock(st);
	sqlite3_stmt *s;
	int r = prep(st,
		     "UPDATE backups SET is_locked = 1 - is_locked WHERE uuid = ? "
		     "RETURNING is_locked",
		     &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			if (ret_locked)
				*ret_locked = sqlite3_column_int(s, 0) != 0;
			/* RETURNING rows come before the change is final: run it out. */
			r = step_done(s);
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
		}
	}
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

/* Within a transaction: -ENOENT, or the backup's state column (copied to out) and
 * lock flag. */
static int backup_state(struct store *st, const char *u, char out[16], bool *locked)
{
	sqlite3_stmt *s;
	int r = prep(st, "SELECT state, is_locked FROM backups WHERE uuid = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(s, 0);
			if (!t || strlen(t) >= 16) {
				r = -EIO;
			} else {
				strcpy(out, t);
				*locked = sqlite3_column_int(s, 1) != 0;
			}
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : map_rc(rc);
		}
	}
	sqlite3_finalize(s);
	return r;
}

int store_backup_set_upload_id(struct store *st, const char *uuid, const char *upload_id)
{
	char u[STORE_UUID_LEN + 1];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	lock(st);
	int r = begin_write(st);
	sqlite3_stmt *s = NULL;
	if (r == 0)
		r = prep(st,
			 "UPDATE backups SET upload_id = ? "
			 "WHERE uuid = ? AND state = 'running'",
			 &s);
	if (r == 0)
		r = bind_text(s, 1, upload_id);
	if (r == 0)
		r = bind_text(s, 2, u);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && sqlite3_changes(st->db) == 0) {
		r = exists(st, BACKUP_EXISTS, u);
		if (r == 0)
			r = -EALREADY;
	}
	sqlite3_finalize(s);
	r = finish(st, r);
	unlock(st);
	return r;
}

/* The parts list is kept to be handed back to S3 later: refuse anything that is not a
 * JSON array now rather than fail then. */
static bool parts_ok(const char *parts)
{
	json_t *j = json_loads(parts, JSON_REJECT_DUPLICATES, NULL);
	bool ok = j && json_is_array(j);
	json_decref(j);
	return ok;
}

/* Both reports, under the store lock. */
static int mark(struct store *st, const char *uuid, bool successful, const char *checksum,
		const char *sha256, int64_t bytes, const char *parts, const char *reason,
		int64_t now)
{
	char u[STORE_UUID_LEN + 1], state[16];
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	if (bytes < 0)
		return -EINVAL;
	if (successful && parts && !parts_ok(parts))
		return -EINVAL;
	int r = begin_write(st);
	if (r < 0)
		return r;
	/* Checked and changed in one transaction: two reports racing for the same backup
	 * cannot both see "not completed yet". */
	bool locked;
	r = backup_state(st, u, state, &locked);
	if (r == 0 && strcmp(state, "completed") == 0)
		r = -EALREADY;
	sqlite3_stmt *s = NULL;
	if (r == 0 && successful)
		r = prep(st,
			 "UPDATE backups SET state = 'completed', is_successful = 1, checksum = ?, "
			 "sha256 = ?, bytes = ?, parts = ?, completed_at = ?, failure_reason = ? "
			 "WHERE uuid = ?",
			 &s);
	else if (r == 0)
		/* As the panel does: a failed backup holds nothing to keep locked. */
		r = prep(st,
			 "UPDATE backups SET state = 'failed', is_successful = 0, is_locked = 0, "
			 "checksum = ?, sha256 = ?, bytes = ?, parts = ?, completed_at = ?, "
			 "failure_reason = ? WHERE uuid = ?",
			 &s);
	/* The reason goes in with the state, so no reader sees a failure without it. */
	if (!successful) {
		checksum = sha256 = parts = NULL;
		bytes = 0;
	} else {
		reason = NULL;
	}
	if (r == 0)
		r = bind_text(s, 1, checksum && *checksum ? checksum : NULL);
	if (r == 0)
		r = bind_text(s, 2, sha256 && *sha256 ? sha256 : NULL);
	if (r == 0)
		r = bind_int(s, 3, bytes);
	if (r == 0)
		r = bind_text(s, 4, parts);
	if (r == 0)
		r = bind_int(s, 5, now);
	if (r == 0)
		r = bind_text(s, 6, reason && *reason ? reason : NULL);
	if (r == 0)
		r = bind_text(s, 7, u);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	return finish(st, r);
}

int store_backup_mark_completed(struct store *st, const char *uuid, bool successful,
				const char *checksum, const char *sha256, int64_t bytes,
				const char *parts, const char *failure_reason, int64_t now)
{
	lock(st);
	int r = mark(st, uuid, successful, checksum, sha256, bytes, parts, failure_reason, now);
	unlock(st);
	return r;
}

int store_backup_mark_failed(struct store *st, const char *uuid, int64_t now)
{
	lock(st);
	int r = mark(st, uuid, false, NULL, NULL, 0, NULL, NULL, now);
	unlock(st);
	return r;
}

int store_backup_delete(struct store *st, const char *uuid, bool respect_lock)
{
	char u[STORE_UUID_LEN + 1], state[16];
	bool locked = false;
	if (!uuid_normalize(uuid, u))
		return -ENOENT;
	lock(st);
	int r = begin_write(st);
	if (r == 0)
		r = backup_state(st, u, state, &locked);
	/* Pterodactyl's rule: only a locked backup that completed successfully is kept. */
	if (r == 0 && respect_lock && locked && strcmp(state, "completed") == 0)
		r = -EPERM;
	sqlite3_stmt *s = NULL;
	if (r == 0)
		r = prep(st, "DELETE FROM backups WHERE uuid = ?", &s);
	if (r == 0)
		r = bind_text(s, 1, u);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	r = finish(st, r);
	unlock(st);
	return r;
}

/* now - older_than, or -EINVAL when older_than is negative or the subtraction
 * overflows. */
static int cutoff(int64_t older_than, int64_t now, int64_t *ret)
{
	if (older_than < 0 || __builtin_sub_overflow(now, older_than, ret))
		return -EINVAL;
	return 0;
}

int store_backups_fail_stuck(struct store *st, int64_t older_than, int64_t now)
{
	int64_t before;
	int r = cutoff(older_than, now, &before);
	if (r < 0)
		return r;
	lock(st);
	sqlite3_stmt *s;
	r = prep(st,
		 "UPDATE backups SET state = 'failed', is_successful = 0, is_locked = 0, "
		 "checksum = NULL, sha256 = NULL, bytes = 0, completed_at = ? "
		 "WHERE state = 'running' AND created_at < ?",
		 &s);
	if (r == 0)
		r = bind_int(s, 1, now);
	if (r == 0)
		r = bind_int(s, 2, before);
	if (r == 0)
		r = step_done(s);
	if (r == 0) {
		int64_t n = sqlite3_changes64(st->db);
		r = n > INT_MAX ? INT_MAX : (int)n;
	}
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

int store_backups_expired(struct store *st, int64_t older_than, int64_t now,
			  struct store_backup **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	int64_t before;
	int r = cutoff(older_than, now, &before);
	if (r == 0)
		r = select_rows(st,
				"SELECT " BACKUP_COLS " FROM backups WHERE is_locked = 0 AND "
				"state <> 'running' AND created_at < ? ORDER BY created_at",
				before, sizeof(**ret), backup_row, (void **)ret, ret_n);
	if (r < 0) {
		store_backup_list_free(*ret, *ret_n);
		*ret = NULL;
		*ret_n = 0;
	}
	return r;
}

int store_backup_creations_prune(struct store *st, int64_t older_than, int64_t now)
{
	int64_t before;
	int r = cutoff(older_than, now, &before);
	if (r < 0)
		return r;
	lock(st);
	sqlite3_stmt *s;
	r = prep(st,
		 "DELETE FROM backup_creations WHERE created_at < ? AND backup_uuid NOT IN "
		 "(SELECT uuid FROM backups)",
		 &s);
	if (r == 0)
		r = bind_int(s, 1, before);
	if (r == 0)
		r = step_done(s);
	if (r == 0) {
		int64_t k = sqlite3_changes64(st->db);
		r = k > INT_MAX ? INT_MAX : (int)k;
	}
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

/* ---- one-time download ids ---- */

int store_download_use_once(struct store *st, const char *unique_id, int64_t now)
{
	if (!unique_id || !*unique_id)
		return -EINVAL;
	lock(st);
	sqlite3_stmt *s;
	/* The primary key makes the check and the record one atomic step, also across
	 * processes sharing the file. */
	int r = prep(st, "INSERT INTO download_uses (unique_id, used_at) VALUES (?, ?)", &s);
	if (r == 0)
		r = bind_text(s, 1, unique_id);
	if (r == 0)
		r = bind_int(s, 2, now);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	unlock(st);
	return r;
}

int store_download_uses_prune(struct store *st, int64_t older_than, int64_t now)
{
	int64_t before;
	int r = cutoff(older_than, now, &before);
	if (r < 0)
		return r;
	lock(st);
	sqlite3_stmt *s;
	r = prep(st, "DELETE FROM download_uses WHERE used_at < ?", &s);
	if (r == 0)
		r = bind_int(s, 1, before);
	if (r == 0)
		r = step_done(s);
	if (r == 0) {
		int64_t n = sqlite3_changes64(st->db);
		r = n > INT_MAX ? INT_MAX : (int)n;
	}
	sqlite3_finalize(s);
	unlock(st);
	return r;
}
