/* The record as one JSON object, shared by the sinks that offer a JSON
 * form (file/stdout `format: json`, Kafka `value: json`, Loki
 * `line_format: json`):
 *   {"time":"<RFC 3339 ns>","line":"...","fields":{...},"labels":{...}}
 * Invalid UTF-8 in the line and in string fields becomes U+FFFD.
 * With SL_RJ_LINE_DEDUP the "line" member is left out when the "fields"
 * object is the line byte for byte (a JSON line the json step parsed,
 * no field removed, renamed or added): the line is then the text of
 * "fields" (decision 0045). */
#ifndef SLUICE_SHIPPER_RECJSON_H
#define SLUICE_SHIPPER_RECJSON_H

#include "core/batch.h"
#include "core/buf.h"

enum sl_recjson_parts {
    SL_RJ_TIME = 1 << 0,
    SL_RJ_LINE = 1 << 1,
    SL_RJ_FIELDS = 1 << 2,
    SL_RJ_LABELS = 1 << 3,
    SL_RJ_ALL = 0xf,
    /* not in SL_RJ_ALL: with LINE and FIELDS, no "line" when the fields'
     * text is the line */
    SL_RJ_LINE_DEDUP = 1 << 4,
};

/* Appends the JSON of b->records[i]; returns the number of bytes replaced
 * by U+FFFD, or SL_ENOMEM. */
int sl_recjson_append(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts);

/* The writer's copies, best last; AUTO (what sl_recjson_append uses) is the
 * best this CPU has. */
enum sl_recjson_kernel {
    SL_RJ_KERNEL_PORTABLE = 1,
    SL_RJ_KERNEL_SSSE3 = 2,
    SL_RJ_KERNEL_AVX2 = 3,
    SL_RJ_KERNEL_AUTO = 3,
};
/* sl_recjson_append with the copy at most kernel (a lesser one where the CPU
 * lacks it): the same bytes from each, which the tests check. */
int sl_recjson_append_kernel(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts,
                             int kernel);
/* RFC 3339 UTC with nanoseconds into buf (>= 32 bytes). */
void sl_format_rfc3339_ns(char *buf, size_t cap, int64_t ns);

#endif
