/* The Keiser-Lemire lookup method for validating UTF-8 with vectors
 * (three nibble tables per pair of bytes), shared by the UTF-8 validator
 * (core/utf8.c) and the JSON stage-1 kernels. Internal: only SIMD code
 * includes it. */
#ifndef SLUICE_CORE_UTF8_LOOKUP_H
#define SLUICE_CORE_UTF8_LOOKUP_H

#include <stdint.h>

/* Error classes, one bit each; a byte pair is invalid when the three
 * lookups share a bit. */
enum {
    SL_U8_TOO_SHORT = 1 << 0,  /* lead byte not followed by a continuation */
    SL_U8_TOO_LONG = 1 << 1,   /* ASCII followed by a continuation */
    SL_U8_OVERLONG_3 = 1 << 2, /* E0 80..9F */
    SL_U8_TOO_LARGE = 1 << 3,  /* above U+10FFFF */
    SL_U8_SURROGATE = 1 << 4,  /* ED A0..BF */
    SL_U8_OVERLONG_2 = 1 << 5, /* C0..C1 */
    SL_U8_TOO_LARGE_1000 = 1 << 6,
    SL_U8_OVERLONG_4 = 1 << 6, /* F0 80..8F */
    SL_U8_TWO_CONTS = 1 << 7,  /* continuation after a continuation (not expected) */
    SL_U8_CARRY = SL_U8_TOO_SHORT | SL_U8_TOO_LONG | SL_U8_TWO_CONTS,
};

/* By the high nibble of the first byte of a pair. */
static const uint8_t sl_u8_b1_high[16] = {
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TOO_LONG,
    SL_U8_TWO_CONTS,
    SL_U8_TWO_CONTS,
    SL_U8_TWO_CONTS,
    SL_U8_TWO_CONTS,
    SL_U8_TOO_SHORT | SL_U8_OVERLONG_2,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT | SL_U8_OVERLONG_3 | SL_U8_SURROGATE,
    SL_U8_TOO_SHORT | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000 | SL_U8_OVERLONG_4,
};
/* By the low nibble of the first byte. */
static const uint8_t sl_u8_b1_low[16] = {
    SL_U8_CARRY | SL_U8_OVERLONG_3 | SL_U8_OVERLONG_2 | SL_U8_OVERLONG_4,
    SL_U8_CARRY | SL_U8_OVERLONG_2,
    SL_U8_CARRY,
    SL_U8_CARRY,
    SL_U8_CARRY | SL_U8_TOO_LARGE,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000 | SL_U8_SURROGATE,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
    SL_U8_CARRY | SL_U8_TOO_LARGE | SL_U8_TOO_LARGE_1000,
};
/* By the high nibble of the second byte. */
static const uint8_t sl_u8_b2_high[16] = {
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_LONG | SL_U8_OVERLONG_2 | SL_U8_TWO_CONTS | SL_U8_OVERLONG_3 | SL_U8_TOO_LARGE_1000 |
        SL_U8_OVERLONG_4,
    SL_U8_TOO_LONG | SL_U8_OVERLONG_2 | SL_U8_TWO_CONTS | SL_U8_OVERLONG_3 | SL_U8_TOO_LARGE,
    SL_U8_TOO_LONG | SL_U8_OVERLONG_2 | SL_U8_TWO_CONTS | SL_U8_SURROGATE | SL_U8_TOO_LARGE,
    SL_U8_TOO_LONG | SL_U8_OVERLONG_2 | SL_U8_TWO_CONTS | SL_U8_SURROGATE | SL_U8_TOO_LARGE,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
    SL_U8_TOO_SHORT,
};
/* Subtracted (saturating) from the last vector of a block: non-zero where a
 * byte starts a sequence the block does not finish. Vectors of 16, 32 or 64
 * bytes use its last 16, 32 or 64 entries. */
static const uint8_t sl_u8_incomplete_max[64] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,      255,      255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,      255,      255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,      255,      255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0xF0 - 1, 0xE0 - 1, 0xC0 - 1};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define SL_U8_AVX2 __attribute__((target("avx2")))

/* Errors so far, the previous vector, and where it left a sequence open. */
typedef struct {
    __m256i err, prev, incomplete;
} sl_u8_256;

SL_U8_AVX2 static inline __m256i sl_u8_table256(const uint8_t *t)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

SL_U8_AVX2 static inline __m256i sl_u8_nib_hi256(__m256i x)
{
    return _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_set1_epi8(0x0F));
}

/* Checks the 32 bytes in, which follow the 32 bytes prev. */
SL_U8_AVX2 static inline void sl_u8_check256(sl_u8_256 *u, __m256i in, __m256i prev)
{
    const __m256i t1 = sl_u8_table256(sl_u8_b1_high), t2 = sl_u8_table256(sl_u8_b1_low),
                  t3 = sl_u8_table256(sl_u8_b2_high);
    __m256i joined = _mm256_permute2x128_si256(prev, in, 0x21);
    __m256i prev1 = _mm256_alignr_epi8(in, joined, 15);
    __m256i prev2 = _mm256_alignr_epi8(in, joined, 14);
    __m256i prev3 = _mm256_alignr_epi8(in, joined, 13);
    __m256i sc = _mm256_and_si256(
        _mm256_and_si256(_mm256_shuffle_epi8(t1, sl_u8_nib_hi256(prev1)),
                         _mm256_shuffle_epi8(t2, _mm256_and_si256(prev1, _mm256_set1_epi8(0x0F)))),
        _mm256_shuffle_epi8(t3, sl_u8_nib_hi256(in)));
    /* A third or fourth byte of a sequence must be a continuation. */
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    u->err = _mm256_or_si256(u->err, _mm256_xor_si256(must23, sc));
}

SL_U8_AVX2 static inline __m256i sl_u8_incomplete256(__m256i last)
{
    return _mm256_subs_epu8(last, _mm256_loadu_si256((const __m256i *)(sl_u8_incomplete_max + 32)));
}

/* Checks 64 bytes (lo, hi) that follow u->prev. No branch for ASCII blocks:
 * in mixed text (a few non-ASCII bytes per line) it mispredicts so often
 * that checking every block is twice as fast (18 vs 8.5 GB/s here). */
SL_U8_AVX2 static inline void sl_u8_check64(sl_u8_256 *u, __m256i lo, __m256i hi)
{
    sl_u8_check256(u, lo, u->prev);
    sl_u8_check256(u, hi, lo);
    u->incomplete = sl_u8_incomplete256(hi);
    u->prev = hi;
}
#endif

#endif
