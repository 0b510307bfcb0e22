#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shipper/retry.h"

static void test_ceiling_doubles_and_caps(void **state)
{
    (void)state;
    sl_retry r;
    sl_retry_init(&r, 100, 1000, 1);
    static const int64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(sl_retry_ceiling(&r), want[i]);
        int64_t d = sl_retry_next(&r, SL_RETRY_AFTER_NONE);
        assert_in_range(d, 0, want[i]);
    }
    sl_retry_success(&r);
    assert_int_equal(sl_retry_ceiling(&r), 100);

    /* No overflow with huge bounds and many attempts. */
    sl_retry_init(&r, 1, INT64_MAX, 1);
    for (int i = 0; i < 200; i++) assert_true(sl_retry_next(&r, SL_RETRY_AFTER_NONE) >= 0);
    assert_int_equal(sl_retry_ceiling(&r), INT64_MAX);
    /* Bad arguments are clamped. */
    sl_retry_init(&r, 0, -5, 1);
    assert_int_equal(sl_retry_ceiling(&r), 1);
}

static void test_deterministic(void **state)
{
    (void)state;
    sl_retry a, b, c;
    sl_retry_init(&a, 10, 100000, 7);
    sl_retry_init(&b, 10, 100000, 7);
    sl_retry_init(&c, 10, 100000, 8);
    int differ = 0;
    for (int i = 0; i < 30; i++) {
        int64_t x = sl_retry_next(&a, SL_RETRY_AFTER_NONE),
                y = sl_retry_next(&b, SL_RETRY_AFTER_NONE),
                z = sl_retry_next(&c, SL_RETRY_AFTER_NONE);
        assert_int_equal(x, y);
        differ += x != z;
    }
    assert_true(differ > 20);
}

/* Full jitter: draws cover [0, ceiling] with mean ceiling/2. */
static void test_full_jitter_distribution(void **state)
{
    (void)state;
    sl_retry r;
    sl_retry_init(&r, 1000, 1000, 12345);
    int64_t sum = 0, lo = INT64_MAX, hi = 0;
    enum { N = 20000 };
    int buckets[10] = {0};
    for (int i = 0; i < N; i++) {
        int64_t d = sl_retry_next(&r, SL_RETRY_AFTER_NONE);
        assert_in_range(d, 0, 1000);
        sum += d;
        if (d < lo) lo = d;
        if (d > hi) hi = d;
        buckets[d == 1000 ? 9 : d / 100]++;
    }
    assert_in_range(sum / N, 480, 520);
    assert_true(lo < 10);
    assert_true(hi > 990);
    for (int i = 0; i < 10; i++) assert_in_range(buckets[i], N / 10 - N / 40, N / 10 + N / 40);
}

static void test_retry_after_is_a_floor(void **state)
{
    (void)state;
    sl_retry r;
    sl_retry_init(&r, 100, 5000, 3);
    for (int i = 0; i < 50; i++) assert_true(sl_retry_next(&r, 2000) >= 2000);
    /* Capped at max_backoff. */
    sl_retry_init(&r, 100, 5000, 3);
    assert_int_equal(sl_retry_next(&r, 3600 * 1000), 5000);
    /* Retry-After 0 still lets the jitter apply. */
    sl_retry_init(&r, 100, 5000, 3);
    assert_in_range(sl_retry_next(&r, 0), 0, 100);
}

static void test_parse_retry_after(void **state)
{
    (void)state;
    assert_int_equal(sl_retry_after_parse("120", 0), 120000);
    assert_int_equal(sl_retry_after_parse("  5 ", 0), 5000);
    assert_int_equal(sl_retry_after_parse("0", 0), 0);
    assert_int_equal(sl_retry_after_parse("5s", 0), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("abc", 0), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("", 0), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse(NULL, 0), SL_RETRY_AFTER_NONE);
    assert_true(sl_retry_after_parse("99999999999999999999", 0) > 0);
    struct tm tm = {0};
    tm.tm_year = 2015 - 1900;
    tm.tm_mon = 9;
    tm.tm_mday = 21;
    tm.tm_hour = 7;
    tm.tm_min = 28;
    int64_t at = (int64_t)timegm(&tm);
    assert_int_equal(sl_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", at - 30), 30000);
    assert_int_equal(sl_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", at + 30), 0);
    assert_int_equal(sl_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT junk", 0),
                     SL_RETRY_AFTER_NONE);
}

/* What a hostile destination may send (decision 0073): a negative number,
 * a fraction, one past any integer, a date in year 9999 or past it. Either
 * no Retry-After, or a delay the backoff caps at max_backoff. */
static void test_hostile_retry_after(void **state)
{
    (void)state;
    int64_t now = 1796601600; /* 2026-12-07 */
    assert_int_equal(sl_retry_after_parse("-5", now), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("+5", now), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("1.5", now), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("1e9", now), SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("Sat, 01 Jan 99999 00:00:00 GMT", now),
                     SL_RETRY_AFTER_NONE);
    assert_int_equal(sl_retry_after_parse("Thu, 01 Jan 1970 00:00:00 GMT", now), 0);
    int64_t far = sl_retry_after_parse("Fri, 31 Dec 9999 23:59:59 GMT", now);
    int64_t huge = sl_retry_after_parse("99999999999999999999999999", now);
    assert_true(far > 0 && huge > 0);
    sl_retry r;
    sl_retry_init(&r, 100, 5000, 3);
    assert_int_equal(sl_retry_next(&r, far), 5000);
    assert_int_equal(sl_retry_next(&r, huge), 5000);
    assert_int_equal(sl_retry_next(&r, INT64_MAX), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_and_caps),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_full_jitter_distribution),
        cmocka_unit_test(test_retry_after_is_a_floor),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test(test_hostile_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
