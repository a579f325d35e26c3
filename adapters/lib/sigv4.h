/*
 * sigv4: AWS Signature Version 4 (and Google's V4 HMAC variant, which differs only in
 * names) on OpenSSL, for the remote-store adapters.
 *
 * Inputs are unencoded: the path and query names/values are the bytes the caller means,
 * and the signer applies AWS's URI encoding itself, once. The same encoded strings must
 * then be put on the wire: sigv4_out gives them back (canonical_uri, query) so a caller
 * never encodes twice or differently.
 *
 * Functions return 0 or a negative errno (-EINVAL, -ENOMEM, -EIO from OpenSSL).
 */
#ifndef AMBER_ADAPTERS_SIGV4_H
#define AMBER_ADAPTERS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The names that differ between AWS and Google's HMAC scheme. */
struct sigv4_scheme {
	const char *algorithm;     /* "AWS4-HMAC-SHA256" */
	const char *key_prefix;    /* prepended to the secret: "AWS4" */
	const char *terminator;    /* last scope element: "aws4_request" */
	const char *param_prefix;  /* presigned query parameters: "X-Amz-" */
	const char *header_prefix; /* date and token headers: "x-amz-" */
};

extern const struct sigv4_scheme sigv4_scheme_aws;
extern const struct sigv4_scheme sigv4_scheme_goog;
/* Google's V4 with a service account's RSA key (set creds.rsa_pkey). */
extern const struct sigv4_scheme sigv4_scheme_goog_rsa;

struct sigv4_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL or "" for none */
	const char *region;
	const char *service; /* "s3" */
	/* An EVP_PKEY * (RSA): sign with RSASSA-PKCS1-v1_5 SHA-256 instead of the HMAC chain,
	 * as GOOG4-RSA-SHA256 does (no key derivation; secret_access_key unused). NULL: HMAC. */
	void *rsa_pkey;
};

struct sigv4_kv {
	const char *name;
	const char *value; /* NULL: a query key without '=' (signed as "name=") */
};

struct sigv4_request {
	const char *method;
	const char *path; /* unencoded, starting with '/' */
	const struct sigv4_kv *query;
	size_t n_query;
	/* Headers that will be sent and signed (Host at least). Names in any case; a name
	 * given twice is signed as one header with the values joined by ','. Values are
	 * trimmed and runs of whitespace (line folds included) collapse to one space. */
	const struct sigv4_kv *headers;
	size_t n_headers;
	const char *payload_hash; /* lower-case hex SHA-256, or "UNSIGNED-PAYLOAD" */
	/* Remove "." / ".." segments and empty segments from the path before encoding, as
	 * most AWS services expect. S3 wants neither: its keys are taken literally. */
	int normalize;
	time_t when; /* signing time, UTC */
};

struct sigv4_out {
	char date[17];           /* "20150830T123600Z", the x-amz-date value */
	char signature[1025];    /* lower-case hex (512 digits for RSA-2048, up to 4096-bit keys) */
	char *canonical_uri;     /* encoded path: what goes on the wire */
	char *canonical_request; /* for tests and debugging */
	char *string_to_sign;
	char *signed_headers; /* "host;x-amz-date" */
	/* sigv4_sign_headers: the Authorization header value (without "Authorization: ").
	 * The caller sends <header_prefix>date: date, and the session token header when it
	 * set one, besides its own headers. */
	char *authorization;
	/* Both modes: the encoded, sorted query string to put after '?' ("" when none).
	 * sigv4_presign: includes every auth parameter, Signature last. */
	char *query;
};

/* Header signing. The date header (and the security-token header when a token is set)
 * are added to the signed headers; the caller must send them too. */
int sigv4_sign_headers(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		       const struct sigv4_request *req, struct sigv4_out *out);

/* Query-string presigning, valid for expires_seconds (the caller bounds it: S3 allows at
 * most 604800). No date header is added; the signed headers are the request's. */
int sigv4_presign(const struct sigv4_scheme *s, const struct sigv4_creds *c,
		  const struct sigv4_request *req, uint32_t expires_seconds, struct sigv4_out *out);

void sigv4_out_free(struct sigv4_out *out);

/* Lower-case hex SHA-256 of data into hex[65]. */
int sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

/* The empty payload's hash, for bodiless requests. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#endif
