#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The level is set once at start-up (and on reload); an atomic so that the
 * reload thread and the readers never race. */
static atomic_int log_level = SL_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void sl_log_set_level(int level)
{
    if (level >= SL_LOG_DEBUG && level <= SL_LOG_OFF) atomic_store(&log_level, level);
}

int sl_log_level_from_name(const char *name)
{
    for (int i = 0; i <= SL_LOG_OFF; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    return -1;
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

void sl_log(int level, const char *event, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed) || level >= SL_LOG_OFF)
        return;
    char line[4096];
    int64_t now = sl_now_ns();
    time_t secs = (time_t)(now / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(now % 1000000000 / 1000000), level_names[level], event);
    if (n < 0) return;
    if (fmt && *fmt && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    fwrite(line, 1, (size_t)n, stderr);
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
