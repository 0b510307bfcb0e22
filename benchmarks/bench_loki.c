/* Loki encoding cost: building + protobuf + snappy of a batch, against
 * snappy alone on the same protobuf bytes (the goal: <= 1.3x) and on the
 * raw lines, measured in the same run; JSON + gzip for reference.
 * Prints medians of several runs, MB/s of record text.
 *
 *   bench_loki [CORPUS]
 *
 * With CORPUS: its lines in ~1 MiB batches, the whole protobuf then snappy
 * against the sink's 64 KiB pieces (decision 0062) only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/chunk.h"
#include "shipper/loki_encode.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* Log lines that look like an access log / app log mix, ~150-250 bytes. */
static sl_batch *make_batch(uint32_t n, bool meta, bool level_label, sl_chunk **chunk)
{
    static const char *paths[] = {"/api/v1/items", "/api/v1/users/login", "/healthz",
                                  "/static/app.js", "/api/v2/orders/search"};
    static const char *levels[] = {"info", "info", "info", "warn", "error"};
    sl_chunk *c = sl_chunk_new((size_t)n * 300);
    sl_batch *b = sl_batch_new(n);
    if (!c || !b) return NULL;
    sl_batch_add_chunk(b, c);
    uint64_t x = 12345;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        char *p = c->data + c->len;
        int len = snprintf(p, c->cap - c->len,
                           "2024-05-01T12:%02u:%02u.%06uZ level=%s host=node-%02u pod=web-%05x "
                           "method=GET path=%s?id=%u status=%u bytes=%u duration_ms=%u.%03u "
                           "trace_id=%016llx user_agent=\"Mozilla/5.0 (X11; Linux x86_64)\"",
                           (unsigned)(i / 60 % 60), (unsigned)(i % 60), (unsigned)(x >> 44),
                           levels[(x >> 20) % 5], (unsigned)((x >> 8) % 32),
                           (unsigned)((x >> 30) & 0xfffff), paths[(x >> 40) % 5],
                           (unsigned)(x >> 50), 200 + (unsigned)((x >> 12) % 4) * 100,
                           (unsigned)((x >> 16) % 100000), (unsigned)((x >> 24) % 900),
                           (unsigned)((x >> 36) % 1000), (unsigned long long)x);
        sl_record *r = sl_batch_add(b, (sl_slice){p, (size_t)len},
                                    1714564800000000000LL + i * 1000LL, c->len + (size_t)len + 1);
        if (level_label) {
            const char *l = strstr(p, "level=") + 6;
            sl_record_add_field(b, r, (sl_slice){"level", 5}, (sl_slice){l, strcspn(l, " ")},
                                SL_V_STRING)
                ->flags = SL_FF_LABEL;
        }
        if (meta) {
            const char *t = strstr(p, "trace_id=") + 9;
            sl_record_add_field(b, r, (sl_slice){"trace_id", 8}, (sl_slice){t, 16}, SL_V_STRING)
                ->flags = SL_FF_METADATA;
        }
        c->len += (size_t)len;
    }
    static const sl_field labels[] = {{{"job", 3}, {"web", 3}, SL_V_STRING, SL_FF_LABEL},
                                      {{"env", 3}, {"prod", 4}, SL_V_STRING, SL_FF_LABEL}};
    sl_batch_set_labels(b, labels, 2);
    sl_batch_set_names(b, "bench", NULL);
    *chunk = c;
    return b;
}

#define RUNS 15

static void run(const char *title, uint32_t nrec, bool meta, bool level_label)
{
    sl_chunk *c;
    sl_batch *b = make_batch(nrec, meta, level_label, &c);
    if (!b) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    sl_loki_kv cfg_labels[] = {{{"cluster", 7}, {"lab", 3}}};
    sl_loki_opts o = {.labels = cfg_labels, .nlabels = 1};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_buf raw, z, lines, z2, js, gz;
    sl_buf_init(&raw, 0);
    sl_buf_init(&z, 0);
    sl_buf_init(&lines, 0);
    sl_buf_init(&z2, 0);
    sl_buf_init(&js, 0);
    sl_buf_init(&gz, 0);
    sl_err err;
    for (uint32_t i = 0; i < b->nrecords; i++)
        sl_buf_append(&lines, b->records[i].line.p, b->records[i].line.n);
    double text = (double)b->bytes / 1e6;
    /* Several batches per timing so each run lasts a few ms. */
    enum { REP = 8 };
    double t_full[RUNS], t_build[RUNS], t_snap_pb[RUNS], t_snap_lines[RUNS], t_json[RUNS],
        t_checked[RUNS], t_unchecked[RUNS], t_pieces[RUNS];
    sl_buf win, zp;
    sl_buf_init(&win, 0);
    sl_buf_init(&zp, 0);
    for (int r = 0; r < RUNS; r++) {
        /* The whole protobuf then snappy (before decision 0062), and the
         * sink's way since: 64 KiB pieces compressed as they fill
         * (sl_loki_req_snappy); adjacent, in alternating order. */
        double t_whole = 0;
        for (int half = 0; half < 2; half++) {
            bool pieces = (half == 0) == (r % 2 == 0);
            double ta = now();
            for (int k = 0; k < REP; k++) {
                sl_loki_req_reset(q);
                sl_buf_reset(&raw);
                if (sl_loki_req_add(q, b, 0, b->nrecords, &err) ||
                    (pieces ? sl_loki_req_snappy(q, &win, &zp, &err)
                            : sl_loki_req_protobuf(q, &raw, &err) ||
                                  sl_loki_snappy(raw.p, raw.len, &z, &err))) {
                    fprintf(stderr, "encode: %s\n", err.msg);
                    exit(1);
                }
            }
            double tb = now();
            if (pieces)
                t_pieces[r] = (tb - ta) / REP;
            else
                t_whole = tb - ta;
        }
        if (zp.len != z.len || memcmp(zp.p, z.p, z.len) != 0) {
            fprintf(stderr, "encode: the pieces are not libsnappy's bytes\n");
            exit(1);
        }
        double t1 = now();
        for (int k = 0; k < REP; k++) {
            sl_loki_req_reset(q);
            sl_buf_reset(&raw);
            sl_loki_req_add(q, b, 0, b->nrecords, &err);
            sl_loki_req_protobuf(q, &raw, &err);
        }
        double t2 = now();
        for (int k = 0; k < REP; k++) sl_loki_snappy(raw.p, raw.len, &z, &err);
        double t3 = now();
        for (int k = 0; k < REP; k++) sl_loki_snappy(lines.p, lines.len, &z2, &err);
        double t4 = now();
        for (int k = 0; k < REP; k++) {
            sl_loki_req_reset(q);
            sl_buf_reset(&js);
            sl_loki_req_add(q, b, 0, b->nrecords, &err);
            sl_loki_req_json(q, &js, &err);
            sl_loki_gzip(js.p, js.len, &gz, &err);
        }
        double t5 = now();
        /* The same lines as the json step leaves them (SL_RF_LINE_UTF8:
         * validated while parsing, not checked again by the encoder),
         * against the same build without the flag, adjacent and in
         * alternating order. */
        for (int half = 0; half < 2; half++) {
            bool flagged = (half == 0) == (r % 2 == 0);
            for (uint32_t i = 0; i < b->nrecords; i++)
                b->records[i].flags = flagged ? SL_RF_LINE_UTF8 : 0;
            double t6 = now();
            for (int k = 0; k < REP; k++) {
                sl_loki_req_reset(q);
                sl_buf_reset(&raw);
                sl_loki_req_add(q, b, 0, b->nrecords, &err);
                sl_loki_req_protobuf(q, &raw, &err);
            }
            double t7 = now();
            (flagged ? t_checked : t_unchecked)[r] = (t7 - t6) / REP;
        }
        for (uint32_t i = 0; i < b->nrecords; i++) b->records[i].flags = 0;
        t_full[r] = t_whole / REP;
        t_build[r] = (t2 - t1) / REP;
        t_snap_pb[r] = (t3 - t2) / REP;
        t_snap_lines[r] = (t4 - t3) / REP;
        t_json[r] = (t5 - t4) / REP;
    }
    double full = median(t_full, RUNS), build = median(t_build, RUNS);
    double pieces = median(t_pieces, RUNS);
    double spb = median(t_snap_pb, RUNS), sl = median(t_snap_lines, RUNS);
    double json = median(t_json, RUNS), checked = median(t_checked, RUNS),
           unchecked = median(t_unchecked, RUNS);
    printf("%s: %u records, %.2f MB of text, protobuf %.2f MB -> snappy %.2f MB (%.1f%%)\n", title,
           nrec, text, (double)raw.len / 1e6, (double)z.len / 1e6,
           100.0 * (double)z.len / (double)raw.len);
    printf("  build+protobuf+snappy   %8.1f MB/s\n", text / full);
    printf("  build+snappy in 64 KiB pieces %8.1f MB/s (%.2fx the time of the line above)\n",
           text / pieces, pieces / full);
    printf("  build+protobuf only     %8.1f MB/s\n", text / build);
    printf("  build+protobuf, lines checked here / as the json step left them (flagged): "
           "%.1f / %.1f MB/s (%.2fx the time)\n",
           text / unchecked, text / checked, checked / unchecked);
    printf("  snappy on the protobuf  %8.1f MB/s   (reference)\n", text / spb);
    printf("  snappy on raw lines     %8.1f MB/s\n", text / sl);
    printf("  build+json+gzip(1)      %8.1f MB/s   (%.2f MB on the wire)\n", text / json,
           (double)gz.len / 1e6);
    printf("  ratio full / snappy(same protobuf bytes) = %.2fx   (goal <= 1.30x)\n", full / spb);
    printf("  ratio full / snappy(raw lines)           = %.2fx\n", full / sl);
    sl_loki_req_free(q);
    sl_buf_free(&raw);
    sl_buf_free(&z);
    sl_buf_free(&lines);
    sl_buf_free(&z2);
    sl_buf_free(&js);
    sl_buf_free(&gz);
    sl_buf_free(&win);
    sl_buf_free(&zp);
    sl_chunk_unref(c);
    sl_batch_unref(b);
}

/* A corpus's lines in batches of ~1 MiB (the file input's reads, one
 * request each): the whole protobuf then snappy against the 64 KiB pieces
 * (decision 0062), per batch the fastest of 7 tries of each taken in turn,
 * thread CPU time. Lines flagged as the json step leaves them. */
static void run_corpus(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t most = 128u << 20;
    sl_chunk *c = sl_chunk_new(most);
    if (!c) exit(1);
    c->len = fread(c->data, 1, most, f);
    fclose(f);
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_buf raw, z, win, zp;
    sl_buf_init(&raw, 0);
    sl_buf_init(&z, 0);
    sl_buf_init(&win, 0);
    sl_buf_init(&zp, 0);
    sl_err err;
    double t_whole = 0, t_pieces = 0;
    size_t text = 0, zbytes = 0, nbatch = 0, at = 0;
    while (at < c->len) {
        sl_batch *b = sl_batch_new(4096);
        if (!b) exit(1);
        sl_batch_add_chunk(b, c);
        size_t start = at;
        while (at < c->len && at - start < (1u << 20)) {
            const char *nl = memchr(c->data + at, '\n', c->len - at);
            size_t end = nl ? (size_t)(nl - c->data) : c->len;
            sl_record *r = sl_batch_add(b, (sl_slice){c->data + at, end - at},
                                        1714564800000000000LL + (int64_t)at, end + 1);
            if (!r) exit(1);
            r->flags = SL_RF_LINE_UTF8;
            at = end + 1;
        }
        sl_batch_set_names(b, "bench", NULL);
        double best[2] = {1e9, 1e9};
        for (int k = 0; k < 14; k++) {
            bool pieces = k % 2 == (int)(nbatch % 2);
            double t0 = cpu_now();
            sl_loki_req_reset(q);
            sl_buf_reset(&raw);
            if (sl_loki_req_add(q, b, 0, b->nrecords, &err) ||
                (pieces ? sl_loki_req_snappy(q, &win, &zp, &err)
                        : sl_loki_req_protobuf(q, &raw, &err) ||
                              sl_loki_snappy(raw.p, raw.len, &z, &err))) {
                fprintf(stderr, "encode: %s\n", err.msg);
                exit(1);
            }
            double t = cpu_now() - t0;
            if (t < best[pieces]) best[pieces] = t;
        }
        if (zp.len != z.len || memcmp(zp.p, z.p, z.len) != 0) {
            fprintf(stderr, "encode: the pieces are not libsnappy's bytes\n");
            exit(1);
        }
        t_whole += best[0];
        t_pieces += best[1];
        text += b->bytes;
        zbytes += z.len;
        nbatch++;
        sl_batch_unref(b);
    }
    printf("corpus %s: %zu batches, %.1f MB of lines -> snappy %.1f MB\n", path, nbatch,
           (double)text / 1e6, (double)zbytes / 1e6);
    printf("  build+protobuf+snappy         %8.1f MB/s\n", (double)text / 1e6 / t_whole);
    printf("  build+snappy in 64 KiB pieces %8.1f MB/s (%.3fx the time of the line above)\n",
           (double)text / 1e6 / t_pieces, t_pieces / t_whole);
    sl_loki_req_free(q);
    sl_buf_free(&raw);
    sl_buf_free(&z);
    sl_buf_free(&win);
    sl_buf_free(&zp);
    sl_chunk_unref(c);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        run_corpus(argv[1]);
        return 0;
    }
    run("one stream", 8000, false, false);
    run("one stream + structured metadata", 8000, true, false);
    run("label from a field (level: 3 streams)", 8000, false, true);
    return 0;
}
