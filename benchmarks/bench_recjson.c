/* Record -> JSON against the raw line out, on the same parsed records in the
 * same run: the file sink's two formats. Each pipeline run is what the agent
 * does per batch of 4096 lines: sl_batch_add, the `- json: {}` parse step,
 * the file sink's encode (raw line + '\n', or sl_recjson_append + '\n') into
 * one reused buffer, write(2) to /dev/null. The ratio json/raw of the two
 * pipeline rates is the goal figure (>= 0.8); json-dedup is the same with
 * the file sink's `json_line: dedup` (SL_RJ_LINE_DEDUP, decision 0045),
 * the line left out where the fields are it; the encoders alone, over the
 * same parsed batches kept in memory, say where the remaining gap is.
 * Rates are MB of input line bytes per second of this thread's CPU time
 * (user + system); medians of [runs], raw and json interleaved in each run
 * so load on the machine hits both alike.
 *
 * usage: bench_recjson CORPUS|MB [runs [raw|json|json-dedup]]
 *   CORPUS: a file of JSON lines, e.g. `build/benchmarks/gen --kind json
 *   --bytes 100M --seed 1 > /tmp/corpus.json` (the e2e corpus); or MB: that
 *   corpus generated in memory by the `gen` next to this binary. runs
 *   default 5. With a format, only that pipeline runs, runs times, and
 *   nothing else: for a profiler or a cycle counter around the whole
 *   process (`perf stat -e cycles:u`), one format against another. */
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/config.h"
#include "parsers/chain.h"
#include "shipper/recjson.h"

#define BATCH   4096
#define MAXRUNS 99

/* This thread's CPU time, not the wall clock: the machine is shared, and
 * time spent descheduled would land on whichever side was running. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The file sink's encode (shipper/filesink.c), one format or the other. */
static void encode(sl_buf *out, const sl_batch *b, int json)
{
    sl_buf_reset(out);
    unsigned parts = json == 1 ? SL_RJ_ALL : (unsigned)json;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (json)
            sl_recjson_append(out, b, r, parts);
        else
            sl_buf_append(out, r->line.p, r->line.n);
        sl_buf_putc(out, '\n');
    }
}

static sl_batch *parse_batch(sl_chain *chain, const sl_slice *lines, size_t from, size_t to)
{
    sl_batch *b = sl_batch_new(BATCH);
    if (!b) return NULL;
    for (size_t i = from; i < to; i++)
        sl_batch_add(b, lines[i], 1700000000000000000LL + (int64_t)i * 1000003, i);
    sl_chain_run(chain, b);
    return b;
}

/* One pass of the whole pipeline; returns seconds, adds output bytes. */
static double pipeline(sl_chain *chain, const sl_slice *lines, size_t nlines, int json, sl_buf *out,
                       int devnull, uint64_t *outbytes)
{
    double t0 = now_s();
    for (size_t i = 0; i < nlines; i += BATCH) {
        size_t to = i + BATCH < nlines ? i + BATCH : nlines;
        sl_batch *b = parse_batch(chain, lines, i, to);
        if (!b) exit(1);
        encode(out, b, json);
        if (write(devnull, out->p, out->len) != (ssize_t)out->len) exit(1);
        *outbytes += out->len;
        sl_batch_unref(b);
    }
    return now_s() - t0;
}

static char *read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(path);
        return NULL;
    }
    *size = (size_t)st.st_size;
    char *buf = malloc(*size + 1);
    size_t got = 0;
    while (buf && got < *size) {
        ssize_t r = read(fd, buf + got, *size - got);
        if (r <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    return buf;
}

/* The e2e corpus (`gen --kind json --seed 1`), from the gen beside argv0. */
static char *generate(const char *argv0, size_t mb, size_t *size)
{
    char self[4096], cmd[4200];
    snprintf(self, sizeof self, "%s", argv0);
    snprintf(cmd, sizeof cmd, "'%s/gen' --kind json --bytes %zuM --seed 1", dirname(self), mb);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = (mb << 20) + 65536, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, p)) > 0) {
        len += r;
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (pclose(p) != 0 || len == 0) {
        fprintf(stderr, "bench_recjson: %s failed\n", cmd);
        free(buf);
        return NULL;
    }
    *size = len;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_recjson CORPUS|MB [runs]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs <= 0 || runs > MAXRUNS) return 2;
    int only = -1; /* the pipeline alone: 0 raw, 1 json, SL_RJ_ALL | SL_RJ_LINE_DEDUP */
    if (argc > 3) {
        if (!strcmp(argv[3], "raw"))
            only = 0;
        else if (!strcmp(argv[3], "json"))
            only = 1;
        else if (!strcmp(argv[3], "json-dedup"))
            only = (int)(SL_RJ_ALL | SL_RJ_LINE_DEDUP);
        else
            return 2;
    }
    size_t size = 0;
    char *buf = NULL;
    if (isdigit((unsigned char)argv[1][0]) && !strchr(argv[1], '/')) {
        buf = generate(argv[0], (size_t)atoi(argv[1]), &size);
    } else {
        buf = read_file(argv[1], &size);
    }
    if (!buf) return 1;
    size_t nlines = 0, cap = 1024, bytes = 0;
    sl_slice *lines = malloc(cap * sizeof *lines);
    for (char *p = buf, *end = buf + size; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (nlines == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[nlines++] = (sl_slice){p, n};
        bytes += n;
        p += n + 1;
    }

    sl_cfg *cfg = sl_cfg_new();
    const char *yaml = "parse:\n  - json: {}\n";
    sl_chain *chain = NULL;
    if (!cfg || sl_cfg_load_string(cfg, "bench", yaml, strlen(yaml)) != 0 ||
        sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "bench", &chain) != 0) {
        fprintf(stderr, "bench_recjson: chain setup failed\n");
        return 1;
    }
    int devnull = open("/dev/null", O_WRONLY);
    sl_buf out;
    sl_buf_init(&out, 0);

    if (only >= 0) {
        uint64_t o = 0;
        double t = 0;
        for (int run = 0; run < runs; run++)
            t += pipeline(chain, lines, nlines, only, &out, devnull, &o);
        printf("bench_recjson: %s pipeline alone, %d runs: %.1f MB/s, %llu bytes out per run\n",
               argv[3], runs, (double)bytes * runs / 1e6 / t,
               (unsigned long long)(o / (uint64_t)runs));
        return out.failed ? 1 : 0;
    }

    /* Parsed once and kept, for the encoders alone. */
    size_t nb = (nlines + BATCH - 1) / BATCH;
    sl_batch **batches = malloc(nb * sizeof *batches);
    for (size_t k = 0; k < nb; k++) {
        size_t to = (k + 1) * BATCH < nlines ? (k + 1) * BATCH : nlines;
        batches[k] = parse_batch(chain, lines, k * BATCH, to);
        if (!batches[k]) return 1;
    }
    printf("bench_recjson: %zu lines, %.1f MB of line bytes, batches of %d\n", nlines,
           (double)bytes / 1e6, BATCH);

    double p_raw[MAXRUNS], p_json[MAXRUNS], e_raw[MAXRUNS], e_json[MAXRUNS], ratio[MAXRUNS];
    double e_line[MAXRUNS], e_fields[MAXRUNS], p_dedup[MAXRUNS], e_dedup[MAXRUNS],
        ratio_dedup[MAXRUNS];
    uint64_t out_raw = 0, out_json = 0, out_dedup = 0;
    const int dedup = (int)(SL_RJ_ALL | SL_RJ_LINE_DEDUP);
    for (int run = 0; run < runs; run++) {
        uint64_t o1 = 0, o2 = 0, o3 = 0;
        /* rotate which goes first, so none always gets the warm cache */
        double tr = 0, tj = 0, td = 0;
        for (int k = 0; k < 3; k++) {
            int which = (run + k) % 3;
            if (which == 0) tr = pipeline(chain, lines, nlines, 0, &out, devnull, &o1);
            if (which == 1) tj = pipeline(chain, lines, nlines, 1, &out, devnull, &o2);
            if (which == 2) td = pipeline(chain, lines, nlines, dedup, &out, devnull, &o3);
        }
        out_raw = o1, out_json = o2, out_dedup = o3;
        p_raw[run] = (double)bytes / 1e6 / tr;
        p_json[run] = (double)bytes / 1e6 / tj;
        p_dedup[run] = (double)bytes / 1e6 / td;
        ratio[run] = tr / tj;
        ratio_dedup[run] = tr / td;
        double t0 = now_s();
        for (size_t k = 0; k < nb; k++) encode(&out, batches[k], 0);
        double t1 = now_s();
        for (size_t k = 0; k < nb; k++) encode(&out, batches[k], 1);
        double t2 = now_s();
        for (size_t k = 0; k < nb; k++) encode(&out, batches[k], SL_RJ_TIME | SL_RJ_LINE);
        double t3 = now_s();
        for (size_t k = 0; k < nb; k++) encode(&out, batches[k], SL_RJ_FIELDS | SL_RJ_LABELS);
        double t4 = now_s();
        for (size_t k = 0; k < nb; k++) encode(&out, batches[k], dedup);
        double t5 = now_s();
        e_dedup[run] = (double)bytes / 1e6 / (t5 - t4);
        e_raw[run] = (double)bytes / 1e6 / (t1 - t0);
        e_json[run] = (double)bytes / 1e6 / (t2 - t1);
        e_line[run] = (double)bytes / 1e6 / (t3 - t2);
        e_fields[run] = (double)bytes / 1e6 / (t4 - t3);
        printf("  run %d: pipeline raw %7.1f MB/s  json %7.1f MB/s  ratio %.2fx  json-dedup %7.1f "
               "MB/s  ratio %.2fx   encode alone: raw %8.1f MB/s  json %7.1f MB/s  json-dedup "
               "%7.1f MB/s\n",
               run + 1, p_raw[run], p_json[run], ratio[run], p_dedup[run], ratio_dedup[run],
               e_raw[run], e_json[run], e_dedup[run]);
    }
    if (out.failed) {
        fprintf(stderr, "bench_recjson: encoder failed\n");
        return 1;
    }
    printf("output bytes per pass: raw %llu, json %llu (%.2fx the input), json-dedup %llu "
           "(%.2fx)\n",
           (unsigned long long)out_raw, (unsigned long long)out_json,
           (double)out_json / (double)bytes, (unsigned long long)out_dedup,
           (double)out_dedup / (double)bytes);
    double r = median(ratio, runs);
    printf("pipeline (batch + parse + encode + write): raw %.1f MB/s, json %.1f MB/s median; "
           "json/raw %.2fx median (goal >= 0.8x)\n",
           median(p_raw, runs), median(p_json, runs), r);
    printf("pipeline json-dedup %.1f MB/s median; json-dedup/raw %.2fx median\n",
           median(p_dedup, runs), median(ratio_dedup, runs));
    printf("encode alone: raw %.1f MB/s, json %.1f MB/s median (time + line only %.1f, "
           "fields + labels only %.1f)\n",
           median(e_raw, runs), median(e_json, runs), median(e_line, runs), median(e_fields, runs));
    printf("encode alone: json-dedup %.1f MB/s median\n", median(e_dedup, runs));
    for (size_t k = 0; k < nb; k++) sl_batch_unref(batches[k]);
    free(batches);
    sl_buf_free(&out);
    sl_chain_free(chain);
    sl_cfg_free(cfg);
    close(devnull);
    free(lines);
    free(buf);
    return 0;
}
