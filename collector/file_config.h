/* The file input's keys, their reading into its state, and its metrics. */
#ifndef SLUICE_COLLECTOR_FILE_CONFIG_H
#define SLUICE_COLLECTOR_FILE_CONFIG_H

#include "collector/file_state.h"

/* Reads ctx's node into in; SL_EINVAL (errors reported to ctx->cfg) when
 * the configuration is invalid. */
int sl_file_configure(file_input *in, const sl_input_ctx *ctx);
void sl_file_register_metrics(file_input *in);

#endif
