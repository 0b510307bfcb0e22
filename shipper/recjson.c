#include "shipper/recjson.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/json_escape.h"
#include "core/record_tile.h"

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

/* The record through sl_buf's checked appends, one field at a time: used
 * when the fast path's worst-case reservation does not fit under the
 * buffer's limit, so a record near the limit fails or fits exactly as it
 * always did. */
static int append_checked(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts)
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

/* ---- the fast path: one reservation per record, then raw stores ---- */

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (30 bytes), as sl_format_rfc3339_ns
 * prints it, without gmtime_r and snprintf (most of the old per-record
 * cost). Days to civil date: H. Hinnant's days_from_civil inverse. */
static const char digits2[100][2] = {
#define D10(t)                                                                                     \
    {t, '0'}, {t, '1'}, {t, '2'}, {t, '3'}, {t, '4'}, {t, '5'}, {t, '6'}, {t, '7'}, {t, '8'},      \
    {                                                                                              \
        t, '9'                                                                                     \
    }
    D10('0'), D10('1'), D10('2'), D10('3'), D10('4'),
    D10('5'), D10('6'), D10('7'), D10('8'), D10('9'),
#undef D10
};

static char *put_time(char *o, int64_t ns)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, secs--;
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) sod += 86400, days--;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    /* int64 nanoseconds span the years 1677-2262: always four digits. Two
     * digits per table look-up, on unsigned 32-bit values (the divisions by
     * constants become multiplications): a per-digit loop of 64-bit
     * divisions was a tenth of the encoder's time. */
    uint32_t yy = (uint32_t)y, fr = (uint32_t)frac, sd = (uint32_t)sod;
    memcpy(o, digits2[yy / 100], 2), memcpy(o + 2, digits2[yy % 100], 2), o[4] = '-';
    memcpy(o + 5, digits2[m], 2), o[7] = '-', memcpy(o + 8, digits2[d], 2), o[10] = 'T';
    memcpy(o + 11, digits2[sd / 3600], 2), o[13] = ':';
    memcpy(o + 14, digits2[sd / 60 % 60], 2), o[16] = ':';
    memcpy(o + 17, digits2[sd % 60], 2), o[19] = '.';
    uint32_t hi = fr / 100000, lo = fr % 100000; /* 4 + 5 digits */
    memcpy(o + 20, digits2[hi / 100], 2), memcpy(o + 22, digits2[hi % 100], 2);
    memcpy(o + 24, digits2[lo / 1000], 2), memcpy(o + 26, digits2[lo / 10 % 100], 2);
    o[28] = (char)('0' + lo % 10), o[29] = 'Z';
    return o + 30;
}

static inline char *put_lit(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* How many bytes from v.p may be read: to the end of the line when v lies
 * inside it (the parsers' slices mostly do), else v itself. */
static inline size_t readable(sl_slice v, sl_slice line)
{
    uintptr_t p = (uintptr_t)v.p, lo = (uintptr_t)line.p, hi = lo + line.n;
    if (p >= lo && p <= hi && v.n <= hi - p) return hi - p;
    return v.n;
}

/* Text that needs no escaping (escaped strings, numbers, nested JSON):
 * 16 bytes a step where the line lets us read that far, instead of a
 * memcpy call for a few bytes. The extra bytes written land in the room
 * reserved for the record and are overwritten. */
static inline char *put_copy(char *o, sl_slice v, sl_slice line)
{
    size_t whole = (v.n + 15) & ~(size_t)15;
    if (whole <= readable(v, line)) {
        for (size_t k = 0; k < whole; k += 16) memcpy(o + k, v.p + k, 16);
        return o + v.n;
    }
    return put_lit(o, v.p, v.n);
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Which copy of the writer: the portable one, the SSSE3 one with the
 * escaper's loop inlined, or the AVX2 one, which also checks the line's
 * UTF-8 once and then escapes text known to be valid without looking at
 * its non-ASCII bytes. */
enum writer_kind { W_PORTABLE, W_SSSE3, W_AVX2 };

/* What the writer knows about the record's line. */
typedef struct line_info {
    sl_slice line;
    bool valid_utf8;     /* checked by the AVX2 writer only */
    const line_bits *lb; /* its stop and continuation bits, when the AVX2
                          * writer escaped it (and it is not too long) */
} line_info;

/* Whether v is valid UTF-8 because the line is: v lies inside it and starts
 * and ends on character boundaries (a byte that is not a continuation, or
 * the line's end). A slice of valid UTF-8 cut there is valid UTF-8. */
static inline bool valid_within(sl_slice v, const line_info *li)
{
    if (!li->valid_utf8) return false;
    uintptr_t p = (uintptr_t)v.p, lo = (uintptr_t)li->line.p, hi = lo + li->line.n;
    if (!(p >= lo && p <= hi && v.n <= hi - p)) return false;
    if (v.n == 0) return true;
#ifdef SL_AVX2
    if (li->lb) return !bit_set(li->lb->conts, p - lo) && !bit_set(li->lb->conts, p - lo + v.n);
#endif
    const unsigned char *u = (const unsigned char *)v.p;
    if ((u[0] & 0xC0) == 0x80) return false;
    return p + v.n == hi || (u[v.n] & 0xC0) != 0x80;
}

/* kind: which copy of the writer this is inlined into (a constant there). */
static ALWAYS_INLINE char *put_escaped(char *o, sl_slice v, const line_info *li, size_t *bad,
                                       int kind)
{
#ifdef SL_AVX2
    if (kind == W_AVX2 && valid_within(v, li)) {
        /* Valid text with no stop byte is its own escape: the line's bits
         * say so without reading it again. */
        if (li->lb && bits_clear(li->lb->stops, (size_t)(v.p - li->line.p), v.n))
            return put_copy(o, v, li->line);
        return escape_valid_short_avx2(o, (const unsigned char *)v.p, v.n, readable(v, li->line));
    }
#endif
#ifdef SL_SSSE3
    if (kind != W_PORTABLE)
        return escape_ssse3(o, (const unsigned char *)v.p, v.n, readable(v, li->line), bad).o;
#endif
    (void)kind;
    return o + sl_json_escape_within(o, v.p, v.n, readable(v, li->line), bad);
}

/* The line: in the AVX2 writer checked for UTF-8 while it is escaped as
 * valid text, and escaped again exactly when it is not. */
static ALWAYS_INLINE char *put_line(char *o, line_info *li, line_bits *lb, size_t *bad, int kind)
{
#ifdef SL_AVX2
    if (kind == W_AVX2 && li->valid_utf8)
        return escape_valid_avx2(o, (const unsigned char *)li->line.p, li->line.n, li->line.n);
    if (kind == W_AVX2) {
        char *e = escape_line_avx2(o, (const unsigned char *)li->line.p, li->line.n, lb);
        if (e) {
            li->valid_utf8 = true;
            li->lb = li->line.n <= SL_LINE_BITS_MAX ? lb : NULL;
            return e;
        }
    }
#endif
    (void)lb;
    return put_escaped(o, li->line, li, bad, kind);
}

static ALWAYS_INLINE char *put_field(char *o, const sl_field *f, const line_info *li, int *first,
                                     size_t *bad, int kind)
{
    if (!*first) *o++ = ',';
    *first = 0;
    *o++ = '"';
    /* An escaped key is still valid JSON string content as read; a
     * verbatim one (core/record.h) is its own escape. */
    if (f->flags & (SL_FF_KEY_ESCAPED | SL_FF_VERBATIM))
        o = put_copy(o, f->key, li->line);
    else
        o = put_escaped(o, f->key, li, bad, kind);
    *o++ = '"', *o++ = ':';
    switch (f->type) {
    case SL_V_STRING:
        *o++ = '"';
        if (f->flags & SL_FF_VERBATIM)
            o = put_copy(o, f->val, li->line);
        else
            o = put_escaped(o, f->val, li, bad, kind);
        *o++ = '"';
        break;
    case SL_V_ESCAPED:
        *o++ = '"';
        o = put_copy(o, f->val, li->line);
        *o++ = '"';
        break;
    default:
        o = put_copy(o, f->val, li->line);
    }
    return o;
}

/* Whether the record's fields are its line (core/record_tile.h): not
 * known (0), their positions tile it and the separators are yet to be read
 * (TILED_UNCHECKED), or known to be it: separators read, or the json step
 * vouched for the record (SL_RF_FIELDS_LINE). */
enum { TILED_UNCHECKED = 1, TILED_WHOLE = 2 };

/* The record into o, which has room for its worst case. */
static ALWAYS_INLINE char *write_record(char *o, const sl_batch *b, const sl_record *r,
                                        unsigned parts, int tiled, bool field_labels, size_t *bad,
                                        int kind)
{
    line_info li = {r->line, false, NULL};
    line_bits lbits;
    /* tiled (sl_record_fields_tile_line): when the separators hold too, the fields
     * are one copy of the line and its escape needs no UTF-8 check. The
     * AVX2 writer escapes the line on that assumption first and checks the
     * separators after, with the line in cache; when they do not hold, the
     * line is escaped again over what was written. */
    bool whole = tiled != 0;
    bool speculate = kind == W_AVX2 && tiled == TILED_UNCHECKED && (parts & SL_RJ_LINE);
    if (tiled == TILED_UNCHECKED && !speculate) whole = sl_record_separators_ok(r);
    li.valid_utf8 = whole;
#ifdef SL_AVX2
    if (kind == W_AVX2 && !whole && !(parts & SL_RJ_LINE) &&
        (parts & (SL_RJ_FIELDS | SL_RJ_LABELS)))
        li.valid_utf8 = sl_utf8_valid(r->line.p, r->line.n); /* core/utf8.c's AVX2 check */
#endif
    int first = 1;
    *o++ = '{';
    if (parts & SL_RJ_TIME) {
        o = put_lit(o, "\"time\":\"", 8);
        o = put_time(o, r->time_ns);
        *o++ = '"';
        first = 0;
    }
    if (parts & SL_RJ_LINE) {
        o = first ? put_lit(o, "\"line\":\"", 8) : put_lit(o, ",\"line\":\"", 9);
        char *start = o;
        o = put_line(o, &li, &lbits, bad, kind);
        if (speculate && !sl_record_separators_ok(r)) {
            whole = li.valid_utf8 = false;
            o = put_line(start, &li, &lbits, bad, kind);
        }
        *o++ = '"';
        first = 0;
    }
    if (parts & SL_RJ_FIELDS) {
        o = first ? put_lit(o, "\"fields\":{", 10) : put_lit(o, ",\"fields\":{", 11);
        if (whole) {
            o--; /* the line brings its own braces */
            memcpy(o, r->line.p, r->line.n);
            o += r->line.n;
        } else {
            int ffirst = 1;
            for (uint32_t i = 0; i < r->nfields; i++)
                if (!(r->fields[i].flags & SL_FF_REMOVED))
                    o = put_field(o, &r->fields[i], &li, &ffirst, bad, kind);
            *o++ = '}';
        }
        first = 0;
    }
    if (parts & SL_RJ_LABELS) {
        o = first ? put_lit(o, "\"labels\":{", 10) : put_lit(o, ",\"labels\":{", 11);
        int lfirst = 1;
        for (uint32_t i = 0; i < b->nlabels; i++)
            o = put_field(o, &b->labels[i], &li, &lfirst, bad, kind);
        /* the field array walked again only when a field is a label */
        for (uint32_t i = 0; field_labels && i < r->nfields; i++) {
            const sl_field *f = &r->fields[i];
            if ((f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED))
                o = put_field(o, f, &li, &lfirst, bad, kind);
        }
        *o++ = '}';
    }
    *o++ = '}';
    return o;
}

static char *write_portable(char *o, const sl_batch *b, const sl_record *r, unsigned parts,
                            int tiled, bool field_labels, size_t *bad)
{
    return write_record(o, b, r, parts, tiled, field_labels, bad, W_PORTABLE);
}

#ifdef SL_SSSE3
SL_SSSE3 static char *write_ssse3(char *o, const sl_batch *b, const sl_record *r, unsigned parts,
                                  int tiled, bool field_labels, size_t *bad)
{
    return write_record(o, b, r, parts, tiled, field_labels, bad, W_SSSE3);
}
#endif

#ifdef SL_AVX2
SL_AVX2 static char *write_avx2(char *o, const sl_batch *b, const sl_record *r, unsigned parts,
                                int tiled, bool field_labels, size_t *bad)
{
    return write_record(o, b, r, parts, tiled, field_labels, bad, W_AVX2);
}
#endif

/* Worst-case output of one field (escape room for key and value, quotes,
 * colon, comma); adds to *need, false when a length is absurd. */
static bool field_room(const sl_field *f, size_t *need)
{
    if (f->key.n > SIZE_MAX / 16 || f->val.n > SIZE_MAX / 16) return false;
    *need += SL_JSON_ESCAPE_ROOM(f->key.n) + SL_JSON_ESCAPE_ROOM(f->val.n) + 8;
    return *need < SIZE_MAX / 2;
}

int sl_recjson_append(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts)
{
    return sl_recjson_append_kernel(out, b, r, parts, SL_RJ_KERNEL_AUTO);
}

int sl_recjson_append_kernel(sl_buf *out, const sl_batch *b, const sl_record *r, unsigned parts,
                             int kernel)
{
    if (out->failed) return SL_ENOMEM;
    /* The sinks walk a batch in order: while this record is written, have
     * the next one's field array (written by the parser a while ago, often
     * out of cache by now) on its way. */
    uintptr_t at = (uintptr_t)r, first_rec = (uintptr_t)b->records;
    if (at >= first_rec && (at - first_rec) / sizeof *r + 1 < b->nrecords) {
        /* not when the json step vouched for it: the array is not read */
        if (!(r[1].flags & SL_RF_FIELDS_LINE)) {
            const char *f = (const char *)r[1].fields;
            size_t bytes = (size_t)r[1].nfields * sizeof(sl_field);
            for (size_t k = 0; k < bytes; k += 64) __builtin_prefetch(f + k);
        }
        /* and its line */
        for (size_t k = 0; k < r[1].line.n && k < 4096; k += 64)
            __builtin_prefetch(r[1].line.p + k);
    }
    size_t label_room = 0;
    int tiled = 0;
    if (parts & (SL_RJ_LINE | SL_RJ_FIELDS)) {
        /* Vouched for by the json step (core/record.h): the fields tile the
         * line, its separators hold and none is a label, known without
         * reading the field array the input's thread wrote on the other
         * core (decision 0082). Else the positions are compared here. */
        if (r->flags & SL_RF_FIELDS_LINE)
            tiled = TILED_WHOLE;
        else if (sl_record_fields_tile_line(r, &label_room))
            tiled = TILED_UNCHECKED;
    }
    /* The line left out when the fields are it: its separators read now
     * (the line is needed in cache for the fields' copy anyway). */
    if ((parts & (SL_RJ_LINE_DEDUP | SL_RJ_LINE | SL_RJ_FIELDS)) ==
            (SL_RJ_LINE_DEDUP | SL_RJ_LINE | SL_RJ_FIELDS) &&
        tiled && (tiled == TILED_WHOLE || sl_record_separators_ok(r))) {
        tiled = TILED_WHOLE;
        parts &= ~(unsigned)SL_RJ_LINE;
    }
    /* The whole record's worst case first: every store below is then
     * unchecked, and no field costs a reservation of its own. Tiled, the
     * fields are at most the line again (written field by field when the
     * separators turn out not to hold) and the labels were summed above. */
    size_t need = 96;
    bool sane = r->line.n <= SIZE_MAX / 16;
    if (sane && tiled == TILED_WHOLE) /* the line's escape, when it is written */
        need +=
            ((parts & SL_RJ_LINE) ? SL_JSON_ESCAPE_ROOM(r->line.n) : 0) + r->line.n + label_room;
    if (sane && tiled == TILED_UNCHECKED)
        need += SL_JSON_ESCAPE_ROOM(r->line.n) + r->line.n + label_room;
    bool field_labels = label_room != 0; /* tiled: each label field added room */
    if (sane && !tiled) {
        need += SL_JSON_ESCAPE_ROOM(r->line.n);
        for (uint32_t i = 0; sane && i < r->nfields; i++) {
            sane = field_room(&r->fields[i], &need);
            /* a label field is written twice: under fields and labels */
            if (sane && (r->fields[i].flags & SL_FF_LABEL)) {
                sane = field_room(&r->fields[i], &need);
                field_labels = true;
            }
        }
    }
    for (uint32_t i = 0; sane && i < b->nlabels; i++) sane = field_room(&b->labels[i], &need);
    if (!sane || (out->cap - out->len <= need && sl_buf_reserve(out, need) != SL_OK)) {
        out->failed = 0;
        return append_checked(out, b, r, parts);
    }
    size_t bad = 0;
    char *o = out->p + out->len;
    (void)kernel;
#ifdef SL_AVX2
    if (kernel >= SL_RJ_KERNEL_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi"))
        o = write_avx2(o, b, r, parts, tiled, field_labels, &bad);
    else
#endif
#ifdef SL_SSSE3
        if (kernel >= SL_RJ_KERNEL_SSSE3 && __builtin_cpu_supports("ssse3") &&
            __builtin_cpu_supports("popcnt"))
        o = write_ssse3(o, b, r, parts, tiled, field_labels, &bad);
    else
#endif
        o = write_portable(o, b, r, parts, tiled, field_labels, &bad);
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
    return bad > INT_MAX ? INT_MAX : (int)bad;
}
