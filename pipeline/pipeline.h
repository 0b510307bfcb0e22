/* The pipeline: builds inputs, sinks and their buffers from the
 * configuration (types looked up in one registry, pipeline/plugins.def),
 * routes each input's parsed batches to its sinks, runs one thread per input
 * and per sink, and tears it all down in the order that keeps checkpoints
 * behind undelivered data. It knows nothing of the command line: what the
 * CLI adds (the tail tap, the dry-run printer, /healthz) comes in through
 * the hooks. */
#ifndef SLUICE_PIPELINE_PIPELINE_H
#define SLUICE_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/plugin.h"

typedef struct sl_pipeline sl_pipeline;

/* Called on the pipeline's threads; each may be NULL. */
typedef struct sl_pipeline_hooks {
    /* Every parsed batch, before the sinks take it; borrowed for the call. */
    void (*observe)(void *arg, sl_batch *b);
    /* An input or sink thread returned without being asked to. */
    void (*thread_died)(void *arg, const char *name);
    /* Every input thread has returned: observe is not called any more. */
    void (*inputs_stopped)(void *arg);
    void *arg;
} sl_pipeline_hooks;

typedef struct sl_pipeline_opts {
    bool dry_run; /* read and parse, hand batches to observe only, move no checkpoint */
    sl_pipeline_hooks hooks;
} sl_pipeline_opts;

/* Validates the inputs, their parse steps, the sinks, their buffers and the
 * routing between them; errors are collected in cfg. Returns the number of
 * errors in cfg. */
int sl_pipeline_check(sl_cfg *cfg);
/* One line per input: the sinks it feeds. */
void sl_pipeline_describe(sl_cfg *cfg, FILE *out);
/* `sluice check --connect`: asks each sink's destination whether it would
 * accept (the sink's probe op) and prints one line per sink. Returns the
 * number of sinks that would not. cfg must have passed sl_pipeline_check. */
int sl_pipeline_probe(sl_cfg *cfg, FILE *out);

/* The registered types in pipeline/plugins.def order, for `sluice keys`:
 * the i-th input / sink type, NULL past the last. */
const sl_input_ops *sl_pipeline_input_type(size_t i);
const sl_sink_ops *sl_pipeline_sink_type(size_t i);
/* The key table of every sink's `buffer:` map. */
const sl_cfg_key *sl_pipeline_buffer_keys(size_t *n);

/* cfg must have passed sl_pipeline_check. Reads data_dir and
 * shutdown_timeout from the top level. */
int sl_pipeline_start(sl_cfg *cfg, const sl_pipeline_opts *o, sl_pipeline **out, sl_err *err);
/* Stops inputs, drains sinks within shutdown_timeout, saves checkpoints,
 * frees. Returns the number of sink threads stuck past the deadline: then
 * nothing is freed (they still use it) and the caller should exit. */
int sl_pipeline_stop(sl_pipeline *p);

#endif
