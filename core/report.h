/* A bounded list of per-path notes an operation hands back to its caller: files that
 * changed while being archived, entries a restore refused. The caller decides how to
 * show them; the engine never logs them itself. */
#ifndef AMBER_REPORT_H
#define AMBER_REPORT_H

#include <stddef.h>

#define REPORT_MAX_ENTRIES 1000

struct report_entry {
	char *path;   /* relative to the operation's root, as the archive names it */
	char *reason; /* one line */
};

struct report {
	struct report_entry *entries;
	size_t n, cap;
	size_t dropped; /* notes past REPORT_MAX_ENTRIES, counted but not kept */
};

/* Thread-safe only under the caller's lock. Returns 0 or -ENOMEM. */
int report_add(struct report *r, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t report_total(const struct report *r);
void report_clear(struct report *r);

#endif
