/* Routing, on each input's thread: container framing, parse steps, the
 * observer, then one reference of the batch to every sink's buffer
 * (fan-out). And the threads themselves. */
#include <stdatomic.h>

#include "core/log.h"
#include "pipeline/internal.h"

/* Hands a parsed batch to every sink of the input (or only to the observer
 * in a dry run). */
static int deliver(sl_input_rt *in, sl_batch *b)
{
    sl_pipeline *p = in->pipeline;
    const sl_pipeline_hooks *h = &p->opts.hooks;
    if (h->observe) h->observe(h->arg, b);
    if (p->opts.dry_run) {
        sl_batch_unref(b); /* never acknowledged: no checkpoint moves */
        return SL_OK;
    }
    if (in->nsinks == 0) {
        sl_batch_done(b);
        return SL_OK;
    }
    sl_batch_hold(b, in->nsinks - 1);
    /* In every sink or in none (shutdown): a batch that some sinks took
     * and others did not keeps the checkpoint before it, so the next start
     * reads it again and the sinks that had it deliver it twice. */
    int rc = SL_OK, taken = 0;
    for (int i = 0; i < in->nsinks; i++) {
        sl_buffer *buf = in->sinks[i]->buffer;
        if ((taken ? sl_buffer_push_rest(buf, b) : sl_buffer_push(buf, b)) == SL_OK) {
            taken++;
            continue;
        }
        if (!taken) {
            /* Stopping, and no sink has it: not acknowledged, the
             * checkpoint stays before it; the other sinks refuse too. */
            for (int k = i; k < in->nsinks; k++) sl_batch_unref(b);
            return SL_ECLOSED;
        }
        /* Only with a buffer's ring full up: read again after the restart
         * (duplicates in the sinks that took it, no loss). */
        sl_batch_unref(b);
        rc = SL_ECLOSED;
    }
    return rc;
}

/* Container messages whose last piece did not come in time, ahead of what
 * the input reads next. */
static int deliver_partials(sl_input_rt *in)
{
    sl_batch *b;
    while ((b = sl_container_frame_take(in->frame, sl_monotonic_ns()))) {
        sl_chain_run(in->chain, b);
        if (deliver(in, b) != SL_OK) return SL_ECLOSED;
    }
    return SL_OK;
}

int sl_pipeline_route(void *arg, sl_batch *b)
{
    sl_input_rt *in = arg;
    if (deliver_partials(in) != SL_OK) {
        sl_batch_unref(b);
        return SL_ECLOSED;
    }
    sl_container_frame_run(in->frame, b);
    sl_chain_run(in->chain, b);
    return deliver(in, b);
}

int sl_pipeline_route_wait(void *arg, sl_batch *b, int64_t wait_ms)
{
    sl_input_rt *in = arg;
    if (deliver_partials(in) != SL_OK) {
        sl_batch_unref(b);
        return SL_ECLOSED;
    }
    sl_chain_run(in->chain, b);
    if (!in->pipeline->opts.dry_run) {
        /* Every sink first, so a full one leaves the batch in none: the
         * sender's retry then duplicates nothing. */
        int64_t deadline = sl_monotonic_ns() + wait_ms * 1000000;
        for (int i = 0; i < in->nsinks; i++) {
            int64_t left = (deadline - sl_monotonic_ns()) / 1000000;
            int rc = sl_buffer_wait_room(in->sinks[i]->buffer, b, left > 0 ? left : 0);
            if (rc != SL_OK) {
                sl_batch_unref(b);
                return rc;
            }
        }
    }
    return deliver(in, b);
}

int sl_pipeline_route_spill(void *arg)
{
    sl_input_rt *in = arg;
    int rc = SL_OK;
    if (in->pipeline->opts.dry_run) return SL_OK;
    for (int i = 0; i < in->nsinks; i++)
        if (sl_buffer_spill(in->sinks[i]->buffer) != SL_OK) rc = SL_EFULL;
    return rc;
}

int sl_pipeline_route_idle(void *arg)
{
    return deliver_partials(arg);
}

void *sl_pipeline_input_thread(void *arg)
{
    sl_input_rt *in = arg;
    const sl_pipeline_hooks *h = &in->pipeline->opts.hooks;
    in->ops->run(in->state);
    if (!atomic_load(&in->pipeline->inputs_stop) && h->thread_died)
        h->thread_died(h->arg, in->ctx.name);
    return NULL;
}

void *sl_pipeline_sink_thread(void *arg)
{
    sl_sink_rt *s = arg;
    sl_pipeline *p = s->pipeline;
    const sl_pipeline_hooks *h = &p->opts.hooks;
    s->ops->run(s->state);
    if (!atomic_load(&p->sinks_stop) && !atomic_load(&p->inputs_stop) && h->thread_died)
        h->thread_died(h->arg, s->ctx.name);
    atomic_store(&s->done, true);
    return NULL;
}
