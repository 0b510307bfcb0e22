#include "core/batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

sl_batch *sl_batch_new(uint32_t cap)
{
    sl_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    /* Not zeroed: sl_batch_add initialises each record it hands out. */
    b->records = malloc((size_t)(cap ? cap : 1) * sizeof *b->records);
    if (!b->records) {
        free(b);
        return NULL;
    }
    b->cap_records = cap ? cap : 1;
    atomic_init(&b->refs, 1);
    atomic_init(&b->pending, 1);
    sl_arena_init(&b->arena, 0);
    return b;
}

int sl_batch_grow_records(sl_batch *b, uint32_t max)
{
    if (b->cap_records >= max) return SL_EFULL;
    uint32_t cap = b->cap_records > max / 2 ? max : b->cap_records * 2;
    sl_record *r = realloc(b->records, (size_t)cap * sizeof *r);
    if (!r) return SL_ENOMEM;
    b->records = r;
    b->cap_records = cap;
    return SL_OK;
}

sl_batch *sl_batch_ref(sl_batch *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void sl_batch_unref(sl_batch *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < b->nchunks; i++) sl_chunk_unref(b->chunks[i]);
    if (b->ticket.wm) sl_watermark_unref(b->ticket.wm);
    /* Never delivered: what waited on this batch stays unacknowledged. */
    for (uint32_t i = 0; i < b->nrelease; i++) sl_batch_unref(b->release[i]);
    sl_arena_reset(&b->arena);
    free(b->records);
    free(b);
}

int sl_batch_add_chunk(sl_batch *b, sl_chunk *c)
{
    for (uint32_t i = 0; i < b->nchunks; i++)
        if (b->chunks[i] == c) return SL_OK;
    if (b->nchunks == SL_BATCH_MAX_CHUNKS) return SL_EFULL;
    b->chunks[b->nchunks++] = sl_chunk_ref(c);
    return SL_OK;
}

sl_record *sl_batch_add(sl_batch *b, sl_slice line, int64_t time_ns, uint64_t pos_end)
{
    if (b->nrecords == b->cap_records) return NULL;
    sl_record *r = &b->records[b->nrecords++];
    memset(r, 0, sizeof *r);
    r->line = line;
    r->time_ns = time_ns;
    r->pos_end = pos_end;
    b->bytes += line.n;
    return r;
}

/* Out of line: most records never grow past their first array. */
static __attribute__((noinline, cold)) sl_field *grow_fields(sl_batch *b, sl_record *r)
{
    uint32_t cap = r->cap_fields ? r->cap_fields * 2 : 16;
    sl_field *f = sl_arena_alloc(&b->arena, (size_t)cap * sizeof *f);
    if (!f) return NULL;
    if (r->nfields) memcpy(f, r->fields, (size_t)r->nfields * sizeof *f);
    r->fields = f;
    r->cap_fields = cap;
    return f;
}

sl_field *sl_record_add_field(sl_batch *b, sl_record *r, sl_slice key, sl_slice val, int type)
{
    if (__builtin_expect(r->nfields == r->cap_fields, 0) && !grow_fields(b, r)) return NULL;
    sl_field *f = &r->fields[r->nfields++];
    /* a field the line's JSON does not hold (core/record.h) */
    r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
    f->key = key;
    f->val = val;
    f->type = (uint8_t)type;
    f->flags = 0;
    return f;
}

sl_field *sl_record_field(const sl_record *r, const char *key, size_t keylen)
{
    /* Later fields win: a step that sets a key again appends it. */
    for (uint32_t i = r->nfields; i-- > 0;) {
        sl_field *f = &r->fields[i];
        if (!(f->flags & (SL_FF_REMOVED | SL_FF_KEY_ESCAPED)) && sl_slice_eq(f->key, key, keylen))
            return f;
    }
    return NULL;
}

int sl_batch_set_labels(sl_batch *b, const sl_field *labels, uint32_t n)
{
    if (n == 0) return SL_OK;
    sl_field *l = sl_arena_alloc(&b->arena, (size_t)n * sizeof *l);
    if (!l) return SL_ENOMEM;
    memcpy(l, labels, (size_t)n * sizeof *l);
    b->labels = l;
    b->nlabels = n;
    return SL_OK;
}

int sl_batch_set_names(sl_batch *b, const char *input, const char *source)
{
    if (input && !(b->input = sl_arena_dup(&b->arena, input, strlen(input)))) return SL_ENOMEM;
    if (source && !(b->source = sl_arena_dup(&b->arena, source, strlen(source)))) return SL_ENOMEM;
    return SL_OK;
}

void sl_batch_hold(sl_batch *b, int n)
{
    atomic_fetch_add_explicit(&b->pending, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->refs, n, memory_order_relaxed);
}

int sl_batch_release_after(sl_batch *held, sl_batch *after)
{
    if (held == after || after->nrelease == SL_BATCH_MAX_RELEASE) {
        sl_batch_done(held);
        return held == after ? SL_OK : SL_EFULL;
    }
    after->release[after->nrelease++] = held;
    return SL_OK;
}

void sl_batch_done(sl_batch *b)
{
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) {
        if (b->on_done) b->on_done(b, b->on_done_arg);
        if (b->ticket.wm) sl_watermark_ack(b->ticket.wm, b->ticket.begin, b->ticket.end);
        for (uint32_t i = 0; i < b->nrelease; i++) sl_batch_done(b->release[i]);
        b->nrelease = 0;
    }
    sl_batch_unref(b);
}

uint64_t sl_batch_footprint(sl_batch *b)
{
    if (!b->footprint)
        b->footprint = b->bytes + b->arena.used + (uint64_t)b->cap_records * sizeof *b->records;
    return b->footprint;
}

void sl_batch_urge(sl_batch *b, int64_t now_ns, int64_t *next_ns)
{
    /* At most one a second: a node whose every read ends a backlog adds
     * at most one request a second per input. */
    if (now_ns < *next_ns) return;
    b->flush_now = true;
    *next_ns = now_ns + 1000000000LL;
}
