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
#include "shipper/recjson.h"

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

/* ---- the reference serializer: the simplest code that says what the
 * format is, through sl_buf's checked appends, gmtime_r and snprintf ---- */

static void ref_time(sl_buf *out, int64_t ns)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, secs--;
    time_t t = (time_t)secs;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    sl_buf_printf(out, "\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ\"", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
}

static int ref_field(sl_buf *out, const sl_field *f, int *first)
{
    int bad = 0;
    if (!*first) sl_buf_putc(out, ',');
    *first = 0;
    sl_buf_putc(out, '"');
    if (f->flags & SL_FF_KEY_ESCAPED)
        sl_buf_append(out, f->key.p, f->key.n);
    else
        bad += sl_buf_json_escape(out, f->key.p, f->key.n);
    sl_buf_append(out, "\":", 2);
    if (f->type == SL_V_STRING) {
        sl_buf_putc(out, '"');
        bad += sl_buf_json_escape(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
    } else if (f->type == SL_V_ESCAPED) {
        sl_buf_putc(out, '"');
        sl_buf_append(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
    } else {
        sl_buf_append(out, f->val.p, f->val.n);
    }
    return bad;
}

static int ref_record(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts)
{
    int bad = 0, any = 0;
    sl_buf_putc(out, '{');
    if (parts & SL_RJ_TIME) ref_time(out, r->time_ns), any = 1;
    if (parts & SL_RJ_LINE) {
        sl_buf_append(out, ",\"line\":\"" + !any, 9 - !any);
        bad += sl_buf_json_escape(out, r->line.p, r->line.n);
        sl_buf_putc(out, '"');
        any = 1;
    }
    if (parts & SL_RJ_FIELDS) {
        sl_buf_append(out, ",\"fields\":{" + !any, 11 - !any);
        int first = 1;
        for (uint32_t i = 0; i < r->nfields; i++)
            if (!(r->fields[i].flags & SL_FF_REMOVED)) bad += ref_field(out, &r->fields[i], &first);
        sl_buf_putc(out, '}');
        any = 1;
    }
    if (parts & SL_RJ_LABELS) {
        sl_buf_append(out, ",\"labels\":{" + !any, 11 - !any);
        int first = 1;
        for (uint32_t i = 0; i < b->nlabels; i++) bad += ref_field(out, &b->labels[i], &first);
        for (uint32_t i = 0; i < r->nfields; i++) {
            const sl_field *f = &r->fields[i];
            if ((f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED))
                bad += ref_field(out, f, &first);
        }
        sl_buf_putc(out, '}');
    }
    sl_buf_putc(out, '}');
    return bad;
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
        int got = sl_recjson_append(&fast, b, r, parts);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_matches_reference),
        cmocka_unit_test(test_escape_every_quote_pattern),
        cmocka_unit_test(test_record_matches_reference),
        cmocka_unit_test(test_record_near_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
