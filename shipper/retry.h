/* Retry delays: exponential backoff with full jitter (a uniform draw in
 * [0, min(max, base * 2^attempt)]), honouring a server's Retry-After up to
 * max. Deterministic for a given seed, so tests can assert exact delays. */
#ifndef SLUICE_SHIPPER_RETRY_H
#define SLUICE_SHIPPER_RETRY_H

#include <stdint.h>

typedef struct sl_retry {
    int64_t base_ms, max_ms;
    uint32_t attempt; /* failures since the last success */
    uint64_t rng;
} sl_retry;

/* "The server gave no (usable) Retry-After": a delay in ms is >= 0, so
 * the one negative value says none, in the same int64_t the HTTP result
 * carries it in (shipper/http.h) without a flag beside it. */
#define SL_RETRY_AFTER_NONE ((int64_t)-1)

/* base_ms >= 1, max_ms >= base_ms (clamped otherwise). */
void sl_retry_init(sl_retry *r, int64_t base_ms, int64_t max_ms, uint64_t seed);
/* Delay before the next attempt after a failure. retry_after_ms < 0
 * (SL_RETRY_AFTER_NONE): the server gave none. A Retry-After is a floor
 * (capped at max_ms). */
int64_t sl_retry_next(sl_retry *r, int64_t retry_after_ms);
/* The upper bound of the next draw (for logs and tests). */
int64_t sl_retry_ceiling(const sl_retry *r);
void sl_retry_success(sl_retry *r);

/* Parses a Retry-After value: delta-seconds or an HTTP-date (relative to
 * now_s, Unix seconds). Returns the delay in ms (0 for dates in the past),
 * or SL_RETRY_AFTER_NONE when v is NULL or neither. */
int64_t sl_retry_after_parse(const char *v, int64_t now_s);

#endif
