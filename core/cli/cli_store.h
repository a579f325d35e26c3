/* What the CLI's panel-side commands (node, server, backups, key) share: opening the
 * panel's store with a clear message, JSON output, times as the panel's API writes
 * them, and the exit codes. */
#ifndef AMBER_CLI_STORE_H
#define AMBER_CLI_STORE_H

#include <jansson.h>
#include <stdint.h>

struct store;

enum cli_exit {
	CLI_OK = 0,
	CLI_FAILURE = 1,
	CLI_USAGE = 2,
	CLI_NOTFOUND = 3,
};

/* CLI_OK with *ret, or the exit code after telling the user why. */
int cli_store_open(const char *database, struct store **ret);
/* Tells the user what failed; CLI_NOTFOUND for -ENOENT, else CLI_FAILURE. */
int cli_store_failure(const char *what, int r);
/* Prints o indented and drops the reference; NULL reports out of memory. */
void cli_print_json(json_t *o);
/* ISO-8601 with offset as the panel's API writes times; "" for 0. */
void cli_iso_time(int64_t t, char out[32]);

#endif
