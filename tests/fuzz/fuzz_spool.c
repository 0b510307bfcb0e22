/* Bytes as a spool segment: every entry is located, checked and decoded
 * the way a restarting agent would; nothing may crash or hang. Fuzzing
 * builds skip the checksums (spool_segment.c), so this is what an entry
 * with valid checksums may hold. Whatever decodes must keep the promises
 * the decoder enforces (decision 0054): every record renders as valid JSON
 * with each record -> JSON kernel, its time lies in the entry's range, no
 * record is DROPPED and no field REMOVED or VERBATIM, and the batch
 * written again by the spool's own encoder decodes again, the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/buf.h"
#include "parsers/json.h"
#include "pipeline/spool.h"
#include "pipeline/spool_codec.h"
#include "pipeline/spool_segment.h"
#include "shipper/recjson.h"

#define FIELD_FLAGS_KEPT (SL_FF_KEY_ESCAPED | SL_FF_LABEL | SL_FF_METADATA)

static void check_field(const sl_field *f)
{
    if (f->type < SL_V_STRING || f->type > SL_V_ARRAY || (f->flags & ~FIELD_FLAGS_KEPT)) abort();
}

/* Whether a nested value is so deep that the record around it (two more
 * levels) passes the JSON reader's depth bound: such a record is valid
 * JSON the bounded validator cannot confirm; its value was validated by
 * the decoder. */
static bool too_deep(const sl_field *f)
{
    static const sl_json_opts room = {.max_depth = SL_JSON_MAX_DEPTH - 2};
    return (f->type == SL_V_OBJECT || f->type == SL_V_ARRAY) &&
           sl_json_validate(f->val.p, f->val.n, &room, NULL) != SL_OK;
}

/* Every copy of the record -> JSON writer gives valid JSON. */
static void check_json(const sl_batch *b, const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (too_deep(&r->fields[i])) return;
    for (uint32_t i = 0; i < b->nlabels; i++)
        if (too_deep(&b->labels[i])) return;
    static const sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
    for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
        sl_buf out;
        sl_buf_init(&out, 0);
        if (sl_recjson_append_kernel(&out, b, r, SL_RJ_ALL, k) < 0) abort();
        if (sl_json_validate(out.p, out.len, &deepest, NULL) != SL_OK) abort();
        sl_buf_free(&out);
    }
}

static bool same_slice(sl_slice a, sl_slice b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool same_field(const sl_field *a, const sl_field *b)
{
    return a->type == b->type && a->flags == b->flags && same_slice(a->key, b->key) &&
           same_slice(a->val, b->val);
}

/* The batch through the encoder and the decoder again: an honest writer's
 * entry always reads back, as it was. */
static void check_reencode(const sl_batch *b)
{
    sl_buf raw;
    sl_buf_init(&raw, 0);
    uint32_t nrec;
    int64_t tmin, tmax;
    if (sl_spool_encode_batch(&raw, b, &nrec, &tmin, &tmax) != SL_OK) abort();
    sl_chunk *c = sl_chunk_new(raw.len ? raw.len : 1);
    if (!c) abort();
    memcpy(c->data, raw.p, raw.len);
    c->len = raw.len;
    sl_batch *d = NULL;
    if (sl_spool_decode_raw(c, raw.len, nrec, tmin, tmax, &d) != SL_OK) abort();
    sl_chunk_unref(c);
    sl_buf_free(&raw);
    if (d->nrecords != b->nrecords || d->nlabels != b->nlabels) abort();
    for (uint32_t i = 0; i < b->nlabels; i++)
        if (!same_field(&b->labels[i], &d->labels[i])) abort();
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *x = &b->records[i], *y = &d->records[i];
        if (x->time_ns != y->time_ns || x->flags != y->flags || x->nfields != y->nfields ||
            !same_slice(x->line, y->line))
            abort();
        for (uint32_t k = 0; k < x->nfields; k++)
            if (!same_field(&x->fields[k], &y->fields[k])) abort();
    }
    sl_batch_unref(d);
}

static int check_entry(void *arg, segrd *r, const entry *e)
{
    sl_batch *b = NULL;
    int rc = sl_spool_decode_entry(r, e, arg, &b);
    if (rc != SL_OK) return rc;
    if (b->nrecords != e->records) abort();
    for (uint32_t i = 0; i < b->nlabels; i++) check_field(&b->labels[i]);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *rec = &b->records[i];
        if (rec->time_ns < e->tmin || rec->time_ns > e->tmax || (rec->flags & SL_RF_DROPPED))
            abort();
        for (uint32_t k = 0; k < rec->nfields; k++) check_field(&rec->fields[k]);
        check_json(b, rec);
    }
    check_reencode(b);
    sl_batch_unref(b);
    return SL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_spool_seg_info si;
    sl_spool_verify_bytes(data, size, 1, &si);

    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) abort();
    sl_spool_seg_info ci = {.first_seq = 1};
    segrd r;
    sl_segrd_init(&r, -1, data, size);
    sl_spool_scan_segment(&r, 0, 0, check_entry, dctx, &ci);
    sl_segrd_free(&r);
    ZSTD_freeDCtx(dctx);
    if (ci.entries != si.entries || ci.corrupt != si.corrupt) abort();
    return 0;
}
