/* The agent's HTTP request path as sluice wires it: the metrics listener
 * (/metrics, /healthz, /readyz) and the tap (/tail with its token, query
 * parsing and PCRE2 match compilation), each a real libmicrohttpd daemon
 * on 127.0.0.1 with sluice's bounds and handlers. The input is sent as the
 * raw request. First byte: bit 0 picks the tap, bit 1 adds the tap's valid
 * token after the request line (so the handler behind the check is
 * reached). An answer must be HTTP or a close; the servers must keep
 * answering /healthz (checked every 64 inputs). Tap streams carry records
 * published between requests, so matches run too. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/http_metrics.h"
#include "cli/http_tap.h"
#include "core/batch.h"
#include "core/log.h"

#define TOKEN "fuzz-token"

static sl_http_metrics *metrics;
static sl_http_tap *tap;

static void start_servers(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    sl_err err = {0};
    if (sl_http_metrics_start("127.0.0.1:0", 1000, &metrics, &err) != SL_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    sl_http_metrics_set_started(metrics);
    sl_http_tap_opts o = {.listen = "127.0.0.1:0", .token = TOKEN};
    if (sl_http_tap_start(&o, &tap, &err) != SL_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends req from 127.0.0.src_host, reads until close, the end of a
 * stream's head, or wait_ms (an incomplete request is held until the idle
 * timeout; not a finding). Returns the status, 0 for a close without an
 * answer. */
static int exchange(int src_host, int port, const char *req, size_t len, int wait_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) abort();
    struct sockaddr_in me = {.sin_family = AF_INET};
    me.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src_host);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) abort();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) abort();
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* answered and closed early */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[8192];
    size_t n = 0;
    int64_t end = mono_ms() + wait_ms;
    while (n + 1 < sizeof buf && mono_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        ssize_t r = recv(fd, buf + n, sizeof buf - n - 1, 0);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "application/x-ndjson") && strstr(buf, "\r\n\r\n")) break;
    }
    close(fd);
    buf[n] = '\0';
    if (n == 0) return 0;
    if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "fuzz_http: not an HTTP answer: %.40s\n", buf);
        abort();
    }
    return atoi(buf + 9);
}

/* A couple of records into the tap, so an open tail has something to match. */
static void publish(void)
{
    static const char line[] = "GET /x 200 0123456789abcdefghijklmnopqrstuvw x";
    sl_batch *b = sl_batch_new(2);
    if (!b || sl_batch_set_names(b, "fuzz", "src") != 0) {
        if (b) sl_batch_unref(b);
        return;
    }
    sl_batch_add(b, (sl_slice){line, sizeof line - 1}, (int64_t)1700000000 * 1000000000, 0);
    sl_http_tap_publish(tap, b);
    sl_batch_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    if (!metrics) start_servers();
    if (size == 0) return 0;
    bool to_tap = data[0] & 1, with_token = data[0] & 2;
    const char *req = (const char *)data + 1;
    size_t len = size - 1;
    char *owned = NULL;
    if (to_tap && with_token) {
        /* The token goes after the request line (or at the end). */
        const char *nl = memchr(req, '\n', len);
        size_t cut = nl ? (size_t)(nl - req) + 1 : len;
        static const char auth[] = "Authorization: Bearer " TOKEN "\r\n";
        owned = malloc(len + sizeof auth);
        if (!owned) return 0;
        memcpy(owned, req, cut);
        memcpy(owned + cut, auth, sizeof auth - 1);
        memcpy(owned + cut + sizeof auth - 1, req + cut, len - cut);
        req = owned;
        len += sizeof auth - 1;
    }
    publish();
    int status =
        exchange(1, to_tap ? sl_http_tap_port(tap) : sl_http_metrics_port(metrics), req, len, 300);
    free(owned);
    if (status != 0 && (status < 100 || status > 599)) abort();
    /* The tap answers nothing without the token. */
    if (to_tap && !with_token && status != 0 && status != 401 && status != 400 && status != 431 &&
        status != 413 && status != 414 && status != 505 && status != 501)
        abort();
    if (++runs % 64 == 0) {
        static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: f\r\n\r\n";
        /* From another address, as the kubelet would be: what the inputs
         * left open counts against 127.0.0.1's limit, not the probe's. */
        if (exchange(5, sl_http_metrics_port(metrics), probe, sizeof probe - 1, 2000) != 200)
            abort();
    }
    return 0;
}
