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

/* 8 bytes (the low half of v) with a '\\' before each byte of mask8:
 * stored 16 wide, 8 + popcount(mask8) of them count. */
SL_SSSE3 static inline char *spread8(char *o, __m128i v, unsigned mask8)
{
    __m128i shuf = _mm_load_si128((const __m128i *)sl_json_spread[mask8]);
    __m128i holes = _mm_cmpeq_epi8(shuf, _mm_set1_epi8((char)0x80));
    __m128i out =
        _mm_or_si128(_mm_shuffle_epi8(v, shuf), _mm_and_si128(holes, _mm_set1_epi8('\\')));
    _mm_storeu_si128((__m128i *)o, out);
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
#endif

#endif
