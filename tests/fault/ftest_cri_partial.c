/* A container log whose last message never gets its final piece (CRI tag
 * P, 100000 pieces, no F): the real binary ships it in pieces of at most
 * max_bytes as they fill and the last one after flush_partial_after
 * (marked `partial`, counted), so every piece arrives exactly once; the
 * checkpoint reaches the end of the file, so a restart ships nothing again
 * (before, the checkpoint stayed at 0 and the whole file was shipped on
 * every restart while the last piece was never shipped). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/helpers.h"

#define PIECES 100000

typedef struct rig {
    char *dir, *cfg, *log, *in, *out;
    int mport;
    pid_t pid;
} rig;

static int limit_ms(int ms)
{
    return sl_t_scaled_ms(ms);
}

static void start(rig *r)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    /* A fresh log per run, so readiness is this run's. */
    assert_int_equal(sl_t_write_file(r->log, "", 0), 0);
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    sl_t_kill_at_exit(r->pid);
    assert_true(sl_t_wait_log(r->log, "agent_started", 1, limit_ms(20000)));
}

static void stop(rig *r)
{
    assert_int_equal(sl_t_stop(r->pid, SIGTERM, limit_ms(20000)), 0);
    r->pid = 0;
    sl_t_kill_at_exit(0);
}

typedef struct tally {
    long records, distinct, dup, by_size, by_age, markers;
    bool last;
} tally;

/* Counts piece ids in the file sink's JSON lines. */
static tally count(const rig *r)
{
    tally t = {0};
    size_t n = 0;
    char *text = sl_t_read_file(r->out, &n);
    if (!text) return t;
    unsigned char *seen = calloc(PIECES, 1);
    assert_non_null(seen);
    for (char *p = text, *end = text + n; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        *nl = '\0';
        t.records++;
        if (strstr(p, "\"partial\":\"max_bytes\"")) t.by_size++;
        if (strstr(p, "\"partial\":\"flush_partial_after\"")) t.by_age++;
        if (strstr(p, "marker-end")) t.markers++;
        /* A plain scan: strstr from each match would make the sanitizers'
         * interceptor measure the rest of the line every time. */
        for (char *q = p; q + 6 <= nl; q++) {
            if (*q != 'p' || memcmp(q, "piece-", 6) != 0) continue;
            long id = sl_t_parse_id(q, nl, "piece-");
            if (id < 0 || id >= PIECES) continue;
            if (seen[id]++)
                t.dup++;
            else
                t.distinct++;
            if (id == PIECES - 1) t.last = true;
        }
        p = nl + 1;
    }
    free(seen);
    free(text);
    return t;
}

typedef struct goal {
    rig *r;
    long distinct, markers;
    off_t seen_size; /* counted at this size already, not reached */
} goal;

static bool reached(void *arg)
{
    goal *g = arg;
    struct stat st;
    /* Counting a large output is slow under the sanitizers: only again
     * when the sink wrote more. */
    if (stat(g->r->out, &st) != 0 || st.st_size == g->seen_size) return false;
    g->seen_size = st.st_size;
    tally t = count(g->r);
    return t.distinct >= g->distinct && t.markers >= g->markers;
}

static void test_unfinished_partial_is_shipped_once(void **st)
{
    (void)st;
    rig r = {0};
    r.dir = sl_t_tmpdir("cri-partial");
    assert_non_null(r.dir);
    r.cfg = sl_t_path(r.dir, "sluice.yml");
    r.log = sl_t_path(r.dir, "agent.log");
    r.in = sl_t_path(r.dir, "c.log");
    r.out = sl_t_path(r.dir, "out.jsonl");
    r.mport = sl_t_free_port();
    char *data = sl_t_path(r.dir, "data");
    char yml[4096];
    int n = snprintf(yml, sizeof yml,
                     "data_dir: %s\n"
                     "metrics: {listen: \"127.0.0.1:%d\"}\n"
                     "inputs:\n"
                     "  - name: pods\n"
                     "    type: file\n"
                     "    paths: [\"%s\"]\n"
                     "    start_at: beginning\n"
                     "    poll_interval: 50ms\n"
                     "    checkpoint_interval: 100ms\n"
                     "    parse:\n"
                     "      - cri: {max_bytes: 256KiB, flush_partial_after: 1s}\n"
                     "sinks:\n"
                     "  - name: out\n"
                     "    type: file\n"
                     "    format: json\n"
                     "    path: \"%s\"\n",
                     data, r.mport, r.in, r.out);
    assert_true(n > 0 && (size_t)n < sizeof yml);
    assert_int_equal(sl_t_write_file(r.cfg, yml, (size_t)n), 0);
    FILE *f = fopen(r.in, "w");
    assert_non_null(f);
    for (long i = 0; i < PIECES; i++)
        fprintf(f, "2023-10-06T00:17:09.%09ldZ stdout P piece-%06ld \n", i, i);
    fclose(f);

    start(&r);
    goal g = {&r, PIECES, 0, -1};
    bool all = sl_t_wait_until(reached, &g, limit_ms(60000));
    tally t = count(&r);
    fprintf(stderr,
            "first run: %ld records, %ld of %d pieces (%ld twice), %ld shipped at max_bytes, "
            "%ld after flush_partial_after, last piece %s; metric %.0f\n",
            t.records, t.distinct, PIECES, t.dup, t.by_size, t.by_age,
            t.last ? "shipped" : "MISSING",
            sl_t_metric(r.mport, "sluice_parse_partial_flushed_total"));
    assert_true(all);
    assert_true(t.last);
    assert_int_equal(t.dup, 0);
    /* 13 bytes of message per piece: 20165 pieces reach 256 KiB, so at most
     * 4 messages ship at max_bytes; the rest waits flush_partial_after (a
     * slow reader, as under the sanitizers, may reach that first). */
    assert_true(t.by_size <= PIECES / ((256 * 1024 + 12) / 13));
    assert_true(t.by_age >= 1);
    assert_int_equal(t.records, t.by_size + t.by_age);
    assert_int_equal(sl_t_metric(r.mport, "sluice_parse_partial_flushed_total"),
                     (double)(t.by_size + t.by_age));
    stop(&r);

    /* Restart, then a whole line: when it arrives, anything re-read from
     * before would have arrived too. */
    start(&r);
    const char marker[] = "2023-10-06T00:17:10Z stdout F marker-end\n";
    assert_int_equal(sl_t_append_file(r.in, marker, sizeof marker - 1), 0);
    g = (goal){&r, PIECES, 1, -1};
    assert_true(sl_t_wait_until(reached, &g, limit_ms(30000)));
    tally t2 = count(&r);
    fprintf(stderr, "after restart: %ld records (%ld new), pieces shipped again: %ld\n", t2.records,
            t2.records - t.records, t2.dup);
    assert_int_equal(t2.dup, 0);
    assert_int_equal(t2.records, t.records + 1);
    stop(&r);

    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", r.dir);
    else
        sl_t_rmtree(r.dir);
    free(r.dir), free(r.cfg), free(r.log), free(r.in), free(r.out), free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unfinished_partial_is_shipped_once),
    };
    return sl_t_run_tests(tests);
}
