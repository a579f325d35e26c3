/* HS256 JSON Web Tokens (RFC 7519 over the JWS compact form of RFC 7515), as the
 * Pterodactyl panel mints them for the node's signed download URL
 * (`GET /download/backup?token=<JWT>`, key = the node token), and as Amber's panel
 * side mints them for a node.
 *
 * Only HS256 exists here on purpose: the key is a shared secret, so a token naming any
 * other algorithm (including "none") is refused rather than interpreted.
 *
 * Error codes of jwt_hs256_verify, chosen so the daemon can map them to HTTP:
 *
 *   -EINVAL        malformed: NULL token, negative leeway, longer than
 *                  JWT_MAX_TOKEN_LEN, not exactly three dot-separated segments, a byte
 *                  outside the base64url alphabet (padding '=', '+', '/', NUL, ...),
 *                  non-canonical base64url, a header or (once the signature holds) a
 *                  payload that is not a JSON object, duplicate JSON keys.   → 401
 *   -EPROTO        the header's "alg" is missing or is not exactly "HS256" ("none",
 *                  "HS512", "RS256", "hs256", ...), or the header has "crit": we
 *                  implement no JWS extensions.                               → 401
 *   -EACCES        the signature is not HMAC-SHA256(key, header "." payload):
 *                  forged, tampered with, or signed with another key.         → 403
 *   -EBADMSG       signed by the key, but our policy refuses the claims: "exp" is
 *                  missing or not a number (downloads must expire), or "nbf" is
 *                  present and not a number.                                  → 401
 *   -EKEYEXPIRED   now > exp + leeway.                                        → 401
 *   -EKEYREJECTED  not yet valid: now < nbf - leeway.                         → 401
 *   -ENOKEY        the key is NULL or empty: a configuration error, since an empty
 *                  HMAC key would let anyone mint tokens.                     → 500
 *   -ENOMEM, -EIO  allocation failure, OpenSSL failure.                       → 500
 *
 * The checks run in that order (shape, alg, signature, claims), so nothing in the
 * payload is trusted, nor even parsed, before the signature has been verified.
 *
 * Time: a token is valid while now <= exp (integer seconds, as Wings has it: floor(now)
 * <= exp), and from nbf on. "exp"/"nbf" may be integers or reals (RFC 7519 NumericDate).
 * "iat" is not checked: the panel sets nbf five minutes in the past to absorb clock
 * skew, and refusing an iat slightly in the future would undo that. "iss", "aud", "jti"
 * and "typ" are left to the caller. */
#ifndef AMBER_JWT_H
#define AMBER_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Tokens longer than this are refused before any decoding. A panel download token is
 * about 600 bytes. */
#define JWT_MAX_TOKEN_LEN 8192

/* Signs claims (a JSON object, serialized compactly in its own key order) under the
 * header {"alg":"HS256","typ":"JWT"}; base64url without padding. *ret_token is a NUL-
 * terminated string the caller frees. 0, or -EINVAL (claims not an object, NULL
 * argument), -ENOKEY (empty key), -E2BIG (the token would exceed JWT_MAX_TOKEN_LEN,
 * so verify would refuse it), -ENOMEM, -EIO. */
int jwt_hs256_sign(const json_t *claims, const void *key, size_t key_len, char **ret_token);

/* Verifies a NUL-terminated token at time now (Unix seconds), allowing leeway_s
 * (>= 0) seconds of clock skew on exp and nbf. On success *ret_claims (if ret_claims is
 * not NULL) gets the payload object, which the caller releases with json_decref; on
 * failure it is set to NULL. Codes: see above. */
int jwt_hs256_verify(const char *token, const void *key, size_t key_len, int64_t now,
		     int64_t leeway_s, json_t **ret_claims);

/* The same for a token of token_len bytes, for callers that know the length (e.g. a
 * percent-decoded query value): an embedded NUL is then seen and refused (-EINVAL)
 * rather than silently ending the token. */
int jwt_hs256_verify_n(const char *token, size_t token_len, const void *key, size_t key_len,
		       int64_t now, int64_t leeway_s, json_t **ret_claims);

/* A string claim of verified claims, e.g. "server_uuid". *ret points into claims.
 * 0, -ENOENT (absent), -EINVAL (not a string, or holds a NUL byte, which would
 * truncate it where it is used as a C string). */
int jwt_claim_string(const json_t *claims, const char *name, const char **ret);

#endif
