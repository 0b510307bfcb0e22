/* Decision 0070: the Kafka input when an allocation for a message fails
 * (its batch or its chunk). The real input runs in this process on
 * librdkafka's mock cluster (127.0.0.1), and this executable is linked with
 * `--wrap=sl_batch_new --wrap=sl_chunk_new` (tests/meson.build), so that
 * those allocations fail on a fixed schedule: deterministic, and nothing in
 * the agent's code knows about it. Every message arrives exactly once,
 * each failure is counted, and the committed offsets reach the end. Before
 * the fix a message whose allocation failed was dropped, and the gap
 * before the next batch counted as acknowledged: it was lost. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/chunk.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "pipeline/pipeline.h"
#include "tests/helpers.h"

#define PARTITIONS 2
#define MESSAGES   600
#define VALUE_PAD  16000 /* ~50 messages per 1 MiB chunk: a chunk every ~25 per partition */

/* ---- the failing allocations ---- */

static atomic_bool injecting;
static atomic_long batch_calls, chunk_calls, injected;

sl_batch *__real_sl_batch_new(uint32_t cap);
sl_chunk *__real_sl_chunk_new(size_t cap);

/* Every third batch fails, the first one included (a partition's first
 * message, read_next still 0); its retry succeeds. */
sl_batch *__wrap_sl_batch_new(uint32_t cap)
{
    if (atomic_load(&injecting) && atomic_fetch_add(&batch_calls, 1) % 3 == 0) {
        atomic_fetch_add(&injected, 1);
        return NULL;
    }
    return __real_sl_batch_new(cap);
}

/* Every other chunk fails: a message in the middle of an open batch. */
sl_chunk *__wrap_sl_chunk_new(size_t cap)
{
    if (atomic_load(&injecting) && atomic_fetch_add(&chunk_calls, 1) % 2 == 0) {
        atomic_fetch_add(&injected, 1);
        return NULL;
    }
    return __real_sl_chunk_new(cap);
}

/* ---- what the input hands on ---- */

static atomic_int seen[MESSAGES];
static atomic_long records, others;

/* The pipeline's side: every record counted by its id, the batch
 * acknowledged at once (as a sink that delivered it). */
static int emit(void *arg, sl_batch *b)
{
    (void)arg;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        int id = -1;
        char head[16];
        size_t n = b->records[i].line.n < sizeof head - 1 ? b->records[i].line.n : sizeof head - 1;
        memcpy(head, b->records[i].line.p, n);
        head[n] = 0;
        if (sscanf(head, "id=%d", &id) == 1 && id >= 0 && id < MESSAGES)
            atomic_fetch_add(&seen[id], 1);
        else
            atomic_fetch_add(&others, 1);
        atomic_fetch_add(&records, 1);
    }
    sl_batch_done(b);
    return SL_OK;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static bool all_read(void *arg)
{
    (void)arg;
    return atomic_load(&records) >= MESSAGES;
}

typedef struct committed_goal {
    const char *boot;
    int64_t at[PARTITIONS];
} committed_goal;

/* The group's committed offsets, as Kafka has them, reach every message. */
static bool committed_to_end(void *arg)
{
    committed_goal *g = arg;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set(conf, "bootstrap.servers", g->boot, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "nomem", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++) rd_kafka_topic_partition_list_add(l, "logs", p);
    bool done = false;
    if (rd_kafka_committed(rk, l, 5000) == 0) {
        done = true;
        for (int p = 0; p < PARTITIONS; p++) {
            g->at[p] = l->elems[p].offset;
            done = done && l->elems[p].offset == MESSAGES / PARTITIONS;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return done;
}

typedef struct running {
    const sl_input_ops *ops;
    void *state;
    pthread_t th;
} running;

static void *run_main(void *arg)
{
    running *r = arg;
    r->ops->run(r->state);
    return NULL;
}

static void test_messages_retried_when_allocation_fails(void **st)
{
    (void)st;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(mrk);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 1);
    assert_non_null(mc);
    char boot[512];
    snprintf(boot, sizeof boot, "%s", rd_kafka_mock_cluster_bootstraps(mc));
    assert_int_equal(rd_kafka_mock_topic_create(mc, "logs", PARTITIONS, 1), 0);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", boot, errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(producer);
    static char value[VALUE_PAD];
    memset(value, 'x', sizeof value);
    for (int id = 0; id < MESSAGES; id++) {
        int n = snprintf(value, 16, "id=%06d", id);
        value[n] = ' ';
        assert_int_equal(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("logs"),
                                           RD_KAFKA_V_PARTITION(id % PARTITIONS),
                                           RD_KAFKA_V_VALUE(value, sizeof value),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
        rd_kafka_poll(producer, 0);
    }
    assert_int_equal(rd_kafka_flush(producer, 30000), 0);

    char yml[2048];
    snprintf(yml, sizeof yml,
             "inputs:\n"
             "  - name: kin_nomem\n"
             "    type: kafka\n"
             "    brokers: [\"%s\"]\n"
             "    topics: [logs]\n"
             "    group_id: nomem\n"
             "    batch_records: 40\n"
             "    flush_interval: 20ms\n"
             "    commit_interval: 50ms\n"
             "    handover_wait: 0s\n",
             boot);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "nomem.yml", yml, strlen(yml)), 0);
    atomic_bool stop = false;
    sl_input_ctx ctx = {.name = "kin_nomem",
                        .cfg = cfg,
                        .node = sl_cfg_get(sl_cfg_root(cfg), "inputs")->items[0],
                        .data_dir = "/nonexistent",
                        .emit = emit,
                        .stop = &stop};
    running r = {0};
    for (size_t i = 0; sl_pipeline_input_type(i); i++)
        if (strcmp(sl_pipeline_input_type(i)->type, "kafka") == 0)
            r.ops = sl_pipeline_input_type(i);
    assert_non_null(r.ops);
    sl_err err = {0};
    int rc = r.ops->create(&ctx, &r.state, &err);
    for (size_t i = 0; i < sl_cfg_nerrors(cfg); i++)
        fprintf(stderr, "config: %s\n", sl_cfg_error_at(cfg, i));
    assert_int_equal(rc, SL_OK);
    atomic_store(&injecting, true);
    assert_int_equal(pthread_create(&r.th, NULL, run_main, &r), 0);

    bool read = sl_t_wait_until(all_read, NULL, sl_t_scaled_ms(60000));
    committed_goal g = {.boot = boot};
    bool committed = read && sl_t_wait_until(committed_to_end, &g, sl_t_scaled_ms(60000));
    atomic_store(&stop, true);
    pthread_join(r.th, NULL);
    atomic_store(&injecting, false);
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "input", "kin_nomem", NULL, NULL);
    int64_t counted = sl_metrics_value("sluice_kafka_input_retried_no_memory_total", labels);
    long once = 0, twice = 0, missing = 0;
    for (int id = 0; id < MESSAGES; id++) {
        int s = atomic_load(&seen[id]);
        once += s == 1;
        twice += s > 1;
        missing += s == 0;
    }
    fprintf(stderr,
            "allocations failed %ld (batches %ld calls, chunks %ld calls), counted %lld; "
            "messages once %ld, more than once %ld, missing %ld, other %ld; committed %lld+%lld "
            "of %d\n",
            atomic_load(&injected), atomic_load(&batch_calls), atomic_load(&chunk_calls),
            (long long)counted, once, twice, missing, atomic_load(&others), (long long)g.at[0],
            (long long)g.at[1], MESSAGES);
    r.ops->destroy(r.state);
    sl_cfg_free(cfg);
    rd_kafka_destroy(producer);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    assert_true(read);
    assert_true(committed);
    assert_int_equal(once, MESSAGES);
    assert_int_equal(atomic_load(&others), 0);
    /* Both kinds failed, more than once each, and every failure counted. */
    assert_true(atomic_load(&batch_calls) > 3 && atomic_load(&chunk_calls) > 2);
    assert_int_equal(counted, atomic_load(&injected));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_retried_when_allocation_fails),
    };
    return sl_t_run_tests(tests);
}
