/* The node side of amberd: the Wings-compatible node API (backup, restore, delete,
 * status, signed download) over the job pool, the adapter instances and the remote API
 * client. amberd owns one; tests can run one on an in-process HTTP server. */
#ifndef AMBER_NODE_SERVICE_H
#define AMBER_NODE_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct http_route;
struct instance_set;

struct node_service_config {
	const char *data_dir;   /* server directories: <data_dir>/<uuid> */
	const char *state_dir;  /* node state: outbox/, node.db (one-time download ids) */
	const char *token_id;   /* shared with the panel */
	const char *token;      /* node token: Bearer auth and the download JWT key */
	const char *panel_url;  /* remote API base; NULL: reports are only spooled */
	unsigned max_concurrent_jobs;
	unsigned report_retry_budget_ms; /* 0: the remote client's default (30 s) */
	struct instance_set *instances;  /* borrowed; outlives the service */
	/* uid/gid for restored files when running as root; -1: keep ours */
	long long restore_uid, restore_gid;
	/* [limits], applied to every job: CPU threads (0: one per core) and file bytes
	 * read (create) or written (restore) per second (0: no limit). */
	unsigned threads;
	uint64_t io_bytes_per_s;
};

struct node_service;

/* 0, or a negative errno with *ret_err (caller frees). */
int node_service_new(const struct node_service_config *cfg, struct node_service **ret,
		     char **ret_err);
/* The routes to register on the HTTP server; valid for the service's life:
 *   POST   /api/servers/:server/backup                   create → 202, a backup job
 *   POST   /api/servers/:server/backup/:backup/restore   restore → 202, a restore job
 *   DELETE /api/servers/:server/backup/:backup           → 204, 404 when missing
 *   GET    /api/servers/:server/backup/:backup           the latest job's status (JSON)
 *   GET    /download/backup?token=<JWT>                  signed one-time download
 * All but the download need "Authorization: Bearer <token>" (401 missing, 403 wrong).
 * One job per server at a time (409); 503 once a drain has begun. */
const struct http_route *node_service_routes(struct node_service *svc, size_t *ret_n);
/* Delivers spooled reports to the panel (called at start and periodically). */
int node_service_flush_outbox(struct node_service *svc);
/* SIGTERM: no new jobs (409/503), running ones finish or are reported failed within
 * timeout_ms. */
int node_service_drain(struct node_service *svc, int timeout_ms);
void node_service_free(struct node_service *svc);

#endif
