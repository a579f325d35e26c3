/* The node service: state shared by the node API's routes (routes_node.c) and the jobs
 * they start. This file owns the service's life (new, drain, free), the jobs themselves
 * (create, restore, delete) and how their results reach the panel.
 *
 * Reports: every job builds its own remote client whose cancel flag is the job's, so a
 * drain that runs out of time cuts a report short and the remote client spools it to
 * <state_dir>/outbox instead of the drain waiting out a whole retry budget. Jobs that
 * never ran (discarded by a drain) are reported failed with a single attempt, spooled
 * when the panel does not answer. Without a panel_url every report is spooled. */
#include "node_service.h"
#include "node_service_int.h"

#include "archive_create.h"
#include "archive_restore.h"
#include "backup.h"
#include "hash.h"
#include "host.h"
#include "instances.h"
#include "jobs.h"
#include "log.h"
#include "part_upload.h"
#include "resumable_upload.h"
#include "remote_client.h"
#include "store.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_JOBS 2u
/* A discarded job's failure report gets one quick attempt: the drain runs it on the
 * thread that is shutting the node down. */
#define DISCARD_REPORT_TIMEOUT_MS 3000u

bool node_instance_is_local(const struct instance *in)
{
	return in->ops->name && strcmp(in->ops->name, "wings") == 0;
}

int node_backup_key(const struct instance *in, const char *server, const char *backup,
		    char *out, size_t cap)
{
	/* wings keeps Wings' own layout (<path>/<uuid>.tar.gz) so a node switched from
	 * Wings still finds its old backups; object stores group by server as Pelican. */
	return backup_key(node_instance_is_local(in) ? NULL : server, backup, out, cap);
}

struct instance *node_default_instance(const struct node_service *svc)
{
	/* The node does not know the panel's default adapter; "wings" is what a stock
	 * panel sends, and a node with one instance has no choice to make. */
	struct instance *in = instance_set_find(svc->instances, "wings");
	if (in)
		return in;
	return svc->instances->n > 0 ? svc->instances->v[0] : NULL;
}

/* ---- reports ---- */

static struct remote_client *job_client(struct node_service *svc, const atomic_int *cancel,
					bool quick)
{
	if (!svc->panel_url)
		return NULL;
	struct remote_client_config rc = {
		.panel_url = svc->panel_url,
		.token_id = svc->token_id,
		.token = svc->token,
		.retry_budget_ms = svc->report_retry_budget_ms,
		.cancel = cancel,
		.outbox_dir = svc->outbox_dir,
		.no_retry = quick,
		.timeout_ms = quick ? DISCARD_REPORT_TIMEOUT_MS : 0,
	};
	struct remote_client *c = NULL;
	return remote_client_new(&rc, &c) == 0 ? c : NULL;
}

/* What became of a report, for the job's one log line. */
static void describe_delivery(int rc, const struct remote_status *st, char *what,
			      size_t what_cap)
{
	if (rc == 0)
		snprintf(what, what_cap, "delivered");
	else if (st->spooled)
		snprintf(what, what_cap, "spooled (%s)", st->detail[0] ? st->detail : strerror(-rc));
	else
		snprintf(what, what_cap, "refused: HTTP %ld %s", st->http_status,
			 st->detail[0] ? st->detail : strerror(-rc));
}

/* Delivers (or spools) a backup report; fills what for the caller's log line. */
static int send_backup_report(struct node_service *svc, const atomic_int *cancel, bool quick,
			      const char *backup, const struct backup_report *r, char *what,
			      size_t what_cap)
{
	struct remote_client *c = job_client(svc, cancel, quick);
	int rc;
	if (!c) {
		rc = remote_outbox_put_backup(svc->outbox_dir, backup, r);
		snprintf(what, what_cap, "%s", rc == 0 ? "spooled (no panel)" : strerror(-rc));
		return rc;
	}
	struct remote_status st = { 0 };
	rc = remote_backup_report(c, backup, r, &st);
	remote_client_free(c);
	describe_delivery(rc, &st, what, what_cap);
	return rc;
}

static int send_restore_report(struct node_service *svc, const atomic_int *cancel, bool quick,
			       const char *backup, bool successful, char *what, size_t what_cap)
{
	struct remote_client *c = job_client(svc, cancel, quick);
	int rc;
	if (!c) {
		rc = remote_outbox_put_restore(svc->outbox_dir, backup, successful);
		snprintf(what, what_cap, "%s", rc == 0 ? "spooled (no panel)" : strerror(-rc));
		return rc;
	}
	struct remote_status st = { 0 };
	rc = remote_restore_report(c, backup, successful, &st);
	remote_client_free(c);
	describe_delivery(rc, &st, what, what_cap);
	return rc;
}

/* ---- journal ---- */

static char *journal_path(const struct node_service *svc, enum job_kind kind,
			  const char *backup)
{
	return str_printf("%s/%s.%s", svc->journal_dir, kind == JOB_BACKUP ? "backup" : "restore",
			  backup);
}

int node_journal_add(struct node_service *svc, enum job_kind kind, const char *backup)
{
	char *path = journal_path(svc, kind, backup);
	if (!path)
		return -ENOMEM;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r = fd >= 0 ? 1 : errno == EEXIST ? 0 : -errno;
	if (fd >= 0) {
		/* The entry must survive the crash it is there for. */
		if (fsync(fd) < 0)
			r = -errno;
		close(fd);
		int dfd = open(svc->journal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	free(path);
	return r;
}

void node_journal_remove(struct node_service *svc, enum job_kind kind, const char *backup)
{
	char *path = journal_path(svc, kind, backup);
	if (path && unlink(path) < 0 && errno != ENOENT)
		log_msg(LOG_LEVEL_WARNING, "journal: cannot remove %s: %s, ignoring", path,
			strerror(errno));
	free(path);
}

/* Jobs accepted by a node that died before reporting them: the panel is told they
 * failed (through the outbox, delivered by the next flush). */
static void journal_recover(struct node_service *svc)
{
	DIR *d = opendir(svc->journal_dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		enum job_kind kind;
		const char *backup;
		if (strncmp(de->d_name, "backup.", 7) == 0) {
			kind = JOB_BACKUP;
			backup = de->d_name + 7;
		} else if (strncmp(de->d_name, "restore.", 8) == 0) {
			kind = JOB_RESTORE;
			backup = de->d_name + 8;
		} else {
			continue;
		}
		if (!uuid_is_canonical(backup))
			continue;
		int r;
		if (kind == JOB_BACKUP) {
			struct backup_report rep = {
				.successful = false,
				.error = "the node stopped before the backup finished",
			};
			r = remote_outbox_put_backup(svc->outbox_dir, backup, &rep);
		} else {
			r = remote_outbox_put_restore(svc->outbox_dir, backup, false);
		}
		if (r < 0) {
			log_msg(LOG_LEVEL_ERR, "journal: %s %s was interrupted, but its failure "
					       "report cannot be spooled: %s", job_kind_name(kind),
				backup, strerror(-r));
			continue;
		}
		log_msg(LOG_LEVEL_WARNING, "journal: %s of backup %s was interrupted by a stop of "
					   "the node; reporting it failed", job_kind_name(kind),
			backup);
		node_journal_remove(svc, kind, backup);
	}
	closedir(d);
}

/* ---- jobs ---- */

void node_job_free(void *arg)
{
	struct node_job *nj = arg;
	if (!nj)
		return;
	free(nj->root);
	free(nj->ignore);
	free(nj->url);
	free(nj);
}

static void create_progress(void *opaque, const struct archive_progress *p)
{
	job_progress_update(opaque, p->bytes_read, p->bytes_written, p->files, p->total_bytes);
}

static void restore_progress(void *opaque, const struct archive_restore_progress *p)
{
	job_progress_update(opaque, p->bytes_in, p->bytes_written, p->files, 0);
}

static int restore_cancelled(void *opaque)
{
	return job_cancelled(opaque);
}

static const char *ctx_reason(const struct amber_ctx *ctx, int r)
{
	return ctx->message[0] ? ctx->message : strerror(-r);
}

/* Names for a job's context and log lines when no instance serves it. */
static const char *job_adapter(const struct node_job *nj)
{
	return nj->in ? nj->in->ops->name : nj->remote_store ? nj->remote_store : NODE_S3_ADAPTER;
}

static const char *job_instance(const struct node_job *nj)
{
	return nj->in ? nj->in->name : nj->url ? "(download_url)" : "(panel-presigned)";
}

/* The archive engine's result and an upload's own reason, into ctx: the upload's reason
 * beats the engine's "the sink failed". */
static void upload_error(struct amber_ctx *ctx, const struct backup_create_req *req,
			 const struct archive_create_result *res, int r, const char *why)
{
	if (r < 0 && why[0] && !res->too_big)
		host_ctx_set_error(ctx, host_errno_to_code(r), "upload: %s%s", why,
				   r == -EFBIG ? " (were files added while the backup ran?)" : "");
	else if (r < 0 && !ctx->code)
		host_ctx_set_error(ctx, host_errno_to_code(r), "archiving %s: %s", req->root,
				   strerror(-r));
}

/* Amber's gcs mode: the panel signed a URL that opens a resumable upload session
 * (ABI 1.1); the stream goes there chunk by chunk, one chunk in memory, no local copy. */
static int resumable_create(struct node_job *nj, struct amber_ctx *ctx,
			    const struct backup_create_req *req, struct archive_create_result *res,
			    const struct remote_part_urls *urls, struct resumable_upload **ret_ru)
{
	log_msg(LOG_LEVEL_NOTICE,
		"request %s: backup %s: adapter \"%s\" has no instance on this node, so the "
		"panel presigns a resumable upload session: chunks of %" PRIu64 " bytes",
		nj->request_id, nj->backup, nj->remote_store, urls->chunk_size);
	struct resumable_upload_config rc = {
		.start_url = urls->resumable_url,
		.start_headers = (const char *const *)urls->resumable_headers,
		.n_start_headers = urls->n_resumable_headers,
		.chunk_size = urls->chunk_size,
		.retry = ctx->retry,
		.cancel = ctx->cancel,
	};
	int r = resumable_upload_new(&rc, ret_ru);
	if (r < 0) {
		host_ctx_set_error(ctx, host_errno_to_code(r), "starting the upload: %s",
				   r == -EINVAL ? "the panel's chunk size or URL is not usable"
						: strerror(-r));
		return r;
	}
	struct amber_sink sink = resumable_upload_sink(*ret_ru);
	r = backup_create_sink(req, &sink, ctx, res);
	if (r == 0)
		r = resumable_upload_finish(*ret_ru);
	upload_error(ctx, req, res, r, resumable_upload_error(*ret_ru));
	return r;
}

/* Wings' s3 mode (pterodactyl-protocol.md §3.1, §4.3; design.md §3): ask the panel for
 * presigned UploadPart URLs covering the archive's exact upper bound, stream the archive
 * into parts of the panel's part_size with several in flight, and hand back the parts
 * used for the report. Unlike Wings, nothing is written to local disk first (a part at
 * most, when parts are too large for memory) and a failed part is re-sent whole. When
 * the panel's store takes a resumable session instead (gcs), resumable_create. */
static int presigned_create(struct job *job, struct node_job *nj, struct amber_ctx *ctx,
			    const struct backup_create_req *req, struct archive_create_result *res,
			    struct remote_part_urls *urls, struct part_upload **ret_pu,
			    struct resumable_upload **ret_ru)
{
	struct node_service *svc = nj->svc;
	uint64_t bound = 0;
	int r = backup_compressed_bound(req, ctx, &bound);
	if (r < 0)
		return r;
	/* A limited backup stops before it passes its limit: no part is needed past it. */
	if (nj->max_size && nj->max_size < bound)
		bound = nj->max_size;
	struct remote_client *c = job_client(svc, job_cancel_flag(job), false);
	if (!c) {
		host_ctx_set_error(ctx, AMBER_EINVAL,
				   "panel-presigned uploads need the panel (node.panel_url)");
		return -EINVAL;
	}
	struct remote_status st = { 0 };
	r = remote_backup_part_urls(c, nj->backup, bound, urls, &st);
	remote_client_free(c);
	if (r < 0) {
		host_ctx_set_error(ctx, host_errno_to_code(r),
				   "asking the panel for upload URLs (size %" PRIu64 "): %s", bound,
				   st.detail[0] ? st.detail : strerror(-r));
		return r;
	}
	if (urls->resumable_url)
		return resumable_create(nj, ctx, req, res, urls, ret_ru);
	if (urls->part_size == 0) {
		host_ctx_set_error(ctx, AMBER_EINVAL, "the panel gave a part_size of 0");
		return -EBADMSG;
	}
	unsigned in_flight = PART_UPLOAD_IN_FLIGHT;
	if (urls->max_concurrent_uploads && urls->max_concurrent_uploads < in_flight)
		in_flight = urls->max_concurrent_uploads;
	log_msg(LOG_LEVEL_NOTICE,
		"request %s: backup %s: adapter \"%s\" has no instance on this node, so the "
		"panel presigns the upload (Wings' s3 mode): %zu part URLs of %" PRIu64
		" bytes for an upper bound of %" PRIu64 " bytes, %u in flight%s",
		nj->request_id, nj->backup, nj->remote_store, urls->n, urls->part_size, bound,
		urls->part_size > PART_UPLOAD_MEMORY_MAX ? PART_UPLOAD_SPOOL_IN_FLIGHT : in_flight,
		urls->part_size > PART_UPLOAD_MEMORY_MAX ? ", parts spooled to state_dir" : "");
	struct part_upload_config pc = {
		.urls = (const char *const *)urls->urls,
		.n_urls = urls->n,
		.part_size = urls->part_size,
		.in_flight = in_flight,
		.spool_dir = svc->state_dir, /* not /tmp, which may be memory */
		.retry = ctx->retry,
		.cancel = ctx->cancel,
	};
	r = part_upload_new(&pc, ret_pu);
	if (r < 0) {
		host_ctx_set_error(ctx, host_errno_to_code(r), "starting the part upload: %s",
				   strerror(-r));
		return r;
	}
	struct amber_sink sink = part_upload_sink(*ret_pu);
	r = backup_create_sink(req, &sink, ctx, res);
	if (r == 0)
		r = part_upload_finish(*ret_pu);
	upload_error(ctx, req, res, r, part_upload_error(*ret_pu));
	return r;
}

int node_run_backup(struct job *job, void *arg)
{
	struct node_job *nj = arg;
	struct node_service *svc = nj->svc;
	struct amber_ctx ctx;
	host_ctx_init(&ctx, job_adapter(nj), job_instance(nj), "backup", nj->request_id);
	ctx.cancel = job_cancel_flag(job);
	struct backup_create_req req = {
		.instance = nj->in,
		.key = nj->key,
		.root = nj->root,
		.ignore = nj->ignore,
		/* Panel-presigned uploads (no instance) stay gzip: a stock panel names and
		 * serves them as .tar.gz. */
		.compression = nj->in ? nj->in->compression : ARCHIVE_COMPRESSION_GZIP,
		.level = nj->in ? nj->in->level : ARCHIVE_LEVEL_FAST,
		.threads = svc->threads,
		.io_bytes_per_s = svc->io_bytes_per_s,
		.progress = create_progress,
		.progress_opaque = job,
		.max_bytes = nj->max_size,
	};
	struct archive_create_result res;
	memset(&res, 0, sizeof(res));
	struct remote_part_urls urls = { 0 };
	struct part_upload *pu = NULL;
	struct resumable_upload *ru = NULL;
	int r = nj->presigned ? presigned_create(job, nj, &ctx, &req, &res, &urls, &pu, &ru)
			      : backup_create(&req, &ctx, &res);

	char sha1[2 * HASH_SHA1_LEN + 1] = "", sha256[2 * HASH_SHA256_LEN + 1] = "";
	struct remote_part *parts = NULL;
	size_t n_parts = 0;
	if (r == 0 && pu) {
		const struct part_upload_part *pp = part_upload_parts(pu, &n_parts);
		parts = calloc(n_parts ? n_parts : 1, sizeof(*parts));
		if (!parts) {
			r = -ENOMEM;
			host_ctx_set_error(&ctx, AMBER_ENOMEM, "out of memory");
		}
		for (size_t i = 0; parts && i < n_parts; i++)
			parts[i] = (struct remote_part){ pp[i].etag, pp[i].part_number };
	}
	struct backup_report rep = { .successful = r == 0 };
	if (r == 0) {
		hash_hex(res.sha1, HASH_SHA1_LEN, sha1);
		hash_hex(res.sha256, HASH_SHA256_LEN, sha256);
		rep.checksum = sha1;
		rep.sha256 = sha256;
		rep.size = res.bytes_out;
		rep.parts = parts;
		rep.n_parts = n_parts;
	} else {
		/* parts null: the panel aborts the multipart upload (§3.2). */
		rep.error = ctx_reason(&ctx, r);
	}
	char what[320];
	int rr = send_backup_report(svc, job_cancel_flag(job), false, nj->backup, &rep, what,
				    sizeof(what));
	node_journal_remove(svc, JOB_BACKUP, nj->backup);
	if (r == 0 && pu)
		log_msg(rr == 0 ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING,
			"request %s: backup %s of server %s uploaded to panel-presigned parts: %"
			PRIu64 " files, %" PRIu64 " bytes in %zu parts (%u retried), sha1 %s; "
			"report %s",
			nj->request_id, nj->backup, nj->server, res.files, res.bytes_out, n_parts,
			part_upload_retries(pu), sha1, what);
	else if (r == 0 && ru)
		log_msg(rr == 0 ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING,
			"request %s: backup %s of server %s uploaded to a panel-presigned %s "
			"session: %" PRIu64 " files, %" PRIu64 " bytes (%u attempts retried), sha1 %s; "
			"report %s",
			nj->request_id, nj->backup, nj->server, nj->remote_store, res.files,
			res.bytes_out, resumable_upload_retries(ru), sha1, what);
	else if (r == 0)
		log_msg(rr == 0 ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING,
			"request %s: backup %s of server %s to %s/%s done: %" PRIu64
			" files, %" PRIu64 " bytes, sha1 %s; report %s",
			nj->request_id, nj->backup, nj->server, nj->in->name, nj->key, res.files,
			res.bytes_out, sha1, what);
	else
		log_msg(LOG_LEVEL_ERR,
			"request %s: backup %s of server %s to %s failed: %s; report %s",
			nj->request_id, nj->backup, nj->server, job_instance(nj),
			ctx_reason(&ctx, r), what);
	free(parts);
	part_upload_free(pu);
	resumable_upload_free(ru);
	remote_part_urls_free(&urls);
	archive_create_result_clear(&res);
	return r;
}

/* A download_url without its query, which holds the signature. */
static void url_for_log(const char *url, char *out, size_t cap)
{
	snprintf(out, cap, "%.*s", (int)strcspn(url, "?#"), url);
}

int node_run_restore(struct job *job, void *arg)
{
	struct node_job *nj = arg;
	struct node_service *svc = nj->svc;
	struct amber_ctx ctx;
	host_ctx_init(&ctx, job_adapter(nj), job_instance(nj), "restore", nj->request_id);
	ctx.cancel = job_cancel_flag(job);
	struct archive_restore_opts opts = {
		.root = nj->root,
		.truncate = nj->truncate,
		.uid = svc->restore_uid,
		.gid = svc->restore_gid,
		.threads = svc->threads,
		.io_bytes_per_s = svc->io_bytes_per_s,
		.progress = restore_progress,
		.progress_opaque = job,
		.cancelled = restore_cancelled,
		.cancelled_opaque = job,
	};
	struct archive_restore_result res;
	memset(&res, 0, sizeof(res));
	char from[256];
	unsigned resumes = 0;
	int r;
	if (nj->url) {
		url_for_log(nj->url, from, sizeof(from));
		r = backup_restore_url(nj->url, &opts, &ctx, &res, &resumes);
	} else {
		snprintf(from, sizeof(from), "%s/%s", nj->in->name, nj->key);
		r = backup_restore(nj->in, nj->key, &opts, &ctx, &res);
	}
	char what[320];
	int rr = send_restore_report(svc, job_cancel_flag(job), false, nj->backup, r == 0, what,
				     sizeof(what));
	node_journal_remove(svc, JOB_RESTORE, nj->backup);
	if (r == 0)
		log_msg(rr == 0 ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING,
			"request %s: restore of backup %s into server %s from %s done: %" PRIu64
			" files, %" PRIu64 " bytes, %" PRIu64 " entries refused%s, %u resumed "
			"requests; report %s",
			nj->request_id, nj->backup, nj->server, from, res.files, res.bytes_written,
			res.refused, nj->truncate ? " (truncated first)" : "", resumes, what);
	else
		log_msg(LOG_LEVEL_ERR,
			"request %s: restore of backup %s into server %s from %s failed: %s; "
			"report %s",
			nj->request_id, nj->backup, nj->server, from, ctx_reason(&ctx, r), what);
	archive_restore_result_clear(&res);
	return r;
}

int node_run_delete(struct job *job, void *arg)
{
	struct node_job *nj = arg;
	struct amber_ctx ctx;
	host_ctx_init(&ctx, nj->in->ops->name, nj->in->name, "delete", nj->request_id);
	ctx.cancel = job_cancel_flag(job);
	int r = backup_delete(nj->in, nj->key, &ctx);
	/* A missing object is the caller's 404, not a failure of the node. */
	if (r == 0 || r == -ENOENT)
		log_msg(LOG_LEVEL_NOTICE, "request %s: delete of backup %s (%s/%s): %s",
			nj->request_id, nj->backup, nj->in->name, nj->key,
			r == 0 ? "removed" : "not found");
	else
		log_msg(LOG_LEVEL_ERR, "request %s: delete of backup %s (%s/%s) failed: %s",
			nj->request_id, nj->backup, nj->in->name, nj->key, ctx_reason(&ctx, r));
	return r;
}

/* A job the drain threw away before it ran: the panel still waits for its result. */
static void on_discard(void *opaque, struct job *job, void *arg)
{
	struct node_service *svc = opaque;
	struct node_job *nj = arg;
	char what[320];
	enum job_kind kind = job_get_kind(job);
	if (kind == JOB_BACKUP) {
		struct backup_report rep = {
			.successful = false,
			.error = "the node shut down before the backup started",
		};
		send_backup_report(svc, NULL, true, nj->backup, &rep, what, sizeof(what));
	} else if (kind == JOB_RESTORE) {
		send_restore_report(svc, NULL, true, nj->backup, false, what, sizeof(what));
	} else {
		/* A delete's caller is waiting on the job and answers for it. */
		return;
	}
	node_journal_remove(svc, kind, nj->backup);
	log_msg(LOG_LEVEL_WARNING,
		"request %s: %s job for backup %s of server %s discarded by shutdown; report %s",
		nj->request_id, job_kind_name(kind), nj->backup, nj->server, what);
}

/* ---- life ---- */

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) == 0)
		return 0;
	int e = errno;
	struct stat st;
	if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return -(e == EEXIST ? ENOTDIR : e);
}

int node_service_new(const struct node_service_config *cfg, struct node_service **ret,
		     char **ret_err)
{
	*ret = NULL;
	*ret_err = NULL;
	if (!cfg->data_dir || !*cfg->data_dir || !cfg->state_dir || !*cfg->state_dir ||
	    !cfg->instances) {
		*ret_err = str_printf("node: data_dir, state_dir and the adapter instances are "
				      "required");
		return -EINVAL;
	}
	/* An empty token would let anyone call the API and mint download tokens. */
	if (!cfg->token || !*cfg->token) {
		*ret_err = str_printf("node: token is required");
		return -EINVAL;
	}
	if (cfg->panel_url && (!cfg->token_id || !*cfg->token_id)) {
		*ret_err = str_printf("node: token_id is required to report to the panel");
		return -EINVAL;
	}
	struct node_service *svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	int r = -ENOMEM;
	svc->data_dir = strdup(cfg->data_dir);
	svc->state_dir = strdup(cfg->state_dir);
	svc->outbox_dir = str_printf("%s/outbox", cfg->state_dir);
	svc->journal_dir = str_printf("%s/jobs", cfg->state_dir);
	svc->token = strdup(cfg->token);
	svc->token_id = cfg->token_id ? strdup(cfg->token_id) : NULL;
	svc->panel_url = cfg->panel_url && *cfg->panel_url ? strdup(cfg->panel_url) : NULL;
	if (!svc->data_dir || !svc->state_dir || !svc->outbox_dir || !svc->journal_dir ||
	    !svc->token ||
	    (cfg->token_id && !svc->token_id) || (cfg->panel_url && *cfg->panel_url &&
						   !svc->panel_url))
		goto fail;
	svc->token_len = strlen(svc->token);
	SHA256((const unsigned char *)svc->token, svc->token_len, svc->token_hash);
	svc->instances = cfg->instances;
	svc->report_retry_budget_ms = cfg->report_retry_budget_ms;
	svc->restore_uid = cfg->restore_uid;
	svc->restore_gid = cfg->restore_gid;
	svc->threads = cfg->threads;
	svc->io_bytes_per_s = cfg->io_bytes_per_s;
	atomic_init(&svc->draining, 0);

	r = make_dir(svc->state_dir);
	if (r == 0)
		r = make_dir(svc->journal_dir);
	if (r < 0) {
		*ret_err = str_printf("node: state directory %s: %s", svc->state_dir, strerror(-r));
		goto fail;
	}
	journal_recover(svc);
	char *db = str_printf("%s/node.db", svc->state_dir);
	if (!db) {
		r = -ENOMEM;
		goto fail;
	}
	r = store_open(db, &svc->store);
	if (r < 0)
		*ret_err = str_printf("node: database %s: %s", db, strerror(-r));
	free(db);
	if (r < 0)
		goto fail;
	r = job_pool_new(cfg->max_concurrent_jobs ? cfg->max_concurrent_jobs : DEFAULT_MAX_JOBS,
			 &svc->pool);
	if (r < 0) {
		*ret_err = str_printf("node: max_concurrent_jobs must be 1..%u",
				      JOB_MAX_CONCURRENT_MAX);
		goto fail;
	}
	job_pool_set_on_discard(svc->pool, on_discard, svc);
	if (svc->panel_url) {
		struct remote_client_config rc = {
			.panel_url = svc->panel_url,
			.token_id = svc->token_id,
			.token = svc->token,
			.retry_budget_ms = svc->report_retry_budget_ms,
		};
		r = remote_client_new(&rc, &svc->flush_client);
		if (r < 0) {
			*ret_err = str_printf("node: panel_url/token: %s",
					      r == -EINVAL ? "not usable in a request header"
							   : strerror(-r));
			goto fail;
		}
	}
	node_routes_init(svc);
	*ret = svc;
	return 0;
fail:
	if (!*ret_err)
		*ret_err = str_printf("node: %s", strerror(-r));
	node_service_free(svc);
	return r;
}

static void on_flushed(void *userdata, const char *file, const char *backup_uuid,
		       enum remote_report_kind kind, int rc, const struct remote_status *st)
{
	(void)userdata;
	(void)file;
	if (rc == -EAGAIN || rc == -ECANCELED)
		return; /* still spooled; the summary line says how many */
	log_msg(rc == 0 ? LOG_LEVEL_NOTICE : LOG_LEVEL_ERR,
		"outbox: %s report of backup %s %s%s%s", kind == REMOTE_REPORT_BACKUP ? "backup"
											: "restore",
		backup_uuid,
		rc == 0 ? "delivered" : rc == -EBADMSG ? "corrupt, moved aside" : "rejected",
		rc != 0 && st && st->detail[0] ? ": " : "", rc != 0 && st ? st->detail : "");
}

int node_service_flush_outbox(struct node_service *svc)
{
	if (!svc->flush_client)
		return 0; /* nowhere to deliver to */
	struct remote_outbox_result res = { 0 };
	int r = remote_outbox_flush(svc->flush_client, svc->outbox_dir, on_flushed, svc, &res);
	if (r < 0)
		log_msg(LOG_LEVEL_ERR, "outbox %s: %s", svc->outbox_dir, strerror(-r));
	else if (res.kept)
		log_msg(LOG_LEVEL_WARNING, "outbox: %u report(s) kept, the panel is unreachable",
			res.kept);
	return r;
}

int node_service_drain(struct node_service *svc, int timeout_ms)
{
	atomic_store(&svc->draining, 1);
	return job_pool_drain(svc->pool, timeout_ms);
}

void node_service_free(struct node_service *svc)
{
	if (!svc)
		return;
	/* Running jobs are cancelled now; their reports are spooled (see the top). */
	if (svc->pool)
		job_pool_free(svc->pool);
	remote_client_free(svc->flush_client);
	store_close(svc->store);
	free(svc->data_dir);
	free(svc->state_dir);
	free(svc->outbox_dir);
	free(svc->journal_dir);
	free(svc->token);
	free(svc->token_id);
	free(svc->panel_url);
	free(svc);
}
