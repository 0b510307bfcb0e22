/* Building and encoding Loki push requests. Records of one or more batches
 * are grouped into streams by label set (config labels < the batch's static
 * labels < record fields flagged SL_FF_LABEL, later wins), entries of a
 * stream are ordered by time (stable), every string is made valid UTF-8,
 * then the request is written as a snappy-compressed protobuf PushRequest or
 * as JSON (optionally gzipped). Memory is owned by the request and reused
 * across sl_loki_req_reset(), so a sink allocates only while it grows. */
#ifndef SLUICE_SHIPPER_LOKI_ENCODE_H
#define SLUICE_SHIPPER_LOKI_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/record.h"
#include "shipper/loki_limits.h"
#include "shipper/loki_tenant.h"

enum sl_loki_line_format { SL_LOKI_LINE_RAW, SL_LOKI_LINE_JSON };

typedef struct sl_loki_kv {
    sl_slice name, value;
} sl_loki_kv;

typedef struct sl_loki_opts {
    int line_format;          /* enum sl_loki_line_format */
    const sl_loki_kv *labels; /* static labels from the sink's config */
    uint32_t nlabels;
    const sl_slice *meta_fields; /* field names sent as structured metadata */
    uint32_t nmeta_fields;
    const sl_loki_limits *limits; /* what Loki accepts; NULL: Loki's defaults */
    const sl_loki_tpl *tenant;    /* a tenant per record, or NULL */
} sl_loki_opts;

typedef struct sl_loki_req sl_loki_req;

/* opts (and what it points to) must outlive the request. */
sl_loki_req *sl_loki_req_new(const sl_loki_opts *opts);
void sl_loki_req_free(sl_loki_req *q);
/* From now on, sl_loki_req_add keeps only the records whose stream (label
 * set) hashes to part of nparts, so nparts requests built from the same
 * batches split them by stream: each stream always lands in the same part,
 * which lets several requests be in flight without reordering a stream.
 * nparts <= 1 keeps everything (the default). */
void sl_loki_req_set_part(sl_loki_req *q, uint32_t part, uint32_t nparts);
/* Forgets the content, keeps the memory (and the time set below). */
void sl_loki_req_reset(sl_loki_req *q);
/* The time the request is built at (Unix ns): records outside the limits'
 * window around it are clamped or dropped. 0 (the default) checks no time. */
void sl_loki_req_set_now(sl_loki_req *q, int64_t now_ns);

/* Adds records [first, first+count) of b, skipping SL_RF_DROPPED ones. The
 * request points into b's memory: b must live until the request is reset.
 * SL_ENOMEM on allocation failure (the request is then unusable until
 * reset). */
int sl_loki_req_add(sl_loki_req *q, const sl_batch *b, uint32_t first, uint32_t count, sl_err *err);

/* With a tenant template: from now on sl_loki_req_add keeps only the
 * records whose tenant is t[0..n) (NULL: all). Whatever the filter, the
 * distinct tenants of the records added are listed below. */
void sl_loki_req_set_tenant(sl_loki_req *q, const char *t, size_t n);
uint32_t sl_loki_req_ntenants(const sl_loki_req *q);
sl_slice sl_loki_req_tenant(const sl_loki_req *q, uint32_t i);

uint32_t sl_loki_req_streams(const sl_loki_req *q);
/* Entries in the request (a split line is several). */
uint64_t sl_loki_req_entries(const sl_loki_req *q);
/* Records in the request (dropped ones not included). */
uint64_t sl_loki_req_records(const sl_loki_req *q);
/* Records that needed adjustment adj (enum sl_loki_adjust) to be accepted. */
uint64_t sl_loki_req_adjusted(const sl_loki_req *q, int adj);
/* Records left out because their time was outside the window under
 * out_of_window: drop (too old, too new). */
void sl_loki_req_window_dropped(const sl_loki_req *q, uint64_t *old, uint64_t *young);
/* Entries whose text (line, label or metadata value) had invalid UTF-8. */
uint64_t sl_loki_req_invalid_utf8(const sl_loki_req *q);

/* Appends the uncompressed protobuf PushRequest to out. */
int sl_loki_req_protobuf(sl_loki_req *q, sl_buf *out, sl_err *err);
/* Replaces out's content with the snappy block compression of the
 * protobuf PushRequest, the bytes sl_loki_req_protobuf + sl_loki_snappy
 * give, written and compressed 64 KiB at a time through window (scratch,
 * kept for reuse): the uncompressed request is never held whole. */
int sl_loki_req_snappy(sl_loki_req *q, sl_buf *window, sl_buf *out, sl_err *err);
/* Appends the JSON push body ({"streams":[...]}) to out. */
int sl_loki_req_json(sl_loki_req *q, sl_buf *out, sl_err *err);

/* Replaces out's content with the snappy block compression of in[0..n). */
int sl_loki_snappy(const void *in, size_t n, sl_buf *out, sl_err *err);
/* Replaces out's content with in[0..n) in snappy's block format, stored
 * (literals only, no compression): `compression: none` with protobuf. */
int sl_loki_snappy_stored(const void *in, size_t n, sl_buf *out, sl_err *err);
/* Replaces out's content with the gzip member of in[0..n). */
int sl_loki_gzip(const void *in, size_t n, sl_buf *out, sl_err *err);

/* Appends p[0..n) to out with each maximal invalid subsequence replaced by
 * U+FFFD (Unicode's recommended practice); returns the replacements made,
 * or SL_ENOMEM when out cannot grow. */
long sl_loki_utf8_sanitize(const char *p, size_t n, sl_buf *out);

#endif
