/* A sink's buffer: a bounded memory queue, then (when configured) the disk
 * spool, then the when_full policy. Inputs push (on their own threads) and
 * block under backpressure; the sink's thread pops. See
 * docs/decisions/0008-spool.md. */
#ifndef SLUICE_SHIPPER_BUFFER_H
#define SLUICE_SHIPPER_BUFFER_H

#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/plugin.h"
#include "pipeline/spool.h"

enum sl_when_full { SL_WHEN_FULL_BLOCK, SL_WHEN_FULL_DROP_OLDEST };

typedef struct sl_buffer_opts {
    const char *sink;       /* sink name, for metrics and the spool path */
    uint64_t memory_max;    /* bytes of record text held in memory; 0: unbounded */
    uint64_t spool_max;     /* 0: no disk spool (one left on disk is still replayed) */
    int when_full;          /* enum sl_when_full */
    const char *spool_dir;  /* data_dir/spool/<sink> */
    int fsync;              /* enum sl_spool_fsync (0 = always: set it) */
    uint64_t segment_bytes; /* 0: 64 MiB, or spool_max/8 when that is smaller */
} sl_buffer_opts;

int sl_buffer_new(const sl_buffer_opts *o, sl_buffer **out, sl_err *err);
/* What sl_buffer_free_counted did with the records still in memory. */
typedef struct sl_buffer_leftover {
    uint64_t spooled_records; /* written to the spool and acknowledged */
    uint64_t left_records;    /* released unacknowledged: read again from the source */
} sl_buffer_leftover;
/* Whatever is still in memory is written to the spool (and acknowledged)
 * when there is one and it has room; otherwise released without an ack, so
 * the source reads it again. Every popped batch must be done or released
 * before. */
void sl_buffer_free(sl_buffer *b);
/* sl_buffer_free, telling the caller what became of the leftovers (out may
 * be NULL). */
void sl_buffer_free_counted(sl_buffer *b, sl_buffer_leftover *out);

/* Takes the caller's hold on batch (one sl_batch_done is owed per push).
 * Into memory when there is room. When memory is full and there is a
 * spool, the oldest batches in memory move to the spool and are done at
 * once (the spool owns them), so everything older than what memory holds
 * is acknowledged and a crash re-reads little. Blocks while full under
 * `block`, and while the spool cannot be written (disk full), retrying with
 * backoff. SL_ECLOSED after close: the batch was not taken and the caller
 * still owes its sl_batch_done. */
int sl_buffer_push(sl_buffer *b, sl_batch *batch);
/* sl_buffer_push of a fan-out's copy once another sink of the input took
 * the batch: after sl_buffer_refuse it is still taken, at once and past
 * memory_max if need be, so a batch is in all of its input's sinks or in
 * none. A copy left out would hold the input's checkpoint before a batch
 * the other sinks delivered, and the next start would send it to them
 * again (seen: 4,096 duplicates, one file batch, across a SIGHUP).
 * SL_ECLOSED only after close, or with the ring's slack used up. */
int sl_buffer_push_rest(sl_buffer *b, sl_batch *batch);
/* Waits at most wait_ms until a push of batch would not wait for the sink
 * (room in memory, room in the spool to spill to by its bytes on disk, or
 * when_full drop_oldest): SL_OK,
 * SL_EFULL when the buffer stayed full, SL_ECLOSED. Takes nothing; another
 * pusher may take the room before the caller's push (the loki_push input
 * uses it to answer 429 instead of blocking; decision 0034). */
int sl_buffer_wait_room(sl_buffer *b, sl_batch *batch, int64_t wait_ms);
/* Moves what memory holds now to the spool (acknowledging it), oldest
 * first: SL_OK, or SL_EFULL when the spool took not all of it. Without a
 * spool, nothing. For inputs whose sender waits on the acknowledgement
 * (loki_push, decision 0034) while the sink cannot deliver. */
int sl_buffer_spill(sl_buffer *b);
/* sl_buffer_pop and sl_buffer_unpop, the sink's side, are declared in
 * core/plugin.h with the rest of what a sink sees. */
/* The inputs are stopping: sl_buffer_push (and sl_buffer_wait_room)
 * return SL_ECLOSED at once, also those waiting for room, so a full buffer
 * cannot hold an input thread; sl_buffer_push_rest still takes its batch.
 * Pops are unaffected. At shutdown every buffer refuses, the inputs are
 * joined, then the buffers close. */
void sl_buffer_refuse(sl_buffer *b);
/* No more pushes at all (refusing, and push_rest too); pops drain what is
 * left in memory, then return SL_ECLOSED. Batches given back with
 * sl_buffer_unpop after close are kept for sl_buffer_free. */
void sl_buffer_close(sl_buffer *b);
/* Bytes of record text in memory. */
uint64_t sl_buffer_bytes(sl_buffer *b);
/* The disk spool, NULL without one (tests and diagnostics). */
sl_spool *sl_buffer_spool(sl_buffer *b);

#endif
