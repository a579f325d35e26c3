#include "adapter_loader.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_config.h"
#include "host.h"
#include "log.h"
#include "strutil.h"

/* The descriptor's size in ABI 1.0: anything smaller was not built against a 1.x
 * header. Frozen: later minors only grow the struct past this point. */
#define ADAPTER_DESC_SIZE_1_0                                 \
	(offsetof(amber_adapter, multipart_abort) +           \
	 sizeof(((amber_adapter *)0)->multipart_abort))

int adapter_registry_new(struct adapter_registry **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

void adapter_registry_free(struct adapter_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n_loaded; i++) {
		struct loaded_adapter *a = reg->loaded[i];
		if (a->desc.module_fini)
			a->desc.module_fini();
		free(a->path);
		free(a);
	}
	for (size_t i = 0; i < reg->n_refused; i++) {
		free(reg->refused[i].path);
		free(reg->refused[i].reason);
	}
	free(reg->refused);
	free(reg->loaded);
	free(reg);
}

const struct loaded_adapter *adapter_registry_find(const struct adapter_registry *reg,
						   const char *name)
{
	for (size_t i = 0; reg && i < reg->n_loaded; i++)
		if (strcmp(reg->loaded[i]->desc.name, name) == 0)
			return reg->loaded[i];
	return NULL;
}

static const char *loaded_name(const void *ctx, size_t i)
{
	return ((const struct adapter_registry *)ctx)->loaded[i]->desc.name;
}

char *adapter_registry_names(const struct adapter_registry *reg)
{
	return str_join_names(reg ? reg->n_loaded : 0, loaded_name, reg, "none");
}

static bool adapter_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 32)
		return false;
	for (const char *p = n; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
			return false;
	return true;
}

/* The file name without directories and without ".so". */
static char *file_stem(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strlen(base);
	if (len > 3 && strcmp(base + len - 3, ".so") == 0)
		len -= 3;
	return strndup(base, len);
}

__attribute__((format(printf, 4, 5))) static int refuse(struct adapter_registry *reg,
							 const char *path, char **ret_err,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *reason = str_vprintf(fmt, ap);
	va_end(ap);
	if (ret_err && asprintf(ret_err, "%s: %s", path, reason ? reason : "refused") < 0)
		*ret_err = NULL;
	struct refused_adapter *r = realloc(reg->refused, (reg->n_refused + 1) * sizeof(*r));
	if (r) {
		reg->refused = r;
		r[reg->n_refused].path = strdup(path);
		r[reg->n_refused].reason = reason;
		reg->n_refused++;
	} else {
		free(reason);
	}
	return -EINVAL;
}

/* Names the entry symbol of another major if the object has one, for the message. */
static int other_major(void *h)
{
	char sym[64];
	for (int m = 0; m < 16; m++) {
		if (m == AMBER_ABI_MAJOR)
			continue;
		snprintf(sym, sizeof(sym), "amber_adapter_entry_v%d", m);
		if (dlsym(h, sym))
			return m;
	}
	return -1;
}

static const char *missing_required_method(const amber_adapter *d)
{
	if (!d->instance_new)
		return "instance_new";
	if (!d->instance_free)
		return "instance_free";
	if (!d->writer_open)
		return "writer_open";
	if (!d->writer_write)
		return "writer_write";
	if (!d->writer_commit)
		return "writer_commit";
	if (!d->writer_free)
		return "writer_free";
	if (!d->reader_open)
		return "reader_open";
	if (!d->reader_read)
		return "reader_read";
	if (!d->reader_free)
		return "reader_free";
	if (!d->remove)
		return "remove";
	return NULL;
}

int adapter_registry_load_file(struct adapter_registry *reg, const char *path, char **ret_err)
{
	if (ret_err)
		*ret_err = NULL;
	struct stat st;
	if (stat(path, &st) < 0)
		return refuse(reg, path, ret_err, "cannot stat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return refuse(reg, path, ret_err, "not a regular file");
	/* The daemon may run as root: a file others can rewrite would run their code. */
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return refuse(reg, path, ret_err,
			      "file is writable by group or others (mode %04o); "
			      "run chmod go-w on it",
			      (unsigned)(st.st_mode & 07777));
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return refuse(reg, path, ret_err,
			      "file is owned by uid %u, neither root nor the user running amber",
			      (unsigned)st.st_uid);

	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return refuse(reg, path, ret_err, "cannot load: %s", dlerror());
	/* From here on the object stays mapped even when refused: its constructors have
	 * run, and unmapping code that may have started threads is not safe. */
	amber_entry_fn entry;
	*(void **)(&entry) = dlsym(h, AMBER_ENTRY_SYMBOL);
	if (!entry) {
		int m = other_major(h);
		if (m >= 0)
			return refuse(reg, path, ret_err,
				      "built for adapter ABI %d (exports amber_adapter_entry_v%d); "
				      "this host speaks ABI %d",
				      m, m, AMBER_ABI_MAJOR);
		return refuse(reg, path, ret_err, "no entry symbol %s: not an Amber adapter",
			      AMBER_ENTRY_SYMBOL);
	}
	const amber_adapter *d = NULL;
	int r = entry(host_services(), &d);
	if (r != 0)
		return refuse(reg, path, ret_err, "entry point failed: %s (%d)",
			      host_code_name(r), r);
	if (!d)
		return refuse(reg, path, ret_err, "entry point returned no descriptor");
	if (d->abi_major != AMBER_ABI_MAJOR)
		return refuse(reg, path, ret_err,
			      "descriptor is for ABI major %u; this host speaks ABI %d",
			      (unsigned)d->abi_major, AMBER_ABI_MAJOR);
	if (d->struct_size < ADAPTER_DESC_SIZE_1_0)
		return refuse(reg, path, ret_err,
			      "descriptor struct_size %u is smaller than ABI 1.0's %zu",
			      (unsigned)d->struct_size, (size_t)ADAPTER_DESC_SIZE_1_0);
	if (d->min_host_abi_minor > AMBER_ABI_MINOR)
		return refuse(reg, path, ret_err,
			      "needs host ABI 1.%u or newer; this host is 1.%d",
			      (unsigned)d->min_host_abi_minor, AMBER_ABI_MINOR);

	struct loaded_adapter *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	size_t n = d->struct_size < sizeof(a->desc) ? d->struct_size : sizeof(a->desc);
	memcpy(&a->desc, d, n);
	a->desc_size = d->struct_size;
	a->handle = h;
	const amber_adapter *c = &a->desc;

	char *stem = file_stem(path);
	const char *missing;
	char *schema_err = NULL;
	if (!c->name || !adapter_name_ok(c->name))
		r = refuse(reg, path, ret_err, "adapter name '%s' is not [a-z0-9_]{1,32}",
			   c->name ? c->name : "(null)");
	else if (!stem || strcmp(stem, c->name) != 0)
		r = refuse(reg, path, ret_err,
			   "descriptor name '%s' differs from the file name '%s.so'", c->name,
			   stem ? stem : "?");
	else if (adapter_registry_find(reg, c->name))
		r = refuse(reg, path, ret_err, "an adapter named '%s' is already loaded from %s",
			   c->name, adapter_registry_find(reg, c->name)->path);
	else if ((missing = missing_required_method(c)))
		r = refuse(reg, path, ret_err, "required method %s is missing", missing);
	else if ((c->caps & (AMBER_CAP_PRESIGN_GET | AMBER_CAP_PRESIGN_RESUMABLE)) && !c->presign)
		r = refuse(reg, path, ret_err, "claims a presign capability without a presign "
					       "method");
	else if ((c->caps & AMBER_CAP_MULTIPART) &&
		 (!c->multipart_create || !c->presign_part || !c->multipart_complete ||
		  !c->multipart_abort))
		r = refuse(reg, path, ret_err, "claims the multipart capability without all of "
					       "multipart_create, presign_part, "
					       "multipart_complete and multipart_abort");
	else if (adapter_config_schema_check(c->config, &schema_err) < 0)
		r = refuse(reg, path, ret_err, "bad config schema: %s",
			   schema_err ? schema_err : "?");
	free(schema_err);
	free(stem);
	if (r < 0) {
		free(a);
		return r;
	}
	if (c->version == NULL)
		a->desc.version = "unknown";
	if (c->description == NULL)
		a->desc.description = "";
	if (d->abi_minor > AMBER_ABI_MINOR)
		log_msg(LOG_LEVEL_NOTICE,
			"%s: built against ABI 1.%u, newer than this host's 1.%d; its newer "
			"features are not used",
			path, (unsigned)d->abi_minor, AMBER_ABI_MINOR);
	if (c->module_init) {
		struct amber_ctx ctx;
		host_ctx_init(&ctx, c->name, NULL, "module_init", NULL);
		r = c->module_init(&ctx);
		if (r != 0) {
			r = refuse(reg, path, ret_err, "module_init failed: %s",
				   ctx.message[0] ? ctx.message : host_code_name(r));
			free(a);
			return r;
		}
	}
	a->path = strdup(path);
	struct loaded_adapter **v = realloc(reg->loaded, (reg->n_loaded + 1) * sizeof(*v));
	if (!a->path || !v) {
		free(a->path);
		free(a);
		if (v)
			reg->loaded = v;
		return -ENOMEM;
	}
	reg->loaded = v;
	reg->loaded[reg->n_loaded++] = a;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int adapter_registry_load_dir(struct adapter_registry *reg, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0 || de->d_name[0] == '.')
			continue;
		char **v = realloc(names, (n + 1) * sizeof(*v));
		if (!v)
			break;
		names = v;
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) >= 0)
			n++;
	}
	closedir(d);
	/* A fixed order keeps "already loaded" decisions the same on every start. */
	qsort(names, n, sizeof(*names), cmp_str);
	int loaded = 0;
	for (size_t i = 0; i < n; i++) {
		char *err = NULL;
		if (adapter_registry_load_file(reg, names[i], &err) == 0)
			loaded++;
		else
			log_msg(LOG_LEVEL_WARNING, "adapter refused: %s", err ? err : names[i]);
		free(err);
		free(names[i]);
	}
	free(names);
	return loaded;
}
