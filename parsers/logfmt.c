#include "parsers/logfmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/json_str.h"
#include "core/utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes up to the space separate pairs (tabs, CR, NUL and other controls
 * included: they are never part of a bare key or value). */
enum { C_SEP = 1, C_EQ = 2, C_QUOTE = 4, C_BS = 8, C_NONSEP = 16 };

/* Classifies the 64 bytes at q (all readable) into the iterator's masks. */
static inline void classify(sl_logfmt_iter *it, const char *q)
{
#if defined(__SSE2__)
    const __m128i lim = _mm_set1_epi8(0x21), eq = _mm_set1_epi8('='), qu = _mm_set1_epi8('"'),
                  bs = _mm_set1_epi8('\\');
    uint64_t sep = 0, e = 0, quo = 0, b = 0;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * k));
        /* unsigned x < 0x21  <=>  max(x, 0x21) != x */
        uint64_t ge =
            (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, lim), x));
        sep |= (ge ^ 0xffffu) << (16 * k);
        e |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, eq)) << (16 * k);
        quo |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, qu)) << (16 * k);
        b |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, bs)) << (16 * k);
    }
    it->sep = sep;
    it->eq = e;
    it->quote = quo;
    it->bs = b;
#else
    uint64_t sep = 0, e = 0, quo = 0, b = 0;
    for (int k = 0; k < 64; k++) {
        unsigned char c = (unsigned char)q[k];
        sep |= (uint64_t)(c <= ' ') << k;
        e |= (uint64_t)(c == '=') << k;
        quo |= (uint64_t)(c == '"') << k;
        b |= (uint64_t)(c == '\\') << k;
    }
    it->sep = sep;
    it->eq = e;
    it->quote = quo;
    it->bs = b;
#endif
}

static void load_block(sl_logfmt_iter *it, size_t blk)
{
    it->blk = blk;
    if (it->n - blk >= 64) {
        classify(it, it->p + blk);
        return;
    }
    /* The last, partial block: padded with blanks, which end any token
     * at the end of the line; nothing past n is read. */
    char tail[64];
    memset(tail, ' ', sizeof tail);
    memcpy(tail, it->p + blk, it->n - blk);
    classify(it, tail);
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The first position >= pos holding a byte of one of the classes, or n.
 * Always inlined: classes is a constant at every call, so the mask
 * combination folds away. */
static ALWAYS_INLINE size_t find(sl_logfmt_iter *it, size_t pos, unsigned classes)
{
    while (pos < it->n) {
        size_t blk = pos & ~(size_t)63;
        if (blk != it->blk) load_block(it, blk);
        uint64_t m = 0;
        if (classes & C_SEP) m |= it->sep;
        if (classes & C_NONSEP) m |= ~it->sep;
        if (classes & C_EQ) m |= it->eq;
        if (classes & C_QUOTE) m |= it->quote;
        if (classes & C_BS) m |= it->bs;
        m &= ~(uint64_t)0 << (pos & 63);
        if (m) {
            size_t at = blk + (size_t)__builtin_ctzll(m);
            return at < it->n ? at : it->n;
        }
        pos = blk + 64;
    }
    return it->n;
}

/* After an opening quote: the closing quote (or n); *esc set when a
 * backslash escape was seen. */
static ALWAYS_INLINE size_t quoted_end(sl_logfmt_iter *it, size_t pos, bool *esc)
{
    for (;;) {
        size_t q = find(it, pos, C_QUOTE | C_BS);
        if (q >= it->n || it->p[q] == '"') return q;
        *esc = true;
        if (it->n - q <= 2) return it->n; /* the escaped byte is the last one */
        pos = q + 2;
    }
}

void sl_logfmt_init(sl_logfmt_iter *it, const char *p, size_t n)
{
    it->p = p;
    it->n = n;
    it->pos = 0;
    it->blk = SIZE_MAX;
}

static ALWAYS_INLINE int next_pair(sl_logfmt_iter *it, sl_field *f)
{
    const char *p = it->p;
    size_t n = it->n, pos = it->pos;
    for (;;) {
        pos = find(it, pos, C_NONSEP);
        if (pos >= n) {
            it->pos = n;
            return 0;
        }
        bool esc = false;
        if (p[pos] == '"') { /* a quoted string where a key belongs: skip it */
            pos = quoted_end(it, pos + 1, &esc);
            if (pos < n) pos++;
            continue;
        }
        if (p[pos] == '=') { /* a value without a key: skip it */
            pos++;
            if (pos < n && p[pos] == '"') {
                pos = quoted_end(it, pos + 1, &esc);
                if (pos < n) pos++;
            } else {
                pos = find(it, pos, C_SEP);
            }
            continue;
        }
        size_t k = pos;
        pos = find(it, pos, C_SEP | C_EQ | C_QUOTE);
        f->key = (sl_slice){p + k, pos - k};
        f->flags = 0;
        if (pos < n && p[pos] == '=') {
            pos++;
            if (pos < n && p[pos] == '"') {
                size_t v = ++pos;
                pos = quoted_end(it, pos, &esc);
                f->val = (sl_slice){p + v, pos - v};
                f->type = esc ? SL_V_ESCAPED : SL_V_STRING;
                if (pos < n) pos++;
            } else {
                size_t v = pos;
                pos = find(it, pos, C_SEP);
                f->val = (sl_slice){p + v, pos - v};
                f->type = SL_V_STRING;
            }
        } else {
            f->val = SL_SLICE_LIT("true");
            f->type = SL_V_TRUE;
        }
        it->pos = pos;
        return 1;
    }
}

int sl_logfmt_next(sl_logfmt_iter *it, sl_field *f)
{
    return next_pair(it, f);
}

int sl_logfmt_parse(const char *p, size_t n, sl_field *out, size_t cap, size_t *count)
{
    sl_logfmt_iter it;
    sl_logfmt_init(&it, p, n);
    sl_field f;
    size_t c = 0;
    bool pair = false;
    while (next_pair(&it, &f)) {
        if (c < cap) out[c] = f;
        c++;
        pair |= f.type != SL_V_TRUE;
    }
    *count = c;
    return pair ? 0 : SL_EPARSE;
}

/* Whether the n bytes at p (avail readable, n <= 8) are hex digits; their
 * value into *v. */
static bool hexn(const char *p, size_t avail, size_t n, unsigned long *v)
{
    if (avail < n) return false;
    unsigned long x = 0;
    for (size_t i = 0; i < n; i++) {
        int h = sl_json_hexval((unsigned char)p[i]);
        if (h < 0) return false;
        x = x * 16 + (unsigned)h;
    }
    *v = x;
    return true;
}

static size_t put_utf8(char *d, unsigned long cp)
{
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) cp = 0xfffd;
    return sl_json_utf8_put(d, (uint32_t)cp);
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
        unsigned long cp, lo;
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
            if (!hexn(p + i + 1, n - i - 1, 2, &cp)) {
                dst[o++] = c;
                break;
            }
            dst[o++] = (char)cp;
            i += 2;
            break;
        case 'u':
        case 'U': {
            size_t w = c == 'u' ? 4 : 8;
            if (!hexn(p + i + 1, n - i - 1, w, &cp)) {
                dst[o++] = c;
                break;
            }
            i += w;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < n && p[i + 1] == '\\' && p[i + 2] == 'u') {
                if (hexn(p + i + 3, n - i - 3, 4, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            o += put_utf8(dst + o, cp);
            break;
        }
        default:
            dst[o++] = c; /* \" \\ \/ and unknown escapes */
        }
    }
    return o;
}

/* True when v can be written between JSON quotes as it is: JSON's escapes
 * only, surrogates paired, no control byte or bare quote, valid UTF-8. Such
 * a value then reads back (sl_json_unescape) as sl_logfmt_unescape decodes
 * it, so the lazy SL_V_ESCAPED form and the unescaped one never differ. */
static bool json_ready(sl_slice v)
{
    /* A lone surrogate is JSON's grammar but not Unicode: strict readers
     * (this project's json step, jansson, serde) refuse the document, so it
     * goes through sl_logfmt_unescape, which makes it U+FFFD. */
    return sl_json_string_text_ok(v.p, v.n);
}

int sl_logfmt_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err)
{
    uint32_t start = r->nfields;
    sl_logfmt_iter it;
    sl_logfmt_init(&it, in.p, in.n);
    sl_field f;
    bool pair = false;
    while (next_pair(&it, &f)) {
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
