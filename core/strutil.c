#include "strutil.h"

#include <stdio.h>
#include <stdlib.h>

char *str_vprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

char *str_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = str_vprintf(fmt, ap);
	va_end(ap);
	return s;
}

char *str_join_names(size_t n, const char *(*name_at)(const void *ctx, size_t i),
		     const void *ctx, const char *none)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	for (size_t i = 0; i < n; i++)
		fprintf(m, "%s%s", i ? ", " : "", name_at(ctx, i));
	if (!n)
		fputs(none, m);
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
