/* The Loki sink (`type: loki`): batches records from the sink's buffer into
 * push requests (snappy protobuf, or JSON optionally gzipped), sends them
 * with libcurl and acknowledges each batch only once Loki has taken it (2xx)
 * or rejected its entries for good (4xx, counted and logged). 429, 5xx and
 * transport errors are retried with backoff forever; 413 splits the request.
 * See docs/decisions/0005-loki-sink.md. */
#ifndef SLUICE_SHIPPER_LOKI_H
#define SLUICE_SHIPPER_LOKI_H

#include "core/config.h"
#include "core/plugin.h"

extern const sl_sink_ops sl_loki_sink_ops;

/* For `sluice check`: warns on stderr ("file:line:col: warning: ...") for
 * every Loki label of this sink that looks like a high-cardinality field
 * (request or trace ids, user ids, uuids, IP addresses, paths, urls,
 * timestamps...): the `labels` parse steps of the inputs the sink takes and
 * the sink's own `labels:` keys. Each label value makes a Loki stream, so
 * such labels explode Loki's index. Returns the number of warnings; never
 * an error. */
int sl_loki_check_labels(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs);

#endif
