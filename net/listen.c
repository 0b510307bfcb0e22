#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

int sl_net_parse_addr(const char *text, sl_net_addr *out, sl_err *err)
{
    char host[256];
    const char *port;
    if (!text || !*text) return sl_errf(err, SL_EINVAL, "empty listen address");
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return sl_errf(err, SL_EINVAL, "listen address '%s': expected [v6]:port", text);
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || colon == text || (size_t)(colon - text) >= sizeof host ||
            memchr(text, ':', (size_t)(colon - text)))
            return sl_errf(err, SL_EINVAL,
                           "listen address '%s': expected host:port with a numeric host "
                           "(0.0.0.0:PORT for every address)",
                           text);
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = 0;
        port = colon + 1;
    }
    char *e;
    long p = strtol(port, &e, 10);
    if (!*port || *e || p < 1 || p > 65535)
        return sl_errf(err, SL_EINVAL, "listen address '%s': port must be 1-65535", text);
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        out->len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        out->len = sizeof *v6;
    } else {
        return sl_errf(err, SL_EINVAL,
                       "listen address '%s': '%s' is not a numeric IPv4 or IPv6 address", text,
                       host);
    }
    return SL_OK;
}

int sl_net_listen(const char *text, int kind, const sl_net_listen_opts *o, int *fd, sl_err *err)
{
    sl_net_addr a;
    int rc = sl_net_parse_addr(text, &a, err);
    if (rc != SL_OK) return rc;
    int type = (kind == SL_NET_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    int s = socket(a.ss.ss_family, type, 0);
    if (s < 0) return sl_errf(err, SL_EIO, "listen %s: socket: %s", text, strerror(errno));
    int one = 1;
    if (kind == SL_NET_TCP) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.ss.ss_family == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (o && o->receive_buffer) {
        int v = o->receive_buffer > (1u << 30) ? 1 << 30 : (int)o->receive_buffer;
        /* As root the configured size wins over net.core.rmem_max. */
        if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
        /* Without CAP_NET_ADMIN (the shipped unit) the kernel caps it at
         * net.core.rmem_max, silently: say so, since a short buffer drops
         * datagrams under bursts. Linux reports twice what it keeps. */
        int got = 0;
        socklen_t gl = sizeof got;
        if (getsockopt(s, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < v)
            sl_log(SL_LOG_WARN, "receive_buffer_capped",
                   "listen=%s asked=%d got=%d (raise net.core.rmem_max, or grant CAP_NET_ADMIN)",
                   text, v, got / 2);
    }
    if (bind(s, (struct sockaddr *)&a.ss, a.len) != 0) {
        int e = errno;
        close(s);
        return sl_errf(err, SL_EIO, "listen %s: bind: %s", text, strerror(e));
    }
    if (kind == SL_NET_TCP && listen(s, o && o->backlog > 0 ? o->backlog : 128) != 0) {
        int e = errno;
        close(s);
        return sl_errf(err, SL_EIO, "listen %s: listen: %s", text, strerror(e));
    }
    *fd = s;
    return SL_OK;
}

void sl_net_format_host(const struct sockaddr *sa, char *buf, size_t cap)
{
    if (cap == 0) return;
    buf[0] = 0;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        /* An IPv4 peer on a dual-stack socket reads as plain IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
            inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], buf, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, &v6->sin6_addr, buf, (socklen_t)cap);
    }
}

int sl_net_accept(int listen_fd, int *fd, char *peer, size_t cap, sl_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int s = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
            return SL_EAGAIN;
        return sl_errf(err, SL_EIO, "accept: %s", strerror(errno));
    }
    sl_net_format_host((struct sockaddr *)&ss, peer, cap);
    *fd = s;
    return SL_OK;
}

int sl_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}
