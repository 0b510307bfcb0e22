#include "shipper/recjson.h"

#include <stdio.h>
#include <time.h>

#include "core/err.h"

void sl_format_rfc3339_ns(char *buf, size_t cap, int64_t ns)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, secs--;
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
}

static int put_key(sl_buf *out, const sl_field *f, int *first)
{
    if (!*first) sl_buf_putc(out, ',');
    *first = 0;
    sl_buf_putc(out, '"');
    /* An escaped key is still valid JSON string content as read. */
    int bad = 0;
    if (f->flags & SL_FF_KEY_ESCAPED)
        sl_buf_append(out, f->key.p, f->key.n);
    else
        bad = sl_buf_json_escape(out, f->key.p, f->key.n);
    sl_buf_append(out, "\":", 2);
    return bad < 0 ? 0 : bad;
}

static int put_value(sl_buf *out, const sl_field *f)
{
    int bad = 0;
    switch (f->type) {
    case SL_V_STRING:
        sl_buf_putc(out, '"');
        bad = sl_buf_json_escape(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
        break;
    case SL_V_ESCAPED:
        sl_buf_putc(out, '"');
        sl_buf_append(out, f->val.p, f->val.n);
        sl_buf_putc(out, '"');
        break;
    default:
        sl_buf_append(out, f->val.p, f->val.n);
    }
    return bad < 0 ? 0 : bad;
}

int sl_recjson_append(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts)
{
    int bad = 0, first = 1;
    sl_buf_putc(out, '{');
    if (parts & SL_RJ_TIME) {
        char ts[40];
        sl_format_rfc3339_ns(ts, sizeof ts, r->time_ns);
        sl_buf_printf(out, "\"time\":\"%s\"", ts);
        first = 0;
    }
    if (parts & SL_RJ_LINE) {
        sl_buf_append(out, first ? "\"line\":\"" : ",\"line\":\"", first ? 8 : 9);
        int n = sl_buf_json_escape(out, r->line.p, r->line.n);
        if (n > 0) bad += n;
        sl_buf_putc(out, '"');
        first = 0;
    }
    if (parts & SL_RJ_FIELDS) {
        sl_buf_append(out, first ? "\"fields\":{" : ",\"fields\":{", first ? 10 : 11);
        int ffirst = 1;
        for (uint32_t i = 0; i < r->nfields; i++) {
            const sl_field *f = &r->fields[i];
            if (f->flags & SL_FF_REMOVED) continue;
            bad += put_key(out, f, &ffirst);
            bad += put_value(out, f);
        }
        sl_buf_putc(out, '}');
        first = 0;
    }
    if (parts & SL_RJ_LABELS) {
        sl_buf_append(out, first ? "\"labels\":{" : ",\"labels\":{", first ? 10 : 11);
        int lfirst = 1;
        for (uint32_t i = 0; i < b->nlabels; i++) {
            bad += put_key(out, &b->labels[i], &lfirst);
            bad += put_value(out, &b->labels[i]);
        }
        for (uint32_t i = 0; i < r->nfields; i++) {
            const sl_field *f = &r->fields[i];
            if (!(f->flags & SL_FF_LABEL) || (f->flags & SL_FF_REMOVED)) continue;
            bad += put_key(out, f, &lfirst);
            bad += put_value(out, f);
        }
        sl_buf_putc(out, '}');
    }
    sl_buf_putc(out, '}');
    return out->failed ? SL_ENOMEM : bad;
}
