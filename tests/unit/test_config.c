/* amber.toml: instances, the host's tables, schema checks, secrets from files, and
 * errors that name the file, line and key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_config.h"
#include "config.h"
#include "testutil.h"

static struct config *load_ok(const char *text)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_text(text, strlen(text), "amber.toml", &c, &err);
	ck_assert_msg(r == 0, "unexpected error: %s", err);
	return c;
}

static void load_fails(const char *text, const char *want)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_text(text, strlen(text), "amber.toml", &c, &err);
	ck_assert_msg(r < 0, "accepted: %s", text);
	ck_assert_msg(err && strstr(err, want), "error '%s' does not contain '%s'", err, want);
	free(err);
}

START_TEST(config_default_has_wings_instance)
{
	struct config *c = load_ok(config_default_text());
	ck_assert_uint_eq(c->n_instances, 1);
	ck_assert_str_eq(c->instances[0].name, "wings");
	ck_assert_str_eq(c->instances[0].type, "wings");
	config_free(c);
}
END_TEST

START_TEST(config_instance_type_defaults_to_name)
{
	struct config *c = load_ok("[adapters.s3]\nbucket = \"b\"\n"
				   "[adapters.wings]\ntype = \"gcs\"\n");
	ck_assert_str_eq(config_find_instance(c, "s3")->type, "s3");
	ck_assert_str_eq(config_find_instance(c, "wings")->type, "gcs");
	ck_assert_int_eq(config_find_instance(c, "wings")->line, 3);
	config_free(c);
}
END_TEST

START_TEST(config_rejects_unknown_keys_with_file_line_key)
{
	load_fails("log_level = \"info\"\nbogus = 1\n", "amber.toml:2: bogus: unknown key");
	load_fails("[node]\nlisten = \"127.0.0.1:1\"\nlsiten = \"x\"\n",
		   "amber.toml:3: node.lsiten: unknown key");
	load_fails("[panel]\ndatabase = 5\n", "amber.toml:2: panel.database: must be a string");
	load_fails("[node]\nmax_concurrent_jobs = \"two\"\n",
		   "node.max_concurrent_jobs: must be an integer");
	load_fails("adapters = 3\n", "adapters: must be a table");
	load_fails("[adapters.x]\ntype = 3\n", "amber.toml:2: adapters.x.type: must be a string");
}
END_TEST

START_TEST(config_reports_toml_syntax_errors_with_position)
{
	load_fails("[node]\nlisten = \n", "amber.toml:2:");
}
END_TEST

static const amber_config_field schema[] = {
	{ "path", AMBER_CFG_STRING, AMBER_CFG_REQUIRED, NULL, "where" },
	{ "part_size", AMBER_CFG_SIZE, 0, "64MiB", "part" },
	{ "timeout", AMBER_CFG_DURATION, 0, "30s", "t" },
	{ "fsync", AMBER_CFG_BOOL, 0, "true", "f" },
	{ "retries", AMBER_CFG_INT, 0, NULL, "r" },
	{ "secret_key", AMBER_CFG_STRING, AMBER_CFG_SECRET, NULL, "s" },
	{ 0 },
};

static const char *const host_keys[] = { "type", NULL };

static int instance_config(const char *text, amber_config **ret, char **err)
{
	struct config *c = load_ok(text);
	const struct config_instance *in = config_find_instance(c, "x");
	ck_assert_ptr_nonnull(in);
	int r = adapter_config_new("adapters.x", "x", schema, in->table, c->file, host_keys, ret,
				   err);
	config_free(c);
	return r;
}

START_TEST(adapter_config_applies_schema_types_and_defaults)
{
	amber_config *ac = NULL;
	char *err = NULL;
	ck_assert_msg(instance_config("[adapters.x]\ntype = \"wings\"\npath = \"/b\"\n"
				      "part_size = \"8MiB\"\ntimeout = \"2m\"\nretries = 3\n",
				      &ac, &err) == 0, "%s", err);
	const char *s;
	uint64_t u;
	int64_t i;
	int b;
	ck_assert_int_eq(adapter_config_get_string(ac, "path", &s), 0);
	ck_assert_str_eq(s, "/b");
	ck_assert_int_eq(adapter_config_get_size(ac, "part_size", &u), 0);
	ck_assert_uint_eq(u, 8ull << 20);
	ck_assert_int_eq(adapter_config_get_duration_ms(ac, "timeout", &u), 0);
	ck_assert_uint_eq(u, 120000);
	ck_assert_int_eq(adapter_config_get_bool(ac, "fsync", &b), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(adapter_config_get_int(ac, "retries", &i), 0);
	ck_assert_int_eq(i, 3);
	ck_assert_int_eq(adapter_config_get_string(ac, "secret_key", &s), AMBER_ENOTFOUND);
	ck_assert_int_eq(adapter_config_get_int(ac, "path", &i), AMBER_EINVAL);
	ck_assert_int_eq(adapter_config_get_int(ac, "nope", &i), AMBER_EINVAL);
	ck_assert_str_eq(adapter_config_instance_name(ac), "x");
	adapter_config_free(ac);
}
END_TEST

static void instance_fails(const char *text, const char *want)
{
	amber_config *ac = NULL;
	char *err = NULL;
	ck_assert_msg(instance_config(text, &ac, &err) < 0, "accepted: %s", text);
	ck_assert_msg(err && strstr(err, want), "error '%s' lacks '%s'", err, want);
	free(err);
}

START_TEST(adapter_config_rejects_bad_values_naming_line_and_key)
{
	instance_fails("[adapters.x]\npath = \"/b\"\npth = 1\n",
		       "amber.toml:3: adapters.x.pth: unknown key (known: path, part_size, "
		       "timeout, fsync, retries, secret_key, secret_key_file)");
	instance_fails("[adapters.x]\nretries = 1\n",
		       "adapters.x: required key 'path' is missing");
	instance_fails("[adapters.x]\npath = \"/b\"\npart_size = \"big\"\n",
		       "amber.toml:3: adapters.x.part_size: 'big' is not a size");
	instance_fails("[adapters.x]\npath = \"/b\"\ntimeout = 30\n",
		       "adapters.x.timeout: must be a duration");
	instance_fails("[adapters.x]\npath = \"/b\"\nfsync = \"yes\"\n",
		       "adapters.x.fsync: must be a boolean");
	instance_fails("[adapters.x]\npath = 7\n", "adapters.x.path: must be a string");
	instance_fails("[adapters.x]\npath = \"/b\"\npath_file = \"/etc/hostname\"\n",
		       "adapters.x.path_file: unknown key");
}
END_TEST

START_TEST(adapter_config_reads_secrets_from_files_and_never_prints_them)
{
	char *dir = tu_mkdtemp("config");
	char path[512], text[1024];
	snprintf(path, sizeof(path), "%s/secret", dir);
	tu_write_file(path, "s3cr3t-value\n", 13, 0600);
	snprintf(text, sizeof(text), "[adapters.x]\npath = \"/b\"\nsecret_key_file = \"%s\"\n",
		 path);
	amber_config *ac = NULL;
	char *err = NULL;
	ck_assert_msg(instance_config(text, &ac, &err) == 0, "%s", err);
	const char *s;
	ck_assert_int_eq(adapter_config_get_string(ac, "secret_key", &s), 0);
	ck_assert_str_eq(s, "s3cr3t-value");
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	adapter_config_print(ac, m);
	fclose(m);
	ck_assert_msg(!strstr(out, "s3cr3t"), "secret printed: %s", out);
	ck_assert_msg(strstr(out, "secret_key = (secret)"), "%s", out);
	free(out);
	adapter_config_free(ac);

	snprintf(text, sizeof(text),
		 "[adapters.x]\npath = \"/b\"\nsecret_key_file = \"%s/missing\"\n", dir);
	instance_fails(text, "adapters.x.secret_key_file: cannot read");
	snprintf(text, sizeof(text),
		 "[adapters.x]\npath = \"/b\"\nsecret_key = \"a\"\nsecret_key_file = \"%s\"\n",
		 path);
	instance_fails(text, "given both as secret_key and secret_key_file");
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(size_and_duration_parsers)
{
	uint64_t v;
	ck_assert_int_eq(config_parse_size("1048576", &v), 0);
	ck_assert_uint_eq(v, 1048576);
	ck_assert_int_eq(config_parse_size("64MiB", &v), 0);
	ck_assert_uint_eq(v, 64ull << 20);
	ck_assert_int_eq(config_parse_size("5M", &v), 0);
	ck_assert_uint_eq(v, 5ull << 20);
	ck_assert_int_eq(config_parse_size("5MB", &v), 0);
	ck_assert_uint_eq(v, 5000000);
	ck_assert_int_eq(config_parse_size("2 GiB", &v), 0);
	ck_assert_uint_eq(v, 2ull << 30);
	ck_assert_int_lt(config_parse_size("-1", &v), 0);
	ck_assert_int_lt(config_parse_size("1XB", &v), 0);
	ck_assert_int_lt(config_parse_size("99999999999999999999", &v), 0);
	ck_assert_int_lt(config_parse_size("20000000TiB", &v), 0);
	ck_assert_int_eq(config_parse_duration_ms("250ms", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(config_parse_duration_ms("1h", &v), 0);
	ck_assert_uint_eq(v, 3600000);
	ck_assert_int_lt(config_parse_duration_ms("5", &v), 0);
	ck_assert_int_lt(config_parse_duration_ms("s", &v), 0);
}
END_TEST

START_TEST(schema_check_catches_declaration_mistakes)
{
	static const amber_config_field dup[] = {
		{ "a", AMBER_CFG_STRING, 0, NULL, "" }, { "a", AMBER_CFG_INT, 0, NULL, "" }, { 0 }
	};
	static const amber_config_field badtype[] = { { "a", 99, 0, NULL, "" }, { 0 } };
	static const amber_config_field badname[] = { { "A-b", AMBER_CFG_INT, 0, NULL, "" },
						      { 0 } };
	char *err = NULL;
	ck_assert_int_lt(adapter_config_schema_check(dup, &err), 0);
	ck_assert_msg(strstr(err, "declared twice"), "%s", err);
	free(err);
	ck_assert_int_lt(adapter_config_schema_check(badtype, &err), 0);
	ck_assert_msg(strstr(err, "unknown type"), "%s", err);
	free(err);
	ck_assert_int_lt(adapter_config_schema_check(badname, &err), 0);
	ck_assert_msg(strstr(err, "bad name"), "%s", err);
	free(err);
	ck_assert_int_eq(adapter_config_schema_check(schema, &err), 0);
}
END_TEST

START_TEST(config_file_errors_name_the_file)
{
	struct config *c = NULL;
	char *err = NULL;
	ck_assert_int_lt(config_load_file("/nonexistent/amber.toml", &c, &err), 0);
	ck_assert_msg(strstr(err, "/nonexistent/amber.toml: cannot open"), "%s", err);
	free(err);
}
END_TEST

START_TEST(config_limits_are_read_and_range_checked)
{
	struct config *c = load_ok("[adapters.x]\npath = \"/tmp\"\n");
	ck_assert_uint_eq(c->io_mib_per_s, 0);
	ck_assert_uint_eq(c->threads, 0);
	config_free(c);
	c = load_ok("[limits]\nio_mib_per_s = 40\nthreads = 1\n");
	ck_assert_uint_eq(c->io_mib_per_s, 40);
	ck_assert_uint_eq(c->threads, 1);
	config_free(c);
	load_fails("[limits]\nio_mib_per_s = -5\n",
		   "amber.toml:2: limits.io_mib_per_s: must be 0 (no limit) or a number of "
		   "MiB/s up to 1048576, got -5");
	load_fails("[limits]\nthreads = 1\nthreads_ = 2\n",
		   "amber.toml:3: limits.threads_: unknown key (known: io_mib_per_s, threads)");
	load_fails("\n[limits]\nthreads = 999\n",
		   "amber.toml:3: limits.threads: must be 0 (one per core) or a number of threads "
		   "up to 256, got 999");
	load_fails("[limits]\nthreads = \"all\"\n",
		   "amber.toml:2: limits.threads: must be an integer");
	load_fails("[limits]\nio_mib_per_s = 2.5\n", "limits.io_mib_per_s: must be an integer");
	load_fails("limits = 3\n", "amber.toml:1: limits: must be a table ([limits])");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, config_default_has_wings_instance);
	tcase_add_test(tc, config_instance_type_defaults_to_name);
	tcase_add_test(tc, config_rejects_unknown_keys_with_file_line_key);
	tcase_add_test(tc, config_reports_toml_syntax_errors_with_position);
	tcase_add_test(tc, adapter_config_applies_schema_types_and_defaults);
	tcase_add_test(tc, adapter_config_rejects_bad_values_naming_line_and_key);
	tcase_add_test(tc, adapter_config_reads_secrets_from_files_and_never_prints_them);
	tcase_add_test(tc, size_and_duration_parsers);
	tcase_add_test(tc, schema_check_catches_declaration_mistakes);
	tcase_add_test(tc, config_file_errors_name_the_file);
	tcase_add_test(tc, config_limits_are_read_and_range_checked);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
