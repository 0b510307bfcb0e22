/* The agent's own HTTP endpoint: GET /metrics (Prometheus text, the metrics
 * registry plus process figures) and GET /healthz, served by a small
 * HTTP/1.1 server on its own thread. The pipeline never waits for it: it
 * only reads the registry, whose updates are atomics. Each connection
 * carries one request (Connection: close); requests, connections and time
 * per connection are bounded. */
#ifndef SLUICE_CLI_HTTP_METRICS_H
#define SLUICE_CLI_HTTP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"

typedef struct sl_http_metrics sl_http_metrics;

/* listen: "host:port", "[v6addr]:port" or ":port" (every address); port 0
 * picks a free one (see sl_http_metrics_port). A sink is unhealthy once its
 * gauge sluice_sink_failing{sink=...} has read 1 for longer than
 * unhealthy_after_ms. */
int sl_http_metrics_start(const char *listen, int64_t unhealthy_after_ms, sl_http_metrics **out,
                          sl_err *err);
/* The bound port (useful with port 0). */
int sl_http_metrics_port(const sl_http_metrics *h);
/* Closes every connection and joins the thread. NULL is fine. */
void sl_http_metrics_stop(sl_http_metrics *h);

/* `sluice tail`: GET /tail?match=REGEX&label=k=v streams the records the
 * agent routes as JSON lines. Inputs hand their batches to a bounded ring
 * through sl_http_metrics_tap; the ring is lossy (oldest entries go first,
 * and a contended lock means the batch is skipped), so a slow or stuck
 * tail never slows the pipeline. Both are no-ops while nobody tails. */
bool sl_http_metrics_tailing(const sl_http_metrics *h);
/* Called on an input's thread after parsing; reads b, keeps nothing of it. */
void sl_http_metrics_tap(sl_http_metrics *h, const sl_batch *b);

/* Health tracking, kept free of clocks and I/O so it can be tested alone:
 * the server feeds it the rendered metrics text now and then. */
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
/* Writes the /healthz JSON body into buf (always NUL-terminated) and returns
 * the HTTP status: 200, or 503 when some sink has failed for longer than
 * unhealthy_after_ms. */
int sl_health_eval(const sl_health *h, int64_t now_ms, int64_t unhealthy_after_ms, char *buf,
                   size_t cap);

#endif
