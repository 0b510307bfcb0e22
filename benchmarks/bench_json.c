/* JSON parse-step benchmark: validating and extracting every top-level
 * field of typical log lines (200-1,500 bytes, 10-30 fields, Unicode,
 * escapes; deterministic), ~100 MB in memory. Compares, in one run over the
 * same lines:
 *   - ours: sl_json_fields per line (each stage-1 kernel; the best one is
 *     the headline), and the whole parse step (sl_json_parse_record into
 *     batches, for information);
 *   - jansson: json_loadb per line, then iterating the top-level keys and
 *     values (what the issue calls the peer approach);
 *   - simdjson's on-demand API (when built with libsimdjson-dev), iterating
 *     every top-level field: "raw" takes raw keys and raw value text,
 *     "typed" unescapes keys and reads every scalar by type.
 * Prints MB/s of input (medians of 5 runs) and the ratios.
 *
 * The corpus ($SLUICE_BENCH_CORPUS): "services" (default) interleaves 8
 * emitters with fixed schemas, "mixed" draws each field's type at random.
 *
 *   bench_json [MB]      (default 100, or $SLUICE_BENCH_MB) */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parsers/json.h"

#ifdef SL_HAVE_SIMDJSON
/* benchmarks/bench_json_simdjson.cpp; returns fields seen or -1. */
long sl_bench_simdjson(const char *buf, size_t buflen, const size_t *off, const size_t *len,
                       size_t nlines, int typed);
#endif

#define RUNS  5
#define SLICE 1000

typedef struct corpus {
    char *buf;
    size_t n, cap;
    size_t *off, *len;
    size_t nlines, cap_lines;
} corpus;

static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void put(corpus *c, const char *s, size_t n)
{
    if (c->n + n + 64 > c->cap) {
        c->cap = (c->cap ? c->cap * 2 : 1 << 20) + n;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) abort();
    }
    memcpy(c->buf + c->n, s, n);
    c->n += n;
}

static void puts_(corpus *c, const char *s)
{
    put(c, s, strlen(s));
}

static void putf(corpus *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(corpus *c, const char *fmt, ...)
{
    char b[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    put(c, b, (size_t)n);
}

static const char *const words[] = {
    "user",
    "request",
    "completed",
    "failed",
    "retrying",
    "connection",
    "timeout",
    "database",
    "cache",
    "miss",
    "hit",
    "upstream",
    "payload",
    "accepted",
    "café",
    "naïve",
    "Zürich",
    "日本語",
    "данные",
    "😀",
    "résumé",
    "\\\"quoted\\\"",
    "tab\\there",
    "line\\nbreak",
    "back\\\\slash",
    "\\u00e9t\\u00e9",
    "path/to/x",
    "GET",
    "POST",
    "id=42",
    "ok",
    "-",
    "→",
};

static void text(corpus *c, unsigned nwords)
{
    for (unsigned i = 0; i < nwords; i++) {
        if (i) puts_(c, " ");
        puts_(c, words[below(sizeof words / sizeof *words)]);
    }
}

static void hex(corpus *c, unsigned n)
{
    char b[64];
    for (unsigned i = 0; i < n; i++) b[i] = "0123456789abcdef"[below(16)];
    put(c, b, n);
}

static const char *const levels[] = {"debug", "info", "info", "info", "warn", "error"};

/* One field of a kind (0-11) at field position f. Random draws are
 * sequenced (not several in one argument list) so every compiler builds
 * the same corpus. */
static void field(corpus *c, unsigned kind, unsigned f, unsigned *used)
{
    unsigned a, b, d;
    /* Keys stay unique within a line: a repeated kind gets a suffix. */
    char sfx[16] = "";
    if (*used & (1u << kind)) snprintf(sfx, sizeof sfx, "_%u", f);
    *used |= 1u << kind;
    switch (kind) {
    case 0:
        putf(c, ",\"trace_id%s\":\"", sfx);
        hex(c, 32);
        puts_(c, "\"");
        break;
    case 1:
        a = below(5000);
        b = below(1000);
        putf(c, ",\"latency_ms%s\":%u.%03u", sfx, a, b);
        break;
    case 2:
        putf(c, ",\"status%s\":%u", sfx, 200 + below(400));
        break;
    case 3:
        a = 1 + below(3);
        b = below(100000);
        d = below(99);
        putf(c, ",\"path%s\":\"/api/v%u/items/%u?q=%u\"", sfx, a, b, d);
        break;
    case 4:
        putf(c, ",\"ok%s\":%s", sfx, below(2) ? "true" : "false");
        break;
    case 5:
        putf(c, ",\"err_%u\":null", f);
        break;
    case 6:
        a = below(10);
        b = below(1000);
        putf(c, ",\"tags_%u\":[\"a\",\"b%u\",%u]", f, a, b);
        break;
    case 7:
        putf(c, ",\"ctx_%u\":{\"region\":\"eu-west-%u\",\"pod\":\"api-", f, 1 + below(3));
        hex(c, 5);
        putf(c, "\",\"retries\":%u}", below(5));
        break;
    case 8:
        putf(c,
             ",\"user_agent%s\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
             "(KHTML, like Gecko) Chrome/%u.0 Safari/537.36\"",
             sfx, 90 + below(30));
        break;
    case 9:
        putf(c, ",\"note_%u\":\"", f);
        text(c, 2 + below(8));
        puts_(c, "\"");
        break;
    case 10: {
        unsigned sh = 1 + below(50);
        putf(c, ",\"bytes_%u\":%llu", f, (unsigned long long)(rnd() >> sh));
        break;
    }
    default:
        putf(c, ",\"k%u\":\"v%u\"", f, below(1000));
    }
}

/* The "services" corpus: a node's log stream interleaves a few emitters,
 * each with its own fixed keys and value types (some keys optional) - what
 * structured loggers write. The "mixed" corpus draws every field's type at
 * random instead: a worst case for branch prediction in every parser. */
#define NSERVICES 8
typedef struct service {
    unsigned n;
    uint8_t kind[27];
} service;
static service services[NSERVICES];

static void make_services(void)
{
    for (int s = 0; s < NSERVICES; s++) {
        services[s].n = 7 + below(21);
        for (unsigned i = 0; i < services[s].n; i++) services[s].kind[i] = (uint8_t)below(12);
    }
}

/* One log line of 10-30 fields. */
static void line(corpus *c, bool mixed)
{
    unsigned day = 1 + below(28), h = below(24), m = below(60), sec = below(60), ms = below(1000);
    const char *lvl = levels[below(6)];
    putf(c, "{\"ts\":\"2024-05-%02uT%02u:%02u:%02u.%03uZ\",\"level\":\"%s\",\"msg\":\"", day, h, m,
         sec, ms, lvl);
    text(c, 3 + below(12));
    puts_(c, "\"");
    unsigned used = 0;
    if (mixed) {
        unsigned nf = 10 + below(21);
        for (unsigned f = 3; f < nf; f++) field(c, below(12), f, &used);
    } else {
        const service *sv = &services[below(NSERVICES)];
        for (unsigned i = 0; i < sv->n; i++)
            if (sv->n < 10 || below(8)) field(c, sv->kind[i], i + 3, &used);
    }
    puts_(c, "}");
}

static void build(corpus *c, size_t target, bool mixed)
{
    make_services();
    while (c->n < target) {
        size_t start = c->n;
        line(c, mixed);
        size_t n = c->n - start;
        if (n < 200 || n > 1500) { /* keep to the 200-1,500 byte class */
            c->n = start;
            continue;
        }
        if (c->nlines == c->cap_lines) {
            c->cap_lines = c->cap_lines ? c->cap_lines * 2 : 4096;
            c->off = realloc(c->off, c->cap_lines * sizeof *c->off);
            c->len = realloc(c->len, c->cap_lines * sizeof *c->len);
            if (!c->off || !c->len) abort();
        }
        c->off[c->nlines] = start;
        c->len[c->nlines] = n;
        c->nlines++;
        puts_(c, "\n");
    }
    memset(c->buf + c->n, ' ', 64); /* simdjson's padding; we never read it */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t input_bytes(const corpus *c)
{
    size_t t = 0;
    for (size_t i = 0; i < c->nlines; i++) t += c->len[i];
    return t;
}

static long run_ours(const corpus *c, int kernel)
{
    sl_json_opts o;
    sl_json_opts_init(&o, NULL);
    o.kernel = kernel;
    sl_field f[64];
    long fields = 0;
    for (size_t i = 0; i < c->nlines; i++) {
        size_t nf;
        if (sl_json_fields(c->buf + c->off[i], c->len[i], &o, f, 64, &nf, NULL) != 0) return -1;
        fields += (long)nf;
    }
    return fields;
}

/* The whole parse step: records in batches of 1,000, fields appended to
 * each record (includes the batch and arena costs). */
static long run_record(const corpus *c)
{
    sl_json_opts o;
    sl_json_opts_init(&o, NULL);
    long fields = 0;
    sl_batch *b = NULL;
    for (size_t i = 0; i < c->nlines; i++) {
        if (i % 1000 == 0) {
            if (b) sl_batch_unref(b);
            b = sl_batch_new(1000);
            if (!b) return -1;
        }
        sl_record *r = sl_batch_add(b, (sl_slice){c->buf + c->off[i], c->len[i]}, 0, i);
        if (!r || sl_json_parse_record(b, r, &o, NULL) != 0) return -1;
        fields += r->nfields;
    }
    if (b) sl_batch_unref(b);
    return fields;
}

static long run_jansson(const corpus *c)
{
    long fields = 0;
    for (size_t i = 0; i < c->nlines; i++) {
        json_t *j = json_loadb(c->buf + c->off[i], c->len[i], 0, NULL);
        if (!j) return -1;
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            /* Touch what a consumer would: the key and the value's type. */
            fields += key[0] != '\1' && json_typeof(v) <= JSON_NULL;
        }
        json_decref(j);
    }
    return fields;
}

enum {
    OURS_SCALAR,
    OURS_SSE42,
    OURS_AVX2,
    OURS_AVX512,
    OURS_NEON,
    OURS_RECORD,
    JANSSON,
    SIMD_RAW,
    SIMD_TYPED,
    NIMPL
};
static const char *const impl_names[] = {"ours (scalar)",
                                         "ours (sse42)",
                                         "ours (avx2)",
                                         "ours (avx512)",
                                         "ours (neon)",
                                         "ours parse step (best)",
                                         "jansson",
                                         "simdjson on-demand raw",
                                         "simdjson on-demand typed"};

static long run(const corpus *c, int impl)
{
    switch (impl) {
    case OURS_SCALAR:
        return run_ours(c, SL_JSON_SCALAR);
    case OURS_SSE42:
        return run_ours(c, SL_JSON_SSE42);
    case OURS_AVX2:
        return run_ours(c, SL_JSON_AVX2);
    case OURS_AVX512:
        return run_ours(c, SL_JSON_AVX512);
    case OURS_NEON:
        return run_ours(c, SL_JSON_NEON);
    case OURS_RECORD:
        return run_record(c);
    case JANSSON:
        return run_jansson(c);
#ifdef SL_HAVE_SIMDJSON
    case SIMD_RAW:
    case SIMD_TYPED:
        return sl_bench_simdjson(c->buf, c->n + 64, c->off, c->len, c->nlines, impl == SIMD_TYPED);
#endif
    }
    return -2;
}

static bool available(int impl)
{
    /* $SLUICE_BENCH_ONLY=<index>: that implementation and the references. */
    const char *only = getenv("SLUICE_BENCH_ONLY");
    if (only && *only && atoi(only) != impl && impl != OURS_SCALAR && impl != JANSSON &&
        impl != SIMD_RAW)
        return false;
    switch (impl) {
    case OURS_SCALAR:
        return true;
    case OURS_SSE42:
        return sl_json_kernel_supported(SL_JSON_SSE42);
    case OURS_AVX2:
        return sl_json_kernel_supported(SL_JSON_AVX2);
    case OURS_AVX512:
        return sl_json_kernel_supported(SL_JSON_AVX512);
    case OURS_NEON:
        return sl_json_kernel_supported(SL_JSON_NEON);
    case OURS_RECORD:
    case JANSSON:
        return true;
    default:
#ifdef SL_HAVE_SIMDJSON
        return true;
#else
        return false;
#endif
    }
}

int main(int argc, char **argv)
{
    const char *env = getenv("SLUICE_BENCH_MB");
    double mb = argc > 1 ? atof(argv[1]) : env ? atof(env) : 100;
    if (mb <= 0) mb = 100;
    const char *kind = getenv("SLUICE_BENCH_CORPUS");
    bool mixed = kind && strcmp(kind, "mixed") == 0;
    corpus c = {0};
    build(&c, (size_t)(mb * 1e6), mixed);
    size_t bytes = input_bytes(&c);
    const char *dump = getenv("SLUICE_BENCH_DUMP"); /* write the corpus, for profiling */
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(c.buf, 1, c.n, f) != c.n || fclose(f) != 0) return 1;
        return 0;
    }
    printf("corpus (%s): %zu lines, %.1f MB, %.0f bytes/line; best kernel here: %s\n",
           mixed ? "mixed" : "services", c.nlines, (double)bytes / 1e6,
           (double)bytes / (double)c.nlines, sl_json_kernel_name(sl_json_kernel_best()));

    double med[NIMPL] = {0};
    long fields[NIMPL] = {0};
    /* Each run walks the corpus in slices of ~1,000 lines and times every
     * implementation on each slice in turn, so load from other processes
     * hits them alike; a run's time is the sum over its slices. jansson,
     * ~50x slower, parses the first tenth of each slice (scaled up). */
    double t[NIMPL][RUNS] = {{0}};
    size_t jbytes = 0;
    for (int r = 0; r < RUNS; r++) {
        memset(fields, 0, sizeof fields);
        for (size_t at = 0; at < c.nlines; at += SLICE) {
            corpus sub = c;
            sub.off = c.off + at;
            sub.len = c.len + at;
            sub.nlines = c.nlines - at < SLICE ? c.nlines - at : SLICE;
            for (int i = 0; i < NIMPL; i++) {
                if (!available(i)) continue;
                corpus part = sub;
                if (i == JANSSON) part.nlines = sub.nlines / 10;
                double t0 = now();
                long f = run(&part, i);
                t[i][r] += now() - t0;
                if (f < 0) {
                    fprintf(stderr, "%s failed\n", impl_names[i]);
                    return 1;
                }
                fields[i] += f;
                if (i == JANSSON && r == 0) jbytes += input_bytes(&part);
            }
        }
        t[JANSSON][r] *= (double)bytes / (double)jbytes;
    }
    for (int i = 0; i < NIMPL; i++) {
        if (!available(i)) continue;
        if (getenv("SLUICE_BENCH_VERBOSE")) {
            printf("%-28s", impl_names[i]);
            for (int r = 0; r < RUNS; r++) printf(" %7.0f", (double)bytes / t[i][r] / 1e6);
            printf("\n");
        }
        qsort(t[i], RUNS, sizeof t[i][0], cmp_double);
        med[i] = (double)bytes / t[i][RUNS / 2] / 1e6;
    }
    int best = sl_json_kernel_best() == SL_JSON_AVX512  ? OURS_AVX512
               : sl_json_kernel_best() == SL_JSON_AVX2  ? OURS_AVX2
               : sl_json_kernel_best() == SL_JSON_NEON  ? OURS_NEON
               : sl_json_kernel_best() == SL_JSON_SSE42 ? OURS_SSE42
                                                        : OURS_SCALAR;
    printf("%-28s %10s %10s\n", "implementation", "MB/s", "fields");
    for (int i = 0; i < NIMPL; i++) {
        if (!available(i)) continue;
        printf("%-28s %10.0f %10ld%s\n", impl_names[i], med[i], fields[i],
               i == JANSSON ? " (a tenth of each slice)" : "");
    }
    long jref = 0; /* our field count over the lines jansson parsed */
    for (size_t at = 0; at < c.nlines; at += SLICE) {
        corpus part = c;
        part.off = c.off + at;
        part.len = c.len + at;
        part.nlines = (c.nlines - at < SLICE ? c.nlines - at : SLICE) / 10;
        jref += run_ours(&part, SL_JSON_SCALAR);
    }
    if (fields[best] != fields[OURS_SCALAR] ||
        (available(OURS_RECORD) && fields[OURS_RECORD] != fields[best]) ||
        fields[JANSSON] != jref || (available(SIMD_RAW) && fields[SIMD_RAW] != fields[best])) {
        fprintf(stderr, "field counts differ between implementations\n");
        return 1;
    }
    printf("ours (%s) / jansson:              %6.1fx   (goal >= 25x)\n",
           sl_json_kernel_name(sl_json_kernel_best()), med[best] / med[JANSSON]);
    if (available(SIMD_RAW)) {
        printf("ours (%s) / simdjson raw:         %6.2fx   (goal >= 0.8x)\n",
               sl_json_kernel_name(sl_json_kernel_best()), med[best] / med[SIMD_RAW]);
        if (available(SIMD_TYPED))
            printf("ours (%s) / simdjson typed:       %6.2fx\n",
                   sl_json_kernel_name(sl_json_kernel_best()), med[best] / med[SIMD_TYPED]);
    } else {
        printf("simdjson: not built (install libsimdjson-dev and a C++ compiler)\n");
    }
    free(c.buf);
    free(c.off);
    free(c.len);
    return 0;
}
