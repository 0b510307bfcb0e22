/* The Kafka sink's configuration: its keys, read and checked once (errors at
 * their file:line:col), turned into librdkafka properties (ours first, the
 * `librdkafka:` passthrough map last) and the templates of each message. */
#ifndef SLUICE_SHIPPER_KAFKA_CONFIG_H
#define SLUICE_SHIPPER_KAFKA_CONFIG_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "core/plugin.h"
#include "shipper/template.h"

#define SL_KAFKA_MAX_PROPS 96
/* Keyless messages go this many in a row to one partition, then to the next
 * (kafka.c, docs/decisions/0018-kafka-keys-and-log-values.md); a run is
 * also one producer batch (batch.num.messages, decision 0044). 250, not
 * 1,000: librdkafka's 1 MiB queue then holds several runs, on partitions led
 * by different brokers, so their broker threads compress at once instead of
 * one after the other (decision 0052). */
#define SL_KAFKA_SPREAD_RUN 250

typedef struct sl_kafka_prop {
    char *k, *v; /* v is wiped when freed: it may be a password */
} sl_kafka_prop;

typedef struct sl_kafka_conf {
    sl_kafka_prop props[SL_KAFKA_MAX_PROPS];
    int nprops;
    sl_tpl *topic;
    sl_tpl *key;          /* NULL without `key:`: messages have no key */
    bool headers;         /* one header per label */
    bool json_value;      /* `value: json` */
    bool own_partitioner; /* no `partitioner` under `librdkafka:`: the sink spreads keyless ones */
    size_t max_topics;    /* distinct topics one producer may know (decision 0068) */
} sl_kafka_conf;

/* What sl_cfg_read fills from the sink's key table (kafka.c, whose entries
 * name these members with `.at`): each default is written once, there.
 * Enums are the index of the value in the key's `choices`. The keys read
 * in code are those without a default to state (brokers, topic, key, the
 * secrets, librdkafka). */
typedef struct sl_kafka_keys_read {
    int value, compression, acks, security_protocol, sasl_mechanism;
    bool headers, idempotence;
    int64_t compression_level; /* meaningful only when the key is given */
    int64_t linger_ms, max_topics;
    uint64_t batch_bytes; /* 0: librdkafka's default */
    const char *sasl_username, *tls_ca_file, *tls_cert_file, *tls_key_file;
} sl_kafka_keys_read;

/* Reads the sink's keys into c, checked against its key table (keys, kept
 * in kafka.c beside the ops table). Errors go to ctx->cfg at their
 * positions; SL_EINVAL when there was any (c is then freed), SL_OK
 * otherwise. With ctx->check_only the whole property set is also checked
 * by librdkafka. */
int sl_kafka_conf_read(const sl_sink_ctx *ctx, const sl_cfg_key *keys, size_t nkeys,
                       sl_kafka_conf *c, sl_err *err);
void sl_kafka_conf_free(sl_kafka_conf *c);

/* A librdkafka configuration with every property set; NULL with errstr
 * when librdkafka refuses one. */
rd_kafka_conf_t *sl_kafka_conf_new(const sl_kafka_conf *c, char *errstr, size_t errlen);

#endif
