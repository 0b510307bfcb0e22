#include "cli/tail_cmd.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"

/* Request line plus token stay below the tap's 16 KiB request bound. */
#define MAX_QUERY 12288
/* A response head longer than this is not from a sluice agent. */
#define MAX_HEAD 8192

/* Percent-encodes s for a query value. */
static void put_encoded(sl_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            sl_buf_putc(b, (char)c);
        else
            sl_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
}

/* The agent listens on every address when host is empty or a wildcard;
 * tail then talks to it over loopback. */
static int split_target(const char *listen, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    size_t hl;
    const char *h;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':') return SL_EINVAL;
        h = listen + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) return SL_EINVAL;
        h = listen;
        hl = (size_t)(colon - listen);
    }
    if (hl >= hcap || strlen(colon + 1) >= pcap || !colon[1]) return SL_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    if (!host[0] || !strcmp(host, "0.0.0.0")) snprintf(host, hcap, "127.0.0.1");
    if (!strcmp(host, "::")) snprintf(host, hcap, "::1");
    return 0;
}

static int connect_to(const char *listen, sl_err *err)
{
    char host[256], port[16];
    if (split_target(listen, host, sizeof host, port, sizeof port) != 0)
        return sl_errf(err, SL_EINVAL, "tap.listen '%s': expected host:port", listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) return sl_errf(err, SL_EINVAL, "%s: %s", listen, gai_strerror(gai));
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return sl_errf(err, SL_EIO,
                       "cannot reach the agent's tap at %s:%s: %s (is it running, with "
                       "the tap: section?)",
                       host, port, strerror(e));
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return SL_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes complete lines; skip notices go to stderr. Returns bytes used. */
static size_t emit_lines(const char *p, size_t n, FILE *out, bool *werr)
{
    size_t used = 0;
    for (;;) {
        const char *nl = memchr(p + used, '\n', n - used);
        if (!nl) return used;
        size_t len = (size_t)(nl - (p + used)) + 1;
        const char *line = p + used;
        if (len == 1) {
            /* the agent's heartbeat on a quiet stream */
        } else if (len > 16 && memcmp(line, "{\"tail_skipped\":", 16) == 0) {
            fprintf(stderr, "sluice tail: the agent skipped %.*s record(s) (tail too slow)\n",
                    (int)strspn(line + 16, "0123456789"), line + 16);
        } else if (fwrite(line, 1, len, out) != len)
            *werr = true;
        used += len;
    }
}

int sl_tail_run(const sl_tail_opts *o, FILE *out, sl_err *err)
{
    sl_buf req;
    sl_buf_init(&req, MAX_QUERY);
    sl_buf_printf(&req, "GET /tail?");
    if (o->match) {
        sl_buf_printf(&req, "match=");
        put_encoded(&req, o->match);
    }
    for (size_t i = 0; i < o->nlabels && i < SL_TAIL_MAX_LABELS; i++) {
        sl_buf_printf(&req, "%slabel=", (o->match || i) ? "&" : "");
        put_encoded(&req, o->labels[i]);
    }
    sl_buf_printf(&req,
                  " HTTP/1.1\r\nHost: sluice\r\nAccept: application/x-ndjson\r\n"
                  "Authorization: Bearer %s\r\n\r\n",
                  o->token ? o->token : "");
    if (req.failed) {
        sl_buf_free(&req);
        return sl_errf(err, SL_EINVAL, "filters too long");
    }
    int fd = connect_to(o->listen, err);
    if (fd < 0) {
        sl_buf_free(&req);
        return fd;
    }
    int rc = send_all(fd, req.p, req.len);
    sl_buf_free(&req);
    if (rc != 0) {
        close(fd);
        return sl_errf(err, SL_EIO, "sending the request: %s", strerror(errno));
    }
    /* Head first; the body of an error answer is the reason. */
    char buf[65536];
    size_t have = 0, head = 0;
    int status = 0;
    bool werr = false;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        if (!head) {
            char *e = memmem(buf, have, "\r\n\r\n", 4);
            if (!e) {
                if (have >= MAX_HEAD) break;
                continue;
            }
            head = (size_t)(e - buf) + 4;
            if (have < 12 || memcmp(buf, "HTTP/1.", 7) != 0) break;
            status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
            if (status != 200) continue; /* read the reason to the end */
            fprintf(stderr, "sluice tail: following %s%s%s\n", o->listen, o->match ? " match=" : "",
                    o->match ? o->match : "");
            memmove(buf, buf + head, have - head);
            have -= head;
        }
        if (status == 200) {
            size_t used = emit_lines(buf, have, out, &werr);
            if (used == 0 && have == sizeof buf) { /* no newline in 64 KiB: pass it on */
                werr |= fwrite(buf, 1, have, out) != have;
                used = have;
            }
            memmove(buf, buf + used, have - used);
            have -= used;
            if (fflush(out) != 0 || werr) {
                close(fd);
                return sl_errf(err, SL_EIO, "writing output: %s", strerror(errno));
            }
        }
    }
    close(fd);
    if (!head || status == 0)
        return sl_errf(err, SL_EIO, "%s did not answer as an agent", o->listen);
    if (status != 200) {
        size_t blen = have > head ? have - head : 0;
        while (blen && (buf[head + blen - 1] == '\n' || buf[head + blen - 1] == '\r')) blen--;
        return sl_errf(err, status == 400 ? SL_EINVAL : SL_EIO, "agent answered %d: %.*s", status,
                       (int)(blen > 300 ? 300 : blen), buf + head);
    }
    return sl_errf(err, SL_ECLOSED, "the agent closed the stream");
}
