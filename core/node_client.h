/* The panel side's client for a node's API (pterodactyl-protocol.md §1.1, §1.2, §2): what
 * the panel does with Guzzle to start, restore and delete a server's backups on the node
 * that hosts it, plus Amber's progress route. The client API uses it to dispatch each
 * server's operations to its node and turns the return codes below into its answers.
 *
 * Every request carries "Authorization: Bearer <node token>", "Accept: application/json"
 * and "Content-Type: application/json", with the panel's timeouts (15 s for the whole
 * request, 5 s to connect; both configurable). Redirects are not followed (the token must
 * not travel to another host).
 *
 * Threading: the client holds no mutable state after node_client_new and each call uses
 * its own curl easy handle, so several threads may share one client. The caller must
 * have called curl_global_init(CURL_GLOBAL_DEFAULT) once before (main does it; tests do
 * it in their main).
 *
 * Retries: create, restore and delete are sent once (the panel does not retry them; a
 * second create could start a second backup). The status GET is retried once, at once,
 * after a transport failure other than a timeout.
 *
 * Return codes of every call (st->http_status is the node's status, 0 when none came):
 *   0             2xx
 *   -EINVAL       400 from the node (bad uuid, unknown adapter, bad body), or bad
 *                 arguments (nothing sent, http_status 0)
 *   -EACCES       401 or 403: the node refused the token
 *   -ENOENT       404: unknown server, or (delete, status) unknown backup. The panel
 *                 treats a 404 on delete as success; the caller decides.
 *   -EBUSY        409: the server already has a job running on the node
 *   -ENOSPC       507: the node's disk cannot hold the backup (create on a local
 *                 instance; st->message says how much is needed and available)
 *   -EREMOTEIO    any other 4xx (413, 415, 422, ...)
 *   -EBADE        5xx: the node failed (503 while it drains included)
 *   -EPROTO       a status outside 2xx/4xx/5xx (1xx, 3xx)
 *   -EBADMSG      2xx whose body is not what the call expects (status: not a JSON
 *                 object), or a response body past 1 MiB
 *   -EHOSTUNREACH the node could not be reached or dropped the connection: refused,
 *                 DNS failure, unreachable, reset, empty reply (client API: 502)
 *   -ETIMEDOUT    the connect or total timeout expired (client API: 504)
 *   -ENOMEM
 * For node answers, st->message is the node's "error" string ("" when the body has
 * none) and st->request_id its X-Request-Id (or the body's "request_id"). For transport
 * failures st->message is curl's description. The token never appears in either. */
#ifndef AMBER_NODE_CLIENT_H
#define AMBER_NODE_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct node_client;

#define NODE_CLIENT_DEFAULT_TIMEOUT_MS 15000
#define NODE_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS 5000

struct node_client_config {
	const char *base_url;        /* "http://127.0.0.1:8080"; trailing '/' dropped */
	const char *token;           /* the node token (Wings' `token`), sent as Bearer */
	unsigned timeout_ms;         /* whole request; 0: 15000 */
	unsigned connect_timeout_ms; /* 0: 5000, or timeout_ms when that is smaller */
	bool insecure;               /* do not verify the node's TLS certificate */
	/* Sent as X-Request-Id on every request, so the node's log lines carry the id of
	 * the panel request that caused them. [A-Za-z0-9-]{1,64} (else -EINVAL); NULL:
	 * none, the node makes one up. */
	const char *request_id;
};

/* What came back, for the client API's answer and its logs. */
struct node_status {
	long http_status;   /* 0: no response (transport failure, bad arguments) */
	char message[256];  /* the node's "error", or the transport error; "" otherwise */
	char request_id[65];/* the node's X-Request-Id; "" when none */
};

/* Copies what it needs from cfg. 0, -EINVAL (no base URL, not http(s)://, a token
 * missing or with characters a header cannot carry, a malformed request_id) or
 * -ENOMEM. */
int node_client_new(const struct node_client_config *cfg, struct node_client **ret);
void node_client_free(struct node_client *c);

/* In every call st may be NULL; server and backup are the panel's UUIDs (sent
 * percent-encoded as path segments; the node validates them). */

/* POST /api/servers/:server/backup {"adapter","uuid","ignore"[,"max_size"]}:
 * ignore_lines is a NULL-terminated array joined with '\n' as the panel does (NULL: "").
 * max_size: compressed bytes the archive may reach (Amber's node fails the backup past
 * it); 0 leaves the field out (no limit), above INT64_MAX is -EINVAL. 202 → 0. */
int node_backup_create(struct node_client *c, const char *server, const char *adapter,
		       const char *backup, const char *const *ignore_lines, uint64_t max_size,
		       struct node_status *st);
/* POST /api/servers/:server/backup/:backup/restore
 * {"adapter","truncate_directory","download_url"} (download_url NULL: ""). 202 → 0. */
int node_backup_restore(struct node_client *c, const char *server, const char *backup,
			const char *adapter, bool truncate, const char *download_url,
			struct node_status *st);
/* DELETE /api/servers/:server/backup/:backup, with {"adapter"} as the body when adapter
 * is not NULL (Amber's node then deletes from that instance), none otherwise.
 * 204 → 0; a missing backup → -ENOENT (http_status 404). */
int node_backup_delete(struct node_client *c, const char *server, const char *backup,
		       const char *adapter, struct node_status *st);
/* GET /api/servers/:server/backup/:backup: the latest job's status; *ret gets a new
 * reference to the JSON object (state, kind, successful, percent, ...) on 0. */
int node_backup_status(struct node_client *c, const char *server, const char *backup,
		       json_t **ret, struct node_status *st);

#endif
