/* The adapter loader refuses every kind of bad shared object with a message naming the
 * file and the reason, and loads good ones, including one built against the oldest
 * released header. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter_loader.h"
#include "log.h"
#include "testutil.h"

static char *fixture(const char *file)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/%s.so", tu_env("AMBER_FIXTURE_DIR", "."), file), 0);
	/* Build trees may be made with umask 002; the loader would rightly refuse. */
	chmod(p, 0755);
	return p;
}

/* Loads file and expects a refusal whose message holds the path and `reason`. */
static void expect_refused(const char *file, const char *reason)
{
	struct adapter_registry *reg;
	ck_assert_int_eq(adapter_registry_new(&reg), 0);
	char *path = fixture(file), *err = NULL;
	int r = adapter_registry_load_file(reg, path, &err);
	ck_assert_msg(r < 0, "%s loaded but should have been refused (%s)", file, reason);
	ck_assert_msg(err && strstr(err, path), "message '%s' does not name %s", err, path);
	ck_assert_msg(strstr(err, reason), "message '%s' does not say '%s'", err, reason);
	ck_assert_uint_eq(reg->n_loaded, 0);
	ck_assert_uint_eq(reg->n_refused, 1);
	free(err);
	free(path);
	adapter_registry_free(reg);
}

START_TEST(loader_refuses_missing_entry_symbol)
{
	expect_refused("noentry", "no entry symbol amber_adapter_entry_v1");
}
END_TEST

START_TEST(loader_refuses_other_abi_major_entry)
{
	expect_refused("abi2", "built for adapter ABI 2");
}
END_TEST

START_TEST(loader_refuses_descriptor_major_mismatch)
{
	expect_refused("badmajor", "descriptor is for ABI major 2");
}
END_TEST

START_TEST(loader_refuses_name_differing_from_file_stem)
{
	expect_refused("misnamed", "descriptor name 'other' differs from the file name "
				   "'misnamed.so'");
}
END_TEST

START_TEST(loader_refuses_missing_required_method)
{
	expect_refused("nomethod", "required method writer_commit is missing");
}
END_TEST

START_TEST(loader_refuses_adapter_needing_newer_host)
{
	expect_refused("newerhost", "needs host ABI 1.99 or newer");
}
END_TEST

START_TEST(loader_refuses_truncated_descriptor)
{
	expect_refused("shortstruct", "smaller than ABI 1.0");
}
END_TEST

START_TEST(loader_refuses_presign_cap_without_method)
{
	expect_refused("presignnomethod", "presign capability without a presign method");
}
END_TEST

START_TEST(loader_refuses_multipart_cap_without_methods)
{
	expect_refused("multipartnomethod", "claims the multipart capability without all of");
}
END_TEST

START_TEST(loader_refuses_failing_module_init)
{
	expect_refused("initfails", "module_init failed: fixture refuses to start");
}
END_TEST

START_TEST(loader_refuses_bad_config_schema)
{
	expect_refused("badschema", "default 'lots' is not a size");
}
END_TEST

START_TEST(loader_refuses_bad_adapter_name)
{
	expect_refused("BadName", "is not [a-z0-9_]{1,32}");
}
END_TEST

START_TEST(loader_refuses_non_adapter_file)
{
	char *dir = tu_mkdtemp("loader");
	char *path = NULL, *err = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/junk.so", dir), 0);
	tu_write_file(path, "not an ELF file", 15, 0755);
	struct adapter_registry *reg;
	adapter_registry_new(&reg);
	ck_assert_int_lt(adapter_registry_load_file(reg, path, &err), 0);
	ck_assert_msg(strstr(err, path) && strstr(err, "cannot load"), "%s", err);
	free(err);
	adapter_registry_free(reg);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

START_TEST(loader_refuses_group_or_world_writable_file)
{
	char *dir = tu_mkdtemp("loader");
	char *src = fixture("good"), *dst = NULL;
	ck_assert_int_ge(asprintf(&dst, "%s/good.so", dir), 0);
	ck_assert_int_eq(tu_sh("cp '%s' '%s'", src, dst), 0);
	for (int i = 0; i < 2; i++) {
		chmod(dst, i == 0 ? 0775 : 0757);
		struct adapter_registry *reg;
		adapter_registry_new(&reg);
		char *err = NULL;
		ck_assert_int_lt(adapter_registry_load_file(reg, dst, &err), 0);
		ck_assert_msg(strstr(err, dst) && strstr(err, "writable by group or others"),
			      "%s", err);
		free(err);
		adapter_registry_free(reg);
	}
	chmod(dst, 0755);
	struct adapter_registry *reg;
	adapter_registry_new(&reg);
	char *err = NULL;
	ck_assert_msg(adapter_registry_load_file(reg, dst, &err) == 0, "%s", err);
	adapter_registry_free(reg);
	tu_rmrf(dir);
	free(dir);
	free(src);
	free(dst);
}
END_TEST

START_TEST(loader_loads_good_adapter_once)
{
	struct adapter_registry *reg;
	adapter_registry_new(&reg);
	char *path = fixture("good"), *err = NULL;
	ck_assert_msg(adapter_registry_load_file(reg, path, &err) == 0, "%s", err);
	const struct loaded_adapter *a = adapter_registry_find(reg, "good");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->desc.version, "0.0.1");
	ck_assert_uint_eq(a->desc_size, sizeof(amber_adapter));
	/* The same name twice is refused, naming the first file. */
	ck_assert_int_lt(adapter_registry_load_file(reg, path, &err), 0);
	ck_assert_msg(strstr(err, "already loaded"), "%s", err);
	free(err);
	free(path);
	adapter_registry_free(reg);
}
END_TEST

START_TEST(loader_loads_adapter_built_against_frozen_1_0_header)
{
	struct adapter_registry *reg;
	adapter_registry_new(&reg);
	char *path = fixture("old"), *err = NULL;
	ck_assert_msg(adapter_registry_load_file(reg, path, &err) == 0, "%s", err);
	const struct loaded_adapter *a = adapter_registry_find(reg, "old");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->desc.abi_major, 1);
	free(path);
	adapter_registry_free(reg);
}
END_TEST

START_TEST(loader_dir_loads_good_and_records_refusals)
{
	struct adapter_registry *reg;
	adapter_registry_new(&reg);
	int n = adapter_registry_load_dir(reg, tu_env("AMBER_FIXTURE_DIR", "."));
	/* good and old load; every broken fixture is refused, none is fatal. */
	ck_assert_int_eq(n, 2);
	ck_assert_uint_ge(reg->n_refused, 10);
	char *names = adapter_registry_names(reg);
	ck_assert_str_eq(names, "good, old");
	free(names);
	adapter_registry_free(reg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("loader");
	TCase *tc = tcase_create("loader");
	tcase_add_test(tc, loader_refuses_missing_entry_symbol);
	tcase_add_test(tc, loader_refuses_other_abi_major_entry);
	tcase_add_test(tc, loader_refuses_descriptor_major_mismatch);
	tcase_add_test(tc, loader_refuses_name_differing_from_file_stem);
	tcase_add_test(tc, loader_refuses_missing_required_method);
	tcase_add_test(tc, loader_refuses_adapter_needing_newer_host);
	tcase_add_test(tc, loader_refuses_truncated_descriptor);
	tcase_add_test(tc, loader_refuses_presign_cap_without_method);
	tcase_add_test(tc, loader_refuses_multipart_cap_without_methods);
	tcase_add_test(tc, loader_refuses_failing_module_init);
	tcase_add_test(tc, loader_refuses_bad_config_schema);
	tcase_add_test(tc, loader_refuses_bad_adapter_name);
	tcase_add_test(tc, loader_refuses_non_adapter_file);
	tcase_add_test(tc, loader_refuses_group_or_world_writable_file);
	tcase_add_test(tc, loader_loads_good_adapter_once);
	tcase_add_test(tc, loader_loads_adapter_built_against_frozen_1_0_header);
	tcase_add_test(tc, loader_dir_loads_good_and_records_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_setup(2, LOG_LEVEL_ERR);
	return tu_run_suite(suite());
}
