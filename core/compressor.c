#include "compressor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gzip_parallel.h"
#include "zstd_stream.h"

struct compressor {
	enum archive_compression comp;
	struct gzip_parallel *gz;
	struct zstd_stream *zs;
};

static int gzip_level(enum archive_level level, enum gzip_parallel_level *ret)
{
	switch (level) {
	case ARCHIVE_LEVEL_FAST:
		*ret = GZIP_PARALLEL_FAST;
		return 0;
	case ARCHIVE_LEVEL_NONE:
		*ret = GZIP_PARALLEL_STORED;
		return 0;
	case ARCHIVE_LEVEL_BEST:
		*ret = GZIP_PARALLEL_BEST;
		return 0;
	}
	return -EINVAL;
}

static int zstd_level(enum archive_level level, enum zstd_stream_level *ret)
{
	switch (level) {
	case ARCHIVE_LEVEL_FAST:
		*ret = ZSTD_STREAM_FAST;
		return 0;
	case ARCHIVE_LEVEL_NONE:
		*ret = ZSTD_STREAM_RAW;
		return 0;
	case ARCHIVE_LEVEL_BEST:
		*ret = ZSTD_STREAM_BEST;
		return 0;
	}
	return -EINVAL;
}

int compressor_new(enum archive_compression comp, enum archive_level level, unsigned threads,
		   const struct amber_sink *sink, struct compressor **ret)
{
	struct compressor *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->comp = comp;
	int r;
	if (comp == ARCHIVE_COMPRESSION_GZIP) {
		struct gzip_parallel_opts o = { .threads = threads };
		r = gzip_level(level, &o.level);
		if (r == 0)
			r = gzip_parallel_new(&o, sink, &c->gz);
	} else if (comp == ARCHIVE_COMPRESSION_ZSTD) {
		struct zstd_stream_opts o = { .threads = threads };
		r = zstd_level(level, &o.level);
		if (r == 0)
			r = zstd_stream_new(&o, sink, &c->zs);
	} else {
		r = -EINVAL;
	}
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int compressor_write(struct compressor *c, const void *buf, size_t len)
{
	return c->gz ? gzip_parallel_write(c->gz, buf, len) : zstd_stream_write(c->zs, buf, len);
}

int compressor_finish(struct compressor *c)
{
	return c->gz ? gzip_parallel_finish(c->gz) : zstd_stream_finish(c->zs);
}

uint64_t compressor_bytes_out(const struct compressor *c)
{
	return c->gz ? gzip_parallel_bytes_out(c->gz) : zstd_stream_bytes_out(c->zs);
}

void compressor_free(struct compressor *c)
{
	if (!c)
		return;
	gzip_parallel_free(c->gz);
	zstd_stream_free(c->zs);
	free(c);
}

uint64_t compressor_bound(enum archive_compression comp, uint64_t tar_bytes)
{
	/* The create leaves gzip_parallel at its default block size. */
	return comp == ARCHIVE_COMPRESSION_ZSTD ? zstd_stream_bound(tar_bytes)
						: gzip_parallel_bound(tar_bytes, 0);
}

static const char *const compression_names[] = {
	[ARCHIVE_COMPRESSION_GZIP] = "gzip",
	[ARCHIVE_COMPRESSION_ZSTD] = "zstd",
};
static const char *const level_names[] = {
	[ARCHIVE_LEVEL_FAST] = "fast",
	[ARCHIVE_LEVEL_NONE] = "none",
	[ARCHIVE_LEVEL_BEST] = "best",
};

int compression_parse(const char *s, enum archive_compression *ret)
{
	for (size_t i = 0; s && i < sizeof(compression_names) / sizeof(*compression_names); i++)
		if (strcmp(s, compression_names[i]) == 0) {
			*ret = (enum archive_compression)i;
			return 0;
		}
	return -EINVAL;
}

int compression_level_parse(const char *s, enum archive_level *ret)
{
	for (size_t i = 0; s && i < sizeof(level_names) / sizeof(*level_names); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (enum archive_level)i;
			return 0;
		}
	return -EINVAL;
}

const char *compression_name(enum archive_compression comp)
{
	return (size_t)comp < sizeof(compression_names) / sizeof(*compression_names)
		       ? compression_names[comp] : "?";
}

const char *compression_level_name(enum archive_level level)
{
	return (size_t)level < sizeof(level_names) / sizeof(*level_names) ? level_names[level]
									  : "?";
}

const char *compression_media_type(enum archive_compression comp)
{
	return comp == ARCHIVE_COMPRESSION_ZSTD ? "application/zstd" : "application/gzip";
}

enum stored_format stored_format_sniff(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return STORED_GZIP;
	if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
		return STORED_ZSTD;
	return len >= 4 ? STORED_TAR : STORED_UNKNOWN;
}
