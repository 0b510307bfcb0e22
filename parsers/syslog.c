#include "parsers/syslog.h"

#include <string.h>

#define SD_ID_MAX 32
#define FIELD_MAX 255 /* hostname, app-name, procid, msgid: lenient, see decision 0004 */
#define TAG_MAX   128
/* A tag with blanks in it (`Microsoft Word[14463]:`, `syslogd 1.4.1:`) is
 * taken only this short and with this few blanks: past that, the colon is
 * more likely part of a message from a sender that writes no tag. */
#define SPACED_TAG_MAX    48
#define SPACED_TAG_BLANKS 3
/* What may sit between `tag[pid]` and its colon (macOS: ` ([31211])`). */
#define TAG_EXTRA_MAX 32

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline bool is_print(char c) /* PRINTUSASCII: %d33-126 */
{
    return (unsigned char)(c - 33) < 94;
}

static const char *const num_str[] = {"0",  "1",  "2",  "3",  "4",  "5",  "6",  "7",
                                      "8",  "9",  "10", "11", "12", "13", "14", "15",
                                      "16", "17", "18", "19", "20", "21", "22", "23"};
static const char *const level_str[] = {"emerg",   "alert",  "crit", "err",
                                        "warning", "notice", "info", "debug"};

/* `<PRI>` at p: 1-3 digits, at most 191, no leading zero. Returns bytes. */
static size_t scan_pri(const char *p, size_t n, sl_syslog_msg *m)
{
    if (n < 3 || p[0] != '<') return 0;
    size_t i = 1;
    int v = 0;
    while (i < n && i < 5 && is_digit(p[i])) v = v * 10 + (p[i++] - '0');
    if (i == 1 || i >= n || p[i] != '>' || v > 191 || (p[1] == '0' && i > 2)) return 0;
    m->pri = v;
    m->facility = v >> 3;
    m->severity = v & 7;
    m->pri_text = (sl_slice){p + 1, i - 1};
    return i + 1;
}

/* One space-delimited 5424 header field; "-" means absent. */
static bool header_field(const char *p, size_t n, size_t *i, size_t max, sl_slice *out)
{
    size_t s = *i, j = s;
    while (j < n && is_print(p[j]) && j - s <= max) j++;
    if (j == s || j - s > max || j >= n || p[j] != ' ') return false;
    *out = (j - s == 1 && p[s] == '-') ? (sl_slice){p + s, 0} : (sl_slice){p + s, j - s};
    *i = j + 1;
    return true;
}

static bool sd_name_char(char c)
{
    return is_print(c) && c != '=' && c != ']' && c != '"';
}

/* STRUCTURED-DATA = "-" / 1*SD-ELEMENT. Validates and counts. */
static bool scan_sd(const char *p, size_t n, size_t *i, sl_syslog_msg *m)
{
    size_t j = *i;
    if (j < n && p[j] == '-') {
        m->sd = (sl_slice){p + j, 0};
        *i = j + 1;
        return true;
    }
    size_t start = j;
    while (j < n && p[j] == '[') {
        j++;
        size_t s = j;
        while (j < n && sd_name_char(p[j]) && j - s <= SD_ID_MAX) j++;
        if (j == s || j - s > SD_ID_MAX) return false;
        m->sd_elements++;
        while (j < n && p[j] == ' ') {
            j++;
            s = j;
            while (j < n && sd_name_char(p[j]) && j - s <= SD_ID_MAX) j++;
            if (j == s || j - s > SD_ID_MAX || n - j < 2 || p[j] != '=' || p[j + 1] != '"')
                return false;
            j += 2;
            for (;;) { /* PARAM-VALUE: any bytes; \" \\ \] are escapes */
                if (j >= n) return false;
                if (p[j] == '\\' && j + 1 < n) {
                    j += 2;
                    continue;
                }
                if (p[j] == '"') break;
                j++;
            }
            j++;
            m->sd_params++;
        }
        if (j >= n || p[j] != ']') return false;
        j++;
    }
    if (j == start) return false;
    m->sd = (sl_slice){p + start, j - start};
    *i = j;
    return true;
}

static int parse_5424(const char *p, size_t n, size_t i, sl_syslog_msg *m, sl_err *err)
{
    m->proto = SL_SYSLOG_RFC5424;
    int v = 0;
    size_t vs = i;
    while (i < n && is_digit(p[i]) && i - vs < 3) v = v * 10 + (p[i++] - '0');
    if (i == vs || p[vs] == '0' || i >= n || p[i] != ' ')
        return sl_errf(err, SL_EPARSE, "rfc5424: bad version");
    m->version = v;
    i++;
    if (i < n && p[i] == '-') {
        i++;
    } else {
        size_t k = sl_ts_scan_rfc3339(p + i, n - i, &m->time_ns);
        if (k == 0) return sl_errf(err, SL_EPARSE, "rfc5424: bad timestamp at byte %zu", i);
        m->timestamp = (sl_slice){p + i, k};
        m->has_time = true;
        i += k;
    }
    if (i >= n || p[i] != ' ') return sl_errf(err, SL_EPARSE, "rfc5424: no space after timestamp");
    i++;
    if (!header_field(p, n, &i, FIELD_MAX, &m->hostname) ||
        !header_field(p, n, &i, FIELD_MAX, &m->appname) ||
        !header_field(p, n, &i, FIELD_MAX, &m->procid) ||
        !header_field(p, n, &i, FIELD_MAX, &m->msgid))
        return sl_errf(err, SL_EPARSE, "rfc5424: bad header field at byte %zu", i);
    if (!scan_sd(p, n, &i, m))
        return sl_errf(err, SL_EPARSE, "rfc5424: bad structured data near byte %zu", i);
    if (i < n) {
        if (p[i] != ' ') return sl_errf(err, SL_EPARSE, "rfc5424: no space before message");
        i++;
        if (n - i >= 3 && memcmp(p + i, "\xef\xbb\xbf", 3) == 0) {
            i += 3;
            m->flags |= SL_SYSLOG_BOM;
        }
    }
    m->msg = (sl_slice){p + i, n - i};
    return 0;
}

/* `Mmm dd hh:mm:ss` (optionally `Mmm dd yyyy hh:mm:ss`) or RFC 3339.
 * Returns bytes consumed (not the following space) or 0. */
static size_t scan_3164_time(const char *p, size_t n, const sl_syslog_opts *o, sl_syslog_msg *m)
{
    if (n > 0 && is_digit(p[0])) { /* ISO: without an offset, a wall time in o->tz */
        size_t k = sl_ts_scan_iso(p, n, o->tz, &m->time_ns);
        m->has_time = k > 0;
        return k;
    }
    size_t ml = 0;
    int mon = sl_ts_month(p, n, &ml);
    if (!mon) { /* a month name we do not know: keep the line's shape */
        while (ml < n && ml < 16 && p[ml] != ' ' && !is_digit(p[ml])) ml++;
        if (ml == 0 || ml >= n || p[ml] != ' ') return 0;
    }
    size_t i = ml;
    if (i >= n || p[i] != ' ') return 0;
    i++;
    if (i < n && p[i] == ' ') i++;
    int day = 0, year = -1;
    size_t ds = i;
    while (i < n && is_digit(p[i]) && i - ds < 2) day = day * 10 + (p[i++] - '0');
    if (i == ds || day < 1 || day > 31 || i >= n || p[i] != ' ') return 0;
    i++;
    if (n - i >= 5 && is_digit(p[i]) && is_digit(p[i + 1]) && is_digit(p[i + 2]) &&
        is_digit(p[i + 3]) && p[i + 4] == ' ') {
        year =
            (p[i] - '0') * 1000 + (p[i + 1] - '0') * 100 + (p[i + 2] - '0') * 10 + p[i + 3] - '0';
        i += 5;
    }
    if (n - i < 8 || !is_digit(p[i]) || !is_digit(p[i + 1]) || p[i + 2] != ':' ||
        !is_digit(p[i + 3]) || !is_digit(p[i + 4]) || p[i + 5] != ':' || !is_digit(p[i + 6]) ||
        !is_digit(p[i + 7]))
        return 0;
    int hh = (p[i] - '0') * 10 + p[i + 1] - '0', mi = (p[i + 3] - '0') * 10 + p[i + 4] - '0',
        ss = (p[i + 6] - '0') * 10 + p[i + 7] - '0';
    if (hh > 23 || mi > 59 || ss > 60) return 0;
    i += 8;
    int64_t nsec = 0; /* some daemons add `.123456` */
    if (i + 1 < n && p[i] == '.' && is_digit(p[i + 1])) {
        int k = 0;
        for (i++; i < n && is_digit(p[i]); i++)
            if (k < 9) nsec = nsec * 10 + (p[i] - '0'), k++;
        for (; k < 9; k++) nsec *= 10;
    }
    if (!mon) {
        m->flags |= SL_SYSLOG_TIME_UNKNOWN;
        return i;
    }
    int64_t sod = hh * 3600 + mi * 60 + ss;
    if (year < 0) {
        int64_t now_s = o->now_ns / 1000000000;
        year = (int)sl_ts_infer_year(mon, day, sod, now_s + sl_tz_offset_at(o->tz, now_s));
    }
    if (day > sl_ts_days_in_month(year, mon)) return 0;
    int64_t local = sl_ts_days_from_civil(year, mon, day) * 86400 + sod;
    int64_t utc = sl_tz_local_to_utc(o->tz, local);
    if (__builtin_mul_overflow(utc, 1000000000LL, &m->time_ns) ||
        __builtin_add_overflow(m->time_ns, nsec, &m->time_ns))
        return 0;
    m->has_time = true;
    return i;
}

/* `tag[pid]: ` or `tag: ` at p[*i], the tag one word; on success *i is at
 * the message. Used on the word after the time, where a tag with blanks
 * cannot be told from `host tag:`. */
static bool scan_tag(const char *p, size_t n, size_t *i, sl_syslog_msg *m)
{
    size_t s = *i, j = s;
    while (j < n && p[j] != ' ' && p[j] != '[' && p[j] != ':' && j - s <= TAG_MAX) j++;
    if (j == s || j - s > TAG_MAX || j >= n) return false;
    sl_slice tag = {p + s, j - s}, pid = {p + j, 0};
    if (p[j] == '[') {
        size_t ps = ++j;
        while (j < n && p[j] != ']' && p[j] != ' ' && j - ps <= TAG_MAX) j++;
        if (j >= n || p[j] != ']' || j - ps > TAG_MAX) return false;
        pid = (sl_slice){p + ps, j - ps};
        j++;
    }
    if (j >= n || p[j] != ':') return false;
    j++;
    if (j < n && p[j] == ' ') j++;
    m->appname = tag;
    m->procid = pid;
    *i = j;
    return true;
}

/* A colon that ends a tag: followed by a blank or the end of the line. */
static inline bool tag_colon(const char *p, size_t n, size_t j)
{
    return p[j] == ':' && (j + 1 == n || p[j + 1] == ' ');
}

/* The tag after the host, leniently (decision 0019): anything up to `[`
 * or `: `, blanks allowed in a short one (`Microsoft Word[14463]: `,
 * `syslogd 1.4.1: `), and after `[pid]` a short aside before the colon
 * (`sandboxd[129] ([31211]): `). False when nothing there fits a tag. */
static bool scan_lenient_tag(const char *p, size_t n, size_t *i, sl_syslog_msg *m)
{
    if (scan_tag(p, n, i, m)) return true; /* one word: `tag:msg` needs no blank */
    size_t s = *i, j = s, blanks = 0;
    while (j < n && j - s <= TAG_MAX && p[j] != '[' && !tag_colon(p, n, j)) blanks += p[j++] == ' ';
    if (j >= n || j - s > TAG_MAX) return false;
    size_t e = j;
    while (e > s && p[e - 1] == ' ') e--;
    if (e == s || p[s] == ' ') return false;
    if (blanks && (e - s > SPACED_TAG_MAX || blanks > SPACED_TAG_BLANKS)) return false;
    sl_slice tag = {p + s, e - s}, pid = {p + j, 0};
    if (p[j] == '[') {
        size_t ps = ++j;
        while (j < n && p[j] != ']' && p[j] != ' ' && j - ps <= TAG_MAX) j++;
        if (j >= n || p[j] != ']' || j == ps || j - ps > TAG_MAX) return false;
        pid = (sl_slice){p + ps, j - ps};
        j++;
        size_t aside = j;
        while (j < n && j - aside <= TAG_EXTRA_MAX && !tag_colon(p, n, j)) j++;
        if (j >= n || j - aside > TAG_EXTRA_MAX) return false;
    }
    j++; /* the colon */
    if (j < n && p[j] == ' ') j++;
    m->appname = tag;
    m->procid = pid;
    *i = j;
    return true;
}

static int parse_3164(const char *p, size_t n, size_t i, const sl_syslog_opts *o, sl_syslog_msg *m,
                      sl_err *err)
{
    m->proto = SL_SYSLOG_RFC3164;
    size_t k = scan_3164_time(p + i, n - i, o, m);
    if (k == 0) return sl_errf(err, SL_EPARSE, "rfc3164: no timestamp at byte %zu", i);
    m->timestamp = (sl_slice){p + i, k};
    i += k;
    if (i < n && p[i] == ':') i++; /* Cisco-style `hh:mm:ss:` */
    if (i >= n || p[i] != ' ') return sl_errf(err, SL_EPARSE, "rfc3164: no host after timestamp");
    i++;
    /* The first word is the host unless it already is the tag (no host). */
    size_t t = i;
    if (scan_tag(p, n, &t, m)) {
        m->flags |= SL_SYSLOG_NO_HOST;
        m->msg = (sl_slice){p + t, n - t};
        return 0;
    }
    size_t hs = i;
    while (i < n && p[i] != ' ' && i - hs <= FIELD_MAX) i++;
    if (i == hs || i - hs > FIELD_MAX)
        return sl_errf(err, SL_EPARSE, "rfc3164: bad host at byte %zu", hs);
    m->hostname = (sl_slice){p + hs, i - hs};
    if (i < n) i++;
    if (!scan_lenient_tag(p, n, &i, m)) {
        /* Time and host are sound: keep them and the rest as the message;
         * only the tag is missing (marked by the flag, not guessed). */
        m->flags |= SL_SYSLOG_NO_TAG;
    }
    m->msg = (sl_slice){p + i, n - i};
    return 0;
}

int sl_syslog_parse(const char *p, size_t n, const sl_syslog_opts *o, sl_syslog_msg *m, sl_err *err)
{
    static const sl_syslog_opts defaults = {0, NULL};
    if (!o) o = &defaults;
    memset(m, 0, sizeof *m);
    m->pri = m->facility = m->severity = -1;
    m->timestamp = m->hostname = m->appname = m->procid = m->msgid = m->sd = m->msg =
        (sl_slice){p, 0};
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == '\0')) n--;
    size_t i = scan_pri(p, n, m);
    if (i == 0) m->flags |= SL_SYSLOG_NO_PRI;
    /* VERSION SP right after PRI (or at the start) means RFC 5424. */
    size_t v = i;
    while (v < n && v - i < 3 && is_digit(p[v])) v++;
    if (v > i && v < n && p[v] == ' ' && p[i] != '0' && (i > 0 || v - i == 1))
        return parse_5424(p, n, i, m, err);
    return parse_3164(p, n, i, o, m, err);
}

size_t sl_syslog_sd_params(sl_slice sd, sl_syslog_param *out, size_t cap)
{
    const char *p = sd.p;
    size_t n = sd.n, j = 0, count = 0;
    while (j < n && p[j] == '[') {
        size_t s = ++j;
        while (j < n && p[j] != ' ' && p[j] != ']') j++;
        sl_slice id = {p + s, j - s};
        bool any = false;
        while (j < n && p[j] == ' ') {
            s = ++j;
            while (j < n && p[j] != '=') j++;
            sl_slice name = {p + s, j - s};
            j += 2; /* =" */
            s = j;
            bool esc = false;
            while (j < n && p[j] != '"') {
                if (p[j] == '\\' && j + 1 < n) {
                    esc = true;
                    j++;
                }
                j++;
            }
            if (j > n) j = n;
            if (count < cap)
                out[count] =
                    (sl_syslog_param){id, name, {p + (s < n ? s : n), j - (s < j ? s : j)}, esc};
            count++;
            any = true;
            if (j < n) j++;
        }
        if (!any) {
            if (count < cap) out[count] = (sl_syslog_param){id, {id.p, 0}, {id.p, 0}, false};
            count++;
        }
        if (j < n && p[j] == ']') j++;
    }
    return count;
}

size_t sl_syslog_sd_unescape(sl_slice v, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] == '\\' && i + 1 < v.n &&
            (v.p[i + 1] == '"' || v.p[i + 1] == '\\' || v.p[i + 1] == ']'))
            i++;
        dst[o++] = v.p[i];
    }
    return o;
}

int sl_syslog_frame(const char *p, size_t n, size_t max_len, sl_slice *msg, size_t *used)
{
    if (n == 0) return SL_EAGAIN;
    if (is_digit(p[0])) {
        size_t i = 0, len = 0;
        if (p[0] == '0') return SL_EPARSE;
        while (i < n && is_digit(p[i])) {
            if (i >= 9) return SL_EPARSE;
            len = len * 10 + (size_t)(p[i++] - '0');
        }
        if (len > max_len) return SL_EPARSE;
        if (i >= n) return SL_EAGAIN;
        if (p[i] != ' ') return SL_EPARSE;
        i++;
        if (n - i < len) return SL_EAGAIN;
        *msg = (sl_slice){p + i, len};
        *used = i + len;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || p[i] == '\0') {
            *msg = (sl_slice){p, i};
            *used = i + 1;
            return 0;
        }
        if (i >= max_len) return SL_EPARSE;
    }
    return SL_EAGAIN;
}

static int add(sl_batch *b, sl_record *r, const char *key, sl_slice val, int type, sl_err *err)
{
    if (!sl_record_add_field(b, r, (sl_slice){key, strlen(key)}, val, type))
        return sl_errf(err, SL_ENOMEM, "syslog: batch arena full");
    return 0;
}

static inline sl_slice cstr(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

int sl_syslog_parse_record(sl_batch *b, sl_record *r, sl_slice in, const sl_syslog_opts *o,
                           sl_err *err)
{
    sl_syslog_msg m;
    int rc = sl_syslog_parse(in.p, in.n, o, &m, err);
    if (m.has_time) r->time_ns = m.time_ns;
    if (rc != 0) return rc;
    if (m.pri >= 0) {
        if ((rc = add(b, r, "facility", cstr(num_str[m.facility]), SL_V_NUMBER, err)) ||
            (rc = add(b, r, "severity", cstr(num_str[m.severity]), SL_V_NUMBER, err)) ||
            (rc = add(b, r, "level", cstr(level_str[m.severity]), SL_V_STRING, err)))
            return rc;
    }
    if (m.proto == SL_SYSLOG_RFC5424 && m.version < 24 &&
        (rc = add(b, r, "version", cstr(num_str[m.version]), SL_V_NUMBER, err)))
        return rc;
    if (m.flags & SL_SYSLOG_TIME_UNKNOWN &&
        (rc = add(b, r, "timestamp", m.timestamp, SL_V_STRING, err)))
        return rc;
    if (m.flags & SL_SYSLOG_NO_TAG) {
        if ((rc = add(b, r, "parse_warning", SL_SLICE_LIT("syslog: rfc3164: no tag after host"),
                      SL_V_STRING, err)))
            return rc;
        r->flags |= SL_RF_PARSE_WARNING;
    }
    static const char *const names[] = {"hostname", "appname", "procid", "msgid"};
    const sl_slice vals[] = {m.hostname, m.appname, m.procid, m.msgid};
    for (int k = 0; k < 4; k++)
        if (vals[k].n && (rc = add(b, r, names[k], vals[k], SL_V_STRING, err))) return rc;
    if (m.sd.n) {
        sl_syslog_param params[64];
        size_t np = sl_syslog_sd_params(m.sd, params, 64);
        if (np > 64) np = 64; /* more is legal but absurd: the raw line keeps them */
        for (size_t k = 0; k < np; k++) {
            const sl_syslog_param *pa = &params[k];
            size_t kl = pa->id.n + (pa->name.n ? 1 + pa->name.n : 0);
            char *key = sl_arena_alloc(&b->arena, kl + 1);
            if (!key) return sl_errf(err, SL_ENOMEM, "syslog: batch arena full");
            memcpy(key, pa->id.p, pa->id.n);
            if (pa->name.n) {
                key[pa->id.n] = '.';
                memcpy(key + pa->id.n + 1, pa->name.p, pa->name.n);
            }
            key[kl] = 0;
            sl_slice val = pa->value;
            if (pa->escaped) {
                char *d = sl_arena_alloc(&b->arena, val.n + 1);
                if (!d) return sl_errf(err, SL_ENOMEM, "syslog: batch arena full");
                val = (sl_slice){d, sl_syslog_sd_unescape(val, d)};
            }
            if (!sl_record_add_field(b, r, (sl_slice){key, kl}, val, SL_V_STRING))
                return sl_errf(err, SL_ENOMEM, "syslog: batch arena full");
        }
    }
    return add(b, r, "message", m.msg, SL_V_STRING, err);
}
