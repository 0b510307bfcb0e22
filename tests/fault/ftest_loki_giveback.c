/* Issue 14.2: kill -9 during a Loki outage. While the Loki sink retries, it
 * gives the batch back to its buffer, so memory that fills up moves it to
 * the spool and the input's checkpoint keeps moving; after a kill, the
 * records read again are only those that were in memory (never delivered),
 * not everything read since the outage began. 5 kills during a 60 s outage
 * (30 s under the sanitizers: the kill count is kept), then the
 * destination comes back: nothing lost, and duplicates (in bytes of line
 * text) at most 2 x max_batch_bytes per kill. */
#include "tests/fault/ftest_spool_rig.h"

#define MAX_BATCH_BYTES (64 * 1024)
#define LINE_BYTES      46 /* "id=%08ld some payload text for the spool\n" */

static void test_kill9_during_outage(void **st)
{
    (void)st;
    const int kills = 5;
    const double outage_s = sl_t_sanitized() ? 30 : 60;
    const long total = sl_t_sanitized() ? 60000 : 240000;
    srig r;
    srig_init(&r, "loki-giveback",
              "{memory_max: 256KiB, spool_max: 1GiB, fsync: batch}\n"
              "    max_batch_bytes: 64KiB",
              NULL, NULL);
    srig_outage(&r, true);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, 20000));
    double t0 = srig_now();
    long written = 0;
    const int steps = 12;
    int killed = 0;
    for (int step = 1; step <= steps; step++) {
        long next = total * step / steps;
        srig_append_ids(r.in, written, next, 0);
        written = next;
        /* Wait until the agent has read what was written (or the step's
         * share of the outage is over), then, on every second step after
         * the first, kill it and start it again. */
        double step_end = t0 + outage_s * step / steps;
        while (srig_now() < step_end) {
            double read = srig_metric(&r, "sluice_input_records_total");
            if (read < 0) assert_true(sl_t_wait_until(srig_metric_ready, &r, 20000));
            sl_t_sleep_ms(100);
        }
        if (step % 2 == 0 && killed < kills) {
            assert_int_equal(srig_stop(&r, SIGKILL), 128 + SIGKILL);
            killed++;
            srig_start(&r);
            assert_true(sl_t_wait_until(srig_metric_ready, &r, 20000));
        }
    }
    assert_int_equal(killed, kills);
    assert_int_equal(sl_lr_nentries(r.lr), 0); /* the outage held */
    double outage = srig_now() - t0;
    srig_outage(&r, false);
    assert_true(srig_wait_ids(&r, total, total, 120000));
    sl_t_sleep_ms(500);
    stally t = srig_count(&r, total, NULL);
    const long bound_lines = (long)kills * 2 * MAX_BATCH_BYTES / LINE_BYTES;
    fprintf(stderr,
            "kill -9 x%d during a %.0fs outage: sent=%ld received=%ld lost=%ld dups=%ld "
            "(%ld bytes; bound %d x 2 x %d = %ld bytes = %ld lines) other=%ld\n",
            kills, outage, total, t.distinct, total - t.distinct, t.dups, t.dups * LINE_BYTES,
            kills, MAX_BATCH_BYTES, (long)kills * 2 * MAX_BATCH_BYTES, bound_lines, t.other);
    assert_int_equal(t.distinct, total);
    assert_true(t.dups <= bound_lines);
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_during_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
