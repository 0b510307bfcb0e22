#include "shipper/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shipper/retry.h"

struct sl_http {
    CURL *curl;
    struct curl_slist *fixed; /* headers sent with every request */
    char *url, *ca, *cert, *key, *user, *pass;
    bool invalid_host; /* RFC 6761: never resolve *.invalid */
    int (*abort_cb)(void *);
    void *abort_arg;
    char *body;
    size_t body_len;
    uint64_t body_read;   /* bytes of this response's body read so far */
    bool truncated, over; /* over: dropped at SL_HTTP_READ_MAX */
    char retry_after[64];
    char location[256];
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    sl_http *h = arg;
    size_t n = size * nmemb;
    size_t room = SL_HTTP_BODY_MAX - h->body_len;
    size_t take = n < room ? n : room;
    if (take) {
        memcpy(h->body + h->body_len, p, take);
        h->body_len += take;
        h->body[h->body_len] = 0;
    }
    if (take < n) h->truncated = true;
    h->body_read += n;
    if (h->body_read > SL_HTTP_READ_MAX) {
        /* A body without end (or of a GiB) would hold the sink for the
         * whole timeout, and a request Loki stored would be sent again:
         * the status is known, the connection is dropped. */
        h->over = true;
        return 0;
    }
    return n; /* keep reading so the connection stays reusable */
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    sl_http *h = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
        size_t vn = n - (sizeof name - 1);
        const char *v = p + sizeof name - 1;
        while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
        if (vn >= sizeof h->retry_after) vn = sizeof h->retry_after - 1;
        memcpy(h->retry_after, v, vn);
        h->retry_after[vn] = 0;
    } else if (n > 9 && !strncasecmp(p, "location:", 9)) {
        size_t vn = n - 9;
        const char *v = p + 9;
        while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
        while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
        if (vn >= sizeof h->location) vn = sizeof h->location - 1;
        memcpy(h->location, v, vn);
        h->location[vn] = 0;
    } else if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
        h->retry_after[0] = 0; /* a new response (e.g. after 100 Continue) */
        h->location[0] = 0;
    }
    return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    sl_http *h = arg;
    return h->abort_cb && h->abort_cb(h->abort_arg) ? 1 : 0;
}

static char *dup_opt(const char *s, bool *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = true;
    return d;
}

/* True when the URL's host is under the reserved .invalid TLD. */
static bool host_is_invalid(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool r = false;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
        size_t n = strlen(host);
        while (n && host[n - 1] == '.') n--;
        r = (n == 7 && !strncasecmp(host, "invalid", 7)) ||
            (n > 8 && !strncasecmp(host + n - 8, ".invalid", 8));
    }
    curl_free(host);
    curl_url_cleanup(u);
    return r;
}

/* A header line with a control character would end the line early and
 * inject what follows as a header of its own. */
static bool header_safe(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return false;
    return true;
}

int sl_http_new(const sl_http_opts *o, sl_http **out, sl_err *err)
{
    if (!o->url || !*o->url) return sl_errf(err, SL_EINVAL, "http: url is required");
    for (const char *const *p = o->headers; p && *p; p++)
        if (!header_safe(*p))
            return sl_errf(err, SL_EINVAL, "http: header '%.*s' has a control character",
                           (int)strcspn(*p, ":"), *p);
    if (!header_safe(o->bearer_token) || !header_safe(o->url))
        return sl_errf(err, SL_EINVAL, "http: bearer token or url has a control character");
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return sl_errf(err, SL_EIO, "http: libcurl init failed: %s", curl_easy_strerror(global_rc));
    sl_http *h = calloc(1, sizeof *h);
    if (!h) return sl_errf(err, SL_ENOMEM, "http: out of memory");
    bool fail = false;
    h->url = dup_opt(o->url, &fail);
    h->ca = dup_opt(o->ca_file, &fail);
    h->cert = dup_opt(o->cert_file, &fail);
    h->key = dup_opt(o->key_file, &fail);
    h->user = dup_opt(o->username, &fail);
    h->pass = dup_opt(o->password ? o->password : (o->username ? "" : NULL), &fail);
    h->body = malloc(SL_HTTP_BODY_MAX + 1);
    h->curl = curl_easy_init();
    h->abort_cb = o->abort_cb;
    h->abort_arg = o->abort_arg;
    if (fail || !h->body || !h->curl) {
        sl_http_free(h);
        return sl_errf(err, SL_ENOMEM, "http: out of memory");
    }
    h->invalid_host = host_is_invalid(o->url);

    /* "Expect:" turns off 100-continue, which costs a round trip per request. */
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (const char *const *p = o->headers; l && p && *p; p++) {
        struct curl_slist *n = curl_slist_append(l, *p);
        if (!n) {
            curl_slist_free_all(l);
            l = NULL;
            break;
        }
        l = n;
    }
    if (l && o->bearer_token && *o->bearer_token) {
        size_t bn = strlen(o->bearer_token) + 32;
        char *b = malloc(bn);
        struct curl_slist *n = NULL;
        if (b) {
            snprintf(b, bn, "Authorization: Bearer %s", o->bearer_token);
            n = curl_slist_append(l, b);
            explicit_bzero(b, bn);
            free(b);
        }
        if (!n) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = n;
        }
    }
    if (!l) {
        sl_http_free(h);
        return sl_errf(err, SL_ENOMEM, "http: out of memory");
    }
    h->fixed = l;

    CURL *c = h->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK) rc = curl_easy_setopt(c, opt, val);                                    \
    } while (0)
    SET(CURLOPT_URL, h->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, h);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, h);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, h);
    SET(CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    if (o->timeout_ms > 0) SET(CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    if (o->connect_timeout_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    if (h->ca) SET(CURLOPT_CAINFO, h->ca);
    if (h->cert) SET(CURLOPT_SSLCERT, h->cert);
    if (h->key) SET(CURLOPT_SSLKEY, h->key);
    if (o->insecure_skip_verify) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (h->user) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, h->user);
        SET(CURLOPT_PASSWORD, h->pass);
    }
#undef SET
    if (rc != CURLE_OK) {
        sl_http_free(h);
        return sl_errf(err, SL_EINVAL, "http: %s", curl_easy_strerror(rc));
    }
    *out = h;
    return 0;
}

void sl_http_free(sl_http *h)
{
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->fixed);
    if (h->pass) explicit_bzero(h->pass, strlen(h->pass));
    free(h->url);
    free(h->ca);
    free(h->cert);
    free(h->key);
    free(h->user);
    free(h->pass);
    free(h->body);
    free(h);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The class of a transport error. COULDNT_CONNECT covers a refusal and an
 * unreachable network alike; the socket's errno tells them apart. */
static const char *error_kind(CURLcode rc, long os_errno)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "DNS";
    case CURLE_COULDNT_CONNECT:
        return os_errno == ECONNREFUSED                              ? "refused"
               : os_errno == ETIMEDOUT                               ? "timeout"
               : os_errno == EHOSTUNREACH || os_errno == ENETUNREACH ? "unreachable"
                                                                     : "refused";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return "TLS";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return "closed";
    default:
        return "transport";
    }
}

int sl_http_post(sl_http *h, const char *content_type, const char *content_encoding,
                 const void *body, size_t n, sl_http_result *res)
{
    return sl_http_post_hdr(h, content_type, content_encoding, NULL, body, n, res);
}

int sl_http_post_hdr(sl_http *h, const char *content_type, const char *content_encoding,
                     const char *header, const void *body, size_t n, sl_http_result *res)
{
    memset(res, 0, sizeof *res);
    if (!header_safe(header)) {
        res->retry_after_ms = -1;
        res->body = "";
        snprintf(res->error, sizeof res->error, "header with a control character not sent");
        return SL_EINVAL;
    }
    res->retry_after_ms = -1;
    h->body_len = 0;
    h->body_read = 0;
    h->body[0] = 0;
    h->truncated = false;
    h->over = false;
    h->retry_after[0] = 0;
    h->location[0] = 0;
    h->errbuf[0] = 0;
    res->body = h->body;
    if (h->invalid_host) {
        /* RFC 6761 6.4: names under .invalid never resolve; answer at once
         * rather than asking a DNS server. */
        res->transport_error = CURLE_COULDNT_RESOLVE_HOST;
        res->kind = "DNS";
        snprintf(res->error, sizeof res->error, "could not resolve host (reserved .invalid name)");
        return SL_EIO;
    }
    if (h->abort_cb && h->abort_cb(h->abort_arg)) {
        res->aborted = true;
        res->transport_error = CURLE_ABORTED_BY_CALLBACK;
        snprintf(res->error, sizeof res->error, "aborted");
        return SL_ECLOSED;
    }
    char ct[128], ce[128];
    struct curl_slist extra[3];
    struct curl_slist *hdrs = h->fixed;
    /* Per-request headers are chained in front of the fixed list without
     * allocating: curl only reads the list during the transfer. */
    size_t ne = 0;
    if (header && *header) {
        extra[ne] = (struct curl_slist){(char *)(uintptr_t)header, hdrs};
        hdrs = &extra[ne++];
    }
    if (content_encoding && *content_encoding) {
        snprintf(ce, sizeof ce, "Content-Encoding: %s", content_encoding);
        extra[ne] = (struct curl_slist){ce, hdrs};
        hdrs = &extra[ne++];
    }
    if (content_type && *content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        extra[ne] = (struct curl_slist){ct, hdrs};
        hdrs = &extra[ne++];
    }
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    double t0 = now_s();
    CURLcode rc = curl_easy_perform(h->curl);
    res->seconds = now_s() - t0;
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    res->body_len = h->body_len;
    res->body_truncated = h->truncated;
    /* The address behind the url's name: which of a name's addresses
     * refused, timed out or answered (`sluice check --connect`). */
    char *ip = NULL;
    long port = 0;
    if (curl_easy_getinfo(h->curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip && *ip &&
        curl_easy_getinfo(h->curl, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK)
        snprintf(res->peer, sizeof res->peer, strchr(ip, ':') ? "[%s]:%ld" : "%s:%ld", ip, port);
    if (rc == CURLE_WRITE_ERROR && h->over) rc = CURLE_OK; /* answered; the rest not read */
    if (rc != CURLE_OK) {
        res->transport_error = (int)rc;
        res->aborted = rc == CURLE_ABORTED_BY_CALLBACK;
        long os_errno = 0;
        curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &os_errno);
        res->kind = res->aborted ? "aborted" : error_kind(rc, os_errno);
        snprintf(res->error, sizeof res->error, "%s",
                 h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
        return res->aborted ? SL_ECLOSED : SL_EIO;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &res->status);
    snprintf(res->location, sizeof res->location, "%s", h->location);
    if (h->retry_after[0]) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        res->retry_after_ms = sl_retry_after_parse(h->retry_after, (int64_t)ts.tv_sec);
    }
    return 0;
}
