/* Decisions 0070 and 0071: the Kafka input when an allocation fails: for
 * a message (its batch or its chunk), for a batch's acknowledgement range
 * (the watermark, on any flush path, the flush_interval's included), and
 * for the copy of a message that is not record JSON under `format: json`.
 * The real input runs in this process on librdkafka's mock cluster
 * (127.0.0.1), and this executable is linked with `--wrap=sl_batch_new
 * --wrap=sl_chunk_new --wrap=sl_watermark_issue
 * --wrap=sl_kafka_record_decode` (tests/meson.build), so that those fail on
 * a fixed schedule: deterministic, and nothing in the agent's code knows
 * about it. Every message arrives exactly once, whole, each failure is
 * counted, and the committed offsets reach the end. Before 0070 a message
 * whose allocation failed was dropped, and the gap before the next batch
 * counted as acknowledged: it was lost; before 0071 a batch rewound on the
 * timer's flush was neither counted nor logged, and a message whose
 * fallback copy failed was shipped with an empty line. */
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
#include "collector/kafka_record.h"
#include "core/ack.h"
#include "pipeline/pipeline.h"
#include "tests/helpers.h"

#define PARTITIONS 2
#define MESSAGES   600
#define VALUE_PAD  16000 /* ~50 messages per 1 MiB chunk: a chunk every ~25 per partition */

/* ---- the failing allocations ---- */

enum { INJECT_NONE, INJECT_ALLOC, INJECT_WATERMARK, INJECT_LATE_DECODE };
static atomic_int injecting;
static atomic_long batch_calls, chunk_calls, wm_calls, decode_calls, injected;
/* Set by the late decoder: the next chunk allocation fails. */
static atomic_bool fail_next_chunk;
static atomic_bool decoded_once[MESSAGES];
#define LATE_EVERY 20

sl_batch *__real_sl_batch_new(uint32_t cap);
sl_chunk *__real_sl_chunk_new(size_t cap);
int __real_sl_watermark_issue(sl_watermark *w, uint64_t begin, uint64_t end);
int __real_sl_kafka_record_decode(sl_batch *b, sl_record *r, const char *p, size_t n,
                                  sl_kafka_reserve_fn reserve, void *arg);

/* Every third batch fails, the first one included (a partition's first
 * message, read_next still 0); its retry succeeds. */
sl_batch *__wrap_sl_batch_new(uint32_t cap)
{
    if (atomic_load(&injecting) == INJECT_ALLOC && atomic_fetch_add(&batch_calls, 1) % 3 == 0) {
        atomic_fetch_add(&injected, 1);
        return NULL;
    }
    return __real_sl_batch_new(cap);
}

/* Every other chunk fails: a message in the middle of an open batch. The
 * late decoder's failure is the chunk right after it. */
sl_chunk *__wrap_sl_chunk_new(size_t cap)
{
    if ((atomic_load(&injecting) == INJECT_ALLOC && atomic_fetch_add(&chunk_calls, 1) % 2 == 0) ||
        atomic_exchange(&fail_next_chunk, false)) {
        atomic_fetch_add(&injected, 1);
        return NULL;
    }
    return __real_sl_chunk_new(cap);
}

/* Every other acknowledgement range fails: the flush that hands the batch
 * on, from a full batch, a partition switch or the flush_interval. */
int __wrap_sl_watermark_issue(sl_watermark *w, uint64_t begin, uint64_t end)
{
    if (atomic_load(&injecting) == INJECT_WATERMARK && atomic_fetch_add(&wm_calls, 1) % 2 == 0) {
        atomic_fetch_add(&injected, 1);
        return SL_ENOMEM;
    }
    return __real_sl_watermark_issue(w, begin, end);
}

/* A decoder that fails late, the first time it sees every LATE_EVERY-th
 * message (each costs the input a nap of 100 ms): it has
 * used the rest of the chunk (1 MiB asked for: a fresh chunk, full), says
 * the message is not record JSON, and the input's copy of the message as
 * it came then needs a chunk that cannot be had. The second time it is the
 * real decoder (the values are not record JSON: SL_EPARSE, nothing used). */
int __wrap_sl_kafka_record_decode(sl_batch *b, sl_record *r, const char *p, size_t n,
                                  sl_kafka_reserve_fn reserve, void *arg)
{
    int id = -1;
    char head[16] = "";
    if (n > 10) memcpy(head, p, 10); /* "id=NNNNNN " */
    if (atomic_load(&injecting) == INJECT_LATE_DECODE && sscanf(head, "id=%6d", &id) == 1 &&
        id >= 0 && id < MESSAGES && id % LATE_EVERY == 0 &&
        !atomic_exchange(&decoded_once[id], true)) {
        atomic_fetch_add(&decode_calls, 1);
        if (reserve(arg, 1u << 20)) atomic_store(&fail_next_chunk, true);
        return SL_EPARSE;
    }
    return __real_sl_kafka_record_decode(b, r, p, n, reserve, arg);
}

/* ---- what the input hands on ---- */

static atomic_int seen[MESSAGES];
static atomic_long records, others, short_lines, parse_errors;

/* The pipeline's side: every record counted by its id, whole lines
 * checked, the batch acknowledged at once (as a sink that delivered it). */
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
        if (b->records[i].line.n != VALUE_PAD) atomic_fetch_add(&short_lines, 1);
        if (b->records[i].flags & SL_RF_PARSE_ERROR) atomic_fetch_add(&parse_errors, 1);
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
    const char *boot, *group;
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
    rd_kafka_conf_set(conf, "group.id", g->group, errstr, sizeof errstr);
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

/* What one run saw. */
typedef struct outcome {
    bool read, committed;
    long once, twice, missing;
    int64_t nomem, rewound, decode_errors;
} outcome;

static int64_t input_metric(const char *name, const char *input)
{
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "input", input, NULL, NULL);
    return sl_metrics_value(name, labels);
}

/* MESSAGES messages over PARTITIONS partitions of "logs" on a fresh mock
 * cluster, read by the real input (named `name`, group `name`, with
 * `extra` YAML lines) while `mode` injects its failures. */
static void run_input(const char *name, const char *extra, int mode, outcome *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < MESSAGES; i++) {
        atomic_store(&seen[i], 0);
        atomic_store(&decoded_once[i], false);
    }
    atomic_store(&records, 0);
    atomic_store(&others, 0);
    atomic_store(&short_lines, 0);
    atomic_store(&parse_errors, 0);
    atomic_store(&injected, 0);
    atomic_store(&fail_next_chunk, false);
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
             "  - name: %s\n"
             "    type: kafka\n"
             "    brokers: [\"%s\"]\n"
             "    topics: [logs]\n"
             "    group_id: %s\n"
             "    commit_interval: 50ms\n"
             "    handover_wait: 0s\n"
             "%s",
             name, boot, name, extra);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "nomem.yml", yml, strlen(yml)), 0);
    atomic_bool stop = false;
    sl_input_ctx ctx = {.name = name,
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
    atomic_store(&injecting, mode);
    assert_int_equal(pthread_create(&r.th, NULL, run_main, &r), 0);

    o->read = sl_t_wait_until(all_read, NULL, sl_t_scaled_ms(60000));
    committed_goal g = {.boot = boot, .group = name};
    o->committed = o->read && sl_t_wait_until(committed_to_end, &g, sl_t_scaled_ms(60000));
    atomic_store(&stop, true);
    pthread_join(r.th, NULL);
    atomic_store(&injecting, INJECT_NONE);
    o->nomem = input_metric("sluice_kafka_input_retried_no_memory_total", name);
    o->rewound = input_metric("sluice_kafka_input_batches_rewound_total", name);
    o->decode_errors = input_metric("sluice_kafka_input_decode_errors_total", name);
    for (int id = 0; id < MESSAGES; id++) {
        int n = atomic_load(&seen[id]);
        o->once += n == 1;
        o->twice += n > 1;
        o->missing += n == 0;
    }
    fprintf(stderr,
            "%s: failures injected %ld (batches %ld, chunks %ld, watermarks %ld, late decodes %ld "
            "calls); counted: retried_no_memory %lld, batches_rewound %lld, decode_errors %lld; "
            "messages once %ld, more than once %ld, missing %ld, other %ld, short lines %ld; "
            "committed %lld+%lld of %d\n",
            name, atomic_load(&injected), atomic_load(&batch_calls), atomic_load(&chunk_calls),
            atomic_load(&wm_calls), atomic_load(&decode_calls), (long long)o->nomem,
            (long long)o->rewound, (long long)o->decode_errors, o->once, o->twice, o->missing,
            atomic_load(&others), atomic_load(&short_lines), (long long)g.at[0], (long long)g.at[1],
            MESSAGES);
    r.ops->destroy(r.state);
    sl_cfg_free(cfg);
    rd_kafka_destroy(producer);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
}

static void test_messages_retried_when_allocation_fails(void **st)
{
    (void)st;
    outcome o;
    run_input("kin_nomem", "    batch_records: 40\n    flush_interval: 20ms\n", INJECT_ALLOC, &o);
    assert_true(o.read);
    assert_true(o.committed);
    assert_int_equal(o.once, MESSAGES);
    assert_int_equal(atomic_load(&others), 0);
    /* Both kinds failed, more than once each, and every failure counted. */
    assert_true(atomic_load(&batch_calls) > 3 && atomic_load(&chunk_calls) > 2);
    assert_int_equal(o.nomem, atomic_load(&injected));
}

/* Decision 0071: a batch whose acknowledgement range cannot be had is
 * rewound, counted (sluice_kafka_input_batches_rewound_total) and logged
 * on every flush path: with batch_records far above what arrives between
 * two idle polls, most flushes here are the flush_interval's or an idle
 * poll's, which before counted nothing. Each message still arrives exactly
 * once, and the commits reach the end. */
static void test_batches_rewound_when_watermark_fails(void **st)
{
    (void)st;
    outcome o;
    run_input("kin_nomem_wm", "    batch_records: 65536\n    flush_interval: 5ms\n",
              INJECT_WATERMARK, &o);
    assert_true(o.read);
    assert_true(o.committed);
    assert_int_equal(o.once, MESSAGES);
    assert_int_equal(atomic_load(&others), 0);
    assert_int_equal(atomic_load(&short_lines), 0);
    assert_true(atomic_load(&injected) >= 2);
    assert_int_equal(o.rewound, atomic_load(&injected));
}

/* Decision 0071: under `format: json`, a message that is not record JSON is
 * shipped as it came, flagged and counted; when even that copy cannot be
 * made it is not taken (set back, counted as retried_no_memory) and read
 * again, never shipped with an empty line. Every message arrives once,
 * whole, flagged as a parse error, counted once as a decode error. */
static void test_undecoded_copy_never_half_taken(void **st)
{
    /* batch_records 4: a batch never holds SL_BATCH_MAX_CHUNKS chunks, so
     * each late failure is the one chunk allocation it arms. */
    (void)st;
    outcome o;
    run_input("kin_nomem_json",
              "    format: json\n    batch_records: 4\n    flush_interval: 20ms\n",
              INJECT_LATE_DECODE, &o);
    assert_true(o.read);
    assert_true(o.committed);
    assert_int_equal(o.once, MESSAGES);
    assert_int_equal(atomic_load(&others), 0);
    assert_int_equal(atomic_load(&short_lines), 0);
    assert_int_equal(atomic_load(&parse_errors), MESSAGES);
    assert_int_equal(o.decode_errors, MESSAGES);
    assert_int_equal(atomic_load(&decode_calls), MESSAGES / LATE_EVERY);
    assert_int_equal(atomic_load(&injected), MESSAGES / LATE_EVERY);
    assert_int_equal(o.nomem, atomic_load(&injected));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_retried_when_allocation_fails),
        cmocka_unit_test(test_batches_rewound_when_watermark_fails),
        cmocka_unit_test(test_undecoded_copy_never_half_taken),
    };
    return sl_t_run_tests(tests);
}
