/* amber-conformance: checks that an adapter keeps the contract written in
 * amber/adapter.h, through the same host code amberd and amber use.
 *
 *   amber-conformance --config amber.toml --instance NAME [--adapter-dir DIR]
 *                     [--adapter FILE.so] [--large-mib N]
 *
 * Prints one "ok N - ..." / "not ok N - ..." line per check and a closing
 * "conformance: P passed, F failed" line; exits 1 if any check failed. */
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "adapter_loader.h"
#include "config.h"
#include "host.h"
#include "instances.h"
#include "log.h"

struct run {
	struct instance *in;
	int passed, failed, n;
	uint64_t large_bytes;
	unsigned seq;
};

__attribute__((format(printf, 3, 4))) static void result(struct run *r, bool ok,
							  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s %d - ", ok ? "ok" : "not ok", ++r->n);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (ok)
		r->passed++;
	else
		r->failed++;
}

static void skip(struct run *r, const char *what)
{
	printf("ok %d - %s # SKIP adapter does not claim it\n", ++r->n, what);
}

/* Keys look like the host's: <uuid>.tar.gz, unique per run. */
static void make_key(struct run *r, char *out, size_t cap, bool nested)
{
	uint8_t b[8];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, (int)r->seq, sizeof(b));
	unsigned s = ++r->seq;
	char u[40];
	snprintf(u, sizeof(u), "%02x%02x%02x%02x-%04x-4000-8000-%02x%02x%02x%02x0000", b[0], b[1],
		 b[2], b[3], s & 0xffff, b[4], b[5], b[6], b[7]);
	if (nested)
		snprintf(out, cap, "%s/%s.tar.gz", u, u);
	else
		snprintf(out, cap, "%s.tar.gz", u);
}

/* Deterministic bytes for object n at offset off, so readers can check what they get
 * without keeping a copy. */
static void fill(uint8_t *buf, size_t len, uint64_t off, unsigned n)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9E3779B97F4A7C15ULL + n * 0x632BE59BD9B4E019ULL;
		buf[i] = (uint8_t)(x >> 56);
	}
}

/* Writes `size` bytes in chunks of varying length, commits unless abort. */
static int put(struct run *r, const char *key, uint64_t size, unsigned n, bool commit,
	       struct amber_ctx *ctx)
{
	const amber_adapter *ops = r->in->ops;
	amber_object_info hint = { .struct_size = sizeof(hint), .size = AMBER_SIZE_UNKNOWN,
				   .content_type = "application/gzip" };
	if (ops->caps & AMBER_CAP_NEEDS_SIZE)
		hint.size = size;
	amber_writer *w = NULL;
	int code = ops->writer_open(r->in->handle, ctx, key, &hint, &w);
	if (code != 0)
		return code;
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	uint64_t off = 0;
	size_t step = 1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (code == 0 && off < size) {
		/* Chunk sizes from 1 byte to 1 MiB: a stream of unknown length, unevenly cut. */
		size_t len = step % cap + 1;
		step = step * 7 + 13;
		if (len > size - off)
			len = (size_t)(size - off);
		fill(buf, len, off, n);
		EVP_DigestUpdate(md, buf, len);
		code = ops->writer_write(w, ctx, buf, len);
		off += len;
	}
	if (code == 0 && commit) {
		amber_object_info fin = hint;
		fin.size = size;
		fin.flags = AMBER_OBJ_SHA256_VALID;
		EVP_DigestFinal_ex(md, fin.sha256, NULL);
		code = ops->writer_commit(w, ctx, &fin);
	}
	EVP_MD_CTX_free(md);
	ops->writer_free(w);
	free(buf);
	return code;
}

/* Reads key from offset and checks every byte; returns 0 or an AMBER_E* / -1000 for a
 * content mismatch. */
static int get_check(struct run *r, const char *key, uint64_t size, unsigned n, uint64_t offset,
		     struct amber_ctx *ctx, uint64_t *ret_got)
{
	const amber_adapter *ops = r->in->ops;
	amber_object_info info = { .struct_size = sizeof(info), .size = AMBER_SIZE_UNKNOWN };
	amber_reader *rd = NULL;
	int code = ops->reader_open(r->in->handle, ctx, key, offset, &info, &rd);
	if (code != 0)
		return code;
	size_t cap = 256 * 1024;
	uint8_t *buf = malloc(cap), *want = malloc(cap);
	uint64_t off = offset;
	int rc = 0;
	for (;;) {
		int64_t got = ops->reader_read(rd, ctx, buf, cap);
		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0)
			break;
		if (off + (uint64_t)got > size) {
			rc = -1000;
			break;
		}
		fill(want, (size_t)got, off, n);
		if (memcmp(buf, want, (size_t)got) != 0) {
			rc = -1000;
			break;
		}
		off += (uint64_t)got;
	}
	ops->reader_free(rd);
	free(buf);
	free(want);
	*ret_got = off - offset;
	if (rc == 0 && off != size)
		rc = -1001;
	if (rc == 0 && info.size != AMBER_SIZE_UNKNOWN && info.size != size - offset &&
	    info.size != size)
		rc = -1002;
	return rc;
}

/* The reason for a failed check, in the context's own buffer (each check has its own
 * context). */
static const char *why(int code, struct amber_ctx *ctx)
{
	if (code == -1000)
		return "content differs from what was written";
	if (code == -1001)
		return "object is shorter or longer than what was written";
	if (code == -1002)
		return "reader_open reported a wrong size";
	char msg[HOST_CTX_MESSAGE_MAX];
	snprintf(msg, sizeof(msg), "%s", ctx->message);
	snprintf(ctx->message, sizeof(ctx->message), "%s (%d)%s%.400s", host_code_name(code), code,
		 msg[0] ? ": " : "", msg);
	return ctx->message;
}

static void ctx_for(struct run *r, struct amber_ctx *ctx, const char *op)
{
	host_ctx_init(ctx, r->in->ops->name, r->in->name, op, NULL);
	/* Conformance must not wait for long retry sleeps. */
	ctx->retry.max_attempts = 2;
	ctx->retry.base_ms = 10;
}

static void check_roundtrip(struct run *r, uint64_t size, bool nested, const char *label)
{
	struct amber_ctx ctx;
	ctx_for(r, &ctx, label);
	char key[128];
	make_key(r, key, sizeof(key), nested);
	unsigned n = r->seq;
	int code = put(r, key, size, n, true, &ctx);
	uint64_t got = 0;
	if (code == 0)
		code = get_check(r, key, size, n, 0, &ctx, &got);
	result(r, code == 0, "%s: %llu bytes written in uneven chunks read back equal%s%s",
	       label, (unsigned long long)size, code ? ": " : "", code ? why(code, &ctx) : "");
	ctx_for(r, &ctx, "remove");
	r->in->ops->remove(r->in->handle, &ctx, key);
}

static void check_abort(struct run *r)
{
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "abort");
	char key[128];
	make_key(r, key, sizeof(key), false);
	int code = put(r, key, 3 << 20, r->seq, false, &ctx);
	if (code != 0) {
		result(r, false, "abort: writing failed: %s", why(code, &ctx));
		return;
	}
	amber_reader *rd = NULL;
	amber_object_info info = { .struct_size = sizeof(info) };
	ctx_for(r, &ctx, "abort");
	code = r->in->ops->reader_open(r->in->handle, &ctx, key, 0, &info, &rd);
	if (rd)
		r->in->ops->reader_free(rd);
	bool listed = false;
	if (r->in->ops->list) {
		struct amber_buf out = { 0 };
		r->in->ops->list(r->in->handle, &ctx, "", &out);
		listed = out.data && strstr(out.data, key);
		amber_buf_clear(&out);
	}
	result(r, code == AMBER_ENOTFOUND && !rd && !listed,
	       "abort: writer_free without commit leaves no object (reader_open: %s%s)",
	       host_code_name(code), listed ? "; list still shows it" : "");
}

static void check_remove(struct run *r)
{
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "remove");
	char key[128];
	make_key(r, key, sizeof(key), false);
	int code = r->in->ops->remove(r->in->handle, &ctx, key);
	result(r, code == AMBER_ENOTFOUND, "remove of a missing key answers AMBER_ENOTFOUND (%s)",
	       host_code_name(code));

	ctx_for(r, &ctx, "remove");
	code = put(r, key, 1000, r->seq, true, &ctx);
	int code2 = code ? code : r->in->ops->remove(r->in->handle, &ctx, key);
	amber_reader *rd = NULL;
	amber_object_info info = { .struct_size = sizeof(info) };
	int code3 = code2 ? code2 : r->in->ops->reader_open(r->in->handle, &ctx, key, 0, &info, &rd);
	if (rd)
		r->in->ops->reader_free(rd);
	result(r, code == 0 && code2 == 0 && code3 == AMBER_ENOTFOUND,
	       "remove of a stored key succeeds and the key is gone (%s)",
	       code ? why(code, &ctx) : code2 ? why(code2, &ctx) : host_code_name(code3));
}

static void check_missing_read(struct run *r)
{
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "read");
	char key[128];
	make_key(r, key, sizeof(key), false);
	amber_reader *rd = NULL;
	amber_object_info info = { .struct_size = sizeof(info) };
	int code = r->in->ops->reader_open(r->in->handle, &ctx, key, 0, &info, &rd);
	if (rd)
		r->in->ops->reader_free(rd);
	result(r, code == AMBER_ENOTFOUND && rd == NULL,
	       "reader_open of a missing key answers AMBER_ENOTFOUND and leaves *ret NULL (%s)",
	       host_code_name(code));
}

static void check_overwrite(struct run *r)
{
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "overwrite");
	char key[128];
	make_key(r, key, sizeof(key), false);
	int code = put(r, key, 200000, 1, true, &ctx);
	if (code == 0)
		code = put(r, key, 100000, 2, true, &ctx);
	uint64_t got;
	if (code == 0)
		code = get_check(r, key, 100000, 2, 0, &ctx, &got);
	result(r, code == 0, "a second commit to the same key replaces the object%s%s",
	       code ? ": " : "", code ? why(code, &ctx) : "");
	r->in->ops->remove(r->in->handle, &ctx, key);
}

static void check_range(struct run *r)
{
	if (!(r->in->ops->caps & AMBER_CAP_RANGE_READ)) {
		skip(r, "range read from an offset");
		return;
	}
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "range");
	char key[128];
	make_key(r, key, sizeof(key), false);
	unsigned n = r->seq;
	int code = put(r, key, 1 << 20, n, true, &ctx);
	uint64_t got = 0;
	if (code == 0)
		code = get_check(r, key, 1 << 20, n, 777777, &ctx, &got);
	result(r, code == 0, "range read from offset 777777 returns the rest of the object%s%s",
	       code ? ": " : "", code ? why(code, &ctx) : "");
	r->in->ops->remove(r->in->handle, &ctx, key);
}

struct conc_arg {
	struct run *r;
	char key[128];
	unsigned n;
	int code;
	struct amber_ctx ctx;
};

static void *conc_worker(void *p)
{
	struct conc_arg *a = p;
	uint64_t got;
	a->code = put(a->r, a->key, 4 << 20, a->n, true, &a->ctx);
	if (a->code == 0)
		a->code = get_check(a->r, a->key, 4 << 20, a->n, 0, &a->ctx, &got);
	return NULL;
}

static void check_concurrent(struct run *r)
{
	if (!(r->in->ops->caps & AMBER_CAP_CONCURRENT)) {
		skip(r, "concurrent streams on one instance");
		return;
	}
	enum { N = 4 };
	struct conc_arg a[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		a[i].r = r;
		make_key(r, a[i].key, sizeof(a[i].key), i % 2 == 1);
		a[i].n = r->seq;
		ctx_for(r, &a[i].ctx, "concurrent");
	}
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, conc_worker, &a[i]);
	int bad = -1;
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		if (a[i].code && bad < 0)
			bad = i;
	}
	result(r, bad < 0, "%d concurrent write+read streams on one instance%s%s", N,
	       bad >= 0 ? ": " : "", bad >= 0 ? why(a[bad].code, &a[bad].ctx) : "");
	for (int i = 0; i < N; i++)
		r->in->ops->remove(r->in->handle, &a[i].ctx, a[i].key);
}

static void check_list(struct run *r)
{
	if (!r->in->ops->list) {
		skip(r, "list");
		return;
	}
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "list");
	char key[128];
	make_key(r, key, sizeof(key), false);
	int code = put(r, key, 12345, r->seq, true, &ctx);
	struct amber_buf out = { 0 };
	if (code == 0)
		code = r->in->ops->list(r->in->handle, &ctx, "", &out);
	char want[160];
	snprintf(want, sizeof(want), "%s\t12345\t", key);
	bool found = code == 0 && out.data && strstr(out.data, want);
	result(r, found, "list shows a committed key with its size%s%s", code ? ": " : "",
	       code ? why(code, &ctx) : "");
	amber_buf_clear(&out);
	r->in->ops->remove(r->in->handle, &ctx, key);
}

static void check_presign(struct run *r)
{
	if (!(r->in->ops->caps & AMBER_CAP_PRESIGN_GET)) {
		skip(r, "presign GET");
		return;
	}
	struct amber_ctx ctx;
	ctx_for(r, &ctx, "presign");
	char key[128];
	make_key(r, key, sizeof(key), false);
	struct amber_buf url = { 0 };
	uint64_t exp = 0;
	int code = r->in->ops->presign(r->in->handle, &ctx, key, AMBER_PRESIGN_GET, 600, &url,
				       &exp);
	uint64_t now = (uint64_t)time(NULL);
	result(r, code == 0 && url.len > 0 && exp > now && exp <= now + 700,
	       "presign GET gives a URL that expires in the ttl%s%s", code ? ": " : "",
	       code ? why(code, &ctx) : "");
	amber_buf_clear(&url);
}

static void usage(FILE *f)
{
	fputs("usage: amber-conformance --config FILE --instance NAME [--adapter-dir DIR]\n"
	      "                         [--adapter FILE.so] [--large-mib N]\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },
		{ "instance", required_argument, 0, 'i' },
		{ "adapter-dir", required_argument, 0, 'd' },
		{ "adapter", required_argument, 0, 'a' },
		{ "large-mib", required_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ 0 },
	};
	const char *config_path = NULL, *instance = NULL, *dir = NULL, *file = NULL;
	unsigned long large_mib = 64;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'i': instance = optarg; break;
		case 'd': dir = optarg; break;
		case 'a': file = optarg; break;
		case 'l': large_mib = strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config_path || !instance || (!dir && !file)) {
		usage(stderr);
		return 2;
	}
	log_setup(2, LOG_LEVEL_WARNING);
	char *err = NULL;
	struct config *cfg = NULL;
	struct adapter_registry *reg = NULL;
	struct instance_set *set = NULL;
	int rc = 2;
	if (config_load_file(config_path, &cfg, &err) < 0)
		goto out;
	adapter_registry_new(&reg);
	if (file && adapter_registry_load_file(reg, file, &err) < 0)
		goto out;
	if (dir && adapter_registry_load_dir(reg, dir) < 0) {
		if (asprintf(&err, "%s: cannot read the adapter directory", dir) < 0)
			err = NULL;
		goto out;
	}
	if (instance_set_open(cfg, reg, instance, &set, &err) < 0)
		goto out;
	struct run r = { .in = instance_set_find(set, instance),
			 .large_bytes = (uint64_t)large_mib << 20 };
	if (!r.in) {
		if (asprintf(&err, "no instance '%s' in %s", instance, config_path) < 0)
			err = NULL;
		goto out;
	}
	printf("# adapter %s %s (ABI %u.%u), instance %s\n", r.in->ops->name, r.in->ops->version,
	       (unsigned)r.in->ops->abi_major, (unsigned)r.in->ops->abi_minor, r.in->name);
	check_roundtrip(&r, 0, false, "empty object");
	check_roundtrip(&r, 3 * 1024 * 1024 + 17, false, "stream of unknown length");
	check_roundtrip(&r, 1 << 20, true, "key with a server prefix");
	check_roundtrip(&r, r.large_bytes, false, "large object");
	check_abort(&r);
	check_remove(&r);
	check_missing_read(&r);
	check_overwrite(&r);
	check_range(&r);
	check_concurrent(&r);
	check_list(&r);
	check_presign(&r);
	printf("conformance: %d passed, %d failed\n", r.passed, r.failed);
	rc = r.failed ? 1 : 0;
out:
	if (rc == 2)
		fprintf(stderr, "amber-conformance: %s\n", err ? err : "setup failed");
	free(err);
	instance_set_free(set);
	adapter_registry_free(reg);
	config_free(cfg);
	return rc;
}
