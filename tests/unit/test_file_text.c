/* The file input's text checks, in process: every line of a file full of
 * valid and invalid UTF-8 (and NULs) at every offset from the 64-byte blocks
 * of the vector scan comes out flagged exactly when a one-sequence-at-a-time
 * reference says it is not UTF-8. Run with the vector scan, with the
 * portable one ($SLUICE_SIMD=scalar), and without validate_utf8 (off by
 * default, docs/decisions/0012-input-text-checks.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "collector/file.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "core/utf8.h"
#include "tests/helpers.h"

#define MAX_LINE 800

typedef struct corpus {
    sl_buf text;
    size_t *off; /* line i is text[off[i], off[i+1] - 1) (without '\n') */
    size_t n, cap;
} corpus;

typedef struct seen {
    corpus *want;
    size_t got, mismatched_bytes, flagged, wrong_flag;
    long first_wrong;
    atomic_bool stop;
} seen;

static bool valid_reference(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = sl_utf8_seq((const unsigned char *)p + i, n - i);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}

static void add_line(corpus *c, const char *p, size_t n)
{
    if (c->n + 2 > c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->off = realloc(c->off, c->cap * sizeof *c->off);
    }
    c->off[c->n++] = c->text.len;
    sl_buf_append(&c->text, p, n);
    sl_buf_append(&c->text, "\n", 1);
    c->off[c->n] = c->text.len;
}

static void build(corpus *c)
{
    sl_buf_init(&c->text, 0);
    c->n = c->cap = 0;
    c->off = NULL;
    static const char *const pieces[] = {
        "\xc3\xa9",     "\xe2\x82\xac", "\xf0\x9f\x98\x80", /* valid */
        "\xff",         "\x80",         "\xc0\xaf",         /* invalid */
        "\xed\xa0\x80", "\xe2\x82",     "\xf4\x90\x80\x80", "\0",
    };
    char line[MAX_LINE + 8];
    /* Sequences across the edges of the vector scan's 16 KiB windows
     * (EOL_WINDOW in collector/file.c): a lead byte cut at the first edge
     * (offset 16383), and a valid one across the second (32767-32769; the
     * second line starts at 16387). */
    static char wide[16390];
    memset(wide, 'a', sizeof wide);
    wide[16383] = (char)0xe2;
    add_line(c, wide, 16386);
    memcpy(wide + 16381, "\xe2\x82\xac", 3);
    add_line(c, wide + 1, 16385);
    /* A lead byte as the last byte before the newline, and a continuation
     * as the first byte after it, at every offset around the 64-byte block
     * edges: neither may leak into the other line. */
    for (size_t len = 1; len <= 140; len++) {
        memset(line, 'a', len);
        line[len - 1] = (char)0xe2;
        add_line(c, line, len);
        line[0] = (char)0x80;
        memset(line + 1, 'b', len - 1);
        add_line(c, line, len);
        memset(line, 'c', len);
        add_line(c, line, len);
        if (len >= 3) {
            memcpy(line + len - 3, "\xe2\x82\xac", 3);
            add_line(c, line, len);
        }
    }
    uint64_t rng = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < 4000; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        size_t target = (size_t)(rng >> 20) % (i % 10 ? 200 : MAX_LINE), n = 0;
        bool clean = i % 3 == 0; /* a third of the lines only valid pieces */
        while (n < target) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            if (rng % 16 < 13) {
                size_t run = (size_t)(rng >> 8) % 90;
                if (n + run > target) run = target - n;
                memset(line + n, 'a' + (int)((rng >> 40) % 26), run);
                n += run;
            } else {
                size_t k = (size_t)(rng >> 16) % (clean ? 3 : 10);
                size_t len = k == 9 ? 1 : strlen(pieces[k]);
                memcpy(line + n, pieces[k], len);
                n += len;
            }
        }
        add_line(c, line, n);
    }
}

static int check_emit(void *arg, sl_batch *b)
{
    seen *s = arg;
    for (uint32_t i = 0; i < b->nrecords && s->got < s->want->n; i++, s->got++) {
        const sl_record *r = &b->records[i];
        const corpus *c = s->want;
        size_t wn = c->off[s->got + 1] - 1 - c->off[s->got];
        const char *w = c->text.p + c->off[s->got];
        if (r->line.n != wn || memcmp(r->line.p, w, wn) != 0) s->mismatched_bytes++;
        bool flagged = (r->flags & SL_RF_INVALID_UTF8) != 0;
        s->flagged += flagged;
        if (flagged != !valid_reference(w, wn)) {
            if (s->first_wrong < 0) s->first_wrong = (long)s->got;
            s->wrong_flag++;
        }
    }
    sl_batch_done(b);
    if (s->got >= s->want->n) atomic_store(&s->stop, true);
    return SL_OK;
}

static void *run_input(void *state)
{
    sl_file_input_ops.run(state);
    return NULL;
}

/* The real file input of cfg's first input, running on its own thread
 * (the input keeps a pointer to ctx, so the caller holds this). */
typedef struct running_input {
    sl_input_ctx ctx;
    void *state;
    pthread_t th;
} running_input;

static void start_input(running_input *ri, sl_cfg *cfg, const char *name, const char *data_dir,
                        sl_emit_fn emit, void *arg, atomic_bool *stop)
{
    ri->ctx = (sl_input_ctx){.name = name,
                             .cfg = cfg,
                             .node = sl_cfg_get(sl_cfg_root(cfg), "inputs")->items[0],
                             .data_dir = data_dir,
                             .emit = emit,
                             .emit_arg = arg,
                             .stop = stop};
    ri->state = NULL;
    sl_err err;
    assert_int_equal(sl_file_input_ops.create(&ri->ctx, &ri->state, &err), SL_OK);
    assert_int_equal(pthread_create(&ri->th, NULL, run_input, ri->state), 0);
}

static void stop_input(running_input *ri)
{
    atomic_store(ri->ctx.stop, true);
    pthread_join(ri->th, NULL);
    sl_file_input_ops.destroy(ri->state);
}

/* Runs the real file input of cfg's first input until emit sets *stop (or
 * 30 s pass), then stops and destroys it. */
static void run_until_stopped(sl_cfg *cfg, const char *name, const char *data_dir, sl_emit_fn emit,
                              void *arg, atomic_bool *stop)
{
    running_input ri;
    start_input(&ri, cfg, name, data_dir, emit, arg, stop);
    for (int ms = 0; ms < 30000 && !atomic_load(stop); ms += 5) sl_t_sleep_ms(5);
    stop_input(&ri);
}

/* Reads path with the real file input; extra: more input keys. */
static void read_all(const char *path, const char *extra, seen *s)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "inputs:\n  - name: text\n    type: file\n    paths: [\"%s\"]\n"
                     "    start_at: beginning\n%s",
                     path, extra);
    sl_cfg *cfg = sl_cfg_new();
    assert_non_null(cfg);
    assert_int_equal(sl_cfg_load_string(cfg, "test", text, (size_t)n), 0);
    char *data_dir = sl_t_tmpdir("file_text");
    run_until_stopped(cfg, "text", data_dir, check_emit, s, &s->stop);
    sl_cfg_free(cfg);
    sl_t_rmtree(data_dir);
    free(data_dir);
}

static size_t expected_invalid(const corpus *c)
{
    size_t bad = 0;
    for (size_t i = 0; i < c->n; i++)
        bad += !valid_reference(c->text.p + c->off[i], c->off[i + 1] - 1 - c->off[i]);
    return bad;
}

static void run_case(const char *extra, bool expect_flags)
{
    corpus c;
    build(&c);
    size_t bad = expected_invalid(&c);
    assert_true(bad > 1000 && bad < c.n - 1000); /* both kinds, plenty of each */
    char *dir = sl_t_tmpdir("file_text_in");
    char *path = sl_t_path(dir, "mixed.log");
    assert_int_equal(sl_t_write_file(path, c.text.p, c.text.len), 0);
    seen s = {.want = &c, .first_wrong = -1};
    read_all(path, extra, &s);
    assert_int_equal(s.got, c.n);
    assert_int_equal(s.mismatched_bytes, 0);
    if (expect_flags) {
        if (s.wrong_flag)
            fprintf(stderr, "wrong flags: %zu, first: line %ld; flagged %zu of %zu bad\n",
                    s.wrong_flag, s.first_wrong, s.flagged, bad);
        assert_int_equal(s.wrong_flag, 0);
        assert_int_equal(s.flagged, bad);
    } else {
        assert_int_equal(s.flagged, 0);
    }
    free(path);
    sl_t_rmtree(dir);
    free(dir);
    sl_buf_free(&c.text);
    free(c.off);
}

static void test_flags_vector_scan(void **st)
{
    (void)st;
    unsetenv("SLUICE_SIMD");
    run_case("    validate_utf8: true\n", true);
}

static void test_flags_portable_scan(void **st)
{
    (void)st;
    setenv("SLUICE_SIMD", "scalar", 1);
    run_case("    validate_utf8: true\n", true);
    unsetenv("SLUICE_SIMD");
}

static void test_no_flags_by_default(void **st)
{
    (void)st;
    run_case("", false);
}

/* strip_cr: records as the input emits them, joined with '|'. */
typedef struct crlf_seen {
    sl_buf got;
    size_t records, want;
    atomic_bool stop;
} crlf_seen;

static int crlf_emit(void *arg, sl_batch *b)
{
    crlf_seen *s = arg;
    for (uint32_t i = 0; i < b->nrecords; i++, s->records++) {
        sl_buf_append(&s->got, b->records[i].line.p, b->records[i].line.n);
        sl_buf_append(&s->got, "|", 1);
    }
    sl_batch_done(b);
    if (s->records >= s->want) atomic_store(&s->stop, true);
    return SL_OK;
}

static void read_crlf(const char *text, const char *extra, size_t want, sl_buf *out,
                      int64_t *stripped)
{
    char *dir = sl_t_tmpdir("file_crlf");
    char *path = sl_t_path(dir, "crlf.log");
    assert_int_equal(sl_t_write_file(path, text, strlen(text)), 0);
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "inputs:\n  - name: crlf\n    type: file\n    paths: [\"%s\"]\n"
                     "    flush_partial_after: 50ms\n%s",
                     path, extra);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "test", conf, (size_t)n), 0);
    char *data_dir = sl_t_path(dir, "data");
    crlf_seen s = {.want = want};
    sl_buf_init(&s.got, 0);
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "input", "crlf", NULL, NULL);
    int64_t before = sl_metrics_value("sluice_input_cr_stripped_total", labels);
    run_until_stopped(cfg, "crlf", data_dir, crlf_emit, &s, &s.stop);
    *stripped =
        sl_metrics_value("sluice_input_cr_stripped_total", labels) - (before > 0 ? before : 0);
    *out = s.got;
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    free(dir), free(path), free(data_dir);
}

static void test_strip_cr(void **st)
{
    (void)st;
    /* CRLF and LF lines mixed, a lone \r inside a line, two \r before a
     * newline (one goes), an empty CRLF line, and a last line without a
     * newline whose \r stays (no newline follows it). */
    static const char text[] = "first\r\nplain\nmid\rdle\r\ntwo\r\r\n\r\nlast\r";
    sl_buf got;
    int64_t stripped;
    for (int scalar = 0; scalar < 2; scalar++) {
        if (scalar) setenv("SLUICE_SIMD", "scalar", 1);
        read_crlf(text, "", 6, &got, &stripped);
        assert_int_equal(got.len, strlen("first|plain|mid\rdle|two\r||last\r|"));
        assert_memory_equal(got.p, "first|plain|mid\rdle|two\r||last\r|", got.len);
        assert_int_equal(stripped, 4);
        sl_buf_free(&got);
        unsetenv("SLUICE_SIMD");
    }
    /* Off: byte for byte, nothing counted. */
    read_crlf(text, "    strip_cr: false\n", 6, &got, &stripped);
    assert_memory_equal(got.p, "first\r|plain|mid\rdle\r|two\r\r|\r|last\r|", got.len);
    assert_int_equal(stripped, 0);
    sl_buf_free(&got);
    /* Multiline: the \r of every joined line goes. */
    static const char trace[] = "Exception: boom\r\n  at a()\r\n  at b()\r\nnext\r\n";
    read_crlf(trace, "    multiline: {start: '^\\S'}\n", 2, &got, &stripped);
    assert_int_equal(got.len, strlen("Exception: boom\n  at a()\n  at b()|next|"));
    assert_memory_equal(got.p, "Exception: boom\n  at a()\n  at b()|next|", got.len);
    assert_int_equal(stripped, 4);
    sl_buf_free(&got);
}

/* Batches as the input hands them on: how many, their records and room,
 * and whether each line came out whole, in order, with contiguous
 * positions. */
typedef struct batch_seen {
    const char *text;
    size_t off; /* where the next record's line starts in text */
    uint64_t next_begin;
    size_t records, want, batches, max_cap, wrong;
    uint32_t sizes[8]; /* records of the first batches */
    atomic_bool stop;
} batch_seen;

static int batch_emit(void *arg, sl_batch *b)
{
    batch_seen *s = arg;
    if (b->nrecords > b->cap_records || b->ticket.begin != s->next_begin) s->wrong++;
    s->next_begin = b->ticket.end;
    if (b->cap_records > s->max_cap) s->max_cap = b->cap_records;
    if (s->batches < 8) s->sizes[s->batches] = b->nrecords;
    s->batches++;
    for (uint32_t i = 0; i < b->nrecords; i++, s->records++) {
        const sl_record *r = &b->records[i];
        const char *nl = strchr(s->text + s->off, '\n');
        size_t n = nl ? (size_t)(nl - (s->text + s->off)) : 0;
        if (!nl || r->line.n != n || memcmp(r->line.p, s->text + s->off, n) != 0 ||
            r->pos_end != s->off + n + 1)
            s->wrong++;
        s->off += n + 1;
    }
    sl_batch_done(b);
    if (s->records >= s->want) atomic_store(&s->stop, true);
    return SL_OK;
}

static void read_batches(const char *text, const char *extra, size_t want, batch_seen *s)
{
    char *dir = sl_t_tmpdir("file_batches");
    char *path = sl_t_path(dir, "b.log");
    assert_int_equal(sl_t_write_file(path, text, strlen(text)), 0);
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "inputs:\n  - name: b\n    type: file\n    paths: [\"%s\"]\n%s", path, extra);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "test", conf, (size_t)n), 0);
    char *data_dir = sl_t_path(dir, "data");
    *s = (batch_seen){.text = text, .want = want};
    run_until_stopped(cfg, "b", data_dir, batch_emit, s, &s->stop);
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    free(dir), free(path), free(data_dir);
}

/* A batch starts with room for what the read can hold at 256 bytes a line
 * and doubles up to batch_records (decision 0056): a small file's batch is
 * small, and a read of many short lines still fills batches of exactly
 * batch_records, every line whole and in order. */
static void test_batch_room(void **st)
{
    (void)st;
    batch_seen s;
    /* 10,000 lines of 2 bytes in one 20 KB read: 4096 + 4096 + 1808. */
    static char shorts[20001];
    for (int i = 0; i < 10000; i++) shorts[2 * i] = (char)('a' + i % 26), shorts[2 * i + 1] = '\n';
    read_batches(shorts, "", 10000, &s);
    assert_int_equal(s.records, 10000);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.batches, 3);
    assert_int_equal(s.sizes[0], 4096);
    assert_int_equal(s.sizes[1], 4096);
    assert_int_equal(s.sizes[2], 1808);
    assert_int_equal(s.max_cap, 4096);
    /* batch_records bounds the doubling. */
    read_batches(shorts, "    batch_records: 1000\n", 10000, &s);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.batches, 10);
    assert_int_equal(s.sizes[0], 1000);
    assert_int_equal(s.max_cap, 1000);
    /* A 10 KB file of 700-byte lines: one batch with room for 55, not 4096. */
    static char longs[14 * 701 + 1];
    for (int i = 0; i < 14; i++) {
        memset(longs + i * 701, 'a' + i, 700);
        longs[i * 701 + 700] = '\n';
    }
    read_batches(longs, "", 14, &s);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.batches, 1);
    assert_int_equal(s.sizes[0], 14);
    assert_true(s.max_cap < 64);
}

/* Records of several files, each line "f<file>-<n>", counted by line. */
typedef struct evict_seen {
    pthread_mutex_t mu;
    unsigned char count[5][64];
    size_t records, bad;
    atomic_bool stop;
} evict_seen;

static int evict_emit(void *arg, sl_batch *b)
{
    evict_seen *s = arg;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < b->nrecords; i++, s->records++) {
        int f, n;
        char line[32];
        size_t len = b->records[i].line.n < 31 ? b->records[i].line.n : 31;
        memcpy(line, b->records[i].line.p, len);
        line[len] = '\0';
        if (sscanf(line, "f%d-%d", &f, &n) == 2 && f >= 0 && f < 5 && n >= 0 && n < 64)
            s->count[f][n]++;
        else
            s->bad++;
    }
    pthread_mutex_unlock(&s->mu);
    sl_batch_done(b);
    return SL_OK;
}

static size_t evict_records(evict_seen *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->records;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void append_lines(const char *path, int f, int from, int to)
{
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    for (int n = from; n < to; n++) fprintf(fp, "f%d-%d\n", f, n);
    fclose(fp);
}

/* Five files, room for two: files read to their end are closed to open
 * the others, and a line appended to each later is read from where the
 * file was left (its checkpoint position), once, without its first
 * lines again. */
static void test_evicted_file_keeps_offset(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("file_evict");
    char *paths[5];
    for (int f = 0; f < 5; f++) {
        char name[16];
        snprintf(name, sizeof name, "%d.log", f);
        paths[f] = sl_t_path(dir, name);
        append_lines(paths[f], f, 0, 32);
    }
    char *glob = sl_t_path(dir, "*.log");
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "inputs:\n  - name: ev\n    type: file\n    paths: [\"%s\"]\n"
                     "    max_open_files: 2\n    poll_interval: 50ms\n",
                     glob);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "test", conf, (size_t)n), 0);
    char *data_dir = sl_t_path(dir, "data");
    evict_seen s = {0};
    pthread_mutex_init(&s.mu, NULL);
    running_input ri;
    start_input(&ri, cfg, "ev", data_dir, evict_emit, &s, &s.stop);
    int limit = 30000 * (getenv("SLUICE_SANITIZED") ? 3 : 1);
    for (int ms = 0; ms < limit && evict_records(&s) < 5 * 32; ms += 5) sl_t_sleep_ms(5);
    assert_int_equal(evict_records(&s), 5 * 32);
    /* At most two are open now: at least three were closed after reading. */
    for (int f = 0; f < 5; f++) append_lines(paths[f], f, 32, 40);
    for (int ms = 0; ms < limit && evict_records(&s) < 5 * 40; ms += 5) sl_t_sleep_ms(5);
    /* Late duplicates would show in the counts below. */
    stop_input(&ri);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.records, 5 * 40);
    for (int f = 0; f < 5; f++)
        for (int k = 0; k < 40; k++) assert_int_equal(s.count[f][k], 1);
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "input", "ev", NULL, NULL);
    assert_true(sl_metrics_value("sluice_input_files_deferred_total", labels) > 0);
    pthread_mutex_destroy(&s.mu);
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    for (int f = 0; f < 5; f++) free(paths[f]);
    free(dir), free(glob), free(data_dir);
}

/* Lines "f<file>-<n>" of twelve files, counted; on the first batch of
 * files 0, 1 and 2 (inside emit: after the read that reached their end,
 * before the input could close them for room) file 0 grows, file 1 is
 * truncated and written again shorter, and file 2 is replaced by a new
 * file at its name. With room for two files, the input closes files read
 * to their end without an fstat when no inotify event said otherwise
 * (decision 0061): the events the changes raised must still lead to every
 * line, once (no rescan in the test's time: only the events can). */
#define CHANGE_FILES 12
typedef struct change_seen {
    pthread_mutex_t mu;
    char *paths[CHANGE_FILES];
    unsigned char count[CHANGE_FILES][256];
    bool changed[3];
    size_t records, bad;
    atomic_bool stop;
} change_seen;

static void write_lines(const char *path, const char *mode, int f, int from, int to)
{
    FILE *fp = fopen(path, mode);
    assert_non_null(fp);
    for (int n = from; n < to; n++) fprintf(fp, "f%d-%d\n", f, n);
    fclose(fp);
}

static int change_emit(void *arg, sl_batch *b)
{
    change_seen *s = arg;
    pthread_mutex_lock(&s->mu);
    int first = -1;
    for (uint32_t i = 0; i < b->nrecords; i++, s->records++) {
        int f, n;
        char line[32];
        size_t len = b->records[i].line.n < 31 ? b->records[i].line.n : 31;
        memcpy(line, b->records[i].line.p, len);
        line[len] = '\0';
        if (sscanf(line, "f%d-%d", &f, &n) == 2 && f >= 0 && f < CHANGE_FILES && n >= 0 &&
            n < 256) {
            s->count[f][n]++;
            if (first < 0) first = f;
        } else {
            s->bad++;
        }
    }
    if (first >= 0 && first < 3 && !s->changed[first]) {
        s->changed[first] = true;
        if (first == 0) {
            write_lines(s->paths[0], "a", 0, 32, 40);
        } else if (first == 1) {
            write_lines(s->paths[1], "w", 1, 100, 105);
        } else {
            assert_int_equal(unlink(s->paths[2]), 0);
            write_lines(s->paths[2], "w", 2, 200, 205);
        }
    }
    pthread_mutex_unlock(&s->mu);
    sl_batch_done(b);
    return SL_OK;
}

static size_t change_records(change_seen *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->records;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void test_changed_before_close_for_room(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("file_change");
    change_seen s = {0};
    pthread_mutex_init(&s.mu, NULL);
    for (int f = 0; f < CHANGE_FILES; f++) {
        char name[16];
        snprintf(name, sizeof name, "%02d.log", f);
        s.paths[f] = sl_t_path(dir, name);
        write_lines(s.paths[f], "w", f, 0, 32);
    }
    char *glob = sl_t_path(dir, "*.log");
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "inputs:\n  - name: ch\n    type: file\n    paths: [\"%s\"]\n"
                     "    max_open_files: 2\n    poll_interval: 50ms\n"
                     "    rescan_interval: 1h\n",
                     glob);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "test", conf, (size_t)n), 0);
    char *data_dir = sl_t_path(dir, "data");
    running_input ri;
    start_input(&ri, cfg, "ch", data_dir, change_emit, &s, &s.stop);
    /* Every original line, the 8 appended, the 5 rewritten, the 5 new. */
    size_t want = CHANGE_FILES * 32 + 8 + 5 + 5;
    int limit = 30000 * (getenv("SLUICE_SANITIZED") ? 3 : 1);
    for (int ms = 0; ms < limit && change_records(&s) < want; ms += 5) sl_t_sleep_ms(5);
    stop_input(&ri);
    assert_int_equal(s.bad, 0);
    assert_true(s.changed[0] && s.changed[1] && s.changed[2]);
    assert_int_equal(s.records, want);
    for (int f = 0; f < CHANGE_FILES; f++)
        for (int k = 0; k < 32; k++) assert_int_equal(s.count[f][k], 1);
    for (int k = 32; k < 40; k++) assert_int_equal(s.count[0][k], 1);
    for (int k = 100; k < 105; k++) assert_int_equal(s.count[1][k], 1);
    for (int k = 200; k < 205; k++) assert_int_equal(s.count[2][k], 1);
    pthread_mutex_destroy(&s.mu);
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    for (int f = 0; f < CHANGE_FILES; f++) free(s.paths[f]);
    free(dir), free(glob), free(data_dir);
}

/* Files created, read and deleted one after another, uniquely named, as a
 * process making short-lived files in a watched folder does forever.
 * Each file is held open by the test once deleted, so that no inode
 * number comes back (a file system that never reuses them): the input's
 * checkpoint entries are then bounded by what it forgets, not by inode
 * reuse overwriting them (decision 0069). */
typedef struct churn_seen {
    pthread_mutex_t mu;
    size_t records, bad;
    unsigned char count[512];
    atomic_bool stop;
} churn_seen;

static int churn_emit(void *arg, sl_batch *b)
{
    churn_seen *s = arg;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < b->nrecords; i++, s->records++) {
        char line[32];
        size_t len = b->records[i].line.n < 31 ? b->records[i].line.n : 31;
        memcpy(line, b->records[i].line.p, len);
        line[len] = '\0';
        int k;
        if (sscanf(line, "churn-%d", &k) == 1 && k >= 0 && k < 512)
            s->count[k]++;
        else
            s->bad++;
    }
    pthread_mutex_unlock(&s->mu);
    sl_batch_done(b);
    return SL_OK;
}

static size_t churn_count(churn_seen *s, int k)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->count[k];
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Entries in the input's saved checkpoint. */
static long saved_entries(const char *data_dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/checkpoints/%s.json", data_dir, name);
    return sl_t_file_count(path, "\"path\":");
}

/* nfiles files "<k>.log" of one line "churn-<k>", each created once its
 * predecessor's line came out; delete_lag: each is deleted that many
 * files later (0: at once). Returns the saved checkpoint's entries after
 * a graceful stop; *dropped: the over_max_entries drops counted. */
static long churn(const char *name, const char *extra, int nfiles, int delete_lag, double *dropped)
{
    char *dir = sl_t_tmpdir("file_churn");
    char *glob = sl_t_path(dir, "*.log");
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "inputs:\n  - name: %s\n    type: file\n    paths: [\"%s\"]\n"
                     "    poll_interval: 50ms\n    checkpoint_interval: 100ms\n%s",
                     name, glob, extra);
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "test", conf, (size_t)n), 0);
    char *data_dir = sl_t_path(dir, "data");
    churn_seen s = {0};
    pthread_mutex_init(&s.mu, NULL);
    running_input ri;
    start_input(&ri, cfg, name, data_dir, churn_emit, &s, &s.stop);
    int *held = calloc((size_t)nfiles, sizeof *held);
    char **paths = calloc((size_t)nfiles, sizeof *paths);
    int limit = sl_t_scaled_ms(30000);
    for (int k = 0; k < nfiles; k++) {
        char fname[32], line[32];
        snprintf(fname, sizeof fname, "u%05d.log", k);
        paths[k] = sl_t_path(dir, fname);
        int len = snprintf(line, sizeof line, "churn-%d\n", k);
        assert_int_equal(sl_t_write_file(paths[k], line, (size_t)len), 0);
        /* Read and acknowledged before it goes. */
        int64_t t0 = sl_t_now_ms();
        while (churn_count(&s, k) == 0 && sl_t_now_ms() - t0 < limit) sl_t_sleep_ms(1);
        assert_int_equal(churn_count(&s, k), 1);
        int d = k - delete_lag;
        if (d >= 0) {
            held[d] = open(paths[d], O_RDONLY);
            assert_true(held[d] >= 0);
            assert_int_equal(unlink(paths[d]), 0);
        }
    }
    for (int d = nfiles - delete_lag; d < nfiles; d++) {
        if (d < 0) continue;
        held[d] = open(paths[d], O_RDONLY);
        assert_true(held[d] >= 0);
        assert_int_equal(unlink(paths[d]), 0);
    }
    /* Every deleted file released by the input (then saved at the stop). */
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "input", name, NULL, NULL);
    int64_t t0 = sl_t_now_ms();
    while (sl_metrics_value("sluice_input_open_files", labels) > 0 && sl_t_now_ms() - t0 < limit)
        sl_t_sleep_ms(5);
    assert_int_equal(sl_metrics_value("sluice_input_open_files", labels), 0);
    stop_input(&ri);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.records, (size_t)nfiles); /* each line once */
    long entries = saved_entries(data_dir, name);
    sl_metric_labels(labels, sizeof labels, "input", name, "reason", "over_max_entries");
    *dropped = (double)sl_metrics_value("sluice_checkpoint_entries_dropped_total", labels);
    for (int k = 0; k < nfiles; k++) {
        if (held[k] > 0) close(held[k]);
        free(paths[k]);
    }
    free(held), free(paths);
    pthread_mutex_destroy(&s.mu);
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    free(dir), free(glob), free(data_dir);
    return entries;
}

/* Deleted while the input has them open: forgotten as they are closed
 * (they were read to their end; nothing could find them again). Kept
 * until forget_after, 300 files left 300 entries. */
static void test_deleted_files_are_forgotten(void **st)
{
    (void)st;
    double dropped;
    long entries = churn("churn", "", 300, 0, &dropped);
    fprintf(stderr, "300 files created, read and deleted: %ld checkpoint entries saved\n", entries);
    assert_true(entries >= 0 && entries <= 2);
    assert_true(dropped == 0);
}

/* Closed for room (max_open_files: 2) while present, deleted later while
 * closed: no close says they are gone, so max_checkpoint_entries bounds
 * them, the least recently seen dropped first, counted. */
static void test_entries_over_max_are_dropped(void **st)
{
    (void)st;
    double dropped;
    long entries = churn("churnmax", "    max_open_files: 2\n    max_checkpoint_entries: 16\n", 120,
                         4, &dropped);
    fprintf(stderr, "120 files closed for room then deleted, max 16: %ld entries, %.0f dropped\n",
            entries, dropped);
    assert_true(entries >= 0 && entries <= 16);
    assert_true(dropped > 0);
}

/* More files than max_checkpoint_entries still there, closed for room:
 * their entries are kept past the bound (forgotten, each would be read
 * again from its start at the next scan), so every line comes once; once
 * deleted, they go. */
static void test_present_files_kept_over_max(void **st)
{
    (void)st;
    double dropped;
    long entries = churn("churnkeep", "    max_open_files: 2\n    max_checkpoint_entries: 16\n", 60,
                         60, &dropped);
    fprintf(stderr, "60 files present, max 16: %ld entries at the end, %.0f dropped\n", entries,
            dropped);
    assert_true(entries >= 0 && entries <= 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_vector_scan),
        cmocka_unit_test(test_flags_portable_scan),
        cmocka_unit_test(test_no_flags_by_default),
        cmocka_unit_test(test_strip_cr),
        cmocka_unit_test(test_batch_room),
        cmocka_unit_test(test_evicted_file_keeps_offset),
        cmocka_unit_test(test_changed_before_close_for_room),
        cmocka_unit_test(test_deleted_files_are_forgotten),
        cmocka_unit_test(test_entries_over_max_are_dropped),
        cmocka_unit_test(test_present_files_kept_over_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
