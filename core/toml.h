/* A TOML 1.0.0 parser producing a read-only document tree. It passes the toml-test
 * suite (valid and invalid cases of the 1.0.0 file list). */
#ifndef AMBER_TOML_H
#define AMBER_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum toml_type {
	TOML_TABLE = 1,
	TOML_ARRAY,
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time: 1979-05-27T07:32:00Z */
	TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
	TOML_DATE_LOCAL,     /* 1979-05-27 */
	TOML_TIME_LOCAL,     /* 07:32:00 */
};

struct toml_value;

struct toml_error {
	int line;        /* 1-based; 0 if not tied to a place */
	int column;      /* 1-based */
	char message[256];
};

/* Parses len bytes of UTF-8 (NUL bytes are an error). 0 and *ret (free with
 * toml_free), or -EINVAL with *err filled in (err may be NULL). */
int toml_parse(const char *text, size_t len, struct toml_value **ret, struct toml_error *err);
void toml_free(struct toml_value *root);

enum toml_type toml_type(const struct toml_value *v);
/* Line where the value's key (or array element) was written; 0 for the root. */
int toml_line(const struct toml_value *v);

/* Tables keep keys in document order. */
size_t toml_table_len(const struct toml_value *t);
const char *toml_table_key(const struct toml_value *t, size_t i);
const struct toml_value *toml_table_value(const struct toml_value *t, size_t i);
const struct toml_value *toml_table_get(const struct toml_value *t, const char *key);

size_t toml_array_len(const struct toml_value *a);
const struct toml_value *toml_array_at(const struct toml_value *a, size_t i);

/* Strings may hold U+0000, so the length is given too (ret_len may be NULL). */
const char *toml_string(const struct toml_value *v, size_t *ret_len);
int64_t toml_integer(const struct toml_value *v);
double toml_float(const struct toml_value *v);
bool toml_bool(const struct toml_value *v);
/* Date/time values as written, normalised to RFC 3339 form ('T' separator,
 * upper-case 'T' and 'Z'). */
const char *toml_datetime(const struct toml_value *v);

/* Writes the toml-test "tagged JSON" encoding of a document: {"key": {"type":
 * "integer", "value": "1"}, ...}. 0 or a negative errno. */
int toml_write_tagged_json(const struct toml_value *root, FILE *out);

#endif
