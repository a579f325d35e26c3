/* HS256 JWTs, judged by an independent implementation: PyJWT (Debian's python3-jwt,
 * run with /usr/bin/python3) verifies what we sign and signs what we verify, builds the
 * hostile tokens by hand (alg "none", HS512, bad headers), and RFC 7515 Appendix A.1
 * supplies a known answer. */
#include "testutil.h"
#include "jwt.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW INT64_C(1700000000)

static const char KEY[] = "node-token-0123456789abcdefABCDEF";
#define KEY_LEN (sizeof(KEY) - 1)

/* ---- error names, for messages ---- */

static const char *ename(int r)
{
	switch (r) {
	case 0: return "0";
	case -EINVAL: return "-EINVAL";
	case -EPROTO: return "-EPROTO";
	case -EACCES: return "-EACCES";
	case -EBADMSG: return "-EBADMSG";
	case -EKEYEXPIRED: return "-EKEYEXPIRED";
	case -EKEYREJECTED: return "-EKEYREJECTED";
	case -ENOKEY: return "-ENOKEY";
	case -E2BIG: return "-E2BIG";
	case -ENOENT: return "-ENOENT";
	case -ENOMEM: return "-ENOMEM";
	case -EIO: return "-EIO";
	default: return "(other)";
	}
}

/* ---- the judge: PyJWT behind a small script ---- */

static const char JUDGE_PY[] =
	"import base64, hashlib, hmac, json, sys\n"
	"import jwt\n"
	"from jwt import api_jws\n"
	"\n"
	"def b64(b):\n"
	"    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
	"\n"
	"def read(p):\n"
	"    with open(p, 'rb') as f:\n"
	"        return f.read()\n"
	"\n"
	"key, cmd = bytes.fromhex(sys.argv[1]), sys.argv[2]\n"
	"if cmd == 'encode':  # alg claims-file headers-file|-\n"
	"    claims = json.loads(read(sys.argv[4]))\n"
	"    headers = None if sys.argv[5] == '-' else json.loads(read(sys.argv[5]))\n"
	"    sys.stdout.write(jwt.encode(claims, key, algorithm=sys.argv[3], headers=headers))\n"
	"elif cmd == 'encode_raw':  # payload bytes, JSON or not\n"
	"    sys.stdout.write(api_jws.encode(read(sys.argv[3]), key, algorithm='HS256'))\n"
	"elif cmd == 'hand':  # header-bytes-file payload-bytes-file sign(0|1)\n"
	"    si = b64(read(sys.argv[3])) + '.' + b64(read(sys.argv[4]))\n"
	"    mac = hmac.new(key, si.encode(), hashlib.sha256).digest()\n"
	"    sys.stdout.write(si + '.' + (b64(mac) if sys.argv[5] == '1' else ''))\n"
	"elif cmd == 'decode':  # token-file check-time(0|1)\n"
	"    tok = read(sys.argv[3]).decode()\n"
	"    opts = {'verify_aud': False}\n"
	"    if sys.argv[4] == '0':\n"
	"        opts.update(verify_exp=False, verify_nbf=False, verify_iat=False)\n"
	"    try:\n"
	"        claims = jwt.decode(tok, key, algorithms=['HS256'], options=opts)\n"
	"        out = {'ok': True, 'header': jwt.get_unverified_header(tok), 'claims': claims}\n"
	"    except jwt.PyJWTError as e:\n"
	"        out = {'ok': False, 'error': type(e).__name__, 'detail': str(e)}\n"
	"    print(json.dumps(out))\n"
	"else:\n"
	"    sys.exit('unknown command ' + cmd)\n";

struct judge {
	char *dir;
	char *script;
	int nfiles;
};

static void judge_open(struct judge *j)
{
	j->dir = tu_mkdtemp("jwt");
	j->nfiles = 0;
	ck_assert_int_ge(asprintf(&j->script, "%s/judge.py", j->dir), 0);
	tu_write_file(j->script, JUDGE_PY, strlen(JUDGE_PY), 0600);
}

static void judge_close(struct judge *j)
{
	tu_rmrf(j->dir);
	free(j->dir);
	free(j->script);
}

/* A new file in the judge's directory holding len bytes; the caller frees the path. */
static char *judge_file(struct judge *j, const void *data, size_t len)
{
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/in%d", j->dir, j->nfiles++), 0);
	tu_write_file(path, data, len, 0600);
	return path;
}

static char *hex(const void *data, size_t len)
{
	const unsigned char *b = data;
	char *out = malloc(2 * len + 1);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	out[2 * len] = 0;
	return out;
}

/* Runs the judge with the key and the rest of the arguments; its stdout. */
static char *judge_run(struct judge *j, const void *key, size_t key_len, const char *args)
{
	char *k = hex(key, key_len);
	int st = -1;
	char *out = tu_sh_out(&st, "/usr/bin/python3 %s %s %s", j->script, *k ? k : "''", args);
	ck_assert_msg(st == 0, "the PyJWT judge failed (status %d) on: %s %s", st, k, args);
	free(k);
	ck_assert_ptr_nonnull(out);
	return out;
}

/* PyJWT's token for claims (JSON text) under alg, with extra header fields or NULL. */
static char *py_encode(struct judge *j, const void *key, size_t key_len, const char *alg,
		       const char *claims_json, const char *headers_json)
{
	char *cf = judge_file(j, claims_json, strlen(claims_json));
	char *hf = headers_json ? judge_file(j, headers_json, strlen(headers_json)) : strdup("-");
	char *args = NULL;
	ck_assert_int_ge(asprintf(&args, "encode %s %s %s", alg, cf, hf), 0);
	char *tok = judge_run(j, key, key_len, args);
	free(args);
	free(cf);
	free(hf);
	return tok;
}

/* PyJWS's HS256 token over arbitrary payload bytes. */
static char *py_encode_raw(struct judge *j, const void *key, size_t key_len, const char *payload)
{
	char *pf = judge_file(j, payload, strlen(payload));
	char *args = NULL;
	ck_assert_int_ge(asprintf(&args, "encode_raw %s", pf), 0);
	char *tok = judge_run(j, key, key_len, args);
	free(args);
	free(pf);
	return tok;
}

/* A token built by hand from raw header and payload bytes: signed with HMAC-SHA256
 * whatever the header says when sign is set, else with an empty signature. */
static char *py_hand(struct judge *j, const void *key, size_t key_len, const char *header,
		     size_t header_len, const char *payload, int sign)
{
	char *hf = judge_file(j, header, header_len);
	char *pf = judge_file(j, payload, strlen(payload));
	char *args = NULL;
	ck_assert_int_ge(asprintf(&args, "hand %s %s %d", hf, pf, sign), 0);
	char *tok = judge_run(j, key, key_len, args);
	free(args);
	free(hf);
	free(pf);
	return tok;
}

/* PyJWT's jwt.decode of token (time claims checked against the real clock when
 * check_time is set): {"ok":true,"header":…,"claims":…} or {"ok":false,"error":…}. */
static json_t *py_decode(struct judge *j, const void *key, size_t key_len, const char *token,
			 int check_time)
{
	char *tf = judge_file(j, token, strlen(token));
	char *args = NULL;
	ck_assert_int_ge(asprintf(&args, "decode %s %d", tf, check_time), 0);
	char *out = judge_run(j, key, key_len, args);
	json_error_t err;
	json_t *res = json_loads(out, 0, &err);
	ck_assert_msg(res != NULL, "judge output is not JSON (%s): %s", err.text, out);
	free(out);
	free(args);
	free(tf);
	return res;
}

/* ---- our side ---- */

static json_t *parse(const char *json)
{
	json_error_t err;
	json_t *v = json_loads(json, 0, &err);
	ck_assert_msg(v != NULL, "test JSON does not parse (%s): %s", err.text, json);
	return v;
}

static char *sign(const char *claims_json, const void *key, size_t key_len)
{
	json_t *c = parse(claims_json);
	char *tok = NULL;
	int r = jwt_hs256_sign(c, key, key_len, &tok);
	ck_assert_msg(r == 0, "jwt_hs256_sign gave %s for %s", ename(r), claims_json);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	return tok;
}

/* Verifies token (len bytes) and checks the code; when it is a C string of that
 * length, the NUL-terminated entry point must agree. Returns the claims on success. */
static json_t *verify_n_at(int line, int want, const char *tok, size_t len, const void *key,
			   size_t key_len, int64_t now, int64_t leeway, const char *what)
{
	json_t *claims = json_object(); /* must be replaced by NULL on failure */
	json_t *sentinel = claims;
	int r = jwt_hs256_verify_n(tok, len, key, key_len, now, leeway, &claims);
	ck_assert_msg(r == want, "line %d: %s: jwt_hs256_verify_n gave %s, want %s (token %.300s)",
		      line, what, ename(r), ename(want), tok ? tok : "(null)");
	json_decref(sentinel);
	if (want == 0)
		ck_assert_msg(json_is_object(claims), "line %d: %s: no claims on success", line,
			      what);
	else
		ck_assert_msg(claims == NULL, "line %d: %s: claims left set on failure", line, what);

	if (!tok || strlen(tok) == len) {
		json_t *again = json_object();
		json_t *sentinel2 = again;
		int r2 = jwt_hs256_verify(tok, key, key_len, now, leeway, &again);
		json_decref(sentinel2);
		ck_assert_msg(r2 == want, "line %d: %s: jwt_hs256_verify gave %s, want %s", line,
			      what, ename(r2), ename(want));
		ck_assert_msg(want == 0 ? json_equal(again, claims) : again == NULL,
			      "line %d: %s: the two entry points disagree on the claims", line,
			      what);
		json_decref(again);
		/* And without asking for the claims at all. */
		r2 = jwt_hs256_verify(tok, key, key_len, now, leeway, NULL);
		ck_assert_msg(r2 == want, "line %d: %s: with ret_claims NULL: %s, want %s", line,
			      what, ename(r2), ename(want));
	}
	return claims;
}

static size_t tok_len(const char *tok)
{
	return tok ? strlen(tok) : 0;
}

#define VERIFY_N(want, tok, len, key, klen, now, leeway, what)                              \
	json_decref(verify_n_at(__LINE__, want, tok, len, key, klen, now, leeway, what))
#define VERIFY(want, tok, key, klen, now, leeway, what)                                     \
	VERIFY_N(want, tok, tok_len(tok), key, klen, now, leeway, what)
#define EXPECT(want, tok, what) VERIFY(want, tok, KEY, KEY_LEN, NOW, 0, what)

static void assert_claims(const json_t *got, const char *want_json, const char *what)
{
	json_t *want = parse(want_json);
	char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	ck_assert_msg(json_equal(got, want), "%s: claims differ:\n got  %s\n want %s", what,
		      g ? g : "(null)", want_json);
	free(g);
	json_decref(want);
}

/* ---- claim sets and keys ---- */

static const char *const CLAIM_SETS[] = {
	/* What the panel sends (pterodactyl-protocol.md §2.4). */
	"{\"iss\":\"https://panel.example.com\",\"aud\":[\"http://node.example.com:8080\"],"
	"\"jti\":\"5d41402abc4b2a76b9719d911017c592\",\"iat\":1700000000,\"nbf\":1699999700,"
	"\"exp\":1700000900,\"server_uuid\":\"8d3c5a3e-7a1f-4b7e-9d8e-1b2c3d4e5f60\","
	"\"backup_uuid\":\"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d\","
	"\"unique_id\":\"aB3dE5fG7hJ9kL1m\",\"user_uuid\":\"0f1e2d3c-4b5a-4968-8776-655443322110\","
	"\"user_id\":1}",
	"{\"exp\":1700000900}",
	/* Unicode (two-, three- and four-byte UTF-8), escapes, empty strings. */
	"{\"exp\":1700000900,\"name\":\"\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x9c\x93 "
	"\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\",\"esc\":\"q\\\" b\\\\ nl\\n tab\\t "
	"\\u2028 \\u001f /\",\"\xc3\xa9\":\"\",\"\":\"empty key\"}",
	/* Reals for the dates, nesting, every JSON type. */
	"{\"exp\":1700000900.5,\"nbf\":1699999999.25,\"iat\":1.7e9,\"nested\":{\"a\":[1,2.5,"
	"true,false,null,{\"b\":\"c\"},[]],\"o\":{}},\"neg\":-42,\"big\":9007199254740993}",
};

/* Index of the claim sets that are pure ASCII with integer dates: for those PyJWT's
 * serialization (compact separators, key order kept) equals ours byte for byte. */
static const int ASCII_SETS[] = { 0, 1 };

static const unsigned char BIN_KEY[32] = {
	0x00, 0xff, 0x10, 0x80, 0x7f, 0x00, 0x01, 0xfe, 0x2e, 0x00, 0x0a, 0x0d,
	0x3d, 0x22, 0x5c, 0x27, 0xc3, 0x28, 0x00, 0x00, 0x99, 0x41, 0x42, 0x43,
	0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x00,
};

struct key {
	const void *data;
	size_t len;
	const char *what;
};

#define LONG_KEY_LEN 200

static void keys(struct key out[3], unsigned char long_key[LONG_KEY_LEN])
{
	/* Longer than SHA-256's 64-byte block, so HMAC hashes it first. */
	for (size_t i = 0; i < LONG_KEY_LEN; i++)
		long_key[i] = (unsigned char)(i * 7 + 3);
	out[0] = (struct key){ KEY, KEY_LEN, "ASCII node token" };
	out[1] = (struct key){ BIN_KEY, sizeof(BIN_KEY), "binary key with NUL bytes" };
	out[2] = (struct key){ long_key, LONG_KEY_LEN, "200-byte key" };
}

/* ---- (1) what we sign, PyJWT accepts ---- */

START_TEST(test_signed_verified_by_pyjwt)
{
	struct judge j;
	judge_open(&j);
	struct key ks[3];
	unsigned char long_key[LONG_KEY_LEN];
	keys(ks, long_key);
	for (size_t k = 0; k < 3; k++) {
		for (size_t c = 0; c < sizeof(CLAIM_SETS) / sizeof(*CLAIM_SETS); c++) {
			char *tok = sign(CLAIM_SETS[c], ks[k].data, ks[k].len);
			json_t *res = py_decode(&j, ks[k].data, ks[k].len, tok, 0);
			char *what = NULL;
			ck_assert_int_ge(asprintf(&what, "claim set %zu, %s", c, ks[k].what), 0);
			ck_assert_msg(json_is_true(json_object_get(res, "ok")),
				      "%s: PyJWT refused our token %s: %s: %s", what, tok,
				      json_string_value(json_object_get(res, "error")),
				      json_string_value(json_object_get(res, "detail")));
			assert_claims(json_object_get(res, "claims"), CLAIM_SETS[c], what);
			assert_claims(json_object_get(res, "header"),
				      "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", what);
			json_decref(res);

			/* And we accept our own. */
			json_t *mine = verify_n_at(__LINE__, 0, tok, strlen(tok), ks[k].data,
						   ks[k].len, NOW, 0, what);
			assert_claims(mine, CLAIM_SETS[c], what);
			json_decref(mine);
			free(what);
			free(tok);
		}
	}
	/* Byte-identical to PyJWT's own token where the serializations must agree. */
	for (size_t i = 0; i < sizeof(ASCII_SETS) / sizeof(*ASCII_SETS); i++) {
		const char *cs = CLAIM_SETS[ASCII_SETS[i]];
		char *ours = sign(cs, KEY, KEY_LEN);
		char *theirs = py_encode(&j, KEY, KEY_LEN, "HS256", cs, NULL);
		ck_assert_msg(strcmp(ours, theirs) == 0,
			      "claim set %d: our token differs from PyJWT's:\n ours   %s\n PyJWT  %s",
			      ASCII_SETS[i], ours, theirs);
		free(ours);
		free(theirs);
	}
	/* An object without exp signs (the panel side may mint anything), and PyJWT reads
	 * it; our verify refuses it by policy, tested below. */
	char *tok = sign("{}", KEY, KEY_LEN);
	json_t *res = py_decode(&j, KEY, KEY_LEN, tok, 0);
	ck_assert(json_is_true(json_object_get(res, "ok")));
	assert_claims(json_object_get(res, "claims"), "{}", "empty claims");
	json_decref(res);
	free(tok);
	judge_close(&j);
}
END_TEST

/* ---- (2) what PyJWT signs, we accept ---- */

START_TEST(test_pyjwt_signed_we_verify)
{
	struct judge j;
	judge_open(&j);
	struct key ks[3];
	unsigned char long_key[LONG_KEY_LEN];
	keys(ks, long_key);
	static const char *const headers[] = {
		NULL,
		/* The panel's header carries the jti too. */
		"{\"jti\":\"5d41402abc4b2a76b9719d911017c592\"}",
		"{\"kid\":\"node-1\",\"typ\":\"JWT\",\"x-\xc3\xa9\":[1,{}]}",
	};
	for (size_t k = 0; k < 3; k++) {
		for (size_t c = 0; c < sizeof(CLAIM_SETS) / sizeof(*CLAIM_SETS); c++) {
			const char *h = headers[(k + c) % 3];
			char *tok = py_encode(&j, ks[k].data, ks[k].len, "HS256", CLAIM_SETS[c], h);
			char *what = NULL;
			ck_assert_int_ge(asprintf(&what, "PyJWT token, claim set %zu, %s, header %s",
						  c, ks[k].what, h ? h : "default"),
					 0);
			json_t *claims = verify_n_at(__LINE__, 0, tok, strlen(tok), ks[k].data,
						     ks[k].len, NOW, 0, what);
			assert_claims(claims, CLAIM_SETS[c], what);
			json_decref(claims);
			free(what);
			free(tok);
		}
	}
	/* Integer and real exp from PyJWT, at the edges of validity. */
	char *tok = py_encode(&j, KEY, KEY_LEN, "HS256", "{\"exp\":1700000000}", NULL);
	EXPECT(0, tok, "integer exp == now");
	VERIFY(-EKEYEXPIRED, tok, KEY, KEY_LEN, NOW + 1, 0, "integer exp == now - 1");
	free(tok);
	tok = py_encode(&j, KEY, KEY_LEN, "HS256", "{\"exp\":1700000000.75}", NULL);
	EXPECT(0, tok, "real exp just after now");
	VERIFY(-EKEYEXPIRED, tok, KEY, KEY_LEN, NOW + 1, 0, "real exp 0.25 s before now");
	VERIFY(0, tok, KEY, KEY_LEN, NOW + 1, 1, "real exp 0.25 s before now, leeway 1");
	free(tok);
	judge_close(&j);
}
END_TEST

/* ---- (3) refusals ---- */

static char *dup_replace(const char *s, size_t at, char c)
{
	char *t = strdup(s);
	ck_assert_ptr_nonnull(t);
	t[at] = c;
	return t;
}

/* A base64url character other than c, keeping the same top bits: bit_mask says which
 * of the 6 bits to flip. */
static char b64_flip(char c, int bit_mask)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(alphabet, c);
	ck_assert_ptr_nonnull(p);
	return alphabet[(p - alphabet) ^ bit_mask];
}

START_TEST(test_tampered)
{
	struct judge j;
	judge_open(&j);
	const char *claims = CLAIM_SETS[0];
	char *tok = py_encode(&j, KEY, KEY_LEN, "HS256", claims, NULL);
	EXPECT(0, tok, "untouched");
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
	size_t p_at = (size_t)(d1 - tok) + 1, s_at = (size_t)(d2 - tok) + 1;
	size_t p_len = (size_t)(d2 - d1) - 1, s_len = strlen(tok) - s_at;
	ck_assert_uint_eq(s_len, 43);

	/* Another key's token for other claims: splice its parts into ours. */
	static const char other_key[] = "another-node-token";
	char *other = py_encode(&j, other_key, strlen(other_key), "HS256",
				"{\"exp\":1700000900,\"server_uuid\":\"x\",\"backup_uuid\":"
				"\"../../etc/passwd\",\"unique_id\":\"aaaaaaaaaaaaaaaa\"}",
				NULL);
	const char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
	char *spliced = NULL;
	ck_assert_int_ge(asprintf(&spliced, "%.*s.%.*s.%s", (int)(d1 - tok), tok,
				  (int)(o2 - o1 - 1), o1 + 1, d2 + 1),
			 0);
	EXPECT(-EACCES, spliced, "payload swapped for another token's");
	free(spliced);
	ck_assert_int_ge(asprintf(&spliced, "%.*s.%s", (int)(d2 - tok), tok, o2 + 1), 0);
	EXPECT(-EACCES, spliced, "signature of another key");
	free(spliced);
	VERIFY(-EACCES, other, KEY, KEY_LEN, NOW, 0, "token of another key");
	VERIFY(0, other, other_key, strlen(other_key), NOW, 0, "same token, its own key");
	free(other);

	/* One character of the payload changed (not the last, so still canonical). */
	char *t = dup_replace(tok, p_at + p_len / 2, b64_flip(tok[p_at + p_len / 2], 1));
	EXPECT(-EACCES, t, "payload character changed");
	free(t);
	t = dup_replace(tok, p_at, b64_flip(tok[p_at], 32));
	EXPECT(-EACCES, t, "first payload character changed");
	free(t);
	/* The header too. */
	t = dup_replace(tok, 5, b64_flip(tok[5], 2));
	int r = jwt_hs256_verify(t, KEY, KEY_LEN, NOW, 0, NULL);
	ck_assert_msg(r == -EACCES || r == -EINVAL || r == -EPROTO,
		      "header changed: %s, want a refusal", ename(r));
	free(t);
	/* The signature: a middle character; the last one in a bit that carries data;
	 * the last one in a bit that does not (a second spelling of the same bytes). */
	t = dup_replace(tok, s_at + 20, b64_flip(tok[s_at + 20], 1));
	EXPECT(-EACCES, t, "signature character changed");
	free(t);
	t = dup_replace(tok, s_at + 42, b64_flip(tok[s_at + 42], 4));
	EXPECT(-EACCES, t, "last signature character changed");
	free(t);
	t = dup_replace(tok, s_at + 42, b64_flip(tok[s_at + 42], 1));
	EXPECT(-EINVAL, t, "non-canonical last signature character");
	free(t);
	/* Signature truncated to 30 bytes, or gone. */
	t = strndup(tok, strlen(tok) - 3);
	EXPECT(-EACCES, t, "signature truncated to 30 bytes");
	free(t);
	t = strndup(tok, s_at);
	EXPECT(-EACCES, t, "empty signature");
	free(t);
	/* Three bytes too many. */
	ck_assert_int_ge(asprintf(&t, "%sAAAA", tok), 0);
	EXPECT(-EACCES, t, "35-byte signature");
	free(t);

	/* Wrong keys: one byte off, a prefix, a longer one, empty. */
	char key2[KEY_LEN + 1];
	memcpy(key2, KEY, KEY_LEN + 1);
	key2[3] ^= 1;
	VERIFY(-EACCES, tok, key2, KEY_LEN, NOW, 0, "key one bit off");
	VERIFY(-EACCES, tok, KEY, KEY_LEN - 1, NOW, 0, "key one byte short");
	/* (Not KEY with its NUL terminator: HMAC pads short keys with zero bytes, so
	 * that is the same key.) */
	char key3[KEY_LEN + 2];
	memcpy(key3, KEY, KEY_LEN);
	key3[KEY_LEN] = 'x';
	VERIFY(-EACCES, tok, key3, KEY_LEN + 1, NOW, 0, "key one byte longer");
	VERIFY(-ENOKEY, tok, KEY, 0, NOW, 0, "empty key");
	VERIFY(-ENOKEY, tok, NULL, 5, NOW, 0, "NULL key");
	free(tok);
	judge_close(&j);
}
END_TEST

START_TEST(test_algorithms)
{
	struct judge j;
	judge_open(&j);
	const char *claims = "{\"exp\":1700000900,\"server_uuid\":\"s\",\"backup_uuid\":\"b\","
			     "\"unique_id\":\"u\"}";
	/* Headers that must be refused even when the HMAC-SHA256 over them is right:
	 * the algorithm is ours to choose, never the token's. */
	static const char *const bad[] = {
		"{\"alg\":\"none\",\"typ\":\"JWT\"}",
		"{\"alg\":\"None\"}",
		"{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"HS256 \",\"typ\":\"JWT\"}",
		"{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
		"{\"typ\":\"JWT\"}",
		"{}",
		"{\"alg\":null}",
		"{\"alg\":[\"HS256\"]}",
		"{\"alg\":256}",
		"{\"alg\":\"\"}",
		"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
		"{\"alg\":\"HS256\",\"crit\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		for (int s = 0; s < 2; s++) {
			char *tok = py_hand(&j, KEY, KEY_LEN, bad[i], strlen(bad[i]), claims, s);
			char *what = NULL;
			ck_assert_int_ge(asprintf(&what, "header %s, %s", bad[i],
						  s ? "valid HMAC-SHA256" : "empty signature"),
					 0);
			EXPECT(-EPROTO, tok, what);
			free(what);
			free(tok);
		}
	}
	/* Controls: the same hand-built route with acceptable headers. */
	static const char *const good[] = {
		"{\"alg\":\"HS256\"}",
		"{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
		"{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"x\",\"jti\":\"j\"}",
		" {\"alg\" : \"HS256\"}\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		char *tok = py_hand(&j, KEY, KEY_LEN, good[i], strlen(good[i]), claims, 1);
		EXPECT(0, tok, good[i]);
		free(tok);
	}
	/* PyJWT's own tokens of other HMAC algorithms, with the same key. */
	static const char *const algs[] = { "HS384", "HS512" };
	for (size_t i = 0; i < 2; i++) {
		char *tok = py_encode(&j, KEY, KEY_LEN, algs[i], claims, NULL);
		EXPECT(-EPROTO, tok, algs[i]);
		free(tok);
	}
	/* An RS256-shaped token (nobody here holds an RSA key: the signature is junk). */
	const char *rs_header = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	char *tok = py_hand(&j, KEY, KEY_LEN, rs_header, strlen(rs_header), claims, 0);
	char *rs = NULL;
	ck_assert_int_ge(asprintf(&rs, "%sc2lnbmF0dXJlIGJ5IHNvbWVvbmUgZWxzZQ", tok), 0);
	EXPECT(-EPROTO, rs, "RS256");
	free(rs);
	free(tok);
	judge_close(&j);
}
END_TEST

START_TEST(test_times)
{
	struct {
		const char *claims;
		int64_t now, leeway;
		int want;
	} cases[] = {
		{ "{\"exp\":1700000000}", NOW, 0, 0 },
		{ "{\"exp\":1700000001}", NOW, 0, 0 },
		{ "{\"exp\":1699999999}", NOW, 0, -EKEYEXPIRED },
		{ "{\"exp\":1699999970}", NOW, 30, 0 },
		{ "{\"exp\":1699999970}", NOW, 29, -EKEYEXPIRED },
		{ "{\"exp\":1699999999.5}", NOW, 0, -EKEYEXPIRED },
		{ "{\"exp\":1700000000.0}", NOW, 0, 0 },
		{ "{\"exp\":1700000000.5}", NOW, 0, 0 },
		{ "{\"exp\":1699999999.5}", NOW, 1, 0 },
		{ "{\"exp\":-9223372036854775808}", NOW, 0, -EKEYEXPIRED },
		{ "{\"exp\":-9223372036854775808}", INT64_MAX, INT64_MAX, -EKEYEXPIRED },
		{ "{\"exp\":-9223372036854775808}", INT64_MIN, 0, 0 },
		{ "{\"exp\":9223372036854775807}", NOW, 0, 0 },
		{ "{\"exp\":9223372036854775807}", INT64_MAX, 0, 0 },
		{ "{\"exp\":1e300}", NOW, 0, 0 },
		{ "{\"exp\":-1e300}", NOW, INT64_MAX, -EKEYEXPIRED },
		{ "{\"exp\":0}", 0, 0, 0 },
		/* now - leeway would overflow here: the comparison must not. */
		{ "{\"exp\":0}", INT64_MIN, INT64_MAX, 0 },
		{ "{\"exp\":1700000900,\"nbf\":0}", INT64_MAX, INT64_MAX, 0 },
		{ "{\"exp\":1700000900,\"nbf\":1700000010}", NOW, 0, -EKEYREJECTED },
		{ "{\"exp\":1700000900,\"nbf\":1700000010}", NOW, 9, -EKEYREJECTED },
		{ "{\"exp\":1700000900,\"nbf\":1700000010}", NOW, 10, 0 },
		{ "{\"exp\":1700000900,\"nbf\":1700000000}", NOW, 0, 0 },
		{ "{\"exp\":1700000900,\"nbf\":1700000000.5}", NOW, 0, -EKEYREJECTED },
		{ "{\"exp\":1700000900,\"nbf\":1699999700}", NOW, 0, 0 },
		{ "{\"exp\":1700000900,\"nbf\":-9223372036854775808}", NOW, 0, 0 },
		{ "{\"exp\":9223372036854775807,\"nbf\":9223372036854775807}", INT64_MIN,
		  INT64_MAX, -EKEYREJECTED },
		/* Both wrong: expiry is reported. */
		{ "{\"exp\":1699999000,\"nbf\":1700001000}", NOW, 0, -EKEYEXPIRED },
		/* iat is informational (see jwt.h): even in the future or not a number. */
		{ "{\"exp\":1700000900,\"iat\":1800000000}", NOW, 0, 0 },
		{ "{\"exp\":1700000900,\"iat\":\"yesterday\"}", NOW, 0, 0 },
		/* Policy: exp required and a number; nbf a number if present. */
		{ "{}", NOW, 0, -EBADMSG },
		{ "{\"server_uuid\":\"s\",\"backup_uuid\":\"b\",\"unique_id\":\"u\"}", NOW, 0,
		  -EBADMSG },
		{ "{\"exp\":\"1700000900\"}", NOW, 0, -EBADMSG },
		{ "{\"exp\":true}", NOW, 0, -EBADMSG },
		{ "{\"exp\":null}", NOW, 0, -EBADMSG },
		{ "{\"exp\":[1700000900]}", NOW, 0, -EBADMSG },
		{ "{\"EXP\":1700000900}", NOW, 0, -EBADMSG },
		{ "{\"exp\":1700000900,\"nbf\":\"0\"}", NOW, 0, -EBADMSG },
		{ "{\"exp\":1700000900,\"nbf\":null}", NOW, 0, -EBADMSG },
		/* Negative leeway is a caller's bug. */
		{ "{\"exp\":1700000900}", NOW, -1, -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *tok = sign(cases[i].claims, KEY, KEY_LEN);
		char *what = NULL;
		ck_assert_int_ge(asprintf(&what, "%s at now=%" PRId64 " leeway=%" PRId64,
					  cases[i].claims, cases[i].now, cases[i].leeway),
				 0);
		VERIFY(cases[i].want, tok, KEY, KEY_LEN, cases[i].now, cases[i].leeway, what);
		free(what);
		free(tok);
	}

	/* PyJWT agrees on the clear cases, on the real clock. */
	struct judge j;
	judge_open(&j);
	int64_t t = (int64_t)time(NULL);
	struct {
		int64_t exp_off, nbf_off;
		int want;
		const char *py;
	} live[] = {
		{ 100, -100, 0, NULL },
		{ -100, -200, -EKEYEXPIRED, "ExpiredSignatureError" },
		{ 200, 100, -EKEYREJECTED, "ImmatureSignatureError" },
	};
	for (size_t i = 0; i < 3; i++) {
		char *cs = NULL;
		ck_assert_int_ge(asprintf(&cs, "{\"exp\":%" PRId64 ",\"nbf\":%" PRId64 "}",
					  t + live[i].exp_off, t + live[i].nbf_off),
				 0);
		char *tok = py_encode(&j, KEY, KEY_LEN, "HS256", cs, NULL);
		VERIFY(live[i].want, tok, KEY, KEY_LEN, (int64_t)time(NULL), 5, cs);
		json_t *res = py_decode(&j, KEY, KEY_LEN, tok, 1);
		if (!live[i].py)
			ck_assert_msg(json_is_true(json_object_get(res, "ok")),
				      "%s: PyJWT refused it: %s", cs,
				      json_string_value(json_object_get(res, "error")));
		else
			ck_assert_msg(json_is_false(json_object_get(res, "ok")) &&
					      strcmp(json_string_value(json_object_get(res, "error")),
						     live[i].py) == 0,
				      "%s: PyJWT did not raise %s", cs, live[i].py);
		json_decref(res);
		free(tok);
		free(cs);
	}
	judge_close(&j);
}
END_TEST

START_TEST(test_malformed)
{
	/* Shapes. */
	static const char *const garbage[] = {
		"",
		".",
		"..",
		"...",
		"a.b",
		"a.b.c",
		"a.b.c.d",
		"abcd.abcd",
		"abcd.abcd.abcd.abcd",
		"abcd..abcd",
		"eyJhbGciOiJIUzI1NiJ9",
		"eyJhbGciOiJIUzI1NiJ9.e30",
		"abcd.abcd.abcd",           /* decodes, but the header is not JSON */
		"e30=.e30.abcd",            /* padding */
		"e30.e30=.abcd",
		"e30.e30.abc=",
		"e3+.e30.abcd",             /* standard base64, not base64url */
		"e30.e3/.abcd",
		"e30.e30.ab d",
		"e30.e30.abcd\n",
		" e30.e30.abcd",
		"e30.e30.ab%2F",
		"e30.e30.abc\xc3\xa9",
		"Bearer e30.e30.abcd",
		"e31.e30.abcd",             /* non-canonical: "e31" has stray low bits */
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++)
		EXPECT(-EINVAL, garbage[i], garbage[i]);
	VERIFY(-EINVAL, NULL, KEY, KEY_LEN, NOW, 0, "NULL token");
	VERIFY(-ENOKEY, NULL, NULL, 0, NOW, 0, "NULL token and key");

	struct judge j;
	judge_open(&j);
	const char *claims = "{\"exp\":1700000900}";
	/* Headers that are not a JSON object, or not valid JSON text. */
	static const char *const headers[] = {
		"[\"alg\",\"HS256\"]",
		"\"HS256\"",
		"null",
		"42",
		"{\"alg\":\"HS256\"",
		"{\"alg\":\"HS256\"}x",
		"{\"alg\":\"HS256\"}{}",
		"{'alg':'HS256'}",
		"{\"alg\":\"none\",\"alg\":\"HS256\"}", /* duplicate keys: ambiguous */
		"{\"alg\":\"HS256\",\"x\":\"\xff\"}",    /* not UTF-8 */
		"{\"alg\":\"HS256\",\"x\":\"a\\u0000b\"}",
		"",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(*headers); i++) {
		char *tok = py_hand(&j, KEY, KEY_LEN, headers[i], strlen(headers[i]), claims, 1);
		EXPECT(-EINVAL, tok, headers[i]);
		free(tok);
	}
	/* A raw NUL inside the header JSON. */
	char *tok = py_hand(&j, KEY, KEY_LEN, "{\"alg\":\"HS256\"}\0", 16, claims, 1);
	EXPECT(-EINVAL, tok, "header with a trailing NUL byte");
	free(tok);

	/* Payloads that are not a JSON object, correctly signed. */
	static const char *const payloads[] = {
		"not json",
		"[]",
		"[{\"exp\":1700000900}]",
		"1700000900",
		"\"exp\"",
		"",
		"{\"exp\":1700000900}x",
		"{\"exp\":1700000900,\"exp\":1}",
		"{\"exp\":1700000900,\"server_uuid\":\"a\\u0000b\"}",
		"{\"exp\":1700000900,\"x\":\"\xc3\x28\"}",
		"{\"exp\":1700000900,\"x\":1e999}",
		"{\"exp\":99999999999999999999999}",
	};
	for (size_t i = 0; i < sizeof(payloads) / sizeof(*payloads); i++) {
		tok = py_encode_raw(&j, KEY, KEY_LEN, payloads[i]);
		EXPECT(-EINVAL, tok, payloads[i]);
		/* ...but forged, they are refused for the signature before being parsed. */
		VERIFY(-EACCES, tok, "k", 1, NOW, 0, payloads[i]);
		free(tok);
	}

	/* Length: refused before any work, whatever the content. */
	char *huge = malloc((1 << 20) + 1);
	ck_assert_ptr_nonnull(huge);
	memset(huge, 'A', 1 << 20);
	huge[1 << 20] = 0;
	huge[100] = huge[200] = '.';
	EXPECT(-EINVAL, huge, "1 MiB token");
	huge[JWT_MAX_TOKEN_LEN + 1] = 0;
	EXPECT(-EINVAL, huge, "token one byte over the limit");
	free(huge);

	/* The largest token we sign still verifies; one byte more of claims and sign
	 * refuses (-E2BIG) rather than mint what verify would refuse; PyJWT, which has no
	 * limit, makes such a token and we refuse it. */
	size_t pad = 6000;
	char *last_ok = NULL;
	for (;; pad++) {
		char *big = malloc(pad + 64);
		ck_assert_ptr_nonnull(big);
		int n = snprintf(big, pad + 64, "{\"exp\":1700000900,\"p\":\"%*s\"}", (int)pad, "");
		ck_assert_int_gt(n, 0);
		json_t *c = parse(big);
		char *t = NULL;
		int r = jwt_hs256_sign(c, KEY, KEY_LEN, &t);
		json_decref(c);
		if (r == -E2BIG) {
			ck_assert_ptr_null(t);
			ck_assert_ptr_nonnull(last_ok);
			char *theirs = py_encode(&j, KEY, KEY_LEN, "HS256", big, NULL);
			ck_assert_uint_gt(strlen(theirs), JWT_MAX_TOKEN_LEN);
			EXPECT(-EINVAL, theirs, "PyJWT token over the limit");
			free(theirs);
			free(big);
			break;
		}
		ck_assert_msg(r == 0, "sign with %zu bytes of padding: %s", pad, ename(r));
		ck_assert_uint_le(strlen(t), JWT_MAX_TOKEN_LEN);
		free(last_ok);
		last_ok = t;
		free(big);
	}
	ck_assert_uint_ge(strlen(last_ok), JWT_MAX_TOKEN_LEN - 3);
	EXPECT(0, last_ok, "token at the length limit");
	free(last_ok);

	/* Embedded NUL: the length-taking entry point sees it and refuses; the C-string
	 * one sees a shorter token. */
	tok = py_encode(&j, KEY, KEY_LEN, "HS256", claims, NULL);
	size_t len = strlen(tok);
	char *withnul = malloc(len + 2);
	ck_assert_ptr_nonnull(withnul);
	memcpy(withnul, tok, len + 1);
	VERIFY_N(0, withnul, len, KEY, KEY_LEN, NOW, 0, "control");
	VERIFY_N(-EINVAL, withnul, len + 1, KEY, KEY_LEN, NOW, 0, "a NUL after the token");
	withnul[len / 2] = 0;
	VERIFY_N(-EINVAL, withnul, len, KEY, KEY_LEN, NOW, 0, "a NUL in the middle");
	memcpy(withnul, tok, len + 1);
	char *dot2 = strrchr(withnul, '.');
	memmove(dot2 + 1, dot2, strlen(dot2) + 1);
	*dot2 = 0; /* header.payload\0.signature */
	VERIFY_N(-EINVAL, withnul, len + 1, KEY, KEY_LEN, NOW, 0, "NUL before the signature");
	EXPECT(-EINVAL, withnul, "C string cut at the NUL");
	free(withnul);
	free(tok);
	judge_close(&j);
}
END_TEST

/* ---- (4) RFC 7515 Appendix A.1 ---- */

/* The JWS of A.1 (its header and payload contain CR LF, so no re-serialization would
 * reproduce it: the signing input must be the token's own text). */
static const char RFC_A1_TOKEN[] =
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* The A.1 JWK's "k", "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h
 * cgUuTwjAzZr1Z9CAow", as octets. */
static const unsigned char RFC_A1_KEY[64] = {
	3,   35,  53,  75,  43,  15,  165, 188, 131, 126, 6,   101, 119, 123, 166, 143,
	90,  179, 40,  230, 240, 84,  201, 40,  169, 15,  132, 178, 210, 80,  46,  191,
	211, 251, 90,  146, 210, 6,   71,  239, 150, 138, 180, 195, 119, 98,  61,  34,
	61,  46,  33,  114, 5,   46,  79,  8,   192, 205, 154, 245, 103, 208, 128, 163,
};

START_TEST(test_rfc7515_a1)
{
	const int64_t exp = INT64_C(1300819380);
	json_t *claims = verify_n_at(__LINE__, 0, RFC_A1_TOKEN, strlen(RFC_A1_TOKEN), RFC_A1_KEY,
				     sizeof(RFC_A1_KEY), exp - 380, 0, "RFC 7515 A.1");
	assert_claims(claims,
		      "{\"iss\":\"joe\",\"exp\":1300819380,\"http://example.com/is_root\":true}",
		      "RFC 7515 A.1");
	const char *iss = NULL;
	ck_assert_int_eq(jwt_claim_string(claims, "iss", &iss), 0);
	ck_assert_str_eq(iss, "joe");
	json_decref(claims);

	VERIFY(0, RFC_A1_TOKEN, RFC_A1_KEY, sizeof(RFC_A1_KEY), exp, 0, "A.1 at its exp");
	VERIFY(-EKEYEXPIRED, RFC_A1_TOKEN, RFC_A1_KEY, sizeof(RFC_A1_KEY), exp + 1, 0,
	       "A.1 a second after its exp");
	VERIFY(0, RFC_A1_TOKEN, RFC_A1_KEY, sizeof(RFC_A1_KEY), exp + 1, 1,
	       "A.1 a second after its exp, leeway 1");
	VERIFY(-EKEYEXPIRED, RFC_A1_TOKEN, RFC_A1_KEY, sizeof(RFC_A1_KEY), NOW, 0,
	       "A.1 today");

	unsigned char key2[64];
	memcpy(key2, RFC_A1_KEY, sizeof(key2));
	key2[63] ^= 0x80;
	VERIFY(-EACCES, RFC_A1_TOKEN, key2, sizeof(key2), exp, 0, "A.1, last key bit flipped");
	VERIFY(-EACCES, RFC_A1_TOKEN, RFC_A1_KEY, 63, exp, 0, "A.1, key one byte short");
	char *t = strdup(RFC_A1_TOKEN);
	t[strlen(t) - 2] = 'j'; /* "...jXk" -> "...jjk" */
	VERIFY(-EACCES, t, RFC_A1_KEY, sizeof(RFC_A1_KEY), exp, 0, "A.1, signature changed");
	free(t);
}
END_TEST

/* ---- the smaller pieces ---- */

START_TEST(test_sign_args)
{
	char dummy = 0;
	char *tok = &dummy;
	json_t *arr = json_array();
	ck_assert_int_eq(jwt_hs256_sign(arr, KEY, KEY_LEN, &tok), -EINVAL);
	ck_assert_ptr_null(tok);
	json_decref(arr);
	tok = &dummy;
	ck_assert_int_eq(jwt_hs256_sign(NULL, KEY, KEY_LEN, &tok), -EINVAL);
	ck_assert_ptr_null(tok);
	json_t *c = parse("{\"exp\":1}");
	ck_assert_int_eq(jwt_hs256_sign(c, KEY, KEY_LEN, NULL), -EINVAL);
	tok = &dummy;
	ck_assert_int_eq(jwt_hs256_sign(c, KEY, 0, &tok), -ENOKEY);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(jwt_hs256_sign(c, NULL, 3, &tok), -ENOKEY);
	/* A one-byte key is legal, if weak. */
	ck_assert_int_eq(jwt_hs256_sign(c, "k", 1, &tok), 0);
	VERIFY(0, tok, "k", 1, 0, 0, "one-byte key");
	free(tok);
	json_decref(c);
}
END_TEST

START_TEST(test_claim_string)
{
	json_t *c = parse("{\"server_uuid\":\"8d3c5a3e\",\"n\":1,\"e\":\"\",\"z\":null}");
	const char *s = NULL;
	ck_assert_int_eq(jwt_claim_string(c, "server_uuid", &s), 0);
	ck_assert_str_eq(s, "8d3c5a3e");
	ck_assert_int_eq(jwt_claim_string(c, "e", &s), 0);
	ck_assert_str_eq(s, "");
	s = NULL;
	ck_assert_int_eq(jwt_claim_string(c, "backup_uuid", &s), -ENOENT);
	ck_assert_int_eq(jwt_claim_string(c, "n", &s), -EINVAL);
	ck_assert_int_eq(jwt_claim_string(c, "z", &s), -EINVAL);
	ck_assert_ptr_null(s);
	/* A NUL built in memory (the parser already refuses \u0000). */
	json_object_set_new(c, "nul", json_stringn("ab\0cd", 5));
	ck_assert_int_eq(jwt_claim_string(c, "nul", &s), -EINVAL);
	ck_assert_int_eq(jwt_claim_string(NULL, "x", &s), -ENOENT);
	json_decref(c);
}
END_TEST

static Suite *jwt_suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_signed_verified_by_pyjwt);
	tcase_add_test(tc, test_pyjwt_signed_we_verify);
	tcase_add_test(tc, test_tampered);
	tcase_add_test(tc, test_algorithms);
	tcase_add_test(tc, test_times);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_rfc7515_a1);
	tcase_add_test(tc, test_sign_args);
	tcase_add_test(tc, test_claim_string);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(jwt_suite());
}
