/* Debugging sinks: `stdout` and `file` write one line per record, either
 * the raw line or the record as JSON (shipper/recjson.h). */
#ifndef SLUICE_SHIPPER_FILESINK_H
#define SLUICE_SHIPPER_FILESINK_H

#include "core/plugin.h"

extern const sl_sink_ops sl_stdout_sink_ops;
extern const sl_sink_ops sl_file_sink_ops;

#endif
