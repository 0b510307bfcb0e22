/* The agent's own logs: one logfmt line per event on stderr,
 * `ts=... level=... event=... key=value ...`. Repeats of a failing
 * condition go through sl_ratelimit so a dead sink logs once per interval. */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF };

void sl_log_set_level(int level);
int sl_log_level_from_name(const char *name); /* -1 when unknown */
/* fmt continues the line after `event=...`: pass `key=value` pairs. Values
 * with spaces should be quoted with sl_log_quote. */
void sl_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct sl_ratelimit {
    int64_t interval_ns;
    int64_t next_ns;
    uint64_t suppressed;
} sl_ratelimit;

/* Returns 1 when the caller should log now, with *suppressed set to the
 * number of calls skipped since the last log; 0 otherwise. Not thread-safe:
 * one per emitting thread. */
int sl_ratelimit_ok(sl_ratelimit *rl, uint64_t *suppressed);

/* Writes s as a logfmt value (quoted and escaped when needed) into buf. */
const char *sl_log_quote(char *buf, size_t cap, const char *s, size_t n);

int64_t sl_now_ns(void);       /* CLOCK_REALTIME */
int64_t sl_monotonic_ns(void); /* CLOCK_MONOTONIC */

#endif
