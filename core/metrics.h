/* The metrics registry: the one piece of process-wide mutable state.
 * Counters and gauges are registered once (name + label set) and updated
 * with atomics from any thread; /metrics renders them as Prometheus text.
 * Metrics whose name ends in _seconds or _seconds_total hold nanoseconds
 * and are rendered in seconds, so time can be added with integer atomics. */
#ifndef SLUICE_CORE_METRICS_H
#define SLUICE_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_metric sl_metric;

/* labels: Prometheus label pairs without braces, e.g. `input="app"`, or "".
 * The same (name, labels) returns the same metric. Never NULL: on allocation
 * failure a shared sink metric absorbs updates. */
sl_metric *sl_counter(const char *name, const char *help, const char *labels);
sl_metric *sl_gauge(const char *name, const char *help, const char *labels);
/* Builds a label string `k1="v1",k2="v2"` with values escaped. */
void sl_metric_labels(char *buf, size_t cap, const char *k1, const char *v1, const char *k2,
                      const char *v2);

void sl_metric_add(sl_metric *m, uint64_t n);
void sl_metric_inc(sl_metric *m);
void sl_metric_set(sl_metric *m, int64_t v);
void sl_metric_gauge_add(sl_metric *m, int64_t delta);
int64_t sl_metric_get(const sl_metric *m);
/* Looks a metric up without creating it; -1 when absent (for tests/tools). */
int64_t sl_metrics_value(const char *name, const char *labels);

/* Prometheus text exposition format; caller frees *out. */
int sl_metrics_render(char **out, size_t *len);
/* Forgets every metric (tests only). */
void sl_metrics_reset(void);

#endif
