#include "core/sink_metrics.h"

#include <stdio.h>

#include "core/log.h"

void sl_sink_metrics_register(sl_sink_metrics *m, const char *sink, unsigned mask)
{
    *m = (sl_sink_metrics){0};
    snprintf(m->name, sizeof m->name, "%s", sink ? sink : "");
    sl_metric_labels(m->labels, sizeof m->labels, "sink", m->name, NULL, NULL);
    m->records =
        sl_counter("sluice_sink_records_total", "Records delivered by the sink.", m->labels);
    m->bytes =
        sl_counter("sluice_sink_bytes_total", "Bytes written or sent by the sink.", m->labels);
    sl_sink_metrics_declare(m, mask);
}

void sl_sink_metrics_declare(sl_sink_metrics *m, unsigned mask)
{
    if (mask & SL_SINK_M_RETRIES)
        m->retries =
            sl_counter("sluice_sink_retries_total", "Requests retried after a failure.", m->labels);
    if (mask & SL_SINK_M_ERRORS)
        m->errors =
            sl_counter("sluice_sink_errors_total", "Failed write or send attempts.", m->labels);
    if (mask & SL_SINK_M_LAST_SUCCESS)
        m->last_success = sl_gauge("sluice_sink_last_success_timestamp_seconds",
                                   "Unix time of the sink's last successful delivery.", m->labels);
    if ((mask & SL_SINK_M_FAILING) && !m->failing) {
        m->failing =
            sl_gauge("sluice_sink_failing",
                     "1 while the sink's deliveries are failing and being retried.", m->labels);
        sl_metric_set(m->failing, 0);
    }
}

void sl_sink_metrics_delivered(const sl_sink_metrics *m, uint64_t records, uint64_t bytes)
{
    sl_metric_add(m->records, records);
    sl_metric_add(m->bytes, bytes);
    if (m->last_success) sl_metric_set(m->last_success, sl_now_ns()); /* rendered in seconds */
}

void sl_sink_metrics_dropped(const sl_sink_metrics *m, const char *reason, uint64_t n)
{
    char l[320];
    sl_metric_labels(l, sizeof l, "sink", m->name, "reason", reason);
    sl_metric_add(sl_counter("sluice_sink_dropped_records_total",
                             "Records a sink dropped for good, by reason.", l),
                  n);
}

void sl_sink_metrics_request(const sl_sink_metrics *m, const char *code)
{
    char l[320];
    sl_metric_labels(l, sizeof l, "sink", m->name, "code", code);
    sl_metric_inc(
        sl_counter("sluice_sink_requests_total", "Requests sent by the sink, by result.", l));
}

void sl_sink_metrics_retried(const sl_sink_metrics *m)
{
    if (m->retries) sl_metric_inc(m->retries);
}

void sl_sink_metrics_error(const sl_sink_metrics *m)
{
    if (m->errors) sl_metric_inc(m->errors);
}

void sl_sink_metrics_set_failing(const sl_sink_metrics *m, bool failing)
{
    if (m->failing) sl_metric_set(m->failing, failing ? 1 : 0);
}
