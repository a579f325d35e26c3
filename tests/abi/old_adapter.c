/* An adapter built against the oldest released header (tests/abi/frozen/1.0): the
 * current host must keep loading it. It stores objects in memory so a real round trip
 * can be run through it. */
#include <amber/adapter.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct object {
	char *key;
	unsigned char *data;
	size_t len;
	struct object *next;
};

struct amber_instance {
	pthread_mutex_t lock;
	struct object *objects;
};

struct amber_writer {
	amber_instance *in;
	char *key;
	unsigned char *data;
	size_t len, cap;
};

struct amber_reader {
	unsigned char *data;
	size_t len, pos;
};

static int old_new(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret)
{
	amber_instance *in = calloc(1, sizeof(*in));
	if (!in)
		return AMBER_ENOMEM;
	pthread_mutex_init(&in->lock, NULL);
	*ret = in;
	return AMBER_OK;
}

static void old_free(amber_instance *in)
{
	while (in->objects) {
		struct object *o = in->objects;
		in->objects = o->next;
		free(o->key);
		free(o->data);
		free(o);
	}
	pthread_mutex_destroy(&in->lock);
	free(in);
}

static int old_wopen(amber_instance *in, amber_ctx *ctx, const char *key,
		     const amber_object_info *hint, amber_writer **ret)
{
	amber_writer *w = calloc(1, sizeof(*w));
	if (!w || !(w->key = strdup(key))) {
		free(w);
		return AMBER_ENOMEM;
	}
	w->in = in;
	*ret = w;
	return AMBER_OK;
}

static int old_write(amber_writer *w, amber_ctx *ctx, const void *d, size_t n)
{
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		unsigned char *p = realloc(w->data, cap);
		if (!p)
			return AMBER_ENOMEM;
		w->data = p;
		w->cap = cap;
	}
	if (n)
		memcpy(w->data + w->len, d, n);
	w->len += n;
	return AMBER_OK;
}

static struct object **find(amber_instance *in, const char *key)
{
	struct object **p = &in->objects;
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

static int old_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *fin)
{
	struct object *o = calloc(1, sizeof(*o));
	if (!o)
		return AMBER_ENOMEM;
	o->key = w->key;
	o->data = w->data;
	o->len = w->len;
	w->key = NULL;
	w->data = NULL;
	pthread_mutex_lock(&w->in->lock);
	struct object **p = find(w->in, o->key);
	if (*p) {
		struct object *old = *p;
		o->next = old->next;
		free(old->key);
		free(old->data);
		free(old);
	}
	*p = o;
	pthread_mutex_unlock(&w->in->lock);
	return AMBER_OK;
}

static void old_wfree(amber_writer *w)
{
	free(w->key);
	free(w->data);
	free(w);
}

static int old_ropen(amber_instance *in, amber_ctx *ctx, const char *key, uint64_t off,
		     amber_object_info *info, amber_reader **ret)
{
	pthread_mutex_lock(&in->lock);
	struct object *o = *find(in, key);
	amber_reader *r = NULL;
	if (o && (r = calloc(1, sizeof(*r))) && (r->data = malloc(o->len ? o->len : 1))) {
		if (o->len)
			memcpy(r->data, o->data, o->len);
		r->len = o->len;
		r->pos = off < o->len ? (size_t)off : o->len;
	}
	pthread_mutex_unlock(&in->lock);
	if (!o)
		return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "no object %s", key);
	if (!r || !r->data) {
		free(r);
		return AMBER_ENOMEM;
	}
	if (AMBER_HAS(info, amber_object_info, size))
		info->size = r->len;
	*ret = r;
	return AMBER_OK;
}

static int64_t old_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	size_t n = r->len - r->pos < cap ? r->len - r->pos : cap;
	memcpy(buf, r->data + r->pos, n);
	r->pos += n;
	return (int64_t)n;
}

static void old_rfree(amber_reader *r)
{
	free(r->data);
	free(r);
}

static int old_remove(amber_instance *in, amber_ctx *ctx, const char *key)
{
	pthread_mutex_lock(&in->lock);
	struct object **p = find(in, key), *o = *p;
	if (o)
		*p = o->next;
	pthread_mutex_unlock(&in->lock);
	if (!o)
		return AMBER_ENOTFOUND;
	free(o->key);
	free(o->data);
	free(o);
	return AMBER_OK;
}

static const amber_adapter desc = {
	.struct_size = sizeof(amber_adapter),
	.abi_major = AMBER_ABI_MAJOR,
	.abi_minor = AMBER_ABI_MINOR,
	.name = "old",
	.version = "1.0.0",
	.description = "built against the frozen ABI 1.0 header",
	.caps = AMBER_CAP_CONCURRENT | AMBER_CAP_RANGE_READ,
	.instance_new = old_new,
	.instance_free = old_free,
	.writer_open = old_wopen,
	.writer_write = old_write,
	.writer_commit = old_commit,
	.writer_free = old_wfree,
	.reader_open = old_ropen,
	.reader_read = old_read,
	.reader_free = old_rfree,
	.remove = old_remove,
};

AMBER_DECLARE_ADAPTER(desc)
