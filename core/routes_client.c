/* The client API's handlers. See routes_client.h for the routes; the status codes,
 * error codes and messages follow seed 004 where it speaks (design.md §4) and the
 * reference panel (protocol §5) where it does not.
 *
 * Order of checks in every route: the key (401), the server and the key's scope (404:
 * a key does not learn of servers it cannot touch), the permission (403), then the
 * backup (404 also when it belongs to another server). */
#include "routes_client.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_keys.h"
#include "backup.h"
#include "host.h"
#include "http.h"
#include "instances.h"
#include "jwt.h"
#include "log.h"
#include "node_client.h"
#include "store.h"
#include "strutil.h"
#include "uuid.h"

#define N_ROUTES 9
#define DEFAULT_DOWNLOAD_TTL_S 3600u
#define PER_PAGE_DEFAULT 20
#define PER_PAGE_MAX 100
#define NAME_MAX_CHARS 191
/* Reading progress must not hold a details request for a node's full timeout. */
#define PROGRESS_TIMEOUT_MS 3000u
/* The panel's download tokens allow for clocks five minutes apart (protocol §2.4). */
#define NBF_SKEW_S 300

struct client_service {
	struct store *store;
	struct instance_set *instances;
	char *default_adapter;
	uint64_t max_backup_size;
	int64_t throttle_limit, throttle_period_s, retention_s;
	unsigned download_ttl_s, node_url_ttl_s, node_timeout_ms, node_connect_timeout_ms;
	struct http_route routes[N_ROUTES];
};

static const char MSG_NOT_FOUND[] = "The requested resource could not be found on the server.";
static const char MSG_RESTORING[] =
	"This server is currently restoring from a backup, please try again later.";

/* ---- answers ---- */

static int respond(struct http_request *req, unsigned status, const char *code,
		   const char *detail)
{
	http_respond_panel_error(req, status, code, detail);
	return -EPROTO; /* answered: the caller stops */
}

static int respond_internal(struct http_request *req, const char *what, int err)
{
	log_msg(LOG_LEVEL_ERR, "client api: request %s: %s: %s", http_request_id(req), what,
		strerror(err < 0 ? -err : EIO));
	return respond(req, 500, "HttpException",
		       "An unexpected error was encountered while processing this request, "
		       "please try again.");
}

/* A 200 with body (a new reference, or NULL when building it ran out of memory). */
static void respond_ok(struct http_request *req, json_t *body)
{
	if (body)
		http_respond_json(req, 200, body);
	else
		respond_internal(req, "answering", -ENOMEM);
}

/* A field that does not pass validation: Laravel's shape, with 400 as status. */
static int respond_invalid(struct http_request *req, const char *field, const char *rule,
			   const char *detail)
{
	json_t *e = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "code", "ValidationException",
			      "status", "400", "detail", detail, "meta", "source_field", field,
			      "rule", rule);
	json_t *body = e ? json_pack("{s:[o]}", "errors", e) : NULL;
	if (!body)
		return respond_internal(req, "answering", -ENOMEM);
	http_respond_json(req, 400, body);
	return -EINVAL;
}

/* ---- the request's key, server and backup ---- */

struct call {
	struct api_key *key;
	struct store_server *server;
	struct store_backup *backup;
};

static void call_clear(struct call *c)
{
	api_key_free(c->key);
	store_server_free(c->server);
	store_backup_free(c->backup);
}

static bool key_reaches(const struct api_key *k, const char *server_uuid)
{
	if (k->all_servers)
		return true;
	for (size_t i = 0; i < k->n_servers; i++)
		if (strcmp(k->servers[i], server_uuid) == 0)
			return true;
	return false;
}

/* The checks every route starts with; perm is the API_KEY_PERM_* bit the route needs
 * (0: any key that reaches the server).
 * 0, or a negative errno once the refusal has been answered. */
static int begin(struct client_service *svc, struct http_request *req, unsigned perm,
		 bool with_backup, struct call *c)
{
	memset(c, 0, sizeof(*c));
	const char *auth = http_request_header(req, "Authorization");
	int r = auth ? api_key_check(svc->store, auth, (int64_t)time(NULL), &c->key) : -EACCES;
	if (r == -EACCES || r == -EINVAL) {
		http_response_header(req, "WWW-Authenticate", "Bearer");
		return respond(req, 401, "InvalidCredentialsException",
			       auth ? "The API key provided is not valid."
				    : "Unauthenticated: an Authorization: Bearer ptlc_... header "
				      "is required.");
	}
	if (r < 0)
		return respond_internal(req, "checking the API key", r);
	r = store_server_get(svc->store, http_request_param(req, "server"), &c->server);
	if (r == -ENOENT || (r == 0 && !key_reaches(c->key, c->server->uuid)))
		return respond(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
	if (r < 0)
		return respond_internal(req, "reading the server", r);
	if (perm && !api_key_allows(c->key, perm, c->server->uuid)) {
		char detail[160];
		snprintf(detail, sizeof(detail),
			 "This action is unauthorized: the API key lacks the %s permission.",
			 api_key_perm_name(perm));
		return respond(req, 403, "InsufficientPermissionsException", detail);
	}
	if (!with_backup)
		return 0;
	r = store_backup_get(svc->store, http_request_param(req, "backup"), &c->backup);
	if (r == -ENOENT || (r == 0 && strcmp(c->backup->server_uuid, c->server->uuid) != 0))
		return respond(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
	if (r < 0)
		return respond_internal(req, "reading the backup", r);
	return 0;
}

/* Routes that change files or backups wait while a restore runs (protocol §5). */
static int refuse_if_busy(struct http_request *req, const struct store_server *s)
{
	if (!s->state)
		return 0;
	return respond(req, 409, "ConflictingServerStateException", MSG_RESTORING);
}

/* ---- the body ---- */

/* A JSON object; an empty body counts as {} (every field of these routes is
 * optional). 0, or a negative errno once the error has been answered. */
static int read_body(struct http_request *req, json_t **ret)
{
	*ret = NULL;
	size_t len;
	const char *body = http_request_body(req, &len);
	size_t i = 0;
	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (i == len) {
		*ret = json_object();
		return *ret ? 0 : respond_internal(req, "reading the body", -ENOMEM);
	}
	const char *ct = http_request_header(req, "Content-Type");
	if (!ct || !strcasestr(ct, "json"))
		return respond(req, 415, "UnsupportedMediaTypeHttpException",
			       "The request body must be JSON (Content-Type: application/json).");
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		char detail[256];
		snprintf(detail, sizeof(detail),
			 "The data passed in the request was not in a parsable JSON format: %s "
			 "(line %d, column %d).",
			 jerr.text, jerr.line, jerr.column);
		return respond(req, 400, "BadRequestHttpException", detail);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return respond(req, 400, "BadRequestHttpException",
			       "The request body must be a JSON object.");
	}
	*ret = j;
	return 0;
}

/* An optional boolean field: def when absent or null; -1 (answered) when invalid. */
static int bool_field(struct http_request *req, const json_t *body, const char *name, int def)
{
	json_t *v = json_object_get(body, name);
	if (!v || json_is_null(v))
		return def;
	int b = http_json_bool(v);
	if (b < 0) {
		char detail[96];
		snprintf(detail, sizeof(detail), "The %s field must be true or false.", name);
		respond_invalid(req, name, "boolean", detail);
	}
	return b;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* The `ignored` field as patterns, one per line: lines (LF or CRLF) and unescaped
 * commas both separate patterns (seeds 003 and 004); blanks around them and empty
 * ones are dropped. A "\," stays in the pattern, where the matcher reads it as a
 * literal comma. Returns a new string ("" for none) or NULL. */
static char *normalize_ignored(const char *in)
{
	char *out = malloc(strlen(in) + 1), *o = out;
	if (!out)
		return NULL;
	const char *p = in;
	while (*p) {
		const char *start = p;
		while (*p && *p != '\n' && *p != ',') {
			if (*p == '\\' && p[1] == ',')
				p++;
			p++;
		}
		const char *end = p;
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end > start) {
			if (o > out)
				*o++ = '\n';
			memcpy(o, start, (size_t)(end - start));
			o += end - start;
		}
		if (*p)
			p++;
	}
	*o = 0;
	return out;
}

/* ---- the backup object ---- */

static json_t *iso_time(int64_t t)
{
	if (t <= 0)
		return json_null();
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[40];
	if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S+00:00", &tm))
		return json_null();
	return json_string(buf);
}

static json_t *lines_array(const char *s)
{
	json_t *a = json_array();
	while (a && s && *s) {
		size_t n = strcspn(s, "\n");
		if (n)
			json_array_append_new(a, json_stringn(s, n));
		s += n + (s[n] == '\n');
	}
	return a;
}

/* {"object":"backup","attributes":{...}}; progress (a new reference, or NULL) is
 * shown while the backup runs. */
static json_t *backup_object(const struct store_backup *b, json_t *progress)
{
	char *sum = b->checksum ? str_printf("sha1:%s", b->checksum) : NULL;
	json_t *a = json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:b}", "uuid",
			      b->uuid, "name", b->name, "ignored_files", lines_array(b->ignored),
			      "checksum", sum ? json_string(sum) : json_null(), "sha256_hash",
			      b->sha256 ? json_string(b->sha256) : json_null(), "bytes",
			      (json_int_t)b->bytes, "created_at", iso_time(b->created_at),
			      "completed_at", iso_time(b->completed_at), "is_successful",
			      b->is_successful < 0 ? json_null() : json_boolean(b->is_successful),
			      "is_locked", (int)b->is_locked);
	free(sum);
	if (a && b->state == STORE_BACKUP_FAILED)
		json_object_set_new(a, "failure_reason",
				    b->failure_reason ? json_string(b->failure_reason) : json_null());
	if (a && b->state == STORE_BACKUP_RUNNING)
		json_object_set(a, "progress", progress ? progress : json_null());
	json_decref(progress);
	return a ? json_pack("{s:s, s:o}", "object", "backup", "attributes", a) : NULL;
}

/* ---- the node that hosts a server ---- */

struct node_conn {
	struct store_node *node;
	struct node_client *client;
	struct node_status st;
};

static void node_conn_clear(struct node_conn *nc)
{
	node_client_free(nc->client);
	store_node_free(nc->node);
}

/* Looks up the server's node and makes a client for it. With answer, a failure has been
 * answered on req (502/500) when this returns; without, it is only returned (the caller
 * can do without the node). req may be NULL when answer is false. */
static int node_connect(struct client_service *svc, struct http_request *req, bool answer,
			const struct store_server *s, unsigned timeout_ms, struct node_conn *nc)
{
	memset(nc, 0, sizeof(*nc));
	int r = store_node_get(svc->store, s->node_id, &nc->node);
	if (r < 0)
		return answer ? respond_internal(req, "reading the server's node", r) : r;
	char detail[256];
	if (!nc->node->token) {
		if (!answer)
			return -ENOKEY;
		snprintf(detail, sizeof(detail),
			 "The panel holds no token for node '%s' (registered by an older "
			 "version): add it again with amber node add.",
			 nc->node->name);
		return respond(req, 502, "DaemonConnectionException", detail);
	}
	struct node_client_config cc = {
		.base_url = nc->node->url,
		.token = nc->node->token,
		.timeout_ms = timeout_ms,
		.connect_timeout_ms = svc->node_connect_timeout_ms,
		.request_id = req ? http_request_id(req) : NULL,
	};
	r = node_client_new(&cc, &nc->client);
	if (r < 0 && answer) {
		snprintf(detail, sizeof(detail), "Node '%s' has an unusable address or token: %s.",
			 nc->node->name, strerror(-r));
		return respond(req, 502, "DaemonConnectionException", detail);
	}
	return r;
}

/* Answers a node call that did not succeed, and logs it once. */
static int respond_node_error(struct http_request *req, const struct node_conn *nc, int r,
			      const char *what)
{
	const char *rid = http_request_id(req);
	const char *msg = nc->st.message[0] ? nc->st.message : strerror(-r);
	log_msg(LOG_LEVEL_WARNING,
		"client api: request %s: %s on node %s (%s): %s (HTTP %ld, node request id %s)",
		rid, what, nc->node->name, nc->node->url, msg, nc->st.http_status,
		nc->st.request_id[0] ? nc->st.request_id : "-");
	char detail[512];
	switch (r) {
	case -EHOSTUNREACH:
		snprintf(detail, sizeof(detail),
			 "Could not reach node '%s', which hosts this server: %s. Request id %s.",
			 nc->node->name, msg, rid);
		return respond(req, 502, "DaemonConnectionException", detail);
	case -ETIMEDOUT:
		snprintf(detail, sizeof(detail),
			 "Node '%s', which hosts this server, did not answer in time. Request id "
			 "%s.",
			 nc->node->name, rid);
		return respond(req, 504, "DaemonConnectionException", detail);
	case -EBUSY:
		return respond(req, 409, "ConflictingServerStateException",
			       "The node is already running a backup or restore for this server.");
	case -ENOSPC:
		snprintf(detail, sizeof(detail), "%s",
			 nc->st.message[0] ? nc->st.message
					   : "Not enough storage space available for backup.");
		return respond(req, 507, "InsufficientStorageException", detail);
	default:
		snprintf(detail, sizeof(detail),
			 "Node '%s' refused the request (HTTP %ld): %s. Request id %s.",
			 nc->node->name, nc->st.http_status, msg, rid);
		return respond(req, 502, "DaemonConnectionException", detail);
	}
}

/* ---- GET /api/client/servers/:server ---- */

/* The server as the panel's client API shows it, reduced to what backups need: a
 * script polls `status` (null, or "restoring_backup" until the node reports) to know
 * when a restore has finished. Any permission on the server lets a key read it. */
static int h_server(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	if (begin(svc, req, 0, false, &c) == 0) {
		json_t *o = json_pack("{s:s, s:{s:s, s:s, s:o, s:{s:I}}}", "object", "server",
				      "attributes", "identifier", c.server->short_id, "uuid",
				      c.server->uuid, "status",
				      c.server->state ? json_string(c.server->state) : json_null(),
				      "feature_limits", "backups",
				      (json_int_t)c.server->backup_limit);
		respond_ok(req, o);
	}
	call_clear(&c);
	return 0;
}

/* ---- GET /backups ---- */

/* A positive integer query argument, def when absent; -1 when malformed. */
static long long query_int(struct http_request *req, const char *name, long long def)
{
	const char *v = http_request_query(req, name);
	if (!v)
		return def;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < 1)
		return -1;
	return n;
}

static json_t *page_link(struct http_request *req, long long page, long long per_page)
{
	const char *host = http_request_header(req, "Host");
	const char *proto = http_request_header(req, "X-Forwarded-Proto");
	char *url = str_printf("%s%s%s?page=%lld&per_page=%lld",
			       host ? (proto && !strcasecmp(proto, "https") ? "https://" : "http://")
				    : "",
			       host ? host : "", http_request_path(req), page, per_page);
	json_t *j = url ? json_string(url) : NULL;
	free(url);
	return j;
}

static int h_list(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	int r = begin(svc, req, API_KEY_PERM_BACKUP_READ, false, &c);
	if (r < 0)
		goto out;
	long long page = query_int(req, "page", 1);
	long long per_page = query_int(req, "per_page", PER_PAGE_DEFAULT);
	if (page < 0 || page > INT32_MAX) {
		r = respond_invalid(req, "page", "integer", "The page must be a whole number from 1.");
		goto out;
	}
	if (per_page < 0) {
		r = respond_invalid(req, "per_page", "integer",
				    "The per page value must be a whole number from 1.");
		goto out;
	}
	if (per_page > PER_PAGE_MAX)
		per_page = PER_PAGE_MAX;
	int64_t total = 0, counted = 0;
	struct store_backup *v = NULL;
	size_t n = 0;
	r = store_backup_total_for_server(svc->store, c.server->uuid, &total);
	if (r == 0)
		r = store_backup_count_for_server(svc->store, c.server->uuid, &counted);
	if (r == 0)
		r = store_backup_list_for_server(svc->store, c.server->uuid, (size_t)per_page,
						 (size_t)((page - 1) * per_page), &v, &n);
	if (r < 0) {
		r = respond_internal(req, "listing backups", r);
		goto out;
	}
	json_t *data = json_array();
	for (size_t i = 0; data && i < n; i++)
		json_array_append_new(data, backup_object(&v[i], NULL));
	store_backup_list_free(v, n);
	long long pages = total ? (total + per_page - 1) / per_page : 1;
	json_t *links = json_object();
	if (links && page > 1)
		json_object_set_new(links, "previous",
				    page_link(req, page - 1 < pages ? page - 1 : pages, per_page));
	if (links && page < pages)
		json_object_set_new(links, "next", page_link(req, page + 1, per_page));
	json_t *body = json_pack("{s:s, s:o, s:{s:{s:I, s:I, s:I, s:I, s:I, s:o}, s:I}}",
				 "object", "list", "data", data, "meta", "pagination", "total",
				 (json_int_t)total, "count", (json_int_t)n, "per_page",
				 (json_int_t)per_page, "current_page", (json_int_t)page,
				 "total_pages", (json_int_t)pages, "links", links, "backup_count",
				 (json_int_t)counted);
	respond_ok(req, body);
out:
	call_clear(&c);
	return 0;
}

/* ---- GET /backups/:backup ---- */

/* The node's view of a running backup; NULL when it cannot be had (the details are
 * still worth answering with). */
static json_t *read_progress(struct client_service *svc, struct http_request *req,
			     const struct call *c)
{
	struct node_conn nc;
	json_t *st = NULL, *p = NULL;
	if (node_connect(svc, req, false, c->server, PROGRESS_TIMEOUT_MS, &nc) < 0 ||
	    node_backup_status(nc.client, c->server->uuid, c->backup->uuid, &st, &nc.st) < 0)
		goto out;
	p = json_pack("{s:O, s:O, s:O, s:O, s:O}", "bytes_processed",
		      json_object_get(st, "bytes_read"), "bytes_written",
		      json_object_get(st, "bytes_written"), "total_bytes",
		      json_object_get(st, "total_bytes"), "percent",
		      json_object_get(st, "percent"), "files", json_object_get(st, "files"));
out:
	json_decref(st);
	node_conn_clear(&nc);
	return p;
}

static int h_get(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	if (begin(svc, req, API_KEY_PERM_BACKUP_READ, true, &c) == 0) {
		json_t *progress = c.backup->state == STORE_BACKUP_RUNNING
					   ? read_progress(svc, req, &c)
					   : NULL;
		json_t *o = backup_object(c.backup, progress);
		respond_ok(req, o);
	}
	call_clear(&c);
	return 0;
}

/* ---- POST /backups ---- */

static int h_create(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	json_t *body = NULL;
	char *name = NULL, *ignored = NULL;
	char **lines = NULL;
	char uuid[UUID_LEN + 1] = "";
	bool created = false;
	struct node_conn nc = { 0 };
	if (begin(svc, req, API_KEY_PERM_BACKUP_CREATE, false, &c) < 0 || read_body(req, &body) < 0)
		goto out;
	json_t *jn = json_object_get(body, "name");
	json_t *ji = json_object_get(body, "ignored");
	if (jn && !json_is_null(jn) && !json_is_string(jn)) {
		respond_invalid(req, "name", "string", "The name must be a string.");
		goto out;
	}
	if (json_is_string(jn) && utf8_chars(json_string_value(jn)) > NAME_MAX_CHARS) {
		respond_invalid(req, "name", "max", "The name may not be greater than 191 characters.");
		goto out;
	}
	if (ji && !json_is_null(ji) && !json_is_string(ji)) {
		respond_invalid(req, "ignored", "string",
				"The ignored field must be a string of patterns, one per line.");
		goto out;
	}
	int locked = bool_field(req, body, "is_locked", 0);
	if (locked < 0)
		goto out;
	/* Locking is the delete permission's business (protocol §5). */
	if (locked && !api_key_allows(c.key, API_KEY_PERM_BACKUP_DELETE, c.server->uuid)) {
		respond(req, 403, "InsufficientPermissionsException",
			"This action is unauthorized: creating a locked backup needs the "
			"backup.delete permission.");
		goto out;
	}
	if (refuse_if_busy(req, c.server) < 0)
		goto out;
	int64_t now = (int64_t)time(NULL);
	const char *given = json_string_value(jn);
	/* The panel turns "" into null, and null into the default name. */
	if (given && *given) {
		name = strdup(given);
	} else {
		char buf[64];
		struct tm tm;
		time_t t = (time_t)now;
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "Backup at %Y-%m-%d %H:%M:%S", &tm);
		name = strdup(buf);
	}
	ignored = normalize_ignored(json_string_value(ji) ? json_string_value(ji) : "");
	int r = uuid_v4_generate(uuid);
	if (!name || !ignored || r < 0) {
		respond_internal(req, "preparing the backup", r < 0 ? r : -ENOMEM);
		goto out;
	}
	struct store_backup b = { .uuid = uuid, .server_uuid = c.server->uuid, .name = name,
				  .adapter = svc->default_adapter, .ignored = ignored,
				  .is_locked = locked == 1, .created_at = now };
	struct store_create_check chk = { .now = now, .throttle_limit = svc->throttle_limit,
					  .throttle_period = svc->throttle_period_s };
	r = store_backup_create_checked(svc->store, &b, &chk);
	char detail[256];
	if (r == -ECANCELED) {
		switch (chk.refusal) {
		case STORE_CREATE_SERVER_BUSY:
			respond(req, 409, "ConflictingServerStateException", MSG_RESTORING);
			break;
		case STORE_CREATE_THROTTLED: {
			char ra[24];
			snprintf(ra, sizeof(ra), "%" PRId64, chk.retry_after);
			http_response_header(req, "Retry-After", ra);
			snprintf(detail, sizeof(detail),
				 "Only %" PRId64 " backups may be generated within a %" PRId64
				 " second span of time.",
				 svc->throttle_limit, svc->throttle_period_s);
			respond(req, 429, "TooManyRequestsHttpException", detail);
			break;
		}
		case STORE_CREATE_LIMIT:
			snprintf(detail, sizeof(detail),
				 "Cannot create a new backup, this server has reached its limit of "
				 "%" PRId64 " backups.",
				 chk.limit);
			respond(req, 400, "TooManyBackupsException", detail);
			break;
		default:
			respond(req, 409, "ConflictingServerStateException",
				"Cannot create backup while another backup is in progress.");
		}
		goto out;
	}
	if (r < 0) {
		respond_internal(req, "recording the backup", r);
		goto out;
	}
	created = true;
	/* The record exists only once the node has taken the job: on any failure below it
	 * is discarded, as the panel rolls back its transaction. */
	size_t n_lines = 1;
	for (const char *p = ignored; *p; p++)
		n_lines += *p == '\n';
	lines = calloc(n_lines + 1, sizeof(*lines));
	if (!lines) {
		respond_internal(req, "preparing the backup", -ENOMEM);
		goto out;
	}
	size_t k = 0;
	for (char *p = ignored; *p; k++) {
		lines[k] = p;
		p += strcspn(p, "\n");
		if (*p)
			*p++ = 0;
	}
	if (node_connect(svc, req, true, c.server, svc->node_timeout_ms, &nc) < 0)
		goto out;
	r = node_backup_create(nc.client, c.server->uuid, svc->default_adapter, uuid,
			       (const char *const *)lines, svc->max_backup_size, &nc.st);
	if (r < 0) {
		respond_node_error(req, &nc, r, "starting a backup");
		goto out;
	}
	created = false; /* keep it */
	struct store_backup *fresh = NULL;
	r = store_backup_get(svc->store, uuid, &fresh);
	if (r < 0) { /* the node reported a failure already and something removed it */
		respond_internal(req, "reading the new backup", r);
		goto out;
	}
	log_msg(LOG_LEVEL_INFO, "client api: request %s: backup %s of server %s started on node %s",
		http_request_id(req), uuid, c.server->uuid, nc.node->name);
	json_t *o = backup_object(fresh, NULL);
	store_backup_free(fresh);
	respond_ok(req, o);
out:
	if (created) {
		int rr = store_backup_discard(svc->store, uuid);
		if (rr < 0)
			log_msg(LOG_LEVEL_ERR, "client api: discarding backup %s: %s", uuid,
				strerror(-rr));
	}
	node_conn_clear(&nc);
	free(lines);
	free(name);
	free(ignored);
	json_decref(body);
	call_clear(&c);
	return 0;
}

/* ---- GET /backups/:backup/download ---- */

/* Download and restore need a finished, successful backup. */
static int refuse_unfinished(struct http_request *req, const struct store_backup *b,
			     const char *verb)
{
	char detail[128];
	if (b->state == STORE_BACKUP_RUNNING) {
		snprintf(detail, sizeof(detail),
			 "This backup has not completed yet and cannot be %s.", verb);
		return respond(req, 400, "BackupNotCompletedException", detail);
	}
	if (b->state == STORE_BACKUP_FAILED) {
		snprintf(detail, sizeof(detail), "This backup failed and cannot be %s.", verb);
		return respond(req, 400, "BackupFailedException", detail);
	}
	return 0;
}

static bool instance_is_local(const struct instance *in)
{
	return in->ops->name && strcmp(in->ops->name, "wings") == 0;
}

/* A call on the panel's own instance of a backup's adapter (presign a GET, or remove),
 * on a thread of its own as the ABI promises adapters. */
struct store_call {
	struct instance *in;
	const char *backup;
	char key[128];
	bool remove;       /* else presign a GET */
	unsigned ttl_s;
	struct amber_buf url;
	int rc;
	struct amber_ctx ctx;
};

static void *store_call_thread(void *opaque)
{
	struct store_call *j = opaque;
	host_ctx_init(&j->ctx, j->in->ops->name, j->in->name, j->remove ? "delete" : "presign",
		      j->backup);
	uint64_t expires = 0;
	instance_lock(j->in);
	int code = j->remove ? j->in->ops->remove(j->in->handle, &j->ctx, j->key)
			     : j->in->ops->presign(j->in->handle, &j->ctx, j->key, AMBER_PRESIGN_GET,
						   j->ttl_s, &j->url, &expires);
	instance_unlock(j->in);
	if (j->remove && code == AMBER_ENOTFOUND)
		code = 0; /* gone already: what a delete wants */
	if (code == 0 && !j->remove && !j->url.len)
		code = host_ctx_set_error(&j->ctx, AMBER_EIO, "the adapter returned an empty URL");
	j->rc = host_code_to_errno(code);
	return NULL;
}

/* 0, or a negative errno logged once with the adapter's message. */
static int store_call(struct store_call *j, const struct store_backup *b, const char *rid)
{
	j->backup = b->uuid;
	int r = backup_key(b->server_uuid, b->uuid, j->key, sizeof(j->key));
	if (r == 0)
		r = instance_call_off_thread(store_call_thread, j);
	if (r == 0)
		r = j->rc;
	if (r < 0)
		log_msg(r == -ENOTSUP ? LOG_LEVEL_INFO : LOG_LEVEL_ERR,
			"client api: request %s: %s backup %s on %s: %s", rid,
			j->remove ? "deleting" : "presigning", b->uuid, j->in->name,
			j->ctx.message[0] ? j->ctx.message : strerror(-r));
	return r;
}

/* The panel's instance of the backup's adapter when it is a remote store the panel
 * reaches itself (as the reference panel does with its S3 disk); NULL for local disk,
 * which only the node can touch, or an instance the panel does not have. */
static struct instance *panel_store(struct client_service *svc, const struct store_backup *b)
{
	struct instance *in = svc->instances ? instance_set_find(svc->instances, b->adapter) : NULL;
	return in && !instance_is_local(in) ? in : NULL;
}

/* The node's own signed URL (protocol §2.4): a one-time JWT under the node's token. */
static char *node_download_url(struct client_service *svc, const struct store_node *node,
			       const struct store_backup *b, int64_t now, int *ret_err)
{
	char unique[UUID_LEN + 1], jti[UUID_LEN + 1];
	int r = uuid_v4_generate(unique);
	if (r == 0)
		r = uuid_v4_generate(jti);
	json_t *claims = r == 0 ? json_pack("{s:s, s:[s], s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}",
					    "iss", "amber", "aud", node->url, "jti", jti, "iat",
					    (json_int_t)now, "nbf", (json_int_t)(now - NBF_SKEW_S),
					    "exp", (json_int_t)(now + svc->download_ttl_s),
					    "server_uuid", b->server_uuid, "backup_uuid", b->uuid,
					    "unique_id", unique, "adapter", b->adapter)
				: NULL;
	char *token = NULL, *url = NULL;
	if (!claims && r == 0)
		r = -ENOMEM;
	if (r == 0)
		r = jwt_hs256_sign(claims, node->token, strlen(node->token), &token);
	if (r == 0 && !(url = str_printf("%s/download/backup?token=%s", node->url, token)))
		r = -ENOMEM;
	json_decref(claims);
	free(token);
	*ret_err = r;
	return url;
}

static int h_download(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	struct node_conn nc = { 0 };
	char *url = NULL;
	if (begin(svc, req, API_KEY_PERM_BACKUP_DOWNLOAD, true, &c) < 0 ||
	    refuse_unfinished(req, c.backup, "downloaded") < 0)
		goto out;
	struct instance *in = panel_store(svc, c.backup);
	int r = 0;
	if (in && !(in->ops->caps & AMBER_CAP_PRESIGN_GET)) {
		/* seed 003: "400 Unknown disk driver type" */
		char detail[256];
		snprintf(detail, sizeof(detail),
			 "Backups stored in '%s' (adapter %s) cannot be downloaded: the adapter "
			 "cannot sign a URL and is not local disk.",
			 in->name, in->ops->name);
		respond(req, 400, "BadRequestHttpException", detail);
		goto out;
	}
	if (in) {
		/* The store serves the bytes itself, without the node in the path. */
		struct store_call j = { .in = in, .ttl_s = svc->download_ttl_s };
		r = store_call(&j, c.backup, http_request_id(req));
		if (r == -ENOTSUP) {
			char detail[256];
			snprintf(detail, sizeof(detail),
				 "Backups stored in '%s' cannot be downloaded: its configuration "
				 "holds no key to sign URLs with.",
				 in->name);
			respond(req, 400, "BadRequestHttpException", detail);
			amber_buf_clear(&j.url);
			goto out;
		}
		if (r < 0) {
			respond(req, 502, "StorageException",
				"The backup's storage could not sign a download URL; see the "
				"panel's log.");
			amber_buf_clear(&j.url);
			goto out;
		}
		url = strdup(j.url.data);
		amber_buf_clear(&j.url);
	} else {
		if (node_connect(svc, req, true, c.server, svc->node_timeout_ms, &nc) < 0)
			goto out;
		url = node_download_url(svc, nc.node, c.backup, (int64_t)time(NULL), &r);
	}
	if (!url) {
		respond_internal(req, "making the download URL", r < 0 ? r : -ENOMEM);
		goto out;
	}
	json_t *o = json_pack("{s:s, s:{s:s}}", "object", "signed_url", "attributes", "url", url);
	respond_ok(req, o);
out:
	free(url);
	node_conn_clear(&nc);
	call_clear(&c);
	return 0;
}

/* ---- POST /backups/:backup/lock, /unlock ---- */

static int lock_route(struct http_request *req, void *ud, bool toggle)
{
	struct client_service *svc = ud;
	struct call c;
	if (begin(svc, req, API_KEY_PERM_BACKUP_DELETE, true, &c) == 0) {
		int r = toggle ? store_backup_toggle_locked(svc->store, c.backup->uuid, NULL)
			       : store_backup_set_locked(svc->store, c.backup->uuid, false);
		if (r == -ENOENT)
			respond(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
		else if (r < 0)
			respond_internal(req, "changing the lock", r);
		else
			http_respond_empty(req, 204);
	}
	call_clear(&c);
	return 0;
}

static int h_lock(struct http_request *req, void *ud)
{
	return lock_route(req, ud, true);
}

static int h_unlock(struct http_request *req, void *ud)
{
	return lock_route(req, ud, false);
}

/* ---- POST /backups/:backup/restore ---- */

static int h_restore(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	json_t *body = NULL;
	struct node_conn nc = { 0 };
	bool marked = false;
	if (begin(svc, req, API_KEY_PERM_BACKUP_RESTORE, true, &c) < 0 || read_body(req, &body) < 0)
		goto out;
	/* seed 004: truncate is optional and defaults to true */
	int truncate = bool_field(req, body, "truncate", 1);
	if (truncate < 0 || refuse_unfinished(req, c.backup, "restored") < 0)
		goto out;
	int r = store_server_set_state(svc->store, c.server->uuid, "", "restoring_backup");
	if (r == -EEXIST) {
		respond(req, 409, "ConflictingServerStateException", MSG_RESTORING);
		goto out;
	}
	if (r < 0) {
		respond_internal(req, "marking the server restoring", r);
		goto out;
	}
	marked = true;
	if (node_connect(svc, req, true, c.server, svc->node_timeout_ms, &nc) < 0)
		goto out;
	/* As the reference panel with its S3 disk: the node gets a presigned URL, which it
	 * can use without credentials of its own. A URL a node cannot fetch (not http) is
	 * not sent; the node then reads through its own instance. */
	struct instance *in = panel_store(svc, c.backup);
	/* The node may take a while to get to it and read it all: the node-facing lifetime,
	 * not the one of links shown to users. */
	struct store_call j = { .in = in, .ttl_s = svc->node_url_ttl_s };
	const char *url = NULL;
	if (in && (in->ops->caps & AMBER_CAP_PRESIGN_GET)) {
		r = store_call(&j, c.backup, http_request_id(req));
		/* An instance that cannot sign in its configuration (gcs on a metadata-server
		 * token): the node reads through its own instance instead. */
		if (r == -ENOTSUP)
			r = 0;
		else if (r < 0) {
			respond(req, 502, "StorageException",
				"The backup's storage could not sign a URL for the node; see the "
				"panel's log.");
			amber_buf_clear(&j.url);
			goto out;
		}
		if (j.url.data && (!strncmp(j.url.data, "http://", 7) ||
				   !strncmp(j.url.data, "https://", 8)))
			url = j.url.data;
	}
	r = node_backup_restore(nc.client, c.server->uuid, c.backup->uuid, c.backup->adapter,
				truncate == 1, url, &nc.st);
	amber_buf_clear(&j.url);
	if (r < 0) {
		respond_node_error(req, &nc, r, "starting a restore");
		goto out;
	}
	marked = false; /* cleared by the node's report (remote API) */
	log_msg(LOG_LEVEL_INFO,
		"client api: request %s: restore of backup %s into server %s started on node %s%s",
		http_request_id(req), c.backup->uuid, c.server->uuid, nc.node->name,
		truncate ? " (truncating)" : "");
	http_respond_empty(req, 202);
out:
	if (marked) {
		int rr = store_server_set_state(svc->store, c.server->uuid, "restoring_backup", NULL);
		if (rr < 0)
			log_msg(LOG_LEVEL_ERR, "client api: server %s: clearing the restoring state: %s",
				c.server->uuid, strerror(-rr));
	}
	node_conn_clear(&nc);
	json_decref(body);
	call_clear(&c);
	return 0;
}

/* ---- DELETE /backups/:backup ---- */

/* Removes the stored object through the backup's node, then the record. A node that
 * no longer has the object is not an error (protocol §5, "Delete"). req may be NULL
 * (the retention sweep): then failures are only logged. */
static int delete_backup(struct client_service *svc, struct http_request *req,
			 const struct store_server *s, const struct store_backup *b)
{
	struct node_conn nc = { 0 };
	struct instance *in = panel_store(svc, b);
	int r;
	if (in) {
		/* A remote store the panel reaches: deleted from here, as the reference
		 * panel deletes S3 objects itself (a node may not even have credentials). */
		struct store_call j = { .in = in, .remove = true };
		r = store_call(&j, b, req ? http_request_id(req) : "retention");
		if (r < 0) {
			if (req)
				respond(req, 502, "StorageException",
					"The backup's storage could not delete it; see the panel's "
					"log.");
			goto out;
		}
	} else {
		r = node_connect(svc, req, req != NULL, s, svc->node_timeout_ms, &nc);
		if (r < 0)
			goto out;
		r = node_backup_delete(nc.client, s->uuid, b->uuid, b->adapter, &nc.st);
		if (r == -ENOENT)
			r = 0;
		if (r < 0) {
			if (req)
				respond_node_error(req, &nc, r, "deleting a backup");
			goto out;
		}
	}
	r = store_backup_delete(svc->store, b->uuid, true);
	if (r == -ENOENT)
		r = 0; /* deleted meanwhile by another request */
	if (r == -EPERM && req)
		respond(req, 400, "BackupIsLockedException",
			"This backup is locked and cannot be deleted.");
	else if (r < 0 && req)
		respond_internal(req, "deleting the backup record", r);
out:
	node_conn_clear(&nc);
	return r;
}

static int h_delete(struct http_request *req, void *ud)
{
	struct client_service *svc = ud;
	struct call c;
	if (begin(svc, req, API_KEY_PERM_BACKUP_DELETE, true, &c) < 0 ||
	    refuse_if_busy(req, c.server) < 0)
		goto out;
	if (c.backup->state == STORE_BACKUP_RUNNING) {
		respond(req, 409, "ConflictingServerStateException",
			"Cannot delete backup while it is being created.");
		goto out;
	}
	if (c.backup->is_locked && c.backup->state == STORE_BACKUP_COMPLETED) {
		respond(req, 400, "BackupIsLockedException",
			"This backup is locked and cannot be deleted.");
		goto out;
	}
	if (delete_backup(svc, req, c.server, c.backup) == 0) {
		log_msg(LOG_LEVEL_INFO, "client api: request %s: backup %s of server %s deleted",
			http_request_id(req), c.backup->uuid, c.server->uuid);
		http_respond_empty(req, 204);
	}
out:
	call_clear(&c);
	return 0;
}

/* ---- retention ---- */

int client_service_sweep(struct client_service *svc, int64_t now)
{
	int64_t keep = svc->throttle_period_s > 3600 ? svc->throttle_period_s : 3600;
	int r = store_backup_creations_prune(svc->store, keep, now);
	if (r < 0)
		log_msg(LOG_LEVEL_WARNING, "panel: pruning the creation log: %s", strerror(-r));
	if (svc->retention_s <= 0)
		return 0;
	struct store_backup *v = NULL;
	size_t n = 0;
	r = store_backups_expired(svc->store, svc->retention_s, now, &v, &n);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "panel: retention: listing old backups: %s", strerror(-r));
		return r;
	}
	int deleted = 0;
	for (size_t i = 0; i < n; i++) {
		struct store_server *s = NULL;
		r = store_server_get(svc->store, v[i].server_uuid, &s);
		if (r == 0)
			r = delete_backup(svc, NULL, s, &v[i]);
		if (r == 0) {
			deleted++;
			log_msg(LOG_LEVEL_NOTICE,
				"panel: retention: deleted backup %s of server %s (older than %" PRId64
				" s)",
				v[i].uuid, v[i].server_uuid, svc->retention_s);
		} else if (r != -EPERM) {
			log_msg(LOG_LEVEL_WARNING,
				"panel: retention: backup %s of server %s stays for now: %s",
				v[i].uuid, v[i].server_uuid, strerror(-r));
		}
		store_server_free(s);
	}
	store_backup_list_free(v, n);
	return deleted;
}

/* ---- lifetime ---- */

int client_service_new(const struct client_service_config *cfg, struct client_service **ret,
		       char **ret_err)
{
	*ret = NULL;
	if (ret_err)
		*ret_err = NULL;
	if (!cfg || !cfg->store || !cfg->default_adapter || !*cfg->default_adapter) {
		if (ret_err)
			*ret_err = strdup("client api: a store and a default adapter are needed");
		return -EINVAL;
	}
	struct client_service *svc = calloc(1, sizeof(*svc));
	if (!svc || !(svc->default_adapter = strdup(cfg->default_adapter))) {
		free(svc);
		return -ENOMEM;
	}
	svc->store = cfg->store;
	svc->instances = cfg->instances;
	svc->max_backup_size = cfg->max_backup_size;
	svc->throttle_limit = cfg->throttle_limit;
	svc->throttle_period_s = cfg->throttle_period_s;
	svc->retention_s = cfg->retention_s;
	svc->download_ttl_s = cfg->download_ttl_s ? cfg->download_ttl_s : DEFAULT_DOWNLOAD_TTL_S;
	svc->node_url_ttl_s = cfg->node_url_ttl_s ? cfg->node_url_ttl_s : DEFAULT_DOWNLOAD_TTL_S;
	svc->node_timeout_ms = cfg->node_timeout_ms;
	svc->node_connect_timeout_ms = cfg->node_connect_timeout_ms;
#define B "/api/client/servers/:server/backups"
	const struct http_route routes[N_ROUTES] = {
		{ "GET", "/api/client/servers/:server", h_server, svc },
		{ "GET", B, h_list, svc },
		{ "POST", B, h_create, svc },
		{ "GET", B "/:backup", h_get, svc },
		{ "DELETE", B "/:backup", h_delete, svc },
		{ "GET", B "/:backup/download", h_download, svc },
		{ "POST", B "/:backup/lock", h_lock, svc },
		{ "POST", B "/:backup/unlock", h_unlock, svc },
		{ "POST", B "/:backup/restore", h_restore, svc },
	};
#undef B
	memcpy(svc->routes, routes, sizeof(routes));
	*ret = svc;
	return 0;
}

const struct http_route *client_service_routes(struct client_service *svc, size_t *ret_n)
{
	*ret_n = N_ROUTES;
	return svc->routes;
}

void client_service_free(struct client_service *svc)
{
	if (!svc)
		return;
	free(svc->default_adapter);
	free(svc);
}
