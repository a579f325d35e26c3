/* The host side of the adapter ABI: the service table handed to every adapter, the
 * per-operation context, host-owned buffers, and the one mapping between adapter
 * result codes and the core's negative errno codes. */
#ifndef AMBER_HOST_H
#define AMBER_HOST_H

#include <amber/adapter.h>
#include <stdatomic.h>
#include <stddef.h>

struct amber_buf {
	char *data; /* NUL-terminated for convenience; len excludes the NUL */
	size_t len, cap;
};
void amber_buf_clear(struct amber_buf *b);

#define HOST_CTX_MESSAGE_MAX 512
#define HOST_CTX_DETAILS_MAX 8

struct host_retry_policy {
	unsigned max_attempts; /* retries allowed before backoff answers AMBER_EAGAIN */
	unsigned base_ms;      /* first delay; doubles each attempt, with full jitter */
	unsigned max_ms;       /* cap on one delay */
};

/* The delay before attempt (1, 2, ...): full jitter over a cap that starts at p->base_ms
 * and doubles each attempt up to p->max_ms. */
uint64_t host_backoff_delay_ms(const struct host_retry_policy *p, unsigned attempt);

struct amber_ctx {
	/* Log prefix fields; borrowed, must outlive the context. */
	const char *adapter, *instance, *op, *id;
	int code; /* 0 or the AMBER_E* recorded by set_error */
	char message[HOST_CTX_MESSAGE_MAX];
	struct {
		char key[32];
		char value[128];
	} details[HOST_CTX_DETAILS_MAX];
	size_t n_details;
	const atomic_int *cancel; /* the operation stops once *cancel != 0; may be NULL */
	struct host_retry_policy retry;
};

/* A context with the default retry policy and no cancel flag. */
void host_ctx_init(struct amber_ctx *ctx, const char *adapter, const char *instance,
		   const char *op, const char *id);
/* Records an error from the host's side (same effect as the service). */
int host_ctx_set_error(struct amber_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The service table; immutable, shared by every adapter. */
const amber_host *host_services(void);

/* AMBER_E* -> negative errno (AMBER_ENOTFOUND -> -ENOENT, ...). */
int host_code_to_errno(int code);
/* negative errno -> AMBER_E*. */
int host_errno_to_code(int neg_errno);
const char *host_code_name(int code);

#endif
