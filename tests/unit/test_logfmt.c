#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/err.h"
#include "parsers/logfmt.h"

static char *exact(const char *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static void assert_slice(sl_slice s, const char *want)
{
    if (!sl_slice_eq(s, want, strlen(want))) fail_msg("got '%.*s', want '%s'", (int)s.n, s.p, want);
}

typedef struct kv {
    const char *k, *v;
    int type;
} kv;

/* Parses text (an exact copy) and compares every pair with want. */
static void check(const char *text, size_t n, const kv *want, size_t nwant, int want_rc)
{
    char *d = exact(text, n);
    sl_field f[32];
    size_t count = 0;
    int rc = sl_logfmt_parse(d, n, f, 32, &count);
    if (rc != want_rc) fail_msg("'%.*s': rc %d, want %d", (int)n, text, rc, want_rc);
    if (count != nwant) fail_msg("'%.*s': %zu pairs, want %zu", (int)n, text, count, nwant);
    for (size_t i = 0; i < nwant; i++) {
        assert_slice(f[i].key, want[i].k);
        assert_slice(f[i].val, want[i].v);
        assert_int_equal(f[i].type, want[i].type);
    }
    free(d);
}

#define CHECK(text, rc, ...)                                                                       \
    do {                                                                                           \
        const kv w_[] = {__VA_ARGS__};                                                             \
        check(text, strlen(text), w_, sizeof w_ / sizeof *w_, rc);                                 \
    } while (0)

enum { ST = SL_V_STRING, ES = SL_V_ESCAPED, TR = SL_V_TRUE };

static void test_pairs(void **st)
{
    (void)st;
    CHECK("level=info msg=hello", 0, {"level", "info", ST}, {"msg", "hello", ST});
    CHECK("ts=2024-01-01T00:00:00Z level=warn msg=\"disk almost full\" used=93.5%", 0,
          {"ts", "2024-01-01T00:00:00Z", ST}, {"level", "warn", ST},
          {"msg", "disk almost full", ST}, {"used", "93.5%", ST});
    CHECK("msg=\"say \\\"hi\\\"\" n=1", 0, {"msg", "say \\\"hi\\\"", ES}, {"n", "1", ST});
    CHECK("debug a=1 verbose", 0, {"debug", "true", TR}, {"a", "1", ST}, {"verbose", "true", TR});
    CHECK("empty= quoted=\"\" x=y", 0, {"empty", "", ST}, {"quoted", "", ST}, {"x", "y", ST});
    CHECK("  \t a=1\t\tb=2  ", 0, {"a", "1", ST}, {"b", "2", ST});
    CHECK("url=http://x/?a=b&c=d k=v=w", 0, {"url", "http://x/?a=b&c=d", ST}, {"k", "v=w", ST});
    CHECK("caf\xc3\xa9=cr\xc3\xa8me", 0, {"caf\xc3\xa9", "cr\xc3\xa8me", ST});
    /* Garbage is skipped, never a crash. */
    CHECK("=orphan a=1", 0, {"a", "1", ST});
    CHECK("=\"orphan quoted\" a=1", 0, {"a", "1", ST});
    CHECK("\"stray quoted\" a=1", 0, {"a", "1", ST});
    CHECK("a=\"unterminated value", 0, {"a", "unterminated value", ST});
    CHECK("a=\"ends in backslash\\", 0, {"a", "ends in backslash\\", ES});
    CHECK("a=\"esc quote \\\" to end", 0, {"a", "esc quote \\\" to end", ES});
    CHECK("key\"x\" a=1", 0, {"key", "true", TR}, {"a", "1", ST});
    /* No key=value pair: a parse error, bare words are not logfmt. */
    CHECK("just some words", SL_EPARSE, {"just", "true", TR}, {"some", "true", TR},
          {"words", "true", TR});
    check("", 0, NULL, 0, SL_EPARSE);
    check("   ", 3, NULL, 0, SL_EPARSE);
    check("=== \"\" =", 8, NULL, 0, SL_EPARSE);
    /* Long values cross the vector loop's 16-byte steps. */
    CHECK("k0123456789abcdefghij=v0123456789abcdefghijklmnopqrstuvwxyz "
          "q=\"0123456789abcdef0123456789\\\\abcdef\"",
          0, {"k0123456789abcdefghij", "v0123456789abcdefghijklmnopqrstuvwxyz", ST},
          {"q", "0123456789abcdef0123456789\\\\abcdef", ES});
}

static void test_nul_and_controls(void **st)
{
    (void)st;
    /* NUL and other control bytes separate pairs like blanks. */
    const char t[] = "a=1\0b=2\x01"
                     "c=\"x\0y\"";
    const kv w[] = {{"a", "1", ST}, {"b", "2", ST}, {"c", "x", ST}};
    char *d = exact(t, sizeof t - 1);
    sl_field f[8];
    size_t c;
    assert_int_equal(sl_logfmt_parse(d, sizeof t - 1, f, 8, &c), 0);
    assert_int_equal(c, 3);
    for (int i = 0; i < 2; i++) assert_slice(f[i].val, w[i].v);
    assert_int_equal(f[2].val.n, 3); /* quoted values keep any byte */
    assert_memory_equal(f[2].val.p, "x\0y", 3);
    free(d);
    /* More pairs than room: count them all, write cap. */
    const char *many = "a=1 b=2 c=3 d=4 e=5";
    assert_int_equal(sl_logfmt_parse(many, strlen(many), f, 2, &c), 0);
    assert_int_equal(c, 5);
    assert_slice(f[1].key, "b");
}

static void test_unescape(void **st)
{
    (void)st;
    struct {
        const char *in, *out;
        size_t outn;
    } c[] = {
        {"a\\\"b", "a\"b", 3},
        {"tab\\tnl\\n", "tab\tnl\n", 7},
        {"\\u00e9\\x41",
         "\xc3\xa9"
         "A",
         3},
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", 4},
        {"\\ud83d", "\xef\xbf\xbd", 3},
        {"\\q\\", "q\\", 2},
        {"\\u12", "u12", 3},
        {"\\U0001F600", "\xf0\x9f\x98\x80", 4},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char buf[64];
        size_t n = sl_logfmt_unescape((sl_slice){c[i].in, strlen(c[i].in)}, buf);
        assert_true(n <= strlen(c[i].in));
        assert_int_equal(n, c[i].outn);
        assert_memory_equal(buf, c[i].out, n);
    }
}

static void test_parse_record(void **st)
{
    (void)st;
    sl_batch *b = sl_batch_new(4);
    const char *line = "level=info msg=\"a \\\"quoted\\\" word\" path=\"C:\\x41\" ok";
    sl_record *r = sl_batch_add(b, (sl_slice){line, strlen(line)}, 0, 0);
    sl_err e = {0};
    assert_int_equal(sl_logfmt_parse_record(b, r, r->line, &e), 0);
    assert_int_equal(r->nfields, 4);
    sl_field *f = sl_record_field(r, "msg", 3);
    assert_non_null(f);
    assert_int_equal(f->type, SL_V_ESCAPED); /* JSON-compatible escapes stay lazy */
    assert_slice(f->val, "a \\\"quoted\\\" word");
    f = sl_record_field(r, "path", 4);
    assert_int_equal(f->type, SL_V_STRING); /* \x41 is not JSON: unescaped now */
    assert_slice(f->val, "C:A");
    f = sl_record_field(r, "ok", 2);
    assert_int_equal(f->type, SL_V_TRUE);
    /* A lone surrogate is JSON's grammar but not Unicode (strict readers
     * refuse it): unescaped now, to U+FFFD; a pair stays lazy. */
    const char *sur = "a=\"x\\ud800\" b=\"\\udc00\" c=\"\\ud83d\\ude00\"";
    r = sl_batch_add(b, (sl_slice){sur, strlen(sur)}, 0, 0);
    assert_int_equal(sl_logfmt_parse_record(b, r, r->line, &e), 0);
    f = sl_record_field(r, "a", 1);
    assert_int_equal(f->type, SL_V_STRING);
    assert_slice(f->val, "x\xef\xbf\xbd");
    f = sl_record_field(r, "b", 1);
    assert_int_equal(f->type, SL_V_STRING);
    assert_slice(f->val, "\xef\xbf\xbd");
    f = sl_record_field(r, "c", 1);
    assert_int_equal(f->type, SL_V_ESCAPED);
    assert_slice(f->val, "\\ud83d\\ude00");
    /* No pair: an error and nothing appended. */
    const char *text = "a plain sentence";
    r = sl_batch_add(b, (sl_slice){text, strlen(text)}, 0, 0);
    assert_int_equal(sl_logfmt_parse_record(b, r, r->line, &e), SL_EPARSE);
    assert_int_equal(r->nfields, 0);
    assert_non_null(strstr(e.msg, "logfmt"));
    sl_batch_unref(b);
}

/* A plain byte-at-a-time reference with the documented rules, to check the
 * block-classifying iterator against. */
static size_t ref_quoted(const char *p, size_t n, size_t i, bool *esc)
{
    while (i < n) {
        if (p[i] == '"') return i;
        if (p[i] == '\\') {
            *esc = true;
            if (n - i <= 2) return n;
            i += 2;
            continue;
        }
        i++;
    }
    return n;
}

static size_t ref_parse(const char *p, size_t n, sl_field *out, size_t cap)
{
    size_t i = 0, c = 0;
    while (c < cap) {
        while (i < n && (unsigned char)p[i] <= ' ') i++;
        if (i >= n) break;
        bool esc = false;
        if (p[i] == '"') {
            i = ref_quoted(p, n, i + 1, &esc);
            if (i < n) i++;
            continue;
        }
        if (p[i] == '=') {
            i++;
            if (i < n && p[i] == '"') {
                i = ref_quoted(p, n, i + 1, &esc);
                if (i < n) i++;
            } else {
                while (i < n && (unsigned char)p[i] > ' ') i++;
            }
            continue;
        }
        size_t k = i;
        while (i < n && (unsigned char)p[i] > ' ' && p[i] != '=' && p[i] != '"') i++;
        sl_field f = {{p + k, i - k}, SL_SLICE_LIT("true"), SL_V_TRUE, 0};
        if (i < n && p[i] == '=') {
            i++;
            size_t v;
            if (i < n && p[i] == '"') {
                v = ++i;
                i = ref_quoted(p, n, i, &esc);
                f.val = (sl_slice){p + v, i - v};
                f.type = esc ? SL_V_ESCAPED : SL_V_STRING;
                if (i < n) i++;
            } else {
                v = i;
                while (i < n && (unsigned char)p[i] > ' ') i++;
                f.val = (sl_slice){p + v, i - v};
                f.type = SL_V_STRING;
            }
        }
        out[c++] = f;
    }
    return c;
}

static void test_matches_reference(void **st)
{
    (void)st;
    uint32_t x = 2024;
    for (int it = 0; it < 20000; it++) {
        char buf[300];
        size_t n = (size_t)it % 300;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            uint32_t r = (x >> 8) % 16;
            buf[i] = r < 6 ? "=\" \\\t\0"[r] : r < 14 ? (char)('a' + r) : (char)(x >> 20);
        }
        char *d = exact(buf, n);
        sl_field a[128], b[128];
        size_t na = 0, nb = ref_parse(d, n, b, 128);
        sl_logfmt_parse(d, n, a, 128, &na);
        if (na > 128) na = 128;
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_ptr_equal(a[i].key.p, b[i].key.p);
            assert_int_equal(a[i].key.n, b[i].key.n);
            assert_int_equal(a[i].type, b[i].type);
            if (a[i].type != SL_V_TRUE) {
                assert_ptr_equal(a[i].val.p, b[i].val.p);
                assert_int_equal(a[i].val.n, b[i].val.n);
            }
        }
        free(d);
    }
}

static void test_truncation_and_garbage(void **st)
{
    (void)st;
    const char *samples[] = {
        "ts=2024-01-01T00:00:00Z level=warn msg=\"disk \\\"almost\\\" full\" used=93.5% bare",
        "a=\"\\u00e9\\\\\" =x \"q\" b= c",
        "caf\xc3\xa9=cr\xc3\xa8me \xff\xfe=\xc3",
    };
    sl_batch *b = sl_batch_new(1);
    for (size_t s = 0; s < 3; s++) {
        size_t n = strlen(samples[s]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *d = exact(samples[s], cut);
            sl_logfmt_iter it;
            sl_logfmt_init(&it, d, cut);
            sl_field f;
            while (sl_logfmt_next(&it, &f)) {
                assert_true(f.key.p >= d && f.key.p + f.key.n <= d + cut);
                assert_true(f.key.n > 0);
                if (f.type != SL_V_TRUE) assert_true(f.val.p >= d && f.val.p + f.val.n <= d + cut);
            }
            sl_record r = {.line = {d, cut}};
            sl_logfmt_parse_record(b, &r, r.line, NULL);
            free(d);
        }
    }
    uint32_t x = 7;
    for (int it = 0; it < 30000; it++) {
        char buf[80];
        size_t n = 1 + it % 79;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            buf[i] = (x >> 9) % 3 ? "=\" \\ab\t"[(x >> 13) % 7] : (char)(x >> 16);
        }
        char *d = exact(buf, n);
        sl_field f[16];
        size_t c;
        sl_logfmt_parse(d, n, f, 16, &c);
        for (size_t i = 0; i < c && i < 16; i++) {
            if (f[i].type != SL_V_ESCAPED) continue;
            char *u = malloc(f[i].val.n + 1);
            assert_true(sl_logfmt_unescape(f[i].val, u) <= f[i].val.n);
            free(u);
        }
        free(d);
    }
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_nul_and_controls),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_parse_record),
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_truncation_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
