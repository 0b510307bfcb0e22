/* The command line as an operator meets it: `sluice check` on good and
 * broken configurations (exit codes and the exact positions of errors),
 * `version`, `--help`, and `run --dry-run`. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/helpers.h"

typedef struct result {
    int status;
    char *output;
} result;

static result run_sluice(const char *dir, char *const args[])
{
    char *log = sl_t_path(dir, "cli.out");
    unlink(log);
    char *argv[16] = {(char *)sl_t_bin()};
    int n = 1;
    for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = sl_t_spawn(argv, log);
    result r = {sl_t_wait(pid, 20000), NULL};
    r.output = sl_t_read_file(log, NULL);
    if (!r.output) r.output = strdup("");
    free(log);
    return r;
}

static result check_yaml(const char *dir, const char *yaml)
{
    char *cfg = sl_t_path(dir, "c.yml");
    sl_t_write_file(cfg, yaml, strlen(yaml));
    char *args[] = {"check", "-c", cfg, NULL};
    result r = run_sluice(dir, args);
    free(cfg);
    return r;
}

static const char *good_yaml = "data_dir: /tmp/x\n"
                               "inputs:\n"
                               "  - name: app\n"
                               "    type: file\n"
                               "    paths: [/var/log/app/*.log]\n"
                               "sinks:\n"
                               "  - name: out\n"
                               "    type: stdout\n";

static void expect_error(const char *dir, const char *yaml, const char *needle)
{
    result r = check_yaml(dir, yaml);
    if (r.status != 2 || !strstr(r.output, needle))
        fprintf(stderr, "status %d, output:\n%s\nexpected: %s\n", r.status, r.output, needle);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.output, needle));
    free(r.output);
}

static void test_good_config_exits_0(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    result r = check_yaml(dir, good_yaml);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.output, "input app (file) -> out"));
    assert_non_null(strstr(r.output, "configuration OK"));
    free(r.output);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_broken_configs_exit_2_with_positions(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *cfg = sl_t_path(dir, "c.yml");
    char want[4200];
    /* bad YAML: an unclosed flow sequence */
    snprintf(want, sizeof want, "%s:5:6: YAML syntax error: did not find expected ',' or ']'", cfg);
    expect_error(dir, "inputs:\n  - name: app\n    type: file\n    paths: [a, b\nsinks: []\n",
                 want);
    /* unknown key, with a suggestion */
    snprintf(want, sizeof want, "%s:5:5: unknown key 'pahts'; did you mean 'paths'?", cfg);
    expect_error(dir,
                 "inputs:\n  - name: app\n    type: file\n    paths: [a]\n    pahts: [b]\n"
                 "sinks:\n  - {name: out, type: stdout}\n",
                 want);
    /* wrong type */
    snprintf(want, sizeof want,
             "%s:4:21: 'max_line_bytes' must be a size like 64MiB, 512kB or 1GiB, got 'lots'", cfg);
    expect_error(
        dir,
        "inputs:\n  - name: app\n    type: file\n    max_line_bytes: lots\n    paths: [a]\n"
        "sinks:\n  - {name: out, type: stdout}\n",
        want);
    /* missing required key */
    snprintf(want, sizeof want, "%s:2:5: missing required key 'paths'", cfg);
    expect_error(dir,
                 "inputs:\n  - name: app\n    type: file\nsinks:\n  - {name: out, type: stdout}\n",
                 want);
    /* unset variable without default */
    unsetenv("SLUICE_TEST_UNSET_VAR");
    snprintf(want, sizeof want, "%s:1:11: environment variable 'SLUICE_TEST_UNSET_VAR' is not set",
             cfg);
    expect_error(
        dir,
        "data_dir: ${SLUICE_TEST_UNSET_VAR}\ninputs:\n  - {name: app, type: file, paths: [a]}\n"
        "sinks:\n  - {name: out, type: stdout}\n",
        want);
    /* bad enum value and unknown sink type */
    expect_error(dir,
                 "inputs:\n  - {name: app, type: file, paths: [a], start_at: middle}\n"
                 "sinks:\n  - {name: out, type: stdout}\n",
                 "'start_at' must be one of beginning|end, got 'middle'");
    expect_error(dir,
                 "inputs:\n  - {name: app, type: file, paths: [a]}\nsinks:\n  - {name: out, type: "
                 "carrier_pigeon}\n",
                 "unknown sink type 'carrier_pigeon'");
    /* a sink routed from an input that does not exist */
    expect_error(dir,
                 "inputs:\n  - {name: app, type: file, paths: [a]}\n"
                 "sinks:\n  - {name: out, type: stdout, inputs: [nope]}\n",
                 "sink takes unknown input 'nope'");
    /* not a file at all */
    char *args[] = {"check", "-c", "/nonexistent/sluice.yml", NULL};
    result r = run_sluice(dir, args);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.output, "/nonexistent/sluice.yml:1:1: cannot read configuration"));
    free(r.output);
    free(cfg);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_overlay_and_env_default(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *base = sl_t_path(dir, "base.yml"), *prod = sl_t_path(dir, "prod.yml");
    sl_t_write_file(base, good_yaml, strlen(good_yaml));
    const char *overlay = "inputs:\n  - name: app\n    start_at: end\n"
                          "data_dir: ${SLUICE_TEST_DIR_UNSET:-/srv/sluice}\n";
    sl_t_write_file(prod, overlay, strlen(overlay));
    char *args[] = {"check", "-c", base, "-c", prod, NULL};
    result r = run_sluice(dir, args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.output, "start_at: \"end\""));
    assert_non_null(strstr(r.output, "paths:"));
    assert_non_null(strstr(r.output, "data_dir: \"/srv/sluice\""));
    free(r.output);
    free(base), free(prod);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_version_help_usage(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *v[] = {"version", NULL}, *h[] = {"--help", NULL}, *bad[] = {"frobnicate", NULL};
    result r = run_sluice(dir, v);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.output, "sluice 0."));
    free(r.output);
    r = run_sluice(dir, h);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.output, "usage: sluice"));
    free(r.output);
    r = run_sluice(dir, bad);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.output, "unknown command 'frobnicate'"));
    free(r.output);
    sl_t_rmtree(dir);
    free(dir);
}

/* --dry-run prints parsed records and moves no checkpoint. */
static void test_dry_run(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *in = sl_t_path(dir, "in.log"), *cfg = sl_t_path(dir, "c.yml"),
         *out = sl_t_path(dir, "out.txt"), *ckpt = sl_t_path(dir, "data/checkpoints/app.json");
    sl_t_write_file(in, "first line\nsecond line\n", 23);
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\ninputs:\n  - {name: app, type: file, paths: [\"%s\"]}\n"
             "sinks:\n  - {name: out, type: file, path: \"%s\"}\n",
             dir, in, out);
    sl_t_write_file(cfg, yaml, strlen(yaml));
    char *log = sl_t_path(dir, "agent.out");
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, "--dry-run", NULL};
    pid_t pid = sl_t_spawn(argv, log);
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) {
        char *text = sl_t_read_file(log, NULL);
        seen = text && strstr(text, "\"line\":\"second line\"");
        free(text);
        sl_t_sleep_ms(10);
    }
    assert_true(seen);
    sl_t_sleep_ms(300); /* past a checkpoint interval */
    assert_int_equal(sl_t_stop(pid, SIGTERM, 10000), 0);
    assert_int_equal(sl_t_count_lines(out), -1); /* nothing sent */
    assert_null(sl_t_read_file(ckpt, NULL));     /* no checkpoint written */
    free(in), free(cfg), free(out), free(ckpt), free(log);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_config_exits_0),
        cmocka_unit_test(test_broken_configs_exit_2_with_positions),
        cmocka_unit_test(test_overlay_and_env_default),
        cmocka_unit_test(test_version_help_usage),
        cmocka_unit_test(test_dry_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
