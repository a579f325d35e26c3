/*
 * memory: the smallest complete Amber storage adapter. Copy it to start your own.
 *
 * Objects live in a list in the instance and vanish with the process, so this is a
 * store for tests and a template, not for backups. Every method of the ABI is here,
 * each keeping the contract written in <amber/adapter.h>:
 *   - nothing is visible under a key before writer_commit; writer_free without a
 *     commit leaves nothing behind;
 *   - a missing key is AMBER_ENOTFOUND; running out of room is AMBER_ENOSPC;
 *   - the optional methods (config_check, presign, list) are here too; leave out any
 *     your store cannot do: a NULL method means "not supported";
 *   - every failure returns through set_error, which records the message for the
 *     host, and the adapter logs none of them itself;
 *   - the instance may be used from many threads at once (AMBER_CAP_CONCURRENT), so
 *     its shared state sits behind a mutex.
 */
#define _POSIX_C_SOURCE 200809L
#include <amber/adapter.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 1024

/* The bytes of one object. A writer grows it in place; once committed it never changes.
 * A reader holds a reference, so overwriting or removing the key while a restore runs
 * does not pull the bytes from under it. */
struct blob {
	atomic_uint refs;
	size_t size;
	unsigned char data[];
};

struct object {
	struct object *next;
	char *key;
	struct blob *blob;
	time_t mtime; /* of the last commit */
};

struct amber_instance {
	pthread_mutex_t lock; /* guards objects and used */
	struct object *objects;
	uint64_t used; /* bytes of committed objects, plus bytes held by open writers */
	uint64_t max_bytes;
	const char *name;  /* the instance's name; the config keeps it alive */
	const char *token; /* NULL when not configured */
};

struct amber_writer {
	amber_instance *inst;
	char *key;
	struct blob *blob; /* NULL until the first byte */
	size_t cap;
	int committed;
};

struct amber_reader {
	struct blob *blob;
	size_t pos;
};

static const amber_config_field memory_config[] = {
	{ "max_bytes", AMBER_CFG_SIZE, 0, "64MiB",
	  "capacity; a create that would exceed it fails with no space" },
	{ "token", AMBER_CFG_STRING, AMBER_CFG_SECRET, NULL,
	  "optional secret that signs presigned URLs" },
	{ 0 },
};

static void blob_unref(struct blob *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1)
		free(b);
}

/* Call with the instance locked. */
static struct object **find(amber_instance *self, const char *key)
{
	struct object **p = &self->objects;

	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

static int check_key(amber_ctx *ctx, const char *key)
{
	/* The host validates keys; an adapter refuses only what its store cannot hold.
	 * Here: control characters, which would break list's line format. */
	size_t len = key ? strnlen(key, KEY_MAX + 1) : 0;

	if (len == 0 || len > KEY_MAX)
		return amber_host_api->set_error(ctx, AMBER_EINVAL,
						 "key must be 1 to %d bytes long", KEY_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return amber_host_api->set_error(ctx, AMBER_EINVAL,
							 "key holds a control character");
	return AMBER_OK;
}

/* Shared by config_check (`amber config check`, no side effects) and instance_new. */
static int read_config(const amber_config *cfg, amber_ctx *ctx, uint64_t *ret_max,
		       const char **ret_token)
{
	int r = amber_host_api->config_get_size(cfg, "max_bytes", ret_max);
	if (r < 0)
		return amber_host_api->set_error(ctx, r, "max_bytes: cannot read the setting");
	if (*ret_max == 0)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "max_bytes: must be above 0");

	/* Unset and without a default: AMBER_ENOTFOUND, which is fine for an optional key.
	 * The value is secret: it never goes into a message or a log line. */
	*ret_token = NULL;
	r = amber_host_api->config_get_string(cfg, "token", ret_token);
	if (r < 0 && r != AMBER_ENOTFOUND)
		return amber_host_api->set_error(ctx, r, "token: cannot read the setting");
	if (*ret_token && !**ret_token)
		return amber_host_api->set_error(ctx, AMBER_EINVAL,
						 "token: empty; leave it out instead");
	return AMBER_OK;
}

static int memory_config_check(const amber_config *cfg, amber_ctx *ctx)
{
	uint64_t max;
	const char *token;

	return read_config(cfg, ctx, &max, &token);
}

static int memory_instance_new(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret)
{
	uint64_t max;
	const char *token;

	*ret = NULL; /* the contract: NULL on failure, and the host then calls no *_free */
	int r = read_config(cfg, ctx, &max, &token);
	if (r < 0)
		return r;

	amber_instance *self = calloc(1, sizeof(*self));
	if (!self)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	if (pthread_mutex_init(&self->lock, NULL) != 0) {
		free(self);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "cannot create a mutex");
	}
	self->max_bytes = max;
	self->token = token;
	self->name = amber_host_api->config_instance_name(cfg);
	*ret = self;
	return AMBER_OK;
}

/* The host frees every writer and reader of an instance before the instance. */
static void memory_instance_free(amber_instance *self)
{
	if (!self)
		return;
	while (self->objects) {
		struct object *o = self->objects;
		self->objects = o->next;
		blob_unref(o->blob);
		free(o->key);
		free(o);
	}
	pthread_mutex_destroy(&self->lock);
	free(self);
}

static int memory_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
			      const amber_object_info *hint, amber_writer **ret)
{
	(void)hint; /* the size is usually unknown while streaming, and we do not need it */
	*ret = NULL;
	int r = check_key(ctx, key);
	if (r < 0)
		return r;

	amber_writer *w = calloc(1, sizeof(*w));
	size_t len = strlen(key);
	char *k = malloc(len + 1);
	if (!w || !k) {
		free(w);
		free(k);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	memcpy(k, key, len + 1);
	w->inst = self;
	w->key = k;
	*ret = w;
	return AMBER_OK;
}

static size_t writer_size(const amber_writer *w)
{
	return w->blob ? w->blob->size : 0;
}

static int memory_writer_write(amber_writer *w, amber_ctx *ctx, const void *data, size_t len)
{
	amber_instance *self = w->inst;
	size_t size = writer_size(w);

	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed",
						 w->key);
	if (len == 0)
		return AMBER_OK;
	if (len > SIZE_MAX - sizeof(struct blob) - size) /* only reachable on 32-bit hosts */
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "%s: too large", w->key);

	/* Reserve the room first, so parallel writers cannot overshoot max_bytes together. */
	pthread_mutex_lock(&self->lock);
	int full = len > self->max_bytes - self->used;
	if (!full)
		self->used += len;
	pthread_mutex_unlock(&self->lock);
	if (full)
		return amber_host_api->set_error(ctx, AMBER_ENOSPC,
						 "%s: store full (max_bytes = %" PRIu64 ")", w->key,
						 self->max_bytes);

	if (size + len > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < size + len && cap <= SIZE_MAX / 4)
			cap *= 2;
		if (cap < size + len)
			cap = size + len;
		struct blob *b = cap <= SIZE_MAX - sizeof(*b) ? realloc(w->blob, sizeof(*b) + cap)
							       : NULL;
		if (!b) {
			pthread_mutex_lock(&self->lock);
			self->used -= len;
			pthread_mutex_unlock(&self->lock);
			return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		}
		if (!w->blob)
			b->size = 0;
		w->blob = b;
		w->cap = cap;
	}
	memcpy(w->blob->data + size, data, len);
	w->blob->size += len;
	return AMBER_OK;
}

static int memory_writer_commit(amber_writer *w, amber_ctx *ctx,
				const amber_object_info *final_info)
{
	amber_instance *self = w->inst;
	size_t size = writer_size(w);

	if (w->committed)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "%s: already committed",
						 w->key);
	/* Read a host -> adapter member only if the host's struct has it. */
	if (final_info && AMBER_HAS(final_info, amber_object_info, size) &&
	    final_info->size != AMBER_SIZE_UNKNOWN && final_info->size != size)
		return amber_host_api->set_error(ctx, AMBER_EINTEGRITY,
						 "%s: received %zu bytes, expected %" PRIu64,
						 w->key, size, final_info->size);

	struct object *fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	if (!w->blob) { /* an empty object */
		w->blob = malloc(sizeof(*w->blob));
		if (!w->blob) {
			free(fresh);
			return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		}
		w->blob->size = 0;
	}
	atomic_init(&w->blob->refs, 1);

	/* The one moment the object becomes visible: swap it in under the lock. */
	struct blob *old = NULL;
	time_t now = time(NULL);
	pthread_mutex_lock(&self->lock);
	struct object **p = find(self, w->key);
	if (*p) {
		old = (*p)->blob;
		self->used -= old->size;
		(*p)->blob = w->blob;
		(*p)->mtime = now;
	} else {
		fresh->key = w->key;
		fresh->blob = w->blob;
		fresh->mtime = now;
		fresh->next = self->objects;
		self->objects = fresh;
		w->key = NULL; /* now owned by the object */
		fresh = NULL;
	}
	pthread_mutex_unlock(&self->lock);
	free(fresh);

	w->blob = NULL; /* the bytes stay reserved: they are the object's now */
	w->committed = 1;
	blob_unref(old);
	return AMBER_OK;
}

/* Without a commit this is the abort: drop the bytes and give their room back. */
static void memory_writer_free(amber_writer *w)
{
	if (!w)
		return;
	if (!w->committed && w->blob) {
		pthread_mutex_lock(&w->inst->lock);
		w->inst->used -= w->blob->size;
		pthread_mutex_unlock(&w->inst->lock);
	}
	free(w->blob);
	free(w->key);
	free(w);
}

static int memory_reader_open(amber_instance *self, amber_ctx *ctx, const char *key,
			      uint64_t offset, amber_object_info *ret_info, amber_reader **ret)
{
	*ret = NULL;
	int r = check_key(ctx, key);
	if (r < 0)
		return r;

	amber_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");

	/* Decide and take the reference under the lock: once it is released, a concurrent
	 * remove may free the object (but not a blob we hold a reference to). */
	struct blob *b = NULL;
	uint64_t size = 0;
	pthread_mutex_lock(&self->lock);
	struct object *o = *find(self, key);
	if (o) {
		size = o->blob->size;
		if (offset <= size) {
			b = o->blob;
			atomic_fetch_add(&b->refs, 1);
		}
	}
	pthread_mutex_unlock(&self->lock);

	if (!b) {
		free(rd);
		if (!o)
			return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s", key);
		return amber_host_api->set_error(ctx, AMBER_EINVAL,
						 "%s: offset %" PRIu64 " is past the end (%" PRIu64
						 " bytes)",
						 key, offset, size);
	}
	rd->blob = b;
	rd->pos = (size_t)offset;
	/* Fill an adapter-filled output member only if the host's struct has it. */
	if (ret_info && AMBER_HAS(ret_info, amber_object_info, size))
		ret_info->size = rd->blob->size;
	*ret = rd;
	return AMBER_OK;
}

static int64_t memory_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	(void)ctx; /* reading memory cannot fail */
	size_t n = r->blob->size - r->pos;

	if (n > cap)
		n = cap;
	memcpy(buf, r->blob->data + r->pos, n);
	r->pos += n;
	return (int64_t)n; /* 0 once at the end */
}

static void memory_reader_free(amber_reader *r)
{
	if (!r)
		return;
	blob_unref(r->blob);
	free(r);
}

static int memory_remove(amber_instance *self, amber_ctx *ctx, const char *key)
{
	int r = check_key(ctx, key);
	if (r < 0)
		return r;

	pthread_mutex_lock(&self->lock);
	struct object **p = find(self, key);
	struct object *o = *p;
	if (o) {
		*p = o->next;
		self->used -= o->blob->size;
	}
	pthread_mutex_unlock(&self->lock);

	if (!o) /* the host decides whether deleting nothing is an error */
		return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s", key);
	blob_unref(o->blob);
	free(o->key);
	free(o);
	return AMBER_OK;
}

static int memory_list(amber_instance *self, amber_ctx *ctx, const char *prefix, amber_buf *out)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	int r = AMBER_OK;

	/* buf_append only copies into host memory, so holding our lock across it is fine. */
	pthread_mutex_lock(&self->lock);
	for (struct object *o = self->objects; o && r == AMBER_OK; o = o->next) {
		if (plen && strncmp(o->key, prefix, plen) != 0)
			continue;
		char num[64];
		snprintf(num, sizeof(num), "\t%zu\t%lld\n", o->blob->size, (long long)o->mtime);
		r = amber_host_api->buf_append(out, o->key, strlen(o->key));
		if (r == AMBER_OK)
			r = amber_host_api->buf_append(out, num, strlen(num));
	}
	pthread_mutex_unlock(&self->lock);
	if (r < 0)
		return amber_host_api->set_error(ctx, r, "cannot append to the listing");
	return AMBER_OK;
}

/* Percent-encodes s into the host's buffer; keep_slash leaves '/' as it is. */
static int append_escaped(amber_buf *url, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			    c == '~' || (keep_slash && c == '/');
		char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
		int r = plain ? amber_host_api->buf_append(url, s, 1)
			      : amber_host_api->buf_append(url, esc, sizeof(esc));
		if (r < 0)
			return r;
	}
	return AMBER_OK;
}

/* A stand-in for a real signature: FNV-1a is NOT cryptographic. A real adapter signs
 * with HMAC-SHA256 (or the provider's scheme); the point here is only the shape: the
 * secret shapes the URL but never appears in it. */
static uint64_t toy_signature(const char *token, const char *key, uint64_t expires)
{
	char exp[24];
	const char *parts[] = { token, "\n", key, "\n", exp };
	uint64_t h = UINT64_C(14695981039346656037);

	snprintf(exp, sizeof(exp), "%" PRIu64, expires);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
	return h;
}

/* Presigned URLs point at memory the process owns, so no client can fetch them: they
 * exist to show the method's contract (and let tests exercise the host's side of it). */
static int memory_presign(amber_instance *self, amber_ctx *ctx, const char *key,
			  uint32_t method, uint32_t ttl_seconds, amber_buf *url,
			  uint64_t *ret_expires_unix)
{
	if (method != AMBER_PRESIGN_GET)
		return amber_host_api->set_error(ctx, AMBER_ENOTSUP,
						 "only download URLs can be presigned");
	if (ttl_seconds == 0)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "ttl must be above 0");
	/* Like an object store's, signing is offline: the key need not exist yet, and
	 * fetching the URL of a missing object is the fetcher's 404. */
	int r = check_key(ctx, key);
	if (r < 0)
		return r;

	uint64_t expires = (uint64_t)time(NULL) + ttl_seconds;
	char query[64];
	if (self->token)
		snprintf(query, sizeof(query), "?expires=%" PRIu64 "&sig=%016" PRIx64, expires,
			 toy_signature(self->token, key, expires));
	else
		snprintf(query, sizeof(query), "?expires=%" PRIu64, expires);

	if ((r = amber_host_api->buf_append(url, "memory://", 9)) < 0 ||
	    (r = append_escaped(url, self->name, 0)) < 0 ||
	    (r = amber_host_api->buf_append(url, "/", 1)) < 0 ||
	    (r = append_escaped(url, key, 1)) < 0 ||
	    (r = amber_host_api->buf_append(url, query, strlen(query))) < 0)
		return amber_host_api->set_error(ctx, r, "cannot build the URL");
	*ret_expires_unix = expires;
	return AMBER_OK;
}

/* Designated initializers: members appended in later ABI minors stay NULL/0. */
static const amber_adapter memory_adapter = {
	.struct_size = sizeof(amber_adapter),
	.abi_major = AMBER_ABI_MAJOR,
	.abi_minor = AMBER_ABI_MINOR,
	.min_host_abi_minor = 0, /* we use nothing added after 1.0 */
	.name = "memory",        /* must equal the file name: memory.so */
	.version = "1.0.0",
	.description = "in-memory store for tests and as an adapter template",
	.caps = AMBER_CAP_CONCURRENT | AMBER_CAP_RANGE_READ | AMBER_CAP_PRESIGN_GET,
	.config = memory_config,
	.config_check = memory_config_check,
	.instance_new = memory_instance_new,
	.instance_free = memory_instance_free,
	.writer_open = memory_writer_open,
	.writer_write = memory_writer_write,
	.writer_commit = memory_writer_commit,
	.writer_free = memory_writer_free,
	.reader_open = memory_reader_open,
	.reader_read = memory_reader_read,
	.reader_free = memory_reader_free,
	.remove = memory_remove,
	.presign = memory_presign,
	.list = memory_list,
};

AMBER_DECLARE_ADAPTER(memory_adapter)
