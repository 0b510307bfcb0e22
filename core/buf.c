#include "core/buf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json_escape.h"
#include "core/utf8.h"

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
    static const char hex[] = "0123456789abcdef";
    int replaced = 0;
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (n > (b->limit / 6) || sl_buf_reserve(b, n * 6 + 1) != SL_OK) return SL_ENOMEM;
    char *o = b->p + b->len;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
        } else if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            default:
                *o++ = 'u', *o++ = '0', *o++ = '0';
                *o++ = hex[c >> 4], *o++ = hex[c & 15];
            }
            i++;
        } else {
            int len = sl_utf8_seq((const unsigned char *)s + i, n - i);
            if (len > 0) {
                memcpy(o, s + i, (size_t)len);
                o += len;
                i += (size_t)len;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i += (size_t)-len;
                replaced++;
            }
        }
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return replaced;
}

size_t sl_json_escape_within(char *dst, const char *src, size_t n, size_t readable,
                             size_t *replaced)
{
    const unsigned char *s = (const unsigned char *)src;
    esc_pos p = {dst, 0};
    if (readable < n) readable = n;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt")) {
        return (size_t)(escape_ssse3(dst, s, n, readable, replaced).o - dst);
    } else if (n >= 16) {
        p = escape_sse2(dst, s, n, 0, replaced);
    }
#endif
    return (size_t)(escape_tail(p.o, s, n, p.i, replaced).o - dst);
}

size_t sl_json_escape_to(char *dst, const char *src, size_t n, size_t *replaced)
{
    return sl_json_escape_within(dst, src, n, n, replaced);
}
