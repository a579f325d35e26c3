/* Client API keys on the panel side: what `Authorization: Bearer ptlc_...` on the
 * client API (protocol §5) is checked against.
 *
 * Format, as the reference panel issues client keys: a 16-character identifier made of
 * the prefix "ptlc_" and 11 random characters, followed directly by a 32-character
 * secret; both random parts are drawn uniformly from [A-Za-z0-9] with getrandom(2).
 * A whole key is 48 characters, e.g. "ptlc_" "Ab3dE6gH9jK" "<32 characters>".
 *
 * Only the identifier and the SHA-256 of the secret are stored; the plaintext key is
 * handed to the caller once, by api_key_create, and cannot be recovered.
 *
 * A key carries a set of permissions (bit flags below), and may touch either every
 * server or a fixed set of server uuids (which must exist when the key is created; a
 * server that is later removed drops out of the set). A revoked key stays listed but is
 * never accepted again.
 *
 * Errors: 0 or a negative errno, as the store's (store.h). Times are unix seconds. */
#ifndef AMBER_API_KEYS_H
#define AMBER_API_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define API_KEY_PREFIX "ptlc_"
#define API_KEY_PREFIX_LEN 5
#define API_KEY_IDENTIFIER_LEN 16	/* prefix included */
#define API_KEY_SECRET_LEN 32
#define API_KEY_LEN (API_KEY_IDENTIFIER_LEN + API_KEY_SECRET_LEN)
#define API_KEY_DESCRIPTION_MAX 500	/* bytes, as the panel's memo limit */

/* Permission bits. The values are stored in the database: never renumber them. */
enum api_key_perm {
	API_KEY_PERM_BACKUP_READ = 1u << 0,
	API_KEY_PERM_BACKUP_CREATE = 1u << 1,
	API_KEY_PERM_BACKUP_DOWNLOAD = 1u << 2,
	API_KEY_PERM_BACKUP_DELETE = 1u << 3,
	API_KEY_PERM_BACKUP_RESTORE = 1u << 4,
};
#define API_KEY_PERM_ALL 0x1fu
/* Longest api_key_perms_format output, with its NUL. */
#define API_KEY_PERMS_STR_MAX 96

/* "backup.read,backup.create" (comma separated, spaces around items ignored, repeats
 * allowed) -> bit mask. -EINVAL for an empty list, an empty item or an unknown name. */
int api_key_perms_parse(const char *s, unsigned *ret);
/* Mask -> "backup.read,backup.create,..." in the fixed order of the enum. -EINVAL for
 * unknown bits, -ENOSPC if buf is too small; else the length written. */
int api_key_perms_format(unsigned perms, char *buf, size_t len);
/* The name of one permission bit, or NULL. */
const char *api_key_perm_name(unsigned perm);

struct api_key {
	int64_t id;
	char identifier[API_KEY_IDENTIFIER_LEN + 1];
	char *description;	/* never NULL */
	unsigned permissions;	/* API_KEY_PERM_* bits */
	bool all_servers;
	char **servers;		/* canonical lower-case uuids, sorted; empty if all_servers */
	size_t n_servers;
	int64_t created_at;
	int64_t last_used_at;	/* 0: never used */
	bool revoked;
	int64_t revoked_at;	/* 0 unless revoked */
};

/* Creates a key. perms: a non-empty set of known bits. Either all_servers with n == 0,
 * or n >= 1 canonical uuids (any case, duplicates ignored) of servers in the store.
 * description: NULL or at most API_KEY_DESCRIPTION_MAX bytes without control
 * characters. *ret_plaintext_once gets the whole key (free it with
 * api_key_plaintext_free, which wipes it); *ret_id (may be NULL) its row id.
 * -EINVAL for bad arguments, -ENOENT if a server does not exist. */
int api_key_create(struct store *st, const char *description, unsigned perms,
		   const char *const *servers, size_t n, bool all_servers, int64_t now,
		   char **ret_plaintext_once, int64_t *ret_id);
void api_key_plaintext_free(char *plaintext);

/* Checks a presented key: "Bearer <key>" (scheme case-insensitive) or the bare key.
 * 0 and *ret (may be NULL; free with api_key_free) for a valid, unrevoked key, whose
 * last_used_at becomes now. -EACCES for everything else a client can present: empty,
 * malformed, unknown identifier, wrong secret, revoked; the last three after the same
 * hashing, lookup and constant-time comparison. -EINVAL only for NULL arguments. */
int api_key_check(struct store *st, const char *presented, int64_t now, struct api_key **ret);

/* Whether key grants every bit of perm (non-zero) on the server with this canonical
 * uuid (any case). Short ids must be resolved to the uuid first. False for a NULL or
 * revoked key, perm 0 or with unknown bits, or a NULL server_uuid. */
bool api_key_allows(const struct api_key *key, unsigned perm, const char *server_uuid);

/* Every key, revoked ones included, by id. */
int api_key_list(struct store *st, struct api_key **ret, size_t *ret_n);

/* One key by its identifier or decimal row id; -ENOENT if there is none. */
int api_key_get(struct store *st, const char *id_or_identifier, struct api_key **ret);

/* Revokes a key named by its identifier ("ptlc_" + 11 characters) or its decimal row
 * id. -ENOENT if there is no such key. Revoking a revoked key succeeds and keeps the
 * first revoked_at. */
int api_key_revoke(struct store *st, const char *id_or_identifier, int64_t now);

void api_key_free(struct api_key *key);
void api_key_list_free(struct api_key *v, size_t n);

#endif
