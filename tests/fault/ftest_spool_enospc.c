/* Disk full: data_dir (spool and checkpoints) on a 2 MiB tmpfs, the
 * destination down, far more data than fits. The agent blocks (counting
 * write errors), then recovers when the filesystem grows: nothing lost.
 * Needs root for mount(2); skipped with a message otherwise. */
#include <errno.h>
#include <sys/mount.h>

#include "tests/fault/ftest_spool_rig.h"

static void append_noisy(const char *path, long from, long to)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    uint64_t x = 0x2545f4914f6cdd1dull ^ (uint64_t)from;
    for (long i = from; i < to; i++) {
        n += (size_t)snprintf(buf + n, cap - n, "id=%08ld ", i);
        for (int k = 0; k < 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            n += (size_t)snprintf(buf + n, cap - n, "%016llx", (unsigned long long)x);
        }
        buf[n++] = '\n';
        if (n > cap - 128) {
            assert_int_equal(sl_t_append_file(path, buf, n), 0);
            n = 0;
        }
    }
    if (n) assert_int_equal(sl_t_append_file(path, buf, n), 0);
    free(buf);
}

/* The tmpfs this test mounted, unmounted by the teardown when a failed
 * assertion jumped past the test's own umount: otherwise the mount point
 * (and the folder holding it) would outlive the test. */
static char mounted[4096];

static int unmount_left(void **st)
{
    (void)st;
    if (*mounted) umount2(mounted, MNT_DETACH);
    *mounted = '\0';
    return 0;
}

static void test_enospc(void **st)
{
    (void)st;
    long total = 100000; /* ~3.6 MiB compressed: well over the 2 MiB disk */
    srig r;
    srig_init(&r, "spool-enospc", "{memory_max: 256KiB, spool_max: 1GiB, segment_bytes: 256KiB}",
              NULL, NULL);
    mkdir(r.data, 0700);
    if (mount("tmpfs", r.data, "tmpfs", 0, "size=2m,mode=0700") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): skipping the ENOSPC test\n", strerror(errno));
        srig_free(&r);
        skip();
    }
    snprintf(mounted, sizeof mounted, "%s", r.data);
    srig_outage(&r, true);
    append_noisy(r.in, 0, total);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, 10000));
    double errs = 0, read = 0;
    for (int i = 0; i < 150 && errs == 0; i++) {
        sl_t_sleep_ms(200);
        errs = srig_metric(&r, "sluice_spool_write_errors_total");
    }
    sl_t_sleep_ms(1000);
    read = srig_metric(&r, "sluice_input_records_total");
    sl_t_sleep_ms(1000);
    double read2 = srig_metric(&r, "sluice_input_records_total");
    fprintf(stderr,
            "enospc: %.0f spool write errors, input blocked at %.0f/%ld (%.0f a second later)\n",
            errs, read, total, read2);
    assert_true(errs > 0);
    assert_true(read < (double)total && read2 == read);
    assert_true(kill(r.pid, 0) == 0); /* still running */
    /* Space returns; then the destination. */
    assert_int_equal(mount("tmpfs", r.data, "tmpfs", MS_REMOUNT, "size=256m,mode=0700"), 0);
    /* The input goes on once the spool can take what it reads: the event,
     * before the destination comes back. */
    srig_goal resumed = {&r, "sluice_input_records_total", read2 + 1};
    assert_true(sl_t_wait_until(srig_metric_at_least, &resumed, sl_t_scaled_ms(30000)));
    srig_outage(&r, false);
    bool all = srig_wait_ids(&r, total, total, 60000);
    stally t = srig_count(&r, total, NULL);
    fprintf(stderr, "enospc: sent=%ld received=%ld lost=%ld dups=%ld\n", total, t.distinct,
            total - t.distinct, t.dups);
    int rc = srig_stop(&r, SIGTERM);
    unmount_left(NULL);
    assert_true(all);
    assert_int_equal(t.distinct, total);
    assert_int_equal(rc, 0);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_enospc, unmount_left),
    };
    return sl_t_run_tests(tests);
}
