/* The shipped binary end to end through both sinks: a file input with a json
 * parse step feeding the Loki sink (into the in-tree receiver, in process,
 * on loopback) or the Kafka sink (into librdkafka's mock cluster, consumed
 * back by a real consumer). Restarts with SIGTERM and kill -9, receiver
 * faults, and destinations that are wrong in every way we know of. Every
 * line carries a unique "seq=NNNNNNNNNN"; the tests count what arrived
 * exactly once, what arrived twice, and what never came. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/kafka_harness.h"
#include "tests/loki_receiver.h"

static uint64_t scaled(uint64_t n)
{
    return sl_t_sanitized() ? n / 5 : n;
}

/* JSON lines; `level` and `svc` vary so the Loki sink sees several streams
 * and the Kafka sink several keys. */
static void append_json(const char *path, uint64_t from, uint64_t to)
{
    static const char *levels[] = {"info", "warn", "error", "debug"};
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    for (uint64_t i = from; i < to;) {
        size_t n = 0;
        for (int k = 0; k < 2000 && i < to; k++, i++)
            n += (size_t)sprintf(buf + n,
                                 "{\"msg\":\"seq=%010llu request %llu\",\"level\":\"%s\","
                                 "\"svc\":\"svc%llu\",\"request_id\":\"r%llx\",\"status\":%d}\n",
                                 (unsigned long long)i, (unsigned long long)(i * 7919 % 100003),
                                 levels[i % 4], (unsigned long long)(i % 8),
                                 (unsigned long long)(i * 2654435761u), 200 + (int)(i % 3));
        assert_int_equal(sl_t_append_file(path, buf, n), 0);
        sl_t_sleep_ms(2);
    }
    free(buf);
}

/* ---- what the receiver got ---- */

typedef struct tally {
    uint64_t unique, dups, unknown, total;
} tally;

static tally lr_tally(sl_lr *lr, uint64_t nseq)
{
    tally t = {0};
    uint8_t *seen = calloc(nseq ? nseq : 1, 1);
    assert_non_null(seen);
    size_t n = sl_lr_nentries(lr);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        int64_t seq = kh_seq_of(e->line, e->line_n);
        t.total++;
        if (seq < 0 || (uint64_t)seq >= nseq)
            t.unknown++;
        else if (seen[seq])
            t.dups++;
        else
            seen[seq] = 1, t.unique++;
    }
    free(seen);
    return t;
}

typedef struct lr_wait {
    sl_lr *lr;
    uint64_t n, nseq;
} lr_wait;

static bool lr_has(void *arg)
{
    lr_wait *w = arg;
    if (sl_lr_nentries(w->lr) < w->n) return false;
    return lr_tally(w->lr, w->nseq).unique >= w->n;
}

static bool wait_unique(sl_lr *lr, uint64_t n, uint64_t nseq, int timeout_ms)
{
    lr_wait w = {lr, n, nseq};
    return sl_t_wait_until(lr_has, &w, timeout_ms);
}

/* ---- the agent's own metrics, over HTTP ---- */

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int rn = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)rn) != rn) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            out = realloc(out, cap + 1);
        }
        ssize_t k = read(fd, out + len, cap - len);
        if (k <= 0) break;
        len += (size_t)k;
    }
    close(fd);
    out[len] = '\0';
    return out;
}

/* Value of `name{labels...}` (labels: the text between the braces, exactly
 * as the agent prints it); -1 when absent. */
static double metric_of(const char *text, const char *name, const char *labels)
{
    char key[512];
    snprintf(key, sizeof key, "\n%s{%s} ", name, labels);
    const char *p = text ? strstr(text, key) : NULL;
    return p ? strtod(p + strlen(key), NULL) : -1;
}

typedef struct metric_wait {
    int port;
    const char *name, *labels;
    double at_least;
} metric_wait;

static bool metric_reached(void *arg)
{
    metric_wait *w = arg;
    char *t = http_get(w->port, "/metrics");
    double v = metric_of(t, w->name, w->labels);
    free(t);
    return v >= w->at_least;
}

typedef struct log_wait {
    const char *path, *needle;
} log_wait;

static bool log_has(void *arg)
{
    log_wait *w = arg;
    char *t = sl_t_read_file(w->path, NULL);
    bool hit = t && strstr(t, w->needle);
    free(t);
    return hit;
}

typedef struct count_wait {
    const char *path, *needle;
    size_t n;
} count_wait;

/* The log holds needle at least n times. */
static bool count_reached(void *arg)
{
    count_wait *w = arg;
    char *t = sl_t_read_file(w->path, NULL);
    size_t n = 0;
    for (const char *p = t; p && (p = strstr(p, w->needle)); p++) n++;
    free(t);
    return n >= w->n;
}

/* Starts the agent and waits until it is up, so a SIGTERM takes the
 * graceful path (before the agent blocks signals it would end the process
 * the default way). */
static pid_t spawn_ready(char *const argv[], const char *log, size_t *starts)
{
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    count_wait cw = {log, "agent_started", ++*starts};
    assert_true(sl_t_wait_until(count_reached, &cw, 30000));
    return pid;
}

/* ---- the agent's configuration ---- */

static void write_loki_cfg(const char *cfg, const char *dir, const char *in, const char *url,
                           int metrics_port, const char *extra)
{
    char yml[4096];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s/data\n"
                     "shutdown_timeout: 3s\n"
                     "%s%.0d%s"
                     "inputs:\n"
                     "  - name: app\n"
                     "    type: file\n"
                     "    paths: [\"%s\"]\n"
                     "    poll_interval: 50ms\n"
                     "    checkpoint_interval: 100ms\n"
                     "    labels: {job: app}\n"
                     "    parse:\n"
                     "      - json: {}\n"
                     "      - labels: [level]\n"
                     "sinks:\n"
                     "  - name: loki\n"
                     "    type: loki\n"
                     "    url: \"%s\"\n"
                     "    timeout: 2s\n"
                     "    min_backoff: 20ms\n"
                     "    max_backoff: 200ms\n"
                     "    max_batch_wait: 50ms\n"
                     "%s",
                     dir, metrics_port ? "metrics: {listen: \"127.0.0.1:" : "", metrics_port,
                     metrics_port ? "\"}\n" : "", in, url, extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof yml);
    assert_int_equal(sl_t_write_file(cfg, yml, (size_t)n), 0);
}

/* ---- Loki: restarts and receiver faults ---- */

static void test_loki_restarts_and_faults(void **st)
{
    (void)st;
    const uint64_t total = scaled(200000);
    sl_lr_opts lo = {0};
    sl_lr *lr;
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(lr));
    char *dir = sl_t_tmpdir("sinks-e2e-loki");
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    write_loki_cfg(cfg, dir, in, url, 0, NULL);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};

    /* Graceful: SIGTERM, write while down, start again: exactly once. */
    uint64_t a = total * 3 / 10, b = total * 6 / 10, c = total * 8 / 10;
    int64_t t0 = sl_monotonic_ns();
    append_json(in, 0, a / 2);
    size_t starts = 0;
    pid_t pid = spawn_ready(argv, log, &starts);
    assert_true(pid > 0);
    append_json(in, a / 2, a);
    assert_true(wait_unique(lr, a, total, 60000));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    append_json(in, a, a + a / 3);
    pid = spawn_ready(argv, log, &starts);
    /* A second quick restart, once the agent is up (a SIGTERM before it
     * blocks signals ends the process the default way). */
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    pid = spawn_ready(argv, log, &starts);
    assert_true(wait_unique(lr, a + a / 3, total, 60000));
    sl_t_sleep_ms(300);
    tally g = lr_tally(lr, total);
    assert_int_equal(g.dups, 0);
    assert_int_equal(g.unknown, 0);
    assert_int_equal(g.unique, a + a / 3);
    double graceful_s = (double)(sl_monotonic_ns() - t0) / 1e9;

    /* Violent: kill -9 while lines are shipped. */
    uint64_t from = a + a / 3, step = (b - from) / 4;
    for (int k = 0; k < 4; k++) {
        uint64_t to = k == 3 ? b : from + step;
        append_json(in, from, to);
        sl_t_sleep_ms(30 + k * 50);
        assert_int_equal(sl_t_stop(pid, SIGKILL, 5000), 128 + SIGKILL);
        pid = spawn_ready(argv, log, &starts);
        from = to;
    }
    assert_true(wait_unique(lr, b, total, 60000));
    tally v = lr_tally(lr, total);

    /* Receiver faults: 500, 503, 429 with Retry-After, dropped connections,
     * half answers and garbage on a quarter of the requests, plus a run of
     * each at the start. */
    sl_lr_stats s0;
    sl_lr_get_stats(lr, &s0);
    assert_int_equal(sl_lr_faults(lr, "500*3,429:1*2,drop*2,midclose*2,garbage,503"), 0);
    sl_lr_fault_rate(lr, 0.25, 42);
    append_json(in, b, c);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0); /* restart while failing */
    pid = spawn_ready(argv, log, &starts);
    append_json(in, c, total);
    bool all = wait_unique(lr, total, total, 120000);
    sl_lr_fault_rate(lr, 0, 0);
    sl_lr_stats s1;
    sl_lr_get_stats(lr, &s1);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    tally f = lr_tally(lr, total);
    fprintf(stderr,
            "[ e2e loki ] %llu records: graceful %llu exactly once (%.1f s); kill -9 x4: "
            "dups %llu; faults: %llu of %llu requests failed, unique %llu/%llu, dups total %llu, "
            "unknown %llu\n",
            (unsigned long long)total, (unsigned long long)g.unique, graceful_s,
            (unsigned long long)v.dups, (unsigned long long)(s1.faults - s0.faults),
            (unsigned long long)(s1.requests - s0.requests), (unsigned long long)f.unique,
            (unsigned long long)total, (unsigned long long)f.dups, (unsigned long long)f.unknown);
    assert_true(all);
    assert_int_equal(f.unique, total);
    assert_int_equal(f.unknown, 0);
    assert_true(s1.faults - s0.faults >= 11);
    sl_lr_stats fin;
    sl_lr_get_stats(lr, &fin);
    assert_int_equal(fin.bad_requests, 0);
    assert_int_equal(fin.invalid_utf8, 0);
    sl_lr_stop(lr);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", dir);
    else
        sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
}

/* ---- Loki concurrency ---- */

/* Ships n pre-written records through the binary with the given concurrency
 * into r; returns the seconds from start to the last record's arrival. */
static double loki_run_conc(sl_lr *r, uint64_t n, int conc, const char *extra, tally *t)
{
    char *dir = sl_t_tmpdir("sinks-e2e-conc");
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    char url[128], more[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(r));
    snprintf(more, sizeof more, "    concurrency: %d\n    max_batch_bytes: 256KiB\n%s", conc,
             extra ? extra : "");
    write_loki_cfg(cfg, dir, in, url, 0, more);
    append_json(in, 0, n);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    int64_t t0 = sl_monotonic_ns();
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    bool all = wait_unique(r, n, n, 120000);
    double secs = (double)(sl_monotonic_ns() - t0) / 1e9;
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    *t = lr_tally(r, n);
    if (!all) {
        char *text = sl_t_read_file(log, NULL);
        fprintf(stderr, "%s\n", text ? text : "");
        free(text);
    }
    assert_true(all);
    sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
    return secs;
}

/* Four requests in flight: every record once, and no stream ever out of
 * order at the receiver (it rejects older entries Loki-style), with and
 * without faults. Prints the throughput next to concurrency 1. */
static void test_loki_concurrency(void **st)
{
    (void)st;
    const uint64_t n = scaled(200000);
    double secs[2];
    int conc[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        sl_lr_opts lo = {.enforce_order = true};
        sl_lr *r;
        assert_int_equal(sl_lr_start(&lo, &r), 0);
        tally t;
        secs[k] = loki_run_conc(r, n, conc[k], NULL, &t);
        sl_lr_stats s;
        sl_lr_get_stats(r, &s);
        assert_int_equal(t.unique, n);
        assert_int_equal(t.dups, 0);
        assert_int_equal(s.rejected_entries, 0);
        assert_int_equal(s.unsorted_streams, 0);
        fprintf(stderr,
                "[ loki concurrency %d ] %llu records in %.2f s (%.0f records/s, %.1f MB/s of "
                "request bodies, %llu requests)\n",
                conc[k], (unsigned long long)n, secs[k], (double)n / secs[k],
                (double)s.body_bytes / secs[k] / 1e6, (unsigned long long)s.requests);
        sl_lr_stop(r);
    }
    fprintf(stderr, "[ loki concurrency ] 4 vs 1: %.2fx\n", secs[0] / secs[1]);

    /* Faults with 4 in flight: none lost, order kept. */
    sl_lr_opts lo = {.enforce_order = true};
    sl_lr *r;
    assert_int_equal(sl_lr_start(&lo, &r), 0);
    sl_lr_fault_rate(r, 0.3, 7);
    tally t;
    loki_run_conc(r, n / 4, 4, NULL, &t);
    sl_lr_stats s;
    sl_lr_get_stats(r, &s);
    assert_int_equal(t.unique, n / 4);
    assert_int_equal(s.rejected_entries, 0);
    assert_int_equal(s.unsorted_streams, 0);
    assert_true(s.faults > 0);
    fprintf(stderr, "[ loki concurrency 4, faults ] %llu of %llu requests failed, dups %llu\n",
            (unsigned long long)s.faults, (unsigned long long)s.requests,
            (unsigned long long)t.dups);
    sl_lr_stop(r);
}

/* ---- Kafka: kill -9 restarts into the mock cluster ---- */

static void test_kafka_kill9(void **st)
{
    (void)st;
    kh h;
    kh_mock(&h, 3);
    rd_kafka_mock_topic_create(h.mc, "logs", 8, 3);
    const uint64_t total = scaled(200000);
    kh_consumer *c = kh_consume(&h, "logs:8", total);
    char *dir = sl_t_tmpdir("sinks-e2e-kafka");
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    char yml[2048];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s/data\n"
                     "shutdown_timeout: 5s\n"
                     "inputs:\n"
                     "  - name: app\n"
                     "    type: file\n"
                     "    paths: [\"%s\"]\n"
                     "    poll_interval: 50ms\n"
                     "    checkpoint_interval: 100ms\n"
                     "    labels: {job: app}\n"
                     "    parse:\n"
                     "      - json: {}\n"
                     "sinks:\n"
                     "  - name: kafka\n"
                     "    type: kafka\n"
                     "    brokers: \"%s\"\n"
                     "    topic: logs\n"
                     "    key: \"$${fields.svc}\"\n"
                     "    linger_ms: 5\n",
                     dir, in, h.bootstraps);
    assert_int_equal(sl_t_write_file(cfg, yml, (size_t)n), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};

    int64_t t0 = sl_monotonic_ns();
    append_json(in, 0, total / 5);
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    uint64_t from = total / 5, step = (total - from) / 6;
    for (int k = 0; k < 6; k++) {
        uint64_t to = k == 5 ? total : from + step;
        append_json(in, from, to);
        sl_t_sleep_ms(40 + k * 40);
        assert_int_equal(sl_t_stop(pid, SIGKILL, 5000), 128 + SIGKILL);
        pid = sl_t_spawn(argv, log);
        from = to;
    }
    bool all = kh_wait_consumed(c, total, 120000);
    double secs = (double)(sl_monotonic_ns() - t0) / 1e9;
    sl_t_sleep_ms(300);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    kh_consumer_stop(c);
    fprintf(stderr,
            "[ e2e kafka ] %llu records, kill -9 x6: unique %llu, dups %llu, reordered %llu, "
            "unknown %llu, %.1f s\n",
            (unsigned long long)total, (unsigned long long)c->unique, (unsigned long long)c->dups,
            (unsigned long long)c->reordered, (unsigned long long)c->unknown, secs);
    assert_true(all);
    assert_int_equal(c->unique, total);
    assert_int_equal(c->unknown, 0);
    kh_consumer_free(c);
    kh_free(&h);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", dir);
    else
        sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
}

/* ---- bad destinations ---- */

typedef struct bad_case {
    const char *name;
    const char *fault; /* receiver fault spec for a misbehaving server, or NULL */
    const char *path;  /* url path on a working receiver, or NULL */
    const char *url;   /* a fixed url, or NULL */
    const char *needle;
} bad_case;

/* The binary against a destination that cannot take anything: it must log a
 * clear error, say so in its metrics, keep running, stop cleanly, and
 * deliver every line once the destination is right. */
static void run_bad_case(const bad_case *bc)
{
    const uint64_t total = 3000;
    sl_lr_opts lo = {0};
    sl_lr *good, *bad = NULL;
    assert_int_equal(sl_lr_start(&lo, &good), 0);
    char url[256], good_url[256];
    snprintf(good_url, sizeof good_url, "http://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(good));
    if (bc->fault) {
        assert_int_equal(sl_lr_start(&lo, &bad), 0);
        assert_int_equal(sl_lr_faults(bad, bc->fault), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/loki/api/v1/push", sl_lr_port(bad));
    } else if (bc->path) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sl_lr_port(good), bc->path);
    } else {
        snprintf(url, sizeof url, "%s", bc->url);
    }
    char *dir = sl_t_tmpdir("sinks-e2e-bad");
    char *cfg = sl_t_path(dir, "sluice.yml"), *in = sl_t_path(dir, "in.log");
    char *log = sl_t_path(dir, "agent.log");
    int mport = sl_t_free_port();
    write_loki_cfg(cfg, dir, in, url, mport, NULL);
    append_json(in, 0, total);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);

    log_wait lw = {log, "sink_send_failed"};
    assert_true(sl_t_wait_until(log_has, &lw, 15000));
    lw.needle = bc->needle;
    bool clear = sl_t_wait_until(log_has, &lw, 5000);
    metric_wait mw = {mport, "sluice_sink_retries_total", "sink=\"loki\"", 3};
    bool retried = sl_t_wait_until(metric_reached, &mw, 15000);
    char *m = http_get(mport, "/metrics");
    double failing = metric_of(m, "sluice_sink_failing", "sink=\"loki\"");
    double delivered = metric_of(m, "sluice_sink_records_total", "sink=\"loki\"");
    free(m);
    int rc = sl_t_stop(pid, SIGTERM, 20000);
    char *text = sl_t_read_file(log, NULL);
    const char *line = text ? strstr(text, "sink_send_failed") : NULL;
    const char *eol = line ? strchr(line, '\n') : NULL;
    fprintf(stderr, "[ bad %s ] %.*s\n", bc->name, line ? (int)(eol ? eol - line : 200) : 4,
            line ? line : "none");
    if (!clear) fprintf(stderr, "expected '%s' in:\n%s\n", bc->needle, text ? text : "");
    free(text);
    assert_true(clear);
    assert_true(retried);
    assert_true(failing == 1);
    assert_true(delivered <= 0);
    assert_int_equal(rc, 0); /* no crash, a clean stop while failing */
    assert_int_equal(sl_lr_nentries(good), 0);

    /* Fixed: everything arrives. */
    write_loki_cfg(cfg, dir, in, good_url, 0, NULL);
    pid = sl_t_spawn(argv, log);
    bool all = wait_unique(good, total, total, 30000);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    tally t = lr_tally(good, total);
    assert_true(all);
    assert_int_equal(t.unique, total);
    assert_int_equal(t.dups, 0);
    if (bad) sl_lr_stop(bad);
    sl_lr_stop(good);
    sl_t_rmtree(dir);
    free(dir), free(cfg), free(in), free(log);
}

static void test_bad_destinations(void **st)
{
    (void)st;
    static const bad_case cases[] = {
        {"wrong_url", NULL, "/loki/api/v1/pushh", NULL, "HTTP 404 (check url)"},
        {"dns", NULL, NULL, "http://loki.invalid:3100/loki/api/v1/push", "could not resolve host"},
        {"garbage", "garbage*100000", NULL, NULL, "HTTP/0.9"},
        {"midclose", "midclose*100000", NULL, NULL, "transfer closed"},
        {"drop", "drop*100000", NULL, NULL, "Empty reply"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_bad_case(&cases[i]);
}

/* ---- sluice check: high-cardinality labels ---- */

static void test_check_warns_high_cardinality(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("sinks-e2e-check");
    char *cfg = sl_t_path(dir, "sluice.yml"), *out = sl_t_path(dir, "check.out");
    char yml[2048];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s/data\n"
                     "inputs:\n"
                     "  - name: app\n"
                     "    type: file\n"
                     "    paths: [\"%s/*.log\"]\n"
                     "    parse:\n"
                     "      - json: {}\n"
                     "      - labels: [level, request_id, traceId, svc]\n"
                     "      - labels: {client: remote_addr, route: http.path, env: stage}\n"
                     "  - name: other\n"
                     "    type: file\n"
                     "    paths: [\"%s/x.txt\"]\n"
                     "    parse:\n"
                     "      - json: {}\n"
                     "      - labels: [user_id]\n"
                     "sinks:\n"
                     "  - name: lk\n"
                     "    type: loki\n"
                     "    inputs: [app]\n"
                     "    url: \"http://127.0.0.1:9/loki/api/v1/push\"\n"
                     "    labels: {cluster: lab, session_id: x}\n",
                     dir, dir, dir);
    assert_int_equal(sl_t_write_file(cfg, yml, (size_t)n), 0);
    /* The inputs' files exist: check's "matches no file" warnings are not
     * what this test counts. */
    char *f1 = sl_t_path(dir, "a.log"), *f2 = sl_t_path(dir, "x.txt");
    assert_int_equal(sl_t_write_file(f1, "", 0), 0);
    assert_int_equal(sl_t_write_file(f2, "", 0), 0);
    free(f1), free(f2);
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, out);
    assert_true(pid > 0);
    assert_int_equal(sl_t_wait(pid, 10000), 0); /* warnings are not errors */
    char *text = sl_t_read_file(out, NULL);
    assert_non_null(text);
    size_t warnings = 0;
    for (const char *p = text; (p = strstr(p, "warning:")); p++) warnings++;
    const char *want[] = {"label 'request_id'",
                          "label 'traceId'",
                          ("label 'client' comes from "
                           "field 'remote_addr'"),
                          "label 'route'",
                          "label 'session_id'",
                          ":8:"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(text, want[i])) fail_msg("missing '%s' in:\n%s", want[i], text);
    /* Low-cardinality labels and inputs the sink does not take: silent. */
    assert_null(strstr(text, "label 'level'"));
    assert_null(strstr(text, "label 'svc'"));
    assert_null(strstr(text, "label 'env'"));
    assert_null(strstr(text, "label 'cluster'"));
    assert_null(strstr(text, "label 'user_id'"));
    assert_int_equal(warnings, 5);
    assert_non_null(strstr(text, "configuration OK"));
    free(text);
    sl_t_rmtree(dir);
    free(dir), free(cfg), free(out);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    sl_log_set_level(getenv("SLUICE_TEST_VERBOSE") ? SL_LOG_DEBUG : SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loki_restarts_and_faults),
        cmocka_unit_test(test_loki_concurrency),
        cmocka_unit_test(test_kafka_kill9),
        cmocka_unit_test(test_bad_destinations),
        cmocka_unit_test(test_check_warns_high_cardinality),
    };
    return sl_t_run_tests(tests);
}
