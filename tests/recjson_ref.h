/* The reference record -> JSON serializer the fast one (shipper/recjson.c)
 * is compared against, byte for byte and count for count: by
 * tests/unit/test_recjson.c and tests/fuzz/fuzz_recjson.c. */
#ifndef SLUICE_TESTS_RECJSON_REF_H
#define SLUICE_TESTS_RECJSON_REF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/batch.h"
#include "core/buf.h"
#include "shipper/recjson.h"

/* ---- the reference serializer: the simplest code that says what the
 * format is, through sl_buf's checked appends, gmtime_r and snprintf ---- */

static void ref_time(sl_buf *out, int64_t ns)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, secs--;
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) abort();
    sl_buf_printf(out, "\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ\"", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
}

static int ref_field(sl_buf *out, const sl_field *f, int *first)
{
    int bad = 0;
    if (!*first) sl_buf_putc(out, ',');
    *first = 0;
    sl_buf_putc(out, '"');
    if (f->flags & SL_FF_KEY_ESCAPED)
        sl_buf_append(out, f->key.p, f->key.n);
    else
        bad += sl_buf_json_escape(out, f->key.p, f->key.n);
    sl_buf_append(out, "\":", 2);
    if (f->type == SL_V_STRING) {
        sl_buf_putc(out, '"');
        bad += sl_buf_json_escape(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
    } else if (f->type == SL_V_ESCAPED) {
        sl_buf_putc(out, '"');
        sl_buf_append(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
    } else {
        sl_buf_append(out, f->val.p, f->val.n);
    }
    return bad;
}

/* SL_RJ_LINE_DEDUP: the line is left out when the fields are the json
 * step's, untouched (every one verbatim, none removed), and their JSON is
 * the line, byte for byte. */
static int ref_fields_are_line(const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (!(r->fields[i].flags & SL_FF_VERBATIM) || (r->fields[i].flags & SL_FF_REMOVED))
            return 0;
    sl_buf f;
    sl_buf_init(&f, 0);
    sl_buf_putc(&f, '{');
    int first = 1, bad = 0;
    for (uint32_t i = 0; i < r->nfields; i++) bad += ref_field(&f, &r->fields[i], &first);
    sl_buf_putc(&f, '}');
    if (f.failed) abort();
    int same = !bad && f.len == r->line.n && memcmp(f.p, r->line.p, f.len) == 0;
    sl_buf_free(&f);
    return same;
}

static int ref_record(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts)
{
    int bad = 0, any = 0;
    if ((parts & (SL_RJ_LINE_DEDUP | SL_RJ_LINE | SL_RJ_FIELDS)) ==
            (SL_RJ_LINE_DEDUP | SL_RJ_LINE | SL_RJ_FIELDS) &&
        ref_fields_are_line(r))
        parts &= ~(unsigned)SL_RJ_LINE;
    sl_buf_putc(out, '{');
    if (parts & SL_RJ_TIME) ref_time(out, r->time_ns), any = 1;
    if (parts & SL_RJ_LINE) {
        sl_buf_append(out, &",\"line\":\""[!any], 9 - !any);
        bad += sl_buf_json_escape(out, r->line.p, r->line.n);
        sl_buf_putc(out, '"');
        any = 1;
    }
    if (parts & SL_RJ_FIELDS) {
        sl_buf_append(out, &",\"fields\":{"[!any], 11 - !any);
        int first = 1;
        for (uint32_t i = 0; i < r->nfields; i++)
            if (!(r->fields[i].flags & SL_FF_REMOVED)) bad += ref_field(out, &r->fields[i], &first);
        sl_buf_putc(out, '}');
        any = 1;
    }
    if (parts & SL_RJ_LABELS) {
        sl_buf_append(out, &",\"labels\":{"[!any], 11 - !any);
        int first = 1;
        for (uint32_t i = 0; i < b->nlabels; i++) bad += ref_field(out, &b->labels[i], &first);
        for (uint32_t i = 0; i < r->nfields; i++) {
            const sl_field *f = &r->fields[i];
            if ((f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED))
                bad += ref_field(out, f, &first);
        }
        sl_buf_putc(out, '}');
    }
    sl_buf_putc(out, '}');
    return bad;
}

#endif
