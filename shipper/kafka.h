/* Kafka sink (`type: kafka`): one librdkafka idempotent producer per sink.
 * Every record becomes one message (value: the raw line as read, or the
 * record as JSON; key and topic from templates; labels as headers). A batch
 * is acknowledged (sl_batch_done) only when the delivery reports of all its
 * messages are in: delivered, or permanently rejected and counted as dropped
 * with a reason. Retriable failures are produced again, never dropped. See
 * docs/decisions/0007-kafka-sink.md. */
#ifndef SLUICE_SHIPPER_KAFKA_H
#define SLUICE_SHIPPER_KAFKA_H

#include "core/plugin.h"

extern const sl_sink_ops sl_kafka_sink_ops;

#endif
