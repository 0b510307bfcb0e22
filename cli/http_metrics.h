/* The agent's own HTTP endpoint on metrics.listen, served by libmicrohttpd
 * (net/http_server.h) on one epoll thread:
 *   GET /metrics  Prometheus text: the registry plus process figures
 *   GET /healthz  liveness: threads running, registry answering (200/503)
 *   GET /readyz   readiness: inputs started, no sink failing for longer
 *                 than metrics.unhealthy_after (200/503, JSON detail)
 * The pipeline never waits for it: it only reads the registry, whose
 * updates are atomics. Connections, connections per address, idle time
 * and request memory are bounded, so no client delays a probe. The tap
 * (`/tail`) is elsewhere: cli/http_tap.h, on its own listener. */
#ifndef SLUICE_CLI_HTTP_METRICS_H
#define SLUICE_CLI_HTTP_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/http_health.h"
#include "core/err.h"

typedef struct sl_http_metrics sl_http_metrics;

/* listen: "host:port", "[v6addr]:port" or ":port" (every address); port 0
 * picks a free one (see sl_http_metrics_port). A sink is failing (not
 * ready) once its gauge sluice_sink_failing{sink=...} has read 1 for longer
 * than unhealthy_after_ms. */
int sl_http_metrics_start(const char *listen, int64_t unhealthy_after_ms, sl_http_metrics **out,
                          sl_err *err);
/* The bound port (useful with port 0). */
int sl_http_metrics_port(const sl_http_metrics *h);
/* Closes every connection and joins the threads; never waits on a client.
 * NULL is fine. */
void sl_http_metrics_stop(sl_http_metrics *h);

/* Every input thread runs: /readyz may answer 200 from now on. */
void sl_http_metrics_set_started(sl_http_metrics *h);
/* A pipeline thread returned without being asked to stop: /healthz 503.
 * NULL h is fine. */
void sl_http_metrics_thread_died(sl_http_metrics *h, const char *name);

#endif
