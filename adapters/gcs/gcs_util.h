/*
 * Pure helpers of the gcs adapter, kept apart from the HTTP code so the tests can link
 * them alone: CRC32C, base64, the service-account key file, JWT assembly, V4 signed
 * URLs (GET and the resumable-upload initiation POST).
 */
#ifndef AMBER_GCS_UTIL_H
#define AMBER_GCS_UTIL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "crc32c.h" /* amber_crc32c, amber_crc32c_b64 (lib/) */

/* Standard base64 (with padding) or base64url (no padding); malloc'd, NULL on OOM. */
char *gcs_b64(const void *data, size_t len, int url);

/* A service-account key file. */
struct gcs_sa_key {
	char *client_email;
	char *private_key_id; /* NULL when absent */
	char *token_uri;      /* the file's, or Google's default */
	EVP_PKEY *pkey;
};
/* Loads and checks the file; on failure returns a negative errno-style code and writes
 * a one-line reason into why. */
int gcs_sa_key_load(const char *path, struct gcs_sa_key *k, char *why, size_t why_len);
void gcs_sa_key_free(struct gcs_sa_key *k);

#define GCS_SCOPE "https://www.googleapis.com/auth/devstorage.read_write"

/* The RS256 JWT for the OAuth2 JWT-bearer grant (iss, scope, aud = token_uri, iat, exp =
 * iat + 3600); malloc'd, NULL on failure. */
char *gcs_jwt_assertion(const struct gcs_sa_key *k, const char *scope, time_t now);

/* Percent-encoding per the spec: the JSON API path segment and query values encode
 * everything but A-Za-z0-9-._~ ('/' too); the XML path keeps the '/' between segments. */
char *gcs_enc_json(const char *s);
char *gcs_enc_xml_path(const char *s);

/* A V4 signed URL: method on "/<bucket>/<object>" (path style) at base_url
 * ("https://storage.googleapis.com"), signed with the RSA key (pkey non-NULL: the
 * credential is client_email) or HMAC (access_id/secret). Extra signed headers may be
 * given as name/value pairs (host is always signed). Returns the malloc'd URL or NULL
 * (why filled). expires in 1..604800. */
struct gcs_sign_req {
	const char *base_url; /* scheme://host[:port], no trailing slash */
	const char *method;
	const char *bucket; /* NULL: the bucket is in base_url's host; the path is the object */
	const char *object; /* NULL: the bucket itself */
	const char *const *headers; /* name, value, name, value, ... (extra signed headers) */
	size_t n_headers;           /* pairs */
	const char *const *query;   /* extra query parameters, name/value pairs */
	size_t n_query;
	uint32_t expires;
	time_t when;
	/* credentials: RSA or HMAC */
	EVP_PKEY *pkey;
	const char *client_email;
	const char *access_id;
	const char *secret;
	const char *payload; /* NULL: UNSIGNED-PAYLOAD */
};
char *gcs_sign_url(const struct gcs_sign_req *r, char *why, size_t why_len);

/* A signed resumable-upload initiation: POST with the signed header
 * "x-goog-resumable: start" (besides r's), which whoever uses the URL must send; it
 * answers 201 + Location (the session URI, then used without credentials). r->method
 * is ignored. Not reachable through the adapter ABI (1.0 has no presign for it); kept
 * here for the host's remote API once it grows one. */
char *gcs_sign_resumable_url(const struct gcs_sign_req *r, char *why, size_t why_len);

/* The Host header clients send for base_url: default ports (:443, :80) left out. */
char *gcs_host_of(const char *base_url);

#endif
