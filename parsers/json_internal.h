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
    SL_JS1_ERR_CTRL = 1 << 0,   /* control character (< 0x20) inside a string */
    SL_JS1_ERR_UTF8 = 1 << 1,   /* invalid UTF-8 */
    SL_JS1_ERR_ESCAPE = 1 << 2, /* backslash followed by none of "\/bfnrtu */
};

/* A closing quote's token carries what its string holds in its top bits
 * (documents are shorter than 2^30 bytes). */
#define SL_JS_TOK_ESC  (1u << 31) /* the string has escapes */
#define SL_JS_TOK_UESC (1u << 30) /* ... among them \u escapes stage 2 must check */
#define SL_JS_TOK_POS  ((1u << 30) - 1)

/* Carried from one 64-byte block to the next; kernels keep a local copy
 * (registers) while they run. */
typedef struct sl_js_carry {
    uint64_t prev_escaped;   /* 1: the next block's first byte is escaped */
    uint64_t prev_in_string; /* all ones while inside a string */
    uint64_t prev_scalar;    /* 1: the last byte was a non-quote scalar byte */
    uint64_t carry_noesc;    /* 1: inside a string with no escape so far */
    uint64_t carry_nou;      /* 1: inside a string with no \u escape for stage 2 so far */
    uint32_t err;            /* SL_JS1_ERR_* seen so far */
    /* Whitespace outside strings: in the blocks before the last one
     * classified, and in that one (its padding past the document too,
     * which the caller masks off). A document with none is "tight": the
     * json parser then knows a record's fields are its line (decision
     * 0082), with no work per field. */
    uint64_t ws_before, ws_last;
} sl_js_carry;

typedef struct sl_js1_state {
    sl_js_carry c;
    uint32_t utf8_need;       /* scalar UTF-8 checker: continuation bytes owed */
    uint8_t utf8_lo, utf8_hi; /* scalar checker: range of the next continuation */
    /* SIMD UTF-8 checkers: the previous input block and its incomplete
     * tail. Not initialised by the caller: a kernel starts from zeros when
     * base is 0. */
    _Alignas(64) uint8_t utf8_prev[64];
    _Alignas(64) uint8_t utf8_incomplete[64];
} sl_js1_state;

/* Classifies p[0..n) where p is at offset base of the document (base 0:
 * the first call for a document, whatever the state holds). n is a
 * multiple of 64 unless last (the final piece, which the kernel pads with
 * spaces in a stack buffer: nothing past p + n is read). Appends the
 * positions of tokens to idx and returns their number. Tokens are:
 * structural characters {}[]:, outside strings, both quotes of every
 * string (the closing one flagged SL_JS_TOK_ESC/UESC), and the first byte
 * of every other run of non-whitespace bytes outside strings (scalars, and
 * garbage for stage 2 to reject). Simple escapes are validated here, \u
 * escapes by stage 2. Errors accumulate in s->c.err. */
typedef size_t (*sl_js1_fn)(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                            uint32_t *idx);

size_t sl_js1_scalar(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                     uint32_t *idx);
#if defined(__x86_64__) && SL_JSON_SIMD
size_t sl_js1_sse42(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                    uint32_t *idx);
size_t sl_js1_avx2(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                   uint32_t *idx);
size_t sl_js1_avx512(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                     uint32_t *idx);
bool sl_js1_x86_supported(int kernel);
#endif
#if (defined(__aarch64__) && SL_JSON_SIMD) || defined(SL_JSON_NEON_SIMDE)
size_t sl_js1_neon(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                   uint32_t *idx);
#endif

#define SL_JS_ODD_BITS 0xAAAAAAAAAAAAAAAAULL

/* From the backslash mask: *escape = backslashes that start an escape,
 * return = bytes that are escaped (preceded by an odd run of backslashes).
 * Runs crossing blocks carry through *prev_escaped. */
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

/* What may follow a backslash: 1 a simple escape, 2 'u', 0 nothing. */
static const uint8_t sl_js_esc_class[256] = {
    ['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1, ['f'] = 1,
    ['n'] = 1, ['r'] = 1,  ['t'] = 1, ['u'] = 2,
};

/* Four hex digits as a number, or -1. */
static inline int sl_js_hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d;
        if ((unsigned)(c - '0') < 10)
            d = c - '0';
        else if ((unsigned)((c | 0x20) - 'a') < 6)
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = (v << 4) | d;
    }
    return v;
}

static inline uint64_t sl_js_add_carry(uint64_t a, uint64_t b, uint64_t *carry)
{
    uint64_t r1, r2;
    bool c1 = __builtin_add_overflow(a, b, &r1);
    bool c2 = __builtin_add_overflow(r1, *carry, &r2);
    *carry = c1 | c2;
    return r2;
}

typedef struct sl_js_block {
    uint64_t tokens;
    uint64_t esc_close; /* closing quotes of strings with escapes */
    uint64_t u_close;   /* ... with \u escapes */
} sl_js_block;

/* Everything after the in-string mask, shared by the kernels: escape
 * validation, control characters in strings, the closing-quote flags and
 * the token mask. b is the block's 64 bytes; quote already excludes
 * escaped quotes; in_string covers opening quotes and string bytes, not
 * closing quotes. Always inlined: with the whitespace bits added GCC made
 * it a call per 64-byte block, 3% more instructions for the whole parse
 * (callgrind, decision 0082). */
static inline __attribute__((always_inline)) sl_js_block
sl_js_finish(const uint8_t *b, uint64_t quote, uint64_t in_string, uint64_t escape,
             uint64_t escaped, uint64_t op, uint64_t ws, uint64_t ctrl, sl_js_carry *s)
{
    sl_js_block r;
    if (ctrl & in_string) s->err |= SL_JS1_ERR_CTRL;
    /* Escaped bytes are few: check each (a backslash outside a string is
     * invalid anyway, so any bad escape is an error). */
    uint64_t u = 0;
    for (uint64_t m = escaped; m; m &= m - 1) {
        unsigned k = (unsigned)__builtin_ctzll(m);
        uint8_t cls = sl_js_esc_class[b[k]];
        if (__builtin_expect(cls == 1, 1)) continue;
        if (cls == 0) {
            s->err |= SL_JS1_ERR_ESCAPE;
            continue;
        }
        /* \u: four hex digits inside the block and no surrogate are done
         * here; otherwise stage 2 looks (SL_JS_TOK_UESC). */
        if (k + 4 < 64) {
            int h = sl_js_hex4(b + k + 1);
            if (h < 0) {
                s->err |= SL_JS1_ERR_ESCAPE;
                continue;
            }
            if (h < 0xD800 || h > 0xDFFF) continue;
        }
        u |= 1ULL << k;
    }
    /* Adding each string's opening-quote bit to its run carries through to
     * the closing quote unless an escape byte (removed from the run) stops
     * it: the closing quotes not reached are those of strings with escapes.
     * Runs crossing blocks carry through the add's carry. */
    uint64_t open = quote & in_string, close = quote & ~in_string;
    uint64_t reach = sl_js_add_carry(in_string & ~(escape & in_string), open, &s->carry_noesc);
    r.esc_close = close & ~reach;
    reach = sl_js_add_carry(in_string & ~u, open, &s->carry_nou);
    r.u_close = close & ~reach;

    s->ws_before |= s->ws_last;
    s->ws_last = ws & ~in_string;

    uint64_t scalar = ~(op | ws);
    uint64_t nonquote_scalar = scalar & ~quote;
    uint64_t follows = (nonquote_scalar << 1) | s->prev_scalar;
    s->prev_scalar = nonquote_scalar >> 63;
    uint64_t start = scalar & ~follows;
    r.tokens = ((op | start) & ~in_string) | quote;
    return r;
}

/* Sets the flags of the closing quotes among the positions just stored
 * for tokens (out = where this block's positions start). */
static inline void sl_js_apply_flags(uint32_t *out, const sl_js_block *r)
{
    for (uint64_t m = r->esc_close | r->u_close; m; m &= m - 1) {
        uint64_t bit = m & -m;
        uint32_t at = (uint32_t)__builtin_popcountll(r->tokens & (bit - 1));
        out[at] |= SL_JS_TOK_ESC | ((r->u_close & bit) ? SL_JS_TOK_UESC : 0);
    }
}

#endif
