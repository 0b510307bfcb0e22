#include "cli/http_health.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

#define FAILING_PREFIX "sluice_sink_failing{"

/* ---- health: pure logic ------------------------------------------------ */

void sl_health_init(sl_health *h)
{
    memset(h, 0, sizeof *h);
}

/* Copies the value of label `sink` from a label body `k="v",...}` into out
 * (escapes kept, so the result stays valid inside JSON quotes). Returns
 * false when absent or malformed. */
static bool extract_sink(const char *p, const char *end, char *out, size_t cap)
{
    while (p < end && *p != '}') {
        const char *k = p;
        while (p < end && *p != '=' && *p != '}') p++;
        if (p + 1 >= end || *p != '=' || p[1] != '"') return false;
        bool want = (size_t)(p - k) == 4 && memcmp(k, "sink", 4) == 0;
        p += 2;
        size_t o = 0;
        while (p < end && *p != '"') {
            size_t step = (*p == '\\' && p + 1 < end) ? 2 : 1;
            /* Never cut an escape in half: a lone backslash would end the
             * JSON string early. */
            if (want && o + step < cap) {
                memcpy(out + o, p, step);
                o += step;
            }
            p += step;
        }
        if (p >= end) return false;
        p++; /* closing quote */
        if (want) {
            out[o] = '\0';
            return true;
        }
        if (p < end && *p == ',') p++;
    }
    return false;
}

static sl_health_sink *find_or_add(sl_health *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->sinks[i].name, name) == 0) return &h->sinks[i];
    if (h->n == SL_HEALTH_MAX_SINKS) return NULL;
    sl_health_sink *s = &h->sinks[h->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->failing_since_ms = -1;
    return s;
}

void sl_health_observe(sl_health *h, const char *text, size_t len, int64_t now_ms)
{
    for (size_t i = 0; i < h->n; i++) h->sinks[i].seen = false;
    const char *end = text + len;
    const size_t plen = sizeof FAILING_PREFIX - 1;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        if ((size_t)(eol - line) > plen && memcmp(line, FAILING_PREFIX, plen) == 0) {
            char name[sizeof h->sinks[0].name];
            const char *close = memchr(line, '}', (size_t)(eol - line));
            if (close && extract_sink(line + plen, close + 1, name, sizeof name)) {
                const char *v = close + 1;
                while (v < eol && *v == ' ') v++;
                /* Anything but a plain 0 counts as failing: a gauge only ever
                 * holds 0 or 1 here, and a garbled value should not look
                 * healthy. */
                bool failing = !(v + 1 == eol && *v == '0') && v < eol;
                sl_health_sink *s = find_or_add(h, name);
                if (s) {
                    s->seen = true;
                    if (!failing)
                        s->failing_since_ms = -1;
                    else if (s->failing_since_ms < 0)
                        s->failing_since_ms = now_ms;
                }
            }
        }
        line = eol + 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->sinks[i].seen) h->sinks[k++] = h->sinks[i];
    h->n = k;
}

/* Appends s to buf as JSON string content: the Prometheus escapes it keeps
 * (\\, \", \n) are valid JSON already; other control bytes are encoded. */
static size_t json_put(char *buf, size_t cap, size_t o, const char *s)
{
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20)
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o] = '\0';
    return o;
}

static size_t put(char *buf, size_t cap, size_t o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t cap, size_t o, const char *fmt, ...)
{
    if (o >= cap) return o;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + o, cap - o, fmt, ap);
    va_end(ap);
    if (n < 0) return o;
    return (size_t)n < cap - o ? o + (size_t)n : cap - 1;
}

int sl_health_eval(const sl_health *h, int64_t now_ms, int64_t unhealthy_after_ms, char *buf,
                   size_t cap)
{
    if (cap == 0) return 503;
    size_t bad = 0;
    for (size_t i = 0; i < h->n; i++) {
        int64_t since = h->sinks[i].failing_since_ms;
        if (since >= 0 && now_ms - since > unhealthy_after_ms) bad++;
    }
    if (bad == 0) {
        snprintf(buf, cap, "{\"status\":\"ok\"}");
        return 200;
    }
    size_t o = put(buf, cap, 0,
                   "{\"status\":\"unhealthy\",\"reason\":\"%zu sink(s) failing for longer than "
                   "unhealthy_after\",\"unhealthy_after_seconds\":%.3f,\"sinks\":[",
                   bad, (double)unhealthy_after_ms / 1000.0);
    bool first = true;
    for (size_t i = 0; i < h->n; i++) {
        int64_t since = h->sinks[i].failing_since_ms;
        if (since < 0 || now_ms - since <= unhealthy_after_ms) continue;
        o = put(buf, cap, o, "%s{\"sink\":\"", first ? "" : ",");
        o = json_put(buf, cap, o, h->sinks[i].name);
        o = put(buf, cap, o, "\",\"failing_for_seconds\":%.3f}", (double)(now_ms - since) / 1000.0);
        first = false;
    }
    /* A body cut short by a tiny buffer is still better than none: the
     * status code carries the verdict. */
    put(buf, cap, o, "]}");
    return 503;
}

/* ---- process figures --------------------------------------------------- */

/* Seconds since the epoch when this process started, from the kernel's
 * view (so it survives the server being restarted by a reload). */
double sl_process_start_time(void)
{
    double fallback = (double)sl_now_ns() / 1e9;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f) return fallback;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return fallback;
    unsigned long long start_ticks = 0;
    /* After ')': state is field 3, starttime is field 22. */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        if (++field == 22) {
            start_ticks = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    f = fopen("/proc/stat", "re");
    if (!f || hz <= 0 || field != 22) {
        if (f) fclose(f);
        return fallback;
    }
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1) break;
    fclose(f);
    if (btime == 0) return fallback;
    return (double)btime + (double)start_ticks / (double)hz;
}

/* The process's resident bytes into *out; false when /proc does not say
 * (the gauge is then left out rather than reported as 0). */
static bool resident_bytes(unsigned long long *out)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return false;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (ok != 2 || page <= 0) return false;
    *out = resident * (unsigned long long)page;
    return true;
}

/* The descriptors the process holds open into *out; false when /proc/self/fd
 * cannot be read. */
static bool open_fds(unsigned long long *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return false;
    unsigned long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    *out = n ? n - 1 : 0; /* less the directory's own descriptor */
    return true;
}

void sl_process_metrics_append(sl_buf *b, double start_time)
{
    struct timespec cpu = {0};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    unsigned long long rss = 0, fds = 0;
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    sl_buf_printf(b,
                  "# HELP sluice_process_cpu_seconds_total User and system CPU time spent by the "
                  "agent.\n# TYPE sluice_process_cpu_seconds_total counter\n"
                  "sluice_process_cpu_seconds_total %.6f\n",
                  (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
    if (resident_bytes(&rss))
        sl_buf_printf(b,
                      "# HELP sluice_process_resident_memory_bytes Resident memory of the agent.\n"
                      "# TYPE sluice_process_resident_memory_bytes gauge\n"
                      "sluice_process_resident_memory_bytes %llu\n",
                      rss);
    if (open_fds(&fds))
        sl_buf_printf(b,
                      "# HELP sluice_process_open_fds File descriptors the agent holds open.\n"
                      "# TYPE sluice_process_open_fds gauge\nsluice_process_open_fds %llu\n",
                      fds);
    if (rl.rlim_cur != RLIM_INFINITY)
        sl_buf_printf(b,
                      "# HELP sluice_process_max_fds Limit on open file descriptors "
                      "(RLIMIT_NOFILE).\n# TYPE sluice_process_max_fds gauge\n"
                      "sluice_process_max_fds %llu\n",
                      (unsigned long long)rl.rlim_cur);
    sl_buf_printf(b,
                  "# HELP sluice_process_start_time_seconds Start time of the agent since the "
                  "Unix epoch.\n# TYPE sluice_process_start_time_seconds gauge\n"
                  "sluice_process_start_time_seconds %.2f\n"
                  "# HELP sluice_build_info Build of the running agent (always 1).\n"
                  "# TYPE sluice_build_info gauge\nsluice_build_info{version=\"%s\"} 1\n",
                  start_time, SLUICE_VERSION);
}

/* ---- probes ------------------------------------------------------------ */

int sl_liveness_eval(const sl_liveness *l, char *buf, size_t cap)
{
    if (cap == 0) return 503;
    if (l->threads_died > 0) {
        size_t o = put(buf, cap, 0,
                       "{\"status\":\"dead\",\"reason\":\"%d pipeline thread(s) stopped on their "
                       "own\",\"first\":\"",
                       l->threads_died);
        o = json_put(buf, cap, o, l->died);
        put(buf, cap, o, "\"}");
        return 503;
    }
    if (l->sampler_age_ms > l->wedged_after_ms) {
        snprintf(buf, cap,
                 "{\"status\":\"wedged\",\"reason\":\"the metrics registry has not answered for "
                 "%.3f s\"}",
                 (double)l->sampler_age_ms / 1000.0);
        return 503;
    }
    snprintf(buf, cap, "{\"status\":\"ok\"}");
    return 200;
}

int sl_readiness_eval(bool started, const sl_health *h, int64_t now_ms, int64_t unhealthy_after_ms,
                      char *buf, size_t cap)
{
    if (cap == 0) return 503;
    if (!started) {
        snprintf(buf, cap, "{\"status\":\"starting\",\"reason\":\"inputs not started yet\"}");
        return 503;
    }
    return sl_health_eval(h, now_ms, unhealthy_after_ms, buf, cap);
}
