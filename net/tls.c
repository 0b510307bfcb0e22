#include "net/tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>

/* TLS 1.2 and 1.3 with GnuTLS's default ciphers; older versions are off. */
#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct sl_tls_server {
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    int client_auth;
};

struct sl_tls_conn {
    gnutls_session_t session;
};

_Static_assert(SL_TLS_CLIENT_AUTH_NONE == 0 && SL_TLS_CLIENT_AUTH_OPTIONAL == 1 &&
                   SL_TLS_CLIENT_AUTH_REQUIRED == 2,
               "client_auth: none|optional|required");

static const sl_cfg_key tls_keys[] = {
    {.name = "cert_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sl_tls_server_opts, cert_file),
     .required = true,
     .doc = "the server's certificate chain (PEM)"},
    {.name = "key_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sl_tls_server_opts, key_file),
     .required = true,
     .doc = "the server's private key (PEM)"},
    {.name = "ca_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sl_tls_server_opts, ca_file),
     .doc = "CAs that client certificates must chain to (PEM)"},
    {.name = "client_auth",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(sl_tls_server_opts, client_auth),
     .choices = "none|optional|required",
     .def = "none",
     .doc = "whether clients must present a certificate signed by ca_file"},
};

int sl_tls_server_configure(sl_cfg *c, const sl_cfg_node *map, sl_tls_server_opts *o)
{
    size_t before = sl_cfg_nerrors(c);
    *o = (sl_tls_server_opts){0};
    sl_cfg_read(c, map, tls_keys, SL_CFG_NKEYS(tls_keys), o);
    if (o->client_auth != SL_TLS_CLIENT_AUTH_NONE && !o->ca_file)
        sl_cfg_error(c, sl_cfg_get(map, "client_auth"),
                     "client_auth needs ca_file (the CA that signs client certificates)");
    return sl_cfg_nerrors(c) > before ? SL_EINVAL : SL_OK;
}

int sl_tls_server_new(const sl_tls_server_opts *o, sl_tls_server **out, sl_err *err)
{
    sl_tls_server *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "tls: out of memory");
    s->client_auth = o->client_auth;
    int r = gnutls_certificate_allocate_credentials(&s->creds);
    if (r < 0) {
        free(s);
        return sl_errf(err, SL_ENOMEM, "tls: %s", gnutls_strerror(r));
    }
    r = gnutls_certificate_set_x509_key_file(s->creds, o->cert_file, o->key_file,
                                             GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        sl_tls_server_free(s);
        return sl_errf(err, SL_EINVAL, "tls: cert_file %s / key_file %s: %s", o->cert_file,
                       o->key_file, gnutls_strerror(r));
    }
    if (o->ca_file) {
        r = gnutls_certificate_set_x509_trust_file(s->creds, o->ca_file, GNUTLS_X509_FMT_PEM);
        if (r <= 0) {
            sl_tls_server_free(s);
            return sl_errf(err, SL_EINVAL, "tls: ca_file %s: %s", o->ca_file,
                           r == 0 ? "no certificate in it" : gnutls_strerror(r));
        }
    }
    r = gnutls_priority_init(&s->prio, PRIORITIES, NULL);
    if (r < 0) {
        sl_tls_server_free(s);
        return sl_errf(err, SL_EINVAL, "tls: priorities: %s", gnutls_strerror(r));
    }
    *out = s;
    return SL_OK;
}

void sl_tls_server_check(sl_cfg *c, const sl_cfg_node *map, const sl_tls_server_opts *o)
{
    if (!o->cert_file || !o->key_file) return; /* already an error of sl_tls_server_configure */
    sl_tls_server *s = NULL;
    sl_err err = {0};
    if (sl_tls_server_new(o, &s, &err) != SL_OK)
        sl_cfg_error(c, map, "%s", err.msg);
    else
        sl_tls_server_free(s);
}

void sl_tls_server_free(sl_tls_server *s)
{
    if (!s) return;
    if (s->prio) gnutls_priority_deinit(s->prio);
    if (s->creds) gnutls_certificate_free_credentials(s->creds);
    free(s);
}

int sl_tls_conn_new(sl_tls_server *s, int fd, sl_tls_conn **out, sl_err *err)
{
    sl_tls_conn *c = calloc(1, sizeof *c);
    if (!c) return sl_errf(err, SL_ENOMEM, "tls: out of memory");
    int r = gnutls_init(&c->session, GNUTLS_SERVER | GNUTLS_NONBLOCK);
    if (r < 0) {
        free(c);
        return sl_errf(err, SL_ENOMEM, "tls: %s", gnutls_strerror(r));
    }
    if ((r = gnutls_priority_set(c->session, s->prio)) < 0 ||
        (r = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, s->creds)) < 0) {
        sl_tls_conn_free(c);
        return sl_errf(err, SL_EINVAL, "tls: %s", gnutls_strerror(r));
    }
    if (s->client_auth != SL_TLS_CLIENT_AUTH_NONE) {
        gnutls_certificate_server_set_request(
            c->session, s->client_auth == SL_TLS_CLIENT_AUTH_REQUIRED ? GNUTLS_CERT_REQUIRE
                                                                      : GNUTLS_CERT_REQUEST);
        /* The handshake fails on a client certificate ca_file does not sign. */
        gnutls_session_set_verify_cert(c->session, NULL, 0);
    }
    gnutls_transport_set_int(c->session, fd);
    gnutls_handshake_set_timeout(c->session, 0); /* the caller's idle timeout applies */
    *out = c;
    return SL_OK;
}

int sl_tls_handshake(sl_tls_conn *c, sl_err *err)
{
    int r = gnutls_handshake(c->session);
    if (r == GNUTLS_E_SUCCESS) return SL_OK;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return SL_EAGAIN;
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        unsigned status = gnutls_session_get_verify_cert_status(c->session);
        gnutls_datum_t out = {0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
            sl_errf(err, SL_EINVAL, "tls handshake: client certificate: %s", out.data);
            gnutls_free(out.data);
            return SL_EINVAL;
        }
    }
    return sl_errf(err, gnutls_error_is_fatal(r) ? SL_EINVAL : SL_EIO, "tls handshake: %s",
                   gnutls_strerror(r));
}

bool sl_tls_wants_write(const sl_tls_conn *c)
{
    return gnutls_record_get_direction(c->session) == 1;
}

ssize_t sl_tls_read(sl_tls_conn *c, void *buf, size_t cap, sl_err *err)
{
    ssize_t r = gnutls_record_recv(c->session, buf, cap);
    if (r >= 0) return r;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return SL_EAGAIN;
    /* A peer that closes without close_notify ends the stream all the same. */
    if (r == GNUTLS_E_PREMATURE_TERMINATION) return 0;
    return sl_errf(err, SL_EIO, "tls read: %s", gnutls_strerror((int)r));
}

size_t sl_tls_pending(const sl_tls_conn *c)
{
    return gnutls_record_check_pending(c->session);
}

void sl_tls_conn_free(sl_tls_conn *c)
{
    if (!c) return;
    gnutls_deinit(c->session);
    free(c);
}
