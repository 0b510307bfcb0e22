/* Disk spool throughput with fsync: batch, in MB/s of record text:
 *   write  - serialise, compress, append and fdatasync each batch
 *   replay - open (scan + CRC), read, decompress, decode, acknowledge
 * for each codec (LZ4, the default, and zstd -1), against references
 * measured in the same run on the same disk: the same bytes appended raw
 * with one fdatasync per batch, and read back raw.
 *
 * Then the sink buffer as an agent runs it (issue 19's "spool forced"):
 * an input thread builds batches of 4,096 records (formatting the lines is
 * its parsing work) and pushes them into a sl_buffer; a sink thread pops,
 * reads every line and acknowledges. "off": the default 32 MiB memory
 * queue and no spool; "forced": memory_max 1 MiB and a spool, so nearly
 * every batch is written, synced, read back and decoded. Runs alternate
 * off, forced; the ratio is of the medians.
 * Also CRC32C speed (SSE4.2 vs portable), and the decoder alone on entries
 * whose records carry what the json step makes (strings, escaped strings,
 * numbers, literals, an array and an object, each checked against its
 * type on the way in: decision 0054): LZ4 entries read from memory,
 * decompressed and decoded (sl_spool_verify_bytes), in MB/s of record
 * text. Medians of several runs.
 *
 *   bench_spool [MB of records (default 64)] [runs (default 5)] [dir] [decode]
 *
 * With `decode`, only the decoder row (for profiling it alone).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/batch.h"
#include "core/log.h"
#include "core/metrics.h"
#include "parsers/json.h"
#include "pipeline/buffer.h"
#include "pipeline/spool.h"

#define PER_BATCH 500

static double now_s(void)
{
    return (double)sl_monotonic_ns() / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Log lines that look like a service's JSON output, with parsed fields. */
static sl_batch *make_batch_n(uint64_t first, uint32_t per, uint64_t *bytes)
{
    static const char *levels[] = {"info", "info", "info", "warn", "error", "debug"};
    static const char *paths[] = {"/api/v1/users", "/api/v1/orders", "/healthz", "/login",
                                  "/api/v1/items/search"};
    sl_batch *b = sl_batch_new(per);
    if (!b) return NULL;
    sl_batch_set_names(b, "app", "/var/log/app/service.log");
    sl_field lab = {SL_SLICE_LIT("job"), SL_SLICE_LIT("app"), SL_V_STRING, SL_FF_LABEL};
    sl_batch_set_labels(b, &lab, 1);
    uint64_t x = first * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t i = 0; i < per; i++) {
        x ^= x >> 13, x ^= x << 7, x ^= x >> 17;
        uint64_t id = first + i;
        const char *lvl = levels[x % 6], *path = paths[(x >> 8) % 5];
        char line[512];
        int n =
            snprintf(line, sizeof line,
                     "{\"ts\":\"2024-05-01T12:%02u:%02u.%06uZ\",\"level\":\"%s\",\"msg\":"
                     "\"request done\",\"method\":\"GET\",\"path\":\"%s\",\"status\":%u,"
                     "\"duration_ms\":%u,\"req_id\":\"%016" PRIx64 "\",\"seq\":%" PRIu64 "}",
                     (unsigned)(id / 60 % 60), (unsigned)(id % 60), (unsigned)(x % 1000000), lvl,
                     path, 200 + (unsigned)(x >> 20) % 5 * 100, (unsigned)(x >> 32) % 5000, x, id);
        char *p = sl_arena_dup(&b->arena, line, (size_t)n);
        sl_record *r =
            sl_batch_add(b, (sl_slice){p, (size_t)n}, 1714564800000000000LL + (int64_t)id, id + 1);
        sl_record_add_field(b, r, SL_SLICE_LIT("level"), (sl_slice){lvl, strlen(lvl)}, SL_V_STRING);
        sl_record_add_field(b, r, SL_SLICE_LIT("path"), (sl_slice){path, strlen(path)},
                            SL_V_STRING);
        *bytes += (uint64_t)n;
    }
    return b;
}

static sl_batch *make_batch(uint64_t first, uint64_t *bytes)
{
    return make_batch_n(first, PER_BATCH, bytes);
}

static void rm_spool(const char *dir);

/* A batch of JSON lines parsed by the json step: fields of every type. */
static sl_batch *typed_batch(uint64_t first, uint32_t per, uint64_t *bytes)
{
    static const char *levels[] = {"info", "info", "info", "warn", "error", "debug"};
    sl_batch *b = sl_batch_new(per);
    if (!b) return NULL;
    sl_batch_set_names(b, "app", "/var/log/app/service.log");
    sl_field lab = {SL_SLICE_LIT("job"), SL_SLICE_LIT("app"), SL_V_STRING, SL_FF_LABEL};
    sl_batch_set_labels(b, &lab, 1);
    sl_json_opts jo;
    sl_json_opts_init(&jo, NULL);
    uint64_t x = first * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t i = 0; i < per; i++) {
        x ^= x >> 13, x ^= x << 7, x ^= x >> 17;
        uint64_t id = first + i;
        char line[512];
        int n =
            snprintf(line, sizeof line,
                     "{\"ts\":\"2024-05-01T12:%02u:%02u.%06uZ\",\"level\":\"%s\",\"msg\":\"request "
                     "\\\"done\\\" in %u ms\",\"status\":%u,\"duration_ms\":%u.%u,\"cached\":%s,"
                     "\"user\":null,\"req_id\":\"%016" PRIx64 "\",\"tags\":[\"api\",\"v1\"],"
                     "\"ctx\":{\"shard\":%u,\"region\":\"eu-west-1\"},\"seq\":%" PRIu64 "}",
                     (unsigned)(id / 60 % 60), (unsigned)(id % 60), (unsigned)(x % 1000000),
                     levels[x % 6], (unsigned)(x >> 32) % 5000, 200 + (unsigned)(x >> 20) % 5 * 100,
                     (unsigned)(x >> 32) % 5000, (unsigned)(x >> 40) % 10, x & 1 ? "true" : "false",
                     x, (unsigned)(x >> 24) % 64, id);
        char *p = sl_arena_dup(&b->arena, line, (size_t)n);
        sl_record *r =
            sl_batch_add(b, (sl_slice){p, (size_t)n}, 1714564800000000000LL + (int64_t)id, id + 1);
        if (!p || !r || sl_json_parse_record(b, r, &jo, NULL) != SL_OK) {
            sl_batch_unref(b);
            return NULL;
        }
        *bytes += (uint64_t)n;
    }
    return b;
}

/* Decoder MB/s: the typed batches spooled once (LZ4), then every segment
 * verified from memory `runs` times; medians. */
static double decode_typed(const char *dir, uint64_t mb, int runs, double *out)
{
    rm_spool(dir);
    sl_spool_opts o = {.dir = dir, .sink = "bench-typed", .fsync = SL_SPOOL_FSYNC_NEVER};
    sl_spool *s;
    sl_err err;
    if (sl_spool_open(&o, &s, &err) != SL_OK) return -1;
    uint64_t bytes = 0;
    for (uint64_t first = 0; bytes < mb << 20; first += PER_BATCH) {
        sl_batch *b = typed_batch(first, PER_BATCH, &bytes);
        size_t w;
        if (!b || sl_spool_append(s, &b, 1, &w, &err) != SL_OK) return -1;
        sl_batch_unref(b);
    }
    sl_spool_close(s);
    sl_spool_info info;
    sl_spool_seg_info *segs;
    size_t nsegs;
    if (sl_spool_inspect(dir, false, &info, &segs, &nsegs, &err) != SL_OK) return -1;
    char **img = calloc(nsegs ? nsegs : 1, sizeof *img);
    size_t *len = calloc(nsegs ? nsegs : 1, sizeof *len);
    for (size_t i = 0; i < nsegs; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, segs[i].name);
        FILE *f = fopen(path, "rb");
        if (!f) return -1;
        img[i] = malloc(segs[i].bytes);
        len[i] = fread(img[i], 1, segs[i].bytes, f);
        fclose(f);
    }
    for (int r = 0; r < runs; r++) {
        uint64_t entries = 0;
        double t = now_s();
        for (size_t i = 0; i < nsegs; i++) {
            sl_spool_seg_info si;
            if (sl_spool_verify_bytes(img[i], len[i], segs[i].first_seq, &si) != SL_OK ||
                si.corrupt)
                return -1;
            entries += si.entries;
        }
        out[r] = (double)bytes / (1 << 20) / (now_s() - t);
        if (entries != info.entries) return -1;
    }
    for (size_t i = 0; i < nsegs; i++) free(img[i]);
    free(img), free(len), free(segs);
    rm_spool(dir);
    return (double)bytes / (1 << 20);
}

/* ------------------------------------------------ the buffer, input to sink */

#define PIPE_PER 4096

typedef struct pipe_run {
    sl_buffer *b;
    uint64_t want_bytes, pushed_bytes, got_bytes, pushed_records;
    int fd; /* the sink's output file */
    char *buf;
    size_t cap;
} pipe_run;

/* The input's lines, formatted once: a run copies them into batches and
 * adds the two fields a JSON parser would (slices of the line), so the
 * input thread costs about what reading and parsing cost, not snprintf. */
static sl_batch *pipe_lines;

static sl_batch *pipe_batch(uint64_t first, uint64_t *bytes)
{
    sl_batch *b = sl_batch_new(PIPE_PER);
    if (!b) return NULL;
    sl_batch_set_names(b, "app", "/var/log/app/service.log");
    sl_field lab = {SL_SLICE_LIT("job"), SL_SLICE_LIT("app"), SL_V_STRING, SL_FF_LABEL};
    sl_batch_set_labels(b, &lab, 1);
    for (uint32_t i = 0; i < PIPE_PER; i++) {
        const sl_record *src = &pipe_lines->records[i];
        char *p = sl_arena_dup(&b->arena, src->line.p, src->line.n);
        sl_record *r = sl_batch_add(b, (sl_slice){p, src->line.n}, src->time_ns, first + i + 1);
        if (!p || !r) {
            sl_batch_unref(b);
            return NULL;
        }
        for (uint32_t k = 0; k < src->nfields; k++) {
            const sl_field *f = &src->fields[k];
            const char *v = memmem(p, src->line.n, f->val.p, f->val.n);
            sl_record_add_field(b, r, f->key, (sl_slice){v ? v : f->val.p, f->val.n}, f->type);
        }
        *bytes += src->line.n;
    }
    return b;
}

static void *pipe_input(void *arg)
{
    pipe_run *p = arg;
    for (uint64_t first = 0; p->pushed_bytes < p->want_bytes; first += PIPE_PER) {
        sl_batch *b = pipe_batch(first, &p->pushed_bytes);
        p->pushed_records += PIPE_PER;
        if (!b || sl_buffer_push(p->b, b) != SL_OK) abort();
    }
    sl_buffer_close(p->b);
    return NULL;
}

/* Like the file sink with format: raw: each line and a newline, written. */
static void sink_write(pipe_run *p, sl_batch *b)
{
    size_t len = 0;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_slice *l = &b->records[i].line;
        if (len + l->n + 1 > p->cap) {
            if (write(p->fd, p->buf, len) != (ssize_t)len) abort();
            len = 0;
        }
        memcpy(p->buf + len, l->p, l->n);
        len += l->n;
        p->buf[len++] = '\n';
        p->got_bytes += l->n;
    }
    if (len && write(p->fd, p->buf, len) != (ssize_t)len) abort();
}

static void *pipe_sink(void *arg)
{
    pipe_run *p = arg;
    sl_batch *b;
    while (sl_buffer_pop(p->b, &b, -1) == SL_OK) {
        sink_write(p, b);
        sl_batch_done(b);
    }
    return NULL;
}

/* MB/s of record text from the input's first batch to the sink's last. */
static double pipe_once(const char *dir, bool forced, uint64_t mb, double *spooled)
{
    rm_spool(dir);
    sl_buffer_opts o = {.sink = "bench",
                        .memory_max = forced ? 1u << 20 : 32u << 20,
                        .spool_max = forced ? (uint64_t)4 << 30 : 0,
                        .spool_dir = dir,
                        .fsync = SL_SPOOL_FSYNC_BATCH};
    char out[4200];
    snprintf(out, sizeof out, "%s.out", dir);
    pipe_run p = {.want_bytes = mb << 20, .cap = 1 << 20};
    p.fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    p.buf = malloc(p.cap);
    if (p.fd < 0 || !p.buf) exit(1);
    sl_err err;
    if (sl_buffer_new(&o, &p.b, &err) != SL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    char labels[64];
    sl_metric_labels(labels, sizeof labels, "sink", "bench", NULL, NULL);
    int64_t w0 = sl_metrics_value("sluice_spool_written_records_total", labels);
    double t = now_s();
    pthread_t ti, ts;
    pthread_create(&ts, NULL, pipe_sink, &p);
    pthread_create(&ti, NULL, pipe_input, &p);
    pthread_join(ti, NULL);
    /* After close a pop drains memory only: what is still spooled waits
     * for the next start, so read the spool until it is empty too. */
    pthread_join(ts, NULL);
    sl_spool *sp = sl_buffer_spool(p.b);
    sl_batch *b;
    while (sp && sl_spool_next(sp, &b) == SL_OK) {
        sink_write(&p, b);
        sl_batch_done(b);
    }
    double secs = now_s() - t;
    int64_t w1 = sl_metrics_value("sluice_spool_written_records_total", labels);
    if (spooled)
        *spooled = w1 > w0 ? (double)(w1 - (w0 > 0 ? w0 : 0)) / (double)p.pushed_records : 0;
    sl_buffer_free(p.b);
    if (p.got_bytes != p.pushed_bytes) {
        fprintf(stderr, "buffer run: %" PRIu64 " of %" PRIu64 " bytes arrived\n", p.got_bytes,
                p.pushed_bytes);
        exit(1);
    }
    rm_spool(dir);
    close(p.fd);
    unlink(out);
    free(p.buf);
    return (double)p.pushed_bytes / (1 << 20) / secs;
}

static void rm_spool(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    uint64_t mb = argc > 1 ? strtoull(argv[1], NULL, 10) : 64;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *base = argc > 3 ? argv[3] : getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if (runs < 1 || runs > 50 || mb == 0) return 2;
    sl_log_set_level(SL_LOG_ERROR);
    if (argc > 4 && !strcmp(argv[4], "decode")) {
        char ddir[4096];
        snprintf(ddir, sizeof ddir, "%s/sluice-bench-decode-%d", base, (int)getpid());
        double *dec = calloc((size_t)runs, sizeof(double));
        double dmb = dec ? decode_typed(ddir, mb, runs, dec) : -1;
        if (dmb < 0) return 1;
        printf("decode, json-typed fields (LZ4, from memory): %.1f MB in %.1f MB/s\n", dmb,
               median(dec, runs));
        free(dec);
        return 0;
    }

    /* Build the batches once; all runs write the same data. */
    size_t cap = 1024, nb = 0;
    sl_batch **v = malloc(cap * sizeof *v);
    uint64_t bytes = 0;
    while (bytes < mb << 20) {
        if (nb == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[nb] = make_batch(nb * PER_BATCH, &bytes);
        if (!v || !v[nb]) return 1;
        nb++;
    }
    double mbytes = (double)bytes / (1 << 20);
    char dir[4096], raw[4200];
    snprintf(dir, sizeof dir, "%s/sluice-bench-spool-%d", base, (int)getpid());
    snprintf(raw, sizeof raw, "%s.raw", dir);

    double *ref_w = calloc((size_t)runs, sizeof(double)),
           *ref_r = calloc((size_t)runs, sizeof(double));
    double *sp_w[2], *sp_r[2];
    for (int c = 0; c < 2; c++) {
        sp_w[c] = calloc((size_t)runs, sizeof(double));
        sp_r[c] = calloc((size_t)runs, sizeof(double));
    }
    uint64_t disk[2] = {0, 0};
    static const char *codec_name[2] = {"lz4", "zstd -1"};
    for (int r = 0; r < runs; r++) {
        /* Reference: the same text appended raw, fdatasync per batch. */
        int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) return 1;
        char *buf = malloc(1 << 20);
        double t = now_s();
        for (size_t i = 0; i < nb; i++) {
            size_t len = 0;
            for (uint32_t k = 0; k < v[i]->nrecords; k++) {
                memcpy(buf + len, v[i]->records[k].line.p, v[i]->records[k].line.n);
                len += v[i]->records[k].line.n;
                buf[len++] = '\n';
            }
            if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd) != 0) return 1;
        }
        ref_w[r] = mbytes / (now_s() - t);
        close(fd);
        fd = open(raw, O_RDONLY);
        t = now_s();
        ssize_t got;
        while ((got = read(fd, buf, 1 << 20)) > 0) {
        }
        ref_r[r] = mbytes / (now_s() - t);
        close(fd);
        free(buf);
        unlink(raw);

        for (int c = 0; c < 2; c++) {
            rm_spool(dir);
            sl_spool_opts o = {.dir = dir,
                               .sink = "bench",
                               .fsync = SL_SPOOL_FSYNC_BATCH,
                               .codec = c == 0 ? SL_SPOOL_CODEC_LZ4 : SL_SPOOL_CODEC_ZSTD};
            sl_spool *s;
            sl_err err;
            if (sl_spool_open(&o, &s, &err) != SL_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            t = now_s();
            for (size_t i = 0; i < nb; i++) {
                size_t w;
                if (sl_spool_append(s, &v[i], 1, &w, &err) != SL_OK) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
            }
            sp_w[c][r] = mbytes / (now_s() - t);
            sl_spool_usage u;
            sl_spool_get_usage(s, &u);
            disk[c] = u.bytes;
            sl_spool_close(s);

            /* Replay as after a restart: open scans, then read and ack all. */
            t = now_s();
            if (sl_spool_open(&o, &s, &err) != SL_OK) return 1;
            sl_batch *b;
            uint64_t recs = 0;
            while (sl_spool_next(s, &b) == SL_OK) {
                recs += b->nrecords;
                sl_batch_done(b);
            }
            sl_spool_close(s);
            sp_r[c][r] = mbytes / (now_s() - t);
            if (recs != (uint64_t)nb * PER_BATCH) {
                fprintf(stderr, "replayed %" PRIu64 " of %zu records\n", recs, nb * PER_BATCH);
                return 1;
            }
        }
    }
    rm_spool(dir);

    /* CRC32C over 64 MiB. */
    size_t cn = 64u << 20;
    uint8_t *cb = malloc(cn);
    for (size_t i = 0; i < cn; i++) cb[i] = (uint8_t)(i * 2654435761u >> 13);
    double t = now_s();
    uint32_t c1 = sl_crc32c_hw(0, cb, cn);
    double hw = 64 / (now_s() - t);
    t = now_s();
    uint32_t c2 = sl_crc32c_portable(0, cb, cn);
    double sw = 64 / (now_s() - t);
    free(cb);

    /* The decoder alone, on typed fields. */
    double *dec = calloc((size_t)runs, sizeof(double));
    double dec_mb = decode_typed(dir, mb, runs, dec);
    if (dec_mb < 0) {
        fprintf(stderr, "decode_typed failed\n");
        return 1;
    }

    /* The buffer, off and forced, alternating. */
    double *pipe_off = calloc((size_t)runs, sizeof(double)),
           *pipe_forced = calloc((size_t)runs, sizeof(double));
    double *spooled = calloc((size_t)runs, sizeof(double));
    uint64_t pl_bytes = 0;
    pipe_lines = make_batch_n(0, PIPE_PER, &pl_bytes);
    for (int r = 0; r < runs; r++) {
        pipe_off[r] = pipe_once(dir, false, mb, NULL);
        pipe_forced[r] = pipe_once(dir, true, mb, &spooled[r]);
    }

    double rw = median(ref_w, runs), rr = median(ref_r, runs);
    printf("spool: %.1f MB of records in %zu batches of %d, %d runs (medians), fsync: batch\n",
           mbytes, nb, PER_BATCH, runs);
    for (int c = 0; c < 2; c++) {
        double mw = median(sp_w[c], runs), mr = median(sp_r[c], runs);
        printf(" codec %s: on disk %.1f MB (compression %.1fx)\n", codec_name[c],
               (double)disk[c] / (1 << 20), (double)bytes / (double)disk[c]);
        printf("  write : %8.1f MB/s   reference raw append+fdatasync %8.1f MB/s   ratio %.2f\n",
               mw, rw, mw / rw);
        printf("  replay: %8.1f MB/s   reference raw sequential read  %8.1f MB/s   ratio %.2f\n",
               mr, rr, mr / rr);
    }
    double po = median(pipe_off, runs), pf = median(pipe_forced, runs);
    printf("buffer, input thread -> sink thread, batches of %d: spool off %.1f MB/s, "
           "spool forced (memory_max 1MiB) %.1f MB/s, ratio forced/off %.2f "
           "(records through the spool: %.0f%%)\n",
           PIPE_PER, po, pf, pf / po, 100 * median(spooled, runs));
    free(spooled);
    printf("decode, json-typed fields (LZ4, from memory): %.1f MB in %.1f MB/s\n", dec_mb,
           median(dec, runs));
    free(dec);
    printf("crc32c: sse4.2 %s %.0f MB/s, portable %.0f MB/s (%s)\n",
           sl_crc32c_hw_available() ? "" : "(absent)", hw, sw, c1 == c2 ? "agree" : "DISAGREE");
    for (size_t i = 0; i < nb; i++) sl_batch_unref(v[i]);
    free(v);
    sl_batch_unref(pipe_lines);
    free(ref_w), free(ref_r), free(pipe_off), free(pipe_forced);
    for (int c = 0; c < 2; c++) free(sp_w[c]), free(sp_r[c]);
    return c1 == c2 ? 0 : 1;
}
