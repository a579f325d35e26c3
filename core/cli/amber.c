/* amber: the operator's and scripts' command line. Backs up and restores directories
 * through any configured adapter instance, lists adapters, checks configurations. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "adapter_config.h"
#include "admin.h"
#include "cli_store.h"
#include "compressor.h"
#include "adapter_loader.h"
#include "backup.h"
#include "config.h"
#include "host.h"
#include "instances.h"
#include "keys.h"
#include "log.h"
#include "toml.h"

/* Exit codes scripts can tell apart. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_ = 1,  /* the operation failed */
	EXIT_USAGE = 2,     /* bad arguments or configuration */
	EXIT_NOTFOUND = 3,  /* no such backup, adapter instance or directory */
	EXIT_PARTIAL = 4,   /* done, but some entries were refused or skipped */
};

struct global_opts {
	const char *config_path;
	const char *adapter_dir;
	bool json;
};

/* What a command needs: the configuration, the adapters and the instances. */
struct session {
	struct config *cfg;
	struct adapter_registry *reg;
	struct instance_set *instances;
};

static void session_close(struct session *s)
{
	instance_set_free(s->instances);
	adapter_registry_free(s->reg);
	config_free(s->cfg);
}

static const char *adapter_dir_of(const struct global_opts *g, const struct config *cfg)
{
	if (g->adapter_dir)
		return g->adapter_dir;
	const char *env = secure_getenv("AMBER_ADAPTER_DIR");
	if (env && *env)
		return env;
	if (cfg && cfg->adapter_dir)
		return cfg->adapter_dir;
	return AMBER_ADAPTER_INSTALL_DIR;
}

enum open_mode { OPEN_NONE, OPEN_ALL, OPEN_ONE };

/* The instance a command names, or the configured default. */
static const char *instance_name(const struct config *cfg, const char *name)
{
	if (name)
		return name;
	const char *def = NULL;
	adapter_config_get_string(cfg->panel, "default_adapter", &def);
	return def ? def : "wings";
}

/* Loads the configuration and the adapters, then opens no instance, all of them, or
 * just the one a command works on (`name`, else the default): a backup through one
 * instance must not fail because another is misconfigured. */
static int session_open(const struct global_opts *g, struct session *s, enum open_mode mode,
			const char *name)
{
	memset(s, 0, sizeof(*s));
	char *err = NULL;
	const char *path = g->config_path;
	if (!path) {
		const char *env = secure_getenv("AMBER_CONFIG");
		if (env && *env)
			path = env;
		else if (access("/etc/amber/amber.toml", F_OK) == 0)
			path = "/etc/amber/amber.toml";
	}
	int r = path ? config_load_file(path, &s->cfg, &err)
		     : config_load_text(config_default_text(), strlen(config_default_text()),
					"(built-in default)", &s->cfg, &err);
	if (r < 0) {
		fprintf(stderr, "amber: %s\n", err ? err : strerror(-r));
		free(err);
		return EXIT_USAGE;
	}
	enum log_level lvl = LOG_LEVEL_WARNING;
	if (s->cfg->log_level && log_level_parse(s->cfg->log_level, &lvl) < 0) {
		fprintf(stderr, "amber: %s: log_level: '%s' is not one of error, warning, "
				"notice, info, debug\n", s->cfg->file, s->cfg->log_level);
		return EXIT_USAGE;
	}
	log_setup(2, lvl);
	if (adapter_registry_new(&s->reg) < 0)
		return EXIT_FAILURE_;
	const char *dir = adapter_dir_of(g, s->cfg);
	r = adapter_registry_load_dir(s->reg, dir);
	if (r < 0) {
		fprintf(stderr, "amber: adapter directory %s: %s\n", dir, strerror(-r));
		return EXIT_USAGE;
	}
	if (mode == OPEN_NONE)
		return EXIT_OK;
	const char *only = mode == OPEN_ONE ? instance_name(s->cfg, name) : NULL;
	if (only && !config_find_instance(s->cfg, only)) {
		fprintf(stderr, "amber: no adapter instance '%s' in %s (configured:", only,
			s->cfg->file);
		for (size_t i = 0; i < s->cfg->n_instances; i++)
			fprintf(stderr, "%s %s", i ? "," : "", s->cfg->instances[i].name);
		fprintf(stderr, "%s)\n", s->cfg->n_instances ? "" : " none");
		return EXIT_NOTFOUND;
	}
	r = instance_set_open(s->cfg, s->reg, only, &s->instances, &err);
	if (r < 0) {
		fprintf(stderr, "amber: %s\n", err ? err : strerror(-r));
		free(err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static struct instance *open_for(const struct global_opts *g, struct session *s,
				 const char *name, int *ret_rc)
{
	*ret_rc = session_open(g, s, OPEN_ONE, name);
	return *ret_rc ? NULL : instance_set_find(s->instances, instance_name(s->cfg, name));
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void new_uuid(char out[37])
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (uint8_t)(rand() >> 3);
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

static void human(uint64_t n, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The progress line on a terminal; nothing when stderr is not one. */
struct progress_line {
	bool on;
	double start;
	double last;
};

static void show_progress(struct progress_line *pl, uint64_t done, uint64_t total,
			  uint64_t files, const char *verb)
{
	double t = now_s();
	if (!pl->on || t - pl->last < 0.2)
		return;
	pl->last = t;
	char d[32], rate[32];
	human(done, d, sizeof(d));
	human((uint64_t)((double)done / (t - pl->start + 1e-9)), rate, sizeof(rate));
	if (total)
		fprintf(stderr, "\r%s %3d%%  %s  %" PRIu64 " files  %s/s   ", verb,
			(int)(done * 100 / total > 100 ? 100 : done * 100 / total), d, files, rate);
	else
		fprintf(stderr, "\r%s %s  %" PRIu64 " files  %s/s   ", verb, d, files, rate);
}

static void end_progress(struct progress_line *pl)
{
	if (pl->on && pl->last > 0)
		fputs("\r\033[K", stderr);
}

static void create_progress(void *opaque, const struct archive_progress *p)
{
	show_progress(opaque, p->bytes_read, p->total_bytes, p->files, "backing up");
}

static void restore_progress(void *opaque, const struct archive_restore_progress *p)
{
	show_progress(opaque, p->bytes_written, 0, p->files, "restoring");
}

static json_t *report_json(const struct report *r)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "path", r->entries[i].path,
						   "reason", r->entries[i].reason));
	return a;
}

static void print_report(const struct report *r, const char *what)
{
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "amber: %s: %s: %s\n", what, r->entries[i].path,
			r->entries[i].reason);
	if (r->dropped)
		fprintf(stderr, "amber: %s: %zu more not shown\n", what, r->dropped);
}

static int fail_op(const char *op, int r, const struct amber_ctx *ctx)
{
	fprintf(stderr, "amber: %s failed: %s\n", op, ctx->message[0] ? ctx->message : strerror(-r));
	return r == -ENOENT ? EXIT_NOTFOUND : EXIT_FAILURE_;
}

static void usage_backup(FILE *f)
{
	fputs("usage:\n"
	      "  amber backup create  [--adapter NAME] [--uuid UUID] [--server UUID]\n"
	      "                       [--ignore PATTERNS] [--compression gzip|zstd]\n"
	      "                       [--level fast|none|best] [--threads N]\n"
	      "                       [--io-limit MIB_PER_S] [--json] DIR\n"
	      "  amber backup restore [--adapter NAME] --uuid UUID [--server UUID]\n"
	      "                       [--truncate] [--uid N] [--gid N] [--threads N]\n"
	      "                       [--io-limit MIB_PER_S] [--json] DIR\n"
	      "  --threads and --io-limit default to [limits] threads and io_mib_per_s;\n"
	      "  0 is one thread per core and no I/O limit.\n"
	      "  amber backup delete  [--adapter NAME] --uuid UUID [--server UUID] [--json]\n"
	      "  amber backup list    [--adapter NAME] [--server UUID] [--json]\n",
	      f);
}

struct backup_args {
	const char *adapter, *uuid, *server, *ignore, *dir;
	/* Unset: the instance's own (its compression and level keys). */
	bool compression_set, level_set;
	enum archive_compression compression;
	enum archive_level level;
	unsigned threads;
	bool threads_set;
	uint64_t io_mib_per_s;
	bool io_set;
	bool truncate;
	int64_t uid, gid;
};

/* The flags when given, else the configuration's [limits]. */
static unsigned job_threads(const struct backup_args *a, const struct config *cfg)
{
	return a->threads_set ? a->threads : cfg->threads;
}

static uint64_t job_io_bytes_per_s(const struct backup_args *a, const struct config *cfg)
{
	return (a->io_set ? a->io_mib_per_s : cfg->io_mib_per_s) << 20;
}

static int parse_backup_args(int argc, char **argv, struct global_opts *g,
			     struct backup_args *a, bool want_dir)
{
	static const struct option lo[] = {
		{ "adapter", required_argument, 0, 'a' }, { "uuid", required_argument, 0, 'u' },
		{ "server", required_argument, 0, 's' },  { "ignore", required_argument, 0, 'i' },
		{ "level", required_argument, 0, 'l' },   { "threads", required_argument, 0, 't' },
		{ "truncate", no_argument, 0, 'T' },      { "uid", required_argument, 0, 'U' },
		{ "gid", required_argument, 0, 'G' },     { "json", no_argument, 0, 'j' },
		{ "compression", required_argument, 0, 'c' },
		{ "io-limit", required_argument, 0, 'I' }, { "help", no_argument, 0, 'h' },
		{ 0 },
	};
	memset(a, 0, sizeof(*a));
	a->uid = a->gid = -1;
	optind = 1;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'a': a->adapter = optarg; break;
		case 'u': a->uuid = optarg; break;
		case 's': a->server = optarg; break;
		case 'i': a->ignore = optarg; break;
		case 'T': a->truncate = true; break;
		case 'j': g->json = true; break;
		case 'l':
			if (compression_level_parse(optarg, &a->level) < 0) {
				fprintf(stderr, "amber: --level: '%s' is not fast, none or best\n",
					optarg);
				return EXIT_USAGE;
			}
			a->level_set = true;
			break;
		case 'c':
			if (compression_parse(optarg, &a->compression) < 0) {
				fprintf(stderr, "amber: --compression: '%s' is not gzip or zstd\n",
					optarg);
				return EXIT_USAGE;
			}
			a->compression_set = true;
			break;
		case 't': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-' || v > CONFIG_THREADS_MAX) {
				fprintf(stderr, "amber: --threads: '%s' is not 0..%d\n", optarg,
					CONFIG_THREADS_MAX);
				return EXIT_USAGE;
			}
			a->threads = (unsigned)v;
			a->threads_set = true;
			break;
		}
		case 'I': {
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-' || v > CONFIG_IO_MIB_PER_S_MAX) {
				fprintf(stderr, "amber: --io-limit: '%s' is not 0..%d (MiB/s; 0: no "
						"limit)\n", optarg, CONFIG_IO_MIB_PER_S_MAX);
				return EXIT_USAGE;
			}
			a->io_mib_per_s = v;
			a->io_set = true;
			break;
		}
		case 'U':
		case 'G': {
			long long v = strtoll(optarg, &end, 10);
			if (*end || !*optarg || v < 0 || v > 0x7fffffff) {
				fprintf(stderr, "amber: --%s: '%s' is not a numeric id\n",
					c == 'U' ? "uid" : "gid", optarg);
				return EXIT_USAGE;
			}
			if (c == 'U')
				a->uid = v;
			else
				a->gid = v;
			break;
		}
		case 'h': usage_backup(stdout); return -1;
		default: usage_backup(stderr); return EXIT_USAGE;
		}
	}
	if (want_dir) {
		if (optind != argc - 1) {
			fprintf(stderr, "amber: expected exactly one directory\n");
			usage_backup(stderr);
			return EXIT_USAGE;
		}
		a->dir = argv[optind];
	} else if (optind != argc) {
		fprintf(stderr, "amber: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (a->uuid && !uuid_is_canonical(a->uuid)) {
		fprintf(stderr, "amber: --uuid: '%s' is not a canonical UUID "
				"(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n", a->uuid);
		return EXIT_USAGE;
	}
	if (a->server && !uuid_is_canonical(a->server)) {
		fprintf(stderr, "amber: --server: '%s' is not a canonical UUID\n", a->server);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Parses a backup command's arguments and opens the instance it names. *ret_in is set
 * when the command goes on (the caller closes s); otherwise the return value is the
 * exit code (0 after --help). */
static int backup_prelude(int argc, char **argv, struct global_opts *g, struct backup_args *a,
			  bool want_dir, const char *need_uuid_for, struct session *s,
			  struct instance **ret_in, char *key, size_t key_cap)
{
	*ret_in = NULL;
	int rc = parse_backup_args(argc, argv, g, a, want_dir);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (need_uuid_for && !a->uuid) {
		fprintf(stderr, "amber: backup %s needs --uuid\n", need_uuid_for);
		return EXIT_USAGE;
	}
	struct instance *in = open_for(g, s, a->adapter, &rc);
	if (!in) {
		session_close(s);
		return rc ? rc : EXIT_NOTFOUND;
	}
	if (key && a->uuid)
		backup_key(a->server, a->uuid, key, key_cap);
	*ret_in = in;
	return EXIT_OK;
}

static int cmd_backup_create(int argc, char **argv, struct global_opts *g)
{
	struct backup_args a;
	struct session s;
	struct instance *in;
	int rc = backup_prelude(argc, argv, g, &a, true, NULL, &s, &in, NULL, 0);
	if (!in)
		return rc;
	char uuid[37];
	if (a.uuid)
		snprintf(uuid, sizeof(uuid), "%s", a.uuid);
	else
		new_uuid(uuid);
	char key[128];
	backup_key(a.server, uuid, key, sizeof(key));

	struct progress_line pl = { .on = isatty(2) && !g->json, .start = now_s() };
	struct backup_create_req req = {
		.instance = in, .key = key, .root = a.dir, .ignore = a.ignore,
		.compression = a.compression_set ? a.compression : in->compression,
		.level = a.level_set ? a.level : in->level,
		.threads = job_threads(&a, s.cfg), .io_bytes_per_s = job_io_bytes_per_s(&a, s.cfg),
		.progress = pl.on ? create_progress : NULL, .progress_opaque = &pl,
	};
	struct amber_ctx ctx;
	host_ctx_init(&ctx, in->ops->name, in->name, "create", uuid);
	struct archive_create_result res = { 0 };
	double t0 = now_s();
	int r = backup_create(&req, &ctx, &res);
	end_progress(&pl);
	if (r < 0) {
		rc = fail_op("backup", r, &ctx);
	} else {
		char sha1[41], sha256[65];
		hex(res.sha1, 20, sha1);
		hex(res.sha256, 32, sha256);
		if (g->json) {
			json_t *o = json_pack(
				"{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f}",
				"uuid", uuid, "adapter", in->name, "key", key, "bytes",
				(json_int_t)res.bytes_out, "checksum", sha1, "sha256", sha256,
				"files", (json_int_t)res.files, "directories", (json_int_t)res.dirs,
				"symlinks", (json_int_t)res.symlinks, "skipped",
				(json_int_t)res.skipped, "bytes_in", (json_int_t)res.bytes_in,
				"seconds", now_s() - t0);
			json_object_set_new(o, "compression",
					    json_string(compression_name(req.compression)));
			json_object_set_new(o, "level", json_string(compression_level_name(req.level)));
			json_object_set_new(o, "warnings", report_json(&res.report));
			cli_print_json(o);
		} else {
			char in_h[32], out_h[32];
			human(res.bytes_in, in_h, sizeof(in_h));
			human(res.bytes_out, out_h, sizeof(out_h));
			print_report(&res.report, "warning");
			printf("backup %s stored as %s:%s (%s, level %s)\n", uuid, in->name, key,
			       compression_name(req.compression),
			       compression_level_name(req.level));
			printf("  %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
			       " symlinks, %s read, %s stored in %.2f s\n",
			       res.files, res.dirs, res.symlinks, in_h, out_h, now_s() - t0);
			printf("  sha1   %s\n  sha256 %s\n", sha1, sha256);
		}
	}
	archive_create_result_clear(&res);
	session_close(&s);
	return rc;
}

static int cmd_backup_restore(int argc, char **argv, struct global_opts *g)
{
	struct backup_args a;
	struct session s;
	struct instance *in;
	char key[128];
	int rc = backup_prelude(argc, argv, g, &a, true, "restore", &s, &in, key, sizeof(key));
	if (!in)
		return rc;
	struct progress_line pl = { .on = isatty(2) && !g->json, .start = now_s() };
	struct archive_restore_opts opts = {
		.root = a.dir, .truncate = a.truncate, .uid = a.uid, .gid = a.gid,
		.threads = job_threads(&a, s.cfg), .io_bytes_per_s = job_io_bytes_per_s(&a, s.cfg),
		.progress = pl.on ? restore_progress : NULL, .progress_opaque = &pl,
	};
	struct amber_ctx ctx;
	host_ctx_init(&ctx, in->ops->name, in->name, "restore", a.uuid);
	struct archive_restore_result res = { 0 };
	double t0 = now_s();
	int r = backup_restore(in, key, &opts, &ctx, &res);
	end_progress(&pl);
	if (r < 0) {
		rc = fail_op("restore", r, &ctx);
		print_report(&res.report, "refused");
	} else {
		rc = res.refused ? EXIT_PARTIAL : EXIT_OK;
		if (g->json) {
			json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f}",
					      "uuid", a.uuid, "adapter", in->name, "directory", a.dir,
					      "files", (json_int_t)res.files, "directories",
					      (json_int_t)res.dirs, "symlinks",
					      (json_int_t)res.symlinks, "bytes",
					      (json_int_t)res.bytes_written, "refused",
					      (json_int_t)res.refused, "seconds", now_s() - t0);
			json_object_set_new(o, "refused_entries", report_json(&res.report));
			cli_print_json(o);
		} else {
			char b[32];
			human(res.bytes_written, b, sizeof(b));
			print_report(&res.report, "refused");
			printf("restored %s from %s into %s\n", a.uuid, in->name, a.dir);
			printf("  %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
			       " symlinks, %s written in %.2f s",
			       res.files, res.dirs, res.symlinks, b, now_s() - t0);
			if (res.refused)
				printf(", %" PRIu64 " entries refused", res.refused);
			printf("\n");
		}
	}
	archive_restore_result_clear(&res);
	session_close(&s);
	return rc;
}

static int cmd_backup_delete(int argc, char **argv, struct global_opts *g)
{
	struct backup_args a;
	struct session s;
	struct instance *in;
	char key[128];
	int rc = backup_prelude(argc, argv, g, &a, false, "delete", &s, &in, key, sizeof(key));
	if (!in)
		return rc;
	struct amber_ctx ctx;
	host_ctx_init(&ctx, in->ops->name, in->name, "delete", a.uuid);
	int r = backup_delete(in, key, &ctx);
	if (r < 0) {
		rc = fail_op("delete", r, &ctx);
	} else if (g->json) {
		json_t *o = json_pack("{s:s, s:s, s:b}", "uuid", a.uuid, "adapter", in->name,
				      "deleted", 1);
		cli_print_json(o);
	} else {
		printf("deleted %s from %s\n", a.uuid, in->name);
	}
	session_close(&s);
	return rc;
}

static int cmd_backup_list(int argc, char **argv, struct global_opts *g)
{
	struct backup_args a;
	struct session s;
	struct instance *in;
	int rc = backup_prelude(argc, argv, g, &a, false, NULL, &s, &in, NULL, 0);
	if (!in)
		return rc;
	char prefix[64] = "";
	if (a.server)
		snprintf(prefix, sizeof(prefix), "%s/", a.server);
	struct amber_ctx ctx;
	host_ctx_init(&ctx, in->ops->name, in->name, "list", NULL);
	struct amber_buf out = { 0 };
	int r = backup_list(in, prefix, &ctx, &out);
	if (r == -ENOTSUP) {
		fprintf(stderr, "amber: the %s adapter of instance %s cannot list backups\n",
			in->ops->name, in->name);
		rc = EXIT_FAILURE_;
	} else if (r < 0) {
		rc = fail_op("list", r, &ctx);
	} else {
		json_t *arr = json_array();
		char *save = NULL;
		for (char *line = out.data ? strtok_r(out.data, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
			if (!t2)
				continue;
			*t1 = *t2 = 0;
			json_int_t size = strtoll(t1 + 1, NULL, 10);
			json_int_t mtime = strtoll(t2 + 1, NULL, 10);
			/* The uuid is the key's last component without ".tar.gz". */
			const char *base = strrchr(line, '/');
			base = base ? base + 1 : line;
			char uuid[64];
			snprintf(uuid, sizeof(uuid), "%.*s", (int)strcspn(base, "."), base);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "key", line,
							     "uuid", uuid, "bytes", size,
							     "mtime", mtime));
		}
		if (g->json) {
			json_dumpf(arr, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		} else {
			printf("%-36s  %12s  %-20s  %s\n", "UUID", "BYTES", "STORED (UTC)", "KEY");
			size_t i;
			json_t *o;
			json_array_foreach(arr, i, o) {
				time_t t = (time_t)json_integer_value(json_object_get(o, "mtime"));
				struct tm tm;
				char when[32];
				gmtime_r(&t, &tm);
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
				printf("%-36s  %12" JSON_INTEGER_FORMAT "  %-20s  %s\n",
				       json_string_value(json_object_get(o, "uuid")),
				       json_integer_value(json_object_get(o, "bytes")), when,
				       json_string_value(json_object_get(o, "key")));
			}
		}
		json_decref(arr);
	}
	amber_buf_clear(&out);
	session_close(&s);
	return rc;
}

static json_t *caps_json(uint64_t caps)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = { { AMBER_CAP_PRESIGN_GET, "presign_get" },
		      { AMBER_CAP_MULTIPART, "multipart" },
		      { AMBER_CAP_RANGE_READ, "range_read" },
		      { AMBER_CAP_CONCURRENT, "concurrent" },
		      { AMBER_CAP_NEEDS_SIZE, "needs_size" } };
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	return a;
}

/* The keys every [adapters.<name>] takes besides the adapter's own. */
static json_t *host_keys_json(void)
{
	return json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]",
			 "name", "type", "type", "string", "default", "(instance name)", "help",
			 "the adapter serving this instance",
			 "name", "compression", "type", "string", "default", "gzip", "help",
			 "\"gzip\" (.tar.gz) or \"zstd\" (.tar.zst) for new backups",
			 "name", "level", "type", "string", "default", "fast", "help",
			 "\"fast\", \"none\" (stored, same format) or \"best\"");
}

static int cmd_adapters_list(int argc, char **argv, struct global_opts *g)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			g->json = true;
		else {
			fprintf(stderr, "usage: amber adapters list [--json]\n");
			return EXIT_USAGE;
		}
	}
	struct session s;
	int rc = session_open(g, &s, OPEN_NONE, NULL);
	if (rc) {
		session_close(&s);
		return rc;
	}
	json_t *all = json_array();
	for (size_t i = 0; i < s.reg->n_loaded; i++) {
		const struct loaded_adapter *a = s.reg->loaded[i];
		json_t *schema = json_array();
		for (size_t k = 0; a->desc.config && a->desc.config[k].name; k++) {
			const amber_config_field *f = &a->desc.config[k];
			json_array_append_new(
				schema,
				json_pack("{s:s, s:s, s:b, s:b, s:o, s:s}", "name", f->name, "type",
					  adapter_config_type_name(f->type), "required",
					  !!(f->flags & AMBER_CFG_REQUIRED), "secret",
					  !!(f->flags & AMBER_CFG_SECRET), "default",
					  f->default_value ? json_string(f->default_value) : json_null(),
					  "help", f->help ? f->help : ""));
		}
		char abi[16];
		snprintf(abi, sizeof(abi), "%u.%u", (unsigned)a->desc.abi_major,
			 (unsigned)a->desc.abi_minor);
		json_array_append_new(all, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "name",
						     a->desc.name, "version", a->desc.version,
						     "abi", abi, "description", a->desc.description,
						     "path", a->path, "capabilities",
						     caps_json(a->desc.caps), "config", schema));
	}
	json_t *refused = json_array();
	for (size_t i = 0; i < s.reg->n_refused; i++)
		json_array_append_new(refused, json_pack("{s:s, s:s}", "path",
							 s.reg->refused[i].path ? s.reg->refused[i].path : "",
							 "reason",
							 s.reg->refused[i].reason ? s.reg->refused[i].reason : ""));
	if (g->json) {
		json_t *o = json_pack("{s:o, s:o, s:o}", "adapters", all, "refused", refused,
				      "host_keys", host_keys_json());
		cli_print_json(o);
	} else {
		printf("adapter directory: %s (host ABI %d.%d)\n", adapter_dir_of(g, s.cfg),
		       AMBER_ABI_MAJOR, AMBER_ABI_MINOR);
		size_t i, k;
		json_t *a, *f, *c;
		json_array_foreach(all, i, a) {
			printf("\n%s %s (ABI %s) - %s\n  file: %s\n  capabilities:",
			       json_string_value(json_object_get(a, "name")),
			       json_string_value(json_object_get(a, "version")),
			       json_string_value(json_object_get(a, "abi")),
			       json_string_value(json_object_get(a, "description")),
			       json_string_value(json_object_get(a, "path")));
			json_array_foreach(json_object_get(a, "capabilities"), k, c)
				printf(" %s", json_string_value(c));
			if (!json_array_size(json_object_get(a, "capabilities")))
				printf(" none");
			printf("\n  config:\n");
			json_array_foreach(json_object_get(a, "config"), k, f) {
				const char *def = json_string_value(json_object_get(f, "default"));
				printf("    %-22s %-9s%s%s%s%s  %s\n",
				       json_string_value(json_object_get(f, "name")),
				       json_string_value(json_object_get(f, "type")),
				       json_is_true(json_object_get(f, "required")) ? " required" : "",
				       json_is_true(json_object_get(f, "secret")) ? " secret" : "",
				       def ? " default=" : "", def ? def : "",
				       json_string_value(json_object_get(f, "help")));
			}
		}
		printf("\nevery instance also takes (the host's, never the adapter's):\n");
		json_t *hk = host_keys_json();
		json_array_foreach(hk, k, f)
			printf("    %-22s %-9s default=%s  %s\n",
			       json_string_value(json_object_get(f, "name")),
			       json_string_value(json_object_get(f, "type")),
			       json_string_value(json_object_get(f, "default")),
			       json_string_value(json_object_get(f, "help")));
		json_decref(hk);
		json_array_foreach(refused, i, a)
			printf("\nrefused: %s\n", json_string_value(json_object_get(a, "reason")));
		json_decref(all);
		json_decref(refused);
	}
	session_close(&s);
	return EXIT_OK;
}

static int cmd_config_check(int argc, char **argv, struct global_opts *g)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			g->json = true;
		else {
			fprintf(stderr, "usage: amber config check [--json]\n");
			return EXIT_USAGE;
		}
	}
	struct session s;
	int rc = session_open(g, &s, OPEN_ALL, NULL);
	if (rc == EXIT_OK) {
		if (g->json) {
			json_t *names = json_array();
			for (size_t i = 0; i < s.instances->n; i++)
				json_array_append_new(
					names,
					json_pack("{s:s, s:s, s:s, s:s}", "name",
						  s.instances->v[i]->name, "type",
						  s.instances->v[i]->ops->name, "compression",
						  compression_name(
							  s.instances->v[i]->compression),
						  "level",
						  compression_level_name(s.instances->v[i]->level)));
			json_t *o = json_pack("{s:b, s:s, s:o}", "ok", 1, "file", s.cfg->file,
					      "instances", names);
			cli_print_json(o);
		} else {
			printf("%s: OK\n", s.cfg->file);
			for (size_t i = 0; i < s.instances->n; i++) {
				struct instance *in = s.instances->v[i];
				printf("\n[adapters.%s]  # adapter %s %s\n", in->name, in->ops->name,
				       in->ops->version);
				printf("compression = \"%s\"  # host\nlevel = \"%s\"  # host\n",
				       compression_name(in->compression),
				       compression_level_name(in->level));
				adapter_config_print(in->config, stdout);
			}
		}
	} else if (g->json) {
		printf("{\"ok\": false}\n");
	}
	session_close(&s);
	return rc;
}

static int cmd_toml_decode(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: amber config toml-decode < file.toml\n");
		return EXIT_USAGE;
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(m);
	struct toml_value *doc = NULL;
	struct toml_error err = { 0 };
	int r = toml_parse(buf, len, &doc, &err);
	free(buf);
	if (r < 0) {
		fprintf(stderr, "amber: <stdin>:%d:%d: %s\n", err.line, err.column, err.message);
		return EXIT_FAILURE_;
	}
	r = toml_write_tagged_json(doc, stdout);
	fputc('\n', stdout);
	toml_free(doc);
	return r < 0 ? EXIT_FAILURE_ : EXIT_OK;
}

static void usage(FILE *f)
{
	fputs("usage: amber [--config FILE] [--adapter-dir DIR] COMMAND ...\n"
	      "\n"
	      "commands:\n"
	      "  backup create|restore|delete|list   back up or restore a directory\n"
	      "  adapters list                       loaded adapters, capabilities, config\n"
	      "  config check                        validate the configuration\n"
	      "  config toml-decode                  TOML on stdin -> toml-test JSON\n"
	      "  node add|list                       nodes the panel side knows\n"
	      "  server add|list                     servers and the node hosting them\n"
	      "  backups list                        backups recorded by the panel side\n"
	      "  key create|list|revoke              client API keys (panel side)\n"
	      "  version\n"
	      "\n"
	      "The configuration is --config, else $AMBER_CONFIG, else /etc/amber/amber.toml,\n"
	      "else the built-in default (instance 'wings' in /var/lib/amber/backups).\n"
	      "Adapters are loaded from --adapter-dir, else $AMBER_ADAPTER_DIR, else the\n"
	      "config's adapter_dir, else " AMBER_ADAPTER_INSTALL_DIR ".\n"
	      "\n"
	      "exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 not found,\n"
	      "            4 done but some entries were refused\n",
	      f);
}

int main(int argc, char **argv)
{
	struct global_opts g = { 0 };
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) &&
		    i + 1 < argc)
			g.config_path = argv[++i];
		else if (strcmp(argv[i], "--adapter-dir") == 0 && i + 1 < argc)
			g.adapter_dir = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			g.json = true;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("amber %s (adapter ABI %d.%d)\n", AMBER_VERSION, AMBER_ABI_MAJOR,
			       AMBER_ABI_MINOR);
			return EXIT_OK;
		} else {
			fprintf(stderr, "amber: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	log_setup(2, LOG_LEVEL_WARNING);
	if (i + 2 > argc) {
		if (i < argc && strcmp(argv[i], "version") == 0) {
			printf("amber %s (adapter ABI %d.%d)\n", AMBER_VERSION, AMBER_ABI_MAJOR,
			       AMBER_ABI_MINOR);
			return EXIT_OK;
		}
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *group = argv[i], *verb = argv[i + 1];
	int sub_argc = argc - i - 1;
	char **sub_argv = argv + i + 1;
	if (strcmp(group, "backup") == 0) {
		if (strcmp(verb, "create") == 0)
			return cmd_backup_create(sub_argc, sub_argv, &g);
		if (strcmp(verb, "restore") == 0)
			return cmd_backup_restore(sub_argc, sub_argv, &g);
		if (strcmp(verb, "delete") == 0)
			return cmd_backup_delete(sub_argc, sub_argv, &g);
		if (strcmp(verb, "list") == 0)
			return cmd_backup_list(sub_argc, sub_argv, &g);
		usage_backup(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(group, "adapters") == 0 && strcmp(verb, "list") == 0)
		return cmd_adapters_list(sub_argc, sub_argv, &g);
	if (strcmp(group, "config") == 0 && strcmp(verb, "check") == 0)
		return cmd_config_check(sub_argc, sub_argv, &g);
	if (strcmp(group, "config") == 0 && strcmp(verb, "toml-decode") == 0)
		return cmd_toml_decode(sub_argc, sub_argv);
	if (!strcmp(group, "node") || !strcmp(group, "server") || !strcmp(group, "backups") ||
	    !strcmp(group, "key")) {
		struct session s;
		const char *db = NULL;
		int rc = session_open(&g, &s, OPEN_NONE, NULL);
		if (rc == EXIT_OK) {
			int64_t limit = 0;
			adapter_config_get_string(s.cfg->panel, "database", &db);
			adapter_config_get_int(s.cfg->panel, "backup_limit", &limit);
			rc = group[0] == 'n'   ? cli_node_main(sub_argc, sub_argv, db, g.json)
			     : group[0] == 's' ? cli_server_main(sub_argc, sub_argv, db, limit, g.json)
			     : group[0] == 'k' ? cli_key_main(sub_argc, sub_argv, db, g.json)
					       : cli_backups_main(sub_argc, sub_argv, db, g.json);
		}
		session_close(&s);
		return rc;
	}
	usage(stderr);
	return EXIT_USAGE;
}
