/*
 * gcs: backups in Google Cloud Storage. See README.md for the configuration, the auth
 * modes and what is verified where.
 *
 * Files: gcs.c (configuration, delete, list, presign), gcs_writer.c (JSON API
 * resumable upload; XML multipart upload with HMAC keys), gcs_reader.c (streaming,
 * resuming download pinned to a generation), gcs_http.c (requests, retries, error
 * mapping, OAuth2 tokens), gcs_util.c (CRC32C, base64, JWT, V4 signed URLs).
 */
#include "gcs_internal.h"
#include "transfer_settings.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ENDPOINT "https://storage.googleapis.com"

static const amber_config_field gcs_config[] = {
	{ "bucket", AMBER_CFG_STRING, AMBER_CFG_REQUIRED, NULL, "bucket name" },
	{ "auth", AMBER_CFG_STRING, 0, NULL,
	  "service_account, metadata, hmac or none; default: service_account with "
	  "credentials_file, hmac with hmac_access_id, else metadata" },
	{ "credentials_file", AMBER_CFG_STRING, 0, NULL,
	  "service-account JSON key file (its token_uri is used as is)" },
	{ "hmac_access_id", AMBER_CFG_STRING, 0, NULL, "HMAC key access id (XML API)" },
	{ "hmac_secret", AMBER_CFG_STRING, AMBER_CFG_SECRET, NULL, "HMAC key secret" },
	{ "endpoint", AMBER_CFG_STRING, 0, DEFAULT_ENDPOINT,
	  "base URL: JSON API at <endpoint>/storage/v1, XML API at <endpoint>/<bucket>" },
	{ "metadata_url", AMBER_CFG_STRING, 0, "http://metadata.google.internal",
	  "GCE metadata server, for auth = metadata" },
	{ "prefix", AMBER_CFG_STRING, 0, "", "prepended to every object name" },
	{ "chunk_size", AMBER_CFG_SIZE, 0, "16MiB",
	  "resumable-upload chunk, a multiple of 256KiB; memory use is one chunk" },
	{ "part_size", AMBER_CFG_SIZE, 0, "64MiB",
	  "XML multipart part size (hmac auth), 5MiB to 5GiB" },
	{ "parallel_parts", AMBER_CFG_INT, 0, "4", "XML multipart parts in flight, 1 to 64" },
	{ "connect_timeout", AMBER_CFG_DURATION, 0, "10s", "TCP+TLS connect timeout" },
	{ "stall_timeout", AMBER_CFG_DURATION, 0, "60s",
	  "a request moving no byte for this long fails (and is retried)" },
	{ 0 },
};

struct settings {
	const char *bucket, *auth, *cred, *hid, *hsecret, *endpoint, *mdurl, *prefix;
	uint64_t chunk;
	struct transfer_settings t; /* XML multipart part_size, parallel_parts, timeouts */
	enum gcs_auth mode;
};

static int read_settings(const amber_config *cfg, amber_ctx *ctx, struct settings *s)
{
	const amber_host *h = amber_host_api;
	const char *inst = h->config_instance_name(cfg);
	memset(s, 0, sizeof(*s));
	struct {
		const char *name;
		const char **dst;
	} strs[] = { { "bucket", &s->bucket },	       { "auth", &s->auth },
		     { "credentials_file", &s->cred }, { "hmac_access_id", &s->hid },
		     { "hmac_secret", &s->hsecret },   { "endpoint", &s->endpoint },
		     { "metadata_url", &s->mdurl },    { "prefix", &s->prefix } };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		int r = h->config_get_string(cfg, strs[i].name, strs[i].dst);
		if (r == AMBER_ENOTFOUND || (r == 0 && *strs[i].dst && !**strs[i].dst &&
					     strcmp(strs[i].name, "prefix")))
			*strs[i].dst = NULL;
		else if (r < 0)
			return h->set_error(ctx, r, "gcs instance %s: %s: cannot read the setting",
					    inst, strs[i].name);
	}
	int r;
	if ((r = h->config_get_size(cfg, "chunk_size", &s->chunk)) < 0)
		return h->set_error(ctx, r, "gcs instance %s: cannot read chunk_size", inst);
	if (!s->bucket || strchr(s->bucket, '/'))
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: bucket: must be a bucket "
				    "name without '/'", inst);
	if (!s->auth)
		s->mode = s->cred ? GCS_AUTH_SA : s->hid ? GCS_AUTH_HMAC : GCS_AUTH_METADATA;
	else if (!strcmp(s->auth, "service_account"))
		s->mode = GCS_AUTH_SA;
	else if (!strcmp(s->auth, "metadata"))
		s->mode = GCS_AUTH_METADATA;
	else if (!strcmp(s->auth, "hmac"))
		s->mode = GCS_AUTH_HMAC;
	else if (!strcmp(s->auth, "none"))
		s->mode = GCS_AUTH_NONE;
	else
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: auth: '%s' is not one of "
				    "service_account, metadata, hmac, none", inst, s->auth);
	if (s->mode == GCS_AUTH_SA && !s->cred)
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: auth = service_account "
				    "needs credentials_file", inst);
	if (s->mode == GCS_AUTH_HMAC && (!s->hid || !s->hsecret))
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: auth = hmac needs "
				    "hmac_access_id and hmac_secret", inst);
	if (!s->endpoint || (strncmp(s->endpoint, "http://", 7) && strncmp(s->endpoint, "https://", 8)))
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: endpoint: must start "
				    "with http:// or https://", inst);
	if (!s->mdurl || (strncmp(s->mdurl, "http://", 7) && strncmp(s->mdurl, "https://", 8)))
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: metadata_url: must "
				    "start with http:// or https://", inst);
	if (s->chunk == 0 || s->chunk % GCS_CHUNK_QUANTUM || s->chunk > (UINT64_C(1) << 31))
		return h->set_error(ctx, AMBER_EINVAL, "gcs instance %s: chunk_size: %" PRIu64
				    " is not a positive multiple of 256KiB (at most 2GiB)", inst,
				    s->chunk);
	char who[96];
	snprintf(who, sizeof(who), "gcs instance %s", inst);
	if ((r = transfer_settings_read(cfg, ctx, who, &s->t)) < 0)
		return r;
	if (!s->prefix)
		s->prefix = "";
	return AMBER_OK;
}

static int gcs_config_check(const amber_config *cfg, amber_ctx *ctx)
{
	struct settings s;
	return read_settings(cfg, ctx, &s);
}

static void gcs_instance_free(amber_instance *self)
{
	if (!self)
		return;
	free(self->endpoint);
	free(self->metadata_url);
	free(self->host);
	free(self->token);
	gcs_sa_key_free(&self->key);
	pthread_mutex_destroy(&self->token_lock);
	free(self);
}

static char *strip_slash(const char *s)
{
	char *d = strdup(s);
	size_t l = d ? strlen(d) : 0;
	while (l > 0 && d[l - 1] == '/')
		d[--l] = '\0';
	return d;
}

static int gcs_instance_new(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret)
{
	struct settings s;
	*ret = NULL;
	int r = read_settings(cfg, ctx, &s);
	if (r < 0)
		return r;
	amber_instance *in = calloc(1, sizeof(*in));
	if (!in || pthread_mutex_init(&in->token_lock, NULL) != 0) {
		free(in);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	in->name = amber_host_api->config_instance_name(cfg);
	in->endpoint = strip_slash(s.endpoint);
	in->metadata_url = strip_slash(s.mdurl);
	in->host = in->endpoint ? gcs_host_of(in->endpoint) : NULL;
	in->bucket = s.bucket;
	in->prefix = s.prefix;
	in->auth = s.mode;
	in->hmac_id = s.hid;
	in->hmac_secret = s.hsecret;
	in->hmac_creds = (struct sigv4_creds){ .access_key_id = s.hid, .secret_access_key = s.hsecret,
					       .region = "auto", .service = "storage" };
	in->chunk_size = s.chunk;
	in->part_size = s.t.part_size;
	in->parallel_parts = (unsigned)s.t.parallel_parts;
	in->connect_timeout_ms = (long)s.t.connect_ms;
	in->stall_timeout_ms = (long)s.t.stall_ms;
	if (!in->endpoint || !in->metadata_url || !in->host) {
		gcs_instance_free(in);
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	}
	if (in->auth == GCS_AUTH_SA) {
		/* Fail early: a bad key file is an operator's mistake to see at start-up,
		 * not at the first backup. */
		char why[512];
		if (gcs_sa_key_load(s.cred, &in->key, why, sizeof(why)) < 0) {
			gcs_instance_free(in);
			return amber_host_api->set_error(ctx, AMBER_EINVAL, "gcs instance %s: %s",
							 s.bucket ? amber_host_api->config_instance_name(cfg) : "?",
							 why);
		}
	}
	*ret = in;
	return AMBER_OK;
}

static int check_key(amber_ctx *ctx, const amber_instance *in, const char *key)
{
	size_t len = key ? strnlen(key, 1025) : 0;
	if (len == 0 || len + strlen(in->prefix) > 1024)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "gcs instance %s: object names "
						 "are 1 to 1024 bytes", in->name);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return amber_host_api->set_error(ctx, AMBER_EINVAL, "gcs instance %s: key "
							 "holds a control character", in->name);
	return AMBER_OK;
}

static int gcs_remove(amber_instance *self, amber_ctx *ctx, const char *key)
{
	int r = check_key(ctx, self, key);
	if (r < 0)
		return r;
	struct http_resp resp;
	struct http_err err;
	char *url = NULL;
	struct gcs_req rq = { .method = "DELETE", .key = key, .what = "delete" };
	if (self->auth == GCS_AUTH_HMAC) {
		rq.api = GCS_XML;
		/* The XML API answers 204 whether or not... no: it answers 404 NoSuchKey. */
	} else {
		url = gcs_json_object_url(self, key, NULL);
		if (!url)
			return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		rq.api = GCS_JSON;
		rq.url = url;
	}
	r = gcs_request(self, NULL, ctx, &rq, &resp, &err);
	free(url);
	strbuf_reset(&resp.body);
	if (r == AMBER_ENOTFOUND)
		return amber_host_api->set_error(ctx, AMBER_ENOTFOUND, "gcs instance %s: no object %s",
						 self->name, key);
	return r < 0 ? gcs_set_error(ctx, self, &err) : AMBER_OK;
}

static int gcs_presign(amber_instance *self, amber_ctx *ctx, const char *key, uint32_t method,
		       uint32_t ttl, amber_buf *url, uint64_t *ret_expires)
{
	if (method != AMBER_PRESIGN_GET && method != AMBER_PRESIGN_RESUMABLE)
		return amber_host_api->set_error(ctx, AMBER_ENOTSUP, "gcs instance %s: presign "
						 "method %u is not one this adapter knows", self->name,
						 (unsigned)method);
	if (self->auth != GCS_AUTH_SA && self->auth != GCS_AUTH_HMAC)
		return amber_host_api->set_error(ctx, AMBER_ENOTSUP, "gcs instance %s: this auth "
						 "mode holds no key to sign URLs with", self->name);
	int r = check_key(ctx, self, key);
	if (r < 0)
		return r;
	if (ttl == 0)
		return amber_host_api->set_error(ctx, AMBER_EINVAL, "ttl must be above 0");
	if (ttl > GCS_MAX_PRESIGN_TTL)
		ttl = GCS_MAX_PRESIGN_TTL;
	char *name = gcs_full_name(self, key);
	time_t now = time(NULL);
	/* A resumable start is a signed POST (gcs-protocol.md §5.5): the holder opens the
	 * session and then needs no credentials for its chunks. */
	int resumable = method == AMBER_PRESIGN_RESUMABLE;
	struct gcs_sign_req sr = { .base_url = self->endpoint, .method = resumable ? "POST" : "GET",
				   .bucket = self->bucket, .object = name, .expires = ttl,
				   .when = now, .pkey = self->key.pkey,
				   .client_email = self->key.client_email,
				   .access_id = self->hmac_id, .secret = self->hmac_secret };
	if (self->auth == GCS_AUTH_HMAC)
		sr.pkey = NULL;
	char why[256];
	char *u = !name ? NULL
		  : resumable ? gcs_sign_resumable_url(&sr, why, sizeof(why))
			      : gcs_sign_url(&sr, why, sizeof(why));
	free(name);
	if (!u)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "gcs instance %s: %s", self->name,
						 name ? why : "out of memory");
	r = amber_host_api->buf_append(url, u, strlen(u));
	free(u);
	if (r < 0)
		return amber_host_api->set_error(ctx, r, "cannot build the URL");
	*ret_expires = (uint64_t)now + ttl;
	return AMBER_OK;
}

static int append_line(amber_buf *out, const char *k, const char *size, int64_t mt)
{
	char line[96];
	snprintf(line, sizeof(line), "\t%s\t%" PRId64 "\n", size, mt);
	if (amber_host_api->buf_append(out, k, strlen(k)) < 0 ||
	    amber_host_api->buf_append(out, line, strlen(line)) < 0)
		return -1;
	return 0;
}

static int64_t parse_rfc3339(const char *s)
{
	struct tm tm = { 0 };
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* JSON API listing (bearer-token modes). */
static int list_json(amber_instance *self, amber_ctx *ctx, const char *full, amber_buf *out)
{
	char *token = NULL;
	size_t plen = strlen(self->prefix);
	int rc = AMBER_OK;
	CURL *curl = curl_easy_init();
	char *bk = gcs_enc_json(self->bucket), *pf = gcs_enc_json(full);
	if (!curl || !bk || !pf) {
		rc = amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		char *tk = token ? gcs_enc_json(token) : NULL;
		struct strbuf u = { 0 };
		strbuf_printf(&u, "%s/storage/v1/b/%s/o?prefix=%s&fields=items(name,size,updated),nextPageToken%s%s",
			      self->endpoint, bk, pf, tk ? "&pageToken=" : "", tk ? tk : "");
		free(tk);
		struct gcs_req rq = { .method = "GET", .api = GCS_JSON, .url = u.data, .what = "list" };
		struct http_resp resp;
		struct http_err err;
		int r = u.data ? gcs_request(self, curl, ctx, &rq, &resp, &err) : AMBER_ENOMEM;
		strbuf_reset(&u);
		if (r < 0) {
			rc = r == AMBER_ENOMEM ? amber_host_api->set_error(ctx, r, "out of memory")
					       : gcs_set_error(ctx, self, &err);
			goto out;
		}
		json_t *root = json_loads(resp.body.data ? resp.body.data : "", 0, NULL);
		strbuf_reset(&resp.body);
		if (!root) {
			rc = amber_host_api->set_error(ctx, AMBER_EIO, "gcs instance %s: list: the "
						       "answer is not JSON", self->name);
			goto out;
		}
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(root, "items"), i, it)
		{
			const char *name = json_string_value(json_object_get(it, "name"));
			const char *size = json_string_value(json_object_get(it, "size"));
			const char *upd = json_string_value(json_object_get(it, "updated"));
			if (!name || !size || strlen(name) < plen || strncmp(name, self->prefix, plen) ||
			    strpbrk(name, "\t\n"))
				continue;
			if (append_line(out, name + plen, size, parse_rfc3339(upd)) < 0) {
				rc = amber_host_api->set_error(ctx, AMBER_ENOMEM, "cannot append to the listing");
				break;
			}
		}
		const char *next = json_string_value(json_object_get(root, "nextPageToken"));
		free(token);
		token = next && *next ? strdup(next) : NULL;
		json_decref(root);
		if (rc < 0 || !token)
			break;
	}
out:
	free(token);
	free(bk);
	free(pf);
	if (curl)
		curl_easy_cleanup(curl);
	return rc;
}

/* XML API listing (HMAC keys cannot use the JSON API). */
static int list_xml(amber_instance *self, amber_ctx *ctx, const char *full, amber_buf *out)
{
	char *token = NULL;
	size_t plen = strlen(self->prefix);
	int rc = AMBER_OK;
	CURL *curl = curl_easy_init();
	if (!curl)
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	for (;;) {
		struct sigv4_kv q[3] = { { "list-type", "2" }, { "prefix", full },
					 { "continuation-token", token } };
		struct gcs_req rq = { .method = "GET", .api = GCS_XML, .query = q,
				      .n_query = token ? 3 : 2, .what = "list" };
		struct http_resp resp;
		struct http_err err;
		if (gcs_request(self, curl, ctx, &rq, &resp, &err) < 0) {
			rc = gcs_set_error(ctx, self, &err);
			break;
		}
		const char *doc = resp.body.data ? resp.body.data : "", *pos = doc, *blk;
		size_t blen;
		while (rc == AMBER_OK && xml_block(doc, "Contents", &pos, &blk, &blen) == 0) {
			char *c = strndup(blk, blen);
			const char *p1 = c, *p2 = c, *p3 = c;
			char *key = c ? xml_text(c, "Key", &p1) : NULL;
			char *size = c ? xml_text(c, "Size", &p2) : NULL;
			char *lm = c ? xml_text(c, "LastModified", &p3) : NULL;
			if (key && size && strlen(key) >= plen && !strncmp(key, self->prefix, plen) &&
			    !strpbrk(key, "\t\n") && append_line(out, key + plen, size, parse_rfc3339(lm)) < 0)
				rc = amber_host_api->set_error(ctx, AMBER_ENOMEM, "cannot append to the listing");
			free(c);
			free(key);
			free(size);
			free(lm);
		}
		pos = doc;
		char *trunc = xml_text(doc, "IsTruncated", &pos);
		pos = doc;
		char *next = xml_text(doc, "NextContinuationToken", &pos);
		int more = trunc && !strcmp(trunc, "true") && next && *next;
		free(trunc);
		strbuf_reset(&resp.body);
		free(token);
		token = next;
		if (rc < 0 || !more)
			break;
	}
	free(token);
	curl_easy_cleanup(curl);
	return rc;
}

static int gcs_list(amber_instance *self, amber_ctx *ctx, const char *prefix, amber_buf *out)
{
	struct strbuf full = { 0 };
	strbuf_printf(&full, "%s%s", self->prefix, prefix ? prefix : "");
	if (strbuf_failed(&full))
		return amber_host_api->set_error(ctx, AMBER_ENOMEM, "out of memory");
	int r = self->auth == GCS_AUTH_HMAC ? list_xml(self, ctx, full.data, out)
					    : list_json(self, ctx, full.data, out);
	strbuf_reset(&full);
	return r;
}

static const amber_adapter gcs_adapter = {
	.struct_size = sizeof(amber_adapter),
	.abi_major = AMBER_ABI_MAJOR,
	.abi_minor = AMBER_ABI_MINOR,
	.min_host_abi_minor = 0,
	.name = "gcs",
	.version = GCS_VERSION,
	.description = "Google Cloud Storage (service account, metadata server or HMAC keys; "
		       "resumable streaming upload, V4 signed URLs)",
	/* The presign caps are advertised for every mode; presign answers ENOTSUP where
	 * the auth mode holds no signing key (metadata, none). */
	.caps = AMBER_CAP_CONCURRENT | AMBER_CAP_RANGE_READ | AMBER_CAP_PRESIGN_GET |
		AMBER_CAP_PRESIGN_RESUMABLE,
	.config = gcs_config,
	.config_check = gcs_config_check,
	.instance_new = gcs_instance_new,
	.instance_free = gcs_instance_free,
	.writer_open = gcs_writer_open,
	.writer_write = gcs_writer_write,
	.writer_commit = gcs_writer_commit,
	.writer_free = gcs_writer_free,
	.reader_open = gcs_reader_open,
	.reader_read = gcs_reader_read,
	.reader_free = gcs_reader_free,
	.remove = gcs_remove,
	.presign = gcs_presign,
	.list = gcs_list,
};

AMBER_DECLARE_ADAPTER(gcs_adapter)
