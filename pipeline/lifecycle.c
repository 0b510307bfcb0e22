/* Start and stop: buffers and sinks first, then inputs wired to them; on
 * stop, inputs first, sinks drain until the deadline, and the inputs save
 * their checkpoints last, once every acknowledgement has arrived. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "pipeline/internal.h"

/* Delivered records of one sink, from the counter every sink keeps. */
static int64_t sink_delivered(const sl_sink_rt *s)
{
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", s->ctx.name ? s->ctx.name : "", NULL, NULL);
    return sl_metrics_value("sluice_sink_records_total", labels);
}

/* Joins a sink's thread, waiting at most until deadline (monotonic ns).
 * False when it is still running then: stuck in a call no flag reaches (a
 * write to a hung file system); it is left behind and the process exits
 * without it. */
static bool join_sink(sl_sink_rt *s, int64_t deadline)
{
    while (!atomic_load(&s->done) && sl_monotonic_ns() < deadline) usleep(5000);
    if (!atomic_load(&s->done)) return false;
    pthread_join(s->thread, NULL);
    return true;
}

/* Sinks are told to stop a little before the deadline and get STOP_JOIN_MS
 * from then (at most until STOP_GRACE_MS past the deadline) to give back
 * what they hold: an HTTP request stalled in flight notices the stop only
 * at curl's next progress call, which comes about once a second when
 * nothing moves. The whole shutdown stays within shutdown_timeout + 1 s
 * whatever the destinations do; the last 300 ms or more are for the spool
 * to take what memory holds and for the checkpoints. */
#define STOP_EARLY_MS 1000
#define STOP_JOIN_MS  1300
#define STOP_GRACE_MS 700

static int teardown(sl_pipeline *a)
{
    /* The deadline counts from the stop request, inputs included. */
    int64_t t0 = sl_monotonic_ns();
    a->stop_deadline = t0 + a->shutdown_ms * 1000000;
    int64_t delivered0[SL_PIPELINE_MAX_SINKS];
    for (int i = 0; i < a->nsinks; i++) delivered0[i] = sink_delivered(&a->sinks[i]);
    /* The inputs' side first: an input blocked in a push to a full buffer
     * (destination down) returns at once instead of waiting for room that
     * only delivery would make. What it did not push is not acknowledged,
     * so its checkpoint stays before it. A batch one sink already took
     * still goes to the input's other sinks (sl_buffer_push_rest): in all
     * or in none, or the restart would read it again for all of them. */
    atomic_store(&a->inputs_stop, true);
    for (int i = 0; i < a->nsinks; i++)
        if (a->sinks[i].buffer) sl_buffer_refuse(a->sinks[i].buffer);
    for (int i = 0; i < a->ninputs; i++)
        if (a->inputs[i].started) pthread_join(a->inputs[i].thread, NULL);
    /* Only now, with no push to come, may a sink see its buffer empty and
     * closed, and end. */
    for (int i = 0; i < a->nsinks; i++)
        if (a->sinks[i].buffer) sl_buffer_close(a->sinks[i].buffer);
    const sl_pipeline_hooks *h = &a->opts.hooks;
    if (h->inputs_stopped) h->inputs_stopped(h->arg); /* nothing observes any more */
    /* Sinks drain what they hold until the deadline, then are told to stop;
     * what they could not deliver goes back to the buffer, which spools it
     * (when there is a spool) or leaves it unacknowledged to be read again. */
    int64_t early = a->shutdown_ms / 2 < STOP_EARLY_MS ? a->shutdown_ms / 2 : STOP_EARLY_MS;
    int64_t deadline = a->stop_deadline - early * 1000000;
    for (;;) {
        bool all = true;
        for (int i = 0; i < a->nsinks; i++)
            if (a->sinks[i].started && !atomic_load(&a->sinks[i].done)) all = false;
        if (all || sl_monotonic_ns() >= deadline) break;
        usleep(10000);
    }
    int64_t stopped_at = sl_monotonic_ns();
    bool timed_out = stopped_at >= deadline;
    atomic_store(&a->sinks_stop, true);
    int64_t join_by = stopped_at + STOP_JOIN_MS * 1000000LL;
    if (join_by > a->stop_deadline + STOP_GRACE_MS * 1000000LL)
        join_by = a->stop_deadline + STOP_GRACE_MS * 1000000LL;
    int stuck = 0;
    for (int i = 0; i < a->nsinks; i++)
        if (a->sinks[i].started && !join_sink(&a->sinks[i], join_by)) {
            stuck++;
            sl_log(SL_LOG_ERROR, "sink_stop_stuck",
                   "sink=%s action=exit_without_it detail=\"what it holds is read again after "
                   "the restart\"",
                   a->sinks[i].ctx.name);
        }
    if (stuck) {
        /* A stuck sink thread still uses its buffer and the inputs'
         * watermarks: free nothing; checkpoints stay where the inputs last
         * saved them, as after a kill (at least once holds). */
        sl_log(SL_LOG_WARN, "agent_shutdown",
               "delivered=? spooled=0 left=? stuck_sinks=%d elapsed_ms=%lld timed_out=1", stuck,
               (long long)((sl_monotonic_ns() - t0) / 1000000));
        return stuck;
    }
    uint64_t delivered = 0, spooled = 0, left = 0;
    for (int i = 0; i < a->nsinks; i++) {
        if (a->sinks[i].state) a->sinks[i].ops->destroy(a->sinks[i].state);
        sl_buffer_leftover lo;
        sl_buffer_free_counted(a->sinks[i].buffer, &lo);
        int64_t d = sink_delivered(&a->sinks[i]) - delivered0[i];
        delivered += d > 0 ? (uint64_t)d : 0;
        spooled += lo.spooled_records;
        left += lo.left_records;
    }
    /* Last: inputs save checkpoints now that every ack has arrived. */
    for (int i = 0; i < a->ninputs; i++)
        if (a->inputs[i].state) a->inputs[i].ops->destroy(a->inputs[i].state);
    for (int i = 0; i < a->ninputs; i++) {
        sl_container_frame_free(a->inputs[i].frame);
        sl_chain_free(a->inputs[i].chain);
    }
    if (a->nsinks)
        sl_log(timed_out ? SL_LOG_WARN : SL_LOG_INFO, "agent_shutdown",
               "delivered=%llu spooled=%llu left=%llu elapsed_ms=%lld timed_out=%d",
               (unsigned long long)delivered, (unsigned long long)spooled, (unsigned long long)left,
               (long long)((sl_monotonic_ns() - t0) / 1000000), timed_out);
    free(a);
    return 0;
}

static int start_sink(sl_pipeline *a, const sl_cfg_node *n, sl_err *err)
{
    if (a->nsinks == SL_PIPELINE_MAX_SINKS)
        return sl_errf(err, SL_EINVAL, "more than %d sinks", SL_PIPELINE_MAX_SINKS);
    sl_cfg *cfg = a->cfg;
    sl_sink_rt *s = &a->sinks[a->nsinks++];
    const char *type = NULL;
    sl_cfg_str(cfg, n, "name", NULL, &s->ctx.name);
    sl_cfg_str(cfg, n, "type", NULL, &type);
    s->ops = sl_registry_sink(type);
    if (!s->ops) return sl_errf(err, SL_EINVAL, "unknown sink type '%s'", type ? type : "");
    sl_buffer_opts bo = {.sink = s->ctx.name};
    sl_pipeline_buffer_opts(cfg, n, &bo);
    char spool_dir[4096];
    snprintf(spool_dir, sizeof spool_dir, "%s/spool/%s", a->data_dir, s->ctx.name);
    bo.spool_dir = spool_dir;
    int rc = sl_buffer_new(&bo, &s->buffer, err);
    if (rc != SL_OK) return rc;
    s->ctx.cfg = cfg;
    s->ctx.node = n;
    s->ctx.data_dir = a->data_dir;
    s->ctx.buffer = s->buffer;
    s->ctx.stop = &a->sinks_stop;
    sl_sink_metrics_register(&s->metrics, s->ctx.name, 0);
    s->ctx.metrics = &s->metrics;
    s->pipeline = a;
    return s->ops->create(&s->ctx, &s->state, err);
}

static int start_input(sl_pipeline *a, const sl_cfg_node *n, const sl_cfg_node *sinks, sl_err *err)
{
    if (a->ninputs == SL_PIPELINE_MAX_INPUTS)
        return sl_errf(err, SL_EINVAL, "more than %d inputs", SL_PIPELINE_MAX_INPUTS);
    sl_cfg *cfg = a->cfg;
    sl_input_rt *in = &a->inputs[a->ninputs++];
    const char *type = NULL;
    sl_cfg_str(cfg, n, "name", NULL, &in->ctx.name);
    sl_cfg_str(cfg, n, "type", NULL, &type);
    in->ops = sl_registry_input(type);
    if (!in->ops) return sl_errf(err, SL_EINVAL, "unknown input type '%s'", type ? type : "");
    in->pipeline = a;
    for (int s = 0; s < a->nsinks; s++)
        if (sl_pipeline_sink_takes(cfg, sinks->items[s], in->ctx.name))
            in->sinks[in->nsinks++] = &a->sinks[s];
    in->ctx.cfg = cfg;
    in->ctx.node = n;
    in->ctx.data_dir = a->data_dir;
    in->ctx.dry_run = a->opts.dry_run;
    in->ctx.emit = sl_pipeline_route;
    in->ctx.idle = sl_pipeline_route_idle;
    in->ctx.emit_wait = sl_pipeline_route_wait;
    in->ctx.spill = sl_pipeline_route_spill;
    in->ctx.emit_arg = in;
    in->ctx.stop = &a->inputs_stop;
    if (sl_chain_new(cfg, sl_cfg_get(n, "parse"), in->ctx.name, &in->chain) != 0)
        return sl_errf(err, SL_EINVAL, "input %s: invalid parse steps", in->ctx.name);
    /* A leading cri/docker step's joining runs as the input's framing. */
    int rc = sl_container_frame_new(cfg, sl_cfg_get(n, "parse"), in->ctx.name, &in->frame);
    if (rc != SL_OK)
        return sl_errf(err, rc, "input %s: cannot set up container framing", in->ctx.name);
    return in->ops->create(&in->ctx, &in->state, err);
}

int sl_pipeline_start(sl_cfg *cfg, const sl_pipeline_opts *o, sl_pipeline **out, sl_err *err)
{
    *out = NULL;
    if (sl_cfg_nerrors(cfg) != 0)
        return sl_errf(err, SL_EINVAL, "configuration has %zu error(s)", sl_cfg_nerrors(cfg));
    sl_pipeline *a = calloc(1, sizeof *a);
    if (!a) return sl_errf(err, SL_ENOMEM, "out of memory");
    a->cfg = cfg;
    a->opts = *o;
    const sl_cfg_node *root = sl_cfg_root(cfg);
    a->data_dir = o->data_dir;
    a->shutdown_ms = o->shutdown_ms;
    const sl_cfg_node *inputs = sl_cfg_get(root, "inputs"), *sinks = sl_cfg_get(root, "sinks");
    int rc = SL_OK;
    for (size_t i = 0; i < sinks->n && !o->dry_run; i++)
        if ((rc = start_sink(a, sinks->items[i], err)) != SL_OK) goto fail;
    for (size_t i = 0; i < inputs->n; i++)
        if ((rc = start_input(a, inputs->items[i], sinks, err)) != SL_OK) goto fail;
    for (int i = 0; i < a->nsinks; i++) {
        if (pthread_create(&a->sinks[i].thread, NULL, sl_pipeline_sink_thread, &a->sinks[i]) != 0) {
            rc = sl_errf(err, SL_ENOMEM, "cannot start sink thread");
            goto fail;
        }
        a->sinks[i].started = true;
    }
    for (int i = 0; i < a->ninputs; i++) {
        if (pthread_create(&a->inputs[i].thread, NULL, sl_pipeline_input_thread, &a->inputs[i]) !=
            0) {
            rc = sl_errf(err, SL_ENOMEM, "cannot start input thread");
            goto fail;
        }
        a->inputs[i].started = true;
    }
    sl_log(SL_LOG_INFO, "agent_started", "inputs=%d sinks=%d data_dir=%s dry_run=%d", a->ninputs,
           a->nsinks, a->data_dir, o->dry_run);
    *out = a;
    return SL_OK;
fail:
    teardown(a);
    return rc;
}

int sl_pipeline_stop(sl_pipeline *p)
{
    return p ? teardown(p) : 0;
}
