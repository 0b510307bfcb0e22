/* The HTTP listeners (the agent's metrics/probes and tap in cli/, the
 * loki_push input in collector/), served by libmicrohttpd
 * (docs/decisions/0014-http-endpoint-library.md; moved down from cli/ by
 * decision 0034 so inputs share it). This module owns what they share: parsing a listen address,
 * opening the socket (so port 0 and bind errors are ours to report), the daemon's bounds
 * (connections, per-IP connections, idle timeout, request memory; out of descriptors, accepting
 * rests 100 ms where libmicrohttpd would spin: decision 0072) and small response helpers.
 * Routing stays with each listener. */
#ifndef SLUICE_NET_HTTP_SERVER_H
#define SLUICE_NET_HTTP_SERVER_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct sl_http_server sl_http_server;

typedef struct sl_http_server_opts {
    const char *what;           /* config key for messages, e.g. "metrics.listen" */
    const char *listen;         /* "host:port", "[v6addr]:port" or ":port" (every address) */
    unsigned conn_limit;        /* connections at a time; further ones are closed at once */
    unsigned per_ip_limit;      /* connections at a time from one address */
    unsigned idle_timeout_s;    /* a connection idle this long is closed */
    size_t request_memory;      /* request head bound per connection (431 beyond) */
    bool thread_per_connection; /* streaming clients (the tap); else one epoll thread */
    MHD_AccessHandlerCallback handler;
    void *handler_arg;
    /* Called when a request ends (its response sent or the client gone). */
    MHD_RequestCompletedCallback completed;
    void *completed_arg;
    /* PEM files: when both are set the server speaks only HTTPS (libmicrohttpd
     * on GnuTLS, TLS 1.2 and 1.3), read once at start. */
    const char *tls_cert_file, *tls_key_file;
} sl_http_server_opts;

int sl_http_server_start(const sl_http_server_opts *o, sl_http_server **out, sl_err *err);
/* The bound port (useful with port 0). */
int sl_http_server_port(const sl_http_server *s);
/* Closes every connection and joins the server's threads; never waits on
 * a client. NULL is fine. */
void sl_http_server_stop(sl_http_server *s);

/* Splits a listen address; host is "" for every address. Returns SL_OK or
 * SL_EINVAL. */
int sl_http_split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap);
/* True when listen names only loopback addresses (127.0.0.0/8, ::1,
 * localhost); false for every-address and any other host. */
bool sl_http_listen_is_loopback(const char *listen);

/* Queues a response that closes the connection after it (one request per
 * connection keeps the server's bookkeeping trivial) and is never cached.
 * body is copied. Returns the MHD result for the access handler. */
enum MHD_Result sl_http_respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                                const char *body, size_t len);
/* sl_http_respond with one more header (hname: hval), e.g. Retry-After. */
enum MHD_Result sl_http_respond_hdr(struct MHD_Connection *c, unsigned status, const char *ctype,
                                    const char *body, size_t len, const char *hname,
                                    const char *hval);
enum MHD_Result sl_http_respond_text(struct MHD_Connection *c, unsigned status, const char *msg);

#endif
