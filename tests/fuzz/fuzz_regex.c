/* The regex step: the built-in access-log patterns on the input, and (when
 * the input has a first line) that line compiled as a pattern with a small
 * match limit and run on the rest, JIT and interpreter. Each record the
 * step made must give valid JSON (recjson_valid.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "parsers/regex.h"
#include "tests/fuzz/recjson_valid.h"

static void run(sl_regex *re, sl_batch *b, const char *p, size_t n)
{
    sl_field f[32];
    int c = sl_regex_match(re, p, n, f, 32, NULL);
    for (int i = 0; i < c; i++)
        if (f[i].val.n && (f[i].val.p < p || f[i].val.p + f[i].val.n > p + n)) abort();
    sl_field fixed[64];
    size_t slots = sl_regex_fields_init(re, fixed, 64);
    if (slots <= 64 && sl_regex_exec(re, p, n, fixed, 64, NULL) == 0)
        for (size_t i = 0; i < slots; i++)
            if (fixed[i].val.p && (fixed[i].val.p < p || fixed[i].val.p + fixed[i].val.n > p + n))
                abort();
    sl_record r = {.line = {p, n}};
    sl_regex_parse_record(b, &r, r.line, re, NULL);
    fuzz_recjson_valid(b, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    sl_batch *b = sl_batch_new(1);
    if (!b) return 0;
    static const char *const names[] = {"nginx_combined", "apache_combined", "apache_common",
                                        "vhost_combined", "apache_error",    "nginx_error"};
    for (int k = 0; k < 6; k++) {
        sl_regex *re = NULL;
        if (sl_regex_builtin(names[k], NULL, &re, NULL) == 0) run(re, b, p, size);
        sl_regex_free(re);
    }
    const char *nl = memchr(p, '\n', size);
    if (nl && nl - p <= 128) {
        for (int mode = 0; mode < 3; mode++) {
            sl_regex_opts o = {.match_limit = 20000, .no_jit = mode == 1, .utf = mode == 2};
            sl_regex *re = NULL;
            if (sl_regex_new(p, (size_t)(nl - p), &o, &re, NULL) == 0)
                run(re, b, nl + 1, size - (size_t)(nl + 1 - p));
            sl_regex_free(re);
        }
    }
    sl_batch_unref(b);
    return 0;
}
