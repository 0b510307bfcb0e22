#include "core/utf8.h"

#include <stdint.h>
#include <string.h>

/* An invalid sequence whose maximal subpart is its first byte: the answer
 * is the subpart's length negated (core/utf8.h), not an error code. */
enum { SUBPART_OF_ONE = -1 };

int sl_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    int len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return SUBPART_OF_ONE; /* continuation byte, overlong 2-byte lead, or not UTF-8 */
    }
    if (n < 2 || p[1] < lo || p[1] > hi) return SUBPART_OF_ONE;
    for (int i = 2; i < len; i++)
        if ((size_t)i >= n || (p[i] & 0xC0) != 0x80) return -i;
    return len;
}

static bool word_is_ascii(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return !(w & 0x8080808080808080ull);
}

/* One sequence at a time, with ASCII skipped a word at a time. */
static size_t valid_prefix_scalar(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (;;) {
        while (i + 8 <= n && word_is_ascii(p + i)) i += 8;
        while (i < n && p[i] < 0x80) i++;
        if (i >= n) return n;
        int k = sl_utf8_seq(p + i, n - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/utf8_lookup.h"
#define HAVE_AVX2_PATH 1

/* Whether all of p is valid UTF-8: the lookup method, 64 bytes a step. */
SL_U8_AVX2 static bool valid_avx2(const unsigned char *p, size_t n)
{
    sl_u8_256 u = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sl_u8_check64(&u, _mm256_loadu_si256((const __m256i *)(p + i)),
                      _mm256_loadu_si256((const __m256i *)(p + i + 32)));
    if (i < n) {
        unsigned char tail[64] = {0}; /* NUL is ASCII: the padding is valid */
        memcpy(tail, p + i, n - i);
        sl_u8_check64(&u, _mm256_loadu_si256((const __m256i *)tail),
                      _mm256_loadu_si256((const __m256i *)(tail + 32)));
    }
    u.err = _mm256_or_si256(u.err, u.incomplete);
    return _mm256_testz_si256(u.err, u.err);
}
#endif

/* Vectors pay from about one block up; below that the scalar loop wins. */
#define VECTOR_MIN 64

size_t sl_utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
#ifdef HAVE_AVX2_PATH
    /* Valid text is the common case: vectors say so, the scalar loop finds
     * where it is not. */
    if (n >= VECTOR_MIN && __builtin_cpu_supports("avx2") && valid_avx2(p, n)) return n;
#endif
    return valid_prefix_scalar(p, n);
}

bool sl_utf8_valid(const char *p, size_t n)
{
    return sl_utf8_valid_prefix(p, n) == n;
}

size_t sl_utf8_sanitize(const char *p, size_t n, char *dst, size_t *replaced)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t o = 0, bad = 0, i = sl_utf8_valid_prefix(p, n);
    memcpy(dst, p, i);
    o = i;
    /* After the first bad byte, one scalar pass: asking the vector check
     * again from each bad byte to the end would be quadratic on garbage. */
    while (i < n) {
        memcpy(dst + o, "\xef\xbf\xbd", 3);
        o += 3;
        i += (size_t)-sl_utf8_seq(u + i, n - i);
        bad++;
        size_t ok = valid_prefix_scalar(u + i, n - i);
        memcpy(dst + o, p + i, ok);
        o += ok;
        i += ok;
    }
    if (replaced) *replaced = bad;
    return o;
}
