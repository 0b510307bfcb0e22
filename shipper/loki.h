/* The Loki sink (`type: loki`): batches records from the sink's buffer into
 * push requests (snappy protobuf, or JSON optionally gzipped), sends them
 * with libcurl and acknowledges each batch only once Loki has taken it (2xx)
 * or rejected its entries for good (4xx, counted and logged). 429, 5xx and
 * transport errors are retried with backoff forever; 413 splits the request.
 * See docs/decisions/0005-loki-sink.md. */
#ifndef SLUICE_SHIPPER_LOKI_H
#define SLUICE_SHIPPER_LOKI_H

#include "core/plugin.h"

extern const sl_sink_ops sl_loki_sink_ops;

#endif
