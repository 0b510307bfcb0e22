/* Fuzz target for the JSON scanner: every kernel must give the same answer
 * and the same fields (plain and flattened) as the scalar one, string
 * values must unescape, and validity must match jansson's (with the
 * rewrites of tests/unit/test_json_diff.c for what jansson refuses by
 * design). Any disagreement aborts. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/batch.h"
#include "core/utf8.h"
#include "parsers/json.h"

#define CAP 256

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json: %s\n", what);
        abort();
    }
}

static int run(const char *p, size_t n, int kernel, bool flatten, sl_arena *a, sl_field *f,
               size_t *nf)
{
    sl_json_opts o = {.kernel = kernel, .max_depth = 2048, .flatten = flatten};
    return sl_json_fields_arena(p, n, &o, a, f, CAP, nf, NULL);
}

static bool same_fields(const sl_field *a, const sl_field *b, size_t n, bool flat)
{
    for (size_t i = 0; i < n; i++) {
        /* Flattened keys are copies; compare their bytes. */
        bool keq = flat ? sl_slice_eq(a[i].key, b[i].key.p, b[i].key.n)
                        : a[i].key.p == b[i].key.p && a[i].key.n == b[i].key.n;
        if (!keq || a[i].val.p != b[i].val.p || a[i].val.n != b[i].val.n ||
            a[i].type != b[i].type || a[i].flags != b[i].flags)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    static sl_field ref[CAP], got[CAP];
    sl_arena arena;
    sl_arena_init(&arena, 16 << 20);
    const int kernels[] = {SL_JSON_SSE42, SL_JSON_AVX2, SL_JSON_AVX512, SL_JSON_NEON};
    sl_json_opts so = {.kernel = SL_JSON_SCALAR, .max_depth = 2048};
    int valid = sl_json_validate(p, size, &so, NULL);
    check(valid == 0 || valid == SL_EPARSE, "validate rc");

    for (int flat = 0; flat < 2; flat++) {
        size_t nref, ngot;
        int rref = run(p, size, SL_JSON_SCALAR, flat, &arena, ref, &nref);
        check(rref == 0 || rref == SL_EPARSE || rref == SL_EFULL, "fields rc");
        if (valid != 0) check(rref == SL_EPARSE, "fields accepted an invalid document");
        for (size_t k = 0; k < sizeof kernels / sizeof *kernels; k++) {
            if (!sl_json_kernel_supported(kernels[k])) continue;
            sl_json_opts o = {.kernel = kernels[k], .max_depth = 2048};
            check(sl_json_validate(p, size, &o, NULL) == valid, "kernels disagree (validate)");
            int r = run(p, size, kernels[k], flat, &arena, got, &ngot);
            check(r == rref && ngot == nref, "kernels disagree (fields)");
            check(same_fields(ref, got, ngot, flat), "kernels disagree on a field");
        }
        for (size_t i = 0; i < nref; i++) {
            if (ref[i].type != SL_V_ESCAPED && !(ref[i].flags & SL_FF_KEY_ESCAPED)) continue;
            sl_slice s = ref[i].type == SL_V_ESCAPED ? ref[i].val : ref[i].key;
            char *buf = malloc(s.n + 1);
            check(buf && sl_json_unescape(s.p, s.n, buf, s.n) >= 0, "unescape failed");
            free(buf);
        }
        sl_arena_reset(&arena);
    }

    /* The parse step: a record it parsed carries SL_RF_LINE_UTF8, which the
     * Loki sink trusts instead of checking the line again (decision 0055):
     * it must never be set on a line that is not UTF-8. */
    for (int k = SL_JSON_AUTO; k <= SL_JSON_AVX512; k++) {
        if (k != SL_JSON_AUTO && !sl_json_kernel_supported(k)) continue;
        sl_batch *b = sl_batch_new(1);
        check(b != NULL, "oom");
        sl_record *r = sl_batch_add(b, (sl_slice){p, size}, 0, 1);
        sl_json_opts o = {.kernel = k, .max_depth = 2048};
        int rc = sl_json_parse_record(b, r, &o, NULL);
        check((rc == 0) == !!(r->flags & SL_RF_LINE_UTF8), "line flag without a parse");
        if (r->flags & SL_RF_LINE_UTF8) check(sl_utf8_valid(p, size), "flagged a line not UTF-8");
        sl_batch_unref(b);
    }

    /* A raw NUL byte is never valid JSON; jansson's reader skips one right
     * after a number or literal, so it is no oracle for those. */
    if (memchr(p, 0, size)) {
        check(valid != 0, "accepted a raw NUL byte");
        return 0;
    }
    /* jansson on validity. */
    json_error_t je;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *j = json_loadb(p, size, flags, &je);
    char *copy = NULL;
    if (!j && json_error_code(&je) == json_error_null_byte_in_key) {
        copy = malloc(size + 1);
        check(copy != NULL, "oom");
        memcpy(copy, p, size);
        for (size_t i = 0; i + 5 < size; i++)
            if (copy[i] == '\\' && copy[i + 1] == 'u' && memcmp(copy + i + 2, "0000", 4) == 0)
                copy[i + 5] = '1';
        j = json_loadb(copy, size, flags, &je);
    }
    if (!j && json_error_code(&je) == json_error_numeric_overflow)
        j = json_loadb(copy ? copy : p, size, flags | JSON_DECODE_INT_AS_REAL, &je);
    bool unknown = !j && (json_error_code(&je) == json_error_numeric_overflow ||
                          json_error_code(&je) == json_error_stack_overflow);
    if (!unknown) check((j != NULL) == (valid == 0), "jansson disagrees on validity");
    json_decref(j);
    free(copy);
    return 0;
}
