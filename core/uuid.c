#include "uuid.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

bool uuid_normalize(const char *in, char out[UUID_LEN + 1])
{
	if (!in || strlen(in) != UUID_LEN)
		return false;
	for (int i = 0; i < UUID_LEN; i++) {
		unsigned char c = (unsigned char)in[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!isxdigit(c)) {
			return false;
		}
		if (out)
			out[i] = (char)tolower(c);
	}
	if (out)
		out[UUID_LEN] = 0;
	return true;
}

bool uuid_is_canonical(const char *s)
{
	return uuid_normalize(s, NULL);
}

int uuid_v4_generate(char out[UUID_LEN + 1])
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char *o = out;
	for (size_t i = 0; i < sizeof(b); i++)
		o += sprintf(o, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", b[i]);
	return 0;
}
