/* A test that fails on purpose, run by tests/ops/test_failed_test_cleanup.py:
 * it makes a temporary folder, starts an agent in it, writes both to
 * $SLUICE_SELFTEST_OUT, then fails an assertion before its own cleanup.
 * A second test then says whether that agent and folder were still there
 * when it began. The script checks that both were gone by then, not only
 * when the program exited, as every test must leave the machine
 * (developers' brief). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/helpers.h"

static void test_fails_before_its_cleanup(void **st)
{
    (void)st;
    const char *out = getenv("SLUICE_SELFTEST_OUT");
    assert_non_null(out);
    char *dir = sl_t_tmpdir("selftest");
    assert_non_null(dir);
    char *cfg = sl_t_path(dir, "sluice.yml"), *log = sl_t_path(dir, "agent.log");
    char yml[1024];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s/data\n"
                     "inputs:\n"
                     "  - {name: in, type: file, paths: [\"%s/*.log\"]}\n"
                     "sinks:\n"
                     "  - {name: out, type: file, path: %s/out.txt}\n",
                     dir, dir, dir);
    assert_int_equal(sl_t_write_file(cfg, yml, (size_t)n), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    assert_true(sl_t_wait_log(log, "event=agent_started", 1, sl_t_scaled_ms(20000)));
    char line[4200];
    n = snprintf(line, sizeof line, "dir=%s\npid=%d\n", dir, (int)pid);
    assert_int_equal(sl_t_write_file(out, line, (size_t)n), 0);
    /* The failure: nothing below runs, as in a test that failed for real. */
    fail_msg("failing on purpose, before the test stops its agent and removes %s", dir);
    sl_t_stop(pid, 15, 1000);
    sl_t_rmtree(dir);
}

/* Reads what the failed test wrote and appends what this test sees. */
static void test_next_sees_nothing_left(void **st)
{
    (void)st;
    const char *out = getenv("SLUICE_SELFTEST_OUT");
    assert_non_null(out);
    char *said = sl_t_read_file(out, NULL);
    assert_non_null(said);
    const char *d = strstr(said, "dir="), *p = strstr(said, "pid=");
    assert_true(d && p);
    char dir[4096];
    assert_int_equal(sscanf(d, "dir=%4095s", dir), 1);
    int pid = atoi(p + 4);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", pid);
    struct stat sb;
    char line[128];
    int n = snprintf(line, sizeof line, "next_saw_agent=%d\nnext_saw_dir=%d\n",
                     stat(proc, &sb) == 0, stat(dir, &sb) == 0);
    assert_int_equal(sl_t_append_file(out, line, (size_t)n), 0);
    free(said);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fails_before_its_cleanup),
                                       cmocka_unit_test(test_next_sees_nothing_left)};
    return sl_t_run_tests(tests);
}
