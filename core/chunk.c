#include "core/chunk.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Process-wide figure for the memory gauge; only ever read for reporting. */
static atomic_size_t live_bytes;

sl_chunk *sl_chunk_new(size_t cap)
{
    sl_chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    c->cap = cap;
    c->len = 0;
    atomic_fetch_add_explicit(&live_bytes, cap, memory_order_relaxed);
    return c;
}

sl_chunk *sl_chunk_ref(sl_chunk *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void sl_chunk_unref(sl_chunk *c)
{
    if (!c) return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_sub_explicit(&live_bytes, c->cap, memory_order_relaxed);
        free(c);
    }
}

size_t sl_chunk_live_bytes(void)
{
    return atomic_load_explicit(&live_bytes, memory_order_relaxed);
}
