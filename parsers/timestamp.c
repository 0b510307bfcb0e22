#include "parsers/timestamp.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S    1000000000LL
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

int64_t sl_ts_year_of_days(int64_t z)
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

int sl_ts_parse_offset(const char *p, size_t n, int32_t *off)
{
    size_t i = 0;
    return get_offset(p, n, &i, true, off) && i == n ? 0 : SL_EPARSE;
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

size_t sl_ts_scan_iso(const char *p, size_t n, const sl_tz *tz, int64_t *ns)
{
    int64_t local, nsec;
    bool has_off;
    int32_t off;
    size_t k = scan_iso(p, n, false, &local, &nsec, &has_off, &off);
    if (k == 0) return 0;
    int64_t utc = has_off ? local - off : sl_tz_local_to_utc(tz, local);
    return to_ns(utc, nsec, ns) ? k : 0;
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

/* The date in year y as local seconds; Feb 29 in a year without it is
 * compared as Feb 28 (only the year is decided here). */
static int64_t date_in_year(int64_t y, int mon, int day, int64_t sec_of_day)
{
    int d = day > sl_ts_days_in_month(y, mon) ? sl_ts_days_in_month(y, mon) : day;
    return sl_ts_days_from_civil(y, mon, d) * 86400 + sec_of_day;
}

int64_t sl_ts_infer_year(int mon, int day, int64_t sec_of_day, int64_t local_now_s)
{
    /* The latest year in which the date is not past now + grace. */
    int64_t y = sl_ts_year_of_days(floor_div(local_now_s, 86400));
    int64_t limit = local_now_s + SL_TS_FUTURE_GRACE_S;
    if (date_in_year(y + 1, mon, day, sec_of_day) <= limit) return y + 1;
    if (date_in_year(y, mon, day, sec_of_day) <= limit) return y;
    return y - 1;
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
    size_t ml;
    int mon = sl_ts_month(p + 3, 3, &ml);
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

/* Zones named in the text by %Z (`Europe/Berlin`): loaded once, kept
 * until the format is freed. Few distinct names appear in one log; a
 * full cache replaces its oldest entry. Behind a lock because a format is
 * shared by the threads that parse with it. */
#define ZONE_CACHE 4

typedef struct zone_cache {
    pthread_mutex_t lock;
    struct {
        char name[64];
        sl_tz *tz;
    } e[ZONE_CACHE];
    size_t next;
} zone_cache;

struct sl_ts_format {
    int kind;
    enum sl_ts_unit unit;
    bool time_only; /* no date directive: the date is completed from now */
    sl_tz *tz;
    zone_cache *zones; /* NULL unless the format has %Z */
    size_t nops;
    fmt_op ops[FMT_MAX_OPS];
};

void sl_ts_format_free(sl_ts_format *f)
{
    if (!f) return;
    sl_tz_free(f->tz);
    if (f->zones) {
        for (size_t k = 0; k < ZONE_CACHE; k++) sl_tz_free(f->zones->e[k].tz);
        pthread_mutex_destroy(&f->zones->lock);
        free(f->zones);
    }
    free(f);
}

/* A wall time in the zone named name[0..n) to UTC; false for a name the
 * zoneinfo does not have. */
static bool named_zone_to_utc(zone_cache *zc, const char *name, size_t n, int64_t local,
                              int64_t *utc)
{
    if (n >= sizeof zc->e[0].name) return false;
    pthread_mutex_lock(&zc->lock);
    const sl_tz *tz = NULL;
    for (size_t k = 0; k < ZONE_CACHE && !tz; k++)
        if (zc->e[k].tz && strlen(zc->e[k].name) == n && memcmp(zc->e[k].name, name, n) == 0)
            tz = zc->e[k].tz;
    if (!tz) {
        char z[64];
        memcpy(z, name, n);
        z[n] = 0;
        sl_tz *loaded;
        sl_err err;
        if (sl_tz_load(z, &loaded, &err) == 0) {
            size_t k = zc->next++ % ZONE_CACHE;
            sl_tz_free(zc->e[k].tz);
            memcpy(zc->e[k].name, z, n + 1);
            zc->e[k].tz = loaded;
            tz = loaded;
        }
    }
    if (tz) *utc = sl_tz_local_to_utc(tz, local);
    pthread_mutex_unlock(&zc->lock);
    return tz != NULL;
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
        bool date = false, time = false, zname = false;
        for (size_t k = 0; k < f->nops; k++) {
            uint8_t o = f->ops[k].kind;
            date |= o == OP_YEAR4 || o == OP_YEAR2 || o == OP_CENTURY || o == OP_MON ||
                    o == OP_DAY || o == OP_DOY || o == OP_MONNAME || o == OP_EPOCH;
            time |= o == OP_HOUR || o == OP_HOUR12;
            zname |= o == OP_TZNAME;
        }
        f->time_only = time && !date;
        if (!rc && zname) {
            f->zones = calloc(1, sizeof *f->zones);
            if (!f->zones || pthread_mutex_init(&f->zones->lock, NULL) != 0) {
                free(f->zones);
                f->zones = NULL;
                rc = sl_errf(err, SL_ENOMEM, "out of memory");
            }
        }
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
    sl_slice zone; /* an IANA name read by %Z (n 0: none) */
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
            /* An abbreviation (letters), or an IANA name (`Area/Place`,
             * `America/Argentina/Buenos_Aires`, `Etc/GMT+5`). */
            size_t j = i;
            if (j < n && (p[j] == '+' || p[j] == '-') &&
                get_offset(p, n, &j, true, &t->off)) { /* date(1) in zones without a name: +03 */
                t->has_off = true;
                i = j;
                break;
            }
            while (j < n && ((p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z')) j++;
            if (j == i) return SL_EPARSE;
            if (j < n && p[j] == '/') {
                while (j < n && j - i < 64 &&
                       (((p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z') || is_digit(p[j]) ||
                        p[j] == '/' || p[j] == '_' || p[j] == '-' || p[j] == '+'))
                    j++;
                t->zone = (sl_slice){p + i, j - i};
            } else if (j - i == 1 && p[i] == 'z') {
                t->has_off = true, t->off = 0;
            } else if (sl_tz_abbr_offset(f->tz, p + i, j - i, &t->off) == 0) {
                t->has_off = true;
            } else {
                return SL_EPARSE; /* a zone we cannot place: never a silent UTC */
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

/* The parsed wall time to UTC: the text's offset, the zone it named, or
 * the format's zone. */
static bool local_to_utc(const sl_ts_format *f, const tm_parts *t, int64_t local, int64_t *utc)
{
    if (t->has_off) {
        *utc = local - t->off;
        return true;
    }
    if (t->zone.n) return named_zone_to_utc(f->zones, t->zone.p, t->zone.n, local, utc);
    *utc = sl_tz_local_to_utc(f->tz, local);
    return true;
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
    int32_t now_off = t.has_off ? t.off : sl_tz_offset_at(f->tz, now_s);
    int64_t days, utc;
    if (f->time_only) { /* today in the zone, or yesterday if that is ahead */
        days = floor_div(now_s + now_off, 86400);
        for (int k = 0; k < 2; k++, days--) {
            if (!local_to_utc(f, &t, days * 86400 + sod, &utc)) return SL_EPARSE;
            if (utc <= now_s + SL_TS_FUTURE_GRACE_S) break;
        }
        return to_ns(utc, t.nsec, ns) ? 0 : SL_EPARSE;
    }
    if (!t.has_year) t.year = (int)sl_ts_infer_year(t.mon, t.day, sod, now_s + now_off);
    if (t.has_doy) {
        if (t.doy > 365 + is_leap(t.year)) return SL_EPARSE;
        days = sl_ts_days_from_civil(t.year, 1, 1) + t.doy - 1;
    } else {
        if (t.day > sl_ts_days_in_month(t.year, t.mon)) return SL_EPARSE;
        days = sl_ts_days_from_civil(t.year, t.mon, t.day);
    }
    if (!local_to_utc(f, &t, days * 86400 + sod, &utc)) return SL_EPARSE;
    return to_ns(utc, t.nsec, ns) ? 0 : SL_EPARSE;
}

int sl_ts_format_parse(const sl_ts_format *f, const char *p, size_t n, int64_t now_ns, int64_t *ns)
{
    while (n > 0 && is_blank(p[n - 1])) n--;
    switch (f->kind) {
    case FMT_RFC3339: {
        size_t k = sl_ts_scan_iso(p, n, f->tz, ns);
        return k != 0 && k == n ? 0 : SL_EPARSE;
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
