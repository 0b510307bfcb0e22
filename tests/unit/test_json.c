/* The JSON scanner: JSONTestSuite conformance per kernel, edge cases,
 * input tails next to an unmapped page, window and block boundaries,
 * flattening, unescaping, kernel selection, the parse step. One file over
 * 800 lines: every case runs once per SIMD kernel through the same loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/batch.h"
#include "core/config.h"
#include "parsers/json.h"
#include "tests/helpers.h"

static int kernels[8];
static size_t nkernels;

static void find_kernels(void)
{
    nkernels = 0;
    const int all[] = {SL_JSON_SCALAR, SL_JSON_SSE42, SL_JSON_AVX2, SL_JSON_AVX512, SL_JSON_NEON};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (sl_json_kernel_supported(all[i])) kernels[nkernels++] = all[i];
}

static sl_json_opts kopts(int kernel)
{
    sl_json_opts o;
    sl_json_opts_init(&o, NULL);
    o.kernel = kernel;
    return o;
}

/* Validity under every kernel, which must all agree. */
static int valid_all(const char *p, size_t n, const sl_json_opts *base)
{
    int first = -100;
    for (size_t k = 0; k < nkernels; k++) {
        sl_json_opts o = base ? *base : kopts(kernels[k]);
        o.kernel = kernels[k];
        sl_err err = {0};
        int rc = sl_json_validate(p, n, &o, &err);
        if (first == -100) first = rc;
        if (rc != first)
            fail_msg("kernels disagree on %.*s: %s=%d", (int)(n > 80 ? 80 : n), p,
                     sl_json_kernel_name(kernels[k]), rc);
    }
    return first;
}

static int valid_s(const char *s)
{
    return valid_all(s, strlen(s), NULL);
}

/* ---------------------------------------------------------- conformance */

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        if (r == 0) break;
        len += r;
    }
    fclose(f);
    *n = len;
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_json_test_suite(void **state)
{
    (void)state;
    const char *dir = sl_t_testdata("JSONTestSuite/test_parsing");
    if (!dir) {
        skip();
        return;
    }
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s", dir);
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    char *names[1024];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 1024)
        if (strstr(e->d_name, ".json")) names[nn++] = strdup(e->d_name);
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    assert_true(nn >= 300);

    int bad = 0, ny = 0, nno = 0, ni = 0, i_acc = 0;
    for (size_t f = 0; f < nn; f++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dirpath, names[f]);
        size_t n = 0;
        char *doc = read_all(path, &n);
        assert_non_null(doc);
        for (size_t k = 0; k < nkernels; k++) {
            sl_json_opts o = kopts(kernels[k]);
            sl_err err = {0};
            int rc = sl_json_validate(doc, n, &o, &err);
            /* Field extraction agrees with validation on objects. */
            sl_field fl[256];
            size_t nf;
            sl_err ferr = {0};
            int frc = sl_json_fields(doc, n, &o, fl, 256, &nf, &ferr);
            if (rc == 0 && frc == SL_EPARSE) {
                size_t s = 0;
                while (s < n && memchr(" \t\r\n", doc[s], 4)) s++;
                if (s < n && doc[s] == '{') {
                    printf("  %s [%s]: valid but fields failed: %s\n", names[f],
                           sl_json_kernel_name(kernels[k]), ferr.msg);
                    bad++;
                }
            }
            if (rc != 0 && frc == 0) {
                printf("  %s: fields accepted an invalid document\n", names[f]);
                bad++;
            }
            if (names[f][0] == 'y' && rc != 0) {
                printf("  FAIL %s [%s] rejected: %s\n", names[f], sl_json_kernel_name(kernels[k]),
                       err.msg);
                bad++;
            } else if (names[f][0] == 'n' && rc == 0) {
                printf("  FAIL %s [%s] accepted\n", names[f], sl_json_kernel_name(kernels[k]));
                bad++;
            } else if (names[f][0] == 'i' && k == 0) {
                printf("  %s: %s%s%s\n", names[f], rc == 0 ? "accepted" : "rejected",
                       rc == 0 ? "" : ": ", rc == 0 ? "" : err.msg);
                i_acc += rc == 0;
            }
        }
        ny += names[f][0] == 'y';
        nno += names[f][0] == 'n';
        ni += names[f][0] == 'i';
        free(doc);
        free(names[f]);
    }
    printf("JSONTestSuite: %d y_, %d n_, %d i_ (%d accepted) on %zu kernels, %d failures\n", ny,
           nno, ni, i_acc, nkernels, bad);
    assert_int_equal(bad, 0);
    assert_true(ny >= 90 && nno >= 180);
}

/* ------------------------------------------------------------ validity */

static void test_valid_values(void **state)
{
    (void)state;
    const char *ok[] = {
        "{}",
        " { } ",
        "[]",
        "0",
        "-0",
        "1.5e+10",
        "-0.0E-3",
        "\"\"",
        "true",
        "false",
        "null",
        "{\"a\":1}",
        "\t\r\n{\"a\" : [1, 2, {\"b\": null}] }\n",
        "[1,[2,[3,[4]]]]",
        "\"\\u00e9\\ud83d\\ude00\\/\\\\\\\"\\b\\f\\n\\r\\t\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "{\"\\u0000\":\"\\u0000\"}",
        "\"\x7f\"",
        "123456789012345678901234567890",
        "1e999",
        "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":\"}\"}",
        "[\"\\\\\"]",
        "[\"a\\\\\\\"b\"]",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (valid_s(ok[i]) != 0) fail_msg("rejected: %s", ok[i]);
    }
}

static void test_invalid_values(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "{]",
        "[}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1}x",
        "{} {}",
        "{\"a\":1}}",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "0x1",
        "NaN",
        "Infinity",
        "-Infinity",
        "tru",
        "truee",
        "nul",
        "True",
        "nulll",
        "[true1]",
        "[1true]",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud800\"",
        "\"\\ud800x\"",
        "\"\\ud800\\n\"",
        "\"\\ud800\\u0041\"",
        "\"\\udc00\"",
        "\"\\",
        "\"\\\"",
        "\"a\nb\"",
        "\"a\tb\"",
        "\"\x01\"",
        "\"\xc0\x80\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\x80\"",
        "\"\xc3\"",
        "\"\xe2\x82\"",
        "[\"\xc3\"]",
        "\xef\xbb\xbf{}",
        "[1]\x0c",
        "[\x0c1]",
        "[\x1a]",
        "{\"a\":\"b\"\x1a}",
        "[\"a\"\"b\"]",
        "[1\"a\"]",
        "[\\\"a\"]",
        "'a'",
        "[-01]",
        "[1.0e]",
        "[1e5.3]",
        "[- 1]",
        "{\"a\"::1}",
        "{,}",
        "[\"a\",,]",
        "\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (valid_all(bad[i], strlen(bad[i]), NULL) != SL_EPARSE) fail_msg("accepted: %s", bad[i]);
    }
    /* NUL bytes are data, not terminators. */
    assert_int_equal(valid_all("{\"a\":1}\0", 8, NULL), SL_EPARSE);
    assert_int_equal(valid_all("\"a\0\"", 4, NULL), SL_EPARSE);
    assert_int_equal(valid_all("[\0]", 3, NULL), SL_EPARSE);
}

static void expect_field(const sl_field *f, const char *key, const char *val, int type);

/* Numbers through the fast path (16-byte masks, needs 17 readable bytes)
 * and the full grammar (near the end of the input) must agree. */
static void test_numbers(void **state)
{
    (void)state;
    const char *ok[] = {"0",
                        "-0",
                        "7",
                        "-7",
                        "10",
                        "123456789",
                        "0.5",
                        "-0.5",
                        "10.25",
                        "1.0000000001",
                        "1e5",
                        "1E+5",
                        "1e-5",
                        "-1.5e10",
                        "0e0",
                        "123456789012345",
                        "1234567890123456",
                        "12345678901234567890",
                        "0.000000000000001",
                        "-123456789012.5"};
    const char *bad[] = {"01",    "-01",  "00",    "1.",   ".5",   "-",   "--1",  "1..2",
                         "1.2.3", "0x10", "1e",    "1e+",  "+1",   "1-2", "1.e5", "-.5",
                         "00.5",  "1.5.", "1e5e5", "1ee5", "0.-1", "12a", "1.5x", "-0-"};
    char doc[128];
    for (int pass = 0; pass < 2; pass++) {
        const char *const *list = pass ? bad : ok;
        size_t cnt = pass ? sizeof bad / sizeof *bad : sizeof ok / sizeof *ok;
        for (size_t i = 0; i < cnt; i++) {
            int want = pass ? SL_EPARSE : 0;
            int n = snprintf(doc, sizeof doc, "{\"a\":%s,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                             list[i]);
            if (valid_all(doc, (size_t)n, NULL) != want) fail_msg("long: %s", list[i]);
            n = snprintf(doc, sizeof doc, "[%s]", list[i]);
            if (valid_all(doc, (size_t)n, NULL) != want) fail_msg("short: %s", list[i]);
            n = snprintf(doc, sizeof doc, "%s", list[i]);
            if (valid_all(doc, (size_t)n, NULL) != want) fail_msg("alone: %s", list[i]);
            n = snprintf(doc, sizeof doc, "[%s                    ]", list[i]);
            if (valid_all(doc, (size_t)n, NULL) != want) fail_msg("spaced: %s", list[i]);
        }
    }
    /* The reported text is the whole number. */
    sl_field f[2];
    size_t nf;
    const char *d = "{\"a\":-12.5,\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
    assert_int_equal(sl_json_fields(d, strlen(d), NULL, f, 2, &nf, NULL), 0);
    expect_field(&f[0], "a", "-12.5", SL_V_NUMBER);
}

static void test_depth(void **state)
{
    (void)state;
    char buf[2 * 1100];
    for (int depth = 500; depth <= 514; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) buf[n++] = '[';
        for (int i = 0; i < depth; i++) buf[n++] = ']';
        int rc = valid_all(buf, n, NULL);
        assert_int_equal(rc, depth <= SL_JSON_DEFAULT_DEPTH ? 0 : SL_EPARSE);
    }
    /* Objects count too, and the limit is configurable. */
    sl_json_opts o = kopts(SL_JSON_AUTO);
    o.max_depth = 3;
    assert_int_equal(valid_all("{\"a\":[{}]}", 10, &o), 0);
    assert_int_equal(valid_all("{\"a\":[{\"b\":[]}]}", 16, &o), SL_EPARSE);
    o.max_depth = SL_JSON_MAX_DEPTH + 1;
    sl_err err;
    assert_int_equal(sl_json_validate("{}", 2, &o, &err), SL_EINVAL);
    /* Very deep input fails cleanly. */
    size_t big = 200000;
    char *deep = malloc(big);
    assert_non_null(deep);
    memset(deep, '[', big);
    assert_int_equal(valid_all(deep, big, NULL), SL_EPARSE);
    o.max_depth = SL_JSON_MAX_DEPTH;
    assert_int_equal(valid_all(deep, big, &o), SL_EPARSE);
    free(deep);
}

/* ---------------------------------------------------------------- fields */

static void expect_field(const sl_field *f, const char *key, const char *val, int type)
{
    if (!sl_slice_eq(f->key, key, strlen(key)))
        fail_msg("key %.*s, want %s", (int)f->key.n, f->key.p, key);
    if (!sl_slice_eq(f->val, val, strlen(val)))
        fail_msg("value of %s: %.*s, want %s", key, (int)f->val.n, f->val.p, val);
    assert_int_equal(f->type, type);
}

static void test_fields(void **state)
{
    (void)state;
    const char *doc = " {\"msg\":\"hello\", \"n\":-1.5e3,\"t\":true,\"f\":false,\"z\":null,"
                      "\"obj\":{\"a\":[1,{\"b\":\"}\"}]},\"arr\":[ ],\"esc\":\"a\\nb\","
                      "\"k\\u0065y\":0,\"msg\":\"again\"} ";
    for (size_t k = 0; k < nkernels; k++) {
        sl_json_opts o = kopts(kernels[k]);
        sl_field f[16];
        size_t n = 99;
        sl_err err;
        assert_int_equal(sl_json_fields(doc, strlen(doc), &o, f, 16, &n, &err), 0);
        assert_int_equal(n, 10);
        expect_field(&f[0], "msg", "hello", SL_V_STRING);
        expect_field(&f[1], "n", "-1.5e3", SL_V_NUMBER);
        expect_field(&f[2], "t", "true", SL_V_TRUE);
        expect_field(&f[3], "f", "false", SL_V_FALSE);
        expect_field(&f[4], "z", "null", SL_V_NULL);
        expect_field(&f[5], "obj", "{\"a\":[1,{\"b\":\"}\"}]}", SL_V_OBJECT);
        expect_field(&f[6], "arr", "[ ]", SL_V_ARRAY);
        expect_field(&f[7], "esc", "a\\nb", SL_V_ESCAPED);
        expect_field(&f[8], "k\\u0065y", "0", SL_V_NUMBER);
        assert_int_equal(f[8].flags, SL_FF_KEY_ESCAPED);
        assert_int_equal(f[7].flags, 0);
        expect_field(&f[9], "msg", "again", SL_V_STRING);

        /* More fields than room: the first cap are kept. */
        assert_int_equal(sl_json_fields(doc, strlen(doc), &o, f, 3, &n, &err), SL_EFULL);
        assert_int_equal(n, 3);
        expect_field(&f[2], "t", "true", SL_V_TRUE);
        /* An invalid document wins over a full array. */
        assert_int_equal(sl_json_fields("{\"a\":1,\"b\":2,}", 14, &o, f, 1, &n, &err), SL_EPARSE);
        assert_int_equal(n, 0);

        /* Only an object has fields. */
        assert_int_equal(sl_json_fields("[1]", 3, &o, f, 16, &n, &err), SL_EPARSE);
        assert_non_null(strstr(err.msg, "not an object"));
        assert_int_equal(sl_json_fields("\"s\"", 3, &o, f, 16, &n, &err), SL_EPARSE);
        assert_int_equal(sl_json_fields("", 0, &o, f, 16, &n, &err), SL_EPARSE);
        assert_int_equal(sl_json_fields(" {} ", 4, &o, f, 16, &n, &err), 0);
        assert_int_equal(n, 0);
        /* Nested content is validated although it is not reported. */
        assert_int_equal(sl_json_fields("{\"a\":[1,2,tru]}", 15, &o, f, 16, &n, &err), SL_EPARSE);
        assert_int_equal(sl_json_fields("{\"a\":{\"b\":\"\\q\"}}", 16, &o, f, 16, &n, &err),
                         SL_EPARSE);
        /* Flattening needs an arena. */
        o.flatten = true;
        assert_int_equal(sl_json_fields("{}", 2, &o, f, 16, &n, &err), SL_EINVAL);
    }
}

static void test_error_messages(void **state)
{
    (void)state;
    sl_err err;
    assert_int_equal(sl_json_validate("{\"a\":1,}", 8, NULL, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "byte 7"));
    assert_int_equal(sl_json_validate("{\"a\":\"\xc3\"}", 9, NULL, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "UTF-8 at byte 6"));
    assert_int_equal(sl_json_validate("{\"a\":\"x\x01\"}", 9, NULL, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "control character 0x01"));
    assert_int_equal(sl_json_validate("{\"a\":\"x\"} x", 11, NULL, &err), SL_EPARSE);
    assert_non_null(strstr(err.msg, "trailing"));
    assert_int_equal(sl_json_validate(NULL, 3, NULL, &err), SL_EINVAL);
}

/* ------------------------------------------------------ tails and windows */

/* Every document length next to an unreadable page: a read past the end of
 * the input faults. */
static void test_tail_guard_page(void **state)
{
    (void)state;
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    char doc[600];
    for (size_t len = 0; len <= 520; len++) {
        /* {"k":"xxx...x"} of total length len (when len >= 8), plus
         * truncated and escaped variants. */
        for (int variant = 0; variant < 4; variant++) {
            size_t n = 0;
            if (len >= 8) {
                n = len;
                memcpy(doc, "{\"k\":\"", 6);
                for (size_t i = 6; i < len - 2; i++) doc[i] = variant == 1 ? '\\' : 'x';
                if (variant == 1 && ((len - 8) & 1)) doc[len - 3] = 'n';
                doc[len - 2] = '"';
                doc[len - 1] = '}';
                if (variant == 2) n = len - 1;         /* cut */
                if (variant == 3) doc[n - 1] = '\xc3'; /* truncated UTF-8 at the very end */
            } else {
                n = len;
                memset(doc, '1', n);
            }
            char *at = map + pg - n;
            memcpy(at, doc, n);
            int want = (len >= 8 && variant <= 1) || (len < 8 && len >= 1) ? 0 : SL_EPARSE;
            int rc = valid_all(at, n, NULL);
            if (rc != want) fail_msg("len %zu variant %d: rc %d want %d", len, variant, rc, want);
            sl_field f[4];
            size_t nf;
            for (size_t k = 0; k < nkernels; k++) {
                sl_json_opts o = kopts(kernels[k]);
                int frc = sl_json_fields(at, n, &o, f, 4, &nf, NULL);
                if (len >= 8) assert_int_equal(frc, want);
                if (frc == 0) {
                    assert_int_equal(nf, 1);
                    assert_int_equal(f[0].val.n, len - 8);
                }
            }
        }
    }
    munmap(map, (size_t)pg * 2);
}

/* Backslash runs, quotes and multi-byte characters across 64-byte blocks and
 * 2048-byte stage-1 windows. */
static void test_block_boundaries(void **state)
{
    (void)state;
    static char doc[5000];
    static const char *pieces[] = {
        "\\\\",     "\\\"",         "\\\\\\\"",         "\\\\\\\\", "\\u00e9", "\\ud83d\\ude00",
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\n",      "{}[]:,",
    };
    for (size_t pi = 0; pi < sizeof pieces / sizeof *pieces; pi++) {
        const char *pc = pieces[pi];
        size_t pl = strlen(pc);
        size_t starts[] = {40, 2000};
        for (size_t si = 0; si < 2; si++) {
            for (size_t off = starts[si]; off < starts[si] + 90; off++) {
                /* {"k":"aaaa<piece>b","m":1} with the piece at absolute offset off */
                size_t n = 0;
                memcpy(doc, "{\"k\":\"", 6);
                n = 6;
                while (n < off) doc[n++] = 'a';
                memcpy(doc + n, pc, pl);
                n += pl;
                memcpy(doc + n, "b\",\"m\":1}", 9);
                n += 9;
                int rc = valid_all(doc, n, NULL);
                if (rc != 0) fail_msg("piece %zu at %zu rejected", pi, off);
                for (size_t k = 0; k < nkernels; k++) {
                    sl_json_opts o = kopts(kernels[k]);
                    sl_field f[4];
                    size_t nf;
                    assert_int_equal(sl_json_fields(doc, n, &o, f, 4, &nf, NULL), 0);
                    assert_int_equal(nf, 2);
                    assert_int_equal(f[0].val.n, off - 6 + pl + 1);
                    expect_field(&f[1], "m", "1", SL_V_NUMBER);
                }
                /* The same with an invalid byte at the piece: rejected. */
                doc[off] = '\x01';
                assert_int_equal(valid_all(doc, n, NULL), SL_EPARSE);
            }
        }
    }
    /* Invalid escapes at every offset around block and window edges. */
    static const char *const bad_pieces[] = {
        "\\u00g9", "\\ud800x", "\\udc00", "\\ud800\\u0041", "\\x", "\\u12", "\\ud83d\\ude0"};
    for (size_t pi = 0; pi < sizeof bad_pieces / sizeof *bad_pieces; pi++) {
        const char *pc = bad_pieces[pi];
        size_t pl = strlen(pc);
        size_t starts[] = {40, 2000};
        for (size_t si = 0; si < 2; si++) {
            for (size_t off = starts[si]; off < starts[si] + 90; off++) {
                size_t n = 6;
                memcpy(doc, "{\"k\":\"", 6);
                while (n < off) doc[n++] = 'a';
                memcpy(doc + n, pc, pl);
                n += pl;
                memcpy(doc + n, "\"}", 2);
                n += 2;
                if (valid_all(doc, n, NULL) != SL_EPARSE) fail_msg("bad piece %zu at %zu", pi, off);
            }
        }
    }
    /* A big document: many windows, every field reported. */
    size_t n = 0;
    static char big[300000];
    big[n++] = '{';
    int fields = 0;
    while (n < sizeof big - 200) {
        n += (size_t)snprintf(big + n, 200, "%s\"f%d\":\"v\\t%d\xc3\xa9\",\"g%d\":[%d,{\"x\":1}]",
                              fields ? "," : "", fields, fields, fields, fields);
        fields++;
    }
    big[n++] = '}';
    assert_int_equal(valid_all(big, n, NULL), 0);
    sl_field *f = calloc((size_t)fields * 2, sizeof *f);
    assert_non_null(f);
    for (size_t k = 0; k < nkernels; k++) {
        sl_json_opts o = kopts(kernels[k]);
        size_t nf;
        assert_int_equal(sl_json_fields(big, n, &o, f, (size_t)fields * 2, &nf, NULL), 0);
        assert_int_equal(nf, (size_t)fields * 2);
        assert_int_equal(f[nf - 1].type, SL_V_ARRAY);
    }
    free(f);
}

/* Mutations of a document: every kernel gives the same answer and the same
 * fields (the scalar kernel is the reference). */
static void test_kernels_agree(void **state)
{
    (void)state;
    const char *seed = "{\"ts\":\"2024-01-01T00:00:00Z\",\"lvl\":\"info\",\"msg\":\"caf\xc3\xa9 "
                       "\\\"q\\\" \\u00e9\\ud83d\\ude00\",\"n\":[1,-2.5e3,true,null],"
                       "\"o\":{\"a\":{\"b\":\"c\\\\\"}},\"x\":0}";
    size_t sn = strlen(seed);
    char doc[512];
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    const char alphabet[] = "{}[]:,\"\\ \n\t0123456789-+.eEtrufalsn\x01\x80\xc3\xa9\xff";
    int iters = sl_t_sanitized() ? 3000 : 30000;
    for (int it = 0; it < iters; it++) {
        memcpy(doc, seed, sn);
        size_t n = sn;
        int muts = 1 + (int)(rng % 3);
        for (int m = 0; m < muts; m++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t at = (size_t)(rng % n);
            int kind = (int)((rng >> 20) % 3);
            char c = alphabet[(rng >> 32) % (sizeof alphabet - 1)];
            if (kind == 0) {
                doc[at] = c;
            } else if (kind == 1 && n < sizeof doc - 1) {
                memmove(doc + at + 1, doc + at, n - at);
                doc[at] = c;
                n++;
            } else if (n > 1) {
                memmove(doc + at, doc + at + 1, n - at - 1);
                n--;
            }
        }
        sl_field ref[32], got[32];
        size_t nref = 0, ngot = 0;
        sl_json_opts o = kopts(SL_JSON_SCALAR);
        int rref = sl_json_fields(doc, n, &o, ref, 32, &nref, NULL);
        for (size_t k = 0; k < nkernels; k++) {
            o = kopts(kernels[k]);
            int r = sl_json_fields(doc, n, &o, got, 32, &ngot, NULL);
            if (r != rref)
                fail_msg("iteration %d: %s says %d, scalar %d", it, sl_json_kernel_name(kernels[k]),
                         r, rref);
            assert_int_equal(ngot, nref);
            for (size_t i = 0; i < ngot; i++) {
                assert_ptr_equal(got[i].key.p, ref[i].key.p);
                assert_int_equal(got[i].key.n, ref[i].key.n);
                assert_ptr_equal(got[i].val.p, ref[i].val.p);
                assert_int_equal(got[i].val.n, ref[i].val.n);
                assert_int_equal(got[i].type, ref[i].type);
                assert_int_equal(got[i].flags, ref[i].flags);
            }
            assert_int_equal(
                sl_json_validate(doc, n, &o, NULL) == 0,
                sl_json_validate(doc, n, &(sl_json_opts){.kernel = SL_JSON_SCALAR}, NULL) == 0);
        }
    }
}

/* -------------------------------------------------------------- flatten */

static void test_flatten(void **state)
{
    (void)state;
    const char *doc = "{\"a\":{\"b\":1,\"c\":{\"d\":\"x\"},\"e\":{}},\"f\":[{\"g\":1}],"
                      "\"h\":{},\"i\\u002ej\":{\"k\\n\":true},\"l\":2}";
    sl_arena arena;
    sl_arena_init(&arena, 1 << 20);
    for (size_t k = 0; k < nkernels; k++) {
        sl_json_opts o = kopts(kernels[k]);
        o.flatten = true;
        sl_field f[16];
        size_t n;
        sl_err err;
        assert_int_equal(sl_json_fields_arena(doc, strlen(doc), &o, &arena, f, 16, &n, &err), 0);
        assert_int_equal(n, 7);
        expect_field(&f[0], "a.b", "1", SL_V_NUMBER);
        expect_field(&f[1], "a.c.d", "x", SL_V_STRING);
        expect_field(&f[2], "a.e", "{}", SL_V_OBJECT);
        expect_field(&f[3], "f", "[{\"g\":1}]", SL_V_ARRAY);
        expect_field(&f[4], "h", "{}", SL_V_OBJECT);
        expect_field(&f[5], "i.j.k\n", "true", SL_V_TRUE);
        assert_int_equal(f[5].flags, 0);
        expect_field(&f[6], "l", "2", SL_V_NUMBER);

        o.separator = '_';
        assert_int_equal(
            sl_json_fields_arena("{\"a\":{\"b\":{\"c\":null}}}", 22, &o, &arena, f, 16, &n, &err),
            0);
        assert_int_equal(n, 1);
        expect_field(&f[0], "a_b_c", "null", SL_V_NULL);

        /* Deeper than SL_JSON_FLATTEN_MAX: the rest stays raw. */
        char deep[1024];
        size_t dn = 0;
        deep[dn++] = '{';
        for (int i = 0; i < SL_JSON_FLATTEN_MAX + 3; i++)
            dn += (size_t)snprintf(deep + dn, 16, "\"%c\":{", 'a' + i % 26);
        deep[dn++] = '}';
        for (int i = 0; i < SL_JSON_FLATTEN_MAX + 3; i++) deep[dn++] = '}';
        o.separator = '.';
        assert_int_equal(sl_json_fields_arena(deep, dn, &o, &arena, f, 16, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(f[0].type, SL_V_OBJECT);
        assert_int_equal(f[0].key.n, 2 * SL_JSON_FLATTEN_MAX - 1);
        assert_int_equal(f[0].val.n, 1 + 3 * 5 + 4);

        /* Without flatten, the same document is one raw field. */
        o.flatten = false;
        assert_int_equal(sl_json_fields(deep, dn, &o, f, 16, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(f[0].val.n, dn - 6);
    }
    /* An exhausted arena is SL_ENOMEM, not a parse error. */
    sl_arena small;
    sl_arena_init(&small, 16);
    sl_json_opts o = kopts(SL_JSON_AUTO);
    o.flatten = true;
    sl_field f[4];
    size_t n;
    char key[200];
    int kl = snprintf(key, sizeof key, "{\"%0100d\":{\"b\":1}}", 0);
    assert_int_equal(sl_json_fields_arena(key, (size_t)kl, &o, &small, f, 4, &n, NULL), SL_ENOMEM);
    sl_arena_reset(&small);
    sl_arena_reset(&arena);
}

/* ------------------------------------------------------------- unescape */

static void expect_unescape(const char *in, const char *want, size_t wantn)
{
    char out[64];
    ptrdiff_t n = sl_json_unescape(in, strlen(in), out, sizeof out);
    if (n != (ptrdiff_t)wantn || memcmp(out, want, wantn) != 0)
        fail_msg("unescape %s: got %td bytes", in, n);
    /* cap == n always suffices; one byte less than the result does not. */
    n = sl_json_unescape(in, strlen(in), out, strlen(in));
    assert_int_equal(n, (ptrdiff_t)wantn);
    if (wantn) assert_int_equal(sl_json_unescape(in, strlen(in), out, wantn - 1), SL_EFULL);
}

static void test_unescape(void **state)
{
    (void)state;
    expect_unescape("", "", 0);
    expect_unescape("plain", "plain", 5);
    expect_unescape("a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti", "a\"b\\c/d\be\ff\ng\rh\ti", 17);
    expect_unescape("\\u0041\\u00e9\\u20ac", "A\xc3\xa9\xe2\x82\xac", 6);
    expect_unescape("\\ud83d\\ude00!", "\xf0\x9f\x98\x80!", 5);
    expect_unescape("\\uDBFF\\uDFFF", "\xf4\x8f\xbf\xbf", 4);
    expect_unescape("x\\u0000y", "x\0y", 3);
    expect_unescape("\xc3\xa9", "\xc3\xa9", 2);
    const char *bad[] = {"\\",         "\\x",
                         "\\u",        "\\u12",
                         "\\u12g4",    "\\ud800",
                         "\\ud800\\n", "\\ud800\\u0041",
                         "\\udc00",    "\\ud800\\ud800",
                         "a\\"};
    char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (sl_json_unescape(bad[i], strlen(bad[i]), out, sizeof out) != SL_EPARSE)
            fail_msg("accepted %s", bad[i]);
}

/* -------------------------------------------------------------- kernels */

static void test_kernel_selection(void **state)
{
    (void)state;
    assert_true(sl_json_kernel_supported(SL_JSON_SCALAR));
    assert_false(sl_json_kernel_supported(SL_JSON_AUTO));
    assert_false(sl_json_kernel_supported(99));
    assert_string_equal(sl_json_kernel_name(SL_JSON_AVX2), "avx2");
    assert_string_equal(sl_json_kernel_name(42), "?");
    int k;
    assert_int_equal(sl_json_kernel_parse("sse42", &k), 0);
    assert_int_equal(k, SL_JSON_SSE42);
    assert_int_equal(sl_json_kernel_parse("mmx", &k), SL_EINVAL);
    assert_true(sl_json_kernel_supported(sl_json_kernel_best()));
    assert_int_equal(sl_json_kernel_active(NULL), sl_json_kernel_best());
#if defined(__x86_64__)
    assert_false(sl_json_kernel_supported(SL_JSON_NEON));
    sl_json_opts neon = {.kernel = SL_JSON_NEON};
    assert_int_equal(sl_json_kernel_active(&neon), sl_json_kernel_best());
#endif

    char *saved = getenv("SLUICE_SIMD") ? strdup(getenv("SLUICE_SIMD")) : NULL;
    sl_json_opts o;
    sl_err err;
    setenv("SLUICE_SIMD", "scalar", 1);
    assert_int_equal(sl_json_opts_init(&o, &err), 0);
    assert_int_equal(sl_json_kernel_active(&o), SL_JSON_SCALAR);
    setenv("SLUICE_SIMD", "bogus", 1);
    assert_int_equal(sl_json_opts_init(&o, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "bogus"));
    assert_int_equal(o.kernel, sl_json_kernel_best());
    setenv("SLUICE_SIMD", "neon", 1);
    int rc = sl_json_opts_init(&o, &err);
    assert_int_equal(rc, sl_json_kernel_supported(SL_JSON_NEON) ? 0 : SL_EINVAL);
    assert_true(sl_json_kernel_supported(o.kernel));
    if (saved) {
        setenv("SLUICE_SIMD", saved, 1);
        free(saved);
    } else {
        unsetenv("SLUICE_SIMD");
    }
    printf("kernels here:");
    for (size_t i = 0; i < nkernels; i++) printf(" %s", sl_json_kernel_name(kernels[i]));
    printf(" (best %s)\n", sl_json_kernel_name(sl_json_kernel_best()));
}

static void test_opts_from_cfg(void **state)
{
    (void)state;
    sl_cfg *c = sl_cfg_new();
    const char *y = "a: {flatten: true, separator: '_', max_depth: 64}\n"
                    "b: {separator: '::'}\n"
                    "c: {flaten: true}\n";
    assert_int_equal(sl_cfg_load_string(c, "t.yml", y, strlen(y)), 0);
    const sl_cfg_node *root = sl_cfg_root(c);
    sl_json_opts o;
    assert_int_equal(sl_json_opts_from_cfg(c, sl_cfg_get(root, "a"), &o), 0);
    assert_true(o.flatten);
    assert_int_equal(o.separator, '_');
    assert_int_equal(o.max_depth, 64);
    assert_int_equal(sl_json_opts_from_cfg(c, sl_cfg_get(root, "b"), &o), SL_EINVAL);
    assert_int_equal(sl_json_opts_from_cfg(c, sl_cfg_get(root, "c"), &o), SL_EINVAL);
    assert_true(sl_cfg_nerrors(c) >= 2);
    assert_int_equal(sl_json_opts_from_cfg(c, NULL, &o), 0);
    assert_false(o.flatten);
    assert_int_equal(o.max_depth, SL_JSON_DEFAULT_DEPTH);
    sl_cfg_free(c);
}

/* --------------------------------------------------------- parse record */

static void test_parse_record(void **state)
{
    (void)state;
    sl_batch *b = sl_batch_new(8);
    assert_non_null(b);
    const char *good = "{\"level\":\"warn\",\"ctx\":{\"user\":\"ann\"},\"msg\":\"x\\ty\"}";
    const char *bad = "{\"level\":\"warn\",\"msg\":";
    sl_record *r1 = sl_batch_add(b, (sl_slice){good, strlen(good)}, 0, 1);
    sl_record *r2 = sl_batch_add(b, (sl_slice){bad, strlen(bad)}, 0, 2);
    assert_non_null(r1);
    assert_non_null(r2);
    sl_json_opts o;
    sl_json_opts_init(&o, NULL);
    sl_err err;
    assert_int_equal(sl_json_parse_record(b, r1, &o, &err), 0);
    assert_int_equal(r1->nfields, 3);
    sl_field *f = sl_record_field(r1, "level", 5);
    assert_non_null(f);
    expect_field(f, "level", "warn", SL_V_STRING);
    assert_ptr_equal(f->val.p, good + 10); /* zero-copy */
    f = sl_record_field(r1, "msg", 3);
    assert_non_null(f);
    assert_int_equal(f->type, SL_V_ESCAPED);

    /* A field added by an earlier step survives a failed parse. */
    sl_record_add_field(b, r2, SL_SLICE_LIT("src"), SL_SLICE_LIT("x"), SL_V_STRING);
    assert_int_equal(sl_json_parse_record(b, r2, &o, &err), SL_EPARSE);
    assert_int_equal(r2->nfields, 1);

    /* Flattened keys live in the batch arena. */
    o.flatten = true;
    sl_record *r3 = sl_batch_add(b, (sl_slice){good, strlen(good)}, 0, 3);
    assert_int_equal(sl_json_parse_record(b, r3, &o, &err), 0);
    f = sl_record_field(r3, "ctx.user", 8);
    assert_non_null(f);
    expect_field(f, "ctx.user", "ann", SL_V_STRING);

    /* Many fields grow the record's array. */
    char many[4096];
    size_t n = 0;
    many[n++] = '{';
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(many + n, 32, "%s\"k%d\":%d", i ? "," : "", i, i);
    many[n++] = '}';
    o.flatten = false;
    sl_record *r4 = sl_batch_add(b, (sl_slice){many, n}, 0, 4);
    assert_int_equal(sl_json_parse_record(b, r4, &o, &err), 0);
    assert_int_equal(r4->nfields, 100);
    f = sl_record_field(r4, "k99", 3);
    assert_non_null(f);
    assert_true(sl_slice_eq(f->val, "99", 2));
    sl_batch_unref(b);
}

int main(void)
{
    find_kernels();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_test_suite),
        cmocka_unit_test(test_valid_values),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_tail_guard_page),
        cmocka_unit_test(test_block_boundaries),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_kernel_selection),
        cmocka_unit_test(test_opts_from_cfg),
        cmocka_unit_test(test_parse_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
