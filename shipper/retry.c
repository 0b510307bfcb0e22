#include "shipper/retry.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sl_retry_init(sl_retry *r, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
    if (base_ms < 1) base_ms = 1;
    if (max_ms < base_ms) max_ms = base_ms;
    r->base_ms = base_ms;
    r->max_ms = max_ms;
    r->attempt = 0;
    r->rng = seed;
}

/* splitmix64: tiny, good enough for jitter, reproducible from the seed. */
static uint64_t next_rand(sl_retry *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int64_t sl_retry_ceiling(const sl_retry *r)
{
    int64_t c = r->base_ms;
    for (uint32_t i = 0; i < r->attempt; i++) {
        if (c > r->max_ms / 2) return r->max_ms;
        c *= 2;
    }
    return c < r->max_ms ? c : r->max_ms;
}

int64_t sl_retry_next(sl_retry *r, int64_t retry_after_ms)
{
    int64_t ceil = sl_retry_ceiling(r);
    int64_t d = (int64_t)(next_rand(r) % ((uint64_t)ceil + 1));
    if (r->attempt < 64) r->attempt++;
    if (retry_after_ms >= 0) {
        if (retry_after_ms > r->max_ms) retry_after_ms = r->max_ms;
        if (d < retry_after_ms) d = retry_after_ms;
    }
    return d;
}

void sl_retry_success(sl_retry *r)
{
    r->attempt = 0;
}

int64_t sl_retry_after_parse(const char *v, int64_t now_s)
{
    if (!v) return SL_RETRY_AFTER_NONE;
    while (*v == ' ' || *v == '\t') v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (*end) return SL_RETRY_AFTER_NONE;
        if (s > 100ull * 365 * 86400) s = 100ull * 365 * 86400;
        return (int64_t)s * 1000;
    }
    /* IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT". */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end) return SL_RETRY_AFTER_NONE;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return SL_RETRY_AFTER_NONE;
    int64_t at = (int64_t)timegm(&tm);
    return at > now_s ? (at - now_s) * 1000 : 0;
}
