/* `sluice check --connect` on the real binary: each sink's destination is
 * asked whether it would accept, and the answer is reported per sink —
 * a Loki push path that answers (the test receiver) and one that 404s, a
 * Kafka broker that gives the topic's metadata (librdkafka's mock cluster)
 * and one that is not listening, a file sink's directory. Loopback only. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/kafka_harness.h"
#include "tests/loki_receiver.h"

typedef struct result {
    int status;
    char *output;
} result;

static result check_connect(const char *dir, const char *sinks)
{
    char *cfg = sl_t_path(dir, "c.yml"), *log = sl_t_path(dir, "check.out");
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "inputs:\n"
                         "  - {name: app, type: file, paths: [\"%s/in.log\"]}\n"
                         "sinks:\n%s",
                         dir, dir, sinks) > 0);
    assert_int_equal(sl_t_write_file(cfg, yaml, strlen(yaml)), 0);
    unlink(log);
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfg, "--connect", NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    result r = {sl_t_wait(pid, sl_t_sanitized() ? 90000 : 30000), NULL};
    r.output = sl_t_read_file(log, NULL);
    if (!r.output) r.output = strdup("");
    free(yaml), free(cfg), free(log);
    return r;
}

/* The report line of one sink. */
static void expect_line(const result *r, const char *prefix, const char *needle)
{
    const char *p = strstr(r->output, prefix);
    const char *end = p ? strchr(p, '\n') : NULL;
    if (!p || !end || !memmem(p, (size_t)(end - p), needle, strlen(needle)))
        fail_msg("no line '%s...%s' in:\n%s", prefix, needle, r->output);
}

static void test_every_destination_answers(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    sl_lr *lr = NULL;
    sl_lr_opts lo = {.discard = true};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    kh h;
    kh_mock(&h, 1);
    rd_kafka_mock_topic_create(h.mc, "logs", 3, 1);
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "  - {name: lk, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\"}\n"
                         "  - {name: kf, type: kafka, brokers: [\"%s\"], topic: logs}\n"
                         "  - {name: kt, type: kafka, brokers: [\"%s\"], topic: "
                         "\"logs-${labels.job}\"}\n"
                         "  - {name: fs, type: file, path: \"%s/out.log\"}\n"
                         "  - {name: so, type: stdout}\n",
                         sl_lr_port(lr), h.bootstraps, h.bootstraps, dir) > 0);
    result r = check_connect(dir, sinks);
    if (r.status != 0) fail_msg("status %d:\n%s", r.status, r.output);
    expect_line(&r, "connect lk (loki): ok", "HTTP 204");
    expect_line(&r, "connect kf (kafka): ok", "topic logs: 3 partition(s) on 1 broker(s)");
    expect_line(&r, "connect kt (kafka): ok", "topic is a template");
    expect_line(&r, "connect fs (file): ok", "out.log can be created");
    expect_line(&r, "connect so (stdout): ok", "nothing to ask");
    assert_non_null(strstr(r.output, "# every destination answers"));
    /* The probe sent no record and created no file. */
    sl_lr_stats lst;
    sl_lr_get_stats(lr, &lst);
    assert_int_equal(lst.entries, 0);
    assert_int_equal(lst.accepted, 1);
    char *out = sl_t_path(dir, "out.log");
    assert_int_equal(access(out, F_OK), -1);
    free(out);
    free(r.output);
    free(sinks);
    kh_free(&h);
    sl_lr_stop(lr);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_wrong_path_and_unreachable_broker(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("connect");
    sl_lr *lr = NULL;
    sl_lr_opts lo = {.discard = true};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    int closed = sl_t_free_port(); /* nothing listens there */
    assert_true(closed > 0);
    char *sinks = NULL;
    /* A proxy prefix Loki does not serve: the push path answers 404. */
    assert_true(asprintf(&sinks,
                         "  - {name: good, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\"}\n"
                         "  - {name: wrongpath, type: loki, url: "
                         "\"http://127.0.0.1:%d/logs/loki/api/v1/push\"}\n"
                         "  - {name: noloki, type: loki, url: "
                         "\"http://127.0.0.1:%d/loki/api/v1/push\", timeout: 2s}\n"
                         "  - {name: nokafka, type: kafka, brokers: [\"127.0.0.1:%d\"], "
                         "topic: logs}\n"
                         "  - {name: nodir, type: file, path: \"%s/missing/out.log\"}\n",
                         sl_lr_port(lr), sl_lr_port(lr), closed, closed, dir) > 0);
    result r = check_connect(dir, sinks);
    assert_int_equal(r.status, 1);
    expect_line(&r, "connect good (loki): ok", "HTTP 204");
    expect_line(&r, "connect wrongpath (loki): FAILED", "HTTP 404 (wrong path?");
    expect_line(&r, "connect noloki (loki): FAILED", "no answer");
    expect_line(&r, "connect nokafka (kafka): FAILED", "no metadata from the brokers");
    expect_line(&r, "connect nodir (file): FAILED", "No such file or directory");
    assert_non_null(strstr(r.output, "# some destinations would not accept"));
    free(r.output);
    free(sinks);
    sl_lr_stop(lr);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_destination_answers),
        cmocka_unit_test(test_wrong_path_and_unreachable_broker),
    };
    return sl_t_run_tests(tests);
}
