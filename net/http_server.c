#include "net/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

struct sl_http_server {
    struct MHD_Daemon *d;
    int port;
    char *tls_cert, *tls_key; /* PEM text; MHD keeps pointers to them */
    char what[160];           /* for log lines */
    int lfd;                  /* the listening socket, accepted from by `acceptor` */
    int wake[2];              /* a byte on wake[1] stops the acceptor */
    pthread_t acceptor;
    bool acceptor_started;
};

/* How long accepting rests after accept failed for want of descriptors or
 * memory: the backlog waits, the thread does not spin (decision 0072). */
#define ACCEPT_REST_MS  100
#define ACCEPT_PER_TURN 64

/* A whole PEM file, NUL-terminated, at most 1 MiB. */
static int read_pem(const char *what, const char *path, char **out, sl_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) return sl_errf(err, SL_EIO, "%s: %s: %s", what, path, strerror(errno));
    size_t cap = 1u << 20;
    char *p = malloc(cap + 1);
    if (!p) {
        fclose(f);
        return sl_errf(err, SL_ENOMEM, "%s: out of memory", what);
    }
    size_t n = fread(p, 1, cap + 1, f);
    bool bad = ferror(f) || n > cap || n == 0;
    fclose(f);
    if (bad) {
        free(p);
        return sl_errf(err, SL_EINVAL, "%s: %s: empty, unreadable or over 1 MiB", what, path);
    }
    p[n] = '\0';
    *out = p;
    return SL_OK;
}

int sl_http_split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    if (!listen) return SL_EINVAL;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':') return SL_EINVAL;
        if ((size_t)(rb - listen - 1) >= hcap) return SL_EINVAL;
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= hcap) return SL_EINVAL;
        if (memchr(listen, ':', (size_t)(colon - listen))) return SL_EINVAL; /* v6 needs [] */
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
    }
    const char *p = colon + 1;
    size_t n = strlen(p);
    if (n == 0 || n >= pcap || n > 5) return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return SL_EINVAL;
    if (atoi(p) > 65535) return SL_EINVAL;
    memcpy(port, p, n + 1);
    return SL_OK;
}

bool sl_http_listen_is_loopback(const char *listen)
{
    char host[256], port[8];
    if (sl_http_split_listen(listen, host, sizeof host, port, sizeof port) != SL_OK) return false;
    if (!strcmp(host, "localhost") || !strcmp(host, "::1")) return true;
    /* 127.0.0.0/8, written as a dotted quad. */
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

static int open_listener(const char *what, const char *addr, int *fd_out, int *port_out,
                         sl_err *err)
{
    char host[256], port[8];
    if (sl_http_split_listen(addr, host, sizeof host, port, sizeof port) != SL_OK)
        return sl_errf(err, SL_EINVAL, "%s '%s': expected host:port, [v6addr]:port or :port", what,
                       addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0) return sl_errf(err, SL_EINVAL, "%s '%s': %s", what, addr, gai_strerror(gai));
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
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return sl_errf(err, SL_EIO, "%s '%s': %s", what, addr, strerror(last_errno));
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

/* libmicrohttpd's own messages (connection limit reached, malformed
 * requests): debug level, so a hostile client cannot flood the log. */
static void mhd_log(void *arg, const char *fmt, va_list ap)
{
    (void)arg;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    sl_log(SL_LOG_DEBUG, "http_server", "msg=\"%s\"", msg);
}

/* Accepts connections and hands them to the daemon. libmicrohttpd's own
 * accept loop busy-waits when accept fails with EMFILE while the daemon
 * has no connection ("Hit process or system resource limit at FIRST
 * connection", 0.9.75): a descriptor flood anywhere in the process would
 * spin the metrics thread at 100% until descriptors free. Here accepting
 * rests ACCEPT_REST_MS instead; the daemon still applies its connection
 * and per-address limits to what it is given (MHD_add_connection). */
static void *accept_run(void *arg)
{
    sl_http_server *s = arg;
    sl_ratelimit rl = {.interval_ns = 10 * 1000000000LL};
    bool resting = false;
    for (;;) {
        struct pollfd p[2] = {{s->wake[0], POLLIN, 0}, {s->lfd, resting ? 0 : POLLIN, 0}};
        int r = poll(p, 2, resting ? ACCEPT_REST_MS : -1);
        if (p[0].revents) break;
        if (r <= 0) {
            resting = false;
            continue;
        }
        for (int k = 0; k < ACCEPT_PER_TURN; k++) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                    errno == ECONNABORTED || errno == EPROTO)
                    break;
                uint64_t suppressed;
                if (sl_ratelimit_ok(&rl, &suppressed))
                    sl_log(SL_LOG_WARN, "http_accept_error",
                           "what=\"%s\" error=\"%s\" suppressed=%llu", s->what, strerror(errno),
                           (unsigned long long)suppressed);
                resting = true;
                break;
            }
            /* The daemon owns fd now, and closes it when over its limits. */
            MHD_add_connection(s->d, fd, (struct sockaddr *)&ss, sl);
        }
    }
    return NULL;
}

static void server_free(sl_http_server *s)
{
    if (s->acceptor_started) {
        ssize_t w = write(s->wake[1], "x", 1);
        (void)w;
        pthread_join(s->acceptor, NULL);
    }
    /* Closes every connection, joins the daemon's threads. */
    if (s->d) MHD_stop_daemon(s->d);
    if (s->lfd >= 0) close(s->lfd);
    if (s->wake[0] >= 0) close(s->wake[0]);
    if (s->wake[1] >= 0) close(s->wake[1]);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}

int sl_http_server_start(const sl_http_server_opts *o, sl_http_server **out, sl_err *err)
{
    *out = NULL;
    if (!o->listen || !*o->listen) return sl_errf(err, SL_EINVAL, "%s is empty", o->what);
    sl_http_server *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "%s: out of memory", o->what);
    snprintf(s->what, sizeof s->what, "%s", o->what);
    s->lfd = s->wake[0] = s->wake[1] = -1;
    int rc;
    bool tls = o->tls_cert_file && o->tls_key_file;
    if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        server_free(s);
        return sl_errf(err, SL_EINVAL, "%s: this libmicrohttpd has no TLS", o->what);
    }
    if (tls && ((rc = read_pem(o->what, o->tls_cert_file, &s->tls_cert, err)) != SL_OK ||
                (rc = read_pem(o->what, o->tls_key_file, &s->tls_key, err)) != SL_OK)) {
        server_free(s);
        return rc;
    }
    rc = open_listener(o->what, o->listen, &s->lfd, &s->port, err);
    if (rc != SL_OK) {
        server_free(s);
        return rc;
    }
    /* The epoll daemon gets connections from accept_run, never from a
     * socket of its own. A thread-per-connection daemon keeps its own
     * accept loop: libmicrohttpd 0.9.75 deadlocked at stop after
     * MHD_add_connection had refused connections over its limits in that
     * mode (http_hostile's tap flood), so there the EMFILE spin remains
     * (decision 0072). */
    bool own_accept = !o->thread_per_connection;
    if (own_accept && pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        server_free(s);
        return sl_errf(err, SL_EIO, "%s: pipe: %s", o->what, strerror(errno));
    }
    unsigned flags = MHD_USE_ERROR_LOG | MHD_USE_INTERNAL_POLLING_THREAD;
    if (own_accept) flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (tls) flags |= MHD_USE_TLS;
    flags |=
        o->thread_per_connection ? (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL) : MHD_USE_EPOLL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The listening socket is passed only to a daemon that accepts itself
     * (in its place the connection limit is given twice, harmlessly). */
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, o->handler, o->handler_arg, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        own_accept ? MHD_OPTION_CONNECTION_LIMIT : MHD_OPTION_LISTEN_SOCKET,
        own_accept ? (int)o->conn_limit : s->lfd, MHD_OPTION_CONNECTION_LIMIT, o->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        o->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->request_memory,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_NOTIFY_COMPLETED, o->completed,
        o->completed_arg, tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->tls_key, MHD_OPTION_HTTPS_PRIORITIES,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_END);
    if (!s->d) {
        server_free(s);
        return sl_errf(err, SL_EIO, "%s '%s': the HTTP server did not start", o->what, o->listen);
    }
    if (!own_accept) {
        s->lfd = -1; /* the daemon's now: MHD_stop_daemon closes it */
    } else if (pthread_create(&s->acceptor, NULL, accept_run, s) != 0) {
        server_free(s);
        return sl_errf(err, SL_EIO, "%s '%s': no accept thread", o->what, o->listen);
    } else {
        s->acceptor_started = true;
    }
    *out = s;
    return SL_OK;
}

int sl_http_server_port(const sl_http_server *s)
{
    return s ? s->port : 0;
}

void sl_http_server_stop(sl_http_server *s)
{
    if (!s) return;
    server_free(s);
}

enum MHD_Result sl_http_respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                                const char *body, size_t len)
{
    return sl_http_respond_hdr(c, status, ctype, body, len, NULL, NULL);
}

enum MHD_Result sl_http_respond_hdr(struct MHD_Connection *c, unsigned status, const char *ctype,
                                    const char *body, size_t len, const char *hname,
                                    const char *hval)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO; /* out of memory: MHD closes the connection */
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Connection", "close");
    if (status == 405 && !hname) MHD_add_response_header(r, "Allow", "GET, HEAD");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"sluice\"");
    if (hname) MHD_add_response_header(r, hname, hval);
    enum MHD_Result res = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return res;
}

enum MHD_Result sl_http_respond_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return sl_http_respond(c, status, "text/plain; charset=utf-8", msg, strlen(msg));
}
