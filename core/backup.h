/* Backup operations through an adapter instance: the archive engine on one side, the
 * adapter's streams on the other. Each returns 0 or a negative errno; the reason is on
 * ctx->message for the caller (who decides, and logs once). */
#ifndef AMBER_BACKUP_H
#define AMBER_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive_create.h"
#include "archive_restore.h"
#include "host.h"
#include "uuid.h"

struct instance;

/* "<uuid>.tar.gz", or "<server>/<uuid>.tar.gz" when server is not NULL. -EINVAL when
 * either is not a canonical UUID. zstd backups keep this key: the Wings protocol and
 * a stock panel's presigned uploads fix it, and restore, delete and download find a
 * backup by it without knowing how it was compressed. The content (and the media type
 * given to the adapter, and the download's name) tell the format. */
int backup_key(const char *server, const char *uuid, char *out, size_t cap);

struct backup_create_req {
	struct instance *instance;
	const char *key;
	const char *root;
	/* Ignore patterns as the request gave them (lines or commas). NULL or empty: the
	 * root's .pteroignore, if there is one. */
	const char *ignore;
	enum archive_compression compression; /* the instance's, unless a command overrides */
	enum archive_level level;
	unsigned threads;
	uint64_t io_bytes_per_s; /* file bytes read per second; 0: no limit */
	void (*progress)(void *opaque, const struct archive_progress *p);
	void *progress_opaque;
	/* Compressed bytes the archive may reach; 0: no limit. Past it the write is aborted
	 * (nothing stored) and backup_create fails with -EFBIG, the limit on ctx->message. */
	uint64_t max_bytes;
};

int backup_create(const struct backup_create_req *req, struct amber_ctx *ctx,
		  struct archive_create_result *ret);
/* An upper bound on the uncompressed archive backup_create would write for req (the
 * same ignore rules): file bytes plus BACKUP_ENTRY_OVERHEAD per entry for its header.
 * Reads only metadata. 0 or a negative errno, the reason on ctx->message. */
#define BACKUP_ENTRY_OVERHEAD 512u
int backup_estimate(const struct backup_create_req *req, struct amber_ctx *ctx,
		    uint64_t *ret_bytes);
/* The compressed size backup_create cannot exceed for req's tree as it is now (the same
 * ignore rules): archive_tar_bound's tar bound through archive_compressed_bound. This is
 * the `size` a panel presigns S3 parts for (design.md §3). Reads only metadata. 0 or a
 * negative errno, the reason on ctx->message. */
int backup_compressed_bound(const struct backup_create_req *req, struct amber_ctx *ctx,
			    uint64_t *ret_bytes);
/* backup_create into a caller's sink rather than an instance's writer (req->instance and
 * req->key are not used). On failure the sink has a partial stream; the caller aborts
 * what it holds. The reason is on ctx->message unless the sink's own error caused it. */
int backup_create_sink(const struct backup_create_req *req, const struct amber_sink *sink,
		       struct amber_ctx *ctx, struct archive_create_result *ret);
int backup_restore(struct instance *in, const char *key, const struct archive_restore_opts *opts,
		   struct amber_ctx *ctx, struct archive_restore_result *ret);
/* Restores from a URL (a panel's download_url; see url_source.h): the response head is
 * checked before the engine starts, so a refused URL never truncates anything. The
 * reason of a failure is on ctx->message; *ret_resumes (if not NULL) gets the number of
 * requests sent after the first. */
int backup_restore_url(const char *url, const struct archive_restore_opts *opts,
		       struct amber_ctx *ctx, struct archive_restore_result *ret,
		       unsigned *ret_resumes);
/* A missing object is -ENOENT; the caller decides whether that matters. */
int backup_delete(struct instance *in, const char *key, struct amber_ctx *ctx);
/* Lines "<key>\t<size>\t<mtime>\n" into out; -ENOTSUP when the adapter cannot list. */
int backup_list(struct instance *in, const char *prefix, struct amber_ctx *ctx,
		struct amber_buf *out);

#endif
