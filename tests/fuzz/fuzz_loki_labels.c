/* The stream label parser of the loki_push input: what parses must give
 * valid names and values within the scratch space, and must parse again to
 * the same pairs once written back in canonical form (Go escapes), so no
 * escape is read two ways. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/loki_push_decode.h"

/* name="value" pairs with every byte outside printable ASCII as \xHH. */
static size_t canonical(const sl_lp_pair *l, size_t n, char *o)
{
    size_t w = 0;
    o[w++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) o[w++] = ',', o[w++] = ' ';
        memcpy(o + w, l[i].name.p, l[i].name.n);
        w += l[i].name.n;
        o[w++] = '=', o[w++] = '"';
        for (size_t k = 0; k < l[i].value.n; k++) {
            unsigned char c = (unsigned char)l[i].value.p[k];
            if (c == '"' || c == '\\')
                o[w++] = '\\', o[w++] = (char)c;
            else if (c < 0x20 || c >= 0x7f)
                w += (size_t)sprintf(o + w, "\\x%02x", c);
            else
                o[w++] = (char)c;
        }
        o[w++] = '"';
    }
    o[w++] = '}';
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    char *scratch = malloc(size + 1);
    sl_lp_pair l[SL_LP_MAX_LABELS];
    size_t used = 0, n = 0;
    sl_err err = {0};
    int rc = sl_lp_parse_labels(p, size, scratch, size, &used, l, SL_LP_MAX_LABELS, &n, &err);
    if (rc != SL_OK) {
        if (!err.msg[0]) abort();
        free(scratch);
        return 0;
    }
    if (used > size || n > SL_LP_MAX_LABELS) abort();
    size_t total = 2;
    for (size_t i = 0; i < n; i++) {
        if (l[i].name.n == 0) abort();
        if (l[i].value.p < scratch || l[i].value.p + l[i].value.n > scratch + used) abort();
        total += l[i].name.n + 4 + l[i].value.n * 4 + 2;
    }
    char *canon = malloc(total + 1);
    size_t cn = canonical(l, n, canon);
    char *scratch2 = malloc(cn + 1);
    sl_lp_pair l2[SL_LP_MAX_LABELS];
    size_t used2 = 0, n2 = 0;
    if (sl_lp_parse_labels(canon, cn, scratch2, cn, &used2, l2, SL_LP_MAX_LABELS, &n2, &err) !=
            SL_OK ||
        n2 != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (l2[i].name.n != l[i].name.n || memcmp(l2[i].name.p, l[i].name.p, l[i].name.n) ||
            l2[i].value.n != l[i].value.n ||
            (l[i].value.n && memcmp(l2[i].value.p, l[i].value.p, l[i].value.n)))
            abort();
    free(scratch2);
    free(canon);
    free(scratch);
    return 0;
}
