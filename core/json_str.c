#include "core/json_str.h"

#include <stdbool.h>
#include <string.h>

#include "core/err.h"
#include "core/json_escape.h"
#include "core/utf8.h"

/* ---- escaping ---- */

size_t sl_json_escape_ref(char *dst, const char *src, size_t n, size_t *replaced)
{
    const unsigned char *s = (const unsigned char *)src;
    char *o = dst;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
        } else if (c < 0x80) {
            o = escape_ascii(o, c);
            i++;
        } else {
            int len = sl_utf8_seq(s + i, n - i);
            if (len > 0) {
                memcpy(o, s + i, (size_t)len);
                o += len;
                i += (size_t)len;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i += (size_t)-len;
                (*replaced)++;
            }
        }
    }
    return (size_t)(o - dst);
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

/* ---- unescaping ---- */

/* The escape at s[0] == '\\' (avail bytes from there): its bytes into out
 * (*outn of them) and the input it used (*used). SL_EPARSE when it is
 * malformed and bad says to fail. */
static int unescape_one(const char *s, size_t avail, sl_json_bad bad, char out[4], size_t *outn,
                        size_t *used)
{
    *used = 2;
    *outn = 1;
    if (avail < 2) { /* a lone final backslash */
        if (bad == SL_JSON_BAD_FAIL) return SL_EPARSE;
        out[0] = '\\';
        *used = 1;
        return SL_OK;
    }
    char c = s[1];
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out[0] = c;
        return SL_OK;
    case 'b':
        out[0] = '\b';
        return SL_OK;
    case 'f':
        out[0] = '\f';
        return SL_OK;
    case 'n':
        out[0] = '\n';
        return SL_OK;
    case 'r':
        out[0] = '\r';
        return SL_OK;
    case 't':
        out[0] = '\t';
        return SL_OK;
    case 'u':
        break;
    default:
        if (bad == SL_JSON_BAD_FAIL) return SL_EPARSE;
        if (bad == SL_JSON_BAD_KEEP) {
            out[0] = '\\', out[1] = c;
            *outn = 2;
        } else {
            out[0] = c;
        }
        return SL_OK;
    }
    int32_t v = sl_json_hex4(s + 2, avail - 2);
    if (v < 0) {
        if (bad == SL_JSON_BAD_FAIL) return SL_EPARSE;
        if (bad == SL_JSON_BAD_KEEP) {
            out[0] = '\\', out[1] = 'u';
            *outn = 2;
            return SL_OK;
        }
        *outn = sl_json_utf8_put(out, 0xFFFD);
        return SL_OK;
    }
    uint32_t cp = (uint32_t)v;
    *used = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        int32_t lo =
            avail >= 12 && s[6] == '\\' && s[7] == 'u' ? sl_json_hex4(s + 8, avail - 8) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            *used = 12;
        } else {
            if (bad == SL_JSON_BAD_FAIL) return SL_EPARSE;
            cp = 0xFFFD;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        if (bad == SL_JSON_BAD_FAIL) return SL_EPARSE;
        cp = 0xFFFD;
    }
    *outn = sl_json_utf8_put(out, cp);
    return SL_OK;
}

int sl_json_unescape_to(const char *src, size_t n, char *dst, size_t cap, sl_json_bad bad,
                        size_t *written)
{
    size_t i = 0, o = 0;
    int rc = SL_OK;
    while (i < n) {
        const char *bs = memchr(src + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (src + i)) : n - i;
        if (run > cap - o) {
            memcpy(dst + o, src + i, cap - o);
            o = cap;
            rc = SL_EFULL;
            break;
        }
        memcpy(dst + o, src + i, run);
        o += run;
        i += run;
        if (!bs) break;
        char one[4];
        size_t outn, used;
        rc = unescape_one(src + i, n - i, bad, one, &outn, &used);
        if (rc != SL_OK) break;
        if (outn > cap - o) {
            rc = SL_EFULL;
            break;
        }
        memcpy(dst + o, one, outn);
        o += outn;
        i += used;
    }
    *written = o;
    return rc;
}

ptrdiff_t sl_json_unescape(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o;
    int rc = sl_json_unescape_to(src, n, dst, cap, SL_JSON_BAD_FAIL, &o);
    return rc == SL_OK ? (ptrdiff_t)o : rc;
}

#define STR_ONES  0x0101010101010101ull
#define STR_HIGHS 0x8080808080808080ull

/* Eight bytes at a time while none of them is special (a control byte, a
 * quote, a backslash). */
size_t sl_json_string_text_end(const char *text, size_t i, size_t n, bool *high)
{
    const unsigned char *p = (const unsigned char *)text;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t x, q, b;
            memcpy(&x, p + i, 8);
            q = x ^ ('"' * STR_ONES);
            b = x ^ ('\\' * STR_ONES);
            /* a byte below 0x20, a quote or a backslash: the lowest one
             * flagged is one (bytes above it may be false alarms) */
            uint64_t special =
                (((x - 0x20 * STR_ONES) & ~x) | ((q - STR_ONES) & ~q) | ((b - STR_ONES) & ~b)) &
                STR_HIGHS;
            if (!special) {
                *high |= (x & STR_HIGHS) != 0;
                i += 8;
                continue;
            }
            unsigned k = (unsigned)__builtin_ctzll(special) >> 3; /* plain bytes before it */
            *high |= (x & STR_HIGHS & ((1ull << (8 * k)) - 1)) != 0;
            i += k;
        }
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *high |= c >= 0x80;
            i++;
            continue;
        }
        if (c == '"') return i;
        if (c != '\\' || ++i >= n) return SIZE_MAX;
        switch (p[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u': {
            int32_t cp = sl_json_hex4(text + i + 1, n - i - 1);
            if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return SIZE_MAX;
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (n - i - 1 < 6 || p[i + 1] != '\\' || p[i + 2] != 'u') return SIZE_MAX;
                int32_t lo = sl_json_hex4(text + i + 3, n - i - 3);
                if (lo < 0xdc00 || lo > 0xdfff) return SIZE_MAX;
                i += 6;
            }
            break;
        }
        default:
            return SIZE_MAX;
        }
        i++;
    }
    return n;
}

bool sl_json_string_text_ok(const char *p, size_t n)
{
    bool high = false;
    return sl_json_string_text_end(p, 0, n, &high) == n && (!high || sl_utf8_valid(p, n));
}
