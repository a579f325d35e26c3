/* The panel side of amberd: the remote API a node calls (part URLs, backup and restore
 * reports) on the SQLite store. The client API joins it later. */
#ifndef AMBER_PANEL_SERVICE_H
#define AMBER_PANEL_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct http_route;
struct instance_set;
struct store;

struct panel_service_config {
	struct store *store;             /* borrowed */
	struct instance_set *instances;  /* borrowed: adapters for presign/complete */
	uint64_t part_size;              /* for part URLs; 0: 5 GiB as the reference panel */
	unsigned presign_ttl_s;          /* 0: 3600 */
	unsigned stuck_after_s;          /* running backups older than this are failed; 0: 6 h */
};

struct panel_service;

/* Routes (all authenticated with `Bearer <token_id>.<token>`; errors in the panel's
 * {"errors":[{code,status,detail}]} form):
 *   GET  /api/remote/backups/:uuid?size=N       part URLs from the backup's instance
 *   POST /api/remote/backups/:uuid              the node's backup report -> 204
 *   POST /api/remote/backups/:uuid/restore      the node's restore report -> 204
 *   POST /api/remote/servers/reset              a booted node's servers lose their state
 * A node may only touch backups of the servers it hosts (403 otherwise). */

int panel_service_new(const struct panel_service_config *cfg, struct panel_service **ret,
		      char **ret_err);
const struct http_route *panel_service_routes(struct panel_service *svc, size_t *ret_n);
/* Marks stuck backups failed; returns how many, or a negative errno. */
int panel_service_sweep(struct panel_service *svc, int64_t now);
void panel_service_free(struct panel_service *svc);

#endif
