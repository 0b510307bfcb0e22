#include "net/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

struct sl_http_server {
    struct MHD_Daemon *d;
    int port;
    char *tls_cert, *tls_key; /* PEM text; MHD keeps pointers to them */
    char what[160];           /* for log lines */
    sl_ratelimit rl_limit;    /* out-of-descriptor warnings (the daemon's accepting thread) */
};

/* How long the daemon's accepting thread rests when accept failed for want
 * of descriptors (decision 0072). */
#define ACCEPT_REST_NS 100000000L
/* How libmicrohttpd 0.9.75 starts the message it logs then. */
#define MHD_AT_LIMIT "Hit process or system resource limit"

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
 * requests): debug level, so a hostile client cannot flood the log.
 *
 * One of them is also where the accepting thread rests. When accept fails
 * for want of descriptors while the daemon holds no connection,
 * libmicrohttpd 0.9.75 logs "Hit process or system resource limit at FIRST
 * connection ... Will try busy waiting" and tries again at once: a
 * descriptor flood on any listener would spin that thread at a full core
 * until descriptors free. It logs before each retry, on the thread that
 * retries, so resting here turns the busy loop into one try per 100 ms
 * (the syslog input's rule); with connections held it stops accepting
 * until one ends, and the rest costs one pause. */
static void mhd_log(void *arg, const char *fmt, va_list ap)
{
    sl_http_server *s = arg;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    if (s && !strncmp(msg, MHD_AT_LIMIT, sizeof MHD_AT_LIMIT - 1)) {
        uint64_t suppressed;
        if (sl_ratelimit_ok(&s->rl_limit, &suppressed))
            sl_log(SL_LOG_WARN, "http_accept_error",
                   "what=%s error=\"out of descriptors or memory\" suppressed=%llu", s->what,
                   (unsigned long long)suppressed);
        struct timespec ts = {0, ACCEPT_REST_NS};
        nanosleep(&ts, NULL);
        return;
    }
    sl_log(SL_LOG_DEBUG, "http_server", "msg=\"%s\"", msg);
}

int sl_http_server_start(const sl_http_server_opts *o, sl_http_server **out, sl_err *err)
{
    *out = NULL;
    if (!o->listen || !*o->listen) return sl_errf(err, SL_EINVAL, "%s is empty", o->what);
    sl_http_server *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "%s: out of memory", o->what);
    snprintf(s->what, sizeof s->what, "%s", o->what);
    s->rl_limit.interval_ns = 10 * 1000000000LL;
    int fd = -1, rc;
    bool tls = o->tls_cert_file && o->tls_key_file;
    if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        free(s);
        return sl_errf(err, SL_EINVAL, "%s: this libmicrohttpd has no TLS", o->what);
    }
    if (tls && ((rc = read_pem(o->what, o->tls_cert_file, &s->tls_cert, err)) != SL_OK ||
                (rc = read_pem(o->what, o->tls_key_file, &s->tls_key, err)) != SL_OK)) {
        free(s->tls_cert);
        free(s);
        return rc;
    }
    rc = open_listener(o->what, o->listen, &fd, &s->port, err);
    if (rc != SL_OK) {
        free(s->tls_cert);
        free(s->tls_key);
        free(s);
        return rc;
    }
    unsigned flags = MHD_USE_ERROR_LOG | MHD_USE_INTERNAL_POLLING_THREAD;
    if (tls) flags |= MHD_USE_TLS;
    flags |=
        o->thread_per_connection ? (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL) : MHD_USE_EPOLL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, o->handler, o->handler_arg, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, o->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        o->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->request_memory,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_NOTIFY_COMPLETED, o->completed,
        o->completed_arg, tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->tls_key, MHD_OPTION_HTTPS_PRIORITIES,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        free(s->tls_cert);
        free(s->tls_key);
        free(s);
        return sl_errf(err, SL_EIO, "%s '%s': the HTTP server did not start", o->what, o->listen);
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
    /* Closes the listener and every connection, joins the threads. */
    MHD_stop_daemon(s->d);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
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
