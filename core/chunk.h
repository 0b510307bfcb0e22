/* Refcounted read buffers. An input reads into a chunk; records and parsed
 * fields are slices into it, so nothing is copied until a sink encodes. A
 * chunk lives as long as the last batch that points into it. */
#ifndef SLUICE_CORE_CHUNK_H
#define SLUICE_CORE_CHUNK_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct sl_chunk {
    atomic_int refs;
    size_t cap; /* bytes usable in data */
    size_t len; /* bytes filled */
    char data[];
} sl_chunk;

/* Returns NULL when allocation fails. The new chunk has one reference. */
sl_chunk *sl_chunk_new(size_t cap);
sl_chunk *sl_chunk_ref(sl_chunk *c);
void sl_chunk_unref(sl_chunk *c);
/* Bytes held by all live chunks in the process, for the memory gauge. */
size_t sl_chunk_live_bytes(void);

#endif
