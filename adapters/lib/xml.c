/* The few XML elements S3-style answers (S3, GCS XML API) carry (Code, Message, UploadId, Key, Size, ...).
 * S3's answers are flat and machine-written, so a tag search is enough; the one care
 * needed is decoding entities in the text (keys may hold '&' and any UTF-8). */
#include "xml.h"

#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

/* Finds "<tag>" or "<tag ...>" (or "<tag/>") at or after p. */
static const char *open_tag(const char *p, const char *tag, int *self_closing,
			    const char **ret_after)
{
	size_t tl = strlen(tag);
	while ((p = strchr(p, '<')) != NULL) {
		if (strncmp(p + 1, tag, tl) == 0) {
			char c = p[1 + tl];
			if (c == '>' || c == ' ' || c == '/' || c == '\t' || c == '\n' || c == '\r') {
				const char *gt = strchr(p, '>');
				if (!gt)
					return NULL;
				*self_closing = gt[-1] == '/';
				*ret_after = gt + 1;
				return p;
			}
		}
		p++;
	}
	return NULL;
}

int xml_block(const char *doc, const char *tag, const char **pos, const char **ret_start,
		 size_t *ret_len)
{
	int sc = 0;
	const char *after;
	const char *p = open_tag(*pos ? *pos : doc, tag, &sc, &after);
	if (!p)
		return -1;
	if (sc) {
		*ret_start = after;
		*ret_len = 0;
		*pos = after;
		return 0;
	}
	char close[80];
	size_t tl = strlen(tag);
	if (tl + 4 > sizeof(close))
		return -1;
	close[0] = '<';
	close[1] = '/';
	memcpy(close + 2, tag, tl);
	close[tl + 2] = '>';
	close[tl + 3] = '\0';
	const char *e = strstr(after, close);
	if (!e)
		return -1;
	*ret_start = after;
	*ret_len = (size_t)(e - after);
	*pos = e + tl + 3;
	return 0;
}

static void put_utf8(struct strbuf *b, unsigned long cp)
{
	char o[4];
	if (cp < 0x80) {
		o[0] = (char)cp;
		strbuf_append(b, o, 1);
	} else if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		strbuf_append(b, o, 2);
	} else if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		strbuf_append(b, o, 3);
	} else if (cp < 0x110000) {
		o[0] = (char)(0xF0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[3] = (char)(0x80 | (cp & 0x3F));
		strbuf_append(b, o, 4);
	}
}

char *xml_text(const char *doc, const char *tag, const char **pos)
{
	const char *s;
	size_t len;
	if (xml_block(doc, tag, pos, &s, &len) < 0)
		return NULL;
	struct strbuf b = { 0 };
	strbuf_puts(&b, "");
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '&') {
			strbuf_putc(&b, s[i]);
			continue;
		}
		const char *semi = memchr(s + i, ';', len - i);
		size_t el = semi ? (size_t)(semi - (s + i)) + 1 : 0;
		static const struct {
			const char *ent;
			char c;
		} ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			     { "&quot;", '"' }, { "&apos;", '\'' } };
		int done = 0;
		for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]) && !done; k++)
			if (el == strlen(ents[k].ent) && !strncmp(s + i, ents[k].ent, el)) {
				strbuf_putc(&b, ents[k].c);
				done = 1;
			}
		if (!done && el > 3 && s[i + 1] == '#') {
			char *end;
			unsigned long cp = s[i + 2] == 'x' || s[i + 2] == 'X'
						   ? strtoul(s + i + 3, &end, 16)
						   : strtoul(s + i + 2, &end, 10);
			if (end == semi) {
				put_utf8(&b, cp);
				done = 1;
			}
		}
		if (done)
			i += el - 1;
		else
			strbuf_putc(&b, '&');
	}
	return strbuf_take(&b);
}

void xml_escape(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': strbuf_puts(b, "&amp;"); break;
		case '<': strbuf_puts(b, "&lt;"); break;
		case '>': strbuf_puts(b, "&gt;"); break;
		case '"': strbuf_puts(b, "&quot;"); break;
		case '\'': strbuf_puts(b, "&apos;"); break;
		default: strbuf_putc(b, *s);
		}
	}
}
