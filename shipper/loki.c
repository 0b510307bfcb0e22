/* The Loki sink: batching through the shared batcher (shipper/batcher.h),
 * and with `concurrency` N the workers' job ring: each flush becomes one
 * job whose parts (the streams that hash to a worker) are sent by N
 * workers at once; a job is acknowledged once every part is delivered, and
 * after a failure everything not delivered is given back in order
 * (settle). Configuration is in loki_config.c, sending with the status
 * policy in loki_send.c, what Loki accepts in loki_limits.c, the wire
 * format in loki_encode.c, per-record tenants in loki_tenant.c, `sluice
 * check`'s warnings in loki_check.c. */
#include "shipper/loki.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shipper/loki_internal.h"

/* What identifies a batch's content (input, source, times and lines), so
 * a batch given back is known again when it comes back from the spool as
 * another object. Two batches alike in all of that hold the same entries,
 * which Loki keeps once anyway. */
static uint64_t batch_key(const sl_batch *b)
{
    uint64_t h = 0xcbf29ce484222325ull;
#define MIX(p, n)                                                                                  \
    for (size_t k_ = 0; k_ < (n); k_++)                                                            \
    h = (h ^ ((const unsigned char *)(p))[k_]) * 0x100000001b3ull
    uint64_t nr = b->nrecords;
    MIX(&nr, sizeof nr);
    if (b->input) MIX(b->input, strlen(b->input) + 1);
    if (b->source) MIX(b->source, strlen(b->source) + 1);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        uint64_t t = (uint64_t)r->time_ns, ln = r->line.n;
        MIX(&t, sizeof t);
        MIX(&ln, sizeof ln);
        MIX(r->line.p, r->line.n);
    }
#undef MIX
    return h;
}

/* Remembers that parts sent of batch b were delivered before b was given
 * back. Sink thread. */
static void remember_given(loki *s, const sl_batch *b, uint64_t sent)
{
    if (s->ngiven == s->capgiven) {
        uint32_t nc = s->capgiven ? s->capgiven * 2 : 64;
        given_part *g = nc <= LOKI_GIVEN_MAX ? realloc(s->given, nc * sizeof *g) : NULL;
        if (g) {
            s->given = g;
            s->capgiven = nc;
        } else if (s->ngiven) { /* forget the oldest: their parts come again */
            memmove(s->given, s->given + 1, --s->ngiven * sizeof *s->given);
        } else {
            return;
        }
    }
    s->given[s->ngiven++] = (given_part){batch_key(b), sent};
}

/* The parts of b delivered before it was given back (0: none, or not
 * remembered), forgetting them: if b is given back again, its job says so
 * again. Sink thread. */
static uint64_t recall_given(loki *s, const sl_batch *b)
{
    if (!s->ngiven) return 0;
    uint64_t key = batch_key(b);
    for (uint32_t i = 0; i < s->ngiven; i++) {
        if (s->given[i].key != key) continue;
        uint64_t sent = s->given[i].sent;
        memmove(s->given + i, s->given + i + 1, (--s->ngiven - i) * sizeof *s->given);
        return sent;
    }
    return 0;
}

/* max_in_flight > 1: sends the oldest job no worker has taken yet, whole
 * (or waits for one when wait is set), and acknowledges its batches when
 * delivered. False when there is nothing left to do. mu is not held. */
static bool work_whole(worker *w, bool wait)
{
    loki *s = w->s;
    pthread_mutex_lock(&s->mu);
    job *j = NULL;
    for (;;) {
        for (uint64_t k = s->head; k < s->tail && !j; k++)
            if (!s->ring[k % s->njobs].claimed) j = &s->ring[k % s->njobs];
        if (j || !wait || s->quit) break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (!j) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    j->claimed = true;
    /* Another job failed: this one is given back with it (settle). */
    bool skip = s->retrying;
    pthread_mutex_unlock(&s->mu);
    int rc = skip ? RETRY : sl_loki_send_batches(w, j->b, NULL, j->n);
    pthread_mutex_lock(&s->mu);
    if (rc == SENT) j->sent = 1;
    if (rc != SENT) j->aborted = true;
    if (rc == RETRY && !skip) {
        s->retrying = true;
        int64_t until = sl_monotonic_ns() + w->wait_ms * 1000000;
        if (until > s->retry_until_ns) s->retry_until_ns = until;
    }
    j->left = 0;
    if (!j->aborted) {
        for (uint32_t i = 0; i < j->n; i++) sl_batch_done(j->b[i]);
        j->acked = true;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

/* Sends the worker's part of its next job, if there is one (or waits for
 * one when wait is set). The worker that finishes a job's last part
 * acknowledges its batches, unless a part was abandoned at shutdown. False
 * when there is nothing left to do. mu is not held. */
static bool work_one(worker *w, bool wait)
{
    loki *s = w->s;
    if (s->whole) return work_whole(w, wait);
    pthread_mutex_lock(&s->mu);
    while (wait && w->next == s->tail && !s->quit) pthread_cond_wait(&s->cv, &s->mu);
    if (w->next == s->tail) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    /* The slot is not reused before every part, ours included, is done. */
    uint32_t slot = (uint32_t)(w->next % s->njobs);
    job *j = &s->ring[slot];
    /* Another part failed: this one is given back with it rather than
     * sent after it, so a stream's entries never overtake each other. */
    bool skip = s->retrying;
    pthread_mutex_unlock(&s->mu);
    if (!skip && j->built) { /* take the request built ahead, leave ours */
        prebuilt *p = &s->pre[w->next % 2];
        sl_loki_req *q = w->req;
        sl_buf body = w->body;
        w->req = p->req, w->body = p->body;
        p->req = q, p->body = body;
        w->built = true;
    }
    int rc = skip ? RETRY : sl_loki_send_batches(w, j->b, j->skip, j->n);
    w->built = false;
    pthread_mutex_lock(&s->mu);
    if (rc == SENT) j->sent |= 1ull << w->id;
    if (rc != SENT) j->aborted = true;
    if (rc == RETRY && !skip) {
        s->retrying = true;
        int64_t until = sl_monotonic_ns() + w->wait_ms * 1000000;
        if (until > s->retry_until_ns) s->retry_until_ns = until;
    }
    bool last = --j->left == 0, ack = last && !j->aborted;
    w->next++;
    /* Acknowledged under mu: settle() sees the last part finish and must
     * see the job acknowledged with it, or it would give back batches
     * already done. */
    if (ack) {
        for (uint32_t i = 0; i < j->n; i++) sl_batch_done(j->b[i]);
        j->acked = true;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void *worker_main(void *arg)
{
    /* Named for top -H, perf and the benchmarks' per-thread CPU (0083). */
    pthread_setname_np(pthread_self(), "sl:loki-worker");
    while (work_one(arg, true)) {
    }
    return NULL;
}

/* Frees acknowledged jobs at the head of the ring; mu held. */
static void reap(loki *s)
{
    while (s->head < s->tail) {
        job *j = &s->ring[s->head % s->njobs];
        if (!j->acked) break;
        free(j->b);
        free(j->skip);
        j->b = NULL;
        j->skip = NULL;
        s->head++;
    }
}

/* True when no queued job has a part still being sent; mu held. */
static bool ring_idle(const loki *s)
{
    for (uint64_t k = s->head; k < s->tail; k++)
        if (s->ring[k % s->njobs].left) return false;
    return true;
}

/* With several workers, after a part failed: once every queued job is
 * finished or skipped, gives back what was not delivered (what the batcher
 * gathered, then the jobs, newest first, so the buffer keeps the order)
 * and waits the backoff holding nothing, as one worker does. The parts of
 * a job given back that were delivered are remembered with its batches and
 * skipped when they come back: sent again, they would reach Loki after
 * newer entries of their streams (each worker delivers its parts in order,
 * so what it delivered of the jobs given back is older than anything it
 * sends next). False at once when nothing failed; when stopping,
 * loki_stopped() gives back instead. */
static bool settle(loki *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->retrying) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    while (!ring_idle(s) && !loki_stopping(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    if (!ring_idle(s)) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    job back[LOKI_RING];
    uint32_t nback = 0;
    for (uint64_t k = s->tail; k-- > s->head;) back[nback++] = s->ring[k % s->njobs];
    s->head = s->tail;
    int64_t until = s->retry_until_ns;
    s->retrying = false;
    s->retry_until_ns = 0;
    pthread_mutex_unlock(&s->mu);
    sl_batcher_give_back_pending(s->batcher);
    for (uint32_t i = nback; i-- > 0;) /* oldest first: recalled in that order */
        for (uint32_t k = 0; !back[i].acked && k < back[i].n; k++) {
            uint64_t sent = back[i].sent | (back[i].skip ? back[i].skip[k] : 0);
            if (sent) remember_given(s, back[i].b[k], sent);
        }
    for (uint32_t i = 0; i < nback; i++) {
        if (!back[i].acked) sl_batcher_give_back(s->batcher, back[i].b, back[i].n);
        free(back[i].b);
        free(back[i].skip);
    }
    /* Each backoff counts from its worker's failure, not from when the
     * last part finished. */
    int64_t left = (until - sl_monotonic_ns()) / 1000000;
    if (left > 0) loki_nap(s, left);
    return true;
}

void sl_loki_congested(loki *s)
{
    if (!s->adaptive) return;
    pthread_mutex_lock(&s->mu);
    s->congested = true;
    pthread_mutex_unlock(&s->mu);
}

/* The adaptive limit on whole requests in flight (decision 0040), on the
 * sink's thread as a job is published (mu held): halved at once after an
 * overload answer; otherwise judged once a window (enough jobs for every
 * slot to turn over once, and 50 ms): raised when a flush had to wait for
 * a free slot (the requests in flight hold the sink back) unless the last
 * raise bought less than 5 % more throughput, in which case it is taken
 * back and held for 16 windows before probing again. Raised by doubling
 * until the first raise that did not pay or the first overload (a distant
 * Loki is reached in a few round trips), by one after. */
static void adapt(loki *s, bool waited, uint64_t bytes)
{
    int64_t now = sl_monotonic_ns();
    uint32_t was = s->limit;
    if (s->congested) {
        s->congested = false;
        s->limit = s->limit > 1 ? s->limit / 2 : 1;
        s->probing = false;
        s->grown = true;
        s->hold = 4;
        s->win_jobs = 0;
    } else {
        if (s->win_jobs == 0) {
            s->win_start_ns = now;
            s->win_bytes = 0;
            s->win_waited = false;
        }
        s->win_jobs++;
        s->win_bytes += bytes;
        s->win_waited |= waited;
        int64_t span = now - s->win_start_ns;
        if (s->win_jobs < s->limit + 2 || span < 50 * 1000000) return;
        double rate = (double)s->win_bytes * 1e9 / (double)span;
        s->win_jobs = 0;
        if (!s->win_waited) { /* the destination keeps up */
            s->probing = false;
        } else if (s->probing && rate < s->rate_before * 1.05) {
            s->limit = s->limit_before; /* the raise bought nothing */
            s->probing = false;
            s->grown = true;
            s->hold = 16;
        } else if (s->hold) {
            s->hold--;
            s->probing = false;
        } else if (s->limit < s->nw) {
            s->rate_before = rate;
            s->limit_before = s->limit;
            s->limit = s->grown ? s->limit + 1 : s->limit * 2 < s->nw ? s->limit * 2 : s->nw;
            s->probing = true;
        } else {
            s->probing = false;
        }
    }
    if (s->limit != was) sl_metric_set(s->m_limit, s->limit);
}

/* Jobs in flight: the next pop waits at most this long, so a part that
 * failed is given back and retried after its backoff, not after the
 * batcher's idle wait. */
#define LOKI_POLL_MS 5

static int64_t loki_settle(void *arg)
{
    loki *s = arg;
    if (settle(s)) return 0;
    pthread_mutex_lock(&s->mu);
    reap(s);
    bool busy = s->head < s->tail;
    pthread_mutex_unlock(&s->mu);
    return busy ? LOKI_POLL_MS : -1;
}

/* The batcher's flush: with one worker, b is sent here, one request at a
 * time; with several, b becomes one job, split by stream over the
 * workers, so each stream's entries leave in order while N requests are in
 * flight. */
static int loki_flush(void *arg, sl_batch *const *b, uint32_t n, uint32_t *ndone, int64_t *retry_ms)
{
    loki *s = arg;
    *ndone = 0;
    (void)retry_ms; /* a failed part's backoff is waited in settle() */
    if (settle(s)) return SL_FLUSH_GIVEN;
    sl_batch **jb = malloc(n * sizeof *jb);
    while (!jb && !loki_stopping(s)) {
        loki_nap(s, 100);
        jb = malloc(n * sizeof *jb);
    }
    if (!jb) return SL_FLUSH_STOPPED;
    memcpy(jb, b, n * sizeof *jb);
    uint64_t *skip = NULL;
    if (s->ngiven) { /* batches given back: which parts were delivered */
        skip = calloc(n, sizeof *skip);
        while (!skip && !loki_stopping(s)) {
            loki_nap(s, 100);
            skip = calloc(n, sizeof *skip);
        }
        if (!skip) {
            free(jb);
            return SL_FLUSH_STOPPED;
        }
        bool any = false;
        for (uint32_t i = 0; i < n; i++) any |= (skip[i] = recall_given(s, jb[i])) != 0;
        if (!any) {
            free(skip);
            skip = NULL;
        }
    }
    bool built = false;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) bytes += jb[i]->bytes;
    if (s->nw == 1 && !s->tenant_tpl && !skip) {
        /* Encodes this request while the one before is in flight, into the
         * spare that the job before did not use (tail moves on the sink's
         * thread only; the worker takes a spare once its job is
         * published, and the one before this was taken with its job). */
        uint32_t slot = (uint32_t)(s->tail % 2);
        sl_err err = {0};
        worker tmp = {
            .s = s, .req = s->pre[slot].req, .raw = s->pre_raw, .body = s->pre[slot].body};
        built = sl_loki_prebuild(&tmp, jb, n, &err) == 0;
        s->pre_raw = tmp.raw;
        s->pre[slot].body = tmp.body;
    }
    pthread_mutex_lock(&s->mu);
    reap(s);
    /* max_in_flight: at most `limit` jobs in the ring (it may have been
     * halved below what is in flight; only adapt(), on this thread, moves
     * it). */
    uint64_t room = s->whole ? s->limit : s->njobs;
    bool waited = false;
    while (s->tail - s->head >= room && !loki_stopping(s) && !s->retrying) {
        waited = true;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        reap(s);
    }
    if (s->tail - s->head >= room) {
        pthread_mutex_unlock(&s->mu);
        /* What was recalled goes back with b (its parts stay skipped). */
        for (uint32_t i = 0; skip && i < n; i++)
            if (skip[i]) remember_given(s, jb[i], skip[i]);
        free(jb);
        free(skip);
        /* A part failed (or stopping: b goes back, then the jobs). */
        return settle(s) ? SL_FLUSH_GIVEN : SL_FLUSH_STOPPED;
    }
    if (s->adaptive) adapt(s, waited, bytes);
    s->ring[s->tail % s->njobs] = (job){
        .b = jb, .skip = skip, .n = n, .left = s->whole ? 1 : s->nw, .sent = 0, .built = built};
    s->tail++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    /* A worker whose thread could not start is served here. */
    for (uint32_t i = 0; i < s->nw; i++)
        while (!s->w[i].started && work_one(&s->w[i], false)) {
        }
    return SL_FLUSH_TAKEN;
}

/* After the batcher's loop (it gave back what it gathered): stops the
 * workers once every job is sent (or abandoned at shutdown) and gives back
 * what was not delivered, newest first. */
static void loki_stopped(void *arg)
{
    loki *s = arg;
    {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (uint32_t i = 0; i < s->nw; i++) {
            if (s->w[i].started)
                pthread_join(s->w[i].thr, NULL);
            else
                while (work_one(&s->w[i], false)) {
                }
            s->w[i].started = false;
        }
    }
    for (uint64_t k = s->tail; k-- > s->head;) {
        job *j = &s->ring[k % s->njobs];
        if (!j->acked) sl_batcher_give_back(s->batcher, j->b, j->n);
        free(j->b);
        free(j->skip);
        j->b = NULL;
        j->skip = NULL;
    }
    s->head = s->tail;
}

int sl_loki_batcher_new(loki *s, sl_err *err)
{
    sl_batcher_opts o = {.max_bytes = s->max_batch_bytes,
                         .max_wait_ms = s->max_wait_ms,
                         .min_backoff_ms = s->min_backoff_ms,
                         .max_backoff_ms = s->max_backoff_ms,
                         .sink = s,
                         .flush = loki_flush,
                         .settle = loki_settle,
                         .stopped = loki_stopped};
    return sl_batcher_new(s->ctx, &o, &s->batcher, err);
}

static int loki_run(void *state)
{
    loki *s = state;
    /* The sink's thread (batching, encoding), told apart from its workers
     * and the inputs in top -H, perf and the benchmarks (decision 0083). */
    pthread_setname_np(pthread_self(), "sl:loki");
    for (uint32_t i = 0; i < s->nw; i++) {
        s->w[i].started = pthread_create(&s->w[i].thr, NULL, worker_main, &s->w[i]) == 0;
        if (!s->w[i].started)
            sl_log(SL_LOG_WARN, "sink_worker_failed",
                   "sink=%s worker=%u error=\"cannot start a thread; its requests are sent by "
                   "the sink's thread\"",
                   s->ctx->name, i);
    }
    return sl_batcher_run(s->batcher);
}

const sl_sink_ops sl_loki_sink_ops = {.type = "loki",
                                      .create = sl_loki_sink_create,
                                      .run = loki_run,
                                      .destroy = sl_loki_sink_destroy,
                                      .probe = sl_loki_sink_probe,
                                      .check_inputs = sl_loki_check_labels,
                                      .keys = sl_loki_keys,
                                      .nkeys = SL_LOKI_NKEYS};
