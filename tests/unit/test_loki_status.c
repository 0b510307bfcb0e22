/* What the Loki sink reads from a 400's body (shipper/loki_send.c): the
 * reason, how many entries Loki refused, and whether it refused the request
 * as a whole (then the sink splits it) or per entry (then the others were
 * stored, and sending them again would only be refused as out of order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "shipper/loki_internal.h"

/* A stream's part of Loki's answer: at most 10 entries listed, then the
 * total (pkg/ingester/stream.go's format). */
static size_t stream_block(char *out, size_t cap, const char *labels, int ignored, int of)
{
    size_t n = 0;
    for (int i = 0; i < ignored && i < 10; i++)
        n += (size_t)snprintf(out + n, cap - n,
                              "entry with timestamp 2026-12-07 10:00:%02d +0000 UTC ignored, "
                              "reason: 'entry out of order' for stream: %s,\n",
                              i, labels);
    n += (size_t)snprintf(out + n, cap - n,
                          "user 'fake', total ignored: %d out of %d for stream: %s\n", ignored, of,
                          labels);
    return n;
}

static void test_totals_per_stream(void **st)
{
    (void)st;
    char body[8192];
    size_t n = stream_block(body, sizeof body, "{job=\"a\"}", 25, 40);
    stream_block(body + n, sizeof body - n, "{job=\"b\"}", 3, 40);
    uint64_t dropped = 0;
    bool per_entry = false;
    const char *reason = sl_loki_classify_400(body, false, 80, &dropped, &per_entry);
    assert_string_equal(reason, "out_of_order");
    assert_true(per_entry);
    assert_int_equal(dropped, 28);
}

/* Cut at the read limit inside a stream's list: what was read counts, the
 * cut line is not an unknown reason, and the request is not split (its
 * other entries were stored). */
static void test_body_cut_at_the_read_limit(void **st)
{
    (void)st;
    char body[8192];
    size_t n = stream_block(body, sizeof body, "{job=\"a\"}", 25, 40);
    size_t n2 = stream_block(body + n, sizeof body - n, "{job=\"b\"}", 7, 40);
    /* Cut in the middle of the second stream's fourth line. */
    const char *p = body + n;
    for (int i = 0; i < 3; i++) p = strchr(p, '\n') + 1;
    size_t cut = (size_t)(p - body) + 20;
    assert_true(cut < n + n2);
    body[cut] = '\0';
    uint64_t dropped = 0;
    bool per_entry = false;
    sl_loki_classify_400(body, true, 80, &dropped, &per_entry);
    assert_true(per_entry);
    assert_int_equal(dropped, 25 + 3); /* a lower bound: the rest is unknown */

    /* Only listed entries before the cut, no total read yet. */
    n = stream_block(body, sizeof body, "{job=\"a\"}", 25, 40);
    p = body;
    for (int i = 0; i < 6; i++) p = strchr(p, '\n') + 1;
    body[(size_t)(p - body) + 30] = '\0';
    sl_loki_classify_400(body, true, 80, &dropped, &per_entry);
    assert_true(per_entry);
    assert_int_equal(dropped, 6);
    /* The same text not cut by the reader ends in a line naming nothing
     * known: refused whole, as before. */
    sl_loki_classify_400(body, false, 80, &dropped, &per_entry);
    assert_false(per_entry);
    assert_int_equal(dropped, 80);
}

static void test_whole_request_refused(void **st)
{
    (void)st;
    uint64_t dropped = 0;
    bool per_entry = true;
    const char *reason = sl_loki_classify_400("error parsing labels {job=\"a\": parse error\n",
                                              false, 12, &dropped, &per_entry);
    assert_string_equal(reason, "bad_labels");
    assert_false(per_entry);
    assert_int_equal(dropped, 12);
    reason = sl_loki_classify_400("something new\n", false, 12, &dropped, &per_entry);
    assert_string_equal(reason, "rejected");
    assert_false(per_entry);
}

static void test_lines_without_totals(void **st)
{
    (void)st;
    const char *body = "entry for stream '{job=\"a\"}' has timestamp too old: 2020-01-01\n"
                       "entry for stream '{job=\"a\"}' has timestamp too old: 2020-01-02\n";
    uint64_t dropped = 0;
    bool per_entry = false;
    const char *reason = sl_loki_classify_400(body, false, 5, &dropped, &per_entry);
    assert_string_equal(reason, "too_old");
    assert_true(per_entry);
    assert_int_equal(dropped, 2);
}

/* Totals a hostile destination sends (decision 0073): past any integer, or
 * summing past it, count every entry refused, never a few. */
static void test_totals_saturate(void **st)
{
    (void)st;
    const char *body = "user 'x', total ignored: 18446744073709551615 out of 1 for stream: a\n"
                       "user 'x', total ignored: 2 out of 1 for stream: b\n";
    uint64_t dropped = 0;
    bool per_entry = false;
    sl_loki_classify_400(body, false, 80, &dropped, &per_entry);
    assert_true(per_entry);
    assert_int_equal(dropped, 80);
    body = "total ignored: 99999999999999999999999 out of 1\n"
           "entry with timestamp 2026-12-07 ignored, reason: 'entry out of order'\n";
    sl_loki_classify_400(body, false, 80, &dropped, &per_entry);
    assert_int_equal(dropped, 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals_per_stream),
        cmocka_unit_test(test_body_cut_at_the_read_limit),
        cmocka_unit_test(test_whole_request_refused),
        cmocka_unit_test(test_lines_without_totals),
        cmocka_unit_test(test_totals_saturate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
