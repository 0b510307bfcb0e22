/* Differential fuzz target for the record -> JSON writer (shipper/recjson.c)
 * against the reference serializer (tests/recjson_ref.h): the input's line
 * goes through the json parser (its verbatim fields, the whole-line copy,
 * the line escaped with the UTF-8 check fused in or vouched for by the
 * fields), then gets fields of its own sliced from the line where the
 * input's first bytes say (cutting UTF-8 sequences, holding quotes or
 * control bytes), a removed or renamed field, a label; both serializers
 * must give the same bytes and the same U+FFFD count, for every part and
 * every copy of the writer (portable, SSSE3, AVX2); with SL_RJ_LINE_DEDUP
 * too, on the parser's fields before the extra ones are added; and each
 * record as the steps leave it, with SL_RF_FIELDS_LINE off and as the json
 * step would set it now (decision 0082). Any difference aborts.
 *
 * Input: byte 0 options (bit 0 flatten, bit 1 static label, bit 2 remove
 * the first field, bit 3 rename the last, bits 4-7 which parts), bytes 1-6
 * three (offset, length) pairs of extra string fields, the rest the line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/record_tile.h"
#include "parsers/json.h"
#include "shipper/recjson.h"
#include "tests/recjson_ref.h"

static void compare(const sl_batch *b, const sl_record *r, unsigned parts)
{
    sl_buf ref;
    sl_buf_init(&ref, 0);
    int want = ref_record(&ref, b, r, parts);
    if (ref.failed) abort();
    sl_record off = *r, on = *r;
    off.flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
    sl_record_mark_fields_line(&on);
    const sl_record *const variants[] = {r, &off, &on};
    for (int v = 0; v < 3; v++) {
        for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
            sl_buf fast;
            sl_buf_init(&fast, 0);
            int got = sl_recjson_append_kernel(&fast, b, variants[v], parts, k);
            if (got != want || fast.len != ref.len || memcmp(fast.p, ref.p, ref.len) != 0) abort();
            sl_buf_free(&fast);
        }
    }
    sl_buf_free(&ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7) return 0;
    uint8_t opt = data[0];
    size_t n = size - 7;
    /* an exact-size copy, so a read past the line shows under ASan */
    char *line = malloc(n ? n : 1);
    if (!line) return 0;
    memcpy(line, data + 7, n);
    sl_batch *b = sl_batch_new(1);
    if (!b) abort();
    if (opt & 2) {
        sl_field lab = {SL_SLICE_LIT("host"), SL_SLICE_LIT("n\"1\xff"), SL_V_STRING, SL_FF_LABEL};
        if (sl_batch_set_labels(b, &lab, 1) != 0) abort();
    }
    sl_record *r = sl_batch_add(b, (sl_slice){line, n}, (int64_t)opt * 1000000007, 1);
    if (!r) abort();
    sl_json_opts o;
    if (sl_json_opts_init(&o, NULL) != 0) abort();
    o.flatten = opt & 1;
    sl_json_parse_record(b, r, &o, NULL);
    /* the parser's SL_RF_FIELDS_LINE (from stage 1's whitespace bits)
     * only where the definition holds */
    sl_record full = *r;
    sl_record_mark_fields_line(&full);
    if ((r->flags & SL_RF_FIELDS_LINE) && !(full.flags & SL_RF_FIELDS_LINE)) abort();
    /* as the chain does after any other step */
    if (opt & 12) r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
    if (r->nfields && (opt & 4)) r->fields[0].flags |= SL_FF_REMOVED;
    if (r->nfields && (opt & 8)) {
        sl_field *f = &r->fields[r->nfields - 1];
        f->key = SL_SLICE_LIT("re\"named");
        f->flags = (uint8_t)((f->flags & ~(SL_FF_VERBATIM | SL_FF_KEY_ESCAPED)) | SL_FF_LABEL);
    }
    /* the parser's fields alone: the line left out when they are it */
    compare(b, r, SL_RJ_ALL | SL_RJ_LINE_DEDUP);
    for (int k = 0; k < 3 && n; k++) {
        size_t at = data[1 + 2 * k] % (n + 1), len = data[2 + 2 * k];
        if (len > n - at) len = n - at;
        sl_slice v = {line + at, len};
        sl_slice key = {line + (at + len) / 2, len / 3};
        if (!sl_record_add_field(b, r, key, v, SL_V_STRING)) abort();
    }
    compare(b, r, SL_RJ_ALL);
    unsigned parts = opt >> 4;
    if (parts) compare(b, r, parts);
    sl_batch_unref(b);
    free(line);
    return 0;
}
