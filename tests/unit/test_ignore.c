/* Ignore rules against the real thing: every decision is compared with what
 * `git check-ignore --no-index` says for the same patterns, written to .gitignore in a
 * scratch repository that holds the same tree (git looks at the disk to tell directories
 * from files, so the trees are real).
 *
 * What is compared is whether a path ends up out of the backup. The walker never enters an
 * ignored directory, so a path is out when it or any ancestor directory matches; that is
 * computed here from ignore_rules_match on the path and each ancestor. git reports the same
 * thing: before a path, check-ignore checks each of its leading directories, and when one is
 * excluded it reports that directory's pattern for the path (`logs/` for logs/keep even after
 * `!logs/keep`; test_git_reports_ancestor holds this). So with -v --non-matching, git ignores a
 * path exactly when it names a pattern and that pattern is not a negative one ("!...").
 *
 * One git run per case: all paths go through --stdin -z, which also spares any quoting. */
#include "ignore.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* No repository, user or system configuration may leak in (GIT_DIR from a hook,
 * core.excludesFile, core.ignoreCase, ...). Starts a command line that then does `cd`. */
#define GIT_CLEAN                                                                              \
	"unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_COMMON_DIR GIT_CEILING_DIRECTORIES; "
#define GIT_ENV                                                                                \
	"GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null XDG_CONFIG_HOME=/nonexistent LC_ALL=C"

/* ---- small helpers ---- */

struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		ck_assert(b->p != NULL);
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char c)
{
	sb_putn(b, &c, 1);
}

/* A C-escaped rendering of bytes, for messages. */
static char *show(const char *s, size_t n)
{
	struct sbuf b = { 0 };
	sb_putc(&b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		if (c == '\n')
			sb_puts(&b, "\\n");
		else if (c == '\r')
			sb_puts(&b, "\\r");
		else if (c == '\\')
			sb_puts(&b, "\\\\");
		else if (c == '"')
			sb_puts(&b, "\\\"");
		else if (c < 0x20 || c >= 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			sb_puts(&b, tmp);
		} else
			sb_putc(&b, (char)c);
	}
	sb_putc(&b, '"');
	return b.p;
}

/* splitmix64: fixed seeds give the same trees and patterns on every machine */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t rng_below(struct rng *r, size_t n)
{
	return (size_t)(rng_next(r) % n);
}

static bool rng_pct(struct rng *r, unsigned pct)
{
	return rng_below(r, 100) < pct;
}

#define PICK(r, arr) ((arr)[rng_below((r), sizeof(arr) / sizeof((arr)[0]))])

/* ---- trees on disk ---- */

struct node {
	char *path;
	const char *name; /* inside path */
	int parent;
	bool is_dir;
};

struct tree {
	struct node *v;
	size_t n, cap;
	char *base; /* scratch: base/repo is the git work tree, base/paths, base/out */
	char *repo;
};

static int tree_find(const struct tree *t, int parent, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].parent == parent && !strcmp(t->v[i].name, name))
			return (int)i;
	return -1;
}

static int tree_add(struct tree *t, int parent, const char *name, bool is_dir)
{
	int found = tree_find(t, parent, name);
	if (found >= 0)
		return t->v[found].is_dir == is_dir ? found : -1;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = realloc(t->v, t->cap * sizeof(*t->v));
		ck_assert(t->v != NULL);
	}
	struct node *nd = &t->v[t->n];
	if (parent < 0)
		nd->path = strdup(name);
	else
		ck_assert_int_ge(asprintf(&nd->path, "%s/%s", t->v[parent].path, name), 0);
	ck_assert(nd->path != NULL);
	nd->name = nd->path + strlen(nd->path) - strlen(name);
	nd->parent = parent;
	nd->is_dir = is_dir;
	return (int)t->n++;
}

/* A path like "a/b/" (trailing '/' for a directory); missing parents become directories. */
static void tree_add_path(struct tree *t, const char *spec)
{
	char *s = strdup(spec);
	int parent = -1;
	size_t len = strlen(s);
	bool is_dir = len && s[len - 1] == '/';
	if (is_dir)
		s[len - 1] = 0;
	char *part = s;
	for (char *slash; (slash = strchr(part, '/')) != NULL; part = slash + 1) {
		*slash = 0;
		parent = tree_add(t, parent, part, true);
		ck_assert_int_ge(parent, 0);
	}
	ck_assert_int_ge(tree_add(t, parent, part, is_dir), 0);
	free(s);
}

static void tree_create(struct tree *t, const char *tag)
{
	t->base = tu_mkdtemp(tag);
	ck_assert_int_ge(asprintf(&t->repo, "%s/repo", t->base), 0);
	ck_assert_int_eq(mkdir(t->repo, 0755), 0);
	int st = tu_sh(GIT_CLEAN "cd '%s' && " GIT_ENV
		       " git -c init.defaultBranch=main init -q --template= .",
		       t->repo);
	ck_assert_msg(st == 0, "git init failed (%d); is git installed?", st);
	for (size_t i = 0; i < t->n; i++) {
		char *p = NULL;
		ck_assert_int_ge(asprintf(&p, "%s/%s", t->repo, t->v[i].path), 0);
		if (t->v[i].is_dir)
			ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
		else
			tu_write_file(p, "", 0, 0644);
		free(p);
	}
	struct sbuf list = { 0 };
	for (size_t i = 0; i < t->n; i++)
		sb_putn(&list, t->v[i].path, strlen(t->v[i].path) + 1);
	char *lp = NULL;
	ck_assert_int_ge(asprintf(&lp, "%s/paths", t->base), 0);
	tu_write_file(lp, list.p, list.n, 0644);
	free(lp);
	free(list.p);
}

static void tree_free(struct tree *t)
{
	tu_rmrf(t->base);
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].path);
	free(t->v);
	free(t->base);
	free(t->repo);
	memset(t, 0, sizeof(*t));
}

/* ---- the oracle ---- */

struct verdicts {
	bool *ignored;
	char **why; /* git's pattern, "" when none */
	char *buf;
};

static void verdicts_free(struct verdicts *v)
{
	free(v->ignored);
	free(v->why);
	free(v->buf);
}

static void git_verdicts(const struct tree *t, const char *gitignore, size_t len,
			 struct verdicts *v)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/.gitignore", t->repo), 0);
	tu_write_file(p, gitignore, len, 0644);
	free(p);
	int st = tu_sh(GIT_CLEAN "cd '%s' && " GIT_ENV
		       " git check-ignore --no-index -v -n -z --stdin <'%s/paths' >'%s/out'",
		       t->repo, t->base, t->base);
	ck_assert_msg(st == 0 || st == 1, "git check-ignore failed (%d); is git installed?", st);
	ck_assert_int_ge(asprintf(&p, "%s/out", t->base), 0);
	size_t n = 0;
	v->buf = tu_read_file(p, &n);
	free(p);
	ck_assert(v->buf != NULL);
	v->ignored = calloc(t->n + 1, sizeof(*v->ignored));
	v->why = calloc(t->n + 1, sizeof(*v->why));
	ck_assert(v->ignored && v->why);
	/* records of four NUL-terminated fields: source, line, pattern, path */
	char *f = v->buf, *end = v->buf + n;
	for (size_t i = 0; i < t->n; i++) {
		char *fld[4];
		for (int k = 0; k < 4; k++) {
			ck_assert_msg(f < end, "git output ends early at record %zu", i);
			fld[k] = f;
			f += strlen(f) + 1;
		}
		ck_assert_msg(!strcmp(fld[3], t->v[i].path), "git answered for %s, not %s",
			      fld[3], t->v[i].path);
		v->ignored[i] = fld[1][0] && fld[2][0] != '!';
		v->why[i] = fld[2];
	}
	ck_assert_msg(f == end, "git output has more records than paths");
}

/* Effective verdicts of our rules: a path is out when it or an ancestor matches. */
static bool *our_verdicts(const struct tree *t, const struct ignore_rules *r)
{
	bool *out = calloc(t->n + 1, sizeof(*out));
	ck_assert(out != NULL);
	for (size_t i = 0; i < t->n; i++) {
		const struct node *nd = &t->v[i];
		out[i] = (nd->parent >= 0 && out[nd->parent]) ||
			 ignore_rules_match(r, nd->path, nd->is_dir);
	}
	return out;
}

struct stats {
	unsigned cases;
	unsigned paths;
	unsigned ignored; /* by git, to see that the cases are not trivial */
	unsigned mismatches;
};

/* Our text `ours` (one of several spellings of the same rules) against git's verdicts. */
static void compare(const struct tree *t, const struct verdicts *git, const char *label,
		    const char *gitignore, size_t git_len, const char *ours, size_t ours_len,
		    struct stats *st)
{
	struct ignore_rules *r = NULL;
	int rc = ignore_rules_new(ours, ours_len, &r);
	ck_assert_msg(rc == 0, "ignore_rules_new: %d", rc);
	bool *mine = our_verdicts(t, r);
	for (size_t i = 0; i < t->n; i++) {
		st->paths++;
		st->ignored += git->ignored[i];
		if (mine[i] == git->ignored[i])
			continue;
		st->mismatches++;
		char *sp = show(gitignore, git_len), *so = show(ours, ours_len);
		char *pp = show(t->v[i].path, strlen(t->v[i].path));
		fprintf(stderr,
			"MISMATCH [%s] .gitignore=%s ours=%s\n"
			"    path %s (%s): ours %s, git %s%s%s\n",
			label, sp, so, pp, t->v[i].is_dir ? "dir" : "file",
			mine[i] ? "ignored" : "kept", git->ignored[i] ? "ignored" : "kept",
			git->why[i][0] ? " by " : "", git->why[i]);
		free(sp);
		free(so);
		free(pp);
	}
	free(mine);
	ignore_rules_free(r);
}

/* ---- the hand-written table ---- */

static const char *const table_paths[] = {
	"foo", "bar/foo", "bar/foo.c", "d/foo/x", "d/bar", "a.log", "important.log",
	"d/important.log", "d/b.log", "logs/keep", "logs/a.log", "logs/sub/keep", "keep",
	"#file", "!important", "x.o", "x.a", "x.c", "abc", "dbc", "Xbc", "trail ", "trail",
	"two  ", "a/b", "a/x/b", "a/x/y/b", "a/x/y/c", "ab", "axx/yy/b", "foo.txt",
	"doc/frotz/x", "frotz/y", "comma,name", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "[ab]",
	"a*b", "a?b", "back\\slash", "sp ace", " lead", "cr\r", "tab\tx", "vt\vx", "hash#",
	"build/", "build/out/x", "src/build/x", "deep/a/b/c/d/e", "deep/x/b/c/d/f", "*",
	"under_score", "UPPER", "mixed.Log", "-dash", "]bracket", "^caret",
};

struct table_case {
	const char *git; /* .gitignore */
	const char *ours; /* our text, when it differs (commas, CRLF); NULL: same as git */
	const char *ignored[8]; /* some paths it must ignore (also checked against git) */
	const char *kept[8];	/* some paths it must keep */
};

static const struct table_case table[] = {
	{ "/foo", NULL, { "foo" }, { "bar/foo", "d/foo/x" } },
	{ "foo", NULL, { "foo", "bar/foo", "d/foo/x" }, { "bar/foo.c" } },
	{ "foo/", NULL, { "d/foo", "d/foo/x" }, { "foo", "bar/foo" } },
	{ "**/foo", NULL, { "foo", "bar/foo", "d/foo" }, { "bar/foo.c" } },
	{ "**/foo/x", NULL, { "d/foo/x" }, { "foo" } },
	{ "a/**/b", NULL, { "a/b", "a/x/b", "a/x/y/b" }, { "ab", "a/x/y/c" } },
	{ "a/**", NULL, { "a/b", "a/x", "a/x/y/c" }, { "a", "ab" } },
	{ "a/**/", NULL, { "a/x", "a/x/y" }, { "a/b", "a" } },
	{ "**", NULL, { "foo", "a/b" }, { 0 } },
	{ "/**", NULL, { "foo", "a/b" }, { 0 } },
	{ "*.log\n!important.log", NULL, { "a.log", "d/b.log", "logs/a.log" },
	  { "important.log", "d/important.log" } },
	{ "!important.log\n*.log", NULL, { "a.log", "important.log" }, { 0 } },
	{ "\\#file", NULL, { "#file" }, { "foo" } },
	{ "#file", NULL, { 0 }, { "#file" } },
	{ "\\!important", NULL, { "!important" }, { 0 } },
	{ "!important", NULL, { 0 }, { "!important" } },
	{ "*.[oa]", NULL, { "x.o", "x.a" }, { "x.c" } },
	{ "[!a-c]*", NULL, { "dbc", "Xbc", "foo" }, { "abc", "bar", "ab" } },
	{ "[^a-c]*", NULL, { "dbc" }, { "abc" } },
	{ "trail   ", NULL, { "trail" }, { "trail " } },
	{ "trail\\ ", NULL, { "trail " }, { "trail" } },
	{ "two\\  ", NULL, { 0 }, { "two  " } },
	{ "two \\ ", NULL, { "two  " }, { 0 } },
	{ "logs/\n!logs/keep", NULL, { "logs", "logs/keep", "logs/a.log" }, { "keep" } },
	{ "logs/*\n!logs/keep", NULL, { "logs/a.log", "logs/sub" }, { "logs/keep", "logs" } },
	{ "doc/frotz/", NULL, { "doc/frotz", "doc/frotz/x" }, { "frotz/y" } },
	{ "frotz/", NULL, { "doc/frotz", "frotz" }, { "doc" } },
	{ "a**/b", NULL, { "ab", "axx/yy/b", "a/b" }, { "axx" } },
	{ "a/**\\/b", NULL, { "a/x/b" }, { "a/b" } },
	{ "**\\/b", NULL, { "a/b" }, { 0 } },
	{ "build/out/**", NULL, { "build/out/x" }, { "build/out", "build" } },
	{ "bui*/", NULL, { "build", "src/build" }, { 0 } },
	{ "src/*/x", NULL, { "src/build/x" }, { 0 } },
	{ "src/*", NULL, { "src/build" }, { "src" } },
	{ "deep/*/b/**/e", NULL, { "deep/a/b/c/d/e" }, { "deep/x/b/c/d/f" } },
	{ "deep/**/d/*", NULL, { "deep/a/b/c/d/e", "deep/x/b/c/d/f" }, { 0 } },
	{ "?", NULL, { "*" }, { "\xc3\xa9" } },
	{ "??", NULL, { "\xc3\xa9", "ab" }, { 0 } },
	{ "?\xa9", NULL, { "\xc3\xa9" }, { 0 } },
	{ "[\xc3]?", NULL, { "\xc3\xa9" }, { 0 } },
	{ "\\[ab]", NULL, { "[ab]" }, { "a" } },
	{ "[ab]", NULL, { 0 }, { "[ab]" } },
	{ "[[]ab]", NULL, { "[ab]" }, { 0 } },
	{ "a\\*b", NULL, { "a*b" }, { "a?b" } },
	{ "a?b", NULL, { "a*b", "a?b" }, { "ab" } },
	{ "\\*", NULL, { "*" }, { "foo" } },
	{ "back\\\\slash", NULL, { "back\\slash" }, { 0 } },
	{ "back\\slash", NULL, { 0 }, { "back\\slash" } },
	{ "foo\\", NULL, { 0 }, { "foo" } },
	{ "\\", NULL, { 0 }, { "foo" } },
	{ "[a", NULL, { 0 }, { "a" } },
	{ "[[:bogus:]]*", NULL, { 0 }, { "abc" } },
	{ "[[:alpha:]", NULL, { 0 }, { "abc" } },
	{ "[[:space:]]*\n*[[:space:]]*", NULL, { " lead", "sp ace", "tab\tx", "cr\r" },
	  { "vt\vx" } },
	{ "[[:upper:]]*", NULL, { "UPPER", "Xbc" }, { "foo" } },
	{ "[[:punct:]]*", NULL, { "#file", "-dash", "]bracket", "^caret" }, { "foo" } },
	{ "[]]*\n[[:]*", NULL, { "]bracket" }, { "foo" } },
	{ "[!]]*", NULL, { "foo" }, { "]bracket" } },
	{ "[--0]*", NULL, { "-dash" }, { 0 } },
	{ "[a-]*", NULL, { "-dash", "abc" }, { "dbc" } },
	{ "*.LOG", NULL, { 0 }, { "mixed.Log", "a.log" } },
	{ " lead", NULL, { " lead" }, { 0 } },
	{ "sp ace", NULL, { "sp ace" }, { 0 } },
	{ "hash#", NULL, { "hash#" }, { 0 } },
	{ "\xef\xbb\xbf" "foo.txt", NULL, { "foo.txt" }, { 0 } },
	{ "# comment, with a comma\nabc", NULL, { "abc" }, { "foo" } },
	{ "//foo\nfoo//\n/", NULL, { 0 }, { "foo" } },
	{ "a/b/\n/a/x/", NULL, { "a/x" }, { "a/b" } },
	{ "*/b", NULL, { "a/b" }, { "a/x/b" } },
	{ "a/*/b", NULL, { "a/x/b" }, { "a/b", "a/x/y/b" } },
	{ "a/***/b", NULL, { "a/x/b", "a/b" }, { "ab" } },
	/* commas and CRLF: the same rules as the .gitignore beside them */
	{ "*.log\n!important.log", "*.log,!important.log", { "a.log" }, { "important.log" } },
	{ "comma,name", "comma\\,name", { "comma,name" }, { 0 } },
	{ "comma,name", "comma[\\,]name", { "comma,name" }, { 0 } },
	{ "foo\nabc\nx.o", "foo,abc\r\nx.o\r\n", { "foo", "abc", "x.o" }, { "x.a" } },
	{ "foo\n#x\ntrail", "foo,#x,trail  \r\n", { "foo", "trail" }, { "trail " } },
	/* git drops a CR only right before a newline: "cr\r \n" keeps it */
	{ "cr\r \n", "cr\r \r\n", { "cr\r" }, { 0 } },
	{ "cr\r", NULL, { 0 }, { "cr\r" } },
	{ "*.log\n!important.log", "*.log\r\n!important.log", { "a.log" }, { "important.log" } },
};

START_TEST(test_table)
{
	struct tree t = { 0 };
	struct stats st = { 0 };
	unsigned failed = 0;

	for (size_t i = 0; i < sizeof(table_paths) / sizeof(table_paths[0]); i++)
		tree_add_path(&t, table_paths[i]);
	tree_create(&t, "ignore-table");
	for (size_t c = 0; c < sizeof(table) / sizeof(table[0]); c++) {
		const struct table_case *tc = &table[c];
		const char *ours = tc->ours ? tc->ours : tc->git;
		struct verdicts git = { 0 };
		char label[32];

		snprintf(label, sizeof(label), "table %zu", c);
		git_verdicts(&t, tc->git, strlen(tc->git), &git);
		compare(&t, &git, label, tc->git, strlen(tc->git), ours, strlen(ours), &st);
		st.cases++;
		for (int want = 0; want < 2; want++) {
			const char *const *list = want ? tc->ignored : tc->kept;
			for (int k = 0; k < 8 && list[k]; k++) {
				int idx = -1;
				for (size_t i = 0; i < t.n && idx < 0; i++)
					if (!strcmp(t.v[i].path, list[k]))
						idx = (int)i;
				ck_assert_msg(idx >= 0, "table %zu: no %s in the tree", c, list[k]);
				if (git.ignored[idx] == (bool)want)
					continue;
				/* the expectation, not the code, is wrong when git disagrees */
				fprintf(stderr, "EXPECTATION [table %zu] %s: git says %s\n", c,
					list[k], git.ignored[idx] ? "ignored" : "kept");
				failed++;
			}
		}
		verdicts_free(&git);
	}
	fprintf(stderr, "ignore table: %u cases, %u path verdicts compared with git (%u ignored)\n",
		st.cases, st.paths, st.ignored);
	tree_free(&t);
	ck_assert_msg(st.mismatches == 0, "%u verdicts differ from git (listed above)",
		      st.mismatches);
	ck_assert_msg(failed == 0, "%u expectations contradict git (listed above)", failed);
}
END_TEST

/* git reports the excluded ancestor's pattern for everything below it, which is what makes
 * "effective" verdicts comparable at all. */
START_TEST(test_git_reports_ancestor)
{
	struct tree t = { 0 };
	struct verdicts git = { 0 };
	const char *gi = "logs/\n!logs/keep\n";

	tree_add_path(&t, "logs/keep");
	tree_add_path(&t, "logs/sub/keep");
	tree_create(&t, "ignore-anc");
	git_verdicts(&t, gi, strlen(gi), &git);
	for (size_t i = 0; i < t.n; i++) {
		ck_assert_msg(git.ignored[i], "%s", t.v[i].path);
		ck_assert_str_eq(git.why[i], "logs/");
	}
	verdicts_free(&git);
	tree_free(&t);
}
END_TEST

/* ---- generated trees and patterns ---- */

static const char *const name_common[] = {
	"a", "b", "c", "ab", "foo", "bar", "logs", "keep", "x", "A", "B", "0", "7", ".log",
	".txt", ".o", ".a", "important", "cache", "world", "d", "e1",
};

static const char *const name_special[] = {
	".", " ", "[", "]", "!", "#", "*", "?", "\\", ",", "-", "\xc3\xa9", "\xe6\x97\xa5",
	"~", "^", "{", "}", "$", "'", "..", "\t",
};

static char *gen_name(struct rng *r)
{
	for (;;) {
		struct sbuf b = { 0 };
		size_t parts = 1 + rng_below(r, 3);
		for (size_t i = 0; i < parts; i++)
			sb_puts(&b, rng_pct(r, 75) ? PICK(r, name_common) : PICK(r, name_special));
		if (strcmp(b.p, ".") && strcmp(b.p, "..") && strncmp(b.p, ".git", 4))
			return b.p;
		free(b.p);
	}
}

static void gen_tree(struct rng *r, struct tree *t, size_t want)
{
	int *dirs = malloc(want * sizeof(*dirs));
	size_t ndirs = 0;
	ck_assert(dirs != NULL);
	while (t->n < want) {
		/* the root half of the time: bushy near the top, yet a few levels deep */
		int parent = ndirs && rng_pct(r, 55) ? dirs[rng_below(r, ndirs)] : -1;
		int depth = 0;
		for (int p = parent; p >= 0; p = t->v[p].parent)
			depth++;
		bool is_dir = depth < 5 && rng_pct(r, 35);
		char *name = gen_name(r);
		if (tree_find(t, parent, name) < 0) {
			int idx = tree_add(t, parent, name, is_dir);
			if (is_dir)
				dirs[ndirs++] = idx;
		}
		free(name);
	}
	free(dirs);
}

static const char *const wild_forms[] = {
	"*", "?", "*.log", "*.txt", "*.[oa]", "[!a-c]*", "[^.]*", "[a-]*", "[]]", "[]a]*",
	"[!]]*", "[[:alpha:]]*", "[[:digit:]]", "[[:space:]]*", "[[:punct:]]*", "[[:upper:]]*",
	"[[:alnum:]]", "[[:bogus:]]", "[a", "[[:alpha:]", "?*", "*?", "a*", "*a*", "f*o", "\\*",
	"\\?", "\\[*", "\\#*", "\\!*", "*\\ ", "[a-c]", "[c-a]", "[\\]]*", "[a\\-c]", "[[:]*",
	"[[:a]", "[--0]", "[\xc3\xa9]", "??", "*,*", "[,]*", "a**", "**a", "***", "**.log",
	"a**b", "*\\", "\\", "[!]", "*.", ".*", "[.]*", "*[0-9]", "[[:lower:]][[:lower:]]*",
	"[!!]*", "[\\\\]*", "*~", "b*r", "l*s", "**\\", "k??p", "*\xc3\xa9*", "?\xa9", "**",
	"**", "**", "*", "[[:xdigit:]]*", "[[:graph:]]", "[[:print:]]*", "[[:cntrl:]]*",
	"[[:blank:]]*", "[a-z0-9]*", "[!a-z]", "[x-]", "[\\-]*", "*\t*", "c[!a]*",
};

/* A tree name, raw (its * ? [ \ become wildcards), escaped, or with one byte made wild. */
static void gen_literal(struct rng *r, const char *name, bool at_start, struct sbuf *out)
{
	size_t len = strlen(name);
	unsigned mode = (unsigned)rng_below(r, 4);
	size_t pos = len ? rng_below(r, len) : 0;

	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (mode == 1 && (strchr("*?[\\", c) || (c == ' ' && i + 1 == len) ||
				  (i == 0 && at_start && (c == '!' || c == '#'))))
			sb_putc(out, '\\');
		if (mode >= 2 && i == pos) {
			if (mode == 2)
				sb_puts(out, rng_pct(r, 50) ? "?" : "*");
			else {
				sb_puts(out, "[");
				sb_putc(out, c == ']' || c == '!' || c == '^' ? 'q' : c);
				sb_puts(out, "z]");
			}
			continue;
		}
		sb_putc(out, c);
	}
}

static const char *const noise[] = {
	"*", "?", "[", "]", "!", "^", "-", "\\", "/", ":", "#", " ", "a", "b", ".", "x",
	"[:alpha:]", "[:", ":]", "**", "\xc3\xa9", "c", "\\\\", "[!", ",",
};

static void gen_line(struct rng *r, const struct tree *t, struct sbuf *out)
{
	unsigned kind = (unsigned)rng_below(r, 100);
	if (kind < 4) {
		sb_puts(out, rng_pct(r, 50) ? "" : "   ");
		return;
	}
	if (kind < 8) {
		sb_puts(out, rng_pct(r, 50) ? "# a comment, with a comma" : "#*");
		return;
	}
	if (kind < 14) {
		/* syntax soup, for the parser's corners */
		size_t n = 1 + rng_below(r, 8);
		for (size_t i = 0; i < n; i++)
			sb_puts(out, PICK(r, noise));
		return;
	}
	if (rng_pct(r, 22))
		sb_putc(out, '!');
	if (rng_pct(r, 25))
		sb_putc(out, '/');
	if (kind < 28 && t->n) {
		/* a real path with some components made wild, so that deep patterns hit */
		const struct node *nd = &t->v[rng_below(r, t->n)];
		const char *p = nd->path;
		bool first = true;
		while (*p) {
			const char *slash = strchr(p, '/');
			size_t n = slash ? (size_t)(slash - p) : strlen(p);
			char *comp = strndup(p, n);
			if (!first)
				sb_putc(out, '/');
			unsigned w = (unsigned)rng_below(r, 10);
			if (w == 0)
				sb_puts(out, "**");
			else if (w == 1)
				sb_puts(out, "*");
			else
				gen_literal(r, comp, first && out->n == 0, out);
			free(comp);
			first = false;
			p += n;
			if (*p)
				p++;
		}
	} else {
		size_t segs = 1 + rng_below(r, 3);
		for (size_t i = 0; i < segs; i++) {
			if (i)
				sb_putc(out, '/');
			if (rng_pct(r, 45) && t->n)
				gen_literal(r, t->v[rng_below(r, t->n)].name, i == 0, out);
			else
				sb_puts(out, PICK(r, wild_forms));
		}
	}
	if (rng_pct(r, 22))
		sb_putc(out, '/');
	unsigned tail = (unsigned)rng_below(r, 100);
	if (tail < 8)
		sb_puts(out, "  ");
	else if (tail < 12)
		sb_puts(out, "\\ ");
	else if (tail < 14)
		sb_puts(out, " \\ ");
}

/* A .gitignore line in our syntax: unescaped commas become "\,". */
static void put_line(struct sbuf *out, const char *s)
{
	size_t n = strlen(s);
	for (size_t j = 0; j < n; j++) {
		if (s[j] == '\\' && j + 1 < n) {
			sb_putn(out, s + j, 2);
			j++;
		} else if (s[j] == ',') {
			sb_puts(out, "\\,");
		} else {
			sb_putc(out, s[j]);
		}
	}
}

/* A line that ends in a lone '\' would swallow a comma after it, and a comment line would
 * swallow the rest of its line: those keep their newline. */
static bool needs_newline(const char *s)
{
	size_t n = strlen(s), k = 0;
	while (k < n && s[n - 1 - k] == '\\')
		k++;
	return k % 2 || s[0] == '#';
}

typedef void gen_line_fn(struct rng *r, const struct tree *t, struct sbuf *out);

/* One pattern set of up to max_lines lines, spelled three ways for us (LF, CRLF, commas)
 * and compared with git each time. */
static void run_generated_case(struct rng *r, const struct tree *t, gen_line_fn *gen,
			       size_t max_lines, const char *what, unsigned seed, unsigned set,
			       struct stats *st)
{
	size_t nlines = 1 + rng_below(r, max_lines);
	char **lines = calloc(nlines, sizeof(*lines));
	struct sbuf git_lf = { 0 }, git_crlf = { 0 };
	struct sbuf lf = { 0 }, crlf = { 0 }, comma = { 0 };

	ck_assert(lines != NULL);
	for (size_t i = 0; i < nlines; i++) {
		struct sbuf line = { 0 };
		gen(r, t, &line);
		sb_putc(&line, 0); /* so that an empty line is not NULL */
		lines[i] = line.p;
		sb_puts(&git_lf, lines[i]);
		sb_puts(&git_crlf, lines[i]);
		put_line(&lf, lines[i]);
		put_line(&crlf, lines[i]);
		/* spaces after a comma separate; an escaped one is the pattern's own */
		if (lines[i][0] == ' ' && lines[i][strspn(lines[i], " ")] != 0)
			sb_putc(&comma, '\\');
		put_line(&comma, lines[i]);
		/* the last line goes without its newline now and then */
		if (i + 1 < nlines || rng_pct(r, 70)) {
			sb_putc(&git_lf, '\n');
			sb_puts(&git_crlf, "\r\n");
			sb_putc(&lf, '\n');
			sb_puts(&crlf, "\r\n");
		}
		if (i + 1 < nlines)
			sb_putc(&comma, needs_newline(lines[i]) ? '\n' : ',');
	}

	/* git gets the CRLF file every other time: it drops the CR as we do */
	const struct sbuf *gi = set % 2 ? &git_crlf : &git_lf;
	struct verdicts git = { 0 };
	char label[64];
	git_verdicts(t, gi->p, gi->n, &git);
	snprintf(label, sizeof(label), "%s seed %u set %u LF", what, seed, set);
	compare(t, &git, label, gi->p, gi->n, lf.p, lf.n, st);
	snprintf(label, sizeof(label), "%s seed %u set %u CRLF", what, seed, set);
	compare(t, &git, label, gi->p, gi->n, crlf.p, crlf.n, st);
	snprintf(label, sizeof(label), "%s seed %u set %u commas", what, seed, set);
	compare(t, &git, label, gi->p, gi->n, comma.p, comma.n, st);
	st->cases++;
	verdicts_free(&git);
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	free(lines);
	free(git_lf.p);
	free(git_crlf.p);
	free(lf.p);
	free(crlf.p);
	free(comma.p);
}

static void report_generated(const char *what, unsigned trees, const struct stats *st)
{
	fprintf(stderr,
		"ignore %s: %u trees, %u pattern sets, %u path verdicts compared with git "
		"(%u per spelling: LF, CRLF, commas; %u of them ignored)\n",
		what, trees, st->cases, st->paths, st->paths / 3, st->ignored / 3);
	ck_assert_msg(st->mismatches == 0, "%u verdicts differ from git (listed above)",
		      st->mismatches);
}

enum { GEN_SETS = 24, GEN_PATHS = 300 };

/* Trees of a few hundred entries with names from a small alphabet (dots, spaces, brackets,
 * escapes, UTF-8), and pattern sets from a grammar that covers every feature. */
START_TEST(test_generated)
{
	struct stats st = { 0 };
	/* more trees for a long hunt: AMBER_IGNORE_TREES=500 */
	unsigned trees = (unsigned)atoi(tu_env("AMBER_IGNORE_TREES", "24"));

	for (unsigned seed = 1; seed <= trees; seed++) {
		struct rng r = { UINT64_C(0x5eed0000) + seed };
		struct tree t = { 0 };
		char tag[32];

		gen_tree(&r, &t, GEN_PATHS);
		snprintf(tag, sizeof(tag), "ignore-gen%u", seed);
		tree_create(&t, tag);
		for (unsigned set = 0; set < GEN_SETS; set++)
			run_generated_case(&r, &t, gen_line, 8, "generated", seed, set, &st);
		tree_free(&t);
	}
	report_generated("generated", trees, &st);
}
END_TEST

/* Deep paths where "*" and "**" have many ways to split. Directory names never contain 'x'
 * and every pattern's last component needs one, so no directory matches and the verdict for
 * a file is that of the pattern on the whole path, not of an ancestor. */
static const char *const deep_dirs[] = { "a", "b", "ab", "ba", "aa", "b.a" };
static const char *const deep_files[] = { "x", "ax", "xa", "a.x", "xb", "bx" };
static const char *const deep_parts[] = {
	"a", "b", "ab", "*", "*", "**", "**", "**", "?", "a*", "*a", "a**", "**a", "a**b",
	"*b*", "[ab]", "[!a]*", "b.a", "?*", "***", "a?",
};
static const char *const deep_last[] = {
	"x", "?x", "*x", "x*", "*x*", "a*x", "[ax]x", "a.x", "x?", "**x", "x**", "[!a]x",
};

static void gen_deep_line(struct rng *r, const struct tree *t, struct sbuf *out)
{
	(void)t;
	if (rng_pct(r, 10))
		sb_putc(out, '!');
	if (rng_pct(r, 30))
		sb_putc(out, '/');
	size_t parts = rng_below(r, 6);
	for (size_t i = 0; i < parts; i++) {
		sb_puts(out, PICK(r, deep_parts));
		sb_puts(out, rng_pct(r, 8) ? "\\/" : "/");
	}
	sb_puts(out, PICK(r, deep_last));
}

START_TEST(test_generated_deep)
{
	struct stats st = { 0 };
	unsigned trees = (unsigned)atoi(tu_env("AMBER_IGNORE_DEEP_TREES", "8"));

	for (unsigned seed = 1; seed <= trees; seed++) {
		struct rng r = { UINT64_C(0xdee90000) + seed };
		struct tree t = { 0 };
		struct sbuf p = { 0 };
		char tag[32];

		while (t.n < GEN_PATHS) {
			size_t depth = rng_below(&r, 8);
			p.n = 0;
			for (size_t i = 0; i < depth; i++) {
				sb_puts(&p, PICK(&r, deep_dirs));
				sb_putc(&p, '/');
			}
			sb_puts(&p, PICK(&r, deep_files));
			tree_add_path(&t, p.p);
		}
		free(p.p);
		snprintf(tag, sizeof(tag), "ignore-deep%u", seed);
		tree_create(&t, tag);
		for (unsigned set = 0; set < GEN_SETS; set++)
			run_generated_case(&r, &t, gen_deep_line, 3, "deep", seed, set, &st);
		tree_free(&t);
	}
	report_generated("deep", trees, &st);
}
END_TEST

/* ---- parsing ---- */

static struct ignore_rules *rules(const char *text, size_t len)
{
	struct ignore_rules *r = NULL;
	ck_assert_int_eq(ignore_rules_new(text, len, &r), 0);
	ck_assert(r != NULL);
	return r;
}

#define RULES(s) rules((s), sizeof(s) - 1)

START_TEST(test_commas)
{
	struct ignore_rules *r = RULES("a,b");
	ck_assert_uint_eq(ignore_rules_count(r), 2);
	ck_assert(ignore_rules_match(r, "a", false));
	ck_assert(ignore_rules_match(r, "x/b", false));
	ck_assert(!ignore_rules_match(r, "a,b", false));
	ignore_rules_free(r);

	r = RULES("a\\,b");
	ck_assert_uint_eq(ignore_rules_count(r), 1);
	ck_assert(ignore_rules_match(r, "a,b", false));
	ck_assert(!ignore_rules_match(r, "a", false));
	ignore_rules_free(r);

	/* an escaped backslash does not escape the comma after it */
	r = RULES("a\\\\,b");
	ck_assert_uint_eq(ignore_rules_count(r), 2);
	ck_assert(ignore_rules_match(r, "a\\", false));
	ck_assert(ignore_rules_match(r, "b", false));
	ignore_rules_free(r);

	/* empty pieces are blank lines */
	r = RULES(",,a,,\n,\n");
	ck_assert_uint_eq(ignore_rules_count(r), 1);
	ignore_rules_free(r);

	/* a comment line runs to the end of the line; a '#' piece after a comma is a comment */
	r = RULES("# logs, caches\nx,#y,z");
	ck_assert_uint_eq(ignore_rules_count(r), 2);
	ck_assert(!ignore_rules_match(r, " caches", false));
	ck_assert(!ignore_rules_match(r, "#y", false));
	ck_assert(ignore_rules_match(r, "z", false));
	ignore_rules_free(r);

	/* each piece is a gitignore line: trailing spaces go; spaces after a comma
	 * separate, but a line's own leading spaces stay, as in git */
	r = RULES("*.log ,  *.tmp,!keep.log,\\ lead\n  spaced");
	ck_assert_uint_eq(ignore_rules_count(r), 5);
	ck_assert(ignore_rules_match(r, "a.log", false));
	ck_assert(!ignore_rules_match(r, "keep.log", false));
	ck_assert(ignore_rules_match(r, "a.tmp", false));
	ck_assert(ignore_rules_match(r, " lead", false));
	ck_assert(ignore_rules_match(r, "  spaced", false));
	ck_assert(!ignore_rules_match(r, "spaced", false));
	ignore_rules_free(r);

	/* "\," inside a bracket expression is a comma too */
	r = RULES("x[\\,;]y,z");
	ck_assert_uint_eq(ignore_rules_count(r), 2);
	ck_assert(ignore_rules_match(r, "x,y", false));
	ck_assert(ignore_rules_match(r, "x;y", false));
	ignore_rules_free(r);
}
END_TEST

START_TEST(test_crlf_and_odd_bytes)
{
	struct ignore_rules *r = RULES("a\r\nb/\r\n!c\r\nd \r\n");
	ck_assert_uint_eq(ignore_rules_count(r), 4);
	ck_assert(ignore_rules_match(r, "a", false));
	ck_assert(ignore_rules_match(r, "b", true));
	ck_assert(!ignore_rules_match(r, "b", false));
	ck_assert(ignore_rules_match(r, "d", false));
	ignore_rules_free(r);

	/* only a CR right before the end of the line goes */
	r = RULES("a\r \nb\r\r\nc\r");
	ck_assert(!ignore_rules_match(r, "a", false));
	ck_assert(ignore_rules_match(r, "a\r", false));
	ck_assert(ignore_rules_match(r, "b\r", false));
	ck_assert(ignore_rules_match(r, "c", false));
	ignore_rules_free(r);

	/* a NUL ends the pattern, as in git's C strings; a BOM is skipped */
	r = RULES("ab\0cd\n\xef\xbb\xbf" "e\n");
	ck_assert(ignore_rules_match(r, "ab", false));
	ck_assert(ignore_rules_match(r, "\xef\xbb\xbf" "e", false));
	ignore_rules_free(r);
	r = RULES("\xef\xbb\xbf#c\ne");
	ck_assert_uint_eq(ignore_rules_count(r), 1);
	ignore_rules_free(r);

	/* text needs no terminating NUL: only len bytes are read */
	char *heap = malloc(3);
	memcpy(heap, "a,b", 3);
	r = rules(heap, 3);
	ck_assert(ignore_rules_match(r, "b", false));
	ignore_rules_free(r);
	free(heap);
}
END_TEST

START_TEST(test_count_and_edges)
{
	struct ignore_rules *r = rules(NULL, 0);
	ck_assert_uint_eq(ignore_rules_count(r), 0);
	ck_assert(!ignore_rules_match(r, "a", false));
	ignore_rules_free(r);

	r = RULES("\n\n   \n# comment\n\r\n \\\n");
	/* only the lone "\" (trailing spaces before it are protected) is a rule */
	ck_assert_uint_eq(ignore_rules_count(r), 1);
	ignore_rules_free(r);

	r = RULES("a\nb\n!c\n/\n!\n[x\n");
	ck_assert_uint_eq(ignore_rules_count(r), 6);
	ck_assert(!ignore_rules_match(r, "", true));
	ignore_rules_free(r);

	r = RULES("*");
	ck_assert(!ignore_rules_match(r, "", true));
	ck_assert(ignore_rules_match(r, "x", false));
	ignore_rules_free(r);

	ck_assert_uint_eq(ignore_rules_count(NULL), 0);
	ck_assert(!ignore_rules_match(NULL, "a", false));
	ignore_rules_free(NULL);
	ck_assert_int_eq(ignore_rules_new("a", 1, NULL), -EINVAL);
	r = (struct ignore_rules *)1;
	ck_assert_int_eq(ignore_rules_new(NULL, 1, &r), -EINVAL);
	ck_assert(r == NULL);
}
END_TEST

/* Any bytes parse, and matching them stays inside the buffers (run under ASan to mean much):
 * the text sits in a heap block of exactly its length. */
START_TEST(test_random_bytes)
{
	static const char alphabet[] = "*?[]!^-\\/,#: \r\n\tab.\0\xc3\xa9\xff";
	static const char *const paths[] = { "a", "a/b", "ab/ba/a.b", "-", "[", "\xc3\xa9/x",
					     "a b/c:d", "]]]]", "a/b/c/d/e/f/g/h" };
	struct rng r = { 42 };

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rng_below(&r, 40);
		char *text = malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++)
			text[i] = rng_pct(&r, 85) ? alphabet[rng_below(&r, sizeof(alphabet) - 1)]
						  : (char)rng_below(&r, 256);
		struct ignore_rules *ir = NULL;
		ck_assert_int_eq(ignore_rules_new(text, len, &ir), 0);
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			ignore_rules_match(ir, paths[i], false);
			ignore_rules_match(ir, paths[i], true);
		}
		ck_assert_uint_le(ignore_rules_count(ir), len);
		ignore_rules_free(ir);
		free(text);
	}
}
END_TEST

/* ---- the loader ---- */

static int open_dir(const char *p)
{
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	return fd;
}

static char *join(const char *a, const char *b)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/%s", a, b), 0);
	return p;
}

START_TEST(test_load_file)
{
	char *dir = tu_mkdtemp("ignore-load");
	char *f = join(dir, IGNORE_FILE_NAME);
	int fd = open_dir(dir);
	struct ignore_rules *r = (struct ignore_rules *)1;

	/* absent */
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), 0);
	ck_assert(r == NULL);

	/* a normal file */
	const char *text = "# backups\n*.log\r\n!keep.log\nlogs/,cache\\,old\n";
	tu_write_file(f, text, strlen(text), 0644);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), 0);
	ck_assert(r != NULL);
	ck_assert_uint_eq(ignore_rules_count(r), 4);
	ck_assert(ignore_rules_match(r, "x/a.log", false));
	ck_assert(!ignore_rules_match(r, "keep.log", false));
	ck_assert(ignore_rules_match(r, "logs", true));
	ck_assert(ignore_rules_match(r, "cache,old", false));
	ignore_rules_free(r);

	/* empty: rules that match nothing */
	tu_write_file(f, "", 0, 0644);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), 0);
	ck_assert(r != NULL);
	ck_assert_uint_eq(ignore_rules_count(r), 0);
	ignore_rules_free(r);

	/* exactly the limit is fine, one byte more is not */
	char *big = malloc(IGNORE_FILE_MAX + 1);
	memset(big, 'x', IGNORE_FILE_MAX + 1);
	big[IGNORE_FILE_MAX - 1] = '\n';
	tu_write_file(f, big, IGNORE_FILE_MAX, 0644);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), 0);
	ck_assert_uint_eq(ignore_rules_count(r), 1);
	ignore_rules_free(r);
	tu_write_file(f, big, IGNORE_FILE_MAX + 1, 0644);
	r = (struct ignore_rules *)1;
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), -EFBIG);
	ck_assert(r == NULL);
	free(big);
	ck_assert_int_eq(unlink(f), 0);

	/* a symlink is refused, wherever it points */
	char *target = join(dir, "real");
	tu_write_file(target, "*\n", 2, 0644);
	ck_assert_int_eq(symlink("real", f), 0);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), -ELOOP);
	ck_assert(r == NULL);
	ck_assert_int_eq(unlink(f), 0);
	ck_assert_int_eq(symlink("/nonexistent/x", f), 0);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), -ELOOP);
	ck_assert_int_eq(unlink(f), 0);

	/* not a regular file */
	ck_assert_int_eq(mkdir(f, 0755), 0);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), -EISDIR);
	ck_assert(r == NULL);
	ck_assert_int_eq(rmdir(f), 0);
	ck_assert_int_eq(mkfifo(f, 0644), 0);
	ck_assert_int_eq(ignore_rules_load_file(fd, &r), -EINVAL); /* and does not hang */
	ck_assert(r == NULL);
	ck_assert_int_eq(unlink(f), 0);

	/* a bad directory fd */
	ck_assert_int_eq(ignore_rules_load_file(-1, &r), -EBADF);

	close(fd);
	tu_rmrf(dir);
	free(target);
	free(f);
	free(dir);
}
END_TEST

/* ---- speed ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Patterns that make naive backtracking explode must stay cheap, and a realistic rule set
 * over a 200k-entry walk must be quick (the bound is loose for sanitizer builds). */
START_TEST(test_speed)
{
	struct sbuf deep = { 0 }, comp = { 0 };
	for (int i = 0; i < 200; i++)
		sb_puts(&deep, i ? "/a" : "a");
	for (int i = 0; i < 250; i++)
		sb_putc(&comp, 'a');
	const char *evil = "**/**/**/**/**/**/**/**/**/**/**/**/**/**/**/**/x\n"
			   "a/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/b\n"
			   "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\n"
			   "**a**a**a**a**a**a**a**a**b\n"
			   "a**/**/**/**/**/**/**/**b/**c\n";
	struct ignore_rules *r = rules(evil, strlen(evil));
	double t0 = now();
	for (int i = 0; i < 200; i++) {
		ck_assert(!ignore_rules_match(r, deep.p, false));
		ck_assert(!ignore_rules_match(r, comp.p, false));
	}
	double evil_s = now() - t0;
	ignore_rules_free(r);

	const char *real = "*.log\nlogs/\n!logs/keep\n/cache/\n**/tmp/**\n*.[oa]\n/world/region/\n"
			   "plugins/*/cache\n*.jar\n!server.jar\n**/node_modules\ncrash-reports/\n"
			   "*.tmp\n*~\n.DS_Store\n/backups\nworld*/playerdata/*.dat_old\n"
			   "[Tt]humbs.db\nlibraries/**/*.sha1\n";
	r = rules(real, strlen(real));
	static const char *const dirs[] = { "world", "world_nether", "plugins/Essentials",
					    "plugins/dynmap/web/tiles", "libraries/org/a/b",
					    "logs", "config", "mods" };
	static const char *const files[] = { "r.0.0.mca", "latest.log", "x.jar", "a.sha1",
					     "data.dat_old", "level.dat", "Thumbs.db", "a.yml" };
	char path[256];
	size_t hits = 0;
	t0 = now();
	for (int i = 0; i < 200000; i++) {
		snprintf(path, sizeof(path), "%s/d%d/%s", dirs[i % 8], i % 97, files[(i / 8) % 8]);
		hits += ignore_rules_match(r, path, false);
	}
	double real_s = now() - t0;
	ignore_rules_free(r);
	fprintf(stderr,
		"ignore speed: pathological %.3f s, 200k paths x 19 rules %.3f s (%zu hit)\n",
		evil_s, real_s, hits);
	ck_assert(hits > 0);
	ck_assert_msg(evil_s < 5.0, "pathological patterns took %.2f s", evil_s);
	ck_assert_msg(real_s < 5.0, "200k matches took %.2f s", real_s);
	free(deep.p);
	free(comp.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ignore");
	TCase *git = tcase_create("git");
	TCase *unit = tcase_create("unit");

	tcase_set_timeout(git, 300);
	tcase_add_test(git, test_git_reports_ancestor);
	tcase_add_test(git, test_table);
	tcase_add_test(git, test_generated);
	tcase_add_test(git, test_generated_deep);
	tcase_add_test(unit, test_commas);
	tcase_add_test(unit, test_crlf_and_odd_bytes);
	tcase_add_test(unit, test_count_and_edges);
	tcase_add_test(unit, test_random_bytes);
	tcase_add_test(unit, test_load_file);
	tcase_set_timeout(unit, 60);
	tcase_add_test(unit, test_speed);
	suite_add_tcase(s, git);
	suite_add_tcase(s, unit);

	return tu_run_suite(s);
}
