/* Outage longer than memory: a tiny memory queue, the destination failing
 * with 500 while 300,000 records are read; they go to the disk spool (seen
 * growing in sluice_spool_bytes), all arrive once the destination is back,
 * and the spool empties. */
#include "tests/fault/ftest_spool_rig.h"

static void test_outage_longer_than_memory(void **st)
{
    (void)st;
    long total = sl_t_sanitized() ? 100000 : 300000;
    srig r;
    srig_init(&r, "spool-outage", "{memory_max: 256KiB, spool_max: 1GiB, fsync: batch}", NULL,
              NULL);
    srig_outage(&r, true);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, sl_t_scaled_ms(10000)));
    double t0 = srig_now();
    srig_append_ids(r.in, 0, total, 0);
    /* Once everything is read, all but what memory and the sink hold
     * (256 KiB of text plus the batches in flight) must be in the spool. */
    double max_bytes = 0, written = 0, read = 0;
    for (int i = 0; i < 300; i++) {
        double b = srig_metric(&r, "sluice_spool_bytes");
        if (b > max_bytes) max_bytes = b;
        read = srig_metric(&r, "sluice_input_records_total");
        double w = srig_metric(&r, "sluice_spool_written_records_total");
        if (read >= (double)total && w == written && w > 0) break;
        written = w;
        sl_t_sleep_ms(200);
    }
    sl_lr_stats ls;
    sl_lr_get_stats(r.lr, &ls);
    fprintf(
        stderr,
        "outage: %.0f read, spool grew to %.0f bytes, %.0f records spooled, %llu requests failed\n",
        read, max_bytes, written, (unsigned long long)ls.faults);
    assert_true(read >= (double)total);
    /* Outside the spool only memory_max and the sink's one request in
     * retry (max_batch_bytes, 1 MiB) may hold records, whatever the total. */
    const double line_bytes = 46, held_max = 256 * 1024 + (1 << 20) + 256 * 1024;
    assert_true((read - written) * line_bytes <= held_max);
    assert_true(max_bytes > 0); /* compressed: sequential ids take ~1 byte each */
    assert_int_equal(sl_lr_nentries(r.lr), 0);
    sl_t_sleep_ms(1000); /* the destination stays down a while longer */
    assert_int_equal(sl_lr_nentries(r.lr), 0);
    srig_outage(&r, false);
    double t1 = srig_now();
    assert_true(srig_wait_ids(&r, total, total, 60000));
    double t2 = srig_now();
    /* The spool is drained: nothing pending, delivered segments deleted. */
    double pending = -1, bytes = -1;
    for (int i = 0; i < 100; i++) {
        pending = srig_metric(&r, "sluice_spool_records_pending");
        bytes = srig_metric(&r, "sluice_spool_bytes");
        if (pending == 0 && bytes == 0) break;
        sl_t_sleep_ms(100);
    }
    stally t = srig_count(&r, total, NULL);
    fprintf(stderr,
            "outage: sent=%ld received=%ld lost=%ld dups=%ld; spool after: %.0f bytes, %.0f "
            "pending; outage %.1fs, drain %.1fs\n",
            total, t.distinct, total - t.distinct, t.dups, bytes, pending, t1 - t0, t2 - t1);
    assert_int_equal(t.distinct, total);
    assert_true(pending == 0);
    assert_true(bytes == 0);
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outage_longer_than_memory),
    };
    return sl_t_run_tests(tests);
}
