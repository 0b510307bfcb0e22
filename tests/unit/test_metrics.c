#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/metrics.h"

static void test_render_groups_families(void **st)
{
    (void)st;
    sl_metrics_reset();
    sl_metric *a = sl_counter("sluice_test_records_total", "Records.", "input=\"a\"");
    sl_metric *g = sl_gauge("sluice_test_queue_bytes", "Queue.", "");
    sl_metric *b = sl_counter("sluice_test_records_total", "Records.", "input=\"b\"");
    sl_metric *t = sl_counter("sluice_test_blocked_seconds_total", "Blocked.", "");
    assert_ptr_equal(a, sl_counter("sluice_test_records_total", "Records.", "input=\"a\""));
    sl_metric_add(a, 5);
    sl_metric_inc(b);
    sl_metric_set(g, 42);
    sl_metric_gauge_add(g, -2);
    sl_metric_add(t, 1500000000); /* ns, shown as seconds */
    char *out;
    size_t len;
    assert_int_equal(sl_metrics_render(&out, &len), SL_OK);
    assert_int_equal(strlen(out), len);
    const char *expect = "# HELP sluice_test_records_total Records.\n"
                         "# TYPE sluice_test_records_total counter\n"
                         "sluice_test_records_total{input=\"a\"} 5\n"
                         "sluice_test_records_total{input=\"b\"} 1\n"
                         "# HELP sluice_test_queue_bytes Queue.\n"
                         "# TYPE sluice_test_queue_bytes gauge\n"
                         "sluice_test_queue_bytes 40\n"
                         "# HELP sluice_test_blocked_seconds_total Blocked.\n"
                         "# TYPE sluice_test_blocked_seconds_total counter\n"
                         "sluice_test_blocked_seconds_total 1.500000000\n";
    assert_string_equal(out, expect);
    free(out);
    assert_int_equal(sl_metrics_value("sluice_test_records_total", "input=\"a\""), 5);
    assert_int_equal(sl_metrics_value("sluice_test_absent", ""), -1);
    sl_metrics_reset();
}

static void test_label_escaping(void **st)
{
    (void)st;
    char buf[128];
    sl_metric_labels(buf, sizeof buf, "sink", "a\"b\\c\nd", "reason", "x");
    assert_string_equal(buf, "sink=\"a\\\"b\\\\c\\nd\",reason=\"x\"");
}

static void *bump(void *arg)
{
    for (int i = 0; i < 100000; i++) sl_metric_inc(arg);
    return NULL;
}

static void test_concurrent_updates(void **st)
{
    (void)st;
    sl_metrics_reset();
    sl_metric *m = sl_counter("sluice_test_concurrent_total", "", "");
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, bump, m);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    assert_int_equal(sl_metric_get(m), 400000);
    sl_metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_groups_families),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
