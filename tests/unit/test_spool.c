#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/metrics.h"
#include "parsers/json.h"
#include "pipeline/spool.h"
#include "pipeline/spool_codec.h"
#include "shipper/recjson.h"
#include "tests/helpers.h"

#define T0 1700000000000000000LL /* record times: T0 + id */

/* A batch of n records with ids first..first+n-1: "record <id> <filler>". */
static sl_batch *mk_batch(uint64_t first, uint32_t n, size_t filler)
{
    sl_batch *b = sl_batch_new(n);
    assert_non_null(b);
    assert_int_equal(sl_batch_set_names(b, "app", "/var/log/app.log"), SL_OK);
    sl_field lab = {SL_SLICE_LIT("job"), SL_SLICE_LIT("app"), SL_V_STRING, SL_FF_LABEL};
    assert_int_equal(sl_batch_set_labels(b, &lab, 1), SL_OK);
    for (uint32_t i = 0; i < n; i++) {
        char line[4096];
        int len = snprintf(line, sizeof line, "record %" PRIu64 " ", first + i);
        /* Pseudo-random filler so entries do not compress to nothing. */
        uint64_t x = (first + i) * 0x9E3779B97F4A7C15ull;
        for (size_t k = 0; k < filler && len < (int)sizeof line - 1; k++) {
            x ^= x >> 13, x ^= x << 7, x ^= x >> 17;
            line[len++] = (char)('a' + x % 26);
        }
        char *p = sl_arena_dup(&b->arena, line, (size_t)len);
        sl_record *r =
            sl_batch_add(b, (sl_slice){p, (size_t)len}, T0 + (int64_t)(first + i), first + i + 1);
        assert_non_null(r);
        char num[32];
        int nl = snprintf(num, sizeof num, "%" PRIu64, first + i);
        char *np = sl_arena_dup(&b->arena, num, (size_t)nl);
        assert_non_null(
            sl_record_add_field(b, r, SL_SLICE_LIT("id"), (sl_slice){np, (size_t)nl}, SL_V_NUMBER));
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
    assert_int_equal(sscanf(buf, "record %llu", &id), 1);
    return id;
}

static sl_spool *open_spool(const char *dir, const char *sink, uint64_t seg_bytes, uint64_t max)
{
    sl_spool_opts o = {.dir = dir,
                       .sink = sink,
                       .segment_bytes = seg_bytes,
                       .max_bytes = max,
                       .fsync = SL_SPOOL_FSYNC_BATCH};
    sl_spool *s = NULL;
    sl_err err;
    int rc = sl_spool_open(&o, &s, &err);
    if (rc != SL_OK) fail_msg("sl_spool_open: %s", err.msg);
    return s;
}

static void append1(sl_spool *s, sl_batch *b)
{
    size_t w = 0;
    sl_err err;
    int rc = sl_spool_append(s, &b, 1, &w, &err);
    if (rc != SL_OK) fail_msg("append: %s", err.msg);
    assert_int_equal(w, 1);
    sl_batch_unref(b);
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
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        n += l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0;
    }
    closedir(d);
    return n;
}

static char *first_segment(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *best = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0 &&
            (!best || strcmp(de->d_name, best) < 0)) {
            free(best);
            best = strdup(de->d_name);
        }
    }
    closedir(d);
    assert_non_null(best);
    char *p = sl_t_path(dir, best);
    free(best);
    return p;
}

/* ---------------------------------------------------------------- CRC32C */

static void test_crc32c_vectors(void **st)
{
    (void)st;
    /* RFC 3720 B.4 and the usual check value. */
    uint8_t zeros[32] = {0}, ones[32], inc[32], dec[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i, dec[i] = (uint8_t)(31 - i);
    uint32_t (*impl[2])(uint32_t, const void *, size_t) = {sl_crc32c_portable, sl_crc32c_hw};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(impl[k](0, "123456789", 9), 0xe3069283u);
        assert_int_equal(impl[k](0, zeros, 32), 0x8a9136aau);
        assert_int_equal(impl[k](0, ones, 32), 0x62a8ab43u);
        assert_int_equal(impl[k](0, inc, 32), 0x46dd794eu);
        assert_int_equal(impl[k](0, dec, 32), 0x113fdb5cu);
        assert_int_equal(impl[k](0, "", 0), 0);
        /* Chaining equals one pass. */
        assert_int_equal(impl[k](impl[k](0, "1234", 4), "56789", 5), 0xe3069283u);
    }
    if (!sl_crc32c_hw_available()) print_message("no SSE4.2: hw path is the portable one\n");
    /* Both agree on every length and alignment. */
    uint8_t buf[600];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 13) {
            uint32_t a = sl_crc32c_portable(0x12345678u, buf + off, n);
            assert_int_equal(sl_crc32c_hw(0x12345678u, buf + off, n), a);
            assert_int_equal(sl_crc32c(0x12345678u, buf + off, n), a);
        }
}

/* ------------------------------------------------------------ round trip */

static void test_roundtrip(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-rt");
    sl_spool *s = open_spool(dir, "rt", 0, 0);
    sl_batch *b = sl_batch_new(8);
    assert_int_equal(sl_batch_set_names(b, "in-x", NULL), SL_OK);
    sl_field labs[2] = {{SL_SLICE_LIT("job"), SL_SLICE_LIT("api"), SL_V_STRING, SL_FF_LABEL},
                        {SL_SLICE_LIT("env"), SL_SLICE_LIT("prod"), SL_V_STRING, 0}};
    assert_int_equal(sl_batch_set_labels(b, labs, 2), SL_OK);
    static const char bin[] = {'a', 0, 'b', (char)0xff, '\n'};
    sl_record *r0 = sl_batch_add(b, SL_SLICE_LIT("{\"msg\":\"hi\\n\",\"n\":5}"), -42, 10);
    sl_record_add_field(b, r0, SL_SLICE_LIT("msg"), SL_SLICE_LIT("hi\\n"), SL_V_ESCAPED);
    sl_record_add_field(b, r0, SL_SLICE_LIT("n"), SL_SLICE_LIT("5"), SL_V_NUMBER);
    /* A field that is a slice of its line, as parsers make them, and one
     * that ends exactly at the line's end. */
    sl_record_add_field(b, r0, (sl_slice){r0->line.p + 2, 3}, (sl_slice){r0->line.p + 8, 4},
                        SL_V_ESCAPED);
    sl_record_add_field(b, r0, SL_SLICE_LIT("tail"), (sl_slice){r0->line.p + 19, 1}, SL_V_STRING);
    sl_field *rm = sl_record_add_field(b, r0, SL_SLICE_LIT("gone"), SL_SLICE_LIT("x"), SL_V_STRING);
    rm->flags = SL_FF_REMOVED;
    sl_field *k = sl_record_add_field(b, r0, SL_SLICE_LIT("k\\u0041"), SL_SLICE_LIT("{\"a\":[1]}"),
                                      SL_V_OBJECT);
    k->flags = SL_FF_KEY_ESCAPED | SL_FF_METADATA;
    r0->flags = SL_RF_PARSE_ERROR;
    sl_record *r1 = sl_batch_add(b, SL_SLICE_LIT("dropped"), 1, 20);
    r1->flags = SL_RF_DROPPED;
    sl_record *r2 = sl_batch_add(b, (sl_slice){bin, sizeof bin}, INT64_MAX, 30);
    /* SL_RF_LINE_UTF8 on a line that is not: the decoder must not keep it. */
    r2->flags = SL_RF_INVALID_UTF8 | SL_RF_TRUNCATED | SL_RF_LINE_UTF8;
    sl_record_add_field(b, r2, SL_SLICE_LIT("t"), SL_SLICE_LIT("true"), SL_V_TRUE);
    /* (a value's text is what its type says: decision 0054) */
    sl_record_add_field(b, r2, SL_SLICE_LIT(""), SL_SLICE_LIT("null"), SL_V_NULL);
    sl_batch_add(b, SL_SLICE_LIT(""), 0, 40);
    int64_t before = metric("sluice_spool_written_records_total", "rt");
    append1(s, b);
    assert_int_equal(metric("sluice_spool_written_records_total", "rt") - before, 3);
    assert_int_equal(sl_spool_unread(s), 1);

    sl_batch *d = NULL;
    assert_int_equal(sl_spool_next(s, &d), SL_OK);
    assert_int_equal(sl_spool_next(s, &(sl_batch *){NULL}), SL_ENOENT);
    assert_string_equal(d->input, "in-x");
    assert_null(d->source);
    assert_int_equal(d->nlabels, 2);
    assert_true(sl_slice_eq(d->labels[0].key, "job", 3) && sl_slice_eq(d->labels[0].val, "api", 3));
    assert_int_equal(d->labels[0].flags, SL_FF_LABEL);
    assert_true(sl_slice_eq(d->labels[1].val, "prod", 4));
    assert_int_equal(d->nrecords, 3); /* the dropped record is not kept */
    const sl_record *a = &d->records[0];
    assert_true(sl_slice_eq(a->line, "{\"msg\":\"hi\\n\",\"n\":5}", 20));
    assert_int_equal(a->time_ns, -42);
    assert_int_equal(a->flags, SL_RF_PARSE_ERROR);
    assert_int_equal(a->nfields, 5); /* the removed field is not kept */
    assert_true(sl_slice_eq(a->fields[0].val, "hi\\n", 4));
    assert_int_equal(a->fields[0].type, SL_V_ESCAPED);
    assert_int_equal(a->fields[1].type, SL_V_NUMBER);
    /* Stored as references: they point into the decoded line again. */
    assert_true(sl_slice_eq(a->fields[2].key, "msg", 3));
    assert_true(sl_slice_eq(a->fields[2].val, "hi\\n", 4));
    assert_ptr_equal(a->fields[2].key.p, a->line.p + 2);
    assert_ptr_equal(a->fields[2].val.p, a->line.p + 8);
    assert_true(sl_slice_eq(a->fields[3].val, "}", 1));
    assert_ptr_equal(a->fields[3].val.p, a->line.p + 19);
    assert_true(sl_slice_eq(a->fields[4].key, "k\\u0041", 7));
    assert_int_equal(a->fields[4].flags, SL_FF_KEY_ESCAPED | SL_FF_METADATA);
    assert_int_equal(a->fields[4].type, SL_V_OBJECT);
    const sl_record *c = &d->records[1];
    assert_int_equal(c->line.n, sizeof bin);
    assert_memory_equal(c->line.p, bin, sizeof bin);
    assert_int_equal(c->time_ns, INT64_MAX);
    assert_int_equal(c->flags, SL_RF_INVALID_UTF8 | SL_RF_TRUNCATED);
    assert_int_equal(c->nfields, 2);
    assert_int_equal(c->fields[0].type, SL_V_TRUE);
    assert_int_equal(c->fields[1].key.n, 0);
    assert_int_equal(c->fields[1].type, SL_V_NULL);
    assert_int_equal(d->records[2].line.n, 0);
    assert_int_equal(d->bytes, a->line.n + sizeof bin);
    assert_null(d->ticket.wm);

    sl_spool_usage u;
    sl_spool_get_usage(s, &u);
    assert_int_equal(u.pending_records, 3);
    uint64_t cursor = u.cursor;
    sl_batch_done(d);
    sl_spool_get_usage(s, &u);
    assert_int_equal(u.pending_records, 0);
    assert_int_equal(u.cursor, cursor + 1);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* --------------------------------------------------------- corruption */

typedef struct layout {
    long off[64];
    long len[64];
    int n;
} layout;

static layout entries_of(const char *path)
{
    size_t n;
    char *img = sl_t_read_file(path, &n);
    assert_non_null(img);
    layout l = {.n = 0};
    size_t off = 0;
    while (off + SL_SPOOL_ENTRY_HDR <= n && l.n < 64) {
        uint32_t plen;
        memcpy(&plen, img + off + 36, 4); /* little-endian host */
        l.off[l.n] = (long)off;
        l.len[l.n] = (long)(SL_SPOOL_ENTRY_HDR + plen);
        l.n++;
        off += SL_SPOOL_ENTRY_HDR + plen;
    }
    assert_int_equal(off, n);
    free(img);
    return l;
}

static void patch(const char *path, long off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

/* Reads everything left, marking ids seen; returns records. */
static uint64_t drain(sl_spool *s, uint8_t *seen, size_t nseen, bool ack)
{
    uint64_t recs = 0;
    sl_batch *b;
    while (sl_spool_next(s, &b) == SL_OK) {
        for (uint32_t i = 0; i < b->nrecords; i++) {
            uint64_t id = rec_id(&b->records[i]);
            assert_true(id < nseen);
            seen[id]++;
        }
        recs += b->nrecords;
        if (ack)
            sl_batch_done(b);
        else
            sl_batch_unref(b);
    }
    return recs;
}

static void test_corruption_skipped_exactly(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-corrupt");
    sl_spool *s = open_spool(dir, "corrupt", 0, 0);
    /* 10 entries of 5 records: ids 10*k .. 10*k+4 for entry k. */
    for (int k = 0; k < 10; k++) append1(s, mk_batch(10 * (uint64_t)k, 5, 60));
    sl_spool_close(s);
    char *seg = first_segment(dir);
    layout l = entries_of(seg);
    assert_int_equal(l.n, 10);

    /* Entry 2: a flipped byte mid-payload. Entry 5: its length field says
     * 200 MB. Entry 9 (the last): torn, 7 bytes short. */
    long mid = l.off[2] + l.len[2] / 2;
    uint8_t x;
    int fd = open(seg, O_RDONLY);
    assert_int_equal(pread(fd, &x, 1, mid), 1);
    close(fd);
    x ^= 0x10;
    patch(seg, mid, &x, 1);
    uint32_t huge = 200u << 20;
    patch(seg, l.off[5] + 36, &huge, 4);
    assert_int_equal(truncate(seg, l.off[9] + l.len[9] - 7), 0);

    sl_spool_info info;
    sl_err err;
    assert_int_equal(sl_spool_inspect(dir, true, &info, NULL, NULL, &err), SL_OK);
    assert_int_equal(info.corrupt, 3);
    assert_int_equal(info.entries, 7);
    assert_int_equal(info.records, 35);

    int64_t c0 = metric("sluice_spool_corrupt_entries_total", "corrupt");
    s = open_spool(dir, "corrupt", 0, 0);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "corrupt") - c0, 3);
    assert_int_equal(sl_spool_unread(s), 7);
    uint8_t seen[100] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 35);
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 5; i++)
            assert_int_equal(seen[10 * k + i], (k == 2 || k == 5 || k == 9) ? 0 : 1);
    /* Read again, the damage is not counted twice. */
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "corrupt") - c0, 3);
    sl_spool_close(s);
    /* Delivered: the damaged segment is gone and a restart finds nothing. */
    assert_int_equal(count_segments(dir), 0);
    s = open_spool(dir, "corrupt", 0, 0);
    assert_int_equal(sl_spool_unread(s), 0);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "corrupt") - c0, 3);
    sl_spool_close(s);
    free(seg);
    sl_t_rmtree(dir);
    free(dir);
}

/* Garbage in front of and between entries (a segment overwritten in part)
 * is skipped too, and a run of two damaged entries counts as two. */
static void test_corruption_regions(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-region");
    sl_spool *s = open_spool(dir, "region", 0, 0);
    for (int k = 0; k < 8; k++) append1(s, mk_batch(10 * (uint64_t)k, 3, 40));
    sl_spool_close(s);
    char *seg = first_segment(dir);
    layout l = entries_of(seg);
    /* Wipe the start of entry 0 and the span from inside entry 3 to inside
     * entry 4. */
    uint8_t junk[4096];
    memset(junk, 0x93, sizeof junk); /* magic's first byte, to tempt the scanner */
    patch(seg, 0, junk, 10);
    long a = l.off[3] + 20, z = l.off[4] + 30;
    patch(seg, a, junk, (size_t)(z - a));
    sl_spool_seg_info si;
    sl_spool_info info;
    sl_spool_seg_info *segs = NULL;
    size_t nsegs = 0;
    sl_err err;
    assert_int_equal(sl_spool_inspect(dir, false, &info, &segs, &nsegs, &err), SL_OK);
    assert_int_equal(nsegs, 1);
    si = segs[0];
    free(segs);
    assert_int_equal(si.corrupt, 3);
    assert_int_equal(si.entries, 5);
    assert_int_equal(si.first_seq, 1);
    s = open_spool(dir, "region", 0, 0);
    uint8_t seen[80] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 15);
    for (int k = 0; k < 8; k++)
        assert_int_equal(seen[10 * k], (k == 0 || k == 3 || k == 4) ? 0 : 1);
    sl_spool_close(s);
    free(seg);
    sl_t_rmtree(dir);
    free(dir);
}

/* A batch given back is handed out again, lowest sequence first. */
static void test_requeue(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-rq");
    sl_spool *s = open_spool(dir, "rq", 0, 0);
    for (int k = 0; k < 3; k++) append1(s, mk_batch(10 * (uint64_t)k, 2, 10));
    sl_batch *a, *b, *x;
    assert_int_equal(sl_spool_next(s, &a), SL_OK);
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    assert_int_equal(sl_spool_unread(s), 1);
    sl_spool_requeue(s, b);
    sl_spool_requeue(s, a);
    assert_int_equal(sl_spool_unread(s), 3);
    assert_int_equal(sl_spool_next(s, &x), SL_OK);
    assert_ptr_equal(x, a);
    sl_batch_done(x);
    assert_int_equal(sl_spool_next(s, &x), SL_OK);
    assert_ptr_equal(x, b);
    sl_spool_requeue(s, x); /* still failing: left for the next start */
    sl_spool_close(s);
    s = open_spool(dir, "rq", 0, 0);
    uint8_t seen[40] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 4);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[10], 1);
    assert_int_equal(seen[20], 1);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- cursor */

static void test_cursor_across_reopen(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-cursor");
    sl_spool *s = open_spool(dir, "cursor", 0, 0);
    for (int k = 0; k < 10; k++) append1(s, mk_batch(10 * (uint64_t)k, 2, 10));
    sl_batch *got[6];
    for (int i = 0; i < 6; i++) assert_int_equal(sl_spool_next(s, &got[i]), SL_OK);
    /* Delivered out of order: 0, 1, 2 and 4; 3 and 5 failed. */
    sl_batch_done(got[4]);
    sl_batch_done(got[0]);
    sl_batch_done(got[2]);
    sl_batch_done(got[1]);
    sl_batch_unref(got[3]);
    sl_batch_unref(got[5]);
    sl_spool_close(s);

    s = open_spool(dir, "cursor", 0, 0);
    assert_true(sl_spool_replaying(s));
    uint8_t seen[100] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, false), 14);
    for (int k = 0; k < 10; k++)
        assert_int_equal(seen[10 * k], k < 3 ? 0 : 1); /* acked prefix not redelivered */
    assert_false(sl_spool_replaying(s));
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* kill -9 after acks: no close, so only what the cursor file says counts. */
static void test_cursor_after_crash(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-crash");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sl_spool_opts o = {.dir = dir, .sink = "crash", .fsync = SL_SPOOL_FSYNC_BATCH};
        sl_spool *s;
        sl_err err;
        if (sl_spool_open(&o, &s, &err) != SL_OK) _exit(2);
        for (uint64_t k = 0; k < 20; k++) {
            sl_batch *b = mk_batch(10 * k, 2, 10);
            size_t w;
            if (sl_spool_append(s, &b, 1, &w, &err) != SL_OK) _exit(3);
            sl_batch_unref(b);
        }
        sl_batch *b[6];
        for (int i = 0; i < 6; i++)
            if (sl_spool_next(s, &b[i]) != SL_OK) _exit(4);
        for (int i = 0; i < 5; i++) sl_batch_done(b[i]);
        usleep(300 * 1000); /* past the cursor's save interval */
        sl_batch_done(b[5]);
        _exit(0); /* no close, no flush */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    sl_spool *s = open_spool(dir, "crash", 0, 0);
    uint8_t seen[200] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 28);
    for (int k = 0; k < 20; k++) assert_int_equal(seen[10 * k], k < 6 ? 0 : 1);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* -------------------------------------------------- rollover, deletion */

static void test_rollover_and_deletion(void **st)
{
    (void)st;
    char *top = sl_t_tmpdir("spool-roll");
    char *dir = sl_t_path(top, "spool/roll"); /* created by the spool */
    sl_spool *s = open_spool(dir, "roll", 4096, 0);
    for (int k = 0; k < 40; k++) append1(s, mk_batch(10 * (uint64_t)k, 4, 200));
    int nseg = count_segments(dir);
    assert_true(nseg >= 4);
    assert_int_equal(metric("sluice_spool_segments", "roll"), nseg);
    sl_spool_usage u;
    sl_spool_get_usage(s, &u);
    assert_int_equal(u.segments, (uint64_t)nseg);
    assert_int_equal(metric("sluice_spool_bytes", "roll"), (int64_t)u.bytes);
    assert_int_equal(metric("sluice_spool_records_pending", "roll"), 160);
    /* Files are private, names are the first sequence of each. */
    char *first = first_segment(dir);
    struct stat sb;
    assert_int_equal(stat(first, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_non_null(strstr(first, "/00000000000000000001.seg"));
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    free(first);

    /* Deliver the first half: whole segments before it disappear. */
    sl_batch *b;
    uint64_t prev = 0;
    for (int k = 0; k < 20; k++) {
        assert_int_equal(sl_spool_next(s, &b), SL_OK);
        assert_true(b->ticket.begin > prev); /* oldest first */
        prev = b->ticket.begin;
        assert_int_equal(rec_id(&b->records[0]), 10 * (uint64_t)k);
        sl_batch_done(b);
    }
    int mid = count_segments(dir);
    assert_true(mid < nseg && mid > 0);
    while (sl_spool_next(s, &b) == SL_OK) sl_batch_done(b);
    /* Fully delivered and no append running: even the segment being
     * written is gone, so a drained spool takes no disk. */
    assert_int_equal(count_segments(dir), 0);
    assert_int_equal(metric("sluice_spool_records_pending", "roll"), 0);
    /* The next write starts over in a fresh segment. */
    append1(s, mk_batch(1000, 1, 10));
    assert_int_equal(count_segments(dir), 1);
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    assert_int_equal(b->ticket.begin, 41);
    sl_batch_done(b);
    sl_spool_close(s);
    assert_int_equal(count_segments(dir), 0);
    sl_t_rmtree(top);
    free(dir);
    free(top);
}

static void test_max_bytes_and_drop_oldest(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-max");
    sl_spool *s = open_spool(dir, "max", 4096, 16384);
    int k = 0, rc;
    for (;; k++) {
        sl_batch *b = mk_batch(10 * (uint64_t)k, 4, 200);
        size_t w = 9;
        sl_err err;
        rc = sl_spool_append(s, &b, 1, &w, &err);
        sl_batch_unref(b);
        if (rc != SL_OK) {
            assert_int_equal(w, 0);
            break;
        }
    }
    assert_int_equal(rc, SL_EFULL);
    sl_spool_usage u;
    sl_spool_get_usage(s, &u);
    assert_true(u.bytes <= 16384 && u.bytes > 8192);
    int written = k;

    /* Delivering one entry frees nothing; a whole segment does. */
    sl_batch *b;
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    sl_batch_done(b);
    sl_batch *one = mk_batch(5000, 4, 200);
    size_t w;
    sl_err err;
    assert_int_equal(sl_spool_append(s, &one, 1, &w, &err), SL_EFULL);

    int64_t d0 = metric("sluice_spool_dropped_records_total", "max");
    uint64_t dropped;
    assert_int_equal(sl_spool_drop_oldest(s, &dropped), SL_OK);
    assert_true(dropped > 0 && dropped % 4 == 0);
    assert_int_equal(metric("sluice_spool_dropped_records_total", "max") - d0, (int64_t)dropped);
    assert_int_equal(sl_spool_append(s, &one, 1, &w, &err), SL_OK);
    sl_batch_unref(one);
    uint8_t seen[6000] = {0};
    uint64_t left = drain(s, seen, sizeof seen, true);
    /* Everything is accounted for: delivered, dropped, or the one acked. */
    assert_int_equal(left + dropped + 4, (uint64_t)written * 4 + 4);
    assert_int_equal(seen[5000], 1);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* --------------------------------------------------------------- ENOSPC */

typedef struct hook_state {
    int fail; /* errno to fail with, 0: pass through */
    int calls;
} hook_state;

/* Writes half, then fails: the worst case, a torn entry on disk. */
static ssize_t failing_write(void *arg, int fd, const void *p, size_t n, off_t off)
{
    hook_state *h = arg;
    h->calls++;
    if (!h->fail) return pwrite(fd, p, n, off);
    if (n > 1) (void)!pwrite(fd, p, n / 2, off);
    errno = h->fail;
    return -1;
}

static void test_enospc(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-enospc");
    sl_spool *s = open_spool(dir, "enospc", 0, 0);
    hook_state h = {0};
    sl_spool_set_write_hook(s, failing_write, &h);
    for (int k = 0; k < 3; k++) append1(s, mk_batch(10 * (uint64_t)k, 2, 50));
    char *seg = first_segment(dir);
    struct stat before, after;
    assert_int_equal(stat(seg, &before), 0);

    char labels[128];
    sl_metric_labels(labels, sizeof labels, "sink", "enospc", "reason", "enospc");
    int64_t e0 = sl_metrics_value("sluice_spool_write_errors_total", labels);
    h.fail = ENOSPC;
    sl_batch *b = mk_batch(30, 2, 50);
    size_t w = 7;
    sl_err err;
    assert_int_equal(sl_spool_append(s, &b, 1, &w, &err), SL_ENOSPC);
    assert_int_equal(w, 0);
    assert_int_equal(sl_metrics_value("sluice_spool_write_errors_total", labels) - e0, 1);
    assert_int_equal(stat(seg, &after), 0);
    assert_int_equal(after.st_size, before.st_size); /* no torn entry left */
    assert_int_equal(sl_spool_unread(s), 3);
    h.fail = 0;
    assert_int_equal(sl_spool_append(s, &b, 1, &w, &err), SL_OK);
    sl_batch_unref(b);
    sl_spool_close(s);

    int64_t c0 = metric("sluice_spool_corrupt_entries_total", "enospc");
    s = open_spool(dir, "enospc", 0, 0);
    uint8_t seen[64] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 8);
    for (int k = 0; k < 4; k++) assert_int_equal(seen[10 * k], 1);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "enospc"), c0);
    sl_spool_close(s);
    free(seg);
    sl_t_rmtree(dir);
    free(dir);
}

/* ----------------------------------------------------------- inspection */

typedef struct iter_acc {
    uint64_t n, min_id, max_id;
} iter_acc;

static int on_record(void *arg, const sl_batch *b, const sl_record *r, uint64_t seq)
{
    (void)b;
    iter_acc *a = arg;
    uint64_t id = rec_id(r);
    assert_int_equal((int64_t)id, r->time_ns - T0);
    assert_true(seq >= 1);
    if (!a->n || id < a->min_id) a->min_id = id;
    if (!a->n || id > a->max_id) a->max_id = id;
    a->n++;
    return 0;
}

static void test_inspection(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-inspect");
    sl_spool *s = open_spool(dir, "inspect", 4096, 0);
    for (int k = 0; k < 20; k++) append1(s, mk_batch(100 * (uint64_t)k, 10, 100));
    /* Deliver the first 4 entries, so the cursor is at 5. */
    for (int k = 0; k < 4; k++) {
        sl_batch *b;
        assert_int_equal(sl_spool_next(s, &b), SL_OK);
        sl_batch_done(b);
    }
    /* A second open of a live spool is refused. */
    sl_spool_opts o = {.dir = dir, .sink = "inspect2"};
    sl_spool *s2;
    sl_err err;
    assert_int_equal(sl_spool_open(&o, &s2, &err), SL_EINVAL);
    sl_spool_close(s);

    sl_spool_info info;
    sl_spool_seg_info *segs = NULL;
    size_t n = 0;
    assert_int_equal(sl_spool_inspect(dir, false, &info, &segs, &n, &err), SL_OK);
    assert_int_equal(info.cursor, 5);
    assert_int_equal(info.segments, n);
    assert_int_equal(info.pending_records, 160);
    assert_int_equal(info.corrupt, 0);
    uint64_t records = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        records += segs[i].records;
        bytes += segs[i].bytes;
        if (i) assert_int_equal(segs[i].first_seq, segs[i - 1].last_seq + 1);
        assert_true(segs[i].time_min <= segs[i].time_max);
    }
    assert_int_equal(records, info.records);
    assert_int_equal(bytes, info.bytes);
    assert_int_equal(info.time_max, T0 + 1909);
    free(segs);

    sl_spool_iter_opts io = {.since_ns = T0 + 505, .until_ns = T0 + 1203};
    iter_acc acc = {0};
    assert_int_equal(sl_spool_iterate(dir, &io, on_record, &acc, &err), SL_OK);
    /* ids 505..509, 600..609, ..., 1100..1109, 1200..1202 */
    assert_int_equal(acc.n, 5 + 60 + 3);
    assert_int_equal(acc.min_id, 505);
    assert_int_equal(acc.max_id, 1202);
    io = (sl_spool_iter_opts){.pending_only = true};
    acc = (iter_acc){0};
    assert_int_equal(sl_spool_iterate(dir, &io, on_record, &acc, &err), SL_OK);
    assert_int_equal(acc.n, info.pending_records);
    assert_int_equal(acc.min_id, 400);

    assert_int_equal(sl_spool_inspect("/nonexistent/spool", false, &info, NULL, NULL, &err),
                     SL_ENOENT);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_verify_bytes_hostile(void **st)
{
    (void)st;
    sl_spool_seg_info si;
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37);
    memcpy(junk + 17, "\x93SLE", 4);
    assert_int_equal(sl_spool_verify_bytes(junk, sizeof junk, 1, &si), SL_OK);
    assert_int_equal(si.entries, 0);
    assert_int_equal(si.corrupt, 1);
    assert_int_equal(sl_spool_verify_bytes("", 0, 1, &si), SL_OK);
    assert_int_equal(si.corrupt, 0);
}

static char *read_seed(const char *name, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/spool/%s", sl_t_src(), name);
    return sl_t_read_file(path, n);
}

/* A spool in a fresh *dir whose one segment is img. */
static sl_spool *seed_spool(const char *img, size_t n, const char *tag, char **dir)
{
    *dir = sl_t_tmpdir(tag);
    char *seg = sl_t_path(*dir, "00000000000000000001.seg");
    assert_int_equal(sl_t_write_file(seg, img, n), 0);
    free(seg);
    return open_spool(*dir, tag, 0, 0);
}

/* An entry built by hand from the layout in spool.h (uncompressed payload,
 * tests/fuzz/corpus/spool/raw_entry.seg) reads back as documented. */
static void test_format_conformance(void **st)
{
    (void)st;
    size_t n;
    char *img = read_seed("raw_entry.seg", &n);
    if (!img) skip();
    char *dir;
    sl_spool *s = seed_spool(img, n, "format", &dir);
    assert_int_equal(sl_spool_unread(s), 2);
    sl_batch *b;
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    assert_string_equal(b->input, "app");
    assert_null(b->source);
    assert_int_equal(b->nlabels, 1);
    assert_true(sl_slice_eq(b->labels[0].val, "web", 3));
    assert_int_equal(b->labels[0].flags, SL_FF_LABEL);
    assert_int_equal(b->nrecords, 2);
    assert_true(sl_slice_eq(b->records[0].line, "GET /", 5));
    assert_int_equal(b->records[0].time_ns, 5);
    assert_int_equal(b->records[0].nfields, 1);
    assert_true(sl_slice_eq(b->records[0].fields[0].val, "200", 3));
    assert_int_equal(b->records[0].fields[0].type, SL_V_NUMBER);
    assert_int_equal(b->records[1].flags, SL_RF_PARSE_ERROR);
    assert_int_equal(b->records[1].line.n, 0);
    sl_batch_done(b);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
    /* One field of an unknown type makes the entry damaged, not a crash. */
    img = read_seed("raw_bad_type.seg", &n);
    assert_non_null(img);
    sl_spool_seg_info si;
    assert_int_equal(sl_spool_verify_bytes(img, n, 1, &si), SL_OK);
    assert_int_equal(si.entries, 0);
    assert_int_equal(si.corrupt, 1);
    free(img);
}

/* Format 2 (tools/spool_seed_v2.py): fields that are slices of their line
 * come back pointing into it; one pointing past the line's end makes its
 * entry damaged. */
static void test_format_v2_line_refs(void **st)
{
    (void)st;
    size_t n;
    char *img = read_seed("raw_refs_v2.seg", &n);
    if (!img) skip();
    sl_spool_seg_info vi;
    assert_int_equal(sl_spool_verify_bytes(img, n, 1, &vi), SL_OK);
    assert_int_equal(vi.entries, 1);
    assert_int_equal(vi.corrupt, 1);
    char *dir;
    sl_spool *s = seed_spool(img, n, "format2", &dir);
    sl_batch *b;
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    const sl_record *r = &b->records[0];
    assert_true(sl_slice_eq(r->line, "GET /x 200", 10));
    assert_int_equal(r->nfields, 2);
    assert_true(sl_slice_eq(r->fields[0].key, "code", 4));
    assert_true(sl_slice_eq(r->fields[0].val, "200", 3));
    assert_ptr_equal(r->fields[0].val.p, r->line.p + 7);
    assert_true(sl_slice_eq(r->fields[1].key, "GET", 3));
    assert_true(sl_slice_eq(r->fields[1].val, "/x", 2));
    sl_batch_done(b);
    assert_int_not_equal(sl_spool_next(s, &b), SL_OK); /* the damaged one is skipped */
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
}

/* ---- decision 0054: an entry with valid checksums is still hostile ---- */

/* b serialised by the codec's own writer, raw (the payload before the
 * entry header) for a test to patch. */
static void encode_raw(const sl_batch *b, sl_buf *raw, uint32_t *nrec, int64_t *tmin, int64_t *tmax)
{
    sl_buf_init(raw, 0);
    assert_int_equal(sl_spool_encode_batch(raw, b, nrec, tmin, tmax), SL_OK);
}

/* One uncompressed entry around raw, with both checksums right: what the
 * reader sees from a writer that meant it. */
static uint8_t *entry_image(const sl_buf *raw, uint32_t nrec, int64_t tmin, int64_t tmax, size_t *n)
{
    *n = SL_SPOOL_ENTRY_HDR + raw->len;
    uint8_t *h = calloc(1, *n);
    assert_non_null(h);
    memcpy(h, "\x93SLE", 4);
    h[4] = 2; /* format */
    put_u64(h + 8, 1);
    put_u64(h + 16, (uint64_t)tmin);
    put_u64(h + 24, (uint64_t)tmax);
    put_u32(h + 32, nrec);
    put_u32(h + 36, (uint32_t)raw->len);
    put_u32(h + 40, (uint32_t)raw->len);
    memcpy(h + SL_SPOOL_ENTRY_HDR, raw->p, raw->len);
    put_u32(h + 44, sl_crc32c(0, h + SL_SPOOL_ENTRY_HDR, raw->len));
    put_u32(h + 48, sl_crc32c(0, h, SL_SPOOL_ENTRY_HDR - 4));
    return h;
}

/* A batch of one record "hostile line" whose fields (and labels) are given. */
static sl_batch *one_record(const sl_field *fields, uint32_t nf, const sl_field *labels,
                            uint32_t nl)
{
    sl_batch *b = sl_batch_new(1);
    assert_non_null(b);
    assert_int_equal(sl_batch_set_names(b, "app", "/var/log/app.log"), SL_OK);
    if (nl) assert_int_equal(sl_batch_set_labels(b, labels, nl), SL_OK);
    sl_record *r = sl_batch_add(b, SL_SLICE_LIT("hostile line"), T0, 1);
    assert_non_null(r);
    for (uint32_t i = 0; i < nf; i++) {
        sl_field *f = sl_record_add_field(b, r, fields[i].key, fields[i].val, fields[i].type);
        assert_non_null(f);
        f->flags = fields[i].flags;
    }
    return b;
}

/* What verify and the live reader make of the one-entry image of b (raw
 * patched by patch when given): entries decoded, entries damaged. Every
 * decoded record must render as valid JSON. */
typedef void (*raw_patch_fn)(sl_buf *raw, int64_t *tmin, int64_t *tmax);

static void expect_image(sl_batch *b, raw_patch_fn patch, bool valid)
{
    sl_buf raw;
    uint32_t nrec;
    int64_t tmin, tmax;
    encode_raw(b, &raw, &nrec, &tmin, &tmax);
    sl_batch_unref(b);
    if (patch) patch(&raw, &tmin, &tmax);
    size_t n;
    uint8_t *img = entry_image(&raw, nrec, tmin, tmax, &n);
    sl_buf_free(&raw);
    sl_spool_seg_info si;
    assert_int_equal(sl_spool_verify_bytes(img, n, 1, &si), SL_OK);
    assert_int_equal(si.entries, valid ? 1 : 0);
    assert_int_equal(si.corrupt, valid ? 0 : 1);

    /* The live reader: handed out, or counted and skipped. */
    char *dir;
    sl_spool *s = seed_spool((const char *)img, n, "hostile", &dir);
    int64_t before = metric("sluice_spool_corrupt_entries_total", "hostile");
    sl_batch *got = NULL;
    /* The reader's log line, from stderr. */
    char *logp = sl_t_path(dir, "stderr.log");
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), saved = dup(2);
    assert_true(logfd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(logfd, 2);
    int rc = sl_spool_next(s, &got);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(logfd);
    bool logged =
        sl_t_file_has(logp, "event=spool_corrupt_entries") && sl_t_file_has(logp, "reason=payload");
    free(logp);
    assert_true(logged == !valid);
    if (valid) {
        assert_int_equal(rc, SL_OK);
        for (uint32_t i = 0; i < got->nrecords; i++) {
            sl_buf out;
            sl_buf_init(&out, 0);
            assert_true(sl_recjson_append(&out, got, &got->records[i], SL_RJ_ALL) >= 0);
            sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
            assert_int_equal(sl_json_validate(out.p, out.len, &deepest, NULL), SL_OK);
            sl_buf_free(&out);
        }
        sl_batch_done(got);
    } else {
        assert_int_not_equal(rc, SL_OK);
        assert_int_equal(metric("sluice_spool_corrupt_entries_total", "hostile") - before, 1);
    }
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
}

/* An entry whose header the reader refuses before decoding: damage that
 * open's scan counts, never handed out. */
static void expect_framing(sl_batch *b, raw_patch_fn patch)
{
    sl_buf raw;
    uint32_t nrec;
    int64_t tmin, tmax;
    encode_raw(b, &raw, &nrec, &tmin, &tmax);
    sl_batch_unref(b);
    patch(&raw, &tmin, &tmax);
    size_t n;
    uint8_t *img = entry_image(&raw, nrec, tmin, tmax, &n);
    sl_buf_free(&raw);
    sl_spool_seg_info si;
    assert_int_equal(sl_spool_verify_bytes(img, n, 1, &si), SL_OK);
    assert_int_equal(si.entries, 0);
    assert_int_equal(si.corrupt, 1);
    int64_t before = metric("sluice_spool_corrupt_entries_total", "framing");
    char *dir;
    sl_spool *s = seed_spool((const char *)img, n, "framing", &dir);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "framing") - before, 1);
    sl_batch *got;
    assert_int_equal(sl_spool_next(s, &got), SL_ENOENT);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
}

#define FIELD(k, v, t, fl) ((sl_field){SL_SLICE_LIT(k), SL_SLICE_LIT(v), (t), (fl)})

/* A field whose text breaks its type's promise: every writer would copy
 * it into JSON as it is (an injected member, a broken document). */
static void test_hostile_value_types(void **st)
{
    (void)st;
    const sl_field bad[] = {
        FIELD("n", "1,\"injected\":true", SL_V_NUMBER, 0),
        FIELD("n", "", SL_V_NUMBER, 0),
        FIELD("n", "01", SL_V_NUMBER, 0),
        FIELD("n", "1.", SL_V_NUMBER, 0),
        FIELD("n", "-", SL_V_NUMBER, 0),
        FIELD("n", "1e", SL_V_NUMBER, 0),
        FIELD("n", "NaN", SL_V_NUMBER, 0),
        FIELD("t", "", SL_V_TRUE, 0),
        FIELD("t", "true}", SL_V_TRUE, 0),
        FIELD("f", "fals", SL_V_FALSE, 0),
        FIELD("z", "null ,\"x\":1", SL_V_NULL, 0),
        FIELD("o", "{\"a\":1}}", SL_V_OBJECT, 0),
        FIELD("o", "{\"a\":", SL_V_OBJECT, 0),
        FIELD("o", "[1]", SL_V_OBJECT, 0),
        FIELD("a", "{}", SL_V_ARRAY, 0),
        FIELD("a", "[1,]", SL_V_ARRAY, 0),
        FIELD("a", "[\"\xff\"]", SL_V_ARRAY, 0),
        FIELD("e", "a\",\"x\":\"y", SL_V_ESCAPED, 0),
        FIELD("e", "a\\", SL_V_ESCAPED, 0),
        FIELD("e", "\\x41", SL_V_ESCAPED, 0),
        FIELD("e", "\\u12", SL_V_ESCAPED, 0),
        FIELD("e", "\\ud800", SL_V_ESCAPED, 0),
        FIELD("e", "\\ud800\\u0041", SL_V_ESCAPED, 0),
        FIELD("e", "\\udc00", SL_V_ESCAPED, 0),
        FIELD("e", "tab\there", SL_V_ESCAPED, 0),
        FIELD("e", "\xc3", SL_V_ESCAPED, 0),
        FIELD("e", "\xed\xa0\x80", SL_V_ESCAPED, 0),
        FIELD("k\"}", "v", SL_V_STRING, SL_FF_KEY_ESCAPED),
        FIELD("k\\q", "v", SL_V_STRING, SL_FF_KEY_ESCAPED),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        print_message("field %zu: type %d '%.*s'\n", i, bad[i].type, (int)bad[i].val.n,
                      bad[i].val.p);
        expect_image(one_record(&bad[i], 1, NULL, 0), NULL, false);
        /* The same as one of the input's static labels. */
        expect_image(one_record(NULL, 0, &bad[i], 1), NULL, false);
    }
    /* Deeper than any json step may be configured to take. */
    size_t depth = SL_JSON_MAX_DEPTH + 1;
    char *deep = malloc(2 * depth);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    sl_field f = {SL_SLICE_LIT("deep"), {deep, 2 * depth}, SL_V_ARRAY, 0};
    expect_image(one_record(&f, 1, NULL, 0), NULL, false);
    /* As deep as a value of a line a json step took may be (the line's
     * object is one level, the record's "fields" another): honest. */
    f.val.p = deep + 3, f.val.n -= 6;
    expect_image(one_record(&f, 1, NULL, 0), NULL, true);
    free(deep);
}

/* What parsers hand over is still read, of every type. */
static void test_honest_value_types(void **st)
{
    (void)st;
    const sl_field good[] = {
        FIELD("n", "0", SL_V_NUMBER, 0),
        FIELD("n", "-12.5e+10", SL_V_NUMBER, 0),
        FIELD("n", "3E-2", SL_V_NUMBER, 0),
        FIELD("t", "true", SL_V_TRUE, 0),
        FIELD("f", "false", SL_V_FALSE, 0),
        FIELD("z", "null", SL_V_NULL, 0),
        FIELD("o", "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}", SL_V_OBJECT, 0),
        FIELD("a", "[]", SL_V_ARRAY, 0),
        FIELD("e", "q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\ud83d\\ude00 \xc3\xa9", SL_V_ESCAPED, 0),
        FIELD("e", "", SL_V_ESCAPED, 0),
        FIELD("k\\u00e9", "v", SL_V_STRING, SL_FF_KEY_ESCAPED),
        FIELD("raw\"key\x01\xff", "raw \"value\" \x01\xff", SL_V_STRING, 0),
    };
    uint32_t n = sizeof good / sizeof *good;
    for (uint32_t i = 0; i < n; i++) {
        print_message("field %u: type %d '%.*s'\n", i, good[i].type, (int)good[i].val.n,
                      good[i].val.p);
        expect_image(one_record(&good[i], 1, &good[i], 1), NULL, true);
    }
    expect_image(one_record(good, n, good, n), NULL, true);
}

/* A field value longer than its record's line that lies just above the
 * line in memory was written as a reference past the line's end (the
 * bound wrapped), so an honest batch came back as a damaged entry: its
 * records lost on replay. Through the real writer and reader. */
static void test_value_longer_than_line(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-longval");
    sl_spool *s = open_spool(dir, "longval", 0, 0);
    sl_batch *b = sl_batch_new(1);
    assert_non_null(b);
    static const char src[] = "ok, and a value that runs on past the line";
    char *text = sl_arena_dup(&b->arena, src, sizeof src - 1);
    sl_record *r = sl_batch_add(b, (sl_slice){text, 2}, T0, 1);
    assert_non_null(
        sl_record_add_field(b, r, SL_SLICE_LIT("msg"), (sl_slice){text + 1, 40}, SL_V_STRING));
    int64_t before = metric("sluice_spool_corrupt_entries_total", "longval");
    append1(s, b);
    sl_batch *d = NULL;
    assert_int_equal(sl_spool_next(s, &d), SL_OK);
    assert_int_equal(metric("sluice_spool_corrupt_entries_total", "longval"), before);
    assert_true(sl_slice_eq(d->records[0].line, "ok", 2));
    assert_true(sl_slice_eq(d->records[0].fields[0].val, src + 1, 40));
    sl_batch_done(d);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
}

/* The seeds of tools/spool_seed_hostile.py, built by hand from the layout
 * with valid checksums: each hostile one is one damaged entry; the one of
 * every type reads, its unknown flag bits cleared. */
static void test_hostile_seeds(void **st)
{
    (void)st;
    static const char *hostile[] = {
        "hostile_number.seg",        "hostile_escaped_quote.seg", "hostile_lone_surrogate.seg",
        "hostile_escaped_utf8.seg",  "hostile_key_escaped.seg",   "hostile_literal.seg",
        "hostile_object.seg",        "hostile_label_escaped.seg", "hostile_dropped.seg",
        "hostile_removed_label.seg", "hostile_time_range.seg",    "hostile_time_inverted.seg",
    };
    sl_spool_seg_info si;
    size_t n;
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char *img = read_seed(hostile[i], &n);
        assert_non_null(img);
        assert_int_equal(sl_spool_verify_bytes(img, n, 1, &si), SL_OK);
        if (si.entries != 0 || si.corrupt != 1) fail_msg("%s: read as valid", hostile[i]);
        free(img);
    }
    char *img = read_seed("hostile_ok_types.seg", &n);
    assert_non_null(img);
    char *dir;
    sl_spool *s = seed_spool(img, n, "oktypes", &dir);
    sl_batch *b;
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    const sl_record *r = &b->records[0];
    assert_int_equal(r->flags, 0x1ff & ~SL_RF_DROPPED);
    assert_int_equal(r->nfields, 9);
    assert_int_equal(r->fields[7].flags, SL_FF_KEY_ESCAPED | SL_FF_LABEL);
    sl_buf out;
    sl_buf_init(&out, 0);
    assert_true(sl_recjson_append(&out, b, r, SL_RJ_ALL) >= 0);
    assert_int_equal(sl_json_validate(out.p, out.len, NULL, NULL), SL_OK);
    sl_buf_free(&out);
    sl_batch_done(b);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
}

/* Where in raw the bytes of needle start (they must be there once). */
static size_t find_in(const sl_buf *raw, const char *needle)
{
    const char *p = memmem(raw->p, raw->len, needle, strlen(needle));
    assert_non_null(p);
    return (size_t)(p - raw->p);
}

/* A record's flags lie 12 bytes before its line: time, flags, fields, length. */
static void patch_dropped(sl_buf *raw, int64_t *tmin, int64_t *tmax)
{
    (void)tmin, (void)tmax;
    size_t at = find_in(raw, "hostile line") - 12;
    put_u32((uint8_t *)raw->p + at, SL_RF_DROPPED);
}

static void patch_unknown_record_flags(sl_buf *raw, int64_t *tmin, int64_t *tmax)
{
    (void)tmin, (void)tmax;
    size_t at = find_in(raw, "hostile line") - 12;
    put_u32((uint8_t *)raw->p + at, 0xffffffffu & ~(uint32_t)SL_RF_DROPPED);
}

static void patch_time_after(sl_buf *raw, int64_t *tmin, int64_t *tmax)
{
    (void)raw;
    *tmin = *tmax = T0 - 1; /* the record (T0) lies outside what the header says */
}

static void patch_time_inverted(sl_buf *raw, int64_t *tmin, int64_t *tmax)
{
    (void)raw;
    *tmin = T0 + 1, *tmax = T0 - 1;
}

static void patch_time_before(sl_buf *raw, int64_t *tmin, int64_t *tmax)
{
    (void)raw;
    *tmin = *tmax = T0 + 1;
}

/* A dropped record (never written: a sink would skip it unseen), a time
 * outside the header's range (export --since/--until skip entries by it),
 * a removed field: damaged entries. Flags this version does not keep are
 * cleared. */
static void test_hostile_flags_and_times(void **st)
{
    (void)st;
    sl_field f = FIELD("k", "v", SL_V_STRING, 0);
    expect_image(one_record(&f, 1, NULL, 0), patch_dropped, false);
    expect_image(one_record(&f, 1, NULL, 0), patch_time_after, false);
    expect_image(one_record(&f, 1, NULL, 0), patch_time_before, false);
    /* A header's range out of order, or set without records: `spool
     * ls|stat` would report it. */
    expect_framing(one_record(&f, 1, NULL, 0), patch_time_inverted);
    sl_batch *empty = sl_batch_new(1);
    assert_non_null(empty);
    expect_image(empty, NULL, true);
    empty = sl_batch_new(1);
    assert_non_null(empty);
    expect_framing(empty, patch_time_before);
    sl_field removed = FIELD("job", "x", SL_V_STRING, SL_FF_LABEL | SL_FF_REMOVED);
    expect_image(one_record(NULL, 0, &removed, 1), NULL, false);

    /* Unknown bits and SL_FF_VERBATIM (a parser's promise) go. */
    sl_field odd = FIELD("k", "a\"b", SL_V_STRING, SL_FF_LABEL | SL_FF_VERBATIM | 0xe0);
    sl_buf raw;
    uint32_t nrec;
    int64_t tmin, tmax;
    sl_batch *b = one_record(&odd, 1, NULL, 0);
    encode_raw(b, &raw, &nrec, &tmin, &tmax);
    sl_batch_unref(b);
    patch_unknown_record_flags(&raw, &tmin, &tmax);
    size_t n;
    uint8_t *img = entry_image(&raw, nrec, tmin, tmax, &n);
    char *dir;
    sl_spool *s = seed_spool((const char *)img, n, "odd", &dir);
    assert_int_equal(sl_spool_next(s, &b), SL_OK);
    assert_int_equal(b->records[0].flags, 0x1ff & ~SL_RF_DROPPED);
    assert_int_equal(b->records[0].fields[0].flags, SL_FF_LABEL);
    sl_buf out;
    sl_buf_init(&out, 0);
    assert_true(sl_recjson_append(&out, b, &b->records[0], SL_RJ_ALL) >= 0);
    assert_int_equal(sl_json_validate(out.p, out.len, NULL, NULL), SL_OK);
    sl_buf_free(&out);
    sl_batch_done(b);
    sl_spool_close(s);
    sl_t_rmtree(dir);
    free(dir);
    free(img);
    sl_buf_free(&raw);
}

/* `sluice spool export` reads through sl_spool_iterate: the hostile entry
 * gives no record (it is counted by verify), the honest one beside it
 * renders as valid JSON. */
typedef struct export_acc {
    uint64_t n;
} export_acc;

static int export_record(void *arg, const sl_batch *b, const sl_record *r, uint64_t seq)
{
    (void)seq;
    export_acc *a = arg;
    sl_buf out;
    sl_buf_init(&out, 0);
    assert_true(sl_recjson_append(&out, b, r, SL_RJ_ALL) >= 0);
    assert_int_equal(sl_json_validate(out.p, out.len, NULL, NULL), SL_OK);
    assert_null(memmem(out.p, out.len, "injected", 8));
    sl_buf_free(&out);
    a->n++;
    return 0;
}

static void test_hostile_export(void **st)
{
    (void)st;
    sl_field evil = FIELD("e", "x\",\"injected\":\"1", SL_V_ESCAPED, 0);
    sl_field fine = FIELD("e", "x\\\"y", SL_V_ESCAPED, 0);
    sl_buf raw;
    uint32_t nrec;
    int64_t tmin, tmax;
    size_t n1, n2;
    sl_batch *b = one_record(&evil, 1, NULL, 0);
    encode_raw(b, &raw, &nrec, &tmin, &tmax);
    sl_batch_unref(b);
    uint8_t *bad = entry_image(&raw, nrec, tmin, tmax, &n1);
    sl_buf_free(&raw);
    b = one_record(&fine, 1, NULL, 0);
    encode_raw(b, &raw, &nrec, &tmin, &tmax);
    sl_batch_unref(b);
    uint8_t *good = entry_image(&raw, nrec, tmin, tmax, &n2);
    sl_buf_free(&raw);
    put_u64(good + 8, 2);
    put_u32(good + 48, sl_crc32c(0, good, SL_SPOOL_ENTRY_HDR - 4));
    char *dir = sl_t_tmpdir("spool-export");
    char *seg = sl_t_path(dir, "00000000000000000001.seg");
    assert_int_equal(sl_t_write_file(seg, bad, n1), 0);
    assert_int_equal(sl_t_append_file(seg, good, n2), 0);
    export_acc acc = {0};
    sl_err err;
    uint64_t damaged = 0;
    sl_spool_iter_opts io = {.damaged = &damaged};
    assert_int_equal(sl_spool_iterate(dir, &io, export_record, &acc, &err), SL_OK);
    assert_int_equal(acc.n, 1);
    assert_int_equal(damaged, 1);
    sl_spool_info info;
    assert_int_equal(sl_spool_inspect(dir, true, &info, NULL, NULL, &err), SL_OK);
    assert_int_equal(info.entries, 1);
    assert_int_equal(info.corrupt, 1);
    sl_t_rmtree(dir);
    free(dir);
    free(seg);
    free(bad);
    free(good);
}

/* Decision 0031: new entries are LZ4 blocks (flag bit 1), zstd entries an
 * earlier version wrote are still read, in one spool and one segment list;
 * entries built ahead (sl_spool_prepare) append like batches; an LZ4 entry
 * whose header lies about its raw length is damage, counted and skipped. */
static void test_codecs_mixed_and_prepared(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("spool-codecs");
    sl_spool_opts o = {
        .dir = dir, .sink = "codecs", .fsync = SL_SPOOL_FSYNC_BATCH, .codec = SL_SPOOL_CODEC_ZSTD};
    sl_spool *s = NULL;
    sl_err err;
    assert_int_equal(sl_spool_open(&o, &s, &err), SL_OK);
    for (int k = 0; k < 3; k++) append1(s, mk_batch(10 * (uint64_t)k, 5, 60));
    sl_spool_close(s);
    char *zseg = first_segment(dir);
    uint8_t flags = 0;
    int fd = open(zseg, O_RDONLY);
    assert_int_equal(pread(fd, &flags, 1, 5), 1);
    close(fd);
    assert_int_equal(flags, 1); /* zstd */

    s = open_spool(dir, "codecs", 0, 0); /* the default codec: LZ4 */
    for (int k = 3; k < 6; k++) append1(s, mk_batch(10 * (uint64_t)k, 5, 60));
    sl_spool_prep p[2], *pv[2] = {&p[0], &p[1]};
    for (int k = 6; k < 8; k++) {
        sl_batch *b = mk_batch(10 * (uint64_t)k, 5, 60);
        sl_spool_prep_init(&p[k - 6]);
        assert_int_equal(sl_spool_prepare(s, &p[k - 6], b, &err), SL_OK);
        sl_batch_unref(b);
    }
    size_t w = 0;
    assert_int_equal(sl_spool_append_prepared(s, pv, 2, &w, &err), SL_OK);
    assert_int_equal(w, 2);
    for (int i = 0; i < 2; i++) sl_spool_prep_free(&p[i]);
    uint8_t seen[100] = {0};
    assert_int_equal(drain(s, seen, sizeof seen, true), 40);
    for (int k = 0; k < 8; k++)
        for (int r = 0; r < 5; r++) assert_int_equal(seen[10 * k + r], 1);
    for (int k = 8; k < 10; k++) append1(s, mk_batch(10 * (uint64_t)k, 5, 60));
    sl_spool_close(s);

    /* The LZ4 segment: flag 2; then a raw length one byte too long, with
     * the header CRC made right again, must fail decoding, not crash. */
    char *seg = first_segment(dir);
    layout l = entries_of(seg);
    assert_int_equal(l.n, 2);
    fd = open(seg, O_RDONLY);
    uint8_t h[SL_SPOOL_ENTRY_HDR];
    assert_int_equal(pread(fd, h, sizeof h, l.off[0]), (ssize_t)sizeof h);
    close(fd);
    assert_int_equal(h[5], 2);
    uint32_t raw =
        (uint32_t)h[40] | (uint32_t)h[41] << 8 | (uint32_t)h[42] << 16 | (uint32_t)h[43] << 24;
    raw++;
    for (int i = 0; i < 4; i++) h[40 + i] = (uint8_t)(raw >> (8 * i));
    uint32_t hc = sl_crc32c(0, h, SL_SPOOL_ENTRY_HDR - 4);
    for (int i = 0; i < 4; i++) h[48 + i] = (uint8_t)(hc >> (8 * i));
    patch(seg, l.off[0], h, sizeof h);
    sl_spool_info info;
    assert_int_equal(sl_spool_inspect(dir, true, &info, NULL, NULL, &err), SL_OK);
    assert_int_equal(info.corrupt, 1);
    s = open_spool(dir, "codecs", 0, 0);
    memset(seen, 0, sizeof seen);
    assert_int_equal(drain(s, seen, sizeof seen, true), 5);
    assert_int_equal(seen[90], 1);
    sl_spool_close(s);
    free(seg);
    free(zseg);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_corruption_skipped_exactly),
        cmocka_unit_test(test_corruption_regions),
        cmocka_unit_test(test_requeue),
        cmocka_unit_test(test_cursor_across_reopen),
        cmocka_unit_test(test_cursor_after_crash),
        cmocka_unit_test(test_rollover_and_deletion),
        cmocka_unit_test(test_max_bytes_and_drop_oldest),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_inspection),
        cmocka_unit_test(test_verify_bytes_hostile),
        cmocka_unit_test(test_format_conformance),
        cmocka_unit_test(test_format_v2_line_refs),
        cmocka_unit_test(test_codecs_mixed_and_prepared),
        cmocka_unit_test(test_hostile_value_types),
        cmocka_unit_test(test_honest_value_types),
        cmocka_unit_test(test_hostile_flags_and_times),
        cmocka_unit_test(test_hostile_export),
        cmocka_unit_test(test_value_longer_than_line),
        cmocka_unit_test(test_hostile_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
