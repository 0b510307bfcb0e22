/* Bound sockets on configured addresses, for the network inputs (syslog
 * now; loki_push and the like later). Addresses are always explicit
 * `host:port` or `[v6]:port` with a numeric host: a listener never binds
 * to an address the configuration did not spell out. Every socket is
 * non-blocking and close-on-exec; the caller polls it. */
#ifndef SLUICE_NET_LISTEN_H
#define SLUICE_NET_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"

enum sl_net_kind {
    SL_NET_TCP = 1,
    SL_NET_UDP = 2,
};

typedef struct sl_net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} sl_net_addr;

/* Parses `host:port` / `[v6]:port` (numeric host, port 1-65535). */
int sl_net_parse_addr(const char *text, sl_net_addr *out, sl_err *err);

typedef struct sl_net_listen_opts {
    int backlog;           /* TCP; 0: 128 */
    size_t receive_buffer; /* SO_RCVBUF; 0: the kernel's default */
} sl_net_listen_opts;

/* A bound socket (listening, for TCP) on text. *fd is the socket. */
int sl_net_listen(const char *text, int kind, const sl_net_listen_opts *o, int *fd, sl_err *err);

/* Accepts one connection, non-blocking and close-on-exec. SL_EAGAIN when
 * none is waiting; peer gets the peer's numeric address (without port). */
int sl_net_accept(int listen_fd, int *fd, char *peer, size_t cap, sl_err *err);

/* The numeric host of sa (no port) into buf; "" when it has none. */
void sl_net_format_host(const struct sockaddr *sa, char *buf, size_t cap);

/* The port a socket is bound to (for listeners on port 0); 0 on error. */
int sl_net_local_port(int fd);

#endif
