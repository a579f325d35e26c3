/* Small string helpers the configuration and loader messages share. */
#ifndef AMBER_STRUTIL_H
#define AMBER_STRUTIL_H

#include <stdarg.h>
#include <stddef.h>

/* A newly allocated formatted string (caller frees), or NULL when out of memory. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* "a, b, c" of the n names name_at(ctx, i) gives, or `none` when n is 0 (caller frees). */
char *str_join_names(size_t n, const char *(*name_at)(const void *ctx, size_t i),
		     const void *ctx, const char *none);

#endif
