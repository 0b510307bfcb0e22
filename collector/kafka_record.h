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

/* Sets r's line, time (when the JSON has a valid one) and fields (labels
 * flagged SL_FF_LABEL; a field equal to a label of the same name comes back
 * once, as the label). SL_EPARSE when p is not a record JSON object (r
 * unchanged but for fields already added); SL_OK otherwise, with
 * SL_RF_TRUNCATED in r->flags when storage or field room ran out. */
int sl_kafka_record_decode(sl_batch *b, sl_record *r, const char *p, size_t n,
                           sl_kafka_reserve_fn reserve, void *arg);

#endif
