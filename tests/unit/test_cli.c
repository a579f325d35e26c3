/* The amber CLI end to end, through the dynamically loaded wings adapter: real
 * backups of real directories, judged by GNU tar, bsdtar, gzip and python's tarfile,
 * and every bad input answered with a clear message and a distinct exit code. */
#include <amber/adapter.h>
#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define UUID1 "7c1b8c4e-52f5-4bb4-9b0e-2c1f0d3a9e11"
#define UUID2 "0d9f5e0a-1c2b-4d3e-8f4a-5b6c7d8e9f00"

struct env {
	char *dir;    /* scratch root */
	char *config; /* amber.toml */
	char *store;  /* wings path */
	char *server; /* the directory backed up */
};

static struct env env_new(void)
{
	struct env e;
	e.dir = tu_mkdtemp("cli");
	ck_assert_int_ge(asprintf(&e.config, "%s/amber.toml", e.dir), 0);
	ck_assert_int_ge(asprintf(&e.store, "%s/store", e.dir), 0);
	ck_assert_int_ge(asprintf(&e.server, "%s/server", e.dir), 0);
	char *toml = NULL;
	ck_assert_int_ge(asprintf(&toml, "[adapters.wings]\npath = \"%s\"\n"
					 "[adapters.other]\ntype = \"wings\"\npath = \"%s/other\"\n",
				  e.store, e.dir), 0);
	tu_write_file(e.config, toml, strlen(toml), 0644);
	free(toml);
	ck_assert_int_eq(tu_sh("python3 '%s/scripts/make-demo-server.py' '%s'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server), 0);
	return e;
}

static void env_free(struct env *e)
{
	tu_rmrf(e->dir);
	free(e->dir);
	free(e->config);
	free(e->store);
	free(e->server);
}

/* Runs amber with args; returns its exit status and (if out) its stdout. */
__attribute__((format(printf, 3, 4))) static int amber(const struct env *e, char **out,
						       const char *fmt, ...)
{
	char *args = NULL;
	va_list ap;
	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&args, fmt, ap), 0);
	va_end(ap);
	int st;
	char *o = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' %s",
			    tu_env("AMBER_BIN", "amber"), e->config,
			    tu_env("AMBER_ADAPTER_DIR", "."), args);
	free(args);
	if (out)
		*out = o;
	else
		free(o);
	return st;
}

static json_t *parse(const char *s)
{
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, s);
	return j;
}

START_TEST(cli_backup_list_restore_delete_round_trip)
{
	struct env e = env_new();
	char *out = NULL;
	ck_assert_int_eq(amber(&e, &out, "backup create --adapter wings --uuid " UUID1
					 " --json '%s'", e.server), 0);
	json_t *j = parse(out);
	free(out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "uuid")), UUID1);
	char archive[512];
	snprintf(archive, sizeof(archive), "%s/" UUID1 ".tar.gz", e.store);
	struct stat st;
	ck_assert_int_eq(stat(archive, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq((long long)st.st_size,
			 (long long)json_integer_value(json_object_get(j, "bytes")));

	/* The checksums the panel will be told are those of the stored bytes. */
	char *sha1 = tu_sh_out(NULL, "sha1sum '%s' | cut -c1-40", archive);
	char *sha256 = tu_sh_out(NULL, "sha256sum '%s' | cut -c1-64", archive);
	sha1[40] = sha256[64] = 0;
	ck_assert_str_eq(json_string_value(json_object_get(j, "checksum")), sha1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "sha256")), sha256);
	free(sha1);
	free(sha256);
	json_decref(j);

	/* Independent readers accept it. */
	ck_assert_int_eq(tu_sh("gzip -t '%s'", archive), 0);
	ck_assert_int_eq(tu_sh("tar -tzf '%s' >/dev/null", archive), 0);
	ck_assert_int_eq(tu_sh("bsdtar -tf '%s' >/dev/null", archive), 0);
	ck_assert_int_eq(tu_sh("python3 -c 'import tarfile,sys; t=tarfile.open(sys.argv[1], "
			       "\"r|gz\"); [m for m in t]' '%s'", archive), 0);

	ck_assert_int_eq(amber(&e, &out, "backup list --adapter wings --json"), 0);
	j = parse(out);
	free(out);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "uuid")), UUID1);
	json_decref(j);

	ck_assert_int_eq(amber(&e, NULL, "backup restore --adapter wings --uuid " UUID1
					 " '%s/restored'", e.dir), 0);
	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s/restored'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server, e.dir), 0);

	ck_assert_int_eq(amber(&e, NULL, "backup delete --adapter wings --uuid " UUID1), 0);
	ck_assert_int_ne(access(archive, F_OK), 0);
	ck_assert_int_eq(amber(&e, &out, "backup list --adapter wings --json"), 0);
	ck_assert_msg(strstr(out, "[]"), "%s", out);
	free(out);
	env_free(&e);
}
END_TEST

START_TEST(cli_applies_ignore_patterns_and_pteroignore)
{
	struct env e = env_new();
	/* Patterns given on the command line win over .pteroignore. */
	char path[512];
	snprintf(path, sizeof(path), "%s/.pteroignore", e.server);
	tu_write_file(path, "plugins/\n", 9, 0644);
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID1
					 " --ignore '*.log,world/region/' '%s'", e.server), 0);
	char *names = tu_sh_out(NULL, "tar -tzf '%s/" UUID1 ".tar.gz'", e.store);
	ck_assert_msg(!strstr(names, ".log") && !strstr(names, "r.0.0.mca"), "%s", names);
	ck_assert_msg(strstr(names, "plugins/WorldEdit.jar"), "%s", names);
	ck_assert_msg(strstr(names, "world/level.dat"), "%s", names);
	free(names);

	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID2 " '%s'", e.server), 0);
	names = tu_sh_out(NULL, "tar -tzf '%s/" UUID2 ".tar.gz'", e.store);
	ck_assert_msg(!strstr(names, "plugins/") && strstr(names, ".log"), "%s", names);
	free(names);

	/* A .pteroignore that is a symlink is refused, and nothing is stored. */
	unlink(path);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	char *err = NULL;
	int st;
	err = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' backup create --uuid "
			     "11111111-2222-4333-8444-555555555555 '%s' 2>&1",
			tu_env("AMBER_BIN", "amber"), e.config, tu_env("AMBER_ADAPTER_DIR", "."),
			e.server);
	ck_assert_int_eq(st, 1);
	ck_assert_msg(strstr(err, ".pteroignore: is a symlink"), "%s", err);
	free(err);
	ck_assert_int_ne(tu_sh("ls '%s' | grep -q 11111111", e.store), 0);
	env_free(&e);
}
END_TEST

START_TEST(cli_exit_codes_distinguish_usage_notfound_failure)
{
	struct env e = env_new();
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid not-a-uuid '%s' 2>/dev/null",
			       e.server), 2);
	ck_assert_int_eq(amber(&e, NULL, "backup frobnicate 2>/dev/null"), 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID1 " 2>/dev/null"), 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --adapter nosuch '%s' 2>/dev/null",
			       e.server), 3);
	ck_assert_int_eq(amber(&e, NULL, "backup restore --uuid " UUID1 " '%s/r' 2>/dev/null",
			       e.dir), 3);
	ck_assert_int_eq(amber(&e, NULL, "backup delete --uuid " UUID1 " 2>/dev/null"), 3);
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID1 " '%s/missing' 2>/dev/null",
			       e.dir), 3);

	/* A stored object that is not an archive: a clear failure, and a truncating
	 * restore leaves the target as it was. */
	char path[512];
	snprintf(path, sizeof(path), "%s/" UUID2 ".tar.gz", e.store);
	tu_write_file(path, "this is not gzip", 16, 0600);
	char *out = NULL;
	int st;
	out = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' backup restore --truncate "
			     "--uuid " UUID2 " '%s' 2>&1",
			tu_env("AMBER_BIN", "amber"), e.config, tu_env("AMBER_ADAPTER_DIR", "."),
			e.server);
	ck_assert_int_eq(st, 1);
	ck_assert_msg(strstr(out, "not a valid tar.gz"), "%s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/server.properties", e.server);
	ck_assert_int_eq(access(path, F_OK), 0);
	env_free(&e);
}
END_TEST

/* An instance with compression = "zstd": every create into it is a .tar.zst (kept under
 * the .tar.gz key), --compression and --level override the instance, and restore reads
 * whatever the bytes say. */
START_TEST(cli_zstd_instance_and_overrides)
{
	struct env e = env_new();
	char toml[1024];
	snprintf(toml, sizeof(toml), "[adapters.wings]\npath = \"%s\"\ncompression = \"zstd\"\n"
				     "[adapters.other]\ntype = \"wings\"\npath = \"%s/other\"\n"
				     "level = \"none\"\n", e.store, e.dir);
	tu_write_file(e.config, toml, strlen(toml), 0644);
	char *out = NULL;
	ck_assert_int_eq(amber(&e, &out, "config check"), 0);
	ck_assert_msg(strstr(out, "compression = \"zstd\"") && strstr(out, "level = \"none\""),
		      "%s", out);
	free(out);
	ck_assert_int_eq(amber(&e, &out, "adapters list"), 0);
	ck_assert_msg(strstr(out, "compression") && strstr(out, "level"), "%s", out);
	free(out);

	ck_assert_int_eq(amber(&e, &out, "backup create --adapter wings --uuid " UUID1
					 " --json '%s'", e.server), 0);
	json_t *j = parse(out);
	free(out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "compression")), "zstd");
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "fast");
	char archive[512];
	snprintf(archive, sizeof(archive), "%s/" UUID1 ".tar.gz", e.store);
	char *sha256 = tu_sh_out(NULL, "sha256sum '%s' | cut -c1-64", archive);
	sha256[64] = 0;
	ck_assert_str_eq(json_string_value(json_object_get(j, "sha256")), sha256);
	free(sha256);
	json_decref(j);
	/* The real readers: zstd itself (one frame), GNU tar, bsdtar. */
	ck_assert_int_eq(tu_sh("zstd -q -t '%s'", archive), 0);
	ck_assert_int_eq(tu_sh("zstd -lv '%s' 2>/dev/null | grep -q 'Zstandard Frames: 1'",
			       archive), 0);
	ck_assert_int_eq(tu_sh("mkdir '%s/gnu' && tar --zstd -xf '%s' -C '%s/gnu' && "
			       "python3 '%s/tests/tools/compare_trees.py' '%s' '%s/gnu'",
			       e.dir, archive, e.dir, tu_env("AMBER_SOURCE_DIR", "."), e.server,
			       e.dir), 0);
	ck_assert_int_eq(tu_sh("mkdir '%s/bsd' && bsdtar -xf '%s' -C '%s/bsd' && "
			       "python3 '%s/tests/tools/compare_trees.py' '%s' '%s/bsd'",
			       e.dir, archive, e.dir, tu_env("AMBER_SOURCE_DIR", "."), e.server,
			       e.dir), 0);
	ck_assert_int_eq(amber(&e, NULL, "backup restore --adapter wings --uuid " UUID1
					 " '%s/restored'", e.dir), 0);
	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s/restored'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server, e.dir), 0);
	/* --compression overrides the instance both ways, --level too. */
	ck_assert_int_eq(amber(&e, NULL, "backup create --adapter wings --compression gzip "
					 "--uuid " UUID2 " --json '%s'", e.server), 0);
	snprintf(archive, sizeof(archive), "%s/" UUID2 ".tar.gz", e.store);
	ck_assert_int_eq(tu_sh("gzip -t '%s'", archive), 0);
	/* "other" says level none: with zstd, raw blocks, still a .tar.zst */
	ck_assert_int_eq(amber(&e, &out, "backup create --adapter other --compression zstd "
					 "--uuid " UUID2 " --json '%s'", e.server), 0);
	j = parse(out);
	free(out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "none");
	ck_assert_int_ge(json_integer_value(json_object_get(j, "bytes")),
			 json_integer_value(json_object_get(j, "bytes_in")));
	json_decref(j);
	snprintf(archive, sizeof(archive), "%s/other/" UUID2 ".tar.gz", e.dir);
	ck_assert_int_eq(tu_sh("zstd -q -t '%s'", archive), 0);
	ck_assert_int_eq(amber(&e, &out, "backup create --adapter other --compression zstd "
					 "--level best --uuid " UUID1 " --json '%s'", e.server), 0);
	j = parse(out);
	free(out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "best");
	json_decref(j);
	ck_assert_int_eq(amber(&e, NULL, "backup restore --adapter other --uuid " UUID2
					 " '%s/restored2'", e.dir), 0);
	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s/restored2'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server, e.dir), 0);

	ck_assert_int_eq(amber(&e, NULL, "backup create --compression lz4 '%s' 2>/dev/null",
			       e.server), 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --level 9 '%s' 2>/dev/null", e.server), 2);
	env_free(&e);
}
END_TEST

/* --threads and --io-limit on create and restore, their defaults from [limits], and
 * usage errors for values out of range. */
START_TEST(cli_limits_flags_and_config)
{
	struct env e = env_new();
	ck_assert_int_eq(amber(&e, NULL, "backup create --io-limit -1 '%s' 2>/dev/null", e.server),
			 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --io-limit 5x '%s' 2>/dev/null", e.server),
			 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --threads 257 '%s' 2>/dev/null", e.server),
			 2);
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID1 " --threads 1 --io-limit 200 "
					 "'%s' >/dev/null", e.server), 0);
	ck_assert_int_eq(amber(&e, NULL, "backup restore --uuid " UUID1 " --threads 1 --io-limit 200 "
					 "'%s/r1' >/dev/null", e.dir), 0);
	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s/r1'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server, e.dir), 0);

	/* The same from the configuration. */
	char toml[1024];
	snprintf(toml, sizeof(toml), "[limits]\nio_mib_per_s = 300\nthreads = 2\n"
				     "[adapters.wings]\npath = \"%s\"\n", e.store);
	tu_write_file(e.config, toml, strlen(toml), 0644);
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID2 " '%s' >/dev/null",
			       e.server), 0);
	ck_assert_int_eq(amber(&e, NULL, "backup restore --uuid " UUID2 " '%s/r2' >/dev/null",
			       e.dir), 0);
	ck_assert_int_eq(tu_sh("python3 '%s/tests/tools/compare_trees.py' '%s' '%s/r2'",
			       tu_env("AMBER_SOURCE_DIR", "."), e.server, e.dir), 0);

	snprintf(toml, sizeof(toml), "[limits]\nthreads = -1\n[adapters.wings]\npath = \"%s\"\n",
		 e.store);
	tu_write_file(e.config, toml, strlen(toml), 0644);
	char *out = NULL;
	int st;
	out = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' config check 2>&1",
			tu_env("AMBER_BIN", "amber"), e.config, tu_env("AMBER_ADAPTER_DIR", "."));
	ck_assert_int_eq(st, 2);
	ck_assert_msg(strstr(out, ":2: limits.threads: must be 0 (one per core)"), "%s", out);
	free(out);
	env_free(&e);
}
END_TEST

START_TEST(cli_config_errors_name_file_line_key)
{
	struct env e = env_new();
	char toml[512];
	snprintf(toml, sizeof(toml), "[adapters.wings]\npath = \"%s\"\npaht = \"x\"\n", e.store);
	tu_write_file(e.config, toml, strlen(toml), 0644);
	char *out = NULL;
	int st;
	out = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' config check 2>&1",
			tu_env("AMBER_BIN", "amber"), e.config, tu_env("AMBER_ADAPTER_DIR", "."));
	ck_assert_int_eq(st, 2);
	ck_assert_msg(strstr(out, ":3: adapters.wings.paht: unknown key"), "%s", out);
	free(out);

	snprintf(toml, sizeof(toml), "[adapters.wings]\ntype = \"nosuch\"\n");
	tu_write_file(e.config, toml, strlen(toml), 0644);
	out = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' config check 2>&1",
			tu_env("AMBER_BIN", "amber"), e.config, tu_env("AMBER_ADAPTER_DIR", "."));
	ck_assert_int_eq(st, 2);
	ck_assert_msg(strstr(out, "unknown adapter type 'nosuch' (loaded: ") &&
			      strstr(out, "wings"),
		      "%s", out);
	free(out);

	/* The host's compression and level: checked by the host with the same kind of
	 * message, never passed to the adapter's schema. */
	static const char *const bad[][2] = {
		{ "compression = \"lz4\"", ":3: adapters.wings.compression: 'lz4' is not one of "
					     "\"gzip\", \"zstd\"" },
		{ "compression = 1", ":3: adapters.wings.compression: must be a string" },
		{ "level = \"max\"", ":3: adapters.wings.level: 'max' is not one of \"none\", "
				       "\"fast\", \"best\"" },
		{ "level = 9", ":3: adapters.wings.level: must be a string" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(toml, sizeof(toml), "[adapters.wings]\npath = \"%s\"\n%s\n", e.store,
			 bad[i][0]);
		tu_write_file(e.config, toml, strlen(toml), 0644);
		out = tu_sh_out(&st, "'%s' --config '%s' --adapter-dir '%s' config check 2>&1",
				tu_env("AMBER_BIN", "amber"), e.config,
				tu_env("AMBER_ADAPTER_DIR", "."));
		ck_assert_int_eq(st, 2);
		ck_assert_msg(strstr(out, bad[i][1]), "%s", out);
		free(out);
	}
	env_free(&e);
}
END_TEST

START_TEST(cli_adapters_list_shows_schema_and_capabilities)
{
	struct env e = env_new();
	char *out = NULL;
	ck_assert_int_eq(amber(&e, &out, "adapters list --json"), 0);
	json_t *j = parse(out);
	free(out);
	json_t *ads = json_object_get(j, "adapters"), *a;
	size_t i;
	bool found = false;
	json_array_foreach(ads, i, a) {
		if (strcmp(json_string_value(json_object_get(a, "name")), "wings") != 0)
			continue;
		found = true;
		/* built with the tree's SDK: the current minor */
		char abi[16];
		snprintf(abi, sizeof(abi), "%d.%d", AMBER_ABI_MAJOR, AMBER_ABI_MINOR);
		ck_assert_str_eq(json_string_value(json_object_get(a, "abi")), abi);
		char *schema = json_dumps(json_object_get(a, "config"), 0);
		ck_assert_msg(strstr(schema, "\"path\""), "no path in schema: %s", schema);
		free(schema);
	}
	ck_assert(found);
	json_decref(j);
	ck_assert_int_eq(amber(&e, &out, "config check"), 0);
	ck_assert_msg(strstr(out, "OK"), "%s", out);
	free(out);
	env_free(&e);
}
END_TEST

START_TEST(cli_toml_decode_prints_tagged_json)
{
	int st;
	char *out = tu_sh_out(&st, "printf 'a = 1\\n[t]\\nb = \"x\"\\n' | '%s' config toml-decode",
			      tu_env("AMBER_BIN", "amber"));
	ck_assert_int_eq(st, 0);
	json_t *j = parse(out);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "a"), "type")),
			 "integer");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(json_object_get(j, "t"), "b"), "value")),
			 "x");
	json_decref(j);
	free(out);
	out = tu_sh_out(&st, "printf 'a = \\n' | '%s' config toml-decode 2>&1",
			tu_env("AMBER_BIN", "amber"));
	ck_assert_int_eq(st, 1);
	ck_assert_msg(strstr(out, "<stdin>:1:"), "%s", out);
	free(out);
}
END_TEST

/* A full disk while storing: a clear failure and no partial object left behind. Needs
 * root for a small private tmpfs (unshare -m keeps the mount to this test). */
START_TEST(cli_full_store_disk_fails_cleanly)
{
	if (geteuid() != 0) {
		fprintf(stderr, "cli_full_store_disk_fails_cleanly: needs root for tmpfs\n");
		return;
	}
	struct env e = env_new();
	mkdir(e.store, 0700);
	char *out = NULL;
	int st;
	out = tu_sh_out(&st,
			"unshare -m sh -c \"mount -t tmpfs -o size=1m tmpfs '%s' && "
			"'%s' --config '%s' --adapter-dir '%s' backup create --uuid " UUID1
			" '%s' 2>&1; echo exit=\\$?; ls -A '%s' | wc -l\"",
			e.store, tu_env("AMBER_BIN", "amber"), e.config,
			tu_env("AMBER_ADAPTER_DIR", "."), e.server, e.store);
	ck_assert_msg(strstr(out, "exit=1"), "%s", out);
	ck_assert_msg(strstr(out, "No space") || strstr(out, "no space"), "%s", out);
	/* The last line is the number of entries left in the store: none. */
	ck_assert_msg(strstr(out, "\n0\n"), "files left in the full store: %s", out);
	free(out);
	env_free(&e);
}
END_TEST

/* A full disk while restoring: the restore stops with that error. */
START_TEST(cli_full_target_disk_fails_cleanly)
{
	if (geteuid() != 0) {
		fprintf(stderr, "cli_full_target_disk_fails_cleanly: needs root for tmpfs\n");
		return;
	}
	struct env e = env_new();
	ck_assert_int_eq(amber(&e, NULL, "backup create --uuid " UUID1 " '%s'", e.server), 0);
	char target[512];
	snprintf(target, sizeof(target), "%s/small", e.dir);
	mkdir(target, 0755);
	int st;
	char *out = tu_sh_out(&st,
			      "unshare -m sh -c \"mount -t tmpfs -o size=1m tmpfs '%s' && "
			      "'%s' --config '%s' --adapter-dir '%s' backup restore --uuid " UUID1
			      " '%s' 2>&1; echo exit=\\$?\"",
			      target, tu_env("AMBER_BIN", "amber"), e.config,
			      tu_env("AMBER_ADAPTER_DIR", "."), target);
	ck_assert_msg(strstr(out, "exit=1"), "%s", out);
	ck_assert_msg(strstr(out, "space"), "%s", out);
	free(out);
	env_free(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, cli_backup_list_restore_delete_round_trip);
	tcase_add_test(tc, cli_applies_ignore_patterns_and_pteroignore);
	tcase_add_test(tc, cli_exit_codes_distinguish_usage_notfound_failure);
	tcase_add_test(tc, cli_config_errors_name_file_line_key);
	tcase_add_test(tc, cli_zstd_instance_and_overrides);
	tcase_add_test(tc, cli_limits_flags_and_config);
	tcase_add_test(tc, cli_adapters_list_shows_schema_and_capabilities);
	tcase_add_test(tc, cli_toml_decode_prints_tagged_json);
	tcase_add_test(tc, cli_full_store_disk_fails_cleanly);
	tcase_add_test(tc, cli_full_target_disk_fails_cleanly);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
