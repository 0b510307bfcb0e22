/* What a record becomes in Kafka besides its value (shipper/kafka_msg.h):
 * topic names made valid or refused, keys null or cut, headers per label,
 * and renderings that depend only on the batch made once. No broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shipper/kafka_msg.h"

typedef struct tbatch {
    sl_batch b;
    sl_record r[4];
    sl_field f[4][4];
    sl_field labels[2];
} tbatch;

static void tb_init(tbatch *t)
{
    memset(t, 0, sizeof *t);
    t->b.records = t->r;
    t->b.input = "app";
    t->b.labels = t->labels;
    t->labels[t->b.nlabels++] = (sl_field){{"job", 3}, {"web", 3}, SL_V_STRING, 0};
    for (int i = 0; i < 4; i++) t->r[i].fields = t->f[i];
    t->b.nrecords = 4;
}

static void field(sl_record *r, const char *k, const char *v, int type, int flags)
{
    r->fields[r->nfields++] =
        (sl_field){{k, strlen(k)}, {v, strlen(v)}, (uint8_t)type, (uint8_t)flags};
}

static sl_tpl *tpl(const char *text, bool label_set)
{
    sl_tpl_rules rules = {.label_set = label_set};
    sl_tpl *t;
    sl_err err;
    assert_int_equal(sl_tpl_compile(text, &rules, &t, &err), SL_OK);
    return t;
}

static const char *header(rd_kafka_headers_t *h, const char *name, size_t *n)
{
    const void *v;
    if (rd_kafka_header_get_last(h, name, &v, n) != RD_KAFKA_RESP_ERR_NO_ERROR) return NULL;
    return v;
}

static void test_topic(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb);
    field(&tb.r[0], "t", "we b/é", SL_V_STRING, 0);
    field(&tb.r[1], "t", "..", SL_V_STRING, 0);
    char longv[300];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    field(&tb.r[2], "t", longv, SL_V_STRING, 0);
    static sl_kafka_msg m;
    memset(&m, 0, sizeof m);
    m.topic_tpl = tpl("${fields.t:-none}", false);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_true(sl_kafka_msg_topic(&m, &tb.r[0]));
    assert_string_equal(m.topic, "we_b___"); /* space, '/' and the two bytes of é */
    assert_int_equal(m.topic_n, 7);
    assert_false(sl_kafka_msg_topic(&m, &tb.r[1])); /* ".." is not a topic */
    assert_false(sl_kafka_msg_topic(&m, &tb.r[2])); /* over 249 bytes */
    assert_true(sl_kafka_msg_topic(&m, &tb.r[3]));
    assert_string_equal(m.topic, "none");
    sl_kafka_msg_batch_end(&m);
    sl_tpl_free((sl_tpl *)m.topic_tpl);

    /* A topic of the batch only is rendered once per batch. */
    m.topic_tpl = tpl("logs-${labels.job}", false);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_true(sl_kafka_msg_topic(&m, &tb.r[0]));
    assert_string_equal(m.topic, "logs-web");
    tb.labels[0].val = (sl_slice){"api", 3}; /* not looked at again within the batch */
    assert_true(sl_kafka_msg_topic(&m, &tb.r[1]));
    assert_string_equal(m.topic, "logs-web");
    field(&tb.r[2], "job", "db", SL_V_STRING, SL_FF_LABEL); /* a record's own label is */
    assert_true(sl_kafka_msg_topic(&m, &tb.r[2]));
    assert_string_equal(m.topic, "logs-db");
    sl_kafka_msg_batch(&m, &tb.b); /* the next batch renders again */
    assert_true(sl_kafka_msg_topic(&m, &tb.r[0]));
    assert_string_equal(m.topic, "logs-api");
    sl_kafka_msg_batch_end(&m);
    sl_tpl_free((sl_tpl *)m.topic_tpl);
}

/* Kafka's rules for a topic name (its Topic.validate): 1 to 249 bytes of
 * [a-zA-Z0-9._-], not "." or "..". What log content renders is checked
 * here, before librdkafka or a broker sees it (decision 0071): characters
 * outside the set become '_', the rest is refused (the sink drops the
 * record as invalid_topic). */
static void test_topic_kafka_rules(void **st)
{
    (void)st;
    char at249[250], at250[251];
    memset(at249, 'a', 249);
    at249[249] = '\0';
    memset(at250, 'a', 250);
    at250[250] = '\0';
    static const struct {
        const char *value, *want; /* want NULL: refused */
    } cases[] = {
        {"a.b_c-D9", "a.b_c-D9"},
        {"", NULL},
        {".", NULL},
        {"..", NULL},
        {"...", "..."},
        {"./..", "._.."},
        {"a\nb\x01"
         "c",
         "a_b_c"},
        {"\xff\xfe", "__"},
        {"a b;c${d}", "a_b_c__d_"},
        {NULL, NULL}, /* at249, at250: filled below */
    };
    static sl_kafka_msg m;
    memset(&m, 0, sizeof m);
    m.topic_tpl = tpl("${fields.t}", false);
    for (size_t i = 0; i < sizeof cases / sizeof *cases + 1; i++) {
        const char *v = i < sizeof cases / sizeof *cases - 1    ? cases[i].value
                        : i == sizeof cases / sizeof *cases - 1 ? at249
                                                                : at250;
        const char *want = i < sizeof cases / sizeof *cases - 1    ? cases[i].want
                           : i == sizeof cases / sizeof *cases - 1 ? at249
                                                                   : NULL;
        tbatch tb;
        tb_init(&tb);
        field(&tb.r[0], "t", v, SL_V_STRING, 0);
        sl_kafka_msg_batch(&m, &tb.b);
        bool ok = sl_kafka_msg_topic(&m, &tb.r[0]);
        if (ok != (want != NULL)) fprintf(stderr, "value '%s': %s\n", v, ok ? m.topic : "refused");
        assert_int_equal(ok, want != NULL);
        if (want) {
            assert_string_equal(m.topic, want);
            assert_int_equal(m.topic_n, strlen(want));
        }
        sl_kafka_msg_batch_end(&m);
    }
    /* A field the record does not have renders empty: refused too. */
    tbatch tb;
    tb_init(&tb);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_false(sl_kafka_msg_topic(&m, &tb.r[1]));
    sl_kafka_msg_batch_end(&m);
    sl_tpl_free((sl_tpl *)m.topic_tpl);
}

static void test_key(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb);
    static char big[5000];
    memset(big, 'k', sizeof big - 1);
    field(&tb.r[0], "u", big, SL_V_STRING, 0);
    field(&tb.r[1], "u", "", SL_V_STRING, 0);
    static sl_kafka_msg m;
    memset(&m, 0, sizeof m);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_false(sl_kafka_msg_key(&m, &tb.r[0])); /* no key template: a null key */
    m.key_tpl = tpl("${fields.u}", false);
    assert_true(sl_kafka_msg_key(&m, &tb.r[0]));
    assert_int_equal(m.key_n, SL_KAFKA_KEY_MAX); /* cut */
    assert_true(sl_kafka_msg_key(&m, &tb.r[1]));
    assert_int_equal(m.key_n, 0); /* an empty key, not a null one */
    sl_tpl_free((sl_tpl *)m.key_tpl);
    m.key_tpl = tpl("${labels}", true);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_true(sl_kafka_msg_key(&m, &tb.r[2]));
    assert_int_equal(m.key_n, strlen("{job=\"web\"}"));
    assert_memory_equal(m.key, "{job=\"web\"}", m.key_n);
    sl_kafka_msg_batch_end(&m);
    sl_tpl_free((sl_tpl *)m.key_tpl);
}

static void test_headers(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb);
    field(&tb.r[1], "job", "a\\tb", SL_V_ESCAPED, SL_FF_LABEL);
    field(&tb.r[1], "lv", "x", SL_V_STRING, SL_FF_LABEL);
    static sl_kafka_msg m;
    memset(&m, 0, sizeof m);
    sl_kafka_msg_batch(&m, &tb.b);
    assert_null(sl_kafka_msg_headers(&m, &tb.r[0])); /* headers off */
    m.headers = true;
    rd_kafka_headers_t *h0 = sl_kafka_msg_headers(&m, &tb.r[0]);
    rd_kafka_headers_t *h1 = sl_kafka_msg_headers(&m, &tb.r[1]);
    rd_kafka_headers_t *h2 = sl_kafka_msg_headers(&m, &tb.r[2]);
    sl_kafka_msg_batch_end(&m); /* copies outlive the batch's own */
    size_t n;
    assert_int_equal(rd_kafka_header_cnt(h0), 1);
    assert_memory_equal(header(h0, "job", &n), "web", 3);
    assert_int_equal(rd_kafka_header_cnt(h2), 1);
    assert_true(h2 != h0);
    assert_int_equal(rd_kafka_header_cnt(h1), 2);
    const char *v = header(h1, "job", &n);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "a\tb", 3); /* the record's label wins, unescaped */
    assert_memory_equal(header(h1, "lv", &n), "x", 1);
    rd_kafka_headers_destroy(h0);
    rd_kafka_headers_destroy(h1);
    rd_kafka_headers_destroy(h2);
    /* No labels at all: no headers. */
    tb.b.nlabels = 0;
    sl_kafka_msg_batch(&m, &tb.b);
    assert_null(sl_kafka_msg_headers(&m, &tb.r[0]));
    sl_kafka_msg_batch_end(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_topic_kafka_rules),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
