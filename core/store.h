/* The panel side's state: nodes, servers, backups and spent one-time download ids, in
 * one SQLite database (config `[panel] database = "sqlite:/path"`).
 *
 * Threads: a struct store may be shared by any number of threads. It holds one
 * connection, opened with SQLITE_OPEN_FULLMUTEX, and every public function takes the
 * store's own mutex for its whole duration, so a multi-statement operation (a check
 * followed by a write) runs inside one transaction that no other thread can interleave
 * with. Other processes may open the same file: WAL mode plus a 5 s busy timeout; a lock
 * that is still held after that gives -EBUSY.
 *
 * Errors: 0 or a negative errno. -ENOENT not found (also: a row refers to a node or
 * server that does not exist), -EEXIST conflict on a unique key, -EALREADY the backup is
 * already completed, -EACCES a token did not match, -EPERM a locked backup, -EBUSY SQLite
 * stayed busy, -EPROTO the database was written by a newer Amber, -EINVAL bad argument,
 * -ENOMEM, -EIO otherwise.
 *
 * Times are integer unix seconds (UTC) everywhere, in the database too; the API layer
 * formats them as ISO-8601. A completed_at of 0 means "not completed" (NULL in SQL).
 *
 * Rows returned to the caller own their strings; free them with the matching _free
 * (or _list_free) function, which accepts NULL. */
#ifndef AMBER_STORE_H
#define AMBER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* The schema version this code writes (PRAGMA user_version). */
int store_schema_version(void);

/* path: "sqlite:/path/to/db", a bare path, or ":memory:" (also "sqlite::memory:").
 * Creates the file if needed (mode 0600: it holds token hashes), turns on WAL mode and
 * foreign keys, and applies pending migrations in one transaction. A database
 * with a newer user_version than this code knows is refused with -EPROTO and left as is. */
int store_open(const char *path, struct store **ret);
void store_close(struct store *st);

/* For modules that keep their own tables in the store (api_keys.c): runs fn(db, arg)
 * under the store's lock inside one BEGIN IMMEDIATE transaction, committed when fn
 * returns >= 0 and rolled back otherwise. Returns fn's result, or the error of
 * beginning or committing. fn must finalize every statement it prepares. */
struct sqlite3;
int store_with_db(struct store *st, int (*fn)(struct sqlite3 *db, void *arg), void *arg);
/* The negative errno the store uses for an (extended) SQLite result code. */
int store_sqlite_errno(int sqlite_rc);

/* ---- nodes ---- */

struct store_node {
	int64_t id;
	char *name;
	char *url;	/* base URL of the node API, e.g. https://node1.example:8080 */
	char *token_id;
	/* The token, for the panel to present to the node (the node API's Bearer); NULL
	 * for nodes registered before schema 3. The remote API checks a SHA-256 of it. */
	char *token;
};

/* Adds a node; *ret_id (may be NULL) gets its id. -EEXIST if the name or token_id is
 * already used. */
int store_node_add(struct store *st, const char *name, const char *url, const char *token_id,
		   const char *token, int64_t *ret_id);
/* Replaces the address and credentials of the node with this name (the all-in-one
 * daemon's "local" node follows its configuration). -ENOENT if there is none,
 * -EEXIST if token_id belongs to another node. */
int store_node_update(struct store *st, const char *name, const char *url, const char *token_id,
		      const char *token);
int store_node_get(struct store *st, int64_t id, struct store_node **ret);
int store_node_get_by_token_id(struct store *st, const char *token_id, struct store_node **ret);
/* Checks a presented token_id + token (the remote API's `Bearer <token_id>.<token>`).
 * 0 and *ret_node_id (may be NULL) on a match; -EACCES for a wrong token or an unknown
 * token_id alike, after the same amount of hashing and comparing. */
int store_node_check_token(struct store *st, const char *token_id, const char *token,
			   int64_t *ret_node_id);
/* All nodes by id; *ret_n gets the count (the array may be NULL when it is 0). */
int store_node_list(struct store *st, struct store_node **ret, size_t *ret_n);
void store_node_free(struct store_node *n);
void store_node_list_free(struct store_node *v, size_t n);

/* ---- servers ---- */

#define STORE_UUID_LEN 36
#define STORE_SHORT_ID_LEN 8

struct store_server {
	char uuid[STORE_UUID_LEN + 1];		/* canonical lower-case 8-4-4-4-12 */
	char short_id[STORE_SHORT_ID_LEN + 1];	/* the uuid's first 8 hex digits */
	int64_t node_id;
	int64_t backup_limit;			/* 0: no backups allowed (as Pterodactyl) */
	char *state;				/* NULL, or e.g. "restoring_backup" */
};

/* uuid must be canonical (any case; stored lower-case). -EINVAL if not, -ENOENT if the
 * node does not exist, -EEXIST if the uuid or its short id is taken. */
int store_server_add(struct store *st, const char *uuid, int64_t node_id, int64_t backup_limit);
/* id: a full uuid or an 8-hex-digit short id (any case). */
int store_server_get(struct store *st, const char *id, struct store_server **ret);
/* node_id > 0: only that node's servers; 0: all. Ordered by uuid. */
int store_server_list(struct store *st, int64_t node_id, struct store_server **ret, size_t *ret_n);
/* state NULL clears it. If expect_current is non-NULL the change happens only while the
 * current state equals it ("" standing for NULL), else -EEXIST: a caller can move
 * NULL -> "restoring_backup" without a race with another request doing the same. */
int store_server_set_state(struct store *st, const char *uuid, const char *expect_current,
			   const char *state);
/* Clears the state of every server on a node (remote API `servers/reset` after a node
 * reboot); returns how many servers were changed, or a negative errno. */
int store_servers_reset_state(struct store *st, int64_t node_id);
void store_server_free(struct store_server *s);
void store_server_list_free(struct store_server *v, size_t n);

/* ---- backups ---- */

enum store_backup_state {
	STORE_BACKUP_RUNNING = 0,
	STORE_BACKUP_COMPLETED,	/* finished and successful */
	STORE_BACKUP_FAILED,	/* reported failed, or pruned while stuck running */
};

struct store_backup {
	char *uuid;
	char *server_uuid;
	char *name;
	char *adapter;		/* the adapter instance name sent to the node */
	char *ignored;		/* ignore patterns, one per line; "" if none, never NULL */
	bool is_locked;
	enum store_backup_state state;
	int is_successful;	/* -1 while running (NULL), 0 failed, 1 successful */
	char *checksum;		/* sha1 lower-case hex (no "sha1:" prefix), or NULL */
	char *sha256;		/* lower-case hex, or NULL */
	int64_t bytes;		/* 0 until completed, and on failure */
	char *upload_id;	/* S3 multipart upload id, or NULL */
	char *parts;		/* JSON array of {etag, part_number} as reported, or NULL */
	int64_t created_at;
	int64_t completed_at;	/* 0 while running */
	char *failure_reason;	/* the node's reason for a failure, or NULL */
};

/* Creates a running backup from b's uuid, server_uuid, name, adapter, ignored (NULL ->
 * ""), is_locked and created_at; the other fields are ignored. -EEXIST on a duplicate
 * uuid, -ENOENT if the server does not exist, -EINVAL if the uuid is not canonical. */
int store_backup_create(struct store *st, const struct store_backup *b);

/* What a client-API create is checked against, and why it was refused. */
enum store_create_refusal {
	STORE_CREATE_OK = 0,
	STORE_CREATE_SERVER_BUSY, /* the server has a state (restoring_backup, ...) */
	STORE_CREATE_THROTTLED,   /* throttle_limit creations inside throttle_period */
	STORE_CREATE_LIMIT,       /* backup_limit non-failed backups, or a limit of 0 */
	STORE_CREATE_RUNNING,     /* a backup of the server is still running */
};

struct store_create_check {
	int64_t now;
	int64_t throttle_limit;   /* <= 0: no throttle */
	int64_t throttle_period;  /* seconds; <= 0: no throttle */
	/* out */
	enum store_create_refusal refusal;
	int64_t retry_after;      /* THROTTLED: seconds until a creation is allowed */
	int64_t limit;            /* the server's backup_limit */
};

/* store_backup_create after the checks above, atomically with them: 0 created,
 * -ECANCELED refused (c->refusal says why), -ENOENT no such server, else an error.
 * Every creation is remembered for the throttle, also after the backup is deleted. */
int store_backup_create_checked(struct store *st, const struct store_backup *b,
				struct store_create_check *c);
/* Undoes a create whose dispatch to the node failed: the row and its throttle entry
 * go, as if the request had never been made. */
int store_backup_discard(struct store *st, const char *uuid);
int store_backup_get(struct store *st, const char *uuid, struct store_backup **ret);
/* A server's backups, newest first (created_at, then insertion order), skipping offset
 * and returning at most limit (0: no limit). -ENOENT if the server does not exist. */
int store_backup_list_for_server(struct store *st, const char *server_uuid, size_t limit,
				 size_t offset, struct store_backup **ret, size_t *ret_n);
/* All of a server's backups (pagination `total`). */
int store_backup_total_for_server(struct store *st, const char *server_uuid, int64_t *ret);
/* Backups that count against backup_limit and form the list's `backup_count`: the ones
 * running or successful, i.e. not failed (protocol §5, "Limit"). */
int store_backup_count_for_server(struct store *st, const char *server_uuid, int64_t *ret);
int store_backup_set_locked(struct store *st, const char *uuid, bool locked);
/* Flips is_locked (the client API's `lock` toggle) atomically; *ret_locked (may be
 * NULL) gets the new value. */
int store_backup_toggle_locked(struct store *st, const char *uuid, bool *ret_locked);
/* Remembers the S3 multipart upload id; -EALREADY if the backup is no longer running
 * (the remote API answers 409 then). */
int store_backup_set_upload_id(struct store *st, const char *uuid, const char *upload_id);
/* The node's report (remote API POST /api/remote/backups/{uuid}). successful: state
 * completed, the given checksum/sha256 (may be NULL), bytes and parts JSON (may be
 * NULL). Not successful: the same as store_backup_mark_failed. completed_at = now.
 * -EALREADY if the backup is already completed successfully (the panel answers 400);
 * a failed backup may be reported again, as in Pterodactyl. An empty checksum counts as
 * NULL (as the panel treats it). -EINVAL for negative bytes or parts that are not a JSON
 * array. failure_reason (NULL: none) is recorded with a failure, in the same update. */
int store_backup_mark_completed(struct store *st, const char *uuid, bool successful,
				const char *checksum, const char *sha256, int64_t bytes,
				const char *parts, const char *failure_reason, int64_t now);
/* Failed: is_successful 0, unlocked, checksums NULL, bytes 0, completed_at = now.
 * -EALREADY if the backup is already completed successfully. */
int store_backup_mark_failed(struct store *st, const char *uuid, int64_t now);
/* Removes the row. With respect_lock, a locked backup that completed successfully is
 * refused with -EPERM (the client API's BackupLockedException); failed or running
 * locked backups may be deleted. */
int store_backup_delete(struct store *st, const char *uuid, bool respect_lock);
/* Marks failed every backup still running that was created more than older_than seconds
 * before now (Pterodactyl's prune_age). Returns how many, or a negative errno. */
int store_backups_fail_stuck(struct store *st, int64_t older_than, int64_t now);
/* Unlocked, finished (completed or failed) backups created more than older_than
 * seconds before now, oldest first: the retention sweep's candidates. */
int store_backups_expired(struct store *st, int64_t older_than, int64_t now,
			  struct store_backup **ret, size_t *ret_n);
/* Forgets creations of deleted backups older than older_than seconds (once they are
 * past any throttle window). Returns how many, or a negative errno. */
int store_backup_creations_prune(struct store *st, int64_t older_than, int64_t now);
void store_backup_free(struct store_backup *b);
void store_backup_list_free(struct store_backup *v, size_t n);

/* ---- one-time download ids ---- */

/* Spends unique_id (a download JWT's jti): 0 the first time, -EEXIST on any later call,
 * across threads, processes and restarts. */
int store_download_use_once(struct store *st, const char *unique_id, int64_t now);
/* Forgets ids spent more than older_than seconds before now (once their tokens have
 * expired a replay fails on the expiry anyway). Returns how many, or a negative errno. */
int store_download_uses_prune(struct store *st, int64_t older_than, int64_t now);

#endif
