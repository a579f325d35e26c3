/* TOML 1.0.0 parser: one pass over the text, building the tree as it goes.
 *
 * The redefinition rules of the spec are enforced through the "origin" of every table
 * and array (how it came into being), which decides what later headers and dotted keys
 * may still do with it. Values nested inside an inline table or a static array never
 * need their own marks: everything that reaches them has to pass through the frozen
 * container first. */
#include "toml.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Tables and arrays nested deeper than this are refused: the tree is freed and encoded
 * recursively, and real configuration never comes close. */
#define TOML_MAX_DEPTH 128

/* Small tables are searched linearly; above this a hash index is kept. */
#define TOML_INDEX_MIN 8

enum origin {
	/* tables */
	ORIGIN_EXPLICIT = 1, /* the target of a [header] or [[header]], or the root */
	ORIGIN_IMPLICIT,     /* created on the way to a [header]; may still get its own */
	ORIGIN_DOTTED,       /* created by a dotted key */
	ORIGIN_INLINE,       /* { ... }: complete once written */
	/* arrays */
	ORIGIN_STATIC, /* [ ... ]: complete once written */
	ORIGIN_AOT,    /* built by [[header]] */
};

struct entry {
	char *key;
	size_t klen;
	struct toml_value *val;
};

struct toml_value {
	enum toml_type type;
	int line;
	unsigned char origin;
	unsigned short depth;
	union {
		struct {
			struct entry *ents;
			size_t n, cap;
			size_t *slots; /* index+1 into ents, 0 = empty; NULL while small */
			size_t nslots;
			uint64_t seed;
		} t;
		struct {
			struct toml_value **items;
			size_t n, cap;
		} a;
		struct {
			char *s; /* strings and date/times */
			size_t len;
		} s;
		int64_t i;
		double f;
		bool b;
	} u;
};

struct sbuf {
	char *d;
	size_t n, cap;
};

struct keypart {
	char *s;
	size_t len;
	size_t off; /* where it was written, for errors */
};

struct keypath {
	struct keypart *parts;
	size_t n, cap;
};

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	struct toml_error *err;
	struct toml_value *root;
	struct toml_value *cur; /* the table that key/value lines go into */
	uint64_t seed;
	/* Line numbers are asked for at non-decreasing offsets, so counting resumes from the
	 * last answer instead of from the start of the text. */
	size_t lc_off;
	int lc_line;
	locale_t cloc; /* "C" locale for strtod, made when the first float shows up */
	struct sbuf sb;
};

static const char *type_name(enum toml_type t)
{
	switch (t) {
	case TOML_TABLE:
		return "a table";
	case TOML_ARRAY:
		return "an array";
	case TOML_STRING:
		return "a string";
	case TOML_INTEGER:
		return "an integer";
	case TOML_FLOAT:
		return "a float";
	case TOML_BOOL:
		return "a boolean";
	case TOML_DATETIME:
		return "an offset date-time";
	case TOML_DATETIME_LOCAL:
		return "a local date-time";
	case TOML_DATE_LOCAL:
		return "a local date";
	case TOML_TIME_LOCAL:
		return "a local time";
	}
	return "a value";
}

/* ---- positions and errors ---- */

static int line_of(struct parser *p, size_t off)
{
	if (off > p->len)
		off = p->len;
	if (off < p->lc_off) {
		p->lc_off = 0;
		p->lc_line = 1;
	}
	const char *s = p->s + p->lc_off, *end = p->s + off;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		if (!nl)
			break;
		if (p->lc_line < INT_MAX)
			p->lc_line++;
		s = nl + 1;
	}
	p->lc_off = off;
	return p->lc_line;
}

__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, size_t off,
						       const char *fmt, ...)
{
	if (!p->err)
		return -EINVAL;
	if (off > p->len)
		off = p->len;
	int line = line_of(p, off);
	/* Columns count characters, not bytes, so they match what an editor shows. */
	size_t ls = off;
	while (ls > 0 && p->s[ls - 1] != '\n')
		ls--;
	int col = 1;
	for (size_t i = ls; i < off && col < INT_MAX; i++)
		if (((unsigned char)p->s[i] & 0xC0) != 0x80)
			col++;
	p->err->line = line;
	p->err->column = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int oom(struct parser *p)
{
	if (p->err) {
		p->err->line = 0;
		p->err->column = 0;
		snprintf(p->err->message, sizeof(p->err->message), "out of memory");
	}
	return -ENOMEM;
}

/* A key made printable for a message: quotes and control bytes replaced, long keys cut. */
static const char *show_key(char *buf, size_t size, const char *k, size_t len)
{
	size_t o = 0, i = 0;
	for (; i < len && o + 4 < size; i++) {
		unsigned char c = (unsigned char)k[i];
		buf[o++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
	}
	if (i < len) {
		/* Don't cut a UTF-8 sequence in half. */
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
			o--;
		if (o > 0 && ((unsigned char)buf[o - 1] & 0xC0) == 0xC0)
			o--;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = 0;
	return buf;
}

#define KEYBUF 80

/* How to name the byte at off in "expected X, found Y" messages. */
static const char *show_char(struct parser *p, size_t off, char *buf, size_t size)
{
	if (off >= p->len)
		return "end of file";
	unsigned char c = (unsigned char)p->s[off];
	if (c == '\n' || (c == '\r' && off + 1 < p->len && p->s[off + 1] == '\n'))
		return "end of line";
	if (c < 0x20 || c == 0x7f)
		snprintf(buf, size, "control character U+%04X", c);
	else if (c >= 0x80)
		snprintf(buf, size, "a non-ASCII character");
	else
		snprintf(buf, size, "'%c'", c);
	return buf;
}

/* ---- growable buffers ---- */

static int sb_reserve(struct sbuf *b, size_t more)
{
	if (b->cap - b->n >= more)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->n < more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	char *d = realloc(b->d, cap);
	if (!d)
		return -ENOMEM;
	b->d = d;
	b->cap = cap;
	return 0;
}

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (sb_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->d + b->n, s, n);
	b->n += n;
	return 0;
}

static char *memdup0(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/* ---- the tree ---- */

static uint64_t hash_key(uint64_t seed, const char *k, size_t len)
{
	/* FNV-1a from a per-document random start, then a final mix so that the low bits
	 * used for the slot depend on all of the input: a crafted document can't pile all
	 * its keys into one chain. */
	uint64_t h = seed ^ 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static void value_free(struct toml_value *v)
{
	if (!v)
		return;
	switch (v->type) {
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.t.n; i++) {
			free(v->u.t.ents[i].key);
			value_free(v->u.t.ents[i].val);
		}
		free(v->u.t.ents);
		free(v->u.t.slots);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.a.n; i++)
			value_free(v->u.a.items[i]);
		free(v->u.a.items);
		break;
	case TOML_STRING:
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		free(v->u.s.s);
		break;
	default:
		break;
	}
	free(v);
}

void toml_free(struct toml_value *root)
{
	value_free(root);
}

static struct toml_value *value_new(enum toml_type type, int line)
{
	struct toml_value *v = calloc(1, sizeof(*v));
	if (v) {
		v->type = type;
		v->line = line;
	}
	return v;
}

static struct entry *table_find(const struct toml_value *t, const char *k, size_t len)
{
	if (t->u.t.slots) {
		size_t mask = t->u.t.nslots - 1;
		for (size_t i = hash_key(t->u.t.seed, k, len) & mask;; i = (i + 1) & mask) {
			size_t s = t->u.t.slots[i];
			if (!s)
				return NULL;
			struct entry *e = &t->u.t.ents[s - 1];
			if (e->klen == len && memcmp(e->key, k, len) == 0)
				return e;
		}
	}
	for (size_t i = 0; i < t->u.t.n; i++) {
		struct entry *e = &t->u.t.ents[i];
		if (e->klen == len && memcmp(e->key, k, len) == 0)
			return e;
	}
	return NULL;
}

static void slot_put(struct toml_value *t, size_t idx)
{
	const struct entry *e = &t->u.t.ents[idx];
	size_t mask = t->u.t.nslots - 1;
	size_t i = hash_key(t->u.t.seed, e->key, e->klen) & mask;
	while (t->u.t.slots[i])
		i = (i + 1) & mask;
	t->u.t.slots[i] = idx + 1;
}

/* Adds key (ownership taken, also on failure) -> val (ownership taken on success). */
static int table_add(struct toml_value *t, char *key, size_t klen, struct toml_value *val)
{
	if (t->u.t.n == t->u.t.cap) {
		size_t cap = t->u.t.cap ? t->u.t.cap * 2 : 4;
		struct entry *e = realloc(t->u.t.ents, cap * sizeof(*e));
		if (!e) {
			free(key);
			return -ENOMEM;
		}
		t->u.t.ents = e;
		t->u.t.cap = cap;
	}
	size_t idx = t->u.t.n++;
	t->u.t.ents[idx] = (struct entry){ .key = key, .klen = klen, .val = val };
	if (t->u.t.n <= TOML_INDEX_MIN)
		return 0;
	/* Keep the index at most half full. */
	if (t->u.t.n * 2 > t->u.t.nslots) {
		size_t ns = t->u.t.nslots ? t->u.t.nslots * 2 : 32;
		while (t->u.t.n * 2 > ns)
			ns *= 2;
		size_t *slots = calloc(ns, sizeof(*slots));
		if (!slots) {
			/* Undo the append: the caller still owns val. */
			t->u.t.ents[idx].val = NULL;
			t->u.t.n--;
			free(key);
			return -ENOMEM;
		}
		free(t->u.t.slots);
		t->u.t.slots = slots;
		t->u.t.nslots = ns;
		for (size_t i = 0; i < t->u.t.n; i++)
			slot_put(t, i);
	} else {
		slot_put(t, idx);
	}
	return 0;
}

static int array_add(struct toml_value *a, struct toml_value *v)
{
	if (a->u.a.n == a->u.a.cap) {
		size_t cap = a->u.a.cap ? a->u.a.cap * 2 : 4;
		struct toml_value **items = realloc(a->u.a.items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		a->u.a.items = items;
		a->u.a.cap = cap;
	}
	a->u.a.items[a->u.a.n++] = v;
	return 0;
}

/* A new table or array at the given depth, or NULL with the error set. */
static struct toml_value *container_new(struct parser *p, enum toml_type type, int origin,
					int line, unsigned depth, size_t off, int *ret)
{
	if (depth > TOML_MAX_DEPTH) {
		*ret = fail(p, off, "tables and arrays are nested too deeply (the limit is %d)",
			    TOML_MAX_DEPTH);
		return NULL;
	}
	struct toml_value *v = value_new(type, line);
	if (!v) {
		*ret = oom(p);
		return NULL;
	}
	v->origin = (unsigned char)origin;
	v->depth = (unsigned short)depth;
	if (type == TOML_TABLE)
		v->u.t.seed = p->seed;
	return v;
}

/* A new table under parent, named by key part k. */
static int add_subtable(struct parser *p, struct toml_value *parent, struct keypart *k,
			int origin, int line, struct toml_value **ret)
{
	int r = 0;
	struct toml_value *t =
		container_new(p, TOML_TABLE, origin, line, parent->depth + 1u, k->off, &r);
	if (!t)
		return r;
	r = table_add(parent, k->s, k->len, t);
	k->s = NULL;
	if (r < 0) {
		value_free(t);
		return oom(p);
	}
	*ret = t;
	return 0;
}

/* ---- lexical helpers ---- */

static int peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t k)
{
	return p->pos + k < p->len ? (unsigned char)p->s[p->pos + k] : -1;
}

static bool is_ctrl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
		p->pos++;
}

static bool at_newline(const struct parser *p)
{
	int c = peek(p);
	return c == '\n' || (c == '\r' && peek_at(p, 1) == '\n');
}

static bool eat_newline(struct parser *p)
{
	if (peek(p) == '\n') {
		p->pos++;
		return true;
	}
	if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
		p->pos += 2;
		return true;
	}
	return false;
}

/* Skips a comment if one starts here, leaving the position at the end of line. */
static int skip_comment(struct parser *p)
{
	if (peek(p) != '#')
		return 0;
	for (p->pos++; p->pos < p->len; p->pos++) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))
			break;
		if (is_ctrl(c))
			return fail(p, p->pos,
				    "control character U+%04X is not allowed in a comment", c);
	}
	return 0;
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static int skip_ws_lines(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		int r = skip_comment(p);
		if (r < 0)
			return r;
		if (!eat_newline(p))
			return 0;
	}
}

/* The whole text must be UTF-8 without NUL bytes; checking it once up front keeps the
 * rest of the parser to ASCII decisions. */
static int check_utf8(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t n = p->len;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if (c == 0)
				return fail(p, i, "NUL byte in the document");
			i++;
			continue;
		}
		size_t need;
		uint32_t cp, min;
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1;
			cp = c & 0x1F;
			min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			cp = c & 0x0F;
			min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return fail(p, i, "invalid UTF-8 byte 0x%02X", c);
		}
		if (n - i <= need)
			return fail(p, i, "truncated UTF-8 sequence");
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return fail(p, i, "invalid UTF-8 sequence");
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return fail(p, i, "invalid UTF-8 sequence (encodes U+%04" PRIX32 ")", cp);
		i += need + 1;
	}
	return 0;
}

/* ---- strings ---- */

static int put_utf8(struct sbuf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return sb_add(b, u, n);
}

/* An escape sequence; the position is on the backslash. */
static int parse_escape(struct parser *p, struct sbuf *b)
{
	size_t start = p->pos;
	int c = peek_at(p, 1);
	char out;
	switch (c) {
	case 'b':
		out = '\b';
		break;
	case 't':
		out = '\t';
		break;
	case 'n':
		out = '\n';
		break;
	case 'f':
		out = '\f';
		break;
	case 'r':
		out = '\r';
		break;
	case '"':
		out = '"';
		break;
	case '\\':
		out = '\\';
		break;
	case 'u':
	case 'U': {
		size_t digits = c == 'u' ? 4 : 8;
		uint32_t cp = 0;
		for (size_t i = 0; i < digits; i++) {
			int h = peek_at(p, 2 + i);
			int v;
			if (h >= '0' && h <= '9')
				v = h - '0';
			else if (h >= 'a' && h <= 'f')
				v = h - 'a' + 10;
			else if (h >= 'A' && h <= 'F')
				v = h - 'A' + 10;
			else
				return fail(p, start, "\\%c escape needs %zu hex digits", c,
					    digits);
			/* Eight digits can exceed 32 bits; saturate, it is refused below. */
			cp = cp > 0x10FFFF ? cp : (cp << 4) | (uint32_t)v;
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return fail(p, start, "escape \\%c%.*s is not a Unicode scalar value", c,
				    (int)digits, p->s + start + 2);
		p->pos += 2 + digits;
		return put_utf8(b, cp) < 0 ? oom(p) : 0;
	}
	default: {
		char what[40];
		if (c < 0)
			return fail(p, start, "unterminated string");
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			return fail(p, start,
				    "a backslash before whitespace is only allowed at the end of a "
				    "line in a multi-line basic string");
		return fail(p, start, "invalid escape sequence: backslash followed by %s",
			    show_char(p, start + 1, what, sizeof(what)));
	}
	}
	p->pos += 2;
	return sb_add(b, &out, 1) < 0 ? oom(p) : 0;
}

/* A string on one line: "basic" (escapes) or 'literal'. The position is on the opening
 * quote; the content goes to b. */
static int parse_line_string(struct parser *p, struct sbuf *b)
{
	size_t start = p->pos;
	char q = p->s[p->pos++];
	for (;;) {
		size_t run = p->pos;
		while (p->pos < p->len) {
			unsigned char c = (unsigned char)p->s[p->pos];
			if (c == (unsigned char)q || (c == '\\' && q == '"') || is_ctrl(c))
				break;
			p->pos++;
		}
		if (p->pos > run && sb_add(b, p->s + run, p->pos - run) < 0)
			return oom(p);
		if (p->pos >= p->len)
			return fail(p, start, "unterminated string");
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == (unsigned char)q) {
			p->pos++;
			return 0;
		}
		if (c == '\\') {
			int r = parse_escape(p, b);
			if (r < 0)
				return r;
			continue;
		}
		if (c == '\n' || c == '\r')
			return fail(p, start,
				    "unterminated string (only strings in triple quotes may span "
				    "lines)");
		return fail(p, p->pos, "control character U+%04X must be escaped in a string", c);
	}
}

/* """multi-line basic""" or '''multi-line literal'''; the position is on the first
 * quote of the opening three. */
static int parse_ml_string(struct parser *p, struct sbuf *b)
{
	size_t start = p->pos;
	char q = p->s[p->pos];
	p->pos += 3;
	/* A newline right after the opening quotes is not part of the string. */
	eat_newline(p);
	for (;;) {
		size_t run = p->pos;
		while (p->pos < p->len) {
			unsigned char c = (unsigned char)p->s[p->pos];
			if (c == (unsigned char)q || (c == '\\' && q == '"') ||
			    (is_ctrl(c) && c != '\n'))
				break;
			p->pos++;
		}
		if (p->pos > run && sb_add(b, p->s + run, p->pos - run) < 0)
			return oom(p);
		if (p->pos >= p->len)
			return fail(p, start, "unterminated multi-line string");
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == (unsigned char)q) {
			size_t n = 0;
			while (peek_at(p, n) == q)
				n++;
			if (n < 3) {
				if (sb_add(b, p->s + p->pos, n) < 0)
					return oom(p);
				p->pos += n;
				continue;
			}
			/* Up to two quotes may sit right before the closing three. */
			if (n > 5)
				return fail(p, p->pos + 5,
					    "too many quotes at the end of a multi-line string");
			if (sb_add(b, p->s + p->pos, n - 3) < 0)
				return oom(p);
			p->pos += n;
			return 0;
		}
		if (c == '\r') {
			if (peek_at(p, 1) != '\n')
				return fail(p, p->pos, "carriage return not followed by a newline");
			/* The spec leaves newlines in strings to the parser; a value should not
			 * change with the line endings of the file it was written in. */
			if (sb_add(b, "\n", 1) < 0)
				return oom(p);
			p->pos += 2;
			continue;
		}
		if (c == '\\') {
			/* A backslash ending a line swallows all whitespace up to the next
			 * non-blank character, newlines included. */
			size_t j = p->pos + 1;
			while (j < p->len && (p->s[j] == ' ' || p->s[j] == '\t'))
				j++;
			size_t save = p->pos;
			p->pos = j;
			if (eat_newline(p)) {
				for (;;) {
					skip_ws(p);
					if (!eat_newline(p))
						break;
				}
				continue;
			}
			p->pos = save;
			int r = parse_escape(p, b);
			if (r < 0)
				return r;
			continue;
		}
		return fail(p, p->pos, "control character U+%04X must be escaped in a string", c);
	}
}

/* ---- keys ---- */

static void keypath_clear(struct keypath *kp)
{
	for (size_t i = 0; i < kp->n; i++)
		free(kp->parts[i].s);
	kp->n = 0;
}

static void keypath_free(struct keypath *kp)
{
	keypath_clear(kp);
	free(kp->parts);
	kp->parts = NULL;
	kp->cap = 0;
}

/* A key, possibly dotted; surrounding whitespace is skipped. */
static int parse_key(struct parser *p, struct keypath *kp)
{
	keypath_clear(kp);
	for (;;) {
		skip_ws(p);
		size_t off = p->pos;
		int c = peek(p);
		char *s;
		size_t len;
		if (c == '"' || c == '\'') {
			if (peek_at(p, 1) == c && peek_at(p, 2) == c)
				return fail(p, off, "multi-line strings cannot be used as keys");
			p->sb.n = 0;
			int r = parse_line_string(p, &p->sb);
			if (r < 0)
				return r;
			len = p->sb.n;
			s = memdup0(p->sb.d ? p->sb.d : "", len);
		} else if (is_bare(c)) {
			while (is_bare(peek(p)))
				p->pos++;
			len = p->pos - off;
			s = memdup0(p->s + off, len);
		} else {
			char what[40];
			if (kp->n > 0)
				return fail(p, off, "expected a key after '.', found %s",
					    show_char(p, off, what, sizeof(what)));
			return fail(p, off, "expected a key, found %s",
				    show_char(p, off, what, sizeof(what)));
		}
		if (!s)
			return oom(p);
		if (kp->n == TOML_MAX_DEPTH) {
			free(s);
			return fail(p, off, "key has too many dotted parts (the limit is %d)",
				    TOML_MAX_DEPTH);
		}
		if (kp->n == kp->cap) {
			size_t cap = kp->cap ? kp->cap * 2 : 4;
			struct keypart *np = realloc(kp->parts, cap * sizeof(*np));
			if (!np) {
				free(s);
				return oom(p);
			}
			kp->parts = np;
			kp->cap = cap;
		}
		kp->parts[kp->n++] = (struct keypart){ .s = s, .len = len, .off = off };
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
	}
}

/* ---- scalars: numbers, booleans, date/times ---- */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	return true;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* HH:MM:SS[.frac] at t; *used gets its length. */
static int parse_time(struct parser *p, size_t off, const char *t, size_t n, size_t *used)
{
	if (n < 8 || !all_digits(t, 2) || t[2] != ':' || !all_digits(t + 3, 2) || t[5] != ':' ||
	    !all_digits(t + 6, 2))
		return fail(p, off, "invalid time: expected HH:MM:SS");
	if (num2(t) > 23)
		return fail(p, off, "invalid time: hour %.2s is out of range", t);
	if (num2(t + 3) > 59)
		return fail(p, off, "invalid time: minute %.2s is out of range", t + 3);
	/* 60 is a leap second, which RFC 3339 allows. */
	if (num2(t + 6) > 60)
		return fail(p, off, "invalid time: second %.2s is out of range", t + 6);
	size_t i = 8;
	if (i < n && t[i] == '.') {
		i++;
		size_t d = i;
		while (i < n && is_digit((unsigned char)t[i]))
			i++;
		if (i == d)
			return fail(p, off, "invalid time: expected digits after '.'");
	}
	*used = i;
	return 0;
}

static int parse_datetime(struct parser *p, size_t off, const char *tok, size_t n,
			  struct toml_value **ret, int line)
{
	enum toml_type type;
	if (!memchr(tok, '-', n)) {
		size_t used;
		int r = parse_time(p, off, tok, n, &used);
		if (r < 0)
			return r;
		if (used != n)
			return fail(p, off + used, "unexpected characters after a time");
		type = TOML_TIME_LOCAL;
	} else {
		if (n < 10 || !all_digits(tok, 4) || tok[4] != '-' || !all_digits(tok + 5, 2) ||
		    tok[7] != '-' || !all_digits(tok + 8, 2) ||
		    (n > 10 && is_digit((unsigned char)tok[10])))
			return fail(p, off, "invalid date: expected YYYY-MM-DD");
		int y = (tok[0] - '0') * 1000 + (tok[1] - '0') * 100 + num2(tok + 2);
		int m = num2(tok + 5), d = num2(tok + 8);
		if (m < 1 || m > 12)
			return fail(p, off, "invalid date: month %.2s is out of range", tok + 5);
		if (d < 1 || d > days_in_month(y, m))
			return fail(p, off, "invalid date: day %.2s is out of range for %.7s",
				    tok + 8, tok);
		if (n == 10) {
			type = TOML_DATE_LOCAL;
		} else {
			if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
				return fail(p, off + 10,
					    "invalid date-time: expected 'T' after the date");
			size_t used;
			int r = parse_time(p, off + 11, tok + 11, n - 11, &used);
			if (r < 0)
				return r;
			size_t i = 11 + used;
			if (i == n) {
				type = TOML_DATETIME_LOCAL;
			} else if ((tok[i] == 'Z' || tok[i] == 'z') && i + 1 == n) {
				type = TOML_DATETIME;
			} else if (tok[i] == '+' || tok[i] == '-') {
				const char *o = tok + i + 1;
				if (n - i - 1 != 5 || !all_digits(o, 2) || o[2] != ':' ||
				    !all_digits(o + 3, 2))
					return fail(p, off + i,
						    "invalid date-time: expected a UTC offset "
						    "like +HH:MM");
				if (num2(o) > 23 || num2(o + 3) > 59)
					return fail(p, off + i,
						    "invalid date-time: UTC offset %.6s is out "
						    "of range", tok + i);
				type = TOML_DATETIME;
			} else {
				return fail(p, off + i,
					    "unexpected characters after a date-time");
			}
		}
	}
	struct toml_value *v = value_new(type, line);
	char *s = memdup0(tok, n);
	if (!v || !s) {
		free(v);
		free(s);
		return oom(p);
	}
	if (n > 10 && type != TOML_TIME_LOCAL) {
		s[10] = 'T';
		if (s[n - 1] == 'z')
			s[n - 1] = 'Z';
	}
	/* Digits past nanoseconds are cut, not rounded (as toml-test asks of parsers with
	 * less precision), so readers of the text never meet an unbounded fraction. */
	char *dot = strchr(s, '.');
	if (dot) {
		size_t digits = strspn(dot + 1, "0123456789");
		if (digits > 9) {
			memmove(dot + 10, dot + 1 + digits, strlen(dot + 1 + digits) + 1);
			n -= digits - 9;
		}
	}
	v->u.s.s = s;
	v->u.s.len = n;
	*ret = v;
	return 0;
}

/* Digits of the given base with single underscores between them, starting at *i. */
static int scan_digits(struct parser *p, size_t off, const char *tok, size_t n, size_t *i,
		       int base, const char *what)
{
	size_t start = *i, k = *i;
	for (;;) {
		int c = k < n ? (unsigned char)tok[k] : -1;
		bool ok = base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
					(c >= 'A' && c <= 'F'))
				     : (c >= '0' && c < '0' + base);
		if (!ok) {
			if (k == start || tok[k - 1] == '_') {
				if (c == '_' || (k > start && tok[k - 1] == '_'))
					return fail(p, off + k,
						    "underscores in %s must sit between digits",
						    what);
				return fail(p, off + k, "expected a digit in %s", what);
			}
			if (c == '_') {
				k++;
				continue;
			}
			break;
		}
		k++;
	}
	*i = k;
	return 0;
}

static int parse_number(struct parser *p, size_t off, const char *tok, size_t n,
			struct toml_value **ret, int line)
{
	size_t i = 0;
	bool neg = false, sign = false;
	if (tok[0] == '+' || tok[0] == '-') {
		neg = tok[0] == '-';
		sign = true;
		i = 1;
	}
	const char *rest = tok + i;
	size_t rn = n - i;
	if ((rn == 3 && memcmp(rest, "inf", 3) == 0) || (rn == 3 && memcmp(rest, "nan", 3) == 0)) {
		struct toml_value *v = value_new(TOML_FLOAT, line);
		if (!v)
			return oom(p);
		if (rest[0] == 'i')
			v->u.f = neg ? -INFINITY : INFINITY;
		else
			v->u.f = neg ? -NAN : NAN;
		*ret = v;
		return 0;
	}
	if (rn >= 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'o' || rest[1] == 'b')) {
		int base = rest[1] == 'x' ? 16 : rest[1] == 'o' ? 8 : 2;
		const char *what = base == 16 ? "a hexadecimal integer" :
				   base == 8  ? "an octal integer" :
						"a binary integer";
		if (sign)
			return fail(p, off, "%s cannot have a sign", what);
		size_t k = i + 2;
		int r = scan_digits(p, off, tok, n, &k, base, what);
		if (r < 0)
			return r;
		if (k != n) {
			char cb[40];
			return fail(p, off + k, "unexpected %s in %s",
				    show_char(p, off + k, cb, sizeof(cb)), what);
		}
		uint64_t val = 0;
		for (size_t j = i + 2; j < n; j++) {
			int c = (unsigned char)tok[j];
			if (c == '_')
				continue;
			int d = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
			if (val > ((uint64_t)INT64_MAX - (uint64_t)d) / (uint64_t)base)
				return fail(p, off, "integer %.*s does not fit in 64 bits", (int)n,
					    tok);
			val = val * (uint64_t)base + (uint64_t)d;
		}
		struct toml_value *v = value_new(TOML_INTEGER, line);
		if (!v)
			return oom(p);
		v->u.i = (int64_t)val;
		*ret = v;
		return 0;
	}
	/* Decimal: integer part, then an optional fraction and exponent (a float). */
	size_t k = i;
	int r = scan_digits(p, off, tok, n, &k, 10, "a number");
	if (r < 0)
		return r;
	if (tok[i] == '0' && k - i > 1)
		return fail(p, off, "leading zeros are not allowed in numbers");
	bool is_float = false;
	if (k < n && tok[k] == '.') {
		k++;
		r = scan_digits(p, off, tok, n, &k, 10, "the fraction of a float");
		if (r < 0)
			return r;
		is_float = true;
	}
	if (k < n && (tok[k] == 'e' || tok[k] == 'E')) {
		k++;
		if (k < n && (tok[k] == '+' || tok[k] == '-'))
			k++;
		r = scan_digits(p, off, tok, n, &k, 10, "the exponent of a float");
		if (r < 0)
			return r;
		is_float = true;
	}
	if (k != n) {
		char what[40];
		return fail(p, off + k, "unexpected %s in a number",
			    show_char(p, off + k, what, sizeof(what)));
	}
	struct toml_value *v;
	if (!is_float) {
		uint64_t val = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (size_t j = i; j < n; j++) {
			if (tok[j] == '_')
				continue;
			uint64_t d = (uint64_t)(tok[j] - '0');
			if (val > (lim - d) / 10)
				return fail(p, off, "integer %.*s does not fit in 64 bits", (int)n,
					    tok);
			val = val * 10 + d;
		}
		v = value_new(TOML_INTEGER, line);
		if (!v)
			return oom(p);
		/* Negating in unsigned arithmetic avoids overflow for INT64_MIN. */
		v->u.i = neg ? (int64_t)(~val + 1) : (int64_t)val;
		*ret = v;
		return 0;
	}
	p->sb.n = 0;
	for (size_t j = 0; j < n; j++)
		if (tok[j] != '_' && sb_add(&p->sb, tok + j, 1) < 0)
			return oom(p);
	if (sb_add(&p->sb, "", 1) < 0)
		return oom(p);
	if (!p->cloc) {
		p->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
		if (!p->cloc)
			return oom(p);
	}
	errno = 0;
	char *end;
	double f = strtod_l(p->sb.d, &end, p->cloc);
	if (*end)
		return fail(p, off, "invalid float");
	if (errno == ERANGE && isinf(f))
		return fail(p, off, "float %.*s is out of range", (int)(n > 40 ? 40 : n), tok);
	v = value_new(TOML_FLOAT, line);
	if (!v)
		return oom(p);
	v->u.f = f;
	*ret = v;
	return 0;
}

static bool is_token_char(int c)
{
	return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Numbers never hold ':', nor '-' right after a digit (only after 'e'); date/times do.
 * Telling them apart early gives better messages for malformed dates. */
static bool looks_like_datetime(const char *tok, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (tok[i] == ':' || (tok[i] == '-' && is_digit((unsigned char)tok[i - 1])))
			return true;
	return false;
}

/* Numbers, booleans, date/times: a run of token characters, classified afterwards. */
static int parse_bare_value(struct parser *p, int line, struct toml_value **ret)
{
	size_t off = p->pos;
	while (is_token_char(peek(p)))
		p->pos++;
	/* A date and a time may be separated by a single space instead of 'T'. */
	if (p->pos - off == 10 && p->s[off + 4] == '-' && peek(p) == ' ' &&
	    is_digit(peek_at(p, 1)) && is_digit(peek_at(p, 2)) && peek_at(p, 3) == ':') {
		p->pos++;
		while (is_token_char(peek(p)))
			p->pos++;
	}
	const char *tok = p->s + off;
	size_t n = p->pos - off;
	if (n == 0) {
		char what[40];
		return fail(p, off, "expected a value, found %s",
			    show_char(p, off, what, sizeof(what)));
	}
	if ((n == 4 && memcmp(tok, "true", 4) == 0) || (n == 5 && memcmp(tok, "false", 5) == 0)) {
		struct toml_value *v = value_new(TOML_BOOL, line);
		if (!v)
			return oom(p);
		v->u.b = n == 4;
		*ret = v;
		return 0;
	}
	bool digits = is_digit((unsigned char)tok[0]);
	if (digits && looks_like_datetime(tok, n))
		return parse_datetime(p, off, tok, n, ret, line);
	if (digits || tok[0] == '+' || tok[0] == '-' || (n == 3 && memcmp(tok, "inf", 3) == 0) ||
	    (n == 3 && memcmp(tok, "nan", 3) == 0))
		return parse_number(p, off, tok, n, ret, line);
	return fail(p, off, "invalid value '%.*s' (strings need quotes)", (int)(n > 40 ? 40 : n),
		    tok);
}

/* ---- values ---- */

static int parse_value(struct parser *p, unsigned depth, int line, struct toml_value **ret);
static int parse_keyval(struct parser *p, struct toml_value *t);

static int parse_string_value(struct parser *p, int line, struct toml_value **ret)
{
	int c = peek(p);
	p->sb.n = 0;
	int r = peek_at(p, 1) == c && peek_at(p, 2) == c ? parse_ml_string(p, &p->sb) :
							    parse_line_string(p, &p->sb);
	if (r < 0)
		return r;
	struct toml_value *v = value_new(TOML_STRING, line);
	char *s = memdup0(p->sb.d ? p->sb.d : "", p->sb.n);
	if (!v || !s) {
		free(v);
		free(s);
		return oom(p);
	}
	v->u.s.s = s;
	v->u.s.len = p->sb.n;
	*ret = v;
	return 0;
}

static int parse_array(struct parser *p, unsigned depth, int line, struct toml_value **ret)
{
	size_t start = p->pos;
	int r = 0;
	struct toml_value *a = container_new(p, TOML_ARRAY, ORIGIN_STATIC, line, depth, start, &r);
	if (!a)
		return r;
	p->pos++;
	for (;;) {
		if ((r = skip_ws_lines(p)) < 0)
			goto out;
		if (p->pos >= p->len) {
			r = fail(p, start, "unterminated array");
			goto out;
		}
		if (peek(p) == ']') {
			p->pos++;
			break;
		}
		struct toml_value *v = NULL;
		if ((r = parse_value(p, depth, line_of(p, p->pos), &v)) < 0)
			goto out;
		if (array_add(a, v) < 0) {
			value_free(v);
			r = oom(p);
			goto out;
		}
		if ((r = skip_ws_lines(p)) < 0)
			goto out;
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == ']') {
			p->pos++;
			break;
		}
		char what[40];
		if (p->pos >= p->len)
			r = fail(p, start, "unterminated array");
		else
			r = fail(p, p->pos, "expected ',' or ']' after an array element, found %s",
				 show_char(p, p->pos, what, sizeof(what)));
		goto out;
	}
	*ret = a;
	return 0;
out:
	value_free(a);
	return r;
}

static int parse_inline_table(struct parser *p, unsigned depth, int line,
			      struct toml_value **ret)
{
	size_t start = p->pos;
	int r = 0;
	struct toml_value *t = container_new(p, TOML_TABLE, ORIGIN_INLINE, line, depth, start, &r);
	if (!t)
		return r;
	p->pos++;
	skip_ws(p);
	if (peek(p) == '}') {
		p->pos++;
		*ret = t;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (at_newline(p) || peek(p) == '#') {
			r = fail(p, p->pos, "inline tables must be on a single line");
			goto out;
		}
		if ((r = parse_keyval(p, t)) < 0)
			goto out;
		skip_ws(p);
		int c = peek(p);
		if (c == ',') {
			p->pos++;
			skip_ws(p);
			if (peek(p) == '}') {
				r = fail(p, p->pos,
					 "trailing comma is not allowed in an inline table");
				goto out;
			}
			continue;
		}
		if (c == '}') {
			p->pos++;
			break;
		}
		char what[40];
		if (c < 0)
			r = fail(p, start, "unterminated inline table");
		else if (at_newline(p) || c == '#')
			r = fail(p, p->pos, "inline tables must be on a single line");
		else
			r = fail(p, p->pos, "expected ',' or '}' in an inline table, found %s",
				 show_char(p, p->pos, what, sizeof(what)));
		goto out;
	}
	*ret = t;
	return 0;
out:
	value_free(t);
	return r;
}

/* A value for a key (or array element) written on line; depth is that of the table or
 * array that will hold it. */
static int parse_value(struct parser *p, unsigned depth, int line, struct toml_value **ret)
{
	switch (peek(p)) {
	case '"':
	case '\'':
		return parse_string_value(p, line, ret);
	case '[':
		return parse_array(p, depth + 1, line, ret);
	case '{':
		return parse_inline_table(p, depth + 1, line, ret);
	default:
		return parse_bare_value(p, line, ret);
	}
}

/* ---- structure: key/value lines and headers ---- */

/* One step along a dotted key, from t into the table named by k. */
static int descend_dotted(struct parser *p, struct toml_value *t, struct keypart *k, int line,
			  struct toml_value **ret)
{
	struct entry *e = table_find(t, k->s, k->len);
	if (!e)
		return add_subtable(p, t, k, ORIGIN_DOTTED, line, ret);
	struct toml_value *v = e->val;
	char kb[KEYBUF];
	show_key(kb, sizeof(kb), k->s, k->len);
	if (v->type != TOML_TABLE)
		return fail(p, k->off, "cannot use '%s' as a table: it is already %s (line %d)",
			    kb, type_name(v->type), v->line);
	if (v->origin == ORIGIN_INLINE)
		return fail(p, k->off,
			    "cannot add keys to '%s': inline tables are complete once written "
			    "(line %d)",
			    kb, v->line);
	if (v->origin == ORIGIN_EXPLICIT)
		return fail(p, k->off,
			    "cannot add keys to table '%s' with dotted keys: it was defined by a "
			    "[header] on line %d",
			    kb, v->line);
	/* From now on a [header] may no longer claim it. */
	v->origin = ORIGIN_DOTTED;
	*ret = v;
	return 0;
}

static int parse_keyval(struct parser *p, struct toml_value *t)
{
	size_t key_off = p->pos;
	int line = line_of(p, key_off);
	struct keypath kp = { 0 };
	int r = parse_key(p, &kp);
	if (r < 0)
		goto out;
	if (peek(p) != '=') {
		char what[40];
		r = fail(p, p->pos, "expected '=' after key, found %s",
			 show_char(p, p->pos, what, sizeof(what)));
		goto out;
	}
	p->pos++;
	skip_ws(p);
	for (size_t i = 0; i + 1 < kp.n; i++)
		if ((r = descend_dotted(p, t, &kp.parts[i], line, &t)) < 0)
			goto out;
	struct keypart *last = &kp.parts[kp.n - 1];
	struct entry *e = table_find(t, last->s, last->len);
	if (e) {
		char kb[KEYBUF];
		show_key(kb, sizeof(kb), last->s, last->len);
		r = fail(p, last->off, "duplicate key '%s' (first defined on line %d)", kb,
			 e->val->line);
		goto out;
	}
	if (at_newline(p) || p->pos >= p->len || peek(p) == '#') {
		r = fail(p, p->pos, "expected a value after '='");
		goto out;
	}
	struct toml_value *v = NULL;
	if ((r = parse_value(p, t->depth, line, &v)) < 0)
		goto out;
	if (table_add(t, last->s, last->len, v) < 0) {
		last->s = NULL;
		value_free(v);
		r = oom(p);
		goto out;
	}
	last->s = NULL;
out:
	keypath_free(&kp);
	return r;
}

/* One step along a [header] key towards its target. */
static int descend_header(struct parser *p, struct toml_value *t, struct keypart *k, int line,
			  struct toml_value **ret)
{
	struct entry *e = table_find(t, k->s, k->len);
	if (!e)
		return add_subtable(p, t, k, ORIGIN_IMPLICIT, line, ret);
	struct toml_value *v = e->val;
	char kb[KEYBUF];
	show_key(kb, sizeof(kb), k->s, k->len);
	if (v->type == TOML_TABLE) {
		if (v->origin == ORIGIN_INLINE)
			return fail(p, k->off,
				    "cannot add to '%s': inline tables are complete once written "
				    "(line %d)",
				    kb, v->line);
		*ret = v;
		return 0;
	}
	if (v->type == TOML_ARRAY && v->origin == ORIGIN_AOT) {
		/* Headers below an array of tables refer to its latest element. */
		*ret = v->u.a.items[v->u.a.n - 1];
		return 0;
	}
	if (v->type == TOML_ARRAY)
		return fail(p, k->off,
			    "cannot add to '%s': it is an array written as a value (line %d)", kb,
			    v->line);
	return fail(p, k->off, "cannot use '%s' as a table: it is already %s (line %d)", kb,
		    type_name(v->type), v->line);
}

static int parse_header(struct parser *p)
{
	size_t start = p->pos;
	int line = line_of(p, start);
	bool aot = peek_at(p, 1) == '[';
	p->pos += aot ? 2 : 1;
	struct keypath kp = { 0 };
	int r = parse_key(p, &kp);
	if (r < 0)
		goto out;
	if (peek(p) != ']' || (aot && peek_at(p, 1) != ']')) {
		char what[40];
		r = fail(p, p->pos, "expected '%s' to close the table header, found %s",
			 aot ? "]]" : "]", show_char(p, p->pos, what, sizeof(what)));
		goto out;
	}
	p->pos += aot ? 2 : 1;
	struct toml_value *t = p->root;
	for (size_t i = 0; i + 1 < kp.n; i++)
		if ((r = descend_header(p, t, &kp.parts[i], line, &t)) < 0)
			goto out;
	struct keypart *last = &kp.parts[kp.n - 1];
	struct entry *e = table_find(t, last->s, last->len);
	char kb[KEYBUF];
	show_key(kb, sizeof(kb), last->s, last->len);
	struct toml_value *v = e ? e->val : NULL;
	if (aot) {
		struct toml_value *arr;
		if (!v) {
			arr = container_new(p, TOML_ARRAY, ORIGIN_AOT, line, t->depth + 1u,
					    last->off, &r);
			if (!arr)
				goto out;
			r = table_add(t, last->s, last->len, arr);
			last->s = NULL;
			if (r < 0) {
				value_free(arr);
				r = oom(p);
				goto out;
			}
		} else if (v->type == TOML_ARRAY && v->origin == ORIGIN_AOT) {
			arr = v;
		} else if (v->type == TOML_ARRAY) {
			r = fail(p, last->off,
				 "cannot append to '%s' with [[...]]: it is an array written as a "
				 "value (line %d)",
				 kb, v->line);
			goto out;
		} else {
			r = fail(p, last->off,
				 "cannot define '%s' as an array of tables: it is already %s "
				 "(line %d)",
				 kb, type_name(v->type), v->line);
			goto out;
		}
		struct toml_value *tbl = container_new(p, TOML_TABLE, ORIGIN_EXPLICIT, line,
						       arr->depth + 1u, last->off, &r);
		if (!tbl)
			goto out;
		if (array_add(arr, tbl) < 0) {
			value_free(tbl);
			r = oom(p);
			goto out;
		}
		p->cur = tbl;
	} else if (!v) {
		if ((r = add_subtable(p, t, last, ORIGIN_EXPLICIT, line, &p->cur)) < 0)
			goto out;
	} else if (v->type != TOML_TABLE) {
		r = fail(p, last->off, "cannot define table '%s': it is already %s (line %d)", kb,
			 type_name(v->type), v->line);
		goto out;
	} else if (v->origin == ORIGIN_IMPLICIT) {
		v->origin = ORIGIN_EXPLICIT;
		v->line = line;
		p->cur = v;
	} else if (v->origin == ORIGIN_EXPLICIT) {
		r = fail(p, last->off, "table '%s' is defined twice (first on line %d)", kb,
			 v->line);
		goto out;
	} else if (v->origin == ORIGIN_DOTTED) {
		r = fail(p, last->off,
			 "cannot define table '%s' with a header: it was already defined through "
			 "dotted keys (first seen on line %d)",
			 kb, v->line);
		goto out;
	} else {
		r = fail(p, last->off,
			 "cannot define table '%s': it is an inline table (line %d)", kb,
			 v->line);
		goto out;
	}
out:
	keypath_free(&kp);
	return r;
}

static int parse_document(struct parser *p)
{
	if (p->len >= 3 && memcmp(p->s, "\xEF\xBB\xBF", 3) == 0)
		p->pos = 3;
	for (;;) {
		skip_ws(p);
		if (p->pos >= p->len)
			return 0;
		int c = peek(p);
		int r = 0;
		const char *what = NULL;
		if (c == '[') {
			r = parse_header(p);
			what = "a table header";
		} else if (c != '#' && c != '\n' && c != '\r') {
			r = parse_keyval(p, p->cur);
			what = "a value";
		}
		if (r < 0)
			return r;
		skip_ws(p);
		if ((r = skip_comment(p)) < 0)
			return r;
		if (p->pos >= p->len)
			return 0;
		if (!eat_newline(p)) {
			char cb[40];
			if (peek(p) == '\r')
				return fail(p, p->pos, "carriage return not followed by a newline");
			return fail(p, p->pos, "expected end of line after %s, found %s",
				    what ? what : "a comment",
				    show_char(p, p->pos, cb, sizeof(cb)));
		}
	}
}

int toml_parse(const char *text, size_t len, struct toml_value **ret, struct toml_error *err)
{
	struct parser p = {
		.s = text,
		.len = len,
		.err = err,
		.lc_line = 1,
	};
	*ret = NULL;
	if (err)
		memset(err, 0, sizeof(*err));
	if (getrandom(&p.seed, sizeof(p.seed), GRND_NONBLOCK) != (ssize_t)sizeof(p.seed))
		p.seed = (uint64_t)(uintptr_t)text ^ ((uint64_t)len << 32);
	int r = check_utf8(&p);
	if (r < 0)
		return r;
	p.root = container_new(&p, TOML_TABLE, ORIGIN_EXPLICIT, 0, 0, 0, &r);
	if (!p.root)
		return r;
	p.cur = p.root;
	r = parse_document(&p);
	free(p.sb.d);
	if (p.cloc)
		freelocale(p.cloc);
	if (r < 0) {
		value_free(p.root);
		return r;
	}
	*ret = p.root;
	return 0;
}

/* ---- accessors ---- */

enum toml_type toml_type(const struct toml_value *v)
{
	return v ? v->type : 0;
}

int toml_line(const struct toml_value *v)
{
	return v ? v->line : 0;
}

size_t toml_table_len(const struct toml_value *t)
{
	return t && t->type == TOML_TABLE ? t->u.t.n : 0;
}

const char *toml_table_key(const struct toml_value *t, size_t i)
{
	return t && t->type == TOML_TABLE && i < t->u.t.n ? t->u.t.ents[i].key : NULL;
}

const struct toml_value *toml_table_value(const struct toml_value *t, size_t i)
{
	return t && t->type == TOML_TABLE && i < t->u.t.n ? t->u.t.ents[i].val : NULL;
}

const struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
	if (!t || t->type != TOML_TABLE || !key)
		return NULL;
	const struct entry *e = table_find(t, key, strlen(key));
	return e ? e->val : NULL;
}

size_t toml_array_len(const struct toml_value *a)
{
	return a && a->type == TOML_ARRAY ? a->u.a.n : 0;
}

const struct toml_value *toml_array_at(const struct toml_value *a, size_t i)
{
	return a && a->type == TOML_ARRAY && i < a->u.a.n ? a->u.a.items[i] : NULL;
}

const char *toml_string(const struct toml_value *v, size_t *ret_len)
{
	if (!v || v->type != TOML_STRING) {
		if (ret_len)
			*ret_len = 0;
		return NULL;
	}
	if (ret_len)
		*ret_len = v->u.s.len;
	return v->u.s.s;
}

int64_t toml_integer(const struct toml_value *v)
{
	return v && v->type == TOML_INTEGER ? v->u.i : 0;
}

double toml_float(const struct toml_value *v)
{
	return v && v->type == TOML_FLOAT ? v->u.f : 0.0;
}

bool toml_bool(const struct toml_value *v)
{
	return v && v->type == TOML_BOOL ? v->u.b : false;
}

const char *toml_datetime(const struct toml_value *v)
{
	if (!v)
		return NULL;
	switch (v->type) {
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		return v->u.s.s;
	default:
		return NULL;
	}
}

/* ---- tagged JSON (the toml-test encoding) ---- */

static void json_string(FILE *out, const char *s, size_t n)
{
	putc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\b':
			fputs("\\b", out);
			break;
		case '\f':
			fputs("\\f", out);
			break;
		default:
			/* Text is valid UTF-8 already; only control characters need escapes. */
			if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\u%04x", c);
			else
				putc(c, out);
		}
	}
	putc('"', out);
}

static void json_tagged(FILE *out, const char *type, const char *val, size_t len)
{
	fputs("{\"type\":\"", out);
	fputs(type, out);
	fputs("\",\"value\":", out);
	json_string(out, val, len);
	putc('}', out);
}

/* The shortest %g form that reads back as the same double; the caller has the "C"
 * locale in effect for this thread. */
static void format_float(double f, char *buf, size_t size)
{
	if (isnan(f)) {
		snprintf(buf, size, "nan");
		return;
	}
	if (isinf(f)) {
		snprintf(buf, size, f < 0 ? "-inf" : "inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	/* Keep it recognisably a float for human readers: 3 -> 3.0. */
	if (!strpbrk(buf, ".eEn"))
		strncat(buf, ".0", size - strlen(buf) - 1);
}

static void json_value(FILE *out, const struct toml_value *v)
{
	char num[64];
	switch (v->type) {
	case TOML_TABLE:
		putc('{', out);
		for (size_t i = 0; i < v->u.t.n; i++) {
			if (i)
				putc(',', out);
			json_string(out, v->u.t.ents[i].key, v->u.t.ents[i].klen);
			putc(':', out);
			json_value(out, v->u.t.ents[i].val);
		}
		putc('}', out);
		break;
	case TOML_ARRAY:
		putc('[', out);
		for (size_t i = 0; i < v->u.a.n; i++) {
			if (i)
				putc(',', out);
			json_value(out, v->u.a.items[i]);
		}
		putc(']', out);
		break;
	case TOML_STRING:
		json_tagged(out, "string", v->u.s.s, v->u.s.len);
		break;
	case TOML_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, v->u.i);
		json_tagged(out, "integer", num, strlen(num));
		break;
	case TOML_FLOAT:
		format_float(v->u.f, num, sizeof(num));
		json_tagged(out, "float", num, strlen(num));
		break;
	case TOML_BOOL:
		json_tagged(out, "bool", v->u.b ? "true" : "false", v->u.b ? 4 : 5);
		break;
	case TOML_DATETIME:
		json_tagged(out, "datetime", v->u.s.s, v->u.s.len);
		break;
	case TOML_DATETIME_LOCAL:
		json_tagged(out, "datetime-local", v->u.s.s, v->u.s.len);
		break;
	case TOML_DATE_LOCAL:
		json_tagged(out, "date-local", v->u.s.s, v->u.s.len);
		break;
	case TOML_TIME_LOCAL:
		json_tagged(out, "time-local", v->u.s.s, v->u.s.len);
		break;
	}
}

int toml_write_tagged_json(const struct toml_value *root, FILE *out)
{
	if (!root || !out)
		return -EINVAL;
	/* Floats must be written with '.', whatever locale the program runs in. */
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!c)
		return -ENOMEM;
	locale_t old = uselocale(c);
	json_value(out, root);
	putc('\n', out);
	uselocale(old);
	freelocale(c);
	if (fflush(out) != 0 || ferror(out))
		return errno ? -errno : -EIO;
	return 0;
}
