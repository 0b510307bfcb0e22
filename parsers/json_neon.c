/* The AArch64 stage-1 kernel (Advanced SIMD, mandatory on AArch64). The
 * in-string prefix-xor uses the portable shift cascade: PMULL belongs to the
 * optional crypto extension. Compiled only on aarch64. */
#include "parsers/json_internal.h"

/* SL_JSON_NEON_SIMDE: build this kernel on any host through SIMDe's NEON
 * emulation (libsimde-dev), so tests can run it off arm64. */
#if (defined(__aarch64__) && SL_JSON_SIMD) || defined(SL_JSON_NEON_SIMDE)

#ifdef SL_JSON_NEON_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/arm/neon.h>
#else
#include <arm_neon.h>
#endif

#include "core/utf8_lookup.h"

static const uint8_t ws_table[16] = {' ', 100,  100,  100, 17,  100,  113, 2,
                                     100, '\t', '\n', 112, 100, '\r', 100, 100};
static const uint8_t op_table[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0};
static const uint8_t bit_table[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};

/* 64 comparison results (0x00/0xFF bytes) to 64 bits. */
static inline uint64_t mask64(uint8x16_t a, uint8x16_t b, uint8x16_t c, uint8x16_t d)
{
    const uint8x16_t bits = vld1q_u8(bit_table);
    uint8x16_t s0 = vpaddq_u8(vandq_u8(a, bits), vandq_u8(b, bits));
    uint8x16_t s1 = vpaddq_u8(vandq_u8(c, bits), vandq_u8(d, bits));
    s0 = vpaddq_u8(s0, s1);
    s0 = vpaddq_u8(s0, s0);
    return vgetq_lane_u64(vreinterpretq_u64_u8(s0), 0);
}

typedef struct {
    uint8x16_t err, prev, incomplete;
} utf8_neon;

static inline void utf8_check(utf8_neon *u, uint8x16_t in, uint8x16_t prev)
{
    const uint8x16_t lo4 = vdupq_n_u8(0x0F);
    uint8x16_t prev1 = vextq_u8(prev, in, 15);
    uint8x16_t prev2 = vextq_u8(prev, in, 14);
    uint8x16_t prev3 = vextq_u8(prev, in, 13);
    uint8x16_t sc = vandq_u8(vandq_u8(vqtbl1q_u8(vld1q_u8(sl_u8_b1_high), vshrq_n_u8(prev1, 4)),
                                      vqtbl1q_u8(vld1q_u8(sl_u8_b1_low), vandq_u8(prev1, lo4))),
                             vqtbl1q_u8(vld1q_u8(sl_u8_b2_high), vshrq_n_u8(in, 4)));
    uint8x16_t third = vqsubq_u8(prev2, vdupq_n_u8(0xE0 - 0x80));
    uint8x16_t fourth = vqsubq_u8(prev3, vdupq_n_u8(0xF0 - 0x80));
    uint8x16_t must23 = vandq_u8(vorrq_u8(third, fourth), vdupq_n_u8(0x80));
    u->err = vorrq_u8(u->err, veorq_u8(must23, sc));
}

static inline uint32_t *block(const uint8_t *b, uint32_t pos, sl_js_carry *s, utf8_neon *u,
                              uint32_t *out)
{
    uint8x16_t v[4], mq[4], mb[4], mw[4], mo[4], mc[4];
    const uint8x16_t ws_t = vld1q_u8(ws_table), op_t = vld1q_u8(op_table);
    const uint8x16_t lo4 = vdupq_n_u8(0x0F), x20 = vdupq_n_u8(0x20), c1f = vdupq_n_u8(0x1F);
    for (int k = 0; k < 4; k++) {
        v[k] = vld1q_u8(b + 16 * k);
        uint8x16_t nib = vandq_u8(v[k], lo4);
        mq[k] = vceqq_u8(v[k], vdupq_n_u8('"'));
        mb[k] = vceqq_u8(v[k], vdupq_n_u8('\\'));
        mw[k] = vceqq_u8(v[k], vqtbl1q_u8(ws_t, nib));
        mo[k] = vceqq_u8(vorrq_u8(v[k], x20), vqtbl1q_u8(op_t, nib));
        mc[k] = vcleq_u8(v[k], c1f);
    }
    uint64_t quote = mask64(mq[0], mq[1], mq[2], mq[3]);
    uint64_t bs = mask64(mb[0], mb[1], mb[2], mb[3]);
    uint64_t ws = mask64(mw[0], mw[1], mw[2], mw[3]);
    uint64_t op = mask64(mo[0], mo[1], mo[2], mo[3]);
    uint64_t ctrl = mask64(mc[0], mc[1], mc[2], mc[3]);

    uint8x16_t any = vorrq_u8(vorrq_u8(v[0], v[1]), vorrq_u8(v[2], v[3]));
    if (vmaxvq_u8(any) >= 0x80) {
        utf8_check(u, v[0], u->prev);
        utf8_check(u, v[1], v[0]);
        utf8_check(u, v[2], v[1]);
        utf8_check(u, v[3], v[2]);
        u->incomplete = vqsubq_u8(v[3], vld1q_u8(sl_u8_incomplete_max + 48));
        u->prev = v[3];
    } else {
        u->err = vorrq_u8(u->err, u->incomplete);
    }

    uint64_t escape;
    uint64_t escaped = sl_js_escapes(bs, &escape, &s->prev_escaped);
    quote &= ~escaped;
    uint64_t in_string = sl_js_prefix_xor_portable(quote) ^ s->prev_in_string;
    s->prev_in_string = (uint64_t)((int64_t)in_string >> 63);
    sl_js_block r = sl_js_finish(b, quote, in_string, escape, escaped, op, ws, ctrl, s);
    uint32_t *first = out;
    for (uint64_t tok = r.tokens; tok; tok &= tok - 1)
        *out++ = pos + (uint32_t)__builtin_ctzll(tok);
    if (r.esc_close | r.u_close) sl_js_apply_flags(first, &r);
    return out;
}

size_t sl_js1_neon(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                   uint32_t *idx)
{
    utf8_neon u = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
    if (base) {
        u.prev = vld1q_u8(s->utf8_prev);
        u.incomplete = vld1q_u8(s->utf8_incomplete);
    }
    sl_js_carry c = s->c;
    uint32_t *out = idx;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) out = block(p + i, base + (uint32_t)i, &c, &u, out);
    if (last) {
        if (i < n) {
            uint8_t pad[64];
            for (size_t k = 0; k < 64; k++) pad[k] = k < n - i ? p[i + k] : ' ';
            out = block(pad, base + (uint32_t)i, &c, &u, out);
        }
        u.err = vorrq_u8(u.err, u.incomplete);
    }
    if (vmaxvq_u8(u.err)) c.err |= SL_JS1_ERR_UTF8;
    s->c = c;
    vst1q_u8(s->utf8_prev, u.prev);
    vst1q_u8(s->utf8_incomplete, u.incomplete);
    return (size_t)(out - idx);
}

#else
typedef int sl_json_neon_unused;
#endif
