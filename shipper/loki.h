/* The Loki sink (`type: loki`): batches records from the sink's buffer into
 * push requests (snappy protobuf, or JSON optionally gzipped) made of only
 * what Loki accepts (loki_limits.h), sends them with libcurl and
 * acknowledges each batch only once Loki has taken it (2xx) or rejected
 * entries of it for good (400 naming them, or a record refused alone:
 * counted and logged). 429, 5xx, transport errors, 3xx, 401/403/404 are
 * retried with backoff forever, the batches given back to the buffer while
 * waiting; 413 and a 400 naming no entry split the request. See
 * docs/decisions/0005-loki-sink.md and 0016-what-loki-accepts.md. */
#ifndef SLUICE_SHIPPER_LOKI_H
#define SLUICE_SHIPPER_LOKI_H

#include "core/config.h"
#include "core/plugin.h"

extern const sl_sink_ops sl_loki_sink_ops;

/* For `sluice check` (loki_check.c): warns on stderr ("file:line:col:
 * warning: ...") for every configured label or structured-metadata name
 * that Loki's rules change (`k8s.pod` is sent as `k8s_pod`), every static
 * label value that is repaired, and every Loki label of this sink that
 * looks like a high-cardinality field
 * (request or trace ids, user ids, uuids, IP addresses, paths, urls,
 * timestamps...): the `labels` parse steps of the inputs the sink takes and
 * the sink's own `labels:` keys. Each label value makes a Loki stream, so
 * such labels explode Loki's index. Returns the number of warnings; never
 * an error. */
int sl_loki_check_labels(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs);

#endif
