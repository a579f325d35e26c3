/* s3_tool: drives the s3 adapter's methods that the amber CLI does not expose, through
 * the same host code amberd uses, for the shell tests:
 *   s3_tool CONFIG INSTANCE ADAPTER.so presign KEY TTL
 *   s3_tool ... mpu-create KEY                       -> prints the upload id
 *   s3_tool ... presign-part KEY UPLOAD_ID N TTL     -> prints the PUT URL
 *   s3_tool ... mpu-complete KEY UPLOAD_ID [N:ETAG ...]   (none: "all parts")
 *   s3_tool ... mpu-abort KEY UPLOAD_ID
 * Exits 0 on success; otherwise prints "error <code name>: <message>" and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_loader.h"
#include "config.h"
#include "host.h"
#include "instances.h"
#include "log.h"

static int fail(int code, struct amber_ctx *ctx)
{
	printf("error %s: %s\n", host_code_name(code), ctx->message);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: s3_tool CONFIG INSTANCE ADAPTER.so COMMAND ARGS...\n");
		return 2;
	}
	log_setup(2, LOG_LEVEL_WARNING);
	char *err = NULL;
	struct config *cfg = NULL;
	struct adapter_registry *reg = NULL;
	struct instance_set *set = NULL;
	if (config_load_file(argv[1], &cfg, &err) < 0 || adapter_registry_new(&reg) < 0 ||
	    adapter_registry_load_file(reg, argv[3], &err) < 0 ||
	    instance_set_open(cfg, reg, argv[2], &set, &err) < 0) {
		fprintf(stderr, "s3_tool: %s\n", err ? err : "setup failed");
		return 2;
	}
	struct instance *in = instance_set_find(set, argv[2]);
	const amber_adapter *ops = in->ops;
	struct amber_ctx ctx;
	host_ctx_init(&ctx, ops->name, in->name, argv[4], NULL);
	ctx.retry.max_attempts = 2;
	ctx.retry.base_ms = 10;
	const char *cmd = argv[4], *key = argv[5];
	struct amber_buf out = { 0 };
	uint64_t exp = 0;
	int code, rc = 0;
	if (!strcmp(cmd, "presign") && argc == 7) {
		code = ops->presign(in->handle, &ctx, key, AMBER_PRESIGN_GET,
				    (uint32_t)strtoul(argv[6], NULL, 10), &out, &exp);
	} else if (!strcmp(cmd, "mpu-create") && argc == 6) {
		amber_object_info hint = { .struct_size = sizeof(hint), .size = AMBER_SIZE_UNKNOWN,
					   .content_type = "application/gzip" };
		code = ops->multipart_create(in->handle, &ctx, key, &hint, &out);
	} else if (!strcmp(cmd, "presign-part") && argc == 9) {
		code = ops->presign_part(in->handle, &ctx, key, argv[6],
					 (uint32_t)strtoul(argv[7], NULL, 10),
					 (uint32_t)strtoul(argv[8], NULL, 10), &out, &exp);
	} else if (!strcmp(cmd, "mpu-complete") && argc >= 7) {
		size_t n = (size_t)argc - 7;
		amber_part *parts = calloc(n + 1, sizeof(*parts));
		const amber_part **pp = calloc(n + 1, sizeof(*pp));
		for (size_t i = 0; i < n; i++) {
			char *colon = strchr(argv[7 + i], ':');
			if (!colon)
				return 2;
			*colon = '\0';
			parts[i] = (amber_part){ sizeof(amber_part),
						 (uint32_t)strtoul(argv[7 + i], NULL, 10), colon + 1 };
			pp[i] = &parts[i];
		}
		code = ops->multipart_complete(in->handle, &ctx, key, argv[6], pp, n);
		free(parts);
		free(pp);
	} else if (!strcmp(cmd, "mpu-abort") && argc == 7) {
		code = ops->multipart_abort(in->handle, &ctx, key, argv[6]);
	} else {
		fprintf(stderr, "s3_tool: unknown command or wrong arguments\n");
		return 2;
	}
	if (code != 0)
		rc = fail(code, &ctx);
	else if (out.len)
		printf("%.*s\n", (int)out.len, out.data);
	amber_buf_clear(&out);
	instance_set_free(set);
	adapter_registry_free(reg);
	config_free(cfg);
	return rc;
}
