/* The node API's HTTP handlers (pterodactyl-protocol.md §1.1–1.2, §2): bearer auth,
 * validation before anything is accepted, then the work goes to the job pool so no
 * adapter call runs on an HTTP thread. Error bodies are Wings' {"error": "..."}.
 *
 * Decisions (design.md §4), where Wings differs:
 *  - both uuids must be canonical (400), the adapter must name a configured instance
 *    (400 naming them; Wings answers 500);
 *  - one job per server at a time: a second create/restore/delete → 409;
 *  - while the node drains (SIGTERM) new jobs get 503: it is temporary, and the
 *    request may be repeated against the restarted node;
 *  - restore answers 202 as Wings' code does (the seed's 204 is its doc's slip);
 *  - download: a missing, malformed or expired token → 401, a forged one → 403,
 *    replay or unknown server/backup → 404 (Wings: 500 for all bad tokens);
 *  - Amber extensions a stock panel never sends: create's "max_size" (bytes; the job
 *    fails once the archive passes it), the download token's "adapter" claim (a local
 *    instance other than the default; unknown or not local → 404);
 *  - create on a local instance whose disk cannot hold the archive's upper bound →
 *    507 before any job (Wings lets the backup fail half-way).
 *
 * The adapter "s3" with no instance of that name on the node is Wings' s3 mode, which
 * is how a stock Pterodactyl panel with its S3 disk drives a node: create uploads into
 * parts the panel presigns (remote API), restore reads the request's download_url, and
 * delete answers 404 as Wings does for a backup it has no local file of (the panel
 * treats a 404 as deleted; the object is the panel's to remove). Any other adapter name
 * that is not configured is still a 400. A download_url, when given, is the restore's
 * source even where the node has an instance of the adapter: it is what the panel
 * asked for. */
#include "node_service.h"
#include "node_service_int.h"

#include "backup.h"
#include "compressor.h"
#include "adapter_config.h"
#include "http.h"
#include "instances.h"
#include "jobs.h"
#include "jwt.h"
#include "log.h"
#include "store.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* How long a DELETE waits for its job before answering 504 (the panel gives up after
 * 15 s anyway; the delete still completes). */
#define DELETE_WAIT_MS 60000

#define MSG_NO_AUTH "The required authorization heads were not present in the request."
#define MSG_FORBIDDEN "You are not authorized to access this endpoint."
#define MSG_NO_SERVER "The requested resource does not exist on this instance."
#define MSG_NO_BACKUP "The requested backup was not found on this server."
#define MSG_DL_NOT_FOUND "The requested resource was not found on this server."
#define MSG_BUSY "Another backup, restore or delete is already running for this server."
#define MSG_DRAINING "This node is shutting down; try again once it is back."
#define MSG_TIMEOUT "The server could not process this request in time, please try again."
#define MSG_INTERNAL "An unexpected error was encountered while processing this request"

/* Wings' check (§1.1): "Bearer <token>", split on the first space; compared in constant
 * time. Hashing both sides first makes the comparison equal-length, so its duration
 * says nothing about the token's length either. 0, or the error response was sent. */
static int check_auth(struct node_service *svc, struct http_request *req)
{
	const char *h = http_request_header(req, "Authorization");
	const char *sp = h ? strchr(h, ' ') : NULL;
	if (!sp || sp - h != 6 || strncmp(h, "Bearer", 6) != 0) {
		http_response_header(req, "WWW-Authenticate", "Bearer");
		http_respond_error(req, 401, MSG_NO_AUTH);
		return -EACCES;
	}
	unsigned char got[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)sp + 1, strlen(sp + 1), got);
	if (CRYPTO_memcmp(got, svc->token_hash, sizeof(got)) != 0) {
		http_respond_error(req, 403, MSG_FORBIDDEN);
		return -EPERM;
	}
	return 0;
}

/* <data_dir>/<server> when server is a canonical uuid naming a directory there (a
 * canonical uuid cannot hold '/' or "..", so this cannot leave data_dir). NULL and the
 * response sent otherwise: 400 for a malformed uuid, 404 for an unknown server. */
static char *server_root(struct node_service *svc, struct http_request *req, const char *server)
{
	if (!server || !uuid_is_canonical(server)) {
		http_respond_error(req, 400, "The server identifier must be a valid UUID.");
		return NULL;
	}
	char *root = str_printf("%s/%s", svc->data_dir, server);
	if (!root) {
		http_respond_error(req, 500, MSG_INTERNAL);
		return NULL;
	}
	struct stat st;
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(root);
		http_respond_error(req, 404, MSG_NO_SERVER);
		return NULL;
	}
	return root;
}

static int check_backup_uuid(struct http_request *req, const char *backup)
{
	if (!backup || !uuid_is_canonical(backup)) {
		http_respond_error(req, 400, "The backup identifier must be a valid UUID.");
		return -EINVAL;
	}
	return 0;
}

/* The instance an "adapter" field names; 400 naming the configured ones otherwise. */
static struct instance *find_instance(struct node_service *svc, struct http_request *req,
				      json_t *adapter)
{
	const char *name = json_string_value(adapter);
	struct instance *in = name ? instance_set_find(svc->instances, name) : NULL;
	if (in)
		return in;
	char *names = instance_set_names(svc->instances);
	char *msg = name ? str_printf("The backup adapter \"%s\" is not configured on this "
				      "node; configured: %s.",
				      name, names ? names : "none")
			 : str_printf("The adapter field is required; configured: %s.",
				      names ? names : "none");
	http_respond_error(req, 400, msg ? msg : "Unknown backup adapter.");
	free(msg);
	free(names);
	return NULL;
}

static struct node_job *job_new(struct node_service *svc, struct http_request *req,
				struct instance *in, const char *server, const char *backup,
				char *root)
{
	struct node_job *nj = calloc(1, sizeof(*nj));
	if (!nj) {
		free(root);
		return NULL;
	}
	nj->svc = svc;
	nj->in = in;
	nj->root = root;
	snprintf(nj->server, sizeof(nj->server), "%s", server);
	snprintf(nj->backup, sizeof(nj->backup), "%s", backup);
	snprintf(nj->request_id, sizeof(nj->request_id), "%s", http_request_id(req));
	/* No instance (s3 through the panel): the panel's own key layout, for logs. */
	if ((in ? node_backup_key(in, server, backup, nj->key, sizeof(nj->key))
		: backup_key(server, backup, nj->key, sizeof(nj->key))) < 0) {
		node_job_free(nj);
		return NULL;
	}
	return nj;
}

/* Submits and answers the refusals; 0 when the job is queued. */
static int submit(struct node_service *svc, struct http_request *req, struct node_job *nj,
		  enum job_kind kind, job_fn run, struct job **ret_opt)
{
	if (atomic_load(&svc->draining)) {
		node_job_free(nj);
		http_respond_error(req, 503, MSG_DRAINING);
		return -ESHUTDOWN;
	}
	char server[NODE_UUID_LEN + 1], backup[NODE_UUID_LEN + 1];
	snprintf(server, sizeof(server), "%s", nj->server);
	snprintf(backup, sizeof(backup), "%s", nj->backup);
	/* Journaled before it can start, so even a job killed at once is reported. */
	int journaled = 0;
	if (kind == JOB_BACKUP || kind == JOB_RESTORE) {
		journaled = node_journal_add(svc, kind, backup);
		if (journaled < 0) {
			log_msg(LOG_LEVEL_ERR, "request %s: %s job for backup %s: journal: %s",
				http_request_id(req), job_kind_name(kind), backup,
				strerror(-journaled));
			node_job_free(nj);
			http_respond_error(req, 500, MSG_INTERNAL);
			return journaled;
		}
	}
	int r = job_submit(svc->pool, server, backup, kind, run, nj, node_job_free, ret_opt);
	if (r < 0 && journaled == 1)
		node_journal_remove(svc, kind, backup);
	if (r == -EBUSY)
		http_respond_error(req, 409, MSG_BUSY);
	else if (r == -ESHUTDOWN)
		http_respond_error(req, 503, MSG_DRAINING);
	else if (r < 0)
		http_respond_error(req, 500, MSG_INTERNAL);
	if (r < 0 && r != -EBUSY && r != -ESHUTDOWN)
		log_msg(LOG_LEVEL_ERR, "request %s: %s job for backup %s: %s",
			http_request_id(req), job_kind_name(kind), backup, strerror(-r));
	return r;
}

/* A local instance's disk must hold the archive: with the uncompressed size as the
 * bound (incompressible data stays that size) the backup cannot run out of space
 * half-way. Object stores have no such limit to check. 0, or the 507 was sent. A walk
 * or statvfs that fails skips the check: the job then reports what is wrong. */
static int check_space(struct http_request *req, struct instance *in, const char *root,
		       const char *ignore, uint64_t max_size)
{
	const char *dir = NULL;
	if (!in || !node_instance_is_local(in) ||
	    adapter_config_get_string(in->config, "path", &dir) < 0 || !dir)
		return 0;
	struct statvfs vfs;
	if (statvfs(dir, &vfs) < 0) {
		log_msg(LOG_LEVEL_WARNING, "request %s: storage check of %s skipped: %s: %s",
			http_request_id(req), in->name, dir, strerror(errno));
		return 0;
	}
	struct amber_ctx ctx;
	host_ctx_init(&ctx, in->ops->name, in->name, "estimate", http_request_id(req));
	struct backup_create_req bq = { .instance = in, .root = root, .ignore = ignore };
	uint64_t need = 0;
	int r = backup_estimate(&bq, &ctx, &need);
	if (r < 0) {
		log_msg(LOG_LEVEL_WARNING, "request %s: storage check of %s skipped: %s",
			http_request_id(req), in->name, ctx.message[0] ? ctx.message : strerror(-r));
		return 0;
	}
	/* A limited backup is stopped before it stores more than its limit. */
	if (max_size && max_size < need)
		need = max_size;
	uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	if (need <= avail)
		return 0;
	char *msg = str_printf("Not enough storage space for this backup: about %" PRIu64
			       " bytes needed, %" PRIu64 " bytes available on %s.",
			       need, avail, in->name);
	log_msg(LOG_LEVEL_NOTICE, "request %s: backup refused: %s", http_request_id(req),
		msg ? msg : "not enough storage space");
	http_respond_error(req, 507, msg ? msg : "Not enough storage space for this backup.");
	free(msg);
	return -ENOSPC;
}

/* POST /api/servers/:server/backup {adapter, uuid, ignore[, max_size]} → 202, empty (as
 * Wings; max_size is Amber's). */
static int h_create(struct http_request *req, void *ud)
{
	struct node_service *svc = ud;
	if (check_auth(svc, req) < 0)
		return 0;
	const char *server = http_request_param(req, "server");
	char *root = server_root(svc, req, server);
	if (!root)
		return 0;
	json_t *body = NULL;
	if (http_require_json(req, &body) < 0) {
		free(root);
		return 0;
	}
	const char *backup = json_string_value(json_object_get(body, "uuid"));
	json_t *ignore = json_object_get(body, "ignore");
	struct instance *in = NULL;
	if (!json_is_object(body)) {
		http_respond_error(req, 400, "The request body must be a JSON object.");
		goto out;
	}
	if (check_backup_uuid(req, backup) < 0)
		goto out;
	if (ignore && !json_is_string(ignore) && !json_is_null(ignore)) {
		http_respond_error(req, 400, "The ignore field must be a string.");
		goto out;
	}
	/* Amber's extension: the panel's per-backup size limit (a stock panel never sends
	 * it). 0 or absent: no limit. */
	json_t *max = json_object_get(body, "max_size");
	if (max && !json_is_null(max) &&
	    (!json_is_integer(max) || json_integer_value(max) < 0)) {
		http_respond_error(req, 400, "The max_size field must be a non-negative integer "
					     "(bytes).");
		goto out;
	}
	json_t *adapter = json_object_get(body, "adapter");
	bool presigned = false;
	in = instance_set_find(svc->instances, json_string_value(adapter) ? json_string_value(adapter)
									  : "");
	const char *remote = in ? NULL : node_remote_store(json_string_value(adapter));
	if (remote) {
		/* A remote store without an instance: the panel presigns (see the top). */
		if (!svc->panel_url) {
			char msg[200];
			snprintf(msg, sizeof(msg), "The %s adapter has no instance on this node "
						   "and, without a panel_url, the panel cannot "
						   "presign its uploads.", remote);
			http_respond_error(req, 400, msg);
			goto out;
		}
		presigned = true;
	} else if (!in) {
		in = find_instance(svc, req, adapter);
		if (!in)
			goto out;
	}
	const char *ig = json_string_value(ignore);
	uint64_t max_size = json_is_integer(max) ? (uint64_t)json_integer_value(max) : 0;
	if (check_space(req, in, root, ig, max_size) < 0)
		goto out;
	struct node_job *nj = job_new(svc, req, in, server, backup, root);
	root = NULL;
	if (!nj) {
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	nj->max_size = max_size;
	nj->presigned = presigned;
	nj->remote_store = remote;
	if (ig && *ig && !(nj->ignore = strdup(ig))) {
		node_job_free(nj);
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	if (submit(svc, req, nj, JOB_BACKUP, node_run_backup, NULL) == 0)
		http_respond_empty(req, 202);
out:
	free(root);
	json_decref(body);
	return 0;
}

/* The checks every /api/servers/:server/backup/:backup route starts with, in Wings'
 * order: auth, the server's directory, the backup uuid. Returns the server's root
 * (caller frees), or NULL once it has answered. */
static char *backup_route_begin(struct node_service *svc, struct http_request *req,
				const char **ret_server, const char **ret_backup)
{
	if (check_auth(svc, req) < 0)
		return NULL;
	const char *server = http_request_param(req, "server");
	const char *backup = http_request_param(req, "backup");
	char *root = server_root(svc, req, server);
	if (!root)
		return NULL;
	if (check_backup_uuid(req, backup) < 0) {
		free(root);
		return NULL;
	}
	*ret_server = server;
	*ret_backup = backup;
	return root;
}

/* POST /api/servers/:server/backup/:backup/restore {adapter, truncate_directory,
 * download_url} → 202, empty. */
static int h_restore(struct http_request *req, void *ud)
{
	struct node_service *svc = ud;
	const char *server, *backup;
	char *root = backup_route_begin(svc, req, &server, &backup);
	if (!root)
		return 0;
	json_t *body = NULL;
	if (http_require_json(req, &body) < 0) {
		free(root);
		return 0;
	}
	if (!json_is_object(body)) {
		http_respond_error(req, 400, "The request body must be a JSON object.");
		goto out;
	}
	json_t *truncate = json_object_get(body, "truncate_directory");
	if (truncate && !json_is_boolean(truncate) && !json_is_null(truncate)) {
		http_respond_error(req, 400, "The truncate_directory field must be a boolean.");
		goto out;
	}
	/* A Pterodactyl panel sends an S3 backup's presigned URL; Amber's panel sends none
	 * and the node reads through its own instance of the adapter, whatever it is.
	 * Decided before anything is touched, so a refused restore never truncates. */
	json_t *jurl = json_object_get(body, "download_url");
	if (jurl && !json_is_string(jurl) && !json_is_null(jurl)) {
		http_respond_error(req, 400, "The download_url field must be a string.");
		goto out;
	}
	const char *url = json_string_value(jurl);
	bool has_url = url && *url;
	json_t *adapter = json_object_get(body, "adapter");
	const char *aname = json_string_value(adapter);
	struct instance *in = instance_set_find(svc->instances, aname ? aname : "");
	if (!in && node_remote_store(aname)) {
		if (!has_url) {
			char msg[160];
			snprintf(msg, sizeof(msg), "The download_url field is required when the "
						   "backup adapter is set to %s.",
				 strcmp(aname, NODE_S3_ADAPTER) == 0 ? "S3" : aname);
			http_respond_error(req, 400, msg);
			goto out;
		}
	} else if (!in && !(in = find_instance(svc, req, adapter))) {
		goto out;
	}
	if (has_url && strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		http_respond_error(req, 400, "The download_url must be an http or https URL.");
		goto out;
	}
	struct node_job *nj = job_new(svc, req, in, server, backup, root);
	root = NULL;
	if (!nj) {
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	nj->truncate = json_is_true(truncate);
	nj->remote_store = in ? NULL : node_remote_store(aname);
	if (has_url && !(nj->url = strdup(url))) {
		node_job_free(nj);
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	if (submit(svc, req, nj, JOB_RESTORE, node_run_restore, NULL) == 0)
		http_respond_empty(req, 202);
out:
	free(root);
	json_decref(body);
	return 0;
}

/* DELETE /api/servers/:server/backup/:backup [{adapter}] → 204, or 404 when missing.
 * The adapter call runs as a job (off the HTTP thread) and the handler waits for it. */
static int h_delete(struct http_request *req, void *ud)
{
	struct node_service *svc = ud;
	const char *server, *backup;
	char *root = backup_route_begin(svc, req, &server, &backup);
	if (!root)
		return 0;
	json_t *body = NULL;
	struct instance *in = NULL;
	size_t len = 0;
	/* The panel sends no body (Wings deletes local backups only); a body may name
	 * the instance the backup went to. */
	http_request_body(req, &len);
	if (len > 0) {
		if (http_require_json(req, &body) < 0)
			goto out;
		json_t *adapter = json_object_get(body, "adapter");
		/* Wings deletes local files only and answers 404 for an S3 backup, which the
		 * panel takes as deleted (it removes the object itself). */
		const char *remote = node_remote_store(json_string_value(adapter));
		if (remote && !instance_set_find(svc->instances, remote)) {
			http_respond_error(req, 404, MSG_NO_BACKUP);
			goto out;
		}
		if (adapter && !json_is_null(adapter)) {
			in = find_instance(svc, req, adapter);
			if (!in)
				goto out;
		}
	}
	if (!in)
		in = node_default_instance(svc);
	if (!in) {
		http_respond_error(req, 404, MSG_NO_BACKUP);
		goto out;
	}
	struct node_job *nj = job_new(svc, req, in, server, backup, root);
	root = NULL;
	if (!nj) {
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	struct job *job = NULL;
	if (submit(svc, req, nj, JOB_DELETE, node_run_delete, &job) < 0)
		goto out;
	if (job_wait(job, DELETE_WAIT_MS) < 0) {
		http_respond_error(req, 504, MSG_TIMEOUT);
	} else {
		struct job_status st;
		job_get_status(job, &st);
		if (st.result == 0)
			http_respond_empty(req, 204);
		else if (st.result == -ENOENT)
			http_respond_error(req, 404, MSG_NO_BACKUP);
		else if (st.result == -ECANCELED)
			http_respond_error(req, 503, MSG_DRAINING);
		else
			http_respond_error(req, 500, MSG_INTERNAL);
	}
	job_unref(job);
out:
	free(root);
	json_decref(body);
	return 0;
}

static json_t *time_or_null(time_t t)
{
	return t ? json_integer((json_int_t)t) : json_null();
}

/* GET /api/servers/:server/backup/:backup → the latest job for that backup. */
static int h_status(struct http_request *req, void *ud)
{
	struct node_service *svc = ud;
	const char *server, *backup;
	char *root = backup_route_begin(svc, req, &server, &backup);
	if (!root)
		return 0;
	free(root);
	struct job_status st;
	if (job_pool_snapshot(svc->pool, server, backup, &st) < 0) {
		http_respond_error(req, 404, MSG_NO_BACKUP);
		return 0;
	}
	bool finished = st.state == JOB_DONE || st.state == JOB_FAILED;
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:b}", "uuid",
			      backup, "server", server, "state", job_state_name(st.state), "kind",
			      job_kind_name(st.kind), "bytes_read", (json_int_t)st.bytes_read,
			      "bytes_written", (json_int_t)st.bytes_written, "files",
			      (json_int_t)st.files, "total_bytes", (json_int_t)st.total_bytes,
			      "percent", (int)st.percent, "cancel_requested",
			      (int)st.cancel_requested);
	if (!j) {
		http_respond_error(req, 500, MSG_INTERNAL);
		return 0;
	}
	json_object_set_new(j, "submitted_at", time_or_null(st.submitted_at));
	json_object_set_new(j, "started_at", time_or_null(st.started_at));
	json_object_set_new(j, "finished_at", time_or_null(st.finished_at));
	/* null while the job runs, as the panel's is_successful. */
	json_object_set_new(j, "successful", finished ? json_boolean(st.state == JOB_DONE)
						      : json_null());
	json_object_set_new(j, "error", st.state == JOB_FAILED
						? json_string(strerror(-st.result))
						: json_null());
	http_respond_json(req, 200, j);
	return 0;
}

/* GET /download/backup?token=<JWT>: no bearer auth, the token is the authority. */
static int h_download(struct http_request *req, void *ud)
{
	struct node_service *svc = ud;
	const char *token = http_request_query(req, "token");
	if (!token || !*token) {
		http_respond_error(req, 401, "A download token is required.");
		return 0;
	}
	json_t *claims = NULL;
	int64_t now = (int64_t)time(NULL);
	int r = jwt_hs256_verify(token, svc->token, svc->token_len, now, 0, &claims);
	if (r == -EACCES) {
		log_msg(LOG_LEVEL_WARNING,
			"request %s: download refused: token not signed with this node's key",
			http_request_id(req));
		http_respond_error(req, 403, "The download token signature is not valid.");
		return 0;
	}
	if (r == -EKEYEXPIRED) {
		http_respond_error(req, 401, "The download token has expired.");
		return 0;
	}
	if (r == -ENOKEY || r == -ENOMEM || r == -EIO) {
		log_msg(LOG_LEVEL_ERR, "request %s: download token check: %s",
			http_request_id(req), strerror(-r));
		http_respond_error(req, 500, MSG_INTERNAL);
		return 0;
	}
	if (r < 0) {
		http_respond_error(req, 401, "The download token is not valid.");
		return 0;
	}
	const char *server = NULL, *backup = NULL, *unique = NULL;
	if (jwt_claim_string(claims, "server_uuid", &server) < 0 ||
	    jwt_claim_string(claims, "backup_uuid", &backup) < 0 ||
	    jwt_claim_string(claims, "unique_id", &unique) < 0 || !*unique) {
		http_respond_error(req, 401, "The download token is not valid.");
		goto out;
	}
	/* Checked before the id is spent, as Wings: a token for another node's server
	 * stays usable there. */
	struct stat st;
	char *root = uuid_is_canonical(server) ? str_printf("%s/%s", svc->data_dir, server) : NULL;
	bool known = root && stat(root, &st) == 0 && S_ISDIR(st.st_mode);
	free(root);
	/* Amber's "adapter" claim names the instance the backup is in (a stock panel's
	 * tokens have none: the default instance). Only local files can be served. */
	struct instance *in = NULL;
	const char *adapter = NULL;
	r = jwt_claim_string(claims, "adapter", &adapter);
	if (r == -ENOENT) {
		in = node_default_instance(svc);
	} else if (r == 0) {
		in = instance_set_find(svc->instances, adapter);
		if (!in || !node_instance_is_local(in))
			known = false;
	} else {
		known = false;
	}
	if (!known || !uuid_is_canonical(backup)) {
		http_respond_error(req, 404, MSG_DL_NOT_FOUND);
		goto out;
	}
	r = store_download_use_once(svc->store, unique, now);
	if (r == -EEXIST) {
		log_msg(LOG_LEVEL_NOTICE,
			"request %s: download of backup %s refused: token replayed",
			http_request_id(req), backup);
		http_respond_error(req, 404, MSG_DL_NOT_FOUND);
		goto out;
	}
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "request %s: download of backup %s: one-time id store: %s",
			http_request_id(req), backup, strerror(-r));
		http_respond_error(req, 500, MSG_INTERNAL);
		goto out;
	}
	/* The local adapter's files are served directly (sendfile, Range); other adapters
	 * will stream through their readers once that path exists. */
	const char *dir = NULL;
	char key[NODE_KEY_MAX];
	if (!in || !node_instance_is_local(in) ||
	    adapter_config_get_string(in->config, "path", &dir) < 0 || !dir ||
	    node_backup_key(in, server, backup, key, sizeof(key)) < 0) {
		http_respond_error(req, 501, "Downloads from this node's backup adapter are not "
					     "supported yet.");
		goto out;
	}
	char *path = str_printf("%s/%s", dir, key);
	int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	free(path);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		http_respond_error(req, 404, MSG_NO_BACKUP);
		goto out;
	}
	/* The stored name is .tar.gz whatever the compression (see backup_key); the
	 * user's copy is named after what it holds, so a zstd backup is not opened with
	 * gunzip. gzip keeps Wings' octet-stream. */
	unsigned char magic[4];
	ssize_t nm = pread(fd, magic, sizeof(magic), 0);
	enum stored_format fmt = stored_format_sniff(magic, nm > 0 ? (size_t)nm : 0);
	const char *ext = fmt == STORED_ZSTD ? "tar.zst"
			  : fmt == STORED_TAR ? "tar" : "tar.gz";
	const char *type = fmt == STORED_ZSTD ? "application/zstd"
			   : fmt == STORED_TAR ? "application/x-tar"
						      : "application/octet-stream";
	char name[NODE_UUID_LEN + 16];
	snprintf(name, sizeof(name), "%s.%s", backup, ext);
	log_msg(LOG_LEVEL_INFO, "request %s: download of backup %s of server %s (%lld bytes)",
		http_request_id(req), backup, server, (long long)st.st_size);
	http_respond_file(req, fd, st.st_size, type, name);
out:
	json_decref(claims);
	return 0;
}

void node_routes_init(struct node_service *svc)
{
	const struct http_route r[NODE_N_ROUTES] = {
		{ "POST", "/api/servers/:server/backup", h_create, svc },
		{ "POST", "/api/servers/:server/backup/:backup/restore", h_restore, svc },
		{ "DELETE", "/api/servers/:server/backup/:backup", h_delete, svc },
		{ "GET", "/api/servers/:server/backup/:backup", h_status, svc },
		{ "GET", "/download/backup", h_download, svc },
	};
	memcpy(svc->routes, r, sizeof(r));
}

const struct http_route *node_service_routes(struct node_service *svc, size_t *ret_n)
{
	*ret_n = NODE_N_ROUTES;
	return svc->routes;
}
