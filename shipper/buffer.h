/* A sink's buffer: a bounded memory queue, then (when configured) the disk
 * spool, then the when_full policy. Inputs push (on their own threads) and
 * block under backpressure; the sink's thread pops. */
#ifndef SLUICE_SHIPPER_BUFFER_H
#define SLUICE_SHIPPER_BUFFER_H

#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/plugin.h"

enum sl_when_full { SL_WHEN_FULL_BLOCK, SL_WHEN_FULL_DROP_OLDEST };

typedef struct sl_buffer_opts {
    const char *sink;      /* sink name, for metrics and the spool path */
    uint64_t memory_max;   /* bytes of record text held in memory */
    uint64_t spool_max;    /* 0: no disk spool */
    int when_full;         /* enum sl_when_full */
    const char *spool_dir; /* data_dir/spool/<sink> */
} sl_buffer_opts;

int sl_buffer_new(const sl_buffer_opts *o, sl_buffer **out, sl_err *err);
void sl_buffer_free(sl_buffer *b);

/* Takes the caller's hold on batch (one sl_batch_done is owed per push).
 * Blocks while full under `block`. SL_ECLOSED after close: the batch was not
 * taken and the caller still owes its sl_batch_done. */
int sl_buffer_push(sl_buffer *b, sl_batch *batch);
/* SL_OK, SL_ETIMEDOUT, or SL_ECLOSED once closed and drained. */
int sl_buffer_pop(sl_buffer *b, sl_batch **out, int64_t timeout_ms);
/* No more pushes; pops drain what is left. */
void sl_buffer_close(sl_buffer *b);
uint64_t sl_buffer_bytes(sl_buffer *b);

#endif
