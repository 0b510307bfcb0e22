#include "parsers/logfmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes up to the space separate pairs (tabs, CR, NUL and other controls
 * included: they are never part of a bare key or value). */
static inline bool is_sep(char c)
{
    return (unsigned char)c <= ' ';
}

static inline bool key_stop(char c)
{
    return is_sep(c) || c == '=' || c == '"';
}

/* First byte at or after p that is a separator (or e). Lines are mostly
 * short runs, so the vector loop only starts after a scalar probe. */
static inline const char *scan_bare(const char *p, const char *e)
{
    for (int k = 0; k < 8; k++, p++)
        if (p >= e || is_sep(*p)) return p;
#if defined(__SSE2__)
    const __m128i lim = _mm_set1_epi8(0x21);
    while (e - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* unsigned x < 0x21  <=>  max(x, 0x21) != x */
        __m128i ge = _mm_cmpeq_epi8(_mm_max_epu8(x, lim), x);
        unsigned m = (unsigned)_mm_movemask_epi8(ge) ^ 0xffffu;
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < e && !is_sep(*p)) p++;
    return p;
}

static inline const char *scan_key(const char *p, const char *e)
{
    for (int k = 0; k < 8; k++, p++)
        if (p >= e || key_stop(*p)) return p;
#if defined(__SSE2__)
    const __m128i lim = _mm_set1_epi8(0x21), eq = _mm_set1_epi8('='), q = _mm_set1_epi8('"');
    while (e - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ok = _mm_cmpeq_epi8(_mm_max_epu8(x, lim), x);
        __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(x, eq), _mm_cmpeq_epi8(x, q));
        unsigned m =
            ((unsigned)_mm_movemask_epi8(ok) ^ 0xffffu) | (unsigned)_mm_movemask_epi8(stop);
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < e && !key_stop(*p)) p++;
    return p;
}

/* After an opening quote: the closing quote (or e); *esc set when a
 * backslash escape was seen. */
static inline const char *scan_quoted(const char *p, const char *e, bool *esc)
{
    for (;;) {
#if defined(__SSE2__)
        const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
        while (e - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            unsigned m = (unsigned)_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, bs)));
            if (m) {
                p += __builtin_ctz(m);
                break;
            }
            p += 16;
        }
#endif
        while (p < e && *p != '"' && *p != '\\') p++;
        if (p >= e || *p == '"') return p;
        *esc = true;
        if (e - p <= 2) return e; /* the escaped byte is the last one */
        p += 2;
    }
}

int sl_logfmt_next(sl_logfmt_iter *it, sl_field *f)
{
    const char *p = it->p, *e = it->end;
    for (;;) {
        while (p < e && is_sep(*p)) p++;
        if (p >= e) {
            it->p = e;
            return 0;
        }
        if (*p == '"') { /* a quoted string where a key belongs: skip it */
            bool esc = false;
            p = scan_quoted(p + 1, e, &esc);
            if (p < e) p++;
            continue;
        }
        if (*p == '=') { /* a value without a key: skip it */
            p++;
            if (p < e && *p == '"') {
                bool esc = false;
                p = scan_quoted(p + 1, e, &esc);
                if (p < e) p++;
            } else {
                p = scan_bare(p, e);
            }
            continue;
        }
        const char *k = p;
        p = scan_key(p, e);
        f->key = (sl_slice){k, (size_t)(p - k)};
        f->flags = 0;
        if (p < e && *p == '=') {
            p++;
            if (p < e && *p == '"') {
                const char *v = ++p;
                bool esc = false;
                p = scan_quoted(p, e, &esc);
                f->val = (sl_slice){v, (size_t)(p - v)};
                f->type = esc ? SL_V_ESCAPED : SL_V_STRING;
                if (p < e) p++;
            } else {
                const char *v = p;
                p = scan_bare(p, e);
                f->val = (sl_slice){v, (size_t)(p - v)};
                f->type = SL_V_STRING;
            }
        } else {
            f->val = SL_SLICE_LIT("true");
            f->type = SL_V_TRUE;
        }
        it->p = p;
        return 1;
    }
}

int sl_logfmt_parse(const char *p, size_t n, sl_field *out, size_t cap, size_t *count)
{
    sl_logfmt_iter it;
    sl_logfmt_init(&it, p, n);
    sl_field f;
    size_t c = 0;
    bool pair = false;
    while (sl_logfmt_next(&it, &f)) {
        if (c < cap) out[c] = f;
        c++;
        pair |= f.type != SL_V_TRUE;
    }
    *count = c;
    return pair ? 0 : SL_EPARSE;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* n hex digits at p (n <= 8), or -1. */
static long hexn(const char *p, size_t avail, size_t n)
{
    if (avail < n) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *d, unsigned long cp)
{
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    if (cp > 0x10ffff) cp = 0xfffd;
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12);
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18);
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t sl_logfmt_unescape(sl_slice v, char *dst)
{
    const char *p = v.p;
    size_t n = v.n, o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 >= n) {
            dst[o++] = p[i];
            continue;
        }
        char c = p[++i];
        long cp;
        switch (c) {
        case 'n':
            dst[o++] = '\n';
            break;
        case 'r':
            dst[o++] = '\r';
            break;
        case 't':
            dst[o++] = '\t';
            break;
        case 'b':
            dst[o++] = '\b';
            break;
        case 'f':
            dst[o++] = '\f';
            break;
        case 'a':
            dst[o++] = '\a';
            break;
        case 'v':
            dst[o++] = '\v';
            break;
        case 'x':
            if ((cp = hexn(p + i + 1, n - i - 1, 2)) < 0) {
                dst[o++] = c;
                break;
            }
            dst[o++] = (char)cp;
            i += 2;
            break;
        case 'u':
        case 'U': {
            size_t w = c == 'u' ? 4 : 8;
            if ((cp = hexn(p + i + 1, n - i - 1, w)) < 0) {
                dst[o++] = c;
                break;
            }
            i += w;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < n && p[i + 1] == '\\' && p[i + 2] == 'u') {
                long lo = hexn(p + i + 3, n - i - 3, 4);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            o += put_utf8(dst + o, (unsigned long)cp);
            break;
        }
        default:
            dst[o++] = c; /* \" \\ \/ and unknown escapes */
        }
    }
    return o;
}

/* True when v can be written between JSON quotes as it is. */
static bool json_ready(sl_slice v)
{
    bool high = false;
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < 0x20) return false;
        high |= c >= 0x80;
        if (c == '"') return false;
        if (c != '\\') continue;
        if (++i >= v.n) return false;
        switch (v.p[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u':
            if (hexn(v.p + i + 1, v.n - i - 1, 4) < 0) return false;
            i += 4;
            break;
        default:
            return false;
        }
    }
    return !high || sl_utf8_valid_prefix(v.p, v.n) == v.n;
}

int sl_logfmt_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err)
{
    uint32_t start = r->nfields;
    sl_logfmt_iter it;
    sl_logfmt_init(&it, in.p, in.n);
    sl_field f;
    bool pair = false;
    while (sl_logfmt_next(&it, &f)) {
        pair |= f.type != SL_V_TRUE;
        if (f.type == SL_V_ESCAPED && !json_ready(f.val)) {
            char *d = sl_arena_alloc(&b->arena, f.val.n + 1);
            if (!d) return sl_errf(err, SL_ENOMEM, "logfmt: batch arena full");
            f.val = (sl_slice){d, sl_logfmt_unescape(f.val, d)};
            f.type = SL_V_STRING;
        }
        if (!sl_record_add_field(b, r, f.key, f.val, f.type))
            return sl_errf(err, SL_ENOMEM, "logfmt: batch arena full");
    }
    if (!pair) {
        r->nfields = start;
        return sl_errf(err, SL_EPARSE, "logfmt: no key=value pair");
    }
    return 0;
}
