/* The loki_push body decoder: label strings (escapes, errors), protobuf
 * and JSON pushes with and without gzip, the decoded-size limit, and the
 * malformed bodies that must be refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/loki_push_decode.h"
#include "tests/push_body.h"

static int labels(const char *text, sl_lp_pair *out, size_t *n, char *scratch, sl_err *err)
{
    size_t used = 0;
    return sl_lp_parse_labels(text, strlen(text), scratch, strlen(text), &used, out,
                              SL_LP_MAX_LABELS, n, err);
}

static void assert_slice(sl_slice s, const char *want, size_t n)
{
    assert_int_equal(s.n, n);
    assert_memory_equal(s.p, want, n);
}

static void test_labels(void **st)
{
    (void)st;
    sl_lp_pair l[SL_LP_MAX_LABELS];
    char scratch[256];
    size_t n;
    sl_err err;
    assert_int_equal(labels("{}", l, &n, scratch, &err), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(labels(" { job = \"app\" ,env=\"prod\", } ", l, &n, scratch, &err), SL_OK);
    assert_int_equal(n, 2);
    assert_slice(l[0].name, "job", 3);
    assert_slice(l[0].value, "app", 3);
    assert_slice(l[1].value, "prod", 4);
    assert_int_equal(labels("{a=\"q\\\"b\\\\s\\n\\t\", b=\"\\x41\\101\\u00e9\\U0001F600\"}", l, &n,
                            scratch, &err),
                     SL_OK);
    assert_slice(l[0].value, "q\"b\\s\n\t", 7);
    assert_slice(l[1].value, "AA\xc3\xa9\xf0\x9f\x98\x80", 8);
    static const char *const bad[] = {
        "",
        "job=\"a\"",
        "{job}",
        "{job=a}",
        "{job=\"a}",
        "{1a=\"x\"}",
        "{a=\"x\" b=\"y\"}",
        "{a=\"\\q\"}",
        "{a=\"\\x4\"}",
        "{a=\"\\uD800\"}",
        "{a=\"x\"} x",
        "{a=\"x\",a=\"y\"}",
        "{a=\"\\777\"}",
        "{a=\"x\n\"}",
        "{a=\"\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(labels(bad[i], l, &n, scratch, &err), SL_EPARSE);
        assert_true(err.msg[0] != 0);
    }
}

static void test_protobuf(void **st)
{
    (void)st;
    pbuf req = {0}, s = {0};
    pb_stream_labels(&s, "{job=\"app\", pod=\"a\\\"b\"}");
    static const char *const meta[] = {"trace_id", "t1", NULL};
    pb_entry(&s, 1700000000123456789LL, "first", 5, NULL);
    pb_entry(&s, 1700000001000000000LL, "sec\0nd", 6, meta);
    pb_add_stream(&req, &s);
    pb_stream_labels(&s, "{}");
    pb_entry(&s, 5, "", 0, NULL);
    pb_add_stream(&req, &s);
    size_t n;
    char *body = pb_snappy(&req, &n);
    for (int gz = 0; gz < 2; gz++) {
        size_t gn = n;
        char *g = gz ? pb_gzip(body, n, &gn) : body;
        sl_lp_push p;
        sl_err err;
        assert_int_equal(sl_lp_decode(NULL, gz ? "gzip" : NULL, g, gn, 1 << 20, &p, &err), SL_OK);
        assert_int_equal(p.nstreams, 2);
        assert_int_equal(p.nentries, 3);
        assert_int_equal(p.streams[0].nlabels, 2);
        assert_slice(p.pairs[p.streams[0].labels + 1].value, "a\"b", 3);
        assert_int_equal(p.entries[0].ts_ns, 1700000000123456789LL);
        assert_slice(p.entries[1].line, "sec\0nd", 6);
        assert_int_equal(p.entries[1].nmeta, 1);
        assert_slice(p.pairs[p.entries[1].meta].name, "trace_id", 8);
        assert_int_equal(p.streams[1].nlabels, 0);
        assert_int_equal(p.entries[2].line.n, 0);
        sl_lp_push_free(&p);
        /* Decoding above the limit is a 413, not a 400. */
        assert_int_equal(sl_lp_decode(NULL, gz ? "gzip" : NULL, g, gn, 16, &p, &err), SL_EFULL);
        sl_lp_push_free(&p);
        if (gz) free(g);
    }
    free(body);
}

static void test_json(void **st)
{
    (void)st;
    const char *j = "{\"streams\":[{\"stream\":{\"job\":\"a\\\"b\"},\"values\":["
                    "[\"1700000000000000001\",\"one\"],"
                    "[\"1700000000000000002\",\"two\\u0000x\",{\"k\":\"v\"}]]}]}";
    sl_lp_push p;
    sl_err err;
    assert_int_equal(sl_lp_decode("application/json", NULL, j, strlen(j), 1 << 20, &p, &err),
                     SL_OK);
    assert_int_equal(p.nentries, 2);
    assert_slice(p.pairs[0].value, "a\"b", 3);
    assert_slice(p.entries[1].line, "two\0x", 5);
    assert_int_equal(p.entries[1].nmeta, 1);
    assert_int_equal(p.entries[1].ts_ns, 1700000000000000002LL);
    sl_lp_push_free(&p);
    size_t gn;
    char *g = pb_gzip(j, strlen(j), &gn);
    assert_int_equal(
        sl_lp_decode("application/json; charset=utf-8", "gzip", g, gn, 1 << 20, &p, &err), SL_OK);
    assert_int_equal(p.nentries, 2);
    sl_lp_push_free(&p);
    free(g);
}

static void test_malformed(void **st)
{
    (void)st;
    static const struct {
        const char *ctype, *cenc, *body;
    } bad[] = {
        {"application/json", NULL, "{"},
        {"application/json", NULL, "{\"streams\":{}}"},
        {"application/json", NULL, "{\"streams\":[{\"stream\":{\"a\":1},\"values\":[]}]}"},
        {"application/json", NULL, "{\"streams\":[{\"stream\":{\"a-b\":\"x\"},\"values\":[]}]}"},
        {"application/json", NULL, "{\"streams\":[{\"stream\":{},\"values\":[[\"x\",\"l\"]]}]}"},
        {"application/json", NULL, "{\"streams\":[{\"stream\":{},\"values\":[[1,\"l\"]]}]}"},
        {"application/json", NULL,
         "{\"streams\":[{\"stream\":{},\"values\":[[\"99999999999999999999\",\"l\"]]}]}"},
        {"application/json", "br", "{}"},
        {NULL, NULL, "not snappy at all"},
        {NULL, "gzip", "not gzip"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_lp_push p;
        sl_err err = {0};
        int rc = sl_lp_decode(bad[i].ctype, bad[i].cenc, bad[i].body, strlen(bad[i].body), 1 << 20,
                              &p, &err);
        if (rc != SL_EPARSE) fail_msg("case %zu: rc %d", i, rc);
        assert_true(err.msg[0] != 0);
        sl_lp_push_free(&p);
    }
    /* Protobuf that snappy decodes but is broken: truncated length, a
     * stream without labels, bad labels, an entry without a timestamp. */
    pbuf req = {0}, s = {0};
    pb_varint(&req, 1 << 3 | 2);
    pb_varint(&req, 50);
    pb_put(&req, "xx", 2);
    pbuf r2 = {0};
    pb_entry(&s, 1, "l", 1, NULL);
    pb_add_stream(&r2, &s);
    pbuf r3 = {0};
    pb_stream_labels(&s, "{a=b}");
    pb_add_stream(&r3, &s);
    pbuf r4 = {0}, e = {0};
    pb_stream_labels(&s, "{a=\"b\"}");
    pb_bytes(&e, 2, "line", 4);
    pb_msg(&s, 2, &e);
    pb_add_stream(&r4, &s);
    pbuf *all[] = {&req, &r2, &r3, &r4};
    for (size_t i = 0; i < 4; i++) {
        size_t n;
        char *body = pb_snappy(all[i], &n);
        sl_lp_push p;
        sl_err err = {0};
        assert_int_equal(sl_lp_decode(NULL, NULL, body, n, 1 << 20, &p, &err), SL_EPARSE);
        assert_true(err.msg[0] != 0);
        sl_lp_push_free(&p);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_protobuf),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
