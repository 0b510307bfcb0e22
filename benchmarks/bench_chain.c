/* The json parse step as an input runs it: lines added to batches of 4096
 * records, sl_chain_run with `- json: {}`, the batch freed, over ~100 MB of
 * typical JSON log lines (200-1,500 bytes, 8-20 top-level fields). The
 * reference, measured in the same run over the same lines, is the scanner
 * alone (sl_json_fields into a reused array): the gap between the two is
 * what batches, arenas and field appends cost.
 *
 * usage: bench_chain [MB] [runs]   (defaults 100 and 5; medians printed) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/batch.h"
#include "core/config.h"
#include "parsers/chain.h"
#include "parsers/json.h"

#define BATCH 4096

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const levels[] = {"debug", "info", "info", "info", "warn", "error"};
static const char *const words[] = {"request", "handled", "user",    "cache",  "miss", "upstream",
                                    "timeout", "retry",   "session", "closed", "ok",   "payload"};

/* One line; returns its length (without newline). */
static size_t gen_line(char *p, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(p + o, cap - o,
                          "{\"ts\":\"2024-03-05T10:%02u:%02u.%06uZ\",\"level\":\"%s\",\"service\":"
                          "\"svc-%u\",\"trace_id\":\"%08x%08x\",\"status\":%u,\"latency_ms\":%u.%u",
                          rnd(60), rnd(60), rnd(1000000), levels[rnd(6)], rnd(40), rnd(UINT32_MAX),
                          rnd(UINT32_MAX), 200 + rnd(300), rnd(2000), rnd(10));
    uint32_t extra = 2 + rnd(12);
    for (uint32_t f = 0; f < extra && o < cap - 200; f++) {
        switch (rnd(5)) {
        case 0:
            o += (size_t)snprintf(p + o, cap - o, ",\"n_%u\":%u", f, rnd(100000));
            break;
        case 1:
            o += (size_t)snprintf(p + o, cap - o, ",\"flag_%u\":%s", f, rnd(2) ? "true" : "false");
            break;
        case 2:
            o += (size_t)snprintf(p + o, cap - o, ",\"ctx_%u\":{\"k\":\"v%u\",\"n\":%u}", f,
                                  rnd(100), rnd(100));
            break;
        default: {
            o += (size_t)snprintf(p + o, cap - o, ",\"s_%u\":\"", f);
            uint32_t nw = 2 + rnd(20);
            for (uint32_t w = 0; w < nw && o < cap - 120; w++)
                o += (size_t)snprintf(p + o, cap - o, "%s%s", w ? " " : "", words[rnd(12)]);
            if (rnd(4) == 0) o += (size_t)snprintf(p + o, cap - o, " \\\"quoted\\\"\\n");
            o += (size_t)snprintf(p + o, cap - o, "\"");
        }
        }
    }
    uint32_t nw = 4 + rnd(60);
    o += (size_t)snprintf(p + o, cap - o, ",\"msg\":\"");
    for (uint32_t w = 0; w < nw && o < cap - 20; w++)
        o += (size_t)snprintf(p + o, cap - o, "%s%s", w ? " " : "", words[rnd(12)]);
    o += (size_t)snprintf(p + o, cap - o, "\"}");
    return o;
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

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 100;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (mb == 0 || runs <= 0 || runs > 99) {
        fprintf(stderr, "usage: bench_chain [MB] [runs]\n");
        return 2;
    }
    size_t total = mb << 20;
    char *buf = malloc(total + 4096);
    size_t nlines_cap = total / 150 + 1, nlines = 0;
    sl_slice *lines = malloc(nlines_cap * sizeof *lines);
    if (!buf || !lines) return 1;
    size_t used = 0, minl = SIZE_MAX, maxl = 0;
    while (used < total && nlines < nlines_cap) {
        size_t n = gen_line(buf + used, 1600);
        lines[nlines++] = (sl_slice){buf + used, n};
        if (n < minl) minl = n;
        if (n > maxl) maxl = n;
        used += n + 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < nlines; i++) bytes += lines[i].n;

    sl_cfg *cfg = sl_cfg_new();
    const char *yaml = "parse:\n  - json: {}\n";
    sl_chain *chain = NULL;
    if (!cfg || sl_cfg_load_string(cfg, "bench", yaml, strlen(yaml)) != 0 ||
        sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "bench", &chain) != 0) {
        fprintf(stderr, "bench_chain: chain setup failed\n");
        return 1;
    }
    sl_json_opts o;
    sl_json_opts_init(&o, NULL);
    printf("bench_chain: %zu lines, %.1f MB, %zu-%zu bytes, batches of %d, kernel %s\n", nlines,
           (double)bytes / 1e6, minl, maxl, BATCH, sl_json_kernel_name(sl_json_kernel_active(&o)));

    double step_mbs[99], ref_mbs[99];
    uint64_t check_step = 0, check_ref = 0;
    for (int run = 0; run < runs; run++) {
        /* reference: the scanner alone */
        sl_field fields[64];
        double t0 = now_s();
        for (size_t i = 0; i < nlines; i++) {
            size_t nf = 0;
            sl_json_fields(lines[i].p, lines[i].n, &o, fields, 64, &nf, NULL);
            check_ref += nf;
        }
        double t1 = now_s();
        ref_mbs[run] = (double)bytes / 1e6 / (t1 - t0);

        /* the step as an input runs it */
        t0 = now_s();
        for (size_t i = 0; i < nlines;) {
            sl_batch *b = sl_batch_new(BATCH);
            if (!b) return 1;
            for (; i < nlines && b->nrecords < BATCH; i++) sl_batch_add(b, lines[i], 0, i);
            sl_chain_run(chain, b);
            for (uint32_t k = 0; k < b->nrecords; k++) {
                check_step += b->records[k].nfields;
                if (b->records[k].flags & SL_RF_PARSE_ERROR) return 3;
            }
            sl_batch_unref(b);
        }
        t1 = now_s();
        step_mbs[run] = (double)bytes / 1e6 / (t1 - t0);
        printf("  run %d: step %7.1f MB/s   scanner %7.1f MB/s\n", run + 1, step_mbs[run],
               ref_mbs[run]);
    }
    if (check_step != check_ref) {
        fprintf(stderr, "bench_chain: field counts differ (%llu vs %llu)\n",
                (unsigned long long)check_step, (unsigned long long)check_ref);
        return 1;
    }
    double s = median(step_mbs, runs), r = median(ref_mbs, runs);
    printf("json step (batches of %d): %.1f MB/s median   scanner alone: %.1f MB/s median   "
           "ratio %.2fx\n",
           BATCH, s, r, s / r);
    sl_chain_free(chain);
    sl_cfg_free(cfg);
    free(lines);
    free(buf);
    return 0;
}
