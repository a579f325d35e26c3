/* `amber node|server|backups ...`: the operator's administration of the panel store
 * (nodes and their remote-API tokens, servers, the backups recorded for them).
 *
 * Each function takes the arguments after the group word (argv[0] is the verb: "add",
 * "list"), the store location from the configuration ([panel] database, "sqlite:/path"
 * or a bare path) and whether the global --json was given (a --json after the verb
 * works too). Results go to stdout, as a table or as JSON; messages go to stderr.
 * Tokens are never printed. Exit codes: 0 ok, 1 failure, 2 usage, 3 not found. */
#ifndef AMBER_CLI_ADMIN_H
#define AMBER_CLI_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

/* amber node add --name N --url U --token-id ID (--token T | --token-file F)
 * amber node list */
int cli_node_main(int argc, char **argv, const char *database, bool json);
/* amber server add --uuid U --node NAME [--backup-limit N]
 * amber server list [--node NAME]
 * default_limit: the backup limit of a server added without --backup-limit
 * ([panel] backup_limit). */
int cli_server_main(int argc, char **argv, const char *database, int64_t default_limit,
		    bool json);
/* amber backups list [--server UUID] */
int cli_backups_main(int argc, char **argv, const char *database, bool json);

#endif
