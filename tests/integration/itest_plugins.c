/* A sink and a parse step added as one file and one registry line each
 * (pipeline/plugins.def, parsers/steps.def): the `discard` sink and the
 * `sample` step show up in `sluice check` (the pipeline, the resolved
 * configuration, the messages that list the types, unknown-key hints), in
 * `sluice keys` and the README's configuration reference (both printed from
 * their key tables), and do what they say in a running agent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers.h"

typedef struct result {
    int status;
    char *output;
} result;

static result check_yaml(const char *dir, const char *yaml)
{
    char *cfg = sl_t_path(dir, "c.yml"), *log = sl_t_path(dir, "check.out");
    sl_t_write_file(cfg, yaml, strlen(yaml));
    unlink(log);
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    result r = {sl_t_wait(pid, sl_t_scaled_ms(20000)), sl_t_read_file(log, NULL)};
    if (!r.output) r.output = strdup("");
    free(cfg);
    free(log);
    return r;
}

static char *config(const char *dir, const char *sample_args, const char *sink_type)
{
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "inputs:\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s/in.log\"]\n"
                         "    parse:\n"
                         "      - sample: %s\n"
                         "sinks:\n"
                         "  - name: bench\n"
                         "    type: %s\n",
                         dir, dir, sample_args, sink_type) > 0);
    return yaml;
}

static void expect(const result *r, int status, const char *needle)
{
    if (r->status != status || !strstr(r->output, needle))
        fprintf(stderr, "status %d, output:\n%s\nexpected %d and: %s\n", r->status, r->output,
                status, needle);
    assert_int_equal(r->status, status);
    assert_non_null(strstr(r->output, needle));
}

static void test_check_shows_discard_and_sample(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("plugins");
    char *yaml = config(dir, "{one_in: 10, field: trace_id}", "discard");
    result r = check_yaml(dir, yaml);
    expect(&r, 0, "input app (file) -> bench");
    expect(&r, 0, "type: \"discard\"");
    expect(&r, 0, "one_in: \"10\"");
    expect(&r, 0, "field: \"trace_id\"");
    expect(&r, 0, "configuration OK");
    free(r.output), free(yaml);

    /* The key tables drive the hints and the required keys. */
    yaml = config(dir, "{one_inn: 10}", "discard");
    r = check_yaml(dir, yaml);
    expect(&r, 2, "unknown key 'one_inn'; did you mean 'one_in'?");
    expect(&r, 2, "missing required key 'one_in'");
    free(r.output), free(yaml);
    yaml = config(dir, "{one_in: 0}", "discard");
    r = check_yaml(dir, yaml);
    expect(&r, 2, "one_in");
    free(r.output), free(yaml);

    /* The lists in messages come from the registries. */
    yaml = config(dir, "{one_in: 2}", "nul");
    r = check_yaml(dir, yaml);
    expect(&r, 2, "unknown sink type 'nul' (one of stdout|file|loki|kafka|discard)");
    free(r.output), free(yaml);
    yaml = config(dir, "{one_in: 2}\n      - sampel: {}", "discard");
    r = check_yaml(dir, yaml);
    expect(&r, 2,
           "unknown parse step 'sampel' (one of json, regex, logfmt, cri, docker, syslog, "
           "timestamp, kubernetes, labels, drop, keep, rename, remove, sample)");
    free(r.output), free(yaml);
    sl_t_rmtree(dir);
    free(dir);
}

/* `sluice keys` (text and --markdown) prints the new plugins from their key
 * tables; the README holds the same rows (tests/ops/test_readme_keys.py
 * holds every table; this one names the two plugins). */
static char *run_keys(const char *dir, const char *const *args, int *status)
{
    char *log = sl_t_path(dir, "keys.out");
    char *argv[8] = {(char *)sl_t_bin(), "keys"};
    size_t n = 2;
    for (; args && *args && n < 7; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    unlink(log);
    pid_t pid = sl_t_spawn(argv, log);
    *status = sl_t_wait(pid, sl_t_scaled_ms(20000));
    char *out = sl_t_read_file(log, NULL);
    free(log);
    return out ? out : strdup("");
}

static void test_keys_and_readme_document_them(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("plugins");
    int status;
    const char *text_args[] = {NULL};
    char *text = run_keys(dir, text_args, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(text, "\nstep sample\n  one_in "));
    assert_non_null(strstr(text, "integer, 1 to 1000000000 required"));
    assert_non_null(strstr(text, "\nsink discard\n  name "));
    free(text);

    const char *md_args[] = {"--markdown", NULL};
    char *md = run_keys(dir, md_args, &status);
    assert_int_equal(status, 0);
    const char *rows[] = {
        "| `sample` | `one_in` | integer, 1 to 1000000000 | required | keep one record in this "
        "many, drop the others (counted) |\n",
        "| `sample` | `field` | string | — | choose by a hash of this field's value",
        "<!-- sluice keys: sink discard -->\n| key | type | default | meaning "
        "|\n|---|---|---|---|\n"
        "| `name` | string | required |",
    };
    char *path = sl_t_path(sl_t_src(), "README.md");
    char *readme = sl_t_read_file(path, NULL);
    assert_non_null(readme);
    const char *steps = strstr(readme, "### Parse steps");
    assert_non_null(steps);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        if (!strstr(md, rows[i]) || !strstr(readme, rows[i]))
            fprintf(stderr, "missing from `sluice keys --markdown` or README: %s\n", rows[i]);
        assert_non_null(strstr(md, rows[i]));
        assert_non_null(strstr(readme, rows[i]));
    }
    const char *sample = strstr(steps, rows[0]);
    assert_true(sample && sample < strstr(steps, "\n### Sink"));
    const char *discard = strstr(readme, "### Sink `type: discard`");
    assert_true(discard && strstr(discard, rows[2]) < strstr(discard + 1, "\n### "));

    /* One type asked for: only its table. */
    const char *one_args[] = {"sample", NULL};
    char *one = run_keys(dir, one_args, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(one, "step sample"));
    assert_null(strstr(one, "sink discard"));
    free(one), free(md), free(readme), free(path);
    sl_t_rmtree(dir);
    free(dir);
}

/* An unknown key that is close to none: `sluice check` lists the valid keys
 * from the table. */
static void test_check_lists_valid_keys(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("plugins");
    char *yaml = config(dir, "{one_in: 2, bogus: 1}", "discard");
    result r = check_yaml(dir, yaml);
    expect(&r, 2, "unknown key 'bogus' (valid keys: one_in, field)");
    free(r.output), free(yaml);
    yaml = config(dir, "{one_in: 2}", "discard\n    colour: blue");
    r = check_yaml(dir, yaml);
    expect(&r, 2, "unknown key 'colour' (valid keys: name, type, inputs, buffer)");
    free(r.output), free(yaml);
    sl_t_rmtree(dir);
    free(dir);
}

/* A running agent: sample keeps one record in 4, the discard sink counts and
 * acknowledges them, and nothing is left over at shutdown. */
static void test_agent_samples_into_discard(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("plugins");
    int mport = sl_t_free_port();
    char *in = sl_t_path(dir, "in.log"), *cfg = sl_t_path(dir, "c.yml"),
         *log = sl_t_path(dir, "agent.log");
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "metrics: { listen: \"127.0.0.1:%d\" }\n"
                         "inputs:\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s\"]\n"
                         "    start_at: beginning\n"
                         "    poll_interval: 50ms\n"
                         "    parse:\n"
                         "      - sample: {one_in: 4}\n"
                         "sinks:\n"
                         "  - name: bench\n"
                         "    type: discard\n",
                         dir, mport, in) > 0);
    assert_int_equal(sl_t_write_file(cfg, yaml, strlen(yaml)), 0);
    char lines[100 * 16];
    size_t n = 0;
    for (int i = 0; i < 100; i++) n += (size_t)snprintf(lines + n, 16, "line %03d\n", i);
    assert_int_equal(sl_t_write_file(in, lines, n), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    bool got = false;
    for (int waited = 0; waited < sl_t_scaled_ms(20000) && !got; waited += 50) {
        got = sl_t_metric(mport, "sluice_records_filtered_total") == 75 &&
              sl_t_metric(mport, "sluice_sink_records_total") == 25;
        if (!got) sl_t_sleep_ms(50);
    }
    /* What the sink counts is the line text, 8 bytes a line. */
    long bytes = (long)sl_t_metric(mport, "sluice_sink_bytes_total");
    int stopped = sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000));
    bool drained = sl_t_wait_log(log, "spooled=0 left=0", 1, sl_t_scaled_ms(5000));
    if (!got || !drained) {
        char *out = sl_t_read_file(log, NULL);
        fprintf(stderr, "agent log:\n%s\n", out ? out : "");
        free(out);
    }
    sl_t_rmtree(dir);
    assert_true(got);
    assert_int_equal(bytes, 25 * 8);
    assert_int_equal(stopped, 0);
    assert_true(drained);
    free(yaml), free(in), free(cfg), free(log), free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_shows_discard_and_sample),
        cmocka_unit_test(test_keys_and_readme_document_them),
        cmocka_unit_test(test_check_lists_valid_keys),
        cmocka_unit_test(test_agent_samples_into_discard),
    };
    return sl_t_run_tests(tests);
}
