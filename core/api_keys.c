/* Client API keys. See api_keys.h for the contract; the tables are created by the
 * store's migration step 2 (store.c), and every statement here runs through
 * store_with_db, under the store's lock and inside one transaction. */
#include "api_keys.h"
#include "uuid.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define HASH_LEN 32
#define CREATE_ATTEMPTS 4

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static const struct {
	unsigned bit;
	const char *name;
} perm_names[] = {
	{ API_KEY_PERM_BACKUP_READ, "backup.read" },
	{ API_KEY_PERM_BACKUP_CREATE, "backup.create" },
	{ API_KEY_PERM_BACKUP_DOWNLOAD, "backup.download" },
	{ API_KEY_PERM_BACKUP_DELETE, "backup.delete" },
	{ API_KEY_PERM_BACKUP_RESTORE, "backup.restore" },
};

#define N_PERMS (sizeof(perm_names) / sizeof(perm_names[0]))

/* ---- permissions ---- */

const char *api_key_perm_name(unsigned perm)
{
	for (size_t i = 0; i < N_PERMS; i++)
		if (perm_names[i].bit == perm)
			return perm_names[i].name;
	return NULL;
}

int api_key_perms_parse(const char *s, unsigned *ret)
{
	unsigned mask = 0;
	if (!s || !ret)
		return -EINVAL;
	*ret = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = strcspn(s, ",");
		size_t trimmed = len;
		while (trimmed > 0 && (s[trimmed - 1] == ' ' || s[trimmed - 1] == '\t'))
			trimmed--;
		if (trimmed == 0)
			return -EINVAL;
		unsigned bit = 0;
		for (size_t i = 0; i < N_PERMS; i++)
			if (strlen(perm_names[i].name) == trimmed &&
			    memcmp(perm_names[i].name, s, trimmed) == 0)
				bit = perm_names[i].bit;
		if (!bit)
			return -EINVAL;
		mask |= bit;
		if (!s[len])
			break;
		s += len + 1;
	}
	*ret = mask;
	return 0;
}

int api_key_perms_format(unsigned perms, char *buf, size_t len)
{
	if ((perms & ~API_KEY_PERM_ALL) || !buf)
		return -EINVAL;
	size_t n = 0;
	for (size_t i = 0; i < N_PERMS; i++) {
		if (!(perms & perm_names[i].bit))
			continue;
		size_t l = strlen(perm_names[i].name);
		if (n + (n ? 1 : 0) + l + 1 > len)
			return -ENOSPC;
		if (n)
			buf[n++] = ',';
		memcpy(buf + n, perm_names[i].name, l);
		n += l;
	}
	if (len == 0)
		return -ENOSPC;
	buf[n] = 0;
	return (int)n;
}

/* ---- small helpers ---- */

static bool is_alnum_ascii(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* n characters drawn uniformly from the alphabet. */
static int random_chars(char *out, size_t n)
{
	unsigned char buf[64];
	size_t have = 0, used = 0;
	while (n > 0) {
		if (used == have) {
			ssize_t got = getrandom(buf, sizeof(buf), 0);
			if (got < 0) {
				int e = errno;
				if (e == EINTR)
					continue;
				OPENSSL_cleanse(buf, sizeof(buf));
				return -e;
			}
			have = (size_t)got;
			used = 0;
			continue;
		}
		unsigned char b = buf[used++];
		/* 248 = 4 * 62: rejecting the rest keeps every character equally likely. */
		if (b >= 248)
			continue;
		*out++ = alphabet[b % 62];
		n--;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static int sha256(const char *s, size_t len, unsigned char out[HASH_LEN])
{
	unsigned int l = 0;
	if (!EVP_Digest(s, len, out, &l, EVP_sha256(), NULL) || l != HASH_LEN)
		return -EIO;
	return 0;
}

static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	return store_sqlite_errno(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	*ret = NULL;
	return store_sqlite_errno(sqlite3_prepare_v2(db, sql, -1, ret, NULL));
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return store_sqlite_errno(sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC));
}

static int bind_int(sqlite3_stmt *s, int i, int64_t v)
{
	return store_sqlite_errno(sqlite3_bind_int64(s, i, v));
}

static void key_clear(struct api_key *k)
{
	free(k->description);
	for (size_t i = 0; k->servers && i < k->n_servers; i++)
		free(k->servers[i]);
	free(k->servers);
}

void api_key_free(struct api_key *key)
{
	if (!key)
		return;
	key_clear(key);
	free(key);
}

void api_key_list_free(struct api_key *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		key_clear(&v[i]);
	free(v);
}

void api_key_plaintext_free(char *plaintext)
{
	if (!plaintext)
		return;
	OPENSSL_cleanse(plaintext, strlen(plaintext));
	free(plaintext);
}

/* ---- create ---- */

struct create_args {
	const char *identifier;
	const unsigned char *hash;
	const char *description;
	unsigned perms;
	const char *const *servers; /* normalized */
	size_t n;
	bool all_servers;
	int64_t now;
	int64_t id;
};

static int create_tx(sqlite3 *db, void *arg)
{
	struct create_args *a = arg;
	sqlite3_stmt *s;
	int r = prep(db,
		     "INSERT INTO api_keys (identifier, secret_hash, description, permissions, "
		     "all_servers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		     &s);
	if (r == 0)
		r = bind_text(s, 1, a->identifier);
	if (r == 0)
		r = store_sqlite_errno(sqlite3_bind_blob(s, 2, a->hash, HASH_LEN, SQLITE_STATIC));
	if (r == 0)
		r = bind_text(s, 3, a->description);
	if (r == 0)
		r = bind_int(s, 4, a->perms);
	if (r == 0)
		r = bind_int(s, 5, a->all_servers);
	if (r == 0)
		r = bind_int(s, 6, a->now);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	if (r < 0)
		return r;
	a->id = sqlite3_last_insert_rowid(db);

	s = NULL;
	r = prep(db, "INSERT OR IGNORE INTO api_key_servers (key_id, server_uuid) VALUES (?, ?)",
		 &s);
	for (size_t i = 0; r == 0 && i < a->n; i++) {
		r = bind_int(s, 1, a->id);
		if (r == 0)
			r = bind_text(s, 2, a->servers[i]);
		if (r == 0)
			r = step_done(s);
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return r;
}

static bool description_ok(const char *d)
{
	size_t len = strlen(d);
	if (len > API_KEY_DESCRIPTION_MAX)
		return false;
	for (const unsigned char *c = (const unsigned char *)d; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

int api_key_create(struct store *st, const char *description, unsigned perms,
		   const char *const *servers, size_t n, bool all_servers, int64_t now,
		   char **ret_plaintext_once, int64_t *ret_id)
{
	if (!ret_plaintext_once)
		return -EINVAL;
	*ret_plaintext_once = NULL;
	if (!st || perms == 0 || (perms & ~API_KEY_PERM_ALL))
		return -EINVAL;
	if (all_servers ? n != 0 : (n == 0 || !servers))
		return -EINVAL;
	if (!description)
		description = "";
	if (!description_ok(description))
		return -EINVAL;

	char (*norm)[STORE_UUID_LEN + 1] = NULL;
	const char **ptrs = NULL;
	if (n > 0) {
		norm = calloc(n, sizeof(*norm));
		ptrs = calloc(n, sizeof(*ptrs));
		if (!norm || !ptrs) {
			free(norm);
			free(ptrs);
			return -ENOMEM;
		}
	}
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!uuid_normalize(servers[i], norm[i]))
			r = -EINVAL;
		ptrs[i] = norm[i];
	}
	char *key = NULL;
	if (r == 0) {
		key = malloc(API_KEY_LEN + 1);
		if (!key)
			r = -ENOMEM;
	}
	unsigned char hash[HASH_LEN];
	struct create_args a = {
		.hash = hash, .description = description, .perms = perms,
		.servers = ptrs, .n = n, .all_servers = all_servers, .now = now,
	};
	char identifier[API_KEY_IDENTIFIER_LEN + 1];
	/* A new identifier on the (unlikely) clash with an existing one. */
	for (int attempt = 0; r == 0 && attempt < CREATE_ATTEMPTS; attempt++) {
		memcpy(key, API_KEY_PREFIX, API_KEY_PREFIX_LEN);
		r = random_chars(key + API_KEY_PREFIX_LEN, API_KEY_LEN - API_KEY_PREFIX_LEN);
		if (r < 0)
			break;
		key[API_KEY_LEN] = 0;
		memcpy(identifier, key, API_KEY_IDENTIFIER_LEN);
		identifier[API_KEY_IDENTIFIER_LEN] = 0;
		r = sha256(key + API_KEY_IDENTIFIER_LEN, API_KEY_SECRET_LEN, hash);
		if (r < 0)
			break;
		a.identifier = identifier;
		r = store_with_db(st, create_tx, &a);
		if (r != -EEXIST)
			break;
		/* The server rows use INSERT OR IGNORE: -EEXIST is the identifier. */
		r = attempt + 1 < CREATE_ATTEMPTS ? 0 : -EEXIST;
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	free(norm);
	free(ptrs);
	if (r < 0) {
		api_key_plaintext_free(key);
		return r;
	}
	*ret_plaintext_once = key;
	if (ret_id)
		*ret_id = a.id;
	return 0;
}

/* ---- reading rows ---- */

#define KEY_COLS                                                                               \
	"id, identifier, description, permissions, all_servers, created_at, "                  \
	"coalesce(last_used_at, 0), revoked_at"

static int key_from_row(sqlite3_stmt *s, struct api_key *k)
{
	k->id = sqlite3_column_int64(s, 0);
	const char *ident = (const char *)sqlite3_column_text(s, 1);
	if (!ident || strlen(ident) != API_KEY_IDENTIFIER_LEN)
		return -EIO;
	memcpy(k->identifier, ident, API_KEY_IDENTIFIER_LEN + 1);
	const char *d = (const char *)sqlite3_column_text(s, 2);
	k->description = strdup(d ? d : "");
	if (!k->description)
		return -ENOMEM;
	k->permissions = (unsigned)sqlite3_column_int64(s, 3) & API_KEY_PERM_ALL;
	k->all_servers = sqlite3_column_int(s, 4) != 0;
	k->created_at = sqlite3_column_int64(s, 5);
	k->last_used_at = sqlite3_column_int64(s, 6);
	k->revoked = sqlite3_column_type(s, 7) != SQLITE_NULL;
	k->revoked_at = k->revoked ? sqlite3_column_int64(s, 7) : 0;
	return 0;
}

/* Fills k->servers from api_key_servers, in uuid order. */
static int load_servers(sqlite3 *db, struct api_key *k)
{
	sqlite3_stmt *s;
	size_t cap = 0;
	int r = prep(db, "SELECT server_uuid FROM api_key_servers WHERE key_id = ? "
			 "ORDER BY server_uuid",
		     &s);
	if (r == 0)
		r = bind_int(s, 1, k->id);
	while (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = store_sqlite_errno(rc);
			break;
		}
		if (k->n_servers == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			char **p = realloc(k->servers, ncap * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			k->servers = p;
			cap = ncap;
		}
		const char *u = (const char *)sqlite3_column_text(s, 0);
		char *copy = strdup(u ? u : "");
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		k->servers[k->n_servers++] = copy;
	}
	sqlite3_finalize(s);
	return r;
}

/* ---- check ---- */

struct check_args {
	const char *identifier;
	const unsigned char *got;
	int64_t now;
	struct api_key *key; /* filled on success */
	bool ok;
};

static int check_tx(sqlite3 *db, void *arg)
{
	struct check_args *a = arg;
	unsigned char want[HASH_LEN] = { 0 };
	bool found = false, revoked = false;
	int64_t id = 0;
	sqlite3_stmt *s;
	int r = prep(db, "SELECT id, secret_hash, revoked_at FROM api_keys WHERE identifier = ?",
		     &s);
	if (r == 0)
		r = bind_text(s, 1, a->identifier);
	if (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 1) == HASH_LEN) {
			const void *b = sqlite3_column_blob(s, 1);
			if (b) {
				memcpy(want, b, HASH_LEN);
				id = sqlite3_column_int64(s, 0);
				revoked = sqlite3_column_type(s, 2) != SQLITE_NULL;
				found = true;
			}
		} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			r = store_sqlite_errno(rc);
		}
	}
	sqlite3_finalize(s);
	/* Compared whether or not the identifier was found (against zeros then) and
	 * whether or not the key is revoked: the three refusals cost the same. */
	bool equal = CRYPTO_memcmp(want, a->got, HASH_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	if (r < 0)
		return r;
	if (!found || !equal || revoked)
		return 0; /* nothing written; a->ok stays false */

	r = prep(db, "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) "
		     "WHERE id = ?",
		 &s);
	if (r == 0)
		r = bind_int(s, 1, a->now);
	if (r == 0)
		r = bind_int(s, 2, id);
	if (r == 0)
		r = step_done(s);
	sqlite3_finalize(s);
	if (r < 0 || !a->key) {
		a->ok = r == 0;
		return r;
	}
	r = prep(db, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", &s);
	if (r == 0)
		r = bind_int(s, 1, id);
	if (r == 0) {
		int rc = sqlite3_step(s);
		r = rc == SQLITE_ROW ? key_from_row(s, a->key)
				     : (rc == SQLITE_DONE ? -EIO : store_sqlite_errno(rc));
	}
	sqlite3_finalize(s);
	if (r == 0)
		r = load_servers(db, a->key);
	a->ok = r == 0;
	return r;
}

int api_key_check(struct store *st, const char *presented, int64_t now, struct api_key **ret)
{
	if (ret)
		*ret = NULL;
	if (!st || !presented)
		return -EINVAL;
	const char *t = presented;
	if (strncasecmp(t, "Bearer", 6) == 0 && (t[6] == ' ' || t[6] == '\t')) {
		t += 6;
		while (*t == ' ' || *t == '\t')
			t++;
	}
	/* The shape is no secret: a malformed key is refused without a lookup. */
	if (strlen(t) != API_KEY_LEN || strncmp(t, API_KEY_PREFIX, API_KEY_PREFIX_LEN) != 0)
		return -EACCES;
	for (size_t i = API_KEY_PREFIX_LEN; i < API_KEY_LEN; i++)
		if (!is_alnum_ascii((unsigned char)t[i]))
			return -EACCES;

	char identifier[API_KEY_IDENTIFIER_LEN + 1];
	memcpy(identifier, t, API_KEY_IDENTIFIER_LEN);
	identifier[API_KEY_IDENTIFIER_LEN] = 0;
	unsigned char got[HASH_LEN];
	int r = sha256(t + API_KEY_IDENTIFIER_LEN, API_KEY_SECRET_LEN, got);
	if (r < 0)
		return r;
	struct api_key *k = NULL;
	if (ret) {
		k = calloc(1, sizeof(*k));
		if (!k) {
			OPENSSL_cleanse(got, sizeof(got));
			return -ENOMEM;
		}
	}
	struct check_args a = { .identifier = identifier, .got = got, .now = now, .key = k };
	r = store_with_db(st, check_tx, &a);
	OPENSSL_cleanse(got, sizeof(got));
	if (r == 0 && !a.ok)
		r = -EACCES;
	if (r < 0) {
		api_key_free(k);
		return r;
	}
	if (ret)
		*ret = k;
	return 0;
}

bool api_key_allows(const struct api_key *key, unsigned perm, const char *server_uuid)
{
	char u[STORE_UUID_LEN + 1];
	if (!key || key->revoked || perm == 0 || (perm & ~API_KEY_PERM_ALL))
		return false;
	if ((key->permissions & perm) != perm)
		return false;
	if (!uuid_normalize(server_uuid, u))
		return false;
	if (key->all_servers)
		return true;
	for (size_t i = 0; i < key->n_servers; i++)
		if (key->servers[i] && strcmp(key->servers[i], u) == 0)
			return true;
	return false;
}

/* ---- list ---- */

struct list_args {
	struct api_key *v;
	size_t n;
};

static int list_tx(sqlite3 *db, void *arg)
{
	struct list_args *a = arg;
	size_t cap = 0;
	sqlite3_stmt *s;
	int r = prep(db, "SELECT " KEY_COLS " FROM api_keys ORDER BY id", &s);
	while (r == 0) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = store_sqlite_errno(rc);
			break;
		}
		if (a->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct api_key *p = realloc(a->v, ncap * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			memset(p + cap, 0, (ncap - cap) * sizeof(*p));
			a->v = p;
			cap = ncap;
		}
		/* Counted before it is filled, so that a failure frees it too. */
		r = key_from_row(s, &a->v[a->n++]);
	}
	sqlite3_finalize(s);
	for (size_t i = 0; r == 0 && i < a->n; i++)
		r = load_servers(db, &a->v[i]);
	return r;
}

int api_key_list(struct store *st, struct api_key **ret, size_t *ret_n)
{
	if (!ret || !ret_n)
		return -EINVAL;
	*ret = NULL;
	*ret_n = 0;
	struct list_args a = { 0 };
	int r = store_with_db(st, list_tx, &a);
	if (r < 0) {
		api_key_list_free(a.v, a.n);
		return r;
	}
	*ret = a.v;
	*ret_n = a.n;
	return 0;
}

/* ---- get ---- */

/* A decimal row id (0 and true), or an identifier (false). */
static bool parse_id(const char *p, int64_t *id)
{
	if (strlen(p) > 18)
		return false;
	for (const char *c = p; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	*id = strtoll(p, NULL, 10);
	return true;
}

struct get_args {
	const char *identifier; /* or NULL: by id */
	int64_t id;
	struct api_key *key;
};

static int get_tx(sqlite3 *db, void *arg)
{
	struct get_args *a = arg;
	sqlite3_stmt *s;
	int r = prep(db,
		     a->identifier ? "SELECT " KEY_COLS " FROM api_keys WHERE identifier = ?"
				   : "SELECT " KEY_COLS " FROM api_keys WHERE id = ?",
		     &s);
	if (r == 0)
		r = a->identifier ? bind_text(s, 1, a->identifier) : bind_int(s, 1, a->id);
	if (r == 0) {
		int rc = sqlite3_step(s);
		r = rc == SQLITE_ROW ? key_from_row(s, a->key)
				     : (rc == SQLITE_DONE ? -ENOENT : store_sqlite_errno(rc));
	}
	sqlite3_finalize(s);
	if (r == 0)
		r = load_servers(db, a->key);
	return r;
}

int api_key_get(struct store *st, const char *id_or_identifier, struct api_key **ret)
{
	if (!ret)
		return -EINVAL;
	*ret = NULL;
	if (!st || !id_or_identifier || !*id_or_identifier)
		return -EINVAL;
	struct get_args a = { 0 };
	if (!parse_id(id_or_identifier, &a.id)) {
		if (strlen(id_or_identifier) != API_KEY_IDENTIFIER_LEN)
			return -ENOENT;
		a.identifier = id_or_identifier;
	}
	a.key = calloc(1, sizeof(*a.key));
	if (!a.key)
		return -ENOMEM;
	int r = store_with_db(st, get_tx, &a);
	if (r < 0) {
		api_key_free(a.key);
		return r;
	}
	*ret = a.key;
	return 0;
}

/* ---- revoke ---- */

struct revoke_args {
	const char *identifier; /* or NULL: by id */
	int64_t id;
	int64_t now;
};

static int revoke_tx(sqlite3 *db, void *arg)
{
	struct revoke_args *a = arg;
	sqlite3_stmt *s;
	int r = prep(db,
		     a->identifier ? "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?1) "
				     "WHERE identifier = ?2"
				   : "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?1) "
				     "WHERE id = ?2",
		     &s);
	if (r == 0)
		r = bind_int(s, 1, a->now);
	if (r == 0)
		r = a->identifier ? bind_text(s, 2, a->identifier) : bind_int(s, 2, a->id);
	if (r == 0)
		r = step_done(s);
	if (r == 0 && sqlite3_changes(db) == 0)
		r = -ENOENT;
	sqlite3_finalize(s);
	return r;
}

int api_key_revoke(struct store *st, const char *id_or_identifier, int64_t now)
{
	if (!st || !id_or_identifier || !*id_or_identifier)
		return -EINVAL;
	struct revoke_args a = { .now = now };
	if (!parse_id(id_or_identifier, &a.id)) {
		if (strlen(id_or_identifier) != API_KEY_IDENTIFIER_LEN)
			return -ENOENT;
		a.identifier = id_or_identifier;
	}
	return store_with_db(st, revoke_tx, &a);
}
