/* The NEON stage-1 kernel, run off arm64 through SIMDe's NEON emulation
 * (libsimde-dev; meson builds this test only when the header is there):
 * its tokens, flags and errors must equal the scalar kernel's on random
 * and adversarial inputs, across 64-byte blocks and 2048-byte windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "parsers/json_internal.h"
#include "tests/helpers.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Runs both kernels over doc window by window; 1 when they agree. */
static int same(const uint8_t *doc, size_t n)
{
    static uint32_t a[SL_JS1_WINDOW + SL_JS1_SLACK], b[SL_JS1_WINDOW + SL_JS1_SLACK];
    sl_js1_state s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    size_t p = 0;
    do {
        size_t l = n - p;
        bool last = l <= SL_JS1_WINDOW;
        if (!last) l = SL_JS1_WINDOW;
        size_t ca = sl_js1_scalar(doc + p, l, (uint32_t)p, last, &s1, a);
        size_t cb = sl_js1_neon(doc + p, l, (uint32_t)p, last, &s2, b);
        /* The scalar kernel stops at the first error; then only the verdict counts. */
        if ((s1.c.err != 0) != (s2.c.err != 0)) return 0;
        if (s1.c.err) return 1;
        if (ca != cb || memcmp(a, b, ca * sizeof *a) != 0) return 0;
        p += l;
    } while (p < n);
    return 1;
}

static void test_neon_matches_scalar(void **state)
{
    (void)state;
    static const char odd[] = "{}[]:,\"\\ \n\tabu0123456789.-eE\x01\x80\xc3\xa9\xe2\x82\xac"
                              "\xf0\x9f\x98\x80\xed\xa0\xff";
    static const char common[] = "abc\"\\ :,{}[]un";
    static uint8_t doc[6000];
    int iters = sl_t_sanitized() ? 5000 : 60000;
    long clean = 0;
    for (int it = 0; it < iters; it++) {
        size_t n = rnd() % (it % 3 ? 300 : 5000);
        unsigned weird = it % 2 ? 4 : 300;
        for (size_t i = 0; i < n; i++)
            doc[i] = rnd() % weird == 0 ? (uint8_t)odd[rnd() % (sizeof odd - 1)]
                                        : (uint8_t)common[rnd() % (sizeof common - 1)];
        if (!same(doc, n)) {
            fprintf(stderr, "iteration %d (%zu bytes): kernels differ\n", it, n);
            fail();
        }
        clean++;
    }
    printf("NEON (SIMDe) agrees with scalar on %ld inputs\n", clean);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_neon_matches_scalar)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
