/* TLS server side for the network inputs, on GnuTLS (the library
 * libmicrohttpd already brings into the process; see decision 0032).
 * Credentials come from a `tls:` map (cert_file, key_file, ca_file,
 * client_auth) read once at start; sessions are non-blocking, driven by the
 * caller's poll loop. */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"

enum sl_tls_client_auth {
    SL_TLS_CLIENT_AUTH_NONE = 0,     /* no client certificate asked for */
    SL_TLS_CLIENT_AUTH_OPTIONAL = 1, /* asked for; verified against ca_file when sent */
    SL_TLS_CLIENT_AUTH_REQUIRED = 2, /* a client certificate signed by ca_file is required */
};

typedef struct sl_tls_server_opts {
    const char *cert_file, *key_file, *ca_file; /* PEM; ca_file may be NULL */
    int client_auth;                            /* enum sl_tls_client_auth */
} sl_tls_server_opts;

/* Checks and reads a `tls:` map into o (strings point into the
 * configuration); errors go to c. Returns SL_OK or SL_EINVAL. */
int sl_tls_server_configure(sl_cfg *c, const sl_cfg_node *map, sl_tls_server_opts *o);

typedef struct sl_tls_server sl_tls_server;
typedef struct sl_tls_conn sl_tls_conn;

/* Loads the credentials (TLS 1.2 and 1.3 only). */
int sl_tls_server_new(const sl_tls_server_opts *o, sl_tls_server **out, sl_err *err);
/* For `sluice check`: loads the files as sl_tls_server_new would and
 * reports what fails as a configuration error at map, so a missing or
 * unreadable certificate is found before the agent starts. */
void sl_tls_server_check(sl_cfg *c, const sl_cfg_node *map, const sl_tls_server_opts *o);
void sl_tls_server_free(sl_tls_server *s);

/* A session on the accepted, non-blocking socket fd (the caller keeps
 * ownership of fd and closes it after sl_tls_conn_free). */
int sl_tls_conn_new(sl_tls_server *s, int fd, sl_tls_conn **out, sl_err *err);
/* Advances the handshake: SL_OK once done, SL_EAGAIN to be called again
 * when the socket is ready (for writing when sl_tls_wants_write), or an
 * error (bad client, failed verification) with a reason. */
int sl_tls_handshake(sl_tls_conn *c, sl_err *err);
bool sl_tls_wants_write(const sl_tls_conn *c);
/* Decrypted bytes into buf: a count > 0, 0 when the peer closed, SL_EAGAIN,
 * or an error. */
ssize_t sl_tls_read(sl_tls_conn *c, void *buf, size_t cap, sl_err *err);
/* Decrypted bytes already buffered in the session, which poll cannot see. */
size_t sl_tls_pending(const sl_tls_conn *c);
void sl_tls_conn_free(sl_tls_conn *c);

#endif
