/* The JSON string escaper's inner loops, shared by core/json_str.c
 * (sl_json_escape_within, the public entry, and the reference escaper) and
 * shipper/recjson.c, which inlines them into one SSSE3 copy of its record
 * writer: a call per string was a third of the encoder's time on short
 * fields. Internal: include it only from those two. Contract as
 * sl_json_escape_within (core/json_str.h). */
#ifndef SLUICE_CORE_JSON_ESCAPE_H
#define SLUICE_CORE_JSON_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SL_SSSE3 __attribute__((target("ssse3,popcnt")))
#endif

/* Where the escaper is: output and input positions, returned in registers
 * (an input index whose address is taken lives in memory in the loop). */
typedef struct esc_pos {
    char *o;
    size_t i;
} esc_pos;

/* The escape of an ASCII byte that needs one ('"', '\\' or below 0x20):
 * its short form where JSON has one, else \u00xx. Returns the end. */
static inline char *escape_ascii(char *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '\\';
    switch (c) {
    case '"':
    case '\\':
        *o++ = (char)c;
        break;
    case '\n':
        *o++ = 'n';
        break;
    case '\r':
        *o++ = 'r';
        break;
    case '\t':
        *o++ = 't';
        break;
    default:
        *o++ = 'u', *o++ = '0', *o++ = '0';
        *o++ = hex[c >> 4], *o++ = hex[c & 15];
    }
    return o;
}

/* A stop byte other than '"' and '\\': a control byte, or a run of UTF-8
 * sequences (each checked whole, copied or replaced). */
static __attribute__((noinline, unused)) esc_pos escape_rare(char *o, const unsigned char *s,
                                                             size_t n, size_t i, size_t *replaced)
{
    unsigned char c = s[i];
    if (c < 0x80) return (esc_pos){escape_ascii(o, c), i + 1};
    /* Non-ASCII text comes in runs (a word of Cyrillic, CJK, emoji): stay
     * here until the next ASCII byte. */
    while (i < n && s[i] >= 0x80) {
        int len = sl_utf8_seq(s + i, n - i);
        if (len > 0) {
            memcpy(o, s + i, (size_t)len);
            i += (size_t)len;
            o += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            i += (size_t)-len;
            o += 3;
            (*replaced)++;
        }
    }
    return (esc_pos){o, i};
}

/* '"' and '\\' are most stops in JSON text (a logged JSON line is full of
 * them): inline; the rest out of line. */
static inline esc_pos escape_stop(char *o, const unsigned char *s, size_t n, size_t i,
                                  size_t *replaced)
{
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
        o[0] = '\\', o[1] = (char)c;
        return (esc_pos){o + 2, i + 1};
    }
    return escape_rare(o, s, n, i, replaced);
}

static inline bool is_stop(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/* Fewer than a vector's bytes: eight at a time with word arithmetic, then
 * one at a time; never reads past s + n. */
static inline esc_pos escape_tail(char *o, const unsigned char *s, size_t n, size_t i,
                                  size_t *replaced)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (i + 8 <= n) {
        uint64_t x, q, b;
        memcpy(&x, s + i, 8);
        memcpy(o, &x, 8);
        q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        /* Each term flags its lowest matching byte exactly (borrows only
         * reach bytes above it), so the lowest flag is the first stop. */
        uint64_t m = (x & high) | ((x - ones * 0x20) & ~x & high) | ((q - ones) & ~q & high) |
                     ((b - ones) & ~b & high);
        if (!m) {
            i += 8, o += 8;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctzll(m) / 8;
        esc_pos p = escape_stop(o + k, s, n, i + k, replaced);
        o = p.o, i = p.i;
    }
#endif
    while (i < n) {
        if (!is_stop(s[i])) {
            *o++ = (char)s[i++];
            continue;
        }
        esc_pos p = escape_stop(o, s, n, i, replaced);
        o = p.o, i = p.i;
    }
    return (esc_pos){o, i};
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "core/json_escape_lut.h"
#include "core/utf8_lookup.h"

/* Bytes of a 16-byte block that stop the copy: below 0x20 or at/above 0x80
 * (one signed compare covers both), '"' and '\\'. */
static inline unsigned stop_mask(__m128i v)
{
    __m128i m = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    return (unsigned)_mm_movemask_epi8(m);
}

/* The stops of the block that are '"' or '\\'. */
static inline unsigned quote_mask(__m128i v)
{
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
}

/* 8 bytes (the low half of v) with a '\\' before each byte of mask8: one
 * shuffle of those bytes with eight backslashes above them (the table's
 * holes are index 8), stored 16 wide; 8 + popcount(mask8) of them count. */
SL_SSSE3 static inline char *spread8(char *o, __m128i v, unsigned mask8)
{
    __m128i shuf = _mm_load_si128((const __m128i *)sl_json_spread[mask8]);
    __m128i src = _mm_unpacklo_epi64(v, _mm_set1_epi8('\\'));
    _mm_storeu_si128((__m128i *)o, _mm_shuffle_epi8(src, shuf));
    return o + 8 + __builtin_popcount(mask8);
}

/* Each block is stored whole before it is looked at: when it holds a stop
 * byte, only the bytes before it count and the rest is rewritten. */
static inline esc_pos escape_sse2(char *o, const unsigned char *s, size_t n, size_t i,
                                  size_t *replaced)
{
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        _mm_storeu_si128((__m128i *)o, v);
        unsigned m = stop_mask(v);
        if (!m) {
            i += 16, o += 16;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(m);
        esc_pos p = escape_stop(o + k, s, n, i + k, replaced);
        o = p.o, i = p.i;
    }
    return (esc_pos){o, i};
}

/* A logged JSON line has a '"' or '\\' every few bytes: where those are a
 * block's only stops, the block is escaped whole by two shuffles, without
 * a branch per stop. Blocks are loaded while 16 bytes are readable (lim),
 * so a short field inside a longer line needs no byte-at-a-time tail; the
 * bytes at and past n are masked out and what was stored for them is
 * overwritten later. */
SL_SSSE3 static inline esc_pos escape_ssse3(char *o, const unsigned char *s, size_t n, size_t lim,
                                            size_t *replaced)
{
    size_t i = 0;
    while (i < n && i + 16 <= lim) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        _mm_storeu_si128((__m128i *)o, v);
        size_t step = n - i >= 16 ? 16 : n - i;
        unsigned valid = step == 16 ? 0xffffu : (1u << step) - 1;
        unsigned m = stop_mask(v) & valid;
        if (!m) {
            i += step, o += step;
            continue;
        }
        if (m == (quote_mask(v) & valid)) {
            char *start = o;
            o = spread8(o, v, m & 0xff);
            spread8(o, _mm_srli_si128(v, 8), m >> 8);
            o = start + step + __builtin_popcount(m);
            i += step;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(m);
        esc_pos p = escape_stop(o + k, s, n, i + k, replaced);
        o = p.o, i = p.i;
    }
    return escape_tail(o, s, n, i, replaced);
}

/* ---- text known to be valid UTF-8 (AVX2) ----
 * The record writer checks its line once (sl_u8_check64, 64 bytes a step)
 * and then escapes the line, and every field slice of it that starts and
 * ends on a character boundary, here: bytes >= 0x80 are plain, so the only
 * stops are '"', '\\' and bytes below 0x20, and a whole 32-byte block of
 * text with quotes goes out in four shuffles. Escaping valid UTF-8 copies
 * its non-ASCII bytes, so the output is the reference escaper's, with no
 * replacement. */
#define SL_AVX2 __attribute__((target("avx2,popcnt,bmi")))

/* A whole 32-byte block whose only stops are '"' and '\\' (qm, not 0):
 * its four 8-byte groups spread by two 256-bit shuffles (groups 0 and 2 in
 * one, 1 and 3 in the other: the in-lane unpacks put each group under
 * eight backslashes, the table's holes index them), each group's output
 * start from a popcount of the mask below it (no chain of additions), four
 * 16-byte stores in order (each one's spare bytes are overwritten by the
 * next). Returns the end of the 32 + popcount(qm) bytes. */
SL_AVX2 static inline char *spread32_avx2(char *o, __m256i v, uint32_t qm)
{
    const __m256i bs = _mm256_set1_epi8('\\');
    __m256i g02 = _mm256_unpacklo_epi64(v, bs), g13 = _mm256_unpackhi_epi64(v, bs);
    __m256i t02 = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128((const __m128i *)sl_json_spread[qm & 0xff])),
        _mm_load_si128((const __m128i *)sl_json_spread[(qm >> 16) & 0xff]), 1);
    __m256i t13 = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128((const __m128i *)sl_json_spread[(qm >> 8) & 0xff])),
        _mm_load_si128((const __m128i *)sl_json_spread[qm >> 24]), 1);
    __m256i r02 = _mm256_shuffle_epi8(g02, t02), r13 = _mm256_shuffle_epi8(g13, t13);
    char *o1 = o + 8 + __builtin_popcount(qm & 0xffu);
    char *o2 = o + 16 + __builtin_popcount(qm & 0xffffu);
    char *o3 = o + 24 + __builtin_popcount(qm & 0xffffffu);
    _mm_storeu_si128((__m128i *)o, _mm256_castsi256_si128(r02));
    _mm_storeu_si128((__m128i *)o1, _mm256_castsi256_si128(r13));
    _mm_storeu_si128((__m128i *)o2, _mm256_extracti128_si256(r02, 1));
    _mm_storeu_si128((__m128i *)o3, _mm256_extracti128_si256(r13, 1));
    return o + 32 + __builtin_popcount(qm);
}

/* Escapes s[0..n), valid UTF-8, into o (room for SL_JSON_ESCAPE_ROOM(n));
 * s[0..lim) may be read (lim >= n). Returns the end of the output. Whole
 * blocks first, with no masking of bytes past n: a block with no stop is
 * stored whole, one whose stops are all '"' or '\\' (most blocks of a
 * logged JSON line) goes through spread32_avx2, one holding a control byte
 * is stored whole and counts up to its first stop, which is escaped alone.
 * Then the last part block, loaded whole where lim allows, else through a
 * padded copy, its bytes at and past n masked out. The spreads of a block
 * write 16 bytes from where each 8-byte group's output starts, only for
 * groups holding input: at most 6 bytes out per byte in plus 16, inside
 * the room. */
SL_AVX2 static __attribute__((noinline, unused)) char *
escape_valid_avx2(char *o, const unsigned char *s, size_t n, size_t lim)
{
    const __m256i quote = _mm256_set1_epi8('"'), bslash = _mm256_set1_epi8('\\'),
                  c1f = _mm256_set1_epi8(0x1f);
    size_t i = 0;
    while (n - i >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        uint32_t qm = (uint32_t)_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bslash)));
        uint32_t cm = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v));
        if (__builtin_expect(!cm, 1)) {
            if (qm) {
                o = spread32_avx2(o, v, qm);
            } else {
                _mm256_storeu_si256((__m256i *)o, v);
                o += 32;
            }
            i += 32;
            continue;
        }
        _mm256_storeu_si256((__m256i *)o, v);
        unsigned k = (unsigned)__builtin_ctz(qm | cm);
        o += k, i += k;
        o = escape_ascii(o, s[i]);
        i++;
    }
    while (i < n) {
        __m256i v;
        if (lim - i >= 32) {
            v = _mm256_loadu_si256((const __m256i *)(s + i));
        } else {
            unsigned char tail[32] __attribute__((aligned(32)));
            _mm256_store_si256((__m256i *)tail, _mm256_setzero_si256());
            memcpy(tail, s + i, n - i);
            v = _mm256_load_si256((const __m256i *)tail);
        }
        size_t step = n - i; /* below 32 */
        uint32_t valid = (1u << step) - 1;
        uint32_t qm = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
                          _mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bslash))) &
                      valid;
        uint32_t cm =
            (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v)) & valid;
        if (!(qm | cm)) {
            _mm256_storeu_si256((__m256i *)o, v);
            i += step, o += step;
            continue;
        }
        if (!cm) { /* the spreads store the block: no store of it first */
            __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
            char *start = o;
            o = spread8(o, lo, qm & 0xff);
            if (step > 8) o = spread8(o, _mm_srli_si128(lo, 8), (qm >> 8) & 0xff);
            if (step > 16) o = spread8(o, hi, (qm >> 16) & 0xff);
            if (step > 24) spread8(o, _mm_srli_si128(hi, 8), qm >> 24);
            o = start + step + __builtin_popcount(qm);
            i += step;
            continue;
        }
        _mm256_storeu_si256((__m256i *)o, v);
        unsigned k = (unsigned)__builtin_ctz(qm | cm);
        o += k, i += k;
        o = escape_ascii(o, s[i]);
        i++;
    }
    return o;
}
/* Where the record writer keeps what escape_line_avx2 learnt of its line:
 * bit j of stops is set when byte j is '"', '\\' or below 0x20, bit j of
 * conts when it is a UTF-8 continuation byte. Lines up to SL_LINE_BITS_MAX
 * bytes; the arrays have a spare word so bit n (and a 64-bit read from any
 * bit below it) stays inside. */
#define SL_LINE_BITS_MAX 8192
typedef struct line_bits {
    uint32_t stops[SL_LINE_BITS_MAX / 32 + 2];
    uint32_t conts[SL_LINE_BITS_MAX / 32 + 2];
} line_bits;

/* Whether no bit of bm is set in [a, a + n). */
static inline bool bits_clear(const uint32_t *bm, size_t a, size_t n)
{
    const unsigned char *b = (const unsigned char *)bm;
    for (;;) {
        uint64_t w;
        memcpy(&w, b + (a >> 3), 8);
        w >>= a & 7;
        if (n <= 56) return !(w & ((1ull << n) - 1));
        if (w & ((1ull << 56) - 1)) return false;
        a += 56, n -= 56;
    }
}

static inline bool bit_set(const uint32_t *bm, size_t j)
{
    return bm[j >> 5] >> (j & 31) & 1;
}

/* The line's escape, one pass: s[0..n) is checked for UTF-8 (the lookup,
 * block by block) while it is escaped as valid text, and each block's stop
 * and continuation bits go to lb when n <= SL_LINE_BITS_MAX (lb may be
 * NULL). Returns the end of the output, or NULL when s is not valid UTF-8:
 * the caller then escapes it again with the exact escaper, over what was
 * written. Blocks sit on a fixed 32-byte grid (the UTF-8 check follows one
 * vector with the next); a block holding a control byte goes a byte at a
 * time. Output bounds as escape_valid_avx2. */
SL_AVX2 static __attribute__((noinline, unused)) char *
escape_line_avx2(char *o, const unsigned char *s, size_t n, line_bits *lb)
{
    const __m256i quote = _mm256_set1_epi8('"'), bslash = _mm256_set1_epi8('\\'),
                  c1f = _mm256_set1_epi8(0x1f), top2 = _mm256_set1_epi8((char)0xC0),
                  cont = _mm256_set1_epi8((char)0x80);
    sl_u8_256 u = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    if (n > SL_LINE_BITS_MAX) lb = NULL;
    size_t i = 0;
    for (; i < n; i += 32) {
        __m256i v;
        size_t step = n - i;
        if (step >= 32) {
            step = 32;
            v = _mm256_loadu_si256((const __m256i *)(s + i));
        } else {
            unsigned char tail[32] __attribute__((aligned(32)));
            _mm256_store_si256((__m256i *)tail, _mm256_setzero_si256());
            memcpy(tail, s + i, step); /* NUL is ASCII and masked out below */
            v = _mm256_load_si256((const __m256i *)tail);
        }
        sl_u8_check256(&u, v, u.prev);
        u.prev = v;
        uint32_t valid = step == 32 ? 0xffffffffu : (1u << step) - 1;
        uint32_t qm = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
                          _mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bslash))) &
                      valid;
        uint32_t cm =
            (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v)) & valid;
        if (lb) {
            lb->stops[i >> 5] = qm | cm;
            lb->conts[i >> 5] =
                (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(v, top2), cont));
        }
        if (!(qm | cm)) {
            _mm256_storeu_si256((__m256i *)o, v);
            o += step;
            continue;
        }
        if (!cm && step == 32) {
            o = spread32_avx2(o, v, qm);
            continue;
        }
        if (!cm) {
            __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
            char *start = o;
            o = spread8(o, lo, qm & 0xff);
            if (step > 8) o = spread8(o, _mm_srli_si128(lo, 8), (qm >> 8) & 0xff);
            if (step > 16) o = spread8(o, hi, (qm >> 16) & 0xff);
            if (step > 24) spread8(o, _mm_srli_si128(hi, 8), qm >> 24);
            o = start + step + __builtin_popcount(qm);
            continue;
        }
        for (size_t j = 0; j < step; j++) {
            unsigned char c = s[i + j];
            if ((qm | cm) >> j & 1)
                o = escape_ascii(o, c);
            else
                *o++ = (char)c;
        }
    }
    if (lb)
        lb->stops[i >> 5] = lb->conts[i >> 5] = 0,
                       lb->stops[(i >> 5) + 1] = lb->conts[(i >> 5) + 1] = 0;
    u.err = _mm256_or_si256(u.err, sl_u8_incomplete256(u.prev));
    return _mm256_testz_si256(u.err, u.err) ? o : NULL;
}

/* escape_valid_avx2 with the common case inline: a key or value of at most
 * 32 bytes, readable as one block, with no stop. */
SL_AVX2 static inline char *escape_valid_short_avx2(char *o, const unsigned char *s, size_t n,
                                                    size_t lim)
{
    if (n <= 32 && lim >= 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)s);
        _mm256_storeu_si256((__m256i *)o, x);
        __m256i q = _mm256_or_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('"')),
                                    _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\\')));
        __m256i c = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x1f)), x);
        uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(q, c));
        if (!(m & (uint32_t)((1ull << n) - 1))) return o + n;
    }
    return escape_valid_avx2(o, s, n, lim);
}
#endif

#endif
