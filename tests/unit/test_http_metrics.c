/* The metrics/probe endpoint and the tap (libmicrohttpd underneath): real
 * sockets on 127.0.0.1, real registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/http_metrics.h"
#include "cli/http_tap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "tests/helpers.h"

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads until EOF; returns a NUL-terminated malloc'ed response. */
static char *read_all(int fd, size_t *n_out)
{
    size_t cap = 65536, n = 0;
    char *p = malloc(cap);
    assert_non_null(p);
    for (;;) {
        if (cap - n < 4096) {
            cap *= 2;
            p = realloc(p, cap);
            assert_non_null(p);
        }
        ssize_t r = recv(fd, p + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    p[n] = '\0';
    if (n_out) *n_out = n;
    return p;
}

/* Sends raw bytes as a request and returns the status code (0 when the
 * server closed without an answer); *body gets the body when non-NULL. */
static int raw_request(int port, const char *req, size_t len, char **body)
{
    int fd = connect_to(port);
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer and close early */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char *resp = read_all(fd, NULL);
    close(fd);
    int status = 0;
    if (strncmp(resp, "HTTP/1.", 7) == 0) status = atoi(resp + 9);
    if (body) {
        char *b = strstr(resp, "\r\n\r\n");
        *body = strdup(b ? b + 4 : "");
    }
    free(resp);
    return status;
}

static int get(int port, const char *path, char **body)
{
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    return raw_request(port, req, (size_t)n, body);
}

static sl_http_metrics *start(int64_t unhealthy_ms, int *port)
{
    sl_http_metrics *h = NULL;
    sl_err err = {0};
    char listen[64];
    for (int attempt = 0; attempt < 5; attempt++) {
        *port = sl_t_free_port();
        snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
        if (sl_http_metrics_start(listen, unhealthy_ms, &h, &err) == SL_OK) break;
    }
    if (!h) fail_msg("start: %s", err.msg);
    assert_int_equal(sl_http_metrics_port(h), *port);
    return h;
}

static int setup(void **state)
{
    (void)state;
    sl_log_set_level(SL_LOG_WARN);
    sl_metrics_reset();
    return 0;
}

static void test_metrics_endpoint(void **state)
{
    (void)state;
    sl_metric *c = sl_counter("sluice_test_http_records_total", "Test counter.", "sink=\"t\"");
    sl_metric *g = sl_gauge("sluice_test_http_queue_bytes", "Test gauge.", "");
    sl_metric_add(c, 42);
    sl_metric_set(g, 7);
    int port;
    sl_http_metrics *h = start(60000, &port);
    char *body = NULL;
    assert_int_equal(get(port, "/metrics", &body), 200);
    assert_non_null(strstr(body, "# TYPE sluice_test_http_records_total counter\n"));
    assert_non_null(strstr(body, "sluice_test_http_records_total{sink=\"t\"} 42\n"));
    assert_non_null(strstr(body, "sluice_test_http_queue_bytes 7\n"));
    assert_non_null(strstr(body, "\nsluice_process_resident_memory_bytes "));
    assert_non_null(strstr(body, "\nsluice_process_open_fds "));
    assert_non_null(strstr(body, "\nsluice_process_cpu_seconds_total "));
    assert_non_null(strstr(body, "\nsluice_process_start_time_seconds "));
    assert_non_null(strstr(body, "\nsluice_build_info{version=\"" SLUICE_VERSION "\"} 1\n"));
    /* The start time is a plausible epoch time, not ticks since boot. */
    double st = atof(strstr(body, "\nsluice_process_start_time_seconds ") + 35);
    double now = (double)sl_now_ns() / 1e9;
    assert_true(st > now - 86400.0 * 365 && st <= now + 1);
    free(body);

    /* Counters move between scrapes. */
    sl_metric_inc(c);
    assert_int_equal(get(port, "/metrics?x=1", &body), 200);
    assert_non_null(strstr(body, "sluice_test_http_records_total{sink=\"t\"} 43\n"));
    free(body);

    /* HEAD: headers only. */
    const char head[] = "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(raw_request(port, head, sizeof head - 1, &body), 200);
    assert_string_equal(body, "");
    free(body);

    assert_int_equal(get(port, "/nope", NULL), 404);
    assert_int_equal(get(port, "/", NULL), 200);
    sl_http_metrics_stop(h);
}

/* Readiness follows the sinks; liveness does not (a destination outage
 * must not restart the agent). */
static void test_readyz_turns_503_and_back(void **state)
{
    (void)state;
    sl_metric *failing = sl_gauge("sluice_sink_failing", "Failing.", "sink=\"loki\"");
    sl_metric *other = sl_gauge("sluice_sink_failing", "Failing.", "sink=\"kafka\"");
    sl_metric_set(failing, 0);
    sl_metric_set(other, 0);
    int port;
    const int64_t after_ms = 400;
    sl_http_metrics *h = start(after_ms, &port);
    char *body = NULL;
    /* Not ready before the inputs run; alive all the same. */
    assert_int_equal(get(port, "/readyz", &body), 503);
    assert_non_null(strstr(body, "\"status\":\"starting\""));
    free(body);
    assert_int_equal(get(port, "/healthz", NULL), 200);
    sl_http_metrics_set_started(h);
    assert_int_equal(get(port, "/readyz", &body), 200);
    assert_string_equal(body, "{\"status\":\"ok\"}\n");
    free(body);

    int64_t t0 = sl_monotonic_ns();
    sl_metric_set(failing, 1);
    /* Within the grace period: still ready. */
    assert_int_equal(get(port, "/readyz", NULL), 200);
    int status = 200;
    while (status == 200 && sl_monotonic_ns() - t0 < 5000000000LL) {
        sl_t_sleep_ms(50);
        assert_int_equal(get(port, "/healthz", NULL), 200);
        status = get(port, "/readyz", &body);
        if (status == 200) free(body);
    }
    assert_int_equal(status, 503);
    assert_true(sl_monotonic_ns() - t0 >= after_ms * 1000000);
    assert_non_null(strstr(body, "\"status\":\"unhealthy\""));
    assert_non_null(strstr(body, "\"sink\":\"loki\""));
    assert_null(strstr(body, "kafka"));
    free(body);

    assert_int_equal(get(port, "/healthz", NULL), 200);

    /* Recovery is immediate. */
    sl_metric_set(failing, 0);
    assert_int_equal(get(port, "/readyz", &body), 200);
    assert_string_equal(body, "{\"status\":\"ok\"}\n");
    free(body);

    /* A pipeline thread that ends on its own is what liveness is for. */
    sl_http_metrics_thread_died(h, "app");
    assert_int_equal(get(port, "/healthz", &body), 503);
    assert_non_null(strstr(body, "\"status\":\"dead\""));
    assert_non_null(strstr(body, "\"first\":\"app\""));
    free(body);
    sl_http_metrics_stop(h);
}

static void test_liveness_logic(void **state)
{
    (void)state;
    char buf[256];
    sl_liveness l = {.sampler_age_ms = 500, .wedged_after_ms = 15000};
    assert_int_equal(sl_liveness_eval(&l, buf, sizeof buf), 200);
    assert_string_equal(buf, "{\"status\":\"ok\"}");
    l.sampler_age_ms = 15001;
    assert_int_equal(sl_liveness_eval(&l, buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "\"status\":\"wedged\""));
    l.threads_died = 2;
    snprintf(l.died, sizeof l.died, "a\"b\n");
    assert_int_equal(sl_liveness_eval(&l, buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "\"reason\":\"2 pipeline thread(s)"));
    assert_non_null(strstr(buf, "\"first\":\"a\"b\\u000a\""));
    char tiny[4];
    assert_int_equal(sl_liveness_eval(&l, tiny, sizeof tiny), 503);
    assert_true(strlen(tiny) < sizeof tiny);
    sl_health h;
    sl_health_init(&h);
    assert_int_equal(sl_readiness_eval(false, &h, 0, 1000, buf, sizeof buf), 503);
    assert_int_equal(sl_readiness_eval(true, &h, 0, 1000, buf, sizeof buf), 200);
}

static void test_health_logic(void **state)
{
    (void)state;
    sl_health h;
    sl_health_init(&h);
    char buf[1024];
    const char t1[] = "# TYPE sluice_sink_failing gauge\n"
                      "sluice_sink_failing{sink=\"a\"} 1\n"
                      "sluice_sink_failing{sink=\"b\\\"q\",x=\"1\"} 0\n"
                      "sluice_sink_failing{x=\"1\",sink=\"c\"} 1\n"
                      "sluice_sink_failing_other{sink=\"d\"} 1\n";
    sl_health_observe(&h, t1, sizeof t1 - 1, 1000);
    assert_int_equal(h.n, 3);
    assert_int_equal(sl_health_eval(&h, 1000, 500, buf, sizeof buf), 200);
    assert_string_equal(buf, "{\"status\":\"ok\"}");
    assert_int_equal(sl_health_eval(&h, 1500, 500, buf, sizeof buf), 200); /* not longer than */
    assert_int_equal(sl_health_eval(&h, 1501, 500, buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "{\"sink\":\"a\",\"failing_for_seconds\":0.501}"));
    assert_non_null(strstr(buf, "{\"sink\":\"c\""));
    assert_non_null(strstr(buf, "\"reason\":\"2 sink(s)"));

    /* Still failing later: the start time is kept, not refreshed. */
    sl_health_observe(&h, t1, sizeof t1 - 1, 1400);
    assert_int_equal(sl_health_eval(&h, 1501, 500, buf, sizeof buf), 503);

    /* a recovers; c's sink disappears (torn down): healthy. b's escaped name
     * comes out as valid JSON. */
    const char t2[] = "sluice_sink_failing{sink=\"a\"} 0\n"
                      "sluice_sink_failing{sink=\"b\\\"q\"} 1";
    sl_health_observe(&h, t2, sizeof t2 - 1, 2000);
    assert_int_equal(h.n, 2);
    assert_int_equal(sl_health_eval(&h, 2400, 500, buf, sizeof buf), 200);
    assert_int_equal(sl_health_eval(&h, 2600, 500, buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "\"sink\":\"b\\\"q\""));

    /* Garbled values count as failing; malformed lines are ignored. */
    const char t3[] = "sluice_sink_failing{sink=\"g\"} NaN\n"
                      "sluice_sink_failing{sink=\"x\n"
                      "sluice_sink_failing{sink=x} 1\n"
                      "sluice_sink_failing{} 1\n"
                      "sluice_sink_failing{sink=\"tab\there\"} 1\n"
                      "sluice_sink_failing{sink=\"";
    sl_health_init(&h);
    sl_health_observe(&h, t3, sizeof t3 - 1, 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(sl_health_eval(&h, 10, 5, buf, sizeof buf), 503);
    assert_non_null(strstr(buf, "\"sink\":\"g\""));
    assert_non_null(strstr(buf, "\"sink\":\"tab\\u0009here\""));

    /* A tiny buffer still gets a terminated string and the verdict. */
    char small[8];
    assert_int_equal(sl_health_eval(&h, 10, 5, small, sizeof small), 503);
    assert_true(strlen(small) < sizeof small);

    /* More sinks than slots: bounded, no overflow. */
    char big[8192];
    size_t o = 0;
    for (int i = 0; i < SL_HEALTH_MAX_SINKS + 10; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "sluice_sink_failing{sink=\"s%d\"} 1\n", i);
    sl_health_init(&h);
    sl_health_observe(&h, big, o, 0);
    assert_int_equal(h.n, SL_HEALTH_MAX_SINKS);
    assert_int_equal(sl_health_eval(&h, 100, 1, buf, sizeof buf), 503);
    assert_true(strlen(buf) < sizeof buf);

    /* A very long name is cut whole-escape, never leaving a lone backslash. */
    char lname[600];
    o = (size_t)snprintf(lname, sizeof lname, "sluice_sink_failing{sink=\"");
    for (int i = 0; i < 100; i++) o += (size_t)snprintf(lname + o, sizeof lname - o, "\\\"");
    o += (size_t)snprintf(lname + o, sizeof lname - o, "\"} 1\n");
    sl_health_init(&h);
    sl_health_observe(&h, lname, o, 0);
    assert_int_equal(h.n, 1);
    size_t nl = strlen(h.sinks[0].name);
    assert_true(nl > 0 && nl % 2 == 0);
}

static void test_bad_listen(void **state)
{
    (void)state;
    const char *bad[] = {
        "nonsense", "127.0.0.1:", "127.0.0.1:99999", "::1:80", "[::1]80", "127.0.0.1:12a", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_http_metrics *h = NULL;
        sl_err err = {0};
        assert_int_equal(sl_http_metrics_start(bad[i], 1000, &h, &err), SL_EINVAL);
        assert_null(h);
        assert_true(err.msg[0] != '\0');
    }
    /* Port in use: a clean error, not a crash. */
    int port;
    sl_http_metrics *h = start(1000, &port), *h2 = NULL;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    sl_err err = {0};
    assert_int_equal(sl_http_metrics_start(listen, 1000, &h2, &err), SL_EIO);
    assert_null(h2);
    sl_http_metrics_stop(h);
    sl_http_metrics_stop(NULL);

    /* Port 0 picks one. */
    assert_int_equal(sl_http_metrics_start("127.0.0.1:0", 1000, &h, &err), SL_OK);
    assert_true(sl_http_metrics_port(h) > 0);
    assert_int_equal(get(sl_http_metrics_port(h), "/healthz", NULL), 200);
    sl_http_metrics_stop(h);
}

/* A connection from a given loopback source address (all of 127/8 is
 * local), so per-address limits can be exercised without leaving lo. */
static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void test_hostile_requests(void **state)
{
    (void)state;
    int port;
    sl_http_metrics *h = start(1000, &port);
    struct {
        const char *req;
        int status; /* -1: any refusal (no answer, or 4xx/5xx) */
    } cases[] = {
        {"garbage\r\n\r\n", -1},
        {"GET\r\n\r\n", -1},
        {"GET /metrics\r\n\r\n", -1},
        {"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", -1},
        {"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", -1},
        {"GET /metrics HTTP/1.1\r\n\r\n", 400}, /* HTTP/1.1 without Host */
        {"GET /metrics HTTP/1.1", 0},           /* incomplete, then EOF: no answer */
        {"", 0},
        {"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405},
        {"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", -1},
        {"GET /healthz HTTP/1.0\r\n\r\n", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int st = raw_request(port, cases[i].req, strlen(cases[i].req), NULL);
        if (cases[i].status >= 0 && st != cases[i].status)
            fail_msg("case %zu: status %d, want %d", i, st, cases[i].status);
        if (cases[i].status < 0 && st != 0 && st < 400)
            fail_msg("case %zu: status %d, want a refusal", i, st);
    }

    /* Binary junk with NULs. */
    char junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 37);
    memcpy(junk + 100, "\n\n", 2);
    int st = raw_request(port, junk, sizeof junk, NULL);
    assert_true(st == 0 || st >= 400);

    /* An oversized head is refused, not buffered. */
    size_t big = 1024 * 1024;
    char *huge = malloc(big);
    assert_non_null(huge);
    memcpy(huge, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(huge + 26, 'a', big - 26);
    st = raw_request(port, huge, big, NULL);
    assert_true(st == 0 || st == 431 || st == 413 || st == 414);
    free(huge);

    /* Idle clients from one address hold what the per-address limit lets
     * them (the rest are closed at once); a probe from elsewhere is
     * answered at once. */
    int idle[40];
    for (size_t i = 0; i < sizeof idle / sizeof *idle; i++) {
        idle[i] = connect_from("127.0.0.3", port);
        send(idle[i], "GET /met", 8, MSG_NOSIGNAL); /* may fail: refused */
    }
    int64_t t0 = sl_monotonic_ns();
    assert_int_equal(get(port, "/healthz", NULL), 200);
    int64_t waited_ms = (sl_monotonic_ns() - t0) / 1000000;
    print_message("probe beside %zu idle clients: %lld ms\n", sizeof idle / sizeof *idle,
                  (long long)waited_ms);
    assert_true(waited_ms < 1000);
    for (size_t i = 0; i < sizeof idle / sizeof *idle; i++) close(idle[i]);

    /* Still serving after all that. */
    assert_int_equal(get(port, "/metrics", NULL), 200);

    /* Stop with a connection open: joins without waiting for it. */
    int open_fd = connect_to(port);
    send(open_fd, "GET /", 5, MSG_NOSIGNAL);
    t0 = sl_monotonic_ns();
    sl_http_metrics_stop(h);
    assert_true(sl_monotonic_ns() - t0 < 2000000000LL);
    close(open_fd);
}

/* Sends req and reads the response head only (a tail stream never ends);
 * returns the status, 0 when closed without one. */
static int head_status(int port, const char *req, char *head, size_t cap)
{
    int fd = connect_to(port);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t n = 0;
    head[0] = '\0';
    while (n + 1 < cap && !strstr(head, "\r\n\r\n")) {
        ssize_t r = recv(fd, head + n, cap - n - 1, 0);
        if (r <= 0) break;
        n += (size_t)r;
        head[n] = '\0';
    }
    close(fd);
    return strncmp(head, "HTTP/1.", 7) == 0 ? atoi(head + 9) : 0;
}

static void test_tap_auth_and_routes(void **state)
{
    (void)state;
    sl_http_tap *t = NULL;
    sl_err err = {0};
    sl_http_tap_opts no_token = {.listen = "127.0.0.1:0"};
    assert_int_equal(sl_http_tap_start(&no_token, &t, &err), SL_EINVAL);
    assert_null(t);
    sl_http_tap_opts o = {.listen = "127.0.0.1:0", .token = "s3cret-token"};
    assert_int_equal(sl_http_tap_start(&o, &t, &err), SL_OK);
    int port = sl_http_tap_port(t);
    assert_true(port > 0);
    assert_false(sl_http_tap_active(t));
    char head[4096];
    assert_int_equal(head_status(port, "GET /tail HTTP/1.1\r\nHost: x\r\n\r\n", head, sizeof head),
                     401);
    assert_non_null(strstr(head, "WWW-Authenticate: Bearer"));
    assert_int_equal(head_status(port,
                                 "GET /tail HTTP/1.1\r\nHost: x\r\n"
                                 "Authorization: Bearer s3cret-toke\r\n\r\n",
                                 head, sizeof head),
                     401);
    assert_int_equal(head_status(port,
                                 "GET /tail HTTP/1.1\r\nHost: x\r\n"
                                 "Authorization: Bearer s3cret-token-and-more\r\n\r\n",
                                 head, sizeof head),
                     401);
    /* Even unknown paths say nothing without the token. */
    assert_int_equal(
        head_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", head, sizeof head), 401);
    const char *auth = "Host: x\r\nAuthorization: Bearer s3cret-token\r\n\r\n";
    char req[1024];
    snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\n%s", auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 404);
    snprintf(req, sizeof req, "GET /tail?match=(x HTTP/1.1\r\n%s", auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 400);
    snprintf(req, sizeof req, "GET /tail?nope=1 HTTP/1.1\r\n%s", auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 400);
    snprintf(req, sizeof req, "GET /tail?label=novalue HTTP/1.1\r\n%s", auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 400);
    snprintf(req, sizeof req, "GET /tail?match=a%%00b HTTP/1.1\r\n%s", auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 400);
    /* The catastrophic pattern compiles (its cost is bounded per record). */
    snprintf(req, sizeof req,
             "GET /tail?match=(.*)(.*)(.*)(.*)(.*)(.*)(.*)%%5C7%%5C6%%5C5%%5C4%%5C3%%5C2%%5C1x "
             "HTTP/1.1\r\n%s",
             auth);
    assert_int_equal(head_status(port, req, head, sizeof head), 200);
    assert_non_null(strstr(head, "application/x-ndjson"));
    /* That client hung up after the head: its slot comes back. */
    int64_t t0 = sl_monotonic_ns();
    while (sl_metrics_value("sluice_tap_clients", "") != 0 && sl_monotonic_ns() - t0 < 5000000000LL)
        sl_t_sleep_ms(10);
    assert_int_equal(sl_metrics_value("sluice_tap_clients", ""), 0);
    /* Stop with streams open: returns promptly. */
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = connect_to(port);
        snprintf(req, sizeof req, "GET /tail HTTP/1.1\r\n%s", auth);
        assert_int_equal(send(fds[i], req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    }
    /* Two tails at most. */
    t0 = sl_monotonic_ns();
    while (!(sl_http_tap_active(t) && sl_metrics_value("sluice_tap_clients", "") == 2) &&
           sl_monotonic_ns() - t0 < 5000000000LL)
        sl_t_sleep_ms(10);
    assert_int_equal(sl_metrics_value("sluice_tap_clients", ""), 2);
    assert_int_equal(head_status(port, req, head, sizeof head), 503);
    /* A client that goes away while its stream is idle gives its slot back. */
    close(fds[1]);
    fds[1] = -1;
    t0 = sl_monotonic_ns();
    while (sl_metrics_value("sluice_tap_clients", "") != 1 && sl_monotonic_ns() - t0 < 5000000000LL)
        sl_t_sleep_ms(10);
    assert_int_equal(sl_metrics_value("sluice_tap_clients", ""), 1);
    t0 = sl_monotonic_ns();
    sl_http_tap_stop(t);
    int64_t took_ms = (sl_monotonic_ns() - t0) / 1000000;
    print_message("tap stopped with 2 open streams in %lld ms\n", (long long)took_ms);
    assert_true(took_ms < 1000);
    close(fds[0]);
}

static void test_concurrent_scrapes(void **state)
{
    (void)state;
    int port;
    sl_http_metrics *h = start(1000, &port);
    /* Requests on several open connections at once are all answered. */
    int fds[6];
    for (int i = 0; i < 6; i++) fds[i] = connect_to(port);
    for (int i = 0; i < 6; i++) {
        const char *r = i % 2 ? "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                              : "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_int_equal(send(fds[i], r, strlen(r), MSG_NOSIGNAL), (ssize_t)strlen(r));
    }
    for (int i = 0; i < 6; i++) {
        char *resp = read_all(fds[i], NULL);
        assert_int_equal(strncmp(resp, "HTTP/1.1 200 ", 13), 0);
        free(resp);
        close(fds[i]);
    }
    sl_http_metrics_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_health_logic, setup),
        cmocka_unit_test_setup(test_metrics_endpoint, setup),
        cmocka_unit_test_setup(test_readyz_turns_503_and_back, setup),
        cmocka_unit_test_setup(test_liveness_logic, setup),
        cmocka_unit_test_setup(test_tap_auth_and_routes, setup),
        cmocka_unit_test_setup(test_bad_listen, setup),
        cmocka_unit_test_setup(test_hostile_requests, setup),
        cmocka_unit_test_setup(test_concurrent_scrapes, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
