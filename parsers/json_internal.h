/* Private to parsers/json*.c: the stage-1 kernel interface and the bit
 * tricks every kernel shares. Only freestanding headers, so the NEON kernel
 * can be syntax-checked on any host. */
#ifndef SLUICE_PARSERS_JSON_INTERNAL_H
#define SLUICE_PARSERS_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SL_JSON_SIMD (0/1) comes from the build (meson option `simd`); builds
 * without the generated header get the SIMD kernels. */
#if defined(__has_include)
#if __has_include("parsers/sl_json_config.h")
#include "parsers/sl_json_config.h"
#endif
#endif
#ifndef SL_JSON_SIMD
#define SL_JSON_SIMD 1
#endif

/* Bytes one stage-1 call classifies at most (a multiple of 64). The token
 * buffer holds one position per byte plus slack for kernels that store
 * eight positions at a time. */
#define SL_JS1_WINDOW 2048
#define SL_JS1_SLACK  64

enum {
    SL_JS1_ERR_CTRL = 1 << 0, /* control character (< 0x20) inside a string */
    SL_JS1_ERR_UTF8 = 1 << 1, /* invalid UTF-8 */
};

/* Carried from one 64-byte block to the next. */
typedef struct sl_js1_state {
    uint64_t prev_escaped;    /* 1: the next block's first byte is escaped */
    uint64_t prev_in_string;  /* all ones while inside a string */
    uint64_t prev_scalar;     /* 1: the last byte was a non-quote scalar byte */
    uint32_t err;             /* SL_JS1_ERR_* seen so far */
    uint32_t utf8_need;       /* scalar UTF-8 checker: continuation bytes owed */
    uint8_t utf8_lo, utf8_hi; /* scalar checker: range of the next continuation */
    /* SIMD UTF-8 checkers: the previous input block and its incomplete tail */
    _Alignas(32) uint8_t utf8_prev[32];
    _Alignas(32) uint8_t utf8_incomplete[32];
} sl_js1_state;

/* Classifies p[0..n) where p is at offset base of the document. n is a
 * multiple of 64 unless last (the final piece, which the kernel pads with
 * spaces in a stack buffer: nothing past p + n is read). Appends the
 * positions of tokens to idx and returns their number. Tokens are:
 * structural characters {}[]:, outside strings, both quotes of every
 * string, escape-introducing backslashes inside strings, and the first byte
 * of every other run of non-whitespace bytes outside strings (scalars, and
 * garbage for stage 2 to reject). Errors accumulate in s->err; a kernel may
 * stop early once one is seen. */
typedef size_t (*sl_js1_fn)(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                            uint32_t *idx);

size_t sl_js1_scalar(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                     uint32_t *idx);
#if defined(__x86_64__) && SL_JSON_SIMD
size_t sl_js1_sse42(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                    uint32_t *idx);
size_t sl_js1_avx2(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                   uint32_t *idx);
bool sl_js1_x86_supported(int kernel);
#endif
#if defined(__aarch64__) && SL_JSON_SIMD
size_t sl_js1_neon(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                   uint32_t *idx);
#endif

#define SL_JS_ODD_BITS 0xAAAAAAAAAAAAAAAAULL

/* From the backslash mask: *escape = backslashes that start an escape,
 * return = bytes that are escaped (preceded by an odd run of backslashes).
 * Runs crossing blocks carry through s->prev_escaped. */
static inline uint64_t sl_js_escapes(uint64_t bs, uint64_t *escape, uint64_t *prev_escaped)
{
    if (!bs) {
        uint64_t escaped = *prev_escaped;
        *prev_escaped = 0;
        *escape = 0;
        return escaped;
    }
    uint64_t potential = bs & ~*prev_escaped;
    /* Subtracting each run's start from the odd bits marks even-aligned
     * runs; xor-ing the odd bits back flips odd-aligned ones, leaving the
     * escape introducers and the bytes they escape. */
    uint64_t maybe_escaped = potential << 1;
    uint64_t codes = ((maybe_escaped | SL_JS_ODD_BITS) - potential) ^ SL_JS_ODD_BITS;
    uint64_t escaped = codes ^ (bs | *prev_escaped);
    *escape = codes & bs;
    *prev_escaped = *escape >> 63;
    return escaped;
}

static inline uint64_t sl_js_prefix_xor_portable(uint64_t x)
{
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

/* The token mask of one block from its character classes; updates the
 * string and scalar carries. inside = in_string result (opening quote and
 * string bytes, not the closing quote). */
static inline uint64_t sl_js_tokens(uint64_t quote, uint64_t in_string, uint64_t escape,
                                    uint64_t op, uint64_t ws, sl_js1_state *s)
{
    uint64_t scalar = ~(op | ws);
    uint64_t nonquote_scalar = scalar & ~quote;
    uint64_t follows = (nonquote_scalar << 1) | s->prev_scalar;
    s->prev_scalar = nonquote_scalar >> 63;
    uint64_t start = scalar & ~follows;
    return ((op | start) & ~in_string) | quote | (escape & in_string);
}

#endif
