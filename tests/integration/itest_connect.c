/* `sluice check --connect` on the real binary: each sink's destination is
 * asked whether it would accept, and the answer is reported per sink —
 * a Loki push path that answers (the test receiver) and one that 404s, a
 * Kafka broker that gives the topic's metadata (librdkafka's mock cluster)
 * and one that is not listening, a file sink's directory. A failure names
 * what failed (refused, TLS, timeout, DNS), the destination and the
 * addresses tried, and never a credential (decision 0085): against a port
 * nobody listens on, a TLS listener whose certificate the sink's CA did not
 * sign, and a listener that accepts and never answers (bounded by the
 * sinks' timeouts). Loopback only. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/kafka_harness.h"
#include "tests/loki_receiver.h"

typedef struct result {
    int status;
    char *output;
    int64_t ms; /* how long the check took */
} result;

/* `sluice check --connect` of a file input (and more_inputs) with sinks. */
static result check_connect_inputs(const char *dir, const char *more_inputs, const char *sinks)
{
    char *cfg = sl_t_path(dir, "c.yml"), *log = sl_t_path(dir, "check.out");
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "inputs:\n"
                         "  - {name: app, type: file, paths: [\"%s/in.log\"]}\n"
                         "%s"
                         "sinks:\n%s",
                         dir, dir, more_inputs, sinks) > 0);
    assert_int_equal(sl_t_write_file(cfg, yaml, strlen(yaml)), 0);
    unlink(log);
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfg, "--connect", NULL};
    int64_t t0 = sl_t_now_ms();
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    result r = {sl_t_wait(pid, sl_t_sanitized() ? 90000 : 30000), NULL, 0};
    r.ms = sl_t_now_ms() - t0;
    r.output = sl_t_read_file(log, NULL);
    if (!r.output) r.output = strdup("");
    free(yaml), free(cfg), free(log);
    return r;
}

static result check_connect(const char *dir, const char *sinks)
{
    return check_connect_inputs(dir, "", sinks);
}

/* The report line of one sink. */
static void expect_line(const result *r, const char *prefix, const char *needle)
{
    const char *p = strstr(r->output, prefix);
    const char *end = p ? strchr(p, '\n') : NULL;
    if (!p || !end || !memmem(p, (size_t)(end - p), needle, strlen(needle)))
        fail_msg("no line '%s...%s' in:\n%s", prefix, needle, r->output);
}

static void test_every_destination_answers(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    sl_lr *lr = NULL;
    sl_lr_opts lo = {.discard = true};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 3, 1);
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "  - {name: lk, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\"}\n"
                         "  - {name: kf, type: kafka, brokers: [\"%s\"], topic: logs}\n"
                         "  - {name: kt, type: kafka, brokers: [\"%s\"], topic: "
                         "\"logs-${labels.job}\"}\n"
                         "  - {name: fs, type: file, path: \"%s/out.log\"}\n"
                         "  - {name: so, type: stdout}\n",
                         sl_lr_port(lr), h.bootstraps, h.bootstraps, dir) > 0);
    char *inputs = NULL;
    /* An aggregator's Kafka input dials the brokers as a sink does. */
    assert_true(asprintf(&inputs,
                         "  - {name: kin, type: kafka, brokers: [\"%s\"], topics: [logs], "
                         "group_id: g}\n",
                         h.bootstraps) > 0);
    result r = check_connect_inputs(dir, inputs, sinks);
    free(inputs);
    if (r.status != 0) fail_msg("status %d:\n%s", r.status, r.output);
    expect_line(&r, "connect input kin (kafka): ok", "topic logs: 3 partition(s) on 1 broker(s)");
    expect_line(&r, "connect lk (loki): ok", "HTTP 204");
    expect_line(&r, "connect kf (kafka): ok", "topic logs: 3 partition(s) on 1 broker(s)");
    expect_line(&r, "connect kt (kafka): ok", "topic is a template");
    expect_line(&r, "connect fs (file): ok", "out.log can be created");
    expect_line(&r, "connect so (stdout): ok", "nothing to ask");
    assert_non_null(strstr(r.output, "# every destination answers"));
    /* The probe sent no record and created no file. */
    sl_lr_stats lst;
    sl_lr_get_stats(lr, &lst);
    assert_int_equal(lst.entries, 0);
    assert_int_equal(lst.accepted, 1);
    char *out = sl_t_path(dir, "out.log");
    assert_int_equal(access(out, F_OK), -1);
    free(out);
    free(r.output);
    free(sinks);
    kh_free(&h);
    sl_lr_stop(lr);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_wrong_path_and_unreachable_broker(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    sl_lr *lr = NULL;
    sl_lr_opts lo = {.discard = true};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    int closed = sl_t_free_port(); /* nothing listens there */
    assert_true(closed > 0);
    char *sinks = NULL;
    /* A proxy prefix Loki does not serve: the push path answers 404. */
    assert_true(asprintf(&sinks,
                         "  - {name: good, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\"}\n"
                         "  - {name: wrongpath, type: loki, url: "
                         "\"http://127.0.0.1:%d/logs/loki/api/v1/push\"}\n"
                         "  - {name: noloki, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\", timeout: 2s}\n"
                         "  - {name: nokafka, type: kafka, brokers: [\"127.0.0.1:%d\"], "
                         "topic: logs}\n"
                         "  - {name: nodir, type: file, path: \"%s/missing/out.log\"}\n",
                         sl_lr_port(lr), sl_lr_port(lr), closed, closed, dir) > 0);
    result r = check_connect(dir, sinks);
    assert_int_equal(r.status, 1);
    expect_line(&r, "connect good (loki): ok", "HTTP 204");
    expect_line(&r, "connect wrongpath (loki): FAILED", "HTTP 404 (wrong path?");
    expect_line(&r, "connect noloki (loki): FAILED", "no answer");
    expect_line(&r, "connect nokafka (kafka): FAILED: refused", "no metadata from brokers");
    expect_line(&r, "connect nodir (file): FAILED", "No such file or directory");
    assert_non_null(strstr(r.output, "# some destinations would not accept"));
    free(r.output);
    free(sinks);
    sl_lr_stop(lr);
    sl_t_rmtree(dir);
    free(dir);
}

/* A listening socket on 127.0.0.1 (port chosen by the kernel). */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A TLS listener presenting the test certificate (tests/fixtures/k8s):
 * each connection gets a handshake, whatever the client then decides. */
typedef struct tls_srv {
    int fd, port;
    pthread_t th;
    atomic_bool stop;
    atomic_int handshakes;
    gnutls_certificate_credentials_t creds;
} tls_srv;

static void *tls_srv_main(void *arg)
{
    tls_srv *t = arg;
    while (!atomic_load(&t->stop)) {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue; /* wakes to see stop */
        int c = accept4(t->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        gnutls_session_t s;
        if (gnutls_init(&s, GNUTLS_SERVER) == 0) {
            gnutls_set_default_priority(s);
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->creds);
            gnutls_transport_set_int(s, c);
            gnutls_handshake_set_timeout(s, 5000);
            int r;
            do r = gnutls_handshake(s);
            while (r < 0 && !gnutls_error_is_fatal(r));
            atomic_fetch_add(&t->handshakes, 1);
            gnutls_deinit(s);
        }
        close(c);
    }
    return NULL;
}

static void tls_srv_start(tls_srv *t)
{
    memset(t, 0, sizeof *t);
    char *crt = NULL, *key = NULL;
    assert_true(asprintf(&crt, "%s/tests/fixtures/k8s/kubelet-test.crt", sl_t_src()) > 0);
    assert_true(asprintf(&key, "%s/tests/fixtures/k8s/kubelet-test.key", sl_t_src()) > 0);
    assert_int_equal(gnutls_certificate_allocate_credentials(&t->creds), 0);
    assert_int_equal(gnutls_certificate_set_x509_key_file(t->creds, crt, key, GNUTLS_X509_FMT_PEM),
                     0);
    free(crt), free(key);
    t->fd = listen_loopback(&t->port);
    assert_int_equal(pthread_create(&t->th, NULL, tls_srv_main, t), 0);
}

static void tls_srv_stop(tls_srv *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->th, NULL);
    close(t->fd);
    gnutls_certificate_free_credentials(t->creds);
}

/* No line of the report holds text. */
static void expect_absent(const result *r, const char *text)
{
    if (strstr(r->output, text)) fail_msg("'%s' printed:\n%s", text, r->output);
}

/* Loki refuses the credentials: `auth`, the url and address, what Loki
 * said; the password (a file) and the tenant's secret never printed. */
static void test_auth_refused_names_no_credential(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    sl_lr *lr = NULL;
    sl_lr_opts lo = {.discard = true, .auth = "Basic bm90OnRoaXM="};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char *pw = sl_t_path(dir, "loki-password");
    assert_int_equal(sl_t_write_file(pw, "s3cret-pass\n", 12), 0);
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "  - name: lk\n"
                         "    type: loki\n"
                         "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                         "    auth: {username: alice, password_file: \"%s\"}\n",
                         sl_lr_port(lr), pw) > 0);
    result r = check_connect(dir, sinks);
    assert_int_equal(r.status, 1);
    char want[256];
    snprintf(want, sizeof want,
             "auth: POST http://127.0.0.1:%d/loki/api/v1/push (127.0.0.1:%d): HTTP 401 (check auth "
             "and tenant)",
             sl_lr_port(lr), sl_lr_port(lr));
    expect_line(&r, "connect lk (loki): FAILED: ", want);
    expect_absent(&r, "s3cret");
    expect_absent(&r, "YWxpY2U6czNjcmV0"); /* base64 of alice:s3cret */
    free(r.output);
    free(sinks);
    free(pw);
    sl_lr_stop(lr);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_refused_names_addresses_not_credentials(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    int p1, p2;
    /* Bound, then closed: nothing listens there now. */
    int f1 = listen_loopback(&p1), f2 = listen_loopback(&p2);
    close(f1), close(f2);
    char *pw = sl_t_path(dir, "kafka-password");
    assert_int_equal(sl_t_write_file(pw, "s3cret-kafka\n", 13), 0);
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "  - {name: lk, type: loki, url: "
                         "\"http://alice:s3cret-loki@127.0.0.1:%d/loki/api/v1/push"
                         "?api_key=s3cret-query\"}\n"
                         "  - {name: dns, type: loki, url: "
                         "\"http://loki.invalid:3100/loki/api/v1/push\"}\n"
                         "  - name: kf\n"
                         "    type: kafka\n"
                         "    brokers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                         "    topic: logs\n"
                         "    security_protocol: sasl_plaintext\n"
                         "    sasl_mechanism: plain\n"
                         "    sasl_username: alice\n"
                         "    sasl_password_file: \"%s\"\n",
                         p1, p1, p2, pw) > 0);
    char *inputs = NULL;
    assert_true(
        asprintf(&inputs,
                 "  - {name: kin, type: kafka, brokers: [\"127.0.0.1:%d\"], topics: [logs], "
                 "group_id: g}\n",
                 p2) > 0);
    result r = check_connect_inputs(dir, inputs, sinks);
    free(inputs);
    assert_int_equal(r.status, 1);
    char want[256];
    snprintf(want, sizeof want,
             "refused: POST http://<redacted>@127.0.0.1:%d/loki/api/v1/push?api_key=<redacted> "
             "(127.0.0.1:%d): no answer",
             p1, p1);
    expect_line(&r, "connect lk (loki): FAILED: ", want);
    expect_line(
        &r, "connect dns (loki): FAILED: ",
        "DNS: POST http://loki.invalid:3100/loki/api/v1/push (loki.invalid:3100): no answer");
    /* Both brokers, each with its own failure as librdkafka words it. */
    snprintf(want, sizeof want, "refused: no metadata from brokers 127.0.0.1:%d,127.0.0.1:%d in ",
             p1, p2);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    snprintf(want, sizeof want,
             "127.0.0.1:%d/bootstrap: Connect to ipv4#127.0.0.1:%d failed: "
             "Connection refused",
             p1, p1);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    snprintf(want, sizeof want,
             "127.0.0.1:%d/bootstrap: Connect to ipv4#127.0.0.1:%d failed: "
             "Connection refused",
             p2, p2);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    snprintf(want, sizeof want, "refused: no metadata from brokers 127.0.0.1:%d in ", p2);
    expect_line(&r, "connect input kin (kafka): FAILED: ", want);
    expect_absent(&r, "s3cret");
    expect_absent(&r, "alice:");
    /* Refusals are known at once: no wait for a timeout. */
    if (r.ms > sl_t_scaled_ms(4000)) fail_msg("took %lld ms:\n%s", (long long)r.ms, r.output);
    free(r.output);
    free(sinks);
    free(pw);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_tls_listener_the_ca_did_not_sign(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    tls_srv t;
    tls_srv_start(&t);
    char *ca = NULL, *sinks = NULL;
    assert_true(asprintf(&ca, "%s/tests/fixtures/tls/other-ca.crt", sl_t_src()) > 0);
    assert_true(
        asprintf(&sinks,
                 "  - {name: lk, type: loki, url: "
                 "\"https://127.0.0.1:%d/loki/api/v1/push\", tls: {ca_file: \"%s\"}}\n"
                 "  - {name: kf, type: kafka, brokers: [\"127.0.0.1:%d\"], topic: logs, "
                 "tls_ca_file: \"%s\"}\n"
                 "  - {name: plain, type: kafka, brokers: [\"127.0.0.1:%d\"], topic: logs}\n",
                 t.port, ca, t.port, ca, t.port) > 0);
    result r = check_connect(dir, sinks);
    assert_int_equal(r.status, 1);
    char want[256];
    snprintf(want, sizeof want,
             "TLS: POST https://127.0.0.1:%d/loki/api/v1/push (127.0.0.1:%d): ", t.port, t.port);
    expect_line(&r, "connect lk (loki): FAILED: ", want);
    expect_line(&r, "connect lk (loki): FAILED: ", "certificate");
    snprintf(want, sizeof want, "TLS: no metadata from brokers 127.0.0.1:%d in ", t.port);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    snprintf(want, sizeof want, "127.0.0.1:%d/bootstrap: ", t.port);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    expect_line(&r, "connect kf (kafka): FAILED: ", "certificate verify failed");
    /* Plaintext against the TLS listener: it hangs up, librdkafka says why. */
    snprintf(want, sizeof want, "closed: no metadata from brokers 127.0.0.1:%d in ", t.port);
    expect_line(&r, "connect plain (kafka): FAILED: ", want);
    expect_line(&r, "connect plain (kafka): FAILED: ", "incorrect security.protocol");
    assert_true(atomic_load(&t.handshakes) >= 3);
    free(r.output);
    free(sinks);
    free(ca);
    tls_srv_stop(&t);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_listener_that_never_answers(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    int port;
    /* Connections complete in the kernel's backlog; nothing ever reads. */
    int fd = listen_loopback(&port);
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "  - {name: lk, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\", timeout: 1s}\n"
                         "  - {name: kf, type: kafka, brokers: [\"127.0.0.1:%d\"], topic: logs, "
                         "librdkafka: {socket.connection.setup.timeout.ms: 1000}}\n",
                         port, port) > 0);
    result r = check_connect(dir, sinks);
    assert_int_equal(r.status, 1);
    char want[256];
    snprintf(want, sizeof want,
             "timeout: POST http://127.0.0.1:%d/loki/api/v1/push (127.0.0.1:%d): "
             "no answer after 1.",
             port, port);
    expect_line(&r, "connect lk (loki): FAILED: ", want);
    snprintf(want, sizeof want, "timeout: no metadata from brokers 127.0.0.1:%d in ", port);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    snprintf(want, sizeof want, "127.0.0.1:%d/bootstrap: Connection setup timed out", port);
    expect_line(&r, "connect kf (kafka): FAILED: ", want);
    /* Bounded by the sinks' timeouts (1 s each and the probe's slack), not
     * by librdkafka's 30 s connection setup nor the default 10 s. */
    if (r.ms > sl_t_scaled_ms(8000)) fail_msg("took %lld ms:\n%s", (long long)r.ms, r.output);
    close(fd);
    free(r.output);
    free(sinks);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_destination_answers),
        cmocka_unit_test(test_wrong_path_and_unreachable_broker),
        cmocka_unit_test(test_refused_names_addresses_not_credentials),
        cmocka_unit_test(test_tls_listener_the_ca_did_not_sign),
        cmocka_unit_test(test_listener_that_never_answers),
        cmocka_unit_test(test_auth_refused_names_no_credential),
    };
    return sl_t_run_tests(tests);
}
