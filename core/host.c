#include "host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "adapter_config.h"
#include "log.h"

void amber_buf_clear(struct amber_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int svc_buf_append(amber_buf *b, const void *data, size_t len)
{
	if (!b || (!data && len))
		return AMBER_EINVAL;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1) {
			if (cap > SIZE_MAX / 2)
				return AMBER_ENOMEM;
			cap *= 2;
		}
		char *d = realloc(b->data, cap);
		if (!d)
			return AMBER_ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
	return AMBER_OK;
}

void host_ctx_init(struct amber_ctx *ctx, const char *adapter, const char *instance,
		   const char *op, const char *id)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->adapter = adapter;
	ctx->instance = instance;
	ctx->op = op;
	ctx->id = id;
	ctx->retry = (struct host_retry_policy){ .max_attempts = 6, .base_ms = 250,
						 .max_ms = 8000 };
}

/* "instance=x adapter=y op=z id=u:" with the fields the context has. */
static void ctx_prefix(const amber_ctx *ctx, char *out, size_t cap)
{
	if (!ctx) {
		snprintf(out, cap, "adapter:");
		return;
	}
	const char *names[] = { "instance", "adapter", "op", "id" };
	const char *values[] = { ctx->instance, ctx->adapter, ctx->op, ctx->id };
	size_t n = 0;
	out[0] = 0;
	for (size_t i = 0; i < 4 && n < cap; i++) {
		if (!values[i])
			continue;
		int k = snprintf(out + n, cap - n, "%s%s=%s", n ? " " : "", names[i], values[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	if (n < cap)
		snprintf(out + n, cap - n, ":");
}

__attribute__((format(printf, 3, 4))) static void svc_log(amber_ctx *ctx, int level,
							   const char *fmt, ...)
{
	char prefix[256];
	ctx_prefix(ctx, prefix, sizeof(prefix));
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, prefix, fmt, ap);
	va_end(ap);
}

static int ctx_vset_error(amber_ctx *ctx, int code, const char *fmt, va_list ap)
{
	if (code >= 0)
		code = AMBER_ERROR;
	if (!ctx)
		return code;
	ctx->code = code;
	vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
	return code;
}

__attribute__((format(printf, 3, 4))) static int svc_set_error(amber_ctx *ctx, int code,
								const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ctx_vset_error(ctx, code, fmt, ap);
	va_end(ap);
	return r;
}

int host_ctx_set_error(struct amber_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ctx_vset_error(ctx, code, fmt, ap);
	va_end(ap);
	return r;
}

static void svc_set_error_detail(amber_ctx *ctx, const char *key, const char *value)
{
	if (!ctx || !key || !value)
		return;
	size_t i;
	for (i = 0; i < ctx->n_details; i++)
		if (strcmp(ctx->details[i].key, key) == 0)
			break;
	if (i == HOST_CTX_DETAILS_MAX)
		return;
	snprintf(ctx->details[i].key, sizeof(ctx->details[i].key), "%s", key);
	snprintf(ctx->details[i].value, sizeof(ctx->details[i].value), "%s", value);
	if (i == ctx->n_details)
		ctx->n_details++;
}

static int svc_is_cancelled(amber_ctx *ctx)
{
	return ctx && ctx->cancel && atomic_load(ctx->cancel) != 0;
}

uint64_t host_backoff_delay_ms(const struct host_retry_policy *p, unsigned attempt)
{
	uint64_t cap = p->base_ms;
	for (unsigned i = 1; i < attempt && cap < p->max_ms; i++)
		cap *= 2;
	if (cap > p->max_ms)
		cap = p->max_ms;
	/* Full jitter: many nodes retrying against one store must not retry in step. */
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)time(NULL);
	return cap ? r % (cap + 1) : 0;
}

static int svc_backoff(amber_ctx *ctx, unsigned attempt)
{
	struct host_retry_policy def = { 6, 250, 8000 };
	const struct host_retry_policy *p = ctx ? &ctx->retry : &def;
	if (attempt == 0)
		attempt = 1;
	if (attempt > p->max_attempts)
		return AMBER_EAGAIN;
	uint64_t delay = host_backoff_delay_ms(p, attempt);
	while (delay > 0) {
		if (svc_is_cancelled(ctx))
			return AMBER_ECANCELED;
		uint64_t slice = delay > 100 ? 100 : delay;
		struct timespec ts = { 0, (long)slice * 1000000L };
		nanosleep(&ts, NULL);
		delay -= slice;
	}
	return svc_is_cancelled(ctx) ? AMBER_ECANCELED : 0;
}

static void *svc_alloc(size_t n)
{
	return malloc(n);
}

static void svc_free(void *p)
{
	free(p);
}

static const amber_host host_table = {
	.struct_size = sizeof(amber_host),
	.abi_major = AMBER_ABI_MAJOR,
	.abi_minor = AMBER_ABI_MINOR,
	.features = 0,
	.alloc = svc_alloc,
	.free = svc_free,
	.log = svc_log,
	.set_error = svc_set_error,
	.set_error_detail = svc_set_error_detail,
	.is_cancelled = svc_is_cancelled,
	.backoff = svc_backoff,
	.config_get_string = adapter_config_get_string,
	.config_get_int = adapter_config_get_int,
	.config_get_bool = adapter_config_get_bool,
	.config_get_size = adapter_config_get_size,
	.config_get_duration_ms = adapter_config_get_duration_ms,
	.config_instance_name = adapter_config_instance_name,
	.buf_append = svc_buf_append,
};

const amber_host *host_services(void)
{
	return &host_table;
}

static const struct {
	int code;
	int err;
	const char *name;
} code_map[] = {
	{ AMBER_OK, 0, "ok" },
	{ AMBER_ERROR, EIO, "error" },
	{ AMBER_ENOMEM, ENOMEM, "out of memory" },
	{ AMBER_EINVAL, EINVAL, "invalid argument" },
	{ AMBER_ENOTFOUND, ENOENT, "not found" },
	{ AMBER_EEXISTS, EEXIST, "already exists" },
	{ AMBER_ENOTSUP, ENOTSUP, "not supported" },
	{ AMBER_EAUTH, EACCES, "credentials rejected" },
	{ AMBER_EPERM, EPERM, "not allowed" },
	{ AMBER_ENOSPC, ENOSPC, "no space" },
	{ AMBER_EAGAIN, EAGAIN, "temporary failure" },
	{ AMBER_ECANCELED, ECANCELED, "cancelled" },
	{ AMBER_EIO, EIO, "storage failure" },
	{ AMBER_EINTEGRITY, EBADMSG, "integrity check failed" },
};

int host_code_to_errno(int code)
{
	for (size_t i = 0; i < sizeof(code_map) / sizeof(code_map[0]); i++)
		if (code_map[i].code == code)
			return -code_map[i].err;
	return code < 0 ? -EIO : 0;
}

int host_errno_to_code(int neg_errno)
{
	if (neg_errno >= 0)
		return AMBER_OK;
	if (neg_errno == -EDQUOT)
		return AMBER_ENOSPC;
	/* Search backwards so EIO maps to AMBER_EIO, not the generic AMBER_ERROR. */
	for (size_t i = sizeof(code_map) / sizeof(code_map[0]); i-- > 0;)
		if (-code_map[i].err == neg_errno)
			return code_map[i].code;
	return AMBER_ERROR;
}

const char *host_code_name(int code)
{
	for (size_t i = 0; i < sizeof(code_map) / sizeof(code_map[0]); i++)
		if (code_map[i].code == code)
			return code_map[i].name;
	return "unknown error";
}
