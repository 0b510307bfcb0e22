/* The spool's batch codec (spool_codec.c) and the little-endian helpers
 * that it and the entry header share. Private to pipeline/spool*.c. */
#ifndef SLUICE_SHIPPER_SPOOL_CODEC_H
#define SLUICE_SHIPPER_SPOOL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/err.h"

/* ------------------------------------------------------- little-endian I/O */

static inline void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static inline void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Serialises b into raw (reset first); *nrec and the time range are what
 * the entry header carries. */
int sl_spool_encode_batch(sl_buf *raw, const sl_batch *b, uint32_t *nrec, int64_t *tmin,
                          int64_t *tmax);
/* Decodes n bytes of chunk (a decompressed payload) into a new batch that
 * holds a reference to chunk; expect, tmin and tmax are the header's record
 * count and time range. SL_ECORRUPT for a payload no encoder writes: bad
 * layout, a record outside the range, a field whose text is not what its
 * type promises (decision 0054). */
int sl_spool_decode_raw(sl_chunk *chunk, size_t n, uint32_t expect, int64_t tmin, int64_t tmax,
                        sl_batch **out);

/* Whether v is what a value of type (enum sl_value_type) promises the
 * JSON writers, which copy every type but SL_V_STRING as it is: strict
 * JSON string text for SL_V_ESCAPED, one JSON number, literal, object or
 * array for the others (decision 0054). */
bool sl_spool_value_ok(uint8_t type, sl_slice v);

#endif
