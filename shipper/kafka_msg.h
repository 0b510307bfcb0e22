/* What one record becomes in Kafka besides its value: the topic and the key
 * rendered from the sink's templates, and one header per label. Renderings
 * that depend only on the batch are made once per batch; buffers are the
 * builder's, so nothing is allocated per record except the headers, which
 * librdkafka takes over with the message. */
#ifndef SLUICE_SHIPPER_KAFKA_MSG_H
#define SLUICE_SHIPPER_KAFKA_MSG_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "shipper/template.h"

/* Kafka's own limit on topic names. */
#define SL_KAFKA_TOPIC_MAX 249
/* Keys only decide the partition; a longer rendering is cut (deterministically). */
#define SL_KAFKA_KEY_MAX 4096
/* A longer label value is cut in its header. */
#define SL_KAFKA_HEADER_VALUE_MAX 4096

typedef struct sl_kafka_msg {
    const sl_tpl *topic_tpl;
    const sl_tpl *key_tpl; /* NULL: keyless messages */
    bool headers;
    /* the batch being rendered and what of it is rendered once */
    const sl_batch *b;
    bool have_topic, topic_ok, have_key;
    rd_kafka_headers_t *batch_hdrs; /* the headers of records without label fields */
    bool have_batch_hdrs;
    /* the last rendering */
    char topic[SL_KAFKA_TOPIC_MAX + 1]; /* NUL-terminated */
    size_t topic_n;
    char key[SL_KAFKA_KEY_MAX];
    size_t key_n;
    char value[SL_KAFKA_HEADER_VALUE_MAX];
} sl_kafka_msg;

/* Starts the messages of batch b (forgets what was rendered for another). */
void sl_kafka_msg_batch(sl_kafka_msg *m, const sl_batch *b);
/* Ends the batch: frees what was kept for it. */
void sl_kafka_msg_batch_end(sl_kafka_msg *m);
/* Renders the topic of r into m->topic / m->topic_n; false when it cannot
 * be a Kafka topic name (empty, too long, "." or ".."). Characters Kafka
 * does not allow become '_'. */
bool sl_kafka_msg_topic(sl_kafka_msg *m, const sl_record *r);
/* Renders the key of r into m->key / m->key_n; false when the sink has no
 * key (the message gets a null key, not an empty one). */
bool sl_kafka_msg_key(sl_kafka_msg *m, const sl_record *r);
/* The headers of r (one per label), owned by the caller; NULL when there
 * are none or headers are off. */
rd_kafka_headers_t *sl_kafka_msg_headers(sl_kafka_msg *m, const sl_record *r);

#endif
