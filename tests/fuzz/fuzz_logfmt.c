/* logfmt: the iterator, the array API, unescaping and the record step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "parsers/logfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
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
    if (!b) return 0;
    sl_record r = {.line = {p, size}};
    sl_logfmt_parse_record(b, &r, r.line, NULL);
    sl_batch_unref(b);
    return 0;
}
