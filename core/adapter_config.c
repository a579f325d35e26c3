#include "adapter_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "strutil.h"
#include "toml.h"

struct config_value {
	bool set;
	char *str;   /* strings; also the raw text of sizes and durations */
	int64_t i;   /* ints, bools */
	uint64_t u;  /* sizes (bytes), durations (ms) */
};

struct amber_config {
	char *instance;
	const amber_config_field *schema;
	size_t n;
	struct config_value *values;
};


const char *adapter_config_type_name(uint32_t t)
{
	switch (t) {
	case AMBER_CFG_STRING: return "string";
	case AMBER_CFG_INT: return "integer";
	case AMBER_CFG_BOOL: return "boolean";
	case AMBER_CFG_SIZE: return "size";
	case AMBER_CFG_DURATION: return "duration";
	}
	return NULL;
}

int config_parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "", 1 }, { "b", 1 },
		{ "k", 1024 }, { "kb", 1000 }, { "kib", 1024 },
		{ "m", 1024ULL << 10 }, { "mb", 1000000ULL }, { "mib", 1024ULL << 10 },
		{ "g", 1024ULL << 20 }, { "gb", 1000000000ULL }, { "gib", 1024ULL << 20 },
		{ "t", 1024ULL << 30 }, { "tb", 1000000000000ULL }, { "tib", 1024ULL << 30 },
	};
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) == 0) {
			/* "MiB" and "MB" differ; a bare "M" is the binary unit. */
			uint64_t m = units[i].mult;
			if (v > UINT64_MAX / m)
				return -EINVAL;
			*ret = v * m;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_duration_ms(const char *s, uint64_t *ret)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		      { "d", 86400000 } };
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].ms)
				return -EINVAL;
			*ret = v * units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

static bool name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 64)
		return false;
	for (const char *p = n; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
			return false;
	return true;
}

/* Parses textual v (a default, or a TOML string) as type t into out. */
static int value_from_text(uint32_t t, const char *v, struct config_value *out)
{
	switch (t) {
	case AMBER_CFG_STRING:
		break;
	case AMBER_CFG_INT: {
		errno = 0;
		char *end;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end)
			return -EINVAL;
		out->i = x;
		break;
	}
	case AMBER_CFG_BOOL:
		if (strcmp(v, "true") == 0)
			out->i = 1;
		else if (strcmp(v, "false") == 0)
			out->i = 0;
		else
			return -EINVAL;
		break;
	case AMBER_CFG_SIZE:
		if (config_parse_size(v, &out->u) < 0)
			return -EINVAL;
		break;
	case AMBER_CFG_DURATION:
		if (config_parse_duration_ms(v, &out->u) < 0)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	out->str = strdup(v);
	if (!out->str)
		return -ENOMEM;
	out->set = true;
	return 0;
}

int adapter_config_schema_check(const amber_config_field *schema, char **ret_err)
{
	if (!schema)
		return 0;
	for (size_t i = 0; schema[i].name; i++) {
		const amber_config_field *f = &schema[i];
		if (!name_ok(f->name)) {
			*ret_err = str_printf("config field %zu: bad name '%s' (want [a-z0-9_]{1,64})",
					   i, f->name);
			return -EINVAL;
		}
		if (!adapter_config_type_name(f->type)) {
			*ret_err = str_printf("config field '%s': unknown type %" PRIu32, f->name,
					   f->type);
			return -EINVAL;
		}
		if (f->flags & ~(AMBER_CFG_REQUIRED | AMBER_CFG_SECRET)) {
			*ret_err = str_printf("config field '%s': unknown flags 0x%" PRIx32, f->name,
					   f->flags);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(schema[j].name, f->name) == 0) {
				*ret_err = str_printf("config field '%s' declared twice", f->name);
				return -EINVAL;
			}
		}
		if (f->default_value) {
			struct config_value v = { 0 };
			int r = value_from_text(f->type, f->default_value, &v);
			free(v.str);
			if (r < 0) {
				*ret_err = str_printf("config field '%s': default '%s' is not a %s",
						   f->name, f->default_value, adapter_config_type_name(f->type));
				return -EINVAL;
			}
		}
	}
	return 0;
}

static const amber_config_field *schema_find(const amber_config_field *schema,
					     const char *name, size_t *ret_idx)
{
	for (size_t i = 0; schema && schema[i].name; i++) {
		if (strcmp(schema[i].name, name) == 0) {
			*ret_idx = i;
			return &schema[i];
		}
	}
	return NULL;
}

static char *known_keys(const amber_config_field *schema)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	for (size_t i = 0; schema && schema[i].name; i++) {
		fprintf(m, "%s%s", i ? ", " : "", schema[i].name);
		if (schema[i].flags & AMBER_CFG_SECRET)
			fprintf(m, ", %s_file", schema[i].name);
	}
	if (!schema || !schema[0].name)
		fputs("none", m);
	fclose(m);
	return buf;
}

/* Reads a secret from a file: its first line, without the line end. */
static int read_secret_file(const char *path, char **ret, char **ret_why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*ret_why = str_printf("cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	char buf[8192];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			*ret_why = str_printf("cannot read %s: %s", path, strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (!buf[0]) {
		*ret_why = str_printf("%s is empty", path);
		return -EINVAL;
	}
	*ret = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *ret ? 0 : -ENOMEM;
}

static bool is_host_key(const char *const *host_keys, const char *k)
{
	for (size_t i = 0; host_keys && host_keys[i]; i++)
		if (strcmp(host_keys[i], k) == 0)
			return true;
	return false;
}

/* Converts one TOML value to field f's type. */
static int value_from_toml(const amber_config_field *f, const struct toml_value *v,
			   struct config_value *out, char **ret_why)
{
	enum toml_type t = toml_type(v);
	char num[32];
	switch (f->type) {
	case AMBER_CFG_STRING:
		if (t == TOML_STRING) {
			size_t len;
			const char *s = toml_string(v, &len);
			if (strlen(s) != len) {
				*ret_why = str_printf("must not contain NUL characters");
				return -EINVAL;
			}
			return value_from_text(f->type, s, out);
		}
		break;
	case AMBER_CFG_INT:
		if (t == TOML_INTEGER) {
			snprintf(num, sizeof(num), "%" PRId64, toml_integer(v));
			return value_from_text(f->type, num, out);
		}
		break;
	case AMBER_CFG_BOOL:
		if (t == TOML_BOOL)
			return value_from_text(f->type, toml_bool(v) ? "true" : "false", out);
		break;
	case AMBER_CFG_SIZE:
		if (t == TOML_INTEGER && toml_integer(v) >= 0) {
			snprintf(num, sizeof(num), "%" PRId64, toml_integer(v));
			return value_from_text(f->type, num, out);
		}
		if (t == TOML_STRING) {
			if (value_from_text(f->type, toml_string(v, NULL), out) == 0)
				return 0;
			*ret_why = str_printf("'%s' is not a size (examples: 1048576, \"64MiB\", "
					   "\"1G\")", toml_string(v, NULL));
			return -EINVAL;
		}
		break;
	case AMBER_CFG_DURATION:
		if (t == TOML_STRING) {
			if (value_from_text(f->type, toml_string(v, NULL), out) == 0)
				return 0;
			*ret_why = str_printf("'%s' is not a duration (examples: \"250ms\", \"30s\", "
					   "\"5m\", \"1h\")", toml_string(v, NULL));
			return -EINVAL;
		}
		break;
	}
	*ret_why = str_printf("must be a%s %s", f->type == AMBER_CFG_INT ? "n" : "",
			   adapter_config_type_name(f->type));
	return -EINVAL;
}

int adapter_config_new(const char *section, const char *instance,
		       const amber_config_field *schema, const struct toml_value *table,
		       const char *file,
		       const char *const *host_keys, amber_config **ret, char **ret_err)
{
	size_t n = 0;
	while (schema && schema[n].name)
		n++;
	amber_config *c = calloc(1, sizeof(*c));
	if (!c || !(c->instance = strdup(instance)) ||
	    !(c->values = calloc(n ? n : 1, sizeof(*c->values)))) {
		adapter_config_free(c);
		return -ENOMEM;
	}
	c->schema = schema;
	c->n = n;
	int r = 0;
	char *why = NULL;
	size_t ntab = table ? toml_table_len(table) : 0;
	for (size_t k = 0; k < ntab && r == 0; k++) {
		const char *key = toml_table_key(table, k);
		const struct toml_value *v = toml_table_value(table, k);
		int line = toml_line(v);
		if (is_host_key(host_keys, key))
			continue;
		size_t idx;
		const amber_config_field *f = schema_find(schema, key, &idx);
		bool from_file = false;
		if (!f) {
			size_t kl = strlen(key);
			if (kl > 5 && strcmp(key + kl - 5, "_file") == 0) {
				char base[80];
				snprintf(base, sizeof(base), "%.*s", (int)(kl - 5), key);
				f = schema_find(schema, base, &idx);
				if (f && (f->flags & AMBER_CFG_SECRET))
					from_file = true;
				else
					f = NULL;
			}
		}
		if (!f) {
			char *known = known_keys(schema);
			*ret_err = str_printf("%s:%d: %s.%s: unknown key (known: %s)", file,
					   line, section, key, known ? known : "?");
			free(known);
			r = -EINVAL;
			break;
		}
		if (c->values[idx].set) {
			*ret_err = str_printf("%s:%d: %s.%s: given both as %s and %s_file",
					   file, line, section, f->name, f->name, f->name);
			r = -EINVAL;
			break;
		}
		if (from_file) {
			if (toml_type(v) != TOML_STRING) {
				*ret_err = str_printf("%s:%d: %s.%s: must be a string (a path)",
						   file, line, section, key);
				r = -EINVAL;
				break;
			}
			char *secret = NULL;
			r = read_secret_file(toml_string(v, NULL), &secret, &why);
			if (r == 0) {
				c->values[idx].str = secret;
				c->values[idx].set = true;
			}
		} else {
			r = value_from_toml(f, v, &c->values[idx], &why);
		}
		if (r < 0) {
			*ret_err = str_printf("%s:%d: %s.%s: %s", file, line, section, key,
					   why ? why : strerror(-r));
			break;
		}
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		if (c->values[i].set)
			continue;
		if (schema[i].default_value) {
			r = value_from_text(schema[i].type, schema[i].default_value, &c->values[i]);
		} else if (schema[i].flags & AMBER_CFG_REQUIRED) {
			*ret_err = str_printf("%s:%d: %s: required key '%s' is missing%s%s%s",
					   file, table ? toml_line(table) : 0, section,
					   schema[i].name, schema[i].help ? " (" : "",
					   schema[i].help ? schema[i].help : "",
					   schema[i].help ? ")" : "");
			r = -EINVAL;
		}
	}
	free(why);
	if (r < 0) {
		adapter_config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void adapter_config_free(amber_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->values && i < c->n; i++) {
		if (c->values[i].str) {
			explicit_bzero(c->values[i].str, strlen(c->values[i].str));
			free(c->values[i].str);
		}
	}
	free(c->values);
	free(c->instance);
	free(c);
}

void adapter_config_print(const amber_config *c, FILE *out)
{
	for (size_t i = 0; i < c->n; i++) {
		const amber_config_field *f = &c->schema[i];
		if (!c->values[i].set)
			fprintf(out, "%s = (unset)\n", f->name);
		else if (f->flags & AMBER_CFG_SECRET)
			fprintf(out, "%s = (secret)\n", f->name);
		else if (f->type == AMBER_CFG_STRING || f->type == AMBER_CFG_SIZE ||
			 f->type == AMBER_CFG_DURATION)
			fprintf(out, "%s = \"%s\"\n", f->name, c->values[i].str);
		else
			fprintf(out, "%s = %s\n", f->name, c->values[i].str);
	}
}

static const struct config_value *lookup(const amber_config *c, const char *name, uint32_t type,
					 int *ret_code)
{
	size_t idx;
	if (!c || !name || !schema_find(c->schema, name, &idx) || c->schema[idx].type != type) {
		*ret_code = AMBER_EINVAL;
		return NULL;
	}
	if (!c->values[idx].set) {
		*ret_code = AMBER_ENOTFOUND;
		return NULL;
	}
	*ret_code = 0;
	return &c->values[idx];
}

int adapter_config_get_string(const amber_config *c, const char *name, const char **ret)
{
	int code;
	const struct config_value *v = lookup(c, name, AMBER_CFG_STRING, &code);
	if (v)
		*ret = v->str;
	return code;
}

int adapter_config_get_int(const amber_config *c, const char *name, int64_t *ret)
{
	int code;
	const struct config_value *v = lookup(c, name, AMBER_CFG_INT, &code);
	if (v)
		*ret = v->i;
	return code;
}

int adapter_config_get_bool(const amber_config *c, const char *name, int *ret)
{
	int code;
	const struct config_value *v = lookup(c, name, AMBER_CFG_BOOL, &code);
	if (v)
		*ret = (int)v->i;
	return code;
}

int adapter_config_get_size(const amber_config *c, const char *name, uint64_t *ret)
{
	int code;
	const struct config_value *v = lookup(c, name, AMBER_CFG_SIZE, &code);
	if (v)
		*ret = v->u;
	return code;
}

int adapter_config_get_duration_ms(const amber_config *c, const char *name, uint64_t *ret)
{
	int code;
	const struct config_value *v = lookup(c, name, AMBER_CFG_DURATION, &code);
	if (v)
		*ret = v->u;
	return code;
}

const char *adapter_config_instance_name(const amber_config *c)
{
	return c ? c->instance : NULL;
}
