/* SHA-1 and SHA-256 of one byte stream, computed side by side: the protocol reports
 * both (`checksum` is sha1, `sha256_hash`) for the same compressed archive. */
#ifndef AMBER_HASH_H
#define AMBER_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SHA1_LEN 20
#define HASH_SHA256_LEN 32

struct hash;

/* 0 or -ENOMEM / -EIO (OpenSSL refused the digest). */
int hash_new(struct hash **ret);
int hash_update(struct hash *h, const void *buf, size_t len);
/* One digest at a time, so two threads can each feed one of them (never the same one
 * from two threads at once). */
int hash_update_sha1(struct hash *h, const void *buf, size_t len);
int hash_update_sha256(struct hash *h, const void *buf, size_t len);
/* Finishes both digests; h cannot be updated afterwards. */
int hash_final(struct hash *h, uint8_t sha1[HASH_SHA1_LEN], uint8_t sha256[HASH_SHA256_LEN]);
void hash_free(struct hash *h);

/* Lower-case hex of len bytes into out, which must hold 2 * len + 1 chars. */
void hash_hex(const uint8_t *bytes, size_t len, char *out);

#endif
