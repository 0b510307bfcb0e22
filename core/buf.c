#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define BUF_DEFAULT_LIMIT ((size_t)1 << 30)

void sl_buf_init(sl_buf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit ? limit : BUF_DEFAULT_LIMIT;
}

void sl_buf_free(sl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void sl_buf_reset(sl_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

int sl_buf_reserve(sl_buf *b, size_t n)
{
    if (b->failed) return SL_ENOMEM;
    if (b->cap - b->len > n) return SL_OK;
    if (n > b->limit || b->len > b->limit - n) {
        b->failed = 1;
        return SL_ENOMEM;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len <= n) cap *= 2;
    if (cap > b->limit + 1) cap = b->limit + 1;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return SL_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return SL_OK;
}

int sl_buf_append(sl_buf *b, const void *p, size_t n)
{
    if (sl_buf_reserve(b, n) != SL_OK) return SL_ENOMEM;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return SL_OK;
}

int sl_buf_putc(sl_buf *b, char c)
{
    if (sl_buf_reserve(b, 1) != SL_OK) return SL_ENOMEM;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
    return SL_OK;
}

int sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sl_buf_reserve(b, (size_t)n + 1) != SL_OK) return SL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SL_OK;
}

int sl_buf_json_escape(sl_buf *b, const char *s, size_t n)
{
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (n > (b->limit / 6)) {
        b->failed = 1; /* as any append past the limit: never a silently empty string */
        return SL_ENOMEM;
    }
    if (sl_buf_reserve(b, n * 6 + 1) != SL_OK) return SL_ENOMEM;
    size_t replaced = 0;
    b->len += sl_json_escape_ref(b->p + b->len, s, n, &replaced);
    b->p[b->len] = '\0';
    return (int)replaced;
}
