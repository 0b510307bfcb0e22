/* A batch: records from one source position range, the chunks they point
 * into, static labels, and the acknowledgement ticket. Routed to every sink
 * that takes its input; each sink calls sl_batch_done() once when its copy is
 * delivered, durably spooled or permanently dropped. When the last sink is
 * done the ticket is acknowledged. */
#ifndef SLUICE_CORE_BATCH_H
#define SLUICE_CORE_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/ack.h"
#include "core/arena.h"
#include "core/chunk.h"
#include "core/record.h"

#define SL_BATCH_MAX_CHUNKS  8
#define SL_BATCH_MAX_RELEASE 4

typedef struct sl_batch sl_batch;

/* Called when every holder is done, before the ticket is acknowledged; lets
 * a source other than a watermark (the spool) learn of delivery. */
typedef void (*sl_batch_done_fn)(sl_batch *b, void *arg);

struct sl_batch {
    atomic_int refs;    /* memory owners */
    atomic_int pending; /* holders that have not called sl_batch_done */
    sl_ack_ticket ticket;
    sl_batch_done_fn on_done;
    void *on_done_arg;
    /* A sender waits for this batch's acknowledgement (loki_push with
     * `ack: delivered`), or it is the tail of a journald backlog: sinks
     * send it with what is queued at once instead of waiting their
     * max_batch_wait (shipper/batcher.c; decisions 0034, 0042). */
    bool flush_now;
    /* Earlier batches whose acknowledgement waits for this one (see
     * sl_batch_release_after). */
    struct sl_batch *release[SL_BATCH_MAX_RELEASE];
    uint32_t nrelease;
    const char *input;  /* input name, in the arena */
    const char *source; /* file path or journal, in the arena (may be NULL) */
    sl_field *labels;   /* static labels of the input, in the arena */
    uint32_t nlabels;
    sl_chunk *chunks[SL_BATCH_MAX_CHUNKS];
    uint32_t nchunks;
    sl_record *records;
    uint32_t nrecords, cap_records;
    uint64_t bytes; /* sum of record line lengths */
    sl_arena arena;
    uint64_t footprint; /* see sl_batch_footprint; 0 until asked */
};

/* A batch with room for cap records, one reference and one pending holder. */
sl_batch *sl_batch_new(uint32_t cap);
/* Doubles the room for records, up to max: an input that cannot tell how
 * many records a read holds starts small and grows (a 10 KB file's 15
 * records need not take 4096 slots: issue 19). Only before the batch is
 * handed on (its footprint is fixed then), and no record pointer is kept
 * across it. SL_EFULL at max, SL_ENOMEM. */
int sl_batch_grow_records(sl_batch *b, uint32_t max);
sl_batch *sl_batch_ref(sl_batch *b);
void sl_batch_unref(sl_batch *b);

/* Holds a reference to c for the batch's lifetime. SL_EFULL past the limit. */
int sl_batch_add_chunk(sl_batch *b, sl_chunk *c);
/* Appends a record for line; returns it or NULL when the batch is full. */
sl_record *sl_batch_add(sl_batch *b, sl_slice line, int64_t time_ns, uint64_t pos_end);
/* Appends a field to r, growing its array in the arena. NULL on bound. */
sl_field *sl_record_add_field(sl_batch *b, sl_record *r, sl_slice key, sl_slice val, int type);
int sl_batch_set_labels(sl_batch *b, const sl_field *labels, uint32_t n);
int sl_batch_set_names(sl_batch *b, const char *input, const char *source);

/* Memory the batch holds: record text, records, parsed fields. Fixed the
 * first time it is asked (when the batch enters a sink's queue), so
 * queues add and subtract the same figure. */
uint64_t sl_batch_footprint(sl_batch *b);

/* Declares n more holders before routing the batch to n extra sinks. */
void sl_batch_hold(sl_batch *b, int n);
/* Makes held (which the caller holds one pending count of, taken with
 * sl_batch_hold) wait for after: when after is done, held's count is
 * released with sl_batch_done. Used when records of held only become
 * complete in a later batch (a container's partial lines): a crash before
 * after is delivered leaves held unacknowledged, so it is read again.
 * When after has no room left, held is released at once (SL_EFULL). */
int sl_batch_release_after(sl_batch *held, sl_batch *after);

/* One holder is done: delivered, spooled or dropped. Drops one reference
 * too. When the last holder is done, on_done runs and the ticket is acked. */
void sl_batch_done(sl_batch *b);
/* The tail of a backlog an input caught up with (decisions 0042, 0049):
 * marks b flush_now unless the input marked one less than a second ago.
 * *next_ns (monotonic) is the input's; now_ns is sl_monotonic_ns(). */
void sl_batch_urge(sl_batch *b, int64_t now_ns, int64_t *next_ns);

#endif
