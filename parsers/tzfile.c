/* Time zones from the system zoneinfo: a TZif (v1-v3) reader, the POSIX TZ
 * rule of its footer for times past the last transition, the zone's own
 * abbreviations (for `%Z`), and the table of common abbreviations used when
 * the configured zone does not name one. Its own file so that timestamp.c
 * is only about reading times (decision 0004). Not setenv("TZ") and
 * localtime_r: that would be global mutable state shared by threads. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parsers/timestamp.h"

#define TZ_FILE_MAX (1u << 20) /* real TZif files are < 4 KiB */

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline int two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
/* ---- time zones ---- */

#define TZ_ABBR_MAX 32

typedef struct tz_abbr {
    char name[8];
    int32_t off;
} tz_abbr;

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
    /* The zone's abbreviations, each with the offset of its latest use. */
    tz_abbr abbrs[TZ_ABBR_MAX];
    size_t nabbrs;
};

/* Records abbr -> off; a later call for the same name wins. */
static void abbr_set(sl_tz *tz, const char *name, size_t n, int32_t off)
{
    if (n == 0 || n >= sizeof tz->abbrs[0].name) return;
    for (size_t k = 0; k < tz->nabbrs; k++)
        if (strlen(tz->abbrs[k].name) == n && memcmp(tz->abbrs[k].name, name, n) == 0) {
            tz->abbrs[k].off = off;
            return;
        }
    if (tz->nabbrs == TZ_ABBR_MAX) return;
    memcpy(tz->abbrs[tz->nabbrs].name, name, n);
    tz->abbrs[tz->nabbrs].name[n] = 0;
    tz->abbrs[tz->nabbrs++].off = off;
}

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
    int64_t y = sl_ts_year_of_days(floor_div(utc + tz->std_off, 86400));
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

/* The name posix_name just read, without <>. */
static void rule_abbr(sl_tz *tz, const char *s, size_t from, size_t to, int32_t off)
{
    if (s[from] == '<') from++, to--;
    abbr_set(tz, s + from, to - from, off);
}

static bool parse_posix_tz(sl_tz *tz, const char *s)
{
    size_t i = 0;
    int32_t west;
    if (!posix_name(s, &i)) return false;
    size_t std_end = i;
    if (!posix_hms(s, &i, &west)) return false;
    tz->std_off = -west;
    tz->has_rule = true;
    rule_abbr(tz, s, 0, std_end, tz->std_off);
    if (s[i] == 0) return true;
    size_t dst_from = i;
    if (!posix_name(s, &i)) return false;
    size_t dst_end = i;
    tz->rule_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (s[i] && s[i] != ',') {
        if (!posix_hms(s, &i, &west)) return false;
        tz->dst_off = -west;
    }
    rule_abbr(tz, s, dst_from, dst_end, tz->dst_off);
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
        /* Abbreviations in the order the zone used them: the latest wins. */
        const char *chars = (const char *)(ty + typecnt * 6);
        for (size_t k = 0; k < (timecnt ? timecnt : 1); k++) {
            size_t type = timecnt ? ix[k] : 0;
            size_t at = ty[6 * type + 5];
            if (at >= charcnt) continue;
            abbr_set(tz, chars + at, strnlen(chars + at, charcnt - at), tz->utoff[type]);
        }
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
    return (name[0] == '+' || name[0] == '-') && sl_ts_parse_offset(name, strlen(name), off) == 0;
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

/* Common abbreviations and what they stand for when the configured zone
 * does not use them. The ambiguous ones take the reading listed first in
 * the comment (decision 0019); a zone that uses the other reading settles
 * it (sl_tz_abbr_offset looks there first). */
#define H(h, m) ((h)*3600 + ((h) < 0 ? -(m) : (m)) * 60)
static const struct {
    const char *name;
    int32_t off;
} common_abbrs[] = {
    {"UTC", 0},         {"UT", 0},          {"GMT", 0},
    {"Z", 0},           {"WET", 0},         {"WEST", H(1, 0)},
    {"BST", H(1, 0)}, /* British; Bangladesh +06 */
    {"CET", H(1, 0)},   {"CEST", H(2, 0)},  {"MET", H(1, 0)},
    {"MEST", H(2, 0)},  {"EET", H(2, 0)},   {"EEST", H(3, 0)},
    {"MSK", H(3, 0)},   {"TRT", H(3, 0)},   {"IST", H(5, 30)}, /* India; Irish +01, Israel +02 */
    {"IDT", H(3, 0)},   {"PKT", H(5, 0)},   {"WIB", H(7, 0)},
    {"ICT", H(7, 0)},   {"HKT", H(8, 0)},   {"SGT", H(8, 0)},
    {"AWST", H(8, 0)},  {"PHT", H(8, 0)},   {"JST", H(9, 0)},
    {"KST", H(9, 0)},   {"ACST", H(9, 30)}, {"ACDT", H(10, 30)},
    {"AEST", H(10, 0)}, {"AEDT", H(11, 0)}, {"NZST", H(12, 0)},
    {"NZDT", H(13, 0)}, {"SAST", H(2, 0)},  {"CAT", H(2, 0)},
    {"EAT", H(3, 0)},   {"WAT", H(1, 0)},   {"HST", H(-10, 0)},
    {"HDT", H(-9, 0)},  {"AKST", H(-9, 0)}, {"AKDT", H(-8, 0)},
    {"PST", H(-8, 0)},  {"PDT", H(-7, 0)},  {"MST", H(-7, 0)},
    {"MDT", H(-6, 0)},  {"CST", H(-6, 0)}, /* US Central; China +08, Cuba -05 */
    {"CDT", H(-5, 0)},  {"EST", H(-5, 0)},  {"EDT", H(-4, 0)},
    {"AST", H(-4, 0)}, /* Atlantic; Arabia +03 */
    {"ADT", H(-3, 0)},  {"NST", H(-3, 30)}, {"NDT", H(-2, 30)},
    {"BRT", H(-3, 0)},  {"ART", H(-3, 0)},
};
#undef H

int sl_tz_abbr_offset(const sl_tz *tz, const char *abbr, size_t n, int32_t *off)
{
    for (size_t k = 0; tz && k < tz->nabbrs; k++)
        if (strlen(tz->abbrs[k].name) == n && memcmp(tz->abbrs[k].name, abbr, n) == 0) {
            *off = tz->abbrs[k].off;
            return 0;
        }
    for (size_t k = 0; k < sizeof common_abbrs / sizeof *common_abbrs; k++)
        if (strlen(common_abbrs[k].name) == n && memcmp(common_abbrs[k].name, abbr, n) == 0) {
            *off = common_abbrs[k].off;
            return 0;
        }
    return SL_ENOENT;
}
