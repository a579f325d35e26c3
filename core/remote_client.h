/* The node's client for the panel's remote API (pterodactyl-protocol.md §1.3, §3):
 * report a backup's result, report a restore's result, and ask for presigned S3 part
 * URLs. Every call carries the Wings headers, retries transient failures inside a time
 * budget, and can be cancelled on shutdown.
 *
 * A report that still cannot be delivered when the budget runs out (or that was
 * cancelled) is not forgotten: with an outbox directory configured it is written there
 * durably, one file per backup and kind, and remote_outbox_flush delivers it later.
 *
 * The caller must have called curl_global_init(CURL_GLOBAL_DEFAULT) once, before any
 * thread uses a client (main does it; tests do it in their main). A client holds no
 * mutable state after remote_client_new, so several threads may use one at once. */
#ifndef AMBER_REMOTE_CLIENT_H
#define AMBER_REMOTE_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct remote_client;

struct remote_client_config {
	const char *panel_url;  /* e.g. "https://panel.example.com"; trailing '/' dropped */
	const char *token_id;   /* node token id: sent in Authorization and User-Agent */
	const char *token;      /* node token secret */
	const char *version;    /* in the User-Agent; NULL: AMBER_VERSION */
	const char *ua_product; /* NULL: "Pterodactyl Wings" ([Pelican]: "Pelican Wings") */
	const char *accept;     /* NULL: "application/vnd.pterodactyl.v1+json" */
	unsigned timeout_ms;    /* one attempt, whole request; 0: 30000 (remote_query.timeout) */
	unsigned connect_timeout_ms; /* 0: 5000, or timeout_ms when that is smaller */
	/* Retries: exponential backoff with full jitter. No new attempt starts once
	 * retry_budget_ms have passed since the first one began, so a call takes at most
	 * budget + one attempt's timeout. 0 picks each default (30000 / 500 / 12000). */
	unsigned retry_budget_ms;
	unsigned retry_initial_ms;
	unsigned retry_max_interval_ms;
	bool no_retry;              /* one attempt only (the budget is not used) */
	const atomic_int *cancel;   /* non-zero: stop waiting, fail with -ECANCELED; may be NULL */
	const char *outbox_dir;     /* where undeliverable reports are kept; NULL: not kept */
	bool insecure;              /* do not verify the panel's TLS certificate (dev panels) */
};

/* What happened on the wire, for logs and callers that care. */
struct remote_status {
	long http_status;     /* of the last attempt; 0 if no response came back */
	unsigned attempts;    /* requests sent */
	bool spooled;         /* the report was written to the outbox */
	char detail[256];     /* the panel's errors[0].detail, or the transport error */
};

/* Copies everything it needs from cfg. Returns 0, -EINVAL (missing url or token, a
 * token id or secret with characters a header cannot carry) or -ENOMEM. */
int remote_client_new(const struct remote_client_config *cfg, struct remote_client **ret);
void remote_client_free(struct remote_client *c);

/* Return codes of every call below:
 *   0           2xx (for part URLs: and a body that parsed)
 *   -EACCES     401: the panel did not accept the token
 *   -EPERM      403: the token is valid but this node may not touch the resource
 *   -ENOENT     404: unknown backup
 *   -EEXIST     409: already completed (part URLs asked for a completed backup)
 *   -EINVAL     any other 4xx but 429 (400, 422, ...), or bad arguments (not sent)
 *   -EBADMSG    2xx with a body that does not parse as described, or a body past 32 MiB
 *   -EAGAIN     transient failures (transport errors, 5xx, 429, 3xx) outlasted the budget,
 *               or one failure with no_retry
 *   -ECANCELED  the cancel flag was raised
 *   -ENOMEM
 * 4xx other than 429 is never retried: the panel has decided. 429 is (Wings treats it
 * as permanent, but it only ever means "later"); a Retry-After on 429 or 503 sets the
 * next delay, and when it reaches past the budget the call gives up at once. Redirects
 * are not followed (the token must not travel to another host). st may be NULL. */

struct remote_part {
	const char *etag;     /* exactly as S3 returned it, quotes included */
	unsigned part_number; /* from 1 */
};

struct backup_report {
	bool successful;
	const char *checksum; /* hex SHA-1 of the archive; required when successful */
	uint64_t size;        /* archive bytes */
	/* S3 only: the parts used. NULL sends "parts": null (local backups, failures). */
	const struct remote_part *parts;
	size_t n_parts;
	/* Why an unsuccessful backup failed, sent as "error" (an Amber field a stock panel
	 * ignores); NULL or "": left out. Not sent for a successful one. */
	const char *error;
	/* hex SHA-256 of the archive, sent as "sha256_hash" with a successful report (an
	 * Amber field: the client API shows it; a stock panel ignores it); NULL: left out. */
	const char *sha256;
};

/* POST /api/remote/backups/<uuid>. A successful report sends checksum_type "sha1"; a
 * failed one is sent the way Wings sends it: checksum "", checksum_type "", size 0,
 * parts null, whatever r holds besides successful and error, plus "error" when
 * r->error is set (bytes that are not UTF-8 become '?'). */
int remote_backup_report(struct remote_client *c, const char *backup_uuid,
			 const struct backup_report *r, struct remote_status *st);
/* POST /api/remote/backups/<uuid>/restore {"successful": ...}. */
int remote_restore_report(struct remote_client *c, const char *backup_uuid, bool successful,
			  struct remote_status *st);

struct remote_part_urls {
	char **urls;      /* presigned UploadPart URLs, urls[i] is part number i + 1 */
	size_t n;
	uint64_t part_size;
	unsigned max_concurrent_uploads; /* [Pelican]; 0 when the panel did not say */
	/* [Amber] a store that takes the stream through a resumable session (GCS): instead
	 * of parts, one URL to POST with these headers ("Name: value") to open the session,
	 * and the chunk size to send (a multiple of 256 KiB). urls is then empty. */
	char *resumable_url;
	char **resumable_headers;
	size_t n_resumable_headers;
	uint64_t chunk_size;
};
/* GET /api/remote/backups/<uuid>?size=<size>. size must be > 0. On success *ret holds
 * at least enough parts for size bytes, or a resumable_url; free it with
 * remote_part_urls_free. */
int remote_backup_part_urls(struct remote_client *c, const char *backup_uuid, uint64_t size,
			    struct remote_part_urls *ret, struct remote_status *st);
void remote_part_urls_free(struct remote_part_urls *p);

/* ---- outbox ---- */

/* One file per (backup uuid, kind): <uuid>.backup.json or <uuid>.restore.json, written
 * to a temporary name, fsynced, renamed into place and the directory fsynced, so a newer
 * report for the same backup replaces the older one atomically. The directory is made
 * (0700) if missing. The report calls do this themselves when outbox_dir is set and the
 * result is -EAGAIN or -ECANCELED; this is the same step for callers that want it. */
enum remote_report_kind {
	REMOTE_REPORT_BACKUP,
	REMOTE_REPORT_RESTORE,
};
int remote_outbox_put_backup(const char *dir, const char *backup_uuid,
			     const struct backup_report *r);
int remote_outbox_put_restore(const char *dir, const char *backup_uuid, bool successful);

/* What happened to one spooled file; rc is the delivery's return code (0 delivered,
 * -EBADMSG the file was corrupt, -EAGAIN / -ECANCELED kept, others rejected). */
typedef void (*remote_outbox_cb)(void *userdata, const char *file, const char *backup_uuid,
				 enum remote_report_kind kind, int rc,
				 const struct remote_status *st);

struct remote_outbox_result {
	unsigned delivered; /* sent, file removed */
	unsigned rejected;  /* permanent 4xx: file removed, nothing more can be done */
	unsigned corrupt;   /* unreadable: renamed to <name>.corrupt, kept for a human */
	unsigned kept;      /* transient failure or not tried: still spooled */
};

/* Tries to deliver every report spooled in dir, oldest name order. Delivered and
 * permanently rejected reports are removed; corrupt files are moved aside. After the
 * first transient failure the panel is taken to be unreachable and the remaining files
 * are kept without a try (a flush must not cost one retry budget per file). A report
 * spooled again while it is being sent is never lost: the newer file wins.
 * One flush per directory at a time (the daemon's single periodic task): a flush puts
 * back files a crashed flush left claimed, which would race with a live one.
 * Returns 0 when the directory was walked or does not exist (nothing spooled; see *res,
 * which may be NULL), a negative errno if it cannot be read. cb may be NULL. */
int remote_outbox_flush(struct remote_client *c, const char *dir, remote_outbox_cb cb,
			void *userdata, struct remote_outbox_result *res);

#endif
