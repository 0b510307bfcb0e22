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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_reload),
    };
    return sl_t_run_tests(tests);
}
