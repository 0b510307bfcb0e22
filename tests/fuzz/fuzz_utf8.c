/* UTF-8: the vector validator against one sequence at a time, and the
 * repair: its output is valid, and valid input comes back unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"

static size_t valid_prefix_reference(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = sl_utf8_seq(p + i, n - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t want = valid_prefix_reference(data, size);
    if (sl_utf8_valid_prefix(p, size) != want) abort();
    if (sl_utf8_valid(p, size) != (want == size)) abort();
    char *out = malloc(3 * size + 1);
    if (!out) return 0;
    size_t replaced, n = sl_utf8_sanitize(p, size, out, &replaced);
    if (!sl_utf8_valid(out, n) || (replaced == 0) != (want == size)) abort();
    if (replaced == 0 && (n != size || memcmp(out, p, size) != 0)) abort();
    free(out);
    sl_buf b;
    sl_buf_init(&b, 0);
    int r = sl_buf_json_escape(&b, p, size);
    if (r >= 0 && !sl_utf8_valid(b.p, b.len)) abort();
    sl_buf_free(&b);
    return 0;
}
