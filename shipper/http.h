/* A small HTTP client over libcurl for the sinks: one reused easy handle
 * (so the connection is kept alive between requests), timeouts, TLS
 * options, fixed headers, and a result that tells the caller what it needs
 * to decide on a retry: status, transport error, Retry-After, and the start
 * of the response body. One client per sink thread; not thread-safe. */
#ifndef SLUICE_SHIPPER_HTTP_H
#define SLUICE_SHIPPER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Response bodies are kept up to this many bytes. */
#define SL_HTTP_BODY_MAX (64u << 10)
/* A body read past this many bytes is not read on: the status stands, the
 * body is cut (body_truncated), the connection is closed. */
#define SL_HTTP_READ_MAX (1u << 20)

typedef struct sl_http_opts {
    const char *url;
    int64_t timeout_ms;         /* whole request; 0: none */
    int64_t connect_timeout_ms; /* 0: libcurl's default */
    const char *ca_file, *cert_file, *key_file;
    bool insecure_skip_verify;
    const char *username, *password; /* basic auth when username is set */
    const char *bearer_token;        /* Authorization: Bearer */
    const char *const *headers;      /* extra "Name: value" lines, NULL-terminated */
    /* Polled during transfers; nonzero aborts the request (shutdown). */
    int (*abort_cb)(void *arg);
    void *abort_arg;
} sl_http_opts;

typedef struct sl_http_result {
    long status;            /* HTTP status, 0 when no response arrived */
    int transport_error;    /* 0 or the libcurl error code */
    bool aborted;           /* abort_cb stopped the request */
    int64_t retry_after_ms; /* -1 when the response had none */
    const char *body;       /* response body (NUL-terminated), valid until the next call */
    size_t body_len;
    bool body_truncated;
    char error[256];    /* transport error text; never contains credentials */
    char location[256]; /* Location header of the response ("" when none), cut */
    char peer[64];      /* address:port last connected to or tried ("" when none was) */
    /* What a transport error was, in the words operators use: "DNS",
     * "refused", "unreachable", "timeout", "TLS", "closed" (the server
     * hung up or answered with no HTTP), "transport"; NULL when none. */
    const char *kind;
    double seconds; /* time the request took */
} sl_http_result;

typedef struct sl_http sl_http;

/* Copies everything it needs from o. SL_EINVAL when a header, the bearer
 * token or the url has a control character (header injection). */
int sl_http_new(const sl_http_opts *o, sl_http **out, sl_err *err);
void sl_http_free(sl_http *h);

/* POSTs body. Returns 0 when an HTTP response arrived (any status; a body
 * past SL_HTTP_READ_MAX is cut, body_truncated, not an error), SL_EIO
 * on a transport error (refused, DNS, TLS, timeout, garbage, closed
 * mid-response), SL_ECLOSED when aborted; res is filled in every case. */
int sl_http_post(sl_http *h, const char *content_type, const char *content_encoding,
                 const void *body, size_t n, sl_http_result *res);
/* The same with one more header line for this request ("Name: value", or
 * NULL); SL_EINVAL, nothing sent, when it has a control character. */
int sl_http_post_hdr(sl_http *h, const char *content_type, const char *content_encoding,
                     const char *header, const void *body, size_t n, sl_http_result *res);

#endif
