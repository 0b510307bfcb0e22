/* SIGTERM while every destination is down and the sink's memory buffer is
 * full (the input blocked in a push): the agent exits 0 within
 * shutdown_timeout + 1 s whatever the destination does, logs one line with
 * what was delivered, spooled and left, and a restart against a healthy
 * destination delivers every line (nothing lost). One test per sink:
 * - Loki answering 500 to everything, without and with a disk spool;
 * - Kafka at 127.0.0.1:<port> where nothing listens (librdkafka's flush and
 *   destroy must be bounded too);
 * - a file sink whose path is a FIFO nobody reads (write() blocks in the
 *   kernel, out of reach of any flag). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "tests/fault/ftest_spool_rig.h"
#include "tests/integration/kafka_harness.h"

#define SHUTDOWN_S 2

/* Exit within shutdown_timeout + 1 s; the sanitizers slow the final spool
 * write and the thread joins, so they get one second more. */
static double exit_limit_s(void)
{
    return SHUTDOWN_S + 1.0 + (sl_t_sanitized() ? 1.0 : 0.0);
}

/* Far more than the sink's memory (256 KiB) plus librdkafka's local queue
 * (4 MiB), so the input blocks whatever the sink. */
static long total_lines(void)
{
    return 100000;
}

typedef struct rig {
    char *dir, *cfg, *log, *in, *data;
    int mport;
    pid_t pid;
} rig;

static void rig_init(rig *r, const char *tag)
{
    memset(r, 0, sizeof *r);
    r->dir = sl_t_tmpdir(tag);
    assert_non_null(r->dir);
    r->cfg = sl_t_path(r->dir, "sluice.yml");
    r->log = sl_t_path(r->dir, "agent.log");
    r->in = sl_t_path(r->dir, "app.log");
    r->data = sl_t_path(r->dir, "data");
    /* Lines carry both spellings the counters look for: id= (Loki rig,
     * file sink) and seq= (Kafka harness). */
    FILE *f = fopen(r->in, "w");
    assert_non_null(f);
    for (long i = 0; i < total_lines(); i++)
        fprintf(f, "id=%08ld seq=%010ld payload text for the shutdown test\n", i, i);
    fclose(f);
}

static void rig_free(rig *r)
{
    if (r->pid > 0) sl_t_stop(r->pid, SIGKILL, 10000);
    sl_t_kill_at_exit(0);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", r->dir);
    else
        sl_t_rmtree(r->dir);
    free(r->dir), free(r->cfg), free(r->log), free(r->in), free(r->data);
}

/* sink: the YAML of one sink item (indented by 2, starting with "  - "). */
static void rig_config(rig *r, const char *sink)
{
    r->mport = sl_t_free_port();
    char yml[8192];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s\n"
                     "log: {level: info}\n"
                     "shutdown_timeout: %ds\n"
                     "metrics: {listen: \"127.0.0.1:%d\"}\n"
                     "inputs:\n"
                     "  - name: in\n"
                     "    type: file\n"
                     "    paths: [\"%s\"]\n"
                     "    start_at: beginning\n"
                     "    poll_interval: 50ms\n"
                     "    checkpoint_interval: 100ms\n"
                     "sinks:\n%s",
                     r->data, SHUTDOWN_S, r->mport, r->in, sink);
    assert_true(n > 0 && (size_t)n < sizeof yml);
    assert_int_equal(sl_t_write_file(r->cfg, yml, (size_t)n), 0);
}

static bool log_has(const rig *r, const char *what)
{
    return sl_t_file_has(r->log, what);
}

static bool started(void *arg)
{
    return log_has(arg, "agent_started");
}

static void rig_start(rig *r)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    sl_t_kill_at_exit(r->pid);
    assert_true(sl_t_wait_until(started, r, sl_t_sanitized() ? 60000 : 20000));
}

typedef struct full_goal {
    rig *r;
    double bytes;
} full_goal;

/* The sink's memory queue holds at least half its bound: with a file far
 * larger than that and the destination down, the input is blocked. */
static bool queue_full(void *arg)
{
    full_goal *g = arg;
    return sl_t_metric(g->r->mport, "sluice_sink_queue_bytes") >= g->bytes / 2;
}

/* SIGTERM, timed; returns seconds. Asserts exit 0 within the limit and the
 * one-line summary. */
static double term_in_time(rig *r, const char *what)
{
    double t0 = srig_now();
    int rc = sl_t_stop(r->pid, SIGTERM, 30000);
    double took = srig_now() - t0;
    r->pid = 0;
    sl_t_kill_at_exit(0);
    char *text = sl_t_read_file(r->log, NULL);
    const char *line = NULL; /* the last one: the log is appended to */
    for (const char *p = text; p && (p = strstr(p, "agent_shutdown")); p++) line = p;
    const char *eol = line ? strchr(line, '\n') : NULL;
    fprintf(stderr, "%s: exit %d after %.2fs (shutdown_timeout %ds, limit %.1fs): %.*s\n", what, rc,
            took, SHUTDOWN_S, exit_limit_s(), line ? (int)(eol ? eol - line : 80) : 0,
            line ? line : "");
    free(text);
    assert_int_equal(rc, 0);
    assert_true(took < exit_limit_s());
    assert_non_null(line);
    return took;
}

static void wait_queue_full(rig *r, double memory_max)
{
    full_goal g = {r, memory_max};
    assert_true(sl_t_wait_until(queue_full, &g, sl_t_sanitized() ? 60000 : 20000));
}

/* ---- Loki ---- */

static void loki_sink_yaml(char *out, size_t cap, int port, const char *buffer)
{
    snprintf(out, cap,
             "  - name: lk\n"
             "    type: loki\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    min_backoff: 20ms\n"
             "    max_backoff: 200ms\n"
             "    max_batch_wait: 20ms\n"
             "    labels: {job: ftest}\n"
             "    buffer: %s\n",
             port, buffer);
}

static long loki_distinct(sl_lr *lr, long total)
{
    unsigned char *seen = calloc((size_t)total, 1);
    long distinct = 0;
    size_t n = sl_lr_nentries(lr);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long id = sl_t_parse_id(e->line, e->line + e->line_n, "id=");
        if (id >= 0 && id < total && !seen[id]++) distinct++;
    }
    free(seen);
    return distinct;
}

static bool answered_500(void *arg)
{
    sl_lr_stats st;
    sl_lr_get_stats(arg, &st);
    return st.by_code[500] > 0;
}

static void loki_outage(const char *tag, const char *buffer)
{
    long total = total_lines();
    rig r;
    rig_init(&r, tag);
    sl_lr_opts lo = {0};
    sl_lr *down;
    assert_int_equal(sl_lr_start(&lo, &down), 0);
    assert_int_equal(sl_lr_fault(down, SL_LR_STATUS, 500, 0, 1 << 30), 0);
    char sink[1024];
    loki_sink_yaml(sink, sizeof sink, sl_lr_port(down), buffer);
    rig_config(&r, sink);
    rig_start(&r);
    wait_queue_full(&r, 256 << 10);
    /* The queue can fill before the first request is answered (a loaded
     * machine, ASan): the stop must find the sink failing, not starting. */
    assert_true(sl_t_wait_until(answered_500, down, sl_t_sanitized() ? 60000 : 20000));
    term_in_time(&r, tag);
    assert_false(log_has(&r, "sink_stop_stuck"));
    sl_lr_stats st;
    sl_lr_get_stats(down, &st);
    assert_true(st.by_code[500] > 0);
    sl_lr_stop(down);

    /* Restart against a healthy Loki: every line arrives. */
    sl_lr *up;
    assert_int_equal(sl_lr_start(&lo, &up), 0);
    loki_sink_yaml(sink, sizeof sink, sl_lr_port(up), buffer);
    rig_config(&r, sink);
    rig_start(&r);
    long got = 0;
    for (int waited = 0; waited < 60000 && (got = loki_distinct(up, total)) < total; waited += 50)
        sl_t_sleep_ms(50);
    fprintf(stderr, "%s restart: %ld of %ld lines delivered\n", tag, got, total);
    assert_int_equal(got, total);
    term_in_time(&r, tag);
    sl_lr_stop(up);
    rig_free(&r);
}

static void test_loki_500_memory_only(void **st)
{
    (void)st;
    loki_outage("shut-loki", "{memory_max: 256KiB}");
}

static void test_loki_500_with_spool(void **st)
{
    (void)st;
    /* The spool fills too (1 MiB), so the input blocks with both full. */
    loki_outage("shut-loki-spool", "{memory_max: 256KiB, spool_max: 1MiB, segment_bytes: 128KiB}");
}

/* ---- Kafka ---- */

static void kafka_sink_yaml(char *out, size_t cap, const char *brokers)
{
    snprintf(out, cap,
             "  - name: kf\n"
             "    type: kafka\n"
             "    brokers: [\"%s\"]\n"
             "    topic: logs\n"
             "    buffer: {memory_max: 256KiB}\n",
             brokers);
}

static void test_kafka_unreachable(void **st)
{
    (void)st;
    long total = total_lines();
    rig r;
    rig_init(&r, "shut-kafka");
    char brokers[64], sink[1024];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", sl_t_free_port()); /* nothing listens */
    kafka_sink_yaml(sink, sizeof sink, brokers);
    rig_config(&r, sink);
    rig_start(&r);
    /* librdkafka takes what fits its local queue; past that the sink's
     * queue fills and the input blocks. */
    wait_queue_full(&r, 256 << 10);
    term_in_time(&r, "kafka unreachable");
    assert_false(log_has(&r, "sink_stop_stuck"));

    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 1, 1);
    kh_consumer *c = kh_consume(&h, "logs:1", (uint64_t)total);
    kafka_sink_yaml(sink, sizeof sink, h.bootstraps);
    rig_config(&r, sink);
    rig_start(&r);
    bool all = kh_wait_consumed(c, (uint64_t)total, 60000);
    fprintf(stderr, "kafka restart: %llu of %ld lines delivered\n",
            (unsigned long long)kh_consumed(c), total);
    assert_true(all);
    term_in_time(&r, "kafka healthy");
    kh_consumer_free(c);
    kh_free(&h);
    rig_free(&r);
}

/* ---- file sink on a FIFO ---- */

static void test_file_sink_blocked(void **st)
{
    (void)st;
    long total = total_lines();
    rig r;
    rig_init(&r, "shut-fifo");
    char *fifo = sl_t_path(r.dir, "out.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* Our read end keeps what the agent wrote into the pipe after it
     * exits; we read it only at the end. */
    int rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(rfd >= 0);
    char sink[1024];
    snprintf(sink, sizeof sink,
             "  - name: fs\n"
             "    type: file\n"
             "    path: \"%s\"\n"
             "    buffer: {memory_max: 256KiB}\n",
             fifo);
    rig_config(&r, sink);
    rig_start(&r);
    wait_queue_full(&r, 256 << 10);
    term_in_time(&r, "file sink blocked in write");
    assert_true(log_has(&r, "sink_stop_stuck"));

    /* What reached the pipe, then a restart into a regular file. */
    unsigned char *seen = calloc((size_t)total, 1);
    long distinct = 0;
    size_t cap = 1 << 20, len = 0;
    char *pipe_text = malloc(cap + 1);
    for (ssize_t k; len < cap && (k = read(rfd, pipe_text + len, cap - len)) > 0;) len += (size_t)k;
    close(rfd);
    pipe_text[len] = '\0';
    char *out = sl_t_path(r.dir, "out.log");
    snprintf(sink, sizeof sink,
             "  - name: fs\n"
             "    type: file\n"
             "    path: \"%s\"\n",
             out);
    rig_config(&r, sink);
    rig_start(&r);
    long want_after = total; /* at most; the pipe holds the rest */
    for (int waited = 0; waited < 60000; waited += 50) {
        size_t n = 0;
        char *text = sl_t_read_file(out, &n);
        memset(seen, 0, (size_t)total);
        distinct = 0;
        for (int pass = 0; pass < 2; pass++) {
            const char *p = pass ? (text ? text : "") : pipe_text;
            const char *end = p + (pass ? n : len);
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl) break;
                long id = sl_t_parse_id(p, nl, "id=");
                if (id >= 0 && id < total && !seen[id]++) distinct++;
                p = nl + 1;
            }
        }
        free(text);
        if (distinct >= want_after) break;
        sl_t_sleep_ms(50);
    }
    fprintf(stderr, "file sink restart: %ld of %ld lines (%zu bytes were in the pipe)\n", distinct,
            total, len);
    assert_int_equal(distinct, total);
    term_in_time(&r, "file sink healthy");
    free(seen);
    free(pipe_text);
    free(out);
    free(fifo);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loki_500_memory_only),
        cmocka_unit_test(test_loki_500_with_spool),
        cmocka_unit_test(test_kafka_unreachable),
        cmocka_unit_test(test_file_sink_blocked),
    };
    return sl_t_run_tests(tests);
}
