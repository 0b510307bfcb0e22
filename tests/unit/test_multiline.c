/* Multiline records cut at max_lines / max_bytes (issue 21 case 7), in
 * process: the real file input joins a Java-style trace of 701 lines with
 * max_lines 500, the real parse chain gives the records their time. The
 * first part is marked `multiline_truncated`, the rest `multiline_continued`
 * with the first part's time; cuts are counted per input and logged once
 * per file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector/file.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "parsers/chain.h"
#include "parsers/timestamp.h"
#include "tests/helpers.h"

#define MAX_SEEN 16

typedef struct seen_rec {
    size_t lines; /* newlines + 1 */
    size_t bytes;
    uint32_t flags;
    int64_t time_ns;
    bool truncated, continued, parse_error;
} seen_rec;

typedef struct seen {
    sl_chain *chain;
    seen_rec rec[MAX_SEEN];
    size_t n, want;
    atomic_bool stop;
} seen;

static bool has_true(const sl_record *r, const char *key)
{
    const sl_field *f = sl_record_field(r, key, strlen(key));
    return f && f->type == SL_V_TRUE;
}

static int collect(void *arg, sl_batch *b)
{
    seen *s = arg;
    sl_chain_run(s->chain, b);
    for (uint32_t i = 0; i < b->nrecords && s->n < MAX_SEEN; i++) {
        const sl_record *r = &b->records[i];
        seen_rec *o = &s->rec[s->n++];
        o->lines = 1;
        for (size_t k = 0; k < r->line.n; k++) o->lines += r->line.p[k] == '\n';
        o->bytes = r->line.n;
        o->flags = r->flags;
        o->time_ns = r->time_ns;
        o->truncated = has_true(r, "multiline_truncated");
        o->continued = has_true(r, "multiline_continued");
        o->parse_error = sl_record_field(r, "parse_error", 11) != NULL;
    }
    sl_batch_done(b);
    if (s->n >= s->want) atomic_store(&s->stop, true);
    return SL_OK;
}

static void *run_input(void *state)
{
    sl_file_input_ops.run(state);
    return NULL;
}

/* Reads path with the file input (name `ml`, `multiline` as given) and the
 * chain below, until want records came. */
static void read_all(const char *name, const char *path, const char *multiline, seen *s)
{
    char text[2048];
    int n =
        snprintf(text, sizeof text,
                 "inputs:\n  - name: %s\n    type: file\n    paths: [\"%s\"]\n"
                 "    start_at: beginning\n    multiline: %s\n"
                 "    parse:\n"
                 "      - regex: {pattern: '^(?<ts>\\d{4}-\\d\\d-\\d\\d \\S+) (?<level>[A-Z]+)'}\n"
                 "      - timestamp: {field: ts, format: '%%Y-%%m-%%d %%H:%%M:%%S,%%f'}\n",
                 name, path, multiline);
    sl_cfg *cfg = sl_cfg_new();
    assert_non_null(cfg);
    assert_int_equal(sl_cfg_load_string(cfg, "test", text, (size_t)n), 0);
    const sl_cfg_node *in = sl_cfg_get(sl_cfg_root(cfg), "inputs")->items[0];
    assert_int_equal(sl_chain_new(cfg, sl_cfg_get(in, "parse"), name, &s->chain), 0);
    char *data_dir = sl_t_tmpdir("multiline");
    sl_input_ctx ctx = {.name = name,
                        .cfg = cfg,
                        .node = in,
                        .data_dir = data_dir,
                        .emit = collect,
                        .emit_arg = s,
                        .stop = &s->stop};
    void *state = NULL;
    sl_err err;
    assert_int_equal(sl_file_input_ops.create(&ctx, &state, &err), SL_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_input, state), 0);
    int limit = sl_t_sanitized() ? 90000 : 30000;
    for (int ms = 0; ms < limit && !atomic_load(&s->stop); ms += 5) sl_t_sleep_ms(5);
    atomic_store(&s->stop, true);
    pthread_join(th, NULL);
    sl_file_input_ops.destroy(state);
    sl_chain_free(s->chain);
    sl_cfg_free(cfg);
    sl_t_rmtree(data_dir);
    free(data_dir);
}

/* A record start at hh:mm:ss and a trace of `frames` lines under it. */
static void trace(sl_buf *b, const char *hms, int frames)
{
    char l[160];
    int n = snprintf(l, sizeof l,
                     "2026-12-06 %s,250 ERROR [main] request failed\n"
                     "java.lang.IllegalStateException: pool exhausted\n",
                     hms);
    sl_buf_append(b, l, (size_t)n);
    for (int i = 0; i < frames - 2; i++) {
        n = snprintf(l, sizeof l, "\tat com.example.pool.Pool.take(Pool.java:%d)\n", 100 + i);
        sl_buf_append(b, l, (size_t)n);
    }
}

static int64_t at(int h, int m, int sec)
{
    return ((sl_ts_days_from_civil(2026, 12, 6) * 86400) + h * 3600 + m * 60 + sec) * 1000000000LL +
           250000000;
}

/* Runs fn with stderr going to a file; returns what it wrote. */
static char *capture_stderr(const char *dir, void (*fn)(void *), void *arg)
{
    char *path = sl_t_path(dir, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    dup2(fileno(f), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    char *text = sl_t_read_file(path, NULL);
    free(path);
    return text ? text : strdup("");
}

static size_t count(const char *hay, const char *needle)
{
    size_t c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) c++;
    return c;
}

typedef struct job {
    const char *name, *path, *multiline;
    seen *s;
} job;

static void run_job(void *arg)
{
    job *j = arg;
    read_all(j->name, j->path, j->multiline, j->s);
}

static void test_cut_at_max_lines(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("multiline_in");
    char *path = sl_t_path(dir, "app.log");
    sl_buf text;
    sl_buf_init(&text, 0);
    trace(&text, "10:00:00", 701); /* 701 lines: 500 + 201 */
    trace(&text, "10:00:05", 3);
    trace(&text, "10:00:09", 1201); /* 500 + 500 + 201 */
    sl_buf_append(&text, "2026-12-06 10:00:12,250 INFO [main] done\n", 41);
    assert_int_equal(sl_t_write_file(path, text.p, text.len), 0);
    seen s = {.want = 7};
    job j = {"ml_lines", path, "{start: '^\\d{4}-', max_lines: 500, timeout: 200ms}", &s};
    char *err = capture_stderr(dir, run_job, &j);
    assert_int_equal(s.n, 7);
    const struct {
        size_t lines;
        bool truncated, continued;
        int64_t time_ns;
    } want[] = {
        {500, true, false, at(10, 0, 0)}, {201, false, true, at(10, 0, 0)},
        {3, false, false, at(10, 0, 5)},  {500, true, false, at(10, 0, 9)},
        {500, true, true, at(10, 0, 9)},  {201, false, true, at(10, 0, 9)},
        {1, false, false, at(10, 0, 12)},
    };
    for (size_t i = 0; i < 7; i++) {
        if (s.rec[i].lines != want[i].lines)
            fail_msg("record %zu: %zu lines, want %zu", i, s.rec[i].lines, want[i].lines);
        assert_int_equal(s.rec[i].truncated, want[i].truncated);
        assert_int_equal(s.rec[i].continued, want[i].continued);
        assert_int_equal(!!(s.rec[i].flags & SL_RF_ML_CUT), want[i].truncated);
        assert_int_equal(!!(s.rec[i].flags & SL_RF_ML_CONT), want[i].continued);
        /* The continuation has no time of its own (it starts with a frame),
         * yet carries the first part's, not the read time. */
        assert_int_equal(s.rec[i].time_ns, want[i].time_ns);
    }
    assert_true(s.rec[1].parse_error);
    assert_int_equal(sl_metrics_value("sluice_multiline_truncated_total", "input=\"ml_lines\""), 3);
    /* Three cuts in one file: logged once. */
    assert_int_equal(count(err, "event=multiline_truncated"), 1);
    assert_non_null(strstr(err, "max_lines=500"));
    free(err);
    sl_buf_free(&text);
    free(path);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_cut_at_max_bytes(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("multiline_in");
    char *path = sl_t_path(dir, "app.log");
    sl_buf text;
    sl_buf_init(&text, 0);
    trace(&text, "11:00:00", 120); /* about 5.3 KB: cut at 4 KiB */
    sl_buf_append(&text, "2026-12-06 11:00:01,250 INFO [main] done\n", 41);
    assert_int_equal(sl_t_write_file(path, text.p, text.len), 0);
    seen s = {.want = 3};
    job j = {"ml_bytes", path, "{start: '^\\d{4}-', max_bytes: 4KiB, timeout: 200ms}", &s};
    char *err = capture_stderr(dir, run_job, &j);
    assert_int_equal(s.n, 3);
    assert_true(s.rec[0].truncated && !s.rec[0].continued);
    assert_true(s.rec[0].bytes + 1 <= 4096);
    assert_true(s.rec[1].continued && !s.rec[1].truncated);
    assert_int_equal(s.rec[0].lines + s.rec[1].lines, 120);
    assert_int_equal(s.rec[1].time_ns, at(11, 0, 0));
    assert_int_equal(s.rec[2].time_ns, at(11, 0, 1));
    assert_false(s.rec[2].truncated || s.rec[2].continued);
    assert_int_equal(sl_metrics_value("sluice_multiline_truncated_total", "input=\"ml_bytes\""), 1);
    assert_int_equal(count(err, "event=multiline_truncated"), 1);
    free(err);
    sl_buf_free(&text);
    free(path);
    sl_t_rmtree(dir);
    free(dir);
}

/* Under the limits nothing is marked or counted. */
static void test_no_cut_no_mark(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("multiline_in");
    char *path = sl_t_path(dir, "app.log");
    sl_buf text;
    sl_buf_init(&text, 0);
    trace(&text, "12:00:00", 499);
    sl_buf_append(&text, "2026-12-06 12:00:01,250 INFO [main] done\n", 41);
    assert_int_equal(sl_t_write_file(path, text.p, text.len), 0);
    seen s = {.want = 2};
    job j = {"ml_none", path, "{start: '^\\d{4}-', max_lines: 500, timeout: 200ms}", &s};
    char *err = capture_stderr(dir, run_job, &j);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.rec[0].lines, 499);
    assert_false(s.rec[0].truncated || s.rec[0].continued || s.rec[1].truncated);
    assert_int_equal(s.rec[0].time_ns, at(12, 0, 0));
    assert_true(sl_metrics_value("sluice_multiline_truncated_total", "input=\"ml_none\"") <= 0);
    assert_null(strstr(err, "multiline_truncated"));
    free(err);
    sl_buf_free(&text);
    free(path);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_at_max_lines),
        cmocka_unit_test(test_cut_at_max_bytes),
        cmocka_unit_test(test_no_cut_no_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
