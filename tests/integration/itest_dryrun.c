/* `sluice run --dry-run --stdin --input NAME` on the real binary: the
 * samples in samples/ come out as parsed records (fields, labels, time), a
 * multiline input joins its lines, nothing is written under data_dir —
 * and `run --dry-run` on files writes nothing there either. */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/helpers.h"

/* Runs sluice with stdin from in_path (or /dev/null), stdout and stderr to
 * their own files; dies with the test. Returns the exit status. */
static int run_sluice(char *const args[], const char *in_path, const char *out_path,
                      const char *err_path)
{
    char *argv[24] = {(char *)sl_t_bin()};
    int n = 1;
    for (; args[n - 1] && n < 23; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0), dup2(out, 1), dup2(err, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    return sl_t_wait(pid, sl_t_sanitized() ? 60000 : 20000);
}

typedef struct rig {
    char *dir, *data, *cfg, *out, *err, *ml_in, *file_in;
} rig;

static void rig_init(rig *r)
{
    r->dir = sl_t_tmpdir("dryrun");
    assert_non_null(r->dir);
    r->data = sl_t_path(r->dir, "data");
    r->cfg = sl_t_path(r->dir, "c.yml");
    r->out = sl_t_path(r->dir, "out.txt");
    r->err = sl_t_path(r->dir, "err.txt");
    r->ml_in = sl_t_path(r->dir, "ml.txt");
    r->file_in = sl_t_path(r->dir, "app.log");
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s\n"
                         "inputs:\n"
                         "  - name: access\n"
                         "    type: file\n"
                         "    paths: [\"%s/samples/access.log\"]\n"
                         "    labels: {job: web}\n"
                         "    parse:\n"
                         "      - regex: {builtin: nginx_combined}\n"
                         "      - labels: [method]\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s\"]\n"
                         "    start_at: beginning\n"
                         "    poll_interval: 50ms\n"
                         "    labels: {job: app}\n"
                         "    parse:\n"
                         "      - json: {}\n"
                         "      - timestamp: {field: ts, format: rfc3339}\n"
                         "      - labels: [level]\n"
                         "  - name: java\n"
                         "    type: file\n"
                         "    paths: [/nonexistent/*.log]\n"
                         "    multiline: {start: '^[0-9]{4}-'}\n"
                         "  - name: pods\n"
                         "    type: file\n"
                         "    paths: [/nonexistent/*.log]\n"
                         "    parse: [{cri: {}}, {json: {}}]\n"
                         "sinks:\n"
                         "  - name: out\n"
                         "    type: stdout\n",
                         r->data, sl_t_src(), r->file_in) > 0);
    assert_int_equal(sl_t_write_file(r->cfg, yaml, strlen(yaml)), 0);
    free(yaml);
}

static void rig_free(rig *r)
{
    sl_t_rmtree(r->dir);
    free(r->dir), free(r->data), free(r->cfg), free(r->out), free(r->err), free(r->ml_in);
    free(r->file_in);
}

static void assert_no_data_dir(const rig *r)
{
    struct stat st;
    if (stat(r->data, &st) == 0) fail_msg("a dry run created %s", r->data);
}

/* The records printed, one JSON object a line. */
static json_t **read_records(const char *path, size_t *n)
{
    char *text = sl_t_read_file(path, NULL);
    assert_non_null(text);
    json_t **recs = NULL;
    *n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!j) fail_msg("not JSON: %s (%s)", line, e.text);
        recs = realloc(recs, (*n + 1) * sizeof *recs);
        assert_non_null(recs);
        recs[(*n)++] = j;
    }
    free(text);
    return recs;
}

static void free_records(json_t **recs, size_t n)
{
    for (size_t i = 0; i < n; i++) json_decref(recs[i]);
    free(recs);
}

static const char *str_at(json_t *rec, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(rec, obj) : rec;
    const char *s = json_string_value(json_object_get(o, key));
    if (!s) fail_msg("record lacks %s.%s: %s", obj ? obj : "", key, json_dumps(rec, 0));
    return s;
}

static void test_nginx_sample(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    char *sample = NULL;
    assert_true(asprintf(&sample, "%s/samples/access.log", sl_t_src()) > 0);
    char *args[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "access", NULL};
    assert_int_equal(run_sluice(args, sample, r.out, r.err), 0);
    size_t n = 0;
    json_t **recs = read_records(r.out, &n);
    assert_int_equal((long)n, sl_t_count_lines(sample));
    assert_string_equal(str_at(recs[0], "fields", "remote_addr"), "192.0.2.10");
    assert_string_equal(str_at(recs[0], "fields", "path"), "/index.html");
    assert_string_equal(str_at(recs[0], "fields", "status"), "200");
    assert_string_equal(str_at(recs[0], "labels", "job"), "web");
    assert_string_equal(str_at(recs[0], "labels", "method"), "GET");
    assert_string_equal(str_at(recs[1], "labels", "method"), "POST");
    assert_string_equal(str_at(recs[1], "fields", "remote_user"), "alice");
    assert_string_equal(str_at(recs[2], "fields", "status"), "404");
    /* The log's own time, not the time it was read. */
    assert_string_equal(str_at(recs[0], NULL, "time"), "2026-11-26T10:00:00.000000000Z");
    for (size_t i = 0; i < n; i++)
        assert_null(json_object_get(json_object_get(recs[i], "fields"), "parse_error"));
    free_records(recs, n);
    assert_no_data_dir(&r);
    free(sample);
    rig_free(&r);
}

static void test_json_sample(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    char *sample = NULL;
    assert_true(asprintf(&sample, "%s/samples/app.log", sl_t_src()) > 0);
    char *args[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "app", NULL};
    assert_int_equal(run_sluice(args, sample, r.out, r.err), 0);
    size_t n = 0;
    json_t **recs = read_records(r.out, &n);
    assert_int_equal((long)n, sl_t_count_lines(sample));
    assert_string_equal(str_at(recs[0], "fields", "msg"), "server started");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(recs[0], "fields"), "port")), 8080);
    assert_string_equal(str_at(recs[0], "labels", "level"), "info");
    assert_string_equal(str_at(recs[0], "labels", "job"), "app");
    assert_string_equal(str_at(recs[0], NULL, "time"), "2026-11-26T10:00:00.120000000Z");
    assert_string_equal(str_at(recs[2], "labels", "level"), "warn");
    free_records(recs, n);
    assert_no_data_dir(&r);
    free(sample);
    rig_free(&r);
}

static void test_multiline_and_bad_lines(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    const char *text = "2026-11-26 ERROR boom\n"
                       "  at a.b(C.java:1)\n"
                       "  at d.e(F.java:2)\n"
                       "2026-11-26 INFO fine\n"
                       "2026-11-26 WARN last, no newline";
    assert_int_equal(sl_t_write_file(r.ml_in, text, strlen(text)), 0);
    char *args[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "java", NULL};
    assert_int_equal(run_sluice(args, r.ml_in, r.out, r.err), 0);
    size_t n = 0;
    json_t **recs = read_records(r.out, &n);
    assert_int_equal(n, 3);
    assert_string_equal(str_at(recs[0], NULL, "line"),
                        "2026-11-26 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)");
    assert_string_equal(str_at(recs[1], NULL, "line"), "2026-11-26 INFO fine");
    assert_string_equal(str_at(recs[2], NULL, "line"), "2026-11-26 WARN last, no newline");
    free_records(recs, n);

    /* Not JSON through the JSON steps: shipped raw with parse_error. */
    const char *bad = "not json at all\n";
    assert_int_equal(sl_t_write_file(r.ml_in, bad, strlen(bad)), 0);
    char *args2[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "app", NULL};
    assert_int_equal(run_sluice(args2, r.ml_in, r.out, r.err), 0);
    recs = read_records(r.out, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(str_at(recs[0], "fields", "parse_error"), "json"));
    free_records(recs, n);

    /* CRI partial lines are joined before the JSON step sees them. */
    const char *cri = "2026-11-26T10:00:00.000000000Z stdout P {\"a\":\n"
                      "2026-11-26T10:00:00.100000000Z stdout F 1}\n"
                      "2026-11-26T10:00:01.000000000Z stderr F plain\n";
    assert_int_equal(sl_t_write_file(r.ml_in, cri, strlen(cri)), 0);
    char *args3[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "pods", NULL};
    assert_int_equal(run_sluice(args3, r.ml_in, r.out, r.err), 0);
    recs = read_records(r.out, &n);
    assert_int_equal(n, 2);
    assert_string_equal(str_at(recs[0], NULL, "line"), "{\"a\":1}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(recs[0], "fields"), "a")),
                     1);
    assert_string_equal(str_at(recs[0], NULL, "time"), "2026-11-26T10:00:00.000000000Z");
    assert_string_equal(str_at(recs[1], "fields", "stream"), "stderr");
    free_records(recs, n);
    assert_no_data_dir(&r);
    rig_free(&r);
}

static void test_usage_errors(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    char *unknown[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", "--input", "nope", NULL};
    assert_int_equal(run_sluice(unknown, NULL, r.out, r.err), 2);
    char *msg = sl_t_read_file(r.err, NULL);
    assert_non_null(strstr(msg, "no input named 'nope' (inputs: access app java pods)"));
    free(msg);
    char *no_dry[] = {"run", "-c", r.cfg, "--stdin", "--input", "app", NULL};
    assert_int_equal(run_sluice(no_dry, NULL, r.out, r.err), 2);
    char *no_input[] = {"run", "-c", r.cfg, "--dry-run", "--stdin", NULL};
    assert_int_equal(run_sluice(no_input, NULL, r.out, r.err), 2);
    assert_no_data_dir(&r);
    rig_free(&r);
}

/* `| head -1`: the reader goes away; that ends the dry run, exit 0, quietly. */
static void test_closed_output_is_a_clean_end(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    char *cmd = NULL;
    assert_true(asprintf(&cmd,
                         "bash -c 'seq 1 300000 | \"%s\" run -c \"%s\" --dry-run --stdin --input "
                         "java 2>\"%s\" | head -n 1 >/dev/null; echo ${PIPESTATUS[1]}'",
                         sl_t_bin(), r.cfg, r.err) > 0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int status = -1;
    assert_int_equal(fscanf(p, "%d", &status), 1);
    pclose(p);
    char *err = sl_t_read_file(r.err, NULL);
    if (status != 0 || (err && *err)) fail_msg("exit %d, stderr: %s", status, err ? err : "");
    free(err);
    free(cmd);
    assert_no_data_dir(&r);
    rig_free(&r);
}

typedef struct lines_wait {
    const char *path;
    const char *needle;
} lines_wait;

static bool file_has(void *arg)
{
    lines_wait *w = arg;
    return sl_t_file_has(w->path, w->needle);
}

/* `run --dry-run` over real files: prints, and leaves data_dir alone
 * (neither created nor, when it exists, written). */
static void test_file_dry_run_writes_nothing(void **st)
{
    (void)st;
    rig r;
    rig_init(&r);
    const char *line = "{\"ts\":\"2026-11-26T10:00:00Z\",\"level\":\"info\",\"msg\":\"hello\"}\n";
    assert_int_equal(sl_t_write_file(r.file_in, line, strlen(line)), 0);
    for (int round = 0; round < 2; round++) {
        if (round == 1) assert_int_equal(mkdir(r.data, 0700), 0);
        char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, "--dry-run", NULL};
        unlink(r.out);
        pid_t pid = sl_t_spawn(argv, r.out);
        assert_true(pid >= 0);
        lines_wait w = {r.out, "\"msg\":\"hello\""};
        bool printed = sl_t_wait_until(file_has, &w, sl_t_sanitized() ? 60000 : 20000);
        assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
        if (!printed) {
            char *o = sl_t_read_file(r.out, NULL);
            fail_msg("dry run printed no record:\n%s", o ? o : "");
        }
        if (round == 0) {
            assert_no_data_dir(&r);
        } else {
            char *ls = NULL;
            assert_true(asprintf(&ls, "test -z \"$(ls -A '%s')\"", r.data) > 0);
            if (system(ls) != 0) fail_msg("a dry run wrote into %s", r.data);
            free(ls);
        }
    }
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nginx_sample),
        cmocka_unit_test(test_json_sample),
        cmocka_unit_test(test_multiline_and_bad_lines),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_closed_output_is_a_clean_end),
        cmocka_unit_test(test_file_dry_run_writes_nothing),
    };
    return sl_t_run_tests(tests);
}
