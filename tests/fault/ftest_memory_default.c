/* The default memory queue (`buffer.memory_max` absent: 16 MiB, decision
 * 0043) on the path the benchmarks run, file -> json step -> Loki, with a
 * Loki that answers 500 to everything:
 * - the input stops at the bound with the sink's queue holding more than
 *   half of 16 MiB and no more than 16 MiB plus the request the sink gave
 *   back (the wait counted in sluice_sink_backpressure_seconds_total once
 *   it ends);
 * - the agent's peak RSS stays within the 64 MiB goal of issue 19, through
 *   the outage and the catch-up at full speed that follows (not asserted
 *   under the sanitizers, whose shadow memory and quarantine are not the
 *   agent's);
 * - once Loki answers, every line arrives. */
#include "tests/fault/ftest_spool_rig.h"

#define MIB      (1024.0 * 1024.0)
#define QUEUE_MB 16.0
#define RSS_GOAL (64 * 1024) /* kB */

/* JSON lines of ~360 bytes whose message carries id=N, nested like the
 * benchmarks' corpus; n lines far more than the queue holds. */
static void append_json(const char *path, long from, long to)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)from;
    for (long i = from; i < to; i++) {
        char pad[161];
        for (size_t k = 0; k < sizeof pad - 1; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            pad[k] = (char)('a' + x % 26);
        }
        pad[sizeof pad - 1] = '\0';
        n += (size_t)snprintf(buf + n, cap - n,
                              "{\"ts\":\"2026-12-07T08:00:%02ld.%06ldZ\",\"level\":\"info\","
                              "\"msg\":\"id=%08ld request served\",\"http\":{\"method\":\"GET\","
                              "\"status\":200,\"path\":\"/api/v1/items/%ld\"},\"pad\":\"%s\"}\n",
                              i % 60, i % 1000000, i, i, pad);
        if (n > cap - 512) {
            assert_int_equal(sl_t_append_file(path, buf, n), 0);
            n = 0;
        }
    }
    if (n) assert_int_equal(sl_t_append_file(path, buf, n), 0);
    free(buf);
}

static void check_rss(srig *r, const char *when)
{
    long hwm = srig_proc_kb(r->pid, "VmHWM:");
    fprintf(stderr, "%s: VmHWM %ld kB (goal %d kB%s)\n", when, hwm, RSS_GOAL,
            sl_t_sanitized() ? ", not asserted under the sanitizers" : "");
    assert_true(hwm > 0);
    if (!sl_t_sanitized()) assert_true(hwm <= RSS_GOAL);
}

static void test_default_queue_bound(void **st)
{
    (void)st;
    long total = 100000; /* ~36 MB of lines */
    srig r;
    srig_init(&r, "mem-default", "{}", "[{json: {}}]", NULL);
    srig_outage(&r, true);
    append_json(r.in, 0, total);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, sl_t_scaled_ms(10000)));

    /* The input stops at the full queue: what it has read stops growing,
     * short of the file, with the queue past half its bound. */
    srig_goal half = {&r, "sluice_sink_queue_bytes", QUEUE_MB / 2 * MIB};
    assert_true(sl_t_wait_until(srig_metric_at_least, &half, sl_t_scaled_ms(60000)));
    double read = -1, prev = -2;
    for (int i = 0; i < 300 && read != prev; i++) {
        sl_t_sleep_ms(200);
        prev = read;
        read = srig_metric(&r, "sluice_input_records_total");
    }
    double most = 0;
    for (int i = 0; i < 10; i++) { /* held at the bound while Loki fails */
        double q = srig_metric(&r, "sluice_sink_queue_bytes");
        if (q > most) most = q;
        sl_t_sleep_ms(50);
    }
    fprintf(stderr,
            "input paused at %.0f of %ld records; queue at most %.1f MiB of the default %.0f MiB\n",
            read, total, most / MIB, QUEUE_MB);
    assert_true(read == prev && read > 0 && read < (double)total);
    /* Past the bound by at most the batches of the request the sink gave
     * back (put back at the front whatever the bound): one batch of 4,096
     * of these lines, ~3.2 MiB with its records and fields. */
    assert_true(most >= QUEUE_MB / 2 * MIB && most <= (QUEUE_MB + 4) * MIB);
    check_rss(&r, "outage, queue full");

    /* Loki answers: the whole file arrives, at full speed. */
    srig_outage(&r, false);
    assert_true(srig_wait_ids(&r, total, total, 120000));
    stally t = srig_count(&r, total, NULL);
    fprintf(stderr, "sent=%ld received=%ld dups=%ld\n", total, t.distinct, t.dups);
    assert_int_equal(t.distinct, total);
    check_rss(&r, "after the catch-up");
    /* The push that waited for room returned: its wait is counted. */
    assert_true(srig_metric(&r, "sluice_sink_backpressure_seconds_total") > 0);
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    srig_free(&r);
}

int main(void)
{
    /* meson test sets MALLOC_PERTURB_, which makes glibc fill every block
     * it hands out and so touch pages the agent reserves but does not use
     * (the batches' record arrays, request buffers): the RSS measured is
     * the agent's as it runs in production, without it. */
    unsetenv("MALLOC_PERTURB_");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_queue_bound),
    };
    return sl_t_run_tests(tests);
}
