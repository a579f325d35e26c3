#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_config.h"
#include "compressor.h"
#include "strutil.h"
#include "toml.h"

#define CONFIG_FILE_MAX (1024 * 1024)

static const char default_text[] =
	"# Amber's built-in configuration: one local-disk adapter instance.\n"
	"[adapters.wings]\n"
	"type = \"wings\"\n"
	"path = \"/var/lib/amber/backups\"\n";

static const amber_config_field node_schema[] = {
	{ "listen", AMBER_CFG_STRING, 0, "127.0.0.1:8080", "address:port of the node API" },
	{ "public_url", AMBER_CFG_STRING, 0, NULL,
	  "URL the panel and users reach this node at (download links); default http://<listen>" },
	{ "token_id", AMBER_CFG_STRING, 0, NULL, "token id shared with the panel" },
	{ "token", AMBER_CFG_STRING, AMBER_CFG_SECRET, NULL, "node token shared with the panel" },
	{ "data_dir", AMBER_CFG_STRING, 0, "/var/lib/amber/volumes",
	  "server directories: <data_dir>/<uuid>" },
	{ "panel_url", AMBER_CFG_STRING, 0, NULL, "base URL of the panel's remote API" },
	{ "max_concurrent_jobs", AMBER_CFG_INT, 0, "2", "backups and restores run at once" },
	{ "http_threads", AMBER_CFG_INT, 0, "16",
	  "HTTP worker threads; a client-API call holds one while it waits for a node" },
	{ "state_dir", AMBER_CFG_STRING, 0, "/var/lib/amber/state",
	  "node state: undelivered reports, used download tokens" },
	{ 0 },
};

static const amber_config_field panel_schema[] = {
	{ "database", AMBER_CFG_STRING, 0, "sqlite:/var/lib/amber/amber.db", "panel database" },
	{ "default_adapter", AMBER_CFG_STRING, 0, "wings", "adapter instance for new backups" },
	{ "part_size", AMBER_CFG_SIZE, 0, "5GiB", "multipart part size handed to nodes" },
	{ "stuck_after", AMBER_CFG_DURATION, 0, "6h",
	  "running backups without a report for this long are marked failed" },
	{ "backup_limit", AMBER_CFG_INT, 0, "10",
	  "backups a new server may keep (amber server add without --backup-limit)" },
	{ "max_backup_size", AMBER_CFG_SIZE, 0, "10GiB",
	  "a backup that grows past this is stopped and marked failed; 0: no limit" },
	{ "throttle_limit", AMBER_CFG_INT, 0, "2",
	  "backups a server may start within throttle_period; 0: no throttle" },
	{ "throttle_period", AMBER_CFG_DURATION, 0, "10m", "the creation throttle's window" },
	{ "retention", AMBER_CFG_DURATION, 0, "0s",
	  "unlocked backups older than this are deleted; 0s: kept until deleted" },
	{ "download_ttl", AMBER_CFG_DURATION, 0, "1h", "lifetime of a download URL" },
	{ "presign_ttl", AMBER_CFG_DURATION, 0, "1h",
	  "lifetime of the URLs handed to nodes (part uploads, restore downloads)" },
	{ "node_timeout", AMBER_CFG_DURATION, 0, "15s", "whole request to a node" },
	{ "node_connect_timeout", AMBER_CFG_DURATION, 0, "5s", "connecting to a node" },
	{ 0 },
};

/* Politeness on a busy game node: applied to every job, by the CLI and the daemon. */
static const amber_config_field limits_schema[] = {
	{ "io_mib_per_s", AMBER_CFG_INT, 0, "0",
	  "MiB/s a job may read from the server directory (create) or write into it "
	  "(restore); 0: no limit" },
	{ "threads", AMBER_CFG_INT, 0, "0",
	  "CPU threads a job may use for compression and reading ahead; 0: one per core" },
	{ 0 },
};

const char *config_default_text(void)
{
	return default_text;
}

const amber_config_field *config_node_schema(void)
{
	return node_schema;
}

const amber_config_field *config_panel_schema(void)
{
	return panel_schema;
}

const amber_config_field *config_limits_schema(void)
{
	return limits_schema;
}

/* Types and unknown keys are the schema's business; the ranges are checked here. */
static int load_limits(struct config *c, const struct toml_value *t, char **ret_err)
{
	int64_t io = 0, threads = 0;
	adapter_config_get_int(c->limits, "io_mib_per_s", &io);
	adapter_config_get_int(c->limits, "threads", &threads);
	const struct toml_value *v;
	if (io < 0 || io > CONFIG_IO_MIB_PER_S_MAX) {
		v = toml_table_get(t, "io_mib_per_s");
		*ret_err = str_printf("%s:%d: limits.io_mib_per_s: must be 0 (no limit) or a "
				   "number of MiB/s up to %d, got %lld", c->file,
				   v ? toml_line(v) : 0, CONFIG_IO_MIB_PER_S_MAX, (long long)io);
		return -EINVAL;
	}
	if (threads < 0 || threads > CONFIG_THREADS_MAX) {
		v = toml_table_get(t, "threads");
		*ret_err = str_printf("%s:%d: limits.threads: must be 0 (one per core) or a "
				   "number of threads up to %d, got %lld", c->file,
				   v ? toml_line(v) : 0, CONFIG_THREADS_MAX, (long long)threads);
		return -EINVAL;
	}
	c->io_mib_per_s = (uint64_t)io;
	c->threads = (unsigned)threads;
	return 0;
}


void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_instances; i++) {
		free(c->instances[i].name);
		free(c->instances[i].type);
	}
	free(c->instances);
	adapter_config_free(c->node);
	adapter_config_free(c->panel);
	adapter_config_free(c->limits);
	free(c->adapter_dir);
	free(c->log_level);
	free(c->log_file);
	toml_free(c->doc);
	free(c->file);
	free(c);
}

const struct config_instance *config_find_instance(const struct config *c, const char *name)
{
	for (size_t i = 0; c && i < c->n_instances; i++)
		if (strcmp(c->instances[i].name, name) == 0)
			return &c->instances[i];
	return NULL;
}

static int top_string(struct config *c, const struct toml_value *v, const char *key,
		      char **dst, char **ret_err)
{
	if (toml_type(v) != TOML_STRING) {
		*ret_err = str_printf("%s:%d: %s: must be a string", c->file, toml_line(v), key);
		return -EINVAL;
	}
	*dst = strdup(toml_string(v, NULL));
	return *dst ? 0 : -ENOMEM;
}

const char *const config_instance_host_keys[] = { "type", "compression", "level", NULL };

/* compression or level: a string naming one of the choices. */
static int instance_choice(struct config *c, const struct toml_value *table, const char *name,
			   const char *key, int (*parse)(const char *, void *), void *dst,
			   const char *choices, char **ret_err)
{
	const struct toml_value *v = toml_table_get(table, key);
	if (!v)
		return 0;
	if (toml_type(v) != TOML_STRING) {
		*ret_err = str_printf("%s:%d: adapters.%s.%s: must be a string (%s)", c->file,
				   toml_line(v), name, key, choices);
		return -EINVAL;
	}
	if (parse(toml_string(v, NULL), dst) < 0) {
		*ret_err = str_printf("%s:%d: adapters.%s.%s: '%s' is not one of %s", c->file,
				   toml_line(v), name, key, toml_string(v, NULL), choices);
		return -EINVAL;
	}
	return 0;
}

static int parse_compression(const char *s, void *dst)
{
	return compression_parse(s, dst);
}

static int parse_level(const char *s, void *dst)
{
	return compression_level_parse(s, dst);
}

static int load_instances(struct config *c, const struct toml_value *t, char **ret_err)
{
	if (toml_type(t) != TOML_TABLE) {
		*ret_err = str_printf("%s:%d: adapters: must be a table of instances, "
				   "e.g. [adapters.wings]", c->file, toml_line(t));
		return -EINVAL;
	}
	size_t n = toml_table_len(t);
	c->instances = calloc(n ? n : 1, sizeof(*c->instances));
	if (!c->instances)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *name = toml_table_key(t, i);
		const struct toml_value *v = toml_table_value(t, i);
		if (toml_type(v) != TOML_TABLE) {
			*ret_err = str_printf("%s:%d: adapters.%s: must be a table "
					   "([adapters.%s])", c->file, toml_line(v), name, name);
			return -EINVAL;
		}
		if (!*name || strlen(name) > 64 || strcspn(name, "/\\\t\n ") != strlen(name)) {
			*ret_err = str_printf("%s:%d: adapters.%s: instance names are 1-64 characters "
					   "without spaces or slashes", c->file, toml_line(v), name);
			return -EINVAL;
		}
		const struct toml_value *type = toml_table_get(v, "type");
		struct config_instance *in = &c->instances[c->n_instances++];
		in->table = v;
		in->line = toml_line(v);
		in->name = strdup(name);
		if (type && toml_type(type) != TOML_STRING) {
			*ret_err = str_printf("%s:%d: adapters.%s.type: must be a string naming an "
					   "adapter", c->file, toml_line(type), name);
			return -EINVAL;
		}
		in->type = strdup(type ? toml_string(type, NULL) : name);
		if (!in->name || !in->type)
			return -ENOMEM;
		int r = instance_choice(c, v, name, "compression", parse_compression,
					&in->compression, "\"gzip\", \"zstd\"", ret_err);
		if (r == 0)
			r = instance_choice(c, v, name, "level", parse_level, &in->level,
					    "\"none\", \"fast\", \"best\"", ret_err);
		if (r < 0)
			return r;
	}
	return 0;
}

int config_load_text(const char *text, size_t len, const char *name, struct config **ret,
		     char **ret_err)
{
	*ret_err = NULL;
	struct config *c = calloc(1, sizeof(*c));
	if (!c || !(c->file = strdup(name))) {
		free(c);
		return -ENOMEM;
	}
	struct toml_error terr = { 0 };
	int r = toml_parse(text, len, &c->doc, &terr);
	if (r < 0) {
		*ret_err = str_printf("%s:%d:%d: %s", name, terr.line, terr.column, terr.message);
		config_free(c);
		return r;
	}
	const struct toml_value *node = NULL, *panel = NULL, *limits = NULL;
	for (size_t i = 0; i < toml_table_len(c->doc) && r == 0; i++) {
		const char *key = toml_table_key(c->doc, i);
		const struct toml_value *v = toml_table_value(c->doc, i);
		if (strcmp(key, "adapter_dir") == 0)
			r = top_string(c, v, key, &c->adapter_dir, ret_err);
		else if (strcmp(key, "log_level") == 0)
			r = top_string(c, v, key, &c->log_level, ret_err);
		else if (strcmp(key, "log_file") == 0)
			r = top_string(c, v, key, &c->log_file, ret_err);
		else if (strcmp(key, "node") == 0 || strcmp(key, "panel") == 0 ||
			 strcmp(key, "limits") == 0) {
			if (toml_type(v) != TOML_TABLE) {
				*ret_err = str_printf("%s:%d: %s: must be a table ([%s])", name,
						   toml_line(v), key, key);
				r = -EINVAL;
			} else if (key[0] == 'n')
				node = v;
			else if (key[0] == 'p')
				panel = v;
			else
				limits = v;
		} else if (strcmp(key, "adapters") == 0)
			r = load_instances(c, v, ret_err);
		else {
			*ret_err = str_printf("%s:%d: %s: unknown key (known: adapter_dir, log_level, log_file, "
					   "[node], [panel], [limits], [adapters.<instance>])",
					   name, toml_line(v), key);
			r = -EINVAL;
		}
	}
	if (r == 0)
		r = adapter_config_new("node", "node", node_schema, node, name, NULL, &c->node,
				       ret_err);
	if (r == 0)
		r = adapter_config_new("panel", "panel", panel_schema, panel, name, NULL,
				       &c->panel, ret_err);
	if (r == 0)
		r = adapter_config_new("limits", "limits", limits_schema, limits, name, NULL,
				       &c->limits, ret_err);
	if (r == 0)
		r = load_limits(c, limits, ret_err);
	if (r < 0) {
		config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int config_load_file(const char *path, struct config **ret, char **ret_err)
{
	*ret_err = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		*ret_err = str_printf("%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		close(fd);
		*ret_err = str_printf("%s: not a regular file of at most 1 MiB", path);
		return -EINVAL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t len = 0;
	while (buf && len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	int r = config_load_text(buf, len, path, ret, ret_err);
	explicit_bzero(buf, len);
	free(buf);
	return r;
}
