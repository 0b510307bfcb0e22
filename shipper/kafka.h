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

/* For `sluice check`: warns on stderr ("file:line:col: warning: ...") when
 * the sink's key resolves to the same value for every record of an input it
 * takes (a literal, ${input}, or labels the input sets statically: all of
 * that input goes to one partition), and when a `partitioner` set under
 * `librdkafka:` puts every keyless message on one partition. Returns the
 * number of warnings; never an error. */
int sl_kafka_check_key(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs);

/* For `sluice check --connect`: asks the sink's brokers (keys: the sink's
 * key table) for the topic's metadata, within about 5 s. A failure says
 * what failed first (DNS, refused, unreachable, timeout, TLS, auth,
 * closed), the brokers, then each broker's first failure as librdkafka
 * words it; never a credential. SL_OK with what answered, or an error. */
int sl_kafka_probe(const sl_sink_ctx *ctx, const sl_cfg_key *keys, size_t nkeys, sl_err *result);

/* The same question for a `type: kafka` *input* (collector/kafka_input.c):
 * its brokers, with its `librdkafka:` properties, asked for its first
 * topic's metadata. The input's keys were checked by `sluice check`. */
int sl_kafka_input_probe(sl_cfg *cfg, const sl_cfg_node *input, sl_err *result);

#endif
