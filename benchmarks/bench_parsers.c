/* Parser throughput on deterministic generated lines held in memory:
 *   regex: nginx_combined (10 named groups) through sl_regex_match, against
 *          a bare pcre2_jit_match loop on the same pattern and lines, and
 *          against PCRE2's interpreter (goals: >= 0.95x and >= 2x);
 *   logfmt, cri: MB/s of input (goal: >= 1 GB/s each).
 * Each figure is the median of 5 runs; every run walks the whole corpus.
 * Usage: bench_parsers [MB of lines per corpus, default 32] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "collector/container_frame.h"
#include "parsers/cri.h"
#include "parsers/logfmt.h"
#include "parsers/regex.h"

#define RUNS 5

typedef struct corpus {
    char *buf;
    size_t len, cap;
    sl_slice *lines;
    size_t n, ncap;
} corpus;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void add_line(corpus *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap || c->n == c->ncap) {
        fprintf(stderr, "corpus overflow\n");
        exit(1);
    }
    memcpy(c->buf + c->len, s, n);
    c->lines[c->n++] = (sl_slice){c->buf + c->len, n};
    c->len += n;
    c->buf[c->len++] = '\n';
}

static void corpus_init(corpus *c, size_t bytes)
{
    c->cap = bytes + 4096;
    c->buf = malloc(c->cap);
    c->ncap = bytes / 40 + 16;
    c->lines = malloc(c->ncap * sizeof *c->lines);
    c->len = c->n = 0;
    if (!c->buf || !c->lines) exit(1);
}

static const char *const paths[] = {"/",
                                    "/index.html",
                                    "/api/v1/users/12345/profile",
                                    "/static/js/app.3f9a1c.min.js",
                                    "/search?q=log+agent&page=2&sort=desc",
                                    "/healthz"};
static const char *const agents[] = {
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
     "Safari/537.36"),
    "curl/8.4.0", "Prometheus/2.48.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"};
static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void gen_nginx(corpus *c, size_t bytes)
{
    char l[1024];
    while (c->len + 1024 < bytes) {
        int n = snprintf(
            l, sizeof l,
            "%u.%u.%u.%u - %s [%02u/%s/2024:%02u:%02u:%02u +0000] \"%s %s HTTP/1.1\" %u %u "
            "\"%s\" \"%s\"",
            10 + rnd(200), rnd(256), rnd(256), 1 + rnd(254), rnd(4) ? "-" : "alice", 1 + rnd(28),
            months[rnd(12)], rnd(24), rnd(60), rnd(60), methods[rnd(6)], paths[rnd(6)],
            rnd(10) ? 200 : 404, rnd(100000), rnd(3) ? "-" : "https://example.org/start",
            agents[rnd(4)]);
        add_line(c, l, (size_t)n);
    }
}

static void gen_logfmt(corpus *c, size_t bytes)
{
    static const char *const levels[] = {"debug", "info", "info", "warn", "error"};
    char l[1024];
    while (c->len + 1024 < bytes) {
        int n = snprintf(l, sizeof l,
                         "ts=2024-03-12T08:%02u:%02u.%06uZ level=%s caller=server/handler.go:%u "
                         "msg=\"request completed in time\" method=%s path=%s status=%u "
                         "duration_ms=%u.%03u user_id=%u trace_id=%08x%08x bytes=%u",
                         rnd(60), rnd(60), rnd(1000000), levels[rnd(5)], rnd(900), methods[rnd(6)],
                         paths[rnd(6)], rnd(10) ? 200 : 500, rnd(2000), rnd(1000), rnd(100000),
                         rnd(0x7fffffff), rnd(0x7fffffff), rnd(65536));
        add_line(c, l, (size_t)n);
    }
}

static void gen_cri(corpus *c, size_t bytes)
{
    char l[1024], msg[400];
    while (c->len + 1024 < bytes) {
        size_t mn = 60 + rnd(240);
        for (size_t i = 0; i < mn; i++) msg[i] = (char)('a' + rnd(26));
        for (size_t i = 7; i < mn; i += 8) msg[i] = ' ';
        int n = snprintf(l, sizeof l, "2024-03-12T08:%02u:%02u.%09uZ %s %c %.*s", rnd(60), rnd(60),
                         rnd(1000000000), rnd(5) ? "stdout" : "stderr", rnd(10) ? 'F' : 'P',
                         (int)mn, msg);
        add_line(c, l, (size_t)n);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof *v, cmp_d);
    return v[RUNS / 2];
}

static volatile uint64_t sink; /* keeps results alive */

typedef uint64_t (*pass_fn)(const corpus *c, void *arg);

typedef struct variant {
    pass_fn fn;
    void *arg;
    double mbps[RUNS];
} variant;

/* Runs the variants in turns (a b c, b c a, c a b, ...) so that changes of
 * machine load and cache state hit all of them alike; fills mbps. */
static void measure(const corpus *c, variant *v, int nv)
{
    for (int k = 0; k < nv; k++) sink += v[k].fn(c, v[k].arg); /* warm up caches and JITs */
    for (int r = 0; r < RUNS; r++)
        for (int i = 0; i < nv; i++) {
            int k = (r + i) % nv;
            double t0 = now_s();
            sink += v[k].fn(c, v[k].arg);
            v[k].mbps[r] = (double)c->len / (now_s() - t0) / 1e6;
        }
}

typedef struct bare {
    pcre2_code *code;
    pcre2_match_data *md;
} bare;

static uint64_t pass_bare_jit(const corpus *c, void *arg)
{
    bare *b = arg;
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++)
        acc += (uint64_t)pcre2_jit_match(b->code, (PCRE2_SPTR)c->lines[i].p, c->lines[i].n, 0, 0,
                                         b->md, NULL);
    return acc;
}

static uint64_t pass_interp(const corpus *c, void *arg)
{
    bare *b = arg;
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++)
        acc += (uint64_t)pcre2_match(b->code, (PCRE2_SPTR)c->lines[i].p, c->lines[i].n, 0,
                                     PCRE2_NO_JIT, b->md, NULL);
    return acc;
}

/* The hot-loop form: keys set once, each match writes the values. */
static uint64_t pass_exec(const corpus *c, void *arg)
{
    sl_regex *re = arg;
    sl_field f[16];
    sl_regex_fields_init(re, f, 16);
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++)
        acc += (uint64_t)sl_regex_exec(re, c->lines[i].p, c->lines[i].n, f, 16, NULL) + f[3].val.n;
    return acc;
}

/* The compact form: only the groups that took part, keys included. */
static uint64_t pass_match(const corpus *c, void *arg)
{
    sl_regex *re = arg;
    sl_field f[16];
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++)
        acc += (uint64_t)sl_regex_match(re, c->lines[i].p, c->lines[i].n, f, 16, NULL) + f[3].val.n;
    return acc;
}

static uint64_t pass_logfmt(const corpus *c, void *arg)
{
    (void)arg;
    sl_field f[32];
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t n = 0;
        sl_logfmt_parse(c->lines[i].p, c->lines[i].n, f, 32, &n);
        acc += n + f[n ? n - 1 : 0].val.n;
    }
    return acc;
}

static uint64_t pass_cri(const corpus *c, void *arg)
{
    sl_cri_joiner *j = arg;
    uint64_t acc = 0;
    for (size_t i = 0; i < c->n; i++) {
        sl_cri_line l;
        if (sl_cri_parse(c->lines[i].p, c->lines[i].n, &l, NULL) != 0) continue;
        sl_slice msg;
        int64_t t;
        unsigned fl;
        if (sl_cri_joiner_add(j, &l, &msg, &t, &fl) == 0) acc += msg.n + (uint64_t)t;
    }
    return acc;
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 32;
    if (mb == 0 || mb > 4096) mb = 32;
    size_t bytes = mb << 20;

    corpus nginx, lf, cr;
    corpus_init(&nginx, bytes);
    corpus_init(&lf, bytes);
    corpus_init(&cr, bytes);
    gen_nginx(&nginx, bytes);
    gen_logfmt(&lf, bytes);
    gen_cri(&cr, bytes);

    /* regex: the same pattern text and compile options for all three. */
    sl_regex *re = NULL;
    sl_err e = {0};
    if (sl_regex_builtin("nginx_combined", NULL, &re, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    const char *pat = sl_regex_builtin_pattern("nginx_combined");
    int ec;
    PCRE2_SIZE off;
    bare b = {pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                            PCRE2_NEVER_UTF | PCRE2_DUPNAMES, &ec, &off, NULL),
              NULL};
    if (!b.code || pcre2_jit_compile(b.code, PCRE2_JIT_COMPLETE) != 0 || !sl_regex_jitted(re)) {
        fprintf(stderr, "PCRE2 JIT unavailable\n");
        return 1;
    }
    b.md = pcre2_match_data_create_from_pattern(b.code, NULL);
    /* Every generated line must match, or the comparison means nothing. */
    sl_field f[16];
    for (size_t i = 0; i < nginx.n; i++)
        if (sl_regex_match(re, nginx.lines[i].p, nginx.lines[i].n, f, 16, NULL) != 10) {
            fprintf(stderr, "line %zu did not give 10 fields\n", i);
            return 1;
        }

    printf("corpora: nginx %zu lines %.1f MB, logfmt %zu lines %.1f MB, cri %zu lines %.1f MB; "
           "median of %d runs\n",
           nginx.n, nginx.len / 1e6, lf.n, lf.len / 1e6, cr.n, cr.len / 1e6, RUNS);
    variant rv[4] = {{pass_exec, re, {0}},
                     {pass_match, re, {0}},
                     {pass_bare_jit, &b, {0}},
                     {pass_interp, &b, {0}}};
    measure(&nginx, rv, 4);
    double exec = median(rv[0].mbps), match = median(rv[1].mbps), jit = median(rv[2].mbps),
           interp = median(rv[3].mbps);
    printf("regex nginx_combined (10 fields per line):\n");
    printf("  bare pcre2_jit_match loop       %8.1f MB/s\n", jit);
    printf("  pcre2_match interpreter         %8.1f MB/s\n", interp);
    printf("  sl_regex_exec (fixed layout)    %8.1f MB/s   %.3fx bare JIT (goal >= 0.95), "
           "%.2fx interpreter (goal >= 2)\n",
           exec, exec / jit, exec / interp);
    printf("  sl_regex_match (compact)        %8.1f MB/s   %.3fx bare JIT, %.2fx interpreter\n",
           match, match / jit, match / interp);

    variant lv[1] = {{pass_logfmt, NULL, {0}}};
    measure(&lf, lv, 1);
    printf("logfmt sl_logfmt_parse            %8.1f MB/s   (goal >= 1000)\n", median(lv[0].mbps));

    sl_cri_joiner *j = NULL;
    if (sl_cri_joiner_new(1 << 20, &j) != 0) return 1;
    variant cv[1] = {{pass_cri, j, {0}}};
    measure(&cr, cv, 1);
    printf("cri sl_cri_parse + joiner         %8.1f MB/s   (goal >= 1000)\n", median(cv[0].mbps));

    sl_cri_joiner_free(j);
    pcre2_match_data_free(b.md);
    pcre2_code_free(b.code);
    sl_regex_free(re);
    free(nginx.buf);
    free(nginx.lines);
    free(lf.buf);
    free(lf.lines);
    free(cr.buf);
    free(cr.lines);
    return 0;
}
