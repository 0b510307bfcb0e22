/* What /healthz, /readyz and the process part of /metrics say, kept free of
 * sockets (and, for the verdicts, of clocks) so it can be tested alone.
 *   liveness  (/healthz): the agent's threads run and the registry answers;
 *             a destination outage never makes the agent "dead".
 *   readiness (/readyz):  inputs started and no sink failing for longer
 *             than metrics.unhealthy_after. */
#ifndef SLUICE_CLI_HTTP_HEALTH_H
#define SLUICE_CLI_HTTP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SL_HEALTH_MAX_SINKS 32

typedef struct sl_health_sink {
    char name[128];           /* label value as rendered (Prometheus-escaped) */
    int64_t failing_since_ms; /* first observation of failing=1; -1 when healthy */
    bool seen;                /* present in the latest observation */
} sl_health_sink;

typedef struct sl_health {
    sl_health_sink sinks[SL_HEALTH_MAX_SINKS];
    size_t n;
} sl_health;

void sl_health_init(sl_health *h);
/* Reads every `sluice_sink_failing{sink="..."} V` line of a metrics text. A
 * sink missing from the text (its sink was torn down) is forgotten. */
void sl_health_observe(sl_health *h, const char *text, size_t len, int64_t now_ms);
/* Writes the sinks' verdict as JSON into buf (always NUL-terminated) and
 * returns the HTTP status: 200, or 503 when some sink has failed for longer
 * than unhealthy_after_ms. */
int sl_health_eval(const sl_health *h, int64_t now_ms, int64_t unhealthy_after_ms, char *buf,
                   size_t cap);

/* /readyz: 503 "starting" until the inputs run, then sl_health_eval. */
int sl_readiness_eval(bool started, const sl_health *h, int64_t now_ms, int64_t unhealthy_after_ms,
                      char *buf, size_t cap);

typedef struct sl_liveness {
    int64_t sampler_age_ms;  /* since the registry was last rendered by the sampler */
    int64_t wedged_after_ms; /* beyond this the agent is wedged */
    int threads_died;        /* pipeline threads that returned without being stopped */
    char died[128];          /* the first of them */
} sl_liveness;

/* /healthz: 200 {"status":"ok"}, or 503 "dead"/"wedged" with the reason. */
int sl_liveness_eval(const sl_liveness *l, char *buf, size_t cap);

/* Process figures for /metrics: CPU, memory, descriptors, start time (from
 * /proc, so it survives reloads) and build info. */
double sl_process_start_time(void);
void sl_process_metrics_append(sl_buf *b, double start_time);

#endif
