/* Shared by the pipeline's own files only: the running pipeline's shape and
 * the type registry. */
#ifndef SLUICE_PIPELINE_INTERNAL_H
#define SLUICE_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "collector/container_frame.h"
#include "core/plugin.h"
#include "parsers/chain.h"
#include "pipeline/pipeline.h"
#include "pipeline/buffer.h"

#define SL_PIPELINE_MAX_INPUTS 64
#define SL_PIPELINE_MAX_SINKS  16

typedef struct sl_sink_rt sl_sink_rt;

typedef struct sl_input_rt {
    sl_input_ctx ctx;
    const sl_input_ops *ops;
    void *state;
    sl_container_frame *frame; /* container partials, before the chain (NULL: none) */
    sl_chain *chain;
    pthread_t thread;
    bool started;
    sl_sink_rt *sinks[SL_PIPELINE_MAX_SINKS];
    int nsinks;
    struct sl_pipeline *pipeline;
} sl_input_rt;

struct sl_sink_rt {
    sl_sink_ctx ctx;
    sl_sink_metrics metrics; /* registered here, once, for every sink */
    const sl_sink_ops *ops;
    void *state;
    sl_buffer *buffer;
    pthread_t thread;
    bool started;
    atomic_bool done;
    struct sl_pipeline *pipeline;
};

struct sl_pipeline {
    sl_cfg *cfg;
    sl_pipeline_opts opts;
    const char *data_dir;
    int64_t shutdown_ms;
    int64_t stop_deadline;
    atomic_bool inputs_stop;
    atomic_bool sinks_stop; /* sinks end on their own once inputs stop */
    sl_input_rt inputs[SL_PIPELINE_MAX_INPUTS];
    int ninputs;
    sl_sink_rt sinks[SL_PIPELINE_MAX_SINKS];
    int nsinks;
};

/* registry.c: the types of pipeline/plugins.def. NULL when unknown. */
const sl_input_ops *sl_registry_input(const char *type);
const sl_sink_ops *sl_registry_sink(const char *type);
/* "a|b|c": the registered input (or sink) types, for messages. */
const char *sl_registry_choices(bool inputs);

/* check.c */
void sl_pipeline_buffer_opts(sl_cfg *cfg, const sl_cfg_node *sink, sl_buffer_opts *o);
bool sl_pipeline_sink_takes(sl_cfg *cfg, const sl_cfg_node *sink, const char *input);

/* route.c: the emit and idle callbacks of every input, and the threads. */
int sl_pipeline_route(void *input_rt, sl_batch *b);
int sl_pipeline_route_idle(void *input_rt);
int sl_pipeline_route_wait(void *input_rt, sl_batch *b, int64_t wait_ms);
int sl_pipeline_route_spill(void *input_rt);
void *sl_pipeline_input_thread(void *input_rt);
void *sl_pipeline_sink_thread(void *sink_rt);

#endif
