/* Decision 0071: the Kafka sink when librdkafka refuses a topic handle
 * (rd_kafka_topic_new returns NULL: a name it will not take, a topic
 * configuration it finds incompatible; out of memory in older releases).
 * This executable is linked with `--wrap=rd_kafka_topic_new`
 * (tests/meson.build) so that librdkafka refuses every topic whose name
 * holds "refused", deterministically, with the real sink producing to the
 * mock cluster (127.0.0.1) and a real consumer reading back what arrived.
 * Before the fix such a record was produced again forever
 * (_INVALID_ARG was not a permanent error) and no batch after it was taken:
 * the sink never drained. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/integration/kafka_harness.h"

static atomic_long refused;

rd_kafka_topic_t *__real_rd_kafka_topic_new(rd_kafka_t *rk, const char *topic,
                                            rd_kafka_topic_conf_t *conf);

rd_kafka_topic_t *__wrap_rd_kafka_topic_new(rd_kafka_t *rk, const char *topic,
                                            rd_kafka_topic_conf_t *conf)
{
    if (strstr(topic, "refused")) {
        if (conf) rd_kafka_topic_conf_destroy(conf);
        atomic_fetch_add(&refused, 1);
        return NULL;
    }
    return __real_rd_kafka_topic_new(rk, topic, conf);
}

/* The first half of a first batch is for a refused topic; with
 * max_topics: 1 the refused topic must not take the one place (librdkafka
 * keeps nothing of it), so logs-app after it still gets it. (A refused
 * topic met once the places are taken counts as topic_limit: the bound is
 * checked before librdkafka is asked.) The refused records are dropped as
 * invalid_topic and acknowledged, never retried; the others, and a second
 * batch, arrive. */
static void test_refused_handle_dropped_not_retried(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs-app", 1, 1);
    kh_consumer *c = kh_consume(&h, "logs-app:1", 20);
    sl_err err;
    assert_int_equal(
        kh_sink_cfg(&h, "k_refused", "logs-$${fields.t:-app}", "    max_topics: 1\n", false, &err),
        SL_OK);
    kh_start(&h);
    sl_batch *b = kh_batch(&h, 0, 10, 10, 1);
    for (uint32_t i = 0; i < 5; i++)
        sl_record_add_field(b, &b->records[i], (sl_slice){"t", 1}, (sl_slice){"refused", 7},
                            SL_V_STRING);
    kh_push(&h, b);
    kh_push(&h, kh_batch(&h, 10, 10, 10, 1));
    assert_true(kh_finish(&h, sl_t_scaled_ms(20000)));
    assert_true(kh_wait_consumed(c, 15, sl_t_scaled_ms(20000)));
    kh_consumer_stop(c);
    assert_int_equal(c->unique, 15);
    assert_int_equal(c->total, 15);
    for (int i = 0; i < 20; i++) assert_int_equal(c->seen[i], i < 5 ? 0 : 1);
    assert_int_equal(kh_metric("sluice_sink_dropped_records_total", "k_refused", "invalid_topic"),
                     5);
    /* Never registered: no such drop. */
    assert_true(kh_metric("sluice_sink_dropped_records_total", "k_refused", "topic_limit") <= 0);
    assert_int_equal(kh_metric("sluice_sink_retries_total", "k_refused", NULL), 0);
    assert_int_equal(atomic_load(&refused), 5);
    assert_int_equal(sl_watermark_get(h.wm), 20);
    kh_consumer_free(c);
    kh_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_handle_dropped_not_retried),
    };
    return sl_t_run_tests(tests);
}
