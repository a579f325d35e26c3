/* The panel's remote API (pterodactyl-protocol.md §1.3, §3): what a Wings-compatible node
 * calls to get presigned part URLs and to report the results of backups and restores.
 * Status codes, error codes and messages are the reference panel's, so a real Wings
 * node (which shows errors[0].detail and treats every 4xx as final) behaves the same
 * against Amber as against Pterodactyl. */
#include "panel_service.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "backup.h"
#include "host.h"
#include "http.h"
#include "instances.h"
#include "log.h"
#include "store.h"

#define DEFAULT_PART_SIZE (UINT64_C(5) * 1024 * 1024 * 1024) /* backups.max_part_size */
#define DEFAULT_PRESIGN_TTL_S 3600u	/* backups.presigned_url_lifespan: 60 min */
#define DEFAULT_STUCK_AFTER_S (6u * 3600u) /* backups.prune_age: 360 min */
/* The chunk a node sends to a resumable session at a time: GCS's advice is 8 to 32 MiB,
 * a multiple of 256 KiB; the node holds one in memory. */
#define RESUMABLE_CHUNK_SIZE (UINT64_C(16) << 20)
/* S3 numbers parts 1..10000. Without a bound a tiny part size and a huge `size` would
 * make one request sign (and answer with) millions of URLs. */
#define MAX_PARTS 10000u

#define N_ROUTES 4

struct panel_service {
	struct store *store;
	struct instance_set *instances;
	uint64_t part_size;
	unsigned presign_ttl_s;
	unsigned stuck_after_s;
	struct http_route routes[N_ROUTES];
};

static const char *const MSG_NOT_FOUND = "The requested resource could not be found on the server.";
static const char *const MSG_FOREIGN = "You do not have permission to access that backup.";
static const char *const MSG_INTERNAL =
	"An unexpected error was encountered while processing this request, please try again.";

/* ---- error bodies, as the panel's exception handler renders them ---- */

static int respond_error(struct http_request *req, unsigned status, const char *code,
			 const char *detail)
{
	return http_respond_panel_error(req, status, code, detail);
}

/* A 422 the way Laravel's validator reports one field (protocol §1.3). */
static int respond_invalid(struct http_request *req, const char *field, const char *rule,
			   const char *detail)
{
	json_t *e = json_pack("{s:s, s:s, s:s}", "code", "ValidationException", "status", "422",
			      "detail", detail);
	if (e)
		json_object_set_new(e, "meta", json_pack("{s:s, s:s}", "source_field", field,
							  "rule", rule));
	json_t *body = e ? json_pack("{s:[o]}", "errors", e) : NULL;
	if (!body)
		return -ENOMEM;
	return http_respond_json(req, 422, body);
}

static int respond_internal(struct http_request *req, int err)
{
	respond_error(req, 500, "HttpException", MSG_INTERNAL);
	return err < 0 ? err : -EIO;
}

/* ---- authentication (DaemonAuthenticate) ---- */

/* 0 and *ret_node_id when the bearer token belongs to a node; otherwise the error has
 * been answered and a negative errno comes back. */
static int authenticate(struct panel_service *svc, struct http_request *req,
			int64_t *ret_node_id)
{
	const char *h = http_request_header(req, "Authorization");
	const char *tok = NULL;
	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		tok = h + 7;
		while (*tok == ' ')
			tok++;
	}
	if (!tok || !*tok) {
		http_response_header(req, "WWW-Authenticate", "Bearer");
		respond_error(req, 401, "HttpException",
			      "Access to this endpoint must include an Authorization header.");
		return -EACCES;
	}
	/* <token_id>.<token>: exactly two non-empty parts, as explode('.') in the panel. */
	const char *dot = strchr(tok, '.');
	if (!dot || dot == tok || !dot[1] || strchr(dot + 1, '.')) {
		respond_error(req, 400, "BadRequestHttpException",
			      "The Authorization header provided was not in a valid format.");
		return -EINVAL;
	}
	size_t id_len = (size_t)(dot - tok);
	char *token_id = strndup(tok, id_len);
	if (!token_id)
		return respond_internal(req, -ENOMEM);
	int r = store_node_check_token(svc->store, token_id, dot + 1, ret_node_id);
	free(token_id);
	if (r == -EACCES) {
		respond_error(req, 403, "AccessDeniedHttpException",
			      "You are not authorized to access this resource.");
		return r;
	}
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: checking a node token: %s", strerror(-r));
		return respond_internal(req, r);
	}
	return 0;
}

/* The backup named by the route and its server, if the calling node hosts it; otherwise
 * 404 or 403 has been answered and a negative errno comes back. */
static int load_backup(struct panel_service *svc, struct http_request *req, int64_t node_id,
		       struct store_backup **ret_b, struct store_server **ret_s)
{
	*ret_b = NULL;
	*ret_s = NULL;
	struct store_backup *b = NULL;
	struct store_server *s = NULL;
	int r = store_backup_get(svc->store, http_request_param(req, "uuid"), &b);
	if (r == 0)
		r = store_server_get(svc->store, b->server_uuid, &s);
	if (r == -ENOENT) {
		store_backup_free(b);
		respond_error(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
		return r;
	}
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: reading backup %s: %s", b ? b->uuid : "?",
			strerror(-r));
		store_backup_free(b);
		return respond_internal(req, r);
	}
	/* Pterodactyl's upload-URL route meant this check but answers 500 (a missing
	 * import); its restore route has none. Pelican answers 403 on all three, and so
	 * do we: a node must not touch another node's backups. */
	if (s->node_id != node_id) {
		store_backup_free(b);
		store_server_free(s);
		respond_error(req, 403, "HttpForbiddenException", MSG_FOREIGN);
		return -EPERM;
	}
	*ret_b = b;
	*ret_s = s;
	return 0;
}

/* Parses the request body as a JSON object. Wings always sends JSON; no Content-Type
 * check here (unlike the node API): without the bearer token a cross-site form post
 * gets nowhere anyway. */
static int read_json_body(struct http_request *req, json_t **ret)
{
	size_t len;
	const void *body = http_request_body(req, &len);
	json_error_t jerr;
	json_t *j = json_loadb(body, len, 0, &jerr);
	if (!j || !json_is_object(j)) {
		char detail[256];
		if (j)
			snprintf(detail, sizeof(detail), "The request body must be a JSON object.");
		else
			snprintf(detail, sizeof(detail),
				 "The request body is not valid JSON: %s (line %d, column %d).",
				 jerr.text, jerr.line, jerr.column);
		json_decref(j);
		respond_error(req, 400, "BadRequestHttpException", detail);
		return -EINVAL;
	}
	/* One seed of the API shows the body wrapped in "data"; Wings sends it bare.
	 * Taking both costs nothing. */
	json_t *data = json_object_get(j, "data");
	if (json_is_object(data) && !json_object_get(j, "successful")) {
		json_incref(data);
		json_decref(j);
		j = data;
	}
	*ret = j;
	return 0;
}

static bool is_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- GET /api/remote/backups/:uuid?size=N ---- */

struct presign_job {
	struct instance *in;
	const char *key;
	const char *backup_uuid;
	const char *upload_id;	/* the backup's open upload, or NULL to create one */
	uint64_t n_parts;
	uint64_t size;
	unsigned ttl_s;
	struct amber_buf new_upload_id; /* out: set when one was created */
	json_t *urls;		/* out */
	uint64_t failed_part;	/* out, on failure (0: creating the upload) */
	int rc;			/* out: 0 or a negative errno */
	struct amber_ctx ctx;	/* out: the adapter's message on failure */
};

static void *presign_thread(void *opaque)
{
	struct presign_job *j = opaque;
	struct instance *in = j->in;
	host_ctx_init(&j->ctx, in->ops->name, in->name, "presign", j->backup_uuid);
	struct amber_buf url = { 0 };
	j->rc = 0;
	instance_lock(in);
	const char *upload_id = j->upload_id;
	if (!upload_id) {
		amber_object_info hint = { .struct_size = sizeof(hint), .size = j->size,
					   .content_type = "application/x-gzip" };
		int code = in->ops->multipart_create(in->handle, &j->ctx, j->key, &hint,
						     &j->new_upload_id);
		if (code == 0 && !j->new_upload_id.len)
			code = host_ctx_set_error(&j->ctx, AMBER_EIO, "the adapter returned an "
								    "empty upload id");
		if (code != 0)
			j->rc = host_code_to_errno(code);
		upload_id = j->new_upload_id.data;
	}
	for (uint64_t part = 1; part <= j->n_parts && j->rc == 0; part++) {
		uint64_t expires = 0;
		int code = in->ops->presign_part(in->handle, &j->ctx, j->key, upload_id,
						 (uint32_t)part, j->ttl_s, &url, &expires);
		if (code == 0 && (!url.data || !url.len))
			code = host_ctx_set_error(&j->ctx, AMBER_EIO, "the adapter returned an "
								    "empty URL");
		if (code != 0) {
			j->rc = host_code_to_errno(code);
			j->failed_part = part;
		} else if (json_array_append_new(j->urls, json_string(url.data)) < 0) {
			j->rc = -ENOMEM;
			j->failed_part = part;
		}
		amber_buf_clear(&url);
	}
	instance_unlock(in);
	return NULL;
}

/* A resumable-start URL (ABI 1.1, AMBER_PRESIGN_RESUMABLE) instead of part URLs. */
struct resumable_job {
	struct instance *in;
	const char *key;
	const char *backup_uuid;
	unsigned ttl_s;
	struct amber_buf url; /* out */
	uint64_t expires;     /* out */
	int rc;               /* out: 0 or a negative errno */
	struct amber_ctx ctx; /* out: the adapter's message on failure */
};

static void *resumable_thread(void *opaque)
{
	struct resumable_job *j = opaque;
	struct instance *in = j->in;
	host_ctx_init(&j->ctx, in->ops->name, in->name, "presign", j->backup_uuid);
	instance_lock(in);
	int code = in->ops->presign(in->handle, &j->ctx, j->key, AMBER_PRESIGN_RESUMABLE,
				    j->ttl_s, &j->url, &j->expires);
	instance_unlock(in);
	if (code == 0 && !j->url.len)
		code = host_ctx_set_error(&j->ctx, AMBER_EIO, "the adapter returned an empty URL");
	j->rc = code ? host_code_to_errno(code) : 0;
	return NULL;
}

/* Amber's extension of the remote API for stores that take a stream through a resumable
 * session (GCS): one URL that opens it, the header the opening POST must carry, and the
 * chunk size to send. Nothing is kept with the backup: an unfinished session leaves no
 * object, so there is nothing to abort, and a node asking again gets a new URL. */
static int respond_resumable(struct panel_service *svc, struct http_request *req,
			     struct instance *in, const char *key, const char *backup_uuid)
{
	struct resumable_job job = { .in = in, .key = key, .backup_uuid = backup_uuid,
				     .ttl_s = svc->presign_ttl_s };
	int pe = instance_call_off_thread(resumable_thread, &job);
	if (pe != 0 || job.rc < 0) {
		int e = pe != 0 ? pe : job.rc;
		log_msg(LOG_LEVEL_ERR,
			"remote api: backup %s: instance %s could not presign the resumable upload: %s",
			backup_uuid, in->name, job.ctx.message[0] ? job.ctx.message : strerror(-e));
		amber_buf_clear(&job.url);
		if (e == -ENOTSUP) {
			/* A store the panel reaches but cannot sign for (a GCS instance on the
			 * metadata server, say): the node's report says why. */
			char detail[640];
			snprintf(detail, sizeof(detail), "Instance '%s' cannot presign an upload "
							 "session: %s", in->name, job.ctx.message);
			return respond_error(req, 400, "BadRequestHttpException", detail);
		}
		return respond_internal(req, e);
	}
	json_t *body = json_pack("{s:s, s:{s:s}, s:I, s:I}", "resumable_url", job.url.data,
				 "resumable_headers", "x-goog-resumable", "start", "chunk_size",
				 (json_int_t)RESUMABLE_CHUNK_SIZE, "expires_at",
				 (json_int_t)job.expires);
	amber_buf_clear(&job.url);
	return body ? http_respond_json(req, 200, body) : respond_internal(req, -ENOMEM);
}

/* Decimal digits only, > 0 (the panel's `(int) $size` then `empty()`; we refuse what
 * PHP would silently truncate, such as "12abc" or "-5"). */
static bool parse_size(const char *s, uint64_t *ret)
{
	if (!s || !*s || strlen(s) > 19)
		return false;
	uint64_t v = 0;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return false;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	if (v == 0 || v > INT64_MAX)
		return false;
	*ret = v;
	return true;
}

static int h_upload_urls(struct http_request *req, void *userdata)
{
	struct panel_service *svc = userdata;
	int64_t node_id;
	int r = authenticate(svc, req, &node_id);
	if (r < 0)
		return r;
	uint64_t size;
	if (!parse_size(http_request_query(req, "size"), &size))
		return respond_error(req, 400, "BadRequestHttpException",
				     "A non-empty \"size\" query parameter must be provided."),
		       -EINVAL;
	struct store_backup *b;
	struct store_server *s;
	r = load_backup(svc, req, node_id, &b, &s);
	if (r < 0)
		return r;
	if (b->state != STORE_BACKUP_RUNNING) {
		r = respond_error(req, 409, "ConflictHttpException",
				  "This backup is already in a completed state.");
		goto out;
	}
	/* The reference panel looks at its current default adapter; Amber asks the
	 * instance the backup was created with, so switching the default while a backup
	 * runs does not break it (protocol §8.8). */
	struct instance *in = svc->instances ? instance_set_find(svc->instances, b->adapter) : NULL;
	bool resumable = in && !(in->ops->caps & AMBER_CAP_MULTIPART) &&
			 (in->ops->caps & AMBER_CAP_PRESIGN_RESUMABLE) && in->ops->presign;
	if (!in || (!(in->ops->caps & AMBER_CAP_MULTIPART) && !resumable)) {
		char detail[320];
		snprintf(detail, sizeof(detail),
			 "The configured backup adapter is not an S3 compatible adapter: "
			 "instance '%s'%s cannot presign part uploads.",
			 b->adapter, in ? "" : " is not configured on the panel and");
		r = respond_error(req, 400, "BadRequestHttpException", detail);
		goto out;
	}
	uint64_t n = size / svc->part_size + (size % svc->part_size != 0);
	if (!resumable && n > MAX_PARTS) {
		char detail[200];
		snprintf(detail, sizeof(detail),
			 "A size of %" PRIu64 " bytes needs %" PRIu64 " parts of %" PRIu64
			 " bytes; at most %u are allowed.",
			 size, n, svc->part_size, MAX_PARTS);
		r = respond_error(req, 400, "BadRequestHttpException", detail);
		goto out;
	}
	char key[128];
	r = backup_key(s->uuid, b->uuid, key, sizeof(key));
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: backup %s: no object key: %s", b->uuid,
			strerror(-r));
		r = respond_internal(req, r);
		goto out;
	}
	if (resumable) {
		r = respond_resumable(svc, req, in, key, b->uuid);
		goto out;
	}
	/* As the reference panel: the first request opens the multipart upload and keeps
	 * its id with the backup; a node asking again (a retried backup) gets URLs for the
	 * same upload. */
	struct presign_job job = { .in = in, .key = key, .backup_uuid = b->uuid,
				   .upload_id = b->upload_id, .n_parts = n, .size = size,
				   .ttl_s = svc->presign_ttl_s, .urls = json_array() };
	if (!job.urls) {
		r = respond_internal(req, -ENOMEM);
		goto out;
	}
	int pe = instance_call_off_thread(presign_thread, &job);
	if (pe == 0 && job.rc == 0 && job.new_upload_id.len) {
		job.rc = store_backup_set_upload_id(svc->store, b->uuid, job.new_upload_id.data);
		if (job.rc < 0) {
			/* Nobody could ever complete it: give the store its space back. */
			struct amber_ctx actx;
			host_ctx_init(&actx, in->ops->name, in->name, "multipart_abort", b->uuid);
			instance_lock(in);
			in->ops->multipart_abort(in->handle, &actx, key, job.new_upload_id.data);
			instance_unlock(in);
			snprintf(job.ctx.message, sizeof(job.ctx.message), "recording the upload id: %s",
				 strerror(-job.rc));
		}
	}
	amber_buf_clear(&job.new_upload_id);
	if (pe != 0 || job.rc < 0) {
		json_decref(job.urls);
		int e = pe != 0 ? pe : job.rc;
		if (job.failed_part)
			log_msg(LOG_LEVEL_ERR,
				"remote api: backup %s: instance %s could not presign part %" PRIu64
				": %s",
				b->uuid, in->name, job.failed_part,
				job.ctx.message[0] ? job.ctx.message : strerror(-e));
		else
			log_msg(LOG_LEVEL_ERR,
				"remote api: backup %s: instance %s could not open the upload: %s",
				b->uuid, in->name, job.ctx.message[0] ? job.ctx.message : strerror(-e));
		r = respond_internal(req, e);
		goto out;
	}
	json_t *body = json_pack("{s:o, s:I}", "parts", job.urls, "part_size",
				 (json_int_t)svc->part_size);
	r = body ? http_respond_json(req, 200, body) : respond_internal(req, -ENOMEM);
out:
	store_backup_free(b);
	store_server_free(s);
	return r;
}

/* ---- POST /api/remote/backups/:uuid ---- */

struct status_report {
	bool successful;
	const char *sha1, *sha256; /* borrowed from the JSON */
	int64_t size;
	char *parts;		   /* JSON text of the array, or NULL */
};

/* Checks the body as ReportBackupCompleteRequest does; answers 422 and returns a
 * negative errno when it does not pass. */
static int parse_status_report(struct http_request *req, json_t *j, struct status_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	json_t *v = json_object_get(j, "successful");
	int ok = v ? http_json_bool(v) : -1;
	if (!v || json_is_null(v))
		return respond_invalid(req, "successful", "required",
				       "The successful field is required."),
		       -EINVAL;
	if (ok < 0)
		return respond_invalid(req, "successful", "boolean",
				       "The successful field must be true or false."),
		       -EINVAL;
	rep->successful = ok == 1;

	json_t *checksum = json_object_get(j, "checksum");
	json_t *type = json_object_get(j, "checksum_type");
	json_t *size = json_object_get(j, "size");
	json_t *parts = json_object_get(j, "parts");
	if (checksum && !json_is_null(checksum) && !json_is_string(checksum))
		return respond_invalid(req, "checksum", "string",
				       "The checksum must be a string."),
		       -EINVAL;
	if (type && !json_is_null(type) && !json_is_string(type))
		return respond_invalid(req, "checksum_type", "string",
				       "The checksum type must be a string."),
		       -EINVAL;
	if (size && !json_is_null(size) && (!json_is_integer(size) || json_integer_value(size) < 0))
		return respond_invalid(req, "size", "numeric",
				       "The size must be a whole number of bytes."),
		       -EINVAL;
	if (parts && !json_is_null(parts)) {
		if (!json_is_array(parts))
			return respond_invalid(req, "parts", "array",
					       "The parts must be an array."),
			       -EINVAL;
		size_t i;
		json_t *p;
		json_array_foreach(parts, i, p) {
			json_t *etag = json_object_get(p, "etag");
			json_t *num = json_object_get(p, "part_number");
			char field[48], detail[96];
			if (!json_is_string(etag)) {
				snprintf(field, sizeof(field), "parts.%zu.etag", i);
				snprintf(detail, sizeof(detail), "The %s field is required.", field);
				return respond_invalid(req, field, "required", detail), -EINVAL;
			}
			if (!json_is_integer(num) || json_integer_value(num) < 1) {
				snprintf(field, sizeof(field), "parts.%zu.part_number", i);
				snprintf(detail, sizeof(detail),
					 "The %s field must be a number from 1.", field);
				return respond_invalid(req, field, "numeric", detail), -EINVAL;
			}
		}
	}
	/* A failure report carries "" and 0 (remote_client, Wings): nothing more to
	 * check, and nothing of it is stored. */
	if (!rep->successful)
		return 0;

	/* The panel treats an empty string as null (ConvertEmptyStringsToNull). */
	const char *sum = json_string_value(checksum);
	const char *type_s = json_string_value(type);
	if (!sum || !*sum)
		return respond_invalid(req, "checksum", "required_if",
				       "The checksum field is required when successful is true."),
		       -EINVAL;
	if (!type_s || !*type_s)
		return respond_invalid(req, "checksum_type", "required_if",
				       "The checksum type field is required when successful is "
				       "true."),
		       -EINVAL;
	if (!size || json_is_null(size))
		return respond_invalid(req, "size", "required_if",
				       "The size field is required when successful is true."),
		       -EINVAL;
	/* The panel stores "<type>:<checksum>" whatever the type; Amber keeps SHA-1 and
	 * SHA-256 in columns of their own, so only those two types have a place. */
	if (strcasecmp(type_s, "sha1") == 0 && is_hex(sum, 40))
		rep->sha1 = sum;
	else if (strcasecmp(type_s, "sha256") == 0 && is_hex(sum, 64))
		rep->sha256 = sum;
	else
		return respond_invalid(req, "checksum", "checksum",
				       "The checksum must be the hex digest of its checksum type "
				       "(sha1 or sha256)."),
		       -EINVAL;
	/* Amber's nodes also send the SHA-256 the client API shows as sha256_hash. */
	json_t *s256 = json_object_get(j, "sha256_hash");
	if (s256 && !json_is_null(s256)) {
		if (!json_is_string(s256) || !is_hex(json_string_value(s256), 64))
			return respond_invalid(req, "sha256_hash", "hex",
					       "The sha256_hash must be 64 hex digits."),
			       -EINVAL;
		if (!rep->sha256)
			rep->sha256 = json_string_value(s256);
	}
	rep->size = (int64_t)json_integer_value(size);
	if (json_is_array(parts) && !(rep->parts = json_dumps(parts, JSON_COMPACT)))
		return respond_internal(req, -ENOMEM);
	return 0;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

struct finish_job {
	struct instance *in;
	const char *key, *upload_id, *backup_uuid;
	bool successful;
	json_t *parts; /* array of {etag, part_number}, or NULL: all the store holds */
	int rc;
	struct amber_ctx ctx;
};

static void *finish_thread(void *opaque)
{
	struct finish_job *j = opaque;
	struct instance *in = j->in;
	host_ctx_init(&j->ctx, in->ops->name, in->name,
		      j->successful ? "multipart_complete" : "multipart_abort", j->backup_uuid);
	size_t n = json_array_size(j->parts);
	amber_part *parts = calloc(n ? n : 1, sizeof(*parts));
	const amber_part **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!parts || !ptrs) {
		free(parts);
		free(ptrs);
		j->rc = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(j->parts, i);
		parts[i] = (amber_part){ .struct_size = sizeof(amber_part),
					 .number = (uint32_t)json_integer_value(
						 json_object_get(p, "part_number")),
					 .etag = json_string_value(json_object_get(p, "etag")) };
		ptrs[i] = &parts[i];
	}
	instance_lock(in);
	int code = j->successful ? in->ops->multipart_complete(in->handle, &j->ctx, j->key,
							       j->upload_id, ptrs, n)
				 : in->ops->multipart_abort(in->handle, &j->ctx, j->key,
							    j->upload_id);
	instance_unlock(in);
	/* An upload the store no longer knows cannot be aborted twice. */
	if (!j->successful && code == AMBER_ENOTFOUND)
		code = 0;
	j->rc = host_code_to_errno(code);
	free(parts);
	free(ptrs);
	return NULL;
}

/* Completes or aborts the backup's multipart upload, as the report says. 0 when there
 * is nothing to do or it worked; otherwise it has answered (400 or 500). */
static int finish_upload(struct panel_service *svc, struct http_request *req,
			 const struct store_backup *b, const struct store_server *s,
			 const struct status_report *rep)
{
	struct instance *in = svc->instances ? instance_set_find(svc->instances, b->adapter) : NULL;
	if (!in || !(in->ops->caps & AMBER_CAP_MULTIPART))
		return 0; /* a store the node wrote itself (wings): nothing to finish */
	/* No upload was opened here: the node wrote the object itself with credentials of
	 * its own (Amber's direct mode), or failed before it asked for part URLs. The
	 * reference panel refuses a success then (400), because its nodes cannot upload
	 * without it; an Amber node can, and its report is recorded as it is. */
	if (!b->upload_id)
		return 0;
	char key[128];
	int r = backup_key(s->uuid, b->uuid, key, sizeof(key));
	if (r < 0)
		return respond_internal(req, r), r;
	struct finish_job j = { .in = in, .key = key, .upload_id = b->upload_id,
				.backup_uuid = b->uuid, .successful = rep->successful };
	if (rep->successful && rep->parts)
		j.parts = json_loads(rep->parts, 0, NULL);
	int pe = instance_call_off_thread(finish_thread, &j);
	json_decref(j.parts);
	r = pe != 0 ? pe : j.rc;
	if (r < 0 && !rep->successful) {
		/* The failure is what matters to the user: it is recorded whether or not the
		 * store let go of the parts (a store may not implement the abort at all). */
		log_msg(LOG_LEVEL_WARNING,
			"remote api: backup %s failed and its upload on instance %s could not be "
			"aborted: %s; the store keeps the parts until its own cleanup",
			b->uuid, in->name, j.ctx.message[0] ? j.ctx.message : strerror(-r));
		return 0;
	}
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: backup %s: completing the upload on instance %s: %s",
			b->uuid, in->name, j.ctx.message[0] ? j.ctx.message : strerror(-r));
		return respond_internal(req, r), r;
	}
	log_msg(LOG_LEVEL_INFO, "backup %s: upload %s on instance %s", b->uuid,
		rep->successful ? "completed" : "aborted", in->name);
	return 0;
}

static int h_status(struct http_request *req, void *userdata)
{
	struct panel_service *svc = userdata;
	int64_t node_id;
	int r = authenticate(svc, req, &node_id);
	if (r < 0)
		return r;
	/* The panel validates the body (422) before it looks the backup up. */
	json_t *j;
	if ((r = read_json_body(req, &j)) < 0)
		return r;
	struct status_report rep;
	struct store_backup *b = NULL;
	struct store_server *s = NULL;
	char *sha1 = NULL, *sha256 = NULL;
	if ((r = parse_status_report(req, j, &rep)) < 0)
		goto out;
	if ((r = load_backup(svc, req, node_id, &b, &s)) < 0)
		goto out;
	if (b->state == STORE_BACKUP_COMPLETED) {
		r = respond_error(req, 400, "BadRequestHttpException",
				  "Cannot update the status of a backup that is already marked as "
				  "completed.");
		goto out;
	}
	/* A multipart upload is completed (or aborted) before the result is recorded: if
	 * the store fails, the node gets a 500 and retries, as with the reference panel. */
	if ((r = finish_upload(svc, req, b, s, &rep)) < 0)
		goto out;
	sha1 = rep.sha1 ? strdup(rep.sha1) : NULL;
	sha256 = rep.sha256 ? strdup(rep.sha256) : NULL;
	if ((rep.sha1 && !sha1) || (rep.sha256 && !sha256)) {
		r = respond_internal(req, -ENOMEM);
		goto out;
	}
	lower(sha1);
	lower(sha256);
	/* Amber's nodes say why a backup failed; the client API shows it. */
	const char *why = json_string_value(json_object_get(j, "error"));
	char reason[512] = "";
	if (!rep.successful && why && *why) {
		size_t n = strlen(why);
		if (n >= sizeof(reason)) {
			/* cut at a character boundary: the reason is shown as JSON */
			n = sizeof(reason) - 1;
			while (n > 0 && ((unsigned char)why[n] & 0xC0) == 0x80)
				n--;
		}
		memcpy(reason, why, n);
		reason[n] = 0;
	}
	r = store_backup_mark_completed(svc->store, b->uuid, rep.successful, sha1, sha256,
					rep.size, rep.parts, reason, (int64_t)time(NULL));
	if (r == -EALREADY) {
		r = respond_error(req, 400, "BadRequestHttpException",
				  "Cannot update the status of a backup that is already marked as "
				  "completed.");
	} else if (r == -ENOENT) { /* deleted since load_backup */
		r = respond_error(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
	} else if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: backup %s: storing the report: %s", b->uuid,
			strerror(-r));
		r = respond_internal(req, r);
	} else {
		log_msg(LOG_LEVEL_INFO, "backup %s of server %s %s (%" PRId64 " bytes)%s%s", b->uuid,
			s->uuid, rep.successful ? "completed" : "failed", rep.size,
			why && !rep.successful ? ": " : "", why && !rep.successful ? why : "");
		r = http_respond_empty(req, 204);
	}
out:
	free(sha1);
	free(sha256);
	free(rep.parts);
	json_decref(j);
	store_backup_free(b);
	store_server_free(s);
	return r;
}

/* ---- POST /api/remote/backups/:uuid/restore ---- */

static int h_restore(struct http_request *req, void *userdata)
{
	struct panel_service *svc = userdata;
	int64_t node_id;
	int r = authenticate(svc, req, &node_id);
	if (r < 0)
		return r;
	json_t *j;
	if ((r = read_json_body(req, &j)) < 0)
		return r;
	json_t *v = json_object_get(j, "successful");
	int ok = v ? http_json_bool(v) : -1;
	json_decref(j);
	if (ok < 0)
		return respond_invalid(req, "successful", v ? "boolean" : "required",
				       v ? "The successful field must be true or false."
					 : "The successful field is required."),
		       -EINVAL;
	struct store_backup *b;
	struct store_server *s;
	if ((r = load_backup(svc, req, node_id, &b, &s)) < 0)
		return r;
	/* Cleared whatever the outcome, as the panel does: a failed restore must not
	 * leave the server locked in "restoring_backup". */
	r = store_server_set_state(svc->store, s->uuid, NULL, NULL);
	if (r == -ENOENT) {
		r = respond_error(req, 404, "NotFoundHttpException", MSG_NOT_FOUND);
	} else if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: server %s: clearing its state: %s", s->uuid,
			strerror(-r));
		r = respond_internal(req, r);
	} else {
		log_msg(LOG_LEVEL_INFO, "restore of backup %s into server %s %s", b->uuid, s->uuid,
			ok ? "completed" : "failed");
		r = http_respond_empty(req, 204);
	}
	store_backup_free(b);
	store_server_free(s);
	return r;
}

/* ---- POST /api/remote/servers/reset (§3.4) ---- */

static int h_servers_reset(struct http_request *req, void *userdata)
{
	struct panel_service *svc = userdata;
	int64_t node_id;
	int r = authenticate(svc, req, &node_id);
	if (r < 0)
		return r;
	/* A node that boots has no restore running: whatever state its servers were left
	 * in by an interrupted one is stale. */
	r = store_servers_reset_state(svc->store, node_id);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERR, "remote api: resetting the servers of node %" PRId64 ": %s",
			node_id, strerror(-r));
		return respond_internal(req, r);
	}
	if (r > 0)
		log_msg(LOG_LEVEL_NOTICE, "node %" PRId64 " booted: cleared the state of %d servers",
			node_id, r);
	return http_respond_empty(req, 204);
}

/* ---- lifetime ---- */

int panel_service_new(const struct panel_service_config *cfg, struct panel_service **ret,
		      char **ret_err)
{
	*ret = NULL;
	if (ret_err)
		*ret_err = NULL;
	if (!cfg || !cfg->store) {
		if (ret_err)
			*ret_err = strdup("panel service: no store");
		return -EINVAL;
	}
	struct panel_service *svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	svc->store = cfg->store;
	svc->instances = cfg->instances;
	svc->part_size = cfg->part_size ? cfg->part_size : DEFAULT_PART_SIZE;
	svc->presign_ttl_s = cfg->presign_ttl_s ? cfg->presign_ttl_s : DEFAULT_PRESIGN_TTL_S;
	svc->stuck_after_s = cfg->stuck_after_s ? cfg->stuck_after_s : DEFAULT_STUCK_AFTER_S;
	const struct http_route routes[N_ROUTES] = {
		{ "GET", "/api/remote/backups/:uuid", h_upload_urls, svc },
		{ "POST", "/api/remote/backups/:uuid", h_status, svc },
		{ "POST", "/api/remote/backups/:uuid/restore", h_restore, svc },
		{ "POST", "/api/remote/servers/reset", h_servers_reset, svc },
	};
	memcpy(svc->routes, routes, sizeof(routes));
	*ret = svc;
	return 0;
}

const struct http_route *panel_service_routes(struct panel_service *svc, size_t *ret_n)
{
	*ret_n = N_ROUTES;
	return svc->routes;
}

int panel_service_sweep(struct panel_service *svc, int64_t now)
{
	int r = store_backups_fail_stuck(svc->store, svc->stuck_after_s, now);
	if (r < 0)
		log_msg(LOG_LEVEL_ERR, "panel: failing stuck backups: %s", strerror(-r));
	else if (r > 0)
		log_msg(LOG_LEVEL_NOTICE,
			"panel: marked %d backups failed that ran for more than %u s", r,
			svc->stuck_after_s);
	return r;
}

void panel_service_free(struct panel_service *svc)
{
	free(svc);
}
