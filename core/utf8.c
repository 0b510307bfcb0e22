#include "core/utf8.h"

#include <string.h>

size_t sl_utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xe0) return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && p[1] < 0xa0) return 0;  /* overlong */
        if (c == 0xed && p[1] >= 0xa0) return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90) return 0;  /* overlong */
        if (c == 0xf4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

size_t sl_utf8_valid_prefix(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate log text: skip 8 bytes at a time. */
        while (i + 8 <= n) {
            unsigned long long w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        size_t len = sl_utf8_seq_len(u + i, n - i);
        if (!len) return i;
        i += len;
    }
    return n;
}

size_t sl_utf8_sanitize(const char *p, size_t n, char *dst, size_t *replaced)
{
    size_t o = 0, bad = 0, i = 0;
    while (i < n) {
        size_t ok = sl_utf8_valid_prefix(p + i, n - i);
        memcpy(dst + o, p + i, ok);
        o += ok;
        i += ok;
        if (i < n) {
            memcpy(dst + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            bad++;
        }
    }
    if (replaced) *replaced = bad;
    return o;
}
