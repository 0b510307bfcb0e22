/* The boundaries between the pipeline and its inputs and sinks. Core knows
 * these shapes only; concrete inputs live in collector/, sinks in shipper/,
 * and pipeline/ registers them (pipeline/plugins.def) and wires them
 * together. */
#ifndef SLUICE_CORE_PLUGIN_H
#define SLUICE_CORE_PLUGIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/sink_metrics.h"

/* Hands a batch to the pipeline (parse steps, then every sink of this input).
 * Runs on the input's thread and blocks while the sinks apply backpressure.
 * Takes ownership of the batch whatever it returns. SL_ECLOSED: shutting
 * down, stop reading. */
typedef int (*sl_emit_fn)(void *arg, sl_batch *b);
/* emit with a bounded wait, for inputs that can tell their sender to come
 * back later (loki_push answers 429): waits at most wait_ms for room in
 * every sink's buffer before taking the batch, and returns SL_EFULL (the
 * batch dropped, in no sink) when one stayed full. Not for concurrent use
 * with emit of the same input. See docs/decisions/0034-loki-push-input.md. */
typedef int (*sl_emit_wait_fn)(void *arg, sl_batch *b, int64_t wait_ms);
/* Called by an input on its thread when it has nothing to read (same arg as
 * emit): the pipeline may emit what it held back (a container message whose
 * last piece never came). SL_ECLOSED: shutting down, stop reading. */
typedef int (*sl_idle_fn)(void *arg);

/* Keys every input / sink map may have, handled by the pipeline itself;
 * plugins put these first in the key tables they pass to sl_cfg_check. */
/* clang-format off */
#define SL_INPUT_COMMON_KEYS                                                                       \
    {.name = "name", .type = SL_KEY_STR, .required = true,                                         \
     .doc = "unique; names the checkpoint file and the metrics (1-200 bytes, no `/` or control "  \
            "character, not `.` or `..`)"},                                                        \
    {.name = "type", .type = SL_KEY_STR, .required = true, .doc = "the input's type"},             \
    {.name = "parse", .type = SL_KEY_SEQ,                                                          \
     .doc = "parse steps run in order on every record (see Parse steps)"},                         \
    {.name = "labels", .type = SL_KEY_MAP, .doc = "static labels, e.g. `{job: app}`"}
#define SL_SINK_COMMON_KEYS                                                                        \
    {.name = "name", .type = SL_KEY_STR, .required = true,                                         \
     .doc = "unique; names the sink's metrics and its spool folder (1-200 bytes, no `/` or "      \
            "control character, not `.` or `..`)"},                                                \
    {.name = "type", .type = SL_KEY_STR, .required = true, .doc = "the sink's type"},              \
    {.name = "inputs", .type = SL_KEY_LIST,                                                        \
     .doc = "which inputs feed this sink; every input when absent"},                               \
    {.name = "buffer", .type = SL_KEY_MAP,                                                         \
     .doc = "the sink's queue and disk spool (see Every sink: buffer)"}
/* clang-format on */

/* The static `labels: {k: v}` map of an input, as label fields whose
 * slices point into the configuration (which outlives the input). Errors go
 * to cfg; at most cap labels. */
void sl_input_labels(sl_cfg *cfg, const sl_cfg_node *input, sl_field *out, uint32_t cap,
                     uint32_t *n);

typedef struct sl_input_ctx {
    const char *name;
    sl_cfg *cfg;
    const sl_cfg_node *node; /* this input's map */
    const char *data_dir;
    bool check_only; /* validate configuration only: open nothing */
    bool dry_run;    /* read, but never move checkpoints */
    sl_emit_fn emit;
    sl_idle_fn idle; /* may be NULL */
    sl_emit_wait_fn emit_wait;
    /* Moves what this input's sinks hold in memory to their spools (same
     * arg as emit; SL_EFULL when a spool took not all). May be NULL. */
    sl_idle_fn spill;
    void *emit_arg;
    const atomic_bool *stop; /* set when the input must return from run() */
} sl_input_ctx;

typedef struct sl_input_ops {
    const char *type;
    /* Validates ctx->node (errors into ctx->cfg) and, unless check_only,
     * prepares the input. ctx outlives the state. */
    int (*create)(const sl_input_ctx *ctx, void **state, sl_err *err);
    /* The input's thread: read, emit, checkpoint, until *ctx->stop. */
    int (*run)(void *state);
    /* Saves final checkpoints and frees. */
    void (*destroy)(void *state);
    /* The input's key table (SL_INPUT_COMMON_KEYS first): what create
     * checks, what `sluice keys` and the README print. */
    const sl_cfg_key *keys;
    size_t nkeys;
} sl_input_ops;

/* Where a sink takes its batches from: a memory queue, possibly backed by a
 * disk spool (pipeline/buffer.h). A sink sees only the two calls below;
 * the pipeline implements them. */
typedef struct sl_buffer sl_buffer;

/* Oldest first: the spool (older data, including what was left from before
 * the start), then memory. After close only memory is drained: the spool
 * keeps its entries for the next start. SL_OK, SL_ETIMEDOUT, or SL_ECLOSED
 * once closed and memory is drained. */
int sl_buffer_pop(sl_buffer *b, sl_batch **out, int64_t timeout_ms);
/* sl_buffer_pop of what is queued in one go: out[0..*n), at least one
 * batch on SL_OK; after the first, more from memory while *n < max_n and
 * their record text (sl_batch.bytes) adds up to at most max_bytes. From
 * the spool, one at a time. */
int sl_buffer_pop_many(sl_buffer *b, sl_batch **out, uint32_t max_n, uint64_t max_bytes,
                       uint32_t *n, int64_t timeout_ms);
/* Gives back a popped batch the sink could not deliver (yet): the next pop
 * returns it again, oldest first. This is how a sink should retry: a batch
 * a sink holds keeps the input's checkpoint behind it, so after a crash
 * everything read since is read again; given back, a memory batch is moved
 * to the spool (and acknowledged) once memory fills up, and spooled at
 * sl_buffer_free when the sink stops. */
void sl_buffer_unpop(sl_buffer *b, sl_batch *batch);

typedef struct sl_sink_ctx {
    const char *name;
    sl_cfg *cfg;
    const sl_cfg_node *node; /* this sink's map */
    const char *data_dir;
    bool check_only;
    sl_buffer *buffer;       /* pop batches here; call sl_batch_done() on each */
    const atomic_bool *stop; /* set when the sink must drain and return */
    /* Registered by the pipeline for every sink; NULL for a sink created
     * outside a pipeline (see sl_sink_metrics_of). */
    sl_sink_metrics *metrics;
} sl_sink_ctx;

typedef struct sl_sink_ops {
    const char *type;
    int (*create)(const sl_sink_ctx *ctx, void **state, sl_err *err);
    /* The sink's thread: pop, encode, send, sl_batch_done(), until the
     * buffer is closed and drained (or *ctx->stop and the deadline passed). */
    int (*run)(void *state);
    void (*destroy)(void *state);
    /* `sluice check --connect`: asks the destination, once and without
     * sending any record, whether it would accept this sink's deliveries
     * (ctx as for create, with a buffer). SL_OK with what answered in
     * result->msg, or an error code with why not. NULL: nothing to ask. */
    int (*probe)(const sl_sink_ctx *ctx, sl_err *result);
    /* `sluice check`: this sink's map against the inputs it may take (a
     * label every record of an input shares, a key that sends them all to
     * one partition); warnings and errors go to cfg. NULL: nothing to see. */
    int (*check_inputs)(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs);
    /* The sink's key table (SL_SINK_COMMON_KEYS first), as for inputs. */
    const sl_cfg_key *keys;
    size_t nkeys;
} sl_sink_ops;

/* The sink's metrics, with the series of mask (SL_SINK_M_*) it reports
 * besides records and bytes: ctx->metrics, or for a sink created outside
 * a pipeline (a test, a probe) own, registered here. Called by create. */
const sl_sink_metrics *sl_sink_metrics_of(const sl_sink_ctx *ctx, unsigned mask,
                                          sl_sink_metrics *own);

#endif
