/* Loading adapters: dlopen, the checks that keep a bad shared object out, and the
 * registry of what loaded. Adapters are never unloaded (a dlclose would race with the
 * adapter's thread-local destructors and its libraries' global state). */
#ifndef AMBER_ADAPTER_LOADER_H
#define AMBER_ADAPTER_LOADER_H

#include <amber/adapter.h>
#include <stddef.h>

struct loaded_adapter {
	amber_adapter desc; /* the host's zero-extended copy of the descriptor */
	uint32_t desc_size; /* struct_size as the adapter compiled it */
	char *path;
	void *handle;
};

struct refused_adapter {
	char *path;
	char *reason;
};

struct adapter_registry {
	struct loaded_adapter **loaded;
	size_t n_loaded;
	struct refused_adapter *refused;
	size_t n_refused;
};

int adapter_registry_new(struct adapter_registry **ret);
/* Calls every module_fini; leaves the objects mapped. */
void adapter_registry_free(struct adapter_registry *reg);

/* Loads one adapter file. On refusal returns a negative errno and *ret_err (caller
 * frees) says "<path>: <reason>". Also recorded in reg->refused. */
int adapter_registry_load_file(struct adapter_registry *reg, const char *path, char **ret_err);
/* Loads every *.so in dir; refusals are logged and recorded, not fatal. Returns the
 * number loaded, or a negative errno when dir cannot be read. */
int adapter_registry_load_dir(struct adapter_registry *reg, const char *dir);

const struct loaded_adapter *adapter_registry_find(const struct adapter_registry *reg,
						   const char *name);
/* "wings, memory" (caller frees); "none" when empty. */
char *adapter_registry_names(const struct adapter_registry *reg);

#endif
