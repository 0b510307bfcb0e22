/* A spool built by the real agent during an outage, then:
 * - `sluice spool verify|export` on it: export returns exactly the records
 *   of a time window;
 * - damage while the agent is stopped (a flipped payload byte in one entry,
 *   the last entry of the last segment truncated): the restarted agent
 *   skips exactly those entries, counts them, delivers the rest. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "tests/fault/ftest_spool_rig.h"

#define TS_BASE 1609459200 /* 2021-01-01T00:00:00Z; record i has time TS_BASE + i s */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted segment paths of the spool. */
static size_t list_segs(const char *dir, char **out, size_t cap)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < cap)
        if (strstr(e->d_name, ".seg")) out[n++] = sl_t_path(dir, e->d_name);
    if (d) closedir(d);
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

/* Offsets of the entries of a segment image (52-byte header, payload). */
static size_t entries_of(const uint8_t *p, size_t n, size_t *off, uint32_t *recs, size_t cap)
{
    size_t k = 0;
    for (size_t o = 0; o + 52 <= n && k < cap;) {
        off[k] = o;
        recs[k++] = rd32(p + o + 32);
        o += 52 + rd32(p + o + 36);
    }
    return k;
}

static int run_cli(const char *const *args, const char *out_path)
{
    pid_t pid = sl_t_spawn((char *const *)args, out_path);
    return pid > 0 ? sl_t_wait(pid, sl_t_scaled_ms(60000)) : -1;
}

static void test_export_and_corruption(void **st)
{
    (void)st;
    long total = sl_t_sanitized() ? 10000 : 40000;
    srig r;
    /* shutdown_timeout 1s: the destination is down, draining cannot help;
     * stopping spools what memory holds. */
    srig_init(&r, "spool-corrupt",
              "{memory_max: 16KiB, spool_max: 1GiB, segment_bytes: 64KiB, fsync: batch}",
              "[{logfmt: {}}, {timestamp: {field: ts, format: rfc3339}}]",
              "shutdown_timeout: 1s\n");
    srig_outage(&r, true);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, sl_t_scaled_ms(10000)));
    srig_append_ids(r.in, 0, total, TS_BASE);
    srig_goal read_all = {&r, "sluice_input_records_total", (double)total};
    assert_true(sl_t_wait_until(srig_metric_at_least, &read_all, sl_t_scaled_ms(30000)));
    /* Stopping spools what memory holds (and checkpoints after it): the
     * whole run is on disk now. */
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    assert_int_equal(sl_lr_nentries(r.lr), 0);

    /* export: exactly the records of [since, until). */
    char *exp = sl_t_path(r.dir, "export.jsonl"), *cli_log = sl_t_path(r.dir, "cli.log");
    long lo = total / 4, hi = total / 2;
    char since[32], until[32];
    time_t t = TS_BASE + lo;
    strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    t = TS_BASE + hi;
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    const char *ex[] = {sl_t_bin(), "spool", "export",  "-c",  r.cfg, "--sink", "lk",
                        "--since",  since,   "--until", until, "-o",  exp,      NULL};
    assert_int_equal(run_cli(ex, cli_log), 0);
    size_t n = 0;
    char *data = sl_t_read_file(exp, &n);
    assert_non_null(data);
    unsigned char *seen = calloc((size_t)total, 1);
    long in_window = 0, outside = 0, dups = 0;
    for (char *p = data; p < data + n;) {
        char *nl = memchr(p, '\n', (size_t)(data + n - p));
        if (!nl) break;
        char *idp = memmem(p, (size_t)(nl - p), "id=", 3);
        long id = idp ? sl_t_parse_id(idp, nl, "id=") : -1;
        if (id >= lo && id < hi) {
            dups += seen[id];
            in_window += !seen[id];
            seen[id] = 1;
        } else {
            outside++;
        }
        p = nl + 1;
    }
    free(seen);
    free(data);
    fprintf(stderr,
            "export [%s, %s): %ld records in the window (want %ld), %ld outside, %ld dups\n", since,
            until, in_window, hi - lo, outside, dups);
    assert_int_equal(in_window, hi - lo);
    assert_int_equal(outside, 0);
    assert_int_equal(dups, 0);
    /* --zstd writes a zstd frame. */
    const char *exz[] = {sl_t_bin(), "spool",   "export",           "-c",     r.cfg, "--sink",
                         "lk",       "--match", "id=0000000[0-9] ", "--zstd", "-o",  exp,
                         NULL};
    assert_int_equal(run_cli(exz, cli_log), 0);
    data = sl_t_read_file(exp, &n);
    assert_true(data && n > 4 && (uint8_t)data[0] == 0x28 && (uint8_t)data[1] == 0xb5);
    free(data);
    const char *ver[] = {sl_t_bin(), "spool", "verify", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(ver, cli_log), 0);

    /* Damage: one payload byte of an entry of the first segment,
     * and the last entry of the last segment cut in half (a torn write). */
    char *sdir = sl_t_path(r.data, "spool/lk");
    char *segs[4096];
    size_t nseg = list_segs(sdir, segs, 4096);
    assert_true(nseg >= 2);
    size_t off[4096];
    uint32_t recs[4096];
    long damaged = 0;
    uint8_t *img = (uint8_t *)sl_t_read_file(segs[0], &n);
    size_t ne = entries_of(img, n, off, recs, 4096);
    assert_true(ne >= 1);
    size_t k = ne / 2;
    img[off[k] + 52 + rd32(img + off[k] + 36) / 2] ^= 0x5a;
    assert_int_equal(sl_t_write_file(segs[0], img, n), 0);
    damaged += recs[k];
    free(img);
    img = (uint8_t *)sl_t_read_file(segs[nseg - 1], &n);
    ne = entries_of(img, n, off, recs, 4096);
    assert_true(ne >= 1);
    assert_int_equal(
        truncate(segs[nseg - 1], (off_t)(off[ne - 1] + 52 + rd32(img + off[ne - 1] + 36) / 2)), 0);
    damaged += recs[ne - 1];
    free(img);
    for (size_t i = 0; i < nseg; i++) free(segs[i]);
    assert_int_equal(run_cli(ver, cli_log), 1); /* verify finds it */

    srig_outage(&r, false);
    srig_start(&r);
    assert_true(srig_wait_ids(&r, total, total - damaged, 30000));
    srig_goal both = {&r, "sluice_spool_corrupt_entries_total", 2};
    sl_t_wait_until(srig_metric_at_least, &both, sl_t_scaled_ms(10000));
    double corrupt = srig_metric(&r, "sluice_spool_corrupt_entries_total");
    /* A graceful stop sends everything the agent has: whatever else could
     * arrive has arrived when it returns. */
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    stally tl = srig_count(&r, total, NULL);
    fprintf(stderr,
            "corruption: sent=%ld damaged entries=2 (%ld records) received=%ld lost=%ld dups=%ld "
            "corrupt_metric=%.0f\n",
            total, damaged, tl.distinct, total - tl.distinct, tl.dups, corrupt);
    assert_true(corrupt == 2);
    assert_int_equal(tl.distinct, total - damaged);
    assert_int_equal(tl.dups, 0);
    free(sdir), free(exp), free(cli_log);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_and_corruption),
    };
    return sl_t_run_tests(tests);
}
