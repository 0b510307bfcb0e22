/* Test harness for the Kafka sink, shared by tests/unit/test_kafka.c and
 * tests/integration/itest_kafka.c: librdkafka's mock cluster (real Kafka
 * protocol brokers in-process, on 127.0.0.1), the real sink running on its
 * own thread behind a real sl_buffer, and a real rdkafka consumer that reads
 * everything back while the producer runs.
 *
 * Records carry "seq=NNNNNNNNNN" so the consumer can count lost, duplicated
 * and reordered records. */
#ifndef SLUICE_TESTS_KAFKA_HARNESS_H
#define SLUICE_TESTS_KAFKA_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "pipeline/buffer.h"
#include "shipper/kafka.h"
#include "tests/helpers.h"

#define KH_MAX_PARTS 64
#define KH_MAX_KEEP  256

typedef struct kh_msg {
    char topic[256];
    int32_t partition;
    char *key, *val;
    size_t key_n, val_n;
    bool key_null; /* no key at all (not an empty one) */
    int nh;
    char *hname[16], *hval[16];
    int64_t ts_ms;
} kh_msg;

/* A consumer on its own thread, assigned every partition of some topics. */
typedef struct kh_consumer {
    rd_kafka_t *rk;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    uint64_t nseq; /* expected sequence numbers 0..nseq-1 (0: no accounting) */
    uint8_t *seen; /* times each seq was seen (saturating) */
    uint64_t unique, dups, reordered, unknown, total;
    int64_t last[KH_MAX_PARTS];
    uint64_t per_part[KH_MAX_PARTS]; /* unique records by partition */
    uint64_t null_keys;              /* messages without a key */
    char first_key[256];             /* the first message's key, cut ... */
    uint64_t other_keys;             /* ... and messages with a different key */
    kh_msg keep[KH_MAX_KEEP];
    int nkeep;
} kh_consumer;

typedef struct kh {
    rd_kafka_t *mrk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[512];
    sl_cfg *cfg;
    char cfg_name[128];
    sl_buffer *buf;
    sl_sink_ctx ctx;
    void *state;
    pthread_t th;
    bool running;
    atomic_bool stop, done;
    sl_watermark *wm;
    uint64_t pos;
    uint64_t memory_max; /* the sink's buffer; 0: 64 MiB */
} kh;

static inline void kh_quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static inline void kh_mock(kh *h, int brokers)
{
    memset(h, 0, sizeof *h);
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kh_quiet_log);
    h->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!h->mrk) {
        fprintf(stderr, "mock handle: %s\n", errstr);
        abort();
    }
    h->mc = rd_kafka_mock_cluster_new(h->mrk, brokers);
    if (!h->mc) abort();
    snprintf(h->bootstraps, sizeof h->bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(h->mc));
    h->wm = sl_watermark_new(0);
}

/* Loads the sink's configuration: `extra` is YAML indented by 4 spaces,
 * appended to the sink's map. Returns the create() result. */
static inline int kh_sink_cfg(kh *h, const char *name, const char *topic, const char *extra,
                              bool check_only, sl_err *err)
{
    char yml[8192], brokers[600] = "";
    /* Without bootstraps the caller's extra text names the brokers. */
    if (h->bootstraps[0]) snprintf(brokers, sizeof brokers, "    brokers: \"%s\"\n", h->bootstraps);
    snprintf(yml, sizeof yml,
             "sinks:\n"
             "  - name: %s\n"
             "    type: kafka\n"
             "%s"
             "    topic: \"%s\"\n"
             "%s",
             name, brokers, topic, extra ? extra : "");
    h->cfg = sl_cfg_new();
    snprintf(h->cfg_name, sizeof h->cfg_name, "%s.yml", name);
    if (sl_cfg_load_string(h->cfg, h->cfg_name, yml, strlen(yml)) != 0) {
        for (size_t i = 0; i < sl_cfg_nerrors(h->cfg); i++)
            fprintf(stderr, "config: %s\n", sl_cfg_error_at(h->cfg, i));
        return SL_EINVAL;
    }
    const sl_cfg_node *sinks = sl_cfg_get(sl_cfg_root(h->cfg), "sinks");
    sl_buffer_opts bo = {.sink = name, .memory_max = h->memory_max ? h->memory_max : 64u << 20};
    if (!check_only && sl_buffer_new(&bo, &h->buf, err) != SL_OK) return SL_ENOMEM;
    h->ctx = (sl_sink_ctx){.name = name,
                           .cfg = h->cfg,
                           .node = sinks->items[0],
                           .data_dir = "/nonexistent",
                           .check_only = check_only,
                           .buffer = h->buf,
                           .stop = &h->stop};
    int rc = sl_kafka_sink_ops.create(&h->ctx, &h->state, err);
    if (rc != SL_OK && !check_only)
        for (size_t i = 0; i < sl_cfg_nerrors(h->cfg); i++)
            fprintf(stderr, "config: %s\n", sl_cfg_error_at(h->cfg, i));
    return rc;
}

static inline void *kh_sink_thread(void *arg)
{
    kh *h = arg;
    sl_kafka_sink_ops.run(h->state);
    atomic_store(&h->done, true);
    return NULL;
}

static inline void kh_start(kh *h)
{
    pthread_create(&h->th, NULL, kh_sink_thread, h);
    h->running = true;
}

/* A batch of n records seq first..first+n-1: "seq=NNNNNNNNNN k=K <pad>",
 * with a numeric field k = seq % kmod and the static label job=app. Every
 * `big_every`-th record (when > 0) gets big_pad bytes of padding instead. */
static inline sl_batch *kh_batch_ex(kh *h, uint64_t first, uint32_t n, size_t pad, unsigned kmod,
                                    uint32_t big_every, size_t big_pad)
{
    size_t cap = 0;
    for (uint32_t i = 0; i < n; i++)
        cap += 40 + (big_every && (first + i) % big_every == 0 ? big_pad : pad);
    sl_chunk *c = sl_chunk_new(cap);
    sl_batch *b = sl_batch_new(n);
    sl_batch_add_chunk(b, c);
    sl_chunk_unref(c);
    sl_batch_set_names(b, "app", "/var/log/app.log");
    static const sl_field job = {{"job", 3}, {"app", 3}, SL_V_STRING, 0};
    sl_batch_set_labels(b, &job, 1);
    uint64_t x = first * 2654435761u + 1;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        size_t p = big_every && seq % big_every == 0 ? big_pad : pad;
        char *line = c->data + c->len;
        int len = snprintf(line, cap - c->len, "seq=%010llu k=%u ", (unsigned long long)seq,
                           kmod ? (unsigned)(seq % kmod) : 0u);
        const char *kv = line + 15; /* "seq=NNNNNNNNNN " */
        size_t kn = (size_t)len - 15 - 1 - 2;
        /* Varied printable padding: compresses like log text, not like zeros. */
        for (size_t j = 0; j < p; j++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            line[len + (int)j] = "abcdefghij klmnop=0123456789"[(x >> 33) % 28];
        }
        len += (int)p;
        c->len += (size_t)len;
        sl_record *r = sl_batch_add(b, (sl_slice){line, (size_t)len},
                                    1700000000000000000LL + (int64_t)seq * 1000, h->pos + i + 1);
        sl_record_add_field(b, r, (sl_slice){"k", 1}, (sl_slice){kv + 2, kn}, SL_V_NUMBER);
    }
    sl_watermark_issue(h->wm, h->pos, h->pos + n);
    b->ticket = (sl_ack_ticket){sl_watermark_ref(h->wm), h->pos, h->pos + n};
    h->pos += n;
    return b;
}

static inline sl_batch *kh_batch(kh *h, uint64_t first, uint32_t n, size_t pad, unsigned kmod)
{
    return kh_batch_ex(h, first, n, pad, kmod, 0, 0);
}

static inline void kh_push(kh *h, sl_batch *b)
{
    if (sl_buffer_push(h->buf, b) != SL_OK) sl_batch_unref(b);
}

/* Closes the buffer and lets the sink drain for up to timeout_ms, then tells
 * it to stop. Returns true when it drained on its own. */
static inline bool kh_finish(kh *h, int timeout_ms)
{
    bool drained = true;
    if (h->running) {
        sl_buffer_close(h->buf);
        for (int waited = 0; !atomic_load(&h->done); waited += 10) {
            if (waited >= timeout_ms) {
                drained = false;
                break;
            }
            sl_t_sleep_ms(10);
        }
        atomic_store(&h->stop, true);
        pthread_join(h->th, NULL);
        h->running = false;
    }
    return drained;
}

static inline void kh_free(kh *h)
{
    kh_finish(h, 0);
    if (h->state) sl_kafka_sink_ops.destroy(h->state);
    sl_buffer_free(h->buf);
    if (h->cfg) sl_cfg_free(h->cfg);
    if (h->wm) sl_watermark_unref(h->wm);
    if (h->mc) rd_kafka_mock_cluster_destroy(h->mc);
    if (h->mrk) rd_kafka_destroy(h->mrk);
    memset(h, 0, sizeof *h);
}

static inline int64_t kh_metric(const char *name, const char *sink, const char *reason)
{
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", sink, reason ? "reason" : NULL, reason);
    return sl_metrics_value(name, labels);
}

/* ---- consumer ----------------------------------------------------------- */

static inline int64_t kh_seq_of(const char *p, size_t n)
{
    for (size_t i = 0; i + 14 <= n; i++)
        if (memcmp(p + i, "seq=", 4) == 0) {
            int64_t v = 0;
            for (size_t j = i + 4; j < i + 14; j++) {
                if (p[j] < '0' || p[j] > '9') return -1;
                v = v * 10 + (p[j] - '0');
            }
            return v;
        }
    return -1;
}

static inline char *kh_dup(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static inline void kh_account(kh_consumer *c, const rd_kafka_message_t *m)
{
    pthread_mutex_lock(&c->mu);
    if (!m->key) {
        c->null_keys++;
    } else {
        size_t kn = m->key_len < sizeof c->first_key - 1 ? m->key_len : sizeof c->first_key - 1;
        if (c->total == 0) {
            memcpy(c->first_key, m->key, kn);
            c->first_key[kn] = '\0';
        } else if (strlen(c->first_key) != kn || memcmp(c->first_key, m->key, kn) != 0) {
            c->other_keys++;
        }
    }
    c->total++;
    if (c->nkeep < KH_MAX_KEEP) {
        kh_msg *k = &c->keep[c->nkeep++];
        snprintf(k->topic, sizeof k->topic, "%s", rd_kafka_topic_name(m->rkt));
        k->partition = m->partition;
        k->key = kh_dup(m->key, m->key_len), k->key_n = m->key_len;
        k->key_null = m->key == NULL;
        k->val = kh_dup(m->payload, m->len), k->val_n = m->len;
        k->ts_ms = rd_kafka_message_timestamp(m, NULL);
        rd_kafka_headers_t *hdrs = NULL;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char *name;
            const void *val;
            size_t vn;
            for (size_t i = 0; k->nh < 16 && !rd_kafka_header_get_all(hdrs, i, &name, &val, &vn);
                 i++) {
                k->hname[k->nh] = kh_dup(name, strlen(name));
                k->hval[k->nh++] = kh_dup(val, vn);
            }
        }
    }
    if (c->nseq) {
        int64_t seq = kh_seq_of(m->payload, m->len);
        if (seq < 0 || (uint64_t)seq >= c->nseq) {
            c->unknown++;
        } else if (c->seen[seq]) {
            c->dups++;
            if (c->seen[seq] < 255) c->seen[seq]++;
        } else {
            c->seen[seq] = 1;
            c->unique++;
            if (m->partition >= 0 && m->partition < KH_MAX_PARTS) {
                c->per_part[m->partition]++;
                if (seq < c->last[m->partition])
                    c->reordered++;
                else
                    c->last[m->partition] = seq;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static inline void kh_quiet_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)err, (void)reason, (void)opaque;
}

static inline void *kh_consumer_thread(void *arg)
{
    kh_consumer *c = arg;
    while (!atomic_load(&c->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 50);
        if (!m) continue;
        if (!m->err) kh_account(c, m);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* topics: "name:partitions,name:partitions". */
static inline kh_consumer *kh_consume(kh *h, const char *topics, uint64_t nseq)
{
    kh_consumer *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->nseq = nseq;
    if (nseq) c->seen = calloc(nseq, 1);
    for (int i = 0; i < KH_MAX_PARTS; i++) c->last[i] = -1;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", h->bootstraps, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "sluice-test", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(conf, kh_quiet_log);
    rd_kafka_conf_set_error_cb(conf, kh_quiet_error);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) abort();
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", topics);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        int parts = colon ? atoi(colon + 1) : 1;
        if (colon) *colon = '\0';
        for (int p = 0; p < parts; p++)
            rd_kafka_topic_partition_list_add(l, t, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    pthread_create(&c->th, NULL, kh_consumer_thread, c);
    return c;
}

static inline uint64_t kh_consumed(kh_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->nseq ? c->unique : c->total;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits until n records (unique when counting sequences) arrived. */
static inline bool kh_wait_consumed(kh_consumer *c, uint64_t n, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        if (kh_consumed(c) >= n) return true;
        if (waited >= timeout_ms) return false;
        sl_t_sleep_ms(10);
    }
}

static inline void kh_consumer_stop(kh_consumer *c)
{
    atomic_store(&c->stop, true);
    pthread_join(c->th, NULL);
}

static inline void kh_consumer_free(kh_consumer *c)
{
    if (!c) return;
    if (!atomic_load(&c->stop)) kh_consumer_stop(c);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    for (int i = 0; i < c->nkeep; i++) {
        free(c->keep[i].key);
        free(c->keep[i].val);
        for (int j = 0; j < c->keep[i].nh; j++) free(c->keep[i].hname[j]), free(c->keep[i].hval[j]);
    }
    free(c->seen);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Value of header `name` in m, or NULL. */
static inline const char *kh_header(const kh_msg *m, const char *name)
{
    for (int i = 0; i < m->nh; i++)
        if (strcmp(m->hname[i], name) == 0) return m->hval[i];
    return NULL;
}

#endif
