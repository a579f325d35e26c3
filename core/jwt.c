/* HS256 JWTs: see jwt.h for the contract and the error codes. */
#include "jwt.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define HS256_LEN 32

/* base64url of {"alg":"HS256","typ":"JWT"}; fixed, so it is written out once. */
static const char SIGN_HEADER_B64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* The 6-bit value of a base64url character, or -1 for anything else ('=' included:
 * JWS forbids padding). */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Unpadded base64url of len bytes, NUL-terminated, into a new string. OpenSSL writes
 * standard padded base64; the alphabet is then swapped and the padding cut. */
static int b64url_encode(const void *data, size_t len, char **ret)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return -E2BIG;
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);
	if (!out)
		return -ENOMEM;
	int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	if (n < 0) {
		free(out);
		return -EIO;
	}
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = 0;
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	*ret = out;
	return 0;
}

/* Decodes len characters of unpadded base64url into out (room for len * 3 / 4 bytes).
 * Strict: only the base64url alphabet, no padding, no length that leaves a lone
 * character, and the unused low bits of the last character must be zero, so that
 * every byte string has exactly one accepted encoding (no malleable signatures).
 * OpenSSL decodes each group of four after it is turned into standard base64. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t *ret_len)
{
	size_t rem = len % 4;
	if (rem == 1)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (b64url_value((unsigned char)in[i]) < 0)
			return -EINVAL;
	if (rem != 0) {
		int last = b64url_value((unsigned char)in[len - 1]);
		int unused = rem == 2 ? 0x0f : 0x03;
		if (last & unused)
			return -EINVAL;
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		unsigned char quad[4] = { '=', '=', '=', '=' };
		size_t n = len - i < 4 ? len - i : 4;
		for (size_t j = 0; j < n; j++) {
			char c = in[i + j];
			quad[j] = c == '-' ? '+' : c == '_' ? '/' : (unsigned char)c;
		}
		unsigned char three[3];
		if (EVP_DecodeBlock(three, quad, 4) != 3)
			return -EINVAL;
		/* A group of n characters carries n - 1 bytes (n = 2..4). */
		memcpy(out + o, three, n - 1);
		o += n - 1;
	}
	*ret_len = o;
	return 0;
}

static int hs256(const void *key, size_t key_len, const char *data, size_t len,
		 unsigned char mac[HS256_LEN])
{
	if (key_len > INT_MAX)
		return -EINVAL;
	unsigned int mac_len = 0;
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, mac,
		  &mac_len) ||
	    mac_len != HS256_LEN)
		return -EIO;
	return 0;
}

int jwt_hs256_sign(const json_t *claims, const void *key, size_t key_len, char **ret_token)
{
	if (!ret_token)
		return -EINVAL;
	*ret_token = NULL;
	if (!json_is_object(claims))
		return -EINVAL;
	if (!key || key_len == 0)
		return -ENOKEY;

	char *payload_json = json_dumps(claims, JSON_COMPACT);
	if (!payload_json)
		return -ENOMEM;
	char *payload = NULL;
	int r = b64url_encode(payload_json, strlen(payload_json), &payload);
	free(payload_json);
	if (r < 0)
		return r;

	size_t hlen = sizeof(SIGN_HEADER_B64) - 1, plen = strlen(payload);
	/* header "." payload "." 43-character signature */
	size_t total = hlen + 1 + plen + 1 + (4 * HS256_LEN + 2) / 3;
	if (total > JWT_MAX_TOKEN_LEN) {
		free(payload);
		return -E2BIG;
	}
	char *token = malloc(total + 1);
	if (!token) {
		free(payload);
		return -ENOMEM;
	}
	memcpy(token, SIGN_HEADER_B64, hlen);
	token[hlen] = '.';
	memcpy(token + hlen + 1, payload, plen);
	free(payload);
	size_t signing_len = hlen + 1 + plen;

	unsigned char mac[HS256_LEN];
	char *sig = NULL;
	r = hs256(key, key_len, token, signing_len, mac);
	if (r == 0)
		r = b64url_encode(mac, sizeof(mac), &sig);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (r < 0) {
		free(token);
		return r;
	}
	token[signing_len] = '.';
	memcpy(token + signing_len + 1, sig, strlen(sig) + 1);
	free(sig);
	*ret_token = token;
	return 0;
}

/* The header must be an object naming exactly HS256 and asking for no extension. */
static int check_header(const unsigned char *json, size_t len)
{
	json_t *h = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(h)) {
		json_decref(h);
		return -EINVAL;
	}
	const json_t *alg = json_object_get(h, "alg");
	int r = 0;
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0 ||
	    json_object_get(h, "crit"))
		r = -EPROTO;
	json_decref(h);
	return r;
}

/* Whether now lies more than leeway seconds after t. The integer path subtracts in
 * uint64_t so that no (int64) pair can overflow; jansson never yields a non-finite
 * real, so the real path needs no such care. */
static bool after_by_more(int64_t now, const json_t *t, int64_t leeway)
{
	if (json_is_integer(t)) {
		int64_t v = json_integer_value(t);
		return v < now && (uint64_t)now - (uint64_t)v > (uint64_t)leeway;
	}
	return (double)now - json_real_value(t) > (double)leeway;
}

static bool before_by_more(int64_t now, const json_t *t, int64_t leeway)
{
	if (json_is_integer(t)) {
		int64_t v = json_integer_value(t);
		return v > now && (uint64_t)v - (uint64_t)now > (uint64_t)leeway;
	}
	return json_real_value(t) - (double)now > (double)leeway;
}

static int check_times(const json_t *claims, int64_t now, int64_t leeway)
{
	const json_t *exp = json_object_get(claims, "exp");
	const json_t *nbf = json_object_get(claims, "nbf");
	if (!json_is_number(exp) || (nbf && !json_is_number(nbf)))
		return -EBADMSG;
	if (after_by_more(now, exp, leeway))
		return -EKEYEXPIRED;
	if (nbf && before_by_more(now, nbf, leeway))
		return -EKEYREJECTED;
	return 0;
}

int jwt_hs256_verify_n(const char *token, size_t token_len, const void *key, size_t key_len,
		       int64_t now, int64_t leeway_s, json_t **ret_claims)
{
	if (ret_claims)
		*ret_claims = NULL;
	if (!key || key_len == 0)
		return -ENOKEY;
	if (!token || leeway_s < 0 || token_len > JWT_MAX_TOKEN_LEN)
		return -EINVAL;

	size_t dots[2], ndots = 0;
	for (size_t i = 0; i < token_len; i++) {
		if (token[i] != '.')
			continue;
		if (ndots == 2)
			return -EINVAL;
		dots[ndots++] = i;
	}
	if (ndots != 2)
		return -EINVAL;
	const char *seg[3] = { token, token + dots[0] + 1, token + dots[1] + 1 };
	size_t seg_len[3] = { dots[0], dots[1] - dots[0] - 1, token_len - dots[1] - 1 };

	/* All three segments are decoded before anything is judged, so that any token
	 * that is not well-formed base64url is -EINVAL whatever else is wrong with it.
	 * Each decodes to at most 3/4 of its length: one buffer of token_len holds them. */
	unsigned char *buf = malloc(token_len + 1);
	if (!buf)
		return -ENOMEM;
	unsigned char *dec[3];
	size_t dec_len[3];
	size_t off = 0;
	int r = 0;
	for (int i = 0; i < 3 && r == 0; i++) {
		dec[i] = buf + off;
		r = b64url_decode(seg[i], seg_len[i], dec[i], &dec_len[i]);
		off += dec_len[i];
	}
	if (r == 0)
		r = check_header(dec[0], dec_len[0]);
	if (r == 0) {
		unsigned char mac[HS256_LEN];
		/* The signing input is the token's own text up to the second dot. */
		r = hs256(key, key_len, token, dots[1], mac);
		/* The length is public (it is in the token); the bytes are compared in
		 * constant time so that a forger learns nothing from timing. */
		if (r == 0 && (dec_len[2] != HS256_LEN || CRYPTO_memcmp(mac, dec[2], HS256_LEN) != 0))
			r = -EACCES;
		OPENSSL_cleanse(mac, sizeof(mac));
	}
	json_t *claims = NULL;
	if (r == 0) {
		claims = json_loadb((const char *)dec[1], dec_len[1], JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(claims))
			r = -EINVAL;
	}
	free(buf);
	if (r == 0)
		r = check_times(claims, now, leeway_s);
	if (r < 0 || !ret_claims)
		json_decref(claims);
	else
		*ret_claims = claims;
	return r;
}

int jwt_hs256_verify(const char *token, const void *key, size_t key_len, int64_t now,
		     int64_t leeway_s, json_t **ret_claims)
{
	if (ret_claims)
		*ret_claims = NULL;
	if (!token)
		return key && key_len ? -EINVAL : -ENOKEY;
	/* strnlen: a huge string is refused without reading all of it. */
	return jwt_hs256_verify_n(token, strnlen(token, JWT_MAX_TOKEN_LEN + 1), key, key_len,
				  now, leeway_s, ret_claims);
}

int jwt_claim_string(const json_t *claims, const char *name, const char **ret)
{
	const json_t *v = json_object_get(claims, name);
	if (!v)
		return -ENOENT;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return -EINVAL;
	*ret = json_string_value(v);
	return 0;
}
