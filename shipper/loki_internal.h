/* What the Loki sink's files share (loki.c: batching and the workers;
 * loki_config.c: configuration; loki_send.c: sending with the status
 * policy). Not a public interface: shipper/loki.h is. */
#ifndef SLUICE_SHIPPER_LOKI_INTERNAL_H
#define SLUICE_SHIPPER_LOKI_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "shipper/batcher.h"
#include "shipper/http.h"
#include "shipper/loki_encode.h"
#include "shipper/loki_limits.h"
#include "shipper/loki_tenant.h"
#include "shipper/retry.h"

#define LOKI_MAX_LABELS 64
#define LOKI_MAX_META   64

enum { ENC_PROTOBUF, ENC_JSON };
enum { COMP_SNAPPY, COMP_GZIP, COMP_NONE };

/* A record range of one batch; requests are lists of spans so a 413 can
 * split inside a batch. */
typedef struct span {
    sl_batch *b;
    uint32_t first, count;
} span;

/* How a request ended. RETRY: it failed and may succeed later; with one
 * worker the caller gives the batches back to the buffer and waits (the
 * input's checkpoint keeps moving meanwhile, decision 0016). */
enum { SENT, ABORTED, RETRY };

/* Requests of one flush: with concurrency N, every worker sends the part of
 * the same batches whose streams hash to it; the batches are acknowledged
 * once every part is delivered. */
typedef struct job {
    sl_batch **b;
    uint64_t *skip; /* per batch, parts delivered before it was given back
                       (bit = worker), or NULL: see given_part */
    uint32_t n;
    uint32_t left; /* parts not finished */
    uint64_t sent; /* parts delivered (bit = worker) */
    bool aborted;  /* a part was not delivered (stopping) */
    bool acked;    /* every part delivered and the batches acknowledged */
    bool built;    /* concurrency 1: its request is built (pre[number % 2]) */
    bool claimed;  /* max_in_flight > 1: a worker sends it (whole) */
} job;

/* Jobs in flight (queued or being sent): enough to keep every worker busy
 * while the next flush is gathered, few enough to bound memory. */
#define LOKI_JOBS 4
/* The ring's slots: max_in_flight whole jobs at most (the key's maximum). */
#define LOKI_RING 64
/* With several workers, failures in a row a part is retried holding its
 * job before the job is given back (see retry_later). */
#define LOKI_HOLD_TRIES 3
/* Batches given back with parts already delivered that the sink remembers
 * (about 4 jobs of small batches); beyond it the oldest are forgotten and
 * their delivered parts are sent again. */
#define LOKI_GIVEN_MAX 4096

/* A batch given back (concurrency > 1) after some workers delivered their
 * parts of it: when it comes back, those parts are skipped, so Loki never
 * gets a stream's entries again after newer ones (an ordered Loki refuses
 * them as out of order). Known by content, since a given-back batch may
 * come back as another object (moved to the spool and read again). */
typedef struct given_part {
    uint64_t key;  /* batch_key */
    uint64_t sent; /* parts delivered (bit = worker) */
} given_part;

struct loki;

/* One request in flight at a time, with its own connection, encoder,
 * buffers and backoff. */
typedef struct worker {
    struct loki *s;
    uint32_t id;
    sl_http *http;
    sl_loki_req *req;
    sl_buf raw, body;
    sl_retry retry;
    int64_t wait_ms; /* after RETRY: how long to wait before the next try */
    pthread_t thr;
    bool started;
    bool built;    /* req/raw/body hold the request of the job being sent */
    uint64_t next; /* the next job this worker sends */
} worker;

/* Concurrency 1 pipelines: the sink's thread builds the next request (a
 * job's encoder and body, in its slot) while the worker sends the one
 * before; the worker swaps them with its own when it takes the job. The
 * uncompressed protobuf is needed only while building: one buffer,
 * pre_raw, serves every slot. */
typedef struct prebuilt {
    sl_loki_req *req;
    sl_buf body;
} prebuilt;

typedef struct loki {
    const sl_sink_ctx *ctx;
    char *url_log; /* the url without credentials */
    int encoding, compression;
    int64_t max_wait_ms;
    uint64_t max_batch_bytes;
    int64_t min_backoff_ms, max_backoff_ms;
    sl_loki_opts eopts;
    sl_loki_limits limits;
    sl_loki_tpl *tenant_tpl; /* a tenant per record, or NULL */
    sl_loki_kv labels[LOKI_MAX_LABELS];
    sl_slice meta[LOKI_MAX_META];
    char *strings[2 * LOKI_MAX_LABELS + LOKI_MAX_META]; /* owned copies */
    size_t nstrings;
    sl_batcher *batcher; /* pops, gathers, flushes, gives back (shipper/batcher.h) */

    worker *w;
    uint32_t nw;
    /* Workers (concurrency > 1) and the job ring, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ok, quit;
    bool retrying;          /* a part failed: workers skip, settle() gives back */
    int64_t retry_until_ns; /* the latest end of the backoffs asked for meanwhile */
    job ring[LOKI_RING];
    uint32_t njobs; /* jobs in flight at most: LOKI_JOBS, or 1 with
                       one worker (the next is built meanwhile), or
                       max_in_flight */
    /* max_in_flight > 1 (decision 0040): each job is a whole request that
     * any free worker sends; at most `limit` are in flight, raised while
     * the destination holds the sink back and halved when it says it is
     * overloaded (429, 5xx, 408, a transport error). */
    bool whole, adaptive;
    uint32_t limit;        /* under mu; the gauge sluice_sink_concurrency */
    bool congested;        /* under mu: an overload answer since the last look */
    uint32_t win_jobs;     /* sink thread: the controller's window */
    int64_t win_start_ns;  /* ... its start */
    uint64_t win_bytes;    /* ... record text published in it */
    bool win_waited;       /* ... a flush waited for a free slot in it */
    double rate_before;    /* bytes/s of the window before the last raise */
    bool probing;          /* the last window raised the limit */
    uint32_t limit_before; /* ... from this */
    bool grown;            /* past the doubling: a raise did not pay, or overload */
    uint32_t hold;         /* windows to wait before raising again */
    uint64_t head, tail;   /* ring[head % njobs ..tail) in flight */
    prebuilt pre[2];       /* concurrency 1: requests built ahead, by parity
                              of their job's number */
    sl_buf pre_raw;        /* sink thread: their uncompressed protobuf */
    given_part *given;     /* sink thread only */
    uint32_t ngiven, capgiven;

    const sl_sink_metrics *m; /* registered by the pipeline */
    sl_sink_metrics own_m;    /* created outside a pipeline */
    sl_metric *m_invalid, *m_adjusted[SL_LOKI_ADJ_N], *m_status, *m_limit;
    bool failing;
    uint32_t fail_streak;
    sl_ratelimit rl_fail, rl_drop, rl_adj;
} loki;

static inline bool loki_stopping(const loki *s)
{
    return atomic_load(s->ctx->stop);
}

/* Sleeps ms, waking early on stop. */
static inline void loki_nap(const loki *s, int64_t ms)
{
    sl_batcher_nap(s->batcher, ms);
}

/* loki.c: the sink's batcher (flush, settle, stopped are loki.c's). */
int sl_loki_batcher_new(loki *s, sl_err *err);
/* loki.c: the destination answered as an overloaded one does (429, 5xx,
 * 408, a transport error): the adaptive limit is halved at the next flush. */
void sl_loki_congested(loki *s);

/* loki_config.c */
int sl_loki_sink_create(const sl_sink_ctx *ctx, void **state, sl_err *err);
void sl_loki_sink_destroy(void *state);
int sl_loki_sink_probe(const sl_sink_ctx *ctx, sl_err *result);

/* loki_send.c: sends batches (all their records, or with concurrency > 1
 * this worker's streams, except in the batches whose skip has this
 * worker's bit: its part of them was delivered before they were given
 * back). SENT, ABORTED or RETRY (w->wait_ms says how long to wait). */
int sl_loki_send_batches(worker *w, sl_batch *const *b, const uint64_t *skip, uint32_t n);
/* loki_send.c: what a 400's body says Loki refused: the reason label, and
 * in *dropped how many of the request's entries; *per_entry false when it
 * refused the request as a whole. */
const char *sl_loki_classify_400(const char *body, bool truncated, uint64_t entries,
                                 uint64_t *dropped, bool *per_entry);
/* loki_send.c: builds the request of all records of b[0..n) into w's
 * encoder and buffers as send_batches would (no tenant template), so it
 * is sent without building again (w->built). 0 or an error code. */
int sl_loki_prebuild(worker *w, sl_batch *const *b, uint32_t n, sl_err *err);

/* The sink's key table (loki_config.c; the ops table in loki.c names it). */
#define SL_LOKI_NKEYS 24
extern const sl_cfg_key sl_loki_keys[SL_LOKI_NKEYS];

#endif
