/* SIGHUP under load: a second sink is added, then changed, while records
 * flow through the unchanged input and Loki sink (spool on, destination
 * failing part of the time): none of them is lost or duplicated. */
#include "tests/fault/ftest_spool_rig.h"

#define BUF "{memory_max: 256KiB, spool_max: 1GiB}"

static void test_sighup_reload(void **st)
{
    (void)st;
    long total = sl_t_sanitized() ? 40000 : 200000, step = total / 10;
    srig r;
    srig_init(&r, "spool-reload", BUF, NULL, NULL);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, sl_t_scaled_ms(10000)));
    char *out2 = sl_t_path(r.dir, "second.txt"), *out3 = sl_t_path(r.dir, "third.txt");
    char extra[1024];
    long written = 0;
    for (int k = 0; k < 10; k++) {
        srig_append_ids(r.in, written, written + step, 0);
        written += step;
        srig_outage(&r, k % 3 == 1);
        sl_t_sleep_ms(150);
        if (k == 3 || k == 6) {
            snprintf(extra, sizeof extra,
                     "  - name: second\n    type: file\n    inputs: [in]\n    path: %s\n",
                     k == 3 ? out2 : out3);
            srig_write_cfg(&r, BUF, NULL, NULL, extra);
            assert_int_equal(kill(r.pid, SIGHUP), 0);
        }
    }
    srig_outage(&r, false);
    assert_true(srig_wait_ids(&r, total, total, 60000));
    /* A graceful stop sends what is left: every duplicate is in by then. */
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    stally t = srig_count(&r, total, NULL);
    long l2 = sl_t_count_lines(out2), l3 = sl_t_count_lines(out3);
    char *log = sl_t_read_file(r.log, NULL);
    int reloads = 0;
    for (char *p = log; p && (p = strstr(p, "event=reloaded")); p++) reloads++;
    free(log);
    fprintf(stderr,
            "SIGHUP x%d: loki sink sent=%ld received=%ld lost=%ld dups=%ld; second sink wrote %ld "
            "then %ld lines\n",
            reloads, total, t.distinct, total - t.distinct, t.dups, l2, l3);
    assert_int_equal(reloads, 2);
    assert_int_equal(t.distinct, total);
    assert_int_equal(t.dups, 0);
    assert_true(l3 > 0); /* the second sink runs (l2 may be 0: it had little time) */
    free(out2), free(out3);
    srig_free(&r);
}

/* For sl_t_wait_until: the Loki sink's receiver has at least `ids`
 * distinct ids and the slow sink's receiver holds a request (stalling, or
 * waiting its delay before answering). */
typedef struct fanout_goal {
    srig *r;
    sl_lr *slow;
    long max_id, ids;
} fanout_goal;

static stally count_in(srig *r, sl_lr *lr, long max_id)
{
    srig other = *r;
    other.lr = lr;
    return srig_count(&other, max_id, NULL);
}

static bool fanout_blocked(void *arg)
{
    fanout_goal *g = arg;
    sl_lr_stats st;
    sl_lr_get_stats(g->slow, &st);
    return (st.faults >= 1 || st.most_in_flight >= 1) &&
           count_in(g->r, g->r->lr, g->max_id).distinct >= g->ids;
}

static bool fanout_all_in(void *arg)
{
    fanout_goal *g = arg;
    return count_in(g->r, g->r->lr, g->max_id).distinct >= g->max_id &&
           count_in(g->r, g->slow, g->max_id).distinct >= g->max_id;
}

static void write_fanout_cfg(srig *r, sl_lr *slow, const char *max_batch)
{
    char extra[1024];
    snprintf(extra, sizeof extra,
             "  - name: slow\n    type: loki\n    inputs: [in]\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    min_backoff: 20ms\n    max_backoff: 200ms\n    max_batch_wait: 20ms\n"
             "    max_batch_bytes: %s\n    timeout: 10m\n    labels: {job: slow}\n"
             "    buffer: {memory_max: 1KiB}\n",
             sl_lr_port(slow), max_batch);
    srig_write_cfg(r, "{memory_max: 16MiB}", NULL, "shutdown_timeout: 60s\n", extra);
}

/* One input, two sinks, and a SIGHUP while the input is blocked pushing a
 * batch to the second (full: its one request is held by its receiver)
 * after the first took it. Until the fix the stop refused that copy, so
 * the input's checkpoint stayed before a batch the first sink delivered,
 * and the restart sent it to that sink again: 4,096 duplicates (one file
 * batch), what test_sighup_reload hit about once in eight runs on a loaded
 * machine. answered: the request held at the signal is answered 204 during
 * the drain (else it stalls and fails, and is sent again): either way
 * neither receiver gets a record twice. */
static void blocked_fanout(bool answered)
{
    const long batch = 4096, total = 10 * batch;
    /* The receiver holds the request past the test's wait and the reload's
     * start, and well within shutdown_timeout, so both sinks drain the old
     * pipeline. */
    int hold_ms = sl_t_scaled_ms(answered ? 1000 : 4000);
    sl_lr *slow = NULL;
    sl_lr_opts lo = {.delay_ms = answered ? hold_ms : 0};
    assert_int_equal(sl_lr_start(&lo, &slow), 0);
    if (!answered) assert_int_equal(sl_lr_fault(slow, SL_LR_STALL, 0, hold_ms, 1), 0);
    srig r;
    srig_init(&r, "spool-reload-fanout", "{memory_max: 16MiB}", NULL, NULL);
    /* The slow sink holds three batches at most: one in its request, one
     * waiting for that request's slot, one in its 1 KiB buffer; the fourth
     * blocks the input after the Loki sink took it. */
    write_fanout_cfg(&r, slow, "1KiB");
    srig_append_ids(r.in, 0, total, 0);
    srig_start(&r);
    fanout_goal g = {.r = &r, .slow = slow, .max_id = total, .ids = 4 * batch};
    assert_true(sl_t_wait_until(fanout_blocked, &g, sl_t_scaled_ms(20000)));
    long before = count_in(&r, r.lr, total).distinct;
    write_fanout_cfg(&r, slow, "1MiB"); /* the rest in few requests */
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    assert_true(sl_t_wait_log(r.log, "event=reloaded", 1, sl_t_scaled_ms(60000)));
    assert_true(sl_t_wait_until(fanout_all_in, &g, sl_t_scaled_ms(60000)));
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    stally a = count_in(&r, r.lr, total), b = count_in(&r, slow, total);
    fprintf(stderr,
            "blocked fan-out across SIGHUP, held request %s: loki sink had %ld ids at the "
            "signal; received=%ld dups=%ld; slow sink received=%ld dups=%ld\n",
            answered ? "answered" : "failed", before, a.distinct, a.dups, b.distinct, b.dups);
    assert_int_equal(a.distinct, total);
    assert_int_equal(b.distinct, total);
    assert_int_equal(a.dups, 0);
    assert_int_equal(b.dups, 0);
    srig_free(&r);
    sl_lr_stop(slow);
}

static void test_sighup_blocked_fanout_request_fails(void **st)
{
    (void)st;
    blocked_fanout(false);
}

static void test_sighup_blocked_fanout_request_answered(void **st)
{
    (void)st;
    blocked_fanout(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_reload),
        cmocka_unit_test(test_sighup_blocked_fanout_request_fails),
        cmocka_unit_test(test_sighup_blocked_fanout_request_answered),
    };
    return sl_t_run_tests(tests);
}
