#include "instances.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_config.h"
#include "adapter_loader.h"
#include "config.h"
#include "host.h"
#include "strutil.h"

static void instance_free(struct instance *in)
{
	if (!in)
		return;
	if (in->handle)
		in->ops->instance_free(in->handle);
	adapter_config_free(in->config);
	pthread_mutex_destroy(&in->serial);
	free(in->name);
	free(in);
}

void instance_set_free(struct instance_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		instance_free(set->v[i]);
	free(set->v);
	free(set);
}

static char *unknown_adapter_message(const struct config *cfg, const struct config_instance *ci,
				     const struct adapter_registry *reg)
{
	char *names = adapter_registry_names(reg);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m) {
		free(names);
		return NULL;
	}
	fprintf(m, "%s:%d: adapters.%s: unknown adapter type '%s' (loaded: %s)", cfg->file,
		ci->line, ci->name, ci->type, names ? names : "?");
	for (size_t i = 0; i < reg->n_refused; i++)
		fprintf(m, "; refused %s", reg->refused[i].reason ? reg->refused[i].reason : "");
	fclose(m);
	free(names);
	return buf;
}

static int instance_open(const struct config *cfg, const struct config_instance *ci,
			 const struct adapter_registry *reg, struct instance **ret, char **ret_err)
{
	const struct loaded_adapter *a = adapter_registry_find(reg, ci->type);
	if (!a) {
		*ret_err = unknown_adapter_message(cfg, ci, reg);
		return -ENOENT;
	}
	struct instance *in = calloc(1, sizeof(*in));
	if (!in || !(in->name = strdup(ci->name))) {
		free(in);
		return -ENOMEM;
	}
	pthread_mutex_init(&in->serial, NULL);
	in->adapter = a;
	in->ops = &a->desc;
	in->compression = ci->compression;
	in->level = ci->level;
	char section[128];
	snprintf(section, sizeof(section), "adapters.%s", ci->name);
	int r = adapter_config_new(section, ci->name, a->desc.config, ci->table, cfg->file,
				   config_instance_host_keys, &in->config, ret_err);
	struct amber_ctx ctx;
	host_ctx_init(&ctx, a->desc.name, ci->name, "configure", NULL);
	if (r == 0 && in->ops->config_check) {
		r = in->ops->config_check(in->config, &ctx);
		if (r != 0 && asprintf(ret_err, "%s:%d: adapters.%s: %s", cfg->file, ci->line,
				       ci->name, ctx.message[0] ? ctx.message : host_code_name(r)) < 0)
			*ret_err = NULL;
		if (r != 0)
			r = host_code_to_errno(r);
	}
	if (r == 0) {
		amber_instance *h = NULL;
		int code = in->ops->instance_new(in->config, &ctx, &h);
		if (code != 0) {
			if (asprintf(ret_err, "%s:%d: adapters.%s: %s", cfg->file, ci->line,
				     ci->name, ctx.message[0] ? ctx.message : host_code_name(code)) < 0)
				*ret_err = NULL;
			r = host_code_to_errno(code);
			/* The contract says *ret stays NULL on failure; do not trust it. */
			h = NULL;
		}
		in->handle = h;
	}
	if (r < 0) {
		instance_free(in);
		return r;
	}
	*ret = in;
	return 0;
}

int instance_set_open(const struct config *cfg, const struct adapter_registry *reg,
		      const char *only, struct instance_set **ret, char **ret_err)
{
	*ret_err = NULL;
	struct instance_set *set = calloc(1, sizeof(*set));
	if (!set || !(set->v = calloc(cfg->n_instances ? cfg->n_instances : 1,
				      sizeof(*set->v)))) {
		free(set);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_instances; i++) {
		if (only && strcmp(cfg->instances[i].name, only) != 0)
			continue;
		int r = instance_open(cfg, &cfg->instances[i], reg, &set->v[set->n], ret_err);
		if (r < 0) {
			instance_set_free(set);
			return r;
		}
		set->n++;
	}
	*ret = set;
	return 0;
}

struct instance *instance_set_find(const struct instance_set *set, const char *name)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strcmp(set->v[i]->name, name) == 0)
			return set->v[i];
	return NULL;
}

static const char *instance_name_at(const void *ctx, size_t i)
{
	return ((const struct instance_set *)ctx)->v[i]->name;
}

char *instance_set_names(const struct instance_set *set)
{
	return str_join_names(set ? set->n : 0, instance_name_at, set, "none");
}

void instance_lock(struct instance *in)
{
	if (!(in->ops->caps & AMBER_CAP_CONCURRENT))
		pthread_mutex_lock(&in->serial);
}

void instance_unlock(struct instance *in)
{
	if (!(in->ops->caps & AMBER_CAP_CONCURRENT))
		pthread_mutex_unlock(&in->serial);
}

int instance_call_off_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	int pe = pthread_create(&t, NULL, fn, arg);
	if (pe != 0)
		return -pe;
	pthread_join(t, NULL);
	return 0;
}
