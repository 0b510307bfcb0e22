/* The x86-64 stage-1 kernels, AVX2 and SSE4.2 (both with PCLMULQDQ for the
 * in-string prefix-xor). Each function carries its own target attribute,
 * so the file builds without -mavx2 and the kernels only run after
 * sl_js1_x86_supported() said yes. UTF-8 is validated with the
 * Keiser-Lemire lookup method (three nibble tables per byte pair, in
 * core/utf8_lookup.h with the AVX2 step, shared with core/utf8.c). */
#include "parsers/json_internal.h"

#if defined(__x86_64__) && SL_JSON_SIMD

#include <immintrin.h>
#include <string.h>

#include "core/utf8_lookup.h"
#include "parsers/json.h"

#define AVX2   __attribute__((target("avx2,bmi,pclmul,popcnt")))
#define SSE42  __attribute__((target("sse4.2,pclmul,popcnt")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi2,avx2,bmi,pclmul,popcnt")))
/* The per-block functions must inline into their loops (state in registers). */
#define INLINE inline __attribute__((always_inline))

bool sl_js1_x86_supported(int kernel)
{
    /* __builtin_cpu_init() is only needed before constructors have run. */
    bool base = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("popcnt");
    if (kernel == SL_JSON_AVX2)
        return base && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi");
    if (kernel == SL_JSON_SSE42) return base && __builtin_cpu_supports("sse4.2");
    if (kernel == SL_JSON_AVX512)
        return base && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi");
    return false;
}

/* Whitespace by low nibble (entries that cannot match elsewhere), and the
 * structural characters by low nibble after or-ing 0x20 ('[' -> '{'). */
#define WS_TABLE ' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t', '\n', 112, 100, '\r', 100, 100
#define OP_TABLE 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0

static const uint8_t ws_t16[16] = {WS_TABLE};
static const uint8_t op_t16[16] = {OP_TABLE};
static const uint8_t iota64[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                   32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                                   48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/* ---------------------------------------------------------------- AVX2 */

AVX2 static inline __m256i table256(const uint8_t *t)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

AVX2 static inline uint64_t mask256(__m256i lo, __m256i hi)
{
    return (uint32_t)_mm256_movemask_epi8(lo) |
           ((uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32);
}

#define FLAT_STEP(k)                                                                               \
    out[k] = base + (uint32_t)_tzcnt_u64(bits);                                                    \
    bits = _blsr_u64(bits)
#define FLAT_STEP8(k)                                                                              \
    FLAT_STEP(k);                                                                                  \
    FLAT_STEP(k + 1);                                                                              \
    FLAT_STEP(k + 2);                                                                              \
    FLAT_STEP(k + 3);                                                                              \
    FLAT_STEP(k + 4);                                                                              \
    FLAT_STEP(k + 5);                                                                              \
    FLAT_STEP(k + 6);                                                                              \
    FLAT_STEP(k + 7)

AVX2 static INLINE uint32_t *flatten_bmi(uint32_t *out, uint32_t base, uint64_t bits)
{
    int cnt = __builtin_popcountll(bits);
    /* Eight at a time without a data-dependent loop; stores past cnt land
     * in the buffer's slack and are overwritten (tzcnt(0) is 64). */
    FLAT_STEP8(0);
    if (__builtin_expect(cnt > 8, 0)) {
        FLAT_STEP8(8);
        if (cnt > 16) {
            for (int i = 16; bits; i++) {
                FLAT_STEP(i);
            }
        }
    }
    return out + cnt;
}

AVX2 static INLINE uint32_t *block256(const uint8_t *b, uint32_t pos, sl_js_carry *s, sl_u8_256 *u,
                                      uint32_t *out)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)b);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(b + 32));
    const __m256i ws_t = table256(ws_t16), op_t = table256(op_t16);
    const __m256i x20 = _mm256_set1_epi8(0x20), c1f = _mm256_set1_epi8(0x1F);
    const __m256i q = _mm256_set1_epi8('"'), bsl = _mm256_set1_epi8('\\');

    uint64_t bs = mask256(_mm256_cmpeq_epi8(lo, bsl), _mm256_cmpeq_epi8(hi, bsl));
    uint64_t quote = mask256(_mm256_cmpeq_epi8(lo, q), _mm256_cmpeq_epi8(hi, q));
    uint64_t ws = mask256(_mm256_cmpeq_epi8(lo, _mm256_shuffle_epi8(ws_t, lo)),
                          _mm256_cmpeq_epi8(hi, _mm256_shuffle_epi8(ws_t, hi)));
    uint64_t op =
        mask256(_mm256_cmpeq_epi8(_mm256_or_si256(lo, x20), _mm256_shuffle_epi8(op_t, lo)),
                _mm256_cmpeq_epi8(_mm256_or_si256(hi, x20), _mm256_shuffle_epi8(op_t, hi)));
    uint64_t ctrl = mask256(_mm256_cmpeq_epi8(_mm256_min_epu8(lo, c1f), lo),
                            _mm256_cmpeq_epi8(_mm256_min_epu8(hi, c1f), hi));

    sl_u8_check256(u, lo, u->prev);
    sl_u8_check256(u, hi, lo);
    u->incomplete = sl_u8_incomplete256(hi);
    u->prev = hi;

    uint64_t escape;
    uint64_t escaped = sl_js_escapes(bs, &escape, &s->prev_escaped);
    quote &= ~escaped;
    uint64_t in_string = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
                             _mm_set_epi64x(0, (long long)quote), _mm_set1_epi8((char)0xFF), 0)) ^
                         s->prev_in_string;
    s->prev_in_string = (uint64_t)((int64_t)in_string >> 63);
    sl_js_block r = sl_js_finish(b, quote, in_string, escape, escaped, op, ws, ctrl, s);
    uint32_t *next = flatten_bmi(out, pos, r.tokens);
    if (r.esc_close | r.u_close) sl_js_apply_flags(out, &r);
    return next;
}

AVX2 size_t sl_js1_avx2(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                        uint32_t *idx)
{
    sl_u8_256 u = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    if (base) {
        u.prev = _mm256_load_si256((const __m256i *)s->utf8_prev);
        u.incomplete = _mm256_load_si256((const __m256i *)s->utf8_incomplete);
    }
    sl_js_carry c = s->c;
    uint32_t *out = idx;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) out = block256(p + i, base + (uint32_t)i, &c, &u, out);
    if (last) {
        if (i < n) {
            _Alignas(32) uint8_t pad[64];
            memset(pad, ' ', sizeof pad);
            memcpy(pad, p + i, n - i);
            out = block256(pad, base + (uint32_t)i, &c, &u, out);
        }
        u.err = _mm256_or_si256(u.err, u.incomplete);
    }
    if (!_mm256_testz_si256(u.err, u.err)) c.err |= SL_JS1_ERR_UTF8;
    s->c = c;
    _mm256_store_si256((__m256i *)s->utf8_prev, u.prev);
    _mm256_store_si256((__m256i *)s->utf8_incomplete, u.incomplete);
    return (size_t)(out - idx);
}

/* -------------------------------------------------------------- SSE4.2 */

typedef struct {
    __m128i err, prev, incomplete;
} utf8_128;

SSE42 static inline __m128i nib_hi128(__m128i x)
{
    return _mm_and_si128(_mm_srli_epi16(x, 4), _mm_set1_epi8(0x0F));
}

SSE42 static inline void utf8_check128(utf8_128 *u, __m128i in, __m128i prev)
{
    const __m128i t1 = _mm_loadu_si128((const __m128i *)sl_u8_b1_high);
    const __m128i t2 = _mm_loadu_si128((const __m128i *)sl_u8_b1_low);
    const __m128i t3 = _mm_loadu_si128((const __m128i *)sl_u8_b2_high);
    __m128i prev1 = _mm_alignr_epi8(in, prev, 15);
    __m128i prev2 = _mm_alignr_epi8(in, prev, 14);
    __m128i prev3 = _mm_alignr_epi8(in, prev, 13);
    __m128i sc = _mm_and_si128(
        _mm_and_si128(_mm_shuffle_epi8(t1, nib_hi128(prev1)),
                      _mm_shuffle_epi8(t2, _mm_and_si128(prev1, _mm_set1_epi8(0x0F)))),
        _mm_shuffle_epi8(t3, nib_hi128(in)));
    __m128i third = _mm_subs_epu8(prev2, _mm_set1_epi8((char)(0xE0 - 0x80)));
    __m128i fourth = _mm_subs_epu8(prev3, _mm_set1_epi8((char)(0xF0 - 0x80)));
    __m128i must23 = _mm_and_si128(_mm_or_si128(third, fourth), _mm_set1_epi8((char)0x80));
    u->err = _mm_or_si128(u->err, _mm_xor_si128(must23, sc));
}

SSE42 static inline uint64_t mask128(__m128i a, __m128i b, __m128i c, __m128i d)
{
    return (uint64_t)(uint16_t)_mm_movemask_epi8(a) |
           ((uint64_t)(uint16_t)_mm_movemask_epi8(b) << 16) |
           ((uint64_t)(uint16_t)_mm_movemask_epi8(c) << 32) |
           ((uint64_t)(uint16_t)_mm_movemask_epi8(d) << 48);
}

SSE42 static INLINE uint32_t *block128(const uint8_t *b, uint32_t pos, sl_js_carry *s, utf8_128 *u,
                                       uint32_t *out)
{
    __m128i v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm_loadu_si128((const __m128i *)(b + 16 * k));
    const __m128i ws_t = _mm_loadu_si128((const __m128i *)ws_t16);
    const __m128i op_t = _mm_loadu_si128((const __m128i *)op_t16);
    const __m128i x20 = _mm_set1_epi8(0x20), c1f = _mm_set1_epi8(0x1F);
    const __m128i q = _mm_set1_epi8('"'), bsl = _mm_set1_epi8('\\');
    __m128i mq[4], mb[4], mw[4], mo[4], mc[4];
    for (int k = 0; k < 4; k++) {
        mq[k] = _mm_cmpeq_epi8(v[k], q);
        mb[k] = _mm_cmpeq_epi8(v[k], bsl);
        mw[k] = _mm_cmpeq_epi8(v[k], _mm_shuffle_epi8(ws_t, v[k]));
        mo[k] = _mm_cmpeq_epi8(_mm_or_si128(v[k], x20), _mm_shuffle_epi8(op_t, v[k]));
        mc[k] = _mm_cmpeq_epi8(_mm_min_epu8(v[k], c1f), v[k]);
    }
    uint64_t quote = mask128(mq[0], mq[1], mq[2], mq[3]);
    uint64_t bs = mask128(mb[0], mb[1], mb[2], mb[3]);
    uint64_t ws = mask128(mw[0], mw[1], mw[2], mw[3]);
    uint64_t op = mask128(mo[0], mo[1], mo[2], mo[3]);
    uint64_t ctrl = mask128(mc[0], mc[1], mc[2], mc[3]);

    __m128i any = _mm_or_si128(_mm_or_si128(v[0], v[1]), _mm_or_si128(v[2], v[3]));
    if (_mm_movemask_epi8(any)) {
        utf8_check128(u, v[0], u->prev);
        utf8_check128(u, v[1], v[0]);
        utf8_check128(u, v[2], v[1]);
        utf8_check128(u, v[3], v[2]);
        u->incomplete =
            _mm_subs_epu8(v[3], _mm_loadu_si128((const __m128i *)(sl_u8_incomplete_max + 48)));
        u->prev = v[3];
    } else {
        u->err = _mm_or_si128(u->err, u->incomplete);
    }

    uint64_t escape;
    uint64_t escaped = sl_js_escapes(bs, &escape, &s->prev_escaped);
    quote &= ~escaped;
    uint64_t in_string = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
                             _mm_set_epi64x(0, (long long)quote), _mm_set1_epi8((char)0xFF), 0)) ^
                         s->prev_in_string;
    s->prev_in_string = (uint64_t)((int64_t)in_string >> 63);
    sl_js_block r = sl_js_finish(b, quote, in_string, escape, escaped, op, ws, ctrl, s);
    uint32_t *first = out;
    for (uint64_t tok = r.tokens; tok; tok &= tok - 1)
        *out++ = pos + (uint32_t)__builtin_ctzll(tok);
    if (r.esc_close | r.u_close) sl_js_apply_flags(first, &r);
    return out;
}

SSE42 size_t sl_js1_sse42(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                          uint32_t *idx)
{
    utf8_128 u = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    if (base) {
        u.prev = _mm_load_si128((const __m128i *)s->utf8_prev);
        u.incomplete = _mm_load_si128((const __m128i *)s->utf8_incomplete);
    }
    sl_js_carry c = s->c;
    uint32_t *out = idx;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) out = block128(p + i, base + (uint32_t)i, &c, &u, out);
    if (last) {
        if (i < n) {
            _Alignas(16) uint8_t pad[64];
            memset(pad, ' ', sizeof pad);
            memcpy(pad, p + i, n - i);
            out = block128(pad, base + (uint32_t)i, &c, &u, out);
        }
        u.err = _mm_or_si128(u.err, u.incomplete);
    }
    if (!_mm_testz_si128(u.err, u.err)) c.err |= SL_JS1_ERR_UTF8;
    s->c = c;
    _mm_store_si128((__m128i *)s->utf8_prev, u.prev);
    _mm_store_si128((__m128i *)s->utf8_incomplete, u.incomplete);
    return (size_t)(out - idx);
}

/* -------------------------------------------------------------- AVX-512 */

/* The kernel's constant vectors, made once per call and pinned in
 * registers (compilers otherwise rebuild broadcasts in the loop). */
typedef struct {
    __m512i ws_t, op_t, t1, t2, t3, bsl, quo, x20, c1f, x0f, x60, x70, x80, incmax, iota;
} k512;

typedef struct {
    __m512i err, prev, incomplete;
} utf8_512;

AVX512 static INLINE __m512i table512(const uint8_t *t)
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)t));
}

#define PIN(x) __asm__("" : "+v"(x))

AVX512 static INLINE void utf8_check512(const k512 *k, utf8_512 *u, __m512i in)
{
    /* Lanes [prev.3, in.0, in.1, in.2]: what precedes each 16-byte lane. */
    __m512i joined = _mm512_alignr_epi64(in, u->prev, 6);
    __m512i prev1 = _mm512_alignr_epi8(in, joined, 15);
    __m512i prev2 = _mm512_alignr_epi8(in, joined, 14);
    __m512i prev3 = _mm512_alignr_epi8(in, joined, 13);
    __m512i sc = _mm512_and_si512(
        _mm512_and_si512(
            _mm512_shuffle_epi8(k->t1, _mm512_and_si512(_mm512_srli_epi16(prev1, 4), k->x0f)),
            _mm512_shuffle_epi8(k->t2, _mm512_and_si512(prev1, k->x0f))),
        _mm512_shuffle_epi8(k->t3, _mm512_and_si512(_mm512_srli_epi16(in, 4), k->x0f)));
    __m512i third = _mm512_subs_epu8(prev2, k->x60);
    __m512i fourth = _mm512_subs_epu8(prev3, k->x70);
    __m512i must23 = _mm512_and_si512(_mm512_or_si512(third, fourth), k->x80);
    u->err = _mm512_or_si512(u->err, _mm512_xor_si512(must23, sc));
    u->incomplete = _mm512_subs_epu8(in, k->incmax);
    u->prev = in;
}

/* Token positions by compressing a vector of byte offsets (VBMI2), sixteen
 * widened at a time; stores past cnt land in the buffer's slack. */
AVX512 static INLINE uint32_t *flatten512(const k512 *k, uint32_t *out, uint32_t base,
                                          uint64_t bits)
{
    if (!bits) return out;
    int cnt = __builtin_popcountll(bits);
    __m512i pos = _mm512_maskz_compress_epi8(bits, k->iota);
    __m512i b = _mm512_set1_epi32((int)base);
    _mm512_storeu_si512(out,
                        _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(pos))));
    if (cnt > 16) {
        _mm512_storeu_si512(
            out + 16, _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 1))));
        if (cnt > 32) {
            _mm512_storeu_si512(
                out + 32,
                _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 2))));
            _mm512_storeu_si512(
                out + 48,
                _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 3))));
        }
    }
    return out + cnt;
}

AVX512 static INLINE uint32_t *block512(const k512 *k, const uint8_t *b, uint32_t pos,
                                        sl_js_carry *s, utf8_512 *u, uint32_t *out)
{
    __m512i v = _mm512_loadu_si512((const void *)b);
    uint64_t bs = _mm512_cmpeq_epi8_mask(v, k->bsl);
    uint64_t quote = _mm512_cmpeq_epi8_mask(v, k->quo);
    uint64_t ws = _mm512_cmpeq_epi8_mask(v, _mm512_shuffle_epi8(k->ws_t, v));
    uint64_t op =
        _mm512_cmpeq_epi8_mask(_mm512_or_si512(v, k->x20), _mm512_shuffle_epi8(k->op_t, v));
    uint64_t ctrl = _mm512_cmple_epu8_mask(v, k->c1f);

    utf8_check512(k, u, v);

    uint64_t escape;
    uint64_t escaped = sl_js_escapes(bs, &escape, &s->prev_escaped);
    quote &= ~escaped;
    uint64_t in_string = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
                             _mm_set_epi64x(0, (long long)quote), _mm_set1_epi8((char)0xFF), 0)) ^
                         s->prev_in_string;
    s->prev_in_string = (uint64_t)((int64_t)in_string >> 63);
    sl_js_block r = sl_js_finish(b, quote, in_string, escape, escaped, op, ws, ctrl, s);
    uint32_t *next = flatten512(k, out, pos, r.tokens);
    if (r.esc_close | r.u_close) sl_js_apply_flags(out, &r);
    return next;
}

AVX512 size_t sl_js1_avx512(const uint8_t *p, size_t n, uint32_t base, bool last, sl_js1_state *s,
                            uint32_t *idx)
{
    k512 k = {
        table512(ws_t16),
        table512(op_t16),
        table512(sl_u8_b1_high),
        table512(sl_u8_b1_low),
        table512(sl_u8_b2_high),
        _mm512_set1_epi8('\\'),
        _mm512_set1_epi8('"'),
        _mm512_set1_epi8(0x20),
        _mm512_set1_epi8(0x1F),
        _mm512_set1_epi8(0x0F),
        _mm512_set1_epi8((char)(0xE0 - 0x80)),
        _mm512_set1_epi8((char)(0xF0 - 0x80)),
        _mm512_set1_epi8((char)0x80),
        _mm512_loadu_si512((const void *)sl_u8_incomplete_max),
        _mm512_loadu_si512((const void *)iota64),
    };
    PIN(k.ws_t);
    PIN(k.op_t);
    PIN(k.t1);
    PIN(k.t2);
    PIN(k.t3);
    PIN(k.bsl);
    PIN(k.quo);
    PIN(k.x20);
    PIN(k.c1f);
    PIN(k.x0f);
    PIN(k.x60);
    PIN(k.x70);
    PIN(k.x80);
    PIN(k.incmax);
    PIN(k.iota);
    utf8_512 u = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    if (base) {
        u.prev = _mm512_load_si512((const void *)s->utf8_prev);
        u.incomplete = _mm512_load_si512((const void *)s->utf8_incomplete);
    }
    sl_js_carry c = s->c;
    uint32_t *out = idx;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) out = block512(&k, p + i, base + (uint32_t)i, &c, &u, out);
    if (last) {
        if (i < n) {
            /* The tail through a masked load: nothing past p + n is read. */
            __mmask64 m = (n - i) == 64 ? ~0ULL : (1ULL << (n - i)) - 1;
            _Alignas(64) uint8_t pad[64];
            _mm512_store_si512((void *)pad,
                               _mm512_mask_loadu_epi8(_mm512_set1_epi8(' '), m, p + i));
            out = block512(&k, pad, base + (uint32_t)i, &c, &u, out);
        }
        u.err = _mm512_or_si512(u.err, u.incomplete);
    }
    if (_mm512_test_epi8_mask(u.err, u.err)) c.err |= SL_JS1_ERR_UTF8;
    s->c = c;
    _mm512_store_si512((void *)s->utf8_prev, u.prev);
    _mm512_store_si512((void *)s->utf8_incomplete, u.incomplete);
    return (size_t)(out - idx);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int sl_json_x86_unused;
#endif
