/* The boundary between the parse chain (chain.c) and its steps, as
 * core/plugin.h is for inputs and sinks: each step is one file with one
 * sl_step_ops table, registered by one line in parsers/steps.def. The chain
 * validates a step's map against its key table, counts what it reports, and
 * runs it over every record of a batch on the input's thread. */
#ifndef SLUICE_PARSERS_STEP_H
#define SLUICE_PARSERS_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/metrics.h"

typedef struct sl_step_ctx {
    sl_cfg *cfg;
    const sl_cfg_node *args; /* the value under the step's name (a null node when empty) */
    const char *input;       /* the input's name, for metric labels */
    const char *name;        /* the step's name */
    sl_metric *errors;       /* records the step could not handle, counted by the chain too */
    sl_metric *dropped;      /* records it removed (SL_RF_DROPPED) */
} sl_step_ctx;

typedef struct sl_step_ops {
    const char *name;
    /* The keys of the step's map, checked (types, required, unknown keys
     * with a suggestion) before create. NULL with nkeys 0 and own_args:
     * the step's value is not a map of keys (labels, rename), create checks
     * it. own_args with keys: create checks its map against them itself
     * (kubernetes); `sluice keys` prints them. */
    const sl_cfg_key *keys;
    size_t nkeys;
    bool own_args;
    /* Reads ctx->args (errors into ctx->cfg with positions) and builds the
     * step's state; ctx outlives it. 0 or -1. */
    int (*create)(const sl_step_ctx *ctx, void **state);
    /* One record: SL_OK, or an error code with err->msg; the chain then
     * marks the record (parse_error) and ships it raw. */
    int (*apply)(void *state, sl_batch *b, sl_record *r, sl_err *err);
    void (*destroy)(void *state);
    /* Optional, for steps that hold pieces of a record across batches
     * (cri, docker): a new batch of what waited since before now_ns
     * (INT64_MAX: everything), which the chain runs through the steps after
     * this one. NULL when there is nothing; called until NULL. */
    sl_batch *(*take_held)(void *state, int64_t now_ns);
} sl_step_ops;

/* The step of that name (parsers/steps.def), or NULL. */
const sl_step_ops *sl_step_find(const char *name);
/* The i-th registered step (steps.def order), NULL past the last: for
 * `sluice keys`. */
const sl_step_ops *sl_step_at(size_t i);
/* "json, regex, ...": the registered steps, for messages. */
const char *sl_step_choices(void);

/* The text a step looks at: a field's value (SL_ENOENT when the record has
 * no such field), or the line when field is NULL or "line". A value that
 * still holds JSON escapes is unescaped into the batch arena first, so
 * patterns see the text the application logged, not its JSON spelling. */
int sl_step_subject(sl_batch *b, const sl_record *r, const char *field, sl_slice *out, sl_err *err);

#endif
