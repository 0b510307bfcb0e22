/* The Loki sink end to end, in process: a real sl_buffer feeds the sink's
 * thread, which ships to the test receiver (tests/loki_receiver.c) over
 * loopback. Every record carries a unique sequence number; the tests count
 * what arrived, what was acknowledged at the source watermark, and what
 * the metrics say. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/chunk.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/buffer.h"
#include "shipper/loki.h"
#include "tests/helpers.h"
#include "tests/loki_receiver.h"

typedef int (*gen_fn)(uint32_t seq, char *out, size_t cap, int64_t *ts);

typedef struct rig {
    char name[32];
    sl_lr *lr;
    sl_cfg *cfg;
    sl_buffer *buf;
    sl_sink_ctx ctx;
    atomic_bool stop;
    atomic_bool done;
    void *state;
    pthread_t thr;
    bool running;
    sl_watermark *wm;
    uint64_t pos;
    uint32_t seq;
} rig;

static int rig_counter;
/* Records are stamped an hour ago: inside Loki's window, which the sink
 * enforces (records outside it are clamped; the tests of that set their
 * own times). */
static int64_t ts0;

static void *sink_main(void *arg)
{
    rig *r = arg;
    sl_loki_sink_ops.run(r->state);
    atomic_store(&r->done, true);
    return NULL;
}

/* Starts a receiver (unless url is given) and the sink. extra: more YAML
 * lines for the sink, each indented by four spaces. */
static void rig_start(rig *r, const sl_lr_opts *lo, const char *url, const char *extra)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "loki%d", ++rig_counter);
    char u[256];
    if (!url) {
        sl_lr_opts def = {0};
        assert_int_equal(sl_lr_start(lo ? lo : &def, &r->lr), 0);
        snprintf(u, sizeof u, "http://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(r->lr));
        url = u;
    }
    /* Defaults that suit loopback tests, unless extra sets them. */
    static const char *defaults[] = {"min_backoff: 5ms", "max_backoff: 100ms", "timeout: 2s",
                                     "max_batch_wait: 20ms", "labels: {agent: itest}"};
    char yaml[4096];
    int o = snprintf(yaml, sizeof yaml,
                     "sinks:\n"
                     "  - name: %s\n"
                     "    type: loki\n"
                     "    url: \"%s\"\n"
                     "%s",
                     r->name, url, extra ? extra : "");
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(defaults[i], ":") + 1, defaults[i]);
        if (!extra || !strstr(extra, key))
            o += snprintf(yaml + o, sizeof yaml - (size_t)o, "    %s\n", defaults[i]);
    }
    r->cfg = sl_cfg_new();
    assert_non_null(r->cfg);
    assert_int_equal(sl_cfg_load_string(r->cfg, "itest.yml", yaml, strlen(yaml)), 0);
    const sl_cfg_node *sinks = sl_cfg_get(sl_cfg_root(r->cfg), "sinks");
    assert_non_null(sinks);
    sl_buffer_opts bo = {.sink = r->name, .memory_max = 8 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &r->buf, &err), 0);
    r->ctx = (sl_sink_ctx){.name = r->name,
                           .cfg = r->cfg,
                           .node = sinks->items[0],
                           .buffer = r->buf,
                           .stop = &r->stop};
    int rc = sl_loki_sink_ops.create(&r->ctx, &r->state, &err);
    if (rc) {
        for (size_t i = 0; i < sl_cfg_nerrors(r->cfg); i++)
            fprintf(stderr, "%s\n", sl_cfg_error_at(r->cfg, i));
        fail_msg("create: %s", err.msg);
    }
    r->wm = sl_watermark_new(0);
    assert_int_equal(pthread_create(&r->thr, NULL, sink_main, r), 0);
    r->running = true;
}

static int gen_default(uint32_t seq, char *out, size_t cap, int64_t *ts)
{
    *ts = ts0 + (int64_t)seq * 1000;
    return snprintf(out, cap,
                    "seq=%08u level=info msg=\"request handled\" path=/api/v1/items/%u took_ms=%u",
                    seq, seq * 7 % 1000, seq % 97);
}

/* Sends n records in batches of per, as an input would. */
static void rig_send(rig *r, uint32_t n, uint32_t per, gen_fn gen)
{
    static const sl_field labels[] = {{{"job", 3}, {"itest", 5}, SL_V_STRING, SL_FF_LABEL}};
    if (!gen) gen = gen_default;
    while (n) {
        uint32_t k = n < per ? n : per;
        sl_chunk *c = sl_chunk_new((size_t)k * 512);
        sl_batch *b = sl_batch_new(k);
        assert_non_null(c);
        assert_non_null(b);
        assert_int_equal(sl_batch_add_chunk(b, c), 0);
        uint64_t begin = r->pos;
        for (uint32_t i = 0; i < k; i++) {
            int64_t ts;
            char *p = c->data + c->len;
            int len = gen(r->seq++, p, c->cap - c->len, &ts);
            assert_true(len > 0 && (size_t)len < c->cap - c->len);
            c->len += (size_t)len;
            r->pos += (uint64_t)len + 1;
            assert_non_null(sl_batch_add(b, (sl_slice){p, (size_t)len}, ts, r->pos));
        }
        sl_chunk_unref(c);
        assert_int_equal(sl_watermark_issue(r->wm, begin, r->pos), 0);
        b->ticket = (sl_ack_ticket){sl_watermark_ref(r->wm), begin, r->pos};
        assert_int_equal(sl_batch_set_labels(b, labels, 1), 0);
        assert_int_equal(sl_batch_set_names(b, "itest", "memory"), 0);
        assert_int_equal(sl_buffer_push(r->buf, b), 0);
        n -= k;
    }
}

static bool all_acked(void *arg)
{
    rig *r = arg;
    return sl_watermark_get(r->wm) == r->pos;
}

/* Closes the buffer and waits for the sink to drain; then, or after
 * drain_ms, tells it to stop. Frees everything but the watermark. */
static void rig_finish(rig *r, int drain_ms)
{
    if (r->running) {
        sl_buffer_close(r->buf);
        int64_t end = sl_monotonic_ns() + (int64_t)drain_ms * 1000000;
        while (!atomic_load(&r->done) && sl_monotonic_ns() < end) sl_t_sleep_ms(5);
        atomic_store(&r->stop, true);
        int64_t t0 = sl_monotonic_ns();
        pthread_join(r->thr, NULL);
        /* A stop must be prompt even in the middle of retries. */
        assert_true(sl_monotonic_ns() - t0 < 3000LL * 1000000);
        r->running = false;
    }
    sl_loki_sink_ops.destroy(r->state);
    sl_buffer_free(r->buf);
    sl_cfg_free(r->cfg);
    if (r->lr) sl_lr_stop(r->lr);
    r->lr = NULL;
}

static int64_t metric(const rig *r, const char *name, const char *k2, const char *v2)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "sink", r->name, k2, v2);
    return sl_metrics_value(name, l);
}

/* Counts arrivals per sequence number. */
static void tally(rig *r, uint32_t n, uint32_t *lost, uint32_t *dup)
{
    uint8_t *seen = calloc(n, 1);
    assert_non_null(seen);
    size_t m = sl_lr_nentries(r->lr);
    for (size_t i = 0; i < m; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(r->lr, i);
        unsigned seq;
        assert_int_equal(sscanf(e->line, "seq=%08u", &seq), 1);
        assert_true(seq < n);
        if (seen[seq] < 255) seen[seq]++;
    }
    *lost = *dup = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!seen[i]) (*lost)++;
        if (seen[i] > 1) *dup += seen[i] - 1u;
    }
    free(seen);
}

static uint32_t scaled(uint32_t n)
{
    return sl_t_sanitized() ? n / 4 : n;
}

static void test_no_fault_200k(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, NULL, NULL);
    uint32_t n = scaled(200000);
    int64_t t0 = sl_monotonic_ns();
    rig_send(&r, n, 1000, NULL);
    assert_true(sl_t_wait_until(all_acked, &r, 60000));
    double secs = (double)(sl_monotonic_ns() - t0) / 1e9;
    uint32_t lost, dup;
    tally(&r, n, &lost, &dup);
    sl_lr_stats st;
    sl_lr_get_stats(r.lr, &st);
    fprintf(stderr, "no-fault: %u records in %.2fs (%.0f rec/s), %llu requests, %llu body bytes\n",
            n, secs, n / secs, (unsigned long long)st.requests, (unsigned long long)st.body_bytes);
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(st.entries, n);
    assert_int_equal(st.unsorted_streams, 0);
    assert_int_equal(st.invalid_utf8, 0);
    assert_string_equal(st.content_type, "application/x-protobuf");
    /* Every entry has the batch label, the config label and its time. */
    const sl_lr_entry *e = sl_lr_entry_at(r.lr, 0);
    assert_string_equal(e->labels, "{agent=\"itest\", job=\"itest\"}");
    unsigned seq;
    assert_int_equal(sscanf(e->line, "seq=%08u", &seq), 1);
    assert_int_equal(e->ts_ns, ts0 + (int64_t)seq * 1000);
    assert_int_equal(metric(&r, "sluice_sink_records_total", NULL, NULL), n);
    assert_int_equal(metric(&r, "sluice_sink_failing", NULL, NULL), 0);
    assert_int_equal(metric(&r, "sluice_sink_retries_total", NULL, NULL), 0);
    assert_true(metric(&r, "sluice_sink_requests_total", "code", "204") > 0);
    assert_true(metric(&r, "sluice_sink_last_success_timestamp_seconds", NULL, NULL) > 0);
    assert_int_equal(metric(&r, "sluice_sink_bytes_total", NULL, NULL), (int64_t)st.body_bytes);
    rig_finish(&r, 5000);
    assert_int_equal(sl_watermark_pending(r.wm), 0);
    sl_watermark_unref(r.wm);
}

/* 500s, 429 with Retry-After, dropped connections, stalls past the client
 * timeout, garbage and half responses, scripted and then at random: nothing
 * is lost, and since the receiver keeps nothing from a failed request,
 * nothing is duplicated either. */
static void test_faults_none_lost(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, NULL, "    timeout: 500ms\n    max_batch_bytes: 16KiB\n");
    assert_int_equal(sl_lr_faults(r.lr, "500*3,429:1,drop,midclose,garbage,stall:800,503*2,"
                                        "ok,drop*2"),
                     0);
    sl_lr_fault_rate(r.lr, 0.3, 99);
    uint32_t n = scaled(50000);
    rig_send(&r, n, 500, NULL);
    assert_true(sl_t_wait_until(all_acked, &r, 120000));
    uint32_t lost, dup;
    tally(&r, n, &lost, &dup);
    sl_lr_stats st;
    sl_lr_get_stats(r.lr, &st);
    fprintf(stderr, "faults: %llu requests, %llu faults injected, lost=%u dup=%u retries=%lld\n",
            (unsigned long long)st.requests, (unsigned long long)st.faults, lost, dup,
            (long long)metric(&r, "sluice_sink_retries_total", NULL, NULL));
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_true(st.faults >= 12);
    /* libcurl itself resends once when a reused connection dies before
     * answering, so not every injected fault is a retry of ours. */
    assert_true(metric(&r, "sluice_sink_retries_total", NULL, NULL) >= 10);
    assert_true(metric(&r, "sluice_sink_requests_total", "code", "500") >= 3);
    assert_true(metric(&r, "sluice_sink_requests_total", "code", "429") >= 1);
    assert_true(metric(&r, "sluice_sink_requests_total", "code", "error") >= 5);
    assert_int_equal(metric(&r, "sluice_sink_failing", NULL, NULL), 0);
    rig_finish(&r, 5000);
    sl_watermark_unref(r.wm);
}

static void test_retry_after_honoured(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, NULL, "    min_backoff: 1ms\n    max_backoff: 10s\n");
    assert_int_equal(sl_lr_faults(r.lr, "429:1,503:1"), 0);
    int64_t t0 = sl_monotonic_ns();
    rig_send(&r, 10, 10, NULL);
    assert_true(sl_t_wait_until(all_acked, &r, 10000));
    int64_t ms = (sl_monotonic_ns() - t0) / 1000000;
    /* Two Retry-After: 1 answers: at least two seconds, well under the
     * 10 s max_backoff a misreading would allow. */
    assert_true(ms >= 1950);
    assert_true(ms < 6000);
    assert_int_equal(sl_lr_nentries(r.lr), 10);
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

/* A destination that never works: no ack, failing gauge, retries, errors
 * counted; a stop is prompt and releases the batches without an ack. */
static void check_unreachable(rig *r, const char *code)
{
    rig_send(r, 300, 100, NULL);
    sl_t_sleep_ms(800);
    assert_int_equal(sl_watermark_get(r->wm), 0);
    assert_int_equal(metric(r, "sluice_sink_failing", NULL, NULL), 1);
    assert_true(metric(r, "sluice_sink_retries_total", NULL, NULL) >= 2);
    assert_true(metric(r, "sluice_sink_requests_total", "code", code) >= 2);
    assert_int_equal(metric(r, "sluice_sink_records_total", NULL, NULL), 0);
    rig_finish(r, 300);
    assert_int_equal(sl_watermark_get(r->wm), 0);
    assert_int_equal(sl_watermark_pending(r->wm), 3);
    sl_watermark_unref(r->wm);
}

static void test_refused_port(void **state)
{
    (void)state;
    rig r;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/loki/api/v1/push", sl_t_free_port());
    rig_start(&r, NULL, url, NULL);
    check_unreachable(&r, "error");
}

static void test_dns_failure(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, "http://nonexistent.invalid:3100/loki/api/v1/push", NULL);
    check_unreachable(&r, "error");
}

/* TLS failures: a CA file that does not exist, and https to a plain-HTTP
 * server, where the handshake never completes. */
static void test_tls_failure(void **state)
{
    (void)state;
    static const char *extra[] = {
        "    tls: {ca_file: /nonexistent/ca.pem}\n",
        "    timeout: 150ms\n    tls: {insecure_skip_verify: true}\n",
    };
    for (int i = 0; i < 2; i++) {
        rig r;
        sl_lr_opts lo = {0};
        sl_lr *lr;
        assert_int_equal(sl_lr_start(&lo, &lr), 0);
        char url[128];
        snprintf(url, sizeof url, "https://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(lr));
        rig_start(&r, NULL, url, extra[i]);
        r.lr = lr;
        check_unreachable(&r, "error");
    }
}

/* A push path Loki does not serve: 404, retried (the operator fixes the
 * url), the sink failing. A url without any push path is refused at
 * `check` (test_bad_config). */
static void test_wrong_path(void **state)
{
    (void)state;
    rig r;
    sl_lr_opts lo = {0};
    sl_lr *lr;
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/push", sl_lr_port(lr));
    rig_start(&r, NULL, url, NULL);
    r.lr = lr;
    check_unreachable(&r, "404");
}

static void test_garbage_forever(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, NULL, NULL);
    assert_int_equal(sl_lr_faults(r.lr, "garbage*100000"), 0);
    check_unreachable(&r, "error");
}

static void test_garbage_then_recovery(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, NULL, NULL, NULL);
    assert_int_equal(sl_lr_faults(r.lr, "garbage*4,midclose*4,drop*2"), 0);
    uint32_t n = 2000;
    rig_send(&r, n, 200, NULL);
    assert_true(sl_t_wait_until(all_acked, &r, 20000));
    uint32_t lost, dup;
    tally(&r, n, &lost, &dup);
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(metric(&r, "sluice_sink_failing", NULL, NULL), 0);
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

/* Random letters: snappy cannot shrink them, so sizes on the wire are
 * predictable. */
static int random_text(uint32_t seq, char *out, size_t cap, size_t len)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    int n = snprintf(out, cap, "seq=%08u ", seq);
    uint64_t x = seq * 0x9e3779b97f4a7c15ull + 1;
    while ((size_t)n < len && (size_t)n + 1 < cap) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        out[n++] = abc[x & 63];
    }
    return n;
}

static int gen_big(uint32_t seq, char *out, size_t cap, int64_t *ts)
{
    *ts = ts0 + (int64_t)seq;
    /* seq 7 is larger than the receiver's body limit even alone. */
    return random_text(seq, out, cap, seq == 7 ? 400 : 60);
}

/* 413: the sink halves the request until it fits; a record that can never
 * fit is dropped with reason too_large and still acknowledged. */
static void test_413_split(void **state)
{
    (void)state;
    rig r;
    sl_lr_opts lo = {.max_body = 300};
    rig_start(&r, &lo, NULL, "    max_batch_bytes: 64KiB\n");
    uint32_t n = 400;
    rig_send(&r, n, 400, gen_big);
    assert_true(sl_t_wait_until(all_acked, &r, 20000));
    uint32_t lost, dup;
    tally(&r, n, &lost, &dup);
    assert_int_equal(lost, 1); /* seq 7 */
    assert_int_equal(dup, 0);
    assert_int_equal(metric(&r, "sluice_sink_dropped_records_total", "reason", "too_large"), 1);
    assert_true(metric(&r, "sluice_sink_requests_total", "code", "413") >= 8);
    assert_int_equal(metric(&r, "sluice_sink_records_total", NULL, NULL), n - 1);
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

static int gen_some_long(uint32_t seq, char *out, size_t cap, int64_t *ts)
{
    *ts = ts0 + (int64_t)seq;
    if (seq % 10 == 3) return snprintf(out, cap, "seq=%08u %0200d", seq, 0);
    return snprintf(out, cap, "seq=%08u short", seq);
}

/* Loki's partial rejection (400 "max entry size ... exceeded"): the long
 * lines are dropped and counted, the rest stays delivered, all is acked. */
static void test_400_line_too_long(void **state)
{
    (void)state;
    rig r;
    sl_lr_opts lo = {.max_line = 100};
    rig_start(&r, &lo, NULL, NULL);
    uint32_t n = 1000;
    rig_send(&r, n, 100, gen_some_long);
    assert_true(sl_t_wait_until(all_acked, &r, 20000));
    uint32_t lost, dup;
    tally(&r, n, &lost, &dup);
    assert_int_equal(lost, 100);
    assert_int_equal(dup, 0);
    assert_int_equal(metric(&r, "sluice_sink_dropped_records_total", "reason", "line_too_long"),
                     100);
    assert_int_equal(metric(&r, "sluice_sink_records_total", NULL, NULL), 900);
    assert_int_equal(metric(&r, "sluice_sink_retries_total", NULL, NULL), 0);
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

static int gen_old(uint32_t seq, char *out, size_t cap, int64_t *ts)
{
    /* The second half goes back in time. */
    *ts = ts0 + (seq < 50 ? (int64_t)seq * 1000 : (int64_t)seq - 50);
    return snprintf(out, cap, "seq=%08u", seq);
}

static void test_400_out_of_order(void **state)
{
    (void)state;
    rig r;
    sl_lr_opts lo = {.enforce_order = true};
    rig_start(&r, &lo, NULL, NULL);
    rig_send(&r, 50, 50, gen_old);
    assert_true(sl_t_wait_until(all_acked, &r, 10000));
    rig_send(&r, 30, 30, gen_old);
    assert_true(sl_t_wait_until(all_acked, &r, 10000));
    uint32_t lost, dup;
    tally(&r, 80, &lost, &dup);
    assert_int_equal(lost, 30);
    assert_int_equal(metric(&r, "sluice_sink_dropped_records_total", "reason", "out_of_order"), 30);
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

static int gen_utf8(uint32_t seq, char *out, size_t cap, int64_t *ts)
{
    *ts = ts0 + (int64_t)seq;
    if (seq % 2) return snprintf(out, cap, "seq=%08u bad \xff\xc3( end", seq);
    return snprintf(out, cap, "seq=%08u caf\xc3\xa9", seq);
}

/* JSON + gzip, tenant and basic auth; invalid UTF-8 repaired and counted. */
static void test_json_gzip_tenant_auth(void **state)
{
    (void)state;
    setenv("SLUICE_ITEST_LOKI_PASSWORD", "s3cret", 1);
    rig r;
    /* "Basic " + base64("user:s3cret") */
    sl_lr_opts lo = {.tenant = "team-a", .auth = "Basic dXNlcjpzM2NyZXQ="};
    rig_start(&r, &lo, NULL,
              "    encoding: json\n"
              "    tenant: team-a\n"
              "    auth: {username: user, password: \"${SLUICE_ITEST_LOKI_PASSWORD}\"}\n");
    rig_send(&r, 100, 25, gen_utf8);
    assert_true(sl_t_wait_until(all_acked, &r, 10000));
    sl_lr_stats st;
    sl_lr_get_stats(r.lr, &st);
    assert_string_equal(st.content_type, "application/json");
    assert_string_equal(st.content_encoding, "gzip");
    assert_string_equal(st.tenant, "team-a");
    assert_int_equal(st.entries, 100);
    assert_int_equal(st.invalid_utf8, 0);
    assert_int_equal(metric(&r, "sluice_sink_invalid_utf8_total", NULL, NULL), 50);
    const sl_lr_entry *e = sl_lr_entry_at(r.lr, 1);
    assert_non_null(strstr(e->line, "bad \xef\xbf\xbd\xef\xbf\xbd( end"));
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
}

static void test_bearer_wrong_then_401_retried(void **state)
{
    (void)state;
    char *dir = sl_t_tmpdir("loki-auth");
    char *tok = sl_t_path(dir, "token");
    assert_int_equal(sl_t_write_file(tok, "tok-123\n", 8), 0);
    rig r;
    sl_lr_opts lo = {.auth = "Bearer tok-456"};
    char extra[512];
    snprintf(extra, sizeof extra, "    auth: {bearer_token_file: \"%s\"}\n", tok);
    rig_start(&r, &lo, NULL, extra);
    /* Wrong credentials are the operator's to fix: retried, never dropped. */
    check_unreachable(&r, "401");
    lo.auth = "Bearer tok-123";
    rig_start(&r, &lo, NULL, extra);
    rig_send(&r, 10, 10, NULL);
    assert_true(sl_t_wait_until(all_acked, &r, 10000));
    rig_finish(&r, 2000);
    sl_watermark_unref(r.wm);
    sl_t_rmtree(dir);
    free(tok);
    free(dir);
}

static void test_bad_config(void **state)
{
    (void)state;
    static const char *bad[] = {
        "sinks:\n  - {name: a, type: loki}\n",
        "sinks:\n  - {name: a, type: loki, url: \"ftp://x\"}\n",
        ("sinks:\n  - {name: a, type: loki, url: \"http://x\", encoding: protobuf, "
         "compression: gzip}\n"),
        "sinks:\n  - {name: a, type: loki, url: \"http://x\", concurrency: 0}\n",
        "sinks:\n  - {name: a, type: loki, url: \"http://x\", lables: {a: b}}\n",
        "sinks:\n  - {name: a, type: loki, url: \"http://x\", tls: {cert_file: c}}\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_cfg *c = sl_cfg_new();
        sl_cfg_load_string(c, "bad.yml", bad[i], strlen(bad[i]));
        const sl_cfg_node *s = sl_cfg_get(sl_cfg_root(c), "sinks")->items[0];
        atomic_bool stop = false;
        sl_sink_ctx ctx = {.name = "a", .cfg = c, .node = s, .check_only = true, .stop = &stop};
        void *st = NULL;
        sl_err err;
        assert_int_equal(sl_loki_sink_ops.create(&ctx, &st, &err), SL_EINVAL);
        assert_true(sl_cfg_nerrors(c) > 0);
        sl_cfg_free(c);
    }
}

int main(void)
{
    sl_log_set_level(SL_LOG_WARN);
    ts0 = sl_now_ns() - 3600LL * 1000000000LL;
    if (getenv("SL_TEST_FILTER")) cmocka_set_test_filter(getenv("SL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_fault_200k),
        cmocka_unit_test(test_faults_none_lost),
        cmocka_unit_test(test_retry_after_honoured),
        cmocka_unit_test(test_refused_port),
        cmocka_unit_test(test_dns_failure),
        cmocka_unit_test(test_tls_failure),
        cmocka_unit_test(test_wrong_path),
        cmocka_unit_test(test_garbage_forever),
        cmocka_unit_test(test_garbage_then_recovery),
        cmocka_unit_test(test_413_split),
        cmocka_unit_test(test_400_line_too_long),
        cmocka_unit_test(test_400_out_of_order),
        cmocka_unit_test(test_json_gzip_tenant_auth),
        cmocka_unit_test(test_bearer_wrong_then_401_retried),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
