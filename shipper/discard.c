/* The `discard` sink (a null sink; YAML reads an unquoted `null` as no
 * value, hence the name): takes every batch, counts its records and line
 * bytes, and acknowledges it at once. For benchmarks (the pipeline's cost
 * without a destination's) and for an input whose checkpoints should move
 * with nothing kept. */
#include <stdlib.h>

#include "core/metrics.h"
#include "core/plugin.h"
#include "shipper/buffer.h"

typedef struct discard_sink {
    const sl_sink_ctx *ctx;
    sl_metric *records, *bytes;
} discard_sink;

static const sl_cfg_key discard_keys[] = {
    SL_SINK_COMMON_KEYS,
};

static int discard_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    *state = NULL;
    if (sl_cfg_check(ctx->cfg, ctx->node, discard_keys, sizeof discard_keys / sizeof *discard_keys))
        return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    if (ctx->check_only) return SL_OK;
    discard_sink *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "out of memory");
    s->ctx = ctx;
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", ctx->name, NULL, NULL);
    s->records = sl_counter("sluice_sink_records_total", "Records delivered by the sink.", labels);
    s->bytes = sl_counter("sluice_sink_bytes_total", "Bytes written or sent by the sink.", labels);
    *state = s;
    return SL_OK;
}

static int discard_run(void *state)
{
    discard_sink *s = state;
    for (;;) {
        sl_batch *b;
        int rc = sl_buffer_pop(s->ctx->buffer, &b, 200);
        if (rc == SL_ECLOSED) return SL_OK;
        if (rc != SL_OK) continue;
        uint64_t records = 0, bytes = 0;
        for (uint32_t i = 0; i < b->nrecords; i++) {
            if (b->records[i].flags & SL_RF_DROPPED) continue;
            records++;
            bytes += b->records[i].line.n;
        }
        sl_metric_add(s->records, records);
        sl_metric_add(s->bytes, bytes);
        sl_batch_done(b);
    }
}

static void discard_destroy(void *state)
{
    free(state);
}

const sl_sink_ops sl_discard_sink_ops = {.type = "discard",
                                         .create = discard_create,
                                         .run = discard_run,
                                         .destroy = discard_destroy,
                                         .keys = discard_keys,
                                         .nkeys = SL_CFG_NKEYS(discard_keys)};
