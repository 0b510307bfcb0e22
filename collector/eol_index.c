/* Line ends for the file input (collector/eol_index.h). */
#include "collector/eol_index.h"

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

/* The end of the line starting at p (its '\n', or NULL when it has none
 * before end); *suspect is set when a NUL byte comes first, and, for
 * eol_utf8_scalar, when the line is not valid UTF-8 (check_text in
 * collector/file_read.c then says
 * which). The portable scan: memchr for the newline, then for a NUL before
 * it (as `wc -l` is bound by memchr). With AVX2 the newline index
 * (index_window) is used instead and looks at each byte once, NULs and
 * UTF-8 in the same pass. */
static const char *eol_scalar(const char *p, const char *end, bool *suspect)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (memchr(p, 0, (size_t)((nl ? nl : end) - p))) *suspect = true;
    return nl;
}

static const char *eol_utf8_scalar(const char *p, const char *end, bool *suspect)
{
    const char *nl = eol_scalar(p, end, suspect);
    if (!sl_utf8_valid(p, (size_t)((nl ? nl : end) - p))) *suspect = true;
    return nl;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/utf8_lookup.h"

/* Most log text is ASCII: a block of it only has to close what the block
 * before left open. In text with a few non-ASCII bytes per line the branch
 * mispredicts, but costs no more than the check it skips (bench_lines). */
__attribute__((target("avx2"))) static inline void check_or_skip_ascii(sl_u8_256 *u, __m256i a,
                                                                       __m256i b)
{
    if (_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
        sl_u8_check64(u, a, b);
    } else {
        u->err = _mm256_or_si256(u->err, u->incomplete);
        u->incomplete = _mm256_setzero_si256();
        u->prev = b;
    }
}

#endif

/* $SLUICE_SIMD=scalar (as for the JSON kernels) forces the portable scan,
 * so tests cover it on any CPU. */
sl_eol_fn sl_eol_pick(bool validate_utf8)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *simd = getenv("SLUICE_SIMD");
    bool forced_scalar = simd && strcmp(simd, "scalar") == 0;
    if (!forced_scalar && __builtin_cpu_supports("avx2")) return NULL;
#endif

    return validate_utf8 ? eol_utf8_scalar : eol_scalar;
}

/* Newlines found a window at a time. Short lines (access logs: ~150 bytes)
 * made the per-line scan restart and mispredict its exit once per line, and
 * it cost as much as copying the data in; here each 64-byte block is looked
 * at once, and finding the next line is a cursor step. NULs, and with
 * validate_utf8 invalid UTF-8 (the lookup method, state carried from one
 * window to the next), are noted per window: the lines of a window with
 * either are checked exactly (check_text), so a false alarm costs time,
 * never a count. The array is bounded by the window (16 KiB -> 32 KiB). */
void sl_eol_index_reset(sl_eol_index *x, const char *data, size_t len)
{
    x->data = data;
    x->len = len;
    x->wbeg = x->wend = 0;
    x->n = x->i = 0;
    x->wnul = x->wbad = x->carry = false;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,bmi,popcnt"))) static void index_window(sl_eol_index *x, size_t from)
{
    const char *p = x->data + from;
    size_t n = x->len - from < SL_EOL_WINDOW ? x->len - from : SL_EOL_WINDOW;
    const __m256i nl = _mm256_set1_epi8('\n'), zero = _mm256_setzero_si256();
    __m256i nul = zero;
    /* A window that does not follow the last one starts at a line (the
     * byte before is '\n', ASCII) or at a cut, which check_text excuses. */
    bool follows = x->carry && from == x->wend;
    sl_u8_256 u = {zero, follows ? _mm256_loadu_si256((const __m256i *)x->carry_prev) : zero,
                   follows ? _mm256_loadu_si256((const __m256i *)x->carry_open) : zero};
    uint32_t cnt = 0;
    size_t off = 0;
    for (; off < n; off += 64) {
        __m256i a, b;
        if (n - off >= 64) {
            a = _mm256_loadu_si256((const __m256i *)(p + off));
            b = _mm256_loadu_si256((const __m256i *)(p + off + 32));
        } else {
            /* The last bytes, padded with neither '\n' nor NUL (and ASCII). */
            _Alignas(32) char tail[64];
            memset(tail, ' ', sizeof tail);
            memcpy(tail, p + off, n - off);
            a = _mm256_load_si256((const __m256i *)tail);
            b = _mm256_load_si256((const __m256i *)(tail + 32));
        }
        nul = _mm256_or_si256(
            nul, _mm256_or_si256(_mm256_cmpeq_epi8(a, zero), _mm256_cmpeq_epi8(b, zero)));
        if (x->validate) check_or_skip_ascii(&u, a, b);
        uint64_t bits = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, nl)) |
                        (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, nl)) << 32;
        /* One store whatever the count: a block holds at most one newline
         * in most text, and branching on "any?" mispredicts on short lines.
         * The store lands in the slack when there is none (tzcnt(0) = 64). */
        uint32_t c = (uint32_t)__builtin_popcountll(bits);
        x->at[cnt] = (uint16_t)(off + (size_t)_tzcnt_u64(bits));
        if (c > 1) {
            for (uint32_t k = 1; k < c; k++) {
                bits = _blsr_u64(bits);
                x->at[cnt + k] = (uint16_t)(off + (size_t)_tzcnt_u64(bits));
            }
        }
        cnt += c;
    }
    x->wbeg = from;
    x->wend = from + n;
    x->n = cnt;
    x->i = 0;
    x->wnul = !_mm256_testz_si256(nul, nul);
    x->wbad = false;
    if (x->validate) {
        /* A sequence left open at the end of the bytes is a cut: flagged
         * here, judged by check_text if the line is emitted now. */
        if (x->wend == x->len) u.err = _mm256_or_si256(u.err, u.incomplete);
        x->wbad = !_mm256_testz_si256(u.err, u.err);
        _mm256_storeu_si256((__m256i *)x->carry_prev, u.prev);
        _mm256_storeu_si256((__m256i *)x->carry_open, u.incomplete);
        x->carry = true;
    }
}

#else
static void index_window(sl_eol_index *x, size_t from)
{
    (void)x, (void)from; /* only built where the AVX2 scan is */
}

#endif

/* The next newline at or after pos, or NULL when there is none before len;
 * *suspect when a window the line touches holds a NUL or is not UTF-8. */
const char *sl_eol_index_find(sl_eol_index *x, size_t pos, bool *suspect)
{
    size_t from = pos;
    for (;;) {
        if (from < x->wbeg || from >= x->wend) {
            if (from >= x->len) return NULL;
            index_window(x, from);
        }
        while (x->i < x->n && x->wbeg + x->at[x->i] < from) x->i++;
        if (x->wnul || x->wbad) *suspect = true;
        if (x->i < x->n) return x->data + x->wbeg + x->at[x->i];
        from = x->wend;
    }
}
