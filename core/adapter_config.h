/* An adapter instance's configuration: an [adapters.<instance>] TOML table checked
 * against the schema the adapter declares. Unknown keys, wrong types, missing required
 * keys and unreadable secret files are errors naming the file, line and key. */
#ifndef AMBER_ADAPTER_CONFIG_H
#define AMBER_ADAPTER_CONFIG_H

#include <amber/adapter.h>
#include <stdio.h>

struct toml_value;

/* Checks a declared schema: names unique and well formed, types and flags known,
 * defaults parse. 0, or -EINVAL with a message in *ret_err (caller frees). */
int adapter_config_schema_check(const amber_config_field *schema, char **ret_err);

/* Builds the configuration of instance `instance` from `table` (the TOML table; may be
 * NULL for "no keys"). Keys listed in host_keys (NULL-terminated, e.g. "type") belong
 * to the host and are skipped. file and section ("adapters.wings", "node") name the
 * place in messages. The same machinery checks the host's own tables, with a schema of
 * the host's. The schema is borrowed and must outlive the result. 0, or -EINVAL with
 * *ret_err (caller frees). */
int adapter_config_new(const char *section, const char *instance,
		       const amber_config_field *schema, const struct toml_value *table,
		       const char *file,
		       const char *const *host_keys, amber_config **ret, char **ret_err);
void adapter_config_free(amber_config *c);

/* Prints "key = value" lines; SECRET values are shown as "(secret)". */
void adapter_config_print(const amber_config *c, FILE *out);

/* "string", "integer", ... for AMBER_CFG_*; NULL for an unknown type. */
const char *adapter_config_type_name(uint32_t type);

/* Parsers shared with the rest of the configuration. 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *ret);
int config_parse_duration_ms(const char *s, uint64_t *ret);

/* The host service getters (see amber_host). */
int adapter_config_get_string(const amber_config *c, const char *name, const char **ret);
int adapter_config_get_int(const amber_config *c, const char *name, int64_t *ret);
int adapter_config_get_bool(const amber_config *c, const char *name, int *ret);
int adapter_config_get_size(const amber_config *c, const char *name, uint64_t *ret);
int adapter_config_get_duration_ms(const amber_config *c, const char *name, uint64_t *ret);
const char *adapter_config_instance_name(const amber_config *c);

#endif
