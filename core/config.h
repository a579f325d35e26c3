/* amber.toml: the operator's one configuration file. Top-level keys, [node], [panel],
 * [limits] and the adapter instances [adapters.<instance>] (type = "<adapter>", default: the
 * instance's name; compression = "gzip" | "zstd" and level = "fast" | "none" | "best",
 * the host's own keys). Every error names the file, the line and the key. */
#ifndef AMBER_CONFIG_H
#define AMBER_CONFIG_H

#include <amber/adapter.h>
#include <stddef.h>

#include "archive_create.h"

struct toml_value;

struct config_instance {
	char *name;                      /* [adapters.<name>] */
	char *type;                      /* the adapter serving it */
	/* Host-owned like type, never shown to the adapter: how backups created into this
	 * instance are compressed ("gzip" or "zstd"; "none", "fast" or "best"). */
	enum archive_compression compression;
	enum archive_level level;
	int line;
	const struct toml_value *table;  /* borrowed from the document */
};

struct config {
	char *file;               /* for messages: a path, or "(built-in default)" */
	struct toml_value *doc;
	char *adapter_dir;        /* NULL: the built-in search path */
	char *log_level;          /* NULL: "notice" */
	char *log_file;           /* NULL: stderr */
	amber_config *node;       /* [node], checked against the host's schema */
	amber_config *panel;      /* [panel] */
	amber_config *limits;     /* [limits]: what every backup and restore job may use */
	uint64_t io_mib_per_s;    /* [limits] io_mib_per_s; 0: no limit */
	unsigned threads;         /* [limits] threads; 0: one per core */
	struct config_instance *instances;
	size_t n_instances;
};

/* The configuration used when no file is given: one local-disk instance "wings". */
const char *config_default_text(void);

/* 0, or a negative errno with *ret_err (caller frees) naming file, line and key. */
int config_load_file(const char *path, struct config **ret, char **ret_err);
int config_load_text(const char *text, size_t len, const char *name, struct config **ret,
		     char **ret_err);
void config_free(struct config *c);

/* The keys of [adapters.<instance>] that belong to the host, not to the adapter. */
extern const char *const config_instance_host_keys[];

const struct config_instance *config_find_instance(const struct config *c, const char *name);

/* The host's own schemas, for `amber config check` and the daemon. */
const amber_config_field *config_node_schema(void);
const amber_config_field *config_panel_schema(void);
const amber_config_field *config_limits_schema(void);

/* The largest [limits] values (and CLI flags) accepted. */
#define CONFIG_IO_MIB_PER_S_MAX 1048576
#define CONFIG_THREADS_MAX 256

#endif
