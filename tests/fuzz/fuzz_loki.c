/* The Loki encoder against what a stock Loki accepts: arbitrary label
 * names and values (batch and record labels), structured-metadata names and
 * values, lines, times and tenants go through sl_loki_req; every request
 * (protobuf+snappy and JSON) must pass the strict receiver's rules
 * (tests/loki_receiver.c: label parser, names, counts and lengths) and the
 * limits it was built with (line size, time window, metadata names); the
 * tenant check must agree with the receiver's. Input: a flags byte, then
 * pieces separated by 0x1f: tenant, batch label name/value, then per field
 * a name (its first byte picks label, metadata or plain) and a value;
 * fields are spread over up to 4 records. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/buf.h"
#include "shipper/loki_encode.h"
#include "shipper/loki_limits.h"
#include "shipper/loki_tenant.h"
#include "tests/loki_receiver.h"

#define NOW_NS   1800000000000000000LL
#define MAX_REC  4
#define MAX_FLD  24
#define MAX_PART 64

typedef struct piece {
    const char *p;
    size_t n;
} piece;

static void check_push(const sl_lr_push *p, const sl_loki_limits *l)
{
    for (size_t s = 0; s < p->n; s++) {
        const sl_lr_stream *st = &p->streams[s];
        if (st->npairs == 0 || st->npairs > l->max_label_names) abort();
        for (uint32_t k = 0; k < st->npairs; k++) {
            if (!sl_lr_name_valid(st->pairs[k].name)) abort();
            if (strlen(st->pairs[k].name) > l->max_label_name_len) abort();
            if (strlen(st->pairs[k].value) > l->max_label_value_len) abort();
        }
        for (size_t i = 0; i < st->n; i++) {
            const sl_lr_entry *e = &st->entries[i];
            if (l->max_line_size && e->line_n > l->max_line_size) abort();
            if (e->ts_ns < NOW_NS - l->reject_old_ns || e->ts_ns > NOW_NS + l->grace_ns) abort();
            for (uint32_t m = 0; m < e->nmeta; m++)
                if (!sl_lr_name_valid(e->meta[m].name)) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t flags = data[0];
    piece part[MAX_PART];
    size_t np = 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    while (np < MAX_PART) {
        const char *sep = memchr(p, 0x1f, (size_t)(end - p));
        part[np++] = (piece){p, (size_t)((sep ? sep : end) - p)};
        if (!sep) break;
        p = sep + 1;
    }

    /* The tenant: sluice's check and the receiver's agree. */
    char tenant[256];
    size_t tn = part[0].n < sizeof tenant - 1 ? part[0].n : sizeof tenant - 1;
    memcpy(tenant, part[0].p, tn);
    tenant[tn] = 0;
    char why[200];
    bool ours = sl_loki_tenant_check(part[0].p, part[0].n, why, sizeof why) == 0;
    bool theirs =
        part[0].n < sizeof tenant - 1 && strlen(tenant) == tn && sl_lr_tenant_valid(tenant);
    if (ours != theirs) abort();

    sl_loki_limits lim;
    sl_loki_limits_default(&lim);
    if (flags & 1) { /* small limits, so cutting is exercised */
        lim.max_line_size = 16;
        lim.max_label_value_len = 8;
        lim.max_label_name_len = 6;
        lim.max_label_names = 3;
    }
    lim.long_lines = flags & 2 ? SL_LOKI_LONG_TRUNCATE : SL_LOKI_LONG_SPLIT;
    lim.out_of_window = flags & 4 ? SL_LOKI_WINDOW_DROP : SL_LOKI_WINDOW_CLAMP;

    static sl_record rec[MAX_REC];
    static sl_field fld[MAX_REC][MAX_FLD];
    static sl_field blab[1];
    sl_batch b;
    memset(&b, 0, sizeof b);
    memset(rec, 0, sizeof rec);
    b.records = rec;
    b.input = "fuzz";
    b.labels = blab;
    if (np > 2) {
        blab[0] = (sl_field){{part[1].p, part[1].n}, {part[2].p, part[2].n}, SL_V_STRING, 0};
        b.nlabels = 1;
    }
    uint32_t nrec = 1 + (flags >> 5) % MAX_REC;
    static const int64_t times[] = {NOW_NS,
                                    NOW_NS - 8LL * 86400 * 1000000000LL,
                                    NOW_NS + 3600LL * 1000000000LL,
                                    -2208988800LL * 1000000000LL,
                                    INT64_MIN,
                                    INT64_MAX,
                                    0,
                                    NOW_NS - 1};
    for (uint32_t i = 0; i < nrec; i++) {
        rec[i].line = (sl_slice){part[np - 1].p, part[np - 1].n};
        rec[i].time_ns = times[((flags >> 3) + i) % 8];
        rec[i].fields = fld[i];
    }
    for (size_t k = 3; k + 1 < np; k += 2) {
        sl_record *r = &rec[(k / 2) % nrec];
        if (r->nfields == MAX_FLD) continue;
        uint8_t kind = part[k].n ? (uint8_t)part[k].p[0] % 3 : 0;
        r->fields[r->nfields++] = (sl_field){{part[k].p, part[k].n},
                                             {part[k + 1].p, part[k + 1].n},
                                             SL_V_STRING,
                                             (uint8_t)(kind == 0   ? SL_FF_LABEL
                                                       : kind == 1 ? SL_FF_METADATA
                                                                   : 0)};
    }
    b.nrecords = nrec;

    static const sl_slice meta_names[] = {{"k8s.pod", 7}, {"trace id", 8}};
    /* A tenant per record from whatever fields the input made. */
    static sl_loki_tpl *tpl;
    if (!tpl && sl_loki_tpl_parse("${labels.lv:-ops}.${fields.k8s.pod:-x}", &tpl, why, sizeof why))
        abort();
    sl_loki_opts o = {.line_format = flags & 8 ? SL_LOKI_LINE_JSON : SL_LOKI_LINE_RAW,
                      .meta_fields = meta_names,
                      .nmeta_fields = 2,
                      .limits = &lim,
                      .tenant = flags & 16 ? tpl : NULL};
    sl_loki_req *q = sl_loki_req_new(&o);
    if (!q) return 0;
    sl_loki_req_set_now(q, NOW_NS);
    sl_err err;
    if (sl_loki_req_add(q, &b, 0, nrec, &err) != 0) abort();
    if (sl_loki_req_records(q) > nrec) abort();
    const uint64_t all = sl_loki_req_records(q);
    sl_buf raw, z;
    sl_buf_init(&raw, 0);
    sl_buf_init(&z, 0);
    char msg[300];
    sl_lr_push push;
    if (sl_loki_req_protobuf(q, &raw, &err) || sl_loki_snappy(raw.p, raw.len, &z, &err)) abort();
    /* The sink's way (64 KiB pieces compressed as they fill): the same bytes. */
    sl_buf win, zp;
    sl_buf_init(&win, 0);
    sl_buf_init(&zp, 0);
    if (sl_loki_req_snappy(q, &win, &zp, &err) || zp.len != z.len || memcmp(zp.p, z.p, z.len))
        abort();
    sl_buf_free(&win);
    sl_buf_free(&zp);
    if (sl_lr_decode_strict("application/x-protobuf", NULL, z.p, z.len, &push, msg, sizeof msg))
        abort();
    check_push(&push, &lim);
    size_t entries = 0;
    for (size_t s = 0; s < push.n; s++) entries += push.streams[s].n;
    if (entries != sl_loki_req_entries(q)) abort();
    sl_lr_push_free(&push);
    sl_buf_reset(&raw);
    if (sl_loki_req_json(q, &raw, &err)) abort();
    if (sl_lr_decode_strict("application/json", NULL, raw.p, raw.len, &push, msg, sizeof msg))
        abort();
    check_push(&push, &lim);
    sl_lr_push_free(&push);
    /* Every tenant a record rendered is one Loki accepts; each tenant's
     * request holds only its records and passes too. */
    uint32_t nt = sl_loki_req_ntenants(q);
    char tcopy[8][160];
    for (uint32_t i = 0; i < nt && i < 8; i++) {
        sl_slice t = sl_loki_req_tenant(q, i);
        if (t.n >= sizeof tcopy[i]) abort();
        memcpy(tcopy[i], t.p, t.n);
        tcopy[i][t.n] = 0;
        if (!sl_lr_tenant_valid(tcopy[i])) abort();
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < nt && i < 8; i++) {
        sl_loki_req_reset(q);
        sl_loki_req_set_tenant(q, tcopy[i], strlen(tcopy[i]));
        if (sl_loki_req_add(q, &b, 0, nrec, &err) != 0) abort();
        sum += sl_loki_req_records(q);
        sl_buf_reset(&raw);
        if (sl_loki_req_protobuf(q, &raw, &err) || sl_loki_snappy(raw.p, raw.len, &z, &err))
            abort();
        if (sl_lr_decode_strict("application/x-protobuf", NULL, z.p, z.len, &push, msg, sizeof msg))
            abort();
        check_push(&push, &lim);
        sl_lr_push_free(&push);
    }
    if (nt > 0 && nt <= 8 && sum != all) abort(); /* each record in exactly one tenant's */
    sl_buf_free(&raw);
    sl_buf_free(&z);
    sl_loki_req_free(q);
    return 0;
}
