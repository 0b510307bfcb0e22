#include <dirent.h>
#include <errno.h>
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
#include <unistd.h>
#include <cmocka.h>

#include "core/ack.h"
#include "core/batch.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "pipeline/buffer.h"
#include "pipeline/spool.h"
#include "tests/helpers.h"

/* A batch of n records, ids first..first+n-1, as an input makes it: its
 * ticket covers positions [first, first + n) of the source's watermark. */
static sl_batch *mk(sl_watermark *wm, uint64_t first, uint32_t n, size_t filler)
{
    sl_batch *b = sl_batch_new(n);
    assert_non_null(b);
    sl_batch_set_names(b, "app", "/var/log/app.log");
    for (uint32_t i = 0; i < n; i++) {
        char line[512];
        int len = snprintf(line, sizeof line, "record %" PRIu64 " ", first + i);
        uint64_t x = (first + i + 1) * 0x9E3779B97F4A7C15ull;
        for (size_t k = 0; k < filler && len < (int)sizeof line - 1; k++) {
            x ^= x >> 13, x ^= x << 7, x ^= x >> 17;
            line[len++] = (char)('a' + x % 26);
        }
        char *p = sl_arena_dup(&b->arena, line, (size_t)len);
        assert_non_null(
            sl_batch_add(b, (sl_slice){p, (size_t)len}, (int64_t)(first + i), first + i + 1));
    }
    if (wm) {
        assert_int_equal(sl_watermark_issue(wm, first, first + n), SL_OK);
        b->ticket = (sl_ack_ticket){sl_watermark_ref(wm), first, first + n};
    }
    return b;
}

static uint64_t rec_id(const sl_record *r)
{
    char buf[64];
    size_t n = r->line.n < sizeof buf - 1 ? r->line.n : sizeof buf - 1;
    memcpy(buf, r->line.p, n);
    buf[n] = '\0';
    unsigned long long id = 0;
    if (sscanf(buf, "record %llu", &id) != 1) fail_msg("bad record line");
    return id;
}

static int64_t metric(const char *name, const char *sink)
{
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "sink", sink, NULL, NULL);
    int64_t v = sl_metrics_value(name, labels);
    return v < 0 ? 0 : v;
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        n += l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0;
    }
    closedir(d);
    return n;
}

static sl_buffer *mkbuf(const char *sink, const char *dir, uint64_t mem, uint64_t spool,
                        int when_full, uint64_t seg)
{
    sl_buffer_opts o = {.sink = sink,
                        .memory_max = mem,
                        .spool_max = spool,
                        .when_full = when_full,
                        .spool_dir = dir,
                        .fsync = SL_SPOOL_FSYNC_BATCH,
                        .segment_bytes = seg};
    sl_buffer *b = NULL;
    sl_err err;
    int rc = sl_buffer_new(&o, &b, &err);
    if (rc != SL_OK) fail_msg("sl_buffer_new: %s", err.msg);
    return b;
}

/* Pops everything available (waiting up to wait_ms for each), marks ids,
 * acknowledges; returns records. */
static uint64_t drain(sl_buffer *b, uint8_t *seen, size_t nseen, int wait_ms)
{
    uint64_t recs = 0;
    sl_batch *x;
    while (sl_buffer_pop(b, &x, wait_ms) == SL_OK) {
        for (uint32_t i = 0; i < x->nrecords; i++) {
            uint64_t id = rec_id(&x->records[i]);
            assert_true(id < nseen);
            if (seen[id] < 255) seen[id]++;
        }
        recs += x->nrecords;
        sl_batch_done(x);
    }
    return recs;
}

/* ------------------------------------------------------------ memory only */

static void test_memory_only(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("mem", NULL, 1000, 0, SL_WHEN_FULL_BLOCK, 0);
    assert_null(sl_buffer_spool(b));
    sl_watermark *wm = sl_watermark_new(0);
    for (int i = 0; i < 3; i++) assert_int_equal(sl_buffer_push(b, mk(wm, 10 * i, 2, 5)), SL_OK);
    assert_true(sl_buffer_bytes(b) > 0);
    sl_batch *x;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]), 10 * (uint64_t)i);
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 20), SL_ETIMEDOUT);
    assert_int_equal(sl_watermark_get(wm), 22);
    assert_int_equal(sl_buffer_push(b, mk(wm, 30, 1, 5)), SL_OK);
    sl_buffer_close(b);
    sl_batch *late = mk(wm, 40, 1, 5);
    assert_int_equal(sl_buffer_push(b, late), SL_ECLOSED);
    sl_batch_unref(late);
    assert_int_equal(sl_buffer_pop(b, &x, -1), SL_OK); /* drains after close */
    sl_batch_done(x);
    assert_int_equal(sl_buffer_pop(b, &x, -1), SL_ECLOSED);
    sl_buffer_free(b);
    assert_int_equal(sl_watermark_get(wm), 40); /* [40, 41) was never taken */
    sl_watermark_unref(wm);
}

static void test_memory_drop_oldest(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("memdrop", NULL, 300, 0, SL_WHEN_FULL_DROP_OLDEST, 0);
    sl_watermark *wm = sl_watermark_new(0);
    for (int i = 0; i < 10; i++) assert_int_equal(sl_buffer_push(b, mk(wm, 10 * i, 5, 40)), SL_OK);
    uint8_t seen[100] = {0};
    uint64_t got = drain(b, seen, sizeof seen, 0);
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "sink", "memdrop", "reason", "buffer_full");
    assert_int_equal(sl_metrics_value("sluice_sink_dropped_records_total", labels), 50 - got);
    assert_true(got > 0 && got < 50);
    assert_int_equal(seen[90], 1);              /* the newest survive */
    assert_int_equal(sl_watermark_get(wm), 95); /* dropped ones are acknowledged */
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

/* ---------------------------------------------------- memory, then spool */

/* A memory bound that holds two of the test's batches but not three: the
 * queue counts each batch's whole footprint (text, records, fields). */
static uint64_t two_fit(void)
{
    sl_batch *probe = mk(NULL, 0, 10, 95);
    uint64_t f = sl_batch_footprint(probe);
    sl_batch_unref(probe);
    return f * 5 / 2;
}

static void test_spill_to_spool(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-spill");
    /* Each batch holds ~1 KB of text: two fit in memory. */
    sl_buffer *b = mkbuf("spill", dir, two_fit(), 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 10 * (uint64_t)i, 10, 95)), SL_OK);
    /* Spooled batches are acknowledged at once; the two in memory are not. */
    assert_int_equal(sl_watermark_pending(wm), 2);
    assert_int_equal(sl_spool_unread(sl_buffer_spool(b)), 18);
    assert_int_equal(metric("sluice_spool_written_records_total", "spill"), 180);
    assert_int_equal(metric("sluice_spool_records_pending", "spill"), 180);
    /* Oldest first: the spool got the oldest, memory keeps the newest. */
    sl_batch *x;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]), 10 * (uint64_t)i);
        assert_int_equal(x->nrecords, 10);
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_ETIMEDOUT);
    assert_int_equal(sl_watermark_get(wm), 200);
    assert_int_equal(metric("sluice_spool_replayed_records_total", "spill"), 180);
    assert_int_equal(metric("sluice_spool_records_pending", "spill"), 0);
    sl_buffer_free(b);
    assert_int_equal(count_segments(dir), 0);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* What memory holds at shutdown goes to the spool, is acknowledged, and is
 * delivered first after the restart, before new data. */
static void test_spool_on_close_and_replay_first(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-close");
    sl_buffer *b = mkbuf("close", dir, 1 << 20, 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 10 * (uint64_t)i, 10, 20)), SL_OK);
    assert_int_equal(sl_watermark_get(wm), 0);
    sl_buffer_close(b);
    sl_buffer_leftover lo;
    sl_buffer_free_counted(b, &lo);
    assert_int_equal(sl_watermark_get(wm), 50); /* the spool owns them now */
    assert_int_equal(lo.spooled_records, 50);
    assert_int_equal(lo.left_records, 0);

    b = mkbuf("close", dir, 1 << 20, 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 100 + 10 * (uint64_t)i, 10, 20)), SL_OK);
    sl_batch *x;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]),
                         i < 5 ? 10 * (uint64_t)i : 100 + 10 * (uint64_t)(i - 5));
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_ETIMEDOUT);
    sl_buffer_free(b);
    assert_int_equal(sl_watermark_get(wm), 130);
    assert_int_equal(count_segments(dir), 0);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* A spool left behind by a configuration that had one is still replayed. */
static void test_leftover_spool_drained(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-left");
    sl_buffer *b = mkbuf("left", dir, 100, 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 10 * (uint64_t)i, 3, 30)), SL_OK);
    sl_buffer_free(b);
    b = mkbuf("left", dir, 100, 0, SL_WHEN_FULL_BLOCK, 0); /* spool now off */
    assert_non_null(sl_buffer_spool(b));
    uint8_t seen[64] = {0};
    assert_int_equal(drain(b, seen, sizeof seen, 0), 12);
    /* New data overflowing memory waits instead of spilling. */
    assert_int_equal(sl_buffer_push(b, mk(wm, 50, 3, 30)), SL_OK);
    assert_int_equal(sl_spool_unread(sl_buffer_spool(b)), 0);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* A sink that keeps failing gives its batch back: once memory fills, the
 * batch moves to the spool and the input's checkpoint moves on, instead of
 * staying behind it for the whole outage. */
/* A sink popped batches, the inputs filled the buffer up to its item limit
 * meanwhile, and the sink gives them all back: every one is kept, in order
 * (the ring had room for 64 more; the rest were released unacknowledged,
 * to be read again only after a restart). */
static void test_give_back_into_a_full_ring(void **st)
{
    (void)st;
    sl_metrics_reset();
    sl_buffer *b = mkbuf("full-ring", NULL, UINT64_MAX, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    enum { LIMIT = 65536, TAKEN = 500 };
    uint64_t next = 0;
    for (; next < LIMIT; next++) assert_int_equal(sl_buffer_push(b, mk(wm, next, 1, 0)), SL_OK);
    sl_batch *taken[TAKEN], *x;
    for (int i = 0; i < TAKEN; i++) assert_int_equal(sl_buffer_pop(b, &taken[i], 0), SL_OK);
    for (int i = 0; i < TAKEN; i++, next++)
        assert_int_equal(sl_buffer_push(b, mk(wm, next, 1, 0)), SL_OK);
    for (int i = TAKEN; i-- > 0;) sl_buffer_unpop(b, taken[i]);
    for (uint64_t id = 0; id < next; id++) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]), id);
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_ETIMEDOUT);
    assert_int_equal(sl_watermark_get(wm), next);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

static void test_unpop_during_outage(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-unpop");
    sl_buffer *b = mkbuf("unpop", dir, two_fit(), 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    assert_int_equal(sl_buffer_push(b, mk(wm, 0, 10, 95)), SL_OK);
    sl_batch *x;
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
    sl_buffer_unpop(b, x); /* delivery failed */
    for (int i = 1; i < 20; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 10 * (uint64_t)i, 10, 95)), SL_OK);
    assert_int_equal(sl_watermark_get(wm), 180); /* only memory's two are open */
    /* The spooled copy fails too and is given back; order is kept. */
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
    assert_int_equal(rec_id(&x->records[0]), 0);
    sl_buffer_unpop(b, x);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]), 10 * (uint64_t)i);
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_ETIMEDOUT);
    assert_int_equal(sl_watermark_get(wm), 200);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------ when_full: block */

typedef struct pusher {
    sl_buffer *b;
    sl_watermark *wm;
    uint64_t first, count; /* batches */
    uint32_t per;
    size_t filler;
    atomic_uint_fast64_t pushed;
    int rc;
} pusher;

static void *push_thread(void *arg)
{
    pusher *p = arg;
    for (uint64_t i = 0; i < p->count; i++) {
        sl_batch *x = mk(p->wm, (p->first + i) * p->per, p->per, p->filler);
        int rc = sl_buffer_push(p->b, x);
        if (rc != SL_OK) {
            sl_batch_unref(x); /* not taken: no ack, the source reads it again */
            p->rc = rc;
            return NULL;
        }
        atomic_fetch_add(&p->pushed, 1);
    }
    return NULL;
}

/* Waits until p->pushed reached at least min and then stopped moving for
 * quiet_ms; returns it. */
static uint64_t wait_stall(pusher *p, uint64_t min, int quiet_ms)
{
    for (int i = 0; i < 1000 && atomic_load(&p->pushed) < min; i++) sl_t_sleep_ms(10);
    uint64_t last = atomic_load(&p->pushed);
    for (int still = 0; still < quiet_ms; still += 20) {
        sl_t_sleep_ms(20);
        uint64_t now = atomic_load(&p->pushed);
        if (now != last) still = -20, last = now;
    }
    return last;
}

typedef struct popper {
    sl_buffer *b;
    uint8_t *seen;
    size_t nseen;
    uint64_t want;
    uint64_t got;
} popper;

static void *pop_thread(void *arg)
{
    popper *p = arg;
    int64_t deadline = sl_monotonic_ns() + 30 * 1000000000LL;
    while (p->got < p->want && sl_monotonic_ns() < deadline) {
        sl_batch *x;
        if (sl_buffer_pop(p->b, &x, 100) != SL_OK) continue;
        for (uint32_t i = 0; i < x->nrecords; i++) {
            uint64_t id = rec_id(&x->records[i]);
            if (id < p->nseen && p->seen[id] < 255) p->seen[id]++;
        }
        p->got += x->nrecords;
        sl_batch_done(x);
    }
    return NULL;
}

static void test_block_when_spool_full(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-block");
    const uint64_t spool_max = 32 << 10;
    sl_buffer *b = mkbuf("block", dir, 2500, spool_max, SL_WHEN_FULL_BLOCK, 8 << 10);
    sl_watermark *wm = sl_watermark_new(0);
    pusher p = {.b = b, .wm = wm, .count = 200, .per = 10, .filler = 95};
    pthread_t pt;
    assert_int_equal(pthread_create(&pt, NULL, push_thread, &p), 0);
    uint64_t stalled = wait_stall(&p, 10, 300);
    assert_true(stalled > 10 && stalled < 200); /* blocked, not failed */
    assert_int_equal(p.rc, 0);
    sl_spool_usage u;
    sl_spool_get_usage(sl_buffer_spool(b), &u);
    assert_true(u.bytes <= spool_max);
    assert_true(u.bytes > spool_max / 2);

    uint8_t seen[2000] = {0};
    popper c = {.b = b, .seen = seen, .nseen = sizeof seen, .want = 2000};
    pthread_t ct;
    assert_int_equal(pthread_create(&ct, NULL, pop_thread, &c), 0);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    assert_int_equal(atomic_load(&p.pushed), 200);
    assert_int_equal(c.got, 2000);
    for (int i = 0; i < 2000; i++) assert_int_equal(seen[i], 1);
    assert_true(metric("sluice_sink_backpressure_seconds_total", "block") > 0);
    assert_int_equal(sl_watermark_get(wm), 2000);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* Shutdown with the destination down: an input blocked in a push to a full
 * buffer (memory only, or memory and a full spool) returns SL_ECLOSED as
 * soon as the buffer is closed, its batch not taken; what memory holds is
 * counted at free as spooled or left (unacknowledged). */
static void close_releases_blocked_push(const char *sink, const char *dir, uint64_t spool_max)
{
    sl_buffer *b = mkbuf(sink, dir, 2500, spool_max, SL_WHEN_FULL_BLOCK, 8 << 10);
    sl_watermark *wm = sl_watermark_new(0);
    pusher p = {.b = b, .wm = wm, .count = 100000, .per = 10, .filler = 95};
    pthread_t pt;
    assert_int_equal(pthread_create(&pt, NULL, push_thread, &p), 0);
    uint64_t stalled = wait_stall(&p, 1, 200);
    assert_true(stalled >= 1 && stalled < p.count);
    int64_t t0 = sl_monotonic_ns();
    sl_buffer_close(b);
    pthread_join(pt, NULL);
    int64_t took_ms = (sl_monotonic_ns() - t0) / 1000000;
    assert_int_equal(p.rc, SL_ECLOSED);
    assert_true(took_ms < (sl_t_sanitized() ? 3000 : 1000));
    /* Nothing is popped: the sink is down. */
    sl_buffer_leftover lo;
    uint64_t bytes = sl_buffer_bytes(b);
    assert_true(bytes > 0);
    sl_buffer_free_counted(b, &lo);
    uint64_t in_memory = lo.spooled_records + lo.left_records;
    print_message("%s: blocked push released in %lld ms; %" PRIu64 " spooled, %" PRIu64 " left\n",
                  sink, (long long)took_ms, lo.spooled_records, lo.left_records);
    assert_true(in_memory > 0 && in_memory % 10 == 0);
    /* Memory only: nothing acknowledged. Spool full: what the spool took
     * before is acknowledged, what memory held is not. */
    if (!spool_max) {
        assert_int_equal(lo.spooled_records, 0);
        assert_int_equal(sl_watermark_get(wm), 0);
    } else {
        assert_true(sl_watermark_get(wm) + lo.left_records <= stalled * 10);
    }
    sl_watermark_unref(wm);
}

static void test_close_releases_blocked_push(void **st)
{
    (void)st;
    close_releases_blocked_push("blocked-mem", NULL, 0);
    char *dir = sl_t_tmpdir("buf-blocked");
    close_releases_blocked_push("blocked-spool", dir, 32 << 10);
    sl_t_rmtree(dir);
    free(dir);
}

typedef struct rest_pusher {
    sl_buffer *b;
    sl_batch *x;
    int rc;
} rest_pusher;

static void *push_rest_thread(void *arg)
{
    rest_pusher *p = arg;
    p->rc = sl_buffer_push_rest(p->b, p->x);
    return NULL;
}

/* Shutdown of a fan-out: once the buffer refuses, a batch another sink
 * already took is still taken (past memory_max, also by a push that was
 * waiting for room), a new one is not, and the sink keeps popping; after
 * close nothing is taken at all. */
static void test_refuse_takes_the_rest(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("refuse", NULL, 200, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    assert_int_equal(sl_buffer_push(b, mk(wm, 0, 2, 95)), SL_OK); /* memory full */
    rest_pusher rp = {.b = b, .x = mk(wm, 2, 2, 95), .rc = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_rest_thread, &rp), 0);
    sl_buffer_refuse(b); /* the thread waits for room, or comes after this */
    pthread_join(t, NULL);
    assert_int_equal(rp.rc, SL_OK);
    sl_batch *late = mk(wm, 4, 2, 5);
    assert_int_equal(sl_buffer_push(b, late), SL_ECLOSED);
    assert_int_equal(sl_buffer_wait_room(b, late, 0), SL_ECLOSED);
    sl_batch *x;
    for (uint64_t first = 0; first < 4; first += 2) {
        assert_int_equal(sl_buffer_pop(b, &x, 0), SL_OK);
        assert_int_equal(rec_id(&x->records[0]), first);
        sl_batch_done(x);
    }
    assert_int_equal(sl_buffer_pop(b, &x, 0), SL_ETIMEDOUT); /* refusing is not closed */
    sl_buffer_close(b);
    assert_int_equal(sl_buffer_push_rest(b, late), SL_ECLOSED);
    sl_batch_unref(late);
    assert_int_equal(sl_buffer_pop(b, &x, -1), SL_ECLOSED);
    sl_buffer_free(b);
    assert_int_equal(sl_watermark_get(wm), 4); /* [4, 6) was never taken */
    sl_watermark_unref(wm);
}

/* -------------------------------------------------- when_full: drop_oldest */

static void test_drop_oldest_counts_missing(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-drop");
    sl_buffer *b = mkbuf("drop", dir, 2500, 32 << 10, SL_WHEN_FULL_DROP_OLDEST, 8 << 10);
    sl_watermark *wm = sl_watermark_new(0);
    pusher p = {.b = b, .wm = wm, .count = 200, .per = 10, .filler = 95};
    push_thread(&p); /* never blocks */
    assert_int_equal(atomic_load(&p.pushed), 200);
    uint8_t seen[2000] = {0};
    uint64_t got = drain(b, seen, sizeof seen, 0);
    uint64_t missing = 0;
    for (int i = 0; i < 2000; i++) {
        assert_true(seen[i] <= 1);
        missing += seen[i] == 0;
    }
    assert_int_equal(got + missing, 2000);
    assert_true(missing > 0);
    assert_int_equal(metric("sluice_spool_dropped_records_total", "drop"), (int64_t)missing);
    assert_int_equal(seen[1999], 1); /* newest kept */
    assert_int_equal(sl_watermark_get(wm), 2000);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* ----------------------------------------------------------- disk full */

typedef struct hook_state {
    atomic_int fail;
} hook_state;

static ssize_t enospc_write(void *arg, int fd, const void *p, size_t n, off_t off)
{
    hook_state *h = arg;
    if (!atomic_load(&h->fail)) return pwrite(fd, p, n, off);
    if (n > 1) (void)!pwrite(fd, p, n / 2, off);
    errno = ENOSPC;
    return -1;
}

static void test_enospc_blocks_then_recovers(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("buf-enospc");
    sl_buffer *b = mkbuf("enospc", dir, two_fit(), 1 << 20, SL_WHEN_FULL_BLOCK, 0);
    hook_state h;
    atomic_init(&h.fail, 1);
    sl_spool_set_write_hook(sl_buffer_spool(b), enospc_write, &h);
    sl_watermark *wm = sl_watermark_new(0);
    pusher p = {.b = b, .wm = wm, .count = 10, .per = 10, .filler = 95};
    pthread_t pt;
    assert_int_equal(pthread_create(&pt, NULL, push_thread, &p), 0);
    assert_int_equal(wait_stall(&p, 2, 300), 2); /* memory holds two, the third waits */
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "sink", "enospc", "reason", "enospc");
    assert_true(sl_metrics_value("sluice_spool_write_errors_total", labels) >= 2);
    assert_int_equal(sl_watermark_get(wm), 0);
    atomic_store(&h.fail, 0); /* space is back */
    pthread_join(pt, NULL);
    assert_int_equal(atomic_load(&p.pushed), 10);
    uint8_t seen[100] = {0};
    assert_int_equal(drain(b, seen, sizeof seen, 0), 100);
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "enospc"), 0);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
    sl_t_rmtree(dir);
    free(dir);
}

/* -------------------------------------------------------------- end to end */

typedef struct e2e {
    sl_buffer *b;
    uint8_t *seen;
    uint64_t total;
    atomic_bool up, stop;
    atomic_uint_fast64_t received, unique;
} e2e;

/* A sink that is down until `up`, then delivers; on `stop` it gives the
 * batch in hand back undelivered. */
static void *sink_thread(void *arg)
{
    e2e *e = arg;
    while (!atomic_load(&e->stop)) {
        if (!atomic_load(&e->up)) {
            sl_t_sleep_ms(2);
            continue;
        }
        sl_batch *x;
        int rc = sl_buffer_pop(e->b, &x, 50);
        if (rc == SL_ECLOSED) break;
        if (rc != SL_OK) continue;
        if (atomic_load(&e->stop)) {
            sl_buffer_unpop(e->b, x);
            break;
        }
        for (uint32_t i = 0; i < x->nrecords; i++) {
            uint64_t id = rec_id(&x->records[i]);
            assert_true(id < e->total);
            if (e->seen[id] == 0) atomic_fetch_add(&e->unique, 1);
            if (e->seen[id] < 255) e->seen[id]++;
        }
        atomic_fetch_add(&e->received, x->nrecords);
        sl_batch_done(x);
    }
    return NULL;
}

static void test_end_to_end_outage_and_restart(void **st)
{
    (void)st;
    const uint32_t per = 100;
    const uint64_t total = sl_t_sanitized() ? 60000 : 300000;
    const uint64_t nbatches = total / per;
    char *dir = sl_t_tmpdir("buf-e2e");
    e2e e = {.total = total, .seen = calloc(total, 1)};
    assert_non_null(e.seen);
    sl_watermark *wm = sl_watermark_new(0);
    int64_t t0 = sl_monotonic_ns();

    /* Run 1: the sink is down while half the records arrive. */
    e.b = mkbuf("e2e", dir, 64 << 10, 512 << 20, SL_WHEN_FULL_BLOCK, 0);
    pusher p = {.b = e.b, .wm = wm, .count = nbatches, .per = per, .filler = 30};
    pthread_t pt, st1;
    assert_int_equal(pthread_create(&pt, NULL, push_thread, &p), 0);
    assert_int_equal(pthread_create(&st1, NULL, sink_thread, &e), 0);
    int64_t spool_peak = 0;
    while (atomic_load(&p.pushed) < nbatches / 2) {
        int64_t v = metric("sluice_spool_bytes", "e2e");
        if (v > spool_peak) spool_peak = v;
        sl_t_sleep_ms(5);
    }
    assert_int_equal(atomic_load(&e.received), 0);
    assert_true(spool_peak > 0);
    assert_true(metric("sluice_spool_records_pending", "e2e") > (int64_t)total / 4);
    atomic_store(&e.up, true);
    /* It comes back; then the agent is stopped part way through. */
    while (atomic_load(&e.unique) < total * 6 / 10) sl_t_sleep_ms(5);
    atomic_store(&e.stop, true);
    pthread_join(st1, NULL);
    sl_buffer_close(e.b);
    pthread_join(pt, NULL);
    sl_buffer_free(e.b);
    uint64_t checkpoint = sl_watermark_get(wm);
    assert_true(checkpoint > 0);
    sl_watermark_unref(wm);

    /* Run 2: the input re-reads from its checkpoint; the spool replays. */
    wm = sl_watermark_new(checkpoint);
    e.b = mkbuf("e2e", dir, 64 << 10, 512 << 20, SL_WHEN_FULL_BLOCK, 0);
    atomic_store(&e.stop, false);
    pusher p2 = {.b = e.b,
                 .wm = wm,
                 .first = checkpoint / per,
                 .count = nbatches - checkpoint / per,
                 .per = per,
                 .filler = 30};
    assert_int_equal(checkpoint % per, 0);
    pthread_t pt2, st2;
    assert_int_equal(pthread_create(&pt2, NULL, push_thread, &p2), 0);
    assert_int_equal(pthread_create(&st2, NULL, sink_thread, &e), 0);
    int64_t deadline = sl_monotonic_ns() + 45 * 1000000000LL;
    while (atomic_load(&e.unique) < total && sl_monotonic_ns() < deadline) sl_t_sleep_ms(5);
    pthread_join(pt2, NULL);
    atomic_store(&e.stop, true);
    pthread_join(st2, NULL);
    sl_buffer_close(e.b);
    sl_buffer_free(e.b);

    uint64_t lost = 0;
    for (uint64_t i = 0; i < total; i++) lost += e.seen[i] == 0;
    uint64_t dups = atomic_load(&e.received) - atomic_load(&e.unique);
    print_message("e2e: %" PRIu64 " records, lost %" PRIu64 ", duplicates %" PRIu64
                  ", spool peak %" PRId64 " bytes, %.2f s\n",
                  total, lost, dups, spool_peak, (double)(sl_monotonic_ns() - t0) / 1e9);
    assert_int_equal(lost, 0);
    assert_true(dups <= 2 * per); /* at most what was in flight */
    assert_int_equal(sl_watermark_get(wm), total);
    assert_int_equal(metric("sluice_spool_records_pending", "e2e"), 0);
    assert_int_equal(count_segments(dir), 0);
    sl_watermark_unref(wm);
    free(e.seen);
    sl_t_rmtree(dir);
    free(dir);
}

/* sl_buffer_pop_many takes what is queued in one go, oldest first: the
 * head always (even larger than max_bytes), then more while their record
 * text fits in max_bytes and max_n allows. */
static void test_pop_many_takes_what_fits(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("many", NULL, 1 << 20, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    /* Ids 100..139: every batch has the same bytes. */
    assert_int_equal(sl_watermark_issue(wm, 0, 100), SL_OK);
    assert_int_equal(sl_watermark_ack(wm, 0, 100), SL_OK);
    for (uint64_t i = 0; i < 10; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, 100 + i * 4, 4, 0)), SL_OK);
    sl_batch *got[16];
    uint32_t n = 0;
    assert_int_equal(sl_buffer_pop_many(b, got, 3, UINT64_MAX, &n, 0), SL_OK);
    assert_int_equal(n, 3); /* max_n */
    uint64_t one = got[0]->bytes;
    assert_int_equal(rec_id(&got[2]->records[0]), 108);
    for (uint32_t i = 0; i < n; i++) sl_batch_done(got[i]);
    /* Room for two batches' text (they are about the same size). */
    assert_int_equal(sl_buffer_pop_many(b, got, 16, 2 * one + 1, &n, 0), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rec_id(&got[0]->records[0]), 112);
    for (uint32_t i = 0; i < n; i++) sl_batch_done(got[i]);
    /* No room at all: still the head. */
    assert_int_equal(sl_buffer_pop_many(b, got, 16, 0, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rec_id(&got[0]->records[0]), 120);
    sl_batch_done(got[0]);
    assert_int_equal(sl_buffer_pop_many(b, got, 16, UINT64_MAX, &n, 0), SL_OK);
    assert_int_equal(n, 4);
    for (uint32_t i = 0; i < n; i++) sl_batch_done(got[i]);
    assert_int_equal(sl_buffer_pop_many(b, got, 16, UINT64_MAX, &n, 0), SL_ETIMEDOUT);
    assert_int_equal(n, 0);
    assert_int_equal(sl_watermark_get(wm), 140);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

/* A sink that took several batches in one pop and keeps only the first
 * (the rest did not go into its flush) gives the rest back newest first:
 * the next pops return them ahead of what was pushed meanwhile, in their
 * order (decision 0066). */
static void test_pop_many_rest_given_back_in_order(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("many-back", NULL, 1 << 20, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    for (uint64_t i = 0; i < 6; i++) assert_int_equal(sl_buffer_push(b, mk(wm, i, 1, 0)), SL_OK);
    sl_batch *got[8];
    uint32_t n = 0;
    assert_int_equal(sl_buffer_pop_many(b, got, 4, UINT64_MAX, &n, 0), SL_OK);
    assert_int_equal(n, 4);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(rec_id(&got[i]->records[0]), i);
    for (uint64_t i = 6; i < 8; i++) assert_int_equal(sl_buffer_push(b, mk(wm, i, 1, 0)), SL_OK);
    sl_batch_done(got[0]);
    for (uint32_t i = n; i-- > 1;) sl_buffer_unpop(b, got[i]);
    assert_int_equal(sl_buffer_pop_many(b, got, 8, UINT64_MAX, &n, 0), SL_OK);
    assert_int_equal(n, 7);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(rec_id(&got[i]->records[0]), i + 1);
        sl_batch_done(got[i]);
    }
    assert_int_equal(sl_watermark_get(wm), 8);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

/* The sink waits without a time limit; pushes must wake it (decision
 * 0057): once it has been idle (a trickle: one record is taken at once, no
 * linger to wait out), while it lingers after taking batches (it takes the
 * next when its linger ends, without a signal per push), and at close. A
 * lost wake-up would leave the popper waiting for ever: the test waits on
 * it with a time limit. */
typedef struct waiter {
    sl_buffer *b;
    atomic_int state; /* 0 waiting, 1 got a batch, 2 closed */
    atomic_uint_fast64_t first;
} waiter;

static void *wait_pop(void *arg)
{
    waiter *w = arg;
    for (;;) {
        sl_batch *x[4];
        uint32_t n = 0;
        int rc = sl_buffer_pop_many(w->b, x, 4, UINT64_MAX, &n, -1);
        if (rc == SL_ECLOSED) {
            atomic_store(&w->state, 2);
            return NULL;
        }
        if (rc != SL_OK) continue;
        atomic_store(&w->first, rec_id(&x[0]->records[0]));
        for (uint32_t i = 0; i < n; i++) sl_batch_done(x[i]);
        atomic_store(&w->state, 1);
    }
}

static bool waiter_got(void *arg)
{
    return atomic_load(&((waiter *)arg)->state) != 0;
}

static void test_waiting_sink_is_woken(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("wake", NULL, 1 << 20, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    waiter w = {.b = b};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_pop, &w), 0);
    /* Idle, then a trickle: each single batch is taken, also those pushed
     * while the sink lingers after the one before, and a flush_now one. */
    for (uint64_t i = 0; i < 20; i++) {
        if (i % 5 == 0) sl_t_sleep_ms(5); /* past the linger: asleep */
        sl_batch *x = mk(wm, i, 1, 0);
        x->flush_now = i % 3 == 0;
        atomic_store(&w.state, 0);
        assert_int_equal(sl_buffer_push(b, x), SL_OK);
        assert_true(sl_t_wait_until(waiter_got, &w, sl_t_scaled_ms(10000)));
        assert_int_equal(atomic_load(&w.first), i);
    }
    /* Close wakes it, lingering or asleep, and it ends. */
    atomic_store(&w.state, 0);
    sl_buffer_close(b);
    assert_true(sl_t_wait_until(waiter_got, &w, sl_t_scaled_ms(10000)));
    assert_int_equal(atomic_load(&w.state), 2);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(sl_watermark_get(wm), 20);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

/* A sink that lingers after taking batches is woken for a push that must
 * wait for room: a small memory_max fills long before the linger ends,
 * and a blocked push still gets its room from the sink (here: well within
 * the time limit, every push goes through and everything arrives). */
static void test_full_buffer_wakes_lingering_sink(void **st)
{
    (void)st;
    sl_buffer *b = mkbuf("fullwake", NULL, 2048, 0, SL_WHEN_FULL_BLOCK, 0);
    sl_watermark *wm = sl_watermark_new(0);
    waiter w = {.b = b};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_pop, &w), 0);
    for (uint64_t i = 0; i < 2000; i++)
        assert_int_equal(sl_buffer_push(b, mk(wm, i, 1, 100)), SL_OK);
    sl_buffer_close(b);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&w.state), 2);
    assert_int_equal(sl_watermark_get(wm), 2000);
    sl_buffer_free(b);
    sl_watermark_unref(wm);
}

int main(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_memory_drop_oldest),
        cmocka_unit_test(test_spill_to_spool),
        cmocka_unit_test(test_spool_on_close_and_replay_first),
        cmocka_unit_test(test_leftover_spool_drained),
        cmocka_unit_test(test_unpop_during_outage),
        cmocka_unit_test(test_give_back_into_a_full_ring),
        cmocka_unit_test(test_block_when_spool_full),
        cmocka_unit_test(test_close_releases_blocked_push),
        cmocka_unit_test(test_refuse_takes_the_rest),
        cmocka_unit_test(test_drop_oldest_counts_missing),
        cmocka_unit_test(test_enospc_blocks_then_recovers),
        cmocka_unit_test(test_end_to_end_outage_and_restart),
        cmocka_unit_test(test_pop_many_takes_what_fits),
        cmocka_unit_test(test_pop_many_rest_given_back_in_order),
        cmocka_unit_test(test_waiting_sink_is_woken),
        cmocka_unit_test(test_full_buffer_wakes_lingering_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
