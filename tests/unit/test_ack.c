#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/err.h"

static void test_in_order(void **st)
{
    (void)st;
    sl_watermark *w = sl_watermark_new(100);
    assert_int_equal(sl_watermark_get(w), 100);
    assert_int_equal(sl_watermark_issue(w, 100, 150), SL_OK);
    assert_int_equal(sl_watermark_issue(w, 150, 200), SL_OK);
    assert_int_equal(sl_watermark_issue(w, 120, 130), SL_EINVAL); /* goes backwards */
    assert_int_equal(sl_watermark_ack(w, 100, 150), SL_OK);
    assert_int_equal(sl_watermark_get(w), 150);
    assert_int_equal(sl_watermark_ack(w, 150, 200), SL_OK);
    assert_int_equal(sl_watermark_get(w), 200);
    assert_int_equal(sl_watermark_ack(w, 150, 200), SL_ENOENT); /* twice */
    sl_watermark_unref(w);
}

static void test_out_of_order_holds_back(void **st)
{
    (void)st;
    sl_watermark *w = sl_watermark_new(0);
    sl_watermark_issue(w, 0, 10);
    sl_watermark_issue(w, 10, 20);
    sl_watermark_issue(w, 20, 30);
    sl_watermark_ack(w, 20, 30);
    assert_int_equal(sl_watermark_get(w), 0);
    sl_watermark_ack(w, 10, 20);
    assert_int_equal(sl_watermark_get(w), 0);
    assert_int_equal(sl_watermark_pending(w), 3);
    sl_watermark_ack(w, 0, 10);
    assert_int_equal(sl_watermark_get(w), 30);
    assert_int_equal(sl_watermark_pending(w), 0);
    sl_watermark_unref(w);
}

static void test_gaps_count_as_done(void **st)
{
    (void)st;
    sl_watermark *w = sl_watermark_new(0);
    sl_watermark_issue(w, 5, 10); /* bytes 0-5 skipped by the input */
    assert_int_equal(sl_watermark_get(w), 5);
    sl_watermark_issue(w, 20, 30);
    sl_watermark_ack(w, 5, 10);
    assert_int_equal(sl_watermark_get(w), 20);
    sl_watermark_ack(w, 20, 30);
    assert_int_equal(sl_watermark_get(w), 30);
    sl_watermark_unref(w);
}

/* Random permutations of acks over many ranges: the mark must always equal
 * the end of the longest fully acked prefix, computed independently. */
static void test_random_permutations(void **st)
{
    (void)st;
    srand(12345);
    for (int round = 0; round < 200; round++) {
        int n = 1 + rand() % 300;
        uint64_t *begin = malloc(sizeof *begin * (size_t)n), *end = malloc(sizeof *end * (size_t)n);
        int *order = malloc(sizeof *order * (size_t)n);
        char *done = calloc((size_t)n, 1);
        sl_watermark *w = sl_watermark_new(0);
        uint64_t pos = 0;
        for (int i = 0; i < n; i++) {
            pos += (uint64_t)(rand() % 3); /* sometimes a gap */
            begin[i] = pos;
            pos += (uint64_t)(rand() % 50); /* sometimes empty */
            end[i] = pos;
            assert_int_equal(sl_watermark_issue(w, begin[i], end[i]), SL_OK);
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rand() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int k = 0; k < n; k++) {
            int i = order[k];
            assert_int_equal(sl_watermark_ack(w, begin[i], end[i]), SL_OK);
            done[i] = 1;
            int p = 0;
            while (p < n && done[p]) p++;
            uint64_t expect = p == n ? end[n - 1] : (p == 0 ? begin[0] : begin[p]);
            assert_int_equal(sl_watermark_get(w), expect);
        }
        sl_watermark_unref(w);
        free(begin), free(end), free(order), free(done);
    }
}

static void test_batch_acks_after_every_sink(void **st)
{
    (void)st;
    sl_watermark *w = sl_watermark_new(0);
    sl_batch *b = sl_batch_new(4);
    sl_watermark_issue(w, 0, 42);
    b->ticket = (sl_ack_ticket){sl_watermark_ref(w), 0, 42};
    sl_batch_hold(b, 2); /* three sinks */
    sl_batch_done(b);
    sl_batch_done(b);
    assert_int_equal(sl_watermark_get(w), 0);
    sl_batch_done(b);
    assert_int_equal(sl_watermark_get(w), 42);
    sl_watermark_unref(w);
}

static void test_unref_without_done_never_acks(void **st)
{
    (void)st;
    sl_watermark *w = sl_watermark_new(0);
    sl_batch *b = sl_batch_new(4);
    sl_watermark_issue(w, 0, 10);
    b->ticket = (sl_ack_ticket){sl_watermark_ref(w), 0, 10};
    sl_batch_unref(b); /* e.g. undelivered at shutdown */
    assert_int_equal(sl_watermark_get(w), 0);
    assert_int_equal(sl_watermark_pending(w), 1);
    sl_watermark_unref(w);
}

typedef struct acker {
    sl_watermark *w;
    int from, step, n;
} acker;

static void *ack_thread(void *arg)
{
    acker *a = arg;
    for (int i = a->from; i < a->n; i += a->step)
        sl_watermark_ack(a->w, (uint64_t)i * 10, (uint64_t)i * 10 + 10);
    return NULL;
}

static void test_concurrent_acks(void **st)
{
    (void)st;
    enum { N = 40000 };
    sl_watermark *w = sl_watermark_new(0);
    for (int i = 0; i < N; i++) sl_watermark_issue(w, (uint64_t)i * 10, (uint64_t)i * 10 + 10);
    pthread_t t[4];
    acker a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (acker){w, i, 4, N};
        pthread_create(&t[i], NULL, ack_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    assert_int_equal(sl_watermark_get(w), (uint64_t)N * 10);
    sl_watermark_unref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order_holds_back),
        cmocka_unit_test(test_gaps_count_as_done),
        cmocka_unit_test(test_random_permutations),
        cmocka_unit_test(test_batch_acks_after_every_sink),
        cmocka_unit_test(test_unref_without_done_never_acks),
        cmocka_unit_test(test_concurrent_acks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
