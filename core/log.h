/* The agent's own logs: one logfmt line per event on stderr,
 * `ts=... level=... event=... key=value ...`. Repeats of a failing
 * condition go through sl_ratelimit so a dead sink logs once per interval.
 *
 * No value can break a line or forge a key: sl_log formats `%s` itself.
 * A `%s` right after `=` (or anywhere not inside quotes) is written as a
 * logfmt value: as it is when it is a plain word, otherwise in double quotes
 * with `"`, `\` and control characters escaped (\n, \r, \t, \xNN), so a file
 * named "a\nts=... level=error" stays one value on one line. A `%s` the
 * format already puts in quotes (`error=\"%s\"`, `msg=\"%s: %s\"`) is
 * escaped the same way without adding quotes. A value that already is one complete quoted logfmt
 * value (what sl_log_quote returns) is written as it is. Numbers and the
 * other conversions are formatted as printf does. */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF };

void sl_log_set_level(int level);
/* 1 when a line at level would be written: a caller can skip building
 * values (a quoted path per file opened) for lines that are not. */
int sl_log_enabled(int level);
/* The level named name (any case) into *level: 0, or SL_EINVAL when unknown. */
int sl_log_level_from_name(const char *name, int *level);
/* fmt continues the line after `event=...`: `key=%s` pairs (see above). */
void sl_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The line sl_log would write (without the `ts=... level=... event=...`
 * prefix and the newline) into buf, always NUL-terminated; returns its
 * length. For tests and for callers that log elsewhere. */
size_t sl_log_format(char *buf, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

typedef struct sl_ratelimit {
    int64_t interval_ns;
    int64_t next_ns;
    uint64_t suppressed;
} sl_ratelimit;

/* Returns 1 when the caller should log now, with *suppressed set to the
 * number of calls skipped since the last log; 0 otherwise. Not thread-safe:
 * one per emitting thread. */
int sl_ratelimit_ok(sl_ratelimit *rl, uint64_t *suppressed);

/* Writes s[0..n) as a logfmt value (quoted and escaped when needed) into
 * buf. sl_log quotes `%s` values itself; this is for slices that are not
 * NUL-terminated and for text logged elsewhere. */
const char *sl_log_quote(char *buf, size_t cap, const char *s, size_t n);

int64_t sl_now_ns(void);       /* CLOCK_REALTIME */
int64_t sl_monotonic_ns(void); /* CLOCK_MONOTONIC */

#endif
