/* Hostile input through every parse step and then the record -> JSON writer
 * (shipper/recjson.c: file `format: json`, Kafka `value: json`, spool
 * export): the output must be valid JSON for two strict readers (the json
 * step's validator, parsers/json.c, and jansson, which also refuse lone
 * surrogates and invalid UTF-8), identical from each copy of the writer,
 * and a field must read back as the step meant it. logfmt is where this
 * broke: its quoted values keep their escapes (SL_V_ESCAPED) and the writer
 * copies those as they are, so an escape JSON lacks or a lone \ud800 made
 * the document invalid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/json_str.h"
#include "parsers/cri.h"
#include "parsers/json.h"
#include "parsers/logfmt.h"
#include "parsers/regex.h"
#include "parsers/syslog.h"
#include "shipper/recjson.h"

#define FFFD "\xef\xbf\xbd"

/* The record's JSON from every copy of the writer: all the same, valid for
 * both readers. Returns jansson's tree (the caller frees it). */
static json_t *checked_json(const sl_batch *b, const sl_record *r, const char *what)
{
    sl_buf first;
    sl_buf_init(&first, 0);
    for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
        sl_buf out;
        sl_buf_init(&out, 0);
        int rc = sl_recjson_append_kernel(&out, b, r, SL_RJ_ALL, k);
        if (rc < 0) fail_msg("%s: writer %d failed: %d", what, k, rc);
        sl_err e = {0};
        if (sl_json_validate(out.p, out.len, NULL, &e) != 0)
            fail_msg("%s: writer %d: invalid JSON (%s): %.*s", what, k, e.msg, (int)out.len, out.p);
        if (k == SL_RJ_KERNEL_PORTABLE) {
            sl_buf_append(&first, out.p, out.len);
        } else if (out.len != first.len || memcmp(out.p, first.p, out.len) != 0) {
            fail_msg("%s: writer %d differs from the portable one", what, k);
        }
        sl_buf_free(&out);
    }
    json_error_t je;
    json_t *doc = json_loadb(first.p, first.len, JSON_ALLOW_NUL, &je);
    if (!doc) fail_msg("%s: jansson refuses (%s): %.*s", what, je.text, (int)first.len, first.p);
    sl_buf_free(&first);
    return doc;
}

/* fields[key] of the document equals want[0..wn). */
static void assert_field(json_t *doc, const char *key, const char *want, size_t wn,
                         const char *what)
{
    json_t *v = json_object_get(json_object_get(doc, "fields"), key);
    if (!json_is_string(v)) fail_msg("%s: no string field '%s'", what, key);
    size_t n = json_string_length(v);
    if (n != wn || memcmp(json_string_value(v), want, n) != 0)
        fail_msg("%s: field '%s' is '%.*s' (%zu bytes), want '%.*s' (%zu)", what, key, (int)n,
                 json_string_value(v), n, (int)wn, want, wn);
}

#define ASSERT_FIELD(doc, key, lit, what) assert_field(doc, key, lit, sizeof lit - 1, what)

/* Every SL_V_ESCAPED field a step left is strict JSON string text and reads
 * back as the step's own unescape would give it. */
static void assert_escaped_fields_strict(const sl_record *r, const char *what)
{
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if (f->type != SL_V_ESCAPED) continue;
        char *a = malloc(f->val.n + 1), *b = malloc(f->val.n + 1);
        assert_non_null(a);
        assert_non_null(b);
        ptrdiff_t na = sl_json_unescape(f->val.p, f->val.n, a, f->val.n + 1);
        if (na < 0)
            fail_msg("%s: escaped field %.*s is not strict JSON text", what, (int)f->key.n,
                     f->key.p);
        size_t nb = sl_logfmt_unescape(f->val, b);
        if ((size_t)na != nb || memcmp(a, b, nb) != 0)
            fail_msg("%s: field %.*s reads differently as JSON and as logfmt", what, (int)f->key.n,
                     f->key.p);
        free(a);
        free(b);
    }
}

/* An exact-size copy of the line, so a read past it shows under ASan. */
static char *exact(const char *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

typedef struct logfmt_case {
    const char *line; /* strlen unless n */
    const char *key, *want;
    size_t wn; /* 0: strlen(want) */
} logfmt_case;

static void test_logfmt_hostile_values(void **st)
{
    (void)st;
    static const logfmt_case cases[] = {
        /* escapes JSON lacks: Go strconv's, or unknown ones (their character kept) */
        {"a=\"x\\y\"", "a", "xy", 0},
        {"a=\"it\\'s\"", "a", "it's", 0},
        {"a=\"C:\\x41\\x\"", "a", "C:Ax", 0},
        {"a=\"\\a\\v\"", "a", "\a\v", 0},
        {"a=\"\\U0001F600\"", "a", "\xf0\x9f\x98\x80", 0},
        {"a=\"\\u12\"", "a", "u12", 0},
        /* a lone backslash at the end, quoted or not, terminated or not */
        {"a=\"end\\", "a", "end\\", 0},
        {"a=end\\ b=1", "a", "end\\", 0},
        {"a=\"x\\\"", "a", "x\"", 0},
        /* lone or broken surrogates: U+FFFD, as sl_logfmt_unescape makes them */
        {"a=\"lone\\ud800\"", "a", "lone" FFFD, 0},
        {"a=\"\\udc00x\"", "a", FFFD "x", 0},
        {"a=\"\\ud800\\u0041\"", "a", FFFD "A", 0},
        {"a=\"\\uD800\\\"", "a", FFFD "\"", 0},
        {"a=\"\\udbff\"", "a", FFFD, 0},
        /* paired ones stay JSON as they are */
        {"a=\"\\ud83d\\ude00 \\\"q\\\" \\\\ \\/\"", "a", "\xf0\x9f\x98\x80 \"q\" \\ /", 0},
        /* control bytes: raw in a quoted value, made by \x, NUL */
        {"a=\"\\n\x01\x7f\"", "a", "\n\x01\x7f", 0},
        {"a=\"\\x00z\"", "a", "\0z", 2},
        {"a=\"\\u0000\\t\"", "a", "\0\t", 2},
        {"a=\"\\\x01\"", "a", "\x01", 0},
        /* invalid UTF-8, raw or made by \x: U+FFFD in the JSON */
        {"a=\"bad\xc3 \\n\"", "a", "bad" FFFD " \n", 0},
        {"a=\"\\xff\\xc3\\xa9\"", "a", FFFD "\xc3\xa9", 0},
        {"a=\"\\\xff\"", "a", FFFD, 0},
        {"a=caf\xc3\xa9\xff", "a", "caf\xc3\xa9" FFFD, 0},
        /* hostile keys: backslashes, invalid UTF-8, a quote after */
        {"k\\x=v", "k\\x", "v", 0},
        {"b=1 k\\\"x", "k\\", "true", 0},
        {"\xff=1 b=2", FFFD, "1", 0},
        /* a bare key's value */
        {"flag a=1", "flag", "true", 0},
    };
    sl_batch *b = sl_batch_new(4);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const logfmt_case *c = &cases[i];
        size_t n = strlen(c->line);
        char *d = exact(c->line, n);
        sl_record *r = sl_batch_add(b, (sl_slice){d, n}, 0, 0);
        assert_non_null(r);
        sl_err e = {0};
        if (sl_logfmt_parse_record(b, r, r->line, &e) != 0) fail_msg("'%s': %s", c->line, e.msg);
        assert_escaped_fields_strict(r, c->line);
        json_t *doc = checked_json(b, r, c->line);
        if (strcmp(c->want, "true") == 0 && strcmp(c->key, "a") != 0) {
            json_t *v = json_object_get(json_object_get(doc, "fields"), c->key);
            if (!json_is_true(v)) fail_msg("'%s': %s is not true", c->line, c->key);
        } else {
            assert_field(doc, c->key, c->want, c->wn ? c->wn : strlen(c->want), c->line);
        }
        json_decref(doc);
        sl_batch_unref(b);
        b = sl_batch_new(4);
        assert_non_null(b);
        free(d);
    }
    sl_batch_unref(b);
}

/* Lines from an alphabet of everything that can go wrong, through logfmt
 * and the writer: always valid JSON, every lazy value strict. */
static void test_logfmt_random_lines(void **st)
{
    (void)st;
    static const char *const atoms[] = {
        "=",       "\"",      " ",  "\\",   "a",    "k",    "x",    "u",    "U",
        "d8",      "dc",      "00", "ff",   "e9",   "'",    "\\u",  "\\x",  "\\U",
        "\\ud83d", "\\ude00", "\t", "\x01", "\x7f", "\xff", "\xc3", "\xa9", "\xf0\x9f\x98\x80",
        "\\\\",    "\\\"",    "/",
    };
    enum { NATOMS = sizeof atoms / sizeof *atoms };
    sl_batch *b = sl_batch_new(4);
    assert_non_null(b);
    uint32_t x = 46;
    for (int it = 0; it < 20000; it++) {
        char line[256];
        size_t n = 0, atoms_n = 1 + (size_t)it % 40;
        for (size_t k = 0; k < atoms_n; k++) {
            x = x * 1103515245 + 12345;
            const char *a = atoms[(x >> 8) % NATOMS];
            size_t an = strlen(a);
            if (n + an > sizeof line) break;
            memcpy(line + n, a, an);
            n += an;
        }
        char *d = exact(line, n);
        sl_record *r = sl_batch_add(b, (sl_slice){d, n}, 0, 0);
        assert_non_null(r);
        sl_logfmt_parse_record(b, r, r->line, NULL);
        char what[64];
        snprintf(what, sizeof what, "random line %d", it);
        assert_escaped_fields_strict(r, what);
        json_decref(checked_json(b, r, what));
        sl_batch_unref(b);
        b = sl_batch_new(4);
        assert_non_null(b);
        free(d);
    }
    sl_batch_unref(b);
}

/* The other steps never leave escapes for the writer (their values are
 * SL_V_STRING, escaped on the way out): hostile bytes in their fields give
 * valid JSON all the same, and the value the step meant. */
static void test_other_steps(void **st)
{
    (void)st;
    static const char hostile[] = "q\\x41 \\ud800 \\' \x01\x1f\x7f \xff\xc3 \"\\";
    sl_batch *b = sl_batch_new(8);
    assert_non_null(b);
    sl_err e = {0};

    /* regex named groups */
    sl_regex *re = NULL;
    const char pat[] = "^(?<first>\\S+) (?<rest>.*)$";
    sl_regex_opts ro = {0};
    assert_int_equal(sl_regex_new(pat, sizeof pat - 1, &ro, &re, &e), 0);
    char *d = exact(hostile, sizeof hostile - 1);
    sl_record *r = sl_batch_add(b, (sl_slice){d, sizeof hostile - 1}, 0, 0);
    assert_int_equal(sl_regex_parse_record(b, r, r->line, re, &e), 0);
    json_t *doc = checked_json(b, r, "regex");
    ASSERT_FIELD(doc, "first", "q\\x41", "regex");
    ASSERT_FIELD(doc, "rest", "\\ud800 \\' \x01\x1f\x7f " FFFD FFFD " \"\\", "regex");
    json_decref(doc);
    sl_regex_free(re);
    free(d);
    sl_batch_unref(b);
    b = sl_batch_new(8);
    assert_non_null(b);

    /* CRI: the message becomes the line */
    static const char cri[] = "2024-01-01T00:00:00.5Z stderr F \\ud800\x01\xff\"\\";
    d = exact(cri, sizeof cri - 1);
    r = sl_batch_add(b, (sl_slice){d, sizeof cri - 1}, 0, 0);
    assert_int_equal(sl_cri_parse_record(b, r, r->line, &e), 0);
    doc = checked_json(b, r, "cri");
    json_t *line = json_object_get(doc, "line");
    assert_true(json_is_string(line));
    assert_string_equal(json_string_value(line), "\\ud800\x01" FFFD "\"\\");
    ASSERT_FIELD(doc, "stream", "stderr", "cri");
    json_decref(doc);
    free(d);
    sl_batch_unref(b);
    b = sl_batch_new(8);
    assert_non_null(b);

    /* docker: a JSON log whose message holds a lone surrogate, a control
     * escape and an escaped backslash */
    static const char dock[] = "{\"log\":\"a\\ud800b\\u0001\\\\x\\n\",\"stream\":\"stdout\","
                               "\"time\":\"2024-01-01T00:00:00Z\"}";
    d = exact(dock, sizeof dock - 1);
    r = sl_batch_add(b, (sl_slice){d, sizeof dock - 1}, 0, 0);
    assert_int_equal(sl_docker_parse_record(b, r, r->line, &e), 0);
    doc = checked_json(b, r, "docker");
    line = json_object_get(doc, "line");
    assert_true(json_is_string(line));
    assert_string_equal(json_string_value(line), "a" FFFD "b\x01\\x");
    json_decref(doc);
    free(d);
    sl_batch_unref(b);
    b = sl_batch_new(8);
    assert_non_null(b);

    /* syslog: structured-data values with their own escapes (\" \\ \])
     * and backslashes that are not escapes, hostile bytes in the message
     * (header fields are printable ASCII or the line is refused) */
    static const char sys[] = "<13>1 2024-01-01T00:00:00Z host app - id "
                              "[x@1 a=\"q\\\"\\\\\\]\\ud800\\x\" b=\"\xff\x01\"] msg \\' \x01\xc3";
    d = exact(sys, sizeof sys - 1);
    r = sl_batch_add(b, (sl_slice){d, sizeof sys - 1}, 0, 0);
    sl_syslog_opts so = {0};
    if (sl_syslog_parse_record(b, r, r->line, &so, &e) != 0) fail_msg("syslog: %s", e.msg);
    doc = checked_json(b, r, "syslog");
    ASSERT_FIELD(doc, "x@1.a", "q\"\\]\\ud800\\x", "syslog");
    ASSERT_FIELD(doc, "x@1.b", FFFD "\x01", "syslog");
    ASSERT_FIELD(doc, "message", "msg \\' \x01" FFFD, "syslog");
    json_decref(doc);
    free(d);
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt_hostile_values),
        cmocka_unit_test(test_logfmt_random_lines),
        cmocka_unit_test(test_other_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
