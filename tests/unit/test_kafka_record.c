/* The Kafka input's `format: json` decoder (collector/kafka_record.c) on
 * hostile messages (decision 0059): each case is a bounded outcome, either
 * SL_EPARSE (the caller ships the message as it came, flagged and counted
 * in sluice_kafka_input_decode_errors_total) or a record that keeps the
 * writer's promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "collector/kafka_record.h"
#include "core/buf.h"
#include "core/err.h"
#include "parsers/json.h"

typedef struct arena {
    char *p;
    size_t len, cap;
} arena;

static char *take(void *arg, size_t n)
{
    arena *a = arg;
    if (n > a->cap - a->len) return NULL;
    char *at = a->p + a->len;
    a->len += n;
    return at;
}

typedef struct decoded {
    sl_batch *b;
    sl_record *r;
    arena a;
    int rc;
} decoded;

static void decode_n(decoded *d, const char *msg, size_t n, size_t room)
{
    d->b = sl_batch_new(1);
    assert_non_null(d->b);
    d->a = (arena){.p = malloc(room + 1), .cap = room};
    assert_non_null(d->a.p);
    d->r = sl_batch_add(d->b, (sl_slice){"", 0}, 42, 1);
    assert_non_null(d->r);
    d->rc = sl_kafka_record_decode(d->b, d->r, msg, n, take, &d->a);
}

static void decode(decoded *d, const char *msg)
{
    decode_n(d, msg, strlen(msg), 4 * strlen(msg) + 4096);
}

static void done(decoded *d)
{
    free(d->a.p);
    sl_batch_unref(d->b);
}

static const sl_field *field(const sl_record *r, const char *key)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (r->fields[i].key.n == strlen(key) && !memcmp(r->fields[i].key.p, key, strlen(key)))
            return &r->fields[i];
    return NULL;
}

static void expect_eparse(const char *msg)
{
    decoded d;
    decode(&d, msg);
    if (d.rc != SL_EPARSE) fail_msg("accepted: %.200s", msg);
    assert_int_equal(d.r->nfields, 0);
    assert_int_equal(d.r->time_ns, 42);
    done(&d);
}

static void test_valid_record(void **st)
{
    (void)st;
    decoded d;
    decode(&d,
           "{\"time\":\"2026-12-07T14:00:00.123456789Z\",\"line\":\"hello\","
           "\"labels\":{\"app\":\"web\"},\"fields\":{\"app\":\"web\",\"n\":5,\"o\":{\"a\":[1]}}}");
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(d.r->time_ns, 1796652000123456789LL);
    assert_int_equal(d.r->nfields, 3); /* app once, as the label */
    assert_true(field(d.r, "app")->flags & SL_FF_LABEL);
    assert_int_equal(field(d.r, "n")->type, SL_V_NUMBER);
    assert_int_equal(field(d.r, "o")->type, SL_V_OBJECT);
    done(&d);
    /* No time: the message's own stays. */
    decode(&d, "{\"line\":\"x\"}");
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(d.r->time_ns, 42);
    done(&d);
}

/* Times the writer never writes are refused, not moved or wrapped: a
 * year past 2262 overflowed int64 nanoseconds (undefined behaviour), an
 * impossible date was normalised into another one. */
static void test_absurd_times(void **st)
{
    (void)st;
    static const char *const bad[] = {
        "9999-12-31T23:59:59Z",
        "2263-01-01T00:00:00Z",
        "1000-01-01T00:00:00Z",
        "2262-04-11T23:47:16.854775808Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        " 2024-01-01T00:00:00Z",
        "+024-01-01T00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00+01:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00Zjunk",
        "",
    };
    char msg[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(msg, sizeof msg, "{\"line\":\"x\",\"time\":\"%s\"}", bad[i]);
        expect_eparse(msg);
    }
    expect_eparse("{\"line\":\"x\",\"time\":1700000000}");
    expect_eparse("{\"line\":\"x\",\"time\":null}");
    static const struct {
        const char *t;
        int64_t ns;
    } good[] = {
        {"2024-02-29T00:00:00Z", 1709164800000000000LL},
        {"2262-04-11T23:47:16.854775807Z", INT64_MAX},
        {"1970-01-01T00:00:00.5Z", 500000000},
        {"1969-12-31T23:59:59Z", -1000000000},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(msg, sizeof msg, "{\"line\":\"x\",\"time\":\"%s\"}", good[i].t);
        decoded d;
        decode(&d, msg);
        assert_int_equal(d.rc, SL_OK);
        assert_int_equal(d.r->time_ns, good[i].ns);
        done(&d);
    }
}

/* Duplicate keys, NULs, numbers jansson cannot hold, nesting past
 * jansson's limit: refused whole. */
static void test_refused_shapes(void **st)
{
    (void)st;
    expect_eparse("{\"line\":\"x\",\"line\":\"y\"}");
    expect_eparse("{\"line\":\"x\",\"fields\":{\"a\":1,\"a\":2}}");
    expect_eparse("{\"line\":\"x\",\"labels\":{\"a\":\"1\",\"a\":\"2\"}}");
    expect_eparse("{\"line\":\"x\",\"labels\":[\"a\"]}");
    expect_eparse("{\"line\":\"x\",\"fields\":\"a\"}");
    expect_eparse("{\"line\":\"a\\u0000b\"}");
    expect_eparse("{\"line\":\"x\",\"fields\":{\"a\\u0000b\":1}}");
    expect_eparse("{\"line\":5}");
    expect_eparse("{\"line\":\"x\",\"fields\":{\"n\":1e999}}");
    expect_eparse("{\"line\":\"x\",\"fields\":{\"n\":99999999999999999999}}");
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"line\":\"x\",\"fields\":{\"deep\":");
    for (int i = 0; i < 3000; i++) sl_buf_putc(&b, '[');
    for (int i = 0; i < 3000; i++) sl_buf_putc(&b, ']');
    sl_buf_printf(&b, "}}");
    decoded d;
    decode_n(&d, b.p, b.len, 4 * b.len + 4096);
    assert_int_equal(d.rc, SL_EPARSE);
    done(&d);
    /* 1,000 deep is kept, as valid JSON of its type (the spool's rule). */
    sl_buf_reset(&b);
    sl_buf_printf(&b, "{\"line\":\"x\",\"fields\":{\"deep\":");
    for (int i = 0; i < 1000; i++) sl_buf_putc(&b, '[');
    for (int i = 0; i < 1000; i++) sl_buf_putc(&b, ']');
    sl_buf_printf(&b, "}}");
    decode_n(&d, b.p, b.len, 4 * b.len + 4096);
    assert_int_equal(d.rc, SL_OK);
    const sl_field *f = field(d.r, "deep");
    assert_int_equal(f->type, SL_V_ARRAY);
    static const sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
    assert_int_equal(sl_json_validate(f->val.p, f->val.n, &deepest, NULL), 0);
    done(&d);
    sl_buf_free(&b);
}

/* Label names Loki refuses are restored as they were: the Loki sink
 * renames, cuts and counts them (decision 0016). Many labels and fields
 * take storage from the caller's bounded reserve only: when it runs out
 * the record is kept, marked truncated. */
static void test_names_and_counts(void **st)
{
    (void)st;
    decoded d;
    decode(&d, "{\"line\":\"x\",\"labels\":{\"\":\"e\",\"a-b\":\"1\",\"__name__\":\"2\","
               "\"1x\":\"3\",\"caf\\u00e9\":\"4\",\"new\\nline\":\"5\"}}");
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(d.r->nfields, 6);
    assert_non_null(field(d.r, "new\nline"));
    assert_non_null(field(d.r, ""));
    done(&d);
    /* A label keeps its type (the writer writes a numeric label as one). */
    decode(&d, "{\"line\":\"x\",\"labels\":{\"status\":200}}");
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(field(d.r, "status")->type, SL_V_NUMBER);
    assert_true(field(d.r, "status")->flags & SL_FF_LABEL);
    done(&d);
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"line\":\"x\",\"labels\":{");
    for (int i = 0; i < 20000; i++) sl_buf_printf(&b, "%s\"l%d\":\"v\"", i ? "," : "", i);
    sl_buf_printf(&b, "},\"fields\":{");
    for (int i = 0; i < 30000; i++) sl_buf_printf(&b, "%s\"f%d\":%d", i ? "," : "", i, i);
    sl_buf_printf(&b, "}}");
    decode_n(&d, b.p, b.len, 4 * b.len);
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(d.r->nfields, 50000);
    assert_false(d.r->flags & SL_RF_TRUNCATED);
    done(&d);
    decode_n(&d, b.p, b.len, 4096); /* room for a few */
    assert_int_equal(d.rc, SL_OK);
    assert_true(d.r->flags & SL_RF_TRUNCATED);
    assert_true(d.a.len <= 4096);
    assert_true(d.r->nfields < 1000);
    done(&d);
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_record),
        cmocka_unit_test(test_absurd_times),
        cmocka_unit_test(test_refused_shapes),
        cmocka_unit_test(test_names_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
