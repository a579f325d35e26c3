/* Canonical UUIDs: the only form Amber accepts as a backup or server identifier. */
#ifndef AMBER_UUID_H
#define AMBER_UUID_H

#include <stdbool.h>

#define UUID_LEN 36

/* 36 characters, hex digits (either case) with dashes at 8, 13, 18 and 23. */
bool uuid_is_canonical(const char *s);
/* Like uuid_is_canonical, and copies the lower-cased form into out. */
bool uuid_normalize(const char *in, char out[UUID_LEN + 1]);

/* A random (version 4) UUID in canonical lower-case form: backup ids, download ids.
 * 0, or a negative errno when the kernel has no randomness to give. */
int uuid_v4_generate(char out[UUID_LEN + 1]);

#endif
