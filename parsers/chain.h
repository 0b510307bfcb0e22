/* An input's parse steps (`parse:` in its config), run on the input's
 * thread over every record of a batch before it is routed to sinks. A step
 * that fails marks the record SL_RF_PARSE_ERROR, adds a `parse_error`
 * field naming the step, and counts it: the record is still shipped raw. */
#ifndef SLUICE_PARSERS_CHAIN_H
#define SLUICE_PARSERS_CHAIN_H

#include "core/batch.h"
#include "core/config.h"

typedef struct sl_chain sl_chain;

/* Builds the steps of `steps` (a sequence node, or NULL for none). Errors
 * go to cfg with positions; returns 0 or -1. *out is NULL when there are no
 * steps. */
int sl_chain_new(sl_cfg *cfg, const sl_cfg_node *steps, const char *input, sl_chain **out);
void sl_chain_run(sl_chain *c, sl_batch *b);
/* One record of b (a step that picks a chain per record, e.g. kubernetes). */
void sl_chain_run_record(sl_chain *c, sl_batch *b, sl_record *r);
void sl_chain_free(sl_chain *c);

#endif
