/* The journald input, in process, on real journal files written by
 * systemd-journal-remote: fields and timestamps, following appends and new
 * files, filters, restart from the cursor (graceful, simulated kill,
 * vacuumed cursor), hostile entries and corrupt files. The emit callback
 * records every record and acknowledges batches, optionally keeping the
 * newest few in flight.
 *
 * One file over 800 lines: every case needs the same journal writer and
 * emit harness, and meson runs it as one program per module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector/journald.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "tests/fixtures/journal/jexport.h"
#include "tests/helpers.h"

#define BASE_USEC 1700000000000000ULL
#define MAX_HELD  64

/* ---- a recording sink ---- */

typedef struct rfield {
    char *key, *val;
    size_t vlen;
    uint8_t flags;
} rfield;

typedef struct rec {
    char *line;
    size_t n;
    int64_t time_ns;
    uint32_t flags;
    rfield *f;
    uint32_t nf;
    long seq; /* from "seq=N" in the line, -1 otherwise */
    char labels[256];
} rec;

/* A batch handed on: its size, whether it asked the sinks to send it at
 * once (flush_now) and when it came. */
typedef struct batch_note {
    uint32_t nrecords;
    bool flush_now;
    int64_t at_ns;
} batch_note;

typedef struct sink {
    pthread_mutex_t mu;
    rec *r;
    size_t n, cap;
    int hold;       /* batches kept unacknowledged (in flight) */
    long ack_limit; /* stop acknowledging past this many records (-1: never) */
    sl_batch *held[MAX_HELD];
    int nheld;
    long acked;          /* records acknowledged */
    long acked_last_seq; /* seq of the last acknowledged record */
    int delay_us;        /* per batch, to make runs take a while */
    batch_note log[256]; /* every batch handed on */
    int nlog;
} sink;

static void sink_init(sink *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->ack_limit = -1;
    s->acked_last_seq = -1;
}

static void sink_clear(sink *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->r[i].line);
        for (uint32_t k = 0; k < s->r[i].nf; k++) free(s->r[i].f[k].key), free(s->r[i].f[k].val);
        free(s->r[i].f);
    }
    free(s->r);
    s->r = NULL;
    s->n = s->cap = 0;
}

static void sink_free(sink *s)
{
    sink_clear(s);
    pthread_mutex_destroy(&s->mu);
}

static char *dupn(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static long batch_last_seq(const sl_batch *b)
{
    long seq = -1;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->line.n > 4 && memcmp(r->line.p, "seq=", 4) == 0) seq = strtol(r->line.p + 4, 0, 10);
    }
    return seq;
}

static void ack(sink *s, sl_batch *b)
{
    s->acked += b->nrecords;
    long last = batch_last_seq(b);
    if (last >= 0) s->acked_last_seq = last;
    sl_batch_done(b);
}

static int emit(void *arg, sl_batch *b)
{
    sink *s = arg;
    if (s->delay_us) usleep((useconds_t)s->delay_us);
    pthread_mutex_lock(&s->mu);
    if (s->nlog < (int)(sizeof s->log / sizeof *s->log))
        s->log[s->nlog++] = (batch_note){b->nrecords, b->flush_now, sl_monotonic_ns()};
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 1024;
            s->r = realloc(s->r, s->cap * sizeof *s->r);
        }
        rec *o = &s->r[s->n++];
        memset(o, 0, sizeof *o);
        o->line = dupn(r->line.p, r->line.n);
        o->n = r->line.n;
        o->time_ns = r->time_ns;
        o->flags = r->flags;
        o->seq =
            (r->line.n > 4 && memcmp(r->line.p, "seq=", 4) == 0) ? strtol(o->line + 4, 0, 10) : -1;
        o->f = calloc(r->nfields + 1, sizeof *o->f);
        for (uint32_t k = 0; k < r->nfields; k++) {
            o->f[k].key = dupn(r->fields[k].key.p, r->fields[k].key.n);
            o->f[k].val = dupn(r->fields[k].val.p, r->fields[k].val.n);
            o->f[k].vlen = r->fields[k].val.n;
            o->f[k].flags = r->fields[k].flags;
        }
        o->nf = r->nfields;
        size_t ln = 0;
        for (uint32_t k = 0; k < b->nlabels; k++)
            ln += (size_t)snprintf(o->labels + ln, sizeof o->labels - ln, "%.*s=%.*s,",
                                   (int)b->labels[k].key.n, b->labels[k].key.p,
                                   (int)b->labels[k].val.n, b->labels[k].val.p);
    }
    bool acking = s->ack_limit < 0 || s->acked + (long)b->nrecords <= s->ack_limit;
    if (!acking) {
        sl_batch_unref(b); /* never acknowledged: like a sink that gave up */
    } else if (s->hold > 0) {
        s->held[s->nheld++] = b;
        if (s->nheld > s->hold) {
            ack(s, s->held[0]);
            memmove(s->held, s->held + 1, (size_t)--s->nheld * sizeof *s->held);
        }
    } else {
        ack(s, b);
    }
    pthread_mutex_unlock(&s->mu);
    return SL_OK;
}

static size_t sink_count(sink *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static bool wait_count(sink *s, size_t n, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (sink_count(s) >= n) return true;
        sl_t_sleep_ms(10);
    }
    return sink_count(s) >= n;
}

static const rfield *field(const rec *r, const char *key)
{
    for (uint32_t i = r->nf; i-- > 0;)
        if (strcmp(r->f[i].key, key) == 0) return &r->f[i];
    return NULL;
}

static const char *fval(const rec *r, const char *key)
{
    const rfield *f = field(r, key);
    return f ? f->val : NULL;
}

/* ---- running the input ---- */

typedef struct runner {
    sl_cfg *cfg;
    sl_input_ctx ctx;
    void *state;
    pthread_t th;
    atomic_bool stop;
    int run_rc;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->run_rc = sl_journald_input_ops.run(r->state);
    return NULL;
}

static int create_input(runner *r, const char *name, const char *dir, const char *data_dir,
                        const char *extra, sink *s, bool dry_run)
{
    memset(r, 0, sizeof *r);
    char yml[4096];
    snprintf(yml, sizeof yml,
             "inputs:\n"
             "  - name: %s\n"
             "    type: journald\n"
             "    directory: %s\n"
             "    batch_records: 50\n"
             "    checkpoint_interval: 20ms\n"
             "%s",
             name, dir, extra ? extra : "");
    r->cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(r->cfg, "test.yml", yml, strlen(yml)), 0);
    const sl_cfg_node *inputs = sl_cfg_get(sl_cfg_root(r->cfg), "inputs");
    assert_non_null(inputs);
    r->ctx.name = name;
    r->ctx.cfg = r->cfg;
    r->ctx.node = inputs->items[0];
    r->ctx.data_dir = data_dir;
    r->ctx.dry_run = dry_run;
    r->ctx.emit = emit;
    r->ctx.emit_arg = s;
    r->ctx.stop = &r->stop;
    atomic_init(&r->stop, false);
    sl_err err = {0};
    int rc = sl_journald_input_ops.create(&r->ctx, &r->state, &err);
    for (size_t i = 0; i < sl_cfg_nerrors(r->cfg); i++)
        fprintf(stderr, "config: %s\n", sl_cfg_error_at(r->cfg, i));
    return rc;
}

static void start(runner *r, const char *name, const char *dir, const char *data_dir,
                  const char *extra, sink *s)
{
    assert_int_equal(create_input(r, name, dir, data_dir, extra, s, false), 0);
    assert_int_equal(pthread_create(&r->th, NULL, run_thread, r), 0);
}

/* Stops run(); the sink's held batches are dropped unacknowledged first when
 * crash is set, else acknowledged, then destroy writes the final
 * checkpoint. Returns how long run() took to return, in ms. */
static long stop(runner *r, sink *s, bool crash)
{
    int64_t t0 = sl_monotonic_ns();
    atomic_store(&r->stop, true);
    pthread_join(r->th, NULL);
    long ms = (long)((sl_monotonic_ns() - t0) / 1000000);
    pthread_mutex_lock(&s->mu);
    if (!crash)
        for (int i = 0; i < s->nheld; i++) ack(s, s->held[i]);
    else
        for (int i = 0; i < s->nheld; i++) sl_batch_unref(s->held[i]);
    s->nheld = 0;
    pthread_mutex_unlock(&s->mu);
    sl_journald_input_ops.destroy(r->state);
    sl_cfg_free(r->cfg);
    return ms;
}

static int64_t metric(const char *name, const char *input)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, NULL, NULL);
    int64_t v = sl_metrics_value(name, l);
    return v < 0 ? 0 : v;
}

/* ---- journal files ---- */

typedef struct fx {
    char *dir, *jdir, *data;
} fx;

static int setup(void **st)
{
    if (!jx_remote_bin()) {
        fprintf(stderr, "systemd-journal-remote is not installed\n");
        *st = NULL;
        return 0;
    }
    fx *f = calloc(1, sizeof *f);
    f->dir = sl_t_tmpdir("journald");
    f->jdir = sl_t_path(f->dir, "journal");
    f->data = sl_t_path(f->dir, "data");
    mkdir(f->jdir, 0755);
    sl_log_set_level(SL_LOG_WARN);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    if (!f) return 0;
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", f->dir);
    else
        sl_t_rmtree(f->dir);
    free(f->dir), free(f->jdir), free(f->data), free(f);
    return 0;
}

#define NEED_FIXTURE(f)                                                                            \
    do {                                                                                           \
        if (!(f)) skip();                                                                          \
    } while (0)

static const char *unit_of(long i)
{
    static const char *const u[] = {"a.service", "b.service", "c.scope"};
    return u[i % 3];
}

/* Entries [from, to) of the standard shape, appended to dir/name. */
static void write_entries_in(const char *dir, const char *name, long from, long to)
{
    char *path = sl_t_path(dir, name);
    jx_writer *w = jx_open(path);
    assert_non_null(w);
    for (long i = from; i < to; i++) {
        jx_begin(w, BASE_USEC + (uint64_t)i * 1000, 1000 + (uint64_t)i, NULL);
        jx_fieldf(w, "MESSAGE", "seq=%06ld hello from entry %ld", i, i);
        jx_fieldf(w, "PRIORITY", "%ld", i % 8);
        jx_field(w, "_SYSTEMD_UNIT", unit_of(i), strlen(unit_of(i)));
        jx_fieldf(w, "SYSLOG_IDENTIFIER", "ident%ld", i % 2);
        jx_field(w, "_HOSTNAME", "node-1", 6);
        jx_fieldf(w, "_PID", "%ld", 100 + i);
        jx_field(w, "_COMM", "worker", 6);
        jx_fieldf(w, "FOO", "%ld", i % 4);
        jx_field(w, "_TRANSPORT", "journal", 7);
        jx_end(w);
    }
    assert_int_equal(jx_close(w), 0);
    free(path);
}

static void write_entries(const fx *f, const char *name, long from, long to)
{
    write_entries_in(f->jdir, name, from, to);
}

/* Every seq in [from, to) exactly `times` times; returns records outside. */
static void check_seqs(sink *s, long from, long to, long *missing, long *dups, long *outside)
{
    long n = to - from;
    int *seen = calloc((size_t)n, sizeof *seen);
    *missing = *dups = *outside = 0;
    for (size_t i = 0; i < s->n; i++) {
        long q = s->r[i].seq;
        if (q < from || q >= to)
            (*outside)++;
        else if (seen[q - from]++)
            (*dups)++;
    }
    for (long i = 0; i < n; i++) *missing += !seen[i];
    free(seen);
}

static void assert_in_order(sink *s)
{
    for (size_t i = 1; i < s->n; i++) assert_true(s->r[i].seq > s->r[i - 1].seq);
}

/* ---- tests ---- */

static void test_fields_timestamps_labels(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 300);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jf", f->jdir, f->data,
          "    labels: { job: sys }\n"
          "    labels_from: { unit: _SYSTEMD_UNIT, severity: level, foo: FOO }\n"
          "    fields: { keep: [FOO], drop: [_COMM] }\n",
          &s);
    assert_true(wait_count(&s, 300, 10000));
    stop(&r, &s, false);
    assert_int_equal(s.n, 300);
    for (size_t k = 0; k < s.n; k++) {
        const rec *x = &s.r[k];
        long i = (long)k;
        char want[64];
        snprintf(want, sizeof want, "seq=%06ld hello from entry %ld", i, i);
        assert_string_equal(x->line, want);
        assert_int_equal(x->time_ns, (int64_t)(BASE_USEC + (uint64_t)i * 1000) * 1000);
        static const char *const lv[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};
        assert_string_equal(fval(x, "level"), lv[i % 8]);
        assert_string_equal(fval(x, "unit"), unit_of(i));
        snprintf(want, sizeof want, "ident%ld", i % 2);
        assert_string_equal(fval(x, "identifier"), want);
        assert_string_equal(fval(x, "hostname"), "node-1");
        snprintf(want, sizeof want, "%ld", 100 + i);
        assert_string_equal(fval(x, "pid"), want);
        assert_string_equal(fval(x, "boot_id"), "5e1ce5e1ce5e1ce5e1ce5e1ce5e1ce00");
        assert_null(fval(x, "comm"));       /* dropped */
        assert_null(fval(x, "_TRANSPORT")); /* not kept */
        snprintf(want, sizeof want, "%ld", i % 4);
        assert_string_equal(fval(x, "FOO"), want);
        /* labels: same name as the field marks it, another name adds one */
        assert_true(field(x, "unit")->flags & SL_FF_LABEL);
        assert_string_equal(fval(x, "severity"), lv[i % 8]);
        assert_true(field(x, "severity")->flags & SL_FF_LABEL);
        assert_false(field(x, "level")->flags & SL_FF_LABEL);
        assert_true(field(x, "foo")->flags & SL_FF_LABEL);
        assert_string_equal(x->labels, "job=sys,");
        assert_int_equal(x->flags, 0);
    }
    assert_int_equal(metric("sluice_input_records_total", "jf"), 300);
    assert_true(metric("sluice_input_bytes_total", "jf") > 300 * 30);
    sink_free(&s);
}

static void test_keep_all_fields(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 20);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jk", f->jdir, f->data, "    fields: { keep: ['*'], drop: [_TRANSPORT, pid] }\n", &s);
    assert_true(wait_count(&s, 20, 10000));
    stop(&r, &s, false);
    assert_int_equal(s.n, 20);
    for (size_t k = 0; k < s.n; k++) {
        const rec *x = &s.r[k];
        char want[16];
        snprintf(want, sizeof want, "%zu", k % 4);
        assert_string_equal(fval(x, "FOO"), want);
        assert_string_equal(fval(x, "comm"), "worker");
        assert_null(fval(x, "_COMM"));      /* mapped, not repeated */
        assert_null(fval(x, "MESSAGE"));    /* it is the line */
        assert_null(fval(x, "_TRANSPORT")); /* dropped */
        assert_null(fval(x, "pid"));
        assert_null(fval(x, "_PID"));
    }
    sink_free(&s);
}

/* fields.keep at its limit (64 names) with names alike in length and in
 * their first, middle and last bytes (the input finds an entry's fields by
 * a hash of those): every kept field arrives with its own value, one alike
 * but not kept does not, and a label from one of them is set. */
static void test_many_alike_kept_fields(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    char keep[64 * 8 + 64] = "    fields: { keep: [";
    char name[6] = "K?M?Z";
    for (int k = 0; k < 64; k++) {
        name[1] = (char)('A' + k / 8);
        name[3] = (char)('A' + k % 8);
        strcat(keep, name);
        strcat(keep, k < 63 ? ", " : "] }\n");
    }
    char *path = sl_t_path(f->jdir, "alike.journal");
    jx_writer *w = jx_open(path);
    assert_non_null(w);
    for (long i = 0; i < 10; i++) {
        jx_begin(w, BASE_USEC + (uint64_t)i * 1000, 1000 + (uint64_t)i, NULL);
        jx_fieldf(w, "MESSAGE", "entry %ld", i);
        jx_fieldf(w, "KXMXZ", "not kept %ld", i);
        for (int k = 63; k >= 0; k--) {
            name[1] = (char)('A' + k / 8);
            name[3] = (char)('A' + k % 8);
            jx_fieldf(w, name, "%s-%ld", name, i);
        }
        jx_end(w);
    }
    assert_int_equal(jx_close(w), 0);
    free(path);
    char cfg[sizeof keep + 64];
    snprintf(cfg, sizeof cfg, "%s    labels_from: { alike: KHMHZ }\n", keep);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jalike", f->jdir, f->data, cfg, &s);
    assert_true(wait_count(&s, 10, 10000));
    stop(&r, &s, false);
    assert_int_equal(s.n, 10);
    for (size_t i = 0; i < s.n; i++) {
        const rec *x = &s.r[i];
        char want[32];
        snprintf(want, sizeof want, "entry %zu", i);
        assert_string_equal(x->line, want);
        for (int k = 0; k < 64; k++) {
            name[1] = (char)('A' + k / 8);
            name[3] = (char)('A' + k % 8);
            snprintf(want, sizeof want, "%s-%zu", name, i);
            assert_non_null(fval(x, name));
            assert_string_equal(fval(x, name), want);
        }
        assert_null(fval(x, "KXMXZ"));
        snprintf(want, sizeof want, "KHMHZ-%zu", i);
        assert_string_equal(fval(x, "alike"), want);
        assert_true(field(x, "alike")->flags & SL_FF_LABEL);
        assert_int_equal(x->flags, 0);
    }
    sink_free(&s);
}

/* Entries appended to the open file, then a new file in the folder, while
 * the input runs: all arrive, in order. */
static void test_follows_appends_and_new_files(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 100);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jfollow", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 100, 10000));
    write_entries(f, "remote.journal", 100, 200);
    assert_true(wait_count(&s, 200, 10000));
    write_entries(f, "second.journal", 200, 300);
    assert_true(wait_count(&s, 300, 10000));
    write_entries(f, "third.journal", 300, 310);
    write_entries(f, "second.journal", 310, 320);
    assert_true(wait_count(&s, 320, 10000));
    sl_t_sleep_ms(200);
    long ms = stop(&r, &s, false);
    assert_true(ms < 500);
    long missing, dups, outside;
    check_seqs(&s, 0, 320, &missing, &dups, &outside);
    assert_int_equal(missing, 0);
    assert_int_equal(dups, 0);
    assert_int_equal(outside, 0);
    assert_in_order(&s);
    sink_free(&s);
}

/* Stopped mid-stream with batches in flight: the restart resumes right
 * after the last acknowledged entry; only the in-flight batches repeat. */
/* extra: more keys for the input (reopen_after: restarts across reopens). */
static void restart_resumes_after_acked(fx *f, const char *name, const char *extra)
{
    const long total = 3000;
    write_entries(f, "remote.journal", 0, total);
    sink s;
    sink_init(&s);
    s.hold = 3;
    s.delay_us = 2000;
    runner r;
    start(&r, name, f->jdir, f->data, extra, &s);
    assert_true(wait_count(&s, 600, 20000));
    stop(&r, &s, true); /* in-flight batches never acknowledged */
    long first_run = (long)s.n, acked_last = s.acked_last_seq;
    assert_true(first_run < total); /* really mid-stream */
    assert_true(acked_last >= 0 && acked_last < first_run - 1);

    sink s2;
    sink_init(&s2);
    start(&r, name, f->jdir, f->data, extra, &s2);
    assert_true(wait_count(&s2, (size_t)(total - acked_last - 1), 20000));
    sl_t_sleep_ms(100);
    stop(&r, &s2, false);
    assert_int_equal(s2.r[0].seq, acked_last + 1); /* nothing before the cursor again */
    long missing, dups, outside;
    check_seqs(&s2, acked_last + 1, total, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    fprintf(stderr, "restart: first run %ld records, %ld acknowledged, %ld re-sent\n", first_run,
            acked_last + 1, first_run - acked_last - 1);
    assert_true(first_run - acked_last - 1 <= 3 * 50 + 50);

    /* A graceful stop with everything acknowledged: exactly once. */
    sink s3;
    sink_init(&s3);
    write_entries(f, "remote.journal", total, total + 100);
    start(&r, name, f->jdir, f->data, extra, &s3);
    assert_true(wait_count(&s3, 100, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s3, false);
    check_seqs(&s3, total, total + 100, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    sink_free(&s), sink_free(&s2), sink_free(&s3);
}

static void test_restart_resumes_after_acked(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    restart_resumes_after_acked(f, "jrestart", NULL);
}

/* The same with the journal reopened every ~64 KB (decision 0048): a
 * crash's in-flight batches and the checkpoint are the same. */
static void test_restart_across_reopens(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    restart_resumes_after_acked(f, "jrestart2", "    reopen_after: 64KiB\n");
    assert_true(metric("sluice_journald_reopens_total", "jrestart2") >= 10);
}

/* reopen_after (decision 0048): a journal of two files, many times the
 * threshold, read with batches in flight across every reopen; then entries
 * appended, and a new file, while the input waits at the end (the reopened
 * journal's inotify watches, made only then, find them). Every entry exactly once, in order; the
 * reopens counted. The same with reopen_after: 0 reopens never. */
static void test_reopen_after_exactly_once(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    const long first = 4000, total = 4600;
    write_entries(f, "one.journal", 0, 2000);
    write_entries(f, "two.journal", 2000, first);
    sink s;
    sink_init(&s);
    s.hold = 3;
    runner r;
    start(&r, "jreopen", f->jdir, f->data, "    reopen_after: 64KiB\n", &s);
    assert_true(wait_count(&s, (size_t)first, 30000));
    int64_t reopens = metric("sluice_journald_reopens_total", "jreopen");
    /* About 1 KB of entry a record here: 4 MB read, a reopen per ~64 KB. */
    assert_true(reopens >= 20);
    write_entries(f, "two.journal", first, first + 400);
    write_entries(f, "three.journal", first + 400, total); /* a new file */
    assert_true(wait_count(&s, (size_t)total, 30000));
    sl_t_sleep_ms(100);
    stop(&r, &s, false);
    long missing, dups, outside;
    check_seqs(&s, 0, total, &missing, &dups, &outside);
    fprintf(stderr, "reopen_after 64KiB: %ld reopens, %zu records, %ld missing, %ld dups\n",
            (long)metric("sluice_journald_reopens_total", "jreopen"), s.n, missing, dups);
    assert_int_equal(missing + dups + outside, 0);
    assert_int_equal((long)s.n, total);
    assert_in_order(&s);

    sink s2;
    sink_init(&s2);
    start(&r, "jnoreopen", f->jdir, f->data, "    reopen_after: 0\n", &s2);
    assert_true(wait_count(&s2, (size_t)total, 30000));
    sl_t_sleep_ms(100);
    stop(&r, &s2, false);
    check_seqs(&s2, 0, total, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    assert_int_equal(metric("sluice_journald_reopens_total", "jnoreopen"), 0);
    sink_free(&s), sink_free(&s2);
}

static long cursor_seqnum(const char *ckpt)
{
    const char *i = strstr(ckpt, ";i=");
    return i ? strtol(i + 3, NULL, 16) : -1;
}

/* A crash: the checkpoint on disk is whatever was written last while
 * running. Restarting from a snapshot of it taken mid-run (the running
 * input then dropped without acks or final checkpoint) loses nothing. */
static void test_kill_midstream(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    const long total = 4000;
    write_entries(f, "remote.journal", 0, total);
    sink s;
    sink_init(&s);
    s.hold = 2;
    s.delay_us = 1000;
    runner r;
    start(&r, "jkill", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 1000, 20000));
    char *ckpt = sl_t_path(f->data, "checkpoints/jkill.journal");
    char *snap = NULL;
    for (int i = 0; i < 200 && !snap; i++, sl_t_sleep_ms(10)) snap = sl_t_read_file(ckpt, NULL);
    assert_non_null(snap);
    sl_t_sleep_ms(50);
    stop(&r, &s, true);
    long first_run = (long)s.n;
    /* Back to the crash moment. */
    assert_int_equal(sl_t_write_file(ckpt, snap, strlen(snap)), 0);
    char *prev = sl_t_path(f->data, "checkpoints/jkill.journal.prev");
    unlink(prev);
    long i = cursor_seqnum(snap); /* journal seqnums count from 1 */
    assert_true(i >= 1 && i <= first_run);

    sink s2;
    sink_init(&s2);
    start(&r, "jkill", f->jdir, f->data, NULL, &s2);
    assert_true(wait_count(&s2, (size_t)(total - i), 20000));
    sl_t_sleep_ms(100);
    stop(&r, &s2, false);
    assert_int_equal(s2.r[0].seq, i);
    long missing, dups, outside;
    check_seqs(&s2, i, total, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    fprintf(stderr, "kill: checkpoint at entry %ld, first run read %ld, re-sent %ld\n", i,
            first_run, first_run - i);
    free(ckpt), free(snap), free(prev);
    sink_free(&s), sink_free(&s2);
}

/* The checkpointed entry's file is vacuumed: the restart resumes at the
 * oldest entry after it, counts the lost cursor, and does not jump to the
 * end. */
static void test_vacuumed_cursor_resumes_after(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "old.journal", 0, 500);
    sink s;
    sink_init(&s);
    s.ack_limit = 300;
    runner r;
    start(&r, "jvac", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 500, 10000));
    stop(&r, &s, false);
    assert_int_equal(s.acked_last_seq, 299);

    write_entries(f, "new.journal", 500, 1000);
    char *old = sl_t_path(f->jdir, "old.journal");
    assert_int_equal(unlink(old), 0);
    sink s2;
    sink_init(&s2);
    start(&r, "jvac", f->jdir, f->data, NULL, &s2);
    assert_true(wait_count(&s2, 500, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s2, false);
    assert_int_equal(s2.r[0].seq, 500);
    long missing, dups, outside;
    check_seqs(&s2, 500, 1000, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    assert_int_equal(metric("sluice_journald_cursor_lost_total", "jvac"), 1);

    /* A cursor that does not even parse: its time still says where to go. */
    char *ckpt = sl_t_path(f->data, "checkpoints/jvac.journal");
    char text[256];
    snprintf(text, sizeof text, "{\"version\":1,\"cursor\":\"garbage\",\"realtime_usec\":%llu}",
             (unsigned long long)(BASE_USEC + 700 * 1000));
    assert_int_equal(sl_t_write_file(ckpt, text, strlen(text)), 0);
    sink s3;
    sink_init(&s3);
    start(&r, "jvac", f->jdir, f->data, NULL, &s3);
    assert_true(wait_count(&s3, 300, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s3, false);
    assert_int_equal(s3.r[0].seq, 700);
    check_seqs(&s3, 700, 1000, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    assert_int_equal(metric("sluice_journald_cursor_lost_total", "jvac"), 2);
    free(old), free(ckpt);
    sink_free(&s), sink_free(&s2), sink_free(&s3);
}

typedef bool (*pred_fn)(long i);

static bool p_units(long i)
{
    return i % 3 != 2; /* a.service, b.service */
}
static bool p_matches(long i)
{
    return (i % 4 == 1 || i % 4 == 2) && i % 2 == 0;
}
static bool p_priority(long i)
{
    return i % 8 <= 4;
}
static bool p_combined(long i)
{
    return i % 3 == 0 && i % 8 <= 3 && i % 4 != 3;
}
static bool p_contradiction(long i)
{
    (void)i;
    return false;
}

static void run_filter(const fx *f, const char *name, const char *extra, pred_fn pred, long total)
{
    sink s;
    sink_init(&s);
    runner r;
    start(&r, name, f->jdir, f->data, extra, &s);
    long expected = 0;
    for (long i = 0; i < total; i++) expected += pred(i);
    if (expected) assert_true(wait_count(&s, (size_t)expected, 10000));
    sl_t_sleep_ms(300); /* anything that should not pass would show now */
    stop(&r, &s, false);
    fprintf(stderr, "%s: %zu of %ld entries passed, %ld expected\n", name, s.n, total, expected);
    assert_int_equal((long)s.n, expected);
    for (size_t k = 0; k < s.n; k++) assert_true(pred(s.r[k].seq));
    sink_free(&s);
}

static void test_filters(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    const long total = 240;
    write_entries(f, "remote.journal", 0, total);
    run_filter(f, "junits", "    units: [a, b.service]\n", p_units, total);
    run_filter(f, "jmatch", "    matches: [FOO=1, FOO=2, SYSLOG_IDENTIFIER=ident0]\n", p_matches,
               total);
    run_filter(f, "jprio", "    priority: warning\n", p_priority, total);
    run_filter(f, "jprio4", "    priority: 4\n", p_priority, total);
    run_filter(f, "jcomb",
               "    units: [a.service]\n    priority: err\n    matches: [FOO=0, FOO=1, FOO=2]\n",
               p_combined, total);
    /* units and matches are ANDed even on the same field */
    run_filter(f, "jcontra", "    units: [a]\n    matches: [_SYSTEMD_UNIT=b.service]\n",
               p_contradiction, total);
}

static void test_hostile_entries(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    char *path = sl_t_path(f->jdir, "remote.journal");
    jx_writer *w = jx_open(path);
    assert_non_null(w);
    const size_t big = 1000000, huge = 2u << 20;
    char *msg = malloc(huge);
    for (size_t i = 0; i < huge; i++) msg[i] = (char)('a' + i % 26);
    memcpy(msg, "seq=000000 ", 11);
    jx_begin(w, BASE_USEC, 1, NULL);
    jx_field(w, "MESSAGE", msg, big); /* 1 MB: whole */
    jx_end(w);
    memcpy(msg, "seq=000001 ", 11);
    jx_begin(w, BASE_USEC + 1, 2, NULL);
    jx_field(w, "MESSAGE", msg, huge); /* 2 MiB: cut to max_message_bytes */
    jx_end(w);
    static const char bin[] = "seq=000002 \x00\xff\xfe\nbinary\x01";
    jx_begin(w, BASE_USEC + 2, 3, NULL);
    jx_field(w, "MESSAGE", bin, sizeof bin - 1);
    jx_end(w);
    jx_begin(w, BASE_USEC + 3, 4, NULL);
    jx_field(w, "SYSLOG_IDENTIFIER", "nomsg", 5); /* no MESSAGE */
    jx_end(w);
    jx_begin(w, BASE_USEC + 4, 5, NULL);
    jx_field(w, "MESSAGE", "seq=000004 after", 16);
    jx_field(w, "PRIORITY", "9", 1); /* not a level */
    jx_field(w, "BIGFIELD", msg, 100000);
    jx_end(w);
    assert_int_equal(jx_close(w), 0);

    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jhostile", f->jdir, f->data, "    fields: { keep: [BIGFIELD] }\n", &s);
    assert_true(wait_count(&s, 5, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s, false);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.r[0].n, big);
    assert_memory_equal(s.r[0].line + 11, msg + 11, big - 11);
    assert_int_equal(s.r[0].flags, 0);
    assert_int_equal(s.r[1].n, 1u << 20);
    assert_true(s.r[1].flags & SL_RF_TRUNCATED);
    assert_int_equal(s.r[2].n, sizeof bin - 1);
    assert_memory_equal(s.r[2].line, bin, sizeof bin - 1);
    assert_true(s.r[2].flags & SL_RF_INVALID_UTF8);
    assert_int_equal(s.r[3].n, 0);
    assert_string_equal(fval(&s.r[3], "identifier"), "nomsg");
    assert_string_equal(s.r[4].line, "seq=000004 after");
    assert_null(fval(&s.r[4], "level"));
    assert_int_equal(field(&s.r[4], "BIGFIELD")->vlen, 64 << 10); /* max_field_bytes */
    assert_true(s.r[4].flags & SL_RF_TRUNCATED);
    assert_int_equal(metric("sluice_journald_truncated_total", "jhostile"), 2);
    assert_int_equal(metric("sluice_journald_missing_message_total", "jhostile"), 1);
    free(msg), free(path);
    sink_free(&s);
}

/* An entry a local user can write (sd_journal_send with any number of
 * fields; journald takes up to 1024): with fields.keep ['*'], 1000 fields,
 * some binary, some huge, give a record with MAX_ENTRY_FIELDS (128) of
 * them, each value cut to max_field_bytes, flagged truncated and counted;
 * the entries around it arrive whole (decision 0065). */
static void test_thousand_fields(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    char *path = sl_t_path(f->jdir, "remote.journal");
    jx_writer *w = jx_open(path);
    assert_non_null(w);
    char *big = malloc(200000);
    memset(big, 'v', 200000);
    jx_begin(w, BASE_USEC, 1, NULL);
    jx_field(w, "MESSAGE", "seq=000000 before", 17);
    jx_end(w);
    jx_begin(w, BASE_USEC + 1, 2, NULL);
    jx_field(w, "MESSAGE", "seq=000001 many", 15);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "F%04d", i);
        if (i % 3 == 0)
            jx_field(w, name, "\x00\xff\x01bin", 6);
        else if (i % 3 == 1)
            jx_field(w, name, big, 200000);
        else
            jx_fieldf(w, name, "v%d", i);
    }
    jx_end(w);
    jx_begin(w, BASE_USEC + 2, 3, NULL);
    jx_field(w, "MESSAGE", "seq=000002 after", 16);
    jx_end(w);
    assert_int_equal(jx_close(w), 0);

    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jmany", f->jdir, f->data, "    fields: { keep: ['*'] }\n", &s);
    assert_true(wait_count(&s, 3, 10000));
    stop(&r, &s, false);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.r[0].line, "seq=000000 before");
    assert_string_equal(s.r[2].line, "seq=000002 after");
    assert_false(s.r[2].flags & SL_RF_TRUNCATED);
    const rec *x = &s.r[1];
    assert_string_equal(x->line, "seq=000001 many");
    assert_true(x->flags & SL_RF_TRUNCATED);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < x->nf; i++) {
        if (x->f[i].key[0] != 'F') continue;
        kept++;
        assert_true(x->f[i].vlen <= 64u << 10); /* max_field_bytes */
    }
    assert_int_equal(kept, 128);
    assert_int_equal(metric("sluice_journald_truncated_total", "jmany"), 1);
    free(big), free(path);
    sink_free(&s);
}

static bool errors_seen(void *arg)
{
    return metric("sluice_journald_errors_total", arg) >= 1;
}

/* A garbage file named like a journal and a journal copy damaged in the
 * middle sit in the folder: no crash, the garbage is counted, every entry
 * of the good file arrives. */
static void test_corrupt_files(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 400);
    char *good = sl_t_path(f->jdir, "remote.journal");
    size_t n;
    char *data = sl_t_read_file(good, &n);
    assert_non_null(data);
    for (size_t i = 40000; i < 60000 && i < n; i++) data[i] = (char)(i * 131);
    char *copy = sl_t_path(f->jdir, "y.journal");
    assert_int_equal(sl_t_write_file(copy, data, n), 0);
    char *garbage = sl_t_path(f->jdir, "x.journal");
    for (size_t i = 0; i < 100000 && i < n; i++) data[i] = (char)(i * 7 + 3);
    assert_int_equal(sl_t_write_file(garbage, data, 100000), 0);

    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jcorrupt", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 400, 10000));
    assert_true(sl_t_wait_until(errors_seen, "jcorrupt", 5000));
    /* more garbage while running: counted too */
    char *garbage2 = sl_t_path(f->jdir, "z.journal");
    assert_int_equal(sl_t_write_file(garbage2, "not a journal at all", 20), 0);
    write_entries(f, "remote.journal", 400, 450);
    assert_true(wait_count(&s, 450, 10000));
    for (int i = 0; i < 50 && metric("sluice_journald_errors_total", "jcorrupt") < 2; i++)
        sl_t_sleep_ms(100);
    stop(&r, &s, false);
    long missing, dups, outside;
    check_seqs(&s, 0, 450, &missing, &dups, &outside);
    fprintf(stderr, "corrupt: %zu records, %ld missing, %ld duplicates (from the damaged copy)\n",
            s.n, missing, dups);
    assert_int_equal(missing, 0);
    assert_int_equal(outside, 0);
    assert_true(metric("sluice_journald_errors_total", "jcorrupt") >= 2);
    free(good), free(data), free(copy), free(garbage), free(garbage2);
    sink_free(&s);
}

static void test_start_at_end_and_dry_run(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 100);
    char *ckpt = sl_t_path(f->data, "checkpoints/jend.journal");
    sink s;
    sink_init(&s);
    runner r;
    /* dry run: reads, never writes a checkpoint */
    assert_int_equal(create_input(&r, "jend", f->jdir, f->data, NULL, &s, true), 0);
    assert_int_equal(pthread_create(&r.th, NULL, run_thread, &r), 0);
    assert_true(wait_count(&s, 100, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s, false);
    struct stat sb;
    assert_int_equal(stat(ckpt, &sb), -1);
    sink_clear(&s);

    start(&r, "jend", f->jdir, f->data, "    start_at: end\n", &s);
    /* the position of "end" is saved at once */
    for (int i = 0; i < 100 && stat(ckpt, &sb) != 0; i++) sl_t_sleep_ms(10);
    assert_int_equal(stat(ckpt, &sb), 0);
    sl_t_sleep_ms(100);
    assert_int_equal(sink_count(&s), 0);
    write_entries(f, "remote.journal", 100, 150);
    assert_true(wait_count(&s, 50, 10000));
    sl_t_sleep_ms(100);
    stop(&r, &s, false);
    long missing, dups, outside;
    check_seqs(&s, 100, 150, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    free(ckpt);
    sink_free(&s);
}

/* Both checkpoint generations damaged (garbage, a link planted in their
 * place, a FIFO), or deleted after an earlier run: with start_at: end the
 * journal is still read from its head (duplicates, never a silent skip),
 * the damaged file kept aside, counted in sluice_checkpoint_lost_total
 * (decision 0059). A link's target is never read or written. */
static void test_damaged_checkpoint_reads_from_head(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, 100);
    char *ckpt = sl_t_path(f->data, "checkpoints/jdmg.journal");
    char *prev = sl_t_path(f->data, "checkpoints/jdmg.journal.prev");
    char *aside = sl_t_path(f->data, "checkpoints/jdmg.journal.damaged");
    char *target = sl_t_path(f->dir, "elsewhere.journal");
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jdmg", f->jdir, f->data, "    start_at: end\n", &s);
    struct stat sb;
    for (int i = 0; i < 100 && stat(ckpt, &sb) != 0; i++) sl_t_sleep_ms(10);
    assert_int_equal(stat(ckpt, &sb), 0);
    stop(&r, &s, false);
    assert_int_equal(sink_count(&s), 0); /* start_at: end */
    size_t n;
    char *good = sl_t_read_file(ckpt, &n);
    assert_non_null(good);
    assert_int_equal(sl_t_write_file(target, good, n), 0);
    for (int kind = 0; kind < 4; kind++) {
        sink_clear(&s);
        unlink(ckpt);
        unlink(prev);
        unlink(aside);
        if (kind == 0) assert_int_equal(sl_t_write_file(ckpt, "{\"cursor\":\"a b\"}", 16), 0);
        if (kind == 1) assert_int_equal(symlink(target, ckpt), 0);
        if (kind == 2) assert_int_equal(mkfifo(ckpt, 0600), 0);
        /* kind 3: both gone; the .started marker says it ran before. */
        int64_t lost = metric("sluice_checkpoint_lost_total", "jdmg");
        start(&r, "jdmg", f->jdir, f->data, "    start_at: end\n", &s);
        assert_true(wait_count(&s, 100, 10000));
        stop(&r, &s, false);
        long missing, dups, outside;
        check_seqs(&s, 0, 100, &missing, &dups, &outside);
        assert_int_equal(missing + dups + outside, 0);
        assert_int_equal(metric("sluice_checkpoint_lost_total", "jdmg"), lost + 1);
        assert_int_equal(lstat(aside, &sb), kind == 3 ? -1 : 0);
        assert_int_equal(lstat(ckpt, &sb), 0);
        assert_true(S_ISREG(sb.st_mode));
    }
    char *after = sl_t_read_file(target, &n);
    assert_string_equal(after, good);
    free(after), free(good), free(ckpt), free(prev), free(aside), free(target);
    sink_free(&s);
}

/* run() returns within ~100 ms of stop, idle or busy. */
static void test_stop_is_prompt(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    write_entries(f, "remote.journal", 0, sl_t_sanitized() ? 2000 : 20000);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jstop", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 100, 10000));
    long busy_ms = stop(&r, &s, false);
    sink_clear(&s);
    start(&r, "jstop2", "/nonexistent-journal-dir", f->data, NULL, &s);
    sl_t_sleep_ms(150);
    long idle_ms = stop(&r, &s, false);
    fprintf(stderr, "stop: busy %ld ms, idle %ld ms\n", busy_ms, idle_ms);
    assert_true(busy_ms < 250);
    assert_true(idle_ms < 250);
    assert_true(metric("sluice_journald_errors_total", "jstop2") >= 1);
    sink_free(&s);
}

/* Entries [from, to) in a new file that appears in DIR whole (written
 * beside it, then renamed in), so the input reads all of it in one go. */
static void add_whole_file(const fx *f, const char *name, long from, long to)
{
    char *staged = sl_t_path(f->dir, name), *final = sl_t_path(f->jdir, name);
    write_entries_in(f->dir, name, from, to);
    assert_int_equal(rename(staged, final), 0);
    free(staged), free(final);
}

/* Batch i's note, under the lock. */
static batch_note note_at(sink *s, int i)
{
    pthread_mutex_lock(&s->mu);
    batch_note b = s->log[i];
    pthread_mutex_unlock(&s->mu);
    return b;
}

/* An input that caught up after reading at least a whole batch asks the
 * sinks to send its tail at once (flush_now) instead of after their
 * max_batch_wait; a trickle never does; at most once a second. */
static void test_caught_up_tail_sent_at_once(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    /* 100 entries, batches of 50: the second, full, batch ends at the end
     * of the journal. */
    write_entries(f, "remote.journal", 0, 100);
    sink s;
    sink_init(&s);
    runner r;
    start(&r, "jurgent", f->jdir, f->data, NULL, &s);
    assert_true(wait_count(&s, 100, 10000));
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.nlog, 2);
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(note_at(&s, 0).nrecords, 50);
    assert_false(note_at(&s, 0).flush_now);
    assert_int_equal(note_at(&s, 1).nrecords, 50);
    assert_true(note_at(&s, 1).flush_now);

    /* A trickle after it: less than a batch at a time, never at once. */
    write_entries(f, "remote.journal", 100, 110);
    assert_true(wait_count(&s, 110, 10000));
    pthread_mutex_lock(&s.mu);
    int trickle_end = s.nlog;
    pthread_mutex_unlock(&s.mu);
    for (int i = 2; i < trickle_end; i++) assert_false(note_at(&s, i).flush_now);

    /* A backlog of 120 right after: its tail may ask only once a second
     * has passed since the last batch that did. */
    add_whole_file(f, "second.journal", 110, 230);
    assert_true(wait_count(&s, 230, 10000));

    /* Once a second has passed, a backlog's partial tail asks again. */
    int64_t last_urgent = 0;
    pthread_mutex_lock(&s.mu);
    for (int i = 0; i < s.nlog; i++)
        if (s.log[i].flush_now) last_urgent = s.log[i].at_ns;
    int before = s.nlog;
    pthread_mutex_unlock(&s.mu);
    /* The input's once-a-second bound is on its own clock: wait it out. */
    while (sl_monotonic_ns() < last_urgent + 1100000000LL) sl_t_sleep_ms(20);
    add_whole_file(f, "third.journal", 230, 350);
    assert_true(wait_count(&s, 350, 10000));
    pthread_mutex_lock(&s.mu);
    int nlog = s.nlog;
    pthread_mutex_unlock(&s.mu);
    assert_true(nlog >= before + 3);
    assert_int_equal(note_at(&s, nlog - 1).nrecords, 20);
    assert_true(note_at(&s, nlog - 1).flush_now);
    assert_false(note_at(&s, nlog - 2).flush_now);

    /* Over the whole run: each batch that asked is full or follows a full
     * one (the input was behind), and they are at least a second apart. */
    int64_t prev = -1;
    for (int i = 0; i < nlog; i++) {
        batch_note b = note_at(&s, i);
        if (!b.flush_now) continue;
        assert_true(b.nrecords == 50 || (i > 0 && note_at(&s, i - 1).nrecords == 50));
        if (prev >= 0) assert_true(b.at_ns - prev >= 990000000LL);
        prev = b.at_ns;
    }
    stop(&r, &s, false);
    long missing, dups, outside;
    check_seqs(&s, 0, 350, &missing, &dups, &outside);
    assert_int_equal(missing + dups + outside, 0);
    assert_in_order(&s);
    sink_free(&s);
}

static void test_config_errors(void **st)
{
    fx *f = *st;
    NEED_FIXTURE(f);
    static const char *const bad[] = {
        "    priority: loud\n",
        "    matches: [foo]\n",
        "    matches: [lower=x]\n",
        "    labels_from: { unit: MESSAGE }\n",
        "    labels_from: { 'bad-label': unit }\n",
        "    fields: { drop: [MESSAGE] }\n",
        "    fields: { keep: [not-a-field] }\n",
        "    start_at: middle\n",
        "    unitz: [a]\n",
        "    max_message_bytes: 1\n",
        /* label names that collide (decision 0075) */
        "    labels: { unit: x }\n    labels_from: { unit: _SYSTEMD_UNIT }\n",
        "    labels_from: { hostname: _SYSTEMD_UNIT }\n",
        "    fields: { keep: ['*'] }\n    labels_from: { FOO: unit }\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sink s;
        sink_init(&s);
        runner r;
        int rc = create_input(&r, "jcfg", f->jdir, f->data, bad[i], &s, false);
        if (rc != SL_EINVAL) fprintf(stderr, "accepted: %s", bad[i]);
        assert_int_equal(rc, SL_EINVAL);
        assert_true(sl_cfg_nerrors(r.cfg) >= 1);
        sl_cfg_free(r.cfg);
        sink_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields_timestamps_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_all_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_alike_kept_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_appends_and_new_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes_after_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_across_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_midstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vacuumed_cursor_resumes_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_at_end_and_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_checkpoint_reads_from_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_is_prompt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caught_up_tail_sent_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
