/* The public header compiles alone, as strict C11 with every warning. */
#include <amber/adapter.h>

int amber_headertest(void);
int amber_headertest(void)
{
	return AMBER_ABI_MAJOR;
}
