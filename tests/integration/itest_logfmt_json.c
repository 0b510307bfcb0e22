/* End to end through the real binary: hostile logfmt lines (escapes JSON
 * lacks, lone surrogates, a trailing backslash, control bytes, invalid
 * UTF-8) read by the file input, parsed by the `logfmt` step and written by
 * the file sink with `format: json`. Every output line must be valid JSON
 * for two strict readers (parsers/json.c's validator and jansson, which
 * refuse lone surrogates and invalid UTF-8) and hold the values an operator
 * would read in the line. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "parsers/json.h"
#include "tests/helpers.h"

#define FFFD "\xef\xbf\xbd"

typedef struct fixture {
    char *dir, *cfg, *in, *out, *log;
    pid_t pid;
} fixture;

static int setup(void **st)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = sl_t_tmpdir("logfmt_json");
    f->cfg = sl_t_path(f->dir, "sluice.yml");
    f->in = sl_t_path(f->dir, "in.log");
    f->out = sl_t_path(f->dir, "out.json");
    f->log = sl_t_path(f->dir, "agent.log");
    char yml[2048];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    start_at: beginning\n"
             "    poll_interval: 50ms\n"
             "    parse:\n"
             "      - logfmt: {}\n"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    format: json\n"
             "    path: %s\n",
             f->dir, f->in, f->out);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fixture *f = *st;
    if (f->pid > 0) sl_t_stop(f->pid, SIGKILL, sl_t_scaled_ms(5000));
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", f->dir);
    else
        sl_t_rmtree(f->dir);
    free(f->dir), free(f->cfg), free(f->in), free(f->out), free(f->log), free(f);
    return 0;
}

typedef struct want {
    const char *key, *val;
    size_t n; /* 0: strlen(val) */
} want;

/* One input line and what its fields must read as. */
typedef struct hostile {
    const char *line;
    want w[3];
} hostile;

static const hostile lines[] = {
    {"id=0 a=\"lone\\ud800\" b=\"\\udc00x\"", {{"a", "lone" FFFD, 0}, {"b", FFFD "x", 0}}},
    {"id=1 a=\"x\\y\" b=\"it\\'s\" c=\"C:\\x41\\x\"",
     {{"a", "xy", 0}, {"b", "it's", 0}, {"c", "C:Ax", 0}}},
    {"id=2 a=\"end\\", {{"a", "end\\", 0}}},
    {"id=3 a=\"\\x01\x7f\\tq\" b=\"\\xff\"", {{"a", "\x01\x7f\tq", 0}, {"b", FFFD, 0}}},
    {"id=4 a=\"\\ud83d\\ude00 \\\"q\\\" \\\\\"", {{"a", "\xf0\x9f\x98\x80 \"q\" \\", 0}}},
    {"id=5 k\\x=v \xff=1 a=\"bad\xc3 \\n\"",
     {{"k\\x", "v", 0}, {FFFD, "1", 0}, {"a", "bad" FFFD " \n", 0}}},
    {"id=6 a=\"\\u0000z\" b=\"\\U0001F600\"", {{"a", "\0z", 2}, {"b", "\xf0\x9f\x98\x80", 0}}},
};
enum { NLINES = sizeof lines / sizeof *lines };

static void check_line(const char *p, size_t n, bool *seen)
{
    sl_err e = {0};
    if (sl_json_validate(p, n, NULL, &e) != 0)
        fail_msg("invalid JSON (%s): %.*s", e.msg, (int)n, p);
    json_error_t je;
    json_t *doc = json_loadb(p, n, JSON_ALLOW_NUL, &je);
    if (!doc) fail_msg("jansson refuses (%s): %.*s", je.text, (int)n, p);
    json_t *fields = json_object_get(doc, "fields");
    const char *id = json_string_value(json_object_get(fields, "id"));
    if (!id || id[0] < '0' || id[0] >= '0' + NLINES || id[1]) fail_msg("no id: %.*s", (int)n, p);
    int k = id[0] - '0';
    seen[k] = true;
    for (int i = 0; i < 3 && lines[k].w[i].key; i++) {
        const want *w = &lines[k].w[i];
        size_t wn = w->n ? w->n : strlen(w->val);
        json_t *v = json_object_get(fields, w->key);
        if (!json_is_string(v) || json_string_length(v) != wn ||
            memcmp(json_string_value(v), w->val, wn) != 0)
            fail_msg("line %d: field '%s' is not what the line says: %.*s", k, w->key, (int)n, p);
    }
    json_decref(doc);
}

static void test_hostile_logfmt_gives_valid_json(void **st)
{
    fixture *f = *st;
    char buf[2048];
    size_t n = 0;
    for (int i = 0; i < NLINES; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\n", lines[i].line);
    assert_true(n < sizeof buf);
    assert_int_equal(sl_t_write_file(f->in, buf, n), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", f->cfg, NULL};
    f->pid = sl_t_spawn(argv, f->log);
    assert_true(f->pid > 0);
    assert_true(sl_t_wait_lines(f->out, NLINES, sl_t_scaled_ms(20000)));
    assert_int_equal(sl_t_stop(f->pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    f->pid = 0;
    size_t len;
    char *data = sl_t_read_file(f->out, &len);
    assert_non_null(data);
    bool seen[NLINES] = {0};
    long count = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        if (!nl) fail_msg("output ends without a newline");
        check_line(p, (size_t)(nl - p), seen);
        count++;
        p = nl + 1;
    }
    assert_int_equal(count, NLINES);
    for (int i = 0; i < NLINES; i++)
        if (!seen[i]) fail_msg("line %d missing", i);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_logfmt_gives_valid_json, setup, teardown),
    };
    return sl_t_run_tests(tests);
}
