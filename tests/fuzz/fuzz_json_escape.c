/* The vector JSON escaper (sl_json_escape_to / _within) against the plain
 * one (sl_buf_json_escape): same bytes, same U+FFFD count, for the input
 * alone and for every prefix of it read within the whole input (how the
 * record encoder escapes a field inside its line). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static void check(const char *p, size_t n, size_t readable)
{
    sl_buf ref;
    sl_buf_init(&ref, 0);
    int want = sl_buf_json_escape(&ref, p, n);
    if (want < 0) {
        sl_buf_free(&ref);
        return;
    }
    char *out = malloc(SL_JSON_ESCAPE_ROOM(n));
    if (!out) abort();
    size_t bad = 0;
    size_t len = sl_json_escape_within(out, p, n, readable, &bad);
    if (len != ref.len || memcmp(out, ref.p, len) != 0 || bad != (size_t)want) abort();
    free(out);
    sl_buf_free(&ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so a read past the input shows under ASan */
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    check(p, size, size);
    for (size_t n = 0; n <= size && n < 64; n++) check(p, n, size);
    for (size_t at = 1; at < size && at < 32; at++) check(p + at, size - at, size - at);
    free(p);
    return 0;
}
