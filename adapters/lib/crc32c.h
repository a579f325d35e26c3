/* CRC32C (Castagnoli), as GCS uses it for object integrity (gcs-protocol.md §4): shared
 * by the gcs adapter and the host's resumable uploader. Standard convention:
 * crc = amber_crc32c(0, ...) for the first piece, then chain; the check value of
 * "123456789" is 0xE3069283. */
#ifndef AMBER_LIB_CRC32C_H
#define AMBER_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t amber_crc32c(uint32_t crc, const void *data, size_t len);
/* Base64 of the big-endian value, as in X-Goog-Hash: crc32c=...; 8 characters + NUL. */
void amber_crc32c_b64(uint32_t crc, char out[9]);

#endif
