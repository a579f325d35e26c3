/* Client API keys from the command line. See keys.h for the commands and exit codes. */
#include "keys.h"
#include "cli_store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_keys.h"
#include "store.h"

#define KEY_MAX_SERVERS 256

static void key_usage(FILE *f)
{
	fputs("usage:\n"
	      "  amber key create [--description D] --permissions P[,P...]\n"
	      "                   (--server UUID [--server UUID]... | --all-servers) [--json]\n"
	      "  amber key list   [--json]\n"
	      "  amber key revoke [--json] IDENTIFIER\n"
	      "permissions: backup.read, backup.create, backup.download, backup.delete,\n"
	      "             backup.restore\n",
	      f);
}

/* The fields every command shows about a key; never the secret (it is not known). */
static json_t *key_json(const struct api_key *k)
{
	char perms[API_KEY_PERMS_STR_MAX], created[32], used[32], revoked[32];
	if (api_key_perms_format(k->permissions, perms, sizeof(perms)) < 0)
		perms[0] = 0;
	cli_iso_time(k->created_at, created);
	cli_iso_time(k->last_used_at, used);
	cli_iso_time(k->revoked_at, revoked);
	/* null for an all-servers key */
	json_t *servers = k->all_servers ? NULL : json_array();
	for (size_t i = 0; servers && i < k->n_servers; i++)
		json_array_append_new(servers, json_string(k->servers[i]));
	json_t *p = json_array();
	for (unsigned bit = 1; p && bit <= API_KEY_PERM_ALL; bit <<= 1)
		if (k->permissions & bit)
			json_array_append_new(p, json_string(api_key_perm_name(bit)));
	return json_pack("{s:I, s:s, s:s, s:o*, s:b, s:o*, s:s, s:s?, s:b, s:s?}", "id",
			 (json_int_t)k->id, "identifier", k->identifier, "description",
			 k->description, "permissions", p, "all_servers", k->all_servers,
			 "servers", servers, "created_at", created,
			 "last_used_at", *used ? used : NULL, "revoked", k->revoked,
			 "revoked_at", *revoked ? revoked : NULL);
}

static int key_create(int argc, char **argv, const char *database, bool json)
{
	static const struct option lo[] = {
		{ "description", required_argument, 0, 'd' },
		{ "permissions", required_argument, 0, 'p' },
		{ "server", required_argument, 0, 's' },
		{ "all-servers", no_argument, 0, 'a' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *description = NULL, *perms_s = NULL;
	const char *servers[KEY_MAX_SERVERS];
	size_t n = 0;
	bool all = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': description = optarg; break;
		case 'p': perms_s = optarg; break;
		case 's':
			if (n == KEY_MAX_SERVERS) {
				fprintf(stderr, "amber: at most %d --server options\n",
					KEY_MAX_SERVERS);
				return CLI_USAGE;
			}
			servers[n++] = optarg;
			break;
		case 'a': all = true; break;
		case 'j': json = true; break;
		case 'h': key_usage(stdout); return CLI_OK;
		default: key_usage(stderr); return CLI_USAGE;
		}
	}
	if (optind < argc || !perms_s || all == (n > 0)) {
		key_usage(stderr);
		return CLI_USAGE;
	}
	unsigned perms;
	if (api_key_perms_parse(perms_s, &perms) < 0) {
		fprintf(stderr, "amber: --permissions: not a list of known permissions\n");
		key_usage(stderr);
		return CLI_USAGE;
	}
	if (description && (strlen(description) > API_KEY_DESCRIPTION_MAX)) {
		fprintf(stderr, "amber: --description: at most %d bytes\n",
			API_KEY_DESCRIPTION_MAX);
		return CLI_USAGE;
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	char *plain = NULL;
	int64_t id = 0;
	int64_t now = (int64_t)time(NULL);
	int r = api_key_create(st, description, perms, servers, n, all, now, &plain, &id);
	if (r == -EINVAL) {
		fprintf(stderr, "amber: invalid key: --server must be canonical UUIDs and "
				"--description printable text\n");
		rc = CLI_USAGE;
	} else if (r == -ENOENT) {
		fprintf(stderr, "amber: creating the key: a --server is not a known server\n");
		rc = CLI_NOTFOUND;
	} else if (r < 0) {
		rc = cli_store_failure("creating the key", r);
	}
	/* The key as stored, for the details shown alongside the secret. */
	struct api_key *k = NULL;
	if (rc == CLI_OK) {
		char ident[API_KEY_IDENTIFIER_LEN + 1];
		memcpy(ident, plain, API_KEY_IDENTIFIER_LEN);
		ident[API_KEY_IDENTIFIER_LEN] = 0;
		r = api_key_get(st, ident, &k);
		if (r < 0)
			rc = cli_store_failure("reading the new key back", r);
	}
	if (rc == CLI_OK && json) {
		json_t *o = key_json(k);
		if (o) {
			json_object_set_new(o, "key", json_string(plain));
			json_object_set_new(o, "note",
					    json_string("the key cannot be shown again"));
		}
		cli_print_json(o);
	} else if (rc == CLI_OK) {
		char p[API_KEY_PERMS_STR_MAX];
		if (api_key_perms_format(k->permissions, p, sizeof(p)) < 0)
			p[0] = 0;
		printf("key %s created (permissions %s, %s)\n", k->identifier, p,
		       k->all_servers ? "all servers" : "the given servers");
		printf("%s\n", plain);
		printf("Store this key now: it cannot be shown again.\n");
	}
	fflush(stdout);
	api_key_free(k);
	api_key_plaintext_free(plain);
	store_close(st);
	return rc;
}

static int key_list(int argc, char **argv, const char *database, bool json)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': key_usage(stdout); return CLI_OK;
		default: key_usage(stderr); return CLI_USAGE;
		}
	}
	if (optind < argc) {
		key_usage(stderr);
		return CLI_USAGE;
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	struct api_key *v = NULL;
	size_t n = 0;
	int r = api_key_list(st, &v, &n);
	if (r < 0) {
		rc = cli_store_failure("listing keys", r);
	} else if (json) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			json_array_append_new(a, key_json(&v[i]));
		cli_print_json(a);
	} else {
		printf("%-16s  %-7s  %-25s  %-25s  %-27s  %s\n", "IDENTIFIER", "REVOKED",
		       "CREATED", "LAST USED", "PERMISSIONS", "SERVERS  DESCRIPTION");
		for (size_t i = 0; i < n; i++) {
			const struct api_key *k = &v[i];
			char p[API_KEY_PERMS_STR_MAX], created[32], used[32];
			if (api_key_perms_format(k->permissions, p, sizeof(p)) < 0)
				p[0] = 0;
			cli_iso_time(k->created_at, created);
			cli_iso_time(k->last_used_at, used);
			printf("%-16s  %-7s  %-25s  %-25s  %-27s  ", k->identifier,
			       k->revoked ? "yes" : "no", created, *used ? used : "never", p);
			if (k->all_servers)
				printf("all");
			for (size_t j = 0; j < k->n_servers; j++)
				printf("%s%s", j ? "," : "", k->servers[j]);
			printf("  %s\n", k->description);
		}
	}
	fflush(stdout);
	api_key_list_free(v, n);
	store_close(st);
	return rc;
}

static int key_revoke(int argc, char **argv, const char *database, bool json)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': key_usage(stdout); return CLI_OK;
		default: key_usage(stderr); return CLI_USAGE;
		}
	}
	if (optind + 1 != argc || !*argv[optind]) {
		key_usage(stderr);
		return CLI_USAGE;
	}
	const char *ident = argv[optind];
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	int r = api_key_revoke(st, ident, (int64_t)time(NULL));
	if (r == -ENOENT || r == -EINVAL) {
		fprintf(stderr, "amber: no API key '%s'\n", ident);
		rc = CLI_NOTFOUND;
	} else if (r < 0) {
		rc = cli_store_failure("revoking the key", r);
	} else if (json) {
		cli_print_json(json_pack("{s:s, s:b}", "identifier", ident, "revoked", 1));
	} else {
		printf("key %s revoked\n", ident);
	}
	fflush(stdout);
	store_close(st);
	return rc;
}

int cli_key_main(int argc, char **argv, const char *database, bool json)
{
	if (argc < 1 || !argv[0]) {
		key_usage(stderr);
		return CLI_USAGE;
	}
	const char *verb = argv[0];
	if (strcmp(verb, "create") == 0)
		return key_create(argc, argv, database, json);
	if (strcmp(verb, "list") == 0)
		return key_list(argc, argv, database, json);
	if (strcmp(verb, "revoke") == 0)
		return key_revoke(argc, argv, database, json);
	if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0) {
		key_usage(stdout);
		return CLI_OK;
	}
	key_usage(stderr);
	return CLI_USAGE;
}
