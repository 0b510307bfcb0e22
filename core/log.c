#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/err.h"
#include "core/redact.h"

/* The level is set once at start-up (and on reload); an atomic so that the
 * reload thread and the readers never race. */
static atomic_int log_level = SL_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void sl_log_set_level(int level)
{
    if (level >= SL_LOG_DEBUG && level <= SL_LOG_OFF) atomic_store(&log_level, level);
}

int sl_log_enabled(int level)
{
    return level >= atomic_load_explicit(&log_level, memory_order_relaxed) && level < SL_LOG_OFF;
}

int sl_log_level_from_name(const char *name, int *level)
{
    for (int i = 0; i <= SL_LOG_OFF; i++)
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = i;
            return SL_OK;
        }
    return SL_EINVAL;
}

int64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sl_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A bounded writer: never past cap - 1 (room for the NUL). */
typedef struct lw {
    char *p;
    size_t len, cap;
} lw;

static size_t lw_room(const lw *w)
{
    return w->cap - 1 - w->len;
}

static void lw_put(lw *w, const char *s, size_t n)
{
    if (n > lw_room(w)) n = lw_room(w);
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static bool plain_value(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return false;
    }
    return true;
}

/* One complete quoted logfmt value: "..." with every inner quote escaped
 * and no control characters (sl_log_quote's output). Writing it as it is
 * cannot end the value early or start a line. */
static bool quoted_value(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"') return false;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"') return false;
        /* C1 controls and U+2028/2029 raw: escape them (escape_at) instead */
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f)
            return false;
        if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
            return false;
        if (c == '\\') {
            if (++i >= n - 1) return false; /* would escape the closing quote */
            c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f) return false;
        }
    }
    return true;
}

/* The escaped form of s[*i] (advancing *i past what it consumed) into out;
 * returns its length. */
static size_t escape_at(const unsigned char *s, size_t n, size_t *i, char out[8])
{
    unsigned char c = s[*i];
    (*i)++;
    switch (c) {
    case '"':
        return memcpy(out, "\\\"", 2), 2;
    case '\\':
        return memcpy(out, "\\\\", 2), 2;
    case '\n':
        return memcpy(out, "\\n", 2), 2;
    case '\r':
        return memcpy(out, "\\r", 2), 2;
    case '\t':
        return memcpy(out, "\\t", 2), 2;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) return (size_t)snprintf(out, 8, "\\x%02x", c);
    /* C1 controls (U+0080..U+009F) and the Unicode line and paragraph
     * separators: some viewers break lines or run escapes on them. */
    if (c == 0xc2 && *i < n && s[*i] >= 0x80 && s[*i] <= 0x9f)
        return (size_t)snprintf(out, 8, "\\u%04x", s[(*i)++]);
    if (c == 0xe2 && *i + 1 < n && s[*i] == 0x80 && (s[*i + 1] == 0xa8 || s[*i + 1] == 0xa9)) {
        unsigned cp = s[*i + 1] == 0xa8 ? 0x2028 : 0x2029;
        *i += 2;
        return (size_t)snprintf(out, 8, "\\u%04x", cp);
    }
    out[0] = (char)c;
    return 1;
}

/* s escaped, keeping `reserve` bytes of room; an escape is never cut. */
static void lw_escaped(lw *w, const char *s, size_t n, size_t reserve)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char e[8];
        size_t en = escape_at(u, n, &i, e);
        if (en + reserve > lw_room(w)) return;
        lw_put(w, e, en);
    }
}

/* A %s: how it is written depends on where the format puts it. URLs lose
 * their credentials first, whatever the caller passed (core/redact.h). */
static void lw_string(lw *w, const char *s, size_t n, bool in_quotes, bool after_eq)
{
    char hidden[4096];
    if (sl_redact_wanted(s, n)) n = sl_redact_text(hidden, sizeof hidden, s, n), s = hidden;
    if (in_quotes) {
        lw_escaped(w, s, n, 1); /* the format's closing quote must still fit */
    } else if (plain_value(s, n) || (n && quoted_value(s, n))) {
        if (n <= lw_room(w)) lw_put(w, s, n);
    } else if (n || after_eq) {
        if (lw_room(w) < 2) return;
        lw_put(w, "\"", 1);
        lw_escaped(w, s, n, 1);
        lw_put(w, "\"", 1);
    }
}

enum { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T, LEN_BIG_L };

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
size_t sl_log_format(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (cap == 0) return 0;
    lw w = {buf, 0, cap};
    const char *f = fmt ? fmt : "";
    bool quoted = false; /* inside a "..." the format's own text opened */
    while (*f && lw_room(&w)) {
        if (*f != '%') {
            const char *pct = strchr(f, '%');
            size_t n = pct ? (size_t)(pct - f) : strlen(f);
            for (size_t i = 0; i < n; i++)
                if (f[i] == '"' && (i == 0 || f[i - 1] != '\\')) quoted = !quoted;
            lw_put(&w, f, n);
            f += n;
            continue;
        }
        if (f[1] == '%') {
            lw_put(&w, "%", 1);
            f += 2;
            continue;
        }
        const char *start = f++;
        char spec[48];
        size_t sn = 0;
        spec[sn++] = '%';
        while (*f && strchr("-+ #0", *f) && sn < 8) spec[sn++] = *f++;
        int width = -1, prec = -1;
        if (*f == '*') {
            width = va_arg(ap, int);
            f++;
        } else {
            for (width = 0; *f >= '0' && *f <= '9'; f++)
                if (width < 10000) width = width * 10 + (*f - '0');
        }
        if (*f == '.') {
            f++;
            if (*f == '*') {
                prec = va_arg(ap, int);
                f++;
            } else {
                for (prec = 0; *f >= '0' && *f <= '9'; f++)
                    if (prec < 10000) prec = prec * 10 + (*f - '0');
            }
        }
        int len = LEN_NONE;
        if (f[0] == 'h' && f[1] == 'h')
            len = LEN_HH, f += 2;
        else if (f[0] == 'l' && f[1] == 'l')
            len = LEN_LL, f += 2;
        else if (*f == 'h')
            len = LEN_H, f++;
        else if (*f == 'l')
            len = LEN_L, f++;
        else if (*f == 'z')
            len = LEN_Z, f++;
        else if (*f == 'j')
            len = LEN_J, f++;
        else if (*f == 't')
            len = LEN_T, f++;
        else if (*f == 'L')
            len = LEN_BIG_L, f++;
        char conv = *f ? *f++ : '\0';
        if (conv == 's' || conv == 'c') {
            char one;
            const char *v;
            size_t n;
            if (conv == 'c') {
                one = (char)va_arg(ap, int);
                v = &one, n = 1;
            } else {
                v = va_arg(ap, const char *);
                if (!v) v = "(null)";
                n = prec >= 0 ? strnlen(v, (size_t)prec) : strlen(v);
            }
            bool after_eq = start > fmt && start[-1] == '=';
            lw_string(&w, v, n, quoted, after_eq);
            continue;
        }
        if (width >= 0) sn += (size_t)snprintf(spec + sn, sizeof spec - sn, "%d", width);
        if (prec >= 0) sn += (size_t)snprintf(spec + sn, sizeof spec - sn, ".%d", prec);
        static const char *const len_text[] = {"", "hh", "h", "l", "ll", "z", "j", "t", "L"};
        sn += (size_t)snprintf(spec + sn, sizeof spec - sn, "%s%c", len_text[len], conv);
        char num[128];
        int m = -1;
        switch (conv) {
        case 'd':
        case 'i':
            if (len == LEN_L)
                m = snprintf(num, sizeof num, spec, va_arg(ap, long));
            else if (len == LEN_LL)
                m = snprintf(num, sizeof num, spec, va_arg(ap, long long));
            else if (len == LEN_Z || len == LEN_T)
                m = snprintf(num, sizeof num, spec, va_arg(ap, ptrdiff_t));
            else if (len == LEN_J)
                m = snprintf(num, sizeof num, spec, va_arg(ap, intmax_t));
            else
                m = snprintf(num, sizeof num, spec, va_arg(ap, int));
            break;
        case 'u':
        case 'o':
        case 'x':
        case 'X':
            if (len == LEN_L)
                m = snprintf(num, sizeof num, spec, va_arg(ap, unsigned long));
            else if (len == LEN_LL)
                m = snprintf(num, sizeof num, spec, va_arg(ap, unsigned long long));
            else if (len == LEN_Z || len == LEN_T)
                m = snprintf(num, sizeof num, spec, va_arg(ap, size_t));
            else if (len == LEN_J)
                m = snprintf(num, sizeof num, spec, va_arg(ap, uintmax_t));
            else
                m = snprintf(num, sizeof num, spec, va_arg(ap, unsigned));
            break;
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            if (len == LEN_BIG_L)
                m = snprintf(num, sizeof num, spec, va_arg(ap, long double));
            else
                m = snprintf(num, sizeof num, spec, va_arg(ap, double));
            break;
        case 'p':
            m = snprintf(num, sizeof num, "%p", va_arg(ap, void *));
            break;
        default:
            /* %n or something unknown: the argument types after it cannot be
             * known, so the line ends here. */
            lw_put(&w, "?", 1);
            buf[w.len] = '\0';
            return w.len;
        }
        if (m > 0) lw_put(&w, num, (size_t)m < sizeof num ? (size_t)m : sizeof num - 1);
    }
    /* Defence in depth: the format's own text is trusted, but nothing may
     * end the line early whatever it holds. */
    for (size_t i = 0; i < w.len; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) buf[i] = '?';
    buf[w.len] = '\0';
    return w.len;
}
#pragma GCC diagnostic pop

void sl_log(int level, const char *event, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed) || level >= SL_LOG_OFF)
        return;
    char line[4096];
    int64_t now = sl_now_ns();
    time_t secs = (time_t)(now / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(now % 1000000000 / 1000000), level_names[level]);
    if (n < 0) return;
    lw w = {line, (size_t)n, sizeof line - 1}; /* room for the newline */
    lw_string(&w, event ? event : "", event ? strlen(event) : 0, false, true);
    if (fmt && *fmt && lw_room(&w) > 1) {
        va_list ap;
        va_start(ap, fmt);
        size_t m = sl_log_format(line + w.len + 1, w.cap - w.len - 1, fmt, ap);
        va_end(ap);
        if (m) line[w.len] = ' ', w.len += 1 + m; /* no trailing space without fields */
    }
    line[w.len++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    fwrite(line, 1, w.len, stderr);
}

int sl_ratelimit_ok(sl_ratelimit *rl, uint64_t *suppressed)
{
    int64_t now = sl_monotonic_ns();
    if (now < rl->next_ns) {
        rl->suppressed++;
        return 0;
    }
    if (suppressed) *suppressed = rl->suppressed;
    rl->suppressed = 0;
    rl->next_ns = now + (rl->interval_ns ? rl->interval_ns : 10 * 1000000000LL);
    return 1;
}

const char *sl_log_quote(char *buf, size_t cap, const char *s, size_t n)
{
    if (cap < 3) return "";
    int plain = n > 0;
    for (size_t i = 0; i < n && plain; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '=' || s[i] == '\\' ||
            (unsigned char)s[i] >= 0x7f)
            plain = 0;
    size_t o = 0;
    if (!plain) buf[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (plain) {
            buf[o++] = (char)c;
        } else if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (!plain) buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
