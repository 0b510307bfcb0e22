/* core/json_str: the three answers to a malformed escape (the JSON parser
 * fails, Loki keeps it, docker drops the backslash), the output bound of
 * each, escapes cut by a full output, and the pieces shared by the parsers
 * (\u digits, UTF-8 encoding). The escaper itself is tested against its
 * reference in test_recjson and fuzz_json_escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/json_str.h"

typedef struct unesc_case {
    const char *in;
    const char *fail, *keep, *loose; /* NULL under fail: SL_EPARSE */
} unesc_case;

#define REPL "\xef\xbf\xbd"

static const unesc_case cases[] = {
    {"plain", "plain", "plain", "plain"},
    {"a\\\"b\\\\c\\/d", "a\"b\\c/d", "a\"b\\c/d", "a\"b\\c/d"},
    {"\\b\\f\\n\\r\\t", "\b\f\n\r\t", "\b\f\n\r\t", "\b\f\n\r\t"},
    {"\\u00e9\\u20AC", "\xc3\xa9\xe2\x82\xac", "\xc3\xa9\xe2\x82\xac", "\xc3\xa9\xe2\x82\xac"},
    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    /* malformed: an unknown escape, a short or non-hex \u, lone surrogates,
     * a high one followed by something else, a final backslash */
    {"a\\xb", NULL, "a\\xb", "axb"},
    {"\\u12", NULL, "\\u12", REPL "12"},
    {"\\uzzzz!", NULL, "\\uzzzz!", REPL "zzzz!"},
    {"\\udc00x", NULL, REPL "x", REPL "x"},
    {"\\ud800x", NULL, REPL "x", REPL "x"},
    {"\\ud800\\u0041", NULL, REPL "A", REPL "A"},
    {"\\ud800\\ud800\\udc00", NULL, REPL "\xf0\x90\x80\x80", REPL "\xf0\x90\x80\x80"},
    {"end\\", NULL, "end\\", "end\\"},
    {"\\\xc3\xa9", NULL, "\\\xc3\xa9", "\xc3\xa9"},
};

static void check(const char *in, sl_json_bad bad, const char *want)
{
    char out[64];
    size_t n = strlen(in), o = 99;
    int rc = sl_json_unescape_to(in, n, out, sizeof out, bad, &o);
    if (!want) {
        assert_int_equal(rc, SL_EPARSE);
        return;
    }
    assert_int_equal(rc, SL_OK);
    assert_int_equal(o, strlen(want));
    assert_memory_equal(out, want, o);
    /* Every policy but LOOSE stays within n bytes, which is what the Loki
     * sink and the JSON steps reserve. */
    if (bad != SL_JSON_BAD_LOOSE) assert_true(o <= n);
}

static void test_malformed_escape_policies(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check(cases[i].in, SL_JSON_BAD_FAIL, cases[i].fail);
        check(cases[i].in, SL_JSON_BAD_KEEP, cases[i].keep);
        check(cases[i].in, SL_JSON_BAD_LOOSE, cases[i].loose);
    }
    ptrdiff_t m = sl_json_unescape("x\\q", 3, (char[4]){0}, 4);
    assert_int_equal(m, SL_EPARSE);
}

/* A full output keeps a prefix: plain bytes up to the last one that fits,
 * an escape's UTF-8 whole or not at all. */
static void test_full_output_keeps_a_prefix(void **st)
{
    (void)st;
    char out[8];
    size_t o;
    assert_int_equal(sl_json_unescape_to("abcdef", 6, out, 4, SL_JSON_BAD_LOOSE, &o), SL_EFULL);
    assert_int_equal(o, 4);
    assert_memory_equal(out, "abcd", 4);
    /* "ab" + U+20AC (3 bytes) into 4: the escape does not fit, nothing of it
     * is written */
    assert_int_equal(sl_json_unescape_to("ab\\u20ac", 8, out, 4, SL_JSON_BAD_LOOSE, &o), SL_EFULL);
    assert_int_equal(o, 2);
    /* a bare \u grows 2 bytes into 3 under LOOSE: a cap of n is not enough */
    assert_int_equal(sl_json_unescape_to("\\u", 2, out, 2, SL_JSON_BAD_LOOSE, &o), SL_EFULL);
    assert_int_equal(o, 0);
    assert_int_equal(sl_json_unescape("ab\\n", 4, out, 2), SL_EFULL);
    assert_int_equal(sl_json_unescape("ab\\n", 4, out, 3), 3);
    /* exactly full with nothing left is not full */
    assert_int_equal(sl_json_unescape_to("a\\tb", 4, out, 3, SL_JSON_BAD_FAIL, &o), SL_OK);
    assert_int_equal(o, 3);
}

static void test_hex4_and_utf8_put(void **st)
{
    (void)st;
    assert_int_equal(sl_json_hex4("00e9", 4), 0xe9);
    assert_int_equal(sl_json_hex4("FfFf", 4), 0xffff);
    assert_int_equal(sl_json_hex4("12", 2), -1);
    assert_int_equal(sl_json_hex4("12g4", 4), -1);
    assert_int_equal(sl_json_hex4("12:4", 4), -1);
    assert_int_equal(sl_json_hex4("12G4", 4), -1);
    char d[4];
    struct {
        uint32_t cp;
        const char *utf8;
    } enc[] = {{0x41, "A"},
               {0x7f, "\x7f"},
               {0x80, "\xc2\x80"},
               {0x7ff, "\xdf\xbf"},
               {0x800, "\xe0\xa0\x80"},
               {0xfffd, REPL},
               {0x10000, "\xf0\x90\x80\x80"},
               {0x10ffff, "\xf4\x8f\xbf\xbf"}};
    for (size_t i = 0; i < sizeof enc / sizeof *enc; i++) {
        size_t n = sl_json_utf8_put(d, enc[i].cp);
        assert_int_equal(n, strlen(enc[i].utf8));
        assert_memory_equal(d, enc[i].utf8, n);
    }
}

/* The reference escaper: short escapes, \u00xx for other control bytes,
 * U+FFFD per maximal invalid subpart, counted. */
static void test_escape_ref(void **st)
{
    (void)st;
    const char in[] = "\"\\\n\r\t\b\x01\x7f\xc3\xa9\xe2\x82 \xff";
    const char want[] = "\\\"\\\\\\n\\r\\t\\u0008\\u0001\x7f\xc3\xa9" REPL " " REPL;
    char out[6 * sizeof in];
    size_t bad = 0;
    size_t n = sl_json_escape_ref(out, in, sizeof in - 1, &bad);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
    assert_int_equal(bad, 2);
    char fast[SL_JSON_ESCAPE_ROOM(sizeof in)];
    size_t bad2 = 0;
    assert_int_equal(sl_json_escape_to(fast, in, sizeof in - 1, &bad2), n);
    assert_memory_equal(fast, want, n);
    assert_int_equal(bad2, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_escape_policies),
        cmocka_unit_test(test_full_output_keeps_a_prefix),
        cmocka_unit_test(test_hex4_and_utf8_put),
        cmocka_unit_test(test_escape_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
