/* `sluice spool` through the binary: exit codes (0 ok, 1 corruption,
 * 2 usage/config), output on an empty and a non-empty spool, and that it
 * runs beside a live agent holding the spool's lock. */
#include "tests/fault/ftest_spool_rig.h"

static int run_cli(char *const *args, const char *out)
{
    pid_t pid = sl_t_spawn(args, out);
    return pid > 0 ? sl_t_wait(pid, 30000) : -1;
}

static void test_cli(void **st)
{
    (void)st;
    srig r;
    srig_init(&r, "spool-cli", "{memory_max: 16KiB, spool_max: 1GiB}", NULL,
              "shutdown_timeout: 1s\n");
    char *out = sl_t_path(r.dir, "cli.out");
    char *bin = (char *)sl_t_bin();
    char *no_cfg[] = {bin, "spool", "ls", NULL};
    assert_int_equal(run_cli(no_cfg, out), 2);
    char *bad_sub[] = {bin, "spool", "frobnicate", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(bad_sub, out), 2);
    char *no_sink[] = {bin, "spool", "export", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(no_sink, out), 2);
    char *unknown[] = {bin, "spool", "stat", "-c", r.cfg, "--sink", "nope", NULL};
    assert_int_equal(run_cli(unknown, out), 2);
    char *bad_time[] = {bin,      "spool", "export",  "-c",        r.cfg,
                        "--sink", "lk",    "--since", "yesterday", NULL};
    assert_int_equal(run_cli(bad_time, out), 2);
    char *bad_re[] = {bin, "spool", "export", "-c", r.cfg, "--sink", "lk", "--match", "(", NULL};
    assert_int_equal(run_cli(bad_re, out), 2);
    /* No spool yet: empty, fine. */
    char *verify[] = {bin, "spool", "verify", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(verify, out), 0);

    /* A live agent spooling during an outage: inspection works beside it. */
    srig_outage(&r, true);
    srig_append_ids(r.in, 0, 100000, 0);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, 10000));
    for (int i = 0; i < 100 && srig_metric(&r, "sluice_spool_written_records_total") <= 0; i++)
        sl_t_sleep_ms(100);
    unlink(out);
    char *stat_[] = {bin, "spool", "stat", "-c", r.cfg, "--sink", "lk", NULL};
    assert_int_equal(run_cli(stat_, out), 0);
    char *text = sl_t_read_file(out, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "pending_records:"));
    if (strstr(text, "pending_records: 0\n")) fprintf(stderr, "stat said:\n%s\n", text);
    assert_null(strstr(text, "pending_records: 0\n"));
    free(text);
    char *ls[] = {bin, "spool", "ls", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(ls, out), 0);
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    /* Stopped: cat prints every pending record once. */
    char *cat_out = sl_t_path(r.dir, "cat.out");
    char *cat[] = {bin, "spool", "cat", "-c", r.cfg, NULL};
    pid_t pid = sl_t_spawn(cat, cat_out);
    assert_int_equal(sl_t_wait(pid, 30000), 0);
    long lines = sl_t_count_lines(cat_out);
    fprintf(stderr, "spool cat: %ld lines (100000 records + 1 summary line)\n", lines);
    assert_int_equal(lines, 100000 + 1); /* the summary goes to stderr, same file here */
    assert_int_equal(run_cli(verify, out), 0);
    free(out), free(cat_out);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
