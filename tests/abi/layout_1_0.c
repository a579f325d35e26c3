/* ABI 1.0's layout, frozen: every member of every boundary struct stays where 1.0 put
 * it. Appending in a later minor is fine; moving, resizing or inserting fails the
 * build. Values are for LP64 (x86_64, aarch64), the platforms Amber ships on. */
#include <amber/adapter.h>
#include <stddef.h>

#define AT(type, member, off) _Static_assert(offsetof(type, member) == (off), #type "." #member)

AT(amber_adapter, struct_size, 0);
AT(amber_adapter, abi_major, 4);
AT(amber_adapter, abi_minor, 6);
AT(amber_adapter, min_host_abi_minor, 8);
AT(amber_adapter, reserved0, 10);
AT(amber_adapter, name, 16);
AT(amber_adapter, version, 24);
AT(amber_adapter, description, 32);
AT(amber_adapter, caps, 40);
AT(amber_adapter, config, 48);
AT(amber_adapter, module_init, 56);
AT(amber_adapter, module_fini, 64);
AT(amber_adapter, config_check, 72);
AT(amber_adapter, instance_new, 80);
AT(amber_adapter, instance_free, 88);
AT(amber_adapter, writer_open, 96);
AT(amber_adapter, writer_write, 104);
AT(amber_adapter, writer_commit, 112);
AT(amber_adapter, writer_free, 120);
AT(amber_adapter, reader_open, 128);
AT(amber_adapter, reader_read, 136);
AT(amber_adapter, reader_free, 144);
AT(amber_adapter, remove, 152);
AT(amber_adapter, presign, 160);
AT(amber_adapter, list, 168);
AT(amber_adapter, multipart_create, 176);
AT(amber_adapter, presign_part, 184);
AT(amber_adapter, multipart_complete, 192);
AT(amber_adapter, multipart_abort, 200);

AT(amber_part, struct_size, 0);
AT(amber_part, number, 4);
AT(amber_part, etag, 8);

AT(amber_host, struct_size, 0);
AT(amber_host, abi_major, 4);
AT(amber_host, abi_minor, 6);
AT(amber_host, features, 8);
AT(amber_host, alloc, 16);
AT(amber_host, free, 24);
AT(amber_host, log, 32);
AT(amber_host, set_error, 40);
AT(amber_host, set_error_detail, 48);
AT(amber_host, is_cancelled, 56);
AT(amber_host, backoff, 64);
AT(amber_host, config_get_string, 72);
AT(amber_host, config_get_int, 80);
AT(amber_host, config_get_bool, 88);
AT(amber_host, config_get_size, 96);
AT(amber_host, config_get_duration_ms, 104);
AT(amber_host, config_instance_name, 112);
AT(amber_host, buf_append, 120);

AT(amber_object_info, struct_size, 0);
AT(amber_object_info, flags, 4);
AT(amber_object_info, size, 8);
AT(amber_object_info, content_type, 16);
AT(amber_object_info, sha256, 24);
AT(amber_object_info, sha1, 56);

AT(amber_config_field, name, 0);
AT(amber_config_field, type, 8);
AT(amber_config_field, flags, 12);
AT(amber_config_field, default_value, 16);
AT(amber_config_field, help, 24);

/* Values are part of the promise too: never renumbered. */
#define VAL(name, v) _Static_assert((name) == (v), #name)
VAL(AMBER_OK, 0);
VAL(AMBER_ERROR, -1);
VAL(AMBER_ENOMEM, -2);
VAL(AMBER_EINVAL, -3);
VAL(AMBER_ENOTFOUND, -4);
VAL(AMBER_EEXISTS, -5);
VAL(AMBER_ENOTSUP, -6);
VAL(AMBER_EAUTH, -7);
VAL(AMBER_EPERM, -8);
VAL(AMBER_ENOSPC, -9);
VAL(AMBER_EAGAIN, -10);
VAL(AMBER_ECANCELED, -11);
VAL(AMBER_EIO, -12);
VAL(AMBER_EINTEGRITY, -13);
VAL(AMBER_CFG_STRING, 1u);
VAL(AMBER_CFG_INT, 2u);
VAL(AMBER_CFG_BOOL, 3u);
VAL(AMBER_CFG_SIZE, 4u);
VAL(AMBER_CFG_DURATION, 5u);
VAL(AMBER_CFG_REQUIRED, 1u);
VAL(AMBER_CFG_SECRET, 2u);
VAL(AMBER_OBJ_SHA256_VALID, 1u);
VAL(AMBER_OBJ_SHA1_VALID, 2u);
VAL(AMBER_CAP_PRESIGN_GET, 1u);
VAL(AMBER_CAP_MULTIPART, 2u);
VAL(AMBER_CAP_RANGE_READ, 4u);
VAL(AMBER_CAP_CONCURRENT, 8u);
VAL(AMBER_CAP_NEEDS_SIZE, 16u);
VAL(AMBER_PRESIGN_GET, 1u);
/* 1.1 */
VAL(AMBER_CAP_PRESIGN_RESUMABLE, 32u);
VAL(AMBER_PRESIGN_RESUMABLE, 2u);

int amber_abi_layout_1_0_checked(void);
int amber_abi_layout_1_0_checked(void)
{
	return 1;
}
