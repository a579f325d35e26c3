/* The panel side's client for a node's API; see node_client.h. One curl easy handle per
 * request: calls are rare (one per user action) and a handle per call keeps the client
 * free of shared mutable state. */
#include "node_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_BODY (1024 * 1024)

struct node_client {
	char *base_url;
	char *auth_header; /* "Authorization: Bearer <token>" */
	char *request_id_header; /* "X-Request-Id: <id>"; NULL: none */
	unsigned timeout_ms;
	unsigned connect_timeout_ms;
	bool insecure;
};

struct response {
	char *body;
	size_t len;
	bool too_big;
	char request_id[65];
};

static bool header_safe(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* [A-Za-z0-9-]{1,64}: what the node itself would make up, so it logs the id verbatim. */
static bool request_id_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 64 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

int node_client_new(const struct node_client_config *cfg, struct node_client **ret)
{
	*ret = NULL;
	if (!cfg || !cfg->base_url || !cfg->token || !*cfg->token || !header_safe(cfg->token) ||
	    !header_safe(cfg->base_url) || strchr(cfg->base_url, ' ') ||
	    (cfg->request_id && !request_id_ok(cfg->request_id)))
		return -EINVAL;
	if (strncasecmp(cfg->base_url, "http://", 7) != 0 &&
	    strncasecmp(cfg->base_url, "https://", 8) != 0)
		return -EINVAL;
	struct node_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base_url = strdup(cfg->base_url);
	if (!c->base_url || asprintf(&c->auth_header, "Authorization: Bearer %s", cfg->token) < 0) {
		c->auth_header = NULL;
		node_client_free(c);
		return -ENOMEM;
	}
	if (cfg->request_id &&
	    asprintf(&c->request_id_header, "X-Request-Id: %s", cfg->request_id) < 0) {
		c->request_id_header = NULL;
		node_client_free(c);
		return -ENOMEM;
	}
	size_t n = strlen(c->base_url);
	while (n > 0 && c->base_url[n - 1] == '/')
		c->base_url[--n] = 0;
	if (strlen(c->base_url) <= strlen("http://")) {
		node_client_free(c);
		return -EINVAL;
	}
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : NODE_CLIENT_DEFAULT_TIMEOUT_MS;
	c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
							: NODE_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
	if (c->connect_timeout_ms > c->timeout_ms)
		c->connect_timeout_ms = c->timeout_ms;
	c->insecure = cfg->insecure;
	*ret = c;
	return 0;
}

void node_client_free(struct node_client *c)
{
	if (!c)
		return;
	if (c->auth_header) {
		/* the token should not linger in freed memory */
		memset(c->auth_header, 0, strlen(c->auth_header));
		free(c->auth_header);
	}
	free(c->request_id_header);
	free(c->base_url);
	free(c);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	if (r->len + n > MAX_BODY) {
		r->too_big = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	char *b = realloc(r->body, r->len + n + 1);
	if (!b)
		return 0;
	r->body = b;
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = 0;
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	static const char name[] = "x-request-id:";
	/* A new status line starts a new response (after 100 Continue): forget. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		r->request_id[0] = 0;
	if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		const char *v = data + sizeof(name) - 1;
		size_t vn = n - (sizeof(name) - 1);
		while (vn > 0 && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ' ||
				  v[vn - 1] == '\t'))
			vn--;
		if (vn >= sizeof(r->request_id))
			vn = sizeof(r->request_id) - 1;
		memcpy(r->request_id, v, vn);
		r->request_id[vn] = 0;
	}
	return n;
}

static void set_message(struct node_status *st, const char *msg)
{
	if (st)
		snprintf(st->message, sizeof(st->message), "%s", msg ? msg : "");
}

static int map_status(long code)
{
	if (code >= 200 && code < 300)
		return 0;
	switch (code) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EBUSY;
	case 507:
		return -ENOSPC;
	default:
		break;
	}
	if (code >= 400 && code < 500)
		return -EREMOTEIO;
	if (code >= 500 && code < 600)
		return -EBADE;
	return -EPROTO;
}

static int map_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	default:
		/* refused, DNS, unreachable, reset, empty reply, TLS failures, ... */
		return -EHOSTUNREACH;
	}
}

/* "<base>/api/servers/<server>/backup[/<backup>[/restore]]", segments percent-encoded. */
static char *build_url(CURL *h, const struct node_client *c, const char *server,
		       const char *backup, const char *suffix)
{
	char *es = curl_easy_escape(h, server, 0);
	char *eb = backup ? curl_easy_escape(h, backup, 0) : NULL;
	char *url = NULL;
	if (es && (!backup || eb)) {
		if (asprintf(&url, "%s/api/servers/%s/backup%s%s%s", c->base_url, es,
			     backup ? "/" : "", backup ? eb : "", suffix ? suffix : "") < 0)
			url = NULL;
	}
	curl_free(es);
	curl_free(eb);
	return url;
}

/* One request. body (JSON text) may be NULL. On a node answer, fills st and, when
 * ret_body is not NULL, hands over the body. Returns the mapped code. */
static int perform(const struct node_client *c, const char *method, const char *server,
		   const char *backup, const char *suffix, const char *body,
		   struct node_status *st, char **ret_body)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct response r = { 0 };
	struct curl_slist *hdrs = NULL, *tmp;
	char *url = NULL;
	int rc;
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	static const char *const fixed[] = { "Accept: application/json",
					     "Content-Type: application/json", "Expect:" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		tmp = curl_slist_append(hdrs, fixed[i]);
		if (!tmp) {
			rc = -ENOMEM;
			goto out;
		}
		hdrs = tmp;
	}
	tmp = curl_slist_append(hdrs, c->auth_header);
	if (!tmp) {
		rc = -ENOMEM;
		goto out;
	}
	hdrs = tmp;
	if (c->request_id_header) {
		tmp = curl_slist_append(hdrs, c->request_id_header);
		if (!tmp) {
			rc = -ENOMEM;
			goto out;
		}
		hdrs = tmp;
	}
	url = build_url(h, c, server, backup, suffix);
	if (!url) {
		rc = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "POST") != 0 || !body)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);

	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (r.too_big) {
			long code = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
			if (st) {
				st->http_status = code;
				snprintf(st->request_id, sizeof(st->request_id), "%s",
					 r.request_id);
			}
			set_message(st, "response body too large");
			rc = -EBADMSG;
		} else {
			set_message(st, *errbuf ? errbuf : curl_easy_strerror(cc));
			rc = map_curl(cc);
		}
		goto out;
	}
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	rc = map_status(code);
	if (st) {
		st->http_status = code;
		snprintf(st->request_id, sizeof(st->request_id), "%s", r.request_id);
		if (rc < 0 && r.body) {
			json_t *j = json_loads(r.body, 0, NULL);
			const char *msg = json_string_value(json_object_get(j, "error"));
			const char *rid = json_string_value(json_object_get(j, "request_id"));
			set_message(st, msg);
			if (!st->request_id[0] && rid)
				snprintf(st->request_id, sizeof(st->request_id), "%s", rid);
			json_decref(j);
		}
	}
	if (rc == 0 && ret_body) {
		*ret_body = r.body ? r.body : strdup("");
		r.body = NULL;
		if (!*ret_body)
			rc = -ENOMEM;
	}
out:
	free(r.body);
	free(url);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

static void status_reset(struct node_status *st)
{
	if (st)
		memset(st, 0, sizeof(*st));
}

static bool arg_ok(const char *s)
{
	return s && *s;
}

/* Serialises body (and drops the reference) then performs. */
static int perform_json(const struct node_client *c, const char *method, const char *server,
			const char *backup, const char *suffix, json_t *body,
			struct node_status *st)
{
	char *text = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!text)
			return -ENOMEM;
	}
	int rc = perform(c, method, server, backup, suffix, text, st, NULL);
	free(text);
	return rc;
}

int node_backup_create(struct node_client *c, const char *server, const char *adapter,
		       const char *backup, const char *const *ignore_lines, uint64_t max_size,
		       struct node_status *st)
{
	status_reset(st);
	if (!c || !arg_ok(server) || !arg_ok(adapter) || !backup ||
	    max_size > (uint64_t)INT64_MAX)
		return -EINVAL;
	size_t len = 0;
	for (size_t i = 0; ignore_lines && ignore_lines[i]; i++)
		len += strlen(ignore_lines[i]) + 1;
	char *ignore = malloc(len + 1);
	if (!ignore)
		return -ENOMEM;
	char *p = ignore;
	for (size_t i = 0; ignore_lines && ignore_lines[i]; i++) {
		if (i > 0)
			*p++ = '\n';
		size_t n = strlen(ignore_lines[i]);
		memcpy(p, ignore_lines[i], n);
		p += n;
	}
	*p = 0;
	json_t *body = json_pack("{s:s,s:s,s:s}", "adapter", adapter, "uuid", backup, "ignore",
				 ignore);
	free(ignore);
	if (!body)
		return -EINVAL; /* jansson refuses strings that are not UTF-8 */
	/* Left out when 0, so a stock Wings node sees the panel's usual body. */
	if (max_size && json_object_set_new(body, "max_size",
					    json_integer((json_int_t)max_size)) < 0) {
		json_decref(body);
		return -ENOMEM;
	}
	return perform_json(c, "POST", server, NULL, NULL, body, st);
}

int node_backup_restore(struct node_client *c, const char *server, const char *backup,
			const char *adapter, bool truncate, const char *download_url,
			struct node_status *st)
{
	status_reset(st);
	if (!c || !arg_ok(server) || !arg_ok(backup) || !arg_ok(adapter))
		return -EINVAL;
	json_t *body = json_pack("{s:s,s:b,s:s}", "adapter", adapter, "truncate_directory",
				 truncate ? 1 : 0, "download_url",
				 download_url ? download_url : "");
	if (!body)
		return -EINVAL;
	return perform_json(c, "POST", server, backup, "/restore", body, st);
}

int node_backup_delete(struct node_client *c, const char *server, const char *backup,
		       const char *adapter, struct node_status *st)
{
	status_reset(st);
	if (!c || !arg_ok(server) || !arg_ok(backup) || (adapter && !*adapter))
		return -EINVAL;
	json_t *body = NULL;
	if (adapter) {
		body = json_pack("{s:s}", "adapter", adapter);
		if (!body)
			return -EINVAL;
	}
	return perform_json(c, "DELETE", server, backup, NULL, body, st);
}

int node_backup_status(struct node_client *c, const char *server, const char *backup,
		       json_t **ret, struct node_status *st)
{
	*ret = NULL;
	status_reset(st);
	if (!c || !arg_ok(server) || !arg_ok(backup))
		return -EINVAL;
	char *text = NULL;
	int rc = perform(c, "GET", server, backup, NULL, NULL, st, &text);
	if (rc == -EHOSTUNREACH) {
		/* idempotent: one more try after a dropped connection */
		status_reset(st);
		rc = perform(c, "GET", server, backup, NULL, NULL, st, &text);
	}
	if (rc < 0)
		return rc;
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_object(j)) {
		json_decref(j);
		set_message(st, "the node's status is not a JSON object");
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}
