/* Finding the ends of lines in what the file input read: a portable scan
 * (memchr), or, where the CPU has AVX2, a newline index built a window at
 * a time that notes NULs and (with validate_utf8) invalid UTF-8 in the same
 * pass. $SLUICE_SIMD=scalar forces the portable scan. */
#ifndef SLUICE_COLLECTOR_EOL_INDEX_H
#define SLUICE_COLLECTOR_EOL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The portable scan: the end of the line at p, its newline or NULL
 * (eol_scalar in collector/eol_index.c). */
typedef const char *(*sl_eol_fn)(const char *p, const char *end, bool *suspect);

/* Newlines found a window at a time (index_window in eol_index.c). */
#define SL_EOL_WINDOW 16384

typedef struct sl_eol_index {
    const char *data;
    size_t len;                             /* the bytes being split */
    size_t wbeg, wend;                      /* the window [wbeg, wend) indexed */
    bool wnul;                              /* it holds a NUL */
    bool validate;                          /* validate_utf8: check the windows as well */
    bool wbad;                              /* the window is not UTF-8 (or may end in a cut) */
    bool carry;                             /* the window follows the last one: carry[] applies */
    uint8_t carry_prev[32], carry_open[32]; /* UTF-8 state at wend (malloc'd: unaligned) */
    uint32_t n, i;                          /* newlines in it, and the cursor */
    uint16_t at[SL_EOL_WINDOW + 1];         /* their offsets from wbeg; 1 of slack */
} sl_eol_index;

/* The portable scan for validate_utf8, or NULL: use the AVX2 index. */
sl_eol_fn sl_eol_pick(bool validate_utf8);
/* Starts splitting data[0, len). */
void sl_eol_index_reset(sl_eol_index *x, const char *data, size_t len);
/* The next newline at or after pos, or NULL when there is none before len;
 * *suspect when a window the line touches holds a NUL or is not UTF-8. */
const char *sl_eol_index_find(sl_eol_index *x, size_t pos, bool *suspect);

#endif
