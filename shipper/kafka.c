/* The Kafka sink (`type: kafka`): the producer, its callbacks, the
 * bookkeeping of messages in flight (delivery reports, retries, the
 * acknowledgement of batches) and the hooks the shared batcher calls
 * (shipper/batcher.h). One file over 800 lines because all of these share
 * the sink's private state and run on the sink's thread, without locks;
 * its key table sits beside the ops table. Configuration is read by
 * kafka_config.c, topics, keys and headers rendered by kafka_msg.c,
 * `sluice check` warnings in kafka_check.c. */
#include "shipper/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sink_metrics.h"
#include "shipper/batcher.h"
#include "shipper/kafka_config.h"
#include "shipper/kafka_msg.h"
#include "shipper/recjson.h"

#define TOPIC_SLOTS          64
#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 5000
/* Keyless messages stay on one partition for this many messages, then move
 * to the next (docs/decisions/0018-kafka-keys-and-log-values.md): one producer
 * batch, consecutive ones on partitions led by different brokers (compressed
 * on their broker threads at once, decision 0052), and a burst touches every
 * partition. */
#define SPREAD_RUN SL_KAFKA_SPREAD_RUN

struct kafka;

/* One popped batch while its messages are in flight. */
typedef struct ktrack {
    struct kafka *s;
    sl_batch *b;
    char *owned;          /* JSON values the messages point into */
    uint32_t outstanding; /* messages without a final report, +1 while producing */
    bool aborted;         /* a message was given up (stop): release without ack */
    struct ktrack *prev, *next;
} ktrack;

/* A message whose delivery failed with a retriable error, to produce again. */
typedef struct kretry {
    ktrack *t;
    char topic[SL_KAFKA_TOPIC_MAX + 1];
    char *key;
    size_t key_n;
    const void *val; /* in the batch's chunks or t->owned */
    size_t val_n;
    rd_kafka_headers_t *hdrs;
    int64_t ts_ms;
    struct kretry *next;
} kretry;

typedef struct topic_slot {
    char name[SL_KAFKA_TOPIC_MAX + 1];
    rd_kafka_topic_t *rkt;
} topic_slot;

typedef struct kafka {
    const sl_sink_ctx *ctx;
    rd_kafka_t *rk;
    sl_kafka_conf conf;
    sl_kafka_msg msg;
    atomic_uint spread_seq;  /* keyless messages partitioned so far (any thread) */
    unsigned spread_start;   /* where this agent's rotation starts */
    atomic_ullong spread_at; /* last choice: run << 32 | topic tag << 16 | partition + 1 */
    /* The topic is literal text: it never depends on a record, so nothing
     * queues behind a refusal of it (decision 0071). */
    bool fixed_topic;
    topic_slot topics[TOPIC_SLOTS];
    /* Every distinct topic the producer was given: librdkafka keeps each
     * topic (metadata, partitions, their queues: ~9.5 KiB measured) until
     * the producer is destroyed, whatever rd_kafka_topic_destroy says, so
     * this set, at most conf.max_topics names, is what bounds it (decision
     * 0068). Open addressing, cap a power of two over twice the bound. */
    char **known;
    size_t nknown, cap_known;

    ktrack *tracks; /* in-flight batches */
    size_t ntracks;
    kretry *retry_head, *retry_tail;
    size_t nretry;
    int64_t retry_at_ns;
    int backoff_ms;
    bool stopping; /* failed reports mean "given up", not "retry" */
    bool fatal;    /* librdkafka raised a fatal error: recreate the producer */
    /* Delivered since the last poll: the metrics are updated once per poll,
     * not per message (a clock read and three atomics per record were ~10 %
     * of the sink thread). */
    uint64_t dr_records, dr_bytes;

    sl_buf json;
    size_t *offs;
    size_t cap_offs;

    sl_batcher *batcher;
    const sl_sink_metrics *m;
    sl_sink_metrics own_m; /* created outside a pipeline */
    sl_metric *queue_full;
    sl_ratelimit rl_drop, rl_fail, rl_err, rl_log, rl_topics;
} kafka;

/* ---- configuration -------------------------------------------------- */

static const sl_cfg_key kafka_keys[] = {
    SL_SINK_COMMON_KEYS,
    {.name = "brokers",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "`host:port` list (no `user:password@`: use the `sasl_*` keys)"},
    {.name = "topic",
     .type = SL_KEY_STR,
     .required = true,
     .doc = "template: `logs-${labels.job}`, `${fields.x}`, `${input}`, `${source}`"},
    {.name = "key",
     .type = SL_KEY_STR,
     .doc = "template, e.g. `${labels}` (the stream's label set); no key when absent (see Keys and "
            "partitions)"},
    {.name = "value",
     .at = SL_CFG_AT(sl_kafka_keys_read, value),
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` bytes as read, or the record as `json`"},
    {.name = "headers",
     .at = SL_CFG_AT(sl_kafka_keys_read, headers),
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "labels as Kafka headers"},
    {.name = "compression",
     .at = SL_CFG_AT(sl_kafka_keys_read, compression),
     .type = SL_KEY_ENUM,
     .choices = "zstd|lz4|snappy|gzip|none",
     .def = "zstd",
     .doc = "`zstd`, `lz4`, `snappy`, `gzip`, `none`"},
    {.name = "compression_level",
     .at = SL_CFG_AT(sl_kafka_keys_read, compression_level),
     .type = SL_KEY_INT,
     .min = -1,
     .max = 12,
     .doc = "`-1`: the codec's default; when absent, 1 for zstd and the codec's default "
            "otherwise; higher costs CPU on every node"},
    {.name = "acks",
     .at = SL_CFG_AT(sl_kafka_keys_read, acks),
     .type = SL_KEY_ENUM,
     .choices = "all|1|0",
     .def = "all",
     .doc = "broker acknowledgements: `all`, `1`, `0`"},
    {.name = "idempotence",
     .at = SL_CFG_AT(sl_kafka_keys_read, idempotence),
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "the idempotent producer (needs `acks: all`)"},
    {.name = "linger_ms",
     .at = SL_CFG_AT(sl_kafka_keys_read, linger_ms),
     .type = SL_KEY_INT,
     .def = "20",
     .min = 0,
     .max = 900000,
     .doc = "producer batching: how long a message waits for others"},
    {.name = "batch_bytes",
     .at = SL_CFG_AT(sl_kafka_keys_read, batch_bytes),
     .type = SL_KEY_SIZE,
     .doc = "producer batching: largest batch (below 2GiB); librdkafka's default when absent"},
    {.name = "security_protocol",
     .at = SL_CFG_AT(sl_kafka_keys_read, security_protocol),
     .type = SL_KEY_ENUM,
     .choices = "plaintext|ssl|sasl_plaintext|sasl_ssl",
     .doc = "`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`; when absent, `sasl_*` keys mean "
            "SASL and `tls_*` keys mean TLS"},
    {.name = "sasl_mechanism",
     .at = SL_CFG_AT(sl_kafka_keys_read, sasl_mechanism),
     .type = SL_KEY_ENUM,
     .choices = "plain|scram-sha-256|scram-sha-512",
     .def = "plain",
     .doc = "`plain`, `scram-sha-256`, `scram-sha-512`"},
    {.name = "sasl_username",
     .at = SL_CFG_AT(sl_kafka_keys_read, sasl_username),
     .type = SL_KEY_STR,
     .doc = "SASL user (or `SLUICE_KAFKA_SASL_USERNAME`)"},
    {.name = "sasl_password",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "SASL password (or `SLUICE_KAFKA_SASL_PASSWORD`; prefer `sasl_password_file`)"},
    {.name = "sasl_password_file",
     .type = SL_KEY_STR,
     .doc = "file holding the SASL password (systemd credential, Kubernetes secret)"},
    {.name = "tls_ca_file",
     .at = SL_CFG_AT(sl_kafka_keys_read, tls_ca_file),
     .type = SL_KEY_STR,
     .doc = "PEM CA to verify the brokers"},
    {.name = "tls_cert_file",
     .at = SL_CFG_AT(sl_kafka_keys_read, tls_cert_file),
     .type = SL_KEY_STR,
     .doc = "PEM client certificate"},
    {.name = "tls_key_file",
     .at = SL_CFG_AT(sl_kafka_keys_read, tls_key_file),
     .type = SL_KEY_STR,
     .doc = "PEM client key"},
    {.name = "tls_key_password_file",
     .type = SL_KEY_STR,
     .doc = "file holding the password of an encrypted `tls_key_file` (or "
            "`SLUICE_KAFKA_TLS_KEY_PASSWORD`)"},
    {.name = "max_topics",
     .at = SL_CFG_AT(sl_kafka_keys_read, max_topics),
     .type = SL_KEY_INT,
     .def = "1000",
     .min = 1,
     .max = 100000,
     .doc = "distinct topics a templated `topic` may reach; librdkafka keeps ~10 KiB per topic "
            "until the agent stops, so records for a further topic are dropped (reason "
            "`topic_limit`)"},
    {.name = "librdkafka",
     .type = SL_KEY_MAP,
     .doc = "any other librdkafka property; unless given here, sluice sets "
            "`queue.buffering.max.kbytes` (bounds what is in flight: 1024 without a `key`, 4096 "
            "with one) and, without a `partitioner` here, `sticky.partitioning.linger.ms: 0` and "
            "(without a `key`) `batch.num.messages: 250`"},
};

/* ---- metrics and logging --------------------------------------------- */

/* The topic a dropped record was for, in its log line: at most 64 bytes
 * (the rendering of a hostile value may be up to 249, or cut). */
#define DROP_TOPIC_LOGGED 64

static void count_drop(kafka *s, const char *reason, rd_kafka_resp_err_t err, const char *topic,
                       size_t topic_n, uint64_t n)
{
    sl_sink_metrics_dropped(s->m, reason, n);
    uint64_t skipped;
    if (!sl_ratelimit_ok(&s->rl_drop, &skipped)) return;
    char t[DROP_TOPIC_LOGGED + 4];
    size_t tn = topic_n > DROP_TOPIC_LOGGED ? DROP_TOPIC_LOGGED : topic_n;
    if (topic) memcpy(t, topic, tn);
    snprintf(t + tn, sizeof t - tn, "%s", topic_n > tn ? "..." : "");
    sl_log(SL_LOG_ERROR, "kafka_record_dropped",
           "sink=%s reason=%s error=%s topic=%s repeated=%llu", s->ctx->name, reason,
           err ? rd_kafka_err2name(err) : "none", topic ? t : "", (unsigned long long)skipped);
}

/* Errors that can never succeed for this record, whatever we retry: the
 * record is dropped with this reason. Everything else (timeouts, leader
 * moves, brokers down, cluster authorization, broker config) is retried
 * forever. A topic the cluster refuses to let us write
 * (TOPIC_AUTHORIZATION_FAILED) is dropped only when a template chose it:
 * retried, it would hold every other topic's records behind it; a fixed
 * topic holds nothing else back, and its ACL is the operator's to fix
 * (decision 0071). */
static const char *permanent_reason(const kafka *s, rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        return "message_too_large";
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return "unknown_topic";
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return "invalid_topic";
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return s->fixed_topic ? NULL : "topic_authorization";
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return "invalid_record";
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        return "invalid_timestamp";
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return "policy_violation";
    default:
        return NULL;
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kafka *s = rd_kafka_opaque(rk);
    uint64_t skipped;
    if (level > 6 || !sl_ratelimit_ok(&s->rl_log, &skipped)) return;
    /* Errors that matter reach on_error as well; librdkafka's own lines
     * (connection refused, ...) are context, so at most a warning. */
    sl_log(level <= 4 ? SL_LOG_WARN : SL_LOG_INFO, "kafka_log",
           "sink=%s facility=%s message=%s repeated=%llu", s->ctx->name, fac, buf,
           (unsigned long long)skipped);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    kafka *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) s->fatal = true;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sl_sink_metrics_set_failing(s->m, true);
    sl_sink_metrics_error(s->m);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_err, &skipped)) {
        sl_log(err == RD_KAFKA_RESP_ERR__FATAL ? SL_LOG_ERROR : SL_LOG_WARN, "kafka_error",
               "sink=%s error=%s reason=%s repeated=%llu", s->ctx->name,
               rd_kafka_err2name((rd_kafka_resp_err_t)err), reason, (unsigned long long)skipped);
    }
}

/* ---- in-flight bookkeeping ------------------------------------------- */

static ktrack *track_new(kafka *s, sl_batch *b)
{
    ktrack *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->s = s;
    t->b = b;
    t->outstanding = 1; /* the producing hold: no completion before all are queued */
    t->next = s->tracks;
    if (s->tracks) s->tracks->prev = t;
    s->tracks = t;
    s->ntracks++;
    return t;
}

static void track_finish(kafka *s, ktrack *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->tracks = t->next;
    if (t->next) t->next->prev = t->prev;
    s->ntracks--;
    /* A batch with any message given up is released unacknowledged: the
     * checkpoint stays before it and it is read again after a restart.
     * Stopping, it goes back to the buffer instead, which spools it when
     * there is a spool (and otherwise releases it the same way). */
    if (t->aborted && s->stopping && s->ctx->buffer && s->batcher)
        sl_batcher_give_back(s->batcher, &t->b, 1);
    else if (t->aborted)
        sl_batch_unref(t->b);
    else
        sl_batch_done(t->b);
    free(t->owned);
    free(t);
}

static void track_release(kafka *s, ktrack *t)
{
    if (--t->outstanding == 0) track_finish(s, t);
}

static void retry_push(kafka *s, kretry *r)
{
    r->next = NULL;
    if (s->retry_tail)
        s->retry_tail->next = r;
    else
        s->retry_head = r;
    s->retry_tail = r;
    s->nretry++;
}

static void retry_free(kretry *r)
{
    free(r->key);
    if (r->hdrs) rd_kafka_headers_destroy(r->hdrs);
    free(r);
}

static void schedule_retry(kafka *s)
{
    s->retry_at_ns = sl_monotonic_ns() + (int64_t)s->backoff_ms * 1000000;
    s->backoff_ms =
        s->backoff_ms * 2 > RETRY_BACKOFF_MAX_MS ? RETRY_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Keeps a failed message for producing again. Returns false when it could
 * not be kept (out of memory): the caller gives it up. */
static bool keep_for_retry(kafka *s, ktrack *t, const char *topic, const void *key, size_t key_n,
                           const void *val, size_t val_n, rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    kretry *r = calloc(1, sizeof *r);
    if (!r) return false;
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    if (key_n) {
        r->key = malloc(key_n);
        if (!r->key) {
            free(r);
            return false;
        }
        memcpy(r->key, key, key_n);
    }
    r->t = t;
    r->key_n = key_n;
    r->val = val;
    r->val_n = val_n;
    r->hdrs = hdrs;
    r->ts_ms = ts_ms;
    retry_push(s, r);
    return true;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka *s = opaque;
    ktrack *t = m->_private;
    if (!m->err) {
        s->dr_records++;
        s->dr_bytes += m->len + m->key_len;
        s->backoff_ms = RETRY_BACKOFF_MIN_MS;
        track_release(s, t);
        return;
    }
    if (s->stopping) { /* purged on purpose: not a failure of the destination */
        t->aborted = true;
        track_release(s, t);
        return;
    }
    sl_sink_metrics_error(s->m);
    const char *reason = permanent_reason(s, m->err);
    if (reason) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        count_drop(s, reason, m->err, topic, strlen(topic), 1);
        track_release(s, t);
        return;
    }
    /* librdkafka already retried (idempotently) until message.timeout.ms:
     * the destination is failing. Produce the message again after a backoff
     * rather than drop it. */
    sl_sink_metrics_set_failing(s->m, true);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_fail, &skipped))
        sl_log(SL_LOG_WARN, "kafka_delivery_failed", "sink=%s error=%s retry=true repeated=%llu",
               s->ctx->name, rd_kafka_err2name(m->err), (unsigned long long)skipped);
    rd_kafka_headers_t *h = NULL, *copy = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        copy = rd_kafka_headers_copy(h);
    if (!keep_for_retry(s, t, rd_kafka_topic_name(m->rkt), m->key, m->key_len, m->payload, m->len,
                        copy, rd_kafka_message_timestamp(m, NULL))) {
        if (copy) rd_kafka_headers_destroy(copy);
        t->aborted = true;
        track_release(s, t);
        return;
    }
    if (!s->retry_at_ns || s->nretry == 1) schedule_retry(s);
}

/* Serves librdkafka's callbacks (delivery reports, errors, logs) for up to
 * timeout_ms, then publishes what was delivered. Every poll of the sink goes
 * through here. */
static void serve(kafka *s, int timeout_ms)
{
    rd_kafka_poll(s->rk, timeout_ms);
    if (!s->dr_records) return;
    sl_sink_metrics_delivered(s->m, s->dr_records, s->dr_bytes);
    sl_sink_metrics_set_failing(s->m, false);
    s->dr_records = s->dr_bytes = 0;
}

/* ---- the producer ----------------------------------------------------- */

/* Keyed messages: librdkafka's default (CRC32 of the key, so one key stays on
 * one partition). Keyless ones: SPREAD_RUN in a row on one partition, then
 * the next available one. librdkafka's own sticky partitioner switches on
 * time only (sticky.partitioning.linger.ms), so a burst read from a file in
 * 200 ms lands on a handful of partitions; counting messages spreads any
 * burst evenly and still fills the broker's batches. Called on the sink's
 * thread and on librdkafka's (messages queued before the topic's metadata
 * came), hence the atomic. */
static int32_t spread_partition(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    if (key)
        return rd_kafka_msg_partitioner_consistent_random(rkt, key, keylen, partition_cnt,
                                                          rkt_opaque, msg_opaque);
    kafka *s = rkt_opaque;
    unsigned n = atomic_fetch_add_explicit(&s->spread_seq, 1, memory_order_relaxed);
    unsigned run = n / SPREAD_RUN;
    /* The partition is checked once per run (and topic, by a tag of its
     * handle): asking librdkafka whether a partition is available takes a
     * reference and its locks, per message. A partition that loses its
     * leader within a run holds that run's remaining messages until it has
     * one again (not lost); the next run is checked afresh. */
    unsigned long long tag = ((uintptr_t)rkt >> 4) & 0xffffu;
    unsigned long long at = atomic_load_explicit(&s->spread_at, memory_order_relaxed);
    int32_t cached = (int32_t)(at & 0xffffu) - 1;
    if (at >> 32 == run && (at >> 16 & 0xffffu) == tag && cached >= 0 && cached < partition_cnt)
        return cached;
    int32_t first = (int32_t)((s->spread_start + run) % (unsigned)partition_cnt), p = first;
    /* A partition without a leader would hold its messages until it has one. */
    for (int32_t i = 0; i < partition_cnt && !rd_kafka_topic_partition_available(rkt, p); i++)
        p = (p + 1) % partition_cnt;
    /* Only the run's own partition is kept: one passed over (no leader yet,
     * e.g. right after the first metadata) is asked again per message, so
     * the run moves back as soon as its partition has a leader and a
     * startup does not pile several runs onto one partition. */
    if (p == first && p < 0xffff)
        atomic_store_explicit(&s->spread_at,
                              (unsigned long long)run << 32 | tag << 16 | (unsigned)(p + 1),
                              memory_order_relaxed);
    return p;
}

static rd_kafka_conf_t *build_conf(kafka *s, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&s->conf, errstr, errlen);
    if (!conf) return NULL;
    rd_kafka_conf_set_opaque(conf, s);
    if (s->conf.own_partitioner) {
        rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
        rd_kafka_topic_conf_set_partitioner_cb(tc, spread_partition);
        rd_kafka_topic_conf_set_opaque(tc, s);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
}

static int producer_new(kafka *s, sl_err *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = build_conf(s, errstr, sizeof errstr);
    if (!conf) return sl_errf(err, SL_EINVAL, "sink %s: librdkafka: %s", s->ctx->name, errstr);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        return sl_errf(err, SL_EINVAL, "sink %s: librdkafka: %s", s->ctx->name, errstr);
    }
    /* Logs arrive through rd_kafka_poll on the sink's thread, like every
     * other callback, so nothing here needs locking. */
    rd_kafka_set_log_queue(s->rk, NULL);
    return SL_OK;
}

/* With the producer: librdkafka frees its topics only then. */
static void topics_clear(kafka *s)
{
    for (int i = 0; i < TOPIC_SLOTS; i++) {
        if (s->topics[i].rkt) rd_kafka_topic_destroy(s->topics[i].rkt);
        s->topics[i].rkt = NULL;
        s->topics[i].name[0] = '\0';
    }
    for (size_t i = 0; i < s->cap_known; i++) {
        free(s->known[i]);
        s->known[i] = NULL;
    }
    s->nknown = 0;
}

static uint32_t topic_hash(const char *name, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

/* The slot of name in the set of known topics: where it is (*found) or
 * where it would go. NULL when the set could not be allocated. */
static char **known_slot(kafka *s, const char *name, size_t n, uint32_t h, bool *found)
{
    if (!s->known) {
        size_t cap = 16;
        while (cap < 2 * s->conf.max_topics) cap *= 2;
        s->known = calloc(cap, sizeof *s->known);
        if (!s->known) return NULL;
        s->cap_known = cap;
    }
    size_t i = h & (s->cap_known - 1);
    for (; s->known[i]; i = (i + 1) & (s->cap_known - 1))
        if (strncmp(s->known[i], name, n) == 0 && s->known[i][n] == '\0') break;
    *found = s->known[i] != NULL;
    return &s->known[i];
}

enum { TOPIC_OK, TOPIC_OVER, TOPIC_REFUSED, TOPIC_NOMEM };

/* The producer's handle for a topic (*out): one it already knows, or a new
 * one while fewer than max_topics are known (remembered then).
 * TOPIC_OVER past max_topics; TOPIC_REFUSED when librdkafka refuses it
 * (rd_kafka_topic_new: a name it will not take, a topic configuration it
 * finds incompatible; not remembered: librdkafka keeps nothing of it);
 * TOPIC_NOMEM out of memory. */
static int topic_handle(kafka *s, const char *name, size_t n, rd_kafka_topic_t **out)
{
    uint32_t h = topic_hash(name, n);
    topic_slot *slot = &s->topics[h % TOPIC_SLOTS];
    if (slot->rkt && strncmp(slot->name, name, n) == 0 && slot->name[n] == '\0') {
        *out = slot->rkt;
        return TOPIC_OK;
    }
    bool found = false;
    char **at = known_slot(s, name, n, h, &found);
    if (!at) return TOPIC_NOMEM;
    if (!found && s->nknown >= s->conf.max_topics) return TOPIC_OVER;
    char *copy = found ? NULL : malloc(n + 1);
    if (!found && !copy) return TOPIC_NOMEM;
    char cname[SL_KAFKA_TOPIC_MAX + 1];
    size_t cn = n > SL_KAFKA_TOPIC_MAX ? SL_KAFKA_TOPIC_MAX : n;
    memcpy(cname, name, cn);
    cname[cn] = '\0';
    rd_kafka_topic_t *rkt = cn == n ? rd_kafka_topic_new(s->rk, cname, NULL) : NULL;
    if (!rkt) {
        free(copy);
        return TOPIC_REFUSED;
    }
    if (copy) {
        memcpy(copy, name, n);
        copy[n] = '\0';
        *at = copy;
        s->nknown++;
    }
    if (slot->rkt) rd_kafka_topic_destroy(slot->rkt);
    memcpy(slot->name, cname, cn + 1);
    slot->rkt = rkt;
    *out = rkt;
    return TOPIC_OK;
}

enum { PRODUCED, DROPPED, KEPT, GIVEN_UP };

/* Produces one message; a full local queue is backpressure: serve delivery
 * reports and try again until there is room or the sink must stop. */
static int produce_one(kafka *s, ktrack *t, const char *topic, size_t topic_n, const void *key,
                       size_t key_n, const void *val, size_t val_n, rd_kafka_headers_t *hdrs,
                       int64_t ts_ms)
{
    for (;;) {
        rd_kafka_topic_t *rkt = NULL;
        int th = topic_handle(s, topic, topic_n, &rkt);
        if (th == TOPIC_OVER) {
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            sl_sink_metrics_dropped(s->m, "topic_limit", 1);
            uint64_t skipped;
            if (sl_ratelimit_ok(&s->rl_topics, &skipped))
                sl_log(SL_LOG_ERROR, "kafka_topic_limit",
                       "sink=%s max_topics=%zu action=drop reason=topic_limit repeated=%llu",
                       s->ctx->name, s->conf.max_topics, (unsigned long long)skipped);
            return DROPPED;
        }
        if (th == TOPIC_REFUSED) {
            /* Retrying could not change librdkafka's answer: without this
             * the record was produced again forever, and every batch after
             * it waited (decision 0071). */
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            count_drop(s, "invalid_topic", RD_KAFKA_RESP_ERR__INVALID_ARG, topic, topic_n, 1);
            return DROPPED;
        }
        /* Out of memory for the topic (TOPIC_NOMEM): kept and tried again
         * after the backoff, as any failure that may pass. */
        rd_kafka_resp_err_t e =
            th == TOPIC_OK ? rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(rkt),
                                               RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                                               RD_KAFKA_V_VALUE((void *)(uintptr_t)val, val_n),
                                               RD_KAFKA_V_KEY(key, key_n), RD_KAFKA_V_HEADERS(hdrs),
                                               RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE(t),
                                               RD_KAFKA_V_END)
                           : RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            t->outstanding++;
            return PRODUCED;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            sl_metric_inc(s->queue_full);
            serve(s, 10);
            if (atomic_load(s->ctx->stop)) break;
            continue;
        }
        const char *reason = permanent_reason(s, e);
        if (reason) {
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            count_drop(s, reason, e, topic, topic_n, 1);
            return DROPPED;
        }
        if (e == RD_KAFKA_RESP_ERR__FATAL) s->fatal = true;
        sl_sink_metrics_error(s->m);
        uint64_t skipped;
        if (sl_ratelimit_ok(&s->rl_fail, &skipped))
            sl_log(SL_LOG_WARN, "kafka_produce_failed", "sink=%s error=%s retry=true repeated=%llu",
                   s->ctx->name, rd_kafka_err2name(e), (unsigned long long)skipped);
        char name[SL_KAFKA_TOPIC_MAX + 1];
        memcpy(name, topic, topic_n);
        name[topic_n] = '\0';
        if (keep_for_retry(s, t, name, key, key_n, val, val_n, hdrs, ts_ms)) {
            t->outstanding++;
            if (!s->retry_at_ns || s->nretry == 1) schedule_retry(s);
            return KEPT;
        }
        break;
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    t->aborted = true;
    return GIVEN_UP;
}

/* JSON values of the whole batch in one buffer the tracker owns, so the
 * messages can point into it without a copy per message. */
static int encode_json(kafka *s, ktrack *t, const sl_batch *b)
{
    if (s->cap_offs < (size_t)b->nrecords + 1) {
        size_t *o = realloc(s->offs, ((size_t)b->nrecords + 1) * sizeof *o);
        if (!o) return SL_ENOMEM;
        s->offs = o;
        s->cap_offs = (size_t)b->nrecords + 1;
    }
    sl_buf_init(&s->json, 0);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        s->offs[i] = s->json.len;
        if (!(b->records[i].flags & SL_RF_DROPPED))
            sl_recjson_append(&s->json, b, &b->records[i], SL_RJ_ALL);
    }
    s->offs[b->nrecords] = s->json.len;
    if (s->json.failed) {
        sl_buf_free(&s->json);
        return SL_ENOMEM;
    }
    t->owned = s->json.p; /* ownership moves to the tracker */
    s->json.p = NULL;
    return SL_OK;
}

static void send_batch(kafka *s, sl_batch *b)
{
    ktrack *t = track_new(s, b);
    if (!t) {
        sl_log(SL_LOG_ERROR, "kafka_out_of_memory", "sink=%s records=%u", s->ctx->name,
               b->nrecords);
        sl_batch_unref(b);
        return;
    }
    if (s->conf.json_value && encode_json(s, t, b) != SL_OK) {
        sl_log(SL_LOG_ERROR, "kafka_encode_failed", "sink=%s records=%u", s->ctx->name,
               b->nrecords);
        t->aborted = true;
        track_release(s, t);
        return;
    }
    sl_kafka_msg *m = &s->msg;
    sl_kafka_msg_batch(m, b);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (m->headers && i + SL_RECORD_PREFETCH_AHEAD < b->nrecords)
            sl_record_prefetch_fields(&b->records[i + SL_RECORD_PREFETCH_AHEAD]);
        if (r->flags & SL_RF_DROPPED) continue;
        if (!sl_kafka_msg_topic(m, r)) {
            count_drop(s, "invalid_topic", RD_KAFKA_RESP_ERR_NO_ERROR, m->topic, m->topic_n, 1);
            continue;
        }
        /* No key: a null key (not an empty one), which spread_partition (or
         * the operator's partitioner) spreads over every partition. */
        bool keyed = sl_kafka_msg_key(m, r);
        const void *val = r->line.p;
        size_t val_n = r->line.n;
        if (s->conf.json_value) {
            val = t->owned + s->offs[i];
            val_n = s->offs[i + 1] - s->offs[i];
        }
        rd_kafka_headers_t *h = sl_kafka_msg_headers(m, r);
        int64_t ts_ms = r->time_ns > 0 ? r->time_ns / 1000000 : 0;
        if (produce_one(s, t, m->topic, m->topic_n, keyed ? m->key : NULL, keyed ? m->key_n : 0,
                        val, val_n, h, ts_ms) == GIVEN_UP)
            break;
        /* Serving reports as we go keeps librdkafka's queue from filling up
         * with finished messages. */
        if ((i & 1023) == 1023) serve(s, 0);
    }
    sl_kafka_msg_batch_end(m);
    track_release(s, t);
}

/* Produces kept messages again, in order. Stops at the first that cannot be
 * queued; the rest wait for the next attempt. */
static void retry_kept(kafka *s)
{
    s->retry_at_ns = 0;
    while (s->retry_head && !atomic_load(s->ctx->stop) && !s->fatal) {
        kretry *r = s->retry_head;
        s->retry_head = r->next;
        if (!s->retry_head) s->retry_tail = NULL;
        s->nretry--;
        ktrack *t = r->t;
        rd_kafka_headers_t *h = r->hdrs;
        r->hdrs = NULL;
        sl_sink_metrics_retried(s->m);
        int rc = produce_one(s, t, r->topic, strlen(r->topic), r->key, r->key_n, r->val, r->val_n,
                             h, r->ts_ms);
        retry_free(r);
        /* The new message (if any) holds its own share of t->outstanding;
         * release the share of the entry it replaces. */
        track_release(s, t);
        if (rc == KEPT || rc == GIVEN_UP) break;
    }
}

/* Gives up every message still in flight: purged messages report back as
 * failed and their batches are released without acknowledgement. */
static void abort_all(kafka *s)
{
    s->stopping = true;
    while (s->retry_head) {
        kretry *r = s->retry_head;
        s->retry_head = r->next;
        r->t->aborted = true;
        track_release(s, r->t);
        retry_free(r);
    }
    s->retry_tail = NULL;
    s->nretry = 0;
    if (s->rk) {
        /* Bounded: the agent's shutdown has shutdown_timeout + 1 s in all.
         * The sink already flushed (polled) until the deadline; purged
         * messages report back on the next polls, and destroy neither
         * flushes nor waits for an unreachable broker. */
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 20 && s->ntracks; i++) serve(s, 10);
        topics_clear(s);
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
    }
    /* Messages whose reports never came: librdkafka is gone, so their
     * memory is no longer referenced. */
    while (s->tracks) {
        s->tracks->aborted = true;
        s->tracks->outstanding = 1;
        track_release(s, s->tracks);
    }
}

/* After a fatal error (idempotence state lost) the producer is unusable:
 * purge it so every queued message comes back as retriable, then start a
 * new one and produce them again. */
static void recreate(kafka *s)
{
    char why[512];
    rd_kafka_fatal_error(s->rk, why, sizeof why);
    sl_log(SL_LOG_ERROR, "kafka_producer_restart", "sink=%s reason=%s", s->ctx->name, why);
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(s->rk, 5000);
    topics_clear(s);
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
    s->fatal = false;
    sl_err err;
    while (producer_new(s, &err) != SL_OK) {
        sl_log(SL_LOG_ERROR, "kafka_producer_failed", "sink=%s error=%s", s->ctx->name, err.msg);
        if (atomic_load(s->ctx->stop)) return;
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    s->retry_at_ns = sl_monotonic_ns();
}

/* ---- the batcher's hooks (shipper/batcher.h, decision 0027) ---------- */

/* Produces the batches; each is acknowledged by the delivery reports of its
 * messages (track_finish), so the batcher leaves them to the sink. Popped
 * after a stop (or without a producer, which only a stop leaves): given
 * back untouched. */
static int kafka_flush(void *state, sl_batch *const *b, uint32_t n, uint32_t *ndone,
                       int64_t *retry_ms)
{
    kafka *s = state;
    (void)retry_ms;
    *ndone = 0;
    if (!s->rk || atomic_load(s->ctx->stop)) return SL_FLUSH_STOPPED;
    for (uint32_t i = 0; i < n; i++) send_batch(s, b[i]);
    *ndone = n;
    return SL_FLUSH_TAKEN;
}

/* Before each pop: restarts a producer a fatal error left unusable, serves
 * delivery reports, and produces the kept messages again once their backoff
 * is over. While messages are kept no new batch is produced, so order is
 * kept and the buffer applies backpressure: this waits here until they are
 * through (or the sink must stop). */
static int64_t kafka_settle(void *state)
{
    kafka *s = state;
    while (!atomic_load(s->ctx->stop)) {
        if (s->fatal) recreate(s);
        if (!s->rk) break;
        serve(s, 0);
        if (s->retry_head && sl_monotonic_ns() >= s->retry_at_ns) retry_kept(s);
        if (!s->retry_head) break;
        serve(s, 20);
    }
    /* Reports are served between pops: soon while messages are in flight. */
    return s->ntracks ? 5 : 100;
}

/* The loop ended: closed and drained, the sink waits for the reports of what
 * is still in flight (retrying as before); told to stop, it purges and gives
 * the batches back (decision 0017). */
static void kafka_stopped(void *state)
{
    kafka *s = state;
    while (!atomic_load(s->ctx->stop) && s->ntracks) {
        kafka_settle(s);
        if (!s->rk) break;
        if (s->ntracks) serve(s, 20);
    }
    if (s->ntracks || s->nretry) {
        sl_log(SL_LOG_WARN, "kafka_stop_undelivered", "sink=%s batches=%zu", s->ctx->name,
               s->ntracks);
        abort_all(s);
    }
}

static int kafka_run(void *state)
{
    kafka *s = state;
    return sl_batcher_run(s->batcher);
}

/* ---- creation ----------------------------------------------------------- */

static void kafka_destroy(void *state)
{
    kafka *s = state;
    if (!s) return;
    abort_all(s);
    sl_kafka_msg_batch_end(&s->msg);
    sl_kafka_conf_free(&s->conf);
    sl_batcher_free(s->batcher);
    free(s->known);
    free(s->offs);
    free(s);
}

static int kafka_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    kafka *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    s->ctx = ctx;
    int rc =
        sl_kafka_conf_read(ctx, kafka_keys, sizeof kafka_keys / sizeof *kafka_keys, &s->conf, err);
    if (rc != SL_OK || ctx->check_only) {
        kafka_destroy(s);
        return rc;
    }
    s->msg.topic_tpl = s->conf.topic;
    s->msg.key_tpl = s->conf.key;
    s->msg.headers = s->conf.headers;
    s->fixed_topic = sl_tpl_uses(s->conf.topic) == 0;
    s->spread_start = (unsigned)(sl_monotonic_ns() / 1000);

    s->m = sl_sink_metrics_of(
        ctx, SL_SINK_M_RETRIES | SL_SINK_M_ERRORS | SL_SINK_M_FAILING | SL_SINK_M_LAST_SUCCESS,
        &s->own_m);
    s->queue_full = sl_counter("sluice_kafka_queue_full_total",
                               "Produce attempts that found librdkafka's queue full "
                               "(backpressure).",
                               s->m->labels);
    s->rl_drop.interval_ns = s->rl_fail.interval_ns = s->rl_err.interval_ns = 10 * 1000000000LL;
    s->rl_log.interval_ns = 1000000000LL;
    s->rl_topics.interval_ns = 60 * 1000000000LL;
    s->backoff_ms = RETRY_BACKOFF_MIN_MS;
    /* One batch per flush as it is popped: librdkafka batches the messages
     * (linger_ms, batch_bytes). The batcher's backoff is unused (flush
     * never asks for a retry: failed messages are kept and produced again
     * here, after the sink's own backoff). */
    sl_batcher_opts bo = {.max_bytes = 0,
                          .max_wait_ms = 0,
                          .min_backoff_ms = RETRY_BACKOFF_MIN_MS,
                          .max_backoff_ms = RETRY_BACKOFF_MAX_MS,
                          .sink = s,
                          .flush = kafka_flush,
                          .settle = kafka_settle,
                          .stopped = kafka_stopped};
    rc = sl_batcher_new(ctx, &bo, &s->batcher, err);
    if (rc == SL_OK) rc = producer_new(s, err);
    if (rc != SL_OK) {
        kafka_destroy(s);
        return rc;
    }
    *state = s;
    return SL_OK;
}

/* Metadata from the brokers: for the topic when it is fixed, the cluster
 * only when it is a per-record template (kafka_check.c). */
static int kafka_probe(const sl_sink_ctx *ctx, sl_err *result)
{
    return sl_kafka_probe(ctx, kafka_keys, SL_CFG_NKEYS(kafka_keys), result);
}

const sl_sink_ops sl_kafka_sink_ops = {.type = "kafka",
                                       .create = kafka_create,
                                       .run = kafka_run,
                                       .destroy = kafka_destroy,
                                       .probe = kafka_probe,
                                       .check_inputs = sl_kafka_check_key,
                                       .keys = kafka_keys,
                                       .nkeys = SL_CFG_NKEYS(kafka_keys)};
