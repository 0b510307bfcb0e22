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
#include <malloc.h>

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

static void expect_full(const char *ctype, const char *cenc, const void *body, size_t n, size_t max,
                        const char *reason)
{
    sl_lp_push p;
    sl_err err = {0};
    int rc = sl_lp_decode(ctype, cenc, body, n, max, &p, &err);
    if (rc != SL_EFULL || !strstr(err.msg, reason))
        fail_msg("rc %d '%s', wanted SL_EFULL '%s'", rc, err.msg, reason);
    sl_lp_push_free(&p);
}

/* A stream of nlabels labels and nentries entries of a one-byte line. */
static char *many_entries(int nlabels, int nentries, size_t *n)
{
    pbuf req = {0}, s = {0};
    char labels[4096];
    int o = snprintf(labels, sizeof labels, "{");
    for (int i = 0; i < nlabels; i++)
        o += snprintf(labels + o, sizeof labels - (size_t)o, "%sl%02d=\"v\"", i ? "," : "", i);
    snprintf(labels + o, sizeof labels - (size_t)o, "}");
    pb_stream_labels(&s, labels);
    for (int i = 0; i < nentries; i++) pb_entry(&s, 1, "x", 1, NULL);
    pb_add_stream(&req, &s);
    return pb_snappy(&req, n);
}

/* Bodies built to take memory: each is refused as a 413 with its reason
 * under a 1 MiB bound, whatever its own size. */
static void test_bombs(void **st)
{
    (void)st;
    const size_t max = 1 << 20;
    /* gzip: 64 MiB of one byte in about 64 KiB. */
    size_t n;
    char *g = pb_gzip_fill("", "A", 64u << 20, "", &n);
    assert_true(n < (1u << 20));
    expect_full(NULL, "gzip", g, n, max, "decoded body above");
    free(g);
    /* A snappy block whose header claims 4 GiB - 1. */
    static const unsigned char claim[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 'x'};
    expect_full(NULL, NULL, claim, sizeof claim, max, "decoded body above");
    /* Protobuf of tiny entries under 64 labels: 120 KiB of body, each
     * entry a record with 65 fields (about 10 KiB), 1.2 GB in all. */
    char *b = many_entries(64, 20000, &n);
    assert_true(n < max);
    expect_full(NULL, NULL, b, n, 4 * max, "as records");
    free(b);
    /* The same at 16 labels fits 64 MiB and decodes. */
    b = many_entries(16, 20000, &n);
    sl_lp_push p;
    sl_err err = {0};
    assert_int_equal(sl_lp_decode(NULL, NULL, b, n, 64u << 20, &p, &err), SL_OK);
    assert_int_equal(p.nentries, 20000);
    assert_true(p.fields_bytes >= 20000 * 32 * sizeof(sl_field));
    sl_lp_push_free(&p);
    free(b);
    /* 100,000 streams of no entries: 8 bytes each in the body. */
    pbuf many = {0}, one = {0};
    for (int i = 0; i < 100000; i++) {
        pb_stream_labels(&one, "{}");
        pb_add_stream(&many, &one);
    }
    b = pb_snappy(&many, &n);
    expect_full(NULL, NULL, b, n, max, "in memory");
    free(b);
    /* JSON of empty arrays and objects: 3 bytes each, over 100 bytes each
     * once parsed. 300 KiB of text, gzip'd or not. */
    g = pb_gzip_fill("{\"streams\":[],\"x\":[", "[],{},", 50000, "[]]}", &n);
    expect_full("application/json", "gzip", g, n, max, "once parsed");
    free(g);
    size_t jn = 20 + 50000 * 6 + 4;
    char *j = malloc(jn + 1);
    int o = snprintf(j, jn + 1, "{\"streams\":[],\"x\":[");
    for (int i = 0; i < 50000; i++) memcpy(j + o + i * 6, "[],{},", 6);
    o += 50000 * 6;
    memcpy(j + o, "[]]}", 5);
    expect_full("application/json", NULL, j, strlen(j), max, "once parsed");
    free(j);
    /* Nested 100,000 deep: refused (jansson's depth limit, or the bound),
     * never a stack overflow. */
    g = pb_gzip_fill("", "[", 100000, "", &n);
    int rc = sl_lp_decode("application/json", "gzip", g, n, 64u << 20, &p, &err);
    assert_true(rc == SL_EPARSE || rc == SL_EFULL);
    assert_true(err.msg[0] != 0);
    sl_lp_push_free(&p);
    free(g);
    /* A protobuf length of 2^62: past the end, a 400. */
    pbuf req = {0};
    pb_varint(&req, 1 << 3 | 2);
    pb_varint(&req, 1ULL << 62);
    pb_put(&req, "xx", 2);
    b = pb_snappy(&req, &n);
    assert_int_equal(sl_lp_decode(NULL, NULL, b, n, max, &p, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "past the end"));
    sl_lp_push_free(&p);
    free(b);
}

/* What the decoder counts is at least what it holds: the heap grown by a
 * decode (the JSON tree, arrays, scratch) stays under the push's count,
 * for the shapes that cost jansson most per byte. Not under a sanitizer,
 * whose allocator mallinfo2 does not see. */
static void test_count_bounds_the_heap(void **st)
{
    (void)st;
    if (getenv("SLUICE_SANITIZED") && atoi(getenv("SLUICE_SANITIZED"))) skip();
    static const char *const shapes[][3] = {
        {"{\"streams\":[],\"x\":[", "[],", "[]]}"},
        {"{\"streams\":[],\"x\":[", "{},", "{}]}"},
        {"{\"streams\":[],\"x\":[", "0,", "0]}"},
        {"{\"streams\":[],\"x\":[", "\"\",", "\"\"]}"},
        {"{\"streams\":[],\"x\":[", "{\"k\":1,\"kk\":{},\"kkk\":[],\"k4\":\"\"},", "{}]}"},
        {"{\"streams\":[{\"stream\":{\"a\":\"b\"},\"values\":[", "[\"1\",\"l\",{\"m\":\"v\"}],",
         "[\"1\",\"l\"]]}]}"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        size_t reps = 20000, pn = strlen(shapes[i][1]);
        size_t n = strlen(shapes[i][0]) + reps * pn + strlen(shapes[i][2]);
        char *j = malloc(n + 1);
        size_t o = strlen(shapes[i][0]);
        memcpy(j, shapes[i][0], o);
        for (size_t r = 0; r < reps; r++, o += pn) memcpy(j + o, shapes[i][1], pn);
        memcpy(j + o, shapes[i][2], strlen(shapes[i][2]) + 1);
        malloc_trim(0);
        struct mallinfo2 before = mallinfo2();
        sl_lp_push p;
        sl_err err = {0};
        int rc = sl_lp_decode("application/json", NULL, j, n, 1u << 30, &p, &err);
        if (rc != SL_OK) fail_msg("shape %zu: %s", i, err.msg);
        struct mallinfo2 after = mallinfo2();
        size_t held = after.uordblks + after.hblkhd - before.uordblks - before.hblkhd;
        fprintf(stderr, "shape %zu: %zu bytes of text, %zu held, %zu counted\n", i, n, held, p.mem);
        if (held > p.mem) fail_msg("shape %zu: %zu bytes held, %zu counted", i, held, p.mem);
        sl_lp_push_free(&p);
        free(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels), cmocka_unit_test(test_protobuf),
        cmocka_unit_test(test_json),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bombs),  cmocka_unit_test(test_count_bounds_the_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
