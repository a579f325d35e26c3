/* The gcs adapter's pure parts, against fixed vectors (TAP; exit 1 on any failure):
 *  1. V4 signed URLs: every applicable case of $AMBER_SHARED_DIR/vectors/gcs-v4/
 *     v4_signatures.json with the dummy service-account key there, URL byte for byte
 *     (signature included: PKCS#1 v1.5 is deterministic). Out-of-scope cases are
 *     listed as skipped with the reason.
 *  2. The JWT-bearer assertion, verified with OpenSSL against the key's public half
 *     (extracted to a SubjectPublicKeyInfo PEM and read back alone), and its fields.
 *  3. CRC32C and base64 against the spec's check values.
 * A missing vector folder is a failure, never a silent pass. */

#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gcs_util.h"

static int n, failed;

static void ok(int cond, const char *fmt, const char *a)
{
	n++;
	if (!cond)
		failed++;
	printf("%sok %d - ", cond ? "" : "not ", n);
	printf(fmt, a);
	printf("\n");
}

static const struct {
	const char *desc, *why;
} skips[] = {
	{ "Simple GET with non-default hostname",
	  "the library signs host 'localhost' while the URL goes to localhost:8080 (a client-"
	  "library endpoint quirk); the adapter always signs the host:port it targets" },
	{ "Endpoint on client with scheme", "same host-without-port quirk as above" },
	{ "Endpoint on client takes precedence over emulator",
	  "same host-without-port quirk as above (client endpoint/emulator precedence is "
	  "library configuration, not signing)" },
	{ "Universe domain with virtual hosted style",
	  "signs path /bucket/object on a virtual-hosted host (library quirk); the adapter "
	  "uses path style only" },
};

static time_t parse_ts(const char *s)
{
	struct tm tm = { 0 };
	strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return timegm(&tm);
}

static void vectors(const char *dir, struct gcs_sa_key *key)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/v4_signatures.json", dir);
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	ok(root != NULL, "the vectors load: %s", path);
	if (!root)
		return;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(root, "signingV4Tests"), i, t)
	{
		const char *desc = json_string_value(json_object_get(t, "description"));
		const char *skip = NULL;
		for (size_t s = 0; s < sizeof(skips) / sizeof(skips[0]); s++)
			if (!strcmp(desc, skips[s].desc))
				skip = skips[s].why;
		if (skip) {
			n++;
			printf("ok %d - %s # SKIP %s\n", n, desc, skip);
			continue;
		}
		const char *want = json_string_value(json_object_get(t, "expectedUrl"));
		const char *style = json_string_value(json_object_get(t, "urlStyle"));
		/* The base URL (scheme://authority) is where the URL is meant to go; the
		 * signer derives the host header from it, default ports left out. */
		const char *auth = strstr(want, "://") + 3;
		size_t blen = (size_t)(auth - want) + strcspn(auth, "/?");
		char *base = strndup(want, blen);
		const char *hv[64], *qv[64];
		size_t nh = 0, nq = 0;
		const char *payload = NULL, *k;
		json_t *v;
		json_object_foreach(json_object_get(t, "headers"), k, v)
		{
			hv[2 * nh] = k;
			hv[2 * nh + 1] = json_string_value(v);
			if (!strcasecmp(k, "x-goog-content-sha256"))
				payload = json_string_value(v);
			nh++;
		}
		json_object_foreach(json_object_get(t, "queryParameters"), k, v)
		{
			qv[2 * nq] = k;
			qv[2 * nq + 1] = json_string_value(v);
			nq++;
		}
		int bucket_in_host = style && strcmp(style, "PATH_STYLE") != 0;
		struct gcs_sign_req r = {
			.base_url = base,
			.method = json_string_value(json_object_get(t, "method")),
			.bucket = bucket_in_host ? NULL
						 : json_string_value(json_object_get(t, "bucket")),
			.object = json_string_value(json_object_get(t, "object")),
			.headers = hv,
			.n_headers = nh,
			.query = qv,
			.n_query = nq,
			.expires = (uint32_t)json_integer_value(json_object_get(t, "expiration")),
			.when = parse_ts(json_string_value(json_object_get(t, "timestamp"))),
			.pkey = key->pkey,
			.client_email = key->client_email,
			.payload = payload,
		};
		char why[256] = "";
		char *got = gcs_sign_url(&r, why, sizeof(why));
		int same = got && strcmp(got, want) == 0;
		ok(same, "V4 vector: %s", desc);
		if (!same)
			printf("#  want %s\n#  got  %s %s\n", want, got ? got : "(null)", why);
		/* The resumable-initiation signer on its own vector. */
		if (!strcmp(desc, "POST for resumable uploads")) {
			r.headers = NULL;
			r.n_headers = 0;
			char *g2 = gcs_sign_resumable_url(&r, why, sizeof(why));
			ok(g2 && !strcmp(g2, want), "%s", "gcs_sign_resumable_url reproduces the "
			   "'POST for resumable uploads' vector");
			free(g2);
		}
		free(got);
		free(base);
	}
	json_decref(root);
}

static unsigned char *b64url_decode(const char *s, size_t len, size_t *ret)
{
	char *t = calloc(1, len + 4);
	size_t l = 0;
	if (!t)
		return NULL;
	for (size_t i = 0; i < len; i++)
		t[l++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (l % 4)
		t[l++] = '=';
	unsigned char *out = malloc(l);
	int n2 = EVP_DecodeBlock(out, (unsigned char *)t, (int)l);
	size_t pad = 0;
	while (pad < 2 && l > pad && t[l - 1 - pad] == '=')
		pad++;
	free(t);
	*ret = n2 < 0 ? 0 : (size_t)n2 - pad;
	return out;
}

static void jwt(struct gcs_sa_key *key)
{
	time_t now = 1700000000;
	char *a = gcs_jwt_assertion(key, GCS_SCOPE, now);
	ok(a != NULL, "%s", "a JWT assertion is built");
	if (!a)
		return;
	char *d1 = strchr(a, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	ok(d1 && d2 && !strchr(d2 + 1, '.') && !strpbrk(a, "=+/"),
	   "%s", "it is three base64url parts without padding");
	if (!d1 || !d2)
		return;
	/* The public half alone, as a verifier elsewhere would hold it. */
	BIO *mem = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(mem, key->pkey);
	EVP_PKEY *pub = PEM_read_bio_PUBKEY(mem, NULL, NULL, NULL);
	BIO_free(mem);
	size_t sl;
	unsigned char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	int v = pub && EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pub) == 1 &&
		EVP_DigestVerify(mc, sig, sl, (unsigned char *)a, (size_t)(d2 - a)) == 1;
	ok(v, "%s", "its RS256 signature verifies with the key's public half (OpenSSL EVP)");
	/* Tampered claims must not verify. */
	a[d1 - a + 3] ^= 1;
	EVP_MD_CTX_reset(mc);
	int v2 = pub && EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pub) == 1 &&
		 EVP_DigestVerify(mc, sig, sl, (unsigned char *)a, (size_t)(d2 - a)) == 1;
	a[d1 - a + 3] ^= 1;
	ok(!v2, "%s", "a tampered assertion does not verify");
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(pub);
	free(sig);
	size_t hl, cl;
	unsigned char *h = b64url_decode(a, (size_t)(d1 - a), &hl);
	unsigned char *c = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
	json_t *hj = json_loadb((char *)h, hl, 0, NULL), *cj = json_loadb((char *)c, cl, 0, NULL);
	ok(hj && !strcmp(json_string_value(json_object_get(hj, "alg")), "RS256") &&
		   !strcmp(json_string_value(json_object_get(hj, "typ")), "JWT") &&
		   !strcmp(json_string_value(json_object_get(hj, "kid")), key->private_key_id),
	   "%s", "header: alg RS256, typ JWT, kid = private_key_id");
	ok(cj && !strcmp(json_string_value(json_object_get(cj, "iss")), key->client_email) &&
		   !strcmp(json_string_value(json_object_get(cj, "aud")), key->token_uri) &&
		   !strcmp(json_string_value(json_object_get(cj, "scope")), GCS_SCOPE) &&
		   json_integer_value(json_object_get(cj, "iat")) == now &&
		   json_integer_value(json_object_get(cj, "exp")) == now + 3600 &&
		   !json_object_get(cj, "sub"),
	   "%s", "claims: iss = client_email, aud = token_uri, scope, iat, exp = iat+3600, no sub");
	json_decref(hj);
	json_decref(cj);
	free(h);
	free(c);
	free(a);
}

static void crc(void)
{
	struct {
		const char *in;
		uint32_t crc;
		const char *b64;
	} v[] = { { "", 0, "AAAAAA==" },
		  { "123456789", 0xE3069283u, "4waSgw==" },
		  { "The quick brown fox jumps over the lazy dog", 0x22620404u, "ImIEBA==" } };
	for (size_t i = 0; i < 3; i++) {
		uint32_t c = amber_crc32c(0, v[i].in, strlen(v[i].in));
		char b[9];
		amber_crc32c_b64(c, b);
		char what[128];
		snprintf(what, sizeof(what), "CRC32C(\"%s\") = 0x%08X, base64 %s", v[i].in, v[i].crc,
			 v[i].b64);
		ok(c == v[i].crc && !strcmp(b, v[i].b64), "%s", what);
	}
	/* Chaining piece by piece equals the one-shot value (the writer hashes as bytes come). */
	const char *s = "The quick brown fox jumps over the lazy dog";
	uint32_t c = 0;
	for (size_t i = 0; i < strlen(s); i += 5)
		c = amber_crc32c(c, s + i, strlen(s) - i < 5 ? strlen(s) - i : 5);
	ok(c == 0x22620404u, "%s", "CRC32C chained over 5-byte pieces equals the one-shot value");
	char *e = gcs_b64("\xfb\xff", 2, 0), *u = gcs_b64("\xfb\xff", 2, 1);
	ok(e && u && !strcmp(e, "+/8=") && !strcmp(u, "-_8"), "%s",
	   "base64 '+/8=' and base64url '-_8' (no padding) of fb ff");
	free(e);
	free(u);
}

int main(void)
{
	const char *shared = getenv("AMBER_SHARED_DIR");
	char dir[4096], kp[4200], why[512];
	snprintf(dir, sizeof(dir), "%s/vectors/gcs-v4", shared ? shared : "../shared");
	snprintf(kp, sizeof(kp), "%s/test_service_account.not-a-test.json", dir);
	struct gcs_sa_key key;
	int r = gcs_sa_key_load(kp, &key, why, sizeof(why));
	ok(r == 0, "the dummy service-account key loads: %s", r ? why : kp);
	if (r == 0) {
		vectors(dir, &key);
		jwt(&key);
		gcs_sa_key_free(&key);
	}
	/* A bad key file is a clear error, not a crash. */
	struct gcs_sa_key bad;
	r = gcs_sa_key_load("/nonexistent/key.json", &bad, why, sizeof(why));
	ok(r < 0 && strstr(why, "/nonexistent/key.json"), "a missing key file is refused: %s", why);
	crc();
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
