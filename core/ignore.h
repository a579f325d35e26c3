/* Ignore rules with gitignore semantics, as `git check-ignore --no-index` decides them.
 * Patterns come one per line; commas also separate patterns (the panel's `ignored`
 * field), and `\,` is a literal comma. */
#ifndef AMBER_IGNORE_H
#define AMBER_IGNORE_H

#include <stdbool.h>
#include <stddef.h>

struct ignore_rules;

#define IGNORE_FILE_NAME ".pteroignore"
#define IGNORE_FILE_MAX (32 * 1024)

/* Parses text (need not be NUL-terminated). 0 or a negative errno. An empty text
 * gives rules that match nothing. */
int ignore_rules_new(const char *text, size_t len, struct ignore_rules **ret);
/* Reads IGNORE_FILE_NAME in the directory root_fd. *ret is NULL when there is none.
 * A symlink or a file over IGNORE_FILE_MAX is refused with -ELOOP / -EFBIG. */
int ignore_rules_load_file(int root_fd, struct ignore_rules **ret);
/* Does the rule set ignore relpath (relative to the root, '/'-separated, no leading
 * slash)? Only the path itself is judged: the walker does not descend into ignored
 * directories, which gives git's rule that nothing below an ignored directory can be
 * re-included. */
bool ignore_rules_match(const struct ignore_rules *r, const char *relpath, bool is_dir);
size_t ignore_rules_count(const struct ignore_rules *r);
void ignore_rules_free(struct ignore_rules *r);

#endif
