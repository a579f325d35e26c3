/* Ignore rules with gitignore semantics.
 *
 * Users check their .pteroignore with git, so the answer here has to be git's, corner cases
 * included (bracket expressions read byte by byte, '**' next to the literal head of a
 * pattern, an unknown [:class:] making a pattern dead, ...). tests/unit/test_ignore.c holds
 * the behaviour against `git check-ignore --no-index` on generated trees and patterns.
 *
 * Why matching cannot blow up: '?', '*' and bracket expressions never match '/', so every
 * '/' of a path is matched by a literal '/' of the pattern except where a real '**' swallows
 * whole components. Between two '**' a pattern thus covers a fixed number of components, and
 * where it starts is only a choice among component starts; the leftmost start that fits also
 * ends leftmost and leaves the most room for the rest, so it is kept without backtracking.
 * Inside one component the glob walk that only remembers the last '*' is exact. The cost is
 * bounded by (components of the path) x (length of the path) x (length of the pattern).
 *
 * Text: a line that starts with '#' is a comment to its end, commas in it included. Other
 * lines are cut at unescaped commas, and each piece is read as git reads a .gitignore line
 * (a CR right before the cut dropped, unescaped trailing spaces trimmed, leading ones kept,
 * '#' first makes it a comment). "\," stays in the pattern, where it matches a comma as any
 * escaped byte matches itself. */
#include "ignore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum tok_kind {
	TOK_LIT,
	TOK_ANY,
	TOK_SET,
	TOK_STAR,	 /* any run inside one component */
	TOK_SLASH,	 /* literal '/', the only token that consumes a '/' */
	TOK_DSTAR,	 /* any run, '/' included */
	TOK_DSTAR_SLASH, /* "**" + '/': nothing, or any run that ends with '/' */
};

struct tok {
	uint8_t kind;
	uint8_t ch;
	uint32_t set;
};

struct byteset {
	uint64_t w[4];
};

enum {
	PAT_NEGATIVE = 1u << 0,
	PAT_MUSTBEDIR = 1u << 1,
	PAT_BASENAME = 1u << 2, /* no '/' in the pattern: judged on the last component */
	PAT_NEVER = 1u << 3,	/* git gives up on it (malformed [...], dangling '\') */
};

enum pat_kind {
	PAT_LITERAL,
	PAT_SUFFIX, /* '*' + literal, on the basename */
	PAT_GLOB,
};

struct pattern {
	unsigned flags;
	enum pat_kind kind;
	char *text; /* without '!', the trailing '/' and (path patterns) one leading '/' */
	size_t len;
	size_t prefix; /* bytes before the first wildcard */
	struct tok *toks;
	size_t ntoks;
	struct byteset *sets;
};

struct ignore_rules {
	struct pattern *pats;
	size_t n;
	size_t cap;
};

enum char_class {
	CC_ALNUM, CC_ALPHA, CC_BLANK, CC_CNTRL, CC_DIGIT, CC_GRAPH,
	CC_LOWER, CC_PRINT, CC_PUNCT, CC_SPACE, CC_UPPER, CC_XDIGIT,
};

static const char *const class_names[] = {
	[CC_ALNUM] = "alnum", [CC_ALPHA] = "alpha", [CC_BLANK] = "blank",
	[CC_CNTRL] = "cntrl", [CC_DIGIT] = "digit", [CC_GRAPH] = "graph",
	[CC_LOWER] = "lower", [CC_PRINT] = "print", [CC_PUNCT] = "punct",
	[CC_SPACE] = "space", [CC_UPPER] = "upper", [CC_XDIGIT] = "xdigit",
};

/* git's own ctype tables, not the C library's: ASCII only, and no \v or \f in "space". */
static bool class_has(enum char_class cls, unsigned c)
{
	bool digit = c >= '0' && c <= '9';
	bool upper = c >= 'A' && c <= 'Z';
	bool lower = c >= 'a' && c <= 'z';
	bool print = c >= 0x20 && c <= 0x7e;

	switch (cls) {
	case CC_ALNUM:
		return digit || upper || lower;
	case CC_ALPHA:
		return upper || lower;
	case CC_BLANK:
		return c == ' ' || c == '\t';
	case CC_CNTRL:
		return c < 0x20 || c == 0x7f;
	case CC_DIGIT:
		return digit;
	case CC_GRAPH:
		return print && c != ' ';
	case CC_LOWER:
		return lower;
	case CC_PRINT:
		return print;
	case CC_PUNCT:
		return print && c != ' ' && !digit && !upper && !lower;
	case CC_SPACE:
		return c == ' ' || c == '\t' || c == '\n' || c == '\r';
	case CC_UPPER:
		return upper;
	case CC_XDIGIT:
		return digit || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
	}
	return false;
}

static void set_add(struct byteset *s, unsigned c)
{
	s->w[c >> 6] |= UINT64_C(1) << (c & 63);
}

static bool set_has(const struct byteset *s, unsigned char c)
{
	return (s->w[c >> 6] >> (c & 63)) & 1;
}

static int set_add_class(struct byteset *s, const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++) {
		if (strlen(class_names[i]) != len || memcmp(class_names[i], name, len))
			continue;
		for (unsigned c = 0; c < 128; c++)
			if (class_has((enum char_class)i, c))
				set_add(s, c);
		return 0;
	}
	return -1;
}

static unsigned at(const char *s, size_t len, size_t i)
{
	return i < len ? (unsigned char)s[i] : 0;
}

/* Reads the bracket expression whose first byte (after '[') is s[j]. Follows git's reading
 * step by step: ']' first is literal, '-' is literal first, last, or after a range or class,
 * "[:" without a closing ":]" is a literal '[', an unknown class or a missing ']' makes the
 * pattern dead (-1). *end gets the index after ']'. */
static int parse_set(const char *s, size_t len, size_t j, struct byteset *set, size_t *end)
{
	bool neg = false;
	unsigned prev = 0, c;

	memset(set, 0, sizeof(*set));
	if (at(s, len, j) == '!' || at(s, len, j) == '^') {
		neg = true;
		j++;
	}
	c = at(s, len, j);
	do {
		if (!c)
			return -1;
		if (c == '\\') {
			c = at(s, len, ++j);
			if (!c)
				return -1;
			set_add(set, c);
		} else if (c == '-' && prev && at(s, len, j + 1) && at(s, len, j + 1) != ']') {
			c = at(s, len, ++j);
			if (c == '\\') {
				c = at(s, len, ++j);
				if (!c)
					return -1;
			}
			for (unsigned b = prev; b <= c; b++)
				set_add(set, b);
			c = 0;
		} else if (c == '[' && at(s, len, j + 1) == ':') {
			size_t k = j + 2;
			while (at(s, len, k) && at(s, len, k) != ']')
				k++;
			if (!at(s, len, k))
				return -1;
			if (k < j + 3 || s[k - 1] != ':') {
				set_add(set, '[');
			} else {
				if (set_add_class(set, s + j + 2, k - j - 3) < 0)
					return -1;
				c = 0;
				j = k;
			}
		} else {
			set_add(set, c);
		}
		prev = c;
		c = at(s, len, ++j);
	} while (c != ']');
	if (neg)
		for (int i = 0; i < 4; i++)
			set->w[i] = ~set->w[i];
	/* Neither '/' (git never lets [...] match it in a path) nor NUL can be in a name. */
	set->w[0] &= ~((UINT64_C(1) << '/') | 1);
	*end = j + 1;
	return 0;
}

static size_t simple_length(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && !strchr("*?[\\", s[i]))
		i++;
	return i;
}

static int tokenize(struct pattern *p, bool basename)
{
	const char *s = p->text;
	size_t len = p->len, i = 0, nsets = 0;

	for (size_t k = 0; k < len; k++)
		nsets += s[k] == '[';
	p->toks = malloc(len * sizeof(*p->toks));
	if (nsets)
		p->sets = malloc(nsets * sizeof(*p->sets));
	if (!p->toks || (nsets && !p->sets))
		return -ENOMEM;
	nsets = 0;
	while (i < len) {
		struct tok *t = &p->toks[p->ntoks++];
		unsigned char c = (unsigned char)s[i];

		*t = (struct tok){ .kind = TOK_LIT, .ch = c };
		if (c == '\\') {
			if (i + 1 == len) {
				p->flags |= PAT_NEVER;
				return 0;
			}
			t->ch = (unsigned char)s[i + 1];
			if (t->ch == '/')
				t->kind = TOK_SLASH;
			i += 2;
		} else if (c == '?') {
			t->kind = TOK_ANY;
			i++;
		} else if (c == '[') {
			if (parse_set(s, len, i + 1, &p->sets[nsets], &i) < 0) {
				p->flags |= PAT_NEVER;
				return 0;
			}
			t->kind = TOK_SET;
			t->set = (uint32_t)nsets++;
		} else if (c == '*') {
			size_t run = i;
			while (i < len && s[i] == '*')
				i++;
			t->kind = TOK_STAR;
			/* A real "**" stands alone between slashes. git also takes the start of the
			 * pattern's wildcard part as "after a slash": it matches the literal head
			 * separately, so "a**" + "/b" crosses directories and even matches "ab". */
			if (basename || i - run < 2 ||
			    !(run == 0 || run == p->prefix || s[run - 1] == '/'))
				continue;
			if (i == len) {
				t->kind = TOK_DSTAR;
			} else if (s[i] == '/') {
				t->kind = TOK_DSTAR_SLASH;
				i++;
			} else if (s[i] == '\\' && i + 1 < len && s[i + 1] == '/') {
				/* git's "no directory at all" shortcut wants a bare '/' */
				t->kind = TOK_DSTAR;
			}
		} else {
			if (c == '/')
				t->kind = TOK_SLASH;
			i++;
		}
	}
	return 0;
}

/* One path component against tokens without slashes: the classic walk that backtracks only
 * to the last '*', exact when no token can match more than one byte except '*'. */
static bool glob_component(const struct pattern *p, const struct tok *t, size_t nt, const char *s,
			   size_t n)
{
	size_t ti = 0, pi = 0, star_pi = SIZE_MAX, star_ti = 0;

	while (ti < n) {
		if (pi < nt && t[pi].kind == TOK_STAR) {
			star_pi = pi++;
			star_ti = ti;
			continue;
		}
		if (pi < nt) {
			unsigned char c = (unsigned char)s[ti];
			bool ok = t[pi].kind == TOK_ANY ||
				  (t[pi].kind == TOK_LIT && t[pi].ch == c) ||
				  (t[pi].kind == TOK_SET && set_has(&p->sets[t[pi].set], c));
			if (ok) {
				pi++;
				ti++;
				continue;
			}
		}
		if (star_pi == SIZE_MAX)
			return false;
		pi = star_pi + 1;
		ti = ++star_ti;
	}
	while (pi < nt && t[pi].kind == TOK_STAR)
		pi++;
	return pi == nt;
}

/* Tokens without "**" at s: each slash token takes the next '/' of the text. With to_end the
 * last component must end the text; otherwise a "**" follows, and the tokens after the last
 * slash are the literal head of the pattern (see tokenize), matched as a prefix. Returns where
 * the match ends, or NULL. */
static const char *match_segment(const struct pattern *p, const struct tok *t, size_t nt,
				 const char *s, const char *end, bool to_end)
{
	for (;;) {
		size_t k = 0;
		while (k < nt && t[k].kind != TOK_SLASH)
			k++;
		const char *q = memchr(s, '/', (size_t)(end - s));
		if (!q)
			q = end;
		if (k < nt) {
			if (q == end || !glob_component(p, t, k, s, (size_t)(q - s)))
				return NULL;
			s = q + 1;
			t += k + 1;
			nt -= k + 1;
			continue;
		}
		if (to_end) {
			if (q != end || !glob_component(p, t, nt, s, (size_t)(end - s)))
				return NULL;
			return end;
		}
		if ((size_t)(q - s) < nt)
			return NULL;
		for (size_t i = 0; i < nt; i++)
			if (t[i].kind != TOK_LIT || t[i].ch != (unsigned char)s[i])
				return NULL;
		return s + nt;
	}
}

static size_t count_slashes(const char *s, const char *end)
{
	size_t n = 0;
	while ((s = memchr(s, '/', (size_t)(end - s))) != NULL) {
		n++;
		s++;
	}
	return n;
}

/* Places the tokens after a "**" (gap) at the first start from cur where they fit. A segment
 * that is not the last ends with a slash, so a later start can only end later: the first fit
 * is the best one. */
static const char *place_segment(const struct pattern *p, unsigned gap, const struct tok *t,
				 size_t nt, const char *cur, const char *end, bool last)
{
	size_t need = 0, have = count_slashes(cur, end);
	const char *s = cur;

	for (size_t i = 0; i < nt; i++)
		need += t[i].kind == TOK_SLASH;
	for (;;) {
		if (have < need)
			return NULL;
		if (!last || have == need) {
			const char *r = match_segment(p, t, nt, s, end, last);
			if (r)
				return r;
		}
		if (gap == TOK_DSTAR_SLASH) {
			/* "**" + '/' resumes at cur or right after a '/' */
			s = memchr(s, '/', (size_t)(end - s));
			if (!s)
				return NULL;
			s++;
			have--;
		} else {
			if (s == end)
				return NULL;
			have -= *s++ == '/';
		}
	}
}

static bool match_path(const struct pattern *p, const char *path, size_t len)
{
	const struct tok *t = p->toks, *tend = p->toks + p->ntoks, *d = t;
	const char *end = path + len, *cur;

	while (d < tend && d->kind != TOK_DSTAR && d->kind != TOK_DSTAR_SLASH)
		d++;
	if (d == tend)
		return match_segment(p, t, p->ntoks, path, end, true) != NULL;
	cur = match_segment(p, t, (size_t)(d - t), path, end, false);
	while (cur && d < tend) {
		const struct tok *seg = d + 1, *next = seg;
		while (next < tend && next->kind != TOK_DSTAR && next->kind != TOK_DSTAR_SLASH)
			next++;
		if (next == tend && next == seg && d->kind == TOK_DSTAR)
			return true;
		cur = place_segment(p, d->kind, seg, (size_t)(next - seg), cur, end, next == tend);
		d = next;
	}
	return cur != NULL;
}

static bool pattern_matches(const struct pattern *p, const char *path, size_t len,
			    const char *base, size_t blen)
{
	if (p->flags & PAT_NEVER)
		return false;
	if (p->flags & PAT_BASENAME) {
		switch (p->kind) {
		case PAT_LITERAL:
			return blen == p->len && !memcmp(base, p->text, blen);
		case PAT_SUFFIX:
			return blen >= p->len - 1 &&
			       !memcmp(base + blen - (p->len - 1), p->text + 1, p->len - 1);
		case PAT_GLOB:
			return glob_component(p, p->toks, p->ntoks, base, blen);
		}
		return false;
	}
	if (p->kind == PAT_LITERAL)
		return len == p->len && !memcmp(path, p->text, len);
	if (len < p->prefix || memcmp(path, p->text, p->prefix))
		return false;
	return match_path(p, path, len);
}

static void pattern_clear(struct pattern *p)
{
	free(p->text);
	free(p->toks);
	free(p->sets);
}

static int add_pattern(struct ignore_rules *r, const char *s, size_t n)
{
	struct pattern p = { 0 };
	int rc;

	if (n && s[0] == '!') {
		p.flags |= PAT_NEGATIVE;
		s++;
		n--;
	}
	if (n && s[n - 1] == '/') {
		p.flags |= PAT_MUSTBEDIR;
		n--;
	}
	if (!memchr(s, '/', n))
		p.flags |= PAT_BASENAME;
	else if (s[0] == '/') {
		s++;
		n--;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct pattern *np = realloc(r->pats, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		r->pats = np;
		r->cap = cap;
	}
	p.text = malloc(n + 1);
	if (!p.text)
		return -ENOMEM;
	memcpy(p.text, s, n);
	p.text[n] = 0;
	p.len = n;
	p.prefix = simple_length(s, n);
	if (p.prefix == n)
		p.kind = PAT_LITERAL;
	else if ((p.flags & PAT_BASENAME) && s[0] == '*' && simple_length(s + 1, n - 1) == n - 1)
		p.kind = PAT_SUFFIX;
	else
		p.kind = PAT_GLOB;
	if (p.kind == PAT_GLOB && (rc = tokenize(&p, p.flags & PAT_BASENAME)) < 0) {
		pattern_clear(&p);
		return rc;
	}
	r->pats[r->n++] = p;
	return 0;
}

/* One pattern as git reads one line of .gitignore; s[0..n) excludes the separator. */
static int add_piece(struct ignore_rules *r, const char *s, size_t n)
{
	size_t last_space = SIZE_MAX;

	if (n && s[0] == '#')
		return 0;
	if (n && s[n - 1] == '\r')
		n--;
	/* git keeps patterns as C strings */
	n = strnlen(s, n);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			if (last_space == SIZE_MAX)
				last_space = i;
			continue;
		}
		if (s[i] == '\\' && ++i == n) {
			/* a dangling '\' protects the spaces before it */
			last_space = SIZE_MAX;
			break;
		}
		last_space = SIZE_MAX;
	}
	if (last_space != SIZE_MAX)
		n = last_space;
	return n ? add_pattern(r, s, n) : 0;
}

int ignore_rules_new(const char *text, size_t len, struct ignore_rules **ret)
{
	struct ignore_rules *r;
	size_t i = 0;

	if (!ret)
		return -EINVAL;
	*ret = NULL;
	if (!text && len)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t le = nl ? (size_t)(nl - text) : len;

		/* A comment runs to the end of the line: commas in it separate nothing. */
		if (text[i] != '#') {
			size_t start = i;
			for (size_t j = i; j <= le; j++) {
				if (j + 1 < le && text[j] == '\\') {
					j++;
					continue;
				}
				if (j < le && text[j] != ',')
					continue;
				int rc = add_piece(r, text + start, (j < le ? j : le) - start);
				if (rc < 0) {
					ignore_rules_free(r);
					return rc;
				}
				/* "*.log, *.tmp" is how people write a list: the space after a
				 * comma is a separator, not part of the next pattern. Escape it
				 * ("\ ") to mean a leading space. */
				start = j + 1;
				while (start < le && text[start] == ' ')
					start++;
			}
		}
		i = le + 1;
	}
	*ret = r;
	return 0;
}

int ignore_rules_load_file(int root_fd, struct ignore_rules **ret)
{
	struct stat st;
	char *buf = NULL;
	size_t have = 0;
	int fd, rc;

	if (!ret)
		return -EINVAL;
	*ret = NULL;
	/* O_NONBLOCK so that a FIFO planted under the name cannot hang the backup */
	fd = openat(root_fd, IGNORE_FILE_NAME,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if (st.st_size > IGNORE_FILE_MAX) {
		rc = -EFBIG;
		goto out;
	}
	/* One byte of room to notice a file that grew after fstat */
	buf = malloc(IGNORE_FILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, IGNORE_FILE_MAX + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > IGNORE_FILE_MAX) {
			rc = -EFBIG;
			goto out;
		}
	}
	rc = ignore_rules_new(buf, have, ret);
out:
	free(buf);
	close(fd);
	return rc;
}

bool ignore_rules_match(const struct ignore_rules *r, const char *relpath, bool is_dir)
{
	const char *base;
	size_t len;

	if (!r || !relpath || !*relpath)
		return false;
	len = strlen(relpath);
	base = strrchr(relpath, '/');
	base = base ? base + 1 : relpath;
	for (size_t i = r->n; i-- > 0;) {
		const struct pattern *p = &r->pats[i];
		if ((p->flags & PAT_MUSTBEDIR) && !is_dir)
			continue;
		if (pattern_matches(p, relpath, len, base, len - (size_t)(base - relpath)))
			return !(p->flags & PAT_NEGATIVE);
	}
	return false;
}

size_t ignore_rules_count(const struct ignore_rules *r)
{
	return r ? r->n : 0;
}

void ignore_rules_free(struct ignore_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		pattern_clear(&r->pats[i]);
	free(r->pats);
	free(r);
}
