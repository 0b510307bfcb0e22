/* Bytes as a spool segment: every entry is located, checked and decoded
 * the way a restarting agent would; nothing may crash or hang. Fuzzing
 * builds skip the checksums (spool_segment.c), so this is what an entry
 * with valid checksums may hold. Whatever decodes must keep the promises
 * the decoder enforces (decision 0054): every record renders as valid JSON
 * with each record -> JSON kernel, its time lies in the entry's range, no
 * record is DROPPED and no field REMOVED or VERBATIM, the range is in
 * order (0..0 without records), and the batch written again by the
 * spool's own encoder decodes again, the same.
 * And the decoder's value checks (sl_spool_value_ok: hand-written, for
 * speed) answer as the json step's validator does, on the input's bytes
 * after the first (which picks the type). */
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
    if (b->nrecords != e->records || e->tmin > e->tmax || (!e->records && (e->tmin || e->tmax)))
        abort();
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

/* The reference: the json step's validator on the value (a string's text
 * between quotes), exactly one value with nothing around it. */
static bool reference_ok(uint8_t type, const char *p, size_t n)
{
    static const sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
    switch (type) {
    case SL_V_STRING:
        return true;
    case SL_V_ESCAPED: {
        char *q = malloc(n + 2);
        if (!q) abort();
        q[0] = '"';
        memcpy(q + 1, p, n);
        q[n + 1] = '"';
        bool ok = sl_json_validate(q, n + 2, &deepest, NULL) == SL_OK;
        free(q);
        return ok;
    }
    case SL_V_NUMBER:
        return n && (p[0] == '-' || (p[0] >= '0' && p[0] <= '9')) && p[n - 1] >= '0' &&
               p[n - 1] <= '9' && sl_json_validate(p, n, &deepest, NULL) == SL_OK;
    case SL_V_TRUE:
        return n == 4 && !memcmp(p, "true", 4);
    case SL_V_FALSE:
        return n == 5 && !memcmp(p, "false", 5);
    case SL_V_NULL:
        return n == 4 && !memcmp(p, "null", 4);
    case SL_V_OBJECT:
    case SL_V_ARRAY: {
        char open = type == SL_V_OBJECT ? '{' : '[', close = type == SL_V_OBJECT ? '}' : ']';
        return n >= 2 && p[0] == open && p[n - 1] == close &&
               sl_json_validate(p, n, &deepest, NULL) == SL_OK;
    }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1) {
        uint8_t type = (uint8_t)(data[0] % SL_V_ARRAY + 1);
        sl_slice v = {(const char *)data + 1, size - 1};
        if (sl_spool_value_ok(type, v) != reference_ok(type, v.p, v.n)) abort();
    }

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
