/* Acknowledgement watermark of one source (a file, a journal). The input
 * issues position ranges in increasing order as it emits batches; sinks ack
 * them in any order; the watermark is the end of the longest acknowledged
 * prefix, which is what the checkpoint may record. */
#ifndef SLUICE_CORE_ACK_H
#define SLUICE_CORE_ACK_H

#include <stdint.h>
#include <stddef.h>

typedef struct sl_watermark sl_watermark;

/* start: position already checkpointed (everything before it is done). */
sl_watermark *sl_watermark_new(uint64_t start);
sl_watermark *sl_watermark_ref(sl_watermark *w);
void sl_watermark_unref(sl_watermark *w);

/* Registers [begin, end) as in flight. begin must be >= the end of the
 * previous range; a gap between ranges counts as acknowledged. Returns
 * SL_EINVAL on misuse, SL_ENOMEM on allocation failure. */
int sl_watermark_issue(sl_watermark *w, uint64_t begin, uint64_t end);
/* Marks an issued range done; ranges may complete in any order. */
int sl_watermark_ack(sl_watermark *w, uint64_t begin, uint64_t end);
/* Highest position P such that everything issued below P is acknowledged. */
uint64_t sl_watermark_get(sl_watermark *w);
/* Number of issued, not yet acknowledged ranges. */
size_t sl_watermark_pending(sl_watermark *w);
/* Moves the watermark forward to pos when nothing is pending (a source that
 * skipped data, e.g. a truncated file starting over). */
void sl_watermark_reset(sl_watermark *w, uint64_t pos);

/* What a batch carries so its delivery can be acknowledged at the source. */
typedef struct sl_ack_ticket {
    sl_watermark *wm; /* NULL: nothing to acknowledge (e.g. replayed spool) */
    uint64_t begin, end;
} sl_ack_ticket;

#endif
