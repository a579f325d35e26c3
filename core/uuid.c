#include "uuid.h"

#include <ctype.h>
#include <string.h>

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
