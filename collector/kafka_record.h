/* Decoding the record JSON of the Kafka sink's `value: json`
 * ({"time":..., "line":..., "fields":{...}, "labels":{...}}) into a record
 * of a batch, for the Kafka input's `format: json`. */
#ifndef SLUICE_COLLECTOR_KAFKA_RECORD_H
#define SLUICE_COLLECTOR_KAFKA_RECORD_H

#include <stddef.h>

#include "core/batch.h"

/* n bytes of storage the batch keeps alive as long as its records; NULL
 * when there is no more room. */
typedef char *(*sl_kafka_reserve_fn)(void *arg, size_t n);

/* Sets r's line, time (when the JSON has one) and fields (labels flagged
 * SL_FF_LABEL; a field equal to a label of the same name comes back once,
 * as the label). SL_EPARSE, r unchanged, when p is not a record JSON
 * object: not JSON, duplicate keys, nesting past jansson's 2048, no string
 * `line`, `fields` or `labels` not objects, a `time` that is not a real "YYYY-MM-DDTHH:MM:SS[.f]Z"
 * whose nanoseconds fit an int64 (decision 0059). SL_OK otherwise, with SL_RF_TRUNCATED in r->flags
 * when storage or field room ran out. */
int sl_kafka_record_decode(sl_batch *b, sl_record *r, const char *p, size_t n,
                           sl_kafka_reserve_fn reserve, void *arg);

#endif
