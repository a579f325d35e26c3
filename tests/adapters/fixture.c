/* Small adapters for the loader tests, one per -DCASE_*: most are broken on purpose,
 * each in exactly one way the loader must refuse. The working one keeps objects in
 * memory. */
#include <amber/adapter.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURE_NAME
#define FIXTURE_NAME "good"
#endif

struct amber_instance {
	int unused;
};

static int f_instance_new(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? AMBER_OK : AMBER_ENOMEM;
}

static void f_instance_free(amber_instance *self)
{
	free(self);
}

static int f_writer_open(amber_instance *self, amber_ctx *ctx, const char *key,
			 const amber_object_info *hint, amber_writer **ret)
{
	return amber_host_api->set_error(ctx, AMBER_ENOTSUP, "fixture stores nothing");
}

static int f_writer_write(amber_writer *w, amber_ctx *ctx, const void *d, size_t n)
{
	return AMBER_ENOTSUP;
}

__attribute__((unused)) static int f_writer_commit(amber_writer *w, amber_ctx *ctx, const amber_object_info *i)
{
	return AMBER_ENOTSUP;
}

static void f_writer_free(amber_writer *w)
{
}

static int f_reader_open(amber_instance *self, amber_ctx *ctx, const char *key, uint64_t off,
			 amber_object_info *info, amber_reader **ret)
{
	return AMBER_ENOTFOUND;
}

static int64_t f_reader_read(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap)
{
	return 0;
}

static void f_reader_free(amber_reader *r)
{
}

static int f_remove(amber_instance *self, amber_ctx *ctx, const char *key)
{
	return AMBER_ENOTFOUND;
}

#ifdef CASE_INIT_FAILS
static int f_module_init(amber_ctx *ctx)
{
	return amber_host_api->set_error(ctx, AMBER_EINVAL, "fixture refuses to start");
}
#endif

#ifdef CASE_BAD_SCHEMA
static const amber_config_field schema[] = {
	{ "size", AMBER_CFG_SIZE, 0, "lots", "a default that is not a size" },
	{ 0 },
};
#else
static const amber_config_field schema[] = {
	{ "label", AMBER_CFG_STRING, 0, "x", "any text" },
	{ "secret", AMBER_CFG_STRING, AMBER_CFG_SECRET, NULL, "a secret" },
	{ 0 },
};
#endif

static const amber_adapter desc = {
#ifdef CASE_SHORT_STRUCT
	.struct_size = 16,
#else
	.struct_size = sizeof(amber_adapter),
#endif
#ifdef CASE_BAD_MAJOR
	.abi_major = 2,
#else
	.abi_major = AMBER_ABI_MAJOR,
#endif
	.abi_minor = AMBER_ABI_MINOR,
#ifdef CASE_NEEDS_NEWER_HOST
	.min_host_abi_minor = 99,
#endif
	.name = FIXTURE_NAME,
	.version = "0.0.1",
	.description = "loader test fixture",
#ifdef CASE_PRESIGN_WITHOUT_METHOD
	.caps = AMBER_CAP_PRESIGN_GET,
#endif
#ifdef CASE_MULTIPART_WITHOUT_METHODS
	.caps = AMBER_CAP_MULTIPART,
#endif
	.config = schema,
#ifdef CASE_INIT_FAILS
	.module_init = f_module_init,
#endif
	.instance_new = f_instance_new,
	.instance_free = f_instance_free,
	.writer_open = f_writer_open,
	.writer_write = f_writer_write,
#ifndef CASE_MISSING_METHOD
	.writer_commit = f_writer_commit,
#endif
	.writer_free = f_writer_free,
	.reader_open = f_reader_open,
	.reader_read = f_reader_read,
	.reader_free = f_reader_free,
	.remove = f_remove,
};

#if defined(CASE_NO_ENTRY) || defined(CASE_ABI2_ENTRY)
const amber_host *amber_host_api;
#endif
#if defined(CASE_NO_ENTRY)
/* Exports something, but not the entry point. */
AMBER_EXPORT int not_an_adapter(void);
int not_an_adapter(void)
{
	return (int)desc.struct_size;
}
#elif defined(CASE_ABI2_ENTRY)
/* What an adapter built for a future ABI 2 would export. */
AMBER_EXPORT int amber_adapter_entry_v2(const void *h, const amber_adapter **r);
int amber_adapter_entry_v2(const void *h, const amber_adapter **r)
{
	*r = &desc;
	return 0;
}
#else
AMBER_DECLARE_ADAPTER(desc)
#endif
