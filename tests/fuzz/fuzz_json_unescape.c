/* The JSON unescaper (core/json_str.h) under its three policies: KEEP and
 * FAIL never write more than the input, so a cap of n never fills; where
 * the strict policy accepts a string, the lenient ones read it the same;
 * and a smaller output keeps a prefix of the whole answer, escapes whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json_str.h"

static size_t whole(const char *p, size_t n, sl_json_bad bad, char *out, size_t cap, int *rc)
{
    size_t o = 0;
    *rc = sl_json_unescape_to(p, n, out, cap, bad, &o);
    if (o > cap) abort();
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t room = 2 * size + 4; /* LOOSE grows a bare \u from 2 bytes to 3 */
    char *a = malloc(room), *b = malloc(room), *c = malloc(room);
    if (!a || !b || !c) abort();
    int rca, rcb, rcc;
    size_t na = whole(p, size, SL_JSON_BAD_FAIL, a, size, &rca);
    size_t nb = whole(p, size, SL_JSON_BAD_KEEP, b, size, &rcb);
    size_t nc = whole(p, size, SL_JSON_BAD_LOOSE, c, room, &rcc);
    if (rca != SL_OK && rca != SL_EPARSE) abort();
    if (rcb != SL_OK || rcc != SL_OK) abort();
    if (rca == SL_OK && (na != nb || na != nc || memcmp(a, b, na) || memcmp(a, c, na))) abort();
    /* Every smaller output: a prefix of the whole answer, SL_EFULL. */
    for (size_t cap = 0; cap < nc && cap < 64; cap++) {
        size_t o;
        if (sl_json_unescape_to(p, size, a, cap, SL_JSON_BAD_LOOSE, &o) != SL_EFULL) abort();
        if (o > cap || memcmp(a, c, o) != 0) abort();
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
