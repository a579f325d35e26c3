/* The two byte-stream shapes the archive engine talks to: a sink it pushes compressed
 * bytes into (an adapter writer, a file) and a source it pulls them from. */
#ifndef AMBER_STREAM_H
#define AMBER_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct amber_sink {
	/* Takes all len bytes or fails: 0 or a negative errno-style code. */
	int (*write)(void *opaque, const void *buf, size_t len);
	void *opaque;
};

struct amber_source {
	/* Bytes read (> 0), 0 at the end, or a negative errno-style code. */
	int64_t (*read)(void *opaque, void *buf, size_t cap);
	void *opaque;
};

#endif
