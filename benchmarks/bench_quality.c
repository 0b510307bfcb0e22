/* Parse quality on real-world shapes (issue 21): a deterministic generated
 * corpus mixing the line shapes sluice meets in /var/log and application
 * logs, each family run through the parse steps an operator would give it
 * (the README's recipes), in batches of 4096 records as an input runs them.
 * Per family and overall it prints lines per second, the fraction of lines
 * with a parse error (`parse_error`), with a warning (`parse_warning`: a
 * syslog line whose tag did not fit) and the fraction whose time was not
 * taken from the line (the record kept its read time) or lies more than
 * 10 minutes past the read time (every generated line is older: a future
 * time is a wrong one, which Loki would refuse).
 *
 * Families: RFC 3164 (`tag[pid]:`, lenient tags with blanks and asides,
 * no tag), RFC 3164 with an ISO time without offset, RFC 5424, nginx
 * combined (some with X-Forwarded-For chains), Apache combined mixed with
 * common-format lines, vhost_combined, Apache 2.2/2.4 error, nginx error,
 * time-of-day-only application lines (`%H:%M:%S,%f`), and `%Z` dates with
 * zone abbreviations and IANA names.
 *
 * Reference, same run, same lines: the batches built and freed without
 * parse steps (what every input pays anyway); "x batching" is the chain's
 * time over that.
 *
 * usage: bench_quality [lines per family, default 200000] [runs, default 5] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/batch.h"
#include "core/config.h"
#include "parsers/chain.h"

#define BATCH     4096
#define READ_TIME 1765000000000000000LL /* 2025-12-06: the records' read time */
#define MAX_RUNS  15

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

static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const words[] = {"session", "opened",   "closed", "user", "root",  "request",
                                    "timeout", "upstream", "cache",  "miss", "retry", "connection"};

static int words_into(char *p, size_t cap, uint32_t n)
{
    int o = 0;
    for (uint32_t w = 0; w < n && (size_t)o < cap - 16; w++)
        o += snprintf(p + o, cap - (size_t)o, "%s%s", w ? " " : "", words[rnd(12)]);
    return o;
}

/* One line of a family into p; returns its length. */
typedef int (*gen_fn)(char *p, size_t cap);

static int gen_syslog(char *p, size_t cap)
{
    char msg[200];
    words_into(msg, sizeof msg, 3 + rnd(12));
    int o = snprintf(p, cap, "%s %2u %02u:%02u:%02u host%u ", mon[rnd(11)], 1 + rnd(28), rnd(24),
                     rnd(60), rnd(60), rnd(50));
    switch (rnd(10)) {
    case 0:
        return o + snprintf(p + o, cap - (size_t)o, "Microsoft Word[%u]: %s", rnd(60000), msg);
    case 1:
        return o + snprintf(p + o, cap - (size_t)o, "sandboxd[%u] ([%u]): %s", rnd(999), rnd(60000),
                            msg);
    case 2:
        return o + snprintf(p + o, cap - (size_t)o, "syslogd 1.4.1: restart.");
    case 3: /* rsyslog without a tag */
        return o + snprintf(p + o, cap - (size_t)o, "nginx %s", msg);
    case 4:
        return o + snprintf(p + o, cap - (size_t)o, "kernel: [%u.%06u] %s", rnd(99999), rnd(999999),
                            msg);
    default:
        return o + snprintf(p + o, cap - (size_t)o, "sshd[%u]: %s", rnd(60000), msg);
    }
}

static int gen_syslog_iso(char *p, size_t cap)
{
    char msg[200];
    words_into(msg, sizeof msg, 3 + rnd(12));
    return snprintf(p, cap, "2025-%02u-%02uT%02u:%02u:%02u.%06u host%u sudo: %s", 1 + rnd(11),
                    1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(1000000), rnd(50), msg);
}

static int gen_5424(char *p, size_t cap)
{
    char msg[200];
    words_into(msg, sizeof msg, 3 + rnd(12));
    return snprintf(p, cap,
                    "<%u>1 2025-%02u-%02uT%02u:%02u:%02u.%03uZ host%u app%u %u ID%u "
                    "[exampleSDID@32473 iut=\"%u\" eventSource=\"Application\"] %s",
                    rnd(192), 1 + rnd(11), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(1000),
                    rnd(50), rnd(9), rnd(60000), rnd(99), rnd(9), msg);
}

static int access_tail(char *p, size_t cap, bool ref_ua)
{
    int o = snprintf(p, cap,
                     "[%02u/%s/2025:%02u:%02u:%02u +0000] \"GET /api/v%u/items/%u HTTP/1.1\" %u %u",
                     1 + rnd(28), mon[rnd(11)], rnd(24), rnd(60), rnd(60), rnd(3), rnd(100000),
                     200 + rnd(300), rnd(100000));
    if (ref_ua)
        o += snprintf(p + o, cap - (size_t)o,
                      " \"https://example.org/p%u\" \"Mozilla/5.0 (X11; "
                      "Linux x86_64) Gecko/20100101 Firefox/%u.0\"",
                      rnd(99), 90 + rnd(40));
    return o;
}

static int gen_nginx(char *p, size_t cap)
{
    int o =
        rnd(8) == 0 ? snprintf(p, cap, "10.%u.%u.%u, 10.0.0.1 ", rnd(255), rnd(255), rnd(255)) : 0;
    o += snprintf(p + o, cap - (size_t)o, "192.0.2.%u - - ", rnd(255));
    return o + access_tail(p + o, cap - (size_t)o, true);
}

static int gen_apache(char *p, size_t cap)
{
    int o = snprintf(p, cap, "198.51.100.%u - %s ", rnd(255), rnd(4) ? "-" : "frank");
    return o + access_tail(p + o, cap - (size_t)o, rnd(3) != 0); /* a third common format */
}

static int gen_vhost(char *p, size_t cap)
{
    int o = snprintf(p, cap, "vhost%u.example%s 203.0.113.%u - - ", rnd(9), rnd(2) ? ":443" : "",
                     rnd(255));
    return o + access_tail(p + o, cap - (size_t)o, true);
}

static int gen_apache_error(char *p, size_t cap)
{
    static const char *const wd[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    if (rnd(2))
        return snprintf(p, cap,
                        "[%s %s %02u %02u:%02u:%02u.%06u 2025] [core:error] [pid %u:tid %u] "
                        "[client 192.0.2.%u:%u] AH00126: Invalid URI in request",
                        wd[rnd(7)], mon[rnd(11)], 1 + rnd(28), rnd(24), rnd(60), rnd(60),
                        rnd(1000000), rnd(60000), rnd(2000000000), rnd(255), rnd(65535));
    return snprintf(p, cap,
                    "[%s %s %02u %02u:%02u:%02u 2025] [error] [client 192.0.2.%u] File does not "
                    "exist: /var/www/html/p%u.ico",
                    wd[rnd(7)], mon[rnd(11)], 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(255),
                    rnd(999));
}

static int gen_nginx_error(char *p, size_t cap)
{
    if (rnd(3) == 0)
        return snprintf(p, cap,
                        "2025/%02u/%02u %02u:%02u:%02u [notice] %u#%u: signal process started",
                        1 + rnd(11), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(9999), rnd(9));
    return snprintf(p, cap,
                    "2025/%02u/%02u %02u:%02u:%02u [error] %u#%u: *%u upstream timed out (110: "
                    "Connection timed out) while reading response header from upstream, client: "
                    "192.0.2.%u, server: api.example, request: \"GET /v1/x%u HTTP/1.1\", upstream: "
                    "\"http://127.0.0.1:8080/v1/x\", host: \"api.example\"",
                    1 + rnd(11), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(9999), rnd(9),
                    rnd(999999), rnd(255), rnd(999));
}

static int gen_time_only(char *p, size_t cap)
{
    char msg[200];
    words_into(msg, sizeof msg, 3 + rnd(12));
    return snprintf(p, cap, "%02u:%02u:%02u,%03u %s [main] org.example.Server - %s", rnd(24),
                    rnd(60), rnd(60), rnd(1000), rnd(4) ? "INFO" : "WARN", msg);
}

static int gen_zone_names(char *p, size_t cap)
{
    static const char *const z[] = {
        "CET",       "CEST", "PST", "PDT", "EST", "UTC", "JST", "Europe/Berlin", "America/New_York",
        "Asia/Tokyo"};
    char msg[200];
    words_into(msg, sizeof msg, 3 + rnd(12));
    return snprintf(p, cap, "Mon %s %02u %02u:%02u:%02u %s 2025 %s", mon[rnd(11)], 1 + rnd(28),
                    rnd(24), rnd(60), rnd(60), z[rnd(10)], msg);
}

typedef struct family {
    const char *name;
    gen_fn gen;
    const char *steps; /* YAML list of parse steps */
} family;

static const family families[] = {
    {"syslog 3164 (mixed tags)", gen_syslog, "- syslog: {timezone: UTC}\n"},
    {"syslog 3164, ISO local", gen_syslog_iso, "- syslog: {timezone: Europe/Berlin}\n"},
    {"syslog 5424", gen_5424, "- syslog: {}\n"},
    {"nginx_combined", gen_nginx, "- regex: {builtin: nginx_combined}\n"},
    {"apache_combined + common", gen_apache, "- regex: {builtin: apache_combined}\n"},
    {"vhost_combined", gen_vhost, "- regex: {builtin: vhost_combined}\n"},
    {"apache_error", gen_apache_error,
     "- regex: {builtin: apache_error}\n"
     "- timestamp: {field: time, format: '%a %b %d %H:%M:%S %Y', timezone: UTC}\n"},
    {"nginx_error", gen_nginx_error,
     "- regex: {builtin: nginx_error}\n"
     "- timestamp: {field: time, format: '%Y/%m/%d %H:%M:%S', timezone: UTC}\n"},
    {"time of day only", gen_time_only,
     "- regex: {pattern: '^(?<ts>\\S+) (?<level>[A-Z]+) \\[(?<thread>[^\\]]+)\\] (?<msg>.*)'}\n"
     "- timestamp: {field: ts, format: '%H:%M:%S,%f', timezone: UTC}\n"},
    {"%Z zone names", gen_zone_names,
     "- regex: {pattern: '^(?<ts>\\S+ \\S+ \\d+ \\S+ \\S+ \\d{4}) (?<msg>.*)'}\n"
     "- timestamp: {field: ts, format: '%a %b %d %H:%M:%S %Z %Y'}\n"},
};
#define NFAM (sizeof families / sizeof *families)

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

typedef struct counts {
    uint64_t lines, errors, warnings, read_time, future;
} counts;

/* Runs the lines through chain (NULL: batches only); returns seconds. */
static double pass(sl_chain *chain, const sl_slice *lines, size_t n, counts *c)
{
    double t0 = now_s();
    for (size_t i = 0; i < n;) {
        sl_batch *b = sl_batch_new(BATCH);
        if (!b) exit(1);
        for (; i < n && b->nrecords < BATCH; i++) sl_batch_add(b, lines[i], READ_TIME, i);
        if (chain) sl_chain_run(chain, b);
        for (uint32_t k = 0; c && k < b->nrecords; k++) {
            const sl_record *r = &b->records[k];
            c->lines++;
            c->errors += (r->flags & SL_RF_PARSE_ERROR) != 0;
            c->warnings += sl_record_field(r, "parse_warning", 13) != NULL;
            c->read_time += r->time_ns == READ_TIME;
            c->future += r->time_ns > READ_TIME + 600 * 1000000000LL;
        }
        sl_batch_unref(b);
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    size_t per = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 200000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (per == 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_quality [lines per family] [runs <= %d]\n", MAX_RUNS);
        return 2;
    }
    size_t cap = per * NFAM * 420 + 4096, used = 0;
    char *buf = malloc(cap);
    sl_slice *lines = malloc(per * NFAM * sizeof *lines);
    if (!buf || !lines) return 1;
    for (size_t f = 0; f < NFAM; f++)
        for (size_t i = 0; i < per; i++) {
            int n = families[f].gen(buf + used, 400);
            lines[f * per + i] = (sl_slice){buf + used, (size_t)n};
            used += (size_t)n + 1;
        }
    sl_cfg *cfgs[NFAM];
    sl_chain *chains[NFAM];
    for (size_t f = 0; f < NFAM; f++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "parse:\n%s", families[f].steps);
        /* indent the steps under parse: */
        char ind[2048];
        size_t o = 0;
        for (const char *s = yaml; *s; s++) {
            ind[o++] = *s;
            if (*s == '\n' && s[1]) ind[o++] = ' ', ind[o++] = ' ';
        }
        ind[o] = 0;
        sl_cfg *c = cfgs[f] = sl_cfg_new(); /* the chain points into it: kept to the end */
        if (!c || sl_cfg_load_string(c, families[f].name, ind, o) != 0) return 1;
        /* A step this build lacks (to compare with an older one): skipped. */
        if (sl_chain_new(c, sl_cfg_get(sl_cfg_root(c), "parse"), "bench", &chains[f]) != 0)
            chains[f] = NULL;
    }
    printf("bench_quality: %zu families x %zu lines, %.1f MB, batches of %d, median of %d runs\n",
           NFAM, per, (double)used / 1e6, BATCH, runs);
    printf("%-26s %9s %10s %8s %8s %9s %8s\n", "family", "Mlines/s", "x batching", "errors",
           "warnings", "read time", "future");
    double tot_chain[MAX_RUNS] = {0}, tot_ref[MAX_RUNS] = {0};
    counts all = {0};
    for (size_t f = 0; f < NFAM; f++) {
        if (!chains[f]) {
            printf("%-26s   (a step this build does not have)\n", families[f].name);
            continue;
        }
        double tc[MAX_RUNS], tr[MAX_RUNS];
        counts c = {0};
        for (int r = 0; r < runs; r++) {
            tr[r] = pass(NULL, lines + f * per, per, NULL);
            tc[r] = pass(chains[f], lines + f * per, per, r == 0 ? &c : NULL);
            tot_ref[r] += tr[r];
            tot_chain[r] += tc[r];
        }
        double mc = median(tc, runs), mr = median(tr, runs);
        printf("%-26s %9.2f %10.1f %7.2f%% %7.2f%% %8.2f%% %7.2f%%\n", families[f].name,
               (double)per / mc / 1e6, mc / mr, 100.0 * (double)c.errors / (double)c.lines,
               100.0 * (double)c.warnings / (double)c.lines,
               100.0 * (double)c.read_time / (double)c.lines,
               100.0 * (double)c.future / (double)c.lines);
        all.lines += c.lines, all.errors += c.errors, all.warnings += c.warnings;
        all.read_time += c.read_time, all.future += c.future;
    }
    double mc = median(tot_chain, runs), mr = median(tot_ref, runs);
    printf("%-26s %9.2f %10.1f %7.2f%% %7.2f%% %8.2f%% %7.2f%%\n", "all (available)",
           (double)all.lines / mc / 1e6, mc / mr, 100.0 * (double)all.errors / (double)all.lines,
           100.0 * (double)all.warnings / (double)all.lines,
           100.0 * (double)all.read_time / (double)all.lines,
           100.0 * (double)all.future / (double)all.lines);
    for (size_t f = 0; f < NFAM; f++) {
        sl_chain_free(chains[f]);
        sl_cfg_free(cfgs[f]);
    }
    free(lines);
    free(buf);
    return 0;
}
