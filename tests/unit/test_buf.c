#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "shipper/recjson.h"

static void test_utf8_validation(void **st)
{
    (void)st;
    struct {
        const char *s;
        size_t valid;
    } cases[] = {
        {"plain ascii", 11},         {"caf\xc3\xa9", 5},           {"\xe2\x82\xac euro", 8},
        {"\xf0\x9f\x98\x80", 4},     {"bad \xc0\xaf overlong", 4}, {"surrogate \xed\xa0\x80", 10},
        {"big \xf4\x90\x80\x80", 4}, {"cut \xe2\x82", 4},          {"\x80 lone continuation", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(sl_utf8_valid_prefix(cases[i].s, strlen(cases[i].s)), cases[i].valid);
    char out[64];
    size_t bad;
    size_t n = sl_utf8_sanitize("a\xff"
                                "b\xc3",
                                4, out, &bad);
    assert_int_equal(bad, 2);
    assert_memory_equal(out,
                        "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd",
                        n);
    /* One U+FFFD per maximal subpart: a cut 3-byte sequence is one, a
     * surrogate is three (its second byte is already out of range). */
    n = sl_utf8_sanitize("\xe2\x82z", 3, out, &bad);
    assert_int_equal(bad, 1);
    assert_int_equal(n, 4);
    n = sl_utf8_sanitize("\xed\xa0\x80", 3, out, &bad);
    assert_int_equal(bad, 3);
    assert_int_equal(n, 9);
}

/* Repair walks the text once: a megabytes-long line of garbage (an invalid
 * byte every other byte) must not be re-validated from each bad byte to the
 * end, which made it quadratic (a quarter of an hour: the timeout). */
static void test_utf8_sanitize_hostile_is_linear(void **st)
{
    (void)st;
    size_t n = 8u << 20;
    char *in = malloc(n), *out = malloc(3 * n);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) in[i] = i % 2 ? 'a' : (char)0xff;
    size_t bad, on = sl_utf8_sanitize(in, n, out, &bad);
    assert_int_equal(bad, n / 2);
    assert_int_equal(on, n / 2 * 4);
    assert_true(sl_utf8_valid(out, on));
    free(in);
    free(out);
}

/* The reference: one sequence at a time, no fast path. */
static size_t valid_prefix_slow(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int k = sl_utf8_seq((const unsigned char *)p + i, n - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* The ASCII fast paths (two words, 128- and 32-byte vector blocks, words,
 * bytes) against the reference: every length up to 300, with a bad byte or
 * a valid multi-byte sequence at every position, and random mixtures. */
static void test_utf8_fast_path(void **st)
{
    (void)st;
    char buf[320];
    for (size_t n = 1; n <= 300; n++) {
        for (size_t pos = 0; pos < n; pos++) {
            memset(buf, 'x', n);
            buf[pos] = (char)0x80;
            assert_int_equal(sl_utf8_valid_prefix(buf, n), pos);
            if (pos + 2 <= n) {
                memcpy(buf + pos, "\xc3\xa9", 2);
                assert_int_equal(sl_utf8_valid_prefix(buf, n), n);
                assert_true(sl_utf8_valid(buf, n));
            }
        }
    }
    static const char *const pieces[] = {
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "\xed\xa0\x80", "\xe2\x82", "\x80"};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        while (n < 280) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            if (rng % 8 < 6) {
                size_t run = (size_t)(rng >> 8) % 150;
                if (n + run > 280) run = 280 - n;
                memset(buf + n, 'a' + (int)(rng % 26), run);
                n += run;
            } else {
                const char *pc = pieces[(rng >> 16) % 7];
                if (round % 2 && (rng >> 24) % 4) pc = pieces[(rng >> 16) % 3]; /* mostly valid */
                size_t len = strlen(pc);
                memcpy(buf + n, pc, len);
                n += len;
            }
        }
        assert_int_equal(sl_utf8_valid_prefix(buf, n), valid_prefix_slow(buf, n));
        char out[3 * sizeof buf];
        size_t bad, on = sl_utf8_sanitize(buf, n, out, &bad);
        assert_true(sl_utf8_valid(out, on));
        assert_int_equal(bad == 0, valid_prefix_slow(buf, n) == n);
    }
}

static void test_json_escape(void **st)
{
    (void)st;
    sl_buf b;
    sl_buf_init(&b, 0);
    int bad = sl_buf_json_escape(&b, "q\"b\\n\n\t\x01\xff", 9);
    assert_int_equal(bad, 1);
    assert_string_equal(b.p, "q\\\"b\\\\n\\n\\t\\u0001\xef\xbf\xbd");
    sl_buf_free(&b);
}

static void test_limit_is_enforced(void **st)
{
    (void)st;
    sl_buf b;
    sl_buf_init(&b, 100);
    char data[64] = {0};
    assert_int_equal(sl_buf_append(&b, data, 64), SL_OK);
    assert_int_equal(sl_buf_append(&b, data, 64), SL_ENOMEM);
    assert_true(b.failed);
    assert_int_equal(sl_buf_append(&b, data, 1), SL_ENOMEM); /* sticky */
    sl_buf_free(&b);
}

static void test_arena_bound(void **st)
{
    (void)st;
    sl_arena a;
    sl_arena_init(&a, 1024);
    void *p = sl_arena_alloc(&a, 1000);
    assert_non_null(p);
    assert_true(((uintptr_t)p & 15) == 0);
    assert_null(sl_arena_alloc(&a, 100));
    sl_arena_reset(&a);
    assert_non_null(sl_arena_alloc(&a, 1000));
    sl_arena_reset(&a);
}

static void test_record_json(void **st)
{
    (void)st;
    sl_batch *b = sl_batch_new(2);
    sl_field label = {{"job", 3}, {"app", 3}, SL_V_STRING, SL_FF_LABEL};
    sl_batch_set_labels(b, &label, 1);
    sl_record *r = sl_batch_add(b, (sl_slice){"hi \"x\"", 6}, 1700000000123456789LL, 7);
    sl_record_add_field(b, r, (sl_slice){"n", 1}, (sl_slice){"12.5", 4}, SL_V_NUMBER);
    sl_record_add_field(b, r, (sl_slice){"s", 1}, (sl_slice){"a\\tb", 4}, SL_V_ESCAPED);
    sl_field *gone = sl_record_add_field(b, r, (sl_slice){"x", 1}, (sl_slice){"y", 1}, SL_V_STRING);
    gone->flags |= SL_FF_REMOVED;
    assert_ptr_equal(sl_record_field(r, "n", 1), &r->fields[0]);
    assert_null(sl_record_field(r, "x", 1));
    sl_buf out;
    sl_buf_init(&out, 0);
    assert_int_equal(sl_recjson_append(&out, b, r, SL_RJ_ALL), 0);
    assert_string_equal(out.p, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"line\":\"hi "
                               "\\\"x\\\"\",\"fields\":{\"n\":12.5,\"s\":\"a\\tb\"},"
                               "\"labels\":{\"job\":\"app\"}}");
    sl_buf_free(&out);
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_utf8_fast_path),
        cmocka_unit_test(test_utf8_sanitize_hostile_is_linear),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_limit_is_enforced),
        cmocka_unit_test(test_arena_bound),
        cmocka_unit_test(test_record_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
