/* The Kafka input: a consumer in a consumer group, for the aggregation tier
 * (node agents -> Kafka -> sluice -> Loki). Each partition is a source with
 * its own acknowledgement watermark over message offsets, exactly as a file
 * is over byte offsets: an offset is committed only once every sink took
 * every record below it (delivered, or written to a spool). So a kill -9
 * re-reads what was in flight and nothing else, and a rebalance waits a
 * bounded time for the revoked partitions' acknowledgements, commits, and
 * only then lets them go.
 *
 * Threads: everything here runs on the input's thread, librdkafka's
 * callbacks included (they are served from rd_kafka_consumer_poll); the
 * sinks only touch the watermarks, which are thread-safe. The lag thread
 * asks the brokers for the high watermarks, since the input's thread
 * waits in emit while a sink's buffer is full (an outage), which is when
 * the lag matters; it reads the partition table under `mu`, which the
 * input's thread takes to change an entry's ownership or offsets.
 *
 * One file of ~1,400 lines: the partition table, the open batch and the
 * watermarks are changed together by the read path, the commits and the
 * rebalance callback; split, that state would need a header of its own
 * for no other user. The record-JSON decoder, which has no such ties, is
 * collector/kafka_record.c. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/chunk.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "core/utf8.h"
#include "collector/kafka_record.h"
#include "collector/kafka_zstd.h"

#define MAX_BROKERS 32
#define MAX_TOPICS  64
#define MAX_PROPS   64
#define MAX_LABELS  32
#define MAX_HEADERS 16
#define CHUNK_BYTES (1u << 20)
/* How long a commit that must be answered (a release, a hand-over, the
 * stop) waits for the coordinator. */
#define COMMIT_WAIT_MS 10000

enum { FMT_RAW, FMT_JSON };

typedef struct kpart {
    char topic[256];
    int32_t partition;
    bool owned;        /* assigned to us now */
    sl_watermark *wm;  /* NULL until the first message after an assignment */
    int64_t committed; /* last offset we asked to commit (-1: none yet) */
    int64_t confirmed; /* last offset the coordinator confirmed (-1: none yet) */
    /* The acknowledged watermark when the partition was released without
     * its commit confirmed (-1: none), the assignment it was released in,
     * what had been read then and the offset the next owner starts from
     * without a hand-over (see hand_over). */
    int64_t carry;
    uint64_t released_gen;
    int64_t released_read, released_base;
    int64_t start;       /* first offset read since the assignment */
    int64_t read_next;   /* offset after the last message read */
    sl_metric *m_lag;    /* high watermark - committed offset */
    sl_metric *m_commit; /* committed offset, for dashboards and tests */
} kpart;

typedef struct kin {
    const sl_input_ctx *ctx;
    rd_kafka_t *rk;
    /* configuration */
    const char *brokers[MAX_BROKERS];
    size_t nbrokers;
    const char *topics[MAX_TOPICS];
    size_t ntopics;
    const char *group;
    int start; /* 0 earliest, 1 latest */
    int format;
    const char *key_field; /* "" : the key is not kept */
    bool headers;
    int64_t batch_records, flush_ms, commit_ms, rebalance_ms, handover_ms;
    uint64_t max_message_bytes;
    int64_t max_partitions; /* the partition table's bound (decision 0067) */
    struct {
        const char *k, *v;
    } props[MAX_PROPS];
    int nprops;
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    /* state */
    kpart *parts;
    size_t nparts;
    /* Partitions assigned to this member that had no room in the table:
     * paused, never read (decision 0067). */
    int64_t over_limit;
    bool paused_ever;    /* a pause may outlive its assignment: resume at the next */
    uint64_t generation; /* assignments seen, one per assign callback */
    pthread_mutex_t mu;  /* parts[]' entries and nparts, against the lag thread */
    pthread_t lag_thread;
    bool lag_running;
    atomic_bool lag_stop;
    /* Set when librdkafka's close did not return in time: the pipeline
     * this input fed is torn down, and a callback that still comes from a
     * librdkafka thread returns at once (see close_bounded). */
    atomic_bool abandoned;
    /* Set by the input's thread when it found nothing to read while a
     * partition is behind its high watermark: the lag thread's next pass
     * starts at once (see wake_fetchers). */
    atomic_bool lag_kick;
    int64_t kick_next_ns;
    /* The partition the last message came from: messages come in runs of
     * one partition (a fetch's batch), so take_message finds its entry
     * without walking the table (up to max_partitions) for each one. */
    kpart *last_part;
    sl_batch *batch;
    kpart *batch_part;
    int64_t batch_begin, batch_end, batch_started_ns;
    /* Messages taken since the input was last caught up, and when a
     * batch may next ask the sinks to send at once (see kin_run). */
    int64_t taken_since_caught_up, next_urgent_ns;
    sl_chunk *chunk;
    char errbuf[512];
    sl_ratelimit rl_errors;
    sl_ratelimit rl_nomem;  /* kafka_message_retried_no_memory: once a minute */
    sl_ratelimit rl_rewind; /* kafka_batch_rewound_no_memory: once a minute */
    sl_metric *m_records, *m_bytes, *m_decode_errors, *m_errors, *m_rebalances, *m_commits,
        *m_commit_errors, *m_too_large, *m_uncommitted, *m_released_uncommitted, *m_commit_refused,
        *m_handovers, *m_wakeups, *m_over_limit, *m_nomem, *m_rewound;
} kin;

/* Order of `start` and `format` choices = the enums above (sl_cfg_read
 * stores the index). */
_Static_assert(FMT_RAW == 0 && FMT_JSON == 1, "format choices follow the enum");
static const sl_cfg_key kafka_input_keys[] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "brokers",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "`host:port` list of bootstrap brokers"},
    {.name = "topics",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "topic names; one starting with `^` is a regular expression over topic names"},
    {.name = "group_id",
     .at = SL_CFG_AT(kin, group),
     .type = SL_KEY_STR,
     .required = true,
     .doc = "the consumer group: every aggregator of the tier uses the same one"},
    {.name = "start",
     .at = SL_CFG_AT(kin, start),
     .type = SL_KEY_ENUM,
     .choices = "earliest|latest",
     .def = "earliest",
     .doc = "where a partition without a committed offset starts"},
    {.name = "format",
     .at = SL_CFG_AT(kin, format),
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw`: the value is the line; `json`: the record JSON the Kafka sink writes with "
            "`value: json` (line, time, labels, fields restored)"},
    {.name = "key_field",
     .at = SL_CFG_AT(kin, key_field),
     .type = SL_KEY_STR,
     .def = "kafka_key",
     .doc = "field that gets the message key; empty: the key is not kept"},
    {.name = "headers",
     .at = SL_CFG_AT(kin, headers),
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "message headers as fields (at most 16)"},
    {.name = "batch_records",
     .at = SL_CFG_AT(kin, batch_records),
     .type = SL_KEY_INT,
     .def = "1024",
     .min = 1,
     .max = 65536,
     .doc = "records of one partition per batch handed to the pipeline"},
    {.name = "flush_interval",
     .at = SL_CFG_AT(kin, flush_ms),
     .type = SL_KEY_DURATION,
     .def = "200ms",
     .doc = "a batch older than this is handed on even if not full"},
    {.name = "commit_interval",
     .at = SL_CFG_AT(kin, commit_ms),
     .type = SL_KEY_DURATION,
     .def = "250ms",
     .doc = "how often the acknowledged offsets are committed (asynchronously, only partitions "
            "whose watermark moved)"},
    {.name = "rebalance_timeout",
     .at = SL_CFG_AT(kin, rebalance_ms),
     .type = SL_KEY_DURATION,
     .def = "10s",
     .doc = "how long a revoked partition waits for its in-flight acknowledgements before it is "
            "released (what is still unacknowledged is read again by the next owner)"},
    {.name = "handover_wait",
     .at = SL_CFG_AT(kin, handover_ms),
     .type = SL_KEY_DURATION,
     .def = "500ms",
     .min = 0,
     .max = 60000,
     .doc = "after a rebalance, how long a member waits before it reads partitions new to it, "
            "so that their previous owners' hand-over commits (of a refused revocation commit) "
            "land first; 0: no wait"},
    {.name = "max_message_bytes",
     .at = SL_CFG_AT(kin, max_message_bytes),
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 1024,
     .max = 64 * 1024 * 1024,
     .doc = "longer values are cut, flagged and counted"},
    {.name = "max_partitions",
     .at = SL_CFG_AT(kin, max_partitions),
     .type = SL_KEY_INT,
     .def = "4096",
     .min = 1,
     .max = 65536,
     .doc = "partitions this member reads at once (~400 bytes each); those assigned past it are "
            "paused, logged (`kafka_partitions_over_limit`) and counted "
            "(`sluice_kafka_input_partitions_over_limit`), and are read by their next owner "
            "(decision 0067)"},
    {.name = "librdkafka",
     .type = SL_KEY_MAP,
     .doc = "any other librdkafka consumer property (e.g. `partition.assignment.strategy`, "
            "`security.protocol`); the group, commit and offset-reset properties are sluice's; "
            "prefetch is bounded by default (`queued.max.messages.kbytes: 12288`, "
            "`queued.min.messages: 100000`): lower it to save memory, raise it for a far "
            "broker (decisions 0033, 0060, 0064); `fetch.wait.max.ms` is 100 by default "
            "(librdkafka's 500 held partitions with a backlog behind empty fetches, "
            "decision 0077)"},
};

/* Properties sluice sets itself: committing is ours (after delivery), and
 * the rebalance callback is how revoked partitions are drained first. */
static const char *const managed_props[] = {
    "bootstrap.servers",        "metadata.broker.list", "group.id",      "enable.auto.commit",
    "enable.auto.offset.store", "auto.offset.reset",    "sasl.password", "ssl.key.password",
};

/* ---- configuration ---- */

static void take_props(kin *in, sl_cfg *cfg, const sl_cfg_node *map)
{
    if (!map || map->kind != SL_CFG_MAP) return;
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i];
        const sl_cfg_node *v = map->items[i];
        bool managed = false;
        for (size_t j = 0; j < sizeof managed_props / sizeof *managed_props; j++)
            if (strcmp(k, managed_props[j]) == 0) managed = true;
        char errstr[256];
        if (managed)
            sl_cfg_error(cfg, map->key_nodes[i],
                         "librdkafka property '%s' is managed by sluice or is a secret", k);
        else if (v->kind != SL_CFG_SCALAR)
            sl_cfg_error(cfg, v, "librdkafka property '%s' must be a single value", k);
        else if (rd_kafka_conf_set(probe, k, v->scalar, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            sl_cfg_error(cfg, map->key_nodes[i], "librdkafka property '%s': %s", k, errstr);
        else if (in->nprops == MAX_PROPS)
            sl_cfg_error(cfg, v, "too many librdkafka properties (max %d)", MAX_PROPS);
        else
            in->props[in->nprops].k = k, in->props[in->nprops++].v = v->scalar;
    }
    rd_kafka_conf_destroy(probe);
}

static int configure(kin *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, kafka_input_keys, SL_CFG_NKEYS(kafka_input_keys), in);
    sl_cfg_list(cfg, n, "brokers", in->brokers, MAX_BROKERS, &in->nbrokers);
    sl_cfg_list(cfg, n, "topics", in->topics, MAX_TOPICS, &in->ntopics);
    if (sl_cfg_nerrors(cfg) != before) return SL_EINVAL;
    if (in->nbrokers == 0 || in->ntopics == 0 || !in->group || !*in->group) {
        sl_cfg_error(cfg, n, "a kafka input needs brokers, topics and group_id");
        return SL_EINVAL;
    }
    for (size_t i = 0; i < in->ntopics; i++) {
        /* librdkafka reads a leading ^ as a regular expression. */
        if (!*in->topics[i] || strlen(in->topics[i]) > 249) {
            sl_cfg_error(cfg, sl_cfg_get(n, "topics"), "topic names are 1 to 249 characters");
            return SL_EINVAL;
        }
    }
    take_props(in, cfg, sl_cfg_get(n, "librdkafka"));
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return SL_OK;
}

/* ---- partitions ---- */

static kpart *part_find(kin *in, const char *topic, int32_t partition, bool add)
{
    for (size_t i = 0; i < in->nparts; i++)
        if (in->parts[i].partition == partition && strcmp(in->parts[i].topic, topic) == 0)
            return &in->parts[i];
    if (!add || strlen(topic) >= sizeof in->parts->topic) return NULL;
    /* Full: the entry of a partition released and settled (not owned, no
     * hand-over pending, no batch) is taken, so the bound is on partitions
     * held at once, not on all those ever held (a regular expression over
     * topics, many rebalances). Its gauges stay registered, at 0. */
    size_t at = in->nparts;
    if (at == (size_t)in->max_partitions) {
        for (size_t i = 0; i < in->nparts && at == in->nparts; i++) {
            const kpart *q = &in->parts[i];
            if (!q->owned && q->carry < 0 && !q->wm && q != in->batch_part) at = i;
        }
        if (at == in->nparts) return NULL;
    }
    pthread_mutex_lock(&in->mu);
    kpart *p = &in->parts[at];
    memset(p, 0, sizeof *p);
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    p->committed = p->confirmed = p->carry = -1;
    char l[512], pn[16];
    snprintf(pn, sizeof pn, "%d", (int)partition);
    char il[300];
    sl_metric_labels(il, sizeof il, "input", in->ctx->name, "topic", topic);
    snprintf(l, sizeof l, "%s,partition=\"%s\"", il, pn);
    p->m_lag = sl_gauge("sluice_kafka_input_lag_messages",
                        "Messages of the partition not yet committed by this consumer "
                        "(high watermark - committed offset).",
                        l);
    p->m_commit = sl_gauge("sluice_kafka_input_committed_offset",
                           "The partition's offset this consumer committed last.", l);
    if (at == in->nparts) in->nparts++;
    pthread_mutex_unlock(&in->mu);
    return p;
}

/* A commit whose answer is waited for, at most COMMIT_WAIT_MS. librdkafka's
 * synchronous commit waits for the coordinator without a bound; a stop or
 * a rebalance must not hang on it (once, under a loaded machine, an
 * aggregator did not stop in 180 s). Past the bound the offsets count as
 * not committed: read again by the next owner, never lost. The
 * per-partition answers are copied into l, as rd_kafka_commit does. */
static rd_kafka_resp_err_t commit_waited(kin *in, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(in->rk);
    if (!q) return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(in->rk, l, q, NULL, NULL);
    if (!e) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, COMMIT_WAIT_MS);
        if (!ev) {
            e = RD_KAFKA_RESP_ERR__TIMED_OUT;
            sl_log(SL_LOG_WARN, "kafka_commit_timeout", "input=%s waited_ms=%d partitions=%d",
                   in->ctx->name, COMMIT_WAIT_MS, l->cnt);
        } else {
            e = rd_kafka_event_error(ev);
            const rd_kafka_topic_partition_list_t *r = rd_kafka_event_topic_partition_list(ev);
            for (int i = 0; r && i < r->cnt; i++) {
                rd_kafka_topic_partition_t *t =
                    rd_kafka_topic_partition_list_find(l, r->elems[i].topic, r->elems[i].partition);
                if (t) t->err = r->elems[i].err;
            }
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    return e;
}

/* Offsets every sink acknowledged, committed for the owned partitions
 * (sync when the partitions are about to be released). */
static void commit(kin *in, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < in->nparts; i++) {
        kpart *p = &in->parts[i];
        if (!p->owned || !p->wm) continue;
        int64_t at = (int64_t)sl_watermark_get(p->wm);
        /* A sync commit wants an answer for everything not confirmed (an
         * async one asked for may still be on its way, or refused). */
        if (at <= (sync ? p->confirmed : p->committed)) continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = at;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = sync ? commit_waited(in, l) : rd_kafka_commit(in->rk, l, 1);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            sl_metric_inc(in->m_commit_errors);
            uint64_t suppressed;
            if (sl_ratelimit_ok(&in->rl_errors, &suppressed))
                sl_log(SL_LOG_WARN, "kafka_commit_failed", "input=%s error=%s suppressed=%llu",
                       in->ctx->name, rd_kafka_err2str(e), (unsigned long long)suppressed);
        } else if (!e) {
            /* Async results come back through on_commit; a sync one is known
             * now. Either way the offset was asked for: do not ask again. */
            for (int i = 0; i < l->cnt; i++) {
                kpart *p = part_find(in, l->elems[i].topic, l->elems[i].partition, false);
                if (!p) continue;
                pthread_mutex_lock(&in->mu);
                p->committed = l->elems[i].offset;
                if (sync && !l->elems[i].err) p->confirmed = l->elems[i].offset;
                pthread_mutex_unlock(&in->mu);
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    kin *in = opaque;
    if (atomic_load(&in->abandoned) || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        kpart *p = part_find(in, offsets->elems[i].topic, offsets->elems[i].partition, false);
        if (err || offsets->elems[i].err) {
            sl_metric_inc(in->m_commit_errors);
            /* Asked again at the next commit. */
            if (p) p->committed = -1;
        } else {
            sl_metric_inc(in->m_commits);
            /* A late answer for a partition released meanwhile says nothing
             * about the current assignment. */
            pthread_mutex_lock(&in->mu);
            if (p && p->owned && offsets->elems[i].offset > p->confirmed)
                p->confirmed = offsets->elems[i].offset;
            pthread_mutex_unlock(&in->mu);
            if (p) sl_metric_set(p->m_commit, offsets->elems[i].offset);
        }
    }
}

/* Read since the last offset the coordinator confirmed: what the next
 * owner of the partition reads again if it got it now. */
static int64_t part_uncommitted(const kpart *p)
{
    if (!p->owned || p->read_next == 0) return 0;
    int64_t from = p->confirmed > p->start ? p->confirmed : p->start;
    return p->read_next > from ? p->read_next - from : 0;
}

/* Read and not committed: what a kill -9 now would have read again. */
static void update_uncommitted(kin *in)
{
    int64_t sum = 0;
    for (size_t i = 0; i < in->nparts; i++) sum += part_uncommitted(&in->parts[i]);
    sl_metric_set(in->m_uncommitted, sum);
}

/* Every second: the owned partitions' high watermarks from their leaders
 * (what librdkafka caches stops moving once it stops fetching), minus the
 * confirmed commit. */
static void *lag_main(void *arg)
{
    kin *in = arg;
    /* Named for top -H, perf and the benchmarks' per-thread CPU (0083). */
    pthread_setname_np(pthread_self(), "sl:kafka-lag");
    struct owned {
        char topic[256];
        int32_t partition;
        int64_t confirmed;
        sl_metric *m_lag;
    } *own = calloc((size_t)in->max_partitions, sizeof *own);
    while (own && !atomic_load(&in->lag_stop)) {
        size_t n = 0;
        pthread_mutex_lock(&in->mu);
        for (size_t i = 0; i < in->nparts; i++) {
            const kpart *p = &in->parts[i];
            if (!p->owned) continue;
            memcpy(own[n].topic, p->topic, sizeof own[n].topic);
            own[n].partition = p->partition;
            own[n].confirmed = p->confirmed;
            own[n++].m_lag = p->m_lag;
        }
        pthread_mutex_unlock(&in->mu);
        for (size_t i = 0; i < n && !atomic_load(&in->lag_stop); i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(in->rk, own[i].topic, own[i].partition, &lo, &hi,
                                                 1000) != 0 ||
                hi < 0)
                continue;
            int64_t at = own[i].confirmed >= 0 ? own[i].confirmed : lo;
            sl_metric_set(own[i].m_lag, hi > at ? hi - at : 0);
        }
        /* A second, or less when the input asks (lag_kick). */
        for (int t = 0; t < 50 && !atomic_load(&in->lag_stop) && !atomic_load(&in->lag_kick); t++) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
        atomic_store(&in->lag_kick, false);
    }
    free(own);
    return NULL;
}

/* librdkafka 2.0 stops fetching a partition while the consumer queue holds
 * more than queued.min.messages or queued.max.messages.kbytes, and its
 * broker thread decides again only when something wakes it: a request to
 * send, a response, or its 1 s idle wait (librdkafka#2879;
 * fetch.queue.backoff.ms from 2.2 on). When a sink is the bottleneck the
 * queue fills while the input waits in emit; the input then empties it
 * faster than a second and found nothing for most of one (0.3-0.6 s per
 * 600,000-record run, decision 0033). So when a poll finds nothing while an
 * owned partition is behind the high watermark librdkafka last saw, the
 * lag thread queries the partitions' leaders now: each request wakes its
 * broker's thread, which fetches again. An input that caught up is not
 * behind and asks nothing; at most one pass per POLL_MS. */
#define POLL_MS 100
static void wake_fetchers(kin *in, int64_t now)
{
    if (!in->lag_running || now < in->kick_next_ns) return;
    for (size_t i = 0; i < in->nparts; i++) {
        const kpart *p = &in->parts[i];
        int64_t lo, hi;
        if (!p->owned || p->read_next == 0 ||
            rd_kafka_get_watermark_offsets(in->rk, p->topic, p->partition, &lo, &hi) != 0 ||
            hi <= p->read_next)
            continue;
        atomic_store(&in->lag_kick, true);
        sl_metric_inc(in->m_wakeups);
        in->kick_next_ns = now + (int64_t)POLL_MS * 1000000;
        return;
    }
}

/* Whether every owned partition was read up to the high watermark
 * librdkafka last saw (cached from fetch answers: no request). A partition
 * whose watermark is not known yet counts as behind. */
static bool caught_up(kin *in)
{
    for (size_t i = 0; i < in->nparts; i++) {
        const kpart *p = &in->parts[i];
        int64_t lo, hi;
        if (!p->owned) continue;
        if (rd_kafka_get_watermark_offsets(in->rk, p->topic, p->partition, &lo, &hi) != 0 ||
            hi < 0 || hi > p->read_next)
            return false;
    }
    return true;
}

/* ---- records ---- */

/* The partition reads again from offset at: a batch that could not be
 * handed on must not be passed over, since a gap between watermark ranges
 * counts as acknowledged. librdkafka drops what it fetched before the
 * seek. */
static void seek_part(kin *in, kpart *p, int64_t at)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = at;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(in->rk, l, 0);
    if (e) {
        sl_log(SL_LOG_WARN, "kafka_seek_failed", "input=%s topic=%s partition=%d error=%s",
               in->ctx->name, p->topic, (int)p->partition, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void rewind_part(kin *in, kpart *p, int64_t at)
{
    seek_part(in, p, at);
    p->read_next = at;
}

static int flush(kin *in)
{
    sl_batch *b = in->batch;
    if (!b) return SL_OK;
    kpart *p = in->batch_part;
    in->batch = NULL;
    in->batch_part = NULL;
    if (b->nrecords == 0) {
        sl_batch_unref(b);
        return SL_OK;
    }
    if (!in->ctx->dry_run) {
        if (!p->wm) p->wm = sl_watermark_new((uint64_t)in->batch_begin);
        if (!p->wm || sl_watermark_issue(p->wm, (uint64_t)in->batch_begin,
                                         (uint64_t)in->batch_end) != SL_OK) {
            /* Never acknowledged: read again, here or by the next owner.
             * Counted and said (once a minute) whichever path flushed: a
             * full batch, the flush_interval, the stop (decision 0071). */
            sl_metric_inc(in->m_rewound);
            uint64_t suppressed;
            if (sl_ratelimit_ok(&in->rl_rewind, &suppressed))
                sl_log(SL_LOG_WARN, "kafka_batch_rewound_no_memory",
                       "input=%s topic=%s partition=%d from_offset=%lld records=%u "
                       "suppressed=%llu (read again, nothing lost)",
                       in->ctx->name, p->topic, (int)p->partition, (long long)in->batch_begin,
                       b->nrecords, (unsigned long long)suppressed);
            sl_batch_unref(b);
            rewind_part(in, p, in->batch_begin);
            return SL_ENOMEM;
        }
        b->ticket = (sl_ack_ticket){sl_watermark_ref(p->wm), (uint64_t)in->batch_begin,
                                    (uint64_t)in->batch_end};
    }
    /* Counted once handed on: a rewound batch is counted when read again. */
    sl_metric_add(in->m_records, b->nrecords);
    int rc = in->ctx->emit(in->ctx->emit_arg, b);
    update_uncommitted(in);
    return rc;
}

/* Room for n more bytes in the current chunk (a new one otherwise; the
 * batch keeps the old one alive). NULL when the batch holds as many chunks
 * as it may: take_message makes room for a whole message first. */
static char *reserve(kin *in, size_t n)
{
    if (!in->chunk || in->chunk->cap - in->chunk->len < n) {
        if (in->batch && in->batch->nchunks == SL_BATCH_MAX_CHUNKS) return NULL;
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        sl_chunk *c = sl_chunk_new(cap);
        if (!c) return NULL;
        if (in->chunk) sl_chunk_unref(in->chunk);
        in->chunk = c;
    }
    if (in->batch && sl_batch_add_chunk(in->batch, in->chunk) != SL_OK) return NULL;
    char *at = in->chunk->data + in->chunk->len;
    in->chunk->len += n;
    return at;
}

static char *reserve_cb(void *arg, size_t n)
{
    return reserve(arg, n);
}

static sl_slice copy(kin *in, const void *p, size_t n, bool *ok)
{
    char *at = n ? reserve(in, n) : "";
    if (!at) {
        *ok = false;
        return (sl_slice){"", 0};
    }
    if (n) memcpy(at, p, n);
    return (sl_slice){at, n};
}

/* Partitions with no room in the table (decision 0067): paused, and set
 * back to `at` (>= 0) if a message of one was polled, so that nothing is
 * taken from them; their committed offset stays where it was, for their
 * next owner. A pause stays with the partition until resumed, even after
 * it is released: resume_partitions undoes it when one is assigned again
 * with room. */
static void pause_partitions(kin *in, rd_kafka_topic_partition_list_t *l, int64_t at)
{
    rd_kafka_resp_err_t e = rd_kafka_pause_partitions(in->rk, l);
    in->paused_ever = true;
    if (e)
        sl_log(SL_LOG_ERROR, "kafka_pause_failed", "input=%s partitions=%d error=%s", in->ctx->name,
               l->cnt, rd_kafka_err2str(e));
    if (at < 0) return;
    for (int i = 0; i < l->cnt; i++) l->elems[i].offset = at;
    rd_kafka_error_t *se = rd_kafka_seek_partitions(in->rk, l, 0);
    if (se) rd_kafka_error_destroy(se); /* not assigned (any more): nothing to hold */
}

/* A message of a partition without a table entry: one assigned past the
 * table's bound whose messages were fetched before its pause took, or a
 * late one of a partition released meanwhile. Not taken, not committed. */
static void hold_message(kin *in, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition);
    pause_partitions(in, l, m->offset);
    rd_kafka_topic_partition_list_destroy(l);
}

/* A message not taken for want of memory (decision 0070): nothing of it
 * is in the batch and read_next is not past it, so the partition is set
 * back to it (unless a failed flush set it back further already) and the
 * read loop naps before it polls again. Counted; said once a minute.
 * Dropping it would leave a gap before the next message's range, which
 * the watermark counts as acknowledged: a loss at the next commit. */
static int not_taken(kin *in, kpart *p, const rd_kafka_message_t *m, bool seek)
{
    if (seek) seek_part(in, p, m->offset);
    sl_metric_inc(in->m_nomem);
    uint64_t suppressed;
    if (sl_ratelimit_ok(&in->rl_nomem, &suppressed))
        sl_log(SL_LOG_WARN, "kafka_message_retried_no_memory",
               "input=%s topic=%s partition=%d offset=%lld suppressed=%llu (read again after a "
               "nap)",
               in->ctx->name, p->topic, (int)p->partition, (long long)m->offset,
               (unsigned long long)suppressed);
    return SL_ENOMEM;
}

static int take_message(kin *in, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    kpart *p = in->last_part;
    if (!p || p->partition != m->partition || strcmp(p->topic, topic) != 0) {
        /* Entries are made at the assignment (on_rebalance), never here. */
        p = part_find(in, topic, m->partition, false);
        if (!p) {
            hold_message(in, m);
            return SL_OK;
        }
        in->last_part = p;
    }
    if (!p->owned) return SL_OK; /* a late message of a released partition */
    /* Below what this assignment already handed on (a broker-side offset
     * reset going back): in flight already, and the watermark only takes
     * increasing ranges. */
    if (p->read_next > 0 && m->offset < p->read_next) return SL_OK;
    /* What one message may take in the chunk: the value (and, decoded,
     * what JSON numbers print as), key, headers. A batch whose chunks are
     * all taken goes first. */
    size_t need = (m->payload ? 4 * m->len : 0) + m->key_len + 64 * 1024;
    bool chunk_short = !in->chunk || in->chunk->cap - in->chunk->len < need;
    if (in->batch && (in->batch_part != p || in->batch->nrecords >= in->batch_records ||
                      in->batch_end != m->offset ||
                      (chunk_short && in->batch->nchunks >= SL_BATCH_MAX_CHUNKS - 1))) {
        bool same_part = in->batch_part == p;
        int rc = flush(in);
        /* Out of memory there: the batch's partition is set back to the
         * batch's start already. When that is another partition (the
         * batch ended because this message is of another one), this one
         * is set back to the message too: otherwise the next poll gives
         * the message after it, whose batch would leave a gap that the
         * watermark counts as acknowledged (decision 0071). */
        if (rc == SL_ENOMEM) return not_taken(in, p, m, !same_part);
        if (rc != SL_OK) return rc;
    }
    /* Until the record is in the batch, nothing says the message was read:
     * what fails before (an allocation) leaves it to be read again. */
    if (!in->batch) {
        sl_batch *b = sl_batch_new((uint32_t)in->batch_records);
        if (!b || sl_batch_set_names(b, in->ctx->name, topic) != SL_OK ||
            sl_batch_set_labels(b, in->labels, in->nlabels) != SL_OK) {
            if (b) sl_batch_unref(b);
            return not_taken(in, p, m, true);
        }
        in->batch = b;
        in->batch_part = p;
        in->batch_begin = in->batch_end = m->offset;
        in->batch_started_ns = sl_monotonic_ns();
    }
    if (chunk_short) {
        sl_chunk *c = sl_chunk_new(need > CHUNK_BYTES ? need : CHUNK_BYTES);
        if (!c) return not_taken(in, p, m, true);
        if (in->chunk) sl_chunk_unref(in->chunk);
        in->chunk = c;
    }
    if (sl_batch_add_chunk(in->batch, in->chunk) != SL_OK) return not_taken(in, p, m, true);
    const char *val = m->payload ? m->payload : "";
    size_t vn = m->payload ? m->len : 0;
    uint32_t flags = 0;
    if (vn > in->max_message_bytes) {
        vn = in->max_message_bytes;
        flags |= SL_RF_TRUNCATED;
    }
    rd_kafka_timestamp_type_t tt;
    int64_t ts_ms = rd_kafka_message_timestamp(m, &tt);
    int64_t t = ts_ms > 0 ? ts_ms * 1000000 : sl_now_ns();
    bool ok = true;
    sl_slice line = {"", 0};
    bool json = in->format == FMT_JSON && !(flags & SL_RF_TRUNCATED);
    if (!json) line = copy(in, val, vn, &ok);
    sl_record *r = sl_batch_add(in->batch, line, t, (uint64_t)m->offset + 1);
    bool undecoded = false;
    if (r && ok && json) {
        if (sl_kafka_record_decode(in->batch, r, val, vn, reserve_cb, in) != SL_OK) {
            /* Shipped as it came, marked and counted, never dropped; if
             * even that copy fails it is not taken (below), never shipped
             * with an empty line (decision 0071). */
            r->line = copy(in, val, vn, &ok);
            undecoded = true;
        }
        in->batch->bytes += r->line.n;
    }
    if (!r || !ok) {
        /* Not expected (the chunk has room for the line and the batch for
         * the record), but never half taken: nothing of the message stays
         * in the batch and the partition reads it again. */
        if (r) {
            in->batch->nrecords--;
            in->batch->bytes -= r->line.n;
        }
        return not_taken(in, p, m, true);
    }
    r->flags |= flags; /* the decoder may have set SL_RF_TRUNCATED */
    if (undecoded) {
        r->flags |= SL_RF_PARSE_ERROR;
        sl_metric_inc(in->m_decode_errors);
    }
    in->batch_end = m->offset + 1;
    if (p->read_next == 0) p->start = m->offset;
    p->read_next = m->offset + 1;
    if (flags & SL_RF_TRUNCATED) sl_metric_inc(in->m_too_large);
    sl_metric_add(in->m_bytes, vn);
    /* Checked once here: a sink trusts SL_RF_LINE_UTF8 instead of checking
     * again (decision 0055); a line that is not valid is repaired there. */
    if (sl_utf8_valid_prefix(r->line.p, r->line.n) != r->line.n)
        r->flags |= SL_RF_INVALID_UTF8;
    else
        r->flags |= SL_RF_LINE_UTF8;
    if (*in->key_field && m->key) {
        sl_slice k = {in->key_field, strlen(in->key_field)};
        sl_slice kv = copy(in, m->key, m->key_len, &ok);
        if (!ok || !sl_record_add_field(in->batch, r, k, kv, SL_V_STRING))
            r->flags |= SL_RF_TRUNCATED;
    }
    rd_kafka_headers_t *hdrs = NULL;
    if (in->headers && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *hn;
        const void *hv;
        size_t hl;
        for (size_t i = 0; i < MAX_HEADERS && !rd_kafka_header_get_all(hdrs, i, &hn, &hv, &hl);
             i++) {
            sl_slice k = copy(in, hn, strlen(hn), &ok);
            sl_slice v = copy(in, hv ? hv : "", hv ? hl : 0, &ok);
            if (!ok || !sl_record_add_field(in->batch, r, k, v, SL_V_STRING))
                r->flags |= SL_RF_TRUNCATED;
        }
    }
    return SL_OK;
}

/* ---- rebalances ---- */

/* Revoked partitions: what was read but not handed on is dropped (it was
 * never acknowledged, so the next owner reads it); what the sinks hold gets
 * rebalance_timeout to be acknowledged; then the watermarks are committed,
 * synchronously, and only then are the partitions released. A sink that
 * takes longer leaves its records to be read again (duplicates, never
 * loss). Lost partitions get the wait too (what is acknowledged by then is
 * handed over at the next assignment) but no commit. */
static void revoke(kin *in, const rd_kafka_topic_partition_list_t *l, bool may_commit)
{
    for (int i = 0; in->batch && in->batch_part && i < l->cnt; i++) {
        if (in->batch_part->partition == l->elems[i].partition &&
            strcmp(in->batch_part->topic, l->elems[i].topic) == 0) {
            /* Never handed on: not read, as far as the counts go. */
            in->batch_part->read_next = in->batch_begin;
            sl_batch_unref(in->batch);
            in->batch = NULL;
            in->batch_part = NULL;
        }
    }
    int64_t deadline = sl_monotonic_ns() + in->rebalance_ms * 1000000;
    for (;;) {
        size_t pending = 0;
        for (int i = 0; i < l->cnt; i++) {
            kpart *p = part_find(in, l->elems[i].topic, l->elems[i].partition, false);
            if (p && p->wm) pending += sl_watermark_pending(p->wm);
        }
        if (pending == 0 || sl_monotonic_ns() >= deadline) {
            if (pending)
                sl_log(SL_LOG_WARN, "kafka_revoke_timeout",
                       "input=%s unacknowledged_batches=%zu (read again by the next owner)",
                       in->ctx->name, pending);
            break;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (may_commit) commit(in, true);
    for (int i = 0; i < l->cnt; i++) {
        kpart *p = part_find(in, l->elems[i].topic, l->elems[i].partition, false);
        if (!p) continue;
        pthread_mutex_lock(&in->mu);
        /* What the next owner reads again: read since the last confirmed
         * commit. When the coordinator refused the commit of what the
         * sinks acknowledged, or the partition was lost (no commit at
         * all), that part is settled at the next assignment (hand_over);
         * otherwise it is known now. */
        int64_t acked = p->wm ? (int64_t)sl_watermark_get(p->wm) : -1;
        p->carry = p->read_next > 0 && acked > p->confirmed ? acked : -1;
        p->released_gen = in->generation;
        p->released_read = p->read_next;
        p->released_base = p->confirmed > p->start ? p->confirmed : p->start;
        if (p->carry < 0) sl_metric_add(in->m_released_uncommitted, (uint64_t)part_uncommitted(p));
        p->owned = false;
        if (p->wm) sl_watermark_unref(p->wm);
        p->wm = NULL;
        p->committed = p->confirmed = -1;
        p->start = p->read_next = 0;
        sl_metric_set(p->m_lag, 0);
        pthread_mutex_unlock(&in->mu);
    }
}

/* At an assignment, for the partitions released in the assignment just
 * before whose revocation commit the coordinator refused (the mock refuses
 * every commit while its group rebalances, where a real broker takes
 * commits of the current generation) or that were lost (librdkafka calls
 * an assignment lost when a commit meets a newer generation): commit, in
 * the new generation, the watermark the sinks had acknowledged at the
 * release, unless the committed offset is there already. A coordinator
 * takes a member's commit for any partition, so this records what this
 * member delivered for the partition's next owner, which waits
 * handover_wait before it fetches the committed offsets. It cannot lose a
 * record (every offset below was taken by every sink); late, it can only
 * move a newer commit back (duplicates). A partition assigned back to us
 * resumes there, or at the committed offset if that is further. What the
 * next owner reads again is counted here, once known. */
static void hand_over(kin *in, rd_kafka_topic_partition_list_t *l, int *resumed, int *handed)
{
    rd_kafka_topic_partition_list_t *h = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < in->nparts; i++) {
        kpart *p = &in->parts[i];
        if (p->carry < 0) continue;
        if (p->released_gen + 1 == in->generation) {
            rd_kafka_topic_partition_list_add(h, p->topic, p->partition);
        } else {
            /* Released longer ago (never when each assignment follows a
             * release): nothing more is known. */
            sl_metric_add(in->m_released_uncommitted,
                          (uint64_t)(p->released_read - p->released_base));
            sl_metric_add(in->m_commit_refused, (uint64_t)(p->carry - p->released_base));
            p->carry = -1;
        }
    }
    /* Where the group stands now (another member may have committed
     * further meanwhile): -1 when unknown. */
    bool known = h->cnt && !rd_kafka_committed(in->rk, h, 2000);
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_new(h->cnt ? h->cnt : 1);
    for (int i = 0; i < h->cnt; i++) {
        kpart *p = part_find(in, h->elems[i].topic, h->elems[i].partition, false);
        int64_t now = known && !h->elems[i].err ? h->elems[i].offset : -1;
        h->elems[i].offset = now;
        if (p && now < p->carry)
            rd_kafka_topic_partition_list_add(c, p->topic, p->partition)->offset = p->carry;
    }
    rd_kafka_resp_err_t e = c->cnt ? commit_waited(in, c) : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < h->cnt; i++) {
        kpart *p = part_find(in, h->elems[i].topic, h->elems[i].partition, false);
        if (!p) continue;
        /* Recorded: by our commit now, or by a commit as far already. */
        bool committed_now = false;
        for (int j = 0; j < c->cnt; j++)
            if (c->elems[j].partition == p->partition && strcmp(c->elems[j].topic, p->topic) == 0)
                committed_now = !e && !c->elems[j].err;
        bool recorded = committed_now || h->elems[i].offset >= p->carry;
        int64_t at = h->elems[i].offset > p->carry ? h->elems[i].offset : p->carry;
        bool ours = false;
        for (int j = 0; j < l->cnt && !ours; j++)
            if (l->elems[j].partition == p->partition && strcmp(l->elems[j].topic, p->topic) == 0) {
                l->elems[j].offset = at;
                ours = true;
            }
        if (committed_now) {
            sl_metric_inc(in->m_handovers);
            (*handed)++;
        }
        if (ours) (*resumed)++;
        /* Read again by the next owner: what was unacknowledged at the
         * release, and, unless it resumes here or the hand-over was
         * recorded, what the coordinator refused. */
        int64_t from = ours || recorded ? at : p->released_base;
        if (p->released_read > from)
            sl_metric_add(in->m_released_uncommitted, (uint64_t)(p->released_read - from));
        if (!ours && !recorded)
            sl_metric_add(in->m_commit_refused, (uint64_t)(p->carry - p->released_base));
        p->carry = -1;
    }
    if (e && c->cnt) {
        sl_metric_inc(in->m_commit_errors);
        sl_log(SL_LOG_WARN, "kafka_handover_failed", "input=%s partitions=%d error=%s",
               in->ctx->name, c->cnt, rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(c);
    rd_kafka_topic_partition_list_destroy(h);
}

/* Eager strategies (librdkafka's default, range/roundrobin) revoke every
 * partition at each rebalance; cooperative-sticky (incremental) revokes
 * only those that move, after the group has settled, when the coordinator
 * takes their commits. A revocation commit the coordinator refuses is
 * handed over at the next assignment (hand_over); a partition new to this
 * member waits handover_wait so that such commits land before its
 * committed offset is fetched. */
/* A refused (un)assignment leaves partitions unread or unreleased: say so. */
static void assign_checked(kin *in, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, bool coop,
                           bool assign)
{
    const char *why = NULL;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (coop)
        e = assign ? rd_kafka_incremental_assign(rk, l) : rd_kafka_incremental_unassign(rk, l);
    else
        re = rd_kafka_assign(rk, assign ? l : NULL);
    if (e) why = rd_kafka_error_string(e);
    if (re) why = rd_kafka_err2str(re);
    if (why)
        sl_log(SL_LOG_WARN, "kafka_assign_failed", "input=%s %s partitions=%d error=%s",
               in->ctx->name, assign ? "assign" : "unassign", l->cnt, why);
    if (e) rd_kafka_error_destroy(e);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    kin *in = opaque;
    if (atomic_load(&in->abandoned)) return; /* its pipeline is gone (close_bounded) */
    /* NULL once the consumer group has terminated (during the close):
     * eager, as the group was. */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    bool coop = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    sl_metric_inc(in->m_rebalances);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        in->generation++;
        int resumed = 0, handed = 0;
        hand_over(in, l, &resumed, &handed);
        bool fresh = false; /* a partition we did not hold in the assignment before */
        rd_kafka_topic_partition_list_t *over = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_t *room = rd_kafka_topic_partition_list_new(1);
        /* Partitions with an entry first, so that a new one does not take
         * the entry of one released just before and assigned back now. */
        for (int k = 0; k < 2 * l->cnt; k++) {
            int i = k % l->cnt;
            bool known = part_find(in, l->elems[i].topic, l->elems[i].partition, false) != NULL;
            if (known != (k < l->cnt)) continue;
            kpart *p = part_find(in, l->elems[i].topic, l->elems[i].partition, true);
            if (!p) {
                rd_kafka_topic_partition_list_add(over, l->elems[i].topic, l->elems[i].partition);
                continue;
            }
            rd_kafka_topic_partition_list_add(room, p->topic, p->partition);
            if (p->released_gen == 0 || p->released_gen + 1 != in->generation) fresh = true;
            pthread_mutex_lock(&in->mu);
            p->carry = -1;
            p->owned = true;
            if (p->wm) sl_watermark_unref(p->wm);
            p->wm = NULL;
            p->committed = p->confirmed = -1;
            p->start = p->read_next = 0;
            pthread_mutex_unlock(&in->mu);
        }
        sl_log(SL_LOG_INFO, "kafka_assigned",
               "input=%s partitions=%d resumed_at_ack=%d handed_over=%d", in->ctx->name, l->cnt,
               resumed, handed);
        /* Their previous owners commit what they handed over when they get
         * this same assignment: let those commits land before librdkafka
         * fetches the committed offsets. */
        if (fresh && in->handover_ms > 0) {
            sl_log(SL_LOG_INFO, "kafka_handover_wait", "input=%s wait_ms=%lld", in->ctx->name,
                   (long long)in->handover_ms);
            struct timespec ts = {in->handover_ms / 1000, (in->handover_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        assign_checked(in, rk, l, coop, true);
        if (in->paused_ever && room->cnt) rd_kafka_resume_partitions(rk, room);
        if (over->cnt) {
            /* Left unread, visibly: the group's lag for them grows, and
             * their next owner (a member with room, after a rebalance)
             * reads them from the committed offset. */
            pause_partitions(in, over, -1);
            in->over_limit += over->cnt;
            sl_log(SL_LOG_ERROR, "kafka_partitions_over_limit",
                   "input=%s over_limit=%d assigned=%d max_partitions=%lld first=%s/%d (paused, "
                   "not read by this member: raise max_partitions or add members; decision "
                   "0067)",
                   in->ctx->name, over->cnt, l->cnt, (long long)in->max_partitions,
                   over->elems[0].topic, (int)over->elems[0].partition);
        }
        sl_metric_set(in->m_over_limit, (uint64_t)in->over_limit);
        rd_kafka_topic_partition_list_destroy(over);
        rd_kafka_topic_partition_list_destroy(room);
    } else {
        /* Lost (our session expired, or a commit met a newer generation):
         * another member may own them already, so no commit now; hand_over
         * settles them at the next assignment. */
        bool lost = rd_kafka_assignment_lost(rk);
        /* Those without an entry were the paused ones past the bound. */
        for (int i = 0; i < l->cnt; i++)
            if (!part_find(in, l->elems[i].topic, l->elems[i].partition, false) &&
                in->over_limit > 0)
                in->over_limit--;
        sl_metric_set(in->m_over_limit, (uint64_t)in->over_limit);
        revoke(in, l, !lost);
        sl_log(SL_LOG_INFO, "kafka_revoked", "input=%s partitions=%d lost=%d", in->ctx->name,
               l->cnt, (int)lost);
        assign_checked(in, rk, l, coop, false);
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 7) sl_log(SL_LOG_WARN, "librdkafka", "facility=%s message=%s", fac, buf);
}

/* ---- the input ---- */

static void register_metrics(kin *in)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_records = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_decode_errors =
        sl_counter("sluice_kafka_input_decode_errors_total",
                   "Messages that were not the record JSON of `format: json`; shipped as they "
                   "came, marked as a parse error.",
                   l);
    in->m_too_large =
        sl_counter("sluice_kafka_input_truncated_total", "Messages cut to max_message_bytes.", l);
    in->m_errors =
        sl_counter("sluice_kafka_input_errors_total", "Consumer errors reported by librdkafka.", l);
    in->m_rebalances = sl_counter("sluice_kafka_input_rebalances_total",
                                  "Partition assignments and revocations.", l);
    in->m_commits =
        sl_counter("sluice_kafka_input_commits_total", "Partition offsets committed.", l);
    in->m_commit_errors =
        sl_counter("sluice_kafka_input_commit_errors_total", "Offset commits that failed.", l);
    in->m_uncommitted = sl_gauge("sluice_kafka_input_uncommitted_messages",
                                 "Messages read and not yet committed (a kill -9 now would have "
                                 "them read again).",
                                 l);
    in->m_released_uncommitted =
        sl_counter("sluice_kafka_input_released_uncommitted_total",
                   "Messages of partitions released at a rebalance (or lost) that the next owner "
                   "reads again: read past the last commit the coordinator confirmed (or the "
                   "hand-over commit in the next assignment). High when acknowledgements outlast "
                   "rebalance_timeout or commits are refused.",
                   l);
    in->m_commit_refused =
        sl_counter("sluice_kafka_input_commit_refused_messages_total",
                   "Messages every sink had acknowledged in a released partition whose commit the "
                   "coordinator refused both at the release and at the hand-over in the next "
                   "assignment (and the partition did not come back): read again by the next "
                   "owner; part of released_uncommitted.",
                   l);
    in->m_wakeups = sl_counter("sluice_kafka_input_fetch_wakeups_total",
                               "Times a poll found nothing while a partition was behind its high "
                               "watermark, and the partitions' leaders were asked at once so "
                               "that librdkafka fetches again (it waits up to 1 s after its "
                               "queue was full).",
                               l);
    in->m_over_limit =
        sl_gauge("sluice_kafka_input_partitions_over_limit",
                 "Partitions assigned to this member past max_partitions: paused, not read "
                 "by it (their lag grows; their next owner reads them; decision 0067).",
                 l);
    in->m_rewound =
        sl_counter("sluice_kafka_input_batches_rewound_total",
                   "Batches not handed on because memory for their acknowledgement ran out: the "
                   "partition is set back to the batch's first message and read again, nothing "
                   "lost (decision 0071).",
                   l);
    in->m_nomem = sl_counter("sluice_kafka_input_retried_no_memory_total",
                             "Messages not taken for want of memory (an allocation failed): "
                             "their partition is set back to them and they are read again after "
                             "a nap, never dropped (decision 0070).",
                             l);
    in->m_handovers = sl_counter("sluice_kafka_input_handovers_total",
                                 "Released partitions whose refused revocation commit was "
                                 "recorded by a hand-over commit in the next assignment.",
                                 l);
}

static int consumer_new(kin *in, sl_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char brokers[4096] = "";
    for (size_t i = 0; i < in->nbrokers; i++) {
        size_t at = strlen(brokers);
        snprintf(brokers + at, sizeof brokers - at, "%s%s", i ? "," : "", in->brokers[i]);
    }
    struct {
        const char *k, *v;
    } fixed[] = {
        {"bootstrap.servers", brokers},
        {"group.id", in->group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", in->start == 0 ? "earliest" : "latest"},
        {"client.id", "sluice"},
        /* The prefetch bound, pinned (librdkafka 1.x allowed 1 GiB).
         * librdkafka before 2.2 (fetch.queue.backoff.ms) stops fetching
         * while the consumer queue holds more than either and looks again
         * up to 1 s later unless woken: before the input woke the fetchers
         * (wake_fetchers) the queue had to hold about a second of what the
         * sinks take (16 MiB capped an uncompressed topic at ~65,000
         * records/s, decision 0033). Woken as soon as the queue is empty,
         * 16 MiB read as fast as 64 MiB within the noise (benchmarks/
         * kafka_input.py), with 50-65 MiB less peak RSS and a shorter end of
         * a backlog (the input never drains 64 MiB while the fetchers sleep;
         * decision 0060). `librdkafka:` raises it for a far broker.
         * 12 MiB since decision 0064: with one zstd decompression per
         * message set the fetchers refill the queue sooner, and 16 MiB
         * then peaked ~9 MiB higher (7 of 8 paired rounds); 12 MiB kept
         * the peak at or below the previous build's for the same rate. */
        {"queued.max.messages.kbytes", "12288"},
        {"queued.min.messages", "100000"},
        /* A broker thread has one fetch in flight, and a fetch whose
         * partitions have nothing new waits this long. Under the prefetch
         * bound the partitions with a backlog are left out of the fetch
         * while the queue is full, so with librdkafka's 500 ms they then
         * waited for a fetch of caught-up partitions (idle slices in a
         * scheduler trace): 100 ms gave 1.4x the steady rate (decision
         * 0077), at up to 10 empty fetches a second per broker when idle. */
        {"fetch.wait.max.ms", "100"},
    };
    char errstr[512];
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (rd_kafka_conf_set(conf, fixed[i].k, fixed[i].v, errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            goto bad;
    for (int i = 0; i < in->nprops; i++)
        if (rd_kafka_conf_set(conf, in->props[i].k, in->props[i].v, errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            goto bad;
    rd_kafka_conf_set_opaque(conf, in);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_log_cb(conf, on_log);
    in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!in->rk) goto bad;
    rd_kafka_poll_set_consumer(in->rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new((int)in->ntopics);
    for (size_t i = 0; i < in->ntopics; i++)
        rd_kafka_topic_partition_list_add(t, in->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(in->rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (e) {
        rd_kafka_destroy(in->rk);
        in->rk = NULL;
        return sl_errf(err, SL_EINVAL, "input %s: subscribe: %s", in->ctx->name,
                       rd_kafka_err2str(e));
    }
    return SL_OK;
bad:
    rd_kafka_conf_destroy(conf);
    return sl_errf(err, SL_EINVAL, "input %s: librdkafka: %s", in->ctx->name, errstr);
}

/* glibc's allocator, set for librdkafka's way of decompressing a fetch:
 * Debian's librdkafka 2.0.2 decompresses each zstd message set into a fresh
 * buffer of a guessed size (2x, then 6x, 18x... the compressed size when
 * the frame does not say, as its own producer writes them) and frees it
 * once the messages are copied out. With glibc's defaults those buffers
 * come from mmap, or from an arena top that is given back to the kernel at
 * each free (trim threshold 128 KiB, raised only as far as the largest
 * mmap freed so far): every fetch faults in and zeroes its pages again.
 * Kept in the arenas: a third fewer page faults, ~6 % less CPU per GB of
 * Kafka -> Loki (median of 18 paired rounds) and ~10-40 MiB more peak RSS
 * (benchmarks/kafka_input.py, decision 0051). A process-wide setting, made
 * by every kafka input alike (the same values, so a second call changes
 * nothing and no flag is kept); memory freed below the high-water mark
 * stays mapped for reuse, so RSS stays near its peak after a burst. An
 * operator's own GLIBC_TUNABLES for malloc wins: nothing is changed then. */
#define MALLOC_MMAP_THRESHOLD (32 * 1024 * 1024) /* glibc's maximum */
#define MALLOC_TRIM_THRESHOLD (128 * 1024 * 1024)
static void tune_allocator(void)
{
#ifdef __GLIBC__
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.malloc.")) return;
    if (!mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) ||
        !mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))
        sl_log(SL_LOG_INFO, "kafka_malloc_tuning_refused", "mmap_threshold=%d trim_threshold=%d",
               MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD);
#endif
}

static int kin_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    kin *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    if (configure(in, ctx) != SL_OK) {
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) {
        free(in);
        *state = NULL;
        return SL_OK;
    }
    /* Pages of the table are touched only as entries are made. */
    in->parts = calloc((size_t)in->max_partitions, sizeof *in->parts);
    if (!in->parts) {
        free(in);
        return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    }
    in->rl_errors.interval_ns = 10 * 1000000000LL;
    in->rl_nomem.interval_ns = 60 * 1000000000LL;
    in->rl_rewind.interval_ns = 60 * 1000000000LL;
    tune_allocator();
    /* librdkafka's zstd decompression, once per message set (0064). */
    sl_kafka_zstd_init();
    if (!sl_kafka_zstd_bound())
        sl_log(SL_LOG_WARN, "kafka_zstd_not_interposed",
               "input=%s (librdkafka decompresses zstd sets its own way, up to 3 passes each; "
               "decision 0064)",
               ctx->name);
    pthread_mutex_init(&in->mu, NULL);
    register_metrics(in);
    int rc = consumer_new(in, err);
    if (rc != SL_OK) {
        pthread_mutex_destroy(&in->mu);
        free(in->parts);
        free(in);
        return rc;
    }
    /* Without it only the lag gauges stay at 0: not a reason to refuse. */
    in->lag_running = pthread_create(&in->lag_thread, NULL, lag_main, in) == 0;
    if (!in->lag_running)
        sl_log(SL_LOG_WARN, "kafka_lag_thread_failed", "input=%s (lag gauges stay 0)", ctx->name);
    *state = in;
    return SL_OK;
}

#define CLOCK_EVERY 64
static int kin_run(void *state)
{
    kin *in = state;
    /* The input's thread, apart from librdkafka's rdk:* threads in top -H,
     * perf and the benchmarks' per-thread CPU (decision 0083). */
    pthread_setname_np(pthread_self(), "sl:kafka-in");
    int64_t next_commit = 0, now = 0;
    int rc = SL_OK;
    /* The clock is read after an idle poll and every CLOCK_EVERY messages,
     * not after each: clock_gettime was 3 % of a Kafka -> Loki agent's CPU
     * (decision 0051). What it times (a batch's flush_interval, the commit
     * interval) is coarser than CLOCK_EVERY messages by far. */
    unsigned since_clock = CLOCK_EVERY;
    while (!atomic_load(in->ctx->stop)) {
        /* Without waiting first: librdkafka 2.0.2 reads the clocks three
         * to four times in a poll that may wait (its deadline, the queue's
         * timespec, the poll-interval stamps) and once in one that may
         * not, per message; only an empty queue waits (decision 0051). */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->rk, 0);
        if (!m) {
            /* Empty: a fetcher stopped by the queue bound may be asleep for
             * up to a second; wake it before waiting, not POLL_MS later
             * (decision 0060). */
            now = sl_monotonic_ns();
            since_clock = 0;
            wake_fetchers(in, now);
            m = rd_kafka_consumer_poll(in->rk, POLL_MS);
        }
        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                rc = SL_OK;
            } else if (m->err) {
                sl_metric_inc(in->m_errors);
                uint64_t suppressed;
                if (sl_ratelimit_ok(&in->rl_errors, &suppressed))
                    sl_log(SL_LOG_WARN, "kafka_consume_error", "input=%s error=%s suppressed=%llu",
                           in->ctx->name, rd_kafka_message_errstr(m),
                           (unsigned long long)suppressed);
            } else {
                rc = take_message(in, m);
                in->taken_since_caught_up++;
            }
            rd_kafka_message_destroy(m);
            if (rc == SL_ECLOSED) break;
            if (rc == SL_ENOMEM) {
                /* Set back to it (not_taken): read again once memory may
                 * be free, as the Loki sink naps when it has none. */
                struct timespec ts = {0, POLL_MS * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (!m || ++since_clock >= CLOCK_EVERY) {
            now = sl_monotonic_ns();
            since_clock = 0;
        }
        /* Caught up after at least a batch's worth of messages: the last
         * batch asks the sinks to send it with what they hold at once
         * rather than after their max_batch_wait, at most once a second; a
         * trickle never does (decision 0049, as the file and journald
         * inputs). The partition walk runs only after a batch's worth. */
        if (!m && in->taken_since_caught_up >= in->batch_records && caught_up(in)) {
            if (in->batch) sl_batch_urge(in->batch, now, &in->next_urgent_ns);
            in->taken_since_caught_up = 0;
        }
        if (in->batch && (!m || now - in->batch_started_ns >= in->flush_ms * 1000000)) {
            rc = flush(in);
            if (rc == SL_ECLOSED) break;
            if (rc == SL_ENOMEM) {
                /* Rewound and counted (flush): read again after a nap, as
                 * a message not taken. */
                struct timespec ts = {0, POLL_MS * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        /* The gauge walks the partition table: once per batch handed on
         * (flush), per idle poll and per commit, not per message. What it
         * leaves out meanwhile is the open batch, which no sink has. */
        if (now >= next_commit) {
            commit(in, false);
            next_commit = now + in->commit_ms * 1000000;
            update_uncommitted(in);
        } else if (!m) {
            update_uncommitted(in);
        }
    }
    if (in->batch && rc != SL_ECLOSED) flush(in);
    return SL_OK;
}

/* rd_kafka_consumer_close on a thread of its own, waited for at most
 * CLOSE_WAIT_MS. librdkafka 2.0.2 can hang in it for good: seen under the
 * sanitizers, its consumer group had terminated when it served a queued
 * revocation, and the callback's unassign (rd_kafka_assign) then waits for
 * an answer that group never sends. The caller has committed everything
 * acknowledged before, so giving up on the close loses nothing; the group
 * sees the member leave at its session timeout. */
#define CLOSE_WAIT_MS 30000 /* above COMMIT_WAIT_MS: the revocation's commit may wait that long */
typedef struct closing {
    rd_kafka_t *rk;
    atomic_bool done;
} closing;

static void *close_main(void *arg)
{
    closing *c = arg;
    rd_kafka_consumer_close(c->rk);
    atomic_store(&c->done, true);
    return NULL;
}

/* True when the close finished. False: it is stuck, and the handle, its
 * threads and the closer stay allocated until the process exits (a thread
 * inside librdkafka may still call back with its opaque). */
static bool close_bounded(rd_kafka_t *rk)
{
    closing *c = calloc(1, sizeof *c);
    pthread_t th;
    if (c) {
        c->rk = rk;
        atomic_init(&c->done, false);
    }
    if (!c || pthread_create(&th, NULL, close_main, c) != 0) {
        free(c);
        rd_kafka_consumer_close(rk);
        return true;
    }
    int64_t until = sl_monotonic_ns() + (int64_t)CLOSE_WAIT_MS * 1000000;
    while (!atomic_load(&c->done) && sl_monotonic_ns() < until) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&c->done)) {
        pthread_detach(th);
        return false;
    }
    pthread_join(th, NULL);
    free(c);
    return true;
}

/* After the sinks drained: commit what they acknowledged, then leave the
 * group (which revokes, waits and commits once more). */
static void kin_destroy(void *state)
{
    kin *in = state;
    if (!in) return;
    if (in->batch) sl_batch_unref(in->batch);
    in->batch = NULL;
    if (in->lag_running) {
        atomic_store(&in->lag_stop, true);
        pthread_join(in->lag_thread, NULL);
    }
    if (in->rk) {
        commit(in, true);
        in->rebalance_ms = 0; /* the sinks are done: nothing more will be acknowledged */
        if (!close_bounded(in->rk)) {
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "kafka_close_timeout",
                   "input=%s wait_ms=%d (librdkafka's close did not return: the group sees this "
                   "member leave at its session timeout; acknowledged offsets were committed)",
                   in->ctx->name, CLOSE_WAIT_MS);
            atomic_store(&in->abandoned, true);
            return; /* in stays: librdkafka's threads may still call back with it */
        }
        rd_kafka_destroy(in->rk);
    }
    for (size_t i = 0; i < in->nparts; i++)
        if (in->parts[i].wm) sl_watermark_unref(in->parts[i].wm);
    free(in->parts);
    pthread_mutex_destroy(&in->mu);
    if (in->chunk) sl_chunk_unref(in->chunk);
    free(in);
}

const sl_input_ops sl_kafka_input_ops = {.type = "kafka",
                                         .create = kin_create,
                                         .run = kin_run,
                                         .destroy = kin_destroy,
                                         .keys = kafka_input_keys,
                                         .nkeys = SL_CFG_NKEYS(kafka_input_keys)};
