#include "shipper/batcher.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "shipper/retry.h"

/* Batches taken from the buffer in one pop at most. */
#define POP_MAX 64

struct sl_batcher {
    const sl_sink_ctx *ctx;
    sl_batcher_opts o;
    sl_retry retry;
    sl_batch **pend; /* gathered, oldest first */
    uint32_t npend, cappend;
    uint64_t pend_bytes;
    int64_t pend_since_ns;
    /* After a give-back: the batches given back have waited already, so
     * pend is flushed as soon as they are gathered again (regather counts
     * down the ones still in the buffer), not max_wait after the first pop. */
    bool resend;
    uint32_t regather;
    /* What was given back has been sent again and its outcome is not known
     * yet (the sink still holds it): nothing new is popped meanwhile. A sink
     * that cannot deliver then keeps resending the same batches while new
     * ones stay in the buffer, counted against memory_max, so a full buffer
     * holds the inputs back (and a push input answers 429) instead of the
     * retry set swallowing the buffer at every backoff. */
    bool probation;
    /* A batch held has flush_now (a sender waits on it): what is queued
     * is taken without waiting, then flushed, not max_wait later. */
    bool urgent;
};

int sl_batcher_new(const sl_sink_ctx *ctx, const sl_batcher_opts *o, sl_batcher **out, sl_err *err)
{
    *out = NULL;
    if (!o->flush) return sl_errf(err, SL_EINVAL, "sink %s: batcher without flush", ctx->name);
    sl_batcher *bt = calloc(1, sizeof *bt);
    if (!bt) return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    bt->ctx = ctx;
    bt->o = *o;
    if (bt->o.min_backoff_ms < 1) bt->o.min_backoff_ms = 1;
    if (bt->o.max_backoff_ms < bt->o.min_backoff_ms) bt->o.max_backoff_ms = bt->o.min_backoff_ms;
    /* Seeded from the clock and the sink: agents restarted together must
     * not retry in lockstep. */
    sl_retry_init(&bt->retry, bt->o.min_backoff_ms, bt->o.max_backoff_ms,
                  (uint64_t)sl_monotonic_ns() ^ (uint64_t)(uintptr_t)bt);
    *out = bt;
    return SL_OK;
}

void sl_batcher_free(sl_batcher *bt)
{
    if (!bt) return;
    free(bt->pend);
    free(bt);
}

bool sl_batcher_stopping(const sl_batcher *bt)
{
    return atomic_load(bt->ctx->stop);
}

void sl_batcher_nap(const sl_batcher *bt, int64_t ms)
{
    int64_t end = sl_monotonic_ns() + ms * 1000000;
    while (!sl_batcher_stopping(bt)) {
        int64_t left = end - sl_monotonic_ns();
        if (left <= 0) break;
        if (left > 50 * 1000000) left = 50 * 1000000;
        struct timespec ts = {0, (long)left};
        nanosleep(&ts, NULL);
    }
}

void sl_batcher_give_back(sl_batcher *bt, sl_batch *const *b, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;) sl_buffer_unpop(bt->ctx->buffer, b[i]);
    bt->regather += n;
}

void sl_batcher_give_back_pending(sl_batcher *bt)
{
    sl_batcher_give_back(bt, bt->pend, bt->npend);
    bt->npend = 0;
    bt->pend_bytes = 0;
    bt->resend = true;
}

static void flush(sl_batcher *bt)
{
    if (!bt->npend) return;
    bt->urgent = false;
    uint32_t n = bt->npend, ndone = 0;
    int64_t retry_ms = -1;
    /* Flushing what was given back (all of it gathered, or the buffer had
     * no more): its outcome decides whether new batches are popped. */
    bool retried = bt->resend && bt->regather == 0;
    int r = bt->o.flush(bt->o.sink, bt->pend, n, &ndone, &retry_ms);
    if (r == SL_FLUSH_GIVEN) { /* given back by the sink (npend is 0 now) */
        bt->npend = 0;
        bt->pend_bytes = 0;
        bt->resend = true;
        return;
    }
    bt->npend = 0;
    bt->pend_bytes = 0;
    if (r == SL_FLUSH_TAKEN) {
        if (retried) {
            bt->resend = false;
            /* Until the sink reports it idle or gives it back (settle). */
            bt->probation = bt->o.settle != NULL;
        }
        return;
    }
    if (r == SL_FLUSH_DONE) ndone = n;
    if (ndone > n) ndone = n;
    for (uint32_t i = 0; i < ndone; i++) sl_batch_done(bt->pend[i]);
    if (r == SL_FLUSH_DONE) {
        sl_retry_success(&bt->retry);
        if (retried) bt->resend = false;
        return;
    }
    /* Not delivered: the batches wait in the buffer, not here, so memory
     * that fills up moves them to the spool and the input's checkpoint
     * moves on; they are popped again after the backoff. */
    sl_batcher_give_back(bt, bt->pend + ndone, n - ndone);
    if (r == SL_FLUSH_RETRY) {
        bt->resend = true;
        if (retry_ms < 0) retry_ms = sl_retry_next(&bt->retry, -1);
        sl_batcher_nap(bt, retry_ms);
    }
}

/* Makes room in pend for n more batches; false when there is none and no
 * memory for more. */
static bool grow(sl_batcher *bt, uint32_t n)
{
    if (bt->cappend - bt->npend >= n) return true;
    uint32_t nc = bt->cappend ? bt->cappend : 64;
    while (nc - bt->npend < n) nc *= 2;
    sl_batch **p = realloc(bt->pend, nc * sizeof *p);
    if (!p) return false;
    bt->pend = p;
    bt->cappend = nc;
    return true;
}

/* Batches popped but not held go back to the front of the buffer in their
 * order: newest first, each ahead of the last. */
static void give_back_popped(sl_batcher *bt, sl_batch *const *got, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;) sl_buffer_unpop(bt->ctx->buffer, got[i]);
}

int sl_batcher_run(sl_batcher *bt)
{
    for (;;) {
        if (sl_batcher_stopping(bt)) break;
        int64_t timeout = 200;
        if (bt->o.settle) {
            int64_t most = bt->o.settle(bt->o.sink);
            if (most >= 0 && most < timeout) timeout = most;
            if (bt->probation) {
                /* Over when the sink is idle (what was resent was
                 * delivered) or gave it back again (resend). */
                if (bt->resend || most < 0) {
                    bt->probation = false;
                } else {
                    sl_batcher_nap(bt, most > 0 ? most : 1);
                    continue;
                }
            }
        }
        if (bt->npend && (bt->resend || bt->urgent)) {
            timeout = 0; /* take what is queued, then flush */
        } else if (bt->npend) {
            int64_t left =
                (bt->pend_since_ns + bt->o.max_wait_ms * 1000000 - sl_monotonic_ns()) / 1000000;
            if (left <= 0) {
                flush(bt);
                continue;
            }
            if (left < timeout) timeout = left;
        }
        /* What is queued, in one pop: as much as fits under max_bytes with
         * what is held (the first batch always), and while resending no
         * more than what was given back. */
        sl_batch *got[POP_MAX];
        uint32_t ngot = 0, most = POP_MAX;
        uint64_t room = bt->pend_bytes < bt->o.max_bytes ? bt->o.max_bytes - bt->pend_bytes : 0;
        if (bt->resend && bt->regather && bt->regather < most) most = bt->regather;
        int rc = sl_buffer_pop_many(bt->ctx->buffer, got, most, room, &ngot, timeout);
        if (rc == SL_ECLOSED) {
            /* Draining at shutdown: a failed flush gave its batches back,
             * so they are popped and tried again until delivered or told
             * to stop. */
            if (!bt->npend) break;
            flush(bt);
            continue;
        }
        if (rc != SL_OK) {
            if (bt->urgent && bt->npend && !bt->resend) {
                flush(bt); /* nothing more queued, and a sender waits */
                continue;
            }
            if (bt->resend) {
                /* Nothing more queued: fewer came back than were given
                 * (dropped as the oldest, or joined in the spool). */
                bt->regather = 0;
                if (bt->npend)
                    flush(bt);
                else
                    bt->resend = false;
            }
            continue;
        }
        /* The rest fit by the pop's bound, so only the first can overflow
         * what is held. */
        if (bt->npend && (bt->pend_bytes + got[0]->bytes > bt->o.max_bytes || !grow(bt, ngot))) {
            /* What was popped goes back before the flush (newest first, so
             * the order is kept): a flush that fails gives what it held
             * back to the front of the buffer, and these, newer, must come
             * after it, or a Loki stream's newer entries would reach Loki
             * first and the older ones be refused as out of order. */
            give_back_popped(bt, got, ngot);
            flush(bt);
            continue;
        }
        if (!grow(bt, ngot)) { /* nothing held, and no memory to hold these */
            give_back_popped(bt, got, ngot);
            if (sl_batcher_stopping(bt)) break;
            sl_batcher_nap(bt, 100);
            continue;
        }
        if (!bt->npend) {
            bt->pend_since_ns = sl_monotonic_ns();
            bt->urgent = false; /* what set it was given back, not flushed */
        }
        for (uint32_t i = 0; i < ngot; i++) {
            sl_batch *b = got[i];
            bt->pend[bt->npend++] = b;
            bt->pend_bytes += b->bytes;
            bt->urgent |= b->flush_now;
            if (bt->resend && bt->regather) bt->regather--;
        }
        if (bt->pend_bytes >= bt->o.max_bytes || (bt->resend && !bt->regather)) flush(bt);
    }
    /* Stopped: what was not delivered goes back to the buffer, which spools
     * it or releases it unacknowledged (read again after a restart); what
     * is held here first, so that what the sink keeps (older) comes before
     * it. */
    sl_batcher_give_back(bt, bt->pend, bt->npend);
    bt->npend = 0;
    bt->pend_bytes = 0;
    if (bt->o.stopped) bt->o.stopped(bt->o.sink);
    return SL_OK;
}
