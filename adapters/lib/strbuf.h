/*
 * strbuf: a growable NUL-terminated byte string for the remote-store adapters.
 *
 * Errors are sticky: after a failed allocation every append is a no-op and
 * strbuf_failed() says so, so a builder can append many pieces and check once.
 */
#ifndef AMBER_ADAPTERS_STRBUF_H
#define AMBER_ADAPTERS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated once anything was appended; NULL before */
	size_t len;
	size_t cap;
	int failed;
};

void strbuf_append(struct strbuf *b, const void *data, size_t len);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putc(struct strbuf *b, char c);
__attribute__((format(printf, 2, 3))) void strbuf_printf(struct strbuf *b, const char *fmt, ...);
/* Percent-encodes s per AWS's URI rules: A-Za-z0-9-._~ kept, every other byte %XX in
 * upper case; '/' kept too when keep_slash. */
void strbuf_uri_encode(struct strbuf *b, const char *s, size_t len, int keep_slash);
/* 0, or -ENOMEM after a failed allocation. */
int strbuf_failed(const struct strbuf *b);
/* Hands the string to the caller ("" when empty), or NULL after a failure; b is reset. */
char *strbuf_take(struct strbuf *b);
void strbuf_reset(struct strbuf *b);

#endif
