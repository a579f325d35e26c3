#include "hash.h"

#include <errno.h>
#include <stdlib.h>

#include <openssl/evp.h>

struct hash {
	EVP_MD_CTX *sha1;
	EVP_MD_CTX *sha256;
};

int hash_new(struct hash **ret)
{
	struct hash *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->sha1 = EVP_MD_CTX_new();
	h->sha256 = EVP_MD_CTX_new();
	if (!h->sha1 || !h->sha256) {
		hash_free(h);
		return -ENOMEM;
	}
	if (EVP_DigestInit_ex(h->sha1, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestInit_ex(h->sha256, EVP_sha256(), NULL) != 1) {
		hash_free(h);
		return -EIO;
	}
	*ret = h;
	return 0;
}

int hash_update(struct hash *h, const void *buf, size_t len)
{
	if (EVP_DigestUpdate(h->sha1, buf, len) != 1 || EVP_DigestUpdate(h->sha256, buf, len) != 1)
		return -EIO;
	return 0;
}

int hash_update_sha1(struct hash *h, const void *buf, size_t len)
{
	return EVP_DigestUpdate(h->sha1, buf, len) == 1 ? 0 : -EIO;
}

int hash_update_sha256(struct hash *h, const void *buf, size_t len)
{
	return EVP_DigestUpdate(h->sha256, buf, len) == 1 ? 0 : -EIO;
}

int hash_final(struct hash *h, uint8_t sha1[HASH_SHA1_LEN], uint8_t sha256[HASH_SHA256_LEN])
{
	if (EVP_DigestFinal_ex(h->sha1, sha1, NULL) != 1 ||
	    EVP_DigestFinal_ex(h->sha256, sha256, NULL) != 1)
		return -EIO;
	return 0;
}

void hash_free(struct hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->sha1);
	EVP_MD_CTX_free(h->sha256);
	free(h);
}

void hash_hex(const uint8_t *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0xf];
	}
	out[2 * len] = '\0';
}
