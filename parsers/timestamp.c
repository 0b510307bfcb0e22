#include "parsers/timestamp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NS_PER_S    1000000000LL
#define TZ_FILE_MAX (1u << 20) /* real TZif files are < 4 KiB */
#define FMT_MAX_OPS 128

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

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

/* Reads between min and max digits at p[*i]; fails when fewer than min. */
static bool get_num(const char *p, size_t n, size_t *i, int min, int max, int *out)
{
    int v = 0, k = 0;
    size_t j = *i;
    while (k < max && j < n && is_digit(p[j])) {
        v = v * 10 + (p[j] - '0');
        j++;
        k++;
    }
    if (k < min) return false;
    *i = j;
    *out = v;
    return true;
}

static inline int two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

int64_t sl_ts_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int sl_ts_days_in_month(int64_t y, int m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12) return 0;
    return dim[m - 1] + (m == 2 && is_leap(y));
}

/* Seconds plus nanoseconds to int64 ns, failing outside the range. */
static bool to_ns(int64_t s, int64_t nsec, int64_t *ns)
{
    int64_t v;
    if (__builtin_mul_overflow(s, NS_PER_S, &v) || __builtin_add_overflow(v, nsec, &v))
        return false;
    *ns = v;
    return true;
}

/* Fraction digits after the separator at p[*i]: nanoseconds, rest ignored. */
static bool get_frac(const char *p, size_t n, size_t *i, int64_t *nsec)
{
    size_t j = *i;
    int64_t v = 0;
    int k = 0;
    if (j >= n || !is_digit(p[j])) return false;
    for (; j < n && is_digit(p[j]); j++)
        if (k < 9) {
            v = v * 10 + (p[j] - '0');
            k++;
        }
    for (; k < 9; k++) v *= 10;
    *i = j;
    *nsec = v;
    return true;
}

/* `Z`, `z`, `+hh:mm`, `+hhmm` or (when allow_hh) `+hh`: seconds east. */
static bool get_offset(const char *p, size_t n, size_t *i, bool allow_hh, int32_t *off)
{
    size_t j = *i;
    if (j >= n) return false;
    if (p[j] == 'Z' || p[j] == 'z') {
        *off = 0;
        *i = j + 1;
        return true;
    }
    if (p[j] != '+' && p[j] != '-') return false;
    int sign = p[j] == '-' ? -1 : 1;
    j++;
    if (n - j < 2 || !is_digit(p[j]) || !is_digit(p[j + 1])) return false;
    int hh = two(p + j), mm = 0;
    j += 2;
    if (j < n && p[j] == ':' && n - j >= 3 && is_digit(p[j + 1]) && is_digit(p[j + 2])) {
        mm = two(p + j + 1);
        j += 3;
    } else if (n - j >= 2 && is_digit(p[j]) && is_digit(p[j + 1])) {
        mm = two(p + j);
        j += 2;
    } else if (!allow_hh) {
        return false;
    }
    if (hh > 23 || mm > 59) return false;
    *off = sign * (hh * 3600 + mm * 60);
    *i = j;
    return true;
}

/* The shared RFC 3339 / ISO 8601 reader. has_off reports whether an offset
 * was present; when it is not and need_off is set, the scan fails. */
static size_t scan_iso(const char *p, size_t n, bool need_off, int64_t *local_s, int64_t *nsec,
                       bool *has_off, int32_t *off)
{
    if (n < 19) return 0;
    for (int k = 0; k < 19; k++) {
        static const char shape[] = "dddd-dd-dd?dd:dd:dd";
        if (shape[k] == 'd' ? !is_digit(p[k]) : shape[k] != '?' && p[k] != shape[k]) return 0;
    }
    if (p[10] != 'T' && p[10] != 't' && p[10] != ' ') return 0;
    int y = two(p) * 100 + two(p + 2), mo = two(p + 5), d = two(p + 8);
    int h = two(p + 11), mi = two(p + 14), s = two(p + 17);
    if (mo < 1 || mo > 12 || d < 1 || d > sl_ts_days_in_month(y, mo) || h > 23 || mi > 59 || s > 60)
        return 0;
    size_t i = 19;
    *nsec = 0;
    if (i + 1 < n && (p[i] == '.' || p[i] == ',') && is_digit(p[i + 1])) {
        i++;
        get_frac(p, n, &i, nsec);
    }
    *off = 0;
    *has_off = get_offset(p, n, &i, false, off);
    if (!*has_off && need_off) return 0;
    *local_s = sl_ts_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return i;
}

size_t sl_ts_scan_rfc3339(const char *p, size_t n, int64_t *ns)
{
    int64_t local, nsec;
    bool has_off;
    int32_t off;
    size_t k = scan_iso(p, n, true, &local, &nsec, &has_off, &off);
    if (k == 0 || !to_ns(local - off, nsec, ns)) return 0;
    return k;
}

int sl_ts_parse_rfc3339(const char *p, size_t n, int64_t *ns)
{
    size_t k = sl_ts_scan_rfc3339(p, n, ns);
    return k != 0 && k == n ? 0 : SL_EPARSE;
}

int sl_ts_parse_unix(const char *p, size_t n, enum sl_ts_unit unit, int64_t *ns)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+')) neg = p[i++] == '-';
    uint64_t v = 0;
    size_t digits = 0;
    for (; i < n && is_digit(p[i]); i++, digits++) {
        if (digits >= 19) return SL_EPARSE;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (digits == 0) return SL_EPARSE;
    int64_t frac9 = 0;
    if (i < n && p[i] == '.') {
        i++;
        if (!get_frac(p, n, &i, &frac9)) return SL_EPARSE;
    }
    if (i != n) return SL_EPARSE;
    if (unit == SL_TS_UNIX_AUTO)
        unit = digits <= 10   ? SL_TS_UNIX_S
               : digits <= 13 ? SL_TS_UNIX_MS
               : digits <= 16 ? SL_TS_UNIX_US
                              : SL_TS_UNIX_NS;
    int64_t mult = unit == SL_TS_UNIX_S    ? NS_PER_S
                   : unit == SL_TS_UNIX_MS ? 1000000
                   : unit == SL_TS_UNIX_US ? 1000
                                           : 1;
    if (v > (uint64_t)INT64_MAX) return SL_EPARSE;
    int64_t r;
    if (__builtin_mul_overflow((int64_t)v, mult, &r)) return SL_EPARSE;
    int64_t f = frac9 * mult / NS_PER_S; /* frac9 < 1e9, mult <= 1e9: fits */
    if (__builtin_add_overflow(r, f, &r)) return SL_EPARSE;
    *ns = neg ? -r : r;
    return 0;
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

int64_t sl_ts_infer_year(int mon, int day, int64_t sec_of_day, int64_t local_now_s)
{
    int64_t y = year_of_days(floor_div(local_now_s, 86400));
    /* Feb 29 in a year without it: compare as Feb 28 (only the year matters). */
    int d = day > sl_ts_days_in_month(y, mon) ? sl_ts_days_in_month(y, mon) : day;
    int64_t t = sl_ts_days_from_civil(y, mon, d) * 86400 + sec_of_day;
    if (t > local_now_s + 31 * 86400) return y - 1;
    if (t < local_now_s - 334 * 86400) return y + 1;
    return y;
}

int sl_ts_parse_nginx(const char *p, size_t n, int64_t *ns)
{
    /* dd/Mon/YYYY:hh:mm:ss +zzzz */
    if (n != 26 || p[2] != '/' || p[6] != '/' || p[11] != ':' || p[14] != ':' || p[17] != ':' ||
        p[20] != ' ')
        return SL_EPARSE;
    static const unsigned char dpos[] = {0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25};
    for (size_t k = 0; k < sizeof dpos; k++)
        if (!is_digit(p[dpos[k]])) return SL_EPARSE;
    int mon = english3(p + 3);
    int d = two(p), y = two(p + 7) * 100 + two(p + 9);
    int h = two(p + 12), mi = two(p + 15), s = two(p + 18);
    int oh = two(p + 22), om = two(p + 24);
    if (!mon || d < 1 || d > sl_ts_days_in_month(y, mon) || h > 23 || mi > 59 || s > 60 ||
        (p[21] != '+' && p[21] != '-') || oh > 23 || om > 59)
        return SL_EPARSE;
    int32_t off = (p[21] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    int64_t t = sl_ts_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s - off;
    return to_ns(t, 0, ns) ? 0 : SL_EPARSE;
}

/* ---- time zones ---- */

typedef struct tz_rule_date {
    char kind; /* 'J' (1-365, no Feb 29), 'D' (0-365), 'M' (month.week.day) */
    int n, m, w, d;
    int32_t time; /* seconds after local midnight; may be negative or > 24h */
} tz_rule_date;

struct sl_tz {
    int32_t fixed; /* the offset when there are no transitions and no rule */
    size_t ntrans, ntypes;
    int64_t *trans;
    uint8_t *idx;
    int32_t *utoff;
    bool has_rule, rule_dst;
    int32_t std_off, dst_off; /* seconds east */
    tz_rule_date start, end;
};

void sl_tz_free(sl_tz *tz)
{
    if (!tz) return;
    free(tz->trans);
    free(tz->idx);
    free(tz->utoff);
    free(tz);
}

static int64_t rule_day(int64_t y, const tz_rule_date *r)
{
    int64_t jan1 = sl_ts_days_from_civil(y, 1, 1);
    if (r->kind == 'J') return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    if (r->kind == 'D') return jan1 + r->n;
    int64_t first = sl_ts_days_from_civil(y, r->m, 1);
    int wd_first = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    int mday = 1 + (r->d - wd_first + 7) % 7 + (r->w - 1) * 7;
    while (mday > sl_ts_days_in_month(y, r->m)) mday -= 7;
    return first + mday - 1;
}

static int32_t rule_offset(const sl_tz *tz, int64_t utc)
{
    if (!tz->rule_dst) return tz->std_off;
    int64_t y = year_of_days(floor_div(utc + tz->std_off, 86400));
    int64_t start = rule_day(y, &tz->start) * 86400 + tz->start.time - tz->std_off;
    int64_t end = rule_day(y, &tz->end) * 86400 + tz->end.time - tz->dst_off;
    bool dst = start < end ? utc >= start && utc < end : !(utc >= end && utc < start);
    return dst ? tz->dst_off : tz->std_off;
}

int32_t sl_tz_offset_at(const sl_tz *tz, int64_t utc_s)
{
    if (!tz) return 0;
    if (tz->ntrans == 0) return tz->has_rule ? rule_offset(tz, utc_s) : tz->fixed;
    if (utc_s < tz->trans[0]) return tz->utoff[0];
    if (utc_s >= tz->trans[tz->ntrans - 1] && tz->has_rule) return rule_offset(tz, utc_s);
    size_t lo = 0, hi = tz->ntrans; /* last transition <= utc_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= utc_s)
            lo = mid;
        else
            hi = mid;
    }
    return tz->utoff[tz->idx[lo]];
}

int64_t sl_tz_local_to_utc(const sl_tz *tz, int64_t local_s)
{
    if (!tz) return local_s;
    if (tz->ntrans == 0 && !tz->has_rule) return local_s - tz->fixed;
    /* Transitions are far more than a day apart: the offsets a day before
     * and after are the only candidates. */
    int32_t oa = sl_tz_offset_at(tz, local_s - 86400), ob = sl_tz_offset_at(tz, local_s + 86400);
    bool va = sl_tz_offset_at(tz, local_s - oa) == oa;
    bool vb = sl_tz_offset_at(tz, local_s - ob) == ob;
    if (va && vb) return local_s - (oa > ob ? oa : ob);
    if (vb) return local_s - ob;
    return local_s - oa;
}

/* POSIX TZ string pieces (the TZif footer). */
static bool posix_name(const char *s, size_t *i)
{
    size_t j = *i;
    if (s[j] == '<') {
        while (s[j] && s[j] != '>') j++;
        if (s[j] != '>') return false;
        *i = j + 1;
        return true;
    }
    while ((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z') j++;
    if (j - *i < 3) return false;
    *i = j;
    return true;
}

/* [+-]hh[:mm[:ss]] in seconds, hours up to 167 (TZif v3 rule times). */
static bool posix_hms(const char *s, size_t *i, int32_t *out)
{
    size_t j = *i;
    int sign = 1;
    if (s[j] == '+' || s[j] == '-') sign = s[j++] == '-' ? -1 : 1;
    int h = 0, m = 0, sec = 0, k = 0;
    while (is_digit(s[j]) && k < 3) h = h * 10 + (s[j++] - '0'), k++;
    if (k == 0 || h > 167) return false;
    if (s[j] == ':') {
        j++;
        if (!is_digit(s[j]) || !is_digit(s[j + 1])) return false;
        m = two(s + j);
        j += 2;
        if (s[j] == ':') {
            j++;
            if (!is_digit(s[j]) || !is_digit(s[j + 1])) return false;
            sec = two(s + j);
            j += 2;
        }
    }
    if (m > 59 || sec > 59) return false;
    *out = sign * (h * 3600 + m * 60 + sec);
    *i = j;
    return true;
}

static bool posix_int(const char *s, size_t *i, int max, int *out)
{
    int v = 0, k = 0;
    while (is_digit(s[*i]) && k < 4) v = v * 10 + (s[(*i)++] - '0'), k++;
    if (k == 0 || v > max) return false;
    *out = v;
    return true;
}

static bool posix_date(const char *s, size_t *i, tz_rule_date *r)
{
    r->time = 7200;
    if (s[*i] == 'J') {
        (*i)++;
        r->kind = 'J';
        if (!posix_int(s, i, 365, &r->n) || r->n < 1) return false;
    } else if (s[*i] == 'M') {
        (*i)++;
        r->kind = 'M';
        if (!posix_int(s, i, 12, &r->m) || r->m < 1 || s[(*i)++] != '.') return false;
        if (!posix_int(s, i, 5, &r->w) || r->w < 1 || s[(*i)++] != '.') return false;
        if (!posix_int(s, i, 6, &r->d)) return false;
    } else {
        r->kind = 'D';
        if (!posix_int(s, i, 365, &r->n)) return false;
    }
    if (s[*i] == '/') {
        (*i)++;
        if (!posix_hms(s, i, &r->time)) return false;
    }
    return true;
}

static bool parse_posix_tz(sl_tz *tz, const char *s)
{
    size_t i = 0;
    int32_t west;
    if (!posix_name(s, &i) || !posix_hms(s, &i, &west)) return false;
    tz->std_off = -west;
    tz->has_rule = true;
    if (s[i] == 0) return true;
    if (!posix_name(s, &i)) return false;
    tz->rule_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (s[i] && s[i] != ',') {
        if (!posix_hms(s, &i, &west)) return false;
        tz->dst_off = -west;
    }
    if (s[i] == 0) { /* POSIX default rule: US since 2007 */
        tz->start = (tz_rule_date){'M', 0, 3, 2, 0, 7200};
        tz->end = (tz_rule_date){'M', 0, 11, 1, 0, 7200};
        return true;
    }
    if (s[i++] != ',' || !posix_date(s, &i, &tz->start) || s[i++] != ',' ||
        !posix_date(s, &i, &tz->end))
        return false;
    return s[i] == 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int parse_tzif(sl_tz *tz, const unsigned char *d, size_t n, const char *name, sl_err *err)
{
    if (n < 44 || memcmp(d, "TZif", 4) != 0)
        return sl_errf(err, SL_EINVAL, "time zone %s: not a TZif file", name);
    int version = d[4];
    size_t pos = 0, tsize = 4;
    for (int pass = 0; pass < 2; pass++) {
        if (n - pos < 44) return sl_errf(err, SL_EINVAL, "time zone %s: truncated", name);
        const unsigned char *h = d + pos + 20;
        uint64_t isut = be32(h), isstd = be32(h + 4), leap = be32(h + 8), timecnt = be32(h + 12),
                 typecnt = be32(h + 16), charcnt = be32(h + 20);
        uint64_t body =
            timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isut;
        pos += 44;
        if (body > n - pos || typecnt == 0 || typecnt > 256 || timecnt > 65536)
            return sl_errf(err, SL_EINVAL, "time zone %s: bad header", name);
        if (version >= '2' && pass == 0) { /* the 64-bit block follows */
            pos += body;
            tsize = 8;
            continue;
        }
        const unsigned char *t = d + pos, *ix = t + timecnt * tsize, *ty = ix + timecnt;
        tz->ntrans = timecnt;
        tz->ntypes = typecnt;
        tz->trans = malloc((timecnt ? timecnt : 1) * sizeof *tz->trans);
        tz->idx = malloc(timecnt ? timecnt : 1);
        tz->utoff = malloc(typecnt * sizeof *tz->utoff);
        if (!tz->trans || !tz->idx || !tz->utoff)
            return sl_errf(err, SL_ENOMEM, "time zone %s: out of memory", name);
        for (size_t k = 0; k < timecnt; k++) {
            tz->trans[k] = tsize == 8 ? be64(t + 8 * k) : (int32_t)be32(t + 4 * k);
            if (ix[k] >= typecnt || (k && tz->trans[k] <= tz->trans[k - 1]))
                return sl_errf(err, SL_EINVAL, "time zone %s: bad transition", name);
            tz->idx[k] = ix[k];
        }
        for (size_t k = 0; k < typecnt; k++) {
            int32_t off = (int32_t)be32(ty + 6 * k);
            if (off < -26 * 3600 || off > 26 * 3600)
                return sl_errf(err, SL_EINVAL, "time zone %s: bad offset", name);
            tz->utoff[k] = off;
        }
        tz->fixed = tz->utoff[0];
        pos += body;
        break;
    }
    if (version >= '2' && pos < n && d[pos] == '\n') {
        const unsigned char *nl = memchr(d + pos + 1, '\n', n - pos - 1);
        size_t len = nl ? (size_t)(nl - d - pos - 1) : 0;
        if (len > 0 && len < 128) {
            char footer[128];
            memcpy(footer, d + pos + 1, len);
            footer[len] = 0;
            sl_tz probe = *tz;
            if (parse_posix_tz(&probe, footer)) *tz = probe;
        }
    }
    return 0;
}

static bool fixed_offset_name(const char *name, int32_t *off)
{
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Z") == 0 || strcmp(name, "GMT") == 0 ||
        strcmp(name, "Etc/UTC") == 0 || strcmp(name, "UT") == 0) {
        *off = 0;
        return true;
    }
    size_t i = 0, n = strlen(name);
    return (name[0] == '+' || name[0] == '-') && get_offset(name, n, &i, true, off) && i == n;
}

int sl_tz_load(const char *name, sl_tz **out, sl_err *err)
{
    *out = NULL;
    sl_tz *tz = calloc(1, sizeof *tz);
    if (!tz) return sl_errf(err, SL_ENOMEM, "out of memory");
    if (fixed_offset_name(name, &tz->fixed)) {
        *out = tz;
        return 0;
    }
    char path[512];
    if (strcmp(name, "Local") == 0 || strcmp(name, "localtime") == 0) {
        snprintf(path, sizeof path, "/etc/localtime");
    } else {
        bool ok = name[0] != 0 && name[0] != '/' && strstr(name, "..") == NULL;
        for (const char *c = name; ok && *c; c++)
            ok = is_digit(*c) || ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || *c == '/' ||
                 *c == '_' || *c == '-' || *c == '+';
        const char *dir = getenv("TZDIR");
        if (!ok || snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
                            name) >= (int)sizeof path) {
            sl_tz_free(tz);
            return sl_errf(err, SL_EINVAL, "bad time zone name '%s'", name);
        }
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_FILE_MAX) {
        int e = errno;
        if (fd >= 0) close(fd);
        sl_tz_free(tz);
        return sl_errf(err, SL_ENOENT, "unknown time zone '%s' (%s: %s)", name, path,
                       fd < 0 ? strerror(e) : "not a regular file of sane size");
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    ssize_t got = buf ? read(fd, buf, n) : -1;
    close(fd);
    int rc = got == (ssize_t)n ? parse_tzif(tz, buf, n, name, err)
                               : sl_errf(err, SL_EIO, "time zone %s: read failed", name);
    free(buf);
    if (rc != 0) {
        sl_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

/* ---- formats ---- */

enum op_kind {
    OP_LIT = 1,
    OP_SPACE,
    OP_YEAR4,
    OP_YEAR2,
    OP_CENTURY,
    OP_MON,
    OP_DAY, /* %d and %e: a leading blank is allowed */
    OP_DOY,
    OP_HOUR,
    OP_HOUR12,
    OP_MIN,
    OP_SEC,
    OP_AMPM,
    OP_MONNAME,
    OP_WDAY,
    OP_TZOFF,
    OP_TZNAME,
    OP_FRAC,
    OP_EPOCH,
};

enum fmt_kind { FMT_STRF, FMT_RFC3339, FMT_UNIX, FMT_NGINX };

typedef struct fmt_op {
    uint8_t kind;
    char c;            /* OP_LIT */
    bool frac_allowed; /* OP_SEC: may swallow a fraction */
} fmt_op;

struct sl_ts_format {
    int kind;
    enum sl_ts_unit unit;
    sl_tz *tz;
    size_t nops;
    fmt_op ops[FMT_MAX_OPS];
};

void sl_ts_format_free(sl_ts_format *f)
{
    if (!f) return;
    sl_tz_free(f->tz);
    free(f);
}

static int push(sl_ts_format *f, uint8_t kind, char c, sl_err *err)
{
    if (f->nops == FMT_MAX_OPS) return sl_errf(err, SL_EINVAL, "timestamp format too long");
    f->ops[f->nops++] = (fmt_op){kind, c, false};
    return 0;
}

static int compile_strf(sl_ts_format *f, const char *fmt, sl_err *err)
{
    for (const char *s = fmt; *s; s++) {
        int rc = 0;
        if (is_blank(*s)) {
            if (f->nops == 0 || f->ops[f->nops - 1].kind != OP_SPACE)
                rc = push(f, OP_SPACE, 0, err);
        } else if (*s != '%') {
            rc = push(f, OP_LIT, *s, err);
        } else {
            s++;
            static const struct {
                char c;
                const char *expand;
            } composite[] = {
                {'T', "%H:%M:%S"}, {'F', "%Y-%m-%d"}, {'D', "%m/%d/%y"}, {'R', "%H:%M"}};
            bool done = false;
            for (size_t k = 0; k < 4 && !done; k++)
                if (composite[k].c == *s) {
                    rc = compile_strf(f, composite[k].expand, err);
                    done = true;
                }
            if (done) {
                if (rc) return rc;
                continue;
            }
            uint8_t op = 0;
            switch (*s) {
            case 'Y':
                op = OP_YEAR4;
                break;
            case 'y':
                op = OP_YEAR2;
                break;
            case 'C':
                op = OP_CENTURY;
                break;
            case 'm':
                op = OP_MON;
                break;
            case 'd':
            case 'e':
                op = OP_DAY;
                break;
            case 'j':
                op = OP_DOY;
                break;
            case 'H':
            case 'k':
                op = OP_HOUR;
                break;
            case 'I':
            case 'l':
                op = OP_HOUR12;
                break;
            case 'M':
                op = OP_MIN;
                break;
            case 'S':
                op = OP_SEC;
                break;
            case 'p':
                op = OP_AMPM;
                break;
            case 'b':
            case 'B':
            case 'h':
                op = OP_MONNAME;
                break;
            case 'a':
            case 'A':
                op = OP_WDAY;
                break;
            case 'z':
                op = OP_TZOFF;
                break;
            case 'Z':
                op = OP_TZNAME;
                break;
            case 'f':
            case 'L':
                op = OP_FRAC;
                break;
            case 's':
                op = OP_EPOCH;
                break;
            case 'n':
            case 't':
                op = OP_SPACE;
                break;
            case '%':
                rc = push(f, OP_LIT, '%', err);
                break;
            default:
                return sl_errf(err, SL_EINVAL, "timestamp format '%s': unknown directive %%%c", fmt,
                               *s ? *s : ' ');
            }
            if (op) rc = push(f, op, 0, err);
        }
        if (rc) return rc;
    }
    return 0;
}

int sl_ts_format_new(const char *fmt, const char *tz, sl_ts_format **out, sl_err *err)
{
    *out = NULL;
    if (!fmt || !*fmt) return sl_errf(err, SL_EINVAL, "empty timestamp format");
    sl_ts_format *f = calloc(1, sizeof *f);
    if (!f) return sl_errf(err, SL_ENOMEM, "out of memory");
    static const struct {
        const char *name;
        int kind;
        enum sl_ts_unit unit;
    } named[] = {
        {"rfc3339", FMT_RFC3339, 0},
        {"iso8601", FMT_RFC3339, 0},
        {"unix", FMT_UNIX, SL_TS_UNIX_AUTO},
        {"unix_s", FMT_UNIX, SL_TS_UNIX_S},
        {"unix_ms", FMT_UNIX, SL_TS_UNIX_MS},
        {"unix_us", FMT_UNIX, SL_TS_UNIX_US},
        {"unix_ns", FMT_UNIX, SL_TS_UNIX_NS},
        {"nginx", FMT_NGINX, 0},
        {"apache", FMT_NGINX, 0},
    };
    int rc = 0;
    f->kind = FMT_STRF;
    for (size_t k = 0; k < sizeof named / sizeof *named; k++)
        if (strcmp(fmt, named[k].name) == 0) {
            f->kind = named[k].kind;
            f->unit = named[k].unit;
        }
    if (f->kind == FMT_STRF) {
        if (strlen(fmt) > 256) rc = sl_errf(err, SL_EINVAL, "timestamp format too long");
        if (!rc) rc = compile_strf(f, fmt, err);
        /* %S swallows a fraction unless the format spells one out next. */
        for (size_t k = 0; !rc && k < f->nops; k++)
            if (f->ops[k].kind == OP_SEC)
                f->ops[k].frac_allowed =
                    !(k + 1 < f->nops && ((f->ops[k + 1].kind == OP_LIT &&
                                           (f->ops[k + 1].c == '.' || f->ops[k + 1].c == ',')) ||
                                          f->ops[k + 1].kind == OP_FRAC));
    }
    if (!rc && tz && *tz) rc = sl_tz_load(tz, &f->tz, err);
    if (rc) {
        sl_ts_format_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static size_t skip_blanks(const char *p, size_t n, size_t i)
{
    while (i < n && is_blank(p[i])) i++;
    return i;
}

typedef struct tm_parts {
    int year, mon, day, doy, hour, min, sec, pm;
    int64_t nsec, epoch;
    int32_t off;
    bool has_year, has_century, has_off, has_epoch, has_doy, hour12;
    int century, yy;
} tm_parts;

static int run_ops(const sl_ts_format *f, const char *p, size_t n, tm_parts *t)
{
    size_t i = 0;
    for (size_t k = 0; k < f->nops; k++) {
        const fmt_op *o = &f->ops[k];
        switch (o->kind) {
        case OP_LIT:
            if (i >= n || p[i] != o->c) return SL_EPARSE;
            i++;
            break;
        case OP_SPACE:
            i = skip_blanks(p, n, i);
            break;
        case OP_YEAR4:
            if (!get_num(p, n, &i, 4, 4, &t->year)) return SL_EPARSE;
            t->has_year = true;
            break;
        case OP_YEAR2:
            if (!get_num(p, n, &i, 2, 2, &t->yy)) return SL_EPARSE;
            t->has_year = true;
            t->year = t->yy < 69 ? 2000 + t->yy : 1900 + t->yy;
            break;
        case OP_CENTURY:
            if (!get_num(p, n, &i, 2, 2, &t->century)) return SL_EPARSE;
            t->has_century = true;
            break;
        case OP_MON:
            if (!get_num(p, n, &i, 1, 2, &t->mon) || t->mon < 1 || t->mon > 12) return SL_EPARSE;
            break;
        case OP_DAY:
            if (i < n && p[i] == ' ') i++;
            if (!get_num(p, n, &i, 1, 2, &t->day) || t->day < 1 || t->day > 31) return SL_EPARSE;
            break;
        case OP_DOY:
            if (!get_num(p, n, &i, 1, 3, &t->doy) || t->doy < 1 || t->doy > 366) return SL_EPARSE;
            t->has_doy = true;
            break;
        case OP_HOUR:
            if (i < n && p[i] == ' ') i++;
            if (!get_num(p, n, &i, 1, 2, &t->hour) || t->hour > 23) return SL_EPARSE;
            break;
        case OP_HOUR12:
            if (i < n && p[i] == ' ') i++;
            if (!get_num(p, n, &i, 1, 2, &t->hour) || t->hour < 1 || t->hour > 12) return SL_EPARSE;
            t->hour12 = true;
            break;
        case OP_MIN:
            if (!get_num(p, n, &i, 1, 2, &t->min) || t->min > 59) return SL_EPARSE;
            break;
        case OP_SEC:
            if (!get_num(p, n, &i, 1, 2, &t->sec) || t->sec > 60) return SL_EPARSE;
            if (o->frac_allowed && i + 1 < n && (p[i] == '.' || p[i] == ',') &&
                is_digit(p[i + 1])) {
                i++;
                get_frac(p, n, &i, &t->nsec);
            }
            break;
        case OP_AMPM:
            if (n - i < 2 || (lower(p[i + 1]) != 'm') || (lower(p[i]) != 'a' && lower(p[i]) != 'p'))
                return SL_EPARSE;
            t->pm = lower(p[i]) == 'p' ? 1 : 0;
            i += 2;
            break;
        case OP_MONNAME: {
            size_t len;
            if (!(t->mon = sl_ts_month(p + i, n - i, &len))) return SL_EPARSE;
            i += len;
            break;
        }
        case OP_WDAY: {
            size_t j = i;
            while (j < n && is_letter(p[j])) j++;
            if (j == i) return SL_EPARSE;
            if (j < n && p[j] == '.') j++;
            i = j;
            break;
        }
        case OP_TZOFF:
            if (!get_offset(p, n, &i, true, &t->off)) return SL_EPARSE;
            t->has_off = true;
            break;
        case OP_TZNAME: {
            size_t j = i;
            while (j < n && ((p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z')) j++;
            if (j == i) return SL_EPARSE;
            size_t l = j - i;
            if ((l == 3 && (memcmp(p + i, "UTC", 3) == 0 || memcmp(p + i, "GMT", 3) == 0)) ||
                (l == 1 && (p[i] == 'Z' || p[i] == 'z')) ||
                (l == 2 && memcmp(p + i, "UT", 2) == 0)) {
                t->has_off = true;
                t->off = 0;
            }
            i = j;
            break;
        }
        case OP_FRAC:
            if (!get_frac(p, n, &i, &t->nsec)) return SL_EPARSE;
            break;
        case OP_EPOCH: {
            size_t j = i;
            if (j < n && p[j] == '-') j++;
            while (j < n && is_digit(p[j]) && j - i < 12) j++;
            int64_t e;
            if (sl_ts_parse_unix(p + i, j - i, SL_TS_UNIX_S, &e) != 0) return SL_EPARSE;
            t->epoch = e / NS_PER_S;
            t->has_epoch = true;
            i = j;
            break;
        }
        }
    }
    return skip_blanks(p, n, i) == n ? 0 : SL_EPARSE;
}

static int parse_strf(const sl_ts_format *f, const char *p, size_t n, int64_t now_ns, int64_t *ns)
{
    tm_parts t = {.mon = 1, .day = 1, .pm = -1};
    if (run_ops(f, p, n, &t) != 0) return SL_EPARSE;
    if (t.has_epoch) return to_ns(t.epoch, t.nsec, ns) ? 0 : SL_EPARSE;
    if (t.has_century) {
        t.year = t.century * 100 + (t.has_year ? t.yy : 0);
        t.has_year = true;
    }
    if (t.hour12) t.hour = t.hour % 12 + (t.pm == 1 ? 12 : 0);
    int64_t sod = t.hour * 3600 + t.min * 60 + t.sec;
    int64_t now_s = floor_div(now_ns, NS_PER_S);
    if (!t.has_year) {
        int32_t off = t.has_off ? t.off : sl_tz_offset_at(f->tz, now_s);
        t.year = (int)sl_ts_infer_year(t.mon, t.day, sod, now_s + off);
    }
    int64_t days;
    if (t.has_doy) {
        if (t.doy > 365 + is_leap(t.year)) return SL_EPARSE;
        days = sl_ts_days_from_civil(t.year, 1, 1) + t.doy - 1;
    } else {
        if (t.day > sl_ts_days_in_month(t.year, t.mon)) return SL_EPARSE;
        days = sl_ts_days_from_civil(t.year, t.mon, t.day);
    }
    int64_t local = days * 86400 + sod;
    int64_t utc = t.has_off ? local - t.off : sl_tz_local_to_utc(f->tz, local);
    return to_ns(utc, t.nsec, ns) ? 0 : SL_EPARSE;
}

int sl_ts_format_parse(const sl_ts_format *f, const char *p, size_t n, int64_t now_ns, int64_t *ns)
{
    while (n > 0 && is_blank(p[n - 1])) n--;
    switch (f->kind) {
    case FMT_RFC3339: {
        int64_t local, nsec;
        bool has_off;
        int32_t off;
        size_t k = scan_iso(p, n, false, &local, &nsec, &has_off, &off);
        if (k == 0 || k != n) return SL_EPARSE;
        int64_t utc = has_off ? local - off : sl_tz_local_to_utc(f->tz, local);
        return to_ns(utc, nsec, ns) ? 0 : SL_EPARSE;
    }
    case FMT_UNIX:
        return sl_ts_parse_unix(p, n, f->unit, ns);
    case FMT_NGINX:
        return sl_ts_parse_nginx(p, n, ns);
    default:
        return parse_strf(f, p, n, now_ns, ns);
    }
}

int sl_ts_parse_record(sl_batch *b, sl_record *r, const sl_ts_format *f, const char *field,
                       sl_err *err)
{
    (void)b;
    sl_slice v = r->line;
    if (field && strcmp(field, "line") != 0) {
        sl_field *fl = sl_record_field(r, field, strlen(field));
        if (!fl) return sl_errf(err, SL_ENOENT, "timestamp: no field '%s'", field);
        v = fl->val;
    }
    int64_t ns;
    if (sl_ts_format_parse(f, v.p, v.n, r->time_ns, &ns) != 0)
        return sl_errf(err, SL_EPARSE, "timestamp: '%.*s' does not match the format",
                       (int)(v.n > 64 ? 64 : v.n), v.p);
    r->time_ns = ns;
    return 0;
}
