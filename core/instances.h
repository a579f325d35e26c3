/* Adapter instances: each [adapters.<name>] of the configuration bound to a loaded
 * adapter, its checked configuration, and the adapter's instance object. Calls on an
 * instance go through instance_lock/unlock, which serialise them unless the adapter
 * says it is safe to run them concurrently (AMBER_CAP_CONCURRENT). */
#ifndef AMBER_INSTANCES_H
#define AMBER_INSTANCES_H

#include <amber/adapter.h>
#include <pthread.h>
#include <stddef.h>

#include "archive_create.h"

struct adapter_registry;
struct config;
struct loaded_adapter;

struct instance {
	char *name;
	const struct loaded_adapter *adapter;
	const amber_adapter *ops; /* &adapter->desc */
	amber_config *config;
	amber_instance *handle;
	/* How backups created here are compressed (the [adapters.<name>] host keys). */
	enum archive_compression compression;
	enum archive_level level;
	pthread_mutex_t serial;
};

struct instance_set {
	struct instance **v;
	size_t n;
};

/* Opens every configured instance, or only the one named `only` when it is not NULL.
 * 0, or a negative errno with *ret_err (caller frees) naming the file, the instance
 * and what is wrong (an unknown adapter names the ones that are loaded, and why others
 * were refused). */
int instance_set_open(const struct config *cfg, const struct adapter_registry *reg,
		      const char *only, struct instance_set **ret, char **ret_err);
void instance_set_free(struct instance_set *set);
struct instance *instance_set_find(const struct instance_set *set, const char *name);
/* "a, b" (caller frees). */
char *instance_set_names(const struct instance_set *set);

/* The ABI promises adapters that their calls never run on the HTTP server's threads
 * (THREADING rule 5): a request's adapter work runs fn(arg) on a thread of its own,
 * joined before this returns. 0, or a negative errno if the thread cannot start. */
int instance_call_off_thread(void *(*fn)(void *), void *arg);
void instance_lock(struct instance *in);
void instance_unlock(struct instance *in);

#endif
