/* The running agent: builds inputs, sinks and their buffers from the
 * configuration, routes batches from inputs to sinks, and tears it all down
 * in the order that keeps checkpoints behind undelivered data. */
#ifndef SLUICE_CLI_AGENT_H
#define SLUICE_CLI_AGENT_H

#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"

typedef struct sl_agent sl_agent;

typedef struct sl_agent_opts {
    bool check_only; /* validate, print nothing, start nothing */
    bool dry_run;    /* read and parse, print records, send nothing, move no checkpoint */
} sl_agent_opts;

/* Validates the whole pipeline; errors are collected in cfg. Returns the
 * number of errors. */
int sl_agent_check(sl_cfg *cfg);
/* The top-level key table (metrics, tap, log as its sub-tables), for
 * `sluice keys`. */
const sl_cfg_key *sl_agent_keys(size_t *n);
/* Prints the resolved pipeline (inputs, steps, sinks, routing). */
void sl_agent_describe(sl_cfg *cfg, FILE *out);

/* `sluice check --connect`: asks each sink's destination whether it would
 * accept (the sink's probe op) and prints one line per sink. Returns the
 * number of sinks that would not. cfg must have passed sl_agent_check. */
int sl_agent_probe(sl_cfg *cfg, FILE *out);

/* cfg must have passed sl_agent_check (which also prints its warnings). */
int sl_agent_start(sl_cfg *cfg, const sl_agent_opts *o, sl_agent **out, sl_err *err);
/* Stops inputs, drains sinks within shutdown_timeout, saves checkpoints. */
void sl_agent_stop(sl_agent *a);

#endif
