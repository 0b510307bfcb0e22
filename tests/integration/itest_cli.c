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
#include <sys/resource.h>
#include <sys/stat.h>
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
             "%s:4:21: 'max_line_bytes' must be a size: bytes (512) or a number with KiB, MiB, "
             "GiB, TiB (1024s) or kB, MB, GB, TB (1000s), no space, got 'lots'",
             cfg);
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
    /* names become file names under data_dir (checkpoint, spool folder):
     * one that leaves its folder, or forges log lines, is refused */
    static const char *const bad_names[][2] = {
        {"\"../../etc/cron.d/x\"", "holds a '/'"},
        {"\"..\"", "is '.' or '..'"},
        {"\"a\\nts=forged\"", "holds a control character"},
        {"\"\"", "is empty"},
    };
    for (size_t k = 0; k < 2 * (sizeof bad_names / sizeof *bad_names); k++) {
        bool sink = k % 2; /* each name as an input's, then as a sink's */
        const char *name = bad_names[k / 2][0];
        char text[512], msg[128];
        snprintf(text, sizeof text,
                 "inputs:\n  - {name: %s, type: file, paths: [a]}\n"
                 "sinks:\n  - {name: %s, type: stdout}\n",
                 sink ? "app" : name, sink ? name : "out");
        snprintf(msg, sizeof msg, "%s name %s", sink ? "sink" : "input", bad_names[k / 2][1]);
        expect_error(dir, text, msg);
    }
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
    char overlay[1024];
    snprintf(overlay, sizeof overlay,
             "inputs:\n  - name: app\n    start_at: end\n"
             "data_dir: ${SLUICE_TEST_DIR_UNSET:-%s/srv}\n",
             dir);
    sl_t_write_file(prod, overlay, strlen(overlay));
    char *args[] = {"check", "-c", base, "-c", prod, NULL};
    result r = run_sluice(dir, args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.output, "start_at: \"end\""));
    assert_non_null(strstr(r.output, "paths:"));
    char want[1024];
    snprintf(want, sizeof want, "data_dir: \"%s/srv\"", dir);
    assert_non_null(strstr(r.output, want));
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

static void expect_in(const result *r, const char *needle)
{
    if (!strstr(r->output, needle))
        fprintf(stderr, "status %d, output:\n%s\nexpected: %s\n", r->status, r->output, needle);
    assert_non_null(strstr(r->output, needle));
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* The shipped production configs name every destination variable that is
 * not set, and where to set it; set, they pass. */
static void test_prod_config_needs_destinations(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *base = sl_t_path(sl_t_src(), "config/base.yml");
    const char *envs[] = {"prod", "staging"};
    for (int e = 0; e < 2; e++) {
        char name[64];
        snprintf(name, sizeof name, "config/%s.yml", envs[e]);
        char *overlay = sl_t_path(sl_t_src(), name);
        unsetenv("SLUICE_LOKI_URL");
        unsetenv("SLUICE_KAFKA_BROKERS");
        char *args[] = {"check", "-c", base, "-c", overlay, NULL};
        result r = run_sluice(dir, args);
        assert_int_equal(r.status, 2);
        expect_in(&r, "environment variable 'SLUICE_LOKI_URL' is not set (set it in "
                      "/nonexistent/sluice-test-etc/site.env");
        expect_in(&r, "environment variable 'SLUICE_KAFKA_BROKERS' is not set");
        expect_in(&r, "config/base.yml:");
        assert_null(strstr(r.output, "configuration OK"));
        free(r.output);
        char *data = sl_t_path(dir, "data");
        setenv("SLUICE_DATA_DIR", data, 1);
        setenv("SLUICE_LOKI_URL", "http://127.0.0.1:3100/loki/api/v1/push", 1);
        setenv("SLUICE_KAFKA_BROKERS", "127.0.0.1:9092", 1);
        r = run_sluice(dir, args);
        assert_int_equal(r.status, 0);
        expect_in(&r, "configuration OK");
        free(r.output);
        unsetenv("SLUICE_DATA_DIR");
        unsetenv("SLUICE_LOKI_URL");
        unsetenv("SLUICE_KAFKA_BROKERS");
        free(data), free(overlay);
    }
    free(base);
    sl_t_rmtree(dir);
    free(dir);
}

/* Relative paths cannot work under the unit: an error unless `dev: true`,
 * and `--service` refuses a dev configuration. */
static void test_relative_paths(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "%sdata_dir: build/dev/data\ninputs:\n  - {name: app, type: file, paths: "
             "[samples/app.log, \"%s/abs.log\"]}\nsinks:\n  - {name: out, type: file, path: "
             "out.jsonl}\n",
             "", dir);
    result r = check_yaml(dir, yaml);
    assert_int_equal(r.status, 2);
    expect_in(&r, "c.yml:1:11: 'data_dir' is a relative path ('build/dev/data')");
    expect_in(&r, "c.yml:3:37: 'paths' is a relative path ('samples/app.log')");
    expect_in(&r, "c.yml:5:35: 'path' is a relative path ('out.jsonl')");
    expect_in(&r, "sluice: 3 configuration errors");
    free(r.output);
    char dev[2100];
    snprintf(dev, sizeof dev, "dev: true\n%s", yaml);
    /* relative to the current directory: the test's temporary one */
    char *cwd = getcwd(NULL, 0);
    assert_int_equal(chdir(dir), 0);
    r = check_yaml(dir, dev);
    assert_int_equal(r.status, 0);
    expect_in(&r, "warning: 'samples/app.log' of input 'app' matches no file now");
    free(r.output);
    char *cfg = sl_t_path(dir, "c.yml");
    char *args[] = {"check", "--service", "-c", cfg, NULL};
    r = run_sluice(dir, args);
    assert_int_equal(r.status, 2);
    expect_in(&r, "c.yml:1:6: a development configuration");
    free(r.output);
    assert_int_equal(chdir(cwd), 0);
    free(cwd), free(cfg);
    sl_t_rmtree(dir);
    free(dir);
}

/* check looks at this host: a data_dir that cannot be created is an error,
 * a path matching nothing a warning. */
static void test_check_host(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *blocker = sl_t_path(dir, "file");
    sl_t_write_file(blocker, "x", 1);
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\ninputs:\n  - {name: app, type: file, paths: [\"%s/none/*.log\"]}\n"
             "sinks:\n  - {name: out, type: stdout}\n",
             blocker, dir);
    result r = check_yaml(dir, yaml);
    assert_int_equal(r.status, 2);
    char want[2048];
    snprintf(want, sizeof want, "c.yml:1:11: data_dir '%s/data': Not a directory", blocker);
    expect_in(&r, want);
    free(r.output);
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/new/data\ninputs:\n  - {name: app, type: file, paths: "
             "[\"%s/none/*.log\"]}\nsinks:\n  - {name: out, type: stdout}\n",
             dir, dir);
    r = check_yaml(dir, yaml);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof want,
             "c.yml:3:37: warning: '%s/none/*.log' of input 'app' matches no file now", dir);
    expect_in(&r, want);
    free(r.output);
    free(blocker);
    sl_t_rmtree(dir);
    free(dir);
}

/* Without -c: base.yml, then the other *.yml by name, variables from
 * site.env (the environment wins over it). */
static void test_default_files(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *etc = sl_t_path(dir, "etc");
    assert_int_equal(mkdir(etc, 0750), 0);
    char *base = sl_t_path(etc, "base.yml"), *a = sl_t_path(etc, "a.yml"),
         *z = sl_t_path(etc, "prod.yml"), *site = sl_t_path(etc, "site.env"),
         *ignored = sl_t_path(etc, "notes.txt");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\ninputs:\n  - {name: app, type: file, paths: [\"%s/*.log\"], "
             "labels: {team: \"${SLUICE_T_TEAM}\", host: \"${SLUICE_HOST}\"}}\n"
             "sinks:\n  - {name: out, type: stdout}\n",
             dir, dir);
    sl_t_write_file(base, yaml, strlen(yaml));
    /* a.yml sorts before prod.yml but after base.yml */
    const char *ya = "shutdown_timeout: 3s\n", *yz = "shutdown_timeout: 7s\n";
    sl_t_write_file(a, ya, strlen(ya));
    sl_t_write_file(z, yz, strlen(yz));
    sl_t_write_file(ignored, "x: [", 4);
    const char *env = "# site settings\nSLUICE_T_TEAM=\"pay ments\"\n\nSLUICE_T_OTHER='x'\n";
    sl_t_write_file(site, env, strlen(env));
    setenv("SLUICE_CONFIG_DIR", etc, 1);
    unsetenv("SLUICE_T_TEAM");
    char *args[] = {"check", NULL};
    result r = run_sluice(dir, args);
    assert_int_equal(r.status, 0);
    char want[2048];
    snprintf(want, sizeof want, "# files: %s %s %s\n", base, a, z);
    expect_in(&r, want);
    expect_in(&r, "team: \"pay ments\"");
    expect_in(&r, "shutdown_timeout: \"7s\"");
    assert_null(strstr(r.output, "host: \"\""));
    free(r.output);
    /* the environment wins over site.env */
    setenv("SLUICE_T_TEAM", "ops", 1);
    r = run_sluice(dir, args);
    assert_int_equal(r.status, 0);
    expect_in(&r, "team: \"ops\"");
    free(r.output);
    unsetenv("SLUICE_T_TEAM");
    /* a malformed site.env is an error with its line */
    sl_t_write_file(site, "# x\nnot a line\n", 15);
    r = run_sluice(dir, args);
    assert_int_equal(r.status, 2);
    snprintf(want, sizeof want, "%s:2: expected NAME=value", site);
    expect_in(&r, want);
    free(r.output);
    /* an empty directory */
    unlink(base), unlink(a), unlink(z), unlink(site);
    r = run_sluice(dir, args);
    assert_int_equal(r.status, 2);
    expect_in(&r, "no configuration given (-c FILE) and no *.yml in");
    free(r.output);
    setenv("SLUICE_CONFIG_DIR", "/nonexistent/sluice-test-etc", 1);
    free(base), free(a), free(z), free(site), free(ignored), free(etc);
    sl_t_rmtree(dir);
    free(dir);
}

/* The agent with no -c reads site.env itself, and again on SIGHUP: an
 * edited value applies without a restart (nothing is cached in the
 * process environment). */
static void test_reload_rereads_site_env(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char *etc = sl_t_path(dir, "etc");
    assert_int_equal(mkdir(etc, 0750), 0);
    char *base = sl_t_path(etc, "base.yml"), *site = sl_t_path(etc, "site.env");
    char *in = sl_t_path(dir, "in.log"), *out = sl_t_path(dir, "out.jsonl"),
         *log = sl_t_path(dir, "agent.log");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\nshutdown_timeout: 2s\ninputs:\n  - name: app\n    type: file\n"
             "    paths: [\"%s\"]\n    start_at: beginning\n    poll_interval: 50ms\n"
             "    labels: {team: \"${SLUICE_T_TEAM}\"}\nsinks:\n  - {name: out, type: file, "
             "path: \"%s\", format: json}\n",
             dir, in, out);
    sl_t_write_file(base, yaml, strlen(yaml));
    sl_t_write_file(site, "SLUICE_T_TEAM=first\n", 20);
    sl_t_write_file(in, "one\n", 4);
    unsetenv("SLUICE_T_TEAM");
    setenv("SLUICE_CONFIG_DIR", etc, 1);
    char *argv[] = {(char *)sl_t_bin(), "run", NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    sl_t_kill_at_exit(pid);
    int scale = sl_t_sanitized() ? 3 : 1;
    assert_true(sl_t_wait_lines(out, 1, 20000 * scale));
    assert_true(sl_t_file_has(out, "\"team\":\"first\""));
    sl_t_write_file(site, "SLUICE_T_TEAM=second\n", 21);
    kill(pid, SIGHUP);
    bool reloaded = false;
    for (int i = 0; i < 2000 * scale && !reloaded; i++) {
        reloaded = sl_t_file_has(log, "event=reloaded");
        if (!reloaded) sl_t_sleep_ms(10);
    }
    assert_true(reloaded);
    sl_t_append_file(in, "two\n", 4);
    assert_true(sl_t_wait_lines(out, 2, 20000 * scale));
    char *text = sl_t_read_file(out, NULL);
    assert_non_null(text);
    char *second = strchr(text, '\n');
    assert_non_null(second);
    if (!strstr(second, "\"team\":\"second\"")) fprintf(stderr, "records:\n%s\n", text);
    assert_non_null(strstr(second, "\"team\":\"second\""));
    free(text);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000 * scale), 0);
    sl_t_kill_at_exit(0);
    setenv("SLUICE_CONFIG_DIR", "/nonexistent/sluice-test-etc", 1);
    free(base), free(site), free(in), free(out), free(log), free(etc);
    sl_t_rmtree(dir);
    free(dir);
}

/* `run` raises its soft limit on open descriptors to the hard one: the
 * default caps of the listeners and the file input add up past a soft
 * 1024, and a listener at EMFILE refuses everyone. */
static void test_run_raises_fd_soft_limit(void **st)
{
    (void)st;
    struct rlimit own;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &own), 0);
    if (own.rlim_max != RLIM_INFINITY && own.rlim_max <= 256) skip();
    char *dir = sl_t_tmpdir("cli");
    char *cfg = sl_t_path(dir, "c.yml"), *log = sl_t_path(dir, "agent.log");
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\nshutdown_timeout: 2s\ninputs:\n  - {name: app, type: file, "
             "paths: [\"%s/*.log\"]}\nsinks:\n  - {name: out, type: discard}\n",
             dir, dir);
    sl_t_write_file(cfg, yaml, strlen(yaml));
    /* The child inherits a soft limit of 256 under the same hard limit. */
    struct rlimit low = {256, own.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &own), 0);
    assert_true(pid > 0);
    sl_t_kill_at_exit(pid);
    int scale = sl_t_sanitized() ? 3 : 1;
    assert_true(sl_t_wait_log(log, "event=fd_limit_raised", 1, 20000 * scale));
    char want[128];
    snprintf(want, sizeof want, "event=fd_limit_raised from=256 to=%llu",
             (unsigned long long)own.rlim_max);
    if (!sl_t_file_has(log, want)) fprintf(stderr, "expected %s in %s\n", want, log);
    assert_true(sl_t_file_has(log, want));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    char *limits = sl_t_read_file(path, NULL);
    assert_non_null(limits);
    char *line = strstr(limits, "Max open files");
    assert_non_null(line);
    unsigned long long soft = 0, hard = 0;
    assert_int_equal(sscanf(line + strlen("Max open files"), "%llu %llu", &soft, &hard), 2);
    assert_int_equal(soft, hard);
    free(limits);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000 * scale), 0);
    sl_t_kill_at_exit(0);
    free(cfg), free(log);
    sl_t_rmtree(dir);
    free(dir);
}

/* A listener's certificate that cannot be loaded is a configuration
 * error of `check`, not a failure at the agent's start. */
static void test_check_loads_listener_certificates(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\ninputs:\n  - name: devices\n    type: syslog\n"
             "    listen_tls: \"127.0.0.1:6514\"\n    tls: {cert_file: %s/none.crt, key_file: "
             "%s/none.key}\nsinks:\n  - {name: out, type: discard}\n",
             dir, dir, dir);
    expect_error(dir, yaml, "none.crt");
    snprintf(yaml, sizeof yaml,
             "data_dir: %s/data\ninputs:\n  - name: push\n    type: loki_push\n"
             "    listen: \"127.0.0.1:3101\"\n    tls: {cert_file: %s/gone.crt, key_file: "
             "%s/gone.key}\nsinks:\n  - {name: out, type: discard}\n",
             dir, dir, dir);
    expect_error(dir, yaml, "gone.crt");
    sl_t_rmtree(dir);
    free(dir);
}

/* One size grammar; each size error once, with one range. */
static void test_size_errors(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    const char *bad[] = {"1M", "32mb", "1 MiB", "1TiB", "lots"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "data_dir: %s/d\ninputs:\n  - {name: app, type: file, paths: [\"%s/a\"], "
                 "max_line_bytes: \"%s\"}\nsinks:\n  - {name: out, type: stdout}\n",
                 dir, dir, bad[i]);
        result r = check_yaml(dir, yaml);
        assert_int_equal(r.status, 2);
        expect_in(&r, "sluice: 1 configuration error\n");
        assert_int_equal(count_of(r.output, "max_line_bytes"), 1);
        if (!strcmp(bad[i], "1TiB"))
            expect_in(&r, "'max_line_bytes' must be from 16 to 64MiB, got '1TiB'");
        else
            expect_in(&r, "must be a size: bytes (512) or a number with KiB, MiB, GiB, TiB");
        if (!strcmp(bad[i], "1M")) expect_in(&r, "did you mean '1MiB' or '1MB'?");
        free(r.output);
    }
    sl_t_rmtree(dir);
    free(dir);
}

/* Every command has its own --help (stdout, exit 0); version says what
 * was built and what it runs with. */
static void test_command_help_and_version(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cli");
    const char *cmds[][3] = {{"run", "--help", "usage: sluice run"},
                             {"check", "--help", "usage: sluice check"},
                             {"tail", "-h", "usage: sluice tail"},
                             {"version", "--help", "usage: sluice version"},
                             {"spool", "--help", "usage: sluice spool"}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char *args[] = {(char *)cmds[i][0], (char *)cmds[i][1], NULL};
        result r = run_sluice(dir, args);
        assert_int_equal(r.status, 0);
        assert_memory_equal(r.output, cmds[i][2], strlen(cmds[i][2]));
        free(r.output);
    }
    char *spool_ls[] = {"spool", "ls", "--help", NULL};
    result r = run_sluice(dir, spool_ls);
    assert_int_equal(r.status, 0);
    expect_in(&r, "--since TIME");
    free(r.output);
    char *bad[] = {"check", "--frobnicate", NULL};
    r = run_sluice(dir, bad);
    assert_int_equal(r.status, 2);
    expect_in(&r, "usage: sluice check");
    free(r.output);
    char *v[] = {"version", NULL};
    r = run_sluice(dir, v);
    assert_int_equal(r.status, 0);
    const char *wants[] = {"sluice 0.", "\ncommit:", "\nbuild:", "\nsimd:",   "librdkafka 2.",
                           "zstd 1.",   "pcre2 10.", "libcurl ", "libyaml 0."};
    for (size_t i = 0; i < sizeof wants / sizeof *wants; i++) expect_in(&r, wants[i]);
    free(r.output);
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
        cmocka_unit_test(test_prod_config_needs_destinations),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_check_host),
        cmocka_unit_test(test_default_files),
        cmocka_unit_test(test_reload_rereads_site_env),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_run_raises_fd_soft_limit),
        cmocka_unit_test(test_check_loads_listener_certificates),
        cmocka_unit_test(test_command_help_and_version),
    };
    /* Never the machine's /etc/sluice (or its site.env). */
    setenv("SLUICE_CONFIG_DIR", "/nonexistent/sluice-test-etc", 1);
    return sl_t_run_tests(tests);
}
