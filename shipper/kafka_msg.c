#include "shipper/kafka_msg.h"

#include <string.h>

void sl_kafka_msg_batch(sl_kafka_msg *m, const sl_batch *b)
{
    sl_kafka_msg_batch_end(m);
    m->b = b;
}

void sl_kafka_msg_batch_end(sl_kafka_msg *m)
{
    if (m->batch_hdrs) rd_kafka_headers_destroy(m->batch_hdrs);
    m->batch_hdrs = NULL;
    m->have_batch_hdrs = m->have_topic = m->topic_ok = m->have_key = false;
    m->b = NULL;
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool render_topic(sl_kafka_msg *m, const sl_record *r)
{
    bool cut;
    size_t n = sl_tpl_render(m->topic_tpl, m->b, r, m->topic, SL_KAFKA_TOPIC_MAX, &cut);
    m->topic[n] = '\0';
    m->topic_n = n;
    if (cut || n == 0) return false;
    /* Characters Kafka does not allow in names come from field values, not
     * from the operator: map them to '_' rather than lose the record. */
    for (size_t i = 0; i < n; i++)
        if (!topic_char_ok(m->topic[i])) m->topic[i] = '_';
    return strcmp(m->topic, ".") != 0 && strcmp(m->topic, "..") != 0;
}

bool sl_kafka_msg_topic(sl_kafka_msg *m, const sl_record *r)
{
    /* A template that depends only on the batch is rendered once. */
    bool per_record = sl_tpl_varies(m->topic_tpl, r);
    if (!m->have_topic || per_record) {
        m->topic_ok = render_topic(m, r);
        m->have_topic = !per_record;
    }
    return m->topic_ok;
}

bool sl_kafka_msg_key(sl_kafka_msg *m, const sl_record *r)
{
    if (!m->key_tpl) return false;
    bool per_record = sl_tpl_varies(m->key_tpl, r);
    if (!m->have_key || per_record) {
        m->key_n = sl_tpl_render(m->key_tpl, m->b, r, m->key, sizeof m->key, NULL);
        m->have_key = !per_record;
    }
    return true;
}

static rd_kafka_headers_t *render_headers(sl_kafka_msg *m, const sl_record *r)
{
    const sl_field *l[SL_TPL_MAX_LABELS];
    int n = sl_tpl_labels(m->b, r, l);
    if (n == 0) return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)n);
    for (int i = 0; i < n; i++) {
        size_t vn = sl_tpl_value(l[i], m->value, sizeof m->value);
        rd_kafka_header_add(h, l[i]->key.p, (ssize_t)l[i]->key.n, m->value, (ssize_t)vn);
    }
    return h;
}

static bool has_label_fields(const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if ((r->fields[i].flags & SL_FF_LABEL) && !(r->fields[i].flags & SL_FF_REMOVED))
            return true;
    return false;
}

rd_kafka_headers_t *sl_kafka_msg_headers(sl_kafka_msg *m, const sl_record *r)
{
    if (!m->headers) return NULL;
    if (has_label_fields(r)) return render_headers(m, r);
    /* Only the batch's labels: the same headers for every such record,
     * rendered once and copied. */
    if (!m->have_batch_hdrs) {
        m->batch_hdrs = render_headers(m, NULL);
        m->have_batch_hdrs = true;
    }
    return m->batch_hdrs ? rd_kafka_headers_copy(m->batch_hdrs) : NULL;
}
