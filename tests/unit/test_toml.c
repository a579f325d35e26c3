/* The TOML parser against the toml-test suite (the TOML 1.0.0 file list, read from
 * AMBER_SHARED_DIR), plus the things the suite does not look at: key line numbers,
 * document order, error positions, NUL in strings, nesting limits, big inputs. */
#include "testutil.h"
#include "toml.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the suite ---- */

static char *suite_dir(void)
{
	char *dir = NULL;
	ck_assert_int_ge(asprintf(&dir, "%s/vectors/toml-test",
				  tu_env("AMBER_SHARED_DIR", "/work/shared")),
			 0);
	return dir;
}

/* Case names ("valid/x/y") from files-toml-1.0.0 under the given prefix. */
static char **list_cases(const char *dir, const char *prefix, size_t *ret_n)
{
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/files-toml-1.0.0", dir), 0);
	size_t len;
	char *text = tu_read_file(path, &len);
	ck_assert_msg(text != NULL, "cannot read %s: is the toml-test suite in place?", path);
	free(path);
	size_t n = 0, cap = 64;
	char **names = malloc(cap * sizeof(*names));
	ck_assert_ptr_nonnull(names);
	for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln;
	     ln = strtok_r(NULL, "\n", &save)) {
		size_t l = strlen(ln);
		if (l > 0 && ln[l - 1] == '\r')
			ln[--l] = 0;
		if (l < 5 || strcmp(ln + l - 5, ".toml") != 0 ||
		    strncmp(ln, prefix, strlen(prefix)) != 0)
			continue;
		if (n == cap) {
			cap *= 2;
			names = realloc(names, cap * sizeof(*names));
			ck_assert_ptr_nonnull(names);
		}
		names[n] = strndup(ln, l - 5);
		ck_assert_ptr_nonnull(names[n]);
		n++;
	}
	free(text);
	*ret_n = n;
	return names;
}

static void free_cases(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static char *read_case(const char *dir, const char *name, const char *ext, size_t *ret_len)
{
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/%s%s", dir, name, ext), 0);
	char *data = tu_read_file(path, ret_len);
	ck_assert_msg(data != NULL, "cannot read %s", path);
	free(path);
	return data;
}

/* jansson refuses U+0000 in object keys, and the suite has such a key. Both sides of a
 * comparison are therefore loaded with every \u0000 escape turned into U+F0000, written
 * as a surrogate pair; neither side may use surrogate escapes of its own (checked), and
 * a literal U+F0000 would be refused too. */
static json_t *load_json(const char *text, size_t len, json_error_t *jerr)
{
	ck_assert_msg(!memmem(text, len, "\xF3\xB0\x80\x80", 4),
		      "JSON holds U+F0000, the stand-in for U+0000");
	char *buf = malloc(len * 2 + 1);
	ck_assert_ptr_nonnull(buf);
	size_t o = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		if (in_string && text[i] == '\\' && i + 5 < len && text[i + 1] == 'u') {
			ck_assert_msg(strchr("dD", text[i + 2]) == NULL ||
					      strchr("01234567", text[i + 3]) != NULL,
				      "JSON uses surrogate escapes: %.12s", text + i);
			if (memcmp(text + i + 2, "0000", 4) == 0) {
				memcpy(buf + o, "\\udb80\\udc00", 12);
				o += 12;
				i += 5;
				continue;
			}
		}
		if (in_string && text[i] == '\\' && i + 1 < len)
			buf[o++] = text[i++];
		else if (text[i] == '"')
			in_string = !in_string;
		buf[o++] = text[i];
	}
	json_t *j = json_loadb(buf, o, 0, jerr);
	free(buf);
	return j;
}

/* The tagged JSON for a parsed document, as jansson sees it. */
static json_t *encode(const struct toml_value *root, char *why, size_t why_size)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	int r = toml_write_tagged_json(root, f);
	fclose(f);
	if (r < 0) {
		snprintf(why, why_size, "toml_write_tagged_json: %s", strerror(-r));
		free(buf);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = load_json(buf, len, &jerr);
	if (!j)
		snprintf(why, why_size, "encoder wrote bad JSON (%s): %.200s", jerr.text, buf);
	free(buf);
	return j;
}

/* ---- toml-test's comparison rules ---- */

static bool is_tagged(const json_t *v)
{
	return json_is_object(v) && json_object_size(v) == 2 &&
	       json_is_string(json_object_get(v, "type")) &&
	       json_is_string(json_object_get(v, "value"));
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* A date/time of one kind as (seconds, nanoseconds): offset date-times as instants,
 * others by their fields. Fractions past nanoseconds are cut, as toml-test does. */
static bool datetime_key(const char *kind, const char *s, int64_t *secs, long *nanos)
{
	bool has_date = strcmp(kind, "time-local") != 0;
	bool has_time = strcmp(kind, "date-local") != 0;
	bool has_off = strcmp(kind, "datetime") == 0;
	int64_t t = 0;
	*nanos = 0;
	if (has_date) {
		if (strlen(s) < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) ||
		    s[7] != '-' || !digits(s + 8, 2))
			return false;
		t = days_from_civil(num(s, 4), num(s + 5, 2), num(s + 8, 2)) * 86400;
		s += 10;
		if (has_time) {
			if (*s != 'T' && *s != 't' && *s != ' ')
				return false;
			s++;
		}
	}
	if (has_time) {
		if (strlen(s) < 8 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) ||
		    s[5] != ':' || !digits(s + 6, 2))
			return false;
		t += num(s, 2) * 3600 + num(s + 3, 2) * 60 + num(s + 6, 2);
		s += 8;
		if (*s == '.') {
			s++;
			int k = 0;
			for (; s[k] >= '0' && s[k] <= '9'; k++)
				if (k < 9)
					*nanos = *nanos * 10 + (s[k] - '0');
			if (k == 0)
				return false;
			for (int i = k; i < 9; i++)
				*nanos *= 10;
			s += k;
		}
	}
	if (has_off) {
		if ((*s == 'Z' || *s == 'z') && s[1] == 0) {
			s++;
		} else if ((*s == '+' || *s == '-') && digits(s + 1, 2) && s[3] == ':' &&
			   digits(s + 4, 2) && s[6] == 0) {
			int off = (num(s + 1, 2) * 60 + num(s + 4, 2)) * 60;
			t -= *s == '-' ? -off : off;
			s += 6;
		} else {
			return false;
		}
	}
	*secs = t;
	return *s == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool cmp_scalar(const json_t *want, const json_t *have, const char *path, char *why,
		       size_t why_size)
{
	const char *wt = json_string_value(json_object_get(want, "type"));
	const char *ht = json_string_value(json_object_get(have, "type"));
	const json_t *wj = json_object_get(want, "value"), *hj = json_object_get(have, "value");
	const char *wv = json_string_value(wj), *hv = json_string_value(hj);
	bool same;
	if (strcmp(wt, ht) != 0) {
		snprintf(why, why_size, "%s: want type %s, have %s (value '%s')", path, wt, ht,
			 hv);
		return false;
	}
	if (strcmp(wt, "integer") == 0) {
		char *e1, *e2;
		errno = 0;
		long long a = strtoll(wv, &e1, 10), b = strtoll(hv, &e2, 10);
		same = !errno && !*e1 && !*e2 && *wv && *hv && a == b;
	} else if (strcmp(wt, "float") == 0) {
		if (ends_with(wv, "nan") || ends_with(hv, "nan")) {
			same = strcmp(wv + strspn(wv, "+-"), hv + strspn(hv, "+-")) == 0;
		} else {
			char *e1, *e2;
			double a = strtod(wv, &e1), b = strtod(hv, &e2);
			same = !*e1 && !*e2 && *wv && *hv && a == b;
		}
	} else if (strcmp(wt, "datetime") == 0 || strcmp(wt, "datetime-local") == 0 ||
		   strcmp(wt, "date-local") == 0 || strcmp(wt, "time-local") == 0) {
		int64_t s1, s2;
		long n1, n2;
		same = datetime_key(wt, wv, &s1, &n1) && datetime_key(wt, hv, &s2, &n2) &&
		       s1 == s2 && n1 == n2;
	} else {
		same = strcmp(wv, hv) == 0;
	}
	if (!same)
		snprintf(why, why_size, "%s: want %s '%s', have '%s'", path, wt, wv, hv);
	return same;
}

static const char *describe(const json_t *v)
{
	if (is_tagged(v))
		return "a value";
	if (json_is_object(v))
		return "a table";
	if (json_is_array(v))
		return "an array";
	return "a bare JSON scalar";
}

static bool cmp_json(const json_t *want, const json_t *have, const char *path, char *why,
		     size_t why_size)
{
	char sub[512];
	if (json_is_object(want)) {
		if (!json_is_object(have) || is_tagged(want) != is_tagged(have)) {
			snprintf(why, why_size, "%s: want %s, have %s", path, describe(want),
				 describe(have));
			return false;
		}
		if (is_tagged(want))
			return cmp_scalar(want, have, path, why, why_size);
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)have, k, v)
		{
			if (!json_object_get(want, k)) {
				snprintf(why, why_size, "%s: unexpected key '%s'", path, k);
				return false;
			}
		}
		json_object_foreach((json_t *)want, k, v)
		{
			json_t *h = json_object_get(have, k);
			if (!h) {
				snprintf(why, why_size, "%s: missing key '%s'", path, k);
				return false;
			}
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			if (!cmp_json(v, h, sub, why, why_size))
				return false;
		}
		return true;
	}
	if (json_is_array(want)) {
		if (!json_is_array(have) || json_array_size(want) != json_array_size(have)) {
			snprintf(why, why_size, "%s: want an array of %zu, have %s of %zu", path,
				 json_array_size(want), describe(have), json_array_size(have));
			return false;
		}
		for (size_t i = 0; i < json_array_size(want); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (!cmp_json(json_array_get(want, i), json_array_get(have, i), sub, why,
				      why_size))
				return false;
		}
		return true;
	}
	snprintf(why, why_size, "%s: expected JSON holds %s", path, describe(want));
	return false;
}

/* ---- suite tests ---- */

START_TEST(suite_valid_cases_decode_to_expected_json)
{
	char *dir = suite_dir();
	size_t n;
	char **cases = list_cases(dir, "valid/", &n);
	ck_assert_msg(n >= 200, "only %zu valid cases listed", n);
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		char why[1024] = "";
		size_t len, jlen;
		char *text = read_case(dir, cases[i], ".toml", &len);
		char *expect = read_case(dir, cases[i], ".json", &jlen);
		struct toml_value *root = NULL;
		struct toml_error err;
		json_error_t jerr;
		json_t *want = load_json(expect, jlen, &jerr);
		ck_assert_msg(want != NULL, "%s.json: %s", cases[i], jerr.text);
		if (toml_parse(text, len, &root, &err) < 0) {
			snprintf(why, sizeof(why), "rejected at %d:%d: %s", err.line, err.column,
				 err.message);
		} else {
			json_t *have = encode(root, why, sizeof(why));
			if (have)
				cmp_json(want, have, "<root>", why, sizeof(why));
			json_decref(have);
		}
		if (why[0]) {
			fprintf(stderr, "FAIL %s: %s\n", cases[i], why);
			failed++;
		}
		toml_free(root);
		json_decref(want);
		free(text);
		free(expect);
	}
	fprintf(stderr, "toml-test valid: %zu passed, %zu failed\n", n - failed, failed);
	free_cases(cases, n);
	free(dir);
	ck_assert_msg(failed == 0, "%zu valid cases failed (listed above)", failed);
}
END_TEST

START_TEST(suite_invalid_cases_are_rejected_with_a_position)
{
	char *dir = suite_dir();
	size_t n;
	char **cases = list_cases(dir, "invalid/", &n);
	ck_assert_msg(n >= 450, "only %zu invalid cases listed", n);
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *text = read_case(dir, cases[i], ".toml", &len);
		struct toml_value *root = NULL;
		struct toml_error err;
		int r = toml_parse(text, len, &root, &err);
		if (r == 0) {
			char why[256] = "";
			json_t *have = encode(root, why, sizeof(why));
			char *dump = have ? json_dumps(have, JSON_COMPACT) : NULL;
			fprintf(stderr, "FAIL %s: accepted; decoded as %.300s\n", cases[i],
				dump ? dump : why);
			free(dump);
			json_decref(have);
			toml_free(root);
			failed++;
		} else if (r != -EINVAL || err.line < 1 || err.column < 1 || !err.message[0]) {
			fprintf(stderr,
				"FAIL %s: rejected without a usable error (%d, %d:%d '%s')\n",
				cases[i], r, err.line, err.column, err.message);
			failed++;
		}
		free(text);
	}
	fprintf(stderr, "toml-test invalid: %zu passed, %zu failed\n", n - failed, failed);
	free_cases(cases, n);
	free(dir);
	ck_assert_msg(failed == 0, "%zu invalid cases failed (listed above)", failed);
}
END_TEST

/* ---- focused tests ---- */

static struct toml_value *parse_ok(const char *text)
{
	struct toml_value *root = NULL;
	struct toml_error err;
	int r = toml_parse(text, strlen(text), &root, &err);
	ck_assert_msg(r == 0, "parse failed at %d:%d: %s\n--\n%s", err.line, err.column,
		      err.message, text);
	return root;
}

static void expect_error(const char *text, int line, int column, const char *fragment)
{
	struct toml_value *root = NULL;
	struct toml_error err;
	int r = toml_parse(text, strlen(text), &root, &err);
	ck_assert_msg(r == -EINVAL, "accepted (%d):\n%s", r, text);
	ck_assert_ptr_null(root);
	ck_assert_msg(err.line == line && err.column == column && strstr(err.message, fragment),
		      "want %d:%d '...%s...', have %d:%d '%s'", line, column, fragment, err.line,
		      err.column, err.message);
}

static const struct toml_value *path_get(const struct toml_value *t, const char *dotted)
{
	char *copy = strdup(dotted);
	ck_assert_ptr_nonnull(copy);
	char *save = NULL;
	for (char *k = strtok_r(copy, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		t = toml_table_get(t, k);
		ck_assert_msg(t != NULL, "no '%s' in path '%s'", k, dotted);
	}
	free(copy);
	return t;
}

START_TEST(lines_point_at_keys_headers_and_elements)
{
	struct toml_value *root = parse_ok("# config\n"
					   "name = \"x\"\n"
					   "\n"
					   "[server]\n"
					   "port = 8080\n"
					   "tls.cert = \"a\"\n"
					   "list = [\n"
					   "  1,\n"
					   "  2,\n"
					   "]\n"
					   "inl = { a = 1, b = \"\"\"\n"
					   "x\"\"\", c = 3 }\n"
					   "\n"
					   "[[job]]\n"
					   "id = 1\n"
					   "[[job]]\n"
					   "id = 2\n"
					   "[x.y.z]\n"
					   "[x]\n");
	ck_assert_int_eq(toml_line(root), 0);
	ck_assert_int_eq(toml_line(path_get(root, "name")), 2);
	ck_assert_int_eq(toml_line(path_get(root, "server")), 4);
	ck_assert_int_eq(toml_line(path_get(root, "server.port")), 5);
	ck_assert_int_eq(toml_line(path_get(root, "server.tls")), 6);
	ck_assert_int_eq(toml_line(path_get(root, "server.tls.cert")), 6);
	const struct toml_value *list = path_get(root, "server.list");
	ck_assert_int_eq(toml_line(list), 7);
	ck_assert_int_eq(toml_line(toml_array_at(list, 0)), 8);
	ck_assert_int_eq(toml_line(toml_array_at(list, 1)), 9);
	ck_assert_int_eq(toml_line(path_get(root, "server.inl.a")), 11);
	ck_assert_int_eq(toml_line(path_get(root, "server.inl.b")), 11);
	/* c comes after a multi-line string: its key sits on line 12. */
	ck_assert_int_eq(toml_line(path_get(root, "server.inl.c")), 12);
	const struct toml_value *jobs = path_get(root, "job");
	ck_assert_int_eq(toml_line(jobs), 14);
	ck_assert_int_eq(toml_line(toml_array_at(jobs, 0)), 14);
	ck_assert_int_eq(toml_line(toml_array_at(jobs, 1)), 16);
	ck_assert_int_eq(toml_line(toml_table_get(toml_array_at(jobs, 1), "id")), 17);
	/* A table named on the way to a header, then defined itself, reports where it was
	 * defined. */
	ck_assert_int_eq(toml_line(path_get(root, "x")), 19);
	ck_assert_int_eq(toml_line(path_get(root, "x.y")), 18);
	toml_free(root);
}
END_TEST

START_TEST(lines_with_crlf_and_bom)
{
	struct toml_value *root = parse_ok("\xEF\xBB\xBF"
					   "a = 1\r\n"
					   "\r\n"
					   "b = '''\r\nx\r\ny'''\r\n"
					   "c = 3\r\n");
	ck_assert_int_eq(toml_line(path_get(root, "a")), 1);
	ck_assert_int_eq(toml_line(path_get(root, "b")), 3);
	ck_assert_int_eq(toml_line(path_get(root, "c")), 6);
	size_t len;
	const char *s = toml_string(path_get(root, "b"), &len);
	/* CRLF inside a multi-line string reads as LF, like the file's other newlines. */
	ck_assert_uint_eq(len, 3);
	ck_assert_str_eq(s, "x\ny");
	toml_free(root);
}
END_TEST

START_TEST(tables_keep_document_order)
{
	struct toml_value *root = parse_ok("zeta = 1\n"
					   "alpha = 2\n"
					   "[mid]\n"
					   "b = 1\n"
					   "a = 2\n"
					   "[first]\n"
					   "[mid.sub]\n");
	const char *want[] = { "zeta", "alpha", "mid", "first" };
	ck_assert_uint_eq(toml_table_len(root), 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert_str_eq(toml_table_key(root, i), want[i]);
	const struct toml_value *mid = toml_table_get(root, "mid");
	ck_assert_uint_eq(toml_table_len(mid), 3);
	ck_assert_str_eq(toml_table_key(mid, 0), "b");
	ck_assert_str_eq(toml_table_key(mid, 1), "a");
	ck_assert_str_eq(toml_table_key(mid, 2), "sub");
	ck_assert_ptr_eq(toml_table_value(mid, 1), toml_table_get(mid, "a"));
	ck_assert_ptr_null(toml_table_key(mid, 3));
	ck_assert_ptr_null(toml_table_get(mid, "nope"));
	toml_free(root);
}
END_TEST

START_TEST(many_keys_keep_order_and_are_found)
{
	/* Enough keys for the hash index, checked both ways. */
	enum { N = 5000 };
	size_t cap = (size_t)N * 32;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	size_t o = 0;
	for (int i = 0; i < N; i++)
		o += (size_t)snprintf(text + o, cap - o, "k%d = %d\n", (i * 7919) % N, i);
	struct toml_value *root = NULL;
	struct toml_error err;
	ck_assert_int_eq(toml_parse(text, o, &root, &err), 0);
	ck_assert_uint_eq(toml_table_len(root), N);
	for (int i = 0; i < N; i++) {
		char k[32];
		snprintf(k, sizeof(k), "k%d", (i * 7919) % N);
		ck_assert_str_eq(toml_table_key(root, (size_t)i), k);
		const struct toml_value *v = toml_table_get(root, k);
		ck_assert_ptr_eq(v, toml_table_value(root, (size_t)i));
		ck_assert_int_eq(toml_integer(v), i);
		ck_assert_int_eq(toml_line(v), i + 1);
	}
	toml_free(root);
	/* A duplicate among thousands is still caught, at the right line. */
	o += (size_t)snprintf(text + o, cap - o, "k%d = 0\n", N / 2);
	ck_assert_int_eq(toml_parse(text, o, &root, &err), -EINVAL);
	ck_assert_int_eq(err.line, N + 1);
	ck_assert_ptr_nonnull(strstr(err.message, "duplicate key"));
	free(text);
}
END_TEST

START_TEST(errors_carry_line_and_column)
{
	expect_error("port = 1\nhost = \"a\"\nport = 2\n", 3, 1, "duplicate key 'port'");
	expect_error("a = 1\nname \"x\"\n", 2, 6, "expected '=' after key");
	expect_error("[a]\nx = 1\n[b]\n[a]\n", 4, 2, "table 'a' is defined twice");
	expect_error("s = \"abc\\q\"\n", 1, 9, "invalid escape");
	expect_error("x = 0123\n", 1, 5, "leading zeros");
	expect_error("x = 9223372036854775808\n", 1, 5, "does not fit in 64 bits");
	expect_error("d = 2023-02-29\n", 1, 5, "day 29 is out of range");
	expect_error("t = {a = 1,}\n", 1, 12, "trailing comma");
	expect_error("t = {a = 1,\n b = 2}\n", 1, 12, "single line");
	expect_error("a = [1, 2\n", 1, 5, "unterminated array");
	expect_error("s = \"abc\n", 1, 5, "unterminated string");
	expect_error("x = 1 y = 2\n", 1, 7, "expected end of line");
	/* Columns count characters: the two-byte 'é' is one column. */
	expect_error("é = 1\n", 1, 1, "expected a key");
	expect_error("s = \"é\" x\n", 1, 9, "expected end of line");
	expect_error("a = 1\r\nb = \r\n", 2, 5, "expected a value");
	expect_error("a = 1\rb = 2\n", 1, 6, "carriage return");
	expect_error("a = \"\xff\"\n", 1, 6, "UTF-8");
	expect_error("a.b = 1\n[a.b]\n", 2, 4, "cannot define table 'b': it is already an integer");
	expect_error("a.b.c = 1\n[a.b]\n", 2, 4, "defined through dotted keys");
	expect_error("a = {b = 1}\na.c = 2\n", 2, 1, "inline tables are complete");
	expect_error("a = [1]\n[[a]]\n", 2, 3, "array written as a value");
}
END_TEST

START_TEST(nul_in_strings_but_not_in_documents)
{
	struct toml_value *root = parse_ok("s = \"a\\u0000b\"\n\"k\\u0000\" = 1\n");
	size_t len = 99;
	const char *s = toml_string(toml_table_get(root, "s"), &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(s, "a\0b", 4);
	/* The C string API sees a key up to its NUL; the encoding keeps it whole. */
	ck_assert_uint_eq(toml_table_len(root), 2);
	ck_assert_str_eq(toml_table_key(root, 1), "k");
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(toml_write_tagged_json(root, f), 0);
	fclose(f);
	ck_assert_str_eq(buf, "{\"s\":{\"type\":\"string\",\"value\":\"a\\u0000b\"},"
			      "\"k\\u0000\":{\"type\":\"integer\",\"value\":\"1\"}}\n");
	free(buf);
	toml_free(root);

	struct toml_error err;
	const char doc[] = "a = \"x\0y\"\n";
	ck_assert_int_eq(toml_parse(doc, sizeof(doc) - 1, &root, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.message, "NUL"));
	ck_assert_int_eq(err.column, 7);
}
END_TEST

START_TEST(scalar_values_and_accessors)
{
	struct toml_value *root = parse_ok("min = -9223372036854775808\n"
					   "max = 9_223_372_036_854_775_807\n"
					   "hex = 0xDEAD_beef\n"
					   "oct = 0o777\n"
					   "bin = 0b1010\n"
					   "f = -1_000.5e-3\n"
					   "ninf = -inf\n"
					   "nan = nan\n"
					   "yes = true\n"
					   "odt = 1979-05-27 07:32:00.5z\n"
					   "ldt = 1979-05-27t07:32:00\n"
					   "ld = 1979-05-27\n"
					   "lt = 23:59:60.999999999\n"
					   "long = 1979-05-27T00:32:00.1234567890123-07:00\n"
					   "leap = 2024-02-29\n");
	ck_assert_int_eq(toml_integer(toml_table_get(root, "min")), INT64_MIN);
	ck_assert_int_eq(toml_integer(toml_table_get(root, "max")), INT64_MAX);
	ck_assert_int_eq(toml_integer(toml_table_get(root, "hex")), 0xDEADBEEF);
	ck_assert_int_eq(toml_integer(toml_table_get(root, "oct")), 0777);
	ck_assert_int_eq(toml_integer(toml_table_get(root, "bin")), 10);
	ck_assert_double_eq(toml_float(toml_table_get(root, "f")), -1.0005);
	double ninf = toml_float(toml_table_get(root, "ninf"));
	ck_assert(isinf(ninf) && ninf < 0);
	ck_assert(isnan(toml_float(toml_table_get(root, "nan"))));
	ck_assert(toml_bool(toml_table_get(root, "yes")));
	const struct toml_value *odt = toml_table_get(root, "odt");
	ck_assert_int_eq(toml_type(odt), TOML_DATETIME);
	ck_assert_str_eq(toml_datetime(odt), "1979-05-27T07:32:00.5Z");
	ck_assert_int_eq(toml_type(toml_table_get(root, "ldt")), TOML_DATETIME_LOCAL);
	ck_assert_str_eq(toml_datetime(toml_table_get(root, "ldt")), "1979-05-27T07:32:00");
	ck_assert_int_eq(toml_type(toml_table_get(root, "ld")), TOML_DATE_LOCAL);
	ck_assert_int_eq(toml_type(toml_table_get(root, "lt")), TOML_TIME_LOCAL);
	ck_assert_str_eq(toml_datetime(toml_table_get(root, "lt")), "23:59:60.999999999");
	ck_assert_str_eq(toml_datetime(toml_table_get(root, "long")),
			 "1979-05-27T00:32:00.123456789-07:00");
	/* Asking for the wrong type gives a neutral answer, not a crash. */
	const struct toml_value *min = toml_table_get(root, "min");
	ck_assert_ptr_null(toml_string(min, NULL));
	ck_assert_ptr_null(toml_datetime(min));
	ck_assert_uint_eq(toml_table_len(min), 0);
	ck_assert_uint_eq(toml_array_len(min), 0);
	ck_assert_ptr_null(toml_array_at(min, 0));
	ck_assert_ptr_null(toml_table_get(min, "x"));
	ck_assert_int_eq(toml_integer(toml_table_get(root, "yes")), 0);
	toml_free(root);

	expect_error("x = 0x8000000000000000\n", 1, 5, "does not fit");
	expect_error("x = -9223372036854775809\n", 1, 5, "does not fit");
	expect_error("x = 1e400\n", 1, 5, "out of range");
	expect_error("x = 2023-04-31\n", 1, 5, "out of range");
	expect_error("x = 1979-05-27T07:32:00+24:00\n", 1, 24, "out of range");
}
END_TEST

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * ul, unit, ul);
	memcpy(s + hl + n * ul, tail, tl + 1);
	return s;
}

static int parse_str(const char *text, struct toml_error *err)
{
	struct toml_value *root = NULL;
	int r = toml_parse(text, strlen(text), &root, err);
	toml_free(root);
	return r;
}

START_TEST(nesting_is_capped)
{
	struct toml_error err;
	struct {
		const char *head, *unit, *close_unit;
	} shapes[] = {
		{ "a = ", "[", "]" },
		{ "a = ", "{b=", "}" },
		{ "a = ", "[{b=", "}]" },
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		/* Deep but within the limit: accepted. */
		char *open = repeat(shapes[i].head, shapes[i].unit, 60, "1");
		char *closes = repeat("", shapes[i].close_unit, 60, "\n");
		char *text = NULL;
		ck_assert_int_ge(asprintf(&text, "%s%s", open, closes), 0);
		ck_assert_msg(parse_str(text, &err) == 0, "%s", err.message);
		free(open);
		free(closes);
		free(text);
		/* A million levels: refused quickly, without running out of stack. */
		text = repeat(shapes[i].head, shapes[i].unit, 1000000, "1");
		ck_assert_int_eq(parse_str(text, &err), -EINVAL);
		ck_assert_ptr_nonnull(strstr(err.message, "nested too deeply"));
		free(text);
	}
	char *text = repeat("[a", ".a", 100, "]\nx = 1\n");
	ck_assert_msg(parse_str(text, &err) == 0, "%s", err.message);
	free(text);
	text = repeat("[a", ".a", 200, "]\n");
	ck_assert_int_eq(parse_str(text, &err), -EINVAL);
	free(text);
	text = repeat("a", ".a", 1000000, " = 1\n");
	ck_assert_int_eq(parse_str(text, &err), -EINVAL);
	free(text);
	/* Dotted keys inside a deep header add up too. */
	char *hdr = repeat("[a", ".a", 100, "]\n");
	char *key = repeat("b", ".b", 100, " = 1\n");
	ck_assert_int_ge(asprintf(&text, "%s%s", hdr, key), 0);
	ck_assert_int_eq(parse_str(text, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.message, "nested too deeply"));
	free(hdr);
	free(key);
	free(text);
}
END_TEST

START_TEST(big_inputs_parse_in_linear_time)
{
	struct toml_error err;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A long array, a long string, many headers and an array of many tables. */
	char *arr = repeat("a = [", "1,", 500000, "]\n");
	ck_assert_int_eq(parse_str(arr, &err), 0);
	free(arr);
	char *str = repeat("s = \"", "abc\\n", 500000, "\"\n");
	ck_assert_int_eq(parse_str(str, &err), 0);
	free(str);
	char *ml = repeat("s = \"\"\"", "ab\"\"c\\\n  \n", 200000, "\"\"\"\n");
	ck_assert_int_eq(parse_str(ml, &err), 0);
	free(ml);
	char *aot = repeat("", "[[t]]\nx = 1\n[t.sub]\ny = 2\n", 50000, "");
	ck_assert_int_eq(parse_str(aot, &err), 0);
	free(aot);
	size_t cap = 200000 * 24, o = 0;
	char *hdrs = malloc(cap);
	ck_assert_ptr_nonnull(hdrs);
	for (int i = 0; i < 200000; i++)
		o += (size_t)snprintf(hdrs + o, cap - o, "[t.s%d]\nv=1\n", i);
	ck_assert_int_eq(parse_str(hdrs, &err), 0);
	free(hdrs);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* Generous even for sanitizer builds; anything quadratic takes minutes. */
	ck_assert_msg(secs < 30, "took %.1fs", secs);
}
END_TEST

/* Damaged copies of the valid cases must be parsed or refused, never crash or leak
 * (this matters most under the sanitizer build). */
START_TEST(mutated_inputs_do_not_crash)
{
	char *dir = suite_dir();
	size_t n;
	char **cases = list_cases(dir, "valid/", &n);
	uint64_t rng = 0x9E3779B97F4A7C15ULL;
	static const char interesting[] = "\"'[]{}=.,#\\\n\r\t 0_:-+eE\x80\xff";
	size_t accepted = 0, total = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *text = read_case(dir, cases[i], ".toml", &len);
		for (int m = 0; m < 30 && len > 0; m++) {
			char *copy = malloc(len);
			ck_assert_ptr_nonnull(copy);
			memcpy(copy, text, len);
			size_t clen = len;
			for (int k = 0; k < 1 + m % 3; k++) {
				rng ^= rng << 13;
				rng ^= rng >> 7;
				rng ^= rng << 17;
				size_t at = (size_t)(rng % clen);
				switch ((rng >> 32) % 3) {
				case 0:
					copy[at] = interesting[(rng >> 40) %
							       (sizeof(interesting) - 1)];
					break;
				case 1:
					clen = at ? at : clen;
					break;
				default:
					copy[at] = (char)(rng >> 48);
				}
			}
			struct toml_value *root = NULL;
			struct toml_error err;
			if (toml_parse(copy, clen, &root, &err) == 0) {
				char why[256];
				json_t *j = encode(root, why, sizeof(why));
				ck_assert_msg(j != NULL, "%s (mutated): %s", cases[i], why);
				json_decref(j);
				accepted++;
			} else {
				ck_assert_msg(err.line >= 1 && err.message[0], "%s: bad error",
					      cases[i]);
			}
			toml_free(root);
			free(copy);
			total++;
		}
		free(text);
	}
	ck_assert_uint_gt(total, accepted);
	free_cases(cases, n);
	free(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("toml");
	TCase *tc = tcase_create("toml");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, suite_valid_cases_decode_to_expected_json);
	tcase_add_test(tc, suite_invalid_cases_are_rejected_with_a_position);
	tcase_add_test(tc, lines_point_at_keys_headers_and_elements);
	tcase_add_test(tc, lines_with_crlf_and_bom);
	tcase_add_test(tc, tables_keep_document_order);
	tcase_add_test(tc, many_keys_keep_order_and_are_found);
	tcase_add_test(tc, errors_carry_line_and_column);
	tcase_add_test(tc, nul_in_strings_but_not_in_documents);
	tcase_add_test(tc, scalar_values_and_accessors);
	tcase_add_test(tc, nesting_is_capped);
	tcase_add_test(tc, big_inputs_parse_in_linear_time);
	tcase_add_test(tc, mutated_inputs_do_not_crash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
