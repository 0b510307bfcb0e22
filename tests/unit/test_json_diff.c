/* Differential test: our scanner against jansson on generated documents
 * (typical log objects, random values, deep nesting, long strings, every
 * escape, invalid UTF-8 at every position, every prefix, random
 * mutations). They must agree on validity, and for objects on every
 * top-level key and value, and on the flattened view.
 *
 * The kernel is the one $SLUICE_SIMD forces (meson runs this test once per
 * kernel); a kernel this CPU lacks is skipped.
 *
 * jansson runs with JSON_DECODE_ANY | JSON_ALLOW_NUL. Where jansson refuses
 * valid JSON by design, the document is re-checked in a form with the same
 * validity that jansson accepts (see docs/decisions/0003-json-scanner.md):
 *   - a \u0000 escape in a key (json_error_null_byte_in_key): the escape is
 *     rewritten to \u0001;
 *   - integers beyond 64 bits (json_error_numeric_overflow): re-read with
 *     JSON_DECODE_INT_AS_REAL; reals beyond a double's range are counted
 *     as unverifiable (the generator makes few);
 *   - a raw NUL byte is invalid, but jansson skips one right after a number
 *     or literal (`[true\0]` loads): documents holding one are invalid here;
 *   - depth: jansson counts every value, scalars included, up to 2048; we
 *     run with max_depth 2048 and the generator avoids depths 2040..2060.
 *
 * One file over 800 lines: the generators and the comparison belong to the
 * one differential check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "parsers/json.h"
#include "tests/helpers.h"

#define JANSSON_DEPTH 2048
#define SEP           '\x1f' /* flatten separator the generator never puts in keys */

static sl_json_opts opts;

/* ------------------------------------------------------------ generator */

typedef struct gen {
    char *buf;
    size_t n, cap;
    uint64_t rng;
    bool hostile; /* may emit invalid pieces */
    bool dup;     /* emitted a duplicate key */
} gen;

static uint64_t rnd(gen *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 0x2545F4914F6CDD1DULL;
}

static uint32_t below(gen *g, uint32_t n)
{
    return (uint32_t)(rnd(g) % n);
}

static void put(gen *g, const void *p, size_t n)
{
    if (g->n + n > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->n + n) cap *= 2;
        g->buf = realloc(g->buf, cap);
        assert_non_null(g->buf);
        g->cap = cap;
    }
    memcpy(g->buf + g->n, p, n);
    g->n += n;
}

static void puts_(gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ws(gen *g)
{
    static const char w[] = " \t\n\r";
    if (below(g, 4) == 0) {
        int k = (int)below(g, 3) + 1;
        for (int i = 0; i < k; i++) put(g, &w[below(g, 4)], 1);
    }
}

static void put_hex4(gen *g, unsigned v, bool upper)
{
    char b[8];
    snprintf(b, sizeof b, upper ? "\\u%04X" : "\\u%04x", v & 0xFFFF);
    puts_(g, b);
}

static void put_utf8(gen *g, uint32_t cp)
{
    char d[4];
    size_t n;
    if (cp < 0x80) {
        d[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        d[0] = (char)(0xF0 | (cp >> 18));
        d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(g, d, n);
}

static uint32_t random_scalar_value(gen *g)
{
    switch (below(g, 4)) {
    case 0:
        return 0x80 + below(g, 0x800 - 0x80);
    case 1: {
        uint32_t cp = 0x800 + below(g, 0x10000 - 0x800);
        return (cp >= 0xD800 && cp <= 0xDFFF) ? 0x20AC : cp;
    }
    case 2:
        return 0x10000 + below(g, 0x110000 - 0x10000);
    default:
        return 0x20 + below(g, 0x5F);
    }
}

static const char *const invalid_utf8[] = {
    "\x80",
    "\xbf",
    "\xc0\x80",
    "\xc1\xbf",
    "\xc3",
    "\xc3\x28",
    "\xe0\x80\x80",
    "\xe0\x9f\xbf",
    "\xed\xa0\x80",
    "\xed\xbf\xbf",
    "\xe2\x82",
    "\xf0\x80\x80\x80",
    "\xf0\x8f\xbf\xbf",
    "\xf4\x90\x80\x80",
    "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80",
    "\xfe",
    "\xff",
    "\xf0\x9f\x98",
};
#define N_INVALID_UTF8 (sizeof invalid_utf8 / sizeof *invalid_utf8)

/* String contents; keys never contain the flatten separator. */
static void gen_string_body(gen *g, size_t len, bool key)
{
    static const char simple[] = "\"\\/bfnrt";
    for (size_t i = 0; i < len; i++) {
        uint32_t r = below(g, 100);
        if (r < 55) {
            char c = (char)(0x20 + below(g, 0x5F));
            if (c == '"' || c == '\\') c = 'x';
            put(g, &c, 1);
        } else if (r < 65) {
            char e[2] = {'\\', simple[below(g, 8)]};
            put(g, e, 2);
        } else if (r < 75) {
            uint32_t cp = random_scalar_value(g);
            if (key && cp == (uint32_t)SEP) cp = 'y';
            if (cp >= 0x10000) {
                cp -= 0x10000;
                put_hex4(g, 0xD800 + (cp >> 10), below(g, 2));
                put_hex4(g, 0xDC00 + (cp & 0x3FF), below(g, 2));
            } else {
                put_hex4(g, cp, below(g, 2));
            }
        } else if (r < 77) {
            /* Controls; NUL only in values (jansson refuses it in keys). */
            unsigned v = key ? 1 + below(g, 0x1E) : below(g, 0x20);
            put_hex4(g, v, below(g, 2));
        } else if (r < 95) {
            put_utf8(g, random_scalar_value(g));
        } else if (g->hostile && r < 96) {
            static const char *const bad[] = {"\\x",
                                              "\\u12",
                                              "\\uD800",
                                              "\\uDC00x",
                                              "\\uD800\\u0041",
                                              "\\uDBFF\\n",
                                              "\\U0041",
                                              "\\",
                                              "\t",
                                              "\x01",
                                              "\n",
                                              "\\uD800\\uD800",
                                              "\\uDFFF\\uD800",
                                              "\\u00G0"};
            puts_(g, bad[below(g, sizeof bad / sizeof *bad)]);
        } else if (g->hostile && r < 97) {
            puts_(g, invalid_utf8[below(g, N_INVALID_UTF8)]);
        } else {
            puts_(g, "\\\\");
        }
    }
}

static void gen_string(gen *g, size_t len, bool key)
{
    puts_(g, "\"");
    gen_string_body(g, len, key);
    puts_(g, "\"");
}

static void gen_number(gen *g)
{
    char b[64];
    switch (below(g, 10)) {
    case 0:
        snprintf(b, sizeof b, "%d", (int)below(g, 10));
        if (below(g, 8) == 0) { /* beyond 64 bits */
            const char *sign = below(g, 2) ? "-" : "";
            unsigned long long hi = rnd(g) >> 1, lo = rnd(g);
            snprintf(b, sizeof b, "%s%llu%llu", sign, hi, lo);
        }
        break;
    case 1:
        snprintf(b, sizeof b, "-%u", below(g, 100000));
        break;
    case 2:
        snprintf(b, sizeof b, "%llu", (unsigned long long)(rnd(g) >> below(g, 64)));
        break;
    case 3:
        snprintf(b, sizeof b, "%lld", (long long)rnd(g));
        break;
    case 4: {
        unsigned ip = below(g, 1000), fp = below(g, 1000000);
        snprintf(b, sizeof b, "%u.%u", ip, fp);
        break;
    }
    case 5:
        snprintf(b, sizeof b, "-0.%03u", below(g, 1000));
        break;
    case 6: {
        unsigned m = below(g, 100), ex;
        const char *frac = below(g, 2) ? ".5" : "";
        char e = below(g, 2) ? 'e' : 'E';
        const char *sign = below(g, 3) == 0 ? "-" : (below(g, 2) ? "+" : "");
        ex = below(g, 40);
        snprintf(b, sizeof b, "%u%s%c%s%u", m, frac, e, sign, ex);
        break;
    }
    case 7:
        snprintf(b, sizeof b, "%.17g", (double)rnd(g) / 3.0);
        break;
    case 8: /* underflows to zero: valid for both */
        snprintf(b, sizeof b, "1e-%u", 300 + below(g, 100));
        break;
    default:
        if (g->hostile && below(g, 4) == 0) {
            static const char *const bad[] = {"01",   "1.",  ".5",   "-",        "+1",
                                              "1e",   "1e+", "0x1",  "NaN",      "-01",
                                              "1.e5", "--1", "1ee2", "Infinity", "1e5.3"};
            snprintf(b, sizeof b, "%s", bad[below(g, sizeof bad / sizeof *bad)]);
        } else if (below(g, 50) == 0) {
            snprintf(b, sizeof b, "1e%u", 300 + below(g, 30)); /* maybe beyond double */
        } else {
            snprintf(b, sizeof b, "%u", below(g, 1000000));
        }
    }
    puts_(g, b);
}

static void gen_value(gen *g, int depth);

static void gen_object(gen *g, int depth, int nfields)
{
    puts_(g, "{");
    ws(g);
    for (int i = 0; i < nfields; i++) {
        if (i) {
            puts_(g, ",");
            ws(g);
        }
        char k[16];
        if (below(g, 8) == 0 && i > 0) {
            puts_(g, "\"k0\""); /* a duplicate now and then */
            g->dup = true;
        } else if (below(g, 3) == 0) {
            snprintf(k, sizeof k, "\"k%d\"", i);
            puts_(g, k);
        } else {
            /* "<i>|" keeps random keys of one object distinct. */
            snprintf(k, sizeof k, "\"%d|", i);
            puts_(g, k);
            gen_string_body(g, below(g, 12), true);
            puts_(g, "\"");
        }
        ws(g);
        puts_(g, ":");
        ws(g);
        gen_value(g, depth + 1);
        ws(g);
    }
    if (g->hostile && below(g, 40) == 0) puts_(g, ",");
    puts_(g, "}");
}

static void gen_array(gen *g, int depth)
{
    int n = (int)below(g, 5);
    puts_(g, "[");
    ws(g);
    for (int i = 0; i < n; i++) {
        if (i) {
            puts_(g, ",");
            ws(g);
        }
        gen_value(g, depth + 1);
        ws(g);
    }
    puts_(g, "]");
}

static void gen_value(gen *g, int depth)
{
    uint32_t r = below(g, depth > 4 ? 70 : 100);
    if (r < 30) {
        gen_string(g, below(g, 40), false);
    } else if (r < 50) {
        gen_number(g);
    } else if (r < 55) {
        puts_(g, "true");
    } else if (r < 60) {
        puts_(g, "false");
    } else if (r < 65) {
        puts_(g, "null");
    } else if (r < 70) {
        if (g->hostile) {
            static const char *const bad[] = {"tru", "nul", "True", "falsey", "nulll", "'x'"};
            puts_(g, bad[below(g, 6)]);
        } else {
            puts_(g, "null");
        }
    } else if (r < 85) {
        gen_object(g, depth, (int)below(g, 6));
    } else {
        gen_array(g, depth);
    }
}

/* ----------------------------------------------------------- comparison */

typedef struct stats {
    long docs, valid, objects, fields, flat_fields, nul_key, big_int, unverifiable, raw_nul;
} stats;

static char last_jansson_error[JSON_ERROR_TEXT_LENGTH + 64];

static void dump(const char *doc, size_t n)
{
    const char *path = getenv("SLUICE_JSON_DUMP"); /* whole document, for debugging */
    if (path) {
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(doc, 1, n, f);
            fclose(f);
        }
    }
    fprintf(stderr, "jansson: %s\n", last_jansson_error);
    fprintf(stderr, "document (%zu bytes): ", n);
    for (size_t i = 0; i < n && i < 400; i++) {
        unsigned char c = (unsigned char)doc[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

#define CHECK(cond, doc, n, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dump(doc, n);                                                                          \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

/* \u0000 escapes rewritten to \u0001: same validity, acceptable to jansson. */
static char *without_nul_escapes(const char *doc, size_t n)
{
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, doc, n);
    for (size_t i = 0; i + 5 < n; i++)
        if (c[i] == '\\' && c[i + 1] == 'u' && memcmp(c + i + 2, "0000", 4) == 0) c[i + 5] = '1';
    return c;
}

/* jansson's verdict on doc, rewritten where jansson refuses valid JSON by
 * design: 1 valid (*out = its value), -1 invalid, 2 valid but only with NUL
 * escapes in keys rewritten (values not comparable), 0 cannot tell. */
static int reference(const char *doc, size_t n, stats *st, json_t **out)
{
    json_error_t je;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    char *rewritten = NULL;
    int verdict = 1;
    /* A raw NUL byte is never valid JSON (a control character in a string,
     * garbage elsewhere), but jansson's reader skips one that directly
     * follows a number or literal ([true\0] loads): decide those here. */
    if (memchr(doc, 0, n)) {
        *out = json_loadb(doc, n, flags, &je);
        st->raw_nul += *out != NULL;
        json_decref(*out);
        *out = NULL;
        snprintf(last_jansson_error, sizeof last_jansson_error, "(raw NUL byte: invalid)");
        return -1;
    }
    /* Each refusal-by-design shows only once the earlier ones are gone. */
    for (int attempt = 0; attempt < 3; attempt++) {
        *out = json_loadb(doc, n, flags, &je);
        if (*out) break;
        int code = json_error_code(&je);
        if (code == json_error_null_byte_in_key && !rewritten) {
            rewritten = without_nul_escapes(doc, n);
            doc = rewritten;
            st->nul_key++;
            verdict = 2;
        } else if (code == json_error_numeric_overflow && !(flags & JSON_DECODE_INT_AS_REAL)) {
            st->big_int++;
            flags |= JSON_DECODE_INT_AS_REAL;
        } else {
            if (code == json_error_numeric_overflow) {
                st->unverifiable++;
                verdict = 0;
            }
            break;
        }
    }
    free(rewritten);
    snprintf(last_jansson_error, sizeof last_jansson_error, "%s at %d (code %d)", je.text,
             je.position, (int)json_error_code(&je));
    if (verdict == 0) return 0;
    if (!*out) return -1;
    if (verdict == 2) {
        json_decref(*out);
        *out = NULL;
    }
    return verdict;
}

static bool number_equal(const char *text, size_t n, json_t *v)
{
    char b[512];
    if (n >= sizeof b) return false;
    memcpy(b, text, n);
    b[n] = '\0';
    bool real = strpbrk(b, ".eE") != NULL;
    if (json_is_integer(v)) return !real && strtoll(b, NULL, 10) == json_integer_value(v);
    if (json_is_real(v)) {
        double d = strtod(b, NULL);
        return memcmp(&d, &(double){json_real_value(v)}, sizeof d) == 0;
    }
    return false;
}

/* The unescaped bytes of a key or string (malloc'ed; caller frees). */
static char *unescaped(sl_slice s, bool escaped, size_t *n)
{
    char *buf = malloc(s.n + 1);
    assert_non_null(buf);
    if (!escaped) {
        memcpy(buf, s.p, s.n);
        *n = s.n;
        return buf;
    }
    ptrdiff_t m = sl_json_unescape(s.p, s.n, buf, s.n + 1);
    assert_true(m >= 0);
    *n = (size_t)m;
    return buf;
}

static bool value_equal(const sl_field *f, json_t *v)
{
    switch (f->type) {
    case SL_V_STRING:
    case SL_V_ESCAPED: {
        if (!json_is_string(v)) return false;
        size_t n;
        char *s = unescaped(f->val, f->type == SL_V_ESCAPED, &n);
        bool eq = n == json_string_length(v) && memcmp(s, json_string_value(v), n) == 0;
        free(s);
        return eq;
    }
    case SL_V_NUMBER:
        return number_equal(f->val.p, f->val.n, v);
    case SL_V_TRUE:
        return json_is_true(v);
    case SL_V_FALSE:
        return json_is_false(v);
    case SL_V_NULL:
        return json_is_null(v);
    case SL_V_OBJECT:
    case SL_V_ARRAY: {
        if (f->type == SL_V_OBJECT ? !json_is_object(v) : !json_is_array(v)) return false;
        json_t *sub =
            json_loadb(f->val.p, f->val.n, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
        json_t *want = v;
        bool eq = false;
        if (sub) {
            /* Numbers compare by value; re-read both the same way. */
            char *dumped = json_dumps(v, JSON_ENCODE_ANY);
            json_t *w2 =
                dumped
                    ? json_loads(dumped, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
                                 NULL)
                    : NULL;
            eq = w2 && json_equal(sub, w2);
            json_decref(w2);
            free(dumped);
        }
        (void)want;
        json_decref(sub);
        return eq;
    }
    }
    return false;
}

/* Last field with the given (unescaped) key. */
static const sl_field *last_field(const sl_field *f, size_t nf, const char *key, size_t kn)
{
    for (size_t i = nf; i-- > 0;) {
        size_t n;
        char *k = unescaped(f[i].key, f[i].flags & SL_FF_KEY_ESCAPED, &n);
        bool eq = n == kn && memcmp(k, key, kn) == 0;
        free(k);
        if (eq) return &f[i];
    }
    return NULL;
}

static size_t distinct_keys(const sl_field *f, size_t nf)
{
    size_t d = 0;
    for (size_t i = 0; i < nf; i++) {
        size_t na, nb;
        char *ka = unescaped(f[i].key, f[i].flags & SL_FF_KEY_ESCAPED, &na);
        bool later = false;
        for (size_t j = i + 1; j < nf && !later; j++) {
            char *kb = unescaped(f[j].key, f[j].flags & SL_FF_KEY_ESCAPED, &nb);
            later = na == nb && memcmp(ka, kb, na) == 0;
            free(kb);
        }
        free(ka);
        d += !later;
    }
    return d;
}

/* jansson's flattened view: leaves under joined keys, compared with ours. */
static void check_flat(const char *doc, size_t n, json_t *obj, char *prefix, size_t pn, int level,
                       const sl_field *f, size_t nf, size_t *leaves)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t kl = strlen(key);
        char *full = malloc(pn + kl + 2);
        size_t fn = 0;
        if (pn) {
            memcpy(full, prefix, pn);
            full[pn] = SEP;
            fn = pn + 1;
        }
        memcpy(full + fn, key, kl);
        fn += kl;
        if (json_is_object(v) && json_object_size(v) > 0 && level < SL_JSON_FLATTEN_MAX) {
            check_flat(doc, n, v, full, fn, level + 1, f, nf, leaves);
        } else {
            const sl_field *mine = last_field(f, nf, full, fn);
            CHECK(mine, doc, n, "flattened key %.*s missing", (int)fn, full);
            CHECK(value_equal(mine, v), doc, n, "flattened value of %.*s differs", (int)fn, full);
            (*leaves)++;
        }
        free(full);
    }
}

/* strict: the document has no duplicate keys at any level, so the
 * flattened views must match one to one. */
static void compare(const char *doc, size_t n, bool strict, stats *st, sl_arena *arena)
{
    static sl_field fields[8192];
    st->docs++;
    sl_err err;
    json_t *j;
    int verdict = reference(doc, n, st, &j);
    int rc = sl_json_validate(doc, n, &opts, &err);
    size_t nf;
    int frc = sl_json_fields(doc, n, &opts, fields, 8192, &nf, &err);
    if (verdict == 0) { /* unverifiable: at least stay consistent */
        CHECK(rc == 0 || rc == SL_EPARSE, doc, n, "unexpected rc %d", rc);
        return;
    }
    if (verdict < 0) {
        CHECK(rc == SL_EPARSE, doc, n, "we accept what jansson rejects");
        CHECK(frc == SL_EPARSE, doc, n, "fields accepted what jansson rejects");
        return;
    }
    CHECK(rc == 0, doc, n, "we reject what jansson accepts: %s", err.msg);
    st->valid++;
    if (verdict == 2) { /* valid, but jansson cannot hold a NUL key */
        CHECK(frc == 0 || frc == SL_EPARSE, doc, n, "fields rc %d", frc);
        return;
    }
    if (!json_is_object(j)) {
        CHECK(frc == SL_EPARSE, doc, n, "fields accepted a non-object");
        json_decref(j);
        return;
    }
    CHECK(frc == 0, doc, n, "fields failed on a valid object: %s", err.msg);
    st->objects++;
    st->fields += (long)nf;
    CHECK(distinct_keys(fields, nf) == json_object_size(j), doc, n, "key count %zu vs %zu",
          distinct_keys(fields, nf), json_object_size(j));
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        const sl_field *mine = last_field(fields, nf, key, strlen(key));
        CHECK(mine, doc, n, "key %s missing", key);
        CHECK(value_equal(mine, v), doc, n, "value of %s differs", key);
    }

    /* Flattened, every other object. */
    if (st->objects % 2 == 0) {
        sl_json_opts fo = opts;
        fo.flatten = true;
        fo.separator = SEP;
        int r = sl_json_fields_arena(doc, n, &fo, arena, fields, 8192, &nf, &err);
        CHECK(r == 0, doc, n, "flatten failed: %s", err.msg);
        size_t leaves = 0;
        check_flat(doc, n, j, NULL, 0, 1, fields, nf, &leaves);
        /* Duplicates make ours a superset (jansson keeps the last). */
        size_t d = distinct_keys(fields, nf);
        CHECK(strict ? leaves == d : leaves <= d, doc, n, "flattened keys %zu vs %zu", d, leaves);
        st->flat_fields += (long)nf;
        sl_arena_reset(arena);
    }
    json_decref(j);
}

/* ---------------------------------------------------------------- driver */

static void one_value(gen *g, int kind)
{
    g->n = 0;
    g->dup = false;
    ws(g);
    switch (kind) {
    case 0: /* a typical log line */
        gen_object(g, 1, 10 + (int)below(g, 21));
        break;
    case 1: /* any value */
        gen_value(g, 1);
        break;
    case 2: { /* deep nesting, mixed, sometimes broken or beyond jansson's limit */
        int depth = below(g, 10) == 0 ? 2100 + (int)below(g, 200) : 1 + (int)below(g, 700);
        char *stack = malloc((size_t)depth);
        for (int i = 0; i < depth; i++) {
            stack[i] = below(g, 2) ? '{' : '[';
            puts_(g, stack[i] == '{' ? "{\"k\":" : "[");
        }
        gen_value(g, 99);
        for (int i = depth; i-- > 0;) puts_(g, stack[i] == '{' ? "}" : "]");
        if (g->hostile && below(g, 3) == 0) g->n -= 1 + below(g, 3);
        free(stack);
        break;
    }
    case 3: /* long strings */
        puts_(g, "{\"long\":");
        gen_string(g, 1000 + below(g, 20000), false);
        puts_(g, ",\"k\\u00e9y\":");
        gen_string(g, below(g, 5000), true);
        puts_(g, "}");
        break;
    default: { /* every escape, valid and not */
        puts_(g, "{");
        static const char *const esc[] = {
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\n",
            "\\r",
            "\\t",
            "\\u0000",
            "\\u001f",
            "\\u0041",
            "\\u00e9",
            "\\u20AC",
            "\\uFFFF",
            "\\uD83D\\uDE00",
            "\\udbff\\udfff",
            "\\uD800",
            "\\uDC00",
            "\\uD800\\u0041",
            "\\x",
            "\\'",
            "\\U0041",
            "\\u12",
            "\\a",
            "\\0",
            "\\uDFFF\\uD800",
            "\\\\\\\"",
            "\\\\\\\\",
        };
        size_t ne = sizeof esc / sizeof *esc;
        for (size_t i = 0; i < 6; i++) {
            char k[32];
            snprintf(k, sizeof k, "%s\"e%zu%s\":\"", i ? "," : "", i,
                     below(g, 4) == 0 ? esc[below(g, 15)] : "");
            puts_(g, k);
            puts_(g, esc[below(g, (uint32_t)ne)]);
            puts_(g, "\"");
        }
        puts_(g, "}");
        break;
    }
    }
    ws(g);
}

static void test_differential(void **state)
{
    (void)state;
    sl_err err;
    if (sl_json_opts_init(&opts, &err) != 0) {
        printf("skipping: %s\n", err.msg);
        skip();
        return;
    }
    opts.max_depth = JANSSON_DEPTH;
    const char *forced = getenv("SLUICE_SIMD");
    printf("kernel: %s (SLUICE_SIMD=%s)\n", sl_json_kernel_name(sl_json_kernel_active(&opts)),
           forced ? forced : "");
    if (forced && *forced && strcmp(forced, "auto") != 0) {
        int k;
        assert_int_equal(sl_json_kernel_parse(forced, &k), 0);
        assert_int_equal(sl_json_kernel_active(&opts), k);
    }

    long target = sl_t_sanitized() ? 12000 : 110000;
    const char *seed_env = getenv("SLUICE_JSON_SEED");
    gen g = {.rng = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed0fa11ULL};
    if (!g.rng) g.rng = 1;
    gen small = {.rng = g.rng ^ 0xabcdef};
    stats st = {0};
    sl_arena arena;
    sl_arena_init(&arena, 64 << 20);
    long per_kind[8] = {0};
    clock_t t0 = clock();
    for (long it = 0; st.docs < target; it++) {
        /* Mostly log-like objects; a prefix set yields a few hundred documents. */
        int kind = (int)below(&g, 100);
        kind = kind < 55 ? 0 : kind < 70 ? 1 : kind < 78 ? 2 : kind < 85 ? 3 : kind < 99 ? 4 : 5;
        g.hostile = below(&g, 3) == 0;
        if (kind == 5) { /* every prefix and invalid UTF-8 at every position */
            small.hostile = false;
            small.rng ^= rnd(&g);
            one_value(&small, below(&g, 2) ? 1 : 4);
            char *doc = malloc(small.n + 8);
            memcpy(doc, small.buf, small.n);
            size_t n = small.n;
            size_t limit = n < 400 ? n : 400;
            for (size_t cut = 0; cut < limit; cut++) compare(doc, cut, false, &st, &arena);
            char *bad = malloc(n + 8);
            for (size_t at = 0; at <= limit; at++) {
                const char *seq = invalid_utf8[at % N_INVALID_UTF8];
                size_t sl = strlen(seq);
                memcpy(bad, doc, at);
                memcpy(bad + at, seq, sl);
                memcpy(bad + at + sl, doc + at, n - at);
                compare(bad, n + sl, false, &st, &arena);
            }
            free(bad);
            free(doc);
            per_kind[5]++;
            continue;
        }
        one_value(&g, kind);
        per_kind[kind]++;
        compare(g.buf, g.n, !g.dup, &st, &arena);
        if (below(&g, 4) == 0 && g.n) { /* a few random mutations of the same document */
            for (int m = 0; m < 3; m++) {
                size_t at = below(&g, (uint32_t)g.n);
                char saved = g.buf[at];
                g.buf[at] = (char)below(&g, 256);
                compare(g.buf, g.n, false, &st, &arena);
                g.buf[at] = saved;
            }
        }
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("%ld documents (%ld valid, %ld objects, %ld fields, %ld flattened fields) in %.1f s\n",
           st.docs, st.valid, st.objects, st.fields, st.flat_fields, secs);
    printf("kinds: typical %ld, any %ld, deep %ld, long %ld, escapes %ld, prefix+utf8 sets %ld\n",
           per_kind[0], per_kind[1], per_kind[2], per_kind[3], per_kind[4], per_kind[5]);
    printf("jansson rewrites: NUL in key %ld, 64-bit overflow %ld, unverifiable %ld; "
           "raw NUL byte jansson wrongly accepts %ld\n",
           st.nul_key, st.big_int, st.unverifiable, st.raw_nul);
    assert_true(st.docs >= target);
    assert_true(st.valid > st.docs / 10 && st.valid < st.docs - st.docs / 10);
    assert_true(st.unverifiable < st.docs / 100);
    free(g.buf);
    free(small.buf);
    sl_arena_reset(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_differential)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
