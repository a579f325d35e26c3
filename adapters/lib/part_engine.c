/* The parallel part uploader; see part_engine.h. */
#include "part_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct part {
	struct part *next;
	uint32_t number;
	void *data;
	size_t len;
};

struct part_engine {
	part_send_fn send;
	void *arg;
	uint32_t max_parts;
	uint32_t next_number; /* of the next part submitted */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	amber_ctx *ctx;
	struct part *head, *tail;
	unsigned pending; /* queued + in flight */
	char **etags;	  /* [number - 1] */
	size_t etags_cap;
	int stop;
	int failed;
	struct http_err fail;
	pthread_t *threads;
	unsigned n_threads;
};

static void *worker(void *arg)
{
	struct part_engine *pe = arg;
	CURL *curl = curl_easy_init();

	pthread_mutex_lock(&pe->lock);
	for (;;) {
		while (!pe->head && !pe->stop)
			pthread_cond_wait(&pe->cond, &pe->lock);
		if (!pe->head)
			break; /* stop, and nothing left */
		struct part *p = pe->head;
		pe->head = p->next;
		if (!pe->head)
			pe->tail = NULL;
		int skip = pe->failed || pe->stop;
		amber_ctx *ctx = pe->ctx;
		pthread_mutex_unlock(&pe->lock);

		char *etag = NULL;
		struct http_err err = { 0 };
		int r = 0;
		if (!skip && !curl) {
			err.code = AMBER_ENOMEM;
			snprintf(err.msg, sizeof(err.msg), "cannot create a curl handle");
			r = err.code;
		} else if (!skip) {
			r = pe->send(pe->arg, curl, ctx, p->number, p->data, p->len, &etag, &err);
		}
		free(p->data);

		pthread_mutex_lock(&pe->lock);
		if (r < 0 && !pe->failed) { /* the first failure is the one reported */
			pe->failed = 1;
			pe->fail = err;
		}
		if (r == 0 && etag)
			pe->etags[p->number - 1] = etag;
		else
			free(etag);
		free(p);
		pe->pending--;
		pthread_cond_broadcast(&pe->cond);
	}
	pthread_mutex_unlock(&pe->lock);
	if (curl)
		curl_easy_cleanup(curl);
	return NULL;
}

static int fail(struct http_err *err, int code, const char *msg)
{
	memset(err, 0, sizeof(*err));
	err->code = code;
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return code;
}

int part_engine_new(unsigned parallel, uint32_t max_parts, part_send_fn send, void *arg,
		    amber_ctx *ctx, struct part_engine **ret, struct http_err *err)
{
	*ret = NULL;
	struct part_engine *pe = calloc(1, sizeof(*pe));
	if (!pe)
		return fail(err, AMBER_ENOMEM, "out of memory");
	pe->send = send;
	pe->arg = arg;
	pe->max_parts = max_parts;
	pe->next_number = 1;
	pe->ctx = ctx;
	if (pthread_mutex_init(&pe->lock, NULL) != 0) {
		free(pe);
		return fail(err, AMBER_ENOMEM, "out of memory");
	}
	if (pthread_cond_init(&pe->cond, NULL) != 0) {
		pthread_mutex_destroy(&pe->lock);
		free(pe);
		return fail(err, AMBER_ENOMEM, "out of memory");
	}
	if (parallel < 1)
		parallel = 1;
	pe->threads = calloc(parallel, sizeof(*pe->threads));
	if (!pe->threads) {
		part_engine_free(pe);
		return fail(err, AMBER_ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < parallel; i++) {
		if (pthread_create(&pe->threads[i], NULL, worker, pe) != 0)
			break; /* fewer parts in flight, still correct */
		pe->n_threads++;
	}
	if (pe->n_threads == 0) {
		part_engine_free(pe);
		return fail(err, AMBER_ENOMEM, "cannot start an upload thread");
	}
	*ret = pe;
	return 0;
}

int part_engine_submit(struct part_engine *pe, amber_ctx *ctx, void *data, size_t len,
		       struct http_err *err)
{
	if (pe->next_number > pe->max_parts) {
		free(data);
		fail(err, AMBER_EINVAL, "");
		snprintf(err->msg, sizeof(err->msg), "more than %u parts; raise part_size",
			 (unsigned)pe->max_parts);
		return err->code;
	}
	struct part *p = calloc(1, sizeof(*p));
	if (!p) {
		free(data);
		return fail(err, AMBER_ENOMEM, "out of memory");
	}
	p->number = pe->next_number;
	p->data = data;
	p->len = len;

	pthread_mutex_lock(&pe->lock);
	pe->ctx = ctx;
	if (p->number > pe->etags_cap) {
		size_t cap = pe->etags_cap ? pe->etags_cap * 2 : 64;
		char **e = realloc(pe->etags, cap * sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&pe->lock);
			free(p->data);
			free(p);
			return fail(err, AMBER_ENOMEM, "out of memory");
		}
		memset(e + pe->etags_cap, 0, (cap - pe->etags_cap) * sizeof(*e));
		pe->etags = e;
		pe->etags_cap = cap;
	}
	int rc = 0;
	while (pe->pending >= pe->n_threads && !pe->failed) {
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
		pthread_cond_timedwait(&pe->cond, &pe->lock, &ts);
	}
	if (rc == 0 && pe->failed) {
		*err = pe->fail;
		rc = err->code;
	} else if (rc < 0) {
		fail(err, rc, "cancelled");
	}
	if (rc < 0) {
		pthread_mutex_unlock(&pe->lock);
		free(p->data);
		free(p);
		return rc;
	}
	if (pe->tail)
		pe->tail->next = p;
	else
		pe->head = p;
	pe->tail = p;
	pe->pending++;
	pthread_cond_broadcast(&pe->cond);
	pthread_mutex_unlock(&pe->lock);
	pe->next_number++;
	return 0;
}

int part_engine_finish(struct part_engine *pe, amber_ctx *ctx, char *const **ret_etags,
		       size_t *ret_n, struct http_err *err)
{
	pthread_mutex_lock(&pe->lock);
	pe->ctx = ctx;
	while (pe->pending > 0)
		pthread_cond_wait(&pe->cond, &pe->lock);
	int failed = pe->failed;
	if (failed)
		*err = pe->fail;
	pthread_mutex_unlock(&pe->lock);
	if (failed)
		return err->code;
	if (amber_host_api->is_cancelled(ctx))
		return fail(err, AMBER_ECANCELED, "cancelled");
	*ret_etags = pe->etags;
	*ret_n = pe->next_number - 1;
	return 0;
}

void part_engine_free(struct part_engine *pe)
{
	if (!pe)
		return;
	pthread_mutex_lock(&pe->lock);
	pe->stop = 1;
	pthread_cond_broadcast(&pe->cond);
	pthread_mutex_unlock(&pe->lock);
	for (unsigned i = 0; i < pe->n_threads; i++)
		pthread_join(pe->threads[i], NULL);
	for (size_t i = 0; i < pe->etags_cap; i++)
		free(pe->etags[i]);
	free(pe->etags);
	free(pe->threads);
	pthread_cond_destroy(&pe->cond);
	pthread_mutex_destroy(&pe->lock);
	free(pe);
}
