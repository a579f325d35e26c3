#include "backup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compressor.h"
#include "ignore.h"
#include "instances.h"
#include "url_source.h"

int backup_key(const char *server, const char *uuid, char *out, size_t cap)
{
	if (!uuid_is_canonical(uuid) || (server && !uuid_is_canonical(server)))
		return -EINVAL;
	int n = server ? snprintf(out, cap, "%s/%s.tar.gz", server, uuid)
		       : snprintf(out, cap, "%s.tar.gz", uuid);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

struct writer_sink {
	struct instance *in;
	amber_writer *w;
	struct amber_ctx *ctx;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
	struct writer_sink *s = opaque;
	int code = s->in->ops->writer_write(s->w, s->ctx, buf, len);
	return code == 0 ? 0 : host_code_to_errno(code);
}

static int create_cancelled(void *opaque)
{
	struct amber_ctx *ctx = opaque;
	return ctx->cancel && atomic_load(ctx->cancel);
}

static int load_ignore(const struct backup_create_req *req, struct amber_ctx *ctx,
		       struct ignore_rules **ret)
{
	*ret = NULL;
	if (req->ignore && *req->ignore) {
		int r = ignore_rules_new(req->ignore, strlen(req->ignore), ret);
		if (r < 0)
			host_ctx_set_error(ctx, AMBER_EINVAL, "ignore patterns: %s", strerror(-r));
		return r;
	}
	int fd = open(req->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		host_ctx_set_error(ctx, host_errno_to_code(-e), "server directory %s: %s",
				   req->root, strerror(e));
		return -e;
	}
	int r = ignore_rules_load_file(fd, ret);
	close(fd);
	if (r < 0)
		host_ctx_set_error(ctx, AMBER_EINVAL, "%s/%s: %s", req->root, IGNORE_FILE_NAME,
				   r == -ELOOP    ? "is a symlink; refusing to read it"
				   : r == -EFBIG ? "is larger than 32 KiB"
						 : strerror(-r));
	return r;
}

int backup_create(const struct backup_create_req *req, struct amber_ctx *ctx,
		  struct archive_create_result *ret)
{
	struct instance *in = req->instance;
	struct ignore_rules *ignore = NULL;
	int r = load_ignore(req, ctx, &ignore);
	if (r < 0)
		return r;

	amber_object_info hint = { .struct_size = sizeof(hint), .size = AMBER_SIZE_UNKNOWN,
				   .content_type =
					   compression_media_type(req->compression) };
	struct archive_create_opts opts = {
		.root = req->root,
		.ignore = ignore,
		.compression = req->compression,
		.level = req->level,
		.threads = req->threads,
		.io_bytes_per_s = req->io_bytes_per_s,
		.progress = req->progress,
		.progress_opaque = req->progress_opaque,
		.cancelled = create_cancelled,
		.cancelled_opaque = ctx,
		.max_bytes = req->max_bytes,
	};
	instance_lock(in);
	amber_writer *w = NULL;
	int code = in->ops->writer_open(in->handle, ctx, req->key, &hint, &w);
	if (code != 0) {
		instance_unlock(in);
		ignore_rules_free(ignore);
		return host_code_to_errno(code);
	}
	struct writer_sink ws = { in, w, ctx };
	struct amber_sink sink = { sink_write, &ws };
	r = archive_create(&opts, &sink, ret);
	if (r < 0 && ret->too_big)
		host_ctx_set_error(ctx, host_errno_to_code(-EFBIG),
				   "the archive grew past the maximum backup size of %" PRIu64
				   " bytes",
				   req->max_bytes);
	else if (r < 0 && !ctx->code)
		host_ctx_set_error(ctx, host_errno_to_code(r), "archiving %s: %s", req->root,
				   strerror(-r));
	if (r == 0) {
		amber_object_info fin = hint;
		fin.size = ret->bytes_out;
		fin.flags = AMBER_OBJ_SHA256_VALID | AMBER_OBJ_SHA1_VALID;
		memcpy(fin.sha256, ret->sha256, sizeof(fin.sha256));
		memcpy(fin.sha1, ret->sha1, sizeof(fin.sha1));
		code = in->ops->writer_commit(w, ctx, &fin);
		if (code != 0)
			r = host_code_to_errno(code);
	}
	/* Without a successful commit this aborts: nothing partial stays in the store. */
	in->ops->writer_free(w);
	instance_unlock(in);
	ignore_rules_free(ignore);
	return r;
}

/* Walks req's tree under its ignore rules with walk (archive_prewalk or
 * archive_tar_bound: both give a byte count and an entry count); the reason of a failure
 * goes on ctx. */
static int walk_tree(const struct backup_create_req *req, struct amber_ctx *ctx,
		     int (*walk)(const char *root, const struct ignore_rules *ignore,
				 uint64_t *ret_bytes, uint64_t *ret_entries),
		     uint64_t *ret_bytes, uint64_t *ret_entries)
{
	struct ignore_rules *ignore = NULL;
	int r = load_ignore(req, ctx, &ignore);
	if (r < 0)
		return r;
	r = walk(req->root, ignore, ret_bytes, ret_entries);
	ignore_rules_free(ignore);
	if (r < 0)
		host_ctx_set_error(ctx, host_errno_to_code(r), "walking %s: %s", req->root,
				   strerror(-r));
	return r;
}

int backup_estimate(const struct backup_create_req *req, struct amber_ctx *ctx,
		    uint64_t *ret_bytes)
{
	*ret_bytes = 0;
	uint64_t bytes = 0, entries = 0;
	int r = walk_tree(req, ctx, archive_prewalk, &bytes, &entries);
	if (r < 0)
		return r;
	*ret_bytes = bytes + entries * BACKUP_ENTRY_OVERHEAD;
	return 0;
}

int backup_compressed_bound(const struct backup_create_req *req, struct amber_ctx *ctx,
			    uint64_t *ret_bytes)
{
	*ret_bytes = 0;
	uint64_t tar = 0, entries = 0;
	int r = walk_tree(req, ctx, archive_tar_bound, &tar, &entries);
	if (r < 0)
		return r;
	*ret_bytes = archive_compressed_bound(req->compression, tar);
	return 0;
}

int backup_create_sink(const struct backup_create_req *req, const struct amber_sink *sink,
		       struct amber_ctx *ctx, struct archive_create_result *ret)
{
	struct ignore_rules *ignore = NULL;
	memset(ret, 0, sizeof(*ret));
	int r = load_ignore(req, ctx, &ignore);
	if (r < 0)
		return r;
	struct archive_create_opts opts = {
		.root = req->root,
		.ignore = ignore,
		.compression = req->compression,
		.level = req->level,
		.threads = req->threads,
		.io_bytes_per_s = req->io_bytes_per_s,
		.progress = req->progress,
		.progress_opaque = req->progress_opaque,
		.cancelled = create_cancelled,
		.cancelled_opaque = ctx,
		.max_bytes = req->max_bytes,
	};
	r = archive_create(&opts, sink, ret);
	if (r < 0 && ret->too_big)
		host_ctx_set_error(ctx, host_errno_to_code(-EFBIG),
				   "the archive grew past the maximum backup size of %" PRIu64
				   " bytes",
				   req->max_bytes);
	ignore_rules_free(ignore);
	return r;
}

struct reader_source {
	struct instance *in;
	amber_reader *r;
	struct amber_ctx *ctx;
};

static int64_t source_read(void *opaque, void *buf, size_t cap)
{
	struct reader_source *s = opaque;
	int64_t n = s->in->ops->reader_read(s->r, s->ctx, buf, cap);
	return n >= 0 ? n : host_code_to_errno((int)n);
}

int backup_restore(struct instance *in, const char *key, const struct archive_restore_opts *opts,
		   struct amber_ctx *ctx, struct archive_restore_result *ret)
{
	instance_lock(in);
	amber_object_info info = { .struct_size = sizeof(info), .size = AMBER_SIZE_UNKNOWN };
	amber_reader *rd = NULL;
	int code = in->ops->reader_open(in->handle, ctx, key, 0, &info, &rd);
	if (code != 0) {
		instance_unlock(in);
		return host_code_to_errno(code);
	}
	struct reader_source rs = { in, rd, ctx };
	struct amber_source src = { source_read, &rs };
	int r = archive_restore(opts, &src, ret);
	if (r < 0 && !ctx->code)
		host_ctx_set_error(ctx, host_errno_to_code(r), "restoring into %s: %s",
				   opts->root,
				   r == -EBADMSG ? "the backup is not a valid tar.gz/tar.zst archive "
						   "or is damaged"
						 : strerror(-r));
	in->ops->reader_free(rd);
	instance_unlock(in);
	return r;
}

int backup_restore_url(const char *url, const struct archive_restore_opts *opts,
		       struct amber_ctx *ctx, struct archive_restore_result *ret,
		       unsigned *ret_resumes)
{
	memset(ret, 0, sizeof(*ret));
	if (ret_resumes)
		*ret_resumes = 0;
	struct url_source_config cfg = { .url = url, .cancel = ctx->cancel, .retry = ctx->retry };
	struct url_source *us = NULL;
	char why[URL_SOURCE_MESSAGE_MAX];
	int r = url_source_open(&cfg, &us, why, sizeof(why));
	if (r < 0) {
		host_ctx_set_error(ctx, host_errno_to_code(r), "download_url: %s",
				   why[0] ? why : strerror(-r));
		return r;
	}
	struct amber_source src = url_source_source(us);
	r = archive_restore(opts, &src, ret);
	if (r < 0 && url_source_error(us)[0])
		host_ctx_set_error(ctx, host_errno_to_code(r), "download_url: %s",
				   url_source_error(us));
	else if (r < 0)
		host_ctx_set_error(ctx, host_errno_to_code(r), "restoring into %s: %s",
				   opts->root,
				   r == -EBADMSG ? "the download is not a valid tar.gz/tar.zst "
						   "archive or is damaged"
						 : strerror(-r));
	if (ret_resumes)
		*ret_resumes = url_source_resumes(us);
	url_source_free(us);
	return r;
}

int backup_delete(struct instance *in, const char *key, struct amber_ctx *ctx)
{
	instance_lock(in);
	int code = in->ops->remove(in->handle, ctx, key);
	instance_unlock(in);
	return host_code_to_errno(code);
}

int backup_list(struct instance *in, const char *prefix, struct amber_ctx *ctx,
		struct amber_buf *out)
{
	if (!in->ops->list)
		return -ENOTSUP;
	instance_lock(in);
	int code = in->ops->list(in->handle, ctx, prefix ? prefix : "", out);
	instance_unlock(in);
	return host_code_to_errno(code);
}
