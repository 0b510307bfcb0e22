/* A destination answering anything, against the real agent: a file input
 * ships to the Loki receiver (tests/loki_receiver.c), which answers the
 * first pushes with a hostile answer (SL_LR_HOSTILE: never answering,
 * headers then a stall, a body dripping a byte a second, an endless chunked
 * body, a 1 GiB body, 1xx answers without end, a redirect, HTTP/0.9, a
 * garbage status line, a header flood, hostile Retry-After values), then
 * normally. Each case: every line arrives, within a bound set by the sink's
 * `timeout` and `max_backoff`; what the agent read of a body without end is
 * bounded; the agent's memory stays small; a redirect is never followed.
 * And SIGTERM while Loki holds a request unanswered: the agent exits within
 * shutdown_timeout, and a restart delivers every line, from the checkpoint
 * and from the spool. Decision 0073. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers.h"
#include "tests/loki_receiver.h"

#define LINES      20000
#define TIMEOUT_MS 2000 /* the sink's timeout: a stalled request ends here */

typedef struct rig {
    char *dir, *cfg, *log, *in, *data;
    int mport;
    pid_t pid;
    sl_lr *lr;
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
    assert_int_equal(sl_t_append_ids(r->in, 0, LINES, " hostile destination test"), 0);
}

static void rig_config(rig *r, int port, int timeout_ms, const char *extra)
{
    r->mport = sl_t_free_port();
    char yml[4096];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s\n"
                     "log: {level: info}\n"
                     "shutdown_timeout: 2s\n"
                     "metrics: {listen: \"127.0.0.1:%d\"}\n"
                     "inputs:\n"
                     "  - name: in\n"
                     "    type: file\n"
                     "    paths: [\"%s\"]\n"
                     "    start_at: beginning\n"
                     "    poll_interval: 50ms\n"
                     "    checkpoint_interval: 100ms\n"
                     "sinks:\n"
                     "  - name: lk\n"
                     "    type: loki\n"
                     "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                     "    timeout: %dms\n"
                     "    min_backoff: 20ms\n"
                     "    max_backoff: 300ms\n"
                     "    max_batch_wait: 20ms\n"
                     "    max_batch_bytes: 8KiB\n"
                     "    labels: {job: hostile}\n"
                     "%s",
                     r->data, r->mport, r->in, port, timeout_ms, extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof yml);
    assert_int_equal(sl_t_write_file(r->cfg, yml, (size_t)n), 0);
}

static bool started(void *arg)
{
    rig *r = arg;
    return sl_t_file_has(r->log, "agent_started");
}

static void rig_start(rig *r)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    sl_t_kill_at_exit(r->pid);
    assert_true(sl_t_wait_until(started, r, sl_t_scaled_ms(20000)));
}

static void rig_free(rig *r)
{
    if (r->pid > 0) sl_t_stop(r->pid, SIGKILL, 10000);
    sl_t_kill_at_exit(0);
    if (r->lr) sl_lr_stop(r->lr);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", r->dir);
    else
        sl_t_rmtree(r->dir);
    free(r->dir), free(r->cfg), free(r->log), free(r->in), free(r->data);
}

/* Distinct ids below LINES among the receiver's entries, and repeats. */
static long distinct_ids(sl_lr *lr, long *dups)
{
    unsigned char seen[LINES] = {0};
    long distinct = 0, d = 0;
    size_t n = sl_lr_nentries(lr);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long id = sl_t_parse_id(e->line, e->line + e->line_n, "id=");
        if (id < 0 || id >= LINES) continue;
        if (seen[id]++)
            d++;
        else
            distinct++;
    }
    if (dups) *dups = d;
    return distinct;
}

static bool all_arrived(void *arg)
{
    return distinct_ids(arg, NULL) == LINES;
}

/* Every line arrived and the sink counts every record delivered: a push
 * stored before a hostile answer arrives at once, its answer comes after. */
static bool all_delivered(void *arg)
{
    rig *r = arg;
    return all_arrived(r->lr) && sl_t_metric(r->mport, "sluice_sink_records_total") >= LINES;
}

typedef struct hostile_case {
    const char *what;
    int action, code, param, repeat;
    bool dups_ok;      /* stored, then a failure: resent, so lines may repeat */
    bool error;        /* the answer is a transport error to the agent */
    bool delivered;    /* its status stands: delivered at the first answer */
    int64_t max_bytes; /* > 0: what the receiver may have sent, at most */
} hostile_case;

/* One case: the hostile answer to the first `repeat` pushes, then Loki as
 * it should be. Returns the seconds until every line arrived. */
static double run_case(const hostile_case *hc)
{
    rig r;
    rig_init(&r, "loki-hostile");
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    assert_int_equal(sl_lr_fault(r.lr, hc->action, hc->code, hc->param, hc->repeat), 0);
    rig_config(&r, sl_lr_port(r.lr), TIMEOUT_MS, NULL);
    int64_t t0 = sl_t_now_ms();
    rig_start(&r);
    /* Each hostile push costs at most the timeout, plus a backoff. */
    int bound = sl_t_scaled_ms(hc->repeat * (TIMEOUT_MS + 1000) + 10000);
    bool arrived = sl_t_wait_until(all_delivered, &r, bound);
    double took = (double)(sl_t_now_ms() - t0) / 1000.0;
    long dups = 0, got = distinct_ids(r.lr, &dups);
    sl_lr_stats st;
    sl_lr_get_stats(r.lr, &st);
    double errors = sl_t_metric(r.mport, "sluice_sink_requests_total");
    char *text = NULL;
    int status = sl_t_http_get(r.mport, "/metrics", &text);
    double err_requests = -1;
    if (status == 200)
        err_requests =
            sl_t_series_value(text, "sluice_sink_requests_total{sink=\"lk\",code=\"error\"}");
    free(text);
    long rss = sl_t_peak_rss_kib(r.pid);
    fprintf(stderr,
            "%-34s %ld/%d lines in %.2fs, %ld repeats, faults %llu, hostile bytes %llu, "
            "error requests %.0f (of %.0f), peak RSS %ld KiB\n",
            hc->what, got, LINES, took, dups, (unsigned long long)st.faults,
            (unsigned long long)st.hostile_bytes, err_requests, errors, rss);
    if (!arrived) {
        char *log = sl_t_read_file(r.log, NULL);
        fail_msg("%s: %ld of %d lines arrived; agent log:\n%s", hc->what, got, LINES,
                 log ? log : "");
    }
    /* Delivered at the answer: no request failed, none resent. */
    if (hc->delivered) assert_true(err_requests <= 0);
    assert_true(st.faults >= (uint64_t)hc->repeat);
    if (hc->error) assert_true(err_requests >= hc->repeat);
    if (!hc->dups_ok) assert_int_equal(dups, 0);
    if (hc->max_bytes > 0) assert_true((int64_t)st.hostile_bytes <= hc->max_bytes);
    /* The agent never held what a hostile answer streamed. */
    if (!sl_t_sanitized() && rss > 0) assert_true(rss < 200 * 1024);
    rig_free(&r);
    return took;
}

/* Every hostile answer: bounded in time and bytes, nothing lost. */
static void test_hostile_answers(void **state)
{
    (void)state;
    static const hostile_case cases[] = {
        {"accepts, never answers", SL_LR_STALL, 0, 600000, 2, false, true, false, 0},
        {"200 headers, then a stall", SL_LR_HOSTILE, SL_LR_H_HEAD_STALL, 600000, 2, true, true,
         false, 0},
        {"body drips 1 byte/s", SL_LR_HOSTILE, SL_LR_H_DRIP, 0, 2, true, true, false, 0},
        /* Read up to 1 MiB (SL_HTTP_READ_MAX), then the status stands:
         * delivered once; the socket buffers hold the rest of what the
         * receiver could send. */
        {"200, endless chunked body", SL_LR_HOSTILE, SL_LR_H_ENDLESS_CHUNKED, 0, 2, false, false,
         true, 32 << 20},
        {"200, 1 GiB body", SL_LR_HOSTILE, SL_LR_H_HUGE, 200, 2, false, false, true, 32 << 20},
        {"500, 1 GiB body", SL_LR_HOSTILE, SL_LR_H_HUGE, 500, 2, false, false, false, 32 << 20},
        {"200, closes mid-body", SL_LR_MIDCLOSE, 0, 0, 2, false, true, false, 0},
        /* libcurl reads 300 KiB of headers, 1xx ones included (Debian's
         * 7.88.1, CVE-2023-38039): a transport error at once. */
        {"102 Processing without end", SL_LR_HOSTILE, SL_LR_H_INFORMATIONAL, 0, 2, false, true,
         false, 16 << 20},
        {"HTTP/0.9, no status line", SL_LR_HOSTILE, SL_LR_H_HTTP09, 0, 2, true, true, false, 0},
        {"garbage status code", SL_LR_HOSTILE, SL_LR_H_BAD_STATUS, 0, 2, false, true, false, 0},
        {"header flood", SL_LR_HOSTILE, SL_LR_H_HEADER_FLOOD, 0, 2, true, true, false, 16 << 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
}

/* 307 to another server: never followed (it would take the logs and the
 * credentials elsewhere); retried as a misconfiguration, an error log
 * naming the Location, then delivered where the url points. */
static void test_redirect_not_followed(void **state)
{
    (void)state;
    sl_lr_opts lo = {0};
    sl_lr *elsewhere;
    assert_int_equal(sl_lr_start(&lo, &elsewhere), 0);
    rig r;
    rig_init(&r, "loki-redirect");
    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    assert_int_equal(sl_lr_fault(r.lr, SL_LR_HOSTILE, SL_LR_H_REDIRECT, sl_lr_port(elsewhere), 3),
                     0);
    rig_config(&r, sl_lr_port(r.lr), TIMEOUT_MS,
               "    auth: {username: user, password: s3cret-redirect}\n");
    rig_start(&r);
    assert_true(sl_t_wait_until(all_arrived, r.lr, sl_t_scaled_ms(20000)));
    sl_lr_stats st, other;
    sl_lr_get_stats(r.lr, &st);
    sl_lr_get_stats(elsewhere, &other);
    fprintf(stderr, "307: answered %llu times, the other server saw %llu connections\n",
            (unsigned long long)st.faults, (unsigned long long)other.connections);
    assert_int_equal(other.connections, 0);
    assert_int_equal(other.requests, 0);
    char *log = sl_t_read_file(r.log, NULL);
    assert_non_null(log);
    char where[128];
    snprintf(where, sizeof where, "redirecting to http://127.0.0.1:%d/loki/api/v1/push",
             sl_lr_port(elsewhere));
    assert_non_null(strstr(log, "HTTP 307"));
    assert_non_null(strstr(log, where));
    assert_null(strstr(log, "s3cret-redirect"));
    free(log);
    sl_lr_stop(elsewhere);
    rig_free(&r);
}

/* 503 with Retry-After values no server should send (negative, past any
 * integer, a date in year 9999, words, a fraction, empty): each wait is
 * bounded by max_backoff (300 ms), so every line arrives in seconds. */
static void test_hostile_retry_after(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, "loki-retry-after");
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    for (int i = 0; i < SL_LR_HOSTILE_RETRY_AFTER_N; i++)
        assert_int_equal(sl_lr_fault(r.lr, SL_LR_HOSTILE, SL_LR_H_RETRY_AFTER, i, 1), 0);
    rig_config(&r, sl_lr_port(r.lr), TIMEOUT_MS, NULL);
    int64_t t0 = sl_t_now_ms();
    rig_start(&r);
    assert_true(sl_t_wait_until(all_arrived, r.lr, sl_t_scaled_ms(15000)));
    double took = (double)(sl_t_now_ms() - t0) / 1000.0;
    sl_lr_stats st;
    sl_lr_get_stats(r.lr, &st);
    fprintf(stderr, "%d hostile Retry-After values: every line in %.2fs, 503s answered %llu\n",
            SL_LR_HOSTILE_RETRY_AFTER_N, took, (unsigned long long)st.faults);
    assert_int_equal(st.faults, SL_LR_HOSTILE_RETRY_AFTER_N);
    long dups = 0;
    assert_int_equal(distinct_ids(r.lr, &dups), LINES);
    assert_int_equal(dups, 0);
    rig_free(&r);
}

static bool request_held(void *arg)
{
    sl_lr_stats st;
    sl_lr_get_stats(arg, &st);
    return st.faults >= 1;
}

static bool spooled(void *arg)
{
    rig *r = arg;
    return sl_t_metric(r->mport, "sluice_spool_written_records_total") > 0;
}

/* SIGTERM while Loki holds the request unanswered (the sink's timeout is
 * longer than shutdown_timeout): the agent exits 0 within shutdown_timeout
 * + 1 s, and a restart against a healthy Loki delivers every line. With
 * memory only (the checkpoint is read again from what was acknowledged),
 * and with a 4 KiB memory bound and a disk spool that holds the rest. */
static void sigterm_while_stalled(const char *buffer)
{
    rig r;
    rig_init(&r, "loki-stall-term");
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    assert_int_equal(sl_lr_fault(r.lr, SL_LR_STALL, 0, 600000, 1 << 30), 0);
    /* A 60 s timeout: only the stop can end the request in time. */
    rig_config(&r, sl_lr_port(r.lr), 60000, buffer);
    rig_start(&r);
    assert_true(sl_t_wait_until(request_held, r.lr, sl_t_scaled_ms(20000)));
    if (buffer) assert_true(sl_t_wait_until(spooled, &r, sl_t_scaled_ms(20000)));
    double spooled_records = sl_t_metric(r.mport, "sluice_spool_written_records_total");
    int64_t t0 = sl_t_now_ms();
    int rc = sl_t_stop(r.pid, SIGTERM, 30000);
    double took = (double)(sl_t_now_ms() - t0) / 1000.0;
    r.pid = 0;
    sl_t_kill_at_exit(0);
    fprintf(stderr, "SIGTERM with a request held by Loki (%s): exit %d after %.2fs, %.0f spooled\n",
            buffer ? "spool" : "memory", rc, took, spooled_records);
    assert_int_equal(rc, 0);
    assert_true(took < 3.0 + (sl_t_sanitized() ? 2.0 : 0.0));
    assert_int_equal(distinct_ids(r.lr, NULL), 0);
    sl_lr_stop(r.lr);

    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    rig_config(&r, sl_lr_port(r.lr), TIMEOUT_MS, buffer);
    rig_start(&r);
    assert_true(sl_t_wait_until(all_arrived, r.lr, sl_t_scaled_ms(20000)));
    long dups = 0;
    assert_int_equal(distinct_ids(r.lr, &dups), LINES);
    fprintf(stderr, "restart: %d lines delivered, %ld repeats\n", LINES, dups);
    rig_free(&r);
}

static void test_sigterm_while_stalled(void **state)
{
    (void)state;
    sigterm_while_stalled(NULL);
    sigterm_while_stalled(
        "    buffer: {memory_max: 4KiB, spool_max: 1MiB, segment_bytes: 64KiB}\n");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("SL_TEST_FILTER")) cmocka_set_test_filter(getenv("SL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_answers),
        cmocka_unit_test(test_redirect_not_followed),
        cmocka_unit_test(test_hostile_retry_after),
        cmocka_unit_test(test_sigterm_while_stalled),
    };
    return sl_t_run_tests(tests);
}
