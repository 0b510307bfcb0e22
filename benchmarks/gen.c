/* Deterministic corpus generator for the benchmarks. The same kind, seed and
 * size always give the same bytes, so figures can be reproduced.
 *
 *   gen --kind KIND [--bytes N[K|M|G] | --lines N] [--seed S]
 *       [--rate LINES_PER_S --seconds S] [--stamp]
 *
 * KIND: json (application logs, 10-30 fields, 150-2,000 bytes, Unicode and
 * escapes), nginx (combined access log), syslog5424, syslog3164, cri
 * (container runtime lines, long messages split into P partials ending with
 * an F line), java (application log with multiline stack traces).
 *
 * --rate writes LINES_PER_S lines per second in 10 ms ticks for --seconds
 * (a live writer for latency runs); --stamp puts the wall-clock write time
 * in nanoseconds at the start of each line ("wts":N for json, "wts=N " for
 * the others) so a reader can measure write-to-delivery latency. Output goes
 * to stdout. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAP  (1u << 20)
#define LINE_CAP (64u << 10)

typedef struct gen {
    uint64_t rng;
    int64_t ts_ms; /* synthetic event time: deterministic, advances per line */
    uint64_t seq;
    bool stamp;
    char line[LINE_CAP];
    size_t len;
} gen;

static uint64_t rnd(gen *g)
{
    /* splitmix64: tiny, fast, good enough for corpora. */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t below(gen *g, uint32_t n)
{
    return (uint32_t)(rnd(g) % n);
}

static const char *pick(gen *g, const char *const *v, size_t n)
{
    return v[below(g, (uint32_t)n)];
}
#define PICK(g, arr) pick(g, arr, sizeof(arr) / sizeof(arr[0]))

static void put(gen *g, const char *s, size_t n)
{
    if (g->len + n > LINE_CAP - 1) n = LINE_CAP - 1 - g->len;
    memcpy(g->line + g->len, s, n);
    g->len += n;
}

static void puts_(gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void putf(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g->line + g->len, LINE_CAP - g->len, fmt, ap);
    va_end(ap);
    if (n > 0) g->len += (size_t)n < LINE_CAP - g->len ? (size_t)n : LINE_CAP - 1 - g->len;
}

static const char *const WORDS[] = {
    "request", "user",      "session", "cache",   "timeout",  "connection", "database",
    "query",   "completed", "failed",  "retry",   "upstream", "payload",    "token",
    "order",   "payment",   "shipped", "invoice", "latency",  "worker",     "queue",
    "café",    "naïve",     "Zürich",  "日本語",  "данные",   "😀",          "résumé",
    "handler", "scheduled", "expired", "granted", "denied",   "snapshot",   "compaction"};
static const char *const LEVELS[] = {"debug", "info", "info", "info", "warn", "error"};
static const char *const SERVICES[] = {"checkout", "auth",    "search", "inventory",
                                       "billing",  "gateway", "mailer", "profile"};
static const char *const METHODS[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"};
static const char *const PATHS[] = {
    "/api/v1/orders", "/api/v1/users/42",       "/healthz", "/static/app.js",
    "/login",         "/api/v2/search?q=shoes", "/metrics", "/api/v1/cart/items"};
static const char *const UAS[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/7.88.1", "Go-http-client/1.1", "kube-probe/1.28"};
static const char *const HOSTS[] = {"node-a1", "node-b2", "web-03", "db-01", "edge-7"};
static const char *const APPS[] = {"sshd", "cron", "kernel", "systemd", "nginx", "postfix"};
static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const JCLASSES[] = {"com.example.orders.OrderService",
                                       "com.example.db.ConnectionPool",
                                       "org.springframework.web.servlet.DispatcherServlet",
                                       "java.util.concurrent.ThreadPoolExecutor",
                                       "com.example.http.Client",
                                       "io.netty.channel.AbstractChannelHandlerContext"};
static const char *const JEXC[] = {
    "java.lang.IllegalStateException", "java.io.IOException", "java.lang.NullPointerException",
    "java.util.concurrent.TimeoutException", "com.example.db.PoolExhaustedException"};

static void words(gen *g, int n)
{
    for (int i = 0; i < n; i++) {
        if (i) put(g, " ", 1);
        puts_(g, PICK(g, WORDS));
    }
}

/* A JSON string body with the escapes real loggers emit. */
static void json_text(gen *g, int nwords)
{
    for (int i = 0; i < nwords; i++) {
        if (i) put(g, " ", 1);
        switch (below(g, 16)) {
        case 0:
            puts_(g, "\\\"quoted\\\"");
            break;
        case 1:
            puts_(g, "C:\\\\tmp\\\\x");
            break;
        case 2:
            puts_(g, "line\\nbreak");
            break;
        case 3:
            puts_(g, "tab\\there");
            break;
        case 4:
            puts_(g, "caf\\u00e9");
            break;
        default:
            puts_(g, PICK(g, WORDS));
        }
    }
}

static struct tm tm_of(int64_t ms, int *msec)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    *msec = (int)(ms % 1000);
    return tm;
}

static void rfc3339(gen *g)
{
    int ms;
    struct tm tm = tm_of(g->ts_ms, &ms);
    putf(g, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
         tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void gen_json(gen *g)
{
    put(g, "{", 1);
    if (g->stamp) putf(g, "\"wts\":%" PRId64 ",", wall_ns());
    put(g, "\"ts\":\"", 6);
    rfc3339(g);
    putf(g, "\",\"level\":\"%s\",\"service\":\"%s\",\"msg\":\"", PICK(g, LEVELS),
         PICK(g, SERVICES));
    json_text(g, 3 + (int)below(g, 8));
    putf(g, "\",\"seq\":%" PRIu64 ",\"trace_id\":\"%016" PRIx64 "%016" PRIx64 "\"", g->seq, rnd(g),
         rnd(g));
    int nfields = 10 + (int)below(g, 21); /* 10..30 in all */
    unsigned used = 0;                    /* keys stay unique: a kind drawn twice becomes bytes_N */
    for (int f = 6; f < nfields - 1; f++) {
        unsigned k = below(g, 9);
        if ((k != 7 && (used & (1u << k))) || (k == 2 && f + 2 >= nfields)) k = 8;
        used |= 1u << k;
        switch (k) {
        case 0:
            putf(g, ",\"duration_ms\":%u.%03u", below(g, 5000), below(g, 1000));
            break;
        case 1:
            putf(g, ",\"status\":%u", 200 + below(g, 4) * 100 + below(g, 5));
            break;
        case 2:
            putf(g, ",\"path\":\"%s\",\"method\":\"%s\"", PICK(g, PATHS), PICK(g, METHODS));
            f++;
            break;
        case 3:
            putf(g, ",\"ok\":%s", below(g, 2) ? "true" : "false");
            break;
        case 4:
            putf(g, ",\"user\":{\"id\":%u,\"name\":\"%s\"}", below(g, 100000), PICK(g, WORDS));
            break;
        case 5:
            putf(g, ",\"tags\":[\"%s\",\"%s\"]", PICK(g, WORDS), PICK(g, WORDS));
            break;
        case 6:
            putf(g, ",\"parent\":null");
            break;
        case 7:
            putf(g, ",\"attr_%u\":\"", f);
            json_text(g, 1 + (int)below(g, 4));
            put(g, "\"", 1);
            break;
        default:
            putf(g, ",\"bytes_%u\":%u", f, below(g, 1u << 20));
            break;
        }
    }
    /* Lengths spread over 150-2,000 bytes, most of them short as in real
     * services; the last field pads to the target. */
    uint32_t r = below(g, 100);
    size_t target = r < 60   ? 150 + below(g, 350)
                    : r < 90 ? 500 + below(g, 700)
                             : 1200 + below(g, 790);
    puts_(g, ",\"detail\":\"");
    while (g->len + 2 < target) {
        put(g, " ", 1);
        json_text(g, 1);
    }
    puts_(g, "\"}");
}

static void clf_time(gen *g)
{
    int ms;
    struct tm tm = tm_of(g->ts_ms, &ms);
    putf(g, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, MONTHS[tm.tm_mon], tm.tm_year + 1900,
         tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void stamp_prefix(gen *g)
{
    if (g->stamp) putf(g, "wts=%" PRId64 " ", wall_ns());
}

static void gen_nginx(gen *g)
{
    stamp_prefix(g);
    putf(g, "10.%u.%u.%u - %s [", below(g, 256), below(g, 256), below(g, 256),
         below(g, 4) ? "-" : "alice");
    clf_time(g);
    putf(g, "] \"%s %s HTTP/1.1\" %u %u \"%s\" \"%s\"", PICK(g, METHODS), PICK(g, PATHS),
         below(g, 10) ? 200 : 404 + below(g, 100), below(g, 100000),
         below(g, 3) ? "-" : "https://example.com/start", PICK(g, UAS));
}

static void gen_syslog5424(gen *g)
{
    stamp_prefix(g);
    putf(g, "<%u>1 ", below(g, 192));
    rfc3339(g);
    putf(g, " %s %s %u ID%u ", PICK(g, HOSTS), PICK(g, APPS), 100 + below(g, 30000), below(g, 100));
    if (below(g, 2))
        putf(g, "[exampleSDID@32473 iut=\"%u\" eventSource=\"App\" eventID=\"%u\"] ", below(g, 9),
             below(g, 10000));
    else
        put(g, "- ", 2);
    words(g, 4 + (int)below(g, 20));
}

static void gen_syslog3164(gen *g)
{
    int ms;
    struct tm tm = tm_of(g->ts_ms, &ms);
    stamp_prefix(g);
    putf(g, "<%u>%s %2d %02d:%02d:%02d %s %s[%u]: ", below(g, 192), MONTHS[tm.tm_mon], tm.tm_mday,
         tm.tm_hour, tm.tm_min, tm.tm_sec, PICK(g, HOSTS), PICK(g, APPS), 100 + below(g, 30000));
    words(g, 4 + (int)below(g, 20));
}

/* CRI: messages longer than the runtime's 16 KiB limit (here scaled down to
 * a random 200-600 bytes so partials are frequent) become P lines + one F. */
static void gen_cri(gen *g)
{
    char msg[4096];
    size_t save = g->len;
    stamp_prefix(g);
    size_t body = g->len;
    if (below(g, 3) == 0) {
        words(g, 20 + (int)below(g, 120));
    } else {
        words(g, 3 + (int)below(g, 15));
    }
    size_t mlen = g->len - body;
    if (mlen > sizeof msg) mlen = sizeof msg;
    memcpy(msg, g->line + body, mlen);
    g->len = save;
    const char *stream = below(g, 5) ? "stdout" : "stderr";
    size_t limit = 200 + below(g, 400), off = 0;
    for (;;) {
        size_t n = mlen - off > limit ? limit : mlen - off;
        bool last = off + n == mlen;
        /* Split on a character boundary so every line stays valid UTF-8. */
        while (!last && n > 1 && (msg[off + n] & 0xC0) == 0x80) n--;
        rfc3339(g);
        putf(g, " %s %c ", stream, last ? 'F' : 'P');
        put(g, msg + off, n);
        off += n;
        if (last) break;
        put(g, "\n", 1);
    }
}

static void gen_java(gen *g)
{
    int ms;
    struct tm tm = tm_of(g->ts_ms, &ms);
    stamp_prefix(g);
    putf(g, "%04d-%02d-%02d %02d:%02d:%02d,%03d %s [%s-%u] %s - ", tm.tm_year + 1900, tm.tm_mon + 1,
         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, below(g, 4) ? "INFO" : "ERROR",
         below(g, 2) ? "http-nio" : "worker", below(g, 64), PICK(g, JCLASSES));
    words(g, 4 + (int)below(g, 12));
    if (below(g, 4)) return;
    /* A stack trace: exception line, frames, sometimes a cause. */
    int causes = below(g, 3) == 0 ? 1 : 0;
    for (int c = 0; c <= causes; c++) {
        putf(g, "\n%s%s: ", c ? "Caused by: " : "", PICK(g, JEXC));
        words(g, 3 + (int)below(g, 6));
        int frames = 5 + (int)below(g, 25);
        for (int f = 0; f < frames; f++) {
            const char *cls = PICK(g, JCLASSES);
            const char *dot = strrchr(cls, '.');
            putf(g, "\n\tat %s.%s(%s.java:%u)", cls, below(g, 2) ? "handle" : "run", dot + 1,
                 10 + below(g, 900));
        }
        if (c < causes || below(g, 2)) putf(g, "\n\t... %u more", 1 + below(g, 40));
    }
}

typedef void (*gen_fn)(gen *g);
static const struct {
    const char *name;
    gen_fn fn;
} KINDS[] = {{"json", gen_json},
             {"nginx", gen_nginx},
             {"syslog5424", gen_syslog5424},
             {"syslog3164", gen_syslog3164},
             {"cri", gen_cri},
             {"java", gen_java}};

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        end++;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: gen --kind json|nginx|syslog5424|syslog3164|cri|java\n"
                    "           [--bytes N[K|M|G] | --lines N] [--seed S]\n"
                    "           [--rate LINES_PER_S --seconds S] [--stamp]\n");
}

int main(int argc, char **argv)
{
    const char *kind = NULL;
    uint64_t bytes = 0, lines = 0, seed = 1, rate = 0, seconds = 0;
    bool stamp = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--stamp")) {
            stamp = true;
            continue;
        }
        if (!v)
            bad = 1;
        else if (!strcmp(a, "--kind"))
            kind = v;
        else if (!strcmp(a, "--bytes"))
            bad = parse_size(v, &bytes);
        else if (!strcmp(a, "--lines"))
            bad = parse_size(v, &lines);
        else if (!strcmp(a, "--seed"))
            bad = parse_size(v, &seed);
        else if (!strcmp(a, "--rate"))
            bad = parse_size(v, &rate);
        else if (!strcmp(a, "--seconds"))
            bad = parse_size(v, &seconds);
        else
            bad = 1;
        if (bad) {
            usage();
            return 2;
        }
        i++;
    }
    gen_fn fn = NULL;
    for (size_t k = 0; kind && k < sizeof KINDS / sizeof KINDS[0]; k++)
        if (!strcmp(kind, KINDS[k].name)) fn = KINDS[k].fn;
    if (!fn || (rate && !seconds) || (!rate && !bytes && !lines)) {
        usage();
        return 2;
    }
    if (rate) lines = rate * seconds;
    static gen g;
    static char out[OUT_CAP];
    size_t olen = 0;
    g.rng = seed * 0x2545f4914f6cdd1dULL + 1;
    g.ts_ms = 1704067200000LL; /* 2024-01-01T00:00:00Z */
    g.stamp = stamp;
    uint64_t written = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t per_tick = rate ? (rate + 99) / 100 : 0, tick = 0;
    while ((lines && g.seq < lines) || (!lines && written < bytes)) {
        g.len = 0;
        fn(&g);
        g.line[g.len++] = '\n';
        g.seq++;
        g.ts_ms += 1 + below(&g, 20);
        if (olen + g.len > OUT_CAP) {
            if (write_all(out, olen)) return 1;
            olen = 0;
        }
        memcpy(out + olen, g.line, g.len);
        olen += g.len;
        written += g.len;
        if (rate && g.seq % per_tick == 0) {
            /* Paced writer: flush the tick's lines, then sleep to the next
             * 10 ms boundary (absolute, so drift does not accumulate). */
            if (write_all(out, olen)) return 1;
            olen = 0;
            tick++;
            struct timespec t = start;
            uint64_t ns = (uint64_t)t.tv_nsec + tick * 10000000ULL;
            t.tv_sec += (time_t)(ns / 1000000000ULL);
            t.tv_nsec = (long)(ns % 1000000000ULL);
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
            }
        }
    }
    if (write_all(out, olen)) return 1;
    return 0;
}
