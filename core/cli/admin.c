/* Administration of the panel store from the command line: nodes, servers, backups.
 * See admin.h for the commands and exit codes. */
#include "admin.h"
#include "cli_store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

/* Longest token or token id accepted; the remote API carries both in one header. */
#define TOKEN_MAX 512

/* Characters a token (or its id) may hold: the remote API sends `<id>.<token>` in a
 * header and splits it on the dot, so neither part may contain one, nor anything a
 * header cannot carry. */
static bool token_chars_ok(const char *s)
{
	if (!*s || strlen(s) > TOKEN_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '.')
			return false;
	return true;
}

/* The first line of a file, without its line ending; NULL (and a message) if it cannot
 * be read or is empty. */
static char *read_token_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "amber: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	if (n <= 0) {
		fprintf(stderr, "amber: %s: no token on its first line\n", path);
		free(line);
		return NULL;
	}
	return line;
}

/* ---- node ---- */

static void usage_node(FILE *f)
{
	fputs("usage:\n"
	      "  amber node add --name NAME --url URL --token-id ID (--token-file FILE | --token T)\n"
	      "                 [--json]\n"
	      "  amber node list [--json]\n"
	      "--token-file keeps the token out of the process list; it is never printed.\n",
	      f);
}

static json_t *node_json(const struct store_node *n)
{
	return json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)n->id, "name", n->name, "url",
			 n->url, "token_id", n->token_id);
}

static int node_add(int argc, char **argv, const char *database, bool json)
{
	static const struct option lo[] = {
		{ "name", required_argument, 0, 'n' },	 { "url", required_argument, 0, 'u' },
		{ "token-id", required_argument, 0, 'i' }, { "token", required_argument, 0, 't' },
		{ "token-file", required_argument, 0, 'f' }, { "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },	 { 0, 0, 0, 0 },
	};
	const char *name = NULL, *url = NULL, *token_id = NULL, *token = NULL, *file = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'u': url = optarg; break;
		case 'i': token_id = optarg; break;
		case 't': token = optarg; break;
		case 'f': file = optarg; break;
		case 'j': json = true; break;
		case 'h': usage_node(stdout); return CLI_OK;
		default: usage_node(stderr); return CLI_USAGE;
		}
	}
	if (optind < argc || !name || !*name || !url || !token_id || !!token == !!file) {
		usage_node(stderr);
		return CLI_USAGE;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "amber: --url must be an http:// or https:// URL\n");
		return CLI_USAGE;
	}
	if (!token_chars_ok(token_id)) {
		fprintf(stderr, "amber: --token-id must be 1-%d printable characters without "
				"spaces or dots\n", TOKEN_MAX);
		return CLI_USAGE;
	}
	char *from_file = NULL;
	if (file && !(token = from_file = read_token_file(file)))
		return CLI_USAGE;
	if (!token_chars_ok(token)) {
		/* Says what is wrong, never what the token is. */
		fprintf(stderr, "amber: the token must be 1-%d printable characters without "
				"spaces or dots\n", TOKEN_MAX);
		free(from_file);
		return CLI_USAGE;
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK) {
		free(from_file);
		return rc;
	}
	int64_t id = 0;
	int r = store_node_add(st, name, url, token_id, token, &id);
	free(from_file);
	if (r == -EEXIST) {
		fprintf(stderr, "amber: a node named '%s' or with token id '%s' already exists\n",
			name, token_id);
		rc = CLI_FAILURE;
	} else if (r < 0) {
		rc = cli_store_failure("adding the node", r);
	} else if (json) {
		struct store_node n = { .id = id, .name = (char *)name, .url = (char *)url,
					.token_id = (char *)token_id };
		cli_print_json(node_json(&n));
	} else {
		printf("node %s added (id %" PRId64 ", token id %s)\n", name, id, token_id);
	}
	store_close(st);
	return rc;
}

static int node_list(int argc, char **argv, const char *database, bool json)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			usage_node(stderr);
			return CLI_USAGE;
		}
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	struct store_node *v = NULL;
	size_t n = 0;
	int r = store_node_list(st, &v, &n);
	if (r < 0) {
		rc = cli_store_failure("listing nodes", r);
	} else if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n && a; i++)
			json_array_append_new(a, node_json(&v[i]));
		cli_print_json(a);
	} else {
		printf("%-6s %-20s %-24s %s\n", "ID", "NAME", "TOKEN_ID", "URL");
		for (size_t i = 0; i < n; i++)
			printf("%-6" PRId64 " %-20s %-24s %s\n", v[i].id, v[i].name, v[i].token_id,
			       v[i].url);
	}
	store_node_list_free(v, n);
	store_close(st);
	return rc;
}

int cli_node_main(int argc, char **argv, const char *database, bool json)
{
	if (argc >= 1 && strcmp(argv[0], "add") == 0)
		return node_add(argc, argv, database, json);
	if (argc >= 1 && strcmp(argv[0], "list") == 0)
		return node_list(argc, argv, database, json);
	usage_node(stderr);
	return CLI_USAGE;
}

/* ---- server ---- */

static void usage_server(FILE *f)
{
	fputs("usage:\n"
	      "  amber server add --uuid UUID --node NAME [--backup-limit N] [--json]\n"
	      "  amber server list [--node NAME] [--json]\n"
	      "The backup limit defaults to [panel] backup_limit; 0 allows no backups.\n",
	      f);
}

/* The node named name: 0 and *ret_id, CLI_NOTFOUND or CLI_FAILURE (message
 * printed). */
static int node_by_name(struct store *st, const char *name, int64_t *ret_id)
{
	struct store_node *v = NULL;
	size_t n = 0;
	int r = store_node_list(st, &v, &n);
	if (r < 0)
		return cli_store_failure("listing nodes", r);
	int rc = CLI_NOTFOUND;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].name, name) == 0) {
			*ret_id = v[i].id;
			rc = CLI_OK;
		}
	}
	store_node_list_free(v, n);
	if (rc == CLI_NOTFOUND)
		fprintf(stderr, "amber: no node named '%s'\n", name);
	return rc;
}

static const char *node_name_of(const struct store_node *v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return v[i].name;
	return "?";
}

static json_t *server_json(const struct store_server *s, const char *node)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s?}", "uuid", s->uuid, "short_id",
			 s->short_id, "node", node, "node_id", (json_int_t)s->node_id,
			 "backup_limit", (json_int_t)s->backup_limit, "state", s->state);
}

static int server_add(int argc, char **argv, const char *database, int64_t limit, bool json)
{
	static const struct option lo[] = {
		{ "uuid", required_argument, 0, 'u' },	{ "node", required_argument, 0, 'n' },
		{ "backup-limit", required_argument, 0, 'l' }, { "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },	{ 0, 0, 0, 0 },
	};
	const char *uuid = NULL, *node = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': uuid = optarg; break;
		case 'n': node = optarg; break;
		case 'l': {
			char *end;
			errno = 0;
			long long v = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0) {
				fprintf(stderr, "amber: --backup-limit must be a number >= 0\n");
				return CLI_USAGE;
			}
			limit = v;
			break;
		}
		case 'j': json = true; break;
		case 'h': usage_server(stdout); return CLI_OK;
		default: usage_server(stderr); return CLI_USAGE;
		}
	}
	if (optind < argc || !uuid || !node) {
		usage_server(stderr);
		return CLI_USAGE;
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	int64_t node_id = 0;
	rc = node_by_name(st, node, &node_id);
	if (rc == CLI_OK) {
		int r = store_server_add(st, uuid, node_id, limit);
		struct store_server *s = NULL;
		if (r == 0)
			r = store_server_get(st, uuid, &s);
		if (r == -EINVAL) {
			fprintf(stderr, "amber: '%s' is not a canonical UUID\n", uuid);
			rc = CLI_USAGE;
		} else if (r == -EEXIST) {
			fprintf(stderr, "amber: a server with uuid %s (or its short id) exists\n",
				uuid);
			rc = CLI_FAILURE;
		} else if (r < 0) {
			rc = cli_store_failure("adding the server", r);
		} else if (json) {
			cli_print_json(server_json(s, node));
		} else {
			printf("server %s (%s) added on node %s, backup limit %" PRId64 "\n",
			       s->uuid, s->short_id, node, s->backup_limit);
		}
		store_server_free(s);
	}
	store_close(st);
	return rc;
}

static int server_list(int argc, char **argv, const char *database, bool json)
{
	const char *node = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc) {
			node = argv[++i];
		} else {
			usage_server(stderr);
			return CLI_USAGE;
		}
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	int64_t node_id = 0;
	struct store_node *nodes = NULL;
	size_t n_nodes = 0;
	struct store_server *v = NULL;
	size_t n = 0;
	if (node)
		rc = node_by_name(st, node, &node_id);
	if (rc == CLI_OK) {
		int r = store_node_list(st, &nodes, &n_nodes);
		if (r == 0)
			r = store_server_list(st, node_id, &v, &n);
		if (r < 0)
			rc = cli_store_failure("listing servers", r);
	}
	if (rc == CLI_OK && json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n && a; i++)
			json_array_append_new(a, server_json(&v[i], node_name_of(nodes, n_nodes,
										  v[i].node_id)));
		cli_print_json(a);
	} else if (rc == CLI_OK) {
		printf("%-36s %-8s %-20s %-6s %s\n", "UUID", "SHORT", "NODE", "LIMIT", "STATE");
		for (size_t i = 0; i < n; i++)
			printf("%-36s %-8s %-20s %-6" PRId64 " %s\n", v[i].uuid, v[i].short_id,
			       node_name_of(nodes, n_nodes, v[i].node_id), v[i].backup_limit,
			       v[i].state ? v[i].state : "-");
	}
	store_server_list_free(v, n);
	store_node_list_free(nodes, n_nodes);
	store_close(st);
	return rc;
}

int cli_server_main(int argc, char **argv, const char *database, int64_t default_limit,
		    bool json)
{
	if (argc >= 1 && strcmp(argv[0], "add") == 0)
		return server_add(argc, argv, database, default_limit, json);
	if (argc >= 1 && strcmp(argv[0], "list") == 0)
		return server_list(argc, argv, database, json);
	usage_server(stderr);
	return CLI_USAGE;
}

/* ---- backups ---- */

static void usage_backups(FILE *f)
{
	fputs("usage: amber backups list [--server UUID] [--json]\n", f);
}

static const char *state_name(enum store_backup_state s)
{
	switch (s) {
	case STORE_BACKUP_RUNNING: return "running";
	case STORE_BACKUP_COMPLETED: return "completed";
	case STORE_BACKUP_FAILED: return "failed";
	}
	return "?";
}

static json_t *backup_json(const struct store_backup *b)
{
	char created[32], completed[32];
	cli_iso_time(b->created_at, created);
	cli_iso_time(b->completed_at, completed);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s?, s:s?, s:I, s:s, s:s?}",
			      "uuid", b->uuid, "server_uuid", b->server_uuid, "name", b->name,
			      "adapter", b->adapter, "state", state_name(b->state), "is_locked",
			      b->is_locked, "checksum", b->checksum, "sha256", b->sha256,
			      "bytes", (json_int_t)b->bytes, "created_at", created,
			      "completed_at", completed[0] ? completed : NULL);
	if (o)
		json_object_set_new(o, "is_successful",
				    b->is_successful < 0 ? json_null()
							 : json_boolean(b->is_successful));
	return o;
}

/* Appends a server's backups to out (JSON array) or prints them as table rows. */
static int list_server_backups(struct store *st, const char *server, json_t *out)
{
	struct store_backup *v = NULL;
	size_t n = 0;
	int r = store_backup_list_for_server(st, server, 0, 0, &v, &n);
	if (r == -ENOENT) {
		fprintf(stderr, "amber: no server %s\n", server);
		return CLI_NOTFOUND;
	}
	if (r < 0)
		return cli_store_failure("listing backups", r);
	for (size_t i = 0; i < n; i++) {
		if (out) {
			json_array_append_new(out, backup_json(&v[i]));
			continue;
		}
		char created[32];
		cli_iso_time(v[i].created_at, created);
		printf("%-36s %-36s %-9s %-12" PRId64 " %-25s %s\n", v[i].uuid, v[i].server_uuid,
		       state_name(v[i].state), v[i].bytes, created, v[i].name);
	}
	store_backup_list_free(v, n);
	return CLI_OK;
}

static void print_backup_header(bool json)
{
	if (!json)
		printf("%-36s %-36s %-9s %-12s %-25s %s\n", "UUID", "SERVER", "STATE", "BYTES",
		       "CREATED", "NAME");
}

static int backups_list(int argc, char **argv, const char *database, bool json)
{
	const char *server = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
			server = argv[++i];
		} else {
			usage_backups(stderr);
			return CLI_USAGE;
		}
	}
	struct store *st;
	int rc = cli_store_open(database, &st);
	if (rc != CLI_OK)
		return rc;
	json_t *a = json ? json_array() : NULL;
	if (json && !a) {
		store_close(st);
		return CLI_FAILURE;
	}
	if (server) {
		/* The store takes short ids too; the listing wants the full uuid. */
		struct store_server *s = NULL;
		int r = store_server_get(st, server, &s);
		if (r == -ENOENT || r == -EINVAL) {
			fprintf(stderr, "amber: no server %s\n", server);
			rc = CLI_NOTFOUND;
		} else if (r < 0) {
			rc = cli_store_failure("reading the server", r);
		} else {
			print_backup_header(json);
			rc = list_server_backups(st, s->uuid, a);
		}
		store_server_free(s);
	} else {
		struct store_server *v = NULL;
		size_t n = 0;
		int r = store_server_list(st, 0, &v, &n);
		if (r < 0)
			rc = cli_store_failure("listing servers", r);
		else
			print_backup_header(json);
		for (size_t i = 0; i < n && rc == CLI_OK; i++)
			rc = list_server_backups(st, v[i].uuid, a);
		store_server_list_free(v, n);
	}
	if (a && rc == CLI_OK)
		cli_print_json(a);
	else
		json_decref(a);
	store_close(st);
	return rc;
}

int cli_backups_main(int argc, char **argv, const char *database, bool json)
{
	if (argc >= 1 && strcmp(argv[0], "list") == 0)
		return backups_list(argc, argv, database, json);
	usage_backups(stderr);
	return CLI_USAGE;
}
