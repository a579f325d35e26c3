// The public header is usable from C++.
#include <amber/adapter.h>

int amber_headertest_cpp();
int amber_headertest_cpp()
{
	amber_object_info info = {};
	info.struct_size = sizeof(info);
	return AMBER_HAS(&info, amber_object_info, sha1) ? AMBER_ABI_MAJOR : 0;
}
