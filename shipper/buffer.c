#include "shipper/buffer.h"

#include <stdlib.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/queue.h"

/* The memory stage of a sink's buffer. Bytes are the records' text, which
 * dominates a batch's memory; the item bound keeps tiny batches bounded. */
struct sl_buffer {
    sl_queue *q;
    sl_metric *queued_bytes;
    sl_metric *blocked_ns;
};

#define BUFFER_MAX_ITEMS 65536

int sl_buffer_new(const sl_buffer_opts *o, sl_buffer **out, sl_err *err)
{
    sl_buffer *b = calloc(1, sizeof *b);
    if (!b) return sl_errf(err, SL_ENOMEM, "buffer: out of memory");
    b->q = sl_queue_new(BUFFER_MAX_ITEMS, o->memory_max);
    if (!b->q) {
        free(b);
        return sl_errf(err, SL_ENOMEM, "buffer: out of memory");
    }
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", o->sink, NULL, NULL);
    b->queued_bytes =
        sl_gauge("sluice_sink_queue_bytes", "Bytes of records in the sink's memory queue.", labels);
    b->blocked_ns = sl_counter("sluice_sink_backpressure_seconds_total",
                               "Time inputs spent blocked by this sink's backpressure.", labels);
    *out = b;
    return SL_OK;
}

void sl_buffer_free(sl_buffer *b)
{
    if (!b) return;
    void *item;
    /* Whatever is left was never delivered: release it without an ack so the
     * checkpoint stays behind it. */
    sl_queue_close(b->q);
    while (sl_queue_pop(b->q, &item, NULL, 0) == SL_OK) sl_batch_unref(item);
    sl_queue_free(b->q);
    free(b);
}

int sl_buffer_push(sl_buffer *b, sl_batch *batch)
{
    int rc = sl_queue_push(b->q, batch, batch->bytes, 0);
    if (rc == SL_EFULL) {
        int64_t t0 = sl_monotonic_ns();
        rc = sl_queue_push(b->q, batch, batch->bytes, -1);
        sl_metric_add(b->blocked_ns, (uint64_t)(sl_monotonic_ns() - t0));
    }
    if (rc == SL_OK) sl_metric_gauge_add(b->queued_bytes, (int64_t)batch->bytes);
    return rc;
}

int sl_buffer_pop(sl_buffer *b, sl_batch **out, int64_t timeout_ms)
{
    void *item;
    int rc = sl_queue_pop(b->q, &item, NULL, timeout_ms);
    if (rc != SL_OK) return rc;
    *out = item;
    sl_metric_gauge_add(b->queued_bytes, -(int64_t)(*out)->bytes);
    return SL_OK;
}

void sl_buffer_close(sl_buffer *b)
{
    sl_queue_close(b->q);
}

uint64_t sl_buffer_bytes(sl_buffer *b)
{
    return sl_queue_bytes(b->q);
}
