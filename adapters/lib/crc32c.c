#include "crc32c.h"

#include <isa-l/crc.h>
#include <openssl/evp.h>

uint32_t amber_crc32c(uint32_t crc, const void *data, size_t len)
{
	/* ISA-L's crc32_iscsi takes and returns the raw register (no final XOR, and the
	 * seed is used as is), so the standard convention (init and xorout 0xFFFFFFFF)
	 * is applied around it; chaining then works on standard values. */
	const unsigned char *p = data;
	uint32_t reg = ~crc;
	while (len > 0) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;
		reg = crc32_iscsi((unsigned char *)p, n, reg);
		p += n;
		len -= (size_t)n;
	}
	return ~reg;
}

void amber_crc32c_b64(uint32_t crc, char out[9])
{
	unsigned char be[4] = { (unsigned char)(crc >> 24), (unsigned char)(crc >> 16),
				(unsigned char)(crc >> 8), (unsigned char)crc };
	EVP_EncodeBlock((unsigned char *)out, be, 4);
}
