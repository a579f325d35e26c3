/* Pure helpers of the gcs adapter; see gcs_util.h. */
#include "gcs_util.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"
#include "strbuf.h"

char *gcs_b64(const void *data, size_t len, int url)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (!out)
		return NULL;
	int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	if (url) {
		for (int i = 0; i < n; i++)
			if (out[i] == '+')
				out[i] = '-';
			else if (out[i] == '/')
				out[i] = '_';
		while (n > 0 && out[n - 1] == '=')
			out[--n] = '\0';
	}
	return out;
}

void gcs_sa_key_free(struct gcs_sa_key *k)
{
	free(k->client_email);
	free(k->private_key_id);
	free(k->token_uri);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

int gcs_sa_key_load(const char *path, struct gcs_sa_key *k, char *why, size_t why_len)
{
	memset(k, 0, sizeof(*k));
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root) {
		snprintf(why, why_len, "credentials_file %s: %s (line %d)", path, je.text, je.line);
		return -EINVAL;
	}
	const char *type = json_string_value(json_object_get(root, "type"));
	const char *email = json_string_value(json_object_get(root, "client_email"));
	const char *pem = json_string_value(json_object_get(root, "private_key"));
	const char *kid = json_string_value(json_object_get(root, "private_key_id"));
	const char *turi = json_string_value(json_object_get(root, "token_uri"));
	int rc = -EINVAL;
	if (type && strcmp(type, "service_account") != 0) {
		snprintf(why, why_len, "credentials_file %s: type is \"%s\", not a service-account key",
			 path, type);
		goto out;
	}
	if (!email || !*email || !pem || !*pem) {
		snprintf(why, why_len, "credentials_file %s: client_email or private_key missing", path);
		goto out;
	}
	/* jansson has already turned the JSON "\n" escapes into newlines. */
	BIO *bio = BIO_new_mem_buf(pem, -1);
	k->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!k->pkey || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
		snprintf(why, why_len, "credentials_file %s: private_key is not a readable RSA PEM key",
			 path);
		goto out;
	}
	k->client_email = strdup(email);
	k->private_key_id = kid && *kid ? strdup(kid) : NULL;
	k->token_uri = strdup(turi && *turi ? turi : "https://oauth2.googleapis.com/token");
	if (!k->client_email || !k->token_uri || (kid && *kid && !k->private_key_id)) {
		snprintf(why, why_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		gcs_sa_key_free(k);
	return rc;
}

static int rsa_sign(EVP_PKEY *pkey, const void *msg, size_t len, unsigned char **ret,
		    size_t *ret_len)
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	size_t sl = 0;
	unsigned char *sig = NULL;
	int ok = mc && EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, pkey) == 1 &&
		 EVP_DigestSignUpdate(mc, msg, len) == 1 && EVP_DigestSignFinal(mc, NULL, &sl) == 1 &&
		 (sig = malloc(sl)) != NULL && EVP_DigestSignFinal(mc, sig, &sl) == 1;
	EVP_MD_CTX_free(mc);
	if (!ok) {
		free(sig);
		return -EIO;
	}
	*ret = sig;
	*ret_len = sl;
	return 0;
}

char *gcs_jwt_assertion(const struct gcs_sa_key *k, const char *scope, time_t now)
{
	json_t *hdr = k->private_key_id
			      ? json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid",
					  k->private_key_id)
			      : json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	json_t *cl = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", k->client_email, "scope", scope,
			       "aud", k->token_uri, "iat", (json_int_t)now, "exp",
			       (json_int_t)now + 3600);
	char *h = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char *c = cl ? json_dumps(cl, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(hdr);
	json_decref(cl);
	char *hb = h ? gcs_b64(h, strlen(h), 1) : NULL;
	char *cb = c ? gcs_b64(c, strlen(c), 1) : NULL;
	free(h);
	free(c);
	struct strbuf b = { 0 };
	char *out = NULL;
	if (hb && cb) {
		strbuf_printf(&b, "%s.%s", hb, cb);
		unsigned char *sig = NULL;
		size_t sl = 0;
		if (!strbuf_failed(&b) && rsa_sign(k->pkey, b.data, b.len, &sig, &sl) == 0) {
			char *sb = gcs_b64(sig, sl, 1);
			free(sig);
			if (sb) {
				strbuf_printf(&b, ".%s", sb);
				free(sb);
				out = strbuf_take(&b);
			}
		}
	}
	strbuf_reset(&b);
	free(hb);
	free(cb);
	return out;
}

char *gcs_enc_json(const char *s)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "");
	strbuf_uri_encode(&b, s, strlen(s), 0);
	return strbuf_take(&b);
}

char *gcs_enc_xml_path(const char *s)
{
	struct strbuf b = { 0 };
	strbuf_puts(&b, "");
	strbuf_uri_encode(&b, s, strlen(s), 1);
	return strbuf_take(&b);
}

char *gcs_host_of(const char *base_url)
{
	const char *p = strstr(base_url, "://");
	if (!p)
		return NULL;
	int https = !strncmp(base_url, "https://", 8);
	p += 3;
	size_t l = strcspn(p, "/?");
	if (https && l > 4 && !strncmp(p + l - 4, ":443", 4))
		l -= 4;
	else if (!https && l > 3 && !strncmp(p + l - 3, ":80", 3))
		l -= 3;
	return strndup(p, l);
}

char *gcs_sign_url(const struct gcs_sign_req *r, char *why, size_t why_len)
{
	if (r->expires < 1 || r->expires > 604800) {
		snprintf(why, why_len, "expiry must be 1 to 604800 seconds");
		return NULL;
	}
	char *host = gcs_host_of(r->base_url);
	struct strbuf path = { 0 };
	if (r->bucket)
		strbuf_printf(&path, "/%s%s%s", r->bucket, r->object ? "/" : "",
			      r->object ? r->object : "");
	else /* the bucket is in the host (virtual-hosted style, bucket-bound domain) */
		strbuf_printf(&path, "/%s", r->object ? r->object : "");
	struct sigv4_kv h[17], q[16];
	size_t nh = 0, nq = 0;
	if (r->n_headers > 16 || r->n_query > 16 || !host || strbuf_failed(&path)) {
		snprintf(why, why_len, "too many headers or parameters, or out of memory");
		free(host);
		strbuf_reset(&path);
		return NULL;
	}
	h[nh++] = (struct sigv4_kv){ "host", host };
	for (size_t i = 0; i < r->n_headers; i++)
		h[nh++] = (struct sigv4_kv){ r->headers[2 * i], r->headers[2 * i + 1] };
	for (size_t i = 0; i < r->n_query; i++)
		q[nq++] = (struct sigv4_kv){ r->query[2 * i], r->query[2 * i + 1] };
	struct sigv4_creds c = { .access_key_id = r->pkey ? r->client_email : r->access_id,
				 .secret_access_key = r->pkey ? NULL : r->secret,
				 .region = "auto", .service = "storage", .rsa_pkey = r->pkey };
	struct sigv4_request sr = { .method = r->method, .path = path.data, .query = q,
				    .n_query = nq, .headers = h, .n_headers = nh,
				    .payload_hash = r->payload ? r->payload : "UNSIGNED-PAYLOAD",
				    .normalize = 0, .when = r->when };
	struct sigv4_out so;
	int rc = sigv4_presign(r->pkey ? &sigv4_scheme_goog_rsa : &sigv4_scheme_goog, &c, &sr,
			       r->expires, &so);
	free(host);
	strbuf_reset(&path);
	if (rc < 0) {
		snprintf(why, why_len, "cannot sign the URL (%d)", rc);
		return NULL;
	}
	struct strbuf u = { 0 };
	strbuf_printf(&u, "%s%s?%s", r->base_url, so.canonical_uri, so.query);
	sigv4_out_free(&so);
	char *out = strbuf_take(&u);
	if (!out)
		snprintf(why, why_len, "out of memory");
	return out;
}

char *gcs_sign_resumable_url(const struct gcs_sign_req *base, char *why, size_t why_len)
{
	struct gcs_sign_req r = *base;
	const char *h[2 * 17];
	if (base->n_headers > 15) {
		snprintf(why, why_len, "too many headers");
		return NULL;
	}
	for (size_t i = 0; i < 2 * base->n_headers; i++)
		h[i] = base->headers[i];
	h[2 * base->n_headers] = "x-goog-resumable";
	h[2 * base->n_headers + 1] = "start";
	r.headers = h;
	r.n_headers = base->n_headers + 1;
	r.method = "POST";
	return gcs_sign_url(&r, why, why_len);
}
