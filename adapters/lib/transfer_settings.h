/* The transfer settings both remote-store adapters (s3, gcs) take, read and range-checked
 * in one place: part_size (5MiB..5GiB, the multipart limit S3 and GCS's XML API share),
 * parallel_parts (1..64), connect_timeout (> 0) and stall_timeout (>= 1s). */
#ifndef AMBER_LIB_TRANSFER_SETTINGS_H
#define AMBER_LIB_TRANSFER_SETTINGS_H

#include <amber/adapter.h>
#include <stdint.h>

struct transfer_settings {
	uint64_t part_size;
	int64_t parallel_parts;
	uint64_t connect_ms, stall_ms;
};

/* 0, or an AMBER_E* with the message on ctx, prefixed by who ("gcs instance x: "). */
int transfer_settings_read(const amber_config *cfg, amber_ctx *ctx, const char *who,
			   struct transfer_settings *out);

#endif
