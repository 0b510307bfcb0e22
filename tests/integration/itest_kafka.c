/* The Kafka sink against librdkafka's mock cluster (3 brokers on loopback),
 * read back by a real consumer running concurrently (the mock keeps only a
 * few MiB per partition). Every record carries a unique sequence number, so
 * each test counts lost, duplicated and reordered records; acknowledgements
 * are checked on the batches' real watermark. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/integration/kafka_harness.h"

#define PRODUCE_API 0

static uint64_t scaled(uint64_t n)
{
    return sl_t_sanitized() ? n / 10 : n;
}

/* Pushes n records in batches of per_batch, pad bytes each. */
static void push_records(kh *h, uint64_t first, uint64_t n, uint32_t per_batch, size_t pad,
                         unsigned kmod)
{
    for (uint64_t s = first; s < first + n; s += per_batch) {
        uint32_t k = (uint32_t)(first + n - s < per_batch ? first + n - s : per_batch);
        kh_push(h, kh_batch(h, s, k, pad, kmod));
    }
}

static void report(const char *test, kh_consumer *c, uint64_t sent, double secs)
{
    fprintf(stderr,
            "# %s: sent=%llu received=%llu lost=%llu duplicates=%llu reordered=%llu "
            "unknown=%llu (%.1fs)\n",
            test, (unsigned long long)sent, (unsigned long long)c->unique,
            (unsigned long long)(sent - c->unique), (unsigned long long)c->dups,
            (unsigned long long)c->reordered, (unsigned long long)c->unknown, secs);
}

/* 200,000 records with zstd through the real sink thread: exactly the
 * records sent, each once, in order within every partition. */
static void test_exactly_once_in_order(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 16, 3);
    const uint64_t n = scaled(200000);
    kh_consumer *c = kh_consume(&h, "logs:16", n);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_bulk", "logs",
                                 "    key: \"k$${fields.k}\"\n"
                                 "    compression: zstd\n",
                                 false, &err),
                     SL_OK);
    int64_t t0 = sl_monotonic_ns();
    kh_start(&h);
    push_records(&h, 0, n, 1000, 60, 97);
    assert_true(kh_finish(&h, 60000));
    assert_true(kh_wait_consumed(c, n, 30000));
    sl_t_sleep_ms(200); /* let late duplicates show up */
    kh_consumer_stop(c);
    report("exactly_once", c, n, (double)(sl_monotonic_ns() - t0) / 1e9);
    assert_int_equal(c->unique, n);
    assert_int_equal(c->dups, 0);
    assert_int_equal(c->reordered, 0);
    assert_int_equal(c->unknown, 0);
    assert_int_equal(sl_watermark_get(h.wm), n);
    assert_int_equal(kh_metric("sluice_sink_records_total", "k_bulk", NULL), (int64_t)n);
    assert_int_equal(kh_metric("sluice_sink_failing", "k_bulk", NULL), 0);
    assert_true(kh_metric("sluice_sink_last_success_timestamp_seconds", "k_bulk", NULL) > 0);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Broker errors injected while producing: retriable produce errors, a
 * disconnect, a broker down for a while, and all brokers down for longer
 * than message.timeout.ms (so the sink itself must produce again). */
static void test_faults_lose_nothing(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 16, 3);
    const uint64_t n = scaled(100000);
    kh_consumer *c = kh_consume(&h, "logs:16", n);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_faults", "logs",
                                 "    key: \"k$${fields.k}\"\n"
                                 "    linger_ms: 5\n"
                                 "    librdkafka:\n"
                                 "      message.timeout.ms: 1500\n"
                                 "      retry.backoff.ms: 20\n"
                                 "      reconnect.backoff.max.ms: 200\n",
                                 false, &err),
                     SL_OK);
    int64_t t0 = sl_monotonic_ns();
    kh_start(&h);
    const int rounds = 10;
    uint64_t per = n / rounds;
    for (int r = 0; r < rounds; r++) {
        switch (r) {
        case 1:
            rd_kafka_mock_push_request_errors(
                h.mc, PRODUCE_API, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR__TRANSPORT);
            break;
        case 3:
            rd_kafka_mock_broker_push_request_error_rtts(
                h.mc, 2, PRODUCE_API, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 200,
                RD_KAFKA_RESP_ERR__TRANSPORT, 0, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 300);
            break;
        case 5:
            rd_kafka_mock_broker_set_down(h.mc, 3);
            break;
        case 6:
            rd_kafka_mock_broker_set_up(h.mc, 3);
            break;
        case 7:
            rd_kafka_mock_broker_set_down(h.mc, -1);
            break;
        default:
            break;
        }
        push_records(&h, (uint64_t)r * per, per, 500, 60, 97);
        if (r == 7) {
            /* Longer than message.timeout.ms: librdkafka gives the messages
             * back as failed and the sink must keep them. */
            sl_t_sleep_ms(2500);
            assert_true(sl_watermark_get(h.wm) < (uint64_t)(r + 1) * per);
            assert_int_equal(kh_metric("sluice_sink_failing", "k_faults", NULL), 1);
            rd_kafka_mock_broker_set_up(h.mc, -1);
        }
    }
    assert_true(kh_finish(&h, 60000));
    bool all = kh_wait_consumed(c, rounds * per, 30000);
    sl_t_sleep_ms(300);
    kh_consumer_stop(c);
    report("faults", c, rounds * per, (double)(sl_monotonic_ns() - t0) / 1e9);
    fprintf(stderr, "# faults: retries=%lld errors=%lld\n",
            (long long)kh_metric("sluice_sink_retries_total", "k_faults", NULL),
            (long long)kh_metric("sluice_sink_errors_total", "k_faults", NULL));
    if (!all) {
        /* Which records, and whether the sink had acknowledged them: a
         * consumer that stalled and a record acknowledged but never in the
         * topic fail alike here (once in a loaded run, decision 0084). */
        fprintf(stderr, "# faults: watermark %llu of %llu; missing:",
                (unsigned long long)sl_watermark_get(h.wm), (unsigned long long)(rounds * per));
        int shown = 0;
        for (uint64_t q = 0; q < rounds * per && shown < 20; q++)
            if (!c->seen[q]) fprintf(stderr, " %llu", (unsigned long long)q), shown++;
        fprintf(stderr, "\n");
    }
    assert_true(all);
    assert_int_equal(c->unique, rounds * per); /* lost = 0 */
    assert_int_equal(c->unknown, 0);
    assert_int_equal(sl_watermark_get(h.wm), rounds * per);
    assert_true(kh_metric("sluice_sink_retries_total", "k_faults", NULL) > 0);
    assert_int_equal(kh_metric("sluice_sink_failing", "k_faults", NULL), 0);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Acknowledgements come from delivery reports only: with every broker down
 * nothing is acknowledged, however long we wait; when they return, all is. */
static void test_acks_wait_for_delivery(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 4, 3);
    rd_kafka_mock_broker_set_down(h.mc, -1);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_acks", "logs", NULL, false, &err), SL_OK);
    kh_start(&h);
    const uint64_t n = 2000;
    push_records(&h, 0, n, 100, 40, 7);
    sl_t_sleep_ms(1500);
    assert_int_equal(sl_watermark_get(h.wm), 0);
    assert_int_equal(sl_watermark_pending(h.wm), n / 100);
    assert_int_equal(kh_metric("sluice_sink_records_total", "k_acks", NULL), 0);
    assert_int_equal(kh_metric("sluice_sink_failing", "k_acks", NULL), 1);
    kh_consumer *c = kh_consume(&h, "logs:4", n);
    rd_kafka_mock_broker_set_up(h.mc, -1);
    assert_true(kh_finish(&h, 30000));
    assert_int_equal(sl_watermark_get(h.wm), n);
    assert_true(kh_wait_consumed(c, n, 20000));
    kh_consumer_stop(c);
    assert_int_equal(c->dups, 0);
    assert_int_equal(kh_metric("sluice_sink_failing", "k_acks", NULL), 0);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Stopping with the brokers down: the sink returns promptly and releases
 * its batches unacknowledged (they are read again after a restart). */
static void test_stop_releases_unacked(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 2, 1);
    rd_kafka_mock_broker_set_down(h.mc, -1);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_stop", "logs", NULL, false, &err), SL_OK);
    kh_start(&h);
    push_records(&h, 0, 3000, 300, 40, 5);
    sl_t_sleep_ms(500);
    int64_t t0 = sl_monotonic_ns();
    atomic_store(&h.stop, true);
    pthread_join(h.th, NULL);
    h.running = false;
    assert_true(sl_monotonic_ns() - t0 < 3000000000LL);
    assert_int_equal(sl_watermark_get(h.wm), 0);
    kh_free(&h); /* ASan: every batch released */
}

/* A tiny librdkafka queue: QUEUE_FULL is backpressure, never an error. */
static void test_queue_full_is_backpressure(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 4, 3);
    const uint64_t n = scaled(5000);
    kh_consumer *c = kh_consume(&h, "logs:4", n);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_qfull", "logs",
                                 "    linger_ms: 0\n"
                                 "    librdkafka:\n"
                                 "      queue.buffering.max.messages: 10\n",
                                 false, &err),
                     SL_OK);
    kh_start(&h);
    push_records(&h, 0, n, 500, 40, 13);
    assert_true(kh_finish(&h, 60000));
    assert_true(kh_wait_consumed(c, n, 20000));
    kh_consumer_stop(c);
    assert_int_equal(c->unique, n);
    assert_int_equal(c->dups, 0);
    assert_int_equal(c->reordered, 0);
    assert_int_equal(sl_watermark_get(h.wm), n);
    assert_true(kh_metric("sluice_kafka_queue_full_total", "k_qfull", NULL) > 0);
    assert_int_equal(kh_metric("sluice_sink_errors_total", "k_qfull", NULL), 0);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Records too large for message.max.bytes can never be delivered: each is
 * counted as dropped with its reason, the rest arrive, and the batches are
 * still acknowledged (dropped with a reason counts as done). */
static void test_too_large_dropped_with_reason(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 4, 3);
    const uint64_t n = 2000;
    kh_consumer *c = kh_consume(&h, "logs:4", n);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_big", "logs",
                                 "    librdkafka:\n"
                                 "      message.max.bytes: 1000\n",
                                 false, &err),
                     SL_OK);
    kh_start(&h);
    for (uint64_t s = 0; s < n; s += 100) kh_push(&h, kh_batch_ex(&h, s, 100, 40, 7, 10, 3000));
    assert_true(kh_finish(&h, 30000));
    uint64_t big = n / 10;
    assert_true(kh_wait_consumed(c, n - big, 20000));
    sl_t_sleep_ms(200);
    kh_consumer_stop(c);
    assert_int_equal(c->unique, n - big);
    for (uint64_t s = 0; s < n; s++) assert_int_equal(c->seen[s] != 0, s % 10 != 0);
    assert_int_equal(kh_metric("sluice_sink_dropped_records_total", "k_big", "message_too_large"),
                     (int64_t)big);
    assert_int_equal(sl_watermark_get(h.wm), n);
    kh_consumer_free(c);
    kh_free(&h);
}

/* A permanent rejection by the broker (in the delivery report, not at
 * produce time) is dropped with its reason; retriable ones are not. */
static void test_broker_rejection_dropped(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 1, 1);
    kh_consumer *c = kh_consume(&h, "logs:1", 0);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_reject", "logs",
                                 "    idempotence: false\n"
                                 "    linger_ms: 0\n"
                                 "    librdkafka:\n"
                                 "      batch.num.messages: 1\n",
                                 false, &err),
                     SL_OK);
    kh_start(&h);
    rd_kafka_mock_push_request_errors(h.mc, PRODUCE_API, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    kh_push(&h, kh_batch(&h, 0, 1, 10, 1));
    for (int i = 0; i < 300 && sl_watermark_get(h.wm) < 1; i++) sl_t_sleep_ms(10);
    kh_push(&h, kh_batch(&h, 1, 9, 10, 1));
    assert_true(kh_finish(&h, 20000));
    assert_true(kh_wait_consumed(c, 9, 20000));
    kh_consumer_stop(c);
    assert_int_equal(kh_metric("sluice_sink_dropped_records_total", "k_reject", "invalid_record"),
                     1);
    assert_int_equal(c->total, 9);
    assert_int_equal(sl_watermark_get(h.wm), 10);
    kh_consumer_free(c);
    kh_free(&h);
}

/* A topic the cluster says does not exist: the records are dropped with
 * reason unknown_topic once librdkafka gives up waiting for it, and the
 * batch is acknowledged; a topic that exists keeps flowing. */
static void test_unknown_topic_dropped(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs-app", 1, 1);
    rd_kafka_mock_topic_set_error(h.mc, "logs-nope", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    kh_consumer *c = kh_consume(&h, "logs-app:1", 0);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_unknown", "logs-$${fields.t:-app}",
                                 "    librdkafka:\n"
                                 "      topic.metadata.propagation.max.ms: 300\n",
                                 false, &err),
                     SL_OK);
    kh_start(&h);
    sl_batch *b = kh_batch(&h, 0, 10, 10, 1);
    for (uint32_t i = 0; i < 10; i += 2)
        sl_record_add_field(b, &b->records[i], (sl_slice){"t", 1}, (sl_slice){"nope", 4},
                            SL_V_STRING);
    kh_push(&h, b);
    assert_true(kh_finish(&h, 20000));
    assert_true(kh_wait_consumed(c, 5, 10000));
    kh_consumer_stop(c);
    assert_int_equal(c->total, 5);
    assert_int_equal(kh_metric("sluice_sink_dropped_records_total", "k_unknown", "unknown_topic"),
                     5);
    assert_int_equal(sl_watermark_get(h.wm), 10);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Log content chooses the topic, and the cluster refuses two of them for
 * good: one this producer may not write (every Produce to its leader
 * answered TOPIC_AUTHORIZATION_FAILED, as an ACL that does not cover it)
 * and one it calls invalid (INVALID_TOPIC_EXCEPTION in the metadata, as
 * for an internal topic). Their records are dropped with reasons
 * topic_authorization and invalid_topic (or unknown_topic), counted and
 * acknowledged, and the records for the other topic, in the same batch
 * and in the batch after it, arrive (decision 0071). Before, the refused records were kept and
 * produced again forever, and no batch after them was ever taken: the sink
 * did not drain. (The mock cannot answer a topic's metadata with an error
 * and no partitions, as a broker does for an unauthorized topic, so the
 * refusal is the Produce answer; librdkafka reports both the same way.) */
static void test_refused_topic_does_not_block(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 2);
    rd_kafka_mock_topic_create(h.mc, "logs-app", 1, 1);
    rd_kafka_mock_partition_set_leader(h.mc, "logs-app", 0, 1);
    rd_kafka_mock_topic_create(h.mc, "logs-denied", 1, 1);
    rd_kafka_mock_partition_set_leader(h.mc, "logs-denied", 0, 2);
    for (int i = 0; i < 1000; i++)
        rd_kafka_mock_broker_push_request_error_rtts(
            h.mc, 2, PRODUCE_API, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0);
    rd_kafka_mock_topic_set_error(h.mc, "logs-bad", RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION);
    kh_consumer *c = kh_consume(&h, "logs-app:1", 22);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_denied", "logs-$${fields.t:-app}", NULL, false, &err),
                     SL_OK);
    kh_start(&h);
    sl_batch *b = kh_batch(&h, 0, 12, 10, 1);
    for (uint32_t i = 0; i < 12; i += 2)
        sl_record_add_field(b, &b->records[i], (sl_slice){"t", 1},
                            i % 4 ? (sl_slice){"bad", 3} : (sl_slice){"denied", 6}, SL_V_STRING);
    kh_push(&h, b);
    kh_push(&h, kh_batch(&h, 12, 10, 10, 1));
    assert_true(kh_finish(&h, sl_t_scaled_ms(20000)));
    assert_true(kh_wait_consumed(c, 16, sl_t_scaled_ms(20000)));
    kh_consumer_stop(c);
    assert_int_equal(c->total, 16);
    assert_int_equal(c->unique, 16);
    /* What arrived is exactly what was for logs-app: odd seqs, then all. */
    for (int i = 0; i < 22; i++) assert_int_equal(c->seen[i], i < 12 ? i % 2 : 1);
    assert_int_equal(
        kh_metric("sluice_sink_dropped_records_total", "k_denied", "topic_authorization"), 3);
    /* librdkafka fails the invalid topic's messages with the broker's
     * TOPIC_EXCEPTION, or, once it has marked the topic as not existing
     * (it does so for an invalid one at once), refuses them at produce
     * with _UNKNOWN_TOPIC: either way dropped and counted. */
    int64_t invalid = kh_metric("sluice_sink_dropped_records_total", "k_denied", "invalid_topic");
    int64_t unknown = kh_metric("sluice_sink_dropped_records_total", "k_denied", "unknown_topic");
    assert_int_equal((invalid > 0 ? invalid : 0) + (unknown > 0 ? unknown : 0), 3);
    assert_int_equal(kh_metric("sluice_sink_retries_total", "k_denied", NULL), 0);
    assert_int_equal(sl_watermark_get(h.wm), 22);
    kh_consumer_free(c);
    kh_free(&h);
}

/* A fixed topic the cluster refuses: nothing else can be held behind it, so
 * its records are kept and produced again (counted as retries, nothing
 * dropped) until the refusals stop (the ACL fixed), and then all of them
 * arrive, once. */
static void test_refused_fixed_topic_retried(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 1, 1);
    rd_kafka_mock_push_request_errors(
        h.mc, PRODUCE_API, 4, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    kh_consumer *c = kh_consume(&h, "logs:1", 10);
    sl_err err;
    assert_int_equal(kh_sink_cfg(&h, "k_denied_fixed", "logs", NULL, false, &err), SL_OK);
    kh_start(&h);
    kh_push(&h, kh_batch(&h, 0, 10, 10, 1));
    assert_true(kh_finish(&h, sl_t_scaled_ms(30000)));
    assert_true(kh_wait_consumed(c, 10, sl_t_scaled_ms(20000)));
    kh_consumer_stop(c);
    assert_int_equal(c->unique, 10);
    assert_int_equal(c->total, 10);
    assert_true(kh_metric("sluice_sink_retries_total", "k_denied_fixed", NULL) >= 10);
    /* Never registered: no such drop. */
    assert_true(kh_metric("sluice_sink_dropped_records_total", "k_denied_fixed",
                          "topic_authorization") <= 0);
    assert_int_equal(sl_watermark_get(h.wm), 10);
    kh_consumer_free(c);
    kh_free(&h);
}

/* Topics the mock cluster holds whose names start with prefix. */
static int cluster_topics(kh *h, const char *prefix)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h->bootstraps, errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(conf, kh_quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        n += strncmp(md->topics[i].topic, prefix, strlen(prefix)) == 0;
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return n;
}

/* Log content chooses the topic (`${fields.t}`): past max_topics distinct
 * topics the records are dropped with reason topic_limit, counted, and
 * acknowledged, and the producer never learns a further topic (librdkafka
 * would keep each until the producer is destroyed; decision 0068). Topics
 * already known keep flowing. */
static void test_topic_limit_drops_past_bound(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 1);
    /* The consumer's topics exist before it starts; t-d and t-e would be
     * created by the producer's metadata request (the mock auto-creates). */
    for (const char *t = "abc"; *t; t++) {
        char name[8] = {'t', '-', *t, '\0'};
        rd_kafka_mock_topic_create(h.mc, name, 1, 1);
    }
    kh_consumer *c = kh_consume(&h, "t-a:1,t-b:1,t-c:1", 0);
    sl_err err;
    assert_int_equal(
        kh_sink_cfg(&h, "k_topics", "t-$${fields.t}", "    max_topics: 3\n", false, &err), SL_OK);
    kh_start(&h);
    /* Values a b c d e a b c d e: d and e are the 4th and 5th topics. */
    static const char vals[] = "abcde";
    sl_batch *b = kh_batch(&h, 0, 10, 10, 1);
    for (uint32_t i = 0; i < 10; i++)
        sl_record_add_field(b, &b->records[i], (sl_slice){"t", 1}, (sl_slice){&vals[i % 5], 1},
                            SL_V_STRING);
    kh_push(&h, b);
    assert_true(kh_finish(&h, 20000));
    assert_true(kh_wait_consumed(c, 6, 20000));
    kh_consumer_stop(c);
    assert_int_equal(c->total, 6);
    assert_int_equal(kh_metric("sluice_sink_dropped_records_total", "k_topics", "topic_limit"), 4);
    assert_int_equal(sl_watermark_get(h.wm), 10);
    assert_int_equal(cluster_topics(&h, "t-"), 3);
    kh_consumer_free(c);
    kh_free(&h);
}

/* ---- the real binary: file input -> kafka sink -> mock cluster ---------- */

static void append_lines(const char *path, uint64_t from, uint64_t to)
{
    char *buf = malloc(1 << 20);
    for (uint64_t i = from; i < to;) {
        size_t n = 0;
        for (int k = 0; k < 2000 && i < to; k++, i++)
            n += (size_t)sprintf(buf + n, "seq=%010llu level=info msg=\"request %llu\"\n",
                                 (unsigned long long)i, (unsigned long long)(i * 7919 % 100003));
        assert_int_equal(sl_t_append_file(path, buf, n), 0);
        sl_t_sleep_ms(2);
    }
    free(buf);
}

/* The agent as shipped, producing to the in-process mock cluster over
 * loopback: a graceful restart delivers every line exactly once; kill -9
 * at several points loses nothing (duplicates reported). */
static void test_binary_restarts(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 4, 3);
    const uint64_t total = scaled(60000);
    kh_consumer *c = kh_consume(&h, "logs:4", total);
    char *dir = sl_t_tmpdir("kafka-bin");
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    char yml[2048];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    poll_interval: 50ms\n"
             "    checkpoint_interval: 100ms\n"
             "    labels: {job: app}\n"
             "sinks:\n"
             "  - name: kafka\n"
             "    type: kafka\n"
             "    brokers: \"%s\"\n"
             "    topic: logs\n"
             /* Order across restarts holds per key: keyless records are
              * spread, and a restarted agent starts on another partition. */
             "    key: \"${labels}\"\n"
             "    linger_ms: 5\n",
             dir, in, h.bootstraps);
    sl_t_write_file(cfg, yml, strlen(yml));
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};

    /* Graceful: stop with SIGTERM, write while down, start again. */
    uint64_t third = total / 3;
    append_lines(in, 0, third / 2);
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    append_lines(in, third / 2, third);
    assert_true(kh_wait_consumed(c, third, 30000));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    append_lines(in, third, third * 3 / 2);
    pid = sl_t_spawn(argv, log);
    assert_true(kh_wait_consumed(c, third * 3 / 2, 30000));
    sl_t_sleep_ms(300);
    pthread_mutex_lock(&c->mu);
    uint64_t dups_graceful = c->dups;
    pthread_mutex_unlock(&c->mu);
    assert_int_equal(dups_graceful, 0);

    /* Violent: kill -9 while lines are being shipped. */
    uint64_t from = third * 3 / 2, step = (total - from) / 4;
    for (int k = 0; k < 4; k++) {
        uint64_t to = k == 3 ? total : from + step;
        append_lines(in, from, to);
        sl_t_sleep_ms(30 + k * 40);
        assert_int_equal(sl_t_stop(pid, SIGKILL, 5000), 128 + SIGKILL);
        pid = sl_t_spawn(argv, log);
        from = to;
    }
    bool all = kh_wait_consumed(c, total, 60000);
    sl_t_sleep_ms(300);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    kh_consumer_stop(c);
    report("binary_restarts", c, total, 0);
    assert_true(all);
    assert_int_equal(c->unique, total);
    assert_int_equal(c->unknown, 0);
    assert_int_equal(c->reordered, 0); /* in order within every partition */
    kh_consumer_free(c);
    kh_free(&h);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", dir);
    else
        sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
}

/* Runs the shipped binary over `total` lines of one file input with the
 * static labels job=app, env=prod into topic `logs`; `key_yaml` is the
 * sink's key line (or ""). The consumer c reads everything back. */
static void run_binary_one_input(kh *h, kh_consumer *c, const char *tag, const char *key_yaml,
                                 uint64_t total)
{
    char *dir = sl_t_tmpdir(tag);
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    char yml[2048];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    poll_interval: 50ms\n"
             "    labels: {job: app, env: prod}\n"
             "sinks:\n"
             "  - name: kafka\n"
             "    type: kafka\n"
             "    brokers: \"%s\"\n"
             "    topic: logs\n"
             "%s",
             dir, in, h->bootstraps, key_yaml);
    sl_t_write_file(cfg, yml, strlen(yml));
    /* Written before the agent starts: the whole file arrives as fast as the
     * agent can read it, the hardest case for spreading. */
    append_lines(in, 0, total);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    bool all = kh_wait_consumed(c, total, 60000);
    sl_t_sleep_ms(200);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    kh_consumer_stop(c);
    report(tag, c, total, 0);
    fprintf(stderr, "# %s: per partition:", tag);
    for (int p = 0; p < 12; p++) fprintf(stderr, " %llu", (unsigned long long)c->per_part[p]);
    fprintf(stderr, "\n");
    assert_true(all);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", dir);
    else
        sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
}

/* Issue 22: by default (no key) one input with static labels is spread
 * over every partition, none taking more than 2/12 of the records. */
static void test_binary_spreads_partitions(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 12, 3);
    const uint64_t total = 100000;
    kh_consumer *c = kh_consume(&h, "logs:12", total);
    run_binary_one_input(&h, c, "kafka-spread", "", total);
    assert_int_equal(c->unique, total);
    assert_int_equal(c->null_keys, c->total);
    for (int p = 0; p < 12; p++) {
        assert_true(c->per_part[p] > 0);
        assert_true(c->per_part[p] <= total * 2 / 12);
    }
    assert_int_equal(c->reordered, 0);
    kh_consumer_free(c);
    kh_free(&h);
}

/* `sluice check` (the binary) warns about a key that sends a whole input
 * to one partition, and says which input. */
static void test_check_warns_static_key(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("kafka-check");
    char *cfg = sl_t_path(dir, "sluice.yml"), *out = sl_t_path(dir, "check.out");
    char yml[1024];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "inputs:\n"
             "  - {name: app, type: file, paths: [\"%s/*.log\"], labels: {job: app}}\n"
             "sinks:\n"
             "  - {name: k, type: kafka, brokers: [\"127.0.0.1:9\"], topic: logs,\n"
             "     key: \"${labels}\"}\n",
             dir, dir);
    sl_t_write_file(cfg, yml, strlen(yml));
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, out);
    int rc = sl_t_wait(pid, 20000);
    char *text = sl_t_read_file(out, NULL);
    fprintf(stderr, "%s", text ? text : "");
    assert_int_equal(rc, 0); /* a warning, not an error */
    assert_non_null(strstr(text, "sluice.yml:6:11: warning: sink k: key '${labels}' is the same "
                                 "for every record of input 'app'"));
    assert_non_null(strstr(text, "# configuration OK"));
    free(text);
    sl_t_rmtree(dir);
    free(dir), free(cfg), free(out);
}

/* With `key: ${labels}` the stream keeps one partition, in order. */
static void test_binary_labels_key_one_partition(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 12, 3);
    const uint64_t total = 100000;
    kh_consumer *c = kh_consume(&h, "logs:12", total);
    run_binary_one_input(&h, c, "kafka-keyed", "    key: \"${labels}\"\n", total);
    assert_int_equal(c->unique, total);
    assert_int_equal(c->null_keys, 0);
    assert_int_equal(c->other_keys, 0);
    assert_string_equal(c->first_key, "{env=\"prod\",job=\"app\"}");
    int used = 0;
    for (int p = 0; p < 12; p++) used += c->per_part[p] > 0;
    assert_int_equal(used, 1);
    assert_int_equal(c->reordered, 0);
    kh_consumer_free(c);
    kh_free(&h);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    sl_log_set_level(getenv("SLUICE_TEST_VERBOSE") ? SL_LOG_DEBUG : SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once_in_order),
        cmocka_unit_test(test_faults_lose_nothing),
        cmocka_unit_test(test_acks_wait_for_delivery),
        cmocka_unit_test(test_stop_releases_unacked),
        cmocka_unit_test(test_queue_full_is_backpressure),
        cmocka_unit_test(test_too_large_dropped_with_reason),
        cmocka_unit_test(test_broker_rejection_dropped),
        cmocka_unit_test(test_unknown_topic_dropped),
        cmocka_unit_test(test_refused_topic_does_not_block),
        cmocka_unit_test(test_refused_fixed_topic_retried),
        cmocka_unit_test(test_topic_limit_drops_past_bound),
        cmocka_unit_test(test_binary_restarts),
        cmocka_unit_test(test_binary_spreads_partitions),
        cmocka_unit_test(test_binary_labels_key_one_partition),
        cmocka_unit_test(test_check_warns_static_key),
    };
    return sl_t_run_tests(tests);
}
