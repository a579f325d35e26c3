/* AWS Signature Version 4; see sigv4.h. */
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "strbuf.h"

const struct sigv4_scheme sigv4_scheme_aws = { "AWS4-HMAC-SHA256", "AWS4", "aws4_request",
						 "X-Amz-", "x-amz-" };
const struct sigv4_scheme sigv4_scheme_goog = { "GOOG4-HMAC-SHA256", "GOOG4", "goog4_request",
						  "X-Goog-", "x-goog-" };
const struct sigv4_scheme sigv4_scheme_goog_rsa = { "GOOG4-RSA-SHA256", "", "goog4_request",
						      "X-Goog-", "x-goog-" };

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -EIO;
	to_hex(md, 32, hex);
	return 0;
}

static int hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int n = 0;
	if (klen > 0x7fffffff ||
	    !HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) ||
	    n != 32)
		return -EIO;
	return 0;
}

/* Path normalisation (RFC 3986 dot-segment removal, plus empty segments dropped), for
 * services other than S3. A trailing '/' is kept. */
static char *normalize_path(const char *path)
{
	size_t len = strlen(path);
	const char **seg = calloc(len / 2 + 2, sizeof(*seg));
	size_t *seglen = calloc(len / 2 + 2, sizeof(*seglen));
	size_t n = 0;
	struct strbuf b = { 0 };

	if (!seg || !seglen) {
		free(seg);
		free(seglen);
		return NULL;
	}
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == 0)
			break;
		if (l == 1 && p[0] == '.') {
			/* nothing */
		} else if (l == 2 && p[0] == '.' && p[1] == '.') {
			if (n)
				n--;
		} else {
			seg[n] = p;
			seglen[n++] = l;
		}
		p += l;
	}
	for (size_t i = 0; i < n; i++) {
		strbuf_putc(&b, '/');
		strbuf_append(&b, seg[i], seglen[i]);
	}
	if (n == 0 || (len > 1 && path[len - 1] == '/'))
		strbuf_putc(&b, '/');
	free(seg);
	free(seglen);
	return strbuf_take(&b);
}

struct pair {
	char *name; /* encoded (query) or lower-cased (headers) */
	char *value;
};

static void pairs_free(struct pair *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

/* Stable insertion sort: duplicate header names must keep the caller's order, and the
 * lists are a dozen entries at most. */
static void sort_pairs(struct pair *p, size_t n, int by_value)
{
	for (size_t i = 1; i < n; i++) {
		struct pair x = p[i];
		size_t j = i;
		while (j > 0) {
			int c = strcmp(p[j - 1].name, x.name);
			if (c == 0 && by_value)
				c = strcmp(p[j - 1].value, x.value);
			if (c <= 0)
				break;
			p[j] = p[j - 1];
			j--;
		}
		p[j] = x;
	}
}

static char *encode(const char *s)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, ""); /* "" rather than NULL for an empty value */
	strbuf_uri_encode(&b, s, strlen(s), 0);
	return strbuf_take(&b);
}

/* Trim, and collapse every run of whitespace (folded lines included) into one space. */
static char *canon_value(const char *v)
{
	struct strbuf b = { 0 };
	int space = 0;
	strbuf_puts(&b, "");
	for (; *v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'; v++)
		;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = 1;
			continue;
		}
		if (space)
			strbuf_putc(&b, ' ');
		space = 0;
		strbuf_putc(&b, *v);
	}
	return strbuf_take(&b);
}

struct extra {
	const char *name, *value;
};

static int build_query(const struct sigv4_request *req, const struct extra *ex, size_t n_ex,
		       char **ret)
{
	size_t n = req->n_query + n_ex;
	struct pair *p = calloc(n ? n : 1, sizeof(*p));
	struct strbuf b = { 0 };
	int rc = -ENOMEM;

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *k = i < req->n_query ? req->query[i].name : ex[i - req->n_query].name;
		const char *v = i < req->n_query ? req->query[i].value : ex[i - req->n_query].value;
		if (!k)
			goto out;
		p[i].name = encode(k);
		p[i].value = encode(v ? v : "");
		if (!p[i].name || !p[i].value)
			goto out;
	}
	sort_pairs(p, n, 1);
	strbuf_puts(&b, "");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&b, "%s%s=%s", i ? "&" : "", p[i].name, p[i].value);
	*ret = strbuf_take(&b);
	rc = *ret ? 0 : -ENOMEM;
out:
	pairs_free(p, n);
	return rc;
}

/* Canonical headers block and signed-headers list. */
static int build_headers(const struct sigv4_request *req, const struct extra *ex, size_t n_ex,
			 struct strbuf *canon, char **ret_signed)
{
	size_t n = req->n_headers + n_ex;
	struct pair *p = calloc(n ? n : 1, sizeof(*p));
	struct strbuf sh = { 0 };
	int rc = -ENOMEM;

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *k = i < req->n_headers ? req->headers[i].name : ex[i - req->n_headers].name;
		const char *v = i < req->n_headers ? req->headers[i].value
						   : ex[i - req->n_headers].value;
		if (!k || !*k) {
			rc = -EINVAL;
			goto out;
		}
		p[i].name = strdup(k);
		p[i].value = canon_value(v ? v : "");
		if (!p[i].name || !p[i].value)
			goto out;
		for (char *c = p[i].name; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	}
	sort_pairs(p, n, 0);
	strbuf_puts(&sh, "");
	for (size_t i = 0; i < n; i++) {
		int dup = i > 0 && strcmp(p[i - 1].name, p[i].name) == 0;
		if (dup) {
			strbuf_printf(canon, ",%s", p[i].value);
			continue;
		}
		if (i > 0)
			strbuf_putc(canon, '\n');
		strbuf_printf(canon, "%s:%s", p[i].name, p[i].value);
		strbuf_printf(&sh, "%s%s", i ? ";" : "", p[i].name);
	}
	strbuf_putc(canon, '\n');
	*ret_signed = strbuf_take(&sh);
	rc = *ret_signed && !strbuf_failed(canon) ? 0 : -ENOMEM;
out:
	pairs_free(p, n);
	return rc;
}

static int sign_common(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		       const struct sigv4_request *req, const struct extra *qex, size_t n_qex,
		       const struct extra *hex_, size_t n_hex, const char *scope,
		       struct sigv4_out *out)
{
	struct strbuf cr = { 0 }, sts = { 0 }, path = { 0 };
	char *query = NULL;
	int rc;

	char *norm = req->normalize ? normalize_path(req->path) : strdup(req->path);
	if (!norm)
		return -ENOMEM;
	strbuf_puts(&path, "");
	strbuf_uri_encode(&path, norm, strlen(norm), 1);
	free(norm);
	out->canonical_uri = strbuf_take(&path);
	if (!out->canonical_uri)
		return -ENOMEM;

	if ((rc = build_query(req, qex, n_qex, &query)) < 0)
		return rc;
	strbuf_printf(&cr, "%s\n%s\n%s\n", req->method, out->canonical_uri, query);
	if ((rc = build_headers(req, hex_, n_hex, &cr, &out->signed_headers)) < 0) {
		free(query);
		strbuf_reset(&cr);
		return rc;
	}
	strbuf_printf(&cr, "\n%s\n%s", out->signed_headers, req->payload_hash);
	out->query = query;
	if (strbuf_failed(&cr))
		return -ENOMEM;

	char crhash[65];
	if ((rc = sigv4_sha256_hex(cr.data, cr.len, crhash)) < 0) {
		strbuf_reset(&cr);
		return rc;
	}
	out->canonical_request = strbuf_take(&cr);
	strbuf_printf(&sts, "%s\n%s\n%s\n%s", s->algorithm, out->date, scope, crhash);
	out->string_to_sign = strbuf_take(&sts);
	if (!out->canonical_request || !out->string_to_sign)
		return -ENOMEM;

	if (c->rsa_pkey) {
		/* GOOG4-RSA-SHA256: the string to sign itself, PKCS#1 v1.5 (deterministic,
		 * which is what makes golden vectors possible). */
		unsigned char sig[512];
		size_t slen = sizeof(sig);
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		int ok = mc && EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, c->rsa_pkey) == 1 &&
			 EVP_DigestSignUpdate(mc, out->string_to_sign, strlen(out->string_to_sign)) == 1 &&
			 EVP_DigestSignFinal(mc, NULL, &slen) == 1 && slen <= sizeof(sig) &&
			 EVP_DigestSignFinal(mc, sig, &slen) == 1;
		EVP_MD_CTX_free(mc);
		if (!ok)
			return -EIO;
		to_hex(sig, slen, out->signature);
		return 0;
	}
	/* The signing key: HMAC chain over date, region, service and terminator. */
	unsigned char k[32];
	char day[9];
	memcpy(day, out->date, 8);
	day[8] = '\0';
	size_t plen = strlen(s->key_prefix), slen = strlen(c->secret_access_key);
	char *k0 = malloc(plen + slen + 1);
	if (!k0)
		return -ENOMEM;
	memcpy(k0, s->key_prefix, plen);
	memcpy(k0 + plen, c->secret_access_key, slen + 1);
	rc = hmac(k0, plen + slen, day, k);
	OPENSSL_cleanse(k0, plen + slen);
	free(k0);
	if (rc == 0)
		rc = hmac(k, 32, c->region, k);
	if (rc == 0)
		rc = hmac(k, 32, c->service, k);
	if (rc == 0)
		rc = hmac(k, 32, s->terminator, k);
	unsigned char sig[32];
	if (rc == 0)
		rc = hmac(k, 32, out->string_to_sign, sig);
	OPENSSL_cleanse(k, sizeof(k));
	if (rc < 0)
		return rc;
	to_hex(sig, 32, out->signature);
	return 0;
}

static int check_args(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		      const struct sigv4_request *req, struct sigv4_out *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!s || !c || !req || !out || !c->access_key_id || (!c->secret_access_key && !c->rsa_pkey) ||
	    !c->region || !c->service || !req->method || !req->path || req->path[0] != '/' ||
	    !req->payload_hash || (req->n_query && !req->query) ||
	    (req->n_headers && !req->headers))
		return -EINVAL;
	struct tm tm;
	if (!gmtime_r(&req->when, &tm) ||
	    strftime(out->date, sizeof(out->date), "%Y%m%dT%H%M%SZ", &tm) != 16)
		return -EINVAL;
	return 0;
}

static char *make_scope(const struct sigv4_scheme *s, const struct sigv4_creds *c,
			const char *date)
{
	struct strbuf b = { 0 };
	strbuf_printf(&b, "%.8s/%s/%s/%s", date, c->region, c->service, s->terminator);
	return strbuf_take(&b);
}

int sigv4_sign_headers(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		       const struct sigv4_request *req, struct sigv4_out *out)
{
	int rc = check_args(s, c, req, out);
	if (rc < 0)
		return rc;
	char date_name[64], token_name[64];
	snprintf(date_name, sizeof(date_name), "%sdate", s->header_prefix);
	snprintf(token_name, sizeof(token_name), "%ssecurity-token", s->header_prefix);
	struct extra hx[2] = { { date_name, out->date }, { token_name, c->session_token } };
	size_t n_hx = c->session_token && *c->session_token ? 2 : 1;

	char *scope = make_scope(s, c, out->date);
	if (!scope)
		return -ENOMEM;
	rc = sign_common(s, c, req, NULL, 0, hx, n_hx, scope, out);
	if (rc == 0) {
		struct strbuf a = { 0 };
		strbuf_printf(&a, "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
			      s->algorithm, c->access_key_id, scope, out->signed_headers,
			      out->signature);
		out->authorization = strbuf_take(&a);
		if (!out->authorization)
			rc = -ENOMEM;
	}
	free(scope);
	if (rc < 0)
		sigv4_out_free(out);
	return rc;
}

int sigv4_presign(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		  const struct sigv4_request *req, uint32_t expires_seconds, struct sigv4_out *out)
{
	int rc = check_args(s, c, req, out);
	if (rc < 0)
		return rc;
	if (expires_seconds == 0)
		return -EINVAL;
	char *scope = make_scope(s, c, out->date);
	struct strbuf cred = { 0 };
	strbuf_printf(&cred, "%s/%s", c->access_key_id, scope ? scope : "");
	char *credential = strbuf_take(&cred);

	/* The signed-headers parameter is part of what is signed, so compute it first from
	 * the request's own headers, in canonical form. */
	struct strbuf tmp = { 0 };
	char *signed_headers = NULL;
	rc = build_headers(req, NULL, 0, &tmp, &signed_headers);
	strbuf_reset(&tmp);
	if (rc == 0 && (!scope || !credential))
		rc = -ENOMEM;
	if (rc < 0) {
		free(scope);
		free(credential);
		free(signed_headers);
		return rc;
	}
	char n_alg[64], n_cred[64], n_date[64], n_exp[64], n_tok[64], n_sh[64], n_sig[64];
	snprintf(n_alg, sizeof(n_alg), "%sAlgorithm", s->param_prefix);
	snprintf(n_cred, sizeof(n_cred), "%sCredential", s->param_prefix);
	snprintf(n_date, sizeof(n_date), "%sDate", s->param_prefix);
	snprintf(n_exp, sizeof(n_exp), "%sExpires", s->param_prefix);
	snprintf(n_tok, sizeof(n_tok), "%sSecurity-Token", s->param_prefix);
	snprintf(n_sh, sizeof(n_sh), "%sSignedHeaders", s->param_prefix);
	snprintf(n_sig, sizeof(n_sig), "%sSignature", s->param_prefix);
	char exp[16];
	snprintf(exp, sizeof(exp), "%u", (unsigned)expires_seconds);
	struct extra qx[6] = {
		{ n_alg, s->algorithm }, { n_cred, credential },   { n_date, out->date },
		{ n_exp, exp },          { n_sh, signed_headers }, { n_tok, c->session_token },
	};
	size_t n_qx = c->session_token && *c->session_token ? 6 : 5;
	rc = sign_common(s, c, req, qx, n_qx, NULL, 0, scope, out);
	if (rc == 0) {
		struct strbuf q = { 0 };
		strbuf_printf(&q, "%s%s%s=%s", out->query, *out->query ? "&" : "", n_sig,
			      out->signature);
		char *full = strbuf_take(&q);
		if (full) {
			free(out->query);
			out->query = full;
		} else {
			rc = -ENOMEM;
		}
	}
	free(scope);
	free(credential);
	free(signed_headers);
	if (rc < 0)
		sigv4_out_free(out);
	return rc;
}

void sigv4_out_free(struct sigv4_out *out)
{
	if (!out)
		return;
	free(out->canonical_uri);
	free(out->canonical_request);
	free(out->string_to_sign);
	free(out->signed_headers);
	free(out->authorization);
	free(out->query);
	out->canonical_uri = out->canonical_request = out->string_to_sign = NULL;
	out->signed_headers = out->authorization = out->query = NULL;
}
