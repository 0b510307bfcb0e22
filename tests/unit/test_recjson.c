/* The fast record -> JSON serializer (shipper/recjson.c, core/buf.c
 * sl_json_escape_to) against a simple reference on random records full of
 * hostile bytes: every escape, control bytes, NUL, DEL, valid and broken
 * UTF-8 (cut at the end, overlong, surrogates, stray continuations), all
 * lengths around the 8- and 16-byte steps, every field type and flag, times
 * across the whole int64 range. Output must be byte-identical, and so must
 * the replacement counts; every pattern of '"' and '\\' in a 16-byte block
 * goes through the shuffle table. Inputs sit at the very end of their allocation
 * so a read past them shows under ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/record_tile.h"
#include "core/utf8.h"
#include "core/config.h"
#include "parsers/chain.h"
#include "parsers/json.h"
#include "shipper/recjson.h"
#include "tests/recjson_ref.h"

static uint64_t rng = 0x243F6A8885A308D3u;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Hostile text: mostly plain runs (so the vector steps run), with every
 * kind of stop byte mixed in. */
static size_t hostile(unsigned char *p, size_t n)
{
    static const char *const pieces[] = {
        "\"",
        "\\",
        "\n",
        "\r",
        "\t",
        "\x01",
        "\x1f",
        "\x7f",
        "\xc3\xa9",
        "\xe6\x97\xa5",
        "\xf0\x9f\x98\x80",
        "\xc0\xaf",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\x80",
        "\xbf",
        "\xff",
        "\xe2\x82",
        "\xf0\x9f",
        "\xc3",
        "\\u00e9",
    };
    size_t o = 0;
    while (o < n) {
        uint32_t k = rnd(10);
        if (k < 6) {
            size_t run = 1 + rnd(40);
            for (size_t j = 0; j < run && o < n; j++) p[o++] = (unsigned char)(' ' + rnd(95));
        } else if (k < 9) {
            const char *s = pieces[rnd(sizeof pieces / sizeof *pieces)];
            for (size_t j = 0; s[j] && o < n; j++) p[o++] = (unsigned char)s[j];
        } else {
            p[o++] = (unsigned char)rnd(256); /* NUL included */
        }
    }
    return o;
}

/* A copy of n bytes ending exactly at the end of a fresh allocation. */
static char *tight_copy(const unsigned char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, p, n);
    return c;
}

static void test_escape_matches_reference(void **st)
{
    (void)st;
    unsigned char src[700];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = iter < 200 ? (size_t)iter : rnd(iter % 7 ? 64 : 700);
        n = hostile(src, n);
        char *in = tight_copy(src, n);
        sl_buf ref;
        sl_buf_init(&ref, 0);
        int ref_bad = sl_buf_json_escape(&ref, in, n);
        assert_true(ref_bad >= 0);
        char *out = malloc(SL_JSON_ESCAPE_ROOM(n));
        assert_non_null(out);
        size_t bad = 0;
        size_t len = sl_json_escape_to(out, in, n, &bad);
        assert_int_equal(len, ref.len);
        if (len) assert_memory_equal(out, ref.p, len);
        assert_int_equal(bad, (size_t)ref_bad);
        /* the same bytes inside a longer readable buffer */
        size_t extra = rnd(40);
        unsigned char *wide = malloc(n + extra + 1);
        assert_non_null(wide);
        memcpy(wide, in, n);
        hostile(wide + n, extra);
        bad = 0;
        memset(out, 0, SL_JSON_ESCAPE_ROOM(n));
        len = sl_json_escape_within(out, (char *)wide, n, n + extra, &bad);
        assert_int_equal(len, ref.len);
        if (len) assert_memory_equal(out, ref.p, len);
        assert_int_equal(bad, (size_t)ref_bad);
        free(wide);
        free(out);
        free(in);
        sl_buf_free(&ref);
    }
}

/* Every 16-bit pattern of '"'/'\\' in a block (the shuffle table's rows,
 * in both halves), with and without bytes after the block. */
static void test_escape_every_quote_pattern(void **st)
{
    (void)st;
    char in[24], out[SL_JSON_ESCAPE_ROOM(24)];
    for (uint32_t m = 0; m < 65536; m++) {
        for (int k = 0; k < 16; k++) in[k] = (m >> k & 1) ? (k & 1 ? '"' : '\\') : (char)('a' + k);
        memcpy(in + 16, "tail-xyz", 8);
        size_t n = 16 + (m % 9);
        sl_buf ref;
        sl_buf_init(&ref, 0);
        assert_int_equal(sl_buf_json_escape(&ref, in, n), 0);
        size_t bad = 0;
        size_t len = sl_json_escape_to(out, in, n, &bad);
        assert_int_equal(len, ref.len);
        assert_memory_equal(out, ref.p, len);
        assert_int_equal(bad, 0);
        sl_buf_free(&ref);
    }
}

/* Slices for one record's text, keys and values: each its own tight
 * allocation, freed after the record. */
#define MAXS 64
typedef struct pool {
    char *p[MAXS];
    int n;
} pool;

static sl_slice pool_text(pool *pl, size_t maxlen)
{
    unsigned char tmp[600];
    size_t n = hostile(tmp, rnd((uint32_t)maxlen + 1));
    char *c = tight_copy(tmp, n);
    assert_true(pl->n < MAXS);
    pl->p[pl->n++] = c;
    return (sl_slice){c, n};
}

/* A slice inside the line, as the parsers make them (the fast path reads
 * on to the line's end there). */
static sl_slice inside(sl_slice line, size_t maxlen)
{
    if (line.n == 0) return line;
    size_t at = rnd((uint32_t)line.n + 1);
    size_t n = rnd((uint32_t)(line.n - at < maxlen ? line.n - at : maxlen) + 1);
    return (sl_slice){line.p + at, n};
}

static int64_t random_time(void)
{
    switch (rnd(4)) {
    case 0:
        return (int64_t)(((uint64_t)rnd(UINT32_MAX) << 32) | rnd(UINT32_MAX)); /* any int64 */
    case 1:
        return -(int64_t)rnd(UINT32_MAX) * 1000003; /* before 1970 */
    case 2:
        return rnd(2) ? INT64_MAX - rnd(1000) : INT64_MIN + rnd(1000);
    default:
        return 1700000000000000000LL + (int64_t)rnd(UINT32_MAX) * 1000;
    }
}

static void test_record_matches_reference(void **st)
{
    (void)st;
    for (int iter = 0; iter < 3000; iter++) {
        pool pl = {.n = 0};
        sl_batch *b = sl_batch_new(4);
        assert_non_null(b);
        sl_field labels[3];
        uint32_t nl = rnd(4);
        for (uint32_t i = 0; i < nl; i++)
            labels[i] =
                (sl_field){pool_text(&pl, 12), pool_text(&pl, 20), SL_V_STRING, SL_FF_LABEL};
        if (nl) assert_int_equal(sl_batch_set_labels(b, labels, nl), SL_OK);
        sl_record *r = sl_batch_add(b, pool_text(&pl, 500), random_time(), 1);
        assert_non_null(r);
        uint32_t nf = rnd(12);
        for (uint32_t i = 0; i < nf; i++) {
            static const int types[] = {SL_V_STRING, SL_V_STRING, SL_V_ESCAPED, SL_V_NUMBER,
                                        SL_V_TRUE,   SL_V_NULL,   SL_V_OBJECT,  SL_V_ARRAY};
            int type = types[rnd(8)];
            int in_line = rnd(2);
            sl_slice key = in_line ? inside(r->line, 16) : pool_text(&pl, 16);
            sl_slice val = in_line ? inside(r->line, 80) : pool_text(&pl, 80);
            sl_field *f = sl_record_add_field(b, r, key, val, type);
            assert_non_null(f);
            if (rnd(6) == 0) f->flags |= SL_FF_REMOVED;
            if (rnd(4) == 0) f->flags |= SL_FF_LABEL;
            if (rnd(6) == 0) f->flags |= SL_FF_KEY_ESCAPED;
        }
        unsigned parts = iter % 4 ? SL_RJ_ALL : 1 + rnd(SL_RJ_ALL);
        sl_buf fast, ref;
        sl_buf_init(&fast, 0);
        sl_buf_init(&ref, 0);
        /* appended after earlier content, as the sinks do per batch */
        if (rnd(2)) sl_buf_append(&fast, "x\n", 2), sl_buf_append(&ref, "x\n", 2);
        int want = ref_record(&ref, b, r, parts);
        int got = sl_recjson_append_kernel(&fast, b, r, parts, (int)(1 + iter % 3));
        assert_false(ref.failed);
        assert_int_equal(got, want);
        assert_int_equal(fast.len, ref.len);
        assert_memory_equal(fast.p, ref.p, ref.len);
        assert_int_equal(fast.p[fast.len], '\0');
        sl_buf_free(&fast);
        sl_buf_free(&ref);
        sl_batch_unref(b);
        for (int i = 0; i < pl.n; i++) free(pl.p[i]);
    }
}

/* ---- records the json parser made: the verbatim fields (core/record.h),
 * the whole-line copy and the line escaped without a second UTF-8 check
 * (shipper/recjson.c) ---- */

/* Appends s to p[*o..cap) as far as it fits. */
static void put_s(unsigned char *p, size_t cap, size_t *o, const char *s)
{
    for (; *s && *o < cap; s++) p[(*o)++] = (unsigned char)*s;
}

/* JSON string content: plain text, every short escape, \u escapes (a
 * surrogate pair too), raw UTF-8 of each length. */
static void json_body(unsigned char *p, size_t cap, size_t *o, size_t len)
{
    static const char *const pieces[] = {"\\\"",
                                         "\\\\",
                                         "\\n",
                                         "\\t",
                                         "\\/",
                                         "\\u00e9",
                                         "\\ud83d\\ude00",
                                         "\xc3\xa9",
                                         "\xe6\x97\xa5",
                                         "\xf0\x9f\x98\x80",
                                         " ",
                                         "'",
                                         "{",
                                         "}",
                                         ":",
                                         ","};
    size_t end = *o + len;
    while (*o < end && *o < cap) {
        if (rnd(3))
            p[(*o)++] = (unsigned char)("abcdefghijklmnopqrstuvwxyz0123456789_-."[rnd(39)]);
        else
            put_s(p, cap, o, pieces[rnd(sizeof pieces / sizeof *pieces)]);
    }
}

static void json_ws(unsigned char *p, size_t cap, size_t *o, int spaced)
{
    static const char *const ws[] = {" ", "\t", "\n", "\r", "  "};
    if (spaced && rnd(3) == 0) put_s(p, cap, o, ws[rnd(5)]);
}

static void json_value(unsigned char *p, size_t cap, size_t *o, int depth, int spaced)
{
    static const char *const lits[] = {"true", "false", "null", "0", "-12.5e3", "123456789"};
    uint32_t k = depth > 3 ? rnd(3) : rnd(5);
    if (k == 0) {
        put_s(p, cap, o, "\"");
        json_body(p, cap, o, rnd(rnd(8) ? 24 : 120));
        put_s(p, cap, o, "\"");
    } else if (k == 1) {
        put_s(p, cap, o, lits[rnd(6)]);
    } else if (k == 2) {
        put_s(p, cap, o, "\"\"");
    } else {
        int obj = k == 3;
        put_s(p, cap, o, obj ? "{" : "[");
        uint32_t n = rnd(4);
        for (uint32_t i = 0; i < n; i++) {
            if (i) put_s(p, cap, o, ",");
            json_ws(p, cap, o, spaced);
            if (obj) {
                put_s(p, cap, o, "\"");
                json_body(p, cap, o, rnd(8));
                put_s(p, cap, o, "\":");
            }
            json_value(p, cap, o, depth + 1, spaced);
        }
        put_s(p, cap, o, obj ? "}" : "]");
    }
}

/* A JSON object line, tight or spaced, sometimes broken afterwards by one
 * hostile byte (invalid UTF-8, a control byte or a quote in a string). */
static size_t json_line(unsigned char *p, size_t cap, uint32_t members)
{
    size_t o = 0;
    int spaced = rnd(4) == 0;
    put_s(p, cap, &o, "{");
    for (uint32_t i = 0; i < members; i++) {
        if (i) put_s(p, cap, &o, ",");
        json_ws(p, cap, &o, spaced);
        put_s(p, cap, &o, "\"");
        json_body(p, cap, &o, rnd(3) ? 1 + rnd(10) : rnd(2));
        put_s(p, cap, &o, "\"");
        json_ws(p, cap, &o, spaced);
        put_s(p, cap, &o, ":");
        json_ws(p, cap, &o, spaced);
        json_value(p, cap, &o, 1, spaced);
    }
    json_ws(p, cap, &o, spaced);
    put_s(p, cap, &o, "}");
    if (o && rnd(5) == 0) {
        static const unsigned char bad[] = {0x80, 0xbf, 0xc0, 0xc3, 0xed, 0xf4, 0xff, 0x00,
                                            0x01, 0x1f, '"',  '\\', '}',  0xe6, 0x9f, 0x0a};
        p[rnd((uint32_t)o)] = bad[rnd(sizeof bad)];
    }
    return o;
}

/* Every copy of the writer (portable, SSSE3, AVX2 where the CPU has them)
 * against the reference, for r as it is given and for r with
 * SL_RF_FIELDS_LINE off (the writer's own check) and as the json step
 * would set it now (sl_record_mark_fields_line): the flag must never
 * change a byte. A record given with the flag set whose fields no longer
 * are its line (a change that did not clear it) differs from the
 * reference, which never looks at the flag. */
static int flag_on_seen;
static void check_record_parts(const sl_batch *b, const sl_record *r, unsigned parts)
{
    sl_buf ref;
    sl_buf_init(&ref, 0);
    int want = ref_record(&ref, b, r, parts);
    assert_false(ref.failed);
    sl_record off = *r, on = *r;
    off.flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
    sl_record_mark_fields_line(&on);
    flag_on_seen += (on.flags & SL_RF_FIELDS_LINE) != 0;
    const sl_record *const variants[] = {r, &off, &on};
    for (int v = 0; v < 3; v++) {
        for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
            sl_buf fast;
            sl_buf_init(&fast, 0);
            int got = sl_recjson_append_kernel(&fast, b, variants[v], parts, k);
            assert_int_equal(got, want);
            assert_int_equal(fast.len, ref.len);
            assert_memory_equal(fast.p, ref.p, ref.len);
            sl_buf_free(&fast);
        }
    }
    sl_buf_free(&ref);
}

/* parts as given and with the line left out when the fields are it */
static void check_record(const sl_batch *b, const sl_record *r, unsigned parts)
{
    check_record_parts(b, r, parts);
    check_record_parts(b, r, parts | SL_RJ_LINE_DEDUP);
}

/* Whether a JSON line has whitespace outside its strings (anywhere, in
 * nested values too). */
static bool ws_outside_strings(sl_slice l)
{
    bool in = false;
    for (size_t k = 0; k < l.n; k++) {
        char c = l.p[k];
        if (in && c == '\\')
            k++;
        else if (c == '"')
            in = !in;
        else if (!in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
            return true;
    }
    return false;
}

/* The json parser's SL_RF_FIELDS_LINE (right after the parse), decided
 * from stage 1's whitespace bits, against the definition (core/
 * record_tile.h, every slice and separator read): set exactly when the
 * definition holds and the line has no whitespace outside strings (the
 * parser gives up the flag for whitespace inside a nested value, which
 * the writer's own check then finds); and the same from every stage-1
 * kernel this CPU has. */
static int parser_flag_seen;
static void check_parser_flag(const sl_record *r)
{
    sl_record full = *r;
    sl_record_mark_fields_line(&full);
    bool want = (full.flags & SL_RF_FIELDS_LINE) && !ws_outside_strings(r->line);
    assert_int_equal((r->flags & SL_RF_FIELDS_LINE) != 0, want);
    parser_flag_seen += want;
    /* the line alone in a record of its own, through each kernel: all
     * give what the best one gives */
    static const int kernels[] = {SL_JSON_AUTO, SL_JSON_SCALAR, SL_JSON_SSE42,
                                  SL_JSON_AVX2, SL_JSON_AVX512, SL_JSON_NEON};
    int best = -1;
    for (size_t k = 0; k < sizeof kernels / sizeof *kernels; k++) {
        if (k && !sl_json_kernel_supported(kernels[k])) continue;
        sl_json_opts o;
        assert_int_equal(sl_json_opts_init(&o, NULL), 0);
        o.kernel = kernels[k];
        sl_batch *b = sl_batch_new(1);
        sl_record *x = sl_batch_add(b, r->line, 0, 1);
        int got =
            sl_json_parse_record(b, x, &o, NULL) == 0 ? (x->flags & SL_RF_FIELDS_LINE) != 0 : -1;
        if (k == 0) best = got;
        assert_int_equal(got, best);
        sl_batch_unref(b);
    }
}

static void test_parsed_records_match_reference(void **st)
{
    (void)st;
    sl_json_opts opts;
    sl_err err;
    assert_int_equal(sl_json_opts_init(&opts, &err), 0);
    static unsigned char tmp[40000];
    int parsed = 0, whole = 0, flagged = 0;
    for (int iter = 0; iter < 6000; iter++) {
        /* some lines past the writer's 8 KiB of line bits */
        uint32_t members = iter % 50 == 0 ? 300 + rnd(200) : rnd(30);
        size_t n = json_line(tmp, sizeof tmp, members);
        char *line = tight_copy(tmp, n);
        pool pl = {.n = 0};
        sl_batch *b = sl_batch_new(2);
        assert_non_null(b);
        if (rnd(3) == 0) {
            sl_field lab = {pool_text(&pl, 12), pool_text(&pl, 20), SL_V_STRING, SL_FF_LABEL};
            assert_int_equal(sl_batch_set_labels(b, &lab, 1), SL_OK);
        }
        sl_record *r = sl_batch_add(b, (sl_slice){line, n}, random_time(), 1);
        assert_non_null(r);
        if (sl_json_parse_record(b, r, &opts, &err) == 0) parsed++;
        check_parser_flag(r);
        /* what later steps do: remove, rename (which clears the verbatim
         * mark, as the rename step does), label, add fields of their own;
         * the chain clears SL_RF_FIELDS_LINE after each such step
         * (sl_record_add_field clears it itself) */
        bool changed = false;
        for (uint32_t i = 0; i < r->nfields; i++) {
            sl_field *f = &r->fields[i];
            uint32_t k = rnd(40);
            if (k == 0) f->flags |= SL_FF_REMOVED;
            if (k == 1) {
                f->key = pool_text(&pl, 12);
                f->flags &= (uint8_t) ~(SL_FF_VERBATIM | SL_FF_KEY_ESCAPED);
            }
            if (k == 2 || k == 3) f->flags |= SL_FF_LABEL;
            changed |= k < 4;
        }
        if (changed) r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
        if (rnd(8) == 0) {
            sl_field *f =
                sl_record_add_field(b, r, inside(r->line, 16), inside(r->line, 60), SL_V_STRING);
            assert_non_null(f);
        }
        if (rnd(10) == 0)
            assert_non_null(
                sl_record_add_field(b, r, SL_SLICE_LIT("k\"ey"), pool_text(&pl, 30), SL_V_STRING));
        whole += r->nfields > 0 && tmp[1] == '"' && !(r->fields[0].flags & SL_FF_REMOVED);
        flagged += (r->flags & SL_RF_FIELDS_LINE) != 0;
        check_record(b, r, iter % 3 ? SL_RJ_ALL : 1 + rnd(SL_RJ_ALL));
        sl_batch_unref(b);
        for (int i = 0; i < pl.n; i++) free(pl.p[i]);
        free(line);
    }
    /* the generator reaches the parser's fast cases, not only its errors */
    assert_true(parsed > 2000);
    assert_true(whole > 1000);
    /* and records the writer takes on the json step's word */
    assert_true(flagged > 300);
    assert_true(parser_flag_seen > 300);
}

/* Slices inside a valid line that cut a UTF-8 sequence, or hold a quote or
 * a control byte, on both sides of every 32-byte block edge: the line's
 * bits (stops, continuations) decide, and must decide as the reference. */
static void test_slices_of_valid_line(void **st)
{
    (void)st;
    static const char *const pieces[] = {"ab", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\"",
                                         "\\", "\t",       "\x01",         "xyz0123"};
    unsigned char tmp[300];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0, want = 1 + rnd(iter % 10 ? 100 : 290);
        while (n < want) {
            const char *s = pieces[rnd(9)];
            size_t k = strlen(s);
            if (n + k > want) break;
            memcpy(tmp + n, s, k);
            n += k;
        }
        char *line = tight_copy(tmp, n);
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, (sl_slice){line, n}, 0, 1);
        uint32_t nf = rnd(6);
        for (uint32_t i = 0; i < nf; i++)
            assert_non_null(
                sl_record_add_field(b, r, inside(r->line, 40), inside(r->line, 70), SL_V_STRING));
        check_record(b, r, iter % 2 ? SL_RJ_ALL : SL_RJ_FIELDS | SL_RJ_LABELS);
        sl_batch_unref(b);
        free(line);
    }
}

/* Verbatim fields whose separators in the line are not the ones the JSON
 * form writes: the line is not copied as the fields. (The parser never
 * makes these; the writer checks each separator anyway.) */
static void test_whole_line_needs_separators(void **st)
{
    (void)st;
    static const struct {
        const char *line;
        size_t key, keyn, val, valn;
        int type;
    } cases[] = {
        {"{\"a\";1}", 2, 1, 5, 1, SL_V_NUMBER},     {"{\"a\":1]", 2, 1, 5, 1, SL_V_NUMBER},
        {"[\"a\":1}", 2, 1, 5, 1, SL_V_NUMBER},     {"{'a\":1}", 2, 1, 5, 1, SL_V_NUMBER},
        {"{\"a':1}", 2, 1, 5, 1, SL_V_NUMBER},      {"{\"a\":'x\"}", 2, 1, 6, 1, SL_V_STRING},
        {"{\"a\":\"x'}", 2, 1, 6, 1, SL_V_STRING},  {"{\"a\":1 }", 2, 1, 5, 1, SL_V_NUMBER},
        {"{\"a\":\"x\"}", 2, 1, 6, 1, SL_V_NUMBER}, {"{\"a\":1}", 2, 1, 5, 1, SL_V_STRING},
        {"{\"a\":1}", 2, 1, 5, 1, SL_V_NUMBER},     {"{\"\":\"\"}", 2, 0, 5, 0, SL_V_STRING},
        {"{\"a\":12}", 2, 1, 5, 1, SL_V_NUMBER},    {"{\"ab\":1}", 2, 1, 6, 1, SL_V_NUMBER},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t n = strlen(cases[c].line);
        char *line = tight_copy((const unsigned char *)cases[c].line, n);
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, (sl_slice){line, n}, 0, 1);
        sl_field *f =
            sl_record_add_field(b, r, (sl_slice){line + cases[c].key, cases[c].keyn},
                                (sl_slice){line + cases[c].val, cases[c].valn}, cases[c].type);
        assert_non_null(f);
        f->flags = SL_FF_VERBATIM;
        check_record(b, r, SL_RJ_ALL);
        check_record(b, r, SL_RJ_FIELDS);
        sl_batch_unref(b);
        free(line);
    }
}

/* The AVX2 writer's escape of a line whose fields tile it (taken as valid
 * UTF-8, escaped 32 bytes a step, a block whose stops are all '"' or '\\'
 * spread by two shuffles): a line `{"k":TEXT}` with TEXT an unquoted value,
 * so any byte pattern tiles. Every 8-bit pattern of quotes and backslashes
 * in each of a block's four 8-byte groups, the block at every offset from
 * the line's start, TEXT ending at every offset in the last block; then a
 * control byte of every class (\n, \t, \r, \x01, \x1f, NUL) and UTF-8
 * sequences at every position of quote-dense text. */
static void test_tiled_line_every_group_pattern(void **st)
{
    (void)st;
    static const char *const ctrl[] = {
        "\n", "\t", "\r", "\x01", "\x1f", "\x00", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80"};
    unsigned char text[200];
    int cases = 0;
    for (int g = 0; g < 4; g++) {
        for (uint32_t pat = 0; pat < 256; pat++) {
            size_t pre = rnd(32), post = rnd(40);
            size_t n = 0;
            for (size_t k = 0; k < pre; k++) text[n++] = (unsigned char)('a' + k % 26);
            for (int k = 0; k < 32; k++) {
                bool q = k / 8 == g ? (pat >> (k % 8) & 1) : rnd(4) == 0;
                text[n++] = q ? (rnd(2) ? '"' : '\\') : (unsigned char)('A' + k);
            }
            for (size_t k = 0; k < post; k++) text[n++] = rnd(3) ? '"' : 'z';
            char line[256];
            memcpy(line, "{\"k\":", 5);
            memcpy(line + 5, text, n);
            line[5 + n] = '}';
            size_t ln = 6 + n;
            /* a control or multibyte piece somewhere in some of them */
            if (pat % 4 == 0) {
                const char *c = ctrl[rnd(9)];
                size_t cl = c == ctrl[5] ? 1 : strlen(c), at = 5 + rnd((uint32_t)n);
                if (at + cl < ln - 1) memcpy(line + at, c, cl);
            }
            char *tight = tight_copy((const unsigned char *)line, ln);
            sl_batch *b = sl_batch_new(1);
            sl_record *r = sl_batch_add(b, (sl_slice){tight, ln}, 0, 1);
            sl_field *f = sl_record_add_field(b, r, (sl_slice){tight + 2, 1},
                                              (sl_slice){tight + 5, n}, SL_V_OBJECT);
            assert_non_null(f);
            f->flags = SL_FF_VERBATIM;
            check_record(b, r, SL_RJ_ALL);
            check_record(b, r, SL_RJ_TIME | SL_RJ_LINE);
            sl_batch_unref(b);
            free(tight);
            cases++;
        }
    }
    /* each control piece at every position of 96 bytes of quote-dense text */
    for (int c = 0; c < 9; c++) {
        for (size_t at = 0; at < 96; at++) {
            char line[128];
            size_t n = 96, cl = c == 5 ? 1 : strlen(ctrl[c]);
            memcpy(line, "{\"k\":", 5);
            for (size_t k = 0; k < n; k++) line[5 + k] = "a\"b\\c\"\"d"[k % 8];
            if (at + cl > n) continue;
            memcpy(line + 5 + at, ctrl[c], cl);
            line[5 + n] = '}';
            char *tight = tight_copy((const unsigned char *)line, n + 6);
            sl_batch *b = sl_batch_new(1);
            sl_record *r = sl_batch_add(b, (sl_slice){tight, n + 6}, 0, 1);
            sl_field *f = sl_record_add_field(b, r, (sl_slice){tight + 2, 1},
                                              (sl_slice){tight + 5, n}, SL_V_ARRAY);
            assert_non_null(f);
            f->flags = SL_FF_VERBATIM;
            check_record(b, r, SL_RJ_ALL);
            sl_batch_unref(b);
            free(tight);
            cases++;
        }
    }
    assert_true(cases > 1800);
}

static bool has_stop(sl_slice v)
{
    for (size_t k = 0; k < v.n; k++)
        if ((unsigned char)v.p[k] < 0x20 || v.p[k] == '"' || v.p[k] == '\\') return true;
    return !sl_utf8_valid(v.p, v.n); /* a sequence cut at either end */
}

/* The tiling check compares positions without branching on each: a parsed
 * line's fields each moved by one byte (key or value start, key or value
 * length, one way or the other), a field's quoted type flipped, the fields
 * removed down to none, must still come out as the reference writes them
 * (the line then escaped and the fields written one by one). */
static void test_tiling_off_by_one(void **st)
{
    (void)st;
    sl_json_opts opts;
    sl_err err;
    assert_int_equal(sl_json_opts_init(&opts, &err), 0);
    static unsigned char tmp[4000];
    int tiled_cases = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = json_line(tmp, sizeof tmp, 1 + rnd(12));
        char *line = tight_copy(tmp, n);
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, (sl_slice){line, n}, random_time(), 1);
        if (sl_json_parse_record(b, r, &opts, &err) != 0 || r->nfields == 0) {
            sl_batch_unref(b);
            free(line);
            continue;
        }
        check_parser_flag(r);
        tiled_cases++;
        sl_field *f = &r->fields[rnd(r->nfields)];
        int d = rnd(2) ? 1 : -1;
        switch (iter % 6) {
        case 0:
            if (f->key.n && f->key.p > line + 1) f->key.p += d;
            break;
        case 1:
            if (f->key.n > 1 || d > 0) f->key.n += (size_t)(ptrdiff_t)d;
            break;
        case 2:
            if (f->val.n && f->val.p + f->val.n < line + n) f->val.p += d;
            break;
        case 3:
            if ((f->val.n > 1 || d > 0) && f->val.p + f->val.n < line + n - 1)
                f->val.n += (size_t)(ptrdiff_t)d;
            break;
        case 4:
            f->type = f->type == SL_V_STRING ? SL_V_NUMBER : SL_V_STRING;
            break;
        default:
            r->nfields = 0; /* only "{}" tiles with no field */
        }
        /* as the chain does after any step but json */
        r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
        /* a moved slice that now takes in a quote, backslash or control
         * byte, or cuts a UTF-8 sequence, is no longer its own escape: as a step that changes a
         * field, drop the verbatim mark (the writer trusts it, by contract) */
        if (has_stop(f->key) || ((f->type == SL_V_STRING) && has_stop(f->val)))
            f->flags &= (uint8_t)~SL_FF_VERBATIM;
        check_record(b, r, SL_RJ_ALL);
        sl_batch_unref(b);
        free(line);
    }
    assert_true(tiled_cases > 1000);
}

/* Through the real steps: `rename` to a key that needs escaping must drop
 * the parser's verbatim mark (else the new key would be copied raw, an
 * unbalanced quote in the output); `remove` and `labels` change what the
 * whole-line copy may take. */
static void test_steps_after_json(void **st)
{
    (void)st;
    static const char *const yamls[] = {
        "parse:\n  - json: {}\n  - rename: {level: \"le\\\"vel\\\\\"}\n",
        "parse:\n  - json: {}\n  - remove: {fields: [msg]}\n",
        "parse:\n  - json: {}\n  - labels: [level]\n",
        "parse:\n  - json: {flatten: true}\n",
    };
    static const char *const lines[] = {
        "{\"ts\":\"2024-01-01\",\"level\":\"info\",\"msg\":\"caf\xc3\xa9 \\\"q\\\"\",\"n\":1}",
        "{\"level\":\"warn\",\"u\":{\"id\":1,\"n\":\"x\"},\"msg\":\"\\u00e9\"}",
        "{\"msg\":\"only\"}",
        "{ \"level\" : \"spaced\" , \"msg\":\"a\"}",
    };
    for (size_t y = 0; y < sizeof yamls / sizeof *yamls; y++) {
        sl_cfg *cfg = sl_cfg_new();
        assert_non_null(cfg);
        assert_int_equal(sl_cfg_load_string(cfg, "test", yamls[y], strlen(yamls[y])), 0);
        sl_chain *chain = NULL;
        assert_int_equal(sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "test", &chain),
                         0);
        for (size_t l = 0; l < sizeof lines / sizeof *lines; l++) {
            sl_batch *b = sl_batch_new(1);
            char *line = tight_copy((const unsigned char *)lines[l], strlen(lines[l]));
            assert_non_null(sl_batch_add(b, (sl_slice){line, strlen(lines[l])}, 0, 1));
            sl_chain_run(chain, b);
            check_record(b, &b->records[0], SL_RJ_ALL);
            if (y == 0 && l < 2) {
                /* the renamed key is escaped in the output */
                sl_buf out;
                sl_buf_init(&out, 0);
                sl_recjson_append(&out, b, &b->records[0], SL_RJ_FIELDS);
                assert_non_null(memmem(out.p, out.len, "\"le\\\"vel\\\\\":", 12));
                sl_buf_free(&out);
            }
            sl_batch_unref(b);
            free(line);
        }
        sl_chain_free(chain);
        sl_cfg_free(cfg);
    }
}

/* SL_RF_FIELDS_LINE (decision 0082) through the real chain: the json step
 * sets it on a tight line it parsed; any step after it that adds, removes,
 * renames, labels or rewrites a field (or none: timestamp, keep) leaves a
 * record whose JSON is the reference's, byte for byte. The chain clears
 * the flag after every step but json; without that, `rename`, `remove`
 * and `labels` (which change the field array in place) would have the
 * writer copy the line as the fields and this fails. The flag is checked
 * as the chain leaves it (check_record_parts takes r as given first). */
static void test_flag_cleared_by_steps_after_json(void **st)
{
    (void)st;
    static const struct {
        const char *yaml;
        int flag; /* the flag expected after the chain on a tight line; 2: on
                   * "{}" only (a second json step adds no field to it) */
    } chains[] = {
        {"parse:\n  - json: {}\n", 1},
        {"parse:\n  - json: {}\n  - rename: {level: lvl}\n", 0},
        {"parse:\n  - json: {}\n  - rename: {level: \"le\\\"vel\"}\n", 0},
        {"parse:\n  - json: {}\n  - remove: {fields: [msg]}\n", 0},
        {"parse:\n  - json: {}\n  - remove: {fields: [nothere]}\n", 0},
        {"parse:\n  - json: {}\n  - labels: [level]\n", 0},
        {"parse:\n  - json: {}\n  - labels: {severity: level}\n", 0},
        {"parse:\n  - json: {}\n  - timestamp: {field: ts, format: rfc3339}\n", 0},
        {"parse:\n  - json: {}\n  - regex: {field: msg, pattern: '(?<word>[a-z]+)'}\n", 0},
        {"parse:\n  - json: {}\n  - keep: {field: level, regex: '.'}\n", 0},
        {"parse:\n  - json: {}\n  - json: {}\n", 2},
        {"parse:\n  - rename: {x: y}\n  - json: {}\n", 1},
        {"parse:\n  - json: {flatten: true}\n", 1},
    };
    static const char *const lines[] = {
        "{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"info\",\"msg\":\"caf\xc3\xa9 "
        "\\\"q\\\"\",\"n\":1}",
        "{\"level\":\"warn\",\"u\":{\"id\":1,\"n\":\"x\"},\"msg\":\"abc\\u00e9\"}",
        "{\"msg\":\"only\",\"level\":\"x\"}",
        "{ \"level\" : \"spaced\" , \"msg\":\"a\"}",
        "{}",
    };
    for (size_t c = 0; c < sizeof chains / sizeof *chains; c++) {
        sl_cfg *cfg = sl_cfg_new();
        assert_non_null(cfg);
        assert_int_equal(sl_cfg_load_string(cfg, "test", chains[c].yaml, strlen(chains[c].yaml)),
                         0);
        sl_chain *chain = NULL;
        assert_int_equal(sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "test", &chain),
                         0);
        for (size_t l = 0; l < sizeof lines / sizeof *lines; l++) {
            size_t n = strlen(lines[l]);
            sl_batch *b = sl_batch_new(2);
            char *line = tight_copy((const unsigned char *)lines[l], n);
            assert_non_null(sl_batch_add(b, (sl_slice){line, n}, 0, 1));
            assert_non_null(sl_batch_add(b, (sl_slice){line, n}, 0, 2));
            sl_chain_run(chain, b);
            for (int i = 0; i < 2; i++) {
                const sl_record *r = &b->records[i];
                if (r->flags & SL_RF_DROPPED) continue;
                /* tight lines: 0-2 (the nested object in 1 flattens to
                 * keys of the arena, not the line's); 3 has spaces */
                bool tight = l != 3 && !(l == 1 && strstr(chains[c].yaml, "flatten"));
                int expect = chains[c].flag == 2 ? l == 4 : chains[c].flag && tight;
                assert_int_equal((r->flags & SL_RF_FIELDS_LINE) != 0, expect);
                check_record(b, r, SL_RJ_ALL);
                check_record(b, r, SL_RJ_FIELDS | SL_RJ_LABELS);
            }
            sl_batch_unref(b);
            free(line);
        }
        sl_chain_free(chain);
        sl_cfg_free(cfg);
    }
    /* the parser's flag at the edges of stage 1's 64-byte blocks: a tight
     * line of 63, 64, 65 and 128 bytes; the same with a space after the
     * '}' (in the last block, before its padding); whitespace only inside
     * a nested value (tiles, but the parser gives the flag up) */
    for (size_t len = 63; len <= 129; len++) {
        if (len > 66 && len < 127) continue;
        for (int space = 0; space < 2; space++) {
            char buf[200];
            size_t n = len;
            memcpy(buf, "{\"k\":\"", 6);
            memset(buf + 6, 'x', n - 8);
            memcpy(buf + n - 2, "\"}", 2);
            if (space) buf[n++] = ' ';
            sl_batch *b = sl_batch_new(1);
            sl_record *r = sl_batch_add(b, (sl_slice){buf, n}, 0, 1);
            assert_int_equal(sl_json_parse_record(b, r, NULL, NULL), 0);
            assert_int_equal((r->flags & SL_RF_FIELDS_LINE) != 0, !space);
            check_parser_flag(r);
            check_record(b, r, SL_RJ_ALL);
            sl_batch_unref(b);
        }
    }
    {
        static const char nested[] = "{\"a\":{\"b\": 1},\"c\":[1, 2]}";
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, (sl_slice){nested, sizeof nested - 1}, 0, 1);
        assert_int_equal(sl_json_parse_record(b, r, NULL, NULL), 0);
        assert_false(r->flags & SL_RF_FIELDS_LINE);
        sl_record full = *r;
        sl_record_mark_fields_line(&full);
        assert_true(full.flags & SL_RF_FIELDS_LINE); /* the writer's check finds it */
        check_record(b, r, SL_RJ_ALL);
        sl_batch_unref(b);
    }
    /* the field API clears it: a field added after the json step */
    sl_batch *b = sl_batch_new(1);
    sl_record *r = sl_batch_add(b, SL_SLICE_LIT("{\"a\":1}"), 0, 1);
    assert_int_equal(sl_json_parse_record(b, r, NULL, NULL), 0);
    assert_true(r->flags & SL_RF_FIELDS_LINE);
    check_record(b, r, SL_RJ_ALL);
    assert_non_null(sl_record_add_field(b, r, SL_SLICE_LIT("b"), SL_SLICE_LIT("2"), SL_V_NUMBER));
    assert_false(r->flags & SL_RF_FIELDS_LINE);
    check_record(b, r, SL_RJ_ALL);
    sl_batch_unref(b);
    /* a field already there before the json step (the multiline mark): not
     * the line's, so no flag */
    b = sl_batch_new(1);
    r = sl_batch_add(b, SL_SLICE_LIT("{\"a\":1}"), 0, 1);
    assert_non_null(
        sl_record_add_field(b, r, SL_SLICE_LIT("multiline"), SL_SLICE_LIT("true"), SL_V_TRUE));
    assert_int_equal(sl_json_parse_record(b, r, NULL, NULL), 0);
    assert_false(r->flags & SL_RF_FIELDS_LINE);
    check_parser_flag(r);
    check_record(b, r, SL_RJ_ALL);
    sl_batch_unref(b);
}

/* Near the buffer's limit the record fits or fails exactly as the checked
 * appends decide: the worst-case reservation must not refuse a record
 * that fits. */
static void test_record_near_limit(void **st)
{
    (void)st;
    sl_batch *b = sl_batch_new(1);
    char line[1000];
    memset(line, 'a', sizeof line);
    sl_record *r = sl_batch_add(b, (sl_slice){line, sizeof line}, 0, 1);
    sl_buf ref;
    sl_buf_init(&ref, 0);
    assert_int_equal(ref_record(&ref, b, r, SL_RJ_ALL), 0);
    for (size_t limit = ref.len - 2; limit <= ref.len + 8; limit++) {
        sl_buf a, c;
        sl_buf_init(&a, limit);
        sl_buf_init(&c, limit);
        int got = sl_recjson_append(&a, b, r, SL_RJ_ALL);
        ref_record(&c, b, r, SL_RJ_ALL);
        assert_int_equal(a.failed, c.failed);
        assert_int_equal(got == SL_ENOMEM, c.failed);
        if (!c.failed) assert_memory_equal(a.p, c.p, c.len);
        /* a failed buffer stays failed */
        if (a.failed) assert_int_equal(sl_recjson_append(&a, b, r, SL_RJ_ALL), SL_ENOMEM);
        sl_buf_free(&a);
        sl_buf_free(&c);
    }
    sl_buf_free(&ref);
    sl_batch_unref(b);
}

/* SL_RJ_LINE_DEDUP (decision 0045): a JSON line the json step parsed,
 * untouched, comes out without "line" and its "fields" are the line byte for
 * byte (so the line is restored from their text); any change to the fields,
 * or whitespace in the line, keeps "line"; near the buffer's limit the
 * checked appends decide the same. */
static void test_line_dedup(void **st)
{
    (void)st;
    static const struct {
        const char *yaml, *line;
        int dedup;
    } cases[] = {
        {"parse:\n  - json: {}\n", "{\"level\":\"info\",\"msg\":\"caf\xc3\xa9 \\\"q\\\"\",\"n\":1}",
         1},
        {"parse:\n  - json: {}\n", "{\"u\":{\"id\":1},\"t\":[1,2],\"e\":\"\\u00e9\"}", 1},
        {"parse:\n  - json: {}\n", "{}", 1},
        {"parse:\n  - json: {}\n  - labels: [level]\n", "{\"level\":\"warn\",\"m\":\"x\"}", 1},
        {"parse:\n  - json: {}\n", "{ \"level\":\"spaced\"}", 0},
        {"parse:\n  - json: {}\n  - remove: {fields: [m]}\n", "{\"level\":\"w\",\"m\":\"x\"}", 0},
        {"parse:\n  - json: {}\n  - rename: {level: lvl}\n", "{\"level\":\"w\"}", 0},
        {"parse:\n  - json: {flatten: true}\n", "{\"u\":{\"id\":1}}", 0},
        {"parse:\n  - json: {}\n", "not json", 0},
        {"parse:\n  - json: {}\n", "{\"bad\":\"\xff\"}", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sl_cfg *cfg = sl_cfg_new();
        assert_non_null(cfg);
        assert_int_equal(sl_cfg_load_string(cfg, "test", cases[c].yaml, strlen(cases[c].yaml)), 0);
        sl_chain *chain = NULL;
        assert_int_equal(sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "test", &chain),
                         0);
        size_t n = strlen(cases[c].line);
        char *line = tight_copy((const unsigned char *)cases[c].line, n);
        sl_batch *b = sl_batch_new(1);
        assert_non_null(sl_batch_add(b, (sl_slice){line, n}, 0, 1));
        sl_chain_run(chain, b);
        const sl_record *r = &b->records[0];
        check_record(b, r, SL_RJ_ALL);
        sl_buf out;
        sl_buf_init(&out, 0);
        assert_true(sl_recjson_append(&out, b, r, SL_RJ_ALL | SL_RJ_LINE_DEDUP) >= 0);
        int has_line = memmem(out.p, out.len, "\"line\":", 7) != NULL;
        assert_int_equal(has_line, !cases[c].dedup);
        if (cases[c].dedup) {
            const char *fields = memmem(out.p, out.len, "\"fields\":", 9);
            assert_non_null(fields);
            assert_true((size_t)(out.p + out.len - fields) >= 9 + n);
            assert_memory_equal(fields + 9, line, n);
        }
        /* near a limit, the checked appends (no reservation) agree */
        for (size_t limit = out.len - 1; limit <= out.len + 2; limit++) {
            sl_buf a, ref;
            sl_buf_init(&a, limit);
            sl_buf_init(&ref, limit);
            sl_recjson_append(&a, b, r, SL_RJ_ALL | SL_RJ_LINE_DEDUP);
            ref_record(&ref, b, r, SL_RJ_ALL | SL_RJ_LINE_DEDUP);
            assert_int_equal(a.failed, ref.failed);
            if (!a.failed) {
                assert_int_equal(a.len, out.len);
                assert_memory_equal(a.p, out.p, out.len);
            }
            sl_buf_free(&a);
            sl_buf_free(&ref);
        }
        sl_buf_free(&out);
        sl_batch_unref(b);
        free(line);
        sl_chain_free(chain);
        sl_cfg_free(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_matches_reference),
        cmocka_unit_test(test_escape_every_quote_pattern),
        cmocka_unit_test(test_record_matches_reference),
        cmocka_unit_test(test_record_near_limit),
        cmocka_unit_test(test_parsed_records_match_reference),
        cmocka_unit_test(test_slices_of_valid_line),
        cmocka_unit_test(test_whole_line_needs_separators),
        cmocka_unit_test(test_tiled_line_every_group_pattern),
        cmocka_unit_test(test_tiling_off_by_one),
        cmocka_unit_test(test_steps_after_json),
        cmocka_unit_test(test_flag_cleared_by_steps_after_json),
        cmocka_unit_test(test_line_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
