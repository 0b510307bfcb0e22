/* The portable stage-1 kernel: classifies eight bytes at a time with
 * SWAR arithmetic on 64-bit words. Always built; the reference the SIMD
 * kernels are tested against, and the fallback on any CPU. */
#include <string.h>

#include "parsers/json_internal.h"

#define ONES 0x0101010101010101ULL
#define HIGH 0x8080808080808080ULL
#define LOW7 0x7F7F7F7F7F7F7F7FULL

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* High bit of each byte set exactly where that byte of t is zero (no
 * borrow between bytes, unlike the shorter haszero trick). */
static inline uint64_t zero_bytes(uint64_t t)
{
    return ~(((t & LOW7) + LOW7) | t | LOW7);
}

static inline uint64_t eq_bytes(uint64_t x, uint8_t c)
{
    return zero_bytes(x ^ (ONES * c));
}

/* High bit where the byte is < 0x20. */
static inline uint64_t ctrl_bytes(uint64_t x)
{
    return ~(((x & LOW7) + 0x6060606060606060ULL) | x) & HIGH;
}

/* One bit per byte from the byte high bits. */
static inline uint64_t gather8(uint64_t m)
{
    return ((m >> 7) * 0x0102040810204080ULL) >> 56;
}

/* Byte-at-a-time UTF-8 check (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), resumable across blocks. */
static void utf8_bytes(const uint8_t *b, size_t n, sl_js1_state *s, sl_js_carry *cy)
{
    uint32_t need = s->utf8_need;
    uint8_t lo = s->utf8_lo, hi = s->utf8_hi;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (need) {
            if (c < lo || c > hi) {
                cy->err |= SL_JS1_ERR_UTF8;
                return;
            }
            lo = 0x80;
            hi = 0xBF;
            need--;
            continue;
        }
        if (c < 0x80) continue;
        lo = 0x80;
        hi = 0xBF;
        if (c < 0xC2) {
            cy->err |= SL_JS1_ERR_UTF8;
            return;
        } else if (c < 0xE0) {
            need = 1;
        } else if (c < 0xF0) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c < 0xF5) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            cy->err |= SL_JS1_ERR_UTF8;
            return;
        }
    }
    s->utf8_need = need;
    s->utf8_lo = lo;
    s->utf8_hi = hi;
}

static uint32_t *block(const uint8_t *b, uint32_t pos, sl_js1_state *s, sl_js_carry *c,
                       uint32_t *out)
{
    uint64_t quote = 0, bs = 0, op = 0, ws = 0, ctrl = 0, high = 0;
    for (unsigned w = 0; w < 8; w++) {
        uint64_t x = load64(b + 8 * w);
        uint64_t lower = x | (ONES * 0x20); /* '[' -> '{', ']' -> '}' */
        unsigned sh = 8 * w;
        quote |= gather8(eq_bytes(x, '"')) << sh;
        bs |= gather8(eq_bytes(x, '\\')) << sh;
        op |= gather8(eq_bytes(x, ':') | eq_bytes(x, ',') | eq_bytes(lower, '{') |
                      eq_bytes(lower, '}'))
              << sh;
        ws |= gather8(eq_bytes(x, ' ') | eq_bytes(x, '\t') | eq_bytes(x, '\n') | eq_bytes(x, '\r'))
              << sh;
        ctrl |= gather8(ctrl_bytes(x)) << sh;
        high |= x & HIGH;
    }
    if (high || s->utf8_need) utf8_bytes(b, 64, s, c);

    uint64_t escape;
    uint64_t escaped = sl_js_escapes(bs, &escape, &c->prev_escaped);
    quote &= ~escaped;
    uint64_t in_string = sl_js_prefix_xor_portable(quote) ^ c->prev_in_string;
    c->prev_in_string = (uint64_t)((int64_t)in_string >> 63);

    sl_js_block r = sl_js_finish(b, quote, in_string, escape, escaped, op, ws, ctrl, c);
    uint32_t *first = out;
    for (uint64_t tok = r.tokens; tok; tok &= tok - 1)
        *out++ = pos + (uint32_t)__builtin_ctzll(tok);
    if (r.esc_close | r.u_close) sl_js_apply_flags(first, &r);
    return out;
}

size_t sl_js1_scalar(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                     uint32_t *idx)
{
    sl_js_carry c = s->c;
    uint32_t *out = idx;
    size_t i = 0;
    for (; i + 64 <= n && !c.err; i += 64) out = block(p + i, base + (uint32_t)i, s, &c, out);
    if (last && !c.err) {
        if (i < n) {
            uint8_t pad[64];
            memset(pad, ' ', sizeof pad);
            memcpy(pad, p + i, n - i);
            out = block(pad, base + (uint32_t)i, s, &c, out);
        }
        if (s->utf8_need) c.err |= SL_JS1_ERR_UTF8;
    }
    s->c = c;
    return (size_t)(out - idx);
}
