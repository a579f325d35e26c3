/*
 * amber/adapter.h: the storage adapter ABI of Amber, version 1.
 *
 * This header is the whole contract between the Amber host (amberd, amber) and a
 * storage adapter loaded at run time as a shared object. It is a promise to third
 * parties: structs only grow at the end, values are never renumbered, signatures never
 * change. It uses nothing but <stddef.h>, <stdint.h> and <stdarg.h>, and can be
 * included from C++.
 *
 * ---------------------------------------------------------------------------------
 * VERSIONING
 *  - AMBER_ABI_MAJOR changes only for a break. It is part of the entry symbol's name
 *    (amber_adapter_entry_v1), so a host never misreads an adapter of another major.
 *  - AMBER_ABI_MINOR grows whenever a member is appended to a struct, a host
 *    service is added, or a new value (a capability bit, a presign method) is
 *    defined. Nothing else happens in a minor release.
 *  - 1.1 added AMBER_CAP_PRESIGN_RESUMABLE and AMBER_PRESIGN_RESUMABLE (nothing moved:
 *    an adapter built against 1.0 loads and behaves as before).
 *  - Every struct that crosses the boundary starts with `uint32_t struct_size`.
 *      adapter -> host (amber_adapter): the host copies min(struct_size, its own size)
 *        into a zeroed struct, so members the adapter does not know are NULL/0.
 *      host -> adapter (amber_host, amber_object_info): the adapter reads a member only
 *        if AMBER_HAS(ptr, type, member) holds (AMBER_HAS_FN also wants non-NULL).
 *  - An adapter that needs a newer host sets min_host_abi_minor; older hosts refuse it
 *    with a clear message. Otherwise an adapter built against 1.N loads on any 1.x host.
 *  - No enums and no bool in the ABI: fixed-width integers and #defines only.
 *
 * OWNERSHIP
 *  - Strings and structs the host passes in are borrowed for the duration of the call.
 *    An amber_config and the strings read from it stay valid for the instance's life.
 *  - Objects the adapter creates (instance, writer, reader) are adapter-owned and are
 *    destroyed only through the adapter's own *_free. On failure an *_open / *_new
 *    leaves *ret NULL; for every non-NULL *ret the host calls the matching *_free
 *    exactly once.
 *  - Anything the host keeps (a presigned URL) is written into a host-owned amber_buf
 *    through host->buf_append. The host never frees memory the adapter allocated.
 *
 * ERRORS
 *  - Methods return 0 (or a documented positive count) on success and one of the
 *    AMBER_E* codes below on failure. The codes say what the host does next (retry,
 *    answer 404, alert an operator), not which provider error happened.
 *  - The message goes on the operation's context:
 *        return amber_host_api->set_error(ctx, AMBER_EAUTH, "bucket %s: 403", b);
 *    set_error returns its code so this is one line. Adapters do not log the errors
 *    they return: the host logs each failure once, where it decides what to do.
 *
 * THREADING
 *  1. The entry point, module_init and module_fini run once, on the main thread, with
 *     no other call into the adapter in flight.
 *  2. instance_new and instance_free on an instance never overlap any other call on
 *     that instance, and every writer and reader of an instance has been freed before
 *     its instance_free.
 *  3. Without AMBER_CAP_CONCURRENT the host serialises all operations on an instance.
 *     With it, writer_open, reader_open, remove, presign, list and the multipart
 *     methods may run at the same time on one instance from different threads; the
 *     adapter protects its shared state.
 *  4. A writer or reader is used by one thread at a time; it may move between threads
 *     between calls.
 *  5. Every call may block. Calls never run on the HTTP server's threads. Long calls
 *     should poll host->is_cancelled(ctx) between chunks.
 *  6. Host services are thread-safe.
 *  7. Adapters must not touch process-global state: signal handlers, exit(), fork()
 *     without exec, chdir, umask, setlocale, the environment, or the global init and
 *     cleanup of libcurl or OpenSSL (the host does those once, before loading).
 * ---------------------------------------------------------------------------------
 */
#ifndef AMBER_ADAPTER_H
#define AMBER_ADAPTER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AMBER_ABI_MAJOR 1
#define AMBER_ABI_MINOR 1

#if defined(__GNUC__) || defined(__clang__)
#define AMBER_EXPORT __attribute__((visibility("default")))
#define AMBER_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AMBER_EXPORT
#define AMBER_PRINTF(f, a)
#endif

/* Does the struct *p, as the other side compiled it, contain MEMBER? */
#define AMBER_HAS(p, type, member) \
	(offsetof(type, member) + sizeof(((type *)0)->member) <= (p)->struct_size)
#define AMBER_HAS_FN(p, type, member) (AMBER_HAS(p, type, member) && (p)->member != NULL)

/* ---- result codes: 0 ok, < 0 failure. Never renumbered, only added to. ---- */
#define AMBER_OK 0
#define AMBER_ERROR -1      /* unspecified; see the message */
#define AMBER_ENOMEM -2
#define AMBER_EINVAL -3     /* bad argument or configuration */
#define AMBER_ENOTFOUND -4  /* no such object; the host decides if that is an error */
#define AMBER_EEXISTS -5
#define AMBER_ENOTSUP -6
#define AMBER_EAUTH -7      /* credentials rejected or expired */
#define AMBER_EPERM -8      /* authenticated but not allowed */
#define AMBER_ENOSPC -9     /* disk full or quota */
#define AMBER_EAGAIN -10    /* transient; the whole operation may be retried */
#define AMBER_ECANCELED -11 /* host->is_cancelled said so */
#define AMBER_EIO -12       /* storage or protocol failure, not retryable as is */
#define AMBER_EINTEGRITY -13 /* size or checksum mismatch */

/* ---- log levels (syslog numbering) ---- */
#define AMBER_LOG_ERR 3
#define AMBER_LOG_WARNING 4
#define AMBER_LOG_NOTICE 5
#define AMBER_LOG_INFO 6
#define AMBER_LOG_DEBUG 7

/* ---- opaque handles ---- */
typedef struct amber_ctx amber_ctx;           /* host-owned, one per operation */
typedef struct amber_config amber_config;     /* host-owned, validated configuration */
typedef struct amber_buf amber_buf;           /* host-owned growable byte buffer */
typedef struct amber_instance amber_instance; /* adapter-owned */
typedef struct amber_writer amber_writer;     /* adapter-owned, one create stream */
typedef struct amber_reader amber_reader;     /* adapter-owned, one restore stream */

/* ---- configuration schema: an array ending with an all-zero entry ----
 * The host parses [adapters.<instance>] tables against it: unknown keys are errors,
 * REQUIRED keys must be present, defaults are applied, and for every SECRET field
 * `<name>_file` may be given instead (the file's first line is the value). SECRET
 * values are never logged or printed. */
#define AMBER_CFG_STRING 1u
#define AMBER_CFG_INT 2u
#define AMBER_CFG_BOOL 3u
#define AMBER_CFG_SIZE 4u     /* "64MiB", "1G", 1048576 -> bytes */
#define AMBER_CFG_DURATION 5u /* "30s", "5m", "1h", "250ms" -> milliseconds */

#define AMBER_CFG_REQUIRED (1u << 0)
#define AMBER_CFG_SECRET (1u << 1)

typedef struct amber_config_field {
	const char *name;          /* [a-z0-9_]{1,64} */
	uint32_t type;             /* AMBER_CFG_* */
	uint32_t flags;            /* AMBER_CFG_REQUIRED | AMBER_CFG_SECRET */
	const char *default_value; /* as it would be written in TOML; NULL = none */
	const char *help;          /* one line, shown by `amber adapters list` */
} amber_config_field;

/* ---- object metadata (host -> adapter; grows by appending) ---- */
#define AMBER_SIZE_UNKNOWN UINT64_MAX
#define AMBER_OBJ_SHA256_VALID (1u << 0)
#define AMBER_OBJ_SHA1_VALID (1u << 1)

typedef struct amber_object_info {
	uint32_t struct_size;
	uint32_t flags;           /* AMBER_OBJ_* */
	uint64_t size;            /* AMBER_SIZE_UNKNOWN while streaming */
	const char *content_type; /* "application/gzip", "application/zstd" */
	uint8_t sha256[32];       /* valid if AMBER_OBJ_SHA256_VALID */
	uint8_t sha1[20];         /* valid if AMBER_OBJ_SHA1_VALID */
} amber_object_info;

/* ---- host services (host -> adapter; grows by appending) ---- */
typedef struct amber_host {
	uint32_t struct_size;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint64_t features; /* AMBER_HOST_F_*: none defined in 1.0 */

	/* Memory shared with the host's accounting. Adapters may use their own allocator
	 * for their own objects; never free host memory with it or the reverse. */
	void *(*alloc)(size_t n);
	void (*free)(void *p);

	/* The host adds the adapter, instance and operation to every line. ctx may be
	 * NULL (module-level messages). */
	void (*log)(amber_ctx *ctx, int level, const char *fmt, ...) AMBER_PRINTF(3, 4);
	/* Records code and message on ctx (copied); returns code. */
	int (*set_error)(amber_ctx *ctx, int code, const char *fmt, ...) AMBER_PRINTF(3, 4);
	/* Structured detail for logs and API answers, e.g. ("http_status", "403"). */
	void (*set_error_detail)(amber_ctx *ctx, const char *key, const char *value);

	/* Non-zero once the operation should stop; return AMBER_ECANCELED then. */
	int (*is_cancelled)(amber_ctx *ctx);
	/* Sleeps before retry number `attempt` (1, 2, ...) with exponential backoff and
	 * jitter per the host's policy. Returns 0 to go on retrying, AMBER_EAGAIN when
	 * the attempts are used up, AMBER_ECANCELED when cancelled while waiting. */
	int (*backoff)(amber_ctx *ctx, unsigned attempt);

	/* Typed configuration getters. Return 0, or AMBER_ENOTFOUND when the key is
	 * unset and has no default, or AMBER_EINVAL when it is not in the schema with
	 * that type. Strings stay valid for the instance's life. */
	int (*config_get_string)(const amber_config *c, const char *name, const char **ret);
	int (*config_get_int)(const amber_config *c, const char *name, int64_t *ret);
	int (*config_get_bool)(const amber_config *c, const char *name, int *ret);
	int (*config_get_size)(const amber_config *c, const char *name, uint64_t *ret);
	int (*config_get_duration_ms)(const amber_config *c, const char *name, uint64_t *ret);
	/* The instance's name as the operator wrote it ([adapters.<name>]). */
	const char *(*config_instance_name)(const amber_config *c);

	/* Appends to a host-owned buffer. */
	int (*buf_append)(amber_buf *b, const void *data, size_t len);

	/* --- ABI 1.1+: append below; adapters test with AMBER_HAS_FN(host, amber_host, x) */
} amber_host;

/* ---- capabilities: what a method pointer cannot say ---- */
#define AMBER_CAP_PRESIGN_GET (UINT64_C(1) << 0) /* presign(AMBER_PRESIGN_GET) works */
#define AMBER_CAP_MULTIPART (UINT64_C(1) << 1)   /* the multipart_* group works */
#define AMBER_CAP_RANGE_READ (UINT64_C(1) << 2)  /* reader_open honours offset */
#define AMBER_CAP_CONCURRENT (UINT64_C(1) << 3)  /* see THREADING rule 3 */
#define AMBER_CAP_NEEDS_SIZE (UINT64_C(1) << 4)  /* writer_open needs hint->size */
/* ABI 1.1+: presign(AMBER_PRESIGN_RESUMABLE) works. A host only asks adapters that set
 * it, so an adapter without it never sees that method. */
#define AMBER_CAP_PRESIGN_RESUMABLE (UINT64_C(1) << 5)

#define AMBER_PRESIGN_GET 1u /* download of key */
/* ABI 1.1+: a URL that opens a resumable upload session for key, for a party without
 * credentials (a node whose panel holds them). The protocol is fixed, the one of GCS's
 * XML API (gcs-protocol.md §3.6, §5.5): the holder sends POST <url> with the header
 * `x-goog-resumable: start` and an empty body, gets 201 with the session URI in
 * Location, and PUTs the stream there in chunks with Content-Range (multiples of
 * 256 KiB but the last), resuming from what a 308's Range acknowledges. The object
 * appears under key when the final chunk is stored; a session never finished leaves
 * nothing behind. */
#define AMBER_PRESIGN_RESUMABLE 2u

/* One uploaded part of a multipart upload (host -> adapter; grows by appending). */
typedef struct amber_part {
	uint32_t struct_size;
	uint32_t number;  /* 1-based */
	const char *etag; /* exactly as the store returned it (S3: quotes included) */
} amber_part;

/* ---- the adapter descriptor (adapter -> host; grows by appending) ---- */
typedef struct amber_adapter {
	uint32_t struct_size;        /* sizeof(amber_adapter) as the adapter compiled it */
	uint16_t abi_major;          /* must equal the host's */
	uint16_t abi_minor;          /* the SDK minor the adapter was built against */
	uint16_t min_host_abi_minor; /* refuse to load on hosts older than this */
	uint16_t reserved0;          /* explicit padding; 0 */
	const char *name;            /* [a-z0-9_]{1,32}; equals the file stem */
	const char *version;         /* the adapter's own version, e.g. "1.2.0" */
	const char *description;     /* one line */
	uint64_t caps;               /* AMBER_CAP_* */
	const amber_config_field *config; /* schema; may be NULL for none */

	/* module lifetime (optional) */
	int (*module_init)(amber_ctx *ctx);
	void (*module_fini)(void);

	/* instance lifetime: config_check optional, the other two required */
	int (*config_check)(const amber_config *cfg, amber_ctx *ctx);
	int (*instance_new)(const amber_config *cfg, amber_ctx *ctx, amber_instance **ret);
	void (*instance_free)(amber_instance *self);

	/* create (required): the host pushes bytes of a stream whose length it may not
	 * know (hint->size == AMBER_SIZE_UNKNOWN unless AMBER_CAP_NEEDS_SIZE).
	 * writer_commit is the only point where the object becomes visible under key.
	 * writer_free without a successful commit aborts: no partial object may remain. */
	int (*writer_open)(amber_instance *self, amber_ctx *ctx, const char *key,
			   const amber_object_info *hint, amber_writer **ret);
	int (*writer_write)(amber_writer *w, amber_ctx *ctx, const void *data, size_t len);
	int (*writer_commit)(amber_writer *w, amber_ctx *ctx,
			     const amber_object_info *final_info);
	void (*writer_free)(amber_writer *w);

	/* restore (required): the host pulls bytes. offset > 0 only with
	 * AMBER_CAP_RANGE_READ. The adapter fills what AMBER_HAS allows of *ret_info
	 * (at least size: the whole object's, whatever the offset, or AMBER_SIZE_UNKNOWN);
	 * missing key -> AMBER_ENOTFOUND. */
	int (*reader_open)(amber_instance *self, amber_ctx *ctx, const char *key,
			   uint64_t offset, amber_object_info *ret_info, amber_reader **ret);
	/* Returns bytes read (> 0), 0 at end of object, or AMBER_E* (< 0). */
	int64_t (*reader_read)(amber_reader *r, amber_ctx *ctx, void *buf, size_t cap);
	void (*reader_free)(amber_reader *r);

	/* delete (required); a missing key -> AMBER_ENOTFOUND, the host decides. */
	int (*remove)(amber_instance *self, amber_ctx *ctx, const char *key);

	/* presign (optional; with AMBER_CAP_PRESIGN_GET): a URL for `method` on key, valid
	 * for ttl_seconds, appended to url. Like an object store's signature, it need not
	 * check that the key exists. */
	int (*presign)(amber_instance *self, amber_ctx *ctx, const char *key, uint32_t method,
		       uint32_t ttl_seconds, amber_buf *url, uint64_t *ret_expires_unix);

	/* list (optional): appends one line per object whose key starts with prefix, as
	 * "<key>\t<size>\t<mtime_unix>\n", in any order. Keys never hold tabs or
	 * newlines. */
	int (*list)(amber_instance *self, amber_ctx *ctx, const char *prefix, amber_buf *out);

	/* multipart (optional, all four with AMBER_CAP_MULTIPART): an upload whose parts
	 * someone else sends to presigned URLs, as a Pterodactyl node does when the panel
	 * holds the credentials. The object becomes visible under key only at
	 * multipart_complete; multipart_abort discards what was uploaded.
	 *  - multipart_create appends the store's upload id to upload_id.
	 *  - presign_part: a PUT URL for part `part` (1-based) of the upload.
	 *  - multipart_complete with the parts in order; n_parts == 0 means "every part
	 *    the store has for this upload" (a node that reports none).
	 * Missing upload -> AMBER_ENOTFOUND. */
	int (*multipart_create)(amber_instance *self, amber_ctx *ctx, const char *key,
				const amber_object_info *hint, amber_buf *upload_id);
	int (*presign_part)(amber_instance *self, amber_ctx *ctx, const char *key,
			    const char *upload_id, uint32_t part, uint32_t ttl_seconds,
			    amber_buf *url, uint64_t *ret_expires_unix);
	int (*multipart_complete)(amber_instance *self, amber_ctx *ctx, const char *key,
				  const char *upload_id, const amber_part *const *parts,
				  size_t n_parts);
	int (*multipart_abort)(amber_instance *self, amber_ctx *ctx, const char *key,
			       const char *upload_id);

	/* --- ABI 1.1+: append only --- */
} amber_adapter;

/* ---- entry point ---- */
#define AMBER_ENTRY_SYMBOL "amber_adapter_entry_v1"
typedef int (*amber_entry_fn)(const amber_host *host, const amber_adapter **ret);

/* Set by AMBER_DECLARE_ADAPTER; adapters call host services through it. It is the
 * only symbol an adapter shares between its files; it is not exported. */
extern const amber_host *amber_host_api;

/* Put exactly once in an adapter, naming its descriptor. Defines the one exported
 * symbol. */
#define AMBER_DECLARE_ADAPTER(desc)                                                   \
	const amber_host *amber_host_api;                                             \
	AMBER_EXPORT int amber_adapter_entry_v1(const amber_host *h,                  \
						const amber_adapter **r);             \
	int amber_adapter_entry_v1(const amber_host *h, const amber_adapter **r)     \
	{                                                                             \
		if (!h || !r || h->abi_major != AMBER_ABI_MAJOR)                      \
			return AMBER_ENOTSUP;                                         \
		amber_host_api = h;                                                   \
		*r = &(desc);                                                         \
		return AMBER_OK;                                                      \
	}

#ifdef __cplusplus
}
#endif
#endif /* AMBER_ADAPTER_H */
