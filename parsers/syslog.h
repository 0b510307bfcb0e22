/* Syslog: RFC 5424 (with structured data) and RFC 3164 / BSD file lines
 * (with or without <PRI>), plus the RFC 6587 framing used on TCP. All
 * results are slices of the input; nothing is copied until a record's
 * fields need an unescaped structured-data value. */
#ifndef SLUICE_PARSERS_SYSLOG_H
#define SLUICE_PARSERS_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/record.h"
#include "parsers/timestamp.h"

enum sl_syslog_proto {
    SL_SYSLOG_RFC3164 = 1,
    SL_SYSLOG_RFC5424 = 2,
};

enum sl_syslog_flags {
    SL_SYSLOG_NO_PRI = 1 << 0,       /* no <PRI>: pri, facility, severity are -1 */
    SL_SYSLOG_TIME_UNKNOWN = 1 << 1, /* 3164 date with a month name we do not know */
    SL_SYSLOG_NO_TAG = 1 << 2,       /* 3164 line whose tag does not fit: no appname */
    SL_SYSLOG_NO_HOST = 1 << 3,      /* 3164 line whose first word is already the tag */
    SL_SYSLOG_BOM = 1 << 4,          /* 5424 MSG started with a UTF-8 BOM (removed) */
};

typedef struct sl_syslog_msg {
    int proto;                   /* enum sl_syslog_proto */
    int pri, facility, severity; /* -1 when there is no PRI */
    int version;                 /* 5424 VERSION; 0 for 3164 */
    sl_slice pri_text;           /* the PRI digits */
    sl_slice timestamp;          /* raw text ("" when absent or "-") */
    int64_t time_ns;
    bool has_time;
    sl_slice hostname, appname, procid, msgid; /* "" when absent or "-" */
    sl_slice sd;                               /* raw structured data, "" when "-" */
    uint32_t sd_elements, sd_params;
    sl_slice msg;
    uint32_t flags; /* enum sl_syslog_flags */
} sl_syslog_msg;

typedef struct sl_syslog_opts {
    int64_t now_ns;  /* reference for the 3164 year (the record's read time) */
    const sl_tz *tz; /* zone of 3164 dates; NULL: UTC */
} sl_syslog_opts;

/* Parses one message (a trailing LF, CR or NUL is ignored). Returns 0, or
 * SL_EPARSE with a reason in err (m may still hold the time). A 3164 line
 * after whose host nothing fits a tag (`host some text`) parses, with
 * SL_SYSLOG_NO_TAG, no appname and the rest as the message. */
int sl_syslog_parse(const char *p, size_t n, const sl_syslog_opts *o, sl_syslog_msg *m,
                    sl_err *err);

typedef struct sl_syslog_param {
    sl_slice id, name, value; /* name "" for an element without parameters */
    bool escaped;             /* value holds \" \\ or \] escapes */
} sl_syslog_param;

/* Lists the parameters of m->sd (already validated by sl_syslog_parse).
 * Writes up to cap entries; returns how many there are in all. */
size_t sl_syslog_sd_params(sl_slice sd, sl_syslog_param *out, size_t cap);
/* Unescapes an SD value into dst (room for v.n bytes); returns the length. */
size_t sl_syslog_sd_unescape(sl_slice v, char *dst);

/* RFC 6587 framing on a byte stream. Octet counting (`LEN SP MSG`) when the
 * stream starts with a digit, else non-transparent framing (MSG ends at LF
 * or NUL). On 0 *msg is the frame's message and *used the bytes to consume;
 * SL_EAGAIN when p holds only part of a frame; SL_EPARSE for a bad length
 * or one above max_len. */
int sl_syslog_frame(const char *p, size_t n, size_t max_len, sl_slice *msg, size_t *used);

/* Parses in (usually r->line) and appends fields to r: facility, severity
 * (numbers), level (severity keyword), version, hostname, appname, procid,
 * msgid, `<SD-ID>.<param>` per structured-data parameter, message, and
 * `parse_warning` (and SL_RF_PARSE_WARNING) when the tag did not fit; sets
 * r->time_ns when the message has a time. r->line is left as it is.
 * SL_EPARSE: nothing appended (the time may still have been set);
 * SL_ENOMEM: the batch arena is full. */
int sl_syslog_parse_record(sl_batch *b, sl_record *r, sl_slice in, const sl_syslog_opts *o,
                           sl_err *err);

#endif
