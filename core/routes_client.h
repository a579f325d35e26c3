/* The client API (seeds 003/004, protocol §5): `/api/client/servers/{server}/backups`,
 * what users, scripts and client libraries call with a `ptlc_` key. It is the panel
 * side: records live in the store, the work runs on the node that hosts the server,
 * reached over the node API (node_client) with that node's token.
 *
 * Routes (`{server}` is a server uuid or its 8-character short id):
 *   GET    /api/client/servers/:server                           status (restoring?)
 *   GET    /api/client/servers/:server/backups                   list (paginated)
 *   POST   /api/client/servers/:server/backups                   create
 *   GET    /api/client/servers/:server/backups/:backup           one, with progress
 *   GET    /api/client/servers/:server/backups/:backup/download  signed URL
 *   POST   /api/client/servers/:server/backups/:backup/lock      toggle → 204
 *   POST   /api/client/servers/:server/backups/:backup/unlock    → 204
 *   POST   /api/client/servers/:server/backups/:backup/restore   → 202
 *   DELETE /api/client/servers/:server/backups/:backup           → 204
 * Errors use the panel's {"errors":[{code,status,detail}]} form with seed 004's codes. */
#ifndef AMBER_ROUTES_CLIENT_H
#define AMBER_ROUTES_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct http_route;
struct instance_set;
struct store;

struct client_service_config {
	struct store *store;            /* borrowed */
	struct instance_set *instances; /* borrowed: presigned downloads; may be NULL */
	const char *default_adapter;    /* the instance new backups go to */
	uint64_t max_backup_size;       /* bytes handed to the node; 0: no limit */
	int64_t throttle_limit;         /* creations per throttle_period_s; <= 0: none */
	int64_t throttle_period_s;
	int64_t retention_s;            /* unlocked backups older than this go; 0: off */
	unsigned download_ttl_s;        /* 0: 3600 */
	unsigned node_url_ttl_s;        /* URLs a node fetches (restores); 0: 3600 */
	unsigned node_timeout_ms;       /* 0: node_client's default */
	unsigned node_connect_timeout_ms;
};

struct client_service;

/* 0, or a negative errno with *ret_err (caller frees). */
int client_service_new(const struct client_service_config *cfg, struct client_service **ret,
		       char **ret_err);
const struct http_route *client_service_routes(struct client_service *svc, size_t *ret_n);
/* Retention: deletes (through each backup's node) the unlocked backups older than
 * retention_s, and forgets old throttle entries. Returns how many backups went, or a
 * negative errno; problems with one backup are logged and the sweep goes on. */
int client_service_sweep(struct client_service *svc, int64_t now);
void client_service_free(struct client_service *svc);

#endif
