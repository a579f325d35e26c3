/* Minimal XML for the flat, machine-written answers of S3-style APIs (S3, the GCS XML
 * API): a tag search plus entity decoding is enough there. */
#ifndef AMBER_ADAPTERS_XML_H
#define AMBER_ADAPTERS_XML_H

#include <stddef.h>

struct strbuf;

/* The text of the first <tag>...</tag> at or after *pos, entities decoded (malloc'd),
 * with *pos moved past the closing tag. NULL when absent. */
char *xml_text(const char *doc, const char *tag, const char **pos);
/* The inner span of the next <tag>...</tag> block at or after *pos (not decoded). */
int xml_block(const char *doc, const char *tag, const char **pos, const char **ret_start,
	      size_t *ret_len);
/* Appends s with XML's five special characters escaped. */
void xml_escape(struct strbuf *b, const char *s);

#endif
