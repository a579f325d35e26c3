/* Internals shared by node_service.c (life, jobs, reports) and routes_node.c (the HTTP
 * handlers). Not for other modules: they use node_service.h. */
#ifndef AMBER_NODE_SERVICE_INT_H
#define AMBER_NODE_SERVICE_INT_H

#include "http.h"
#include "jobs.h"

#include <stdatomic.h>
#include <string.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct instance;
struct instance_set;
struct job;
struct job_pool;
struct remote_client;
struct store;

#define NODE_UUID_LEN 36
#define NODE_KEY_MAX 96
#define NODE_N_ROUTES 5

struct node_service {
	char *data_dir, *state_dir, *outbox_dir;
	char *journal_dir; /* <state_dir>/jobs: one file per accepted backup/restore */
	char *token, *token_id, *panel_url;
	size_t token_len;
	unsigned char token_hash[32]; /* SHA-256 of the token, for the constant-time check */
	unsigned report_retry_budget_ms;
	long long restore_uid, restore_gid;
	unsigned threads;        /* [limits] for every job */
	uint64_t io_bytes_per_s;
	struct instance_set *instances;
	struct job_pool *pool;
	struct store *store;                 /* one-time download ids */
	struct remote_client *flush_client;  /* outbox flushes; NULL without a panel_url */
	atomic_int draining;
	struct http_route routes[NODE_N_ROUTES];
};

/* What a job needs; owned by the job pool once submitted (node_job_free). */
struct node_job {
	struct node_service *svc;
	struct instance *in;
	char server[NODE_UUID_LEN + 1], backup[NODE_UUID_LEN + 1];
	char request_id[65];
	char key[NODE_KEY_MAX];
	char *root;   /* <data_dir>/<server> */
	char *ignore; /* create: the request's patterns; NULL: .pteroignore */
	bool truncate;
	uint64_t max_size; /* create: compressed bytes allowed; 0: no limit */
	/* create: adapter "s3" or "gcs" with no instance of that name (in is NULL): the
	 * panel presigns the upload, part URLs as for Wings' s3 adapter or a resumable
	 * session's start URL (node_run_backup). remote_store is that name. */
	bool presigned;
	const char *remote_store;
	/* restore: the panel's download_url; when set it is the source, whether or not in
	 * is (in may be NULL for "s3"). */
	char *url;
};

/* The adapter a stock panel names for its S3 disk. A node with no instance of this name
 * serves it as Wings does: presigned parts on create, download_url on restore. */
#define NODE_S3_ADAPTER "s3"
/* Amber's own remote store: a node without an instance uploads through a resumable
 * session whose start URL the panel signs (ABI 1.1 AMBER_PRESIGN_RESUMABLE). */
#define NODE_GCS_ADAPTER "gcs"

/* The static name when `name` is one of the remote stores above, else NULL. */
static inline const char *node_remote_store(const char *name)
{
	return !name ? NULL
	       : strcmp(name, NODE_S3_ADAPTER) == 0 ? NODE_S3_ADAPTER
	       : strcmp(name, NODE_GCS_ADAPTER) == 0 ? NODE_GCS_ADAPTER : NULL;
}

/* The journal of accepted jobs: a file per backup or restore from acceptance until its
 * report is delivered or spooled, so a node killed in between reports the job failed
 * when it starts again. add returns 1 when it created the entry, 0 when one existed. */
int node_journal_add(struct node_service *svc, enum job_kind kind, const char *backup);
void node_journal_remove(struct node_service *svc, enum job_kind kind, const char *backup);

void node_job_free(void *arg);
int node_run_backup(struct job *job, void *arg);
int node_run_restore(struct job *job, void *arg);
int node_run_delete(struct job *job, void *arg);

/* Local-disk instances (the "wings" adapter) keep Wings' file layout and can serve
 * downloads straight from their files. */
bool node_instance_is_local(const struct instance *in);
int node_backup_key(const struct instance *in, const char *server, const char *backup,
		    char *out, size_t cap);
/* "wings" when configured, else the first instance; NULL when there is none. */
struct instance *node_default_instance(const struct node_service *svc);

/* Fills svc->routes. */
void node_routes_init(struct node_service *svc);

#endif
