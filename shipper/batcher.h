/* The loop every request-based sink shares: pop batches from the sink's
 * buffer, gather them until max_bytes or max_wait, hand them to the sink's
 * flush, then acknowledge them (sl_batch_done), or give them back to the
 * buffer and wait the shared backoff (shipper/retry.h) holding nothing, so
 * the input's checkpoint keeps moving and memory that fills up moves them
 * to the spool (decision 0016); at shutdown what was not delivered goes
 * back to the buffer, which spools it or leaves it unacknowledged
 * (decision 0017). A sink writes flush (and, when it keeps batches past a
 * flush, settle and stopped); everything about when to flush, acknowledge,
 * give back and wait is here. See docs/decisions/0027-sink-batcher.md. */
#ifndef SLUICE_SHIPPER_BATCHER_H
#define SLUICE_SHIPPER_BATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/plugin.h"

typedef struct sl_batcher sl_batcher;

/* What a flush did with b[0..n). */
enum sl_flush_result {
    /* Delivered, or refused for good and counted: the batcher acknowledges
     * every batch. */
    SL_FLUSH_DONE,
    /* The sink keeps the batches and later acknowledges each
     * (sl_batch_done) or gives them back (sl_batcher_give_back): requests
     * in flight on other threads (Loki's concurrency), a producer's
     * delivery reports (Kafka). */
    SL_FLUSH_TAKEN,
    /* b[0..*ndone) were done (acknowledged by the batcher); the rest failed
     * and may succeed later: they go back to the buffer and the batcher
     * waits *retry_ms (< 0: its own backoff's next delay) before popping
     * them again. */
    SL_FLUSH_RETRY,
    /* Told to stop: b[*ndone..n) go back to the buffer. */
    SL_FLUSH_STOPPED,
    /* The sink gave the batches back itself (sl_batcher_give_back_pending
     * in its settle, in the order it needs) and waited: popped again at
     * once. */
    SL_FLUSH_GIVEN,
};

typedef struct sl_batcher_opts {
    /* Flush when the batches held reach this many bytes of record text;
     * 0: after every batch. */
    uint64_t max_bytes;
    /* Flush this long after the first batch held; 0: at once. */
    int64_t max_wait_ms;
    /* The backoff for a RETRY that names no delay (full jitter,
     * shipper/retry.h). */
    int64_t min_backoff_ms, max_backoff_ms;
    void *sink; /* the first argument of the callbacks */
    /* Sends or writes b[0..n) (oldest first); returns enum sl_flush_result. */
    int (*flush)(void *sink, sl_batch *const *b, uint32_t n, uint32_t *ndone, int64_t *retry_ms);
    /* Optional, before each pop: a sink that keeps batches past a flush
     * (TAKEN) gives them back here after a failure, pending ones first
     * (sl_batcher_give_back_pending). Returns how long the next pop may
     * wait at most, in ms (< 0: no limit of its own), so a failure on
     * another thread is seen soon while the sink has something in flight;
     * an idle sink returns < 0 and the batcher wakes rarely. After a
     * give-back, the batcher sends again only what was given back and pops
     * nothing new until settle gives it back again or returns < 0 (all
     * delivered): a failing sink holds no more than its retry set, and what
     * arrives meanwhile stays in the buffer, where it counts against
     * memory_max and holds the inputs back. */
    int64_t (*settle)(void *sink);
    /* Optional, once the loop ends (stopping, or closed and drained),
     * after the batches held were given back: the sink gives back what it
     * still keeps, newest first. */
    void (*stopped)(void *sink);
} sl_batcher_opts;

int sl_batcher_new(const sl_sink_ctx *ctx, const sl_batcher_opts *o, sl_batcher **out, sl_err *err);
void sl_batcher_free(sl_batcher *bt);
/* The sink's thread (its sl_sink_ops.run): until the buffer is closed and
 * drained, or told to stop. */
int sl_batcher_run(sl_batcher *bt);

/* Back to the buffer, newest first so that it keeps their order; it hands
 * them out again, spools them when memory fills up, or at shutdown spools
 * them or leaves them unacknowledged. */
void sl_batcher_give_back(sl_batcher *bt, sl_batch *const *b, uint32_t n);
/* Gives back the batches gathered and not yet flushed, and pops again
 * without waiting max_wait (they waited already). Sink thread only. */
void sl_batcher_give_back_pending(sl_batcher *bt);
bool sl_batcher_stopping(const sl_batcher *bt);
/* Sleeps ms, waking early when told to stop. */
void sl_batcher_nap(const sl_batcher *bt, int64_t ms);

#endif
