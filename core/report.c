#include "report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int report_add(struct report *r, const char *path, const char *fmt, ...)
{
	if (r->n >= REPORT_MAX_ENTRIES) {
		r->dropped++;
		return 0;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct report_entry *e = realloc(r->entries, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		r->entries = e;
		r->cap = cap;
	}
	char *reason = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&reason, fmt, ap);
	va_end(ap);
	char *p = strdup(path ? path : "");
	if (n < 0 || !p) {
		if (n >= 0)
			free(reason);
		free(p);
		return -ENOMEM;
	}
	r->entries[r->n].path = p;
	r->entries[r->n].reason = reason;
	r->n++;
	return 0;
}

size_t report_total(const struct report *r)
{
	return r->n + r->dropped;
}

void report_clear(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->entries[i].path);
		free(r->entries[i].reason);
	}
	free(r->entries);
	memset(r, 0, sizeof(*r));
}
