/* logfmt: the iterator, the array API, unescaping and the record step, then
 * the record -> JSON writer (shipper/recjson.c) on what the step made: every
 * output must be valid JSON (the json step's strict validator, which also
 * refuses lone surrogates and invalid UTF-8), and every value the step left
 * escaped must be strict JSON text that reads back as sl_logfmt_unescape
 * decodes it. Any failure aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/json_str.h"
#include "parsers/logfmt.h"
#include "tests/fuzz/recjson_valid.h"

static void check_escaped(const sl_field *f)
{
    char *a = malloc(f->val.n + 1), *u = malloc(f->val.n + 1);
    if (!a || !u) abort();
    ptrdiff_t na = sl_json_unescape(f->val.p, f->val.n, a, f->val.n + 1);
    size_t nu = sl_logfmt_unescape(f->val, u);
    if (na < 0 || (size_t)na != nu || memcmp(a, u, nu) != 0) abort();
    free(a);
    free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so a read past the line shows under ASan */
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    sl_field f[32];
    size_t count = 0;
    sl_logfmt_parse(p, size, f, 32, &count);
    for (size_t i = 0; i < count && i < 32; i++) {
        if (f[i].key.p < p || f[i].key.p + f[i].key.n > p + size) abort();
        if (f[i].type == SL_V_TRUE) continue;
        if (f[i].val.p < p || f[i].val.p + f[i].val.n > p + size) abort();
        char *u = malloc(f[i].val.n + 1);
        if (u && sl_logfmt_unescape(f[i].val, u) > f[i].val.n) abort();
        free(u);
    }
    sl_batch *b = sl_batch_new(1);
    if (!b) abort();
    sl_record *r = sl_batch_add(b, (sl_slice){p, size}, 0, 0);
    if (!r) abort();
    if (sl_logfmt_parse_record(b, r, r->line, NULL) == 0) {
        for (uint32_t i = 0; i < r->nfields; i++)
            if (r->fields[i].type == SL_V_ESCAPED) check_escaped(&r->fields[i]);
    }
    fuzz_recjson_valid(b, r);
    sl_batch_unref(b);
    free(p);
    return 0;
}
