/* What a stock Loki accepts, in one place: the limits a Loki distributor
 * validates a push against (named as in Loki's `limits_config`, with Loki's
 * defaults), and the repairs that make any record acceptable to them. The
 * encoder (loki_encode.c) applies them to every label, metadata name, line
 * and timestamp; the sink (loki.c) to the tenant; `sluice check` to the
 * configured names. Every repair is reported as a bit of enum
 * sl_loki_adjust so the sink can count it in
 * sluice_sink_adjusted_total{sink,reason}. See docs/decisions/0016-*.md. */
#ifndef SLUICE_SHIPPER_LOKI_LIMITS_H
#define SLUICE_SHIPPER_LOKI_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum sl_loki_long_lines { SL_LOKI_LONG_SPLIT, SL_LOKI_LONG_TRUNCATE };
enum sl_loki_window { SL_LOKI_WINDOW_CLAMP, SL_LOKI_WINDOW_DROP };

typedef struct sl_loki_limits {
    uint64_t max_line_size;       /* bytes of a line; 0: no limit (Loki: 256KB) */
    int long_lines;               /* enum sl_loki_long_lines */
    int64_t reject_old_ns;        /* reject_old_samples_max_age; 0: none (Loki: 1w) */
    int64_t grace_ns;             /* creation_grace_period (Loki: 10m) */
    int out_of_window;            /* enum sl_loki_window */
    uint32_t max_label_names;     /* max_label_names_per_series (Loki: 15) */
    uint32_t max_label_value_len; /* max_label_value_length, bytes (Loki: 2048) */
    uint32_t max_label_name_len;  /* max_label_name_length, bytes (Loki: 1024) */
} sl_loki_limits;

/* What was changed to make a record acceptable; one bit each. */
enum sl_loki_adjust {
    SL_LOKI_ADJ_LABEL_VALUE_INVALID,  /* invalid UTF-8, U+FFFD or control bytes replaced */
    SL_LOKI_ADJ_LABEL_VALUE_TOO_LONG, /* cut to max_label_value_length */
    SL_LOKI_ADJ_LABEL_NAME,           /* name normalised or cut to max_label_name_length */
    SL_LOKI_ADJ_TOO_MANY_LABELS,      /* labels beyond max_label_names_per_series left out */
    SL_LOKI_ADJ_METADATA_NAME,        /* structured-metadata name normalised */
    SL_LOKI_ADJ_LINE_TRUNCATED,       /* line cut to max_line_size */
    SL_LOKI_ADJ_LINE_SPLIT,           /* line sent as several entries */
    SL_LOKI_ADJ_TS_TOO_OLD,           /* time clamped up to the oldest accepted */
    SL_LOKI_ADJ_TS_TOO_NEW,           /* time clamped down to now */
    SL_LOKI_ADJ_TENANT,               /* per-record tenant made acceptable */
    SL_LOKI_ADJ_N
};

/* The `reason` label of sluice_sink_adjusted_total for an adjustment. */
const char *sl_loki_adjust_reason(int adj);

/* Loki's defaults. */
void sl_loki_limits_default(sl_loki_limits *l);

/* Label and metadata names the way Loki/Prometheus normalise them: every
 * character outside [A-Za-z0-9_] (a whole UTF-8 sequence, or one invalid
 * byte) becomes '_', a leading digit gets a "key_" prefix; then cut to max
 * bytes (0: no cut). Appends to out; returns 1 when the name changed, 0
 * when not, SL_ENOMEM when out cannot grow. An empty name stays empty. */
int sl_loki_name_normalize(const char *p, size_t n, size_t max, sl_buf *out);
/* True when p is already a valid label name ([a-zA-Z_][a-zA-Z0-9_]*). */
bool sl_loki_name_valid(const char *p, size_t n);

/* A label value made acceptable to Loki's (Prometheus') label parser:
 * every invalid UTF-8 subsequence, U+FFFD, C0 control byte and DEL becomes
 * '?', and the value is cut to at most max bytes on a character boundary.
 * Appends to out; returns the adjustments made as a bit mask
 * (1 << SL_LOKI_ADJ_LABEL_VALUE_*), or SL_ENOMEM when out cannot grow. */
int sl_loki_label_value(const char *p, size_t n, size_t max, sl_buf *out);
/* True when v passes: valid UTF-8, no U+FFFD, no control bytes, <= max. */
bool sl_loki_label_value_ok(const char *p, size_t n, size_t max);

/* The longest prefix of p[0..n) of at most max bytes that ends on a UTF-8
 * character boundary (p is valid UTF-8). */
size_t sl_loki_utf8_cut(const char *p, size_t n, size_t max);

/* Loki's tenant rule (dskit ValidTenantID): 1 to 150 characters of
 * [A-Za-z0-9!-_.*'()], and neither "." nor "..". 0 when valid; otherwise
 * SL_EINVAL and why (a sentence naming the problem) in why[0..cap). */
int sl_loki_tenant_check(const char *t, size_t n, char *why, size_t cap);

/* The time window: 0 when ts is accepted as it is; otherwise the
 * adjustment (SL_LOKI_ADJ_TS_TOO_OLD / _TOO_NEW) with *out set to the
 * nearest accepted time (a minute inside the window's old edge, so a
 * request that waits a little is still accepted; `now` at the new edge).
 * now_ns <= 0 turns the check off. */
int sl_loki_window_check(const sl_loki_limits *l, int64_t now_ns, int64_t ts, int64_t *out);

/* Writes ts as RFC 3339 with nanoseconds, UTC ("2026-12-07T00:00:00.000000001Z"). */
size_t sl_loki_rfc3339(int64_t ts, char *out, size_t cap);

#endif
