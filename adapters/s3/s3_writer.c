/*
 * The create stream: buffered into part_size parts, uploaded as a multipart upload
 * with up to parallel_parts parts in flight; a small archive is one PutObject.
 *
 * Parts go out on worker threads, each with its own curl handle (and so its own
 * connection), rather than through one curl multi loop: a part's life (send, wait,
 * back off, re-send the same bytes from memory) is then straight-line code, the host's
 * backoff service (which sleeps) can be called as is, and the host thread is never
 * needed to drive transfers between writer_write calls.
 *
 * Memory: the part being filled plus at most parallel_parts parts queued or in flight,
 * i.e. (parallel_parts + 1) x part_size. Nothing touches local disk.
 *
 * Workers use the operation's ctx only for is_cancelled and backoff (thread-safe host
 * services); their failures are recorded here and set on the ctx by the host's thread.
 */
#include "s3_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct part {
	struct part *next;
	uint32_t number;
	char *data;
	size_t len;
};

struct amber_writer {
	amber_instance *in;
	char *key;
	char *content_type;
	CURL *curl; /* the host thread's own requests */

	char *cur; /* the part being filled */
	size_t cur_len, cur_cap;
	uint64_t total;
	char *upload_id;
	uint32_t next_number; /* of the next part handed to the workers */
	int committed;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	amber_ctx *ctx;
	struct part *head, *tail;
	unsigned pending; /* queued + in flight */
	char **etags;     /* [number - 1] */
	size_t etags_cap;
	int stop;
	int failed;
	struct s3_err fail;
	pthread_t *threads;
	unsigned n_threads;
};

static void record_failure(amber_writer *w, const struct s3_err *err)
{
	/* Call with the lock held; the first failure is the one reported. */
	if (!w->failed) {
		w->failed = 1;
		w->fail = *err;
	}
}

static int upload_part(amber_writer *w, CURL *curl, amber_ctx *ctx, struct part *p,
		       char **ret_etag, struct s3_err *err)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", (unsigned)p->number);
	struct sigv4_kv q[2] = { { "partNumber", num }, { "uploadId", w->upload_id } };
	char what[48];
	snprintf(what, sizeof(what), "UploadPart %u", (unsigned)p->number);
	struct s3_req rq = { .method = "PUT", .key = w->key, .query = q, .n_query = 2,
			     .body = p->data, .body_len = p->len, .md5 = 1, .what = what };
	struct s3_resp resp;
	int r = s3_request(w->in, curl, ctx, &rq, &resp, err);
	strbuf_reset(&resp.body);
	if (r < 0)
		return r;
	if (!resp.etag[0]) {
		err->code = AMBER_EIO;
		snprintf(err->msg, sizeof(err->msg), "%s: HTTP %ld without an ETag", what,
			 resp.status);
		return err->code;
	}
	*ret_etag = strdup(resp.etag);
	if (!*ret_etag) {
		err->code = AMBER_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return err->code;
	}
	return 0;
}

static void *worker(void *arg)
{
	amber_writer *w = arg;
	CURL *curl = curl_easy_init();

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head)
			break; /* stop, and nothing left */
		struct part *p = w->head;
		w->head = p->next;
		if (!w->head)
			w->tail = NULL;
		int skip = w->failed || w->stop;
		amber_ctx *ctx = w->ctx;
		pthread_mutex_unlock(&w->lock);

		char *etag = NULL;
		struct s3_err err = { 0 };
		int r = 0;
		if (!skip && !curl) {
			err.code = AMBER_ENOMEM;
			snprintf(err.msg, sizeof(err.msg), "cannot create a curl handle");
			r = err.code;
		} else if (!skip) {
			r = upload_part(w, curl, ctx, p, &etag, &err);
		}
		free(p->data);

		pthread_mutex_lock(&w->lock);
		if (r < 0)
			record_failure(w, &err);
		else if (etag)
			w->etags[p->number - 1] = etag;
		free(p);
		w->pending--;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	if (curl)
		curl_easy_cleanup(curl);
	return NULL;
}

int s3_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
		   const amber_object_info *hint, amber_writer **ret)
{
	*ret = NULL;
	size_t len = key ? strnlen(key, 1025) : 0;
	if (len == 0 || len > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "key must be 1 to 1024 bytes");
	amber_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	const char *ct = hint && AMBER_HAS(hint, amber_object_info, content_type) &&
					 hint->content_type
				 ? hint->content_type
				 : "application/gzip";
	w->in = self;
	w->key = strdup(key);
	w->content_type = strdup(ct);
	w->curl = curl_easy_init();
	w->next_number = 1;
	w->ctx = ctx;
	if (!w->key || !w->content_type || !w->curl || pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w->key);
		free(w->content_type);
		if (w->curl)
			curl_easy_cleanup(w->curl);
		free(w);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	if (pthread_cond_init(&w->cond, NULL) != 0) {
		pthread_mutex_destroy(&w->lock);
		free(w->key);
		free(w->content_type);
		curl_easy_cleanup(w->curl);
		free(w);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	*ret = w;
	return AMBER_OK;
}

static int start_workers(amber_writer *w, amber_ctx *ctx)
{
	unsigned n = w->in->parallel_parts;
	w->threads = calloc(n, sizeof(*w->threads));
	if (!w->threads)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&w->threads[i], NULL, worker, w) != 0) {
			if (i == 0)
				return amber_host_api->set_error(ctx, AMBER_ENOMEM,
								 "cannot start an upload thread");
			break; /* fewer parts in flight, still correct */
		}
		w->n_threads++;
	}
	return AMBER_OK;
}

/* Hands the filled part to the workers, waiting while parallel_parts are pending. */
static int submit(amber_writer *w, amber_ctx *ctx)
{
	if (w->next_number > S3_MAX_PARTS)
		return amber_host_api->set_error(ctx, AMBER_EINVAL,
						 "%s: more than %d parts; raise part_size", w->key,
						 S3_MAX_PARTS);
	struct part *p = calloc(1, sizeof(*p));
	if (!p)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	p->number = w->next_number;
	p->data = w->cur;
	p->len = w->cur_len;

	pthread_mutex_lock(&w->lock);
	w->ctx = ctx;
	if (p->number > w->etags_cap) {
		size_t cap = w->etags_cap ? w->etags_cap * 2 : 64;
		char **e = realloc(w->etags, cap * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&w->lock);
			free(p);
			return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		}
		memset(e + w->etags_cap, 0, (cap - w->etags_cap) * sizeof(*e));
		w->etags = e;
		w->etags_cap = cap;
	}
	int rc = AMBER_OK;
	while (w->pending >= w->n_threads && !w->failed) {
		if (amber_host_api->is_cancelled(ctx)) {
			rc = AMBER_ECANCELED;
			break;
		}
		/* Timed, so a cancellation is seen while parts are slow. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
	if (rc == AMBER_OK && w->failed) {
		struct s3_err e = w->fail;
		pthread_mutex_unlock(&w->lock);
		free(p);
		return s3_set_error(ctx, &e);
	}
	if (rc < 0) {
		pthread_mutex_unlock(&w->lock);
		free(p);
		return amber_host_api->set_error(ctx, rc, "%s: cancelled", w->key);
	}
	if (w->tail)
		w->tail->next = p;
	else
		w->head = p;
	w->tail = p;
	w->pending++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	w->next_number++;
	w->cur = NULL; /* the part is the workers' now */
	w->cur_len = w->cur_cap = 0;
	return AMBER_OK;
}

int s3_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len)
{
	const char *src = data;
	size_t part = (size_t)w->in->part_size;
	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (amber_host_api->is_cancelled(ctx))
		return amber_host_api->set_error(ctx, AMBER_ECANCELED, "%s: cancelled", w->key);
	pthread_mutex_lock(&w->lock);
	w->ctx = ctx;
	int failed = w->failed;
	struct s3_err e = w->fail;
	pthread_mutex_unlock(&w->lock);
	if (failed)
		return s3_set_error(ctx, &e);

	while (len > 0) {
		if (w->cur_len == w->cur_cap) {
			/* The first part grows as it fills (a small archive stays small); once
			 * the upload is multipart, every part takes its full size at once. */
			size_t cap = w->upload_id ? part
						  : (w->cur_cap ? w->cur_cap * 2 : (size_t)1 << 20);
			if (cap > part)
				cap = part;
			char *b = realloc(w->cur, cap);
			if (!b)
				return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
			w->cur = b;
			w->cur_cap = cap;
		}
		size_t n = w->cur_cap - w->cur_len;
		if (n > len)
			n = len;
		memcpy(w->cur + w->cur_len, src, n);
		w->cur_len += n;
		w->total += n;
		src += n;
		len -= n;
		if (w->cur_len < part)
			continue;
		/* A full part: the stream is at least this large, so it goes multipart. */
		if (!w->upload_id) {
			struct s3_err err;
			if (s3_mpu_create(w->in, w->curl, ctx, w->key, w->content_type, &w->upload_id,
					  &err) < 0)
				return s3_set_error(ctx, &err);
			int r = start_workers(w, ctx);
			if (r < 0)
				return r;
		}
		int r = submit(w, ctx);
		if (r < 0)
			return r;
	}
	return AMBER_OK;
}

static int put_object(amber_writer *w, amber_ctx *ctx)
{
	struct sigv4_kv h[2];
	size_t nh = 0;
	h[nh++] = (struct sigv4_kv){ "content-type", w->content_type };
	if (w->in->storage_class)
		h[nh++] = (struct sigv4_kv){ "x-amz-storage-class", w->in->storage_class };
	struct s3_req rq = { .method = "PUT", .key = w->key, .headers = h, .n_headers = nh,
			     .body = w->cur, .body_len = w->cur_len, .md5 = 1,
			     .what = "PutObject" };
	struct s3_resp resp;
	struct s3_err err;
	int r = s3_request(w->in, w->curl, ctx, &rq, &resp, &err);
	strbuf_reset(&resp.body);
	return r < 0 ? s3_set_error(ctx, &err) : AMBER_OK;
}

int s3_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *final_info)
{
	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed", w->key);
	if (final_info && AMBER_HAS(final_info, amber_object_info, size) &&
	    final_info->size != AMBER_SIZE_UNKNOWN && final_info->size != w->total)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
						 "%s: received %" PRIu64 " bytes, expected %" PRIu64,
						 w->key, w->total, final_info->size);
	if (!w->upload_id) {
		int r = put_object(w, ctx);
		if (r == AMBER_OK)
			w->committed = 1;
		return r;
	}
	if (w->cur_len > 0) {
		int r = submit(w, ctx);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&w->lock);
	w->ctx = ctx;
	while (w->pending > 0)
		pthread_cond_wait(&w->cond, &w->lock);
	int failed = w->failed;
	struct s3_err e = w->fail;
	pthread_mutex_unlock(&w->lock);
	if (failed)
		return s3_set_error(ctx, &e);
	if (amber_host_api->is_cancelled(ctx))
		return amber_host_api->set_error(ctx, AMBER_ECANCELED, "%s: cancelled", w->key);

	size_t n = w->next_number - 1;
	uint32_t *nums = calloc(n, sizeof(*nums));
	if (!nums)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		nums[i] = (uint32_t)(i + 1);
	struct s3_err err;
	int r = s3_mpu_complete(w->in, w->curl, ctx, w->key, w->upload_id, nums, w->etags, n, &err);
	free(nums);
	if (r < 0)
		return s3_set_error(ctx, &err);
	w->committed = 1;
	return AMBER_OK;
}

void s3_writer_free(amber_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	if (!w->committed && w->upload_id) {
		/* No partial object can appear without a Complete, so this only frees the
		 * stored parts. Stores that do not implement it (s3rver answers 405) keep
		 * them until their own lifecycle rules clean up; nothing to do about it
		 * here, and no ctx to report on, hence a log line. */
		struct s3_err err;
		if (s3_mpu_abort(w->in, w->curl, NULL, w->key, w->upload_id, &err) < 0)
			amber_host_api->log(NULL, AMBER_LOG_NOTICE,
					    "%s: abort of upload left parts behind: %s", w->key,
					    err.msg);
	}
	for (size_t i = 0; i < w->etags_cap; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->threads);
	free(w->cur);
	free(w->upload_id);
	free(w->key);
	free(w->content_type);
	curl_easy_cleanup(w->curl);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
