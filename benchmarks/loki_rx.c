/* A Loki push receiver for benchmarks, made not to be the bottleneck: one
 * thread, epoll, keep-alive HTTP/1.1 on 127.0.0.1 only. Every request body
 * is snappy-decompressed and its protobuf walked (PushRequest -> streams ->
 * entries -> line) to count each entry and its line bytes; nothing is
 * decoded further and nothing is kept (tests/loki_receiver.c is the
 * faithful one: labels, UTF-8, order, JSON out; it spends most of a file
 * -> Loki run's CPU doing so).
 *
 *   loki-rx --port N [--out FILE] [--delay-ms MS] [--status CODE]
 *
 * --out appends one newline per entry received (so the benchmarks' line
 * counters count entries, as they count the JSON lines of loki-receiver);
 * --delay-ms answers each request that long after it arrived (a remote
 * Loki's latency; connections are served meanwhile); --status answers
 * every request with CODE instead of 204 (nothing is counted then).
 * Prints "listening 127.0.0.1:PORT" when ready, and on SIGTERM/SIGINT one
 * line of totals: requests, entries, line bytes, body bytes, CPU seconds
 * (user + system), and the most requests it held at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 << 10)
#define MAX_BODY (256u << 20)

typedef struct conn {
    int fd;
    char *in;
    size_t len, cap;
    size_t head;    /* head bytes of the request being read */
    size_t need;    /* head + body bytes of the request being read; 0: head not complete */
    int64_t due_ns; /* answer at this time; 0: no answer pending */
    struct conn *next_pending;
} conn;

static volatile sig_atomic_t quit;
static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct {
    uint64_t requests, entries, line_bytes, body_bytes, bad, held, most_held;
} tot;
static char *plain;
static size_t plain_cap;
static FILE *out;
static int delay_ms, status = 204;

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Calls each field of a message; for length-delimited fields sub/subn are
 * set. False when the message does not parse. */
typedef bool (*field_fn)(uint32_t field, const uint8_t *sub, size_t subn);
static bool walk(const uint8_t *p, size_t n, field_fn fn)
{
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t key, v;
        if (!varint(&p, end, &key)) return false;
        switch (key & 7) {
        case 0:
            if (!varint(&p, end, &v)) return false;
            break;
        case 1:
            if (end - p < 8) return false;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return false;
            p += 4;
            break;
        case 2:
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) return false;
            if (fn && !fn((uint32_t)(key >> 3), p, (size_t)v)) return false;
            p += v;
            break;
        default:
            return false;
        }
    }
    return true;
}

static uint64_t req_entries, req_bytes;
static bool entry_field(uint32_t f, const uint8_t *sub, size_t n)
{
    (void)sub;
    if (f == 2) req_bytes += n; /* line */
    return true;
}
static bool stream_field(uint32_t f, const uint8_t *sub, size_t n)
{
    if (f != 2) return true; /* labels */
    req_entries++;
    return walk(sub, n, entry_field);
}
static bool push_field(uint32_t f, const uint8_t *sub, size_t n)
{
    return f != 1 || walk(sub, n, stream_field);
}

/* 0 when counted, else the status to answer. */
static int decode(const char *body, size_t n)
{
    size_t ulen;
    if (snappy_uncompressed_length(body, n, &ulen) != SNAPPY_OK || ulen > MAX_BODY) return 400;
    if (ulen > plain_cap) {
        char *p = realloc(plain, ulen);
        if (!p) return 500;
        plain = p;
        plain_cap = ulen;
    }
    if (snappy_uncompress(body, n, plain, &ulen) != SNAPPY_OK) return 400;
    req_entries = req_bytes = 0;
    if (!walk((const uint8_t *)plain, ulen, push_field)) return 400;
    tot.entries += req_entries;
    tot.line_bytes += req_bytes;
    tot.body_bytes += n;
    if (out) {
        static const char nl[4096] = {[0 ... 4095] = '\n'};
        for (uint64_t left = req_entries; left;) {
            size_t k = left < sizeof nl ? (size_t)left : sizeof nl;
            fwrite(nl, 1, k, out);
            left -= k;
        }
        fflush(out);
    }
    return 0;
}

static void answer(conn *c, int code)
{
    char buf[160];
    int n =
        code == 204
            ? snprintf(buf, sizeof buf, "HTTP/1.1 204 No Content\r\n\r\n")
            : snprintf(buf, sizeof buf,
                       "HTTP/1.1 %d Error\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n", code);
    /* A few bytes into an empty socket buffer: written whole. */
    if (write(c->fd, buf, (size_t)n) != n) {
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void close_conn(int ep, conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    if (c->due_ns) tot.held--;
    c->fd = -1;
}

static conn *pending;

/* Handles the complete request at the start of c->in; keeps what follows. */
static void serve(conn *c, size_t head, size_t body)
{
    tot.requests++;
    int code = status;
    if (code == 204) {
        bool pb = memmem(c->in, head, "x-protobuf", 10) != NULL;
        int rc = pb ? decode(c->in + head, body) : 415;
        if (rc) {
            code = rc;
            tot.bad++;
        }
    }
    memmove(c->in, c->in + head + body, c->len - head - body);
    c->len -= head + body;
    c->need = 0;
    if (delay_ms > 0 && code == 204) {
        c->due_ns = now_ns() + (int64_t)delay_ms * 1000000;
        c->next_pending = pending;
        pending = c;
        if (++tot.held > tot.most_held) tot.most_held = tot.held;
        return;
    }
    answer(c, code);
}

/* Serves the complete requests buffered (one at a time: the next is read
 * once the one before is answered); false when the connection must close. */
static bool process(conn *c)
{
    while (!c->due_ns) {
        if (!c->need) {
            char *e = memmem(c->in, c->len, "\r\n\r\n", 4);
            if (!e) return c->len <= MAX_HEAD;
            size_t body = 0;
            c->head = (size_t)(e - c->in) + 4;
            for (char *l = c->in; l < e; l = strstr(l, "\r\n") + 2)
                if (!strncasecmp(l, "content-length:", 15)) body = strtoull(l + 15, NULL, 10);
            if (body > MAX_BODY) return false;
            c->need = c->head + body;
        }
        if (c->len < c->need) return true;
        serve(c, c->head, c->need - c->head);
    }
    return true;
}

/* Reads what the connection has; false when it must close. */
static bool on_readable(conn *c)
{
    for (;;) {
        if (c->len == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 1 << 16;
            if (nc > 2 * (MAX_BODY + MAX_HEAD)) return false;
            char *p = realloc(c->in, nc);
            if (!p) return false;
            c->in = p;
            c->cap = nc;
        }
        ssize_t r = read(c->fd, c->in + c->len, c->cap - c->len);
        if (r == 0) return false;
        if (r < 0) return errno == EAGAIN || errno == EINTR;
        c->len += (size_t)r;
        if (!process(c)) return false;
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
            delay_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--status") && i + 1 < argc)
            status = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: loki-rx --port N [--out FILE] [--delay-ms MS] [--status CODE]\n");
            return 2;
        }
    }
    if (out_path && !(out = fopen(out_path, "ae"))) {
        perror(out_path);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 128) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        perror("listen");
        return 1;
    }
    printf("listening 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!quit) {
        int timeout = -1;
        int64_t now = now_ns();
        for (conn **pp = &pending; *pp;) {
            conn *c = *pp;
            if (c->fd < 0) { /* closed while held */
                *pp = c->next_pending;
                free(c);
                continue;
            }
            if (c->due_ns <= now) {
                *pp = c->next_pending;
                c->due_ns = 0;
                tot.held--;
                answer(c, 204);
                if (!process(c)) { /* requests that came meanwhile */
                    close_conn(ep, c);
                    free(c);
                }
                continue;
            }
            int ms = (int)((c->due_ns - now + 999999) / 1000000);
            if (timeout < 0 || ms < timeout) timeout = ms;
            pp = &c->next_pending;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, timeout);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            if (c->fd >= 0 && !on_readable(c)) {
                bool held = c->due_ns != 0;
                close_conn(ep, c);
                if (!held) free(c); /* a held one is freed from the pending list */
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    fprintf(stderr,
            "loki-rx: requests %llu entries %llu line_bytes %llu body_bytes %llu bad %llu "
            "cpu_s %.2f most_held %llu\n",
            (unsigned long long)tot.requests, (unsigned long long)tot.entries,
            (unsigned long long)tot.line_bytes, (unsigned long long)tot.body_bytes,
            (unsigned long long)tot.bad, cpu, (unsigned long long)tot.most_held);
    if (out) fclose(out);
    return 0;
}
