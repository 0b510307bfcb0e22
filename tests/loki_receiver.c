/* The Loki stand-in's server: HTTP/1.1 on 127.0.0.1, faults on command,
 * every entry recorded. The decoding is loki_receiver_decode.c. */
#include "tests/loki_receiver.h"
#include "tests/loki_receiver_internal.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct fault {
    int action, code, param, repeat;
} fault;

#define LR_BLOCK 4096

typedef struct lr_stream_state {
    char *labels;
    int64_t newest;
} lr_stream_state;

struct sl_lr {
    sl_lr_opts o;
    char *tenant, *auth, *out_path;
    int fd, port;
    pthread_t accept_thr;
    atomic_bool stop;
    atomic_int live; /* connection threads running */

    pthread_mutex_t mu;
    fault *faults;
    size_t nfaults, capfaults, fault_head;
    double rate;
    uint64_t rng;
    uint64_t in_flight; /* pushes waiting out delay_ms */
    sl_lr_stats st;
    sl_lr_entry **blocks; /* recorded entries, LR_BLOCK per block */
    size_t nblocks, capblocks, nentries;
    lr_stream_state *streams; /* interned label strings and newest time */
    size_t nstreams, capstreams;
    size_t *stab;
    size_t stabcap;
    FILE *out;
    FILE *trace; /* SLUICE_LR_TRACE: one line per stream of each push */
    uint64_t npush;
};

static uint64_t lr_rand(sl_lr *lr)
{
    /* splitmix64 */
    uint64_t z = (lr->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int sl_lr_fault(sl_lr *lr, int action, int code, int param, int repeat)
{
    if (repeat <= 0) return 0;
    pthread_mutex_lock(&lr->mu);
    if (lr->nfaults == lr->capfaults) {
        size_t nc = lr->capfaults ? lr->capfaults * 2 : 16;
        fault *f = realloc(lr->faults, nc * sizeof *f);
        if (!f) {
            pthread_mutex_unlock(&lr->mu);
            return -1;
        }
        lr->faults = f;
        lr->capfaults = nc;
    }
    lr->faults[lr->nfaults++] = (fault){action, code, param, repeat};
    pthread_mutex_unlock(&lr->mu);
    return 0;
}

int sl_lr_faults(sl_lr *lr, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy) return -1;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int repeat = 1;
        char *star = strchr(tok, '*');
        if (star) {
            *star = 0;
            repeat = atoi(star + 1);
            if (repeat <= 0) rc = -1;
        }
        char *colon = strchr(tok, ':');
        int param = 0;
        if (colon) {
            *colon = 0;
            param = atoi(colon + 1);
        }
        if (!strcmp(tok, "ok"))
            rc |= sl_lr_fault(lr, SL_LR_OK, 0, 0, repeat);
        else if (!strcmp(tok, "drop"))
            rc |= sl_lr_fault(lr, SL_LR_DROP, 0, 0, repeat);
        else if (!strcmp(tok, "midclose"))
            rc |= sl_lr_fault(lr, SL_LR_MIDCLOSE, 0, 0, repeat);
        else if (!strcmp(tok, "stall"))
            rc |= sl_lr_fault(lr, SL_LR_STALL, 0, param, repeat);
        else if (!strcmp(tok, "garbage"))
            rc |= sl_lr_fault(lr, SL_LR_GARBAGE, 0, 0, repeat);
        else if (atoi(tok) >= 100 && atoi(tok) <= 599)
            rc |= sl_lr_fault(lr, SL_LR_STATUS, atoi(tok), param, repeat);
        else
            rc = -1;
    }
    free(copy);
    return rc ? -1 : 0;
}

void sl_lr_fault_rate(sl_lr *lr, double p, uint64_t seed)
{
    pthread_mutex_lock(&lr->mu);
    lr->rate = p;
    lr->rng = seed;
    pthread_mutex_unlock(&lr->mu);
}

static fault next_fault(sl_lr *lr)
{
    fault f = {SL_LR_OK, 0, 0, 1};
    pthread_mutex_lock(&lr->mu);
    while (lr->fault_head < lr->nfaults && lr->faults[lr->fault_head].repeat <= 0) lr->fault_head++;
    if (lr->fault_head < lr->nfaults) {
        f = lr->faults[lr->fault_head];
        lr->faults[lr->fault_head].repeat--;
    } else if (lr->rate > 0 &&
               (double)(lr_rand(lr) >> 11) * (1.0 / 9007199254740992.0) < lr->rate) {
        static const fault pick[] = {
            {SL_LR_STATUS, 500, 0, 1}, {SL_LR_STATUS, 503, 0, 1}, {SL_LR_STATUS, 429, 1, 1},
            {SL_LR_DROP, 0, 0, 1},     {SL_LR_MIDCLOSE, 0, 0, 1}, {SL_LR_GARBAGE, 0, 0, 1},
        };
        f = pick[lr_rand(lr) % (sizeof pick / sizeof pick[0])];
    }
    pthread_mutex_unlock(&lr->mu);
    return f;
}

void sl_lr_get_stats(sl_lr *lr, sl_lr_stats *st)
{
    pthread_mutex_lock(&lr->mu);
    *st = lr->st;
    pthread_mutex_unlock(&lr->mu);
}

size_t sl_lr_nentries(sl_lr *lr)
{
    pthread_mutex_lock(&lr->mu);
    size_t n = lr->nentries;
    pthread_mutex_unlock(&lr->mu);
    return n;
}

const sl_lr_entry *sl_lr_entry_at(sl_lr *lr, size_t i)
{
    const sl_lr_entry *e = NULL;
    pthread_mutex_lock(&lr->mu);
    if (i < lr->nentries) e = &lr->blocks[i / LR_BLOCK][i % LR_BLOCK];
    pthread_mutex_unlock(&lr->mu);
    return e;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Interned per-stream state; caller holds mu. NULL on allocation failure. */
static lr_stream_state *intern(sl_lr *lr, const char *labels)
{
    uint64_t h = str_hash(labels);
    if (lr->stabcap) {
        for (size_t i = h & (lr->stabcap - 1);; i = (i + 1) & (lr->stabcap - 1)) {
            size_t s = lr->stab[i];
            if (!s) break;
            if (!strcmp(lr->streams[s - 1].labels, labels)) return &lr->streams[s - 1];
        }
    }
    if ((lr->nstreams + 1) * 2 > lr->stabcap) {
        size_t nc = lr->stabcap ? lr->stabcap * 2 : 64;
        size_t *t = calloc(nc, sizeof *t);
        if (!t) return NULL;
        for (size_t s = 0; s < lr->nstreams; s++) {
            size_t i = str_hash(lr->streams[s].labels) & (nc - 1);
            while (t[i]) i = (i + 1) & (nc - 1);
            t[i] = s + 1;
        }
        free(lr->stab);
        lr->stab = t;
        lr->stabcap = nc;
    }
    if (lr->nstreams == lr->capstreams) {
        size_t nc = lr->capstreams ? lr->capstreams * 2 : 64;
        lr_stream_state *v = realloc(lr->streams, nc * sizeof *v);
        if (!v) return NULL;
        lr->streams = v;
        lr->capstreams = nc;
    }
    char *d = strdup(labels);
    if (!d) return NULL;
    lr_stream_state *s = &lr->streams[lr->nstreams];
    s->labels = d;
    s->newest = INT64_MIN;
    size_t i = h & (lr->stabcap - 1);
    while (lr->stab[i]) i = (i + 1) & (lr->stabcap - 1);
    lr->stab[i] = ++lr->nstreams;
    return s;
}

static void write_entry_json(FILE *f, const sl_lr_entry *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "labels", json_string(e->labels));
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)e->ts_ns);
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "line", json_stringn(e->line, e->line_n));
    if (e->nmeta) {
        json_t *m = json_object();
        for (uint32_t i = 0; i < e->nmeta; i++)
            json_object_set_new(m, e->meta[i].name, json_string(e->meta[i].value));
        json_object_set_new(o, "meta", m);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) fprintf(f, "%s\n", s);
    free(s);
    json_decref(o);
}

/* A strict Loki's checks of one entry (line size, time window, metadata
 * names), in its words; msg stays empty when the entry passes. */
static void strict_entry(sl_lr *lr, const sl_lr_stream *s, const sl_lr_entry *e, char *msg,
                         size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    size_t max_line = lr->o.max_line ? lr->o.max_line : STRICT_MAX_LINE;
    if (e->line_n > max_line)
        snprintf(msg, cap,
                 "Max entry size '%zu' bytes exceeded for stream '%s' while adding an entry with "
                 "length '%zu' bytes\n",
                 max_line, s->labels, e->line_n);
    else if (e->ts_ns < now - STRICT_OLD_NS)
        snprintf(msg, cap, "entry for stream '%s' has timestamp too old: %lld\n", s->labels,
                 (long long)e->ts_ns);
    else if (e->ts_ns > now + STRICT_GRACE_NS)
        snprintf(msg, cap, "entry for stream '%s' has timestamp too new: %lld\n", s->labels,
                 (long long)e->ts_ns);
    for (uint32_t m = 0; !msg[0] && m < e->nmeta; m++)
        if (!sl_lr_name_valid(e->meta[m].name))
            snprintf(msg, cap, "entry for stream '%s' has invalid structured metadata name '%s'\n",
                     s->labels, e->meta[m].name);
}

/* Records the accepted entries of a decoded push (taking ownership of them)
 * and writes Loki-style rejections into rej. Caller holds mu. */
static int record_push(sl_lr *lr, sl_lr_push *p, sbuf *rej, const char *tenant)
{
    for (size_t si = 0; si < p->n; si++) {
        sl_lr_stream *s = &p->streams[si];
        lr_stream_state *ss = intern(lr, s->labels);
        if (!ss) return -1;
        uint64_t ignored = 0;
        if (lr->trace && s->n) { /* which request carried what, to find a reordering */
            const sl_lr_entry *f = &s->entries[0], *l = &s->entries[s->n - 1];
            fprintf(lr->trace,
                    "port=%d push=%llu stream=%s n=%zu ts=%lld..%lld newest=%lld first=%.*s "
                    "last=%.*s\n",
                    lr->port, (unsigned long long)lr->npush, s->labels, s->n, (long long)f->ts_ns,
                    (long long)l->ts_ns, (long long)ss->newest,
                    (int)(f->line_n < 40 ? f->line_n : 40), f->line,
                    (int)(l->line_n < 40 ? l->line_n : 40), l->line);
            fflush(lr->trace);
        }
        for (size_t i = 1; i < s->n; i++)
            if (s->entries[i].ts_ns < s->entries[i - 1].ts_ns) {
                lr->st.unsorted_streams++;
                break;
            }
        for (size_t i = 0; i < s->n; i++) {
            sl_lr_entry *e = &s->entries[i];
            char msg[512];
            msg[0] = 0;
            if (lr->o.strict) strict_entry(lr, s, e, msg, sizeof msg);
            if (msg[0]) {
                lr->st.strict_rejected++;
            } else if (lr->o.max_line && e->line_n > lr->o.max_line) {
                snprintf(msg, sizeof msg,
                         "Max entry size '%zu' bytes exceeded for stream '%s' while adding an "
                         "entry with length '%zu' bytes\n",
                         lr->o.max_line, s->labels, e->line_n);
            } else if (lr->o.enforce_order && e->ts_ns < ss->newest) {
                snprintf(msg, sizeof msg,
                         "entry with timestamp %lld ignored, reason: 'entry out of order' for "
                         "stream: %s,\n",
                         (long long)e->ts_ns, s->labels);
                ignored++;
            }
            if (msg[0]) {
                lr->st.rejected_entries++;
                /* Loki lists at most 10 of a stream's ignored entries
                 * (max_returned_stream_errors), then their total. */
                if ((!ignored || ignored <= 10) && sl_lr_sb_str(rej, msg)) return -1;
                sl_lr_entry_free(e);
                continue;
            }
            if (e->ts_ns > ss->newest) ss->newest = e->ts_ns;
            e->labels = ss->labels;
            if (lr->out) write_entry_json(lr->out, e);
            lr->st.entries++;
            if (lr->o.discard) {
                sl_lr_entry_free(e);
                continue;
            }
            e->tenant = strdup(tenant);
            if (!e->tenant) return -1;
            if (lr->nentries == lr->nblocks * LR_BLOCK) {
                if (lr->nblocks == lr->capblocks) {
                    size_t nc = lr->capblocks ? lr->capblocks * 2 : 64;
                    sl_lr_entry **b = realloc(lr->blocks, nc * sizeof *b);
                    if (!b) return -1;
                    lr->blocks = b;
                    lr->capblocks = nc;
                }
                lr->blocks[lr->nblocks] = malloc(LR_BLOCK * sizeof(sl_lr_entry));
                if (!lr->blocks[lr->nblocks]) return -1;
                lr->nblocks++;
            }
            lr->blocks[lr->nentries / LR_BLOCK][lr->nentries % LR_BLOCK] = *e;
            lr->nentries++;
        }
        if (ignored) {
            char t[256];
            snprintf(t, sizeof t, "user 'fake', total ignored: %llu out of %zu for stream: %.60s\n",
                     (unsigned long long)ignored, s->n, s->labels);
            if (sl_lr_sb_str(rej, t)) return -1;
        }
        /* Entries now belong to the store (or were freed). */
        free(s->entries);
        s->entries = NULL;
        s->n = 0;
    }
    if (lr->out) fflush(lr->out);
    return 0;
}

/* ---- connections ---- */

typedef struct conn {
    sl_lr *lr;
    int fd;
    char *buf;
    size_t n, cap;
} conn;

/* Waits for readability in 50 ms steps so a stop is noticed. 1: readable,
 * 0: stop, -1: error. */
static int wait_readable(conn *c)
{
    for (;;) {
        if (atomic_load(&c->lr->stop)) return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

/* Reads more bytes into the connection buffer. >0 bytes, 0 EOF/stop, -1. */
static ssize_t fill(conn *c)
{
    if (c->cap - c->n < 65536) {
        size_t nc = c->cap ? c->cap * 2 : 131072;
        if (nc > LR_MAX_BODY + LR_MAX_HEADER + 131072) return -1;
        char *b = realloc(c->buf, nc);
        if (!b) return -1;
        c->buf = b;
        c->cap = nc;
    }
    int w = wait_readable(c);
    if (w <= 0) return w;
    ssize_t r;
    do r = recv(c->fd, c->buf + c->n, c->cap - c->n - 1, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0) c->n += (size_t)r;
    return r;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Status";
}

static int respond(conn *c, int code, int retry_after, const char *body, bool close_conn)
{
    char head[512];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", code,
                     reason(code), bl);
    if (bl) n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: text/plain\r\n");
    if (retry_after > 0)
        n += snprintf(head + n, sizeof head - (size_t)n, "Retry-After: %d\r\n", retry_after);
    if (code >= 300 && code < 400) /* as an ingress sending http to https */
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Location: https://127.0.0.1:%d/loki/api/v1/push\r\n", c->lr->port);
    if (close_conn) n += snprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\n");
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    pthread_mutex_lock(&c->lr->mu);
    if (code >= 0 && code < 600) c->lr->st.by_code[code]++;
    if (code >= 200 && code < 300) c->lr->st.accepted++;
    pthread_mutex_unlock(&c->lr->mu);
    if (send_all(c->fd, head, (size_t)n)) return -1;
    return bl ? send_all(c->fd, body, bl) : 0;
}

static const char *find_header(const char *hdrs, const char *name, size_t *vn)
{
    size_t nl = strlen(name);
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            *vn = (size_t)(e - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

static void copy_header(char *dst, size_t cap, const char *v, size_t vn)
{
    if (!v) {
        dst[0] = 0;
        return;
    }
    if (vn >= cap) vn = cap - 1;
    memcpy(dst, v, vn);
    dst[vn] = 0;
}

static void sleep_ms_stoppable(sl_lr *lr, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&lr->stop); waited += 20) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Decodes a chunked body in place once it is complete; returns its length,
 * -1 when malformed, -2 when more bytes are needed (nothing moved then). */
static long dechunk(char *p, size_t n, size_t *consumed)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t r = 0, w = 0;
        for (;;) {
            char *eol = memmem(p + r, n - r, "\r\n", 2);
            if (!eol) return -2;
            char *endp;
            unsigned long len = strtoul(p + r, &endp, 16);
            if (endp == p + r || len > LR_MAX_BODY) return -1;
            size_t data = (size_t)(eol - p) + 2;
            if (len == 0) {
                char *fin = memmem(p + data - 2, n - (data - 2), "\r\n\r\n", 4);
                if (!fin) return -2;
                if (pass == 0) break;
                *consumed = (size_t)(fin - p) + 4;
                return (long)w;
            }
            if (n - data < len + 2) return -2;
            if (pass == 1) memmove(p + w, p + data, len);
            w += len;
            r = data + len + 2;
        }
    }
    return -1;
}

const char *const sl_lr_hostile_retry_after[SL_LR_HOSTILE_RETRY_AFTER_N] = {
    "-5", "99999999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "soon", "1.5", "",
};

/* Sends what a hostile answer streams, counting it; -1 once the client
 * hung up or the server stops. A send that cannot go on for 100 ms
 * (the client stopped reading) checks for a stop and tries again. */
static int hostile_send(conn *c, const char *p, size_t n)
{
    while (n) {
        if (atomic_load(&c->lr->stop)) return -1;
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (w <= 0) return -1;
        pthread_mutex_lock(&c->lr->mu);
        c->lr->st.hostile_bytes += (uint64_t)w;
        pthread_mutex_unlock(&c->lr->mu);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The hostile answers whose status says stored (200): the push is
 * recorded first, as a Loki that stored it and then misbehaved. */
static bool hostile_stores(int kind, int param)
{
    return kind == SL_LR_H_HEAD_STALL || kind == SL_LR_H_DRIP || kind == SL_LR_H_ENDLESS_CHUNKED ||
           kind == SL_LR_H_HEADER_FLOOD || kind == SL_LR_H_HTTP09 ||
           (kind == SL_LR_H_HUGE && (param == 0 || (param >= 200 && param < 300)));
}

static void hostile_answer(conn *c, int kind, int param)
{
    struct timeval tv = {0, 100000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char *block = malloc(65536);
    char head[256];
    if (!block) {
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    memset(block, 'x', 65536);
    int n;
    switch (kind) {
    case SL_LR_H_HEAD_STALL:
        n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        if (hostile_send(c, head, (size_t)n) == 0) sleep_ms_stoppable(c->lr, param);
        break;
    case SL_LR_H_DRIP:
        n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        for (int i = 0; i < 101 && hostile_send(c, i ? "x" : head, i ? 1 : (size_t)n) == 0; i++)
            sleep_ms_stoppable(c->lr, 1000);
        break;
    case SL_LR_H_ENDLESS_CHUNKED:
        n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        if (hostile_send(c, head, (size_t)n)) break;
        while (hostile_send(c, "10000\r\n", 7) == 0 && hostile_send(c, block, 65536) == 0 &&
               hostile_send(c, "\r\n", 2) == 0) {
        }
        break;
    case SL_LR_H_HUGE: {
        int code = param ? param : 200;
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %llu\r\n\r\n", code,
                     reason(code), 1ull << 30);
        if (hostile_send(c, head, (size_t)n)) break;
        for (size_t sent = 0; sent < (1u << 30) && hostile_send(c, block, 65536) == 0;)
            sent += 65536;
        break;
    }
    case SL_LR_H_INFORMATIONAL:
        while (hostile_send(c, "HTTP/1.1 102 Processing\r\nX-Pad: 0123456789\r\n\r\n", 46) == 0) {
        }
        break;
    case SL_LR_H_REDIRECT:
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 307 Temporary Redirect\r\nLocation: "
                     "http://127.0.0.1:%d/loki/api/v1/push\r\nContent-Length: 0\r\n\r\n",
                     param);
        hostile_send(c, head, (size_t)n);
        break;
    case SL_LR_H_HTTP09:
        hostile_send(c, "ok, stored\n", 11);
        break;
    case SL_LR_H_BAD_STATUS:
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 20000000000000000000 OK\r\nContent-Length: 0\r\n\r\n");
        hostile_send(c, head, (size_t)n);
        break;
    case SL_LR_H_HEADER_FLOOD:
        if (hostile_send(c, "HTTP/1.1 200 OK\r\n", 17)) break;
        while (hostile_send(c, "X-Flood: ", 9) == 0 && hostile_send(c, block, 1000) == 0 &&
               hostile_send(c, "\r\n", 2) == 0) {
        }
        break;
    case SL_LR_H_RETRY_AFTER:
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\nContent-Length: "
                     "0\r\n\r\n",
                     sl_lr_hostile_retry_after[param % SL_LR_HOSTILE_RETRY_AFTER_N]);
        hostile_send(c, head, (size_t)n);
        break;
    }
    free(block);
    shutdown(c->fd, SHUT_RDWR);
}

static void handle_request(conn *c, const char *method, const char *path, const char *hdrs,
                           char *body, size_t bn, bool close_conn)
{
    sl_lr *lr = c->lr;
    size_t vn;
    const char *v;
    char ctype[64], cenc[32], tenant[64], auth[128];
    v = find_header(hdrs, "Content-Type", &vn);
    copy_header(ctype, sizeof ctype, v, vn);
    v = find_header(hdrs, "Content-Encoding", &vn);
    copy_header(cenc, sizeof cenc, v, vn);
    v = find_header(hdrs, "X-Scope-OrgID", &vn);
    copy_header(tenant, sizeof tenant, v, vn);
    v = find_header(hdrs, "Authorization", &vn);
    copy_header(auth, sizeof auth, v, vn);

    pthread_mutex_lock(&lr->mu);
    lr->st.requests++;
    memcpy(lr->st.content_type, ctype, sizeof ctype);
    memcpy(lr->st.content_encoding, cenc, sizeof cenc);
    memcpy(lr->st.tenant, tenant, sizeof tenant);
    memcpy(lr->st.auth, auth, sizeof auth);
    pthread_mutex_unlock(&lr->mu);

    if (!strcmp(method, "GET") && !strcmp(path, "/ready")) {
        respond(c, 200, 0, "ready\n", close_conn);
        return;
    }
    if (strcmp(path, "/loki/api/v1/push") != 0) {
        respond(c, 404, 0, "404 page not found\n", close_conn);
        return;
    }
    if (strcmp(method, "POST") != 0) {
        respond(c, 405, 0, "method not allowed\n", close_conn);
        return;
    }
    fault f = next_fault(lr);
    if (f.action != SL_LR_OK) {
        pthread_mutex_lock(&lr->mu);
        lr->st.faults++;
        pthread_mutex_unlock(&lr->mu);
    }
    switch (f.action) {
    case SL_LR_STATUS: {
        char msg[128];
        snprintf(msg, sizeof msg, "injected failure %d\n", f.code);
        if (f.code == 429)
            snprintf(msg, sizeof msg,
                     "Ingestion rate limit exceeded for user fake (limit: 1 bytes/sec)\n");
        respond(c, f.code, f.param, msg, close_conn);
        return;
    }
    case SL_LR_DROP:
        shutdown(c->fd, SHUT_RDWR);
        return;
    case SL_LR_STALL:
        sleep_ms_stoppable(lr, f.param);
        shutdown(c->fd, SHUT_RDWR);
        return;
    case SL_LR_MIDCLOSE: {
        static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
        send_all(c->fd, part, sizeof part - 1);
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    case SL_LR_HOSTILE:
        if (hostile_stores(f.code, f.param)) break; /* stored below, then answered so */
        hostile_answer(c, f.code, f.param);
        return;
    case SL_LR_GARBAGE: {
        static const char junk[] = "\x16\x03\x01 this is not HTTP \xff\xfe\r\n\r\n";
        send_all(c->fd, junk, sizeof junk - 1);
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    default:
        break;
    }
    if (lr->o.delay_ms > 0) { /* a distant Loki: each push answered after its latency */
        pthread_mutex_lock(&lr->mu);
        if (++lr->in_flight > lr->st.most_in_flight) lr->st.most_in_flight = lr->in_flight;
        pthread_mutex_unlock(&lr->mu);
        sleep_ms_stoppable(lr, lr->o.delay_ms);
        pthread_mutex_lock(&lr->mu);
        lr->in_flight--;
        pthread_mutex_unlock(&lr->mu);
    }
    if ((lr->tenant && strcmp(lr->tenant, tenant) != 0) ||
        (lr->auth && strcmp(lr->auth, auth) != 0)) {
        respond(c, 401, 0, "no org id\n", close_conn);
        return;
    }
    if (lr->o.max_body && bn > lr->o.max_body) {
        respond(c, 413, 0, "request body too large\n", close_conn);
        return;
    }
    if (lr->o.strict && find_header(hdrs, "X-Scope-OrgID", &vn) &&
        (vn >= sizeof tenant || !sl_lr_tenant_valid(tenant))) {
        pthread_mutex_lock(&lr->mu);
        lr->st.strict_refused++;
        pthread_mutex_unlock(&lr->mu);
        respond(c, 400, 0, "tenant ID contains unsupported character or is too long\n", close_conn);
        return;
    }
    sl_lr_push p;
    lstats ls = {0};
    char err[512];
    if (sl_lr_decode_body(ctype, cenc, body, bn, &p, &ls, err, sizeof err)) {
        pthread_mutex_lock(&lr->mu);
        lr->st.bad_requests++;
        lr->st.invalid_utf8 += ls.invalid_utf8;
        pthread_mutex_unlock(&lr->mu);
        strcat(err, "\n");
        respond(c, 400, 0, err, close_conn);
        return;
    }
    if (lr->o.strict && ls.label_err[0]) {
        /* Harsher than Loki, which refuses only that stream: sluice must
         * never send such a label at all. */
        pthread_mutex_lock(&lr->mu);
        lr->st.strict_refused++;
        lr->st.invalid_utf8 += ls.invalid_utf8;
        pthread_mutex_unlock(&lr->mu);
        sl_lr_push_free(&p);
        char m[300];
        snprintf(m, sizeof m, "error parsing labels: %s\n", ls.label_err);
        respond(c, 400, 0, m, close_conn);
        return;
    }
    sbuf rej = {0};
    pthread_mutex_lock(&lr->mu);
    lr->st.invalid_utf8 += ls.invalid_utf8;
    lr->st.body_bytes += bn;
    lr->npush++;
    int rc = record_push(lr, &p, &rej, tenant);
    pthread_mutex_unlock(&lr->mu);
    sl_lr_push_free(&p);
    if (rc)
        respond(c, 500, 0, "receiver out of memory\n", close_conn);
    else if (rej.n)
        respond(c, 400, 0, rej.p, close_conn);
    else if (f.action == SL_LR_HOSTILE)
        hostile_answer(c, f.code, f.param);
    else
        respond(c, 204, 0, NULL, close_conn);
    free(rej.p);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    sl_lr *lr = c->lr;
    for (;;) {
        /* Headers. */
        char *end;
        while (!(c->n && (end = memmem(c->buf, c->n, "\r\n\r\n", 4)))) {
            if (c->n > LR_MAX_HEADER) goto out;
            if (fill(c) <= 0) goto out;
        }
        size_t hlen = (size_t)(end - c->buf) + 4;
        c->buf[hlen - 2] = 0; /* keeps the last header's CRLF */
        char method[16], path[256];
        if (sscanf(c->buf, "%15s %255s", method, path) != 2) goto out;
        const char *hl = strstr(c->buf, "\r\n");
        hl = hl ? hl + 2 : c->buf + hlen - 2;
        /* Reading the body may move the buffer: keep the headers apart. */
        char *hdrs = strndup(hl, (size_t)(c->buf + hlen - 2 - hl));
        if (!hdrs) goto out;
        size_t vn;
        const char *v = find_header(hdrs, "Connection", &vn);
        bool close_conn = v && vn == 5 && !strncasecmp(v, "close", 5);
        const char *te = find_header(hdrs, "Transfer-Encoding", &vn);
        bool chunked = te && vn >= 7 && !strncasecmp(te, "chunked", 7);
        v = find_header(hdrs, "Content-Length", &vn);
        size_t clen = v ? strtoull(v, NULL, 10) : 0;
        v = find_header(hdrs, "Expect", &vn);
        if (v && vn >= 12 && !strncasecmp(v, "100-continue", 12))
            send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        size_t consumed = 0, bn = 0;
        int ok = clen <= LR_MAX_BODY;
        if (ok && chunked) {
            long r;
            while ((r = dechunk(c->buf + hlen, c->n - hlen, &consumed)) == -2)
                if (fill(c) <= 0) break;
            ok = r >= 0;
            bn = ok ? (size_t)r : 0;
            consumed += hlen;
        } else if (ok) {
            while (c->n - hlen < clen)
                if (fill(c) <= 0) break;
            ok = c->n - hlen >= clen;
            bn = clen;
            consumed = hlen + clen;
        }
        if (!ok) {
            free(hdrs);
            goto out;
        }
        char *hcopy = hdrs;
        handle_request(c, method, path, hcopy, c->buf + hlen, bn, close_conn);
        free(hcopy);
        memmove(c->buf, c->buf + consumed, c->n - consumed);
        c->n -= consumed;
        if (close_conn || atomic_load(&lr->stop)) goto out;
        /* A fault that shut the socket down ends the connection: the next
         * read sees EOF. */
    }
out:
    close(c->fd);
    free(c->buf);
    free(c);
    atomic_fetch_sub(&lr->live, 1);
    return NULL;
}

static void *accept_main(void *arg)
{
    sl_lr *lr = arg;
    while (!atomic_load(&lr->stop)) {
        struct pollfd p = {lr->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(lr->fd, NULL, NULL);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->lr = lr;
        c->fd = fd;
        pthread_mutex_lock(&lr->mu);
        lr->st.connections++;
        pthread_mutex_unlock(&lr->mu);
        atomic_fetch_add(&lr->live, 1);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, c) != 0) {
            atomic_fetch_sub(&lr->live, 1);
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

int sl_lr_start(const sl_lr_opts *o, sl_lr **out)
{
    sl_lr *lr = calloc(1, sizeof *lr);
    if (!lr) return -ENOMEM;
    lr->o = *o;
    lr->tenant = o->tenant ? strdup(o->tenant) : NULL;
    lr->auth = o->auth ? strdup(o->auth) : NULL;
    lr->o.tenant = lr->tenant;
    lr->o.auth = lr->auth;
    pthread_mutex_init(&lr->mu, NULL);
    lr->fd = -1;
    int err = 0;
    /* SLUICE_LR_TRACE=FILE: one line per stream of each push appended to
     * FILE, for a test that finds a stream out of order to show why. */
    if (getenv("SLUICE_LR_TRACE")) lr->trace = fopen(getenv("SLUICE_LR_TRACE"), "a");
    if (o->out_path) {
        lr->out = fopen(o->out_path, "a");
        if (!lr->out) {
            err = -errno;
            goto fail;
        }
    }
    lr->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lr->fd < 0) {
        err = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(lr->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)o->port);
    if (bind(lr->fd, (struct sockaddr *)&a, sizeof a) || listen(lr->fd, 64)) {
        err = -errno;
        goto fail;
    }
    socklen_t al = sizeof a;
    getsockname(lr->fd, (struct sockaddr *)&a, &al);
    lr->port = ntohs(a.sin_port);
    if (pthread_create(&lr->accept_thr, NULL, accept_main, lr) != 0) {
        err = -EAGAIN;
        goto fail;
    }
    *out = lr;
    return 0;
fail:
    if (lr->fd >= 0) close(lr->fd);
    if (lr->out) fclose(lr->out);
    if (lr->trace) fclose(lr->trace);
    pthread_mutex_destroy(&lr->mu);
    free(lr->tenant);
    free(lr->auth);
    free(lr);
    return err ? err : -EIO;
}

int sl_lr_port(const sl_lr *lr)
{
    return lr->port;
}

void sl_lr_stop(sl_lr *lr)
{
    if (!lr) return;
    atomic_store(&lr->stop, true);
    pthread_join(lr->accept_thr, NULL);
    close(lr->fd);
    while (atomic_load(&lr->live) > 0) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < lr->nentries; i++)
        sl_lr_entry_free(&lr->blocks[i / LR_BLOCK][i % LR_BLOCK]);
    for (size_t b = 0; b < lr->nblocks; b++) free(lr->blocks[b]);
    free(lr->blocks);
    for (size_t s = 0; s < lr->nstreams; s++) free(lr->streams[s].labels);
    free(lr->streams);
    free(lr->stab);
    free(lr->faults);
    if (lr->out) fclose(lr->out);
    if (lr->trace) fclose(lr->trace);
    pthread_mutex_destroy(&lr->mu);
    free(lr->tenant);
    free(lr->auth);
    free(lr);
}

#ifdef SL_LR_MAIN
#include <signal.h>

static volatile sig_atomic_t quit;
static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loki-receiver [--port N] [--out FILE] [--faults SPEC] [--fault-rate P]\n"
            "                     [--seed N] [--max-line N] [--max-body N] [--tenant T]\n"
            "                     [--enforce-order] [--strict] [--discard]\n"
            "Prints `listening 127.0.0.1:PORT`; SIGINT/SIGTERM print stats and exit.\n");
}

int main(int argc, char **argv)
{
    sl_lr_opts o = {0};
    const char *faults = NULL;
    double rate = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--enforce-order"))
            o.enforce_order = true;
        else if (!strcmp(a, "--strict"))
            o.strict = true;
        else if (!strcmp(a, "--discard"))
            o.discard = true;
        else if (!v) {
            usage();
            return 2;
        } else if (!strcmp(a, "--port"))
            o.port = atoi(v), i++;
        else if (!strcmp(a, "--out"))
            o.out_path = v, i++;
        else if (!strcmp(a, "--faults"))
            faults = v, i++;
        else if (!strcmp(a, "--fault-rate"))
            rate = atof(v), i++;
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--max-line"))
            o.max_line = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--max-body"))
            o.max_body = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--tenant"))
            o.tenant = v, i++;
        else {
            usage();
            return 2;
        }
    }
    /* The standalone program never keeps entries in memory. */
    o.discard = true;
    sl_lr *lr;
    int rc = sl_lr_start(&o, &lr);
    if (rc) {
        fprintf(stderr, "loki-receiver: cannot listen on 127.0.0.1:%d: %s\n", o.port,
                strerror(-rc));
        return 1;
    }
    if (faults && sl_lr_faults(lr, faults)) {
        fprintf(stderr, "loki-receiver: bad --faults spec\n");
        sl_lr_stop(lr);
        return 2;
    }
    if (rate > 0) sl_lr_fault_rate(lr, rate, seed);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("listening 127.0.0.1:%d\n", sl_lr_port(lr));
    fflush(stdout);
    while (!quit) pause();
    sl_lr_stats st;
    sl_lr_get_stats(lr, &st);
    printf("requests=%llu accepted=%llu faults=%llu bad_requests=%llu entries=%llu "
           "rejected_entries=%llu body_bytes=%llu unsorted_streams=%llu invalid_utf8=%llu\n",
           (unsigned long long)st.requests, (unsigned long long)st.accepted,
           (unsigned long long)st.faults, (unsigned long long)st.bad_requests,
           (unsigned long long)st.entries, (unsigned long long)st.rejected_entries,
           (unsigned long long)st.body_bytes, (unsigned long long)st.unsorted_streams,
           (unsigned long long)st.invalid_utf8);
    sl_lr_stop(lr);
    return 0;
}
#endif
