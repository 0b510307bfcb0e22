#include "shipper/loki_limits.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/utf8.h"

#define NS_PER_S   1000000000LL
#define NS_PER_MIN (60 * NS_PER_S)

static const char *const reasons[SL_LOKI_ADJ_N] = {
    [SL_LOKI_ADJ_LABEL_VALUE_INVALID] = "label_value_invalid",
    [SL_LOKI_ADJ_LABEL_VALUE_TOO_LONG] = "label_value_too_long",
    [SL_LOKI_ADJ_LABEL_NAME] = "label_name",
    [SL_LOKI_ADJ_TOO_MANY_LABELS] = "too_many_labels",
    [SL_LOKI_ADJ_METADATA_NAME] = "metadata_name",
    [SL_LOKI_ADJ_LINE_TRUNCATED] = "line_truncated",
    [SL_LOKI_ADJ_LINE_SPLIT] = "line_split",
    [SL_LOKI_ADJ_TS_TOO_OLD] = "timestamp_too_old",
    [SL_LOKI_ADJ_TS_TOO_NEW] = "timestamp_too_new",
    [SL_LOKI_ADJ_TENANT] = "tenant",
};

const char *sl_loki_adjust_reason(int adj)
{
    return adj >= 0 && adj < SL_LOKI_ADJ_N ? reasons[adj] : "unknown";
}

void sl_loki_limits_default(sl_loki_limits *l)
{
    *l = (sl_loki_limits){
        .max_line_size = 256000, /* Loki's "256KB" (flagext.ByteSize: 1 KB = 1000 B) */
        .long_lines = SL_LOKI_LONG_SPLIT,
        .reject_old_ns = 7 * 24 * 3600 * NS_PER_S,
        .grace_ns = 10 * NS_PER_MIN,
        .out_of_window = SL_LOKI_WINDOW_CLAMP,
        .max_label_names = 15,
        .max_label_value_len = 2048,
        .max_label_name_len = 1024,
    };
}

static bool name_char(unsigned char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

bool sl_loki_name_valid(const char *p, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)p[i], i == 0)) return false;
    return true;
}

int sl_loki_name_normalize(const char *p, size_t n, size_t max, sl_buf *out)
{
    size_t start = out->len;
    bool changed = false;
    if (n && p[0] >= '0' && p[0] <= '9') {
        if (sl_buf_append(out, "key_", 4)) return SL_ENOMEM;
        changed = true;
    }
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (name_char(c, false)) {
            if (sl_buf_putc(out, (char)c)) return SL_ENOMEM;
            i++;
            continue;
        }
        /* A whole character (or one stray byte) becomes one '_'. */
        int k = sl_utf8_seq((const unsigned char *)p + i, n - i);
        i += k > 0 ? (size_t)k : (size_t)-k;
        if (sl_buf_putc(out, '_')) return SL_ENOMEM;
        changed = true;
    }
    if (max && out->len - start > max) {
        out->len = start + max; /* ASCII only by now: any cut is a boundary */
        out->p[out->len] = '\0';
        changed = true;
    }
    return changed;
}

static bool is_fffd(const unsigned char *p, int k)
{
    return k == 3 && p[0] == 0xEF && p[1] == 0xBF && p[2] == 0xBD;
}

int sl_loki_label_value(const char *p, size_t n, size_t max, sl_buf *out)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t start = out->len;
    int adj = 0;
    for (size_t i = 0; i < n;) {
        size_t used = out->len - start;
        int k = u[i] < 0x80 ? 1 : sl_utf8_seq(u + i, n - i);
        bool bad = k < 0 || (k == 1 && (u[i] < 0x20 || u[i] == 0x7F)) || is_fffd(u + i, k);
        size_t len = bad ? 1 : (size_t)k;
        if (max && used + len > max) {
            adj |= 1 << SL_LOKI_ADJ_LABEL_VALUE_TOO_LONG;
            break;
        }
        if (bad) {
            if (sl_buf_putc(out, '?')) return SL_ENOMEM;
            adj |= 1 << SL_LOKI_ADJ_LABEL_VALUE_INVALID;
            i += k < 0 ? (size_t)-k : (size_t)k;
        } else {
            if (sl_buf_append(out, p + i, len)) return SL_ENOMEM;
            i += len;
        }
    }
    return adj;
}

bool sl_loki_label_value_ok(const char *p, size_t n, size_t max)
{
    const unsigned char *u = (const unsigned char *)p;
    if (max && n > max) return false;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) { /* the usual case, without a call */
            if (u[i] < 0x20 || u[i] == 0x7F) return false;
            i++;
            continue;
        }
        int k = sl_utf8_seq(u + i, n - i);
        if (k < 0 || is_fffd(u + i, k)) return false;
        i += (size_t)k;
    }
    return true;
}

size_t sl_loki_utf8_cut(const char *p, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t i = max;
    /* Back over continuation bytes to the start of the cut character. */
    while (i > 0 && ((unsigned char)p[i] & 0xC0) == 0x80) i--;
    return i;
}

static bool tenant_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '-' || c == '_' || c == '.' || c == '*' || c == '\'' || c == '(' || c == ')';
}

int sl_loki_tenant_check(const char *t, size_t n, char *why, size_t cap)
{
    if (n == 0) return snprintf(why, cap, "the tenant is empty"), SL_EINVAL;
    if (n > 150)
        return snprintf(why, cap, "the tenant is %zu characters long; Loki allows at most 150", n),
               SL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (tenant_char(c)) continue;
        if (c < 0x20 || c == 0x7F)
            snprintf(why, cap,
                     "the tenant has a control character (byte 0x%02x at %zu), which would "
                     "inject into the X-Scope-OrgID header",
                     c, i);
        else
            snprintf(why, cap,
                     "the tenant has '%s%c' at %zu; Loki accepts only letters, digits and "
                     "!-_.*'()",
                     c >= 0x80 ? "\\x" : "", c >= 0x80 ? '?' : (char)c, i);
        return SL_EINVAL;
    }
    if ((n == 1 && t[0] == '.') || (n == 2 && t[0] == '.' && t[1] == '.'))
        return snprintf(why, cap, "the tenant cannot be '.' or '..'"), SL_EINVAL;
    return 0;
}

int sl_loki_window_check(const sl_loki_limits *l, int64_t now_ns, int64_t ts, int64_t *out)
{
    if (now_ns <= 0) return 0;
    if (l->reject_old_ns > 0 && ts < now_ns - l->reject_old_ns) {
        /* A minute inside the edge (or half the window when it is tiny), so
         * a request that waits for a retry is still accepted. */
        int64_t margin = l->reject_old_ns > 2 * NS_PER_MIN ? NS_PER_MIN : l->reject_old_ns / 2;
        *out = now_ns - l->reject_old_ns + margin;
        return SL_LOKI_ADJ_TS_TOO_OLD;
    }
    if (ts > now_ns + l->grace_ns) {
        *out = now_ns;
        return SL_LOKI_ADJ_TS_TOO_NEW;
    }
    return 0;
}

size_t sl_loki_rfc3339(int64_t ts, char *out, size_t cap)
{
    int64_t s = ts / NS_PER_S, ns = ts % NS_PER_S;
    if (ns < 0) ns += NS_PER_S, s--;
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return (size_t)snprintf(out, cap, "%lld", (long long)ts);
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)ns);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
