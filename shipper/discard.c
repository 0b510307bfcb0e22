/* The `discard` sink (a null sink; YAML reads an unquoted `null` as no
 * value, hence the name): takes every batch, counts its records and line
 * bytes, and acknowledges it at once. For benchmarks (the pipeline's cost
 * without a destination's) and for an input whose checkpoints should move
 * with nothing kept. */
#include <stdint.h>
#include <stdlib.h>

#include "core/metrics.h"
#include "core/plugin.h"

typedef struct discard_sink {
    const sl_sink_ctx *ctx;
    const sl_sink_metrics *m;
    sl_sink_metrics own_m; /* created outside a pipeline */
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
    s->m = sl_sink_metrics_of(ctx, 0, &s->own_m);
    *state = s;
    return SL_OK;
}

/* Everything queued is taken at once (one wake, one lock) as the batcher
 * does, so a benchmark on this sink measures the pipeline, not its waits. */
static int discard_run(void *state)
{
    discard_sink *s = state;
    sl_batch *got[64];
    for (;;) {
        uint32_t n = 0;
        int rc = sl_buffer_pop_many(s->ctx->buffer, got, 64, UINT64_MAX, &n, 200);
        if (rc == SL_ECLOSED && n == 0) return SL_OK;
        uint64_t records = 0, bytes = 0;
        for (uint32_t j = 0; j < n; j++) {
            sl_batch *b = got[j];
            for (uint32_t i = 0; i < b->nrecords; i++) {
                if (b->records[i].flags & SL_RF_DROPPED) continue;
                records++;
                bytes += b->records[i].line.n;
            }
        }
        if (n) sl_sink_metrics_delivered(s->m, records, bytes);
        for (uint32_t j = 0; j < n; j++) sl_batch_done(got[j]);
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
