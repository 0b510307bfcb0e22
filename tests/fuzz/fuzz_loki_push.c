/* The loki_push input's body decoder (collector/loki_push_decode.h). Byte 0
 * picks how the rest reaches it: 0 protobuf (snappy-compressed here, so the
 * fuzzer mutates the protobuf itself), 1 JSON, 2 a raw body as sent
 * (snappy or not), 3 a gzip body in front of protobuf, 4 JSON behind gzip.
 * Whatever it decodes must hang together: every index within its array,
 * every slice counted in text_bytes, nothing above the decoded limit (the
 * memory counted for the push, records included: decision 0072). */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/loki_push_decode.h"

#define MAX_DECODED (1u << 20)

static void check(const sl_lp_push *p)
{
    size_t text = 0;
    for (uint32_t s = 0; s < p->nstreams; s++) {
        const sl_lp_stream *st = &p->streams[s];
        if ((uint64_t)st->labels + st->nlabels > p->npairs) abort();
        if ((uint64_t)st->entries + st->nentries > p->nentries) abort();
        if (st->nlabels > SL_LP_MAX_LABELS) abort();
        for (uint32_t k = 0; k < st->nlabels; k++) {
            const sl_lp_pair *l = &p->pairs[st->labels + k];
            if (l->name.n == 0) abort();
            text += l->name.n + l->value.n;
            volatile char sink = 0;
            for (size_t i = 0; i < l->value.n; i++) sink ^= l->value.p[i];
            (void)sink;
        }
        for (uint32_t e = 0; e < st->nentries; e++) {
            const sl_lp_entry *en = &p->entries[st->entries + e];
            if ((uint64_t)en->meta + en->nmeta > p->npairs) abort();
            if (en->ts_ns < 0) abort();
            text += en->line.n;
            if (en->line.n) {
                volatile char c = en->line.p[en->line.n - 1];
                (void)c;
            }
            for (uint32_t k = 0; k < en->nmeta; k++)
                text += p->pairs[en->meta + k].name.n + p->pairs[en->meta + k].value.n;
        }
    }
    if (text != p->text_bytes) abort();
    /* What it takes in memory, as counted, stays within the bound. */
    if (p->mem > MAX_DECODED) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    char *packed = NULL;
    const char *ctype = mode == 1 || mode == 4 ? "application/json" : "application/x-protobuf";
    const char *cenc = mode >= 3 ? "gzip" : NULL;
    if (mode == 0) {
        size_t cap = snappy_max_compressed_length(n);
        packed = malloc(cap ? cap : 1);
        if (!packed || snappy_compress(body, n, packed, &cap) != SNAPPY_OK) {
            free(packed);
            return 0;
        }
        body = packed;
        n = cap;
    }
    sl_lp_push p;
    sl_err err = {0};
    int rc = sl_lp_decode(ctype, cenc, body, n, MAX_DECODED, &p, &err);
    if (rc == SL_OK)
        check(&p);
    else if (!err.msg[0])
        abort(); /* every refusal says why */
    sl_lp_push_free(&p);
    free(packed);
    return 0;
}
