/* The file input's keys, their reading into its state, and its metrics. */
#ifndef SLUICE_COLLECTOR_FILE_CONFIG_H
#define SLUICE_COLLECTOR_FILE_CONFIG_H

#include "collector/file_state.h"

/* The file input's key table (the ops table in file.c names it). */
#define SL_FILE_NKEYS 26
extern const sl_cfg_key sl_file_keys[SL_FILE_NKEYS];

/* Reads ctx's node into in; SL_EINVAL (errors reported to ctx->cfg) when
 * the configuration is invalid. */
int sl_file_configure(file_input *in, const sl_input_ctx *ctx);
void sl_file_register_metrics(file_input *in);

#endif
