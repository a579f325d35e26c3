/* `amber key ...`: the operator's management of client API keys in the panel store.
 *
 *   amber key create [--description D] --permissions P[,P...] (--server UUID... | --all-servers)
 *   amber key list
 *   amber key revoke IDENTIFIER
 *
 * Takes the arguments after the group word (argv[0] is the verb), the store location
 * ([panel] database, "sqlite:/path" or a bare path) and whether the global --json was
 * given (a --json after the verb works too). `create` prints the new key once, with a
 * note that it cannot be shown again; nothing ever prints a secret after that.
 * Exit codes: 0 ok, 1 failure, 2 usage, 3 not found. */
#ifndef AMBER_CLI_KEYS_H
#define AMBER_CLI_KEYS_H

#include <stdbool.h>

int cli_key_main(int argc, char **argv, const char *database, bool json);

#endif
