#include "cli/http_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/recjson.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

/* Scrapers make one request at a time; a handful of slots leaves room for a
 * human with curl while a stuck client cannot pin more than one. */
#define MAX_CONNS 8
/* A GET head is a few hundred bytes; anything near this is not a scrape. */
#define MAX_REQUEST 8192
/* Whole-connection budget: read the request, write the response. */
#define CONN_TIMEOUT_MS 5000
/* After the response, unread input is drained this long so that closing
 * does not reset the connection under the client's feet. */
#define LINGER_MS 1000
/* Health is sampled this often even when nobody asks, so "failing since"
 * is known to within a tick. */
#define TICK_MS 1000

/* Bound on a rendered response; a registry this large is a bug elsewhere. */
#define MAX_RESPONSE ((size_t)64 << 20)

#define FAILING_PREFIX "sluice_sink_failing{"

/* The tail ring: entries and bytes both bounded, oldest evicted first. */
#define TAP_SLOTS     4096
#define TAP_BYTES     ((size_t)8 << 20)
#define TAP_ENTRY_MAX ((size_t)64 << 10)
/* Tails are for a human at a terminal; keep most slots for scrapers. */
#define MAX_TAILS 2
/* Per tail client: output waiting for a slow reader; beyond it, skip. */
#define TAIL_OUT_MAX ((size_t)1 << 20)
/* How often the ring is copied to tail clients (no wakeup per record). */
#define TAIL_PUMP_MS     50
#define TAIL_MAX_LABELS  8
#define TAIL_LABEL_BYTES 256

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
static double process_start_time(void)
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

static long long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -1;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (ok != 2 || page <= 0) return -1;
    return (long long)(resident * (unsigned long long)page);
}

static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void append_process_metrics(sl_buf *b, double start_time)
{
    struct timespec cpu = {0};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    long long rss = resident_bytes(), fds = open_fds();
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    sl_buf_printf(b,
                  "# HELP sluice_process_cpu_seconds_total User and system CPU time spent by the "
                  "agent.\n# TYPE sluice_process_cpu_seconds_total counter\n"
                  "sluice_process_cpu_seconds_total %.6f\n",
                  (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
    if (rss >= 0)
        sl_buf_printf(b,
                      "# HELP sluice_process_resident_memory_bytes Resident memory of the agent.\n"
                      "# TYPE sluice_process_resident_memory_bytes gauge\n"
                      "sluice_process_resident_memory_bytes %lld\n",
                      rss);
    if (fds >= 0)
        sl_buf_printf(b,
                      "# HELP sluice_process_open_fds File descriptors the agent holds open.\n"
                      "# TYPE sluice_process_open_fds gauge\nsluice_process_open_fds %lld\n",
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

/* ---- server ------------------------------------------------------------ */

enum conn_state { C_FREE, C_READ, C_WRITE, C_LINGER, C_STREAM };

/* One tapped record: "json\0line\0\nk=v\nk=v\n\0" in one allocation. */
typedef struct tap_entry {
    char *p;
    size_t size;
    uint32_t jn, lo, bo, bn;
} tap_entry;

typedef struct tap {
    pthread_mutex_t mu;
    tap_entry e[TAP_SLOTS];
    uint64_t first, next; /* live entries: sequence numbers [first, next) */
    size_t bytes;
} tap;

typedef struct conn {
    struct sl_http_metrics *owner;
    int fd;
    int state;
    int64_t deadline_ms;
    size_t req_len;
    char req[MAX_REQUEST];
    sl_buf resp;
    size_t resp_off;
    /* C_STREAM (a tail client) only */
    bool has_re;
    regex_t re;
    char labels[TAIL_MAX_LABELS][TAIL_LABEL_BYTES]; /* "\nk=v\n" */
    int nlabels;
    uint64_t next_seq, skipped;
} conn;

struct sl_http_metrics {
    int lfd;
    int wake[2]; /* stop() writes a byte so poll returns at once */
    int port;
    pthread_t thread;
    atomic_bool stop;
    int64_t unhealthy_after_ms;
    int64_t next_tick_ms;
    int64_t accept_paused_until_ms;
    double start_time;
    sl_health health;
    char listen[256];
    conn conns[MAX_CONNS];
    atomic_int tails; /* streaming clients; the pipeline taps only when > 0 */
    atomic_ullong tap_lost;
    tap tap;
};

static int64_t mono_ms(void)
{
    return sl_monotonic_ns() / 1000000;
}

static void observe_health(sl_http_metrics *h, int64_t now)
{
    char *text = NULL;
    size_t len = 0;
    if (sl_metrics_render(&text, &len) != SL_OK) return; /* keep the last verdict */
    sl_health_observe(&h->health, text, len, now);
    free(text);
}

/* ---- tail tap ---------------------------------------------------------- */

bool sl_http_metrics_tailing(const sl_http_metrics *h)
{
    return h && atomic_load_explicit(&h->tails, memory_order_relaxed) > 0;
}

static void label_put(sl_buf *b, const char *k, size_t kn, const char *v, size_t vn)
{
    sl_buf_append(b, k, kn);
    sl_buf_putc(b, '=');
    sl_buf_append(b, v, vn);
    sl_buf_putc(b, '\n');
}

/* Caller holds t->mu. */
static void tap_clear(tap *t)
{
    for (; t->first < t->next; t->first++) {
        free(t->e[t->first % TAP_SLOTS].p);
        t->e[t->first % TAP_SLOTS].p = NULL;
    }
    t->bytes = 0;
}

/* Caller holds t->mu. Takes ownership of e->p. */
static void tap_push(tap *t, const tap_entry *e)
{
    while (t->next > t->first &&
           (t->next - t->first == TAP_SLOTS || t->bytes + e->size > TAP_BYTES)) {
        tap_entry *old = &t->e[t->first % TAP_SLOTS];
        t->bytes -= old->size;
        free(old->p);
        old->p = NULL;
        t->first++;
    }
    t->e[t->next % TAP_SLOTS] = *e;
    t->bytes += e->size;
    t->next++;
}

void sl_http_metrics_tap(sl_http_metrics *h, const sl_batch *b)
{
    if (!sl_http_metrics_tailing(h)) return;
    /* Labels every record of the batch shares: the input and its static labels. */
    sl_buf common, one;
    sl_buf_init(&common, TAP_ENTRY_MAX / 2);
    sl_buf_init(&one, TAP_ENTRY_MAX);
    sl_buf_putc(&common, '\n');
    if (b->input) label_put(&common, "input", 5, b->input, strlen(b->input));
    for (uint32_t i = 0; i < b->nlabels; i++)
        label_put(&common, b->labels[i].key.p, b->labels[i].key.n, b->labels[i].val.p,
                  b->labels[i].val.n);
    uint64_t lost = 0;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        sl_buf_reset(&one);
        if (sl_recjson_append(&one, b, r, SL_RJ_ALL) < 0) {
            lost++;
            continue;
        }
        tap_entry e = {.jn = (uint32_t)one.len};
        sl_buf_putc(&one, '\0');
        e.lo = (uint32_t)one.len;
        sl_buf_append(&one, r->line.p, r->line.n);
        sl_buf_putc(&one, '\0');
        e.bo = (uint32_t)one.len;
        sl_buf_append(&one, common.p, common.len);
        for (uint32_t f = 0; f < r->nfields; f++)
            if (r->fields[f].flags & SL_FF_LABEL)
                label_put(&one, r->fields[f].key.p, r->fields[f].key.n, r->fields[f].val.p,
                          r->fields[f].val.n);
        e.bn = (uint32_t)(one.len - e.bo);
        sl_buf_putc(&one, '\0');
        if (one.failed || common.failed || !(e.p = malloc(one.len))) {
            lost++;
            continue;
        }
        memcpy(e.p, one.p, one.len);
        e.size = one.len;
        /* Never wait for the server thread: a busy ring loses the record. */
        if (pthread_mutex_trylock(&h->tap.mu) != 0) {
            free(e.p);
            lost++;
            continue;
        }
        tap_push(&h->tap, &e);
        pthread_mutex_unlock(&h->tap.mu);
    }
    if (lost) atomic_fetch_add_explicit(&h->tap_lost, lost, memory_order_relaxed);
    sl_buf_free(&one);
    sl_buf_free(&common);
}

static bool tail_match(const conn *c, const tap_entry *e)
{
    for (int i = 0; i < c->nlabels; i++)
        if (!memmem(e->p + e->bo, e->bn, c->labels[i], strlen(c->labels[i]))) return false;
    return !c->has_re || regexec(&c->re, e->p + e->lo, 0, NULL, 0) == 0;
}

/* Copies new matching entries into the client's output; skips what does
 * not fit so that a stalled reader costs a bounded amount of memory. */
static void tail_pump(sl_http_metrics *h, conn *c)
{
    if (c->resp_off == c->resp.len) {
        sl_buf_reset(&c->resp);
        c->resp_off = 0;
    } else if (c->resp_off > c->resp.len / 2) {
        memmove(c->resp.p, c->resp.p + c->resp_off, c->resp.len - c->resp_off);
        c->resp.len -= c->resp_off;
        c->resp_off = 0;
    }
    tap *t = &h->tap;
    pthread_mutex_lock(&t->mu);
    if (c->next_seq < t->first) {
        c->skipped += t->first - c->next_seq;
        c->next_seq = t->first;
    }
    for (; c->next_seq < t->next; c->next_seq++) {
        const tap_entry *e = &t->e[c->next_seq % TAP_SLOTS];
        if (!tail_match(c, e)) continue;
        if (c->resp.len - c->resp_off + e->jn + 1 > TAIL_OUT_MAX) {
            c->skipped++;
            continue;
        }
        sl_buf_append(&c->resp, e->p, e->jn);
        sl_buf_putc(&c->resp, '\n');
    }
    pthread_mutex_unlock(&t->mu);
    if (c->skipped && c->resp.len - c->resp_off + 64 < TAIL_OUT_MAX) {
        sl_buf_printf(&c->resp, "{\"tail_skipped\":%llu}\n", (unsigned long long)c->skipped);
        c->skipped = 0;
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes [p, end) into out (NUL-terminated). -1 when malformed,
 * too long or holding a NUL. */
static int url_decode(const char *p, const char *end, char *out, size_t cap)
{
    size_t o = 0;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0) return -1;
            ch = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            if (ch == '\0') return -1;
            p += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static void respond_text(conn *c, int status, const char *msg);

/* GET /tail?match=REGEX&label=k=v...: answers the head and turns the
 * connection into a stream. */
static void tail_start(sl_http_metrics *h, conn *c, const char *q, const char *end)
{
    c->has_re = false;
    c->nlabels = 0;
    char val[1024], msg[1200];
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        if (eq && url_decode(eq + 1, pe, val, sizeof val) != 0) {
            respond_text(c, 400, "bad query: malformed or too long value\n");
            goto fail;
        }
        size_t klen = (size_t)((eq ? eq : pe) - q);
        if (eq && klen == 5 && memcmp(q, "match", 5) == 0 && !c->has_re) {
            int rc = regcomp(&c->re, val, REG_EXTENDED | REG_NOSUB);
            if (rc != 0) {
                char why[256];
                regerror(rc, &c->re, why, sizeof why);
                snprintf(msg, sizeof msg, "bad match regex: %s\n", why);
                respond_text(c, 400, msg);
                goto fail;
            }
            c->has_re = true;
        } else if (eq && klen == 5 && memcmp(q, "label", 5) == 0) {
            if (!strchr(val, '=') || val[0] == '=' || c->nlabels == TAIL_MAX_LABELS ||
                strlen(val) + 3 > TAIL_LABEL_BYTES) {
                respond_text(c, 400, "bad label filter: want at most 8 of label=KEY=VALUE\n");
                goto fail;
            }
            /* Length checked above: "\n" + val + "\n" + NUL fits. */
            char *lab = c->labels[c->nlabels++];
            size_t vl = strlen(val);
            lab[0] = '\n';
            memcpy(lab + 1, val, vl);
            lab[vl + 1] = '\n';
            lab[vl + 2] = '\0';
        } else if (klen > 0) {
            respond_text(c, 400, "bad query: known parameters are match and label\n");
            goto fail;
        }
        q = amp ? amp + 1 : end;
    }
    if (atomic_fetch_add(&h->tails, 1) >= MAX_TAILS) {
        atomic_fetch_sub(&h->tails, 1);
        respond_text(c, 503, "too many tail clients\n");
        goto fail;
    }
    pthread_mutex_lock(&h->tap.mu);
    c->next_seq = h->tap.next; /* from now on, like tail -f */
    pthread_mutex_unlock(&h->tap.mu);
    c->skipped = 0;
    sl_buf_reset(&c->resp);
    sl_buf_printf(&c->resp, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            "Cache-Control: no-store\r\nConnection: close\r\n\r\n");
    c->resp_off = 0;
    c->state = C_STREAM;
    c->deadline_ms = INT64_MAX;
    return;
fail:
    if (c->has_re) regfree(&c->re);
    c->has_re = false;
}

/* A tail client: sends what is pending; notices the client going away. */
static void conn_close(conn *c);

static void stream_io(conn *c, short revents)
{
    if (revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
        char junk[1024];
        ssize_t n = recv(c->fd, junk, sizeof junk, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
    }
    while (c->resp_off < c->resp.len) {
        ssize_t n = send(c->fd, c->resp.p + c->resp_off, c->resp.len - c->resp_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) conn_close(c);
            return;
        }
        c->resp_off += (size_t)n;
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void respond(conn *c, int status, const char *ctype, const char *body, size_t blen,
                    bool head_only)
{
    sl_buf_reset(&c->resp);
    sl_buf_printf(&c->resp,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                  status, reason_phrase(status), ctype, blen,
                  status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only) sl_buf_append(&c->resp, body, blen);
    c->resp_off = 0;
    c->state = C_WRITE;
}

static void respond_text(conn *c, int status, const char *msg)
{
    respond(c, status, "text/plain; charset=utf-8", msg, strlen(msg), false);
}

static bool is_tchar(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The request head is complete in c->req[0..len): route it. */
static void handle_request(sl_http_metrics *h, conn *c, size_t head_len)
{
    const char *p = c->req, *end = c->req + head_len;
    const char *line_end = memchr(p, '\n', head_len);
    if (!line_end) line_end = end;
    const char *m = p;
    while (p < line_end && *p != ' ' && is_tchar(*p)) p++;
    size_t mlen = (size_t)(p - m);
    if (mlen == 0 || p >= line_end || *p != ' ') return respond_text(c, 400, "bad request\n");
    const char *t = ++p;
    while (p < line_end && *p != ' ') p++;
    size_t tlen = (size_t)(p - t);
    if (tlen == 0 || *t != '/' || p >= line_end) return respond_text(c, 400, "bad request\n");
    const char *v = ++p;
    size_t vlen = (size_t)(line_end - v);
    if (vlen > 0 && v[vlen - 1] == '\r') vlen--;
    if (!(vlen == 8 && (memcmp(v, "HTTP/1.1", 8) == 0 || memcmp(v, "HTTP/1.0", 8) == 0)))
        return respond_text(c, 400, "bad request\n");
    bool head = mlen == 4 && memcmp(m, "HEAD", 4) == 0;
    if (!head && !(mlen == 3 && memcmp(m, "GET", 3) == 0))
        return respond_text(c, 405, "method not allowed\n");
    const char *q = memchr(t, '?', tlen);
    size_t plen = q ? (size_t)(q - t) : tlen;

    if (plen == 8 && memcmp(t, "/metrics", 8) == 0) {
        char *text = NULL;
        size_t len = 0;
        if (sl_metrics_render(&text, &len) != SL_OK) return respond_text(c, 500, "out of memory\n");
        sl_buf body;
        sl_buf_init(&body, MAX_RESPONSE);
        sl_buf_append(&body, text, len);
        free(text);
        append_process_metrics(&body, h->start_time);
        if (body.failed)
            respond_text(c, 500, "out of memory\n");
        else
            respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body.p, body.len, head);
        sl_buf_free(&body);
        return;
    }
    if (plen == 8 && memcmp(t, "/healthz", 8) == 0) {
        int64_t now = mono_ms();
        observe_health(h, now);
        char json[4096];
        int status = sl_health_eval(&h->health, now, h->unhealthy_after_ms, json, sizeof json);
        size_t jl = strlen(json);
        if (jl + 1 < sizeof json) json[jl++] = '\n';
        return respond(c, status, "application/json", json, jl, head);
    }
    if (plen == 5 && memcmp(t, "/tail", 5) == 0)
        return tail_start(h, c, q ? q + 1 : NULL, t + tlen);
    if (plen == 1) {
        static const char index[] = "sluice agent: /metrics /healthz /tail\n";
        return respond(c, 200, "text/plain; charset=utf-8", index, sizeof index - 1, head);
    }
    respond_text(c, 404, "not found\n");
}

static void conn_close(conn *c)
{
    if (c->state == C_STREAM) atomic_fetch_sub(&c->owner->tails, 1);
    if (c->has_re) regfree(&c->re);
    c->has_re = false;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    sl_buf_free(&c->resp);
}

/* Finds the end of the request head; 0 while incomplete. Bare LF line ends
 * are accepted as RFC 9112 allows. */
static size_t head_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n') continue;
        if (p[i + 1] == '\n') return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') return i + 3;
    }
    return 0;
}

static void conn_read(sl_http_metrics *h, conn *c)
{
    if (c->state == C_LINGER) {
        char junk[4096];
        ssize_t n = recv(c->fd, junk, sizeof junk, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->req + c->req_len, MAX_REQUEST - c->req_len, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) conn_close(c);
        return;
    }
    if (n == 0) { /* gone before finishing a request: nobody to answer */
        conn_close(c);
        return;
    }
    size_t from = c->req_len > 3 ? c->req_len - 3 : 0;
    c->req_len += (size_t)n;
    size_t e = head_end(c->req + from, c->req_len - from);
    if (e)
        handle_request(h, c, from + e);
    else if (c->req_len == MAX_REQUEST)
        respond_text(c, 431, "request too large\n");
}

static void conn_write(conn *c, int64_t now)
{
    if (c->resp.failed) {
        conn_close(c);
        return;
    }
    while (c->resp_off < c->resp.len) {
        ssize_t n = send(c->fd, c->resp.p + c->resp_off, c->resp.len - c->resp_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_close(c);
            return;
        }
        c->resp_off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    sl_buf_free(&c->resp);
    c->state = C_LINGER;
    c->deadline_ms = now + LINGER_MS;
}

static void accept_all(sl_http_metrics *h, int64_t now)
{
    for (;;) {
        conn *c = NULL;
        for (int i = 0; i < MAX_CONNS && !c; i++)
            if (h->conns[i].state == C_FREE) c = &h->conns[i];
        if (!c) return;
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors: the listener stays readable, so back off
             * instead of spinning. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                h->accept_paused_until_ms = now + 100;
            return;
        }
        c->fd = fd;
        c->state = C_READ;
        c->req_len = 0;
        c->deadline_ms = now + CONN_TIMEOUT_MS;
        sl_buf_init(&c->resp, MAX_RESPONSE + 1024);
    }
}

static void *server_thread(void *arg)
{
    sl_http_metrics *h = arg;
    struct pollfd pfd[MAX_CONNS + 2];
    conn *owner[MAX_CONNS + 2];
    while (!atomic_load(&h->stop)) {
        int64_t now = mono_ms();
        if (now >= h->next_tick_ms) {
            observe_health(h, now);
            h->next_tick_ms = now + TICK_MS;
            /* Nobody tails any more: give the ring's memory back. */
            if (atomic_load(&h->tails) == 0) {
                pthread_mutex_lock(&h->tap.mu);
                tap_clear(&h->tap);
                pthread_mutex_unlock(&h->tap.mu);
            }
        }
        int n = 0, nconns = 0;
        int64_t wake_at = h->next_tick_ms;
        pfd[n] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        owner[n++] = NULL;
        for (int i = 0; i < MAX_CONNS; i++) {
            conn *c = &h->conns[i];
            if (c->state == C_FREE) continue;
            nconns++;
            short ev = c->state == C_WRITE ? POLLOUT : POLLIN;
            if (c->state == C_STREAM) {
                tail_pump(h, c);
                if (c->resp_off < c->resp.len) ev |= POLLOUT;
                if (now + TAIL_PUMP_MS < wake_at) wake_at = now + TAIL_PUMP_MS;
            }
            if (c->deadline_ms < wake_at) wake_at = c->deadline_ms;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            owner[n++] = c;
        }
        int listen_idx = -1;
        if (nconns < MAX_CONNS && now >= h->accept_paused_until_ms) {
            listen_idx = n;
            pfd[n] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
            owner[n++] = NULL;
        } else if (now < h->accept_paused_until_ms && h->accept_paused_until_ms < wake_at) {
            wake_at = h->accept_paused_until_ms;
        }
        int timeout = wake_at > now ? (int)(wake_at - now) : 0;
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR) {
            sl_log(SL_LOG_ERROR, "metrics_poll_failed", "errno=%d", errno);
            usleep(100000);
            continue;
        }
        now = mono_ms();
        for (int i = 1; r > 0 && i < n; i++) {
            conn *c = owner[i];
            if (!c || !pfd[i].revents) continue;
            if (c->state == C_STREAM) {
                stream_io(c, pfd[i].revents);
                continue;
            }
            if (c->state == C_WRITE) {
                if (pfd[i].revents & (POLLERR | POLLNVAL))
                    conn_close(c);
                else
                    conn_write(c, now);
            } else {
                conn_read(h, c);
            }
            /* A response is tried at once; most fit in the socket buffer. */
            if (c->state == C_WRITE) conn_write(c, now);
        }
        for (int i = 0; i < MAX_CONNS; i++)
            if (h->conns[i].state != C_FREE && now >= h->conns[i].deadline_ms)
                conn_close(&h->conns[i]);
        if (listen_idx >= 0 && (pfd[listen_idx].revents & POLLIN)) accept_all(h, now);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (h->conns[i].state != C_FREE) conn_close(&h->conns[i]);
    return NULL;
}

/* Splits "host:port", "[v6]:port" or ":port". host is "" for any address. */
static int split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':') return -1;
        if ((size_t)(rb - listen - 1) >= hcap) return -1;
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= hcap) return -1;
        if (memchr(listen, ':', (size_t)(colon - listen))) return -1; /* bare v6 needs [] */
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
    }
    const char *p = colon + 1;
    size_t n = strlen(p);
    if (n == 0 || n >= pcap || n > 5) return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return -1;
    if (atoi(p) > 65535) return -1;
    memcpy(port, p, n + 1);
    return 0;
}

static bool listen_fd_ok(int fd)
{
    return listen(fd, 64) == 0;
}

static int open_listener(const char *listen, int *fd_out, int *port_out, sl_err *err)
{
    char host[256], port[8];
    if (split_listen(listen, host, sizeof host, port, sizeof port) != 0)
        return sl_errf(err, SL_EINVAL,
                       "metrics.listen '%s': expected host:port, [v6addr]:port or :port", listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0)
        return sl_errf(err, SL_EINVAL, "metrics.listen '%s': %s", listen, gai_strerror(gai));
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        /* A reload closes and reopens the listener at once; TIME_WAIT
         * connections from the last scrape must not block the bind. */
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen_fd_ok(fd)) break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return sl_errf(err, SL_EIO, "metrics.listen '%s': %s", listen, strerror(last_errno));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int p = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *fd_out = fd;
    *port_out = p;
    return SL_OK;
}

int sl_http_metrics_start(const char *listen, int64_t unhealthy_after_ms, sl_http_metrics **out,
                          sl_err *err)
{
    if (!listen || !*listen) return sl_errf(err, SL_EINVAL, "metrics.listen is empty");
    if (unhealthy_after_ms < 0)
        return sl_errf(err, SL_EINVAL, "metrics.unhealthy_after must not be negative");
    sl_http_metrics *h = calloc(1, sizeof *h);
    if (!h) return sl_errf(err, SL_ENOMEM, "metrics: out of memory");
    h->lfd = h->wake[0] = h->wake[1] = -1;
    for (int i = 0; i < MAX_CONNS; i++) {
        h->conns[i].fd = -1;
        h->conns[i].owner = h;
    }
    h->unhealthy_after_ms = unhealthy_after_ms;
    h->start_time = process_start_time();
    snprintf(h->listen, sizeof h->listen, "%s", listen);
    sl_health_init(&h->health);
    atomic_init(&h->stop, false);
    atomic_init(&h->tails, 0);
    atomic_init(&h->tap_lost, 0);
    pthread_mutex_init(&h->tap.mu, NULL);
    int rc = open_listener(listen, &h->lfd, &h->port, err);
    if (rc != SL_OK) goto fail;
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = sl_errf(err, SL_EIO, "metrics: pipe: %s", strerror(errno));
        goto fail;
    }
    /* The first health sample is taken before serving, so "failing since"
     * starts from now rather than from the first tick. */
    h->next_tick_ms = 0;
    if (pthread_create(&h->thread, NULL, server_thread, h) != 0) {
        rc = sl_errf(err, SL_ENOMEM, "metrics: cannot start thread");
        goto fail;
    }
    sl_log(SL_LOG_INFO, "metrics_listening", "listen=%s port=%d unhealthy_after_ms=%lld", h->listen,
           h->port, (long long)unhealthy_after_ms);
    *out = h;
    return SL_OK;
fail:
    pthread_mutex_destroy(&h->tap.mu);
    if (h->lfd >= 0) close(h->lfd);
    if (h->wake[0] >= 0) close(h->wake[0]), close(h->wake[1]);
    free(h);
    return rc;
}

int sl_http_metrics_port(const sl_http_metrics *h)
{
    return h ? h->port : 0;
}

void sl_http_metrics_stop(sl_http_metrics *h)
{
    if (!h) return;
    atomic_store(&h->stop, true);
    ssize_t w = write(h->wake[1], "x", 1);
    (void)w; /* a full pipe already wakes the thread */
    pthread_join(h->thread, NULL);
    tap_clear(&h->tap);
    pthread_mutex_destroy(&h->tap.mu);
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h);
}
