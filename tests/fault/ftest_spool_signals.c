/* Violent and graceful stops of an agent that uses its disk spool:
 * - kill -9 at 20 random moments while records are written and the
 *   destination fails part of the time: nothing lost, duplicates reported;
 * - SIGTERM under load with requests stalled in flight: exit 0 within
 *   shutdown_timeout, and a restart delivers the rest. */
#include "tests/fault/ftest_spool_rig.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void test_kill9_chaos(void **st)
{
    (void)st;
    int kills = sl_t_sanitized() ? 8 : 20;
    long total = sl_t_sanitized() ? 40000 : 200000;
    srig r;
    srig_init(&r, "spool-kill9", "{memory_max: 64KiB, spool_max: 1GiB, fsync: batch}", NULL, NULL);
    long written = 0;
    double t0 = srig_now();
    for (int k = 0; k < kills; k++) {
        long next = total * (k + 1) / (kills + 1);
        srig_append_ids(r.in, written, next, 0);
        written = next;
        srig_outage(&r, rnd(2) == 0);
        srig_start(&r);
        /* The kill lands at a random moment of the run: the point of the
         * test, not a wait for something. */
        sl_t_sleep_ms(150 + (int)rnd(600));
        assert_int_equal(srig_stop(&r, SIGKILL), 128 + SIGKILL);
    }
    srig_append_ids(r.in, written, total, 0);
    srig_outage(&r, false);
    srig_start(&r);
    assert_true(srig_wait_ids(&r, total, total, 60000));
    /* A graceful stop sends what is left: every duplicate is in by then. */
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    stally t = srig_count(&r, total, NULL);
    fprintf(stderr, "kill -9 x%d: sent=%ld received=%ld lost=%ld dups=%ld other=%ld in %.1fs\n",
            kills, total, t.distinct, total - t.distinct, t.dups, t.other, srig_now() - t0);
    assert_int_equal(t.distinct, total);
    srig_free(&r);
}

static void test_sigterm_under_load(void **st)
{
    (void)st;
    long total = sl_t_sanitized() ? 50000 : 300000;
    srig r;
    srig_init(&r, "spool-term", "{memory_max: 1MiB, spool_max: 1GiB, fsync: batch}", NULL,
              "shutdown_timeout: 3s\n");
    srig_append_ids(r.in, 0, total, 0);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, sl_t_scaled_ms(10000)));
    /* Under way, then requests that hang far longer than the deadline. */
    srig_entries_goal under_way = {&r, (size_t)total / 4};
    sl_t_wait_until(srig_entries_at_least, &under_way, sl_t_scaled_ms(4000));
    sl_lr_stats lst;
    sl_lr_get_stats(r.lr, &lst);
    assert_int_equal(sl_lr_faults(r.lr, "stall:20000*4"), 0);
    srig_faults_goal stalled = {&r, lst.faults + 1};
    assert_true(sl_t_wait_until(srig_faults_at_least, &stalled, sl_t_scaled_ms(10000)));
    size_t before = sl_lr_nentries(r.lr);
    double t0 = srig_now();
    int rc = srig_stop(&r, SIGTERM);
    double took = srig_now() - t0;
    /* shutdown_timeout + 1 s; the sanitizers slow the final spool write
     * and the joins, so one more second there. */
    double limit = 3.0 + 1.0 + (sl_t_sanitized() ? 1.0 : 0.0);
    fprintf(stderr,
            "SIGTERM: exit %d after %.2fs (shutdown_timeout 3s, limit %.1fs), %zu of %ld "
            "delivered\n",
            rc, took, limit, before, total);
    assert_int_equal(rc, 0);
    assert_true(took < limit);
    /* The stalled requests were aborted in time: nothing was left behind
     * (a sink left behind saves no checkpoint, so all would come again). */
    char *text = sl_t_read_file(r.log, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "sink_stop_stuck"));
    free(text);
    srig_start(&r);
    assert_true(srig_wait_ids(&r, total, total, 60000));
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    stally t = srig_count(&r, total, NULL);
    fprintf(stderr, "SIGTERM restart: sent=%ld received=%ld lost=%ld dups=%ld\n", total, t.distinct,
            total - t.distinct, t.dups);
    assert_int_equal(t.distinct, total);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_chaos),
        cmocka_unit_test(test_sigterm_under_load),
    };
    return sl_t_run_tests(tests);
}
