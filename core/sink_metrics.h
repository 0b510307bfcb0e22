/* The metrics every sink reports, under the names and labels dashboards and
 * tests read (`sluice_sink_*{sink="NAME"}`), named in this one place. The
 * pipeline registers them once per sink and hands them to the sink in
 * sl_sink_ctx.metrics; the sink declares which of the optional series it
 * reports (sl_sink_metrics_of, core/plugin.h) and never names one itself. */
#ifndef SLUICE_CORE_SINK_METRICS_H
#define SLUICE_CORE_SINK_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/metrics.h"

/* Which series a sink reports besides records and bytes (always). Only
 * what a sink declares is registered, so /metrics and /healthz list the
 * same series for each sink as before the metrics moved here. */
enum {
    SL_SINK_M_RETRIES = 1 << 0,      /* sluice_sink_retries_total */
    SL_SINK_M_ERRORS = 1 << 1,       /* sluice_sink_errors_total */
    SL_SINK_M_FAILING = 1 << 2,      /* sluice_sink_failing (0 at start) */
    SL_SINK_M_LAST_SUCCESS = 1 << 3, /* sluice_sink_last_success_timestamp_seconds */
};

typedef struct sl_sink_metrics {
    char name[128];   /* the sink's name */
    char labels[256]; /* sink="NAME" */
    sl_metric *records, *bytes;
    /* NULL unless declared (updates through the functions below are then
     * ignored). */
    sl_metric *retries, *errors, *failing, *last_success;
} sl_sink_metrics;

/* Registers (or finds again: registration is idempotent) the sink's series
 * of mask's set plus records and bytes. */
void sl_sink_metrics_register(sl_sink_metrics *m, const char *sink, unsigned mask);
/* Adds mask's series to m (before the sink's thread starts). */
void sl_sink_metrics_declare(sl_sink_metrics *m, unsigned mask);

/* Records delivered (and the bytes written or sent for them); sets the
 * last success time when declared. */
void sl_sink_metrics_delivered(const sl_sink_metrics *m, uint64_t records, uint64_t bytes);
/* Records dropped for good: sluice_sink_dropped_records_total{sink,reason}. */
void sl_sink_metrics_dropped(const sl_sink_metrics *m, const char *reason, uint64_t n);
/* One request answered: sluice_sink_requests_total{sink,code}. */
void sl_sink_metrics_request(const sl_sink_metrics *m, const char *code);
/* Counts on a declared series; no-ops otherwise. */
void sl_sink_metrics_retried(const sl_sink_metrics *m);
void sl_sink_metrics_error(const sl_sink_metrics *m);
void sl_sink_metrics_set_failing(const sl_sink_metrics *m, bool failing);

#endif
