/* The shared sink batcher (shipper/batcher.c) against a real memory buffer
 * and a scripted flush: what it gathers, what it acknowledges, and what it
 * gives back (in order) after a failure and at a stop. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "shipper/batcher.h"
#include "pipeline/buffer.h"
#include "shipper/filesink.h"
#include "tests/helpers.h"

#define NBATCH 10
#define PER    10

/* What a scripted flush sees and answers. */
typedef struct script {
    atomic_bool stop;
    int calls;
    uint64_t seen[NBATCH * 4]; /* first record id of each batch, in flush order */
    int nseen;
    int fail_calls;    /* the first fail_calls flushes answer `fail` */
    int fail;          /* SL_FLUSH_RETRY or SL_FLUSH_STOPPED */
    uint32_t done_one; /* with fail: the leading batches done */
    uint32_t max_n;    /* the largest flush */
} script;

static sl_batch *mk(sl_watermark *wm, uint64_t first)
{
    sl_batch *b = sl_batch_new(PER);
    assert_non_null(b);
    sl_batch_set_names(b, "app", "/var/log/app.log");
    for (uint32_t i = 0; i < PER; i++) {
        char line[64];
        int len = snprintf(line, sizeof line, "record %" PRIu64, first + i);
        char *p = sl_arena_dup(&b->arena, line, (size_t)len);
        assert_non_null(sl_batch_add(b, (sl_slice){p, (size_t)len}, 1, first + i + 1));
    }
    assert_int_equal(sl_watermark_issue(wm, first, first + PER), SL_OK);
    b->ticket = (sl_ack_ticket){sl_watermark_ref(wm), first, first + PER};
    return b;
}

static uint64_t first_id(const sl_batch *b)
{
    unsigned long long id = 0;
    char buf[32];
    size_t n = b->records[0].line.n < sizeof buf - 1 ? b->records[0].line.n : sizeof buf - 1;
    memcpy(buf, b->records[0].line.p, n);
    buf[n] = '\0';
    if (sscanf(buf, "record %llu", &id) != 1) fail_msg("bad record");
    return id;
}

static int flush(void *arg, sl_batch *const *b, uint32_t n, uint32_t *ndone, int64_t *retry_ms)
{
    script *s = arg;
    s->calls++;
    if (n > s->max_n) s->max_n = n;
    for (uint32_t i = 0; i < n && s->nseen < (int)(sizeof s->seen / sizeof *s->seen); i++)
        s->seen[s->nseen++] = first_id(b[i]);
    if (s->calls <= s->fail_calls) {
        *ndone = s->done_one;
        *retry_ms = 0;
        if (s->fail == SL_FLUSH_STOPPED) atomic_store(&s->stop, true);
        return s->fail;
    }
    return SL_FLUSH_DONE;
}

typedef struct rig {
    sl_watermark *wm;
    sl_buffer *buf;
    sl_sink_ctx ctx;
    sl_batcher *bt;
} rig;

typedef struct held {
    sl_buffer *buf;
    uint64_t all;
} held;

static bool all_in_buffer(void *arg)
{
    held *h = arg;
    return sl_buffer_bytes(h->buf) == h->all;
}

static void rig_run(rig *r, script *s, uint64_t max_bytes, int64_t max_wait_ms)
{
    sl_metrics_reset();
    r->wm = sl_watermark_new(0);
    sl_buffer_opts bo = {.sink = "t", .memory_max = 1 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &r->buf, &err), SL_OK);
    for (uint64_t i = 0; i < NBATCH; i++)
        assert_int_equal(sl_buffer_push(r->buf, mk(r->wm, i * PER)), SL_OK);
    /* Closed: the batcher drains what memory holds and returns. */
    sl_buffer_close(r->buf);
    r->ctx = (sl_sink_ctx){.name = "t", .buffer = r->buf, .stop = &s->stop};
    sl_batcher_opts o = {.max_bytes = max_bytes,
                         .max_wait_ms = max_wait_ms,
                         .min_backoff_ms = 1,
                         .max_backoff_ms = 2,
                         .sink = s,
                         .flush = flush};
    assert_int_equal(sl_batcher_new(&r->ctx, &o, &r->bt, &err), SL_OK);
    assert_int_equal(sl_batcher_run(r->bt), SL_OK);
}

static void rig_free(rig *r)
{
    sl_batcher_free(r->bt);
    sl_buffer_free(r->buf);
    sl_watermark_unref(r->wm);
}

/* Gathered up to max_bytes, flushed in order, every batch acknowledged. */
static void test_gathers_and_acknowledges(void **state)
{
    (void)state;
    script s = {0};
    rig r;
    rig_run(&r, &s, 1 << 20, 10000);
    assert_int_equal(s.nseen, NBATCH);
    for (int i = 0; i < NBATCH; i++) assert_int_equal(s.seen[i], (uint64_t)i * PER);
    assert_true(s.max_n > 1); /* gathered, not one by one */
    assert_int_equal(sl_watermark_get(r.wm), NBATCH * PER);
    rig_free(&r);
}

/* max_bytes 0: every batch is flushed alone, as it is popped. */
static void test_zero_flushes_each_batch(void **state)
{
    (void)state;
    script s = {0};
    rig r;
    rig_run(&r, &s, 0, 0);
    assert_int_equal(s.calls, NBATCH);
    assert_int_equal(s.max_n, 1);
    assert_int_equal(sl_watermark_get(r.wm), NBATCH * PER);
    rig_free(&r);
}

/* A RETRY after one batch was done: that one is acknowledged once, the
 * rest go back to the buffer in order and are flushed again first. */
static void test_retry_gives_back_in_order(void **state)
{
    (void)state;
    script s = {.fail_calls = 1, .fail = SL_FLUSH_RETRY, .done_one = 1};
    rig r;
    rig_run(&r, &s, 1 << 20, 10000);
    assert_true(s.calls >= 2);
    /* First flush: everything; then from the second batch on, in order. */
    int k = 0;
    while (k < s.nseen && s.seen[k] != PER * (NBATCH - 1)) k++;
    assert_true(k < s.nseen);
    assert_int_equal(s.seen[k + 1], PER); /* the retry starts at batch 1 */
    for (int i = 1; i < NBATCH; i++) assert_int_equal(s.seen[k + i], (uint64_t)i * PER);
    assert_int_equal(s.nseen, k + NBATCH);
    assert_int_equal(sl_watermark_get(r.wm), NBATCH * PER);
    rig_free(&r);
}

/* Told to stop while flushing: nothing acknowledged, every batch back in
 * the buffer, oldest first. */
static void test_stop_gives_everything_back(void **state)
{
    (void)state;
    script s = {.fail_calls = 1, .fail = SL_FLUSH_STOPPED, .done_one = 0};
    rig r;
    rig_run(&r, &s, 1 << 20, 10000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(sl_watermark_get(r.wm), 0);
    for (int i = 0; i < s.nseen; i++) {
        sl_batch *b;
        assert_int_equal(sl_buffer_pop(r.buf, &b, 0), SL_OK);
        assert_int_equal(first_id(b), (uint64_t)i * PER);
        sl_batch_done(b);
    }
    assert_int_equal(sl_watermark_get(r.wm), (uint64_t)s.nseen * PER);
    rig_free(&r);
}

/* The file sink on the batcher, writing to a disk that is always full
 * (/dev/full: every write fails with ENOSPC): each failure is counted, the
 * failing batch is not held while the sink waits to try again (every byte
 * is back in the buffer, so memory that fills up would spool it), nothing
 * is acknowledged, and a stop leaves every batch in the buffer in order. */
typedef struct file_rig {
    const sl_sink_ops *ops;
    void *state;
    atomic_bool stop;
} file_rig;

static void *file_main(void *arg)
{
    file_rig *f = arg;
    f->ops->run(f->state);
    return NULL;
}

static bool errors_counted(void *arg)
{
    (void)arg;
    return sl_metrics_value("sluice_sink_errors_total", "sink=\"full\"") >= 3;
}

static void test_file_sink_full_disk_holds_nothing(void **state)
{
    (void)state;
    sl_metrics_reset();
    static const char yml[] = "sinks:\n  - name: full\n    type: file\n    path: /dev/full\n";
    sl_cfg *cfg = sl_cfg_new();
    assert_non_null(cfg);
    assert_int_equal(sl_cfg_load_string(cfg, "t.yml", yml, sizeof yml - 1), 0);
    sl_watermark *wm = sl_watermark_new(0);
    sl_buffer *buf;
    sl_buffer_opts bo = {.sink = "full", .memory_max = 1 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &buf, &err), SL_OK);
    for (uint64_t i = 0; i < NBATCH; i++)
        assert_int_equal(sl_buffer_push(buf, mk(wm, i * PER)), SL_OK);
    held h = {buf, sl_buffer_bytes(buf)};
    file_rig f = {.ops = &sl_file_sink_ops};
    sl_sink_ctx ctx = {.name = "full",
                       .cfg = cfg,
                       .node = sl_cfg_get(sl_cfg_root(cfg), "sinks")->items[0],
                       .buffer = buf,
                       .stop = &f.stop};
    assert_int_equal(f.ops->create(&ctx, &f.state, &err), SL_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, file_main, &f), 0);
    assert_true(sl_t_wait_until(errors_counted, NULL, sl_t_scaled_ms(10000)));
    assert_true(sl_t_wait_until(all_in_buffer, &h, sl_t_scaled_ms(10000)));
    assert_int_equal(sl_watermark_get(wm), 0);
    sl_buffer_close(buf);
    atomic_store(&f.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* Every batch is in the buffer again, oldest first, none acknowledged. */
    assert_int_equal(sl_watermark_get(wm), 0);
    for (int i = 0; i < NBATCH; i++) {
        sl_batch *b;
        assert_int_equal(sl_buffer_pop(buf, &b, 0), SL_OK);
        assert_int_equal(first_id(b), (uint64_t)i * PER);
        sl_batch_done(b);
    }
    assert_int_equal(sl_watermark_get(wm), NBATCH * PER);
    f.ops->destroy(f.state);
    sl_buffer_free(buf);
    sl_watermark_unref(wm);
    sl_cfg_free(cfg);
}

/* A sink that keeps what it flushes (TAKEN, as Loki's workers do) and
 * whose requests fail: each job is "in flight" for a few polls of settle,
 * then given back. The first failure comes with more batches queued behind
 * the job. */
#define TAKE_ROUNDS 5 /* failed sends before one succeeds */
#define TAKE_POLLS  3 /* settle calls a job stays in flight */
typedef struct taking {
    atomic_bool stop;
    sl_batcher *bt;
    sl_buffer *buf;
    sl_watermark *wm;
    sl_batch *held[NBATCH];
    uint32_t nheld;
    int polls, failures, calls;
    uint32_t n[NBATCH * 4]; /* batches in each flush */
    uint64_t first[NBATCH * 4];
    uint64_t queued;    /* bytes pushed behind the first job */
    int busy_checked;   /* in-flight polls that checked the buffer */
    uint64_t delivered; /* batches acknowledged */
} taking;

static int take_flush(void *arg, sl_batch *const *b, uint32_t n, uint32_t *ndone, int64_t *retry_ms)
{
    taking *t = arg;
    (void)ndone;
    (void)retry_ms;
    assert_int_equal(t->nheld, 0); /* one job at a time here */
    assert_true(t->calls < (int)(sizeof t->n / sizeof *t->n));
    t->n[t->calls] = n;
    t->first[t->calls++] = first_id(b[0]);
    memcpy(t->held, b, n * sizeof *b);
    t->nheld = n;
    t->polls = 0;
    return SL_FLUSH_TAKEN;
}

static int64_t take_settle(void *arg)
{
    taking *t = arg;
    if (!t->nheld) return -1;
    if (t->failures == 0) {
        /* More comes in behind the first job, before it fails. */
        for (uint64_t i = 2; i < NBATCH; i++)
            assert_int_equal(sl_buffer_push(t->buf, mk(t->wm, i * PER)), SL_OK);
        t->queued = sl_buffer_bytes(t->buf);
    } else if (t->failures < TAKE_ROUNDS && ++t->polls <= TAKE_POLLS) {
        /* In flight after a failure: nothing new is taken meanwhile. */
        assert_int_equal(sl_buffer_bytes(t->buf), t->queued);
        t->busy_checked++;
        return 1;
    }
    uint32_t n = t->nheld;
    t->nheld = 0;
    if (t->failures < TAKE_ROUNDS) {
        t->failures++;
        sl_batcher_give_back_pending(t->bt);
        sl_batcher_give_back(t->bt, t->held, n);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) sl_batch_done(t->held[i]);
    t->delivered += n;
    if (t->delivered == NBATCH) atomic_store(&t->stop, true);
    return -1;
}

/* While a sink fails, it resends what it gave back and takes nothing new
 * until that is delivered: what arrived meanwhile stays in the buffer,
 * counted against memory_max, so a full buffer holds the inputs back (the
 * loki_push input answers 429) instead of every retry gathering all the
 * buffer holds. Once the resent job is delivered, the rest follows in
 * order. */
static void test_failing_sink_resends_only_what_it_gave_back(void **state)
{
    (void)state;
    sl_metrics_reset();
    taking t = {0};
    t.wm = sl_watermark_new(0);
    sl_buffer_opts bo = {.sink = "t", .memory_max = 1 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &t.buf, &err), SL_OK);
    for (uint64_t i = 0; i < 2; i++)
        assert_int_equal(sl_buffer_push(t.buf, mk(t.wm, i * PER)), SL_OK);
    sl_sink_ctx ctx = {.name = "t", .buffer = t.buf, .stop = &t.stop};
    sl_batcher_opts o = {.max_bytes = 1 << 20,
                         .max_wait_ms = 1,
                         .min_backoff_ms = 1,
                         .max_backoff_ms = 2,
                         .sink = &t,
                         .flush = take_flush,
                         .settle = take_settle};
    assert_int_equal(sl_batcher_new(&ctx, &o, &t.bt, &err), SL_OK);
    assert_int_equal(sl_batcher_run(t.bt), SL_OK);
    assert_int_equal(t.failures, TAKE_ROUNDS);
    assert_int_equal(t.busy_checked, (TAKE_ROUNDS - 1) * TAKE_POLLS);
    /* The first job (what was queued before it) and each resend: the same
     * batches. */
    assert_true(t.n[0] >= 1 && t.n[0] <= 2);
    for (int c = 0; c <= TAKE_ROUNDS; c++) {
        assert_int_equal(t.n[c], t.n[0]);
        assert_int_equal(t.first[c], 0);
    }
    /* Then the rest, in order. */
    uint64_t next = (uint64_t)t.n[0] * PER;
    for (int c = TAKE_ROUNDS + 1; c < t.calls; c++) {
        assert_int_equal(t.first[c], next);
        next += (uint64_t)t.n[c] * PER;
    }
    assert_int_equal(next, NBATCH * PER);
    assert_int_equal(sl_watermark_get(t.wm), NBATCH * PER);
    sl_batcher_free(t.bt);
    sl_buffer_free(t.buf);
    sl_watermark_unref(t.wm);
}

/* A sink that takes its first flush and, at its second, gives back what
 * it holds with what it was handed (as the Loki sink does when a request
 * it holds failed), then delivers whatever comes. */
typedef struct giving {
    sl_batcher *bt;
    sl_batch *held[NBATCH];
    uint32_t nheld;
    int calls;
    uint64_t after[NBATCH * 4]; /* first record id of each batch flushed after the give-back */
    int nafter;
    uint32_t max_n; /* most batches in one flush */
} giving;

static int give_flush(void *arg, sl_batch *const *b, uint32_t n, uint32_t *ndone, int64_t *retry_ms)
{
    giving *g = arg;
    (void)ndone;
    (void)retry_ms;
    g->calls++;
    if (n > g->max_n) g->max_n = n;
    if (g->calls == 1) {
        memcpy(g->held, b, n * sizeof *b);
        g->nheld = n;
        return SL_FLUSH_TAKEN;
    }
    if (g->calls == 2) {
        sl_batcher_give_back_pending(g->bt);
        sl_batcher_give_back(g->bt, g->held, g->nheld);
        g->nheld = 0;
        return SL_FLUSH_GIVEN;
    }
    for (uint32_t i = 0; i < n && g->nafter < (int)(sizeof g->after / sizeof *g->after); i++)
        g->after[g->nafter++] = first_id(b[i]);
    return SL_FLUSH_DONE;
}

/* The batch popped when the gathered ones no longer fit waits in the
 * buffer while they are flushed: when that flush gives back everything the
 * sink held, the batch is behind it, so every batch is flushed again in
 * order (it was flushed first, ahead of the older ones: with Loki, their
 * entries were then refused as out of order and lost). */
static void run_give_back(uint32_t per_flush)
{
    sl_metrics_reset();
    sl_watermark *wm = sl_watermark_new(0);
    sl_buffer *buf;
    sl_buffer_opts bo = {.sink = "t", .memory_max = 1 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &buf, &err), SL_OK);
    uint64_t per_batch = 0;
    for (uint64_t i = 0; i < NBATCH; i++) {
        sl_batch *b = mk(wm, i * PER);
        per_batch = b->bytes;
        assert_int_equal(sl_buffer_push(buf, b), SL_OK);
    }
    sl_buffer_close(buf);
    atomic_bool stop = false;
    sl_sink_ctx ctx = {.name = "t", .buffer = buf, .stop = &stop};
    giving g = {0};
    /* per_flush batches a flush (taken in one pop), flushed as the next
     * is popped. */
    sl_batcher_opts o = {.max_bytes = per_flush * per_batch + 1,
                         .max_wait_ms = 1000,
                         .min_backoff_ms = 1,
                         .max_backoff_ms = 2,
                         .sink = &g,
                         .flush = give_flush};
    assert_int_equal(sl_batcher_new(&ctx, &o, &g.bt, &err), SL_OK);
    assert_int_equal(sl_batcher_run(g.bt), SL_OK);
    assert_true(g.calls > 2);
    assert_int_equal(g.max_n, per_flush);
    assert_int_equal(g.nafter, NBATCH);
    for (int i = 0; i < g.nafter; i++) assert_int_equal(g.after[i], (uint64_t)i * PER);
    assert_int_equal(sl_watermark_get(wm), NBATCH * PER);
    sl_batcher_free(g.bt);
    sl_buffer_free(buf);
    sl_watermark_unref(wm);
}

static void test_popped_batch_stays_behind_a_give_back(void **state)
{
    (void)state;
    run_give_back(2);
}

/* The same with three batches taken in each pop (sl_buffer_pop_many,
 * decision 0066): what is popped and not flushed goes back first, so the
 * order holds across the give-back. */
static void test_popped_batches_stay_behind_a_give_back(void **state)
{
    (void)state;
    run_give_back(3);
}

/* max_wait 0 with room in max_bytes (the file sink's setting): what is
 * queued when the sink looks is flushed at once, in one flush, not one
 * batch per flush (decision 0057). */
static void test_at_once_takes_all_queued(void **state)
{
    (void)state;
    script s = {0};
    rig r;
    rig_run(&r, &s, 1 << 20, 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.max_n, NBATCH);
    for (int i = 0; i < NBATCH; i++) assert_int_equal(s.seen[i], (uint64_t)i * PER);
    assert_int_equal(sl_watermark_get(r.wm), NBATCH * PER);
    rig_free(&r);
}

/* The file sink writes the queued batches in one write; the file may take
 * only part of it (here the file size limit cuts the write inside the
 * fourth batch, then every write fails with EFBIG). Exactly the batches
 * whose bytes are all in the file are acknowledged (and counted
 * delivered); the cut part is taken back, and the one cut and those after
 * it go back to the buffer, in order, unacknowledged. */
static bool two_errors(void *arg)
{
    (void)arg;
    return sl_metrics_value("sluice_sink_errors_total", "sink=\"cut\"") >= 2;
}

static void test_file_sink_short_write_acks_written_batches(void **state)
{
    (void)state;
    sl_metrics_reset();
    char *dir = sl_t_tmpdir("filesink-cut");
    char *path = sl_t_path(dir, "out.log");
    char yml[512];
    int ylen =
        snprintf(yml, sizeof yml, "sinks:\n  - name: cut\n    type: file\n    path: %s\n", path);
    sl_cfg *cfg = sl_cfg_new();
    assert_non_null(cfg);
    assert_int_equal(sl_cfg_load_string(cfg, "t.yml", yml, (size_t)ylen), 0);
    sl_watermark *wm = sl_watermark_new(0);
    sl_buffer *buf;
    sl_buffer_opts bo = {.sink = "cut", .memory_max = 1 << 20};
    sl_err err;
    assert_int_equal(sl_buffer_new(&bo, &buf, &err), SL_OK);
    /* Bytes of each batch as written: its lines and newlines. */
    size_t per_batch[NBATCH], limit = 0;
    for (uint64_t i = 0; i < NBATCH; i++) {
        sl_batch *b = mk(wm, i * PER);
        per_batch[i] = b->bytes + b->nrecords;
        assert_int_equal(sl_buffer_push(buf, b), SL_OK);
    }
    limit = per_batch[0] + per_batch[1] + per_batch[2] + per_batch[3] / 2;
    file_rig f = {.ops = &sl_file_sink_ops};
    sl_sink_ctx ctx = {.name = "cut",
                       .cfg = cfg,
                       .node = sl_cfg_get(sl_cfg_root(cfg), "sinks")->items[0],
                       .buffer = buf,
                       .stop = &f.stop};
    assert_int_equal(f.ops->create(&ctx, &f.state, &err), SL_OK);
    /* Past the limit a write is cut short, then fails with EFBIG (and
     * SIGXFSZ, ignored here). */
    struct rlimit old, cut = {.rlim_cur = limit, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    cut.rlim_max = old.rlim_max;
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &cut), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, file_main, &f), 0);
    bool failed_twice = sl_t_wait_until(two_errors, NULL, sl_t_scaled_ms(10000));
    sl_buffer_close(buf);
    atomic_store(&f.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_xfsz);
    assert_true(failed_twice);
    /* Three batches written whole and acknowledged; the file holds them
     * alone: the part of the fourth the limit let through was taken back
     * (decision 0065), so its records do not appear twice, glued. */
    assert_int_equal(sl_watermark_get(wm), 3 * PER);
    assert_int_equal(sl_metrics_value("sluice_sink_records_total", "sink=\"cut\""), 3 * PER);
    size_t n = 0;
    char *text = sl_t_read_file(path, &n);
    assert_non_null(text);
    assert_int_equal(n, per_batch[0] + per_batch[1] + per_batch[2]);
    assert_memory_equal(text, "record 0\n", 9);
    assert_int_equal(text[n - 1], '\n');
    free(text);
    /* The rest is back in the buffer, oldest first. */
    for (int i = 3; i < NBATCH; i++) {
        sl_batch *b;
        assert_int_equal(sl_buffer_pop(buf, &b, 0), SL_OK);
        assert_int_equal(first_id(b), (uint64_t)i * PER);
        sl_batch_done(b);
    }
    assert_int_equal(sl_watermark_get(wm), NBATCH * PER);
    f.ops->destroy(f.state);
    sl_buffer_free(buf);
    sl_watermark_unref(wm);
    sl_cfg_free(cfg);
    sl_t_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gathers_and_acknowledges),
        cmocka_unit_test(test_zero_flushes_each_batch),
        cmocka_unit_test(test_retry_gives_back_in_order),
        cmocka_unit_test(test_stop_gives_everything_back),
        cmocka_unit_test(test_file_sink_full_disk_holds_nothing),
        cmocka_unit_test(test_failing_sink_resends_only_what_it_gave_back),
        cmocka_unit_test(test_popped_batch_stays_behind_a_give_back),
        cmocka_unit_test(test_popped_batches_stay_behind_a_give_back),
        cmocka_unit_test(test_at_once_takes_all_queued),
        cmocka_unit_test(test_file_sink_short_write_acks_written_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
