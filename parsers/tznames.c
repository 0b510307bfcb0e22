/* Names found in timestamps: month names (English, and the glibc
 * abbreviations and names of French, German and Spanish, decision 0004).
 * A table of their own, apart from the code that reads times. */
#include <stdbool.h>
#include <stddef.h>

#include "parsers/timestamp.h"

/* ASCII letters and any non-ASCII byte (month names in UTF-8). */
static inline bool is_letter(char c)
{
    unsigned char u = (unsigned char)c;
    return (unsigned)((u | 0x20) - 'a') < 26 || u >= 0x80;
}

static inline char lower(char c)
{
    return (unsigned char)(c - 'A') < 26 ? (char)(c | 0x20) : c;
}

/* Month names. English three-letter abbreviations take the fast path; the
 * rest are matched longest first (decision 0004 explains the languages). */
static const struct {
    const char *name;
    unsigned char len, mon;
} month_names[] = {
#define M(s, m)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, m                                                                        \
    }
    /* English */
    M("january", 1),
    M("february", 2),
    M("march", 3),
    M("april", 4),
    M("june", 6),
    M("july", 7),
    M("august", 8),
    M("september", 9),
    M("sept", 9),
    M("october", 10),
    M("november", 11),
    M("december", 12),
    /* French (glibc fr_FR: abbreviations end with a dot) */
    M("janv.", 1),
    M("janv", 1),
    M("janvier", 1),
    M("f\xc3\xa9vr.", 2),
    M("f\xc3\xa9vr", 2),
    M("f\xc3\xa9vrier", 2),
    M("mars", 3),
    M("avr.", 4),
    M("avril", 4),
    M("mai", 5),
    M("juin", 6),
    M("juil.", 7),
    M("juil", 7),
    M("juillet", 7),
    M("ao\xc3\xbbt", 8),
    M("sept.", 9),
    M("septembre", 9),
    M("oct.", 10),
    M("octobre", 10),
    M("nov.", 11),
    M("novembre", 11),
    M("d\xc3\xa9"
      "c.",
      12),
    M("d\xc3\xa9"
      "c",
      12),
    M("d\xc3\xa9"
      "cembre",
      12),
    /* German (glibc de_DE) */
    M("januar", 1),
    M("februar", 2),
    M("m\xc3\xa4r", 3),
    M("m\xc3\xa4rz", 3),
    M("juni", 6),
    M("juli", 7),
    M("okt", 10),
    M("oktober", 10),
    M("dez", 12),
    M("dezember", 12),
    /* Spanish (glibc es_ES) */
    M("ene", 1),
    M("enero", 1),
    M("febrero", 2),
    M("marzo", 3),
    M("abr", 4),
    M("abril", 4),
    M("mayo", 5),
    M("junio", 6),
    M("julio", 7),
    M("ago", 8),
    M("agosto", 8),
    M("septiembre", 9),
    M("octubre", 10),
    M("noviembre", 11),
    M("dic", 12),
    M("diciembre", 12),
#undef M
};

static int english3(const char *p)
{
    char a = lower(p[0]), b = lower(p[1]), c = lower(p[2]);
    switch (a) {
    case 'j':
        if (b == 'a' && c == 'n') return 1;
        if (b == 'u' && c == 'n') return 6;
        if (b == 'u' && c == 'l') return 7;
        return 0;
    case 'f':
        return b == 'e' && c == 'b' ? 2 : 0;
    case 'm':
        if (b == 'a' && c == 'r') return 3;
        if (b == 'a' && c == 'y') return 5;
        return 0;
    case 'a':
        if (b == 'p' && c == 'r') return 4;
        if (b == 'u' && c == 'g') return 8;
        return 0;
    case 's':
        return b == 'e' && c == 'p' ? 9 : 0;
    case 'o':
        return b == 'c' && c == 't' ? 10 : 0;
    case 'n':
        return b == 'o' && c == 'v' ? 11 : 0;
    case 'd':
        return b == 'e' && c == 'c' ? 12 : 0;
    }
    return 0;
}

int sl_ts_month(const char *p, size_t n, size_t *len)
{
    if (n >= 3 && (n == 3 || !is_letter(p[3]))) {
        int m = english3(p);
        if (m) {
            *len = 3;
            return m;
        }
    }
    int best = 0;
    size_t best_len = 0;
    for (size_t k = 0; k < sizeof month_names / sizeof *month_names; k++) {
        size_t l = month_names[k].len;
        if (l > n || l <= best_len) continue;
        size_t j = 0;
        while (j < l && lower(p[j]) == month_names[k].name[j]) j++;
        if (j < l) continue;
        if (month_names[k].name[l - 1] != '.' && l < n && is_letter(p[l])) continue;
        best = month_names[k].mon;
        best_len = l;
    }
    if (best) *len = best_len;
    return best;
}
