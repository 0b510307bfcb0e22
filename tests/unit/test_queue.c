#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/queue.h"

static void test_fifo_and_bounds(void **st)
{
    (void)st;
    sl_queue *q = sl_queue_new(4, 100);
    int v[6];
    for (int i = 0; i < 4; i++) assert_int_equal(sl_queue_push(q, &v[i], 10, 0), SL_OK);
    assert_int_equal(sl_queue_push(q, &v[4], 10, 0), SL_EFULL); /* item bound */
    assert_int_equal(sl_queue_len(q), 4);
    assert_int_equal(sl_queue_bytes(q), 40);
    for (int i = 0; i < 4; i++) {
        void *p;
        size_t b;
        assert_int_equal(sl_queue_pop(q, &p, &b, 0), SL_OK);
        assert_ptr_equal(p, &v[i]);
        assert_int_equal(b, 10);
    }
    void *p;
    assert_int_equal(sl_queue_pop(q, &p, NULL, 0), SL_ETIMEDOUT);
    /* byte bound; an oversized item still fits an empty queue */
    assert_int_equal(sl_queue_push(q, &v[0], 60, 0), SL_OK);
    assert_int_equal(sl_queue_push(q, &v[1], 60, 0), SL_EFULL);
    assert_int_equal(sl_queue_pop(q, &p, NULL, 0), SL_OK);
    assert_int_equal(sl_queue_push(q, &v[1], 500, 0), SL_OK);
    assert_int_equal(sl_queue_push(q, &v[2], 1, 20), SL_EFULL); /* timed wait expires */
    sl_queue_close(q);
    assert_int_equal(sl_queue_push(q, &v[2], 1, -1), SL_ECLOSED);
    assert_int_equal(sl_queue_pop(q, &p, NULL, -1), SL_OK); /* drains after close */
    assert_int_equal(sl_queue_pop(q, &p, NULL, -1), SL_ECLOSED);
    sl_queue_free(q);
}

#define PRODUCERS    4
#define PER_PRODUCER 50000

typedef struct shared {
    sl_queue *q;
    int id;
} shared;

static void *producer(void *arg)
{
    shared *s = arg;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
        uintptr_t v = ((uintptr_t)s->id << 32) | (i + 1);
        if (sl_queue_push(s->q, (void *)v, 1 + i % 7, -1) != SL_OK) abort();
    }
    return NULL;
}

typedef struct consumed {
    sl_queue *q;
    uint64_t count;
    uint64_t last[PRODUCERS];
    int order_ok;
} consumed;

static void *consumer(void *arg)
{
    consumed *c = arg;
    void *p;
    while (sl_queue_pop(c->q, &p, NULL, -1) == SL_OK) {
        uintptr_t v = (uintptr_t)p;
        int id = (int)(v >> 32);
        uint64_t seq = v & 0xffffffffu;
        /* Per producer, one consumer sees increasing sequence numbers. */
        if (seq <= c->last[id]) c->order_ok = 0;
        c->last[id] = seq;
        c->count++;
    }
    return NULL;
}

static void test_concurrent_producers_consumers(void **st)
{
    (void)st;
    sl_queue *q = sl_queue_new(64, 256); /* small: producers block often */
    pthread_t pt[PRODUCERS], ct[2];
    shared s[PRODUCERS];
    consumed c[2] = {{q, 0, {0}, 1}, {q, 0, {0}, 1}};
    for (int i = 0; i < 2; i++) pthread_create(&ct[i], NULL, consumer, &c[i]);
    for (int i = 0; i < PRODUCERS; i++) {
        s[i] = (shared){q, i};
        pthread_create(&pt[i], NULL, producer, &s[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(pt[i], NULL);
    sl_queue_close(q);
    for (int i = 0; i < 2; i++) pthread_join(ct[i], NULL);
    assert_int_equal(c[0].count + c[1].count, (uint64_t)PRODUCERS * PER_PRODUCER);
    assert_true(c[0].order_ok && c[1].order_ok);
    assert_int_equal(sl_queue_bytes(q), 0);
    sl_queue_free(q);
}

static void *close_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    sl_queue_close(arg);
    return NULL;
}

static void test_close_wakes_blocked_producer(void **st)
{
    (void)st;
    sl_queue *q = sl_queue_new(1, 0);
    int v;
    assert_int_equal(sl_queue_push(q, &v, 1, 0), SL_OK);
    pthread_t t;
    pthread_create(&t, NULL, close_later, q);
    assert_int_equal(sl_queue_push(q, &v, 1, -1), SL_ECLOSED);
    pthread_join(t, NULL);
    sl_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_bounds),
        cmocka_unit_test(test_concurrent_producers_consumers),
        cmocka_unit_test(test_close_wakes_blocked_producer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
